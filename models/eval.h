/* models/eval.h — how well a composer predicts a set of whole sequences: the summed negative
 * log-likelihood (nats) and the number of predictions it is averaged over, counted as the
 * published tables count.
 *
 * THE PROTOCOL (next-step prediction over whole sequences; models/composer.h's training loss
 * summed instead of averaged):
 *   - a sequence of n steps gives n - 1 predictions: the model reads steps 0..n-2 and predicts
 *     steps 1..n-1; its first step is never scored, and its state starts at zero (as in
 *     training); a sequence of fewer than 2 steps predicts nothing and is counted as too short;
 *   - token models (melody, performance, ...): the NLL of a prediction is -log softmax(z)[y],
 *     so nll = total / tokens is the NLL per token and perplexity = exp(nll);
 *   - piano roll: the NLL of a prediction is the Bernoulli NLL summed over the 88 keys,
 *     -sum_k [y_k log s(z_k) + (1 - y_k) log(1 - s(z_k))], so nll = total / predicted steps is
 *     the NLL per time step (not per key) of Boulanger-Lewandowski et al. 2012 and Bai et al.
 *     2018 (locuslab/TCN's music_test.py): a frame-weighted average over every piece, not a
 *     mean of per-piece averages. perplexity = exp(nll) is reported for symmetry;
 *   - deterministic: evaluation mode (no dropout), no gradient, no random windows. Sequences
 *     are sorted by length (longest first), batched, and run through the RNN in chunks of
 *     `chunk` steps whose final state starts the next chunk, so a long sequence costs bounded
 *     memory and gives the same figure as one forward pass over it (to float rounding; the sums
 *     are accumulated in double). The result does not depend on the dataset's order;
 *   - it runs where the model is (ct_module_to, engine/device.h): on a GPU the figures agree
 *     with the CPU's to float rounding.
 *
 * OWNERSHIP: nothing is kept; the dataset's items are fetched with ct_dataset_get (rng NULL)
 * and freed here. Errors: a status plus a message in the model's context naming the item
 * (index and source) and what was wrong (a token outside the vocabulary, frames of the wrong
 * width, tokens given to a piano-roll model, ...). The model's training flag and the context's
 * grad mode are restored on return.
 */
#ifndef CC_EVAL_H
#define CC_EVAL_H

#include <stdint.h>

#include "engine/data.h"
#include "engine/nn.h"

typedef struct cc_eval_opts {
    int64_t batch;   /* sequences per forward pass, >= 1 (default 16) */
    int64_t chunk;   /* steps per forward call, >= 1; the state is carried (default 512) */
} cc_eval_opts;

cc_eval_opts cc_eval_defaults(void);

typedef struct cc_eval_result {
    double nll_sum;      /* nats over every prediction */
    int64_t count;       /* predictions: tokens (token models) or time steps (piano roll) */
    int64_t pieces;      /* sequences that were scored */
    int64_t too_short;   /* sequences of fewer than 2 steps (nothing to predict) */
    double nll;          /* nll_sum / count: per token, or per time step summed over the keys
                            (NaN when count is 0) */
    double perplexity;   /* exp(nll) */
} cc_eval_result;

/* Evaluates composer m on every item of ds (tokens for a token model, frames of width 88 for
 * a piano roll). o may be NULL (the defaults). On failure *out is zeroed and the status
 * returned (message in m's context). */
ct_status cc_eval_dataset(ct_module *m, const ct_dataset *ds, const cc_eval_opts *o,
                          cc_eval_result *out);

#endif
