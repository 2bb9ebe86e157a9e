/* tests/engine/test_checkpoint.c — safetensors files (round trips, the reference layout, every
 * error), atomic writes, and the training-state file (bit-exact resume, every error).
 * tests/gen_golden_optim.py writes fixtures/optim/torch_layout.safetensors by hand, laid out
 * as the reference writer does, and checks it with the reference reader's rules. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "engine/nn.h"
#include "engine/npy.h"
#include "engine/optim.h"
#include "engine/safetensors.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------------------------------ */

static bool has_bytes(const uint8_t *buf, size_t n, const char *want) {
    size_t k = strlen(want);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(buf + i, want, k) == 0) return true;
    return false;
}

static bool exists(const char *path) { return access(path, F_OK) == 0; }

static const char *tmp_path(char *buf, size_t cap, const char *stem, const char *ext) {
    if (mkdir("tmp", 0777) != 0) ck_assert_int_eq(errno, EEXIST);
    snprintf(buf, cap, "tmp/%s_%ld.%s", stem, (long)getpid(), ext);
    return buf;
}

static void assert_msg_has(const tu_errors *errs, const char *want) {
    ck_assert_msg(strstr(errs->last.msg, want) != NULL, "message \"%s\" lacks \"%s\"",
                  errs->last.msg, want);
}

/* root{w1 [4,3], w2 [2,4], head{bias [2]}} with deterministic values */
typedef struct model { ct_module *root; ct_tensor *w1, *w2, *bias; } model;

static model model_new(ct_ctx *ctx, float seed) {
    model m;
    m.root = ct_module_new(ctx, "Model", 0);
    ct_module *head = ct_module_new(ctx, "Head", 0);
    m.w1 = ct_module_add_param(m.root, "w1", CT_SHAPE(4, 3));
    m.w2 = ct_module_add_param(m.root, "w2", CT_SHAPE(2, 4));
    m.bias = ct_module_add_param(head, "bias", CT_SHAPE(2));
    ck_assert_int_eq(ct_module_add_child(m.root, "head", head), CT_OK);
    float *f = ct_data_f32(ct_module_flat_params(m.root));
    for (int i = 0; i < 22; i++) f[i] = seed + 0.1f * (float)i - 1.0f;
    return m;
}

