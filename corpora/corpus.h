/* corpora/corpus.h — cantor corpus files: one binary file holding every training sequence of a
 * folder of MIDI files in one encoding, split into train / valid / test, memory-mappable.
 * Prefix cp_ ("cantor corpus"; models/ has cc_). Joins audio/ (the encodings) and engine/ (status codes; the
 * dataset over a corpus is corpora/dataset.h).
 *
 *   encoding.c     cp_encoding: which encoding and its whole configuration; splits; hashing
 *   corpus_file.c  the format below: cp_writer (atomic) and cp_corpus (mmap reader, validation)
 *   stats.c        cp_stats: what a build did, kept in the file; text formatting
 *   extract.c      one MIDI file -> its sequences (corpora/build.h)
 *   build.c        a folder -> a corpus file on worker threads (corpora/build.h)
 *
 * THE FILE FORMAT (version 1). Little-endian throughout; every section starts 64-byte aligned
 * and every piece's data 16-byte aligned, so the file can be mapped and read in place.
 *
 *   header    bytes [0, 512): fixed fields (below) and the encoding's configuration
 *   data      the pieces' steps, one after the other (each padded to 16 bytes):
 *               tokens (melody, performance): int32 per step;
 *               frames (piano roll): 16 bytes per step, two u64 words, key k (MIDI 21 + k) is
 *               bit k % 64 of word k / 64
 *   index     n_pieces entries of 64 bytes (below), in build order: source files in byte-wise
 *             sorted name order, each file's pieces in extraction order
 *   strings   the source names, each NUL-terminated
 *   stats     the build's counters and pitch histogram (CP_STATS_BYTES, layout in stats.c)
 *   log       one line per skipped file: "failed|empty|duplicate<TAB>name<TAB>reason\n"
 *
 *   header: off  type    field
 *           0    u8[8]   magic "CTCORPUS"
 *           8    u32     version (CP_VERSION)
 *           12   u32     header bytes (512)
 *           16   u64     file size
 *           24   u32     encoding kind (1 melody, 2 performance, 3 piano roll)
 *           28   u32     vocab: token classes, or 88 (the frame width) for piano rolls
 *           32   u64     pieces
 *           40   u64[3]  pieces per split (train, valid, test)
 *           64   u64[3]  steps per split (tokens or frames)
 *           88   f64[3]  seconds per split
 *           112  u64     data offset     120 u64 data bytes
 *           128  u64     index offset    136 u64 index entry bytes (64)
 *           144  u64     strings offset  152 u64 strings bytes
 *           160  u64     stats offset    168 u64 stats bytes
 *           176  u64     log offset      184 u64 log bytes
 *           192  u64     meta checksum: FNV-1a 64 of the header (both checksums read as 0),
 *                        then the index, strings, stats and log sections
 *           200  u64     data checksum: FNV-1a 64 of the data section (cp_corpus_verify)
 *           208  u32     valid percent   212 u32 test percent
 *           216  u32     bytes per step (4 or 16)
 *           256  ...     the encoding's configuration (layout in encoding.c), zero-padded to 512
 *   index entry: 0 u64 data offset (from the file's start)   8 u64 length (steps)
 *                16 f64 duration (seconds)   24 u64 content hash of the source file
 *                32 i64 start (melody: grid step in the file; performance: 10 ms step; else 0)
 *                40 u32 name offset (in strings)   44 u32 name length   48 u32 split
 *                52 u32 piece number within its file   56 u32 source file number
 *                60 i32 instrument (melody: index in the file's instruments; else -1)
 *
 * The reader maps the file and checks every size and offset against the file size before using
 * it; a bad file is an error that names the file, the byte offset and the value expected:
 *   "x.corpus: not a cantor corpus file (magic "MThd\x00\x00\x00\x06" at byte 0, expected "CTCORPUS")"
 *   "x.corpus: byte 8: version 7 is newer than this cantor reads (1): update cantor or rebuild ..."
 *   "x.corpus: truncated: byte 16 says the file has 40960 bytes, it has 4096 ..."
 * Nothing in this folder prints or exits: errors are a ct_status plus cp_error's message.
 *
 * Ownership: cp_corpus_open returns a cp_corpus released by cp_corpus_close (NULL is a no-op);
 * cp_piece.name points into the mapping and lives until the close. cp_writer_open returns a
 * writer released by cp_writer_finish or cp_writer_abort (both free it, whatever happens).
 * cp_stats is a caller-owned struct released by cp_stats_free (zeroed structs are fine). */
