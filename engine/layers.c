/* engine/layers.c — Linear, Embedding, Dropout, LayerNorm, activations and Sequential as
 * modules, and the fused layer_norm op (its CPU kernels are in engine/cpu/layernorm.c). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/internal.h"
#include "engine/kernels_nn.h"
#include "engine/layers.h"

/* ==== the layer_norm op ====================================================================== */
/* The layer_norm kernels of a device's backend table; NULL where it has none. */
static const struct ct_kernels_layernorm *ln_kernels(ct_device dev) {
    const ct_backend *be = ct__backend(dev);
    return be ? be->layernorm : NULL;
}

/* in: xc (contiguous), weight, bias (either may be NULL); saved: mean, rstd;
 * iv: rows, D. */
static ct_status layer_norm_bw(ct_node *n, ct_tensor *const *g, ct_tensor **gin) {
    ct_ctx *ctx = n->ctx;
    ct_tensor *x = n->in[0], *w = n->in[1];
    ct_device dev = x->storage->device;
    const struct ct_kernels_layernorm *k = ln_kernels(dev);
    if (!k) {
        char d[16];
        return ct_fail(ctx, CT_E_DEVICE, "backward of 'layer_norm' (created at %s:%d): no kernel "
                       "for device %s yet", n->src.file, n->src.line,
                       ct_device_str(dev, d, sizeof d));
    }
    int64_t rows = n->iv[0], D = n->iv[1];
    bool nx = ct__input_needs_grad(n, 0), nw = ct__input_needs_grad(n, 1),
         nb = ct__input_needs_grad(n, 2);
    ct_tensor *gc = ct_contiguous_at(n->src, g[0]);
    if (!gc) return ct_ctx_status(ctx);
    ct_tensor *gx = nx ? ct__new(ctx, CT_F32, dev, x->ndim, x->shape) : NULL;
    ct_tensor *gw = nw ? ct__new(ctx, CT_F32, dev, 1, &D) : NULL;
    ct_tensor *gb = nb ? ct__new(ctx, CT_F32, dev, 1, &D) : NULL;
    int64_t nwork = 4 * D;
    ct_tensor *work = nw || nb ? ct__new(ctx, CT_F32, dev, 1, &nwork) : NULL;
    if ((nx && !gx) || (nw && !gw) || (nb && !gb) || ((nw || nb) && !work))
        return ct_ctx_status(ctx);
    k->backward(gx, gw, gb, work, gc, x, n->saved[0], n->saved[1], w, rows, D);
    gin[0] = gx;
    gin[1] = gw;
    gin[2] = gb;
    return CT_OK;
}
static const ct_op_def layer_norm_def = {"layer_norm", layer_norm_bw, false};

