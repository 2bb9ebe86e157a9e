/* engine/parallel/dist.h — data-parallel training over several processes (Open MPI on CPU,
 * NCCL on GPU bootstrapped over MPI).
 *
 * THE WORLD. `mpirun -np N prog` starts N copies of prog; each makes one ct_dist:
 *
 *     ct_dist *d = ct_dist_new(ctx, NULL);        // rank, size from the launcher
 *     if (!d) ... ct_ctx_error(ctx) ...
 *
 * Under mpirun (Open MPI sets OMPI_COMM_WORLD_SIZE / OMPI_COMM_WORLD_RANK; MPICH's Hydra sets
 * PMI_SIZE / PMI_RANK) ct_dist_new calls MPI_Init_thread (MPI_THREAD_FUNNELED: only the
 * thread that made the ct_dist calls MPI; the data loader's workers never do) on a private
 * duplicate of MPI_COMM_WORLD whose errors are returned, never fatal. Without those variables
 * it makes a single-process world (rank 0 of 1) and NEVER CALLS MPI: ordinary runs and the
 * unit tests do not touch it, and every collective below is the identity (or a copy). A build
 * without MPI (no libopenmpi-dev) still makes single-process worlds; launched as one of N > 1
 * processes it fails with CT_E_UNSUPPORTED rather than let N processes train alone.
 * ct_dist_free finalizes MPI when ct_dist_new initialised it; MPI cannot be initialised again
 * in the same process afterwards (make one ct_dist per process, for its whole life).
 *
 * DATA-PARALLEL TRAINING, the same as one process on the same global batch:
 *
 *   1. start: every rank builds the model from the same seed; ct_dist_broadcast_params copies
 *      rank 0's parameters to all anyway (ct_dist_check_params verifies they agree).
 *   2. every rank runs the SAME data loader (same dataset, seed and batch size B = the global
 *      batch), so it sees the global batch of every step, and keeps its own rows of it with
 *      ct_batch_shard: rank r gets rows [r*B/N, (r+1)*B/N), so the shards, in rank order,
 *      are the global batch. (Each rank loads the whole global batch — cheap next to a
 *      training step — and only computes on its rows; the loader's position is global, so
 *      saving it on rank 0 resumes every rank.)
 *   3. every rank computes the loss of its rows — a MEAN over its n_r counted targets
 *      (cross-entropy skips ignore_index/padding; a piano roll averages over real frames) —
 *      and runs backward, so its gradient is g_r = (1/n_r) sum of its per-target gradients.
 *   4. one allreduce of the counts gives n = sum n_r; ct_dist_average_grads then turns the
 *      flat gradient block of every rank into
 *              g = sum_r (n_r / n) * g_r  =  (1/n) * sum over ALL counted targets,
 *      the gradient of the single-process loss on the global batch. A rank with no rows or no
 *      counted target (n_r = 0) contributes exactly zero (even if its loss was NaN); when
 *      n = 0 the gradient is zero, as one process would get from a loss of 0.
 *   5. every rank then clips and steps with identical gradients, so the parameters stay
 *      identical on every rank without being sent again.
 *   Only rank 0 writes checkpoints, metrics and progress. Dropout is the one difference: a
 *   shard draws its masks for its own rows, so with dropout > 0 the runs agree in
 *   distribution, not in numbers (fork the dropout generator per rank, ct_rng_fork(&rng,
 *   rank), so that ranks do not repeat each other's masks).
 *
 * REDUCTION ORDER. ct_dist_allreduce_f32 and ct_dist_average_grads sum in a FIXED order by
 * default (CT_DIST_REDUCE_FIXED): the array is cut into N slices; rank s receives slice s of
 * every rank (MPI_Alltoallv), adds them in rank order 0, 1, ..., N-1 in double (starting from
 * rank 0's value) and rounds once to float, and the slices are gathered back (MPI_Allgatherv).
 * So the result is identical on every rank, bit for bit, independent of Open MPI's algorithm
 * choices, and equal to ct_dist_combine_grads computed in one process on the same shards.
 * CT_DIST_REDUCE_MPI uses MPI_Allreduce instead (Open MPI's tuned algorithms; order theirs).
 *
 * BLOCKS ON A GPU. The flat blocks may live on a CUDA device (ct_module_to). After
 * ct_dist_gpu_init in a build with NCCL, ct_dist_average_grads scales the block by
 * ct_dist_grad_weight on the device and sums it with ncclAllReduce (NCCL's order: reproducible
 * for the same world and NCCL version, but NOT the fixed order above, so not bitwise equal to
 * the CPU path), and ct_dist_broadcast_params uses ncclBroadcast. Without ct_dist_gpu_init, or
 * in a build without NCCL, the block makes a host round trip (copied to host memory, weighted
 * and reduced there exactly as a CPU block, copied back), so the result equals the CPU path
 * bit for bit. ct_dist_check_params hashes a host copy of the block on any device. In a
 * single-process world every device behaves as the CPU does (nothing changes when
 * count == global_count > 0, zeros when count is 0).
 *
 * HOW EXACT. N ranks give bit for bit what one process gives when it computes the same N
 * shards one after the other and combines them with ct_dist_combine_grads (and a resumed run
 * what an uninterrupted one gives). Against one process on the whole global batch they agree
 * to float rounding only: the weight gradients are sums over rows inside the GEMMs, which add
 * in another order when the rows are split (tests/check_mpi.sh: a 2-layer LSTM after 10 Adam
 * steps, max |difference| / max |weight| about 1e-7 to 1e-6, checked against 1e-5).
 *
 * ERRORS: status + message in the ctx given to ct_dist_new ("dist: ..."); nothing here prints
 * or exits. A collective must be called by every rank in the same order: when one rank fails
 * on its own (a bad file, a data error) the others would wait for it forever, so agree on
 * failures before the next collective (add a "failed" flag to the step's count allreduce)
 * or end the job with ct_dist_abort (apps only).
 *
 * OWNERSHIP: ct_dist_new / ct_dist_free (NULL is a no-op). The ct_dist borrows ctx (free it
 * before ct_ctx_free). Batches made by ct_batch_shard follow ct_batch's rules (engine/data.h).
 */
