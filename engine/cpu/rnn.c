/* engine/cpu/rnn.c — host kernels of the fused recurrent layers (LSTM, GRU, Elman RNN): the
 * CPU backend's "rnn" kernel group (engine/kernels_rnn.h).
 *
 * Every product of more than one row goes to OpenBLAS (cblas_sgemm), transposes as flags.
 * The element-wise gate math is one fused pass per time step, written with GCC vector
 * extensions (8 floats) and compiled twice, for AVX2 + FMA (with contraction into FMAs
 * allowed) and for the x86-64 baseline, picked at run time. exp, sigmoid and tanh are
 * branch-free polynomial versions (Cephes' expf and tanhf, about 2 ulp) so they vectorise;
 * NaN propagates. Nothing here allocates during a forward, backward or step: the front end
 * (engine/rnn.c) hands in every buffer, and a stepper owns its scratch.
 *
 * Memory for training: the forward keeps the gate activations (backward needs all four), the
 * outputs and, for an LSTM, the cell state only at the start of every block of time steps
 * (block_steps: about BLOCK_ROWS rows of T*B); the backward runs block by block, backwards:
 * it recomputes the block's cell states element-wise from the checkpoint and the saved gates
 * (bit for bit what the forward computed), runs the recurrence through the block, and forms
 * the block's share of dx, dW and db in GEMMs of BLOCK_ROWS-odd rows, so its scratch is a
 * block of gate gradients, not all of them.
 *
 * Stepping (sampling) at batch 1 is bound by reading the weights once per step. One fused
 * pass per layer reads the rows of W_ih and W_hh of a block of hidden units (every gate),
 * forms their pre-activations with the same per-row arithmetic as a matrix-vector product
 * (so the result is the same whichever thread computes which block), and applies the gate
 * kernel to those units; the blocks are shared between the calling thread and the
 * stepper's worker thread(s), which wait spinning for a short while after each step and
 * then sleep (see "the worker pool" below). The output layer (ct_rnn_step_linear_f32) is one
 * more such pass. Larger batches go through cblas_sgemm and the gate kernels.
 *
 * Variable lengths: a row b is active at step t when t < lens[b]. An inactive row keeps its
 * state (h, c), gets a zero output and zero gate gradients, and passes its state gradient
 * through unchanged, which is PyTorch's packed-sequence behaviour.
 */
#include <cblas.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/kernels_rnn.h"

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