/* A safetensors image: header text (padded to 8 with spaces) and data bytes. */
static size_t mk_st(uint8_t *out, size_t cap, const char *header, const void *data, size_t nd) {
    size_t hl = strlen(header), padded = (hl + 7) / 8 * 8;
    ck_assert_uint_le(8 + padded + nd, cap);
    for (int i = 0; i < 8; i++) out[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    memcpy(out + 8, header, hl);
    memset(out + 8 + hl, ' ', padded - hl);
    if (nd) memcpy(out + 8 + padded, data, nd);
    return 8 + padded + nd;
}

/* ---- round trips ---------------------------------------------------------------------------------- */
typedef struct metas { int n; char k[4][32], v[4][64]; } metas;

static void on_meta(const char *key, const char *value, void *ud) {
    metas *m = ud;
    ck_assert_int_lt(m->n, 4);
    snprintf(m->k[m->n], sizeof m->k[0], "%s", key);
    snprintf(m->v[m->n++], sizeof m->v[0], "%s", value);
}

START_TEST(test_module_roundtrip) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    model a = model_new(ctx, 0.0f), b = model_new(ctx, 5.0f);
    char p[128];
    tmp_path(p, sizeof p, "roundtrip", "safetensors");
    const char *keys[] = {"step", "note"}, *vals[] = {"1200", "quote \" back\\slash\nnew line \xc3\xa9"};
    ck_assert_int_eq(ct_safetensors_save(p, a.root, 2, keys, vals), CT_OK);
    size_t n;
    uint8_t *img = tu_slurp(p, &n);
    uint64_t hn = 0;
    for (int i = 0; i < 8; i++) hn |= (uint64_t)img[i] << (8 * i);
    ck_assert_uint_eq(hn % 8, 0);
    ck_assert_uint_eq(8 + hn + 22 * 4, n);
    ck_assert(has_bytes(img, n, "\"head.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"));
    ck_assert(has_bytes(img, n, "{\"__metadata__\":{\"step\":\"1200\",\"note\":\"quote \\\" back\\\\slash\\nnew"));
    free(img);
    /* into another model of the same structure */
    metas m = {0};
    ck_assert_int_eq(ct_safetensors_load(p, b.root, on_meta, &m), CT_OK);
    ck_assert(memcmp(ct_data_f32(ct_module_flat_params(a.root)),
                     ct_data_f32(ct_module_flat_params(b.root)), 22 * 4) == 0);
    ck_assert_int_eq(m.n, 2);
    ck_assert_str_eq(m.k[0], "step");
    ck_assert_str_eq(m.v[0], "1200");
    ck_assert_str_eq(m.v[1], vals[1]);
    /* the generic reader */
    ct_safetensors *f = ct_safetensors_open(ctx, p);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(ct_safetensors_count(f), 3);
    ck_assert_str_eq(ct_safetensors_name(f, 0), "head.bias");      /* data order: by name */
    ck_assert_str_eq(ct_safetensors_name(f, 1), "w1");
    ck_assert_str_eq(ct_safetensors_name(f, 2), "w2");
    ck_assert_ptr_null(ct_safetensors_name(f, 3));
    ck_assert_str_eq(ct_safetensors_meta(f, "step"), "1200");
    ck_assert_ptr_null(ct_safetensors_meta(f, "nope"));
    ck_assert_int_eq(ct_safetensors_meta_count(f), 2);
    ck_assert_str_eq(ct_safetensors_meta_key(f, 1), "note");
    ck_assert_str_eq(ct_safetensors_meta_value(f, 1), vals[1]);
    ck_assert_ptr_null(ct_safetensors_meta_key(f, 2));
    ct_dtype dt;
    int nd;
    int64_t sh[CT_MAX_DIMS];
    ck_assert(ct_safetensors_info(f, "w2", &dt, &nd, sh));
    ck_assert(dt == CT_F32 && nd == 2 && sh[0] == 2 && sh[1] == 4);
    ck_assert(!ct_safetensors_info(f, "w3", NULL, NULL, NULL));
    ct_scope_begin(ctx);
    ct_tensor *w2 = ct_safetensors_get(f, "w2");
    tu_assert_tensors_close(w2, a.w2, 0, 0);
    ck_assert_ptr_null(ct_safetensors_get(f, "w3"));
    assert_msg_has(&errs, "no tensor named 'w3'; the file has 3: 'head.bias', 'w1', 'w2'");
    ct_scope_end(ctx);
    ct_safetensors_close(f);
    ct_safetensors_close(NULL);
    /* a module without parameters and no metadata: "{}" padded */
    ct_module *empty = ct_module_new(ctx, "Empty", 0);
    ck_assert_int_eq(ct_safetensors_save(p, empty, 0, NULL, NULL), CT_OK);
    img = tu_slurp(p, &n);
    ck_assert_uint_eq(n, 16);
    ck_assert(memcmp(img, "\x08\0\0\0\0\0\0\0{}      ", 16) == 0);
    free(img);
    ck_assert_int_eq(ct_safetensors_load(p, empty, NULL, NULL), CT_OK);
    ct_module_free(empty);
    unlink(p);
    ct_module_free(a.root);
    ct_module_free(b.root);
    ct_ctx_free(ctx);
}
END_TEST

/* The fixture written by hand in the reference writer's layout: cantor reads it, and writing
 * the same tensors and metadata gives the same bytes. */
