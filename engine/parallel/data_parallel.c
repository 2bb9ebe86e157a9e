/* engine/parallel/data_parallel.c — DataParallel over the GPUs of one process: a clear error
 * with no device, a no-op wrapper with one, replicas (ct_module_clone) and a gradient
 * reduction with several. Two transports move the flat blocks: NCCL (a build with CUDA and
 * NCCL: one communicator per device from ncclCommInitAll, collectives on the engine's own
 * per-device streams, so they are ordered after the backward kernels and before the step) and
 * the host path (every block to the host, ct_dist_combine_grads, back to replica 0), which is
 * bit-exact, needs nothing but ct_copy_to_host / ct__copy_across, and is what the CPU test
 * mode (parallel_internal.h) runs. See data_parallel.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/device.h"
#include "engine/internal.h"
#include "engine/parallel/data_parallel.h"
#include "engine/parallel/parallel_internal.h"
#include "engine/version.h"

#if defined(CT_HAVE_CUDA) && defined(CT_HAVE_NCCL)
#include <cuda_runtime.h>
#include <nccl.h>
#define CT_DP_NCCL 1
#endif

struct ct_data_parallel {
    ct_module *model;       /* replica 0 (borrowed) */
    ct_ctx *ctx;
    int n;
    int *devices;           /* CUDA indices */
    ct_device *where;       /* replica i's device: cuda:devices[i], or cpu in the test mode */
    ct_module **replicas;   /* [0] = model; [1..n-1] owned */
    int64_t numel;          /* parameters of the model (n > 1) */
    float *host;            /* host path: n blocks of numel floats (n > 1) */
    bool nccl;
#ifdef CT_DP_NCCL
    ncclComm_t *comms;      /* one per replica, rank i = replica i (NCCL transport) */
#endif
};

/* ---- construction ------------------------------------------------------------------------------- */
static void dp_release(ct_data_parallel *dp) {
    if (!dp) return;
#ifdef CT_DP_NCCL
    if (dp->comms) {
        for (int i = 0; i < dp->n; i++)
            if (dp->comms[i]) ncclCommDestroy(dp->comms[i]);
        free(dp->comms);
    }
#endif
    if (dp->replicas)
        for (int i = 1; i < dp->n; i++) ct_module_free(dp->replicas[i]);
    free(dp->replicas);
    free(dp->where);
    free(dp->devices);
    free(dp->host);
    free(dp);
}

#ifdef CT_DP_NCCL
static ct_status nccl_fail(ct_data_parallel *dp, ncclResult_t r, const char *what) {
    return ct_fail(dp->ctx, CT_E_DEVICE, "DataParallel: %s over %d GPUs failed: %s", what, dp->n,
                   ncclGetErrorString(r));
}
#endif

