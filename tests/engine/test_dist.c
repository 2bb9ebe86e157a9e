/* tests/engine/test_dist.c — engine/parallel/: the launcher's environment, the single-process
 * world (no MPI call: every collective is the identity), sharding a global batch, the
 * token-count weighting of data-parallel gradients (k ranks simulated in one process give the
 * full batch's gradient), the world size kept for resuming, and DataParallel's answers with
 * zero, one and several GPUs. The multi-process side runs under mpirun in tests/check_mpi.sh. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/device.h"
#include "engine/layers.h"
#include "engine/parallel/data_parallel.h"
#include "engine/parallel/dist.h"
#include "engine/parallel/parallel_internal.h"
#include "engine/rnn.h"
#include "testutil.h"

static void assert_msg_has(const tu_errors *errs, const char *want) {
    ck_assert_msg(strstr(errs->last.msg, want) != NULL, "message \"%s\" lacks \"%s\"", errs->last.msg, want);
}

static const char *const launch_vars[] = {
    "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK",
    "OMPI_COMM_WORLD_LOCAL_SIZE", "PMI_SIZE", "PMI_RANK", "MPI_LOCALRANKID",
};
static void clear_launch_env(void) {
    for (size_t i = 0; i < sizeof launch_vars / sizeof *launch_vars; i++) unsetenv(launch_vars[i]);
}

/* ---- the launcher's environment ----------------------------------------------------------------- */
START_TEST(test_launch_env) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    clear_launch_env();
    ct_dist_launch L;
    ck_assert_int_eq(ct_dist_launch_env(ctx, &L), CT_OK);
    ck_assert(!L.launched);
    ck_assert_int_eq(L.size, 1);
    ck_assert_int_eq(L.rank, 0);
    ck_assert_str_eq(L.launcher, "none");

    setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
    setenv("OMPI_COMM_WORLD_RANK", "3", 1);
    setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1", 1);
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "2", 1);
    ck_assert_int_eq(ct_dist_launch_env(ctx, &L), CT_OK);
    ck_assert(L.launched);
    ck_assert_int_eq(L.size, 4);
    ck_assert_int_eq(L.rank, 3);
    ck_assert_int_eq(L.local_rank, 1);
    ck_assert_int_eq(L.local_size, 2);
    ck_assert_str_eq(L.launcher, "Open MPI");

    setenv("OMPI_COMM_WORLD_RANK", "4", 1);   /* not below the size */
    ck_assert_int_eq(ct_dist_launch_env(ctx, &L), CT_E_ARG);
    assert_msg_has(&errs, "OMPI_COMM_WORLD_RANK=4 is not below OMPI_COMM_WORLD_SIZE=4");
    setenv("OMPI_COMM_WORLD_RANK", "two", 1);
    ck_assert_int_eq(ct_dist_launch_env(ctx, &L), CT_E_ARG);
    assert_msg_has(&errs, "OMPI_COMM_WORLD_RANK='two' is not a rank");
    setenv("OMPI_COMM_WORLD_SIZE", "0", 1);
    setenv("OMPI_COMM_WORLD_RANK", "0", 1);
    ck_assert_int_eq(ct_dist_launch_env(ctx, &L), CT_E_ARG);
    assert_msg_has(&errs, "OMPI_COMM_WORLD_SIZE='0' is not a process count");
    unsetenv("OMPI_COMM_WORLD_SIZE");
    ck_assert_int_eq(ct_dist_launch_env(ctx, &L), CT_E_ARG);
    assert_msg_has(&errs, "OMPI_COMM_WORLD_RANK is set but OMPI_COMM_WORLD_SIZE is not");
    ck_assert_int_eq(ct_dist_launch_env(NULL, &L), CT_E_ARG);   /* no context: the status alone */

    clear_launch_env();
    setenv("PMI_SIZE", "2", 1);
    setenv("PMI_RANK", "1", 1);
    setenv("MPI_LOCALRANKID", "1", 1);
    ck_assert_int_eq(ct_dist_launch_env(ctx, &L), CT_OK);
    ck_assert(L.launched);
    ck_assert_int_eq(L.size, 2);
    ck_assert_int_eq(L.rank, 1);
    ck_assert_int_eq(L.local_rank, 1);
    ck_assert_int_eq(L.local_size, -1);   /* unknown: ct_dist_new asks MPI */
    ck_assert_str_eq(L.launcher, "PMI");
    clear_launch_env();
    ck_assert_int_eq(ct_dist_launch_env(ctx, NULL), CT_E_ARG);
    ct_ctx_free(ctx);
}
END_TEST

/* A malformed launcher environment fails before MPI is touched; CT_DIST_SINGLE ignores it. */
START_TEST(test_world_options) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    clear_launch_env();
    setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
    setenv("OMPI_COMM_WORLD_RANK", "-1", 1);
    ck_assert_ptr_null(ct_dist_new(ctx, NULL));
    ck_assert_int_eq(ct_ctx_status(ctx), CT_E_ARG);
    assert_msg_has(&errs, "OMPI_COMM_WORLD_RANK='-1'");

    setenv("OMPI_COMM_WORLD_RANK", "1", 1);   /* a valid launch: SINGLE still makes no MPI call */
    ct_dist_opts o = ct_dist_defaults();
    ck_assert_int_eq(o.mode, CT_DIST_AUTO);
    ck_assert_int_eq(o.reduce, CT_DIST_REDUCE_FIXED);
    o.mode = CT_DIST_SINGLE;
    ct_dist *d = ct_dist_new(ctx, &o);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(ct_dist_size(d), 1);
    ck_assert_int_eq(ct_dist_rank(d), 0);
    ck_assert(!ct_dist_uses_mpi(d));
    ct_dist_free(d);
    clear_launch_env();

