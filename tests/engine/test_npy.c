/* tests/engine/test_npy.c — .npy / .npz: numpy-written fixtures, round trips, every error. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/internal.h"   /* ct__host_is_le, ct__swap_bytes, ct__tensor_le_bytes */
#include "engine/npy.h"
#include "testutil.h"

#define FX(name) TU_FIXTURE("npy/" name)

/* ---- helpers ------------------------------------------------------------------------------ */

static bool exists(const char *path) { return access(path, F_OK) == 0; }

/* tests/tmp/<stem>_<pid>.<ext>: unique per process (test runs may overlap) */
static const char *tmp_path(char *buf, size_t cap, const char *stem, const char *ext) {
    if (mkdir("tmp", 0777) != 0) ck_assert_int_eq(errno, EEXIST);
    snprintf(buf, cap, "tmp/%s_%ld.%s", stem, (long)getpid(), ext);
    return buf;
}

static void assert_shape(const ct_tensor *t, ct_dtype dt, int ndim, const int64_t *shape) {
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->dtype, dt);
    ck_assert_int_eq(t->ndim, ndim);
    for (int i = 0; i < ndim; i++) ck_assert_int_eq(t->shape[i], shape[i]);
    if (ct_numel(t) > 0) ck_assert(ct_is_contiguous(t));
}
#define ASSERT_SHAPE(t, dt, ...) assert_shape(t, dt, CT_SHAPE(__VA_ARGS__))

static void assert_msg_has(const tu_errors *errs, const char *want) {
    ck_assert_msg(strstr(errs->last.msg, want) != NULL, "message \"%s\" lacks \"%s\"",
                  errs->last.msg, want);
}

static void assert_i64(const ct_tensor *t, const int64_t *want, int64_t n) {
    ck_assert_int_eq(ct_numel(t), n);
    for (int64_t i = 0; i < n; i++) ck_assert_int_eq(ct_data_i64(t)[i], want[i]);
}

static const float F32_2X3[6] = {0, 0.5f, 1, 1.5f, 2, 2.5f};
static const int64_t I64_NEG[7] = {-3, -2, -1, 0, 1, 1LL << 40, -(1LL << 62)};

/* A .npy image with the given header text (padded and terminated like numpy's) and data. */
static size_t mk_npy(uint8_t *out, size_t cap, const char *header, const void *data, size_t nd) {
    size_t hl = strlen(header) + 1, total = (10 + hl + 63) / 64 * 64;
    ck_assert_uint_le(total + nd, cap);
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    out[8] = (uint8_t)(total - 10);
    out[9] = (uint8_t)((total - 10) >> 8);
    memcpy(out + 10, header, hl - 1);
    memset(out + 10 + hl - 1, ' ', total - 10 - hl);
    out[total - 1] = '\n';
    memcpy(out + total, data, nd);
    return total + nd;
}

