/* tests/engine/test_cuda.c — the CUDA backend against the CPU reference (every kernel of the
 * core table, per-op tolerances), moving tensors / modules / optimizers between devices, the
 * caching allocator, device errors; six training steps of an MLP (every layer kind, dropout,
 * LayerNorm, BCE, clipping) with SGD / Adam / AdamW giving the CPU's losses; a checkpoint
 * (safetensors + training state) saved from cuda:0 loading on the CPU and on cuda:0; mixing
 * devices in each kind of op failing with both devices and the call site named; and, on
 * every machine, device parsing and the clear errors for a device that is not there.
 *
 * Tests that need a device print "cuda: skipped — <why>" once and return when
 * ct_cuda_device_count() is 0 (a build without CUDA=1, no driver, no GPU). */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/device.h"
#include "engine/internal.h"
#include "engine/kernels_optim.h"
#include "engine/layers.h"
#include "engine/nn.h"
#include "engine/optim.h"
#include "engine/rnn.h"
#include "engine/safetensors.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------------------------- */
static bool skip_no_device(void) {
    static bool said;
    char why[256] = "";
    if (ct_cuda_device_count(why, sizeof why) > 0) return false;
    if (!said) {
        printf("cuda: skipped — %s\n", why[0] ? why : "no CUDA device");
        fflush(stdout);
        said = true;
    }
    return true;
}
#define NEED_DEVICE()                  \
    do {                               \
        if (skip_no_device()) return;  \
    } while (0)

static const ct_device GPU = {CT_CUDA, 0};

static void assert_msg_has(const tu_errors *errs, const char *want) {
    ck_assert_msg(strstr(errs->last.msg, want) != NULL, "message \"%s\" lacks \"%s\"",
                  errs->last.msg, want);
}

/* a on the GPU */
static ct_tensor *gpu(ct_tensor *a) {
    ct_tensor *g = ct_to(a, GPU);
    ck_assert_msg(g != NULL, "ct_to(cuda:0): %s", ct_ctx_error(a->ctx));
    ck_assert(ct_device_eq(ct_tensor_device(g), GPU));
    return g;
}

/* compares a CUDA result with the CPU reference (any strides on either) */
static void same(ct_tensor *want_cpu, ct_tensor *got_gpu, double atol, double rtol) {
    ck_assert_ptr_nonnull(want_cpu);
    ck_assert_msg(got_gpu != NULL, "CUDA result is NULL: %s", ct_ctx_error(want_cpu->ctx));
    ck_assert(ct_device_eq(ct_tensor_device(got_gpu), GPU));
    ct_tensor *back = ct_cpu(got_gpu);
    ck_assert_ptr_nonnull(back);
    ck_assert_int_eq(ct_ctx_status(want_cpu->ctx), CT_OK);
    tu_assert_tensors_close(back, want_cpu, atol, rtol);
}

/* bit-exact comparison of two float32 tensors of one shape (either device) */
static void same_bits(ct_tensor *a, ct_tensor *b) {
    int64_t n = ct_numel(a);
    ck_assert_int_eq(n, ct_numel(b));
    size_t nb = sizeof(float) * (size_t)(n ? n : 1);
    float *x = malloc(nb), *y = malloc(nb);
    ck_assert_int_eq(ct_copy_to_host(a, x, nb), CT_OK);
    ck_assert_int_eq(ct_copy_to_host(b, y, nb), CT_OK);
    ck_assert_msg(memcmp(x, y, sizeof(float) * (size_t)n) == 0, "tensors differ bitwise");
    free(x);
    free(y);
}

/* ---- no device needed ------------------------------------------------------------------------ */
START_TEST(test_parse_devices) {
    ct_device d = {CT_CUDA, 99};
    char why[256];
    ck_assert_int_eq(ct_device_parse("cpu", &d, why, sizeof why), CT_OK);
    ck_assert(d.type == CT_CPU);
    ck_assert_int_eq(ct_device_parse("cuda", &d, why, sizeof why), CT_OK);
    ck_assert(d.type == CT_CUDA && d.index == 0);
    ck_assert_int_eq(ct_device_parse("cuda:7", &d, why, sizeof why), CT_OK);
    ck_assert(d.type == CT_CUDA && d.index == 7);
    ck_assert_int_eq(ct_device_parse("cuda:0", &d, NULL, 0), CT_OK);
    ck_assert(d.type == CT_CUDA && d.index == 0);

    const char *bad[] = {"gpu", "cuda:-1", "cuda:", "cuda:1x", "CUDA", "", "cuda:99999",
                         " cuda", "cuda:+1", "cpu:0", "cuda:0 "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        d = (ct_device){CT_CUDA, 5};
        ck_assert_msg(ct_device_parse(bad[i], &d, why, sizeof why) == CT_E_ARG, "'%s' parsed", bad[i]);
        ck_assert_msg(d.type == CT_CUDA && d.index == 5, "'%s' changed *out", bad[i]);
        ck_assert_msg(strstr(why, "expected cpu, cuda or cuda:N") != NULL, "why: %s", why);
    }
    ck_assert_int_eq(ct_device_parse("gpu", &d, why, sizeof why), CT_E_ARG);
    ck_assert_msg(strstr(why, "'gpu' is not a device") != NULL, "why: %s", why);
    ck_assert_int_eq(ct_device_parse("cuda:-1", &d, why, sizeof why), CT_E_ARG);
    ck_assert_msg(strstr(why, "0 or more") != NULL, "why: %s", why);
    ck_assert_int_eq(ct_device_parse(NULL, &d, why, sizeof why), CT_E_ARG);
}
END_TEST