#ifndef CT_HAVE_MPI
    /* a build without MPI refuses to be one of N > 1 processes (each would train alone) */
    setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
    setenv("OMPI_COMM_WORLD_RANK", "0", 1);
    ck_assert_ptr_null(ct_dist_new(ctx, NULL));
    ck_assert_int_eq(ct_ctx_status(ctx), CT_E_UNSUPPORTED);
    assert_msg_has(&errs, "started by Open MPI as rank 0 of 2, but this build has no MPI");
    setenv("OMPI_COMM_WORLD_SIZE", "1", 1);   /* mpirun -np 1: a world of one is fine */
    d = ct_dist_new(ctx, NULL);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(ct_dist_size(d), 1);
    ct_dist_free(d);
    clear_launch_env();
    o = ct_dist_defaults();
    o.mode = CT_DIST_MPI;
    ck_assert_ptr_null(ct_dist_new(ctx, &o));
    assert_msg_has(&errs, "CT_DIST_MPI asked for, but this build has no MPI");
#endif
    o = ct_dist_defaults();
    o.mode = (ct_dist_mode)9;
    ck_assert_ptr_null(ct_dist_new(ctx, &o));
    assert_msg_has(&errs, "unknown mode 9");
    o = ct_dist_defaults();
    o.reduce = (ct_dist_reduce)7;
    ck_assert_ptr_null(ct_dist_new(ctx, &o));
    assert_msg_has(&errs, "unknown reduce 7");
    ck_assert_ptr_null(ct_dist_new(NULL, NULL));
    ct_dist_free(NULL);
    /* NULL worlds read as the single process */
    ck_assert_int_eq(ct_dist_size(NULL), 1);
    ck_assert_int_eq(ct_dist_rank(NULL), 0);
    ck_assert(ct_dist_is_main(NULL));
    ct_ctx_free(ctx);
}
END_TEST

/* ---- the single-process world ------------------------------------------------------------------- */
static ct_dist *single_world(ct_ctx *ctx) {
    clear_launch_env();
    ct_dist *d = ct_dist_new(ctx, NULL);
    ck_assert_ptr_nonnull(d);
    return d;
}

START_TEST(test_single_world) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_dist *d = single_world(ctx);
    ck_assert_int_eq(ct_dist_rank(d), 0);
    ck_assert_int_eq(ct_dist_size(d), 1);
    ck_assert_int_eq(ct_dist_local_rank(d), 0);
    ck_assert_int_eq(ct_dist_local_size(d), 1);
    ck_assert(ct_dist_is_main(d));
    ck_assert(!ct_dist_uses_mpi(d));
    char buf[128];
    ck_assert_str_eq(ct_dist_describe(d, buf, sizeof buf), "single process");
    ct_dist_abort(d, 3);   /* no MPI world: returns, doing nothing */
    ck_assert_int_eq(ct_dist_barrier(d), CT_OK);
    ct_dist_free(d);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_single_collectives_identity) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_dist *d = single_world(ctx);
    const float f0[6] = {1.5f, -0.0f, NAN, INFINITY, 1e-38f, -3.25f};
    const ct_dist_op ops[4] = {CT_DIST_SUM, CT_DIST_MEAN, CT_DIST_MAX, CT_DIST_MIN};
    for (int k = 0; k < 4; k++) {
        float f[6];
        memcpy(f, f0, sizeof f);
        ck_assert_int_eq(ct_dist_allreduce_f32(d, f, 6, ops[k]), CT_OK);
        ck_assert_int_eq(memcmp(f, f0, sizeof f), 0);   /* bit for bit, NaN and -0 included */
        double x[3] = {1.0 / 3.0, -2.0, 1e300}, x0[3];
        memcpy(x0, x, sizeof x);
        ck_assert_int_eq(ct_dist_allreduce_f64(d, x, 3, ops[k]), CT_OK);
        ck_assert_int_eq(memcmp(x, x0, sizeof x), 0);
        if (ops[k] != CT_DIST_MEAN) {
            int64_t v[2] = {INT64_MAX, -7};
            ck_assert_int_eq(ct_dist_allreduce_i64(d, v, 2, ops[k]), CT_OK);
            ck_assert(v[0] == INT64_MAX && v[1] == -7);
        }
    }
    int64_t v = 5, all[1] = {0};
    ck_assert_int_eq(ct_dist_allreduce_i64(d, &v, 1, CT_DIST_MEAN), CT_E_ARG);
    assert_msg_has(&errs, "MEAN of int64 values would round");
    ck_assert_int_eq(ct_dist_allgather_i64(d, 42, all), CT_OK);
    ck_assert_int_eq(all[0], 42);
    ck_assert_int_eq(ct_dist_allgather_i64(d, 42, NULL), CT_E_ARG);
    float f[2] = {1, 2};
    ck_assert_int_eq(ct_dist_allreduce_f32(d, f, -1, CT_DIST_SUM), CT_E_ARG);
    assert_msg_has(&errs, "n = -1 is negative");
    ck_assert_int_eq(ct_dist_allreduce_f32(d, NULL, 2, CT_DIST_SUM), CT_E_ARG);
    ck_assert_int_eq(ct_dist_allreduce_f32(d, NULL, 0, CT_DIST_SUM), CT_OK);
    ck_assert_int_eq(ct_dist_allreduce_f32(d, f, 2, (ct_dist_op)11), CT_E_ARG);
    ck_assert_int_eq(ct_dist_allreduce_f32(NULL, f, 2, CT_DIST_SUM), CT_E_NULL);
    /* broadcast from rank 0 keeps the data; other roots do not exist */
    ck_assert_int_eq(ct_dist_broadcast_f32(d, f, 2, 0), CT_OK);
    ck_assert(f[0] == 1 && f[1] == 2);
    ck_assert_int_eq(ct_dist_broadcast_f32(d, f, 2, 1), CT_E_ARG);
    assert_msg_has(&errs, "root 1 is not a rank of a world of 1");
    char bytes[3] = "ab";
    ck_assert_int_eq(ct_dist_broadcast_bytes(d, bytes, 3, 0), CT_OK);
    ck_assert_str_eq(bytes, "ab");
    /* tensors */
    ct_tensor *t = TU_RAND(ctx, 3, -1, 1, 4, 3);
    float before[12];
    memcpy(before, ct_data_f32(t), sizeof before);
    ck_assert_int_eq(ct_dist_allreduce_tensor(d, t, CT_DIST_MEAN), CT_OK);
    ck_assert_int_eq(memcmp(before, ct_data_f32(t), sizeof before), 0);
    ck_assert_int_eq(ct_dist_allreduce_tensor(d, ct_transpose(t, 0, 1), CT_DIST_SUM), CT_E_ARG);
    assert_msg_has(&errs, "needs a contiguous float32 tensor");
    ck_assert_int_eq(ct_dist_allreduce_tensor(d, ct_arange(ctx, CT_I64, 4), CT_DIST_SUM), CT_E_DTYPE);
    ck_assert_int_eq(ct_dist_allreduce_tensor(d, NULL, CT_DIST_SUM), CT_E_NULL);
    ct_dist_free(d);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- gradient weights ----------------------------------------------------------------------------- */