/* ---- numpy-written fixtures ----------------------------------------------------------------- */
/* The byte-order helpers the .npy, safetensors and train-state writers share (engine/fileio.c). */
START_TEST(test_le_bytes_helpers) {
    const uint32_t one = 1;
    uint8_t first;
    memcpy(&first, &one, 1);
    ck_assert(ct__host_is_le() == (first == 1));
    uint8_t b[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    ct__swap_bytes(b, 3, 4);
    const uint8_t w4[12] = {4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9};
    ck_assert(memcmp(b, w4, 12) == 0);
    ct__swap_bytes(b, 1, 8);
    const uint8_t w8[12] = {5, 6, 7, 8, 1, 2, 3, 4, 12, 11, 10, 9};
    ck_assert(memcmp(b, w8, 12) == 0);
    ct__swap_bytes(b, 12, 1);   /* one-byte items: unchanged */
    ck_assert(memcmp(b, w8, 12) == 0);
    /* a contiguous host tensor is used in place; a transposed view is copied in C order */
    ct_ctx *ctx = tu_ctx(NULL);
    ct_scope_begin(ctx);
    ct_tensor *a = ct_reshape(ct_arange(ctx, CT_F32, 6), 2, 3);
    const void *bytes = NULL;
    void *owned = (void *)1;
    ck_assert_int_eq(ct__tensor_le_bytes(ctx, "x.npy", a, &bytes, &owned), CT_OK);
    ck_assert_ptr_eq(bytes, ct_data(a));
    ck_assert_ptr_null(owned);
    ct_tensor *at = ct_transpose(a, 0, 1);
    ck_assert_int_eq(ct__tensor_le_bytes(ctx, "x.npy", at, &bytes, &owned), CT_OK);
    ck_assert_ptr_nonnull(owned);
    ck_assert_ptr_eq(bytes, owned);
    const float want[6] = {0, 3, 1, 4, 2, 5};
    ck_assert(memcmp(bytes, want, sizeof want) == 0);
    free(owned);
    ct_scope_end(ctx);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_load_numpy_fixtures) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *t = ct_npy_load(ctx, FX("f32_2x3.npy"));
    ASSERT_SHAPE(t, CT_F32, 2, 3);
    tu_assert_close(t, F32_2X3, 0, 0);

    t = ct_npy_load(ctx, FX("f32_scalar.npy"));
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->ndim, 0);
    ck_assert_int_eq(t->dtype, CT_F32);
    ck_assert(ct_item(t) == 3.25);

    t = ct_npy_load(ctx, FX("f32_3d.npy"));
    ASSERT_SHAPE(t, CT_F32, 2, 3, 4);
    float want3[24];
    for (int i = 0; i < 24; i++) want3[i] = (float)(i - 10) / 4;
    tu_assert_close(t, want3, 0, 0);

    t = ct_npy_load(ctx, FX("f32_empty_0x3.npy"));
    ASSERT_SHAPE(t, CT_F32, 0, 3);
    ck_assert_int_eq(ct_numel(t), 0);

    t = ct_npy_load(ctx, FX("i64_neg.npy"));
    ASSERT_SHAPE(t, CT_I64, 7);
    assert_i64(t, I64_NEG, 7);

    t = ct_npy_load(ctx, FX("i64_scalar.npy"));
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->ndim, 0);
    ck_assert_int_eq(t->dtype, CT_I64);
    ck_assert_int_eq(ct_data_i64(t)[0], -7);

    /* format versions 2.0 and 3.0 (4-byte header length) */
    t = ct_npy_load(ctx, FX("f32_v2.npy"));
    ASSERT_SHAPE(t, CT_F32, 2, 3);
    tu_assert_close(t, F32_2X3, 0, 0);
    t = ct_npy_load(ctx, FX("f32_v3.npy"));
    ASSERT_SHAPE(t, CT_F32, 2, 3);
    tu_assert_close(t, F32_2X3, 0, 0);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_load_mem_and_scope) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    size_t n;
    uint8_t *buf = tu_slurp(FX("i64_neg.npy"), &n);
    int64_t live = ct_ctx_mem_stats(ctx).live_tensors;
    ct_scope_begin(ctx);
    ct_tensor *t = ct_npy_load_mem(ctx, buf, n, "labels");
    ASSERT_SHAPE(t, CT_I64, 7);
    assert_i64(t, I64_NEG, 7);
    ck_assert_int_eq(ct_ctx_mem_stats(ctx).live_tensors, live + 1);   /* owned by the scope */
    ct_scope_end(ctx);
    ck_assert_int_eq(ct_ctx_mem_stats(ctx).live_tensors, live);
    /* a failed load leaves nothing behind, and names the buffer */
    ck_assert_ptr_null(ct_npy_load_mem(ctx, buf, n - 1, "labels"));
    ck_assert_int_eq(errs.last.status, CT_E_FORMAT);
    assert_msg_has(&errs, "labels: data size mismatch");
    ck_assert_ptr_null(ct_npy_load_mem(ctx, buf, 3, NULL));
    assert_msg_has(&errs, "<memory>: truncated");
    ck_assert_int_eq(ct_ctx_mem_stats(ctx).live_tensors, live);
    free(buf);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_npz_numpy_fixtures) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    const char *files[2] = {FX("savez.npz"), FX("savez_compressed.npz")};
    for (int f = 0; f < 2; f++) {
        ct_npz *z = ct_npz_open(ctx, files[f]);
        ck_assert_msg(z != NULL, "%s", errs.last.msg);
        ck_assert_int_eq(ct_npz_count(z), f == 0 ? 2 : 3);
        ck_assert_str_eq(ct_npz_name(z, 0), "weights");
        ck_assert_str_eq(ct_npz_name(z, 1), "labels");
        ck_assert_ptr_null(ct_npz_name(z, ct_npz_count(z)));
        ck_assert_ptr_null(ct_npz_name(z, -1));
        ct_tensor *w = ct_npz_get(z, "weights");
        ASSERT_SHAPE(w, CT_F32, 2, 3);
        tu_assert_close(w, F32_2X3, 0, 0);
        ct_tensor *l = ct_npz_get(z, "labels.npy");     /* the member's own name works too */
        ASSERT_SHAPE(l, CT_I64, 7);
        assert_i64(l, I64_NEG, 7);
        if (f == 1) {
            ct_tensor *r = ct_npz_get(z, "ramp");
            ASSERT_SHAPE(r, CT_F32, 100);
            for (int i = 0; i < 100; i++) ck_assert(ct_data_f32(r)[i] == (float)i);
        }
        ct_npz_close(z);
        /* tensors outlive the archive */
        tu_assert_close(w, F32_2X3, 0, 0);
    }
    ck_assert_int_eq(errs.count, 0);

    /* a member numpy wrote as float64: the message names archive and member */
    ct_npz *z = ct_npz_open(ctx, FX("savez_mixed.npz"));
    ck_assert_ptr_nonnull(z);
    ck_assert_ptr_nonnull(ct_npz_get(z, "good"));
    ck_assert_ptr_null(ct_npz_get(z, "bad"));
    ck_assert_int_eq(errs.last.status, CT_E_FORMAT);
    assert_msg_has(&errs, "savez_mixed.npz:bad.npy: dtype '<f8' (float64)");
    ct_npz_close(z);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- round trips --------------------------------------------------------------------------- */
