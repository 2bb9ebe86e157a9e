/* engine/parallel/nccl.c — the GPU side of the process world: one CUDA device per rank
 * (local_rank % device count) and an NCCL communicator bootstrapped over MPI (rank 0's
 * ncclUniqueId is broadcast with MPI_Bcast). The NCCL part compiles only with CT_HAVE_CUDA,
 * CT_HAVE_NCCL (link -lnccl) and CT_HAVE_MPI; otherwise ct_dist_gpu_init says what is
 * missing. Collectives run on the engine's own stream of the device (ct__cuda_stream_c), so
 * they are ordered after the kernels that wrote the buffer and before those that read it
 * next, without a host wait. See dist.h. */
#include <stdio.h>
#include <stdlib.h>

#include "engine/parallel/dist_internal.h"
#include "engine/parallel/parallel_internal.h"
#include "engine/version.h"

#ifdef CT_HAVE_CUDA
#include <cuda_runtime.h>
#endif
#if defined(CT_HAVE_CUDA) && defined(CT_HAVE_NCCL) && defined(CT_HAVE_MPI)
#include <nccl.h>
#define CT_DIST_NCCL 1
#endif

#ifdef CT_DIST_NCCL
typedef struct gpu_state {
    ncclComm_t comm;       /* NULL in a world of one */
} gpu_state;

static ct_status nccl_fail(ct_dist *d, ncclResult_t r, const char *what) {
    return ct_fail(d->ctx, CT_E_DEVICE, "dist: %s failed on rank %d of %d (cuda:%d): %s", what, d->rank,
                   d->size, d->gpu_device, ncclGetErrorString(r));
}

#endif

ct_status ct_dist_gpu_init(ct_dist *d, int *device) {
    if (!d) return CT_E_NULL;
    if (d->gpu_device >= 0) {
        if (device) *device = d->gpu_device;
        return CT_OK;
    }
#ifndef CT_HAVE_CUDA
    (void)device;
    return ct_fail(d->ctx, CT_E_UNSUPPORTED, "dist: gpu_init: this build has no CUDA (rebuild with "
                                             "'make CUDA=1'); on the CPU, MPI reduces the gradients "
                                             "(no gpu_init needed)");
#else
    char why[160] = "";
    const int n = ct_cuda_device_count(why, sizeof why);
    if (n < 1)
        return ct_fail(d->ctx, CT_E_DEVICE, "dist: gpu_init: rank %d of %d: %s; train on the CPU "
                                            "(MPI reduces the gradients)",
                       d->rank, d->size, why);
    const int dev = d->local_rank % n;
    if (d->mpi && d->size > 1 && d->local_size > n)   /* NCCL refuses two ranks on one GPU */
        return ct_fail(d->ctx, CT_E_DEVICE, "dist: gpu_init: rank %d of %d: %d processes on this machine "
                                            "but %d CUDA device%s: start at most %d per machine (mpirun "
                                            "--map-by ppr:%d:node), or train on the CPU",
                       d->rank, d->size, d->local_size, n, n == 1 ? "" : "s", n, n);
#ifndef CT_DIST_NCCL
    if (d->mpi && d->size > 1)
        return ct_fail(d->ctx, CT_E_UNSUPPORTED, "dist: gpu_init: %d processes need NCCL to reduce "
                                                 "gradients on GPUs, and this build has %s",
                       d->size,
#ifdef CT_HAVE_MPI
                       "no NCCL (build with CT_HAVE_NCCL and -lnccl)"
#else
                       "no MPI (install libopenmpi-dev)"
#endif
        );
#endif
    cudaError_t ce = cudaSetDevice(dev);
    if (ce != cudaSuccess)
        return ct_fail(d->ctx, CT_E_DEVICE, "dist: gpu_init: cudaSetDevice(%d) on rank %d: %s", dev, d->rank,
                       cudaGetErrorString(ce));
#ifdef CT_DIST_NCCL
    gpu_state *g = calloc(1, sizeof *g);
    if (!g) return ct_fail(d->ctx, CT_E_NOMEM, "dist: gpu_init: out of memory");
    d->gpu_device = dev;
    if (d->mpi && d->size > 1) {
        ncclUniqueId id;
        ncclResult_t r = ncclSuccess;
        if (d->rank == 0) r = ncclGetUniqueId(&id);
        /* agree on rank 0's id first, so that no rank waits for a broadcast that fails */
        int64_t ok = r == ncclSuccess;
        ct_status s = ct_dist_allreduce_i64(d, &ok, 1, CT_DIST_MIN);
        if (s == CT_OK && !ok)
            s = d->rank == 0 ? nccl_fail(d, r, "ncclGetUniqueId")
                             : ct_fail(d->ctx, CT_E_DEVICE, "dist: gpu_init: rank 0 could not make "
                                                            "an NCCL id (see its message)");
        if (s == CT_OK) s = ct_dist_broadcast_bytes(d, &id, sizeof id, 0);
        if (s == CT_OK) {
            r = ncclCommInitRank(&g->comm, d->size, id, d->rank);
            if (r != ncclSuccess) s = nccl_fail(d, r, "ncclCommInitRank");
        }
        if (s != CT_OK) {
            free(g);
            d->gpu_device = -1;
            return s;
        }
    }
    d->gpu = g;
#else
    d->gpu_device = dev;
#endif
    if (device) *device = dev;
    return CT_OK;
#endif
}

