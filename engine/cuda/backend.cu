// engine/cuda/backend.cu — the CUDA kernel table: the caching device allocator (per ctx),
// copies, fill, element-wise math (the CPU backend's formulas, engine/cpu/backend.c), axpy,
// GEMM through cuBLAS, and deterministic sums. Everything runs on the device's one stream
// (device.cu); copies to the host synchronise it.
//
// Element-wise kernels take their operands' layouts by value (struct geo): the operands' dims
// are merged where every operand allows it (as engine/cpu/iter.h does), so most launches see
// one dense dim and take the contiguous path; the others decompose the flat index per dim.
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cuda/cuda_internal.h"
#include "engine/unary_math.h"

extern "C" {
#include "engine/device.h"
}

#define THREADS 256

// Everything but the table and ct__cuda_alloc/free has internal linkage (an anonymous
// namespace): kernel and helper names cannot clash with the other CUDA files'.
namespace {

// =============================================================================================
// The caching allocator. State hangs off the ctx (ctx->dev_cache), never process-wide: one
// context's blocks are never handed to another. Blocks are cudaMalloc'd at a rounded size
// (four size classes per power of two, so at most 25 % is wasted) and, when freed, kept on
// their class's free list until ct_ctx_empty_cache / ct_ctx_free. Reusing a block at once is
// safe because all work on a device runs in order on its one stream. Host-side records (a
// small hash table from pointer to record) remember each block's size and state.
// =============================================================================================
#define N_CLASSES 256

typedef struct blk {
    void *ptr;
    size_t size;         // rounded
    int cls, device;
    bool in_use;
    struct blk *next_free, *next_hash;
} blk;

typedef struct devcache {
    blk *free_list[N_CLASSES];
    ct_device_mem_stats st;
} devcache;

}  // namespace

struct ct_dev_cache {        // declared in engine/internal.h (ctx->dev_cache)
    devcache *dev[CT_CUDA_MAX_DEVICES];
    blk **hash;
    size_t n_buckets, n_blocks;
    blk *spare;          // recycled records
};

namespace {

static int size_class(size_t n, size_t *rounded) {
    if (n < 512) n = 512;
    int lg = 63 - __builtin_clzll((unsigned long long)n);   // 2^lg <= n
    size_t step = (size_t)1 << (lg - 2);
    size_t r = (n + step - 1) / step * step;
    int sub = (int)((r >> (lg - 2)) - 4);                   // 0..3, or 4 when r = 2^(lg+1)
    if (sub == 4) { lg++; sub = 0; }
    *rounded = r;
    return (lg - 9) * 4 + sub;
}

static size_t hash_of(const void *p, size_t n_buckets) {
    uint64_t x = (uint64_t)(uintptr_t)p >> 8;
    x *= 0x9E3779B97F4A7C15ull;
    return (size_t)(x >> 20) & (n_buckets - 1);
}

static bool hash_grow(ct_dev_cache *c) {
    size_t nb = c->n_buckets ? c->n_buckets * 2 : 1024;
    blk **h = (blk **)calloc(nb, sizeof *h);
    if (!h) return false;
    for (size_t i = 0; i < c->n_buckets; i++)
        for (blk *b = c->hash[i], *next; b; b = next) {
            next = b->next_hash;
            size_t k = hash_of(b->ptr, nb);
            b->next_hash = h[k];
            h[k] = b;
        }
    free(c->hash);
    c->hash = h;
    c->n_buckets = nb;
    return true;
}

static blk *hash_find(ct_dev_cache *c, const void *p) {
    if (!c->n_buckets) return NULL;
    for (blk *b = c->hash[hash_of(p, c->n_buckets)]; b; b = b->next_hash)
        if (b->ptr == p) return b;
    return NULL;
}

static void hash_remove(ct_dev_cache *c, blk *x) {
    blk **pp = &c->hash[hash_of(x->ptr, c->n_buckets)];
    while (*pp && *pp != x) pp = &(*pp)->next_hash;
    if (*pp) *pp = x->next_hash;
    c->n_blocks--;
}

static void cache_release(ct_ctx *ctx, bool destroy);

static ct_dev_cache *cache_of(ct_ctx *ctx, int device) {
    ct_dev_cache *c = ctx->dev_cache;
    if (!c) {
        c = (ct_dev_cache *)calloc(1, sizeof *c);
        if (!c) return NULL;
        ctx->dev_cache = c;
        ctx->dev_cache_release = cache_release;
    }
    if (!c->dev[device]) c->dev[device] = (devcache *)calloc(1, sizeof(devcache));
    return c->dev[device] ? c : NULL;
}

// cudaFree every cached (free) block of one device.
static void free_cached(ct_dev_cache *c, int device) {
    devcache *dc = c->dev[device];
    if (!dc) return;
    bool any = false;
    for (int k = 0; k < N_CLASSES && !any; k++) any = dc->free_list[k] != NULL;
    if (!any) return;
    ct__cuda_set_device(device);
    CT_CU(cudaStreamSynchronize(ct__cuda_stream(device)));   // no pending kernel still uses them
    for (int k = 0; k < N_CLASSES; k++) {
        while (dc->free_list[k]) {
            blk *b = dc->free_list[k];
            dc->free_list[k] = b->next_free;
            CT_CU(cudaFree(b->ptr));
            dc->st.device_frees++;
            dc->st.cached_bytes -= (int64_t)b->size;
            dc->st.reserved_bytes -= (int64_t)b->size;
            hash_remove(c, b);
            b->next_free = c->spare;
            c->spare = b;
        }
    }
}

static void cache_release(ct_ctx *ctx, bool destroy) {
    ct_dev_cache *c = ctx->dev_cache;
    if (!c) return;
    int prev = -1;
    if (cudaGetDevice(&prev) != cudaSuccess) prev = -1;
    for (int d = 0; d < CT_CUDA_MAX_DEVICES; d++) free_cached(c, d);
    if (destroy) {
        // blocks still in use belong to tensors that outlived their ctx (a module or optimizer
        // freed after ct_ctx_free): return them to the driver rather than leak device memory
        for (size_t i = 0; i < c->n_buckets; i++)
            for (blk *b = c->hash[i], *next; b; b = next) {
                next = b->next_hash;
                ct__cuda_set_device(b->device);
                CT_CU(cudaFree(b->ptr));
                free(b);
            }
        while (c->spare) {
            blk *b = c->spare;
            c->spare = b->next_free;
            free(b);
        }
        for (int d = 0; d < CT_CUDA_MAX_DEVICES; d++) free(c->dev[d]);
        free(c->hash);
        free(c);
        ctx->dev_cache = NULL;
        ctx->dev_cache_release = NULL;
    }
    if (prev >= 0) cudaSetDevice(prev);
}

}  // namespace

