/* apps/train_dist.c — `mpirun -np N cantor train ...`: data-parallel training over N processes
 * (engine/parallel/dist.h), through the loop's hooks (apps/train.h):
 *   - every process runs the same data loader, so it sees every GLOBAL batch (--batch rows),
 *     and keeps its shard of it (ct_batch_shard: rank r gets rows [r*B/N, (r+1)*B/N));
 *   - after backward, one allreduce agrees on the step (the global count of targets, the sum
 *     of losses, whether any process asked to stop) and ct_dist_average_grads turns every
 *     process's gradient into the global batch's (weighted by token counts), so that clipping,
 *     the skip guards and Adam act identically everywhere and the weights stay identical;
 *   - rank 0 alone is the writer: it prints, validates, writes checkpoints, metrics, samples;
 *   - a stop (Ctrl-C, SIGTERM, SIGUSR1, the dashboard) is agreed in the step's allreduce, so
 *     every process stops after the same step;
 *   - dropout draws from a stream of its own per process and step (the seed forked by rank,
 *     then by step): resumable, and no two processes repeat each other's masks.
 * Without mpirun the world is one process, MPI is never called, and nothing changes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apps/cli.h"
#include "apps/train.h"
#include "engine/parallel/dist.h"

typedef struct train_dist {
    ct_ctx *ctx;                              /* the world's errors */
    ct_dist *d;
    ct_rng dropout_root;
    volatile sig_atomic_t agreed_stop;        /* r->stop points here */
    volatile sig_atomic_t *user_stop;         /* the caller's stop flag (a dashboard), or NULL */
    bool staged;                              /* CANTOR_DIST_STAGE=host (a test setting) */
} train_dist;

static train_dist g_dist;   /* one world per process */

static const ct_batch *dist_shard(train_run *r, const ct_batch *b, ct_batch *part, void *ud) {
    train_dist *u = ud;
    r->rng = ct_rng_fork(&u->dropout_root, (uint64_t)r->step + 1);   /* this process's dropout */
    if (ct_batch_shard(r->ctx, b, false, ct_dist_rank(u->d), ct_dist_size(u->d), part) != CT_OK) return NULL;
    return part;
}

static ct_status dist_grad_sync(train_run *r, ct_tensor *flat_grads, int64_t *count, double *loss, void *ud) {
    (void)flat_grads;   /* ct_dist_average_grads works on r->m's flat block, which this is */
    train_dist *u = ud;
    const bool stop = train_stop_requested() || (u->user_stop && *u->user_stop);
    int64_t v[2] = {*count, stop ? 1 : 0};
    double ls = *count > 0 ? *loss * (double)*count : 0.0;   /* the sum of this process's losses */
    if (!isfinite(*loss)) ls = *loss;                         /* NaN/inf reaches every process */
    ct_status s = ct_dist_allreduce_i64(u->d, v, 2, CT_DIST_SUM);
    if (s == CT_OK) s = ct_dist_allreduce_f64(u->d, &ls, 1, CT_DIST_SUM);
    if (s == CT_OK) s = ct_dist_average_grads(u->d, r->m, *count, v[0]);
    if (s != CT_OK) return ct_fail(r->ctx, s, "%s", ct_ctx_error(u->ctx));
    if (v[1] > 0) u->agreed_stop = 1;
    *count = v[0];
    *loss = v[0] > 0 ? ls / (double)v[0] : ls;
    return CT_OK;
}

/* --device cuda under mpirun: every process takes the GPU local_rank % (GPUs on its machine)
 * (ct_dist_gpu_init, which also makes the NCCL communicator); train_setup moves the model and
 * the optimizer there. The processes first agree that each has a GPU, so that a machine
 * without one ends the job with one message and no process waits. CLI_OK, or an exit code
 * (every process returns the same one; a failure inside the NCCL set-up that one process
 * may see alone ends the whole job). */