START_TEST(test_grad_weight) {
    ck_assert(ct_dist_grad_weight(0, 10) == 0.0f);
    ck_assert(ct_dist_grad_weight(10, 10) == 1.0f);
    ck_assert(ct_dist_grad_weight(3, 12) == 0.25f);
    ck_assert(ct_dist_grad_weight(1, 3) == (float)(1.0 / 3.0));
    ck_assert(ct_dist_grad_weight(5, 0) == 0.0f);
    ck_assert(ct_dist_grad_weight(-1, 4) == 0.0f);
}
END_TEST

START_TEST(test_combine_grads_by_hand) {
    /* rank 0: 1 target, gradient (4, 8); rank 1: 3 targets, mean gradient (4, -8): the global
     * mean is (1 * (4, 8) + 3 * (4, -8)) / 4 = (4, -4) */
    const float g0[2] = {4, 8}, g1[2] = {4, -8};
    const float *gs[2] = {g0, g1};
    float out[2];
    ck_assert_int_eq(ct_dist_combine_grads(out, gs, (const int64_t[]){1, 3}, 2, 2), CT_OK);
    ck_assert(out[0] == 4.0f && out[1] == -4.0f);
    /* a rank with no counted target adds exact zeros, whatever its block holds (NaN) */
    const float gnan[2] = {NAN, INFINITY};
    const float *g3[3] = {g0, gnan, g1};
    ck_assert_int_eq(ct_dist_combine_grads(out, g3, (const int64_t[]){1, 0, 3}, 3, 2), CT_OK);
    ck_assert(out[0] == 4.0f && out[1] == -4.0f);
    const float *g3null[3] = {g0, NULL, g1};   /* NULL is fine for a rank with nothing */
    ck_assert_int_eq(ct_dist_combine_grads(out, g3null, (const int64_t[]){1, 0, 3}, 3, 2), CT_OK);
    ck_assert(out[0] == 4.0f && out[1] == -4.0f);
    /* nothing counted anywhere: zeros */
    ck_assert_int_eq(ct_dist_combine_grads(out, gs, (const int64_t[]){0, 0}, 2, 2), CT_OK);
    ck_assert(out[0] == 0.0f && out[1] == 0.0f);
    /* one rank: its block, bit for bit (in place too) */
    float one[2] = {-0.0f, 1e-30f};
    const float *g1s[1] = {one};
    ck_assert_int_eq(ct_dist_combine_grads(one, g1s, (const int64_t[]){7}, 1, 2), CT_OK);
    ck_assert(one[1] == 1e-30f && signbit(one[0]));
    /* errors */
    ck_assert_int_eq(ct_dist_combine_grads(out, gs, (const int64_t[]){1, -1}, 2, 2), CT_E_ARG);
    ck_assert_int_eq(ct_dist_combine_grads(out, gs, (const int64_t[]){1, 1}, 0, 2), CT_E_ARG);
    ck_assert_int_eq(ct_dist_combine_grads(NULL, gs, (const int64_t[]){1, 1}, 2, 2), CT_E_ARG);
    ck_assert_int_eq(ct_dist_combine_grads(out, g3null, (const int64_t[]){1, 1, 1}, 3, 2), CT_E_ARG);
}
END_TEST

/* ---- sharding ----------------------------------------------------------------------------------------- */
START_TEST(test_shard_range_tiles) {
    for (int64_t rows = 0; rows <= 23; rows++)
        for (int size = 1; size <= 9; size++) {
            int64_t prev_end = 0, mn = INT64_MAX, mx = 0;
            for (int r = 0; r < size; r++) {
                int64_t b, e;
                ct_dist_shard_range(rows, r, size, &b, &e);
                ck_assert_int_eq(b, prev_end);           /* in order, no gap, no overlap */
                ck_assert_int_le(b, e);
                prev_end = e;
                if (e - b < mn) mn = e - b;
                if (e - b > mx) mx = e - b;
            }
            ck_assert_int_eq(prev_end, rows);                /* every row once */
            ck_assert_int_le(mx - mn, 1);                    /* balanced */
        }
    int64_t b = 9, e = 9;
    ct_dist_shard_range(10, 2, 2, &b, &e);                   /* not a rank: empty */
    ck_assert(b == 0 && e == 0);
    ct_dist_shard_range((int64_t)1 << 40, 1, 3, &b, &e);     /* no overflow */
    ck_assert_int_eq(b, ((int64_t)1 << 40) / 3);
    ct_dist_shard_range(10, 0, 3, NULL, NULL);
}
END_TEST

/* n token items of lengths lens[i] (+1 value for the targets), values 10*i + t */
static void token_batch(ct_ctx *ctx, int n, const int64_t *lens, bool batch_first, ct_batch *out) {
    ct_data_item items[8];
    ck_assert_int_le(n, 8);
    for (int i = 0; i < n; i++) {
        int64_t v[64];
        for (int64_t t = 0; t <= lens[i]; t++) v[t] = (10 * i + t) % 7;
        ct_item_init(&items[i]);
        ck_assert_int_eq(ct_item_set_tokens(&items[i], v, lens[i] + 1), CT_OK);
        items[i].index = 100 + i;
    }
    ct_collate_opts o = ct_collate_defaults();
    o.targets = true;
    o.batch_first = batch_first;
    memset(out, 0, sizeof *out);
    ck_assert_int_eq(ct_collate(ctx, items, n, &o, NULL, out), CT_OK);
    for (int i = 0; i < n; i++) ct_item_free(&items[i]);
}

