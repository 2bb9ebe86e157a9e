/* tests/engine/test_data_parallel.c — DataParallel (engine/parallel/data_parallel.h) with
 * several replicas. On every machine the replicas run on the CPU through the private test mode
 * (CT__DP_CPU_REPLICAS, parallel_internal.h): construction, scatter, the host path's reduction
 * (bit for bit ct_dist_combine_grads over the shards' gradients) and broadcast, for a small
 * LSTM language model and for the composer. The GPU tests print "data_parallel: skipped — ..."
 * and return without the CUDA devices they need. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/device.h"
#include "engine/layers.h"
#include "engine/optim.h"
#include "engine/parallel/data_parallel.h"
#include "engine/parallel/dist.h"
#include "engine/parallel/parallel_internal.h"
#include "engine/rnn.h"
#include "models/composer.h"
#include "testutil.h"

static void assert_msg_has(const tu_errors *errs, const char *want) {
    ck_assert_msg(strstr(errs->last.msg, want) != NULL, "message \"%s\" lacks \"%s\"", errs->last.msg, want);
}

/* true (after printing why, once per test) when fewer than `need` CUDA devices are here */
static bool skip_unless_gpus(int need) {
    char why[256] = "";
    const int have = ct_cuda_device_count(why, sizeof why);
    if (have >= need) return false;
    if (need == 1)
        printf("data_parallel: skipped — %s\n", why[0] ? why : "no CUDA device");
    else
        printf("data_parallel: skipped — needs %d CUDA devices, this machine has %d%s%s\n", need, have,
               why[0] ? ": " : "", why);
    fflush(stdout);
    return true;
}

/* ---- a small LSTM language model -------------------------------------------------------------------- */
enum { V = 7, E = 5, H = 8 };

static ct_module *lm_new(ct_ctx *ctx, uint64_t seed) {
    ct_rng rng;
    ct_rng_seed(&rng, seed);
    ct_module *root = ct_module_new(ctx, "LM", 0);
    ct_rnn_config rc = {.mode = CT_LSTM, .input_size = E, .hidden_size = H, .num_layers = 2, .bias = true};
    ck_assert_int_eq(ct_module_add_child(root, "embed", ct_embedding_module_new(ctx, &rng, V, E)), CT_OK);
    ck_assert_int_eq(ct_module_add_child(root, "rnn", ct_rnn_new(ctx, &rng, &rc)), CT_OK);
    ck_assert_int_eq(ct_module_add_child(root, "out", ct_linear_new(ctx, &rng, H, V, true)), CT_OK);
    ck_assert_int_eq(ct_module_flatten(root), CT_OK);
    return root;
}

/* zero_grad, then backward of the mean cross-entropy over the counted targets of b; the count */
static int64_t lm_backward(ct_module *m, const ct_batch *b) {
    ct_module_zero_grad(m);
    if (b->rows == 0) return 0;
    ct_ctx *ctx = m->ctx;
    ct_scope_begin(ctx);
    ct_tensor *out = NULL;
    ck_assert_int_eq(ct_rnn_forward_embedded(ct_module_child(m, "rnn"), ct_module_param(m, "embed.weight"),
                                             b->inputs, b->lengths, NULL, NULL, NULL, &out, NULL, NULL),
                     CT_OK);
    const int64_t n = b->steps * b->rows;
    ct_tensor *logits = ct_linear_forward(ct_module_child(m, "out"), ct_reshape(out, n, H));
    ct_tensor *loss = ct_cross_entropy(logits, ct_reshape(b->targets, n), -100);
    ck_assert_ptr_nonnull(loss);
    ck_assert_int_eq(ct_backward(loss), CT_OK);
    int64_t count = 0;
    for (int64_t i = 0; i < n; i++) count += ct_data_i64(b->targets)[i] != -100;
    ct_scope_end(ctx);
    return count;
}