#ifndef CT_PARALLEL_DIST_H
#define CT_PARALLEL_DIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/data.h"
#include "engine/nn.h"
#include "engine/tensor.h"

typedef struct ct_dist ct_dist;

/* ---- the launcher ----------------------------------------------------------------------------- */
/* What the launcher's environment says, read without calling MPI. launched is false (size 1,
 * rank 0) when none of OMPI_COMM_WORLD_SIZE/RANK, PMI_SIZE/PMI_RANK is set. local_rank and
 * local_size (processes on this machine) come from OMPI_COMM_WORLD_LOCAL_RANK/LOCAL_SIZE or
 * MPI_LOCALRANKID, else -1 (ct_dist_new then asks MPI). */
typedef struct ct_dist_launch {
    bool launched;
    int size, rank, local_rank, local_size;
    const char *launcher;     /* "Open MPI", "PMI" or "none" (a constant) */
} ct_dist_launch;
/* CT_E_ARG (message in ctx, which may be NULL) when a variable is malformed (not an integer,
 * size < 1, rank outside [0, size), only one of a size/rank pair set). */
ct_status ct_dist_launch_env(ct_ctx *ctx, ct_dist_launch *out);

/* ---- the world ---------------------------------------------------------------------------------- */
typedef enum ct_dist_mode {
    CT_DIST_AUTO = 0,   /* MPI when launched by mpirun, else a single-process world */
    CT_DIST_SINGLE,     /* a single-process world even under mpirun (never calls MPI) */
    CT_DIST_MPI         /* MPI always (not launched: MPI's singleton world of size 1) */
} ct_dist_mode;

typedef enum ct_dist_reduce {
    CT_DIST_REDUCE_FIXED = 0,   /* float sums in rank order, in double: bitwise reproducible */
    CT_DIST_REDUCE_MPI          /* MPI_Allreduce */
} ct_dist_reduce;

typedef struct ct_dist_opts {
    ct_dist_mode mode;          /* CT_DIST_AUTO */
    ct_dist_reduce reduce;      /* CT_DIST_REDUCE_FIXED */
    /* false. A testing aid: ct_dist_average_grads and ct_dist_broadcast_params stage EVERY
     * flat block through the host round trip that device blocks take without NCCL (copy to a
     * host buffer, the host collective, copy back through ct_to + ct_inplace_copy), even CPU
     * blocks and single-process worlds, so that a machine without a GPU runs that code. The
     * results are those of the ordinary path, bit for bit. */
    bool stage_through_host;
} ct_dist_opts;
ct_dist_opts ct_dist_defaults(void);

