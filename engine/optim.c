/* engine/optim.c — SGD, Adam, AdamW over a module's flat blocks; schedules; clipping. */
#include <math.h>
#include <string.h>
#include <stdlib.h>

#include "engine/internal.h"
#include "engine/kernels_optim.h"
#include "engine/optim.h"

#define MAX_STATE 2

struct ct_optim {
    ct_optim_kind kind;
    ct_ctx *ctx;
    ct_module *root;
    ct_tensor *params, *grads;     /* the root's flat blocks (our references) */
    int64_t n;                     /* elements in each */
    int n_state;
    ct_tensor *state[MAX_STATE];   /* flat state arrays, owned */
    int64_t step;                  /* updates done */
    double lr;
    ct_sgd_config sgd;
    ct_adam_config adam;
    const struct ct_kernels_optim *k;
};

static const char *kind_name(ct_optim_kind k) {
    switch (k) {
    case CT_OPTIM_SGD: return "SGD";
    case CT_OPTIM_ADAM: return "Adam";
    case CT_OPTIM_ADAMW: return "AdamW";
    }
    return "?";
}

/* The kernel table of a device; NULL (and an error) when the device has none yet. */
static const struct ct_kernels_optim *kernels_for(ct_ctx *ctx, const char *who, ct_device d) {
    const ct_backend *be = ct__backend(d);
    if (be && be->optim) return be->optim;
    char buf[32];
    ct_fail(ctx, CT_E_UNSUPPORTED, "%s: no optimizer kernels for device %s yet; keep the "
            "parameters on the cpu", who, ct_device_str(d, buf, sizeof buf));
    return NULL;
}

ct_adam_config ct_adam_defaults(double lr) {
    return (ct_adam_config){.lr = lr, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0};
}
ct_adam_config ct_adamw_defaults(double lr) {
    ct_adam_config c = ct_adam_defaults(lr);
    c.weight_decay = 1e-2;
    return c;
}

static bool nonneg(double x) { return isfinite(x) && x >= 0; }

static ct_optim *optim_new(ct_module *root, ct_optim_kind kind, int n_state) {
    const char *who = kind == CT_OPTIM_SGD ? "sgd_new" : kind == CT_OPTIM_ADAM ? "adam_new" : "adamw_new";
    ct_ctx *ctx = root->ctx;
    if (root->parent) {
        ct_fail(ctx, CT_E_ARG, "%s: the %s module '%s' is a child; give the optimizer the root "
                "module (ct_module_root), whose flat block holds every parameter", who,
                root->kind, root->name);
        return NULL;
    }
    ct_tensor *fp = ct_module_flat_params(root), *fg = fp ? ct_module_flat_grads(root) : NULL;
    if (!fp || !fg) return NULL;
    const struct ct_kernels_optim *k = kernels_for(ctx, who, fp->storage->device);
    if (!k) return NULL;
    ct_optim *o = calloc(1, sizeof *o);
    if (!o) {
        ct_fail(ctx, CT_E_NOMEM, "%s: out of memory", who);
        return NULL;
    }
    o->kind = kind;
    o->ctx = ctx;
    o->root = root;
    o->k = k;
    o->n = ct_numel(fp);
    o->params = ct_retain(fp);
    o->grads = ct_retain(fg);
    o->n_state = n_state;
    for (int i = 0; i < n_state; i++) {
        ct_tensor *s = ct__new(ctx, CT_F32, fp->storage->device, 1, &o->n);
        if (!s) {
            ct_optim_free(o);
            return NULL;
        }
        o->state[i] = ct__disown(s);
        s->storage->backend->fill(s, 0.0);
    }
    return o;
}

ct_optim *ct_sgd_new(ct_module *root, ct_sgd_config c) {
    if (!root) return NULL;
    const char *bad = NULL;
    if (!nonneg(c.lr)) bad = "lr";
    else if (!nonneg(c.momentum)) bad = "momentum";
    else if (!nonneg(c.dampening)) bad = "dampening";
    else if (!nonneg(c.weight_decay)) bad = "weight_decay";
    if (bad) {
        ct_fail(root->ctx, CT_E_ARG, "sgd_new: %s must be finite and >= 0 (lr %g, momentum %g, "
                "dampening %g, weight_decay %g)", bad, c.lr, c.momentum, c.dampening,
                c.weight_decay);
        return NULL;
    }
    if (c.nesterov && (c.momentum <= 0 || c.dampening != 0)) {
        ct_fail(root->ctx, CT_E_ARG, "sgd_new: nesterov needs momentum > 0 and dampening 0 "
                "(momentum %g, dampening %g), as in torch.optim.SGD", c.momentum, c.dampening);
        return NULL;
    }
    ct_optim *o = optim_new(root, CT_OPTIM_SGD, c.momentum != 0 ? 1 : 0);
    if (o) {
        o->sgd = c;
        o->lr = c.lr;
    }
    return o;
}

