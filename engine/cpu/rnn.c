/* engine/cpu/rnn.c — host kernels of the fused recurrent layers (LSTM, GRU, Elman RNN).
 *
 * Every product goes to OpenBLAS (cblas_sgemm, or cblas_sgemv when a product has one row,
 * as in batch-1 sampling), transposes as flags. The element-wise gate math is one fused
 * pass per time step, written with GCC vector extensions (8 floats) and compiled twice,
 * for AVX2 + FMA (with contraction into FMAs allowed) and for the x86-64 baseline, picked
 * at run time. exp, sigmoid and tanh are branch-free polynomial versions (Cephes' expf and
 * tanhf, about 2 ulp) so they vectorise; NaN propagates. Nothing here allocates: the front
 * end (engine/rnn.c) hands in every buffer, and there are no threads besides OpenBLAS's own.
 *
 * Variable lengths: a row b is active at step t when t < lens[b]. An inactive row keeps its
 * state (h, c), gets a zero output and zero gate gradients, and passes its state gradient
 * through unchanged, which is PyTorch's packed-sequence behaviour.
 */
#define CT_RNN_KERNELS
#include <cblas.h>
#include <stdint.h>
#include <string.h>

#include "engine/rnn.h"

/* The vector helpers are macros (GNU statement expressions) rather than functions: a
 * function taking or returning a 32-byte vector draws GCC's ABI note in the baseline build,
 * even when always inlined. Names inside them carry a prefix of their own so that nesting
 * them never shadows anything. */
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
#define AI static inline __attribute__((always_inline))

#define VSET(x) ((v8f){(x), (x), (x), (x), (x), (x), (x), (x)})
/* n (1..8) floats from p, zeros above; LDZ: a NULL p gives zeros */
#define LD(p, n)                                                              \
    ({                                                                        \
        v8f ld_v = VSET(0.0f);                                                \
        memcpy(&ld_v, (p), (size_t)(n) * sizeof(float));                     \
        ld_v;                                                                 \
    })
#define LDZ(p, n)                                                             \
    ({                                                                        \
        const float *ldz_p = (p);                                             \
        ldz_p ? LD(ldz_p, n) : VSET(0.0f);                                    \
    })
#define ST(p, v, n)                                                           \
    do {                                                                      \
        v8f st_v = (v);                                                       \
        memcpy((p), &st_v, (size_t)(n) * sizeof(float));                      \
    } while (0)
/* m ? a : b, lane by lane (m from a comparison: all ones or all zeros) */
#define BLEND(m, a, b) ((v8f)(((m) & (v8i)(a)) | (~(m) & (v8i)(b))))

/* exp(x) for x clamped to [-87, 88] (NaN stays NaN): Cephes expf. */
#define VEXP(x_)                                                              \
    ({                                                                        \
        v8f ex_x = (x_);                                                      \
        ex_x = BLEND(ex_x < VSET(-87.0f), VSET(-87.0f), ex_x);                \
        ex_x = BLEND(ex_x > VSET(88.0f), VSET(88.0f), ex_x);                  \
        const v8f ex_magic = VSET(12582912.0f);  /* 1.5 * 2^23: rounds */     \
        v8f ex_t = ex_x * VSET(1.44269504088896341f) + ex_magic;              \
        v8f ex_n = ex_t - ex_magic;                                           \
        v8i ex_k = (v8i)ex_t - (v8i)ex_magic;                                 \
        v8f ex_r = ex_x - ex_n * VSET(0.693359375f);                          \
        ex_r = ex_r - ex_n * VSET(-2.12194440e-4f);                           \
        v8f ex_p = VSET(1.9875691500e-4f);                                    \
        ex_p = ex_p * ex_r + VSET(1.3981999507e-3f);                          \
        ex_p = ex_p * ex_r + VSET(8.3334519073e-3f);                          \
        ex_p = ex_p * ex_r + VSET(4.1665795894e-2f);                          \
        ex_p = ex_p * ex_r + VSET(1.6666665459e-1f);                          \
        ex_p = ex_p * ex_r + VSET(5.0000001201e-1f);                          \
        ex_p = ex_p * (ex_r * ex_r) + ex_r + VSET(1.0f);                      \
        ex_p * (v8f)((ex_k + 127) << 23);                                     \
    })
