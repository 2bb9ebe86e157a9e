/* engine/ops_elementwise.c — broadcasting binary ops, scalar and unary ops, in-place updates. */
#include <math.h>

#include "engine/internal.h"

/* ---- binary ------------------------------------------------------------------------------ */
static ct_status add_bw(ct_node *n, ct_tensor *const *g, ct_tensor **gin) {
    gin[0] = g[0];
    gin[1] = g[0];
    return CT_OK;
}
static ct_status sub_bw(ct_node *n, ct_tensor *const *g, ct_tensor **gin) {
    gin[0] = g[0];
    if (ct__input_needs_grad(n, 1)) gin[1] = ct_neg_at(n->src, g[0]);
    return CT_OK;
}
static ct_status mul_bw(ct_node *n, ct_tensor *const *g, ct_tensor **gin) {
    if (ct__input_needs_grad(n, 0)) gin[0] = ct_mul_at(n->src, g[0], n->in[1]);
    if (ct__input_needs_grad(n, 1)) gin[1] = ct_mul_at(n->src, g[0], n->in[0]);
    return CT_OK;
}
static ct_status div_bw(ct_node *n, ct_tensor *const *g, ct_tensor **gin) {
    ct_tensor *a = n->in[0], *b = n->in[1];
    if (ct__input_needs_grad(n, 0)) gin[0] = ct_div_at(n->src, g[0], b);
    if (ct__input_needs_grad(n, 1))   /* -g * a / b^2 = -g * y / b */
        gin[1] = ct_neg_at(n->src, ct_div_at(n->src, ct_mul_at(n->src, g[0], n->saved[0]), b));
    (void)a;
    return CT_OK;
}
static ct_status pow_bw(ct_node *n, ct_tensor *const *g, ct_tensor **gin) {
    ct_tensor *a = n->in[0], *b = n->in[1], *y = n->saved[0];
    if (ct__input_needs_grad(n, 0))   /* g * b * a^(b-1) */
        gin[0] = ct_mul_at(n->src, g[0],
                           ct_mul_at(n->src, b, ct_pow_at(n->src, a, ct_add_scalar_at(n->src, b, -1.0f))));
    if (ct__input_needs_grad(n, 1))   /* g * y * log(a) */
        gin[1] = ct_mul_at(n->src, g[0], ct_mul_at(n->src, y, ct_log_at(n->src, a)));
    return CT_OK;
}

static const ct_op_def add_def = {"add", add_bw, true};
static const ct_op_def sub_def = {"sub", sub_bw, true};
static const ct_op_def mul_def = {"mul", mul_bw, true};
static const ct_op_def div_def = {"div", div_bw, true};
static const ct_op_def pow_def = {"pow", pow_bw, true};

static const struct { const ct_op_def *def; bool save_out; } bin_ops[CT_BIN_COUNT] = {
    [CT_BIN_ADD] = {&add_def, false}, [CT_BIN_SUB] = {&sub_def, false},
    [CT_BIN_MUL] = {&mul_def, false}, [CT_BIN_DIV] = {&div_def, true},
    [CT_BIN_POW] = {&pow_def, true},
};

static ct_tensor *binary(ct_src src, ct_binop op, ct_tensor *a, ct_tensor *b) {
    ct_tensor *ins[2] = {a, b};
    ct_ctx *ctx = ct__ctx_of(2, ins);
    if (!ctx) return NULL;
    const char *name = bin_ops[op].def->name;
    if (!ct__check_same(src, name, 2, ins, true)) return NULL;
    int nd;
    int64_t shape[CT_MAX_DIMS];
    if (!ct__broadcast_shape(src, name, a, b, &nd, shape)) return NULL;
    ct_tensor *out = ct__new(ctx, CT_F32, a->storage->device, nd, shape);
    if (!out) return NULL;
    ct_tensor *ea = ct_same_shape(a, out) ? a : ct__broadcast_to(src, name, a, nd, shape);
    ct_tensor *eb = ct_same_shape(b, out) ? b : ct__broadcast_to(src, name, b, nd, shape);
    if (!ea || !eb) return NULL;
    out->storage->backend->binary(op, out, ea, eb);
    if (ct__needs_grad(ctx, 2, ins)) {
        ct_node *nd_ = ct__record(src, bin_ops[op].def, 2, ins, 1, &out);
        if (!nd_) return NULL;
        if (bin_ops[op].save_out) ct__save(nd_, out);
    }
    return out;
}

