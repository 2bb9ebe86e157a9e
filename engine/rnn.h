/* engine/rnn.h — recurrent layers: fused multi-layer LSTM / GRU / Elman RNN (training and
 * stepwise sampling), and single cells built from primitive ops.
 *
 * FUSED LAYERS (ct_rnn_new, ct_rnn_forward)
 *   A module of kind "LSTM", "GRU" or "RNN" whose parameters are named and shaped exactly as
 *   torch.nn.LSTM / GRU / RNN's state_dict, so weights move between the two both ways:
 *       weight_ih_l{k} [G*H, in_k]   (in_0 = input_size, in_k = hidden_size for k > 0)
 *       weight_hh_l{k} [G*H, H]
 *       bias_ih_l{k}   [G*H]         (only when cfg.bias)
 *       bias_hh_l{k}   [G*H]
 *   with G = 4 (LSTM, gate blocks i, f, g, o), 3 (GRU, blocks r, z, n) or 1 (RNN), in that
 *   order per layer. Initialisation: every parameter U(-1/sqrt(H), 1/sqrt(H)) drawn from rng
 *   in parameter order (as PyTorch's reset_parameters).
 *       LSTM: i = s(Wii x + bii + Whi h + bhi), f = s(...), g = tanh(...), o = s(...)
 *             c' = f*c + i*g,  h' = o*tanh(c')
 *       GRU:  r = s(Wir x + bir + Whr h + bhr), z = s(...),
 *             n = tanh(Win x + bin + r*(Whn h + bhn)),  h' = (1-z)*n + z*h
 *       RNN:  h' = tanh(Wih x + bih + Whh h + bhh)   (relu with CT_RNN_RELU)
 *
 *   Each layer runs as ONE graph node (outputs: the layer's output sequence and its final h,
 *   and c for an LSTM; ct_grad_fn_name gives "lstm_layer", "gru_layer", "rnn_tanh_layer" or
 *   "rnn_relu_layer"): one GEMM projects the inputs of all time steps, one GEMM per step
 *   does the recurrence, a fused kernel per step does the gates. Backward runs the
 *   recurrence backwards (one GEMM per step) and forms the weight gradients in large GEMMs
 *   over all steps. Dropout (cfg.dropout, training mode only) sits between layers, not after
 *   the last, and draws from the rng given to the forward call.
 *
 *   Variable lengths (lengths: int64 [B], 1 <= lengths[b] <= T) have PyTorch's packed
 *   sequence meaning: out is zero past a sequence's end, h_n / c_n hold the state at each
 *   sequence's own last step, and nothing from the padded inputs reaches any output or
 *   gradient (even NaN padding). The padded positions of x get a zero gradient.
 *
 * STEPWISE SAMPLING (ct_rnn_state, ct_rnn_step)
 *   ct_rnn_step advances a ct_rnn_state (h and c of every layer, batch B) by one time step
 *   without building a graph and without allocating: two matrix products and one fused gate
 *   kernel per layer (at batch 1 the products are single-threaded matrix-vector loops, which
 *   beat OpenBLAS's multi-threaded sgemv at these sizes). Dropout is never applied (sampling
 *   is evaluation). Stepping T times gives what ct_rnn_forward gives for the whole sequence
 *   (to rounding). The step reads the parameters' current values every call, so it follows
 *   optimizer updates and ct_module_flatten.
 *
 * DEVICES
 *   Everything above runs where the module's parameters are (ct_module_to, engine/device.h):
 *   inputs, h0 and c0 must be there too (CT_E_DEVICE names both devices otherwise); lengths
 *   and tokens may be on any device (they are read on the host). A ct_rnn_state lives on the
 *   module's device when it is made (make it after moving the module). On a CUDA state the
 *   float pointers of ct_rnn_step_f32 / ct_rnn_step_linear_f32 (x, logits) may be host or
 *   device memory, and *out_h is a device pointer.
 *
 * CELLS (ct_lstm_cell_new, ...; engine/rnn_cells.c)
 *   torch.nn.LSTMCell / GRUCell / RNNCell: parameters weight_ih [G*H, in], weight_hh [G*H, H],
 *   bias_ih, bias_hh (when bias), the same initialisation, and forward functions composed of
 *   ordinary differentiable ops (ct_matmul, ct_add, ct_sigmoid, ct_tanh, ct_chunk, ...), as
 *   a reference and for users writing their own loops.
 *
 * OWNERSHIP
 *   The modules are ordinary ct_modules: ct_module_free frees them (or their parent does).
 *   Tensors returned by the forward functions belong to the current scope. A ct_rnn_state is
 *   the caller's (ct_rnn_state_free; NULL is a no-op); the tensors it hands out
 *   (ct_rnn_state_h, ct_rnn_state_c, the out_h of ct_rnn_step) are owned by the state, are
 *   updated in place by every step and live until ct_rnn_state_free. The module must outlive
 *   its states.
 *
 * ERRORS
 *   Status + message in the module's context, naming the function, the shapes and the
 *   caller's file:line (the functions are macros passing CT_SRC), e.g.
 *   "rnn_forward: input [5, 3, 7]: the LSTM has input_size 6 (last dim) (at train.c:42)".
 */