/* n token items of lengths lens[i] (+1 value for the targets), values (10*i + t) % 7 */
static void token_batch(ct_ctx *ctx, int n, const int64_t *lens, ct_batch *out) {
    ct_data_item items[8];
    ck_assert_int_le(n, 8);
    for (int i = 0; i < n; i++) {
        int64_t v[64];
        for (int64_t t = 0; t <= lens[i]; t++) v[t] = (10 * i + 3 * t) % 7;
        ct_item_init(&items[i]);
        ck_assert_int_eq(ct_item_set_tokens(&items[i], v, lens[i] + 1), CT_OK);
    }
    ct_collate_opts o = ct_collate_defaults();
    o.targets = true;
    memset(out, 0, sizeof *out);
    ck_assert_int_eq(ct_collate(ctx, items, n, &o, NULL, out), CT_OK);
    for (int i = 0; i < n; i++) ct_item_free(&items[i]);
}

static float *grads_copy(ct_module *m) {
    const int64_t P = ct_module_num_params(m);
    float *g = malloc(sizeof(float) * (size_t)P);
    ck_assert_int_eq(ct_copy_to_host(ct_module_flat_grads(m), g, sizeof(float) * (size_t)P), CT_OK);
    return g;
}

/* What DataParallel must give: the shards' gradients, each computed on the model alone,
 * combined with ct_dist_combine_grads. counts[r] gets shard r's count. Returns the block. */
static float *reference_combined(ct_module *m, const ct_batch *g, int size, int64_t *counts) {
    const int64_t P = ct_module_num_params(m);
    float **gs = calloc((size_t)size, sizeof *gs);
    for (int r = 0; r < size; r++) {
        ct_batch s = {0};
        ck_assert_int_eq(ct_batch_shard(m->ctx, g, false, r, size, &s), CT_OK);
        counts[r] = lm_backward(m, &s);
        if (counts[r] > 0) gs[r] = grads_copy(m);
        ct_batch_clear(&s);
    }
    float *comb = malloc(sizeof(float) * (size_t)P);
    ck_assert_int_eq(ct_dist_combine_grads(comb, (const float *const *)gs, counts, size, P), CT_OK);
    for (int r = 0; r < size; r++) free(gs[r]);
    free(gs);
    ct_module_zero_grad(m);
    return comb;
}

/* one DataParallel backward: scatter, backward on each replica; counts[i] */
static void dp_backward(ct_data_parallel *dp, const ct_batch *g, int64_t *counts) {
    for (int i = 0; i < ct_data_parallel_size(dp); i++) {
        ct_batch part = {0};
        ck_assert_int_eq(ct_data_parallel_scatter(dp, g, false, i, &part), CT_OK);
        counts[i] = lm_backward(ct_data_parallel_replica(dp, i), &part);
        ct_batch_clear(&part);
    }
}

static void assert_params_equal(ct_data_parallel *dp) {
    ct_module *m = ct_data_parallel_replica(dp, 0);
    const int64_t P = ct_module_num_params(m);
    for (int i = 1; i < ct_data_parallel_size(dp); i++) {
        ct_module *r = ct_data_parallel_replica(dp, i);
        ck_assert_int_eq(memcmp(ct_data_f32(ct_module_flat_params(m)), ct_data_f32(ct_module_flat_params(r)),
                                sizeof(float) * (size_t)P),
                         0);
    }
}

