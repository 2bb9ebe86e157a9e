/* tests/engine/test_rnn.c — fused recurrent layers (engine/rnn.c, engine/cpu/rnn.c) and the
 * cells built from primitive ops (engine/rnn_cells.c): against the cells unrolled (values
 * and every gradient), finite differences, padding invariance, stepwise sampling, errors,
 * and PyTorch's nn.LSTM / GRU / RNN (tests/gen_golden_rnn.py writes fixtures/rnn/ *.npz). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/layers.h"
#include "engine/npy.h"
#include "engine/rnn.h"
#include "testutil.h"

static ct_rnn_config config(ct_rnn_mode mode, int64_t in, int64_t hidden, int layers) {
    return (ct_rnn_config){mode, in, hidden, layers, true, false, 0.0f};
}

static float *host(const ct_tensor *t) {
    int64_t n = ct_numel(t);
    float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
    ck_assert_int_eq(ct_copy_to_host(t, v, sizeof(float) * (size_t)n), CT_OK);
    return v;
}

/* a and b identical bit for bit */
static void assert_same(const ct_tensor *a, const ct_tensor *b) {
    ck_assert(ct_same_shape(a, b));
    float *x = host(a), *y = host(b);
    ck_assert_int_eq(memcmp(x, y, sizeof(float) * (size_t)ct_numel(a)), 0);
    free(x);
    free(y);
}

/* ---- the reference: cells unrolled, layer by layer ------------------------------------------ */
typedef struct ref_case {
    ct_rnn_mode mode;
    int layers;
    int64_t in, hidden, T, B;
    bool state, batch_first, bias;
    const int64_t *lengths;     /* NULL: all T */
    float dropout;
    int recompute;              /* > 0: ct_rnn_set_recompute(m, recompute) */
} ref_case;

static ct_module *cell_for(ct_ctx *ctx, ct_rng *rng, ct_rnn_mode mode, int64_t in, int64_t h,
                           bool bias) {
    if (mode == CT_LSTM) return ct_lstm_cell_new(ctx, rng, in, h, bias);
    if (mode == CT_GRU) return ct_gru_cell_new(ctx, rng, in, h, bias);
    return ct_rnn_cell_new(ctx, rng, in, h, bias, mode);
}

/* x [T, B, I] time-major; masks [T] of [B, 1] (1 = active); h0, c0 [L, B, H] or NULL. */
static void unrolled(const ref_case *c, ct_module **cells, ct_tensor *x, ct_tensor **masks,
                     ct_tensor *h0, ct_tensor *c0, ct_rng *rng, ct_tensor **out, ct_tensor **hn,
                     ct_tensor **cn) {
    ct_ctx *ctx = x->ctx;
    ct_tensor *layer_in = x;
    ct_tensor *hs[4], *cs[4], *steps[64];
    ck_assert_int_le(c->T, 64);
    for (int l = 0; l < c->layers; l++) {
        ct_tensor *h = h0 ? ct_select(h0, 0, l) : ct_zeros(ctx, CT_SHAPE(c->B, c->hidden));
        ct_tensor *cc = c0 ? ct_select(c0, 0, l) : ct_zeros(ctx, CT_SHAPE(c->B, c->hidden));
        for (int64_t t = 0; t < c->T; t++) {
            ct_tensor *xt = ct_select(layer_in, 0, t), *hnew, *cnew = NULL;
            if (c->mode == CT_LSTM)
                ck_assert_int_eq(ct_lstm_cell_forward(cells[l], xt, h, cc, &hnew, &cnew), CT_OK);
            else if (c->mode == CT_GRU)
                hnew = ct_gru_cell_forward(cells[l], xt, h);
            else
                hnew = ct_rnn_cell_forward(cells[l], xt, h);
            ck_assert_ptr_nonnull(hnew);
            ct_tensor *m = masks[t], *keep = ct_rsub_scalar(1.0f, m);
            steps[t] = ct_mul(hnew, m);
            h = ct_add(steps[t], ct_mul(h, keep));
            if (cnew) cc = ct_add(ct_mul(cnew, m), ct_mul(cc, keep));
        }
        hs[l] = h;
        cs[l] = cc;
        layer_in = ct_stack(c->T, steps, 0);
        if (c->dropout > 0 && l < c->layers - 1) layer_in = ct_dropout(layer_in, c->dropout, true, rng);
    }
    *out = layer_in;
    *hn = ct_stack(c->layers, hs, 0);
    *cn = c->mode == CT_LSTM ? ct_stack(c->layers, cs, 0) : NULL;
}

static ct_tensor *loss_of(ct_tensor *out, ct_tensor *hn, ct_tensor *cn, ct_tensor *p1,
                          ct_tensor *p2, ct_tensor *p3) {
    ct_tensor *loss = ct_add(ct_sum_all(ct_mul(out, p1)), ct_sum_all(ct_mul(hn, p2)));
    if (cn) loss = ct_add(loss, ct_sum_all(ct_mul(cn, p3)));
    return loss;
}

static void run_against_cells(const ref_case *c) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_rng rng;
    ct_rng_seed(&rng, 7);
    ct_rnn_config cfg = {c->mode, c->in, c->hidden, c->layers, c->bias, c->batch_first, c->dropout};
    ct_module *m = ct_rnn_new(ctx, &rng, &cfg);
    ck_assert_ptr_nonnull(m);
    if (c->recompute) ck_assert_int_eq(ct_rnn_set_recompute(m, c->recompute), CT_OK);
    ct_module *cells[4];
    for (int l = 0; l < c->layers; l++) {
        cells[l] = cell_for(ctx, &rng, c->mode, l ? c->hidden : c->in, c->hidden, c->bias);
        ck_assert_ptr_nonnull(cells[l]);
        char name[32];
        const char *suffix[4] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
        for (int k = 0; k < (c->bias ? 4 : 2); k++) {
            snprintf(name, sizeof name, "%s_l%d", suffix[k], l);
            ct_tensor *src = ct_module_param(m, name);
            ck_assert_ptr_nonnull(src);
            ck_assert_int_eq(ct_inplace_copy(ct_module_param(cells[l], suffix[k]), src), CT_OK);
        }
    }
    const int64_t T = c->T, B = c->B, I = c->in, H = c->hidden, L = c->layers;
    /* the same values as leaves for each side; x_tm is time-major for the reference */
    ct_tensor *x_tm = TU_RAND(ctx, 11, -1, 1, T, B, I);
    ct_tensor *x_f = c->batch_first ? ct_contiguous(ct_transpose(x_tm, 0, 1)) : ct_clone(x_tm);
    ct_tensor *h0r = c->state ? TU_RAND(ctx, 12, -1, 1, L, B, H) : NULL;
    ct_tensor *c0r = c->state && c->mode == CT_LSTM ? TU_RAND(ctx, 13, -1, 1, L, B, H) : NULL;
    ct_tensor *h0f = h0r ? ct_clone(h0r) : NULL, *c0f = c0r ? ct_clone(c0r) : NULL;
    ct_tensor *leaves[6] = {x_tm, x_f, h0r, h0f, c0r, c0f};
    for (int i = 0; i < 6; i++)
        if (leaves[i]) ct_set_requires_grad(leaves[i], true);
    ct_tensor *lengths = c->lengths ? ct_from_i64(ctx, c->lengths, CT_SHAPE(B)) : NULL;
    ct_tensor *masks[64];
    for (int64_t t = 0; t < T; t++) {
        masks[t] = ct_zeros(ctx, CT_SHAPE(B, 1));
        for (int64_t b = 0; b < B; b++)
            ct_data_f32(masks[t])[b] = !c->lengths || t < c->lengths[b] ? 1.0f : 0.0f;
    }
    ct_tensor *p1 = TU_RAND(ctx, 21, -1, 1, T, B, H), *p2 = TU_RAND(ctx, 22, -1, 1, L, B, H);
    ct_tensor *p3 = TU_RAND(ctx, 23, -1, 1, L, B, H);

    /* fused */
    ct_rng drop1 = rng, drop2 = rng;
    ct_tensor *out, *hn, *cn;
    ck_assert_msg(ct_rnn_forward(m, x_f, lengths, h0f, c0f, &drop1, &out, &hn, &cn) == CT_OK,
                  "%s", ct_ctx_error(ctx));
    ck_assert_int_eq(cn != NULL, c->mode == CT_LSTM);
    if (c->batch_first) out = ct_transpose(out, 0, 1);
    ck_assert_int_eq(ct_backward(loss_of(out, hn, cn, p1, p2, p3)), CT_OK);
    /* reference */
    ct_tensor *rout, *rhn, *rcn;
    unrolled(c, cells, x_tm, masks, h0r, c0r, &drop2, &rout, &rhn, &rcn);
    ck_assert_int_eq(ct_backward(loss_of(rout, rhn, rcn, p1, p2, p3)), CT_OK);

    const double atol = 2e-5, rtol = 1e-4;
    tu_assert_tensors_close(out, rout, atol, rtol);
    tu_assert_tensors_close(hn, rhn, atol, rtol);
    if (cn) tu_assert_tensors_close(cn, rcn, atol, rtol);
    ct_tensor *gx = ct_grad(x_f);
    if (c->batch_first) gx = ct_transpose(gx, 0, 1);
    tu_assert_tensors_close(gx, ct_grad(x_tm), atol, rtol);
    if (h0r) tu_assert_tensors_close(ct_grad(h0f), ct_grad(h0r), atol, rtol);
    if (c0r) tu_assert_tensors_close(ct_grad(c0f), ct_grad(c0r), atol, rtol);
    for (int l = 0; l < c->layers; l++) {
        const char *suffix[4] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
        for (int k = 0; k < (c->bias ? 4 : 2); k++) {
            char name[32];
            snprintf(name, sizeof name, "%s_l%d", suffix[k], l);
            ct_tensor *gf = ct_grad(ct_module_param(m, name));
            ct_tensor *gr = ct_grad(ct_module_param(cells[l], suffix[k]));
            ck_assert_msg(gf && gr, "no gradient for %s", name);
            tu_assert_tensors_close(gf, gr, atol, rtol);
        }
        ct_module_free(cells[l]);
    }
    /* padded positions: zero output, zero input gradient */
    if (c->lengths) {
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = c->lengths[b]; t < T; t++)
                for (int64_t j = 0; j < H; j++)
                    ck_assert(ct_get(out, (int64_t[]){t, b, j}) == 0.0);
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = c->lengths[b]; t < T; t++)
                for (int64_t j = 0; j < I; j++)
                    ck_assert(ct_get(gx, (int64_t[]){t, b, j}) == 0.0);
    }
    ct_module_free(m);
    ct_ctx_free(ctx);
}

