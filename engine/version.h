/* engine/version.h — version and build configuration (what `cantor --version` prints). */
#ifndef CT_VERSION_H
#define CT_VERSION_H

#include <stdbool.h>
#include <stddef.h>

const char *ct_version(void);           /* "0.1.0" */
const char *ct_blas_config(void);       /* OpenBLAS's config string, e.g. "OpenBLAS 0.3.21 ..." */
const char *ct_blas_core(void);         /* the kernel OpenBLAS chose, e.g. "Haswell" */
int ct_blas_threads(void);              /* OpenBLAS's thread count */
void ct_blas_set_threads(int n);        /* sets OpenBLAS's thread count (n >= 1) */
bool ct_cuda_compiled(void);            /* built with CUDA=1 */
/* Number of usable CUDA devices: 0 without CUDA or without a working driver/device. If
 * why is not NULL it receives a short reason when the count is 0. */
int ct_cuda_device_count(char *why, size_t why_n);

#endif