START_TEST(test_reference_layout) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    const char *fx = "fixtures/optim/torch_layout.safetensors";
    ct_safetensors *f = ct_safetensors_open(ctx, fx);
    ck_assert_msg(f != NULL, "%s", errs.last.msg);
    ck_assert_int_eq(ct_safetensors_count(f), 7);
    ck_assert_str_eq(ct_safetensors_meta(f, "format"), "pt");
    ct_scope_begin(ctx);
    ct_tensor *w1 = ct_safetensors_get(f, "w1");
    float w1v[12];
    for (int i = 0; i < 12; i++) w1v[i] = (float)i * 0.5f - 2.0f;
    ck_assert_int_eq(w1->ndim, 2);
    ck_assert_int_eq(w1->shape[0], 4);
    tu_assert_close(w1, w1v, 0, 0);
    ct_tensor *steps = ct_safetensors_get(f, "steps");
    ck_assert_int_eq(steps->dtype, CT_I64);
    ck_assert(ct_data_i64(steps)[0] == -1 && ct_data_i64(steps)[1] == (1LL << 40) &&
              ct_data_i64(steps)[2] == 7);
    ct_tensor *sc = ct_safetensors_get(f, "scalar");
    ck_assert_int_eq(sc->ndim, 0);
    ck_assert_float_eq(ct_item(sc), 3.25f);
    ct_tensor *em = ct_safetensors_get(f, "empty");
    ck_assert(em->ndim == 2 && em->shape[0] == 0 && em->shape[1] == 3);
    ct_tensor *un = ct_safetensors_get(f, "\xc3\xbcn\xc3\xaf");
    ck_assert_float_eq(ct_item(un), 1.0f);
    ct_tensor *qu = ct_safetensors_get(f, "q\"uote\\");
    ck_assert_float_eq(ct_item(qu), -2.0f);
    ct_tensor *hb = ct_safetensors_get(f, "head.bias");
    tu_assert_close(hb, ((float[]){0.25f, -1.5f}), 0, 0);
    /* the same tensors written by cantor: byte for byte the reference layout */
    const char *names[] = {"w1", "head.bias", "steps", "scalar", "empty", "\xc3\xbcn\xc3\xaf", "q\"uote\\"};
    const ct_tensor *ts[] = {w1, hb, steps, sc, em, un, qu};
    char p[128];
    tmp_path(p, sizeof p, "layout", "safetensors");
    const char *k = "format", *v = "pt";
    ck_assert_int_eq(ct_safetensors_write(ctx, p, 7, names, ts, 1, &k, &v), CT_OK);
    size_t n1, n2;
    uint8_t *mine = tu_slurp(p, &n1), *ref = tu_slurp(fx, &n2);
    ck_assert_uint_eq(n1, n2);
    ck_assert_msg(memcmp(mine, ref, n1) == 0, "cantor's file differs from the reference layout");
    free(mine);
    free(ref);
    /* non-contiguous and transposed inputs are written in C order */
    ct_tensor *wt = ct_transpose(w1, 0, 1);
    const char *nt = "wt";
    ck_assert_int_eq(ct_safetensors_write(ctx, p, 1, &nt, (const ct_tensor *const *)&wt, 0, NULL, NULL), CT_OK);
    ct_safetensors *g = ct_safetensors_open(ctx, p);
    ct_tensor *back = ct_safetensors_get(g, "wt");
    tu_assert_tensors_close(back, ct_contiguous(wt), 0, 0);
    ct_safetensors_close(g);
    ct_scope_end(ctx);
    ct_safetensors_close(f);
    unlink(p);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_write_errors) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    char p[128];
    tmp_path(p, sizeof p, "werr", "safetensors");
    ct_tensor *t = ct_zeros(ctx, CT_SHAPE(2));
    const ct_tensor *ts[] = {t, t};
    const char *dup[] = {"a", "a"}, *meta[] = {"__metadata__", "b"}, *bad[] = {"\xff", "b"};
    ck_assert_int_eq(ct_safetensors_write(ctx, p, 2, dup, ts, 0, NULL, NULL), CT_E_ARG);
    assert_msg_has(&errs, "two tensors are named 'a'");
    ck_assert_int_eq(ct_safetensors_write(ctx, p, 2, meta, ts, 0, NULL, NULL), CT_E_ARG);
    assert_msg_has(&errs, "is named \"__metadata__\"");
    ck_assert_int_eq(ct_safetensors_write(ctx, p, 2, bad, ts, 0, NULL, NULL), CT_E_ARG);
    assert_msg_has(&errs, "not valid UTF-8");
    const char *ks[] = {"k", "k"}, *vs[] = {"1", "2"};
    ck_assert_int_eq(ct_safetensors_write(ctx, p, 0, NULL, NULL, 2, ks, vs), CT_E_ARG);
    assert_msg_has(&errs, "the metadata key 'k' is given twice");
    ck_assert_int_eq(ct_safetensors_write(ctx, "", 0, NULL, NULL, 0, NULL, NULL), CT_E_ARG);
    ck_assert(!exists(p));
    ct_ctx_free(ctx);
}
END_TEST

/* ---- every reading error ------------------------------------------------------------------------ */
typedef struct bad_case {
    const char *header;          /* NULL: raw bytes below */
    size_t data_bytes;
    ct_status status;
    const char *msg;
} bad_case;

