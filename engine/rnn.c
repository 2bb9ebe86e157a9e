/* engine/rnn.c — fused recurrent layers: the module, the checked front end, the per-layer
 * graph node and its backward, and stepwise sampling. The kernels are the device's "rnn"
 * group (engine/kernels_rnn.h, ct_backend.rnn; CPU: engine/cpu/rnn.c).
 *
 * One node per layer: inputs {x [T,B,I], w_ih, w_hh, b_ih, b_hh, h0 [B,H], c0 [B,H],
 * lengths [B]} (absent ones NULL), outputs {out [T,B,H], h_n [B,H], c_n [B,H] (LSTM)}.
 * Saved: the gate activations [T*B, G*H], aux (what the backend's aux_floats asks for: GRU
 * Whn h + bhn, LSTM cell-state checkpoints; none for an RNN), out (for H_prev and the RNN
 * derivative) and, for a first layer with padding, x with the padded rows zeroed.
 * iv: mode, T, B, I (input width), H, masked, V.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/device.h"
#include "engine/kernels_rnn.h"

#define RNN_MAGIC 0x524e4e46u   /* "RNNF" */

typedef struct rnn_impl {
    uint32_t magic;
    ct_rnn_config cfg;
    int recompute;          /* ct_rnn_set_recompute: CT_RNN_RECOMPUTE_AUTO or 0..num_layers */
} rnn_impl;

int ct_rnn_gates(ct_rnn_mode mode) { return mode == CT_LSTM ? 4 : mode == CT_GRU ? 3 : 1; }

static const char *kind_of(ct_rnn_mode mode) {
    return mode == CT_LSTM ? "LSTM" : mode == CT_GRU ? "GRU" : "RNN";
}

static const rnn_impl *impl_of(const ct_module *m) {
    if (!m || !m->impl || !m->kind) return NULL;
    if (strcmp(m->kind, "LSTM") != 0 && strcmp(m->kind, "GRU") != 0 && strcmp(m->kind, "RNN") != 0)
        return NULL;
    const rnn_impl *im = m->impl;
    return im->magic == RNN_MAGIC ? im : NULL;
}

const ct_rnn_config *ct_rnn_config_of(const ct_module *m) {
    const rnn_impl *im = impl_of(m);
    return im ? &im->cfg : NULL;
}

/* parameter k (0 w_ih, 1 w_hh, 2 b_ih, 3 b_hh) of layer l; NULL for absent biases */
static ct_tensor *param(const ct_module *m, const ct_rnn_config *cfg, int l, int k) {
    int per = cfg->bias ? 4 : 2;
    if (k >= per) return NULL;
    return m->params[l * per + k];
}

static ct_tensor *rnn_module_forward(ct_src src, ct_module *m, ct_tensor *x, ct_rng *rng);

ct_module *ct_rnn_new(ct_ctx *ctx, ct_rng *rng, const ct_rnn_config *cfg) {
    if (!ctx) return NULL;
    if (!cfg || !rng) {
        ct_fail(ctx, CT_E_ARG, "rnn_new: %s is NULL", cfg ? "the generator" : "the configuration");
        return NULL;
    }
    if (cfg->mode < CT_RNN_TANH || cfg->mode > CT_GRU) {
        ct_fail(ctx, CT_E_ARG, "rnn_new: mode %d is not one of CT_RNN_TANH, CT_RNN_RELU, CT_LSTM, "
                "CT_GRU", (int)cfg->mode);
        return NULL;
    }
    const char *kind = kind_of(cfg->mode);
    if (cfg->input_size < 1 || cfg->hidden_size < 1 || cfg->num_layers < 1) {
        ct_fail(ctx, CT_E_ARG, "rnn_new(%s): input_size %lld, hidden_size %lld and num_layers %d "
                "must all be at least 1", kind, (long long)cfg->input_size,
                (long long)cfg->hidden_size, cfg->num_layers);
        return NULL;
    }
    if (cfg->hidden_size > (int64_t)1 << 24 || cfg->input_size > (int64_t)1 << 28 ||
        cfg->num_layers > 1024) {
        ct_fail(ctx, CT_E_ARG, "rnn_new(%s): input_size %lld, hidden_size %lld or num_layers %d "
                "is too large", kind, (long long)cfg->input_size, (long long)cfg->hidden_size,
                cfg->num_layers);
        return NULL;
    }
    if (!(cfg->dropout >= 0.0f && cfg->dropout < 1.0f)) {
        ct_fail(ctx, CT_E_ARG, "rnn_new(%s): dropout %g is outside [0, 1)", kind,
                (double)cfg->dropout);
        return NULL;
    }
    ct_module *m = ct_module_new(ctx, kind, sizeof(rnn_impl));
    if (!m) return NULL;
    rnn_impl *im = m->impl;
    im->magic = RNN_MAGIC;
    im->cfg = *cfg;
    im->recompute = CT_RNN_RECOMPUTE_AUTO;
    m->forward = rnn_module_forward;
    const int64_t H = cfg->hidden_size, GH = ct_rnn_gates(cfg->mode) * H;
    const float k = (float)(1.0 / sqrt((double)H));
    for (int l = 0; l < cfg->num_layers; l++) {
        int64_t in = l == 0 ? cfg->input_size : H;
        char name[4][32];
        snprintf(name[0], sizeof name[0], "weight_ih_l%d", l);
        snprintf(name[1], sizeof name[1], "weight_hh_l%d", l);
        snprintf(name[2], sizeof name[2], "bias_ih_l%d", l);
        snprintf(name[3], sizeof name[3], "bias_hh_l%d", l);
        ct_tensor *p[4] = {
            ct_module_add_param(m, name[0], 2, (const int64_t[]){GH, in}),
            ct_module_add_param(m, name[1], 2, (const int64_t[]){GH, H}),
            cfg->bias ? ct_module_add_param(m, name[2], 1, &GH) : NULL,
            cfg->bias ? ct_module_add_param(m, name[3], 1, &GH) : NULL,
        };
        for (int i = 0; i < (cfg->bias ? 4 : 2); i++) {
            if (!p[i]) { ct_module_free(m); return NULL; }
            float *d = ct_data_f32(p[i]);
            for (int64_t j = 0; j < ct_numel(p[i]); j++)
                d[j] = -k + 2.0f * k * (float)ct_rng_uniform(rng);
        }
    }
    return m;
}

