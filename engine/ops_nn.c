/* engine/ops_nn.c — softmax, log_softmax, max/argmax, cross-entropy, BCE-with-logits and
 * embedding: front ends (checks, layout, the backend's nn kernels, graph recording) and
 * their backward rules. The kernels live in the backend's nn group (engine/kernels_nn.h).
 */
#include <math.h>
#include <stdio.h>

#include "engine/kernels_nn.h"

/* The nn kernel group of t's device, or NULL (and an error) when the device lacks it. */
static const struct ct_kernels_nn *nn_of(ct_src src, const char *op, const ct_tensor *t,
                                         bool have) {
    const struct ct_kernels_nn *k = t->storage->backend->nn;
    if (k && have) return k;
    char d[16];
    ct__op_error(t->ctx, src, op, CT_E_UNSUPPORTED, "not implemented on device %s",
                 ct_device_str(t->storage->device, d, sizeof d));
    return NULL;
}
#define NN(src, op, t, field) \
    nn_of(src, op, t, (t)->storage->backend->nn && (t)->storage->backend->nn->field)

/* Splits t's shape around dim into [outer, n, inner]; a 0-d tensor counts as one element
 * along dim 0 (or -1), as in PyTorch. *d is the normalised dim (-1 for a 0-d tensor). */
static bool split_dim(ct_src src, const char *op, const ct_tensor *t, int dim, int *d,
                      int64_t *outer, int64_t *n, int64_t *inner) {
    if (t->ndim == 0 && (dim == 0 || dim == -1)) {
        *d = -1;
        *outer = *n = *inner = 1;
        return true;
    }
    if (!ct__dim(src, op, t, dim, d)) return false;
    *outer = ct__prod(*d, t->shape);
    *n = t->shape[*d];
    *inner = ct__prod(t->ndim - *d - 1, t->shape + *d + 1);
    return true;
}

/* ---- softmax / log_softmax ------------------------------------------------------------- */
static ct_status softmax_bw_impl(ct_node *n, ct_tensor *const *g, ct_tensor **gin, bool is_log) {
    const char *name = n->def->name;
    ct_tensor *x = n->in[0], *y = n->saved[0];
    const struct ct_kernels_nn *k = NN(n->src, name, x, softmax_grad);
    if (!k) return ct_ctx_status(n->ctx);
    ct_tensor *gc = ct_contiguous_at(n->src, g[0]);
    ct_tensor *gi = gc ? ct__new(n->ctx, CT_F32, x->storage->device, x->ndim, x->shape) : NULL;
    if (!gi) return ct_ctx_status(n->ctx);
    k->softmax_grad(gi, gc, y, n->iv[0], n->iv[1], n->iv[2], is_log);
    gin[0] = gi;
    return CT_OK;
}
static ct_status softmax_bw(ct_node *n, ct_tensor *const *g, ct_tensor **gin) {
    return softmax_bw_impl(n, g, gin, false);
}
static ct_status log_softmax_bw(ct_node *n, ct_tensor *const *g, ct_tensor **gin) {
    return softmax_bw_impl(n, g, gin, true);
}
static const ct_op_def softmax_def = {"softmax", softmax_bw, false};
static const ct_op_def log_softmax_def = {"log_softmax", log_softmax_bw, false};

static ct_tensor *softmax_impl(ct_src src, ct_tensor *a, int dim, bool is_log) {
    if (!a) return NULL;
    const ct_op_def *def = is_log ? &log_softmax_def : &softmax_def;
    if (!ct__check_same(src, def->name, 1, &a, true)) return NULL;
    int d;
    int64_t outer, n, inner;
    if (!split_dim(src, def->name, a, dim, &d, &outer, &n, &inner)) return NULL;
    const struct ct_kernels_nn *k = NN(src, def->name, a, softmax);
    if (!k) return NULL;
    ct_tensor *x = ct_contiguous_at(src, a);
    if (!x) return NULL;
    ct_tensor *out = ct__new(a->ctx, CT_F32, a->storage->device, a->ndim, a->shape);
    if (!out) return NULL;
    k->softmax(out, x, outer, n, inner, is_log);
    if (ct__needs_grad(a->ctx, 1, &x)) {
        ct_node *nd = ct__record(src, def, 1, &x, 1, &out);
        if (!nd) return NULL;
        nd->iv[0] = outer;
        nd->iv[1] = n;
        nd->iv[2] = inner;
        ct__save(nd, out);
    }
    return out;
}

