/* tests/models/test_sampler.c — generation (models/sampler.c): the choice rules on float
 * buffers (greedy, temperature, top-k, top-p and their edges), the stepwise sampler against
 * the training forward pass, primers, determinism, batches, piano rolls, no allocation per
 * step, and errors; whole-sequence evaluation (models/eval.h) against a direct computation; MIDI
 * primers in and samples out (cc_encode_midi, cc_decode_midi). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/layers.h"
#include "model_helpers.h"
#include "audio/performance.h"
#include "audio/pianoroll.h"
#include "models/composer.h"
#include "models/eval.h"
#include "models/sampler.h"
#include "testutil.h"

static void assert_has(const char *msg, const char *want) {
    ck_assert_msg(strstr(msg, want) != NULL, "message \"%s\" lacks \"%s\"", msg, want);
}

static cc_sample_opts opts(float t, int k, float p) { return (cc_sample_opts){t, k, p}; }

/* Frequencies of n draws from logits. */
static void histogram(const float *z, int64_t V, cc_sample_opts o, uint64_t seed, int n, double *freq) {
    ct_rng rng;
    ct_rng_seed(&rng, seed);
    float wp[64];
    int32_t wi[64];
    int64_t counts[64] = {0};
    ck_assert_int_le(V, 64);
    for (int d = 0; d < n; d++) {
        int64_t t = cc_pick_token(z, V, &o, &rng, wp, wi);
        ck_assert_int_ge(t, 0);
        ck_assert_int_lt(t, V);
        counts[t]++;
    }
    for (int64_t i = 0; i < V; i++) freq[i] = (double)counts[i] / n;
}

/* ===== the choice rules ======================================================================= */
START_TEST(test_pick_greedy_and_ties) {
    const float z[] = {1.0f, 3.0f, 3.0f, 0.0f, NAN};
    cc_sample_opts g = opts(0, 0, 1);
    ck_assert_int_eq(cc_pick_token(z, 5, &g, NULL, NULL, NULL), 1);     /* no rng needed */
    cc_sample_opts k1 = opts(1.0f, 1, 1);
    ck_assert_int_eq(cc_pick_token(z, 5, &k1, NULL, NULL, NULL), 1);
    /* top-k = 2 with a tie at the top keeps exactly the two tied tokens */
    double f[5];
    histogram(z, 5, opts(1.0f, 2, 1), 1, 2000, f);
    ck_assert(f[0] == 0 && f[3] == 0 && f[4] == 0);
    ck_assert(fabs(f[1] - 0.5) < 0.05 && fabs(f[2] - 0.5) < 0.05);
    /* NaN counts as -inf; all NaN gives 0 */
    const float nan4[] = {NAN, NAN, NAN, NAN};
    ct_rng rng;
    ct_rng_seed(&rng, 3);
    cc_sample_opts d = cc_sample_defaults();
    ck_assert_int_eq(cc_pick_token(nan4, 4, &d, &rng, NULL, NULL), 0);
    ck_assert_int_eq(cc_pick_token(nan4, 4, &g, NULL, NULL, NULL), 0);
    const float inf[] = {-INFINITY, -INFINITY, 2.0f};
    for (int i = 0; i < 50; i++) ck_assert_int_eq(cc_pick_token(inf, 3, &d, &rng, NULL, NULL), 2);
}
END_TEST

START_TEST(test_pick_temperature) {
    const float p[] = {0.6f, 0.3f, 0.1f};
    float z[3];
    for (int i = 0; i < 3; i++) z[i] = logf(p[i]) + 2.0f;    /* an offset changes nothing */
    const float temps[] = {1.0f, 0.5f, 2.0f, 10.0f, 0.05f};
    for (int ti = 0; ti < 5; ti++) {
        float T = temps[ti];
        double f[3], want[3], sum = 0;
        for (int i = 0; i < 3; i++) sum += want[i] = pow(p[i], 1.0 / T);
        for (int i = 0; i < 3; i++) want[i] /= sum;
        histogram(z, 3, opts(T, 0, 1), 10 + ti, 6000, f);
        for (int i = 0; i < 3; i++)
            ck_assert_msg(fabs(f[i] - want[i]) < 0.025, "T %g token %d: %.3f, want %.3f", (double)T, i, f[i], want[i]);
    }
    /* lower temperature: more mass on the top token */
    double hot[3], cold[3];
    histogram(z, 3, opts(3.0f, 0, 1), 5, 4000, hot);
    histogram(z, 3, opts(0.3f, 0, 1), 5, 4000, cold);
    ck_assert(cold[0] > 0.9 && hot[0] < 0.5);
}
END_TEST

START_TEST(test_pick_top_k) {
    const float z[] = {0.1f, 2.0f, -1.0f, 1.5f, 0.7f, 3.0f};
    double f[6];
    histogram(z, 6, opts(1.0f, 3, 1), 7, 6000, f);
    double e[3] = {expf(3.0f), expf(2.0f), expf(1.5f)}, s = e[0] + e[1] + e[2];
    ck_assert(f[0] == 0 && f[2] == 0 && f[4] == 0);
    ck_assert(fabs(f[5] - e[0] / s) < 0.025 && fabs(f[1] - e[1] / s) < 0.025 && fabs(f[3] - e[2] / s) < 0.025);
    /* k >= V is no limit: the same draws as without top-k */
    ct_rng a, b;
    ct_rng_seed(&a, 42);
    ct_rng_seed(&b, 42);
    cc_sample_opts none = cc_sample_defaults(), kv = opts(1.0f, 6, 1), kbig = opts(1.0f, 60, 1);
    for (int i = 0; i < 300; i++) {
        int64_t t = cc_pick_token(z, 6, &none, &a, NULL, NULL);
        ct_rng c = b;
        ck_assert_int_eq(cc_pick_token(z, 6, &kv, &b, NULL, NULL), t);
        ck_assert_int_eq(cc_pick_token(z, 6, &kbig, &c, NULL, NULL), t);
    }
}
END_TEST