static ct_optim *adam_new(ct_module *root, ct_adam_config c, ct_optim_kind kind) {
    if (!root) return NULL;
    const char *who = kind == CT_OPTIM_ADAM ? "adam_new" : "adamw_new";
    const char *bad = NULL;
    if (!nonneg(c.lr)) bad = "lr must be finite and >= 0";
    else if (!nonneg(c.eps)) bad = "eps must be finite and >= 0";
    else if (!nonneg(c.beta1) || c.beta1 >= 1) bad = "beta1 must lie in [0, 1)";
    else if (!nonneg(c.beta2) || c.beta2 >= 1) bad = "beta2 must lie in [0, 1)";
    else if (!nonneg(c.weight_decay)) bad = "weight_decay must be finite and >= 0";
    if (bad) {
        ct_fail(root->ctx, CT_E_ARG, "%s: %s (lr %g, betas (%g, %g), eps %g, weight_decay %g); "
                "ct_%s_defaults gives torch's defaults", who, bad, c.lr, c.beta1, c.beta2, c.eps,
                c.weight_decay, kind == CT_OPTIM_ADAM ? "adam" : "adamw");
        return NULL;
    }
    ct_optim *o = optim_new(root, kind, 2);
    if (o) {
        o->adam = c;
        o->lr = c.lr;
    }
    return o;
}

ct_optim *ct_adam_new(ct_module *root, ct_adam_config c) { return adam_new(root, c, CT_OPTIM_ADAM); }
ct_optim *ct_adamw_new(ct_module *root, ct_adam_config c) { return adam_new(root, c, CT_OPTIM_ADAMW); }

void ct_optim_free(ct_optim *o) {
    if (!o) return;
    for (int i = 0; i < MAX_STATE; i++) ct_release(o->state[i]);
    ct_release(o->params);
    ct_release(o->grads);
    free(o);
}

/* Makes sure o->params / o->grads are the root's current flat blocks. */
static ct_status sync_blocks(ct_optim *o) {
    ct_module *r = o->root;
    if (r->flat_params == o->params && r->flat_grads == o->grads) return CT_OK;
    ct_tensor *fp = ct_module_flat_params(r), *fg = fp ? ct_module_flat_grads(r) : NULL;
    if (!fp || !fg) return ct_ctx_status(o->ctx);
    if (ct_numel(fp) != o->n)
        return ct_fail(o->ctx, CT_E_STATE, "optim_step: the %s optimizer was made for %lld "
                       "parameters, the module now has %lld; make a new optimizer after adding "
                       "parameters", kind_name(o->kind), (long long)o->n, (long long)ct_numel(fp));
    if (!ct_device_eq(fp->storage->device, o->params->storage->device))
        return ct_fail(o->ctx, CT_E_DEVICE, "optim_step: the module's parameters moved to another "
                       "device; make a new optimizer");
    ct_release(o->params);
    ct_release(o->grads);
    o->params = ct_retain(fp);
    o->grads = ct_retain(fg);
    return CT_OK;
}

static ct_status device_check(ct_optim *o);   /* at the end of the file (engine/device.h) */

