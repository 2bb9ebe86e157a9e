/* engine/rnn_cells.c — LSTMCell, GRUCell and RNNCell built from ordinary differentiable ops
 * (ct_matmul, ct_add, ct_sigmoid, ct_tanh, ct_chunk, ...), so autograd differentiates them.
 * The formulas are PyTorch's (see engine/rnn.h); they are the reference the fused layers are
 * tested against, and a starting point for users writing their own recurrent loops.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/internal.h"
#include "engine/rnn.h"

#define CELL_MAGIC 0x43454c4cu   /* "CELL" */

typedef struct cell_impl {
    uint32_t magic;
    ct_rnn_mode mode;
    int64_t input_size, hidden_size;
    bool bias;
} cell_impl;

static ct_module *cell_new(ct_ctx *ctx, ct_rng *rng, const char *op, const char *kind,
                           ct_rnn_mode mode, int64_t in, int64_t hidden, bool bias) {
    if (!ctx) return NULL;
    if (!rng) {
        ct_fail(ctx, CT_E_ARG, "%s: the generator is NULL", op);
        return NULL;
    }
    if (in < 1 || hidden < 1 || hidden > (int64_t)1 << 24 || in > (int64_t)1 << 28) {
        ct_fail(ctx, CT_E_ARG, "%s: input_size %lld and hidden_size %lld must be at least 1 (and "
                "not absurdly large)", op, (long long)in, (long long)hidden);
        return NULL;
    }
    ct_module *m = ct_module_new(ctx, kind, sizeof(cell_impl));
    if (!m) return NULL;
    cell_impl *im = m->impl;
    *im = (cell_impl){CELL_MAGIC, mode, in, hidden, bias};
    int64_t GH = ct_rnn_gates(mode) * hidden;
    ct_tensor *p[4] = {
        ct_module_add_param(m, "weight_ih", 2, (const int64_t[]){GH, in}),
        ct_module_add_param(m, "weight_hh", 2, (const int64_t[]){GH, hidden}),
        bias ? ct_module_add_param(m, "bias_ih", 1, &GH) : NULL,
        bias ? ct_module_add_param(m, "bias_hh", 1, &GH) : NULL,
    };
    const float k = (float)(1.0 / sqrt((double)hidden));
    for (int i = 0; i < (bias ? 4 : 2); i++) {
        if (!p[i]) { ct_module_free(m); return NULL; }
        float *d = ct_data_f32(p[i]);
        for (int64_t j = 0; j < ct_numel(p[i]); j++) d[j] = -k + 2.0f * k * (float)ct_rng_uniform(rng);
    }
    return m;
}

ct_module *ct_lstm_cell_new(ct_ctx *ctx, ct_rng *rng, int64_t input_size, int64_t hidden_size,
                            bool bias) {
    return cell_new(ctx, rng, "lstm_cell_new", "LSTMCell", CT_LSTM, input_size, hidden_size, bias);
}
ct_module *ct_gru_cell_new(ct_ctx *ctx, ct_rng *rng, int64_t input_size, int64_t hidden_size,
                           bool bias) {
    return cell_new(ctx, rng, "gru_cell_new", "GRUCell", CT_GRU, input_size, hidden_size, bias);
}
ct_module *ct_rnn_cell_new(ct_ctx *ctx, ct_rng *rng, int64_t input_size, int64_t hidden_size,
                           bool bias, ct_rnn_mode nonlinearity) {
    if (ctx && nonlinearity != CT_RNN_TANH && nonlinearity != CT_RNN_RELU) {
        ct_fail(ctx, CT_E_ARG, "rnn_cell_new: nonlinearity %d must be CT_RNN_TANH or CT_RNN_RELU",
                (int)nonlinearity);
        return NULL;
    }
    return cell_new(ctx, rng, "rnn_cell_new", "RNNCell", nonlinearity, input_size, hidden_size,
                    bias);
}

/* Checks the module and the operands; returns the impl or NULL (+ error). */
static const cell_impl *check(ct_src src, const char *op, ct_module *m, bool lstm, bool gru,
                              ct_tensor *x, ct_tensor *h, ct_tensor *c) {
    if (!m || !x) return NULL;
    const cell_impl *im = m->impl;
    static const char *const kinds[] = {"LSTMCell", "GRUCell", "RNNCell"};
    bool elman = im && (im->mode == CT_RNN_TANH || im->mode == CT_RNN_RELU);
    bool right = im && m->kind && strcmp(m->kind, kinds[lstm ? 0 : gru ? 1 : 2]) == 0 &&
                 im->magic == CELL_MAGIC &&
                 (lstm ? im->mode == CT_LSTM : gru ? im->mode == CT_GRU : elman);
    if (!right) {
        ct__op_error(m->ctx, src, op, CT_E_ARG, "the %s module '%s' is not a%s",
                     m->kind ? m->kind : "?", m->name,
                     lstm ? "n LSTMCell" : gru ? " GRUCell" : "n RNNCell");
        return NULL;
    }
    char s[96];
    if (x->ndim != 2 || x->shape[1] != im->input_size) {
        ct__op_error(m->ctx, src, op, CT_E_SHAPE, "x has shape %s; the %s needs [batch, %lld]",
                     ct_shape_str(x, s, sizeof s), m->kind, (long long)im->input_size);
        return NULL;
    }
    ct_tensor *st[2] = {h, c};
    for (int i = 0; i < 2; i++) {
        if (!st[i]) continue;
        if (st[i]->ndim != 2 || st[i]->shape[0] != x->shape[0] || st[i]->shape[1] != im->hidden_size) {
            ct__op_error(m->ctx, src, op, CT_E_SHAPE, "%s has shape %s; the %s needs [batch, "
                         "hidden_size] = [%lld, %lld]", i ? "c" : "h", ct_shape_str(st[i], s, sizeof s),
                         m->kind, (long long)x->shape[0], (long long)im->hidden_size);
            return NULL;
        }
    }
    return im;
}

