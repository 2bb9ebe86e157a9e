/* tests/models/test_interop.c — checkpoints written by PyTorch load into cantor and give
 * PyTorch's logits. tests/models/gen_golden_models.py builds the torch equivalent of a
 * composer (embedding + LSTM/GRU + linear, or 88-key frames + LSTM + linear) with random
 * weights and writes models/fixtures/interop_<case>.safetensors itself (by hand, with the
 * "cantor_config" metadata cc_load reads), plus the input and the logits torch computed
 * (interop_<case>.npz). Here cc_load rebuilds each model from the file alone; the whole-
 * sequence forward and the stepwise path (ct_rnn_step_linear_f32, what sampling uses) must
 * both match torch within 1e-4 relative, and a cantor re-save of the weights loads back bit
 * for bit. The other direction (torch reads what cantor writes) is
 * tests/check_torch_interop.sh. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/npy.h"
#include "engine/safetensors.h"
#include "models/composer.h"
#include "testutil.h"

typedef struct interop_case {
    const char *stem;          /* models/fixtures/<stem>.safetensors and .npz */
    const char *describe;      /* cc_config_describe of the file's config */
    int64_t params;
} interop_case;

static const interop_case CASES[] = {
    /* embed 38x8, LSTM 2x12 on 8 inputs, linear 12 -> 38 */
    {"interop_melody_lstm", "melody LSTM 2x12",
     38 * 8 + (48 * 8 + 48 * 12 + 96) + (48 * 12 + 48 * 12 + 96) + 12 * 38 + 38},
    {"interop_tokens_gru", "tokens GRU 1x7", 9 * 5 + (21 * 5 + 21 * 7 + 42) + 7 * 9 + 9},
    {"interop_roll_lstm", "pianoroll LSTM 1x8", (32 * 88 + 32 * 8 + 64) + 8 * 88 + 88},
};

/* Element-wise |got - want| <= 1e-5 + 1e-4 |want| over n floats. */
static void assert_logits_close(const char *what, int64_t t, const float *got, const float *want,
                                int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double d = (double)got[i] - (double)want[i];
        if (d < 0) d = -d;
        double w = want[i] < 0 ? -(double)want[i] : (double)want[i];
        ck_assert_msg(d <= 1e-5 + 1e-4 * w, "%s, step %lld, logit %lld: cantor %.7g, PyTorch %.7g",
                      what, (long long)t, (long long)i, (double)got[i], (double)want[i]);
    }
}

