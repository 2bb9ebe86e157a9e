/* tests/engine/test_module.c — module tree, hierarchical names, the flat parameter block,
 * deep copies (ct_module_clone). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "engine/layers.h"
#include "engine/nn.h"
#include "engine/rnn.h"
#include "testutil.h"

START_TEST(test_tree_and_names) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_module *root = ct_module_new(ctx, "Model", 0);
    ct_module *rnn = ct_module_new(ctx, "RNN", 0), *out = ct_module_new(ctx, "Linear", 0);
    ck_assert_ptr_nonnull(ct_module_add_param(rnn, "weight_ih_l0", CT_SHAPE(8, 3)));
    ck_assert_ptr_nonnull(ct_module_add_param(rnn, "bias_ih_l0", CT_SHAPE(8)));
    ck_assert_ptr_nonnull(ct_module_add_param(out, "weight", CT_SHAPE(5, 2)));
    ck_assert_ptr_nonnull(ct_module_add_param(out, "bias", CT_SHAPE(5)));
    ck_assert_int_eq(ct_module_add_child(root, "rnn", rnn), CT_OK);
    ck_assert_int_eq(ct_module_add_child(root, "out", out), CT_OK);
    ck_assert_int_eq(ct_module_param_count(root), 4);
    ck_assert_int_eq(ct_module_num_params(root), 24 + 8 + 10 + 5);
    char name[64];
    const char *want[] = {"rnn.weight_ih_l0", "rnn.bias_ih_l0", "out.weight", "out.bias"};
    for (int i = 0; i < 4; i++) {
        ck_assert_ptr_nonnull(ct_module_param_at(root, i, name, sizeof name));
        ck_assert_str_eq(name, want[i]);
    }
    ck_assert_ptr_null(ct_module_param_at(root, 4, name, sizeof name));
    ck_assert_ptr_eq(ct_module_param(root, "out.bias"), ct_module_param_at(root, 3, NULL, 0));
    ck_assert_ptr_null(ct_module_param(root, "out.nope"));
    ck_assert_ptr_eq(ct_module_child(root, "rnn"), rnn);
    ck_assert_ptr_eq(ct_module_root(out), root);
    ck_assert(ct_requires_grad(ct_module_param(root, "out.weight")));
    /* train/eval reaches the whole tree */
    ct_module_train(root, false);
    ck_assert(!out->training);
    /* errors */
    ct_module *extra = ct_module_new(ctx, "X", 0);
    ck_assert_int_eq(ct_module_add_child(root, "rnn", extra), CT_E_ARG);
    ct_module_free(extra);                 /* a refused child still belongs to the caller */
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "already has a child 'rnn'"));
    ck_assert_int_eq(ct_module_add_child(out, "again", rnn), CT_E_STATE);
    ck_assert_ptr_null(ct_module_add_param(out, "bias", CT_SHAPE(1)));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "already has a parameter 'bias'"));
    ck_assert_ptr_null(ct_module_add_param(out, "a.b", CT_SHAPE(1)));
    ck_assert_ptr_null(ct_module_forward(out, ct_zeros(ctx, CT_SHAPE(1)), NULL));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "has no single-input forward"));
    ct_module_free(root);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_flat_block) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_scope_begin(ctx);
    ct_module *root = ct_module_new(ctx, "Model", 0);
    ct_module *a = ct_module_new(ctx, "A", 0);
    ct_tensor *w = ct_module_add_param(a, "w", CT_SHAPE(2, 3));
    ct_tensor *b = ct_module_add_param(root, "b", CT_SHAPE(2));
    ct_module_add_child(root, "a", a);
    ct_inplace_copy(w, ct_from_f32(ctx, (float[]){1, 2, 3, 4, 5, 6}, CT_SHAPE(2, 3)));
    ct_inplace_fill(b, 9.0f);
    /* a gradient from before flattening is carried over */
    ck_assert_int_eq(ct_backward(ct_sum_all(ct_mul(b, b))), CT_OK);
    ck_assert_int_eq(ct_module_flatten(root), CT_OK);
    ct_tensor *fp = ct_module_flat_params(root), *fg = ct_module_flat_grads(root);
    ck_assert_int_eq(ct_numel(fp), 8);
    /* order: own params first (b), then children (a.w) */
    tu_assert_close(fp, ((float[]){9, 9, 1, 2, 3, 4, 5, 6}), 0, 0);
    tu_assert_close(fg, ((float[]){18, 18, 0, 0, 0, 0, 0, 0}), 0, 0);
    ck_assert_ptr_eq(w->storage, fp->storage);              /* same tensor, moved storage */
    ck_assert_ptr_eq(ct_grad(w)->storage, fg->storage);
    tu_assert_close(w, ((float[]){1, 2, 3, 4, 5, 6}), 0, 0);
    /* backward writes into the flat gradient block; zero_grad clears it in one go */
    ck_assert_int_eq(ct_backward(ct_sum_all(ct_mul_scalar(w, 2.0f))), CT_OK);
    tu_assert_close(fg, ((float[]){18, 18, 2, 2, 2, 2, 2, 2}), 0, 0);
    ct_module_zero_grad(root);
    tu_assert_close(fg, ((float[]){0, 0, 0, 0, 0, 0, 0, 0}), 0, 0);
    /* an update through the flat block is seen by the parameters */
    ct_inplace_add_scalar(fp, 1.0f);
    tu_assert_close(b, ((float[]){10, 10}), 0, 0);
    /* flattening a child is refused */
    ck_assert_int_eq(ct_module_flatten(a), CT_E_ARG);
    ct_module_free(root);
    ct_scope_end(ctx);
    ck_assert_int_eq(ct_ctx_mem_stats(ctx).live_storages, 0);
    ck_assert_int_eq(ct_ctx_mem_stats(ctx).live_tensors, 0);
    ct_ctx_free(ctx);
}
END_TEST