static const int64_t len3[] = {5, 2, 4}, len3b[] = {1, 5, 3}, len36[] = {3, 6}, len1[] = {3};
static const ref_case fused_cases[] = {
    /* mode, L, in, H, T, B, state, batch_first, bias, lengths, dropout */
    {CT_LSTM, 1, 4, 6, 5, 3, false, false, true, NULL, 0, 0},
    {CT_LSTM, 2, 3, 8, 5, 3, true, false, true, len3, 0, 0},
    {CT_LSTM, 3, 4, 9, 5, 3, true, true, true, len3b, 0, 0},
    {CT_LSTM, 2, 5, 16, 4, 1, true, false, true, NULL, 0, 0},          /* batch 1: GEMV */
    {CT_LSTM, 2, 3, 5, 6, 2, false, false, false, len36, 0, 0},         /* no bias */
    {CT_GRU, 1, 4, 6, 5, 3, false, false, true, NULL, 0, 0},
    {CT_GRU, 2, 3, 8, 5, 3, true, false, true, len3, 0, 0},
    {CT_GRU, 3, 2, 11, 5, 1, true, true, true, len1, 0, 0},
    {CT_GRU, 2, 3, 4, 6, 2, true, false, false, len36, 0, 0},
    {CT_RNN_TANH, 1, 4, 6, 5, 3, false, false, true, NULL, 0, 0},
    {CT_RNN_TANH, 2, 3, 8, 5, 3, true, true, true, len3, 0, 0},
    {CT_RNN_RELU, 3, 3, 10, 5, 3, true, false, true, len3b, 0, 0},
    {CT_RNN_RELU, 1, 3, 4, 4, 1, false, false, true, NULL, 0, 0},
    {CT_RNN_TANH, 2, 1, 1, 6, 2, true, false, true, len36, 0, 0},       /* one unit, one gate */
    {CT_LSTM, 2, 1, 1, 4, 1, true, true, true, NULL, 0, 0},
    /* dropout between layers: the reference draws the same masks from the same rng */
    {CT_LSTM, 3, 3, 8, 5, 3, true, false, true, len3, 0.4f, 0},
    {CT_GRU, 2, 3, 8, 5, 3, false, true, true, NULL, 0.3f, 0},
    /* layers that recompute their gates in backward (ct_rnn_set_recompute) */
    {CT_LSTM, 3, 4, 9, 5, 3, true, true, true, len3b, 0, 3},
    {CT_LSTM, 3, 3, 8, 5, 3, true, false, true, len3, 0.4f, 2},
    {CT_GRU, 2, 3, 8, 5, 3, true, false, true, len3, 0, 1},
    {CT_GRU, 3, 2, 11, 5, 1, true, true, true, len1, 0, 3},
    {CT_RNN_RELU, 3, 3, 10, 5, 3, true, false, true, len3b, 0, 3},
};

START_TEST(test_fused_vs_cells) { run_against_cells(&fused_cases[_i]); }
END_TEST

/* ---- finite differences ------------------------------------------------------------------------ */
typedef struct gc_ud { ct_module *m; ct_tensor *lengths; bool lstm; } gc_ud;

static ct_tensor *fused_fn(ct_tensor **in, void *ud_) {
    gc_ud *ud = ud_;
    ct_tensor *out, *hn, *cn;
    if (ct_rnn_forward(ud->m, in[0], ud->lengths, in[1], ud->lstm ? in[2] : NULL, NULL, &out, &hn,
                       &cn) != CT_OK)
        return NULL;
    ct_tensor *parts[3] = {ct_reshape(out, -1), ct_reshape(hn, -1), cn ? ct_reshape(cn, -1) : NULL};
    return ct_concat(cn ? 3 : 2, parts, 0);
}

static void gradcheck_fused(ct_rnn_mode mode, bool with_lengths, bool batch_first) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_rng rng;
    ct_rng_seed(&rng, 3);
    ct_rnn_config cfg = config(mode, 3, 4, 2);
    cfg.batch_first = batch_first;
    ct_module *m = ct_rnn_new(ctx, &rng, &cfg);
    ck_assert_ptr_nonnull(m);
    /* larger weights than the default init, so the nonlinearities are exercised */
    for (int i = 0; i < ct_module_param_count(m); i++)
        ct_inplace_scale(ct_module_param_at(m, i, NULL, 0), 2.0f);
    const int64_t T = 4, B = 3;
    ct_tensor *in[16];
    int n = 0;
    in[n++] = batch_first ? TU_RAND(ctx, 1, -1, 1, B, T, 3) : TU_RAND(ctx, 1, -1, 1, T, B, 3);
    in[n++] = TU_RAND(ctx, 2, -1, 1, 2, B, 4);
    in[n++] = TU_RAND(ctx, 3, -1, 1, 2, B, 4);
    for (int i = 0; i < 3; i++) ct_set_requires_grad(in[i], true);
    if (mode != CT_LSTM) ct_set_requires_grad(in[2], false);
    for (int i = 0; i < ct_module_param_count(m); i++) in[n++] = ct_module_param_at(m, i, NULL, 0);
    gc_ud ud = {m, with_lengths ? ct_from_i64(ctx, (int64_t[]){4, 1, 3}, CT_SHAPE(3)) : NULL,
                mode == CT_LSTM};
    ck_assert_int_gt(tu_gradcheck_tol(fused_fn, n, in, &ud, 1e-2, 2e-3, 1e-2), 100);
    ct_module_free(m);
    ct_ctx_free(ctx);
}

START_TEST(test_gradcheck_lstm) { gradcheck_fused(CT_LSTM, false, false); }
END_TEST
START_TEST(test_gradcheck_lstm_lengths) { gradcheck_fused(CT_LSTM, true, true); }
END_TEST
START_TEST(test_gradcheck_gru) { gradcheck_fused(CT_GRU, false, false); }
END_TEST
START_TEST(test_gradcheck_gru_lengths) { gradcheck_fused(CT_GRU, true, false); }
END_TEST
START_TEST(test_gradcheck_rnn_lengths) { gradcheck_fused(CT_RNN_TANH, true, false); }
END_TEST

/* the cells themselves, through the ops they are built from */
typedef struct cell_ud { ct_module *cell; ct_rnn_mode mode; } cell_ud;
static ct_tensor *cell_fn(ct_tensor **in, void *ud_) {
    cell_ud *ud = ud_;
    if (ud->mode == CT_LSTM) {
        ct_tensor *h, *c;
        if (ct_lstm_cell_forward(ud->cell, in[0], in[1], in[2], &h, &c) != CT_OK) return NULL;
        return ct_concat(2, ((ct_tensor *[]){h, c}), 1);
    }
    return ud->mode == CT_GRU ? ct_gru_cell_forward(ud->cell, in[0], in[1])
                              : ct_rnn_cell_forward(ud->cell, in[0], in[1]);
}

