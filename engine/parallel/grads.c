/* engine/parallel/grads.c — data-parallel gradient math (the weights of the ranks' mean-loss
 * gradients, their fixed-order sum), parameters kept identical across ranks, and the world
 * size saved for resuming. See dist.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/device.h"
#include "engine/ops.h"
#include "engine/parallel/dist_internal.h"
#include "engine/parallel/parallel_internal.h"

float ct_dist_grad_weight(int64_t count, int64_t global_count) {
    if (count <= 0 || global_count <= 0) return 0.0f;
    if (count == global_count) return 1.0f;
    return (float)((double)count / (double)global_count);
}

/* The flat block of a module on the CPU, or NULL with an error in ctx. */
static ct_tensor *flat_block(ct_dist *d, ct_module *root, bool grads, const char *fn) {
    if (!root) {
        ct_fail(d->ctx, CT_E_NULL, "dist: %s: the module is NULL", fn);
        return NULL;
    }
    ct_tensor *t = grads ? ct_module_flat_grads(root) : ct_module_flat_params(root);
    if (!t) {
        if (ct_ctx_status(d->ctx) == CT_OK)
            ct_fail(d->ctx, CT_E_STATE, "dist: %s: the module has no flat %s block", fn, grads ? "gradient" : "parameter");
        return NULL;
    }
    return t;
}

/* ---- blocks through host memory (a device block without NCCL; stage_through_host) ---------- */
/* A host copy of block t (numel floats; malloc'd), or NULL with the error in d->ctx. */
static float *to_host(ct_dist *d, ct_tensor *t, const char *fn) {
    const int64_t n = ct_numel(t);
    float *h = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (!h) {
        ct_fail(d->ctx, CT_E_NOMEM, "dist: %s: out of memory for a host copy of %lld floats", fn, (long long)n);
        return NULL;
    }
    ct_status s = ct_copy_to_host(t, h, sizeof(float) * (size_t)n);
    if (s != CT_OK) {
        ct_fail(d->ctx, s, "dist: %s: copying the block to the host: %s", fn, ct_ctx_error(t->ctx));
        free(h);
        return NULL;
    }
    return h;
}

/* Writes the host floats back into block t on its device. */
static ct_status from_host(ct_dist *d, ct_tensor *t, const float *h, const char *fn) {
    ct_status s = ct_copy_from_host(t, h, sizeof(float) * (size_t)ct_numel(t));
    if (s != CT_OK)
        return ct_fail(d->ctx, s, "dist: %s: copying the block back to its device: %s", fn, ct_ctx_error(t->ctx));
    return CT_OK;
}

/* The weighting of a host block, as a CPU block is weighted. */
static void weigh_host(float *p, int64_t n, float w) {
    if (w == 0.0f) memset(p, 0, sizeof(float) * (size_t)n);   /* zeros even over NaN */
    else if (w != 1.0f)
        for (int64_t i = 0; i < n; i++) p[i] *= w;
}

ct_status ct__dist_weigh_block(ct_tensor *g, float w) {
    return w == 0.0f ? ct_inplace_fill(g, 0.0f) : w != 1.0f ? ct_inplace_scale(g, w) : CT_OK;
}

/* Whether block t goes through host memory: when asked (stage_through_host), or a device block
 * that several processes reduce without an NCCL communicator. */
static bool through_host(const ct_dist *d, const ct_tensor *t) {
    return d->stage_host ||
           (ct_tensor_device(t).type != CT_CPU && d->mpi && d->size > 1 && !ct__dist_gpu_has_comm(d));
}

