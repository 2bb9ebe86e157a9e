/* tests/engine/test_cuda_kernels.c — the CUDA kernel groups nn, index, layernorm and optim
 * (engine/cuda/{nn,index,layernorm,optim}.cu) against the CPU reference.
 *
 * Each GPU test builds random inputs on the CPU, runs the op on the CPU and, through ct_to,
 * on cuda:0, and compares the values and the gradients (backward through the op: the gradient
 * of sum(op(x) * w) for a random w, copied back to the CPU leaves by ct_to's backward).
 * Without a CUDA device (no CUDA build, no driver: always on the CI machine) the GPU tests
 * return at once and the suite prints "cuda: skipped — <why>" once; the tests of the build
 * flags and of the index-check error paths run everywhere (on cuda:0 as well when present).
 *
 * Tolerances (|gpu - cpu| <= atol + rtol |cpu|), from how the kernels compute:
 *  - exact (0, 0): max values and indices, index_select, gather, where, masked_fill, dropout,
 *    embedding, their gradients (copies, or float sums added in the CPU's order).
 *  - optimizer steps: 1e-7 / 1e-6, though they should be exact (the same IEEE float
 *    operations in the same order, no FMA), so that the test does not depend on how the
 *    element-wise kernels of the loss round.
 *  - 1e-6 / 1e-5: softmax, log_softmax, cross-entropy, BCE, layer_norm, and their gradients:
 *    CUDA's expf/log1pf are within 2 ulp of glibc's, and double sums run in another order.
 *  - clip_grad_norm: the norm (a double sum in another order) within 1e-12 relative.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/layers.h"
#include "testutil.h"

#include "engine/device.h"

/* ---- helpers ------------------------------------------------------------------------------ */
/* (called inside the tests, never while the suite is built: Check forks every test from the
 * runner, and a child cannot use a CUDA runtime its parent initialised) */
static bool have_gpu(void) {
    char why[256] = "";
    if (ct_cuda_device_count(why, sizeof why) > 0) return true;
    printf("cuda_kernels: skipped — %s\n", why[0] ? why : "no CUDA device");
    fflush(stdout);
    return false;
}

/* n elements of t (any dtype, any device) as doubles; free() the result */
static double *host_values(const ct_tensor *t) {
    int64_t n = ct_numel(t);
    size_t cnt = (size_t)(n ? n : 1);
    double *out = malloc(sizeof(double) * cnt);
    ck_assert_ptr_nonnull(out);
    if (t->dtype == CT_F32) {
        float *f = malloc(sizeof(float) * cnt);
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(ct_copy_to_host(t, f, sizeof(float) * (size_t)n), CT_OK);
        for (int64_t i = 0; i < n; i++) out[i] = f[i];
        free(f);
    } else {
        int64_t *v = malloc(sizeof(int64_t) * cnt);
        ck_assert_ptr_nonnull(v);
        ck_assert_int_eq(ct_copy_to_host(t, v, sizeof(int64_t) * (size_t)n), CT_OK);
        for (int64_t i = 0; i < n; i++) out[i] = (double)v[i];
        free(v);
    }
    return out;
}

/* got (any device) equals want (cpu) within atol + rtol |want|; NaN matches NaN */
static void expect_close(ct_ctx *ctx, const char *what, const ct_tensor *want,
                         const ct_tensor *got, double atol, double rtol) {
    ck_assert_msg(want != NULL, "%s: the cpu result is NULL: %s", what, ct_ctx_error(ctx));
    ck_assert_msg(got != NULL, "%s: the cuda result is NULL: %s", what, ct_ctx_error(ctx));
    char s1[96], s2[96];
    ck_assert_msg(ct_same_shape(want, got), "%s: shapes %s (cpu) and %s (cuda) differ", what,
                  ct_shape_str(want, s1, sizeof s1), ct_shape_str(got, s2, sizeof s2));
    ck_assert_msg(want->dtype == got->dtype, "%s: dtypes %s and %s differ", what,
                  ct_dtype_name(want->dtype), ct_dtype_name(got->dtype));
    double *a = host_values(want), *b = host_values(got);
    int64_t n = ct_numel(want);
    for (int64_t i = 0; i < n; i++) {
        bool ok = a[i] == b[i] || (isnan(a[i]) && isnan(b[i])) ||
                  fabs(a[i] - b[i]) <= atol + rtol * fabs(a[i]);
        ck_assert_msg(ok, "%s: element %lld is %.9g on cuda, %.9g on cpu (atol %g, rtol %g)",
                      what, (long long)i, b[i], a[i], atol, rtol);
    }
    free(a);
    free(b);
}

static ct_tensor *i64(ct_ctx *ctx, const int64_t *v, int ndim, const int64_t *shape) {
    ct_tensor *t = ct_from_i64(ctx, v, ndim, shape);
    ck_assert_ptr_nonnull(t);
    return t;
}