START_TEST(test_pick_top_p_edges) {
    const float p[] = {0.15f, 0.5f, 0.05f, 0.3f};
    float z[4];
    for (int i = 0; i < 4; i++) z[i] = logf(p[i]);
    double f[4];
    /* 0.45 is reached by the top token alone (0.5 itself sits on the rounding edge) */
    histogram(z, 4, opts(1.0f, 0, 0.45f), 1, 500, f);
    ck_assert(f[1] == 1.0);
    /* 0.75 needs the top two: 0.5 + 0.3, renormalised 5:3 */
    histogram(z, 4, opts(1.0f, 0, 0.75f), 2, 6000, f);
    ck_assert(f[0] == 0 && f[2] == 0);
    ck_assert_msg(fabs(f[1] - 0.625) < 0.025, "%.3f", f[1]);
    /* 0.9 needs three */
    histogram(z, 4, opts(1.0f, 0, 0.9f), 3, 6000, f);
    ck_assert(f[2] == 0 && f[0] > 0.1);
    /* 0 and tiny values keep only the most likely token */
    histogram(z, 4, opts(1.0f, 0, 0.0f), 4, 300, f);
    ck_assert(f[1] == 1.0);
    histogram(z, 4, opts(1.0f, 0, 1e-6f), 4, 300, f);
    ck_assert(f[1] == 1.0);
    /* 1 is no limit: the same draws as plain sampling */
    ct_rng a, b;
    ct_rng_seed(&a, 9);
    ct_rng_seed(&b, 9);
    cc_sample_opts none = cc_sample_defaults(), p1 = opts(1.0f, 0, 1.0f);
    for (int i = 0; i < 300; i++)
        ck_assert_int_eq(cc_pick_token(z, 4, &none, &a, NULL, NULL), cc_pick_token(z, 4, &p1, &b, NULL, NULL));
    /* ties: equal logits, top-p 0.5 of 4 keeps the two lowest tokens */
    const float eq[] = {1.0f, 1.0f, 1.0f, 1.0f};
    histogram(eq, 4, opts(1.0f, 0, 0.5f), 5, 4000, f);
    ck_assert(f[2] == 0 && f[3] == 0);
    ck_assert(fabs(f[0] - 0.5) < 0.04);
    /* top-k then top-p of what is left: k 3 keeps 0.5, 0.3, 0.15 (sum 0.95); p 0.8 of that
     * is 0.76: the top two */
    histogram(z, 4, opts(1.0f, 3, 0.8f), 6, 3000, f);
    ck_assert(f[0] == 0 && f[2] == 0);
    /* a large vocabulary: the nucleus is exactly the smallest sufficient set */
    enum { V = 60 };
    float big[V];
    double pb[V], tot = 0;
    for (int i = 0; i < V; i++) {
        big[i] = (float)((i * 37) % V) * 0.1f;
        tot += pb[i] = exp(big[i]);
    }
    double top_p = 0.6, best = 0;
    int order[V];
    for (int i = 0; i < V; i++) order[i] = i;
    for (int i = 0; i < V; i++)      /* selection sort by probability */
        for (int j = i + 1; j < V; j++)
            if (pb[order[j]] > pb[order[i]]) { int t = order[i]; order[i] = order[j]; order[j] = t; }
    bool in[V] = {false};
    for (int i = 0; i < V && best < top_p * tot; i++) {
        best += pb[order[i]];
        in[order[i]] = true;
    }
    double fb[V];
    histogram(big, V, opts(1.0f, 0, (float)top_p), 8, 20000, fb);
    for (int i = 0; i < V; i++)
        if (!in[i]) ck_assert_msg(fb[i] == 0, "token %d outside the nucleus drawn", i);
        else ck_assert_msg(fb[i] > 0, "token %d of the nucleus never drawn", i);
}
END_TEST

START_TEST(test_pick_errors) {
    const float z[] = {0.0f, 1.0f};
    ct_rng rng;
    ct_rng_seed(&rng, 1);
    cc_sample_opts d = cc_sample_defaults();
    ck_assert_int_eq(cc_pick_token(z, 0, &d, &rng, NULL, NULL), -1);
    ck_assert_int_eq(cc_pick_token(NULL, 2, &d, &rng, NULL, NULL), -1);
    ck_assert_int_eq(cc_pick_token(z, 2, NULL, &rng, NULL, NULL), -1);
    ck_assert_int_eq(cc_pick_token(z, 2, &d, NULL, NULL, NULL), -1);   /* sampling needs an rng */
    cc_sample_opts bad[] = {opts(-1, 0, 1), opts(NAN, 0, 1), opts(INFINITY, 0, 1), opts(1, -2, 1),
                            opts(1, 0, 1.5f), opts(1, 0, -0.1f), opts(1, 0, NAN)};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_int_eq(cc_pick_token(z, 2, &bad[i], &rng, NULL, NULL), -1);
    float wp[2];
    ck_assert_int_eq(cc_pick_token(z, 2, &d, &rng, wp, NULL), -1);      /* both buffers or none */
}
END_TEST

/* ===== the stepwise sampler ===================================================================== */
static ct_module *random_model(ct_ctx *ctx, bool roll, cc_cell cell, uint64_t seed) {
    ct_rng rng;
    ct_rng_seed(&rng, seed);
    cc_config c = cc_config_default(roll ? CC_ENC_PIANOROLL : CC_ENC_MELODY);
    c.cell = cell;
    c.hidden = 24;
    c.layers = 2;
    if (!roll) c.embed = 12;
    ct_module *m = cc_model_new(ctx, &rng, &c);
    ck_assert_ptr_nonnull(m);
    ct_module_train(m, false);
    return m;
}

