/* tests/engine/test_cuda_kernels.c — the CUDA kernel groups nn, index, layernorm and optim
 * (engine/cuda/{nn,index,layernorm,optim}.cu) against the CPU reference; and every public op of
 * engine/ops.h through the front end on cuda:0, values and gradients: element-wise (broadcast,
 * strided, 0-d, empty, sizes off multiples of 32 and 256), matmul, views, concat / stack / split /
 * chunk, reductions, argmax; the Embedding layer with a padding row on a ct_module_clone; clipping
 * (by norm, by value, a NaN norm) and Adam over a 2.1M-element flat block.
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
 *  - 1e-6 / 1e-5 (gradients summed over broadcast dims: 1e-5 / 1e-5): element-wise ops (CUDA's
 *    expf/logf/powf/tanhf are within a few ulp of glibc's); sums and means 1e-5 / 1e-5.
 *  - matmul 2e-5 / 1e-4, values and gradients: cuBLAS sums in another order than OpenBLAS;
 *    TF32 (about 1e-3 relative) or bf16 products (1e-2) would fail (both are off by default).
 *  - exact: views, joins (copies), argmax, clip_grad_value (a clamp).
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
        if (!ok)     /* (Check's assertions cost a write to its pipe each: only on failure) */
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

/* ---- element-wise ops through the front end: values and gradients ------------------------------- *
 * Broadcasting (the gradients are summed down to each operand's shape), a strided operand, 0-d
 * and empty operands, and sizes that are no multiple of 32 or 256 (one dense launch of 100003
 * elements, and a broadcast [257, 1] x [1, 389] that takes the per-dim indexing path). */
typedef ct_tensor *(*bin_fn)(ct_src, ct_tensor *, ct_tensor *);
typedef struct ew_bin { bin_fn fn; bool transpose_a; } ew_bin;
static ct_tensor *f_ew_bin(ct_tensor **in, void *ud) {
    const ew_bin *c = ud;
    return c->fn(CT_SRC, c->transpose_a ? ct_transpose(in[0], 0, 1) : in[0], in[1]);
}

typedef enum {
    EW_NEG, EW_EXP, EW_LOG, EW_SQRT, EW_TANH, EW_SIGMOID, EW_RELU, EW_CLAMP, EW_ADD_S, EW_SUB_S,
    EW_MUL_S, EW_DIV_S, EW_POW_S, EW_RSUB_S, EW_N
} ew_un;
static ct_tensor *f_ew_un(ct_tensor **in, void *ud) {
    ct_tensor *a = in[0];
    switch (*(const ew_un *)ud) {
    case EW_NEG: return ct_neg(a);
    case EW_EXP: return ct_exp(a);
    case EW_LOG: return ct_log(a);
    case EW_SQRT: return ct_sqrt(a);
    case EW_TANH: return ct_tanh(a);
    case EW_SIGMOID: return ct_sigmoid(a);
    case EW_RELU: return ct_relu(a);
    case EW_CLAMP: return ct_clamp(a, -0.25f, 0.5f);
    case EW_ADD_S: return ct_add_scalar(a, 1.5f);
    case EW_SUB_S: return ct_sub_scalar(a, 0.75f);
    case EW_MUL_S: return ct_mul_scalar(a, -2.5f);
    case EW_DIV_S: return ct_div_scalar(a, 3.0f);
    case EW_POW_S: return ct_pow_scalar(a, 1.7f);
    case EW_RSUB_S: return ct_rsub_scalar(2.0f, a);
    default: return NULL;
    }
}

