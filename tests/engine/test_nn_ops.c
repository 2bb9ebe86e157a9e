/* tests/engine/test_nn_ops.c — softmax, log_softmax, max/argmax, cross-entropy,
 * BCE-with-logits and embedding: values, gradients, layouts, edge cases and errors. */
#include <math.h>

#include "testutil.h"

/* ---- helpers ----------------------------------------------------------------------------- */
static ct_tensor *i64(ct_ctx *ctx, const int64_t *v, int ndim, const int64_t *shape) {
    ct_tensor *t = ct_from_i64(ctx, v, ndim, shape);
    ck_assert_ptr_nonnull(t);
    return t;
}
/* I64(ctx, CT_SHAPE(2, 2), 1, 3, 0, 1): an int64 tensor of that shape and those values */
#define I64(ctx, shape, ...) i64(ctx, (const int64_t[]){__VA_ARGS__}, shape)

static void assert_i64(const ct_tensor *t, const int64_t *want, int64_t n) {
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->dtype, CT_I64);
    ck_assert_int_eq(ct_numel(t), n);
    int64_t got[64];
    ck_assert(n <= 64);
    ck_assert_int_eq(ct_copy_to_host(t, got, sizeof got), CT_OK);
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(got[i] == want[i], "index %lld is %lld, expected %lld", (long long)i,
                      (long long)got[i], (long long)want[i]);
}

static void assert_shape(const ct_tensor *t, int ndim, const int64_t *shape) {
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->ndim, ndim);
    for (int i = 0; i < ndim; i++) ck_assert_int_eq(t->shape[i], shape[i]);
}
#define ASSERT_SHAPE(t, ...) assert_shape(t, CT_SHAPE(__VA_ARGS__))
#define ASSERT_SCALAR(t) assert_shape(t, 0, NULL)

/* distinct values 0.1 apart in a scrambled order (max stays smooth under eps = 1e-2) */
static ct_tensor *spread(ct_ctx *ctx, int ndim, const int64_t *shape) {
    ct_tensor *t = ct_empty(ctx, CT_F32, ndim, shape);
    int64_t n = ct_numel(t);
    float *d = ct_data_f32(t);
    for (int64_t i = 0; i < n; i++) d[i] = 0.1f * (float)((i * 7) % n) - 1.5f;
    return t;
}

/* ---- softmax / log_softmax ----------------------------------------------------------------- */
START_TEST(test_softmax_values) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *a = ct_from_f32(ctx, (float[]){1, 2, 3}, CT_SHAPE(3));
    tu_assert_close(ct_softmax(a, 0), ((float[]){0.09003057f, 0.24472847f, 0.66524096f}), 1e-7, 1e-6);
    tu_assert_close(ct_softmax(a, -1), ((float[]){0.09003057f, 0.24472847f, 0.66524096f}), 1e-7, 1e-6);
    tu_assert_close(ct_log_softmax(a, 0), ((float[]){-2.40760596f, -1.40760596f, -0.40760596f}), 1e-6, 1e-6);

    /* 2-D: over the rows (dim 1) and over the columns (dim 0) */
    ct_tensor *b = ct_from_f32(ctx, (float[]){1, 2, 3, 3, 2, 1}, CT_SHAPE(2, 3));
    tu_assert_close(ct_softmax(b, 1), ((float[]){0.09003057f, 0.24472847f, 0.66524096f,
                                                 0.66524096f, 0.24472847f, 0.09003057f}), 1e-7, 1e-6);
    tu_assert_close(ct_softmax(b, 0), ((float[]){0.11920292f, 0.5f, 0.88079708f,
                                                 0.88079708f, 0.5f, 0.11920292f}), 1e-7, 1e-6);
    tu_assert_close(ct_log_softmax(b, 0), ((float[]){-2.12692801f, -0.69314718f, -0.12692801f,
                                                     -0.12692801f, -0.69314718f, -2.12692801f}), 1e-6, 1e-6);

    /* large logits: no overflow, the max is subtracted */
    ct_tensor *big = ct_from_f32(ctx, (float[]){1000, 1001, 1002}, CT_SHAPE(3));
    tu_assert_close(ct_softmax(big, 0), ((float[]){0.09003057f, 0.24472847f, 0.66524096f}), 1e-6, 1e-5);
    ct_tensor *wide = ct_from_f32(ctx, (float[]){-1000, 0, 1000}, CT_SHAPE(3));
    tu_assert_close(ct_softmax(wide, 0), ((float[]){0, 0, 1}), 0, 0);
    tu_assert_close(ct_log_softmax(wide, 0), ((float[]){-2000, -1000, 0}), 0, 1e-6);

    /* a 0-d tensor is one element along dim 0 */
    tu_assert_close(ct_softmax(ct_scalar(ctx, 5.0f), 0), ((float[]){1}), 0, 0);
    tu_assert_close(ct_log_softmax(ct_scalar(ctx, 5.0f), -1), ((float[]){0}), 0, 0);

    /* a middle dim with a wide inner part (blocked kernel path) and a transposed view agree
     * with the row-wise result */
    ct_tensor *c = TU_RAND(ctx, 3, -4.0f, 4.0f, 5, 70, 3);
    for (int lg = 0; lg < 2; lg++) {
        ct_tensor *want = lg ? ct_log_softmax(ct_transpose(c, 0, 2), 2)
                             : ct_softmax(ct_transpose(c, 0, 2), 2);      /* [3, 70, 5] */
        ct_tensor *got = lg ? ct_log_softmax(c, 0) : ct_softmax(c, 0);     /* [5, 70, 3] */
        tu_assert_tensors_close(ct_transpose(got, 0, 2), want, 1e-6, 1e-5);
    }
    ct_tensor *s = ct_sum(ct_softmax(c, 1), 1, false);
    float ones[15];
    for (int i = 0; i < 15; i++) ones[i] = 1.0f;
    tu_assert_close(s, ones, 1e-5, 0);
    /* empty tensors pass through */
    ct_tensor *e = ct_softmax(ct_zeros(ctx, CT_SHAPE(0, 4)), 1);
    ASSERT_SHAPE(e, 0, 4);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