START_TEST(test_sampler_logits_match_forward) {
    ct_ctx *ctx = tu_ctx(NULL);
    const cc_cell cell = (cc_cell)(_i % 3);
    ct_module *m;
    int64_t V = 38;
    if (_i < 3) {
        m = random_model(ctx, false, cell, 31 + (uint64_t)_i);
    } else {   /* 130 x 300: the batch-1 projection runs in blocks of rows */
        ct_rng rng0;
        ct_rng_seed(&rng0, 5);
        cc_config c = cc_config_default(CC_ENC_MELODY);
        c.min_pitch = 0;
        c.max_pitch = 128;
        c.vocab = V = 130;
        c.hidden = 300;
        c.layers = 1;
        c.embed = 16;
        m = cc_model_new(ctx, &rng0, &c);
        ct_module_train(m, false);
    }
    enum { N = 7, B = 3 };
    int64_t primer[B][N];
    for (int b = 0; b < B; b++)
        for (int t = 0; t < N; t++) primer[b][t] = (t * 5 + b * 11 + 3) % 38;
    /* B = 1 (GEMV): each row alone */
    ct_rng rng;
    ct_rng_seed(&rng, 1);
    int64_t tm[N * B];
    for (int t = 0; t < N; t++)
        for (int b = 0; b < B; b++) tm[t * B + b] = primer[b][t];
    ct_tensor *logits = cc_forward(m, ct_from_i64(ctx, tm, CT_SHAPE(N, B)), NULL, NULL);
    const float *want = ct_data_f32(logits);      /* [N, B, V], contiguous */
    for (int b = 0; b < B; b++) {
        cc_sampler *s = cc_sampler_new(m, 1, NULL, &rng);
        ck_assert_ptr_nonnull(s);
        ck_assert_int_eq(cc_sampler_feed_tokens(s, primer[b], N, false), CT_OK);
        const float *z;
        ck_assert_int_eq(cc_sampler_logits(s, &z), CT_OK);
        for (int v = 0; v < V; v++)
            ck_assert_msg(fabsf(z[v] - want[((N - 1) * B + b) * V + v]) < 1e-5f, "row %d token %d", b, v);
        cc_sampler_free(s);
    }
    /* B = 3 (GEMM), per-row primers fed in two pieces */
    cc_sampler *s = cc_sampler_new(m, B, NULL, &rng);
    int64_t first[B * 3], rest[B * (N - 3)];
    for (int b = 0; b < B; b++) {
        memcpy(first + b * 3, primer[b], 3 * sizeof(int64_t));
        memcpy(rest + b * (N - 3), primer[b] + 3, (N - 3) * sizeof(int64_t));
    }
    ck_assert_int_eq(cc_sampler_feed_tokens(s, first, 3, true), CT_OK);
    ck_assert_int_eq(cc_sampler_feed_tokens(s, rest, N - 3, true), CT_OK);
    const float *z, *z2;
    ck_assert_int_eq(cc_sampler_logits(s, &z), CT_OK);
    for (int b = 0; b < B; b++)
        for (int v = 0; v < V; v++)
            ck_assert(fabsf(z[b * V + v] - want[((N - 1) * B + b) * V + v]) < 1e-5f);
    ck_assert_int_eq(cc_sampler_logits(s, &z2), CT_OK);       /* cached: the same buffer */
    ck_assert_ptr_eq(z, z2);
    cc_sampler_free(s);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_sampler_learned_pattern) {
    ct_ctx *ctx = tu_ctx(NULL);
    float first, last;
    ct_module *m = mh_train_pattern(ctx, CC_LSTM, 120, &first, &last);
    ct_rng rng;
    ct_rng_seed(&rng, 5);
    /* greedy follows the pattern from any primer */
    int64_t out[12];
    cc_sample_opts g = opts(0, 0, 1);
    for (int64_t p0 = 0; p0 < 4; p0++) {
        ck_assert_int_eq(cc_sample_tokens(m, &g, &rng, &p0, 1, 1, 12, out), CT_OK);
        for (int t = 0; t < 12; t++) ck_assert_int_eq(out[t], (p0 + 1 + t) % 4);
    }
    const int64_t primer[] = {1, 2, 3, 0, 1};
    ck_assert_int_eq(cc_sample_tokens(m, &g, &rng, primer, 5, 1, 8, out), CT_OK);
    for (int t = 0; t < 8; t++) ck_assert_int_eq(out[t], (2 + t) % 4);
    /* greedy is deterministic whatever the seed; top-k 1 is greedy */
    int64_t a[3 * 10], b[3 * 10];
    ct_rng r1, r2;
    ct_rng_seed(&r1, 1);
    ct_rng_seed(&r2, 2);
    ck_assert_int_eq(cc_sample_tokens(m, &g, &r1, primer, 2, 3, 10, a), CT_OK);
    cc_sample_opts k1 = opts(1.5f, 1, 1);
    ck_assert_int_eq(cc_sample_tokens(m, &k1, &r2, primer, 2, 3, 10, b), CT_OK);
    ck_assert_int_eq(memcmp(a, b, sizeof a), 0);
    /* at temperature 1 the learned distribution is sharp too */
    cc_sample_opts t1 = cc_sample_defaults();
    ck_assert_int_eq(cc_sample_tokens(m, &t1, &r1, primer, 1, 3, 10, b), CT_OK);
    int follow = 0;
    for (int r = 0; r < 3; r++)
        for (int t = 0; t < 10; t++) follow += b[r * 10 + t] == (t == 0 ? 2 : (b[r * 10 + t - 1] + 1) % 4);
    ck_assert_int_ge(follow, 25);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_sampler_deterministic_and_rows) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_module *m = random_model(ctx, false, CC_GRU, 3);
    cc_sample_opts o = opts(1.0f, 10, 0.95f);
    const int64_t primer[] = {5, 9, 2};
    int64_t a[4 * 30], b[4 * 30], c[2 * 30], one[30];
    ct_rng r;
    ct_rng_seed(&r, 77);
    ck_assert_int_eq(cc_sample_tokens(m, &o, &r, primer, 3, 4, 30, a), CT_OK);
    ct_rng_seed(&r, 77);
    ck_assert_int_eq(cc_sample_tokens(m, &o, &r, primer, 3, 4, 30, b), CT_OK);
    ck_assert_int_eq(memcmp(a, b, sizeof a), 0);                       /* same seed, same sample */
    /* the caller's generator moved on: the next call differs */
    ck_assert_int_eq(cc_sample_tokens(m, &o, &r, primer, 3, 4, 30, b), CT_OK);
    ck_assert_int_ne(memcmp(a, b, sizeof a), 0);
    /* rows differ from each other, and row b does not depend on the batch size */
    ck_assert_int_ne(memcmp(a, a + 30, 30 * sizeof(int64_t)), 0);
    ct_rng_seed(&r, 77);
    ck_assert_int_eq(cc_sample_tokens(m, &o, &r, primer, 3, 2, 30, c), CT_OK);
    ck_assert_int_eq(memcmp(a, c, sizeof c), 0);
    ct_rng_seed(&r, 77);
    ck_assert_int_eq(cc_sample_tokens(m, &o, &r, primer, 3, 1, 30, one), CT_OK);
    ck_assert_int_eq(memcmp(a, one, sizeof one), 0);
    /* another seed, another sample */
    ct_rng_seed(&r, 78);
    ck_assert_int_eq(cc_sample_tokens(m, &o, &r, primer, 3, 1, 30, one), CT_OK);
    ck_assert_int_ne(memcmp(a, one, sizeof one), 0);
    /* the stepwise API gives the same as the one call */
    ct_rng_seed(&r, 77);
    cc_sampler *s = cc_sampler_new(m, 4, &o, &r);
    ck_assert_int_eq(cc_sampler_batch(s), 4);
    ck_assert_int_eq(cc_sampler_feed_tokens(s, primer, 3, false), CT_OK);
    for (int t = 0; t < 30; t++) {
        int64_t row[4];
        ck_assert_int_eq(cc_sampler_next_tokens(s, row), CT_OK);
        for (int k = 0; k < 4; k++) ck_assert_int_eq(row[k], a[k * 30 + t]);
    }
    /* reset: the state starts over (the random streams go on) */
    cc_sampler_reset(s);
    cc_sample_opts g = opts(0, 0, 1);
    ck_assert_int_eq(cc_sampler_set_opts(s, &g), CT_OK);
    int64_t g1[4], g2[4];
    ck_assert_int_eq(cc_sampler_feed_tokens(s, primer, 3, false), CT_OK);
    ck_assert_int_eq(cc_sampler_next_tokens(s, g1), CT_OK);
    cc_sampler_reset(s);
    ck_assert_int_eq(cc_sampler_feed_tokens(s, primer, 3, false), CT_OK);
    ck_assert_int_eq(cc_sampler_next_tokens(s, g2), CT_OK);
    ck_assert_int_eq(memcmp(g1, g2, sizeof g1), 0);
    cc_sampler_free(s);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_sampler_primers_and_start) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_module *m = random_model(ctx, false, CC_LSTM, 4);
    cc_sample_opts g = opts(0, 0, 1);
    ct_rng r;
    ct_rng_seed(&r, 1);
    /* no primer = the start token as primer */
    const cc_config *c = cc_model_config(m);
    int64_t st = cc_start_token(c);
    ck_assert_int_eq(st, 0);
    int64_t a[20], b[20];
    ck_assert_int_eq(cc_sample_tokens(m, &g, &r, NULL, 0, 1, 20, a), CT_OK);
    ck_assert_int_eq(cc_sample_tokens(m, &g, &r, &st, 1, 1, 20, b), CT_OK);
    ck_assert_int_eq(memcmp(a, b, sizeof a), 0);
    /* a primer changes what follows; its last token is the first input */
    const int64_t p1[] = {10, 20, 30}, p2[] = {20, 30}, p3[] = {11, 20, 31};
    int64_t s1[20], s2[20], s3[20];
    ck_assert_int_eq(cc_sample_tokens(m, &g, &r, p1, 3, 1, 20, s1), CT_OK);
    ck_assert_int_eq(cc_sample_tokens(m, &g, &r, p2, 2, 1, 20, s2), CT_OK);
    ck_assert_int_eq(cc_sample_tokens(m, &g, &r, p3, 3, 1, 20, s3), CT_OK);
    ck_assert(memcmp(s1, a, sizeof a) != 0 || memcmp(s3, a, sizeof a) != 0);
    ck_assert(memcmp(s1, s2, sizeof s1) != 0 || memcmp(s1, s3, sizeof s1) != 0);
    /* feeding the sample back continues it exactly (live playback) */
    cc_sampler *s = cc_sampler_new(m, 1, &g, &r);
    int64_t cont[23];
    memcpy(cont, p1, sizeof p1);
    memcpy(cont + 3, s1, 10 * sizeof(int64_t));
    ck_assert_int_eq(cc_sampler_feed_tokens(s, cont, 13, false), CT_OK);
    for (int t = 10; t < 20; t++) {
        int64_t x;
        ck_assert_int_eq(cc_sampler_next_tokens(s, &x), CT_OK);
        ck_assert_int_eq(x, s1[t]);
    }
    cc_sampler_free(s);
    /* start tokens of the encodings */
    cc_config pc = cc_config_default(CC_ENC_PERFORMANCE);
    ck_assert_int_eq(cc_start_token(&pc), 356 + 24);        /* velocity 100 -> bin 25 */
    pc.num_velocity_bins = 0;
    pc.vocab = 0;
    ck_assert_int_eq(cc_start_token(&pc), 256);             /* a 10 ms time shift */
    cc_config au = cc_config_default(CC_ENC_AUDIO);
    ck_assert_int_eq(cc_start_token(&au), 128);
    cc_config ro = cc_config_default(CC_ENC_PIANOROLL);
    ck_assert_int_eq(cc_start_token(&ro), -1);
    ck_assert_int_eq(cc_start_token(NULL), -1);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_sampler_roll) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_module *m = random_model(ctx, true, CC_LSTM, 6);
    /* greedy: the keys with logit > 0, the logits matching the forward pass */
    uint8_t primer[3 * 88] = {0};
    primer[39] = primer[43] = primer[46] = primer[88 + 41] = primer[2 * 88 + 60] = 1;
    ct_rng r;
    ct_rng_seed(&r, 1);
    cc_sample_opts g = opts(0, 0, 1);
    cc_sampler *s = cc_sampler_new(m, 2, &g, &r);
    ck_assert_int_eq(cc_sampler_feed_frames(s, primer, 3, false), CT_OK);
    const float *z;
    ck_assert_int_eq(cc_sampler_logits(s, &z), CT_OK);
    float fx[3 * 88];
    for (int i = 0; i < 3 * 88; i++) fx[i] = primer[i];
    ct_tensor *want = cc_forward(m, ct_from_f32(ctx, fx, CT_SHAPE(3, 1, 88)), NULL, NULL);
    for (int k = 0; k < 88; k++) {
        ck_assert(fabsf(z[k] - ct_data_f32(want)[2 * 88 + k]) < 1e-5f);
        ck_assert(fabsf(z[88 + k] - z[k]) < 1e-6f);
    }
    uint8_t out[2 * 88];
    ck_assert_int_eq(cc_sampler_next_frames(s, out), CT_OK);
    for (int k = 0; k < 88; k++) ck_assert_int_eq(out[k], ct_data_f32(want)[2 * 88 + k] > 0);
    cc_sampler_free(s);
    /* sampling: deterministic by seed, rows independent of the batch size */
    cc_sample_opts o = cc_sample_defaults();
    uint8_t a[3 * 16 * 88], b[3 * 16 * 88], one[16 * 88];
    ct_rng_seed(&r, 9);
    ck_assert_int_eq(cc_sample_frames(m, &o, &r, primer, 3, 3, 16, a), CT_OK);
    ct_rng_seed(&r, 9);
    ck_assert_int_eq(cc_sample_frames(m, &o, &r, primer, 3, 3, 16, b), CT_OK);
    ck_assert_int_eq(memcmp(a, b, sizeof a), 0);
    ct_rng_seed(&r, 9);
    ck_assert_int_eq(cc_sample_frames(m, &o, &r, primer, 3, 1, 16, one), CT_OK);
    ck_assert_int_eq(memcmp(a, one, sizeof one), 0);
    int on = 0;
    for (size_t i = 0; i < sizeof a; i++) {
        ck_assert_int_le(a[i], 1);
        on += a[i];
    }
    ck_assert(on > 0 && on < (int)sizeof a);      /* an untrained model: about half the keys */
    /* the piano roll's Bernoulli rates: with the output bias at known frequencies and the
     * output weights zeroed, keys turn on at those rates */
    double freq[88];
    for (int k = 0; k < 88; k++) freq[k] = k < 44 ? 0.1 : 0.7;
    ck_assert_int_eq(cc_model_init_output_bias(m, freq, 88), CT_OK);
    ck_assert_int_eq(ct_inplace_fill(ct_module_param(m, "out.weight"), 0.0f), CT_OK);
    enum { STEPS = 200 };
    uint8_t *many = malloc(4 * STEPS * 88);
    ck_assert_int_eq(cc_sample_frames(m, &o, &r, NULL, 0, 4, STEPS, many), CT_OK);
    double lo = 0, hi = 0;
    for (int i = 0; i < 4 * STEPS; i++)
        for (int k = 0; k < 88; k++) *(k < 44 ? &lo : &hi) += many[i * 88 + k];
    lo /= 4.0 * STEPS * 44;
    hi /= 4.0 * STEPS * 44;
    ck_assert_msg(fabs(lo - 0.1) < 0.01 && fabs(hi - 0.7) < 0.01, "rates %.3f %.3f", lo, hi);
    /* temperature sharpens: at T 0.5 the rates move away from 1/2 */
    cc_sample_opts cold = opts(0.5f, 0, 1);
    ck_assert_int_eq(cc_sample_frames(m, &cold, &r, NULL, 0, 4, STEPS, many), CT_OK);
    lo = 0;
    for (int i = 0; i < 4 * STEPS; i++)
        for (int k = 0; k < 44; k++) lo += many[i * 88 + k];
    lo /= 4.0 * STEPS * 44;
    double want_lo = 1.0 / (1.0 + pow(9.0, 2.0));      /* sigmoid(2 logit(0.1)) */
    ck_assert_msg(fabs(lo - want_lo) < 0.01, "rate %.4f, want %.4f", lo, want_lo);
    free(many);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_sampler_no_allocation_per_step) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_module *m = random_model(ctx, false, CC_LSTM, 8);
    ct_rng r;
    ct_rng_seed(&r, 1);
    cc_sample_opts o = opts(0.9f, 20, 0.9f);
    cc_sampler *s = cc_sampler_new(m, 3, &o, &r);
    int64_t row[3];
    ck_assert_int_eq(cc_sampler_next_tokens(s, row), CT_OK);
    ct_mem_stats before = ct_ctx_mem_stats(ctx);
    for (int t = 0; t < 500; t++) ck_assert_int_eq(cc_sampler_next_tokens(s, row), CT_OK);
    ct_mem_stats after = ct_ctx_mem_stats(ctx);
    ck_assert_int_eq(after.live_tensors, before.live_tensors);
    ck_assert_int_eq(after.live_bytes, before.live_bytes);
    ck_assert_int_eq(after.live_nodes, 0);
    cc_sampler_free(s);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_sampler_errors) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_module *m = random_model(ctx, false, CC_GRU, 1), *roll = random_model(ctx, true, CC_GRU, 2);
    ct_rng r;
    ct_rng_seed(&r, 1);
    cc_sample_opts bad = opts(-1, 0, 1), k = opts(1, 5, 1);
    ck_assert_ptr_null(cc_sampler_new(m, 1, &bad, &r));
    assert_has(errs.last.msg, "expected temperature >= 0");
    ck_assert_ptr_null(cc_sampler_new(m, 0, NULL, &r));
    assert_has(errs.last.msg, "batch 0");
    ck_assert_ptr_null(cc_sampler_new(m, 1, NULL, NULL));
    assert_has(errs.last.msg, "rng is NULL");
    ck_assert_ptr_null(cc_sampler_new(roll, 1, &k, &r));
    assert_has(errs.last.msg, "the piano-roll model turns each key on independently");
    ct_module *lin = ct_linear_new(ctx, &r, 2, 2, true);
    ck_assert_ptr_null(cc_sampler_new(lin, 1, NULL, &r));
    assert_has(errs.last.msg, "is not a composer");
    ct_module_free(lin);
    ck_assert_ptr_null(cc_sampler_new(NULL, 1, NULL, &r));

    cc_sampler *s = cc_sampler_new(m, 2, NULL, &r), *sr = cc_sampler_new(roll, 1, NULL, &r);
    const int64_t toks[] = {1, 38};
    ck_assert_int_eq(cc_sampler_feed_tokens(s, toks, 2, false), CT_E_ARG);
    assert_has(errs.last.msg, "token 38 at position 1 is outside 0..37 (the melody vocabulary)");
    const int64_t neg[] = {1, 2, 3, -1};
    ck_assert_int_eq(cc_sampler_feed_tokens(s, neg, 2, true), CT_E_ARG);
    ck_assert_int_eq(cc_sampler_feed_tokens(s, NULL, 1, false), CT_E_ARG);
    ck_assert_int_eq(cc_sampler_feed_tokens(s, NULL, 0, false), CT_OK);
    uint8_t fr[88] = {0}, out[2 * 88];
    ck_assert_int_eq(cc_sampler_feed_frames(s, fr, 1, false), CT_E_ARG);
    assert_has(errs.last.msg, "takes tokens");
    ck_assert_int_eq(cc_sampler_next_frames(s, out), CT_E_ARG);
    ck_assert_int_eq(cc_sampler_next_tokens(s, NULL), CT_E_NULL);
    ck_assert_int_eq(cc_sampler_feed_tokens(sr, toks, 1, false), CT_E_ARG);
    assert_has(errs.last.msg, "takes frames");
    int64_t t2[2];
    ck_assert_int_eq(cc_sampler_next_tokens(sr, t2), CT_E_ARG);
    ck_assert_int_eq(cc_sampler_set_opts(sr, &k), CT_E_ARG);
    ck_assert_int_eq(cc_sampler_set_opts(s, &bad), CT_E_ARG);
    ck_assert_int_eq(cc_sampler_next_frames(sr, out), CT_OK);
    ck_assert_int_eq(cc_sample_tokens(m, NULL, &r, NULL, 0, 1, -1, t2), CT_E_ARG);
    ck_assert_int_eq(cc_sample_frames(roll, NULL, &r, NULL, 0, 1, 1, NULL), CT_E_ARG);
    ck_assert_int_eq(cc_sample_tokens(m, NULL, &r, toks, 2, 1, 3, t2), CT_E_ARG);
    ck_assert_int_eq(cc_sampler_batch(NULL), 0);
    cc_sampler_free(s);
    cc_sampler_free(sr);
    cc_sampler_free(NULL);
    cc_sampler_reset(NULL);
    ct_module_free(m);
    ct_module_free(roll);
    ct_ctx_free(ctx);
}
END_TEST