static const bad_case BAD[] = {
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8, CT_E_FORMAT,
     "expected ',' or '}' after an entry of the header object, found the end of the header"},
    {"{\"a\" {\"dtype\":\"F32\"}}", 0, CT_E_FORMAT, "at byte 13: expected ':' after a tensor name"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} x", 8, CT_E_FORMAT,
     "unexpected characters after the header's JSON object"},
    {"[1,2]", 0, CT_E_FORMAT, "at byte 8: expected '{' at the start of the header"},
    {"{\"a", 0, CT_E_FORMAT, "the string that starts here (a tensor name) is not terminated"},
    {"{\"a\\q\":1}", 0, CT_E_FORMAT, "unknown escape '\\q'"},
    {"{\"a\\ud800x\":1}", 0, CT_E_FORMAT, "a lone UTF-16 surrogate \\uD800"},
    {"{\"a\\u0000\":1}", 0, CT_E_UNSUPPORTED, "\\u0000 (a NUL character)"},
    {"{\"a\xff\":{}}", 0, CT_E_FORMAT, "at byte 11: the header is not valid UTF-8 (byte 0xff)"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, CT_E_FORMAT,
     "a dimension of the shape must be a non-negative integer, found a negative number"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8, CT_E_FORMAT,
     "must be an integer, found a fractional"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,99999999999999999999]}}", 8,
     CT_E_FORMAT, "the second data offset: the integer does not fit in 64 bits"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
     CT_E_UNSUPPORTED, "tensor 'a' has more than 8 dims"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", 8, CT_E_FORMAT,
     "unknown field 'x' in the entry of tensor 'a'"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, CT_E_FORMAT,
     "the entry of tensor 'a' lacks \"data_offsets\""},
    {"{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\"}}", 0, CT_E_FORMAT, "the field \"dtype\" appears twice"},
    {"{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, CT_E_UNSUPPORTED,
     "at byte 22: tensor 'a' has dtype F16; cantor reads F32 and I64 only"},
    {"{\"a\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, CT_E_FORMAT,
     "tensor 'a' has an unknown dtype \"Q7\""},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4,3],\"data_offsets\":[0,40]}}", 40, CT_E_FORMAT,
     "tensor 'a' (F32, shape [4, 3]) needs 48 bytes, but its data_offsets [0, 40] span 40"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, CT_E_FORMAT,
     "the end comes before the beginning"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, CT_E_FORMAT,
     "the file is truncated: tensor 'a' ends at byte 72 of the file (data offset 8), but the file has 68 bytes"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12, CT_E_FORMAT,
     "4 bytes after the last tensor's data (from byte 72 of the file) belong to no tensor"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, CT_E_FORMAT,
     "tensors 'a' [0, 8] and 'b' [4, 12] overlap in the data section"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", 20, CT_E_FORMAT,
     "4 bytes between tensors 'a' (ends at 8) and 'b' (begins at 12) belong to no tensor"},
    {"{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, CT_E_FORMAT,
     "the data section's first 4 bytes belong to no tensor"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, CT_E_FORMAT,
     "the tensor name 'a' appears twice (at header bytes 9 and 62)"},
    {"{\"__metadata__\":{\"k\":1}}", 0, CT_E_FORMAT,
     "the metadata value of 'k' must be a string"},
    {"{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, CT_E_FORMAT,
     "the metadata key 'k' appears twice"},
    {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, CT_E_FORMAT,
     "\"__metadata__\" appears twice (first at byte 9)"},
};

START_TEST(test_read_errors) {
    const bad_case *c = &BAD[_i];
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    char p[128];
    tmp_path(p, sizeof p, "bad", "safetensors");
    uint8_t img[512], data[64] = {0};
    size_t n = mk_st(img, sizeof img, c->header, data, c->data_bytes);
    tu_spit(p, img, n);
    ck_assert_ptr_null(ct_safetensors_open(ctx, p));
    ck_assert_int_eq(errs.last.status, c->status);
    assert_msg_has(&errs, c->msg);
    assert_msg_has(&errs, p);            /* the message names the file */
    unlink(p);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_read_errors_framing) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    char p[128];
    tmp_path(p, sizeof p, "frame", "safetensors");
    /* shorter than the length field */
    tu_spit(p, "\x02\0\0", 3);
    ck_assert_ptr_null(ct_safetensors_open(ctx, p));
    assert_msg_has(&errs, "the file has 3 bytes; a safetensors file starts with an 8-byte header length");
    /* header length beyond the file */
    tu_spit(p, "\x40\0\0\0\0\0\0\0{}", 10);
    ck_assert_ptr_null(ct_safetensors_open(ctx, p));
    assert_msg_has(&errs, "the header length at byte 0 says 64 bytes, but only 2 bytes follow it");
    /* header length beyond the format's limit (and the file) */
    tu_spit(p, "\x00\0\0\0\x01\0\0\0{}", 10);
    ck_assert_ptr_null(ct_safetensors_open(ctx, p));
    assert_msg_has(&errs, "says 4294967296 bytes, more than the 100000000 a safetensors header may have");
    tu_spit(p, "\xff\xff\xff\xff\xff\xff\xff\xff{}", 10);
    ck_assert_ptr_null(ct_safetensors_open(ctx, p));
    ck_assert_int_eq(errs.last.status, CT_E_FORMAT);
    /* an unpadded but valid header is accepted */
    tu_spit(p, "\x02\0\0\0\0\0\0\0{}", 10);
    ct_safetensors *f = ct_safetensors_open(ctx, p);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(ct_safetensors_count(f), 0);
    ct_safetensors_close(f);
    /* escapes in names decode: \u00fc, a surrogate pair, \/ and \t */
    uint8_t img[256], data[16] = {0};
    size_t n = mk_st(img, sizeof img, "{\"\\u00fc\\ud83c\\udfb5\\/\\t\":{\"dtype\":\"I64\",\"shape\":[2],"
                     "\"data_offsets\":[0,16]}}", data, 16);
    tu_spit(p, img, n);
    f = ct_safetensors_open(ctx, p);
    ck_assert_msg(f != NULL, "%s", errs.last.msg);
    ck_assert_str_eq(ct_safetensors_name(f, 0), "\xc3\xbc\xf0\x9f\x8e\xb5/\t");
    ct_safetensors_close(f);
    /* missing file, directory */
    ck_assert_ptr_null(ct_safetensors_open(ctx, "tmp/does/not/exist.safetensors"));
    ck_assert_int_eq(errs.last.status, CT_E_IO);
    assert_msg_has(&errs, "No such file or directory");
    ck_assert_ptr_null(ct_safetensors_open(ctx, "tmp"));
    assert_msg_has(&errs, "is a directory");
    unlink(p);
    ct_ctx_free(ctx);
}
END_TEST