/* NULL + error in ctx: a malformed launcher environment (CT_E_ARG), MPI needed but not built
 * in (CT_E_UNSUPPORTED), MPI already finalized in this process or MPI's world not matching
 * the launcher's (CT_E_STATE), MPI_Init failing (CT_E_IO). opts NULL: ct_dist_defaults(). */
ct_dist *ct_dist_new(ct_ctx *ctx, const ct_dist_opts *opts);
/* Frees the world; finalizes MPI if ct_dist_new initialised it (every rank must call it, as
 * MPI_Finalize waits for the others). NULL is a no-op. */
void ct_dist_free(ct_dist *d);
/* Ends EVERY process of the job at once (MPI_Abort with code): for apps/, after an error that
 * not every rank saw. Returns (doing nothing) in a single-process world: the caller then exits
 * as usual. */
void ct_dist_abort(ct_dist *d, int code);

int ct_dist_rank(const ct_dist *d);          /* 0..size-1; 0 for NULL */
int ct_dist_size(const ct_dist *d);          /* 1 for NULL */
int ct_dist_local_rank(const ct_dist *d);    /* rank among the processes of this machine */
int ct_dist_local_size(const ct_dist *d);    /* processes on this machine */
bool ct_dist_is_main(const ct_dist *d);      /* rank 0: the one that writes files and prints */
bool ct_dist_uses_mpi(const ct_dist *d);     /* false in a single-process world */
/* "rank 1 of 2 (local 1 of 2), Open MPI v4.1.4, fixed-order reductions" or "single process";
 * returns buf. */
char *ct_dist_describe(const ct_dist *d, char *buf, size_t n);

/* ---- collectives (every rank calls them, in the same order, with the same n) ---------------- */
typedef enum ct_dist_op { CT_DIST_SUM = 0, CT_DIST_MEAN, CT_DIST_MAX, CT_DIST_MIN } ct_dist_op;

/* In place over n host floats: every rank ends with the element-wise op over all ranks. SUM
 * and MEAN follow the reduction order above (MEAN = SUM / size, rounded once). */
ct_status ct_dist_allreduce_f32(ct_dist *d, float *x, int64_t n, ct_dist_op op);
/* Doubles (losses, sums for a global mean), in the fixed rank order too; and 64-bit
 * integers (token counts, flags: exact, MEAN is CT_E_ARG). */
ct_status ct_dist_allreduce_f64(ct_dist *d, double *x, int64_t n, ct_dist_op op);
ct_status ct_dist_allreduce_i64(ct_dist *d, int64_t *x, int64_t n, ct_dist_op op);
/* all[r] = rank r's v, for every r (all has size entries). */
ct_status ct_dist_allgather_i64(ct_dist *d, int64_t v, int64_t *all);
/* Copies root's n floats / bytes to every rank. */
ct_status ct_dist_broadcast_f32(ct_dist *d, float *x, int64_t n, int root);
ct_status ct_dist_broadcast_bytes(ct_dist *d, void *x, size_t n, int root);
ct_status ct_dist_barrier(ct_dist *d);
/* A contiguous float32 tensor: CPU tensors as ct_dist_allreduce_f32; CUDA tensors through
 * NCCL after ct_dist_gpu_init (CT_E_DEVICE before; CT_E_UNSUPPORTED in a build without NCCL).
 * In a single-process world: the identity, on any device. */
ct_status ct_dist_allreduce_tensor(ct_dist *d, ct_tensor *t, ct_dist_op op);

/* ---- modules and gradients --------------------------------------------------------------------- */
/* Copies root's flat parameter block from rank 0 to every rank (flattening it if needed), on
 * whatever device it lives (see BLOCKS ON A GPU). */
ct_status ct_dist_broadcast_params(ct_dist *d, ct_module *root);
/* CT_E_STATE when the flat parameter blocks are not bitwise identical on every rank (the
 * message lists the ranks that differ from rank 0); a 64-bit hash per rank is compared. */
ct_status ct_dist_check_params(ct_dist *d, ct_module *root);

/* The weight of a rank's mean-loss gradient in the global mean: count / global_count,
 * computed in double and rounded to float once; exactly 1 when count == global_count > 0,
 * exactly 0 when count or global_count is 0. */