ct_status ct_dist_average_grads(ct_dist *d, ct_module *root, int64_t count, int64_t global_count) {
    if (!d) return CT_E_NULL;
    if (count < 0 || count > global_count)
        return ct_fail(d->ctx, CT_E_ARG, "dist: average_grads: this rank's count %lld must be in [0, "
                                         "global_count = %lld] (global_count is the sum of every "
                                         "rank's count: ct_dist_allreduce_i64 with CT_DIST_SUM)",
                       (long long)count, (long long)global_count);
    ct_tensor *g = flat_block(d, root, true, "average_grads");
    if (!g) return ct_ctx_status(d->ctx);
    const float w = ct_dist_grad_weight(count, global_count);
    const int64_t n = ct_numel(g);
    const ct_device dev = ct_tensor_device(g);
    const bool multi = d->mpi && d->size > 1;
    if (through_host(d, g)) {   /* weighted and reduced on the host */
        float *h = to_host(d, g, "average_grads");
        if (!h) return ct_ctx_status(d->ctx);
        weigh_host(h, n, w);
        ct_status s = ct_dist_allreduce_f32(d, h, n, CT_DIST_SUM);
        if (s == CT_OK) s = from_host(d, g, h, "average_grads");
        free(h);
        return s;
    }
    if (dev.type == CT_CPU) {
        float *p = ct_data_f32(g);
        weigh_host(p, n, w);
        if (g->storage) g->storage->version++;
    } else {
        if (multi && dev.index != d->gpu_device)
            return ct_fail(d->ctx, CT_E_DEVICE, "dist: average_grads: the gradients are on cuda:%d but "
                                                "ct_dist_gpu_init gave rank %d cuda:%d: move the model "
                                                "to the device ct_dist_gpu_init chose",
                           dev.index, d->rank, d->gpu_device);
        ct_status s = ct__dist_weigh_block(g, w);
        if (s != CT_OK) return ct_fail(d->ctx, s, "dist: average_grads: %s", ct_ctx_error(g->ctx));
    }
    if (!multi) return CT_OK;
    return ct_dist_allreduce_tensor(d, g, CT_DIST_SUM);   /* the fixed order, or NCCL's on a GPU */
}

ct_status ct_dist_combine_grads(float *out, const float *const *grads, const int64_t *counts,
                                int k, int64_t n) {
    if (!out || !grads || !counts || k < 1 || n < 0) return CT_E_ARG;
    int64_t total = 0;
    for (int r = 0; r < k; r++) {
        if (counts[r] < 0 || (counts[r] > 0 && !grads[r])) return CT_E_ARG;
        total += counts[r];
    }
    float *w = malloc(sizeof(float) * (size_t)k);
    if (!w) return CT_E_NOMEM;
    for (int r = 0; r < k; r++) w[r] = ct_dist_grad_weight(counts[r], total);
    /* the ranks' contributions, as each rank scales its block: 0 (count 0), g (weight 1), w * g */
#define CONTRIB(r, i) (w[r] == 0.0f ? 0.0f : w[r] == 1.0f ? grads[r][i] : grads[r][i] * w[r])
    for (int64_t i = 0; i < n; i++) {
        if (k == 1) {   /* one rank: its block, untouched (or zeroed) */
            out[i] = CONTRIB(0, i);
            continue;
        }
        double acc = (double)CONTRIB(0, i);
        for (int r = 1; r < k; r++) acc += (double)CONTRIB(r, i);
        out[i] = (float)acc;
    }
#undef CONTRIB
    free(w);
    return CT_OK;
}

ct_status ct_dist_broadcast_params(ct_dist *d, ct_module *root) {
    if (!d) return CT_E_NULL;
    ct_tensor *p = flat_block(d, root, false, "broadcast_params");
    if (!p) return ct_ctx_status(d->ctx);
    const ct_device dev = ct_tensor_device(p);
    const bool multi = d->mpi && d->size > 1;
    if (through_host(d, p)) {
        float *h = to_host(d, p, "broadcast_params");
        if (!h) return ct_ctx_status(d->ctx);
        ct_status s = ct_dist_broadcast_f32(d, h, ct_numel(p), 0);
        /* rank 0's block is already what it sends: only the others write it back */
        if (s == CT_OK && d->rank != 0) s = from_host(d, p, h, "broadcast_params");
        free(h);
        return s;
    }
    if (!multi) return CT_OK;
    ct_status s;
    if (dev.type == CT_CPU) {
        s = ct_dist_broadcast_f32(d, ct_data_f32(p), ct_numel(p), 0);
    } else {
        if (dev.index != d->gpu_device)
            return ct_fail(d->ctx, CT_E_DEVICE, "dist: broadcast_params: the parameters are on cuda:%d but "
                                                "ct_dist_gpu_init gave rank %d cuda:%d",
                           dev.index, d->rank, d->gpu_device);
        s = ct__dist_gpu_broadcast(d, ct_data_f32(p), ct_numel(p), 0);
    }
    if (s == CT_OK && p->storage) p->storage->version++;
    return s;
}