/* Loading into a module: missing, unexpected, shape and dtype mismatches; the module is untouched. */
START_TEST(test_load_mismatch) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    model m = model_new(ctx, 0.0f);
    float before[22];
    memcpy(before, ct_data_f32(ct_module_flat_params(m.root)), sizeof before);
    /* the hand-written fixture has w1 and head.bias but also other tensors, and lacks w2 */
    ck_assert_int_eq(ct_safetensors_load("fixtures/optim/torch_layout.safetensors", m.root, NULL, NULL),
                     CT_E_FORMAT);
    assert_msg_has(&errs, "the file does not fit the Model module (3 parameters; the file has 7 "
                   "tensors): missing from the file: 'w2'; in the file but not in the module: "
                   "'steps', 'empty', 'q\"uote\\', 'scalar', '\\xc3\\xbcn\\xc3\\xaf'");
    assert_msg_has(&errs, "nothing was loaded");
    /* shape and dtype mismatches */
    char p[128];
    tmp_path(p, sizeof p, "mismatch", "safetensors");
    ct_scope_begin(ctx);
    const char *names[] = {"w1", "w2", "head.bias"};
    const ct_tensor *ts[] = {ct_zeros(ctx, CT_SHAPE(3, 4)), ct_zeros(ctx, CT_SHAPE(2, 4)),
                             ct_arange(ctx, CT_I64, 2)};
    ck_assert_int_eq(ct_safetensors_write(ctx, p, 3, names, ts, 0, NULL, NULL), CT_OK);
    ct_scope_end(ctx);
    ck_assert_int_eq(ct_safetensors_load(p, m.root, NULL, NULL), CT_E_FORMAT);
    assert_msg_has(&errs, "missing from the file: (none); in the file but not in the module: (none)");
    assert_msg_has(&errs, "'head.bias' is I64 [2] in the file, F32 [2] in the module");
    assert_msg_has(&errs, "'w1' is F32 [3, 4] in the file, F32 [4, 3] in the module");
    ck_assert(memcmp(before, ct_data_f32(ct_module_flat_params(m.root)), sizeof before) == 0);
    /* a bad file: the open error comes through */
    tu_spit(p, "junk", 4);
    ck_assert_int_eq(ct_safetensors_load(p, m.root, NULL, NULL), CT_E_FORMAT);
    ck_assert_int_eq(ct_safetensors_load(p, NULL, NULL, NULL), CT_E_NULL);
    ck_assert(memcmp(before, ct_data_f32(ct_module_flat_params(m.root)), sizeof before) == 0);
    unlink(p);
    ct_module_free(m.root);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- atomic writes ------------------------------------------------------------------------------ */
