/* tests/models/model_helpers.h — shared by the models/ test suites: batches from token and
 * frame sequences (through the real ct_collate), and a tiny model trained on a repeating
 * pattern. */
#ifndef CT_TESTS_MODEL_HELPERS_H
#define CT_TESTS_MODEL_HELPERS_H

#include <stdlib.h>
#include <string.h>

#include "engine/data.h"
#include "engine/optim.h"
#include "models/composer.h"
#include "testutil.h"

/* A collated token batch (targets = next steps, time-major): seqs[i] has lens[i] values. */
static inline void mh_token_batch(ct_ctx *ctx, int n, const int64_t *const *seqs,
                                  const int64_t *lens, ct_batch *out) {
    ct_data_item items[16];
    ck_assert_int_le(n, 16);
    for (int i = 0; i < n; i++) {
        ct_item_init(&items[i]);
        ck_assert_int_eq(ct_item_set_tokens(&items[i], seqs[i], lens[i]), CT_OK);
    }
    ct_collate_opts o = ct_collate_defaults();
    o.targets = true;
    memset(out, 0, sizeof *out);
    ck_assert_int_eq(ct_collate(ctx, items, n, &o, NULL, out), CT_OK);
    for (int i = 0; i < n; i++) ct_item_free(&items[i]);
}

/* The same for frames of 88 keys (0/1 floats, lens[i] frames each). */
static inline void mh_frame_batch(ct_ctx *ctx, int n, const float *const *frames,
                                  const int64_t *lens, ct_batch *out) {
    ct_data_item items[16];
    ck_assert_int_le(n, 16);
    for (int i = 0; i < n; i++) {
        ct_item_init(&items[i]);
        ck_assert_int_eq(ct_item_set_frames(&items[i], frames[i], lens[i], 88), CT_OK);
    }
    ct_collate_opts o = ct_collate_defaults();
    o.targets = true;
    memset(out, 0, sizeof *out);
    ck_assert_int_eq(ct_collate(ctx, items, n, &o, NULL, out), CT_OK);
    for (int i = 0; i < n; i++) ct_item_free(&items[i]);
}

/* A token model (vocab 4) trained with Adam on "0 1 2 3 0 1 2 3 ..." in four phases.
 * *first and *last get the loss of the first and the last step. */
static inline ct_module *mh_train_pattern(ct_ctx *ctx, cc_cell cell, int steps, float *first,
                                          float *last) {
    cc_config c = cc_config_default(CC_ENC_TOKENS);
    c.vocab = 4;
    c.embed = 8;
    c.hidden = 32;
    c.layers = 1;
    c.cell = cell;
    c.dropout = 0.0f;
    ct_rng rng;
    ct_rng_seed(&rng, 7);
    ct_module *m = cc_model_new(ctx, &rng, &c);
    ck_assert_ptr_nonnull(m);
    int64_t seq[4][17], lens[4] = {17, 17, 17, 17};
    const int64_t *seqs[4];
    for (int i = 0; i < 4; i++) {
        for (int t = 0; t < 17; t++) seq[i][t] = (t + i) % 4;
        seqs[i] = seq[i];
    }
    ct_optim *opt = ct_adam_new(m, ct_adam_defaults(0.05));
    ck_assert_ptr_nonnull(opt);
    for (int s = 0; s < steps; s++) {
        ct_scope_begin(ctx);
        ct_batch b;
        mh_token_batch(ctx, 4, seqs, lens, &b);
        ct_tensor *loss;
        int64_t count;
        ck_assert_int_eq(cc_loss(m, &b, -100, &rng, &loss, &count), CT_OK);
        ck_assert_int_eq(count, 4 * 16);
        if (s == 0) *first = (float)ct_item(loss);
        *last = (float)ct_item(loss);
        ct_optim_zero_grad(opt);
        ck_assert_int_eq(ct_backward(loss), CT_OK);
        ck_assert_int_eq(ct_optim_step(opt), CT_OK);
        ct_batch_clear(&b);
        ct_scope_end(ctx);
    }
    ct_optim_free(opt);
    ct_module_train(m, false);
    return m;
}

#endif
