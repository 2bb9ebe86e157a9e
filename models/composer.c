/* models/composer.c — the composer networks (token RNN language model, piano-roll RNN) as
 * engine modules, their forward pass and training loss. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/layers.h"
#include "engine/ops.h"
#include "engine/rnn.h"
#include "models/composer.h"

static const char COMPOSER_KIND[] = "Composer";

typedef struct cc_impl {
    cc_config cfg;
    ct_module *embed, *rnn, *out;
} cc_impl;

static cc_impl *impl_of(const ct_module *m) {
    return (m && m->kind == COMPOSER_KIND && m->impl) ? m->impl : NULL;
}

static ct_tensor *forward_one(ct_src src, ct_module *m, ct_tensor *x, ct_rng *rng) {
    return cc_forward_at(src, m, x, NULL, rng);
}

/* ct_module_clone's hook: the clone's impl must name the clone's own children */
static ct_status clone_impl(ct_module *dst, const ct_module *src) {
    cc_impl *d = dst->impl;
    const cc_impl *s = src->impl;
    d->embed = s->embed ? ct_module_child(dst, "embed") : NULL;
    d->rnn = ct_module_child(dst, "rnn");
    d->out = ct_module_child(dst, "out");
    if ((s->embed && !d->embed) || !d->rnn || !d->out)
        return ct_fail(dst->ctx, CT_E_STATE, "cc_model clone: the copy lacks a child (embed, rnn, out)");
    return CT_OK;
}

static ct_rnn_mode mode_of(cc_cell c) {
    return c == CC_LSTM ? CT_LSTM : c == CC_GRU ? CT_GRU : CT_RNN_TANH;
}

ct_module *cc_model_new(ct_ctx *ctx, ct_rng *rng, const cc_config *cfg) {
    if (!ctx) return NULL;
    if (!rng || !cfg) {
        ct_fail(ctx, CT_E_NULL, "cc_model_new: %s is NULL", !rng ? "rng" : "cfg");
        return NULL;
    }
    cc_config c = *cfg;
    char err[256];
    if (cc_config_resolve(&c, err, sizeof err) != CT_OK) {
        ct_fail(ctx, CT_E_ARG, "cc_model_new: bad configuration: %s", err);
        return NULL;
    }
    ct_module *m = ct_module_new(ctx, COMPOSER_KIND, sizeof(cc_impl));
    if (!m) return NULL;
    cc_impl *im = m->impl;
    im->cfg = c;
    m->forward = forward_one;
    m->clone_impl = clone_impl;
    const bool roll = cc_config_is_roll(&c);
    if (!roll) {
        ct_module *e = ct_embedding_module_new(ctx, rng, c.vocab, c.embed);
        if (!e || ct_module_add_child(m, "embed", e) != CT_OK) {
            ct_module_free(e);
            goto fail;
        }
        im->embed = e;
    }
    ct_rnn_config rc = {mode_of(c.cell), roll ? CC_ROLL_KEYS : c.embed, c.hidden, c.layers, true,
                        false, c.layers > 1 ? c.dropout : 0.0f};
    ct_module *r = ct_rnn_new(ctx, rng, &rc);
    if (!r || ct_module_add_child(m, "rnn", r) != CT_OK) {
        ct_module_free(r);
        goto fail;
    }
    im->rnn = r;
    ct_module *o = ct_linear_new(ctx, rng, c.hidden, c.vocab, true);
    if (!o || ct_module_add_child(m, "out", o) != CT_OK) {
        ct_module_free(o);
        goto fail;
    }
    im->out = o;
    return m;
fail:
    ct_module_free(m);
    return NULL;
}

const cc_config *cc_model_config(const ct_module *m) {
    cc_impl *im = impl_of(m);
    return im ? &im->cfg : NULL;
}

ct_module *cc_model_embed(const ct_module *m) { cc_impl *im = impl_of(m); return im ? im->embed : NULL; }
ct_module *cc_model_rnn(const ct_module *m) { cc_impl *im = impl_of(m); return im ? im->rnn : NULL; }
ct_module *cc_model_out(const ct_module *m) { cc_impl *im = impl_of(m); return im ? im->out : NULL; }

int64_t cc_model_num_params(const ct_module *m) {
    return impl_of(m) ? ct_module_num_params(m) : -1;
}

char *cc_format_count(int64_t count, char *buf, size_t n) {
    double v = (double)count;
    if (count < 1000) snprintf(buf, n, "%lld", (long long)count);
    else if (v < 999950.0) snprintf(buf, n, "%.1fK", v / 1e3);
    else if (v < 999950000.0) snprintf(buf, n, "%.1fM", v / 1e6);
    else snprintf(buf, n, "%.1fG", v / 1e9);
    return buf;
}

int cc_model_describe(const ct_module *m, char *buf, size_t n) {
    const cc_config *c = cc_model_config(m);
    if (!c) return snprintf(buf, n, "(not a composer)");
    char d[128], k[32];
    cc_config_describe(c, d, sizeof d);
    return snprintf(buf, n, "%s, %s parameters", d,
                    cc_format_count(cc_model_num_params(m), k, sizeof k));
}

