/* tests/engine/test_autograd.c — recording rules, backward order and accumulation, freed
 * graphs, hooks, grad mode, detach, in-place detection, error call sites. */
#include <math.h>

#include "testutil.h"

START_TEST(test_records_only_when_needed) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_tensor *a = ct_ones(ctx, CT_SHAPE(2)), *b = ct_ones(ctx, CT_SHAPE(2));
    ct_tensor *c = ct_mul(a, b);
    ck_assert_ptr_null(c->grad_fn);                  /* no input requires grad */
    ck_assert(!ct_requires_grad(c));
    ck_assert_int_eq(ct_ctx_mem_stats(ctx).live_nodes, 0);
    ct_set_requires_grad(a, true);
    ct_tensor *d = ct_mul(a, b);
    ck_assert_str_eq(ct_grad_fn_name(d), "mul");
    ck_assert(ct_requires_grad(d));
    ck_assert(!ct_is_leaf(d));
    bool was = ct_set_grad_enabled(ctx, false);
    ck_assert(was);
    ct_tensor *e = ct_mul(a, b);
    ck_assert_ptr_null(e->grad_fn);                  /* grad mode off */
    ck_assert(!ct_is_grad_enabled(ctx));
    ct_set_grad_enabled(ctx, was);
    ct_tensor *f = ct_detach(d);
    ck_assert_ptr_null(f->grad_fn);
    ck_assert_ptr_eq(f->storage, d->storage);        /* shares data */
    ck_assert_ptr_null(ct_grad_fn_name(a));
    ck_assert_int_eq(ct_graph_size(ct_add(d, d)), 2);
    ck_assert_int_eq(ct_graph_size(a), 0);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_backward_accumulates) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_tensor *x = ct_from_f32(ctx, (float[]){1, 2, 3}, CT_SHAPE(3));
    ct_set_requires_grad(x, true);
    /* y = sum(x*x + 3x): a diamond (x used three times) */
    ct_scope_begin(ctx);
    ct_tensor *y = ct_sum_all(ct_add(ct_mul(x, x), ct_mul_scalar(x, 3.0f)));
    ck_assert_int_eq(ct_backward(y), CT_OK);
    tu_assert_close(ct_grad(x), ((float[]){5, 7, 9}), 1e-6, 0);
    ct_scope_end(ctx);
    /* a second backward adds into .grad, as in PyTorch */
    ct_scope_begin(ctx);
    ck_assert_int_eq(ct_backward(ct_sum_all(ct_mul(x, x))), CT_OK);
    tu_assert_close(ct_grad(x), ((float[]){7, 11, 15}), 1e-6, 0);
    ct_scope_end(ctx);
    ct_zero_grad(x);
    tu_assert_close(ct_grad(x), ((float[]){0, 0, 0}), 0, 0);
    /* explicit output gradient for a non-scalar */
    ct_scope_begin(ctx);
    ct_tensor *z = ct_mul_scalar(x, 2.0f);
    ct_tensor *gz = ct_from_f32(ctx, (float[]){1, 10, 100}, CT_SHAPE(3));
    ck_assert_int_eq(ct_backward_ex(z, gz, false), CT_OK);
    tu_assert_close(ct_grad(x), ((float[]){2, 20, 200}), 1e-6, 0);
    ct_scope_end(ctx);
    /* backward on the leaf itself */
    ct_zero_grad(x);
    ct_scope_begin(ctx);
    ck_assert_int_eq(ct_backward_ex(x, ct_ones(ctx, CT_SHAPE(3)), false), CT_OK);
    tu_assert_close(ct_grad(x), ((float[]){1, 1, 1}), 0, 0);
    ct_scope_end(ctx);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_deep_graph_no_recursion) {
    /* 200,000 nodes deep: a recursive backward or release would overflow the stack */
    ct_ctx *ctx = tu_ctx(NULL);
    ct_tensor *x = ct_from_f32(ctx, (float[]){0.5f}, CT_SHAPE(1));
    ct_set_requires_grad(x, true);
    ct_scope_begin(ctx);
    ct_tensor *h = x;
    const int depth = 200000;
    for (int i = 0; i < depth; i++) h = ct_mul_scalar(h, 1.0f);
    ct_tensor *y = ct_sum_all(h);
    ck_assert_int_eq(ct_graph_size(y), depth + 1);
    ck_assert_int_eq(ct_backward(y), CT_OK);
    tu_assert_close(ct_grad(x), ((float[]){1}), 0, 0);
    ct_scope_end(ctx);
    ck_assert_int_eq(ct_ctx_mem_stats(ctx).live_nodes, 0);
    /* and a deep graph released through references only (kept alive by its last tensor) */
    ct_scope_begin(ctx);
    h = x;
    for (int i = 0; i < depth; i++) {
        ct_scope_begin(ctx);
        ct_tensor *nh = ct_retain(ct_mul_scalar(h, 1.0f));
        ct_scope_end(ctx);
        if (h != x) ct_release(h);
        h = nh;
    }
    ck_assert_int_eq(ct_graph_size(h), depth);
    ct_release(h);                               /* frees 200,000 nodes iteratively */
    ct_scope_end(ctx);
    ck_assert_int_eq(ct_ctx_mem_stats(ctx).live_nodes, 0);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_freed_graph_and_retain) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *x = ct_from_f32(ctx, (float[]){2}, CT_SHAPE(1));
    ct_set_requires_grad(x, true);
    ct_tensor *y = ct_sum_all(ct_mul(x, x));
    ck_assert_int_eq(ct_backward_ex(y, NULL, true), CT_OK);       /* keep the graph */
    ck_assert_int_eq(ct_backward(y), CT_OK);                      /* runs again, then frees */
    tu_assert_close(ct_grad(x), ((float[]){8}), 0, 0);
    int line = __LINE__ + 1;
    ck_assert_int_eq(ct_backward(y), CT_E_STATE);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "was already freed by an earlier backward"));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "'sum'"));
    char at[64];
    snprintf(at, sizeof at, "test_autograd.c:%d", line);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, at));
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_backward_errors) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *a = ct_ones(ctx, CT_SHAPE(2, 2));
    ck_assert_int_eq(ct_backward(ct_sum_all(a)), CT_E_STATE);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "does not require a gradient"));
    ct_set_requires_grad(a, true);
    ck_assert_int_eq(ct_backward(ct_mul(a, a)), CT_E_SHAPE);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "the tensor has shape [2, 2]; backward without an explicit gradient needs one element"));
    ck_assert_int_eq(ct_backward_ex(ct_mul(a, a), ct_ones(ctx, CT_SHAPE(3)), false), CT_E_SHAPE);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "gradient of shape [3] for a tensor of shape [2, 2]"));
    /* a gradient of another dtype (or on another device) is refused before anything runs */
    ck_assert_int_eq(ct_backward_ex(ct_mul(a, a), ct_empty(ctx, CT_I64, CT_SHAPE(2, 2)), false), CT_E_DTYPE);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "a gradient of dtype int64 on cpu for a float32 tensor on cpu"));
    ck_assert_int_eq(ct_backward(NULL), CT_E_NULL);
    /* requires_grad only on float leaves */
    ck_assert_int_eq(ct_set_requires_grad(ct_mul(a, a), false), CT_E_STATE);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "only leaves"));
    ck_assert_int_eq(ct_set_requires_grad(ct_arange(ctx, CT_I64, 3), true), CT_E_DTYPE);
    ck_assert_int_eq(ct_register_hook(ct_ones(ctx, CT_SHAPE(1)), (ct_grad_hook_fn)NULL, NULL), CT_E_ARG);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_inplace_after_use_is_detected) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *w = ct_from_f32(ctx, (float[]){1, 2}, CT_SHAPE(2));
    ct_set_requires_grad(w, true);
    ct_tensor *b = ct_from_f32(ctx, (float[]){3, 4}, CT_SHAPE(2));
    int line = __LINE__ + 1;
    ct_tensor *y = ct_sum_all(ct_mul(w, b));
    ct_inplace_scale(b, 2.0f);                 /* b was saved by mul: its gradient would be wrong */
    ck_assert_int_eq(ct_backward(y), CT_E_STATE);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "backward of 'mul'"));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "changed in place"));
    char at[64];
    snprintf(at, sizeof at, "created at %s:%d", __FILE__, line);
    ck_assert_msg(strstr(errs.last.msg, at) != NULL, "message names the forward call site: %s", errs.last.msg);
    ct_ctx_free(ctx);
}
END_TEST