/* db[n] = sum over the m rows of D[m, n], added to db when add (ones: m floats of scratch). */
static void colsum(int64_t m, int64_t n, const float *D, float *ones, float *db, bool add) {
    for (int64_t i = 0; i < m; i++) ones[i] = 1.0f;
    if (!add) memset(db, 0, sizeof(float) * (size_t)n);
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
/* c' = f*c + i*g: one expression for the forward and the backward's recomputation, so that
 * both contract it into the same FMAs and agree bit for bit */
#define LSTM_CELL(f_, cp_, i_, g_) ((f_) * (cp_) + (i_) * (g_))

/* g [B, 4H]: pre-activations without bias in, activations out (when keep). cp: c_{t-1}
 * [B, H] or NULL (zeros); c, h: [B, H] out; hs: the h state [B, H] (active rows) or NULL. */
AI void lstm_fw_chunk(int n, int64_t H, float *g, const float *bias, const float *cp, float *c,
                      float *h, float *hs, bool keep) {
    v8f i = VSIGMOID(LD(g, n) + LD(bias, n));
    v8f f = VSIGMOID(LD(g + H, n) + LD(bias + H, n));
    v8f gg = VTANH(LD(g + 2 * H, n) + LD(bias + 2 * H, n));
    v8f o = VSIGMOID(LD(g + 3 * H, n) + LD(bias + 3 * H, n));
    v8f cv = LSTM_CELL(f, LDZ(cp, n), i, gg);
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

/* The cell states of one step again, from the saved gate activations g [B, 4H] and c_{t-1}
 * (cp, NULL: zeros): c = f*cp + i*g where active, cp elsewhere (as lstm_fw_body). */
AI void lstm_cell_chunk(int n, int64_t H, const float *g, const float *cp, float *c) {
    ST(c, LSTM_CELL(LD(g + H, n), LDZ(cp, n), LD(g, n), LD(g + 2 * H, n)), n);
}
AI void lstm_cell_body(int64_t B, int64_t H, const float *g, const float *cp, float *c,
                       const int64_t *lens, int64_t t) {
    for (int64_t b = 0; b < B; b++) {
        const float *gb = g + b * 4 * H, *cpb = cp ? cp + b * H : NULL;
        float *cb = c + b * H;
        if (!active(lens, b, t)) {
            if (cpb) memcpy(cb, cpb, sizeof(float) * (size_t)H);
            else memset(cb, 0, sizeof(float) * (size_t)H);
            continue;
        }
        int64_t j = 0;
        for (; j + 8 <= H; j += 8) lstm_cell_chunk(8, H, gb + j, cpb ? cpb + j : NULL, cb + j);
        if (j < H) lstm_cell_chunk((int)(H - j), H, gb + j, cpb ? cpb + j : NULL, cb + j);
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
DISPATCH(lstm_cell, (int64_t B, int64_t H, const float *g, const float *cp, float *c,
                     const int64_t *lens, int64_t t),
         (B, H, g, cp, c, lens, t))
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
/* The backward works on blocks of time steps of about BLOCK_ROWS rows (T*B rows in all); an
 * LSTM's forward keeps its cell state at the start of every block. */
#define BLOCK_ROWS 2048
static int64_t block_steps(int64_t T, int64_t B) {
    int64_t k = (BLOCK_ROWS + B - 1) / B;
    return k < 1 ? 1 : k > T ? T : k;
}
static int64_t n_blocks(int64_t T, int64_t B) {
    int64_t k = block_steps(T, B);
    return (T + k - 1) / k;
}

/* saved besides the gates: GRU Whn h + bhn [T*B, H]; LSTM c at each block's start */
static int64_t aux_floats(ct_rnn_mode mode, int64_t T, int64_t B, int64_t H) {
    if (mode == CT_GRU) return T * B * H;
    if (mode == CT_LSTM) return n_blocks(T, B) * B * H;
    return 0;
}

/* work: combined bias (G+1)*H, h state B*H, then GRU: recurrent product B*3H; LSTM: two
 * cell states B*H (c_{t-1}, c_t) */
static int64_t fwd_work_floats(ct_rnn_mode mode, int64_t T, int64_t B, int64_t H) {
    (void)T;
    return (n_gates(mode) + 1) * H + B * H + (mode == CT_GRU ? 3 * B * H : 0) +
           (mode == CT_LSTM ? 2 * B * H : 0);
}

static void cpu_forward(const ct_rnn_fwd_args *a) {
    const ct_rnn_mode mode = a->mode;
    const int64_t T = a->T, B = a->B, NI = a->n_in, H = a->H, GH = n_gates(mode) * H, BH = B * H;
    const int64_t K = block_steps(T, B);
    const bool relu = mode == CT_RNN_RELU, masked = a->lens != NULL;
    float *bias = a->work, *hs = bias + GH + H, *gh = hs + BH, *cs = hs + BH;
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
    const float *cp = a->c0;      /* LSTM: c_{t-1} (NULL: zeros) */
    for (int64_t t = 0; t < T; t++) {
        float *g = a->gates + t * B * GH, *ot = a->out + t * BH;
        const float *hp = t == 0 ? a->h0 : masked ? hs : a->out + (t - 1) * BH;
        switch (mode) {
        case CT_LSTM: {
            if (t % K == 0) {       /* the checkpoint of block t / K */
                float *ck = a->aux + (t / K) * BH;
                if (cp) memcpy(ck, cp, sizeof(float) * (size_t)BH);
                else memset(ck, 0, sizeof(float) * (size_t)BH);
            }
            if (hp) gemm(false, true, B, GH, H, 1.0f, hp, H, a->w_hh, H, 1.0f, g, GH);
            float *c = cs + (t & 1) * BH;
            lstm_fw(B, H, g, bias, cp, c, ot, masked ? hs : NULL, a->lens, t, true);
            cp = c;
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
    if (a->c_n && mode == CT_LSTM) memcpy(a->c_n, cp, sizeof(float) * (size_t)BH);
}

/* work, per block of K steps: the gate gradients K*B*GH (GRU: also the recurrent side), the
 * LSTM's cell states K*B*H, then dh, dc [B, H] and ones [K*B] */
static int64_t bwd_work_floats(ct_rnn_mode mode, int64_t T, int64_t B, int64_t H) {
    const int64_t GH = n_gates(mode) * H, KB = block_steps(T, B) * B;
    return KB * GH * (mode == CT_GRU ? 2 : 1) + (mode == CT_LSTM ? KB * H : 0) + 2 * B * H + KB;
}

static void cpu_backward(const ct_rnn_bwd_args *a) {
    const ct_rnn_mode mode = a->mode;
    const int64_t T = a->T, B = a->B, NI = a->n_in, H = a->H, GH = n_gates(mode) * H, BH = B * H;
    const int64_t K = block_steps(T, B), KB = K * B;
    const bool relu = mode == CT_RNN_RELU, masked = a->lens != NULL;
    float *dgi = a->work, *dgh = mode == CT_GRU ? dgi + KB * GH : dgi;
    float *cb = dgi + KB * GH * (mode == CT_GRU ? 2 : 1);
    float *dh = cb + (mode == CT_LSTM ? KB * H : 0), *dc = dh + BH, *ones = dc + BH;
    if (a->g_hn) memcpy(dh, a->g_hn, sizeof(float) * (size_t)BH);
    else memset(dh, 0, sizeof(float) * (size_t)BH);
    if (a->g_cn && mode == CT_LSTM) memcpy(dc, a->g_cn, sizeof(float) * (size_t)BH);
    else memset(dc, 0, sizeof(float) * (size_t)BH);
    if (a->tokens) memset(a->table, 0, sizeof(float) * (size_t)(a->V * GH));
    bool first = true, whh_written = false;
    for (int64_t t0 = (T - 1) / K * K; t0 >= 0; t0 -= K) {
        const int64_t t1 = t0 + K < T ? t0 + K : T, nb = t1 - t0, rows = nb * B;
        const float *ck = mode == CT_LSTM ? a->aux + (t0 / K) * BH : NULL;
        if (mode == CT_LSTM)         /* the block's cell states again, from its checkpoint */
            for (int64_t t = t0; t < t1; t++)
                lstm_cell(B, H, a->gates + t * B * GH, t == t0 ? ck : cb + (t - t0 - 1) * BH,
                          cb + (t - t0) * BH, a->lens, t);
        /* the recurrence through the block, backwards: gate gradients, dh through W_hh */
        for (int64_t t = t1 - 1; t >= t0; t--) {
            const float *g = a->gates + t * B * GH, *go = a->g_out ? a->g_out + t * BH : NULL;
            float *dgit = dgi + (t - t0) * B * GH, *dght = dgh + (t - t0) * B * GH;
            bool need_dh = t > 0 || a->dh0;
            switch (mode) {
            case CT_LSTM: {
                const float *cp = t == 0 ? a->c0 : t == t0 ? ck : cb + (t - t0 - 1) * BH;
                lstm_bw(B, H, g, cb + (t - t0) * BH, cp, go, dh, dc, dgit, a->lens, t, masked);
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
        /* the block's share of everything else, in products over its rows */
        const float beta = first ? 0.0f : 1.0f;
        if (a->tokens) {
            /* the input side per table row: sum the gate gradients of each token's positions */
            for (int64_t r = 0; r < rows; r++) {
                int64_t R = t0 * B + r;
                if (active(a->lens, R % B, R / B))
                    cblas_saxpy((int)GH, 1.0f, dgi + r * GH, 1, a->table + a->tokens[R] * GH, 1);
            }
        } else {
            const float *xb = a->x + t0 * B * NI;
            if (a->dx) gemm(false, false, rows, NI, GH, 1.0f, dgi, GH, a->w_ih, NI, 0.0f,
                            a->dx + t0 * B * NI, NI);
            if (a->dw_ih) gemm(true, false, GH, NI, rows, 1.0f, dgi, GH, xb, NI, beta, a->dw_ih,
                               NI);
        }
        if (a->dw_hh) {
            /* H_prev = [h0; out[0 .. T-2]]; rows of inactive steps have zero dG */
            const int64_t s = t0 > 0 ? t0 : 1;
            if (t1 > s) {
                gemm(true, false, GH, H, (t1 - s) * B, 1.0f, dgh + (s - t0) * B * GH, GH,
                     a->out + (s - 1) * BH, H, whh_written ? 1.0f : 0.0f, a->dw_hh, H);
                whh_written = true;
            }
            if (t0 == 0 && a->h0) {
                gemm(true, false, GH, H, B, 1.0f, dgh, GH, a->h0, H, whh_written ? 1.0f : 0.0f,
                     a->dw_hh, H);
                whh_written = true;
            }
        }
        if (a->db_ih) colsum(rows, GH, dgi, ones, a->db_ih, !first);
        if (a->db_hh) colsum(rows, GH, dgh, ones, a->db_hh, !first);
        first = false;
    }
    if (a->dw_hh && !whh_written) memset(a->dw_hh, 0, sizeof(float) * (size_t)(GH * H));
    if (a->tokens) {
        if (a->dx) gemm(false, false, a->V, NI, GH, 1.0f, a->table, GH, a->w_ih, NI, 0.0f, a->dx,
                        NI);
        if (a->dw_ih) gemm(true, false, GH, NI, a->V, 1.0f, a->table, GH, a->x, NI, 0.0f,
                           a->dw_ih, NI);
    }
    if (a->dh0) memcpy(a->dh0, dh, sizeof(float) * (size_t)BH);
    if (a->dc0) memcpy(a->dc0, dc, sizeof(float) * (size_t)BH);
}

/* ---- stepping: the fused batch-1 pass ---------------------------------------------------------
 * dots: y[i] = (W[i] . x) + addend[i] (addend NULL: + 0.0f) for n consecutive rows of W (row
 * stride ldw, c columns): per row one 8-lane accumulator, summed lane by lane with HSUM, the
 * arithmetic of gemv_n, so a step gives what a product through gemv_n gave. The loop also
 * prefetches the rows PF_ROWS below the ones it reads. */
#define PF_ROWS 8
AI void dots_body(int64_t n, const float *W, int64_t ldw, int64_t c, const float *x,
                  const float *addend, float *y) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float *w0 = W + i * ldw, *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
        const char *p0 = (const char *)(w0 + PF_ROWS * ldw), *p1 = p0 + 4 * ldw;
        const char *p2 = p1 + 4 * ldw, *p3 = p2 + 4 * ldw;
        v8f a0 = VSET(0.0f), a1 = a0, a2 = a0, a3 = a0;
        int64_t j = 0;
        for (; j + 16 <= c; j += 16) {
            __builtin_prefetch(p0 + 4 * j, 0, 3);
            __builtin_prefetch(p1 + 4 * j, 0, 3);
            __builtin_prefetch(p2 + 4 * j, 0, 3);
            __builtin_prefetch(p3 + 4 * j, 0, 3);
            v8f xv = LD(x + j, 8);
            a0 += LD(w0 + j, 8) * xv;
            a1 += LD(w1 + j, 8) * xv;
            a2 += LD(w2 + j, 8) * xv;
            a3 += LD(w3 + j, 8) * xv;
            xv = LD(x + j + 8, 8);
            a0 += LD(w0 + j + 8, 8) * xv;
            a1 += LD(w1 + j + 8, 8) * xv;
            a2 += LD(w2 + j + 8, 8) * xv;
            a3 += LD(w3 + j + 8, 8) * xv;
        }
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
        for (int q = 0; q < 4; q++) y[i + q] = d[q] + (addend ? addend[i + q] : 0.0f);
    }
    for (; i < n; i++) {
        const float *w = W + i * ldw;
        v8f a = VSET(0.0f);
        int64_t j = 0;
        for (; j + 8 <= c; j += 8) a += LD(w + j, 8) * LD(x + j, 8);
        if (j < c) a += LD(w + j, (int)(c - j)) * LD(x + j, (int)(c - j));
        y[i] = HSUM(a) + (addend ? addend[i] : 0.0f);
    }
}

/* What one job of a step computes; one chunk at a time, any thread. */
enum { JOB_LAYER, JOB_OUT };
typedef struct step_job {
    int kind;
    int64_t n;                        /* chunks */
    /* JOB_LAYER: hidden units [k*U, (k+1)*U) of one layer (batch 1) */
    ct_rnn_mode mode;
    int64_t H, in, U;
    const float *x, *h;               /* the layer's input [in] and old state [H] */
    const float *w_ih, *w_hh, *b_ih, *b_hh;
    float *g, *gh, *bias;             /* scratch [G*H], [G*H] (GRU), [(G+1)*H] */
    float *c;                         /* [H] in/out (LSTM) */
    float *hn;                        /* [H] out: the new h */
    /* JOB_OUT: rows [k*R, (k+1)*R) of the output layer */
    const float *w_out, *b_out, *hv;
    int64_t V, R;
    float *logits;
} step_job;

AI void layer_chunk_body(const step_job *j, int64_t k) {
    const int64_t H = j->H, in = j->in, G = n_gates(j->mode);
    const int64_t u0 = k * j->U, u1 = u0 + j->U < H ? u0 + j->U : H, nu = u1 - u0;
    const bool gru = j->mode == CT_GRU;
    /* pre-activations of the units' rows in every gate block, as the two products of the
     * unfused step: g = W_ih x (+ 0), then g = W_hh h + g (GRU: gh = W_hh h (+ 0)) */
    for (int64_t q = 0; q < G; q++) {
        const int64_t r = q * H + u0;
        dots_body(nu, j->w_ih + r * in, in, in, j->x, NULL, j->g + r);
        if (gru) dots_body(nu, j->w_hh + r * H, H, H, j->h, NULL, j->gh + r);
        else dots_body(nu, j->w_hh + r * H, H, H, j->h, j->g + r, j->g + r);
    }
    /* the combined biases of these units (combine_bias) */
    float *bias = j->bias;
    for (int64_t q = 0; q <= G; q++) {
        const int64_t r = q * H + u0;
        const bool last = q == G;
        for (int64_t u = 0; u < nu; u++) {
            float v;
            if (!j->b_ih) v = 0.0f;
            else if (gru && q >= 2) v = q == 2 ? j->b_ih[r + u] : j->b_hh[r - H + u];
            else v = last ? 0.0f : j->b_ih[r + u] + j->b_hh[r + u];
            bias[r + u] = v;
        }
    }
    /* the gate kernel on these units; the new h goes to hn (other chunks still read h) */
    for (int64_t u = u0; u < u1; u += 8) {
        const int n = u1 - u >= 8 ? 8 : (int)(u1 - u);
        switch (j->mode) {
        case CT_LSTM:
            lstm_fw_chunk(n, H, j->g + u, bias + u, j->c + u, j->c + u, j->hn + u, NULL, false);
            break;
        case CT_GRU:
            gru_fw_chunk(n, H, j->g + u, j->gh + u, bias + u, j->h + u, NULL, j->hn + u, NULL,
                         false);
            break;
        default:
            rnn_fw_chunk(n, j->g + u, bias + u, j->hn + u, NULL, j->mode == CT_RNN_RELU, false);
            break;
        }
    }
}

AI void out_chunk_body(const step_job *j, int64_t k) {
    const int64_t r0 = k * j->R, r1 = r0 + j->R < j->V ? r0 + j->R : j->V;
    dots_body(r1 - r0, j->w_out + r0 * j->H, j->H, j->H, j->hv, j->b_out ? j->b_out + r0 : NULL,
              j->logits + r0);
}

AI void run_chunk_body(const step_job *j, int64_t k) {
    if (j->kind == JOB_LAYER) layer_chunk_body(j, k);
    else out_chunk_body(j, k);
}
DISPATCH(run_chunk, (const step_job *j, int64_t k), (j, k))

/* ---- the worker pool ------------------------------------------------------------------------
 * A stepper for batch 1 and weights of at least POOL_MIN_FLOATS gets threads - 1 workers
 * (threads: OpenBLAS's thread count, so one setting governs both, at most POOL_MAX_THREADS).
 * A job is published as one 64-bit word, claim = seq << 40 | n << 20 | next chunk, after its
 * description; every thread (the caller too) takes chunks with a compare-and-swap on it until
 * none is left, and the caller then waits until all n are done. A worker that has not woken
 * up yet simply takes none, so a step never waits for a sleeping thread. After its last
 * chunk a worker spins (pause) for POOL_SPIN_NS, enough for the caller's sampling between
 * two steps, then sleeps on a condition variable; the caller wakes it when it posts a job.
 * The pool is used only by the batch-1 step, which calls no OpenBLAS routine, so the
 * workers never compete with OpenBLAS's own threads for the cores.
 * On a busy machine (more runnable threads than cores) the workers get the cores in
 * slices, a step then waits for whichever thread ran last, and the spinning costs the
 * caller's own share: one thread alone is faster. So the stepper times its steps, keeps a
 * moving average of the step time with the pool and alone (per kind of step: with or
 * without the output layer), and uses the pool while its average is below POOL_GAIN times
 * the solo one, trying the other way now and then to follow the machine's load:
 * EXPLORE_BURST steps (the first, which may wake a sleeping worker, not counted) after
 * EXPLORE_MIN steps, and twice as many after every try that confirms the choice (up to
 * EXPLORE_MAX). The results are the same bits either way. While the caller waits for a
 * worker's chunk longer than POOL_STALL_NS (a chunk takes some 10-30 us, a preempted worker
 * a scheduler slice) it yields the processor instead of spinning, and when it goes solo it
 * tells the workers to sleep at once ("park") rather than spin. */
#define POOL_MIN_FLOATS (2 * 1024 * 1024)
#define POOL_MAX_THREADS 8
#define POOL_SPIN_NS 2000000LL
#define POOL_STALL_NS 200000LL
#define EXPLORE_MIN 32
#define EXPLORE_BURST 4
#define EXPLORE_MAX 1024
#define POOL_GAIN 0.9
#define CHUNK_FLOATS (64 * 1024)

struct ct_rnn_stepper {
    ct_rnn_mode mode;
    int L;
    int64_t B, n_in, H;
    float *buf, *bias, *g, *gh, *hn;
    step_job job;
    int n_workers;
    pthread_t *threads;
    uint32_t seq;
    bool pooled;                      /* this step uses the workers */
    int burst;                        /* steps left in a try of one way */
    bool trying, preferred;           /* the try is of the slower way; the faster before it */
    int64_t since[2], gap[2];         /* [with output layer]: steps since the last try, and
                                       * the steps between tries */
    double avg_ns[2][2];              /* [with output layer][pooled]: moving average, 0: none */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Alignas(64) _Atomic uint64_t claim;
    _Alignas(64) _Atomic int64_t done;
    _Alignas(64) _Atomic int sleepers;
    _Atomic int quit;
    _Atomic int park;                 /* the next steps are solo: workers, sleep now */
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

#define CLAIM_SEQ(w) ((uint32_t)((w) >> 40))
#define CLAIM_N(w) ((int64_t)(((w) >> 20) & 0xFFFFF))
#define CLAIM_NEXT(w) ((int64_t)((w) & 0xFFFFF))

/* Takes the next chunk of job seq into *k; false when there is none (or the job changed). */
static bool claim_chunk(ct_rnn_stepper *s, uint32_t seq, int64_t *k) {
    uint64_t w = atomic_load_explicit(&s->claim, memory_order_acquire);
    for (;;) {
        if (CLAIM_SEQ(w) != seq || CLAIM_NEXT(w) >= CLAIM_N(w)) return false;
        if (atomic_compare_exchange_weak_explicit(&s->claim, &w, w + 1, memory_order_acq_rel,
                                                  memory_order_acquire)) {
            *k = CLAIM_NEXT(w);
            return true;
        }
    }
}

static void work_on(ct_rnn_stepper *s, uint32_t seq) {
    int64_t k;
    while (claim_chunk(s, seq, &k)) {
        run_chunk(&s->job, k);
        atomic_fetch_add_explicit(&s->done, 1, memory_order_release);
    }
}

static void *worker_main(void *arg) {
    ct_rnn_stepper *s = arg;
    uint32_t seen = 0;                       /* the last job this worker found exhausted */
    int64_t idle_since = now_ns();
    for (;;) {
        if (atomic_load_explicit(&s->quit, memory_order_acquire)) return NULL;
        uint32_t seq = CLAIM_SEQ(atomic_load_explicit(&s->claim, memory_order_acquire));
        if (seq != seen) {
            work_on(s, seq);
            seen = seq;
            idle_since = now_ns();
            continue;
        }
        for (int i = 0; i < 64; i++) cpu_relax();
        if (now_ns() - idle_since < POOL_SPIN_NS &&
            !atomic_load_explicit(&s->park, memory_order_relaxed))
            continue;
        pthread_mutex_lock(&s->mu);
        atomic_fetch_add(&s->sleepers, 1);
        while (!atomic_load(&s->quit) && CLAIM_SEQ(atomic_load(&s->claim)) == seen)
            pthread_cond_wait(&s->cv, &s->mu);
        atomic_fetch_sub(&s->sleepers, 1);
        pthread_mutex_unlock(&s->mu);
        idle_since = now_ns();
    }
}

/* Runs the n chunks of s->job (filled in by the caller), with the workers when there are. */
static void run_job(ct_rnn_stepper *s, int64_t n) {
    s->job.n = n;
    if (!s->pooled || n == 1) {
        for (int64_t k = 0; k < n; k++) run_chunk(&s->job, k);
        return;
    }
    if (atomic_load_explicit(&s->park, memory_order_relaxed))
        atomic_store_explicit(&s->park, 0, memory_order_relaxed);
    s->seq = (s->seq + 1) & 0xFFFFFF;
    if (s->seq == 0) s->seq = 1;
    atomic_store_explicit(&s->done, 0, memory_order_relaxed);
    atomic_store(&s->claim, (uint64_t)s->seq << 40 | (uint64_t)n << 20);
    if (atomic_load(&s->sleepers) > 0) {
        pthread_mutex_lock(&s->mu);
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    work_on(s, s->seq);
    bool stalled = false;
    int64_t t0 = 0;
    for (int64_t spins = 0; atomic_load_explicit(&s->done, memory_order_acquire) < n; spins++) {
        cpu_relax();
        if ((spins & 1023) != 1023) continue;
        if (t0 == 0) t0 = now_ns();
        else if (now_ns() - t0 > POOL_STALL_NS) stalled = true;
        if (stalled) sched_yield();           /* a worker was preempted inside a chunk */
    }
}

/* Whether the next batch-1 step uses the workers: the faster way so far, now and then the
 * other one (and each way once at first). */
static bool choose_pool(ct_rnn_stepper *s, int with_out) {
    if (s->n_workers == 0) return false;
    const double *avg = s->avg_ns[with_out];
    if (s->burst > 0) return s->pooled;            /* a try goes on */
    if (avg[1] == 0 || avg[0] == 0) {              /* each way once, as a try */
        s->burst = EXPLORE_BURST;
        s->trying = false;
        return avg[1] == 0;
    }
    bool pool = avg[1] < POOL_GAIN * avg[0];
    if (s->gap[with_out] == 0) s->gap[with_out] = EXPLORE_MIN;
    if (++s->since[with_out] >= s->gap[with_out]) {
        s->since[with_out] = 0;
        s->burst = EXPLORE_BURST;
        s->trying = true;
        s->preferred = pool;
        return !pool;
    }
    return pool;
}

static void record_step(ct_rnn_stepper *s, int with_out, int64_t ns) {
    double *avg = s->avg_ns[with_out], *a = &avg[s->pooled];
    if (s->burst == 0) {                           /* the chosen way: a moving average */
        *a += ((double)ns - *a) * 0.25;
        return;
    }
    if (s->burst == EXPLORE_BURST - 1) *a = (double)ns;    /* a try replaces the estimate */
    else if (s->burst < EXPLORE_BURST - 1) *a += ((double)ns - *a) * 0.5;
    if (--s->burst > 0 || !s->trying) return;
    int64_t *gap = &s->gap[with_out];
    if ((avg[1] < POOL_GAIN * avg[0]) == s->preferred)
        *gap = *gap * 2 > EXPLORE_MAX ? EXPLORE_MAX : *gap * 2;
    else *gap = EXPLORE_MIN;
}

static void stepper_free(ct_rnn_stepper *s) {
    if (!s) return;
    if (s->n_workers > 0) {
        atomic_store(&s->quit, 1);
        pthread_mutex_lock(&s->mu);
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        for (int i = 0; i < s->n_workers; i++) pthread_join(s->threads[i], NULL);
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
    }
    free(s->threads);
    free(s->buf);
    free(s);
}

static ct_rnn_stepper *stepper_new(ct_rnn_mode mode, int L, int64_t B, int64_t n_in, int64_t H) {
    const int64_t G = n_gates(mode), GH = G * H;
    ct_rnn_stepper *s = aligned_alloc(64, (sizeof *s + 63) / 64 * 64);
    if (!s) return NULL;
    memset(s, 0, sizeof *s);
    s->mode = mode;
    s->L = L;
    s->B = B;
    s->n_in = n_in;
    s->H = H;
    atomic_init(&s->claim, 0);
    atomic_init(&s->done, 0);
    atomic_init(&s->sleepers, 0);
    atomic_init(&s->quit, 0);
    atomic_init(&s->park, 0);
    /* bias (G+1)*H | g B*GH | gh B*GH | hn B*H */
    s->buf = malloc(sizeof(float) * (size_t)((G + 1) * H + 2 * B * GH + B * H));
    if (!s->buf) { free(s); return NULL; }
    s->bias = s->buf;
    s->g = s->bias + (G + 1) * H;
    s->gh = s->g + B * GH;
    s->hn = s->gh + B * GH;
    double wf = 0;
    for (int l = 0; l < L; l++) wf += (double)GH * (double)((l ? H : n_in) + H);
    int threads = openblas_get_num_threads();
    if (threads > POOL_MAX_THREADS) threads = POOL_MAX_THREADS;
    if (B == 1 && threads > 1 && wf >= POOL_MIN_FLOATS) {
        s->threads = calloc((size_t)threads - 1, sizeof *s->threads);
        if (s->threads && pthread_mutex_init(&s->mu, NULL) == 0) {
            if (pthread_cond_init(&s->cv, NULL) == 0) {
                for (int i = 0; i < threads - 1; i++) {
                    if (pthread_create(&s->threads[i], NULL, worker_main, s) != 0) break;
                    s->n_workers++;
                }
                if (s->n_workers == 0) pthread_cond_destroy(&s->cv);
            }
            if (s->n_workers == 0) pthread_mutex_destroy(&s->mu);
        }
        /* with no worker (no memory or threads) the step runs on the caller alone */
    }
    return s;
}

/* units per chunk: a multiple of 8 with about CHUNK_FLOATS weights, at most 2^20 chunks */
static int64_t units_per_chunk(int64_t G, int64_t in, int64_t H) {
    int64_t u = CHUNK_FLOATS / (G * (in + H));
    u = (u + 7) / 8 * 8;
    if (u < 8) u = 8;
    while ((H + u - 1) / u >= (1 << 20)) u *= 2;
    return u;
}

static void cpu_step(ct_rnn_stepper *s, const ct_rnn_step_args *a) {
    const ct_rnn_mode mode = a->mode;
    const int64_t B = a->B, H = a->H, G = n_gates(mode), GH = G * H, BH = B * H;
    const float *xin = a->x;
    int64_t in = a->n_in;
    if (B == 1) {
        const int with_out = a->w_out != NULL;
        const bool was_pooled = s->pooled;
        s->pooled = choose_pool(s, with_out);
        if (was_pooled && !s->pooled) atomic_store_explicit(&s->park, 1, memory_order_relaxed);
        const int64_t t_start = s->n_workers ? now_ns() : 0;
        step_job *j = &s->job;
        j->kind = JOB_LAYER;
        j->mode = mode;
        j->H = H;
        j->g = s->g;
        j->gh = s->gh;
        j->bias = s->bias;
        j->hn = s->hn;
        for (int l = 0; l < a->L; l++) {
            float *h = a->h + l * H;
            j->in = in;
            j->U = units_per_chunk(G, in, H);
            j->x = xin;
            j->h = h;
            j->w_ih = a->w_ih[l];
            j->w_hh = a->w_hh[l];
            j->b_ih = a->b_ih ? a->b_ih[l] : NULL;
            j->b_hh = a->b_hh ? a->b_hh[l] : NULL;
            j->c = a->c ? a->c + l * H : NULL;
            run_job(s, (H + j->U - 1) / j->U);
            memcpy(h, s->hn, sizeof(float) * (size_t)H);
            xin = h;
            in = H;
        }
        if (a->w_out) {
            j->kind = JOB_OUT;
            j->w_out = a->w_out;
            j->b_out = a->b_out;
            j->hv = xin;
            j->V = a->V;
            j->R = CHUNK_FLOATS / 2 / H < 4 ? 4 : (CHUNK_FLOATS / 2 / H + 3) / 4 * 4;
            while ((a->V + j->R - 1) / j->R >= (1 << 20)) j->R *= 2;
            j->logits = a->logits;
            run_job(s, (a->V + j->R - 1) / j->R);
        }
        if (s->n_workers) record_step(s, with_out, now_ns() - t_start);
        return;
    }
    float *bias = s->bias, *g = s->g, *gh = s->gh;
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
    if (a->w_out) {
        for (int64_t b = 0; b < B; b++) {
            if (a->b_out) memcpy(a->logits + b * a->V, a->b_out, sizeof(float) * (size_t)a->V);
            else memset(a->logits + b * a->V, 0, sizeof(float) * (size_t)a->V);
        }
        gemm(false, true, B, a->V, H, 1.0f, xin, H, a->w_out, H, 1.0f, a->logits, a->V);
    }
}

const struct ct_kernels_rnn ct_cpu_kernels_rnn = {
    .fwd_work_floats = fwd_work_floats,
    .aux_floats = aux_floats,
    .forward = cpu_forward,
    .bwd_work_floats = bwd_work_floats,
    .backward = cpu_backward,
    .stepper_new = stepper_new,
    .stepper_free = stepper_free,
    .step = cpu_step,
};
