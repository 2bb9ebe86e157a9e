// engine/cuda/index.cu — CUDA kernels of the index group (see engine/kernels_index.h; the CPU
// reference is engine/cpu/index.c).
//
// Element-wise kernels over tensors of any strides (gather, where, masked_fill, mask_scale)
// merge adjacent dims where every operand allows it (as engine/cpu/iter.h does) and turn each
// element's linear position into per-operand offsets.
//
// The two adding kernels are deterministic and add in the CPU's order, so their sums are the
// CPU's bit for bit (no float atomics):
//  - scatter_add: one thread per fibre of index along dim (every other coordinate fixed); the
//    destinations of different fibres are disjoint, and a thread adds its fibre in order.
//  - index_add (and the embedding gradient, nn.cu): the indices are sorted stably (CUB radix
//    sort of (index, position) pairs, positions ascending within an index); one block per run
//    of equal indices adds that run's source rows in position order, its threads spread over
//    the [outer, inner] coordinates.
// Scratch (the sort's buffers, the bad-index slot) comes from the stream-ordered pool
// (cudaMallocAsync on the device's stream).
#include <stdint.h>

#include <cub/device/device_radix_sort.cuh>

#include "engine/cuda/cuda_internal.h"

namespace {

cudaStream_t stream_of(const ct_tensor *t) {
    int d = t->storage->device.index;
    CT_CU(cudaSetDevice(d));
    return ct__cuda_stream(d);
}


#define GRID_STRIDE(i, n)                                                                  \
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n);              \
         i += (int64_t)gridDim.x * blockDim.x)

// [outer, size, inner] around dim of a tensor's shape
void split_dims(const ct_tensor *t, int dim, int64_t *outer, int64_t *inner) {
    int64_t o = 1, i = 1;
    for (int d = 0; d < dim; d++) o *= t->shape[d];
    for (int d = dim + 1; d < t->ndim; d++) i *= t->shape[d];
    *outer = o;
    *inner = i;
}

// ---- strided iteration ----------------------------------------------------------------------------
#define MAXOP 4
struct Iter {
    int nd;                          // >= 1
    int64_t n;                       // elements
    int64_t shape[CT_MAX_DIMS];
    int64_t st[MAXOP][CT_MAX_DIMS];  // element strides
};

// Iteration over shape (nd0 dims) for nops operands with the given strides: size-1 dims
// dropped, adjacent dims merged where every operand allows it.
Iter make_iter(int nd0, const int64_t *shape, int nops, const int64_t *const *strides) {
    Iter it;
    int nd = 0;
    it.n = 1;
    for (int d = 0; d < nd0; d++) it.n *= shape[d];
    for (int d = 0; d < nd0; d++) {
        if (shape[d] == 1) continue;
        if (nd > 0) {
            bool merge = true;
            for (int k = 0; k < nops; k++)
                if (it.st[k][nd - 1] != strides[k][d] * shape[d]) { merge = false; break; }
            if (merge) {
                it.shape[nd - 1] *= shape[d];
                for (int k = 0; k < nops; k++) it.st[k][nd - 1] = strides[k][d];
                continue;
            }
        }
        it.shape[nd] = shape[d];
        for (int k = 0; k < nops; k++) it.st[k][nd] = strides[k][d];
        nd++;
    }
    if (nd == 0) {
        it.shape[0] = 1;
        for (int k = 0; k < nops; k++) it.st[k][0] = 0;
        nd = 1;
    }
    for (int k = nops; k < MAXOP; k++)
        for (int d = 0; d < nd; d++) it.st[k][d] = 0;
    it.nd = nd;
    return it;
}

Iter iter_of(int nops, const ct_tensor *const *ts) {
    const int64_t *strides[MAXOP];
    for (int k = 0; k < nops; k++) strides[k] = ts[k]->stride;
    return make_iter(ts[0]->ndim, ts[0]->shape, nops, strides);
}

