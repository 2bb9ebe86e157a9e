/* tests/engine/test_layers.c — Linear, Embedding, Dropout, LayerNorm (and the fused
 * layer_norm op), activations and Sequential: shapes, parameter names, initialisation,
 * finite-difference gradients, errors, and PyTorch parity (tests/gen_golden_layers.py writes
 * tests/fixtures/layers/CASE.npz). */
#include <math.h>
#include <stdlib.h>

#include "engine/layers.h"
#include "engine/npy.h"
#include "testutil.h"

/* ---- helpers ----------------------------------------------------------------------------- */
static void assert_shape(const ct_tensor *t, int ndim, const int64_t *shape) {
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->ndim, ndim);
    for (int i = 0; i < ndim; i++) ck_assert_int_eq(t->shape[i], shape[i]);
}
#define ASSERT_SHAPE(t, ...) assert_shape(t, CT_SHAPE(__VA_ARGS__))

/* The module's parameters are exactly `names` (in order), with these total elements. */
static void assert_params(const ct_module *m, int n, const char *const *names, int64_t total) {
    ck_assert_int_eq(ct_module_param_count(m), n);
    char name[128];
    for (int i = 0; i < n; i++) {
        ck_assert_ptr_nonnull(ct_module_param_at(m, i, name, sizeof name));
        ck_assert_str_eq(name, names[i]);
        ck_assert(ct_requires_grad(ct_module_param(m, names[i])));
    }
    ck_assert_int_eq(ct_module_num_params(m), total);
}

/* The error's text contains every one of the n strings. */
static void assert_error(const tu_errors *errs, ct_status want, int n, const char *const *parts) {
    ck_assert_int_eq(errs->last.status, want);
    for (int i = 0; i < n; i++)
        ck_assert_msg(strstr(errs->last.msg, parts[i]) != NULL, "error '%s' lacks '%s'",
                      errs->last.msg, parts[i]);
}
#define ASSERT_ERROR(errs, want, ...) \
    assert_error(errs, want, (int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(char *)), \
                 (const char *[]){__VA_ARGS__})

/* "test_layers.c:LINE" */
static const char *at_line(char *buf, size_t n, int line) {
    snprintf(buf, n, "test_layers.c:%d)", line);
    return buf;
}

static ct_tensor *from_f32(ct_ctx *ctx, const float *v, int ndim, const int64_t *shape) {
    ct_tensor *t = ct_from_f32(ctx, v, ndim, shape);
    ck_assert_ptr_nonnull(t);
    return t;
}
#define F32(ctx, shape, ...) from_f32(ctx, (const float[]){__VA_ARGS__}, shape)

static void set_param(ct_module *m, const char *name, const ct_tensor *v) {
    ct_tensor *p = ct_module_param(m, name);
    ck_assert_msg(p != NULL, "no parameter '%s'", name);
    ck_assert_int_eq(ct_inplace_copy(p, v), CT_OK);
}

