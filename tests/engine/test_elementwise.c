/* tests/engine/test_elementwise.c — element-wise ops: values, broadcasting, gradients. */
#include <math.h>

#include "testutil.h"

static ct_tensor *f_add(ct_tensor **in, void *ud) { (void)ud; return ct_add(in[0], in[1]); }
static ct_tensor *f_sub(ct_tensor **in, void *ud) { (void)ud; return ct_sub(in[0], in[1]); }
static ct_tensor *f_mul(ct_tensor **in, void *ud) { (void)ud; return ct_mul(in[0], in[1]); }
static ct_tensor *f_div(ct_tensor **in, void *ud) { (void)ud; return ct_div(in[0], in[1]); }
static ct_tensor *f_pow(ct_tensor **in, void *ud) { (void)ud; return ct_pow(in[0], in[1]); }
static const tu_fn binary_fns[] = {f_add, f_sub, f_mul, f_div, f_pow};
static const char *const binary_names[] = {"add", "sub", "mul", "div", "pow"};

/* shapes: same, broadcast both ways, scalar, new leading dims */
static const int64_t shapes[][2][4] = {
    {{3, 4, 0, 0}, {3, 4, 0, 0}},
    {{3, 4, 0, 0}, {1, 4, 0, 0}},
    {{3, 1, 0, 0}, {1, 4, 0, 0}},
    {{2, 3, 4, 0}, {4, 0, 0, 0}},
    {{0, 0, 0, 0}, {2, 3, 0, 0}},
};
static const int ndims[][2] = {{2, 2}, {2, 2}, {2, 2}, {3, 1}, {0, 2}};

START_TEST(test_binary_gradients) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    int op = _i / 5, sh = _i % 5;
    ct_tensor *a = tu_rand(ctx, 1 + _i, 0.5f, 2.0f, ndims[sh][0], shapes[sh][0]);
    ct_tensor *b = tu_rand(ctx, 100 + _i, 0.5f, 2.0f, ndims[sh][1], shapes[sh][1]);
    ct_set_requires_grad(a, true);
    ct_set_requires_grad(b, true);
    ct_tensor *in[2] = {a, b};
    int64_t n = tu_gradcheck(binary_fns[op], 2, in, NULL);
    ck_assert_msg(n == ct_numel(a) + ct_numel(b), "%s: checked %lld", binary_names[op], (long long)n);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_binary_values) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_tensor *a = ct_from_f32(ctx, (float[]){1, 2, 3, 4, 5, 6}, CT_SHAPE(2, 3));
    ct_tensor *b = ct_from_f32(ctx, (float[]){10, 20, 30}, CT_SHAPE(3));
    tu_assert_close(ct_add(a, b), ((float[]){11, 22, 33, 14, 25, 36}), 0, 0);
    tu_assert_close(ct_sub(a, b), ((float[]){-9, -18, -27, -6, -15, -24}), 0, 0);
    tu_assert_close(ct_mul(a, b), ((float[]){10, 40, 90, 40, 100, 180}), 0, 0);
    tu_assert_close(ct_div(b, a), ((float[]){10, 10, 10, 2.5f, 4, 5}), 1e-6, 1e-6);
    ct_tensor *c = ct_from_f32(ctx, (float[]){2, 3}, CT_SHAPE(2, 1));
    tu_assert_close(ct_pow(a, c), ((float[]){1, 4, 9, 64, 125, 216}), 1e-4, 1e-6);
    ct_ctx_free(ctx);
}
END_TEST

static ct_tensor *u_neg(ct_tensor **in, void *ud) { (void)ud; return ct_neg(in[0]); }
static ct_tensor *u_exp(ct_tensor **in, void *ud) { (void)ud; return ct_exp(in[0]); }
static ct_tensor *u_log(ct_tensor **in, void *ud) { (void)ud; return ct_log(in[0]); }
static ct_tensor *u_sqrt(ct_tensor **in, void *ud) { (void)ud; return ct_sqrt(in[0]); }
static ct_tensor *u_tanh(ct_tensor **in, void *ud) { (void)ud; return ct_tanh(in[0]); }
static ct_tensor *u_sigmoid(ct_tensor **in, void *ud) { (void)ud; return ct_sigmoid(in[0]); }
static ct_tensor *u_relu(ct_tensor **in, void *ud) { (void)ud; return ct_relu(in[0]); }
static ct_tensor *u_clamp(ct_tensor **in, void *ud) { (void)ud; return ct_clamp(in[0], -0.5f, 0.7f); }
static ct_tensor *u_adds(ct_tensor **in, void *ud) { (void)ud; return ct_add_scalar(in[0], 2.5f); }
static ct_tensor *u_subs(ct_tensor **in, void *ud) { (void)ud; return ct_sub_scalar(in[0], 2.5f); }
static ct_tensor *u_muls(ct_tensor **in, void *ud) { (void)ud; return ct_mul_scalar(in[0], -3.0f); }
static ct_tensor *u_divs(ct_tensor **in, void *ud) { (void)ud; return ct_div_scalar(in[0], 4.0f); }
static ct_tensor *u_pows(ct_tensor **in, void *ud) { (void)ud; return ct_pow_scalar(ct_add_scalar(in[0], 2.0f), 2.5f); }
static ct_tensor *u_rsub(ct_tensor **in, void *ud) { (void)ud; return ct_rsub_scalar(1.0f, in[0]); }
/* on a transposed (non-contiguous) view */
static ct_tensor *u_tanh_t(ct_tensor **in, void *ud) { (void)ud; return ct_tanh(ct_transpose(in[0], 0, 1)); }
static const tu_fn unary_fns[] = {u_neg, u_exp, u_log, u_sqrt, u_tanh, u_sigmoid, u_relu, u_clamp,
                                  u_adds, u_subs, u_muls, u_divs, u_pows, u_rsub, u_tanh_t};
