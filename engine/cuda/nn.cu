// engine/cuda/nn.cu — CUDA kernels of the nn group (see engine/kernels_nn.h; the CPU reference
// is engine/cpu/nn.c, whose semantics these mirror).
//
// Layout: a reduction over the middle dim of a contiguous [outer, n, inner] tensor runs one
// block per row when inner == 1 (the row is contiguous: threads stride along it, warp-shuffle
// + shared-memory reductions), else one thread per (outer, inner) column walking the dim in
// order (adjacent threads read adjacent addresses, so the loads coalesce).
//
// Determinism: every sum uses a fixed reduction tree (no float atomics), so a result depends
// only on the input and its shape. Sums are in double as on the CPU. Products and differences
// that the CPU computes as separate IEEE-rounded operations (C11 with -ffp-contract=off) use
// the __f*_rn intrinsics here, which nvcc never fuses into an FMA. expf/logf/log1pf are CUDA's
// (within 2 ulp of the correctly rounded value), so results agree with the CPU to a few ulp,
// not bit for bit.
//
// Scratch memory (cross-entropy's per-row terms, the partial sums of a reduced BCE, the index
// check's three counters) comes from the stream-ordered pool (cudaMallocAsync/cudaFreeAsync
// on the device's stream): no cudaMalloc in the steady state.
#include <math.h>
#include <stdint.h>

#include "engine/cuda/cuda_internal.h"

// index.cu: out[o, idx[j], k] += src[o, j, k] for j in order (deterministic, no atomics).
void ct__cuda_index_add_rows(float *out, const int64_t *idx, int64_t n, const float *src,
                             int64_t outer, int64_t size, int64_t inner, cudaStream_t st);

namespace {

// ---- helpers ---------------------------------------------------------------------------------
cudaStream_t stream_of(const ct_tensor *t) {
    int d = t->storage->device.index;
    CT_CU(cudaSetDevice(d));
    return ct__cuda_stream(d);
}
inline const float *cf(const ct_tensor *t) { return (const float *)ct_data(t); }
inline float *mf(ct_tensor *t) { return (float *)ct_data(t); }
inline const int64_t *ci(const ct_tensor *t) { return (const int64_t *)ct_data(t); }

// Stream-ordered scratch; NULL (failure recorded) when the pool is out of memory.


struct SumD { __device__ double operator()(double a, double b) const { return a + b; } };
struct MaxF { __device__ float operator()(float a, float b) const { return fmaxf(a, b); } };

// Butterfly reduction: every lane ends with the same value (the combining ops are commutative,
// so partners compute identical results).
template <typename T, typename Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Reduction over the block (blockDim.x a multiple of 32, <= 1024); every thread gets the
// result. sh: 32 elements of shared memory, free for reuse after the call returns.
template <typename T, typename Op>
__device__ T block_reduce(T v, Op op, T identity, T *sh) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_reduce(v, op);
    __syncthreads();                 // sh may still be read by a previous call
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : identity;
    return warp_reduce(v, op);
}

// A max candidate: value and position. x beats the current best b when larger, or the first
// NaN (as the CPU's `beats`); ties (equal values, or both NaN) go to the lower position, so
// the combination is the first maximum whatever the order of combining.
struct MaxAt { float v; int64_t i; };
__device__ __forceinline__ bool beats(float x, float b) { return x > b || (x != x && b == b); }
__device__ __forceinline__ MaxAt max_combine(MaxAt a, MaxAt b) {
    if (beats(b.v, a.v)) return b;
    if (beats(a.v, b.v)) return a;
    return b.i < a.i ? b : a;
}
__device__ __forceinline__ MaxAt warp_max_at(MaxAt a) {
    for (int o = 16; o > 0; o >>= 1) {
        MaxAt b;
        b.v = __shfl_xor_sync(0xffffffffu, a.v, o);
        b.i = __shfl_xor_sync(0xffffffffu, a.i, o);
        a = max_combine(a, b);
    }
    return a;
}

// Fixed-order sum in double of the nparts partials: out_f (float) = sum * mul.
__global__ void final_sum_kernel(const double *part, int nparts, double mul, float *out_f) {
    __shared__ double sh[32];
    double s = 0;
    for (int i = threadIdx.x; i < nparts; i += blockDim.x) s += part[i];
    s = block_reduce(s, SumD(), 0.0, sh);
    if (threadIdx.x == 0) *out_f = (float)(s * mul);
}

