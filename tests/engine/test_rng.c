/* tests/engine/test_rng.c — explicit generators: streams, state, distributions, random tensors.
 *
 * Every test uses fixed seeds, so the statistics below are deterministic: the tolerances are
 * many standard deviations wide (they never flake for a correct generator) yet tight enough
 * to catch a wrong range, a biased reduction or a broken transform. */
#include <math.h>
#include <stdlib.h>

#include "testutil.h"

#define NDRAW 100000

static void state_of(const ct_rng *r, uint8_t out[CT_RNG_STATE_BYTES]) { ct_rng_save(r, out); }

static bool same_state(const ct_rng *a, const ct_rng *b) {
    uint8_t x[CT_RNG_STATE_BYTES], y[CT_RNG_STATE_BYTES];
    state_of(a, x);
    state_of(b, y);
    return memcmp(x, y, sizeof x) == 0;
}

static uint64_t inv_odd(uint64_t a) {   /* multiplicative inverse of an odd number mod 2^64 */
    uint64_t x = a;
    for (int i = 0; i < 6; i++) x *= 2 - a * x;
    return x;
}

/* A generator whose next ct_rng_u64 is UINT64_MAX (the largest uniform, 1 - 2^-53). */
static ct_rng rng_at_max(void) {
    uint64_t y = UINT64_MAX * inv_odd(9);            /* result = rotl(s1 * 5, 7) * 9 */
    uint64_t s1x5 = (y >> 7) | (y << 57);
    ct_rng r = {{1, s1x5 * inv_odd(5), 2, 3}, 0, 0.0f};
    return r;
}

/* ---- streams -------------------------------------------------------------------------------- */
START_TEST(test_known_answers) {
    /* splitmix64 seeding + xoshiro256**, checked against an independent implementation:
     * checkpoints and reproducible runs depend on this stream never changing */
    ct_rng r;
    ct_rng_seed(&r, 0);
    ck_assert_uint_eq(r.s[0], 0xe220a8397b1dcdafULL);
    ck_assert_uint_eq(r.s[3], 0xf88bb8a8724c81ecULL);
    const uint64_t want0[4] = {0x99ec5f36cb75f2b4ULL, 0xbf6e1f784956452aULL, 0x1a5f849d4933e6e0ULL,
                               0x6aa594f1262d2d2cULL};
    for (int i = 0; i < 4; i++) ck_assert_uint_eq(ct_rng_u64(&r), want0[i]);
    ct_rng_seed(&r, 42);
    const uint64_t want42[4] = {0x15780b2e0c2ec716ULL, 0x6104d9866d113a7eULL,
                                0xae17533239e499a1ULL, 0xecb8ad4703b360a1ULL};
    for (int i = 0; i < 4; i++) ck_assert_uint_eq(ct_rng_u64(&r), want42[i]);
    /* uniform is the top 53 bits */
    ct_rng_seed(&r, 42);
    ck_assert(ct_rng_uniform(&r) == (double)(want42[0] >> 11) * 0x1.0p-53);
}
END_TEST

START_TEST(test_seeds) {
    ct_rng a, b, c, z;
    ct_rng_seed(&a, 1234);
    ct_rng_seed(&b, 1234);
    ct_rng_seed(&c, 1235);
    int same_ac = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = ct_rng_u64(&a), y = ct_rng_u64(&b), w = ct_rng_u64(&c);
        ck_assert_uint_eq(x, y);
        same_ac += x == w;
    }
    ck_assert_int_eq(same_ac, 0);
    /* seed 0 is a valid seed: a non-zero state, varied output, not seed 1's stream */
    ct_rng_seed(&z, 0);
    ck_assert((z.s[0] | z.s[1] | z.s[2] | z.s[3]) != 0);
    ct_rng_seed(&a, 1);
    uint64_t first = ct_rng_u64(&z), or_all = first, and_all = first;
    ck_assert_uint_ne(first, ct_rng_u64(&a));
    for (int i = 0; i < 100; i++) {
        uint64_t x = ct_rng_u64(&z);
        or_all |= x;
        and_all &= x;
    }
    ck_assert_uint_eq(or_all, UINT64_MAX);
    ck_assert_uint_eq(and_all, 0);
    /* reseeding resets a pending normal */
    ct_rng_seed(&a, 5);
    (void)ct_rng_normal(&a);
    ck_assert_uint_eq(a.has_spare, 1);
    ct_rng_seed(&a, 5);
    ck_assert_uint_eq(a.has_spare, 0);
    ct_rng_seed(&b, 5);
    ck_assert(same_state(&a, &b));
}
END_TEST