void *ct__cuda_alloc(ct_ctx *ctx, int device, size_t nbytes) {
    if (device < 0 || device >= CT_CUDA_MAX_DEVICES) {
        ct__cuda_record_status(CT_E_DEVICE, "cuda:%d: no such device", device);
        return NULL;
    }
    ct_dev_cache *c = cache_of(ctx, device);
    if (!c) {
        ct__cuda_record_status(CT_E_NOMEM, "cuda:%d: out of host memory for the allocator's records",
                               device);
        return NULL;
    }
    devcache *dc = c->dev[device];
    size_t r;
    int k = size_class(nbytes, &r);
    dc->st.allocs++;
    if (k < N_CLASSES && dc->free_list[k]) {
        blk *b = dc->free_list[k];
        dc->free_list[k] = b->next_free;
        b->in_use = true;
        dc->st.cache_hits++;
        dc->st.cached_bytes -= (int64_t)b->size;
        dc->st.in_use_bytes += (int64_t)b->size;
        return b->ptr;
    }
    if (k >= N_CLASSES) {
        ct__cuda_record_status(CT_E_NOMEM, "cuda:%d: %zu bytes is more than any device has",
                               device, nbytes);
        return NULL;
    }
    if ((c->n_blocks + 1) * 2 > c->n_buckets && !hash_grow(c)) {
        ct__cuda_record_status(CT_E_NOMEM, "cuda:%d: out of host memory for the allocator's records",
                               device);
        return NULL;
    }
    blk *b = c->spare;
    if (b) c->spare = b->next_free;
    else b = (blk *)malloc(sizeof *b);
    if (!b) {
        ct__cuda_record_status(CT_E_NOMEM, "cuda:%d: out of host memory for the allocator's records",
                               device);
        return NULL;
    }
    ct__cuda_set_device(device);
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, r);
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError();                     // not sticky; clear it and retry once
        free_cached(c, device);                 // with this ctx's cached blocks given back
        ct__cuda_set_device(device);
        e = cudaMalloc(&p, r);
    }
    if (e != cudaSuccess) {
        b->next_free = c->spare;
        c->spare = b;
        if (e == cudaErrorMemoryAllocation) {
            cudaGetLastError();
            size_t free_b = 0, total_b = 0;
            cudaMemGetInfo(&free_b, &total_b);
            cudaGetLastError();
            ct__cuda_record_status(CT_E_NOMEM, "cuda:%d: out of memory allocating %zu bytes (this "
                                   "context holds %lld bytes in tensors; the device has %zu of %zu "
                                   "bytes free): free tensors or use a smaller batch",
                                   device, nbytes, (long long)dc->st.in_use_bytes, free_b, total_b);
        } else {
            CT_CU(e);
        }
        return NULL;
    }
    b->ptr = p;
    b->size = r;
    b->cls = k;
    b->device = device;
    b->in_use = true;
    b->next_free = NULL;
    size_t h = hash_of(p, c->n_buckets);
    b->next_hash = c->hash[h];
    c->hash[h] = b;
    c->n_blocks++;
    dc->st.device_mallocs++;
    dc->st.in_use_bytes += (int64_t)r;
    dc->st.reserved_bytes += (int64_t)r;
    if (dc->st.reserved_bytes > dc->st.peak_reserved_bytes)
        dc->st.peak_reserved_bytes = dc->st.reserved_bytes;
    return p;
}