ct_status ct_optim_step(ct_optim *o) {
    if (!o) return CT_E_NULL;
    ct_status st = sync_blocks(o);
    if (!st) st = device_check(o);
    if (st) return st;
    float *p = ct_data_f32(o->params), *g = ct_data_f32(o->grads);
    if (o->kind == CT_OPTIM_SGD) {
        const ct_sgd_config *c = &o->sgd;
        ct_sgd_coefs k = {
            .lr = (float)o->lr,
            .momentum = (float)c->momentum,
            .one_minus_dampening = (float)(1.0 - c->dampening),
            .weight_decay = (float)c->weight_decay,
            .use_momentum = c->momentum != 0,
            .first_step = o->step == 0,
            .nesterov = c->nesterov,
            .use_wd = c->weight_decay != 0,
        };
        if (o->n > 0) o->k->sgd(p, g, o->n_state ? ct_data_f32(o->state[0]) : NULL, o->n, &k);
    } else {
        const ct_adam_config *c = &o->adam;
        /* as torch: bias corrections in double from the step count, then rounded once */
        double t = (double)(o->step + 1);
        double bc1 = 1.0 - pow(c->beta1, t), bc2 = 1.0 - pow(c->beta2, t);
        bool w = o->kind == CT_OPTIM_ADAMW;
        ct_adam_coefs k = {
            .neg_step_size = (float)-(o->lr / bc1),
            .bc2_sqrt = (float)sqrt(bc2),
            .beta1 = (float)c->beta1,
            .one_minus_beta1 = (float)(1.0 - c->beta1),
            .beta2 = (float)c->beta2,
            .one_minus_beta2 = (float)(1.0 - c->beta2),
            .eps = (float)c->eps,
            .weight_decay = w ? 0.0f : (float)c->weight_decay,
            .decay = w ? (float)(1.0 - o->lr * c->weight_decay) : 1.0f,
            .use_wd = !w && c->weight_decay != 0,
            .use_decay = w && c->weight_decay != 0,
        };
        if (o->n > 0)
            o->k->adam(p, g, ct_data_f32(o->state[0]), ct_data_f32(o->state[1]), o->n, &k);
    }
    o->step++;
    ct__bump_version(o->params);
    for (int i = 0; i < o->n_state; i++) ct__bump_version(o->state[i]);
    return CT_OK;
}

void ct_optim_zero_grad(ct_optim *o) {
    if (!o || sync_blocks(o) != CT_OK) return;
    ct_inplace_fill(o->grads, 0.0f);
}

ct_status ct_optim_set_lr(ct_optim *o, double lr) {
    if (!o) return CT_E_NULL;
    if (!nonneg(lr))
        return ct_fail(o->ctx, CT_E_ARG, "optim_set_lr: the learning rate %g must be finite and >= 0",
                       lr);
    o->lr = lr;
    return CT_OK;
}

double ct_optim_get_lr(const ct_optim *o) { return o ? o->lr : NAN; }
ct_optim_kind ct_optim_kind_of(const ct_optim *o) { return o ? o->kind : CT_OPTIM_SGD; }
const char *ct_optim_name(const ct_optim *o) { return o ? kind_name(o->kind) : "(null)"; }
ct_module *ct_optim_module(const ct_optim *o) { return o ? o->root : NULL; }

/* ---- state ------------------------------------------------------------------------------------ */
int ct_optim_state_count(const ct_optim *o) { return o ? o->n_state : 0; }
int64_t ct_optim_state_size(const ct_optim *o) { return o ? o->n : 0; }

const char *ct_optim_state_name(const ct_optim *o, int i) {
    if (!o || i < 0 || i >= o->n_state) return NULL;
    if (o->kind == CT_OPTIM_SGD) return "momentum_buffer";
    return i == 0 ? "exp_avg" : "exp_avg_sq";
}

int64_t ct_optim_get_step(const ct_optim *o) { return o ? o->step : 0; }

ct_status ct_optim_set_step(ct_optim *o, int64_t step) {
    if (!o) return CT_E_NULL;
    if (step < 0)
        return ct_fail(o->ctx, CT_E_ARG, "optim_set_step: the step count %lld is negative",
                       (long long)step);
    o->step = step;
    return CT_OK;
}

static ct_status state_check(const ct_optim *o, const char *who, int i, const void *buf, int64_t n) {
    if (i < 0 || i >= o->n_state)
        return ct_fail(o->ctx, CT_E_ARG, "%s: state array %d does not exist; the %s optimizer has "
                       "%d (ct_optim_state_count)", who, i, kind_name(o->kind), o->n_state);
    if (n != o->n)
        return ct_fail(o->ctx, CT_E_ARG, "%s: the buffer has %lld floats; the state array '%s' has "
                       "%lld (ct_optim_state_size)", who, (long long)n, ct_optim_state_name(o, i),
                       (long long)o->n);
    if (!buf && n > 0) return ct_fail(o->ctx, CT_E_ARG, "%s: the buffer is NULL", who);
    return CT_OK;
}

