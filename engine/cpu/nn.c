/* engine/cpu/nn.c — CPU kernels of the nn group (see engine/kernels_nn.h).
 *
 * Reductions over one dim of a contiguous [outer, n, inner] tensor: when inner == 1 a row
 * is contiguous and each loop runs straight along it; otherwise the kernels walk the dim
 * for a block of up to BLK adjacent inner positions at once (per-position state lives in
 * small stack arrays), so every memory access stays unit-stride. No allocation anywhere.
 */
#include <math.h>
#include <string.h>

#include "engine/cpu/kernels.h"

#define BLK 64

static inline const float *cf(const ct_tensor *t) { return (const float *)ct_data(t); }
static inline float *mf(ct_tensor *t) { return (float *)ct_data(t); }
static inline const int64_t *ci(const ct_tensor *t) { return (const int64_t *)ct_data(t); }

/* ---- softmax / log_softmax ------------------------------------------------------------- */
static void softmax_row(float *o, const float *x, int64_t n, bool is_log) {
    float m = -INFINITY;
    for (int64_t j = 0; j < n; j++)
        if (x[j] > m) m = x[j];
    double s = 0;
    if (is_log) {
        for (int64_t j = 0; j < n; j++) s += expf(x[j] - m);
        float sub = m + (float)log(s);
        for (int64_t j = 0; j < n; j++) o[j] = x[j] - sub;
    } else {
        for (int64_t j = 0; j < n; j++) {
            float e = expf(x[j] - m);
            o[j] = e;
            s += e;
        }
        float inv = (float)(1.0 / s);
        for (int64_t j = 0; j < n; j++) o[j] *= inv;
    }
}

static void cpu_softmax(ct_tensor *out, const ct_tensor *a, int64_t outer, int64_t n,
                        int64_t inner, bool is_log) {
    const float *x = cf(a);
    float *o = mf(out);
    if (n == 0 || outer == 0 || inner == 0) return;
    if (inner == 1) {
        for (int64_t r = 0; r < outer; r++) softmax_row(o + r * n, x + r * n, n, is_log);
        return;
    }
    float m[BLK], sub[BLK];
    double s[BLK];
    for (int64_t r = 0; r < outer; r++) {
        const float *xb = x + r * n * inner;
        float *ob = o + r * n * inner;
        for (int64_t k0 = 0; k0 < inner; k0 += BLK) {
            int w = (int)(inner - k0 < BLK ? inner - k0 : BLK);
            for (int k = 0; k < w; k++) { m[k] = xb[k0 + k]; s[k] = 0; }
            for (int64_t j = 1; j < n; j++) {
                const float *xr = xb + j * inner + k0;
                for (int k = 0; k < w; k++)
                    if (xr[k] > m[k]) m[k] = xr[k];
            }
            for (int64_t j = 0; j < n; j++) {
                const float *xr = xb + j * inner + k0;
                float *orow = ob + j * inner + k0;
                for (int k = 0; k < w; k++) {
                    float e = expf(xr[k] - m[k]);
                    if (!is_log) orow[k] = e;
                    s[k] += e;
                }
            }
            for (int k = 0; k < w; k++)
                sub[k] = is_log ? m[k] + (float)log(s[k]) : (float)(1.0 / s[k]);
            for (int64_t j = 0; j < n; j++) {
                const float *xr = xb + j * inner + k0;
                float *orow = ob + j * inner + k0;
                if (is_log) for (int k = 0; k < w; k++) orow[k] = xr[k] - sub[k];
                else     for (int k = 0; k < w; k++) orow[k] *= sub[k];
            }
        }
    }
}

static void cpu_softmax_grad(ct_tensor *gin, const ct_tensor *gout, const ct_tensor *ty,
                             int64_t outer, int64_t n, int64_t inner, bool is_log) {
    const float *g = cf(gout), *y = cf(ty);
    float *gi = mf(gin);
    if (n == 0 || outer == 0 || inner == 0) return;
    double acc[BLK];
    for (int64_t r = 0; r < outer; r++) {
        const float *gb = g + r * n * inner, *yb = y + r * n * inner;
        float *ib = gi + r * n * inner;
        for (int64_t k0 = 0; k0 < inner; k0 += BLK) {
            int w = (int)(inner - k0 < BLK ? inner - k0 : BLK);
            for (int k = 0; k < w; k++) acc[k] = 0;
            for (int64_t j = 0; j < n; j++) {
                const float *gr = gb + j * inner + k0, *yr = yb + j * inner + k0;
                if (is_log) for (int k = 0; k < w; k++) acc[k] += gr[k];
                else     for (int k = 0; k < w; k++) acc[k] += (double)gr[k] * yr[k];
            }
            for (int64_t j = 0; j < n; j++) {
                const float *gr = gb + j * inner + k0, *yr = yb + j * inner + k0;
                float *ir = ib + j * inner + k0;
                if (is_log) for (int k = 0; k < w; k++) ir[k] = gr[k] - expf(yr[k]) * (float)acc[k];
                else     for (int k = 0; k < w; k++) ir[k] = yr[k] * (gr[k] - (float)acc[k]);
            }
        }
    }
}