/* element [t, b] ([b, t] when batch_first) of a 2-D or 3-D tensor, w-th value */
static double at(const ct_tensor *x, bool bf, int64_t t, int64_t b, int64_t w) {
    int64_t idx[3] = {bf ? b : t, bf ? t : b, w};
    return ct_get(x, idx);
}

static void check_shards(ct_ctx *ctx, const ct_batch *g, bool bf, int size) {
    int64_t covered = 0;
    int64_t skipped = 0;
    for (int r = 0; r < size; r++) {
        ct_batch s = {0};
        ck_assert_int_eq(ct_batch_shard(ctx, g, bf, r, size, &s), CT_OK);
        int64_t lo, hi;
        ct_dist_shard_range(g->rows, r, size, &lo, &hi);
        ck_assert_int_eq(s.rows, hi - lo);
        ck_assert_int_eq(s.kind, g->kind);
        ck_assert_int_eq(s.width, g->width);
        ck_assert_int_eq(s.epoch, g->epoch);
        skipped += s.skipped;
        if (s.rows == 0) {
            ck_assert_ptr_null(s.inputs);
            ck_assert_ptr_null(s.lengths);
            ck_assert_int_eq(s.steps, 0);
            ct_batch_clear(&s);
            continue;
        }
        int64_t T = 0;
        for (int64_t i = 0; i < s.rows; i++) {
            const int64_t L = ct_data_i64(s.lengths)[i];
            ck_assert_int_eq(L, ct_data_i64(g->lengths)[lo + i]);
            if (L > T) T = L;
            ck_assert_int_eq(s.index[i], g->index[lo + i]);
            ck_assert_int_eq(s.offset[i], g->offset[lo + i]);
            ck_assert_int_eq(s.piece_id[i], g->piece_id[lo + i]);
        }
        ck_assert_int_eq(s.steps, T);                 /* only padding was cut */
        ck_assert(ct_is_contiguous(s.inputs) && ct_is_contiguous(s.targets) && ct_is_contiguous(s.mask));
        ck_assert_int_eq(s.inputs->ndim, g->inputs->ndim);
        ck_assert_int_eq(s.inputs->shape[bf ? 0 : 1], s.rows);
        ck_assert_int_eq(s.inputs->shape[bf ? 1 : 0], T);
        for (int64_t i = 0; i < s.rows; i++)
            for (int64_t t = 0; t < T; t++) {
                for (int64_t w = 0; w < (s.kind == CT_ITEM_TOKENS ? 1 : s.width); w++) {
                    ck_assert(at(s.inputs, bf, t, i, w) == at(g->inputs, bf, t, lo + i, w));
                    ck_assert(at(s.targets, bf, t, i, w) == at(g->targets, bf, t, lo + i, w));
                }
                ck_assert(at(s.mask, bf, t, i, 0) == at(g->mask, bf, t, lo + i, 0));
            }
        ck_assert_int_eq(s.items, s.rows);
        covered += s.rows;
        ct_batch_clear(&s);
    }
    ck_assert_int_eq(covered, g->rows);
    ck_assert_int_eq(skipped, g->skipped);
}

START_TEST(test_batch_shard_tokens) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    const int64_t lens[5] = {3, 9, 1, 6, 4};
    for (int bf = 0; bf < 2; bf++) {
        ct_scope_begin(ctx);
        ct_batch g;
        token_batch(ctx, 5, lens, bf, &g);
        g.skipped = 2;
        g.epoch = 4;
        for (int size = 1; size <= 7; size++) check_shards(ctx, &g, bf, size);
        /* the whole batch is shard 0 of 1 */
        ct_batch s = {0};
        ck_assert_int_eq(ct_batch_shard(ctx, &g, bf, 0, 1, &s), CT_OK);
        ck_assert_int_eq(s.rows, 5);
        ck_assert_int_eq(s.steps, 9);
        ck_assert_int_eq(s.skipped, 2);
        /* shard 1 of 2 (rows 2..4, lengths 1, 6, 4) is cut to 6 steps */
        ck_assert_int_eq(ct_batch_shard(ctx, &g, bf, 1, 2, &s), CT_OK);
        ck_assert_int_eq(s.rows, 3);
        ck_assert_int_eq(s.steps, 6);
        ck_assert_int_eq(s.skipped, 0);
        ct_batch_clear(&s);
        ct_batch_clear(&g);
        ct_scope_end(ctx);
    }
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_batch_shard_frames) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_data_item items[4];
    const int64_t lens[4] = {5, 2, 7, 3};
    for (int i = 0; i < 4; i++) {
        float v[8 * 3];
        for (int k = 0; k < (int)(lens[i] + 1) * 3; k++) v[k] = (float)(i * 100 + k);
        ct_item_init(&items[i]);
        ck_assert_int_eq(ct_item_set_frames(&items[i], v, lens[i] + 1, 3), CT_OK);
    }
    for (int bf = 0; bf < 2; bf++) {
        ct_scope_begin(ctx);
        ct_collate_opts o = ct_collate_defaults();
        o.targets = true;
        o.batch_first = bf;
        ct_batch g = {0};
        ck_assert_int_eq(ct_collate(ctx, items, 4, &o, NULL, &g), CT_OK);
        for (int size = 1; size <= 5; size++) check_shards(ctx, &g, bf, size);
        ct_batch_clear(&g);
        ct_scope_end(ctx);
    }
    for (int i = 0; i < 4; i++) ct_item_free(&items[i]);
    ct_ctx_free(ctx);
}
END_TEST

