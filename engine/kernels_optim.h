/* engine/kernels_optim.h — private: the optimizer kernel group of a backend (SGD, Adam, and the
 * sums and scaling of gradient clipping), reached through ct_backend.optim. */
#ifndef CT_KERNELS_OPTIM_H
#define CT_KERNELS_OPTIM_H

#include <stdbool.h>
#include <stdint.h>

/* The optimizer kernel group of a backend (CPU: engine/cpu/optim.c).
 * Plain device arrays of n floats; the coefficients are precomputed by engine/optim.c. */
typedef struct ct_sgd_coefs {
    float lr, momentum, one_minus_dampening, weight_decay;
    bool use_momentum, first_step, nesterov, use_wd;
} ct_sgd_coefs;

typedef struct ct_adam_coefs {
    float neg_step_size;     /* -lr / (1 - beta1^t) */
    float bc2_sqrt;          /* sqrt(1 - beta2^t) */
    float beta1, one_minus_beta1, beta2, one_minus_beta2, eps;
    float weight_decay;      /* Adam's L2 term (0 for AdamW) */
    float decay;             /* AdamW's factor 1 - lr * weight_decay (1 for Adam) */
    bool use_wd, use_decay;
} ct_adam_coefs;

struct ct_kernels_optim {
    void (*sgd)(float *p, const float *g, float *buf, int64_t n, const ct_sgd_coefs *c);
    void (*adam)(float *p, const float *g, float *m, float *v, int64_t n, const ct_adam_coefs *c);
    double (*sum_squares)(const float *x, int64_t n);        /* in double */
    void (*scale)(float *x, int64_t n, float s);
};

#endif