/* ---- CPU replicas ------------------------------------------------------------------------------------ */
START_TEST(test_cpu_replicas_reduce_and_broadcast) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    const int64_t lens[6] = {3, 9, 1, 6, 4, 7};   /* padding in every row but the longest */
    for (int size = 2; size <= 3; size++) {
        ct_module *m = lm_new(ctx, 99);
        const int64_t P = ct_module_num_params(m);
        ct_scope_begin(ctx);
        ct_batch g;
        token_batch(ctx, 6, lens, &g);
        const int64_t full_count = lm_backward(m, &g);
        float *full = grads_copy(m);
        double scale = 0;
        for (int64_t i = 0; i < P; i++) scale = fmax(scale, fabs(full[i]));
        int64_t ref_counts[3];
        float *comb = reference_combined(m, &g, size, ref_counts);

        /* devices {size-1, ..., 0} of `size` present (the list is kept; the test mode puts
         * every replica on the CPU) */
        int devs[3];
        for (int i = 0; i < size; i++) devs[i] = size - 1 - i;
        ct_data_parallel *dp = ct__data_parallel_new_with(m, devs, size, size, "", CT__DP_CPU_REPLICAS);
        ck_assert_msg(dp != NULL, "%s", errs.last.msg);
        ck_assert_int_eq(ct_data_parallel_size(dp), size);
        ck_assert_str_eq(ct__data_parallel_transport(dp), "host");
        ck_assert_ptr_eq(ct_data_parallel_replica(dp, 0), m);
        for (int i = 1; i < size; i++) {
            ct_module *r = ct_data_parallel_replica(dp, i);
            ck_assert_ptr_nonnull(r);
            ck_assert_ptr_ne(r, m);
            ck_assert(ct_device_eq(ct_data_parallel_device(dp, i), CT_DEVICE_CPU));
            ck_assert_ptr_ne(ct_module_flat_params(r)->storage, ct_module_flat_params(m)->storage);
        }
        assert_params_equal(dp);                  /* the replicas start as copies */

        int64_t counts[3];
        dp_backward(dp, &g, counts);
        int64_t total = 0;
        for (int i = 0; i < size; i++) {
            ck_assert_int_eq(counts[i], ref_counts[i]);
            total += counts[i];
        }
        ck_assert_int_eq(total, full_count);
        ck_assert_int_eq(ct_data_parallel_reduce_grads(dp, counts), CT_OK);
        /* bit for bit the shards' gradients combined, close to the whole batch's */
        const float *got = ct_data_f32(ct_module_flat_grads(m));
        ck_assert_int_eq(memcmp(got, comb, sizeof(float) * (size_t)P), 0);
        for (int64_t i = 0; i < P; i++)
            ck_assert_msg(fabs(got[i] - full[i]) <= 1e-5 * fabs(full[i]) + 1e-6 * scale,
                          "%d replicas: gradient %lld: %.9g, whole batch %.9g", size, (long long)i, got[i],
                          full[i]);
        for (int i = 1; i < size; i++) {       /* the others' blocks are zeroed */
            const float *gi = ct_data_f32(ct_module_flat_grads(ct_data_parallel_replica(dp, i)));
            for (int64_t k = 0; k < P; k++) ck_assert(gi[k] == 0.0f);
        }

        /* an Adam step on replica 0, then broadcast: every replica has its new weights */
        ct_optim *opt = ct_adam_new(m, ct_adam_defaults(1e-2));
        ck_assert_int_eq(ct_optim_step(opt), CT_OK);
        ck_assert_int_ne(memcmp(ct_data_f32(ct_module_flat_params(m)),
                                ct_data_f32(ct_module_flat_params(ct_data_parallel_replica(dp, 1))),
                                sizeof(float) * (size_t)P),
                         0);
        /* a graph that read replica 1's weights before the broadcast cannot run backward
         * after it: the broadcast changed them in place (the storage version moved on) */
        ct_tensor *w1 = ct_module_param_at(ct_data_parallel_replica(dp, 1), 0, NULL, 0);
        ct_tensor *stale = ct_sum_all(ct_mul(w1, w1));
        ck_assert_int_eq(ct_data_parallel_broadcast_params(dp), CT_OK);
        assert_params_equal(dp);
        ck_assert_int_eq(ct_backward(stale), CT_E_STATE);
        ck_assert_ptr_nonnull(strstr(ct_ctx_error(ctx), "was changed in place afterwards"));
        ct_ctx_clear_error(ctx);

        /* the next step sees the new weights on every replica */
        float *comb2 = reference_combined(m, &g, size, ref_counts);
        ct_optim_zero_grad(opt);
        dp_backward(dp, &g, counts);
        ck_assert_int_eq(ct_data_parallel_reduce_grads(dp, counts), CT_OK);
        ck_assert_int_eq(memcmp(ct_data_f32(ct_module_flat_grads(m)), comb2, sizeof(float) * (size_t)P), 0);
        ck_assert_int_ne(memcmp(comb, comb2, sizeof(float) * (size_t)P), 0);

        free(comb2);
        free(comb);
        free(full);
        ct_optim_free(opt);
        ct_data_parallel_free(dp);
        ct_batch_clear(&g);
        ct_scope_end(ctx);
        ct_module_free(m);
    }
    ck_assert_int_eq(ct_ctx_mem_stats(ctx).live_tensors, 0);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_cpu_replicas_zero_counts) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_module *m = lm_new(ctx, 3);
    const int64_t P = ct_module_num_params(m);
    ct_scope_begin(ctx);
    ct_batch g;
    token_batch(ctx, 2, (const int64_t[]){5, 3}, &g);   /* 2 rows, 3 replicas: replica 0 has none */
    int64_t ref_counts[3];
    float *comb = reference_combined(m, &g, 3, ref_counts);
    ck_assert(ref_counts[0] == 0 && ref_counts[1] == 5 && ref_counts[2] == 3);
    ct_data_parallel *dp = ct__data_parallel_new_with(m, NULL, 0, 3, "", CT__DP_CPU_REPLICAS);
    ck_assert_ptr_nonnull(dp);
    int64_t counts[3];
    dp_backward(dp, &g, counts);
    ck_assert_int_eq(counts[0], 0);
    /* whatever an empty replica's block holds, it contributes zeros */
    float *g0 = ct_data_f32(ct_module_flat_grads(m));
    for (int64_t i = 0; i < P; i++) g0[i] = NAN;
    ck_assert_int_eq(ct_data_parallel_reduce_grads(dp, counts), CT_OK);
    ck_assert_int_eq(memcmp(g0, comb, sizeof(float) * (size_t)P), 0);
    /* one replica counted: its gradient exactly (weight 1), the NaNs of the others ignored */
    float *g1 = ct_data_f32(ct_module_flat_grads(ct_data_parallel_replica(dp, 1)));
    float *g2 = ct_data_f32(ct_module_flat_grads(ct_data_parallel_replica(dp, 2)));
    for (int64_t i = 0; i < P; i++) {
        g0[i] = NAN;
        g1[i] = (float)i * 0.25f;
        g2[i] = NAN;
    }
    ck_assert_int_eq(ct_data_parallel_reduce_grads(dp, (const int64_t[]){0, 4, 0}), CT_OK);
    for (int64_t i = 0; i < P; i++) ck_assert(g0[i] == (float)i * 0.25f && g1[i] == 0.0f && g2[i] == 0.0f);
    /* nothing counted anywhere: zeros, as one process would get from a loss of 0 */
    for (int64_t i = 0; i < P; i++) g0[i] = g1[i] = 1.0f;
    ck_assert_int_eq(ct_data_parallel_reduce_grads(dp, (const int64_t[]){0, 0, 0}), CT_OK);
    for (int64_t i = 0; i < P; i++) ck_assert(g0[i] == 0.0f && g1[i] == 0.0f);
    free(comb);
    ct_data_parallel_free(dp);
    ct_batch_clear(&g);
    ct_scope_end(ctx);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_cpu_replicas_errors) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_module *m = lm_new(ctx, 4);
    ct_data_parallel *dp = ct__data_parallel_new_with(m, NULL, 0, 2, "", CT__DP_CPU_REPLICAS);
    ck_assert_ptr_nonnull(dp);
    ck_assert_int_eq(ct_data_parallel_reduce_grads(dp, NULL), CT_E_ARG);
    assert_msg_has(&errs, "counts is NULL");
    ck_assert_int_eq(ct_data_parallel_reduce_grads(dp, (const int64_t[]){3, -1}), CT_E_ARG);
    assert_msg_has(&errs, "replica 1's count -1 is negative");
    ct_scope_begin(ctx);
    ct_batch g, part = {0};
    token_batch(ctx, 3, (const int64_t[]){4, 2, 5}, &g);
    ck_assert_int_eq(ct_data_parallel_scatter(dp, &g, false, 2, &part), CT_E_ARG);
    assert_msg_has(&errs, "scatter: replica 2 of 2");
    ck_assert_int_eq(ct_data_parallel_scatter(dp, &g, false, -1, &part), CT_E_ARG);
    ck_assert_ptr_null(ct_data_parallel_replica(dp, 2));
    ck_assert_ptr_null(ct_data_parallel_replica(dp, -1));
    ck_assert(ct_device_eq(ct_data_parallel_device(dp, 5), CT_DEVICE_CPU));
    /* scatter gives replica i its rows (rank i of 2) and the model's train/eval flags */
    ct_module_train(m, false);
    ck_assert_int_eq(ct_data_parallel_scatter(dp, &g, false, 1, &part), CT_OK);
    ck_assert_int_eq(part.rows, 2);                       /* rows [1, 3) */
    ck_assert_int_eq(part.steps, 5);
    ck_assert(!ct_data_parallel_replica(dp, 1)->training);
    ck_assert(!ct_module_child(ct_data_parallel_replica(dp, 1), "rnn")->training);
    ct_batch_clear(&part);
    ct_module_train(m, true);
    ck_assert_int_eq(ct_data_parallel_scatter(dp, &g, false, 1, &part), CT_OK);
    ck_assert(ct_module_child(ct_data_parallel_replica(dp, 1), "out")->training);
    ct_batch_clear(&part);
    ct_batch_clear(&g);
    ct_scope_end(ctx);
    /* NULL wrappers */
    ck_assert_int_eq(ct_data_parallel_scatter(NULL, NULL, false, 0, &part), CT_E_NULL);
    ck_assert_int_eq(ct_data_parallel_reduce_grads(NULL, NULL), CT_E_NULL);
    ck_assert_int_eq(ct_data_parallel_broadcast_params(NULL), CT_E_NULL);
    ck_assert_ptr_null(ct_data_parallel_replica(NULL, 0));
    ck_assert_str_eq(ct__data_parallel_transport(NULL), "none");
    /* parameters added while wrapped: the blocks no longer match */
    ck_assert_ptr_nonnull(ct_module_add_param(m, "extra", CT_SHAPE(3)));
    ck_assert_int_eq(ct_data_parallel_reduce_grads(dp, (const int64_t[]){1, 1}), CT_E_STATE);
    assert_msg_has(&errs, "parameters added after wrapping?");
    ck_assert_int_eq(ct_data_parallel_broadcast_params(dp), CT_E_STATE);
    ct_data_parallel_free(dp);
    /* construction errors: a child, an unknown mode, a model not on replica 0's device */
    ck_assert_ptr_null(ct__data_parallel_new_with(ct_module_child(m, "rnn"), NULL, 0, 2, "", CT__DP_CPU_REPLICAS));
    assert_msg_has(&errs, "is a child; wrap the root module");
    ck_assert_ptr_null(ct__data_parallel_new_with(m, NULL, 0, 2, "", (ct__dp_mode)7));
    assert_msg_has(&errs, "unknown mode 7");
    ck_assert_ptr_null(ct__data_parallel_new_with(m, (const int[]){1}, 1, 2, "", CT__DP_AUTO));
    ck_assert_int_eq(ct_ctx_status(ctx), CT_E_DEVICE);
    assert_msg_has(&errs, "the model is on cpu, but replica 0 (the model itself) lives on cuda:1");
    ct_module_free(m);
    ck_assert_int_eq(ct_ctx_mem_stats(ctx).live_tensors, 0);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- the composer ------------------------------------------------------------------------------------ */
