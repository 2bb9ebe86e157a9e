/* engine/data.h — the data pipeline: items, datasets, transforms, collate, the data loader.
 *
 * THE PIPELINE
 *   dataset (len + get by index)  ->  transforms (per item, in worker threads)
 *     ->  training window (random, per item)  ->  bounded queue, in order
 *     ->  collate in the caller's thread: padded batch tensors + lengths + mask (+ targets)
 *
 *     ct_mem_dataset *m = ct_mem_dataset_new(ctx);
 *     for (...) ct_mem_dataset_add_tokens(m, seq, len, "piece.mid");
 *     ct_dataset ds = ct_mem_dataset_as(m);
 *     ct_dataloader_opts o = ct_dataloader_defaults();
 *     o.batch_size = 64; o.sampler = CT_SAMPLER_BUCKET; o.seed = 1234; o.workers = 2;
 *     o.collate.targets = true; o.collate.max_len = 256;     // next-step targets, windows
 *     ct_dataloader *dl = ct_dataloader_new(ctx, &ds, &o);
 *     for (int epoch = 0; epoch < 10; epoch++) {
 *         for (;;) {
 *             ct_scope_begin(ctx);                           // the batch's tensors live here
 *             const ct_batch *b = ct_dataloader_next(dl);    // NULL: end of epoch or error
 *             if (b) { ... train on b->inputs, b->targets, b->lengths, b->mask ... }
 *             ct_scope_end(ctx);
 *             if (!b) break;
 *         }
 *         if (ct_dataloader_status(dl) != CT_OK) break;      // the message is in ctx
 *         // ct_dataloader_epoch_report(dl): batches, items, skipped items and why
 *     }
 *     ct_dataloader_free(dl);                                // joins the workers
 *     ct_mem_dataset_free(m);
 *
 * THREADS. Worker threads never touch a context or a tensor: items are plain C memory
 * (ct_data_item) owned by the item. The loader's tensors are made in the caller's thread, in the
 * caller's context and current scope, when a batch is taken (ct_dataloader_next).
 *
 * DETERMINISM. Every random choice for an item (in the dataset's get, the transforms and the
 * training window) comes from a generator derived from (seed, epoch, dataset index) with
 * ct_rng_fork, never from the thread that runs it, and the queue hands items back in plan
 * order: the batches and their order are identical for every worker count, 0 included.
 *
 * ERRORS. Functions given a context record their errors in it (ct_ctx_status / ct_ctx_error
 * and its handler; the transform constructors and ct_mem_dataset_new also accept NULL: the
 * status alone). Item-level functions, which run in worker threads, record theirs in the item
 * (ct_data_item.error); the loader reports a failed item with its index and source, and either
 * stops with that error or skips the item (CT_ON_ERROR_SKIP), counting it with its reason in
 * the epoch's report (ct_dataloader_report). Nothing is dropped silently.
 */
#ifndef CT_DATA_H
#define CT_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/rng.h"
#include "engine/tensor.h"

/* =========================================================================================
 * Items
 * ========================================================================================= */
typedef enum ct_item_kind {
    CT_ITEM_EMPTY = 0,   /* no data yet */
    CT_ITEM_TOKENS,      /* int64 tokens, len of them (width 1) */
    CT_ITEM_FRAMES,      /* float frames [len, width], step-major (a piano roll: width 88) */
    CT_ITEM_SAMPLES      /* float samples, len of them (audio; collated as width-1 frames) */
} ct_item_kind;

/* "tokens", "frames", "samples", "empty". */
const char *ct_item_kind_name(ct_item_kind k);

/* One variable-length sequence plus its metadata (the type is ct_data_item because ct_item is
 * tensor.h's one-element accessor; its functions are ct_item_*). Plain C memory owned by the
 * item: ct_item_free releases it. Initialise with ct_item_init before first use. The data
 * pointers may be replaced by the ct_item_* functions: read them and write their elements, but
 * allocate only through those functions. */