/* a float32 leaf of random values in [lo, hi) that requires grad */
static ct_tensor *leaf(ct_ctx *ctx, uint64_t seed, float lo, float hi, int ndim,
                       const int64_t *shape) {
    ct_tensor *t = tu_rand(ctx, seed, lo, hi, ndim, shape);
    ck_assert_int_eq(ct_set_requires_grad(t, true), CT_OK);
    return t;
}
#define LEAF(ctx, seed, lo, hi, ...) leaf(ctx, seed, lo, hi, CT_SHAPE(__VA_ARGS__))

/* n int64 values below hi (0 <= v < hi) from seed, as a tensor of shape */
static ct_tensor *rand_idx(ct_ctx *ctx, uint64_t seed, int64_t hi, int ndim, const int64_t *shape) {
    ct_rng r;
    ct_rng_seed(&r, seed);
    ct_tensor *t = ct_empty(ctx, CT_I64, ndim, shape);
    ck_assert_ptr_nonnull(t);
    int64_t *d = ct_data_i64(t);
    for (int64_t i = 0; i < ct_numel(t); i++) d[i] = (int64_t)ct_rng_below(&r, (uint64_t)hi);
    return t;
}
#define RAND_IDX(ctx, seed, hi, ...) rand_idx(ctx, seed, hi, CT_SHAPE(__VA_ARGS__))

#define CUDA0 CT_DEVICE_CUDA(0)

/* Runs f on fresh cpu copies of the n inputs and on cuda copies of them; compares the
 * result (atol, rtol) and, for each input that requires grad, its gradient (gatol, grtol).
 * Float inputs must be contiguous cpu tensors (f applies any views); the inputs themselves
 * are left alone (no gradient accumulates in them), so a test may reuse them. */
static void run_both(ct_ctx *ctx, const char *what, tu_fn f, int n, ct_tensor **in, void *ud,
                     double atol, double rtol, double gatol, double grtol) {
    ct_tensor *cin[4], *mirror[4], *gin[4];
    bool any_grad = false;
    ck_assert(n <= 4);
    for (int i = 0; i < n; i++) {
        if (in[i]->dtype == CT_F32) {
            cin[i] = ct_from_f32(ctx, ct_data_f32(in[i]), in[i]->ndim, in[i]->shape);
            mirror[i] = ct_from_f32(ctx, ct_data_f32(in[i]), in[i]->ndim, in[i]->shape);
            ck_assert_ptr_nonnull(cin[i]);
            ck_assert_ptr_nonnull(mirror[i]);
            if (ct_requires_grad(in[i])) {
                ck_assert_int_eq(ct_set_requires_grad(cin[i], true), CT_OK);
                ck_assert_int_eq(ct_set_requires_grad(mirror[i], true), CT_OK);
                any_grad = true;
            }
        } else {
            cin[i] = mirror[i] = in[i];
        }
        gin[i] = ct_to(mirror[i], CUDA0);
        ck_assert_msg(gin[i] != NULL, "%s: ct_to(cuda:0) failed: %s", what, ct_ctx_error(ctx));
    }
    ct_tensor *yc = f(cin, ud), *yg = f(gin, ud);
    char w1[128];
    snprintf(w1, sizeof w1, "%s (value)", what);
    expect_close(ctx, w1, yc, yg, atol, rtol);
    ck_assert_int_eq(ct_tensor_device(yg).type, CT_CUDA);
    if (!any_grad || yc->dtype != CT_F32) return;
    ct_tensor *w = tu_rand(ctx, 4242, -1.0f, 1.0f, yc->ndim, yc->shape);
    ct_tensor *wg = ct_to(w, CUDA0);
    ct_tensor *lc = ct_sum_all(ct_mul(yc, w)), *lg = ct_sum_all(ct_mul(yg, wg));
    ck_assert_msg(lc && lg, "%s: loss failed: %s", what, ct_ctx_error(ctx));
    ck_assert_int_eq(ct_backward(lc), CT_OK);
    ck_assert_msg(ct_backward(lg) == CT_OK, "%s: backward on cuda failed: %s", what,
                  ct_ctx_error(ctx));
    for (int i = 0; i < n; i++) {
        if (in[i]->dtype != CT_F32 || !ct_requires_grad(in[i])) continue;
        snprintf(w1, sizeof w1, "%s (gradient of input %d)", what, i);
        if (!cin[i]->grad) {              /* an input the op did not use */
            ck_assert_msg(mirror[i]->grad == NULL, "%s: a gradient on cuda only", w1);
            continue;
        }
        ck_assert_msg(mirror[i]->grad != NULL, "%s: no gradient reached the cpu leaf", w1);
        expect_close(ctx, w1, cin[i]->grad, mirror[i]->grad, gatol, grtol);
    }
}

/* ---- everywhere: build flags and the index-check error paths ----------------------------------- */
START_TEST(test_cuda_build_flags) {
    char why[256] = "";
    int n = ct_cuda_device_count(why, sizeof why);
    ck_assert_int_ge(n, 0);
#ifdef CT_HAVE_CUDA
    ck_assert(ct_cuda_compiled());
#else
    ck_assert(!ct_cuda_compiled());
    ck_assert_int_eq(n, 0);
#endif
    if (n == 0) ck_assert_msg(why[0] != '\0', "no device and no reason given");
}
END_TEST

