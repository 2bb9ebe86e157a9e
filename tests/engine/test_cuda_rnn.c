/* tests/engine/test_cuda_rnn.c — the fused recurrent layers on CUDA (engine/cuda/rnn.cu)
 * against the CPU backend (engine/cpu/rnn.c): LSTM, GRU and Elman RNN, 1-3 layers, mixed
 * lengths, with and without initial states and biases, time- and batch-major, the token
 * (fused embedding) path both ways (table projection when V < T*B, embedding otherwise):
 * outputs, final states and every gradient on cuda:0 within 1e-4 relative of the CPU's; and
 * stepwise sampling (the step with its output layer, at batch 1 and at a batch that takes the
 * GEMM path) giving the CPU stepper's logits for 20 steps; batch 1, T = 1 and H > 256 layers;
 * recomputation in backward and dropout between layers (training mode); the cells (LSTMCell,
 * GRUCell, RNNCell: ordinary ops); and five training steps of a token LSTM / GRU language
 * model (LayerNorm, Linear, cross-entropy, AdamW / SGD, clipping) giving the CPU's losses.
 *
 * Without a usable CUDA device (always in builds without CUDA=1) the device tests return at
 * once; the suite prints "cuda: skipped — <why>" once. What runs everywhere: the device count
 * and its reason, and in CUDA builds the CUDA rnn group's size functions and stepper life
 * cycle, which need no device. The device tests use the device API of engine/device.h
 * (ct_to, ct_module_to); until that header exists they compile to the skip. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kernels_rnn.h"     /* the CUDA group's sizes (struct ct_kernels_rnn) */
#include "engine/layers.h"
#include "engine/rnn.h"
#include "testutil.h"

#include "engine/device.h"

/* Whether the device tests can run; why gets the reason when not. */
static bool cuda_usable(char *why, size_t n) {
    return ct_cuda_device_count(why, n) > 0;
}

/* (each test runs in its own forked process, so "once" is per test) */
#define SKIP_WITHOUT_CUDA()                                          \
    do {                                                             \
        char why_[160];                                              \
        if (!cuda_usable(why_, sizeof why_)) {                       \
            printf("cuda_rnn: skipped — %s\n", why_);                \
            fflush(stdout);                                          \
            return;                                                  \
        }                                                            \
    } while (0)

/* ---- runs everywhere ----------------------------------------------------------------------- */
START_TEST(test_device_count) {
    char why[160] = "";
    int n = ct_cuda_device_count(why, sizeof why);
    ck_assert_int_ge(n, 0);
    if (!ct_cuda_compiled()) ck_assert_int_eq(n, 0);
    if (n == 0) ck_assert_msg(strlen(why) > 0, "no device and no reason given");
    ck_assert_int_eq(ct_cuda_device_count(NULL, 0), n);
}
END_TEST

#ifdef CT_HAVE_CUDA
extern const struct ct_kernels_rnn ct_cuda_rnn;   /* engine/cuda/rnn.cu */

/* Every member is there; aux holds c_t (LSTM) or W_hn h + b_hn (GRU) of every step; the work
 * sizes cover what engine/cuda/rnn.cu's comment lists; a stepper needs no device until its
 * first step. */
START_TEST(test_cuda_group_sizes) {
    const struct ct_kernels_rnn *k = &ct_cuda_rnn;
    ck_assert(k->fwd_work_floats && k->aux_floats && k->forward && k->bwd_work_floats &&
              k->backward && k->stepper_new && k->stepper_free && k->step);
    const ct_rnn_mode modes[] = {CT_RNN_TANH, CT_RNN_RELU, CT_LSTM, CT_GRU};
    const int64_t Ts[] = {1, 5, 300}, Bs[] = {1, 3, 64}, Hs[] = {1, 37, 512};
    for (int mi = 0; mi < 4; mi++)
        for (int ti = 0; ti < 3; ti++)
            for (int bi = 0; bi < 3; bi++)
                for (int hi = 0; hi < 3; hi++) {
                    const ct_rnn_mode mode = modes[mi];
                    const int64_t T = Ts[ti], B = Bs[bi], H = Hs[hi], G = ct_rnn_gates(mode);
                    const bool gru = mode == CT_GRU;
                    ck_assert_int_eq(k->aux_floats(mode, T, B, H),
                                     mode == CT_LSTM || gru ? T * B * H : 0);
                    ck_assert_int_ge(k->fwd_work_floats(mode, T, B, H),
                                     B + B * H + (gru ? 3 * B * H : 0));
                    const int64_t bw = k->bwd_work_floats(mode, T, B, H);
                    ck_assert_int_ge(bw, B + 2 * B * H + T * B * G * H * (gru ? 2 : 1) + T * B);
                    ck_assert_int_ge(k->bwd_work_floats(mode, T + 1, B, H), bw);
                }
    for (int mi = 0; mi < 4; mi++) {
        ct_rnn_stepper *s = k->stepper_new(modes[mi], 2, 1, 7, 37);
        ck_assert_ptr_nonnull(s);
        k->stepper_free(s);
    }
    k->stepper_free(NULL);
}
END_TEST
#endif

#define CUDA0 ((ct_device){CT_CUDA, 0})

static float *host_copy(const ct_tensor *t) {
    int64_t n = ct_numel(t);
    float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(ct_copy_to_host(t, v, sizeof(float) * (size_t)n), CT_OK);
    return v;
}

/* gpu (any device) equals cpu within 1e-5 + 1e-4 |cpu|, element by element. */
static void assert_close(const char *what, const ct_tensor *gpu, const ct_tensor *cpu) {
    ck_assert_msg(gpu && cpu, "%s: missing (gpu %p, cpu %p)", what, (const void *)gpu,
                  (const void *)cpu);
    ck_assert_msg(ct_same_shape(gpu, cpu), "%s: shapes differ", what);
    ck_assert_msg(ct_tensor_device(gpu).type == CT_CUDA, "%s: not on the device", what);
    float *a = host_copy(gpu), *b = host_copy(cpu);
    for (int64_t i = 0; i < ct_numel(cpu); i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= 1e-5 + 1e-4 * fabs((double)b[i])))   /* (a Check assertion costs a pipe write) */
            ck_assert_msg(d <= 1e-5 + 1e-4 * fabs((double)b[i]),
                      "%s[%lld]: cuda %.8g, cpu %.8g", what, (long long)i, (double)a[i],
                      (double)b[i]);
    }
    free(a);
    free(b);
}

static ct_tensor *to_cuda(ct_tensor *t) {
    ct_tensor *d = ct_to(t, CUDA0);
    ck_assert_ptr_nonnull(d);
    return d;
}

/* ---- layers: forward and backward against the CPU ------------------------------------------ */
typedef struct gcase {
    ct_rnn_mode mode;
    int layers;
    int64_t in, hidden, T, B;
    bool state, lengths, bias, batch_first;
    int64_t V;                 /* > 0: tokens into an embedding table of V rows */
} gcase;

