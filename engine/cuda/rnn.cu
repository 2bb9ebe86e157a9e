// engine/cuda/rnn.cu — the CUDA backend's "rnn" kernel group (engine/kernels_rnn.h): the fused
// LSTM / GRU / Elman layers over a whole sequence, their backward, and stepwise sampling.
// The reference is engine/cpu/rnn.c; the same math in the same order, one thread per hidden
// unit of a row (or one warp per unit in the batch-1 step).
//
// Forward (one layer, T steps, batch B, G gate blocks of H units):
//   - the input projection of all T*B rows in one cuBLAS SGEMM into gates [T*B, G*H]; with
//     tokens, one SGEMM projects the V table rows ([V, G*H] into `table`) and a gather kernel
//     copies each active position's row (zeros where inactive);
//   - per step t: one SGEMM h_{t-1} W_hh^T (LSTM / RNN: accumulated into gates_t; GRU: into a
//     [B, 3H] buffer, since b_hn sits inside r * (...)), then one fused gate kernel that adds
//     both biases, applies the activations, writes the activations over gates_t, the output,
//     the LSTM cell state (aux) or the GRU's W_hn h + b_hn (aux), and with lens the h state of
//     the active rows (inactive rows keep their state and get a zero output).
// Backward: per step, backwards, one fused gate-gradient kernel (dgates_t for every step are
//   kept in work) and one SGEMM dh += dgates_t W_hh; then, over all steps at once: dx = dG W_ih,
//   dW_ih = dG^T x, dW_hh = dG[1:]^T out[:-1] (+ dG[0]^T h0), db = column sums (SGEMV with a
//   ones vector). With tokens the gate gradients are first summed per token into `table`
//   ([V, G*H]) with float atomics (the order of the additions, and so the last bits, may
//   differ from run to run: relative differences of order 1e-7 per summed term), then
//   dx = table W_ih and dW_ih = table^T emb.
// Stepping: at batch B <= STEP_FUSED_MAX one kernel per layer (a warp per hidden unit and row:
//   the G rows of W_ih and W_hh dotted with x and h, reduced with shuffles, the gate math on
//   lane 0) writing the new h into the stepper's scratch [L, B, H], one copy of the scratch to
//   the state's h, and one warp-per-logit kernel for the output layer (bias fused). Larger
//   batches use the SGEMMs and the forward's gate kernels. x and logits may be host or device
//   memory (cudaPointerGetAttributes): host x is uploaded, host logits are copied back and the
//   stream synchronised; nothing else waits for the device.
//
// aux (aux_floats): LSTM the cell state c_t of every step [T, B, H]; GRU W_hn h_{t-1} + b_hn
//   [T, B, H]; RNN none. Storing every c_t (rather than the CPU's checkpoints) costs T*B*H
//   floats and saves the recomputation.
// work (fwd_work_floats), in this order, each part rounded up to 64 floats (256 bytes):
//   lens as int32 [B] | h state [B, H] (used with lens) | GRU: W_hh h_{t-1} [B, 3H]
// work (bwd_work_floats):
//   lens as int32 [B] | dh [B, H] | dc [B, H] | dG (input side) [T*B, G*H] |
//   GRU: dG (recurrent side) [T*B, 3H] | ones [T*B]
// lens reach the device through kernel parameters (no pageable copy, so no host sync).
//
// cuBLAS: every product goes through ct__cuda_gemm (backend.cu; row-major, gemm_rm here) in the
// device's precision: FP32 SGEMM, TF32 when the user asked for it, or, with ct_device_set_bf16,
// bf16 inputs with float32 accumulation and output (read once per forward / backward / step).
// In bf16 mode the operands a call uses many times are rounded once per call into scratch: W_hh
// (forward and backward), the gate gradients dG (each step's rows as the backward loop makes
// them; they then serve dx, dW_ih and dW_hh too); h_{t-1} is rounded each step before its
// product. Everything else (gate math, the states, aux, work, the bias column sums by SGEMV,
// the fused batch <= STEP_FUSED_MAX step and the output layer's matvec) stays float32.
#include "engine/cuda/cuda_internal.h"

#include <stdlib.h>
#include <string.h>

namespace {

constexpr int kThreads = 256;          // element-wise kernels
constexpr int kWarpThreads = 128;      // warp-per-output kernels: 4 warps a block (spreads
                                       // a batch-1 step of a few hundred units over the SMs)
constexpr int STEP_FUSED_MAX = 4;      // step batches up to this use the fused warp kernel
constexpr int UPLOAD_WORDS = 768;      // 32-bit words per parameter-borne upload (3 KiB)

inline int64_t n_gates(ct_rnn_mode mode) { return mode == CT_LSTM ? 4 : mode == CT_GRU ? 3 : 1; }
inline int64_t pad64(int64_t n) { return (n + 63) / 64 * 64; }

// ---- device helpers ----------------------------------------------------------------------
__device__ __forceinline__ float sigm(float x) { return 1.0f / (1.0f + expf(-x)); }
// relu that keeps NaN (as the CPU's BLEND(x < 0, 0, x))
__device__ __forceinline__ float relu_nan(float x) { return x < 0.0f ? 0.0f : x; }
__device__ __forceinline__ bool active(const int *lens, int64_t b, int64_t t) {
    return !lens || t < (int64_t)lens[b];
}
// b_ih[k] + b_hh[k] (the CPU's combine_bias; both present or both absent)
__device__ __forceinline__ float bsum(const float *bi, const float *bh, int64_t k) {
    return bi ? bi[k] + bh[k] : 0.0f;
}
__device__ __forceinline__ float ld0(const float *p, int64_t i) { return p ? p[i] : 0.0f; }
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

#define GRID_STRIDE(i, n)                                                                  \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);              \
         i += (int64_t)gridDim.x * blockDim.x)