#ifndef CANTOR_CORPORA_CORPUS_H
#define CANTOR_CORPORA_CORPUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "audio/melody.h"
#include "audio/performance.h"
#include "audio/pianoroll.h"
#include "engine/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CP_MAGIC "CTCORPUS"
#define CP_VERSION 1u
#define CP_HEADER_BYTES 512
#define CP_INDEX_ENTRY_BYTES 64
#define CP_FRAME_BYTES 16          /* one piano-roll step: 88 bits in two u64 words */
#define CP_MAX_NAME 4096           /* longest source name, bytes */

/* ---- errors ------------------------------------------------------------------------------- */
#define CP_ERROR_MAX 1536
typedef struct cp_error {
    ct_status status;              /* CT_OK, CT_E_IO, CT_E_FORMAT, CT_E_ARG, CT_E_NOMEM, ... */
    char message[CP_ERROR_MAX];    /* "x.corpus: byte 16: ..." */
} cp_error;

/* ---- encodings ------------------------------------------------------------------------------ */
typedef enum cp_encoding_kind {
    CP_MELODY = 1,       /* audio/melody.h: monophonic melodies, one-hot tokens */
    CP_PERFORMANCE = 2,  /* audio/performance.h: Performance RNN events */
    CP_PIANOROLL = 3     /* audio/pianoroll.h: 88-key frames */
} cp_encoding_kind;

/* An encoding and its whole configuration (all of it is stored in the corpus file). */
typedef struct cp_encoding {
    cp_encoding_kind kind;
    bool sustain;                  /* notes: the sustain pedal (CC64) lengthens notes */
    int64_t min_steps;             /* shorter sequences are left out (and counted); >= 1 */
    cm_melody_opts melody;         /* CP_MELODY: extraction options; .range is the token range */
    cm_perf_opts perf;             /* CP_PERFORMANCE: the event configuration, drums */
    double perf_split_silence_s;   /* CP_PERFORMANCE: > 0 cuts a file at silences (no note
                                      sounding) this long or longer, each part starting at its
                                      first note; 0 encodes the whole file from time 0 */
    cm_roll_grid roll_grid;        /* CP_PIANOROLL: the frame grid */
    bool roll_include_drums;       /* CP_PIANOROLL: keep channel-10 notes */
} cp_encoding;

/* The defaults of each kind: melody as Magenta's melody_rnn (cm_melody_opts_default: 48..84,
 * 16th notes, 7 bars, 5 pitch classes), no sustain; performance as Performance RNN with
 * dynamics (388 classes), sustain on (as Magenta's pipeline), whole files; piano roll at 4
 * steps per quarter (16th notes), drums left out, no sustain. min_steps 2 (one input and one
 * next-step target). An invalid kind gives the melody defaults with kind 0 (cp_encoding_check
 * refuses it). */
cp_encoding cp_encoding_default(cp_encoding_kind kind);
/* "melody", "performance", "pianoroll"; "unknown" otherwise. */
const char *cp_encoding_name(cp_encoding_kind kind);
/* Parses those names (also "piano-roll", "roll", "perf"); false when unknown. */
bool cp_encoding_parse(const char *name, cp_encoding_kind *out);
/* Token classes (melody, performance) or CM_ROLL_NUM_KEYS (piano roll); -1 when invalid. */
int cp_encoding_vocab(const cp_encoding *e);
/* Whether steps are tokens (melody, performance) rather than frames. */
bool cp_encoding_is_tokens(const cp_encoding *e);
/* CT_OK, or CT_E_ARG with a message naming the field, its value and the valid range. */
ct_status cp_encoding_check(const cp_encoding *e, cp_error *err);
/* A one-line description: "melody 48..84 (38 classes), 4 steps per quarter, ..." into buf;
 * returns what snprintf returns. */
int cp_encoding_describe(const cp_encoding *e, char *buf, size_t n);

/* ---- splits and content hashes -------------------------------------------------------------- */
typedef enum cp_split {
    CP_TRAIN = 0,
    CP_VALID = 1,
    CP_TEST = 2,
    CP_SPLIT_ALL = 3      /* datasets only: every piece */
} cp_split;
#define CP_NUM_SPLITS 3
#define CP_DEFAULT_VALID_PCT 10
#define CP_DEFAULT_TEST_PCT 10