START_TEST(test_atomic_write) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    model m = model_new(ctx, 0.0f), other = model_new(ctx, 3.0f);
    /* a directory that does not exist */
    ck_assert_int_eq(ct_safetensors_save("tmp/no_such_dir/m.safetensors", m.root, 0, NULL, NULL), CT_E_IO);
    assert_msg_has(&errs, "tmp/no_such_dir/m.safetensors: cannot create the temporary file "
                   "tmp/no_such_dir/m.safetensors.tmp: No such file or directory");
    /* an existing file stays as it was when the write fails: <path>.tmp cannot be created */
    char p[128], tmp[160];
    tmp_path(p, sizeof p, "atomic", "safetensors");
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    ck_assert_int_eq(ct_safetensors_save(p, m.root, 0, NULL, NULL), CT_OK);
    ck_assert(!exists(tmp));
    size_t n0, n1;
    uint8_t *old = tu_slurp(p, &n0);
    ck_assert_int_eq(mkdir(tmp, 0777), 0);
    ck_assert_int_eq(ct_safetensors_save(p, other.root, 0, NULL, NULL), CT_E_IO);
    assert_msg_has(&errs, "Is a directory");
    rmdir(tmp);
    uint8_t *now = tu_slurp(p, &n1);
    ck_assert(n0 == n1 && memcmp(old, now, n0) == 0);
    free(now);
    /* a full disk, simulated with a file-size limit: the write fails with the system's reason,
     * the old file is intact and the temporary file is gone */
    struct rlimit rl0, rl;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &rl0), 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    rl = rl0;
    rl.rlim_cur = 100;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    ct_status st = ct_safetensors_save(p, other.root, 0, NULL, NULL);
    setrlimit(RLIMIT_FSIZE, &rl0);
    signal(SIGXFSZ, prev);
    ck_assert_int_eq(st, CT_E_IO);
    assert_msg_has(&errs, "File too large");
    assert_msg_has(&errs, "was left as it was");
    ck_assert(!exists(tmp));
    now = tu_slurp(p, &n1);
    ck_assert(n0 == n1 && memcmp(old, now, n0) == 0);
    free(now);
    free(old);
    /* and a successful save replaces it */
    ck_assert_int_eq(ct_safetensors_save(p, other.root, 0, NULL, NULL), CT_OK);
    ck_assert_int_eq(ct_safetensors_load(p, m.root, NULL, NULL), CT_OK);
    ck_assert(memcmp(ct_data_f32(ct_module_flat_params(m.root)),
                     ct_data_f32(ct_module_flat_params(other.root)), 22 * 4) == 0);
    unlink(p);
    ct_module_free(m.root);
    ct_module_free(other.root);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- training state ----------------------------------------------------------------------------- */
/* One step on a random batch drawn from rng (so restoring the generator matters). */
static void train(model *m, ct_optim *o, ct_rng *rng, const ct_lr_schedule *s, int64_t *step, int n) {
    ct_ctx *ctx = m->root->ctx;
    for (int k = 0; k < n; k++, (*step)++) {
        ct_scope_begin(ctx);
        ct_tensor *x = ct_randn(ctx, rng, CT_SHAPE(5, 3)), *proj = ct_rand(ctx, rng, CT_SHAPE(5, 2));
        ct_optim_zero_grad(o);
        ct_tensor *h = ct_tanh(ct_matmul(x, ct_transpose(m->w1, 0, 1)));
        ct_tensor *loss = ct_sum_all(ct_mul(ct_add(ct_matmul(h, ct_transpose(m->w2, 0, 1)), m->bias), proj));
        ck_assert_int_eq(ct_backward(loss), CT_OK);
        ck_assert_int_eq(ct_clip_grad_norm(m->root, 1.0f, NULL), CT_OK);
        ct_optim_set_lr(o, ct_lr_at(s, *step, 0.05f));
        ck_assert_int_eq(ct_optim_step(o), CT_OK);
        ct_scope_end(ctx);
    }
}