// ---- small kernels -----------------------------------------------------------------------
struct words_chunk {
    int n;
    uint32_t v[UPLOAD_WORDS];
};
__global__ void upload_kernel(uint32_t *dst, words_chunk c) {
    for (int i = threadIdx.x; i < c.n; i += blockDim.x) dst[i] = c.v[i];
}

__global__ void fill_kernel(float *p, int64_t n, float v) {
    GRID_STRIDE(i, n) p[i] = v;
}

// gates[r, :] = table[tokens[r], :] where row r = t*B + b is active, else 0
__global__ void gather_kernel(int64_t TB, int64_t GH, int64_t B, const float *table,
                              const int64_t *tokens, const int *lens, float *gates) {
    GRID_STRIDE(i, TB * GH) {
        const int64_t r = i / GH, c = i - r * GH;
        gates[i] = active(lens, r % B, r / B) ? table[tokens[r] * GH + c] : 0.0f;
    }
}

// table[tokens[r], :] += dg[r, :] over the active rows (float atomics: see the file comment)
__global__ void scatter_add_kernel(int64_t TB, int64_t GH, int64_t B, const float *dg,
                                   const int64_t *tokens, const int *lens, float *table) {
    GRID_STRIDE(i, TB * GH) {
        const int64_t r = i / GH, c = i - r * GH;
        if (active(lens, r % B, r / B)) atomicAdd(&table[tokens[r] * GH + c], dg[i]);
    }
}

// ---- forward gate kernels (one step, all rows; thread per (b, j)) -------------------------
// g [B, 4H]: pre-activations without bias in, activations out. cp: c_{t-1} [B, H] or NULL
// (zeros), c: c_t out (may be cp: in place), out: h_t (0 where inactive), hs: the h state of
// the active rows or NULL.
__global__ void lstm_fw_kernel(int64_t B, int64_t H, float *g, const float *bi, const float *bh,
                               const float *cp, float *c, float *out, float *hs, const int *lens,
                               int64_t t) {
    GRID_STRIDE(idx, B * H) {
        const int64_t b = idx / H, j = idx - b * H;
        float *gb = g + b * 4 * H;
        if (!active(lens, b, t)) {
            c[idx] = ld0(cp, idx);
            out[idx] = 0.0f;
            gb[j] = gb[H + j] = gb[2 * H + j] = gb[3 * H + j] = 0.0f;
            continue;
        }
        const float i = sigm(gb[j] + bsum(bi, bh, j));
        const float f = sigm(gb[H + j] + bsum(bi, bh, H + j));
        const float gg = tanhf(gb[2 * H + j] + bsum(bi, bh, 2 * H + j));
        const float o = sigm(gb[3 * H + j] + bsum(bi, bh, 3 * H + j));
        const float cv = f * ld0(cp, idx) + i * gg;
        const float hv = o * tanhf(cv);
        gb[j] = i;
        gb[H + j] = f;
        gb[2 * H + j] = gg;
        gb[3 * H + j] = o;
        c[idx] = cv;
        out[idx] = hv;
        if (hs) hs[idx] = hv;
    }
}

// g [B, 3H]: the input projection without bias in, r z n out; gh [B, 3H]: h W_hh^T without
// bias or NULL (h = 0); hp: h_{t-1} or NULL (may be hs: in place); hn: W_hn h + b_hn out or NULL.
__global__ void gru_fw_kernel(int64_t B, int64_t H, float *g, const float *gh, const float *bi,
                              const float *bh, const float *hp, float *hn, float *out, float *hs,
                              const int *lens, int64_t t) {
    GRID_STRIDE(idx, B * H) {
        const int64_t b = idx / H, j = idx - b * H;
        float *gb = g + b * 3 * H;
        if (!active(lens, b, t)) {
            out[idx] = 0.0f;
            if (hn) hn[idx] = 0.0f;
            gb[j] = gb[H + j] = gb[2 * H + j] = 0.0f;
            continue;
        }
        const float *ghb = gh ? gh + b * 3 * H : nullptr;
        const float r = sigm(gb[j] + ld0(ghb, j) + bsum(bi, bh, j));
        const float z = sigm(gb[H + j] + ld0(ghb, H + j) + bsum(bi, bh, H + j));
        const float hnv = ld0(ghb, 2 * H + j) + (bh ? bh[2 * H + j] : 0.0f);
        const float nv = tanhf(gb[2 * H + j] + (bi ? bi[2 * H + j] : 0.0f) + r * hnv);
        const float hv = nv + z * (ld0(hp, idx) - nv);
        gb[j] = r;
        gb[H + j] = z;
        gb[2 * H + j] = nv;
        if (hn) hn[idx] = hnv;
        out[idx] = hv;
        if (hs) hs[idx] = hv;
    }
}

// g [B, H]: pre-activation without bias in, h out.
__global__ void rnn_fw_kernel(int64_t B, int64_t H, float *g, const float *bi, const float *bh,
                              float *out, float *hs, const int *lens, int64_t t, bool relu) {
    GRID_STRIDE(idx, B * H) {
        const int64_t b = idx / H, j = idx - b * H;
        if (!active(lens, b, t)) {
            out[idx] = 0.0f;
            g[idx] = 0.0f;
            continue;
        }
        const float p = g[idx] + bsum(bi, bh, j);
        const float hv = relu ? relu_nan(p) : tanhf(p);
        g[idx] = hv;
        out[idx] = hv;
        if (hs) hs[idx] = hv;
    }
}