/* "train", "valid", "test", "all"; "unknown" otherwise. */
const char *cp_split_name(cp_split s);
/* Parses those names (also "validation"); false when unknown. */
bool cp_split_parse(const char *name, cp_split *out);
/* FNV-1a 64 of n bytes (n may be 0). */
uint64_t cp_hash_bytes(const void *p, size_t n);
/* Continues an FNV-1a 64 hash h over n more bytes (cp_hash_bytes starts at 0xcbf29ce484222325). */
uint64_t cp_hash_update(uint64_t h, const void *p, size_t n);
/* The split of a file from the hash of its content: mix(hash) % 100 below 100 - valid - test is
 * train, then valid, then test. The same bytes always land in the same split, whatever the
 * file is called. Percentages 0..100 with valid + test <= 100. */
cp_split cp_split_of_hash(uint64_t content_hash, int valid_pct, int test_pct);

/* ---- statistics (what a build did; stored in the file) -------------------------------------- */
typedef enum cp_skip_kind {
    CP_SKIP_FAILED = 0,     /* could not be read or parsed: the reason is the reader's message */
    CP_SKIP_EMPTY = 1,      /* parsed, but no sequence came out of it (the reason says why) */
    CP_SKIP_DUPLICATE = 2   /* the same bytes as an earlier file (by name order) */
} cp_skip_kind;

typedef struct cp_skip {
    cp_skip_kind kind;
    char *name;             /* the source name (owned) */
    char *reason;           /* one line (owned) */
} cp_skip;

typedef struct cp_stats {
    int64_t files_found;      /* MIDI files by name (.mid / .midi, any case) */
    int64_t files_ignored;    /* other files in the folders (not MIDI by name) */
    int64_t files_used;       /* gave at least one piece */
    int64_t files_failed;     /* = skips of kind CP_SKIP_FAILED */
    int64_t files_empty;      /* = skips of kind CP_SKIP_EMPTY */
    int64_t files_duplicate;  /* = skips of kind CP_SKIP_DUPLICATE */
    int64_t pieces_too_short; /* sequences under min_steps, left out */
    int64_t notes;            /* notes in the used files (before encoding) */
    int64_t pieces[CP_NUM_SPLITS];
    int64_t steps[CP_NUM_SPLITS];     /* tokens or frames */
    double seconds[CP_NUM_SPLITS];
    int64_t pitch_hist[128];  /* note onsets in the encoded pieces, by MIDI pitch */
    cp_skip *skips;           /* every skipped file, in name order (owned) */
    int64_t n_skips;
} cp_stats;

void cp_stats_free(cp_stats *s);
/* Appends a skip (name and reason copied; tabs and newlines in them become spaces) and counts
 * it in files_failed / files_empty / files_duplicate. CT_E_NOMEM. */
ct_status cp_stats_add_skip(cp_stats *s, cp_skip_kind kind, const char *name, const char *reason);
/* "failed", "empty", "duplicate". */
const char *cp_skip_kind_name(cp_skip_kind k);
/* The statistics as text (several lines: files, pieces / steps / hours per split, the pitch
 * histogram by octave, then up to max_skips skipped files with their reasons; max_skips < 0:
 * all). Into buf; returns the length snprintf would have written. */
int cp_stats_format(const cp_stats *s, const cp_encoding *e, int max_skips, char *buf, size_t n);
/* The same text written to f (a caller's FILE*). Returns bytes written or -1. */
int cp_stats_write(const cp_stats *s, const cp_encoding *e, int max_skips, FILE *f);

/* ---- writing -------------------------------------------------------------------------------- */
typedef struct cp_writer cp_writer;

/* One piece to append: tokens (int32, melody / performance) or frames (uint8 0/1 per key,
 * len * CM_ROLL_NUM_KEYS, cm_roll's layout), and where it came from. */
typedef struct cp_piece_in {
    const char *name;          /* source name (<= CP_MAX_NAME bytes, no NUL inside) */
    uint64_t content_hash;     /* hash of the source file's bytes */
    cp_split split;
    int32_t piece;             /* number within its file */
    int32_t file_index;        /* number of its file */
    int32_t instrument;        /* -1 when none */
    int64_t start;
    double duration_s;
    const int32_t *tokens;
    const uint8_t *frames;
    int64_t len;               /* steps, >= 0 */
} cp_piece_in;