// offsets of element q (row-major position) for NOPS operands
template <int NOPS>
__device__ __forceinline__ void offsets(const Iter &it, int64_t q, int64_t *off) {
    for (int k = 0; k < NOPS; k++) off[k] = 0;
    for (int d = it.nd - 1; d >= 0; d--) {
        int64_t s = it.shape[d], c = q % s;
        q /= s;
        for (int k = 0; k < NOPS; k++) off[k] += c * it.st[k][d];
    }
}

// ---- find_bad_index ---------------------------------------------------------------------------------
__global__ void first_bad_kernel(unsigned long long *s, const int64_t *ix, int64_t n,
                                 int64_t bound) {
    __shared__ unsigned long long sh;
    if (threadIdx.x == 0) sh = ~0ULL;
    __syncthreads();
    unsigned long long first = ~0ULL;
    GRID_STRIDE(i, n) {
        if ((uint64_t)ix[i] >= (uint64_t)bound) { first = (unsigned long long)i; break; }
    }
    if (first != ~0ULL) atomicMin(&sh, first);
    __syncthreads();
    if (threadIdx.x == 0 && sh != ~0ULL) atomicMin(s, sh);
}

int64_t cu_find_bad_index(const ct_tensor *idx, int64_t bound, int64_t *value) {
    int64_t n = ct_numel(idx);
    if (n == 0) return -1;
    cudaStream_t st = stream_of(idx);
    unsigned long long *s = (unsigned long long *)ct__cuda_scratch(sizeof *s, st);
    if (!s) return -1;
    const int64_t *ix = (const int64_t *)ct_data(idx);
    unsigned long long h = ~0ULL;
    CT_CU(cudaMemsetAsync(s, 0xff, sizeof *s, st));
    unsigned blocks = ct__cuda_blocks(n, 256);
    if (blocks > 1024) blocks = 1024;
    first_bad_kernel<<<blocks, 256, 0, st>>>(s, ix, n, bound);
    CT_CU_LAUNCH();
    CT_CU(cudaMemcpyAsync(&h, s, sizeof h, cudaMemcpyDeviceToHost, st));
    CT_CU(cudaFreeAsync(s, st));
    CT_CU(cudaStreamSynchronize(st));
    if (h == ~0ULL || h >= (unsigned long long)n) return -1;
    int64_t v = 0;
    CT_CU(cudaMemcpyAsync(&v, ix + h, sizeof v, cudaMemcpyDeviceToHost, st));
    CT_CU(cudaStreamSynchronize(st));
    *value = v;
    return (int64_t)h;
}

// ---- index_select -----------------------------------------------------------------------------------
template <typename T>
__global__ void index_select_kernel(T *out, const T *a, const int64_t *ix, int64_t outer,
                                    int64_t size, int64_t n, int64_t inner) {
    int64_t total = outer * n * inner;
    GRID_STRIDE(q, total) {
        int64_t k = q % inner, r = q / inner, j = r % n, o = r / n;
        out[q] = a[(o * size + ix[j]) * inner + k];
    }
}

void cu_index_select(ct_tensor *out, const ct_tensor *a, int dim, const ct_tensor *idx) {
    int64_t outer, inner, size = a->shape[dim], n = ct_numel(idx);
    split_dims(a, dim, &outer, &inner);
    int64_t total = outer * n * inner;
    if (total == 0) return;
    cudaStream_t st = stream_of(a);
    const int64_t *ix = (const int64_t *)ct_data(idx);
    unsigned blocks = ct__cuda_blocks(total, 256);
    if (ct_dtype_size(a->dtype) == 4)
        index_select_kernel<uint32_t><<<blocks, 256, 0, st>>>(
            (uint32_t *)ct_data(out), (const uint32_t *)ct_data(a), ix, outer, size, n, inner);
    else
        index_select_kernel<uint64_t><<<blocks, 256, 0, st>>>(
            (uint64_t *)ct_data(out), (const uint64_t *)ct_data(a), ix, outer, size, n, inner);
    CT_CU_LAUNCH();
}

// ---- index_add (sorted runs) ---------------------------------------------------------------------------
__global__ void iota_kernel(int64_t *v, int64_t n) {
    GRID_STRIDE(i, n) v[i] = i;
}

