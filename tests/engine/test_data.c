/* tests/engine/test_data.c — the data pipeline: items, datasets, transforms, collate, and the
 * loader (determinism across worker counts, reshuffling, resume, bucketing, windows, errors,
 * skipping, early shutdown). */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/data.h"
#include "testutil.h"

/* ---- helpers --------------------------------------------------------------------------------- */
static uint64_t fnv_bytes(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static uint64_t tensor_sig(uint64_t h, const ct_tensor *t) {
    if (!t) return fnv_bytes(h, "null", 4);
    h = fnv_bytes(h, t->shape, sizeof(int64_t) * (size_t)t->ndim);
    return fnv_bytes(h, ct_data(t), (size_t)ct_numel(t) * ct_dtype_size(t->dtype));
}

/* A fingerprint of everything a batch holds. */
static uint64_t batch_sig(const ct_batch *b) {
    uint64_t h = 0xcbf29ce484222325ULL;
    h = fnv_bytes(h, &b->rows, sizeof b->rows);
    h = fnv_bytes(h, &b->steps, sizeof b->steps);
    h = tensor_sig(h, b->inputs);
    h = tensor_sig(h, b->targets);
    h = tensor_sig(h, b->lengths);
    h = tensor_sig(h, b->mask);
    h = fnv_bytes(h, b->index, sizeof(int64_t) * (size_t)b->rows);
    h = fnv_bytes(h, b->offset, sizeof(int64_t) * (size_t)b->rows);
    h = fnv_bytes(h, b->piece_id, sizeof(int64_t) * (size_t)b->rows);
    return h;
}

/* Runs the rest of the current epoch; returns the number of batches (signatures into sigs). */
static int run_epoch(ct_dataloader *dl, uint64_t *sigs, int max) {
    int n = 0;
    const ct_batch *b;
    ct_ctx *ctx = NULL;
    while ((b = ct_dataloader_next(dl)) != NULL) {
        if (!ctx) ctx = b->lengths->ctx;
        ck_assert_int_lt(n, max);
        sigs[n++] = batch_sig(b);
        ct_scope_end(ctx);          /* free the batch's tensors */
        ct_scope_begin(ctx);
    }
    ck_assert_int_eq(ct_dataloader_status(dl), CT_OK);
    return n;
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* A user-written dataset: lens[i] tokens (or frames of width w) whose values depend on the
 * item's generator, so any use of a wrong generator shows; optional failures and delays. */
typedef struct test_ds {
    int64_t n;
    const int64_t *lens;
    int64_t width;            /* 0: tokens; > 0: frames */
    int fail_mod, fail_rem;   /* index % fail_mod == fail_rem fails (fail_mod 0: never) */
    long delay_us;
    atomic_int gets;
} test_ds;

static int64_t tds_len(void *self) { return ((test_ds *)self)->n; }
static int64_t tds_item_len(void *self, int64_t i) { return ((test_ds *)self)->lens[i]; }
static void tds_describe(void *self, int64_t i, char *buf, size_t n) {
    snprintf(buf, n, "described-%lld", (long long)i);
}

static ct_status tds_get(void *self, int64_t i, ct_data_item *out, ct_rng *rng) {
    test_ds *d = self;
    atomic_fetch_add(&d->gets, 1);
    if (d->delay_us) sleep_us(d->delay_us);
    ct_item_set_source(out, "file%lld.mid", (long long)i);
    if (d->fail_mod && i % d->fail_mod == d->fail_rem)
        return ct_item_fail(out, CT_E_FORMAT, "bad header at byte %d", 14);
    int64_t len = d->lens[i];
    ct_status s;
    if (d->width == 0) {
        s = ct_item_set_tokens(out, NULL, len);
        if (s != CT_OK) return s;
        uint64_t r = ct_rng_below(rng, 3);
        for (int64_t t = 0; t < len; t++) out->tokens[t] = i * 1000 + t * 3 + (int64_t)r;
    } else {
        s = ct_item_set_frames(out, NULL, len, d->width);
        if (s != CT_OK) return s;
        for (int64_t k = 0; k < len * d->width; k++)
            out->values[k] = (float)i + (float)ct_rng_uniform(rng);
    }
    return CT_OK;
}

static ct_dataset tds_dataset(test_ds *d) {
    ct_dataset ds = {d, tds_len, tds_get, tds_describe, tds_item_len};
    return ds;
}

static int64_t *lens_range(int64_t n, int64_t lo, int64_t hi, uint64_t seed) {
    int64_t *l = malloc(sizeof(int64_t) * (size_t)n);
    ct_rng r;
    ct_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) l[i] = lo + (int64_t)ct_rng_below(&r, (uint64_t)(hi - lo + 1));
    return l;
}

/* ---- items ------------------------------------------------------------------------------------ */
START_TEST(test_item_basics) {
    ct_data_item it;
    ct_item_init(&it);
    ck_assert_int_eq(it.kind, CT_ITEM_EMPTY);
    ck_assert_int_eq(it.index, -1);
    ck_assert_int_eq(it.piece_id, -1);
    ck_assert_str_eq(ct_item_kind_name(CT_ITEM_TOKENS), "tokens");
    ck_assert_str_eq(ct_item_kind_name(CT_ITEM_FRAMES), "frames");
    ck_assert_str_eq(ct_item_kind_name(CT_ITEM_SAMPLES), "samples");
    ck_assert_str_eq(ct_item_kind_name(CT_ITEM_EMPTY), "empty");

    int64_t tok[5] = {10, 11, 12, 13, 14};
    ck_assert_int_eq(ct_item_set_tokens(&it, tok, 5), CT_OK);
    tok[0] = 99;                                   /* copied */
    ck_assert_int_eq(it.tokens[0], 10);
    ck_assert_int_eq(it.len, 5);
    ck_assert_int_eq(it.width, 1);
    ck_assert_int_eq(ct_item_crop(&it, 1, 3), CT_OK);
    ck_assert_int_eq(it.len, 3);
    ck_assert_int_eq(it.offset, 1);
    ck_assert_int_eq(it.tokens[0], 11);
    ck_assert_int_eq(it.tokens[2], 13);
    ck_assert_int_eq(ct_item_crop(&it, 2, 2), CT_E_ARG);   /* past the end: unchanged */
    ck_assert_ptr_nonnull(strstr(it.error, "not inside"));
    ck_assert_int_eq(it.len, 3);
    ck_assert_int_eq(ct_item_crop(&it, -1, 1), CT_E_ARG);
    ck_assert_int_eq(ct_item_crop(&it, 3, 0), CT_OK);      /* empty at the end is inside */
    ck_assert_int_eq(it.len, 0);
    ck_assert_int_eq(it.offset, 4);

    /* frames: NULL data is zero-filled; replacing data keeps the metadata */
    ck_assert_int_eq(ct_item_set_source(&it, "piece%d.mid", 7), CT_OK);
    ck_assert_int_eq(ct_item_set_frames(&it, NULL, 4, 3), CT_OK);
    ck_assert_int_eq(it.kind, CT_ITEM_FRAMES);
    ck_assert_ptr_null(it.tokens);
    for (int k = 0; k < 12; k++) ck_assert(it.values[k] == 0.0f);
    for (int k = 0; k < 12; k++) it.values[k] = (float)k;
    ck_assert_str_eq(it.source, "piece7.mid");
    ck_assert_int_eq(ct_item_crop(&it, 2, 2), CT_OK);      /* whole frames move */
    ck_assert(it.values[0] == 6.0f && it.values[5] == 11.0f);

    /* deep copy: independent memory, metadata and source, no error */
    ct_data_item c;
    ct_item_init(&c);
    it.piece_id = 3;
    ck_assert_int_eq(ct_item_copy(&c, &it), CT_OK);
    ck_assert_int_eq(c.kind, CT_ITEM_FRAMES);
    ck_assert_int_eq(c.len, 2);
    ck_assert_int_eq(c.width, 3);
    ck_assert_int_eq(c.piece_id, 3);
    ck_assert_int_eq(c.offset, it.offset);
    ck_assert_ptr_ne(c.values, it.values);
    ck_assert_ptr_ne(c.source, it.source);
    ck_assert_str_eq(c.source, "piece7.mid");
    ck_assert_ptr_null(c.error);
    c.values[0] = -1.0f;
    ck_assert(it.values[0] == 6.0f);
    ck_assert_int_eq(ct_item_copy(&c, &c), CT_OK);

    /* samples; argument errors leave the item as it was */
    float smp[3] = {0.5f, -0.5f, 0.25f};
    ck_assert_int_eq(ct_item_set_samples(&c, smp, 3), CT_OK);
    ck_assert_int_eq(c.kind, CT_ITEM_SAMPLES);
    ck_assert(c.values[2] == 0.25f);
    ck_assert_int_eq(ct_item_set_tokens(&c, NULL, -1), CT_E_ARG);
    ck_assert_ptr_nonnull(strstr(c.error, "negative"));
    ck_assert_int_eq(ct_item_set_frames(&c, NULL, 2, 0), CT_E_ARG);
    ck_assert_ptr_nonnull(strstr(c.error, "width 0"));
    ck_assert_int_eq(ct_item_set_frames(&c, NULL, INT64_MAX / 2, 4), CT_E_ARG);
    ck_assert_ptr_nonnull(strstr(c.error, "too large"));
    ck_assert_int_eq(c.kind, CT_ITEM_SAMPLES);
    ck_assert_int_eq(c.len, 3);

    /* fail: formats, replaces, returns the status */
    ck_assert_int_eq(ct_item_fail(&c, CT_E_IO, "cannot read %s", "x.mid"), CT_E_IO);
    ck_assert_str_eq(c.error, "cannot read x.mid");
    ck_assert_int_eq(ct_item_set_source(&c, NULL), CT_OK);
    ck_assert_ptr_null(c.source);

    ct_item_free(&c);
    ck_assert_int_eq(c.kind, CT_ITEM_EMPTY);
    ck_assert_ptr_null(c.values);
    ck_assert_ptr_null(c.error);
    ct_item_free(&c);               /* twice is fine */
    ct_item_free(NULL);
    ct_item_free(&it);
}
END_TEST

/* ---- datasets ----------------------------------------------------------------------------------- */
START_TEST(test_mem_dataset) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_mem_dataset *m = ct_mem_dataset_new(ctx);
    ck_assert_ptr_nonnull(m);
    int64_t a[3] = {1, 2, 3};
    float fr[6] = {0, 1, 2, 3, 4, 5};
    ck_assert_int_eq(ct_mem_dataset_add_tokens(m, a, 3, "a.mid"), CT_OK);
    ck_assert_int_eq(ct_mem_dataset_add_frames(m, fr, 3, 2, NULL), CT_OK);
    ck_assert_int_eq(ct_mem_dataset_add_samples(m, fr, 6, "s.wav"), CT_OK);
    ct_tensor *t = ct_arange(ctx, CT_I64, 4);
    ck_assert_int_eq(ct_mem_dataset_add_tensor(m, t, "t"), CT_OK);
    ct_tensor *f2 = ct_transpose(ct_reshape(ct_arange(ctx, CT_F32, 6), 3, 2), 0, 1);  /* strided */
    ck_assert_int_eq(ct_mem_dataset_add_tensor(m, f2, NULL), CT_OK);
    ck_assert_int_eq(ct_mem_dataset_add_tensor(m, ct_arange(ctx, CT_F32, 5), NULL), CT_OK);
    ck_assert_int_eq(errs.count, 0);

    /* errors, in ctx */
    ck_assert_int_eq(ct_mem_dataset_add_tensor(m, ct_zeros(ctx, CT_SHAPE(2, 2, 2)), NULL),
                     CT_E_SHAPE);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "[2, 2, 2]"));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "float32 [len, width]"));
    ck_assert_int_eq(ct_mem_dataset_add_tensor(m, ct_arange(ctx, CT_I64, 4), NULL), CT_OK);
    ck_assert_int_eq(ct_mem_dataset_add_tensor(m, NULL, NULL), CT_E_NULL);
    ck_assert_int_eq(ct_mem_dataset_add_tokens(m, NULL, 3, NULL), CT_E_NULL);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "data is NULL"));
    ck_assert_int_eq(ct_mem_dataset_add_tokens(m, a, -2, NULL), CT_E_ARG);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "item 7"));
    ck_assert_int_eq(ct_mem_dataset_add_frames(m, fr, 1, 0, NULL), CT_E_ARG);

    ct_dataset ds = ct_mem_dataset_as(m);
    ck_assert_int_eq(ct_dataset_len(&ds), 7);
    ck_assert_int_eq(ct_dataset_len(NULL), -1);
    ck_assert_int_eq(ds.item_len(ds.self, 1), 3);
    ck_assert_int_eq(ds.item_len(ds.self, 99), -1);
    char buf[64];
    ck_assert_str_eq(ct_dataset_describe(&ds, 0, buf, sizeof buf), "a.mid");
    ck_assert_str_eq(ct_dataset_describe(&ds, 1, buf, sizeof buf), "item 1");
    ck_assert_str_eq(ct_dataset_describe(NULL, 5, buf, sizeof buf), "item 5");

    ct_data_item it;
    ct_item_init(&it);
    ck_assert_int_eq(ct_dataset_get(&ds, 0, &it, NULL), CT_OK);
    ck_assert_int_eq(it.kind, CT_ITEM_TOKENS);
    ck_assert_int_eq(it.index, 0);
    ck_assert_int_eq(it.piece_id, 0);
    ck_assert_str_eq(it.source, "a.mid");
    it.tokens[0] = 42;                             /* a copy: the dataset keeps its own */
    ck_assert_int_eq(ct_dataset_get(&ds, 0, &it, NULL), CT_OK);
    ck_assert_int_eq(it.tokens[0], 1);
    ck_assert_int_eq(ct_dataset_get(&ds, 4, &it, NULL), CT_OK);   /* the transposed tensor */
    ck_assert_int_eq(it.kind, CT_ITEM_FRAMES);
    ck_assert_int_eq(it.len, 2);
    ck_assert_int_eq(it.width, 3);
    const float want[6] = {0, 2, 4, 1, 3, 5};
    for (int k = 0; k < 6; k++) ck_assert(it.values[k] == want[k]);
    ck_assert_int_eq(ct_dataset_get(&ds, 5, &it, NULL), CT_OK);
    ck_assert_int_eq(it.kind, CT_ITEM_SAMPLES);
    ck_assert_int_eq(it.piece_id, 5);
    ck_assert_int_eq(ct_dataset_get(&ds, 7, &it, NULL), CT_E_ARG);
    ck_assert_ptr_nonnull(strstr(it.error, "out of range [0, 7)"));
    ck_assert_int_eq(it.kind, CT_ITEM_EMPTY);
    ck_assert_int_eq(ct_dataset_get(&ds, -1, &it, NULL), CT_E_ARG);
    ck_assert_int_eq(ct_dataset_get(NULL, 0, &it, NULL), CT_E_ARG);
    ct_item_free(&it);
    ct_mem_dataset_free(m);
    ct_mem_dataset_free(NULL);
    ct_ctx_free(ctx);
}
END_TEST

