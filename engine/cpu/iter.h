/* engine/cpu/iter.h — private: strided N-d iteration for CPU kernels.
 *
 * ct_iter walks up to CT_ITER_MAX operands of one shape (broadcast operands carry stride 0),
 * with adjacent dims merged where every operand allows it, so most loops become one long
 * inner loop. Usage:
 *
 *     ct_iter it; ct_iter_init(&it, 2, (const ct_tensor *[]){out, a});
 *     do { float *o = ct_iter_ptr(&it, 0); ... it.inner elements, strides it.st[k][last] ... }
 *     while (ct_iter_next(&it));
 */
#ifndef CT_CPU_ITER_H
#define CT_CPU_ITER_H

#include "engine/internal.h"

#define CT_ITER_MAX 4

typedef struct ct_iter {
    int n, ndim;
    int64_t shape[CT_MAX_DIMS];
    int64_t st[CT_ITER_MAX][CT_MAX_DIMS];     /* element strides */
    char *base[CT_ITER_MAX];                  /* current outer position, bytes */
    size_t esz[CT_ITER_MAX];
    int64_t idx[CT_MAX_DIMS];
    int64_t inner;                            /* length of the innermost dim */
    int64_t is[CT_ITER_MAX];                  /* innermost stride of each operand */
    bool empty;
} ct_iter;

/* shape is taken from ts[0]; every operand must have that shape */
static inline void ct_iter_init(ct_iter *it, int n, const ct_tensor *const *ts) {
    const ct_tensor *t0 = ts[0];
    it->n = n;
    it->empty = false;
    int nd = 0;
    for (int d = 0; d < t0->ndim; d++) {
        if (t0->shape[d] == 0) it->empty = true;
        if (t0->shape[d] == 1) continue;                   /* size-1 dims iterate once */
        if (nd > 0) {
            bool merge = true;
            for (int k = 0; k < n; k++)
                if (it->st[k][nd - 1] != ts[k]->stride[d] * t0->shape[d]) { merge = false; break; }
            if (merge) {
                it->shape[nd - 1] *= t0->shape[d];
                for (int k = 0; k < n; k++) it->st[k][nd - 1] = ts[k]->stride[d];
                continue;
            }
        }
        it->shape[nd] = t0->shape[d];
        for (int k = 0; k < n; k++) it->st[k][nd] = ts[k]->stride[d];
        nd++;
    }
    if (nd == 0) {                                         /* a single element */
        it->shape[0] = 1;
        for (int k = 0; k < n; k++) it->st[k][0] = 0;
        nd = 1;
    }
    it->ndim = nd;
    for (int k = 0; k < n; k++) {
        it->esz[k] = ct_dtype_size(ts[k]->dtype);
        it->base[k] = (char *)ts[k]->storage->data + ts[k]->offset * (int64_t)it->esz[k];
        it->is[k] = it->st[k][nd - 1];
    }
    for (int d = 0; d < nd; d++) it->idx[d] = 0;
    it->inner = it->shape[nd - 1];
}

static inline void *ct_iter_ptr(const ct_iter *it, int k) { return it->base[k]; }

/* Advances to the next inner run; false when done. */
static inline bool ct_iter_next(ct_iter *it) {
    for (int d = it->ndim - 2; d >= 0; d--) {
        if (++it->idx[d] < it->shape[d]) {
            for (int k = 0; k < it->n; k++) it->base[k] += it->st[k][d] * (int64_t)it->esz[k];
            return true;
        }
        it->idx[d] = 0;
        for (int k = 0; k < it->n; k++)
            it->base[k] -= it->st[k][d] * (it->shape[d] - 1) * (int64_t)it->esz[k];
    }
    return false;
}

#endif
