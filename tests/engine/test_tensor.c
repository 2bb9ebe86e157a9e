/* tests/engine/test_tensor.c — creation, inspection, views, contiguous, scopes, references. */
#include <math.h>

#include "testutil.h"

START_TEST(test_creation) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *z = ct_zeros(ctx, CT_SHAPE(2, 3));
    ck_assert_int_eq(z->ndim, 2);
    ck_assert_int_eq(ct_numel(z), 6);
    ck_assert_int_eq(z->dtype, CT_F32);
    ck_assert(ct_is_contiguous(z));
    tu_assert_close(z, ((float[]){0, 0, 0, 0, 0, 0}), 0, 0);
    tu_assert_close(ct_ones(ctx, CT_SHAPE(3)), ((float[]){1, 1, 1}), 0, 0);
    tu_assert_close(ct_full(ctx, 2.5f, CT_SHAPE(1, 2)), ((float[]){2.5f, 2.5f}), 0, 0);
    ct_tensor *s = ct_scalar(ctx, 4.0f);
    ck_assert_int_eq(s->ndim, 0);
    ck_assert_double_eq(ct_item(s), 4.0);
    ct_tensor *r = ct_arange(ctx, CT_I64, 5);
    ck_assert_int_eq(r->dtype, CT_I64);
    ck_assert_int_eq(ct_data_i64(r)[4], 4);
    ck_assert_ptr_null(ct_data_f32(r));
    ct_tensor *i = ct_from_i64(ctx, (int64_t[]){-1, 7}, CT_SHAPE(2));
    ck_assert_int_eq(ct_data_i64(i)[0], -1);
    ct_tensor *big = ct_zeros(ctx, CT_SHAPE(1, 1, 1, 1, 1, 1, 1, 2));
    ck_assert_int_eq(big->ndim, CT_MAX_DIMS);
    /* errors: too many dims, negative size */
    ck_assert_ptr_null(ct_zeros(ctx, CT_SHAPE(1, 1, 1, 1, 1, 1, 1, 1, 1)));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "9 dims requested; a tensor has 0 to 8"));
    ck_assert_ptr_null(ct_zeros(ctx, CT_SHAPE(2, -3)));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "negative size -3 in dim 1"));
    ck_assert_int_eq(ct_ctx_status(ctx), CT_E_SHAPE);
    ct_ctx_clear_error(ctx);
    ck_assert_int_eq(ct_ctx_status(ctx), CT_OK);
    ck_assert_str_eq(ct_ctx_error(ctx), "");
    ck_assert_str_eq(ct_status_text(CT_E_SHAPE), "shape error");
    ck_assert_str_eq(ct_status_text((ct_status)999), "unknown status");
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_wrap_and_data) {
    ct_ctx *ctx = tu_ctx(NULL);
    float buf[6] = {1, 2, 3, 4, 5, 6};
    ct_tensor *w = ct_wrap_f32(ctx, buf, CT_SHAPE(2, 3));
    ck_assert_ptr_eq(ct_data_f32(w), buf);         /* no copy */
    ct_inplace_scale(w, 2.0f);
    ck_assert_float_eq(buf[5], 12.0f);            /* writes reach the caller's buffer */
    ct_tensor *t = ct_transpose(w, 0, 1);
    float out[6];
    ck_assert_int_eq(ct_copy_to_host(t, out, sizeof out), CT_OK);
    ck_assert_float_eq(out[1], 8.0f);             /* t[0][1] = w[1][0] */
    ck_assert_int_eq(ct_copy_to_host(t, out, 8), CT_E_ARG);
    /* and back, in place into the strided view (the CPU takes any strides), as a new version */
    const uint64_t v0 = t->storage->version;
    float before[6];
    memcpy(before, buf, sizeof buf);
    const float in[6] = {10, 20, 30, 40, 50, 60};   /* t's [3, 2] elements in order */
    ck_assert_int_eq(ct_copy_from_host(t, in, sizeof in), CT_OK);
    ck_assert_float_eq(buf[0], 10.0f);
    ck_assert_float_eq(buf[3], 20.0f);            /* t[0][1] = w[1][0] */
    ck_assert_float_eq(buf[5], 60.0f);
    ck_assert(t->storage->version > v0);
    ck_assert_int_eq(ct_copy_from_host(t, in, 8), CT_E_ARG);
    ck_assert_float_eq(buf[0], 10.0f);
    memcpy(buf, before, sizeof buf);                /* the checks below see the old values */
    int64_t idx[2] = {2, 1};
    ck_assert_double_eq(ct_get(t, idx), 12.0);
    char s[32];
    ck_assert_str_eq(ct_shape_str(t, s, sizeof s), "[3, 2]");
    ck_assert_int_eq(ct_size(t, -1), 2);
    ck_assert_int_eq(ct_size(t, 5), -1);
    ct_ctx_free(ctx);                             /* does not free buf */
    ck_assert_float_eq(buf[0], 2.0f);
}
END_TEST