START_TEST(test_gradcheck_cells) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_rng rng;
    ct_rng_seed(&rng, 5);
    const ct_rnn_mode modes[3] = {CT_LSTM, CT_GRU, CT_RNN_TANH};
    for (int k = 0; k < 3; k++) {
        ct_module *cell = cell_for(ctx, &rng, modes[k], 3, 4, true);
        ct_tensor *in[8] = {TU_RAND(ctx, 1, -1, 1, 2, 3), TU_RAND(ctx, 2, -1, 1, 2, 4),
                            TU_RAND(ctx, 3, -1, 1, 2, 4)};
        int n = modes[k] == CT_LSTM ? 3 : 2;
        for (int i = 0; i < n; i++) ct_set_requires_grad(in[i], true);
        for (int i = 0; i < 4; i++) in[n + i] = ct_module_param_at(cell, i, NULL, 0);
        cell_ud ud = {cell, modes[k]};
        ck_assert_int_ge(tu_gradcheck(cell_fn, n + 4, in, &ud), 50);
        ct_module_free(cell);
    }
    ct_ctx_free(ctx);
}
END_TEST

/* ---- the module: names, shapes, initialisation, one node per layer --------------------------- */
START_TEST(test_params_and_init) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_rng rng;
    ct_rng_seed(&rng, 1);
    ct_rnn_config cfg = config(CT_LSTM, 5, 4, 2);
    ct_module *m = ct_rnn_new(ctx, &rng, &cfg);
    ck_assert_ptr_nonnull(m);
    ck_assert_str_eq(m->kind, "LSTM");
    ck_assert_ptr_eq(ct_rnn_config_of(m), ct_rnn_config_of(m));
    ck_assert_int_eq(ct_rnn_config_of(m)->hidden_size, 4);
    const char *names[8] = {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                            "weight_ih_l1", "weight_hh_l1", "bias_ih_l1", "bias_hh_l1"};
    const int64_t shapes[8][2] = {{16, 5}, {16, 4}, {16, 0}, {16, 0},
                                  {16, 4}, {16, 4}, {16, 0}, {16, 0}};
    ck_assert_int_eq(ct_module_param_count(m), 8);
    char name[64];
    for (int i = 0; i < 8; i++) {
        ct_tensor *p = ct_module_param_at(m, i, name, sizeof name);
        ck_assert_str_eq(name, names[i]);
        ck_assert_int_eq(p->ndim, shapes[i][1] ? 2 : 1);
        ck_assert_int_eq(p->shape[0], shapes[i][0]);
        if (shapes[i][1]) ck_assert_int_eq(p->shape[1], shapes[i][1]);
        ck_assert(ct_requires_grad(p));
        /* U(-1/sqrt(H), 1/sqrt(H)) = U(-0.5, 0.5) */
        float *d = ct_data_f32(p);
        float lo = 1, hi = -1;
        for (int64_t j = 0; j < ct_numel(p); j++) {
            ck_assert(d[j] >= -0.5f && d[j] <= 0.5f);
            lo = fminf(lo, d[j]);
            hi = fmaxf(hi, d[j]);
        }
        ck_assert(hi - lo > 0.3f);
    }
    /* the same seed gives the same weights */
    ct_rng r2;
    ct_rng_seed(&r2, 1);
    ct_module *m2 = ct_rnn_new(ctx, &r2, &cfg);
    assert_same(ct_module_param(m, "weight_hh_l1"), ct_module_param(m2, "weight_hh_l1"));
    ct_module_free(m2);
    /* GRU without bias: 2 parameters per layer, 3 gate blocks; RNN: 1 block */
    ct_rnn_config g = config(CT_GRU, 3, 6, 3);
    g.bias = false;
    ct_module *gm = ct_rnn_new(ctx, &rng, &g);
    ck_assert_str_eq(gm->kind, "GRU");
    ck_assert_int_eq(ct_module_param_count(gm), 6);
    ck_assert_int_eq(ct_module_param(gm, "weight_ih_l2")->shape[0], 18);
    ck_assert_ptr_null(ct_module_param(gm, "bias_ih_l0"));
    ct_module_free(gm);
    ct_rnn_config r = config(CT_RNN_RELU, 3, 6, 1);
    ct_module *rm = ct_rnn_new(ctx, &rng, &r);
    ck_assert_str_eq(rm->kind, "RNN");
    ck_assert_int_eq(ct_module_param(rm, "weight_hh_l0")->shape[0], 6);
    ck_assert_int_eq(ct_rnn_gates(CT_LSTM) * ct_rnn_gates(CT_GRU) * ct_rnn_gates(CT_RNN_RELU), 12);
    ct_module_free(rm);

    /* one graph node per layer */
    ct_scope_begin(ctx);
    ct_tensor *x = TU_RAND(ctx, 1, -1, 1, 6, 2, 5), *out, *hn, *cn;
    ck_assert_int_eq(ct_rnn_forward(m, x, NULL, NULL, NULL, NULL, &out, &hn, &cn), CT_OK);
    ck_assert_str_eq(ct_grad_fn_name(out), "lstm_layer");
    ck_assert_int_eq(ct_graph_size(out), 2);
    ck_assert_int_eq(out->ndim, 3);
    ck_assert_int_eq(hn->shape[0], 2);
    /* without gradients, no graph */
    bool was = ct_set_grad_enabled(ctx, false);
    ct_tensor *o2;
    ck_assert_int_eq(ct_rnn_forward(m, x, NULL, NULL, NULL, NULL, &o2, NULL, NULL), CT_OK);
    ck_assert_ptr_null(ct_grad_fn_name(o2));
    assert_same(out, o2);
    ct_set_grad_enabled(ctx, was);
    /* the single-input module forward is the same */
    assert_same(ct_module_forward(m, x, NULL), out);
    ct_scope_end(ctx);
    ck_assert_int_eq(errs.count, 0);

    /* bad configurations */
    ct_rnn_config bad = config(CT_LSTM, 5, 0, 1);
    ck_assert_ptr_null(ct_rnn_new(ctx, &rng, &bad));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "hidden_size 0"));
    bad = config(CT_GRU, 5, 4, 2);
    bad.dropout = 1.0f;
    ck_assert_ptr_null(ct_rnn_new(ctx, &rng, &bad));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "dropout 1 is outside [0, 1)"));
    bad = config((ct_rnn_mode)9, 5, 4, 2);
    ck_assert_ptr_null(ct_rnn_new(ctx, &rng, &bad));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "mode 9"));
    ck_assert_ptr_null(ct_rnn_new(ctx, NULL, &cfg));
    ck_assert_ptr_null(ct_rnn_config_of(NULL));
    ct_module *plain = ct_module_new(ctx, "LSTM", 0);
    ck_assert_ptr_null(ct_rnn_config_of(plain));
    ct_module_free(plain);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- padding invariance ------------------------------------------------------------------------ */
START_TEST(test_padding_invariance) {
    const ct_rnn_mode modes[4] = {CT_LSTM, CT_GRU, CT_RNN_TANH, CT_RNN_RELU};
    ct_rnn_mode mode = modes[_i];
    ct_ctx *ctx = tu_ctx(NULL);
    ct_rng rng;
    ct_rng_seed(&rng, 9);
    ct_rnn_config cfg = config(mode, 3, 10, 2);
    ct_module *m = ct_rnn_new(ctx, &rng, &cfg);
    const int64_t T = 6, B = 4, lens[4] = {6, 2, 4, 1};
    ct_tensor *lengths = ct_from_i64(ctx, lens, CT_SHAPE(4));
    ct_tensor *res[2][4 + 16];
    for (int run = 0; run < 2; run++) {
        ct_tensor *x = TU_RAND(ctx, 4, -1, 1, T, B, 3);
        if (run == 1) {         /* change every padded input, to huge values and NaN */
            for (int64_t b = 0; b < B; b++)
                for (int64_t t = lens[b]; t < T; t++)
                    for (int j = 0; j < 3; j++)
                        ct_data_f32(x)[(t * B + b) * 3 + j] = (t + j) % 2 ? NAN : 1e30f;
        }
        ct_tensor *h0 = TU_RAND(ctx, 5, -1, 1, 2, B, 10), *c0 = TU_RAND(ctx, 6, -1, 1, 2, B, 10);
        ct_set_requires_grad(x, true);
        ct_set_requires_grad(h0, true);
        ct_module_zero_grad(m);
        ct_tensor *out, *hn, *cn;
        ck_assert_int_eq(ct_rnn_forward(m, x, lengths, h0, mode == CT_LSTM ? c0 : NULL, NULL, &out,
                                        &hn, &cn), CT_OK);
        ct_tensor *loss = ct_add(ct_sum_all(ct_mul(out, TU_RAND(ctx, 7, -1, 1, T, B, 10))),
                                 ct_sum_all(ct_mul(hn, TU_RAND(ctx, 8, -1, 1, 2, B, 10))));
        if (cn) loss = ct_add(loss, ct_sum_all(cn));
        ck_assert_int_eq(ct_backward(loss), CT_OK);
        /* the gradient of x is zero on the padding, finite everywhere */
        ct_tensor *gx = ct_grad(x);
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < T; t++)
                for (int j = 0; j < 3; j++) {
                    double v = ct_get(gx, (int64_t[]){t, b, j});
                    ck_assert(isfinite(v));
                    if (t >= lens[b]) ck_assert(v == 0.0);
                }
        int k = 0;
        res[run][k++] = out;
        res[run][k++] = hn;
        res[run][k++] = cn ? cn : hn;
        res[run][k++] = ct_clone(ct_grad(h0));
        for (int i = 0; i < ct_module_param_count(m); i++)
            res[run][k++] = ct_clone(ct_grad(ct_module_param_at(m, i, NULL, 0)));
    }
    for (int k = 0; k < 4 + ct_module_param_count(m); k++) assert_same(res[0][k], res[1][k]);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

