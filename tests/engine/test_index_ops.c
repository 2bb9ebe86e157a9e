/* tests/engine/test_index_ops.c — index_select, gather, where, masked_fill, concat, stack,
 * split, chunk and dropout: values, gradients (finite differences, non-contiguous inputs,
 * repeated indices, broadcasting) and error messages. */
#include <math.h>
#include <stdlib.h>

#include "testutil.h"

/* the caller's file, as error messages name it */
#define THIS_FILE "test_index_ops.c"

static ct_tensor *i64(ct_ctx *ctx, int n, const int64_t *v) { return ct_from_i64(ctx, v, 1, (int64_t[]){n}); }

/* asserts the error count grew by one and the message holds each of the given strings */
#define ASSERT_ERR(errs, before, want_status, ...)                                                  \
    do {                                                                                       \
        ck_assert_int_eq((errs).count, (before) + 1);                                          \
        ck_assert_int_eq((errs).last.status, (want_status));                                        \
        const char *want_[] = {__VA_ARGS__, THIS_FILE};                                        \
        for (size_t k_ = 0; k_ < sizeof want_ / sizeof want_[0]; k_++)                         \
            ck_assert_msg(strstr((errs).last.msg, want_[k_]) != NULL,                          \
                          "message \"%s\" lacks \"%s\"", (errs).last.msg, want_[k_]);          \
    } while (0)

/* ---- index_select --------------------------------------------------------------------------- */
START_TEST(test_index_select_values) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *a = ct_from_f32(ctx, (float[]){0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23}, CT_SHAPE(3, 4));
    ct_tensor *r = ct_index_select(a, 0, i64(ctx, 3, (int64_t[]){2, 0, 2}));
    ck_assert_int_eq(r->ndim, 2);
    ck_assert_int_eq(r->shape[0], 3);
    tu_assert_close(r, ((float[]){20, 21, 22, 23, 0, 1, 2, 3, 20, 21, 22, 23}), 0, 0);
    r = ct_index_select(a, 1, i64(ctx, 2, (int64_t[]){3, 1}));
    tu_assert_close(r, ((float[]){3, 1, 13, 11, 23, 21}), 0, 0);
    r = ct_index_select(a, -1, i64(ctx, 1, (int64_t[]){0}));
    ck_assert_int_eq(r->shape[1], 1);
    tu_assert_close(r, ((float[]){0, 10, 20}), 0, 0);
    /* a transposed (non-contiguous) input */
    r = ct_index_select(ct_transpose(a, 0, 1), 0, i64(ctx, 2, (int64_t[]){1, 1}));
    tu_assert_close(r, ((float[]){1, 11, 21, 1, 11, 21}), 0, 0);
    /* a 0-d index keeps the dim with size 1 */
    r = ct_index_select(a, 0, ct_from_i64(ctx, (int64_t[]){1}, 0, NULL));
    ck_assert_int_eq(r->shape[0], 1);
    tu_assert_close(r, ((float[]){10, 11, 12, 13}), 0, 0);
    /* no indices: an empty result */
    r = ct_index_select(a, 1, ct_from_i64(ctx, NULL, 1, (int64_t[]){0}));
    ck_assert_int_eq(r->shape[0], 3);
    ck_assert_int_eq(r->shape[1], 0);
    /* int64 data */
    ct_tensor *li = ct_from_i64(ctx, (int64_t[]){5, 6, 7, 8, 9, 10}, CT_SHAPE(3, 2));
    r = ct_index_select(li, 0, i64(ctx, 2, (int64_t[]){2, 0}));
    ck_assert_int_eq(r->dtype, CT_I64);
    ck_assert_int_eq(ct_data_i64(r)[0], 9);
    ck_assert_int_eq(ct_data_i64(r)[3], 6);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

/* repeated indices: the gradient of each row counts how often it was picked */
START_TEST(test_index_select_repeated_grad) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *x = TU_RAND(ctx, 3, -1, 1, 3, 2);
    ct_set_requires_grad(x, true);
    ct_tensor *y = ct_index_select(x, 0, i64(ctx, 4, (int64_t[]){1, 1, 0, 1}));
    ck_assert_str_eq(ct_grad_fn_name(y), "index_select");
    ck_assert_int_eq(ct_backward(ct_sum_all(y)), CT_OK);
    tu_assert_close(ct_grad(x), ((float[]){1, 1, 3, 3, 0, 0}), 0, 0);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

typedef struct sel_ud { int dim; ct_tensor *idx; } sel_ud;

/* on a transposed view of the [3, 4, 5] leaf: [5, 4, 3] */
static ct_tensor *f_index_select(ct_tensor **in, void *ud) {
    sel_ud *u = ud;
    return ct_index_select(ct_transpose(in[0], 0, 2), u->dim, u->idx);
}

START_TEST(test_index_select_grad) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    static const int dims[] = {0, 1, 2, -1};
    ct_tensor *x = TU_RAND(ctx, 10 + _i, -1, 1, 3, 4, 5);
    ct_set_requires_grad(x, true);
    sel_ud u = {dims[_i], i64(ctx, 5, (int64_t[]){2, 0, 2, 1, 2})};
    ct_tensor *in[1] = {x};
    ck_assert_int_eq(tu_gradcheck(f_index_select, 1, in, &u), 60);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- gather --------------------------------------------------------------------------------- */