START_TEST(test_views_share_storage) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *a = ct_from_f32(ctx, (float[]){0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, CT_SHAPE(3, 4));
    ct_tensor *t = ct_transpose(a, 0, 1);
    ck_assert_ptr_eq(t->storage, a->storage);
    ck_assert(!ct_is_contiguous(t));
    ck_assert_int_eq(t->shape[0], 4);
    tu_assert_close(t, ((float[]){0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}), 0, 0);
    ct_tensor *p = ct_permute(ct_view(a, 3, 2, 2), 2, 0, 1);
    ck_assert_ptr_eq(p->storage, a->storage);
    ck_assert_int_eq(p->shape[0], 2);
    tu_assert_close(p, ((float[]){0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 11}), 0, 0);
    ct_tensor *n = ct_narrow(a, 1, 1, 2);
    tu_assert_close(n, ((float[]){1, 2, 5, 6, 9, 10}), 0, 0);
    ct_tensor *sel = ct_select(a, 0, -1);
    tu_assert_close(sel, ((float[]){8, 9, 10, 11}), 0, 0);
    ck_assert_int_eq(sel->ndim, 1);
    ct_tensor *u = ct_unsqueeze(sel, 0);
    ck_assert_int_eq(u->ndim, 2);
    ck_assert_int_eq(u->shape[0], 1);
    ct_tensor *sq = ct_squeeze(u, 0);
    ck_assert_int_eq(sq->ndim, 1);
    ct_tensor *e = ct_expand(ct_view(sel, 1, 4), 3, -1);
    ck_assert_int_eq(e->stride[0], 0);
    tu_assert_close(e, ((float[]){8, 9, 10, 11, 8, 9, 10, 11, 8, 9, 10, 11}), 0, 0);
    /* view with -1, and view of a non-contiguous layout is refused; reshape copies */
    ct_tensor *v = ct_view(a, -1);
    ck_assert_int_eq(v->shape[0], 12);
    ck_assert_ptr_null(ct_view(t, 12));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "view: the layout of this [4, 3] tensor"));
    ct_tensor *r = ct_reshape(t, 12);
    ck_assert_ptr_ne(r->storage, a->storage);
    tu_assert_close(r, ((float[]){0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}), 0, 0);
    ct_tensor *r2 = ct_reshape(a, 2, 6);
    ck_assert_ptr_eq(r2->storage, a->storage);      /* a view when the layout allows */
    /* a transposed-then-narrowed view can still be viewed when dims stay mergeable */
    ct_tensor *nv = ct_view(ct_narrow(a, 0, 1, 2), 8);
    ck_assert_ptr_nonnull(nv);
    tu_assert_close(nv, ((float[]){4, 5, 6, 7, 8, 9, 10, 11}), 0, 0);
    /* contiguous copies only when it must */
    ct_tensor *c1 = ct_contiguous(a);
    ck_assert_ptr_eq(c1, a);
    ct_tensor *c2 = ct_contiguous(t);
    ck_assert_ptr_ne(c2->storage, a->storage);
    ck_assert(ct_is_contiguous(c2));
    tu_assert_tensors_close(c2, t, 0, 0);
    ct_tensor *cl = ct_clone(a);
    ck_assert_ptr_ne(cl->storage, a->storage);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_view_errors) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *a = ct_zeros(ctx, CT_SHAPE(3, 4));
    ck_assert_ptr_null(ct_view(a, 5, -1));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "cannot view a tensor of shape [3, 4] (12 elements) as [5, -1]"));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "test_tensor.c:"));    /* the caller's file:line */
    ck_assert_ptr_null(ct_transpose(a, 0, 2));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "transpose: dim 2 is out of range for a tensor of shape [3, 4] (valid: -2 to 1)"));
    ck_assert_ptr_null(ct_permute(a, 0, 0));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "permute: not a permutation"));
    ck_assert_ptr_null(ct_narrow(a, 1, 3, 2));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "narrow: range [3, 5) is outside dim 1 of size 4"));
    ck_assert_ptr_null(ct_select(a, 0, 3));
    ck_assert_ptr_null(ct_squeeze(a, 0));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "squeeze: dim 0 of [3, 4] has size 3, not 1"));
    ck_assert_ptr_null(ct_unsqueeze(a, 4));
    ck_assert_ptr_null(ct_expand(a, 2, 4));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "cannot broadcast shape [3, 4] to [2, 4]"));
    ck_assert_ptr_null(ct_expand(a, 4));
    /* a NULL input (an earlier failure) gives NULL without a new error */
    int before = errs.count;
    ck_assert_ptr_null(ct_transpose(ct_view(NULL, 3), 0, 1));
    ck_assert_int_eq(errs.count, before);
    ct_ctx_free(ctx);
}
END_TEST