ct_tensor *ct_softmax_at(ct_src src, ct_tensor *a, int dim) {
    return softmax_impl(src, a, dim, false);
}
ct_tensor *ct_log_softmax_at(ct_src src, ct_tensor *a, int dim) {
    return softmax_impl(src, a, dim, true);
}

/* ---- max / argmax ------------------------------------------------------------------------- */
static ct_status max_bw(ct_node *n, ct_tensor *const *g, ct_tensor **gin) {
    ct_tensor *x = n->in[0], *idx = n->saved[0];
    const struct ct_kernels_nn *k = NN(n->src, "max", x, max_grad);
    if (!k) return ct_ctx_status(n->ctx);
    ct_tensor *gc = ct_contiguous_at(n->src, g[0]);
    ct_tensor *gi = gc ? ct__new(n->ctx, CT_F32, x->storage->device, x->ndim, x->shape) : NULL;
    if (!gi) return ct_ctx_status(n->ctx);
    k->max_grad(gi, gc, idx, n->iv[0], n->iv[1], n->iv[2]);
    gin[0] = gi;
    return CT_OK;
}
static const ct_op_def max_def = {"max", max_bw, false};

/* values (want_values) and/or indices of the maxima of a along dim */
static ct_tensor *max_impl(ct_src src, const char *op, ct_tensor *a, int dim, bool keepdim,
                           bool want_values, ct_tensor **indices) {
    if (indices) *indices = NULL;
    if (!a) return NULL;
    if (!ct__check_same(src, op, 1, &a, true)) return NULL;
    int d;
    int64_t outer, n, inner;
    if (!split_dim(src, op, a, dim, &d, &outer, &n, &inner)) return NULL;
    char s[96];
    if (n == 0)
        return ct__op_error(a->ctx, src, op, CT_E_SHAPE,
                            "dim %d of the tensor %s has size 0; the maximum of nothing is "
                            "undefined", dim, ct_shape_str(a, s, sizeof s));
    const struct ct_kernels_nn *k = NN(src, op, a, max);
    if (!k) return NULL;
    /* the result's shape: dim kept as 1 or dropped (the contiguous layout is the same) */
    int ond = 0;
    int64_t oshape[CT_MAX_DIMS];
    for (int i = 0; i < a->ndim; i++) {
        if (i != d) oshape[ond++] = a->shape[i];
        else if (keepdim) oshape[ond++] = 1;
    }
    ct_tensor *x = ct_contiguous_at(src, a);
    if (!x) return NULL;
    ct_ctx *ctx = a->ctx;
    ct_device dev = a->storage->device;
    bool grad = want_values && ct__needs_grad(ctx, 1, &x);
    bool want_idx = indices || grad || !want_values;
    ct_tensor *vals = want_values ? ct__new(ctx, CT_F32, dev, ond, oshape) : NULL;
    ct_tensor *idx = want_idx ? ct__new(ctx, CT_I64, dev, ond, oshape) : NULL;
    if ((want_values && !vals) || (want_idx && !idx)) return NULL;
    k->max(vals, idx, x, outer, n, inner);
    if (grad) {
        ct_node *nd = ct__record(src, &max_def, 1, &x, 1, &vals);
        if (!nd) return NULL;
        nd->iv[0] = outer;
        nd->iv[1] = n;
        nd->iv[2] = inner;
        ct__save(nd, idx);
    }
    if (indices) *indices = idx;
    return want_values ? vals : idx;
}

ct_tensor *ct_max_at(ct_src src, ct_tensor *a, int dim, bool keepdim, ct_tensor **indices) {
    return max_impl(src, "max", a, dim, keepdim, true, indices);
}
ct_tensor *ct_argmax_at(ct_src src, ct_tensor *a, int dim, bool keepdim) {
    return max_impl(src, "argmax", a, dim, keepdim, false, NULL);
}