#define N_UNARY (int)(sizeof unary_fns / sizeof unary_fns[0])

START_TEST(test_unary_gradients) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    bool positive = unary_fns[_i] == u_log || unary_fns[_i] == u_sqrt;
    ct_tensor *a = TU_RAND(ctx, 7 + _i, positive ? 0.5f : -1.0f, positive ? 2.0f : 1.0f, 3, 5);
    /* keep relu/clamp samples away from their kinks */
    float *d = ct_data_f32(a);
    for (int i = 0; i < 15; i++)
        if (fabsf(d[i]) < 0.05f || fabsf(d[i] + 0.5f) < 0.05f || fabsf(d[i] - 0.7f) < 0.05f) d[i] += 0.13f;
    ct_set_requires_grad(a, true);
    ct_tensor *in[1] = {a};
    ck_assert_int_eq(tu_gradcheck(unary_fns[_i], 1, in, NULL), 15);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_unary_values) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_tensor *a = ct_from_f32(ctx, (float[]){-2, -0.5f, 0, 1, 3}, CT_SHAPE(5));
    tu_assert_close(ct_relu(a), ((float[]){0, 0, 0, 1, 3}), 0, 0);
    tu_assert_close(ct_clamp(a, -1, 2), ((float[]){-1, -0.5f, 0, 1, 2}), 0, 0);
    tu_assert_close(ct_sigmoid(a), ((float[]){0.11920292f, 0.37754067f, 0.5f, 0.7310586f, 0.95257413f}), 1e-6, 1e-6);
    tu_assert_close(ct_tanh(a), ((float[]){-0.9640276f, -0.46211716f, 0, 0.7615942f, 0.9950548f}), 1e-6, 1e-6);
    tu_assert_close(ct_exp(a), ((float[]){0.13533528f, 0.60653066f, 1, 2.7182817f, 20.085537f}), 1e-5, 1e-6);
    tu_assert_close(ct_rsub_scalar(1.0f, a), ((float[]){3, 1.5f, 1, 0, -2}), 0, 0);
    /* sigmoid must not overflow for large |x| */
    ct_tensor *big = ct_from_f32(ctx, (float[]){-1000, 1000}, CT_SHAPE(2));
    tu_assert_close(ct_sigmoid(big), ((float[]){0, 1}), 0, 0);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_inplace_updates) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *w = ct_from_f32(ctx, (float[]){1, 2, 3, 4}, CT_SHAPE(2, 2));
    ct_tensor *g = ct_from_f32(ctx, (float[]){1, 1, 2, 2}, CT_SHAPE(2, 2));
    ck_assert_int_eq(ct_inplace_axpy(w, -0.5f, g), CT_OK);
    tu_assert_close(w, ((float[]){0.5f, 1.5f, 2, 3}), 0, 0);
    ck_assert_int_eq(ct_inplace_scale(w, 2.0f), CT_OK);
    tu_assert_close(w, ((float[]){1, 3, 4, 6}), 0, 0);
    ck_assert_int_eq(ct_inplace_add_scalar(w, 1.0f), CT_OK);
    ck_assert_int_eq(ct_inplace_clamp(w, 0.0f, 5.0f), CT_OK);
    tu_assert_close(w, ((float[]){2, 4, 5, 5}), 0, 0);
    ck_assert_int_eq(ct_inplace_copy(w, g), CT_OK);
    tu_assert_close(w, ((float[]){1, 1, 2, 2}), 0, 0);
    ck_assert_int_eq(ct_inplace_fill(w, 7.0f), CT_OK);
    tu_assert_close(w, ((float[]){7, 7, 7, 7}), 0, 0);
    /* in place on a view writes through to the base */
    ct_tensor *row = ct_select(w, 0, 1);
    ck_assert_int_eq(ct_inplace_fill(row, 0.0f), CT_OK);
    tu_assert_close(w, ((float[]){7, 7, 0, 0}), 0, 0);
    /* errors: shape mismatch, int64, a graph node */
    ck_assert_int_eq(ct_inplace_axpy(w, 1.0f, ct_zeros(ctx, CT_SHAPE(3))), CT_E_SHAPE);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "inplace_axpy: shapes [2, 2] and [3] differ (at "));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "test_elementwise.c:"));   /* the caller's line */
    ck_assert_int_eq(ct_inplace_fill(ct_arange(ctx, CT_I64, 3), 1.0f), CT_E_DTYPE);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "inplace_fill: the tensor is int64; expected float32 (at "));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "test_elementwise.c:"));
    ct_set_requires_grad(g, true);
    ck_assert_int_eq(ct_inplace_scale(ct_mul(g, g), 2.0f), CT_E_STATE);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "in-place updates are for leaves (parameters, buffers) (at "));
    ct_ctx_free(ctx);
}
END_TEST

Suite *elementwise_suite(void) {
    Suite *s = suite_create("elementwise");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_binary_gradients, 0, 25);
    tcase_add_test(tc, test_binary_values);
    tcase_add_loop_test(tc, test_unary_gradients, 0, N_UNARY);
    tcase_add_test(tc, test_unary_values);
    tcase_add_test(tc, test_inplace_updates);
    suite_add_tcase(s, tc);
    return s;
}