// ---- softmax / log_softmax -------------------------------------------------------------------
// The row's max m (returned) and *s = sum_j exp(x[j] - m) in double, for every thread of the
// block; shf, shd: 32 elements of shared memory each.
__device__ float row_max_sumexp(const float *x, int64_t n, float *shf, double *shd, double *s) {
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) m = fmaxf(m, x[j]);
    m = block_reduce(m, MaxF(), -INFINITY, shf);
    double acc = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) acc += (double)expf(__fsub_rn(x[j], m));
    *s = block_reduce(acc, SumD(), 0.0, shd);
    return m;
}

__global__ void softmax_rows_kernel(float *o, const float *x, int64_t n, bool lg) {
    __shared__ float shf[32];
    __shared__ double shd[32];
    const float *xr = x + (int64_t)blockIdx.x * n;
    float *orow = o + (int64_t)blockIdx.x * n;
    double s;
    float m = row_max_sumexp(xr, n, shf, shd, &s);
    if (lg) {
        float sub = __fadd_rn(m, (float)log(s));
        for (int64_t j = threadIdx.x; j < n; j += blockDim.x) orow[j] = __fsub_rn(xr[j], sub);
    } else {
        float inv = (float)(1.0 / s);
        for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
            orow[j] = __fmul_rn(expf(__fsub_rn(xr[j], m)), inv);
    }
}

// one thread per (outer, inner) column; the CPU's blocked loop, position by position
__global__ void softmax_cols_kernel(float *o, const float *x, int64_t outer, int64_t n,
                                   int64_t inner, bool lg) {
    int64_t total = outer * inner;
    for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < total;
         c += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = c / inner, k = c - r * inner;
        const float *xb = x + r * n * inner + k;
        float *ob = o + r * n * inner + k;
        float m = xb[0];
        for (int64_t j = 1; j < n; j++) {
            float v = xb[j * inner];
            if (v > m) m = v;
        }
        double s = 0;
        for (int64_t j = 0; j < n; j++) {
            float e = expf(__fsub_rn(xb[j * inner], m));
            if (!lg) ob[j * inner] = e;
            s += e;
        }
        if (lg) {
            float sub = __fadd_rn(m, (float)log(s));
            for (int64_t j = 0; j < n; j++) ob[j * inner] = __fsub_rn(xb[j * inner], sub);
        } else {
            float inv = (float)(1.0 / s);
            for (int64_t j = 0; j < n; j++) ob[j * inner] = __fmul_rn(ob[j * inner], inv);
        }
    }
}

void cu_softmax(ct_tensor *out, const ct_tensor *a, int64_t outer, int64_t n, int64_t inner,
                bool lg) {
    if (n == 0 || outer == 0 || inner == 0) return;
    cudaStream_t st = stream_of(a);
    if (inner == 1) {
        softmax_rows_kernel<<<(unsigned)outer, ct__cuda_row_threads(n), 0, st>>>(mf(out), cf(a), n, lg);
    } else {
        softmax_cols_kernel<<<ct__cuda_blocks(outer * inner, 256), 256, 0, st>>>(
            mf(out), cf(a), outer, n, inner, lg);
    }
    CT_CU_LAUNCH();
}

__global__ void softmax_grad_rows_kernel(float *gi, const float *g, const float *y, int64_t n,
                                         bool lg) {
    __shared__ double shd[32];
    int64_t base = (int64_t)blockIdx.x * n;
    double acc = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
        acc += lg ? (double)g[base + j] : (double)g[base + j] * y[base + j];
    float a = (float)block_reduce(acc, SumD(), 0.0, shd);
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        float gv = g[base + j], yv = y[base + j];
        gi[base + j] = lg ? __fsub_rn(gv, __fmul_rn(expf(yv), a))
                          : __fmul_rn(yv, __fsub_rn(gv, a));
    }
}

