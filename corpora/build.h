/* corpora/build.h — building a corpus file from MIDI files: the list of source files, the
 * extraction of one file's sequences, and the build on worker threads.
 *
 *   cp_sources s = {0};
 *   cp_sources_add_dir(&s, "midi/", NULL, &err);          // recursive, .mid / .midi in any case
 *   cp_build_opts o = cp_build_defaults(CP_MELODY);       // 2 threads, 80/10/10, dedupe
 *   cp_stats st;
 *   if (cp_build(&s, "midi.corpus", &o, &st, &err) != CT_OK) ... err.message ...
 *   cp_stats_write(&st, &o.encoding, 20, stdout);         // apps/ print; the library never does
 *   cp_stats_free(&st);
 *   cp_sources_free(&s);
 *
 * THE BUILD. Sources are sorted by name (byte-wise); worker threads read and parse files
 * (cm_read_mem with the source name, so reader errors name it), extract their sequences
 * (cp_extract_notes) and hand them back; the calling thread writes them in name order. The
 * corpus file is therefore byte-identical for every thread count. At most `window` files are
 * in flight ahead of the writer, which bounds memory.
 *
 * SPLITS. Each file goes to train, valid or test by cp_split_of_hash of its content's FNV-1a
 * hash, so renaming or moving a file never changes its split, and identical files always share
 * one (with dedupe on, only the first by name is kept; the others are skipped as duplicates).
 *
 * NOTHING IS DROPPED SILENTLY. A file that cannot be read or parsed is skipped with the
 * reader's message; a file that gives no sequence is skipped with the reason (how many
 * melodies were too short, ...); duplicates name the file they repeat. Each is a cp_skip in
 * the stats and a line in the corpus file's log; files that are not MIDI by name are counted.
 *
 * Ownership: cp_sources, cp_extracted and cp_stats are caller-owned structs released by
 * cp_sources_free / cp_extracted_free / cp_stats_free (zeroed structs are fine). */
#ifndef CANTOR_CORPORA_BUILD_H
#define CANTOR_CORPORA_BUILD_H

#include "corpora/corpus.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- sources -------------------------------------------------------------------------------- */
typedef struct cp_source {
    char *path;     /* where to read it */
    char *name;     /* what the corpus calls it (relative path, with a prefix) */
} cp_source;

typedef struct cp_sources {
    cp_source *items;
    int64_t n, cap;
    int64_t ignored;  /* files seen by cp_sources_add_dir that are not MIDI by name */
} cp_sources;

void cp_sources_free(cp_sources *s);
/* Whether name ends in ".mid" or ".midi", in any case. */
bool cp_is_midi_name(const char *name);
/* Adds one file (path and name copied; name NULL: the path). CT_E_NOMEM. */
ct_status cp_sources_add_file(cp_sources *s, const char *path, const char *name, cp_error *err);
/* Adds every MIDI file under dir, recursively, named prefix + their path relative to dir
 * ("a/b.mid"; prefix NULL: none). Symbolic links to files are followed, to folders not (no
 * loops). Other files are counted in s->ignored. CT_E_IO names a folder that cannot be read. */
ct_status cp_sources_add_dir(cp_sources *s, const char *dir, const char *prefix, cp_error *err);

/* ---- one file's sequences ------------------------------------------------------------------- */
typedef struct cp_seq {
    int32_t *tokens;    /* melody / performance: len tokens (owned) */
    uint8_t *frames;    /* piano roll: len * CM_ROLL_NUM_KEYS values 0/1 (owned) */
    int64_t len;
    int64_t start;      /* melody: grid step of its first event; performance: 10 ms step; else 0 */
    double duration_s;
    int32_t instrument; /* melody: instrument index in the file; -1 otherwise */
} cp_seq;

typedef struct cp_extracted {
    cp_seq *seqs;
    int64_t n;
    int64_t notes;        /* notes in the file (cm_notes_extract) */
    int64_t too_short;    /* sequences under min_steps, left out */
    char why_empty[512];  /* when n == 0: why nothing came out */
} cp_extracted;

void cp_extracted_free(cp_extracted *x);
/* The sequences of notes in encoding e (see corpora/README.md for each encoding's rules):
 *   melody       cm_melody_extract with e->melody, each melody cm_melody_encode'd;
 *   performance  cm_perf_encode of the whole file (from time 0), or of each part between
 *                silences of perf_split_silence_s or more (each from its first note);
 *   pianoroll    cm_roll_from_notes on e->roll_grid (from time 0).
 * tm: the file's tempo map (NULL: PPQ 480, 120 bpm, 4/4). Sequences shorter than e->min_steps
 * are left out and counted. n == 0 is not an error (why_empty says why). */
ct_status cp_extract_notes(const cm_notes *notes, const cm_tempo_map *tm, const cp_encoding *e, cp_extracted *out,
                           cp_error *err);
/* Parses a MIDI file's bytes (name: for messages) and extracts as above, with notes from
 * cm_notes_extract (sustain pedal per e->sustain; drums per each encoding's option).
 * CT_E_FORMAT with the reader's message for a bad file. */
ct_status cp_extract_mem(const void *bytes, size_t len, const char *name, const cp_encoding *e, cp_extracted *out,
                         cp_error *err);

/* ---- the build ------------------------------------------------------------------------------ */
typedef struct cp_build_opts {
    cp_encoding encoding;
    int threads;            /* worker threads 1..256 (1: everything in the caller's thread) */
    int valid_pct, test_pct;/* split percentages; train gets the rest */
    bool dedupe;            /* skip files whose bytes equal an earlier file's */
    int64_t window;         /* files in flight ahead of the writer; 0: 4 * threads + 4 */
    /* optional: called in the caller's thread after each file is merged (done of total) */
    void (*progress)(void *userdata, int64_t done, int64_t total, const char *name);
    void *progress_userdata;
} cp_build_opts;

/* cp_encoding_default(kind), 2 threads, 10 % valid, 10 % test, dedupe on. */
cp_build_opts cp_build_defaults(cp_encoding_kind kind);

/* Builds out_path from the sources (see above). stats (may be NULL) is filled in any case, as
 * far as the build went. Errors: CT_E_ARG for bad options or no sources; CT_E_FORMAT when no
 * file gave a sequence (nothing is written; the stats say why); CT_E_IO / CT_E_NOMEM. */
ct_status cp_build(const cp_sources *src, const char *out_path, const cp_build_opts *o, cp_stats *stats,
                   cp_error *err);
/* cp_sources_add_dir(dir) + cp_build. */
ct_status cp_build_dir(const char *dir, const char *out_path, const cp_build_opts *o, cp_stats *stats,
                       cp_error *err);

#ifdef __cplusplus
}
#endif
#endif