ct_status ct_optim_get_state(const ct_optim *o, int i, float *dst, int64_t n) {
    if (!o) return CT_E_NULL;
    ct_status st = state_check(o, "optim_get_state", i, dst, n);
    if (st || n == 0) return st;
    const ct_tensor *s = o->state[i];
    s->storage->backend->to_host(dst, ct_data(s), (size_t)n * sizeof(float));
    return ct__device_check(o->ctx, s->storage->backend);
}

ct_status ct_optim_set_state(ct_optim *o, int i, const float *src, int64_t n) {
    if (!o) return CT_E_NULL;
    ct_status st = state_check(o, "optim_set_state", i, src, n);
    if (st || n == 0) return st;
    return ct_copy_from_host(o->state[i], src, (size_t)n * sizeof(float));
}

/* ---- schedules -------------------------------------------------------------------------------- */
ct_lr_schedule ct_lr_step(int64_t step_size, float gamma) {
    return (ct_lr_schedule){.kind = CT_LR_STEP, .step_size = step_size, .gamma = gamma};
}
ct_lr_schedule ct_lr_exponential(float gamma) {
    return (ct_lr_schedule){.kind = CT_LR_EXPONENTIAL, .gamma = gamma};
}
ct_lr_schedule ct_lr_warmup_cosine(int64_t warmup_steps, int64_t total_steps, float min_lr) {
    return (ct_lr_schedule){.kind = CT_LR_WARMUP_COSINE, .warmup_steps = warmup_steps,
                            .total_steps = total_steps, .min_lr = min_lr};
}

float ct_lr_at(const ct_lr_schedule *s, int64_t step, float base_lr) {
    if (!s) return base_lr;
    if (step < 0) step = 0;
    double base = base_lr;
    switch (s->kind) {
    case CT_LR_CONSTANT:
        return base_lr;
    case CT_LR_STEP: {
        int64_t size = s->step_size < 1 ? 1 : s->step_size;
        return (float)(base * pow((double)s->gamma, (double)(step / size)));
    }
    case CT_LR_EXPONENTIAL:
        return (float)(base * pow((double)s->gamma, (double)step));
    case CT_LR_WARMUP_COSINE: {
        int64_t w = s->warmup_steps < 0 ? 0 : s->warmup_steps, t = s->total_steps;
        double lo = s->min_lr;
        if (step < w) return (float)(base * (double)(step + 1) / (double)w);
        if (step >= t) return s->min_lr;
        double progress = (double)(step - w) / (double)(t - w);
        return (float)(lo + (base - lo) * 0.5 * (1.0 + cos(M_PI * progress)));
    }
    }
    return base_lr;
}

/* ---- clipping --------------------------------------------------------------------------------- */
static ct_tensor *grads_of(ct_module *root, const char *who, const struct ct_kernels_optim **k) {
    if (!root) return NULL;
    if (root->parent) {
        ct_fail(root->ctx, CT_E_ARG, "%s: '%s' is a child module; pass the root (ct_module_root), "
                "whose flat gradient block holds every gradient", who, root->name);
        return NULL;
    }
    ct_tensor *g = ct_module_flat_grads(root);
    if (g && !(*k = kernels_for(root->ctx, who, g->storage->device))) return NULL;
    return g;
}

ct_status ct_clip_grad_norm(ct_module *root, float max_norm, double *norm_before) {
    if (norm_before) *norm_before = NAN;
    if (!root) return CT_E_NULL;
    if (!isfinite(max_norm) || max_norm <= 0)
        return ct_fail(root->ctx, CT_E_ARG, "clip_grad_norm: max_norm %g must be finite and > 0",
                       (double)max_norm);
    const struct ct_kernels_optim *k = NULL;
    ct_tensor *g = grads_of(root, "clip_grad_norm", &k);
    if (!g) return ct_ctx_status(root->ctx);
    int64_t n = ct_numel(g);
    double norm = n > 0 ? sqrt(k->sum_squares(ct_data_f32(g), n)) : 0.0;
    /* a device failure (here or in an earlier asynchronous kernel) is that error, not a NaN norm */
    ct_status dst = ct__device_check(root->ctx, g->storage->backend);
    if (dst != CT_OK) return dst;
    if (norm_before) *norm_before = norm;
    if (!isfinite(norm))
        return ct_fail(root->ctx, CT_E_STATE, "clip_grad_norm: gradient norm is %s over %lld "
                       "gradients of the %s module; the gradients were left as they are: skip "
                       "this step (and consider a lower learning rate)",
                       isnan(norm) ? "nan" : "inf", (long long)n, root->kind);
    double coef = (double)max_norm / (norm + 1e-6);
    if (coef < 1.0) {
        k->scale(ct_data_f32(g), n, (float)coef);
        ct__bump_version(g);
    }
    return CT_OK;
}

