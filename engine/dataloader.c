/* engine/dataloader.c — batches from a dataset: samplers (sequential, random, length-bucketed),
 * worker threads feeding a bounded, ordered queue, per-item generators, resumable positions,
 * skip/stop error policies and per-epoch reports.
 *
 * HOW THE QUEUE STAYS DETERMINISTIC. An epoch's plan is the order of its items (a permutation of
 * the dataset's indices) cut into batches. Items are processed by their position k in that
 * order ("slot" k): whoever processes slot k (a worker or the caller's thread) draws only from
 * ct_rng_fork(item_root(epoch), index), and the result goes to ring[k % cap]. Slots are handed
 * out in increasing order and at most cap ahead of the first one not yet taken, and the caller
 * takes them in order, so the batches never depend on the number of workers or on timing. When
 * the slot the caller needs has not been started, the caller processes it itself; while it is
 * in flight elsewhere, the caller processes the next unstarted slot (if the queue has room)
 * instead of waiting idle, so it only ever sleeps when every slot it could start is taken. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/data.h"

enum { SLOT_EMPTY = 0, SLOT_BUSY, SLOT_READY };

typedef struct slot {
    ct_data_item item;
    ct_status st;
    int state;
} slot;

struct ct_dataloader {
    ct_ctx *ctx;
    ct_dataset ds;
    ct_dataloader_opts o;
    ct_transform transform;     /* a copy of the struct; the state is borrowed */
    int64_t n;                  /* dataset length */
    int64_t nb;                 /* batches per epoch */
    int64_t *lengths;           /* bucket sampler: effective lengths */
    ct_rng base;
    uint64_t fingerprint;

    /* position: the next batch to deliver */
    int64_t epoch, batch, item;
    int64_t len_checked;        /* the epoch whose start checked the dataset's length */
    ct_status status;
    atomic_int interrupted;

    /* the plan of plan_epoch */
    int64_t plan_epoch;         /* -1: none */
    int64_t *order;             /* n */
    int64_t *bstart;            /* nb + 1 */
    ct_rng item_root;
    int64_t *pairs;             /* scratch for the bucket sort: 2n */
    int64_t *border;            /* scratch: batch order, nb */

    /* the queue */
    bool active;                /* slots of the current plan may be processed */
    slot *ring;
    int64_t cap;
    int64_t next_slot, consumed, n_slots, in_flight;
    bool shutdown;
    pthread_mutex_t mu;
    pthread_cond_t cv_ready, cv_work;
    pthread_t *threads;
    int nthreads;
    bool sync_init;             /* mu and the condition variables exist */

    /* the batch being delivered */
    ct_batch batch_out;
    ct_data_item *taken;             /* 2 * batch_size: the batch's items, then the failed ones */
    ct_status *taken_st;

    /* reports */
    ct_data_report cur, last;
    ct_data_skip *cur_reasons, *last_reasons;
};

/* ---- small helpers ---------------------------------------------------------------------- */
static uint64_t fnv(uint64_t h, uint64_t v) {
    for (int i = 0; i < 8; i++) {
        h ^= (v >> (8 * i)) & 0xff;
        h *= 0x100000001b3ULL;
    }
    return h;
}
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint64_t get64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void free_reasons(ct_data_skip *r, int64_t n) {
    for (int64_t i = 0; i < n; i++) free(r[i].message);
    free(r);
}

static void report_reset(ct_dataloader *dl) {
    free_reasons(dl->cur_reasons, dl->cur.n_reasons);
    dl->cur_reasons = NULL;
    memset(&dl->cur, 0, sizeof dl->cur);
    dl->cur.epoch = dl->epoch;
}

static const char *item_source(const ct_dataloader *dl, const ct_data_item *it, int64_t index,
                               char *buf, size_t n) {
    if (it->source) {
        snprintf(buf, n, "%s", it->source);
        return buf;
    }
    return ct_dataset_describe(&dl->ds, index, buf, n);
}