/* ---- cross-entropy ------------------------------------------------------------------------ */
static ct_status cross_entropy_bw(ct_node *n, ct_tensor *const *g, ct_tensor **gin) {
    if (!ct__input_needs_grad(n, 0)) return CT_OK;
    ct_tensor *x = n->in[0], *t = n->in[1], *lse = n->saved[0];
    const struct ct_kernels_nn *k = NN(n->src, "cross_entropy", x, cross_entropy_grad);
    if (!k) return ct_ctx_status(n->ctx);
    ct_tensor *gi = ct__new(n->ctx, CT_F32, x->storage->device, x->ndim, x->shape);
    if (!gi) return ct_ctx_status(n->ctx);
    k->cross_entropy_grad(gi, g[0], x, lse, t, n->iv[1], n->iv[2], n->iv[0], (float)n->sc[0]);
    gin[0] = gi;
    return CT_OK;
}
static const ct_op_def cross_entropy_def = {"cross_entropy", cross_entropy_bw, false};

ct_tensor *ct_cross_entropy_at(ct_src src, ct_tensor *logits, ct_tensor *targets,
                               int64_t ignore_index) {
    const char *op = "cross_entropy";
    ct_tensor *ins[2] = {logits, targets};
    ct_ctx *ctx = ct__ctx_of(2, ins);
    if (!ctx) return NULL;
    if (!ct__check_same(src, op, 2, ins, false)) return NULL;
    char s1[96], s2[96];
    ct_shape_str(logits, s1, sizeof s1);
    ct_shape_str(targets, s2, sizeof s2);
    if (logits->dtype != CT_F32)
        return ct__op_error(ctx, src, op, CT_E_DTYPE, "logits %s are %s; expected float32", s1,
                            ct_dtype_name(logits->dtype));
    if (targets->dtype != CT_I64)
        return ct__op_error(ctx, src, op, CT_E_DTYPE,
                            "targets %s are %s; expected int64 class indices", s2,
                            ct_dtype_name(targets->dtype));
    bool batched = logits->ndim == 2 && targets->ndim == 1 && targets->shape[0] == logits->shape[0];
    bool single = logits->ndim == 1 && targets->ndim == 0;
    if (!batched && !single)
        return ct__op_error(ctx, src, op, CT_E_SHAPE,
                            "logits %s and targets %s do not fit: expected logits [N, C] with "
                            "targets [N], or logits [C] with a 0-d target", s1, s2);
    int64_t N = batched ? logits->shape[0] : 1;
    int64_t C = logits->shape[logits->ndim - 1];
    const struct ct_kernels_nn *k = NN(src, op, logits, cross_entropy);
    if (!k || !NN(src, op, logits, check_indices)) return NULL;
    ct_tensor *x = ct_contiguous_at(src, logits);
    ct_tensor *t = ct_contiguous_at(src, targets);
    if (!x || !t) return NULL;
    int64_t count = 0, bad_value = 0;
    int64_t bad = k->check_indices(t, C, true, ignore_index, &count, &bad_value);
    if (bad >= 0)
        return ct__op_error(ctx, src, op, CT_E_ARG,
                            "target %lld at position %lld is out of range for %lld classes "
                            "(logits %s; valid: 0 to %lld, or ignore_index %lld)",
                            (long long)bad_value, (long long)bad, (long long)C, s1,
                            (long long)(C - 1), (long long)ignore_index);
    /* mean over the counted targets; 0 (not NaN) when every target is ignored */
    float inv_count = count > 0 ? (float)(1.0 / (double)count) : 0.0f;
    ct_device dev = logits->storage->device;
    ct_tensor *loss = ct__new(ctx, CT_F32, dev, 0, NULL);
    ct_tensor *lse = ct__new(ctx, CT_F32, dev, 1, (int64_t[]){N});
    if (!loss || !lse) return NULL;
    k->cross_entropy(loss, lse, x, t, N, C, ignore_index, inv_count);
    ct_tensor *rin[2] = {x, t};
    if (ct__needs_grad(ctx, 2, rin)) {
        ct_node *nd = ct__record(src, &cross_entropy_def, 2, rin, 1, &loss);
        if (!nd) return NULL;
        nd->iv[0] = ignore_index;
        nd->iv[1] = N;
        nd->iv[2] = C;
        nd->sc[0] = inv_count;
        ct__save(nd, lse);
    }
    return loss;
}