START_TEST(test_cuda_elementwise_grads) {
    if (!have_gpu()) return;
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    const bin_fn fns[5] = {ct_add_at, ct_sub_at, ct_mul_at, ct_div_at, ct_pow_at};
    for (int f = 0; f < 5; f++) {
        const bool pw = f == 4, dv = f == 3;
        const float alo = pw ? 0.2f : -2, ahi = 2, blo = pw ? -2 : (dv ? 0.5f : -2), bhi = 2;
        char what[80];
        ew_bin plain = {fns[f], false}, tr = {fns[f], true};
        /* [3, 1, 5] with [4, 5] -> [3, 4, 5] */
        ct_tensor *in1[2] = {LEAF(ctx, 600 + f, alo, ahi, 3, 1, 5), LEAF(ctx, 610 + f, blo, bhi, 4, 5)};
        snprintf(what, sizeof what, "binary %d broadcast", f);
        run_both(ctx, what, f_ew_bin, 2, in1, &plain, 1e-6, 1e-5, 1e-6, 1e-5);
        /* a transposed operand: [5, 4]^T = [4, 5] with [3, 1, 5] */
        ct_tensor *in2[2] = {LEAF(ctx, 620 + f, alo, ahi, 5, 4), LEAF(ctx, 630 + f, blo, bhi, 3, 1, 5)};
        snprintf(what, sizeof what, "binary %d transposed", f);
        run_both(ctx, what, f_ew_bin, 2, in2, &tr, 1e-6, 1e-5, 1e-6, 1e-5);
        /* a 0-d operand */
        ct_tensor *in3[2] = {LEAF(ctx, 640 + f, alo, ahi, 6, 7), leaf(ctx, 650 + f, blo, bhi, 0, NULL)};
        snprintf(what, sizeof what, "binary %d with a 0-d operand", f);
        run_both(ctx, what, f_ew_bin, 2, in3, &plain, 1e-6, 1e-5, 1e-5, 1e-5);
        /* odd sizes: a dense 100003 and a broadcast [257, 1] x [1, 389] */
        ct_tensor *in4[2] = {LEAF(ctx, 660 + f, alo, ahi, 100003), LEAF(ctx, 670 + f, blo, bhi, 100003)};
        snprintf(what, sizeof what, "binary %d dense 100003", f);
        run_both(ctx, what, f_ew_bin, 2, in4, &plain, 1e-6, 1e-5, 1e-6, 1e-5);
        ct_tensor *in5[2] = {LEAF(ctx, 680 + f, alo, ahi, 257, 1), LEAF(ctx, 690 + f, blo, bhi, 1, 389)};
        snprintf(what, sizeof what, "binary %d broadcast 257x389", f);
        run_both(ctx, what, f_ew_bin, 2, in5, &plain, 1e-6, 1e-5, 1e-5, 1e-5);
        /* empty: [0, 5] with [1, 5] (the gradient of the [1, 5] operand is a sum of nothing) */
        ct_tensor *in6[2] = {LEAF(ctx, 700 + f, alo, ahi, 0, 5), LEAF(ctx, 710 + f, blo, bhi, 1, 5)};
        snprintf(what, sizeof what, "binary %d empty", f);
        run_both(ctx, what, f_ew_bin, 2, in6, &plain, 0, 0, 0, 0);
    }
    /* the unary and scalar ops, dense (odd sizes) and on a 0-d tensor */
    for (int u = 0; u < EW_N; u++) {
        const bool pos = u == EW_LOG || u == EW_SQRT || u == EW_POW_S;
        const float lo = pos ? 0.05f : -3, hi = 3;
        char what[80];
        ew_un op = (ew_un)u;
        ct_tensor *x = LEAF(ctx, 720 + u, lo, hi, 37, 1001);
        snprintf(what, sizeof what, "unary op %d [37, 1001]", u);
        run_both(ctx, what, f_ew_un, 1, &x, &op, 1e-6, 1e-5, 1e-6, 1e-5);
        ct_tensor *s = leaf(ctx, 740 + u, lo, hi, 0, NULL);
        snprintf(what, sizeof what, "unary op %d 0-d", u);
        run_both(ctx, what, f_ew_un, 1, &s, &op, 1e-6, 1e-5, 1e-6, 1e-5);
    }
    ck_assert_msg(errs.count == 0, "%s", errs.last.msg);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- matmul forward and backward in float32 (TF32 and bf16 are off by default) -------------------- *
 * 1e-4 relative (+2e-5 absolute): cuBLAS sums in another order than OpenBLAS; TF32 (about 1e-3
 * relative) or bf16 (about 1e-2) products would fail it. */
typedef struct mm_case { bool ta, tb; } mm_case;
static ct_tensor *f_matmul(ct_tensor **in, void *ud) {
    const mm_case *c = ud;
    ct_tensor *a = c->ta ? ct_transpose(in[0], in[0]->ndim - 2, in[0]->ndim - 1) : in[0];
    ct_tensor *b = c->tb ? ct_transpose(in[1], in[1]->ndim - 2, in[1]->ndim - 1) : in[1];
    return ct_matmul(a, b);
}

START_TEST(test_cuda_matmul_grad) {
    if (!have_gpu()) return;
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ck_assert(!ct_device_tf32(CUDA0));
    ck_assert(!ct_device_bf16(CUDA0));
    /* the four transposes, stored shapes chosen so that the product is [7, 5] x [5, 3] */
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            mm_case c = {ta, tb};
            ct_tensor *in[2] = {ta ? LEAF(ctx, 800, -1, 1, 5, 7) : LEAF(ctx, 801, -1, 1, 7, 5),
                                tb ? LEAF(ctx, 802, -1, 1, 3, 5) : LEAF(ctx, 803, -1, 1, 5, 3)};
            char what[64];
            snprintf(what, sizeof what, "matmul ta %d tb %d", ta, tb);
            run_both(ctx, what, f_matmul, 2, in, &c, 2e-5, 1e-4, 2e-5, 1e-4);
        }
    mm_case plain = {false, false}, bt = {false, true};
    struct { int64_t a[4], b[4]; int na, nb; const mm_case *c; const char *what; } cases[] = {
        {{2, 3, 4, 5}, {5, 6}, 4, 2, &plain, "batched x broadcast weight"},
        {{3, 1, 4, 5}, {2, 5, 2}, 4, 3, &plain, "batch dims broadcast both ways"},
        {{4, 5}, {2, 3, 5, 6}, 2, 4, &plain, "2-d x batched"},
        {{6, 20, 33}, {40, 33}, 3, 2, &bt, "linear layer (x W^T)"},
        {{1, 129}, {129, 33}, 2, 2, &plain, "batch 1 row"},
        {{65, 129}, {129, 33}, 2, 2, &plain, "odd sizes"},
        {{4, 0}, {0, 3}, 2, 2, &plain, "k = 0"},
        {{0, 5}, {5, 3}, 2, 2, &plain, "m = 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ct_tensor *in[2] = {leaf(ctx, 810 + 2 * i, -1, 1, cases[i].na, cases[i].a),
                            leaf(ctx, 811 + 2 * i, -1, 1, cases[i].nb, cases[i].b)};
        run_both(ctx, cases[i].what, f_matmul, 2, in, (void *)cases[i].c, 2e-5, 1e-4, 2e-5, 1e-4);
    }
    ck_assert_msg(errs.count == 0, "%s", errs.last.msg);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- views, joining and splitting: copies, so exact (sums of broadcast gradients: 1e-6) ---------- */
static ct_tensor *f_view_chain(ct_tensor **in, void *ud) {
    (void)ud;    /* [4, 6, 5] -> permute [5, 4, 6] -> narrow [5, 4, 4] -> select [4, 4] -> [3, 4, 4] */
    ct_tensor *y = ct_narrow(ct_permute(in[0], 2, 0, 1), 2, 1, 4);
    y = ct_unsqueeze(ct_select(y, 0, 2), 0);
    return ct_contiguous(ct_expand(y, 3, 4, 4));
}
static ct_tensor *f_reshape_t(ct_tensor **in, void *ud) {
    (void)ud;    /* a reshape of a transposed (non-contiguous) tensor copies; squeeze, clone */
    ct_tensor *y = ct_reshape(ct_transpose(in[0], 0, 2), 5, 1, 24);
    return ct_clone(ct_squeeze(y, 1));
}
static ct_tensor *f_concat(ct_tensor **in, void *ud) {
    (void)ud;    /* [4, 3], [5, 4]^T, [4, 9] narrowed to [4, 6] -> [4, 14] */
    ct_tensor *ts[3] = {in[0], ct_transpose(in[1], 0, 1), ct_narrow(in[2], 1, 2, 6)};
    return ct_concat(3, ts, -1);
}
static ct_tensor *f_concat_empty(ct_tensor **in, void *ud) {
    (void)ud;    /* [4, 3] and [0, 3] along dim 0 */
    ct_tensor *ts[2] = {in[1], in[0]};
    return ct_concat(2, ts, 0);
}
static ct_tensor *f_stack(ct_tensor **in, void *ud) {
    (void)ud;    /* [4, 3] and [3, 4]^T -> [4, 3, 2] */
    ct_tensor *ts[2] = {in[0], ct_transpose(in[1], 0, 1)};
    return ct_stack(2, ts, -1);
}
static ct_tensor *f_split(ct_tensor **in, void *ud) {
    (void)ud;    /* [10, 7] in pieces of 3 rows (3, 3, 3, 1), reversed, scaled 1..4 */
    ct_tensor *p[8];
    int n = ct_split(in[0], 3, 0, p, 8);
    ck_assert_int_eq(n, 4);
    ct_tensor *r[4];
    for (int i = 0; i < 4; i++) r[i] = ct_mul_scalar(p[3 - i], (float)(i + 1));
    return ct_concat(4, r, 0);
}
static ct_tensor *f_chunk(ct_tensor **in, void *ud) {
    (void)ud;    /* [6, 11] in 3 chunks along dim 1 (4, 4, 3), reordered */
    ct_tensor *p[3];
    ck_assert_int_eq(ct_chunk(in[0], 3, 1, p), 3);
    ct_tensor *r[3] = {p[2], p[0], ct_mul_scalar(p[1], -2.0f)};
    return ct_concat(3, r, 1);
}

START_TEST(test_cuda_views_join) {
    if (!have_gpu()) return;
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *x = LEAF(ctx, 900, -1, 1, 4, 6, 5);
    run_both(ctx, "permute/narrow/select/unsqueeze/expand", f_view_chain, 1, &x, NULL, 0, 0, 1e-6, 1e-6);
    ct_tensor *x2 = LEAF(ctx, 901, -1, 1, 4, 6, 5);
    run_both(ctx, "reshape of a transposed tensor, squeeze, clone", f_reshape_t, 1, &x2, NULL, 0, 0, 0, 0);
    ct_tensor *cin[3] = {LEAF(ctx, 902, -1, 1, 4, 3), LEAF(ctx, 903, -1, 1, 5, 4), LEAF(ctx, 904, -1, 1, 4, 9)};
    run_both(ctx, "concat", f_concat, 3, cin, NULL, 0, 0, 0, 0);
    ct_tensor *ein[2] = {LEAF(ctx, 905, -1, 1, 0, 3), LEAF(ctx, 906, -1, 1, 4, 3)};
    run_both(ctx, "concat with an empty tensor", f_concat_empty, 2, ein, NULL, 0, 0, 0, 0);
    ct_tensor *sin[2] = {LEAF(ctx, 907, -1, 1, 4, 3), LEAF(ctx, 908, -1, 1, 3, 4)};
    run_both(ctx, "stack", f_stack, 2, sin, NULL, 0, 0, 0, 0);
    ct_tensor *sp = LEAF(ctx, 909, -1, 1, 10, 7);
    run_both(ctx, "split", f_split, 1, &sp, NULL, 0, 0, 0, 0);
    ct_tensor *ch = LEAF(ctx, 910, -1, 1, 6, 11);
    run_both(ctx, "chunk", f_chunk, 1, &ch, NULL, 0, 0, 0, 0);
    /* int64 through concat and a strided copy */
    ct_tensor *ia = RAND_IDX(ctx, 911, 1000, 3, 4), *ib = RAND_IDX(ctx, 912, 1000, 4, 2);
    ct_tensor *ic[2] = {ia, ct_transpose(ib, 0, 1)};                 /* [3, 4] and [2, 4] */
    ct_tensor *ig[2] = {ct_to(ia, CUDA0), ct_transpose(ct_to(ib, CUDA0), 0, 1)};
    expect_close(ctx, "concat (int64)", ct_concat(2, ic, 0), ct_concat(2, ig, 0), 0, 0);
    ck_assert_msg(errs.count == 0, "%s", errs.last.msg);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- reductions: gradients of sum and mean, argmax, max with keepdim, 1-D cross-entropy --------- */
typedef struct red_case { int n; int dims[2]; bool keep, mean, transpose; } red_case;
static ct_tensor *f_reduce(ct_tensor **in, void *ud) {
    const red_case *c = ud;
    ct_tensor *a = c->transpose ? ct_transpose(in[0], 0, 2) : in[0];
    return c->mean ? ct_mean_at(CT_SRC, a, c->n, c->dims, c->keep)
                   : ct_sum_at(CT_SRC, a, c->n, c->dims, c->keep);
}
static ct_tensor *f_max_keep(ct_tensor **in, void *ud) { return ct_max(in[0], *(int *)ud, true, NULL); }
static ct_tensor *f_argmax(ct_tensor **in, void *ud) { return ct_argmax(in[0], *(int *)ud, false); }
static ct_tensor *f_argmax_keep(ct_tensor **in, void *ud) { return ct_argmax(in[0], *(int *)ud, true); }

START_TEST(test_cuda_reduce_grads) {
    if (!have_gpu()) return;
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    const red_case cases[] = {
        {1, {0, 0}, false, false, false}, {1, {1, 0}, true, false, false}, {1, {2, 0}, false, true, false},
        {2, {0, 2}, true, false, false}, {2, {0, 1}, false, true, false}, {0, {0, 0}, false, false, false},
        {0, {0, 0}, false, true, false}, {1, {-1, 0}, false, false, true}, {2, {0, 1}, true, true, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ct_tensor *x = LEAF(ctx, 950 + i, -1, 1, 6, 53, 7);
        char what[64];
        snprintf(what, sizeof what, "reduction case %zu", i);
        run_both(ctx, what, f_reduce, 1, &x, (void *)&cases[i], 1e-5, 1e-5, 1e-6, 1e-6);
    }
    /* empty: a sum over an empty dim is 0, a mean of nothing is NaN (on both) */
    ct_tensor *e = LEAF(ctx, 970, -1, 1, 0, 4);
    run_both(ctx, "sum over an empty dim", f_reduce, 1, &e, (void *)&cases[0], 0, 0, 0, 0);
    ct_tensor *e2 = LEAF(ctx, 971, -1, 1, 0, 4);
    ct_tensor *e2c = ct_mean(e2, 0, false), *e2g = ct_mean(ct_to(e2, CUDA0), 0, false);
    expect_close(ctx, "mean over an empty dim (NaN)", e2c, e2g, 0, 0);
    /* max with keepdim (gradient to the first maximum), argmax (int64), batch 1 and odd sizes */
    int d1 = 1, d0 = 0;
    ct_tensor *m = LEAF(ctx, 972, -1, 1, 1, 333);
    ct_data_f32(m)[100] = ct_data_f32(m)[200] = 3.0f;
    run_both(ctx, "max keepdim, batch 1", f_max_keep, 1, &m, &d1, 0, 0, 0, 0);
    ct_tensor *am = LEAF(ctx, 973, -1, 1, 37, 259);
    run_both(ctx, "argmax dim 1", f_argmax, 1, &am, &d1, 0, 0, 0, 0);
    run_both(ctx, "argmax dim 0 keepdim", f_argmax_keep, 1, &am, &d0, 0, 0, 0, 0);
    /* cross-entropy of one row: logits [C], a 0-d target */
    int64_t ignore = -100;
    ct_tensor *l1 = LEAF(ctx, 974, -4, 4, 300);
    ct_tensor *in[2] = {l1, ct_from_i64(ctx, (const int64_t[]){123}, 0, NULL)};
    run_both(ctx, "cross_entropy of one row", f_ce, 2, in, &ignore, 1e-6, 1e-5, 1e-7, 1e-4);
    ck_assert_msg(errs.count == 0, "%s", errs.last.msg);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- the Embedding layer with a padding row, on a clone of the module on cuda:0 ---------------- */
START_TEST(test_cuda_embedding_padding_clone) {
    if (!have_gpu()) return;
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_rng rng;
    ct_rng_seed(&rng, 990);
    ct_module *mc = ct_embedding_module_new_ex(ctx, &rng, 20, 6, 3);
    ck_assert_ptr_nonnull(mc);
    ct_module *mg = ct_module_clone(mc, CUDA0);          /* a deep copy on the device */
    ck_assert_msg(mg != NULL, "module_clone(cuda:0): %s", ct_ctx_error(ctx));
    ct_tensor *wc = ct_module_param(mc, "weight"), *wg = ct_module_param(mg, "weight");
    ck_assert_int_eq(ct_tensor_device(wg).type, CT_CUDA);
    ck_assert(ct_requires_grad(wg));
    expect_close(ctx, "cloned weight", wc, wg, 0, 0);
    ct_tensor *ix = RAND_IDX(ctx, 991, 20, 5, 7);
    for (int i = 0; i < 35; i += 4) ct_data_i64(ix)[i] = 3;  /* the padding row, often */
    ct_tensor *yc = ct_embedding_module_forward(mc, ix);
    ct_tensor *yg = ct_embedding_module_forward(mg, ct_to(ix, CUDA0));
    expect_close(ctx, "embedding layer (value)", yc, yg, 0, 0);
    ct_tensor *w = tu_rand(ctx, 992, -1, 1, CT_SHAPE(5, 7, 6));
    ck_assert_int_eq(ct_backward(ct_sum_all(ct_mul(yc, w))), CT_OK);
    ck_assert_msg(ct_backward(ct_sum_all(ct_mul(yg, ct_to(w, CUDA0)))) == CT_OK, "%s", ct_ctx_error(ctx));
    expect_close(ctx, "embedding layer (weight gradient)", ct_grad(wc), ct_grad(wg), 0, 0);
    double *g = host_values(ct_grad(wg));
    for (int j = 0; j < 6; j++) ck_assert_msg(g[3 * 6 + j] == 0.0, "the padding row got a gradient");
    free(g);
    ct_module_free(mg);
    ct_module_free(mc);
    ck_assert_msg(errs.count == 0, "%s", errs.last.msg);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- clipping and optimizers over a large flat block (the multi-block reductions) -------------- *
 * 2,100,003 parameters: sum_squares runs its full grid (1024 blocks, several elements each) and
 * the update kernels thousands of blocks. Norms within 1e-12 relative (double sums in another
 * order); the clipped gradients within 1e-6 relative; Adam's update as in test_cuda_optimizers. */
static ct_module *big_model(ct_ctx *ctx, int64_t n) {
    ct_module *root = ct_module_new(ctx, "Big", 0);
    ck_assert_ptr_nonnull(root);
    ct_tensor *p = ct_module_add_param(root, "w", 1, &n);
    ct_tensor *q = ct_module_add_param(root, "v", CT_SHAPE(3, 37));
    ck_assert(p && q);
    for (int64_t i = 0; i < n; i++) ct_data_f32(p)[i] = 0.001f * (float)(i % 1999) - 0.9f;
    for (int i = 0; i < 111; i++) ct_data_f32(q)[i] = 0.01f * (float)i;
    return root;
}
/* the gradient of sum(w * cw) + sum(v * cv) is (cw, cv) */
static void big_backward(ct_ctx *ctx, ct_module *m, int64_t n, bool cuda, float scale, bool poison) {
    ct_tensor *cw = tu_rand(ctx, 1000, -scale, scale, 1, &n);
    ct_tensor *cv = tu_rand(ctx, 1001, -scale, scale, CT_SHAPE(3, 37));
    if (poison) ct_data_f32(cw)[n - 2] = NAN;
    if (cuda) {
        cw = ct_to(cw, CUDA0);
        cv = ct_to(cv, CUDA0);
    }
    ct_tensor *l = ct_add(ct_sum_all(ct_mul(ct_module_param(m, "w"), cw)),
                          ct_sum_all(ct_mul(ct_module_param(m, "v"), cv)));
    ck_assert_msg(l != NULL, "%s", ct_ctx_error(ctx));
    ck_assert_int_eq(ct_backward(l), CT_OK);
}

START_TEST(test_cuda_clip_and_step_large) {
    if (!have_gpu()) return;
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    const int64_t n = 2100003;
    ct_module *mc = big_model(ctx, n), *mg = big_model(ctx, n);
    ck_assert_int_eq(ct_module_to(mg, CUDA0), CT_OK);
    ct_optim *oc = ct_adam_new(mc, ct_adam_defaults(1e-3)), *og = ct_adam_new(mg, ct_adam_defaults(1e-3));
    ck_assert_msg(oc && og, "%s", ct_ctx_error(ctx));
    for (int step = 0; step < 2; step++) {
        ct_scope_begin(ctx);
        ct_optim_zero_grad(oc);
        ct_optim_zero_grad(og);
        big_backward(ctx, mc, n, false, 1.0f, false);
        big_backward(ctx, mg, n, true, 1.0f, false);
        double nc = 0, ng = 0;
        ck_assert_int_eq(ct_clip_grad_norm(mc, 100.0f, &nc), CT_OK);
        ck_assert_msg(ct_clip_grad_norm(mg, 100.0f, &ng) == CT_OK, "%s", ct_ctx_error(ctx));
        ck_assert_msg(fabs(nc - ng) <= 1e-12 * nc, "norms %.17g (cpu) and %.17g (cuda)", nc, ng);
        ck_assert(nc > 100.0);                  /* clipped */
        expect_close(ctx, "clipped gradient (large)", ct_grad(ct_module_param(mc, "w")),
                     ct_grad(ct_module_param(mg, "w")), 0, 1e-6);
        ck_assert_int_eq(ct_optim_step(oc), CT_OK);
        ck_assert_msg(ct_optim_step(og) == CT_OK, "%s", ct_ctx_error(ctx));
        expect_close(ctx, "adam step (large) w", ct_module_param(mc, "w"), ct_module_param(mg, "w"), 1e-7, 1e-6);
        expect_close(ctx, "adam step (large) v", ct_module_param(mc, "v"), ct_module_param(mg, "v"), 1e-7, 1e-6);
        ct_scope_end(ctx);
    }
    /* clip_grad_value: a clamp of the flat gradient block, exact */
    ct_scope_begin(ctx);
    ct_optim_zero_grad(oc);
    ct_optim_zero_grad(og);
    big_backward(ctx, mc, n, false, 2.0f, false);
    big_backward(ctx, mg, n, true, 2.0f, false);
    ck_assert_int_eq(ct_clip_grad_value(mc, 0.5f), CT_OK);
    ck_assert_msg(ct_clip_grad_value(mg, 0.5f) == CT_OK, "%s", ct_ctx_error(ctx));
    expect_close(ctx, "clip_grad_value w", ct_grad(ct_module_param(mc, "w")), ct_grad(ct_module_param(mg, "w")), 0, 0);
    expect_close(ctx, "clip_grad_value v", ct_grad(ct_module_param(mc, "v")), ct_grad(ct_module_param(mg, "v")), 0, 0);
    ct_scope_end(ctx);
    /* a NaN gradient: CT_E_STATE, the norm is NaN, the gradients are left alone */
    ct_scope_begin(ctx);
    ct_optim_zero_grad(og);
    big_backward(ctx, mg, n, true, 1.0f, true);
    double before[2], after[2];
    const int64_t at[2] = {0, n - 1};
    for (int i = 0; i < 2; i++) before[i] = ct_get(ct_grad(ct_module_param(mg, "w")), &at[i]);
    double ng = 0;
    ck_assert_int_eq(ct_clip_grad_norm(mg, 1.0f, &ng), CT_E_STATE);
    ck_assert(isnan(ng));
    ck_assert_msg(strstr(errs.last.msg, "nan") != NULL, "%s", errs.last.msg);
    for (int i = 0; i < 2; i++) after[i] = ct_get(ct_grad(ct_module_param(mg, "w")), &at[i]);
    ck_assert(before[0] == after[0] && before[1] == after[1]);
    ct_ctx_clear_error(ctx);
    ct_scope_end(ctx);
    ct_optim_free(oc);
    ct_optim_free(og);
    ct_module_free(mc);
    ct_module_free(mg);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- the nn and index kernels at sizes past one block ----------------------------------------------- *
 * Rows of 5000 (softmax, log_softmax, max, a cross-entropy of 5000 classes), long columns,
 * an embedding of 1000 x 300 with 5000 indices, index_select and gather with hundreds of
 * repeated indices, layer_norm over 1500 features, dropout, masked_fill and where over about
 * 100000 elements: the tolerances of the smaller cases above. */
static ct_tensor *f_where_bc(ct_tensor **in, void *ud) {
    (void)ud;    /* cond [257, 1], a [1, 389], b [257, 389] */
    return ct_where(in[2], in[0], in[1]);
}

START_TEST(test_cuda_nn_index_large) {
    if (!have_gpu()) return;
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    int one = 1, zero = 0;
    ct_tensor *s1 = LEAF(ctx, 1100, -8, 8, 3, 5000);
    run_both(ctx, "softmax (rows of 5000)", f_softmax, 1, &s1, &one, 1e-6, 1e-5, 1e-6, 1e-4);
    ct_tensor *s2 = LEAF(ctx, 1101, -8, 8, 3, 5000);
    run_both(ctx, "log_softmax (rows of 5000)", f_log_softmax, 1, &s2, &one, 1e-5, 1e-5, 1e-6, 1e-4);
    ct_tensor *s3 = LEAF(ctx, 1102, -8, 8, 2, 3000, 3);
    run_both(ctx, "softmax (columns of 3000)", f_softmax, 1, &s3, &one, 1e-6, 1e-5, 1e-6, 1e-4);
    ct_tensor *m1 = LEAF(ctx, 1103, -1, 1, 4, 5000);
    run_both(ctx, "max (rows of 5000)", f_max, 1, &m1, &one, 0, 0, 0, 0);
    ct_tensor *m2 = LEAF(ctx, 1104, -1, 1, 5000, 3);
    run_both(ctx, "max (columns of 5000)", f_max, 1, &m2, &zero, 0, 0, 0, 0);
    int64_t ignore = -100;
    ct_tensor *ce[2] = {LEAF(ctx, 1105, -6, 6, 2, 5000), i64(ctx, (const int64_t[]){4999, 17}, CT_SHAPE(2))};
    run_both(ctx, "cross_entropy (5000 classes)", f_ce, 2, ce, &ignore, 1e-6, 1e-5, 1e-7, 1e-4);
    ct_tensor *emb[2] = {LEAF(ctx, 1106, -1, 1, 1000, 300), RAND_IDX(ctx, 1107, 1000, 25, 200)};
    run_both(ctx, "embedding 1000 x 300, 5000 indices", f_embedding, 2, emb, NULL, 0, 0, 0, 0);
    ct_tensor *is0[2] = {LEAF(ctx, 1108, -1, 1, 300, 257), RAND_IDX(ctx, 1109, 300, 1000)};
    run_both(ctx, "index_select dim 0 (1000 of 300)", f_index_select, 2, is0, &zero, 0, 0, 0, 0);
    ct_tensor *is1[2] = {LEAF(ctx, 1110, -1, 1, 300, 257), RAND_IDX(ctx, 1111, 257, 700)};
    run_both(ctx, "index_select dim 1 (700 of 257)", f_index_select, 2, is1, &one, 0, 0, 0, 0);
    ct_tensor *ga[2] = {LEAF(ctx, 1112, -1, 1, 5, 1000, 3), RAND_IDX(ctx, 1113, 1000, 5, 777, 3)};
    run_both(ctx, "gather dim 1 (777 of 1000)", f_gather, 2, ga, &one, 0, 0, 0, 0);
    ln_case full = {true, true};
    int64_t D = 1500;
    ct_tensor *ln[3] = {LEAF(ctx, 1114, -3, 5, 7, 1500), leaf(ctx, 1115, 0.5f, 1.5f, 1, &D),
                        leaf(ctx, 1116, -1, 1, 1, &D)};
    run_both(ctx, "layer_norm 7 x 1500", f_layer_norm, 3, ln, &full, 1e-5, 1e-5, 1e-5, 1e-4);
    ct_tensor *dx = LEAF(ctx, 1117, -1, 1, 333, 301);
    uint64_t dseed = 1118;
    run_both(ctx, "dropout (100233 elements)", f_dropout, 1, &dx, &dseed, 0, 0, 0, 0);
    ct_tensor *mf[2] = {LEAF(ctx, 1119, -1, 1, 333, 301), RAND_IDX(ctx, 1120, 2, 333, 1)};
    run_both(ctx, "masked_fill (100233 elements, a [333, 1] mask)", f_masked_fill, 2, mf, NULL, 0, 0, 0, 0);
    ct_tensor *wh[3] = {LEAF(ctx, 1121, -1, 1, 1, 389), LEAF(ctx, 1122, -1, 1, 257, 389),
                        RAND_IDX(ctx, 1123, 2, 257, 1)};
    run_both(ctx, "where (broadcast, 99973 elements)", f_where_bc, 3, wh, NULL, 0, 0, 0, 0);
    ck_assert_msg(errs.count == 0, "%s", errs.last.msg);
    ct_ctx_free(ctx);
}
END_TEST

Suite *cuda_kernels_suite(void) {
    Suite *s = suite_create("cuda_kernels");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
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
    tcase_add_test(tc, test_cuda_elementwise_grads);
    tcase_add_test(tc, test_cuda_matmul_grad);
    tcase_add_test(tc, test_cuda_views_join);
    tcase_add_test(tc, test_cuda_reduce_grads);
    tcase_add_test(tc, test_cuda_embedding_padding_clone);
    tcase_add_test(tc, test_cuda_clip_and_step_large);
    tcase_add_test(tc, test_cuda_nn_index_large);
    suite_add_tcase(s, tc);
    return s;
}