/* ---- processing one item (any thread) ------------------------------------------------------ */
static ct_status process(ct_dataloader *dl, int64_t k, ct_data_item *out) {
    const int64_t idx = dl->order[k];
    const ct_rng r0 = ct_rng_fork(&dl->item_root, (uint64_t)idx);
    ct_rng r = ct_rng_fork(&r0, 0);
    ct_item_init(out);
    out->index = idx;
    ct_status s = dl->ds.get(dl->ds.self, idx, out, &r);
    if (s == CT_OK && out->kind == CT_ITEM_EMPTY)
        s = ct_item_fail(out, CT_E_STATE,
                         "get returned CT_OK but gave the item no data (fill it with "
                         "ct_item_set_tokens, ct_item_set_frames or ct_item_set_samples)");
    if (s == CT_OK) {
        out->index = idx;
        if (out->piece_id < 0) out->piece_id = idx;
    }
    if (s == CT_OK && dl->transform.fn) {
        r = ct_rng_fork(&r0, 1);
        s = ct_transform_apply(&dl->transform, out, &r);
    }
    if (s == CT_OK) {
        r = ct_rng_fork(&r0, 2);
        s = ct_collate_window(out, &dl->o.collate, &r);
    }
    const int64_t need = dl->o.collate.targets ? 2 : 1;
    if (s == CT_OK && out->len < need)
        s = ct_item_fail(out, CT_E_SHAPE, "it has %lld steps; a row needs at least %lld%s",
                         (long long)out->len, (long long)need,
                         dl->o.collate.targets ? " (inputs and their next-step targets)" : "");
    if (s != CT_OK) {   /* keep the message and the source, drop the data */
        char *err = out->error, *src = out->source;
        out->error = out->source = NULL;
        ct_item_free(out);
        out->error = err;
        out->source = src;
        out->index = idx;
        if (!out->error) ct_item_fail(out, s, "failed (%s)", ct_status_text(s));
    }
    return s;
}

/* ---- workers -------------------------------------------------------------------------------- */
static bool can_grab(const ct_dataloader *dl) {
    return dl->active && !atomic_load(&dl->interrupted) && dl->next_slot < dl->n_slots &&
           dl->next_slot < dl->consumed + dl->cap;
}

static void *worker_main(void *arg) {
    ct_dataloader *dl = arg;
    pthread_mutex_lock(&dl->mu);
    while (!dl->shutdown) {
        if (!can_grab(dl)) {
            pthread_cond_wait(&dl->cv_work, &dl->mu);
            continue;
        }
        int64_t j = dl->next_slot++;
        slot *sl = &dl->ring[j % dl->cap];
        sl->state = SLOT_BUSY;
        dl->in_flight++;
        pthread_mutex_unlock(&dl->mu);
        ct_data_item it;
        ct_status st = process(dl, j, &it);
        pthread_mutex_lock(&dl->mu);
        sl->item = it;
        sl->st = st;
        sl->state = SLOT_READY;
        dl->in_flight--;
        pthread_cond_broadcast(&dl->cv_ready);
    }
    pthread_mutex_unlock(&dl->mu);
    return NULL;
}

/* Stops the workers' current plan and frees what they fetched ahead (caller's thread). */
static void drain(ct_dataloader *dl) {
    if (dl->nthreads == 0) {
        dl->active = false;
        return;
    }
    pthread_mutex_lock(&dl->mu);
    dl->active = false;
    while (dl->in_flight > 0) pthread_cond_wait(&dl->cv_ready, &dl->mu);
    for (int64_t i = 0; i < dl->cap; i++) {
        if (dl->ring[i].state == SLOT_READY) ct_item_free(&dl->ring[i].item);
        dl->ring[i].state = SLOT_EMPTY;
    }
    dl->next_slot = dl->consumed = dl->n_slots = 0;
    pthread_mutex_unlock(&dl->mu);
}

#define INTERRUPTED ((ct_status)-1)

/* Takes slot k (in order) into *out; returns the item's status, or INTERRUPTED. */
static ct_status take(ct_dataloader *dl, int64_t k, ct_data_item *out) {
    if (dl->nthreads == 0) {
        if (atomic_load(&dl->interrupted)) return INTERRUPTED;
        return process(dl, k, out);
    }
    pthread_mutex_lock(&dl->mu);
    for (;;) {
        if (atomic_load(&dl->interrupted)) {
            pthread_mutex_unlock(&dl->mu);
            return INTERRUPTED;
        }
        slot *sl = &dl->ring[k % dl->cap];
        if (k < dl->next_slot) {
            if (sl->state == SLOT_READY) {
                *out = sl->item;
                ct_status st = sl->st;
                sl->state = SLOT_EMPTY;
                dl->consumed = k + 1;
                pthread_cond_broadcast(&dl->cv_work);
                pthread_mutex_unlock(&dl->mu);
                return st;
            }
            if (!can_grab(dl)) {   /* in flight: wait for it */
                pthread_cond_wait(&dl->cv_ready, &dl->mu);
                continue;
            }
            /* else help: process the next unstarted slot rather than wait idle */
        }
        /* the next unstarted slot (k itself, or one ahead of it while k is in flight) */
        int64_t j = dl->next_slot++;
        slot *sj = &dl->ring[j % dl->cap];
        sj->state = SLOT_BUSY;
        dl->in_flight++;
        pthread_mutex_unlock(&dl->mu);
        ct_data_item it;
        ct_status st = process(dl, j, &it);
        pthread_mutex_lock(&dl->mu);
        sj->item = it;
        sj->st = st;
        sj->state = SLOT_READY;
        dl->in_flight--;
        pthread_cond_broadcast(&dl->cv_ready);
    }
}