typedef struct { int dim; bool log; bool transposed; } sm_case;
static ct_tensor *f_softmax(ct_tensor **in, void *ud) {
    const sm_case *c = ud;
    ct_tensor *x = c->transposed ? ct_transpose(in[0], 0, 2) : in[0];
    return c->log ? ct_log_softmax(x, c->dim) : ct_softmax(x, c->dim);
}

START_TEST(test_softmax_gradients) {
    /* _i: bit 0 log, bit 1 transposed, bits 2.. the dim (0, 1, 2, -1) */
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    static const int dims[] = {0, 1, 2, -1};
    sm_case c = {dims[_i >> 2], _i & 1, (_i >> 1) & 1};
    ct_tensor *a = TU_RAND(ctx, 11 + _i, -2.0f, 2.0f, 2, 3, 4);
    ct_set_requires_grad(a, true);
    ct_tensor *in[1] = {a};
    ck_assert_int_eq(tu_gradcheck(f_softmax, 1, in, &c), 24);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_softmax_gradients_wide) {
    /* inner > the kernel's block: dim 0 of [3, 70] */
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    for (int lg = 0; lg < 2; lg++) {
        sm_case c = {0, lg, false};
        ct_tensor *a = TU_RAND(ctx, 5 + lg, -2.0f, 2.0f, 3, 70);
        ct_set_requires_grad(a, true);
        ct_tensor *in[1] = {a};
        ck_assert_int_eq(tu_gradcheck(f_softmax, 1, in, &c), 210);
    }
    /* the gradient of sum(softmax) is 0; of sum(log_softmax) it is 1 - C * softmax */
    ct_tensor *a = ct_from_f32(ctx, (float[]){1, 2, 3}, CT_SHAPE(3));
    ct_set_requires_grad(a, true);
    ck_assert_int_eq(ct_backward(ct_sum_all(ct_softmax(a, 0))), CT_OK);
    tu_assert_close(ct_grad(a), ((float[]){0, 0, 0}), 1e-7, 0);
    ct_zero_grad(a);
    ck_assert_int_eq(ct_backward(ct_sum_all(ct_log_softmax(a, 0))), CT_OK);
    tu_assert_close(ct_grad(a), ((float[]){1 - 3 * 0.09003057f, 1 - 3 * 0.24472847f,
                                           1 - 3 * 0.66524096f}), 1e-6, 1e-6);
    ck_assert_str_eq(ct_grad_fn_name(ct_softmax(a, 0)), "softmax");
    ck_assert_str_eq(ct_grad_fn_name(ct_log_softmax(a, 0)), "log_softmax");
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- max / argmax ------------------------------------------------------------------------- */
START_TEST(test_max_values) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *a = ct_from_f32(ctx, (float[]){1, 5, 3, 7, 2, 7}, CT_SHAPE(2, 3));
    ct_tensor *idx = NULL;
    ct_tensor *v = ct_max(a, 1, false, &idx);
    ASSERT_SHAPE(v, 2);
    tu_assert_close(v, ((float[]){5, 7}), 0, 0);
    ASSERT_SHAPE(idx, 2);
    assert_i64(idx, (const int64_t[]){1, 0}, 2);         /* ties: the first maximum */
    v = ct_max(a, 0, true, &idx);
    ASSERT_SHAPE(v, 1, 3);
    tu_assert_close(v, ((float[]){7, 5, 7}), 0, 0);
    assert_i64(idx, (const int64_t[]){1, 0, 1}, 3);
    v = ct_max(a, -1, true, NULL);
    ASSERT_SHAPE(v, 2, 1);
    tu_assert_close(v, ((float[]){5, 7}), 0, 0);

    ct_tensor *am = ct_argmax(a, 1, false);
    ASSERT_SHAPE(am, 2);
    assert_i64(am, (const int64_t[]){1, 0}, 2);
    am = ct_argmax(a, 0, true);
    ASSERT_SHAPE(am, 1, 3);
    assert_i64(am, (const int64_t[]){1, 0, 1}, 3);
    ck_assert(!ct_requires_grad(am));

    /* a transposed view, a 3-D middle dim, a wide inner part, a 0-d tensor */
    ct_tensor *at = ct_transpose(a, 0, 1);                 /* [[1,7],[5,2],[3,7]] */
    tu_assert_close(ct_max(at, 1, false, &idx), ((float[]){7, 5, 7}), 0, 0);
    assert_i64(idx, (const int64_t[]){1, 0, 1}, 3);
    ct_tensor *b = spread(ctx, CT_SHAPE(2, 3, 4));
    ct_tensor *bt = ct_argmax(ct_permute(b, 0, 2, 1), 2, false);   /* [2, 4] over the 3 */
    ct_tensor *bm = ct_argmax(b, 1, false);                         /* [2, 4] */
    int64_t w1[8], w2[8];
    ct_copy_to_host(bt, w1, sizeof w1);
    ct_copy_to_host(bm, w2, sizeof w2);
    for (int i = 0; i < 8; i++) ck_assert_int_eq(w1[i], w2[i]);
    for (int i = 0; i < 8; i++) {        /* check against a direct search */
        float *d = ct_data_f32(b);
        int o = i / 4, k = i % 4, best = 0;
        for (int j = 1; j < 3; j++)
            if (d[o * 12 + j * 4 + k] > d[o * 12 + best * 4 + k]) best = j;
        ck_assert_int_eq(w2[i], best);
    }
    ct_tensor *c = TU_RAND(ctx, 9, -1.0f, 1.0f, 4, 100);
    ct_tensor *cm = ct_max(c, 0, false, &idx);
    ct_tensor *ct = ct_max(ct_transpose(c, 0, 1), 1, false, NULL);
    tu_assert_tensors_close(cm, ct, 0, 0);
    ct_tensor *s = ct_max(ct_scalar(ctx, 2.5f), 0, false, &idx);
    ASSERT_SCALAR(s);
    tu_assert_close(s, ((float[]){2.5f}), 0, 0);
    assert_i64(idx, (const int64_t[]){0}, 1);
    /* NaN is the maximum, as in PyTorch */
    ct_tensor *n = ct_from_f32(ctx, (float[]){1, NAN, 3}, CT_SHAPE(3));
    ck_assert(isnan(ct_item(ct_max(n, 0, false, &idx))));
    assert_i64(idx, (const int64_t[]){1}, 1);
    /* large values */
    ct_tensor *l = ct_from_f32(ctx, (float[]){-1e30f, 1e30f, -INFINITY}, CT_SHAPE(3));
    tu_assert_close(ct_max(l, 0, false, NULL), ((float[]){1e30f}), 0, 0);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

typedef struct { int dim; bool keepdim; bool transposed; } max_case;
static ct_tensor *f_max(ct_tensor **in, void *ud) {
    const max_case *c = ud;
    ct_tensor *x = c->transposed ? ct_transpose(in[0], 0, 2) : in[0];
    return ct_max(x, c->dim, c->keepdim, NULL);
}

START_TEST(test_max_gradients) {
    /* _i: bit 0 keepdim, bit 1 transposed, bits 2.. the dim (0, 1, 2, -2) */
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    static const int dims[] = {0, 1, 2, -2};
    max_case c = {dims[_i >> 2], _i & 1, (_i >> 1) & 1};
    ct_tensor *a = spread(ctx, CT_SHAPE(3, 4, 5));
    ct_set_requires_grad(a, true);
    ct_tensor *in[1] = {a};
    ck_assert_int_eq(tu_gradcheck(f_max, 1, in, &c), 60);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_max_gradient_ties) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *a = ct_from_f32(ctx, (float[]){2, 5, 5, 9, 1, 9}, CT_SHAPE(2, 3));
    ct_set_requires_grad(a, true);
    ct_tensor *v = ct_max(a, 1, false, NULL);
    ck_assert_str_eq(ct_grad_fn_name(v), "max");
    ck_assert_int_eq(ct_backward(ct_sum_all(ct_mul_scalar(v, 3.0f))), CT_OK);
    tu_assert_close(ct_grad(a), ((float[]){0, 3, 0, 3, 0, 0}), 0, 0);   /* first maximum only */
    /* indices asked for while recording: still an int64 tensor without a graph */
    ct_tensor *idx = NULL;
    v = ct_max(a, 0, true, &idx);
    ck_assert_ptr_nonnull(idx);
    ck_assert(!ct_requires_grad(idx));
    assert_i64(idx, (const int64_t[]){1, 0, 1}, 3);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- cross-entropy -------------------------------------------------------------------------- */
START_TEST(test_cross_entropy_values) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *x = ct_from_f32(ctx, (float[]){1, 2, 3, 1, 2, 3}, CT_SHAPE(2, 3));
    /* -log softmax([1,2,3]) = [2.40760596, 1.40760596, 0.40760596] */
    ct_tensor *l = ct_cross_entropy(x, I64(ctx, CT_SHAPE(2), 2, 0), -100);
    ASSERT_SCALAR(l);
    tu_assert_close(l, ((float[]){1.40760596f}), 1e-6, 1e-6);
    /* ignored rows do not count in the mean */
    tu_assert_close(ct_cross_entropy(x, I64(ctx, CT_SHAPE(2), 2, -100), -100), ((float[]){0.40760596f}), 1e-6, 1e-6);
    tu_assert_close(ct_cross_entropy(x, I64(ctx, CT_SHAPE(2), -1, 1), -1), ((float[]){1.40760596f}), 1e-6, 1e-6);
    /* an ignore_index inside [0, C) ignores that class */
    tu_assert_close(ct_cross_entropy(x, I64(ctx, CT_SHAPE(2), 0, 1), 0), ((float[]){1.40760596f}), 1e-6, 1e-6);
    /* every target ignored: 0 (PyTorch gives NaN; we document 0) */
    tu_assert_close(ct_cross_entropy(x, I64(ctx, CT_SHAPE(2), -100, -100), -100), ((float[]){0}), 0, 0);
    /* logits [C] with a 0-d target */
    ct_tensor *r = ct_from_f32(ctx, (float[]){0.5f, -1.0f, 2.0f, 0.0f}, CT_SHAPE(4));
    ct_tensor *t0 = ct_from_i64(ctx, (const int64_t[]){2}, 0, NULL);
    tu_assert_close(ct_cross_entropy(r, t0, -100), ((float[]){0.34234958f}), 1e-6, 1e-6);
    /* large logits: no overflow */
    ct_tensor *big = ct_from_f32(ctx, (float[]){1000, 0, -1000, 1000, 1000, 0}, CT_SHAPE(2, 3));
    tu_assert_close(ct_cross_entropy(big, I64(ctx, CT_SHAPE(2), 0, 2), -100), ((float[]){(0 + 1000.6931472f) / 2}), 1e-3, 1e-6);
    tu_assert_close(ct_cross_entropy(big, I64(ctx, CT_SHAPE(2), 1, -100), -100), ((float[]){1000}), 1e-3, 1e-6);
    /* a transposed (non-contiguous) logits view */
    ct_tensor *xt = ct_from_f32(ctx, (float[]){1, 3, 2, 2, 3, 1}, CT_SHAPE(3, 2));
    tu_assert_close(ct_cross_entropy(ct_transpose(xt, 0, 1), I64(ctx, CT_SHAPE(2), 2, 0), -100),
                    ((float[]){0.40760596f}), 1e-6, 1e-6);
    /* matches -mean(log_softmax[target]) computed with other ops */
    ct_tensor *y = TU_RAND(ctx, 4, -3.0f, 3.0f, 5, 7);
    ct_tensor *ls = ct_log_softmax(y, 1);
    const int64_t tg[5] = {3, 0, 6, 6, 1};
    double want = 0;
    for (int i = 0; i < 5; i++) want -= ct_get(ls, (int64_t[]){i, tg[i]});
    tu_assert_close(ct_cross_entropy(y, i64(ctx, tg, CT_SHAPE(5)), -100), ((float[]){(float)(want / 5)}), 1e-5, 1e-5);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

typedef struct { ct_tensor *targets; bool transposed; } ce_case;
static ct_tensor *f_ce(ct_tensor **in, void *ud) {
    const ce_case *c = ud;
    ct_tensor *x = c->transposed ? ct_transpose(in[0], 0, 1) : in[0];
    return ct_cross_entropy(x, c->targets, -100);
}

START_TEST(test_cross_entropy_gradients) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *t = I64(ctx, CT_SHAPE(4), 3, -100, 0, 4);
    /* [4, 5] logits, one ignored row */
    ct_tensor *a = TU_RAND(ctx, 21, -2.0f, 2.0f, 4, 5);
    ct_set_requires_grad(a, true);
    ce_case c = {t, false};
    ck_assert_int_eq(tu_gradcheck(f_ce, 1, &a, &c), 20);
    /* a transposed view of [5, 4] */
    ct_tensor *b = TU_RAND(ctx, 22, -2.0f, 2.0f, 5, 4);
    ct_set_requires_grad(b, true);
    ce_case ct = {t, true};
    ck_assert_int_eq(tu_gradcheck(f_ce, 1, &b, &ct), 20);
    /* logits [C], target 0-d */
    ct_tensor *r = TU_RAND(ctx, 23, -2.0f, 2.0f, 6);
    ct_set_requires_grad(r, true);
    ce_case cr = {ct_from_i64(ctx, (const int64_t[]){5}, 0, NULL), false};
    ck_assert_int_eq(tu_gradcheck(f_ce, 1, &r, &cr), 6);

    /* the gradient is (softmax - onehot) / count, zero on ignored rows */
    ct_zero_grad(a);
    ck_assert_int_eq(ct_backward(ct_cross_entropy(a, t, -100)), CT_OK);
    ct_tensor *sm = ct_softmax(ct_detach(a), 1);
    const int64_t tv[4] = {3, -100, 0, 4};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 5; j++) {
            double want = tv[i] == -100 ? 0.0 : (ct_get(sm, (int64_t[]){i, j}) - (j == tv[i])) / 3.0;
            double got = ct_get(ct_grad(a), (int64_t[]){i, j});
            if (tv[i] == -100) ck_assert(got == 0.0);
            else ck_assert_msg(fabs(got - want) < 1e-6, "grad[%d][%d] = %g, want %g", i, j, got, want);
        }
    /* every target ignored: a zero gradient */
    ct_zero_grad(a);
    ct_tensor *l0 = ct_cross_entropy(a, I64(ctx, CT_SHAPE(4), -100, -100, -100, -100), -100);
    ck_assert_str_eq(ct_grad_fn_name(l0), "cross_entropy");
    ck_assert_int_eq(ct_backward(l0), CT_OK);
    float zeros[20] = {0};
    tu_assert_close(ct_grad(a), zeros, 0, 0);
    /* large logits: finite gradient */
    ct_tensor *big = ct_from_f32(ctx, (float[]){1000, 0, -1000}, CT_SHAPE(1, 3));
    ct_set_requires_grad(big, true);
    ck_assert_int_eq(ct_backward(ct_cross_entropy(big, I64(ctx, CT_SHAPE(1), 1), -100)), CT_OK);
    tu_assert_close(ct_grad(big), ((float[]){1, -1, 0}), 1e-6, 0);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- binary cross-entropy on logits ----------------------------------------------------------- */