/* ---- the layer node --------------------------------------------------------------------------- */
enum { IV_MODE, IV_T, IV_B, IV_I, IV_H, IV_MASKED, IV_V, IV_RECOMPUTE };
/* IN_X is the embedding table [V, I] when the layer reads tokens (IN_TOK, [T, B]) */
enum { IN_X, IN_WIH, IN_WHH, IN_BIH, IN_BHH, IN_H0, IN_C0, IN_LEN, IN_TOK, IN_COUNT };
enum { SV_GATES, SV_AUX, SV_OUT, SV_XM };

static const float *fptr(const ct_tensor *t) { return t ? ct_data(t) : NULL; }

/* The rnn kernel group of a device; NULL + error when its backend has none. */
static const struct ct_kernels_rnn *kernels_for(ct_ctx *ctx, ct_src src, const char *op,
                                                ct_device dev) {
    const ct_backend *be = ct__backend(dev);
    if (be && be->rnn) return be->rnn;
    ct__op_error(ctx, src, op, CT_E_UNSUPPORTED, "the %s backend has no fused recurrent "
                 "kernels (engine/kernels_rnn.h) yet", be ? be->name : "device's");
    return NULL;
}

static const char *layer_defs_name(ct_rnn_mode mode) {
    return mode == CT_LSTM ? "lstm_layer" : mode == CT_GRU ? "gru_layer"
         : mode == CT_RNN_RELU ? "rnn_relu_layer" : "rnn_tanh_layer";
}

static ct_status layer_bw(ct_node *n, ct_tensor *const *g, ct_tensor **gin) {
    ct_ctx *ctx = n->ctx;
    const ct_rnn_mode mode = (ct_rnn_mode)n->iv[IV_MODE];
    const int64_t T = n->iv[IV_T], B = n->iv[IV_B], NI = n->iv[IV_I], H = n->iv[IV_H];
    const int64_t GH = ct_rnn_gates(mode) * H;
    const ct_device dev = n->saved[SV_OUT]->storage->device;
    const struct ct_kernels_rnn *k = kernels_for(ctx, n->src, layer_defs_name(mode), dev);
    if (!k) return ct_ctx_status(ctx);
    ct_tensor *go = ct_contiguous_at(n->src, g[0]);
    ct_tensor *ghn = ct_contiguous_at(n->src, g[1]);
    ct_tensor *gcn = mode == CT_LSTM ? ct_contiguous_at(n->src, g[2]) : NULL;
    if (!go || !ghn || (mode == CT_LSTM && !gcn)) return ct_ctx_status(ctx);
    float *d[IN_COUNT] = {0};
    for (int i = 0; i < IN_LEN; i++) {
        if (!ct__input_needs_grad(n, i)) continue;
        ct_tensor *x = n->in[i];
        gin[i] = ct__new(ctx, CT_F32, dev, x->ndim, x->shape);
        if (!gin[i]) return ct_ctx_status(ctx);
        d[i] = ct_data(gin[i]);
    }
    int64_t nw = k->bwd_work_floats(mode, T, B, H), V = n->iv[IV_V];
    ct_tensor *work = ct__new(ctx, CT_F32, dev, 1, &nw);
    ct_tensor *table = V > 0 ? ct__new(ctx, CT_F32, dev, 2, (const int64_t[]){V, GH}) : NULL;
    if (!work || (V > 0 && !table)) return ct_ctx_status(ctx);
    ct_tensor *len = n->in[IN_LEN];
    const int64_t *lens = n->iv[IV_MASKED] && len ? ct_data_i64(len) : NULL;
    const float *x = fptr(n->saved[SV_XM] ? n->saved[SV_XM] : n->in[IN_X]);
    const int64_t *tokens = V > 0 ? ct_data_i64(n->in[IN_TOK]) : NULL;
    const float *gates = fptr(n->saved[SV_GATES]), *aux = fptr(n->saved[SV_AUX]);
    if (n->iv[IV_RECOMPUTE]) {
        /* the forward kept neither gates nor aux: run the layer again (same inputs, same
         * weights: the engine has checked their versions) into scratch outputs */
        const int64_t n_aux = k->aux_floats(mode, T, B, H), nfw = k->fwd_work_floats(mode, T, B, H);
        ct_tensor *g2 = ct__new(ctx, CT_F32, dev, 2, (const int64_t[]){T * B, GH});
        ct_tensor *aux2 = n_aux > 0 ? ct__new(ctx, CT_F32, dev, 1, &n_aux) : NULL;
        ct_tensor *o2 = ct__new(ctx, CT_F32, dev, 2, (const int64_t[]){T * B, H});
        ct_tensor *hc2 = ct__new(ctx, CT_F32, dev, 2, (const int64_t[]){2, B * H});
        ct_tensor *fw = ct__new(ctx, CT_F32, dev, 1, &nfw);
        if (!g2 || (n_aux > 0 && !aux2) || !o2 || !hc2 || !fw) return ct_ctx_status(ctx);
        ct_rnn_fwd_args f = {
            .mode = mode, .T = T, .B = B, .n_in = NI, .H = H, .x = x,
            .w_ih = fptr(n->in[IN_WIH]), .w_hh = fptr(n->in[IN_WHH]),
            .b_ih = fptr(n->in[IN_BIH]), .b_hh = fptr(n->in[IN_BHH]),
            .h0 = fptr(n->in[IN_H0]), .c0 = fptr(n->in[IN_C0]),
            .lens = lens, .tokens = tokens, .V = V, .table = table ? ct_data(table) : NULL,
            .gates = ct_data(g2), .aux = aux2 ? ct_data(aux2) : NULL, .out = ct_data(o2),
            .h_n = ct_data(hc2), .c_n = (float *)ct_data(hc2) + B * H, .work = ct_data(fw),
        };
        k->forward(&f);
        gates = ct_data(g2);
        aux = aux2 ? ct_data(aux2) : NULL;
    }
    ct_rnn_bwd_args a = {
        .mode = mode, .T = T, .B = B, .n_in = NI, .H = H,
        .x = x, .w_ih = fptr(n->in[IN_WIH]), .w_hh = fptr(n->in[IN_WHH]),
        .h0 = fptr(n->in[IN_H0]), .c0 = fptr(n->in[IN_C0]),
        .lens = lens, .tokens = tokens, .V = V, .table = table ? ct_data(table) : NULL,
        .gates = gates, .aux = aux,
        .out = fptr(n->saved[SV_OUT]),
        .g_out = fptr(go), .g_hn = fptr(ghn), .g_cn = fptr(gcn),
        .dx = d[IN_X], .dw_ih = d[IN_WIH], .dw_hh = d[IN_WHH], .db_ih = d[IN_BIH],
        .db_hh = d[IN_BHH], .dh0 = d[IN_H0], .dc0 = d[IN_C0],
        .work = ct_data(work),
    };
    k->backward(&a);
    return CT_OK;
}