/* ---- Linear ------------------------------------------------------------------------------ */
START_TEST(test_linear_shapes_and_names) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_rng rng;
    ct_rng_seed(&rng, 7);
    ct_module *m = ct_linear_new(ctx, &rng, 5, 3, true);
    ck_assert_ptr_nonnull(m);
    ck_assert_str_eq(m->kind, "Linear");
    assert_params(m, 2, (const char *[]){"weight", "bias"}, 5 * 3 + 3);
    ASSERT_SHAPE(ct_module_param(m, "weight"), 3, 5);
    ASSERT_SHAPE(ct_module_param(m, "bias"), 3);
    ct_scope_begin(ctx);
    ASSERT_SHAPE(ct_linear_forward(m, TU_RAND(ctx, 1, -1, 1, 4, 5)), 4, 3);
    ASSERT_SHAPE(ct_linear_forward(m, TU_RAND(ctx, 2, -1, 1, 2, 3, 5)), 2, 3, 3);
    ASSERT_SHAPE(ct_linear_forward(m, TU_RAND(ctx, 3, -1, 1, 5)), 3);
    ASSERT_SHAPE(ct_module_forward(m, TU_RAND(ctx, 4, -1, 1, 2, 2, 2, 5), NULL), 2, 2, 2, 3);
    ct_scope_end(ctx);
    ct_module *nb = ct_linear_new(ctx, &rng, 4, 2, false);
    assert_params(nb, 1, (const char *[]){"weight"}, 8);
    ct_module_free(m);
    ct_module_free(nb);
    ct_module_free(NULL);
    ck_assert_int_eq(ct_ctx_mem_stats(ctx).live_tensors, 0);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_linear_values) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_rng rng;
    ct_rng_seed(&rng, 1);
    ct_module *m = ct_linear_new(ctx, &rng, 3, 2, true);
    set_param(m, "weight", F32(ctx, CT_SHAPE(2, 3), 1, 2, 3, -1, 0, 0.5f));
    set_param(m, "bias", F32(ctx, CT_SHAPE(2), 0.5f, -2));
    ct_tensor *x = F32(ctx, CT_SHAPE(2, 3), 1, 1, 1, 0, 2, -2);
    /* [1,1,1] -> [6.5, -2.5]; [0,2,-2] -> [-1.5, -3] */
    const float want[] = {6.5f, -2.5f, -1.5f, -3.0f};
    tu_assert_close(ct_linear_forward(m, x), want, 1e-6, 0);
    /* a 3-D input (one GEMM over the merged rows), a non-contiguous one (batched) and 1-D */
    tu_assert_close(ct_linear_forward(m, ct_reshape(x, 2, 1, 3)), want, 1e-6, 0);
    ct_tensor *xt = ct_transpose(F32(ctx, CT_SHAPE(1, 3, 2), 1, 0, 1, 2, 1, -2), 1, 2);
    ck_assert(!ct_is_contiguous(xt));
    tu_assert_close(ct_linear_forward(m, xt), want, 1e-6, 0);
    tu_assert_close(ct_linear_forward(m, ct_select(x, 0, 1)), want + 2, 1e-6, 0);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_linear_init) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_rng rng, again, other;
    ct_rng_seed(&rng, 42);
    ct_rng_seed(&again, 42);
    ct_rng_seed(&other, 43);
    ct_module *m = ct_linear_new(ctx, &rng, 100, 64, true);
    ct_module *m2 = ct_linear_new(ctx, &again, 100, 64, true);
    ct_module *m3 = ct_linear_new(ctx, &other, 100, 64, true);
    ct_tensor *w = ct_module_param(m, "weight"), *b = ct_module_param(m, "bias");
    const float bound = 0.1f;               /* 1 / sqrt(100) */
    double lo = 1, hi = -1, mean = 0;
    for (int64_t i = 0; i < ct_numel(w); i++) {
        float v = ct_data_f32(w)[i];
        ck_assert(v >= -bound && v < bound);
        lo = fmin(lo, v);
        hi = fmax(hi, v);
        mean += v;
    }
    mean /= (double)ct_numel(w);
    ck_assert(lo < -0.099 && hi > 0.099 && fabs(mean) < 0.005);   /* fills the interval */
    for (int64_t i = 0; i < ct_numel(b); i++)
        ck_assert(ct_data_f32(b)[i] >= -bound && ct_data_f32(b)[i] < bound);
    /* deterministic with a seed, different with another */
    tu_assert_tensors_close(w, ct_module_param(m2, "weight"), 0, 0);
    tu_assert_tensors_close(b, ct_module_param(m2, "bias"), 0, 0);
    ck_assert(ct_data_f32(w)[0] != ct_data_f32(ct_module_param(m3, "weight"))[0]);
    /* drawn in element order, weight then bias */
    ct_rng_seed(&again, 42);
    tu_assert_tensors_close(w, ct_uniform(ctx, &again, -bound, bound, CT_SHAPE(64, 100)), 0, 0);
    tu_assert_tensors_close(b, ct_uniform(ctx, &again, -bound, bound, CT_SHAPE(64)), 0, 0);
    /* in = 0: an empty weight and a zero bias, as PyTorch */
    ct_module *z = ct_linear_new(ctx, &rng, 0, 3, true);
    ck_assert_ptr_nonnull(z);
    tu_assert_close(ct_module_param(z, "bias"), ((float[]){0, 0, 0}), 0, 0);
    ct_inplace_fill(ct_module_param(z, "bias"), 0.5f);
    tu_assert_close(ct_linear_forward(z, ct_zeros(ctx, CT_SHAPE(2, 0))),
                    ((float[]){0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f}), 0, 0);
    ct_module_free(m);
    ct_module_free(m2);
    ct_module_free(m3);
    ct_module_free(z);
    ct_ctx_free(ctx);
}
END_TEST

static ct_tensor *linear_fn(ct_tensor **in, void *ud) { return ct_linear_forward(ud, in[0]); }
static ct_tensor *linear_t_fn(ct_tensor **in, void *ud) {
    return ct_linear_forward(ud, ct_transpose(in[0], 0, 1));     /* [3, 2, 4] -> [2, 3, 4] */
}

START_TEST(test_linear_gradcheck) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_rng rng;
    ct_rng_seed(&rng, 3);
    ct_module *m = ct_linear_new(ctx, &rng, 4, 3, true);
    ct_tensor *w = ct_module_param(m, "weight"), *b = ct_module_param(m, "bias");
    ct_tensor *x2 = TU_RAND(ctx, 11, -1, 1, 5, 4), *x3 = TU_RAND(ctx, 12, -1, 1, 2, 3, 4);
    ct_set_requires_grad(x2, true);
    ct_set_requires_grad(x3, true);
    ck_assert_int_eq(tu_gradcheck(linear_fn, 3, ((ct_tensor *[]){x2, w, b}), m), 20 + 12 + 3);
    ck_assert_int_eq(tu_gradcheck(linear_fn, 3, ((ct_tensor *[]){x3, w, b}), m), 24 + 12 + 3);
    ck_assert_int_eq(tu_gradcheck(linear_t_fn, 3, ((ct_tensor *[]){x3, w, b}), m), 24 + 12 + 3);
    ct_module *nb = ct_linear_new(ctx, &rng, 4, 2, false);
    ck_assert_int_eq(tu_gradcheck(linear_fn, 2, ((ct_tensor *[]){x3, ct_module_param(nb, "weight")}),
                                  nb), 24 + 8);
    ct_module_free(m);
    ct_module_free(nb);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- Embedding --------------------------------------------------------------------------- */
START_TEST(test_embedding_module) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_rng rng, again;
    ct_rng_seed(&rng, 5);
    ct_rng_seed(&again, 5);
    ct_module *m = ct_embedding_module_new(ctx, &rng, 6, 4);
    ck_assert_str_eq(m->kind, "Embedding");
    assert_params(m, 1, (const char *[]){"weight"}, 24);
    ct_tensor *w = ct_module_param(m, "weight");
    ASSERT_SHAPE(w, 6, 4);
    /* N(0, 1) from the generator, in element order */
    tu_assert_tensors_close(w, ct_randn(ctx, &again, CT_SHAPE(6, 4)), 0, 0);
    ct_tensor *idx = ct_from_i64(ctx, (const int64_t[]){5, 0, 5}, CT_SHAPE(3, 1));
    ct_tensor *e = ct_embedding_module_forward(m, idx);
    ASSERT_SHAPE(e, 3, 1, 4);
    for (int j = 0; j < 4; j++) {
        ck_assert_float_eq(ct_get(e, (int64_t[]){0, 0, j}), ct_get(w, (int64_t[]){5, j}));
        ck_assert_float_eq(ct_get(e, (int64_t[]){1, 0, j}), ct_get(w, (int64_t[]){0, j}));
    }
    ASSERT_SHAPE(ct_module_forward(m, idx, NULL), 3, 1, 4);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

