/* tests/tools/dist_train_check.c — the multi-process checks of engine/parallel/ (run by
 * tests/check_mpi.sh, under mpirun and alone). Not a unit test: it needs mpirun.
 *
 *   dist_train_check primitives
 *       every collective against values each rank can compute alone (fixed-order sums are
 *       compared bit for bit with ct_dist_combine_grads' arithmetic), broadcast, allgather,
 *       the parameter-divergence check, the world-size state.
 *   dist_train_check train OUT.npy [--steps N] [--simulate K] [--save-at S DIR] [--resume DIR]
 *       trains a small token LSTM (2 layers, Adam, clipping at 1.0) on variable-length
 *       sequences (padding in every batch, global batch 8, random windows of 16, crossing an
 *       epoch boundary) data-parallel over the world (each rank takes ct_batch_shard of every
 *       global batch; gradients weighted by token counts with ct_dist_average_grads), and
 *       writes the final flat parameter block from rank 0. --simulate K: one process computes
 *       the K shards one after the other and combines them with ct_dist_combine_grads (what K
 *       ranks must match bit for bit). --save-at S DIR: rank 0 writes the weights, the
 *       training state (optimizer, step, loader position + world size) after step S into
 *       DIR; --resume DIR: every rank loads them and continues.
 *   dist_train_check --mpi-reduce train ...
 *       the same with MPI_Allreduce (Open MPI's order) instead of the fixed-order reduction.
 *   dist_train_check compare A B RTOL
 *       max |a - b| / max|b| over two .npy files, or over every float32 tensor of two
 *       .safetensors files (by name); exit 1 above RTOL (RTOL 0: bit for bit).
 *
 * Exit status 0 on success; messages on stderr name the rank. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cantor.h"
#include "engine/parallel/dist.h"
#include "models/composer.h"

static int fail(ct_dist *d, const char *what, ct_ctx *ctx) {
    fprintf(stderr, "dist_train_check: rank %d: %s: %s\n", ct_dist_rank(d), what, ctx ? ct_ctx_error(ctx) : "");
    return 1;
}

#define CHECK(cond, ...)                                                                        \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "dist_train_check: rank %d: line %d: ", ct_dist_rank(d), __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                                       \
            fprintf(stderr, "\n");                                                              \
            return 1;                                                                           \
        }                                                                                       \
    } while (0)

/* ---- primitives ------------------------------------------------------------------------------------ */
static float val(int rank, int64_t i) { return (float)sin(0.37 * (double)i + 1.3 * rank) * (float)(1 + (i % 7)) / 3.0f; }