static ct_module *composer(ct_ctx *ctx, bool roll, uint64_t seed) {
    cc_config c = cc_config_default(roll ? CC_ENC_PIANOROLL : CC_ENC_TOKENS);
    if (!roll) {
        c.vocab = V;
        c.embed = 6;
    }
    c.hidden = 10;
    c.layers = 2;
    c.dropout = 0.0f;
    ct_rng rng;
    ct_rng_seed(&rng, seed);
    ct_module *m = cc_model_new(ctx, &rng, &c);
    ck_assert_ptr_nonnull(m);
    return m;
}

static void frame_batch(ct_ctx *ctx, int n, const int64_t *lens, ct_batch *out) {
    ct_data_item items[8];
    for (int i = 0; i < n; i++) {
        float f[16 * 88];
        for (int64_t k = 0; k < (lens[i] + 1) * 88; k++) f[k] = (float)((k * 7 + i) % 5 == 0);
        ct_item_init(&items[i]);
        ck_assert_int_eq(ct_item_set_frames(&items[i], f, lens[i] + 1, 88), CT_OK);
    }
    ct_collate_opts o = ct_collate_defaults();
    o.targets = true;
    memset(out, 0, sizeof *out);
    ck_assert_int_eq(ct_collate(ctx, items, n, &o, NULL, out), CT_OK);
    for (int i = 0; i < n; i++) ct_item_free(&items[i]);
}