ct_tensor *ct_layer_norm_at(ct_src src, ct_tensor *x, ct_tensor *weight, ct_tensor *bias,
                            float eps) {
    const char *op = "layer_norm";
    if (!x) return NULL;
    ct_ctx *ctx = x->ctx;
    ct_tensor *all[3] = {x, weight, bias};
    int na = 0;
    for (int i = 0; i < 3; i++)
        if (all[i]) all[na++] = all[i];
    if (!ct__check_same(src, op, na, all, true)) return NULL;
    char s1[96], s2[96];
    ct_shape_str(x, s1, sizeof s1);
    if (x->ndim < 1)
        return ct__op_error(ctx, src, op, CT_E_SHAPE,
                            "input %s is 0-d; it needs a last dim to normalise over", s1);
    int64_t D = x->shape[x->ndim - 1];
    const char *names[2] = {"weight", "bias"};
    ct_tensor *aff[2] = {weight, bias};
    for (int i = 0; i < 2; i++) {
        if (aff[i] && (aff[i]->ndim != 1 || aff[i]->shape[0] != D))
            return ct__op_error(ctx, src, op, CT_E_SHAPE,
                                "%s %s does not fit input %s: expected [%lld], the size of the "
                                "last dim", names[i], ct_shape_str(aff[i], s2, sizeof s2), s1,
                                (long long)D);
    }
    if (!(eps >= 0.0f) || !isfinite(eps))
        return ct__op_error(ctx, src, op, CT_E_ARG, "eps = %g; expected a finite eps >= 0",
                            (double)eps);
    ct_device dev = x->storage->device;
    const struct ct_kernels_layernorm *k = ln_kernels(dev);
    if (!k) {
        char d[16];
        return ct__op_error(ctx, src, op, CT_E_DEVICE, "no kernel for device %s yet",
                            ct_device_str(dev, d, sizeof d));
    }
    ct_tensor *xc = ct_contiguous_at(src, x);
    ct_tensor *wc = weight ? ct_contiguous_at(src, weight) : NULL;
    ct_tensor *bc = bias ? ct_contiguous_at(src, bias) : NULL;
    if (!xc || (weight && !wc) || (bias && !bc)) return NULL;
    int64_t rows = ct__prod(x->ndim - 1, x->shape);
    ct_tensor *y = ct__new(ctx, CT_F32, dev, x->ndim, x->shape);
    ct_tensor *mean = y ? ct__new(ctx, CT_F32, dev, 1, &rows) : NULL;
    ct_tensor *rstd = mean ? ct__new(ctx, CT_F32, dev, 1, &rows) : NULL;
    if (!rstd) return NULL;
    k->forward(y, mean, rstd, xc, wc, bc, rows, D, eps);
    ct_tensor *ins[3] = {xc, wc, bc};
    if (ct__needs_grad(ctx, 3, ins)) {
        ct_node *nd = ct__record(src, &layer_norm_def, 3, ins, 1, &y);
        if (!nd) return NULL;
        nd->iv[0] = rows;
        nd->iv[1] = D;
        nd->sc[0] = eps;
        ct__save(nd, mean);
        ct__save(nd, rstd);
    }
    return y;
}

/* ==== helpers ================================================================================= */
static ct_tensor *fwd_linear(ct_src src, ct_module *m, ct_tensor *x, ct_rng *rng);
static ct_tensor *fwd_embedding(ct_src src, ct_module *m, ct_tensor *x, ct_rng *rng);
static ct_tensor *fwd_dropout(ct_src src, ct_module *m, ct_tensor *x, ct_rng *rng);
static ct_tensor *fwd_layernorm(ct_src src, ct_module *m, ct_tensor *x, ct_rng *rng);
static ct_tensor *fwd_activation(ct_src src, ct_module *m, ct_tensor *x, ct_rng *rng);
static ct_tensor *fwd_sequential(ct_src src, ct_module *m, ct_tensor *x, ct_rng *rng);
static ct_tensor *activation_at(ct_src src, ct_module *m, ct_tensor *x);

/* Checks that m is a module of this kind (by its forward); records an error if not. */
static bool is_kind(ct_src src, const char *op, ct_module *m, ct_forward_fn fwd,
                    const char *kind) {
    if (m->forward == fwd) return true;
    ct__op_error(m->ctx, src, op, CT_E_ARG, "the module%s%s%s is a %s; expected kind %s",
                 *m->name ? " '" : "", m->name, *m->name ? "'" : "", m->kind, kind);
    return false;
}

/* p = U(-bound, bound) drawn from rng in element order. */
static bool init_uniform(ct_tensor *p, ct_rng *rng, float bound) {
    ct_ctx *ctx = p->ctx;
    ct_scope_begin(ctx);
    ct_tensor *r = ct_uniform(ctx, rng, -bound, bound, p->ndim, p->shape);
    bool ok = r && ct_inplace_copy(p, r) == CT_OK;
    ct_scope_end(ctx);
    return ok;
}

static ct_module *fail_module(ct_module *m) {
    ct_module_free(m);
    return NULL;
}

/* ==== Linear ================================================================================== */
typedef struct linear_impl { int64_t in, out; ct_tensor *weight, *bias; } linear_impl;

/* ct_module_clone hooks: an impl that points at its module's own parameters must point at the
 * clone's (the parameters are found by their local names). */
static ct_status repoint(ct_module *dst, ct_tensor **slot, const char *name) {
    if (!*slot) return CT_OK;   /* an optional parameter the source does not have */
    *slot = ct_module_param(dst, name);   /* a leaf module: its own parameter names */
    return *slot ? CT_OK : ct_fail(dst->ctx, CT_E_STATE, "module_clone(%s): the copy has no parameter '%s'",
                                   dst->kind, name);
}

