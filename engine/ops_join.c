/* engine/ops_join.c — concat and stack (copies into slices of one output through the
 * backend's strided copy), split and chunk (differentiable narrow views, no copy). */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "engine/internal.h"

/* ---- concat and stack --------------------------------------------------------------------- */
/* iv[0]: dim of the output; iv[1]: 1 for stack. The gradient of input i is its slice of g:
 * a narrow view (concat) or a select view (stack). */
static ct_status join_bw(ct_node *n, ct_tensor *const *g, ct_tensor **gin) {
    int d = (int)n->iv[0];
    bool stack = n->iv[1] != 0;
    int64_t off = 0;
    for (int i = 0; i < n->n_in; i++) {
        int64_t len = stack ? 1 : n->in[i]->shape[d];
        if (ct__input_needs_grad(n, i)) {
            gin[i] = stack ? ct_select_at(n->src, g[0], d, i) : ct_narrow_at(n->src, g[0], d, off, len);
            if (!gin[i]) return ct_ctx_status(n->ctx);
        }
        off += len;
    }
    return CT_OK;
}
static const ct_op_def concat_def = {"concat", join_bw, false};
static const ct_op_def stack_def = {"stack", join_bw, false};

static ct_tensor *join(ct_src src, const ct_op_def *def, int n, ct_tensor *const *ts, int dim,
                       bool stack) {
    if (n <= 0 || !ts) return NULL;             /* no tensor, so no context to report to */
    ct_ctx *ctx = ct__ctx_of(n, ts);
    if (!ctx) return NULL;
    const char *op = def->name;
    if (!ct__check_same(src, op, n, ts, false)) return NULL;
    const ct_tensor *t0 = ts[0];
    char s1[96], s2[96];
    int nd = t0->ndim + (stack ? 1 : 0);
    int d = dim < 0 ? dim + nd : dim;
    if (nd > CT_MAX_DIMS)
        return ct__op_error(ctx, src, op, CT_E_SHAPE, "inputs of shape %s already have %d dims "
                            "(the most a tensor has)", ct_shape_str(t0, s1, sizeof s1), CT_MAX_DIMS);
    if (d < 0 || d >= nd)
        return ct__op_error(ctx, src, op, CT_E_ARG,
                            "dim %d is out of range for inputs of shape %s (valid: %d to %d)", dim,
                            ct_shape_str(t0, s1, sizeof s1), -nd, nd - 1);
    int64_t shape[CT_MAX_DIMS];
    for (int j = 0, k = 0; j < nd; j++) shape[j] = stack && j == d ? n : t0->shape[k++];
    if (!stack) shape[d] = 0;
    for (int i = 0; i < n; i++) {
        const ct_tensor *t = ts[i];
        if (t->dtype != t0->dtype)
            return ct__op_error(ctx, src, op, CT_E_DTYPE, "input %d is %s but input 0 is %s", i,
                                ct_dtype_name(t->dtype), ct_dtype_name(t0->dtype));
        bool ok = t->ndim == t0->ndim;
        for (int j = 0; ok && j < t->ndim; j++)
            if (t->shape[j] != t0->shape[j] && (stack || j != d)) ok = false;
        if (!ok) {
            char why[64] = "all must match";
            if (!stack) snprintf(why, sizeof why, "they must match except in dim %d", d);
            return ct__op_error(ctx, src, op, CT_E_SHAPE, "input %d has shape %s but input 0 has "
                                "%s (%s)", i, ct_shape_str(t, s1, sizeof s1),
                                ct_shape_str(t0, s2, sizeof s2), why);
        }
        if (!stack) shape[d] += t->shape[d];
    }
    ct_tensor *out = ct__new(ctx, t0->dtype, t0->storage->device, nd, shape);
    if (!out) return NULL;
    /* each input goes into its slice of out, seen through a stack-allocated view */
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        ct_tensor *t = ts[i];
        ct_tensor part = *out;
        if (stack) {
            part.ndim = t->ndim;
            for (int j = 0, k = 0; j < nd; j++) {
                if (j == d) continue;
                part.shape[k] = out->shape[j];
                part.stride[k++] = out->stride[j];
            }
            part.offset = out->offset + i * out->stride[d];
        } else {
            part.shape[d] = t->shape[d];
            part.offset = out->offset + off * out->stride[d];
            off += t->shape[d];
        }
        if (ct_numel(t) > 0) out->storage->backend->copy(&part, t);
    }
    if (ct__needs_grad(ctx, n, ts)) {
        ct_node *nd_ = ct__record(src, def, n, ts, 1, &out);
        if (!nd_) return NULL;
        nd_->iv[0] = d;
        nd_->iv[1] = stack;
    }
    return out;
}

ct_tensor *ct_concat_at(ct_src src, int n, ct_tensor *const *ts, int dim) {
    return join(src, &concat_def, n, ts, dim, false);
}
ct_tensor *ct_stack_at(ct_src src, int n, ct_tensor *const *ts, int dim) {
    return join(src, &stack_def, n, ts, dim, true);
}

/* ---- split and chunk ---------------------------------------------------------------------- */
static int split_impl(ct_src src, const char *op, ct_tensor *a, int64_t size, int d,
                      ct_tensor **out, int max_out) {
    int64_t len = a->shape[d];
    int64_t count = len == 0 ? 1 : (len + size - 1) / size;
    if (count > INT_MAX) {
        ct__op_error(a->ctx, src, op, CT_E_ARG, "%lld pieces are too many", (long long)count);
        return -1;
    }
    for (int64_t i = 0; i < count && i < max_out; i++) {
        int64_t start = i * size, l = len - start < size ? len - start : size;
        out[i] = ct_narrow_at(src, a, d, start, l);
        if (!out[i]) return -1;
    }
    return (int)count;
}

int ct_split_at(ct_src src, ct_tensor *a, int64_t size, int dim, ct_tensor **out, int max_out) {
    if (!a) return -1;
    int d;
    if (!ct__dim(src, "split", a, dim, &d)) return -1;
    if (size <= 0) {
        ct__op_error(a->ctx, src, "split", CT_E_ARG, "piece size %lld must be positive",
                     (long long)size);
        return -1;
    }
    if (max_out < 0 || (max_out > 0 && !out)) {
        ct__op_error(a->ctx, src, "split", CT_E_ARG, "out is NULL or max_out (%d) is negative",
                     max_out);
        return -1;
    }
    return split_impl(src, "split", a, size, d, out, max_out);
}

int ct_chunk_at(ct_src src, ct_tensor *a, int n, int dim, ct_tensor **out) {
    if (!a) return -1;
    int d;
    if (!ct__dim(src, "chunk", a, dim, &d)) return -1;
    if (n <= 0) {
        ct__op_error(a->ctx, src, "chunk", CT_E_ARG, "%d chunks requested; must be positive", n);
        return -1;
    }
    if (!out) {
        ct__op_error(a->ctx, src, "chunk", CT_E_ARG, "out is NULL (it must hold %d tensors)", n);
        return -1;
    }
    int64_t len = a->shape[d];
    if (len == 0) {                             /* as torch: n empty chunks */
        for (int i = 0; i < n; i++)
            if (!(out[i] = ct_narrow_at(src, a, d, 0, 0))) return -1;
        return n;
    }
    return split_impl(src, "chunk", a, (len + n - 1) / n, d, out, n);
}