static const gcase gcases[] = {
    {CT_LSTM, 1, 5, 8, 6, 3, false, false, true, false, 0},
    {CT_LSTM, 2, 5, 8, 7, 4, true, true, true, false, 0},
    {CT_LSTM, 3, 45, 37, 5, 5, true, true, false, true, 0},     /* no bias, batch-major */
    {CT_GRU, 1, 5, 8, 6, 3, false, false, true, false, 0},
    {CT_GRU, 3, 4, 37, 7, 4, true, true, true, false, 0},
    {CT_GRU, 2, 6, 12, 5, 3, true, false, false, true, 0},
    {CT_RNN_TANH, 1, 5, 8, 6, 3, true, false, true, false, 0},
    {CT_RNN_TANH, 3, 5, 33, 6, 4, false, true, true, false, 0},
    {CT_RNN_RELU, 2, 5, 8, 7, 4, true, true, true, false, 0},
    {CT_LSTM, 2, 6, 8, 7, 4, true, true, true, false, 9},       /* tokens: table (V < T*B) */
    {CT_GRU, 2, 6, 8, 7, 4, false, true, true, true, 9},
    {CT_RNN_RELU, 1, 6, 8, 7, 4, true, false, true, false, 5},
    {CT_LSTM, 1, 6, 8, 3, 2, false, false, true, false, 40},    /* tokens: embedding (V >= T*B) */
    {CT_LSTM, 2, 5, 8, 6, 1, true, false, true, false, 0},      /* batch 1 */
    {CT_GRU, 1, 3, 8, 1, 1, true, false, true, false, 0},       /* T = 1, batch 1 */
    {CT_RNN_TANH, 1, 5, 8, 5, 1, false, true, true, true, 0},   /* batch 1, lengths, batch-major */
    {CT_LSTM, 1, 20, 300, 4, 3, true, true, true, false, 0},    /* H > 256 */
    {CT_GRU, 2, 20, 257, 4, 13, true, true, false, false, 0},   /* H = 257, B = 13, no bias */
    {CT_LSTM, 1, 6, 8, 5, 1, true, false, true, false, 3},      /* tokens at batch 1 (table) */
};

static ct_status run_layer(const gcase *c, ct_module *m, ct_tensor *x, ct_tensor *tok,
                           ct_tensor *len, ct_tensor *h0, ct_tensor *c0, ct_tensor **out,
                           ct_tensor **hn, ct_tensor **cn) {
    if (tok) return ct_rnn_forward_embedded(m, x, tok, len, h0, c0, NULL, out, hn, cn);
    return ct_rnn_forward(m, x, len, h0, c0, NULL, out, hn, cn);
}

/* sum(out * wo) + sum(h_n * wh) (+ sum(c_n * wc)) */
static ct_tensor *loss_of(ct_tensor *out, ct_tensor *hn, ct_tensor *cn, ct_tensor *wo,
                          ct_tensor *wh, ct_tensor *wc) {
    ct_tensor *l = ct_add(ct_sum_all(ct_mul(out, wo)), ct_sum_all(ct_mul(hn, wh)));
    if (cn) l = ct_add(l, ct_sum_all(ct_mul(cn, wc)));
    ck_assert_ptr_nonnull(l);
    return l;
}