static ct_tensor *roundtrip(ct_ctx *ctx, const ct_tensor *t, const char *stem) {
    char p[128], tmp[140];
    tmp_path(p, sizeof p, stem, "npy");
    ck_assert_int_eq(ct_npy_save(p, t), CT_OK);
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    ck_assert(!exists(tmp));
    ct_tensor *r = ct_npy_load(ctx, p);
    ck_assert_msg(r != NULL, "%s", ct_ctx_error(ctx));
    ck_assert_int_eq(unlink(p), 0);
    return r;
}

START_TEST(test_roundtrip_npy) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    /* float32: identical bytes to numpy's own file for the same array */
    ct_tensor *a = ct_from_f32(ctx, F32_2X3, CT_SHAPE(2, 3));
    char p[128];
    tmp_path(p, sizeof p, "same_as_numpy", "npy");
    ck_assert_int_eq(ct_npy_save(p, a), CT_OK);
    size_t n1, n2;
    uint8_t *mine = tu_slurp(p, &n1), *theirs = tu_slurp(FX("f32_2x3.npy"), &n2);
    ck_assert_uint_eq(n1, n2);
    ck_assert(memcmp(mine, theirs, n1) == 0);
    ck_assert_uint_eq(mine[8] + 10u, 128u);          /* data starts at a multiple of 64 */
    free(mine);
    free(theirs);
    unlink(p);

    tu_assert_tensors_close(roundtrip(ctx, a, "f32"), a, 0, 0);
    ct_tensor *b = ct_from_i64(ctx, I64_NEG, CT_SHAPE(7));
    ct_tensor *rb = roundtrip(ctx, b, "i64");
    ASSERT_SHAPE(rb, CT_I64, 7);
    assert_i64(rb, I64_NEG, 7);

    /* 0-d */
    ct_tensor *s = roundtrip(ctx, ct_scalar(ctx, -1.75f), "scalar");
    ck_assert_int_eq(s->ndim, 0);
    ck_assert(ct_item(s) == -1.75);
    /* empty */
    ct_tensor *e = roundtrip(ctx, ct_zeros(ctx, CT_SHAPE(4, 0, 2)), "empty");
    ASSERT_SHAPE(e, CT_F32, 4, 0, 2);
    /* 8-d */
    ct_tensor *big = TU_RAND(ctx, 5, -1, 1, 2, 1, 3, 1, 2, 2, 1, 3);
    tu_assert_tensors_close(roundtrip(ctx, big, "ndim8"), big, 0, 0);
    /* non-contiguous: a transposed view, a strided slice, a broadcast (stride 0) view */
    ct_tensor *m = TU_RAND(ctx, 6, -1, 1, 3, 4);
    ct_tensor *mt = ct_transpose(m, 0, 1);
    ck_assert(!ct_is_contiguous(mt));
    ct_tensor *rt = roundtrip(ctx, mt, "transposed");
    ASSERT_SHAPE(rt, CT_F32, 4, 3);
    tu_assert_tensors_close(rt, mt, 0, 0);
    ct_tensor *sl = ct_narrow(m, 1, 1, 2);
    tu_assert_tensors_close(roundtrip(ctx, sl, "narrow"), sl, 0, 0);
    ct_tensor *ex = ct_expand(ct_from_f32(ctx, (float[]){1, 2, 3}, CT_SHAPE(1, 3)), 4, 3);
    tu_assert_tensors_close(roundtrip(ctx, ex, "expand"), ex, 0, 0);
    ct_tensor *ti = ct_transpose(ct_view(ct_arange(ctx, CT_I64, 6), 2, 3), 0, 1);
    ct_tensor *rti = roundtrip(ctx, ti, "i64_t");
    assert_i64(rti, (int64_t[]){0, 3, 1, 4, 2, 5}, 6);

    /* saving over an existing file replaces it */
    tmp_path(p, sizeof p, "overwrite", "npy");
    ck_assert_int_eq(ct_npy_save(p, a), CT_OK);
    ck_assert_int_eq(ct_npy_save(p, b), CT_OK);
    ASSERT_SHAPE(ct_npy_load(ctx, p), CT_I64, 7);
    unlink(p);
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_roundtrip_npz) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_tensor *w = TU_RAND(ctx, 9, -2, 2, 3, 5);
    ct_tensor *l = ct_from_i64(ctx, I64_NEG, CT_SHAPE(7));
    ct_tensor *s = ct_scalar(ctx, 0.125f);
    ct_tensor *e = ct_zeros(ctx, CT_SHAPE(0));
    ct_tensor *wt = ct_transpose(w, 0, 1);
    const char *names[] = {"layer1.weight", "labels", "step", "empty", "w_t"};
    const ct_tensor *ts[] = {w, l, s, e, wt};
    char p[128], tmp[140];
    tmp_path(p, sizeof p, "model", "npz");
    ck_assert_int_eq(ct_npz_save(p, 5, names, ts), CT_OK);
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    ck_assert(!exists(tmp));

    ct_npz *z = ct_npz_open(ctx, p);
    ck_assert_msg(z != NULL, "%s", errs.last.msg);
    ck_assert_int_eq(ct_npz_count(z), 5);
    for (int i = 0; i < 5; i++) ck_assert_str_eq(ct_npz_name(z, i), names[i]);
    tu_assert_tensors_close(ct_npz_get(z, "layer1.weight"), w, 0, 0);
    assert_i64(ct_npz_get(z, "labels"), I64_NEG, 7);
    ct_tensor *rs = ct_npz_get(z, "step");
    ck_assert_int_eq(rs->ndim, 0);
    ck_assert(ct_item(rs) == 0.125);
    ASSERT_SHAPE(ct_npz_get(z, "empty"), CT_F32, 0);
    tu_assert_tensors_close(ct_npz_get(z, "w_t"), wt, 0, 0);
    ck_assert_int_eq(errs.count, 0);

    /* a missing key: the error names it and lists what is there */
    ck_assert_ptr_null(ct_npz_get(z, "bias"));
    ck_assert_int_eq(errs.last.status, CT_E_ARG);
    assert_msg_has(&errs, "no array named 'bias'");
    assert_msg_has(&errs, "the archive has 5: 'layer1.weight', 'labels', 'step', 'empty', 'w_t'");
    ct_npz_close(z);

    /* the local headers carry the right CRC-32 (zip tools check those) */
    size_t n;
    uint8_t *buf = tu_slurp(p, &n);
    ck_assert_uint_eq(buf[0], 'P');
    ck_assert_uint_eq(buf[1], 'K');
    uint32_t crc_local = (uint32_t)buf[14] | (uint32_t)buf[15] << 8 | (uint32_t)buf[16] << 16 |
                         (uint32_t)buf[17] << 24;
    uint32_t size = (uint32_t)buf[18] | (uint32_t)buf[19] << 8 | (uint32_t)buf[20] << 16 |
                    (uint32_t)buf[21] << 24;
    size_t nl = (size_t)buf[26] | (size_t)buf[27] << 8;
    ck_assert_uint_eq(nl, strlen("layer1.weight.npy"));
    ck_assert(memcmp(buf + 30, "layer1.weight.npy", nl) == 0);
    /* the member is exactly what ct_npy_save writes */
    ct_tensor *m = ct_npy_load_mem(ctx, buf + 30 + nl, size, "member");
    tu_assert_tensors_close(m, w, 0, 0);
    uint32_t crc = 0xffffffffu;
    for (uint32_t i = 0; i < size; i++) {
        crc ^= buf[30 + nl + i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
    }
    ck_assert_uint_eq(crc_local, ~crc);
    free(buf);
    unlink(p);

    /* an empty archive */
    ck_assert_int_eq(ct_npz_save(p, 0, NULL, NULL), CT_OK);
    z = ct_npz_open(ctx, p);
    ck_assert_ptr_nonnull(z);
    ck_assert_int_eq(ct_npz_count(z), 0);
    ck_assert_ptr_null(ct_npz_get(z, "x"));
    assert_msg_has(&errs, "the archive has 0: (none)");
    ct_npz_close(z);
    unlink(p);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- errors: unsupported files numpy wrote ------------------------------------------------- */
static const struct { const char *file, *want[3]; } unsupported[] = {
    {FX("bad_f64.npy"), {"bad_f64.npy: dtype '<f8' (float64) (header field 'descr', byte 10) is not "
                         "supported; cantor reads '<f4' (float32) and '<i8' (int64)",
                         "save with arr.astype(np.float32)", NULL}},
    {FX("bad_be_f4.npy"), {"dtype '>f4' (big-endian)", "arr.astype('<f4')", NULL}},
    {FX("bad_fortran.npy"), {"header field 'fortran_order' is True (shape (2, 3))",
                             "np.ascontiguousarray(arr)", NULL}},
    {FX("bad_bool.npy"), {"dtype '|b1' (bool)", "arr.astype(np.float32)", NULL}},
    {FX("bad_i32.npy"), {"dtype '<i4'", "arr.astype(np.int64)", NULL}},
    {FX("bad_object.npy"), {"dtype '|O' (Python objects, pickled)", "np.asarray(arr, dtype=np.float32)", NULL}},
    {FX("bad_ndim9.npy"), {"header field 'shape' has 9 dims; cantor tensors have at most 8", "reshape", NULL}},
    {FX("bad_structured.npy"), {"structured dtypes are not supported", "header field 'descr'", NULL}},
};
#define N_UNSUPPORTED (int)(sizeof unsupported / sizeof unsupported[0])

START_TEST(test_unsupported_numpy_files) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    int64_t live = ct_ctx_mem_stats(ctx).live_tensors;
    ck_assert_ptr_null(ct_npy_load(ctx, unsupported[_i].file));
    ck_assert_int_eq(errs.count, 1);
    ck_assert_int_eq(errs.last.status, CT_E_FORMAT);
    assert_msg_has(&errs, unsupported[_i].file);
    for (int k = 0; k < 3 && unsupported[_i].want[k]; k++) assert_msg_has(&errs, unsupported[_i].want[k]);
    ck_assert_int_eq(ct_ctx_mem_stats(ctx).live_tensors, live);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_os_errors) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ck_assert_ptr_null(ct_npy_load(ctx, "fixtures/npy/no_such_file.npy"));
    ck_assert_int_eq(errs.last.status, CT_E_IO);
    assert_msg_has(&errs, "fixtures/npy/no_such_file.npy: cannot open for reading: No such file or directory");
    ck_assert_ptr_null(ct_npy_load(ctx, "fixtures/npy"));
    ck_assert_int_eq(errs.last.status, CT_E_IO);
    assert_msg_has(&errs, "not a regular file (a directory)");
    ck_assert_ptr_null(ct_npz_open(ctx, "fixtures/npy/no_such_file.npz"));
    ck_assert_int_eq(errs.last.status, CT_E_IO);
    /* saving into a missing directory: CT_E_IO, nothing left behind */
    ct_tensor *a = ct_ones(ctx, CT_SHAPE(2));
    ck_assert_int_eq(ct_npy_save("tmp/no_such_dir/a.npy", a), CT_E_IO);
    assert_msg_has(&errs, "tmp/no_such_dir/a.npy: cannot create the temporary file "
                          "tmp/no_such_dir/a.npy.tmp: No such file or directory");
    const char *names[] = {"a"};
    const ct_tensor *ts[] = {a};
    ck_assert_int_eq(ct_npz_save("tmp/no_such_dir/a.npz", 1, names, ts), CT_E_IO);
    /* bad arguments */
    ck_assert_int_eq(ct_npy_save("x.npy", NULL), CT_E_NULL);
    ck_assert_int_eq(ct_npy_save(NULL, a), CT_E_ARG);
    const char *dup[] = {"a", "a"};
    const ct_tensor *ts2[] = {a, a};
    ck_assert_int_eq(ct_npz_save("tmp/x.npz", 2, dup, ts2), CT_E_ARG);
    assert_msg_has(&errs, "the name 'a' is used twice");
    const char *empty[] = {""};
    ck_assert_int_eq(ct_npz_save("tmp/x.npz", 1, empty, ts), CT_E_ARG);
    assert_msg_has(&errs, "member 0 has an empty name");
    const ct_tensor *nul[] = {a, NULL};
    const char *two[] = {"a", "b"};
    ck_assert_int_eq(ct_npz_save("tmp/x.npz", 2, two, nul), CT_E_NULL);
    assert_msg_has(&errs, "tensor 1 ('b') is NULL");
    ck_assert(!exists("tmp/x.npz"));
    ck_assert_int_eq(ct_npz_count(NULL), 0);
    ck_assert_ptr_null(ct_npz_name(NULL, 0));
    ck_assert_ptr_null(ct_npz_get(NULL, "a"));
    ct_npz_close(NULL);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- errors: damaged and hand-made files ----------------------------------------------------- */