__global__ void softmax_grad_cols_kernel(float *gi, const float *g, const float *y,
                                         int64_t outer, int64_t n, int64_t inner, bool lg) {
    int64_t total = outer * inner;
    for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < total;
         c += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = c / inner, k = c - r * inner, base = r * n * inner + k;
        double acc = 0;
        for (int64_t j = 0; j < n; j++) {
            int64_t q = base + j * inner;
            acc += lg ? (double)g[q] : (double)g[q] * y[q];
        }
        float a = (float)acc;
        for (int64_t j = 0; j < n; j++) {
            int64_t q = base + j * inner;
            gi[q] = lg ? __fsub_rn(g[q], __fmul_rn(expf(y[q]), a)) : __fmul_rn(y[q], __fsub_rn(g[q], a));
        }
    }
}

void cu_softmax_grad(ct_tensor *gin, const ct_tensor *gout, const ct_tensor *y, int64_t outer,
                     int64_t n, int64_t inner, bool lg) {
    if (n == 0 || outer == 0 || inner == 0) return;
    cudaStream_t st = stream_of(gout);
    if (inner == 1) {
        softmax_grad_rows_kernel<<<(unsigned)outer, ct__cuda_row_threads(n), 0, st>>>(mf(gin), cf(gout),
                                                                           cf(y), n, lg);
    } else {
        softmax_grad_cols_kernel<<<ct__cuda_blocks(outer * inner, 256), 256, 0, st>>>(
            mf(gin), cf(gout), cf(y), outer, n, inner, lg);
    }
    CT_CU_LAUNCH();
}

// ---- max ---------------------------------------------------------------------------------------
__global__ void max_rows_kernel(float *v, int64_t *ix, const float *x, int64_t n) {
    __shared__ float shv[32];
    __shared__ int64_t shi[32];
    const float *xr = x + (int64_t)blockIdx.x * n;
    MaxAt best = {-INFINITY, INT64_MAX};
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        MaxAt c = {xr[j], j};
        best = max_combine(best, c);
    }
    best = warp_max_at(best);
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    if (lane == 0) { shv[w] = best.v; shi[w] = best.i; }
    __syncthreads();
    if (w == 0) {
        MaxAt c = {-INFINITY, INT64_MAX};
        if (lane < nw) { c.v = shv[lane]; c.i = shi[lane]; }
        c = warp_max_at(c);
        if (lane == 0) {
            if (v) v[blockIdx.x] = c.v;
            if (ix) ix[blockIdx.x] = c.i;
        }
    }
}

__global__ void max_cols_kernel(float *v, int64_t *ix, const float *x, int64_t outer, int64_t n,
                                int64_t inner) {
    int64_t total = outer * inner;
    for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < total;
         c += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = c / inner, k = c - r * inner;
        const float *xb = x + r * n * inner + k;
        float b = xb[0];
        int64_t at = 0;
        for (int64_t j = 1; j < n; j++) {
            float xv = xb[j * inner];
            if (beats(xv, b)) { b = xv; at = j; }
        }
        if (v) v[c] = b;
        if (ix) ix[c] = at;
    }
}

void cu_max(ct_tensor *values, ct_tensor *indices, const ct_tensor *a, int64_t outer, int64_t n,
            int64_t inner) {
    if (n == 0 || outer == 0 || inner == 0) return;
    float *v = values ? mf(values) : NULL;
    int64_t *ix = indices ? (int64_t *)ct_data(indices) : NULL;
    if (!v && !ix) return;
    cudaStream_t st = stream_of(a);
    if (inner == 1)
        max_rows_kernel<<<(unsigned)outer, ct__cuda_row_threads(n), 0, st>>>(v, ix, cf(a), n);
    else
        max_cols_kernel<<<ct__cuda_blocks(outer * inner, 256), 256, 0, st>>>(v, ix, cf(a), outer,
                                                                           n, inner);
    CT_CU_LAUNCH();
}

__global__ void max_grad_kernel(float *gi, const float *g, const int64_t *ix, int64_t outer,
                                int64_t n, int64_t inner) {
    int64_t total = outer * inner;
    for (int64_t q = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; q < total;
         q += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = q / inner, k = q - r * inner;
        gi[(r * n + ix[q]) * inner + k] = g[q];
    }
}