#ifndef CT_RNN_H
#define CT_RNN_H

#include "engine/nn.h"

typedef enum ct_rnn_mode {
    CT_RNN_TANH = 0,   /* Elman RNN, tanh */
    CT_RNN_RELU,       /* Elman RNN, relu */
    CT_LSTM,
    CT_GRU
} ct_rnn_mode;

typedef struct ct_rnn_config {
    ct_rnn_mode mode;
    int64_t input_size, hidden_size;
    int num_layers;        /* >= 1 */
    bool bias;             /* bias_ih / bias_hh (PyTorch's default is true) */
    bool batch_first;      /* x and out are [B, T, .] instead of [T, B, .] */
    float dropout;         /* in [0, 1): between layers, training mode only */
} ct_rnn_config;

/* The number of gate blocks G of a mode (4, 3 or 1). */
int ct_rnn_gates(ct_rnn_mode mode);

/* A new fused recurrent module (kind "LSTM", "GRU" or "RNN"), parameters initialised from
 * rng. NULL + error in ctx on a bad configuration. */
ct_module *ct_rnn_new(ct_ctx *ctx, ct_rng *rng, const ct_rnn_config *cfg);
/* The configuration of a module made by ct_rnn_new; NULL for any other module. */
const ct_rnn_config *ct_rnn_config_of(const ct_module *m);

/* Memory for speed in training (what torch.utils.checkpoint does by hand): a layer that
 * recomputes runs its forward again in backward instead of keeping its gate activations
 * ([T*B, G*H] floats, the largest thing a layer saves; GRU: also its [T*B, H] aux) from
 * forward to backward. Recomputing costs that layer's forward once more (a first layer fed
 * by ct_rnn_forward_embedded: only its recurrent products).
 *   layers = 0..num_layers      the first `layers` layers recompute (0: none, the fastest;
 *                               num_layers: all, the least memory)
 *   CT_RNN_RECOMPUTE_AUTO       (the default) when one layer's gates take at least
 *                               CT_RNN_RECOMPUTE_MIN_BYTES, every layer but the last
 *                               recomputes, so backward holds at most two layers' gates
 *                               whatever the depth (a 3x512 LSTM at B32 T256: 462 -> 350 MB
 *                               peak RSS for some 15 % more time per step); a smaller model
 *                               keeps everything.
 * Results are the same either way (the same kernels on the same inputs). CT_E_ARG for a
 * module not made by ct_rnn_new or a count outside 0..num_layers. */
#define CT_RNN_RECOMPUTE_AUTO (-1)
#define CT_RNN_RECOMPUTE_MIN_BYTES ((int64_t)32 << 20)
ct_status ct_rnn_set_recompute(ct_module *m, int layers);
/* The setting (CT_RNN_RECOMPUTE_AUTO for any module not made by ct_rnn_new). */
int ct_rnn_recompute_layers(const ct_module *m);

