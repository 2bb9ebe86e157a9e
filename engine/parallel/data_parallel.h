/* engine/parallel/data_parallel.h — DataParallel: one process, several GPUs (torch's
 * nn.DataParallel): each device holds a replica of the model, takes its rows of every batch
 * (ct_batch_shard), and the replicas' gradients are combined with the token-count weights of
 * engine/parallel/dist.h before the step on replica 0 (the model itself, the one set of
 * weights the optimizer updates), whose parameters are then copied back to the others.
 *
 *     ct_module_to(model, CT_DEVICE_CUDA(0));                        // replica 0 is the model
 *     ct_data_parallel *dp = ct_data_parallel_new(model, NULL, 0);   // every visible GPU
 *     if (!dp) ... ct_ctx_error(ctx): "DataParallel: no CUDA device ..." ...
 *     ct_optim *opt = ct_adam_new(model, ct_adam_defaults(1e-3));    // on replica 0 only
 *     for (each batch b) {                                           // collated on the host
 *         int64_t count[n];                                          // n = ct_data_parallel_size
 *         ct_optim_zero_grad(opt);
 *         for (int i = 0; i < n; i++) {
 *             ct_batch part = {0};
 *             ct_data_parallel_scatter(dp, &b, false, i, &part);     // rows of replica i, on its GPU
 *             ct_tensor *loss;
 *             cc_loss(ct_data_parallel_replica(dp, i), &part, -100, &rng, &loss, &count[i]);
 *             ct_backward(loss);                                     // into replica i's block
 *             ct_batch_clear(&part);
 *         }
 *         ct_data_parallel_reduce_grads(dp, count);   // replica 0 holds the global gradient
 *         ... clip, ct_optim_step(opt) ...
 *         ct_data_parallel_broadcast_params(dp);      // every replica has the new weights
 *     }
 *     ct_data_parallel_free(dp);
 *
 * THE DEVICES. With no CUDA device (a build without CUDA, no driver, no GPU)
 * ct_data_parallel_new fails with CT_E_DEVICE and a message saying why and what to do instead
 * (train on the CPU, or on several processes with mpirun). The model must already be on
 * replica 0's device, cuda:devices[0] (CT_E_DEVICE naming ct_module_to otherwise). With ONE
 * device the wrapper is a no-op: replica 0 is the model, scatter gives the whole batch (on
 * that device), reduce_grads and broadcast_params change nothing, so code written for
 * DataParallel runs unchanged on one GPU. With several, ct_data_parallel_new flattens the
 * model and makes replicas 1..n-1 with ct_module_clone (engine/nn.h) on cuda:devices[i]; they
 * have no optimizer. The GPUs' work is queued asynchronously on each device's stream, so the
 * replicas of the loop above overlap as far as the host does not wait (reading a loss value
 * with ct_copy_to_host does).
 *
 * THE ARITHMETIC. scatter(i) = ct_batch_shard(b, rank i of n), then its inputs, targets and
 * mask are moved to replica i's device (lengths stay on the host, where the RNN front end
 * reads them; models/composer.c's cc_loss takes the batch on either device), and replica i's
 * train/eval flags are set to the model's. reduce_grads(counts) makes replica 0's flat
 * gradient block sum_i weight_i * g_i with weight_i = ct_dist_grad_weight(counts[i], sum of
 * counts) — the gradient of the mean loss over the whole batch; a replica with count 0
 * contributes zeros whatever its block holds — and then zeroes the other replicas' blocks for
 * the next step's backward. Two transports:
 *   - NCCL (a CUDA=1 build with NCCL: ncclCommInitAll at construction): every block is
 *     weighted on its device, then ncclReduce (sum) into replica 0 and, after the step,
 *     ncclBroadcast of replica 0's parameters, all on the engine's per-device streams (so in
 *     order with the kernels around them). NCCL sums in its own order: the result agrees with
 *     ct_dist_combine_grads to float rounding, not bit for bit.
 *   - the host path (a CUDA build without NCCL): every counted block to the host,
 *     ct_dist_combine_grads (replica order, in double: bit for bit what ct_dist_average_grads
 *     gives over processes), the result back into replica 0; broadcast goes through the host.
 * Against one device on the whole batch the result agrees to float rounding (the GEMMs sum
 * the rows in another order), as for mpirun (engine/parallel/dist.h, HOW EXACT).
 *
 * WHAT WORKS TODAY. The zero- and one-device answers, construction, scatter, the host path's
 * reduction and broadcast are tested on the CPU (tests/engine/test_data_parallel.c runs
 * replicas on the CPU through a private test mode, parallel_internal.h); the CUDA/NCCL
 * transport compiles in CUDA=1 builds and has tests that skip without GPUs ("needs 2 CUDA
 * devices"), but has not run on a GPU yet. One process per GPU with mpirun
 * (ct_dist_gpu_init) remains the recommended setup for speed: no host thread drives every
 * GPU, and no replica waits for another's kernels to be queued.
 *
 * PRECISION. TF32 and bf16 (ct_device_set_tf32 / ct_device_set_bf16, engine/device.h) are
 * settings of a device, not of a model: turn them on for every replica's device
 * (ct_data_parallel_device(dp, i)), or the replicas compute in different precisions.
 *
 * OWNERSHIP: ct_data_parallel_free frees the wrapper and the replicas it made, never the
 * model; NULL is a no-op. The model must outlive the wrapper and must not gain parameters
 * while wrapped (CT_E_STATE at the next reduce). Errors go to the model's context.
 */