static ct_tensor *g_view_chain(ct_tensor **in, void *ud) {
    (void)ud;   /* transpose -> narrow -> select -> unsqueeze -> expand -> mul */
    ct_tensor *t = ct_transpose(in[0], 0, 1);               /* [4,3] */
    ct_tensor *n = ct_narrow(t, 0, 1, 2);                  /* [2,3] */
    ct_tensor *s = ct_select(n, 1, 2);                     /* [2] */
    ct_tensor *e = ct_expand(ct_unsqueeze(s, 0), 3, 2);    /* [3,2] */
    return ct_mul(e, ct_narrow(ct_narrow(t, 1, 0, 2), 0, 1, 3));
}
static ct_tensor *g_reshape(ct_tensor **in, void *ud) {
    (void)ud;
    ct_tensor *t = ct_transpose(in[0], 0, 1);
    return ct_mul(ct_reshape(t, 2, 6), ct_reshape(t, 2, 6));
}
static ct_tensor *g_permute(ct_tensor **in, void *ud) {
    (void)ud;
    ct_tensor *v = ct_view(in[0], 2, 2, 3);
    return ct_tanh(ct_contiguous(ct_permute(v, 2, 0, 1)));
}
static ct_tensor *g_squeeze(ct_tensor **in, void *ud) {
    (void)ud;
    ct_tensor *u = ct_unsqueeze(in[0], 1);
    return ct_sigmoid(ct_squeeze(ct_clone(u), 1));
}
static ct_tensor *g_expand(ct_tensor **in, void *ud) {
    (void)ud;
    return ct_exp(ct_expand(ct_narrow(in[0], 0, 0, 1), 4, 3, 4));
}

START_TEST(test_view_gradients) {
    ct_ctx *ctx = tu_ctx(NULL);
    tu_fn fns[] = {g_view_chain, g_reshape, g_permute, g_squeeze, g_expand};
    for (unsigned k = 0; k < sizeof fns / sizeof fns[0]; k++) {
        ct_tensor *a = TU_RAND(ctx, 3 + k, -1.0f, 1.0f, 3, 4);
        ct_set_requires_grad(a, true);
        ck_assert_int_eq(tu_gradcheck(fns[k], 1, &a, NULL), 12);
    }
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_scopes_and_references) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ck_assert_int_eq(ct_scope_depth(ctx), 0);
    ct_tensor *param = ct_ones(ctx, CT_SHAPE(4));
    int64_t base = ct_ctx_mem_stats(ctx).live_tensors;
    ct_scope_begin(ctx);
    ck_assert_int_eq(ct_scope_depth(ctx), 1);
    ct_tensor *kept = NULL, *held = NULL;
    ct_scope_begin(ctx);
    ct_tensor *x = ct_mul(param, param);
    kept = ct_keep(ct_add(x, param));     /* survives the inner scope */
    held = ct_retain(ct_exp(x));          /* our own reference */
    ct_zeros(ctx, CT_SHAPE(100));
    ct_scope_end(ctx);
    tu_assert_close(kept, ((float[]){2, 2, 2, 2}), 0, 0);
    tu_assert_close(held, ((float[]){2.7182817f, 2.7182817f, 2.7182817f, 2.7182817f}), 1e-6, 0);
    ct_scope_end(ctx);                    /* kept goes now; held stays */
    ck_assert_int_eq(ct_ctx_mem_stats(ctx).live_tensors, base + 1);
    ct_release(held);
    ck_assert_int_eq(ct_ctx_mem_stats(ctx).live_tensors, base);
    ct_release(NULL);                     /* no-op */
    /* ending the base scope is an error, not a crash */
    ct_scope_end(ctx);
    ck_assert_int_eq(ct_ctx_status(ctx), CT_E_STATE);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "no scope is open"));
    ct_ctx_free(ctx);
    ct_ctx_free(NULL);
}
END_TEST