#define VSIGMOID(x_) (VSET(1.0f) / (VSET(1.0f) + VEXP(-(x_))))
/* Cephes tanhf: a polynomial below 0.625, 1 - 2 / (exp(2|x|) + 1) above. */
#define VTANH(x_)                                                             \
    ({                                                                        \
        v8f th_x = (x_);                                                      \
        v8i th_sign = (v8i)th_x & INT32_MIN;                                  \
        v8f th_ax = (v8f)((v8i)th_x & INT32_MAX);                             \
        v8f th_s = th_x * th_x;                                               \
        v8f th_p = VSET(-5.70498872745e-3f);                                  \
        th_p = th_p * th_s + VSET(2.06390887954e-2f);                         \
        th_p = th_p * th_s + VSET(-5.37397155531e-2f);                        \
        th_p = th_p * th_s + VSET(1.33314422036e-1f);                         \
        th_p = th_p * th_s + VSET(-3.33332819422e-1f);                        \
        v8f th_small = th_p * th_s * th_x + th_x;                             \
        v8f th_big = VSET(1.0f) - VSET(2.0f) / (VEXP(th_ax + th_ax) + VSET(1.0f)); \
        th_big = (v8f)((v8i)th_big | th_sign);                                \
        BLEND(th_ax < VSET(0.625f), th_small, th_big);                        \
    })
#define VRELU(x_)                                                             \
    ({                                                                        \
        v8f re_x = (x_);                                                      \
        BLEND(re_x < VSET(0.0f), VSET(0.0f), re_x);                           \
    })

static int n_gates(ct_rnn_mode mode) { return mode == CT_LSTM ? 4 : mode == CT_GRU ? 3 : 1; }
static bool active(const int64_t *lens, int64_t b, int64_t t) { return !lens || lens[b] > t; }

/* ---- run-time dispatch: AVX2 + FMA where the CPU has them, the x86-64 baseline elsewhere ---
 * (-std=c11 turns off FMA contraction; the AVX2 clones turn it back on for themselves) */
#if defined(__x86_64__) || defined(__i386__)
static bool have_avx2(void) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#define TARGET_AVX2 __attribute__((target("avx2,fma"), optimize("fp-contract=fast")))
#else
static bool have_avx2(void) { return false; }
#define TARGET_AVX2
#endif

#define DISPATCH(name, params, args)                                      \
    TARGET_AVX2 static void name##_avx2 params { name##_body args; }      \
    static void name##_base params { name##_body args; }                  \
    static void name params {                                             \
        if (have_avx2()) name##_avx2 args;                                \
        else name##_base args;                                            \
    }

/* ---- products ------------------------------------------------------------------------------
 * Everything with more than one row goes to cblas_sgemm. A one-row product (batch-1 steps)
 * is a matrix-vector product bound by memory bandwidth; OpenBLAS runs every sgemv above ~9K
 * elements on all its threads, which on a 2-core machine is slower than one thread for these
 * sizes (1024 x 256: 22 us on 2 threads, 17 us on 1) and sgemm with one row is 4-5x slower
 * still, so those go to the two loops below (one thread, AVX2 + FMA where available). */
#define HSUM(v) ((v)[0] + (v)[1] + (v)[2] + (v)[3] + (v)[4] + (v)[5] + (v)[6] + (v)[7])

/* y[r] = alpha W[r, c] x + beta y (y is not read when beta == 0) */
AI void gemv_n_body(int64_t r, int64_t c, float alpha, const float *W, int64_t ldw,
                    const float *x, float beta, float *y) {
    int64_t i = 0;
    for (; i + 4 <= r; i += 4) {
        const float *w0 = W + i * ldw, *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
        v8f a0 = VSET(0.0f), a1 = a0, a2 = a0, a3 = a0;
        int64_t j = 0;
        for (; j + 8 <= c; j += 8) {
            v8f xv = LD(x + j, 8);
            a0 += LD(w0 + j, 8) * xv;
            a1 += LD(w1 + j, 8) * xv;
            a2 += LD(w2 + j, 8) * xv;
            a3 += LD(w3 + j, 8) * xv;
        }
        if (j < c) {
            int t = (int)(c - j);
            v8f xv = LD(x + j, t);
            a0 += LD(w0 + j, t) * xv;
            a1 += LD(w1 + j, t) * xv;
            a2 += LD(w2 + j, t) * xv;
            a3 += LD(w3 + j, t) * xv;
        }
        float d[4] = {HSUM(a0), HSUM(a1), HSUM(a2), HSUM(a3)};
        for (int q = 0; q < 4; q++)
            y[i + q] = alpha * d[q] + (beta == 0.0f ? 0.0f : beta * y[i + q]);
    }
    for (; i < r; i++) {
        const float *w = W + i * ldw;
        v8f a = VSET(0.0f);
        int64_t j = 0;
        for (; j + 8 <= c; j += 8) a += LD(w + j, 8) * LD(x + j, 8);
        if (j < c) a += LD(w + j, (int)(c - j)) * LD(x + j, (int)(c - j));
        y[i] = alpha * HSUM(a) + (beta == 0.0f ? 0.0f : beta * y[i]);
    }
}

/* y[c] = alpha W[r, c]^T g + beta y (y is not read when beta == 0): W is streamed row by row
 * (four at a time) into y, which stays in the L1 cache */