// ---- backward gate kernels -----------------------------------------------------------------
// dh [B, H]: in, the gradient reaching h_t from later steps; out, for active rows, the part
// that does not go through W_hh (LSTM / RNN 0, GRU dh * z); inactive rows pass dh (and dc)
// through unchanged and get zero gate gradients. go: the gradient of out_t or NULL.
__global__ void lstm_bw_kernel(int64_t B, int64_t H, const float *g, const float *c,
                               const float *cp, const float *go, float *dh, float *dc, float *dg,
                               const int *lens, int64_t t) {
    GRID_STRIDE(idx, B * H) {
        const int64_t b = idx / H, j = idx - b * H;
        float *dgb = dg + b * 4 * H;
        if (!active(lens, b, t)) {
            dgb[j] = dgb[H + j] = dgb[2 * H + j] = dgb[3 * H + j] = 0.0f;
            continue;
        }
        const float *gb = g + b * 4 * H;
        const float i = gb[j], f = gb[H + j], gg = gb[2 * H + j], o = gb[3 * H + j];
        const float tc = tanhf(c[idx]);
        const float d = dh[idx] + ld0(go, idx);
        const float dcv = dc[idx] + d * o * (1.0f - tc * tc);
        dgb[j] = dcv * gg * i * (1.0f - i);
        dgb[H + j] = dcv * ld0(cp, idx) * f * (1.0f - f);
        dgb[2 * H + j] = dcv * i * (1.0f - gg * gg);
        dgb[3 * H + j] = d * tc * o * (1.0f - o);
        dc[idx] = dcv * f;
        dh[idx] = 0.0f;
    }
}

// GRU: dgi (input side) and dgh (recurrent side) [B, 3H] differ in the n block.
__global__ void gru_bw_kernel(int64_t B, int64_t H, const float *g, const float *hn,
                              const float *hp, const float *go, float *dh, float *dgi, float *dgh,
                              const int *lens, int64_t t) {
    GRID_STRIDE(idx, B * H) {
        const int64_t b = idx / H, j = idx - b * H;
        float *dgib = dgi + b * 3 * H, *dghb = dgh + b * 3 * H;
        if (!active(lens, b, t)) {
            dgib[j] = dgib[H + j] = dgib[2 * H + j] = 0.0f;
            dghb[j] = dghb[H + j] = dghb[2 * H + j] = 0.0f;
            continue;
        }
        const float *gb = g + b * 3 * H;
        const float r = gb[j], z = gb[H + j], nv = gb[2 * H + j], hnv = hn[idx];
        const float d = dh[idx] + ld0(go, idx);
        const float dn = d * (1.0f - z);
        const float dz = d * (ld0(hp, idx) - nv);
        dh[idx] = d * z;
        const float dnp = dn * (1.0f - nv * nv);
        const float drp = dnp * hnv * r * (1.0f - r);
        const float dzp = dz * z * (1.0f - z);
        dgib[j] = drp;
        dgib[H + j] = dzp;
        dgib[2 * H + j] = dnp;
        dghb[j] = drp;
        dghb[H + j] = dzp;
        dghb[2 * H + j] = dnp * r;
    }
}

// h: out_t [B, H] (the activation).
__global__ void rnn_bw_kernel(int64_t B, int64_t H, const float *h, const float *go, float *dh,
                              float *dg, const int *lens, int64_t t, bool relu) {
    GRID_STRIDE(idx, B * H) {
        const int64_t b = idx / H;
        if (!active(lens, b, t)) {
            dg[idx] = 0.0f;
            continue;
        }
        const float hv = h[idx];
        const float d = dh[idx] + ld0(go, idx);
        dg[idx] = relu ? (hv > 0.0f ? d : 0.0f) : d * (1.0f - hv * hv);
        dh[idx] = 0.0f;
    }
}

// The gate math of one unit j of the fused step (lane 0): ai, ah = W_ih x, W_hh h per gate.
__device__ __forceinline__ void step_gates(ct_rnn_mode mode, int64_t H, int64_t j, int64_t idx,
                                           const float *ai, const float *ah, const float *bi,
                                           const float *bh, const float *hb, float *c,
                                           float *hn) {
    if (mode == CT_LSTM) {
        const float i = sigm(ai[0] + ah[0] + bsum(bi, bh, j));
        const float f = sigm(ai[1] + ah[1] + bsum(bi, bh, H + j));
        const float gg = tanhf(ai[2] + ah[2] + bsum(bi, bh, 2 * H + j));
        const float o = sigm(ai[3] + ah[3] + bsum(bi, bh, 3 * H + j));
        const float cv = f * c[idx] + i * gg;
        c[idx] = cv;
        hn[idx] = o * tanhf(cv);
    } else if (mode == CT_GRU) {
        const float r = sigm(ai[0] + ah[0] + bsum(bi, bh, j));
        const float z = sigm(ai[1] + ah[1] + bsum(bi, bh, H + j));
        const float hnv = ah[2] + (bh ? bh[2 * H + j] : 0.0f);
        const float nv = tanhf(ai[2] + (bi ? bi[2 * H + j] : 0.0f) + r * hnv);
        hn[idx] = nv + z * (hb[j] - nv);
    } else {
        const float p = ai[0] + ah[0] + bsum(bi, bh, j);
        hn[idx] = mode == CT_RNN_RELU ? relu_nan(p) : tanhf(p);
    }
}