void ct__cuda_free(ct_ctx *ctx, int device, void *p, size_t nbytes) {
    (void)nbytes;
    if (!p) return;
    ct_dev_cache *c = ctx->dev_cache;
    blk *b = c ? hash_find(c, p) : NULL;
    if (!b || !b->in_use) {
        ct__cuda_record_status(CT_E_STATE, "cuda:%d: freeing %p, which %s", device, p,
                               b ? "was already freed" : "this context's allocator never handed out");
        return;
    }
    devcache *dc = c->dev[b->device];
    b->in_use = false;
    b->next_free = dc->free_list[b->cls];
    dc->free_list[b->cls] = b;
    dc->st.in_use_bytes -= (int64_t)b->size;
    dc->st.cached_bytes += (int64_t)b->size;
}

namespace {

void *cu_alloc(ct_ctx *ctx, ct_device d, size_t n) { return ct__cuda_alloc(ctx, d.index, n); }
static void cu_free(ct_ctx *ctx, ct_device d, void *p, size_t n) { ct__cuda_free(ctx, d.index, p, n); }

static void cu_mem_stats(const ct_ctx *ctx, int device, ct_device_mem_stats *out) {
    memset(out, 0, sizeof *out);
    const ct_dev_cache *c = ctx->dev_cache;
    if (c && device >= 0 && device < CT_CUDA_MAX_DEVICES && c->dev[device]) *out = c->dev[device]->st;
}

static ct_status cu_check(ct_ctx *ctx) {
    char msg[CT_ERROR_MSG_MAX - 64];
    ct_status st = ct__cuda_take_error(msg, sizeof msg);
    if (st != CT_OK && ctx) ct_fail(ctx, st, "%s", msg);
    return st;
}

// =============================================================================================
// Host <-> device copies. Both synchronise the stream: to_host so the caller can read dst,
// from_host so the caller may free or reuse src at once (a cudaMemcpyAsync from pageable
// memory may return before the data has been read; callers free such buffers right away).
// =============================================================================================
static void cu_to_host(void *dst, const void *src, size_t n) {
    if (!n) return;
    int d = ct__cuda_device_of(src);
    cudaStream_t s = ct__cuda_stream(d);
    CT_CU(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, s));
    CT_CU(cudaStreamSynchronize(s));
}

static void cu_from_host(void *dst, const void *src, size_t n) {
    if (!n) return;
    int d = ct__cuda_device_of(dst);
    cudaStream_t s = ct__cuda_stream(d);
    CT_CU(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, s));
    CT_CU(cudaStreamSynchronize(s));
}

// =============================================================================================
// Layouts of N operands of one shape (that of operand 0), dims merged where all allow.
// =============================================================================================
template <int N> struct geo {
    int ndim;
    int64_t n;
    int64_t shape[CT_MAX_DIMS];
    int64_t stride[N][CT_MAX_DIMS];
};

template <int N> static geo<N> make_geo(const ct_tensor *const *ts) {
    geo<N> g;
    const ct_tensor *t0 = ts[0];
    g.ndim = 0;
    g.n = ct_numel(t0);
    for (int d = 0; d < t0->ndim; d++) {
        if (t0->shape[d] == 1) continue;
        if (g.ndim > 0) {
            bool merge = true;
            for (int k = 0; k < N; k++)
                if (g.stride[k][g.ndim - 1] != ts[k]->stride[d] * t0->shape[d]) { merge = false; break; }
            if (merge) {
                g.shape[g.ndim - 1] *= t0->shape[d];
                for (int k = 0; k < N; k++) g.stride[k][g.ndim - 1] = ts[k]->stride[d];
                continue;
            }
        }
        g.shape[g.ndim] = t0->shape[d];
        for (int k = 0; k < N; k++) g.stride[k][g.ndim] = ts[k]->stride[d];
        g.ndim++;
    }
    for (int d = g.ndim; d < CT_MAX_DIMS; d++) {
        g.shape[d] = 1;
        for (int k = 0; k < N; k++) g.stride[k][d] = 0;
    }
    return g;
}

// every operand dense in element order: index i is element i of each
template <int N> static bool dense(const geo<N> &g) {
    if (g.ndim == 0) return true;
    if (g.ndim > 1) return false;
    for (int k = 0; k < N; k++)
        if (g.stride[k][0] != 1) return false;
    return true;
}

template <int N> __device__ inline void offsets(const geo<N> &g, int64_t i, int64_t *off) {
    for (int k = 0; k < N; k++) off[k] = 0;
    for (int d = g.ndim - 1; d >= 0; d--) {
        int64_t s = g.shape[d];
        int64_t q = i / s;
        int64_t c = i - q * s;
        for (int k = 0; k < N; k++) off[k] += c * g.stride[k][d];
        i = q;
    }
}

static char *base_of(const ct_tensor *t) {
    return (char *)t->storage->data + t->offset * (int64_t)ct_dtype_size(t->dtype);
}

#define GRID_LOOP(i, n)                                                                  \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);            \
         i += (int64_t)gridDim.x * blockDim.x)