START_TEST(test_truncated_files) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    size_t n;
    uint8_t *buf = tu_slurp(FX("f32_2x3.npy"), &n);
    char p[128];
    tmp_path(p, sizeof p, "truncated", "npy");
    for (size_t k = 0; k < n; k++) {
        tu_spit(p, buf, k);
        errs.count = 0;
        ck_assert_ptr_null(ct_npy_load(ctx, p));
        ck_assert_int_eq(errs.count, 1);
        ck_assert_int_eq(errs.last.status, CT_E_FORMAT);
        ck_assert_msg(strstr(errs.last.msg, p) && strstr(errs.last.msg, "truncated"),
                      "%zu bytes: %s", k, errs.last.msg);
        /* the same from memory */
        ck_assert_ptr_null(ct_npy_load_mem(ctx, buf, k, "m"));
        ck_assert_int_eq(errs.last.status, CT_E_FORMAT);
    }
    tu_spit(p, buf, 0);
    ct_npy_load(ctx, p);
    assert_msg_has(&errs, "truncated: the file has 0 bytes, a .npy file has at least 10");
    tu_spit(p, buf, 100);
    ct_npy_load(ctx, p);
    assert_msg_has(&errs, "the header length at byte 8 is 118 bytes, but only 90 bytes follow "
                          "(file size 100): the file is truncated or damaged");
    tu_spit(p, buf, 140);
    ct_npy_load(ctx, p);
    assert_msg_has(&errs, "data size mismatch: the header says shape (2, 3) of '<f4' = 24 bytes "
                          "from byte 128, but the file has 12 bytes there (file size 140): the "
                          "file is truncated");
    unlink(p);

    /* a header length that points far past the end (version 1 and version 2) */
    uint8_t bad[160];
    memcpy(bad, buf, 152);
    bad[8] = 0x40;
    bad[9] = 0x9c;                                  /* 40000 */
    ck_assert_ptr_null(ct_npy_load_mem(ctx, bad, 152, "h.npy"));
    assert_msg_has(&errs, "h.npy: the header length at byte 8 is 40000 bytes, but only 142 bytes follow");
    memcpy(bad, "\x93NUMPY\x02\x00\xff\xff\xff\x7f", 12);
    ck_assert_ptr_null(ct_npy_load_mem(ctx, bad, 152, "h2.npy"));
    assert_msg_has(&errs, "h2.npy: the header length at byte 8 is 2147483647 bytes, but only 140");
    /* a version 2 file cut inside its 4-byte length */
    ck_assert_ptr_null(ct_npy_load_mem(ctx, bad, 11, "h3.npy"));
    assert_msg_has(&errs, "h3.npy: truncated: the file has 11 bytes, a version 2.0 .npy file has at least 12");
    /* data longer than the shape says */
    memcpy(bad, buf, n);
    memset(bad + n, 0, 4);
    ck_assert_ptr_null(ct_npy_load_mem(ctx, bad, n + 4, "long.npy"));
    assert_msg_has(&errs, "= 24 bytes from byte 128, but the file has 28 bytes there");
    assert_msg_has(&errs, "the file is damaged");
    free(buf);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_bad_magic_and_version) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ck_assert_ptr_null(ct_npy_load_mem(ctx, "hello world, not numpy", 22, "text.npy"));
    ck_assert_int_eq(errs.last.status, CT_E_FORMAT);
    assert_msg_has(&errs, "text.npy: not a .npy file: bytes 0-5 are 68 65 6c 6c 6f 20, expected the "
                          "magic \\x93NUMPY (93 4e 55 4d 50 59)");
    /* an .npz given to the .npy reader */
    ck_assert_ptr_null(ct_npy_load(ctx, FX("savez.npz")));
    assert_msg_has(&errs, "this is a zip archive (an .npz?): open it with ct_npz_open");
    /* short and wrong */
    ck_assert_ptr_null(ct_npy_load_mem(ctx, "\x93NUMPX", 6, "x"));
    assert_msg_has(&errs, "x: not a .npy file");
    /* unknown versions */
    uint8_t img[256];
    size_t n = mk_npy(img, sizeof img, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }",
                      "\0\0\0\0", 4);
    ck_assert_ptr_nonnull(ct_npy_load_mem(ctx, img, n, "ok"));
    img[6] = 4;
    ck_assert_ptr_null(ct_npy_load_mem(ctx, img, n, "v4.npy"));
    assert_msg_has(&errs, "v4.npy: format version 4.0 (bytes 6-7) is not supported; cantor reads "
                          "versions 1.0, 2.0 and 3.0");
    img[6] = 1;
    img[7] = 1;
    ck_assert_ptr_null(ct_npy_load_mem(ctx, img, n, "v11.npy"));
    assert_msg_has(&errs, "format version 1.1");
    ct_ctx_free(ctx);
}
END_TEST