/* ---- max ---------------------------------------------------------------------------------- */
/* x beats the current best b: larger, or the first NaN */
static inline bool beats(float x, float b) { return x > b || (x != x && b == b); }

static void cpu_max(ct_tensor *values, ct_tensor *indices, const ct_tensor *a, int64_t outer,
                    int64_t n, int64_t inner) {
    const float *x = cf(a);
    float *v = values ? mf(values) : NULL;
    int64_t *ix = indices ? (int64_t *)ct_data(indices) : NULL;
    if (n == 0 || outer == 0 || inner == 0) return;
    float best[BLK];
    int64_t bi[BLK];
    for (int64_t r = 0; r < outer; r++) {
        const float *xb = x + r * n * inner;
        for (int64_t k0 = 0; k0 < inner; k0 += BLK) {
            int w = (int)(inner - k0 < BLK ? inner - k0 : BLK);
            for (int k = 0; k < w; k++) { best[k] = xb[k0 + k]; bi[k] = 0; }
            if (w == 1) {                              /* a contiguous row (inner == 1) */
                float b = best[0];
                int64_t at = 0;
                for (int64_t j = 1; j < n; j++)
                    if (beats(xb[j * inner + k0], b)) { b = xb[j * inner + k0]; at = j; }
                best[0] = b;
                bi[0] = at;
            } else {
                for (int64_t j = 1; j < n; j++) {
                    const float *xr = xb + j * inner + k0;
                    for (int k = 0; k < w; k++)
                        if (beats(xr[k], best[k])) { best[k] = xr[k]; bi[k] = j; }
                }
            }
            int64_t base = r * inner + k0;
            if (v) for (int k = 0; k < w; k++) v[base + k] = best[k];
            if (ix) for (int k = 0; k < w; k++) ix[base + k] = bi[k];
        }
    }
}

static void cpu_max_grad(ct_tensor *gin, const ct_tensor *gout, const ct_tensor *indices,
                         int64_t outer, int64_t n, int64_t inner) {
    float *gi = mf(gin);
    const float *g = cf(gout);
    const int64_t *ix = ci(indices);
    int64_t total = outer * n * inner;
    if (total == 0) return;
    memset(gi, 0, sizeof(float) * (size_t)total);
    for (int64_t r = 0; r < outer; r++)
        for (int64_t k = 0; k < inner; k++) {
            int64_t q = r * inner + k;
            gi[(r * n + ix[q]) * inner + k] = g[q];
        }
}

/* ---- index checks ------------------------------------------------------------------------- */
static int64_t cpu_check_indices(const ct_tensor *idx, int64_t hi, bool use_ignore,
                                 int64_t ignore, int64_t *count, int64_t *bad_value) {
    const int64_t *p = ci(idx);
    int64_t n = ct_numel(idx), c = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t v = p[i];
        if (use_ignore && v == ignore) continue;
        if (v >= 0 && v < hi) { c++; continue; }
        *count = c;
        *bad_value = v;
        return i;
    }
    *count = c;
    return -1;
}

/* ---- cross-entropy ------------------------------------------------------------------------ */
static void cpu_cross_entropy(ct_tensor *loss, ct_tensor *tlse, const ct_tensor *logits,
                              const ct_tensor *targets, int64_t N, int64_t C, int64_t ignore,
                              float inv_count) {
    const float *x = cf(logits);
    const int64_t *t = ci(targets);
    float *lse = mf(tlse);
    double acc = 0;
    for (int64_t i = 0; i < N; i++) {
        if (t[i] == ignore) { lse[i] = 0; continue; }
        const float *row = x + i * C;
        float m = row[0];
        for (int64_t j = 1; j < C; j++)
            if (row[j] > m) m = row[j];
        double s = 0;
        for (int64_t j = 0; j < C; j++) s += expf(row[j] - m);
        double l = (double)m + log(s);
        lse[i] = (float)l;
        acc += l - (double)row[t[i]];
    }
    *mf(loss) = (float)(acc * inv_count);
}