static ct_status get_nothing(void *self, int64_t i, ct_data_item *out, ct_rng *rng) {
    return CT_OK;
}
static ct_status get_fails_quietly(void *self, int64_t i, ct_data_item *out, ct_rng *rng) {
    ct_item_set_tokens(out, NULL, 3);
    ct_item_set_source(out, "quiet%lld", (long long)i);
    return CT_E_IO;
}
static int64_t len_three(void *self) { return 3; }

START_TEST(test_dataset_get_checks) {
    ct_dataset ds = {NULL, len_three, get_nothing, NULL, NULL};
    ct_data_item it;
    ct_item_init(&it);
    ck_assert_int_eq(ct_dataset_get(&ds, 1, &it, NULL), CT_E_STATE);
    ck_assert_ptr_nonnull(strstr(it.error, "no data"));
    ck_assert_int_eq(it.index, 1);
    ds.get = get_fails_quietly;
    ck_assert_int_eq(ct_dataset_get(&ds, 2, &it, NULL), CT_E_IO);
    ck_assert_ptr_nonnull(strstr(it.error, "get failed"));
    ck_assert_str_eq(it.source, "quiet2");          /* the source survives for the report */
    ck_assert_ptr_null(it.tokens);                  /* the data does not */
    ct_item_free(&it);
}
END_TEST

/* ---- transforms --------------------------------------------------------------------------------- */
static void tokens_item(ct_data_item *it, int64_t n) {
    ct_item_init(it);
    ck_assert_int_eq(ct_item_set_tokens(it, NULL, n), CT_OK);
    for (int64_t t = 0; t < n; t++) it->tokens[t] = t;
}

START_TEST(test_random_crop) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_transform crop;
    ck_assert_int_eq(ct_transform_random_crop(ctx, &crop, 4), CT_OK);
    ct_rng r, r0;
    ct_rng_seed(&r, 5);
    ct_data_item it;
    /* shorter and equal: unchanged, nothing drawn */
    for (int64_t n = 0; n <= 4; n++) {
        tokens_item(&it, n);
        r0 = r;
        ck_assert_int_eq(ct_transform_apply(&crop, &it, &r), CT_OK);
        ck_assert_int_eq(it.len, n);
        ck_assert_int_eq(it.offset, 0);
        ck_assert(memcmp(&r, &r0, sizeof r) == 0);
        ct_item_free(&it);
    }
    /* one longer: both starts occur; ten longer: every start 0..6 occurs, about uniformly */
    int seen5[2] = {0, 0}, seen10[7] = {0};
    for (int trial = 0; trial < 700; trial++) {
        tokens_item(&it, 5);
        ck_assert_int_eq(ct_transform_apply(&crop, &it, &r), CT_OK);
        ck_assert_int_eq(it.len, 4);
        ck_assert_int_eq(it.tokens[0], it.offset);          /* a contiguous window */
        ck_assert_int_eq(it.tokens[3], it.offset + 3);
        seen5[it.offset]++;
        ct_item_free(&it);
        tokens_item(&it, 10);
        ck_assert_int_eq(ct_transform_apply(&crop, &it, &r), CT_OK);
        ck_assert_int_le(it.offset, 6);
        seen10[it.offset]++;
        ct_item_free(&it);
    }
    ck_assert_int_gt(seen5[0], 250);
    ck_assert_int_gt(seen5[1], 250);
    for (int k = 0; k < 7; k++) ck_assert_int_gt(seen10[k], 60);   /* 100 expected each */
    /* frames crop whole frames */
    ct_item_init(&it);
    ct_item_set_frames(&it, NULL, 9, 2);
    for (int k = 0; k < 18; k++) it.values[k] = (float)k;
    ck_assert_int_eq(ct_transform_apply(&crop, &it, &r), CT_OK);
    ck_assert_int_eq(it.len, 4);
    ck_assert(it.values[0] == (float)(2 * it.offset));
    ct_item_free(&it);
    ct_transform_free(&crop);
    ck_assert_ptr_null(crop.fn);
    /* bad arguments */
    ck_assert_int_eq(ct_transform_random_crop(ctx, &crop, 0), CT_E_ARG);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "max_len 0"));
    ck_assert_int_eq(ct_transform_random_crop(ctx, NULL, 3), CT_E_NULL);
    ct_transform_free(NULL);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_add_noise) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_transform nz, nz0;
    ck_assert_int_eq(ct_transform_add_noise(ctx, &nz, 0.5f), CT_OK);
    ck_assert_int_eq(ct_transform_add_noise(ctx, &nz0, 0.0f), CT_OK);
    ct_rng r;
    ct_rng_seed(&r, 9);
    ct_data_item it;
    ct_item_init(&it);
    const int64_t n = 20000;
    ck_assert_int_eq(ct_item_set_samples(&it, NULL, n), CT_OK);
    for (int64_t k = 0; k < n; k++) it.values[k] = 3.0f;
    ck_assert_int_eq(ct_transform_apply(&nz0, &it, &r), CT_OK);     /* std 0: identity */
    for (int64_t k = 0; k < n; k++) ck_assert(it.values[k] == 3.0f);
    ct_transform_free(&nz0);
    ck_assert_int_eq(ct_transform_apply(&nz, &it, &r), CT_OK);
    double s = 0, s2 = 0;
    for (int64_t k = 0; k < n; k++) {
        double d = it.values[k] - 3.0;
        s += d;
        s2 += d * d;
    }
    ck_assert_double_lt(fabs(s / n), 0.02);                     /* mean 0 (sd 0.0035) */
    ck_assert_double_lt(fabs(sqrt(s2 / n) - 0.5), 0.02);        /* std 0.5 */
    /* the same generator state gives the same noise */
    ct_data_item a, b;
    ct_item_init(&a);
    ct_item_init(&b);
    ct_item_set_frames(&a, NULL, 4, 3);
    ct_item_set_frames(&b, NULL, 4, 3);
    ct_rng ra, rb;
    ct_rng_seed(&ra, 77);
    rb = ra;
    ct_transform_apply(&nz, &a, &ra);
    ct_transform_apply(&nz, &b, &rb);
    ck_assert(memcmp(a.values, b.values, 12 * sizeof(float)) == 0);
    ck_assert(a.values[0] != 0.0f);
    /* tokens are refused, the message names the transform */
    ct_data_item t;
    tokens_item(&t, 3);
    ck_assert_int_eq(ct_transform_apply(&nz, &t, &r), CT_E_DTYPE);
    ck_assert_ptr_nonnull(strstr(t.error, "add_noise: "));
    ck_assert_ptr_nonnull(strstr(t.error, "not to tokens"));
    ck_assert_int_eq(t.tokens[1], 1);
    /* arguments */
    ck_assert_int_eq(ct_transform_add_noise(ctx, &nz0, -1.0f), CT_E_ARG);
    ck_assert_int_eq(ct_transform_add_noise(ctx, &nz0, NAN), CT_E_ARG);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "finite"));
    ct_item_free(&it);
    ct_item_free(&a);
    ct_item_free(&b);
    ct_item_free(&t);
    ct_transform_free(&nz);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_scale) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_transform fixed, ranged;
    ck_assert_int_eq(ct_transform_scale(ctx, &fixed, 2.0f, 2.0f), CT_OK);
    ck_assert_int_eq(ct_transform_scale(ctx, &ranged, 0.5f, 1.5f), CT_OK);
    ct_rng r, r0;
    ct_rng_seed(&r, 3);
    ct_data_item it;
    ct_item_init(&it);
    ct_item_set_frames(&it, NULL, 2, 2);
    for (int k = 0; k < 4; k++) it.values[k] = (float)(k + 1);
    r0 = r;
    ck_assert_int_eq(ct_transform_apply(&fixed, &it, &r), CT_OK);
    for (int k = 0; k < 4; k++) ck_assert(it.values[k] == 2.0f * (float)(k + 1));
    ck_assert(memcmp(&r, &r0, sizeof r) == 0);                 /* a fixed gain draws nothing */
    /* one gain per item, in [lo, hi), spread over the range */
    float gmin = 10, gmax = 0;
    for (int trial = 0; trial < 500; trial++) {
        ct_item_set_samples(&it, NULL, 3);
        for (int k = 0; k < 3; k++) it.values[k] = (float)(k + 1);
        ck_assert_int_eq(ct_transform_apply(&ranged, &it, &r), CT_OK);
        float g = it.values[0];
        ck_assert_float_eq_tol(it.values[1], 2 * g, 1e-5f);
        ck_assert_float_eq_tol(it.values[2], 3 * g, 1e-5f);
        ck_assert(g >= 0.5f && g < 1.5f);
        if (g < gmin) gmin = g;
        if (g > gmax) gmax = g;
    }
    ck_assert_float_lt(gmin, 0.55f);
    ck_assert_float_gt(gmax, 1.45f);
    ct_data_item t;
    tokens_item(&t, 2);
    ck_assert_int_eq(ct_transform_apply(&ranged, &t, &r), CT_E_DTYPE);
    ck_assert_ptr_nonnull(strstr(t.error, "scale: "));
    ck_assert_int_eq(ct_transform_scale(ctx, &fixed, 2.0f, 1.0f), CT_E_ARG);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "lo <= hi"));
    ck_assert_int_eq(ct_transform_scale(ctx, &fixed, 0.0f, INFINITY), CT_E_ARG);
    ct_item_free(&it);
    ct_item_free(&t);
    ct_transform_free(&fixed);
    ct_transform_free(&ranged);
    ct_ctx_free(ctx);
}
END_TEST

