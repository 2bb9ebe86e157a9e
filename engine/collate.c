/* engine/collate.c — variable-length items -> padded batch tensors (+ lengths, mask, next-step
 * targets), and the cutting of long items into windows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/data.h"

ct_collate_opts ct_collate_defaults(void) {
    ct_collate_opts o;
    memset(&o, 0, sizeof o);
    o.batch_first = false;
    o.targets = false;
    o.ignore_index = -100;
    o.pad_token = 0;
    o.pad_value = 0.0f;
    o.max_len = 0;
    o.window = CT_WINDOW_RANDOM;
    return o;
}

void ct_batch_clear(ct_batch *b) {
    if (!b) return;
    free(b->index);
    free(b->piece_id);
    free(b->offset);
    memset(b, 0, sizeof *b);
}

double ct_batch_padding(const ct_batch *b) {
    if (!b || !b->lengths || b->rows <= 0 || b->steps <= 0) return 0.0;
    const int64_t *len = ct_data_i64(b->lengths);
    if (!len) return 0.0;
    int64_t valid = 0;
    for (int64_t r = 0; r < b->rows; r++) valid += len[r];
    return 1.0 - (double)valid / ((double)b->rows * (double)b->steps);
}

ct_status ct_collate_window(ct_data_item *it, const ct_collate_opts *o, ct_rng *rng) {
    if (!it || !o) return CT_E_NULL;
    if (o->max_len <= 0 || o->window != CT_WINDOW_RANDOM) return CT_OK;
    int64_t span = o->max_len + (o->targets ? 1 : 0);
    if (it->len <= span) return CT_OK;
    if (!rng)
        return ct_item_fail(it, CT_E_ARG,
                            "window: an item of %lld steps is longer than the window (%lld) and "
                            "no generator was given to place it",
                            (long long)it->len, (long long)span);
    int64_t start = (int64_t)ct_rng_below(rng, (uint64_t)(it->len - span + 1));
    return ct_item_crop(it, start, span);
}

/* "item 3 (index 17, bach.mid)" */
static const char *item_desc(const ct_data_item *it, int64_t i, char *buf, size_t n) {
    int k = snprintf(buf, n, "item %lld", (long long)i);
    if (k < 0 || (size_t)k >= n) return buf;
    if (it->index >= 0 && it->source)
        snprintf(buf + k, n - (size_t)k, " (index %lld, %s)", (long long)it->index, it->source);
    else if (it->index >= 0)
        snprintf(buf + k, n - (size_t)k, " (index %lld)", (long long)it->index);
    else if (it->source)
        snprintf(buf + k, n - (size_t)k, " (%s)", it->source);
    return buf;
}

