/* engine/kernels_index.h — private: the "index" kernel group of a backend (gather, scatter,
 * index_select, where, masked_fill, dropout masks). Each backend (engine/cpu/index.c, later
 * a CUDA one) fills one; the front ends are engine/ops_index.c and engine/ops_dropout.c.
 *
 * As for every kernel, the tensors are already checked by the front end: same device, the
 * dtypes stated below, shapes that fit, and index values inside their range (the front end
 * validates them with find_bad_index first). Outputs are written, never resized.
 */
#ifndef CT_KERNELS_INDEX_H
#define CT_KERNELS_INDEX_H

#include "engine/internal.h"

struct ct_kernels_index {
    /* Position (in element order) of the first value of idx (contiguous int64, any shape)
     * outside [0, bound), storing that value in *value; -1 when every value is in range. */
    int64_t (*find_bad_index)(const ct_tensor *idx, int64_t bound, int64_t *value);

    /* out = a.index_select(dim, idx). a and out contiguous, same dtype (float32 or int64);
     * idx contiguous int64 with n = numel(idx) entries; out.shape[dim] = n. */
    void (*index_select)(ct_tensor *out, const ct_tensor *a, int dim, const ct_tensor *idx);
    /* out.index_add_(dim, idx, src): out[.., idx[j], ..] += src[.., j, ..]. out and src
     * contiguous float32; repeated indices add up. */
    void (*index_add)(ct_tensor *out, int dim, const ct_tensor *idx, const ct_tensor *src);

    /* out = torch.gather(a, dim, index): out[i][j][k] = a[i][index[i][j][k]][k] (dim 1).
     * a any strides (float32 or int64); index int64, any strides, a's ndim, each size no
     * larger than a's outside dim; out (a's dtype) has index's shape, any strides. */
    void (*gather)(ct_tensor *out, const ct_tensor *a, int dim, const ct_tensor *index);
    /* out.scatter_add_(dim, index, src): out[i][index[i][j][k]][k] += src[i][j][k] (dim 1).
     * out float32, any strides; src float32 of index's shape, any strides. */
    void (*scatter_add)(ct_tensor *out, int dim, const ct_tensor *index, const ct_tensor *src);

    /* out = cond != 0 ? a : b. cond (float32 or int64), a and b (out's dtype) all have out's
     * shape (broadcast operands with stride 0); out may have any strides. */
    void (*where)(ct_tensor *out, const ct_tensor *cond, const ct_tensor *a, const ct_tensor *b);
    /* out = (mask != 0) != invert ? value : a. mask float32 or int64, a of out's dtype, all of
     * out's shape (stride 0 where broadcast); out may alias a. invert = true keeps a where the
     * mask is set (the gradient of where's first operand). */
    void (*masked_fill)(ct_tensor *out, const ct_tensor *a, const ct_tensor *mask, double value,
                        bool invert);

    /* out = a * mask * scale, all float32 of one shape, any strides (dropout forward with the
     * input, backward with the gradient). */
    void (*mask_scale)(ct_tensor *out, const ct_tensor *a, const ct_tensor *mask, float scale);
};

#endif