AI void gemv_t_body(int64_t r, int64_t c, float alpha, const float *W, int64_t ldw,
                    const float *g, float beta, float *y) {
    if (beta == 0.0f) memset(y, 0, sizeof(float) * (size_t)c);
    else if (beta != 1.0f)
        for (int64_t j = 0; j < c; j++) y[j] *= beta;
    int64_t i = 0;
    for (; i + 4 <= r; i += 4) {
        const float *w0 = W + i * ldw, *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
        v8f g0 = VSET(alpha * g[i]), g1 = VSET(alpha * g[i + 1]);
        v8f g2 = VSET(alpha * g[i + 2]), g3 = VSET(alpha * g[i + 3]);
        int64_t j = 0;
        for (; j + 8 <= c; j += 8)
            ST(y + j, LD(y + j, 8) + g0 * LD(w0 + j, 8) + g1 * LD(w1 + j, 8) +
                          g2 * LD(w2 + j, 8) + g3 * LD(w3 + j, 8), 8);
        if (j < c) {
            int t = (int)(c - j);
            ST(y + j, LD(y + j, t) + g0 * LD(w0 + j, t) + g1 * LD(w1 + j, t) +
                          g2 * LD(w2 + j, t) + g3 * LD(w3 + j, t), t);
        }
    }
    for (; i < r; i++) {
        const float *w = W + i * ldw;
        v8f gi = VSET(alpha * g[i]);
        int64_t j = 0;
        for (; j + 8 <= c; j += 8) ST(y + j, LD(y + j, 8) + gi * LD(w + j, 8), 8);
        if (j < c) ST(y + j, LD(y + j, (int)(c - j)) + gi * LD(w + j, (int)(c - j)), (int)(c - j));
    }
}

DISPATCH(gemv_n, (int64_t r, int64_t c, float alpha, const float *W, int64_t ldw, const float *x,
                  float beta, float *y),
         (r, c, alpha, W, ldw, x, beta, y))
DISPATCH(gemv_t, (int64_t r, int64_t c, float alpha, const float *W, int64_t ldw, const float *g,
                  float beta, float *y),
         (r, c, alpha, W, ldw, g, beta, y))

/* Row-major C[m,n] = alpha op(A)[m,k] op(B)[k,n] + beta C. */
static void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *A,
                 int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (m <= 0 || n <= 0) return;
    if (m == 1 && !ta) {
        /* y[n] = alpha op(B)^T a + beta y, a = A's only row */
        if (tb) gemv_n(n, k, alpha, B, ldb, A, beta, C);
        else gemv_t(k, n, alpha, B, ldb, A, beta, C);
        return;
    }
    if (m == 1) {
        /* a is a column of A (stride lda); only for one-gate one-unit layers */
        if (beta == 0.0f) memset(C, 0, sizeof(float) * (size_t)n);
        int inc = ta ? (int)lda : 1;
        if (tb) cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)k, alpha, B, (int)ldb, A,
                            inc, beta, C, 1);
        else cblas_sgemv(CblasRowMajor, CblasTrans, (int)k, (int)n, alpha, B, (int)ldb, A, inc,
                         beta, C, 1);
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (int)m, (int)n, (int)k, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

/* db[n] = sum over the m rows of D[m, n] (ones: m floats of scratch). */
static void colsum(int64_t m, int64_t n, const float *D, float *ones, float *db) {
    for (int64_t i = 0; i < m; i++) ones[i] = 1.0f;
    memset(db, 0, sizeof(float) * (size_t)n);
    cblas_sgemv(CblasRowMajor, CblasTrans, (int)m, (int)n, 1.0f, D, (int)n, ones, 1, 1.0f, db, 1);
}

/* The biases the gate kernels add, (G+1)*H floats: LSTM/RNN b_ih + b_hh; GRU
 * [b_ir + b_hr, b_iz + b_hz, b_in, b_hn] (b_hn sits inside r * (...)). */
static void combine_bias(ct_rnn_mode mode, int64_t H, const float *bi, const float *bh, float *out) {
    int64_t GH = n_gates(mode) * H;
    if (!bi) { memset(out, 0, sizeof(float) * (size_t)(GH + H)); return; }
    if (mode == CT_GRU) {
        for (int64_t j = 0; j < 2 * H; j++) out[j] = bi[j] + bh[j];
        memcpy(out + 2 * H, bi + 2 * H, sizeof(float) * (size_t)H);
        memcpy(out + 3 * H, bh + 2 * H, sizeof(float) * (size_t)H);
    } else {
        for (int64_t j = 0; j < GH; j++) out[j] = bi[j] + bh[j];
        memset(out + GH, 0, sizeof(float) * (size_t)H);
    }
}

/* ---- forward gate kernels (one time step, all rows) ---------------------------------------- */
/* g [B, 4H]: pre-activations without bias in, activations out (when keep). cp: c_{t-1}
 * [B, H] or NULL (zeros); c, h: [B, H] out; hs: the h state [B, H] (active rows) or NULL. */