ct_status ct_collate(ct_ctx *ctx, const ct_data_item *items, int64_t n, const ct_collate_opts *opts,
                     ct_rng *rng, ct_batch *out) {
    if (!ctx) return CT_E_NULL;
    if (!out) return ct_fail(ctx, CT_E_NULL, "collate: out is NULL");
    ct_batch_clear(out);
    ct_collate_opts o = opts ? *opts : ct_collate_defaults();
    if (n < 1 || !items)
        return ct_fail(ctx, CT_E_ARG, "collate: %lld items%s; a batch needs at least one",
                       (long long)n, items ? "" : " (NULL list)");
    if (o.max_len < 0)
        return ct_fail(ctx, CT_E_ARG, "collate: max_len %lld is negative (0 = whole items)",
                       (long long)o.max_len);
    if (o.window != CT_WINDOW_RANDOM && o.window != CT_WINDOW_CONSECUTIVE)
        return ct_fail(ctx, CT_E_ARG, "collate: unknown window mode %d", (int)o.window);
    const int64_t shift = o.targets ? 1 : 0, L = o.max_len;
    const ct_item_kind kind = items[0].kind;
    const int64_t W = items[0].width;
    char d0[256], d1[256];

    /* check the items and count the rows */
    int64_t rows = 0;
    for (int64_t i = 0; i < n; i++) {
        const ct_data_item *it = &items[i];
        if (it->kind == CT_ITEM_EMPTY || (it->kind == CT_ITEM_TOKENS ? !it->tokens : !it->values))
            return ct_fail(ctx, CT_E_ARG, "collate: %s has no data",
                           item_desc(it, i, d0, sizeof d0));
        if (it->kind != kind || it->width != W)
            return ct_fail(ctx, CT_E_SHAPE,
                           "collate: %s is %s of width %lld but %s is %s of width %lld; the items "
                           "of a batch must have one kind and width",
                           item_desc(it, i, d0, sizeof d0), ct_item_kind_name(it->kind),
                           (long long)it->width, item_desc(&items[0], 0, d1, sizeof d1),
                           ct_item_kind_name(kind), (long long)W);
        int64_t s = it->len - shift;
        if (s < 1)
            return ct_fail(ctx, CT_E_SHAPE,
                           "collate: %s has %lld steps; a row needs at least %lld%s",
                           item_desc(it, i, d0, sizeof d0), (long long)it->len,
                           (long long)(1 + shift),
                           o.targets ? " (inputs and their next-step targets)" : "");
        if (L > 0 && s > L && o.window == CT_WINDOW_RANDOM && !rng)
            return ct_fail(ctx, CT_E_ARG,
                           "collate: %s has %lld steps, more than max_len %lld: a random window "
                           "needs a generator (rng is NULL)",
                           item_desc(it, i, d0, sizeof d0), (long long)s, (long long)L);
        rows += (L > 0 && o.window == CT_WINDOW_CONSECUTIVE) ? (s + L - 1) / L : 1;
    }

    /* the rows: which item, where they start, how long */
    int64_t *row_item = malloc((size_t)rows * sizeof(int64_t));
    int64_t *row_start = malloc((size_t)rows * sizeof(int64_t));
    int64_t *row_len = malloc((size_t)rows * sizeof(int64_t));
    out->index = malloc((size_t)rows * sizeof(int64_t));
    out->piece_id = malloc((size_t)rows * sizeof(int64_t));
    out->offset = malloc((size_t)rows * sizeof(int64_t));
    if (!row_item || !row_start || !row_len || !out->index || !out->piece_id || !out->offset) {
        free(row_item);
        free(row_start);
        free(row_len);
        ct_batch_clear(out);
        return ct_fail(ctx, CT_E_NOMEM, "collate: out of memory for %lld rows", (long long)rows);
    }
    int64_t r = 0, T = 0;
    for (int64_t i = 0; i < n; i++) {
        const ct_data_item *it = &items[i];
        int64_t s = it->len - shift;
        if (L > 0 && o.window == CT_WINDOW_CONSECUTIVE) {
            for (int64_t st = 0; st < s; st += L) {
                row_item[r] = i;
                row_start[r] = st;
                row_len[r] = s - st < L ? s - st : L;
                r++;
            }
        } else {
            row_item[r] = i;
            row_start[r] = 0;
            row_len[r] = s;
            if (L > 0 && s > L) {
                row_start[r] = (int64_t)ct_rng_below(rng, (uint64_t)(s - L + 1));
                row_len[r] = L;
            }
            r++;
        }
    }
    for (r = 0; r < rows; r++) {
        const ct_data_item *it = &items[row_item[r]];
        out->index[r] = it->index;
        out->piece_id[r] = it->piece_id;
        out->offset[r] = it->offset + row_start[r];
        if (row_len[r] > T) T = row_len[r];
    }

    /* the tensors, in the caller's scope */
    const int64_t B = rows;
    const bool tok = kind == CT_ITEM_TOKENS;
    const ct_dtype dt = tok ? CT_I64 : CT_F32;
    int64_t shape3[3], shape2[2];
    if (o.batch_first) {
        shape3[0] = shape2[0] = B;
        shape3[1] = shape2[1] = T;
    } else {
        shape3[0] = shape2[0] = T;
        shape3[1] = shape2[1] = B;
    }
    shape3[2] = W;
    const int nd = tok ? 2 : 3;
    const int64_t *shape = tok ? shape2 : shape3;
    ct_tensor *inputs = ct_empty(ctx, dt, nd, shape);
    ct_tensor *targets = o.targets ? ct_empty(ctx, dt, nd, shape) : NULL;
    ct_tensor *lengths = ct_empty(ctx, CT_I64, 1, &B);
    ct_tensor *mask = ct_empty(ctx, CT_F32, 2, shape2);
    if (!inputs || (o.targets && !targets) || !lengths || !mask) {
        free(row_item);
        free(row_start);
        free(row_len);
        ct_batch_clear(out);
        return ct_ctx_status(ctx) != CT_OK ? ct_ctx_status(ctx) : CT_E_NOMEM;
    }

    /* one pass: every element written once, each value copied once from its item */
    int64_t *len_d = ct_data_i64(lengths);
    float *mask_d = ct_data_f32(mask);
    const int64_t st_t = o.batch_first ? 1 : B, st_b = o.batch_first ? T : 1;   /* [t, b] -> elem */
    for (r = 0; r < B; r++) {
        const ct_data_item *it = &items[row_item[r]];
        const int64_t len = row_len[r], start = row_start[r];
        len_d[r] = len;
        for (int64_t t = 0; t < T; t++) mask_d[t * st_t + r * st_b] = t < len ? 1.0f : 0.0f;
        if (tok) {
            int64_t *in = ct_data_i64(inputs), *tg = targets ? ct_data_i64(targets) : NULL;
            const int64_t *src = it->tokens + start;
            for (int64_t t = 0; t < T; t++) {
                int64_t e = t * st_t + r * st_b;
                if (t < len) {
                    in[e] = src[t];
                    if (tg) tg[e] = src[t + 1];
                } else {
                    in[e] = o.pad_token;
                    if (tg) tg[e] = o.ignore_index;
                }
            }
        } else {
            float *in = ct_data_f32(inputs), *tg = targets ? ct_data_f32(targets) : NULL;
            const float *src = it->values + start * W;
            for (int64_t t = 0; t < T; t++) {
                int64_t e = (t * st_t + r * st_b) * W;
                if (t < len) {
                    memcpy(in + e, src + t * W, (size_t)W * sizeof(float));
                    if (tg) memcpy(tg + e, src + (t + 1) * W, (size_t)W * sizeof(float));
                } else {
                    for (int64_t w = 0; w < W; w++) in[e + w] = o.pad_value;
                    if (tg)
                        for (int64_t w = 0; w < W; w++) tg[e + w] = o.pad_value;
                }
            }
        }
    }
    free(row_item);
    free(row_start);
    free(row_len);
    out->kind = kind;
    out->rows = B;
    out->steps = T;
    out->width = W;
    out->inputs = inputs;
    out->targets = targets;
    out->lengths = lengths;
    out->mask = mask;
    out->items = n;
    out->epoch = -1;
    out->number = -1;
    out->skipped = 0;
    return CT_OK;
}
