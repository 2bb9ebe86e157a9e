/* tests/engine/test_optim.c — optimizers (hand-computed updates and PyTorch parity), schedules,
 * gradient clipping, gradient hooks with the flat block, optimizer state save/restore.
 * PyTorch values: tests/gen_golden_optim.py writes tests/fixtures/optim/ (CASE.npz). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/nn.h"
#include "engine/npy.h"
#include "engine/optim.h"
#include "testutil.h"

static void assert_msg_has(const tu_errors *errs, const char *want) {
    ck_assert_msg(strstr(errs->last.msg, want) != NULL, "message \"%s\" lacks \"%s\"",
                  errs->last.msg, want);
}

/* ---- the parity model: root{w1 [4,3], w2 [2,4], head{bias [2]}} ------------------------------- */
typedef struct model { ct_module *root; ct_tensor *w1, *w2, *bias; } model;

static model model_new(ct_ctx *ctx) {
    model m;
    m.root = ct_module_new(ctx, "Model", 0);
    ct_module *head = ct_module_new(ctx, "Head", 0);
    m.w1 = ct_module_add_param(m.root, "w1", CT_SHAPE(4, 3));
    m.w2 = ct_module_add_param(m.root, "w2", CT_SHAPE(2, 4));
    m.bias = ct_module_add_param(head, "bias", CT_SHAPE(2));
    ck_assert_int_eq(ct_module_add_child(m.root, "head", head), CT_OK);
    ck_assert_ptr_nonnull(m.w1);
    ck_assert_ptr_nonnull(m.bias);
    return m;
}

static void model_load(model *m, ct_npz *z, int k) {
    char key[32];
    ct_scope_begin(m->root->ctx);
    snprintf(key, sizeof key, "w1_%d", k);
    ck_assert_int_eq(ct_inplace_copy(m->w1, ct_npz_get(z, key)), CT_OK);
    snprintf(key, sizeof key, "w2_%d", k);
    ck_assert_int_eq(ct_inplace_copy(m->w2, ct_npz_get(z, key)), CT_OK);
    snprintf(key, sizeof key, "bias_%d", k);
    ck_assert_int_eq(ct_inplace_copy(m->bias, ct_npz_get(z, key)), CT_OK);
    ct_scope_end(m->root->ctx);
}

/* sum((tanh(x @ w1^T) @ w2^T + bias) * proj) */
static ct_tensor *model_loss(model *m, ct_tensor *x, ct_tensor *proj) {
    ct_tensor *h = ct_tanh(ct_matmul(x, ct_transpose(m->w1, 0, 1)));
    return ct_sum_all(ct_mul(ct_add(ct_matmul(h, ct_transpose(m->w2, 0, 1)), m->bias), proj));
}

/* |a - b| <= 1e-4 |b| + 1e-6, element by element */
static void assert_rel(const ct_tensor *a, const ct_tensor *b, const char *what, int step) {
    ck_assert_msg(a && b && ct_same_shape(a, b), "%s step %d: shapes differ", what, step);
    int64_t n = ct_numel(a);
    for (int64_t i = 0; i < n; i++) {
        double x = ct_data_f32(a)[i], y = ct_data_f32(b)[i];
        ck_assert_msg(fabs(x - y) <= 1e-4 * fabs(y) + 1e-6, "%s after step %d, element %lld: "
                      "cantor %.8g, PyTorch %.8g", what, step, (long long)i, x, y);
    }
}

typedef struct pcase {
    const char *name;
    ct_optim_kind kind;
    ct_sgd_config sgd;
    ct_adam_config adam;
} pcase;

/* the hyper-parameters of tests/gen_golden_optim.py's CASES */
static const pcase PARITY[] = {
    {"adam", CT_OPTIM_ADAM,
     .adam = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01}},
    {"adamw", CT_OPTIM_ADAMW,
     .adam = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.1}},
    {"sgd", CT_OPTIM_SGD, .sgd = {.lr = 0.1}},
    {"sgd_momentum", CT_OPTIM_SGD, .sgd = {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01}},
    {"sgd_dampening", CT_OPTIM_SGD, .sgd = {.lr = 0.1, .momentum = 0.9, .dampening = 0.5}},
    {"sgd_nesterov", CT_OPTIM_SGD,
     .sgd = {.lr = 0.1, .momentum = 0.9, .nesterov = true, .weight_decay = 0.01}},
};

static ct_optim *make_opt(const pcase *c, ct_module *root) {
    switch (c->kind) {
    case CT_OPTIM_SGD: return ct_sgd_new(root, c->sgd);
    case CT_OPTIM_ADAM: return ct_adam_new(root, c->adam);
    case CT_OPTIM_ADAMW: return ct_adamw_new(root, c->adam);
    }
    return NULL;
}

