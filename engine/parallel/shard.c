/* engine/parallel/shard.c — a rank's rows of a global batch (ct_batch_shard). See dist.h. */
#include <stdlib.h>
#include <string.h>

#include "engine/parallel/dist.h"

void ct_dist_shard_range(int64_t rows, int rank, int size, int64_t *begin, int64_t *end) {
    int64_t b = 0, e = 0;
    if (rows > 0 && size >= 1 && rank >= 0 && rank < size) {
        /* floor(rows * r / size) without overflow: rows = q * size + m */
        const int64_t q = rows / size, m = rows % size;
        b = q * rank + m * rank / size;
        e = q * (rank + 1) + m * (rank + 1) / size;
    }
    if (begin) *begin = b;
    if (end) *end = e;
}

/* rows [lo, lo + nr) along bdim and steps [0, T) along tdim, as a contiguous tensor */
static ct_tensor *cut(ct_tensor *t, int bdim, int64_t lo, int64_t nr, int tdim, int64_t T) {
    if (!t) return NULL;
    ct_tensor *v = ct_narrow(t, bdim, lo, nr);
    v = ct_narrow(v, tdim, 0, T);
    return ct_contiguous(v);
}

static int64_t *copy_rows(const int64_t *a, int64_t lo, int64_t nr, bool *oom) {
    if (!a) return NULL;
    int64_t *p = malloc(sizeof(int64_t) * (size_t)nr);
    if (!p) {
        *oom = true;
        return NULL;
    }
    memcpy(p, a + lo, sizeof(int64_t) * (size_t)nr);
    return p;
}

ct_status ct_batch_shard(ct_ctx *ctx, const ct_batch *g, bool batch_first, int rank, int size,
                         ct_batch *out) {
    if (!ctx) return CT_E_NULL;
    if (!out) return ct_fail(ctx, CT_E_ARG, "batch_shard: out is NULL");
    ct_batch_clear(out);
    if (!g) return ct_fail(ctx, CT_E_ARG, "batch_shard: the batch is NULL");
    if (size < 1 || rank < 0 || rank >= size)
        return ct_fail(ctx, CT_E_ARG, "batch_shard: rank %d of a world of %d (need 0 <= rank < size, "
                                      "size >= 1)",
                       rank, size);
    if (g->rows < 0 || !g->inputs || !g->lengths || !g->mask)
        return ct_fail(ctx, CT_E_ARG, "batch_shard: the batch lacks %s (a batch from ct_collate or "
                                      "ct_dataloader_next?)",
                       g->rows < 0 ? "a row count" : !g->inputs ? "inputs" : !g->lengths ? "lengths" : "a mask");
    const int bdim = batch_first ? 0 : 1, tdim = batch_first ? 1 : 0;
    char s1[96];
    if (g->inputs->ndim < 2 || g->inputs->shape[bdim] != g->rows || g->inputs->shape[tdim] != g->steps ||
        g->mask->ndim != 2 || g->mask->shape[bdim] != g->rows || g->mask->shape[tdim] != g->steps ||
        g->lengths->ndim != 1 || g->lengths->shape[0] != g->rows ||
        (g->targets && !ct_same_shape(g->targets, g->inputs)))
        return ct_fail(ctx, CT_E_SHAPE, "batch_shard: inputs %s are not %s = [%lld, %lld] (or the mask, "
                                        "lengths or targets do not match): is batch_first (%s) what "
                                        "the batch was collated with?",
                       ct_shape_str(g->inputs, s1, sizeof s1),
                       batch_first ? "[rows, steps]" : "[steps, rows]",
                       (long long)(batch_first ? g->rows : g->steps), (long long)(batch_first ? g->steps : g->rows),
                       batch_first ? "true" : "false");
    int64_t lo, hi;
    ct_dist_shard_range(g->rows, rank, size, &lo, &hi);
    const int64_t nr = hi - lo;
    out->kind = g->kind;
    out->width = g->width;
    out->epoch = g->epoch;
    out->number = g->number;
    out->skipped = rank == 0 ? g->skipped : 0;
    if (nr == 0) return CT_OK;   /* rows 0, steps 0, no tensors */

    int64_t *len = malloc(sizeof(int64_t) * (size_t)g->rows);
    if (!len) return ct_fail(ctx, CT_E_NOMEM, "batch_shard: out of memory");
    ct_status s = ct_copy_to_host(g->lengths, len, sizeof(int64_t) * (size_t)g->rows);
    int64_t T = 0;
    for (int64_t r = lo; s == CT_OK && r < hi; r++) {
        if (len[r] < 1 || len[r] > g->steps) {
            s = ct_fail(ctx, CT_E_ARG, "batch_shard: row %lld has length %lld; lengths must be in [1, "
                                       "steps = %lld]",
                        (long long)r, (long long)len[r], (long long)g->steps);
            break;
        }
        if (len[r] > T) T = len[r];
    }
    if (s != CT_OK) {
        free(len);
        return s;
    }
    ct_tensor *lengths = ct_from_i64(ctx, len + lo, 1, &nr);
    free(len);
    ct_tensor *inputs = cut(g->inputs, bdim, lo, nr, tdim, T);
    ct_tensor *targets = cut(g->targets, bdim, lo, nr, tdim, T);
    ct_tensor *mask = cut(g->mask, bdim, lo, nr, tdim, T);
    if (!lengths || !inputs || !mask || (g->targets && !targets)) {
        ct_batch_clear(out);
        return ct_ctx_status(ctx) != CT_OK ? ct_ctx_status(ctx) : CT_E_NOMEM;
    }
    bool oom = false;
    out->index = copy_rows(g->index, lo, nr, &oom);
    out->piece_id = copy_rows(g->piece_id, lo, nr, &oom);
    out->offset = copy_rows(g->offset, lo, nr, &oom);
    if (oom) {
        ct_batch_clear(out);
        return ct_fail(ctx, CT_E_NOMEM, "batch_shard: out of memory");
    }
    int64_t items = nr;
    if (g->index && g->items != g->rows) {   /* rows of one item (consecutive windows) are adjacent */
        items = 0;
        for (int64_t r = lo; r < hi; r++) items += r == lo || g->index[r] != g->index[r - 1];
    }
    out->rows = nr;
    out->steps = T;
    out->inputs = inputs;
    out->targets = targets;
    out->lengths = lengths;
    out->mask = mask;
    out->items = items;
    return CT_OK;
}
