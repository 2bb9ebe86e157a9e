/* engine/optim.h — optimizers (SGD, Adam, AdamW), learning-rate schedules, gradient clipping.
 *
 * FLAT BLOCKS. An optimizer works on the module's one flat parameter block and its flat
 * gradient block (engine/nn.h; ct_sgd_new & co. flatten the module if it is not flat yet).
 * Its state (momentum buffers, Adam's moments) is flat too: arrays of ct_module_num_params
 * floats laid out like the parameter block. A step is ONE fused pass over all parameters:
 * every element reads its parameter, gradient and state once and writes them once.
 *
 * THE UPDATES are PyTorch's (torch.optim in 1.13, the single-tensor code path), with every
 * coefficient computed in double from the double hyper-parameters and rounded to float once,
 * as torch's kernels do with Python scalars. For each element, with g its gradient:
 *
 *   SGD    (torch.optim.SGD)
 *          g = g + weight_decay * p                                  (if weight_decay != 0)
 *          b = g                           on the first step         (if momentum != 0)
 *          b = momentum * b + (1 - dampening) * g   afterwards
 *          g = nesterov ? g + momentum * b : b
 *          p = p - lr * g
 *   Adam   (torch.optim.Adam: weight decay is L2, added to the gradient)
 *          t = t + 1                       (the optimizer's step count)
 *          g = g + weight_decay * p                                  (if weight_decay != 0)
 *          m = beta1 * m + (1 - beta1) * g
 *          v = beta2 * v + (1 - beta2) * g * g
 *          p = p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 *   AdamW  (torch.optim.AdamW: decoupled weight decay)
 *          p = p * (1 - lr * weight_decay), then Adam's update without the L2 term.
 *
 * One difference from PyTorch: torch skips a parameter whose .grad is None; here every
 * parameter has a gradient (the flat gradient block, zero where backward did not reach),
 * so such a parameter is updated with a zero gradient, as torch does after zero_grad()
 * with set_to_none=False (its default in 1.13). amsgrad, maximize and foreach/fused
 * variants are not provided.
 *
 * OWNERSHIP. ct_sgd_new / ct_adam_new / ct_adamw_new return an optimizer the caller frees
 * with ct_optim_free (NULL is a no-op). The optimizer holds references to the module's flat
 * blocks and owns its state tensors (on the parameters' device); free it before the context
 * (ct_ctx_free). The module must stay alive while the optimizer is used (step, zero_grad).
 * Errors are recorded in the module's context (ct_ctx_status / ct_ctx_error).
 *
 *     ct_optim *opt = ct_adamw_new(model, ct_adamw_defaults(1e-3));
 *     ct_lr_schedule sched = ct_lr_warmup_cosine(100, 10000, 1e-5f);
 *     for (int64_t step = 0; step < 10000; step++) {
 *         ct_scope_begin(ctx);
 *         ct_optim_zero_grad(opt);
 *         ct_backward(loss_of(model, batch));
 *         double norm;
 *         if (ct_clip_grad_norm(model, 1.0f, &norm) == CT_OK) {   // skip a nan/inf step
 *             ct_optim_set_lr(opt, ct_lr_at(&sched, step, 1e-3f));
 *             ct_optim_step(opt);
 *         }
 *         ct_scope_end(ctx);
 *     }
 *     ct_optim_free(opt);
 */
#ifndef CT_OPTIM_H
#define CT_OPTIM_H

#include <stdint.h>

#include "engine/nn.h"
#include "engine/tensor.h"

typedef struct ct_optim ct_optim;

typedef enum ct_optim_kind { CT_OPTIM_SGD = 0, CT_OPTIM_ADAM = 1, CT_OPTIM_ADAMW = 2 } ct_optim_kind;

/* Hyper-parameters, as torch's keyword arguments. Designated initialisers leave the rest 0:
 * (ct_sgd_config){.lr = 0.1, .momentum = 0.9, .nesterov = true}. Checked by ct_sgd_new:
 * every value finite, lr, momentum, dampening, weight_decay >= 0, and nesterov needs
 * momentum > 0 and dampening == 0 (as torch). */
typedef struct ct_sgd_config {
    double lr, momentum, dampening, weight_decay;
    bool nesterov;
} ct_sgd_config;

/* Adam and AdamW. Checked: finite, lr >= 0, eps >= 0, 0 <= beta1, beta2 < 1,
 * weight_decay >= 0. */
typedef struct ct_adam_config {
    double lr, beta1, beta2, eps, weight_decay;
} ct_adam_config;

/* torch's defaults: betas (0.9, 0.999), eps 1e-8; weight_decay 0 for Adam, 1e-2 for AdamW. */
ct_adam_config ct_adam_defaults(double lr);
ct_adam_config ct_adamw_defaults(double lr);

/* NULL + error in root's context on a bad configuration or when flattening fails. */
ct_optim *ct_sgd_new(ct_module *root, ct_sgd_config cfg);
ct_optim *ct_adam_new(ct_module *root, ct_adam_config cfg);
ct_optim *ct_adamw_new(ct_module *root, ct_adam_config cfg);
void ct_optim_free(ct_optim *opt);                           /* NULL is a no-op */