/* header text -> the message it must give (NULL: loads fine) */
static const struct { const char *header, *want; } headers[] = {
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), }", NULL},
    {"{\"shape\": (2, 1), \"descr\": \"<f4\", \"fortran_order\": False}", NULL},   /* any order, no comma */
    {"{'descr':'<f4','fortran_order':False,'shape':(2,1,)}", NULL},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 1L), }", NULL},   /* Python 2 */
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), ",
     "malformed header at byte 128: expected a quoted string, found the end of the header"},
    {"['descr', '<f4']", "malformed header at byte 10: expected '{' at the start of the header, found '['descr'"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), 'extra': 1, }",
     "unexpected or repeated key 'extra'"},
    {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), }",
     "unexpected or repeated key 'descr'"},
    {"{'descr': '<f4', 'shape': (2, 1), }", "the header has no 'fortran_order' key"},
    {"{'descr': '<f4', 'fortran_order': false, 'shape': (2, 1), }",
     "expected True or False for 'fortran_order', found 'false, 'shap'"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (2), }", "'shape' (2) is not a tuple (a 1-tuple is written (2,))"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, -1), }", "'shape' has a negative dimension"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': [2, 1], }", "expected '(' to open the 'shape' tuple"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (2 1), }", "expected ',' or ')' after a dimension"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", "a dimension in 'shape' is too large"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), } x", "unexpected text after the closing '}'"},
    {"{'descr': '<f4, 'fortran_order': False, 'shape': (2, 1), }",
     "expected ',' or '}' after the value of 'descr', found 'fortran_orde'"},
    {"{'descr' '<f4', 'fortran_order': False, 'shape': (2, 1), }", "expected ':' after a key, found ''<f4'"},
    {"{'descr': '<f4', 'fortran_order': False 'shape': (2, 1), }",
     "expected ',' or '}' after the value of 'fortran_order'"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), 'x", "unterminated string"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }",
     "= more than 2^63 bytes"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 0, 4611686018427387904), }",
     "shape (3, 0, 4611686018427387904) of '<f4' = 0 bytes from byte 128, but the file has 8 bytes"},
};
#define N_HEADERS (int)(sizeof headers / sizeof headers[0])