typedef struct { ct_module *m; ct_tensor *idx; } emb_case;
static ct_tensor *embedding_fn(ct_tensor **in, void *ud) {
    emb_case *c = ud;
    return ct_embedding_module_forward(c->m, c->idx);
}

START_TEST(test_embedding_gradcheck_and_padding) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_rng rng;
    ct_rng_seed(&rng, 9);
    ct_module *m = ct_embedding_module_new(ctx, &rng, 5, 3);
    ct_tensor *idx = ct_from_i64(ctx, (const int64_t[]){1, 3, 3, 0, 1, 1}, CT_SHAPE(2, 3));
    emb_case c = {m, idx};
    ck_assert_int_eq(tu_gradcheck(embedding_fn, 1, ((ct_tensor *[]){ct_module_param(m, "weight")}), &c), 15);
    /* padding_idx: the row starts at zero, the lookup returns it, its gradient stays zero;
     * every other row's gradient is as without padding */
    ct_module *p = ct_embedding_module_new_ex(ctx, &rng, 5, 3, 1);
    ct_tensor *wp = ct_module_param(p, "weight");
    tu_assert_close(ct_select(wp, 0, 1), ((float[]){0, 0, 0}), 0, 0);
    ck_assert_int_eq(ct_inplace_copy(wp, ct_module_param(m, "weight")), CT_OK);
    ct_scope_begin(ctx);
    ct_tensor *proj = TU_RAND(ctx, 4, -1, 1, 2, 3, 3);
    ct_tensor *ep = ct_embedding_module_forward(p, idx);
    tu_assert_tensors_close(ep, ct_embedding_module_forward(m, idx), 0, 0);
    ck_assert_str_eq(ct_grad_fn_name(ep), "embedding");
    ck_assert_int_eq(ct_backward(ct_sum_all(ct_mul(ep, proj))), CT_OK);
    ct_zero_grad(ct_module_param(m, "weight"));
    ck_assert_int_eq(ct_backward(ct_sum_all(ct_mul(ct_embedding_module_forward(m, idx), proj))), CT_OK);
    ct_scope_end(ctx);
    ct_tensor *gp = ct_grad(wp), *gm = ct_grad(ct_module_param(m, "weight"));
    for (int r = 0; r < 5; r++)
        for (int j = 0; j < 3; j++) {
            double want = r == 1 ? 0.0 : ct_get(gm, (int64_t[]){r, j});
            ck_assert_float_eq(ct_get(gp, (int64_t[]){r, j}), want);
        }
    ck_assert_double_ne(ct_get(gm, (int64_t[]){1, 0}), 0.0);
    /* non-contiguous indices and no graph in no-grad mode */
    bool was = ct_set_grad_enabled(ctx, false);
    ct_tensor *it = ct_transpose(idx, 0, 1);
    ct_tensor *et = ct_embedding_module_forward(p, it);
    ASSERT_SHAPE(et, 3, 2, 3);
    ck_assert_ptr_null(ct_grad_fn_name(et));
    tu_assert_tensors_close(et, ct_transpose(ct_embedding_module_forward(m, idx), 0, 1), 0, 0);
    ct_set_grad_enabled(ctx, was);
    ct_module_free(m);
    ct_module_free(p);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- Dropout ----------------------------------------------------------------------------- */
START_TEST(test_dropout_module) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_rng rng;
    ct_rng_seed(&rng, 21);
    ct_module *d = ct_dropout_module_new(ctx, 0.5f);
    ck_assert_str_eq(d->kind, "Dropout");
    ck_assert_int_eq(ct_module_param_count(d), 0);
    ct_tensor *x = TU_RAND(ctx, 8, 1, 2, 40, 10);
    /* training: zeros, and the rest scaled by 2; the same seed gives the same mask */
    ct_rng r2 = rng;
    ct_tensor *y = ct_dropout_module_forward(d, x, &rng);
    tu_assert_tensors_close(y, ct_dropout(x, 0.5f, true, &r2), 0, 0);
    int zeros = 0;
    for (int64_t i = 0; i < ct_numel(x); i++) {
        float v = ct_data_f32(y)[i];
        if (v == 0) zeros++;
        else ck_assert_float_eq_tol(v, 2 * ct_data_f32(x)[i], 1e-6);
    }
    ck_assert(zeros > 150 && zeros < 250);
    /* eval: the identity (the input itself), no generator needed */
    ct_module_train(d, false);
    ck_assert_ptr_eq(ct_dropout_module_forward(d, x, NULL), x);
    ck_assert_ptr_eq(ct_module_forward(d, x, NULL), x);
    /* errors */
    ct_module_train(d, true);
    ck_assert_ptr_null(ct_dropout_module_forward(d, x, NULL));
    ASSERT_ERROR(&errs, CT_E_ARG, "dropout:", "generator is NULL");
    ck_assert_ptr_null(ct_dropout_module_new(ctx, 1.0f));
    ASSERT_ERROR(&errs, CT_E_ARG, "p = 1 is outside [0, 1)");
    ck_assert_ptr_null(ct_dropout_module_new(ctx, -0.1f));
    ct_module_free(d);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- LayerNorm ---------------------------------------------------------------------------- */