/* ---- binary cross-entropy on logits ------------------------------------------------------ */
static ct_status bce_bw(ct_node *n, ct_tensor *const *g, ct_tensor **gin) {
    ct_tensor *x = n->in[0], *y = n->in[1];
    const struct ct_kernels_nn *k = NN(n->src, "bce_with_logits", x, bce_with_logits_grad);
    if (!k) return ct_ctx_status(n->ctx);
    ct_device dev = x->storage->device;
    ct_tensor *gc = ct_contiguous_at(n->src, g[0]);
    ct_tensor *gx = ct__input_needs_grad(n, 0) ? ct__new(n->ctx, CT_F32, dev, x->ndim, x->shape) : NULL;
    ct_tensor *gy = ct__input_needs_grad(n, 1) ? ct__new(n->ctx, CT_F32, dev, y->ndim, y->shape) : NULL;
    if (!gc || (ct__input_needs_grad(n, 0) && !gx) || (ct__input_needs_grad(n, 1) && !gy))
        return ct_ctx_status(n->ctx);
    k->bce_with_logits_grad(gx, gy, gc, x, y, ct_numel(x), n->iv[0] != CT_REDUCE_NONE,
                            (float)n->sc[0]);
    gin[0] = gx;
    gin[1] = gy;
    return CT_OK;
}
static const ct_op_def bce_def = {"bce_with_logits", bce_bw, false};

ct_tensor *ct_bce_with_logits_at(ct_src src, ct_tensor *logits, ct_tensor *targets,
                                 ct_reduction reduction) {
    const char *op = "bce_with_logits";
    ct_tensor *ins[2] = {logits, targets};
    ct_ctx *ctx = ct__ctx_of(2, ins);
    if (!ctx) return NULL;
    if (!ct__check_same(src, op, 2, ins, true)) return NULL;
    char s1[96], s2[96];
    if (!ct_same_shape(logits, targets))
        return ct__op_error(ctx, src, op, CT_E_SHAPE,
                            "logits %s and targets %s differ; targets must have the logits' shape",
                            ct_shape_str(logits, s1, sizeof s1), ct_shape_str(targets, s2, sizeof s2));
    if ((int)reduction < CT_REDUCE_NONE || (int)reduction > CT_REDUCE_SUM_LAST_MEAN)
        return ct__op_error(ctx, src, op, CT_E_ARG,
                            "unknown reduction %d (use CT_REDUCE_NONE, _MEAN, _SUM or _SUM_LAST_MEAN)",
                            (int)reduction);
    const struct ct_kernels_nn *k = NN(src, op, logits, bce_with_logits);
    if (!k) return NULL;
    int64_t n = ct_numel(logits);
    double scale = 1.0;
    if (reduction == CT_REDUCE_MEAN) {
        scale = n > 0 ? 1.0 / (double)n : NAN;                   /* mean of nothing: NaN */
    } else if (reduction == CT_REDUCE_SUM_LAST_MEAN) {
        int64_t others = logits->ndim > 0 ? ct__prod(logits->ndim - 1, logits->shape) : 1;
        scale = others > 0 ? 1.0 / (double)others : NAN;
    }
    ct_tensor *x = ct_contiguous_at(src, logits);
    ct_tensor *y = ct_contiguous_at(src, targets);
    if (!x || !y) return NULL;
    bool reduce = reduction != CT_REDUCE_NONE;
    ct_tensor *out = reduce ? ct__new(ctx, CT_F32, logits->storage->device, 0, NULL)
                            : ct__new(ctx, CT_F32, logits->storage->device, logits->ndim, logits->shape);
    if (!out) return NULL;
    k->bce_with_logits(out, x, y, n, reduce, (float)scale);
    ct_tensor *rin[2] = {x, y};
    if (ct__needs_grad(ctx, 2, rin)) {
        ct_node *nd = ct__record(src, &bce_def, 2, rin, 1, &out);
        if (!nd) return NULL;
        nd->iv[0] = reduction;
        nd->sc[0] = scale;
    }
    return out;
}