/* out-of-range targets / indices are reported with the position and the value; on cuda:0
 * too when there is one (check_indices and find_bad_index run on the device) */
static void index_errors_on(ct_ctx *ctx, tu_errors *errs, bool cuda) {
    ct_tensor *logits = tu_rand(ctx, 1, -1, 1, CT_SHAPE(6, 5));
    ct_tensor *tg = i64(ctx, (const int64_t[]){0, 4, -100, 2, 7, 9}, CT_SHAPE(6));
    ct_tensor *w = tu_rand(ctx, 2, -1, 1, CT_SHAPE(10, 3));
    ct_tensor *ix = i64(ctx, (const int64_t[]){3, 9, 10, 1, -1}, CT_SHAPE(5));
    ct_tensor *gi = i64(ctx, (const int64_t[]){0, 1, 4, 5, 0, 2}, CT_SHAPE(2, 3));
    if (cuda) {
        logits = ct_to(logits, CUDA0);
        tg = ct_to(tg, CUDA0);
        w = ct_to(w, CUDA0);
        ix = ct_to(ix, CUDA0);
        gi = ct_to(gi, CUDA0);
        ck_assert_msg(logits && tg && w && ix && gi, "ct_to failed: %s", ct_ctx_error(ctx));
    }
    /* cross-entropy: the first bad target is 7 at position 4 (-100 is ignored) */
    ck_assert_ptr_null(ct_cross_entropy(logits, tg, -100));
    ck_assert_int_eq(errs->last.status, CT_E_ARG);
    ck_assert_msg(strstr(errs->last.msg, "target 7 at position 4") != NULL, "%s", errs->last.msg);
    /* without an ignore index, -100 at position 2 is the first */
    ck_assert_ptr_null(ct_cross_entropy(logits, tg, 5));
    ck_assert_msg(strstr(errs->last.msg, "target -100 at position 2") != NULL, "%s",
                  errs->last.msg);
    /* embedding: 10 at position [2] */
    ck_assert_ptr_null(ct_embedding(w, ix));
    ck_assert_int_eq(errs->last.status, CT_E_ARG);
    ck_assert_msg(strstr(errs->last.msg, "index 10 at position [2]") != NULL, "%s", errs->last.msg);
    /* index_select (find_bad_index): 10 at position 2 */
    ck_assert_ptr_null(ct_index_select(w, 0, ix));
    ck_assert_msg(strstr(errs->last.msg, "index 10 at position 2") != NULL, "%s", errs->last.msg);
    /* gather along dim 1 of [10, 3]: 4 is out of range */
    ck_assert_ptr_null(ct_gather(w, 1, gi));
    ck_assert_int_eq(errs->last.status, CT_E_ARG);
    /* in-range targets with ignored rows work: the mean over the counted ones */
    ct_tensor *ok = i64(ctx, (const int64_t[]){0, 4, -100, 2, 3, -100}, CT_SHAPE(6));
    if (cuda) ok = ct_to(ok, CUDA0);
    ct_tensor *l = ct_cross_entropy(logits, ok, -100);
    ck_assert_msg(l != NULL, "%s", ct_ctx_error(ctx));
    float lv = NAN;
    ck_assert_int_eq(ct_copy_to_host(l, &lv, sizeof lv), CT_OK);
    ck_assert(isfinite(lv) && lv > 0);
}

START_TEST(test_index_check_errors) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    index_errors_on(ctx, &errs, false);
    if (have_gpu()) index_errors_on(ctx, &errs, true);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- softmax / log_softmax ------------------------------------------------------------------- */
static ct_tensor *f_softmax(ct_tensor **in, void *ud) { return ct_softmax(in[0], *(int *)ud); }
static ct_tensor *f_log_softmax(ct_tensor **in, void *ud) {
    return ct_log_softmax(in[0], *(int *)ud);
}

START_TEST(test_cuda_softmax) {
    if (!have_gpu()) return;
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    /* rows (inner == 1) short and longer than a block; columns (inner > 1) */
    struct { int64_t shape[3]; int nd, dim; } cases[] = {
        {{7, 33}, 2, 1}, {{5, 700}, 2, 1}, {{4, 6, 5}, 3, 1}, {{300, 3}, 2, 0}, {{2, 3, 1}, 3, 2},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        ct_tensor *x = leaf(ctx, 10 + c, -8, 8, cases[c].nd, cases[c].shape);
        ct_data_f32(x)[0] = 60.0f;          /* stability: a large logit */
        char what[64];
        snprintf(what, sizeof what, "softmax case %zu", c);
        run_both(ctx, what, f_softmax, 1, &x, &cases[c].dim, 1e-6, 1e-5, 1e-6, 1e-4);
        ct_tensor *x2 = leaf(ctx, 20 + c, -8, 8, cases[c].nd, cases[c].shape);
        snprintf(what, sizeof what, "log_softmax case %zu", c);
        run_both(ctx, what, f_log_softmax, 1, &x2, &cases[c].dim, 1e-5, 1e-5, 1e-6, 1e-4);
    }
    ct_ctx_free(ctx);
}
END_TEST