/* (x - mean) / sqrt(var + eps) * w + b from the engine's ordinary ops */
static ct_tensor *layer_norm_ref(ct_tensor *x, ct_tensor *w, ct_tensor *b, float eps) {
    ct_tensor *xm = ct_sub(x, ct_mean(x, -1, true));
    ct_tensor *var = ct_mean(ct_mul(xm, xm), -1, true);
    ct_tensor *y = ct_div(xm, ct_sqrt(ct_add_scalar(var, eps)));
    if (w) y = ct_mul(y, w);
    if (b) y = ct_add(y, b);
    return y;
}

static ct_tensor *w3(ct_ctx *ctx) {
    ct_tensor *w = ct_ones(ctx, CT_SHAPE(3));
    ct_set_requires_grad(w, true);
    return w;
}

START_TEST(test_layer_norm_values) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_tensor *x = TU_RAND(ctx, 1, -2, 3, 3, 4, 7), *w = TU_RAND(ctx, 2, 0.5f, 1.5f, 7);
    ct_tensor *b = TU_RAND(ctx, 3, -1, 1, 7);
    tu_assert_tensors_close(ct_layer_norm(x, w, b, 1e-5f), layer_norm_ref(x, w, b, 1e-5f), 1e-5, 1e-5);
    tu_assert_tensors_close(ct_layer_norm(x, NULL, NULL, 0.1f), layer_norm_ref(x, NULL, NULL, 0.1f), 1e-5, 1e-5);
    tu_assert_tensors_close(ct_layer_norm(x, w, NULL, 1e-3f), layer_norm_ref(x, w, NULL, 1e-3f), 1e-5, 1e-5);
    tu_assert_tensors_close(ct_layer_norm(x, NULL, b, 1e-3f), layer_norm_ref(x, NULL, b, 1e-3f), 1e-5, 1e-5);
    /* a non-contiguous input */
    ct_tensor *xt = ct_transpose(TU_RAND(ctx, 4, -2, 2, 7, 3), 0, 1);
    tu_assert_tensors_close(ct_layer_norm(xt, w, b, 1e-5f), layer_norm_ref(xt, w, b, 1e-5f), 1e-5, 1e-5);
    /* a large mean against a small spread: the one-pass variance is still exact */
    ct_tensor *big = F32(ctx, CT_SHAPE(1, 4), 1000.0f, 1000.25f, 1000.5f, 1000.75f);
    double mean = 1000.375, var = 0.078125, want[4];
    for (int j = 0; j < 4; j++) want[j] = (1000.0 + 0.25 * j - mean) / sqrt(var + 1e-5);
    tu_assert_close(ct_layer_norm(big, NULL, NULL, 1e-5f),
                    ((float[]){(float)want[0], (float)want[1], (float)want[2], (float)want[3]}),
                    1e-5, 1e-5);
    /* a constant row normalises to zero (var = 0, rstd = 1/sqrt(eps)) */
    tu_assert_close(ct_layer_norm(ct_full(ctx, 3.0f, CT_SHAPE(2, 3)), NULL, NULL, 1e-5f),
                    ((float[]){0, 0, 0, 0, 0, 0}), 0, 0);
    /* empty rows and an empty last dim */
    ct_tensor *w0 = w3(ctx), *x0 = ct_zeros(ctx, CT_SHAPE(2, 0));
    ct_tensor *e0 = ct_layer_norm(ct_zeros(ctx, CT_SHAPE(0, 3)), w0, NULL, 1e-5f);
    ASSERT_SHAPE(e0, 0, 3);
    ck_assert_int_eq(ct_backward(ct_sum_all(e0)), CT_OK);
    tu_assert_close(ct_grad(w0), ((float[]){0, 0, 0}), 0, 0);
    ct_set_requires_grad(x0, true);
    ct_tensor *e1 = ct_layer_norm(x0, NULL, NULL, 1e-5f);
    ASSERT_SHAPE(e1, 2, 0);
    ck_assert_int_eq(ct_backward(ct_sum_all(e1)), CT_OK);
    ASSERT_SHAPE(ct_grad(x0), 2, 0);
    /* no graph without requires_grad; a graph (one node) with it */
    ck_assert_ptr_null(ct_grad_fn_name(ct_layer_norm(x, w, b, 1e-5f)));
    ct_set_requires_grad(w, true);
    ck_assert_str_eq(ct_grad_fn_name(ct_layer_norm(x, w, b, 1e-5f)), "layer_norm");
    ct_ctx_free(ctx);
}
END_TEST

static ct_tensor *ln_fn(ct_tensor **in, void *ud) { return ct_layer_norm(in[0], in[1], in[2], 1e-5f); }
static ct_tensor *ln_plain_fn(ct_tensor **in, void *ud) {
    return ct_layer_norm(ct_transpose(in[0], 0, 1), NULL, NULL, 1e-5f);
}
static ct_tensor *ln_module_fn(ct_tensor **in, void *ud) { return ct_layernorm_forward(ud, in[0]); }