ct_data_parallel *ct__data_parallel_new_with(ct_module *model, const int *devices, int n_devices,
                                             int available, const char *why, ct__dp_mode mode) {
    if (!model) return NULL;
    ct_ctx *ctx = model->ctx;
    if (n_devices < 0 || (n_devices > 0 && !devices)) {
        ct_fail(ctx, CT_E_ARG, "DataParallel: %d device indices%s", n_devices,
                n_devices > 0 ? " but a NULL list" : " (must be >= 0; 0 = every visible device)");
        return NULL;
    }
    if (mode != CT__DP_AUTO && mode != CT__DP_HOST_REDUCE && mode != CT__DP_CPU_REPLICAS) {
        ct_fail(ctx, CT_E_ARG, "DataParallel: unknown mode %d", (int)mode);
        return NULL;
    }
    if (available < 1) {
        ct_fail(ctx, CT_E_DEVICE, "DataParallel: no CUDA device (%s): train on the CPU with the "
                                  "model itself (no wrapper), or on several processes with mpirun "
                                  "(engine/parallel/dist.h)",
                why && *why ? why : "none found");
        return NULL;
    }
    const int n = n_devices > 0 ? n_devices : available;
    for (int i = 0; i < n_devices; i++) {
        if (devices[i] < 0) {
            ct_fail(ctx, CT_E_ARG, "DataParallel: device index %d is negative", devices[i]);
            return NULL;
        }
        if (devices[i] >= available) {
            if (available == 1)
                ct_fail(ctx, CT_E_DEVICE, "DataParallel: cuda:%d asked for, but there is only one "
                                          "CUDA device (cuda:0)", devices[i]);
            else
                ct_fail(ctx, CT_E_DEVICE, "DataParallel: cuda:%d asked for, but there are only %d "
                                          "CUDA devices (cuda:0 to cuda:%d)",
                        devices[i], available, available - 1);
            return NULL;
        }
        for (int j = 0; j < i; j++)
            if (devices[j] == devices[i]) {
                ct_fail(ctx, CT_E_ARG, "DataParallel: cuda:%d is listed twice", devices[i]);
                return NULL;
            }
    }
    if (model->parent) {
        ct_fail(ctx, CT_E_ARG, "DataParallel: the %s module '%s' is a child; wrap the root module "
                               "(ct_module_root), whose flat block holds every parameter",
                model->kind, model->name);
        return NULL;
    }
    ct_data_parallel *dp = calloc(1, sizeof *dp);
    if (dp) {
        dp->devices = calloc((size_t)n, sizeof *dp->devices);
        dp->where = calloc((size_t)n, sizeof *dp->where);
        dp->replicas = calloc((size_t)n, sizeof *dp->replicas);
    }
    if (!dp || !dp->devices || !dp->where || !dp->replicas) {
        dp_release(dp);
        ct_fail(ctx, CT_E_NOMEM, "DataParallel: out of memory");
        return NULL;
    }
    dp->model = model;
    dp->ctx = ctx;
    dp->n = n;
    for (int i = 0; i < n; i++) {
        dp->devices[i] = n_devices > 0 ? devices[i] : i;
        dp->where[i] = mode == CT__DP_CPU_REPLICAS ? CT_DEVICE_CPU : CT_DEVICE_CUDA(dp->devices[i]);
    }
    /* replica 0 is the model itself: it must already be where replica 0 lives */
    const ct_device at = ct_module_device(model);
    if (!ct_device_eq(at, dp->where[0])) {
        char d0[24], d1[24];
        ct_device_str(at, d0, sizeof d0);
        ct_device_str(dp->where[0], d1, sizeof d1);
        ct_fail(ctx, CT_E_DEVICE, "DataParallel: the model is on %s, but replica 0 (the model itself) "
                                  "lives on %s: move it there first (ct_module_to(model, %s), "
                                  "engine/device.h), then wrap it and make the optimizer",
                d0, d1, d1);
        dp_release(dp);
        return NULL;
    }
    dp->replicas[0] = model;
    if (n == 1) return dp;   /* one device: a no-op wrapper */

    /* several: one flat block per replica, the model's layout */
    if (ct_module_flatten(model) != CT_OK) {
        dp_release(dp);
        return NULL;
    }
    dp->numel = ct_module_num_params(model);
    dp->host = malloc(sizeof(float) * (size_t)(dp->numel > 0 ? dp->numel : 1) * (size_t)n);
    if (!dp->host) {
        dp_release(dp);
        ct_fail(ctx, CT_E_NOMEM, "DataParallel: out of memory (host blocks of %d x %lld floats)", n,
                (long long)dp->numel);
        return NULL;
    }
    for (int i = 1; i < n; i++) {
        dp->replicas[i] = ct_module_clone(model, dp->where[i]);
        if (!dp->replicas[i]) {
            char msg[CT_ERROR_MSG_MAX], d[24];
            snprintf(msg, sizeof msg, "%s", ct_ctx_error(ctx));
            const ct_status st = ct_ctx_status(ctx) ? ct_ctx_status(ctx) : CT_E_NOMEM;
            ct_fail(ctx, st, "DataParallel: replica %d on %s: %s", i,
                    ct_device_str(dp->where[i], d, sizeof d), msg);
            dp_release(dp);
            return NULL;
        }
    }
#ifdef CT_DP_NCCL
    if (mode == CT__DP_AUTO) {
        dp->comms = calloc((size_t)n, sizeof *dp->comms);
        if (!dp->comms) {
            dp_release(dp);
            ct_fail(ctx, CT_E_NOMEM, "DataParallel: out of memory");
            return NULL;
        }
        ncclResult_t r = ncclCommInitAll(dp->comms, n, dp->devices);
        if (r != ncclSuccess) {
            free(dp->comms);   /* ncclCommInitAll made none of them */
            dp->comms = NULL;
            nccl_fail(dp, r, "ncclCommInitAll");
            dp_release(dp);
            return NULL;
        }
        dp->nccl = true;
    }
#endif
    return dp;
}

ct_data_parallel *ct_data_parallel_new(ct_module *model, const int *devices, int n_devices) {
    if (!model) return NULL;
    char why[160] = "";
    int available = ct_cuda_device_count(why, sizeof why);
    return ct__data_parallel_new_with(model, devices, n_devices, available, why, CT__DP_AUTO);
}

void ct_data_parallel_free(ct_data_parallel *dp) { dp_release(dp); }

/* ---- queries ------------------------------------------------------------------------------------ */
int ct_data_parallel_size(const ct_data_parallel *dp) { return dp ? dp->n : 0; }

ct_device ct_data_parallel_device(const ct_data_parallel *dp, int i) {
    if (!dp || i < 0 || i >= dp->n) return CT_DEVICE_CPU;
    return dp->where[i];
}