START_TEST(test_gather_values) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *t = ct_from_f32(ctx, (float[]){1, 2, 3, 4}, CT_SHAPE(2, 2));
    /* torch.gather(t, 1, [[0, 0], [1, 0]]) = [[1, 1], [4, 3]] */
    ct_tensor *ix = ct_from_i64(ctx, (int64_t[]){0, 0, 1, 0}, CT_SHAPE(2, 2));
    tu_assert_close(ct_gather(t, 1, ix), ((float[]){1, 1, 4, 3}), 0, 0);
    /* dim 0, an index smaller than the input: [[t[1][0], t[0][1]]] */
    ct_tensor *r = ct_gather(t, 0, ct_from_i64(ctx, (int64_t[]){1, 0}, CT_SHAPE(1, 2)));
    ck_assert_int_eq(r->shape[0], 1);
    ck_assert_int_eq(r->shape[1], 2);
    tu_assert_close(r, ((float[]){3, 2}), 0, 0);
    /* larger than the input along dim, with repeats */
    r = ct_gather(t, -1, ct_from_i64(ctx, (int64_t[]){1, 1, 1, 0, 0, 0}, CT_SHAPE(2, 3)));
    tu_assert_close(r, ((float[]){2, 2, 2, 3, 3, 3}), 0, 0);
    /* a transposed input: tt = [[1, 3], [2, 4]] */
    r = ct_gather(ct_transpose(t, 0, 1), 1, ix);
    tu_assert_close(r, ((float[]){1, 1, 4, 2}), 0, 0);
    /* a transposed index: ix^T = [[0, 1], [0, 0]] */
    r = ct_gather(t, 1, ct_transpose(ix, 0, 1));
    tu_assert_close(r, ((float[]){1, 2, 3, 3}), 0, 0);
    /* int64 data */
    ct_tensor *li = ct_from_i64(ctx, (int64_t[]){5, 6, 7, 8}, CT_SHAPE(2, 2));
    r = ct_gather(li, 1, ix);
    ck_assert_int_eq(r->dtype, CT_I64);
    ck_assert_int_eq(ct_data_i64(r)[2], 8);
    ck_assert_int_eq(ct_data_i64(r)[3], 7);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_gather_repeated_grad) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *x = TU_RAND(ctx, 5, -1, 1, 1, 3);
    ct_set_requires_grad(x, true);
    ct_tensor *y = ct_gather(x, 1, ct_from_i64(ctx, (int64_t[]){0, 0, 2, 0}, CT_SHAPE(1, 4)));
    ck_assert_str_eq(ct_grad_fn_name(y), "gather");
    ck_assert_int_eq(ct_backward(ct_sum_all(y)), CT_OK);
    tu_assert_close(ct_grad(x), ((float[]){3, 0, 1}), 0, 0);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

static ct_tensor *f_gather(ct_tensor **in, void *ud) {
    sel_ud *u = ud;
    return ct_gather(ct_transpose(in[0], 0, 2), u->dim, u->idx);
}

START_TEST(test_gather_grad) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    int d = _i;
    ct_tensor *x = TU_RAND(ctx, 20 + _i, -1, 1, 3, 4, 5);
    ct_set_requires_grad(x, true);
    /* the view is [5, 4, 3]; the index is 6 long along d (repeats) and shorter in another dim */
    int64_t vs[3] = {5, 4, 3}, is[3] = {5, 4, 3};
    is[d] = 6;
    is[(d + 1) % 3] -= 1;
    ct_tensor *idx = ct_empty(ctx, CT_I64, 3, is);
    int64_t *iv = ct_data_i64(idx);
    for (int64_t k = 0; k < ct_numel(idx); k++) iv[k] = (k * 5 + 1) % vs[d];
    sel_ud u = {d, idx};
    ct_tensor *in[1] = {x};
    ck_assert_int_eq(tu_gradcheck(f_gather, 1, in, &u), 60);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- where ---------------------------------------------------------------------------------- */
START_TEST(test_where_values) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *a = ct_from_f32(ctx, (float[]){1, 2, 3, 4, 5, 6}, CT_SHAPE(2, 3));
    ct_tensor *b = ct_from_f32(ctx, (float[]){-1, -2, -3}, CT_SHAPE(3));
    /* int64 condition [2, 1]: row 0 from a, row 1 from b */
    ct_tensor *c = ct_from_i64(ctx, (int64_t[]){7, 0}, CT_SHAPE(2, 1));
    tu_assert_close(ct_where(c, a, b), ((float[]){1, 2, 3, -1, -2, -3}), 0, 0);
    /* float condition [3] with a 0-d b: nonzero (negative included) is true */
    ct_tensor *cf = ct_from_f32(ctx, (float[]){0, 0.5f, -2}, CT_SHAPE(3));
    tu_assert_close(ct_where(cf, a, ct_scalar(ctx, 9)), ((float[]){9, 2, 3, 9, 5, 6}), 0, 0);
    /* everything broadcast: cond [2, 1], a [3], b [] -> [2, 3] */
    ct_tensor *r = ct_where(c, b, ct_scalar(ctx, 0));
    ck_assert_int_eq(r->ndim, 2);
    tu_assert_close(r, ((float[]){-1, -2, -3, 0, 0, 0}), 0, 0);
    /* int64 values */
    ct_tensor *la = ct_from_i64(ctx, (int64_t[]){1, 2}, CT_SHAPE(2));
    ct_tensor *lb = ct_from_i64(ctx, (int64_t[]){-1, -2}, CT_SHAPE(2));
    r = ct_where(ct_from_i64(ctx, (int64_t[]){0, 1}, CT_SHAPE(2)), la, lb);
    ck_assert_int_eq(ct_data_i64(r)[0], -1);
    ck_assert_int_eq(ct_data_i64(r)[1], 2);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_where_grad_values) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *a = TU_RAND(ctx, 1, -1, 1, 2, 3);
    ct_tensor *b = TU_RAND(ctx, 2, -1, 1, 3);
    ct_set_requires_grad(a, true);
    ct_set_requires_grad(b, true);
    ct_tensor *c = ct_from_f32(ctx, (float[]){1, 0, 1, 0, 0, 1}, CT_SHAPE(2, 3));
    ct_tensor *y = ct_where(c, a, b);
    ck_assert_str_eq(ct_grad_fn_name(y), "where");
    ck_assert_int_eq(ct_backward(ct_sum_all(y)), CT_OK);
    tu_assert_close(ct_grad(a), ((float[]){1, 0, 1, 0, 0, 1}), 0, 0);
    tu_assert_close(ct_grad(b), ((float[]){1, 2, 0}), 0, 0);    /* summed over the broadcast */
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

typedef struct where_ud { ct_tensor *cond; } where_ud;
/* variant 0: a is a transposed [3, 2] leaf, b [3], int64 cond [2, 1];
 * variant 1: a [2, 3], b 0-d, float cond [3] */
static ct_tensor *f_where0(ct_tensor **in, void *ud) {
    return ct_where(((where_ud *)ud)->cond, ct_transpose(in[0], 0, 1), in[1]);
}
static ct_tensor *f_where1(ct_tensor **in, void *ud) {
    return ct_where(((where_ud *)ud)->cond, in[0], in[1]);
}