// ---- copy and fill -----------------------------------------------------------------------
template <typename T> __global__ void k_copy(geo<2> g, T *dst, const T *src) {
    GRID_LOOP(i, g.n) {
        int64_t o[2];
        offsets<2>(g, i, o);
        dst[o[0]] = src[o[1]];
    }
}

static void cu_copy(ct_tensor *dst, const ct_tensor *src) {
    const ct_tensor *ts[2] = {dst, src};
    geo<2> g = make_geo<2>(ts);
    if (g.n == 0) return;
    int d = ct__cuda_use(dst);
    cudaStream_t s = ct__cuda_stream(d);
    size_t es = ct_dtype_size(dst->dtype);
    if (dense(g)) {
        CT_CU(cudaMemcpyAsync(base_of(dst), base_of(src), (size_t)g.n * es, cudaMemcpyDeviceToDevice, s));
        return;
    }
    unsigned blocks = ct__cuda_blocks(g.n, THREADS);
    if (es == 8)
        k_copy<unsigned long long><<<blocks, THREADS, 0, s>>>(g, (unsigned long long *)base_of(dst),
                                                               (const unsigned long long *)base_of(src));
    else
        k_copy<unsigned int><<<blocks, THREADS, 0, s>>>(g, (unsigned int *)base_of(dst),
                                                         (const unsigned int *)base_of(src));
    CT_CU_LAUNCH();
}

template <typename T> __global__ void k_fill(geo<1> g, T *dst, T v) {
    GRID_LOOP(i, g.n) {
        int64_t o[1];
        offsets<1>(g, i, o);
        dst[o[0]] = v;
    }
}

static void cu_fill(ct_tensor *dst, double v) {
    const ct_tensor *ts[1] = {dst};
    geo<1> g = make_geo<1>(ts);
    if (g.n == 0) return;
    int d = ct__cuda_use(dst);
    cudaStream_t s = ct__cuda_stream(d);
    unsigned blocks = ct__cuda_blocks(g.n, THREADS);
    if (dst->dtype == CT_F32) {
        float f = (float)v;
        if (dense(g) && f == 0.0f) {          // as the CPU: memset, also for -0.0
            CT_CU(cudaMemsetAsync(base_of(dst), 0, (size_t)g.n * 4, s));
            return;
        }
        k_fill<float><<<blocks, THREADS, 0, s>>>(g, (float *)base_of(dst), f);
    } else {
        long long x = (long long)v;
        if (dense(g) && x == 0) {
            CT_CU(cudaMemsetAsync(base_of(dst), 0, (size_t)g.n * 8, s));
            return;
        }
        k_fill<long long><<<blocks, THREADS, 0, s>>>(g, (long long *)base_of(dst), x);
    }
    CT_CU_LAUNCH();
}

// ---- binary ------------------------------------------------------------------------------
template <int OP> __device__ inline float bin1(float x, float y) {
    if (OP == CT_BIN_ADD) return x + y;
    if (OP == CT_BIN_SUB) return x - y;
    if (OP == CT_BIN_MUL) return x * y;
    if (OP == CT_BIN_DIV) return x / y;
    return powf(x, y);
}

template <int OP> __global__ void k_binary_dense(int64_t n, float *o, const float *a, const float *b) {
    GRID_LOOP(i, n) o[i] = bin1<OP>(a[i], b[i]);
}

template <int OP> __global__ void k_binary(geo<3> g, float *o, const float *a, const float *b) {
    GRID_LOOP(i, g.n) {
        int64_t f[3];
        offsets<3>(g, i, f);
        o[f[0]] = bin1<OP>(a[f[1]], b[f[2]]);
    }
}

template <int OP> static void launch_binary(const geo<3> &g, cudaStream_t s, float *o, const float *a,
                                            const float *b) {
    unsigned blocks = ct__cuda_blocks(g.n, THREADS);
    if (dense(g)) k_binary_dense<OP><<<blocks, THREADS, 0, s>>>(g.n, o, a, b);
    else k_binary<OP><<<blocks, THREADS, 0, s>>>(g, o, a, b);
    CT_CU_LAUNCH();
}

static void cu_binary(ct_binop op, ct_tensor *out, const ct_tensor *a, const ct_tensor *b) {
    const ct_tensor *ts[3] = {out, a, b};
    geo<3> g = make_geo<3>(ts);
    if (g.n == 0) return;
    int d = ct__cuda_use(out);
    cudaStream_t s = ct__cuda_stream(d);
    float *o = (float *)base_of(out);
    const float *x = (const float *)base_of(a), *y = (const float *)base_of(b);
    switch (op) {
    case CT_BIN_ADD: launch_binary<CT_BIN_ADD>(g, s, o, x, y); break;
    case CT_BIN_SUB: launch_binary<CT_BIN_SUB>(g, s, o, x, y); break;
    case CT_BIN_MUL: launch_binary<CT_BIN_MUL>(g, s, o, x, y); break;
    case CT_BIN_DIV: launch_binary<CT_BIN_DIV>(g, s, o, x, y); break;
    case CT_BIN_POW: launch_binary<CT_BIN_POW>(g, s, o, x, y); break;
    default:
        ct__cuda_record_status(CT_E_UNSUPPORTED, "cuda:%d: binary op %d is unknown", d, (int)op);
        break;
    }
}