START_TEST(test_missing_device_errors) {
    /* cuda:N with N = the device count never exists, so this runs on every machine */
    char why[256] = "";
    int count = ct_cuda_device_count(why, sizeof why);
    ct_device none = {CT_CUDA, count};
    char name[24];
    snprintf(name, sizeof name, "cuda:%d", count);
    ck_assert(ct_device_available(CT_DEVICE_CPU, NULL, 0));
    ck_assert(!ct_device_available(none, why, sizeof why));
    ck_assert_msg(strstr(why, name) != NULL, "why: %s", why);
    if (!ct_cuda_compiled())
        ck_assert_msg(strstr(why, "make CUDA=1") != NULL, "why: %s", why);
    else
        ck_assert_msg(strstr(why, "CUDA device") != NULL, "why: %s", why);
    /* ct_device_describe: the CPU by name, a missing device with the reason, a present one with
     * its card's name, memory and compute capability */
    char desc[512], want[300];
    ck_assert_str_eq(ct_device_describe(CT_DEVICE_CPU, desc, sizeof desc), "cpu");
    snprintf(want, sizeof want, "%s (not available: %s)", name, why);
    ck_assert_str_eq(ct_device_describe(none, desc, sizeof desc), want);
    ck_assert_ptr_eq(ct_device_describe(none, desc, 8), desc);   /* truncated, terminated */
    ck_assert_int_eq((int)strlen(desc), 7);
    if (count > 0) {
        ct_device_describe(CT_DEVICE_CUDA(0), desc, sizeof desc);
        ck_assert_msg(strncmp(desc, "cuda:0 (", 8) == 0 && strstr(desc, " GiB, compute ") != NULL, "%s", desc);
        printf("cuda: %s\n", desc);
    }

    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *x = TU_RAND(ctx, 1, -1, 1, 2, 3);
    ck_assert_ptr_null(ct_to(x, none));
    ck_assert_int_eq(ct_ctx_status(ctx), CT_E_DEVICE);
    assert_msg_has(&errs, name);
    assert_msg_has(&errs, "to:");
    assert_msg_has(&errs, "test_cuda.c");
    ct_ctx_clear_error(ctx);

    /* the same tensor on its own device: itself */
    ct_tensor *same_t = ct_cpu(x);
    ck_assert_ptr_eq(same_t, x);

    /* a module stays whole on the CPU */
    ct_rng rng;
    ct_rng_seed(&rng, 3);
    ct_module *lin = ct_linear_new(ctx, &rng, 3, 2, true);
    ck_assert_ptr_nonnull(lin);
    ct_tensor *w = ct_module_param(lin, "weight");
    float before[6];
    ck_assert_int_eq(ct_copy_to_host(w, before, sizeof before), CT_OK);
    ck_assert_int_eq(ct_module_to(lin, none), CT_E_DEVICE);
    assert_msg_has(&errs, name);
    assert_msg_has(&errs, "module_to");
    ck_assert(ct_device_eq(ct_module_device(lin), CT_DEVICE_CPU));
    ck_assert_ptr_eq(ct_module_param(lin, "weight"), w);
    float after[6];
    ck_assert_int_eq(ct_copy_to_host(w, after, sizeof after), CT_OK);
    ck_assert(memcmp(before, after, sizeof before) == 0);

    /* flat, with an optimizer: both stay, and a step still works */
    ct_optim *opt = ct_sgd_new(lin, (ct_sgd_config){.lr = 0.1, .momentum = 0.9});
    ck_assert_ptr_nonnull(opt);
    ct_tensor *flat = lin->flat_params;
    ck_assert_int_eq(ct_module_to(lin, none), CT_E_DEVICE);
    ck_assert_ptr_eq(lin->flat_params, flat);
    ck_assert(ct_device_eq(ct_tensor_device(flat), CT_DEVICE_CPU));
    ck_assert_int_eq(ct_optim_to(opt, none), CT_E_DEVICE);
    assert_msg_has(&errs, "optim_to");
    ck_assert_int_eq(ct_optim_step(opt), CT_OK);

    /* the allocator's statistics are zero on the CPU */
    ct_device_mem_stats ms = ct_device_mem_stats_of(ctx, CT_DEVICE_CPU);
    ck_assert_int_eq(ms.device_mallocs, 0);
    ck_assert_int_eq(ms.reserved_bytes, 0);

    ct_optim_free(opt);
    ct_module_free(lin);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- copies and fill --------------------------------------------------------------------------- */
START_TEST(test_copy_round_trips) {
    NEED_DEVICE();
    ct_ctx *ctx = tu_ctx(NULL);
    /* float32 and int64, exact */
    ct_tensor *x = TU_RAND(ctx, 2, -3, 3, 4, 5, 6);
    ct_tensor *xg = gpu(x);
    same_bits(ct_cpu(xg), x);
    int64_t iv[7] = {-5, 0, 1, 1LL << 40, -(1LL << 50), 7, 123456789012LL};
    ct_tensor *ix = ct_from_i64(ctx, iv, CT_SHAPE(7));
    ct_tensor *ixg = gpu(ix);
    int64_t back[7];
    ck_assert_int_eq(ct_copy_to_host(ixg, back, sizeof back), CT_OK);
    ck_assert(memcmp(iv, back, sizeof iv) == 0);
    /* ct_copy_from_host into device memory: in place, a new version; a strided device view is
     * refused */
    for (int i = 0; i < 7; i++) back[i] = iv[6 - i];
    const uint64_t v0 = ixg->storage->version;
    ck_assert_int_eq(ct_copy_from_host(ixg, back, sizeof back), CT_OK);
    ck_assert(ixg->storage->version > v0);
    int64_t again[7];
    ck_assert_int_eq(ct_copy_to_host(ixg, again, sizeof again), CT_OK);
    ck_assert(memcmp(again, back, sizeof back) == 0);
    float zeros[4 * 5 * 6] = {0};
    ck_assert_int_eq(ct_copy_from_host(ct_transpose(xg, 0, 2), zeros, sizeof zeros), CT_E_ARG);
    ck_assert_ptr_nonnull(strstr(ct_ctx_error(ctx), "must be contiguous"));
    ct_ctx_clear_error(ctx);
    ck_assert_int_eq((int64_t)ct_get(ixg, (const int64_t[]){3}), 1LL << 40);

    /* strided source on the CPU (ct_to copies it dense) and on the GPU (the copy kernel) */
    ct_tensor *xt = ct_transpose(x, 0, 2);
    same(ct_contiguous(xt), gpu(xt), 0, 0);
    same(ct_contiguous(xt), ct_contiguous(ct_transpose(xg, 0, 2)), 0, 0);
    ct_tensor *nar = ct_narrow(ct_permute(x, 2, 0, 1), 0, 1, 4);
    same(ct_contiguous(nar), ct_contiguous(ct_narrow(ct_permute(xg, 2, 0, 1), 0, 1, 4)), 0, 0);
    /* copy_to_host of a strided GPU view */
    float h[120];
    ck_assert_int_eq(ct_copy_to_host(ct_transpose(xg, 0, 2), h, sizeof h), CT_OK);
    tu_assert_close(ct_contiguous(xt), h, 0, 0);
    /* int64 strided */
    ct_tensor *i2 = ct_from_i64(ctx, (const int64_t[]){1, 2, 3, 4, 5, 6}, CT_SHAPE(2, 3));
    ct_tensor *i2t = ct_contiguous(ct_transpose(gpu(i2), 0, 1));
    int64_t ib[6];
    ck_assert_int_eq(ct_copy_to_host(i2t, ib, sizeof ib), CT_OK);
    const int64_t iw[6] = {1, 4, 2, 5, 3, 6};
    ck_assert(memcmp(ib, iw, sizeof iw) == 0);

    /* both sides strided: into a narrowed, transposed GPU view */
    ct_tensor *dst_c = ct_zeros(ctx, CT_SHAPE(6, 8));
    ct_tensor *dst_g = gpu(dst_c);
    ct_tensor *src = TU_RAND(ctx, 3, -1, 1, 4, 3);          /* -> dst[1:4, 2:6]^T */
    ck_assert_int_eq(ct_inplace_copy(ct_transpose(ct_narrow(ct_narrow(dst_c, 0, 1, 3), 1, 2, 4), 0, 1),
                                     src), CT_OK);
    ck_assert_int_eq(ct_inplace_copy(ct_transpose(ct_narrow(ct_narrow(dst_g, 0, 1, 3), 1, 2, 4), 0, 1),
                                     gpu(ct_transpose(ct_contiguous(ct_transpose(src, 0, 1)), 0, 1))),
                     CT_OK);
    same(dst_c, dst_g, 0, 0);

    /* 8 dims, permuted */
    ct_tensor *big = TU_RAND(ctx, 4, -1, 1, 2, 3, 2, 1, 3, 2, 2, 3);
    ct_tensor *perm_c = ct_contiguous(ct_permute(big, 7, 0, 5, 2, 4, 1, 3, 6));
    same(perm_c, ct_contiguous(ct_permute(gpu(big), 7, 0, 5, 2, 4, 1, 3, 6)), 0, 0);
    /* empty tensors */
    ct_tensor *e = ct_zeros(ctx, CT_SHAPE(0, 3));
    ct_tensor *eg = gpu(e);
    ck_assert_int_eq(ct_numel(eg), 0);
    ck_assert_int_eq(ct_numel(ct_cpu(eg)), 0);
    ck_assert_int_eq(ct_ctx_status(ctx), CT_OK);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_fill) {
    NEED_DEVICE();
    ct_ctx *ctx = tu_ctx(NULL);
    ct_tensor *c = TU_RAND(ctx, 5, -1, 1, 5, 7);
    ct_tensor *g = gpu(c);
    ck_assert_int_eq(ct_inplace_fill(c, 2.5f), CT_OK);
    ck_assert_int_eq(ct_inplace_fill(g, 2.5f), CT_OK);
    same(c, g, 0, 0);
    ck_assert_int_eq(ct_inplace_fill(ct_narrow(ct_transpose(c, 0, 1), 0, 2, 3), -0.0f), CT_OK);
    ck_assert_int_eq(ct_inplace_fill(ct_narrow(ct_transpose(g, 0, 1), 0, 2, 3), -0.0f), CT_OK);
    same(c, g, 0, 0);
    ck_assert_int_eq(ct_inplace_fill(g, 0.0f), CT_OK);
    ck_assert_int_eq(ct_inplace_fill(c, 0.0f), CT_OK);
    same_bits(c, g);
    /* int64 through the kernel table */
    ct_tensor *ic = ct_from_i64(ctx, (const int64_t[]){1, 2, 3, 4, 5, 6}, CT_SHAPE(2, 3));
    ct_tensor *ig = gpu(ic);
    ig->storage->backend->fill(ig, -7.0);
    ct_tensor *col = ct_select(ig, 1, 1);
    col->storage->backend->fill(col, 9.0);
    int64_t ib[6];
    ck_assert_int_eq(ct_copy_to_host(ig, ib, sizeof ib), CT_OK);
    const int64_t iw[6] = {-7, 9, -7, -7, 9, -7};
    ck_assert(memcmp(ib, iw, sizeof iw) == 0);
    ck_assert_int_eq(ct_ctx_status(ctx), CT_OK);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- element-wise -------------------------------------------------------------------------------- */
typedef ct_tensor *(*binfn)(ct_src, ct_tensor *, ct_tensor *);

START_TEST(test_binary_broadcast) {
    NEED_DEVICE();
    ct_ctx *ctx = tu_ctx(NULL);
    const binfn fns[] = {ct_add_at, ct_sub_at, ct_mul_at, ct_div_at, ct_pow_at};
    const char *names[] = {"add", "sub", "mul", "div", "pow"};
    for (int f = 0; f < 5; f++) {
        bool pw = f == 4;
        /* [3, 1, 5] with [4, 5]; a scalar; a transposed operand */
        ct_tensor *a = TU_RAND(ctx, 10 + f, pw ? 0.1f : -2, 2, 3, 1, 5);
        ct_tensor *b = TU_RAND(ctx, 20 + f, pw ? -2 : 0.5f, 2, 4, 5);
        ct_tensor *s = ct_scalar(ctx, pw ? 1.5f : 0.75f);
        ct_tensor *t = ct_transpose(TU_RAND(ctx, 30 + f, 0.5f, 2, 5, 4), 0, 1);   /* [4, 5] strided */
        double tol = pw ? 1e-5 : 1e-6;
        same(fns[f](CT_SRC, a, b), fns[f](CT_SRC, gpu(a), gpu(b)), tol, tol);
        same(fns[f](CT_SRC, a, s), fns[f](CT_SRC, gpu(a), gpu(s)), tol, tol);
        same(fns[f](CT_SRC, t, a), fns[f](CT_SRC, gpu(t), gpu(a)), tol, tol);
        ct_tensor *tg = ct_transpose(gpu(ct_contiguous(ct_transpose(t, 0, 1))), 0, 1);  /* strided on the GPU */
        same(fns[f](CT_SRC, t, b), fns[f](CT_SRC, tg, gpu(b)), tol, tol);
        ck_assert_msg(ct_ctx_status(ctx) == CT_OK, "%s: %s", names[f], ct_ctx_error(ctx));
    }
    /* edge values: division by zero, pow's special cases */
    const float xa[6] = {1, -1, 0, -8, 0, 2}, xb[6] = {0, 0, 0, 1.0f / 3, 0, -1};
    ct_tensor *a = ct_from_f32(ctx, xa, CT_SHAPE(6)), *b = ct_from_f32(ctx, xb, CT_SHAPE(6));
    ct_tensor *dc = ct_div(a, b), *dg = ct_cpu(ct_div(gpu(a), gpu(b)));
    ct_tensor *pc = ct_pow(a, b), *pg = ct_cpu(ct_pow(gpu(a), gpu(b)));
    for (int64_t i = 0; i < 6; i++) {
        double u = ct_get(dc, &i), v = ct_get(dg, &i);
        ck_assert_msg((isnan(u) && isnan(v)) || u == v, "div %lld: %g vs %g", (long long)i, u, v);
        u = ct_get(pc, &i);
        v = ct_get(pg, &i);
        ck_assert_msg((isnan(u) && isnan(v)) || fabs(u - v) <= 1e-6 * fabs(u), "pow %lld: %g vs %g",
                      (long long)i, u, v);
    }
    ct_ctx_free(ctx);
}
END_TEST

typedef struct unop_case {
    ct_unop op;
    float lo, hi, p0, p1;
    double atol, rtol;
} unop_case;

static const unop_case UNOPS[] = {
    {CT_UN_NEG, -3, 3, 0, 0, 0, 0},
    {CT_UN_EXP, -5, 5, 0, 0, 1e-6, 1e-6},
    {CT_UN_LOG, 0.01f, 10, 0, 0, 1e-6, 1e-6},
    {CT_UN_SQRT, 0, 10, 0, 0, 1e-6, 1e-6},
    {CT_UN_TANH, -4, 4, 0, 0, 1e-6, 1e-6},
    {CT_UN_SIGMOID, -30, 30, 0, 0, 1e-6, 1e-6},
    {CT_UN_RELU, -2, 2, 0, 0, 0, 0},
    {CT_UN_CLAMP, -2, 2, -0.5f, 0.75f, 0, 0},
    {CT_UN_ADD_SCALAR, -2, 2, 1.25f, 0, 0, 0},
    {CT_UN_MUL_SCALAR, -2, 2, -3.5f, 0, 0, 0},
    {CT_UN_POW_SCALAR, 0.1f, 3, 2.5f, 0, 1e-5, 1e-5},
    {CT_UN_POW_SCALAR, -3, 3, 3.0f, 0, 1e-5, 1e-5},      /* negative bases, integer exponent */
    {CT_UN_POW_SCALAR, -3, 3, 0.0f, 0, 0, 0},            /* p0 = 0: gradient 0 */
    {CT_UN_RSUB_SCALAR, -2, 2, 0.5f, 0, 0, 0},
};

/* every unop and its gradient through the kernel table, dense and strided */
START_TEST(test_unary_and_grad) {
    NEED_DEVICE();
    ct_ctx *ctx = tu_ctx(NULL);
    for (size_t c = 0; c < sizeof UNOPS / sizeof UNOPS[0]; c++) {
        const unop_case *u = &UNOPS[c];
        ct_tensor *a = TU_RAND(ctx, 100 + c, u->lo, u->hi, 6, 7);
        if (u->op == CT_UN_RELU || u->op == CT_UN_CLAMP) {     /* exact edges */
            float *d = ct_data_f32(a);
            d[0] = 0.0f;
            d[1] = u->p0;
            d[2] = u->p1;
        }
        ct_tensor *go = TU_RAND(ctx, 200 + c, -1, 1, 6, 7);
        for (int strided = 0; strided < 2; strided++) {
            ct_tensor *ac = strided ? ct_transpose(a, 0, 1) : a;
            ct_tensor *goc = strided ? ct_transpose(go, 0, 1) : go;
            ct_tensor *ag = strided ? ct_transpose(gpu(a), 0, 1) : gpu(a);
            ct_tensor *gog = strided ? ct_transpose(gpu(go), 0, 1) : gpu(go);
            ct_tensor *yc = ct__new(ctx, CT_F32, CT_DEVICE_CPU, ac->ndim, ac->shape);
            ct_tensor *yg = ct__new(ctx, CT_F32, GPU, ac->ndim, ac->shape);
            ct_cpu_backend.unary(u->op, yc, ac, u->p0, u->p1);
            yg->storage->backend->unary(u->op, yg, ag, u->p0, u->p1);
            same(yc, yg, u->atol, u->rtol);
            ct_tensor *gc = ct__new(ctx, CT_F32, CT_DEVICE_CPU, ac->ndim, ac->shape);
            ct_tensor *gg = ct__new(ctx, CT_F32, GPU, ac->ndim, ac->shape);
            ct_cpu_backend.unary_grad(u->op, gc, goc, ac, yc, u->p0, u->p1);
            gg->storage->backend->unary_grad(u->op, gg, gog, ag, yg, u->p0, u->p1);
            same(gc, gg, u->atol * 10, u->rtol * 10);
        }
        ck_assert_msg(ct_ctx_status(ctx) == CT_OK, "unop %d: %s", (int)u->op, ct_ctx_error(ctx));
    }
    /* in place (out aliases a), as ct_inplace_scale does */
    ct_tensor *a = TU_RAND(ctx, 7, -1, 1, 33);
    ct_tensor *ag = gpu(a);
    ck_assert_int_eq(ct_inplace_scale(a, 3.0f), CT_OK);
    ck_assert_int_eq(ct_inplace_scale(ag, 3.0f), CT_OK);
    same(a, ag, 0, 0);
    /* the ops front end, with autograd on the GPU (explicit gradient: see the report) */
    ct_tensor *x = TU_RAND(ctx, 8, 0.2f, 2, 3, 4);
    ct_set_requires_grad(x, true);
    ct_tensor *xg = ct_detach(gpu(x));
    ct_set_requires_grad(xg, true);
    ct_tensor *yc = ct_tanh(ct_log(ct_sigmoid(x)));
    ct_tensor *yg = ct_tanh(ct_log(ct_sigmoid(xg)));
    same(yc, yg, 1e-6, 1e-5);
    ct_tensor *seed = TU_RAND(ctx, 9, -1, 1, 3, 4);
    ck_assert_int_eq(ct_backward_ex(yc, seed, false), CT_OK);
    ck_assert_int_eq(ct_backward_ex(yg, gpu(seed), false), CT_OK);
    same(ct_grad(x), ct_grad(xg), 1e-6, 1e-5);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_axpy) {
    NEED_DEVICE();
    ct_ctx *ctx = tu_ctx(NULL);
    ct_tensor *t = TU_RAND(ctx, 11, -1, 1, 5, 6);
    ct_tensor *x = TU_RAND(ctx, 12, -1, 1, 5, 6);
    ct_tensor *tg = gpu(t);
    ck_assert_int_eq(ct_inplace_axpy(t, -0.3f, x), CT_OK);
    ck_assert_int_eq(ct_inplace_axpy(tg, -0.3f, gpu(x)), CT_OK);
    same(t, tg, 1e-7, 1e-6);
    /* strided destination and a broadcast (stride 0) source through the table */
    ct_tensor *row = TU_RAND(ctx, 13, -1, 1, 1, 5);
    ct_tensor *tv = ct_transpose(t, 0, 1), *tgv = ct_transpose(tg, 0, 1);        /* [6, 5] */
    ct_tensor *rc = ct_expand(row, 6, 5), *rg = ct_expand(gpu(row), 6, 5);
    ct_cpu_backend.axpy(tv, 2.0f, rc);
    tgv->storage->backend->axpy(tgv, 2.0f, rg);
    same(t, tg, 1e-6, 1e-6);
    ck_assert_int_eq(ct_ctx_status(ctx), CT_OK);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- GEMM ------------------------------------------------------------------------------------------ */
START_TEST(test_gemm) {
    NEED_DEVICE();
    ct_ctx *ctx = tu_ctx(NULL);
    const double tol = 1e-5;
    /* all four transposes (transpose views reach BLAS as flags) */
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            ct_tensor *a = ta ? TU_RAND(ctx, 40, -1, 1, 7, 5) : TU_RAND(ctx, 41, -1, 1, 5, 7);
            ct_tensor *b = tb ? TU_RAND(ctx, 42, -1, 1, 3, 7) : TU_RAND(ctx, 43, -1, 1, 7, 3);
            ct_tensor *ac = ta ? ct_transpose(a, 0, 1) : a, *bc = tb ? ct_transpose(b, 0, 1) : b;
            ct_tensor *ag = ta ? ct_transpose(gpu(a), 0, 1) : gpu(a);
            ct_tensor *bg = tb ? ct_transpose(gpu(b), 0, 1) : gpu(b);
            same(ct_matmul(ac, bc), ct_matmul(ag, bg), tol, tol);
        }
    /* batched, broadcast over the batch (stride 0), and batch dims that broadcast both ways */
    ct_tensor *a = TU_RAND(ctx, 44, -1, 1, 2, 3, 4, 5), *b = TU_RAND(ctx, 45, -1, 1, 2, 3, 5, 6);
    same(ct_matmul(a, b), ct_matmul(gpu(a), gpu(b)), tol, tol);
    ct_tensor *w = TU_RAND(ctx, 46, -1, 1, 5, 6);
    same(ct_matmul(a, w), ct_matmul(gpu(a), gpu(w)), tol, tol);
    ct_tensor *x2 = TU_RAND(ctx, 47, -1, 1, 4, 5);
    same(ct_matmul(x2, b), ct_matmul(gpu(x2), gpu(b)), tol, tol);
    ct_tensor *p = TU_RAND(ctx, 48, -1, 1, 3, 1, 4, 5), *q = TU_RAND(ctx, 49, -1, 1, 2, 5, 2);
    same(ct_matmul(p, q), ct_matmul(gpu(p), gpu(q)), tol, tol);
    /* larger, with a gradient through matmul */
    ct_tensor *l = TU_RAND(ctx, 50, -1, 1, 65, 129), *r = TU_RAND(ctx, 51, -1, 1, 129, 33);
    same(ct_matmul(l, r), ct_matmul(gpu(l), gpu(r)), 1e-4, 1e-4);
    /* the table directly: alpha, beta, lda > cols, and k = 0 */
    ct_tensor *A = TU_RAND(ctx, 52, -1, 1, 4, 8), *B = TU_RAND(ctx, 53, -1, 1, 3, 6);
    ct_tensor *Cc = TU_RAND(ctx, 54, -1, 1, 4, 3), *Cg = gpu(Cc);
    ct_tensor *Ag = gpu(A), *Bg = gpu(B);
    /* C = 0.5 * A[:, :6] @ B^T + 2 C */
    ct_cpu_backend.gemm(false, true, 4, 3, 6, 0.5f, ct_data(A), 8, 0, ct_data(B), 6, 0, 2.0f,
                        ct_data(Cc), 3, 0, 1);
    Cg->storage->backend->gemm(false, true, 4, 3, 6, 0.5f, ct_data(Ag), 8, 0, ct_data(Bg), 6, 0, 2.0f,
                               ct_data(Cg), 3, 0, 1);
    same(Cc, Cg, tol, tol);
    Cg->storage->backend->gemm(false, false, 4, 3, 0, 1.0f, ct_data(Ag), 8, 0, ct_data(Bg), 6, 0, 0.0f,
                               ct_data(Cg), 3, 0, 1);
    same(ct_zeros(ctx, CT_SHAPE(4, 3)), Cg, 0, 0);
    ck_assert_int_eq(ct_ctx_status(ctx), CT_OK);
    ct_ctx_free(ctx);
}
END_TEST

/* TF32: refused for the CPU and for a device that is not there (everywhere); on a device,
 * a large product with TF32 on stays within TF32's error of the exact one, and off again is
 * float32-exact (within 1e-4) once more. */
START_TEST(test_tf32_switch) {
    char why[256];
    ck_assert_int_eq(ct_device_set_tf32(CT_DEVICE_CPU, true, why, sizeof why), CT_E_ARG);
    ck_assert_ptr_nonnull(strstr(why, "CUDA math mode"));
    ck_assert_int_eq(ct_device_set_tf32((ct_device){CT_CUDA, 1000}, true, why, sizeof why), CT_E_DEVICE);
    ck_assert_ptr_nonnull(strstr(why, "cuda:1000"));
    NEED_DEVICE();
    ct_ctx *ctx = tu_ctx(NULL);
    ct_tensor *a = TU_RAND(ctx, 60, -1, 1, 256, 512), *b = TU_RAND(ctx, 61, -1, 1, 512, 128);
    ct_tensor *want = ct_matmul(a, b);
    ck_assert_int_eq(ct_device_set_tf32(GPU, true, why, sizeof why), CT_OK);
    same(want, ct_matmul(gpu(a), gpu(b)), 5e-2, 1e-2);
    ck_assert_int_eq(ct_device_set_tf32(GPU, false, why, sizeof why), CT_OK);
    same(want, ct_matmul(gpu(a), gpu(b)), 1e-4, 1e-4);
    ck_assert_int_eq(ct_ctx_status(ctx), CT_OK);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- bf16 mixed precision (ct_device_set_bf16) ------------------------------------------------ */
/* x rounded to bfloat16 (round to nearest, ties to even; NaN kept), as a float */
static float bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return x;                 /* NaN */
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&x, &u, sizeof x);
    return x;
}
static float bits_f(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* The host rounding the GPU tests compare against (runs everywhere). */
START_TEST(test_bf16_round_reference) {
    ck_assert(bf16_round(1.0f) == 1.0f);
    ck_assert(bf16_round(-2.5f) == -2.5f);
    /* 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1); 1 + 3 * 2^-8 goes up */
    ck_assert(bf16_round(1.0f + 0x1p-8f) == 1.0f);
    ck_assert(bf16_round(1.0f + 3 * 0x1p-8f) == 1.0f + 0x1p-6f);
    ck_assert(bf16_round(1.0f + 0x1p-8f + 0x1p-20f) == 1.0f + 0x1p-7f);    /* above half: up */
    ck_assert(bf16_round(1.0f + 0x1p-7f + 0x1p-8f) == 1.0f + 0x1p-6f);     /* tie, odd: up */
    ck_assert(bf16_round(bits_f(0x3f80ffffu)) == bits_f(0x3f810000u));
    ck_assert(bf16_round(bits_f(0x7f7fffffu)) == INFINITY);               /* FLT_MAX: inf */
    ck_assert(bf16_round(-INFINITY) == -INFINITY);
    ck_assert(isnan(bf16_round(NAN)));
    ck_assert(bf16_round(bits_f(0x00000001u)) == 0.0f);                   /* tiny subnormal */
    ck_assert(bf16_round(bits_f(0x00018000u)) == bits_f(0x00020000u));    /* subnormal tie */
}
END_TEST

/* The switch: refused for the CPU (CT_E_ARG, saying why) and for a device that is not there
 * (CT_E_DEVICE naming it): cuda:1000 and cuda:<count>, on every machine; the getters answer
 * false for them. */
START_TEST(test_bf16_switch_errors) {
    char why[256] = "x";
    ck_assert_int_eq(ct_device_set_bf16(CT_DEVICE_CPU, true, why, sizeof why), CT_E_ARG);
    ck_assert_msg(strstr(why, "CUDA mode") && strstr(why, "float32"), "why: %s", why);
    ck_assert_int_eq(ct_device_set_bf16(CT_DEVICE_CPU, false, NULL, 0), CT_E_ARG);
    ck_assert_int_eq(ct_device_set_bf16((ct_device){CT_CUDA, 1000}, true, why, sizeof why), CT_E_DEVICE);
    ck_assert_msg(strstr(why, "cuda:1000") != NULL, "why: %s", why);
    int count = ct_cuda_device_count(NULL, 0);
    ct_device none = {CT_CUDA, count};
    char name[24];
    snprintf(name, sizeof name, "cuda:%d", count);
    ck_assert_int_eq(ct_device_set_bf16(none, true, why, sizeof why), CT_E_DEVICE);
    ck_assert_msg(strstr(why, name) != NULL, "why: %s", why);
    if (!ct_cuda_compiled()) ck_assert_msg(strstr(why, "make CUDA=1") != NULL, "why: %s", why);
    ck_assert(!ct_device_bf16(CT_DEVICE_CPU));
    ck_assert(!ct_device_bf16(none));
    ck_assert(!ct_device_tf32(CT_DEVICE_CPU));
    ck_assert(!ct_device_tf32(none));
    if (count == 0) {
        /* cuda:0 itself is not there either */
        ck_assert_int_eq(ct_device_set_bf16(GPU, true, why, sizeof why), CT_E_DEVICE);
        ck_assert_msg(strstr(why, "cuda:0") != NULL, "why: %s", why);
        ck_assert(!ct_device_bf16(GPU));
    }
}
END_TEST

/* One checked product on the GPU: c = alpha op(a) op(b) + beta c0 (row-major, batch of
 * `batch`, sa / sb / sc element strides; ld: leading dims). want: the same product of the
 * bf16-rounded operands in double; scale: sum |alpha a b| + |beta c0| per element. */
typedef struct gemm_ref {
    double max_rel_bf;      /* max |got - want(rounded operands)| / scale */
    double max_rel_fp;      /* max |got - exact(float32 operands)| / scale */
} gemm_ref;

static gemm_ref check_gemm(ct_ctx *ctx, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                           float alpha, int64_t lda, int64_t sa, int64_t ldb, int64_t sb,
                           float beta, int64_t ldc, int64_t sc, int64_t batch, uint64_t seed) {
    const int64_t ra = ta ? k : m, rb = tb ? n : k;
    const int64_t na = (batch - 1) * sa + ra * lda, nb = (batch - 1) * sb + rb * ldb;
    const int64_t nc = (batch - 1) * sc + m * ldc;
    ct_tensor *A = TU_RAND(ctx, seed, -1, 1, na), *Bm = TU_RAND(ctx, seed + 1, -1, 1, nb);
    ct_tensor *C0 = TU_RAND(ctx, seed + 2, -1, 1, nc);
    ct_tensor *Ag = gpu(A), *Bg = gpu(Bm), *Cg = gpu(C0);
    Cg->storage->backend->gemm(ta, tb, m, n, k, alpha, ct_data(Ag), lda, sa, ct_data(Bg), ldb, sb,
                               beta, ct_data(Cg), ldc, sc, batch);
    ct_tensor *back = ct_cpu(Cg);
    ck_assert_msg(back != NULL, "gemm: %s", ct_ctx_error(ctx));
    const float *a = ct_data_f32(A), *b = ct_data_f32(Bm), *c0 = ct_data_f32(C0);
    const float *got = ct_data_f32(back);
    gemm_ref r = {0, 0};
    for (int64_t q = 0; q < batch; q++)
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double want = 0, exact = 0, scale = 0;
                for (int64_t p = 0; p < k; p++) {
                    float av = a[q * sa + (ta ? p * lda + i : i * lda + p)];
                    float bv = b[q * sb + (tb ? j * ldb + p : p * ldb + j)];
                    want += (double)bf16_round(av) * bf16_round(bv);
                    exact += (double)av * bv;
                    scale += fabs((double)av * bv);
                }
                const double cv = c0[q * sc + i * ldc + j];
                want = alpha * want + beta * cv;
                exact = alpha * exact + beta * cv;
                scale = fabs(alpha) * scale + fabs(beta * cv) + 1e-30;
                const double g = got[q * sc + i * ldc + j];
                const double e1 = fabs(g - want) / scale, e2 = fabs(g - exact) / scale;
                if (e1 > r.max_rel_bf) r.max_rel_bf = e1;
                if (e2 > r.max_rel_fp) r.max_rel_fp = e2;
            }
    /* the padding between C's rows is untouched */
    for (int64_t q = 0; q < batch; q++)
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = n; j < ldc && q * sc + i * ldc + j < nc; j++)
                if (sc >= m * ldc || q == batch - 1)
                    ck_assert_msg(got[q * sc + i * ldc + j] == c0[q * sc + i * ldc + j],
                                  "C's padding changed at batch %lld row %lld col %lld",
                                  (long long)q, (long long)i, (long long)j);
    return r;
}