START_TEST(test_bce_values) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *x = ct_from_f32(ctx, (float[]){-2, 0, 3, 1.5f, -0.5f, 0.25f}, CT_SHAPE(2, 3));
    ct_tensor *y = ct_from_f32(ctx, (float[]){0, 1, 0.5f, 1, 0.25f, 0}, CT_SHAPE(2, 3));
    ct_tensor *l = ct_bce_with_logits(x, y, CT_REDUCE_NONE);
    ASSERT_SHAPE(l, 2, 3);
    tu_assert_close(l, ((float[]){0.12692801f, 0.69314718f, 1.54858735f, 0.20141328f,
                                  0.59907698f, 0.82593942f}), 1e-6, 1e-6);
    ct_tensor *m = ct_bce_with_logits(x, y, CT_REDUCE_MEAN);
    ASSERT_SCALAR(m);
    tu_assert_close(m, ((float[]){0.66584870f}), 1e-6, 1e-6);
    tu_assert_close(ct_bce_with_logits(x, y, CT_REDUCE_SUM), ((float[]){3.99509223f}), 1e-6, 1e-6);
    /* sum over the last dim (3), mean over the 2 rows */
    ct_tensor *slm = ct_bce_with_logits(x, y, CT_REDUCE_SUM_LAST_MEAN);
    ASSERT_SCALAR(slm);
    tu_assert_close(slm, ((float[]){1.99754611f}), 1e-6, 1e-6);
    /* a transposed view of both */
    ct_tensor *xt = ct_transpose(ct_contiguous(ct_transpose(x, 0, 1)), 0, 1);
    ck_assert(!ct_is_contiguous(xt));
    tu_assert_close(ct_bce_with_logits(xt, y, CT_REDUCE_NONE),
                    ((float[]){0.12692801f, 0.69314718f, 1.54858735f, 0.20141328f,
                               0.59907698f, 0.82593942f}), 1e-6, 1e-6);
    /* large logits: no overflow, exact */
    ct_tensor *bx = ct_from_f32(ctx, (float[]){1000, -1000, 1000, -1000}, CT_SHAPE(4));
    ct_tensor *by = ct_from_f32(ctx, (float[]){1, 0, 0, 1}, CT_SHAPE(4));
    tu_assert_close(ct_bce_with_logits(bx, by, CT_REDUCE_NONE), ((float[]){0, 0, 1000, 1000}), 0, 0);
    /* a 0-d input; an empty mean is NaN, an empty sum 0 */
    tu_assert_close(ct_bce_with_logits(ct_scalar(ctx, 0), ct_scalar(ctx, 1), CT_REDUCE_SUM_LAST_MEAN),
                    ((float[]){0.69314718f}), 1e-6, 0);
    ct_tensor *ez = ct_zeros(ctx, CT_SHAPE(0, 3));
    ck_assert(isnan(ct_item(ct_bce_with_logits(ez, ez, CT_REDUCE_MEAN))));
    ck_assert(ct_item(ct_bce_with_logits(ez, ez, CT_REDUCE_SUM)) == 0.0);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