static int primitives(ct_ctx *ctx, ct_dist *d) {
    const int R = ct_dist_rank(d), N = ct_dist_size(d);
    CHECK(N >= 2, "run me under mpirun with at least 2 processes (world of %d)", N);
    /* float sums: an array longer than one reduction round would be nice but slow; odd sizes */
    const int64_t sizes[] = {0, 1, 3, 1000, 100003};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        const int64_t n = sizes[k];
        float *x = malloc(sizeof(float) * (size_t)(n + 1)), *want = malloc(sizeof(float) * (size_t)(n + 1));
        float **all = malloc(sizeof(float *) * (size_t)N);
        int64_t *ones = malloc(sizeof(int64_t) * (size_t)N);
        for (int r = 0; r < N; r++) {
            all[r] = malloc(sizeof(float) * (size_t)(n + 1));
            for (int64_t i = 0; i < n; i++) all[r][i] = val(r, i);
            ones[r] = 1;
        }
        for (int64_t i = 0; i < n; i++) x[i] = val(R, i);
        CHECK(ct_dist_allreduce_f32(d, x, n, CT_DIST_SUM) == CT_OK, "allreduce_f32: %s", ct_ctx_error(ctx));
        for (int64_t i = 0; i < n; i++) {   /* the fixed order: rank 0 first, in double */
            double acc = all[0][i];
            for (int r = 1; r < N; r++) acc += (double)all[r][i];
            CHECK(x[i] == (float)acc, "allreduce SUM n=%lld element %lld: %.9g, want %.9g", (long long)n,
                  (long long)i, x[i], (float)acc);
        }
        /* equal counts: ct_dist_combine_grads with weights 1/N is the mean of the weighted blocks */
        for (int64_t i = 0; i < n; i++) x[i] = val(R, i);
        CHECK(ct_dist_allreduce_f32(d, x, n, CT_DIST_MAX) == CT_OK, "max");
        for (int64_t i = 0; i < n; i++) {
            float m = all[0][i];
            for (int r = 1; r < N; r++) m = all[r][i] > m ? all[r][i] : m;
            CHECK(x[i] == m, "allreduce MAX element %lld", (long long)i);
        }
        for (int64_t i = 0; i < n; i++) x[i] = val(R, i);
        CHECK(ct_dist_allreduce_f32(d, x, n, CT_DIST_MEAN) == CT_OK, "mean");
        for (int64_t i = 0; i < n; i++) {
            double acc = all[0][i];
            for (int r = 1; r < N; r++) acc += (double)all[r][i];
            CHECK(x[i] == (float)(acc / N), "allreduce MEAN element %lld", (long long)i);
        }
        if (n > 0) {   /* weighted: what average_grads does, against combine_grads */
            int64_t *cnt = malloc(sizeof(int64_t) * (size_t)N), tot = 0;
            for (int r = 0; r < N; r++) tot += cnt[r] = (r * 5 + 3) % 11;   /* 3, 8, 2, 7, ... */
            for (int64_t i = 0; i < n; i++) x[i] = val(R, i);
            const float w = ct_dist_grad_weight(cnt[R], tot);
            for (int64_t i = 0; i < n; i++) x[i] = w == 0 ? 0.0f : w == 1 ? x[i] : x[i] * w;
            CHECK(ct_dist_allreduce_f32(d, x, n, CT_DIST_SUM) == CT_OK, "weighted sum");
            CHECK(ct_dist_combine_grads(want, (const float *const *)all, cnt, N, n) == CT_OK, "combine");
            CHECK(memcmp(x, want, sizeof(float) * (size_t)n) == 0, "weighted allreduce differs from "
                  "ct_dist_combine_grads (n = %lld)", (long long)n);
            free(cnt);
        }
        for (int r = 0; r < N; r++) free(all[r]);
        free(all);
        free(ones);
        free(x);
        free(want);
    }
    /* doubles and integers */
    double dv[3] = {0.1 * (R + 1), -1.0 * R, R == 1 ? NAN : 1.0};
    CHECK(ct_dist_allreduce_f64(d, dv, 3, CT_DIST_SUM) == CT_OK, "f64");
    double s0 = 0.1, s1 = 0;
    for (int r = 1; r < N; r++) {
        s0 += 0.1 * (r + 1);
        s1 += -1.0 * r;
    }
    CHECK(dv[0] == s0 && dv[1] == s1 && isnan(dv[2]), "f64 SUM: %.17g %.17g %g", dv[0], dv[1], dv[2]);
    int64_t iv[3] = {R + 1, (int64_t)1 << 40, -R};
    CHECK(ct_dist_allreduce_i64(d, iv, 3, CT_DIST_SUM) == CT_OK, "i64");
    CHECK(iv[0] == (int64_t)N * (N + 1) / 2 && iv[1] == ((int64_t)N << 40) && iv[2] == -(int64_t)N * (N - 1) / 2,
          "i64 SUM: %lld %lld %lld", (long long)iv[0], (long long)iv[1], (long long)iv[2]);
    int64_t mx[2] = {R, -R};
    CHECK(ct_dist_allreduce_i64(d, mx, 2, CT_DIST_MAX) == CT_OK && mx[0] == N - 1 && mx[1] == 0, "i64 MAX");
    int64_t mn[1] = {R + 10};
    CHECK(ct_dist_allreduce_i64(d, mn, 1, CT_DIST_MIN) == CT_OK && mn[0] == 10, "i64 MIN");
    int64_t *g = malloc(sizeof(int64_t) * (size_t)N);
    CHECK(ct_dist_allgather_i64(d, 100 + R, g) == CT_OK, "allgather");
    for (int r = 0; r < N; r++) CHECK(g[r] == 100 + r, "allgather[%d] = %lld", r, (long long)g[r]);
    free(g);
    /* broadcast from the last rank */
    float b[5];
    for (int i = 0; i < 5; i++) b[i] = (float)(R * 10 + i);
    CHECK(ct_dist_broadcast_f32(d, b, 5, N - 1) == CT_OK, "broadcast");
    for (int i = 0; i < 5; i++) CHECK(b[i] == (float)((N - 1) * 10 + i), "broadcast[%d] = %g", i, b[i]);
    CHECK(ct_dist_barrier(d) == CT_OK, "barrier");
    /* parameters: broadcast makes them agree; a change on one rank is caught */
    ct_rng rng;
    ct_rng_seed(&rng, 1000 + (uint64_t)R);   /* a different model on every rank */
    cc_config c = cc_config_default(CC_ENC_TOKENS);
    c.vocab = 5;
    c.embed = 3;
    c.hidden = 4;
    c.layers = 1;
    ct_module *m = cc_model_new(ctx, &rng, &c);
    CHECK(m != NULL, "model: %s", ct_ctx_error(ctx));
    ct_ctx_set_error_handler(ctx, NULL, NULL);
    CHECK(ct_dist_check_params(d, m) == CT_E_STATE, "different parameters were not caught");
    CHECK(strstr(ct_ctx_error(ctx), "differ from rank 0's") != NULL, "message: %s", ct_ctx_error(ctx));
    ct_ctx_clear_error(ctx);
    CHECK(ct_dist_broadcast_params(d, m) == CT_OK, "broadcast_params: %s", ct_ctx_error(ctx));
    CHECK(ct_dist_check_params(d, m) == CT_OK, "after broadcast: %s", ct_ctx_error(ctx));
    if (R == N - 1) ct_data_f32(ct_module_flat_params(m))[3] += 1e-6f;
    CHECK(ct_dist_check_params(d, m) == CT_E_STATE, "a changed parameter was not caught");
    char rk[32];
    snprintf(rk, sizeof rk, "%s %d)", N - 1 > 1 ? "ranks" : "rank", N - 1);
    CHECK(N > 2 || strstr(ct_ctx_error(ctx), rk) != NULL, "message: %s", ct_ctx_error(ctx));
    ct_module_free(m);
    /* the world size for resuming */
    uint8_t st[CT_DIST_STATE_BYTES];
    ct_dist_state_save(d, st);
    CHECK(ct_dist_state_check(d, st, sizeof st) == CT_OK, "state");
    char desc[160];
    if (R == 0) printf("primitives: ok (%s)\n", ct_dist_describe(d, desc, sizeof desc));
    return 0;
}