ct_tensor *ct_add_at(ct_src src, ct_tensor *a, ct_tensor *b) { return binary(src, CT_BIN_ADD, a, b); }
ct_tensor *ct_sub_at(ct_src src, ct_tensor *a, ct_tensor *b) { return binary(src, CT_BIN_SUB, a, b); }
ct_tensor *ct_mul_at(ct_src src, ct_tensor *a, ct_tensor *b) { return binary(src, CT_BIN_MUL, a, b); }
ct_tensor *ct_div_at(ct_src src, ct_tensor *a, ct_tensor *b) { return binary(src, CT_BIN_DIV, a, b); }
ct_tensor *ct_pow_at(ct_src src, ct_tensor *a, ct_tensor *b) { return binary(src, CT_BIN_POW, a, b); }

/* ---- unary and scalar ops ---------------------------------------------------------------- */
static ct_status unary_bw(ct_node *n, ct_tensor *const *g, ct_tensor **gin) {
    ct_tensor *a = n->in[0], *y = n->saved[0];
    ct_tensor *gi = ct__new(n->ctx, CT_F32, a->storage->device, a->ndim, a->shape);
    if (!gi) return ct_ctx_status(n->ctx);
    a->storage->backend->unary_grad((ct_unop)n->iv[0], gi, g[0], a, y, (float)n->sc[0],
                                    (float)n->sc[1]);
    gin[0] = gi;
    return CT_OK;
}

static const ct_op_def un_defs[CT_UN_COUNT] = {
    [CT_UN_NEG] = {"neg", unary_bw, false},
    [CT_UN_EXP] = {"exp", unary_bw, false},
    [CT_UN_LOG] = {"log", unary_bw, false},
    [CT_UN_SQRT] = {"sqrt", unary_bw, false},
    [CT_UN_TANH] = {"tanh", unary_bw, false},
    [CT_UN_SIGMOID] = {"sigmoid", unary_bw, false},
    [CT_UN_RELU] = {"relu", unary_bw, false},
    [CT_UN_CLAMP] = {"clamp", unary_bw, false},
    [CT_UN_ADD_SCALAR] = {"add_scalar", unary_bw, false},
    [CT_UN_MUL_SCALAR] = {"mul_scalar", unary_bw, false},
    [CT_UN_POW_SCALAR] = {"pow_scalar", unary_bw, false},
    [CT_UN_RSUB_SCALAR] = {"rsub_scalar", unary_bw, false},
};

static ct_tensor *unary(ct_src src, ct_unop op, ct_tensor *a, float p0, float p1) {
    if (!a) return NULL;
    const ct_op_def *def = &un_defs[op];
    if (!ct__check_same(src, def->name, 1, &a, true)) return NULL;
    ct_tensor *out = ct__new(a->ctx, CT_F32, a->storage->device, a->ndim, a->shape);
    if (!out) return NULL;
    out->storage->backend->unary(op, out, a, p0, p1);
    if (ct__needs_grad(a->ctx, 1, &a)) {
        ct_node *n = ct__record(src, def, 1, &a, 1, &out);
        if (!n) return NULL;
        n->iv[0] = op;
        n->sc[0] = p0;
        n->sc[1] = p1;
        ct__save(n, out);
    }
    return out;
}

ct_tensor *ct_neg_at(ct_src s, ct_tensor *a) { return unary(s, CT_UN_NEG, a, 0, 0); }
ct_tensor *ct_exp_at(ct_src s, ct_tensor *a) { return unary(s, CT_UN_EXP, a, 0, 0); }
ct_tensor *ct_log_at(ct_src s, ct_tensor *a) { return unary(s, CT_UN_LOG, a, 0, 0); }
ct_tensor *ct_sqrt_at(ct_src s, ct_tensor *a) { return unary(s, CT_UN_SQRT, a, 0, 0); }
ct_tensor *ct_tanh_at(ct_src s, ct_tensor *a) { return unary(s, CT_UN_TANH, a, 0, 0); }
ct_tensor *ct_sigmoid_at(ct_src s, ct_tensor *a) { return unary(s, CT_UN_SIGMOID, a, 0, 0); }
ct_tensor *ct_relu_at(ct_src s, ct_tensor *a) { return unary(s, CT_UN_RELU, a, 0, 0); }
ct_tensor *ct_clamp_at(ct_src s, ct_tensor *a, float lo, float hi) {
    if (a && lo > hi)
        return ct__op_error(a->ctx, s, "clamp", CT_E_ARG, "lo %g is greater than hi %g", lo, hi);
    return unary(s, CT_UN_CLAMP, a, lo, hi);
}
ct_tensor *ct_add_scalar_at(ct_src s, ct_tensor *a, float v) { return unary(s, CT_UN_ADD_SCALAR, a, v, 0); }
ct_tensor *ct_mul_scalar_at(ct_src s, ct_tensor *a, float v) { return unary(s, CT_UN_MUL_SCALAR, a, v, 0); }
ct_tensor *ct_pow_scalar_at(ct_src s, ct_tensor *a, float v) { return unary(s, CT_UN_POW_SCALAR, a, v, 0); }
ct_tensor *ct_rsub_scalar_at(ct_src s, float v, ct_tensor *a) { return unary(s, CT_UN_RSUB_SCALAR, a, v, 0); }