ct_module *ct_data_parallel_replica(ct_data_parallel *dp, int i) {
    if (!dp || i < 0 || i >= dp->n) return NULL;
    return dp->replicas[i];
}

const char *ct__data_parallel_transport(const ct_data_parallel *dp) {
    if (!dp || dp->n < 2) return "none";
    return dp->nccl ? "nccl" : "host";
}

/* ---- a step ------------------------------------------------------------------------------------- */
/* dst's train/eval flags become src's, module by module (the trees have the same shape) */
static void copy_training(ct_module *dst, const ct_module *src) {
    dst->training = src->training;
    for (int c = 0; c < dst->n_children && c < src->n_children; c++)
        copy_training(dst->children[c], src->children[c]);
}

/* *t moved to dev (no graph: batch tensors need no gradient); false + error */
static bool move_to(ct_tensor **t, ct_device dev) {
    if (!*t || ct_device_eq(ct_tensor_device(*t), dev)) return true;
    ct_ctx *ctx = (*t)->ctx;
    bool was = ct_set_grad_enabled(ctx, false);
    ct_tensor *m = ct_to(*t, dev);
    ct_set_grad_enabled(ctx, was);
    if (!m) return false;
    *t = m;
    return true;
}

ct_status ct_data_parallel_scatter(ct_data_parallel *dp, const ct_batch *b, bool batch_first, int i,
                                   ct_batch *out) {
    if (!dp) return CT_E_NULL;
    if (i < 0 || i >= dp->n)
        return ct_fail(dp->ctx, CT_E_ARG, "DataParallel: scatter: replica %d of %d (need 0 <= i < %d)", i,
                       dp->n, dp->n);
    ct_status st = ct_batch_shard(dp->ctx, b, batch_first, i, dp->n, out);
    if (st != CT_OK) return st;
    if (i > 0) copy_training(dp->replicas[i], dp->model);
    const ct_device dev = dp->where[i];
    if (!move_to(&out->inputs, dev) || !move_to(&out->targets, dev) || !move_to(&out->mask, dev)) {
        char msg[CT_ERROR_MSG_MAX], d[24];
        snprintf(msg, sizeof msg, "%s", ct_ctx_error(dp->ctx));
        st = ct_ctx_status(dp->ctx) ? ct_ctx_status(dp->ctx) : CT_E_DEVICE;
        ct_batch_clear(out);
        return ct_fail(dp->ctx, st, "DataParallel: scatter: moving replica %d's rows to %s: %s", i,
                       ct_device_str(dev, d, sizeof d), msg);
    }
    return CT_OK;
}

/* replica i's flat block (params or grads), checked against the model's size */
static ct_tensor *block_of(ct_data_parallel *dp, int i, bool grads, const char *fn) {
    ct_module *r = dp->replicas[i];
    ct_tensor *t = grads ? ct_module_flat_grads(r) : ct_module_flat_params(r);
    if (!t) return NULL;
    if (ct_numel(t) != dp->numel || t->dtype != CT_F32 || !ct_is_contiguous(t)) {
        ct_fail(dp->ctx, CT_E_STATE, "DataParallel: %s: replica %d's %s block has %lld floats, the "
                                     "model %lld (parameters added after wrapping? wrap the finished "
                                     "model)",
                fn, i, grads ? "gradient" : "parameter", (long long)ct_numel(t), (long long)dp->numel);
        return NULL;
    }
    return t;
}

#ifdef CT_DP_NCCL
static ct_status reduce_nccl(ct_data_parallel *dp, ct_tensor *const *g, const int64_t *counts, int64_t total) {
    /* each block weighted on its own device (exactly ct_dist_combine_grads' weights; a weight
     * of 0 writes zeros, even over NaN), on the engine's stream, so NCCL reads it after */
    for (int i = 0; i < dp->n; i++) {
        ct_status st = ct__dist_weigh_block(g[i], ct_dist_grad_weight(counts[i], total));
        if (st != CT_OK) return st;
    }
    ncclResult_t r = ncclGroupStart();
    for (int i = 0; r == ncclSuccess && i < dp->n; i++)
        r = ncclReduce(ct_data(g[i]), ct_data(g[i]), (size_t)dp->numel, ncclFloat, ncclSum, 0, dp->comms[i],
                       ct__cuda_stream_c(dp->devices[i]));
    ncclResult_t e = ncclGroupEnd();
    if (r != ncclSuccess) return nccl_fail(dp, r, "ncclReduce of the gradients");
    if (e != ncclSuccess) return nccl_fail(dp, e, "ncclReduce of the gradients (ncclGroupEnd)");
    ct__bump_version(g[0]);   /* the root's block, written in place (the others are zeroed next) */
    return CT_OK;
}
#endif