/* Lengths that are all T give exactly the unpadded result. */
START_TEST(test_full_lengths_same) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_rng rng;
    ct_rng_seed(&rng, 2);
    ct_rnn_config cfg = config(CT_LSTM, 3, 5, 2);
    ct_module *m = ct_rnn_new(ctx, &rng, &cfg);
    ct_tensor *x = TU_RAND(ctx, 1, -1, 1, 4, 2, 3), *o1, *o2, *h1, *h2;
    ck_assert_int_eq(ct_rnn_forward(m, x, NULL, NULL, NULL, NULL, &o1, &h1, NULL), CT_OK);
    ct_tensor *len = ct_from_i64(ctx, (int64_t[]){4, 4}, CT_SHAPE(2));
    ck_assert_int_eq(ct_rnn_forward(m, x, len, NULL, NULL, NULL, &o2, &h2, NULL), CT_OK);
    assert_same(o1, o2);
    assert_same(h1, h2);
    /* a shorter sequence's state equals running it alone, truncated */
    ct_tensor *len2 = ct_from_i64(ctx, (int64_t[]){2, 4}, CT_SHAPE(2));
    ck_assert_int_eq(ct_rnn_forward(m, x, len2, NULL, NULL, NULL, &o2, &h2, NULL), CT_OK);
    ct_tensor *xs = ct_contiguous(ct_narrow(ct_narrow(x, 0, 0, 2), 1, 0, 1));
    ck_assert_int_eq(ct_rnn_forward(m, xs, NULL, NULL, NULL, NULL, &o1, &h1, NULL), CT_OK);
    tu_assert_tensors_close(ct_narrow(h2, 1, 0, 1), h1, 1e-6, 1e-5);
    tu_assert_tensors_close(ct_narrow(ct_narrow(o2, 0, 0, 2), 1, 0, 1), o1, 1e-6, 1e-5);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- stepwise sampling --------------------------------------------------------------------------- */
START_TEST(test_step_matches_forward) {
    const ct_rnn_mode modes[4] = {CT_LSTM, CT_GRU, CT_RNN_TANH, CT_RNN_RELU};
    for (int bi = 0; bi < 2; bi++) {
        ct_rnn_mode mode = modes[_i];
        tu_errors errs = {0};
        ct_ctx *ctx = tu_ctx(&errs);
        ct_rng rng;
        ct_rng_seed(&rng, 4);
        ct_rnn_config cfg = config(mode, 5, 12, 3);
        cfg.dropout = 0.5f;                         /* never applied by the step */
        ct_module *m = ct_rnn_new(ctx, &rng, &cfg);
        ct_module_train(m, false);
        const int64_t T = 7, B = bi ? 1 : 3, L = 3, H = 12;
        ct_tensor *x = TU_RAND(ctx, 1, -1, 1, B, T, 5);          /* batch-major: steps are strided */
        ct_tensor *xt = ct_contiguous(ct_transpose(x, 0, 1));
        ct_tensor *h0 = TU_RAND(ctx, 2, -1, 1, L, B, H), *c0 = TU_RAND(ctx, 3, -1, 1, L, B, H);
        ct_tensor *out, *hn, *cn;
        ck_assert_int_eq(ct_rnn_forward(m, xt, NULL, h0, mode == CT_LSTM ? c0 : NULL, NULL, &out,
                                        &hn, &cn), CT_OK);
        ct_rnn_state *st = ct_rnn_state_new(m, B);
        ck_assert_ptr_nonnull(st);
        ck_assert_int_eq(ct_rnn_state_batch(st), B);
        ck_assert_int_eq(ct_inplace_copy(ct_rnn_state_h(st), h0), CT_OK);
        if (mode == CT_LSTM) ck_assert_int_eq(ct_inplace_copy(ct_rnn_state_c(st), c0), CT_OK);
        else ck_assert_ptr_null(ct_rnn_state_c(st));
        for (int64_t t = 0; t < T; t++) {
            ct_tensor *step = ct_select(x, 1, t), *h;        /* [B, 5], not contiguous */
            if (B == 1 && t % 2) step = ct_select(step, 0, 0);   /* [5] */
            if (t == 3) {
                const float *hp;
                ct_tensor *c = ct_contiguous(step);
                ck_assert_int_eq(ct_rnn_step_f32(m, ct_data_f32(c), st, &hp), CT_OK);
                ck_assert_ptr_eq(hp, ct_data_f32(ct_select(ct_rnn_state_h(st), 0, L - 1)));
                continue;
            }
            ck_assert_int_eq(ct_rnn_step(m, step, st, &h), CT_OK);
            ck_assert_int_eq(h->shape[0], B);
            ck_assert_int_eq(h->shape[1], H);
            tu_assert_tensors_close(h, ct_select(out, 0, t), 1e-5, 1e-4);
        }
        tu_assert_tensors_close(ct_rnn_state_h(st), hn, 1e-5, 1e-4);
        if (mode == CT_LSTM) tu_assert_tensors_close(ct_rnn_state_c(st), cn, 1e-5, 1e-4);
        /* reset: back to zeros, and stepping again from zeros matches a forward from zeros */
        ct_rnn_state_reset(st);
        for (int64_t i = 0; i < ct_numel(ct_rnn_state_h(st)); i++)
            ck_assert(ct_data_f32(ct_rnn_state_h(st))[i] == 0.0f);
        ct_tensor *h;
        ck_assert_int_eq(ct_rnn_step(m, ct_select(xt, 0, 0), st, &h), CT_OK);
        ck_assert_int_eq(ct_rnn_forward(m, ct_narrow(xt, 0, 0, 1), NULL, NULL, NULL, NULL, &out,
                                        NULL, NULL), CT_OK);
        tu_assert_tensors_close(h, ct_select(out, 0, 0), 1e-5, 1e-4);
        ck_assert_int_eq(errs.count, 0);
        /* errors */
        int line = __LINE__ + 1;
        ck_assert_int_eq(ct_rnn_step(m, TU_RAND(ctx, 1, 0, 1, B, 4), st, &h), CT_E_SHAPE);
        ck_assert_ptr_null(h);
        char where[64];
        snprintf(where, sizeof where, "test_rnn.c:%d", line);
        ck_assert_ptr_nonnull(strstr(errs.last.msg, "rnn_step"));
        ck_assert_ptr_nonnull(strstr(errs.last.msg, "needs [batch, input_size]"));
        ck_assert_ptr_nonnull(strstr(errs.last.msg, where));
        ct_module *other = ct_rnn_new(ctx, &rng, &cfg);
        ck_assert_int_eq(ct_rnn_step(other, ct_select(xt, 0, 0), st, &h), CT_E_ARG);
        ck_assert_ptr_nonnull(strstr(errs.last.msg, "another module"));
        ck_assert_int_eq(ct_rnn_step_f32(m, NULL, st, NULL), CT_E_NULL);
        ck_assert_ptr_null(ct_rnn_state_new(m, 0));
        ck_assert_ptr_nonnull(strstr(errs.last.msg, "batch 0"));
        ct_module *cell = ct_gru_cell_new(ctx, &rng, 5, 12, true);
        ck_assert_ptr_null(ct_rnn_state_new(cell, 1));
        ck_assert_ptr_nonnull(strstr(errs.last.msg, "not made by ct_rnn_new"));
        ct_module_free(cell);
        ct_module_free(other);
        ct_rnn_state_free(st);
        ct_rnn_state_free(NULL);
        ct_module_free(m);
        ct_ctx_free(ctx);
    }
}
END_TEST