START_TEST(test_save_load) {
    ct_rng r, q;
    ct_rng_seed(&r, 99);
    for (int i = 0; i < 17; i++) (void)ct_rng_u64(&r);
    uint8_t st[CT_RNG_STATE_BYTES];
    ct_rng_save(&r, st);
    ck_assert_int_eq(ct_rng_load(&q, st, sizeof st), CT_OK);
    for (int i = 0; i < 200; i++) ck_assert_uint_eq(ct_rng_u64(&r), ct_rng_u64(&q));
    /* little-endian layout: s[0] first */
    ct_rng_save(&r, st);
    uint64_t s0 = 0;
    for (int i = 7; i >= 0; i--) s0 = s0 << 8 | st[i];
    ck_assert_uint_eq(s0, r.s[0]);

    /* with a cached normal pending: the next normal and everything after match */
    (void)ct_rng_normal(&r);
    ck_assert_uint_eq(r.has_spare, 1);
    ct_rng_save(&r, st);
    ck_assert_uint_eq(st[32], 1);
    ct_rng_seed(&q, 1);                                  /* overwrite with anything */
    ck_assert_int_eq(ct_rng_load(&q, st, sizeof st), CT_OK);
    ck_assert_uint_eq(q.has_spare, 1);
    for (int i = 0; i < 101; i++) ck_assert(ct_rng_normal(&r) == ct_rng_normal(&q));
    for (int i = 0; i < 10; i++) ck_assert(ct_rng_uniform(&r) == ct_rng_uniform(&q));
    /* save(load(x)) == x */
    uint8_t st2[CT_RNG_STATE_BYTES];
    ct_rng_save(&r, st);
    ct_rng_load(&q, st, sizeof st);
    ct_rng_save(&q, st2);
    ck_assert(memcmp(st, st2, sizeof st) == 0);

    /* rejected: wrong sizes, the all-zero state, a bad spare flag; q is left alone */
    ct_rng before = q;
    ck_assert_int_eq(ct_rng_load(&q, st, sizeof st - 1), CT_E_FORMAT);
    ck_assert_int_eq(ct_rng_load(&q, st, sizeof st + 1), CT_E_FORMAT);
    ck_assert_int_eq(ct_rng_load(&q, st, 0), CT_E_FORMAT);
    uint8_t zero[CT_RNG_STATE_BYTES] = {0};
    ck_assert_int_eq(ct_rng_load(&q, zero, sizeof zero), CT_E_FORMAT);
    uint8_t bad[CT_RNG_STATE_BYTES];
    memcpy(bad, st, sizeof bad);
    bad[32] = 2;
    ck_assert_int_eq(ct_rng_load(&q, bad, sizeof bad), CT_E_FORMAT);
    ck_assert(same_state(&q, &before));
    /* a state with only the spare set is still all-zero for xoshiro */
    zero[32] = 1;
    ck_assert_int_eq(ct_rng_load(&q, zero, sizeof zero), CT_E_FORMAT);
}
END_TEST

/* ---- distributions -------------------------------------------------------------------------- */
START_TEST(test_uniform_stats) {
    ct_rng r;
    ct_rng_seed(&r, 2024);
    double sum = 0, sum2 = 0;
    int bins[10] = {0};
    for (int i = 0; i < NDRAW; i++) {
        double u = ct_rng_uniform(&r);
        ck_assert(u >= 0.0 && u < 1.0);
        sum += u;
        sum2 += u * u;
        bins[(int)(u * 10)]++;
    }
    double mean = sum / NDRAW, var = sum2 / NDRAW - mean * mean;
    ck_assert_msg(fabs(mean - 0.5) < 0.01, "mean %g", mean);               /* sd 0.0009 */
    ck_assert_msg(fabs(var - 1.0 / 12) < 0.005, "variance %g", var);       /* sd 0.0003 */
    for (int b = 0; b < 10; b++)                                           /* sd 95 */
        ck_assert_msg(abs(bins[b] - NDRAW / 10) < 1000, "bin %d has %d", b, bins[b]);
    /* the largest output stays below 1 */
    ct_rng m = rng_at_max();
    ck_assert(ct_rng_uniform(&m) == 1.0 - 0x1.0p-53);
}
END_TEST