/* ---- plans ------------------------------------------------------------------------------------ */
static void shuffle(int64_t *a, int64_t n, ct_rng *r) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)ct_rng_below(r, (uint64_t)i + 1);
        int64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

static int cmp_pair(const void *a, const void *b) {
    const int64_t *x = a, *y = b;
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    return x[1] < y[1] ? -1 : x[1] > y[1];
}

static void make_plan(ct_dataloader *dl, int64_t epoch) {
    const int64_t n = dl->n, B = dl->o.batch_size, nb = dl->nb;
    ct_rng perm = ct_rng_fork(&dl->base, 2 * (uint64_t)epoch);
    dl->item_root = ct_rng_fork(&dl->base, 2 * (uint64_t)epoch + 1);
    for (int64_t i = 0; i < n; i++) dl->order[i] = i;
    if (dl->o.sampler != CT_SAMPLER_SEQUENTIAL) shuffle(dl->order, n, &perm);
    if (dl->o.sampler != CT_SAMPLER_BUCKET) {
        for (int64_t b = 0; b < nb; b++) dl->bstart[b] = b * B;
        dl->bstart[nb] = nb * B < n ? nb * B : n;
        dl->plan_epoch = epoch;
        return;
    }
    /* pools of bucket_batches batches, each sorted by length (ties: permutation order). With
     * drop_last the items left over are the permutation's last ones (random), not the longest
     * of a pool. */
    const int64_t pool = dl->o.bucket_batches * B, used = dl->o.drop_last ? nb * B : n;
    for (int64_t p = 0; p < used; p += pool) {
        int64_t e = p + pool < used ? p + pool : used;
        for (int64_t i = p; i < e; i++) {
            dl->pairs[2 * i] = dl->lengths[dl->order[i]];
            dl->pairs[2 * i + 1] = i;
        }
        qsort(dl->pairs + 2 * p, (size_t)(e - p), 2 * sizeof(int64_t), cmp_pair);
    }
    for (int64_t i = 0; i < used; i++) dl->pairs[2 * i] = dl->order[dl->pairs[2 * i + 1]];
    /* batches of the sorted order (pools are whole batches, so only the last batch can be
     * smaller), in shuffled order */
    for (int64_t b = 0; b < nb; b++) dl->border[b] = b;
    shuffle(dl->border, nb, &perm);
    int64_t k = 0;
    for (int64_t b = 0; b < nb; b++) {
        int64_t s0 = dl->border[b] * B, e = s0 + B < used ? s0 + B : used;
        dl->bstart[b] = k;
        for (int64_t i = s0; i < e; i++) dl->order[k++] = dl->pairs[2 * i];
    }
    dl->bstart[nb] = k;
    dl->plan_epoch = epoch;
}

/* Makes the plan of the current epoch and lets the workers start. quiet: record no error. */
static ct_status check_len(ct_dataloader *dl, bool quiet) {
    int64_t n = ct_dataset_len(&dl->ds);
    if (n == dl->n) return CT_OK;
    if (quiet) return CT_E_STATE;
    return ct_fail(dl->ctx, CT_E_STATE,
                   "dataloader: the dataset had %lld items when the loader was made and has "
                   "%lld now; make a new loader for a changed dataset",
                   (long long)dl->n, (long long)n);
}