/* ---- max ----------------------------------------------------------------------------------------- */
static ct_tensor *f_max(ct_tensor **in, void *ud) { return ct_max(in[0], *(int *)ud, false, NULL); }

START_TEST(test_cuda_max) {
    if (!have_gpu()) return;
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    /* [6, 300]: ties (the first wins), NaNs (the first NaN wins), a row of -inf */
    ct_tensor *x = LEAF(ctx, 3, -1, 1, 6, 300);
    float *d = ct_data_f32(x);
    d[0 * 300 + 17] = d[0 * 300 + 200] = d[0 * 300 + 290] = 5.0f;    /* row 0: 17 */
    d[1 * 300 + 250] = 5.0f;
    d[1 * 300 + 40] = 5.0f;                                           /* row 1: 40 */
    d[2 * 300 + 100] = NAN;
    d[2 * 300 + 7] = NAN;
    d[2 * 300 + 5] = 9.0f;                                            /* row 2: NaN at 7 */
    for (int j = 0; j < 300; j++) d[3 * 300 + j] = -INFINITY;          /* row 3: 0 */
    d[4 * 300 + 299] = 3.0f;                                          /* row 4: the last */
    for (int dim = 0; dim < 2; dim++) {
        ct_tensor *ic = NULL, *ig = NULL;
        ct_tensor *vc = ct_max(x, dim, false, &ic);
        ct_tensor *vg = ct_max(ct_to(x, CUDA0), dim, false, &ig);
        expect_close(ctx, "max values", vc, vg, 0, 0);
        expect_close(ctx, "max indices", ic, ig, 0, 0);
        if (dim == 1) {
            double *h = host_values(ig);
            ck_assert(h[0] == 17 && h[1] == 40 && h[2] == 7 && h[3] == 0 && h[4] == 299);
            free(h);
        }
    }
    /* gradients (finite inputs), rows and columns */
    int dims[2] = {1, 0};
    for (int k = 0; k < 2; k++) {
        ct_tensor *y = LEAF(ctx, 30 + k, -1, 1, 9, 70);
        ct_data_f32(y)[3] = ct_data_f32(y)[50] = 2.0f;
        run_both(ctx, "max", f_max, 1, &y, &dims[k], 0, 0, 0, 0);
    }
    ct_tensor *z = LEAF(ctx, 33, -1, 1, 3, 40, 5);
    int one = 1;
    run_both(ctx, "max (inner 5)", f_max, 1, &z, &one, 0, 0, 0, 0);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- cross-entropy -------------------------------------------------------------------------------- */
static ct_tensor *f_ce(ct_tensor **in, void *ud) {
    return ct_cross_entropy(in[0], in[1], *(int64_t *)ud);
}

START_TEST(test_cuda_cross_entropy) {
    if (!have_gpu()) return;
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    int64_t dims[][2] = {{37, 300}, {50, 5}, {3, 1000}};
    for (int c = 0; c < 3; c++) {
        int64_t N = dims[c][0], C = dims[c][1];
        ct_tensor *x = leaf(ctx, 40 + c, -6, 6, 2, dims[c]);
        ct_tensor *t = rand_idx(ctx, 50 + c, C, 1, &N);
        int64_t *tv = ct_data_i64(t);
        for (int64_t i = 0; i < N; i += 4) tv[i] = -100;     /* ignored rows */
        ct_tensor *in[2] = {x, t};
        int64_t ignore = -100;
        run_both(ctx, "cross_entropy", f_ce, 2, in, &ignore, 1e-6, 1e-5, 1e-7, 1e-4);
        ignore = C + 7;                                       /* ignores nothing */
        for (int64_t i = 0; i < N; i += 4) tv[i] = i % C;
        ct_tensor *x2 = leaf(ctx, 60 + c, -6, 6, 2, dims[c]);
        ct_tensor *in2[2] = {x2, t};
        run_both(ctx, "cross_entropy (no ignore)", f_ce, 2, in2, &ignore, 1e-6, 1e-5, 1e-7, 1e-4);
    }
    /* every target ignored: 0, and a zero gradient */
    ct_tensor *x = LEAF(ctx, 70, -1, 1, 4, 6);
    ct_tensor *t = i64(ctx, (const int64_t[]){-1, -1, -1, -1}, CT_SHAPE(4));
    ct_tensor *in[2] = {x, t};
    int64_t ig = -1;
    run_both(ctx, "cross_entropy (all ignored)", f_ce, 2, in, &ig, 0, 0, 0, 0);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- BCE with logits -------------------------------------------------------------------------------- */
static ct_tensor *f_bce(ct_tensor **in, void *ud) {
    return ct_bce_with_logits(in[0], in[1], *(ct_reduction *)ud);
}

START_TEST(test_cuda_bce_with_logits) {
    if (!have_gpu()) return;
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_reduction reds[] = {CT_REDUCE_NONE, CT_REDUCE_MEAN, CT_REDUCE_SUM, CT_REDUCE_SUM_LAST_MEAN};
    for (int r = 0; r < 4; r++) {
        ct_tensor *x = LEAF(ctx, 80 + r, -30, 30, 33, 88);     /* both signs, large |x| */
        ct_tensor *y = LEAF(ctx, 90 + r, 0, 1, 33, 88);
        ct_tensor *in[2] = {x, y};
        char what[64];
        snprintf(what, sizeof what, "bce_with_logits reduction %d", r);
        run_both(ctx, what, f_bce, 2, in, &reds[r], 1e-6, 1e-5, 1e-6, 1e-5);
    }
    /* a long reduced input: several partial blocks */
    ct_tensor *x = LEAF(ctx, 95, -5, 5, 100003);
    ct_tensor *y = tu_rand(ctx, 96, 0, 1, CT_SHAPE(100003));
    ct_tensor *in[2] = {x, y};
    run_both(ctx, "bce_with_logits (long)", f_bce, 2, in, &reds[1], 1e-6, 1e-5, 1e-9, 1e-5);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- embedding ------------------------------------------------------------------------------------------ */
static ct_tensor *f_embedding(ct_tensor **in, void *ud) {
    (void)ud;
    return ct_embedding(in[0], in[1]);
}
static ct_tensor *f_embedding_t(ct_tensor **in, void *ud) {      /* a strided weight */
    (void)ud;
    return ct_embedding(ct_transpose(in[0], 0, 1), in[1]);
}

START_TEST(test_cuda_embedding) {
    if (!have_gpu()) return;
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *w = LEAF(ctx, 100, -1, 1, 50, 16);
    ct_tensor *ix = RAND_IDX(ctx, 101, 50, 12, 25);                /* 300 indices, many repeats */
    ct_data_i64(ix)[0] = ct_data_i64(ix)[299] = 49;
    ct_tensor *in[2] = {w, ix};
    run_both(ctx, "embedding", f_embedding, 2, in, NULL, 0, 0, 0, 0);
    /* one index repeated everywhere (a single long run) */
    ct_tensor *w2 = LEAF(ctx, 102, -1, 1, 7, 3);
    int64_t v[1000];
    for (int i = 0; i < 1000; i++) v[i] = 4;
    ct_tensor *in2[2] = {w2, i64(ctx, v, CT_SHAPE(1000))};
    run_both(ctx, "embedding (one index)", f_embedding, 2, in2, NULL, 0, 0, 0, 0);
    ct_tensor *w3 = LEAF(ctx, 103, -1, 1, 16, 50);
    ct_tensor *in3[2] = {w3, ix};
    run_both(ctx, "embedding (transposed weight)", f_embedding_t, 2, in3, NULL, 0, 0, 0, 0);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- index ops ------------------------------------------------------------------------------------------ */
static ct_tensor *f_index_select(ct_tensor **in, void *ud) {
    return ct_index_select(in[0], *(int *)ud, in[1]);
}
static ct_tensor *f_gather(ct_tensor **in, void *ud) { return ct_gather(in[0], *(int *)ud, in[1]); }
static ct_tensor *f_gather_t(ct_tensor **in, void *ud) {        /* strided input */
    return ct_gather(ct_transpose(in[0], 0, 2), *(int *)ud, in[1]);
}
static ct_tensor *f_where(ct_tensor **in, void *ud) {
    (void)ud;
    return ct_where(in[2], in[0], in[1]);
}
static ct_tensor *f_masked_fill(ct_tensor **in, void *ud) {
    (void)ud;
    return ct_masked_fill(in[0], in[1], -2.5f);
}
static ct_tensor *f_dropout(ct_tensor **in, void *ud) {
    ct_rng r;
    ct_rng_seed(&r, *(uint64_t *)ud);
    return ct_dropout(in[0], 0.3f, true, &r);
}

START_TEST(test_cuda_index_ops) {
    if (!have_gpu()) return;
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    /* index_select over each dim of [6, 7, 5], repeated indices (index_add in backward) */
    for (int dim = 0; dim < 3; dim++) {
        ct_tensor *a = LEAF(ctx, 110 + dim, -1, 1, 6, 7, 5);
        ct_tensor *ix = RAND_IDX(ctx, 120 + dim, a->shape[dim], 40);
        ct_tensor *in[2] = {a, ix};
        run_both(ctx, "index_select", f_index_select, 2, in, &dim, 0, 0, 0, 0);
    }
    /* int64 index_select and gather (no gradient) */
    int zero = 0, one = 1;
    ct_tensor *ai = RAND_IDX(ctx, 130, 1000, 8, 9);
    ct_tensor *ix = RAND_IDX(ctx, 131, 8, 20);
    ct_tensor *ini[2] = {ai, ix};
    run_both(ctx, "index_select (int64)", f_index_select, 2, ini, &zero, 0, 0, 0, 0);
    ct_tensor *gix = RAND_IDX(ctx, 132, 9, 8, 30);
    ct_tensor *ing[2] = {ai, gix};
    run_both(ctx, "gather (int64)", f_gather, 2, ing, &one, 0, 0, 0, 0);
    /* gather along each dim (scatter_add in backward, repeats), index smaller than input */
    for (int dim = 0; dim < 3; dim++) {
        ct_tensor *a = LEAF(ctx, 140 + dim, -1, 1, 5, 6, 7);
        int64_t shape[3] = {4, 5, 6};
        shape[dim] = 11;
        ct_tensor *g = rand_idx(ctx, 150 + dim, a->shape[dim], 3, shape);
        ct_tensor *in[2] = {a, g};
        run_both(ctx, "gather", f_gather, 2, in, &dim, 0, 0, 0, 0);
    }
    ct_tensor *at = LEAF(ctx, 160, -1, 1, 7, 6, 5);            /* seen as [5, 6, 7] */
    ct_tensor *gt = RAND_IDX(ctx, 161, 6, 5, 9, 7);
    ct_tensor *int_[2] = {at, gt};
    run_both(ctx, "gather (transposed input)", f_gather_t, 2, int_, &one, 0, 0, 0, 0);
    /* where: float and int64 conditions, broadcast */
    ct_tensor *a = LEAF(ctx, 170, -1, 1, 4, 1, 6);
    ct_tensor *b = LEAF(ctx, 171, -1, 1, 3, 6);
    ct_tensor *cf = tu_rand(ctx, 172, -1, 1, CT_SHAPE(4, 3, 1));
    for (int i = 0; i < 12; i += 3) ct_data_f32(cf)[i] = 0.0f;
    ct_tensor *inw[3] = {a, b, cf};
    run_both(ctx, "where (float cond)", f_where, 3, inw, NULL, 0, 0, 0, 0);
    ct_tensor *ci = RAND_IDX(ctx, 173, 2, 6);
    ct_tensor *inw2[3] = {a, b, ci};
    run_both(ctx, "where (int64 cond)", f_where, 3, inw2, NULL, 0, 0, 0, 0);
    ct_tensor *wa = RAND_IDX(ctx, 174, 50, 3, 6), *wb = RAND_IDX(ctx, 175, 50, 3, 6);
    ct_tensor *inw3[3] = {wa, wb, ci};
    run_both(ctx, "where (int64 values)", f_where, 3, inw3, NULL, 0, 0, 0, 0);
    /* masked_fill with a broadcast mask (float and int64) */
    ct_tensor *m = LEAF(ctx, 180, -1, 1, 5, 8);
    ct_tensor *mk = RAND_IDX(ctx, 181, 2, 8);
    ct_tensor *inm[2] = {m, mk};
    run_both(ctx, "masked_fill (int64 mask)", f_masked_fill, 2, inm, NULL, 0, 0, 0, 0);
    ct_tensor *mkf = tu_rand(ctx, 182, -1, 1, CT_SHAPE(5, 1));
    ct_data_f32(mkf)[2] = 0.0f;
    ct_tensor *inm2[2] = {m, mkf};
    run_both(ctx, "masked_fill (float mask)", f_masked_fill, 2, inm2, NULL, 0, 0, 0, 0);
    /* dropout: the mask is drawn on the host, so the same seed gives the same mask */
    ct_tensor *x = LEAF(ctx, 190, -1, 1, 17, 33);
    uint64_t seed = 191;
    run_both(ctx, "dropout", f_dropout, 1, &x, &seed, 0, 0, 0, 0);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- layer_norm ----------------------------------------------------------------------------------------- */
typedef struct ln_case { bool w, b; } ln_case;
static ct_tensor *f_layer_norm(ct_tensor **in, void *ud) {
    ln_case *c = ud;
    return ct_layer_norm(in[0], c->w ? in[1] : NULL, c->b ? in[2] : NULL, 1e-5f);
}

START_TEST(test_cuda_layer_norm) {
    if (!have_gpu()) return;
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    /* rows x D: one block of columns and one row chunk; many chunks (rows > 1024); D > 256 */
    int64_t sizes[][2] = {{30, 70}, {3000, 33}, {5, 300}, {4, 1}};
    ln_case cases[] = {{true, true}, {false, false}, {true, false}, {false, true}};
    for (int s = 0; s < 4; s++) {
        for (int c = 0; c < 4; c++) {
            int64_t D = sizes[s][1];
            ct_tensor *x = leaf(ctx, 200 + s * 4 + c, -3, 5, 2, sizes[s]);
            ct_tensor *w = leaf(ctx, 220 + c, 0.5f, 1.5f, 1, &D);
            ct_tensor *b = leaf(ctx, 230 + c, -1, 1, 1, &D);
            ct_tensor *in[3] = {x, w, b};
            char what[64];
            snprintf(what, sizeof what, "layer_norm %lldx%lld case %d", (long long)sizes[s][0],
                     (long long)D, c);
            run_both(ctx, what, f_layer_norm, 3, in, &cases[c], 1e-5, 1e-5, 1e-5, 1e-4);
        }
    }
    ct_ctx_free(ctx);
}
END_TEST

/* ---- optimizers and clipping ------------------------------------------------------------------------ */
/* root{a [37], sub{b [5, 7]}} with fixed values (the same on every call) */
static ct_module *opt_model(ct_ctx *ctx) {
    ct_module *root = ct_module_new(ctx, "Model", 0);
    ct_module *sub = ct_module_new(ctx, "Sub", 0);
    ck_assert_ptr_nonnull(root);
    ck_assert_ptr_nonnull(sub);
    ct_tensor *a = ct_module_add_param(root, "a", CT_SHAPE(37));
    ct_tensor *b = ct_module_add_param(sub, "b", CT_SHAPE(5, 7));
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(ct_module_add_child(root, "sub", sub), CT_OK);
    for (int i = 0; i < 37; i++) ct_data_f32(a)[i] = 0.05f * (float)(i % 11) - 0.2f;
    for (int i = 0; i < 35; i++) ct_data_f32(b)[i] = 0.3f - 0.02f * (float)(i % 13);
    return root;
}

/* loss = sum(a * ca + a * a * 0.5) + sum(b * cb) for step k's constants (on m's device) */
static ct_tensor *opt_loss(ct_ctx *ctx, ct_module *m, int k, bool cuda) {
    ct_tensor *a = ct_module_param(m, "a"), *b = ct_module_param(m, "sub.b");
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ct_tensor *ca = tu_rand(ctx, 300 + k, -1, 1, CT_SHAPE(37));
    ct_tensor *cb = tu_rand(ctx, 400 + k, -2, 2, CT_SHAPE(5, 7));
    if (cuda) {
        ca = ct_to(ca, CUDA0);
        cb = ct_to(cb, CUDA0);
    }
    ct_tensor *la = ct_sum_all(ct_add(ct_mul(a, ca), ct_mul_scalar(ct_mul(a, a), 0.5f)));
    ct_tensor *l = ct_add(la, ct_sum_all(ct_mul(b, cb)));
    ck_assert_msg(l != NULL, "loss: %s", ct_ctx_error(ctx));
    return l;
}

typedef enum { OPT_SGD, OPT_SGD_MOM, OPT_SGD_NESTEROV, OPT_ADAM, OPT_ADAMW, OPT_N } opt_kind;

static ct_optim *make_opt(ct_module *m, opt_kind k) {
    switch (k) {
    case OPT_SGD: return ct_sgd_new(m, (ct_sgd_config){.lr = 0.1, .weight_decay = 0.01});
    case OPT_SGD_MOM:
        return ct_sgd_new(m, (ct_sgd_config){.lr = 0.05, .momentum = 0.9, .dampening = 0.1,
                                             .weight_decay = 0.001});
    case OPT_SGD_NESTEROV:
        return ct_sgd_new(m, (ct_sgd_config){.lr = 0.05, .momentum = 0.8, .nesterov = true});
    case OPT_ADAM: {
        ct_adam_config c = ct_adam_defaults(0.01);
        c.weight_decay = 0.01;
        return ct_adam_new(m, c);
    }
    default: return ct_adamw_new(m, ct_adamw_defaults(0.01));
    }
}

START_TEST(test_cuda_optimizers) {
    if (!have_gpu()) return;
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    for (int k = 0; k < OPT_N; k++) {
        ct_module *mc = opt_model(ctx), *mg = opt_model(ctx);
        ck_assert_msg(ct_module_to(mg, CUDA0) == CT_OK, "module_to: %s", ct_ctx_error(ctx));
        ct_optim *oc = make_opt(mc, (opt_kind)k), *og = make_opt(mg, (opt_kind)k);
        ck_assert_msg(oc && og, "optimizer %d: %s", k, ct_ctx_error(ctx));
        for (int step = 0; step < 4; step++) {
            ct_scope_begin(ctx);
            ct_optim_zero_grad(oc);
            ct_optim_zero_grad(og);
            ck_assert_int_eq(ct_backward(opt_loss(ctx, mc, step, false)), CT_OK);
            ck_assert_msg(ct_backward(opt_loss(ctx, mg, step, true)) == CT_OK, "%s",
                          ct_ctx_error(ctx));
            ck_assert_int_eq(ct_optim_step(oc), CT_OK);
            ck_assert_msg(ct_optim_step(og) == CT_OK, "step on cuda: %s", ct_ctx_error(ctx));
            char what[64];
            snprintf(what, sizeof what, "optimizer %d step %d: a", k, step);
            expect_close(ctx, what, ct_module_param(mc, "a"), ct_module_param(mg, "a"), 1e-7,
                         1e-6);
            snprintf(what, sizeof what, "optimizer %d step %d: sub.b", k, step);
            expect_close(ctx, what, ct_module_param(mc, "sub.b"), ct_module_param(mg, "sub.b"),
                         1e-7, 1e-6);
            ct_scope_end(ctx);
        }
        ct_optim_free(oc);
        ct_optim_free(og);
        ct_module_free(mc);
        ct_module_free(mg);
    }
    ct_ctx_free(ctx);
}
END_TEST

/* The reductions are deterministic: the same inputs give the same bits on every run (no
 * float atomics): cross-entropy, reduced BCE, layer_norm's gw/gb column sums (several row
 * chunks), and the embedding gradient (sorted runs). */
START_TEST(test_cuda_deterministic) {
    if (!have_gpu()) return;
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *first[5] = {NULL};
    for (int run = 0; run < 2; run++) {
        ct_tensor *x = ct_to(LEAF(ctx, 500, -4, 4, 2000, 77), CUDA0);
        ct_tensor *t = ct_to(RAND_IDX(ctx, 501, 77, 2000), CUDA0);
        ct_tensor *ce = ct_cross_entropy(x, t, -100);
        ct_tensor *y = ct_to(tu_rand(ctx, 502, 0, 1, CT_SHAPE(2000, 77)), CUDA0);
        ct_tensor *bce = ct_bce_with_logits(x, y, CT_REDUCE_MEAN);
        ct_tensor *xl = LEAF(ctx, 503, -3, 3, 5000, 40);
        ct_tensor *w = LEAF(ctx, 504, 0.5f, 1.5f, 40), *b = LEAF(ctx, 505, -1, 1, 40);
        ct_tensor *xg = ct_to(xl, CUDA0), *wg = ct_to(w, CUDA0), *bg = ct_to(b, CUDA0);
        ct_tensor *ln = ct_layer_norm(xg, wg, bg, 1e-5f);
        ct_tensor *ew = LEAF(ctx, 506, -1, 1, 30, 8);
        ct_tensor *e = ct_embedding(ct_to(ew, CUDA0), ct_to(RAND_IDX(ctx, 507, 30, 4000), CUDA0));
        ck_assert_msg(ce && bce && ln && e, "%s", ct_ctx_error(ctx));
        ct_tensor *wl = ct_to(tu_rand(ctx, 508, -1, 1, CT_SHAPE(5000, 40)), CUDA0);
        ct_tensor *we = ct_to(tu_rand(ctx, 509, -1, 1, CT_SHAPE(4000, 8)), CUDA0);
        ct_tensor *loss = ct_add(ct_sum_all(ct_mul(ln, wl)), ct_sum_all(ct_mul(e, we)));
        ck_assert_int_eq(ct_backward(loss), CT_OK);
        ct_tensor *got[5] = {ce, bce, w->grad, b->grad, ew->grad};
        for (int i = 0; i < 5; i++) {
            ck_assert_ptr_nonnull(got[i]);
            if (run == 0) first[i] = got[i];
            else expect_close(ctx, "a second run", first[i], got[i], 0, 0);
        }
    }
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_cuda_clip_grad_norm) {
    if (!have_gpu()) return;
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    float limits[2] = {0.5f, 1e6f};          /* clipped, and left alone */
    for (int c = 0; c < 2; c++) {
        ct_module *mc = opt_model(ctx), *mg = opt_model(ctx);
        ck_assert_int_eq(ct_module_to(mg, CUDA0), CT_OK);
        ct_scope_begin(ctx);
        ck_assert_int_eq(ct_backward(opt_loss(ctx, mc, c, false)), CT_OK);
        ck_assert_int_eq(ct_backward(opt_loss(ctx, mg, c, true)), CT_OK);
        double nc = 0, ng = 0;
        ck_assert_int_eq(ct_clip_grad_norm(mc, limits[c], &nc), CT_OK);
        ck_assert_msg(ct_clip_grad_norm(mg, limits[c], &ng) == CT_OK, "%s", ct_ctx_error(ctx));
        ck_assert_msg(fabs(nc - ng) <= 1e-12 * nc, "norms %.17g (cpu) and %.17g (cuda)", nc, ng);
        ck_assert(nc > 0.5);
        expect_close(ctx, "clipped grad a", ct_module_param(mc, "a")->grad,
                     ct_module_param(mg, "a")->grad, 0, 1e-6);
        expect_close(ctx, "clipped grad b", ct_module_param(mc, "sub.b")->grad,
                     ct_module_param(mg, "sub.b")->grad, 0, 1e-6);
        ct_scope_end(ctx);
        ct_module_free(mc);
        ct_module_free(mg);
    }
    ct_ctx_free(ctx);
}
END_TEST

Suite *cuda_kernels_suite(void) {
    Suite *s = suite_create("cuda_kernels");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_cuda_build_flags);
    tcase_add_test(tc, test_index_check_errors);
    tcase_add_test(tc, test_cuda_softmax);
    tcase_add_test(tc, test_cuda_max);
    tcase_add_test(tc, test_cuda_cross_entropy);
    tcase_add_test(tc, test_cuda_bce_with_logits);
    tcase_add_test(tc, test_cuda_embedding);
    tcase_add_test(tc, test_cuda_index_ops);
    tcase_add_test(tc, test_cuda_layer_norm);
    tcase_add_test(tc, test_cuda_optimizers);
    tcase_add_test(tc, test_cuda_clip_grad_norm);
    tcase_add_test(tc, test_cuda_deterministic);
    suite_add_tcase(s, tc);
    return s;
}