typedef struct { ct_reduction red; bool transposed; } bce_case;
static ct_tensor *f_bce(ct_tensor **in, void *ud) {
    const bce_case *c = ud;
    ct_tensor *x = c->transposed ? ct_transpose(in[0], 0, 1) : in[0];
    ct_tensor *y = c->transposed ? ct_transpose(in[1], 0, 1) : in[1];
    return ct_bce_with_logits(x, y, c->red);
}

START_TEST(test_bce_gradients) {
    /* _i: bits 0-1 the reduction, bit 2 transposed, bit 3 targets require grad */
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    bce_case c = {(ct_reduction)(_i & 3), (_i >> 2) & 1};
    ct_tensor *x = TU_RAND(ctx, 31 + _i, -3.0f, 3.0f, 3, 4);
    ct_tensor *y = TU_RAND(ctx, 41 + _i, 0.0f, 1.0f, 3, 4);
    ct_set_requires_grad(x, true);
    bool ygrad = (_i >> 3) & 1;
    ct_set_requires_grad(y, ygrad);
    ct_tensor *in[2] = {x, y};
    ck_assert_int_eq(tu_gradcheck(f_bce, 2, in, &c), ygrad ? 24 : 12);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_bce_gradient_values) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    /* mean over 4: d/dx = (sigmoid(x) - y) / 4, d/dy = -x / 4 */
    ct_tensor *x = ct_from_f32(ctx, (float[]){0, 1000, -1000, 2}, CT_SHAPE(2, 2));
    ct_tensor *y = ct_from_f32(ctx, (float[]){1, 0, 0, 0.5f}, CT_SHAPE(2, 2));
    ct_set_requires_grad(x, true);
    ct_set_requires_grad(y, true);
    ct_tensor *l = ct_bce_with_logits(x, y, CT_REDUCE_MEAN);
    ck_assert_str_eq(ct_grad_fn_name(l), "bce_with_logits");
    ck_assert_int_eq(ct_backward(l), CT_OK);
    tu_assert_close(ct_grad(x), ((float[]){-0.125f, 0.25f, 0, (0.88079708f - 0.5f) / 4}), 1e-7, 1e-6);
    tu_assert_close(ct_grad(y), ((float[]){0, -250, 250, -0.5f}), 1e-7, 1e-6);
    /* sum over the last dim, mean over 2 rows */
    ct_zero_grad(x);
    ct_zero_grad(y);
    ck_assert_int_eq(ct_backward(ct_bce_with_logits(x, y, CT_REDUCE_SUM_LAST_MEAN)), CT_OK);
    tu_assert_close(ct_grad(x), ((float[]){-0.25f, 0.5f, 0, (0.88079708f - 0.5f) / 2}), 1e-7, 1e-6);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- embedding ------------------------------------------------------------------------------ */
