/* models/composer.h — the composer networks as engine modules, their training loss, and
 * self-describing checkpoints.
 *
 * THE NETWORKS (one module tree; parameter names as the state_dict of the PyTorch module
 * with attributes embed, rnn, out):
 *   token model (melody, performance, audio, tokens)
 *       embed  Embedding(vocab, embed)                 embed.weight [V, E]
 *       rnn    LSTM | GRU | RNN(E, hidden, layers, dropout between layers)
 *                                                      rnn.weight_ih_l0 [G*H, E], rnn.weight_hh_l0,
 *                                                      rnn.bias_ih_l0, rnn.bias_hh_l0, ... _l1 ...
 *       dropout(p = cfg.dropout) on the RNN's output (training mode only)
 *       out    Linear(hidden, vocab)                   out.weight [V, H], out.bias [V]
 *   piano-roll model: the same without the embedding: frames of 88 keys (0/1 floats) go into
 *       the RNN, and out gives one logit per key (independent Bernoulli outputs).
 * The root module's kind is "Composer"; its configuration is cc_model_config(m). Train it
 * with engine/optim.h (optimizers take the root) and switch dropout off for evaluation with
 * ct_module_train(m, false).
 *
 *     cc_config cfg = cc_config_default(CC_ENC_MELODY);
 *     ct_module *m = cc_model_new(ctx, &rng, &cfg);
 *     ct_optim *opt = ct_adam_new(m, ct_adam_defaults(1e-3));
 *     ... for each batch b (ct_collate / ct_dataloader with collate.targets = true):
 *         ct_scope_begin(ctx);
 *         ct_tensor *loss; int64_t count;
 *         if (cc_loss(m, b, -100, &rng, &loss, &count) == CT_OK) {
 *             ct_optim_zero_grad(opt); ct_backward(loss); ct_optim_step(opt);
 *         }
 *         ct_scope_end(ctx);
 *     cc_save("run/ckpt.safetensors", m, 0, NULL, NULL);
 *     ...
 *     ct_module *again = cc_load(ctx, "run/ckpt.safetensors");   // config from the file
 *
 * CHECKPOINTS are safetensors files (engine/safetensors.h) holding every parameter under its
 * state_dict name and the configuration as JSON under the metadata key "cantor_config"
 * (models/config.h), so torch users can read them with safetensors.torch.load_file and the
 * file alone rebuilds the model. They are plain float32 little-endian data: a checkpoint
 * loads on the CPU whatever device wrote it.
 *
 * OWNERSHIP: cc_model_new / cc_load return a module tree the caller frees with
 * ct_module_free (NULL is a no-op). Tensors returned by cc_forward / cc_loss belong to the
 * current scope. Errors are a status plus a message in the module's (or the given) context
 * (ct_ctx_status / ct_ctx_error), naming the function, the shapes or the file.
 */
#ifndef CC_COMPOSER_H
#define CC_COMPOSER_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/data.h"
#include "engine/nn.h"
#include "engine/rng.h"
#include "models/config.h"

/* ---- the model ------------------------------------------------------------------------------ */
/* Builds the model cfg describes (resolved first; a bad cfg is CT_E_ARG naming the field),
 * parameters initialised as PyTorch's layers do, drawn from rng. NULL + error in ctx. */
ct_module *cc_model_new(ct_ctx *ctx, ct_rng *rng, const cc_config *cfg);
/* The resolved configuration of a composer module; NULL for any other module. */
const cc_config *cc_model_config(const ct_module *m);
/* Its parts (NULL when absent or m is not a composer): the Embedding (token models), the
 * fused RNN (engine/rnn.h) and the output Linear. */
ct_module *cc_model_embed(const ct_module *m);
ct_module *cc_model_rnn(const ct_module *m);
ct_module *cc_model_out(const ct_module *m);
/* The number of parameters (float elements); -1 for a non-composer. */
int64_t cc_model_num_params(const ct_module *m);
/* "melody LSTM 2x256, 1.2M parameters" into buf (snprintf's contract). */
int cc_model_describe(const ct_module *m, char *buf, size_t n);
/* "1.2M", "45.3K", "812": a parameter count, short. Returns buf. */
char *cc_format_count(int64_t count, char *buf, size_t n);

