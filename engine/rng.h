/* engine/rng.h — explicit, seedable random generators (no hidden global state).
 *
 * A ct_rng is a plain struct (xoshiro256** with a cached normal), so it can live on the
 * stack, be copied, and be saved into a checkpoint byte for byte with ct_rng_save. Every
 * engine function that draws random numbers takes the generator it draws from.
 */
#ifndef CT_RNG_H
#define CT_RNG_H

#include <stdint.h>

#include "engine/tensor.h"

struct ct_rng {
    uint64_t s[4];
    uint32_t has_spare;    /* a second normal from the last Box-Muller pair is cached */
    float spare;
};
typedef struct ct_rng ct_rng;

#define CT_RNG_STATE_BYTES 40   /* the serialised state: 4 x u64, has_spare, spare (little endian) */

void ct_rng_seed(ct_rng *r, uint64_t seed);        /* any seed, 0 included */
uint64_t ct_rng_u64(ct_rng *r);
double ct_rng_uniform(ct_rng *r);                  /* [0, 1), 53 bits */
float ct_rng_normal(ct_rng *r);                    /* N(0, 1) */
uint64_t ct_rng_below(ct_rng *r, uint64_t n);      /* uniform in [0, n), unbiased; n = 0 gives 0 */
/* An independent stream derived from r's state and key (r is not advanced): for worker
 * threads and per-item streams that must not depend on which thread runs them. */
ct_rng ct_rng_fork(const ct_rng *r, uint64_t key);

void ct_rng_save(const ct_rng *r, uint8_t out[CT_RNG_STATE_BYTES]);
/* CT_E_FORMAT (r unchanged) on a wrong size, the all-zero state, or a bad spare flag. */
ct_status ct_rng_load(ct_rng *r, const uint8_t *in, size_t n);

/* Tensors of random values (float32, current scope). */
ct_tensor *ct_rand(ct_ctx *ctx, ct_rng *r, int ndim, const int64_t *shape);      /* U[0,1) */
ct_tensor *ct_randn(ct_ctx *ctx, ct_rng *r, int ndim, const int64_t *shape);     /* N(0,1) */
/* U[lo, hi) (never hi itself; lo == hi gives lo); finite bounds, lo <= hi, else CT_E_ARG. */
ct_tensor *ct_uniform(ct_ctx *ctx, ct_rng *r, float lo, float hi, int ndim, const int64_t *shape);
/* 1.0 with probability p (element-wise, p in [0,1]), else 0.0; p's shape. */
ct_tensor *ct_bernoulli(ct_rng *r, ct_tensor *p);
/* n draws from each row of probs ([C] or [N, C]; non-negative, need not sum to 1) ->
 * int64 [n] or [N, n]. Without replacement the indices of a row are distinct, and each row
 * needs at least n positive weights (CT_E_ARG otherwise, as for an all-zero row). */
ct_tensor *ct_multinomial(ct_rng *r, ct_tensor *probs, int64_t n, bool replacement);

#endif
