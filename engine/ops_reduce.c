/* engine/ops_reduce.c — sum, mean and sum_to (the reduction that undoes broadcasting). */
#include <string.h>

#include "engine/internal.h"

static ct_status sum_bw(ct_node *n, ct_tensor *const *g, ct_tensor **gin) {
    /* g has the keepdim shape stored in iv; expand it back to the input's shape */
    ct_tensor *x = n->in[0];
    int nd = x->ndim;
    ct_tensor *gk = ct_reshape_at(n->src, g[0], nd, n->iv);
    ct_tensor *e = gk ? ct__broadcast_to(n->src, "sum", gk, nd, x->shape) : NULL;
    if (e && n->sc[0] != 1.0) e = ct_mul_scalar_at(n->src, e, (float)n->sc[0]);
    gin[0] = e;
    return e ? CT_OK : ct_ctx_status(n->ctx);
}
static const ct_op_def sum_def = {"sum", sum_bw, false};
static const ct_op_def mean_def = {"mean", sum_bw, false};
static const ct_op_def sum_to_def = {"sum_to", sum_bw, false};

/* Sums over the dims flagged in red[]; scale multiplies the result (1/count for mean). */
static ct_tensor *reduce(ct_src src, const ct_op_def *def, ct_tensor *a, const bool *red,
                         bool keepdim, bool mean) {
    ct_ctx *ctx = a->ctx;
    int64_t kshape[CT_MAX_DIMS], oshape[CT_MAX_DIMS];
    int ond = 0;
    int64_t count = 1;
    for (int d = 0; d < a->ndim; d++) {
        kshape[d] = red[d] ? 1 : a->shape[d];
        if (red[d]) count *= a->shape[d];
        if (!red[d] || keepdim) oshape[ond++] = kshape[d];
    }
    ct_tensor *out = ct__new(ctx, CT_F32, a->storage->device, a->ndim, kshape);
    if (!out) return NULL;
    out->storage->backend->sum(out, a);
    double scale = 1.0;
    if (mean) {
        scale = count > 0 ? 1.0 / (double)count : 0.0;
        if (count == 0) out->storage->backend->fill(out, 0.0 / 0.0);   /* mean of nothing: NaN */
        else out->storage->backend->unary(CT_UN_MUL_SCALAR, out, out, (float)scale, 0);
    }
    if (!keepdim) {
        int64_t st[CT_MAX_DIMS];
        ct__contiguous_strides(ond, oshape, st);
        out = ct__view(out, ond, oshape, st, 0);
        if (!out) return NULL;
    }
    if (ct__needs_grad(ctx, 1, &a)) {
        ct_node *n = ct__record(src, def, 1, &a, 1, &out);
        if (!n) return NULL;
        memcpy(n->iv, kshape, sizeof(int64_t) * (size_t)a->ndim);
        n->sc[0] = scale;
    }
    return out;
}

static ct_tensor *reduce_dims(ct_src src, const ct_op_def *def, ct_tensor *a, int ndims,
                              const int *dims, bool keepdim, bool mean) {
    if (!a) return NULL;
    if (!ct__check_same(src, def->name, 1, &a, true)) return NULL;
    bool red[CT_MAX_DIMS] = {0};
    if (ndims == 0) {
        for (int d = 0; d < a->ndim; d++) red[d] = true;
    }
    for (int i = 0; i < ndims; i++) {
        int d;
        if (!ct__dim(src, def->name, a, dims[i], &d)) return NULL;
        if (red[d])
            return ct__op_error(a->ctx, src, def->name, CT_E_ARG, "dim %d is listed twice", dims[i]);
        red[d] = true;
    }
    return reduce(src, def, a, red, keepdim, mean);
}

ct_tensor *ct_sum_at(ct_src src, ct_tensor *a, int ndims, const int *dims, bool keepdim) {
    return reduce_dims(src, &sum_def, a, ndims, dims, keepdim, false);
}
ct_tensor *ct_mean_at(ct_src src, ct_tensor *a, int ndims, const int *dims, bool keepdim) {
    return reduce_dims(src, &mean_def, a, ndims, dims, keepdim, true);
}

ct_tensor *ct_sum_to_at(ct_src src, ct_tensor *a, int ndim, const int64_t *shape) {
    if (!a) return NULL;
    if (!ct__check_same(src, "sum_to", 1, &a, true)) return NULL;
    char s1[96], s2[96];
    if (ndim > a->ndim) goto bad;
    int lead = a->ndim - ndim;
    bool red[CT_MAX_DIMS] = {0};
    for (int d = 0; d < a->ndim; d++) {
        if (d < lead) { red[d] = true; continue; }
        int64_t want = shape[d - lead];
        if (want == a->shape[d]) continue;
        if (want == 1) red[d] = true;
        else goto bad;
    }
    ct_tensor *r = reduce(src, &sum_to_def, a, red, true, false);
    if (!r || lead == 0) return r;
    return ct_reshape_at(src, r, ndim, shape);
bad:
    ct__fmt_shape(ndim, shape, s2, sizeof s2);
    return ct__op_error(a->ctx, src, "sum_to", CT_E_SHAPE, "cannot sum %s down to %s",
                        ct_shape_str(a, s1, sizeof s1), s2);
}