void cu_max_grad(ct_tensor *gin, const ct_tensor *gout, const ct_tensor *indices, int64_t outer,
                 int64_t n, int64_t inner) {
    int64_t total = outer * n * inner;
    if (total == 0) return;
    cudaStream_t st = stream_of(gin);
    CT_CU(cudaMemsetAsync(mf(gin), 0, sizeof(float) * (size_t)total, st));
    max_grad_kernel<<<ct__cuda_blocks(outer * inner, 256), 256, 0, st>>>(
        mf(gin), cf(gout), ci(indices), outer, n, inner);
    CT_CU_LAUNCH();
}

// ---- index checks --------------------------------------------------------------------------------
// s[0]: the first bad position (all ones = none), s[1]: the number of in-range elements before
// it, s[2]: its value. Pass 1 finds the first bad position (integer atomicMin: order-free);
// pass 2 counts the good elements before it and stores the bad value.
__device__ __forceinline__ bool idx_good(int64_t v, int64_t hi) { return v >= 0 && v < hi; }

__global__ void check_first_bad_kernel(unsigned long long *s, const int64_t *p, int64_t n,
                                       int64_t hi, bool use_ignore, int64_t ignore) {
    __shared__ unsigned long long sh;
    if (threadIdx.x == 0) sh = ~0ULL;
    __syncthreads();
    unsigned long long first = ~0ULL;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t v = p[i];
        if ((use_ignore && v == ignore) || idx_good(v, hi)) continue;
        first = (unsigned long long)i;
        break;                        // later positions of this thread are larger
    }
    if (first != ~0ULL) atomicMin(&sh, first);
    __syncthreads();
    if (threadIdx.x == 0 && sh != ~0ULL) atomicMin(&s[0], sh);
}

__global__ void check_count_kernel(unsigned long long *s, const int64_t *p, int64_t n, int64_t hi,
                                   bool use_ignore, int64_t ignore) {
    __shared__ unsigned long long sh;
    if (threadIdx.x == 0) sh = 0;
    __syncthreads();
    unsigned long long first = s[0];
    int64_t lim = first == ~0ULL ? n : (int64_t)first;
    unsigned long long c = 0;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < lim;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t v = p[i];
        if (use_ignore && v == ignore) continue;
        if (idx_good(v, hi)) c++;
    }
    if (blockIdx.x == 0 && threadIdx.x == 0 && first != ~0ULL) s[2] = (unsigned long long)p[first];
    if (c) atomicAdd(&sh, c);
    __syncthreads();
    if (threadIdx.x == 0 && sh) atomicAdd(&s[1], sh);
}

int64_t cu_check_indices(const ct_tensor *idx, int64_t hi, bool use_ignore, int64_t ignore,
                         int64_t *count, int64_t *bad_value) {
    int64_t n = ct_numel(idx);
    *count = 0;
    if (n == 0) return -1;
    cudaStream_t st = stream_of(idx);
    unsigned long long *s = (unsigned long long *)ct__cuda_scratch(3 * sizeof(unsigned long long), st);
    if (!s) return -1;
    unsigned long long h[3] = {~0ULL, 0, 0};
    CT_CU(cudaMemcpyAsync(s, h, sizeof h, cudaMemcpyHostToDevice, st));
    unsigned blocks = ct__cuda_blocks(n, 256);
    if (blocks > 1024) blocks = 1024;
    check_first_bad_kernel<<<blocks, 256, 0, st>>>(s, ci(idx), n, hi, use_ignore, ignore);
    CT_CU_LAUNCH();
    check_count_kernel<<<blocks, 256, 0, st>>>(s, ci(idx), n, hi, use_ignore, ignore);
    CT_CU_LAUNCH();
    CT_CU(cudaMemcpyAsync(h, s, sizeof h, cudaMemcpyDeviceToHost, st));
    CT_CU(cudaFreeAsync(s, st));
    CT_CU(cudaStreamSynchronize(st));
    *count = (int64_t)h[1];
    if (h[0] == ~0ULL) return -1;
    *bad_value = (int64_t)h[2];
    return (int64_t)h[0];
}