typedef struct ct_data_item {
    ct_item_kind kind;
    int64_t len;         /* steps */
    int64_t width;       /* values per step: the frames' width; 1 for tokens and samples */
    int64_t *tokens;     /* CT_ITEM_TOKENS: len values (NULL otherwise) */
    float *values;       /* CT_ITEM_FRAMES: len * width values; CT_ITEM_SAMPLES: len */
    /* metadata */
    int64_t index;       /* dataset index (ct_dataset_get sets it); -1 when unknown */
    int64_t piece_id;    /* the piece it comes from; -1 when unknown */
    int64_t offset;      /* position of step 0 within the piece (crops and windows add to it) */
    char *source;        /* where it came from ("bach/prelude1.mid"); NULL when unknown */
    char *error;         /* the message of the last failure (ct_item_fail); NULL if none */
} ct_data_item;

/* An empty item: no data, index and piece_id -1, offset 0, no source, no error. */
void ct_item_init(ct_data_item *it);
/* Frees the data, source and error, and re-initialises the item (it can be reused). NULL is a
 * no-op. */
void ct_item_free(ct_data_item *it);
/* Replace the item's data with a copy of len values (data NULL: zero-filled, to be written
 * through it->tokens / it->values). Metadata is kept. CT_E_ARG for len < 0, width < 1 or an
 * overflowing size, CT_E_NOMEM; the message goes to it->error and the item is unchanged. */