/* Consecutive windows make several rows of one item: a shard counts the distinct items. */
START_TEST(test_batch_shard_items) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_data_item items[2];
    int64_t v[12];
    for (int t = 0; t < 12; t++) v[t] = t % 5;
    for (int i = 0; i < 2; i++) {
        ct_item_init(&items[i]);
        ck_assert_int_eq(ct_item_set_tokens(&items[i], v, i == 0 ? 12 : 4), CT_OK);
        items[i].index = i;
    }
    ct_collate_opts o = ct_collate_defaults();
    o.targets = true;
    o.max_len = 4;
    o.window = CT_WINDOW_CONSECUTIVE;
    ct_batch g = {0}, s = {0};
    ck_assert_int_eq(ct_collate(ctx, items, 2, &o, NULL, &g), CT_OK);
    ck_assert_int_eq(g.rows, 4);   /* item 0: three windows (4, 4, 3 steps); item 1: one */
    ck_assert_int_eq(ct_batch_shard(ctx, &g, false, 0, 2, &s), CT_OK);
    ck_assert_int_eq(s.rows, 2);
    ck_assert_int_eq(s.items, 1);
    ck_assert_int_eq(ct_batch_shard(ctx, &g, false, 1, 2, &s), CT_OK);
    ck_assert_int_eq(s.items, 2);
    ct_batch_clear(&s);
    ct_batch_clear(&g);
    for (int i = 0; i < 2; i++) ct_item_free(&items[i]);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_batch_shard_errors) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_batch g, s = {0};
    token_batch(ctx, 3, (const int64_t[]){2, 5, 3}, false, &g);
    ck_assert_int_eq(ct_batch_shard(ctx, &g, false, 2, 2, &s), CT_E_ARG);
    assert_msg_has(&errs, "rank 2 of a world of 2");
    ck_assert_int_eq(ct_batch_shard(ctx, &g, false, 0, 0, &s), CT_E_ARG);
    ck_assert_int_eq(ct_batch_shard(ctx, NULL, false, 0, 1, &s), CT_E_ARG);
    ck_assert_int_eq(ct_batch_shard(ctx, &g, false, 0, 1, NULL), CT_E_ARG);
    ck_assert_int_eq(ct_batch_shard(ctx, &g, true, 0, 1, &s), CT_E_SHAPE);   /* [5, 3] is time-major */
    assert_msg_has(&errs, "is batch_first (true) what the batch was collated with?");
    ct_batch bad = g;
    bad.mask = NULL;
    ck_assert_int_eq(ct_batch_shard(ctx, &bad, false, 0, 1, &s), CT_E_ARG);
    assert_msg_has(&errs, "lacks a mask");
    ct_data_i64(g.lengths)[1] = 9;   /* beyond the batch's steps */
    ck_assert_int_eq(ct_batch_shard(ctx, &g, false, 0, 1, &s), CT_E_ARG);
    assert_msg_has(&errs, "row 1 has length 9");
    ck_assert_int_eq(s.rows, 0);
    ct_batch_clear(&g);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- data-parallel gradients equal the full batch's ----------------------------------------------- */
typedef struct lm { ct_module *root, *emb, *rnn, *out; } lm;
enum { V = 7, E = 5, H = 8 };

static lm lm_new(ct_ctx *ctx) {
    ct_rng rng;
    ct_rng_seed(&rng, 99);
    lm m;
    m.root = ct_module_new(ctx, "LM", 0);
    m.emb = ct_embedding_module_new(ctx, &rng, V, E);
    ct_rnn_config rc = {.mode = CT_LSTM, .input_size = E, .hidden_size = H, .num_layers = 2, .bias = true};
    m.rnn = ct_rnn_new(ctx, &rng, &rc);
    m.out = ct_linear_new(ctx, &rng, H, V, true);
    ck_assert_ptr_nonnull(m.rnn);
    ck_assert_int_eq(ct_module_add_child(m.root, "embed", m.emb), CT_OK);
    ck_assert_int_eq(ct_module_add_child(m.root, "rnn", m.rnn), CT_OK);
    ck_assert_int_eq(ct_module_add_child(m.root, "out", m.out), CT_OK);
    ck_assert_int_eq(ct_module_flatten(m.root), CT_OK);
    return m;
}

/* backward of the mean cross-entropy over the counted targets of b; returns the count */
static int64_t lm_backward(lm *m, const ct_batch *b) {
    ct_module_zero_grad(m->root);
    if (b->rows == 0) return 0;
    ct_tensor *out = NULL;
    ck_assert_int_eq(ct_rnn_forward_embedded(m->rnn, ct_module_param(m->emb, "weight"), b->inputs, b->lengths,
                                             NULL, NULL, NULL, &out, NULL, NULL),
                     CT_OK);
    const int64_t n = b->steps * b->rows;
    ct_tensor *logits = ct_linear_forward(m->out, ct_reshape(out, n, H));
    ct_tensor *loss = ct_cross_entropy(logits, ct_reshape(b->targets, n), -100);
    ck_assert_ptr_nonnull(loss);
    ck_assert_int_eq(ct_backward(loss), CT_OK);
    int64_t count = 0;
    for (int64_t i = 0; i < n; i++) count += ct_data_i64(b->targets)[i] != -100;
    return count;
}