/* ---- training ------------------------------------------------------------------------------------- */
enum { VOCAB = 12, ITEMS = 37, BATCH = 8, WINDOW = 16 };

typedef struct run {
    ct_ctx *ctx;
    ct_dist *d;
    ct_module *m;
    ct_optim *opt;
    ct_mem_dataset *mem;
    ct_dataset ds;
    ct_dataloader *dl;
} run;

static int setup(run *r) {
    ct_dist *d = r->d;
    ct_rng rng;
    ct_rng_seed(&rng, 20261128);
    r->mem = ct_mem_dataset_new(r->ctx);
    for (int i = 0; i < ITEMS; i++) {   /* lengths 3..40: windows of 16 and shorter rows */
        int64_t len = 3 + (int64_t)ct_rng_below(&rng, 38), tok[64];
        for (int64_t t = 0; t < len; t++) tok[t] = (int64_t)((i * 3 + t * t) % VOCAB);
        if (ct_mem_dataset_add_tokens(r->mem, tok, len, NULL) != CT_OK) return fail(d, "dataset", r->ctx);
    }
    r->ds = ct_mem_dataset_as(r->mem);
    ct_dataloader_opts lo = ct_dataloader_defaults();
    lo.batch_size = BATCH;   /* the GLOBAL batch: every rank loads it and keeps its shard */
    lo.sampler = CT_SAMPLER_RANDOM;
    lo.seed = 77;
    lo.workers = 1;
    lo.collate.targets = true;
    lo.collate.max_len = WINDOW;
    r->dl = ct_dataloader_new(r->ctx, &r->ds, &lo);
    if (!r->dl) return fail(d, "loader", r->ctx);
    cc_config c = cc_config_default(CC_ENC_TOKENS);
    c.vocab = VOCAB;
    c.embed = 8;
    c.hidden = 24;
    c.layers = 2;
    c.cell = CC_LSTM;
    c.dropout = 0.0f;
    ct_rng init;
    ct_rng_seed(&init, 5);
    r->m = cc_model_new(r->ctx, &init, &c);
    if (!r->m) return fail(d, "model", r->ctx);
    r->opt = ct_adam_new(r->m, ct_adam_defaults(3e-3));
    if (!r->opt) return fail(d, "optimizer", r->ctx);
    if (ct_dist_broadcast_params(d, r->m) != CT_OK) return fail(d, "broadcast_params", r->ctx);
    return 0;
}

