/* engine/views.c — views without copying (view, reshape, transpose, permute, narrow, select,
 * squeeze, unsqueeze, expand) and the copying ops contiguous and clone, all differentiable. */
#include <string.h>

#include "engine/internal.h"

/* gradient of any op that only reinterprets the shape: reshape back */
static ct_status reshape_bw(ct_node *n, ct_tensor *const *g, ct_tensor **gin) {
    gin[0] = ct_reshape_at(n->src, g[0], n->in[0]->ndim, n->in[0]->shape);
    return gin[0] ? CT_OK : ct_ctx_status(n->ctx);
}
static ct_status identity_bw(ct_node *n, ct_tensor *const *g, ct_tensor **gin) {
    (void)n;
    gin[0] = g[0];
    return CT_OK;
}
static ct_status permute_bw(ct_node *n, ct_tensor *const *g, ct_tensor **gin) {
    int nd = n->in[0]->ndim;
    int64_t inv[CT_MAX_DIMS];
    for (int i = 0; i < nd; i++) inv[n->iv[i]] = i;
    gin[0] = ct_permute_at(n->src, g[0], nd, inv);
    return gin[0] ? CT_OK : ct_ctx_status(n->ctx);
}
/* narrow and select: scatter the gradient into zeros of the input's shape */
static ct_status narrow_bw(ct_node *n, ct_tensor *const *g, ct_tensor **gin) {
    ct_tensor *x = n->in[0];
    ct_tensor *z = ct__new(n->ctx, CT_F32, x->storage->device, x->ndim, x->shape);
    if (!z) return ct_ctx_status(n->ctx);
    z->storage->backend->fill(z, 0.0);
    int dim = (int)n->iv[0];
    int64_t shape[CT_MAX_DIMS];
    memcpy(shape, z->shape, sizeof shape);
    shape[dim] = n->iv[2];      /* length (1 for select) */
    ct_tensor *part = ct__view(z, z->ndim, shape, z->stride, z->offset + n->iv[1] * z->stride[dim]);
    if (!part) return ct_ctx_status(n->ctx);
    ct_tensor *gv = n->iv[3] ? ct_unsqueeze_at(n->src, g[0], dim) : g[0];   /* select drops dim */
    if (!gv) return ct_ctx_status(n->ctx);
    z->storage->backend->copy(part, gv);
    gin[0] = z;
    return CT_OK;
}
static ct_status expand_bw(ct_node *n, ct_tensor *const *g, ct_tensor **gin) {
    gin[0] = ct_sum_to_at(n->src, g[0], n->in[0]->ndim, n->in[0]->shape);
    return gin[0] ? CT_OK : ct_ctx_status(n->ctx);
}

static const ct_op_def view_def = {"view", reshape_bw, false};
static const ct_op_def reshape_def = {"reshape", reshape_bw, false};
static const ct_op_def squeeze_def = {"squeeze", reshape_bw, false};
static const ct_op_def unsqueeze_def = {"unsqueeze", reshape_bw, false};
static const ct_op_def permute_def = {"permute", permute_bw, false};
static const ct_op_def transpose_def = {"transpose", permute_bw, false};
static const ct_op_def narrow_def = {"narrow", narrow_bw, false};
static const ct_op_def select_def = {"select", narrow_bw, false};
static const ct_op_def expand_def = {"expand", expand_bw, false};
static const ct_op_def contiguous_def = {"contiguous", identity_bw, false};
static const ct_op_def clone_def = {"clone", identity_bw, false};

static ct_node *record1(ct_src src, const ct_op_def *def, ct_tensor *in, ct_tensor *out) {
    if (!out || !ct__needs_grad(in->ctx, 1, &in)) return NULL;
    return ct__record(src, def, 1, &in, 1, &out);
}

/* New strides for viewing (shape, stride) as new_shape without copying, as PyTorch does;
 * false if the layout does not allow it. */