// ---- the fused batch-B step (B small): a warp per (b, j) ------------------------------------
// x [B, n_in], h [B, H] (the old state, read by every warp), c [B, H] (LSTM, in place: only the
// warp of (b, j) touches c[b, j]), hn [B, H] out (the new h; must not alias h).
__global__ void step_layer_kernel(ct_rnn_mode mode, int64_t B, int64_t n_in, int64_t H,
                                  const float *x, const float *h, float *c, const float *w_ih,
                                  const float *w_hh, const float *bi, const float *bh,
                                  float *hn) {
    const int lane = threadIdx.x & 31;
    const int64_t warps = (int64_t)gridDim.x * (blockDim.x / 32);
    const int G = mode == CT_LSTM ? 4 : mode == CT_GRU ? 3 : 1;
    for (int64_t w = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32; w < B * H;
         w += warps) {
        const int64_t b = w / H, j = w - b * H;
        const float *xb = x + b * n_in, *hb = h + b * H;
        float ai[4] = {0.0f, 0.0f, 0.0f, 0.0f}, ah[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int64_t k = lane; k < n_in; k += 32) {
            const float xv = xb[k];
#pragma unroll
            for (int q = 0; q < 4; q++)
                if (q < G) ai[q] += w_ih[((int64_t)q * H + j) * n_in + k] * xv;
        }
        for (int64_t k = lane; k < H; k += 32) {
            const float hv = hb[k];
#pragma unroll
            for (int q = 0; q < 4; q++)
                if (q < G) ah[q] += w_hh[((int64_t)q * H + j) * H + k] * hv;
        }
#pragma unroll
        for (int q = 0; q < 4; q++) {
            if (q < G) {
                ai[q] = warp_sum(ai[q]);
                ah[q] = warp_sum(ah[q]);
            }
        }
        if (lane == 0) step_gates(mode, H, j, b * H + j, ai, ah, bi, bh, hb, c, hn);
    }
}

// y[b, v] = W[v, :] . h[b, :] + bias[v] (bias NULL: 0): a warp per (b, v)
__global__ void matvec_bias_kernel(int64_t B, int64_t V, int64_t H, const float *W,
                                   const float *bias, const float *h, float *y) {
    const int lane = threadIdx.x & 31;
    const int64_t warps = (int64_t)gridDim.x * (blockDim.x / 32);
    for (int64_t w = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32; w < B * V;
         w += warps) {
        const int64_t b = w / V, v = w - b * V;
        const float *wr = W + v * H, *hb = h + b * H;
        float a = 0.0f;
        for (int64_t k = lane; k < H; k += 32) a += wr[k] * hb[k];
        a = warp_sum(a);
        if (lane == 0) y[w] = a + (bias ? bias[v] : 0.0f);
    }
}

// ---- host helpers --------------------------------------------------------------------------
inline unsigned blocks_for(int64_t n) { return ct__cuda_blocks(n, kThreads); }
inline unsigned warp_blocks_for(int64_t warps) {
    return ct__cuda_blocks(warps * 32, kWarpThreads);
}

// The GEMM settings of one entry point: its device (current) and whether its products take
// bf16 inputs (ct__cuda_bf16, read once per call so that a call never mixes modes).
struct gemm_env {
    int dev;
    bool bf16;
};

// Row-major C[m, n] = alpha op(A)[m, k] op(B)[k, n] + beta C (ct__cuda_gemm: the column-major
// product C^T = op(B)^T op(A)^T). Ah / Bh: bf16 copies of A / B rounded already (packed: leading
// dim = the stored matrix's column count), used in bf16 mode only; NULL: rounded per call.
void gemm_rm(const gemm_env &e, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
             const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
             int64_t ldc, const __nv_bfloat16 *Ah = nullptr, const __nv_bfloat16 *Bh = nullptr) {
    ct__cuda_gemm(e.dev, e.bf16, ta, tb, m, n, k, alpha, A, lda, 0, Ah, B, ldb, 0, Bh, beta, C,
                  ldc, 0, 1);
}

// bf16 elements rounded up to 128 (256 bytes), for carving one scratch block into parts
inline int64_t pad128(int64_t n) { return (n + 127) / 128 * 128; }

// n bf16 elements of stream-ordered scratch (nullptr, and the error recorded, on failure)
__nv_bfloat16 *bf16_scratch(cudaStream_t s, int64_t n) {
    return (__nv_bfloat16 *)ct__cuda_scratch(sizeof(__nv_bfloat16) * (size_t)(n > 0 ? n : 1), s);
}
void scratch_free(cudaStream_t s, void *p) {
    if (p) CT_CU(cudaFreeAsync(p, s));
}

// db[n] = sum over the m rows of D[m, n] (row-major), ones: m floats of 1
void colsum(cublasHandle_t hb, int64_t m, int64_t n, const float *D, const float *ones,
            float *db) {
    const float one = 1.0f, zero = 0.0f;
    CT_CUBLAS(cublasSgemv(hb, CUBLAS_OP_N, (int)n, (int)m, &one, D, (int)n, ones, 1, &zero, db,
                          1));
}

void fill(cudaStream_t s, float *p, int64_t n, float v) {
    if (n <= 0) return;
    fill_kernel<<<blocks_for(n), kThreads, 0, s>>>(p, n, v);
    CT_CU_LAUNCH();
}

void copy_d2d(cudaStream_t s, float *dst, const float *src, int64_t n) {
    if (n <= 0 || dst == src) return;
    CT_CU(cudaMemcpyAsync(dst, src, sizeof(float) * (size_t)n, cudaMemcpyDeviceToDevice, s));
}