START_TEST(test_pytorch_parity) {
    const pcase *c = &PARITY[_i];
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    char path[128];
    snprintf(path, sizeof path, "fixtures/optim/%s.npz", c->name);
    ct_npz *z = ct_npz_open(ctx, path);
    ck_assert_msg(z != NULL, "%s", ct_ctx_error(ctx));
    model m = model_new(ctx);
    model_load(&m, z, 0);
    ct_tensor *x = ct_npz_get(z, "x"), *proj = ct_npz_get(z, "proj");
    ct_tensor *norms = ct_npz_get(z, "norm"), *losses = ct_npz_get(z, "loss");
    ct_optim *opt = make_opt(c, m.root);
    ck_assert_msg(opt != NULL, "%s", ct_ctx_error(ctx));
    for (int k = 1; k <= 5; k++) {
        ct_scope_begin(ctx);
        ct_optim_zero_grad(opt);
        ct_tensor *loss = model_loss(&m, x, proj);
        double lv = ct_item(loss), lw = ct_data_f32(losses)[k - 1];
        ck_assert_msg(fabs(lv - lw) <= 1e-4 * fabs(lw) + 1e-5, "%s loss %d: %g vs %g", c->name, k, lv, lw);
        ck_assert_int_eq(ct_backward(loss), CT_OK);
        double norm;
        ck_assert_int_eq(ct_clip_grad_norm(m.root, 1.0f, &norm), CT_OK);
        double nw = ct_data_f32(norms)[k - 1];
        ck_assert_msg(fabs(norm - nw) <= 1e-4 * nw, "%s norm %d: %g vs %g", c->name, k, norm, nw);
        ck_assert_int_eq(ct_optim_step(opt), CT_OK);
        char key[32];
        snprintf(key, sizeof key, "w1_%d", k);
        assert_rel(m.w1, ct_npz_get(z, key), "w1", k);
        snprintf(key, sizeof key, "w2_%d", k);
        assert_rel(m.w2, ct_npz_get(z, key), "w2", k);
        snprintf(key, sizeof key, "bias_%d", k);
        assert_rel(m.bias, ct_npz_get(z, key), "head.bias", k);
        ct_scope_end(ctx);
    }
    ck_assert_int_eq(ct_optim_get_step(opt), 5);
    ck_assert_int_eq(errs.count, 0);
    ct_optim_free(opt);
    ct_npz_close(z);
    ct_module_free(m.root);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- hand-computed updates ----------------------------------------------------------------------- */
/* A root with one parameter p [n]; the gradient is set directly in the flat block. */
static ct_module *one_param(ct_ctx *ctx, const float *init, int64_t n, ct_tensor **p) {
    ct_module *root = ct_module_new(ctx, "Model", 0);
    *p = ct_module_add_param(root, "p", 1, &n);
    ct_scope_begin(ctx);
    ck_assert_int_eq(ct_inplace_copy(*p, ct_from_f32(ctx, init, 1, &n)), CT_OK);
    ct_scope_end(ctx);
    return root;
}

static void set_grad(ct_module *root, const float *g) {
    ct_tensor *fg = ct_module_flat_grads(root);
    ck_assert_ptr_nonnull(fg);
    memcpy(ct_data_f32(fg), g, sizeof(float) * (size_t)ct_numel(fg));
}

static void assert_p(const ct_tensor *p, double want, double tol) {
    ck_assert_msg(fabs(ct_data_f32(p)[0] - want) <= tol, "p = %.9g, expected %.9g",
                  (double)ct_data_f32(p)[0], want);
}

START_TEST(test_sgd_hand) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_tensor *p;
    /* plain: p - lr g */
    ct_module *root = one_param(ctx, (float[]){1.0f}, 1, &p);
    ct_optim *o = ct_sgd_new(root, (ct_sgd_config){.lr = 0.1});
    ck_assert_str_eq(ct_optim_name(o), "SGD");
    ck_assert_int_eq(ct_optim_state_count(o), 0);
    set_grad(root, (float[]){0.5f});
    ck_assert_int_eq(ct_optim_step(o), CT_OK);
    assert_p(p, 0.95, 1e-7);
    ct_optim_free(o);
    ct_module_free(root);

    /* nesterov with weight decay, by hand:
     * step 1: d = 0.5 + 0.1*1 = 0.6, b = 0.6, u = 0.6 + 0.9*0.6 = 1.14, p = 1 - 0.114 = 0.886
     * step 2: d = 0.5 + 0.1*0.886 = 0.5886, b = 0.9*0.6 + 0.5886 = 1.1286,
     *         u = 0.5886 + 0.9*1.1286 = 1.60434, p = 0.886 - 0.160434 = 0.725566 */
    root = one_param(ctx, (float[]){1.0f}, 1, &p);
    o = ct_sgd_new(root, (ct_sgd_config){.lr = 0.1, .momentum = 0.9, .weight_decay = 0.1,
                                         .nesterov = true});
    ck_assert_int_eq(ct_optim_state_count(o), 1);
    ck_assert_str_eq(ct_optim_state_name(o, 0), "momentum_buffer");
    set_grad(root, (float[]){0.5f});
    ck_assert_int_eq(ct_optim_step(o), CT_OK);
    assert_p(p, 0.886, 1e-6);
    ck_assert_int_eq(ct_optim_step(o), CT_OK);
    assert_p(p, 0.725566, 1e-6);
    float buf;
    ck_assert_int_eq(ct_optim_get_state(o, 0, &buf, 1), CT_OK);
    ck_assert_msg(fabs(buf - 1.1286) < 1e-6, "buffer %g", (double)buf);
    ct_optim_free(o);
    ct_module_free(root);

    /* dampening: step 1 b = g (no dampening on the first step, as torch); step 2
     * b = 0.9*0.5 + 0.5*0.5 = 0.7; p = 1 - 0.05 - 0.07 = 0.88 */
    root = one_param(ctx, (float[]){1.0f}, 1, &p);
    o = ct_sgd_new(root, (ct_sgd_config){.lr = 0.1, .momentum = 0.9, .dampening = 0.5});
    set_grad(root, (float[]){0.5f});
    ct_optim_step(o);
    assert_p(p, 0.95, 1e-7);
    ct_optim_step(o);
    assert_p(p, 0.88, 1e-6);
    ct_optim_free(o);
    ct_module_free(root);
    ct_ctx_free(ctx);
}
END_TEST