/* zero_grad, cc_loss, backward; the count */
static int64_t cc_backward(ct_module *m, const ct_batch *b) {
    ct_module_zero_grad(m);
    if (b->rows == 0) return 0;
    ct_scope_begin(m->ctx);
    ct_tensor *loss = NULL;
    int64_t count = 0;
    ck_assert_msg(cc_loss(m, b, -100, NULL, &loss, &count) == CT_OK, "%s", ct_ctx_error(m->ctx));
    ck_assert_int_eq(ct_backward(loss), CT_OK);
    ct_scope_end(m->ctx);
    return count;
}

START_TEST(test_composer_clone_and_replicas) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    for (int roll = 0; roll <= 1; roll++) {
        ct_module *m = composer(ctx, roll, 21);
        ct_scope_begin(ctx);
        ct_batch g;
        const int64_t lens[5] = {6, 2, 8, 5, 3};
        if (roll) frame_batch(ctx, 5, lens, &g);
        else token_batch(ctx, 5, lens, &g);
        /* the clone: the same model, bit for bit, its own children in its impl */
        ct_module *c = ct_module_clone(m, CT_DEVICE_CPU);
        ck_assert_ptr_nonnull(c);
        ck_assert_ptr_eq(cc_model_rnn(c), ct_module_child(c, "rnn"));
        ck_assert_ptr_eq(cc_model_out(c), ct_module_child(c, "out"));
        ck_assert_ptr_eq(cc_model_embed(c), roll ? NULL : ct_module_child(c, "embed"));
        ck_assert_ptr_ne(cc_model_rnn(c), cc_model_rnn(m));
        ck_assert_int_eq(cc_model_config(c)->hidden, 10);
        ct_tensor *l0, *l1;
        int64_t n0, n1;
        ck_assert_int_eq(cc_loss(m, &g, -100, NULL, &l0, &n0), CT_OK);
        ck_assert_int_eq(cc_loss(c, &g, -100, NULL, &l1, &n1), CT_OK);
        ck_assert(n0 == n1 && n0 > 0);
        ck_assert(ct_item(l0) == ct_item(l1));
        ct_tensor *f0 = ct_contiguous(cc_forward(m, g.inputs, g.lengths, NULL));
        ct_tensor *f1 = ct_contiguous(cc_forward(c, g.inputs, g.lengths, NULL));
        ck_assert_int_eq(memcmp(ct_data_f32(f0), ct_data_f32(f1), sizeof(float) * (size_t)ct_numel(f0)), 0);
        ct_module_free(c);

        /* two replicas on the CPU: the combined shards' gradients, bit for bit */
        const int64_t P = ct_module_num_params(m);
        ck_assert_int_eq(ct_module_flatten(m), CT_OK);
        int64_t ref[2];
        float *gs[2];
        for (int r = 0; r < 2; r++) {
            ct_batch s = {0};
            ck_assert_int_eq(ct_batch_shard(ctx, &g, false, r, 2, &s), CT_OK);
            ref[r] = cc_backward(m, &s);
            gs[r] = grads_copy(m);
            ct_batch_clear(&s);
        }
        float *comb = malloc(sizeof(float) * (size_t)P);
        ck_assert_int_eq(ct_dist_combine_grads(comb, (const float *const *)gs, ref, 2, P), CT_OK);
        ct_module_zero_grad(m);
        ct_data_parallel *dp = ct__data_parallel_new_with(m, NULL, 0, 2, "", CT__DP_CPU_REPLICAS);
        ck_assert_ptr_nonnull(dp);
        int64_t counts[2];
        for (int i = 0; i < 2; i++) {
            ct_batch part = {0};
            ck_assert_int_eq(ct_data_parallel_scatter(dp, &g, false, i, &part), CT_OK);
            if (roll) ck_assert_ptr_nonnull(part.mask);
            counts[i] = cc_backward(ct_data_parallel_replica(dp, i), &part);
            ct_batch_clear(&part);
        }
        ck_assert(counts[0] == ref[0] && counts[1] == ref[1]);
        ck_assert_int_eq(ct_data_parallel_reduce_grads(dp, counts), CT_OK);
        ck_assert_int_eq(memcmp(ct_data_f32(ct_module_flat_grads(m)), comb, sizeof(float) * (size_t)P), 0);
        ct_data_parallel_free(dp);
        free(comb);
        free(gs[0]);
        free(gs[1]);
        ct_batch_clear(&g);
        ct_scope_end(ctx);
        ct_module_free(m);
    }
    ct_ctx_free(ctx);
}
END_TEST

