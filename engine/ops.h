/* engine/ops.h — differentiable tensor ops.
 *
 * Every op is a macro that passes the caller's file:line (CT_SRC) to the `_at` function,
 * so errors, also those found later during backward, name the line of user code. Results
 * belong to the current scope (see engine/tensor.h). Element-wise binary ops broadcast as
 * numpy does. Dims may be negative (counted from the end). NULL inputs give NULL quietly.
 */
#ifndef CT_OPS_H
#define CT_OPS_H

#include "engine/tensor.h"

typedef struct ct_rng ct_rng;

/* ---- element-wise, broadcasting ---------------------------------------------------- */
#define ct_add(a, b) ct_add_at(CT_SRC, a, b)
#define ct_sub(a, b) ct_sub_at(CT_SRC, a, b)
#define ct_mul(a, b) ct_mul_at(CT_SRC, a, b)
#define ct_div(a, b) ct_div_at(CT_SRC, a, b)
#define ct_pow(a, b) ct_pow_at(CT_SRC, a, b)       /* a > 0 where b's gradient is needed */
ct_tensor *ct_add_at(ct_src src, ct_tensor *a, ct_tensor *b);
ct_tensor *ct_sub_at(ct_src src, ct_tensor *a, ct_tensor *b);
ct_tensor *ct_mul_at(ct_src src, ct_tensor *a, ct_tensor *b);
ct_tensor *ct_div_at(ct_src src, ct_tensor *a, ct_tensor *b);
ct_tensor *ct_pow_at(ct_src src, ct_tensor *a, ct_tensor *b);

/* scalar variants: a + s, a - s, a * s, a / s, a ^ s, s - a */
#define ct_add_scalar(a, s) ct_add_scalar_at(CT_SRC, a, s)
#define ct_sub_scalar(a, s) ct_add_scalar_at(CT_SRC, a, -(s))
#define ct_mul_scalar(a, s) ct_mul_scalar_at(CT_SRC, a, s)
#define ct_div_scalar(a, s) ct_mul_scalar_at(CT_SRC, a, 1.0f / (s))
#define ct_pow_scalar(a, s) ct_pow_scalar_at(CT_SRC, a, s)
#define ct_rsub_scalar(s, a) ct_rsub_scalar_at(CT_SRC, s, a)
ct_tensor *ct_add_scalar_at(ct_src src, ct_tensor *a, float s);
ct_tensor *ct_mul_scalar_at(ct_src src, ct_tensor *a, float s);
ct_tensor *ct_pow_scalar_at(ct_src src, ct_tensor *a, float s);
ct_tensor *ct_rsub_scalar_at(ct_src src, float s, ct_tensor *a);

/* unary */
#define ct_neg(a)     ct_neg_at(CT_SRC, a)
#define ct_exp(a)     ct_exp_at(CT_SRC, a)
#define ct_log(a)     ct_log_at(CT_SRC, a)
#define ct_sqrt(a)    ct_sqrt_at(CT_SRC, a)
#define ct_tanh(a)    ct_tanh_at(CT_SRC, a)
#define ct_sigmoid(a) ct_sigmoid_at(CT_SRC, a)
#define ct_relu(a)    ct_relu_at(CT_SRC, a)
#define ct_clamp(a, lo, hi) ct_clamp_at(CT_SRC, a, lo, hi)   /* -INFINITY/INFINITY: no bound */
ct_tensor *ct_neg_at(ct_src src, ct_tensor *a);
ct_tensor *ct_exp_at(ct_src src, ct_tensor *a);
ct_tensor *ct_log_at(ct_src src, ct_tensor *a);
ct_tensor *ct_sqrt_at(ct_src src, ct_tensor *a);
ct_tensor *ct_tanh_at(ct_src src, ct_tensor *a);
ct_tensor *ct_sigmoid_at(ct_src src, ct_tensor *a);
ct_tensor *ct_relu_at(ct_src src, ct_tensor *a);
ct_tensor *ct_clamp_at(ct_src src, ct_tensor *a, float lo, float hi);

/* ---- matrix product (cblas_sgemm; transposed views are passed to BLAS, not copied) ---- */
/* [m,k]x[k,n] -> [m,n]; [...,m,k]x[...,k,n] -> [...,m,n] with broadcast batch dims;
 * a 2-D operand against a batched one is broadcast over the batch. */