ct_status ct_clip_grad_value(ct_module *root, float clip) {
    if (!root) return CT_E_NULL;
    if (!(clip >= 0) || isinf(clip))
        return ct_fail(root->ctx, CT_E_ARG, "clip_grad_value: clip %g must be finite and >= 0",
                       (double)clip);
    const struct ct_kernels_optim *k = NULL;
    ct_tensor *g = grads_of(root, "clip_grad_value", &k);
    if (!g) return ct_ctx_status(root->ctx);
    return ct_inplace_clamp(g, -clip, clip);
}

/* ---- moving to a device (engine/device.h) ---------------------------------------------------- */
#include "engine/device.h"

/* The parameters, gradients and state must share one device, and o->k must be its kernels
 * (they follow the module when there is no state to move). */
static ct_status device_check(ct_optim *o) {
    ct_device d = o->params->storage->device;
    char a[24], b[24];
    if (!ct_device_eq(o->grads->storage->device, d))
        return ct_fail(o->ctx, CT_E_DEVICE, "optim_step: the parameters are on %s but the gradients "
                       "on %s; move the module with ct_module_to", ct_device_str(d, a, sizeof a),
                       ct_device_str(o->grads->storage->device, b, sizeof b));
    for (int i = 0; i < o->n_state; i++)
        if (!ct_device_eq(o->state[i]->storage->device, d))
            return ct_fail(o->ctx, CT_E_DEVICE, "optim_step: the parameters are on %s but the %s "
                           "optimizer's state is on %s; move both to one device (ct_module_to, ct_optim_to)",
                           ct_device_str(d, a, sizeof a), kind_name(o->kind),
                           ct_device_str(o->state[i]->storage->device, b, sizeof b));
    const ct_backend *be = ct__backend(d);
    if (!be || be->optim != o->k) {
        const struct ct_kernels_optim *k = kernels_for(o->ctx, "optim_step", d);
        if (!k) return ct_ctx_status(o->ctx);
        o->k = k;
    }
    return CT_OK;
}

ct_status ct_optim_to(ct_optim *o, ct_device dev) {
    if (!o) return CT_E_NULL;
    ct_ctx *ctx = o->ctx;
    char d[24], why[320];
    if (!ct__backend(dev))
        return ct_fail(ctx, CT_E_DEVICE, "optim_to(%s): %s; the optimizer stays where it is",
                       ct_device_str(dev, d, sizeof d), ct__device_why(dev, why, sizeof why));
    const struct ct_kernels_optim *k = kernels_for(ctx, "optim_to", dev);
    if (!k) return ct_ctx_status(ctx);
    ct_tensor *moved[MAX_STATE] = {0};
    ct_status st = CT_OK;
    for (int i = 0; i < o->n_state && st == CT_OK; i++) {
        ct_tensor *s = o->state[i];
        if (ct_device_eq(s->storage->device, dev)) continue;
        ct_scope_begin(ctx);
        ct_tensor *c = ct__new(ctx, CT_F32, dev, 1, &o->n);
        if (c && ct__copy_across(c, s) == CT_OK) moved[i] = ct_retain(c);
        else st = ct_ctx_status(ctx) ? ct_ctx_status(ctx) : CT_E_DEVICE;
        ct_scope_end(ctx);
    }
    for (int i = 0; i < o->n_state; i++) {
        if (!moved[i]) continue;
        if (st == CT_OK) ct__swap_storage(o->state[i], moved[i]->storage);   /* keeps its identity */
        ct_release(moved[i]);
    }
    if (st == CT_OK) o->k = k;
    return st;
}