/* Adam in double, straight from the formulas, for n steps of a constant gradient. */
static double adam_ref(double p, double g0, double lr, double b1, double b2, double eps,
                       double wd, bool decoupled, int steps) {
    double m = 0, v = 0;
    for (int t = 1; t <= steps; t++) {
        if (decoupled) p *= 1 - lr * wd;
        double g = decoupled ? g0 : g0 + wd * p;
        m = b1 * m + (1 - b1) * g;
        v = b2 * v + (1 - b2) * g * g;
        double mh = m / (1 - pow(b1, t)), vh = v / (1 - pow(b2, t));
        p -= lr * mh / (sqrt(vh) + eps);
    }
    return p;
}

START_TEST(test_adam_hand) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_tensor *p;
    /* a constant gradient: m_hat / sqrt(v_hat) = 1, so each step moves p by lr */
    ct_module *root = one_param(ctx, (float[]){1.0f}, 1, &p);
    ct_optim *o = ct_adam_new(root, ct_adam_defaults(0.1));
    ck_assert_str_eq(ct_optim_name(o), "Adam");
    ck_assert_int_eq(ct_optim_state_count(o), 2);
    ck_assert_str_eq(ct_optim_state_name(o, 0), "exp_avg");
    ck_assert_str_eq(ct_optim_state_name(o, 1), "exp_avg_sq");
    ck_assert_ptr_null(ct_optim_state_name(o, 2));
    set_grad(root, (float[]){0.5f});
    ct_optim_step(o);
    assert_p(p, 0.9, 1e-6);
    ct_optim_step(o);
    assert_p(p, 0.8, 1e-6);
    float m, v;
    ct_optim_get_state(o, 0, &m, 1);
    ct_optim_get_state(o, 1, &v, 1);
    ck_assert_msg(fabs(m - 0.095) < 1e-7 && fabs(v - 0.00049975) < 1e-9, "m %g v %g", m, v);
    ct_optim_free(o);
    ct_module_free(root);

    /* AdamW, decoupled decay 0.5: p = 1*0.95 - 0.1 = 0.85, then 0.85*0.95 - 0.1 = 0.7075 */
    root = one_param(ctx, (float[]){1.0f}, 1, &p);
    ct_adam_config c = ct_adamw_defaults(0.1);
    ck_assert(c.weight_decay == 1e-2);
    c.weight_decay = 0.5;
    o = ct_adamw_new(root, c);
    ck_assert_str_eq(ct_optim_name(o), "AdamW");
    set_grad(root, (float[]){0.5f});
    ct_optim_step(o);
    assert_p(p, 0.85, 1e-6);
    ct_optim_step(o);
    assert_p(p, 0.7075, 1e-6);
    ct_optim_free(o);
    ct_module_free(root);

    /* Adam with L2 weight decay: step 1 g = 0.5 + 0.5*1 = 1 -> p = 0.9; later steps against
     * the formulas in double */
    root = one_param(ctx, (float[]){1.0f, -2.0f, 0.0f}, 3, &p);
    c = ct_adam_defaults(0.05);
    c.weight_decay = 0.5;
    c.beta1 = 0.8;
    o = ct_adam_new(root, c);
    set_grad(root, (float[]){0.5f, 0.25f, -1e-3f});
    for (int t = 1; t <= 7; t++) {
        ct_optim_step(o);
        for (int i = 0; i < 3; i++) {
            double p0 = (double[]){1, -2, 0}[i], g = (double[]){0.5, 0.25, -1e-3}[i];
            double want = adam_ref(p0, (float)g, 0.05, 0.8, 0.999, 1e-8, 0.5, false, t);
            ck_assert_msg(fabs(ct_data_f32(p)[i] - want) < 2e-6, "step %d p[%d] %.9g want %.9g",
                          t, i, (double)ct_data_f32(p)[i], want);
        }
    }
    ct_optim_free(o);
    ct_module_free(root);

    /* AdamW against the formulas, and a long (SSE body + tail) array gives the same per element */
    enum { N = 19 };
    float init[N], g[N];
    for (int i = 0; i < N; i++) {
        init[i] = (float)(i - 9) * 0.125f;
        g[i] = (float)((i * 7) % 5 - 2) * 0.3f + 0.01f;
    }
    root = one_param(ctx, init, N, &p);
    c = ct_adamw_defaults(0.01);
    o = ct_adamw_new(root, c);
    set_grad(root, g);
    for (int t = 1; t <= 5; t++) ct_optim_step(o);
    for (int i = 0; i < N; i++) {
        double want = adam_ref(init[i], g[i], 0.01, 0.9, 0.999, 1e-8, 1e-2, true, 5);
        ck_assert_msg(fabs(ct_data_f32(p)[i] - want) < 1e-6, "p[%d] %.9g want %.9g", i,
                      (double)ct_data_f32(p)[i], want);
    }
    /* the same element alone (the scalar path) gives the same bits as inside the long array,
     * from its SSE body (element 3) and from its scalar tail (element 18) */
    for (int k = 0; k < 2; k++) {
        int i = k ? 18 : 3;
        ct_tensor *q;
        ct_module *r2 = one_param(ctx, &init[i], 1, &q);
        ct_optim *o2 = ct_adamw_new(r2, c);
        set_grad(r2, &g[i]);
        for (int t = 1; t <= 5; t++) ct_optim_step(o2);
        ck_assert_msg(memcmp(ct_data_f32(q), ct_data_f32(p) + i, 4) == 0, "element %d", i);
        ct_optim_free(o2);
        ct_module_free(r2);
    }
    ct_optim_free(o);
    ct_module_free(root);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_optim_errors) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *p;
    ct_module *root = one_param(ctx, (float[]){1.0f}, 1, &p);
    ck_assert_ptr_null(ct_sgd_new(root, (ct_sgd_config){.lr = -1}));
    assert_msg_has(&errs, "lr must be finite and >= 0");
    ck_assert_ptr_null(ct_sgd_new(root, (ct_sgd_config){.lr = 0.1, .nesterov = true}));
    assert_msg_has(&errs, "nesterov needs momentum > 0 and dampening 0");
    ck_assert_ptr_null(ct_sgd_new(root, (ct_sgd_config){.lr = 0.1, .momentum = 0.9,
                                                         .dampening = 0.1, .nesterov = true}));
    ck_assert_ptr_null(ct_sgd_new(root, (ct_sgd_config){.lr = NAN}));
    ct_adam_config c = ct_adam_defaults(1e-3);
    c.beta2 = 1.0;
    ck_assert_ptr_null(ct_adam_new(root, c));
    assert_msg_has(&errs, "beta2 must lie in [0, 1)");
    c = ct_adamw_defaults(1e-3);
    c.eps = -1;
    ck_assert_ptr_null(ct_adamw_new(root, c));
    assert_msg_has(&errs, "adamw_new: eps must be finite");
    /* a child module is refused */
    ct_module *child = ct_module_new(ctx, "Child", 0);
    ct_module_add_param(child, "w", CT_SHAPE(2));
    ck_assert_int_eq(ct_module_add_child(root, "child", child), CT_OK);
    ck_assert_ptr_null(ct_adam_new(child, ct_adam_defaults(0.1)));
    assert_msg_has(&errs, "is a child; give the optimizer the root module");
    ck_assert_ptr_null(ct_sgd_new(NULL, (ct_sgd_config){.lr = 0.1}));

    ct_optim *o = ct_sgd_new(root, (ct_sgd_config){.lr = 0.1, .momentum = 0.5});
    ck_assert_ptr_nonnull(o);
    ck_assert_ptr_eq(ct_optim_module(o), root);
    ck_assert_int_eq(ct_optim_set_lr(o, -0.5), CT_E_ARG);
    assert_msg_has(&errs, "learning rate -0.5 must be finite and >= 0");
    ck_assert(ct_optim_get_lr(o) == 0.1);
    ck_assert_int_eq(ct_optim_set_lr(o, 0.25), CT_OK);
    ck_assert(ct_optim_get_lr(o) == 0.25);
    ck_assert_int_eq(ct_optim_set_step(o, -1), CT_E_ARG);
    float buf[3];
    ck_assert_int_eq(ct_optim_get_state(o, 1, buf, 3), CT_E_ARG);
    assert_msg_has(&errs, "state array 1 does not exist");
    ck_assert_int_eq(ct_optim_set_state(o, 0, buf, 2), CT_E_ARG);
    assert_msg_has(&errs, "the buffer has 2 floats; the state array 'momentum_buffer' has 3");
    ck_assert_int_eq(ct_optim_state_size(o), 3);
    /* adding a parameter after the optimizer was made */
    ct_module_add_param(root, "late", CT_SHAPE(4));
    ck_assert_int_eq(ct_optim_step(o), CT_E_STATE);
    assert_msg_has(&errs, "made for 3 parameters, the module now has 7");
    ct_optim_free(o);
    ct_optim_free(NULL);
    ck_assert_int_eq(ct_optim_step(NULL), CT_E_NULL);
    ck_assert(isnan(ct_optim_get_lr(NULL)));
    ct_module_free(root);
    ct_ctx_free(ctx);
}
END_TEST

