/* tests/engine/test_matmul_reduce.c — matmul (2-D, batched, broadcast, transposed views),
 * sum, mean and sum_to: values, gradients, errors. */
#include <math.h>

#include "testutil.h"

/* naive reference product of contiguous-or-not 2-D tensors */
static void ref_matmul(const ct_tensor *a, const ct_tensor *b, float *out) {
    int64_t m = a->shape[0], k = a->shape[1], n = b->shape[1];
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t p = 0; p < k; p++)
                s += ct_get(a, (int64_t[]){i, p}) * ct_get(b, (int64_t[]){p, j});
            out[i * n + j] = (float)s;
        }
}

START_TEST(test_matmul_values_and_layouts) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_tensor *a = ct_from_f32(ctx, (float[]){1, 2, 3, 4, 5, 6}, CT_SHAPE(2, 3));
    ct_tensor *b = ct_from_f32(ctx, (float[]){7, 8, 9, 10, 11, 12}, CT_SHAPE(3, 2));
    tu_assert_close(ct_matmul(a, b), ((float[]){58, 64, 139, 154}), 0, 0);
    /* every combination of transposed operands, against the naive product */
    ct_tensor *A = TU_RAND(ctx, 1, -1, 1, 5, 7), *At = ct_transpose(TU_RAND(ctx, 2, -1, 1, 7, 5), 0, 1);
    ct_tensor *B = TU_RAND(ctx, 3, -1, 1, 7, 4), *Bt = ct_transpose(TU_RAND(ctx, 4, -1, 1, 4, 7), 0, 1);
    ct_tensor *as[2] = {A, At}, *bs[2] = {B, Bt};
    float want[20];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
            ref_matmul(as[i], bs[j], want);
            tu_assert_close(ct_matmul(as[i], bs[j]), want, 1e-5, 1e-5);
        }
    /* transposed operands go to BLAS as flags: the product allocates its output and nothing else */
    int64_t before = ct_ctx_mem_stats(ctx).live_storages;
    ct_tensor *prod = ct_matmul(At, Bt);
    ck_assert_int_eq(ct_ctx_mem_stats(ctx).live_storages, before + 1);
    ck_assert_ptr_nonnull(prod);
    /* a strided slice BLAS cannot take directly is copied */
    ct_tensor *big = TU_RAND(ctx, 5, -1, 1, 10, 7);
    ct_tensor *odd = ct_view(ct_narrow(ct_view(big, 5, 14), 1, 0, 7), 5, 7);   /* rows stride 14 */
    ref_matmul(odd, B, want);
    tu_assert_close(ct_matmul(odd, B), want, 1e-5, 1e-5);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_matmul_batched) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_tensor *a = TU_RAND(ctx, 1, -1, 1, 3, 2, 4);
    ct_tensor *b = TU_RAND(ctx, 2, -1, 1, 3, 4, 5);
    ct_tensor *c = ct_matmul(a, b);
    ck_assert_int_eq(c->ndim, 3);
    ck_assert_int_eq(c->shape[2], 5);
    float want[10];
    for (int i = 0; i < 3; i++) {
        ref_matmul(ct_select(a, 0, i), ct_select(b, 0, i), want);
        tu_assert_close(ct_select(c, 0, i), want, 1e-5, 1e-5);
    }
    /* 2-D weight broadcast over a batch, and broadcast batch dims [2,1] x [3] */
    ct_tensor *w = TU_RAND(ctx, 3, -1, 1, 4, 5);
    ct_tensor *cw = ct_matmul(a, w);
    for (int i = 0; i < 3; i++) {
        ref_matmul(ct_select(a, 0, i), w, want);
        tu_assert_close(ct_select(cw, 0, i), want, 1e-5, 1e-5);
    }
    ct_tensor *p = TU_RAND(ctx, 4, -1, 1, 2, 1, 2, 4), *q = TU_RAND(ctx, 5, -1, 1, 3, 4, 5);
    ct_tensor *pq = ct_matmul(p, q);
    ck_assert_int_eq(pq->ndim, 4);
    ck_assert_int_eq(pq->shape[0], 2);
    ck_assert_int_eq(pq->shape[1], 3);
    ref_matmul(ct_select(ct_select(p, 0, 1), 0, 0), ct_select(q, 0, 2), want);
    tu_assert_close(ct_select(ct_select(pq, 0, 1), 0, 2), want, 1e-5, 1e-5);
    ct_ctx_free(ctx);
}
END_TEST