START_TEST(test_resume_bitexact) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_lr_schedule sched = ct_lr_warmup_cosine(2, 12, 0.001f);
    char wp[128], sp[128];
    tmp_path(wp, sizeof wp, "resume", "safetensors");
    tmp_path(sp, sizeof sp, "resume", "ctts");
    /* uninterrupted: 10 steps */
    ct_rng ra, rb;
    ct_rng_seed(&ra, 77);
    model a = model_new(ctx, 0.0f);
    ct_optim *oa = ct_adamw_new(a.root, ct_adamw_defaults(0.05));
    int64_t sa = 0;
    train(&a, oa, &ra, &sched, &sa, 10);
    /* interrupted after 4: save the weights and the training state, with a user blob */
    ct_rng_seed(&rb, 77);
    model b = model_new(ctx, 0.0f);
    ct_optim *ob = ct_adamw_new(b.root, ct_adamw_defaults(0.05));
    int64_t sb = 0;
    train(&b, ob, &rb, &sched, &sb, 4);
    const char *keys[] = {"step"}, *vals[] = {"4"};
    ck_assert_int_eq(ct_safetensors_save(wp, b.root, 1, keys, vals), CT_OK);
    const ct_rng *rs[] = {&rb};
    const char blob[] = "loader@123";
    ck_assert_int_eq(ct_train_state_save(sp, ob, sb, rs, 1, blob, sizeof blob), CT_OK);
    ct_optim_free(ob);
    ct_module_free(b.root);
    /* a fresh process, in effect: new model (other values), new optimizer, other generator */
    ct_rng rc;
    ct_rng_seed(&rc, 1);
    model c = model_new(ctx, 9.0f);
    ct_optim *oc = ct_adamw_new(c.root, ct_adamw_defaults(0.5));
    ck_assert_int_eq(ct_safetensors_load(wp, c.root, NULL, NULL), CT_OK);
    int64_t sc = -1;
    ct_rng *rl[] = {&rc};
    char got[32] = {0};
    size_t got_n = 0;
    ck_assert_int_eq(ct_train_state_load(sp, oc, &sc, rl, 1, got, sizeof got, &got_n), CT_OK);
    ck_assert_int_eq(sc, 4);
    ck_assert_int_eq(ct_optim_get_step(oc), 4);
    ck_assert(ct_optim_get_lr(oc) == (double)ct_lr_at(&sched, 3, 0.05f));
    ck_assert_uint_eq(got_n, sizeof blob);
    ck_assert_str_eq(got, blob);
    train(&c, oc, &rc, &sched, &sc, 6);
    ck_assert_msg(memcmp(ct_data_f32(ct_module_flat_params(c.root)),
                         ct_data_f32(ct_module_flat_params(a.root)), 22 * 4) == 0,
                  "the resumed run differs from the uninterrupted one");
    float s1[22], s2[22];
    for (int i = 0; i < 2; i++) {
        ct_optim_get_state(oa, i, s1, 22);
        ct_optim_get_state(oc, i, s2, 22);
        ck_assert(memcmp(s1, s2, sizeof s1) == 0);
    }
    ck_assert(memcmp(&ra, &rc, sizeof ra) == 0);
    /* the file's length is exactly as documented: 64 + 2*22*4 + 40 + 11 + 4 */
    size_t n;
    uint8_t *img = tu_slurp(sp, &n);
    ck_assert_uint_eq(n, 64 + 2 * 22 * 4 + 40 + sizeof blob + 4);
    ck_assert(memcmp(img, "CTTS\x01\0\0\0\x02\0\0\0\x02\0\0\0\x16\0\0\0\0\0\0\0\x04", 25) == 0);
    free(img);
    unlink(wp);
    unlink(sp);
    ct_optim_free(oa);
    ct_optim_free(oc);
    ct_module_free(a.root);
    ct_module_free(c.root);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_train_state_errors) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    char sp[128], bp[128];
    tmp_path(sp, sizeof sp, "state", "ctts");
    tmp_path(bp, sizeof bp, "state_bad", "ctts");
    model m = model_new(ctx, 0.0f);
    ct_optim *adam = ct_adam_new(m.root, ct_adam_defaults(0.01));
    ct_rng r;
    ct_rng_seed(&r, 5);
    const ct_rng *rs[] = {&r};
    ct_rng *rl[] = {&r};
    ct_optim_set_step(adam, 3);
    float ones[22];
    for (int i = 0; i < 22; i++) ones[i] = 1.0f;
    ct_optim_set_state(adam, 0, ones, 22);
    ck_assert_int_eq(ct_train_state_save(sp, adam, 9, rs, 1, NULL, 0), CT_OK);
    size_t n;
    uint8_t *img = tu_slurp(sp, &n);
    ck_assert_uint_eq(n, 64 + 2 * 22 * 4 + 40 + 4);
    int64_t step = -7;
    ct_optim *fresh = ct_adam_new(m.root, ct_adam_defaults(0.02));