/* One update of every parameter from the flat gradient block. If the module was
 * un-flattened since (a parameter added), it is flattened again; a different number of
 * parameters is CT_E_STATE. */
ct_status ct_optim_step(ct_optim *opt);
void ct_optim_zero_grad(ct_optim *opt);                      /* one fill of the gradient block */
ct_status ct_optim_set_lr(ct_optim *opt, double lr);         /* CT_E_ARG unless finite, >= 0 */
double ct_optim_get_lr(const ct_optim *opt);                 /* NAN for NULL */
ct_optim_kind ct_optim_kind_of(const ct_optim *opt);
const char *ct_optim_name(const ct_optim *opt);              /* "SGD", "Adam", "AdamW" */
ct_module *ct_optim_module(const ct_optim *opt);

/* ---- optimizer state, for checkpoints -------------------------------------------------------
 * The state is: the step count (updates done so far; Adam's t, SGD's "momentum buffer
 * exists") and ct_optim_state_count flat float32 arrays of ct_optim_state_size elements
 * each, in the parameter block's layout: SGD with momentum: "momentum_buffer"; SGD without:
 * none; Adam, AdamW: "exp_avg", "exp_avg_sq" (torch's state names). Getting and setting them
 * copies the exact bits, so a restored optimizer continues bit for bit. */
int ct_optim_state_count(const ct_optim *opt);
int64_t ct_optim_state_size(const ct_optim *opt);            /* = ct_module_num_params */
const char *ct_optim_state_name(const ct_optim *opt, int i); /* NULL when out of range */
int64_t ct_optim_get_step(const ct_optim *opt);
ct_status ct_optim_set_step(ct_optim *opt, int64_t step);    /* CT_E_ARG when negative */
/* Copies array i to / from n host floats; CT_E_ARG when i is out of range or n differs
 * from ct_optim_state_size. */
ct_status ct_optim_get_state(const ct_optim *opt, int i, float *dst, int64_t n);
ct_status ct_optim_set_state(ct_optim *opt, int i, const float *src, int64_t n);

/* ---- learning-rate schedules ----------------------------------------------------------------
 * ct_lr_at(s, step, base_lr) is the learning rate for optimizer step `step` (0 for the first
 * update; negative steps count as 0), computed in double:
 *
 *   CT_LR_CONSTANT        base_lr
 *   CT_LR_STEP            base_lr * gamma ^ floor(step / step_size)    (torch StepLR;
 *                         step_size < 1 counts as 1)
 *   CT_LR_EXPONENTIAL     base_lr * gamma ^ step                       (torch ExponentialLR)
 *   CT_LR_WARMUP_COSINE   linear warm-up, then a cosine decay to min_lr:
 *       step <  W:        base_lr * (step + 1) / W       (so step 0 already learns and
 *                                                         step W-1 reaches base_lr)
 *       W <= step < T:    min_lr + (base_lr - min_lr) * (1 + cos(pi * (step - W) / (T - W))) / 2
 *       step >= T:        min_lr
 *   with W = warmup_steps (0: no warm-up) and T = total_steps (T <= W: min_lr after the
 *   warm-up). torch's equivalent is LambdaLR with this function.
 * A schedule is plain data; the optimizer does not hold it: call
 * ct_optim_set_lr(opt, ct_lr_at(&s, step, base)) before each step. */
typedef enum ct_lr_kind {
    CT_LR_CONSTANT = 0, CT_LR_STEP, CT_LR_EXPONENTIAL, CT_LR_WARMUP_COSINE
} ct_lr_kind;

typedef struct ct_lr_schedule {
    ct_lr_kind kind;
    int64_t step_size;       /* CT_LR_STEP */
    float gamma;             /* CT_LR_STEP, CT_LR_EXPONENTIAL */
    int64_t warmup_steps;    /* CT_LR_WARMUP_COSINE */
    int64_t total_steps;
    float min_lr;
} ct_lr_schedule;

ct_lr_schedule ct_lr_step(int64_t step_size, float gamma);
ct_lr_schedule ct_lr_exponential(float gamma);
ct_lr_schedule ct_lr_warmup_cosine(int64_t warmup_steps, int64_t total_steps, float min_lr);
float ct_lr_at(const ct_lr_schedule *s, int64_t step, float base_lr);   /* base_lr for NULL */

/* ---- gradient clipping ----------------------------------------------------------------------
 * ct_clip_grad_norm: the global L2 norm of ALL the root's gradients (one pass over the flat
 * gradient block, summed in double), written to *norm_before (may be NULL). As
 * torch.nn.utils.clip_grad_norm_: with coef = max_norm / (norm + 1e-6), the gradients are
 * multiplied by coef when coef < 1. A nan or inf norm returns CT_E_STATE with a message
 * ("gradient norm is nan ... skip this step") and leaves the gradients untouched, so the
 * caller can skip the step; *norm_before is still set. max_norm must be finite and > 0. */
ct_status ct_clip_grad_norm(ct_module *root, float max_norm, double *norm_before);
/* Clamps every gradient to [-clip, clip] (torch.nn.utils.clip_grad_value_); NaNs stay. */
ct_status ct_clip_grad_value(ct_module *root, float clip);


#endif