START_TEST(test_layers_match_cpu) {
    SKIP_WITHOUT_CUDA();
    const gcase *c = &gcases[_i];
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_rng r1, r2;
    ct_rng_seed(&r1, 100 + (uint64_t)_i);
    ct_rng_seed(&r2, 100 + (uint64_t)_i);
    const ct_rnn_config cfg = {c->mode, c->in, c->hidden, c->layers, c->bias, c->batch_first,
                               0.0f};
    ct_module *mc = ct_rnn_new(ctx, &r1, &cfg), *mg = ct_rnn_new(ctx, &r2, &cfg);
    ck_assert_ptr_nonnull(mc);
    ck_assert_ptr_nonnull(mg);
    ck_assert_int_eq(ct_module_to(mg, CUDA0), CT_OK);
    const int64_t T = c->T, B = c->B, H = c->hidden, L = c->layers;
    const int64_t d0 = c->batch_first ? B : T, d1 = c->batch_first ? T : B;
    const bool lstm = c->mode == CT_LSTM;
    /* lengths (a CPU tensor for both, as PyTorch's packing wants): T, T-2, T-4, ... >= 1 */
    ct_tensor *len = NULL;
    int64_t lv[16];
    for (int64_t b = 0; b < B; b++) lv[b] = c->lengths ? T - (2 * b) % T : T;
    if (c->lengths) len = ct_from_i64(ctx, lv, CT_SHAPE(B));
    /* the input: frames with NaN in the padding (never read), or tokens (-1 in the padding) */
    ct_tensor *xc, *tokc = NULL, *tokg = NULL;
    if (c->V > 0) {
        xc = TU_RAND(ctx, 21, -1, 1, c->V, c->in);
        tokc = ct_empty(ctx, CT_I64, CT_SHAPE(d0, d1));
        int64_t *tv = ct_data_i64(tokc);
        for (int64_t i = 0; i < d0; i++)
            for (int64_t j = 0; j < d1; j++) {
                const int64_t t = c->batch_first ? j : i, b = c->batch_first ? i : j;
                tv[i * d1 + j] = t < lv[b] ? (t * 7 + b * 3 + 1) % c->V : -1;
            }
        tokg = to_cuda(tokc);
    } else {
        xc = TU_RAND(ctx, 21, -1, 1, d0, d1, c->in);
        float *xv = ct_data_f32(xc);
        for (int64_t i = 0; i < d0; i++)
            for (int64_t j = 0; j < d1; j++) {
                const int64_t t = c->batch_first ? j : i, b = c->batch_first ? i : j;
                if (t >= lv[b])
                    for (int64_t k = 0; k < c->in; k++) xv[(i * d1 + j) * c->in + k] = NAN;
            }
    }
    ct_tensor *xg = to_cuda(xc);
    ck_assert_int_eq(ct_set_requires_grad(xc, true), CT_OK);
    ck_assert_int_eq(ct_set_requires_grad(xg, true), CT_OK);
    ct_tensor *h0c = NULL, *h0g = NULL, *c0c = NULL, *c0g = NULL;
    if (c->state) {
        h0c = TU_RAND(ctx, 22, -1, 1, L, B, H);
        h0g = to_cuda(h0c);
        ck_assert_int_eq(ct_set_requires_grad(h0c, true), CT_OK);
        ck_assert_int_eq(ct_set_requires_grad(h0g, true), CT_OK);
        if (lstm) {
            c0c = TU_RAND(ctx, 23, -1, 1, L, B, H);
            c0g = to_cuda(c0c);
            ck_assert_int_eq(ct_set_requires_grad(c0c, true), CT_OK);
            ck_assert_int_eq(ct_set_requires_grad(c0g, true), CT_OK);
        }
    }
    /* forward on both */
    ct_tensor *oc, *hc, *cc, *og, *hg, *cg;
    ck_assert_msg(run_layer(c, mc, xc, tokc, len, h0c, c0c, &oc, &hc, &cc) == CT_OK, "cpu: %s",
                  ct_ctx_error(ctx));
    ck_assert_msg(run_layer(c, mg, xg, tokg, len, h0g, c0g, &og, &hg, &cg) == CT_OK, "cuda: %s",
                  ct_ctx_error(ctx));
    assert_close("out", og, oc);
    assert_close("h_n", hg, hc);
    if (lstm) assert_close("c_n", cg, cc);
    else ck_assert(cg == NULL && cc == NULL);
    /* backward of the same weighted sums */
    ct_tensor *wo = TU_RAND(ctx, 31, -1, 1, d0, d1, H), *wh = TU_RAND(ctx, 32, -1, 1, L, B, H);
    ct_tensor *wc = lstm ? TU_RAND(ctx, 33, -1, 1, L, B, H) : NULL;
    ct_tensor *lc = loss_of(oc, hc, cc, wo, wh, wc);
    ct_tensor *lg = loss_of(og, hg, cg, to_cuda(wo), to_cuda(wh), lstm ? to_cuda(wc) : NULL);
    ck_assert_int_eq(ct_backward(lc), CT_OK);
    ck_assert_msg(ct_backward(lg) == CT_OK, "cuda backward: %s", ct_ctx_error(ctx));
    assert_close("loss", lg, lc);
    assert_close(c->V > 0 ? "d emb" : "dx", ct_grad(xg), ct_grad(xc));
    if (c->state) {
        assert_close("dh0", ct_grad(h0g), ct_grad(h0c));
        if (lstm) assert_close("dc0", ct_grad(c0g), ct_grad(c0c));
    }
    const int np = ct_module_param_count(mc);
    ck_assert_int_eq(ct_module_param_count(mg), np);
    for (int i = 0; i < np; i++) {
        char name[96], what[128];
        ct_tensor *pc = ct_module_param_at(mc, i, name, sizeof name);
        ct_tensor *pg = ct_module_param_at(mg, i, NULL, 0);
        snprintf(what, sizeof what, "d %s", name);
        assert_close(what, ct_grad(pg), ct_grad(pc));
    }
    ck_assert_msg(errs.count == 0, "%s", errs.last.msg);
    ct_module_free(mc);
    ct_module_free(mg);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- stepwise sampling ------------------------------------------------------------------- */
/* A CPU stepper and its twin on cuda:0 (the same weights), each with its output layer, fed the
 * same pseudo-random inputs in host memory. */
typedef struct step_pair {
    ct_ctx *ctx;
    ct_module *mc, *mg, *oc, *og;
    ct_rnn_state *sc, *sg;
    int64_t B, I, V;
    uint64_t seed;   /* of the inputs */
} step_pair;

static void step_pair_new(step_pair *p, ct_ctx *ctx, ct_rnn_mode mode, int64_t B, int64_t I, int64_t H,
                          int64_t V, uint64_t wseed, uint64_t xseed) {
    memset(p, 0, sizeof *p);
    p->ctx = ctx;
    p->B = B;
    p->I = I;
    p->V = V;
    p->seed = xseed;
    ct_rng r1, r2;
    ct_rng_seed(&r1, wseed);
    ct_rng_seed(&r2, wseed);
    const ct_rnn_config cfg = {mode, I, H, 2, true, false, 0.0f};
    p->mc = ct_rnn_new(ctx, &r1, &cfg);
    p->mg = ct_rnn_new(ctx, &r2, &cfg);
    p->oc = ct_linear_new(ctx, &r1, H, V, true);
    p->og = ct_linear_new(ctx, &r2, H, V, true);
    ck_assert(p->mc && p->mg && p->oc && p->og);
    ct_module_train(p->mc, false);
    ct_module_train(p->mg, false);
    ck_assert_int_eq(ct_module_to(p->mg, CUDA0), CT_OK);
    ck_assert_int_eq(ct_module_to(p->og, CUDA0), CT_OK);
    p->sc = ct_rnn_state_new(p->mc, B);
    p->sg = ct_rnn_state_new(p->mg, B);
    ck_assert_msg(p->sc && p->sg, "%s", ct_ctx_error(ctx));
}

/* One step of both with the output layer (x, lc, lg in host memory: B*I and B*V floats). */
static void step_pair_step(step_pair *p, float *x, float *lc, float *lg) {
    for (int64_t i = 0; i < p->B * p->I; i++) {
        p->seed = p->seed * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = (float)((double)(p->seed >> 40) / (double)(1 << 24)) * 2.0f - 1.0f;
    }
    ck_assert_int_eq(ct_rnn_step_linear_f32(p->mc, x, p->sc, ct_module_param(p->oc, "weight"),
                                            ct_module_param(p->oc, "bias"), lc, NULL), CT_OK);
    ck_assert_msg(ct_rnn_step_linear_f32(p->mg, x, p->sg, ct_module_param(p->og, "weight"),
                                         ct_module_param(p->og, "bias"), lg, NULL) == CT_OK,
                  "cuda step: %s", ct_ctx_error(p->ctx));
}

static void step_pair_free(step_pair *p) {
    ct_rnn_state_free(p->sc);
    ct_rnn_state_free(p->sg);
    ct_module_free(p->mc);
    ct_module_free(p->mg);
    ct_module_free(p->oc);
    ct_module_free(p->og);
}

START_TEST(test_step_matches_cpu) {
    SKIP_WITHOUT_CUDA();
    static const ct_rnn_mode modes[] = {CT_LSTM, CT_GRU, CT_RNN_TANH, CT_RNN_RELU};
    const ct_rnn_mode mode = modes[_i % 4];
    const int64_t B = _i < 4 ? 1 : 6;            /* 6: past the fused kernel, the GEMM path */
    const int64_t I = 7, H = 37, V = 11;
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_set_grad_enabled(ctx, false);
    step_pair p;
    step_pair_new(&p, ctx, mode, B, I, H, V, 200 + (uint64_t)_i, 12345);
    ct_module *mc = p.mc, *mg = p.mg;
    ct_rnn_state *sc = p.sc, *sg = p.sg;
    float x[6 * 7], lc[6 * 11], lg[6 * 11];
    /* 20 steps with the output layer (x and logits in host memory) */
    for (int step = 0; step < 20; step++) {
        step_pair_step(&p, x, lc, lg);
        for (int64_t i = 0; i < B * V; i++)
            ck_assert_msg(fabs((double)lg[i] - (double)lc[i]) <= 1e-5 + 1e-4 * fabs((double)lc[i]),
                          "step %d logit %lld: cuda %.8g, cpu %.8g", step, (long long)i,
                          (double)lg[i], (double)lc[i]);
    }
    /* 4 steps through the tensor API, x on each module's device */
    for (int step = 0; step < 4; step++) {
        ct_tensor *xc = TU_RAND(ctx, 300 + (uint64_t)step, -1, 1, B, I), *hc, *hg;
        ck_assert_int_eq(ct_rnn_step(mc, xc, sc, &hc), CT_OK);
        ck_assert_msg(ct_rnn_step(mg, to_cuda(xc), sg, &hg) == CT_OK, "cuda step: %s",
                      ct_ctx_error(ctx));
        assert_close("step h", hg, hc);
    }
    assert_close("state h", ct_rnn_state_h(sg), ct_rnn_state_h(sc));
    if (mode == CT_LSTM) assert_close("state c", ct_rnn_state_c(sg), ct_rnn_state_c(sc));
    ck_assert_msg(errs.count == 0, "%s", errs.last.msg);
    step_pair_free(&p);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- bf16 mixed precision (ct_device_set_bf16) ------------------------------------------- */
/* max |t| over a tensor's elements (any device) */
static double max_abs(const ct_tensor *t) {
    float *v = host_copy(t);
    double m = 0;
    for (int64_t i = 0; i < ct_numel(t); i++) m = fmax(m, fabs((double)v[i]));
    free(v);
    return m;
}

/* gpu within rel * max|cpu| + rel |cpu| of cpu, element by element; returns max |gpu - cpu| */
static double assert_near(const char *what, const ct_tensor *gpu, const ct_tensor *cpu, double rel) {
    ck_assert_msg(gpu && cpu, "%s: missing", what);
    ck_assert_msg(ct_same_shape(gpu, cpu), "%s: shapes differ", what);
    const double scale = max_abs(cpu);
    float *a = host_copy(gpu), *b = host_copy(cpu);
    double worst = 0;
    for (int64_t i = 0; i < ct_numel(cpu); i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        worst = fmax(worst, d);
        if (!(d <= rel * scale + rel * fabs((double)b[i]) + 1e-6))
            ck_assert_msg(d <= rel * scale + rel * fabs((double)b[i]) + 1e-6,
                      "%s[%lld]: bf16 %.8g, float32 %.8g (max |x| %.4g, allowed %.2g of it)", what,
                      (long long)i, (double)a[i], (double)b[i], scale, rel);
    }
    free(a);
    free(b);
    return worst;
}

/* bit-identical (same shape, any devices) */
static void assert_bits(const char *what, const ct_tensor *x, const ct_tensor *y) {
    ck_assert_msg(x && y && ct_same_shape(x, y), "%s: missing or shapes differ", what);
    float *a = host_copy(x), *b = host_copy(y);
    ck_assert_msg(memcmp(a, b, sizeof(float) * (size_t)ct_numel(x)) == 0,
                  "%s: float32 results differ after bf16 was turned off", what);
    free(a);
    free(b);
}

typedef struct layer_run {
    int n;
    const char *name[48];
    char buf[48][104];
    ct_tensor *t[48];
} layer_run;

static void keep(layer_run *r, const char *name, ct_tensor *t) {
    ck_assert_int_lt(r->n, 48);
    snprintf(r->buf[r->n], sizeof r->buf[r->n], "%s", name);
    r->name[r->n] = r->buf[r->n];
    r->t[r->n++] = t;
}

/* One forward + backward of case c on dev (CPU or cuda:0 in its current precision) from the
 * CPU inputs xs (frames or the embedding table), tok, len, h0, c0; the loss weights wo, wh,
 * wc. Keeps out, h_n, c_n and every gradient in r. */
static void layer_once(ct_ctx *ctx, const gcase *c, uint64_t seed, ct_device dev, ct_tensor *xs,
                       ct_tensor *tok, ct_tensor *len, ct_tensor *h0s, ct_tensor *c0s,
                       ct_tensor *wo, ct_tensor *wh, ct_tensor *wc, layer_run *r) {
    const bool on_gpu = dev.type == CT_CUDA, lstm = c->mode == CT_LSTM;
    ct_rng rng;
    ct_rng_seed(&rng, seed);
    const ct_rnn_config cfg = {c->mode, c->in, c->hidden, c->layers, c->bias, c->batch_first,
                               0.0f};
    ct_module *m = ct_rnn_new(ctx, &rng, &cfg);
    ck_assert_ptr_nonnull(m);
    if (on_gpu) ck_assert_int_eq(ct_module_to(m, dev), CT_OK);
    /* leaves of this run (copies: each run has its own gradients) */
#define LEAF(t) ((t) ? (on_gpu ? to_cuda(t) : ct_contiguous(ct_mul_scalar((t), 1.0f))) : NULL)
    ct_tensor *x = LEAF(xs), *h0 = LEAF(h0s), *c0 = LEAF(c0s);
#undef LEAF
    ct_tensor *tk = tok ? (on_gpu ? to_cuda(tok) : tok) : NULL;
    ck_assert_int_eq(ct_set_requires_grad(x, true), CT_OK);
    if (h0) ck_assert_int_eq(ct_set_requires_grad(h0, true), CT_OK);
    if (c0) ck_assert_int_eq(ct_set_requires_grad(c0, true), CT_OK);
    ct_tensor *out, *hn, *cn;
    ck_assert_msg(run_layer(c, m, x, tk, len, h0, c0, &out, &hn, &cn) == CT_OK, "%s",
                  ct_ctx_error(ctx));
    ct_tensor *l = on_gpu ? loss_of(out, hn, cn, to_cuda(wo), to_cuda(wh), lstm ? to_cuda(wc) : NULL)
                          : loss_of(out, hn, cn, wo, wh, wc);
    ck_assert_msg(ct_backward(l) == CT_OK, "backward: %s", ct_ctx_error(ctx));
    keep(r, "out", out);
    keep(r, "h_n", hn);
    if (lstm) keep(r, "c_n", cn);
    keep(r, tok ? "d emb" : "dx", ct_grad(x));
    if (h0) keep(r, "dh0", ct_grad(h0));
    if (c0) keep(r, "dc0", ct_grad(c0));
    for (int i = 0; i < ct_module_param_count(m); i++) {
        char name[96], what[104];
        ct_tensor *p = ct_module_param_at(m, i, name, sizeof name);
        snprintf(what, sizeof what, "d %s", name);
        keep(r, what, ct_grad(p));
        ck_assert(p->dtype == CT_F32);
    }
    /* (the module stays alive until the ctx goes: its gradients are kept in r) */
}

static const gcase bf16_cases[] = {
    {CT_LSTM, 2, 24, 48, 10, 6, true, true, true, false, 0},
    {CT_GRU, 2, 24, 48, 10, 6, true, true, true, false, 0},
    {CT_LSTM, 1, 16, 32, 8, 5, false, false, true, true, 13},    /* tokens (table path) */
    {CT_GRU, 1, 16, 32, 8, 5, true, true, true, false, 13},
};

/* LSTM / GRU forward and backward with bf16 GEMMs stay within 1e-2 (of each tensor's largest
 * value, plus 1e-2 relative) of the CPU's float32, differ from cuda:0's float32 (the mode took
 * effect), and turning bf16 off gives cuda:0's float32 results again, bit for bit (forward
 * only for tokens: their backward sums with float atomics, not bit-reproducible). */
START_TEST(test_bf16_layers) {
    SKIP_WITHOUT_CUDA();
    const gcase *c = &bf16_cases[_i];
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    char why[256];
    const int64_t T = c->T, B = c->B, H = c->hidden, L = c->layers;
    const int64_t d0 = c->batch_first ? B : T, d1 = c->batch_first ? T : B;
    const bool lstm = c->mode == CT_LSTM;
    int64_t lv[16];
    for (int64_t b = 0; b < B; b++) lv[b] = c->lengths ? T - (2 * b) % T : T;
    ct_tensor *len = c->lengths ? ct_from_i64(ctx, lv, CT_SHAPE(B)) : NULL;
    ct_tensor *xs, *tok = NULL;
    if (c->V > 0) {
        xs = TU_RAND(ctx, 41, -1, 1, c->V, c->in);
        tok = ct_empty(ctx, CT_I64, CT_SHAPE(d0, d1));
        int64_t *tv = ct_data_i64(tok);
        for (int64_t i = 0; i < d0; i++)
            for (int64_t j = 0; j < d1; j++) {
                const int64_t t = c->batch_first ? j : i, b = c->batch_first ? i : j;
                tv[i * d1 + j] = t < lv[b] ? (t * 7 + b * 3 + 1) % c->V : -1;
            }
    } else {
        xs = TU_RAND(ctx, 41, -1, 1, d0, d1, c->in);
    }
    ct_tensor *h0 = c->state ? TU_RAND(ctx, 42, -1, 1, L, B, H) : NULL;
    ct_tensor *c0 = c->state && lstm ? TU_RAND(ctx, 43, -1, 1, L, B, H) : NULL;
    ct_tensor *wo = TU_RAND(ctx, 44, -1, 1, d0, d1, H), *wh = TU_RAND(ctx, 45, -1, 1, L, B, H);
    ct_tensor *wc = lstm ? TU_RAND(ctx, 46, -1, 1, L, B, H) : NULL;
    const uint64_t seed = 500 + (uint64_t)_i;
    static layer_run cpu, fp, bf, fp2;
    memset(&cpu, 0, sizeof cpu);
    memset(&fp, 0, sizeof fp);
    memset(&bf, 0, sizeof bf);
    memset(&fp2, 0, sizeof fp2);
    layer_once(ctx, c, seed, CUDA0, xs, tok, len, h0, c0, wo, wh, wc, &fp);
    ck_assert_int_eq(ct_device_set_bf16(CUDA0, true, why, sizeof why), CT_OK);
    layer_once(ctx, c, seed, CUDA0, xs, tok, len, h0, c0, wo, wh, wc, &bf);
    ck_assert_int_eq(ct_device_set_bf16(CUDA0, false, why, sizeof why), CT_OK);
    layer_once(ctx, c, seed, CUDA0, xs, tok, len, h0, c0, wo, wh, wc, &fp2);
    layer_once(ctx, c, seed, CT_DEVICE_CPU, xs, tok, len, h0, c0, wo, wh, wc, &cpu);
    ck_assert_int_eq(bf.n, cpu.n);
    ck_assert_int_eq(fp.n, cpu.n);
    ck_assert_int_eq(fp2.n, cpu.n);
    for (int i = 0; i < cpu.n; i++) {
        ck_assert_str_eq(bf.name[i], cpu.name[i]);
        assert_near(bf.name[i], bf.t[i], cpu.t[i], 1e-2);
        assert_close(fp.name[i], fp.t[i], cpu.t[i]);          /* float32: 1e-4 as ever */
        if (c->V == 0 || i < (lstm ? 3 : 2)) assert_bits(fp2.name[i], fp2.t[i], fp.t[i]);
    }
    /* the mode took effect: bf16's output is not float32's */
    float *a = host_copy(bf.t[0]), *b = host_copy(fp.t[0]);
    double dmax = 0;
    for (int64_t i = 0; i < ct_numel(fp.t[0]); i++) dmax = fmax(dmax, fabs((double)a[i] - b[i]));
    free(a);
    free(b);
    ck_assert_msg(dmax > 1e-6, "bf16 changed the output by only %g", dmax);
    ck_assert_msg(errs.count == 0, "%s", errs.last.msg);
    ct_ctx_free(ctx);
}
END_TEST

/* Stepping with bf16 on: at batch 6 (the GEMM path, bf16) the logits stay within 1e-2 of the
 * CPU's; at batch 1 (the fused float32 kernel) they stay float32's (1e-4). */
START_TEST(test_bf16_step) {
    SKIP_WITHOUT_CUDA();
    const ct_rnn_mode mode = _i % 2 ? CT_GRU : CT_LSTM;
    const int64_t B = _i < 2 ? 6 : 1, I = 20, H = 40, V = 11;
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    char why[256];
    ct_set_grad_enabled(ctx, false);
    step_pair p;
    step_pair_new(&p, ctx, mode, B, I, H, V, 600 + (uint64_t)_i, 999);
    ck_assert_int_eq(ct_device_set_bf16(CUDA0, true, why, sizeof why), CT_OK);
    float x[6 * 20], lc[6 * 11], lg[6 * 11];
    double worst = 0, top = 0;
    for (int step = 0; step < 12; step++) {
        step_pair_step(&p, x, lc, lg);
        for (int64_t i = 0; i < B * V; i++) {
            const double d = fabs((double)lg[i] - (double)lc[i]);
            worst = fmax(worst, d);
            top = fmax(top, fabs((double)lc[i]));
            if (B == 1)
                ck_assert_msg(d <= 1e-5 + 1e-4 * fabs((double)lc[i]),
                              "batch 1 (float32 kernel) step %d logit %lld: %.8g vs %.8g", step,
                              (long long)i, (double)lg[i], (double)lc[i]);
            else
                ck_assert_msg(d <= 1e-2 * (1.0 + fabs((double)lc[i])),
                              "bf16 step %d logit %lld: %.8g vs %.8g", step, (long long)i,
                              (double)lg[i], (double)lc[i]);
        }
    }
    printf("cuda_rnn: bf16 step (%s, batch %lld): max |logit difference| %.3g (max |logit| %.3g)\n",
           mode == CT_LSTM ? "lstm" : "gru", (long long)B, worst, top);
    ck_assert_int_eq(ct_device_set_bf16(CUDA0, false, why, sizeof why), CT_OK);
    ck_assert_msg(errs.count == 0, "%s", errs.last.msg);
    step_pair_free(&p);
    ct_ctx_free(ctx);
}
END_TEST

/* Adam training with bf16 GEMMs: a few steps of LSTM -> linear -> cross-entropy on cuda:0 give
 * losses within 2 % of float32's, falling as float32's do; the weights and Adam's moments stay
 * float32 (the master weights). */
static void train_losses(ct_ctx *ctx, bool bf16, int steps, double *losses) {
    char why[256];
    ck_assert_int_eq(ct_device_set_bf16(CUDA0, bf16, why, sizeof why), CT_OK);
    const int64_t T = 12, B = 8, I = 16, H = 64, V = 10;
    ct_rng rng;
    ct_rng_seed(&rng, 77);
    ct_module *root = ct_module_new(ctx, "Net", 0);
    const ct_rnn_config cfg = {CT_LSTM, I, H, 1, true, false, 0.0f};
    ct_module *rnn = ct_rnn_new(ctx, &rng, &cfg), *out = ct_linear_new(ctx, &rng, H, V, true);
    ck_assert_int_eq(ct_module_add_child(root, "rnn", rnn), CT_OK);
    ck_assert_int_eq(ct_module_add_child(root, "out", out), CT_OK);
    ck_assert_int_eq(ct_module_to(root, CUDA0), CT_OK);
    ct_optim *opt = ct_adam_new(root, ct_adam_defaults(1e-2));
    ck_assert_ptr_nonnull(opt);
    ct_tensor *x = to_cuda(TU_RAND(ctx, 78, -1, 1, T, B, I));
    int64_t yv[12 * 8];
    for (int64_t i = 0; i < T * B; i++) yv[i] = (i * 7 + i / B) % V;
    ct_tensor *y = to_cuda(ct_from_i64(ctx, yv, CT_SHAPE(T * B)));
    for (int s = 0; s < steps; s++) {
        ct_optim_zero_grad(opt);
        ct_scope_begin(ctx);
        ct_tensor *h = NULL;
        ck_assert_int_eq(ct_rnn_forward(rnn, x, NULL, NULL, NULL, NULL, &h, NULL, NULL), CT_OK);
        ct_tensor *logits = ct_linear_forward_at(CT_SRC, out, h);
        ct_tensor *loss = ct_cross_entropy(ct_view(logits, T * B, V), y, -100);
        ck_assert_msg(loss && ct_backward(loss) == CT_OK, "%s", ct_ctx_error(ctx));
        ck_assert_int_eq(ct_optim_step(opt), CT_OK);
        losses[s] = ct_item(loss);
        ct_scope_end(ctx);
    }
    for (int i = 0; i < ct_module_param_count(root); i++) {
        ct_tensor *p = ct_module_param_at(root, i, NULL, 0);
        ck_assert(p->dtype == CT_F32 && ct_tensor_device(p).type == CT_CUDA);
    }
    ct_optim_free(opt);
    ct_module_free(root);
    ck_assert_int_eq(ct_device_set_bf16(CUDA0, false, why, sizeof why), CT_OK);
}

START_TEST(test_bf16_adam_training) {
    SKIP_WITHOUT_CUDA();
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    enum { STEPS = 8 };
    double fp[STEPS], bf[STEPS];
    train_losses(ctx, false, STEPS, fp);
    train_losses(ctx, true, STEPS, bf);
    for (int s = 0; s < STEPS; s++) {
        printf("cuda_rnn: adam step %d: loss float32 %.6f, bf16 %.6f\n", s, fp[s], bf[s]);
        ck_assert_msg(isfinite(bf[s]) && fabs(bf[s] - fp[s]) <= 2e-2 * fp[s],
                      "step %d: bf16 loss %.6f, float32 %.6f", s, bf[s], fp[s]);
    }
    ck_assert_msg(fp[STEPS - 1] < fp[0] && bf[STEPS - 1] < bf[0],
                  "the loss did not fall (float32 %.4f -> %.4f, bf16 %.4f -> %.4f)", fp[0],
                  fp[STEPS - 1], bf[0], bf[STEPS - 1]);
    fflush(stdout);
    ck_assert_msg(errs.count == 0, "%s", errs.last.msg);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- recomputation and dropout between layers, in training mode ------------------------------- */
/* A 3-layer LSTM / GRU / tanh RNN with dropout 0.3 between layers (the masks come from the host
 * generator, the same seed on both devices), every layer recomputing its forward in backward
 * (_i < 3) or none (_i >= 3), mixed lengths: outputs, final states and every gradient within
 * 1e-5 + 1e-4 relative of the CPU's. */
/* "case <i> <what>", for the messages of the cases below */
static const char *case_what(char *buf, size_t n, int i, const char *what) {
    snprintf(buf, n, "case %d %s", i, what);
    return buf;
}

static void recompute_dropout_case(int _i) {
    char w[128];
    static const ct_rnn_mode modes[] = {CT_LSTM, CT_GRU, CT_RNN_TANH};
    const ct_rnn_mode mode = modes[_i % 3];
    const int recompute = _i < 3 ? 3 : 0;
    const bool lstm = mode == CT_LSTM;
    const int64_t T = 6, B = 5, I = 7, H = 19, L = 3;
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_rng w1, w2, d1, d2;
    ct_rng_seed(&w1, 700 + (uint64_t)_i);
    ct_rng_seed(&w2, 700 + (uint64_t)_i);
    ct_rng_seed(&d1, 710);
    ct_rng_seed(&d2, 710);
    const ct_rnn_config cfg = {mode, I, H, (int)L, true, false, 0.3f};
    ct_module *mc = ct_rnn_new(ctx, &w1, &cfg), *mg = ct_rnn_new(ctx, &w2, &cfg);
    ck_assert(mc && mg);
    ck_assert_int_eq(ct_rnn_set_recompute(mc, recompute), CT_OK);
    ck_assert_int_eq(ct_rnn_set_recompute(mg, recompute), CT_OK);
    ck_assert_int_eq(ct_module_to(mg, CUDA0), CT_OK);
    ck_assert_int_eq(ct_rnn_recompute_layers(mg), recompute);
    ct_module_train(mc, true);
    ct_module_train(mg, true);
    const int64_t lv[5] = {6, 1, 4, 6, 3};
    ct_tensor *len = ct_from_i64(ctx, lv, CT_SHAPE(B));
    ct_tensor *xc = TU_RAND(ctx, 720, -1, 1, T, B, I), *xg = to_cuda(xc);
    ct_tensor *h0c = TU_RAND(ctx, 721, -1, 1, L, B, H), *h0g = to_cuda(h0c);
    ck_assert_int_eq(ct_set_requires_grad(xc, true), CT_OK);
    ck_assert_int_eq(ct_set_requires_grad(xg, true), CT_OK);
    ck_assert_int_eq(ct_set_requires_grad(h0c, true), CT_OK);
    ck_assert_int_eq(ct_set_requires_grad(h0g, true), CT_OK);
    ct_tensor *oc, *hc, *cc, *og, *hg, *cg;
    ck_assert_msg(ct_rnn_forward(mc, xc, len, h0c, NULL, &d1, &oc, &hc, &cc) == CT_OK, "cpu: %s",
                  ct_ctx_error(ctx));
    ck_assert_msg(ct_rnn_forward(mg, xg, len, h0g, NULL, &d2, &og, &hg, &cg) == CT_OK, "cuda: %s",
                  ct_ctx_error(ctx));
    assert_close(case_what(w, sizeof w, _i, "out"), og, oc);
    assert_close(case_what(w, sizeof w, _i, "h_n"), hg, hc);
    if (lstm) assert_close(case_what(w, sizeof w, _i, "c_n"), cg, cc);
    ct_tensor *wo = TU_RAND(ctx, 722, -1, 1, T, B, H), *wh = TU_RAND(ctx, 723, -1, 1, L, B, H);
    ct_tensor *wc = lstm ? TU_RAND(ctx, 724, -1, 1, L, B, H) : NULL;
    ck_assert_int_eq(ct_backward(loss_of(oc, hc, cc, wo, wh, wc)), CT_OK);
    ck_assert_msg(ct_backward(loss_of(og, hg, cg, to_cuda(wo), to_cuda(wh), lstm ? to_cuda(wc) : NULL)) == CT_OK,
                  "cuda backward: %s", ct_ctx_error(ctx));
    assert_close(case_what(w, sizeof w, _i, "dx"), ct_grad(xg), ct_grad(xc));
    assert_close(case_what(w, sizeof w, _i, "dh0"), ct_grad(h0g), ct_grad(h0c));
    for (int i = 0; i < ct_module_param_count(mc); i++) {
        char name[96], what[128];
        ct_tensor *pc = ct_module_param_at(mc, i, name, sizeof name);
        snprintf(what, sizeof what, "case %d d %s", _i, name);
        assert_close(what, ct_grad(ct_module_param_at(mg, i, NULL, 0)), ct_grad(pc));
    }
    ck_assert_msg(errs.count == 0, "%s", errs.last.msg);
    ct_module_free(mc);
    ct_module_free(mg);
    ct_ctx_free(ctx);
}

START_TEST(test_recompute_dropout_match_cpu) {
    SKIP_WITHOUT_CUDA();
    for (int i = 0; i < 6; i++) recompute_dropout_case(i);
}
END_TEST

/* ---- the cells (engine/rnn_cells.c: ordinary ops) on cuda:0 -------------------------------------- */
/* LSTMCell, GRUCell, RNNCell (tanh with bias, relu without), three steps from a given state at
 * batch 5 and from zeros at batch 1: h (and c), and the gradients of x, h0 and every parameter
 * within 1e-5 + 1e-4 relative of the CPU's. */
static void cell_steps(ct_module *m, int kind, ct_tensor *const *xs, ct_tensor *h0, ct_tensor *c0,
                       ct_tensor **h, ct_tensor **c) {
    ct_tensor *hh = h0, *cc = c0;
    for (int t = 0; t < 3; t++) {
        if (kind == 0) {
            ct_tensor *hn = NULL, *cn = NULL;
            ck_assert_msg(ct_lstm_cell_forward(m, xs[t], hh, cc, &hn, &cn) == CT_OK, "%s",
                          ct_ctx_error(m->ctx));
            hh = hn;
            cc = cn;
        } else if (kind == 1) {
            hh = ct_gru_cell_forward(m, xs[t], hh);
        } else {
            hh = ct_rnn_cell_forward(m, xs[t], hh);
        }
        ck_assert_msg(hh != NULL, "%s", ct_ctx_error(m->ctx));
    }
    *h = hh;
    *c = cc;
}

static void cell_case(int _i) {
    char w[128];
    const int kind = _i % 4 == 3 ? 2 : _i % 4;          /* 0 LSTM, 1 GRU, 2 RNN tanh, 3 RNN relu */
    const bool relu = _i % 4 == 3, state = _i < 4;
    const int64_t B = state ? 5 : 1, I = 9, H = 33;
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_rng r1, r2;
    ct_rng_seed(&r1, 800 + (uint64_t)_i);
    ct_rng_seed(&r2, 800 + (uint64_t)_i);
    ct_module *m[2];
    for (int d = 0; d < 2; d++) {
        ct_rng *r = d ? &r2 : &r1;
        m[d] = kind == 0   ? ct_lstm_cell_new(ctx, r, I, H, true)
               : kind == 1 ? ct_gru_cell_new(ctx, r, I, H, true)
                           : ct_rnn_cell_new(ctx, r, I, H, !relu, relu ? CT_RNN_RELU : CT_RNN_TANH);
        ck_assert_ptr_nonnull(m[d]);
    }
    ck_assert_int_eq(ct_module_to(m[1], CUDA0), CT_OK);
    ct_tensor *xs[2][3], *h0[2] = {NULL, NULL}, *c0[2] = {NULL, NULL};
    for (int t = 0; t < 3; t++) {
        xs[0][t] = TU_RAND(ctx, 810 + (uint64_t)t, -1, 1, B, I);
        xs[1][t] = to_cuda(xs[0][t]);
        for (int d = 0; d < 2; d++) ck_assert_int_eq(ct_set_requires_grad(xs[d][t], true), CT_OK);
    }
    if (state) {
        h0[0] = TU_RAND(ctx, 820, -1, 1, B, H);
        h0[1] = to_cuda(h0[0]);
        c0[0] = TU_RAND(ctx, 821, -1, 1, B, H);
        c0[1] = to_cuda(c0[0]);
        for (int d = 0; d < 2; d++) {
            ck_assert_int_eq(ct_set_requires_grad(h0[d], true), CT_OK);
            ck_assert_int_eq(ct_set_requires_grad(c0[d], true), CT_OK);
        }
    }
    ct_tensor *h[2], *c[2];
    for (int d = 0; d < 2; d++) cell_steps(m[d], kind, xs[d], h0[d], kind == 0 ? c0[d] : NULL, &h[d], &c[d]);
    assert_close(case_what(w, sizeof w, _i, "h"), h[1], h[0]);
    if (kind == 0) assert_close(case_what(w, sizeof w, _i, "c"), c[1], c[0]);
    ct_tensor *wh = TU_RAND(ctx, 830, -1, 1, B, H), *wc = TU_RAND(ctx, 831, -1, 1, B, H);
    for (int d = 0; d < 2; d++) {
        ct_tensor *l = ct_sum_all(ct_mul(h[d], d ? to_cuda(wh) : wh));
        if (kind == 0) l = ct_add(l, ct_sum_all(ct_mul(c[d], d ? to_cuda(wc) : wc)));
        ck_assert_msg(l && ct_backward(l) == CT_OK, "%s", ct_ctx_error(ctx));
    }
    for (int t = 0; t < 3; t++) assert_close(case_what(w, sizeof w, _i, "dx"), ct_grad(xs[1][t]), ct_grad(xs[0][t]));
    if (state) {
        assert_close(case_what(w, sizeof w, _i, "dh0"), ct_grad(h0[1]), ct_grad(h0[0]));
        if (kind == 0) assert_close(case_what(w, sizeof w, _i, "dc0"), ct_grad(c0[1]), ct_grad(c0[0]));
    }
    for (int i = 0; i < ct_module_param_count(m[0]); i++) {
        char name[96], what[128];
        ct_tensor *pc = ct_module_param_at(m[0], i, name, sizeof name);
        snprintf(what, sizeof what, "case %d d %s", _i, name);
        assert_close(what, ct_grad(ct_module_param_at(m[1], i, NULL, 0)), ct_grad(pc));
    }
    ck_assert_msg(errs.count == 0, "%s", errs.last.msg);
    ct_module_free(m[0]);
    ct_module_free(m[1]);
    ct_ctx_free(ctx);
}

START_TEST(test_cells_match_cpu) {
    SKIP_WITHOUT_CUDA();
    for (int i = 0; i < 8; i++) cell_case(i);
}
END_TEST

/* ---- a few training steps of a language model: the CPU's losses on cuda:0 ---------------------- */
/* Embedding table -> 2-layer LSTM (or GRU) fed through the token path, with lengths -> LayerNorm
 * -> Linear -> cross-entropy (padding targets ignored); AdamW (LSTM) or SGD with momentum (GRU),
 * gradients clipped by norm. Five steps: each loss within 1e-5 + 1e-4 relative of the CPU's,
 * and the parameters after them within 5e-4 + 1e-3 relative (Adam normalises its steps). */
typedef struct lm_net { ct_module *root, *rnn, *ln, *out; ct_tensor *emb; ct_optim *opt; } lm_net;

static void lm_net_new(ct_ctx *ctx, lm_net *n, ct_rnn_mode mode, int64_t V, int64_t E, int64_t H,
                       ct_device dev) {
    ct_rng rng;
    ct_rng_seed(&rng, 900);
    n->root = ct_module_new(ctx, "LM", 0);
    ct_module *emb = ct_embedding_module_new(ctx, &rng, V, E);
    const ct_rnn_config cfg = {mode, E, H, 2, true, false, 0.0f};
    n->rnn = ct_rnn_new(ctx, &rng, &cfg);
    n->ln = ct_layernorm_new(ctx, H, 1e-5f, true);
    n->out = ct_linear_new(ctx, &rng, H, V, true);
    ck_assert(n->root && emb && n->rnn && n->ln && n->out);
    ck_assert_int_eq(ct_module_add_child(n->root, "embed", emb), CT_OK);
    ck_assert_int_eq(ct_module_add_child(n->root, "rnn", n->rnn), CT_OK);
    ck_assert_int_eq(ct_module_add_child(n->root, "ln", n->ln), CT_OK);
    ck_assert_int_eq(ct_module_add_child(n->root, "out", n->out), CT_OK);
    if (dev.type == CT_CUDA) ck_assert_int_eq(ct_module_to(n->root, dev), CT_OK);
    n->emb = ct_module_param(n->root, "embed.weight");
    ck_assert_ptr_nonnull(n->emb);
    n->opt = mode == CT_LSTM ? ct_adamw_new(n->root, ct_adamw_defaults(5e-3))
                             : ct_sgd_new(n->root, (ct_sgd_config){.lr = 0.1, .momentum = 0.9});
    ck_assert_ptr_nonnull(n->opt);
}

static double lm_net_step(lm_net *n, ct_tensor *tok, ct_tensor *len, ct_tensor *tgt, int64_t TB,
                          int64_t H) {
    ct_ctx *ctx = n->root->ctx;
    ct_scope_begin(ctx);
    ct_optim_zero_grad(n->opt);
    ct_tensor *out = NULL;
    ck_assert_msg(ct_rnn_forward_embedded(n->rnn, n->emb, tok, len, NULL, NULL, NULL, &out, NULL, NULL) == CT_OK,
                  "%s", ct_ctx_error(ctx));
    ct_tensor *z = ct_layernorm_forward(n->ln, ct_reshape(out, TB, H));
    ct_tensor *logits = ct_linear_forward_at(CT_SRC, n->out, z);
    ct_tensor *loss = ct_cross_entropy(logits, tgt, -100);
    ck_assert_msg(loss && ct_backward(loss) == CT_OK, "%s", ct_ctx_error(ctx));
    double norm = 0;
    ck_assert_int_eq(ct_clip_grad_norm(n->root, 1.0f, &norm), CT_OK);
    ck_assert_msg(ct_optim_step(n->opt) == CT_OK, "%s", ct_ctx_error(ctx));
    const double l = ct_item(loss);
    ct_scope_end(ctx);
    return l;
}

static void lm_training_case(int _i) {
    const ct_rnn_mode mode = _i ? CT_GRU : CT_LSTM;
    const int64_t V = 11, E = 6, H = 24, T = 9, B = 7;
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    lm_net nc, ng;
    lm_net_new(ctx, &nc, mode, V, E, H, CT_DEVICE_CPU);
    lm_net_new(ctx, &ng, mode, V, E, H, CUDA0);
    const int64_t lv[7] = {9, 3, 7, 9, 1, 5, 8};
    int64_t tv[9 * 7], yv[9 * 7];
    for (int64_t t = 0; t < T; t++)
        for (int64_t b = 0; b < B; b++) {
            const bool on = t < lv[b];
            tv[t * B + b] = on ? (t * 5 + b * 3 + 2) % V : -1;
            yv[t * B + b] = on ? (t * 5 + b * 3 + 3) % V : -100;
        }
    ct_tensor *len = ct_from_i64(ctx, lv, CT_SHAPE(B));
    ct_tensor *tok = ct_from_i64(ctx, tv, CT_SHAPE(T, B)), *tgt = ct_from_i64(ctx, yv, CT_SHAPE(T * B));
    ct_tensor *tokg = to_cuda(tok), *tgtg = to_cuda(tgt);
    for (int step = 0; step < 5; step++) {
        const double lc = lm_net_step(&nc, tok, len, tgt, T * B, H);
        const double lg = lm_net_step(&ng, tokg, len, tgtg, T * B, H);
        printf("cuda_rnn: %s LM step %d: loss cpu %.7f, cuda %.7f\n", mode == CT_LSTM ? "lstm" : "gru",
               step, lc, lg);
        ck_assert_msg(isfinite(lg) && fabs(lg - lc) <= 1e-5 + 1e-4 * fabs(lc),
                      "%s step %d: loss %.9g on cuda, %.9g on the cpu", mode == CT_LSTM ? "lstm" : "gru", step, lg, lc);
    }
    fflush(stdout);
    for (int i = 0; i < ct_module_param_count(nc.root); i++) {
        char name[96];
        ct_tensor *pc = ct_module_param_at(nc.root, i, name, sizeof name);
        float *a = host_copy(pc), *b = host_copy(ct_module_param_at(ng.root, i, NULL, 0));
        for (int64_t j = 0; j < ct_numel(pc); j++)
            if (!(fabsf(a[j] - b[j]) <= 5e-4f + 1e-3f * fabsf(a[j])))
                ck_assert_msg(0, "%s: %s[%lld]: cuda %.8g, cpu %.8g",
                              mode == CT_LSTM ? "lstm" : "gru", name, (long long)j, (double)b[j], (double)a[j]);
        free(a);
        free(b);
    }
    ck_assert_msg(errs.count == 0, "%s", errs.last.msg);
    ct_optim_free(nc.opt);
    ct_optim_free(ng.opt);
    ct_module_free(nc.root);
    ct_module_free(ng.root);
    ct_ctx_free(ctx);
}

START_TEST(test_lm_training_matches_cpu) {
    SKIP_WITHOUT_CUDA();
    lm_training_case(0);
    lm_training_case(1);
}
END_TEST

/* ---- stepping variants: one layer, no bias, continuing from a forward pass, reset ---------------- */
/* For an LSTM, a GRU and a relu RNN of one layer without biases, at batch 1 and 3: the states
 * start from a 4-step forward pass's h_n (c_n) copied in with ct_inplace_copy, then 6 steps of
 * ct_rnn_step_f32 from host floats, then a reset and 2 steps of ct_rnn_step: the states (and
 * the tensor API's h) within 1e-5 + 1e-4 relative of the CPU's after every step. */
static void step_variant_case(int _i) {
    static const ct_rnn_mode modes[] = {CT_LSTM, CT_GRU, CT_RNN_RELU};
    const ct_rnn_mode mode = modes[_i % 3];
    const int64_t B = _i < 3 ? 1 : 3, I = 6, H = 45, T = 4;
    const bool lstm = mode == CT_LSTM;
    char w[128];
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_set_grad_enabled(ctx, false);
    ct_rng r1, r2;
    ct_rng_seed(&r1, 1000 + (uint64_t)_i);
    ct_rng_seed(&r2, 1000 + (uint64_t)_i);
    const ct_rnn_config cfg = {mode, I, H, 1, false, false, 0.0f};
    ct_module *m[2] = {ct_rnn_new(ctx, &r1, &cfg), ct_rnn_new(ctx, &r2, &cfg)};
    ck_assert(m[0] && m[1]);
    ct_module_train(m[0], false);
    ct_module_train(m[1], false);
    ck_assert_int_eq(ct_module_to(m[1], CUDA0), CT_OK);
    ct_rnn_state *st[2];
    ct_tensor *seq = TU_RAND(ctx, 1010, -1, 1, T, B, I);
    for (int d = 0; d < 2; d++) {
        st[d] = ct_rnn_state_new(m[d], B);
        ck_assert_msg(st[d] != NULL, "%s", ct_ctx_error(ctx));
        ct_tensor *out, *hn, *cn;
        ck_assert_msg(ct_rnn_forward(m[d], d ? to_cuda(seq) : seq, NULL, NULL, NULL, NULL, &out, &hn, &cn) == CT_OK,
                      "%s", ct_ctx_error(ctx));
        ck_assert_int_eq(ct_inplace_copy(ct_rnn_state_h(st[d]), hn), CT_OK);
        if (lstm) ck_assert_int_eq(ct_inplace_copy(ct_rnn_state_c(st[d]), cn), CT_OK);
    }
    ck_assert(ct_tensor_device(ct_rnn_state_h(st[1])).type == CT_CUDA);
    assert_close(case_what(w, sizeof w, _i, "state h from forward"), ct_rnn_state_h(st[1]), ct_rnn_state_h(st[0]));
    float x[3 * 6];
    uint64_t seed = 1020 + (uint64_t)_i;
    for (int step = 0; step < 6; step++) {
        for (int64_t k = 0; k < B * I; k++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            x[k] = (float)((double)(seed >> 40) / (double)(1 << 24)) * 2.0f - 1.0f;
        }
        for (int d = 0; d < 2; d++) {
            const float *oh = NULL;
            ck_assert_msg(ct_rnn_step_f32(m[d], x, st[d], &oh) == CT_OK, "%s", ct_ctx_error(ctx));
            ck_assert_ptr_nonnull(oh);
        }
        assert_close(case_what(w, sizeof w, _i, "step state h"), ct_rnn_state_h(st[1]), ct_rnn_state_h(st[0]));
        if (lstm)
            assert_close(case_what(w, sizeof w, _i, "step state c"), ct_rnn_state_c(st[1]), ct_rnn_state_c(st[0]));
    }
    ct_rnn_state_reset(st[0]);
    ct_rnn_state_reset(st[1]);
    for (int step = 0; step < 2; step++) {
        ct_tensor *xt = TU_RAND(ctx, 1030 + (uint64_t)step, -1, 1, B, I), *h[2];
        ck_assert_int_eq(ct_rnn_step(m[0], xt, st[0], &h[0]), CT_OK);
        ck_assert_msg(ct_rnn_step(m[1], to_cuda(xt), st[1], &h[1]) == CT_OK, "%s", ct_ctx_error(ctx));
        assert_close(case_what(w, sizeof w, _i, "step h after a reset"), h[1], h[0]);
    }
    ck_assert_msg(errs.count == 0, "%s", errs.last.msg);
    ct_rnn_state_free(st[0]);
    ct_rnn_state_free(st[1]);
    ct_module_free(m[0]);
    ct_module_free(m[1]);
    ct_ctx_free(ctx);
}

START_TEST(test_step_variants_match_cpu) {
    SKIP_WITHOUT_CUDA();
    for (int i = 0; i < 6; i++) step_variant_case(i);
}
END_TEST

Suite *cuda_rnn_suite(void) {
    Suite *s = suite_create("cuda_rnn");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_device_count);
#ifdef CT_HAVE_CUDA
    tcase_add_test(tc, test_cuda_group_sizes);
#endif
    /* (nothing here may touch CUDA: Check forks every test from this process, and a child
     * cannot use a CUDA runtime its parent initialised; the tests say when they skip) */
    tcase_add_loop_test(tc, test_layers_match_cpu, 0, (int)(sizeof gcases / sizeof gcases[0]));
    tcase_add_loop_test(tc, test_step_matches_cpu, 0, 8);
    tcase_add_loop_test(tc, test_bf16_layers, 0, (int)(sizeof bf16_cases / sizeof bf16_cases[0]));
    tcase_add_loop_test(tc, test_bf16_step, 0, 4);
    tcase_add_test(tc, test_bf16_adam_training);
    tcase_add_test(tc, test_recompute_dropout_match_cpu);
    tcase_add_test(tc, test_cells_match_cpu);
    tcase_add_test(tc, test_lm_training_matches_cpu);
    tcase_add_test(tc, test_step_variants_match_cpu);
    suite_add_tcase(s, tc);
    return s;
}
