/* engine/kernels_nn.h — private: the "nn" kernel group of a backend (softmax, losses,
 * embedding, max). Each backend (engine/cpu/nn.c, later engine/cuda/nn.cu) fills one. */
#ifndef CT_KERNELS_NN_H
#define CT_KERNELS_NN_H

#include "engine/internal.h"

struct ct_kernels_nn {
    int reserved; /* kernels are added here with their ops */
};

#endif