/* ===== evaluation (models/eval.h) ============================================================== */
/* The summed NLL of one sequence, straight from cc_forward over all of it. */
static double direct_nll(ct_module *m, bool roll, const void *seq, int64_t len) {
    ct_ctx *ctx = m->ctx;
    const int64_t T = len - 1;
    ct_scope_begin(ctx);
    double v;
    if (roll) {
        const float *f = seq;
        ct_tensor *x = ct_from_f32(ctx, f, CT_SHAPE(T, 1, 88));
        ct_tensor *y = ct_from_f32(ctx, f + 88, CT_SHAPE(T, 1, 88));
        v = ct_item(ct_bce_with_logits(cc_forward(m, x, NULL, NULL), y, CT_REDUCE_SUM));
    } else {
        const int64_t *t = seq;
        ct_tensor *x = ct_from_i64(ctx, t, CT_SHAPE(T, 1));
        ct_tensor *y = ct_from_i64(ctx, t + 1, CT_SHAPE(T));
        v = ct_item(ct_cross_entropy(ct_reshape(cc_forward(m, x, NULL, NULL), T, -1), y, -100)) * (double)T;
    }
    ct_scope_end(ctx);
    return v;
}

START_TEST(test_eval_matches_direct) {
    /* _i: 0 melody LSTM, 1 melody GRU, 2 piano-roll LSTM, 3 piano-roll RNN */
    ct_ctx *ctx = tu_ctx(NULL);
    const bool roll = _i >= 2;
    const cc_cell cell = _i == 1 ? CC_GRU : _i == 3 ? CC_RNN : CC_LSTM;
    ct_module *m = random_model(ctx, roll, cell, 90 + (uint64_t)_i);
    const int64_t lens[] = {9, 1, 23, 2, 15, 23};
    enum { NSEQ = 6 };
    ct_mem_dataset *md = ct_mem_dataset_new(ctx);
    double want = 0;
    int64_t want_count = 0;
    ct_module_train(m, false);
    for (int i = 0; i < NSEQ; i++) {
        const int64_t n = lens[i];
        if (roll) {
            float *f = calloc((size_t)(n * 88), sizeof(float));
            for (int64_t t = 0; t < n; t++)
                for (int k = 0; k < 88; k++) f[t * 88 + k] = ((t * 7 + k * 3 + i) % 11) < 2 ? 1.0f : 0.0f;
            ck_assert_int_eq(ct_mem_dataset_add_frames(md, f, n, 88, NULL), CT_OK);
            if (n > 1) want += direct_nll(m, true, f, n);
            free(f);
        } else {
            int64_t t64[32];
            for (int64_t t = 0; t < n; t++) t64[t] = (t * 5 + i * 3 + 1) % 38;
            ck_assert_int_eq(ct_mem_dataset_add_tokens(md, t64, n, NULL), CT_OK);
            if (n > 1) want += direct_nll(m, false, t64, n);
        }
        if (n > 1) want_count += n - 1;
    }
    ct_dataset ds = ct_mem_dataset_as(md);
    /* whole sequences in one batch, then small batches and chunks that carry the state */
    const cc_eval_opts variants[] = {cc_eval_defaults(), {2, 4}, {1, 1}, {3, 7}};
    ct_module_train(m, true);                     /* eval switches dropout off and restores */
    for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
        cc_eval_result r;
        ck_assert_int_eq(cc_eval_dataset(m, &ds, &variants[v], &r), CT_OK);
        ck_assert_int_eq(r.count, want_count);
        ck_assert_int_eq(r.pieces, 5);
        ck_assert_int_eq(r.too_short, 1);
        ck_assert_msg(fabs(r.nll_sum - want) < 1e-5 * fabs(want), "variant %zu: %.9g vs %.9g", v, r.nll_sum, want);
        ck_assert_double_eq_tol(r.nll, r.nll_sum / (double)r.count, 1e-12);
        ck_assert_double_eq_tol(r.perplexity, exp(r.nll), 1e-9 * exp(r.nll));
        ck_assert(m->training);
        ck_assert(ct_set_grad_enabled(ctx, true));   /* grad mode was restored */
    }
    /* the counting of the published tables: a model whose logits are all 0 predicts each key
     * with p = 1/2 (88 ln 2 per time step, not per key) and each token with 1/V (ln V) */
    for (int i = 0; i < ct_module_param_count(m); i++)
        ck_assert_int_eq(ct_inplace_fill(ct_module_param_at(m, i, NULL, 0), 0.0f), CT_OK);
    cc_eval_result r;
    ck_assert_int_eq(cc_eval_dataset(m, &ds, NULL, &r), CT_OK);
    ck_assert_double_eq_tol(r.nll, roll ? 88.0 * log(2.0) : log(38.0), 1e-6);
    ct_mem_dataset_free(md);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_eval_errors) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_module *m = random_model(ctx, false, CC_LSTM, 3), *roll = random_model(ctx, true, CC_LSTM, 4);
    ct_mem_dataset *md = ct_mem_dataset_new(ctx);
    const int64_t toks[] = {1, 2, 37, 38, 4};
    ck_assert_int_eq(ct_mem_dataset_add_tokens(md, toks, 5, "bad.mid"), CT_OK);
    ct_dataset ds = ct_mem_dataset_as(md);
    cc_eval_result r;
    r.count = 99;
    ck_assert_int_eq(cc_eval_dataset(m, &ds, NULL, &r), CT_E_ARG);      /* token 38 of 38 classes */
    ck_assert_int_eq(r.count, 0);
    assert_has(errs.last.msg, "bad.mid");
    assert_has(errs.last.msg, "token 38 at step 3 is outside 0..37");
    ck_assert_int_eq(cc_eval_dataset(roll, &ds, NULL, &r), CT_E_ARG);   /* tokens for frames */
    assert_has(errs.last.msg, "the piano-roll model reads frames of 88 keys");
    ct_mem_dataset *mf = ct_mem_dataset_new(ctx);
    float f[3 * 88] = {0};
    ck_assert_int_eq(ct_mem_dataset_add_frames(mf, f, 3, 88, NULL), CT_OK);
    ct_dataset dsf = ct_mem_dataset_as(mf);
    ck_assert_int_eq(cc_eval_dataset(m, &dsf, NULL, &r), CT_E_ARG);     /* frames for tokens */
    assert_has(errs.last.msg, "reads tokens");
    ck_assert_int_eq(cc_eval_dataset(roll, &dsf, NULL, &r), CT_OK);
    ck_assert_int_eq(r.count, 2);
    const cc_eval_opts bad[] = {{0, 1}, {1, 0}, {-1, 5}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_int_eq(cc_eval_dataset(roll, &dsf, &bad[i], &r), CT_E_ARG);
        assert_has(errs.last.msg, "expected batch");
    }
    ck_assert_int_eq(cc_eval_dataset(roll, NULL, NULL, &r), CT_E_NULL);
    ck_assert_int_eq(cc_eval_dataset(roll, &dsf, NULL, NULL), CT_E_NULL);
    ck_assert_int_eq(cc_eval_dataset(NULL, &dsf, NULL, &r), CT_E_NULL);
    ct_rng rng;
    ct_rng_seed(&rng, 1);
    ct_module *lin = ct_linear_new(ctx, &rng, 2, 2, true);
    ck_assert_int_eq(cc_eval_dataset(lin, &dsf, NULL, &r), CT_E_ARG);
    assert_has(errs.last.msg, "is not a composer");
    /* an empty dataset: nothing counted, NaN NLL */
    ct_mem_dataset *me = ct_mem_dataset_new(ctx);
    ct_dataset dse = ct_mem_dataset_as(me);
    ck_assert_int_eq(cc_eval_dataset(roll, &dse, NULL, &r), CT_OK);
    ck_assert_int_eq(r.count, 0);
    ck_assert(isnan(r.nll));
    ct_module_free(lin);
    ct_mem_dataset_free(md);
    ct_mem_dataset_free(mf);
    ct_mem_dataset_free(me);
    ct_module_free(m);
    ct_module_free(roll);
    ct_ctx_free(ctx);
}
END_TEST