static const ct_op_def layer_defs[4] = {
    [CT_RNN_TANH] = {"rnn_tanh_layer", layer_bw, false},
    [CT_RNN_RELU] = {"rnn_relu_layer", layer_bw, false},
    [CT_LSTM] = {"lstm_layer", layer_bw, false},
    [CT_GRU] = {"gru_layer", layer_bw, false},
};

/* One layer over the sequence. x [T, B, I] contiguous, or (first layer only) emb [V, I]
 * contiguous with tok int64 [T, B] contiguous (checked where active); h0, c0 [B, H]
 * contiguous or NULL; lens (host copy of lengths) only when some sequence is shorter than T. */
static ct_status layer_forward(ct_src src, ct_module *m, const ct_rnn_config *cfg, int l,
                               ct_tensor *x, ct_tensor *emb, ct_tensor *tok, ct_tensor *h0,
                               ct_tensor *c0, ct_tensor *lengths, const int64_t *lens,
                               bool recompute, ct_tensor **out, ct_tensor **hn, ct_tensor **cn) {
    ct_ctx *ctx = m->ctx;
    const ct_rnn_mode mode = cfg->mode;
    const int64_t T = emb ? tok->shape[0] : x->shape[0], B = emb ? tok->shape[1] : x->shape[1];
    const int64_t NI = emb ? emb->shape[1] : x->shape[2], H = cfg->hidden_size;
    const int64_t GH = ct_rnn_gates(mode) * H, V = emb ? emb->shape[0] : 0;
    const ct_device dev = (emb ? emb : x)->storage->device;
    const struct ct_kernels_rnn *k = kernels_for(ctx, src, "rnn_forward", dev);
    if (!k) return ct_ctx_status(ctx);
    ct_tensor *w[4];
    for (int i = 0; i < 4; i++) {
        ct_tensor *p = param(m, cfg, l, i);
        w[i] = p ? ct_contiguous_at(src, p) : NULL;
        if (p && !w[i]) return ct_ctx_status(ctx);
    }
    ct_tensor *o = ct__new(ctx, CT_F32, dev, 3, (const int64_t[]){T, B, H});
    ct_tensor *h = ct__new(ctx, CT_F32, dev, 2, (const int64_t[]){B, H});
    ct_tensor *c = mode == CT_LSTM ? ct__new(ctx, CT_F32, dev, 2, (const int64_t[]){B, H}) : NULL;
    if (!o || !h || (mode == CT_LSTM && !c)) return ct_ctx_status(ctx);
    /* The scratch, the gates and aux live in an inner scope: what the node saves survives
     * it, the rest (everything, when the layer recomputes in backward) goes back to the
     * allocator before the next layer runs. */
    ct_status st = CT_OK;
    ct_scope_begin(ctx);
    ct_tensor *gates = ct__new(ctx, CT_F32, dev, 2, (const int64_t[]){T * B, GH});
    const int64_t n_aux = k->aux_floats(mode, T, B, H);
    ct_tensor *aux = n_aux > 0 ? ct__new(ctx, CT_F32, dev, 1, &n_aux) : NULL;
    int64_t nw = k->fwd_work_floats(mode, T, B, H);
    ct_tensor *work = ct__new(ctx, CT_F32, dev, 1, &nw);
    ct_tensor *table = emb ? ct__new(ctx, CT_F32, dev, 2, (const int64_t[]){V, GH}) : NULL;
    if (!gates || !work || (n_aux > 0 && !aux) || (emb && !table)) goto fail;
    /* a first layer with padding reads (and saves) x with the padded rows zeroed, so that
     * nothing in the padding can reach a weight gradient */
    ct_tensor *xm = NULL;
    if (lens && l == 0 && !emb) {
        xm = ct__new(ctx, CT_F32, dev, 3, x->shape);
        if (!xm) goto fail;
        /* through the device's copy and fill: copy, then zero each short sequence's tail
         * [lens[b]:, b, :] */
        xm->storage->backend->copy(xm, x);
        for (int64_t b = 0; b < B; b++) {
            if (lens[b] >= T) continue;
            ct_tensor *tail = ct__view(xm, 2, (const int64_t[]){T - lens[b], NI},
                                       (const int64_t[]){B * NI, 1},
                                       xm->offset + (lens[b] * B + b) * NI);
            if (!tail) goto fail;
            tail->storage->backend->fill(tail, 0.0);
        }
    }
    ct_rnn_fwd_args a = {
        .mode = mode, .T = T, .B = B, .n_in = NI, .H = H,
        .x = fptr(xm ? xm : emb ? emb : x), .w_ih = fptr(w[0]), .w_hh = fptr(w[1]),
        .b_ih = fptr(w[2]), .b_hh = fptr(w[3]), .h0 = fptr(h0), .c0 = fptr(c0),
        .lens = lens, .tokens = emb ? ct_data(tok) : NULL, .V = V,
        .table = table ? ct_data(table) : NULL,
        .gates = ct_data(gates), .aux = aux ? ct_data(aux) : NULL,
        .out = ct_data(o), .h_n = ct_data(h), .c_n = c ? ct_data(c) : NULL,
        .work = ct_data(work),
    };
    k->forward(&a);
    ct_tensor *ins[IN_COUNT] = {emb ? emb : x, w[0], w[1], w[2], w[3], h0, c0,
                                lens ? lengths : NULL, emb ? tok : NULL};
    if (ct__needs_grad(ctx, IN_COUNT, ins)) {
        ct_tensor *outs[3] = {o, h, c};
        ct_node *nd = ct__record(src, &layer_defs[mode], IN_COUNT, ins, mode == CT_LSTM ? 3 : 2,
                                 outs);
        if (!nd) goto fail;
        nd->iv[IV_MODE] = mode;
        nd->iv[IV_T] = T;
        nd->iv[IV_B] = B;
        nd->iv[IV_I] = NI;
        nd->iv[IV_H] = H;
        nd->iv[IV_MASKED] = lens != NULL;
        nd->iv[IV_V] = V;
        nd->iv[IV_RECOMPUTE] = recompute;
        ct__save(nd, recompute ? NULL : gates);
        ct__save(nd, recompute ? NULL : aux);
        ct__save(nd, o);
        ct__save(nd, xm);
    }
    ct_scope_end(ctx);
    *out = o;
    *hn = h;
    *cn = c;
    return CT_OK;
fail:
    st = ct_ctx_status(ctx);
    ct_scope_end(ctx);
    return st;
}

