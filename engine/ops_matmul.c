/* engine/ops_matmul.c — matrix products through the backend's GEMM. Operands whose last two
 * dims are row- or column-major (e.g. a ct_transpose view) go to BLAS as they are, with a
 * transpose flag; only other layouts are copied. */
#include <string.h>

#include "engine/internal.h"

static ct_status matmul_bw(ct_node *n, ct_tensor *const *g, ct_tensor **gin) {
    ct_tensor *a = n->in[0], *b = n->in[1];
    if (ct__input_needs_grad(n, 0))
        gin[0] = ct_matmul_at(n->src, g[0], ct_transpose_at(n->src, b, -1, -2));
    if (ct__input_needs_grad(n, 1))
        gin[1] = ct_matmul_at(n->src, ct_transpose_at(n->src, a, -1, -2), g[0]);
    return CT_OK;
}
static const ct_op_def matmul_def = {"matmul", matmul_bw, true};

/* How BLAS can read the matrix in the last two dims: false if it cannot without a copy. */
static bool blas_layout(const ct_tensor *t, bool *trans, int64_t *ld) {
    int64_t r = t->shape[t->ndim - 2], c = t->shape[t->ndim - 1];
    int64_t sr = t->stride[t->ndim - 2], sc = t->stride[t->ndim - 1];
    if ((sc == 1 || c == 1) && sr >= (c > 1 ? c : 1)) { *trans = false; *ld = sr > 0 ? sr : 1; if (*ld < c) *ld = c; return true; }
    if ((sr == 1 || r == 1) && sc >= (r > 1 ? r : 1)) { *trans = true; *ld = sc > 0 ? sc : 1; if (*ld < r) *ld = r; return true; }
    return false;
}

/* One stride that walks the nb batch dims in order; false if they do not merge. */
static bool batch_stride(const ct_tensor *t, int nb, int64_t *stride) {
    int64_t s = -1, expect = 0;
    for (int i = nb - 1; i >= 0; i--) {
        if (t->shape[i] == 1) continue;
        if (s < 0) { s = t->stride[i]; expect = s * t->shape[i]; continue; }
        if (t->stride[i] != expect) return false;
        expect *= t->shape[i];
    }
    *stride = s < 0 ? 0 : s;
    return true;
}

ct_tensor *ct_matmul_at(ct_src src, ct_tensor *a, ct_tensor *b) {
    ct_tensor *ins[2] = {a, b};
    ct_ctx *ctx = ct__ctx_of(2, ins);
    if (!ctx) return NULL;
    if (!ct__check_same(src, "matmul", 2, ins, true)) return NULL;
    char s1[96], s2[96];
    if (a->ndim < 2 || b->ndim < 2)
        return ct__op_error(ctx, src, "matmul", CT_E_SHAPE,
                            "operands %s and %s: both need at least 2 dims (unsqueeze a vector)",
                            ct_shape_str(a, s1, sizeof s1), ct_shape_str(b, s2, sizeof s2));
    int64_t m = a->shape[a->ndim - 2], k = a->shape[a->ndim - 1];
    int64_t k2 = b->shape[b->ndim - 2], n = b->shape[b->ndim - 1];
    if (k != k2)
        return ct__op_error(ctx, src, "matmul", CT_E_SHAPE,
                            "shapes %s and %s: inner dims %lld and %lld differ",
                            ct_shape_str(a, s1, sizeof s1), ct_shape_str(b, s2, sizeof s2),
                            (long long)k, (long long)k2);
    /* broadcast batch dims */
    int nb = (a->ndim > b->ndim ? a->ndim : b->ndim) - 2;
    int64_t bshape[CT_MAX_DIMS];
    for (int i = 0; i < nb; i++) {
        int ia = i - (nb - (a->ndim - 2)), ib = i - (nb - (b->ndim - 2));
        int64_t sa = ia >= 0 ? a->shape[ia] : 1, sb = ib >= 0 ? b->shape[ib] : 1;
        if (sa != sb && sa != 1 && sb != 1)
            return ct__op_error(ctx, src, "matmul", CT_E_SHAPE,
                                "batch dims of %s and %s do not broadcast",
                                ct_shape_str(a, s1, sizeof s1), ct_shape_str(b, s2, sizeof s2));
        bshape[i] = sa == 1 ? sb : sa;
    }
    int64_t batch = ct__prod(nb, bshape);
    int64_t oshape[CT_MAX_DIMS];
    memcpy(oshape, bshape, sizeof(int64_t) * (size_t)nb);
    oshape[nb] = m;
    oshape[nb + 1] = n;
    ct_tensor *out = ct__new(ctx, CT_F32, a->storage->device, nb + 2, oshape);
    if (!out) return NULL;

    ct_tensor *ops[2] = {a, b};
    bool tr[2];
    int64_t ld[2], bs[2];
    bool was = ct_set_grad_enabled(ctx, false);
    for (int i = 0; i < 2; i++) {
        ct_tensor *t = ops[i];
        int64_t es[CT_MAX_DIMS];
        memcpy(es, bshape, sizeof(int64_t) * (size_t)nb);
        es[nb] = t->shape[t->ndim - 2];
        es[nb + 1] = t->shape[t->ndim - 1];
        if (nb > 0) t = ct__broadcast_to(src, "matmul", t, nb + 2, es);
        if (!t) { ct_set_grad_enabled(ctx, was); return NULL; }
        if (!blas_layout(t, &tr[i], &ld[i]) || !batch_stride(t, nb, &bs[i])) {
            t = ct_contiguous_at(src, t);
            if (!t) { ct_set_grad_enabled(ctx, was); return NULL; }
            blas_layout(t, &tr[i], &ld[i]);
            batch_stride(t, nb, &bs[i]);
        }
        ops[i] = t;
    }
    ct_set_grad_enabled(ctx, was);
    if (m > 0 && n > 0) {
        if (k == 0) out->storage->backend->fill(out, 0.0);
        else
            out->storage->backend->gemm(tr[0], tr[1], m, n, k, 1.0f, ct_data(ops[0]), ld[0], bs[0],
                                        ct_data(ops[1]), ld[1], bs[1], 0.0f, ct_data(out), n, m * n,
                                        batch);
    }
    if (ct__needs_grad(ctx, 2, ins) && !ct__record(src, &matmul_def, 2, ins, 1, &out)) return NULL;
    return out;
}
