/* engine/cpu/index.c — CPU kernels of the index group (see engine/kernels_index.h). */
#include "engine/cpu/kernels.h"

const struct ct_kernels_index ct_cpu_kernels_index = {0};