#define ct_matmul(a, b) ct_matmul_at(CT_SRC, a, b)
ct_tensor *ct_matmul_at(ct_src src, ct_tensor *a, ct_tensor *b);

/* ---- reductions --------------------------------------------------------------------- */
/* dims: a list of n dims (n = 0 means all dims). */
#define ct_sum(a, dim, keepdim)  ct_sum_at(CT_SRC, a, 1, (const int[]){dim}, keepdim)
#define ct_sum_all(a)            ct_sum_at(CT_SRC, a, 0, NULL, false)
#define ct_sum_dims(a, n, dims, keepdim) ct_sum_at(CT_SRC, a, n, dims, keepdim)
#define ct_mean(a, dim, keepdim) ct_mean_at(CT_SRC, a, 1, (const int[]){dim}, keepdim)
#define ct_mean_all(a)           ct_mean_at(CT_SRC, a, 0, NULL, false)
ct_tensor *ct_sum_at(ct_src src, ct_tensor *a, int ndims, const int *dims, bool keepdim);
ct_tensor *ct_mean_at(ct_src src, ct_tensor *a, int ndims, const int *dims, bool keepdim);
/* max over one dim: values (differentiable; the gradient goes to the first maximum) and,
 * if indices is not NULL, the int64 positions of the maxima. */
#define ct_max(a, dim, keepdim, indices) ct_max_at(CT_SRC, a, dim, keepdim, indices)
#define ct_argmax(a, dim, keepdim)       ct_argmax_at(CT_SRC, a, dim, keepdim)
ct_tensor *ct_max_at(ct_src src, ct_tensor *a, int dim, bool keepdim, ct_tensor **indices);
ct_tensor *ct_argmax_at(ct_src src, ct_tensor *a, int dim, bool keepdim);
/* Sums a (e.g. a broadcast gradient) down to shape, which a broadcasts from. */
ct_tensor *ct_sum_to_at(ct_src src, ct_tensor *a, int ndim, const int64_t *shape);

/* ---- softmax and losses ------------------------------------------------------------- */
#define ct_softmax(a, dim)     ct_softmax_at(CT_SRC, a, dim)
#define ct_log_softmax(a, dim) ct_log_softmax_at(CT_SRC, a, dim)
ct_tensor *ct_softmax_at(ct_src src, ct_tensor *a, int dim);
ct_tensor *ct_log_softmax_at(ct_src src, ct_tensor *a, int dim);

/* Cross-entropy of logits [N, C] (or [C]) against int64 class targets [N] (or []), fused
 * with log_softmax: the mean over targets != ignore_index (use -100 as PyTorch does, or
 * any value outside [0, C) to ignore nothing). 0-d result; 0 if every target is ignored. */
#define ct_cross_entropy(logits, targets, ignore_index) \
    ct_cross_entropy_at(CT_SRC, logits, targets, ignore_index)
ct_tensor *ct_cross_entropy_at(ct_src src, ct_tensor *logits, ct_tensor *targets,
                               int64_t ignore_index);

typedef enum ct_reduction {
    CT_REDUCE_NONE = 0,      /* element-wise losses, the input's shape */
    CT_REDUCE_MEAN,          /* mean over all elements */
    CT_REDUCE_SUM,           /* sum over all elements */
    CT_REDUCE_SUM_LAST_MEAN  /* sum over the last dim, mean over the others (piano roll) */
} ct_reduction;
/* Binary cross-entropy on logits, computed stably as max(x,0) - x*y + log1p(exp(-|x|)).
 * targets: float32 of the logits' shape, values in [0, 1]. */
#define ct_bce_with_logits(logits, targets, reduction) \
    ct_bce_with_logits_at(CT_SRC, logits, targets, reduction)
ct_tensor *ct_bce_with_logits_at(ct_src src, ct_tensor *logits, ct_tensor *targets,
                                 ct_reduction reduction);

/* ---- indexing ----------------------------------------------------------------------- */
/* Rows of weight [V, D] picked by int64 indices of any shape -> indices.shape + [D].
 * Backward scatter-adds into the rows. An index outside [0, V) is an error. */