START_TEST(test_layer_norm_gradcheck) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_tensor *x = TU_RAND(ctx, 1, -2, 2, 2, 3, 5), *w = TU_RAND(ctx, 2, 0.5f, 1.5f, 5);
    ct_tensor *b = TU_RAND(ctx, 3, -1, 1, 5);
    ct_tensor *in[] = {x, w, b};
    for (int i = 0; i < 3; i++) ct_set_requires_grad(in[i], true);
    ck_assert_int_eq(tu_gradcheck(ln_fn, 3, in, NULL), 30 + 5 + 5);
    /* only some inputs need a gradient */
    ct_set_requires_grad(x, false);
    ck_assert_int_eq(tu_gradcheck(ln_fn, 3, in, NULL), 10);
    ct_set_requires_grad(x, true);
    ct_set_requires_grad(w, false);
    ct_set_requires_grad(b, false);
    ck_assert_int_eq(tu_gradcheck(ln_fn, 3, in, NULL), 30);
    /* no affine part, a non-contiguous input */
    ct_tensor *x2 = TU_RAND(ctx, 4, -1, 1, 6, 4);
    ct_set_requires_grad(x2, true);
    ck_assert_int_eq(tu_gradcheck(ln_plain_fn, 1, &x2, NULL), 24);
    /* through the module */
    ct_module *m = ct_layernorm_new(ctx, 5, 1e-5f, true);
    ct_inplace_copy(ct_module_param(m, "weight"), w);
    ct_inplace_copy(ct_module_param(m, "bias"), b);
    ck_assert_int_eq(tu_gradcheck(ln_module_fn, 3, ((ct_tensor *[]){x, ct_module_param(m, "weight"),
                                                    ct_module_param(m, "bias")}), m), 40);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_layernorm_module) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_module *m = ct_layernorm_new(ctx, 8, 1e-5f, true);
    ck_assert_str_eq(m->kind, "LayerNorm");
    assert_params(m, 2, (const char *[]){"weight", "bias"}, 16);
    tu_assert_close(ct_module_param(m, "weight"), ((float[]){1, 1, 1, 1, 1, 1, 1, 1}), 0, 0);
    tu_assert_close(ct_module_param(m, "bias"), ((float[]){0, 0, 0, 0, 0, 0, 0, 0}), 0, 0);
    ct_tensor *x = TU_RAND(ctx, 5, -3, 7, 4, 2, 8);
    ct_tensor *y = ct_module_forward(m, x, NULL);
    ASSERT_SHAPE(y, 4, 2, 8);
    /* every row: mean 0, (biased) variance 1 - eps/(var+eps) ~ 1 */
    for (int64_t r = 0; r < 8; r++) {
        double s = 0, q = 0;
        for (int j = 0; j < 8; j++) s += ct_data_f32(y)[r * 8 + j];
        for (int j = 0; j < 8; j++) q += pow(ct_data_f32(y)[r * 8 + j] - s / 8, 2);
        ck_assert_double_eq_tol(s / 8, 0, 1e-6);
        ck_assert_double_eq_tol(q / 8, 1, 1e-3);
    }
    ct_module *plain = ct_layernorm_new(ctx, 8, 1e-5f, false);
    ck_assert_int_eq(ct_module_param_count(plain), 0);
    tu_assert_tensors_close(ct_layernorm_forward(plain, x), y, 1e-6, 0);
    ct_module_free(m);
    ct_module_free(plain);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- activations and Sequential ---------------------------------------------------------- */
START_TEST(test_activations) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *x = F32(ctx, CT_SHAPE(4), -2, -0.5f, 0, 1.5f);
    const char *names[] = {"relu", "tanh", "sigmoid"}, *kinds[] = {"ReLU", "Tanh", "Sigmoid"};
    ct_tensor *want[] = {ct_relu(x), ct_tanh(x), ct_sigmoid(x)};
    for (int i = 0; i < 3; i++) {
        ct_module *a = ct_activation_new(ctx, names[i]);
        ck_assert_ptr_nonnull(a);
        ck_assert_str_eq(a->kind, kinds[i]);
        ck_assert_int_eq(ct_module_param_count(a), 0);
        tu_assert_tensors_close(ct_module_forward(a, x, NULL), want[i], 0, 0);
        ct_module_free(a);
    }
    ck_assert_ptr_null(ct_activation_new(ctx, "gelu"));
    ASSERT_ERROR(&errs, CT_E_ARG, "unknown activation 'gelu'", "relu, tanh, sigmoid");
    ck_assert_ptr_null(ct_activation_new(ctx, NULL));
    ct_ctx_free(ctx);
}
END_TEST

static ct_tensor *seq_fn(ct_tensor **in, void *ud) { return ct_sequential_forward(ud, in[0], NULL); }

