/* engine/cpu/backend.c — the CPU kernel table: memory, copies, element-wise math, sums, and
 * GEMM through OpenBLAS (cblas_sgemm; transposes are passed as flags, never copied). */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "engine/cpu/iter.h"
#include "engine/cpu/kernels.h"
#include "engine/kernels_rnn.h"
#include "engine/unary_math.h"

static int cpu_count(void) { return 1; }
static void *cpu_alloc(ct_ctx *ctx, ct_device d, size_t n) { (void)d; return ct__host_alloc(ctx, n); }
static void cpu_free(ct_ctx *ctx, ct_device d, void *p, size_t n) { (void)d; ct__host_free(ctx, p, n); }
static void cpu_memcpy(void *dst, const void *src, size_t n) { if (n) memcpy(dst, src, n); }

static void cpu_copy(ct_tensor *dst, const ct_tensor *src) {
    ct_iter it;
    ct_iter_init(&it, 2, (const ct_tensor *[]){dst, src});
    if (it.empty) return;
    size_t es = it.esz[0];
    do {
        char *d = (void *)it.base[0];
        const char *s = (void *)it.base[1];
        if (it.is[0] == 1 && it.is[1] == 1) {
            memcpy(d, s, (size_t)it.inner * es);
        } else if (es == 4) {
            for (int64_t i = 0; i < it.inner; i++)
                ((float *)d)[i * it.is[0]] = ((const float *)s)[i * it.is[1]];
        } else {
            for (int64_t i = 0; i < it.inner; i++)
                ((int64_t *)d)[i * it.is[0]] = ((const int64_t *)s)[i * it.is[1]];
        }
    } while (ct_iter_next(&it));
}

static void cpu_fill(ct_tensor *dst, double v) {
    ct_iter it;
    ct_iter_init(&it, 1, (const ct_tensor *[]){dst});
    if (it.empty) return;
    do {
        if (dst->dtype == CT_F32) {
            float *d = (void *)it.base[0], f = (float)v;
            if (f == 0.0f && it.is[0] == 1) memset(d, 0, (size_t)it.inner * 4);
            else for (int64_t i = 0; i < it.inner; i++) d[i * it.is[0]] = f;
        } else {
            int64_t *d = (void *)it.base[0], x = (int64_t)v;
            for (int64_t i = 0; i < it.inner; i++) d[i * it.is[0]] = x;
        }
    } while (ct_iter_next(&it));
}

#define BIN_LOOP(EXPR)                                                                 \
    do {                                                                               \
        if (so == 1 && sa == 1 && sb == 1)                                             \
            for (int64_t i = 0; i < n; i++) { float x = a[i], y = b[i]; o[i] = (EXPR); } \
        else                                                                           \
            for (int64_t i = 0; i < n; i++) {                                          \
                float x = a[i * sa], y = b[i * sb];                                    \
                o[i * so] = (EXPR);                                                    \
            }                                                                          \
    } while (0)

static void cpu_binary(ct_binop op, ct_tensor *out, const ct_tensor *ta, const ct_tensor *tb) {
    ct_iter it;
    ct_iter_init(&it, 3, (const ct_tensor *[]){out, ta, tb});
    if (it.empty) return;
    do {
        float *o = (void *)it.base[0];
        const float *a = (void *)it.base[1], *b = (void *)it.base[2];
        int64_t n = it.inner, so = it.is[0], sa = it.is[1], sb = it.is[2];
        switch (op) {
        case CT_BIN_ADD: BIN_LOOP(x + y); break;
        case CT_BIN_SUB: BIN_LOOP(x - y); break;
        case CT_BIN_MUL: BIN_LOOP(x * y); break;
        case CT_BIN_DIV: BIN_LOOP(x / y); break;
        case CT_BIN_POW: BIN_LOOP(powf(x, y)); break;
        default: break;
        }
    } while (ct_iter_next(&it));
}