/* Whether layer l recomputes its gates in backward instead of keeping them (rnn_impl.recompute;
 * see ct_rnn_set_recompute). */
static bool layer_recomputes(const rnn_impl *im, int l, int64_t T, int64_t B) {
    if (im->recompute != CT_RNN_RECOMPUTE_AUTO) return l < im->recompute;
    const int64_t GH = ct_rnn_gates(im->cfg.mode) * im->cfg.hidden_size;
    return l < im->cfg.num_layers - 1 &&
           T * B * GH * (int64_t)sizeof(float) >= CT_RNN_RECOMPUTE_MIN_BYTES;
}

ct_status ct_rnn_set_recompute(ct_module *m, int layers) {
    rnn_impl *im = (rnn_impl *)impl_of(m);
    if (!im) {
        if (m && m->ctx)
            ct_fail(m->ctx, CT_E_ARG, "rnn_set_recompute: module %s is not a fused recurrent "
                    "module (made by ct_rnn_new)", m->kind ? m->kind : "(unnamed)");
        return CT_E_ARG;
    }
    if (layers != CT_RNN_RECOMPUTE_AUTO && (layers < 0 || layers > im->cfg.num_layers)) {
        ct_fail(m->ctx, CT_E_ARG, "rnn_set_recompute: %d layers; expected %d (CT_RNN_RECOMPUTE_AUTO) "
                "or 0..%d (num_layers)", layers, CT_RNN_RECOMPUTE_AUTO, im->cfg.num_layers);
        return CT_E_ARG;
    }
    im->recompute = layers;
    return CT_OK;
}

int ct_rnn_recompute_layers(const ct_module *m) {
    const rnn_impl *im = impl_of(m);
    return im ? im->recompute : CT_RNN_RECOMPUTE_AUTO;
}

/* ---- the checked front end ----------------------------------------------------------------- */
static ct_status arg_error(ct_ctx *ctx, ct_src src, const char *op, ct_status s, const char *fmt,
                           ...) __attribute__((format(printf, 5, 6)));