// The lengths (host int64, each in [1, T]) as int32 on the device, carried in kernel
// parameters (asynchronous, no staging buffer to keep alive, no host synchronisation).
void upload_lens(cudaStream_t s, int *dst, const int64_t *lens, int64_t B) {
    words_chunk c;
    for (int64_t o = 0; o < B; o += UPLOAD_WORDS) {
        c.n = (int)(B - o < UPLOAD_WORDS ? B - o : UPLOAD_WORDS);
        for (int i = 0; i < c.n; i++) c.v[i] = (uint32_t)(int32_t)lens[o + i];
        upload_kernel<<<1, kThreads, 0, s>>>((uint32_t *)(dst + o), c);
        CT_CU_LAUNCH();
    }
}

// n floats of host memory to the device: small ones in kernel parameters, others with a copy
// (from pageable memory, which waits for the stream first).
void upload_floats(cudaStream_t s, float *dst, const float *src, int64_t n) {
    if (n > 4 * UPLOAD_WORDS) {
        CT_CU(cudaMemcpyAsync(dst, src, sizeof(float) * (size_t)n, cudaMemcpyHostToDevice, s));
        return;
    }
    words_chunk c;
    for (int64_t o = 0; o < n; o += UPLOAD_WORDS) {
        c.n = (int)(n - o < UPLOAD_WORDS ? n - o : UPLOAD_WORDS);
        memcpy(c.v, src + o, sizeof(float) * (size_t)c.n);
        upload_kernel<<<1, kThreads, 0, s>>>((uint32_t *)(dst + o), c);
        CT_CU_LAUNCH();
    }
}

// Whether p is memory the device can address as device memory (device or managed); host
// pointers (pageable or pinned) answer false.
bool is_device_ptr(const void *p) {
    cudaPointerAttributes at;
    if (cudaPointerGetAttributes(&at, p) != cudaSuccess) {
        cudaGetLastError();   // plain host memory on old runtimes: not an error for us
        return false;
    }
    return at.type == cudaMemoryTypeDevice || at.type == cudaMemoryTypeManaged;
}

// ---- the gate kernels of one step, shared by the forward and the large-batch step --------
// g: this step's gates; gh: GRU's h W_hh^T or NULL; hp: h_{t-1} or NULL; cp, c: LSTM c_{t-1}
// (NULL: zeros) and c_t; aux_hn: GRU W_hn h + b_hn or NULL; out, hs as the kernels.
void gate_fw(cudaStream_t s, ct_rnn_mode mode, int64_t B, int64_t H, float *g, const float *gh,
             const float *bi, const float *bh, const float *hp, const float *cp, float *c,
             float *aux_hn, float *out, float *hs, const int *lens, int64_t t) {
    const unsigned nb = blocks_for(B * H);
    switch (mode) {
    case CT_LSTM:
        lstm_fw_kernel<<<nb, kThreads, 0, s>>>(B, H, g, bi, bh, cp, c, out, hs, lens, t);
        break;
    case CT_GRU:
        gru_fw_kernel<<<nb, kThreads, 0, s>>>(B, H, g, gh, bi, bh, hp, aux_hn, out, hs, lens, t);
        break;
    default:
        rnn_fw_kernel<<<nb, kThreads, 0, s>>>(B, H, g, bi, bh, out, hs, lens, t,
                                              mode == CT_RNN_RELU);
        break;
    }
    CT_CU_LAUNCH();
}

// ---- sizes ---------------------------------------------------------------------------------
int64_t cu_aux_floats(ct_rnn_mode mode, int64_t T, int64_t B, int64_t H) {
    return mode == CT_LSTM || mode == CT_GRU ? T * B * H : 0;
}

int64_t cu_fwd_work_floats(ct_rnn_mode mode, int64_t T, int64_t B, int64_t H) {
    (void)T;
    return pad64(B) + pad64(B * H) + (mode == CT_GRU ? pad64(3 * B * H) : 0);
}

int64_t cu_bwd_work_floats(ct_rnn_mode mode, int64_t T, int64_t B, int64_t H) {
    const int64_t GH = n_gates(mode) * H, TB = T * B;
    return pad64(B) + 2 * pad64(B * H) + pad64(TB * GH) * (mode == CT_GRU ? 2 : 1) + pad64(TB);
}

