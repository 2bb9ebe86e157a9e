/* engine/cpu/nn.c — CPU kernels of the nn group (see engine/kernels_nn.h). */
#include "engine/cpu/kernels.h"

const struct ct_kernels_nn ct_cpu_kernels_nn = {0};
