// engine/cuda/layernorm.cu — CUDA kernels of the fused layer_norm op (see engine/kernels_nn.h,
// struct ct_kernels_layernorm; the CPU reference is engine/cpu/layernorm.c).
//
// Forward, one block per row: the sums of (x - K) and (x - K)^2 with the shift K = x[0], in
// double (warp shuffles + shared memory, a fixed tree), then y = (x - mean) * rstd * w + b.
// Backward: gx one block per row (sum(dy) and sum(dy * xhat) in double); gw and gb are column
// sums over the rows, in double: blocks of 32 columns x 16 row lanes over RC fixed row chunks,
// per-chunk partials (stream-ordered scratch when RC > 1), then the chunks summed in order.
// No atomics: the results depend only on the inputs and their shapes. The float arithmetic
// uses the __f*_rn intrinsics (never fused into an FMA) in the CPU's order; only the order of
// the double sums differs from the CPU, so results agree to about 1 ulp of float.
// `work` (the CPU kernel's double accumulators) is not needed here.
#include <math.h>
#include <stdint.h>

#include "engine/cuda/cuda_internal.h"

namespace {

cudaStream_t stream_of(const ct_tensor *t) {
    int d = t->storage->device.index;
    CT_CU(cudaSetDevice(d));
    return ct__cuda_stream(d);
}
inline const float *cf(const ct_tensor *t) { return t ? (const float *)ct_data(t) : NULL; }
inline float *mf(ct_tensor *t) { return t ? (float *)ct_data(t) : NULL; }

// ---- forward ------------------------------------------------------------------------------------
__global__ void ln_forward_kernel(float *y, float *mean, float *rstd, const float *x,
                                  const float *w, const float *b, int64_t D, float eps) {
    __shared__ double sh[32];
    int64_t r = blockIdx.x;
    if (D == 0) {                 // PyTorch: mean and variance of nothing are NaN
        if (threadIdx.x == 0) mean[r] = rstd[r] = NAN;
        return;
    }
    const float *xr = x + r * D;
    float *yr = y + r * D;
    double k = xr[0], s = 0, q = 0;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
        double d = (double)xr[j] - k;
        s += d;
        q += d * d;
    }
    s = ct__cu_block_sum(s, sh);
    q = ct__cu_block_sum(q, sh);
    s /= (double)D;
    double var = q / (double)D - s * s;
    if (var < 0) var = 0;
    double mu = k + s, rs = 1.0 / sqrt(var + (double)eps);
    float fm = (float)mu, fr = (float)rs;
    if (threadIdx.x == 0) {
        mean[r] = fm;
        rstd[r] = fr;
    }
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
        float v = __fmul_rn(__fsub_rn(xr[j], fm), fr);
        if (w) v = __fmul_rn(v, w[j]);
        if (b) v = __fadd_rn(v, b[j]);
        yr[j] = v;
    }
}

void ln_forward(ct_tensor *yt, ct_tensor *meant, ct_tensor *rstdt, const ct_tensor *xt,
                const ct_tensor *wt, const ct_tensor *bt, int64_t rows, int64_t D, float eps) {
    if (rows == 0) return;
    cudaStream_t st = stream_of(xt);
    ln_forward_kernel<<<(unsigned)rows, ct__cuda_row_threads(D), 0, st>>>(mf(yt), mf(meant), mf(rstdt),
                                                                cf(xt), cf(wt), cf(bt), D, eps);
    CT_CU_LAUNCH();
}

// ---- backward -----------------------------------------------------------------------------------
__global__ void ln_gx_kernel(float *gx, const float *g, const float *x, const float *mean,
                             const float *rstd, const float *w, int64_t D) {
    __shared__ double sh[32];
    int64_t r = blockIdx.x;
    const float *gr = g + r * D, *xr = x + r * D;
    float mu = mean[r], rs = rstd[r];
    double sa = 0, sb = 0;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
        float xh = __fmul_rn(__fsub_rn(xr[j], mu), rs);
        float dy = w ? __fmul_rn(gr[j], w[j]) : gr[j];
        sa += dy;
        sb += (double)dy * xh;
    }
    sa = ct__cu_block_sum(sa, sh);
    sb = ct__cu_block_sum(sb, sh);
    float ma = (float)(sa / (double)D), mb = (float)(sb / (double)D);
    float *gxr = gx + r * D;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
        float xh = __fmul_rn(__fsub_rn(xr[j], mu), rs);
        float dy = w ? __fmul_rn(gr[j], w[j]) : gr[j];
        gxr[j] = __fmul_rn(rs, __fsub_rn(__fsub_rn(dy, ma), __fmul_rn(xh, mb)));
    }
}

#define COLS 32
#define LANES 16