/* The module is re-flattened (a child with no parameters added): the optimizer follows. */
START_TEST(test_optim_reflatten) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_tensor *p;
    ct_module *root = one_param(ctx, (float[]){1.0f, 2.0f}, 2, &p);
    ct_optim *o = ct_sgd_new(root, (ct_sgd_config){.lr = 0.5});
    ck_assert_int_eq(ct_module_add_child(root, "empty", ct_module_new(ctx, "Empty", 0)), CT_OK);
    ck_assert_ptr_null(root->flat_params);
    ct_scope_begin(ctx);
    ck_assert_int_eq(ct_backward(ct_sum_all(ct_mul_scalar(p, 2.0f))), CT_OK);
    ct_scope_end(ctx);
    ck_assert_int_eq(ct_optim_step(o), CT_OK);
    tu_assert_close(p, ((float[]){0.0f, 1.0f}), 0, 0);
    ct_optim_zero_grad(o);
    tu_assert_close(ct_grad(p), ((float[]){0, 0}), 0, 0);
    ct_optim_free(o);
    ct_module_free(root);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- schedules -------------------------------------------------------------------------------- */
START_TEST(test_schedules) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_npz *z = ct_npz_open(ctx, "fixtures/optim/schedules.npz");
    ck_assert_ptr_nonnull(z);
    ct_tensor *st = ct_npz_get(z, "step_lr"), *ex = ct_npz_get(z, "exp_lr"), *co = ct_npz_get(z, "cos_lr");
    ct_lr_schedule s1 = ct_lr_step(3, 0.5f), s2 = ct_lr_exponential(0.9f),
                   s3 = ct_lr_warmup_cosine(3, 10, 0.01f);
    for (int e = 0; e < 12; e++) {
        double a = ct_lr_at(&s1, e, 0.1f), b = ct_lr_at(&s2, e, 0.1f), c = ct_lr_at(&s3, e, 0.1f);
        ck_assert_msg(fabs(a - ct_data_f32(st)[e]) <= 1e-6 * a, "StepLR %d: %g", e, a);
        ck_assert_msg(fabs(b - ct_data_f32(ex)[e]) <= 1e-6 * b, "ExponentialLR %d: %g", e, b);
        ck_assert_msg(fabs(c - ct_data_f32(co)[e]) <= 1e-6 * c, "warm-up cosine %d: %g", e, c);
    }
    ct_npz_close(z);
    /* by hand */
    ck_assert_float_eq(ct_lr_at(&s1, 5, 1.0f), 0.5f);
    ck_assert_float_eq(ct_lr_at(&s1, 6, 1.0f), 0.25f);
    ck_assert_float_eq(ct_lr_at(&s1, -4, 1.0f), 1.0f);          /* negative steps count as 0 */
    ck_assert(fabs(ct_lr_at(&s2, 2, 1.0f) - 0.81) < 1e-7);
    ct_lr_schedule w = ct_lr_warmup_cosine(4, 104, 0.0f);
    ck_assert_float_eq(ct_lr_at(&w, 0, 1.0f), 0.25f);           /* (0+1)/4 */
    ck_assert_float_eq(ct_lr_at(&w, 3, 1.0f), 1.0f);
    ck_assert_float_eq(ct_lr_at(&w, 4, 1.0f), 1.0f);            /* cosine starts at the top */
    ck_assert(fabs(ct_lr_at(&w, 54, 1.0f) - 0.5) < 1e-6);       /* half way */
    ck_assert(fabs(ct_lr_at(&w, 104 - 1, 1.0f)) < 3e-4);
    ck_assert_float_eq(ct_lr_at(&w, 104, 1.0f), 0.0f);
    ck_assert_float_eq(ct_lr_at(&w, 1000, 1.0f), 0.0f);
    ct_lr_schedule nw = ct_lr_warmup_cosine(0, 10, 0.1f);       /* no warm-up */
    ck_assert_float_eq(ct_lr_at(&nw, 0, 1.0f), 1.0f);
    ck_assert(fabs(ct_lr_at(&nw, 5, 1.0f) - 0.55) < 1e-6);
    ct_lr_schedule bad = ct_lr_warmup_cosine(5, 3, 0.1f);       /* T <= W */
    ck_assert_float_eq(ct_lr_at(&bad, 4, 1.0f), 1.0f);
    ck_assert_float_eq(ct_lr_at(&bad, 5, 1.0f), 0.1f);
    ct_lr_schedule z0 = ct_lr_step(0, 0.5f);                     /* step_size < 1 counts as 1 */
    ck_assert_float_eq(ct_lr_at(&z0, 2, 1.0f), 0.25f);
    ct_lr_schedule cst = {0};
    ck_assert_float_eq(ct_lr_at(&cst, 99, 0.3f), 0.3f);
    ck_assert_float_eq(ct_lr_at(NULL, 99, 0.3f), 0.3f);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- clipping --------------------------------------------------------------------------------- */