// ---- unary and its gradient (the formulas of engine/unary_math.h, shared with the CPU) ------
__global__ void k_unary_dense(int64_t n, int op, float *o, const float *a, float p0, float p1) {
    GRID_LOOP(i, n) o[i] = ct__unary1((ct_unop)op, a[i], p0, p1);
}

__global__ void k_unary(geo<2> g, int op, float *o, const float *a, float p0, float p1) {
    GRID_LOOP(i, g.n) {
        int64_t f[2];
        offsets<2>(g, i, f);
        o[f[0]] = ct__unary1((ct_unop)op, a[f[1]], p0, p1);
    }
}

static void cu_unary(ct_unop op, ct_tensor *out, const ct_tensor *a, float p0, float p1) {
    const ct_tensor *ts[2] = {out, a};
    geo<2> g = make_geo<2>(ts);
    if (g.n == 0) return;
    int d = ct__cuda_use(out);
    cudaStream_t s = ct__cuda_stream(d);
    unsigned blocks = ct__cuda_blocks(g.n, THREADS);
    float *o = (float *)base_of(out);
    const float *x = (const float *)base_of(a);
    if (dense(g)) k_unary_dense<<<blocks, THREADS, 0, s>>>(g.n, (int)op, o, x, p0, p1);
    else k_unary<<<blocks, THREADS, 0, s>>>(g, (int)op, o, x, p0, p1);
    CT_CU_LAUNCH();
}

__global__ void k_unary_grad_dense(int64_t n, int op, float *gi, const float *go, const float *a,
                                   const float *y, float p0, float p1) {
    GRID_LOOP(i, n) gi[i] = go[i] * ct__dunary1((ct_unop)op, a[i], y[i], p0, p1);
}

__global__ void k_unary_grad(geo<4> g, int op, float *gi, const float *go, const float *a,
                             const float *y, float p0, float p1) {
    GRID_LOOP(i, g.n) {
        int64_t f[4];
        offsets<4>(g, i, f);
        gi[f[0]] = go[f[1]] * ct__dunary1((ct_unop)op, a[f[2]], y[f[3]], p0, p1);
    }
}

static void cu_unary_grad(ct_unop op, ct_tensor *gin, const ct_tensor *gout, const ct_tensor *a,
                          const ct_tensor *y, float p0, float p1) {
    const ct_tensor *ts[4] = {gin, gout, a, y};
    geo<4> g = make_geo<4>(ts);
    if (g.n == 0) return;
    int d = ct__cuda_use(gin);
    cudaStream_t s = ct__cuda_stream(d);
    unsigned blocks = ct__cuda_blocks(g.n, THREADS);
    float *gi = (float *)base_of(gin);
    const float *go = (const float *)base_of(gout), *x = (const float *)base_of(a),
                *yy = (const float *)base_of(y);
    if (dense(g)) k_unary_grad_dense<<<blocks, THREADS, 0, s>>>(g.n, (int)op, gi, go, x, yy, p0, p1);
    else k_unary_grad<<<blocks, THREADS, 0, s>>>(g, (int)op, gi, go, x, yy, p0, p1);
    CT_CU_LAUNCH();
}

// ---- axpy --------------------------------------------------------------------------------
__global__ void k_axpy_dense(int64_t n, float *t, float alpha, const float *x) {
    GRID_LOOP(i, n) t[i] += alpha * x[i];
}

__global__ void k_axpy(geo<2> g, float *t, float alpha, const float *x) {
    GRID_LOOP(i, g.n) {
        int64_t f[2];
        offsets<2>(g, i, f);
        t[f[0]] += alpha * x[f[1]];
    }
}

static void cu_axpy(ct_tensor *t, float alpha, const ct_tensor *x) {
    const ct_tensor *ts[2] = {t, x};
    geo<2> g = make_geo<2>(ts);
    if (g.n == 0) return;
    int d = ct__cuda_use(t);
    cudaStream_t s = ct__cuda_stream(d);
    unsigned blocks = ct__cuda_blocks(g.n, THREADS);
    if (dense(g)) k_axpy_dense<<<blocks, THREADS, 0, s>>>(g.n, (float *)base_of(t), alpha, (const float *)base_of(x));
    else k_axpy<<<blocks, THREADS, 0, s>>>(g, (float *)base_of(t), alpha, (const float *)base_of(x));
    CT_CU_LAUNCH();
}

// =============================================================================================
// GEMM through cuBLAS. cuBLAS is column-major; a row-major matrix is the column-major view of
// its transpose, so C = op(A) op(B) (row-major) is computed as C^T = op(B)^T op(A)^T: the
// operands swap places and keep their transpose flags, with m and n swapped.
// ct__cuda_gemm (cuda_internal.h) is the one place that calls cuBLAS's GEMMs: cu_gemm here and
// the recurrent layers (rnn.cu) go through it, so the bf16 mode (ct_device_set_bf16) covers
// every product: the operands are rounded to bf16 into packed scratch and multiplied by
// cublasGemmEx with float32 accumulation and a float32 C.
// =============================================================================================
__global__ void k_scale_c(int64_t m, int64_t n, float beta, float *c, int64_t ldc, int64_t sc,
                          int64_t batch) {
    GRID_LOOP(i, m * n * batch) {
        int64_t b = i / (m * n), r = (i / n) % m, col = i % n;
        float *p = c + b * sc + r * ldc + col;
        *p = beta == 0.0f ? 0.0f : beta * *p;
    }
}