static ct_tensor *mm(ct_tensor **in, void *ud) { (void)ud; return ct_matmul(in[0], in[1]); }
static ct_tensor *mm_t(ct_tensor **in, void *ud) {
    (void)ud;   /* x . W^T with W stored [out, in], as a Linear layer does */
    return ct_matmul(in[0], ct_transpose(in[1], 0, 1));
}
static ct_tensor *mm_tt(ct_tensor **in, void *ud) {
    (void)ud;
    return ct_matmul(ct_transpose(in[0], -1, -2), ct_transpose(in[1], -1, -2));
}

START_TEST(test_matmul_gradients) {
    ct_ctx *ctx = tu_ctx(NULL);
    struct { tu_fn f; int na; int64_t sa[3]; int nb; int64_t sb[3]; } cases[] = {
        {mm, 2, {3, 4}, 2, {4, 2}},
        {mm_t, 2, {3, 4}, 2, {5, 4}},
        {mm, 3, {2, 3, 4}, 3, {2, 4, 2}},
        {mm, 3, {2, 3, 4}, 2, {4, 2}},        /* weight broadcast over the batch */
        {mm_tt, 3, {2, 4, 3}, 3, {2, 2, 4}},
    };
    for (unsigned k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ct_tensor *a = tu_rand(ctx, 10 + k, -1, 1, cases[k].na, cases[k].sa);
        ct_tensor *b = tu_rand(ctx, 20 + k, -1, 1, cases[k].nb, cases[k].sb);
        ct_set_requires_grad(a, true);
        ct_set_requires_grad(b, true);
        ct_tensor *in[2] = {a, b};
        ck_assert_int_eq(tu_gradcheck(cases[k].f, 2, in, NULL), ct_numel(a) + ct_numel(b));
    }
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_matmul_errors) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *a = ct_zeros(ctx, CT_SHAPE(2, 3)), *b = ct_zeros(ctx, CT_SHAPE(4, 5));
    int line = __LINE__ + 1;
    ck_assert_ptr_null(ct_matmul(a, b));
    char want[160];
    snprintf(want, sizeof want, "matmul: shapes [2, 3] and [4, 5]: inner dims 3 and 4 differ (at %s:%d)",
             __FILE__, line);
    ck_assert_msg(strstr(errs.last.msg, want) != NULL, "got: %s", errs.last.msg);
    ck_assert_ptr_null(ct_matmul(ct_zeros(ctx, CT_SHAPE(3)), b));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "both need at least 2 dims"));
    ck_assert_ptr_null(ct_matmul(ct_zeros(ctx, CT_SHAPE(2, 2, 3)), ct_zeros(ctx, CT_SHAPE(3, 3, 1))));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "batch dims of [2, 2, 3] and [3, 3, 1] do not broadcast"));
    /* empty inner dim gives zeros */
    tu_assert_close(ct_matmul(ct_zeros(ctx, CT_SHAPE(2, 0)), ct_zeros(ctx, CT_SHAPE(0, 2))), ((float[]){0, 0, 0, 0}), 0, 0);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_sum_mean_values) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *a = ct_from_f32(ctx, (float[]){1, 2, 3, 4, 5, 6}, CT_SHAPE(2, 3));
    tu_assert_close(ct_sum(a, 0, false), ((float[]){5, 7, 9}), 0, 0);
    tu_assert_close(ct_sum(a, 1, false), ((float[]){6, 15}), 0, 0);
    tu_assert_close(ct_sum(a, -1, true), ((float[]){6, 15}), 0, 0);
    ck_assert_int_eq(ct_sum(a, -1, true)->ndim, 2);
    ck_assert_double_eq(ct_item(ct_sum_all(a)), 21);
    ck_assert_int_eq(ct_sum_all(a)->ndim, 0);
    tu_assert_close(ct_mean(a, 0, false), ((float[]){2.5f, 3.5f, 4.5f}), 1e-6, 0);
    ck_assert_double_eq_tol(ct_item(ct_mean_all(a)), 3.5, 1e-6);
    tu_assert_close(ct_sum(ct_transpose(a, 0, 1), 0, false), ((float[]){6, 15}), 0, 0);
    tu_assert_close(ct_sum_dims(a, 2, ((int[]){0, 1}), false), ((float[]){21}), 0, 0);
    /* sum_to undoes broadcasting */
    ct_tensor *s = ct_sum_to_at(CT_SRC, a, 2, (int64_t[]){1, 3});
    tu_assert_close(s, ((float[]){5, 7, 9}), 0, 0);
    s = ct_sum_to_at(CT_SRC, a, 1, (int64_t[]){3});
    ck_assert_int_eq(s->ndim, 1);
    tu_assert_close(s, ((float[]){5, 7, 9}), 0, 0);
    ck_assert_ptr_null(ct_sum_to_at(CT_SRC, a, 1, (int64_t[]){2}));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "sum_to: cannot sum [2, 3] down to [2]"));
    ck_assert_ptr_null(ct_sum(a, 2, false));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "sum: dim 2 is out of range"));
    ck_assert_ptr_null(ct_sum_dims(a, 2, ((int[]){1, -1}), false));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "dim -1 is listed twice"));
    /* a long sum is accurate (double accumulator) */
    ct_tensor *ones = ct_full(ctx, 0.1f, CT_SHAPE(1000000));
    ck_assert_double_eq_tol(ct_item(ct_sum_all(ones)), 100000.0, 0.5);
    ct_ctx_free(ctx);
}
END_TEST