START_TEST(test_normal_stats) {
    ct_rng r;
    ct_rng_seed(&r, 7);
    double sum = 0, sum2 = 0, sum4 = 0;
    int within1 = 0;
    for (int i = 0; i < NDRAW; i++) {
        double x = ct_rng_normal(&r);
        ck_assert(isfinite(x));
        sum += x;
        sum2 += x * x;
        sum4 += x * x * x * x;
        within1 += fabs(x) < 1.0;
    }
    double mean = sum / NDRAW, var = sum2 / NDRAW - mean * mean;
    ck_assert_msg(fabs(mean) < 0.02, "mean %g", mean);                     /* sd 0.003 */
    ck_assert_msg(fabs(var - 1.0) < 0.03, "variance %g", var);             /* sd 0.0045 */
    ck_assert_msg(fabs(sum4 / NDRAW - 3.0) < 0.15, "4th moment %g", sum4 / NDRAW);  /* sd 0.03 */
    double frac = (double)within1 / NDRAW;
    ck_assert_msg(fabs(frac - 0.682689) < 0.01, "P(|x| < 1) = %g", frac);  /* sd 0.0015 */
    /* Box-Muller: a pair of normals costs two uniforms (the second is the cached spare) */
    ct_rng a, b;
    ct_rng_seed(&a, 11);
    ct_rng_seed(&b, 11);
    (void)ct_rng_normal(&a);
    (void)ct_rng_normal(&a);
    (void)ct_rng_u64(&b);
    (void)ct_rng_u64(&b);
    ck_assert(a.s[0] == b.s[0] && a.s[1] == b.s[1] && a.s[2] == b.s[2] && a.s[3] == b.s[3]);
    ck_assert_uint_eq(a.has_spare, 0);
}
END_TEST

START_TEST(test_below) {
    ct_rng r;
    ct_rng_seed(&r, 3);
    for (int i = 0; i < 1000; i++) ck_assert_uint_eq(ct_rng_below(&r, 1), 0);
    ck_assert_uint_eq(ct_rng_below(&r, 0), 0);
    int counts[7] = {0};
    for (int i = 0; i < 70000; i++) {
        uint64_t x = ct_rng_below(&r, 7);
        ck_assert_uint_lt(x, 7);
        counts[x]++;
    }
    for (int k = 0; k < 7; k++)                                            /* sd 93 */
        ck_assert_msg(abs(counts[k] - 10000) < 600, "value %d drawn %d times", k, counts[k]);
    /* n = 3 * 2^62: a plain x % n would put half the draws below 2^62; unbiased is a third */
    const uint64_t n = 3ULL << 62;
    int low = 0;
    for (int i = 0; i < 30000; i++) {
        uint64_t x = ct_rng_below(&r, n);
        ck_assert_uint_lt(x, n);
        low += x < (1ULL << 62);
    }
    ck_assert_msg(fabs(low / 30000.0 - 1.0 / 3) < 0.02, "fraction below 2^62: %g", low / 30000.0);
    for (int i = 0; i < 100; i++) ck_assert_uint_lt(ct_rng_below(&r, UINT64_MAX), UINT64_MAX);
    /* powers of two: all values reachable */
    int seen[8] = {0};
    for (int i = 0; i < 1000; i++) seen[ct_rng_below(&r, 8)] = 1;
    for (int k = 0; k < 8; k++) ck_assert(seen[k]);
}
END_TEST