/* ===== MIDI in and out (cc_encode_midi, cc_decode_midi) ======================================== */
static cm_note mk_note(int64_t start, int64_t end, int pitch, int channel) {
    cm_note x;
    memset(&x, 0, sizeof x);
    x.start_tick = start;
    x.end_tick = end;
    x.start_s = start / 480.0 * 60.0 / 90.0;
    x.end_s = end / 480.0 * 60.0 / 90.0;
    x.pitch = (uint8_t)pitch;
    x.velocity = 90;
    x.channel = (uint8_t)channel;
    x.is_drum = channel == 9;
    return x;
}

/* A file of notes at PPQ 480, 90 qpm, num/4. */
static cm_file *mk_file(const cm_note *notes, int64_t n, int num) {
    cm_notes nt;
    ck_assert_int_eq(cm_notes_from_array(&nt, notes, n, NULL), CM_OK);
    cm_tempo_map tm;
    ck_assert_int_eq(cm_tempo_map_init_simple(&tm, cm_division_ppq(480), 666667, num, 4), CM_OK);
    cm_file *f = cm_file_from_notes(&nt, &tm, NULL);
    ck_assert_ptr_nonnull(f);
    cm_tempo_map_free(&tm);
    cm_notes_free(&nt);
    return f;
}

START_TEST(test_encode_midi_melody) {
    /* C-E-G together, D alone, A cut by F (on another track), a drum, one note two octaves up */
    cm_note notes[] = {mk_note(0, 480, 60, 0),     mk_note(0, 480, 64, 0),   mk_note(0, 480, 67, 0),
                       mk_note(480, 960, 62, 0),   mk_note(960, 1920, 69, 0), mk_note(1200, 1440, 65, 1),
                       mk_note(0, 240, 36, 9),     mk_note(1920, 2160, 98, 0)};
    cm_file *f = mk_file(notes, 8, 3);
    cc_config c = cc_config_default(CC_ENC_MELODY);
    ck_assert_int_eq(cc_config_resolve(&c, NULL, 0), CT_OK);
    cc_steps st;
    cc_encode_info info;
    char err[512];
    ck_assert_int_eq(cc_encode_midi(&c, f, "p.mid", &st, &info, err, sizeof err), CT_OK);
    const int64_t G = 2 + 67 - 48, D = 2 + 62 - 48, A = 2 + 69 - 48, F = 2 + 65 - 48, H = 2 + 74 - 48, OFF = 1;
    const int64_t want[] = {G, 0, 0, 0, D, 0, 0, 0, A, 0, F, 0, OFF, 0, 0, 0, H, 0};
    ck_assert_int_eq(st.len, 18);
    for (int i = 0; i < 18; i++) ck_assert_msg(st.tokens[i] == want[i], "step %d: %lld", i, (long long)st.tokens[i]);
    ck_assert_ptr_null(st.frames);
    ck_assert_double_eq_tol(info.qpm, 90.0, 1e-3);
    ck_assert_double_eq(info.quarters_per_bar, 3.0);
    ck_assert_int_eq(info.notes, 7);                 /* the drum left out */
    ck_assert_int_eq(info.polyphonic, 3);            /* C and E under G, A cut by F */
    ck_assert_int_eq(info.moved, 1);                 /* 98 -> 74 */
    /* and back: the same line as notes, at the tempo asked */
    cm_file *back = cc_decode_midi(&c, &st, 90.0, err, sizeof err);
    ck_assert_ptr_nonnull(back);
    cm_notes nt;
    ck_assert_int_eq(cm_notes_extract(back, NULL, &nt, NULL), CM_OK);
    ck_assert_int_eq(nt.n_notes, 5);
    const int wp[] = {67, 62, 69, 65, 74};
    const int64_t ws[] = {0, 480, 960, 1200, 1920}, we[] = {480, 960, 1200, 1440, 2160};
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(nt.notes[i].pitch, wp[i]);
        ck_assert_int_eq(nt.notes[i].start_tick, ws[i]);
        ck_assert_int_eq(nt.notes[i].end_tick, we[i]);
    }
    ck_assert_double_eq_tol(nt.notes[4].end_s, 2160 / 480.0 * 60 / 90.0, 1e-5);   /* 666667 us */
    cm_notes_free(&nt);
    cm_file_free(back);
    cc_steps_free(&st);
    cc_steps_free(&st);                              /* twice: zeroed */
    cc_steps_free(NULL);
    /* a monophonic file reports no polyphony; an empty one gives no steps */
    cm_file *mono = mk_file(notes + 3, 1, 4);
    ck_assert_int_eq(cc_encode_midi(&c, mono, "m.mid", &st, &info, err, sizeof err), CT_OK);
    ck_assert_int_eq(info.polyphonic, 0);
    ck_assert_int_eq(st.len, 8);                    /* from its bar line: a quarter of rest, D */
    ck_assert_int_eq(st.tokens[0], 0);
    ck_assert_int_eq(st.tokens[4], D);
    ck_assert_double_eq(info.quarters_per_bar, 4.0);
    cc_steps_free(&st);
    cm_file *empty = cm_file_new(1, cm_division_ppq(96));
    ck_assert_int_eq(cc_encode_midi(&c, empty, "e.mid", &st, &info, err, sizeof err), CT_OK);
    ck_assert_int_eq(st.len, 0);
    ck_assert_int_eq(info.notes, 0);
    ck_assert_double_eq_tol(info.qpm, 120.0, 1e-9);
    cm_file_free(empty);
    cm_file_free(mono);
    cm_file_free(f);
}
END_TEST