START_TEST(test_where_grad) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *a, *b;
    where_ud u;
    if (_i == 0) {
        a = TU_RAND(ctx, 3, -1, 1, 3, 2);
        b = TU_RAND(ctx, 4, -1, 1, 3);
        u.cond = ct_from_i64(ctx, (int64_t[]){0, 3}, CT_SHAPE(2, 1));
    } else {
        a = TU_RAND(ctx, 5, -1, 1, 2, 3);
        b = ct_scalar(ctx, 0.25f);
        u.cond = ct_from_f32(ctx, (float[]){1, 0, -1}, CT_SHAPE(3));
    }
    ct_set_requires_grad(a, true);
    ct_set_requires_grad(b, true);
    ct_tensor *in[2] = {a, b};
    ck_assert_int_eq(tu_gradcheck(_i == 0 ? f_where0 : f_where1, 2, in, &u), ct_numel(a) + ct_numel(b));
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- masked_fill ---------------------------------------------------------------------------- */
START_TEST(test_masked_fill_values) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *a = ct_from_f32(ctx, (float[]){1, 2, 3, 4, 5, 6}, CT_SHAPE(2, 3));
    ct_tensor *m = ct_from_i64(ctx, (int64_t[]){1, 0, 1}, CT_SHAPE(3));
    ct_tensor *r = ct_masked_fill(a, m, -INFINITY);
    const float *rv = ct_data_f32(r);
    for (int i = 0; i < 6; i++)
        ck_assert_msg(i % 3 == 1 ? rv[i] == (float)(i + 1) : isinf(rv[i]) && rv[i] < 0, "element %d is %g", i, rv[i]);
    tu_assert_close(ct_masked_fill(a, m, -1e9f), ((float[]){-1e9f, 2, -1e9f, -1e9f, 5, -1e9f}), 0, 0);
    ct_tensor *mf = ct_from_f32(ctx, (float[]){0, 1}, CT_SHAPE(2, 1));
    tu_assert_close(ct_masked_fill(a, mf, 7), ((float[]){1, 2, 3, 7, 7, 7}), 0, 0);
    /* a transposed input: [[1, 4], [2, 5], [3, 6]] with the mask [2, 1]... as [1, 2] */
    ct_tensor *m2 = ct_from_i64(ctx, (int64_t[]){0, 1}, CT_SHAPE(1, 2));
    tu_assert_close(ct_masked_fill(ct_transpose(a, 0, 1), m2, 0), ((float[]){1, 0, 2, 0, 3, 0}), 0, 0);
    /* the same-shape mask; the input is unchanged */
    ct_tensor *m3 = ct_from_f32(ctx, (float[]){0, 0, 0, 0, 0, 1}, CT_SHAPE(2, 3));
    tu_assert_close(ct_masked_fill(a, m3, 0.5f), ((float[]){1, 2, 3, 4, 5, 0.5f}), 0, 0);
    tu_assert_close(a, ((float[]){1, 2, 3, 4, 5, 6}), 0, 0);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

static ct_tensor *f_masked_fill(ct_tensor **in, void *ud) {
    return ct_masked_fill(ct_transpose(in[0], 0, 1), ((where_ud *)ud)->cond, 3.0f);
}

START_TEST(test_masked_fill_grad) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *x = TU_RAND(ctx, 8, -1, 1, 3, 2);    /* viewed as [2, 3] */
    ct_set_requires_grad(x, true);
    where_ud u = {_i == 0 ? ct_from_i64(ctx, (int64_t[]){1, 0, 1}, CT_SHAPE(3))
                          : ct_from_f32(ctx, (float[]){0, 1}, CT_SHAPE(2, 1))};
    ct_tensor *in[1] = {x};
    ck_assert_int_eq(tu_gradcheck(f_masked_fill, 1, in, &u), 6);
    /* directly: zero where filled (x^T [2, 3] with the mask [1, 0, 1] -> x[0][*], x[2][*]) */
    ct_scope_begin(ctx);
    ct_zero_grad(x);
    ct_tensor *y = f_masked_fill(in, &u);
    ck_assert_str_eq(ct_grad_fn_name(y), "masked_fill");
    ck_assert_int_eq(ct_backward(ct_sum_all(y)), CT_OK);
    if (_i == 0) tu_assert_close(ct_grad(x), ((float[]){0, 0, 1, 1, 0, 0}), 0, 0);
    else tu_assert_close(ct_grad(x), ((float[]){1, 0, 1, 0, 1, 0}), 0, 0);
    ct_scope_end(ctx);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- concat and stack ----------------------------------------------------------------------- */
