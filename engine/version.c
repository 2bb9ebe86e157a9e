/* engine/version.c — version and build configuration. */
#include <cblas.h>
#include <stdio.h>

#include "engine/version.h"

#ifndef CT_VERSION
#define CT_VERSION "0.0.0-dev"
#endif

/* OpenBLAS's own extensions (declared in its cblas.h on Debian; repeated to be explicit) */
char *openblas_get_config(void);
char *openblas_get_corename(void);
int openblas_get_num_threads(void);
void openblas_set_num_threads(int);

const char *ct_version(void) { return CT_VERSION; }
const char *ct_blas_config(void) { return openblas_get_config(); }
const char *ct_blas_core(void) { return openblas_get_corename(); }
int ct_blas_threads(void) { return openblas_get_num_threads(); }
void ct_blas_set_threads(int n) { openblas_set_num_threads(n < 1 ? 1 : n); }

#ifdef CT_HAVE_CUDA
int ct__cuda_device_count(char *why, size_t n);   /* engine/cuda/device.cu */
bool ct_cuda_compiled(void) { return true; }
int ct_cuda_device_count(char *why, size_t n) { return ct__cuda_device_count(why, n); }
#else
bool ct_cuda_compiled(void) { return false; }
int ct_cuda_device_count(char *why, size_t n) {
    if (why && n) snprintf(why, n, "built without CUDA (rebuild with 'make CUDA=1')");
    return 0;
}
#endif
