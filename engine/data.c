/* engine/data.c — items (plain C sequences with metadata), the dataset interface's helpers,
 * and the built-in in-memory dataset. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/data.h"

/* Records an error in ctx when there is one (ctx may be NULL: the status alone). */
#define FAIL(ctx, s, ...) ((ctx) ? ct_fail((ctx), (s), __VA_ARGS__) : (s))

/* ---- items --------------------------------------------------------------------------------- */
const char *ct_item_kind_name(ct_item_kind k) {
    switch (k) {
    case CT_ITEM_TOKENS: return "tokens";
    case CT_ITEM_FRAMES: return "frames";
    case CT_ITEM_SAMPLES: return "samples";
    default: return "empty";
    }
}

void ct_item_init(ct_data_item *it) {
    if (!it) return;
    memset(it, 0, sizeof *it);
    it->kind = CT_ITEM_EMPTY;
    it->width = 1;
    it->index = -1;
    it->piece_id = -1;
}

void ct_item_free(ct_data_item *it) {
    if (!it) return;
    free(it->tokens);
    free(it->values);
    free(it->source);
    free(it->error);
    ct_item_init(it);
}

static char *vformat(const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) n = 0;
    char *s = malloc((size_t)n + 1);
    if (!s) return NULL;
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

ct_status ct_item_fail(ct_data_item *it, ct_status s, const char *fmt, ...) {
    if (!it) return s;
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    if (msg) {   /* out of memory keeps the old message rather than none */
        free(it->error);
        it->error = msg;
    }
    return s;
}

/* Replaces the data with a fresh buffer of len * width values of the kind's type. */
static ct_status set_data(ct_data_item *it, ct_item_kind kind, const void *src, int64_t len,
                          int64_t width) {
    if (!it) return CT_E_NULL;
    const char *kn = ct_item_kind_name(kind);
    if (len < 0)
        return ct_item_fail(it, CT_E_ARG, "item: %s length %lld is negative", kn, (long long)len);
    if (width < 1)
        return ct_item_fail(it, CT_E_ARG, "item: %s width %lld must be at least 1", kn,
                            (long long)width);
    size_t esz = kind == CT_ITEM_TOKENS ? sizeof(int64_t) : sizeof(float);
    if ((uint64_t)len > (uint64_t)(SIZE_MAX / 2) / esz / (uint64_t)width)
        return ct_item_fail(it, CT_E_ARG, "item: %s of %lld x %lld values is too large", kn,
                            (long long)len, (long long)width);
    size_t nbytes = (size_t)len * (size_t)width * esz;
    void *buf = nbytes ? malloc(nbytes) : malloc(1);
    if (!buf)
        return ct_item_fail(it, CT_E_NOMEM, "item: out of memory for %s of %lld x %lld values",
                            kn, (long long)len, (long long)width);
    if (src) memcpy(buf, src, nbytes);
    else memset(buf, 0, nbytes);
    free(it->tokens);
    free(it->values);
    it->tokens = NULL;
    it->values = NULL;
    if (kind == CT_ITEM_TOKENS) it->tokens = buf;
    else it->values = buf;
    it->kind = kind;
    it->len = len;
    it->width = width;
    return CT_OK;
}

ct_status ct_item_set_tokens(ct_data_item *it, const int64_t *tokens, int64_t len) {
    return set_data(it, CT_ITEM_TOKENS, tokens, len, 1);
}
ct_status ct_item_set_frames(ct_data_item *it, const float *frames, int64_t len, int64_t width) {
    return set_data(it, CT_ITEM_FRAMES, frames, len, width);
}
ct_status ct_item_set_samples(ct_data_item *it, const float *samples, int64_t len) {
    return set_data(it, CT_ITEM_SAMPLES, samples, len, 1);
}

ct_status ct_item_set_source(ct_data_item *it, const char *fmt, ...) {
    if (!it) return CT_E_NULL;
    if (!fmt) {
        free(it->source);
        it->source = NULL;
        return CT_OK;
    }
    va_list ap;
    va_start(ap, fmt);
    char *s = vformat(fmt, ap);
    va_end(ap);
    if (!s) return ct_item_fail(it, CT_E_NOMEM, "item: out of memory for its source");
    free(it->source);
    it->source = s;
    return CT_OK;
}

ct_status ct_item_crop(ct_data_item *it, int64_t start, int64_t len) {
    if (!it) return CT_E_NULL;
    if (start < 0 || len < 0 || start > it->len || len > it->len - start)
        return ct_item_fail(it, CT_E_ARG,
                            "item crop: steps [%lld, %lld + %lld) are not inside the item's %lld "
                            "steps",
                            (long long)start, (long long)start, (long long)len,
                            (long long)it->len);
    if (it->kind == CT_ITEM_TOKENS && it->tokens)
        memmove(it->tokens, it->tokens + start, (size_t)len * sizeof(int64_t));
    else if (it->values)
        memmove(it->values, it->values + start * it->width,
                (size_t)(len * it->width) * sizeof(float));
    it->len = len;
    it->offset += start;
    return CT_OK;
}

