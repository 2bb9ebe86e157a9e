/* engine/ops_dropout.c — dropout with an explicit generator.
 *
 * The keep-mask (1.0 kept, 0.0 dropped) is drawn on the host with ct_rng_uniform, one draw
 * per element in element (row-major) order, so a given generator state gives the same mask
 * whatever the input's strides or device. The mask is saved for backward:
 * out = a * mask / (1 - p), da = g * mask / (1 - p), both through the mask_scale kernel.
 */
#include <stdlib.h>

#include "engine/kernels_index.h"
#include "engine/rng.h"

/* saved[0]: the mask; sc[0]: 1 / (1 - p) */
static ct_status dropout_bw(ct_node *n, ct_tensor *const *g, ct_tensor **gin) {
    ct_tensor *x = n->in[0];
    ct_tensor *r = ct__new(n->ctx, CT_F32, x->storage->device, x->ndim, x->shape);
    if (!r) return ct_ctx_status(n->ctx);
    r->storage->backend->index->mask_scale(r, g[0], n->saved[0], (float)n->sc[0]);
    gin[0] = r;
    return CT_OK;
}
static const ct_op_def dropout_def = {"dropout", dropout_bw, false};

ct_tensor *ct_dropout_at(ct_src src, ct_tensor *a, float p, bool training, ct_rng *rng) {
    if (!a) return NULL;
    ct_ctx *ctx = a->ctx;
    const char *op = "dropout";
    if (!ct__check_same(src, op, 1, &a, true)) return NULL;
    if (!(p >= 0.0f && p < 1.0f))
        return ct__op_error(ctx, src, op, CT_E_ARG, "p = %g is outside [0, 1)", (double)p);
    if (!training || p == 0.0f) {
        /* the input itself, with one more reference for the current scope */
        return ct__scope_ref(a);
    }
    if (!rng)
        return ct__op_error(ctx, src, op, CT_E_ARG,
                            "training with p = %g draws a mask, but the generator is NULL",
                            (double)p);
    const ct_backend *be = a->storage->backend;
    if (!be->index) {
        char d[16];
        return ct__op_error(ctx, src, op, CT_E_UNSUPPORTED, "not available on %s",
                            ct_device_str(a->storage->device, d, sizeof d));
    }
    ct_tensor *mask = ct__new(ctx, CT_F32, a->storage->device, a->ndim, a->shape);
    ct_tensor *out = mask ? ct__new(ctx, CT_F32, a->storage->device, a->ndim, a->shape) : NULL;
    if (!out) return NULL;
    int64_t n = ct_numel(a);
    bool host = a->storage->device.type == CT_CPU;
    float *m = host ? ct_data(mask) : malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!m) return ct__op_error(ctx, src, op, CT_E_NOMEM, "out of memory for the mask");
    double q = p;
    for (int64_t i = 0; i < n; i++) m[i] = ct_rng_uniform(rng) >= q ? 1.0f : 0.0f;
    if (!host) {
        be->from_host(ct_data(mask), m, sizeof(float) * (size_t)n);
        free(m);
    }
    float scale = (float)(1.0 / (1.0 - q));
    be->index->mask_scale(out, a, mask, scale);
    if (ct__needs_grad(ctx, 1, &a)) {
        ct_node *nd = ct__record(src, &dropout_def, 1, &a, 1, &out);
        if (!nd) return NULL;
        nd->sc[0] = scale;
        ct__save(nd, mask);
    }
    return out;
}
