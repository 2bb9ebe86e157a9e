// engine/cuda/optim.cu — CUDA kernels of the optimizers and of gradient clipping (see
// engine/kernels_optim.h; the CPU reference is engine/cpu/optim.c).
//
// One fused element-wise kernel per step. Every operation is an IEEE-rounded float multiply,
// add, divide or square root (the __f*_rn intrinsics, which nvcc never contracts into an FMA)
// in the CPU kernel's order, so an update gives the CPU's bits for the same inputs.
// sum_squares is deterministic, in double: per-block partials over a grid that depends only on
// n, then one block sums them in a fixed tree (it differs from the CPU's four running sums
// only by double rounding). The arrays are raw device pointers: ct__cuda_device_of picks the
// device and its stream.
#include <math.h>
#include <stdint.h>

#include "engine/cuda/cuda_internal.h"

namespace {

cudaStream_t stream_of_ptr(const void *p) { return ct__cuda_stream(ct__cuda_device_of(p)); }

#define GRID_STRIDE(i, n)                                                                  \
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n);              \
         i += (int64_t)gridDim.x * blockDim.x)

// ---- SGD -----------------------------------------------------------------------------------------
__global__ void sgd_kernel(float *p, const float *g, float *buf, int64_t n, ct_sgd_coefs c) {
    const float lr = c.lr, mom = c.momentum, omd = c.one_minus_dampening, wd = c.weight_decay;
    GRID_STRIDE(i, n) {
        float pp = p[i], gg = g[i];
        float d = c.use_wd ? __fadd_rn(gg, __fmul_rn(wd, pp)) : gg;
        if (!c.use_momentum) {
            p[i] = __fsub_rn(pp, __fmul_rn(lr, d));
            continue;
        }
        float b = c.first_step ? d : __fadd_rn(__fmul_rn(buf[i], mom), __fmul_rn(omd, d));
        buf[i] = b;
        float u = c.nesterov ? __fadd_rn(d, __fmul_rn(mom, b)) : b;
        p[i] = __fsub_rn(pp, __fmul_rn(lr, u));
    }
}

void cu_sgd(float *p, const float *g, float *buf, int64_t n, const ct_sgd_coefs *c) {
    if (n <= 0) return;
    cudaStream_t st = stream_of_ptr(p);
    sgd_kernel<<<ct__cuda_blocks(n, 256), 256, 0, st>>>(p, g, buf, n, *c);
    CT_CU_LAUNCH();
}

// ---- Adam / AdamW ----------------------------------------------------------------------------------
__global__ void adam_kernel(float *p, const float *g, float *m, float *v, int64_t n,
                            ct_adam_coefs c) {
    GRID_STRIDE(i, n) {
        float pp = p[i], gg = g[i];
        if (c.use_decay) pp = __fmul_rn(pp, c.decay);
        if (c.use_wd) gg = __fadd_rn(gg, __fmul_rn(c.weight_decay, pp));
        float mm = __fadd_rn(__fmul_rn(m[i], c.beta1), __fmul_rn(c.one_minus_beta1, gg));
        float vv = __fadd_rn(__fmul_rn(v[i], c.beta2), __fmul_rn(__fmul_rn(c.one_minus_beta2, gg), gg));
        float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vv), c.bc2_sqrt), c.eps);
        m[i] = mm;
        v[i] = vv;
        p[i] = __fadd_rn(pp, __fdiv_rn(__fmul_rn(c.neg_step_size, mm), denom));
    }
}

void cu_adam(float *p, const float *g, float *m, float *v, int64_t n, const ct_adam_coefs *c) {
    if (n <= 0) return;
    cudaStream_t st = stream_of_ptr(p);
    adam_kernel<<<ct__cuda_blocks(n, 256), 256, 0, st>>>(p, g, m, v, n, *c);
    CT_CU_LAUNCH();
}

// ---- clipping ----------------------------------------------------------------------------------
#define SS_THREADS 256
#define SS_MAX_BLOCKS 1024

__global__ void sum_squares_partial_kernel(double *part, const float *x, int64_t n) {
    __shared__ double sh[32];
    double s = 0;
    GRID_STRIDE(i, n) {
        double a = x[i];
        s += a * a;
    }
    s = ct__cu_block_sum(s, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

// part[nparts] (the total) = the partials summed in a fixed tree
__global__ void sum_final_kernel(double *part, int nparts) {
    __shared__ double sh[32];
    double s = 0;
    for (int i = threadIdx.x; i < nparts; i += blockDim.x) s += part[i];
    s = ct__cu_block_sum(s, sh);
    if (threadIdx.x == 0) part[nparts] = s;
}

double cu_sum_squares(const float *x, int64_t n) {
    if (n <= 0) return 0.0;
    cudaStream_t st = stream_of_ptr(x);
    unsigned blocks = ct__cuda_blocks(n, SS_THREADS * 8);
    if (blocks > SS_MAX_BLOCKS) blocks = SS_MAX_BLOCKS;
    double *part = (double *)ct__cuda_scratch(sizeof(double) * (blocks + 1), st);
    if (!part) return NAN;            // the failure is recorded; the caller's check reports it
    sum_squares_partial_kernel<<<blocks, SS_THREADS, 0, st>>>(part, x, n);
    CT_CU_LAUNCH();
    sum_final_kernel<<<1, 1024, 0, st>>>(part, (int)blocks);
    CT_CU_LAUNCH();
    double h = NAN;
    CT_CU(cudaMemcpyAsync(&h, part + blocks, sizeof h, cudaMemcpyDeviceToHost, st));
    CT_CU(cudaFreeAsync(part, st));
    CT_CU(cudaStreamSynchronize(st));
    return h;
}

__global__ void scale_kernel(float *x, int64_t n, float s) {
    GRID_STRIDE(i, n) x[i] = __fmul_rn(x[i], s);
}

void cu_scale(float *x, int64_t n, float s) {
    if (n <= 0) return;
    cudaStream_t st = stream_of_ptr(x);
    scale_kernel<<<ct__cuda_blocks(n, 256), 256, 0, st>>>(x, n, s);
    CT_CU_LAUNCH();
}

}  // namespace

extern "C" const struct ct_kernels_optim ct_cuda_optim = {
    /* .sgd = */ cu_sgd,
    /* .adam = */ cu_adam,
    /* .sum_squares = */ cu_sum_squares,
    /* .scale = */ cu_scale,
};