static ct_status start_epoch(ct_dataloader *dl, bool quiet) {
    ct_status ls = check_len(dl, quiet);
    if (ls != CT_OK) return ls;
    if (!quiet) dl->len_checked = dl->epoch;
    if (dl->plan_epoch != dl->epoch) make_plan(dl, dl->epoch);
    if (dl->bstart[dl->batch] != dl->item) {
        if (quiet) return CT_E_STATE;
        return ct_fail(dl->ctx, CT_E_STATE,
                       "dataloader: batch %lld of epoch %lld starts at item %lld of the epoch's "
                       "order, but the position says %lld (a position from another "
                       "configuration?)",
                       (long long)dl->batch, (long long)dl->epoch,
                       (long long)dl->bstart[dl->batch], (long long)dl->item);
    }
    if (dl->nthreads > 0) {
        pthread_mutex_lock(&dl->mu);
        dl->next_slot = dl->consumed = dl->bstart[dl->batch];
        dl->n_slots = dl->bstart[dl->nb];
        dl->active = true;
        pthread_cond_broadcast(&dl->cv_work);
        pthread_mutex_unlock(&dl->mu);
    } else {
        dl->active = true;
    }
    return CT_OK;
}

/* ---- creation ---------------------------------------------------------------------------------- */
ct_dataloader_opts ct_dataloader_defaults(void) {
    ct_dataloader_opts o;
    memset(&o, 0, sizeof o);
    o.batch_size = 32;
    o.sampler = CT_SAMPLER_SEQUENTIAL;
    o.drop_last = false;
    o.seed = 0;
    o.workers = 0;
    o.prefetch = 0;
    o.bucket_batches = 0;
    o.lengths = NULL;
    o.on_error = CT_ON_ERROR_STOP;
    o.transform = NULL;
    o.collate = ct_collate_defaults();
    return o;
}

void ct_dataloader_free(ct_dataloader *dl) {
    if (!dl) return;
    if (dl->nthreads > 0) {
        pthread_mutex_lock(&dl->mu);
        dl->shutdown = true;
        dl->active = false;
        pthread_cond_broadcast(&dl->cv_work);
        pthread_mutex_unlock(&dl->mu);
        for (int i = 0; i < dl->nthreads; i++) pthread_join(dl->threads[i], NULL);
    }
    if (dl->ring)
        for (int64_t i = 0; i < dl->cap; i++)
            if (dl->ring[i].state == SLOT_READY) ct_item_free(&dl->ring[i].item);
    if (dl->sync_init) {
        pthread_mutex_destroy(&dl->mu);
        pthread_cond_destroy(&dl->cv_ready);
        pthread_cond_destroy(&dl->cv_work);
    }
    ct_batch_clear(&dl->batch_out);
    free_reasons(dl->cur_reasons, dl->cur.n_reasons);
    free_reasons(dl->last_reasons, dl->last.n_reasons);
    free(dl->threads);
    free(dl->ring);
    free(dl->taken);
    free(dl->taken_st);
    free(dl->lengths);
    free(dl->order);
    free(dl->bstart);
    free(dl->pairs);
    free(dl->border);
    free(dl);
}