// Block p handles the run of equal keys that starts at sorted position p (other blocks exit).
__global__ void add_runs_kernel(float *out, const int64_t *keys, const int64_t *pos, int64_t n,
                                const float *src, int64_t outer, int64_t size, int64_t inner) {
    int64_t p = blockIdx.x;
    int64_t v = keys[p];
    if (p > 0 && keys[p - 1] == v) return;
    int64_t end = p + 1;
    while (end < n && keys[end] == v) end++;
    int64_t total = outer * inner;
    for (int64_t t = threadIdx.x; t < total; t += blockDim.x) {
        int64_t o = t / inner, k = t - o * inner;
        float *dst = out + (o * size + v) * inner + k;
        const float *s = src + o * n * inner + k;
        float acc = *dst;
        for (int64_t q = p; q < end; q++) acc += s[pos[q] * inner];
        *dst = acc;
    }
}

}  // namespace

// out[o, idx[j], k] += src[o, j, k] (out [outer, size, inner], src [outer, n, inner], both
// contiguous float32; idx n checked values in [0, size)), adding each destination's terms in
// the order of j. Used by index_add here and by the embedding gradient in nn.cu.
void ct__cuda_index_add_rows(float *out, const int64_t *idx, int64_t n, const float *src,
                             int64_t outer, int64_t size, int64_t inner, cudaStream_t st) {
    if (n == 0 || outer * inner == 0) return;
    int bits = 1;
    while (bits < 63 && ((int64_t)1 << bits) < size) bits++;
    size_t tmp_bytes = 0;
    CT_CU(cub::DeviceRadixSort::SortPairs(NULL, tmp_bytes, (const int64_t *)NULL, (int64_t *)NULL,
                                          (const int64_t *)NULL, (int64_t *)NULL, n, 0, bits, st));
    size_t arr = ((sizeof(int64_t) * (size_t)n + 255) / 256) * 256;
    char *buf = (char *)ct__cuda_scratch(3 * arr + tmp_bytes, st);
    if (!buf) return;
    int64_t *keys = (int64_t *)buf, *pos_in = (int64_t *)(buf + arr),
            *pos = (int64_t *)(buf + 2 * arr);
    void *tmp = buf + 3 * arr;
    iota_kernel<<<ct__cuda_blocks(n, 256), 256, 0, st>>>(pos_in, n);
    CT_CU_LAUNCH();
    CT_CU(cub::DeviceRadixSort::SortPairs(tmp, tmp_bytes, idx, keys, pos_in, pos, n, 0, bits, st));
    int64_t total = outer * inner;
    int threads = total >= 256 ? 256 : total > 64 ? 128 : 64;
    add_runs_kernel<<<(unsigned)n, threads, 0, st>>>(out, keys, pos, n, src, outer, size, inner);
    CT_CU_LAUNCH();
    CT_CU(cudaFreeAsync(buf, st));
}