START_TEST(test_encode_midi_roll_and_performance) {
    cm_note notes[] = {mk_note(0, 480, 60, 0), mk_note(0, 480, 64, 0), mk_note(240, 720, 67, 1),
                       mk_note(0, 960, 38, 9), mk_note(480, 960, 10, 0)};
    cm_file *f = mk_file(notes, 5, 4);
    char err[512];
    cc_steps st;
    cc_encode_info info;
    /* piano roll at 4 steps per quarter: the chord stays a chord, the drum and pitch 10 go */
    cc_config r = cc_config_default(CC_ENC_PIANOROLL);
    ck_assert_int_eq(cc_encode_midi(&r, f, "r.mid", &st, &info, err, sizeof err), CT_OK);
    ck_assert_int_eq(st.len, 6);                    /* to the end of the last note kept */
    ck_assert_ptr_null(st.tokens);
    for (int64_t t = 0; t < 6; t++) {
        ck_assert_int_eq(st.frames[t * 88 + 60 - 21], t < 4);
        ck_assert_int_eq(st.frames[t * 88 + 64 - 21], t < 4);
        ck_assert_int_eq(st.frames[t * 88 + 67 - 21], t >= 2 && t < 6);
        ck_assert_int_eq(st.frames[t * 88 + 38 - 21], 0);
    }
    ck_assert_int_eq(info.dropped, 1);
    ck_assert_int_eq(info.polyphonic, 0);           /* counted for melodies only */
    cm_file *back = cc_decode_midi(&r, &st, 90.0, err, sizeof err);
    ck_assert_ptr_nonnull(back);
    cm_notes nt;
    ck_assert_int_eq(cm_notes_extract(back, NULL, &nt, NULL), CM_OK);
    ck_assert_int_eq(nt.n_notes, 3);
    cm_notes_free(&nt);
    cm_file_free(back);
    cc_steps_free(&st);
    /* performance: events in seconds; decoding gives the notes back on the 10 ms grid */
    cc_config p = cc_config_default(CC_ENC_PERFORMANCE);
    ck_assert_int_eq(cc_encode_midi(&p, f, "p.mid", &st, &info, err, sizeof err), CT_OK);
    ck_assert_int_gt(st.len, 6);
    const cm_perf_config pc = cm_perf_config_default();
    ck_assert_int_eq(cm_perf_token_to_event(&pc, (int)st.tokens[0]).type, CM_PERF_EV_VELOCITY);
    back = cc_decode_midi(&p, &st, 90.0, err, sizeof err);
    ck_assert_ptr_nonnull(back);
    ck_assert_int_eq(cm_notes_extract(back, NULL, &nt, NULL), CM_OK);
    ck_assert_int_eq(nt.n_notes, 4);                /* the drum left out; pitch 10 is a MIDI note */
    for (int64_t i = 0; i < nt.n_notes; i++) {
        const cm_note *x = &nt.notes[i];
        const cm_note *o = x->pitch == 60 ? &notes[0] : x->pitch == 64 ? &notes[1] : x->pitch == 67 ? &notes[2] : &notes[4];
        ck_assert_double_eq_tol(x->start_s, o->start_s, 0.006);
        ck_assert_double_eq_tol(x->end_s, o->end_s, 0.006);
    }
    cm_notes_free(&nt);
    cm_file_free(back);
    cc_steps_free(&st);
    cm_file_free(f);
}
END_TEST