START_TEST(test_mixed_contexts_and_dtypes) {
    tu_errors e1 = {0}, e2 = {0};
    ct_ctx *c1 = tu_ctx(&e1), *c2 = tu_ctx(&e2);
    ct_tensor *a = ct_ones(c1, CT_SHAPE(2)), *b = ct_ones(c2, CT_SHAPE(2));
    ck_assert_ptr_null(ct_add(a, b));
    ck_assert_ptr_nonnull(strstr(e1.last.msg, "add: operand 1 belongs to another context"));
    ct_tensor *i = ct_arange(c1, CT_I64, 2);
    ck_assert_ptr_null(ct_mul(a, i));
    ck_assert_int_eq(ct_ctx_status(c1), CT_E_DTYPE);
    ck_assert_ptr_nonnull(strstr(e1.last.msg, "mul: operand 1 [2] is int64; expected float32"));
    ct_ctx_free(c1);
    ct_ctx_free(c2);
}
END_TEST

START_TEST(test_allocator_cache) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_scope_begin(ctx);
    ct_zeros(ctx, CT_SHAPE(1000, 100));
    ct_scope_end(ctx);
    ct_mem_stats s = ct_ctx_mem_stats(ctx);
    ck_assert_int_eq(s.live_bytes, 0);
    ck_assert_int_ge(s.cached_bytes, 400000);    /* kept for the next step */
    ck_assert_int_ge(s.peak_bytes, 400000);
    ct_scope_begin(ctx);
    ct_zeros(ctx, CT_SHAPE(1000, 100));           /* reuses the cached block */
    ck_assert_int_eq(ct_ctx_mem_stats(ctx).cached_bytes, 0);
    ct_scope_end(ctx);
    ct_ctx_empty_cache(ctx);
    ck_assert_int_eq(ct_ctx_mem_stats(ctx).cached_bytes, 0);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_device_helpers) {
    char buf[16];
    ck_assert_str_eq(ct_device_str(CT_DEVICE_CPU, buf, sizeof buf), "cpu");
    ck_assert_str_eq(ct_device_str((ct_device){CT_CUDA, 1}, buf, sizeof buf), "cuda:1");
    ck_assert(ct_device_eq(CT_DEVICE_CPU, (ct_device){CT_CPU, 0}));
    ck_assert(!ct_device_eq((ct_device){CT_CUDA, 0}, (ct_device){CT_CUDA, 1}));
    ck_assert_str_eq(ct_dtype_name(CT_I64), "int64");
    ck_assert_int_eq(ct_dtype_size(CT_F32), 4);
    ct_ctx *ctx = tu_ctx(NULL);
    ck_assert(ct_device_eq(ct_tensor_device(ct_zeros(ctx, CT_SHAPE(1))), CT_DEVICE_CPU));
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_version_info) {
    ck_assert_str_eq(ct_version(), CT_VERSION);
    ck_assert_ptr_nonnull(strstr(ct_blas_config(), "OpenBLAS"));
    ck_assert_int_ge(ct_blas_threads(), 1);
    char why[128] = "";
    int n = ct_cuda_device_count(why, sizeof why);
    if (!ct_cuda_compiled()) {
        ck_assert_int_eq(n, 0);
        ck_assert_ptr_nonnull(strstr(why, "without CUDA"));
    } else {
        ck_assert_int_ge(n, 0);
    }
}
END_TEST

Suite *tensor_suite(void) {
    Suite *s = suite_create("tensor");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_creation);
    tcase_add_test(tc, test_wrap_and_data);
    tcase_add_test(tc, test_views_share_storage);
    tcase_add_test(tc, test_view_errors);
    tcase_add_test(tc, test_view_gradients);
    tcase_add_test(tc, test_scopes_and_references);
    tcase_add_test(tc, test_mixed_contexts_and_dtypes);
    tcase_add_test(tc, test_allocator_cache);
    tcase_add_test(tc, test_device_helpers);
    tcase_add_test(tc, test_version_info);
    suite_add_tcase(s, tc);
    return s;
}