/* bf16 on: a product equals the float32 product of the bf16-rounded operands up to float32
 * accumulation order (1e-5 of sum |a b|), and differs from the float32 one by what bf16
 * rounding makes (more than float32 could, at most 2^-7 of sum |a b|): plain, transposed,
 * strided (lda > columns), alpha/beta, batched, broadcast operands. */
START_TEST(test_bf16_gemm) {
    NEED_DEVICE();
    ct_ctx *ctx = tu_ctx(NULL);
    char why[256];
    ck_assert_int_eq(ct_device_set_bf16(GPU, true, why, sizeof why), CT_OK);
    ck_assert(ct_device_bf16(GPU));
    struct {
        bool ta, tb;
        int64_t m, n, k;
        float alpha, beta;
        int64_t lda, sa, ldb, sb, ldc, sc, batch;
    } cases[] = {
        {false, false, 48, 40, 256, 1.0f, 0.0f, 256, 0, 40, 0, 40, 0, 1},
        {true, false, 33, 17, 129, 1.0f, 0.0f, 33, 0, 17, 0, 17, 0, 1},
        {false, true, 20, 31, 70, 0.5f, 2.0f, 80, 0, 75, 0, 36, 0, 1},    /* strided, beta */
        {true, true, 9, 12, 300, -1.0f, 1.0f, 10, 0, 301, 0, 12, 0, 1},
        {false, false, 16, 24, 96, 1.0f, 0.0f, 96, 16 * 96, 24, 96 * 24, 24, 16 * 24, 5},
        {false, true, 16, 24, 96, 1.0f, 0.0f, 96, 16 * 96, 96, 0, 24, 16 * 24, 4}, /* B broadcast */
        {true, false, 8, 12, 64, 1.0f, 0.5f, 8, 0, 12, 64 * 12, 12, 8 * 12, 3},    /* A broadcast */
        {false, false, 7, 5, 40, 1.0f, 0.0f, 44, 7 * 44 + 3, 6, 40 * 6 + 1, 5, 7 * 5, 3}, /* odd */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const __typeof__(cases[0]) *c = &cases[i];
        gemm_ref r = check_gemm(ctx, c->ta, c->tb, c->m, c->n, c->k, c->alpha, c->lda, c->sa,
                                c->ldb, c->sb, c->beta, c->ldc, c->sc, c->batch, 70 + 3 * i);
        ck_assert_msg(r.max_rel_bf <= 1e-5, "case %zu: %.3g of sum|ab| from the product of the "
                      "rounded operands", i, r.max_rel_bf);
        ck_assert_msg(r.max_rel_fp > 2e-5 && r.max_rel_fp <= 0x1p-7,
                      "case %zu: %.3g of sum|ab| from the float32 product: not bf16's error", i,
                      r.max_rel_fp);
    }
    ck_assert_int_eq(ct_ctx_status(ctx), CT_OK);
    ct_ctx_free(ctx);
}
END_TEST