/* user-defined transforms: add a constant to tokens; record the first draw; always fail */
typedef struct add_state { int64_t k; int *freed; } add_state;
static ct_status add_fn(void *state, ct_data_item *it, ct_rng *rng) {
    const add_state *s = state;
    if (it->kind != CT_ITEM_TOKENS) return ct_item_fail(it, CT_E_DTYPE, "tokens only");
    for (int64_t t = 0; t < it->len; t++) it->tokens[t] += s->k;
    return CT_OK;
}
static ct_status double_fn(void *state, ct_data_item *it, ct_rng *rng) {
    for (int64_t t = 0; t < it->len; t++) it->tokens[t] *= 2;
    return CT_OK;
}
static void add_free(void *state) {
    add_state *s = state;
    (*s->freed)++;
    free(s);
}
static ct_status draw_fn(void *state, ct_data_item *it, ct_rng *rng) {
    *(uint64_t *)state = ct_rng_u64(rng);
    return CT_OK;
}
static ct_status fail_fn(void *state, ct_data_item *it, ct_rng *rng) { return CT_E_FORMAT; }

static ct_transform add_transform(int64_t k, int *freed) {
    add_state *s = malloc(sizeof *s);
    s->k = k;
    s->freed = freed;
    return ct_transform_make("add", add_fn, s, add_free);
}

START_TEST(test_compose) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    int freed = 0;
    ct_transform ts[3] = {add_transform(1, &freed), ct_transform_make("double", double_fn, NULL, NULL),
                          add_transform(-3, &freed)};
    ct_transform comp;
    ck_assert_int_eq(ct_compose(ctx, &comp, 3, ts), CT_OK);
    ct_rng r;
    ct_rng_seed(&r, 1);
    ct_data_item it;
    tokens_item(&it, 4);
    ck_assert_int_eq(ct_transform_apply(&comp, &it, &r), CT_OK);
    for (int64_t t = 0; t < 4; t++) ck_assert_int_eq(it.tokens[t], (t + 1) * 2 - 3);   /* in order */
    ct_item_free(&it);
    ck_assert_int_eq(freed, 0);
    ct_transform_free(&comp);                       /* owns the states */
    ck_assert_int_eq(freed, 2);

    /* transform i draws from fork(rng, i); the caller's generator is not advanced */
    uint64_t got[2];
    ct_transform d2[2] = {ct_transform_make("d0", draw_fn, &got[0], NULL),
                          ct_transform_make("d1", draw_fn, &got[1], NULL)};
    ck_assert_int_eq(ct_compose(ctx, &comp, 2, d2), CT_OK);
    tokens_item(&it, 1);
    ct_rng before = r;
    ck_assert_int_eq(ct_transform_apply(&comp, &it, &r), CT_OK);
    ck_assert(memcmp(&before, &r, sizeof r) == 0);
    ct_rng f0 = ct_rng_fork(&r, 0), f1 = ct_rng_fork(&r, 1);
    ck_assert_uint_eq(got[0], ct_rng_u64(&f0));
    ck_assert_uint_eq(got[1], ct_rng_u64(&f1));
    ct_transform_free(&comp);

    /* a failure stops the chain; its message carries the transform's name */
    int freed2 = 0;
    ct_transform tf[3] = {add_transform(5, &freed2), ct_transform_make("broken", fail_fn, NULL, NULL),
                          add_transform(100, &freed2)};
    ck_assert_int_eq(ct_compose(ctx, &comp, 3, tf), CT_OK);
    ck_assert_int_eq(ct_transform_apply(&comp, &it, &r), CT_E_FORMAT);
    ck_assert_str_eq(it.error, "broken: failed (bad file format)");
    ck_assert_int_eq(it.tokens[0], 5);              /* the first ran, the third did not */
    ct_transform_free(&comp);
    ck_assert_int_eq(freed2, 2);
    /* an error message of the transform's own is kept after the prefix */
    ct_transform only = add_transform(1, &freed2);
    ct_data_item fr;
    ct_item_init(&fr);
    ct_item_set_frames(&fr, NULL, 2, 2);
    ck_assert_int_eq(ct_transform_apply(&only, &fr, &r), CT_E_DTYPE);
    ck_assert_str_eq(fr.error, "add: tokens only");
    ct_transform_free(&only);
    /* nameless transforms add no prefix; a NULL transform or empty compose is the identity */
    ct_transform nameless = ct_transform_make(NULL, fail_fn, NULL, NULL);
    ck_assert_int_eq(ct_transform_apply(&nameless, &fr, &r), CT_E_FORMAT);
    ck_assert_str_eq(fr.error, "add: tokens only");             /* kept as it was */
    ct_item_free(&fr);
    ct_item_init(&fr);
    ct_item_set_frames(&fr, NULL, 1, 1);
    ck_assert_int_eq(ct_transform_apply(&nameless, &fr, &r), CT_E_FORMAT);
    ck_assert_str_eq(fr.error, "transform failed (bad file format)");
    ck_assert_int_eq(ct_transform_apply(NULL, &it, &r), CT_OK);
    ck_assert_int_eq(ct_compose(ctx, &comp, 0, NULL), CT_OK);
    ck_assert_int_eq(ct_transform_apply(&comp, &it, NULL), CT_OK);
    ck_assert_int_eq(it.tokens[0], 5);
    ct_transform_free(&comp);
    ck_assert_int_eq(ct_compose(ctx, &comp, -1, NULL), CT_E_ARG);
    ck_assert_int_eq(ct_compose(ctx, &comp, 2, NULL), CT_E_ARG);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "compose"));
    ct_item_free(&it);
    ct_item_free(&fr);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- collate ------------------------------------------------------------------------------------ */
static double at2(const ct_tensor *t, int64_t i, int64_t j) {
    int64_t ix[2] = {i, j};
    return ct_get(t, ix);
}
static double at3(const ct_tensor *t, int64_t i, int64_t j, int64_t k) {
    int64_t ix[3] = {i, j, k};
    return ct_get(t, ix);
}