START_TEST(test_simulated_ranks_match_full_batch) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    lm m = lm_new(ctx);
    const int64_t P = ct_module_num_params(m.root);
    const int64_t lens[6] = {3, 9, 1, 6, 4, 7};   /* padding everywhere but the longest row */
    ct_scope_begin(ctx);
    ct_batch g;
    token_batch(ctx, 6, lens, false, &g);
    const int64_t full_count = lm_backward(&m, &g);
    ck_assert_int_eq(full_count, 3 + 9 + 1 + 6 + 4 + 7);
    float *full = malloc(sizeof(float) * (size_t)P);
    memcpy(full, ct_data_f32(ct_module_flat_grads(m.root)), sizeof(float) * (size_t)P);
    double scale = 0;
    for (int64_t i = 0; i < P; i++) scale = fmax(scale, fabs(full[i]));
    ck_assert(scale > 1e-3);

    for (int size = 2; size <= 8; size++) {   /* 7, 8: some ranks have no rows */
        float **gs = calloc((size_t)size, sizeof(float *));
        int64_t *counts = calloc((size_t)size, sizeof(int64_t)), total = 0;
        for (int r = 0; r < size; r++) {
            ct_batch s = {0};
            ck_assert_int_eq(ct_batch_shard(ctx, &g, false, r, size, &s), CT_OK);
            counts[r] = lm_backward(&m, &s);
            total += counts[r];
            if (counts[r] > 0) {
                gs[r] = malloc(sizeof(float) * (size_t)P);
                memcpy(gs[r], ct_data_f32(ct_module_flat_grads(m.root)), sizeof(float) * (size_t)P);
            }
            ct_batch_clear(&s);
        }
        ck_assert_int_eq(total, full_count);
        float *comb = malloc(sizeof(float) * (size_t)P);
        ck_assert_int_eq(ct_dist_combine_grads(comb, (const float *const *)gs, counts, size, P), CT_OK);
        for (int64_t i = 0; i < P; i++)
            ck_assert_msg(fabs(comb[i] - full[i]) <= 1e-5 * fabs(full[i]) + 1e-6 * scale,
                          "%d ranks: gradient %lld: combined %.9g, full batch %.9g", size, (long long)i,
                          comb[i], full[i]);
        /* the unweighted mean of the ranks' gradients is NOT the full batch's (rows differ in
         * length): the weighting is what makes it right */
        if (size == 2) {
            double worst = 0;
            for (int64_t i = 0; i < P; i++)
                worst = fmax(worst, fabs(0.5 * (gs[0][i] + gs[1][i]) - full[i]) / scale);
            ck_assert_msg(worst > 1e-3, "the plain mean matched too (%g): the test has no teeth", worst);
        }
        for (int r = 0; r < size; r++) free(gs[r]);
        free(gs);
        free(counts);
        free(comb);
    }
    free(full);
    ct_batch_clear(&g);
    ct_scope_end(ctx);
    ct_module_free(m.root);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_average_grads_single) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_dist *d = single_world(ctx);
    lm m = lm_new(ctx);
    const int64_t P = ct_module_num_params(m.root);
    float *g = ct_data_f32(ct_module_flat_grads(m.root));
    for (int64_t i = 0; i < P; i++) g[i] = (float)i * 0.001f - 0.5f;
    float *keep = malloc(sizeof(float) * (size_t)P);
    memcpy(keep, g, sizeof(float) * (size_t)P);
    ck_assert_int_eq(ct_dist_average_grads(d, m.root, 17, 17), CT_OK);
    ck_assert_int_eq(memcmp(keep, g, sizeof(float) * (size_t)P), 0);   /* unchanged, bit for bit */
    g[3] = NAN;
    ck_assert_int_eq(ct_dist_average_grads(d, m.root, 0, 0), CT_OK);   /* nothing counted: zeros */
    for (int64_t i = 0; i < P; i++) ck_assert(g[i] == 0.0f);
    ck_assert_int_eq(ct_dist_average_grads(d, m.root, 5, 4), CT_E_ARG);
    assert_msg_has(&errs, "count 5 must be in [0, global_count = 4]");
    ck_assert_int_eq(ct_dist_average_grads(d, m.root, -1, 4), CT_E_ARG);
    ck_assert_int_eq(ct_dist_average_grads(d, NULL, 1, 1), CT_E_NULL);
    ck_assert_int_eq(ct_dist_broadcast_params(d, m.root), CT_OK);
    ck_assert_int_eq(ct_dist_check_params(d, m.root), CT_OK);
    free(keep);
    ct_module_free(m.root);
    ct_dist_free(d);
    ct_ctx_free(ctx);
}
END_TEST

/* The host round trip that a device block takes without NCCL, run on the CPU by
 * stage_through_host: the same blocks as the ordinary path, bit for bit. */
static void fill_grads(float *g, int64_t P) {
    for (int64_t i = 0; i < P; i++) g[i] = (float)i * 0.0013f - 0.7f;
}

START_TEST(test_average_grads_staged_through_host) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ck_assert(!ct_dist_defaults().stage_through_host);
    clear_launch_env();
    ct_dist *plain = ct_dist_new(ctx, NULL);
    ct_dist_opts o = ct_dist_defaults();
    o.stage_through_host = true;
    ct_dist *staged = ct_dist_new(ctx, &o);
    ck_assert(plain && staged);
    lm a = lm_new(ctx), b = lm_new(ctx);
    const int64_t P = ct_module_num_params(a.root);
    float *ga = ct_data_f32(ct_module_flat_grads(a.root)), *gb = ct_data_f32(ct_module_flat_grads(b.root));
    const int64_t cases[][2] = {{17, 17}, {3, 4}, {1, 3}, {0, 5}, {0, 0}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        fill_grads(ga, P);
        fill_grads(gb, P);
        ga[2] = gb[2] = cases[c][0] == 0 ? NAN : ga[2];   /* count 0: zeros even over NaN */
        ct_tensor *tb = ct_module_flat_grads(b.root);
        const uint64_t v0 = tb->storage->version;
        ck_assert_int_eq(ct_dist_average_grads(plain, a.root, cases[c][0], cases[c][1]), CT_OK);
        ck_assert_int_eq(ct_dist_average_grads(staged, b.root, cases[c][0], cases[c][1]), CT_OK);
        ck_assert_int_eq(memcmp(ga, gb, sizeof(float) * (size_t)P), 0);
        ck_assert_uint_gt(tb->storage->version, v0);   /* written back in place */
        if (cases[c][1] == 4) ck_assert(gb[5] == (float)(((float)5 * 0.0013f - 0.7f) * 0.75f));
        if (cases[c][0] == 0) ck_assert(gb[2] == 0.0f && gb[P - 1] == 0.0f);
    }
    ck_assert_int_eq(ct_dist_average_grads(staged, b.root, 5, 4), CT_E_ARG);
    /* the parameters: unchanged by the broadcast of a single world, and agreeing */
    float *pb = ct_data_f32(ct_module_flat_params(b.root));
    float *keep = malloc(sizeof(float) * (size_t)P);
    memcpy(keep, pb, sizeof(float) * (size_t)P);
    ck_assert_int_eq(ct_dist_broadcast_params(staged, b.root), CT_OK);
    ck_assert_int_eq(memcmp(keep, pb, sizeof(float) * (size_t)P), 0);
    ck_assert_int_eq(ct_dist_check_params(staged, b.root), CT_OK);
    free(keep);
    ct_module_free(a.root);
    ct_module_free(b.root);
    ct_dist_free(plain);
    ct_dist_free(staged);
    ct_ctx_free(ctx);
}
END_TEST