START_TEST(test_embedding_values) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *w = ct_from_f32(ctx, (float[]){0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32}, CT_SHAPE(4, 3));
    ct_tensor *e = ct_embedding(w, I64(ctx, CT_SHAPE(2, 2), 1, 3, 0, 1));
    ASSERT_SHAPE(e, 2, 2, 3);
    tu_assert_close(e, ((float[]){10, 11, 12, 30, 31, 32, 0, 1, 2, 10, 11, 12}), 0, 0);
    /* a 0-d index gives one row; an empty index tensor gives [0, D] */
    ct_tensor *e0 = ct_embedding(w, ct_from_i64(ctx, (const int64_t[]){2}, 0, NULL));
    ASSERT_SHAPE(e0, 3);
    tu_assert_close(e0, ((float[]){20, 21, 22}), 0, 0);
    ASSERT_SHAPE(ct_embedding(w, ct_empty(ctx, CT_I64, CT_SHAPE(0))), 0, 3);
    /* a transposed weight (tied output projection) and transposed indices */
    ct_tensor *wt = ct_transpose(ct_contiguous(ct_transpose(w, 0, 1)), 0, 1);
    ck_assert(!ct_is_contiguous(wt));
    ct_tensor *it = ct_transpose(I64(ctx, CT_SHAPE(2, 2), 1, 0, 3, 1), 0, 1);      /* [[1,3],[0,1]] */
    tu_assert_close(ct_embedding(wt, it), ((float[]){10, 11, 12, 30, 31, 32, 0, 1, 2, 10, 11, 12}), 0, 0);
    /* backward scatter-adds: a repeated index accumulates */
    ct_tensor *p = ct_clone(w);
    ct_set_requires_grad(p, true);
    ct_tensor *out = ct_embedding(p, I64(ctx, CT_SHAPE(4), 1, 3, 1, 1));
    ck_assert_str_eq(ct_grad_fn_name(out), "embedding");
    ck_assert_int_eq(ct_backward(ct_sum_all(out)), CT_OK);
    tu_assert_close(ct_grad(p), ((float[]){0, 0, 0, 3, 3, 3, 0, 0, 0, 1, 1, 1}), 0, 0);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