// Column sums of g * xhat (-> aw) and g (-> ab) over rows [chunk0, chunk1) of chunk
// blockIdx.y. With final_w/final_b set (one chunk), writes the float results directly.
__global__ void ln_cols_kernel(double *pw, double *pb, float *final_w, float *final_b,
                               const float *g, const float *x, const float *mean,
                               const float *rstd, int64_t rows, int64_t D, int64_t chunk) {
    __shared__ double sw[LANES][COLS], sbb[LANES][COLS];
    int64_t j = (int64_t)blockIdx.x * COLS + threadIdx.x;
    int64_t r0 = (int64_t)blockIdx.y * chunk, r1 = r0 + chunk < rows ? r0 + chunk : rows;
    double aw = 0, ab = 0;
    if (j < D) {
        for (int64_t r = r0 + threadIdx.y; r < r1; r += LANES) {
            float gv = g[r * D + j];
            float xh = __fmul_rn(__fsub_rn(x[r * D + j], mean[r]), rstd[r]);
            aw += (double)gv * xh;
            ab += gv;
        }
    }
    sw[threadIdx.y][threadIdx.x] = aw;
    sbb[threadIdx.y][threadIdx.x] = ab;
    __syncthreads();
    if (threadIdx.y == 0 && j < D) {
        for (int l = 1; l < LANES; l++) {
            aw += sw[l][threadIdx.x];
            ab += sbb[l][threadIdx.x];
        }
        if (final_w || final_b) {
            if (final_w) final_w[j] = (float)aw;
            if (final_b) final_b[j] = (float)ab;
        } else {
            pw[blockIdx.y * D + j] = aw;
            pb[blockIdx.y * D + j] = ab;
        }
    }
}

// the chunks' partials summed in chunk order
__global__ void ln_cols_final_kernel(float *gw, float *gb, const double *pw, const double *pb,
                                     int64_t D, int nchunks) {
    for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < D;
         j += (int64_t)gridDim.x * blockDim.x) {
        double aw = 0, ab = 0;
        for (int c = 0; c < nchunks; c++) {
            aw += pw[c * D + j];
            ab += pb[c * D + j];
        }
        if (gw) gw[j] = (float)aw;
        if (gb) gb[j] = (float)ab;
    }
}

void ln_backward(ct_tensor *gxt, ct_tensor *gwt, ct_tensor *gbt, ct_tensor *work,
                 const ct_tensor *goutt, const ct_tensor *xt, const ct_tensor *meant,
                 const ct_tensor *rstdt, const ct_tensor *wt, int64_t rows, int64_t D) {
    (void)work;
    if (D == 0) return;                 // nothing to write
    cudaStream_t st = stream_of(xt);
    float *gw = mf(gwt), *gb = mf(gbt);
    if (rows == 0) {                    // sums over no rows
        if (gw) CT_CU(cudaMemsetAsync(gw, 0, sizeof(float) * (size_t)D, st));
        if (gb) CT_CU(cudaMemsetAsync(gb, 0, sizeof(float) * (size_t)D, st));
        return;
    }
    if (gxt) {
        ln_gx_kernel<<<(unsigned)rows, ct__cuda_row_threads(D), 0, st>>>(mf(gxt), cf(goutt), cf(xt),
                                                               cf(meant), cf(rstdt), cf(wt), D);
        CT_CU_LAUNCH();
    }
    if (!gw && !gb) return;
    int64_t nchunks = (rows + 1023) / 1024;
    if (nchunks > 64) nchunks = 64;
    int64_t chunk = (rows + nchunks - 1) / nchunks;
    dim3 grid((unsigned)((D + COLS - 1) / COLS), (unsigned)nchunks), block(COLS, LANES);
    if (nchunks == 1) {
        ln_cols_kernel<<<grid, block, 0, st>>>(NULL, NULL, gw, gb, cf(goutt), cf(xt), cf(meant),
                                               cf(rstdt), rows, D, chunk);
        CT_CU_LAUNCH();
        return;
    }
    double *part = (double *)ct__cuda_scratch(sizeof(double) * 2 * (size_t)(nchunks * D), st);
    if (!part) return;
    ln_cols_kernel<<<grid, block, 0, st>>>(part, part + nchunks * D, NULL, NULL, cf(goutt),
                                           cf(xt), cf(meant), cf(rstdt), rows, D, chunk);
    CT_CU_LAUNCH();
    ln_cols_final_kernel<<<ct__cuda_blocks(D, 256), 256, 0, st>>>(gw, gb, part,
                                                                 part + nchunks * D, D,
                                                                 (int)nchunks);
    CT_CU_LAUNCH();
    CT_CU(cudaFreeAsync(part, st));
}

}  // namespace

extern "C" const struct ct_kernels_layernorm ct_cuda_layernorm = {
    /* .forward = */ ln_forward,
    /* .backward = */ ln_backward,
};