static char *dupstr(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

ct_status ct_item_copy(ct_data_item *dst, const ct_data_item *src) {
    if (!dst || !src) return CT_E_NULL;
    if (dst == src) return CT_OK;
    ct_item_free(dst);
    if (src->kind != CT_ITEM_EMPTY) {
        const void *data = src->kind == CT_ITEM_TOKENS ? (const void *)src->tokens
                                                       : (const void *)src->values;
        ct_status s = set_data(dst, src->kind, data, src->len, src->width);
        if (s != CT_OK) {
            ct_item_free(dst);
            return s;
        }
    }
    if (src->source && !(dst->source = dupstr(src->source))) {
        ct_item_free(dst);
        return CT_E_NOMEM;
    }
    dst->index = src->index;
    dst->piece_id = src->piece_id;
    dst->offset = src->offset;
    return CT_OK;
}

/* ---- the dataset interface ----------------------------------------------------------------- */
int64_t ct_dataset_len(const ct_dataset *ds) {
    if (!ds || !ds->len) return -1;
    return ds->len(ds->self);
}

char *ct_dataset_describe(const ct_dataset *ds, int64_t index, char *buf, size_t n) {
    if (!buf || n == 0) return buf;
    buf[0] = '\0';
    if (ds && ds->describe) ds->describe(ds->self, index, buf, n);
    if (buf[0] == '\0') snprintf(buf, n, "item %lld", (long long)index);
    return buf;
}

ct_status ct_dataset_get(const ct_dataset *ds, int64_t index, ct_data_item *out, ct_rng *rng) {
    if (!out) return CT_E_NULL;
    ct_item_free(out);
    out->index = index;
    if (!ds || !ds->len || !ds->get)
        return ct_item_fail(out, CT_E_ARG, "dataset: no dataset, or its len or get is NULL");
    int64_t n = ds->len(ds->self);
    if (index < 0 || index >= n)
        return ct_item_fail(out, CT_E_ARG, "dataset: index %lld is out of range [0, %lld)",
                            (long long)index, (long long)n);
    ct_rng fixed;
    if (!rng) {
        ct_rng_seed(&fixed, (uint64_t)index);
        rng = &fixed;
    }
    ct_status s = ds->get(ds->self, index, out, rng);
    if (s == CT_OK && out->kind == CT_ITEM_EMPTY)
        s = ct_item_fail(out, CT_E_STATE,
                         "dataset: get returned CT_OK but gave the item no data (fill it with "
                         "ct_item_set_tokens, ct_item_set_frames or ct_item_set_samples)");
    if (s != CT_OK) {
        char *err = out->error, *src = out->source;
        out->error = out->source = NULL;
        ct_item_free(out);
        out->error = err;
        out->source = src;
        out->index = index;
        if (!out->error) ct_item_fail(out, s, "get failed: %s", ct_status_text(s));
        return s;
    }
    out->index = index;
    if (out->piece_id < 0) out->piece_id = index;
    return CT_OK;
}

/* ---- the in-memory dataset ------------------------------------------------------------------- */
struct ct_mem_dataset {
    ct_ctx *ctx;
    ct_data_item *items;
    int64_t n, cap;
};

ct_mem_dataset *ct_mem_dataset_new(ct_ctx *ctx) {
    ct_mem_dataset *m = calloc(1, sizeof *m);
    if (!m) {
        (void)FAIL(ctx, CT_E_NOMEM, "mem_dataset: out of memory");
        return NULL;
    }
    m->ctx = ctx;
    return m;
}

void ct_mem_dataset_free(ct_mem_dataset *m) {
    if (!m) return;
    for (int64_t i = 0; i < m->n; i++) ct_item_free(&m->items[i]);
    free(m->items);
    free(m);
}

static ct_status mem_add(ct_mem_dataset *m, ct_item_kind kind, const void *data, int64_t len,
                         int64_t width, const char *source) {
    if (!m) return CT_E_NULL;
    if (!data && len > 0)
        return FAIL(m->ctx, CT_E_NULL, "mem_dataset_add_%s: data is NULL for %lld steps",
                       ct_item_kind_name(kind), (long long)len);
    if (m->n == m->cap) {
        int64_t nc = m->cap ? 2 * m->cap : 16;
        ct_data_item *p = realloc(m->items, (size_t)nc * sizeof *p);
        if (!p) return FAIL(m->ctx, CT_E_NOMEM, "mem_dataset: out of memory for item %lld",
                               (long long)m->n);
        m->items = p;
        m->cap = nc;
    }
    ct_data_item *it = &m->items[m->n];
    ct_item_init(it);
    ct_status s = set_data(it, kind, data, len, width);
    if (s == CT_OK && source) s = ct_item_set_source(it, "%s", source);
    if (s != CT_OK) {
        (void)FAIL(m->ctx, s, "mem_dataset_add_%s (item %lld): %s", ct_item_kind_name(kind),
                (long long)m->n, it->error ? it->error : ct_status_text(s));
        ct_item_free(it);
        return s;
    }
    it->piece_id = m->n;
    it->index = m->n;
    m->n++;
    return CT_OK;
}

ct_status ct_mem_dataset_add_tokens(ct_mem_dataset *m, const int64_t *tokens, int64_t len,
                                    const char *source) {
    return mem_add(m, CT_ITEM_TOKENS, tokens, len, 1, source);
}
ct_status ct_mem_dataset_add_frames(ct_mem_dataset *m, const float *frames, int64_t len,
                                    int64_t width, const char *source) {
    return mem_add(m, CT_ITEM_FRAMES, frames, len, width, source);
}
ct_status ct_mem_dataset_add_samples(ct_mem_dataset *m, const float *samples, int64_t len,
                                     const char *source) {
    return mem_add(m, CT_ITEM_SAMPLES, samples, len, 1, source);
}

ct_status ct_mem_dataset_add_tensor(ct_mem_dataset *m, const ct_tensor *t, const char *source) {
    if (!m) return CT_E_NULL;
    if (!t) return FAIL(m->ctx, CT_E_NULL, "mem_dataset_add_tensor: the tensor is NULL");
    char shape[96];
    ct_shape_str(t, shape, sizeof shape);
    if (ct_tensor_device(t).type != CT_CPU)
        return FAIL(m->ctx, CT_E_DEVICE,
                       "mem_dataset_add_tensor: the tensor %s is not on the CPU (copy it to the "
                       "host first)", shape);
    ct_item_kind kind;
    int64_t len = t->ndim >= 1 ? t->shape[0] : 0, width = 1;
    if (t->dtype == CT_I64 && t->ndim == 1) kind = CT_ITEM_TOKENS;
    else if (t->dtype == CT_F32 && t->ndim == 1) kind = CT_ITEM_SAMPLES;
    else if (t->dtype == CT_F32 && t->ndim == 2) {
        kind = CT_ITEM_FRAMES;
        width = t->shape[1];
    } else
        return FAIL(m->ctx, CT_E_SHAPE,
                       "mem_dataset_add_tensor: a %s tensor of shape %s is not an item; expected "
                       "int64 [len] (tokens), float32 [len] (samples) or float32 [len, width] "
                       "(frames)",
                       ct_dtype_name(t->dtype), shape);
    int64_t n = ct_numel(t);
    size_t nbytes = (size_t)(n ? n : 1) * ct_dtype_size(t->dtype);
    void *buf = malloc(nbytes);
    if (!buf) return FAIL(m->ctx, CT_E_NOMEM, "mem_dataset_add_tensor: out of memory");
    ct_status s = ct_copy_to_host(t, buf, (size_t)n * ct_dtype_size(t->dtype));
    if (s == CT_OK) s = mem_add(m, kind, buf, len, width, source);
    else (void)FAIL(m->ctx, s, "mem_dataset_add_tensor: cannot read the tensor %s", shape);
    free(buf);
    return s;
}

static int64_t mem_len(void *self) { return ((ct_mem_dataset *)self)->n; }

static ct_status mem_get(void *self, int64_t index, ct_data_item *out, ct_rng *rng) {
    ct_mem_dataset *m = self;
    ct_status s = ct_item_copy(out, &m->items[index]);
    if (s != CT_OK) return ct_item_fail(out, s, "mem_dataset: out of memory copying item %lld",
                                        (long long)index);
    return CT_OK;
}

static void mem_describe(void *self, int64_t index, char *buf, size_t n) {
    ct_mem_dataset *m = self;
    if (index >= 0 && index < m->n && m->items[index].source)
        snprintf(buf, n, "%s", m->items[index].source);
}

static int64_t mem_item_len(void *self, int64_t index) {
    ct_mem_dataset *m = self;
    return index >= 0 && index < m->n ? m->items[index].len : -1;
}

ct_dataset ct_mem_dataset_as(ct_mem_dataset *m) {
    ct_dataset ds = {m, mem_len, mem_get, mem_describe, mem_item_len};
    return ds;
}