static ct_status arg_error(ct_ctx *ctx, ct_src src, const char *op, ct_status s, const char *fmt,
                           ...) {
    char msg[CT_ERROR_MSG_MAX - 160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ct__op_error(ctx, src, op, s, "%s", msg);
    return s;
}

/* Checks an operand's context, dtype and device (the module's, when want_dev is set). */
static bool check_operand_on(ct_ctx *ctx, ct_src src, const char *op, const char *kind,
                             const char *name, const ct_tensor *t, ct_dtype dt,
                             const ct_device *want_dev) {
    char s[96];
    if (t->ctx != ctx) {
        arg_error(ctx, src, op, CT_E_ARG, "%s belongs to another context than the %s module",
                  name, kind);
        return false;
    }
    if (t->dtype != dt) {
        arg_error(ctx, src, op, CT_E_DTYPE, "%s %s is %s; expected %s", name,
                  ct_shape_str(t, s, sizeof s), ct_dtype_name(t->dtype), ct_dtype_name(dt));
        return false;
    }
    if (want_dev && !ct_device_eq(t->storage->device, *want_dev)) {
        char a[16], b[16];
        arg_error(ctx, src, op, CT_E_DEVICE, "%s %s is on %s but the %s's parameters are on %s "
                  "(move one of them: ct_to, ct_module_to)", name, ct_shape_str(t, s, sizeof s),
                  ct_device_str(t->storage->device, a, sizeof a), kind,
                  ct_device_str(*want_dev, b, sizeof b));
        return false;
    }
    return true;
}

/* Checks a state tensor: float32 [L, B, H]. */
static bool check_state(ct_ctx *ctx, ct_src src, const char *op, const char *kind,
                        const char *name, const ct_tensor *t, int L, int64_t B, int64_t H,
                        ct_device dev) {
    char s[96];
    if (!check_operand_on(ctx, src, op, kind, name, t, CT_F32, &dev)) return false;
    if (t->ndim != 3 || t->shape[0] != L || t->shape[1] != B || t->shape[2] != H) {
        arg_error(ctx, src, op, CT_E_SHAPE, "%s has shape %s but the %s needs [num_layers, "
                  "batch, hidden_size] = [%d, %lld, %lld]", name, ct_shape_str(t, s, sizeof s),
                  kind, L, (long long)B, (long long)H);
        return false;
    }
    return true;
}

/* ct_rnn_forward (x) and ct_rnn_forward_embedded (emb + tokens, x NULL) */
static ct_status forward_impl(ct_src src, const char *op, ct_module *m, ct_tensor *x,
                              ct_tensor *emb, ct_tensor *tokens, ct_tensor *lengths,
                              ct_tensor *h0, ct_tensor *c0, ct_rng *rng, ct_tensor **out,
                              ct_tensor **h_n, ct_tensor **c_n) {
    if (out) *out = NULL;
    if (h_n) *h_n = NULL;
    if (c_n) *c_n = NULL;
    if (!m) return CT_E_NULL;
    ct_ctx *ctx = m->ctx;
    const rnn_impl *im = impl_of(m);
    if (!im)
        return arg_error(ctx, src, op, CT_E_ARG, "the %s module '%s' was not made by ct_rnn_new",
                         m->kind ? m->kind : "?", m->name);
    const ct_rnn_config *cfg = &im->cfg;
    const char *kind = kind_of(cfg->mode);
    const int L = cfg->num_layers;
    const int64_t H = cfg->hidden_size;
    const char *layout = cfg->batch_first ? "[batch, time" : "[time, batch";
    const ct_device mdev = ct_module_device(m);
    char s[96];
    int64_t T, B;
    /* the input */
    if (x) {
        if (!check_operand_on(ctx, src, op, kind, "x", x, CT_F32, &mdev)) return ct_ctx_status(ctx);
        if (x->ndim != 3)
            return arg_error(ctx, src, op, CT_E_SHAPE, "input %s: the %s needs 3 dims, %s, "
                             "input_size]", ct_shape_str(x, s, sizeof s), kind, layout);
        if (x->shape[2] != cfg->input_size)
            return arg_error(ctx, src, op, CT_E_SHAPE, "input %s: the %s has input_size %lld "
                             "(last dim)", ct_shape_str(x, s, sizeof s), kind,
                             (long long)cfg->input_size);
        T = x->shape[cfg->batch_first ? 1 : 0];
        B = x->shape[cfg->batch_first ? 0 : 1];
        if (T < 1 || B < 1)
            return arg_error(ctx, src, op, CT_E_SHAPE, "input %s: %s, input_size]; the sequence "
                             "length and the batch must be at least 1",
                             ct_shape_str(x, s, sizeof s), layout);
    } else {
        /* tokens may be on any device: they are checked (and gathered) on the host */
        if (!check_operand_on(ctx, src, op, kind, "emb", emb, CT_F32, &mdev) ||
            !check_operand_on(ctx, src, op, kind, "tokens", tokens, CT_I64, NULL))
            return ct_ctx_status(ctx);
        if (emb->ndim != 2 || emb->shape[0] < 1 || emb->shape[1] != cfg->input_size)
            return arg_error(ctx, src, op, CT_E_SHAPE, "emb has shape %s; the %s needs [V, "
                             "input_size] = [V, %lld] with V >= 1", ct_shape_str(emb, s, sizeof s),
                             kind, (long long)cfg->input_size);
        if (tokens->ndim != 2 || tokens->shape[0] < 1 || tokens->shape[1] < 1)
            return arg_error(ctx, src, op, CT_E_SHAPE, "tokens has shape %s; the %s needs %s] "
                             "with both at least 1", ct_shape_str(tokens, s, sizeof s), kind,
                             layout);
        T = tokens->shape[cfg->batch_first ? 1 : 0];
        B = tokens->shape[cfg->batch_first ? 0 : 1];
    }
    /* initial states */
    if (h0 && !check_state(ctx, src, op, kind, "h0", h0, L, B, H, mdev)) return ct_ctx_status(ctx);
    if (c0) {
        if (cfg->mode != CT_LSTM)
            return arg_error(ctx, src, op, CT_E_ARG, "c0 was given but a %s has no cell state "
                             "(pass NULL)", kind);
        if (!check_state(ctx, src, op, kind, "c0", c0, L, B, H, mdev)) return ct_ctx_status(ctx);
    }
    /* lengths */
    const int64_t *lv = NULL, *lens = NULL;
    if (lengths) {
        if (lengths->ctx != ctx)
            return arg_error(ctx, src, op, CT_E_ARG, "lengths belongs to another context than the "
                             "%s module", kind);
        if (lengths->dtype != CT_I64 || lengths->ndim != 1 || lengths->shape[0] != B)
            return arg_error(ctx, src, op, CT_E_SHAPE, "lengths is %s %s; expected int64 [%lld] "
                             "(one length per sequence of the batch)",
                             ct_dtype_name(lengths->dtype), ct_shape_str(lengths, s, sizeof s),
                             (long long)B);
    }
    const bool drop = m->training && cfg->dropout > 0.0f && L > 1;
    if (drop && !rng)
        return arg_error(ctx, src, op, CT_E_ARG, "the %s has dropout %g between layers and is in "
                         "training mode, but the generator (rng) is NULL", kind,
                         (double)cfg->dropout);

    ct_scope_begin(ctx);
    ct_status st = CT_OK;
    ct_tensor *small[2 * 8], **fin = L <= 8 ? small : malloc(sizeof(ct_tensor *) * 2 * (size_t)L);
    if (!fin) { st = arg_error(ctx, src, op, CT_E_NOMEM, "out of memory"); goto done; }
    ct_tensor **hs = fin, **cs = fin + L;
    if (lengths) {
        /* read on the host (kernels_rnn.h: lens is a host array), so a dense copy there */
        lengths = ct_contiguous_at(src, ct_to_at(src, lengths, CT_DEVICE_CPU));
        if (!lengths) { st = ct_ctx_status(ctx); goto done; }
        lv = ct_data(lengths);
        bool shorter = false;
        for (int64_t b = 0; b < B; b++) {
            if (lv[b] < 1 || lv[b] > T) {
                st = arg_error(ctx, src, op, CT_E_ARG, "lengths[%lld] = %lld is outside [1, T = "
                               "%lld] for %s %s", (long long)b, (long long)lv[b], (long long)T,
                               x ? "input" : "tokens", ct_shape_str(x ? x : tokens, s, sizeof s));
                goto done;
            }
            if (lv[b] < T) shorter = true;
        }
        if (shorter) lens = lv;
    }
    /* the first layer's input */
    ct_tensor *xl = NULL, *embc = NULL, *tok = NULL;
    if (x) {
        xl = ct_contiguous_at(src, cfg->batch_first ? ct_transpose_at(src, x, 0, 1) : x);
        if (!xl) { st = ct_ctx_status(ctx); goto done; }
    } else {
        /* time-major tokens, checked where they are read */
        const int64_t V = emb->shape[0];
        const bool table = V < T * B;
        ct_tensor *tokh = ct_to_at(src, tokens, CT_DEVICE_CPU);   /* the same tensor on the CPU */
        tok = ct__new(ctx, CT_I64, CT_DEVICE_CPU, 2, (const int64_t[]){T, B});
        if (!tokh || !tok) { st = ct_ctx_status(ctx); goto done; }
        tokens = tokh;
        const int64_t *tin = ct_data(tokens);
        int64_t *tt = ct_data(tok);
        const int64_t st_t = tokens->stride[cfg->batch_first ? 1 : 0];
        const int64_t st_b = tokens->stride[cfg->batch_first ? 0 : 1];
        for (int64_t t = 0; t < T; t++)
            for (int64_t b = 0; b < B; b++) {
                int64_t v = tin[t * st_t + b * st_b];
                if (lv && t >= lv[b]) v = table ? -1 : 0;   /* never read (table) or masked */
                else if (v < 0 || v >= V) {
                    st = arg_error(ctx, src, op, CT_E_ARG, "tokens[%lld][%lld] = %lld is outside "
                                   "[0, V = %lld) (emb %s)", (long long)(cfg->batch_first ? b : t),
                                   (long long)(cfg->batch_first ? t : b), (long long)v,
                                   (long long)V, ct_shape_str(emb, s, sizeof s));
                    goto done;
                }
                tt[t * B + b] = v;
            }
        tok = ct_to_at(src, tok, mdev);   /* the same tensor when the module is on the CPU */
        if (!tok) { st = ct_ctx_status(ctx); goto done; }
        if (table) {
            embc = ct_contiguous_at(src, emb);
            if (!embc) { st = ct_ctx_status(ctx); goto done; }
        } else {
            xl = ct_embedding_at(src, emb, tok);        /* [T, B, I]; padding zeroed later */
            if (!xl) { st = ct_ctx_status(ctx); goto done; }
            tok = NULL;
        }
    }
    ct_tensor *h0c = h0 ? ct_contiguous_at(src, h0) : NULL;
    ct_tensor *c0c = c0 ? ct_contiguous_at(src, c0) : NULL;
    if ((h0 && !h0c) || (c0 && !c0c)) { st = ct_ctx_status(ctx); goto done; }
    for (int l = 0; l < L; l++) {
        ct_tensor *h0l = h0c ? ct_select_at(src, h0c, 0, l) : NULL;
        ct_tensor *c0l = c0c ? ct_select_at(src, c0c, 0, l) : NULL;
        if ((h0c && !h0l) || (c0c && !c0l)) { st = ct_ctx_status(ctx); goto done; }
        ct_tensor *ol = NULL;
        st = layer_forward(src, m, cfg, l, xl, l == 0 ? embc : NULL, l == 0 ? tok : NULL, h0l,
                           c0l, lengths, lens, layer_recomputes(im, l, T, B),
                           &ol, &hs[l], &cs[l]);
        if (st != CT_OK) goto done;
        xl = ol;
        if (drop && l < L - 1) {
            xl = ct_dropout_at(src, ol, cfg->dropout, true, rng);
            if (!xl) { st = ct_ctx_status(ctx); goto done; }
        }
    }
    ct_tensor *o = xl, *hn = NULL, *cn = NULL;
    if (cfg->batch_first) o = ct_contiguous_at(src, ct_transpose_at(src, o, 0, 1));
    if (h_n) hn = L == 1 ? ct_unsqueeze_at(src, hs[0], 0) : ct_stack_at(src, L, hs, 0);
    if (c_n && cfg->mode == CT_LSTM)
        cn = L == 1 ? ct_unsqueeze_at(src, cs[0], 0) : ct_stack_at(src, L, cs, 0);
    if (!o || (h_n && !hn) || (c_n && cfg->mode == CT_LSTM && !cn)) {
        st = ct_ctx_status(ctx);
        goto done;
    }
    if (out) *out = ct_keep(o);
    if (h_n) *h_n = ct_keep(hn);
    if (c_n) *c_n = cn ? ct_keep(cn) : NULL;
done:
    if (fin != small) free(fin);
    ct_scope_end(ctx);
    if (st != CT_OK) {
        if (out) *out = NULL;
        if (h_n) *h_n = NULL;
        if (c_n) *c_n = NULL;
    }
    return st;
}

ct_status ct_rnn_forward_at(ct_src src, ct_module *m, ct_tensor *x, ct_tensor *lengths,
                            ct_tensor *h0, ct_tensor *c0, ct_rng *rng, ct_tensor **out,
                            ct_tensor **h_n, ct_tensor **c_n) {
    if (!x) {
        if (out) *out = NULL;
        if (h_n) *h_n = NULL;
        if (c_n) *c_n = NULL;
        return CT_E_NULL;
    }
    return forward_impl(src, "rnn_forward", m, x, NULL, NULL, lengths, h0, c0, rng, out, h_n,
                        c_n);
}

ct_status ct_rnn_forward_embedded_at(ct_src src, ct_module *m, ct_tensor *emb, ct_tensor *tokens,
                                     ct_tensor *lengths, ct_tensor *h0, ct_tensor *c0,
                                     ct_rng *rng, ct_tensor **out, ct_tensor **h_n,
                                     ct_tensor **c_n) {
    if (!emb || !tokens) {
        if (out) *out = NULL;
        if (h_n) *h_n = NULL;
        if (c_n) *c_n = NULL;
        return CT_E_NULL;
    }
    return forward_impl(src, "rnn_forward_embedded", m, NULL, emb, tokens, lengths, h0, c0, rng,
                        out, h_n, c_n);
}

static ct_tensor *rnn_module_forward(ct_src src, ct_module *m, ct_tensor *x, ct_rng *rng) {
    ct_tensor *out;
    ct_rnn_forward_at(src, m, x, NULL, NULL, NULL, rng, &out, NULL, NULL);
    return out;
}

/* ---- stepwise sampling ----------------------------------------------------------------------- */
struct ct_rnn_state {
    ct_module *m;
    ct_ctx *ctx;
    ct_rnn_config cfg;
    int64_t B;
    ct_tensor *h, *c, *top;       /* owned references */
    ct_device dev;                /* where h, c (and the module, when stepping) live */
    const struct ct_kernels_rnn *k;
    ct_rnn_stepper *stepper;      /* the backend's scratch and worker threads */
    const float **ptrs;           /* [4][L]: w_ih, w_hh, b_ih, b_hh of every layer, refreshed
                                   * by every step (flattening moves parameters) */
};

ct_rnn_state *ct_rnn_state_new_at(ct_src src, ct_module *m, int64_t batch) {
    if (!m) return NULL;
    ct_ctx *ctx = m->ctx;
    const rnn_impl *im = impl_of(m);
    if (!im) {
        ct__op_error(ctx, src, "rnn_state_new", CT_E_ARG, "the %s module '%s' was not made by "
                     "ct_rnn_new", m->kind ? m->kind : "?", m->name);
        return NULL;
    }
    if (batch < 1) {
        ct__op_error(ctx, src, "rnn_state_new", CT_E_ARG, "batch %lld must be at least 1",
                     (long long)batch);
        return NULL;
    }
    const ct_rnn_config *cfg = &im->cfg;
    const int L = cfg->num_layers;
    const int64_t H = cfg->hidden_size;
    const struct ct_kernels_rnn *k =
        kernels_for(ctx, src, "rnn_state_new", ct_module_device(m));
    if (!k) return NULL;
    ct_rnn_state *st = calloc(1, sizeof *st);
    if (st) {
        st->k = k;
        st->stepper = k->stepper_new(cfg->mode, L, batch, cfg->input_size, H);
        st->ptrs = calloc(4 * (size_t)L, sizeof *st->ptrs);
    }
    if (!st || !st->stepper || !st->ptrs) {
        if (st) { k->stepper_free(st->stepper); free(st->ptrs); free(st); }
        ct__op_error(ctx, src, "rnn_state_new", CT_E_NOMEM, "out of memory");
        return NULL;
    }
    st->m = m;
    st->ctx = ctx;
    st->cfg = *cfg;
    st->B = batch;
    ct_scope_begin(ctx);
    const ct_device dev = ct_module_device(m);
    st->dev = dev;
    st->h = ct__full_on(ctx, dev, 3, (const int64_t[]){L, batch, H}, 0.0);
    if (st->h) ct_retain(st->h);
    if (cfg->mode == CT_LSTM) {
        st->c = ct__full_on(ctx, dev, 3, (const int64_t[]){L, batch, H}, 0.0);
        if (st->c) ct_retain(st->c);
    }
    if (st->h) {
        st->top = ct__view(st->h, 2, (const int64_t[]){batch, H}, (const int64_t[]){H, 1},
                           st->h->offset + (int64_t)(L - 1) * batch * H);
        if (st->top) ct_retain(st->top);
    }
    ct_scope_end(ctx);
    if (!st->h || !st->top || (cfg->mode == CT_LSTM && !st->c)) {
        ct_rnn_state_free(st);
        return NULL;
    }
    return st;
}

void ct_rnn_state_free(ct_rnn_state *st) {
    if (!st) return;
    ct_release(st->top);
    ct_release(st->h);
    ct_release(st->c);
    st->k->stepper_free(st->stepper);
    free(st->ptrs);
    free(st);
}

void ct_rnn_state_reset(ct_rnn_state *st) {
    if (!st) return;
    ct_inplace_fill(st->h, 0.0f);
    if (st->c) ct_inplace_fill(st->c, 0.0f);
}

ct_tensor *ct_rnn_state_h(ct_rnn_state *st) { return st ? st->h : NULL; }
ct_tensor *ct_rnn_state_c(ct_rnn_state *st) { return st ? st->c : NULL; }
int64_t ct_rnn_state_batch(const ct_rnn_state *st) { return st ? st->B : 0; }

static ct_status step_check(ct_src src, const char *op, ct_module *m, ct_rnn_state *st) {
    if (!m || !st) return CT_E_NULL;
    const rnn_impl *im = impl_of(m);
    if (!im) {
        ct__op_error(m->ctx, src, op, CT_E_ARG, "the %s module '%s' was not made by ct_rnn_new",
                     m->kind ? m->kind : "?", m->name);
        return CT_E_ARG;
    }
    if (st->m != m) {
        ct__op_error(m->ctx, src, op, CT_E_ARG, "the state was made for another module (give "
                     "each module its own ct_rnn_state)");
        return CT_E_ARG;
    }
    const ct_rnn_config *cfg = &im->cfg;
    for (int l = 0; l < cfg->num_layers; l++)
        for (int i = 0; i < 4; i++) {
            ct_tensor *p = param(m, cfg, l, i);
            if (p && (!ct_is_contiguous(p) || !ct_device_eq(p->storage->device, st->dev))) {
                char d[16];
                ct__op_error(m->ctx, src, op, CT_E_UNSUPPORTED, "parameter %d of layer %d is not "
                             "a contiguous tensor on %s, the state's device (make the state after "
                             "moving the module)", i, l, ct_device_str(st->dev, d, sizeof d));
                return CT_E_UNSUPPORTED;
            }
            st->ptrs[i * cfg->num_layers + l] = p ? ct_data(p) : NULL;
        }
    return CT_OK;
}

static void step_run(ct_rnn_state *st, const float *x, const float *w_out, const float *b_out,
                     int64_t V, float *logits) {
    const ct_rnn_config *cfg = &st->cfg;
    const int L = cfg->num_layers;
    ct_rnn_step_args a = {
        .mode = cfg->mode, .L = L, .B = st->B, .n_in = cfg->input_size, .H = cfg->hidden_size,
        .x = x, .w_ih = st->ptrs, .w_hh = st->ptrs + L,
        .b_ih = cfg->bias ? st->ptrs + 2 * L : NULL, .b_hh = cfg->bias ? st->ptrs + 3 * L : NULL,
        .h = ct_data(st->h), .c = st->c ? ct_data(st->c) : NULL,
        .w_out = w_out, .b_out = b_out, .V = V, .logits = logits,
    };
    st->k->step(st->stepper, &a);
    ct__bump_version(st->h);
    if (st->c) ct__bump_version(st->c);
}

ct_status ct_rnn_step_f32_at(ct_src src, ct_module *m, const float *x, ct_rnn_state *st,
                             const float **out_h) {
    if (out_h) *out_h = NULL;
    ct_status s = step_check(src, "rnn_step", m, st);
    if (s != CT_OK) return s;
    if (!x) {
        ct__op_error(m->ctx, src, "rnn_step", CT_E_NULL, "x is NULL");
        return CT_E_NULL;
    }
    step_run(st, x, NULL, NULL, 0, NULL);
    if (out_h) *out_h = ct_data(st->top);
    return CT_OK;
}

/* Checks an output-layer operand: a contiguous float32 CPU tensor of the context and shape. */
static bool check_linear(ct_src src, ct_module *m, const char *name, const ct_tensor *t, int ndim,
                         int64_t d0, int64_t d1) {
    char sh[96];
    const char *op = "rnn_step_linear";
    if (t->ctx != m->ctx || t->dtype != CT_F32 ||
        !ct_device_eq(t->storage->device, ct_module_device(m)) || !ct_is_contiguous(t)) {
        char d[16];
        ct__op_error(m->ctx, src, op, CT_E_ARG, "%s %s must be a contiguous float32 tensor of the "
                     "module's context on its device (%s)", name, ct_shape_str(t, sh, sizeof sh),
                     ct_device_str(ct_module_device(m), d, sizeof d));
        return false;
    }
    if (t->ndim != ndim || t->shape[0] != d0 || (ndim == 2 && t->shape[1] != d1)) {
        if (ndim == 2)
            ct__op_error(m->ctx, src, op, CT_E_SHAPE, "%s has shape %s; the output layer of a "
                         "hidden_size %lld recurrent module needs [V, %lld]", name,
                         ct_shape_str(t, sh, sizeof sh), (long long)d1, (long long)d1);
        else
            ct__op_error(m->ctx, src, op, CT_E_SHAPE, "%s has shape %s; the weight has %lld rows, "
                         "so it needs [%lld]", name, ct_shape_str(t, sh, sizeof sh),
                         (long long)d0, (long long)d0);
        return false;
    }
    return true;
}

ct_status ct_rnn_step_linear_f32_at(ct_src src, ct_module *m, const float *x, ct_rnn_state *st,
                                    ct_tensor *w, ct_tensor *bias, float *logits,
                                    const float **out_h) {
    if (out_h) *out_h = NULL;
    ct_status s = step_check(src, "rnn_step_linear", m, st);
    if (s != CT_OK) return s;
    if (!x || !w || !logits) {
        ct__op_error(m->ctx, src, "rnn_step_linear", CT_E_NULL, "%s is NULL",
                     !x ? "x" : !w ? "the weight" : "logits");
        return CT_E_NULL;
    }
    const int64_t H = st->cfg.hidden_size;
    if (!check_linear(src, m, "the weight", w, 2, w->ndim == 2 ? w->shape[0] : -1, H))
        return ct_ctx_status(m->ctx);
    const int64_t V = w->shape[0];
    if (V < 1) {
        ct__op_error(m->ctx, src, "rnn_step_linear", CT_E_SHAPE, "the weight has no rows");
        return CT_E_SHAPE;
    }
    if (bias && !check_linear(src, m, "the bias", bias, 1, V, 0)) return ct_ctx_status(m->ctx);
    step_run(st, x, ct_data(w), bias ? ct_data(bias) : NULL, V, logits);
    if (out_h) *out_h = ct_data(st->top);
    return CT_OK;
}

ct_status ct_rnn_step_at(ct_src src, ct_module *m, ct_tensor *x_t, ct_rnn_state *st,
                         ct_tensor **out_h) {
    if (out_h) *out_h = NULL;
    ct_status s = step_check(src, "rnn_step", m, st);
    if (s != CT_OK) return s;
    if (!x_t) return CT_E_NULL;
    const ct_rnn_config *cfg = &st->cfg;
    const int64_t B = st->B, NI = cfg->input_size;
    char sh[96];
    if (x_t->ctx != m->ctx || x_t->dtype != CT_F32 || !ct_device_eq(x_t->storage->device, st->dev)) {
        char d[16];
        ct__op_error(m->ctx, src, "rnn_step", CT_E_ARG, "x_t %s must be a float32 tensor of the "
                     "module's context on the state's device (%s)", ct_shape_str(x_t, sh, sizeof sh),
                     ct_device_str(st->dev, d, sizeof d));
        return CT_E_ARG;
    }
    bool ok = (x_t->ndim == 2 && x_t->shape[0] == B && x_t->shape[1] == NI) ||
              (x_t->ndim == 1 && B == 1 && x_t->shape[0] == NI);
    if (!ok) {
        ct__op_error(m->ctx, src, "rnn_step", CT_E_SHAPE, "x_t has shape %s but the %s state "
                     "needs [batch, input_size] = [%lld, %lld]", ct_shape_str(x_t, sh, sizeof sh),
                     kind_of(cfg->mode), (long long)B, (long long)NI);
        return CT_E_SHAPE;
    }
    if (ct_is_contiguous(x_t)) {
        step_run(st, ct_data(x_t), NULL, NULL, 0, NULL);
    } else {
        bool was = ct_set_grad_enabled(m->ctx, false);
        ct_scope_begin(m->ctx);
        ct_tensor *xc = ct_contiguous_at(src, x_t);
        if (xc) step_run(st, ct_data(xc), NULL, NULL, 0, NULL);
        ct_scope_end(m->ctx);
        ct_set_grad_enabled(m->ctx, was);
        if (!xc) return ct_ctx_status(m->ctx);
    }
    if (out_h) *out_h = st->top;
    return CT_OK;
}