AI void lstm_fw_chunk(int n, int64_t H, float *g, const float *bias, const float *cp, float *c,
                      float *h, float *hs, bool keep) {
    v8f i = VSIGMOID(LD(g, n) + LD(bias, n));
    v8f f = VSIGMOID(LD(g + H, n) + LD(bias + H, n));
    v8f gg = VTANH(LD(g + 2 * H, n) + LD(bias + 2 * H, n));
    v8f o = VSIGMOID(LD(g + 3 * H, n) + LD(bias + 3 * H, n));
    v8f cv = f * LDZ(cp, n) + i * gg;
    v8f hv = o * VTANH(cv);
    if (keep) {
        ST(g, i, n);
        ST(g + H, f, n);
        ST(g + 2 * H, gg, n);
        ST(g + 3 * H, o, n);
    }
    ST(c, cv, n);
    ST(h, hv, n);
    if (hs) ST(hs, hv, n);
}
AI void lstm_fw_body(int64_t B, int64_t H, float *g, const float *bias, const float *cp, float *c,
                     float *h, float *hs, const int64_t *lens, int64_t t, bool keep) {
    for (int64_t b = 0; b < B; b++) {
        float *gb = g + b * 4 * H, *cb = c + b * H, *hb = h + b * H, *hsb = hs ? hs + b * H : NULL;
        const float *cpb = cp ? cp + b * H : NULL;
        if (!active(lens, b, t)) {
            if (cpb) memmove(cb, cpb, sizeof(float) * (size_t)H);
            else memset(cb, 0, sizeof(float) * (size_t)H);
            memset(hb, 0, sizeof(float) * (size_t)H);
            continue;
        }
        int64_t j = 0;
        for (; j + 8 <= H; j += 8)
            lstm_fw_chunk(8, H, gb + j, bias + j, cpb ? cpb + j : NULL, cb + j, hb + j,
                          hsb ? hsb + j : NULL, keep);
        if (j < H)
            lstm_fw_chunk((int)(H - j), H, gb + j, bias + j, cpb ? cpb + j : NULL, cb + j, hb + j,
                          hsb ? hsb + j : NULL, keep);
    }
}

/* g [B, 3H]: x-projection without bias in, r z n out (when keep); gh [B, 3H]: h Whh^T without
 * bias, or NULL (h = 0); hp: h_{t-1} or NULL; hn: Whn h + bhn out [B, H] (or NULL). */
AI void gru_fw_chunk(int n, int64_t H, float *g, const float *gh, const float *bias,
                     const float *hp, float *hn, float *h, float *hs, bool keep) {
    v8f r = VSIGMOID(LD(g, n) + LDZ(gh, n) + LD(bias, n));
    v8f z = VSIGMOID(LD(g + H, n) + LDZ(gh ? gh + H : NULL, n) + LD(bias + H, n));
    v8f hnv = LDZ(gh ? gh + 2 * H : NULL, n) + LD(bias + 3 * H, n);
    v8f nv = VTANH(LD(g + 2 * H, n) + LD(bias + 2 * H, n) + r * hnv);
    v8f hv = nv + z * (LDZ(hp, n) - nv);
    if (keep) {
        ST(g, r, n);
        ST(g + H, z, n);
        ST(g + 2 * H, nv, n);
        if (hn) ST(hn, hnv, n);
    }
    ST(h, hv, n);
    if (hs) ST(hs, hv, n);
}
AI void gru_fw_body(int64_t B, int64_t H, float *g, const float *gh, const float *bias,
                    const float *hp, float *hn, float *h, float *hs, const int64_t *lens,
                    int64_t t, bool keep) {
    for (int64_t b = 0; b < B; b++) {
        float *gb = g + b * 3 * H, *hb = h + b * H;
        if (!active(lens, b, t)) { memset(hb, 0, sizeof(float) * (size_t)H); continue; }
        const float *ghb = gh ? gh + b * 3 * H : NULL, *hpb = hp ? hp + b * H : NULL;
        float *hnb = hn ? hn + b * H : NULL, *hsb = hs ? hs + b * H : NULL;
        int64_t j = 0;
        for (; j + 8 <= H; j += 8)
            gru_fw_chunk(8, H, gb + j, ghb ? ghb + j : NULL, bias + j, hpb ? hpb + j : NULL,
                         hnb ? hnb + j : NULL, hb + j, hsb ? hsb + j : NULL, keep);
        if (j < H)
            gru_fw_chunk((int)(H - j), H, gb + j, ghb ? ghb + j : NULL, bias + j,
                         hpb ? hpb + j : NULL, hnb ? hnb + j : NULL, hb + j,
                         hsb ? hsb + j : NULL, keep);
    }
}