static void cpu_cross_entropy_grad(ct_tensor *gin, const ct_tensor *gout, const ct_tensor *logits,
                                   const ct_tensor *tlse, const ct_tensor *targets, int64_t N,
                                   int64_t C, int64_t ignore, float inv_count) {
    const float *x = cf(logits), *lse = cf(tlse);
    const int64_t *t = ci(targets);
    float *gi = mf(gin);
    float g = *cf(gout) * inv_count;
    for (int64_t i = 0; i < N; i++) {
        float *o = gi + i * C;
        if (t[i] == ignore) { memset(o, 0, sizeof(float) * (size_t)C); continue; }
        const float *row = x + i * C;
        float l = lse[i];
        for (int64_t j = 0; j < C; j++) o[j] = g * expf(row[j] - l);
        o[t[i]] -= g;
    }
}

/* ---- binary cross-entropy on logits ---------------------------------------------------------- */
static inline float bce1(float x, float y) {
    return fmaxf(x, 0.0f) - x * y + log1pf(expf(-fabsf(x)));
}
static inline float sigm(float x) {
    if (x >= 0) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

static void cpu_bce_with_logits(ct_tensor *out, const ct_tensor *tx, const ct_tensor *ty,
                                int64_t n, bool reduce, float scale) {
    const float *x = cf(tx), *y = cf(ty);
    float *o = mf(out);
    if (!reduce) {
        for (int64_t i = 0; i < n; i++) o[i] = bce1(x[i], y[i]);
        return;
    }
    double acc = 0;
    for (int64_t i = 0; i < n; i++) acc += bce1(x[i], y[i]);
    o[0] = (float)(acc * scale);
}

static void cpu_bce_with_logits_grad(ct_tensor *tgx, ct_tensor *tgy, const ct_tensor *gout,
                                     const ct_tensor *tx, const ct_tensor *ty, int64_t n,
                                     bool reduced, float scale) {
    const float *x = cf(tx), *y = cf(ty), *g = cf(gout);
    float *gx = tgx ? mf(tgx) : NULL, *gy = tgy ? mf(tgy) : NULL;
    float g0 = reduced ? g[0] * scale : 0.0f;
    for (int64_t i = 0; i < n; i++) {
        float gi = reduced ? g0 : g[i];
        if (gx) gx[i] = gi * (sigm(x[i]) - y[i]);
        if (gy) gy[i] = -gi * x[i];
    }
}

/* ---- embedding -------------------------------------------------------------------------- */
static void cpu_embedding(ct_tensor *out, const ct_tensor *weight, const ct_tensor *indices,
                          int64_t M, int64_t D) {
    const float *w = cf(weight);
    const int64_t *ix = ci(indices);
    float *o = mf(out);
    int64_t s0 = weight->stride[0], s1 = weight->stride[1];
    for (int64_t m = 0; m < M; m++) {
        const float *row = w + ix[m] * s0;
        float *orow = o + m * D;
        if (s1 == 1) memcpy(orow, row, sizeof(float) * (size_t)D);
        else for (int64_t d = 0; d < D; d++) orow[d] = row[d * s1];
    }
}

static void cpu_embedding_grad(ct_tensor *gw, const ct_tensor *gout, const ct_tensor *indices,
                               int64_t M, int64_t V, int64_t D) {
    float *w = mf(gw);
    const float *g = cf(gout);
    const int64_t *ix = ci(indices);
    if (V * D > 0) memset(w, 0, sizeof(float) * (size_t)(V * D));
    for (int64_t m = 0; m < M; m++) {
        float *row = w + ix[m] * D;
        const float *grow = g + m * D;
        for (int64_t d = 0; d < D; d++) row[d] += grow[d];
    }
}

const struct ct_kernels_nn ct_cpu_kernels_nn = {
    .softmax = cpu_softmax,
    .softmax_grad = cpu_softmax_grad,
    .max = cpu_max,
    .max_grad = cpu_max_grad,
    .check_indices = cpu_check_indices,
    .cross_entropy = cpu_cross_entropy,
    .cross_entropy_grad = cpu_cross_entropy_grad,
    .bce_with_logits = cpu_bce_with_logits,
    .bce_with_logits_grad = cpu_bce_with_logits_grad,
    .embedding = cpu_embedding,
    .embedding_grad = cpu_embedding_grad,
};