/* Starts a corpus file: a temporary file next to path (path + ".tmp.XXXXXX"). valid/test
 * percentages are recorded in the header. On failure *out is NULL and err says why. */
ct_status cp_writer_open(cp_writer **out, const char *path, const cp_encoding *e, int valid_pct, int test_pct,
                         cp_error *err);
/* Appends a piece (its data is written now; its index entry at the finish). Tokens are checked
 * against the vocabulary (CT_E_ARG names the piece, step and value). On failure the writer is
 * still valid but should be aborted. */
ct_status cp_writer_add(cp_writer *w, const cp_piece_in *p, cp_error *err);
/* Writes the index, names, statistics and log, the header, fsyncs, renames the temporary file
 * over path (an existing file there stays untouched until then) and frees w. stats (may be
 * NULL) gives the file counters and skips; its pieces, steps, seconds and pitch histogram are
 * overwritten with what was appended (so the caller's struct then matches the file). On any
 * failure the temporary file is removed. */
ct_status cp_writer_finish(cp_writer *w, cp_stats *stats, cp_error *err);
/* Removes the temporary file and frees w. NULL is a no-op. */
void cp_writer_abort(cp_writer *w);

/* ---- reading -------------------------------------------------------------------------------- */
typedef struct cp_corpus cp_corpus;

typedef struct cp_piece {
    int64_t id;                /* position in the index: the piece id */
    const char *name;          /* source name (into the mapping) */
    uint64_t content_hash;
    cp_split split;
    int32_t piece, file_index, instrument;
    int64_t start;
    int64_t len;               /* steps */
    double duration_s;
    uint64_t data_offset;      /* byte offset of its data in the file */
} cp_piece;

/* Maps and validates path (header, every section, every index entry and name, the meta
 * checksum; the data's checksum and token values are checked by cp_corpus_verify, and token
 * values again when read). CT_E_IO when it cannot be opened, CT_E_FORMAT for a bad file. */
ct_status cp_corpus_open(const char *path, cp_corpus **out, cp_error *err);
void cp_corpus_close(cp_corpus *c);

const char *cp_corpus_path(const cp_corpus *c);
uint32_t cp_corpus_version(const cp_corpus *c);
const cp_encoding *cp_corpus_encoding(const cp_corpus *c);
int cp_corpus_vocab(const cp_corpus *c);
int cp_corpus_valid_pct(const cp_corpus *c);
int cp_corpus_test_pct(const cp_corpus *c);
int64_t cp_corpus_num_pieces(const cp_corpus *c);
int64_t cp_corpus_split_pieces(const cp_corpus *c, cp_split s);   /* CP_SPLIT_ALL: all */
int64_t cp_corpus_split_steps(const cp_corpus *c, cp_split s);
double cp_corpus_split_seconds(const cp_corpus *c, cp_split s);
uint64_t cp_corpus_file_size(const cp_corpus *c);
/* Piece id (0 <= id < num_pieces), or NULL. Valid until the close. */
const cp_piece *cp_corpus_piece(const cp_corpus *c, int64_t id);

/* Piece id's tokens into dst (len int32 / int64 values). CT_E_ARG for a bad id or a piano-roll
 * corpus; CT_E_FORMAT when a stored token is outside 0..vocab-1 (message: file, byte, piece). */
ct_status cp_corpus_read_tokens(const cp_corpus *c, int64_t id, int32_t *dst, cp_error *err);
ct_status cp_corpus_read_tokens64(const cp_corpus *c, int64_t id, int64_t *dst, cp_error *err);
/* Piece id's frames into dst (len * 88 values, 0/1), as uint8 or float. CT_E_ARG for a bad id
 * or a token corpus; CT_E_FORMAT when a frame has bits set past key 87. */
ct_status cp_corpus_read_frames(const cp_corpus *c, int64_t id, uint8_t *dst, cp_error *err);
ct_status cp_corpus_read_frames_f32(const cp_corpus *c, int64_t id, float *dst, cp_error *err);

/* The statistics stored by the build, skips included (release with cp_stats_free). */
ct_status cp_corpus_stats(const cp_corpus *c, cp_stats *out, cp_error *err);
/* Reads the whole data section: its checksum, every token in the vocabulary, every frame's
 * spare bits zero, padding zero. CT_E_FORMAT with the first problem. */
ct_status cp_corpus_verify(const cp_corpus *c, cp_error *err);

#ifdef __cplusplus
}
#endif
#endif