// ---- forward -------------------------------------------------------------------------------
void cu_forward(const ct_rnn_fwd_args *a) {
    const ct_rnn_mode mode = a->mode;
    const int64_t T = a->T, B = a->B, NI = a->n_in, H = a->H, GH = n_gates(mode) * H;
    const int64_t BH = B * H, TB = T * B;
    const bool masked = a->lens != nullptr;
    const int dev = ct__cuda_device_of(a->w_hh);
    cudaStream_t s = ct__cuda_stream(dev);
    const gemm_env ge = {dev, ct__cuda_bf16(dev)};
    int *lens = masked ? (int *)a->work : nullptr;
    float *hs = a->work + pad64(B);
    float *gh = hs + pad64(BH);            // GRU only
    // bf16: W_hh [GH, H] rounded once for the T steps | h_{t-1} [B, H] rounded at each step
    __nv_bfloat16 *whh_bf = nullptr, *hp_bf = nullptr;
    if (ge.bf16 && T > 0) {
        whh_bf = bf16_scratch(s, pad128(GH * H) + BH);
        if (!whh_bf) return;               // recorded
        hp_bf = whh_bf + pad128(GH * H);
        ct__cuda_round_bf16(s, whh_bf, a->w_hh, GH, H, H, 0, 1);
    }
    if (masked) upload_lens(s, lens, a->lens, B);
    // the input projection of every position
    if (a->tokens) {
        gemm_rm(ge, false, true, a->V, GH, NI, 1.0f, a->x, NI, a->w_ih, NI, 0.0f, a->table, GH);
        gather_kernel<<<blocks_for(TB * GH), kThreads, 0, s>>>(TB, GH, B, a->table, a->tokens,
                                                               lens, a->gates);
        CT_CU_LAUNCH();
    } else {
        gemm_rm(ge, false, true, TB, GH, NI, 1.0f, a->x, NI, a->w_ih, NI, 0.0f, a->gates, GH);
    }
    if (masked) {
        if (a->h0) copy_d2d(s, hs, a->h0, BH);
        else fill(s, hs, BH, 0.0f);
    }
    for (int64_t t = 0; t < T; t++) {
        float *g = a->gates + t * B * GH, *ot = a->out + t * BH;
        const float *hp = t == 0 ? a->h0 : masked ? hs : a->out + (t - 1) * BH;
        if (hp && ge.bf16) ct__cuda_round_bf16(s, hp_bf, hp, B, H, H, 0, 1);
        switch (mode) {
        case CT_LSTM: {
            if (hp)
                gemm_rm(ge, false, true, B, GH, H, 1.0f, hp, H, a->w_hh, H, 1.0f, g, GH, hp_bf,
                        whh_bf);
            const float *cp = t == 0 ? a->c0 : a->aux + (t - 1) * BH;
            gate_fw(s, mode, B, H, g, nullptr, a->b_ih, a->b_hh, hp, cp, a->aux + t * BH,
                    nullptr, ot, masked ? hs : nullptr, lens, t);
            break;
        }
        case CT_GRU:
            if (hp)
                gemm_rm(ge, false, true, B, GH, H, 1.0f, hp, H, a->w_hh, H, 0.0f, gh, GH, hp_bf,
                        whh_bf);
            gate_fw(s, mode, B, H, g, hp ? gh : nullptr, a->b_ih, a->b_hh, hp, nullptr, nullptr,
                    a->aux + t * BH, ot, masked ? hs : nullptr, lens, t);
            break;
        default:
            if (hp)
                gemm_rm(ge, false, true, B, GH, H, 1.0f, hp, H, a->w_hh, H, 1.0f, g, GH, hp_bf,
                        whh_bf);
            gate_fw(s, mode, B, H, g, nullptr, a->b_ih, a->b_hh, hp, nullptr, nullptr, nullptr,
                    ot, masked ? hs : nullptr, lens, t);
            break;
        }
    }
    if (a->h_n) copy_d2d(s, a->h_n, masked ? hs : a->out + (T - 1) * BH, BH);
    if (a->c_n && mode == CT_LSTM) copy_d2d(s, a->c_n, a->aux + (T - 1) * BH, BH);
    scratch_free(s, whh_bf);
}