static int dist_gpu_begin(train_run *r, ct_dist *d) {
    ct_device want;
    const int rank = ct_dist_rank(d), size = ct_dist_size(d);
    /* every process checked --device and --precision (dist_check_device) */
    if (ct_device_parse(r->o.device[0] ? r->o.device : "cpu", &want, NULL, 0) != CT_OK || want.type == CT_CPU)
        return CLI_OK;
    int dev = -1;
    ct_status s = ct_dist_gpu_init(d, &dev);
    if (s == CT_E_UNSUPPORTED)   /* the build: the same on every process, none went further */
        return rank == 0 ? cli_fail("train", "--device %s with %d processes: %s; or train with --device cpu",
                                    r->o.device, size, ct_ctx_error(g_dist.ctx))
                         : CLI_FAIL;
    if (s != CT_OK) {   /* perhaps this process's alone: the others may wait in NCCL's set-up */
        cli_fail("train", "--device %s: %s", r->o.device, ct_ctx_error(g_dist.ctx));
        fflush(stderr);
        ct_dist_abort(d, CLI_FAIL);
        return CLI_FAIL;
    }
    r->dev = CT_DEVICE_CUDA(dev);
    r->dev_chosen = true;
    return CLI_OK;
}

/* --device and --precision, checked by every process once MPI runs, so that a job whose
 * options are wrong (a GPU that is not there, --device cuda:N) prints one message and every
 * process then ends normally with the same exit code (none waits for another, and mpirun
 * kills none before rank 0 has said why). Rank 0 speaks; a process that alone fails (a machine
 * without a GPU) speaks for itself. */
static int dist_check_device(train_run *r, ct_dist *d) {
    const int rank = ct_dist_rank(d), size = ct_dist_size(d);
    const int mine = train_check_device_opts(&r->o, size, rank != 0, true);
    int64_t v[2] = {mine, rank == 0 ? mine : 0};   /* the worst code, and rank 0's */
    if (ct_dist_allreduce_i64(d, v, 2, CT_DIST_MAX) != CT_OK) {
        cli_fail("train", "%s", ct_ctx_error(g_dist.ctx));
        ct_dist_abort(d, CLI_FAIL);
        return CLI_FAIL;
    }
    if (v[0] != CLI_OK && v[1] == CLI_OK && mine != CLI_OK) {
        fprintf(stderr, "cantor train: process %d of %d (rank 0 could start):\n", rank, size);
        train_check_device_opts(&r->o, size, false, true);
    }
    return (int)v[0];
}

