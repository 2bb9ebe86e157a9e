/* engine/parallel/data_parallel.c — DataParallel over the GPUs of one process. Today: a clear
 * error with no device, a no-op wrapper with one, CT_E_UNSUPPORTED with several (until the
 * CUDA backend's tensors exist). See data_parallel.h. */
#include <stdio.h>
#include <stdlib.h>

#include "engine/parallel/data_parallel.h"
#include "engine/parallel/parallel_internal.h"
#include "engine/version.h"

struct ct_data_parallel {
    ct_module *model;
    int n;
    int *devices;
};

ct_data_parallel *ct__data_parallel_new_with(ct_module *model, const int *devices, int n_devices,
                                             int available, const char *why) {
    if (!model) return NULL;
    ct_ctx *ctx = model->ctx;
    if (n_devices < 0 || (n_devices > 0 && !devices)) {
        ct_fail(ctx, CT_E_ARG, "DataParallel: %d device indices%s", n_devices,
                n_devices > 0 ? " but a NULL list" : " (must be >= 0; 0 = every visible device)");
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
    if (n > 1) {
        ct_fail(ctx, CT_E_UNSUPPORTED, "DataParallel over %d GPUs in one process needs model replicas "
                                       "on each device and an NCCL reduction, which are not written "
                                       "yet; use one device, or one process per GPU with mpirun "
                                       "(ct_dist_gpu_init)",
                n);
        return NULL;
    }
    ct_data_parallel *dp = calloc(1, sizeof *dp);
    int *dev = calloc(1, sizeof(int));
    if (!dp || !dev) {
        free(dp);
        free(dev);
        ct_fail(ctx, CT_E_NOMEM, "DataParallel: out of memory");
        return NULL;
    }
    dev[0] = n_devices > 0 ? devices[0] : 0;
    dp->model = model;
    dp->n = 1;
    dp->devices = dev;
    return dp;
}

ct_data_parallel *ct_data_parallel_new(ct_module *model, const int *devices, int n_devices) {
    if (!model) return NULL;
    char why[160] = "";
    int available = ct_cuda_device_count(why, sizeof why);
    return ct__data_parallel_new_with(model, devices, n_devices, available, why);
}

void ct_data_parallel_free(ct_data_parallel *dp) {
    if (!dp) return;
    free(dp->devices);
    free(dp);
}

int ct_data_parallel_size(const ct_data_parallel *dp) { return dp ? dp->n : 0; }

ct_device ct_data_parallel_device(const ct_data_parallel *dp, int i) {
    if (!dp || i < 0 || i >= dp->n) return CT_DEVICE_CPU;
    return (ct_device){CT_CUDA, dp->devices[i]};
}

ct_module *ct_data_parallel_replica(ct_data_parallel *dp, int i) {
    if (!dp || i < 0 || i >= dp->n) return NULL;
    return dp->model;   /* one device: the model itself */
}

ct_status ct_data_parallel_scatter(ct_data_parallel *dp, const ct_batch *b, bool batch_first, int i,
                                   ct_batch *out) {
    if (!dp) return CT_E_NULL;
    return ct_batch_shard(dp->model->ctx, b, batch_first, i, dp->n, out);
}

ct_status ct_data_parallel_reduce_grads(ct_data_parallel *dp, const int64_t *counts) {
    if (!dp) return CT_E_NULL;
    if (!counts) return ct_fail(dp->model->ctx, CT_E_ARG, "DataParallel: reduce_grads: counts is NULL");
    if (counts[0] < 0)
        return ct_fail(dp->model->ctx, CT_E_ARG, "DataParallel: reduce_grads: count %lld is negative",
                       (long long)counts[0]);
    return CT_OK;   /* one replica: its gradient is the global one */
}

ct_status ct_data_parallel_broadcast_params(ct_data_parallel *dp) {
    return dp ? CT_OK : CT_E_NULL;   /* one replica: nothing to copy */
}