static bool view_strides(const ct_tensor *t, int nd, const int64_t *ns, int64_t *nst) {
    int64_t numel = ct_numel(t);
    if (numel == 0 || t->ndim == 0 || numel == 1) {
        ct__contiguous_strides(nd, ns, nst);
        return true;
    }
    int view_d = nd - 1;
    int64_t chunk = t->stride[t->ndim - 1], tn = 1, vn = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        tn *= t->shape[d];
        if (d == 0 || (t->shape[d - 1] != 1 && t->stride[d - 1] != tn * chunk)) {
            while (view_d >= 0 && (vn < tn || ns[view_d] == 1)) {
                nst[view_d] = vn * chunk;
                vn *= ns[view_d];
                view_d--;
            }
            if (vn != tn) return false;
            if (d > 0) {
                chunk = t->stride[d - 1];
                tn = 1;
                vn = 1;
            }
        }
    }
    return view_d == -1;
}

/* Resolves a -1 and checks the element count. */
static bool infer_shape(ct_src src, const char *op, const ct_tensor *t, int nd, const int64_t *in,
                        int64_t *out) {
    if (nd < 0 || nd > CT_MAX_DIMS) {
        ct__op_error(t->ctx, src, op, CT_E_SHAPE, "%d dims requested; at most %d", nd, CT_MAX_DIMS);
        return false;
    }
    int infer = -1;
    int64_t p = 1;
    for (int i = 0; i < nd; i++) {
        out[i] = in[i];
        if (in[i] == -1 && infer < 0) infer = i;
        else if (in[i] < 0) goto bad;
        else p *= in[i];
    }
    if (infer >= 0) {
        if (p == 0 || ct_numel(t) % p) goto bad;
        out[infer] = ct_numel(t) / p;
    } else if (p != ct_numel(t)) goto bad;
    return true;
bad:;
    char s1[96], s2[96];
    ct__fmt_shape(nd, in, s2, sizeof s2);
    ct__op_error(t->ctx, src, op, CT_E_SHAPE, "cannot view a tensor of shape %s (%lld elements) as %s",
                 ct_shape_str(t, s1, sizeof s1), (long long)ct_numel(t), s2);
    return false;
}

ct_tensor *ct_view_at(ct_src src, ct_tensor *t, int nd, const int64_t *shape) {
    if (!t) return NULL;
    int64_t ns[CT_MAX_DIMS], nst[CT_MAX_DIMS];
    if (!infer_shape(src, "view", t, nd, shape, ns)) return NULL;
    if (!view_strides(t, nd, ns, nst)) {
        char s1[96], s2[96];
        ct__fmt_shape(nd, ns, s2, sizeof s2);
        return ct__op_error(t->ctx, src, "view", CT_E_SHAPE,
                            "the layout of this %s tensor (a transposed or sliced view) cannot be "
                            "viewed as %s without a copy; use ct_reshape (copies when it must)",
                            ct_shape_str(t, s1, sizeof s1), s2);
    }
    ct_tensor *out = ct__view(t, nd, ns, nst, t->offset);
    record1(src, &view_def, t, out);
    return out;
}

ct_tensor *ct_reshape_at(ct_src src, ct_tensor *t, int nd, const int64_t *shape) {
    if (!t) return NULL;
    int64_t ns[CT_MAX_DIMS], nst[CT_MAX_DIMS];
    if (!infer_shape(src, "reshape", t, nd, shape, ns)) return NULL;
    ct_tensor *out;
    if (view_strides(t, nd, ns, nst)) {
        out = ct__view(t, nd, ns, nst, t->offset);
    } else {
        out = ct__new(t->ctx, t->dtype, t->storage->device, nd, ns);
        if (!out) return NULL;
        ct_tensor tmp = *out;            /* out's storage seen with t's shape */
        tmp.ndim = t->ndim;
        memcpy(tmp.shape, t->shape, sizeof tmp.shape);
        ct__contiguous_strides(t->ndim, t->shape, tmp.stride);
        out->storage->backend->copy(&tmp, t);
    }
    record1(src, &reshape_def, t, out);
    return out;
}

