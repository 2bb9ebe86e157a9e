/* tests/tools/torch_interop_write.c — cantor's side of tests/check_torch_interop.sh: writes
 * composer checkpoints for PyTorch to read. For each case it builds a composer
 * (models/composer.h), trains it a few Adam steps on random targets (so the weights are not
 * the initial ones), saves it with cc_save to DIR/<case>.safetensors and writes
 * DIR/<case>.npz holding a fixed input "x" (int64 tokens [T, B] or float32 frames
 * [T, B, 88]), the logits cantor computes for it in one forward pass ("logits") and step by
 * step with the output layer fused in, as sampling runs ("logits_step").
 * tests/torch_interop.py then rebuilds each model in PyTorch from the file alone and compares.
 *
 * usage: torch_interop_write DIR        (exit 0 on success, 1 with a message on failure) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/cantor.h"
#include "engine/optim.h"
#include "models/composer.h"

typedef struct tool_case {
    const char *name;
    cc_encoding enc;
    cc_cell cell;
    int layers;
    int64_t hidden, embed, vocab;  /* vocab: tokens encoding only */
    float dropout;
    int64_t T, B;
} tool_case;

static const tool_case CASES[] = {
    {"performance_lstm", CC_ENC_PERFORMANCE, CC_LSTM, 2, 24, 16, 0, 0.2f, 12, 1},
    /* large enough (2M weights) for the batch-1 step to use the worker thread(s) */
    {"tokens_lstm_wide", CC_ENC_TOKENS, CC_LSTM, 2, 516, 32, 50, 0.0f, 10, 1},
    {"melody_gru", CC_ENC_MELODY, CC_GRU, 2, 16, 8, 0, 0.0f, 9, 3},
    {"tokens_rnn", CC_ENC_TOKENS, CC_RNN, 2, 10, 6, 11, 0.0f, 7, 2},
    {"pianoroll_lstm", CC_ENC_PIANOROLL, CC_LSTM, 1, 12, 0, 0, 0.0f, 8, 2},
};

static int fail(ct_ctx *ctx, const char *what) {
    fprintf(stderr, "torch_interop_write: %s: %s\n", what, ctx ? ct_ctx_error(ctx) : "");
    return 1;
}

/* A random input: tokens in [0, V) or 0/1 frames with about 20 % of the keys on. */
static ct_tensor *random_input(ct_ctx *ctx, ct_rng *rng, bool roll, int64_t T, int64_t B,
                               int64_t V) {
    if (roll) {
        ct_tensor *x = ct_empty(ctx, CT_F32, CT_SHAPE(T, B, CC_ROLL_KEYS));
        for (int64_t i = 0; x && i < ct_numel(x); i++)
            ct_data_f32(x)[i] = ct_rng_uniform(rng) < 0.2 ? 1.0f : 0.0f;
        return x;
    }
    ct_tensor *x = ct_empty(ctx, CT_I64, CT_SHAPE(T, B));
    for (int64_t i = 0; x && i < ct_numel(x); i++)
        ct_data_i64(x)[i] = (int64_t)ct_rng_below(rng, (uint64_t)V);
    return x;
}

