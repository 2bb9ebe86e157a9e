// engine/cuda/cuda_internal.h — private to engine/cuda/*.cu: the contract between the CUDA
// backend's files (backend.cu: the table, allocator, copies, element-wise, GEMM, sum;
// nn.cu / index.cu / layernorm.cu / optim.cu / rnn.cu: the kernel groups).
//
// Errors: every CUDA runtime and cuBLAS call is checked with CT_CU / CT_CUBLAS, and every
// kernel launch is followed by CT_CU_LAUNCH(). Backend entry points return void (the table is
// shared with the CPU backend), so a failure is recorded in a per-thread sticky error
// ("file:line: expr: message") that the engine turns into a ct_status at its next check point
// (the backend's `check` hook: allocation, copy to host, the end of an op).
#ifndef CT_CUDA_INTERNAL_H
#define CT_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "engine/internal.h"
#include "engine/kernels_index.h"
#include "engine/kernels_nn.h"
#include "engine/kernels_optim.h"
#include "engine/kernels_rnn.h"
}

// At most this many CUDA devices are used (indices 0 .. CT_CUDA_MAX_DEVICES - 1).
#define CT_CUDA_MAX_DEVICES 64

// Records a failure (first one wins until taken). code: cudaError_t or cublasStatus_t; the
// message reads "cuda:N: <expr> failed at <file>:<line>: <what> (cudaError <code>)".
// Out-of-memory (cudaErrorMemoryAllocation, CUBLAS_STATUS_ALLOC_FAILED) becomes CT_E_NOMEM,
// everything else CT_E_DEVICE.
void ct__cuda_record(int code, const char *what, const char *expr, const char *file, int line);
// Records a failure with a message of one's own (first one wins until taken).
void ct__cuda_record_status(ct_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
// Takes (and clears) this thread's recorded failure: its status (CT_OK when none) and its
// message into msg. The backend's check hook (ct_cuda_backend.check) calls it and records
// the message in the ctx; kernel groups need not call it.
ct_status ct__cuda_take_error(char *msg, size_t n);

#define CT_CU(expr)                                                                        \
    do {                                                                                   \
        cudaError_t ct_e_ = (expr);                                                        \
        if (ct_e_ != cudaSuccess)                                                          \
            ct__cuda_record((int)ct_e_, cudaGetErrorString(ct_e_), #expr, __FILE__, __LINE__); \
    } while (0)

const char *ct__cublas_str(cublasStatus_t s);
#define CT_CUBLAS(expr)                                                                    \
    do {                                                                                   \
        cublasStatus_t ct_s_ = (expr);                                                     \
        if (ct_s_ != CUBLAS_STATUS_SUCCESS)                                                \
            ct__cuda_record((int)ct_s_, ct__cublas_str(ct_s_), #expr, __FILE__, __LINE__); \
    } while (0)

// After every <<<...>>> launch.
#define CT_CU_LAUNCH() CT_CU(cudaGetLastError())

// Per-device resources, created on first use: the stream every kernel of that device runs
// on, and a cuBLAS handle bound to that stream.
cudaStream_t ct__cuda_stream(int device);
cublasHandle_t ct__cuda_blas(int device);
// Makes p's device current (cudaSetDevice) and returns its index. Entry points that get
// tensors use the tensor's device index instead; this is for raw-pointer kernel groups.
// (With one device this is cudaSetDevice(0) and no pointer query.)
int ct__cuda_device_of(const void *p);
// cudaSetDevice, checked. Entry points that get tensors call it with t->storage->device.index.
void ct__cuda_set_device(int device);
// The device index of a tensor, made current: what an entry point calls first.
static inline int ct__cuda_use(const ct_tensor *t) {
    int d = t->storage->device.index;
    ct__cuda_set_device(d);
    return d;
}

// ---- GEMMs: every float32 product of the CUDA files goes through ct__cuda_gemm ------------------
// Precision switches of a device (device.cu; process-wide, set by ct_device_set_tf32/_bf16).
// Read ct__cuda_bf16 once at the start of an entry point and pass it down, so that one call
// (a whole RNN forward, say) never mixes the two modes.
extern "C" bool ct__cuda_tf32(int device);
extern "C" bool ct__cuda_bf16(int device);
extern "C" void ct__cuda_set_bf16(int device, bool on);

// Rounds `batch` row-major float32 matrices of rows x cols (leading dim ld, `stride` elements
// apart; stride is ignored when batch is 1) to bf16, round to nearest even (NaN stays NaN; a
// float that rounds past bf16's largest finite value becomes inf), into dst, packed: matrix b,
// row r, column c at dst[(b * rows + r) * cols + c]. One kernel on stream st. (backend.cu)
void ct__cuda_round_bf16(cudaStream_t st, __nv_bfloat16 *dst, const float *src, int64_t rows,
                         int64_t cols, int64_t ld, int64_t stride, int64_t batch);

// Row-major C[m, n] = alpha op(A)[m, k] op(B)[k, n] + beta C, float32 C, `batch` products with
// element strides sa, sb, sc (batch 1: strides unused; sa or sb 0 broadcasts that operand;
// never sc 0). The device must be current (the caller's ct__cuda_use / ct__cuda_device_of).
//  - bf16 false: cublasSgemm / cublasSgemmStridedBatched in the handle's math mode (float32,
//    or TF32 when ct_device_set_tf32 turned it on): exactly the calls cantor made before bf16
//    existed.
//  - bf16 true (and k > 0): A and B are rounded to bf16 (ct__cuda_round_bf16) into stream-
//    ordered scratch, then cublasGemmEx / cublasGemmStridedBatchedEx multiply them with
//    CUDA_R_16BF inputs, CUDA_R_32F output and CUBLAS_COMPUTE_32F (float32 accumulation, tensor
//    cores), whatever the TF32 setting. a_bf / b_bf (NULL: round here) are copies of A / B
//    that the caller rounded already, in the packed layout ct__cuda_round_bf16 writes: leading
//    dim = the stored matrix's column count (op(A) [m, k] with ta is stored [k, m]), one
//    matrix per product (rows * cols apart), or just one when batch is 1 or the operand
//    broadcasts (stride 0). This lets a recurrent layer round W_hh once for T steps.
// Sizes beyond cuBLAS's 32-bit int are recorded as CT_E_UNSUPPORTED. m, n or batch <= 0: no-op.
void ct__cuda_gemm(int device, bool bf16, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                   float alpha, const float *a, int64_t lda, int64_t sa, const __nv_bfloat16 *a_bf,
                   const float *b, int64_t ldb, int64_t sb, const __nv_bfloat16 *b_bf, float beta,
                   float *c, int64_t ldc, int64_t sc, int64_t batch);

// Device memory from ctx's caching allocator (backend.cu): for scratch space inside a kernel
// group (free it with ct__cuda_free before returning; stream order makes immediate reuse
// safe). NULL (and a recorded error) when out of memory.
void *ct__cuda_alloc(ct_ctx *ctx, int device, size_t nbytes);
// Short-lived scratch of the kernel groups (which get no context), on the current device's
// stream-ordered pool (cudaMallocAsync; free with cudaFreeAsync on the same stream). The pool
// keeps up to 64 MiB across synchronisations, so it is not cudaMalloc-slow. NULL (and the
// sticky error) on failure.
void *ct__cuda_scratch(size_t nbytes, cudaStream_t st);
void ct__cuda_free(ct_ctx *ctx, int device, void *p, size_t nbytes);

// A strided view for kernels, passed by value: element i (row-major order over shape) lives
// at data + offset + sum_d idx_d * stride[d]. ct__cu_view merges dims where it can.
typedef struct ct_cu_view {
    int ndim;
    int64_t shape[CT_MAX_DIMS];
    int64_t stride[CT_MAX_DIMS];
} ct_cu_view;

static inline ct_cu_view ct__cu_view(const ct_tensor *t) {
    ct_cu_view v;
    v.ndim = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] == 1) continue;
        if (v.ndim > 0 && v.stride[v.ndim - 1] == t->stride[d] * t->shape[d]) {
            v.shape[v.ndim - 1] *= t->shape[d];
            v.stride[v.ndim - 1] = t->stride[d];
            continue;
        }
        v.shape[v.ndim] = t->shape[d];
        v.stride[v.ndim] = t->stride[d];
        v.ndim++;
    }
    for (int d = v.ndim; d < CT_MAX_DIMS; d++) { v.shape[d] = 1; v.stride[d] = 0; }
    return v;
}

