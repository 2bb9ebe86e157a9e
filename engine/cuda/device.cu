// engine/cuda/device.cu — CUDA device discovery and the per-device resources every CUDA file
// uses: one stream and one cuBLAS handle per device, and the per-thread sticky error.
//
// PROCESS-WIDE STATE. The engine keeps no global mutable state, with one exception here: the
// device count, a stream + cuBLAS handle per device, and each device's precision switches
// (TF32, bf16: settings of that handle's GEMMs). The streams and handles wrap CUDA's primary
// context, which is process-wide anyway (one per device per process), so a per-ctx copy would
// only multiply handles onto the same context. They are created once, on first use, under a mutex
// (the count under pthread_once) and live until the process exits (never destroyed: tearing
// them down at exit races with the driver's own shutdown). Every device's kernels, copies and
// GEMMs run in order on that device's one stream, which is what makes the caching allocator's
// immediate reuse of a freed block safe. A cuBLAS handle may be used from several host threads
// as long as nobody changes its stream or settings concurrently; they are set once here (and
// by ct_device_set_tf32, whose caller must not run GEMMs on that device at the same time). The
// precision switches (TF32, bf16) are process-wide per device too, for the same reason.
//
// With no GPU or driver, cudaGetDeviceCount fails (error 35 on machines without a driver):
// that is reported as "no device", never as a crash.
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine/cuda/cuda_internal.h"

// ---- device count (cached: the runtime's answer does not change while the process runs) ----
static pthread_once_t count_once = PTHREAD_ONCE_INIT;
static int count_value;
static char count_why[160];

static void count_init(void) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        snprintf(count_why, sizeof count_why, "no usable CUDA device (%s)", cudaGetErrorString(err));
        cudaGetLastError();   // clear the sticky error
        count = 0;
    } else if (count == 0) {
        snprintf(count_why, sizeof count_why, "no CUDA device present");
    }
    if (count > CT_CUDA_MAX_DEVICES) count = CT_CUDA_MAX_DEVICES;
    count_value = count;
}

extern "C" int ct__cuda_device_count(char *why, size_t n) {
    pthread_once(&count_once, count_init);
    if (why && n) snprintf(why, n, "%s", count_value == 0 ? count_why : "");
    return count_value;
}

// "NVIDIA H200, 139.8 GiB, compute 9.0" into buf; 0, or a CUDA error code (buf then says why).
extern "C" int ct__cuda_device_name(int device, char *buf, size_t n) {
    cudaDeviceProp p;
    cudaError_t e = cudaGetDeviceProperties(&p, device);
    if (e != cudaSuccess) {
        cudaGetLastError();
        snprintf(buf, n, "%s", cudaGetErrorString(e));
        return (int)e;
    }
    snprintf(buf, n, "%s, %.1f GiB, compute %d.%d", p.name, (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0),
             p.major, p.minor);
    return 0;
}

// ---- per-device stream and cuBLAS handle ---------------------------------------------------
typedef struct dev_res {
    int ready;                // 1 once stream and blas are set (read with acquire)
    cudaStream_t stream;
    cublasHandle_t blas;
} dev_res;

static dev_res res[CT_CUDA_MAX_DEVICES];
static pthread_mutex_t res_lock = PTHREAD_MUTEX_INITIALIZER;