ct_dataloader *ct_dataloader_new(ct_ctx *ctx, const ct_dataset *ds, const ct_dataloader_opts *opts) {
    if (!ctx) return NULL;
    ct_dataloader_opts o = opts ? *opts : ct_dataloader_defaults();
#define BAD(...) do { ct_fail(ctx, CT_E_ARG, __VA_ARGS__); return NULL; } while (0)
    if (!ds || !ds->len || !ds->get)
        BAD("dataloader: the dataset is NULL or lacks len or get (fill ct_dataset's len and get)");
    if (o.batch_size < 1) BAD("dataloader: batch_size %lld must be at least 1", (long long)o.batch_size);
    if (o.workers < 0 || o.workers > 64)
        BAD("dataloader: workers %d must be in [0, 64] (0: load in the caller's thread)", o.workers);
    if (o.prefetch < 0) BAD("dataloader: prefetch %d is negative (0: the default)", o.prefetch);
    if (o.bucket_batches < 0)
        BAD("dataloader: bucket_batches %lld is negative (0: the default)", (long long)o.bucket_batches);
    if (o.sampler != CT_SAMPLER_SEQUENTIAL && o.sampler != CT_SAMPLER_RANDOM &&
        o.sampler != CT_SAMPLER_BUCKET)
        BAD("dataloader: unknown sampler %d", (int)o.sampler);
    if (o.on_error != CT_ON_ERROR_STOP && o.on_error != CT_ON_ERROR_SKIP)
        BAD("dataloader: unknown on_error policy %d", (int)o.on_error);
    if (o.collate.max_len < 0)
        BAD("dataloader: collate.max_len %lld is negative (0 = whole items)", (long long)o.collate.max_len);
    if (o.collate.window != CT_WINDOW_RANDOM && o.collate.window != CT_WINDOW_CONSECUTIVE)
        BAD("dataloader: unknown collate.window mode %d", (int)o.collate.window);
    int64_t n = ds->len(ds->self);
    if (n < 1) BAD("dataloader: the dataset has %lld items; it needs at least one", (long long)n);
    int64_t nb = n / o.batch_size + (n % o.batch_size != 0 && !o.drop_last);
    if (nb < 1)
        BAD("dataloader: %lld items make no batch of %lld with drop_last; lower batch_size or "
            "turn drop_last off",
            (long long)n, (long long)o.batch_size);
    if (o.sampler == CT_SAMPLER_BUCKET && !o.lengths && !ds->item_len)
        BAD("dataloader: the bucketing sampler needs the items' lengths: set opts.lengths or the "
            "dataset's item_len");
#undef BAD
    if (o.bucket_batches == 0) o.bucket_batches = 32;
    if (o.prefetch == 0) o.prefetch = o.workers * 2 > 2 ? o.workers * 2 : 2;

    ct_dataloader *dl = calloc(1, sizeof *dl);
    if (!dl) {
        ct_fail(ctx, CT_E_NOMEM, "dataloader: out of memory");
        return NULL;
    }
    dl->ctx = ctx;
    dl->ds = *ds;
    dl->o = o;
    dl->o.lengths = NULL;
    dl->o.transform = NULL;
    if (o.transform) dl->transform = *o.transform;
    dl->n = n;
    dl->nb = nb;
    dl->plan_epoch = -1;
    dl->len_checked = -1;
    atomic_init(&dl->interrupted, 0);
    ct_rng_seed(&dl->base, o.seed);
    dl->cap = (int64_t)o.prefetch * o.batch_size;
    if (dl->cap > n + o.batch_size) dl->cap = n + o.batch_size;   /* no use going beyond an epoch */
    dl->order = malloc((size_t)n * sizeof(int64_t));
    dl->bstart = malloc((size_t)(nb + 1) * sizeof(int64_t));
    dl->taken = calloc((size_t)o.batch_size * 2, sizeof(ct_data_item));   /* + the failed ones */
    dl->taken_st = calloc((size_t)o.batch_size * 2, sizeof(ct_status));
    bool ok = dl->order && dl->bstart && dl->taken && dl->taken_st;
    if (ok && o.sampler == CT_SAMPLER_BUCKET) {
        dl->lengths = malloc((size_t)n * sizeof(int64_t));
        dl->pairs = malloc((size_t)n * 2 * sizeof(int64_t));
        dl->border = malloc((size_t)nb * sizeof(int64_t));
        ok = dl->lengths && dl->pairs && dl->border;
    }
    if (ok && o.workers > 0) {
        dl->ring = calloc((size_t)dl->cap, sizeof(slot));
        dl->threads = calloc((size_t)o.workers, sizeof(pthread_t));
        ok = dl->ring && dl->threads;
    }
    if (!ok) {
        ct_fail(ctx, CT_E_NOMEM, "dataloader: out of memory for %lld items", (long long)n);
        ct_dataloader_free(dl);
        return NULL;
    }
    uint64_t fp = 0xcbf29ce484222325ULL;
    fp = fnv(fp, (uint64_t)o.sampler);
    fp = fnv(fp, o.drop_last);
    fp = fnv(fp, o.sampler == CT_SAMPLER_BUCKET ? (uint64_t)o.bucket_batches : 0);
    fp = fnv(fp, (uint64_t)o.collate.max_len);
    fp = fnv(fp, (uint64_t)o.collate.window);
    fp = fnv(fp, o.collate.targets);
    if (o.sampler == CT_SAMPLER_BUCKET) {
        const int64_t span = o.collate.max_len + (o.collate.targets ? 1 : 0);
        for (int64_t i = 0; i < n; i++) {
            int64_t len = o.lengths ? o.lengths[i] : ds->item_len(ds->self, i);
            if (len < 0) {
                ct_fail(ctx, CT_E_ARG, "dataloader: item %lld has length %lld (for bucketing); "
                                       "lengths must be >= 0",
                        (long long)i, (long long)len);
                ct_dataloader_free(dl);
                return NULL;
            }
            if (o.collate.max_len > 0 && o.collate.window == CT_WINDOW_RANDOM && len > span)
                len = span;   /* a training window is all the batch will see */
            dl->lengths[i] = len;
            fp = fnv(fp, (uint64_t)len);
        }
    }
    dl->fingerprint = fp;
    report_reset(dl);
    dl->last.epoch = -1;
    if (o.workers > 0) {
        if (pthread_mutex_init(&dl->mu, NULL) != 0 || pthread_cond_init(&dl->cv_ready, NULL) != 0 ||
            pthread_cond_init(&dl->cv_work, NULL) != 0) {
            ct_fail(ctx, CT_E_NOMEM, "dataloader: cannot create the queue's lock");
            ct_dataloader_free(dl);   /* a partial init leaks nothing: these hold no memory */
            return NULL;
        }
        dl->sync_init = true;
        for (int i = 0; i < o.workers; i++) {
            if (pthread_create(&dl->threads[i], NULL, worker_main, dl) != 0) {
                ct_fail(ctx, CT_E_NOMEM, "dataloader: cannot start worker thread %d of %d", i + 1,
                        o.workers);
                ct_dataloader_free(dl);   /* joins the ones that started */
                return NULL;
            }
            dl->nthreads = i + 1;
        }
    }
    return dl;
}

