/* engine/ops_index.c — index_select, gather, where and masked_fill, differentiable.
 *
 * The front ends check dtypes, devices, shapes and index values, make inputs contiguous
 * where the kernels want it (copies made in a nested scope, freed before returning) and call
 * the device's index kernels (engine/kernels_index.h). Index and condition tensors never get
 * gradients; they are saved on the node, not recorded as inputs.
 */
#include <stdio.h>
#include <string.h>

#include "engine/kernels_index.h"

/* ---- helpers -------------------------------------------------------------------------- */
/* The device's index kernels, or NULL after an error naming op. */
static const struct ct_kernels_index *kernels(ct_src src, const char *op, const ct_tensor *t) {
    const struct ct_kernels_index *k = t->storage->backend->index;
    if (!k) {
        char d[16];
        ct__op_error(t->ctx, src, op, CT_E_UNSUPPORTED, "not available on %s",
                     ct_device_str(t->storage->device, d, sizeof d));
    }
    return k;
}

/* t itself when contiguous, else a contiguous copy without a graph (current scope). */
static ct_tensor *contig(ct_src src, ct_tensor *t) {
    if (ct_is_contiguous(t)) return t;
    return ct_contiguous_at(src, ct_detach_at(src, t));
}

/* A scope for temporaries; false (nothing to end) if it could not be opened. */
static bool tmp_begin(ct_ctx *ctx) {
    int depth = ct_scope_depth(ctx);
    ct_scope_begin(ctx);
    return ct_scope_depth(ctx) > depth;
}

static bool is_int64(ct_src src, const char *op, const char *what, const ct_tensor *t) {
    if (t->dtype == CT_I64) return true;
    char s[96];
    ct__op_error(t->ctx, src, op, CT_E_DTYPE, "%s must be int64 (got %s %s)", what,
                 ct_dtype_name(t->dtype), ct_shape_str(t, s, sizeof s));
    return false;
}

/* Whether t broadcasts (numpy rules) to shape without growing. */
static bool broadcasts_to(const ct_tensor *t, int nd, const int64_t *shape) {
    if (t->ndim > nd) return false;
    for (int i = 0; i < t->ndim; i++) {
        int64_t s = t->shape[i], want = shape[nd - t->ndim + i];
        if (s != want && s != 1) return false;
    }
    return true;
}

/* "[i, j, k]": the multi-index of element pos of a contiguous tensor of shape */
static void fmt_position(int nd, const int64_t *shape, int64_t pos, char *buf, size_t n) {
    int64_t idx[CT_MAX_DIMS];
    for (int d = nd - 1; d >= 0; d--) {
        idx[d] = shape[d] ? pos % shape[d] : 0;
        pos = shape[d] ? pos / shape[d] : 0;
    }
    ct__fmt_shape(nd, idx, buf, n);
}

/* Records the node of an op on a along dim d that keeps its contiguous int64 index ix
 * (index_select, gather: iv[0] = d, saved[0] = ix); false when recording failed. */
static bool record_indexed(ct_src src, const ct_op_def *def, ct_tensor *a, ct_tensor *out, int d,
                           ct_tensor *ix) {
    ct_node *n = ct__record(src, def, 1, &a, 1, &out);
    if (!n) return false;
    n->iv[0] = d;
    ct__save(n, ix);
    return true;
}

/* ---- index_select ------------------------------------------------------------------------ */
/* saved[0]: the contiguous indices; iv[0]: dim */
static ct_status index_select_bw(ct_node *n, ct_tensor *const *g, ct_tensor **gin) {
    ct_tensor *x = n->in[0];
    ct_tensor *z = ct__new(n->ctx, CT_F32, x->storage->device, x->ndim, x->shape);
    ct_tensor *gc = z ? ct_contiguous_at(n->src, g[0]) : NULL;
    if (!gc) return ct_ctx_status(n->ctx);
    z->storage->backend->fill(z, 0.0);
    z->storage->backend->index->index_add(z, (int)n->iv[0], n->saved[0], gc);
    gin[0] = z;
    return CT_OK;
}
static const ct_op_def index_select_def = {"index_select", index_select_bw, false};