ct_tensor *ct_permute_at(ct_src src, ct_tensor *t, int nd, const int64_t *perm) {
    if (!t) return NULL;
    char s[96];
    if (nd != t->ndim)
        return ct__op_error(t->ctx, src, "permute", CT_E_ARG, "%d dims given for a tensor of shape %s",
                            nd, ct_shape_str(t, s, sizeof s));
    int64_t ns[CT_MAX_DIMS] = {0}, nst[CT_MAX_DIMS] = {0};
    bool seen[CT_MAX_DIMS] = {0};
    for (int i = 0; i < nd; i++) {
        int64_t p = perm[i] < 0 ? perm[i] + nd : perm[i];
        if (p < 0 || p >= nd || seen[p])
            return ct__op_error(t->ctx, src, "permute", CT_E_ARG,
                                "not a permutation of the %d dims of %s (entry %d = %lld)", nd,
                                ct_shape_str(t, s, sizeof s), i, (long long)perm[i]);
        seen[p] = true;
        ns[i] = t->shape[p];
        nst[i] = t->stride[p];
    }
    ct_tensor *out = ct__view(t, nd, ns, nst, t->offset);
    ct_node *n = record1(src, &permute_def, t, out);
    if (n)
        for (int i = 0; i < nd; i++) n->iv[i] = perm[i] < 0 ? perm[i] + nd : perm[i];
    return out;
}

ct_tensor *ct_transpose_at(ct_src src, ct_tensor *t, int d0, int d1) {
    if (!t) return NULL;
    int a, b;
    if (!ct__dim(src, "transpose", t, d0, &a) || !ct__dim(src, "transpose", t, d1, &b)) return NULL;
    int64_t perm[CT_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++) perm[i] = i;
    perm[a] = b;
    perm[b] = a;
    int64_t ns[CT_MAX_DIMS], nst[CT_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++) { ns[i] = t->shape[perm[i]]; nst[i] = t->stride[perm[i]]; }
    ct_tensor *out = ct__view(t, t->ndim, ns, nst, t->offset);
    ct_node *n = record1(src, &transpose_def, t, out);
    if (n) for (int i = 0; i < t->ndim; i++) n->iv[i] = perm[i];
    return out;
}

static ct_tensor *narrow_impl(ct_src src, const ct_op_def *def, ct_tensor *t, int dim,
                              int64_t start, int64_t len, bool drop) {
    if (!t) return NULL;
    int d;
    if (!ct__dim(src, def->name, t, dim, &d)) return NULL;
    int64_t size = t->shape[d];
    if (start < 0 && drop) start += size;   /* select(-1) as in PyTorch */
    if (start < 0 || len < 0 || start + len > size) {
        char s[96];
        return ct__op_error(t->ctx, src, def->name, CT_E_ARG,
                            "range [%lld, %lld) is outside dim %d of size %lld (shape %s)",
                            (long long)start, (long long)(start + len), dim, (long long)size,
                            ct_shape_str(t, s, sizeof s));
    }
    int64_t ns[CT_MAX_DIMS] = {0}, nst[CT_MAX_DIMS] = {0};
    int nd = 0;
    for (int i = 0; i < t->ndim; i++) {
        if (i == d && drop) continue;
        ns[nd] = i == d ? len : t->shape[i];
        nst[nd++] = t->stride[i];
    }
    ct_tensor *out = ct__view(t, nd, ns, nst, t->offset + start * t->stride[d]);
    ct_node *n = record1(src, def, t, out);
    if (n) { n->iv[0] = d; n->iv[1] = start; n->iv[2] = len; n->iv[3] = drop; }
    return out;
}

ct_tensor *ct_narrow_at(ct_src src, ct_tensor *t, int dim, int64_t start, int64_t len) {
    return narrow_impl(src, &narrow_def, t, dim, start, len, false);
}
ct_tensor *ct_select_at(ct_src src, ct_tensor *t, int dim, int64_t index) {
    return narrow_impl(src, &select_def, t, dim, index, 1, true);
}