#define ct_embedding(weight, indices) ct_embedding_at(CT_SRC, weight, indices)
ct_tensor *ct_embedding_at(ct_src src, ct_tensor *weight, ct_tensor *indices);
/* index_select: slices of a along dim at the int64 1-D indices. */
#define ct_index_select(a, dim, indices) ct_index_select_at(CT_SRC, a, dim, indices)
ct_tensor *ct_index_select_at(ct_src src, ct_tensor *a, int dim, ct_tensor *indices);
/* gather: out[i][j][k] = a[i][index[i][j][k]][k] for dim 1, as torch.gather. */
#define ct_gather(a, dim, index) ct_gather_at(CT_SRC, a, dim, index)
ct_tensor *ct_gather_at(ct_src src, ct_tensor *a, int dim, ct_tensor *index);
/* where: cond (float32 or int64; nonzero = true) ? a : b, all broadcast together. */
#define ct_where(cond, a, b) ct_where_at(CT_SRC, cond, a, b)
ct_tensor *ct_where_at(ct_src src, ct_tensor *cond, ct_tensor *a, ct_tensor *b);
/* masked_fill: value where mask (broadcast to a; nonzero = true), a elsewhere. */
#define ct_masked_fill(a, mask, value) ct_masked_fill_at(CT_SRC, a, mask, value)
ct_tensor *ct_masked_fill_at(ct_src src, ct_tensor *a, ct_tensor *mask, float value);

/* ---- joining and splitting ---------------------------------------------------------- */
#define ct_concat(n, ts, dim) ct_concat_at(CT_SRC, n, ts, dim)
#define ct_stack(n, ts, dim)  ct_stack_at(CT_SRC, n, ts, dim)
ct_tensor *ct_concat_at(ct_src src, int n, ct_tensor *const *ts, int dim);
ct_tensor *ct_stack_at(ct_src src, int n, ct_tensor *const *ts, int dim);
/* split into pieces of `size` along dim (the last may be smaller); writes up to max_out
 * views into out and returns how many pieces there are (-1 on error). */
#define ct_split(a, size, dim, out, max_out) ct_split_at(CT_SRC, a, size, dim, out, max_out)
int ct_split_at(ct_src src, ct_tensor *a, int64_t size, int dim, ct_tensor **out, int max_out);
/* chunk into n pieces as torch.chunk (ceil(len/n) each); returns the count, -1 on error. */
#define ct_chunk(a, n, dim, out) ct_chunk_at(CT_SRC, a, n, dim, out)
int ct_chunk_at(ct_src src, ct_tensor *a, int n, int dim, ct_tensor **out);

/* ---- dropout ------------------------------------------------------------------------ */
/* Zeroes each element with probability p and scales the rest by 1/(1-p), drawing from rng;
 * returns a itself (a new reference) when !training or p == 0. */
#define ct_dropout(a, p, training, rng) ct_dropout_at(CT_SRC, a, p, training, rng)
ct_tensor *ct_dropout_at(ct_src src, ct_tensor *a, float p, bool training, ct_rng *rng);

/* ---- in-place updates, outside autograd (for optimizers) ----------------------------- *
 * They write into t's storage, bump its version (a graph that saved t then refuses to run
 * backward) and return a status. t must not be a non-leaf that requires grad. */
/* Errors (a graph node, another dtype, shape or device) name the op and the caller's file:line. */
#define ct_inplace_fill(t, value) ct_inplace_fill_at(CT_SRC, t, value)
#define ct_inplace_copy(t, src) ct_inplace_copy_at(CT_SRC, t, src)          /* same shape */
#define ct_inplace_scale(t, s) ct_inplace_scale_at(CT_SRC, t, s)            /* t *= s */
#define ct_inplace_axpy(t, alpha, x) ct_inplace_axpy_at(CT_SRC, t, alpha, x) /* t += alpha * x */
#define ct_inplace_add_scalar(t, s) ct_inplace_add_scalar_at(CT_SRC, t, s)  /* t += s */
#define ct_inplace_clamp(t, lo, hi) ct_inplace_clamp_at(CT_SRC, t, lo, hi)  /* t = clamp(t, lo, hi) */
ct_status ct_inplace_fill_at(ct_src src, ct_tensor *t, float value);
ct_status ct_inplace_copy_at(ct_src src, ct_tensor *t, const ct_tensor *x);
ct_status ct_inplace_scale_at(ct_src src, ct_tensor *t, float s);
ct_status ct_inplace_axpy_at(ct_src src, ct_tensor *t, float alpha, const ct_tensor *x);
ct_status ct_inplace_add_scalar_at(ct_src src, ct_tensor *t, float s);
ct_status ct_inplace_clamp_at(ct_src src, ct_tensor *t, float lo, float hi);

#endif