// ---- cross-entropy -------------------------------------------------------------------------------
// One block per row: lse[i] and the row's loss term (double, in term[i]; 0 for ignored rows).
__global__ void ce_rows_kernel(float *lse, double *term, const float *x, const int64_t *t,
                               int64_t C, int64_t ignore) {
    __shared__ float shf[32];
    __shared__ double shd[32];
    int64_t i = blockIdx.x;
    int64_t ti = t[i];
    if (ti == ignore) {                 // uniform over the block
        if (threadIdx.x == 0) { lse[i] = 0; term[i] = 0; }
        return;
    }
    const float *row = x + i * C;
    double s;
    float m = row_max_sumexp(row, C, shf, shd, &s);
    if (threadIdx.x == 0) {
        double l = (double)m + log(s);
        lse[i] = (float)l;
        term[i] = l - (double)row[ti];
    }
}

void cu_cross_entropy(ct_tensor *loss, ct_tensor *tlse, const ct_tensor *logits,
                      const ct_tensor *targets, int64_t N, int64_t C, int64_t ignore,
                      float inv_count) {
    cudaStream_t st = stream_of(logits);
    if (N == 0) {
        float z = 0.0f * inv_count;
        CT_CU(cudaMemcpyAsync(mf(loss), &z, sizeof z, cudaMemcpyHostToDevice, st));
        CT_CU(cudaStreamSynchronize(st));          // z lives on this stack frame
        return;
    }
    double *term = (double *)ct__cuda_scratch(sizeof(double) * (size_t)N, st);
    if (!term) return;
    ce_rows_kernel<<<(unsigned)N, ct__cuda_row_threads(C), 0, st>>>(mf(tlse), term, cf(logits),
                                                          ci(targets), C, ignore);
    CT_CU_LAUNCH();
    final_sum_kernel<<<1, 1024, 0, st>>>(term, (int)N, (double)inv_count, mf(loss));
    CT_CU_LAUNCH();
    CT_CU(cudaFreeAsync(term, st));
}

__global__ void ce_grad_kernel(float *gi, const float *gout, const float *x, const float *lse,
                               const int64_t *t, int64_t N, int64_t C, int64_t ignore,
                               float inv_count) {
    float g = __fmul_rn(gout[0], inv_count);
    int64_t total = N * C;
    for (int64_t q = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; q < total;
         q += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = q / C, j = q - i * C, ti = t[i];
        if (ti == ignore) { gi[q] = 0; continue; }
        float e = __fmul_rn(g, expf(__fsub_rn(x[q], lse[i])));
        gi[q] = j == ti ? __fsub_rn(e, g) : e;
    }
}

void cu_cross_entropy_grad(ct_tensor *gin, const ct_tensor *gout, const ct_tensor *logits,
                           const ct_tensor *tlse, const ct_tensor *targets, int64_t N, int64_t C,
                           int64_t ignore, float inv_count) {
    if (N * C == 0) return;
    cudaStream_t st = stream_of(logits);
    ce_grad_kernel<<<ct__cuda_blocks(N * C, 256), 256, 0, st>>>(
        mf(gin), cf(gout), cf(logits), cf(tlse), ci(targets), N, C, ignore, inv_count);
    CT_CU_LAUNCH();
}

// ---- binary cross-entropy on logits ------------------------------------------------------------
__device__ __forceinline__ float bce1(float x, float y) {
    return __fadd_rn(__fsub_rn(fmaxf(x, 0.0f), __fmul_rn(x, y)), log1pf(expf(-fabsf(x))));
}
__device__ __forceinline__ float sigm(float x) {
    if (x >= 0) return __fdiv_rn(1.0f, __fadd_rn(1.0f, expf(-x)));
    float e = expf(x);
    return __fdiv_rn(e, __fadd_rn(1.0f, e));
}

__global__ void bce_kernel(float *o, const float *x, const float *y, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        o[i] = bce1(x[i], y[i]);
}