START_TEST(test_sequential) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_rng rng;
    ct_rng_seed(&rng, 17);
    ct_module *seq = ct_sequential_new(ctx);
    ck_assert_str_eq(seq->kind, "Sequential");
    ct_module *l0 = ct_linear_new(ctx, &rng, 4, 8, true), *l2 = ct_linear_new(ctx, &rng, 8, 2, true);
    ck_assert_int_eq(ct_sequential_append(seq, l0), CT_OK);
    ck_assert_int_eq(ct_sequential_append(seq, ct_activation_new(ctx, "relu")), CT_OK);
    ck_assert_int_eq(ct_sequential_append(seq, l2), CT_OK);
    ck_assert_int_eq(ct_sequential_append(seq, ct_dropout_module_new(ctx, 0.3f)), CT_OK);
    assert_params(seq, 4, (const char *[]){"0.weight", "0.bias", "2.weight", "2.bias"}, 40 + 18);
    ck_assert_ptr_eq(ct_module_child(seq, "2"), l2);
    ck_assert_str_eq(ct_module_child(seq, "3")->kind, "Dropout");
    ct_module_train(seq, false);                       /* dropout off */
    ct_tensor *x = TU_RAND(ctx, 6, -1, 1, 3, 4);
    ct_tensor *want = ct_linear_forward(l2, ct_relu(ct_linear_forward(l0, x)));
    tu_assert_tensors_close(ct_sequential_forward(seq, x, NULL), want, 0, 0);
    tu_assert_tensors_close(ct_module_forward(seq, x, NULL), want, 0, 0);
    /* gradients through the chain, for the input and every parameter */
    ct_set_requires_grad(x, true);
    ct_tensor *in[] = {x, ct_module_param(seq, "0.weight"), ct_module_param(seq, "0.bias"),
                       ct_module_param(seq, "2.weight"), ct_module_param(seq, "2.bias")};
    ck_assert_int_eq(tu_gradcheck(seq_fn, 5, in, seq), 12 + 58);
    /* in training mode dropout draws from the generator passed to forward */
    ct_module_train(seq, true);
    ck_assert_ptr_null(ct_sequential_forward(seq, x, NULL));
    ASSERT_ERROR(&errs, CT_E_ARG, "dropout:", "generator is NULL");
    ASSERT_SHAPE(ct_sequential_forward(seq, x, &rng), 3, 2);
    /* the flat block: backward through the Sequential fills it */
    ck_assert_int_eq(ct_module_flatten(seq), CT_OK);
    ct_module_zero_grad(seq);
    ct_module_train(seq, false);
    ck_assert_int_eq(ct_backward(ct_sum_all(ct_sequential_forward(seq, x, NULL))), CT_OK);
    ct_tensor *fg = ct_module_flat_grads(seq);
    ck_assert_int_eq(ct_numel(fg), 58);
    ck_assert_float_eq(ct_data_f32(fg)[40 + 16], 3.0f);   /* d/d 2.bias[0] of the sum over 3 rows */
    /* an empty Sequential is the identity; nesting works and names nest */
    ct_module *empty = ct_sequential_new(ctx);
    ck_assert_ptr_eq(ct_sequential_forward(empty, x, NULL), x);
    ct_module *outer = ct_sequential_new(ctx);
    ck_assert_int_eq(ct_sequential_append(outer, seq), CT_OK);
    ck_assert_int_eq(ct_sequential_append(outer, empty), CT_OK);
    char name[64];
    ct_module_param_at(outer, 3, name, sizeof name);
    ck_assert_str_eq(name, "0.2.bias");
    tu_assert_tensors_close(ct_module_forward(outer, x, NULL), want, 0, 0);
    /* errors: a module with no forward, one that already has a parent, a non-Sequential */
    ct_module *bare = ct_module_new(ctx, "Bare", 0);
    ck_assert_int_eq(ct_sequential_append(outer, bare), CT_E_ARG);
    ASSERT_ERROR(&errs, CT_E_ARG, "Bare module has no single-input forward");
    ct_module_free(bare);                               /* still the caller's */
    ck_assert_int_eq(ct_sequential_append(outer, l0), CT_E_STATE);
    ck_assert_int_eq(ct_sequential_append(l0, ct_module_child(outer, "1")), CT_E_ARG);
    ASSERT_ERROR(&errs, CT_E_ARG, "is a Linear; expected kind Sequential");
    ck_assert_int_eq(ct_sequential_append(NULL, l0), CT_E_NULL);
    ct_module_free(outer);
    ct_ctx_free(ctx);
}
END_TEST

/* a training loop over a Sequential frees everything it makes */
START_TEST(test_layers_memory_steady) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_rng rng;
    ct_rng_seed(&rng, 2);
    ct_module *seq = ct_sequential_new(ctx);
    ct_sequential_append(seq, ct_embedding_module_new_ex(ctx, &rng, 10, 6, 0));
    ct_sequential_append(seq, ct_layernorm_new(ctx, 6, 1e-5f, true));
    ct_sequential_append(seq, ct_linear_new(ctx, &rng, 6, 6, true));
    ct_sequential_append(seq, ct_activation_new(ctx, "tanh"));
    ct_sequential_append(seq, ct_dropout_module_new(ctx, 0.2f));
    ct_sequential_append(seq, ct_linear_new(ctx, &rng, 6, 10, true));
    ct_tensor *flat = ct_module_flat_params(seq), *grads = ct_module_flat_grads(seq);
    ck_assert_ptr_nonnull(flat);
    ct_tensor *idx = ct_from_i64(ctx, (const int64_t[]){1, 0, 4, 9, 2, 2}, CT_SHAPE(2, 3));
    ct_tensor *y = ct_from_i64(ctx, (const int64_t[]){3, 3, 1, 0, 5, 7}, CT_SHAPE(6));
    ct_mem_stats before = {0};
    double first = 0, last = 0;
    for (int step = 0; step < 200; step++) {
        ct_scope_begin(ctx);
        ct_tensor *logits = ct_reshape(ct_sequential_forward(seq, idx, &rng), 6, 10);
        ct_tensor *loss = ct_cross_entropy(logits, y, -100);
        ck_assert_int_eq(ct_backward(loss), CT_OK);
        ct_inplace_axpy(flat, -0.1f, grads);
        ct_module_zero_grad(seq);
        if (step == 0) first = ct_item(loss);
        last = ct_item(loss);
        ct_scope_end(ctx);
        if (step == 1) before = ct_ctx_mem_stats(ctx);
    }
    ct_mem_stats after = ct_ctx_mem_stats(ctx);
    ck_assert_int_eq(after.live_tensors, before.live_tensors);
    ck_assert_int_eq(after.live_bytes, before.live_bytes);
    ck_assert_int_eq(after.live_nodes, 0);
    ck_assert(last < first);                            /* it learns */
    /* the padding row never moved */
    tu_assert_close(ct_select(ct_module_param(seq, "0.weight"), 0, 0), ((float[]){0, 0, 0, 0, 0, 0}), 0, 0);
    ct_module_free(seq);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- errors ------------------------------------------------------------------------------ */