/* ---- iteration ------------------------------------------------------------------------------- */
static void add_reason(ct_dataloader *dl, const ct_data_item *it, ct_status st) {
    dl->cur.skipped++;
    if (dl->cur.n_reasons >= CT_DATA_MAX_REASONS) return;
    if (!dl->cur_reasons) {
        dl->cur_reasons = calloc(CT_DATA_MAX_REASONS, sizeof(ct_data_skip));
        if (!dl->cur_reasons) return;
        dl->cur.reasons = dl->cur_reasons;
    }
    char src[256];
    item_source(dl, it, it->index, src, sizeof src);
    const char *msg = it->error ? it->error : ct_status_text(st);
    int len = snprintf(NULL, 0, "item %lld (%s): %s", (long long)it->index, src, msg);
    char *m = malloc((size_t)(len > 0 ? len : 0) + 1);
    if (!m) return;
    snprintf(m, (size_t)len + 1, "item %lld (%s): %s", (long long)it->index, src, msg);
    ct_data_skip *r = &dl->cur_reasons[dl->cur.n_reasons++];
    r->index = it->index;
    r->status = st;
    r->message = m;
}

static void finish_epoch(ct_dataloader *dl) {
    free_reasons(dl->last_reasons, dl->last.n_reasons);
    dl->last = dl->cur;
    dl->last_reasons = dl->cur_reasons;
    dl->last.reasons = dl->last_reasons;
    dl->cur_reasons = NULL;
    dl->cur.n_reasons = 0;
    dl->epoch++;
    dl->batch = 0;
    dl->item = 0;
    report_reset(dl);
}

static void free_taken(ct_dataloader *dl, int64_t from, int64_t to) {
    for (int64_t i = from; i < to; i++) ct_item_free(&dl->taken[i]);
}