/* A flattened module (parameters moved into one block) trains and steps the same. */
START_TEST(test_flattened_module) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_rng rng;
    ct_rng_seed(&rng, 8);
    ct_rnn_config cfg = config(CT_GRU, 4, 6, 2);
    ct_module *m = ct_rnn_new(ctx, &rng, &cfg);
    ct_tensor *x = TU_RAND(ctx, 1, -1, 1, 5, 2, 4), *o1, *o2, *h;
    ct_rnn_state *st = ct_rnn_state_new(m, 2);
    ck_assert_int_eq(ct_rnn_step(m, ct_select(x, 0, 0), st, &h), CT_OK);
    ct_tensor *h_before = ct_clone(h);
    ck_assert_int_eq(ct_rnn_forward(m, x, NULL, NULL, NULL, NULL, &o1, NULL, NULL), CT_OK);
    ck_assert_int_eq(ct_backward(ct_sum_all(o1)), CT_OK);
    ct_tensor *g1 = ct_clone(ct_grad(ct_module_param(m, "weight_hh_l1")));
    ck_assert_int_eq(ct_module_flatten(m), CT_OK);
    ct_module_zero_grad(m);
    ck_assert_int_eq(ct_rnn_forward(m, x, NULL, NULL, NULL, NULL, &o2, NULL, NULL), CT_OK);
    ck_assert_int_eq(ct_backward(ct_sum_all(o2)), CT_OK);
    assert_same(o1, o2);
    assert_same(g1, ct_grad(ct_module_param(m, "weight_hh_l1")));
    ck_assert(ct_numel(ct_module_flat_grads(m)) == ct_module_num_params(m));
    ct_rnn_state_reset(st);
    ck_assert_int_eq(ct_rnn_step(m, ct_select(x, 0, 0), st, &h), CT_OK);
    assert_same(h, h_before);
    ct_rnn_state_free(st);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

/* Dropout: only between layers, only in training mode, reproducible from the rng. */
START_TEST(test_dropout) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_rng rng;
    ct_rng_seed(&rng, 6);
    ct_rnn_config cfg = config(CT_LSTM, 3, 8, 2);
    cfg.dropout = 0.5f;
    ct_module *m = ct_rnn_new(ctx, &rng, &cfg);
    ct_tensor *x = TU_RAND(ctx, 1, -1, 1, 4, 3, 3), *a, *b, *c;
    ct_rng r1, r2;
    ct_rng_seed(&r1, 100);
    ct_rng_seed(&r2, 100);
    ck_assert_int_eq(ct_rnn_forward(m, x, NULL, NULL, NULL, &r1, &a, NULL, NULL), CT_OK);
    ck_assert_int_eq(ct_rnn_forward(m, x, NULL, NULL, NULL, &r2, &b, NULL, NULL), CT_OK);
    assert_same(a, b);
    ck_assert_int_eq(ct_rnn_forward(m, x, NULL, NULL, NULL, &r1, &c, NULL, NULL), CT_OK);
    float *va = host(a), *vc = host(c);
    ck_assert(memcmp(va, vc, sizeof(float) * (size_t)ct_numel(a)) != 0);
    free(va);
    free(vc);
    int line = __LINE__ + 1;
    ck_assert_int_eq(ct_rnn_forward(m, x, NULL, NULL, NULL, NULL, &a, NULL, NULL), CT_E_ARG);
    char where[64];
    snprintf(where, sizeof where, "test_rnn.c:%d", line);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "generator (rng) is NULL"));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, where));
    /* eval: no dropout, no generator needed */
    ct_module_train(m, false);
    ck_assert_int_eq(ct_rnn_forward(m, x, NULL, NULL, NULL, NULL, &a, NULL, NULL), CT_OK);
    ck_assert_int_eq(ct_rnn_forward(m, x, NULL, NULL, NULL, &r1, &b, NULL, NULL), CT_OK);
    assert_same(a, b);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- errors ---------------------------------------------------------------------------------- */
#define EXPECT_ERR(status, call, ...)                                                   \
    do {                                                                                \
        int line_ = __LINE__;                                                           \
        ck_assert_int_eq((call), status);                                               \
        char where_[64];                                                                \
        snprintf(where_, sizeof where_, "test_rnn.c:%d", line_);                        \
        const char *want_[] = {__VA_ARGS__};                                            \
        for (size_t k_ = 0; k_ < sizeof want_ / sizeof want_[0]; k_++)                  \
            ck_assert_msg(strstr(errs.last.msg, want_[k_]), "'%s' lacks '%s'",          \
                          errs.last.msg, want_[k_]);                                    \
        ck_assert_msg(strstr(errs.last.msg, where_), "'%s' lacks '%s'", errs.last.msg,  \
                      where_);                                                          \
    } while (0)

START_TEST(test_errors) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_rng rng;
    ct_rng_seed(&rng, 1);
    ct_rnn_config cfg = config(CT_LSTM, 6, 4, 2);
    ct_module *m = ct_rnn_new(ctx, &rng, &cfg);
    ct_tensor *x = TU_RAND(ctx, 1, -1, 1, 5, 3, 6), *out = x, *hn = x, *cn = x;
    EXPECT_ERR(CT_E_SHAPE, ct_rnn_forward(m, TU_RAND(ctx, 1, -1, 1, 5, 3, 7), NULL, NULL, NULL,
                                          NULL, &out, &hn, &cn),
               "rnn_forward: ", "input [5, 3, 7]", "input_size 6");
    ck_assert(!out && !hn && !cn);
    EXPECT_ERR(CT_E_SHAPE, ct_rnn_forward(m, TU_RAND(ctx, 1, -1, 1, 5, 6), NULL, NULL, NULL, NULL,
                                          &out, NULL, NULL),
               "rnn_forward: ", "input [5, 6]", "3 dims");
    EXPECT_ERR(CT_E_ARG, ct_rnn_forward(m, x, ct_from_i64(ctx, (int64_t[]){5, 9, 1}, CT_SHAPE(3)),
                                        NULL, NULL, NULL, &out, NULL, NULL),
               "rnn_forward: ", "lengths[1] = 9", "[1, T = 5]");
    EXPECT_ERR(CT_E_ARG, ct_rnn_forward(m, x, ct_from_i64(ctx, (int64_t[]){5, 2, 0}, CT_SHAPE(3)),
                                        NULL, NULL, NULL, &out, NULL, NULL),
               "lengths[2] = 0", "[1, T = 5]");
    EXPECT_ERR(CT_E_SHAPE, ct_rnn_forward(m, x, ct_from_i64(ctx, (int64_t[]){5, 2}, CT_SHAPE(2)),
                                          NULL, NULL, NULL, &out, NULL, NULL),
               "lengths is int64 [2]", "expected int64 [3]");
    EXPECT_ERR(CT_E_SHAPE, ct_rnn_forward(m, x, ct_ones(ctx, CT_SHAPE(3)), NULL, NULL, NULL, &out,
                                          NULL, NULL),
               "lengths is float32 [3]");
    EXPECT_ERR(CT_E_SHAPE, ct_rnn_forward(m, x, NULL, ct_zeros(ctx, CT_SHAPE(1, 3, 4)), NULL, NULL,
                                          &out, NULL, NULL),
               "rnn_forward: ", "h0 has shape [1, 3, 4]",
               "[num_layers, batch, hidden_size] = [2, 3, 4]");
    EXPECT_ERR(CT_E_SHAPE, ct_rnn_forward(m, x, NULL, NULL, ct_zeros(ctx, CT_SHAPE(2, 3, 5)), NULL,
                                          &out, NULL, NULL),
               "c0 has shape [2, 3, 5]");
    EXPECT_ERR(CT_E_DTYPE, ct_rnn_forward(m, ct_from_i64(ctx, (int64_t[]){1}, CT_SHAPE(1, 1, 1)),
                                          NULL, NULL, NULL, NULL, &out, NULL, NULL),
               "x [1, 1, 1] is int64; expected float32");
    EXPECT_ERR(CT_E_SHAPE, ct_rnn_forward(m, ct_zeros(ctx, CT_SHAPE(0, 3, 6)), NULL, NULL, NULL,
                                          NULL, &out, NULL, NULL),
               "must be at least 1");
    ct_rnn_config gcfg = config(CT_GRU, 6, 4, 2);
    ct_module *gru = ct_rnn_new(ctx, &rng, &gcfg);
    EXPECT_ERR(CT_E_ARG, ct_rnn_forward(gru, x, NULL, NULL, ct_zeros(ctx, CT_SHAPE(2, 3, 4)), NULL,
                                        &out, NULL, &cn),
               "c0 was given but a GRU has no cell state");
    ct_module *plain = ct_module_new(ctx, "Linear", 0);
    EXPECT_ERR(CT_E_ARG, ct_rnn_forward(plain, x, NULL, NULL, NULL, NULL, &out, NULL, NULL),
               "not made by ct_rnn_new");
    ct_module_free(plain);
    /* NULL inputs fail quietly */
    int before = errs.count;
    ck_assert_int_eq(ct_rnn_forward(m, NULL, NULL, NULL, NULL, NULL, &out, NULL, NULL), CT_E_NULL);
    ck_assert_int_eq(errs.count, before);
    /* a GRU's c_n is NULL; outputs may be left out */
    ck_assert_int_eq(ct_rnn_forward(gru, x, NULL, NULL, NULL, NULL, NULL, &hn, &cn), CT_OK);
    ck_assert_ptr_nonnull(hn);
    ck_assert_ptr_null(cn);
    /* the cells */
    ct_module *cell = ct_lstm_cell_new(ctx, &rng, 6, 4, true);
    ct_tensor *h2, *c2;
    EXPECT_ERR(CT_E_SHAPE, ct_lstm_cell_forward(cell, TU_RAND(ctx, 1, 0, 1, 3, 5), NULL, NULL, &h2,
                                                &c2),
               "lstm_cell_forward: ", "x has shape [3, 5]", "[batch, 6]");
    EXPECT_ERR(CT_E_SHAPE, ct_lstm_cell_forward(cell, TU_RAND(ctx, 1, 0, 1, 3, 6),
                                                ct_zeros(ctx, CT_SHAPE(3, 5)), NULL, &h2, &c2),
               "h has shape [3, 5]", "[3, 4]");
    int line = __LINE__ + 1;
    ck_assert_ptr_null(ct_gru_cell_forward(cell, TU_RAND(ctx, 1, 0, 1, 3, 6), NULL));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "is not a GRUCell"));
    char where[64];
    snprintf(where, sizeof where, "test_rnn.c:%d", line);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, where));
    ck_assert_ptr_null(ct_rnn_cell_new(ctx, &rng, 3, 4, true, CT_LSTM));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "nonlinearity"));
    ck_assert_ptr_null(ct_gru_cell_new(ctx, &rng, 0, 4, true));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "input_size 0"));
    ct_module_free(cell);
    ct_module_free(gru);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- the first layer fed from an embedding table ------------------------------------------------ */