START_TEST(test_concat_values) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *a = ct_from_f32(ctx, (float[]){1, 2, 3, 4}, CT_SHAPE(2, 2));
    ct_tensor *b = ct_from_f32(ctx, (float[]){5, 6}, CT_SHAPE(1, 2));
    ct_tensor *r = ct_concat(2, ((ct_tensor *[]){a, b}), 0);
    ck_assert_int_eq(r->shape[0], 3);
    tu_assert_close(r, ((float[]){1, 2, 3, 4, 5, 6}), 0, 0);
    ct_tensor *c = ct_from_f32(ctx, (float[]){7, 8, 9, 10, 11, 12}, CT_SHAPE(2, 3));
    r = ct_concat(3, ((ct_tensor *[]){a, c, ct_transpose(a, 0, 1)}), -1);
    ck_assert_int_eq(r->shape[1], 7);
    tu_assert_close(r, ((float[]){1, 2, 7, 8, 9, 1, 3, 3, 4, 10, 11, 12, 2, 4}), 0, 0);
    /* one input: a copy; an empty input adds nothing */
    r = ct_concat(2, ((ct_tensor *[]){a, ct_zeros(ctx, CT_SHAPE(0, 2))}), 0);
    tu_assert_close(r, ((float[]){1, 2, 3, 4}), 0, 0);
    ck_assert_ptr_ne(r->storage, a->storage);
    /* int64 */
    ct_tensor *l = ct_concat(2, ((ct_tensor *[]){i64(ctx, 2, (int64_t[]){1, 2}), i64(ctx, 1, (int64_t[]){3})}), 0);
    ck_assert_int_eq(l->dtype, CT_I64);
    ck_assert_int_eq(ct_data_i64(l)[2], 3);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_stack_values) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *a = ct_from_f32(ctx, (float[]){1, 2, 3}, CT_SHAPE(3));
    ct_tensor *b = ct_from_f32(ctx, (float[]){4, 5, 6}, CT_SHAPE(3));
    ct_tensor *r = ct_stack(2, ((ct_tensor *[]){a, b}), 0);
    ck_assert_int_eq(r->ndim, 2);
    ck_assert_int_eq(r->shape[0], 2);
    tu_assert_close(r, ((float[]){1, 2, 3, 4, 5, 6}), 0, 0);
    r = ct_stack(2, ((ct_tensor *[]){a, b}), 1);
    ck_assert_int_eq(r->shape[0], 3);
    ck_assert_int_eq(r->shape[1], 2);
    tu_assert_close(r, ((float[]){1, 4, 2, 5, 3, 6}), 0, 0);
    r = ct_stack(2, ((ct_tensor *[]){a, b}), -1);
    tu_assert_close(r, ((float[]){1, 4, 2, 5, 3, 6}), 0, 0);
    /* 0-d inputs stack into a vector */
    r = ct_stack(3, ((ct_tensor *[]){ct_scalar(ctx, 1), ct_scalar(ctx, 2), ct_scalar(ctx, 3)}), 0);
    ck_assert_int_eq(r->ndim, 1);
    tu_assert_close(r, ((float[]){1, 2, 3}), 0, 0);
    /* stack == unsqueeze + concat, with a transposed input */
    ct_tensor *m = ct_from_f32(ctx, (float[]){1, 2, 3, 4, 5, 6}, CT_SHAPE(2, 3));
    ct_tensor *mt = ct_transpose(ct_from_f32(ctx, (float[]){7, 8, 9, 10, 11, 12}, CT_SHAPE(3, 2)), 0, 1);
    for (int d = 0; d <= 2; d++) {
        ct_tensor *s = ct_stack(2, ((ct_tensor *[]){m, mt}), d);
        ct_tensor *c = ct_concat(2, ((ct_tensor *[]){ct_unsqueeze(m, d), ct_unsqueeze(mt, d)}), d);
        tu_assert_tensors_close(s, c, 0, 0);
    }
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

/* three inputs joined along dim d of [2, 3, 4]: in[1] has size 1 there, in[2] (size 3
 * there) is a leaf stored with dims 0 and 2 swapped and transposed back (non-contiguous) */
static ct_tensor *f_concat(ct_tensor **in, void *ud) {
    int d = *(int *)ud;
    return ct_concat(3, ((ct_tensor *[]){in[0], in[1], ct_transpose(in[2], 0, 2)}), d);
}

START_TEST(test_concat_grad) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    int d = _i < 3 ? _i : -1;
    int dd = d < 0 ? 2 : d;
    int64_t s0[3] = {2, 3, 4}, s1[3] = {2, 3, 4}, s2[3] = {2, 3, 4};
    s1[dd] = 1;
    s2[dd] = 3;
    int64_t s2t[3] = {s2[2], s2[1], s2[0]};
    ct_tensor *in[3] = {tu_rand(ctx, 30, -1, 1, 3, s0), tu_rand(ctx, 31, -1, 1, 3, s1),
                        tu_rand(ctx, 32, -1, 1, 3, s2t)};
    for (int i = 0; i < 3; i++) ct_set_requires_grad(in[i], true);
    int64_t n = ct_numel(in[0]) + ct_numel(in[1]) + ct_numel(in[2]);
    ck_assert_int_eq(tu_gradcheck(f_concat, 3, in, &d), n);
    /* an input that needs no gradient gets none, the others still do */
    ct_set_requires_grad(in[1], false);
    ck_assert_int_eq(tu_gradcheck(f_concat, 3, in, &d), n - ct_numel(in[1]));
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

static ct_tensor *f_stack(ct_tensor **in, void *ud) {
    int d = *(int *)ud;
    return ct_stack(3, ((ct_tensor *[]){in[0], ct_transpose(in[1], 0, 1), in[2]}), d);
}

START_TEST(test_stack_grad) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    int d = _i < 3 ? _i : -1;
    ct_tensor *in[3] = {TU_RAND(ctx, 40, -1, 1, 2, 3), TU_RAND(ctx, 41, -1, 1, 3, 2),
                        TU_RAND(ctx, 42, -1, 1, 2, 3)};
    for (int i = 0; i < 3; i++) ct_set_requires_grad(in[i], true);
    ct_tensor *y = f_stack(in, &d);
    ck_assert_str_eq(ct_grad_fn_name(y), "stack");
    ck_assert_int_eq(tu_gradcheck(f_stack, 3, in, &d), 18);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- split and chunk ------------------------------------------------------------------------ */
static void assert_sizes(ct_tensor **p, int n, int dim, const int64_t *want) {
    for (int i = 0; i < n; i++) {
        ck_assert_ptr_nonnull(p[i]);
        ck_assert_msg(p[i]->shape[dim] == want[i], "piece %d has size %lld, expected %lld", i,
                      (long long)p[i]->shape[dim], (long long)want[i]);
    }
}