/* ---- ct_module_clone ------------------------------------------------------------------------------ */
/* Model: an own parameter "scale", children lin (Linear 3->4), rnn (LSTM 4->5, 2 layers), norm
 * (LayerNorm 5), drop (Dropout). */
static ct_module *clone_model(ct_ctx *ctx) {
    ct_rng rng;
    ct_rng_seed(&rng, 5);
    ct_module *root = ct_module_new(ctx, "Model", 0);
    ct_tensor *scale = ct_module_add_param(root, "scale", CT_SHAPE(5));
    ck_assert_int_eq(ct_inplace_fill(scale, 1.5f), CT_OK);
    ct_rnn_config rc = {.mode = CT_LSTM, .input_size = 4, .hidden_size = 5, .num_layers = 2, .bias = true};
    ck_assert_int_eq(ct_module_add_child(root, "lin", ct_linear_new(ctx, &rng, 3, 4, true)), CT_OK);
    ck_assert_int_eq(ct_module_add_child(root, "rnn", ct_rnn_new(ctx, &rng, &rc)), CT_OK);
    ck_assert_int_eq(ct_module_add_child(root, "norm", ct_layernorm_new(ctx, 5, 1e-5f, true)), CT_OK);
    ck_assert_int_eq(ct_module_add_child(root, "drop", ct_dropout_module_new(ctx, 0.25f)), CT_OK);
    ct_inplace_fill(ct_module_param(root, "norm.weight"), 0.75f);   /* not the default 1 */
    ct_inplace_fill(ct_module_param(root, "norm.bias"), -0.25f);
    return root;
}

/* sum of the model's output on x [T=3, B=2, 3] (eval-free: the Dropout child is not used) */
static ct_tensor *clone_model_loss(ct_module *m, ct_tensor *x) {
    ct_tensor *h = ct_linear_forward(ct_module_child(m, "lin"), x);
    ct_tensor *out = NULL;
    ck_assert_int_eq(ct_rnn_forward(ct_module_child(m, "rnn"), h, NULL, NULL, NULL, NULL, &out, NULL, NULL), CT_OK);
    ct_tensor *y = ct_layernorm_forward(ct_module_child(m, "norm"), out);
    y = ct_mul(y, ct_module_param(m, "scale"));
    return ct_sum_all(ct_mul(y, y));
}

static void assert_same_tree(const ct_module *a, const ct_module *b) {
    ck_assert_ptr_eq(a->kind, b->kind);
    ck_assert_str_eq(a->name, b->name);
    ck_assert_int_eq(a->training, b->training);
    ck_assert_ptr_eq((void *)a->forward, (void *)b->forward);
    ck_assert_int_eq(a->n_params, b->n_params);
    ck_assert_int_eq(a->n_children, b->n_children);
    ck_assert_int_eq((int64_t)a->impl_size, (int64_t)b->impl_size);
    for (int i = 0; i < a->n_params; i++) {
        ct_tensor *p = a->params[i], *q = b->params[i];
        ck_assert_str_eq(a->param_names[i], b->param_names[i]);
        ck_assert_ptr_ne(p, q);
        ck_assert_ptr_ne(p->storage, q->storage);                       /* storage of its own */
        ck_assert(ct_same_shape(p, q));
        ck_assert_int_eq(p->requires_grad, q->requires_grad);
        ck_assert_int_eq(memcmp(ct_data_f32(p), ct_data_f32(q), sizeof(float) * (size_t)ct_numel(p)), 0);
    }
    for (int c = 0; c < a->n_children; c++) {
        ck_assert_ptr_eq(b->children[c]->parent, b);
        assert_same_tree(a->children[c], b->children[c]);
    }
}