typedef struct emb_case {
    ct_rnn_mode mode;
    int layers;
    int64_t V, T, B;
    bool batch_first, state;
    const int64_t *lengths;
} emb_case;

static const int64_t elen3[] = {5, 2, 4}, elen1[] = {2};
static const emb_case emb_cases[] = {
    {CT_LSTM, 2, 7, 5, 3, false, true, elen3},
    {CT_LSTM, 1, 7, 5, 3, true, false, NULL},
    {CT_GRU, 2, 6, 5, 3, true, true, elen3},
    {CT_RNN_TANH, 2, 4, 4, 1, false, true, elen1},
    {CT_LSTM, 2, 40, 5, 3, false, true, elen3},       /* V >= T*B: through ct_embedding */
};

START_TEST(test_embedded_matches_embedding) {
    const emb_case *c = &emb_cases[_i];
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_rng rng;
    ct_rng_seed(&rng, 21);
    ct_rnn_config cfg = config(c->mode, 4, 9, c->layers);
    cfg.batch_first = c->batch_first;
    ct_module *m = ct_rnn_new(ctx, &rng, &cfg);
    const int64_t T = c->T, B = c->B, L = c->layers, H = 9;
    ct_tensor *emb = TU_RAND(ctx, 1, -1, 1, c->V, 4);
    ct_set_requires_grad(emb, true);
    /* tokens: padded positions hold -1 for the fused call and 0 for the reference */
    int64_t tk[64], tr[64];
    for (int64_t t = 0; t < T; t++)
        for (int64_t b = 0; b < B; b++) {
            int64_t i = c->batch_first ? b * T + t : t * B + b;
            bool pad = c->lengths && t >= c->lengths[b];
            tk[i] = pad ? -1 : (t * 5 + b * 3) % c->V;
            tr[i] = pad ? 0 : tk[i];
        }
    ct_tensor *tokens = c->batch_first ? ct_from_i64(ctx, tk, CT_SHAPE(B, T))
                                       : ct_from_i64(ctx, tk, CT_SHAPE(T, B));
    ct_tensor *tref = c->batch_first ? ct_from_i64(ctx, tr, CT_SHAPE(B, T))
                                     : ct_from_i64(ctx, tr, CT_SHAPE(T, B));
    ct_tensor *lengths = c->lengths ? ct_from_i64(ctx, c->lengths, CT_SHAPE(B)) : NULL;
    ct_tensor *h0 = c->state ? TU_RAND(ctx, 2, -1, 1, L, B, H) : NULL;
    ct_tensor *c0 = c->state && c->mode == CT_LSTM ? TU_RAND(ctx, 3, -1, 1, L, B, H) : NULL;
    if (h0) ct_set_requires_grad(h0, true);
    if (c0) ct_set_requires_grad(c0, true);
    ct_tensor *p1 = c->batch_first ? TU_RAND(ctx, 4, -1, 1, B, T, H)
                                   : TU_RAND(ctx, 4, -1, 1, T, B, H);
    ct_tensor *p2 = TU_RAND(ctx, 5, -1, 1, L, B, H), *p3 = TU_RAND(ctx, 6, -1, 1, L, B, H);
    const int np = ct_module_param_count(m);
    ct_tensor *res[2][3 + 3 + 16];
    for (int run = 0; run < 2; run++) {
        ct_module_zero_grad(m);
        ct_zero_grad(emb);
        if (h0) ct_zero_grad(h0);
        if (c0) ct_zero_grad(c0);
        ct_tensor *out, *hn, *cn;
        ct_status s = run == 0
            ? ct_rnn_forward_embedded(m, emb, tokens, lengths, h0, c0, NULL, &out, &hn, &cn)
            : ct_rnn_forward(m, ct_embedding(emb, tref), lengths, h0, c0, NULL, &out, &hn, &cn);
        ck_assert_msg(s == CT_OK, "%s", ct_ctx_error(ctx));
        ck_assert_int_eq(ct_backward(loss_of(out, hn, cn, p1, p2, p3)), CT_OK);
        int k = 0;
        res[run][k++] = out;
        res[run][k++] = hn;
        res[run][k++] = cn ? cn : hn;
        res[run][k++] = ct_clone(ct_grad(emb));
        res[run][k++] = h0 ? ct_clone(ct_grad(h0)) : hn;
        res[run][k++] = c0 ? ct_clone(ct_grad(c0)) : hn;
        for (int i = 0; i < np; i++)
            res[run][k++] = ct_clone(ct_grad(ct_module_param_at(m, i, NULL, 0)));
    }
    for (int k = 0; k < 6 + np; k++) tu_assert_tensors_close(res[0][k], res[1][k], 1e-5, 1e-4);
    /* a token outside [0, V) where it is read is an error naming the position */
    tk[c->batch_first ? 0 * T + 1 : 1 * B + 0] = c->V;
    ct_tensor *bad = c->batch_first ? ct_from_i64(ctx, tk, CT_SHAPE(B, T))
                                    : ct_from_i64(ctx, tk, CT_SHAPE(T, B));
    ct_tensor *out;
    int line = __LINE__ + 1;
    ck_assert_int_eq(ct_rnn_forward_embedded(m, emb, bad, lengths, h0, c0, NULL, &out, NULL, NULL),
                     CT_E_ARG);
    ck_assert_ptr_null(out);
    char want[96];
    snprintf(want, sizeof want, "tokens[%d][%d] = %lld is outside [0, V = %lld)",
             c->batch_first ? 0 : 1, c->batch_first ? 1 : 0, (long long)c->V, (long long)c->V);
    ck_assert_msg(strstr(errs.last.msg, want), "'%s' lacks '%s'", errs.last.msg, want);
    snprintf(want, sizeof want, "rnn_forward_embedded: ");
    ck_assert_ptr_nonnull(strstr(errs.last.msg, want));
    snprintf(want, sizeof want, "test_rnn.c:%d", line);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, want));
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

typedef struct emb_ud { ct_module *m; ct_tensor *tokens, *lengths; } emb_ud;
static ct_tensor *embedded_fn(ct_tensor **in, void *ud_) {
    emb_ud *ud = ud_;
    ct_tensor *out, *hn, *cn;
    if (ct_rnn_forward_embedded(ud->m, in[0], ud->tokens, ud->lengths, in[1], in[2], NULL, &out,
                                &hn, &cn) != CT_OK)
        return NULL;
    ct_tensor *parts[3] = {ct_reshape(out, -1), ct_reshape(hn, -1), ct_reshape(cn, -1)};
    return ct_concat(3, parts, 0);
}