START_TEST(test_split_chunk_counts) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *a = ct_arange(ctx, CT_F32, 10);
    ct_tensor *p[16];
    ck_assert_int_eq(ct_split(a, 3, 0, p, 16), 4);
    assert_sizes(p, 4, 0, (int64_t[]){3, 3, 3, 1});
    tu_assert_close(p[1], ((float[]){3, 4, 5}), 0, 0);
    tu_assert_close(p[3], ((float[]){9}), 0, 0);
    ck_assert_ptr_eq(p[1]->storage, a->storage);          /* views, no copy */
    ck_assert_int_eq(ct_split(a, 5, 0, p, 16), 2);
    assert_sizes(p, 2, 0, (int64_t[]){5, 5});
    ck_assert_int_eq(ct_split(a, 20, -1, p, 16), 1);
    assert_sizes(p, 1, 0, (int64_t[]){10});
    /* max_out smaller than the count: the count, and only max_out pieces written */
    p[2] = NULL;
    ck_assert_int_eq(ct_split(a, 3, 0, p, 2), 4);
    ck_assert_ptr_null(p[2]);
    ck_assert_int_eq(ct_split(a, 3, 0, NULL, 0), 4);
    /* torch.chunk: ceil(len / n) each, so maybe fewer than n pieces */
    ck_assert_int_eq(ct_chunk(a, 4, 0, p), 4);
    assert_sizes(p, 4, 0, (int64_t[]){3, 3, 3, 1});
    ck_assert_int_eq(ct_chunk(a, 6, 0, p), 5);
    assert_sizes(p, 5, 0, (int64_t[]){2, 2, 2, 2, 2});
    ck_assert_int_eq(ct_chunk(a, 3, 0, p), 3);
    assert_sizes(p, 3, 0, (int64_t[]){4, 4, 2});
    ck_assert_int_eq(ct_chunk(a, 1, 0, p), 1);
    ct_tensor *b = ct_arange(ctx, CT_F32, 3);
    ck_assert_int_eq(ct_chunk(b, 5, 0, p), 3);
    assert_sizes(p, 3, 0, (int64_t[]){1, 1, 1});
    /* an empty dim: split gives one empty piece, chunk n empty pieces (as torch) */
    ct_tensor *e = ct_zeros(ctx, CT_SHAPE(2, 0));
    ck_assert_int_eq(ct_split(e, 3, 1, p, 16), 1);
    assert_sizes(p, 1, 1, (int64_t[]){0});
    ck_assert_int_eq(ct_chunk(e, 3, 1, p), 3);
    assert_sizes(p, 3, 1, (int64_t[]){0, 0, 0});
    /* along dim 1 of a matrix */
    ct_tensor *m = ct_from_f32(ctx, (float[]){1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, CT_SHAPE(2, 5));
    ck_assert_int_eq(ct_chunk(m, 2, 1, p), 2);
    assert_sizes(p, 2, 1, (int64_t[]){3, 2});
    tu_assert_close(p[1], ((float[]){4, 5, 9, 10}), 0, 0);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

typedef struct split_ud { int dim; bool chunk; } split_ud;

/* pieces of a transposed [4, 10] view, piece i scaled by i + 1, joined back */
static ct_tensor *f_split(ct_tensor **in, void *ud) {
    split_ud *u = ud;
    ct_tensor *x = ct_transpose(in[0], 0, 1), *p[8];
    int n = u->chunk ? ct_chunk(x, 3, u->dim, p) : ct_split(x, 3, u->dim, p, 8);
    if (n < 0) return NULL;
    for (int i = 0; i < n; i++) p[i] = ct_mul_scalar(p[i], (float)(i + 1));
    return ct_concat(n, p, u->dim);
}

START_TEST(test_split_chunk_grad) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    split_ud u = {_i % 2, _i >= 2};
    ct_tensor *x = TU_RAND(ctx, 50 + _i, -1, 1, 10, 4);
    ct_set_requires_grad(x, true);
    ct_tensor *in[1] = {x};
    ck_assert_int_eq(tu_gradcheck(f_split, 1, in, &u), 40);
    /* directly: split [4, 10] along 1 in 3s -> pieces 0..3, gradient i + 1 */
    if (_i == 1) {
        ct_scope_begin(ctx);
        ct_zero_grad(x);
        ck_assert_int_eq(ct_backward(ct_sum_all(f_split(in, &u))), CT_OK);
        int64_t idx[2] = {9, 0};
        ck_assert_double_eq(ct_get(ct_grad(x), idx), 4.0);
        idx[0] = 4;
        ck_assert_double_eq(ct_get(ct_grad(x), idx), 2.0);
        ct_scope_end(ctx);
    }
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- dropout -------------------------------------------------------------------------------- */
START_TEST(test_dropout_eval_identity) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *a = TU_RAND(ctx, 60, -1, 1, 4, 5);
    ct_set_requires_grad(a, true);
    ct_rng r;
    ct_rng_seed(&r, 1);
    ct_rng r0 = r;
    ct_scope_begin(ctx);
    ck_assert_ptr_eq(ct_dropout(a, 0.5f, false, &r), a);
    ck_assert_ptr_eq(ct_dropout(a, 0.5f, false, NULL), a);
    ck_assert_ptr_eq(ct_dropout(a, 0.0f, true, &r), a);
    ct_scope_end(ctx);
    /* the scope's references are gone, the tensor is still alive */
    ck_assert_int_eq(a->refcount, 1);
    tu_assert_close(ct_dropout(a, 0.5f, false, &r), ct_data_f32(a), 0, 0);
    ck_assert_mem_eq(&r, &r0, sizeof r);        /* no draws */
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_dropout_masks) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    enum { N = 100000 };
    const float p = 0.3f;
    ct_tensor *a = ct_ones(ctx, CT_SHAPE(100, 1000));
    ct_rng r1, r2, r3;
    ct_rng_seed(&r1, 7);
    ct_rng_seed(&r2, 7);
    ct_rng_seed(&r3, 8);
    ct_tensor *y1 = ct_dropout(a, p, true, &r1);
    ct_tensor *y2 = ct_dropout(a, p, true, &r2);
    ct_tensor *y3 = ct_dropout(a, p, true, &r3);
    const float *v1 = ct_data_f32(y1), *v2 = ct_data_f32(y2), *v3 = ct_data_f32(y3);
    ck_assert_mem_eq(v1, v2, sizeof(float) * N);            /* same seed, same mask */
    ck_assert_mem_eq(&r1, &r2, sizeof r1);
    int64_t zeros = 0, differ = 0, bad = -1;
    float scale = 1.0f / (1.0f - p);
    for (int i = 0; i < N; i++) {
        if (bad < 0 && v1[i] != 0.0f && fabsf(v1[i] - scale) > 1e-6f) bad = i;
        zeros += v1[i] == 0.0f;
        differ += v1[i] != v3[i];
    }
    ck_assert_msg(bad < 0, "element %lld is %g, neither 0 nor 1/(1-p)", (long long)bad,
                  bad < 0 ? 0.0 : (double)v1[bad]);
    /* about p dropped: the standard deviation of the count is ~145 */
    ck_assert_msg(llabs(zeros - (int64_t)(p * N)) < 1000, "%lld of %d dropped", (long long)zeros, N);
    ck_assert_msg(differ > N / 4, "another seed changed only %lld elements", (long long)differ);
    /* the generator advanced: the next mask differs */
    ct_tensor *y4 = ct_dropout(a, p, true, &r1);
    ck_assert_int_ne(memcmp(ct_data_f32(y4), v1, sizeof(float) * N), 0);
    /* the mask is drawn in element order whatever the strides */
    ct_tensor *x = TU_RAND(ctx, 61, -1, 1, 3, 5);
    ct_rng_seed(&r1, 9);
    ct_rng_seed(&r2, 9);
    tu_assert_tensors_close(ct_dropout(ct_transpose(x, 0, 1), 0.5f, true, &r1),
                            ct_dropout(ct_contiguous(ct_transpose(x, 0, 1)), 0.5f, true, &r2), 0, 0);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_dropout_grad_values) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    const float p = 0.25f;
    ct_tensor *a = TU_RAND(ctx, 62, 0.5f, 2, 8, 16);
    ct_set_requires_grad(a, true);
    ct_rng r;
    ct_rng_seed(&r, 3);
    ct_rng rc = r;
    ct_tensor *y = ct_dropout(a, p, true, &r);
    ck_assert_str_eq(ct_grad_fn_name(y), "dropout");
    ck_assert_int_eq(ct_backward(ct_sum_all(y)), CT_OK);
    /* the mask, drawn by hand from a copy of the generator */
    const float *av = ct_data_f32(a), *yv = ct_data_f32(y), *gv = ct_data_f32(ct_grad(a));
    int kept = 0;
    for (int i = 0; i < 128; i++) {
        float m = ct_rng_uniform(&rc) >= p ? 1.0f : 0.0f;
        kept += m != 0;
        ck_assert_float_eq_tol(yv[i], av[i] * m / (1 - p), 1e-6);
        ck_assert_float_eq_tol(gv[i], m / (1 - p), 1e-6);
    }
    ck_assert_int_gt(kept, 0);
    ck_assert_int_lt(kept, 128);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