/* Flat blocks on a CUDA device: in a single world the same as the CPU's (nothing when
 * count == global_count, zeros for count 0, the weight applied on the device), staged through
 * the host too, after ct_dist_gpu_init as before it. Skipped without a device. */
START_TEST(test_average_grads_on_device) {
    char why[256];
    if (!ct_device_available(CT_DEVICE_CUDA(0), why, sizeof why)) {
        printf("dist: skipped — device gradient blocks (no CUDA device): %s\n", why);
        return;
    }
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_dist *d = single_world(ctx);
    ct_dist_opts o = ct_dist_defaults();
    o.stage_through_host = true;
    ct_dist *staged = ct_dist_new(ctx, &o);
    lm a = lm_new(ctx), b = lm_new(ctx);
    const int64_t P = ct_module_num_params(a.root);
    float *want = malloc(sizeof(float) * (size_t)P), *got = malloc(sizeof(float) * (size_t)P);
    ck_assert_int_eq(ct_module_to(b.root, CT_DEVICE_CUDA(0)), CT_OK);
    const int64_t cases[][2] = {{17, 17}, {3, 4}, {0, 5}};
    for (int pass = 0; pass < 3; pass++) {
        ct_dist *w = pass == 1 ? staged : d;
        if (pass == 2) {
            int dev = -1;
            ck_assert_int_eq(ct_dist_gpu_init(d, &dev), CT_OK);
            ck_assert_int_eq(dev, 0);
        }
        for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
            float *ga = ct_data_f32(ct_module_flat_grads(a.root));
            fill_grads(ga, P);
            ct_tensor *host = ct_from_f32(ctx, ga, 1, (const int64_t[]){P});
            ck_assert_int_eq(ct_inplace_copy(ct_module_flat_grads(b.root), ct_to(host, CT_DEVICE_CUDA(0))), CT_OK);
            ck_assert_int_eq(ct_dist_average_grads(d, a.root, cases[c][0], cases[c][1]), CT_OK);
            ck_assert_int_eq(ct_dist_average_grads(w, b.root, cases[c][0], cases[c][1]), CT_OK);
            memcpy(want, ga, sizeof(float) * (size_t)P);
            ck_assert_int_eq(ct_copy_to_host(ct_module_flat_grads(b.root), got, sizeof(float) * (size_t)P), CT_OK);
            ck_assert_int_eq(memcmp(want, got, sizeof(float) * (size_t)P), 0);
        }
        ck_assert_int_eq(ct_dist_broadcast_params(w, b.root), CT_OK);
        ck_assert_int_eq(ct_dist_check_params(w, b.root), CT_OK);
    }
    free(want);
    free(got);
    ct_module_free(a.root);
    ct_module_free(b.root);
    ct_dist_free(staged);
    ct_dist_free(d);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- resuming with the same world ----------------------------------------------------------------- */
static uint32_t fnv1a(const uint8_t *p, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }

START_TEST(test_world_state) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_dist *d = single_world(ctx);
    uint8_t st[CT_DIST_STATE_BYTES];
    ct_dist_state_save(d, st);
    ck_assert_int_eq(memcmp(st, "CTDW", 4), 0);
    ck_assert_int_eq(st[8], 1);
    ck_assert_int_eq(ct_dist_state_check(d, st, sizeof st), CT_OK);
    ck_assert_int_eq(ct_dist_state_check(d, st, sizeof st - 1), CT_E_FORMAT);
    assert_msg_has(&errs, "has 15 bytes; expected 16");
    st[8] = 2;   /* the checksum no longer fits */
    ck_assert_int_eq(ct_dist_state_check(d, st, sizeof st), CT_E_FORMAT);
    assert_msg_has(&errs, "bad checksum");
    put32(st + 12, fnv1a(st, 12));   /* a valid state saved by 2 processes */
    ck_assert_int_eq(ct_dist_state_check(d, st, sizeof st), CT_E_STATE);
    assert_msg_has(&errs, "saved by 2 processes and is resumed by 1; resume it with mpirun -np 2");
    put32(st + 4, 2);
    put32(st + 12, fnv1a(st, 12));
    ck_assert_int_eq(ct_dist_state_check(d, st, sizeof st), CT_E_FORMAT);
    assert_msg_has(&errs, "version 2");
    st[0] = 'X';
    ck_assert_int_eq(ct_dist_state_check(d, st, sizeof st), CT_E_FORMAT);
    assert_msg_has(&errs, "bad magic");
    ck_assert_int_eq(ct_dist_state_check(d, NULL, 16), CT_E_FORMAT);
    ct_dist_free(d);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- GPUs ------------------------------------------------------------------------------------------ */