/* Off by default, and off again is bit for bit float32 once more; with TF32 also on, bf16
 * wins (the products still equal those of the rounded operands). ct_matmul through the op
 * layer, plain and batched with a broadcast weight. */
START_TEST(test_bf16_switch_round_trip) {
    NEED_DEVICE();
    ct_ctx *ctx = tu_ctx(NULL);
    char why[256];
    ck_assert(!ct_device_bf16(GPU));
    ck_assert(!ct_device_tf32(GPU));
    ct_tensor *a = TU_RAND(ctx, 80, -1, 1, 6, 64, 200), *b = TU_RAND(ctx, 81, -1, 1, 200, 48);
    ct_tensor *ag = gpu(a), *bg = gpu(b);
    ct_tensor *before = ct_matmul(ag, bg), *before2 = ct_matmul(ct_select(ag, 0, 1), bg);
    ck_assert_ptr_nonnull(before);
    /* the product of the rounded operands, on the CPU */
    ct_tensor *ar = ct_contiguous(ct_mul_scalar(a, 1.0f)), *br = ct_contiguous(ct_mul_scalar(b, 1.0f));
    for (int64_t i = 0; i < ct_numel(ar); i++) ct_data_f32(ar)[i] = bf16_round(ct_data_f32(ar)[i]);
    for (int64_t i = 0; i < ct_numel(br); i++) ct_data_f32(br)[i] = bf16_round(ct_data_f32(br)[i]);
    ct_tensor *want = ct_matmul(ar, br);
    ck_assert_int_eq(ct_device_set_bf16(GPU, true, why, sizeof why), CT_OK);
    ct_tensor *on = ct_matmul(ag, bg);
    same(want, on, 2e-4, 1e-5);
    ck_assert_int_eq(ct_device_set_tf32(GPU, true, why, sizeof why), CT_OK);
    ck_assert(ct_device_tf32(GPU) && ct_device_bf16(GPU));
    same(want, ct_matmul(ag, bg), 2e-4, 1e-5);
    ck_assert_int_eq(ct_device_set_tf32(GPU, false, why, sizeof why), CT_OK);
    ck_assert(!ct_device_tf32(GPU));
    /* bf16 really changed the result */
    ct_tensor *d = ct_cpu(ct_sub(on, before));
    float mx = 0;
    for (int64_t i = 0; i < ct_numel(d); i++) mx = fmaxf(mx, fabsf(ct_data_f32(d)[i]));
    ck_assert_msg(mx > 1e-4f, "bf16 changed the product by only %g", (double)mx);
    ck_assert_int_eq(ct_device_set_bf16(GPU, false, why, sizeof why), CT_OK);
    ck_assert(!ct_device_bf16(GPU));
    same_bits(before, ct_matmul(ag, bg));
    same_bits(before2, ct_matmul(ct_select(ag, 0, 1), bg));
    ck_assert_int_eq(ct_ctx_status(ctx), CT_OK);
    ct_ctx_free(ctx);
}
END_TEST