const ct_batch *ct_dataloader_next(ct_dataloader *dl) {
    if (!dl) return NULL;
    dl->status = CT_OK;
    ct_batch_clear(&dl->batch_out);
    for (;;) {
        if (dl->batch >= dl->nb) {   /* the end of the epoch */
            drain(dl);
            finish_epoch(dl);
            if (dl->nthreads > 0) start_epoch(dl, true);   /* fetch ahead; errors come later */
            return NULL;
        }
        if (!dl->active) {
            ct_status s = start_epoch(dl, false);
            if (s != CT_OK) {
                dl->status = s;
                return NULL;
            }
        } else if (dl->len_checked != dl->epoch) {   /* started ahead: check it now */
            ct_status s = check_len(dl, false);
            if (s != CT_OK) {
                drain(dl);
                dl->status = s;
                return NULL;
            }
            dl->len_checked = dl->epoch;
        }
        const int64_t s0 = dl->bstart[dl->batch], s1 = dl->bstart[dl->batch + 1];
        int64_t m = 0;
        bool interrupted = false;
        for (int64_t k = s0; k < s1; k++) {
            ct_status st = take(dl, k, &dl->taken[m]);
            if (st == INTERRUPTED) {
                interrupted = true;
                break;
            }
            dl->taken_st[m++] = st;
        }
        if (interrupted) {
            free_taken(dl, 0, m);
            drain(dl);
            atomic_store(&dl->interrupted, 0);
            dl->status = ct_fail(dl->ctx, CT_E_STATE,
                                 "dataloader: interrupted (ct_dataloader_interrupt) before batch "
                                 "%lld of epoch %lld was complete; the position is kept (save it "
                                 "with ct_dataloader_save to resume)",
                                 (long long)dl->batch, (long long)dl->epoch);
            return NULL;
        }
        /* failures, in order: stop at the first, or set them aside (taken[B + f]) */
        const int64_t B = dl->o.batch_size;
        int64_t ok = 0, skipped = 0;
        for (int64_t i = 0; i < m; i++) {
            ct_data_item *it = &dl->taken[i];
            if (dl->taken_st[i] == CT_OK) {
                if (ok != i) {
                    dl->taken[ok] = *it;
                    ct_item_init(it);
                }
                ok++;
                continue;
            }
            if (dl->o.on_error == CT_ON_ERROR_STOP) {
                char src[256];
                item_source(dl, it, it->index, src, sizeof src);
                dl->status = ct_fail(dl->ctx, dl->taken_st[i],
                                     "dataloader: item %lld (%s) failed in epoch %lld, batch %lld: "
                                     "%s (on_error = CT_ON_ERROR_SKIP would skip it)",
                                     (long long)it->index, src, (long long)dl->epoch,
                                     (long long)dl->batch, it->error ? it->error : "no message");
                free_taken(dl, 0, m);
                free_taken(dl, B, B + skipped);
                drain(dl);
                return NULL;
            }
            dl->taken[B + skipped] = *it;
            dl->taken_st[B + skipped] = dl->taken_st[i];
            ct_item_init(it);
            skipped++;
        }
        ct_status s = CT_OK;
        if (ok > 0) {
            s = ct_collate(dl->ctx, dl->taken, ok, &dl->o.collate, NULL, &dl->batch_out);
            free_taken(dl, 0, ok);
        }
        if (s != CT_OK) {   /* the position stays: the batch is tried again next time */
            free_taken(dl, B, B + skipped);
            dl->status = s;
            drain(dl);
            return NULL;
        }
        for (int64_t f = 0; f < skipped; f++) add_reason(dl, &dl->taken[B + f], dl->taken_st[B + f]);
        free_taken(dl, B, B + skipped);
        if (ok == 0) {   /* every item of this batch failed: go on to the next batch */
            dl->batch++;
            dl->item = dl->bstart[dl->batch];
            continue;
        }
        dl->batch_out.epoch = dl->epoch;
        dl->batch_out.number = dl->batch;
        dl->batch_out.skipped = skipped;
        dl->cur.batches++;
        dl->cur.items += ok;
        dl->batch++;
        dl->item = dl->bstart[dl->batch];
        return &dl->batch_out;
    }
}

ct_status ct_dataloader_status(const ct_dataloader *dl) { return dl ? dl->status : CT_E_NULL; }
int64_t ct_dataloader_num_batches(const ct_dataloader *dl) { return dl ? dl->nb : 0; }

void ct_dataloader_stop(ct_dataloader *dl) {
    if (dl) drain(dl);
}

void ct_dataloader_interrupt(ct_dataloader *dl) {
    if (dl) atomic_store(&dl->interrupted, 1);
}

ct_dataloader_pos ct_dataloader_position(const ct_dataloader *dl) {
    ct_dataloader_pos p = {0, 0, 0};
    if (dl) {
        p.epoch = dl->epoch;
        p.batch = dl->batch;
        p.item = dl->item;
    }
    return p;
}

/* ---- saving and restoring the position ----------------------------------------------------- */
#define STATE_MAGIC 0x4c445443u   /* "CTDL" */
#define STATE_VERSION 1u

void ct_dataloader_save(const ct_dataloader *dl, uint8_t out[CT_DATALOADER_STATE_BYTES]) {
    if (!dl || !out) return;
    memset(out, 0, CT_DATALOADER_STATE_BYTES);
    put64(out, (uint64_t)STATE_MAGIC | ((uint64_t)STATE_VERSION << 32));
    ct_rng_save(&dl->base, out + 8);
    put64(out + 48, (uint64_t)dl->epoch);
    put64(out + 56, (uint64_t)dl->batch);
    put64(out + 64, (uint64_t)dl->item);
    put64(out + 72, (uint64_t)dl->n);
    put64(out + 80, (uint64_t)dl->o.batch_size);
    put64(out + 88, dl->fingerprint);
    put64(out + 96, (uint64_t)dl->cur.items);
    put64(out + 104, (uint64_t)dl->cur.skipped);
    put64(out + 112, (uint64_t)dl->cur.batches);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; i < 120; i += 8) h = fnv(h, get64(out + i));
    put64(out + 120, h);
}