START_TEST(test_collate_tokens) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_data_item items[3];
    const int64_t lens[3] = {4, 2, 3};
    for (int i = 0; i < 3; i++) {
        ct_item_init(&items[i]);
        ct_item_set_tokens(&items[i], NULL, lens[i]);
        for (int64_t t = 0; t < lens[i]; t++) items[i].tokens[t] = 10 * (i + 1) + t;
        items[i].index = 7 + i;
        items[i].piece_id = 100 + i;
        items[i].offset = i;
    }
    for (int bf = 0; bf < 2; bf++) {
        ct_collate_opts o = ct_collate_defaults();
        ck_assert_int_eq(o.ignore_index, -100);
        o.batch_first = bf;
        o.pad_token = -1;
        ct_batch b = {0};
        ck_assert_int_eq(ct_collate(ctx, items, 3, &o, NULL, &b), CT_OK);
        ck_assert_int_eq(b.kind, CT_ITEM_TOKENS);
        ck_assert_int_eq(b.rows, 3);
        ck_assert_int_eq(b.steps, 4);
        ck_assert_int_eq(b.items, 3);
        ck_assert_int_eq(b.epoch, -1);
        ck_assert_ptr_null(b.targets);
        ck_assert_int_eq(b.inputs->dtype, CT_I64);
        ck_assert_int_eq(b.inputs->ndim, 2);
        ck_assert_int_eq(b.inputs->shape[0], bf ? 3 : 4);
        ck_assert_int_eq(b.mask->shape[0], bf ? 3 : 4);
        for (int i = 0; i < 3; i++) {
            ck_assert_int_eq(ct_data_i64(b.lengths)[i], lens[i]);
            ck_assert_int_eq(b.index[i], 7 + i);
            ck_assert_int_eq(b.piece_id[i], 100 + i);
            ck_assert_int_eq(b.offset[i], i);
            for (int64_t t = 0; t < 4; t++) {
                double v = bf ? at2(b.inputs, i, t) : at2(b.inputs, t, i);
                double mk = bf ? at2(b.mask, i, t) : at2(b.mask, t, i);
                ck_assert(v == (t < lens[i] ? 10 * (i + 1) + t : -1));
                ck_assert(mk == (t < lens[i] ? 1.0 : 0.0));
            }
        }
        ck_assert_double_eq_tol(ct_batch_padding(&b), 1.0 - 9.0 / 12.0, 1e-12);
        ct_batch_clear(&b);
        ck_assert_ptr_null(b.index);
    }
    /* next-step targets: inputs [0, n-1), targets [1, n), padding targets ignore_index */
    ct_collate_opts o = ct_collate_defaults();
    o.targets = true;
    ct_batch b = {0};
    ck_assert_int_eq(ct_collate(ctx, items, 3, &o, NULL, &b), CT_OK);
    ck_assert_int_eq(b.steps, 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(ct_data_i64(b.lengths)[i], lens[i] - 1);
        for (int64_t t = 0; t < 3; t++) {
            if (t < lens[i] - 1) {
                ck_assert(at2(b.inputs, t, i) == 10 * (i + 1) + t);
                ck_assert(at2(b.targets, t, i) == 10 * (i + 1) + t + 1);
            } else {
                ck_assert(at2(b.inputs, t, i) == 0);
                ck_assert(at2(b.targets, t, i) == -100);
            }
        }
    }
    /* cross-entropy skips the padded targets: the loss equals the mean over valid positions */
    ct_scope_begin(ctx);
    ct_tensor *logits = TU_RAND(ctx, 4, -1, 1, 3, 3, 64);
    ct_tensor *ce = ct_cross_entropy(ct_reshape(logits, 9, 64), ct_reshape(b.targets, 9), -100);
    ck_assert_ptr_nonnull(ce);
    double want = 0;
    int cnt = 0;
    for (int64_t t = 0; t < 3; t++)
        for (int i = 0; i < 3; i++) {
            if (t >= lens[i] - 1) continue;
            double mx = -1e9, se = 0;
            for (int c = 0; c < 64; c++) mx = fmax(mx, at3(logits, t, i, c));
            for (int c = 0; c < 64; c++) se += exp(at3(logits, t, i, c) - mx);
            want += mx + log(se) - at3(logits, t, i, (int64_t)at2(b.targets, t, i));
            cnt++;
        }
    ck_assert_double_eq_tol(ct_item(ce), want / cnt, 1e-5);
    ct_scope_end(ctx);
    ct_batch_clear(&b);
    for (int i = 0; i < 3; i++) ct_item_free(&items[i]);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_collate_frames_samples) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_data_item items[2];
    const int64_t lens[2] = {3, 5};
    for (int i = 0; i < 2; i++) {
        ct_item_init(&items[i]);
        ct_item_set_frames(&items[i], NULL, lens[i], 2);
        for (int64_t k = 0; k < lens[i] * 2; k++) items[i].values[k] = (float)(100 * i + k);
    }
    for (int bf = 0; bf < 2; bf++) {
        ct_collate_opts o = ct_collate_defaults();
        o.batch_first = bf;
        o.targets = true;
        o.pad_value = -7.0f;
        ct_batch b = {0};
        ck_assert_int_eq(ct_collate(ctx, items, 2, &o, NULL, &b), CT_OK);
        ck_assert_int_eq(b.inputs->dtype, CT_F32);
        ck_assert_int_eq(b.inputs->ndim, 3);
        ck_assert_int_eq(b.width, 2);
        ck_assert_int_eq(b.steps, 4);
        ck_assert_int_eq(b.inputs->shape[2], 2);
        for (int i = 0; i < 2; i++)
            for (int64_t t = 0; t < 4; t++)
                for (int w = 0; w < 2; w++) {
                    double in = bf ? at3(b.inputs, i, t, w) : at3(b.inputs, t, i, w);
                    double tg = bf ? at3(b.targets, i, t, w) : at3(b.targets, t, i, w);
                    if (t < lens[i] - 1) {
                        ck_assert(in == 100 * i + 2 * t + w);
                        ck_assert(tg == 100 * i + 2 * (t + 1) + w);
                    } else {
                        ck_assert(in == -7.0 && tg == -7.0);
                    }
                }
        ct_batch_clear(&b);
    }
    /* samples collate as width-1 frames */
    ct_data_item s[2];
    for (int i = 0; i < 2; i++) {
        ct_item_init(&s[i]);
        ct_item_set_samples(&s[i], NULL, 2 + i);
        for (int k = 0; k < 2 + i; k++) s[i].values[k] = 0.5f * (float)k;
    }
    ct_batch b = {0};
    ck_assert_int_eq(ct_collate(ctx, s, 2, NULL, NULL, &b), CT_OK);
    ck_assert_int_eq(b.kind, CT_ITEM_SAMPLES);
    ck_assert_int_eq(b.inputs->ndim, 3);
    ck_assert_int_eq(b.inputs->shape[0], 3);
    ck_assert_int_eq(b.inputs->shape[1], 2);
    ck_assert_int_eq(b.inputs->shape[2], 1);
    ck_assert(at3(b.inputs, 2, 1, 0) == 1.0);
    ck_assert(at3(b.inputs, 2, 0, 0) == 0.0);
    ct_batch_clear(&b);
    for (int i = 0; i < 2; i++) {
        ct_item_free(&items[i]);
        ct_item_free(&s[i]);
    }
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_collate_errors) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_data_item it[3];
    for (int i = 0; i < 3; i++) ct_item_init(&it[i]);
    ct_item_set_tokens(&it[0], NULL, 3);
    ct_item_set_frames(&it[1], NULL, 3, 4);
    it[1].index = 12;
    ct_item_set_source(&it[1], "b.mid");
    ct_batch b = {0};
    ck_assert_int_eq(ct_collate(ctx, it, 2, NULL, NULL, &b), CT_E_SHAPE);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "item 1 (index 12, b.mid) is frames of width 4"));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "item 0 is tokens"));
    ck_assert_ptr_null(b.inputs);
    ct_item_set_frames(&it[0], NULL, 3, 5);
    ck_assert_int_eq(ct_collate(ctx, it, 2, NULL, NULL, &b), CT_E_SHAPE);   /* widths differ */
    ct_item_set_frames(&it[0], NULL, 1, 4);
    ct_collate_opts o = ct_collate_defaults();
    o.targets = true;
    ck_assert_int_eq(ct_collate(ctx, it, 2, &o, NULL, &b), CT_E_SHAPE);     /* 1 value, targets */
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "item 0 has 1 steps"));
    ck_assert_int_eq(ct_collate(ctx, &it[2], 1, NULL, NULL, &b), CT_E_ARG);  /* no data */
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "has no data"));
    ck_assert_int_eq(ct_collate(ctx, it, 0, NULL, NULL, &b), CT_E_ARG);
    o = ct_collate_defaults();
    o.max_len = -1;
    ck_assert_int_eq(ct_collate(ctx, &it[1], 1, &o, NULL, &b), CT_E_ARG);
    o.max_len = 2;                                  /* longer than the window, no generator */
    ck_assert_int_eq(ct_collate(ctx, &it[1], 1, &o, NULL, &b), CT_E_ARG);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "rng is NULL"));
    o.window = (ct_window_mode)7;
    ck_assert_int_eq(ct_collate(ctx, &it[1], 1, &o, NULL, &b), CT_E_ARG);
    ck_assert_int_eq(ct_collate(ctx, &it[1], 1, NULL, NULL, NULL), CT_E_NULL);
    ck_assert_int_eq(ct_collate(NULL, &it[1], 1, NULL, NULL, &b), CT_E_NULL);
    ck_assert_double_eq(ct_batch_padding(&b), 0.0);
    ck_assert_double_eq(ct_batch_padding(NULL), 0.0);
    ct_batch_clear(NULL);
    for (int i = 0; i < 3; i++) ct_item_free(&it[i]);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_collate_windows) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_data_item it[2];
    const int64_t lens[2] = {11, 3};
    for (int i = 0; i < 2; i++) {
        ct_item_init(&it[i]);
        ct_item_set_tokens(&it[i], NULL, lens[i]);
        for (int64_t t = 0; t < lens[i]; t++) it[i].tokens[t] = 100 * i + t;
        it[i].index = i;
        it[i].offset = 1000 * i;
    }
    ct_collate_opts o = ct_collate_defaults();
    o.targets = true;
    o.max_len = 4;
    /* training: one random window of 4 steps per longer item, contiguous, starts spread */
    ct_rng r;
    ct_rng_seed(&r, 8);
    int seen[7] = {0};
    for (int trial = 0; trial < 300; trial++) {
        ct_batch b = {0};
        ck_assert_int_eq(ct_collate(ctx, it, 2, &o, &r, &b), CT_OK);
        ck_assert_int_eq(b.rows, 2);
        ck_assert_int_eq(b.steps, 4);
        int64_t st = b.offset[0];
        ck_assert_int_le(st, 6);                   /* 10 steps - 4 */
        seen[st]++;
        for (int64_t t = 0; t < 4; t++) {
            ck_assert(at2(b.inputs, t, 0) == st + t);
            ck_assert(at2(b.targets, t, 0) == st + t + 1);
        }
        ck_assert_int_eq(b.offset[1], 1000);      /* the short one is whole */
        ck_assert_int_eq(ct_data_i64(b.lengths)[1], 2);
        ct_batch_clear(&b);
        ct_scope_end(ctx);
        ct_scope_begin(ctx);
    }
    for (int k = 0; k < 7; k++) ck_assert_int_gt(seen[k], 15);
    /* evaluation: every consecutive window; with targets they overlap by one value, so each
     * target is predicted once: 10 steps -> windows of 4, 4, 2 */
    o.window = CT_WINDOW_CONSECUTIVE;
    ct_batch b = {0};
    ck_assert_int_eq(ct_collate(ctx, it, 2, &o, NULL, &b), CT_OK);
    ck_assert_int_eq(b.rows, 4);
    ck_assert_int_eq(b.items, 2);
    const int64_t wl[4] = {4, 4, 2, 2}, wo[4] = {0, 4, 8, 1000}, wi[4] = {0, 0, 0, 1};
    int covered[11] = {0};
    for (int rr = 0; rr < 4; rr++) {
        ck_assert_int_eq(ct_data_i64(b.lengths)[rr], wl[rr]);
        ck_assert_int_eq(b.offset[rr], wo[rr]);
        ck_assert_int_eq(b.index[rr], wi[rr]);
        for (int64_t t = 0; t < wl[rr]; t++)
            if (wi[rr] == 0) covered[(int)at2(b.targets, t, rr)]++;
        if (wl[rr] < 4) ck_assert(at2(b.targets, wl[rr], rr) == -100);   /* padding */
    }
    ck_assert_int_eq(covered[0], 0);
    for (int k = 1; k < 11; k++) ck_assert_int_eq(covered[k], 1);
    ct_batch_clear(&b);
    /* without targets: non-overlapping windows 4, 4, 3 */
    o.targets = false;
    ck_assert_int_eq(ct_collate(ctx, it, 1, &o, NULL, &b), CT_OK);
    ck_assert_int_eq(b.rows, 3);
    ck_assert_int_eq(ct_data_i64(b.lengths)[2], 3);
    ck_assert(at2(b.inputs, 0, 2) == 8);
    ct_batch_clear(&b);

    /* ct_collate_window: the worker-side cut, max_len steps (+1 value with targets) */
    o = ct_collate_defaults();
    o.max_len = 4;
    o.targets = true;
    ct_rng r0 = r;
    ck_assert_int_eq(ct_collate_window(&it[1], &o, &r), CT_OK);   /* fits: nothing drawn */
    ck_assert(memcmp(&r, &r0, sizeof r) == 0);
    ck_assert_int_eq(it[1].len, 3);
    ck_assert_int_eq(ct_collate_window(&it[0], &o, &r), CT_OK);
    ck_assert_int_eq(it[0].len, 5);
    ck_assert_int_eq(it[0].tokens[0], it[0].offset);
    ck_assert_int_eq(ct_collate_window(&it[0], &o, NULL), CT_OK);  /* now it fits */
    o.targets = false;
    ck_assert_int_eq(ct_collate_window(&it[0], &o, NULL), CT_E_ARG);
    ck_assert_ptr_nonnull(strstr(it[0].error, "no generator"));
    o.window = CT_WINDOW_CONSECUTIVE;                            /* evaluation: untouched */
    ck_assert_int_eq(ct_collate_window(&it[0], &o, NULL), CT_OK);
    ck_assert_int_eq(it[0].len, 5);
    ck_assert_int_eq(ct_collate_window(NULL, &o, NULL), CT_E_NULL);
    for (int i = 0; i < 2; i++) ct_item_free(&it[i]);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- the loader --------------------------------------------------------------------------------- */