START_TEST(test_encode_decode_errors) {
    cm_note n1 = mk_note(0, 480, 60, 0);
    cm_file *f = mk_file(&n1, 1, 4);
    char err[512];
    cc_steps st;
    cc_config t = cc_config_default(CC_ENC_TOKENS);
    t.vocab = 10;
    ck_assert_int_eq(cc_encode_midi(&t, f, "x.mid", &st, NULL, err, sizeof err), CT_E_ARG);
    assert_has(err, "a tokens model does not read MIDI notes");
    ck_assert_int_eq(st.len, 0);
    cc_config bad = cc_config_default(CC_ENC_MELODY);
    bad.layers = 0;
    ck_assert_int_eq(cc_encode_midi(&bad, f, "x.mid", &st, NULL, err, sizeof err), CT_E_ARG);
    assert_has(err, "bad configuration");
    cc_config mel = cc_config_default(CC_ENC_MELODY);
    ck_assert_int_eq(cc_encode_midi(&mel, NULL, "x.mid", &st, NULL, err, sizeof err), CT_E_NULL);
    ck_assert_int_eq(cc_encode_midi(&mel, f, NULL, &st, NULL, NULL, 0), CT_OK);   /* no name, no err */
    cc_steps_free(&st);
    int64_t toks[] = {0, 2, 38};
    cc_steps s3 = {toks, NULL, 3};
    ck_assert_ptr_null(cc_decode_midi(&mel, &s3, 120, err, sizeof err));
    assert_has(err, "token 38 at step 2 is outside 0..37");
    s3.len = 2;
    ck_assert_ptr_null(cc_decode_midi(&mel, &s3, 2, err, sizeof err));
    assert_has(err, "qpm 2");
    ck_assert_ptr_null(cc_decode_midi(&t, &s3, 120, err, sizeof err));
    assert_has(err, "have no MIDI form");
    cc_config roll = cc_config_default(CC_ENC_PIANOROLL);
    ck_assert_ptr_null(cc_decode_midi(&roll, &s3, 120, err, sizeof err));   /* tokens, no frames */
    assert_has(err, "without their frames");
    ck_assert_ptr_null(cc_decode_midi(NULL, &s3, 120, err, sizeof err));
    cm_file *ok = cc_decode_midi(&mel, &s3, 120, NULL, 0);
    ck_assert_ptr_nonnull(ok);
    cm_file_free(ok);
    cm_file_free(f);
}
END_TEST

Suite *sampler_suite(void) {
    Suite *s = suite_create("sampler");
    TCase *tc = tcase_create("sampler");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_pick_greedy_and_ties);
    tcase_add_test(tc, test_pick_temperature);
    tcase_add_test(tc, test_pick_top_k);
    tcase_add_test(tc, test_pick_top_p_edges);
    tcase_add_test(tc, test_pick_errors);
    tcase_add_loop_test(tc, test_sampler_logits_match_forward, 0, 4);
    tcase_add_test(tc, test_sampler_learned_pattern);
    tcase_add_test(tc, test_sampler_deterministic_and_rows);
    tcase_add_test(tc, test_sampler_primers_and_start);
    tcase_add_test(tc, test_sampler_roll);
    tcase_add_test(tc, test_sampler_no_allocation_per_step);
    tcase_add_test(tc, test_sampler_errors);
    tcase_add_loop_test(tc, test_eval_matches_direct, 0, 4);
    tcase_add_test(tc, test_eval_errors);
    tcase_add_test(tc, test_encode_midi_melody);
    tcase_add_test(tc, test_encode_midi_roll_and_performance);
    tcase_add_test(tc, test_encode_decode_errors);
    suite_add_tcase(s, tc);
    return s;
}
