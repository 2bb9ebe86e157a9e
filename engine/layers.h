/* engine/layers.h — the basic layers as modules (engine/nn.h), numerically matching PyTorch's
 * torch.nn layers of the same name, and the fused layer_norm op.
 *
 *     ct_module *net = ct_sequential_new(ctx);
 *     ct_sequential_append(net, ct_linear_new(ctx, &rng, 784, 32, true));    // "0.weight", "0.bias"
 *     ct_sequential_append(net, ct_activation_new(ctx, "relu"));             // "1" (no parameters)
 *     ct_sequential_append(net, ct_linear_new(ctx, &rng, 32, 10, true));     // "2.weight", "2.bias"
 *     ct_tensor *logits = ct_sequential_forward(net, x, &rng);
 *     ...
 *     ct_module_free(net);                                                   // the whole tree
 *
 * Ownership: every *_new returns a module the caller owns and frees with ct_module_free (NULL
 * is a no-op) unless it is handed to a parent (ct_sequential_append, ct_module_add_child),
 * which owns it from then on. A constructor that fails returns NULL with the error recorded
 * in ctx. Parameters are float32 CPU tensors that require grad, owned by the module.
 *
 * Forward functions are macros that pass the caller's file:line, so a wrong input names the
 * op, the shapes and the line that called the layer. Every layer also sets m->forward, so it
 * can sit in a Sequential and be called through ct_module_forward.
 *
 * Initialisation draws from the rng passed to the constructor, in element order (row-major,
 * weight before bias), with the distributions PyTorch uses (its exact numbers differ: its
 * generator is another one). The golden tests load PyTorch's weights into the modules.
 */
#ifndef CT_LAYERS_H
#define CT_LAYERS_H

#include "engine/nn.h"

/* ---- Linear ------------------------------------------------------------------------------ *
 * y = x W^T + b for x [..., in] -> [..., out] (also x [in] -> [out]). Parameters "weight"
 * [out, in] and, when bias, "bias" [out], both ~ U(-1/sqrt(in), 1/sqrt(in)) as torch.nn.Linear
 * (kaiming_uniform with a = sqrt(5)); in = 0 gives an empty weight and a zero bias. */
ct_module *ct_linear_new(ct_ctx *ctx, ct_rng *rng, int64_t in, int64_t out, bool bias);
#define ct_linear_forward(m, x) ct_linear_forward_at(CT_SRC, m, x)
ct_tensor *ct_linear_forward_at(ct_src src, ct_module *m, ct_tensor *x);

/* ---- Embedding --------------------------------------------------------------------------- *
 * Rows of "weight" [num, dim] ~ N(0, 1) picked by int64 indices of any shape ->
 * indices.shape + [dim]. With padding_idx in [0, num) that row starts at zero and never
 * receives a gradient from this layer, as torch.nn.Embedding(padding_idx=...). padding_idx
 * = -1 (CT_NO_PADDING) means none. Unlike PyTorch, other negative values are not counted
 * from the end (they are CT_E_ARG): PyTorch's padding_idx = -k is num - k here. */
#define CT_NO_PADDING (-1)
ct_module *ct_embedding_module_new(ct_ctx *ctx, ct_rng *rng, int64_t num, int64_t dim);
ct_module *ct_embedding_module_new_ex(ct_ctx *ctx, ct_rng *rng, int64_t num, int64_t dim,
                                      int64_t padding_idx);
#define ct_embedding_module_forward(m, indices) ct_embedding_module_forward_at(CT_SRC, m, indices)
ct_tensor *ct_embedding_module_forward_at(ct_src src, ct_module *m, ct_tensor *indices);

/* ---- Dropout ----------------------------------------------------------------------------- *
 * ct_dropout(x, p, m->training, rng): identity in eval mode (ct_module_train(m, false)).
 * p in [0, 1). */
ct_module *ct_dropout_module_new(ct_ctx *ctx, float p);
#define ct_dropout_module_forward(m, x, rng) ct_dropout_module_forward_at(CT_SRC, m, x, rng)
ct_tensor *ct_dropout_module_forward_at(ct_src src, ct_module *m, ct_tensor *x, ct_rng *rng);

/* ---- LayerNorm --------------------------------------------------------------------------- *
 * Normalises over the last dim (of size dim), as torch.nn.LayerNorm(dim, eps, affine):
 * y = (x - mean) / sqrt(var + eps) * weight + bias, var biased. With affine, parameters
 * "weight" [dim] = 1 and "bias" [dim] = 0. eps >= 0 (PyTorch's default is 1e-5). */
ct_module *ct_layernorm_new(ct_ctx *ctx, int64_t dim, float eps, bool affine);
#define ct_layernorm_forward(m, x) ct_layernorm_forward_at(CT_SRC, m, x)
ct_tensor *ct_layernorm_forward_at(ct_src src, ct_module *m, ct_tensor *x);

/* The fused, differentiable op (F.layer_norm over the last dim): x [..., D] float32; weight
 * and bias [D], or NULL for none (so here a NULL weight or bias is not a failed input).
 * One pass per row for mean and variance (accumulated in double); backward gives x, weight
 * and bias their gradients from the saved per-row mean and 1/sqrt(var + eps). */
#define ct_layer_norm(x, weight, bias, eps) ct_layer_norm_at(CT_SRC, x, weight, bias, eps)
ct_tensor *ct_layer_norm_at(ct_src src, ct_tensor *x, ct_tensor *weight, ct_tensor *bias,
                            float eps);

/* ---- activations ------------------------------------------------------------------------- *
 * A parameterless module for Sequential use: "relu", "tanh" or "sigmoid" (kinds "ReLU",
 * "Tanh", "Sigmoid", as PyTorch prints them). An unknown name is CT_E_ARG. */
ct_module *ct_activation_new(ct_ctx *ctx, const char *name);

/* ---- Sequential -------------------------------------------------------------------------- *
 * Children are named "0", "1", ... in the order appended (state_dict names "0.weight", ...);
 * forward feeds each child's m->forward the previous output. append takes ownership of child
 * on success; on failure (child already has a parent, or has no single-input forward) the
 * caller still owns it. */
ct_module *ct_sequential_new(ct_ctx *ctx);
ct_status ct_sequential_append(ct_module *seq, ct_module *child);
#define ct_sequential_forward(m, x, rng) ct_sequential_forward_at(CT_SRC, m, x, rng)
ct_tensor *ct_sequential_forward_at(ct_src src, ct_module *m, ct_tensor *x, ct_rng *rng);


#endif