static ct_status clone_linear(ct_module *dst, const ct_module *src) {
    (void)src;
    linear_impl *L = dst->impl;
    ct_status s = repoint(dst, &L->weight, "weight");
    return s ? s : repoint(dst, &L->bias, "bias");
}

ct_module *ct_linear_new(ct_ctx *ctx, ct_rng *rng, int64_t in, int64_t out, bool bias) {
    if (!ctx) return NULL;
    if (in < 0 || out < 0) {
        ct_fail(ctx, CT_E_ARG, "linear_new: in_features = %lld and out_features = %lld must "
                "not be negative", (long long)in, (long long)out);
        return NULL;
    }
    if (!rng) {
        ct_fail(ctx, CT_E_ARG, "linear_new: the generator is NULL (its weights are drawn from "
                "it; seed one with ct_rng_seed)");
        return NULL;
    }
    ct_module *m = ct_module_new(ctx, "Linear", sizeof(linear_impl));
    if (!m) return NULL;
    linear_impl *L = m->impl;
    L->in = in;
    L->out = out;
    m->forward = fwd_linear;
    m->clone_impl = clone_linear;
    L->weight = ct_module_add_param(m, "weight", CT_SHAPE(out, in));
    if (!L->weight) return fail_module(m);
    if (bias && !(L->bias = ct_module_add_param(m, "bias", CT_SHAPE(out)))) return fail_module(m);
    /* kaiming_uniform(a = sqrt(5)): gain sqrt(2 / (1 + 5)), bound = gain * sqrt(3 / in) */
    float bound = in > 0 ? (float)(1.0 / sqrt((double)in)) : 0.0f;
    if (!init_uniform(L->weight, rng, bound)) return fail_module(m);
    if (L->bias && !init_uniform(L->bias, rng, bound)) return fail_module(m);
    return m;
}

ct_tensor *ct_linear_forward_at(ct_src src, ct_module *m, ct_tensor *x) {
    const char *op = "linear";
    if (!m || !x) return NULL;
    if (!is_kind(src, op, m, fwd_linear, "Linear")) return NULL;
    linear_impl *L = m->impl;
    ct_ctx *ctx = m->ctx;
    ct_tensor *ops[2] = {x, L->weight};
    if (!ct__check_same(src, op, 2, ops, true)) return NULL;
    char s1[96], s2[96];
    if (x->ndim < 1 || x->shape[x->ndim - 1] != L->in)
        return ct__op_error(ctx, src, op, CT_E_SHAPE,
                            "input %s: expected [..., %lld] (in_features = %lld of weight %s)",
                            ct_shape_str(x, s1, sizeof s1), (long long)L->in, (long long)L->in,
                            ct_shape_str(L->weight, s2, sizeof s2));
    ct_tensor *wt = ct_transpose_at(src, L->weight, 0, 1);     /* a view: BLAS's trans flag */
    ct_tensor *y;
    if (x->ndim == 2) {
        y = ct_matmul_at(src, x, wt);
    } else if (x->ndim == 1) {
        y = ct_squeeze_at(src, ct_matmul_at(src, ct_unsqueeze_at(src, x, 0), wt), 0);
    } else if (ct_is_contiguous(x)) {
        /* [..., in] -> [rows, in]: one GEMM */
        int64_t s2d[2] = {ct__prod(x->ndim - 1, x->shape), L->in}, os[CT_MAX_DIMS];
        memcpy(os, x->shape, sizeof(int64_t) * (size_t)x->ndim);
        os[x->ndim - 1] = L->out;
        y = ct_view_at(src, ct_matmul_at(src, ct_view_at(src, x, 2, s2d), wt), x->ndim, os);
    } else {
        y = ct_matmul_at(src, x, wt);      /* batched; the weight is broadcast over the batch */
    }
    if (L->bias) y = ct_add_at(src, y, L->bias);
    return y;
}

static ct_tensor *fwd_linear(ct_src src, ct_module *m, ct_tensor *x, ct_rng *rng) {
    (void)rng;
    return ct_linear_forward_at(src, m, x);
}

/* ==== Embedding =============================================================================== */
typedef struct embedding_impl { int64_t num, dim, padding_idx; ct_tensor *weight; } embedding_impl;