static uint64_t hash_floats(const float *p, int64_t n) {
    uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)n;
    for (int64_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &p[i], sizeof b);
        h ^= b;
        h *= 0x100000001b3ULL;
        h ^= h >> 29;
    }
    return h;
}

ct_status ct_dist_check_params(ct_dist *d, ct_module *root) {
    if (!d) return CT_E_NULL;
    ct_tensor *p = flat_block(d, root, false, "check_params");
    if (!p) return ct_ctx_status(d->ctx);
    if (d->size == 1) return CT_OK;
    /* a block on a device is hashed from a host copy */
    const bool on_host = ct_tensor_device(p).type == CT_CPU;
    float *h = on_host ? NULL : to_host(d, p, "check_params");
    if (!on_host && !h) return ct_ctx_status(d->ctx);
    const uint64_t mine = hash_floats(h ? h : ct_data_f32(p), ct_numel(p));
    free(h);
    int64_t *all = malloc(sizeof(int64_t) * (size_t)d->size);
    if (!all) return ct_fail(d->ctx, CT_E_NOMEM, "dist: out of memory");
    ct_status s = ct_dist_allgather_i64(d, (int64_t)mine, all);
    if (s == CT_OK) {
        char list[256];
        size_t used = 0;
        int differ = 0;
        list[0] = '\0';
        for (int r = 1; r < d->size; r++) {
            if (all[r] == all[0]) continue;
            differ++;
            if (used < sizeof list - 16) {
                int w = snprintf(list + used, sizeof list - used, "%s%d", differ > 1 ? ", " : "", r);
                if (w > 0) used += (size_t)w;
            }
        }
        if (differ)
            s = ct_fail(d->ctx, CT_E_STATE, "dist: the parameters of %d of %d processes (rank%s %s%s) "
                                            "differ from rank 0's: ranks that should step together "
                                            "have diverged (different gradients, data or "
                                            "hyper-parameters?)",
                        differ, d->size, differ > 1 ? "s" : "", list, used >= sizeof list - 16 ? ", ..." : "");
    }
    free(all);
    return s;
}

/* ---- the world size in the training state --------------------------------------------------- */
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint32_t sum32(const uint8_t *p, size_t n) {   /* FNV-1a */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

void ct_dist_state_save(const ct_dist *d, uint8_t out[CT_DIST_STATE_BYTES]) {
    if (!out) return;
    memcpy(out, "CTDW", 4);
    put32(out + 4, 1);
    put32(out + 8, (uint32_t)ct_dist_size(d));
    put32(out + 12, sum32(out, 12));
}

ct_status ct_dist_state_check(ct_dist *d, const uint8_t *in, size_t n) {
    if (!d) return CT_E_NULL;
    if (!in || n != CT_DIST_STATE_BYTES)
        return ct_fail(d->ctx, CT_E_FORMAT, "dist: the saved world state has %zu bytes; expected %d "
                                            "(a training state from another version?)",
                       in ? n : 0, CT_DIST_STATE_BYTES);
    if (memcmp(in, "CTDW", 4) != 0 || get32(in + 12) != sum32(in, 12))
        return ct_fail(d->ctx, CT_E_FORMAT, "dist: the saved world state is damaged (bad %s)",
                       memcmp(in, "CTDW", 4) != 0 ? "magic" : "checksum");
    if (get32(in + 4) != 1)
        return ct_fail(d->ctx, CT_E_FORMAT, "dist: the saved world state has version %u; this build "
                                            "reads version 1",
                       get32(in + 4));
    uint32_t saved = get32(in + 8);
    if (saved != (uint32_t)d->size) {
        if (saved == 1)
            return ct_fail(d->ctx, CT_E_STATE, "dist: the run was saved by a single process and is "
                                               "resumed by %d; resume it without mpirun",
                           d->size);
        return ct_fail(d->ctx, CT_E_STATE, "dist: the run was saved by %u processes and is resumed "
                                           "by %d; resume it with mpirun -np %u",
                       saved, d->size, saved);
    }
    return CT_OK;
}