// ---- backward ------------------------------------------------------------------------------
void cu_backward(const ct_rnn_bwd_args *a) {
    const ct_rnn_mode mode = a->mode;
    const int64_t T = a->T, B = a->B, NI = a->n_in, H = a->H, GH = n_gates(mode) * H;
    const int64_t BH = B * H, TB = T * B;
    const bool relu = mode == CT_RNN_RELU, masked = a->lens != nullptr;
    const int dev = ct__cuda_device_of(a->w_hh);
    cudaStream_t s = ct__cuda_stream(dev);
    cublasHandle_t hb = ct__cuda_blas(dev);
    const gemm_env ge = {dev, ct__cuda_bf16(dev)};
    int *lens = masked ? (int *)a->work : nullptr;
    float *dh = a->work + pad64(B), *dc = dh + pad64(BH), *dgi = dc + pad64(BH);
    float *dgh = mode == CT_GRU ? dgi + pad64(TB * GH) : dgi;
    float *ones = dgi + pad64(TB * GH) * (mode == CT_GRU ? 2 : 1);
    // bf16: W_hh [GH, H] rounded once | dG recurrent side [TB, GH], each step's rows rounded as
    // the loop makes them (LSTM / RNN: the same gradients as the input side, so they serve dx
    // and dW_ih too) | GRU without tokens: dG input side [TB, GH], rounded after the loop
    __nv_bfloat16 *whh_bf = nullptr, *dgh_bf = nullptr, *dgi_bf = nullptr;
    if (ge.bf16 && T > 0) {
        const bool own_dgi = mode == CT_GRU && !a->tokens && (a->dx || a->dw_ih);
        whh_bf = bf16_scratch(s, pad128(GH * H) + pad128(TB * GH) * (own_dgi ? 2 : 1));
        if (!whh_bf) return;               // recorded
        dgh_bf = whh_bf + pad128(GH * H);
        dgi_bf = own_dgi ? dgh_bf + pad128(TB * GH) : mode == CT_GRU ? nullptr : dgh_bf;
        ct__cuda_round_bf16(s, whh_bf, a->w_hh, GH, H, H, 0, 1);
    }
    if (masked) upload_lens(s, lens, a->lens, B);
    if (a->g_hn) copy_d2d(s, dh, a->g_hn, BH);
    else fill(s, dh, BH, 0.0f);
    if (mode == CT_LSTM) {
        if (a->g_cn) copy_d2d(s, dc, a->g_cn, BH);
        else fill(s, dc, BH, 0.0f);
    }
    const unsigned nb = blocks_for(BH);
    // the recurrence, backwards: gate gradients of step t, then dh_{t-1} += dG_t W_hh
    for (int64_t t = T - 1; t >= 0; t--) {
        const float *g = a->gates + t * B * GH, *go = a->g_out ? a->g_out + t * BH : nullptr;
        float *dgit = dgi + t * B * GH, *dght = dgh + t * B * GH;
        switch (mode) {
        case CT_LSTM: {
            const float *cp = t == 0 ? a->c0 : a->aux + (t - 1) * BH;
            lstm_bw_kernel<<<nb, kThreads, 0, s>>>(B, H, g, a->aux + t * BH, cp, go, dh, dc,
                                                   dgit, lens, t);
            break;
        }
        case CT_GRU: {
            const float *hp = t == 0 ? a->h0 : a->out + (t - 1) * BH;
            gru_bw_kernel<<<nb, kThreads, 0, s>>>(B, H, g, a->aux + t * BH, hp, go, dh, dgit,
                                                  dght, lens, t);
            break;
        }
        default:
            rnn_bw_kernel<<<nb, kThreads, 0, s>>>(B, H, a->out + t * BH, go, dh, dgit, lens, t,
                                                  relu);
            break;
        }
        CT_CU_LAUNCH();
        __nv_bfloat16 *dght_bf = dgh_bf ? dgh_bf + t * B * GH : nullptr;
        if (dght_bf) ct__cuda_round_bf16(s, dght_bf, dght, B, GH, GH, 0, 1);
        if (t > 0 || a->dh0)
            gemm_rm(ge, false, false, B, H, GH, 1.0f, dght, GH, a->w_hh, H, 1.0f, dh, H, dght_bf,
                    whh_bf);
    }
    if (dgi_bf && dgi_bf != dgh_bf) ct__cuda_round_bf16(s, dgi_bf, dgi, TB, GH, GH, 0, 1);
    // everything else over all steps at once
    if (a->tokens) {
        if (a->dx || a->dw_ih) {
            CT_CU(cudaMemsetAsync(a->table, 0, sizeof(float) * (size_t)(a->V * GH), s));
            scatter_add_kernel<<<blocks_for(TB * GH), kThreads, 0, s>>>(TB, GH, B, dgi, a->tokens,
                                                                        lens, a->table);
            CT_CU_LAUNCH();
            if (a->dx)
                gemm_rm(ge, false, false, a->V, NI, GH, 1.0f, a->table, GH, a->w_ih, NI, 0.0f,
                        a->dx, NI);
            if (a->dw_ih)
                gemm_rm(ge, true, false, GH, NI, a->V, 1.0f, a->table, GH, a->x, NI, 0.0f,
                        a->dw_ih, NI);
        }
    } else {
        if (a->dx)
            gemm_rm(ge, false, false, TB, NI, GH, 1.0f, dgi, GH, a->w_ih, NI, 0.0f, a->dx, NI,
                    dgi_bf);
        if (a->dw_ih)
            gemm_rm(ge, true, false, GH, NI, TB, 1.0f, dgi, GH, a->x, NI, 0.0f, a->dw_ih, NI,
                    dgi_bf);
    }
    if (a->dw_hh) {
        // H_prev = [h0; out[0 .. T-2]]: rows of inactive steps have zero gate gradients, and
        // an active row's out[t-1] is its h_{t-1} (lengths are prefixes)
        bool written = false;
        if (T > 1) {
            gemm_rm(ge, true, false, GH, H, (T - 1) * B, 1.0f, dgh + B * GH, GH, a->out, H, 0.0f,
                    a->dw_hh, H, dgh_bf ? dgh_bf + B * GH : nullptr);
            written = true;
        }
        if (a->h0) {
            gemm_rm(ge, true, false, GH, H, B, 1.0f, dgh, GH, a->h0, H, written ? 1.0f : 0.0f,
                    a->dw_hh, H, dgh_bf);
            written = true;
        }
        if (!written) CT_CU(cudaMemsetAsync(a->dw_hh, 0, sizeof(float) * (size_t)(GH * H), s));
    }
    if (a->db_ih || a->db_hh) {
        fill(s, ones, TB, 1.0f);
        if (a->db_ih) colsum(hb, TB, GH, dgi, ones, a->db_ih);
        if (a->db_hh) {
            if (mode != CT_GRU && a->db_ih) copy_d2d(s, a->db_hh, a->db_ih, GH);
            else colsum(hb, TB, GH, dgh, ones, a->db_hh);
        }
    }
    if (a->dh0) copy_d2d(s, a->dh0, dh, BH);
    if (a->dc0 && mode == CT_LSTM) copy_d2d(s, a->dc0, dc, BH);
    scratch_free(s, whh_bf);
}

}  // namespace

// ---- stepping ------------------------------------------------------------------------------
// Device scratch, allocated at the first step on the weights' device (stepper_new needs no
// device, so it cannot fail for want of one): x [B, n_in] | hn [L, B, H] | g [B, G*H] |
// gh [B, G*H]; logits [B, V] and a pinned host copy, (re)allocated when V grows.
struct ct_rnn_stepper {
    ct_rnn_mode mode;
    int L;
    int64_t B, n_in, H;
    int dev;                  // -1: nothing allocated yet
    float *buf, *x, *hn, *g, *gh;
    int64_t v_cap;
    float *logits, *host_logits;
};