/* A linear layer forward and backward (batched matmul with a broadcast weight; the gradient's
 * transposed products) in bf16 stays within 1e-2 of the CPU's float32; the parameters and
 * gradients are float32 tensors. */
START_TEST(test_bf16_linear_grad) {
    NEED_DEVICE();
    ct_ctx *ctx = tu_ctx(NULL);
    char why[256];
    ct_rng r1, r2;
    ct_rng_seed(&r1, 90);
    ct_rng_seed(&r2, 90);
    ct_module *lc = ct_linear_new(ctx, &r1, 96, 40, true), *lg = ct_linear_new(ctx, &r2, 96, 40, true);
    ck_assert_int_eq(ct_module_to(lg, GPU), CT_OK);
    ct_tensor *x = TU_RAND(ctx, 91, -1, 1, 3, 20, 96), *w = TU_RAND(ctx, 92, -1, 1, 3, 20, 40);
    ct_tensor *xg = gpu(x);
    ck_assert_int_eq(ct_set_requires_grad(x, true), CT_OK);
    ck_assert_int_eq(ct_set_requires_grad(xg, true), CT_OK);
    ck_assert_int_eq(ct_device_set_bf16(GPU, true, why, sizeof why), CT_OK);
    ct_tensor *yc = ct_linear_forward_at(CT_SRC, lc, x), *yg = ct_linear_forward_at(CT_SRC, lg, xg);
    same(yc, yg, 1e-2, 1e-2);
    ck_assert_int_eq(ct_backward(ct_sum_all(ct_mul(yc, w))), CT_OK);
    ck_assert_int_eq(ct_backward(ct_sum_all(ct_mul(yg, gpu(w)))), CT_OK);
    same(ct_grad(x), ct_grad(xg), 1e-2, 1e-2);
    ct_tensor *wg = ct_module_param(lg, "weight");
    ck_assert(wg->dtype == CT_F32 && ct_grad(wg)->dtype == CT_F32);
    same(ct_grad(ct_module_param(lc, "weight")), ct_grad(wg), 5e-2, 1e-2);
    same(ct_grad(ct_module_param(lc, "bias")), ct_grad(ct_module_param(lg, "bias")), 1e-4, 1e-5);
    ck_assert_int_eq(ct_device_set_bf16(GPU, false, why, sizeof why), CT_OK);
    ck_assert_int_eq(ct_ctx_status(ctx), CT_OK);
    ct_module_free(lc);
    ct_module_free(lg);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- sums --------------------------------------------------------------------------------------- */
START_TEST(test_sum_dims) {
    NEED_DEVICE();
    ct_ctx *ctx = tu_ctx(NULL);
    ct_tensor *x = TU_RAND(ctx, 60, -1, 1, 6, 50, 7);
    ct_tensor *xg = gpu(x);
    const int d0[] = {0}, d1[] = {1}, d2[] = {2}, d02[] = {0, 2}, d01[] = {0, 1}, d12[] = {1, 2};
    const int *dims[] = {d0, d1, d2, d02, d01, d12};
    const int nd[] = {1, 1, 1, 2, 2, 2};
    for (int i = 0; i < 6; i++)
        for (int keep = 0; keep < 2; keep++)
            same(ct_sum_dims(x, nd[i], dims[i], keep), ct_sum_dims(xg, nd[i], dims[i], keep), 1e-5, 1e-5);
    same(ct_sum_all(x), ct_sum_all(xg), 1e-4, 1e-5);
    same(ct_mean(x, 1, false), ct_mean(xg, 1, false), 1e-6, 1e-5);
    /* strided input */
    ct_tensor *xt = ct_transpose(x, 0, 2), *xgt = ct_transpose(xg, 0, 2);
    same(ct_sum(xt, 2, false), ct_sum(xgt, 2, false), 1e-5, 1e-5);
    same(ct_sum(xt, 0, true), ct_sum(xgt, 0, true), 1e-5, 1e-5);
    /* the row kernel (many outputs, each a dense reduced run), the chunked kernel for few
     * outputs of long rows and of long columns, and a bias-gradient shape */
    ct_tensor *rows = TU_RAND(ctx, 61, -1, 1, 4096, 64);
    same(ct_sum(rows, 1, false), ct_sum(gpu(rows), 1, false), 1e-5, 1e-5);
    ct_tensor *long_rows = TU_RAND(ctx, 67, -1, 1, 3, 5000);
    same(ct_sum(long_rows, 1, false), ct_sum(gpu(long_rows), 1, false), 1e-4, 1e-5);
    ct_tensor *cols = TU_RAND(ctx, 62, -1, 1, 20000, 3);
    same(ct_sum(cols, 0, false), ct_sum(gpu(cols), 0, false), 1e-3, 1e-5);
    ct_tensor *bias = TU_RAND(ctx, 63, -1, 1, 256, 40, 64);
    same(ct_sum_dims(bias, 2, d01, false), ct_sum_dims(gpu(bias), 2, d01, false), 1e-3, 1e-5);
    /* deterministic: the same sum twice is the same bits */
    ct_tensor *bg = gpu(bias);
    same_bits(ct_sum_dims(bg, 2, d01, false), ct_sum_dims(bg, 2, d01, false));
    same_bits(ct_sum_all(bg), ct_sum_all(bg));
    /* empty: sums of nothing are 0 */
    ct_tensor *e = ct_zeros(ctx, CT_SHAPE(0, 4));
    same(ct_sum(e, 0, false), ct_sum(gpu(e), 0, false), 0, 0);
    /* the gradient of sum (a broadcast) and of a broadcasting add (sum_to) */
    ct_tensor *v = TU_RAND(ctx, 64, -1, 1, 1, 7);
    ct_set_requires_grad(v, true);
    ct_tensor *vg = ct_detach(gpu(v));
    ct_set_requires_grad(vg, true);
    ct_tensor *seed = TU_RAND(ctx, 65, -1, 1, 6, 7);
    ct_tensor *m = TU_RAND(ctx, 66, -1, 1, 6, 7);
    ck_assert_int_eq(ct_backward_ex(ct_add(m, v), seed, false), CT_OK);
    ck_assert_int_eq(ct_backward_ex(ct_add(gpu(m), vg), gpu(seed), false), CT_OK);
    same(ct_grad(v), ct_grad(vg), 1e-6, 1e-6);
    ck_assert_int_eq(ct_ctx_status(ctx), CT_OK);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- ct_to ----------------------------------------------------------------------------------- */
START_TEST(test_to_forward_backward) {
    NEED_DEVICE();
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *x = TU_RAND(ctx, 70, -1, 1, 3, 4);
    ct_set_requires_grad(x, true);
    ct_tensor *w = TU_RAND(ctx, 71, -1, 1, 3, 4);
    ct_tensor *xg = ct_to(x, GPU);
    ck_assert_ptr_nonnull(xg);
    ck_assert_str_eq(ct_grad_fn_name(xg), "to");
    ck_assert(ct_requires_grad(xg));
    /* same device: the tensor itself, as ops do */
    ck_assert_ptr_eq(ct_to(xg, GPU), xg);
    /* loss on the CPU again: both directions of the copy are differentiated */
    ct_tensor *loss = ct_sum_all(ct_cpu(ct_mul(xg, gpu(w))));
    ck_assert(ct_device_eq(ct_tensor_device(loss), CT_DEVICE_CPU));
    ck_assert_int_eq(ct_backward(loss), CT_OK);
    ck_assert(ct_device_eq(ct_tensor_device(ct_grad(x)), CT_DEVICE_CPU));
    tu_assert_tensors_close(ct_grad(x), w, 1e-7, 0);
    /* a GPU leaf: its gradient stays on the GPU */
    ct_tensor *leaf = ct_detach(gpu(x));
    ct_set_requires_grad(leaf, true);
    ck_assert_int_eq(ct_backward(ct_sum_all(ct_cpu(ct_mul(leaf, gpu(w))))), CT_OK);
    ck_assert(ct_device_eq(ct_tensor_device(ct_grad(leaf)), GPU));
    same(w, ct_grad(leaf), 1e-7, 0);
    /* mixing devices in one op names both devices and the call site */
    ck_assert_ptr_null(ct_add(x, xg));
    ck_assert_int_eq(ct_ctx_status(ctx), CT_E_DEVICE);
    assert_msg_has(&errs, "cpu");
    assert_msg_has(&errs, "cuda:0");
    assert_msg_has(&errs, "test_cuda.c");
    ct_ctx_free(ctx);
}
END_TEST

/* ---- modules and optimizers -------------------------------------------------------------------- */
static ct_module *small_model(ct_ctx *ctx, ct_rng *rng) {
    ct_module *root = ct_module_new(ctx, "Model", 0);
    ck_assert_int_eq(ct_module_add_child(root, "a", ct_linear_new(ctx, rng, 5, 4, true)), CT_OK);
    ck_assert_int_eq(ct_module_add_child(root, "b", ct_linear_new(ctx, rng, 4, 3, false)), CT_OK);
    return root;
}

static void host_params(ct_module *m, float *out) {
    int n = ct_module_param_count(m);
    for (int i = 0; i < n; i++) {
        ct_tensor *p = ct_module_param_at(m, i, NULL, 0);
        size_t nb = sizeof(float) * (size_t)ct_numel(p);
        ck_assert_int_eq(ct_copy_to_host(p, out, nb), CT_OK);
        out += ct_numel(p);
    }
}

START_TEST(test_module_optim_round_trip) {
    NEED_DEVICE();
    ct_ctx *ctx = tu_ctx(NULL);
    ct_rng rng;
    ct_rng_seed(&rng, 5);
    /* before flattening: each parameter moves on its own */
    ct_module *m = small_model(ctx, &rng);
    int64_t np = ct_module_num_params(m);
    float *p0 = malloc(sizeof(float) * (size_t)np), *p1 = malloc(sizeof(float) * (size_t)np);
    host_params(m, p0);
    ct_tensor *w = ct_module_param(m, "a.weight");
    ck_assert_int_eq(ct_module_to(m, GPU), CT_OK);
    ck_assert(ct_device_eq(ct_module_device(m), GPU));
    ck_assert_ptr_eq(ct_module_param(m, "a.weight"), w);       /* identity kept */
    ck_assert(ct_device_eq(ct_tensor_device(w), GPU));
    host_params(m, p1);
    ck_assert(memcmp(p0, p1, sizeof(float) * (size_t)np) == 0);
    /* flattening on the GPU; then back to the CPU and again */
    ck_assert_int_eq(ct_module_flatten(m), CT_OK);
    ck_assert(ct_device_eq(ct_tensor_device(m->flat_params), GPU));
    ck_assert_int_eq(ct_module_to(m, CT_DEVICE_CPU), CT_OK);
    ct_tensor *flat = m->flat_params;
    ck_assert(ct_device_eq(ct_tensor_device(flat), CT_DEVICE_CPU));
    ck_assert(ct_device_eq(ct_tensor_device(ct_grad(w)), CT_DEVICE_CPU));
    host_params(m, p1);
    ck_assert(memcmp(p0, p1, sizeof(float) * (size_t)np) == 0);

    /* one training step on each device from the same start: the same parameters */
    ct_module *mc = m;
    ct_optim *oc = ct_adam_new(mc, ct_adam_defaults(1e-2));
    ck_assert_ptr_nonnull(oc);
    ct_tensor *x = TU_RAND(ctx, 80, -1, 1, 8, 5);
    ct_tensor *target = TU_RAND(ctx, 81, -1, 1, 8, 3);
    for (int step = 0; step < 2; step++) {
        ct_scope_begin(ctx);
        ct_optim_zero_grad(oc);
        ct_tensor *h = ct_module_forward(ct_module_child(mc, "b"),
                                         ct_module_forward(ct_module_child(mc, "a"), x, NULL), NULL);
        ct_tensor *d = ct_sub(h, target);
        ck_assert_int_eq(ct_backward(ct_sum_all(ct_mul(d, d))), CT_OK);
        ck_assert_int_eq(ct_optim_step(oc), CT_OK);
        ct_scope_end(ctx);
    }
    int n_state = ct_optim_state_count(oc);
    ck_assert_int_eq(n_state, 2);
    float *s0 = malloc(sizeof(float) * (size_t)np), *s1 = malloc(sizeof(float) * (size_t)np);
    ck_assert_int_eq(ct_optim_get_state(oc, 1, s0, np), CT_OK);
    /* module and optimizer to the GPU (either order), the state intact */
    ck_assert_int_eq(ct_optim_to(oc, GPU), CT_OK);
    ck_assert_int_eq(ct_optim_step(oc), CT_E_DEVICE);        /* module still on the CPU */
    ck_assert_int_eq(ct_module_to(mc, GPU), CT_OK);
    ck_assert_ptr_eq(mc->flat_params, flat);                  /* the flat block keeps identity */
    ck_assert(ct_device_eq(ct_tensor_device(flat), GPU));
    ck_assert_int_eq(ct_optim_get_state(oc, 1, s1, np), CT_OK);
    ck_assert(memcmp(s0, s1, sizeof(float) * (size_t)np) == 0);
    /* a step on the GPU and the same step on a CPU copy agree (when the GPU optimizer kernels
     * are there; the optimizer group is another file's) */
    const ct_backend *be = flat->storage->backend;
    if (be->optim && be->optim->adam) {
        size_t nb = sizeof(float) * (size_t)np;
        float *P = malloc(nb), *M = malloc(nb), *after[2] = {malloc(nb), malloc(nb)};
        ck_assert_int_eq(ct_copy_to_host(flat, P, nb), CT_OK);
        ck_assert_int_eq(ct_optim_get_state(oc, 0, M, np), CT_OK);
        for (int dev = 0; dev < 2; dev++) {
            ct_device where = dev ? GPU : CT_DEVICE_CPU;
            ck_assert_int_eq(ct_module_to(mc, where), CT_OK);
            ck_assert_int_eq(ct_optim_to(oc, where), CT_OK);
            flat->storage->backend->from_host(ct_data(flat), P, nb);     /* the same start */
            ck_assert_int_eq(ct_optim_set_state(oc, 0, M, np), CT_OK);
            ck_assert_int_eq(ct_optim_set_state(oc, 1, s0, np), CT_OK);
            ck_assert_int_eq(ct_optim_set_step(oc, 2), CT_OK);
            ct_scope_begin(ctx);
            ct_optim_zero_grad(oc);
            ct_tensor *xi = ct_to(x, where), *ti = ct_to(target, where);
            ct_tensor *h = ct_module_forward(ct_module_child(mc, "b"),
                                             ct_module_forward(ct_module_child(mc, "a"), xi, NULL), NULL);
            ct_tensor *d = ct_sub(h, ti);
            ck_assert_int_eq(ct_backward(ct_cpu(ct_sum_all(ct_mul(d, d)))), CT_OK);
            ck_assert_int_eq(ct_optim_step(oc), CT_OK);
            ct_scope_end(ctx);
            host_params(mc, after[dev]);
        }
        for (int64_t i = 0; i < np; i++)
            ck_assert_msg(fabsf(after[0][i] - after[1][i]) <= 1e-5f + 1e-4f * fabsf(after[0][i]),
                          "parameter %lld: cpu %g, cuda %g", (long long)i, after[0][i], after[1][i]);
        free(P);
        free(M);
        free(after[0]);
        free(after[1]);
    } else {
        printf("cuda: the optimizer step on the GPU is not compared: this build's CUDA optimizer "
               "kernels (engine/cuda/optim.cu) are missing\n");
    }
    ct_optim_free(oc);
    ct_module_free(mc);
    free(p0);
    free(p1);
    free(s0);
    free(s1);
    ck_assert_int_eq(ct_ctx_status(ctx), CT_OK);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- the caching allocator ---------------------------------------------------------------------- */
static void one_step(ct_ctx *ctx, ct_tensor *w, ct_tensor *x) {
    ct_scope_begin(ctx);
    ct_tensor *h = ct_tanh(ct_matmul(x, w));
    ct_tensor *loss = ct_sum_all(ct_mul(h, h));
    ck_assert_int_eq(ct_backward(ct_cpu(loss)), CT_OK);
    ck_assert_int_eq(ct_inplace_axpy(w, -0.01f, ct_grad(w)), CT_OK);
    ct_zero_grad(w);
    ct_scope_end(ctx);
}

START_TEST(test_allocator_reuse) {
    NEED_DEVICE();
    ct_ctx *ctx = tu_ctx(NULL);
    ct_tensor *w = ct_detach(gpu(TU_RAND(ctx, 90, -1, 1, 64, 32)));
    ct_set_requires_grad(w, true);
    ct_tensor *x = gpu(TU_RAND(ctx, 91, -1, 1, 16, 64));
    one_step(ctx, w, x);
    ct_device_mem_stats a = ct_device_mem_stats_of(ctx, GPU);
    ck_assert_int_gt(a.device_mallocs, 0);
    ck_assert_int_gt(a.cached_bytes, 0);
    one_step(ctx, w, x);
    one_step(ctx, w, x);
    ct_device_mem_stats b = ct_device_mem_stats_of(ctx, GPU);
    ck_assert_msg(b.device_mallocs == a.device_mallocs, "steady state called cudaMalloc: %lld -> %lld",
                  (long long)a.device_mallocs, (long long)b.device_mallocs);
    ck_assert_int_gt(b.cache_hits, a.cache_hits);
    ck_assert_int_eq(b.reserved_bytes, a.reserved_bytes);
    ck_assert_int_eq(b.in_use_bytes + b.cached_bytes, b.reserved_bytes);
    /* empty_cache gives the cached blocks back, keeps the live ones */
    ct_ctx_empty_cache(ctx);
    ct_device_mem_stats c = ct_device_mem_stats_of(ctx, GPU);
    ck_assert_int_eq(c.cached_bytes, 0);
    ck_assert_int_eq(c.reserved_bytes, c.in_use_bytes);
    ck_assert_int_gt(c.device_frees, b.device_frees);
    ck_assert_int_gt(c.in_use_bytes, 0);                      /* w, x and w's gradient */
    one_step(ctx, w, x);                                      /* still works after */
    /* another context has its own cache */
    ct_ctx *other = tu_ctx(NULL);
    ct_device_mem_stats o = ct_device_mem_stats_of(other, GPU);
    ck_assert_int_eq(o.reserved_bytes, 0);
    ct_ctx_free(other);
    ck_assert_int_eq(ct_ctx_status(ctx), CT_OK);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- device errors become ctx errors with the call's file:line ---------------------------------- */
START_TEST(test_device_error_message) {
    NEED_DEVICE();
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *t = gpu(ct_zeros(ctx, CT_SHAPE(16)));
    float *p = ct_data(t);
    /* lda 1 < k 4: cuBLAS refuses it at once (no kernel runs) */
    t->storage->backend->gemm(false, false, 4, 4, 4, 1.0f, p, 1, 0, p, 4, 0, 0.0f, p, 4, 0, 1);
    ck_assert_int_eq(ct__device_check(ctx, t->storage->backend), CT_E_DEVICE);
    assert_msg_has(&errs, "cuda:0: ");
    assert_msg_has(&errs, "cublasSgemm");
    assert_msg_has(&errs, "failed at engine/cuda/backend.cu:");
    /* taken: the next check is clean, and allocation works */
    ck_assert_int_eq(ct__device_check(ctx, t->storage->backend), CT_OK);
    ct_ctx_clear_error(ctx);
    ck_assert_ptr_nonnull(gpu(ct_ones(ctx, CT_SHAPE(3))));
    /* a pending failure surfaces at the next allocation, as that op's error */
    t->storage->backend->gemm(false, false, 4, 4, 4, 1.0f, p, 1, 0, p, 4, 0, 0.0f, p, 4, 0, 1);
    ck_assert_ptr_null(ct_add(t, t));
    ck_assert_int_eq(ct_ctx_status(ctx), CT_E_DEVICE);
    assert_msg_has(&errs, "cublasSgemm");
    ct_ctx_free(ctx);
}
END_TEST

/* ---- a few training steps: the same losses and parameters on cuda:0 as on the CPU --------------- */
/* Sequential(Linear 13->37, ReLU, Dropout 0.25, Linear 37->29, Tanh, LayerNorm 29, Linear 29->5
 * without bias): every layer kind of engine/layers.h but Embedding (test_cuda_kernels.c) */
static ct_module *mlp_new(ct_ctx *ctx, uint64_t seed) {
    ct_rng rng;
    ct_rng_seed(&rng, seed);
    ct_module *seq = ct_sequential_new(ctx);
    ck_assert_ptr_nonnull(seq);
    ct_module *kids[7] = {ct_linear_new(ctx, &rng, 13, 37, true), ct_activation_new(ctx, "relu"),
                          ct_dropout_module_new(ctx, 0.25f), ct_linear_new(ctx, &rng, 37, 29, true),
                          ct_activation_new(ctx, "tanh"), ct_layernorm_new(ctx, 29, 1e-5f, true),
                          ct_linear_new(ctx, &rng, 29, 5, false)};
    for (int i = 0; i < 7; i++) {
        ck_assert_ptr_nonnull(kids[i]);
        ck_assert_int_eq(ct_sequential_append(seq, kids[i]), CT_OK);
    }
    return seq;
}

/* one step: zero_grad, forward (dropout from rng), BCE-with-logits loss, backward, clipping
 * (by norm for Adam(W), by value for SGD), step; returns the loss */
static double mlp_step(ct_module *m, ct_optim *opt, ct_tensor *x, ct_tensor *y, ct_rng *rng,
                       bool clip_norm) {
    ct_ctx *ctx = m->ctx;
    ct_scope_begin(ctx);
    ct_optim_zero_grad(opt);
    ct_tensor *out = ct_sequential_forward(m, x, rng);
    ct_tensor *loss = ct_bce_with_logits(out, y, CT_REDUCE_MEAN);
    ck_assert_msg(loss != NULL, "%s", ct_ctx_error(ctx));
    ck_assert_msg(ct_backward(loss) == CT_OK, "%s", ct_ctx_error(ctx));
    if (clip_norm) {
        double norm = 0;
        ck_assert_int_eq(ct_clip_grad_norm(m, 0.5f, &norm), CT_OK);
    } else {
        ck_assert_int_eq(ct_clip_grad_value(m, 0.05f), CT_OK);
    }
    ck_assert_msg(ct_optim_step(opt) == CT_OK, "%s", ct_ctx_error(ctx));
    double l = ct_item(loss);
    ct_scope_end(ctx);
    return l;
}

static ct_optim *mlp_optim(ct_module *m, int kind) {
    switch (kind) {
    case 0: return ct_sgd_new(m, (ct_sgd_config){.lr = 0.1, .momentum = 0.9, .nesterov = true,
                                                   .weight_decay = 1e-3});
    case 1: return ct_adam_new(m, ct_adam_defaults(1e-2));
    default: return ct_adamw_new(m, ct_adamw_defaults(1e-2));
    }
}

static void mlp_data(ct_ctx *ctx, ct_tensor **x, ct_tensor **y) {
    *x = TU_RAND(ctx, 120, -2, 2, 33, 13);                  /* batch 33: no multiple of 32 */
    *y = TU_RAND(ctx, 121, 0, 1, 33, 5);
    float *yv = ct_data_f32(*y);
    for (int i = 0; i < 33 * 5; i++) yv[i] = yv[i] < 0.5f ? 0.0f : 1.0f;
}

/* Six steps of SGD (momentum, Nesterov, weight decay, clip by value), Adam and AdamW (clip by
 * norm) give the CPU's losses within 1e-5 + 1e-4 relative at every step, and parameters within
 * 5e-4 + 1e-3 relative after them (float32 on both; the dropout masks come from the same host
 * generator). */
START_TEST(test_training_steps_match_cpu) {
    NEED_DEVICE();
    ct_ctx *ctx = tu_ctx(NULL);
    ct_tensor *x, *y;
    mlp_data(ctx, &x, &y);
    ct_tensor *xg = gpu(x), *yg = gpu(y);
    for (int kind = 0; kind < 3; kind++) {
        ct_module *mc = mlp_new(ctx, 110), *mg = mlp_new(ctx, 110);
        ck_assert_int_eq(ct_module_to(mg, GPU), CT_OK);
        ct_optim *oc = mlp_optim(mc, kind), *og = mlp_optim(mg, kind);
        ck_assert_msg(oc && og, "%s", ct_ctx_error(ctx));
        ct_rng rc, rg;
        ct_rng_seed(&rc, 130);
        ct_rng_seed(&rg, 130);
        for (int step = 0; step < 6; step++) {
            const double lc = mlp_step(mc, oc, x, y, &rc, kind != 0);
            const double lg = mlp_step(mg, og, xg, yg, &rg, kind != 0);
            printf("cuda: %s step %d: loss cpu %.7f, cuda %.7f\n", ct_optim_name(oc), step, lc, lg);
            ck_assert_msg(isfinite(lg) && fabs(lg - lc) <= 1e-5 + 1e-4 * fabs(lc),
                          "%s step %d: loss %.9g on cuda, %.9g on the cpu", ct_optim_name(oc), step, lg, lc);
        }
        const int np = ct_module_param_count(mc);
        for (int i = 0; i < np; i++) {
            char name[64];
            ct_tensor *pc = ct_module_param_at(mc, i, name, sizeof name);
            ct_tensor *pg = ct_module_param_at(mg, i, NULL, 0);
            ck_assert(ct_device_eq(ct_tensor_device(pg), GPU));
            ct_tensor *back = ct_cpu(pg);
            ck_assert_ptr_nonnull(back);
            const float *a = ct_data_f32(ct_contiguous(pc)), *b = ct_data_f32(ct_contiguous(back));
            for (int64_t j = 0; j < ct_numel(pc); j++)
                if (!(fabsf(a[j] - b[j]) <= 5e-4f + 1e-3f * fabsf(a[j])))
                    ck_assert_msg(0,
                              "%s: %s[%lld] is %.8g on cuda, %.8g on the cpu", ct_optim_name(oc), name,
                              (long long)j, (double)b[j], (double)a[j]);
        }
        ct_optim_free(oc);
        ct_optim_free(og);
        ct_module_free(mc);
        ct_module_free(mg);
    }
    fflush(stdout);
    ck_assert_int_eq(ct_ctx_status(ctx), CT_OK);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- a checkpoint written from cuda:0 loads on the CPU (and back on the device) --------------- */
static void tmp_path(char *buf, size_t cap, const char *stem, const char *ext) {
    if (mkdir("tmp", 0777) != 0) ck_assert_int_eq(errno, EEXIST);
    snprintf(buf, cap, "tmp/%s_%ld.%s", stem, (long)getpid(), ext);
}

/* AdamW trains the MLP for 3 steps on cuda:0; its weights (safetensors) and training state
 * (optimizer moments, step, lr, a generator) are saved from the device. A CPU model and
 * optimizer made from another seed load them: the same bits as on the device. Then one more
 * step on each device gives the same loss (1e-5 + 1e-4 relative), and the weights load into a
 * fresh model on cuda:0 bit for bit too. */
START_TEST(test_checkpoint_gpu_to_cpu) {
    NEED_DEVICE();
    ct_ctx *ctx = tu_ctx(NULL);
    char wpath[128], spath[128];
    tmp_path(wpath, sizeof wpath, "cuda_ckpt", "safetensors");
    tmp_path(spath, sizeof spath, "cuda_ckpt", "ctts");
    ct_tensor *x, *y;
    mlp_data(ctx, &x, &y);
    ct_module *mg = mlp_new(ctx, 140);
    ck_assert_int_eq(ct_module_to(mg, GPU), CT_OK);
    ct_optim *og = mlp_optim(mg, 2);
    ck_assert_ptr_nonnull(og);
    ct_rng rg;
    ct_rng_seed(&rg, 141);
    for (int step = 0; step < 3; step++) mlp_step(mg, og, gpu(x), gpu(y), &rg, true);
    const ct_rng *save_rngs[1] = {&rg};
    ck_assert_msg(ct_safetensors_save(wpath, mg, 0, NULL, NULL) == CT_OK, "%s", ct_ctx_error(ctx));
    ck_assert_msg(ct_train_state_save(spath, og, 3, save_rngs, 1, NULL, 0) == CT_OK, "%s", ct_ctx_error(ctx));
    /* into a CPU model of other weights */
    ct_module *mc = mlp_new(ctx, 999);
    ct_optim *oc = mlp_optim(mc, 2);
    ck_assert_ptr_nonnull(oc);
    ck_assert_msg(ct_safetensors_load(wpath, mc, NULL, NULL) == CT_OK, "%s", ct_ctx_error(ctx));
    ct_rng rc;
    ct_rng_seed(&rc, 5);
    ct_rng *load_rngs[1] = {&rc};
    int64_t step = -1;
    ck_assert_msg(ct_train_state_load(spath, oc, &step, load_rngs, 1, NULL, 0, NULL) == CT_OK, "%s",
                  ct_ctx_error(ctx));
    ck_assert_int_eq(step, 3);
    ck_assert_int_eq(ct_optim_get_step(oc), ct_optim_get_step(og));
    ck_assert(ct_optim_get_lr(oc) == ct_optim_get_lr(og));
    ck_assert(ct_device_eq(ct_module_device(mc), CT_DEVICE_CPU));
    const int np = ct_module_param_count(mc);
    for (int i = 0; i < np; i++) same_bits(ct_module_param_at(mc, i, NULL, 0), ct_module_param_at(mg, i, NULL, 0));
    const int64_t n = ct_optim_state_size(og);
    ck_assert_int_eq(ct_optim_state_count(oc), 2);
    float *a = malloc(sizeof(float) * (size_t)n), *b = malloc(sizeof(float) * (size_t)n);
    for (int s = 0; s < 2; s++) {
        ck_assert_int_eq(ct_optim_get_state(og, s, a, n), CT_OK);
        ck_assert_int_eq(ct_optim_get_state(oc, s, b, n), CT_OK);
        ck_assert_msg(memcmp(a, b, sizeof(float) * (size_t)n) == 0, "state %d differs", s);
    }
    free(a);
    free(b);
    ck_assert(ct_rng_u64(&rc) == ct_rng_u64(&rg));
    /* one more step on each: the same loss */
    ct_rng_seed(&rc, 142);
    ct_rng_seed(&rg, 142);
    const double lc = mlp_step(mc, oc, x, y, &rc, true), lg = mlp_step(mg, og, gpu(x), gpu(y), &rg, true);
    ck_assert_msg(fabs(lg - lc) <= 1e-5 + 1e-4 * fabs(lc), "loss after loading: cuda %.9g, cpu %.9g", lg, lc);
    /* the weights also load into a module on the device */
    ct_module *m2 = mlp_new(ctx, 998);
    ck_assert_int_eq(ct_module_to(m2, GPU), CT_OK);
    ck_assert_msg(ct_safetensors_load(wpath, m2, NULL, NULL) == CT_OK, "%s", ct_ctx_error(ctx));
    ct_module *m3 = mlp_new(ctx, 997);
    ck_assert_int_eq(ct_safetensors_load(wpath, m3, NULL, NULL), CT_OK);
    for (int i = 0; i < np; i++) {
        ct_tensor *p2 = ct_module_param_at(m2, i, NULL, 0);
        ck_assert(ct_device_eq(ct_tensor_device(p2), GPU));
        same_bits(p2, ct_module_param_at(m3, i, NULL, 0));
    }
    remove(wpath);
    remove(spath);
    ct_optim_free(oc);
    ct_optim_free(og);
    ct_module_free(mc);
    ct_module_free(mg);
    ct_module_free(m2);
    ct_module_free(m3);
    ck_assert_int_eq(ct_ctx_status(ctx), CT_OK);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- mixing devices: CT_E_DEVICE naming both devices and the call site, for every kind of op ---- */
static void expect_mixed(tu_errors *errs, ct_ctx *ctx, bool failed, const char *what) {
    ck_assert_msg(failed, "%s: mixing devices did not fail", what);
    ck_assert_msg(ct_ctx_status(ctx) == CT_E_DEVICE, "%s: status %d (%s)", what, (int)ct_ctx_status(ctx),
                  ct_ctx_error(ctx));
    ck_assert_msg(strstr(errs->last.msg, "cpu") && strstr(errs->last.msg, "cuda:0") &&
                  strstr(errs->last.msg, "test_cuda.c"),
                  "%s: the message does not name both devices and the call site: %s", what, errs->last.msg);
    ct_ctx_clear_error(ctx);
}

START_TEST(test_mixed_device_errors) {
    NEED_DEVICE();
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_rng rng;
    ct_rng_seed(&rng, 150);
    ct_tensor *a = TU_RAND(ctx, 151, -1, 1, 3, 4), *b = TU_RAND(ctx, 152, -1, 1, 4, 2);
    ct_tensor *ag = gpu(a), *bg = gpu(b);
    ct_tensor *tg = ct_from_i64(ctx, (const int64_t[]){0, 1, 3}, CT_SHAPE(3));
    expect_mixed(&errs, ctx, ct_mul(ag, a) == NULL, "mul");
    expect_mixed(&errs, ctx, ct_matmul(a, bg) == NULL, "matmul");
    expect_mixed(&errs, ctx, ct_cross_entropy(ag, tg, -100) == NULL, "cross_entropy (targets on the cpu)");
    expect_mixed(&errs, ctx, ct_bce_with_logits(ag, a, CT_REDUCE_MEAN) == NULL, "bce_with_logits");
    expect_mixed(&errs, ctx, ct_embedding(bg, tg) == NULL, "embedding (indices on the cpu)");
    expect_mixed(&errs, ctx, ct_where(a, ag, ag) == NULL, "where");
    expect_mixed(&errs, ctx, ct_masked_fill(ag, a, 0.0f) == NULL, "masked_fill");
    ct_tensor *two[2] = {a, ag};
    expect_mixed(&errs, ctx, ct_concat(2, two, 0) == NULL, "concat");
    expect_mixed(&errs, ctx, ct_layer_norm(ag, ct_ones(ctx, CT_SHAPE(4)), NULL, 1e-5f) == NULL, "layer_norm");
    /* a module on the device, its input on the CPU */
    ct_module *lin = ct_linear_new(ctx, &rng, 4, 2, true);
    ck_assert_int_eq(ct_module_to(lin, GPU), CT_OK);
    expect_mixed(&errs, ctx, ct_linear_forward_at(CT_SRC, lin, a) == NULL, "linear");
    const ct_rnn_config cfg = {CT_LSTM, 4, 5, 1, true, false, 0.0f};
    ct_module *rnn = ct_rnn_new(ctx, &rng, &cfg);
    ck_assert_ptr_nonnull(rnn);
    ck_assert_int_eq(ct_module_to(rnn, GPU), CT_OK);
    ct_tensor *seq = TU_RAND(ctx, 153, -1, 1, 2, 3, 4), *out = NULL;
    expect_mixed(&errs, ctx, ct_rnn_forward(rnn, seq, NULL, NULL, NULL, NULL, &out, NULL, NULL) != CT_OK,
                 "rnn_forward");
    ck_assert_ptr_null(out);
    /* a backward seed on the other device */
    ct_tensor *leaf = ct_detach(ag);
    ck_assert_int_eq(ct_set_requires_grad(leaf, true), CT_OK);
    ct_tensor *yl = ct_mul_scalar(leaf, 2.0f);
    expect_mixed(&errs, ctx, ct_backward_ex(yl, a, false) != CT_OK, "backward seed");
    /* in-place updates refuse too, naming both devices and the call site */
    expect_mixed(&errs, ctx, ct_inplace_axpy(ag, 1.0f, a) == CT_E_DEVICE, "inplace_axpy");
    expect_mixed(&errs, ctx, ct_inplace_copy(a, ag) == CT_E_DEVICE, "inplace_copy");
    /* nothing was half-done: the same ops on one device work */
    ck_assert_ptr_nonnull(ct_matmul(ag, bg));
    ck_assert_int_eq(ct_ctx_status(ctx), CT_OK);
    ct_module_free(lin);
    ct_module_free(rnn);
    ct_ctx_free(ctx);
}
END_TEST

Suite *cuda_suite(void) {
    Suite *s = suite_create("cuda");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_parse_devices);
    tcase_add_test(tc, test_missing_device_errors);
    tcase_add_test(tc, test_copy_round_trips);
    tcase_add_test(tc, test_fill);
    tcase_add_test(tc, test_binary_broadcast);
    tcase_add_test(tc, test_unary_and_grad);
    tcase_add_test(tc, test_axpy);
    tcase_add_test(tc, test_gemm);
    tcase_add_test(tc, test_tf32_switch);
    tcase_add_test(tc, test_bf16_round_reference);
    tcase_add_test(tc, test_bf16_switch_errors);
    tcase_add_test(tc, test_bf16_gemm);
    tcase_add_test(tc, test_bf16_switch_round_trip);
    tcase_add_test(tc, test_bf16_linear_grad);
    tcase_add_test(tc, test_sum_dims);
    tcase_add_test(tc, test_to_forward_backward);
    tcase_add_test(tc, test_module_optim_round_trip);
    tcase_add_test(tc, test_allocator_reuse);
    tcase_add_test(tc, test_device_error_message);
    tcase_add_test(tc, test_training_steps_match_cpu);
    tcase_add_test(tc, test_checkpoint_gpu_to_cpu);
    tcase_add_test(tc, test_mixed_device_errors);
    suite_add_tcase(s, tc);
    return s;
}