ct_status ct_item_set_tokens(ct_data_item *it, const int64_t *tokens, int64_t len);
ct_status ct_item_set_frames(ct_data_item *it, const float *frames, int64_t len, int64_t width);
ct_status ct_item_set_samples(ct_data_item *it, const float *samples, int64_t len);
/* Sets the source, printf-style (NULL fmt clears it). CT_E_NOMEM leaves the old one. */
ct_status ct_item_set_source(ct_data_item *it, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Keeps steps [start, start + len) and adds start to offset. CT_E_ARG when the range is not
 * inside [0, it->len] (the item is unchanged). */
ct_status ct_item_crop(ct_data_item *it, int64_t start, int64_t len);
/* Deep copy (data, metadata, source; not the error). dst is freed first; on failure dst is
 * left empty and CT_E_NOMEM returned. dst == src is a no-op. */
ct_status ct_item_copy(ct_data_item *dst, const ct_data_item *src);
/* Records a failure in the item: formats the message into it->error (replacing an older one)
 * and returns s, so a dataset's get or a transform can `return ct_item_fail(out, ...)`. */
ct_status ct_item_fail(ct_data_item *it, ct_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* =========================================================================================
 * Datasets
 * ========================================================================================= */
/* A dataset is anything with a length and a get-by-index (PyTorch's __len__/__getitem__),
 * implemented in C by filling this struct. The loader copies the struct; `self` must outlive
 * every loader using it.
 *
 *   len(self)            the number of items. Called from the caller's thread only (when a
 *                        loader is made and at each epoch's start: a changed length stops the
 *                        loader with CT_E_STATE).
 *   get(self, i, out, rng)
 *                        fills *out (already initialised, empty) with item i, 0 <= i < len,
 *                        using only rng for randomness. Returns CT_OK, or a status with a
 *                        message recorded by ct_item_fail(out, ...). CALLED CONCURRENTLY from
 *                        several worker threads with different i: it must not modify shared
 *                        state without its own locking, and must not use a ct_ctx.
 *   describe(self, i, buf, n)   optional: a short description of item i (its source file)
 *                        for error messages when the item itself has no source.
 *   item_len(self, i)    optional: item i's length without loading it (the bucketing sampler
 *                        needs lengths: from here or from ct_dataloader_opts.lengths). */
typedef struct ct_dataset {
    void *self;
    int64_t (*len)(void *self);
    ct_status (*get)(void *self, int64_t index, ct_data_item *out, ct_rng *rng);
    void (*describe)(void *self, int64_t index, char *buf, size_t n);
    int64_t (*item_len)(void *self, int64_t index);
} ct_dataset;

/* ds->len(ds->self); -1 for a NULL dataset or one without len. */
int64_t ct_dataset_len(const ct_dataset *ds);
/* Frees and re-initialises *out, checks the index, calls get, and sets out->index (and
 * out->piece_id to the index when get left it at -1). On failure out holds no data but its
 * error message: "get failed: <status>" when get recorded none; a get that returns CT_OK with
 * no data is a CT_E_STATE failure. rng may be NULL (the dataset then gets a fixed generator). */
ct_status ct_dataset_get(const ct_dataset *ds, int64_t index, ct_data_item *out, ct_rng *rng);
/* Describes item index into buf: the dataset's describe, else "item <index>". Returns buf. */
char *ct_dataset_describe(const ct_dataset *ds, int64_t index, char *buf, size_t n);

/* The built-in in-memory dataset: a list of sequences (tokens, frames or samples, copied in).
 * get returns a deep copy (transforms may change it), piece_id = the item's position in the
 * list, source = the string given to add (or none). Do not add items while a loader runs.
 * Errors of the add functions are recorded in ctx. */
typedef struct ct_mem_dataset ct_mem_dataset;
ct_mem_dataset *ct_mem_dataset_new(ct_ctx *ctx);          /* NULL + error in ctx on OOM */
void ct_mem_dataset_free(ct_mem_dataset *m);              /* NULL is a no-op */
ct_status ct_mem_dataset_add_tokens(ct_mem_dataset *m, const int64_t *tokens, int64_t len,
                                    const char *source);
ct_status ct_mem_dataset_add_frames(ct_mem_dataset *m, const float *frames, int64_t len,
                                    int64_t width, const char *source);
ct_status ct_mem_dataset_add_samples(ct_mem_dataset *m, const float *samples, int64_t len,
                                     const char *source);
/* A CPU tensor (any strides): int64 [len] -> tokens, float32 [len] -> samples, float32
 * [len, width] -> frames. Anything else is CT_E_SHAPE / CT_E_DEVICE. */
ct_status ct_mem_dataset_add_tensor(ct_mem_dataset *m, const ct_tensor *t, const char *source);
/* The dataset interface over m (m must outlive its users). */
ct_dataset ct_mem_dataset_as(ct_mem_dataset *m);

/* =========================================================================================
 * Transforms (engine/transforms.c)
 * ========================================================================================= */
/* A transform changes one item in place, drawing randomness only from rng. It runs in the
 * worker threads, concurrently for different items: state must be read-only while a loader
 * runs (or locked by the transform itself). A failure is recorded with ct_item_fail. */
typedef ct_status (*ct_transform_fn)(void *state, ct_data_item *item, ct_rng *rng);
typedef struct ct_transform {
    const char *name;              /* prefixes its error messages; NULL: no prefix */
    ct_transform_fn fn;            /* NULL: the identity */
    void *state;
    void (*free_state)(void *state);   /* optional; called by ct_transform_free */
} ct_transform;

/* Builds the struct (a user-defined transform plugs in through this). */
ct_transform ct_transform_make(const char *name, ct_transform_fn fn, void *state,
                               void (*free_state)(void *state));
/* Runs t on item (t NULL or t->fn NULL: nothing). On failure item->error reads
 * "<name>: <message>" ("<name>: failed (<status>)" when the transform gave none). */
ct_status ct_transform_apply(const ct_transform *t, ct_data_item *item, ct_rng *rng);
/* Frees the state (free_state) and clears *t. NULL is a no-op. */
void ct_transform_free(ct_transform *t);

/* compose (the seed's transforms.Compose): one transform that applies ts[0], ts[1], ... in
 * order, stopping at the first failure. Transform i draws from ct_rng_fork(rng, i), so adding
 * a transform does not change the randomness of the others. The composition takes ownership
 * of the n states (ct_transform_free(out) frees them; do not free ts[i] yourself); n may be 0
 * (the identity). On failure nothing is taken and the error is recorded in ctx. */
ct_status ct_compose(ct_ctx *ctx, ct_transform *out, int n, const ct_transform *ts);

/* Random crop: an item longer than max_len keeps a window of max_len steps starting at a
 * uniform position in [0, len - max_len]; shorter items are unchanged (and draw nothing).
 * max_len >= 1, else CT_E_ARG. Any item kind. */
ct_status ct_transform_random_crop(ct_ctx *ctx, ct_transform *out, int64_t max_len);
/* Adds N(0, std^2) to every value of frames and samples (std finite, >= 0; 0 = identity).
 * A token item fails with CT_E_DTYPE. */
ct_status ct_transform_add_noise(ct_ctx *ctx, ct_transform *out, float std);
/* Multiplies every value of frames and samples by one gain per item, uniform in [lo, hi)
 * (lo == hi: exactly lo; finite, lo <= hi, else CT_E_ARG). A token item fails with CT_E_DTYPE. */
ct_status ct_transform_scale(ct_ctx *ctx, ct_transform *out, float lo, float hi);

/* =========================================================================================
 * Collate (engine/collate.c)
 * ========================================================================================= */
typedef enum ct_window_mode {
    CT_WINDOW_RANDOM = 0,       /* training: one window per item, at a random start */
    CT_WINDOW_CONSECUTIVE = 1   /* evaluation: every consecutive window of each item */
} ct_window_mode;

typedef struct ct_collate_opts {
    bool batch_first;      /* [B, T(, W)] instead of the time-major [T, B(, W)] */
    bool targets;          /* also build next-step targets: inputs = steps [0, n-1), targets =
                              steps [1, n) of each row, so a row of n values has n-1 steps */
    int64_t ignore_index;  /* token targets at padded positions (cross-entropy skips it); -100 */
    int64_t pad_token;     /* token inputs at padded positions; 0 */
    float pad_value;       /* frame/sample inputs and targets at padded positions; 0 */
    int64_t max_len;       /* > 0: rows of at most max_len steps (windows); 0: whole items */
    ct_window_mode window; /* how items longer than max_len are cut */
} ct_collate_opts;

/* batch_first false, targets false, ignore_index -100, pad_token 0, pad_value 0, max_len 0,
 * window CT_WINDOW_RANDOM. */
ct_collate_opts ct_collate_defaults(void);

/* A padded batch. B = rows, T = steps (the longest row), W = width.
 *   inputs   tokens: int64 [T, B]; frames: float32 [T, B, W]; samples: float32 [T, B, 1]
 *            ([B, T] / [B, T, W] with batch_first). Padding: pad_token / pad_value.
 *   targets  (opts.targets) the next step of each input, same shape and dtype as inputs;
 *            token padding is ignore_index, float padding pad_value (use the mask). Else NULL.
 *   lengths  int64 [B]: each row's steps (>= 1).
 *   mask     float32 [T, B] ([B, T] with batch_first): 1 at valid steps, 0 at padding.
 * The tensors belong to the caller's current scope (when the batch was made). The arrays
 * index/piece_id/offset (one value per row: its dataset index, piece, and the position of its
 * first input step within the piece) belong to the batch: ct_batch_clear frees them (a
 * loader's batch is cleared by the loader). */
typedef struct ct_batch {
    ct_item_kind kind;
    int64_t rows, steps, width;
    ct_tensor *inputs, *targets, *lengths, *mask;
    int64_t *index, *piece_id, *offset;
    int64_t items;         /* items that made the rows (< rows with consecutive windows) */
    int64_t epoch;         /* loader batches: the epoch and the batch's number in it; else -1 */
    int64_t number;
    int64_t skipped;       /* loader batches: items of this batch that were skipped */
} ct_batch;

/* Collates n >= 1 items (same kind and width) into *out (cleared first; on failure out is
 * left empty, the error recorded in ctx naming the item, its index and source). Each value is
 * copied once, from the item into the batch tensors. Rows: with max_len == 0 one per item;
 * else CT_WINDOW_RANDOM takes one window of max_len steps per longer item at a start drawn
 * from rng (needed only when an item is longer), CT_WINDOW_CONSECUTIVE takes every
 * consecutive window (the last may be shorter; with targets consecutive windows overlap by one
 * value, so every target is predicted exactly once). An item with fewer than 1 step (2 values
 * with targets) is an error. */
ct_status ct_collate(ct_ctx *ctx, const ct_data_item *items, int64_t n, const ct_collate_opts *opts,
                     ct_rng *rng, ct_batch *out);
/* Cuts the item to one training window as ct_collate does in CT_WINDOW_RANDOM mode (max_len
 * steps, plus one value with targets; start uniform); does nothing (and draws nothing) when
 * max_len is 0, the mode is consecutive or the item fits. The loader calls it in the workers
 * with each item's generator. */
ct_status ct_collate_window(ct_data_item *it, const ct_collate_opts *opts, ct_rng *rng);
/* Frees the batch's arrays (not its tensors, which the scope owns) and zeroes it. */
void ct_batch_clear(ct_batch *b);
/* The share of padded positions: 1 - sum(lengths) / (B * T); 0 for an empty batch. */
double ct_batch_padding(const ct_batch *b);

/* =========================================================================================
 * The data loader (engine/dataloader.c)
 * ========================================================================================= */
typedef enum ct_sampler {
    CT_SAMPLER_SEQUENTIAL = 0,  /* 0, 1, 2, ... every epoch */
    CT_SAMPLER_RANDOM,          /* a new permutation each epoch (shuffle) */
    CT_SAMPLER_BUCKET           /* length-bucketed: the epoch's permutation is cut into pools of
                                   bucket_batches batches, each pool sorted by length and cut
                                   into batches, and the batches' order shuffled (with
                                   drop_last the permutation's last items are left out, so the
                                   dropped items are random ones, not the longest) */
} ct_sampler;

typedef enum ct_on_error {
    CT_ON_ERROR_STOP = 0,       /* ct_dataloader_next returns NULL with the item's error */
    CT_ON_ERROR_SKIP            /* leave the item out of its batch, count it with its reason */
} ct_on_error;

typedef struct ct_dataloader_opts {
    int64_t batch_size;         /* items per batch; 32 */
    ct_sampler sampler;         /* CT_SAMPLER_SEQUENTIAL */
    bool drop_last;             /* drop the epoch's last, smaller batch */
    uint64_t seed;              /* every random choice derives from it */
    int workers;                /* worker threads, 0..64; 0 = everything in the caller's thread */
    int prefetch;               /* batches fetched ahead with workers; 0 = max(2, 2 * workers) */
    int64_t bucket_batches;     /* CT_SAMPLER_BUCKET: batches per pool; 0 = 32 */
    const int64_t *lengths;     /* CT_SAMPLER_BUCKET: item lengths (copied); NULL = the
                                   dataset's item_len */
    ct_on_error on_error;       /* CT_ON_ERROR_STOP */
    const ct_transform *transform;  /* applied to every item in the workers; borrowed (free it
                                       after the loader); NULL = none */
    ct_collate_opts collate;    /* ct_collate_defaults() */
} ct_dataloader_opts;

ct_dataloader_opts ct_dataloader_defaults(void);

typedef struct ct_dataloader ct_dataloader;

/* Validates the options, reads the dataset's length (and lengths for bucketing) and starts
 * the workers. The loader borrows ctx, the dataset's self and the transform. NULL + error in
 * ctx on failure (bad options, an empty dataset, no lengths for bucketing, no threads). */
ct_dataloader *ct_dataloader_new(ct_ctx *ctx, const ct_dataset *ds, const ct_dataloader_opts *o);
/* Stops and joins the workers and frees everything, at any point (mid-epoch included).
 * Tensors already returned stay with their scopes. NULL is a no-op. */
void ct_dataloader_free(ct_dataloader *dl);

/* The next batch of the current epoch, or NULL. NULL with ct_dataloader_status CT_OK is the
 * end of the epoch (its report is then ct_dataloader_epoch_report); the next call starts the
 * following epoch. NULL with an error status: an item failed under CT_ON_ERROR_STOP (the
 * message names the item's index and source), collate failed, the dataset's length changed,
 * or the loader was interrupted (CT_E_STATE); the error is recorded in ctx, and the position
 * stays at the batch that was not delivered (a later call tries it again). The batch's
 * tensors are made in ctx's current scope; the struct itself belongs to the loader and is
 * valid until the next call. With CT_ON_ERROR_SKIP a batch may have fewer items than
 * batch_size; a batch whose items all failed is passed over. */
const ct_batch *ct_dataloader_next(ct_dataloader *dl);
/* CT_OK, or the error of the last call to ct_dataloader_next / ct_dataloader_load. */
ct_status ct_dataloader_status(const ct_dataloader *dl);
/* Batches per epoch. */
int64_t ct_dataloader_num_batches(const ct_dataloader *dl);

/* Stops the workers and discards what they fetched ahead; the position is kept (the next call
 * to ct_dataloader_next continues from it). For an early break that keeps the loader. */
void ct_dataloader_stop(ct_dataloader *dl);
/* Asks a running ct_dataloader_next to return NULL (CT_E_STATE, "interrupted") as soon as the
 * items it waits for are done, keeping the position. Async-signal-safe (sets an atomic flag):
 * call it from a SIGINT handler, then save the position and free the loader. */
void ct_dataloader_interrupt(ct_dataloader *dl);

/* The position: the next batch to be delivered is batch `batch` of epoch `epoch`, which
 * starts at position `item` of the epoch's order (the permutation). */
typedef struct ct_dataloader_pos { int64_t epoch, batch, item; } ct_dataloader_pos;
ct_dataloader_pos ct_dataloader_position(const ct_dataloader *dl);

/* Saves the position (epoch, batch, item), the seed's generator state, the epoch's counters and
 * a fingerprint of the configuration (dataset length, batch size, sampler, drop_last, bucket
 * size, window) as CT_DATALOADER_STATE_BYTES little-endian bytes with a checksum. */
#define CT_DATALOADER_STATE_BYTES 128
void ct_dataloader_save(const ct_dataloader *dl, uint8_t out[CT_DATALOADER_STATE_BYTES]);
/* Restores a saved position into a loader over the same data and configuration: from here it
 * delivers exactly the batches the saved one would have (the seed of the saved loader wins).
 * Stops the workers first. CT_E_FORMAT for a wrong size, magic, version or checksum; CT_E_STATE
 * when the configuration differs (the message names the field); the loader is unchanged then. */
ct_status ct_dataloader_load(ct_dataloader *dl, const uint8_t *in, size_t n);

/* Per-epoch report. reasons[] holds the first CT_DATA_MAX_REASONS skipped items (the
 * counters are always exact). Owned by the loader; valid until its next call. */
#define CT_DATA_MAX_REASONS 100
typedef struct ct_data_skip {
    int64_t index;          /* dataset index */
    ct_status status;
    char *message;          /* "item 17 (a.mid): transform 'noise': ..." */
} ct_data_skip;
typedef struct ct_data_report {
    int64_t epoch;
    int64_t batches;        /* batches delivered */
    int64_t items;          /* items delivered */
    int64_t skipped;        /* items skipped */
    int64_t n_reasons;
    const ct_data_skip *reasons;
} ct_data_report;
/* The current epoch so far (counters restored by ct_dataloader_load, not the reasons). */
const ct_data_report *ct_dataloader_report(const ct_dataloader *dl);
/* The last finished epoch (epoch -1 and zeros before the first one ends). */
const ct_data_report *ct_dataloader_epoch_report(const ct_dataloader *dl);
/* "epoch 3: 120 batches, 7678 items, 2 skipped: item 17 (a.mid): ...; item 90 (...): ..."
 * (reasons as far as they fit) into buf; returns the length snprintf would have written. */
int ct_data_report_format(const ct_data_report *r, char *buf, size_t n);

#endif