namespace {

void release(ct_rnn_stepper *s) {
    if (s->dev < 0) return;
    int cur = 0;
    bool have_cur = cudaGetDevice(&cur) == cudaSuccess;
    CT_CU(cudaSetDevice(s->dev));
    if (s->buf) CT_CU(cudaFree(s->buf));
    if (s->logits) CT_CU(cudaFree(s->logits));
    if (s->host_logits) CT_CU(cudaFreeHost(s->host_logits));
    s->buf = s->x = s->hn = s->g = s->gh = s->logits = s->host_logits = nullptr;
    s->v_cap = 0;
    s->dev = -1;
    if (have_cur) CT_CU(cudaSetDevice(cur));
}

// The scratch on device dev (current); false when it could not be allocated (recorded).
bool ensure(ct_rnn_stepper *s, int dev, int64_t V) {
    if (s->dev != dev) {
        release(s);
        const int64_t GH = n_gates(s->mode) * s->H, BH = s->B * s->H;
        const int64_t n = pad64(s->B * s->n_in) + pad64(s->L * BH) + 2 * pad64(s->B * GH);
        float *p = nullptr;
        cudaError_t e = cudaMalloc((void **)&p, sizeof(float) * (size_t)n);
        if (e != cudaSuccess) {
            CT_CU(e);
            return false;
        }
        s->dev = dev;
        s->buf = s->x = p;
        s->hn = s->x + pad64(s->B * s->n_in);
        s->g = s->hn + pad64(s->L * BH);
        s->gh = s->g + pad64(s->B * GH);
    }
    if (V > s->v_cap) {
        if (s->logits) CT_CU(cudaFree(s->logits));
        if (s->host_logits) CT_CU(cudaFreeHost(s->host_logits));
        s->logits = s->host_logits = nullptr;
        s->v_cap = 0;
        cudaError_t e = cudaMalloc((void **)&s->logits, sizeof(float) * (size_t)(s->B * V));
        if (e == cudaSuccess)
            e = cudaMallocHost((void **)&s->host_logits, sizeof(float) * (size_t)(s->B * V));
        if (e != cudaSuccess) {
            CT_CU(e);
            return false;
        }
        s->v_cap = V;
    }
    return true;
}

ct_rnn_stepper *cu_stepper_new(ct_rnn_mode mode, int L, int64_t B, int64_t n_in, int64_t H) {
    ct_rnn_stepper *s = (ct_rnn_stepper *)calloc(1, sizeof *s);
    if (!s) return nullptr;
    s->mode = mode;
    s->L = L;
    s->B = B;
    s->n_in = n_in;
    s->H = H;
    s->dev = -1;
    return s;
}

void cu_stepper_free(ct_rnn_stepper *s) {
    if (!s) return;
    release(s);
    free(s);
}

// h, c: the state [L, B, H] in device memory; x, logits: host or device memory.
void cu_step(ct_rnn_stepper *s, const ct_rnn_step_args *a) {
    const ct_rnn_mode mode = a->mode;
    const int L = a->L;
    const int64_t B = a->B, H = a->H, GH = n_gates(mode) * H, BH = B * H, V = a->V;
    const int dev = ct__cuda_device_of(a->w_hh[0]);
    if (!ensure(s, dev, a->w_out ? V : 0)) return;
    cudaStream_t st = ct__cuda_stream(dev);
    const gemm_env ge = {dev, ct__cuda_bf16(dev)};   // the GEMM path only (B > STEP_FUSED_MAX)
    const float *xin = a->x;
    if (!is_device_ptr(a->x)) {
        upload_floats(st, s->x, a->x, B * a->n_in);
        xin = s->x;
    }
    int64_t in = a->n_in;
    for (int l = 0; l < L; l++) {
        const float *bi = a->b_ih ? a->b_ih[l] : nullptr, *bh = a->b_hh ? a->b_hh[l] : nullptr;
        const float *h = a->h + l * BH;
        float *c = a->c ? a->c + l * BH : nullptr, *hn = s->hn + l * BH;
        if (B <= STEP_FUSED_MAX) {
            step_layer_kernel<<<warp_blocks_for(BH), kWarpThreads, 0, st>>>(
                mode, B, in, H, xin, h, c, a->w_ih[l], a->w_hh[l], bi, bh, hn);
            CT_CU_LAUNCH();
        } else {
            gemm_rm(ge, false, true, B, GH, in, 1.0f, xin, in, a->w_ih[l], in, 0.0f, s->g, GH);
            if (mode == CT_GRU)
                gemm_rm(ge, false, true, B, GH, H, 1.0f, h, H, a->w_hh[l], H, 0.0f, s->gh, GH);
            else gemm_rm(ge, false, true, B, GH, H, 1.0f, h, H, a->w_hh[l], H, 1.0f, s->g, GH);
            gate_fw(st, mode, B, H, s->g, mode == CT_GRU ? s->gh : nullptr, bi, bh, h, c, c,
                    nullptr, hn, nullptr, nullptr, 0);
        }
        xin = hn;
        in = H;
    }
    copy_d2d(st, a->h, s->hn, (int64_t)L * BH);
    if (!a->w_out) return;
    const bool dev_logits = is_device_ptr(a->logits);
    float *y = dev_logits ? a->logits : s->logits;
    matvec_bias_kernel<<<warp_blocks_for(B * V), kWarpThreads, 0, st>>>(
        B, V, H, a->w_out, a->b_out, s->hn + (int64_t)(L - 1) * BH, y);
    CT_CU_LAUNCH();
    if (dev_logits) return;
    CT_CU(cudaMemcpyAsync(s->host_logits, y, sizeof(float) * (size_t)(B * V),
                          cudaMemcpyDeviceToHost, st));
    CT_CU(cudaStreamSynchronize(st));
    memcpy(a->logits, s->host_logits, sizeof(float) * (size_t)(B * V));
}

}  // namespace

extern "C" const struct ct_kernels_rnn ct_cuda_rnn = {
    cu_fwd_work_floats, cu_aux_floats, cu_forward,  cu_bwd_work_floats,
    cu_backward,        cu_stepper_new, cu_stepper_free, cu_step,
};