START_TEST(test_gpu_absent) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    char why[160];
    if (ct_cuda_device_count(why, sizeof why) > 0) {   /* a machine with a GPU: nothing to check */
        ct_ctx_free(ctx);
        return;
    }
    lm m = lm_new(ctx);
    ck_assert_ptr_null(ct_data_parallel_new(m.root, NULL, 0));
    ck_assert_int_eq(ct_ctx_status(ctx), CT_E_DEVICE);
    assert_msg_has(&errs, "DataParallel: no CUDA device (");
    assert_msg_has(&errs, why);
    assert_msg_has(&errs, "mpirun");
    ct_dist *d = single_world(ctx);
    int dev = 7;
    ck_assert_int_ne(ct_dist_gpu_init(d, &dev), CT_OK);
    ck_assert_int_eq(dev, 7);
    assert_msg_has(&errs, "CUDA");
    ct_dist_free(d);
    ct_module_free(m.root);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_data_parallel_one_device_is_a_noop) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    lm m = lm_new(ctx);
    /* the test mode keeps replica 0 on the CPU (a real one GPU wants the model on cuda:0) */
    ct_data_parallel *dp = ct__data_parallel_new_with(m.root, NULL, 0, 1, "", CT__DP_CPU_REPLICAS);
    ck_assert_ptr_nonnull(dp);
    ck_assert_int_eq(ct_data_parallel_size(dp), 1);
    ck_assert_ptr_eq(ct_data_parallel_replica(dp, 0), m.root);
    ck_assert_ptr_null(ct_data_parallel_replica(dp, 1));
    ct_device dv = ct_data_parallel_device(dp, 0);
    ck_assert(dv.type == CT_CPU);
    ct_scope_begin(ctx);
    ct_batch g, part = {0};
    token_batch(ctx, 3, (const int64_t[]){4, 2, 5}, false, &g);
    ck_assert_int_eq(ct_data_parallel_scatter(dp, &g, false, 0, &part), CT_OK);
    ck_assert_int_eq(part.rows, 3);
    ck_assert_int_eq(part.steps, 5);
    const int64_t count = lm_backward(&m, &part);
    const int64_t P = ct_module_num_params(m.root);
    float *keep = malloc(sizeof(float) * (size_t)P);
    memcpy(keep, ct_data_f32(ct_module_flat_grads(m.root)), sizeof(float) * (size_t)P);
    ck_assert_int_eq(ct_data_parallel_reduce_grads(dp, &count), CT_OK);
    ck_assert_int_eq(memcmp(keep, ct_data_f32(ct_module_flat_grads(m.root)), sizeof(float) * (size_t)P), 0);
    ck_assert_int_eq(ct_data_parallel_broadcast_params(dp), CT_OK);
    ck_assert_int_eq(ct_data_parallel_reduce_grads(dp, NULL), CT_E_ARG);
    free(keep);
    ct_batch_clear(&part);
    ct_batch_clear(&g);
    ct_scope_end(ctx);
    ct_data_parallel_free(dp);
    dp = ct__data_parallel_new_with(m.root, (const int[]){0}, 1, 1, "", CT__DP_CPU_REPLICAS);   /* cuda:0 by name */
    ck_assert_ptr_nonnull(dp);
    ct_data_parallel_free(dp);
    ct_data_parallel_free(NULL);
    ck_assert_int_eq(ct_data_parallel_size(NULL), 0);
    ct_module_free(m.root);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_data_parallel_errors) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    lm m = lm_new(ctx);
    ck_assert_ptr_null(ct__data_parallel_new_with(m.root, NULL, 0, 0, "no CUDA device present", CT__DP_AUTO));
    assert_msg_has(&errs, "DataParallel: no CUDA device (no CUDA device present)");
    ck_assert_ptr_null(ct__data_parallel_new_with(m.root, NULL, 0, 2, "", CT__DP_AUTO));   /* model on the CPU */
    ck_assert_int_eq(ct_ctx_status(ctx), CT_E_DEVICE);
    assert_msg_has(&errs, "the model is on cpu, but replica 0 (the model itself) lives on cuda:0");
    assert_msg_has(&errs, "ct_module_to(model, cuda:0)");
    ck_assert_ptr_null(ct__data_parallel_new_with(m.root, (const int[]){1}, 1, 1, "", CT__DP_AUTO));
    ck_assert_int_eq(ct_ctx_status(ctx), CT_E_DEVICE);
    assert_msg_has(&errs, "cuda:1 asked for, but there is only one CUDA device (cuda:0)");
    ck_assert_ptr_null(ct__data_parallel_new_with(m.root, (const int[]){0, 0}, 2, 2, "", CT__DP_AUTO));
    assert_msg_has(&errs, "cuda:0 is listed twice");
    ck_assert_ptr_null(ct__data_parallel_new_with(m.root, (const int[]){-1}, 1, 2, "", CT__DP_AUTO));
    assert_msg_has(&errs, "device index -1 is negative");
    ck_assert_ptr_null(ct__data_parallel_new_with(m.root, NULL, 1, 2, "", CT__DP_AUTO));
    ck_assert_int_eq(ct_ctx_status(ctx), CT_E_ARG);
    ck_assert_ptr_null(ct_data_parallel_new(NULL, NULL, 0));
    ct_module_free(m.root);
    ct_ctx_free(ctx);
}
END_TEST

Suite *dist_suite(void) {
    Suite *s = suite_create("dist");
    TCase *tc = tcase_create("dist");
    tcase_add_test(tc, test_launch_env);
    tcase_add_test(tc, test_world_options);
    tcase_add_test(tc, test_single_world);
    tcase_add_test(tc, test_single_collectives_identity);
    tcase_add_test(tc, test_grad_weight);
    tcase_add_test(tc, test_combine_grads_by_hand);
    tcase_add_test(tc, test_shard_range_tiles);
    tcase_add_test(tc, test_batch_shard_tokens);
    tcase_add_test(tc, test_batch_shard_frames);
    tcase_add_test(tc, test_batch_shard_items);
    tcase_add_test(tc, test_batch_shard_errors);
    tcase_add_test(tc, test_simulated_ranks_match_full_batch);
    tcase_add_test(tc, test_average_grads_single);
    tcase_add_test(tc, test_average_grads_staged_through_host);
    tcase_add_test(tc, test_average_grads_on_device);
    tcase_add_test(tc, test_world_state);
    tcase_add_test(tc, test_gpu_absent);
    tcase_add_test(tc, test_data_parallel_one_device_is_a_noop);
    tcase_add_test(tc, test_data_parallel_errors);
    suite_add_tcase(s, tc);
    return s;
}