void cc_smoothed_frequencies(const int64_t *counts, int64_t total, int64_t n, double *freq) {
    if (!counts || !freq) return;
    for (int64_t i = 0; i < n; i++)
        freq[i] = ((double)counts[i] + 1.0) / ((double)total + 2.0);
}

ct_status cc_model_init_output_bias(ct_module *m, const double *freq, int64_t n) {
    if (!m) return CT_E_NULL;
    cc_impl *im = impl_of(m);
    if (!im) return ct_fail(m->ctx, CT_E_ARG, "cc_model_init_output_bias: module '%s' (%s) is "
                            "not a composer", m->name, m->kind ? m->kind : "?");
    if (!freq) return ct_fail(m->ctx, CT_E_NULL, "cc_model_init_output_bias: freq is NULL");
    const int64_t V = im->cfg.vocab;
    if (n != V)
        return ct_fail(m->ctx, CT_E_ARG, "cc_model_init_output_bias: %lld frequencies, but the "
                       "model has %lld outputs", (long long)n, (long long)V);
    for (int64_t i = 0; i < n; i++)
        if (!(freq[i] >= 0.0 && freq[i] <= 1.0))
            return ct_fail(m->ctx, CT_E_ARG, "cc_model_init_output_bias: freq[%lld] = %g is not "
                           "in [0, 1]", (long long)i, freq[i]);
    float *b = malloc(sizeof(float) * (size_t)V);
    if (!b) return ct_fail(m->ctx, CT_E_NOMEM, "cc_model_init_output_bias: out of memory");
    const bool roll = cc_config_is_roll(&im->cfg);
    for (int64_t i = 0; i < V; i++) {
        double p = fmin(fmax(freq[i], 1e-6), 1.0 - 1e-6);
        b[i] = (float)(roll ? log(p / (1.0 - p)) : log(p));
    }
    ct_tensor *bias = ct_module_param(im->out, "bias");
    ct_scope_begin(m->ctx);
    ct_tensor *src = ct_from_f32(m->ctx, b, 1, &V);
    ct_status s = src ? ct_inplace_copy(bias, src) : ct_ctx_status(m->ctx);
    ct_scope_end(m->ctx);
    free(b);
    return s;
}

/* ---- forward ---------------------------------------------------------------------------------- */
ct_tensor *cc_forward_at(ct_src src, ct_module *m, ct_tensor *x, ct_tensor *lengths, ct_rng *rng) {
    if (!m || !x) return NULL;
    cc_impl *im = impl_of(m);
    char sh[96];
    if (!im) {
        ct_fail(m->ctx, CT_E_ARG, "cc_forward: module '%s' (%s) is not a composer (at %s:%d)",
                m->name, m->kind ? m->kind : "?", src.file, src.line);
        return NULL;
    }
    const cc_config *c = &im->cfg;
    if (cc_config_is_roll(c)) {
        if (x->dtype != CT_F32 || x->ndim != 3 || x->shape[2] != CC_ROLL_KEYS) {
            ct_fail(m->ctx, CT_E_SHAPE, "cc_forward: input %s %s: the piano-roll model takes "
                    "float32 frames [T, B, 88] (at %s:%d)", ct_dtype_name(x->dtype),
                    ct_shape_str(x, sh, sizeof sh), src.file, src.line);
            return NULL;
        }
    } else if (x->dtype != CT_I64 || x->ndim != 2) {
        ct_fail(m->ctx, CT_E_SHAPE, "cc_forward: input %s %s: the %s model takes int64 tokens "
                "[T, B] (at %s:%d)", ct_dtype_name(x->dtype), ct_shape_str(x, sh, sizeof sh),
                cc_encoding_name(c->encoding), src.file, src.line);
        return NULL;
    }
    /* token models: the embedding fused into the first layer (engine/rnn.h): it projects the
     * vocabulary once instead of every position, which saves that layer's input product,
     * both of its backward products and the [T, B, embed] activation */
    ct_tensor *out = NULL;
    ct_status st = im->embed
        ? ct_rnn_forward_embedded_at(src, im->rnn, ct_module_param(im->embed, "weight"), x,
                                     lengths, NULL, NULL, rng, &out, NULL, NULL)
        : ct_rnn_forward_at(src, im->rnn, x, lengths, NULL, NULL, rng, &out, NULL, NULL);
    if (st != CT_OK) return NULL;
    if (c->dropout > 0 && m->training) out = ct_dropout_at(src, out, c->dropout, true, rng);
    return ct_linear_forward_at(src, im->out, out);
}

/* ---- loss ---------------------------------------------------------------------------------------- */
static ct_status loss_fail(ct_ctx *ctx, ct_src src, ct_status s, const char *what) {
    return ct_fail(ctx, s, "cc_loss: %s (at %s:%d)", what, src.file, src.line);
}