/* Runs the whole sequence.
 *   x        float32 [T, B, input_size] ([B, T, input_size] when batch_first), any strides
 *   lengths  int64 [B] with 1 <= lengths[b] <= T, or NULL (every sequence has length T)
 *   h0, c0   float32 [num_layers, B, H] or NULL (zeros); c0 only for an LSTM
 *   rng      draws the dropout masks (training mode with dropout > 0); may be NULL otherwise
 *   out      [T, B, H] ([B, T, H] when batch_first): the last layer's h at every step
 *   h_n, c_n [num_layers, B, H]: the final states (c_n only for an LSTM, else set to NULL)
 * Any of out, h_n, c_n may be NULL when not wanted. Differentiable with respect to x, h0, c0
 * and every parameter. On error every output is set to NULL. */
#define ct_rnn_forward(m, x, lengths, h0, c0, rng, out, h_n, c_n) \
    ct_rnn_forward_at(CT_SRC, m, x, lengths, h0, c0, rng, out, h_n, c_n)
ct_status ct_rnn_forward_at(ct_src src, ct_module *m, ct_tensor *x, ct_tensor *lengths,
                            ct_tensor *h0, ct_tensor *c0, ct_rng *rng, ct_tensor **out,
                            ct_tensor **h_n, ct_tensor **c_n);

/* The same as ct_rnn_forward(m, ct_embedding(emb, tokens), lengths, ...), with the first
 * layer's input given as rows of an embedding table: emb float32 [V, input_size], tokens
 * int64 [T, B] ([B, T] when batch_first). When V < T*B the first layer projects the V table
 * rows once ([V, G*H]) and gathers, instead of projecting all T*B positions, which saves
 * that layer's input GEMM and both of its backward GEMMs. Gradients reach emb (and every
 * parameter, h0, c0). Tokens must lie in [0, V) except past a sequence's end (lengths),
 * where they are never read (any value, e.g. a padding id of -1, is fine). */
#define ct_rnn_forward_embedded(m, emb, tokens, lengths, h0, c0, rng, out, h_n, c_n) \
    ct_rnn_forward_embedded_at(CT_SRC, m, emb, tokens, lengths, h0, c0, rng, out, h_n, c_n)
ct_status ct_rnn_forward_embedded_at(ct_src src, ct_module *m, ct_tensor *emb, ct_tensor *tokens,
                                     ct_tensor *lengths, ct_tensor *h0, ct_tensor *c0,
                                     ct_rng *rng, ct_tensor **out, ct_tensor **h_n,
                                     ct_tensor **c_n);

/* ---- stepwise sampling --------------------------------------------------------------------- */
typedef struct ct_rnn_state ct_rnn_state;

/* A zeroed state for batch B of a fused module (CPU). NULL + error in m's context. */
#define ct_rnn_state_new(m, batch) ct_rnn_state_new_at(CT_SRC, m, batch)
ct_rnn_state *ct_rnn_state_new_at(ct_src src, ct_module *m, int64_t batch);
void ct_rnn_state_free(ct_rnn_state *st);              /* NULL is a no-op */
void ct_rnn_state_reset(ct_rnn_state *st);             /* h = c = 0 */
/* The state's h [num_layers, B, H] and (LSTM) c, owned by the state; NULL for c otherwise.
 * Write into them with ct_inplace_copy, e.g. to continue from a forward pass's h_n, c_n. */
ct_tensor *ct_rnn_state_h(ct_rnn_state *st);
ct_tensor *ct_rnn_state_c(ct_rnn_state *st);
int64_t ct_rnn_state_batch(const ct_rnn_state *st);

/* One time step: x_t float32 [B, input_size] (or [input_size] when B = 1), any strides.
 * *out_h (may be NULL) gets the last layer's new h [B, H], a tensor owned by the state. */