/* which = 0: x W_ih^T + b_ih; which = 1: h W_hh^T + b_hh. */
static ct_tensor *affine(ct_src src, ct_module *m, const cell_impl *im, ct_tensor *x, int which) {
    ct_tensor *w = m->params[which], *b = im->bias ? m->params[2 + which] : NULL;
    ct_tensor *y = ct_matmul_at(src, x, ct_transpose_at(src, w, 0, 1));
    return b ? ct_add_at(src, y, b) : y;
}

ct_status ct_lstm_cell_forward_at(ct_src src, ct_module *m, ct_tensor *x, ct_tensor *h,
                                  ct_tensor *c, ct_tensor **h_out, ct_tensor **c_out) {
    if (h_out) *h_out = NULL;
    if (c_out) *c_out = NULL;
    if (!m) return CT_E_NULL;
    const cell_impl *im = check(src, "lstm_cell_forward", m, true, false, x, h, c);
    if (!im) return x ? ct_ctx_status(m->ctx) : CT_E_NULL;
    ct_tensor *gates = affine(src, m, im, x, 0);
    if (h) gates = ct_add_at(src, gates, affine(src, m, im, h, 1));
    else if (im->bias) gates = ct_add_at(src, gates, m->params[3]);
    ct_tensor *q[4];
    if (!gates || ct_chunk_at(src, gates, 4, 1, q) != 4) return ct_ctx_status(m->ctx);
    ct_tensor *i = ct_sigmoid_at(src, q[0]), *f = ct_sigmoid_at(src, q[1]);
    ct_tensor *g = ct_tanh_at(src, q[2]), *o = ct_sigmoid_at(src, q[3]);
    ct_tensor *ig = ct_mul_at(src, i, g);
    ct_tensor *c2 = c ? ct_add_at(src, ct_mul_at(src, f, c), ig) : ig;
    ct_tensor *h2 = ct_mul_at(src, o, ct_tanh_at(src, c2));
    if (!h2) return ct_ctx_status(m->ctx);
    if (h_out) *h_out = h2;
    if (c_out) *c_out = c2;
    return CT_OK;
}

ct_tensor *ct_gru_cell_forward_at(ct_src src, ct_module *m, ct_tensor *x, ct_tensor *h) {
    if (!m) return NULL;
    const cell_impl *im = check(src, "gru_cell_forward", m, false, true, x, h, NULL);
    if (!im) return NULL;
    if (!h) h = ct__full_on(m->ctx, x->storage->device, 2, (const int64_t[]){x->shape[0], im->hidden_size}, 0.0);
    ct_tensor *gi = affine(src, m, im, x, 0), *gh = affine(src, m, im, h, 1);
    ct_tensor *a[3], *b[3];
    if (!gi || !gh || ct_chunk_at(src, gi, 3, 1, a) != 3 || ct_chunk_at(src, gh, 3, 1, b) != 3)
        return NULL;
    ct_tensor *r = ct_sigmoid_at(src, ct_add_at(src, a[0], b[0]));
    ct_tensor *z = ct_sigmoid_at(src, ct_add_at(src, a[1], b[1]));
    ct_tensor *n = ct_tanh_at(src, ct_add_at(src, a[2], ct_mul_at(src, r, b[2])));
    /* h' = (1 - z) * n + z * h, written as PyTorch does: n + z * (h - n) */
    return ct_add_at(src, n, ct_mul_at(src, z, ct_sub_at(src, h, n)));
}

ct_tensor *ct_rnn_cell_forward_at(ct_src src, ct_module *m, ct_tensor *x, ct_tensor *h) {
    if (!m) return NULL;
    const cell_impl *im = check(src, "rnn_cell_forward", m, false, false, x, h, NULL);
    if (!im) return NULL;
    ct_tensor *pre = affine(src, m, im, x, 0);
    if (h) pre = ct_add_at(src, pre, affine(src, m, im, h, 1));
    else if (im->bias) pre = ct_add_at(src, pre, m->params[3]);
    return im->mode == CT_RNN_RELU ? ct_relu_at(src, pre) : ct_tanh_at(src, pre);
}