int train_dist_begin(train_run *r) {
    memset(&g_dist, 0, sizeof g_dist);
    g_dist.ctx = ct_ctx_new();
    if (!g_dist.ctx) return cli_fail("train", "out of memory");
    ct_ctx_set_error_handler(g_dist.ctx, NULL, NULL);
    ct_dist_opts dopts = ct_dist_defaults();
    /* test-only (tests/check_mpi.sh): CANTOR_DIST_STAGE=host sends the gradients through the
     * host round trip that GPU blocks take without NCCL, so that it runs on machines without
     * a GPU; the results are the same bit for bit */
    const char *stage = getenv("CANTOR_DIST_STAGE");
    dopts.stage_through_host = g_dist.staged = stage && !strcmp(stage, "host");
    g_dist.d = ct_dist_new(g_dist.ctx, &dopts);
    if (!g_dist.d) {
        int rc = cli_fail("train", "%s", ct_ctx_error(g_dist.ctx));
        ct_ctx_free(g_dist.ctx);
        g_dist.ctx = NULL;
        return rc;
    }
    ct_dist *d = g_dist.d;
    const int size = ct_dist_size(d), rank = ct_dist_rank(d);
    if (size == 1) return CLI_OK;
    r->dist = d;
    r->world_size = size;
    r->writer = rank == 0;
    int crc = dist_check_device(r, d);
    if (crc != CLI_OK) return crc;
    /* errors every process sees alike: each returns them, and MPI finalizes normally */
    struct stat st;
    if (!r->resumed && stat(r->o.corpus, &st) == 0 && S_ISDIR(st.st_mode))
        return cli_usage("train", "--corpus %s is a folder: with %d processes, build the corpus file first "
                         "(cantor corpus build %s -o FILE) and train on it", r->o.corpus, size, r->o.corpus);
    if (r->o.batch < size)
        return cli_usage("train", "--batch %lld is the global batch, shared by %d processes: give at least %d",
                         (long long)r->o.batch, size, size);
    if (!getenv("OPENBLAS_NUM_THREADS")) {   /* share this machine's cores among its processes */
        long cores = sysconf(_SC_NPROCESSORS_ONLN), local = ct_dist_local_size(d) > 0 ? ct_dist_local_size(d) : 1;
        ct_blas_set_threads(cores / local < 1 ? 1 : (int)(cores / local));
    }
    int rc = dist_gpu_begin(r, d);   /* --device cuda: one GPU per process, NCCL */
    if (rc != CLI_OK) return rc;
    ct_rng seed;
    ct_rng_seed(&seed, (uint64_t)r->o.seed);
    g_dist.dropout_root = ct_rng_fork(&seed, 0x64726f70ULL + (uint64_t)rank);
    g_dist.user_stop = r->stop;
    r->stop = &g_dist.agreed_stop;
    r->shard_batch = dist_shard;
    r->shard_ud = &g_dist;
    r->grad_sync = dist_grad_sync;
    r->grad_sync_ud = &g_dist;
    return CLI_OK;
}

int train_dist_ready(train_run *r, int rc) {
    ct_dist *d = g_dist.d;
    if (!d || ct_dist_size(d) == 1) return rc;
    /* every process must have set up before the first step's collectives */
    int64_t ok = rc == CLI_OK;
    if (ct_dist_allreduce_i64(d, &ok, 1, CT_DIST_MIN) != CT_OK) {
        cli_fail("train", "%s", ct_ctx_error(g_dist.ctx));
        ct_dist_abort(d, CLI_FAIL);
        return CLI_FAIL;
    }
    if (!ok && rc == CLI_OK) rc = cli_fail("train", "another process failed to start (its message is above)");
    if (rc == CLI_OK && ct_dist_check_params(d, r->m) != CT_OK) {
        cli_fail("train", "%s", ct_ctx_error(g_dist.ctx));
        ct_dist_abort(d, CLI_FAIL);
    }
    if (rc == CLI_OK) {
        const int size = ct_dist_size(d);
        char desc[192];
        train_say(r, "data-parallel: %d processes (%s), global batch %lld, %lld to %lld rows each", size,
                  ct_dist_describe(d, desc, sizeof desc), (long long)r->o.batch, (long long)(r->o.batch / size),
                  (long long)((r->o.batch + size - 1) / size));
        if (g_dist.staged)
            train_say(r, "data-parallel: gradients staged through host memory (CANTOR_DIST_STAGE=host, a test setting)");
        if (r->dev.type != CT_CPU)
            train_say(r, "data-parallel on GPUs: one per process (local rank %% the GPUs of its machine; this one "
                      "cuda:%d), gradients summed by NCCL in its own order", r->dev.index);
    }
    return rc;
}

int train_dist_end(train_run *r, int rc, bool ran) {
    ct_dist *d = g_dist.d;
    if (!d) return rc;
    /* a failure inside the loop may be this process's alone: the others would wait for it in
     * the next step's allreduce, so end the whole job (the writer's files are atomic) */
    if (ran && ct_dist_size(d) > 1 && rc != CLI_OK && rc != 130) {
        fflush(stdout);
        fflush(stderr);
        ct_dist_abort(d, rc);
    }
    ct_dist_free(d);
    ct_ctx_free(g_dist.ctx);
    memset(&g_dist, 0, sizeof g_dist);
    r->dist = NULL;
    return rc;
}