START_TEST(test_malformed_headers) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    uint8_t img[512];
    float data[2] = {1, 2};
    size_t n = mk_npy(img, sizeof img, headers[_i].header, data, sizeof data);
    ct_tensor *t = ct_npy_load_mem(ctx, img, n, "h.npy");
    if (!headers[_i].want) {
        ck_assert_msg(t != NULL, "%s -> %s", headers[_i].header, errs.last.msg);
        ASSERT_SHAPE(t, CT_F32, 2, 1);
        tu_assert_close(t, data, 0, 0);
    } else {
        ck_assert_ptr_null(t);
        ck_assert_int_eq(errs.last.status, CT_E_FORMAT);
        assert_msg_has(&errs, "h.npy: ");
        assert_msg_has(&errs, headers[_i].want);
    }
    ct_ctx_free(ctx);
}
END_TEST

/* little-endian field access in a byte image */
static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, v); put16(p + 2, v >> 16); }

/* opens img (n bytes) as an .npz and reads `key`; returns the status of the first failure */
static ct_status npz_try(ct_ctx *ctx, const uint8_t *img, size_t n, const char *key) {
    char p[128];
    tmp_path(p, sizeof p, "damaged", "npz");
    tu_spit(p, img, n);
    ct_npz *z = ct_npz_open(ctx, p);
    ct_status st = z ? CT_OK : ct_ctx_status(ctx);
    if (z && !ct_npz_get(z, key)) st = ct_ctx_status(ctx);
    ct_npz_close(z);
    unlink(p);
    return st;
}

