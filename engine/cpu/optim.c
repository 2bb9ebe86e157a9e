/* engine/cpu/optim.c — CPU kernels of the optimizers and of gradient clipping: one fused pass
 * over the flat arrays.
 *
 * Every operation is an IEEE-rounded float multiply, add, divide or square root in the order
 * engine/optim.h documents (no contraction into FMA: C11 mode compiles with
 * -ffp-contract=off), so the SSE body and the scalar tail give the same bits for the same
 * element, and a run is bit-reproducible whatever the array length.
 */
#include <math.h>

#include "engine/cpu/kernels.h"
#include "engine/optim.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#define CT_OPTIM_SSE 1
#endif

/* ---- SGD ------------------------------------------------------------------------------------- */
static void sgd_kernel(float *restrict p, const float *restrict g, float *restrict buf, int64_t n,
                       const ct_sgd_coefs *c) {
    const float lr = c->lr, mom = c->momentum, omd = c->one_minus_dampening, wd = c->weight_decay;
    if (!c->use_momentum) {
        if (c->use_wd)
            for (int64_t i = 0; i < n; i++) p[i] = p[i] - lr * (g[i] + wd * p[i]);
        else
            for (int64_t i = 0; i < n; i++) p[i] = p[i] - lr * g[i];
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        float d = c->use_wd ? g[i] + wd * p[i] : g[i];
        float b = c->first_step ? d : buf[i] * mom + omd * d;
        buf[i] = b;
        float u = c->nesterov ? d + mom * b : b;
        p[i] = p[i] - lr * u;
    }
}

/* ---- Adam / AdamW ----------------------------------------------------------------------------- */
static inline void adam_one(float *p, const float *g, float *m, float *v, const ct_adam_coefs *c) {
    float pp = *p, gg = *g;
    if (c->use_decay) pp = pp * c->decay;
    if (c->use_wd) gg = gg + c->weight_decay * pp;
    float mm = *m * c->beta1 + c->one_minus_beta1 * gg;
    float vv = *v * c->beta2 + c->one_minus_beta2 * gg * gg;
    float denom = sqrtf(vv) / c->bc2_sqrt + c->eps;
    *m = mm;
    *v = vv;
    *p = pp + c->neg_step_size * mm / denom;
}

static void adam_kernel(float *restrict p, const float *restrict g, float *restrict m,
                        float *restrict v, int64_t n, const ct_adam_coefs *c) {
    int64_t i = 0;
#ifdef CT_OPTIM_SSE
    const __m128 decay = _mm_set1_ps(c->decay), wd = _mm_set1_ps(c->weight_decay),
                 b1 = _mm_set1_ps(c->beta1), omb1 = _mm_set1_ps(c->one_minus_beta1),
                 b2 = _mm_set1_ps(c->beta2), omb2 = _mm_set1_ps(c->one_minus_beta2),
                 bc2 = _mm_set1_ps(c->bc2_sqrt), eps = _mm_set1_ps(c->eps),
                 step = _mm_set1_ps(c->neg_step_size);
    for (; i + 4 <= n; i += 4) {
        __m128 pp = _mm_loadu_ps(p + i), gg = _mm_loadu_ps(g + i);
        if (c->use_decay) pp = _mm_mul_ps(pp, decay);
        if (c->use_wd) gg = _mm_add_ps(gg, _mm_mul_ps(wd, pp));
        __m128 mm = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(m + i), b1), _mm_mul_ps(omb1, gg));
        __m128 vv = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(v + i), b2),
                               _mm_mul_ps(_mm_mul_ps(omb2, gg), gg));
        __m128 denom = _mm_add_ps(_mm_div_ps(_mm_sqrt_ps(vv), bc2), eps);
        _mm_storeu_ps(m + i, mm);
        _mm_storeu_ps(v + i, vv);
        _mm_storeu_ps(p + i, _mm_add_ps(pp, _mm_div_ps(_mm_mul_ps(step, mm), denom)));
    }
#endif
    for (; i < n; i++) adam_one(p + i, g + i, m + i, v + i, c);
}

/* ---- clipping -------------------------------------------------------------------------------- */
/* Sum of squares in double, in a fixed order (four partial sums), so it is reproducible. */
static double sum_squares_kernel(const float *x, int64_t n) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        double a = x[i], b = x[i + 1], c = x[i + 2], d = x[i + 3];
        s0 += a * a;
        s1 += b * b;
        s2 += c * c;
        s3 += d * d;
    }
    for (; i < n; i++) s0 += (double)x[i] * x[i];
    return (s0 + s1) + (s2 + s3);
}

static void scale_kernel(float *restrict x, int64_t n, float s) {
    for (int64_t i = 0; i < n; i++) x[i] *= s;
}

const struct ct_kernels_optim ct_cpu_kernels_optim = {
    .sgd = sgd_kernel,
    .adam = adam_kernel,
    .sum_squares = sum_squares_kernel,
    .scale = scale_kernel,
};
