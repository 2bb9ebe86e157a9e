/* engine/unary_math.h — the element-wise unary functions (ct_unop, engine/internal.h) and their
 * derivatives: one source for the CPU kernels (engine/cpu/backend.c) and the CUDA kernels
 * (engine/cuda/backend.cu, where nvcc compiles them for the device too), so that the two
 * backends cannot drift apart. Private to the backends. */
#ifndef CT_UNARY_MATH_H
#define CT_UNARY_MATH_H

#include <math.h>

#include "engine/internal.h"

#ifdef __CUDACC__
#define CT_UNARY_FN static inline __host__ __device__
#else
#define CT_UNARY_FN static inline
#endif

/* 1 / (1 + e^-x), without overflow for large |x| */
CT_UNARY_FN float ct__sigmoidf(float x) {
    return x >= 0 ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x));
}

/* op(x); p0, p1: the op's scalars (clamp's bounds, the scalar of *_SCALAR) */
CT_UNARY_FN float ct__unary1(ct_unop op, float x, float p0, float p1) {
    switch (op) {
    case CT_UN_NEG: return -x;
    case CT_UN_EXP: return expf(x);
    case CT_UN_LOG: return logf(x);
    case CT_UN_SQRT: return sqrtf(x);
    case CT_UN_TANH: return tanhf(x);
    case CT_UN_SIGMOID: return ct__sigmoidf(x);
    case CT_UN_RELU: return x > 0 ? x : 0.0f;
    case CT_UN_CLAMP: return x < p0 ? p0 : (x > p1 ? p1 : x);
    case CT_UN_ADD_SCALAR: return x + p0;
    case CT_UN_MUL_SCALAR: return x * p0;
    case CT_UN_POW_SCALAR: return powf(x, p0);
    case CT_UN_RSUB_SCALAR: return p0 - x;
    default: return NAN;
    }
}

/* the derivative of op at x, given y = op(x) */
CT_UNARY_FN float ct__dunary1(ct_unop op, float x, float y, float p0, float p1) {
    (void)p1;
    switch (op) {
    case CT_UN_NEG: return -1.0f;
    case CT_UN_EXP: return y;
    case CT_UN_LOG: return 1.0f / x;
    case CT_UN_SQRT: return 0.5f / y;
    case CT_UN_TANH: return 1.0f - y * y;
    case CT_UN_SIGMOID: return y * (1.0f - y);
    case CT_UN_RELU: return x > 0 ? 1.0f : 0.0f;
    case CT_UN_CLAMP: return (x >= p0 && x <= p1) ? 1.0f : 0.0f;
    case CT_UN_ADD_SCALAR: return 1.0f;
    case CT_UN_MUL_SCALAR: return p0;
    case CT_UN_POW_SCALAR: return p0 == 0.0f ? 0.0f : p0 * powf(x, p0 - 1.0f);
    case CT_UN_RSUB_SCALAR: return -1.0f;
    default: return NAN;
    }
}

#endif