/* the same mask at every evaluation: a fresh generator from the seed each time */
static ct_tensor *f_dropout(ct_tensor **in, void *ud) {
    ct_rng r;
    ct_rng_seed(&r, *(uint64_t *)ud);
    return ct_dropout(ct_transpose(in[0], 0, 1), 0.4f, true, &r);
}

START_TEST(test_dropout_grad) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *x = TU_RAND(ctx, 63, -1, 1, 4, 6);
    ct_set_requires_grad(x, true);
    uint64_t seed = 11;
    ct_tensor *in[1] = {x};
    ck_assert_int_eq(tu_gradcheck(f_dropout, 1, in, &seed), 24);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- memory: temporaries and graphs go with their scope ------------------------------------ */
START_TEST(test_no_leaks) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *x = TU_RAND(ctx, 70, -1, 1, 4, 6);
    ct_set_requires_grad(x, true);
    ct_tensor *ix = i64(ctx, 3, (int64_t[]){1, 0, 1});
    ct_rng r;
    ct_rng_seed(&r, 5);
    ct_mem_stats before = ct_ctx_mem_stats(ctx);
    for (int it = 0; it < 3; it++) {
        ct_scope_begin(ctx);
        ct_tensor *xt = ct_transpose(x, 0, 1);                    /* [6, 4], non-contiguous */
        ct_tensor *s = ct_index_select(xt, 1, ix);
        ct_tensor *g = ct_gather(xt, 0, ct_transpose(ct_from_i64(ctx, (int64_t[]){0, 5, 2, 2, 1, 3}, CT_SHAPE(3, 2)), 0, 1));
        ct_tensor *w = ct_where(ct_from_i64(ctx, (int64_t[]){1, 0, 1, 0}, CT_SHAPE(4)), xt, ct_scalar(ctx, 1));
        ct_tensor *m = ct_masked_fill(w, ct_from_i64(ctx, (int64_t[]){0, 1, 1, 0}, CT_SHAPE(1, 4)), 0);
        ct_tensor *p[4];
        int n = ct_chunk(ct_dropout(xt, 0.5f, true, &r), 3, 0, p);
        ct_tensor *parts[] = {ct_sum_all(s), ct_sum_all(g), ct_sum_all(w), ct_sum_all(m),
                              ct_sum_all(ct_stack(n, p, 0)), ct_sum_all(ct_concat(n, p, 0))};
        ct_tensor *loss = ct_sum_all(ct_stack(6, parts, 0));
        ck_assert_int_eq(ct_backward(loss), CT_OK);
        ct_scope_end(ctx);
    }
    ct_mem_stats after = ct_ctx_mem_stats(ctx);
    /* x->grad appeared; nothing else stays */
    ck_assert_int_eq(after.live_tensors, before.live_tensors + 1);
    ck_assert_int_eq(after.live_nodes, before.live_nodes);
    ck_assert_int_eq(after.live_storages, before.live_storages + 1);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- errors --------------------------------------------------------------------------------- */