START_TEST(test_layer_errors) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_rng rng;
    ct_rng_seed(&rng, 1);
    char at[64];
    int line;
    ct_module *lin = ct_linear_new(ctx, &rng, 5, 2, true);
    ct_module *ln = ct_layernorm_new(ctx, 4, 1e-5f, true);
    ct_module *emb = ct_embedding_module_new(ctx, &rng, 3, 2);
    ct_tensor *x43 = ct_zeros(ctx, CT_SHAPE(4, 3));

    /* wrong input size: the op, the shapes and this line */
    line = __LINE__; ck_assert_ptr_null(ct_linear_forward(lin, x43));
    ASSERT_ERROR(&errs, CT_E_SHAPE, "linear: input [4, 3]", "[..., 5]", "weight [2, 5]",
                 at_line(at, sizeof at, line));
    ck_assert_ptr_null(ct_linear_forward(lin, ct_scalar(ctx, 1.0f)));
    ASSERT_ERROR(&errs, CT_E_SHAPE, "linear: input []");
    /* also from inside a Sequential, called at this line */
    ct_module *seq = ct_sequential_new(ctx);
    ct_sequential_append(seq, ct_activation_new(ctx, "tanh"));
    ct_sequential_append(seq, lin);
    line = __LINE__; ck_assert_ptr_null(ct_sequential_forward(seq, x43, NULL));
    ASSERT_ERROR(&errs, CT_E_SHAPE, "linear: input [4, 3]", at_line(at, sizeof at, line));
    ck_assert_ptr_null(ct_linear_forward(lin, ct_arange(ctx, CT_I64, 5)));
    ASSERT_ERROR(&errs, CT_E_DTYPE, "linear:", "int64");
    line = __LINE__; ck_assert_ptr_null(ct_layernorm_forward(ln, x43));
    ASSERT_ERROR(&errs, CT_E_SHAPE, "layer_norm: input [4, 3]", "[..., 4]", at_line(at, sizeof at, line));
    line = __LINE__; ck_assert_ptr_null(ct_layer_norm(x43, ct_ones(ctx, CT_SHAPE(4)), NULL, 1e-5f));
    ASSERT_ERROR(&errs, CT_E_SHAPE, "layer_norm: weight [4] does not fit input [4, 3]",
                 "expected [3]", at_line(at, sizeof at, line));
    ck_assert_ptr_null(ct_layer_norm(x43, NULL, ct_ones(ctx, CT_SHAPE(3, 1)), 1e-5f));
    ASSERT_ERROR(&errs, CT_E_SHAPE, "layer_norm: bias [3, 1] does not fit");
    ck_assert_ptr_null(ct_layer_norm(ct_scalar(ctx, 1), NULL, NULL, 1e-5f));
    ASSERT_ERROR(&errs, CT_E_SHAPE, "layer_norm: input [] is 0-d");
    ck_assert_ptr_null(ct_layer_norm(x43, NULL, NULL, -1.0f));
    ASSERT_ERROR(&errs, CT_E_ARG, "eps = -1");
    ck_assert_ptr_null(ct_layer_norm(ct_arange(ctx, CT_I64, 3), NULL, NULL, 1e-5f));
    ASSERT_ERROR(&errs, CT_E_DTYPE, "layer_norm:");
    ck_assert_ptr_null(ct_layer_norm(NULL, NULL, NULL, 1e-5f));        /* quietly */
    /* embedding: an index out of range, float indices */
    line = __LINE__; ck_assert_ptr_null(ct_embedding_module_forward(emb, ct_arange(ctx, CT_I64, 4)));
    ASSERT_ERROR(&errs, CT_E_ARG, "embedding: index 3", "weight [3, 2]", at_line(at, sizeof at, line));
    ck_assert_ptr_null(ct_embedding_module_forward(emb, x43));
    ASSERT_ERROR(&errs, CT_E_DTYPE, "embedding:", "expected int64");
    /* a module of another kind */
    line = __LINE__; ck_assert_ptr_null(ct_linear_forward(ln, x43));
    ASSERT_ERROR(&errs, CT_E_ARG, "linear: the module is a LayerNorm; expected kind Linear",
                 at_line(at, sizeof at, line));
    ck_assert_ptr_null(ct_layernorm_forward(emb, x43));
    ck_assert_ptr_null(ct_embedding_module_forward(lin, x43));
    ASSERT_ERROR(&errs, CT_E_ARG, "the module '1' is a Linear; expected kind Embedding");
    ck_assert_ptr_null(ct_sequential_forward(ln, x43, NULL));
    ck_assert_ptr_null(ct_dropout_module_forward(ln, x43, NULL));
    ck_assert_ptr_null(ct_linear_forward(NULL, x43));
    /* constructors */
    int before = errs.count;
    ck_assert_ptr_null(ct_linear_new(ctx, &rng, -1, 2, true));
    ASSERT_ERROR(&errs, CT_E_ARG, "in_features = -1");
    ck_assert_ptr_null(ct_linear_new(ctx, NULL, 2, 2, true));
    ASSERT_ERROR(&errs, CT_E_ARG, "generator is NULL");
    ck_assert_ptr_null(ct_embedding_module_new(ctx, NULL, 2, 2));
    ck_assert_ptr_null(ct_embedding_module_new_ex(ctx, &rng, 4, 2, 4));
    ASSERT_ERROR(&errs, CT_E_ARG, "padding_idx = 4 is outside [0, 4)");
    ck_assert_ptr_null(ct_embedding_module_new_ex(ctx, &rng, 4, 2, -2));
    ck_assert_ptr_null(ct_embedding_module_new(ctx, &rng, -3, 2));
    ck_assert_ptr_null(ct_layernorm_new(ctx, 4, -1e-5f, true));
    ck_assert_ptr_null(ct_layernorm_new(ctx, -4, 1e-5f, true));
    ck_assert_int_eq(errs.count, before + 8);
    ck_assert_ptr_null(ct_linear_new(NULL, &rng, 1, 1, true));
    ct_module_free(seq);
    ct_module_free(ln);
    ct_module_free(emb);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- PyTorch parity ------------------------------------------------------------------------ */