START_TEST(test_clip_norm) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_module *root = ct_module_new(ctx, "Model", 0);
    ct_module *child = ct_module_new(ctx, "Child", 0);
    ct_tensor *a = ct_module_add_param(root, "a", CT_SHAPE(1));
    ct_tensor *b = ct_module_add_param(child, "b", CT_SHAPE(1));
    ct_module_add_child(root, "c", child);
    /* the norm covers every parameter of the tree: [3] and [4] -> 5 */
    set_grad(root, (float[]){3, 4});
    double norm = 0;
    ck_assert_int_eq(ct_clip_grad_norm(root, 10.0f, &norm), CT_OK);
    ck_assert(norm == 5.0);
    tu_assert_close(ct_grad(a), ((float[]){3}), 0, 0);            /* not clipped */
    ck_assert_int_eq(ct_clip_grad_norm(root, 1.0f, &norm), CT_OK);
    ck_assert(norm == 5.0);
    float coef = (float)(1.0 / (5.0 + 1e-6));
    tu_assert_close(ct_grad(a), ((float[]){3 * coef}), 0, 1e-7);
    tu_assert_close(ct_grad(b), ((float[]){4 * coef}), 0, 1e-7);
    ck_assert_int_eq(ct_clip_grad_norm(root, 1.0f, NULL), CT_OK);  /* norm ~1: (almost) no change */
    tu_assert_close(ct_grad(b), ((float[]){0.8f}), 0, 1e-5);
    /* a larger block: norm in double over many elements */
    /* nan and inf: CT_E_STATE, gradients untouched */
    set_grad(root, (float[]){NAN, 1});
    ck_assert_int_eq(ct_clip_grad_norm(root, 1.0f, &norm), CT_E_STATE);
    ck_assert(isnan(norm));
    assert_msg_has(&errs, "clip_grad_norm: gradient norm is nan");
    assert_msg_has(&errs, "skip this step");
    ck_assert(isnan(ct_data_f32(ct_grad(a))[0]));
    ck_assert_float_eq(ct_data_f32(ct_grad(b))[0], 1.0f);
    set_grad(root, (float[]){INFINITY, 1});
    ck_assert_int_eq(ct_clip_grad_norm(root, 1.0f, &norm), CT_E_STATE);
    ck_assert(isinf(norm));
    assert_msg_has(&errs, "gradient norm is inf");
    ck_assert_float_eq(ct_data_f32(ct_grad(b))[0], 1.0f);
    /* huge but finite gradients: squares summed in double do not overflow */
    set_grad(root, (float[]){3e30f, 4e30f});
    ck_assert_int_eq(ct_clip_grad_norm(root, 1.0f, &norm), CT_OK);
    ck_assert(fabs(norm / 5e30 - 1) < 1e-6);
    tu_assert_close(ct_grad(b), ((float[]){0.8f}), 0, 1e-5);
    /* bad arguments */
    ck_assert_int_eq(ct_clip_grad_norm(root, 0.0f, &norm), CT_E_ARG);
    assert_msg_has(&errs, "max_norm 0 must be finite and > 0");
    ck_assert_int_eq(ct_clip_grad_norm(child, 1.0f, &norm), CT_E_ARG);
    assert_msg_has(&errs, "is a child module; pass the root");
    ck_assert_int_eq(ct_clip_grad_norm(NULL, 1.0f, &norm), CT_E_NULL);
    /* the result matches a sum in double over a long block */
    ct_module *big = ct_module_new(ctx, "Big", 0);
    ct_module_add_param(big, "w", CT_SHAPE(1001));
    ct_tensor *fg = ct_module_flat_grads(big);
    double want = 0;
    for (int i = 0; i < 1001; i++) {
        ct_data_f32(fg)[i] = (float)(i % 13) * 0.01f - 0.06f;
        want += (double)ct_data_f32(fg)[i] * ct_data_f32(fg)[i];
    }
    ck_assert_int_eq(ct_clip_grad_norm(big, 100.0f, &norm), CT_OK);
    ck_assert(fabs(norm - sqrt(want)) < 1e-12);
    ct_module_free(big);
    ct_module_free(root);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_clip_value) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *p;
    ct_module *root = one_param(ctx, (float[]){0, 0, 0, 0, 0}, 5, &p);
    set_grad(root, (float[]){-3, 0.5f, 2, -0.25f, NAN});
    ck_assert_int_eq(ct_clip_grad_value(root, 1.0f), CT_OK);
    float *g = ct_data_f32(ct_grad(p));
    ck_assert(g[0] == -1 && g[1] == 0.5f && g[2] == 1 && g[3] == -0.25f && isnan(g[4]));
    ck_assert_int_eq(ct_clip_grad_value(root, -1.0f), CT_E_ARG);
    assert_msg_has(&errs, "clip_grad_value: clip -1 must be finite and >= 0");
    ck_assert_int_eq(ct_clip_grad_value(NULL, 1.0f), CT_E_NULL);
    ct_module_free(root);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- gradient hooks with the flat block --------------------------------------------------------- */