#define LOAD_FAILS(opt, st_, text)                                                          \
    do {                                                                                    \
        ck_assert_int_eq(ct_train_state_load(bp, opt, &step, rl, 1, NULL, 0, NULL), st_);  \
        assert_msg_has(&errs, text);                                                        \
        ck_assert_int_eq(step, -7);                                                         \
        ck_assert_int_eq(ct_optim_get_step(fresh), 0);                                      \
        ck_assert(ct_optim_get_lr(fresh) == 0.02);                                          \
    } while (0)
    /* wrong magic, a safetensors file, a newer version */
    uint8_t *b = malloc(n);
    memcpy(b, img, n);
    memcpy(b, "XXXX", 4);
    tu_spit(bp, b, n);
    LOAD_FAILS(fresh, CT_E_FORMAT,
               "not a training-state file: bytes 0-3 are 58 58 58 58, expected \"CTTS\"");
    ck_assert_int_eq(ct_safetensors_save(bp, m.root, 0, NULL, NULL), CT_OK);
    LOAD_FAILS(fresh, CT_E_FORMAT, "this looks like a safetensors file");
    memcpy(b, img, n);
    b[4] = 2;
    tu_spit(bp, b, n);
    LOAD_FAILS(fresh, CT_E_FORMAT, "training-state version 2 at byte 4; this build reads "
                                   "version 1: it was written by a newer cantor");
    /* truncated: too short for the header, and one byte short */
    tu_spit(bp, img, 30);
    LOAD_FAILS(fresh, CT_E_FORMAT, "the file has 30 bytes, too few for a training state");
    tu_spit(bp, img, n - 1);
    LOAD_FAILS(fresh, CT_E_FORMAT,
               "which does not match the file's 283 bytes: the file is truncated or damaged");
    /* a flipped bit in the state arrays: the CRC */
    memcpy(b, img, n);
    b[100] ^= 4;
    tu_spit(bp, b, n);
    LOAD_FAILS(fresh, CT_E_FORMAT, "CRC-32 mismatch");
    /* an invalid generator state (all zero) under a valid CRC */
    memcpy(b, img, n);
    memset(b + n - 44, 0, 40);
    uint32_t crc = (uint32_t)crc32(0L, b, (uInt)(n - 4));
    for (int i = 0; i < 4; i++) b[n - 4 + (size_t)i] = (uint8_t)(crc >> (8 * i));
    tu_spit(bp, b, n);
    LOAD_FAILS(fresh, CT_E_FORMAT, "random generator 0 (byte 240) holds an invalid state");
    free(b);
    /* another optimizer kind, another model size, another generator count, a small user buffer */
    tu_spit(bp, img, n);
    ct_optim *sgd = ct_sgd_new(m.root, (ct_sgd_config){.lr = 0.1, .momentum = 0.9});
    ck_assert_int_eq(ct_train_state_load(bp, sgd, &step, rl, 1, NULL, 0, NULL), CT_E_STATE);
    assert_msg_has(&errs, "the file holds the state of a Adam optimizer (2 state arrays) over 22 "
                   "parameters; this optimizer is SGD (1 arrays) over 22 parameters");
    ct_module *small = ct_module_new(ctx, "Small", 0);
    ct_module_add_param(small, "w", CT_SHAPE(3));
    ct_optim *adam_small = ct_adam_new(small, ct_adam_defaults(0.1));
    ck_assert_int_eq(ct_train_state_load(bp, adam_small, &step, rl, 1, NULL, 0, NULL), CT_E_STATE);
    assert_msg_has(&errs, "this optimizer is Adam (2 arrays) over 3 parameters");
    ck_assert_int_eq(ct_train_state_load(bp, fresh, &step, rl, 0, NULL, 0, NULL), CT_E_STATE);
    assert_msg_has(&errs, "the file holds 1 random generators; 0 were passed");
    ck_assert_int_eq(ct_train_state_save(bp, adam, 9, rs, 1, "abcdef", 6), CT_OK);
    char small_buf[4];
    ck_assert_int_eq(ct_train_state_load(bp, fresh, &step, rl, 1, small_buf, sizeof small_buf, NULL),
                     CT_E_ARG);
    assert_msg_has(&errs, "the file holds 6 user bytes; the buffer has room for 4");
    ck_assert_int_eq(ct_optim_get_step(fresh), 0);
    /* the user data may be skipped */
    size_t un = 0;
    ck_assert_int_eq(ct_train_state_load(bp, fresh, &step, rl, 1, NULL, 0, &un), CT_OK);
    ck_assert_uint_eq(un, 6);
    ck_assert_int_eq(step, 9);
    ck_assert_int_eq(ct_optim_get_step(fresh), 3);
    float got[22];
    ct_optim_get_state(fresh, 0, got, 22);
    ck_assert(memcmp(got, ones, sizeof got) == 0);
    /* missing file, failed save */
    ck_assert_int_eq(ct_train_state_load("tmp/none/x.ctts", fresh, &step, rl, 1, NULL, 0, NULL), CT_E_IO);
    assert_msg_has(&errs, "cannot open for reading: No such file or directory");
    ck_assert_int_eq(ct_train_state_save("tmp/none/x.ctts", fresh, 0, NULL, 0, NULL, 0), CT_E_IO);
    assert_msg_has(&errs, "cannot create the temporary file tmp/none/x.ctts.tmp");
    ck_assert_int_eq(ct_train_state_save(sp, NULL, 0, NULL, 0, NULL, 0), CT_E_NULL);
    free(img);
    unlink(sp);
    unlink(bp);
    ct_optim_free(adam);
    ct_optim_free(fresh);
    ct_optim_free(sgd);
    ct_optim_free(adam_small);
    ct_module_free(small);
    ct_module_free(m.root);
    ct_ctx_free(ctx);
}
END_TEST

Suite *checkpoint_suite(void) {
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_module_roundtrip);
    tcase_add_test(tc, test_reference_layout);
    tcase_add_test(tc, test_write_errors);
    tcase_add_loop_test(tc, test_read_errors, 0, (int)(sizeof BAD / sizeof BAD[0]));
    tcase_add_test(tc, test_read_errors_framing);
    tcase_add_test(tc, test_load_mismatch);
    tcase_add_test(tc, test_atomic_write);
    tcase_add_test(tc, test_resume_bitexact);
    tcase_add_test(tc, test_train_state_errors);
    suite_add_tcase(s, tc);
    return s;
}