/* ---- GPUs ---------------------------------------------------------------------------------------------- */
START_TEST(test_no_gpu_or_model_elsewhere) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_module *m = lm_new(ctx, 1);
    char why[160] = "";
    const int have = ct_cuda_device_count(why, sizeof why);
    ck_assert_ptr_null(ct_data_parallel_new(m, NULL, 0));   /* a CPU model: refused either way */
    ck_assert_int_eq(ct_ctx_status(ctx), CT_E_DEVICE);
    if (have == 0) {
        assert_msg_has(&errs, "DataParallel: no CUDA device (");
        assert_msg_has(&errs, why);
    } else {
        assert_msg_has(&errs, "the model is on cpu");
        assert_msg_has(&errs, "ct_module_to(model, cuda:0)");
    }
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

/* steps Adam steps of a composer on batch g: through DataParallel over devs (dp_mode), or,
 * with n_devs 0, plainly on `plain` (cpu or a GPU). Returns the parameters (host copy). */
static float *train_steps(ct_ctx *ctx, const ct_batch *g, int steps, const int *devs, int n_devs,
                          ct__dp_mode mode, ct_device plain) {
    ct_module *m = composer(ctx, false, 77);
    ct_device home = n_devs > 0 ? CT_DEVICE_CUDA(devs[0]) : plain;
    ck_assert_msg(ct_module_to(m, home) == CT_OK, "%s", ct_ctx_error(ctx));
    ct_data_parallel *dp = NULL;
    if (n_devs > 0) {
        char why[160] = "";
        dp = ct__data_parallel_new_with(m, devs, n_devs, ct_cuda_device_count(why, sizeof why), why, mode);
        ck_assert_msg(dp != NULL, "%s", ct_ctx_error(ctx));
        printf("data_parallel: %d GPU(s), transport %s\n", n_devs, ct__data_parallel_transport(dp));
    }
    ct_optim *opt = ct_adam_new(m, ct_adam_defaults(1e-2));
    ck_assert_ptr_nonnull(opt);
    for (int s = 0; s < steps; s++) {
        ct_optim_zero_grad(opt);
        if (dp) {
            int64_t counts[8];
            for (int i = 0; i < n_devs; i++) {
                ct_batch part = {0};
                ck_assert_int_eq(ct_data_parallel_scatter(dp, g, false, i, &part), CT_OK);
                ck_assert(ct_device_eq(ct_tensor_device(part.targets), ct_data_parallel_device(dp, i)));
                counts[i] = cc_backward(ct_data_parallel_replica(dp, i), &part);
                ct_batch_clear(&part);
            }
            ck_assert_msg(ct_data_parallel_reduce_grads(dp, counts) == CT_OK, "%s", ct_ctx_error(ctx));
        } else {
            cc_backward(m, g);
        }
        ck_assert_msg(ct_optim_step(opt) == CT_OK, "%s", ct_ctx_error(ctx));
        if (dp) ck_assert_msg(ct_data_parallel_broadcast_params(dp) == CT_OK, "%s", ct_ctx_error(ctx));
    }
    const int64_t P = ct_module_num_params(m);
    float *p = malloc(sizeof(float) * (size_t)P);
    ck_assert_int_eq(ct_copy_to_host(ct_module_flat_params(m), p, sizeof(float) * (size_t)P), CT_OK);
    if (dp) {   /* every replica holds replica 0's weights */
        float *q = malloc(sizeof(float) * (size_t)P);
        for (int i = 1; i < n_devs; i++) {
            ct_tensor *b = ct_module_flat_params(ct_data_parallel_replica(dp, i));
            ck_assert(ct_device_eq(ct_tensor_device(b), CT_DEVICE_CUDA(devs[i])));
            ck_assert_int_eq(ct_copy_to_host(b, q, sizeof(float) * (size_t)P), CT_OK);
            ck_assert_int_eq(memcmp(p, q, sizeof(float) * (size_t)P), 0);
        }
        free(q);
    }
    ct_optim_free(opt);
    ct_data_parallel_free(dp);
    ct_module_free(m);
    return p;
}