/* Loads the fixture's parameters into m (checking the names match PyTorch's state_dict),
 * runs forward and backward of sum(out * proj), compares the output and every gradient. */
static void golden_case(ct_ctx *ctx, const char *name, ct_module *m) {
    char path[128], key[160], pname[128];
    snprintf(path, sizeof path, "fixtures/layers/%s.npz", name);
    ck_assert_ptr_nonnull(m);
    ct_npz *z = ct_npz_open(ctx, path);
    ck_assert_msg(z != NULL, "cannot open %s: %s", path, ct_ctx_error(ctx));
    ct_scope_begin(ctx);
    int in_file = 0;
    for (int i = 0; i < ct_npz_count(z); i++)
        if (strncmp(ct_npz_name(z, i), "param_", 6) == 0) in_file++;
    ck_assert_int_eq(ct_module_param_count(m), in_file);
    for (int i = 0; i < ct_module_param_count(m); i++) {
        ct_tensor *p = ct_module_param_at(m, i, pname, sizeof pname);
        snprintf(key, sizeof key, "param_%s", pname);
        ct_tensor *v = ct_npz_get(z, key);
        ck_assert_msg(v != NULL, "%s: PyTorch has no parameter '%s'", name, pname);
        ck_assert_int_eq(ct_inplace_copy(p, v), CT_OK);
        ct_zero_grad(p);
    }
    ct_tensor *x = ct_npz_get(z, "x");
    ck_assert_ptr_nonnull(x);
    bool x_grad = false;
    for (int i = 0; i < ct_npz_count(z); i++)
        if (strcmp(ct_npz_name(z, i), "grad_x") == 0) x_grad = true;
    if (x_grad) ct_set_requires_grad(x, true);
    ct_tensor *out = ct_module_forward(m, x, NULL);
    ck_assert_msg(out != NULL, "%s: forward failed: %s", name, ct_ctx_error(ctx));
    tu_assert_tensors_close(out, ct_npz_get(z, "out"), 1e-5, 1e-4);
    ck_assert_int_eq(ct_backward(ct_sum_all(ct_mul(out, ct_npz_get(z, "proj")))), CT_OK);
    for (int i = 0; i < ct_module_param_count(m); i++) {
        ct_tensor *p = ct_module_param_at(m, i, pname, sizeof pname);
        snprintf(key, sizeof key, "grad_%s", pname);
        ck_assert_msg(ct_grad(p) != NULL, "%s: no gradient for %s", name, pname);
        tu_assert_tensors_close(ct_grad(p), ct_npz_get(z, key), 1e-5, 1e-4);
    }
    if (x_grad) tu_assert_tensors_close(ct_grad(x), ct_npz_get(z, "grad_x"), 1e-5, 1e-4);
    ct_scope_end(ctx);
    ct_npz_close(z);
    ct_module_free(m);
}

START_TEST(test_golden_layers) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_rng rng;
    ct_rng_seed(&rng, 1);
    golden_case(ctx, "linear", ct_linear_new(ctx, &rng, 5, 4, true));
    golden_case(ctx, "linear_nobias", ct_linear_new(ctx, &rng, 6, 3, false));
    golden_case(ctx, "embedding", ct_embedding_module_new_ex(ctx, &rng, 7, 3, 2));
    golden_case(ctx, "layernorm", ct_layernorm_new(ctx, 6, 1e-5f, true));
    golden_case(ctx, "layernorm_noaffine", ct_layernorm_new(ctx, 5, 1e-5f, false));
    ct_module *seq = ct_sequential_new(ctx);
    ck_assert_int_eq(ct_sequential_append(seq, ct_linear_new(ctx, &rng, 4, 8, true)), CT_OK);
    ck_assert_int_eq(ct_sequential_append(seq, ct_activation_new(ctx, "tanh")), CT_OK);
    ck_assert_int_eq(ct_sequential_append(seq, ct_linear_new(ctx, &rng, 8, 3, true)), CT_OK);
    golden_case(ctx, "sequential", seq);
    ck_assert_int_eq(ct_ctx_mem_stats(ctx).live_nodes, 0);
    ct_ctx_free(ctx);
}
END_TEST

Suite *layers_suite(void) {
    Suite *s = suite_create("layers");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_linear_shapes_and_names);
    tcase_add_test(tc, test_linear_values);
    tcase_add_test(tc, test_linear_init);
    tcase_add_test(tc, test_linear_gradcheck);
    tcase_add_test(tc, test_embedding_module);
    tcase_add_test(tc, test_embedding_gradcheck_and_padding);
    tcase_add_test(tc, test_dropout_module);
    tcase_add_test(tc, test_layer_norm_values);
    tcase_add_test(tc, test_layer_norm_gradcheck);
    tcase_add_test(tc, test_layernorm_module);
    tcase_add_test(tc, test_activations);
    tcase_add_test(tc, test_sequential);
    tcase_add_test(tc, test_layers_memory_steady);
    tcase_add_test(tc, test_layer_errors);
    suite_add_tcase(s, tc);
    TCase *tg = tcase_create("pytorch");
    tcase_add_test(tg, test_golden_layers);
    suite_add_tcase(s, tg);
    return s;
}