ct_status ct_dataloader_load(ct_dataloader *dl, const uint8_t *in, size_t n) {
    if (!dl) return CT_E_NULL;
    ct_ctx *ctx = dl->ctx;
#define LFAIL(s, ...) do { dl->status = ct_fail(ctx, s, __VA_ARGS__); return dl->status; } while (0)
    if (!in || n != CT_DATALOADER_STATE_BYTES)
        LFAIL(CT_E_FORMAT, "dataloader_load: %zu bytes; a saved position has %d (from "
                           "ct_dataloader_save)", in ? n : (size_t)0, CT_DATALOADER_STATE_BYTES);
    uint64_t head = get64(in);
    if ((uint32_t)head != STATE_MAGIC)
        LFAIL(CT_E_FORMAT, "dataloader_load: bytes 0-3 are not \"CTDL\": not a saved data-loader "
                           "position");
    if ((head >> 32) != STATE_VERSION)
        LFAIL(CT_E_FORMAT, "dataloader_load: version %u, this build reads version %u",
              (unsigned)(head >> 32), STATE_VERSION);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; i < 120; i += 8) h = fnv(h, get64(in + i));
    if (h != get64(in + 120))
        LFAIL(CT_E_FORMAT, "dataloader_load: the checksum (bytes 120-127) does not match: the "
                           "position was damaged");
    ct_rng base;
    if (ct_rng_load(&base, in + 8, CT_RNG_STATE_BYTES) != CT_OK)
        LFAIL(CT_E_FORMAT, "dataloader_load: the generator state (bytes 8-47) is invalid");
    int64_t epoch = (int64_t)get64(in + 48), batch = (int64_t)get64(in + 56),
            item = (int64_t)get64(in + 64), nn = (int64_t)get64(in + 72),
            bs = (int64_t)get64(in + 80);
    if (nn != dl->n)
        LFAIL(CT_E_STATE, "dataloader_load: the position was saved for a dataset of %lld items; "
                          "this loader's has %lld",
              (long long)nn, (long long)dl->n);
    if (bs != dl->o.batch_size)
        LFAIL(CT_E_STATE, "dataloader_load: the position was saved with batch_size %lld; this "
                          "loader has %lld",
              (long long)bs, (long long)dl->o.batch_size);
    if (get64(in + 88) != dl->fingerprint)
        LFAIL(CT_E_STATE, "dataloader_load: the position was saved with another sampler, "
                          "drop_last, bucket_batches, collate window (max_len, mode, targets) or "
                          "other item lengths; restore it into a loader configured the same way");
    if (epoch < 0 || batch < 0 || batch > dl->nb || item < 0 || item > dl->n)
        LFAIL(CT_E_FORMAT, "dataloader_load: position epoch %lld, batch %lld, item %lld is out "
                           "of range (%lld batches of %lld items)",
              (long long)epoch, (long long)batch, (long long)item, (long long)dl->nb,
              (long long)dl->n);
#undef LFAIL
    drain(dl);
    dl->base = base;
    dl->plan_epoch = -1;
    dl->epoch = epoch;
    dl->batch = batch;
    dl->item = item;
    report_reset(dl);
    dl->cur.items = (int64_t)get64(in + 96);
    dl->cur.skipped = (int64_t)get64(in + 104);
    dl->cur.batches = (int64_t)get64(in + 112);
    dl->status = CT_OK;
    return CT_OK;
}

/* ---- reports -------------------------------------------------------------------------------- */
const ct_data_report *ct_dataloader_report(const ct_dataloader *dl) { return dl ? &dl->cur : NULL; }
const ct_data_report *ct_dataloader_epoch_report(const ct_dataloader *dl) {
    return dl ? &dl->last : NULL;
}

int ct_data_report_format(const ct_data_report *r, char *buf, size_t n) {
    char dummy[1];
    if (!buf || n == 0) {
        buf = dummy;
        n = sizeof dummy;
    }
    if (!r) return snprintf(buf, n, "no report");
    size_t total = 0;
#define ADD(...) do { \
        int k_ = snprintf(buf + (total < n ? total : n - 1), total < n ? n - total : 1, __VA_ARGS__); \
        if (k_ > 0) total += (size_t)k_; \
    } while (0)
    ADD("epoch %lld: %lld batches, %lld items, %lld skipped", (long long)r->epoch,
        (long long)r->batches, (long long)r->items, (long long)r->skipped);
    for (int64_t i = 0; i < r->n_reasons; i++) ADD("%s%s", i ? "; " : ": ", r->reasons[i].message);
    if (r->skipped > r->n_reasons)
        ADD("%s%lld more not listed", r->n_reasons ? "; " : ": ",
            (long long)(r->skipped - r->n_reasons));
#undef ADD
    return (int)total;
}