static ct_tensor *halve(ct_tensor *g, void *ud) {
    (*(int *)ud)++;
    return ct_mul_scalar(g, 0.5f);
}

START_TEST(test_hooks_flat) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_npz *z = ct_npz_open(ctx, "fixtures/optim/sgd.npz");
    ct_tensor *x = ct_npz_get(z, "x"), *proj = ct_npz_get(z, "proj");
    /* reference gradients without hooks */
    model r = model_new(ctx);
    model_load(&r, z, 0);
    ct_scope_begin(ctx);
    ck_assert_int_eq(ct_backward(model_loss(&r, x, proj)), CT_OK);
    ct_scope_end(ctx);
    /* a hook on w1 before flattening, one on bias after (ct_sgd_new flattens) */
    model m = model_new(ctx);
    model_load(&m, z, 0);
    int calls = 0;
    ck_assert_int_eq(ct_register_hook(m.w1, halve, &calls), CT_OK);
    ct_optim *o = ct_sgd_new(m.root, (ct_sgd_config){.lr = 1.0});
    ck_assert_ptr_nonnull(m.root->flat_grads);
    ck_assert_int_eq(ct_register_hook(m.bias, halve, &calls), CT_OK);
    ct_scope_begin(ctx);
    ck_assert_int_eq(ct_backward(model_loss(&m, x, proj)), CT_OK);
    ct_scope_end(ctx);
    ck_assert_int_eq(calls, 2);
    /* the hooked gradients landed in the flat block (w1 first, then w2, then head.bias) */
    ct_tensor *fg = ct_module_flat_grads(m.root);
    ck_assert_ptr_eq(ct_grad(m.w1)->storage, fg->storage);
    const float *f = ct_data_f32(fg), *g1 = ct_data_f32(ct_grad(r.w1)),
                *g2 = ct_data_f32(ct_grad(r.w2)), *gb = ct_data_f32(ct_grad(r.bias));
    for (int i = 0; i < 12; i++) ck_assert_float_eq(f[i], 0.5f * g1[i]);
    for (int i = 0; i < 8; i++) ck_assert_float_eq(f[12 + i], g2[i]);
    for (int i = 0; i < 2; i++) ck_assert_float_eq(f[20 + i], 0.5f * gb[i]);
    /* and the optimizer uses them: p = p0 - 1.0 * g */
    float w1_0[12];
    memcpy(w1_0, ct_data_f32(m.w1), sizeof w1_0);
    ck_assert_int_eq(ct_optim_step(o), CT_OK);
    for (int i = 0; i < 12; i++) ck_assert_float_eq(ct_data_f32(m.w1)[i], w1_0[i] - 0.5f * g1[i]);
    /* a second backward accumulates through the hook into the same block */
    ct_optim_zero_grad(o);
    ct_scope_begin(ctx);
    ck_assert_int_eq(ct_backward(ct_sum_all(ct_mul_scalar(m.bias, 4.0f))), CT_OK);
    ct_scope_end(ctx);
    tu_assert_close(ct_grad(m.bias), ((float[]){2, 2}), 0, 0);
    ck_assert_float_eq(ct_data_f32(fg)[20], 2.0f);
    ct_optim_free(o);
    ct_npz_close(z);
    ct_module_free(m.root);
    ct_module_free(r.root);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- optimizer state: save, restore into a fresh optimizer, continue bit for bit ----------------- */