static ct_status clone_embedding(ct_module *dst, const ct_module *src) {
    (void)src;
    return repoint(dst, &((embedding_impl *)dst->impl)->weight, "weight");
}

/* embedding whose backward leaves the padding row's gradient at zero.
 * in: weight, contiguous indices; iv: M, V, D, padding_idx. */
static ct_status embedding_pad_bw(ct_node *n, ct_tensor *const *g, ct_tensor **gin) {
    if (!ct__input_needs_grad(n, 0)) return CT_OK;
    ct_ctx *ctx = n->ctx;
    ct_tensor *w = n->in[0], *idx = n->in[1];
    const struct ct_kernels_nn *k = w->storage->backend->nn;
    if (!k || !k->embedding_grad) {
        char d[16];
        return ct_fail(ctx, CT_E_UNSUPPORTED, "backward of 'embedding' (created at %s:%d): not "
                       "implemented on device %s", n->src.file, n->src.line,
                       ct_device_str(w->storage->device, d, sizeof d));
    }
    int64_t M = n->iv[0], V = n->iv[1], D = n->iv[2], pad = n->iv[3];
    ct_tensor *gc = ct_contiguous_at(n->src, g[0]);
    ct_tensor *gw = gc ? ct__new(ctx, CT_F32, w->storage->device, 2, w->shape) : NULL;
    if (!gw) return ct_ctx_status(ctx);
    k->embedding_grad(gw, gc, idx, M, V, D);
    int64_t one = 1;
    ct_tensor *row = ct__view(gw, 1, &D, &one, pad * D);
    if (!row) return ct_ctx_status(ctx);
    row->storage->backend->fill(row, 0.0);
    gin[0] = gw;
    return CT_OK;
}
static const ct_op_def embedding_pad_def = {"embedding", embedding_pad_bw, false};

static ct_tensor *embedding_padded(ct_src src, ct_tensor *w, ct_tensor *idx, int64_t pad) {
    if (pad < 0) return ct_embedding_at(src, w, idx);
    ct_ctx *ctx = w->ctx;
    ct_tensor *ic = ct_contiguous_at(src, idx);
    if (!ic) return NULL;
    bool was = ct_set_grad_enabled(ctx, false);
    ct_tensor *out = ct_embedding_at(src, w, ic);         /* checks the indices */
    ct_set_grad_enabled(ctx, was);
    if (!out) return NULL;
    ct_tensor *ins[2] = {w, ic};
    if (ct__needs_grad(ctx, 2, ins)) {
        ct_node *nd = ct__record(src, &embedding_pad_def, 2, ins, 1, &out);
        if (!nd) return NULL;
        nd->iv[0] = ct_numel(ic);
        nd->iv[1] = w->shape[0];
        nd->iv[2] = w->shape[1];
        nd->iv[3] = pad;
    }
    return out;
}

ct_module *ct_embedding_module_new_ex(ct_ctx *ctx, ct_rng *rng, int64_t num, int64_t dim,
                                      int64_t padding_idx) {
    if (!ctx) return NULL;
    if (num < 0 || dim < 0) {
        ct_fail(ctx, CT_E_ARG, "embedding_new: num = %lld and dim = %lld must not be negative",
                (long long)num, (long long)dim);
        return NULL;
    }
    if (padding_idx != CT_NO_PADDING && (padding_idx < 0 || padding_idx >= num)) {
        ct_fail(ctx, CT_E_ARG, "embedding_new: padding_idx = %lld is outside [0, %lld) (use -1 "
                "for none; PyTorch's negative padding_idx -k is num - k here)",
                (long long)padding_idx, (long long)num);
        return NULL;
    }
    if (!rng) {
        ct_fail(ctx, CT_E_ARG, "embedding_new: the generator is NULL (its weights are drawn "
                "from it; seed one with ct_rng_seed)");
        return NULL;
    }
    ct_module *m = ct_module_new(ctx, "Embedding", sizeof(embedding_impl));
    if (!m) return NULL;
    embedding_impl *E = m->impl;
    E->num = num;
    E->dim = dim;
    E->padding_idx = padding_idx;
    m->forward = fwd_embedding;
    m->clone_impl = clone_embedding;
    E->weight = ct_module_add_param(m, "weight", CT_SHAPE(num, dim));
    if (!E->weight) return fail_module(m);
    ct_scope_begin(ctx);
    ct_tensor *r = ct_randn(ctx, rng, CT_SHAPE(num, dim));
    bool ok = r != NULL;
    if (ok && padding_idx >= 0) ok = ct_inplace_fill(ct_select(r, 0, padding_idx), 0.0f) == CT_OK;
    ok = ok && ct_inplace_copy(E->weight, r) == CT_OK;
    ct_scope_end(ctx);
    return ok ? m : fail_module(m);
}