static void teardown(run *r) {
    ct_dataloader_free(r->dl);
    ct_optim_free(r->opt);
    ct_module_free(r->m);
    ct_mem_dataset_free(r->mem);
}

/* the loss of one shard and its backward; *count = its counted targets (0 for no rows) */
static int shard_backward(run *r, const ct_batch *global, int rank, int size, int64_t *count, double *loss_sum) {
    ct_batch s = {0};
    *count = 0;
    *loss_sum = 0;
    ct_optim_zero_grad(r->opt);
    if (ct_batch_shard(r->ctx, global, false, rank, size, &s) != CT_OK) return fail(r->d, "batch_shard", r->ctx);
    if (s.rows > 0) {
        ct_tensor *loss = NULL;
        if (cc_loss(r->m, &s, -100, NULL, &loss, count) != CT_OK || ct_backward(loss) != CT_OK) {
            ct_batch_clear(&s);
            return fail(r->d, "loss/backward", r->ctx);
        }
        *loss_sum = ct_item(loss) * (double)*count;
    }
    ct_batch_clear(&s);
    return 0;
}

static const ct_batch *next_batch(run *r) {
    const ct_batch *b = ct_dataloader_next(r->dl);
    if (!b && ct_dataloader_status(r->dl) == CT_OK) b = ct_dataloader_next(r->dl);   /* a new epoch */
    return b;
}

/* user data of the training state: the loader's position, then the world size */
enum { USER_BYTES = CT_DATALOADER_STATE_BYTES + CT_DIST_STATE_BYTES };

static int save_state(run *r, const char *dir, int64_t step) {
    if (!ct_dist_is_main(r->d)) return 0;   /* rank 0 alone writes */
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (ct_safetensors_save(path, r->m, 0, NULL, NULL) != CT_OK) return fail(r->d, "save weights", r->ctx);
    uint8_t user[USER_BYTES];
    ct_dataloader_save(r->dl, user);
    ct_dist_state_save(r->d, user + CT_DATALOADER_STATE_BYTES);
    snprintf(path, sizeof path, "%s/train_state.bin", dir);
    if (ct_train_state_save(path, r->opt, step, NULL, 0, user, sizeof user) != CT_OK)
        return fail(r->d, "save state", r->ctx);
    return 0;
}

static int load_state(run *r, const char *dir, int64_t *step) {
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (ct_safetensors_load(path, r->m, NULL, NULL) != CT_OK) return fail(r->d, "load weights", r->ctx);
    uint8_t user[USER_BYTES];
    size_t got = 0;
    snprintf(path, sizeof path, "%s/train_state.bin", dir);
    if (ct_train_state_load(path, r->opt, step, NULL, 0, user, sizeof user, &got) != CT_OK)
        return fail(r->d, "load state", r->ctx);
    if (got != USER_BYTES) {
        fprintf(stderr, "dist_train_check: %s: %zu bytes of user data\n", path, got);
        return 1;
    }
    if (ct_dist_state_check(r->d, user + CT_DATALOADER_STATE_BYTES, CT_DIST_STATE_BYTES) != CT_OK)
        return fail(r->d, "resume", r->ctx);
    if (ct_dataloader_load(r->dl, user, CT_DATALOADER_STATE_BYTES) != CT_OK) return fail(r->d, "loader position", r->ctx);
    return 0;
}