/* ---- in-place updates (no graph) -------------------------------------------------------- */
static ct_status inplace_check(ct_src src, const char *op, ct_tensor *t, const ct_tensor *x) {
    if (!t) return CT_E_NULL;
    if (t->grad_fn)
        return ct_fail(t->ctx, CT_E_STATE,
                       "%s: the tensor was made by '%s' (at %s:%d) and is part of a graph; "
                       "in-place updates are for leaves (parameters, buffers) (at %s:%d)", op,
                       t->grad_fn->def->name, t->grad_fn->src.file, t->grad_fn->src.line, src.file, src.line);
    if (t->dtype != CT_F32)
        return ct_fail(t->ctx, CT_E_DTYPE, "%s: the tensor is %s; expected float32 (at %s:%d)", op,
                       ct_dtype_name(t->dtype), src.file, src.line);
    if (x) {
        char s1[96], s2[96];
        if (!ct_device_eq(t->storage->device, x->storage->device))
            return ct_fail(t->ctx, CT_E_DEVICE, "%s: the tensor is on %s but the source is on %s; move one with "
                           "ct_to() (at %s:%d)", op, ct_device_str(t->storage->device, s1, sizeof s1),
                           ct_device_str(x->storage->device, s2, sizeof s2), src.file, src.line);
        if (x->dtype != CT_F32)
            return ct_fail(t->ctx, CT_E_DTYPE, "%s: the source is %s; expected float32 (at %s:%d)", op,
                           ct_dtype_name(x->dtype), src.file, src.line);
        if (!ct_same_shape(t, x))
            return ct_fail(t->ctx, CT_E_SHAPE, "%s: shapes %s and %s differ (at %s:%d)", op,
                           ct_shape_str(t, s1, sizeof s1), ct_shape_str(x, s2, sizeof s2), src.file, src.line);
    }
    return CT_OK;
}

ct_status ct_inplace_fill_at(ct_src src, ct_tensor *t, float value) {
    ct_status st = inplace_check(src, "inplace_fill", t, NULL);
    if (st) return st;
    t->storage->backend->fill(t, value);
    ct__bump_version(t);
    return CT_OK;
}

ct_status ct_inplace_copy_at(ct_src src, ct_tensor *t, const ct_tensor *x) {
    if (!x) return CT_E_NULL;
    ct_status st = inplace_check(src, "inplace_copy", t, x);
    if (st) return st;
    t->storage->backend->copy(t, x);
    ct__bump_version(t);
    return CT_OK;
}

static ct_status inplace_unary(ct_src src, const char *name, ct_tensor *t, ct_unop op, float p0, float p1) {
    ct_status st = inplace_check(src, name, t, NULL);
    if (st) return st;
    t->storage->backend->unary(op, t, t, p0, p1);
    ct__bump_version(t);
    return CT_OK;
}
ct_status ct_inplace_scale_at(ct_src src, ct_tensor *t, float s) {
    return inplace_unary(src, "inplace_scale", t, CT_UN_MUL_SCALAR, s, 0);
}
ct_status ct_inplace_add_scalar_at(ct_src src, ct_tensor *t, float s) {
    return inplace_unary(src, "inplace_add_scalar", t, CT_UN_ADD_SCALAR, s, 0);
}
ct_status ct_inplace_clamp_at(ct_src src, ct_tensor *t, float lo, float hi) {
    return inplace_unary(src, "inplace_clamp", t, CT_UN_CLAMP, lo, hi);
}

ct_status ct_inplace_axpy_at(ct_src src, ct_tensor *t, float alpha, const ct_tensor *x) {
    if (!x) return CT_E_NULL;
    ct_status st = inplace_check(src, "inplace_axpy", t, x);
    if (st) return st;
    t->storage->backend->axpy(t, alpha, x);
    ct__bump_version(t);
    return CT_OK;
}
