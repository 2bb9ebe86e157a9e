/* tests/engine/test_module.c — module tree, hierarchical names, the flat parameter block. */
#include "engine/nn.h"
#include "testutil.h"

START_TEST(test_tree_and_names) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_module *root = ct_module_new(ctx, "Model", 0);
    ct_module *rnn = ct_module_new(ctx, "RNN", 0), *out = ct_module_new(ctx, "Linear", 0);
    ck_assert_ptr_nonnull(ct_module_add_param(rnn, "weight_ih_l0", CT_SHAPE(8, 3)));
    ck_assert_ptr_nonnull(ct_module_add_param(rnn, "bias_ih_l0", CT_SHAPE(8)));
    ck_assert_ptr_nonnull(ct_module_add_param(out, "weight", CT_SHAPE(5, 2)));
    ck_assert_ptr_nonnull(ct_module_add_param(out, "bias", CT_SHAPE(5)));
    ck_assert_int_eq(ct_module_add_child(root, "rnn", rnn), CT_OK);
    ck_assert_int_eq(ct_module_add_child(root, "out", out), CT_OK);
    ck_assert_int_eq(ct_module_param_count(root), 4);
    ck_assert_int_eq(ct_module_num_params(root), 24 + 8 + 10 + 5);
    char name[64];
    const char *want[] = {"rnn.weight_ih_l0", "rnn.bias_ih_l0", "out.weight", "out.bias"};
    for (int i = 0; i < 4; i++) {
        ck_assert_ptr_nonnull(ct_module_param_at(root, i, name, sizeof name));
        ck_assert_str_eq(name, want[i]);
    }
    ck_assert_ptr_null(ct_module_param_at(root, 4, name, sizeof name));
    ck_assert_ptr_eq(ct_module_param(root, "out.bias"), ct_module_param_at(root, 3, NULL, 0));
    ck_assert_ptr_null(ct_module_param(root, "out.nope"));
    ck_assert_ptr_eq(ct_module_child(root, "rnn"), rnn);
    ck_assert_ptr_eq(ct_module_root(out), root);
    ck_assert(ct_requires_grad(ct_module_param(root, "out.weight")));
    /* train/eval reaches the whole tree */
    ct_module_train(root, false);
    ck_assert(!out->training);
    /* errors */
    ct_module *extra = ct_module_new(ctx, "X", 0);
    ck_assert_int_eq(ct_module_add_child(root, "rnn", extra), CT_E_ARG);
    ct_module_free(extra);                 /* a refused child still belongs to the caller */
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "already has a child 'rnn'"));
    ck_assert_int_eq(ct_module_add_child(out, "again", rnn), CT_E_STATE);
    ck_assert_ptr_null(ct_module_add_param(out, "bias", CT_SHAPE(1)));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "already has a parameter 'bias'"));
    ck_assert_ptr_null(ct_module_add_param(out, "a.b", CT_SHAPE(1)));
    ck_assert_ptr_null(ct_module_forward(out, ct_zeros(ctx, CT_SHAPE(1)), NULL));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "has no single-input forward"));
    ct_module_free(root);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_flat_block) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_scope_begin(ctx);
    ct_module *root = ct_module_new(ctx, "Model", 0);
    ct_module *a = ct_module_new(ctx, "A", 0);
    ct_tensor *w = ct_module_add_param(a, "w", CT_SHAPE(2, 3));
    ct_tensor *b = ct_module_add_param(root, "b", CT_SHAPE(2));
    ct_module_add_child(root, "a", a);
    ct_inplace_copy(w, ct_from_f32(ctx, (float[]){1, 2, 3, 4, 5, 6}, CT_SHAPE(2, 3)));
    ct_inplace_fill(b, 9.0f);
    /* a gradient from before flattening is carried over */
    ck_assert_int_eq(ct_backward(ct_sum_all(ct_mul(b, b))), CT_OK);
    ck_assert_int_eq(ct_module_flatten(root), CT_OK);
    ct_tensor *fp = ct_module_flat_params(root), *fg = ct_module_flat_grads(root);
    ck_assert_int_eq(ct_numel(fp), 8);
    /* order: own params first (b), then children (a.w) */
    tu_assert_close(fp, ((float[]){9, 9, 1, 2, 3, 4, 5, 6}), 0, 0);
    tu_assert_close(fg, ((float[]){18, 18, 0, 0, 0, 0, 0, 0}), 0, 0);
    ck_assert_ptr_eq(w->storage, fp->storage);              /* same tensor, moved storage */
    ck_assert_ptr_eq(ct_grad(w)->storage, fg->storage);
    tu_assert_close(w, ((float[]){1, 2, 3, 4, 5, 6}), 0, 0);
    /* backward writes into the flat gradient block; zero_grad clears it in one go */
    ck_assert_int_eq(ct_backward(ct_sum_all(ct_mul_scalar(w, 2.0f))), CT_OK);
    tu_assert_close(fg, ((float[]){18, 18, 2, 2, 2, 2, 2, 2}), 0, 0);
    ct_module_zero_grad(root);
    tu_assert_close(fg, ((float[]){0, 0, 0, 0, 0, 0, 0, 0}), 0, 0);
    /* an update through the flat block is seen by the parameters */
    ct_inplace_add_scalar(fp, 1.0f);
    tu_assert_close(b, ((float[]){10, 10}), 0, 0);
    /* flattening a child is refused */
    ck_assert_int_eq(ct_module_flatten(a), CT_E_ARG);
    ct_module_free(root);
    ct_scope_end(ctx);
    ck_assert_int_eq(ct_ctx_mem_stats(ctx).live_storages, 0);
    ck_assert_int_eq(ct_ctx_mem_stats(ctx).live_tensors, 0);
    ct_ctx_free(ctx);
}
END_TEST

Suite *module_suite(void) {
    Suite *s = suite_create("module");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_tree_and_names);
    tcase_add_test(tc, test_flat_block);
    suite_add_tcase(s, tc);
    return s;
}
