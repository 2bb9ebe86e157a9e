/* engine/parallel/data_parallel.h — DataParallel: one process, several GPUs (torch's
 * nn.DataParallel): each device holds a replica of the model, takes its rows of every batch
 * (ct_batch_shard), and the replicas' gradients are combined with the token-count weights of
 * engine/parallel/dist.h before the step on replica 0, whose parameters are then copied back
 * to the others.
 *
 *     ct_data_parallel *dp = ct_data_parallel_new(model, NULL, 0);   // every visible GPU
 *     if (!dp) ... ct_ctx_error(ctx): "DataParallel: no CUDA device ..." ...
 *     for (each batch b) {
 *         for (int i = 0; i < ct_data_parallel_size(dp); i++) {
 *             ct_batch part = {0};
 *             ct_data_parallel_scatter(dp, b, false, i, &part);
 *             ... loss of ct_data_parallel_replica(dp, i) on part (count[i]), backward ...
 *             ct_batch_clear(&part);
 *         }
 *         ct_data_parallel_reduce_grads(dp, count);   // replica 0 holds the global gradient
 *         ... clip, ct_optim_step on replica 0 (the model itself) ...
 *         ct_data_parallel_broadcast_params(dp);
 *     }
 *     ct_data_parallel_free(dp);
 *
 * WHAT WORKS TODAY. With no CUDA device — a build without CUDA, no driver, no GPU —
 * ct_data_parallel_new fails with CT_E_DEVICE and a message saying why and what to do instead
 * (train on the CPU, or on several processes with mpirun). With ONE device it is a no-op
 * wrapper: replica 0 is the model itself, scatter gives the whole batch, reduce_grads and
 * broadcast_params change nothing, so code written for DataParallel runs unchanged on one
 * GPU (move the model there with ct_module_to, engine/device.h). Several devices need model
 * replicas on each device and an NCCL reduction, which are not written yet: CT_E_UNSUPPORTED,
 * suggesting one process per GPU with mpirun (ct_dist_gpu_init), the recommended setup anyway.
 *
 * OWNERSHIP: ct_data_parallel_free frees the wrapper (and any replicas it made), never the
 * model; NULL is a no-op. The model must outlive the wrapper. Errors go to the model's context.
 */
#ifndef CT_PARALLEL_DATA_PARALLEL_H
#define CT_PARALLEL_DATA_PARALLEL_H

#include "engine/parallel/dist.h"

typedef struct ct_data_parallel ct_data_parallel;

/* devices: CUDA device indices (distinct, each < the device count), or NULL / n_devices 0 for
 * every visible device. NULL + error in the model's context: CT_E_DEVICE (no CUDA device, or
 * an index that is not there), CT_E_ARG (a repeated or negative index), CT_E_UNSUPPORTED
 * (more than one device, until replicas are written). */
ct_data_parallel *ct_data_parallel_new(ct_module *model, const int *devices, int n_devices);
void ct_data_parallel_free(ct_data_parallel *dp);

int ct_data_parallel_size(const ct_data_parallel *dp);                 /* devices used; 0 for NULL */
ct_device ct_data_parallel_device(const ct_data_parallel *dp, int i);  /* cuda:k of replica i */
ct_module *ct_data_parallel_replica(ct_data_parallel *dp, int i);      /* 0: the model; NULL out of range */
/* Replica i's rows of batch b (ct_batch_shard with rank i of size replicas). */
ct_status ct_data_parallel_scatter(ct_data_parallel *dp, const ct_batch *b, bool batch_first, int i,
                                   ct_batch *out);
/* counts[i]: the counted targets of replica i's loss (a mean over them). Replica 0's gradient
 * block becomes the gradient of the global mean (ct_dist_combine_grads' arithmetic). */
ct_status ct_data_parallel_reduce_grads(ct_data_parallel *dp, const int64_t *counts);
/* Copies replica 0's parameters to the other replicas (after the optimizer step). */
ct_status ct_data_parallel_broadcast_params(ct_data_parallel *dp);

#endif