START_TEST(test_loader_sequential) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    int64_t lens[10];
    for (int i = 0; i < 10; i++) lens[i] = 1 + i % 4;
    test_ds d = {.n = 10, .lens = lens};
    ct_dataset ds = tds_dataset(&d);
    for (int drop = 0; drop < 2; drop++) {
        ct_dataloader_opts o = ct_dataloader_defaults();
        ck_assert_int_eq(o.batch_size, 32);
        o.batch_size = 4;
        o.drop_last = drop;
        ct_dataloader *dl = ct_dataloader_new(ctx, &ds, &o);
        ck_assert_ptr_nonnull(dl);
        ck_assert_int_eq(ct_dataloader_num_batches(dl), drop ? 2 : 3);
        for (int epoch = 0; epoch < 2; epoch++) {
            int64_t next = 0;
            int nb = 0;
            const ct_batch *b;
            ct_scope_begin(ctx);
            while ((b = ct_dataloader_next(dl)) != NULL) {
                ck_assert_int_eq(b->epoch, epoch);
                ck_assert_int_eq(b->number, nb);
                ck_assert_int_eq(b->rows, nb < 2 ? 4 : 2);
                for (int64_t r = 0; r < b->rows; r++) {
                    ck_assert_int_eq(b->index[r], next);
                    ck_assert_int_eq(ct_data_i64(b->lengths)[r], lens[next]);
                    ck_assert(at2(b->inputs, 0, r) >= next * 1000);
                    next++;
                }
                nb++;
                ct_dataloader_pos p = ct_dataloader_position(dl);
                ck_assert_int_eq(p.epoch, epoch);
                ck_assert_int_eq(p.batch, nb);
                ck_assert_int_eq(p.item, nb * 4 > 10 ? 10 : nb * 4);
            }
            ct_scope_end(ctx);
            ck_assert_int_eq(ct_dataloader_status(dl), CT_OK);
            ck_assert_int_eq(nb, drop ? 2 : 3);
            const ct_data_report *rep = ct_dataloader_epoch_report(dl);
            ck_assert_int_eq(rep->epoch, epoch);
            ck_assert_int_eq(rep->batches, nb);
            ck_assert_int_eq(rep->items, drop ? 8 : 10);
            ck_assert_int_eq(rep->skipped, 0);
            ck_assert_int_eq(ct_dataloader_report(dl)->epoch, epoch + 1);
            ck_assert_int_eq(ct_dataloader_position(dl).epoch, epoch + 1);
        }
        ct_dataloader_free(dl);
    }
    ck_assert_int_eq(errs.count, 0);
    ct_ctx_free(ctx);
}
END_TEST

/* The full configuration the determinism and resume tests use: frames with per-item random
 * content, a composed transform (user-defined + crop + noise + scale), random windows. */
typedef struct rig {
    int64_t *lens;
    test_ds d;
    ct_dataset ds;
    ct_transform tf;
} rig;

static ct_status jitter_fn(void *state, ct_data_item *it, ct_rng *rng) {   /* user-defined */
    float shift = (float)ct_rng_below(rng, 5);
    for (int64_t k = 0; k < it->len * it->width; k++) it->values[k] += shift;
    return CT_OK;
}

static void rig_init(rig *g, ct_ctx *ctx, int64_t n, int64_t width, uint64_t seed) {
    g->lens = lens_range(n, 2, 40, seed);
    memset(&g->d, 0, sizeof g->d);
    g->d.n = n;
    g->d.lens = g->lens;
    g->d.width = width;
    g->ds = tds_dataset(&g->d);
    ct_transform parts[4];
    parts[0] = ct_transform_make("jitter", jitter_fn, NULL, NULL);
    ck_assert_int_eq(ct_transform_random_crop(ctx, &parts[1], 30), CT_OK);
    ck_assert_int_eq(ct_transform_add_noise(ctx, &parts[2], 0.1f), CT_OK);
    ck_assert_int_eq(ct_transform_scale(ctx, &parts[3], 0.5f, 2.0f), CT_OK);
    ck_assert_int_eq(ct_compose(ctx, &g->tf, 4, parts), CT_OK);
}
static void rig_free(rig *g) {
    ct_transform_free(&g->tf);
    free(g->lens);
}

static ct_dataloader_opts rig_opts(rig *g, ct_sampler sampler, int workers, uint64_t seed) {
    ct_dataloader_opts o = ct_dataloader_defaults();
    o.batch_size = 6;
    o.sampler = sampler;
    o.seed = seed;
    o.workers = workers;
    o.transform = &g->tf;
    o.bucket_batches = 3;
    o.collate.targets = true;
    o.collate.max_len = 12;
    return o;
}