ct_module *ct_embedding_module_new(ct_ctx *ctx, ct_rng *rng, int64_t num, int64_t dim) {
    return ct_embedding_module_new_ex(ctx, rng, num, dim, CT_NO_PADDING);
}

ct_tensor *ct_embedding_module_forward_at(ct_src src, ct_module *m, ct_tensor *indices) {
    if (!m || !indices) return NULL;
    if (!is_kind(src, "embedding", m, fwd_embedding, "Embedding")) return NULL;
    embedding_impl *E = m->impl;
    return embedding_padded(src, E->weight, indices, E->padding_idx);
}

static ct_tensor *fwd_embedding(ct_src src, ct_module *m, ct_tensor *x, ct_rng *rng) {
    (void)rng;
    return ct_embedding_module_forward_at(src, m, x);
}

/* ==== Dropout ================================================================================= */
typedef struct dropout_impl { float p; } dropout_impl;

ct_module *ct_dropout_module_new(ct_ctx *ctx, float p) {
    if (!ctx) return NULL;
    if (!(p >= 0.0f && p < 1.0f)) {
        ct_fail(ctx, CT_E_ARG, "dropout_new: p = %g is outside [0, 1)", (double)p);
        return NULL;
    }
    ct_module *m = ct_module_new(ctx, "Dropout", sizeof(dropout_impl));
    if (!m) return NULL;
    ((dropout_impl *)m->impl)->p = p;
    m->forward = fwd_dropout;
    return m;
}

ct_tensor *ct_dropout_module_forward_at(ct_src src, ct_module *m, ct_tensor *x, ct_rng *rng) {
    if (!m || !x) return NULL;
    if (!is_kind(src, "dropout", m, fwd_dropout, "Dropout")) return NULL;
    return ct_dropout_at(src, x, ((dropout_impl *)m->impl)->p, m->training, rng);
}

static ct_tensor *fwd_dropout(ct_src src, ct_module *m, ct_tensor *x, ct_rng *rng) {
    return ct_dropout_module_forward_at(src, m, x, rng);
}

/* ==== LayerNorm =============================================================================== */
typedef struct layernorm_impl { int64_t dim; float eps; ct_tensor *weight, *bias; } layernorm_impl;

static ct_status clone_layernorm(ct_module *dst, const ct_module *src) {
    (void)src;
    layernorm_impl *N = dst->impl;
    ct_status s = repoint(dst, &N->weight, "weight");
    return s ? s : repoint(dst, &N->bias, "bias");
}

ct_module *ct_layernorm_new(ct_ctx *ctx, int64_t dim, float eps, bool affine) {
    if (!ctx) return NULL;
    if (dim < 0 || !(eps >= 0.0f) || !isfinite(eps)) {
        ct_fail(ctx, CT_E_ARG, "layernorm_new: dim = %lld must not be negative and eps = %g must "
                "be finite and >= 0", (long long)dim, (double)eps);
        return NULL;
    }
    ct_module *m = ct_module_new(ctx, "LayerNorm", sizeof(layernorm_impl));
    if (!m) return NULL;
    layernorm_impl *N = m->impl;
    N->dim = dim;
    N->eps = eps;
    m->forward = fwd_layernorm;
    m->clone_impl = clone_layernorm;
    if (affine) {
        N->weight = ct_module_add_param(m, "weight", CT_SHAPE(dim));
        N->bias = N->weight ? ct_module_add_param(m, "bias", CT_SHAPE(dim)) : NULL;
        if (!N->bias || ct_inplace_fill(N->weight, 1.0f) != CT_OK) return fail_module(m);
    }
    return m;
}