/* Starts the output bias at the training data's frequencies (bench/RESULTS.md: with the
 * default start a piano-roll model sits at the "independent keys" level for many epochs).
 * freq[i] (n = vocab values, each in [0, 1], clamped to [1e-6, 1 - 1e-6]) is how often key
 * i is on in a training frame (piano roll: bias = logit(freq)) or how often token i occurs
 * (token model: bias = log(freq), the unigram distribution at the start). CT_E_ARG for a
 * wrong n or a value outside [0, 1] (NaN included); the bias is unchanged then. */
ct_status cc_model_init_output_bias(ct_module *m, const double *freq, int64_t n);
/* Add-one smoothed frequencies: freq[i] = (counts[i] + 1) / (total + 2) (for keys: on-frames
 * of key i among total frames; the smoothing keeps never-seen keys finite). */
void cc_smoothed_frequencies(const int64_t *counts, int64_t total, int64_t n, double *freq);

/* ---- forward and loss ------------------------------------------------------------------------ *
 * cc_forward: logits of a whole time-major batch.
 *   x        token model: int64 [T, B] tokens in 0..vocab-1; piano roll: float32 [T, B, 88]
 *   lengths  int64 [B] (1 <= lengths[b] <= T) or NULL (all T): the RNN stops at each row's
 *            end (engine/rnn.h: nothing from the padding reaches a valid output); past the
 *            end the RNN output is zero, so the logits there are out.bias
 *   rng      dropout (training mode with dropout > 0); may be NULL otherwise
 * Returns float32 [T, B, vocab] (vocab = 88 for a piano roll), or NULL + error. */
#define cc_forward(m, x, lengths, rng) cc_forward_at(CT_SRC, m, x, lengths, rng)
ct_tensor *cc_forward_at(ct_src src, ct_module *m, ct_tensor *x, ct_tensor *lengths, ct_rng *rng);

/* cc_loss: the training loss of a collated batch (engine/data.h, ct_collate with
 * targets = true and batch_first = false): b->inputs, b->targets, b->lengths, b->mask.
 *   token model: cross-entropy of the logits against b->targets (int64 [T, B]), the mean over
 *     the targets != ignore_index (use the collate's ignore_index, -100 by default), so padded
 *     positions do not count; *count = the number of counted targets.
 *   piano roll: binary cross-entropy with logits summed over the 88 keys, averaged over the
 *     real frames (b->mask [T, B]); *count = the number of real frames (sum of the mask).
 * *loss (0-d, differentiable) * *count is the summed NLL (nats), what evaluation adds up
 * (per token, or per frame summed over keys as the polyphonic benchmarks count). A batch with
 * nothing to count gives loss 0 and count 0. On error *loss is NULL and the status returned. */
#define cc_loss(m, b, ignore_index, rng, loss, count) \
    cc_loss_at(CT_SRC, m, b, ignore_index, rng, loss, count)
ct_status cc_loss_at(ct_src src, ct_module *m, const ct_batch *b, int64_t ignore_index,
                     ct_rng *rng, ct_tensor **loss, int64_t *count);

/* ---- checkpoints (models/checkpoint.c) ------------------------------------------------------- */
/* Writes every parameter and the metadata: "cantor_config" (the JSON of the model's config)
 * first, then the caller's n_meta pairs (distinct keys, not "cantor_config"). Atomic (see
 * engine/safetensors.h): a failed save leaves an existing file untouched. Errors in m's
 * context. */
ct_status cc_save(const char *path, ct_module *m, int n_meta, const char *const *meta_keys,
                  const char *const *meta_values);
/* Reads only the configuration of a checkpoint. CT_E_FORMAT (in ctx) for a file without
 * "cantor_config" or with a malformed one, naming the file. */
ct_status cc_read_config(ct_ctx *ctx, const char *path, cc_config *out);
/* Builds the model the checkpoint's config describes and loads its weights (CPU). NULL +
 * error in ctx (a bad file, a config that does not match the tensors, ...). */
ct_module *cc_load(ct_ctx *ctx, const char *path);
/* Loads a checkpoint's weights into an existing composer. Refuses (CT_E_FORMAT, m unchanged)
 * a checkpoint whose config differs in anything but dropout, with both descriptions and the
 * differences: "ckpt.safetensors: a performance LSTM 3x512 checkpoint, but the model asked for
 * is melody GRU 2x256 (checkpoint vs model: encoding performance vs melody, ...)". */
ct_status cc_load_weights(ct_module *m, const char *path);

#endif