ct_status ct_data_parallel_reduce_grads(ct_data_parallel *dp, const int64_t *counts) {
    if (!dp) return CT_E_NULL;
    if (!counts) return ct_fail(dp->ctx, CT_E_ARG, "DataParallel: reduce_grads: counts is NULL");
    int64_t total = 0;
    for (int i = 0; i < dp->n; i++) {
        if (counts[i] < 0)
            return ct_fail(dp->ctx, CT_E_ARG, "DataParallel: reduce_grads: replica %d's count %lld is "
                                              "negative",
                           i, (long long)counts[i]);
        total += counts[i];
    }
    if (dp->n == 1) return CT_OK;   /* one replica: its gradient is the global one */
    const size_t k = (size_t)(unsigned)dp->n;   /* n >= 2 here */
    ct_tensor **g = calloc(k, sizeof *g);
    const float **hp = calloc(k, sizeof *hp);
    if (!g || !hp) {
        free(g);
        free(hp);
        return ct_fail(dp->ctx, CT_E_NOMEM, "DataParallel: reduce_grads: out of memory");
    }
    ct_status st = CT_OK;
    for (int i = 0; i < dp->n && st == CT_OK; i++)
        if (!(g[i] = block_of(dp, i, true, "reduce_grads"))) st = ct_ctx_status(dp->ctx) ? ct_ctx_status(dp->ctx) : CT_E_STATE;
#ifdef CT_DP_NCCL
    if (st == CT_OK && dp->nccl) st = reduce_nccl(dp, g, counts, total);
    else
#endif
    if (st == CT_OK) {
        /* the host path: blocks with a count to the host (ct_dist_combine_grads ignores the
         * others), combined in replica order in double, the result back into replica 0 */
        const size_t bytes = sizeof(float) * (size_t)dp->numel;
        for (int i = 0; i < dp->n && st == CT_OK; i++) {
            if (counts[i] == 0) continue;
            float *h = dp->host + (size_t)i * (size_t)dp->numel;
            st = ct_copy_to_host(g[i], h, bytes);
            hp[i] = h;
        }
        if (st == CT_OK) st = ct_dist_combine_grads(dp->host, hp, counts, dp->n, dp->numel);
        if (st == CT_OK) st = ct_copy_from_host(g[0], dp->host, bytes);
    }
    /* the other replicas' blocks are spent: zero them for the next step's backward */
    for (int i = 1; i < dp->n && st == CT_OK; i++) st = ct_inplace_fill(g[i], 0.0f);
    if (st != CT_OK && ct_ctx_status(dp->ctx) == CT_OK)
        ct_fail(dp->ctx, st, "DataParallel: reduce_grads failed (status %d)", (int)st);
    free(g);
    free(hp);
    return st;
}

ct_status ct_data_parallel_broadcast_params(ct_data_parallel *dp) {
    if (!dp) return CT_E_NULL;
    if (dp->n == 1) return CT_OK;   /* one replica: nothing to copy */
    ct_tensor *p0 = block_of(dp, 0, false, "broadcast_params");
    if (!p0) return ct_ctx_status(dp->ctx);
#ifdef CT_DP_NCCL
    if (dp->nccl) {
        ct_tensor **p = calloc((size_t)(unsigned)dp->n, sizeof *p);
        if (!p) return ct_fail(dp->ctx, CT_E_NOMEM, "DataParallel: broadcast_params: out of memory");
        p[0] = p0;
        for (int i = 1; i < dp->n; i++)
            if (!(p[i] = block_of(dp, i, false, "broadcast_params"))) {
                free(p);
                return ct_ctx_status(dp->ctx);
            }
        ncclResult_t r = ncclGroupStart();
        for (int i = 0; r == ncclSuccess && i < dp->n; i++)
            r = ncclBroadcast(ct_data(p[i]), ct_data(p[i]), (size_t)dp->numel, ncclFloat, 0, dp->comms[i],
                              ct__cuda_stream_c(dp->devices[i]));
        ncclResult_t e = ncclGroupEnd();
        if (r == ncclSuccess && e == ncclSuccess)   /* replicas 1.. written in place */
            for (int i = 1; i < dp->n; i++) ct__bump_version(p[i]);
        free(p);
        if (r != ncclSuccess) return nccl_fail(dp, r, "ncclBroadcast of the parameters");
        if (e != ncclSuccess) return nccl_fail(dp, e, "ncclBroadcast of the parameters (ncclGroupEnd)");
        return CT_OK;
    }
#endif
    /* the host path: replica 0's block to the host once, then into every other replica */
    ct_status st = ct_copy_to_host(p0, dp->host, sizeof(float) * (size_t)dp->numel);
    for (int i = 1; i < dp->n && st == CT_OK; i++) {
        ct_tensor *pi = block_of(dp, i, false, "broadcast_params");
        st = pi ? ct_copy_from_host(pi, dp->host, sizeof(float) * (size_t)dp->numel) : ct_ctx_status(dp->ctx);
    }
    return st;
}