START_TEST(test_gradcheck_embedded) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_rng rng;
    ct_rng_seed(&rng, 13);
    ct_rnn_config cfg = config(CT_LSTM, 3, 4, 2);
    ct_module *m = ct_rnn_new(ctx, &rng, &cfg);
    for (int i = 0; i < ct_module_param_count(m); i++)
        ct_inplace_scale(ct_module_param_at(m, i, NULL, 0), 2.0f);
    ct_tensor *in[16];
    int n = 0;
    in[n++] = TU_RAND(ctx, 1, -1, 1, 5, 3);
    in[n++] = TU_RAND(ctx, 2, -1, 1, 2, 3, 4);
    in[n++] = TU_RAND(ctx, 3, -1, 1, 2, 3, 4);
    for (int i = 0; i < 3; i++) ct_set_requires_grad(in[i], true);
    for (int i = 0; i < ct_module_param_count(m); i++) in[n++] = ct_module_param_at(m, i, NULL, 0);
    emb_ud ud = {m, ct_from_i64(ctx, (int64_t[]){0, 4, 2, 1, 99, 2, 3, -5, 0, 1, -1, 4},
                                CT_SHAPE(4, 3)),
                 ct_from_i64(ctx, (int64_t[]){4, 1, 3}, CT_SHAPE(3))};
    ck_assert_int_gt(tu_gradcheck_tol(embedded_fn, n, in, &ud, 1e-2, 2e-3, 1e-2), 100);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_embedded_errors) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_rng rng;
    ct_rng_seed(&rng, 1);
    ct_rnn_config cfg = config(CT_GRU, 4, 5, 1);
    ct_module *m = ct_rnn_new(ctx, &rng, &cfg);
    ct_tensor *emb = TU_RAND(ctx, 1, -1, 1, 6, 4);
    ct_tensor *tok = ct_from_i64(ctx, (int64_t[]){1, 2}, CT_SHAPE(1, 2));
    ct_tensor *out;
    EXPECT_ERR(CT_E_SHAPE, ct_rnn_forward_embedded(m, TU_RAND(ctx, 1, -1, 1, 6, 3), tok, NULL, NULL,
                                                   NULL, NULL, &out, NULL, NULL),
               "rnn_forward_embedded: ", "emb has shape [6, 3]", "[V, 4]");
    EXPECT_ERR(CT_E_DTYPE, ct_rnn_forward_embedded(m, emb, ct_ones(ctx, CT_SHAPE(1, 2)), NULL, NULL,
                                                   NULL, NULL, &out, NULL, NULL),
               "tokens [1, 2] is float32; expected int64");
    ct_tensor *tok1 = ct_from_i64(ctx, (int64_t[]){1, 2}, CT_SHAPE(2));
    ct_tensor *len2 = ct_from_i64(ctx, (int64_t[]){1, 3}, CT_SHAPE(2));
    EXPECT_ERR(CT_E_SHAPE, ct_rnn_forward_embedded(m, emb, tok1, NULL, NULL, NULL, NULL, &out, NULL,
                                                   NULL),
               "tokens has shape [2]");
    EXPECT_ERR(CT_E_ARG, ct_rnn_forward_embedded(m, emb, tok, len2, NULL, NULL, NULL, &out, NULL,
                                                 NULL),
               "lengths[1] = 3 is outside [1, T = 1]");
    ck_assert_int_eq(ct_rnn_forward_embedded(m, NULL, tok, NULL, NULL, NULL, NULL, &out, NULL, NULL),
                     CT_E_NULL);
    ck_assert_int_eq(ct_rnn_forward_embedded(m, emb, tok, NULL, NULL, NULL, NULL, &out, NULL, NULL),
                     CT_OK);
    ck_assert_int_eq(out->shape[0], 1);
    ck_assert_int_eq(out->shape[1], 2);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- PyTorch parity ----------------------------------------------------------------------- */
static const char *const golden_cases[] = {
    "lstm_l1", "lstm_l2_len_state", "lstm_l3_bf_len", "lstm_l2_nobias_state", "gru_l1_state",
    "gru_l2_len", "gru_l3_bf_len_state", "rnn_tanh_l2_len_state", "rnn_relu_l1",
};

static bool has(ct_npz *z, const char *name) {
    for (int i = 0; i < ct_npz_count(z); i++)
        if (strcmp(ct_npz_name(z, i), name) == 0) return true;
    return false;
}

static void compare(const char *what, ct_tensor *got, ct_tensor *want) {
    ck_assert_msg(got && want, "%s: missing", what);
    ck_assert_msg(ct_same_shape(got, want), "%s: shape differs", what);
    float *a = host(got), *b = host(want);
    double scale = 0;
    for (int64_t i = 0; i < ct_numel(want); i++) scale = fmax(scale, fabs(b[i]));
    for (int64_t i = 0; i < ct_numel(want); i++)
        ck_assert_msg(fabs((double)a[i] - b[i]) <= 1e-4 * fabs(b[i]) + 1e-5 * fmax(scale, 1e-3),
                      "%s: element %lld is %.7g, PyTorch %.7g", what, (long long)i, (double)a[i],
                      (double)b[i]);
    free(a);
    free(b);
}

START_TEST(test_golden_pytorch) {
    const char *name = golden_cases[_i];
    ct_ctx *ctx = tu_ctx(NULL);
    char path[128];
    snprintf(path, sizeof path, "fixtures/rnn/%s.npz", name);
    ct_npz *z = ct_npz_open(ctx, path);
    ck_assert_msg(z != NULL, "cannot open %s: %s", path, ct_ctx_error(ctx));
    const int64_t *c = ct_data_i64(ct_npz_get(z, "config"));
    ct_rnn_config cfg = {(ct_rnn_mode)c[0], c[1], c[2], (int)c[3], c[4] != 0, c[5] != 0, 0.0f};
    ct_rng rng;
    ct_rng_seed(&rng, 1);
    ct_module *m = ct_rnn_new(ctx, &rng, &cfg);
    ck_assert_ptr_nonnull(m);
    char pname[64];
    for (int i = 0; i < ct_module_param_count(m); i++) {
        ct_tensor *p = ct_module_param_at(m, i, pname, sizeof pname);
        ck_assert_int_eq(ct_inplace_copy(p, ct_npz_get(z, pname)), CT_OK);
    }
    ct_tensor *x = ct_npz_get(z, "x");
    ct_set_requires_grad(x, true);
    ct_tensor *lengths = has(z, "lengths") ? ct_npz_get(z, "lengths") : NULL;
    ct_tensor *h0 = has(z, "h0") ? ct_npz_get(z, "h0") : NULL;
    ct_tensor *c0 = has(z, "c0") ? ct_npz_get(z, "c0") : NULL;
    if (h0) ct_set_requires_grad(h0, true);
    if (c0) ct_set_requires_grad(c0, true);
    ct_tensor *out, *hn, *cn;
    ck_assert_msg(ct_rnn_forward(m, x, lengths, h0, c0, NULL, &out, &hn, &cn) == CT_OK, "%s",
                  ct_ctx_error(ctx));
    compare("out", out, ct_npz_get(z, "out"));
    compare("h_n", hn, ct_npz_get(z, "h_n"));
    if (cfg.mode == CT_LSTM) compare("c_n", cn, ct_npz_get(z, "c_n"));
    ct_tensor *loss = loss_of(out, hn, cn, ct_npz_get(z, "p1"), ct_npz_get(z, "p2"),
                              cn ? ct_npz_get(z, "p3") : NULL);
    ck_assert_int_eq(ct_backward(loss), CT_OK);
    compare("grad_x", ct_grad(x), ct_npz_get(z, "grad_x"));
    if (h0) compare("grad_h0", ct_grad(h0), ct_npz_get(z, "grad_h0"));
    if (c0) compare("grad_c0", ct_grad(c0), ct_npz_get(z, "grad_c0"));
    for (int i = 0; i < ct_module_param_count(m); i++) {
        ct_tensor *p = ct_module_param_at(m, i, pname, sizeof pname);
        char key[80];
        snprintf(key, sizeof key, "grad_%s", pname);
        compare(key, ct_grad(p), ct_npz_get(z, key));
    }
    ct_npz_close(z);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- memory: a training loop does not grow --------------------------------------------------- */
/* One training pass of an embedded 3-layer LSTM (with lengths) in its own context; returns
 * the outputs and every gradient flattened into out (host floats) and the context's peak
 * bytes. recompute: the ct_rnn_set_recompute argument. */
static int64_t recompute_run(int recompute, int64_t T, int64_t B, int64_t H, int L, float *out,
                             int64_t *n_out) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_rng rng;
    ct_rng_seed(&rng, 5);
    ct_rnn_config cfg = config(CT_LSTM, 3, H, L);
    ct_module *m = ct_rnn_new(ctx, &rng, &cfg);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(ct_rnn_set_recompute(m, recompute), CT_OK);
    ck_assert_int_eq(ct_rnn_recompute_layers(m), recompute);
    ct_module_flatten(m);
    ct_tensor *emb = TU_RAND(ctx, 1, -1, 1, 7, 3);
    ct_set_requires_grad(emb, true);
    ct_tensor *tok = ct_empty(ctx, CT_I64, CT_SHAPE(T, B));
    for (int64_t i = 0; i < T * B; i++) ct_data_i64(tok)[i] = (i * 5 + i / 3) % 7;
    int64_t lv[64];
    for (int64_t b = 0; b < B; b++) lv[b] = T - (b * 3) % T;
    ct_tensor *len = ct_from_i64(ctx, lv, CT_SHAPE(B));
    ct_tensor *c0 = TU_RAND(ctx, 2, -1, 1, L, B, H);
    ct_set_requires_grad(c0, true);
    ct_tensor *o, *hn, *cn;
    ck_assert_int_eq(ct_rnn_forward_embedded(m, emb, tok, len, NULL, c0, NULL, &o, &hn, &cn), CT_OK);
    ct_tensor *p = TU_RAND(ctx, 3, -1, 1, T, B, H);
    ck_assert_int_eq(ct_backward(ct_add(ct_sum_all(ct_mul(o, p)), ct_sum_all(ct_mul(cn, cn)))),
                     CT_OK);
    int64_t k = 0;
    ct_tensor *parts[] = {o, hn, cn, ct_grad(emb), ct_grad(c0), ct_module_flat_grads(m)};
    for (int i = 0; i < 6; i++) {
        ck_assert_ptr_nonnull(parts[i]);
        int64_t n = ct_numel(parts[i]);
        if (out) ck_assert_int_eq(ct_copy_to_host(parts[i], out + k, sizeof(float) * (size_t)n), CT_OK);
        k += n;
    }
    *n_out = k;
    int64_t peak = ct_ctx_mem_stats(ctx).peak_bytes;
    ct_module_free(m);
    ct_ctx_free(ctx);
    return peak;
}