static void train_steps(model *m, ct_optim *o, ct_tensor *x, ct_tensor *proj, int n) {
    ct_ctx *ctx = m->root->ctx;
    for (int k = 0; k < n; k++) {
        ct_scope_begin(ctx);
        ct_optim_zero_grad(o);
        ck_assert_int_eq(ct_backward(model_loss(m, x, proj)), CT_OK);
        ck_assert_int_eq(ct_clip_grad_norm(m->root, 1.0f, NULL), CT_OK);
        ck_assert_int_eq(ct_optim_step(o), CT_OK);
        ct_scope_end(ctx);
    }
}

START_TEST(test_state_restore_bitexact) {
    const pcase *c = &PARITY[_i];
    ct_ctx *ctx = tu_ctx(NULL);
    ct_npz *z = ct_npz_open(ctx, "fixtures/optim/adam.npz");
    ct_tensor *x = ct_npz_get(z, "x"), *proj = ct_npz_get(z, "proj");
    /* uninterrupted: 7 steps */
    model a = model_new(ctx);
    model_load(&a, z, 0);
    ct_optim *oa = make_opt(c, a.root);
    train_steps(&a, oa, x, proj, 7);
    /* interrupted: 3 steps, copy everything out, a fresh model and optimizer, 4 more */
    model b = model_new(ctx);
    model_load(&b, z, 0);
    ct_optim *ob = make_opt(c, b.root);
    train_steps(&b, ob, x, proj, 3);
    int S = ct_optim_state_count(ob);
    int64_t P = ct_optim_state_size(ob);
    ck_assert_int_eq(P, 22);
    float *saved = malloc(sizeof(float) * (size_t)(S * P + P));
    for (int i = 0; i < S; i++) ck_assert_int_eq(ct_optim_get_state(ob, i, saved + i * P, P), CT_OK);
    memcpy(saved + S * P, ct_data_f32(ct_module_flat_params(b.root)), sizeof(float) * (size_t)P);
    int64_t step = ct_optim_get_step(ob);
    ct_optim_free(ob);
    ct_module_free(b.root);

    model r = model_new(ctx);
    ct_optim *or_ = make_opt(c, r.root);
    memcpy(ct_data_f32(ct_module_flat_params(r.root)), saved + S * P, sizeof(float) * (size_t)P);
    for (int i = 0; i < S; i++) ck_assert_int_eq(ct_optim_set_state(or_, i, saved + i * P, P), CT_OK);
    ck_assert_int_eq(ct_optim_set_step(or_, step), CT_OK);
    train_steps(&r, or_, x, proj, 4);
    ck_assert_msg(memcmp(ct_data_f32(ct_module_flat_params(r.root)),
                         ct_data_f32(ct_module_flat_params(a.root)), sizeof(float) * (size_t)P) == 0,
                  "%s: the resumed run differs from the uninterrupted one", c->name);
    for (int i = 0; i < S; i++) {
        float sa[22], sr[22];
        ct_optim_get_state(oa, i, sa, P);
        ct_optim_get_state(or_, i, sr, P);
        ck_assert(memcmp(sa, sr, sizeof sa) == 0);
    }
    /* without restoring the state, the run differs (the test can fail) */
    if (S > 0) {
        model d = model_new(ctx);
        ct_optim *od = make_opt(c, d.root);
        memcpy(ct_data_f32(ct_module_flat_params(d.root)), saved + S * P, sizeof(float) * (size_t)P);
        train_steps(&d, od, x, proj, 4);
        ck_assert(memcmp(ct_data_f32(ct_module_flat_params(d.root)),
                         ct_data_f32(ct_module_flat_params(a.root)), sizeof(float) * (size_t)P) != 0);
        ct_optim_free(od);
        ct_module_free(d.root);
    }
    free(saved);
    ct_optim_free(oa);
    ct_optim_free(or_);
    ct_module_free(a.root);
    ct_module_free(r.root);
    ct_npz_close(z);
    ct_ctx_free(ctx);
}
END_TEST