START_TEST(test_loader_deterministic_across_workers) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    rig g;
    rig_init(&g, ctx, 63, 3, 11);
    const ct_sampler samplers[3] = {CT_SAMPLER_SEQUENTIAL, CT_SAMPLER_RANDOM, CT_SAMPLER_BUCKET};
    const int workers[3] = {0, 1, 3};
    for (int s = 0; s < 3; s++) {
        uint64_t ref[2][16];
        int nref[2] = {0, 0};
        for (int w = 0; w < 3; w++) {
            ct_dataloader_opts o = rig_opts(&g, samplers[s], workers[w], 2024);
            ct_dataloader *dl = ct_dataloader_new(ctx, &g.ds, &o);
            ck_assert_ptr_nonnull(dl);
            ct_scope_begin(ctx);
            for (int e = 0; e < 2; e++) {
                uint64_t sig[16];
                int n = run_epoch(dl, sig, 16);
                ck_assert_int_eq(n, 11);
                if (w == 0) {
                    memcpy(ref[e], sig, sizeof sig);
                    nref[e] = n;
                } else {
                    ck_assert_int_eq(n, nref[e]);
                    for (int k = 0; k < n; k++)
                        ck_assert_msg(sig[k] == ref[e][k],
                                      "sampler %d, %d workers, epoch %d: batch %d differs from 0 "
                                      "workers", s, workers[w], e, k);
                }
            }
            ct_scope_end(ctx);
            ct_dataloader_free(dl);
        }
        /* the randomness is real: epoch 1 differs from epoch 0 (even sequential: the item
         * generators depend on the epoch) */
        int same = 0;
        for (int k = 0; k < 11; k++) same += ref[0][k] == ref[1][k];
        ck_assert_int_eq(same, 0);
    }
    ck_assert_int_eq(errs.count, 0);
    rig_free(&g);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_loader_reshuffles) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    int64_t lens[50];
    for (int i = 0; i < 50; i++) lens[i] = 3;
    test_ds d = {.n = 50, .lens = lens};
    ct_dataset ds = tds_dataset(&d);
    int64_t orders[3][50];
    for (int run = 0; run < 3; run++) {
        ct_dataloader_opts o = ct_dataloader_defaults();
        o.batch_size = 8;
        o.sampler = CT_SAMPLER_RANDOM;
        o.seed = run == 2 ? 8 : 7;
        o.workers = run == 1 ? 2 : 0;
        ct_dataloader *dl = ct_dataloader_new(ctx, &ds, &o);
        for (int e = 0; e < 2; e++) {
            int64_t order[50];
            int k = 0;
            const ct_batch *b;
            ct_scope_begin(ctx);
            while ((b = ct_dataloader_next(dl)) != NULL)
                for (int64_t r = 0; r < b->rows; r++) order[k++] = b->index[r];
            ct_scope_end(ctx);
            ck_assert_int_eq(k, 50);
            int seen[50] = {0};                    /* a permutation */
            for (int i = 0; i < 50; i++) seen[order[i]]++;
            for (int i = 0; i < 50; i++) ck_assert_int_eq(seen[i], 1);
            if (e == 0) memcpy(orders[run], order, sizeof order);
            else {
                int same = 0;                      /* a new permutation each epoch */
                for (int i = 0; i < 50; i++) same += order[i] == orders[run][i];
                ck_assert_int_lt(same, 10);
            }
        }
        ct_dataloader_free(dl);
    }
    ck_assert(memcmp(orders[0], orders[1], sizeof orders[0]) == 0);   /* same seed */
    ck_assert(memcmp(orders[0], orders[2], sizeof orders[0]) != 0);   /* another seed */
    int sorted = 1;
    for (int i = 0; i < 50; i++) sorted &= orders[0][i] == i;
    ck_assert(!sorted);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_loader_resume) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    rig g;
    rig_init(&g, ctx, 40, 2, 5);
    const ct_sampler samplers[2] = {CT_SAMPLER_RANDOM, CT_SAMPLER_BUCKET};
    for (int s = 0; s < 2; s++) {
        /* the uninterrupted run: 3 epochs of 7 batches */
        ct_dataloader_opts o = rig_opts(&g, samplers[s], 2, 99);
        ct_dataloader *dl = ct_dataloader_new(ctx, &g.ds, &o);
        uint64_t full[3][8];
        ct_scope_begin(ctx);
        for (int e = 0; e < 3; e++) ck_assert_int_eq(run_epoch(dl, full[e], 8), 7);
        ct_scope_end(ctx);
        ct_dataloader_free(dl);
        /* save after k batches of epoch 1 (k = 0, 4, 7 = its end), resume in a new loader with
         * another worker count and another seed in its options (the saved state wins) */
        const int ks[3] = {0, 4, 7};
        for (int ki = 0; ki < 3; ki++) {
            dl = ct_dataloader_new(ctx, &g.ds, &o);
            uint8_t state[CT_DATALOADER_STATE_BYTES];
            uint64_t sig[8];
            ct_scope_begin(ctx);
            run_epoch(dl, sig, 8);
            for (int k = 0; k < ks[ki]; k++) {
                const ct_batch *b = ct_dataloader_next(dl);
                ck_assert_ptr_nonnull(b);
                ck_assert_uint_eq(batch_sig(b), full[1][k]);
            }
            ct_dataloader_save(dl, state);
            ct_dataloader_pos p = ct_dataloader_position(dl);
            ck_assert_int_eq(p.epoch, 1);
            ck_assert_int_eq(p.batch, ks[ki]);
            ct_dataloader_free(dl);                 /* mid-epoch, workers fetching ahead */

            ct_dataloader_opts o2 = rig_opts(&g, samplers[s], ki, 12345);
            ct_dataloader *dl2 = ct_dataloader_new(ctx, &g.ds, &o2);
            ck_assert_int_eq(ct_dataloader_load(dl2, state, sizeof state), CT_OK);
            ck_assert_int_eq(ct_dataloader_position(dl2).batch, ks[ki]);
            ck_assert_int_eq(ct_dataloader_position(dl2).item, p.item);
            ck_assert_int_eq(ct_dataloader_report(dl2)->batches, ks[ki]);
            int n = run_epoch(dl2, sig, 8);
            ck_assert_int_eq(n, 7 - ks[ki]);
            for (int k = 0; k < n; k++) ck_assert_uint_eq(sig[k], full[1][ks[ki] + k]);
            ck_assert_int_eq(ct_dataloader_epoch_report(dl2)->batches, 7);   /* counters too */
            ck_assert_int_eq(run_epoch(dl2, sig, 8), 7);
            for (int k = 0; k < 7; k++) ck_assert_uint_eq(sig[k], full[2][k]);
            ct_scope_end(ctx);
            ct_dataloader_free(dl2);
        }
    }
    ck_assert_int_eq(errs.count, 0);
    rig_free(&g);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_loader_load_errors) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    rig g;
    rig_init(&g, ctx, 40, 2, 5);
    ct_dataloader_opts o = rig_opts(&g, CT_SAMPLER_RANDOM, 0, 1);
    ct_dataloader *dl = ct_dataloader_new(ctx, &g.ds, &o);
    ct_scope_begin(ctx);
    ck_assert_ptr_nonnull(ct_dataloader_next(dl));
    uint8_t st[CT_DATALOADER_STATE_BYTES], bad[CT_DATALOADER_STATE_BYTES];
    ct_dataloader_save(dl, st);
    ck_assert_int_eq(ct_dataloader_load(dl, st, 10), CT_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "10 bytes"));
    ck_assert_int_eq(ct_dataloader_status(dl), CT_E_FORMAT);
    memcpy(bad, st, sizeof st);
    bad[0] = 'X';
    ck_assert_int_eq(ct_dataloader_load(dl, bad, sizeof bad), CT_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "CTDL"));
    memcpy(bad, st, sizeof st);
    bad[60] ^= 1;                                  /* the batch field, checksum now wrong */
    ck_assert_int_eq(ct_dataloader_load(dl, bad, sizeof bad), CT_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "checksum"));
    /* other configurations refuse it, naming what differs */
    ct_dataloader_opts o2 = o;
    o2.batch_size = 5;
    ct_dataloader *d2 = ct_dataloader_new(ctx, &g.ds, &o2);
    ck_assert_int_eq(ct_dataloader_load(d2, st, sizeof st), CT_E_STATE);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "batch_size 6"));
    ct_dataloader_free(d2);
    o2 = o;
    o2.sampler = CT_SAMPLER_SEQUENTIAL;
    d2 = ct_dataloader_new(ctx, &g.ds, &o2);
    ck_assert_int_eq(ct_dataloader_load(d2, st, sizeof st), CT_E_STATE);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "another sampler"));
    ct_dataloader_free(d2);
    g.d.n = 39;
    d2 = ct_dataloader_new(ctx, &g.ds, &o);
    ck_assert_int_eq(ct_dataloader_load(d2, st, sizeof st), CT_E_STATE);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "40 items"));
    ct_dataloader_free(d2);
    g.d.n = 40;
    ck_assert_int_eq(ct_dataloader_load(NULL, st, sizeof st), CT_E_NULL);
    /* after the failures the loader goes on where it was */
    ct_dataloader_pos p = ct_dataloader_position(dl);
    ck_assert_int_eq(p.batch, 1);
    const ct_batch *b = ct_dataloader_next(dl);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(b->number, 1);
    /* and the good state loads */
    ck_assert_int_eq(ct_dataloader_load(dl, st, sizeof st), CT_OK);
    ck_assert_int_eq(ct_dataloader_status(dl), CT_OK);
    ck_assert_int_eq(ct_dataloader_next(dl)->number, 1);
    ct_scope_end(ctx);
    ct_dataloader_free(dl);
    rig_free(&g);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_loader_bucketing) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    /* a skewed length distribution: most pieces short, a few very long */
    const int64_t n = 400;
    int64_t *lens = malloc(sizeof(int64_t) * n);
    ct_rng r;
    ct_rng_seed(&r, 4);
    for (int64_t i = 0; i < n; i++)
        lens[i] = (int64_t)(4.0 * exp(2.0 * ct_rng_uniform(&r) * ct_rng_uniform(&r) * 2.0)) + 2;
    ct_mem_dataset *m = ct_mem_dataset_new(ctx);
    for (int64_t i = 0; i < n; i++) {
        int64_t *tok = calloc((size_t)lens[i], sizeof(int64_t));
        ct_mem_dataset_add_tokens(m, tok, lens[i], NULL);
        free(tok);
    }
    ct_dataset ds = ct_mem_dataset_as(m);
    double pad[2] = {0, 0};
    uint64_t first_batch_order[2][2];
    for (int s = 0; s < 2; s++) {
        ct_dataloader_opts o = ct_dataloader_defaults();
        o.batch_size = 16;
        o.sampler = s ? CT_SAMPLER_BUCKET : CT_SAMPLER_RANDOM;
        o.bucket_batches = 5;
        o.seed = 3;
        ct_dataloader *dl = ct_dataloader_new(ctx, &ds, &o);
        ck_assert_ptr_nonnull(dl);
        for (int e = 0; e < 2; e++) {
            int seen[400] = {0}, nb = 0, partial = 0;
            const ct_batch *b;
            ct_scope_begin(ctx);
            while ((b = ct_dataloader_next(dl)) != NULL) {
                pad[s] += ct_batch_padding(b);
                nb++;
                if (b->rows != 16) partial++;
                if (nb == 1) first_batch_order[s][e] = (uint64_t)b->index[0];
                for (int64_t k = 0; k < b->rows; k++) seen[b->index[k]]++;
            }
            ct_scope_end(ctx);
            ck_assert_int_eq(nb, 25);
            ck_assert_int_eq(partial, 0);
            for (int i = 0; i < n; i++) ck_assert_int_eq(seen[i], 1);   /* every item, once */
        }
        ct_dataloader_free(dl);
    }
    pad[0] /= 50;
    pad[1] /= 50;
    ck_assert_msg(pad[1] < 0.5 * pad[0], "bucketing padding %.3f, random %.3f", pad[1], pad[0]);
    ck_assert_double_gt(pad[0], 0.3);           /* the distribution is skewed enough to tell */
    ck_assert_uint_ne(first_batch_order[1][0], first_batch_order[1][1]);  /* batches reshuffled */

    /* the lengths can come from the options; a partial batch takes part unless dropped */
    int64_t *l2 = malloc(sizeof(int64_t) * 10);
    for (int i = 0; i < 10; i++) l2[i] = 10 - i;
    test_ds d = {.n = 10, .lens = l2};
    ct_dataset tds = tds_dataset(&d);
    tds.item_len = NULL;
    ct_dataloader_opts o = ct_dataloader_defaults();
    o.batch_size = 4;
    o.sampler = CT_SAMPLER_BUCKET;
    ct_dataloader *dl = ct_dataloader_new(ctx, &tds, &o);
    ck_assert_ptr_null(dl);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "item_len"));
    o.lengths = l2;
    o.bucket_batches = 100;                        /* one pool: the whole epoch sorted */
    dl = ct_dataloader_new(ctx, &tds, &o);
    ck_assert_ptr_nonnull(dl);
    int sizes[3] = {0}, k = 0;
    const ct_batch *b;
    ct_scope_begin(ctx);
    while ((b = ct_dataloader_next(dl)) != NULL) {
        sizes[k++] = (int)b->rows;
        int64_t lo = 100, hi = 0;
        for (int64_t rr = 0; rr < b->rows; rr++) {
            int64_t L = l2[b->index[rr]];
            lo = L < lo ? L : lo;
            hi = L > hi ? L : hi;
        }
        ck_assert_int_le(hi - lo, 3);              /* neighbours in length */
    }
    ct_scope_end(ctx);
    ck_assert_int_eq(k, 3);
    ck_assert_int_eq(sizes[0] + sizes[1] + sizes[2], 10);
    ct_dataloader_free(dl);
    o.drop_last = true;
    dl = ct_dataloader_new(ctx, &tds, &o);
    ck_assert_int_eq(ct_dataloader_num_batches(dl), 2);
    int dropped[10] = {0};                         /* the left-over items are random ones */
    for (int e = 0; e < 10; e++) {
        int seen[10] = {0};
        ct_scope_begin(ctx);
        while ((b = ct_dataloader_next(dl)) != NULL) {
            ck_assert_int_eq(b->rows, 4);
            for (int64_t rr = 0; rr < 4; rr++) seen[b->index[rr]]++;
        }
        ct_scope_end(ctx);
        for (int i = 0; i < 10; i++) dropped[i] += !seen[i];
    }
    int distinct = 0;
    for (int i = 0; i < 10; i++) distinct += dropped[i] > 0;
    ck_assert_int_ge(distinct, 5);                 /* not always the longest two */
    ct_dataloader_free(dl);
    l2[3] = -1;
    o.drop_last = false;
    ck_assert_ptr_null(ct_dataloader_new(ctx, &tds, &o));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "item 3 has length -1"));
    free(l2);
    free(lens);
    ct_mem_dataset_free(m);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_loader_skip) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    int64_t lens[30];
    for (int i = 0; i < 30; i++) lens[i] = 5;
    lens[10] = 1;                                  /* too short for next-step targets */
    test_ds d = {.n = 30, .lens = lens, .fail_mod = 7, .fail_rem = 3};   /* 3, 10, 17, 24 fail */
    ct_dataset ds = tds_dataset(&d);
    uint64_t ref[8];
    int nref = 0;
    for (int w = 0; w < 3; w += 2) {
        ct_dataloader_opts o = ct_dataloader_defaults();
        o.batch_size = 4;
        o.workers = w;
        o.on_error = CT_ON_ERROR_SKIP;
        o.collate.targets = true;
        ct_dataloader *dl = ct_dataloader_new(ctx, &ds, &o);
        lens[11] = 1;                              /* 10 fails anyway; 11 is short */
        uint64_t sig[8];
        int got = 0, rows = 0;
        const ct_batch *b;
        ct_scope_begin(ctx);
        while ((b = ct_dataloader_next(dl)) != NULL) {
            sig[got++] = batch_sig(b);
            rows += (int)b->rows;
            for (int64_t r = 0; r < b->rows; r++) {
                ck_assert(b->index[r] % 7 != 3);
                ck_assert(b->index[r] != 11);
            }
            if (b->number == 0) ck_assert_int_eq(b->skipped, 1);
        }
        ct_scope_end(ctx);
        ck_assert_int_eq(ct_dataloader_status(dl), CT_OK);
        ck_assert_int_eq(rows, 25);
        if (w == 0) {
            memcpy(ref, sig, sizeof sig);
            nref = got;
        } else {
            ck_assert_int_eq(got, nref);
            for (int k = 0; k < got; k++) ck_assert_uint_eq(sig[k], ref[k]);
        }
        const ct_data_report *rep = ct_dataloader_epoch_report(dl);
        ck_assert_int_eq(rep->skipped, 5);
        ck_assert_int_eq(rep->items, 25);
        ck_assert_int_eq(rep->n_reasons, 5);
        ck_assert_int_eq(rep->reasons[0].index, 3);
        ck_assert_int_eq(rep->reasons[0].status, CT_E_FORMAT);
        ck_assert_str_eq(rep->reasons[0].message, "item 3 (file3.mid): bad header at byte 14");
        ck_assert_int_eq(rep->reasons[2].index, 11);
        ck_assert_ptr_nonnull(strstr(rep->reasons[2].message, "item 11 (file11.mid): it has 1 steps"));
        char buf[1024];
        int len = ct_data_report_format(rep, buf, sizeof buf);
        ck_assert_int_eq(len, (int)strlen(buf));
        ck_assert_ptr_nonnull(strstr(buf, "epoch 0: 8 batches, 25 items, 5 skipped: item 3 (file3.mid)"));
        ck_assert_ptr_nonnull(strstr(buf, "; item 24 (file24.mid): bad header"));
        char small[16];
        ck_assert_int_eq(ct_data_report_format(rep, small, sizeof small), len);  /* truncated */
        ck_assert_int_eq((int)strlen(small), 15);
        ct_dataloader_free(dl);
        lens[11] = 5;
    }
    /* a batch whose items all fail is passed over */
    d.fail_mod = 2;
    d.fail_rem = 0;
    for (int i = 0; i < 30; i++) lens[i] = 5;
    ct_dataloader_opts o = ct_dataloader_defaults();
    o.batch_size = 1;
    o.on_error = CT_ON_ERROR_SKIP;
    ct_dataloader *dl = ct_dataloader_new(ctx, &ds, &o);
    int got = 0;
    const ct_batch *b;
    ct_scope_begin(ctx);
    while ((b = ct_dataloader_next(dl)) != NULL) {
        ck_assert_int_eq(b->index[0] % 2, 1);
        ck_assert_int_eq(b->number, b->index[0]);
        got++;
    }
    ct_scope_end(ctx);
    ck_assert_int_eq(got, 15);
    const ct_data_report *rep = ct_dataloader_epoch_report(dl);
    ck_assert_int_eq(rep->skipped, 15);
    ck_assert_int_eq(rep->batches, 15);
    ct_data_report many = *rep;
    many.skipped = 200;                            /* more than listed */
    char buf[4096];
    ct_data_report_format(&many, buf, sizeof buf);
    ck_assert_ptr_nonnull(strstr(buf, "; 185 more not listed"));
    ck_assert_int_gt(ct_data_report_format(NULL, buf, sizeof buf), 0);
    ck_assert_int_gt(ct_data_report_format(rep, NULL, 0), 100);
    ct_dataloader_free(dl);
    ck_assert_int_eq(errs.count, 0);               /* skipping is not an error */
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_loader_stop_on_error) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    int64_t lens[20];
    for (int i = 0; i < 20; i++) lens[i] = 4;
    test_ds d = {.n = 20, .lens = lens, .fail_mod = 100, .fail_rem = 9};
    ct_dataset ds = tds_dataset(&d);
    for (int w = 0; w < 3; w += 2) {
        ct_dataloader_opts o = ct_dataloader_defaults();
        o.batch_size = 4;
        o.workers = w;
        ct_dataloader *dl = ct_dataloader_new(ctx, &ds, &o);
        ct_scope_begin(ctx);
        ck_assert_ptr_nonnull(ct_dataloader_next(dl));
        ck_assert_ptr_nonnull(ct_dataloader_next(dl));
        ck_assert_ptr_null(ct_dataloader_next(dl));      /* batch 2 holds item 9 */
        ck_assert_int_eq(ct_dataloader_status(dl), CT_E_FORMAT);
        ck_assert_int_eq(errs.last.status, CT_E_FORMAT);
        ck_assert_ptr_nonnull(strstr(errs.last.msg, "item 9 (file9.mid) failed in epoch 0, batch 2: "
                                                    "bad header at byte 14"));
        ct_dataloader_pos p = ct_dataloader_position(dl);
        ck_assert_int_eq(p.batch, 2);                    /* not delivered, not passed */
        ck_assert_ptr_null(ct_dataloader_next(dl));      /* the same error again */
        ck_assert_int_eq(ct_dataloader_status(dl), CT_E_FORMAT);
        d.fail_mod = 0;                                  /* "fixed": it goes on from there */
        const ct_batch *b = ct_dataloader_next(dl);
        ck_assert_ptr_nonnull(b);
        ck_assert_int_eq(b->number, 2);
        ck_assert_int_eq(b->index[1], 9);
        ck_assert_int_eq(ct_dataloader_status(dl), CT_OK);
        d.fail_mod = 100;
        ct_scope_end(ctx);
        ct_dataloader_free(dl);
    }
    /* a transform's failure names the transform; with no source, the dataset's describe */
    ct_mem_dataset *m = ct_mem_dataset_new(ctx);
    int64_t tok[3] = {1, 2, 3};
    ct_mem_dataset_add_tokens(m, tok, 3, NULL);
    ct_dataset mds = ct_mem_dataset_as(m);
    ct_transform nz;
    ct_transform_add_noise(ctx, &nz, 1.0f);
    ct_dataloader_opts o = ct_dataloader_defaults();
    o.transform = &nz;
    o.workers = 1;
    ct_dataloader *dl = ct_dataloader_new(ctx, &mds, &o);
    ck_assert_ptr_null(ct_dataloader_next(dl));
    ck_assert_int_eq(ct_dataloader_status(dl), CT_E_DTYPE);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "item 0 (item 0) failed"));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "add_noise: add_noise applies to frames"));
    ct_dataloader_free(dl);
    /* mixed kinds fail in collate (no skipping that), naming the items */
    float fr[4] = {0};
    ct_mem_dataset_add_frames(m, fr, 2, 2, "f.npy");
    o.transform = NULL;
    o.on_error = CT_ON_ERROR_SKIP;
    dl = ct_dataloader_new(ctx, &mds, &o);
    ck_assert_ptr_null(ct_dataloader_next(dl));
    ck_assert_int_eq(ct_dataloader_status(dl), CT_E_SHAPE);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "item 1 (index 1, f.npy) is frames"));
    ck_assert_int_eq(ct_dataloader_report(dl)->skipped, 0);
    ct_dataloader_free(dl);
    ct_transform_free(&nz);
    ct_mem_dataset_free(m);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_loader_options) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    int64_t lens[5] = {3, 3, 3, 3, 3};
    test_ds d = {.n = 5, .lens = lens};
    ct_dataset ds = tds_dataset(&d);
    ct_dataloader_opts o = ct_dataloader_defaults();