/* g [B, H]: pre-activation without bias in, h out (when keep). */
AI void rnn_fw_chunk(int n, float *g, const float *bias, float *h, float *hs, bool relu, bool keep) {
    v8f p = LD(g, n) + LD(bias, n);
    v8f hv = relu ? VRELU(p) : VTANH(p);
    if (keep) ST(g, hv, n);
    ST(h, hv, n);
    if (hs) ST(hs, hv, n);
}
AI void rnn_fw_body(int64_t B, int64_t H, float *g, const float *bias, float *h, float *hs,
                    const int64_t *lens, int64_t t, bool relu, bool keep) {
    for (int64_t b = 0; b < B; b++) {
        float *gb = g + b * H, *hb = h + b * H, *hsb = hs ? hs + b * H : NULL;
        if (!active(lens, b, t)) { memset(hb, 0, sizeof(float) * (size_t)H); continue; }
        int64_t j = 0;
        for (; j + 8 <= H; j += 8)
            rnn_fw_chunk(8, gb + j, bias + j, hb + j, hsb ? hsb + j : NULL, relu, keep);
        if (j < H)
            rnn_fw_chunk((int)(H - j), gb + j, bias + j, hb + j, hsb ? hsb + j : NULL, relu, keep);
    }
}

/* ---- backward gate kernels ------------------------------------------------------------------
 * dh [B, H]: in, the gradient reaching h_t from later steps (and h_n); out: the part that
 * does not go through W_hh (LSTM/RNN: 0 for active rows when zero_dh, GRU: dh * z).
 * go: the gradient of out_t or NULL. dg: the gate gradients [B, G*H] (zero rows when
 * inactive). */
AI void lstm_bw_chunk(int n, int64_t H, const float *g, const float *c, const float *cp,
                      const float *go, float *dh, float *dc, float *dg, bool zero_dh) {
    v8f i = LD(g, n), f = LD(g + H, n), gg = LD(g + 2 * H, n), o = LD(g + 3 * H, n);
    v8f tc = VTANH(LD(c, n));
    v8f d = LD(dh, n) + LDZ(go, n);
    v8f one = VSET(1.0f);
    v8f dcv = LD(dc, n) + d * o * (one - tc * tc);
    ST(dg, dcv * gg * i * (one - i), n);
    ST(dg + H, dcv * LDZ(cp, n) * f * (one - f), n);
    ST(dg + 2 * H, dcv * i * (one - gg * gg), n);
    ST(dg + 3 * H, d * tc * o * (one - o), n);
    ST(dc, dcv * f, n);
    if (zero_dh) ST(dh, VSET(0.0f), n);
}
AI void lstm_bw_body(int64_t B, int64_t H, const float *g, const float *c, const float *cp,
                     const float *go, float *dh, float *dc, float *dg, const int64_t *lens,
                     int64_t t, bool zero_dh) {
    for (int64_t b = 0; b < B; b++) {
        float *dgb = dg + b * 4 * H;
        if (!active(lens, b, t)) { memset(dgb, 0, sizeof(float) * (size_t)(4 * H)); continue; }
        const float *gb = g + b * 4 * H, *cb = c + b * H, *cpb = cp ? cp + b * H : NULL;
        const float *gob = go ? go + b * H : NULL;
        float *dhb = dh + b * H, *dcb = dc + b * H;
        int64_t j = 0;
        for (; j + 8 <= H; j += 8)
            lstm_bw_chunk(8, H, gb + j, cb + j, cpb ? cpb + j : NULL, gob ? gob + j : NULL,
                          dhb + j, dcb + j, dgb + j, zero_dh);
        if (j < H)
            lstm_bw_chunk((int)(H - j), H, gb + j, cb + j, cpb ? cpb + j : NULL,
                          gob ? gob + j : NULL, dhb + j, dcb + j, dgb + j, zero_dh);
    }
}

/* GRU: dgi [B, 3H] (input side) and dgh [B, 3H] (recurrent side) differ in the n block. */
AI void gru_bw_chunk(int n, int64_t H, const float *g, const float *hn, const float *hp,
                     const float *go, float *dh, float *dgi, float *dgh) {
    v8f r = LD(g, n), z = LD(g + H, n), nv = LD(g + 2 * H, n), hnv = LD(hn, n);
    v8f one = VSET(1.0f);
    v8f d = LD(dh, n) + LDZ(go, n);
    v8f dn = d * (one - z);
    v8f dz = d * (LDZ(hp, n) - nv);
    ST(dh, d * z, n);
    v8f dnp = dn * (one - nv * nv);
    v8f drp = dnp * hnv * r * (one - r);
    v8f dzp = dz * z * (one - z);
    ST(dgi, drp, n);
    ST(dgi + H, dzp, n);
    ST(dgi + 2 * H, dnp, n);
    ST(dgh, drp, n);
    ST(dgh + H, dzp, n);
    ST(dgh + 2 * H, dnp * r, n);
}
AI void gru_bw_body(int64_t B, int64_t H, const float *g, const float *hn, const float *hp,
                    const float *go, float *dh, float *dgi, float *dgh, const int64_t *lens,
                    int64_t t) {
    for (int64_t b = 0; b < B; b++) {
        float *dgib = dgi + b * 3 * H, *dghb = dgh + b * 3 * H;
        if (!active(lens, b, t)) {
            memset(dgib, 0, sizeof(float) * (size_t)(3 * H));
            memset(dghb, 0, sizeof(float) * (size_t)(3 * H));
            continue;
        }
        const float *gb = g + b * 3 * H, *hnb = hn + b * H, *hpb = hp ? hp + b * H : NULL;
        const float *gob = go ? go + b * H : NULL;
        float *dhb = dh + b * H;
        int64_t j = 0;
        for (; j + 8 <= H; j += 8)
            gru_bw_chunk(8, H, gb + j, hnb + j, hpb ? hpb + j : NULL, gob ? gob + j : NULL,
                         dhb + j, dgib + j, dghb + j);
        if (j < H)
            gru_bw_chunk((int)(H - j), H, gb + j, hnb + j, hpb ? hpb + j : NULL,
                         gob ? gob + j : NULL, dhb + j, dgib + j, dghb + j);
    }
}