ct_tensor *ct_index_select_at(ct_src src, ct_tensor *a, int dim, ct_tensor *indices) {
    ct_tensor *ins[2] = {a, indices};
    ct_ctx *ctx = ct__ctx_of(2, ins);
    if (!ctx) return NULL;
    const char *op = "index_select";
    int d;
    if (!ct__check_same(src, op, 2, ins, false) || !ct__dim(src, op, a, dim, &d) ||
        !is_int64(src, op, "indices", indices))
        return NULL;
    char s1[96], s2[96];
    if (indices->ndim > 1)
        return ct__op_error(ctx, src, op, CT_E_SHAPE, "indices must be 1-D; got shape %s (input %s)",
                            ct_shape_str(indices, s1, sizeof s1), ct_shape_str(a, s2, sizeof s2));
    const struct ct_kernels_index *k = kernels(src, op, a);
    if (!k) return NULL;
    int64_t shape[CT_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[d] = ct_numel(indices);
    ct_tensor *out = ct__new(ctx, a->dtype, a->storage->device, a->ndim, shape);
    if (!out) return NULL;
    bool rec = ct__needs_grad(ctx, 1, &a);
    if (!tmp_begin(ctx)) return NULL;
    ct_tensor *res = NULL;
    ct_tensor *ix = contig(src, indices), *ac = ix ? contig(src, a) : NULL;
    int64_t bad, value = 0;
    if (!ac) goto done;
    if ((bad = k->find_bad_index(ix, a->shape[d], &value)) >= 0) {
        ct__op_error(ctx, src, op, CT_E_ARG,
                     "index %lld at position %lld is out of range for dim %d of size %lld "
                     "(input %s)", (long long)value, (long long)bad, dim,
                     (long long)a->shape[d], ct_shape_str(a, s1, sizeof s1));
        goto done;
    }
    k->index_select(out, ac, d, ix);
    res = out;
    if (rec && !record_indexed(src, &index_select_def, a, out, d, ix)) res = NULL;
done:
    ct_scope_end(ctx);
    return res;
}

/* ---- gather ------------------------------------------------------------------------------ */
/* saved[0]: the contiguous index; iv[0]: dim */
static ct_status gather_bw(ct_node *n, ct_tensor *const *g, ct_tensor **gin) {
    ct_tensor *x = n->in[0];
    ct_tensor *z = ct__new(n->ctx, CT_F32, x->storage->device, x->ndim, x->shape);
    if (!z) return ct_ctx_status(n->ctx);
    z->storage->backend->fill(z, 0.0);
    z->storage->backend->index->scatter_add(z, (int)n->iv[0], n->saved[0], g[0]);
    gin[0] = z;
    return CT_OK;
}
static const ct_op_def gather_def = {"gather", gather_bw, false};

ct_tensor *ct_gather_at(ct_src src, ct_tensor *a, int dim, ct_tensor *index) {
    ct_tensor *ins[2] = {a, index};
    ct_ctx *ctx = ct__ctx_of(2, ins);
    if (!ctx) return NULL;
    const char *op = "gather";
    int d;
    if (!ct__check_same(src, op, 2, ins, false) || !ct__dim(src, op, a, dim, &d) ||
        !is_int64(src, op, "index", index))
        return NULL;
    char s1[96], s2[96], s3[96];
    if (index->ndim != a->ndim)
        return ct__op_error(ctx, src, op, CT_E_SHAPE,
                            "input %s and index %s must have the same number of dims",
                            ct_shape_str(a, s1, sizeof s1), ct_shape_str(index, s2, sizeof s2));
    for (int i = 0; i < a->ndim; i++)
        if (i != d && index->shape[i] > a->shape[i])
            return ct__op_error(ctx, src, op, CT_E_SHAPE,
                                "index %s is larger than input %s in dim %d (only dim %d may "
                                "differ freely)", ct_shape_str(index, s2, sizeof s2),
                                ct_shape_str(a, s1, sizeof s1), i, d);
    const struct ct_kernels_index *k = kernels(src, op, a);
    if (!k) return NULL;
    ct_tensor *out = ct__new(ctx, a->dtype, a->storage->device, index->ndim, index->shape);
    if (!out) return NULL;
    bool rec = ct__needs_grad(ctx, 1, &a);
    if (!tmp_begin(ctx)) return NULL;
    ct_tensor *res = NULL;
    ct_tensor *ix = contig(src, index);
    int64_t bad, value = 0;
    if (!ix) goto done;
    if ((bad = k->find_bad_index(ix, a->shape[d], &value)) >= 0) {
        fmt_position(ix->ndim, ix->shape, bad, s3, sizeof s3);
        ct__op_error(ctx, src, op, CT_E_ARG,
                     "index value %lld at index%s is out of range for dim %d of size %lld "
                     "(input %s, index %s)", (long long)value, s3, dim, (long long)a->shape[d],
                     ct_shape_str(a, s1, sizeof s1), ct_shape_str(index, s2, sizeof s2));
        goto done;
    }
    k->gather(out, a, d, ix);
    res = out;
    if (rec && !record_indexed(src, &gather_def, a, out, d, ix)) res = NULL;
done:
    ct_scope_end(ctx);
    return res;
}

/* ---- where -------------------------------------------------------------------------------- */
/* Gradients, on the output's shape, masked by the saved (expanded) condition; the engine
 * sums them down to each input's shape (reduce_broadcast). */
static ct_status where_bw(ct_node *n, ct_tensor *const *g, ct_tensor **gin) {
    ct_tensor *c = n->saved[0];
    for (int i = 0; i < 2; i++) {
        if (!ct__input_needs_grad(n, i)) continue;
        ct_tensor *r = ct__new(n->ctx, CT_F32, g[0]->storage->device, g[0]->ndim, g[0]->shape);
        if (!r) return ct_ctx_status(n->ctx);
        /* a gets g where cond holds, b where it does not */
        r->storage->backend->index->masked_fill(r, g[0], c, 0.0, i == 0);
        gin[i] = r;
    }
    return CT_OK;
}
static const ct_op_def where_def = {"where", where_bw, true};

ct_tensor *ct_where_at(ct_src src, ct_tensor *cond, ct_tensor *a, ct_tensor *b) {
    ct_tensor *ins[3] = {cond, a, b};
    ct_ctx *ctx = ct__ctx_of(3, ins);
    if (!ctx) return NULL;
    const char *op = "where";
    if (!ct__check_same(src, op, 3, ins, false)) return NULL;
    char s1[96], s2[96], s3[96];
    if (a->dtype != b->dtype)
        return ct__op_error(ctx, src, op, CT_E_DTYPE, "a %s is %s but b %s is %s",
                            ct_shape_str(a, s1, sizeof s1), ct_dtype_name(a->dtype),
                            ct_shape_str(b, s2, sizeof s2), ct_dtype_name(b->dtype));
    /* broadcast shape of the three */
    int nd = 0;
    int64_t shape[CT_MAX_DIMS];
    for (int i = 0; i < 3; i++)
        if (ins[i]->ndim > nd) nd = ins[i]->ndim;
    for (int j = 0; j < nd; j++) {
        int64_t s = 1;
        for (int i = 0; i < 3; i++) {
            int ji = j - (nd - ins[i]->ndim);
            int64_t si = ji >= 0 ? ins[i]->shape[ji] : 1;
            if (si == 1 || si == s) continue;
            if (s != 1)
                return ct__op_error(ctx, src, op, CT_E_SHAPE,
                                    "cond %s, a %s and b %s do not broadcast together (dim %d)",
                                    ct_shape_str(cond, s1, sizeof s1), ct_shape_str(a, s2, sizeof s2),
                                    ct_shape_str(b, s3, sizeof s3), j);
            s = si;
        }
        shape[j] = s;
    }
    const struct ct_kernels_index *k = kernels(src, op, a);
    if (!k) return NULL;
    ct_tensor *out = ct__new(ctx, a->dtype, a->storage->device, nd, shape);
    if (!out) return NULL;
    ct_tensor *ce = ct_same_shape(cond, out) ? cond : ct__broadcast_to(src, op, cond, nd, shape);
    ct_tensor *ae = ct_same_shape(a, out) ? a : ct__broadcast_to(src, op, a, nd, shape);
    ct_tensor *be = ct_same_shape(b, out) ? b : ct__broadcast_to(src, op, b, nd, shape);
    if (!ce || !ae || !be) return NULL;
    k->where(out, ce, ae, be);
    if (ct__needs_grad(ctx, 2, ins + 1)) {
        ct_node *n = ct__record(src, &where_def, 2, ins + 1, 1, &out);
        if (!n) return NULL;
        ct__save(n, ce);
    }
    return out;
}

/* ---- masked_fill -------------------------------------------------------------------------- */
/* saved[0]: the mask expanded to the input's shape */
static ct_status masked_fill_bw(ct_node *n, ct_tensor *const *g, ct_tensor **gin) {
    ct_tensor *x = n->in[0];
    ct_tensor *r = ct__new(n->ctx, CT_F32, x->storage->device, x->ndim, x->shape);
    if (!r) return ct_ctx_status(n->ctx);
    r->storage->backend->index->masked_fill(r, g[0], n->saved[0], 0.0, false);
    gin[0] = r;
    return CT_OK;
}
static const ct_op_def masked_fill_def = {"masked_fill", masked_fill_bw, false};

ct_tensor *ct_masked_fill_at(ct_src src, ct_tensor *a, ct_tensor *mask, float value) {
    ct_tensor *ins[2] = {a, mask};
    ct_ctx *ctx = ct__ctx_of(2, ins);
    if (!ctx) return NULL;
    const char *op = "masked_fill";
    if (!ct__check_same(src, op, 2, ins, false)) return NULL;
    char s1[96], s2[96];
    if (!broadcasts_to(mask, a->ndim, a->shape))
        return ct__op_error(ctx, src, op, CT_E_SHAPE, "mask %s does not broadcast to input %s",
                            ct_shape_str(mask, s1, sizeof s1), ct_shape_str(a, s2, sizeof s2));
    const struct ct_kernels_index *k = kernels(src, op, a);
    if (!k) return NULL;
    ct_tensor *out = ct__new(ctx, a->dtype, a->storage->device, a->ndim, a->shape);
    if (!out) return NULL;
    ct_tensor *me = ct_same_shape(mask, a) ? mask : ct__broadcast_to(src, op, mask, a->ndim, a->shape);
    if (!me) return NULL;
    k->masked_fill(out, a, me, value, false);
    if (ct__needs_grad(ctx, 1, &a)) {
        ct_node *n = ct__record(src, &masked_fill_def, 1, &a, 1, &out);
        if (!n) return NULL;
        ct__save(n, me);
    }
    return out;
}