static ct_tensor *hook_double(ct_tensor *g, void *ud) {
    int *calls = ud;
    (*calls)++;
    return ct_mul_scalar(g, 2.0f);
}
static ct_tensor *hook_observe(ct_tensor *g, void *ud) {
    float *seen = ud;
    ct_copy_to_host(g, seen, sizeof(float) * (size_t)ct_numel(g));
    return NULL;                                /* keep the gradient as it is */
}
static ct_tensor *hook_bad_shape(ct_tensor *g, void *ud) {
    (void)ud;
    return ct_zeros(g->ctx, CT_SHAPE(5));
}
static ct_tensor *hook_bad_dtype(ct_tensor *g, void *ud) {
    (void)ud;
    return ct_empty(g->ctx, CT_I64, g->ndim, g->shape);
}

START_TEST(test_hooks) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *x = ct_from_f32(ctx, (float[]){1, 2}, CT_SHAPE(2));
    ct_set_requires_grad(x, true);
    int calls = 0;
    float seen[2] = {0};
    ck_assert_int_eq(ct_register_hook(x, hook_double, &calls), CT_OK);
    ck_assert_int_eq(ct_register_hook(x, hook_observe, seen), CT_OK);
    ct_scope_begin(ctx);
    ct_tensor *h = ct_mul_scalar(x, 3.0f);          /* non-leaf hook: sees dL/dh */
    float seen_h[2] = {0};
    ck_assert_int_eq(ct_register_hook(h, hook_observe, seen_h), CT_OK);
    ct_tensor *y = ct_sum_all(ct_mul(h, h));       /* dL/dh = 2h = [6, 12] */
    ck_assert_int_eq(ct_backward(y), CT_OK);
    ct_scope_end(ctx);
    ck_assert_float_eq_tol(seen_h[0], 6.0f, 1e-6);
    ck_assert_float_eq_tol(seen_h[1], 12.0f, 1e-6);
    ck_assert_int_eq(calls, 1);
    /* leaf hooks run in order: doubled first, then observed; .grad gets the doubled value */
    ck_assert_float_eq_tol(seen[0], 36.0f, 1e-5);
    tu_assert_close(ct_grad(x), ((float[]){36, 72}), 1e-5, 0);
    /* a hook that changes the shape is an error */
    ct_tensor *z = ct_ones(ctx, CT_SHAPE(2));
    ct_set_requires_grad(z, true);
    ct_register_hook(z, hook_bad_shape, NULL);
    ck_assert_int_ne(ct_backward(ct_sum_all(ct_mul(z, z))), CT_OK);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "gradient hook returned shape [5] for a gradient of shape [2]"));
    /* ... and so is one that returns another dtype (or device) */
    ct_tensor *w = ct_ones(ctx, CT_SHAPE(2));
    ct_set_requires_grad(w, true);
    ct_register_hook(w, hook_bad_dtype, NULL);
    ck_assert_int_eq(ct_backward(ct_sum_all(ct_mul(w, w))), CT_E_DTYPE);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "gradient hook returned a gradient of dtype int64 on cpu for one of dtype float32 on cpu"));
    /* a hook on a tensor that needs no gradient can never run */
    ck_assert_int_eq(ct_register_hook(ct_ones(ctx, CT_SHAPE(1)), hook_observe, seen), CT_E_STATE);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_detach_stops_gradient) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_tensor *x = ct_from_f32(ctx, (float[]){3}, CT_SHAPE(1));
    ct_set_requires_grad(x, true);
    ct_tensor *y = ct_mul(x, ct_detach(x));        /* d/dx = detached x = 3 */
    ck_assert_int_eq(ct_backward(ct_sum_all(y)), CT_OK);
    tu_assert_close(ct_grad(x), ((float[]){3}), 0, 0);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_unused_branch_and_partial_needs) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_tensor *a = ct_from_f32(ctx, (float[]){1, 2}, CT_SHAPE(2));
    ct_tensor *b = ct_from_f32(ctx, (float[]){3, 4}, CT_SHAPE(2));
    ct_set_requires_grad(a, true);                 /* b needs no gradient */
    ct_tensor *unused = ct_exp(a);                 /* a branch that does not reach the loss */
    (void)unused;
    ck_assert_int_eq(ct_backward(ct_sum_all(ct_mul(a, b))), CT_OK);
    tu_assert_close(ct_grad(a), ((float[]){3, 4}), 0, 0);
    ck_assert_ptr_null(ct_grad(b));
    ct_ctx_free(ctx);
}
END_TEST

Suite *autograd_suite(void) {
    Suite *s = suite_create("autograd");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_records_only_when_needed);
    tcase_add_test(tc, test_backward_accumulates);
    tcase_add_test(tc, test_deep_graph_no_recursion);
    tcase_add_test(tc, test_freed_graph_and_retain);
    tcase_add_test(tc, test_backward_errors);
    tcase_add_test(tc, test_inplace_after_use_is_detected);
    tcase_add_test(tc, test_hooks);
    tcase_add_test(tc, test_detach_stops_gradient);
    tcase_add_test(tc, test_unused_branch_and_partial_needs);
    suite_add_tcase(s, tc);
    return s;
}