#define ct_rnn_step(m, x_t, st, out_h) ct_rnn_step_at(CT_SRC, m, x_t, st, out_h)
ct_status ct_rnn_step_at(ct_src src, ct_module *m, ct_tensor *x_t, ct_rnn_state *st,
                         ct_tensor **out_h);
/* The same from B*input_size contiguous floats (row-major [B, input_size]), for the
 * tightest loops (an embedding row, say); *out_h (may be NULL) points at the last layer's h,
 * B*H contiguous floats owned by the state. */
#define ct_rnn_step_f32(m, x, st, out_h) ct_rnn_step_f32_at(CT_SRC, m, x, st, out_h)
ct_status ct_rnn_step_f32_at(ct_src src, ct_module *m, const float *x, ct_rnn_state *st,
                             const float **out_h);
/* One step as ct_rnn_step_f32, then the output layer on the last layer's new h in the same
 * call: logits[B, V] = h W^T + bias, with W float32 [V, H] and bias float32 [V] or NULL
 * (a Linear's "weight" and "bias"), contiguous CPU tensors of the module's context. logits
 * is the caller's, B*V floats. At batch 1 this layer is one more pass of the fused step:
 * for models of 2M weights or more the state's worker thread shares it with the layers'
 * (when the state has found that faster on the machine's current load), so a sampling loop
 * needs nothing else to use both cores; the logits do not depend on the thread count.
 * *out_h (may be NULL) points at the last layer's h as for ct_rnn_step_f32. */
#define ct_rnn_step_linear_f32(m, x, st, w, bias, logits, out_h) \
    ct_rnn_step_linear_f32_at(CT_SRC, m, x, st, w, bias, logits, out_h)
ct_status ct_rnn_step_linear_f32_at(ct_src src, ct_module *m, const float *x, ct_rnn_state *st,
                                    ct_tensor *w, ct_tensor *bias, float *logits,
                                    const float **out_h);

/* ---- cells from primitive ops (engine/rnn_cells.c) ----------------------------------------- */
/* Kinds "LSTMCell", "GRUCell", "RNNCell"; parameters weight_ih, weight_hh, bias_ih, bias_hh. */
ct_module *ct_lstm_cell_new(ct_ctx *ctx, ct_rng *rng, int64_t input_size, int64_t hidden_size,
                            bool bias);
ct_module *ct_gru_cell_new(ct_ctx *ctx, ct_rng *rng, int64_t input_size, int64_t hidden_size,
                           bool bias);
/* nonlinearity: CT_RNN_TANH or CT_RNN_RELU. */
ct_module *ct_rnn_cell_new(ct_ctx *ctx, ct_rng *rng, int64_t input_size, int64_t hidden_size,
                           bool bias, ct_rnn_mode nonlinearity);

/* x [B, in]; h, c [B, H] or NULL (zeros). Writes h' and c' (either pointer may be NULL).
 * On error both are set to NULL and the status is returned. */
#define ct_lstm_cell_forward(m, x, h, c, h_out, c_out) \
    ct_lstm_cell_forward_at(CT_SRC, m, x, h, c, h_out, c_out)
ct_status ct_lstm_cell_forward_at(ct_src src, ct_module *m, ct_tensor *x, ct_tensor *h,
                                  ct_tensor *c, ct_tensor **h_out, ct_tensor **c_out);
/* x [B, in]; h [B, H] or NULL (zeros). Returns h' (NULL + error on failure). */
#define ct_gru_cell_forward(m, x, h) ct_gru_cell_forward_at(CT_SRC, m, x, h)
ct_tensor *ct_gru_cell_forward_at(ct_src src, ct_module *m, ct_tensor *x, ct_tensor *h);
#define ct_rnn_cell_forward(m, x, h) ct_rnn_cell_forward_at(CT_SRC, m, x, h)
ct_tensor *ct_rnn_cell_forward_at(ct_src src, ct_module *m, ct_tensor *x, ct_tensor *h);

#endif