AI void rnn_bw_chunk(int n, const float *h, const float *go, float *dh, float *dg, bool relu,
                     bool zero_dh) {
    v8f hv = LD(h, n);
    v8f d = LD(dh, n) + LDZ(go, n);
    v8f dp = relu ? BLEND(hv > VSET(0.0f), d, VSET(0.0f)) : d * (VSET(1.0f) - hv * hv);
    ST(dg, dp, n);
    if (zero_dh) ST(dh, VSET(0.0f), n);
}
AI void rnn_bw_body(int64_t B, int64_t H, const float *h, const float *go, float *dh, float *dg,
                    const int64_t *lens, int64_t t, bool relu, bool zero_dh) {
    for (int64_t b = 0; b < B; b++) {
        float *dgb = dg + b * H;
        if (!active(lens, b, t)) { memset(dgb, 0, sizeof(float) * (size_t)H); continue; }
        const float *hb = h + b * H, *gob = go ? go + b * H : NULL;
        float *dhb = dh + b * H;
        int64_t j = 0;
        for (; j + 8 <= H; j += 8)
            rnn_bw_chunk(8, hb + j, gob ? gob + j : NULL, dhb + j, dgb + j, relu, zero_dh);
        if (j < H)
            rnn_bw_chunk((int)(H - j), hb + j, gob ? gob + j : NULL, dhb + j, dgb + j, relu,
                         zero_dh);
    }
}

DISPATCH(lstm_fw, (int64_t B, int64_t H, float *g, const float *bias, const float *cp, float *c,
                   float *h, float *hs, const int64_t *lens, int64_t t, bool keep),
         (B, H, g, bias, cp, c, h, hs, lens, t, keep))
DISPATCH(gru_fw, (int64_t B, int64_t H, float *g, const float *gh, const float *bias,
                  const float *hp, float *hn, float *h, float *hs, const int64_t *lens, int64_t t,
                  bool keep),
         (B, H, g, gh, bias, hp, hn, h, hs, lens, t, keep))
DISPATCH(rnn_fw, (int64_t B, int64_t H, float *g, const float *bias, float *h, float *hs,
                  const int64_t *lens, int64_t t, bool relu, bool keep),
         (B, H, g, bias, h, hs, lens, t, relu, keep))
DISPATCH(lstm_bw, (int64_t B, int64_t H, const float *g, const float *c, const float *cp,
                   const float *go, float *dh, float *dc, float *dg, const int64_t *lens,
                   int64_t t, bool zero_dh),
         (B, H, g, c, cp, go, dh, dc, dg, lens, t, zero_dh))
DISPATCH(gru_bw, (int64_t B, int64_t H, const float *g, const float *hn, const float *hp,
                  const float *go, float *dh, float *dgi, float *dgh, const int64_t *lens,
                  int64_t t),
         (B, H, g, hn, hp, go, dh, dgi, dgh, lens, t))
DISPATCH(rnn_bw, (int64_t B, int64_t H, const float *h, const float *go, float *dh, float *dg,
                  const int64_t *lens, int64_t t, bool relu, bool zero_dh),
         (B, H, h, go, dh, dg, lens, t, relu, zero_dh))

/* ---- the layer over a whole sequence -------------------------------------------------------- */
/* work: combined bias (G+1)*H, h state B*H, GRU recurrent product B*3H */
static int64_t fwd_work_floats(ct_rnn_mode mode, int64_t T, int64_t B, int64_t H) {
    (void)T;
    return (n_gates(mode) + 1) * H + B * H + (mode == CT_GRU ? 3 * B * H : 0);
}

