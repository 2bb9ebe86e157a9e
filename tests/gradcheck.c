/* tests/gradcheck.c — shared test helpers: error capture, finite differences, comparisons. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

void tu_capture(const ct_error *e, void *ud) {
    tu_errors *errs = ud;
    if (!errs) return;
    errs->count++;
    errs->last = *e;
}

ct_ctx *tu_ctx(tu_errors *errs) {
    ct_ctx *ctx = ct_ctx_new();
    ck_assert_ptr_nonnull(ctx);
    ct_ctx_set_error_handler(ctx, tu_capture, errs);
    return ctx;
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

ct_tensor *tu_rand(ct_ctx *ctx, uint64_t seed, float lo, float hi, int ndim, const int64_t *shape) {
    ct_tensor *t = ct_empty(ctx, CT_F32, ndim, shape);
    ck_assert_ptr_nonnull(t);
    float *d = ct_data_f32(t);
    for (int64_t i = 0; i < ct_numel(t); i++)
        d[i] = lo + (hi - lo) * (float)((splitmix(&seed) >> 11) * 0x1.0p-53);
    return t;
}

/* loss = sum(f(in) * w) in double, computed without a graph */
static double eval_loss(tu_fn f, ct_tensor **in, void *ud, const float *w) {
    ct_ctx *ctx = in[0]->ctx;
    bool was = ct_set_grad_enabled(ctx, false);
    ct_scope_begin(ctx);
    ct_tensor *y = f(in, ud);
    ck_assert_msg(y != NULL, "gradcheck: the function failed: %s", ct_ctx_error(ctx));
    int64_t n = ct_numel(y);
    float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
    ct_copy_to_host(y, v, sizeof(float) * (size_t)n);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)v[i] * w[i];
    free(v);
    ct_scope_end(ctx);
    ct_set_grad_enabled(ctx, was);
    return s;
}

int64_t tu_gradcheck_impl(const char *file, int line, tu_fn f, int n, ct_tensor **in, void *ud,
                          double eps, double atol, double rtol) {
    ct_ctx *ctx = in[0]->ctx;
    int64_t checked = 0;
    ct_scope_begin(ctx);
    for (int i = 0; i < n; i++) ct_zero_grad(in[i]);
    ct_tensor *y = f(in, ud);
    ck_assert_msg(y != NULL, "%s:%d: gradcheck: forward failed: %s", file, line, ct_ctx_error(ctx));
    int64_t ny = ct_numel(y);
    uint64_t seed = 12345;
    float *w = malloc(sizeof(float) * (size_t)(ny ? ny : 1));
    for (int64_t k = 0; k < ny; k++) w[k] = (float)((splitmix(&seed) >> 11) * 0x1.0p-53) * 2.0f - 1.0f;
    ct_tensor *wt = ct_from_f32(ctx, w, y->ndim, y->shape);
    ct_tensor *loss = ct_sum_all(ct_mul(y, wt));
    ck_assert_msg(loss != NULL, "%s:%d: gradcheck: loss failed: %s", file, line, ct_ctx_error(ctx));
    ck_assert_msg(ct_backward(loss) == CT_OK, "%s:%d: gradcheck: backward failed: %s", file, line,
                  ct_ctx_error(ctx));
    for (int i = 0; i < n; i++) {
        ct_tensor *x = in[i];
        if (!ct_requires_grad(x)) continue;
        ct_tensor *g = ct_grad(x);
        ck_assert_msg(g != NULL, "%s:%d: gradcheck: input %d got no gradient", file, line, i);
        ck_assert_msg(ct_is_contiguous(x), "%s:%d: gradcheck inputs must be contiguous leaves", file, line);
        float *xd = ct_data_f32(x);
        int64_t idx[CT_MAX_DIMS] = {0};
        for (int64_t k = 0; k < ct_numel(x); k++) {
            float orig = xd[k];
            xd[k] = orig + (float)eps;
            double lp = eval_loss(f, in, ud, w);
            xd[k] = orig - (float)eps;
            double lm = eval_loss(f, in, ud, w);
            xd[k] = orig;
            double num = (lp - lm) / (2 * eps);
            /* index of element k in g (contiguous, same shape) */
            int64_t r = k;
            for (int d = x->ndim - 1; d >= 0; d--) { idx[d] = r % x->shape[d]; r /= x->shape[d]; }
            double ana = ct_get(g, idx);
            ck_assert_msg(fabs(ana - num) <= atol + rtol * fabs(num),
                          "%s:%d: gradcheck: input %d element %lld: backward %.6g, finite "
                          "difference %.6g", file, line, i, (long long)k, ana, num);
            checked++;
        }
    }
    free(w);
    ct_scope_end(ctx);
    return checked;
}

void tu_assert_close_impl(const char *file, int line, const ct_tensor *a, const float *want,
                          double atol, double rtol) {
    ck_assert_msg(a != NULL, "%s:%d: tensor is NULL", file, line);
    int64_t n = ct_numel(a);
    float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
    ct_copy_to_host(a, v, sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        ck_assert_msg((double)v[i] == (double)want[i] ||
                          fabs((double)v[i] - want[i]) <= atol + rtol * fabs((double)want[i]),
                      "%s:%d: element %lld is %.7g, expected %.7g", file, line, (long long)i,
                      (double)v[i], (double)want[i]);
    }
    free(v);
}

void tu_assert_tensors_close_impl(const char *file, int line, const ct_tensor *a,
                                  const ct_tensor *b, double atol, double rtol) {
    ck_assert_msg(a && b, "%s:%d: tensor is NULL", file, line);
    char s1[96], s2[96];
    ck_assert_msg(ct_same_shape(a, b), "%s:%d: shapes %s and %s differ", file, line,
                  ct_shape_str(a, s1, sizeof s1), ct_shape_str(b, s2, sizeof s2));
    int64_t n = ct_numel(b);
    float *w = malloc(sizeof(float) * (size_t)(n ? n : 1));
    ct_copy_to_host(b, w, sizeof(float) * (size_t)n);
    tu_assert_close_impl(file, line, a, w, atol, rtol);
    free(w);
}

uint8_t *tu_slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    buf[len] = 0;   /* text files can be used as strings */
    if (n) *n = (size_t)len;
    return buf;
}

const char *tu_cantor_bin(void) {
    const char *b = getenv("CANTOR_BIN");
    return b && *b ? b : "../bin/cantor";
}

int tu_run(const char *cmd, char *out, size_t n) {
    size_t cl = strlen(cmd) + 8;
    char *full = malloc(cl);
    ck_assert_ptr_nonnull(full);
    snprintf(full, cl, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    free(full);
    ck_assert_ptr_nonnull(p);
    size_t len = n > 0 ? fread(out, 1, n - 1, p) : 0;
    if (n > 0) out[len] = 0;
    char sink[4096];
    while (fread(sink, 1, sizeof sink, p) > 0) {}
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int tu_run_cantor(const char *args, char *out, size_t n) {
    size_t cl = strlen(tu_cantor_bin()) + strlen(args) + 2;
    char *cmd = malloc(cl);
    ck_assert_ptr_nonnull(cmd);
    snprintf(cmd, cl, "%s %s", tu_cantor_bin(), args);
    int st = tu_run(cmd, out, n);
    free(cmd);
    return st;
}

void tu_spit(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s: %s", path, strerror(errno));
    ck_assert_uint_eq(fwrite(buf, 1, n, f), n);
    fclose(f);
}

void tu_rm_rf(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *de;
        while (d && (de = readdir(d)) != NULL) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            char sub[2048];
            snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
            tu_rm_rf(sub);
        }
        if (d) closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}