static int64_t composer_params(ct_ctx *ctx) {
    ct_module *m = composer(ctx, false, 77);
    const int64_t n = cc_model_num_params(m);
    ct_module_free(m);
    return n;
}

static void assert_close_params(const float *a, const float *b, int64_t n, double tol, const char *what) {
    double scale = 0, worst = 0;
    for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(a[i]));
    for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs(a[i] - b[i]));
    ck_assert_msg(worst <= tol * scale, "%s: max |difference| %g, max |weight| %g", what, worst, scale);
}

START_TEST(test_gpu_one_device_trains_like_no_wrapper) {
    if (skip_unless_gpus(1)) return;
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_scope_begin(ctx);
    ct_batch g;
    token_batch(ctx, 6, (const int64_t[]){3, 9, 1, 6, 4, 7}, &g);
    const int64_t P = composer_params(ctx);
    float *plain = train_steps(ctx, &g, 3, NULL, 0, CT__DP_AUTO, CT_DEVICE_CUDA(0));
    float *wrapped = train_steps(ctx, &g, 3, (const int[]){0}, 1, CT__DP_AUTO, CT_DEVICE_CPU);
    assert_close_params(plain, wrapped, P, 1e-6, "one GPU with and without DataParallel");
    free(plain);
    free(wrapped);
    ct_batch_clear(&g);
    ct_scope_end(ctx);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_gpu_two_devices_match_cpu) {
    if (skip_unless_gpus(2)) return;
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_scope_begin(ctx);
    ct_batch g;
    token_batch(ctx, 6, (const int64_t[]){3, 9, 1, 6, 4, 7}, &g);
    const int64_t P = composer_params(ctx);
    const int devs[2] = {0, 1};
    float *cpu = train_steps(ctx, &g, 4, NULL, 0, CT__DP_AUTO, CT_DEVICE_CPU);
    float *two = train_steps(ctx, &g, 4, devs, 2, CT__DP_AUTO, CT_DEVICE_CPU);
    float *host = train_steps(ctx, &g, 4, devs, 2, CT__DP_HOST_REDUCE, CT_DEVICE_CPU);
    assert_close_params(cpu, two, P, 1e-4, "2 GPUs (DataParallel) vs the CPU on the whole batch");
    assert_close_params(cpu, host, P, 1e-4, "2 GPUs (host reduction) vs the CPU");
    assert_close_params(host, two, P, 1e-5, "2 GPUs: NCCL vs host reduction");
    free(cpu);
    free(two);
    free(host);
    ct_batch_clear(&g);
    ct_scope_end(ctx);
    ct_ctx_free(ctx);
}
END_TEST

Suite *data_parallel_suite(void) {
    Suite *s = suite_create("data_parallel");
    TCase *tc = tcase_create("data_parallel");
    tcase_add_test(tc, test_cpu_replicas_reduce_and_broadcast);
    tcase_add_test(tc, test_cpu_replicas_zero_counts);
    tcase_add_test(tc, test_cpu_replicas_errors);
    tcase_add_test(tc, test_composer_clone_and_replicas);
    tcase_add_test(tc, test_no_gpu_or_model_elsewhere);
    tcase_add_test(tc, test_gpu_one_device_trains_like_no_wrapper);
    tcase_add_test(tc, test_gpu_two_devices_match_cpu);
    suite_add_tcase(s, tc);
    return s;
}