static int write_case(ct_ctx *ctx, const tool_case *k, const char *dir) {
    cc_config c = cc_config_default(k->enc);
    c.cell = k->cell;
    c.layers = k->layers;
    c.hidden = k->hidden;
    c.dropout = k->dropout;
    if (k->enc != CC_ENC_PIANOROLL) c.embed = k->embed;
    if (k->enc == CC_ENC_TOKENS) c.vocab = k->vocab;
    ct_rng rng;
    ct_rng_seed(&rng, 20261128);
    ct_module *m = cc_model_new(ctx, &rng, &c);
    if (!m) return fail(ctx, k->name);
    const cc_config *rc = cc_model_config(m);
    const bool roll = cc_config_is_roll(rc);
    const int64_t T = k->T, B = k->B, V = rc->vocab;
    /* a few training steps, so that the checkpoint holds trained weights */
    ct_optim *opt = ct_adam_new(m, ct_adam_defaults(0.05));
    if (!opt) return fail(ctx, k->name);
    for (int s = 0; s < 3; s++) {
        ct_scope_begin(ctx);
        ct_tensor *x = random_input(ctx, &rng, roll, T, 4, V);
        ct_tensor *y = random_input(ctx, &rng, roll, T, 4, V);
        ct_tensor *logits = cc_forward(m, x, NULL, &rng), *loss;
        if (roll) loss = ct_bce_with_logits(logits, y, CT_REDUCE_SUM_LAST_MEAN);
        else loss = ct_cross_entropy(ct_reshape(logits, T * 4, V), ct_reshape(y, T * 4), -100);
        ct_optim_zero_grad(opt);
        if (!loss || ct_backward(loss) != CT_OK || ct_optim_step(opt) != CT_OK) {
            ct_scope_end(ctx);
            return fail(ctx, k->name);
        }
        ct_scope_end(ctx);
    }
    ct_optim_free(opt);
    ct_module_train(m, false);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, k->name);
    const char *keys[] = {"written_by"}, *values[] = {"tests/tools/torch_interop_write.c"};
    if (cc_save(path, m, 1, keys, values) != CT_OK) return fail(ctx, path);

    ct_scope_begin(ctx);
    ct_tensor *x = random_input(ctx, &rng, roll, T, B, V);
    ct_tensor *logits = cc_forward(m, x, NULL, NULL);
    ct_tensor *step = ct_empty(ctx, CT_F32, CT_SHAPE(T, B, V));
    if (!logits || !step) return fail(ctx, k->name);
    ct_module *rnn = cc_model_rnn(m), *out = cc_model_out(m);
    ct_rnn_state *st = ct_rnn_state_new(rnn, B);
    const int64_t E = roll ? CC_ROLL_KEYS : rc->embed;
    float *xin = malloc(sizeof(float) * (size_t)(B * E));
    if (!st || !xin) return fail(ctx, k->name);
    const float *emb = roll ? NULL : ct_data_f32(ct_module_param(cc_model_embed(m), "weight"));
    for (int64_t t = 0; t < T; t++) {
        for (int64_t b = 0; b < B; b++) {
            const float *src = roll ? ct_data_f32(x) + (t * B + b) * E
                                    : emb + ct_data_i64(x)[t * B + b] * E;
            memcpy(xin + b * E, src, sizeof(float) * (size_t)E);
        }
        if (ct_rnn_step_linear_f32(rnn, xin, st, ct_module_param(out, "weight"),
                                   ct_module_param(out, "bias"), ct_data_f32(step) + t * B * V,
                                   NULL) != CT_OK)
            return fail(ctx, k->name);
    }
    free(xin);
    ct_rnn_state_free(st);
    snprintf(path, sizeof path, "%s/%s.npz", dir, k->name);
    const char *names[] = {"x", "logits", "logits_step"};
    const ct_tensor *ts[] = {x, logits, step};
    if (ct_npz_save(path, 3, names, ts) != CT_OK) return fail(ctx, path);
    ct_scope_end(ctx);
    char d[128];
    cc_model_describe(m, d, sizeof d);
    printf("wrote %s (%s), input [%lld, %lld%s]\n", k->name, d, (long long)T, (long long)B,
           roll ? ", 88" : "");
    ct_module_free(m);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: torch_interop_write DIR\n");
        return 2;
    }
    mkdir(argv[1], 0777);
    ct_ctx *ctx = ct_ctx_new();
    if (!ctx) return fail(NULL, "out of memory");
    ct_ctx_set_error_handler(ctx, NULL, NULL);     /* fail() prints the message */
    int rc = 0;
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES && rc == 0; i++)
        rc = write_case(ctx, &CASES[i], argv[1]);
    ct_ctx_free(ctx);
    return rc;
}