START_TEST(test_index_errors) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *a = ct_zeros(ctx, CT_SHAPE(3, 4));
    int c = 0;
    ck_assert_ptr_null(ct_index_select(a, 0, i64(ctx, 3, (int64_t[]){0, 7, 1})));
    ASSERT_ERR(errs, c++, CT_E_ARG, "index_select: index 7 at position 1 is out of range for dim 0 of size 3");
    ck_assert_ptr_null(ct_index_select(a, 1, i64(ctx, 2, (int64_t[]){-1, 1})));
    ASSERT_ERR(errs, c++, CT_E_ARG, "index -1 at position 0 is out of range for dim 1 of size 4");
    ck_assert_ptr_null(ct_index_select(a, 0, ct_zeros(ctx, CT_SHAPE(2))));
    ASSERT_ERR(errs, c++, CT_E_DTYPE, "index_select: indices must be int64 (got float32 [2])");
    ck_assert_ptr_null(ct_index_select(a, 0, ct_from_i64(ctx, (int64_t[]){0, 1}, CT_SHAPE(1, 2))));
    ASSERT_ERR(errs, c++, CT_E_SHAPE, "indices must be 1-D; got shape [1, 2]");
    ck_assert_ptr_null(ct_index_select(a, 2, i64(ctx, 1, (int64_t[]){0})));
    ASSERT_ERR(errs, c++, CT_E_ARG, "index_select: dim 2 is out of range");

    ct_tensor *ix = ct_from_i64(ctx, (int64_t[]){0, 1, 3, 0}, CT_SHAPE(2, 2));
    ck_assert_ptr_null(ct_gather(ct_zeros(ctx, CT_SHAPE(2, 3)), 1, ix));
    ASSERT_ERR(errs, c++, CT_E_ARG, "gather: index value 3 at index[1, 0] is out of range for dim 1 of size 3");
    ck_assert_ptr_null(ct_gather(ct_zeros(ctx, CT_SHAPE(2, 3)), 1, i64(ctx, 2, (int64_t[]){0, 1})));
    ASSERT_ERR(errs, c++, CT_E_SHAPE, "gather: input [2, 3] and index [2] must have the same number of dims");
    ck_assert_ptr_null(ct_gather(ct_zeros(ctx, CT_SHAPE(2, 3)), 1, ct_zeros(ctx, CT_SHAPE(2, 2))));
    ASSERT_ERR(errs, c++, CT_E_DTYPE, "gather: index must be int64 (got float32 [2, 2])");
    ck_assert_ptr_null(ct_gather(ct_zeros(ctx, CT_SHAPE(2, 3)), 1, ct_from_i64(ctx, (int64_t[]){0, 0, 0}, CT_SHAPE(3, 1))));
    ASSERT_ERR(errs, c++, CT_E_SHAPE, "gather: index [3, 1] is larger than input [2, 3] in dim 0");
    ck_assert_ptr_null(ct_gather(ct_zeros(ctx, CT_SHAPE(2, 3)), -3, ix));
    ASSERT_ERR(errs, c++, CT_E_ARG, "gather: dim -3 is out of range");

    ct_tensor *f2 = ct_zeros(ctx, CT_SHAPE(2)), *f3 = ct_zeros(ctx, CT_SHAPE(3));
    ck_assert_ptr_null(ct_where(f2, f2, i64(ctx, 2, (int64_t[]){0, 1})));
    ASSERT_ERR(errs, c++, CT_E_DTYPE, "where: a [2] is float32 but b [2] is int64");
    ck_assert_ptr_null(ct_where(f2, f3, f3));
    ASSERT_ERR(errs, c++, CT_E_SHAPE, "where: cond [2], a [3] and b [3] do not broadcast together");
    ck_assert_ptr_null(ct_where(f3, f3, ct_zeros(ctx, CT_SHAPE(2, 2))));
    ASSERT_ERR(errs, c++, CT_E_SHAPE, "where: cond [3], a [3] and b [2, 2] do not broadcast together");

    ck_assert_ptr_null(ct_masked_fill(ct_zeros(ctx, CT_SHAPE(2, 2)), f3, 0));
    ASSERT_ERR(errs, c++, CT_E_SHAPE, "masked_fill: mask [3] does not broadcast to input [2, 2]");
    /* the mask broadcasts to a's shape only, not the other way */
    ck_assert_ptr_null(ct_masked_fill(f2, ct_zeros(ctx, CT_SHAPE(2, 2)), 0));
    ASSERT_ERR(errs, c++, CT_E_SHAPE, "masked_fill: mask [2, 2] does not broadcast to input [2]");

    /* NULL inputs: NULL, quietly */
    ck_assert_ptr_null(ct_index_select(NULL, 0, ix));
    ck_assert_ptr_null(ct_gather(a, 0, NULL));
    ck_assert_ptr_null(ct_where(f2, NULL, f2));
    ck_assert_ptr_null(ct_masked_fill(NULL, f2, 0));
    ck_assert_int_eq(errs.count, c);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_join_errors) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *a = ct_zeros(ctx, CT_SHAPE(2, 3)), *b = ct_zeros(ctx, CT_SHAPE(2, 4));
    int c = 0;
    ck_assert_ptr_null(ct_concat(2, ((ct_tensor *[]){a, b}), 0));
    ASSERT_ERR(errs, c++, CT_E_SHAPE, "concat: input 1 has shape [2, 4] but input 0 has [2, 3] (they must match except in dim 0)");
    ck_assert_ptr_nonnull(ct_concat(2, ((ct_tensor *[]){a, b}), 1));
    ck_assert_ptr_null(ct_concat(2, ((ct_tensor *[]){a, ct_zeros(ctx, CT_SHAPE(6))}), 0));
    ASSERT_ERR(errs, c++, CT_E_SHAPE, "concat: input 1 has shape [6] but input 0 has [2, 3]");
    ck_assert_ptr_null(ct_concat(2, ((ct_tensor *[]){a, ct_from_i64(ctx, (int64_t[]){1, 2, 3}, CT_SHAPE(1, 3))}), 0));
    ASSERT_ERR(errs, c++, CT_E_DTYPE, "concat: input 1 is int64 but input 0 is float32");
    ck_assert_ptr_null(ct_concat(2, ((ct_tensor *[]){a, a}), 2));
    ASSERT_ERR(errs, c++, CT_E_ARG, "concat: dim 2 is out of range for inputs of shape [2, 3] (valid: -2 to 1)");
    ck_assert_ptr_null(ct_concat(1, ((ct_tensor *[]){ct_scalar(ctx, 1)}), 0));
    ASSERT_ERR(errs, c++, CT_E_ARG, "concat: dim 0 is out of range for inputs of shape []");
    ck_assert_ptr_null(ct_stack(2, ((ct_tensor *[]){a, b}), 0));
    ASSERT_ERR(errs, c++, CT_E_SHAPE, "stack: input 1 has shape [2, 4] but input 0 has [2, 3] (all must match)");
    ck_assert_ptr_null(ct_stack(2, ((ct_tensor *[]){a, a}), 3));
    ASSERT_ERR(errs, c++, CT_E_ARG, "stack: dim 3 is out of range for inputs of shape [2, 3] (valid: -3 to 2)");

    ct_tensor *p[4];
    ck_assert_int_eq(ct_split(a, 0, 1, p, 4), -1);
    ASSERT_ERR(errs, c++, CT_E_ARG, "split: piece size 0 must be positive");
    ck_assert_int_eq(ct_split(a, 2, 5, p, 4), -1);
    ASSERT_ERR(errs, c++, CT_E_ARG, "split: dim 5 is out of range");
    ck_assert_int_eq(ct_split(a, 2, 1, NULL, 4), -1);
    ASSERT_ERR(errs, c++, CT_E_ARG, "split: out is NULL");
    ck_assert_int_eq(ct_chunk(a, 0, 1, p), -1);
    ASSERT_ERR(errs, c++, CT_E_ARG, "chunk: 0 chunks requested; must be positive");
    ck_assert_int_eq(ct_chunk(a, -2, 0, p), -1);
    ASSERT_ERR(errs, c++, CT_E_ARG, "chunk: -2 chunks requested");
    ck_assert_int_eq(ct_chunk(a, 2, -3, p), -1);
    ASSERT_ERR(errs, c++, CT_E_ARG, "chunk: dim -3 is out of range");

    /* NULL inputs: quietly */
    ck_assert_ptr_null(ct_concat(2, ((ct_tensor *[]){a, NULL}), 0));
    ck_assert_ptr_null(ct_stack(2, ((ct_tensor *[]){NULL, a}), 0));
    ck_assert_ptr_null(ct_concat(0, p, 0));
    ck_assert_int_eq(ct_split(NULL, 2, 0, p, 4), -1);
    ck_assert_int_eq(ct_chunk(NULL, 2, 0, p), -1);
    ck_assert_int_eq(errs.count, c);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_dropout_errors) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *a = ct_ones(ctx, CT_SHAPE(4));
    ct_rng r;
    ct_rng_seed(&r, 1);
    int c = 0;
    ck_assert_ptr_null(ct_dropout(a, 1.0f, true, &r));
    ASSERT_ERR(errs, c++, CT_E_ARG, "dropout: p = 1 is outside [0, 1)");
    ck_assert_ptr_null(ct_dropout(a, -0.1f, false, &r));      /* checked in eval mode too */
    ASSERT_ERR(errs, c++, CT_E_ARG, "dropout: p = -0.1 is outside [0, 1)");
    ck_assert_ptr_null(ct_dropout(a, NAN, true, &r));
    ASSERT_ERR(errs, c++, CT_E_ARG, "is outside [0, 1)");
    ck_assert_ptr_null(ct_dropout(a, 0.5f, true, NULL));
    ASSERT_ERR(errs, c++, CT_E_ARG, "dropout: training with p = 0.5 draws a mask, but the generator is NULL");
    ck_assert_ptr_null(ct_dropout(ct_arange(ctx, CT_I64, 4), 0.5f, true, &r));
    ASSERT_ERR(errs, c++, CT_E_DTYPE, "dropout: operand 0 [4] is int64; expected float32");
    ck_assert_ptr_null(ct_dropout(NULL, 0.5f, true, &r));
    ck_assert_int_eq(errs.count, c);
    ct_ctx_free(ctx);
}
END_TEST

