/* engine/kernels_nn.h — private: the "nn" kernel group of a backend (softmax, losses,
 * embedding, max). Each backend (engine/cpu/nn.c, later engine/cuda/nn.cu) fills one.
 *
 * Conventions: the front ends (engine/ops_nn.c) have checked dtypes, devices and shapes.
 * "Contiguous" operands start at ct_data(t) and are laid out densely; a reduction over one
 * dim sees such a tensor as [outer, n, inner] (n = the dim's size). Outputs are fresh,
 * contiguous tensors the kernel overwrites completely. Scalars that come from the graph
 * (an upstream gradient of a 0-d loss) are passed as 0-d device tensors, so a device backend
 * never has to copy them to the host. Sums accumulate in double.
 */
#ifndef CT_KERNELS_NN_H
#define CT_KERNELS_NN_H

#include "engine/internal.h"

struct ct_kernels_nn {
    /* out = softmax(a) (or log_softmax when log) over the middle dim of [outer, n, inner];
     * a and out contiguous float32 of the same shape. Stable: the max is subtracted. */
    void (*softmax)(ct_tensor *out, const ct_tensor *a, int64_t outer, int64_t n,
                    int64_t inner, bool log);
    /* gin from the forward output y and gout (all contiguous, [outer, n, inner]):
     * softmax:     gin = y * (gout - sum_n(gout * y))
     * log_softmax: gin = gout - exp(y) * sum_n(gout) */
    void (*softmax_grad)(ct_tensor *gin, const ct_tensor *gout, const ct_tensor *y,
                         int64_t outer, int64_t n, int64_t inner, bool log);

    /* Max over the middle dim of contiguous a [outer, n, inner], n >= 1: values (float32) and/or
     * indices (int64), each contiguous with outer*inner elements; either may be NULL.
     * The first maximum wins; a NaN counts as the maximum (as in PyTorch). */
    void (*max)(ct_tensor *values, ct_tensor *indices, const ct_tensor *a, int64_t outer,
                int64_t n, int64_t inner);
    /* gin [outer, n, inner] = zeros, then gout [outer, inner] at the positions in indices. */
    void (*max_grad)(ct_tensor *gin, const ct_tensor *gout, const ct_tensor *indices,
                     int64_t outer, int64_t n, int64_t inner);

    /* Scans the contiguous int64 tensor idx: elements equal to ignore (when use_ignore) are
     * skipped, the others must lie in [0, hi). Sets *count to the number of elements in range
     * and returns the flat position of the first element that is neither, writing its value
     * to *bad_value; returns -1 when every element is fine. */
    int64_t (*check_indices)(const ct_tensor *idx, int64_t hi, bool use_ignore, int64_t ignore,
                             int64_t *count, int64_t *bad_value);

    /* Cross-entropy of contiguous logits [N, C] against checked int64 targets [N]:
     * lse[i] = logsumexp(logits[i, :]) (float32 [N], saved for backward), and the 0-d loss =
     * inv_count * sum over rows with targets[i] != ignore of (lse[i] - logits[i, t_i]). */
    void (*cross_entropy)(ct_tensor *loss, ct_tensor *lse, const ct_tensor *logits,
                          const ct_tensor *targets, int64_t N, int64_t C, int64_t ignore,
                          float inv_count);
    /* gin [N, C] = gout * inv_count * (softmax(logits[i]) - onehot(t_i)), zero rows where
     * targets[i] == ignore; gout is 0-d. */
    void (*cross_entropy_grad)(ct_tensor *gin, const ct_tensor *gout, const ct_tensor *logits,
                               const ct_tensor *lse, const ct_tensor *targets, int64_t N,
                               int64_t C, int64_t ignore, float inv_count);

    /* Binary cross-entropy on logits, element-wise over n contiguous elements of x and y:
     * l = max(x,0) - x*y + log1p(exp(-|x|)). reduce: out is 0-d = scale * sum(l);
     * otherwise out has n elements l. */
    void (*bce_with_logits)(ct_tensor *out, const ct_tensor *x, const ct_tensor *y, int64_t n,
                            bool reduce, float scale);
    /* gx = g * (sigmoid(x) - y), gy = g * -x (either may be NULL), where g = gout[i]
     * (n contiguous elements) or, when reduced, g = scale * gout (0-d). */
    void (*bce_with_logits_grad)(ct_tensor *gx, ct_tensor *gy, const ct_tensor *gout,
                                 const ct_tensor *x, const ct_tensor *y, int64_t n, bool reduced,
                                 float scale);

    /* out [M, D] (contiguous) = rows of weight [V, D] (any strides) at the checked int64
     * indices (M contiguous elements). */
    void (*embedding)(ct_tensor *out, const ct_tensor *weight, const ct_tensor *indices,
                      int64_t M, int64_t D);
    /* gw [V, D] (contiguous) = zeros, then gw[indices[m]] += gout[m] for m < M
     * (gout contiguous [M, D]). */
    void (*embedding_grad)(ct_tensor *gw, const ct_tensor *gout, const ct_tensor *indices,
                           int64_t M, int64_t V, int64_t D);
};

/* The layer_norm kernel group of a backend (CPU: engine/cpu/layernorm.c). Conventions as in engine/kernels_nn.h: x, y, gout, gx contiguous [rows, D];
 * weight, bias, gw, gb contiguous [D]; mean, rstd contiguous [rows]; any of weight/bias (no
 * affine) and gx/gw/gb (not needed) may be NULL. work: scratch of at least 4*D float32
 * elements when gw or gb is wanted (the CPU kernel sums the columns in double there). */
struct ct_kernels_layernorm {
    void (*forward)(ct_tensor *y, ct_tensor *mean, ct_tensor *rstd, const ct_tensor *x,
                    const ct_tensor *weight, const ct_tensor *bias, int64_t rows, int64_t D,
                    float eps);
    void (*backward)(ct_tensor *gx, ct_tensor *gw, ct_tensor *gb, ct_tensor *work,
                     const ct_tensor *gout, const ct_tensor *x, const ct_tensor *mean,
                     const ct_tensor *rstd, const ct_tensor *weight, int64_t rows, int64_t D);
};

#endif