// Partial sums over a fixed grid (so the tree, and the result, depend only on n).
__global__ void bce_partial_kernel(double *part, const float *x, const float *y, int64_t n) {
    __shared__ double sh[32];
    double s = 0;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        s += bce1(x[i], y[i]);
    s = block_reduce(s, SumD(), 0.0, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

void cu_bce_with_logits(ct_tensor *out, const ct_tensor *tx, const ct_tensor *ty, int64_t n,
                        bool reduce, float scale) {
    cudaStream_t st = stream_of(tx);
    if (!reduce) {
        if (n == 0) return;
        bce_kernel<<<ct__cuda_blocks(n, 256), 256, 0, st>>>(mf(out), cf(tx), cf(ty), n);
        CT_CU_LAUNCH();
        return;
    }
    unsigned blocks = n > 0 ? ct__cuda_blocks(n, 256 * 4) : 1;
    if (blocks > 1024) blocks = 1024;
    double *part = (double *)ct__cuda_scratch(sizeof(double) * blocks, st);
    if (!part) return;
    if (n > 0) {
        bce_partial_kernel<<<blocks, 256, 0, st>>>(part, cf(tx), cf(ty), n);
        CT_CU_LAUNCH();
    } else {
        CT_CU(cudaMemsetAsync(part, 0, sizeof(double), st));
    }
    final_sum_kernel<<<1, 1024, 0, st>>>(part, (int)blocks, (double)scale, mf(out));
    CT_CU_LAUNCH();
    CT_CU(cudaFreeAsync(part, st));
}

__global__ void bce_grad_kernel(float *gx, float *gy, const float *g, const float *x,
                                const float *y, int64_t n, bool reduced, float scale) {
    float g0 = reduced ? __fmul_rn(g[0], scale) : 0.0f;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float gi = reduced ? g0 : g[i];
        if (gx) gx[i] = __fmul_rn(gi, __fsub_rn(sigm(x[i]), y[i]));
        if (gy) gy[i] = __fmul_rn(-gi, x[i]);
    }
}

void cu_bce_with_logits_grad(ct_tensor *tgx, ct_tensor *tgy, const ct_tensor *gout,
                             const ct_tensor *tx, const ct_tensor *ty, int64_t n, bool reduced,
                             float scale) {
    if (n == 0 || (!tgx && !tgy)) return;
    cudaStream_t st = stream_of(tx);
    bce_grad_kernel<<<ct__cuda_blocks(n, 256), 256, 0, st>>>(
        tgx ? mf(tgx) : NULL, tgy ? mf(tgy) : NULL, cf(gout), cf(tx), cf(ty), n, reduced, scale);
    CT_CU_LAUNCH();
}

// ---- embedding ---------------------------------------------------------------------------------
__global__ void embedding_kernel(float *o, const float *w, const int64_t *ix, int64_t M,
                                 int64_t D, int64_t s0, int64_t s1) {
    int64_t total = M * D;
    for (int64_t q = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; q < total;
         q += (int64_t)gridDim.x * blockDim.x) {
        int64_t m = q / D, d = q - m * D;
        o[q] = w[ix[m] * s0 + d * s1];
    }
}

void cu_embedding(ct_tensor *out, const ct_tensor *weight, const ct_tensor *indices, int64_t M,
                  int64_t D) {
    if (M * D == 0) return;
    cudaStream_t st = stream_of(weight);
    embedding_kernel<<<ct__cuda_blocks(M * D, 256), 256, 0, st>>>(
        mf(out), cf(weight), ci(indices), M, D, weight->stride[0], weight->stride[1]);
    CT_CU_LAUNCH();
}

// gw = zeros, then the rows of gout added in the order of m (as the CPU: bit-identical sums)
void cu_embedding_grad(ct_tensor *gw, const ct_tensor *gout, const ct_tensor *indices, int64_t M,
                       int64_t V, int64_t D) {
    if (V * D == 0) return;
    cudaStream_t st = stream_of(gw);
    CT_CU(cudaMemsetAsync(mf(gw), 0, sizeof(float) * (size_t)(V * D), st));
    if (M == 0) return;
    ct__cuda_index_add_rows(mf(gw), ci(indices), M, cf(gout), 1, V, D, st);
}

}  // namespace

extern "C" const struct ct_kernels_nn ct_cuda_nn = {
    /* .softmax = */ cu_softmax,
    /* .softmax_grad = */ cu_softmax_grad,
    /* .max = */ cu_max,
    /* .max_grad = */ cu_max_grad,
    /* .check_indices = */ cu_check_indices,
    /* .cross_entropy = */ cu_cross_entropy,
    /* .cross_entropy_grad = */ cu_cross_entropy_grad,
    /* .bce_with_logits = */ cu_bce_with_logits,
    /* .bce_with_logits_grad = */ cu_bce_with_logits_grad,
    /* .embedding = */ cu_embedding,
    /* .embedding_grad = */ cu_embedding_grad,
};