#ifndef CT_PARALLEL_DATA_PARALLEL_H
#define CT_PARALLEL_DATA_PARALLEL_H

#include "engine/parallel/dist.h"

typedef struct ct_data_parallel ct_data_parallel;

/* devices: CUDA device indices (distinct, each < the device count), or NULL / n_devices 0 for
 * every visible device; replica i lives on cuda:devices[i]. model: a root module already on
 * cuda:devices[0]. NULL + error in the model's context: CT_E_DEVICE (no CUDA device, an index
 * that is not there, the model elsewhere, NCCL failing to start), CT_E_ARG (a repeated or
 * negative index, a child module), or a replica's error (out of memory on its device). */
ct_data_parallel *ct_data_parallel_new(ct_module *model, const int *devices, int n_devices);
void ct_data_parallel_free(ct_data_parallel *dp);

int ct_data_parallel_size(const ct_data_parallel *dp);                 /* devices used; 0 for NULL */
ct_device ct_data_parallel_device(const ct_data_parallel *dp, int i);  /* cuda:k of replica i */
ct_module *ct_data_parallel_replica(ct_data_parallel *dp, int i);      /* 0: the model; NULL out of range */
/* Replica i's rows of batch b (ct_batch_shard with rank i of size replicas; *out as there),
 * inputs, targets and mask on replica i's device, lengths on the host; replica i's train/eval
 * flags set to the model's. CT_E_ARG for i out of range. */
ct_status ct_data_parallel_scatter(ct_data_parallel *dp, const ct_batch *b, bool batch_first, int i,
                                   ct_batch *out);
/* counts[i] (size entries): the counted targets of replica i's loss (a mean over them).
 * Replica 0's gradient block becomes the gradient of the global mean (ct_dist_combine_grads'
 * arithmetic, see above) and the other replicas' blocks are zeroed. CT_E_ARG for NULL counts
 * or a negative count. With one replica nothing changes. */
ct_status ct_data_parallel_reduce_grads(ct_data_parallel *dp, const int64_t *counts);
/* Copies replica 0's parameters to the other replicas (after the optimizer step): every
 * replica's parameter block is then bitwise replica 0's. */
ct_status ct_data_parallel_broadcast_params(ct_data_parallel *dp);

#endif
