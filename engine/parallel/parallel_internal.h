/* engine/parallel/parallel_internal.h — private to engine/parallel/ and its tests. */
#ifndef CT_PARALLEL_INTERNAL_H
#define CT_PARALLEL_INTERNAL_H

#include "engine/parallel/data_parallel.h"

/* ct_data_parallel_new with the device count given (what ct_cuda_device_count would say, and
 * its reason when 0), so that tests can check the zero-, one- and several-device paths on a
 * machine without a GPU. */
ct_data_parallel *ct__data_parallel_new_with(ct_module *model, const int *devices, int n_devices,
                                             int available, const char *why);

#endif