static void cpu_unary(ct_unop op, ct_tensor *out, const ct_tensor *ta, float p0, float p1) {
    ct_iter it;
    ct_iter_init(&it, 2, (const ct_tensor *[]){out, ta});
    if (it.empty) return;
    do {
        float *o = (void *)it.base[0];
        const float *a = (void *)it.base[1];
        int64_t so = it.is[0], sa = it.is[1];
        for (int64_t i = 0; i < it.inner; i++) o[i * so] = ct__unary1(op, a[i * sa], p0, p1);
    } while (ct_iter_next(&it));
}

static void cpu_unary_grad(ct_unop op, ct_tensor *gin, const ct_tensor *gout, const ct_tensor *ta,
                           const ct_tensor *ty, float p0, float p1) {
    ct_iter it;
    ct_iter_init(&it, 4, (const ct_tensor *[]){gin, gout, ta, ty});
    if (it.empty) return;
    do {
        float *gi = (void *)it.base[0];
        const float *go = (void *)it.base[1], *a = (void *)it.base[2], *y = (void *)it.base[3];
        for (int64_t i = 0; i < it.inner; i++)
            gi[i * it.is[0]] = go[i * it.is[1]] * ct__dunary1(op, a[i * it.is[2]], y[i * it.is[3]], p0, p1);
    } while (ct_iter_next(&it));
}

static void cpu_axpy(ct_tensor *t, float alpha, const ct_tensor *x) {
    ct_iter it;
    ct_iter_init(&it, 2, (const ct_tensor *[]){t, x});
    if (it.empty) return;
    do {
        float *o = (void *)it.base[0];
        const float *a = (void *)it.base[1];
        if (it.is[0] == 1 && it.is[1] == 1 && it.inner > 64)
            cblas_saxpy((int)it.inner, alpha, a, 1, o, 1);
        else
            for (int64_t i = 0; i < it.inner; i++) o[i * it.is[0]] += alpha * a[i * it.is[1]];
    } while (ct_iter_next(&it));
}

static void cpu_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                     const float *a, int64_t lda, int64_t sa, const float *b, int64_t ldb,
                     int64_t sb, float beta, float *c, int64_t ldc, int64_t sc, int64_t batch) {
    for (int64_t i = 0; i < batch; i++)
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    (int)m, (int)n, (int)k, alpha, a + i * sa, (int)lda, b + i * sb, (int)ldb,
                    beta, c + i * sc, (int)ldc);
}

/* out has a's ndim with 1 on the reduced dims */
static void cpu_sum(ct_tensor *out, const ct_tensor *a) {
    cpu_fill(out, 0.0);
    ct_tensor ox = *out;                /* out seen with a's shape: stride 0 where reduced */
    for (int d = 0; d < a->ndim; d++) {
        ox.shape[d] = a->shape[d];
        if (out->shape[d] != a->shape[d]) ox.stride[d] = 0;
    }
    ct_iter it;
    ct_iter_init(&it, 2, (const ct_tensor *[]){&ox, a});
    if (it.empty) return;
    do {
        float *o = (void *)it.base[0];
        const float *x = (void *)it.base[1];
        if (it.is[0] == 0) {
            double acc = 0;
            for (int64_t i = 0; i < it.inner; i++) acc += x[i * it.is[1]];
            *o += (float)acc;
        } else {
            for (int64_t i = 0; i < it.inner; i++) o[i * it.is[0]] += x[i * it.is[1]];
        }
    } while (ct_iter_next(&it));
}

const ct_backend ct_cpu_backend = {
    .name = "cpu",
    .type = CT_CPU,
    .device_count = cpu_count,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .to_host = cpu_memcpy,
    .from_host = cpu_memcpy,
    .copy = cpu_copy,
    .fill = cpu_fill,
    .binary = cpu_binary,
    .unary = cpu_unary,
    .unary_grad = cpu_unary_grad,
    .axpy = cpu_axpy,
    .gemm = cpu_gemm,
    .sum = cpu_sum,
    .nn = &ct_cpu_kernels_nn,
    .index = &ct_cpu_kernels_index,
    .layernorm = &ct__cpu_kernels_layernorm,
    .optim = &ct_cpu_kernels_optim,
    .rnn = &ct_cpu_kernels_rnn,
};
