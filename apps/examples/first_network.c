/* apps/examples/first_network.c — the engine's first network, in the shape of PyTorch's
 * classic example: 28x28 inputs -> 32 hidden (ReLU) -> 10 outputs, cross-entropy loss,
 * backward, and SGD updates written by hand. Synthetic data (a learnable rule: the class is
 * the brightest of ten pixel bands), so it runs anywhere without downloads.
 *
 * Build and run: make demo   (or: cc -I. first_network.c build/release/libcantor.a ...)
 */
#include <stdio.h>

#include "engine/cantor.h"

enum { IN = 28 * 28, HIDDEN = 32, OUT = 10, BATCH = 64, STEPS = 200 };

/* a batch of images whose label is the band (of 10) with the brightest pixels */
static void make_batch(ct_ctx *ctx, ct_rng *rng, ct_tensor **x, ct_tensor **y) {
    *x = ct_rand(ctx, rng, CT_SHAPE(BATCH, IN));
    *y = ct_empty(ctx, CT_I64, CT_SHAPE(BATCH));
    float *px = ct_data_f32(*x);
    int64_t *py = ct_data_i64(*y);
    for (int b = 0; b < BATCH; b++) {
        int label = (int)ct_rng_below(rng, OUT);
        for (int i = label * (IN / OUT); i < (label + 1) * (IN / OUT); i++) px[b * IN + i] += 0.5f;
        py[b] = label;
    }
}

int main(void) {
    ct_ctx *ctx = ct_ctx_new();
    ct_rng rng;
    ct_rng_seed(&rng, 1234);

    /* parameters live in the context's base scope, for the whole program */
    ct_tensor *w1 = ct_mul_scalar(ct_randn(ctx, &rng, CT_SHAPE(IN, HIDDEN)), 0.05f);
    ct_tensor *b1 = ct_zeros(ctx, CT_SHAPE(HIDDEN));
    ct_tensor *w2 = ct_mul_scalar(ct_randn(ctx, &rng, CT_SHAPE(HIDDEN, OUT)), 0.2f);
    ct_tensor *b2 = ct_zeros(ctx, CT_SHAPE(OUT));
    ct_tensor *params[] = {w1, b1, w2, b2};
    for (int i = 0; i < 4; i++) ct_set_requires_grad(params[i], true);

    float lr = 0.1f;
    for (int step = 1; step <= STEPS; step++) {
        ct_scope_begin(ctx);                         /* every intermediate is freed at scope_end */
        ct_tensor *x, *y;
        make_batch(ctx, &rng, &x, &y);
        ct_tensor *h = ct_relu(ct_add(ct_matmul(x, w1), b1));
        ct_tensor *logits = ct_add(ct_matmul(h, w2), b2);
        ct_tensor *loss = ct_cross_entropy(logits, y, -100);
        if (ct_backward(loss) != CT_OK) {            /* the message was printed by the handler */
            ct_ctx_free(ctx);
            return 1;
        }
        for (int i = 0; i < 4; i++) {                /* SGD by hand, outside autograd */
            ct_inplace_axpy(params[i], -lr, ct_grad(params[i]));
            ct_zero_grad(params[i]);
        }
        if (step == 1 || step % 50 == 0) {
            ct_tensor *pred = ct_argmax(logits, 1, false);
            int correct = 0;
            for (int b = 0; b < BATCH; b++) correct += ct_data_i64(pred)[b] == ct_data_i64(y)[b];
            printf("step %3d  loss %.4f  batch accuracy %3d%%\n", step, ct_item(loss),
                   100 * correct / BATCH);
        }
        ct_scope_end(ctx);
    }
    ct_mem_stats m = ct_ctx_mem_stats(ctx);
    printf("live tensors after training: %lld (4 parameters, their 4 gradients, and the 2 random\n"
           "tensors w1 and w2 were scaled from, all in the context's base scope)\n",
           (long long)m.live_tensors);
    ct_ctx_free(ctx);
    return 0;
}