typedef struct { ct_tensor *idx; bool transposed; } emb_case;
static ct_tensor *f_emb(ct_tensor **in, void *ud) {
    const emb_case *c = ud;
    return ct_embedding(c->transposed ? ct_transpose(in[0], 0, 1) : in[0], c->idx);
}

START_TEST(test_embedding_gradients) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *idx = I64(ctx, CT_SHAPE(2, 3), 4, 0, 4, 2, 1, 4);
    ct_tensor *w = TU_RAND(ctx, 51, -1.0f, 1.0f, 5, 3);
    ct_set_requires_grad(w, true);
    emb_case c = {idx, false};
    ck_assert_int_eq(tu_gradcheck(f_emb, 1, &w, &c), 15);
    ct_tensor *wt = TU_RAND(ctx, 52, -1.0f, 1.0f, 3, 5);     /* used as its [5, 3] transpose */
    ct_set_requires_grad(wt, true);
    emb_case ct = {idx, true};
    ck_assert_int_eq(tu_gradcheck(f_emb, 1, &wt, &ct), 15);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- graph and memory ---------------------------------------------------------------------- */
START_TEST(test_nn_graph_memory) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *w = TU_RAND(ctx, 61, -1.0f, 1.0f, 6, 4);
    ct_set_requires_grad(w, true);
    ct_tensor *t = I64(ctx, CT_SHAPE(3), 1, 3, -100);
    ct_tensor *ix = I64(ctx, CT_SHAPE(3), 0, 5, 2);
    ct_mem_stats before = ct_ctx_mem_stats(ctx);
    for (int step = 0; step < 3; step++) {
        ct_scope_begin(ctx);
        ct_tensor *h = ct_embedding(w, ix);                                   /* [3, 4] */
        ct_tensor *loss = ct_cross_entropy(ct_log_softmax(ct_softmax(h, 0), 1), t, -100);
        ct_tensor *mx = ct_max(h, 1, false, NULL);
        ct_tensor *b = ct_bce_with_logits(mx, ct_full(ctx, 0.5f, CT_SHAPE(3)), CT_REDUCE_MEAN);
        ck_assert_int_eq(ct_graph_size(loss), 4);
        ck_assert_int_eq(ct_backward(ct_add(loss, b)), CT_OK);
        ct_scope_end(ctx);
    }
    ct_mem_stats after = ct_ctx_mem_stats(ctx);
    ck_assert_int_eq(after.live_nodes, before.live_nodes);
    ck_assert_int_eq(after.live_tensors, before.live_tensors + 1);   /* w->grad */
    /* grad mode off: no graph */
    bool was = ct_set_grad_enabled(ctx, false);
    ck_assert_ptr_null(ct_grad_fn_name(ct_softmax(w, 1)));
    ck_assert_ptr_null(ct_grad_fn_name(ct_max(w, 1, false, NULL)));
    ck_assert_ptr_null(ct_grad_fn_name(ct_embedding(w, ix)));
    ct_set_grad_enabled(ctx, was);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- errors ------------------------------------------------------------------------------- */