START_TEST(test_clone_flat) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_module *m = clone_model(ctx);
    ct_module_train(ct_module_child(m, "drop"), false);   /* flags are per module */
    ck_assert_int_eq(ct_module_flatten(m), CT_OK);
    ct_scope_begin(ctx);
    ct_tensor *x = TU_RAND(ctx, 11, -1, 1, 3, 2, 3);
    ck_assert_int_eq(ct_backward(clone_model_loss(m, x)), CT_OK);    /* the source has gradients */
    const int64_t P = ct_module_num_params(m);
    float *g_src = malloc(sizeof(float) * (size_t)P);
    memcpy(g_src, ct_data_f32(ct_module_flat_grads(m)), sizeof(float) * (size_t)P);
    double gmax = 0;
    for (int64_t i = 0; i < P; i++) gmax = fmax(gmax, fabs(g_src[i]));
    ck_assert(gmax > 0);

    ct_module *c = ct_module_clone(m, CT_DEVICE_CPU);
    ck_assert_msg(c != NULL, "%s", errs.last.msg);
    ck_assert_ptr_null(c->parent);
    assert_same_tree(m, c);
    ck_assert(!ct_module_child(c, "drop")->training && ct_module_child(c, "lin")->training);
    /* flat like its source: one block each, the same layout, gradients zero */
    ck_assert_ptr_nonnull(c->flat_params);
    ck_assert_ptr_nonnull(c->flat_grads);
    ck_assert_ptr_ne(c->flat_params->storage, m->flat_params->storage);
    ck_assert_int_eq(memcmp(ct_data_f32(c->flat_params), ct_data_f32(m->flat_params), sizeof(float) * (size_t)P), 0);
    for (int i = 0; i < ct_module_param_count(c); i++) {
        ct_tensor *p = ct_module_param_at(c, i, NULL, 0);
        ck_assert_ptr_eq(p->storage, c->flat_params->storage);
        ck_assert_ptr_eq(ct_grad(p)->storage, c->flat_grads->storage);
    }
    for (int64_t i = 0; i < P; i++) ck_assert(ct_data_f32(c->flat_grads)[i] == 0.0f);
    /* the same function, bit for bit */
    ct_tensor *l0 = clone_model_loss(m, x), *l1 = clone_model_loss(c, x);
    ck_assert(ct_item(l0) == ct_item(l1));
    /* gradients are independent: the clone's backward leaves the source's alone */
    ck_assert_int_eq(ct_backward(l1), CT_OK);
    ck_assert_int_eq(memcmp(g_src, ct_data_f32(ct_module_flat_grads(m)), sizeof(float) * (size_t)P), 0);
    ck_assert_int_eq(memcmp(g_src, ct_data_f32(c->flat_grads), sizeof(float) * (size_t)P), 0);
    /* storage is independent, and the layers' own pointers (Linear's weight, LayerNorm's weight
     * and bias in their impls) name the clone's parameters: changing the clone's changes only
     * the clone's output */
    ck_assert_int_eq(ct_inplace_fill(ct_module_param(c, "lin.weight"), 0.0f), CT_OK);
    ck_assert_int_eq(ct_inplace_fill(ct_module_param(c, "norm.bias"), 3.0f), CT_OK);
    ck_assert(ct_item(clone_model_loss(m, x)) == ct_item(l0));
    ct_tensor *lin_out = ct_contiguous(ct_linear_forward(ct_module_child(c, "lin"), x));   /* = the bias */
    const float *bias = ct_data_f32(ct_module_param(c, "lin.bias"));
    ck_assert_int_eq(ct_numel(lin_out), 3 * 2 * 4);
    for (int64_t i = 0; i < 3 * 2 * 4; i++) ck_assert(ct_data_f32(lin_out)[i] == bias[i % 4]);
    ct_tensor *y = ct_layernorm_forward(ct_module_child(c, "norm"), TU_RAND(ctx, 3, -1, 1, 2, 5));
    ck_assert(fabs(ct_item(ct_mean_all(y)) - 3.0) < 1e-5);   /* LayerNorm output averages its bias */
    /* a clone of a clone, and a clone of a child (a root of its own) */
    ct_module *cc = ct_module_clone(c, CT_DEVICE_CPU);
    assert_same_tree(c, cc);
    ct_module *lc = ct_module_clone(ct_module_child(m, "rnn"), CT_DEVICE_CPU);
    ck_assert_ptr_nonnull(lc);
    ck_assert_ptr_null(lc->parent);
    ck_assert_str_eq(lc->name, "");
    ck_assert_ptr_null(lc->flat_params);               /* a child is never flat */
    ck_assert_int_eq(ct_module_param_count(lc), 8);
    free(g_src);
    ct_scope_end(ctx);
    ct_module_free(lc);
    ct_module_free(cc);
    ct_module_free(c);
    ct_module_free(m);
    ck_assert_int_eq(ct_ctx_mem_stats(ctx).live_tensors, 0);
    ct_ctx_free(ctx);
}
END_TEST