/* A training step allocates no tensors once warm, and the optimizer frees what it made. */
START_TEST(test_optim_memory) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_npz *z = ct_npz_open(ctx, "fixtures/optim/adam.npz");
    ct_scope_begin(ctx);
    ct_tensor *x = ct_npz_get(z, "x"), *proj = ct_npz_get(z, "proj");
    ct_npz_close(z);
    model m = model_new(ctx);
    ct_optim *o = ct_adamw_new(m.root, ct_adamw_defaults(1e-3));
    train_steps(&m, o, x, proj, 2);
    ct_mem_stats s0 = ct_ctx_mem_stats(ctx);
    train_steps(&m, o, x, proj, 50);
    ct_mem_stats s1 = ct_ctx_mem_stats(ctx);
    ck_assert_int_eq(s1.live_tensors, s0.live_tensors);
    ck_assert_int_eq(s1.live_bytes, s0.live_bytes);
    ct_optim_free(o);
    ct_module_free(m.root);
    ct_scope_end(ctx);
    ck_assert_int_eq(ct_ctx_mem_stats(ctx).live_tensors, 0);
    ck_assert_int_eq(ct_ctx_mem_stats(ctx).live_storages, 0);
    ct_ctx_free(ctx);
}
END_TEST

Suite *optim_suite(void) {
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("core");
    int n = (int)(sizeof PARITY / sizeof PARITY[0]);
    tcase_add_loop_test(tc, test_pytorch_parity, 0, n);
    tcase_add_test(tc, test_sgd_hand);
    tcase_add_test(tc, test_adam_hand);
    tcase_add_test(tc, test_optim_errors);
    tcase_add_test(tc, test_optim_reflatten);
    tcase_add_test(tc, test_schedules);
    tcase_add_test(tc, test_clip_norm);
    tcase_add_test(tc, test_clip_value);
    tcase_add_test(tc, test_hooks_flat);
    tcase_add_loop_test(tc, test_state_restore_bitexact, 0, n);
    tcase_add_test(tc, test_optim_memory);
    suite_add_tcase(s, tc);
    return s;
}