ct_tensor *ct_layernorm_forward_at(ct_src src, ct_module *m, ct_tensor *x) {
    const char *op = "layer_norm";
    if (!m || !x) return NULL;
    if (!is_kind(src, op, m, fwd_layernorm, "LayerNorm")) return NULL;
    layernorm_impl *N = m->impl;
    if (x->ndim < 1 || x->shape[x->ndim - 1] != N->dim) {
        char s[96];
        return ct__op_error(m->ctx, src, op, CT_E_SHAPE,
                            "input %s: expected [..., %lld] (the LayerNorm's normalized size)",
                            ct_shape_str(x, s, sizeof s), (long long)N->dim);
    }
    return ct_layer_norm_at(src, x, N->weight, N->bias, N->eps);
}

static ct_tensor *fwd_layernorm(ct_src src, ct_module *m, ct_tensor *x, ct_rng *rng) {
    (void)rng;
    return ct_layernorm_forward_at(src, m, x);
}

/* ==== activations ============================================================================= */
typedef enum act_kind { ACT_RELU, ACT_TANH, ACT_SIGMOID } act_kind;
typedef struct activation_impl { act_kind kind; } activation_impl;

ct_module *ct_activation_new(ct_ctx *ctx, const char *name) {
    if (!ctx) return NULL;
    static const struct { const char *name, *kind; } acts[] = {
        {"relu", "ReLU"}, {"tanh", "Tanh"}, {"sigmoid", "Sigmoid"}};
    for (int i = 0; name && i < 3; i++) {
        if (strcmp(name, acts[i].name) != 0) continue;
        ct_module *m = ct_module_new(ctx, acts[i].kind, sizeof(activation_impl));
        if (!m) return NULL;
        ((activation_impl *)m->impl)->kind = (act_kind)i;
        m->forward = fwd_activation;
        return m;
    }
    ct_fail(ctx, CT_E_ARG, "activation_new: unknown activation '%s' (known: relu, tanh, sigmoid)",
            name ? name : "(null)");
    return NULL;
}

static ct_tensor *activation_at(ct_src src, ct_module *m, ct_tensor *x) {
    switch (((activation_impl *)m->impl)->kind) {
    case ACT_RELU: return ct_relu_at(src, x);
    case ACT_TANH: return ct_tanh_at(src, x);
    default: return ct_sigmoid_at(src, x);
    }
}

static ct_tensor *fwd_activation(ct_src src, ct_module *m, ct_tensor *x, ct_rng *rng) {
    (void)rng;
    return activation_at(src, m, x);
}

/* ==== Sequential ============================================================================== */
ct_module *ct_sequential_new(ct_ctx *ctx) {
    if (!ctx) return NULL;
    ct_module *m = ct_module_new(ctx, "Sequential", 0);
    if (m) m->forward = fwd_sequential;
    return m;
}

ct_status ct_sequential_append(ct_module *seq, ct_module *child) {
    if (!seq || !child) return CT_E_NULL;
    if (seq->forward != fwd_sequential)
        return ct_fail(seq->ctx, CT_E_ARG, "sequential_append: the module%s%s%s is a %s; expected "
                       "kind Sequential", *seq->name ? " '" : "", seq->name, *seq->name ? "'" : "",
                       seq->kind);
    if (!child->forward)
        return ct_fail(seq->ctx, CT_E_ARG, "sequential_append: the %s module has no "
                       "single-input forward, so it cannot sit in a Sequential", child->kind);
    char name[24];
    snprintf(name, sizeof name, "%d", seq->n_children);
    return ct_module_add_child(seq, name, child);
}

ct_tensor *ct_sequential_forward_at(ct_src src, ct_module *m, ct_tensor *x, ct_rng *rng) {
    if (!m || !x) return NULL;
    if (!is_kind(src, "sequential", m, fwd_sequential, "Sequential")) return NULL;
    if (m->n_children == 0) return ct__scope_ref(x);      /* as nn.Sequential(): the input */
    for (int i = 0; i < m->n_children && x; i++) x = ct_module_forward_at(src, m->children[i], x, rng);
    return x;
}

static ct_tensor *fwd_sequential(ct_src src, ct_module *m, ct_tensor *x, ct_rng *rng) {
    return ct_sequential_forward_at(src, m, x, rng);
}