static int train(ct_ctx *ctx, ct_dist *d, int argc, char **argv) {
    const char *out = argv[0], *save_dir = NULL, *resume = NULL;
    int64_t steps = 10, save_at = -1;
    int simulate = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--simulate") && i + 1 < argc) simulate = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--save-at") && i + 2 < argc) {
            save_at = atoll(argv[++i]);
            save_dir = argv[++i];
        } else if (!strcmp(argv[i], "--resume") && i + 1 < argc) resume = argv[++i];
        else {
            fprintf(stderr, "dist_train_check: train: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (simulate > 0 && ct_dist_size(d) > 1) {
        fprintf(stderr, "dist_train_check: --simulate runs in one process\n");
        return 2;
    }
    run r = {ctx, d, NULL, NULL, NULL, {0}, NULL};
    int rc = setup(&r);
    int64_t step = 0;
    if (!rc && resume) rc = load_state(&r, resume, &step);
    if (!rc && ct_dist_check_params(d, r.m) != CT_OK) rc = fail(d, "parameters at the start", ctx);
    const int64_t P = ct_module_num_params(r.m);
    const int K = simulate > 0 ? simulate : 1;
    float **gs = calloc((size_t)K, sizeof(float *));
    int64_t *cnt = calloc((size_t)K, sizeof(int64_t));
    for (int k = 0; k < K && simulate > 0; k++) gs[k] = malloc(sizeof(float) * (size_t)P);
    while (!rc && step < steps) {
        step++;
        ct_scope_begin(ctx);
        const ct_batch *b = next_batch(&r);
        int64_t count = 0, global = 0;
        double loss_sum = 0;
        if (!b) rc = fail(d, "data", ctx);
        if (!rc && simulate > 0) {   /* K shards in one process, combined in rank order */
            for (int k = 0; k < K && !rc; k++) {
                double ls = 0;
                rc = shard_backward(&r, b, k, K, &cnt[k], &ls);
                loss_sum += ls;
                global += cnt[k];
                memcpy(gs[k], ct_data_f32(ct_module_flat_grads(r.m)), sizeof(float) * (size_t)P);
            }
            if (!rc && ct_dist_combine_grads(ct_data_f32(ct_module_flat_grads(r.m)), (const float *const *)gs,
                                             cnt, K, P) != CT_OK)
                rc = fail(d, "combine_grads", ctx);
        } else if (!rc) {            /* this rank's shard; the world agrees on counts and failures */
            int failed = shard_backward(&r, b, ct_dist_rank(d), ct_dist_size(d), &count, &loss_sum);
            int64_t v[2] = {count, failed != 0};
            double ls = loss_sum;
            if (ct_dist_allreduce_i64(d, v, 2, CT_DIST_SUM) != CT_OK || ct_dist_allreduce_f64(d, &ls, 1, CT_DIST_SUM) != CT_OK)
                rc = fail(d, "step allreduce", ctx);
            else if (v[1] > 0)
                rc = failed ? failed : (fprintf(stderr, "rank %d: another rank failed\n", ct_dist_rank(d)), 1);
            else if (ct_dist_average_grads(d, r.m, count, v[0]) != CT_OK)
                rc = fail(d, "average_grads", ctx);
            global = v[0];
            loss_sum = ls;
        }
        if (!rc) {
            double norm = 0;
            if (ct_clip_grad_norm(r.m, 1.0f, &norm) == CT_OK) ct_optim_step(r.opt);
            if (ct_dist_is_main(d))
                printf("step %2lld  loss %.6f  grad norm %.6f  tokens %lld\n", (long long)step,
                       global ? loss_sum / (double)global : 0.0, norm, (long long)global);
        }
        ct_scope_end(ctx);
        if (!rc && step == save_at) rc = save_state(&r, save_dir, step);
    }
    if (!rc && ct_dist_check_params(d, r.m) != CT_OK) rc = fail(d, "parameters at the end", ctx);
    if (!rc && ct_dist_is_main(d) && ct_npy_save(out, ct_module_flat_params(r.m)) != CT_OK) rc = fail(d, "save", ctx);
    for (int k = 0; k < K; k++) free(gs[k]);
    free(gs);
    free(cnt);
    teardown(&r);
    return rc;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* every float32 tensor of a .safetensors file, in name order, as one flat tensor; or a .npy */
static ct_tensor *load_flat(ct_ctx *ctx, const char *path) {
    if (!ends_with(path, ".safetensors")) return ct_npy_load(ctx, path);
    ct_safetensors *f = ct_safetensors_open(ctx, path);
    if (!f) return NULL;
    const int n = ct_safetensors_count(f);
    const char **names = malloc(sizeof(char *) * (size_t)(n > 0 ? n : 1));
    for (int i = 0; i < n; i++) names[i] = ct_safetensors_name(f, i);
    for (int i = 1; i < n; i++)   /* insertion sort by name: both files in the same order */
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            const char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    ct_tensor **parts = malloc(sizeof(ct_tensor *) * (size_t)(n > 0 ? n : 1));
    int k = 0;
    for (int i = 0; i < n; i++) {
        ct_tensor *t = ct_safetensors_get(f, names[i]);
        if (t && t->dtype == CT_F32) parts[k++] = ct_reshape(t, -1);
    }
    ct_tensor *flat = k > 0 ? ct_concat(k, parts, 0) : NULL;
    free(parts);
    free(names);
    ct_safetensors_close(f);
    return flat;
}

static int compare(ct_ctx *ctx, const char *a, const char *b, double rtol) {
    ct_tensor *x = load_flat(ctx, a), *y = load_flat(ctx, b);
    if (!x || !y || ct_numel(x) != ct_numel(y)) {
        fprintf(stderr, "dist_train_check: compare: %s\n", x && y ? "sizes differ" : ct_ctx_error(ctx));
        return 1;
    }
    double mx = 0, diff = 0;
    int64_t worst = 0, differ = 0;
    for (int64_t i = 0; i < ct_numel(x); i++) {
        double u = ct_data_f32(x)[i], v = ct_data_f32(y)[i];
        mx = fmax(mx, fabs(v));
        differ += u != v;
        if (fabs(u - v) > diff) {
            diff = fabs(u - v);
            worst = i;
        }
    }
    const double rel = mx > 0 ? diff / mx : diff;
    printf("compare %s %s: %lld parameters, %lld differ, max |a-b| = %.3g (element %lld), relative to "
           "max |b| = %.3g: %.3g (tolerance %g)\n",
           a, b, (long long)ct_numel(x), (long long)differ, diff, (long long)worst, mx, rel, rtol);
    return (rtol == 0 ? differ == 0 : rel <= rtol) ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: dist_train_check primitives | train OUT.npy [options] | compare A B RTOL\n");
        return 2;
    }
    ct_ctx *ctx = ct_ctx_new();
    if (!strcmp(argv[1], "compare")) {
        int rc = argc == 5 ? compare(ctx, argv[2], argv[3], atof(argv[4])) : 2;
        ct_ctx_free(ctx);
        return rc;
    }
    ct_dist_opts o = ct_dist_defaults();
    if (!strcmp(argv[1], "--mpi-reduce") && argc >= 3) {   /* MPI_Allreduce instead of the fixed order */
        o.reduce = CT_DIST_REDUCE_MPI;
        argv++;
        argc--;
    }
    ct_dist *d = ct_dist_new(ctx, &o);
    if (!d) {
        fprintf(stderr, "dist_train_check: %s\n", ct_ctx_error(ctx));
        ct_ctx_free(ctx);
        return 1;
    }
    int rc = 2;
    if (!strcmp(argv[1], "primitives")) rc = primitives(ctx, d);
    else if (!strcmp(argv[1], "train") && argc >= 3) rc = train(ctx, d, argc - 2, argv + 2);
    else fprintf(stderr, "dist_train_check: unknown mode %s\n", argv[1]);
    if (rc != 0) ct_dist_abort(d, rc);   /* a failure one rank saw alone must not hang the others */
    ct_dist_free(d);
    ct_ctx_free(ctx);
    return rc;
}