static void cpu_forward(const ct_rnn_fwd_args *a) {
    const ct_rnn_mode mode = a->mode;
    const int64_t T = a->T, B = a->B, NI = a->n_in, H = a->H, GH = n_gates(mode) * H, BH = B * H;
    const bool relu = mode == CT_RNN_RELU, masked = a->lens != NULL;
    float *bias = a->work, *hs = bias + GH + H, *gh = hs + BH;
    combine_bias(mode, H, a->b_ih, a->b_hh, bias);
    if (a->tokens) {
        /* the input projection of every table row, gathered to the positions */
        gemm(false, true, a->V, GH, NI, 1.0f, a->x, NI, a->w_ih, NI, 0.0f, a->table, GH);
        for (int64_t r = 0; r < T * B; r++) {
            float *g = a->gates + r * GH;
            if (active(a->lens, r % B, r / B))
                memcpy(g, a->table + a->tokens[r] * GH, sizeof(float) * (size_t)GH);
            else memset(g, 0, sizeof(float) * (size_t)GH);
        }
    } else {
        /* the input projection of every step at once */
        gemm(false, true, T * B, GH, NI, 1.0f, a->x, NI, a->w_ih, NI, 0.0f, a->gates, GH);
    }
    if (masked) {
        if (a->h0) memcpy(hs, a->h0, sizeof(float) * (size_t)BH);
        else memset(hs, 0, sizeof(float) * (size_t)BH);
    }
    for (int64_t t = 0; t < T; t++) {
        float *g = a->gates + t * B * GH, *ot = a->out + t * BH;
        const float *hp = t == 0 ? a->h0 : masked ? hs : a->out + (t - 1) * BH;
        switch (mode) {
        case CT_LSTM: {
            if (hp) gemm(false, true, B, GH, H, 1.0f, hp, H, a->w_hh, H, 1.0f, g, GH);
            const float *cp = t == 0 ? a->c0 : a->aux + (t - 1) * BH;
            lstm_fw(B, H, g, bias, cp, a->aux + t * BH, ot, masked ? hs : NULL, a->lens, t, true);
            break;
        }
        case CT_GRU:
            if (hp) gemm(false, true, B, GH, H, 1.0f, hp, H, a->w_hh, H, 0.0f, gh, GH);
            gru_fw(B, H, g, hp ? gh : NULL, bias, hp, a->aux + t * BH, ot, masked ? hs : NULL,
                   a->lens, t, true);
            break;
        default:
            if (hp) gemm(false, true, B, GH, H, 1.0f, hp, H, a->w_hh, H, 1.0f, g, GH);
            rnn_fw(B, H, g, bias, ot, masked ? hs : NULL, a->lens, t, relu, true);
            break;
        }
    }
    if (a->h_n) memcpy(a->h_n, masked ? hs : a->out + (T - 1) * BH, sizeof(float) * (size_t)BH);
    if (a->c_n && mode == CT_LSTM)
        memcpy(a->c_n, a->aux + (T - 1) * BH, sizeof(float) * (size_t)BH);
}

/* work: dG [T*B, GH] (GRU: also the recurrent side), dh, dc [B, H], ones [T*B] */
static int64_t bwd_work_floats(ct_rnn_mode mode, int64_t T, int64_t B, int64_t H) {
    int64_t GH = n_gates(mode) * H;
    return T * B * GH * (mode == CT_GRU ? 2 : 1) + 2 * B * H + T * B;
}