float ct_dist_grad_weight(int64_t count, int64_t global_count);
/* After backward on this rank's shard, whose loss was the mean over `count` counted targets,
 * with global_count = the sum of every rank's count (one ct_dist_allreduce_i64 per step):
 * replaces root's flat gradient block on every rank by the gradient of the global mean,
 * sum_r weight_r * g_r (weight_r = ct_dist_grad_weight(count_r, global_count); a rank with
 * count 0 contributes zeros whatever its block holds), summed in the fixed order (NCCL's on a
 * GPU after ct_dist_gpu_init: see BLOCKS ON A GPU; CT_E_DEVICE when the block is on another
 * CUDA device than the one ct_dist_gpu_init chose). In a
 * single-process world: nothing changes when count == global_count > 0; the block is zeroed
 * when count is 0. CT_E_ARG when count < 0 or count > global_count. */
ct_status ct_dist_average_grads(ct_dist *d, ct_module *root, int64_t count, int64_t global_count);
/* The same arithmetic in one process, for k gradient blocks of n floats (k simulated ranks,
 * or k accumulated micro-batches): out[i] = float(sum over r = 0..k-1, in order, in double,
 * of weight_r * grads[r][i]), weight_r = ct_dist_grad_weight(counts[r], sum of counts);
 * bit-identical to k ranks running ct_dist_average_grads with CT_DIST_REDUCE_FIXED. out may
 * be one of the grads. CT_E_ARG for k < 1, n < 0, a negative count or a NULL pointer. */
ct_status ct_dist_combine_grads(float *out, const float *const *grads, const int64_t *counts,
                                int k, int64_t n);

/* ---- sharding a global batch -------------------------------------------------------------------- */
/* Rank r's rows of a batch of `rows` rows: [*begin, *end) = [r*rows/size, (r+1)*rows/size)
 * (integer division). The ranges of r = 0..size-1 tile [0, rows) in order, each row exactly
 * once, sizes differing by at most one; a range is empty when rows < size. */
void ct_dist_shard_range(int64_t rows, int rank, int size, int64_t *begin, int64_t *end);
/* Rank `rank`'s shard of a collated batch (ct_collate / ct_dataloader_next; batch_first as
 * collated): rows [begin, end) of inputs, targets, lengths and mask, cut to the longest of
 * those rows (steps = max of their lengths: only padding is removed), as contiguous tensors
 * in ctx's current scope; index/piece_id/offset copied (owned by out); items = the distinct
 * items among the rows; epoch and number copied; skipped = the global batch's on rank 0, 0
 * elsewhere (so a sum over ranks counts each once). A range with no rows gives rows = 0,
 * steps = 0 and NULL tensors: that rank computes nothing this step, but still takes part in
 * the step's collectives with count 0. *out is cleared first (zero it before its first use,
 * as for ct_collate; clear it with ct_batch_clear). Errors in ctx (CT_E_ARG, CT_E_SHAPE). */
ct_status ct_batch_shard(ct_ctx *ctx, const ct_batch *global, bool batch_first, int rank, int size,
                         ct_batch *out);

/* ---- resuming with the same world --------------------------------------------------------------- */
/* The world size, as CT_DIST_STATE_BYTES bytes: "CTDW", then u32 little endian: version (1),
 * the number of processes, and a checksum (32-bit FNV-1a of the 12 bytes before it). Put them in the training state's user data (ct_train_state_save) beside the data
 * loader's position. */
#define CT_DIST_STATE_BYTES 16
void ct_dist_state_save(const ct_dist *d, uint8_t out[CT_DIST_STATE_BYTES]);
/* CT_E_FORMAT for a wrong size, magic, version or checksum; CT_E_STATE when the state was
 * saved by a world of another size ("... saved by 2 processes; resume with mpirun -np 2"). */
ct_status ct_dist_state_check(ct_dist *d, const uint8_t *in, size_t n);

/* ---- GPUs (NCCL, bootstrapped over MPI) ---------------------------------------------------------- */
/* Picks CUDA device local_rank % device_count (written to *device; may be NULL), makes it
 * current, and creates an NCCL communicator over the world: rank 0 makes the unique id
 * (ncclGetUniqueId) and MPI broadcasts it. CT_E_DEVICE with no CUDA device, or with more
 * processes on this machine than CUDA devices (NCCL cannot give two ranks one GPU; the message
 * says how many to start), CT_E_UNSUPPORTED in a build without CUDA, NCCL or MPI (the message
 * says which). In a single-process world it only picks the device. Collectives on CUDA
 * buffers are queued on the engine's stream of that device (no host wait). A failure seen
 * by one process alone (inside ncclCommInitRank) can leave the others waiting there: an
 * application ends the job then (ct_dist_abort). Freed by ct_dist_free. */
ct_status ct_dist_gpu_init(ct_dist *d, int *device);

#endif