/* Embedding's impl points at its weight too: the clone's must name the clone's weight, and a
 * LayerNorm without affine parameters stays without */
START_TEST(test_clone_layers_own_weights) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_rng rng;
    ct_rng_seed(&rng, 9);
    ct_module *e = ct_embedding_module_new(ctx, &rng, 5, 3);
    ct_module *c = ct_module_clone(e, CT_DEVICE_CPU);
    ck_assert_msg(c != NULL, "%s", errs.last.msg);
    ct_scope_begin(ctx);
    const int64_t idx[2] = {1, 4};
    ct_tensor *ix = ct_from_i64(ctx, idx, CT_SHAPE(2));
    ct_tensor *before = ct_contiguous(ct_embedding_module_forward(c, ix));
    ck_assert_int_eq(memcmp(ct_data_f32(before), ct_data_f32(ct_contiguous(ct_embedding_module_forward(e, ix))),
                            6 * sizeof(float)), 0);
    ck_assert_int_eq(ct_inplace_fill(ct_module_param(c, "weight"), 0.5f), CT_OK);
    const float *a = ct_data_f32(ct_contiguous(ct_embedding_module_forward(c, ix)));
    const float *b = ct_data_f32(ct_contiguous(ct_embedding_module_forward(e, ix)));
    for (int i = 0; i < 6; i++) {
        ck_assert(a[i] == 0.5f);
        ck_assert(b[i] == ct_data_f32(before)[i] && b[i] != 0.5f);
    }
    ct_module *n = ct_layernorm_new(ctx, 4, 1e-5f, false);
    ct_module *nc = ct_module_clone(n, CT_DEVICE_CPU);
    ck_assert_msg(nc != NULL, "%s", errs.last.msg);
    ck_assert_int_eq(ct_module_param_count(nc), 0);
    ct_tensor *x = TU_RAND(ctx, 4, -1, 1, 2, 4);
    ck_assert(ct_item(ct_sum_all(ct_layernorm_forward(nc, x))) == ct_item(ct_sum_all(ct_layernorm_forward(n, x))));
    ct_scope_end(ctx);
    ct_module_free(nc);
    ct_module_free(n);
    ct_module_free(c);
    ct_module_free(e);
    ck_assert_int_eq(ct_ctx_mem_stats(ctx).live_tensors, 0);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_clone_not_flat) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_module *m = clone_model(ctx);
    ct_tensor *frozen = ct_module_param(m, "scale");
    ct_set_requires_grad(frozen, false);
    ct_module *c = ct_module_clone(m, CT_DEVICE_CPU);
    ck_assert_ptr_nonnull(c);
    assert_same_tree(m, c);
    ck_assert_ptr_null(c->flat_params);
    ck_assert(!ct_requires_grad(ct_module_param(c, "scale")));
    for (int i = 0; i < ct_module_param_count(c); i++) ck_assert_ptr_null(ct_grad(ct_module_param_at(c, i, NULL, 0)));
    ct_module_free(c);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

/* a module whose impl holds pointers: to its own parameter and child and an owned buffer (all
 * handled by its hook) and a plain integer */