START_TEST(test_fork) {
    ct_rng p;
    ct_rng_seed(&p, 77);
    (void)ct_rng_normal(&p);                     /* parent has a spare pending */
    ct_rng saved = p;
    ct_rng a = ct_rng_fork(&p, 5), b = ct_rng_fork(&p, 5), c = ct_rng_fork(&p, 6);
    ck_assert(same_state(&p, &saved));           /* the parent is not advanced */
    ck_assert_uint_eq(a.has_spare, 0);            /* a fresh stream */
    int ac = 0, ap = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = ct_rng_u64(&a), y = ct_rng_u64(&b), z = ct_rng_u64(&c);
        ck_assert_uint_eq(x, y);                  /* deterministic */
        ac += x == z;
        ap += x == ct_rng_u64(&p);
    }
    ck_assert_int_eq(ac, 0);                      /* differs by key */
    ck_assert_int_eq(ap, 0);                      /* and from the parent's own stream */
    /* the same key from a parent in another state gives another stream */
    ct_rng d = ct_rng_fork(&p, 5), e = ct_rng_fork(&saved, 5);
    ck_assert_uint_ne(ct_rng_u64(&d), ct_rng_u64(&e));
    /* keys 0 and 1 on seed 0 (all the small numbers) still differ */
    ct_rng z0;
    ct_rng_seed(&z0, 0);
    ct_rng f0 = ct_rng_fork(&z0, 0), f1 = ct_rng_fork(&z0, 1);
    ck_assert_uint_ne(ct_rng_u64(&f0), ct_rng_u64(&f1));
}
END_TEST

/* ---- random tensors --------------------------------------------------------------------------- */
static void moments(const ct_tensor *t, double *mean, double *var, float *lo, float *hi) {
    const float *d = ct_data_f32(t);
    int64_t n = ct_numel(t);
    double s = 0, s2 = 0;
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        s += d[i];
        s2 += (double)d[i] * d[i];
        *lo = fminf(*lo, d[i]);
        *hi = fmaxf(*hi, d[i]);
    }
    *mean = s / (double)n;
    *var = s2 / (double)n - *mean * *mean;
}