START_TEST(test_damaged_npz) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    size_t n;
    uint8_t *orig = tu_slurp(FX("savez.npz"), &n), *img = malloc(n + 64);
    ck_assert_uint_eq(get32(orig + n - 22), 0x06054b50u);
    uint32_t cd = get32(orig + n - 22 + 16);
    ck_assert_int_eq(npz_try(ctx, orig, n, "labels"), CT_OK);

    /* every truncation fails cleanly (no EOCD, or a member cut off) */
    for (size_t k = 0; k < n; k++) {
        ck_assert_int_eq(npz_try(ctx, orig, k, "weights"), CT_E_FORMAT);
    }
    ck_assert_int_eq(npz_try(ctx, orig, n - 1, "weights"), CT_E_FORMAT);
    assert_msg_has(&errs, "not a zip archive (.npz): no end-of-central-directory record");
    ck_assert_int_eq(npz_try(ctx, orig, 10, "weights"), CT_E_FORMAT);
    assert_msg_has(&errs, "the file has 10 bytes, a zip has at least 22");
    /* a .npy is not an archive */
    ck_assert_ptr_null(ct_npz_open(ctx, FX("f32_2x3.npy")));
    assert_msg_has(&errs, "this is a .npy file: read it with ct_npy_load");

    /* a flipped data byte: CRC-32 mismatch */
    memcpy(img, orig, n);
    size_t d0 = 30 + (size_t)(orig[26] | orig[27] << 8) + (size_t)(orig[28] | orig[29] << 8);
    img[d0 + 128] ^= 0x01;                          /* weights.npy's first data byte */
    ck_assert_int_eq(npz_try(ctx, img, n, "weights"), CT_E_FORMAT);
    assert_msg_has(&errs, ":weights.npy: CRC-32 mismatch: the data has ");
    /* compression methods and flags (central directory entry 0) */
    memcpy(img, orig, n);
    put16(img + cd + 10, 12);
    ck_assert_int_eq(npz_try(ctx, img, n, "weights"), CT_E_FORMAT);
    assert_msg_has(&errs, "compression method 12 (bzip2) is not supported; cantor reads stored (0) "
                          "and deflated (8) members");
    ck_assert_int_eq(npz_try(ctx, img, n, "labels"), CT_OK);   /* the other member still reads */
    memcpy(img, orig, n);
    put16(img + cd + 8, 1);
    ck_assert_int_eq(npz_try(ctx, img, n, "weights"), CT_E_FORMAT);
    assert_msg_has(&errs, "the member is encrypted");
    /* multi-disk */
    memcpy(img, orig, n);
    put16(img + n - 22 + 4, 1);
    ck_assert_int_eq(npz_try(ctx, img, n, "weights"), CT_E_FORMAT);
    assert_msg_has(&errs, "a multi-disk (split or spanned) zip archive");
    /* a central directory that points past the end record */
    memcpy(img, orig, n);
    put32(img + n - 22 + 16, (uint32_t)n);
    ck_assert_int_eq(npz_try(ctx, img, n, "weights"), CT_E_FORMAT);
    assert_msg_has(&errs, "the central directory (byte 592, ");
    /* more members than the directory can hold */
    memcpy(img, orig, n);
    put16(img + n - 22 + 8, 60);
    put16(img + n - 22 + 10, 60);
    ck_assert_int_eq(npz_try(ctx, img, n, "weights"), CT_E_FORMAT);
    assert_msg_has(&errs, "the end record says 60 members");
    /* a local header offset that points at garbage */
    memcpy(img, orig, n);
    put32(img + cd + 42, 5);
    ck_assert_int_eq(npz_try(ctx, img, n, "weights"), CT_E_FORMAT);
    assert_msg_has(&errs, "no local file header (50 4b 03 04) at byte 5");
    /* sizes larger than the member */
    memcpy(img, orig, n);
    put32(img + cd + 20, 100000);
    put32(img + cd + 24, 100000);
    ck_assert_int_eq(npz_try(ctx, img, n, "weights"), CT_E_FORMAT);
    assert_msg_has(&errs, "run past its end");
    /* a size the npy inside does not match */
    memcpy(img, orig, n);
    put32(img + cd + 20, 150);
    put32(img + cd + 24, 150);
    ck_assert_int_eq(npz_try(ctx, img, n, "weights"), CT_E_FORMAT);
    assert_msg_has(&errs, "weights.npy: data size mismatch");

    /* a deflated archive, damaged */
    free(orig);
    orig = tu_slurp(FX("savez_compressed.npz"), &n);
    img = realloc(img, n + 64);
    cd = get32(orig + n - 22 + 16);
    ck_assert_uint_eq(get32(orig + cd + 10) & 0xffff, 8);
    d0 = 30 + (size_t)(orig[26] | orig[27] << 8) + (size_t)(orig[28] | orig[29] << 8);
    for (size_t k = d0; k < d0 + get32(orig + cd + 20); k++) {   /* the first member's deflate data */
        memcpy(img, orig, n);
        img[k] ^= 0xff;
        ck_assert_int_eq(npz_try(ctx, img, n, "weights"), CT_E_FORMAT);
    }
    memcpy(img, orig, n);
    put32(img + cd + 24, get32(orig + cd + 24) + 1);  /* claims one byte more */
    ck_assert_int_eq(npz_try(ctx, img, n, "weights"), CT_E_FORMAT);
    memcpy(img, orig, n);
    put32(img + cd + 24, get32(orig + cd + 24) - 1);  /* claims one byte less */
    ck_assert_int_eq(npz_try(ctx, img, n, "weights"), CT_E_FORMAT);
    memcpy(img, orig, n);
    put32(img + cd + 24, 0x7ffffff0u);               /* far more than deflate can give */
    ck_assert_int_eq(npz_try(ctx, img, n, "weights"), CT_E_FORMAT);
    assert_msg_has(&errs, "more than deflate can produce");
    ck_assert_int_eq(npz_try(ctx, orig, n, "ramp"), CT_OK);
    free(orig);
    free(img);
    ct_ctx_free(ctx);
}
END_TEST

