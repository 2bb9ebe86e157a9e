/* tests/engine/test_memory.c — the memory model: a training loop of 10,000
 * forward/backward/update iterations must not grow memory. */
#include <stdio.h>
#include <unistd.h>

#include "testutil.h"

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = -1;
    fclose(f);
    return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
}

START_TEST(test_training_loop_does_not_grow) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_rng rng;
    ct_rng_seed(&rng, 7);
    ct_tensor *w1 = ct_mul_scalar(ct_randn(ctx, &rng, CT_SHAPE(16, 32)), 0.3f);
    ct_tensor *b1 = ct_zeros(ctx, CT_SHAPE(32));
    ct_tensor *w2 = ct_mul_scalar(ct_randn(ctx, &rng, CT_SHAPE(32, 10)), 0.3f);
    ct_tensor *b2 = ct_zeros(ctx, CT_SHAPE(10));
    ct_tensor *ps[] = {w1, b1, w2, b2};
    for (int i = 0; i < 4; i++) ct_set_requires_grad(ps[i], true);
    ct_tensor *x = ct_randn(ctx, &rng, CT_SHAPE(8, 16));
    ct_tensor *y = ct_from_i64(ctx, (int64_t[]){0, 1, 2, 3, 4, 5, 6, 7}, CT_SHAPE(8));

    ct_mem_stats after_warmup = {0};
    long rss_warm = 0;
    (void)rss_warm;                      /* read only outside ASan builds */
    double first_loss = 0, last_loss = 0;
    const int iters = 10000;
    for (int it = 0; it < iters; it++) {
        ct_scope_begin(ctx);
        ct_tensor *h = ct_tanh(ct_add(ct_matmul(x, w1), b1));
        ct_tensor *loss = ct_cross_entropy(ct_add(ct_matmul(h, w2), b2), y, -100);
        ck_assert_int_eq(ct_backward(loss), CT_OK);
        for (int i = 0; i < 4; i++) {
            ct_inplace_axpy(ps[i], -0.05f, ct_grad(ps[i]));
            ct_zero_grad(ps[i]);
        }
        if (it == 0) first_loss = ct_item(loss);
        last_loss = ct_item(loss);
        ct_scope_end(ctx);
        if (it == 99) {
            after_warmup = ct_ctx_mem_stats(ctx);
            rss_warm = rss_kib();
        }
    }
    ct_mem_stats end = ct_ctx_mem_stats(ctx);
    ck_assert_int_eq(errs.count, 0);
    ck_assert_msg(last_loss < first_loss * 0.5, "the loop trains: loss %g -> %g", first_loss, last_loss);
    /* exactly the same live objects as after 100 iterations: nothing leaks per step */
    ck_assert_int_eq(end.live_tensors, after_warmup.live_tensors);
    ck_assert_int_eq(end.live_storages, after_warmup.live_storages);
    ck_assert_int_eq(end.live_nodes, 0);
    ck_assert_int_eq(end.live_bytes, after_warmup.live_bytes);
    ck_assert_int_eq(end.cached_bytes, after_warmup.cached_bytes);   /* the cache is reused */
    ck_assert_int_eq(end.peak_bytes, after_warmup.peak_bytes);
    ck_assert_int_eq(end.live_tensors, 12);   /* 4 parameters, 4 gradients, x, y, 2 randn sources */
#if !defined(__SANITIZE_ADDRESS__)
    /* and the process itself (ASan's quarantine holds freed memory on purpose, so only here) */
    long rss_end = rss_kib();
    ck_assert_msg(rss_end - rss_warm < 2048, "RSS grew from %ld KiB to %ld KiB", rss_warm, rss_end);
#endif
    ct_ctx_free(ctx);
}
END_TEST

Suite *memory_suite(void) {
    Suite *s = suite_create("memory");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_training_loop_does_not_grow);
    suite_add_tcase(s, tc);
    return s;
}
