/* tests/engine/test_golden.c — composite expressions against golden values from PyTorch
 * (tests/gen_golden.py writes tests/fixtures/golden/CASE.npz; run `make fixtures`).
 * Each case: the result and the gradient of sum(result * proj) for every float input. */
#include <math.h>

#include "engine/npy.h"
#include "testutil.h"

typedef struct { ct_npz *z; ct_tensor *in[8]; const char *names[8]; int n; } golden;

static ct_tensor *input(golden *g, const char *name) {
    char key[64];
    snprintf(key, sizeof key, "in_%s", name);
    ct_tensor *t = ct_npz_get(g->z, key);
    ck_assert_msg(t != NULL, "fixture lacks %s", key);
    snprintf(key, sizeof key, "grad_%s", name);
    for (int i = 0; i < ct_npz_count(g->z); i++)
        if (strcmp(ct_npz_name(g->z, i), key) == 0) ct_set_requires_grad(t, true);
    g->in[g->n] = t;
    g->names[g->n++] = name;
    return t;
}

static void check(golden *g, ct_tensor *out) {
    ct_ctx *ctx = g->in[0]->ctx;
    ck_assert_msg(out != NULL, "forward failed: %s", ct_ctx_error(ctx));
    ct_tensor *want = ct_npz_get(g->z, "out");
    tu_assert_tensors_close(out, want, 1e-5, 1e-4);
    ct_tensor *proj = ct_npz_get(g->z, "proj");
    ck_assert_int_eq(ct_backward(ct_sum_all(ct_mul(out, proj))), CT_OK);
    int grads = 0;
    for (int i = 0; i < g->n; i++) {
        if (!ct_requires_grad(g->in[i])) continue;
        char key[64];
        snprintf(key, sizeof key, "grad_%s", g->names[i]);
        ct_tensor *gw = ct_npz_get(g->z, key);
        ck_assert_msg(ct_grad(g->in[i]) != NULL, "no gradient for %s", g->names[i]);
        tu_assert_tensors_close(ct_grad(g->in[i]), gw, 1e-5, 1e-4);
        grads++;
    }
    ck_assert_int_gt(grads, 0);
    ct_npz_close(g->z);
}

static golden open_case(ct_ctx *ctx, const char *name) {
    char path[128];
    snprintf(path, sizeof path, "fixtures/golden/%s.npz", name);
    golden g = {0};
    g.z = ct_npz_open(ctx, path);
    ck_assert_msg(g.z != NULL, "cannot open %s: %s", path, ct_ctx_error(ctx));
    return g;
}

START_TEST(test_golden_mlp) {
    ct_ctx *ctx = tu_ctx(NULL);
    golden g = open_case(ctx, "mlp");
    ct_tensor *x = input(&g, "x"), *w1 = input(&g, "w1"), *b1 = input(&g, "b1");
    ct_tensor *w2 = input(&g, "w2"), *b2 = input(&g, "b2"), *y = input(&g, "y");
    ct_tensor *h = ct_relu(ct_add(ct_matmul(x, w1), b1));
    check(&g, ct_cross_entropy(ct_add(ct_matmul(h, w2), b2), y, -100));
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_golden_softmax_mix) {
    ct_ctx *ctx = tu_ctx(NULL);
    golden g = open_case(ctx, "softmax_mix");
    ct_tensor *x = input(&g, "x"), *w = input(&g, "w"), *s = input(&g, "s");
    ct_tensor *a = ct_log_softmax(ct_matmul(x, w), 1);
    ct_tensor *b = ct_softmax(ct_transpose(x, 0, 1), 0);
    ct_tensor *m = ct_max(a, 1, true, NULL);
    ct_tensor *out = ct_add(ct_narrow(ct_mean(ct_sub(a, m), 0, false), 0, 0, 5),
                            ct_mul(ct_sum(b, 1, false), s));
    check(&g, out);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_golden_bce_roll) {
    ct_ctx *ctx = tu_ctx(NULL);
    golden g = open_case(ctx, "bce_roll");
    ct_tensor *x = input(&g, "x"), *bias = input(&g, "bias"), *target = input(&g, "target");
    ct_tensor *logits = ct_add(ct_mul_scalar(ct_tanh(x), 3.0f), bias);
    check(&g, ct_bce_with_logits(logits, target, CT_REDUCE_SUM_LAST_MEAN));
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_golden_elementwise_chain) {
    ct_ctx *ctx = tu_ctx(NULL);
    golden g = open_case(ctx, "elementwise_chain");
    ct_tensor *a = input(&g, "a"), *b = input(&g, "b");
    ct_tensor *y = ct_sub(ct_div(ct_sqrt(ct_add_scalar(ct_mul(a, a), 1.0f)),
                                 ct_add_scalar(ct_exp(b), 0.5f)),
                          ct_pow_scalar(ct_sigmoid(ct_sub(a, b)), 2.0f));
    y = ct_add(ct_clamp(y, -0.8f, 0.8f), ct_pow(ct_add_scalar(ct_mul(a, a), 0.5f), b));
    ct_tensor *mn = ct_neg(ct_max(ct_reshape(ct_neg(y), -1), 0, false, NULL));
    check(&g, ct_sum(ct_log(ct_add_scalar(ct_sub(y, mn), 1.0f)), -1, false));
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_golden_embed_concat) {
    ct_ctx *ctx = tu_ctx(NULL);
    golden g = open_case(ctx, "embed_concat");
    ct_tensor *table = input(&g, "table"), *idx = input(&g, "idx"), *gidx = input(&g, "gidx");
    ct_tensor *cond = input(&g, "cond"), *sel = input(&g, "sel"), *mask = input(&g, "mask");
    /* cond > 0, computed on the host (the engine has no comparison ops yet) */
    ct_tensor *cb = ct_clone(cond);
    for (int64_t i = 0; i < ct_numel(cb); i++) ct_data_f32(cb)[i] = ct_data_f32(cb)[i] > 0;
    ct_tensor *e = ct_embedding(table, idx);
    ct_tensor *c = ct_concat(2, ((ct_tensor *[]){e, ct_tanh(e)}), 2);
    ct_tensor *s = ct_stack(2, ((ct_tensor *[]){ct_select(c, 0, 0), ct_mul_scalar(ct_select(c, 0, 1), 2.0f)}), 0);
    ct_tensor *gg = ct_gather(s, 2, gidx);
    ct_tensor *w = ct_where(cb, gg, ct_neg(gg));
    check(&g, ct_masked_fill(ct_index_select(w, 1, sel), mask, 0.0f));
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_golden_batched_matmul) {
    ct_ctx *ctx = tu_ctx(NULL);
    golden g = open_case(ctx, "batched_matmul");
    ct_tensor *q = input(&g, "q"), *k = input(&g, "k"), *v = input(&g, "v"), *w = input(&g, "w");
    ct_tensor *p = ct_softmax(ct_div_scalar(ct_matmul(q, ct_transpose(k, -1, -2)), 2.0f), -1);
    check(&g, ct_matmul(ct_matmul(p, v), w));
    ct_ctx_free(ctx);
}
END_TEST

Suite *golden_suite(void) {
    Suite *s = suite_create("golden");
    TCase *tc = tcase_create("pytorch");
    tcase_add_test(tc, test_golden_mlp);
    tcase_add_test(tc, test_golden_softmax_mix);
    tcase_add_test(tc, test_golden_bce_roll);
    tcase_add_test(tc, test_golden_elementwise_chain);
    tcase_add_test(tc, test_golden_embed_concat);
    tcase_add_test(tc, test_golden_batched_matmul);
    suite_add_tcase(s, tc);
    return s;
}