// The element offset (from the view's first element) of flat index i.
static __host__ __device__ inline int64_t ct__cu_offset(const ct_cu_view &v, int64_t i) {
    int64_t off = 0;
    for (int d = v.ndim - 1; d >= 0; d--) {
        int64_t s = v.shape[d];
        int64_t q = i / s;
        off += (i - q * s) * v.stride[d];
        i = q;
    }
    return off;
}

// Give kernels and helpers internal linkage (static, or an anonymous namespace, as
// backend.cu does): two files with a kernel or template of the same name would otherwise be
// merged silently by the linker.

// Launch geometry for n elements (grid-stride loops are fine too).
static inline unsigned ct__cuda_blocks(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    if (b > 65535LL * 32) b = 65535LL * 32;
    return (unsigned)b;
}

// Threads for one block per row of n elements: a multiple of 32, at most 256.
static inline int ct__cuda_row_threads(int64_t n) {
    if (n <= 32) return 32;
    if (n <= 64) return 64;
    if (n <= 128) return 128;
    return 256;
}

// Block sum of doubles (blockDim.x a multiple of 32, <= 1024); every thread gets the result.
// sh: 32 doubles of shared memory, free for reuse after the call returns.
static __device__ __forceinline__ double ct__cu_warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
static __device__ inline double ct__cu_block_sum(double v, double *sh) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = ct__cu_warp_sum(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : 0.0;
    return ct__cu_warp_sum(v);
}

// The kernel groups, one per file (NULL members = not supported on CUDA yet).
extern "C" const struct ct_kernels_nn ct_cuda_nn;                 // nn.cu
extern "C" const struct ct_kernels_index ct_cuda_index;           // index.cu
extern "C" const struct ct_kernels_layernorm ct_cuda_layernorm;   // layernorm.cu
extern "C" const struct ct_kernels_optim ct_cuda_optim;           // optim.cu
extern "C" const struct ct_kernels_rnn ct_cuda_rnn;               // rnn.cu

#endif
