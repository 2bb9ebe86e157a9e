/* engine/rng.c — xoshiro256** generators, serialisation, and random tensors. */
#include <math.h>
#include <string.h>

#include "engine/internal.h"
#include "engine/rng.h"

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void ct_rng_seed(ct_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    r->has_spare = 0;
    r->spare = 0.0f;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t ct_rng_u64(ct_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double ct_rng_uniform(ct_rng *r) { return (double)(ct_rng_u64(r) >> 11) * 0x1.0p-53; }

float ct_rng_normal(ct_rng *r) {
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u1, u2;
    do { u1 = ct_rng_uniform(r); } while (u1 <= 0.0);
    u2 = ct_rng_uniform(r);
    double rad = sqrt(-2.0 * log(u1)), th = 2.0 * M_PI * u2;
    r->spare = (float)(rad * sin(th));
    r->has_spare = 1;
    return (float)(rad * cos(th));
}

uint64_t ct_rng_below(ct_rng *r, uint64_t n) {
    if (n == 0) return 0;
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;   /* reject the biased tail */
    uint64_t x;
    do { x = ct_rng_u64(r); } while (x >= limit);
    return x % n;
}

ct_rng ct_rng_fork(const ct_rng *r, uint64_t key) {
    uint64_t x = r->s[0] ^ rotl(r->s[1], 13) ^ rotl(r->s[2], 29) ^ rotl(r->s[3], 47);
    x ^= splitmix64(&key);
    ct_rng out;
    ct_rng_seed(&out, x);
    return out;
}

static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint64_t get64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

void ct_rng_save(const ct_rng *r, uint8_t out[CT_RNG_STATE_BYTES]) {
    for (int i = 0; i < 4; i++) put64(out + 8 * i, r->s[i]);
    uint32_t bits;
    memcpy(&bits, &r->spare, 4);
    put64(out + 32, (uint64_t)(r->has_spare ? 1 : 0) | ((uint64_t)bits << 32));
}

ct_status ct_rng_load(ct_rng *r, const uint8_t *in, size_t n) {
    if (n != CT_RNG_STATE_BYTES) return CT_E_FORMAT;
    uint64_t s[4];
    for (int i = 0; i < 4; i++) s[i] = get64(in + 8 * i);
    if ((s[0] | s[1] | s[2] | s[3]) == 0) return CT_E_FORMAT;   /* xoshiro's forbidden state */
    uint64_t last = get64(in + 32);
    if ((last & 0xffffffffULL) > 1) return CT_E_FORMAT;
    memcpy(r->s, s, sizeof s);
    r->has_spare = (uint32_t)(last & 1);
    uint32_t bits = (uint32_t)(last >> 32);
    memcpy(&r->spare, &bits, 4);
    return CT_OK;
}

/* ---- random tensors (generated on the host, in order, so results match across devices) -- */
/* lo + (hi - lo) * u in double, rounded to float. Rounding can land on hi itself (u close to
 * 1, e.g. (float)(1 - 2^-53) == 1.0f), so results at hi step down to the float below it: the
 * interval stays half-open. */
static float uniform_f32(ct_rng *r, float lo, float hi) {
    float v = (float)((double)lo + ((double)hi - (double)lo) * ct_rng_uniform(r));
    return v < hi ? v : lo < hi ? nextafterf(hi, lo) : lo;
}

static ct_tensor *host_filled(ct_ctx *ctx, ct_rng *r, int kind, float lo, float hi, int ndim,
                              const int64_t *shape) {
    if (!r) {
        ct_fail(ctx, CT_E_ARG, "random tensor: the generator is NULL (seed one with ct_rng_seed)");
        return NULL;
    }
    ct_tensor *t = ct_empty(ctx, CT_F32, ndim, shape);
    if (!t) return NULL;
    float *d = ct_data_f32(t);
    int64_t n = ct_numel(t);
    for (int64_t i = 0; i < n; i++)
        d[i] = kind == 0 ? uniform_f32(r, lo, hi) : ct_rng_normal(r);
    return t;
}

ct_tensor *ct_rand(ct_ctx *ctx, ct_rng *r, int ndim, const int64_t *shape) {
    return host_filled(ctx, r, 0, 0.0f, 1.0f, ndim, shape);
}
ct_tensor *ct_randn(ct_ctx *ctx, ct_rng *r, int ndim, const int64_t *shape) {
    return host_filled(ctx, r, 1, 0.0f, 0.0f, ndim, shape);
}
ct_tensor *ct_uniform(ct_ctx *ctx, ct_rng *r, float lo, float hi, int ndim, const int64_t *shape) {
    if (!(lo <= hi)) {
        ct_fail(ctx, CT_E_ARG, "uniform: lo %g must not exceed hi %g", lo, hi);
        return NULL;
    }
    if (!isfinite(lo) || !isfinite(hi)) {
        ct_fail(ctx, CT_E_ARG, "uniform: the bounds must be finite, got [%g, %g)", lo, hi);
        return NULL;
    }
    return host_filled(ctx, r, 0, lo, hi, ndim, shape);
}

ct_tensor *ct_bernoulli(ct_rng *r, ct_tensor *p) {
    if (!p) return NULL;
    ct_ctx *ctx = p->ctx;
    if (!r) { ct_fail(ctx, CT_E_ARG, "bernoulli: the generator is NULL"); return NULL; }
    if (p->dtype != CT_F32 || p->storage->device.type != CT_CPU) {
        ct_fail(ctx, CT_E_DTYPE, "bernoulli: probabilities must be a float32 CPU tensor");
        return NULL;
    }
    ct_tensor *out = ct_empty(ctx, CT_F32, p->ndim, p->shape);
    if (!out) return NULL;
    int64_t n = ct_numel(p), idx[CT_MAX_DIMS] = {0};
    float *o = ct_data_f32(out);
    for (int64_t i = 0; i < n; i++) {
        int64_t k = i;
        for (int d = p->ndim - 1; d >= 0; d--) { idx[d] = k % p->shape[d]; k /= p->shape[d]; }
        double q = ct_get(p, idx);
        if (!(q >= 0.0 && q <= 1.0)) {
            ct_fail(ctx, CT_E_ARG, "bernoulli: probability %g at element %lld is outside [0, 1]", q,
                    (long long)i);
            return NULL;
        }
        o[i] = ct_rng_uniform(r) < q ? 1.0f : 0.0f;
    }
    return out;
}

ct_tensor *ct_multinomial(ct_rng *r, ct_tensor *probs, int64_t n, bool replacement) {
    if (!probs) return NULL;
    ct_ctx *ctx = probs->ctx;
    char s[96];
    if (!r) { ct_fail(ctx, CT_E_ARG, "multinomial: the generator is NULL"); return NULL; }
    if (probs->dtype != CT_F32 || probs->storage->device.type != CT_CPU ||
        probs->ndim < 1 || probs->ndim > 2) {
        ct_fail(ctx, CT_E_SHAPE, "multinomial: probs must be a float32 CPU tensor of shape [C] or "
                "[N, C], got %s %s", ct_dtype_name(probs->dtype), ct_shape_str(probs, s, sizeof s));
        return NULL;
    }
    int64_t rows = probs->ndim == 2 ? probs->shape[0] : 1, c = probs->shape[probs->ndim - 1];
    if (n < 0 || (!replacement && n > c)) {
        ct_fail(ctx, CT_E_ARG, "multinomial: %lld draws %s from %lld categories", (long long)n,
                replacement ? "with replacement" : "without replacement", (long long)c);
        return NULL;
    }
    int64_t oshape[2] = {rows, n};
    ct_tensor *out = probs->ndim == 2 ? ct_empty(ctx, CT_I64, 2, oshape) : ct_empty(ctx, CT_I64, 1, &n);
    if (!out) return NULL;
    ct_scope_begin(ctx);
    bool grad_was = ct_set_grad_enabled(ctx, false);   /* a scratch copy, not part of a graph */
    ct_tensor *pc = ct_contiguous(probs);
    ct_tensor *w = pc ? ct_clone(pc) : NULL;     /* mutable weights (zeroed when drawn) */
    ct_set_grad_enabled(ctx, grad_was);
    bool ok = w != NULL;
    int64_t *o = ct_data_i64(out);
    for (int64_t i = 0; ok && i < rows; i++) {
        float *p = ct_data_f32(w) + i * c;
        double total = 0;
        for (int64_t j = 0; j < c; j++) {
            if (!(p[j] >= 0.0f) || isinf(p[j])) {
                ct_fail(ctx, CT_E_ARG, "multinomial: row %lld has an invalid weight %g at %lld",
                        (long long)i, p[j], (long long)j);
                ok = false;
                break;
            }
            total += p[j];
        }
        for (int64_t k = 0; ok && k < n; k++) {
            if (!replacement && k > 0) {
                /* re-add what is left: subtracting drawn weights from a rounded sum can leave
                 * a positive total with no positive weight (or zero with some left) */
                total = 0;
                for (int64_t j = 0; j < c; j++) total += p[j];
            }
            if (total <= 0) {
                if (k == 0)
                    ct_fail(ctx, CT_E_ARG, "multinomial: row %lld has no positive weight (all %lld "
                            "are zero); give every row at least one", (long long)i, (long long)c);
                else
                    ct_fail(ctx, CT_E_ARG, "multinomial: row %lld has only %lld positive weights, "
                            "fewer than the %lld draws without replacement", (long long)i,
                            (long long)k, (long long)n);
                ok = false;
                break;
            }
            double u = ct_rng_uniform(r) * total, acc = 0;
            int64_t pick = -1;
            for (int64_t j = 0; j < c; j++) {
                if (p[j] <= 0) continue;
                pick = j;                          /* last positive, guards rounding */
                acc += p[j];
                if (u < acc) break;
            }
            o[i * n + k] = pick;
            if (!replacement) p[pick] = 0;
        }
    }
    ct_scope_end(ctx);
    return ok ? out : NULL;
}