START_TEST(test_recompute) {
    /* the same bits whichever layers recompute, and less memory the more do */
    const int64_t T = 16, B = 4, H = 8;
    int64_t n = 0;
    recompute_run(0, T, B, H, 3, NULL, &n);
    float *ref = malloc(sizeof(float) * (size_t)n), *got = malloc(sizeof(float) * (size_t)n);
    int64_t peak0 = recompute_run(0, T, B, H, 3, ref, &n), prev = peak0;
    for (int r = 1; r <= 3; r++) {
        int64_t peak = recompute_run(r, T, B, H, 3, got, &n);
        ck_assert_msg(memcmp(ref, got, sizeof(float) * (size_t)n) == 0,
                      "recompute %d changed the results", r);
        /* (recomputing the last layer too moves the peak into its own recompute) */
        if (r < 3) ck_assert_int_lt(peak, prev);
        else ck_assert_int_le(peak, prev);
        prev = peak;
    }
    /* AUTO: small layers keep their gates (the same peak as no recompute) ... */
    ck_assert_int_eq(recompute_run(CT_RNN_RECOMPUTE_AUTO, T, B, H, 3, got, &n), peak0);
    ck_assert(memcmp(ref, got, sizeof(float) * (size_t)n) == 0);
    free(ref);
    free(got);
    /* ... large ones (gates of at least CT_RNN_RECOMPUTE_MIN_BYTES) recompute all but the
     * last: here 2 layers of H = 64 over 512 x 64 positions, 32 MiB of gates each */
    const int64_t T2 = 512, B2 = 64, H2 = 64;
    ck_assert_int_ge(T2 * B2 * 4 * H2 * 4, CT_RNN_RECOMPUTE_MIN_BYTES);
    int64_t none = recompute_run(0, T2, B2, H2, 2, NULL, &n);
    int64_t one = recompute_run(1, T2, B2, H2, 2, NULL, &n);
    int64_t aut = recompute_run(CT_RNN_RECOMPUTE_AUTO, T2, B2, H2, 2, NULL, &n);
    ck_assert_int_eq(aut, one);
    ck_assert_int_le(aut, none - T2 * B2 * 4 * H2 * 4 / 2);

    /* errors: another kind of module, a count outside 0..num_layers */
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_rng rng;
    ct_rng_seed(&rng, 1);
    ct_rnn_config cfg = config(CT_GRU, 3, 4, 2);
    ct_module *m = ct_rnn_new(ctx, &rng, &cfg);
    ck_assert_int_eq(ct_rnn_recompute_layers(m), CT_RNN_RECOMPUTE_AUTO);
    ck_assert_int_eq(ct_rnn_set_recompute(m, 3), CT_E_ARG);
    ck_assert_msg(strstr(errs.last.msg, "0..2 (num_layers)"), "%s", errs.last.msg);
    ck_assert_int_eq(ct_rnn_set_recompute(m, -2), CT_E_ARG);
    ck_assert_int_eq(ct_rnn_recompute_layers(m), CT_RNN_RECOMPUTE_AUTO);
    ck_assert_int_eq(ct_rnn_set_recompute(m, 2), CT_OK);
    ck_assert_int_eq(ct_rnn_recompute_layers(m), 2);
    ct_module *lin = ct_linear_new(ctx, &rng, 2, 2, true);
    ck_assert_int_eq(ct_rnn_set_recompute(lin, 0), CT_E_ARG);
    ck_assert_msg(strstr(errs.last.msg, "not a fused recurrent module"), "%s", errs.last.msg);
    ck_assert_int_eq(ct_rnn_recompute_layers(lin), CT_RNN_RECOMPUTE_AUTO);
    ck_assert_int_eq(ct_rnn_set_recompute(NULL, 0), CT_E_ARG);
    ct_module_free(lin);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_memory_steady) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_rng rng;
    ct_rng_seed(&rng, 1);
    ct_rnn_config cfg = config(CT_LSTM, 4, 8, 2);
    cfg.dropout = 0.2f;
    ct_module *m = ct_rnn_new(ctx, &rng, &cfg);
    ct_module_flatten(m);
    ct_tensor *x = TU_RAND(ctx, 1, -1, 1, 6, 3, 4);
    ct_set_requires_grad(x, true);
    ct_tensor *len = ct_from_i64(ctx, (int64_t[]){6, 3, 5}, CT_SHAPE(3));
    ct_mem_stats s0 = {0};
    for (int it = 0; it < 30; it++) {
        ct_scope_begin(ctx);
        ct_tensor *out, *hn, *cn;
        ck_assert_int_eq(ct_rnn_forward(m, x, len, NULL, NULL, &rng, &out, &hn, &cn), CT_OK);
        ck_assert_int_eq(ct_backward(ct_add(ct_sum_all(out), ct_sum_all(cn))), CT_OK);
        ct_module_zero_grad(m);
        ct_scope_end(ctx);
        if (it == 2) s0 = ct_ctx_mem_stats(ctx);
    }
    ct_mem_stats s1 = ct_ctx_mem_stats(ctx);
    ck_assert_int_eq(s1.live_tensors, s0.live_tensors);
    ck_assert_int_eq(s1.live_nodes, 0);
    ck_assert_int_eq(s1.live_bytes, s0.live_bytes);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

Suite *rnn_suite(void) {
    Suite *s = suite_create("rnn");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_fused_vs_cells, 0,
                        (int)(sizeof fused_cases / sizeof fused_cases[0]));
    tcase_add_test(tc, test_gradcheck_lstm);
    tcase_add_test(tc, test_gradcheck_lstm_lengths);
    tcase_add_test(tc, test_gradcheck_gru);
    tcase_add_test(tc, test_gradcheck_gru_lengths);
    tcase_add_test(tc, test_gradcheck_rnn_lengths);
    tcase_add_test(tc, test_gradcheck_cells);
    tcase_add_test(tc, test_params_and_init);
    tcase_add_loop_test(tc, test_padding_invariance, 0, 4);
    tcase_add_test(tc, test_full_lengths_same);
    tcase_add_loop_test(tc, test_step_matches_forward, 0, 4);
    tcase_add_test(tc, test_flattened_module);
    tcase_add_test(tc, test_dropout);
    tcase_add_test(tc, test_errors);
    tcase_add_loop_test(tc, test_golden_pytorch, 0,
                        (int)(sizeof golden_cases / sizeof golden_cases[0]));
    tcase_add_test(tc, test_memory_steady);
    tcase_add_test(tc, test_recompute);
    tcase_add_loop_test(tc, test_embedded_matches_embedding, 0,
                        (int)(sizeof emb_cases / sizeof emb_cases[0]));
    tcase_add_test(tc, test_gradcheck_embedded);
    tcase_add_test(tc, test_embedded_errors);
    suite_add_tcase(s, tc);
    return s;
}