namespace {

void cu_index_add(ct_tensor *out, int dim, const ct_tensor *idx, const ct_tensor *src) {
    int64_t outer, inner, size = out->shape[dim], n = ct_numel(idx);
    split_dims(out, dim, &outer, &inner);
    if (outer == 0 || inner == 0 || n == 0) return;
    cudaStream_t st = stream_of(out);
    ct__cuda_index_add_rows((float *)ct_data(out), (const int64_t *)ct_data(idx), n,
                            (const float *)ct_data(src), outer, size, inner, st);
}

// ---- gather / scatter_add -------------------------------------------------------------------------
// gather: operands 0 out, 1 index, 2 a (stride 0 along dim); sd = a's stride along dim
template <typename T>
__global__ void gather_kernel(T *out, const int64_t *ix, const T *a, Iter it, int64_t sd) {
    GRID_STRIDE(q, it.n) {
        int64_t off[3];
        offsets<3>(it, q, off);
        out[off[0]] = a[off[2] + ix[off[1]] * sd];
    }
}

void cu_gather(ct_tensor *out, const ct_tensor *a, int dim, const ct_tensor *index) {
    int64_t n = ct_numel(index);
    if (n == 0) return;
    int64_t ast[CT_MAX_DIMS];
    for (int d = 0; d < index->ndim; d++) ast[d] = d == dim ? 0 : a->stride[d];
    const int64_t *strides[3] = {out->stride, index->stride, ast};
    Iter it = make_iter(index->ndim, index->shape, 3, strides);
    cudaStream_t st = stream_of(a);
    unsigned blocks = ct__cuda_blocks(n, 256);
    const int64_t *ix = (const int64_t *)ct_data(index);
    if (ct_dtype_size(a->dtype) == 4)
        gather_kernel<uint32_t><<<blocks, 256, 0, st>>>((uint32_t *)ct_data(out), ix,
                                                        (const uint32_t *)ct_data(a), it,
                                                        a->stride[dim]);
    else
        gather_kernel<uint64_t><<<blocks, 256, 0, st>>>((uint64_t *)ct_data(out), ix,
                                                        (const uint64_t *)ct_data(a), it,
                                                        a->stride[dim]);
    CT_CU_LAUNCH();
}

// scatter_add: `it` iterates the fibres (index's shape with dim dropped): operands 0 index,
// 1 src, 2 out; len, and the strides along dim of index (si), src (ss) and out (so).
__global__ void scatter_add_kernel(float *out, const int64_t *ix, const float *src, Iter it,
                                   int64_t len, int64_t si, int64_t ss, int64_t so) {
    GRID_STRIDE(q, it.n) {
        int64_t off[3];
        offsets<3>(it, q, off);
        const int64_t *ip = ix + off[0];
        const float *sp = src + off[1];
        float *op = out + off[2];
        for (int64_t j = 0; j < len; j++) op[ip[j * si] * so] += sp[j * ss];
    }
}

void cu_scatter_add(ct_tensor *out, int dim, const ct_tensor *index, const ct_tensor *src) {
    if (ct_numel(index) == 0) return;
    int nd = index->ndim;
    int64_t shape[CT_MAX_DIMS], s0[CT_MAX_DIMS], s1[CT_MAX_DIMS], s2[CT_MAX_DIMS];
    for (int d = 0; d < nd; d++) {
        bool along = d == dim;
        shape[d] = along ? 1 : index->shape[d];
        s0[d] = along ? 0 : index->stride[d];
        s1[d] = along ? 0 : src->stride[d];
        s2[d] = along ? 0 : out->stride[d];
    }
    const int64_t *strides[3] = {s0, s1, s2};
    Iter it = make_iter(nd, shape, 3, strides);
    cudaStream_t st = stream_of(out);
    scatter_add_kernel<<<ct__cuda_blocks(it.n, 256), 256, 0, st>>>(
        (float *)ct_data(out), (const int64_t *)ct_data(index), (const float *)ct_data(src), it,
        index->shape[dim], index->stride[dim], src->stride[dim], out->stride[dim]);
    CT_CU_LAUNCH();
}

// ---- where / masked_fill / mask_scale ------------------------------------------------------------
template <typename CT, typename VT>
__global__ void where_kernel(VT *o, const CT *c, const VT *x, const VT *y, Iter it) {
    GRID_STRIDE(q, it.n) {
        int64_t off[4];
        offsets<4>(it, q, off);
        o[off[0]] = c[off[1]] != 0 ? x[off[2]] : y[off[3]];
    }
}

template <typename CT, typename VT>
void launch_where(ct_tensor *out, const ct_tensor *cond, const ct_tensor *a, const ct_tensor *b,
                  const Iter &it, cudaStream_t st) {
    where_kernel<CT, VT><<<ct__cuda_blocks(it.n, 256), 256, 0, st>>>(
        (VT *)ct_data(out), (const CT *)ct_data(cond), (const VT *)ct_data(a),
        (const VT *)ct_data(b), it);
}

void cu_where(ct_tensor *out, const ct_tensor *cond, const ct_tensor *a, const ct_tensor *b) {
    if (ct_numel(out) == 0) return;
    const ct_tensor *ts[4] = {out, cond, a, b};
    Iter it = iter_of(4, ts);
    cudaStream_t st = stream_of(out);
    bool cfl = cond->dtype == CT_F32, vfl = out->dtype == CT_F32;
    if (cfl && vfl) launch_where<float, float>(out, cond, a, b, it, st);
    else if (cfl) launch_where<float, int64_t>(out, cond, a, b, it, st);
    else if (vfl) launch_where<int64_t, float>(out, cond, a, b, it, st);
    else launch_where<int64_t, int64_t>(out, cond, a, b, it, st);
    CT_CU_LAUNCH();
}

template <typename MT, typename VT>
__global__ void masked_fill_kernel(VT *o, const VT *x, const MT *m, VT value, bool invert, Iter it) {
    GRID_STRIDE(q, it.n) {
        int64_t off[3];
        offsets<3>(it, q, off);
        o[off[0]] = (m[off[2]] != 0) != invert ? value : x[off[1]];
    }
}

template <typename MT, typename VT>
void launch_fill(ct_tensor *out, const ct_tensor *a, const ct_tensor *mask, VT value, bool invert,
                 const Iter &it, cudaStream_t st) {
    masked_fill_kernel<MT, VT><<<ct__cuda_blocks(it.n, 256), 256, 0, st>>>(
        (VT *)ct_data(out), (const VT *)ct_data(a), (const MT *)ct_data(mask), value, invert, it);
}

void cu_masked_fill(ct_tensor *out, const ct_tensor *a, const ct_tensor *mask, double value,
                    bool invert) {
    if (ct_numel(out) == 0) return;
    const ct_tensor *ts[3] = {out, a, mask};
    Iter it = iter_of(3, ts);
    cudaStream_t st = stream_of(out);
    bool mfl = mask->dtype == CT_F32;
    if (out->dtype == CT_F32) {
        float vf = (float)value;
        if (mfl) launch_fill<float, float>(out, a, mask, vf, invert, it, st);
        else launch_fill<int64_t, float>(out, a, mask, vf, invert, it, st);
    } else {
        int64_t vi = (int64_t)value;
        if (mfl) launch_fill<float, int64_t>(out, a, mask, vi, invert, it, st);
        else launch_fill<int64_t, int64_t>(out, a, mask, vi, invert, it, st);
    }
    CT_CU_LAUNCH();
}

__global__ void mask_scale_kernel(float *o, const float *x, const float *m, float scale, Iter it) {
    GRID_STRIDE(q, it.n) {
        int64_t off[3];
        offsets<3>(it, q, off);
        o[off[0]] = __fmul_rn(__fmul_rn(x[off[1]], m[off[2]]), scale);
    }
}

__global__ void mask_scale_dense_kernel(float *o, const float *x, const float *m, float scale,
                                        int64_t n) {
    GRID_STRIDE(i, n) o[i] = __fmul_rn(__fmul_rn(x[i], m[i]), scale);
}

void cu_mask_scale(ct_tensor *out, const ct_tensor *a, const ct_tensor *mask, float scale) {
    if (ct_numel(out) == 0) return;
    const ct_tensor *ts[3] = {out, a, mask};
    Iter it = iter_of(3, ts);
    cudaStream_t st = stream_of(out);
    unsigned blocks = ct__cuda_blocks(it.n, 256);
    if (it.nd == 1 && it.st[0][0] == 1 && it.st[1][0] == 1 && it.st[2][0] == 1)
        mask_scale_dense_kernel<<<blocks, 256, 0, st>>>((float *)ct_data(out),
                                                        (const float *)ct_data(a),
                                                        (const float *)ct_data(mask), scale, it.n);
    else
        mask_scale_kernel<<<blocks, 256, 0, st>>>((float *)ct_data(out), (const float *)ct_data(a),
                                                  (const float *)ct_data(mask), scale, it);
    CT_CU_LAUNCH();
}

}  // namespace

extern "C" const struct ct_kernels_index ct_cuda_index = {
    /* .find_bad_index = */ cu_find_bad_index,
    /* .index_select = */ cu_index_select,
    /* .index_add = */ cu_index_add,
    /* .gather = */ cu_gather,
    /* .scatter_add = */ cu_scatter_add,
    /* .where = */ cu_where,
    /* .masked_fill = */ cu_masked_fill,
    /* .mask_scale = */ cu_mask_scale,
};
