/* engine/cpu/kernels.h — private: the CPU backend's kernel groups. */
#ifndef CT_CPU_KERNELS_H
#define CT_CPU_KERNELS_H

#include "engine/kernels_index.h"
#include "engine/kernels_nn.h"
#include "engine/kernels_optim.h"

extern const struct ct_kernels_nn ct_cpu_kernels_nn;        /* engine/cpu/nn.c */
extern const struct ct_kernels_index ct_cpu_kernels_index;  /* engine/cpu/index.c */
extern const struct ct_kernels_layernorm ct__cpu_kernels_layernorm; /* engine/cpu/layernorm.c */
extern const struct ct_kernels_optim ct_cpu_kernels_optim;     /* engine/cpu/optim.c */

#endif