START_TEST(test_random_tensors) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_rng r, q;
    ct_rng_seed(&r, 8);
    ct_rng_seed(&q, 8);
    double mean, var;
    float lo, hi;

    ct_tensor *u = ct_rand(ctx, &r, CT_SHAPE(100, 1000));
    ck_assert_ptr_nonnull(u);
    ck_assert_int_eq(u->dtype, CT_F32);
    ck_assert_int_eq(u->ndim, 2);
    ck_assert_int_eq(u->shape[1], 1000);
    moments(u, &mean, &var, &lo, &hi);
    ck_assert(lo >= 0.0f && hi < 1.0f);
    ck_assert_msg(fabs(mean - 0.5) < 0.01 && fabs(var - 1.0 / 12) < 0.005, "%g %g", mean, var);
    /* element i is draw i, in C order */
    for (int i = 0; i < 1000; i++) ck_assert(ct_data_f32(u)[i] == (float)ct_rng_uniform(&q));

    ct_tensor *g = ct_randn(ctx, &r, CT_SHAPE(2, 5, 10000));
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(g->ndim, 3);
    moments(g, &mean, &var, &lo, &hi);
    ck_assert_msg(fabs(mean) < 0.02 && fabs(var - 1) < 0.03, "%g %g", mean, var);

    ct_tensor *w = ct_uniform(ctx, &r, -2.0f, 3.0f, CT_SHAPE(NDRAW));
    moments(w, &mean, &var, &lo, &hi);
    ck_assert(lo >= -2.0f && hi < 3.0f);
    ck_assert(lo < -1.99f && hi > 2.99f);
    ck_assert_msg(fabs(mean - 0.5) < 0.05 && fabs(var - 25.0 / 12) < 0.05, "%g %g", mean, var);
    /* lo == hi is a constant; 0-d and empty shapes */
    ct_tensor *k = ct_uniform(ctx, &r, 1.5f, 1.5f, CT_SHAPE(3));
    tu_assert_close(k, ((float[]){1.5f, 1.5f, 1.5f}), 0, 0);
    ct_tensor *s = ct_rand(ctx, &r, 0, NULL);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(s->ndim, 0);
    ct_rng before = r;
    ct_tensor *e = ct_randn(ctx, &r, CT_SHAPE(0, 4));
    ck_assert_ptr_nonnull(e);
    ck_assert(same_state(&r, &before));           /* nothing drawn */
    ck_assert_int_eq(errs.count, 0);

    /* the largest uniform must not round up to hi */
    ct_rng m = rng_at_max();
    ck_assert(ct_data_f32(ct_rand(ctx, &m, CT_SHAPE(1)))[0] < 1.0f);
    m = rng_at_max();
    ck_assert(ct_data_f32(ct_uniform(ctx, &m, 1.0f, 2.0f, CT_SHAPE(1)))[0] < 2.0f);
    m = rng_at_max();
    ck_assert(ct_data_f32(ct_uniform(ctx, &m, -1e-3f, 1e30f, CT_SHAPE(1)))[0] < 1e30f);

    /* errors */
    ck_assert_ptr_null(ct_uniform(ctx, &r, 3.0f, -2.0f, CT_SHAPE(2)));
    ck_assert_int_eq(errs.last.status, CT_E_ARG);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "uniform: lo 3 must not exceed hi -2"));
    ck_assert_ptr_null(ct_uniform(ctx, &r, NAN, 1.0f, CT_SHAPE(2)));
    ck_assert_int_eq(errs.last.status, CT_E_ARG);
    ck_assert_ptr_null(ct_uniform(ctx, &r, 0.0f, INFINITY, CT_SHAPE(2)));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "uniform: the bounds must be finite"));
    ck_assert_ptr_null(ct_rand(ctx, NULL, CT_SHAPE(2)));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "the generator is NULL"));
    ck_assert_ptr_null(ct_randn(ctx, &r, CT_SHAPE(-1)));
    ck_assert_int_eq(errs.last.status, CT_E_SHAPE);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_bernoulli) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_rng r;
    ct_rng_seed(&r, 12);
    ct_tensor *p1 = ct_from_f32(ctx, (float[]){0.0f, 0.25f, 0.9f, 1.0f}, CT_SHAPE(1, 4));
    ct_tensor *p = ct_expand(p1, 20000, 4);          /* stride 0: any layout works */
    ct_tensor *b = ct_bernoulli(&r, p);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(b->dtype, CT_F32);
    ck_assert_int_eq(b->ndim, 2);
    ck_assert_int_eq(b->shape[0], 20000);
    ck_assert_int_eq(b->shape[1], 4);
    int count[4] = {0};
    const float *d = ct_data_f32(b);
    for (int i = 0; i < 20000; i++)
        for (int j = 0; j < 4; j++) {
            ck_assert(d[i * 4 + j] == 0.0f || d[i * 4 + j] == 1.0f);
            count[j] += d[i * 4 + j] == 1.0f;
        }
    ck_assert_int_eq(count[0], 0);
    ck_assert_int_eq(count[3], 20000);
    ck_assert_msg(abs(count[1] - 5000) < 400, "p=0.25: %d of 20000", count[1]);    /* sd 61 */
    ck_assert_msg(abs(count[2] - 18000) < 400, "p=0.9: %d of 20000", count[2]);    /* sd 42 */
    /* same seed, same mask */
    ct_rng a1, a2;
    ct_rng_seed(&a1, 4);
    ct_rng_seed(&a2, 4);
    tu_assert_tensors_close(ct_bernoulli(&a1, p1), ct_bernoulli(&a2, p1), 0, 0);
    ck_assert_int_eq(errs.count, 0);

    /* p outside [0, 1] */
    ct_tensor *bad = ct_from_f32(ctx, (float[]){0.5f, 0.5f, 1.5f}, CT_SHAPE(3));
    ck_assert_ptr_null(ct_bernoulli(&r, bad));
    ck_assert_int_eq(errs.last.status, CT_E_ARG);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "bernoulli: probability 1.5 at element 2 is outside [0, 1]"));
    ck_assert_ptr_null(ct_bernoulli(&r, ct_from_f32(ctx, (float[]){-0.1f}, CT_SHAPE(1))));
    ck_assert_int_eq(errs.last.status, CT_E_ARG);
    ck_assert_ptr_null(ct_bernoulli(&r, ct_from_f32(ctx, (float[]){NAN}, CT_SHAPE(1))));
    ck_assert_int_eq(errs.last.status, CT_E_ARG);
    ck_assert_ptr_null(ct_bernoulli(&r, ct_arange(ctx, CT_I64, 2)));
    ck_assert_int_eq(errs.last.status, CT_E_DTYPE);
    ck_assert_ptr_null(ct_bernoulli(NULL, p1));
    ck_assert_int_eq(errs.last.status, CT_E_ARG);
    int before = errs.count;
    ck_assert_ptr_null(ct_bernoulli(&r, NULL));       /* a failed input: quiet */
    ck_assert_int_eq(errs.count, before);
    ct_ctx_free(ctx);
}
END_TEST