// dst[i] = bf16(src[i]) (round to nearest even): a dense source
__global__ void k_round_bf16_dense(__nv_bfloat16 *dst, const float *src, int64_t n) {
    GRID_LOOP(i, n) dst[i] = __float2bfloat16_rn(src[i]);
}

// dst packed [batch, rows, cols] from src's matrix b, row r, column c at b * stride + r * ld + c
__global__ void k_round_bf16(__nv_bfloat16 *dst, const float *src, int64_t rows, int64_t cols,
                             int64_t ld, int64_t stride, int64_t n) {
    GRID_LOOP(i, n) {
        const int64_t q = i / cols, c = i - q * cols;
        const int64_t b = q / rows, r = q - b * rows;
        dst[i] = __float2bfloat16_rn(src[b * stride + r * ld + c]);
    }
}

static bool fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

static void cu_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                    const float *a, int64_t lda, int64_t sa, const float *b, int64_t ldb,
                    int64_t sb, float beta, float *c, int64_t ldc, int64_t sc, int64_t batch) {
    if (m <= 0 || n <= 0 || batch <= 0) return;
    int d = ct__cuda_device_of(c);
    if (k == 0) {            // C = beta * C (beta 0: zeros, whatever C held)
        cudaStream_t s = ct__cuda_stream(d);
        k_scale_c<<<ct__cuda_blocks(m * n * batch, THREADS), THREADS, 0, s>>>(m, n, beta, c, ldc, sc, batch);
        CT_CU_LAUNCH();
        return;
    }
    ct__cuda_gemm(d, ct__cuda_bf16(d), ta, tb, m, n, k, alpha, a, lda, sa, NULL, b, ldb, sb, NULL,
                  beta, c, ldc, sc, batch);
}

}  // namespace

void ct__cuda_round_bf16(cudaStream_t st, __nv_bfloat16 *dst, const float *src, int64_t rows,
                         int64_t cols, int64_t ld, int64_t stride, int64_t batch) {
    if (rows <= 0 || cols <= 0 || batch <= 0) return;
    const int64_t n = rows * cols * batch;
    const unsigned blocks = ct__cuda_blocks(n, THREADS);
    if (ld == cols && (batch == 1 || stride == rows * cols))
        k_round_bf16_dense<<<blocks, THREADS, 0, st>>>(dst, src, n);
    else
        k_round_bf16<<<blocks, THREADS, 0, st>>>(dst, src, rows, cols, ld, batch == 1 ? 0 : stride, n);
    CT_CU_LAUNCH();
}