void ct__dist_gpu_free(ct_dist *d) {
#ifdef CT_DIST_NCCL
    gpu_state *g = d ? d->gpu : NULL;
    if (g) {
        if (g->comm) ncclCommDestroy(g->comm);
        free(g);
        d->gpu = NULL;
    }
#else
    (void)d;
#endif
}

#ifdef CT_DIST_NCCL
/* The rank's NCCL state, or NULL after "dist: WHAT before ct_dist_gpu_init" (CT_E_DEVICE). */
static gpu_state *comm_of(ct_dist *d, const char *what) {
    gpu_state *g = d->gpu;
    if (g && g->comm) return g;
    ct_fail(d->ctx, CT_E_DEVICE, "dist: %s before ct_dist_gpu_init (rank %d of %d)", what, d->rank, d->size);
    return NULL;
}
#endif

ct_status ct__dist_gpu_allreduce(ct_dist *d, float *dev_ptr, int64_t n, ct_dist_op op) {
#ifdef CT_DIST_NCCL
    gpu_state *g = comm_of(d, "allreduce of a CUDA tensor");
    if (!g) return CT_E_DEVICE;
    const ncclRedOp_t rop = op == CT_DIST_MAX ? ncclMax : op == CT_DIST_MIN ? ncclMin
                                                      : op == CT_DIST_MEAN ? ncclAvg : ncclSum;
    if (n == 0) return CT_OK;
    ncclResult_t r = ncclAllReduce(dev_ptr, dev_ptr, (size_t)n, ncclFloat, rop, g->comm, ct__cuda_stream_c(d->gpu_device));
    if (r != ncclSuccess) return nccl_fail(d, r, "ncclAllReduce");
    return CT_OK;   /* queued on the engine's stream: what reads the result next waits for it */
#else
    (void)dev_ptr;
    (void)n;
    (void)op;
    return ct_fail(d->ctx, CT_E_UNSUPPORTED, "dist: allreduce of a CUDA tensor on rank %d of %d: this "
                                             "build has no NCCL",
                   d->rank, d->size);
#endif
}

bool ct__dist_gpu_has_comm(const ct_dist *d) {
#ifdef CT_DIST_NCCL
    const gpu_state *g = d ? d->gpu : NULL;
    return g && g->comm;
#else
    (void)d;
    return false;
#endif
}

ct_status ct__dist_gpu_broadcast(ct_dist *d, float *dev_ptr, int64_t n, int root) {
#ifdef CT_DIST_NCCL
    gpu_state *g = comm_of(d, "broadcast of a CUDA buffer");
    if (!g) return CT_E_DEVICE;
    if (n == 0) return CT_OK;
    ncclResult_t r = ncclBroadcast(dev_ptr, dev_ptr, (size_t)n, ncclFloat, root, g->comm, ct__cuda_stream_c(d->gpu_device));
    if (r != ncclSuccess) return nccl_fail(d, r, "ncclBroadcast");
    return CT_OK;   /* queued on the engine's stream, like the kernels around it */
#else
    (void)dev_ptr;
    (void)n;
    (void)root;
    return ct_fail(d->ctx, CT_E_UNSUPPORTED, "dist: broadcast of a CUDA buffer on rank %d of %d: this "
                                             "build has no NCCL",
                   d->rank, d->size);
#endif
}