ct_tensor *ct_squeeze_at(ct_src src, ct_tensor *t, int dim) {
    if (!t) return NULL;
    int d;
    if (!ct__dim(src, "squeeze", t, dim, &d)) return NULL;
    if (t->shape[d] != 1) {
        char s[96];
        return ct__op_error(t->ctx, src, "squeeze", CT_E_SHAPE, "dim %d of %s has size %lld, not 1",
                            dim, ct_shape_str(t, s, sizeof s), (long long)t->shape[d]);
    }
    int64_t ns[CT_MAX_DIMS], nst[CT_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < t->ndim; i++)
        if (i != d) { ns[nd] = t->shape[i]; nst[nd++] = t->stride[i]; }
    ct_tensor *out = ct__view(t, nd, ns, nst, t->offset);
    record1(src, &squeeze_def, t, out);
    return out;
}

ct_tensor *ct_unsqueeze_at(ct_src src, ct_tensor *t, int dim) {
    if (!t) return NULL;
    int nd = t->ndim + 1;
    int d = dim < 0 ? dim + nd : dim;
    if (d < 0 || d >= nd || nd > CT_MAX_DIMS) {
        char s[96];
        return ct__op_error(t->ctx, src, "unsqueeze", CT_E_ARG, "dim %d is out of range for %s",
                            dim, ct_shape_str(t, s, sizeof s));
    }
    int64_t ns[CT_MAX_DIMS], nst[CT_MAX_DIMS];
    for (int i = 0, j = 0; i < nd; i++) {
        if (i == d) {
            ns[i] = 1;
            nst[i] = j < t->ndim ? t->shape[j] * t->stride[j] : 1;
        } else {
            ns[i] = t->shape[j];
            nst[i] = t->stride[j++];
        }
    }
    ct_tensor *out = ct__view(t, nd, ns, nst, t->offset);
    record1(src, &unsqueeze_def, t, out);
    return out;
}

ct_tensor *ct_expand_at(ct_src src, ct_tensor *t, int nd, const int64_t *shape) {
    if (!t) return NULL;
    if (nd < t->ndim || nd > CT_MAX_DIMS) {
        char s1[96], s2[96];
        ct__fmt_shape(nd, shape, s2, sizeof s2);
        return ct__op_error(t->ctx, src, "expand", CT_E_SHAPE, "cannot expand %s to %s (fewer dims)",
                            ct_shape_str(t, s1, sizeof s1), s2);
    }
    int64_t ns[CT_MAX_DIMS];
    for (int i = 0; i < nd; i++) {
        int it = i - (nd - t->ndim);
        ns[i] = shape[i] == -1 && it >= 0 ? t->shape[it] : shape[i];
    }
    ct_tensor *out = ct__broadcast_to(src, "expand", t, nd, ns);
    record1(src, &expand_def, t, out);
    return out;
}

static ct_tensor *copy_of(ct_src src, const ct_op_def *def, ct_tensor *t) {
    ct_tensor *out = ct__new(t->ctx, t->dtype, t->storage->device, t->ndim, t->shape);
    if (!out) return NULL;
    out->storage->backend->copy(out, t);
    record1(src, def, t, out);
    return out;
}

ct_tensor *ct_contiguous_at(ct_src src, ct_tensor *t) {
    if (!t) return NULL;
    if (ct_is_contiguous(t)) {
        return ct__scope_ref(t);   /* the same tensor, one more reference for the scope */
    }
    return copy_of(src, &contiguous_def, t);
}

ct_tensor *ct_clone_at(ct_src src, ct_tensor *t) {
    if (!t) return NULL;
    return copy_of(src, &clone_def, t);
}

ct_tensor *ct_detach_at(ct_src src, ct_tensor *t) {
    (void)src;
    if (!t) return NULL;
    return ct__view(t, t->ndim, t->shape, t->stride, t->offset);
}