static void assert_i64_eq(const ct_tensor *t, const int64_t *want, int64_t n) {
    ck_assert_int_eq(ct_numel(t), n);
    for (int64_t i = 0; i < n; i++) ck_assert_int_eq(ct_data_i64(t)[i], want[i]);
}

START_TEST(test_multinomial) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_rng r;
    ct_rng_seed(&r, 31);
    /* with replacement: frequencies follow the (unnormalised) weights */
    ct_tensor *w = ct_from_f32(ctx, (float[]){1, 2, 3, 0, 4}, CT_SHAPE(5));
    ct_tensor *m = ct_multinomial(&r, w, NDRAW, true);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(m->dtype, CT_I64);
    ck_assert_int_eq(m->ndim, 1);
    ck_assert_int_eq(m->shape[0], NDRAW);
    int count[5] = {0};
    for (int i = 0; i < NDRAW; i++) {
        int64_t x = ct_data_i64(m)[i];
        ck_assert(x >= 0 && x < 5);
        count[x]++;
    }
    ck_assert_int_eq(count[3], 0);
    const double want[5] = {0.1, 0.2, 0.3, 0, 0.4};
    for (int k = 0; k < 5; k++)                                            /* sd <= 0.0016 */
        ck_assert_msg(fabs(count[k] / (double)NDRAW - want[k]) < 0.01, "category %d: %d", k, count[k]);

    /* without replacement: distinct indices; the first pick still follows the weights */
    ct_tensor *w6 = ct_from_f32(ctx, (float[]){5, 1, 1, 1, 1, 1}, CT_SHAPE(6));
    int first0 = 0;
    for (int t = 0; t < 2000; t++) {
        ct_scope_begin(ctx);
        ct_tensor *o = ct_multinomial(&r, w6, t % 2 ? 6 : 3, false);
        ck_assert_ptr_nonnull(o);
        int64_t n = ct_numel(o), seen = 0;
        for (int64_t i = 0; i < n; i++) {
            int64_t x = ct_data_i64(o)[i];
            ck_assert(x >= 0 && x < 6);
            ck_assert_msg(!(seen >> x & 1), "index %lld drawn twice", (long long)x);
            seen |= 1LL << x;
        }
        first0 += ct_data_i64(o)[0] == 0;
        ct_scope_end(ctx);
    }
    ck_assert_msg(fabs(first0 / 2000.0 - 0.5) < 0.05, "first pick 0: %d of 2000", first0);  /* sd 0.011 */

    /* [N, C] -> [N, n], row by row */
    ct_tensor *rows = ct_from_f32(ctx, (float[]){1, 0, 0, 0,
                                                 0, 0, 2, 0,
                                                 0, 0, 0, 0.5f}, CT_SHAPE(3, 4));
    ct_tensor *o = ct_multinomial(&r, rows, 5, true);
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(o->ndim, 2);
    ck_assert_int_eq(o->shape[0], 3);
    ck_assert_int_eq(o->shape[1], 5);
    const int64_t only[3] = {0, 2, 3};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 5; j++) ck_assert_int_eq(ct_data_i64(o)[i * 5 + j], only[i]);
    /* a transposed (non-contiguous) input reads the right rows */
    ct_tensor *cols = ct_transpose(ct_from_f32(ctx, (float[]){1, 0, 0, 0, 0, 1}, CT_SHAPE(3, 2)), 0, 1);
    ck_assert(!ct_is_contiguous(cols));           /* rows [1, 0, 0] and [0, 0, 1] */
    ct_tensor *oc = ct_multinomial(&r, cols, 2, true);
    ck_assert_ptr_nonnull(oc);
    assert_i64_eq(oc, (int64_t[]){0, 0, 2, 2}, 4);
    /* zero draws */
    ct_tensor *z = ct_multinomial(&r, w, 0, false);
    ck_assert_ptr_nonnull(z);
    ck_assert_int_eq(ct_numel(z), 0);
    ck_assert_int_eq(errs.count, 0);

    /* errors */
    ck_assert_ptr_null(ct_multinomial(&r, w6, 7, false));
    ck_assert_int_eq(errs.last.status, CT_E_ARG);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "multinomial: 7 draws without replacement from 6 categories"));
    ck_assert_ptr_nonnull(ct_multinomial(&r, w6, 7, true));          /* fine with replacement */
    ct_tensor *zero_row = ct_from_f32(ctx, (float[]){1, 1, 0, 0}, CT_SHAPE(2, 2));
    ck_assert_ptr_null(ct_multinomial(&r, zero_row, 1, true));
    ck_assert_int_eq(errs.last.status, CT_E_ARG);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "multinomial: row 1 has no positive weight"));
    ck_assert_ptr_null(ct_multinomial(&r, ct_from_f32(ctx, (float[]){1, 0, 0}, CT_SHAPE(3)), 2, false));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "row 0 has only 1 positive weights, fewer than the 2 draws"));
    /* regression: 1 + 3*2^-54 rounds the double total up; after both positive weights were
     * drawn a positive total remained and the third draw picked index -1 (and wrote p[-1]) */
    for (int t = 0; t < 20; t++) {
        ct_tensor *tiny = ct_from_f32(ctx, (float[]){1.0f, 0x3p-54f, 0.0f}, CT_SHAPE(3));
        ck_assert_ptr_null(ct_multinomial(&r, tiny, 3, false));
        ck_assert_ptr_nonnull(strstr(errs.last.msg, "only 2 positive weights"));
        ct_tensor *o2 = ct_multinomial(&r, tiny, 2, false);
        ck_assert_ptr_nonnull(o2);
        ck_assert_int_eq(ct_data_i64(o2)[0] + ct_data_i64(o2)[1], 1);   /* {0, 1} */
    }
    ck_assert_ptr_null(ct_multinomial(&r, ct_from_f32(ctx, (float[]){1, -1}, CT_SHAPE(2)), 1, true));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "multinomial: row 0 has an invalid weight -1 at 1"));
    ck_assert_ptr_null(ct_multinomial(&r, ct_from_f32(ctx, (float[]){1, NAN}, CT_SHAPE(2)), 1, true));
    ck_assert_int_eq(errs.last.status, CT_E_ARG);
    ck_assert_ptr_null(ct_multinomial(&r, ct_from_f32(ctx, (float[]){INFINITY, 1}, CT_SHAPE(2)), 1, true));
    ck_assert_int_eq(errs.last.status, CT_E_ARG);
    ck_assert_ptr_null(ct_multinomial(&r, w, -1, true));
    ck_assert_int_eq(errs.last.status, CT_E_ARG);
    ck_assert_ptr_null(ct_multinomial(&r, ct_zeros(ctx, CT_SHAPE(2, 2, 2)), 1, true));
    ck_assert_int_eq(errs.last.status, CT_E_SHAPE);
    ck_assert_ptr_null(ct_multinomial(&r, ct_arange(ctx, CT_I64, 3), 1, true));
    ck_assert_int_eq(errs.last.status, CT_E_SHAPE);
    ck_assert_ptr_null(ct_multinomial(NULL, w, 1, true));
    ck_assert_int_eq(errs.last.status, CT_E_ARG);

    /* a leaf that requires grad: sampling records no graph */
    ct_set_requires_grad(w, true);
    ct_tensor *og = ct_multinomial(&r, w, 3, false);
    ck_assert_ptr_nonnull(og);
    ck_assert_ptr_null(og->grad_fn);
    ck_assert(ct_is_grad_enabled(ctx));
    ct_ctx_free(ctx);
}
END_TEST

Suite *rng_suite(void) {
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_known_answers);
    tcase_add_test(tc, test_seeds);
    tcase_add_test(tc, test_save_load);
    tcase_add_test(tc, test_uniform_stats);
    tcase_add_test(tc, test_normal_stats);
    tcase_add_test(tc, test_below);
    tcase_add_test(tc, test_fork);
    tcase_add_test(tc, test_random_tensors);
    tcase_add_test(tc, test_bernoulli);
    tcase_add_test(tc, test_multinomial);
    suite_add_tcase(s, tc);
    return s;
}