ct_status cc_loss_at(ct_src src, ct_module *m, const ct_batch *b, int64_t ignore_index,
                     ct_rng *rng, ct_tensor **loss, int64_t *count) {
    if (loss) *loss = NULL;
    if (count) *count = 0;
    if (!m) return CT_E_NULL;
    ct_ctx *ctx = m->ctx;
    cc_impl *im = impl_of(m);
    if (!im) return loss_fail(ctx, src, CT_E_ARG, "the module is not a composer");
    if (!loss) return loss_fail(ctx, src, CT_E_NULL, "loss (the output pointer) is NULL");
    if (!b || !b->inputs) return loss_fail(ctx, src, CT_E_NULL, "the batch (or its inputs) is NULL");
    if (!b->targets)
        return loss_fail(ctx, src, CT_E_ARG, "the batch has no targets: collate with "
                         "opts.targets = true (next-step targets)");
    const cc_config *c = &im->cfg;
    const bool roll = cc_config_is_roll(c);
    char msg[256], s1[96];
    if (roll ? (b->kind != CT_ITEM_FRAMES || b->width != CC_ROLL_KEYS) : b->kind != CT_ITEM_TOKENS) {
        snprintf(msg, sizeof msg, "a batch of %s (width %lld) for a %s model, which needs %s",
                 ct_item_kind_name(b->kind), (long long)b->width, cc_encoding_name(c->encoding),
                 roll ? "frames of width 88" : "tokens");
        return loss_fail(ctx, src, CT_E_ARG, msg);
    }
    ct_tensor *x = b->inputs, *y = b->targets;
    const int64_t T = x->ndim >= 2 ? x->shape[0] : -1, B = x->ndim >= 2 ? x->shape[1] : -1;
    if (x->ndim < 2 || T != b->steps || B != b->rows) {
        snprintf(msg, sizeof msg, "inputs %s are not time-major [steps, rows] = [%lld, %lld]%s",
                 ct_shape_str(x, s1, sizeof s1), (long long)b->steps, (long long)b->rows,
                 (x->ndim >= 2 && x->shape[0] == b->rows) ? ": collate with batch_first = false" : "");
        return loss_fail(ctx, src, CT_E_SHAPE, msg);
    }
    if (!ct_same_shape(x, y) || (roll && (!b->mask || b->mask->ndim != 2 ||
                                          b->mask->shape[0] != T || b->mask->shape[1] != B))) {
        snprintf(msg, sizeof msg, "targets %s (and mask) do not match inputs [%lld, %lld%s]",
                 ct_shape_str(y, s1, sizeof s1), (long long)T, (long long)B, roll ? ", 88" : "");
        return loss_fail(ctx, src, CT_E_SHAPE, msg);
    }
    /* a model on a device gets the batch there (lengths and tokens are read on the host) */
    ct_tensor *mask = b->mask;
    const ct_device dev = ct_module_device(m);
    if (dev.type != CT_CPU) {
        if (roll) x = ct_to_at(src, x, dev);
        y = ct_to_at(src, y, dev);
        if (roll) mask = ct_to_at(src, mask, dev);
        if (!x || !y || (roll && !mask)) return ct_ctx_status(ctx);
    }
    ct_tensor *logits = cc_forward_at(src, m, x, b->lengths, rng);
    if (!logits) return ct_ctx_status(ctx);
    const int64_t n = T * B;
    int64_t counted = 0;
    ct_tensor *l;
    if (!roll) {
        int64_t *tg = malloc(sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
        if (!tg) return loss_fail(ctx, src, CT_E_NOMEM, "out of memory");
        ct_status s = ct_copy_to_host(y, tg, sizeof(int64_t) * (size_t)n);
        for (int64_t i = 0; s == CT_OK && i < n; i++) counted += tg[i] != ignore_index;
        free(tg);
        if (s != CT_OK) return s;
        const int64_t V = c->vocab;
        l = ct_cross_entropy_at(src, ct_reshape_at(src, logits, 2, (const int64_t[]){n, V}),
                                ct_reshape_at(src, y, 1, &n), ignore_index);
    } else {
        float *mk = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
        if (!mk) return loss_fail(ctx, src, CT_E_NOMEM, "out of memory");
        ct_status s = ct_copy_to_host(b->mask, mk, sizeof(float) * (size_t)n);
        double sum = 0;
        for (int64_t i = 0; s == CT_OK && i < n; i++) sum += mk[i];
        free(mk);
        if (s != CT_OK) return s;
        counted = (int64_t)llround(sum);
        ct_tensor *per_frame = ct_sum_at(src, ct_bce_with_logits_at(src, logits, y, CT_REDUCE_NONE),
                                         1, (const int[]){-1}, false);
        ct_tensor *total = ct_sum_at(src, ct_mul_at(src, per_frame, mask), 0, NULL, false);
        l = ct_mul_scalar_at(src, total, sum > 0 ? (float)(1.0 / sum) : 0.0f);
    }
    if (!l) return ct_ctx_status(ctx);
    *loss = l;
    if (count) *count = counted;
    return CT_OK;
}