/* ---- embedding ------------------------------------------------------------------------------ */
static ct_status embedding_bw(ct_node *n, ct_tensor *const *g, ct_tensor **gin) {
    if (!ct__input_needs_grad(n, 0)) return CT_OK;
    ct_tensor *w = n->in[0], *idx = n->in[1];
    const struct ct_kernels_nn *k = NN(n->src, "embedding", w, embedding_grad);
    if (!k) return ct_ctx_status(n->ctx);
    ct_tensor *gc = ct_contiguous_at(n->src, g[0]);
    ct_tensor *gw = gc ? ct__new(n->ctx, CT_F32, w->storage->device, 2, w->shape) : NULL;
    if (!gw) return ct_ctx_status(n->ctx);
    k->embedding_grad(gw, gc, idx, n->iv[0], n->iv[1], n->iv[2]);
    gin[0] = gw;
    return CT_OK;
}
static const ct_op_def embedding_def = {"embedding", embedding_bw, false};

ct_tensor *ct_embedding_at(ct_src src, ct_tensor *weight, ct_tensor *indices) {
    const char *op = "embedding";
    ct_tensor *ins[2] = {weight, indices};
    ct_ctx *ctx = ct__ctx_of(2, ins);
    if (!ctx) return NULL;
    if (!ct__check_same(src, op, 2, ins, false)) return NULL;
    char s1[96], s2[96];
    ct_shape_str(weight, s1, sizeof s1);
    ct_shape_str(indices, s2, sizeof s2);
    if (weight->dtype != CT_F32 || weight->ndim != 2)
        return ct__op_error(ctx, src, op, weight->dtype != CT_F32 ? CT_E_DTYPE : CT_E_SHAPE,
                            "weight %s is %s; expected a float32 [V, D] matrix", s1,
                            ct_dtype_name(weight->dtype));
    if (indices->dtype != CT_I64)
        return ct__op_error(ctx, src, op, CT_E_DTYPE, "indices %s are %s; expected int64", s2,
                            ct_dtype_name(indices->dtype));
    if (indices->ndim >= CT_MAX_DIMS)
        return ct__op_error(ctx, src, op, CT_E_SHAPE,
                            "indices %s have %d dims; the result would have more than %d",
                            s2, indices->ndim, CT_MAX_DIMS);
    int64_t V = weight->shape[0], D = weight->shape[1];
    const struct ct_kernels_nn *k = NN(src, op, weight, embedding);
    if (!k || !NN(src, op, weight, check_indices)) return NULL;
    ct_tensor *ic = ct_contiguous_at(src, indices);
    if (!ic) return NULL;
    int64_t count = 0, bad_value = 0;
    int64_t bad = k->check_indices(ic, V, false, 0, &count, &bad_value);
    if (bad >= 0) {
        int64_t pos[CT_MAX_DIMS], r = bad;
        for (int d = indices->ndim - 1; d >= 0; d--) {
            pos[d] = r % indices->shape[d];
            r /= indices->shape[d];
        }
        char ps[96];
        ct__fmt_shape(indices->ndim, pos, ps, sizeof ps);
        return ct__op_error(ctx, src, op, CT_E_ARG,
                            "index %lld at position %s of indices %s is out of range for weight "
                            "%s (valid: 0 to %lld, V = %lld)",
                            (long long)bad_value, ps, s2, s1, (long long)(V - 1), (long long)V);
    }
    int64_t oshape[CT_MAX_DIMS];
    for (int d = 0; d < indices->ndim; d++) oshape[d] = indices->shape[d];
    oshape[indices->ndim] = D;
    ct_tensor *out = ct__new(ctx, CT_F32, weight->storage->device, indices->ndim + 1, oshape);
    if (!out) return NULL;
    int64_t M = ct_numel(indices);
    k->embedding(out, weight, ic, M, D);
    ct_tensor *rin[2] = {weight, ic};
    if (ct__needs_grad(ctx, 2, rin)) {
        ct_node *nd = ct__record(src, &embedding_def, 2, rin, 1, &out);
        if (!nd) return NULL;
        nd->iv[0] = M;
        nd->iv[1] = V;
        nd->iv[2] = D;
    }
    return out;
}