static void cpu_backward(const ct_rnn_bwd_args *a) {
    const ct_rnn_mode mode = a->mode;
    const int64_t T = a->T, B = a->B, NI = a->n_in, H = a->H, GH = n_gates(mode) * H, BH = B * H;
    const int64_t TB = T * B;
    const bool relu = mode == CT_RNN_RELU, masked = a->lens != NULL;
    float *dgi = a->work, *dgh = mode == CT_GRU ? dgi + TB * GH : dgi;
    float *dh = dgi + TB * GH * (mode == CT_GRU ? 2 : 1), *dc = dh + BH, *ones = dc + BH;
    if (a->g_hn) memcpy(dh, a->g_hn, sizeof(float) * (size_t)BH);
    else memset(dh, 0, sizeof(float) * (size_t)BH);
    if (a->g_cn && mode == CT_LSTM) memcpy(dc, a->g_cn, sizeof(float) * (size_t)BH);
    else memset(dc, 0, sizeof(float) * (size_t)BH);
    /* the recurrence, backwards: gate gradients per step, dh through W_hh */
    for (int64_t t = T - 1; t >= 0; t--) {
        const float *g = a->gates + t * B * GH, *go = a->g_out ? a->g_out + t * BH : NULL;
        float *dgit = dgi + t * B * GH, *dght = dgh + t * B * GH;
        bool need_dh = t > 0 || a->dh0;
        switch (mode) {
        case CT_LSTM: {
            const float *cp = t == 0 ? a->c0 : a->aux + (t - 1) * BH;
            lstm_bw(B, H, g, a->aux + t * BH, cp, go, dh, dc, dgit, a->lens, t, masked);
            if (need_dh) gemm(false, false, B, H, GH, 1.0f, dgit, GH, a->w_hh, H,
                              masked ? 1.0f : 0.0f, dh, H);
            break;
        }
        case CT_GRU: {
            const float *hp = t == 0 ? a->h0 : a->out + (t - 1) * BH;
            gru_bw(B, H, g, a->aux + t * BH, hp, go, dh, dgit, dght, a->lens, t);
            if (need_dh) gemm(false, false, B, H, GH, 1.0f, dght, GH, a->w_hh, H, 1.0f, dh, H);
            break;
        }
        default:
            rnn_bw(B, H, a->out + t * BH, go, dh, dgit, a->lens, t, relu, masked);
            if (need_dh) gemm(false, false, B, H, GH, 1.0f, dgit, GH, a->w_hh, H,
                              masked ? 1.0f : 0.0f, dh, H);
            break;
        }
    }
    if (a->dh0) memcpy(a->dh0, dh, sizeof(float) * (size_t)BH);
    if (a->dc0) memcpy(a->dc0, dc, sizeof(float) * (size_t)BH);
    /* everything else in large products over all steps */
    if (a->tokens) {
        /* the input side per table row: sum the gate gradients of each token's positions */
        memset(a->table, 0, sizeof(float) * (size_t)(a->V * GH));
        for (int64_t r = 0; r < TB; r++)
            if (active(a->lens, r % B, r / B))
                cblas_saxpy((int)GH, 1.0f, dgi + r * GH, 1, a->table + a->tokens[r] * GH, 1);
        if (a->dx) gemm(false, false, a->V, NI, GH, 1.0f, a->table, GH, a->w_ih, NI, 0.0f, a->dx,
                        NI);
        if (a->dw_ih) gemm(true, false, GH, NI, a->V, 1.0f, a->table, GH, a->x, NI, 0.0f,
                           a->dw_ih, NI);
    } else {
        if (a->dx) gemm(false, false, TB, NI, GH, 1.0f, dgi, GH, a->w_ih, NI, 0.0f, a->dx, NI);
        if (a->dw_ih) gemm(true, false, GH, NI, TB, 1.0f, dgi, GH, a->x, NI, 0.0f, a->dw_ih, NI);
    }
    if (a->dw_hh) {
        /* H_prev = [h0; out[0 .. T-2]]; rows of inactive steps have zero dG */
        if (T > 1) gemm(true, false, GH, H, (T - 1) * B, 1.0f, dgh + B * GH, GH, a->out, H, 0.0f,
                        a->dw_hh, H);
        else memset(a->dw_hh, 0, sizeof(float) * (size_t)(GH * H));
        if (a->h0) gemm(true, false, GH, H, B, 1.0f, dgh, GH, a->h0, H, 1.0f, a->dw_hh, H);
    }
    if (a->db_ih) colsum(TB, GH, dgi, ones, a->db_ih);
    if (a->db_hh) colsum(TB, GH, dgh, ones, a->db_hh);
}

/* ---- one step of every layer (sampling) ------------------------------------------------------- */
/* work: combined bias (G+1)*H, gates B*GH, GRU recurrent product B*GH */
static int64_t step_work_floats(ct_rnn_mode mode, int64_t B, int64_t H) {
    int64_t GH = n_gates(mode) * H;
    return GH + H + 2 * B * GH;
}

static void cpu_step(const ct_rnn_step_args *a) {
    const ct_rnn_mode mode = a->mode;
    const int64_t B = a->B, H = a->H, GH = n_gates(mode) * H, BH = B * H;
    float *bias = a->work, *g = bias + GH + H, *gh = g + B * GH;
    const float *xin = a->x;
    int64_t in = a->n_in;
    for (int l = 0; l < a->L; l++) {
        float *h = a->h + l * BH, *c = a->c ? a->c + l * BH : NULL;
        combine_bias(mode, H, a->b_ih ? a->b_ih[l] : NULL, a->b_hh ? a->b_hh[l] : NULL, bias);
        gemm(false, true, B, GH, in, 1.0f, xin, in, a->w_ih[l], in, 0.0f, g, GH);
        switch (mode) {
        case CT_LSTM:
            gemm(false, true, B, GH, H, 1.0f, h, H, a->w_hh[l], H, 1.0f, g, GH);
            lstm_fw(B, H, g, bias, c, c, h, NULL, NULL, 0, false);
            break;
        case CT_GRU:
            gemm(false, true, B, GH, H, 1.0f, h, H, a->w_hh[l], H, 0.0f, gh, GH);
            gru_fw(B, H, g, gh, bias, h, NULL, h, NULL, NULL, 0, false);
            break;
        default:
            gemm(false, true, B, GH, H, 1.0f, h, H, a->w_hh[l], H, 1.0f, g, GH);
            rnn_fw(B, H, g, bias, h, NULL, NULL, 0, mode == CT_RNN_RELU, false);
            break;
        }
        xin = h;
        in = H;
    }
}

const struct ct_kernels_rnn ct_cpu_kernels_rnn = {
    .fwd_work_floats = fwd_work_floats,
    .forward = cpu_forward,
    .bwd_work_floats = bwd_work_floats,
    .backward = cpu_backward,
    .step_work_floats = step_work_floats,
    .step = cpu_step,
};
