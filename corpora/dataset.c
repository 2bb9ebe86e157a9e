/* corpora/dataset.c — ct_dataset over a memory-mapped corpus file (see dataset.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corpora/dataset.h"

struct cp_dataset {
    const cp_corpus *c;
    cp_corpus *owned;
    cp_split split;
    int64_t n;
    int64_t *ids;   /* item -> piece id */
};

#define FAIL(ctx, s, ...) ((ctx) ? (void)ct_fail((ctx), (s), __VA_ARGS__) : (void)0)

cp_dataset *cp_dataset_new(ct_ctx *ctx, const cp_corpus *c, cp_split s) {
    if (!c) {
        FAIL(ctx, CT_E_NULL, "corpus dataset: NULL corpus");
        return NULL;
    }
    if ((int)s < 0 || (int)s > CP_SPLIT_ALL) {
        FAIL(ctx, CT_E_ARG, "corpus dataset: split %d; expected train (0), valid (1), test (2) or all (3)", (int)s);
        return NULL;
    }
    int64_t total = cp_corpus_num_pieces(c);
    cp_dataset *d = calloc(1, sizeof *d);
    int64_t *ids = malloc((size_t)(total ? total : 1) * sizeof *ids);
    if (!d || !ids) {
        free(d);
        free(ids);
        FAIL(ctx, CT_E_NOMEM, "corpus dataset: out of memory for %lld pieces", (long long)total);
        return NULL;
    }
    for (int64_t i = 0; i < total; i++)
        if (s == CP_SPLIT_ALL || cp_corpus_piece(c, i)->split == s) ids[d->n++] = i;
    d->c = c;
    d->split = s;
    d->ids = ids;
    return d;
}

cp_dataset *cp_dataset_open(ct_ctx *ctx, const char *path, cp_split s) {
    cp_corpus *c = NULL;
    cp_error err;
    ct_status st = cp_corpus_open(path, &c, &err);
    if (st != CT_OK) {
        FAIL(ctx, st, "%s", err.message);
        return NULL;
    }
    cp_dataset *d = cp_dataset_new(ctx, c, s);
    if (!d) {
        cp_corpus_close(c);
        return NULL;
    }
    d->owned = c;
    return d;
}

void cp_dataset_free(cp_dataset *d) {
    if (!d) return;
    cp_corpus_close(d->owned);
    free(d->ids);
    free(d);
}

int64_t cp_dataset_len(const cp_dataset *d) { return d ? d->n : 0; }
int64_t cp_dataset_piece_id(const cp_dataset *d, int64_t i) { return d && i >= 0 && i < d->n ? d->ids[i] : -1; }
const cp_corpus *cp_dataset_corpus(const cp_dataset *d) { return d ? d->c : NULL; }
cp_split cp_dataset_split(const cp_dataset *d) { return d ? d->split : CP_SPLIT_ALL; }

/* ---- the interface ---------------------------------------------------------------------------- */
static int64_t ds_len(void *self) { return ((cp_dataset *)self)->n; }

static int64_t ds_item_len(void *self, int64_t i) {
    cp_dataset *d = self;
    return i >= 0 && i < d->n ? cp_corpus_piece(d->c, d->ids[i])->len : -1;
}

static void ds_describe(void *self, int64_t i, char *buf, size_t n) {
    cp_dataset *d = self;
    if (i < 0 || i >= d->n) {
        snprintf(buf, n, "item %lld", (long long)i);
        return;
    }
    const cp_piece *p = cp_corpus_piece(d->c, d->ids[i]);
    snprintf(buf, n, "%s, piece %d (corpus piece %lld)", p->name, p->piece, (long long)p->id);
}

static ct_status ds_get(void *self, int64_t i, ct_data_item *out, ct_rng *rng) {
    (void)rng;
    cp_dataset *d = self;
    if (i < 0 || i >= d->n)
        return ct_item_fail(out, CT_E_ARG, "%s: item %lld of a %lld-item %s split", cp_corpus_path(d->c),
                            (long long)i, (long long)d->n, cp_split_name(d->split));
    const cp_piece *p = cp_corpus_piece(d->c, d->ids[i]);
    cp_error err;
    ct_status s;
    if (cp_encoding_is_tokens(cp_corpus_encoding(d->c))) {
        if ((s = ct_item_set_tokens(out, NULL, p->len)) != CT_OK) return s;
        s = cp_corpus_read_tokens64(d->c, p->id, out->tokens, &err);
    } else {
        if ((s = ct_item_set_frames(out, NULL, p->len, CM_ROLL_NUM_KEYS)) != CT_OK) return s;
        s = cp_corpus_read_frames_f32(d->c, p->id, out->values, &err);
    }
    if (s != CT_OK) return ct_item_fail(out, s, "%s", err.message);
    out->piece_id = p->id;
    out->offset = 0;
    if (ct_item_set_source(out, "%s", p->name) != CT_OK)
        return ct_item_fail(out, CT_E_NOMEM, "out of memory for the source name");
    return CT_OK;
}

ct_dataset cp_dataset_as(cp_dataset *d) {
    ct_dataset ds = {d, ds_len, ds_get, ds_describe, ds_item_len};
    return ds;
}

ct_status cp_dataset_get(cp_dataset *d, int64_t i, ct_data_item *out) {
    if (!d || !out) return CT_E_NULL;
    ct_dataset ds = cp_dataset_as(d);
    return ct_dataset_get(&ds, i, out, NULL);
}
