/* engine/parallel/dist_internal.h — private to engine/parallel/: the ct_dist object and the
 * GPU (NCCL) hooks. Not an API. */
#ifndef CT_PARALLEL_DIST_INTERNAL_H
#define CT_PARALLEL_DIST_INTERNAL_H

#include "engine/parallel/dist.h"

#ifdef CT_HAVE_MPI
#include <mpi.h>
#endif

struct ct_dist {
    ct_ctx *ctx;
    int rank, size, local_rank, local_size;
    bool mpi;                  /* collectives go through MPI (false: the single-process world) */
    bool owns_mpi;             /* ct_dist_new called MPI_Init: ct_dist_free finalizes */
    ct_dist_reduce reduce;
    bool stage_host;           /* ct_dist_opts.stage_through_host */
    void *scratch;             /* the fixed-order reduction's receive buffer */
    size_t scratch_bytes;
    char impl[96];             /* "Open MPI v4.1.4" ... */
#ifdef CT_HAVE_MPI
    MPI_Comm comm;             /* a duplicate of MPI_COMM_WORLD, errors returned */
#endif
    void *gpu;                 /* nccl.c's state; NULL until ct_dist_gpu_init */
    int gpu_device;            /* -1 until ct_dist_gpu_init */
};

/* nccl.c: frees the GPU state (called by ct_dist_free before MPI is finalized). */
void ct__dist_gpu_free(ct_dist *d);
/* nccl.c: SUM/MEAN/MAX/MIN over a contiguous float32 CUDA buffer of n elements, in place. */
ct_status ct__dist_gpu_allreduce(ct_dist *d, float *dev_ptr, int64_t n, ct_dist_op op);
/* nccl.c: root's n floats of a CUDA buffer to every rank (ncclBroadcast, in place). */
ct_status ct__dist_gpu_broadcast(ct_dist *d, float *dev_ptr, int64_t n, int root);
/* nccl.c: whether ct_dist_gpu_init made an NCCL communicator (a build with NCCL and MPI, a
 * world of more than one process): device blocks then reduce through NCCL, else through host
 * memory. */
bool ct__dist_gpu_has_comm(const ct_dist *d);

#endif