static dev_res *resources(int device) {
    if (device < 0 || device >= CT_CUDA_MAX_DEVICES) {
        ct__cuda_record_status(CT_E_DEVICE, "cuda:%d: no such device index (at most %d devices)",
                               device, CT_CUDA_MAX_DEVICES);
        device = 0;
    }
    dev_res *r = &res[device];
    if (__atomic_load_n(&r->ready, __ATOMIC_ACQUIRE)) return r;
    pthread_mutex_lock(&res_lock);
    if (!r->ready) {
        int prev = 0;
        CT_CU(cudaGetDevice(&prev));
        CT_CU(cudaSetDevice(device));
        cudaStream_t s = NULL;
        cublasHandle_t h = NULL;
        CT_CU(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
        CT_CUBLAS(cublasCreate(&h));
        if (h) {
            CT_CUBLAS(cublasSetStream(h, s));
            // plain fp32 GEMMs: TF32 tensor-core math is off unless a user asks for it
            CT_CUBLAS(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
            CT_CUBLAS(cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST));
        }
        // Scratch (ct__cuda_scratch) comes from the device's default stream-ordered pool: keep
        // up to 64 MiB of it across synchronisations (the default threshold, 0, hands it back
        // to the driver at every sync, which would make each scratch allocation as slow as
        // cudaMalloc). Not fatal when refused.
        cudaMemPool_t pool;
        uint64_t keep = 64ull << 20;
        if (cudaDeviceGetDefaultMemPool(&pool, device) != cudaSuccess ||
            cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep) != cudaSuccess)
            cudaGetLastError();
        r->stream = s;
        r->blas = h;
        CT_CU(cudaSetDevice(prev));
        if (s && h) __atomic_store_n(&r->ready, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&res_lock);
    return r;
}

cudaStream_t ct__cuda_stream(int device) { return resources(device)->stream; }
// The same for C files (engine/parallel/data_parallel.c runs NCCL on the engine's streams).
extern "C" cudaStream_t ct__cuda_stream_c(int device) { return resources(device)->stream; }

// ---- precision settings (ct_device_set_tf32 / ct_device_set_bf16) ---------------------------
// Per device and process-wide, like the handle they configure: TF32 is the cuBLAS handle's math
// mode (mirrored in tf32_on for the getter); bf16 is a flag that every GEMM of the CUDA files
// reads (ct__cuda_gemm's callers) at the start of the call. Both are plain atomics: a setting
// changed while another thread runs GEMMs on the device takes effect at its next call.
static int tf32_on[CT_CUDA_MAX_DEVICES];
static int bf16_on[CT_CUDA_MAX_DEVICES];

static bool valid_index(int device) { return device >= 0 && device < CT_CUDA_MAX_DEVICES; }

extern "C" void ct__cuda_set_tf32(int device, bool on) {
    if (!valid_index(device)) {   // resources() would fall back to (and reconfigure) cuda:0
        ct__cuda_record_status(CT_E_DEVICE, "cuda:%d: no such device index (at most %d devices)",
                               device, CT_CUDA_MAX_DEVICES);
        return;
    }
    dev_res *r = resources(device);
    if (!r->blas) return;         // recorded by resources(): the getter keeps its old answer
    CT_CUBLAS(cublasSetMathMode(r->blas, on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    __atomic_store_n(&tf32_on[device], on ? 1 : 0, __ATOMIC_RELEASE);
}
extern "C" bool ct__cuda_tf32(int device) {
    return valid_index(device) && __atomic_load_n(&tf32_on[device], __ATOMIC_ACQUIRE) != 0;
}
extern "C" void ct__cuda_set_bf16(int device, bool on) {
    if (valid_index(device)) __atomic_store_n(&bf16_on[device], on ? 1 : 0, __ATOMIC_RELEASE);
}
extern "C" bool ct__cuda_bf16(int device) {
    return valid_index(device) && __atomic_load_n(&bf16_on[device], __ATOMIC_ACQUIRE) != 0;
}
cublasHandle_t ct__cuda_blas(int device) { return resources(device)->blas; }

int ct__cuda_device_of(const void *p) {
    int dev = 0;
    if (ct__cuda_device_count(NULL, 0) > 1) {
        cudaPointerAttributes a;
        memset(&a, 0, sizeof a);
        cudaError_t e = cudaPointerGetAttributes(&a, p);
        if (e == cudaSuccess && a.type == cudaMemoryTypeDevice) dev = a.device;
        else if (e != cudaSuccess) CT_CU(e);
        else ct__cuda_record_status(CT_E_DEVICE, "a kernel was given %p, which is not CUDA device "
                                    "memory (a CPU tensor reached the CUDA backend?)", p);
    }
    CT_CU(cudaSetDevice(dev));
    return dev;
}

void ct__cuda_set_device(int device) { CT_CU(cudaSetDevice(device)); }

void *ct__cuda_scratch(size_t nbytes, cudaStream_t st) {
    // st is a device's engine stream (resources() made it, and set that device's pool to keep
    // 64 MiB of freed scratch across synchronisations)
    void *p = NULL;
    cudaError_t e = cudaMallocAsync(&p, nbytes, st);
    if (e != cudaSuccess) {
        ct__cuda_record((int)e, cudaGetErrorString(e), "cudaMallocAsync(scratch)", __FILE__,
                        __LINE__);
        cudaGetLastError();
        return NULL;
    }
    return p;
}

// ---- the per-thread sticky error -----------------------------------------------------------
typedef struct sticky {
    ct_status status;         // CT_OK when none
    char msg[CT_ERROR_MSG_MAX - 64];
} sticky;
static __thread sticky err_tls;

void ct__cuda_record_status(ct_status st, const char *fmt, ...) {
    if (err_tls.status != CT_OK) return;   // the first failure wins until taken
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_tls.msg, sizeof err_tls.msg, fmt, ap);
    va_end(ap);
    err_tls.status = st;
}

void ct__cuda_record(int code, const char *what, const char *expr, const char *file, int line) {
    if (err_tls.status != CT_OK) return;
    int dev = -1;
    if (cudaGetDevice(&dev) != cudaSuccess) dev = -1;
    // out-of-memory is CT_E_NOMEM (the caller may free memory and retry); all else CT_E_DEVICE
    bool blas = strncmp(expr, "cublas", 6) == 0;
    bool oom = blas ? code == (int)CUBLAS_STATUS_ALLOC_FAILED : code == (int)cudaErrorMemoryAllocation;
    char d[24];
    if (dev >= 0) snprintf(d, sizeof d, "cuda:%d", dev);
    else snprintf(d, sizeof d, "cuda");
    ct__cuda_record_status(oom ? CT_E_NOMEM : CT_E_DEVICE, "%s: %s failed at %s:%d: %s (%s %d)", d,
                           expr, file, line, what ? what : "?", blas ? "cublasStatus" : "cudaError",
                           code);
}

ct_status ct__cuda_take_error(char *msg, size_t n) {
    ct_status st = err_tls.status;
    if (st != CT_OK && msg && n) snprintf(msg, n, "%s", err_tls.msg);
    err_tls.status = CT_OK;
    err_tls.msg[0] = 0;
    return st;
}

const char *ct__cublas_str(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "cuBLAS not initialized (no device, or cublasCreate failed)";
    case CUBLAS_STATUS_ALLOC_FAILED: return "cuBLAS could not allocate memory";
    case CUBLAS_STATUS_INVALID_VALUE: return "invalid value (a size, leading dimension or stride)";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "the device does not support this operation";
    case CUBLAS_STATUS_MAPPING_ERROR: return "memory mapping error";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "cuBLAS internal error";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "not supported";
    case CUBLAS_STATUS_LICENSE_ERROR: return "license error";
    }
    return "unknown cuBLAS status";
}