START_TEST(test_torch_written_checkpoint) {
    const interop_case *k = &CASES[_i];
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    char path[256], npz_path[256];
    snprintf(path, sizeof path, "models/fixtures/%s.safetensors", k->stem);
    snprintf(npz_path, sizeof npz_path, "models/fixtures/%s.npz", k->stem);
    /* the file alone rebuilds the model */
    ct_module *m = cc_load(ctx, path);
    ck_assert_msg(m != NULL, "%s: %s", path, ct_ctx_error(ctx));
    char d[128];
    cc_config_describe(cc_model_config(m), d, sizeof d);
    ck_assert_str_eq(d, k->describe);
    ck_assert_int_eq(cc_model_num_params(m), k->params);
    ct_module_train(m, false);
    ct_npz *z = ct_npz_open(ctx, npz_path);
    ck_assert_msg(z != NULL, "%s: %s", npz_path, ct_ctx_error(ctx));
    ct_tensor *x = ct_npz_get(z, "x"), *want = ct_npz_get(z, "logits");
    ck_assert_ptr_nonnull(x);
    ck_assert_ptr_nonnull(want);
    const cc_config *c = cc_model_config(m);
    const bool roll = cc_config_is_roll(c);
    const int64_t T = x->shape[0], B = x->shape[1], V = c->vocab;
    ck_assert_int_eq(want->ndim, 3);
    ck_assert_int_eq(want->shape[2], V);
    const float *wl = ct_data_f32(want);

    /* the whole sequence at once */
    ct_tensor *logits = cc_forward(m, x, NULL, NULL);
    ck_assert_msg(logits != NULL, "%s", ct_ctx_error(ctx));
    ck_assert(ct_same_shape(logits, want));
    assert_logits_close(k->stem, -1, ct_data_f32(logits), wl, T * B * V);

    /* step by step with the output layer fused in, as sampling runs */
    ct_module *rnn = cc_model_rnn(m), *out = cc_model_out(m);
    ct_rnn_state *st = ct_rnn_state_new(rnn, B);
    ck_assert_ptr_nonnull(st);
    const int64_t E = roll ? CC_ROLL_KEYS : c->embed;
    float *xin = malloc(sizeof(float) * (size_t)(B * E)), *step = malloc(sizeof(float) * (size_t)(B * V));
    const float *emb = roll ? NULL : ct_data_f32(ct_module_param(cc_model_embed(m), "weight"));
    for (int64_t t = 0; t < T; t++) {
        for (int64_t b = 0; b < B; b++) {
            if (roll) memcpy(xin + b * E, ct_data_f32(x) + (t * B + b) * E, sizeof(float) * (size_t)E);
            else memcpy(xin + b * E, emb + ct_data_i64(x)[t * B + b] * E, sizeof(float) * (size_t)E);
        }
        const float *h = NULL;
        ck_assert_int_eq(ct_rnn_step_linear_f32(rnn, xin, st, ct_module_param(out, "weight"),
                                                ct_module_param(out, "bias"), step, &h), CT_OK);
        ck_assert_ptr_eq(h, ct_data_f32(ct_select(ct_rnn_state_h(st), 0, c->layers - 1)));
        assert_logits_close(k->stem, t, step, wl + t * B * V, B * V);
    }
    ct_rnn_state_free(st);
    free(xin);
    free(step);

    /* cantor writes the torch weights back out; they load bit for bit */
    if (mkdir("tmp", 0777) != 0) ck_assert_int_eq(errno, EEXIST);
    char again[256];
    snprintf(again, sizeof again, "tmp/interop_%s_%ld.safetensors", k->stem, (long)getpid());
    ck_assert_int_eq(cc_save(again, m, 0, NULL, NULL), CT_OK);
    ct_module *m2 = cc_load(ctx, again);
    ck_assert_ptr_nonnull(m2);
    ct_module_train(m2, false);
    ct_tensor *l2 = cc_forward(m2, x, NULL, NULL);
    ck_assert_int_eq(memcmp(ct_data_f32(l2), ct_data_f32(logits), sizeof(float) * (size_t)(T * B * V)), 0);
    ck_assert_int_eq(unlink(again), 0);
    ck_assert_int_eq(errs.count, 0);
    ct_npz_close(z);
    ct_module_free(m2);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

/* The torch-written file is plain safetensors: every tensor's name, dtype and shape as
 * PyTorch's state_dict has them, and the config in the metadata. */
START_TEST(test_torch_written_file_layout) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_safetensors *f = ct_safetensors_open(ctx, "models/fixtures/interop_melody_lstm.safetensors");
    ck_assert_msg(f != NULL, "%s", ct_ctx_error(ctx));
    ck_assert_int_eq(ct_safetensors_count(f), 1 + 2 * 4 + 2);
    ct_dtype dt;
    int nd;
    int64_t shape[CT_MAX_DIMS];
    ck_assert(ct_safetensors_info(f, "rnn.weight_ih_l1", &dt, &nd, shape));
    ck_assert_int_eq(dt, CT_F32);
    ck_assert_int_eq(nd, 2);
    ck_assert_int_eq(shape[0], 48);
    ck_assert_int_eq(shape[1], 12);
    ck_assert(ct_safetensors_info(f, "embed.weight", &dt, &nd, shape));
    ck_assert_int_eq(shape[0], 38);
    const char *json = ct_safetensors_meta(f, CC_CONFIG_META_KEY);
    ck_assert_ptr_nonnull(json);
    cc_config c;
    ck_assert_int_eq(cc_config_from_json(json, &c, NULL, 0), CT_OK);
    ck_assert_int_eq(c.encoding, CC_ENC_MELODY);
    ck_assert_int_eq(c.min_pitch, 48);
    ck_assert(c.dropout == 0.25f);
    ct_safetensors_close(f);
    ct_ctx_free(ctx);
}
END_TEST

Suite *interop_suite(void) {
    Suite *s = suite_create("interop");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_torch_written_checkpoint, 0, (int)(sizeof CASES / sizeof *CASES));
    tcase_add_test(tc, test_torch_written_file_layout);
    suite_add_tcase(s, tc);
    return s;
}
