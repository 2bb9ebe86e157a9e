/* corpora/audio_dataset.h — audio files as 8-bit mu-law token windows for sample-level
 * recurrent models (WaveNet / SampleRNN style), and the decoder from tokens back to a file.
 *
 *   cp_audio_dataset_opts o = cp_audio_dataset_defaults();    // 16 kHz, windows of 16000
 *   o.rate = 8000;
 *   cp_audio_dataset *a = cp_audio_dataset_open_dir(ctx, "wavs/", &o);   // NULL + error in ctx
 *   cp_audio_dataset_stats st = cp_audio_dataset_get_stats(a);  // files, skipped, windows, samples
 *   for (int64_t i = 0; i < st.skipped; i++) ... cp_audio_dataset_skip(a, i)->message ...
 *   ct_dataset ds = cp_audio_dataset_as(a);
 *   ct_dataloader *dl = ct_dataloader_new(ctx, &ds, &lo);     // items: int64 tokens 0..255
 *   ...
 *   ct_dataloader_free(dl);
 *   cp_audio_dataset_free(a);
 *
 *   cp_error err;
 *   cp_audio_tokens_write("out.wav", tokens, n, 8000, &err);  // mu-law decode, write
 *
 * AT OPEN every file is read (ca_audio_read: WAV, FLAC, OGG, ... by content), mixed to mono
 * (ca_audio_to_mono), resampled to opts.rate (ca_audio_resample, band-limited) and mu-law
 * encoded (ca_mulaw_encode_u8: 256 classes, 128 = silence); the tokens stay in memory, one
 * byte per sample. Then the windows are indexed: for each file, offsets 0, hop, 2 hop, ... while
 * offset + window <= samples. With drop_short false, the remainder after the last full window
 * (or the whole file when it is shorter than a window) becomes one shorter window; with
 * drop_short true it is left out, and a file with no full window is skipped with that reason.
 * window 0 means one item per file (the whole file).
 *
 * NOTHING IS DROPPED SILENTLY. A file that cannot be read (missing, not audio, corrupt), has no
 * samples, or is shorter than a window under drop_short is skipped: counted, with its status
 * and a message naming the file (cp_audio_dataset_skip). Only running out of memory (or bad
 * options) fails the open.
 *
 * ITEMS. Item i is window i in file order: int64 tokens (CT_ITEM_TOKENS, values 0..255),
 * source "<name>@<offset>" (name: the path as given, or relative to the folder for
 * open_dir; offset: the window's first sample at opts.rate), piece_id = the file's position
 * among the kept files, offset = the window's first sample. item_len gives each window's
 * length without copying (the bucketing sampler uses it). get is safe from any number of
 * threads (everything is read-only after the open).
 *
 * Ownership: cp_audio_dataset_new / _open_dir return a dataset freed by cp_audio_dataset_free
 * (NULL is a no-op); it owns its tokens, names and skip records. */
#ifndef CANTOR_CORPORA_AUDIO_DATASET_H
#define CANTOR_CORPORA_AUDIO_DATASET_H

#include <stdbool.h>
#include <stdint.h>

#include "corpora/corpus.h"
#include "engine/data.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CP_AUDIO_CLASSES 256   /* mu-law tokens 0..255 (CA_MULAW_CLASSES) */

typedef struct cp_audio_dataset_opts {
    int rate;          /* target sample rate in Hz, 1..768000; 16000 by default */
    int64_t window;    /* samples per item; 16000 by default; 0 = whole files */
    int64_t hop;       /* samples between window starts; 0 = window (no overlap) */
    bool drop_short;   /* leave out windows shorter than `window` (see above) */
} cp_audio_dataset_opts;

/* rate 16000, window 16000, hop 0 (= window), drop_short false. */
cp_audio_dataset_opts cp_audio_dataset_defaults(void);

typedef struct cp_audio_dataset cp_audio_dataset;