#define EXPECT_ERR(expr, want_status, text)                                                       \
    do {                                                                                     \
        int before_ = errs.count;                                                            \
        ck_assert_ptr_null(expr);                                                            \
        ck_assert_int_eq(errs.count, before_ + 1);                                           \
        ck_assert_int_eq(errs.last.status, want_status);                                     \
        ck_assert_msg(strstr(errs.last.msg, text) != NULL, "message '%s' lacks '%s'",       \
                      errs.last.msg, text);                                                  \
        ck_assert_msg(strstr(errs.last.msg, "test_nn_ops.c:") != NULL,                      \
                      "message '%s' does not name the caller", errs.last.msg);              \
    } while (0)

START_TEST(test_nn_errors) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *x = ct_from_f32(ctx, (float[]){1, 2, 3, 4, 5, 6}, CT_SHAPE(2, 3));
    ct_tensor *ii = I64(ctx, CT_SHAPE(3), 0, 1, 2);

    /* softmax / log_softmax */
    EXPECT_ERR(ct_softmax(x, 2), CT_E_ARG, "softmax: dim 2 is out of range for a tensor of shape [2, 3]");
    EXPECT_ERR(ct_log_softmax(x, -3), CT_E_ARG, "log_softmax: dim -3 is out of range");
    EXPECT_ERR(ct_softmax(ii, 0), CT_E_DTYPE, "softmax: operand 0 [3] is int64; expected float32");

    /* max / argmax */
    EXPECT_ERR(ct_max(x, 5, false, NULL), CT_E_ARG, "max: dim 5 is out of range");
    EXPECT_ERR(ct_argmax(ii, 0, false), CT_E_DTYPE, "argmax: operand 0 [3] is int64");
    ct_tensor *idx = x;              /* must be cleared on failure */
    EXPECT_ERR(ct_max(ct_zeros(ctx, CT_SHAPE(2, 0)), 1, false, &idx), CT_E_SHAPE,
               "max: dim 1 of the tensor [2, 0] has size 0");
    ck_assert_ptr_null(idx);
    EXPECT_ERR(ct_argmax(ct_zeros(ctx, CT_SHAPE(0, 3)), 0, true), CT_E_SHAPE, "argmax: dim 0 of the tensor [0, 3]");

    /* cross_entropy */
    EXPECT_ERR(ct_cross_entropy(x, I64(ctx, CT_SHAPE(2), 0, 5), -100), CT_E_ARG,
               "cross_entropy: target 5 at position 1 is out of range for 3 classes (logits [2, 3]; "
               "valid: 0 to 2, or ignore_index -100)");
    EXPECT_ERR(ct_cross_entropy(x, I64(ctx, CT_SHAPE(2), -1, 0), -100), CT_E_ARG, "target -1 at position 0 is out of range");
    EXPECT_ERR(ct_cross_entropy(x, ct_zeros(ctx, CT_SHAPE(2)), -100), CT_E_DTYPE,
               "cross_entropy: targets [2] are float32; expected int64 class indices");
    EXPECT_ERR(ct_cross_entropy(ct_arange(ctx, CT_I64, 3), ct_from_i64(ctx, (const int64_t[]){0}, 0, NULL), -100),
               CT_E_DTYPE, "cross_entropy: logits [3] are int64; expected float32");
    EXPECT_ERR(ct_cross_entropy(x, ii, -100), CT_E_SHAPE,
               "cross_entropy: logits [2, 3] and targets [3] do not fit: expected logits [N, C] "
               "with targets [N], or logits [C] with a 0-d target");
    EXPECT_ERR(ct_cross_entropy(ct_zeros(ctx, CT_SHAPE(2, 3, 4)), I64(ctx, CT_SHAPE(2), 0, 1), -100), CT_E_SHAPE,
               "logits [2, 3, 4] and targets [2] do not fit");

    /* bce_with_logits */
    ct_tensor *y3 = ct_zeros(ctx, CT_SHAPE(3));
    EXPECT_ERR(ct_bce_with_logits(x, y3, CT_REDUCE_MEAN), CT_E_SHAPE,
               "bce_with_logits: logits [2, 3] and targets [3] differ; targets must have the logits' shape");
    EXPECT_ERR(ct_bce_with_logits(y3, ii, CT_REDUCE_MEAN), CT_E_DTYPE,
               "bce_with_logits: operand 1 [3] is int64; expected float32");
    EXPECT_ERR(ct_bce_with_logits(y3, y3, (ct_reduction)7), CT_E_ARG, "bce_with_logits: unknown reduction 7");

    /* embedding */
    ct_tensor *w = ct_zeros(ctx, CT_SHAPE(4, 3));
    EXPECT_ERR(ct_embedding(w, I64(ctx, CT_SHAPE(2, 2), 0, 1, 7, 2)), CT_E_ARG,
               "embedding: index 7 at position [1, 0] of indices [2, 2] is out of range for weight "
               "[4, 3] (valid: 0 to 3, V = 4)");
    EXPECT_ERR(ct_embedding(w, I64(ctx, CT_SHAPE(1), -1)), CT_E_ARG, "embedding: index -1 at position [0]");
    EXPECT_ERR(ct_embedding(w, ct_zeros(ctx, CT_SHAPE(2))), CT_E_DTYPE,
               "embedding: indices [2] are float32; expected int64");
    EXPECT_ERR(ct_embedding(ct_zeros(ctx, CT_SHAPE(4)), ii), CT_E_SHAPE,
               "embedding: weight [4] is float32; expected a float32 [V, D] matrix");
    EXPECT_ERR(ct_embedding(ct_arange(ctx, CT_I64, 4), ii), CT_E_DTYPE, "weight [4] is int64");
    EXPECT_ERR(ct_embedding(w, ct_empty(ctx, CT_I64, CT_SHAPE(1, 1, 1, 1, 1, 1, 1, 1))), CT_E_SHAPE,
               "embedding: indices [1, 1, 1, 1, 1, 1, 1, 1] have 8 dims");

    /* NULL inputs: NULL quietly, no new error */
    int n = errs.count;
    ck_assert_ptr_null(ct_softmax(NULL, 0));
    ck_assert_ptr_null(ct_log_softmax(NULL, 0));
    idx = x;
    ck_assert_ptr_null(ct_max(NULL, 0, false, &idx));
    ck_assert_ptr_null(idx);
    ck_assert_ptr_null(ct_argmax(NULL, 0, false));
    ck_assert_ptr_null(ct_cross_entropy(NULL, ii, -100));
    ck_assert_ptr_null(ct_cross_entropy(x, NULL, -100));
    ck_assert_ptr_null(ct_bce_with_logits(NULL, y3, CT_REDUCE_SUM));
    ck_assert_ptr_null(ct_bce_with_logits(y3, NULL, CT_REDUCE_SUM));
    ck_assert_ptr_null(ct_embedding(NULL, ii));
    ck_assert_ptr_null(ct_embedding(w, NULL));
    ck_assert_int_eq(errs.count, n);

    /* mixing contexts */
    ct_ctx *other = tu_ctx(NULL);
    EXPECT_ERR(ct_bce_with_logits(y3, ct_zeros(other, CT_SHAPE(3)), CT_REDUCE_SUM), CT_E_ARG,
               "bce_with_logits: operand 1 belongs to another context");
    ct_ctx_free(other);
    ct_ctx_free(ctx);
}
END_TEST

Suite *nn_ops_suite(void) {
    Suite *s = suite_create("nn_ops");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_softmax_values);
    tcase_add_loop_test(tc, test_softmax_gradients, 0, 16);
    tcase_add_test(tc, test_softmax_gradients_wide);
    tcase_add_test(tc, test_max_values);
    tcase_add_loop_test(tc, test_max_gradients, 0, 16);
    tcase_add_test(tc, test_max_gradient_ties);
    tcase_add_test(tc, test_cross_entropy_values);
    tcase_add_test(tc, test_cross_entropy_gradients);
    tcase_add_test(tc, test_bce_values);
    tcase_add_loop_test(tc, test_bce_gradients, 0, 16);
    tcase_add_test(tc, test_bce_gradient_values);
    tcase_add_test(tc, test_embedding_values);
    tcase_add_test(tc, test_embedding_gradients);
    tcase_add_test(tc, test_nn_graph_memory);
    tcase_add_test(tc, test_nn_errors);
    suite_add_tcase(s, tc);
    return s;
}