/* numpy writes zip64 extra fields for members over 4 GiB; rewrite a small archive's central
 * directory that way (sizes and offset 0xffffffff, the values in the extra field). */
START_TEST(test_zip64_central_extra) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    size_t n;
    uint8_t *orig = tu_slurp(FX("savez.npz"), &n);
    uint32_t cd = get32(orig + n - 22 + 16);
    uint8_t *img = malloc(n + 128);
    memcpy(img, orig, cd);
    size_t o = cd, pos = cd;
    for (int k = 0; k < 2; k++) {
        const uint8_t *c = orig + pos;
        size_t nlen = (size_t)c[28] | (size_t)c[29] << 8;
        ck_assert_uint_eq(c[30] | c[31] << 8, 0);
        memcpy(img + o, c, 46 + nlen);
        uint32_t usize = get32(c + 24), csize = get32(c + 20), lho = get32(c + 42);
        put32(img + o + 20, 0xffffffffu);
        put32(img + o + 24, 0xffffffffu);
        put32(img + o + 42, 0xffffffffu);
        put16(img + o + 30, 4 + 24 + 8);
        uint8_t *x = img + o + 46 + nlen;
        put16(x, 0x5455);                            /* an unrelated extra field first */
        put16(x + 2, 4);
        put32(x + 4, 0);
        put16(x + 8, 1);
        put16(x + 10, 24);
        put32(x + 12, usize); put32(x + 16, 0);
        put32(x + 20, csize); put32(x + 24, 0);
        put32(x + 28, lho);   put32(x + 32, 0);
        o += 46 + nlen + 36;
        pos += 46 + nlen;
    }
    memcpy(img + o, orig + n - 22, 22);
    put32(img + o + 12, (uint32_t)(o - cd));
    size_t m = o + 22;
    char p[128];
    tmp_path(p, sizeof p, "zip64", "npz");
    tu_spit(p, img, m);
    ct_npz *z = ct_npz_open(ctx, p);
    ck_assert_msg(z != NULL, "%s", errs.last.msg);
    tu_assert_close(ct_npz_get(z, "weights"), F32_2X3, 0, 0);
    assert_i64(ct_npz_get(z, "labels"), I64_NEG, 7);
    ct_npz_close(z);
    /* the extra field missing: a clear error */
    put16(img + cd + 30, 0);
    memmove(img + cd + 46 + 11, img + cd + 46 + 11 + 36, m - (cd + 46 + 11 + 36));
    m -= 36;
    put32(img + m - 22 + 12, get32(img + m - 22 + 12) - 36);
    tu_spit(p, img, m);
    ck_assert_ptr_null(ct_npz_open(ctx, p));
    assert_msg_has(&errs, "has 32-bit fields set to 0xffffffff but no valid zip64 extra field");
    unlink(p);
    free(orig);
    free(img);
    ct_ctx_free(ctx);
}
END_TEST

Suite *npy_suite(void) {
    Suite *s = suite_create("npy");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_le_bytes_helpers);
    tcase_add_test(tc, test_load_numpy_fixtures);
    tcase_add_test(tc, test_load_mem_and_scope);
    tcase_add_test(tc, test_npz_numpy_fixtures);
    tcase_add_test(tc, test_roundtrip_npy);
    tcase_add_test(tc, test_roundtrip_npz);
    tcase_add_loop_test(tc, test_unsupported_numpy_files, 0, N_UNSUPPORTED);
    tcase_add_test(tc, test_os_errors);
    tcase_add_test(tc, test_truncated_files);
    tcase_add_test(tc, test_bad_magic_and_version);
    tcase_add_loop_test(tc, test_malformed_headers, 0, N_HEADERS);
    tcase_add_test(tc, test_damaged_npz);
    tcase_add_test(tc, test_zip64_central_extra);
    suite_add_tcase(s, tc);
    return s;
}