/* Opens the n files paths[0..n-1] in the given order (each named as given). o NULL: the
 * defaults. NULL + error in ctx (ctx may be NULL) for bad options (CT_E_ARG: rate outside
 * 1..768000, window or hop < 0, hop > 0 with window 0), NULL paths (CT_E_NULL) or no memory
 * (CT_E_NOMEM). Files that fail are skipped with their reason; zero kept files is not an error
 * here (the loader refuses an empty dataset). */
cp_audio_dataset *cp_audio_dataset_new(ct_ctx *ctx, const char *const *paths, int n,
                                       const cp_audio_dataset_opts *o);
/* Every .wav / .flac / .ogg file (any case) under dir, recursively (symbolic links to files
 * followed, to folders not), sorted by their path relative to dir (byte-wise), which is also
 * their name. CT_E_IO when dir (or a folder in it) cannot be read. */
cp_audio_dataset *cp_audio_dataset_open_dir(ct_ctx *ctx, const char *dir, const cp_audio_dataset_opts *o);
void cp_audio_dataset_free(cp_audio_dataset *a);   /* NULL is a no-op */

typedef struct cp_audio_dataset_stats {
    int64_t files;     /* files kept (read, with at least one window) */
    int64_t skipped;   /* files skipped (cp_audio_dataset_skip has each reason) */
    int64_t windows;   /* items */
    int64_t samples;   /* samples of the kept files at opts.rate */
} cp_audio_dataset_stats;
cp_audio_dataset_stats cp_audio_dataset_get_stats(const cp_audio_dataset *a);   /* zeros for NULL */

typedef struct cp_audio_skip {
    const char *name;  /* the file's name (as in sources) */
    ct_status status;  /* CT_E_IO, CT_E_FORMAT, CT_E_ARG (too short / empty), ... */
    const char *message;   /* "<path>: cannot read the audio: File contains data in an unknown format." */
} cp_audio_skip;
/* The number of skipped files, and skip i (0 <= i < that; NULL otherwise). Owned by a. */
int64_t cp_audio_dataset_num_skipped(const cp_audio_dataset *a);
const cp_audio_skip *cp_audio_dataset_skip(const cp_audio_dataset *a, int64_t i);

int64_t cp_audio_dataset_len(const cp_audio_dataset *a);     /* windows; 0 for NULL */
const cp_audio_dataset_opts *cp_audio_dataset_options(const cp_audio_dataset *a);  /* resolved (hop set) */
/* Kept file f (0 <= f < stats.files): its name, its tokens (n samples at opts.rate; owned by
 * a). NULL / -1 when out of range. */
const char *cp_audio_dataset_file_name(const cp_audio_dataset *a, int64_t f);
const uint8_t *cp_audio_dataset_file_tokens(const cp_audio_dataset *a, int64_t f, int64_t *n);
/* Window i's file, first sample and length (false when out of range). */
bool cp_audio_dataset_window(const cp_audio_dataset *a, int64_t i, int64_t *file, int64_t *offset, int64_t *len);

/* The interface for the loader (a must outlive its users). */
ct_dataset cp_audio_dataset_as(cp_audio_dataset *a);
/* Item i into out (as the loader would get it). */
ct_status cp_audio_dataset_get(cp_audio_dataset *a, int64_t i, ct_data_item *out);

/* The decoder: mu-law decodes n tokens (each 0..255, else CT_E_ARG naming the index and value)
 * into a mono file at rate Hz, written by ca_audio_write in the format of path's extension
 * (.wav 16-bit PCM, .flac, .ogg; another extension is CT_E_FORMAT). n may be 0. Errors:
 * CT_E_ARG, CT_E_FORMAT, CT_E_IO, CT_E_NOMEM, CT_E_UNSUPPORTED (built without libsndfile),
 * with err's message naming the file. err may be NULL. */
ct_status cp_audio_tokens_write(const char *path, const int64_t *tokens, int64_t n, int rate, cp_error *err);

#ifdef __cplusplus
}
#endif
#endif
