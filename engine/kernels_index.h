/* engine/kernels_index.h — private: the "index" kernel group of a backend (gather, scatter,
 * index_select, where, masked_fill, dropout masks). */
#ifndef CT_KERNELS_INDEX_H
#define CT_KERNELS_INDEX_H

#include "engine/internal.h"

struct ct_kernels_index {
    int reserved; /* kernels are added here with their ops */
};

#endif