void ct__cuda_gemm(int d, bool bf16, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                   float alpha, const float *a, int64_t lda, int64_t sa, const __nv_bfloat16 *a_bf,
                   const float *b, int64_t ldb, int64_t sb, const __nv_bfloat16 *b_bf, float beta,
                   float *c, int64_t ldc, int64_t sc, int64_t batch) {
    if (m <= 0 || n <= 0 || batch <= 0) return;
    if (!fits_int(m) || !fits_int(n) || !fits_int(k) || !fits_int(lda) || !fits_int(ldb) ||
        !fits_int(ldc) || !fits_int(batch)) {
        ct__cuda_record_status(CT_E_UNSUPPORTED, "cuda:%d: gemm of m %lld, n %lld, k %lld (lda %lld, "
                               "ldb %lld, ldc %lld, batch %lld) exceeds cuBLAS's 32-bit sizes", d,
                               (long long)m, (long long)n, (long long)k, (long long)lda,
                               (long long)ldb, (long long)ldc, (long long)batch);
        return;
    }
    cublasHandle_t h = ct__cuda_blas(d);
    cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (!bf16 || k == 0) {
        if (batch == 1) {
            CT_CUBLAS(cublasSgemm(h, opb, opa, (int)n, (int)m, (int)k, &alpha, b, (int)ldb, a,
                                  (int)lda, &beta, c, (int)ldc));
        } else {
            // stride 0 broadcasts an operand over the batch (never C: its rows would race)
            CT_CUBLAS(cublasSgemmStridedBatched(h, opb, opa, (int)n, (int)m, (int)k, &alpha, b,
                                                (int)ldb, (long long)sb, a, (int)lda,
                                                (long long)sa, &beta, c, (int)ldc, (long long)sc,
                                                (int)batch));
        }
        return;
    }
    // bf16: the stored matrices are A [m, k] (ta: [k, m]) and B [k, n] (tb: [n, k]); each is
    // rounded into packed scratch (leading dim = its column count), a broadcast one only once
    const int64_t ra = ta ? k : m, ca = ta ? m : k, rb = tb ? n : k, cb = tb ? k : n;
    const int64_t na = batch > 1 && sa != 0 ? batch : 1, nb = batch > 1 && sb != 0 ? batch : 1;
    cudaStream_t st = ct__cuda_stream(d);
    const size_t ea = a_bf ? 0 : (size_t)(ra * ca * na), eb = b_bf ? 0 : (size_t)(rb * cb * nb);
    const size_t off_b = (ea + 127) / 128 * 128;          // B's part starts 256-byte aligned
    __nv_bfloat16 *scratch = NULL;
    if (ea + eb > 0) {
        scratch = (__nv_bfloat16 *)ct__cuda_scratch(sizeof(__nv_bfloat16) * (off_b + eb), st);
        if (!scratch) return;                              // recorded
    }
    const __nv_bfloat16 *ah = a_bf, *bh = b_bf;
    if (!ah) {
        ct__cuda_round_bf16(st, scratch, a, ra, ca, lda, sa, na);
        ah = scratch;
    }
    if (!bh) {
        ct__cuda_round_bf16(st, scratch + off_b, b, rb, cb, ldb, sb, nb);
        bh = scratch + off_b;
    }
    if (batch == 1) {
        CT_CUBLAS(cublasGemmEx(h, opb, opa, (int)n, (int)m, (int)k, &alpha, bh, CUDA_R_16BF,
                               (int)cb, ah, CUDA_R_16BF, (int)ca, &beta, c, CUDA_R_32F, (int)ldc,
                               CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    } else {
        const long long sah = na > 1 ? (long long)(ra * ca) : 0;
        const long long sbh = nb > 1 ? (long long)(rb * cb) : 0;
        CT_CUBLAS(cublasGemmStridedBatchedEx(h, opb, opa, (int)n, (int)m, (int)k, &alpha, bh,
                                             CUDA_R_16BF, (int)cb, sbh, ah, CUDA_R_16BF, (int)ca,
                                             sah, &beta, c, CUDA_R_32F, (int)ldc, (long long)sc,
                                             (int)batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
    if (scratch) CT_CU(cudaFreeAsync(scratch, st));
}

namespace {

// =============================================================================================
// Sums (keepdim) over arbitrary dims, deterministic: every output is summed in a fixed order
// that depends only on the shapes (never on timing or the device model), in double.
//   rows:    the reduced elements of an output are dense (stride 1 innermost): one warp per
//            output, lanes stride over them, then a fixed shuffle tree.
//   columns: otherwise one thread per output and chunk of the reduced elements (in order);
//            with several chunks, a second pass adds the chunks' partial sums in order.
// =============================================================================================
typedef struct kept_view {           // the kept dims: a's and out's strides
    int ndim;
    int64_t shape[CT_MAX_DIMS];
    int64_t sa[CT_MAX_DIMS], so[CT_MAX_DIMS];
} kept_view;

__device__ inline void kept_offsets(const kept_view &v, int64_t i, int64_t *oa, int64_t *oo) {
    int64_t a = 0, o = 0;
    for (int d = v.ndim - 1; d >= 0; d--) {
        int64_t s = v.shape[d], q = i / s, c = i - q * s;
        a += c * v.sa[d];
        o += c * v.so[d];
        i = q;
    }
    *oa = a;
    *oo = o;
}

__device__ inline int64_t red_offset(const ct_cu_view &r, int64_t j) {
    return r.ndim == 1 ? j * r.stride[0] : ct__cu_offset(r, j);
}

__global__ void k_sum_rows(kept_view kv, ct_cu_view rv, int64_t K, int64_t R, const float *a,
                           float *out) {
    int lane = threadIdx.x & 31;
    int64_t warp = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int64_t n_warps = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t k = warp; k < K; k += n_warps) {
        int64_t oa, oo;
        kept_offsets(kv, k, &oa, &oo);
        const float *p = a + oa;
        double acc = 0;
        for (int64_t j = lane; j < R; j += 32) acc += (double)p[red_offset(rv, j)];
        for (int sh = 16; sh > 0; sh >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, sh);
        if (lane == 0) out[oo] = (float)acc;
    }
}

__global__ void k_sum_cols(kept_view kv, ct_cu_view rv, int64_t K, int64_t R, int64_t C, int64_t L,
                           const float *a, float *out, double *partial) {
    GRID_LOOP(i, K * C) {
        int64_t k = i % K, c = i / K;
        int64_t oa, oo;
        kept_offsets(kv, k, &oa, &oo);
        const float *p = a + oa;
        int64_t j0 = c * L, j1 = j0 + L < R ? j0 + L : R;
        double acc = 0;
        for (int64_t j = j0; j < j1; j++) acc += (double)p[red_offset(rv, j)];
        if (partial) partial[c * K + k] = acc;
        else out[oo] = (float)acc;
    }
}

__global__ void k_sum_chunks(kept_view kv, int64_t K, int64_t C, const double *partial, float *out) {
    GRID_LOOP(k, K) {
        int64_t oa, oo;
        kept_offsets(kv, k, &oa, &oo);
        double acc = 0;
        for (int64_t c = 0; c < C; c++) acc += partial[c * K + k];
        out[oo] = (float)acc;
    }
}

static void cu_sum(ct_tensor *out, const ct_tensor *a) {
    kept_view kv;
    ct_cu_view rv;
    kv.ndim = 0;
    rv.ndim = 0;
    for (int d = 0; d < a->ndim; d++) {
        int64_t s = a->shape[d];
        if (s == 1) continue;
        if (out->shape[d] == s) {                       // kept
            int q = kv.ndim;
            if (q > 0 && kv.sa[q - 1] == a->stride[d] * s && kv.so[q - 1] == out->stride[d] * s) {
                kv.shape[q - 1] *= s;
                kv.sa[q - 1] = a->stride[d];
                kv.so[q - 1] = out->stride[d];
            } else {
                kv.shape[q] = s;
                kv.sa[q] = a->stride[d];
                kv.so[q] = out->stride[d];
                kv.ndim++;
            }
        } else {                                        // reduced (out has 1 here)
            int q = rv.ndim;
            if (q > 0 && rv.stride[q - 1] == a->stride[d] * s) {
                rv.shape[q - 1] *= s;
                rv.stride[q - 1] = a->stride[d];
            } else {
                rv.shape[q] = s;
                rv.stride[q] = a->stride[d];
                rv.ndim++;
            }
        }
    }
    for (int d = kv.ndim; d < CT_MAX_DIMS; d++) { kv.shape[d] = 1; kv.sa[d] = kv.so[d] = 0; }
    for (int d = rv.ndim; d < CT_MAX_DIMS; d++) { rv.shape[d] = 1; rv.stride[d] = 0; }
    int64_t K = ct_numel(out), R = 1;
    for (int d = 0; d < rv.ndim; d++) R *= rv.shape[d];
    if (K == 0) return;
    if (ct_numel(a) == 0) {                             // an empty sum is 0
        cu_fill(out, 0.0);
        return;
    }
    int dev = ct__cuda_use(out);
    cudaStream_t s = ct__cuda_stream(dev);
    const float *pa = (const float *)base_of(a);
    float *po = (float *)base_of(out);
    if (rv.ndim == 0) rv.ndim = 1;                      // R = 1: one element each (stride 0)
    // a warp per output when there are many outputs with a dense reduced run; few outputs
    // (a sum over everything, a mean) go to the chunked kernel, which spreads each over blocks
    if (R >= 32 && K >= 1024 && rv.stride[rv.ndim - 1] == 1) {
        int64_t warps_per_block = THREADS / 32;
        unsigned blocks = ct__cuda_blocks(K, (int)warps_per_block);
        k_sum_rows<<<blocks, THREADS, 0, s>>>(kv, rv, K, R, pa, po);
        CT_CU_LAUNCH();
        return;
    }
    // chunks: enough threads to fill a large GPU (a fixed target, so the order of additions,
    // hence the result, is the same on every device), at least 64 elements per chunk
    const int64_t target = 1 << 18;
    int64_t C = K >= target ? 1 : (target + K - 1) / K;
    int64_t max_c = (R + 63) / 64;
    if (C > max_c) C = max_c;
    if (C > 4096) C = 4096;
    if (C < 1) C = 1;
    int64_t L = (R + C - 1) / C;
    C = (R + L - 1) / L;
    double *partial = NULL;
    size_t pbytes = (size_t)(C * K) * sizeof(double);
    if (C > 1) {
        partial = (double *)ct__cuda_alloc(out->ctx, dev, pbytes);
        if (!partial) return;                           // the error is recorded
    }
    k_sum_cols<<<ct__cuda_blocks(K * C, THREADS), THREADS, 0, s>>>(kv, rv, K, R, C, L, pa, po, partial);
    CT_CU_LAUNCH();
    if (partial) {
        k_sum_chunks<<<ct__cuda_blocks(K, THREADS), THREADS, 0, s>>>(kv, K, C, partial, po);
        CT_CU_LAUNCH();
        ct__cuda_free(out->ctx, dev, partial, pbytes);
    }
}

int cu_count(void) { return ct__cuda_device_count(NULL, 0); }

}  // namespace

extern "C" const ct_backend ct_cuda_backend = {
    /* .name = */ "cuda",
    /* .type = */ CT_CUDA,
    /* .device_count = */ cu_count,
    /* .alloc = */ cu_alloc,
    /* .free = */ cu_free,
    /* .to_host = */ cu_to_host,
    /* .from_host = */ cu_from_host,
    /* .copy = */ cu_copy,
    /* .fill = */ cu_fill,
    /* .binary = */ cu_binary,
    /* .unary = */ cu_unary,
    /* .unary_grad = */ cu_unary_grad,
    /* .axpy = */ cu_axpy,
    /* .gemm = */ cu_gemm,
    /* .sum = */ cu_sum,
    /* .nn = */ &ct_cuda_nn,
    /* .index = */ &ct_cuda_index,
    /* .layernorm = */ &ct_cuda_layernorm,
    /* .optim = */ &ct_cuda_optim,
    /* .rnn = */ &ct_cuda_rnn,
    /* .check = */ cu_check,
    /* .mem_stats = */ cu_mem_stats,
};