#define REFUSED(field, value, text) do { \
        ct_dataloader_opts b_ = o; b_.field = value; \
        ck_assert_ptr_null(ct_dataloader_new(ctx, &ds, &b_)); \
        ck_assert_int_eq(errs.last.status, CT_E_ARG); \
        ck_assert_msg(strstr(errs.last.msg, text) != NULL, "%s", errs.last.msg); \
    } while (0)
    REFUSED(batch_size, 0, "batch_size 0");
    REFUSED(workers, -1, "workers -1");
    REFUSED(workers, 65, "[0, 64]");
    REFUSED(prefetch, -2, "prefetch -2");
    REFUSED(bucket_batches, -1, "bucket_batches");
    REFUSED(sampler, (ct_sampler)9, "sampler 9");
    REFUSED(on_error, (ct_on_error)4, "on_error");
    REFUSED(collate.max_len, -3, "max_len -3");
    REFUSED(collate.window, (ct_window_mode)3, "window mode 3");
    o.batch_size = 8;
    REFUSED(drop_last, true, "make no batch of 8");
#undef REFUSED
    ck_assert_ptr_null(ct_dataloader_new(ctx, NULL, &o));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "lacks len or get"));
    d.n = 0;
    ck_assert_ptr_null(ct_dataloader_new(ctx, &ds, &o));
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "has 0 items"));
    d.n = 5;
    ck_assert_ptr_null(ct_dataloader_new(NULL, &ds, &o));
    /* NULL options are the defaults; NULL loaders are harmless */
    ct_dataloader *dl = ct_dataloader_new(ctx, &ds, NULL);
    ck_assert_ptr_nonnull(dl);
    ck_assert_int_eq(ct_dataloader_num_batches(dl), 1);
    ct_dataloader_free(dl);
    ct_dataloader_free(NULL);
    ck_assert_ptr_null(ct_dataloader_next(NULL));
    ck_assert_int_eq(ct_dataloader_status(NULL), CT_E_NULL);
    ck_assert_int_eq(ct_dataloader_num_batches(NULL), 0);
    ck_assert_ptr_null(ct_dataloader_report(NULL));
    ck_assert_ptr_null(ct_dataloader_epoch_report(NULL));
    ck_assert_int_eq(ct_dataloader_position(NULL).epoch, 0);
    ct_dataloader_stop(NULL);
    ct_dataloader_interrupt(NULL);
    ct_dataloader_save(NULL, NULL);
    /* a dataset whose length changes between epochs is refused at the next epoch */
    o.workers = 1;
    o.batch_size = 2;
    dl = ct_dataloader_new(ctx, &ds, &o);
    ct_scope_begin(ctx);
    uint64_t sig[4];
    ck_assert_int_eq(run_epoch(dl, sig, 4), 3);
    d.n = 4;
    ck_assert_ptr_null(ct_dataloader_next(dl));
    ck_assert_int_eq(ct_dataloader_status(dl), CT_E_STATE);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "had 5 items"));
    ct_scope_end(ctx);
    ct_dataloader_free(dl);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_loader_eval_windows) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    int64_t lens[3] = {21, 5, 12};
    test_ds d = {.n = 3, .lens = lens};
    ct_dataset ds = tds_dataset(&d);
    ct_dataloader_opts o = ct_dataloader_defaults();
    o.batch_size = 3;
    o.collate.targets = true;
    o.collate.max_len = 8;
    o.collate.window = CT_WINDOW_CONSECUTIVE;
    o.workers = 2;
    ct_dataloader *dl = ct_dataloader_new(ctx, &ds, &o);
    ct_scope_begin(ctx);
    const ct_batch *b = ct_dataloader_next(dl);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(b->items, 3);
    ck_assert_int_eq(b->rows, 3 + 1 + 2);               /* 20 -> 8,8,4; 4 -> 4; 11 -> 8,3 */
    int64_t total = 0;
    for (int64_t r = 0; r < b->rows; r++) total += ct_data_i64(b->lengths)[r];
    ck_assert_int_eq(total, 20 + 4 + 11);               /* every target once */
    ck_assert_int_eq(b->offset[1], 8);
    ck_assert_int_eq(b->index[5], 2);
    ck_assert_ptr_null(ct_dataloader_next(dl));
    /* training windows in the loader: one row per item, at most max_len steps, and the
     * windows are the same for every worker count (they use the item's generator) */
    ct_dataloader_free(dl);
    o.collate.window = CT_WINDOW_RANDOM;
    uint64_t s0 = 0;
    for (int w = 0; w < 3; w++) {
        o.workers = w;
        dl = ct_dataloader_new(ctx, &ds, &o);
        b = ct_dataloader_next(dl);
        ck_assert_int_eq(b->rows, 3);
        ck_assert_int_eq(b->steps, 8);
        ck_assert_int_eq(ct_data_i64(b->lengths)[1], 4);
        ck_assert(at2(b->targets, 0, 0) == at2(b->inputs, 1, 0));
        if (w == 0) s0 = batch_sig(b);
        else ck_assert_uint_eq(batch_sig(b), s0);
        ct_dataloader_free(dl);
    }
    ct_scope_end(ctx);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_loader_batches_in_callers_scope) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    int64_t *lens = lens_range(64, 2, 20, 1);
    test_ds d = {.n = 64, .lens = lens, .width = 4};
    ct_dataset ds = tds_dataset(&d);
    ct_dataloader_opts o = ct_dataloader_defaults();
    o.batch_size = 8;
    o.sampler = CT_SAMPLER_RANDOM;
    o.workers = 2;
    o.collate.targets = true;
    ct_dataloader *dl = ct_dataloader_new(ctx, &ds, &o);
    ct_mem_stats before = ct_ctx_mem_stats(ctx);
    for (int e = 0; e < 6; e++) {
        const ct_batch *b;
        for (;;) {
            ct_scope_begin(ctx);
            b = ct_dataloader_next(dl);
            if (b) {
                ck_assert_ptr_eq(b->inputs->ctx, ctx);
                ck_assert_int_eq(ct_ctx_mem_stats(ctx).live_tensors, before.live_tensors + 4);
            }
            ct_scope_end(ctx);
            if (!b) break;
        }
        ck_assert_int_eq(ct_ctx_mem_stats(ctx).live_tensors, before.live_tensors);
    }
    ct_mem_stats end = ct_ctx_mem_stats(ctx);
    ck_assert_int_eq(end.live_bytes, before.live_bytes);
    ct_dataloader_free(dl);
    free(lens);
    ct_ctx_free(ctx);
}
END_TEST

