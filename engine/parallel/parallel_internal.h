/* engine/parallel/parallel_internal.h — private to engine/parallel/ and its tests. */
#ifndef CT_PARALLEL_INTERNAL_H
#define CT_PARALLEL_INTERNAL_H

#include "engine/parallel/data_parallel.h"

#ifdef CT_HAVE_CUDA
#include <cuda_runtime.h>
/* engine/cuda/device.cu: the stream every kernel of CUDA device `device` runs on. NCCL
 * collectives are queued on it too, so they follow the backward kernels that wrote their
 * buffers and precede the optimizer step that reads them, with no host wait. */
cudaStream_t ct__cuda_stream_c(int device);
#endif

/* grads.c: a device block weighted in place as a rank's or replica's share of the global mean:
 * w == 0 writes zeros (even over NaN), w == 1 leaves it, else scales it (on its device's stream). */
ct_status ct__dist_weigh_block(ct_tensor *g, float w);

/* Where ct__data_parallel_new_with puts the replicas and how it combines their gradients. */
typedef enum ct__dp_mode {
    CT__DP_AUTO = 0,       /* replica i on cuda:devices[i]; NCCL when the build has it, else the
                              host path (what ct_data_parallel_new does) */
    CT__DP_HOST_REDUCE,    /* on the GPUs too, but the host path even with NCCL (tests compare
                              the two) */
    CT__DP_CPU_REPLICAS    /* TEST MODE: every replica on the CPU (the model must be there), the
                              host path; the device indices are still checked against
                              `available`. Every step of the logic but the CUDA/NCCL transport
                              runs on a machine without a GPU. */
} ct__dp_mode;

/* ct_data_parallel_new with the device count given (what ct_cuda_device_count would say, and
 * its reason when 0) and the mode, so that tests can check the zero-, one- and several-device
 * paths on a machine without a GPU. */
ct_data_parallel *ct__data_parallel_new_with(ct_module *model, const int *devices, int n_devices,
                                             int available, const char *why, ct__dp_mode mode);
/* "nccl" or "host": how reduce_grads and broadcast_params move the blocks ("none" with one
 * replica or NULL). */
const char *ct__data_parallel_transport(const ct_data_parallel *dp);

#endif