/* the gradient through index_select of an input that needs none: no graph */
START_TEST(test_no_graph_without_grad) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *a = TU_RAND(ctx, 80, -1, 1, 3, 4);
    ct_tensor *ix = i64(ctx, 2, (int64_t[]){0, 2});
    ck_assert_ptr_null(ct_grad_fn_name(ct_index_select(a, 0, ix)));
    ck_assert_ptr_null(ct_grad_fn_name(ct_gather(a, 1, ct_from_i64(ctx, (int64_t[]){0, 1, 2}, CT_SHAPE(3, 1)))));
    ck_assert_ptr_null(ct_grad_fn_name(ct_where(ix, ix, ix)));
    ck_assert_ptr_null(ct_grad_fn_name(ct_concat(2, ((ct_tensor *[]){a, a}), 0)));
    ct_set_requires_grad(a, true);
    bool was = ct_set_grad_enabled(ctx, false);
    ck_assert_ptr_null(ct_grad_fn_name(ct_masked_fill(a, ct_from_i64(ctx, (int64_t[]){1, 0, 1}, CT_SHAPE(3, 1)), 0)));
    ct_set_grad_enabled(ctx, was);
    ck_assert_str_eq(ct_grad_fn_name(ct_concat(2, ((ct_tensor *[]){a, a}), 0)), "concat");
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

Suite *index_ops_suite(void) {
    Suite *s = suite_create("index_ops");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_index_select_values);
    tcase_add_test(tc, test_index_select_repeated_grad);
    tcase_add_loop_test(tc, test_index_select_grad, 0, 4);
    tcase_add_test(tc, test_gather_values);
    tcase_add_test(tc, test_gather_repeated_grad);
    tcase_add_loop_test(tc, test_gather_grad, 0, 3);
    tcase_add_test(tc, test_where_values);
    tcase_add_test(tc, test_where_grad_values);
    tcase_add_loop_test(tc, test_where_grad, 0, 2);
    tcase_add_test(tc, test_masked_fill_values);
    tcase_add_loop_test(tc, test_masked_fill_grad, 0, 2);
    tcase_add_test(tc, test_concat_values);
    tcase_add_test(tc, test_stack_values);
    tcase_add_loop_test(tc, test_concat_grad, 0, 4);
    tcase_add_loop_test(tc, test_stack_grad, 0, 4);
    tcase_add_test(tc, test_split_chunk_counts);
    tcase_add_loop_test(tc, test_split_chunk_grad, 0, 4);
    tcase_add_test(tc, test_dropout_eval_identity);
    tcase_add_test(tc, test_dropout_masks);
    tcase_add_test(tc, test_dropout_grad_values);
    tcase_add_test(tc, test_dropout_grad);
    tcase_add_test(tc, test_no_leaks);
    tcase_add_test(tc, test_index_errors);
    tcase_add_test(tc, test_join_errors);
    tcase_add_test(tc, test_dropout_errors);
    tcase_add_test(tc, test_no_graph_without_grad);
    suite_add_tcase(s, tc);
    return s;
}