/* Early shutdown at awkward moments: mid-epoch with workers busy in slow gets, right after
 * creation, after stop; checked under ASan (no leaked items, threads joined). */
START_TEST(test_loader_early_shutdown) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    int64_t *lens = lens_range(60, 3, 30, 2);
    test_ds d = {.n = 60, .lens = lens, .width = 2, .delay_us = 300};
    ct_dataset ds = tds_dataset(&d);
    ct_transform crop;
    ct_transform_random_crop(ctx, &crop, 10);
    for (int w = 0; w <= 4; w++) {
        ct_dataloader_opts o = ct_dataloader_defaults();
        o.batch_size = 5;
        o.workers = w;
        o.prefetch = 3;
        o.transform = &crop;
        o.sampler = CT_SAMPLER_RANDOM;
        ct_dataloader_free(ct_dataloader_new(ctx, &ds, &o));       /* never used */
        ct_dataloader *dl = ct_dataloader_new(ctx, &ds, &o);
        ct_scope_begin(ctx);
        ck_assert_ptr_nonnull(ct_dataloader_next(dl));
        ck_assert_ptr_nonnull(ct_dataloader_next(dl));
        ct_dataloader_free(dl);                                     /* early break */
        /* stop keeps the position: the batches go on exactly as without it */
        dl = ct_dataloader_new(ctx, &ds, &o);
        uint64_t ref[12];
        ck_assert_int_eq(run_epoch(dl, ref, 12), 12);
        ct_dataloader_free(dl);
        dl = ct_dataloader_new(ctx, &ds, &o);
        for (int k = 0; k < 12; k++) {
            const ct_batch *b = ct_dataloader_next(dl);
            ck_assert_uint_eq(batch_sig(b), ref[k]);
            if (k % 5 == 2) ct_dataloader_stop(dl);
        }
        ct_dataloader_stop(dl);
        ct_dataloader_stop(dl);
        ct_scope_end(ctx);
        ct_dataloader_free(dl);
    }
    ct_transform_free(&crop);
    free(lens);
    ct_ctx_free(ctx);
}
END_TEST

typedef struct interrupter { ct_dataloader *dl; long after_us; } interrupter;
static void *interrupt_later(void *arg) {
    interrupter *in = arg;
    sleep_us(in->after_us);
    ct_dataloader_interrupt(in->dl);
    return NULL;
}

START_TEST(test_loader_interrupt) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    int64_t *lens = lens_range(200, 3, 10, 3);
    test_ds d = {.n = 200, .lens = lens};
    ct_dataset ds = tds_dataset(&d);
    ct_dataloader_opts o = ct_dataloader_defaults();
    o.batch_size = 4;
    o.workers = 2;
    o.sampler = CT_SAMPLER_RANDOM;
    o.seed = 5;
    ct_dataloader *dl = ct_dataloader_new(ctx, &ds, &o);
    uint64_t ref[50];
    ct_scope_begin(ctx);
    ck_assert_int_eq(run_epoch(dl, ref, 50), 50);
    ct_dataloader_free(dl);
    /* an interrupt before the call: NULL, CT_E_STATE, the position kept; then it goes on */
    dl = ct_dataloader_new(ctx, &ds, &o);
    ck_assert_uint_eq(batch_sig(ct_dataloader_next(dl)), ref[0]);
    ct_dataloader_interrupt(dl);
    ck_assert_ptr_null(ct_dataloader_next(dl));
    ck_assert_int_eq(ct_dataloader_status(dl), CT_E_STATE);
    ck_assert_ptr_nonnull(strstr(errs.last.msg, "interrupted"));
    ck_assert_int_eq(ct_dataloader_position(dl).batch, 1);
    ck_assert_uint_eq(batch_sig(ct_dataloader_next(dl)), ref[1]);
    ct_dataloader_free(dl);
    /* from another thread (as a signal handler would) while the loader waits on slow items */
    d.delay_us = 2000;
    for (int w = 0; w < 3; w += 2) {
        o.workers = w;
        dl = ct_dataloader_new(ctx, &ds, &o);
        interrupter in = {dl, 20000};
        pthread_t th;
        ck_assert_int_eq(pthread_create(&th, NULL, interrupt_later, &in), 0);
        int got = 0;
        while (ct_dataloader_next(dl) != NULL) got++;
        pthread_join(th, NULL);
        ck_assert_int_eq(ct_dataloader_status(dl), CT_E_STATE);
        ck_assert_int_lt(got, 50);
        ck_assert_int_eq(ct_dataloader_position(dl).batch, got);
        uint8_t st[CT_DATALOADER_STATE_BYTES];
        ct_dataloader_save(dl, st);                 /* save, free, resume: the right batches */
        ct_dataloader_free(dl);
        d.delay_us = 0;
        dl = ct_dataloader_new(ctx, &ds, &o);
        ck_assert_int_eq(ct_dataloader_load(dl, st, sizeof st), CT_OK);
        uint64_t rest[50];
        int n = run_epoch(dl, rest, 50);
        ck_assert_int_eq(n, 50 - got);
        for (int k = 0; k < n; k++) ck_assert_uint_eq(rest[k], ref[got + k]);
        ct_dataloader_free(dl);
        d.delay_us = 2000;
    }
    ct_scope_end(ctx);
    free(lens);
    ct_ctx_free(ctx);
}
END_TEST

Suite *data_suite(void) {
    Suite *s = suite_create("data");
    TCase *tc = tcase_create("items");
    tcase_add_test(tc, test_item_basics);
    tcase_add_test(tc, test_mem_dataset);
    tcase_add_test(tc, test_dataset_get_checks);
    suite_add_tcase(s, tc);
    tc = tcase_create("transforms");
    tcase_add_test(tc, test_random_crop);
    tcase_add_test(tc, test_add_noise);
    tcase_add_test(tc, test_scale);
    tcase_add_test(tc, test_compose);
    suite_add_tcase(s, tc);
    tc = tcase_create("collate");
    tcase_add_test(tc, test_collate_tokens);
    tcase_add_test(tc, test_collate_frames_samples);
    tcase_add_test(tc, test_collate_errors);
    tcase_add_test(tc, test_collate_windows);
    suite_add_tcase(s, tc);
    tc = tcase_create("loader");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_loader_sequential);
    tcase_add_test(tc, test_loader_deterministic_across_workers);
    tcase_add_test(tc, test_loader_reshuffles);
    tcase_add_test(tc, test_loader_resume);
    tcase_add_test(tc, test_loader_load_errors);
    tcase_add_test(tc, test_loader_bucketing);
    tcase_add_test(tc, test_loader_skip);
    tcase_add_test(tc, test_loader_stop_on_error);
    tcase_add_test(tc, test_loader_options);
    tcase_add_test(tc, test_loader_eval_windows);
    tcase_add_test(tc, test_loader_batches_in_callers_scope);
    tcase_add_test(tc, test_loader_early_shutdown);
    tcase_add_test(tc, test_loader_interrupt);
    suite_add_tcase(s, tc);
    return s;
}