typedef struct ptr_impl { ct_tensor *w; ct_module *kid; float *buf; int64_t plain; int *hook_calls; } ptr_impl;
static void ptr_free(void *p) {
    ptr_impl *im = p;
    if (im) free(im->buf);
    free(im);
}
static ct_status ptr_clone(ct_module *dst, const ct_module *src) {
    ptr_impl *d = dst->impl;
    const ptr_impl *s = src->impl;
    (*d->hook_calls)++;
    ck_assert_ptr_eq(d->w, s->w);                /* a byte copy so far */
    ck_assert_ptr_eq(d->kid, s->kid);
    ck_assert_ptr_eq(d->buf, s->buf);
    d->w = ct_module_param(dst, "w");
    d->kid = ct_module_child(dst, "kid");
    if (s->plain == 666) {                       /* the failing hook: nothing allocated */
        d->buf = NULL;
        return ct_fail(dst->ctx, CT_E_FORMAT, "ptr_clone: refused");
    }
    d->buf = malloc(4 * sizeof(float));
    if (!d->buf) return ct_fail(dst->ctx, CT_E_NOMEM, "ptr_clone: out of memory");
    memcpy(d->buf, s->buf, 4 * sizeof(float));
    return CT_OK;
}
static ct_module *ptr_module(ct_ctx *ctx, int *calls, bool hook) {
    ct_module *m = ct_module_new(ctx, "Ptr", sizeof(ptr_impl));
    ptr_impl *im = m->impl;
    im->w = ct_module_add_param(m, "w", CT_SHAPE(2));
    ct_inplace_fill(im->w, 2.0f);
    im->kid = ct_module_new(ctx, "Kid", 0);
    ct_module_add_param(im->kid, "k", CT_SHAPE(1));
    ck_assert_int_eq(ct_module_add_child(m, "kid", im->kid), CT_OK);
    im->buf = calloc(4, sizeof(float));
    im->buf[2] = 7.0f;
    im->plain = 5;
    im->hook_calls = calls;
    m->free_impl = ptr_free;
    if (hook) m->clone_impl = ptr_clone;
    return m;
}

START_TEST(test_clone_hooks_and_errors) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    int calls = 0;
    ct_module *m = ptr_module(ctx, &calls, true);
    ct_module *c = ct_module_clone(m, CT_DEVICE_CPU);
    ck_assert_msg(c != NULL, "%s", errs.last.msg);
    ck_assert_int_eq(calls, 1);
    const ptr_impl *sm = m->impl, *sc = c->impl;
    ck_assert_ptr_eq(sc->w, ct_module_param(c, "w"));
    ck_assert_ptr_ne(sc->w, sm->w);
    ck_assert_ptr_eq(sc->kid, ct_module_child(c, "kid"));
    ck_assert_ptr_ne(sc->buf, sm->buf);
    ck_assert(sc->buf[2] == 7.0f);
    ck_assert_int_eq(sc->plain, sm->plain);
    ck_assert_ptr_eq((void *)c->free_impl, (void *)ptr_free);
    ck_assert_ptr_eq((void *)c->clone_impl, (void *)ptr_clone);
    ct_module_free(c);                            /* frees its own buffer (ASan: no double free) */
    const int64_t live = ct_ctx_mem_stats(ctx).live_tensors;
    /* a failing hook: NULL, its error, nothing leaked, the source intact */
    ((ptr_impl *)m->impl)->plain = 666;
    ck_assert_ptr_null(ct_module_clone(m, CT_DEVICE_CPU));
    ck_assert_int_eq(ct_ctx_status(ctx), CT_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "ptr_clone: refused"));
    ck_assert_int_eq(ct_ctx_mem_stats(ctx).live_tensors, live);
    ck_assert(sm->buf[2] == 7.0f);
    ct_module_free(m);
    /* an impl that owns memory (free_impl) without a hook cannot be copied safely */
    m = ptr_module(ctx, &calls, false);
    ct_module *root = ct_module_new(ctx, "Root", 0);
    ck_assert_int_eq(ct_module_add_child(root, "p", m), CT_OK);
    ct_ctx_clear_error(ctx);
    ck_assert_ptr_null(ct_module_clone(root, CT_DEVICE_CPU));
    ck_assert_int_eq(ct_ctx_status(ctx), CT_E_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "the Ptr module 'p' owns memory in its impl"));
    ck_assert_int_eq(ct_ctx_mem_stats(ctx).live_tensors, live);
    /* a device that is not there */
    ck_assert_ptr_null(ct_module_clone(root, ((ct_device){CT_CUDA, 1000})));
    ck_assert_int_eq(ct_ctx_status(ctx), CT_E_DEVICE);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "module_clone(cuda:1000)"));
    ck_assert_ptr_null(ct_module_clone(NULL, CT_DEVICE_CPU));
    ct_module_free(root);
    ck_assert_int_eq(ct_ctx_mem_stats(ctx).live_tensors, 0);
    ct_ctx_free(ctx);
}
END_TEST

Suite *module_suite(void) {
    Suite *s = suite_create("module");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_tree_and_names);
    tcase_add_test(tc, test_flat_block);
    tcase_add_test(tc, test_clone_flat);
    tcase_add_test(tc, test_clone_layers_own_weights);
    tcase_add_test(tc, test_clone_not_flat);
    tcase_add_test(tc, test_clone_hooks_and_errors);
    suite_add_tcase(s, tc);
    return s;
}