typedef struct { int dim; bool keep; bool mean; } red_case;
static ct_tensor *red_fn(ct_tensor **in, void *ud) {
    const red_case *c = ud;
    ct_tensor *x = ct_transpose(in[0], 0, 2);        /* non-contiguous input [4,3,2] */
    return c->mean ? ct_mean(x, c->dim, c->keep) : ct_sum(x, c->dim, c->keep);
}
static ct_tensor *red_all(ct_tensor **in, void *ud) { (void)ud; return ct_mean_all(ct_mul(in[0], in[0])); }

START_TEST(test_reduction_gradients) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_tensor *a = TU_RAND(ctx, 9, -1, 1, 2, 3, 4);
    ct_set_requires_grad(a, true);
    for (int dim = -3; dim < 3; dim++)
        for (int keep = 0; keep < 2; keep++)
            for (int mean = 0; mean < 2; mean++) {
                red_case c = {dim, keep, mean};
                ck_assert_int_eq(tu_gradcheck(red_fn, 1, &a, &c), 24);
            }
    ck_assert_int_eq(tu_gradcheck(red_all, 1, &a, NULL), 24);
    ct_ctx_free(ctx);
}
END_TEST

Suite *matmul_reduce_suite(void) {
    Suite *s = suite_create("matmul_reduce");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_matmul_values_and_layouts);
    tcase_add_test(tc, test_matmul_batched);
    tcase_add_test(tc, test_matmul_gradients);
    tcase_add_test(tc, test_matmul_errors);
    tcase_add_test(tc, test_sum_mean_values);
    tcase_add_test(tc, test_reduction_gradients);
    suite_add_tcase(s, tc);
    return s;
}
