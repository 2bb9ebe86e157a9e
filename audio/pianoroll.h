/* audio/pianoroll.h — 88-key piano rolls: notes <-> frames at a chosen resolution, and the
 * plain-text format of the polyphonic benchmarks (JSB Chorales, Nottingham, MuseData,
 * Piano-midi.de, as in Boulanger-Lewandowski et al. 2012). Pure C11; knows nothing of tensors:
 * a roll is a plain uint8 array of 0/1 frames.
 *
 * Frames. Step t, key k (0..87, MIDI pitch 21 + k) is frames[t * CM_ROLL_NUM_KEYS + k]: 1 while
 * a note of that pitch sounds, 0 otherwise (any nonzero value counts as 1 when written or
 * turned into notes).
 *
 * Notes -> frames (cm_roll_from_notes). A note covers steps [start, end) with
 *   start = floor(time * resolution + 0.5), end likewise (Magenta's quantize_to_step), and at
 *   least one step; time is seconds for steps_per_second, or quarters (tick / ppq) for
 *   steps_per_quarter (for an SMPTE division: seconds at the first tempo).
 * Pitches outside 21..108 are dropped and counted; drum notes are left out unless asked for;
 * velocity is not kept. The roll is as long as the last note's end.
 * Frames -> notes (cm_roll_to_notes). Each run of consecutive on-frames of a key is one note
 * (a re-struck note held across steps therefore merges with the one before it: the text
 * format does not mark onsets either).
 *
 * Text format (cm_poly_read_* / cm_poly_write_*; see ../shared/corpora/polyphonic/README.md):
 *   - ASCII, '\n' line ends, a final newline; an empty file holds no pieces;
 *   - a piece is a run of non-blank lines, one per step; pieces are separated by exactly one
 *     blank line, with none before the first piece or after the last;
 *   - a step lists the sounding pitches (21..108) in ascending order separated by single
 *     spaces ("48 64 67 72"), or a single "-" when silent.
 * The reader is strict (no '\r', tabs, extra spaces, leading zeros, signs, duplicates or
 * descending pitches) and its errors name the file, the line and the column:
 *   "train.txt: line 12, column 7: pitch 109 outside 21..108 (the 88 piano keys)"
 * with cm_error.offset the byte offset of that column. The writer writes exactly this format,
 * so read -> write gives the same bytes.
 *
 * Ownership: cm_roll and cm_poly are caller-owned structs released with cm_roll_free /
 * cm_poly_free (NULL and zeroed structs are fine). cm_poly_write_mem returns a malloc'd buffer
 * the caller free()s. Errors: cm_status and cm_error as in audio/midi.h; malformed text is
 * CM_E_POLY_SYNTAX. */
#ifndef CANTOR_AUDIO_PIANOROLL_H
#define CANTOR_AUDIO_PIANOROLL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audio/midi.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CM_ROLL_NUM_KEYS 88
#define CM_ROLL_MIN_PITCH 21                 /* A0, key 0 */
#define CM_ROLL_MAX_PITCH 108                /* C8, key 87 (inclusive) */
#define CM_ROLL_MAX_STEPS ((int64_t)1 << 24) /* longer rolls are refused (1.4 GiB of frames) */
#define CM_ROLL_DEFAULT_VELOCITY 100
#define CM_POLY_MAX_FILE_BYTES (512u * 1024u * 1024u)
#define CM_POLY_MAX_PIECES (1 << 20)
/* Malformed polyphonic text (an alias of CM_E_FORMAT, "malformed input text"); the message
 * says what is wrong, with file, line and column. */
#define CM_E_POLY_SYNTAX CM_E_FORMAT

typedef struct cm_roll {
    uint8_t *frames;   /* n_steps * CM_ROLL_NUM_KEYS, row-major (owned) */
    int64_t n_steps;
} cm_roll;

/* A silent roll of n_steps (0..CM_ROLL_MAX_STEPS). Release with cm_roll_free. */
cm_status cm_roll_init(cm_roll *r, int64_t n_steps, cm_error *err);
void cm_roll_free(cm_roll *r);
/* Frame access; pitch 21..108, 0 <= step < n_steps (unchecked: the caller's contract). */
static inline uint8_t *cm_roll_frame(const cm_roll *r, int64_t step) { return r->frames + step * CM_ROLL_NUM_KEYS; }
static inline bool cm_roll_on(const cm_roll *r, int64_t step, int pitch) {
    return r->frames[step * CM_ROLL_NUM_KEYS + (pitch - CM_ROLL_MIN_PITCH)] != 0;
}

/* The grid: exactly one of the two is > 0. */
typedef struct cm_roll_grid {
    double steps_per_second;   /* absolute time (0..10000] */
    int steps_per_quarter;     /* metric time, from ticks (1..960) */
} cm_roll_grid;

typedef struct cm_roll_stats {
    int64_t notes_used;
    int64_t notes_out_of_range;  /* pitch outside 21..108: dropped */
    int64_t notes_drums_skipped;
} cm_roll_stats;

/* notes -> frames on grid. tm gives the ppq for steps_per_quarter (NULL: CM_DEFAULT_PPQ).
 * include_drums: keep channel-10 notes. stats may be NULL. Release with cm_roll_free.
 * CM_E_LIMIT when a note ends beyond CM_ROLL_MAX_STEPS; CM_E_ARG for a bad grid or note. */
cm_status cm_roll_from_notes(const cm_notes *notes, const cm_tempo_map *tm, cm_roll_grid grid, bool include_drums,
                             cm_roll *out, cm_roll_stats *stats, cm_error *err);

typedef struct cm_roll_render {
    double qpm;            /* 4..1000: ticks for steps_per_second; seconds for steps_per_quarter */
    int ppq;               /* ticks per quarter of the notes (1..32767) */
    int velocity, program, channel;
} cm_roll_render;

/* qpm 120, ppq CM_DEFAULT_PPQ, velocity 100, program 0, channel 0. */
cm_roll_render cm_roll_render_default(void);
/* frames -> notes (runs of on-frames); r may be NULL (the defaults). Release with
 * cm_notes_free. The matching tempo map is cm_tempo_map_init_simple(ppq, 60e6 / qpm, 4, 4). */
cm_status cm_roll_to_notes(const cm_roll *roll, cm_roll_grid grid, const cm_roll_render *r, cm_notes *out,
                           cm_error *err);

/* ---- the polyphonic text format ------------------------------------------------------------- */
typedef struct cm_poly {
    cm_roll *pieces;   /* owned */
    int64_t n_pieces;
} cm_poly;

void cm_poly_free(cm_poly *p);
/* Reads a file / a buffer (name: for messages; NULL is "<memory>"). On failure *out is empty
 * and err says where and why. */
cm_status cm_poly_read_file(const char *path, cm_poly *out, cm_error *err);
cm_status cm_poly_read_mem(const void *buf, size_t len, const char *name, cm_poly *out, cm_error *err);
/* The text of p into a new malloc'd buffer (*out, *len; the caller free()s it). CM_E_ARG for a
 * piece without steps (the format cannot hold one). */
cm_status cm_poly_write_mem(const cm_poly *p, char **out, size_t *len, cm_error *err);
/* Writes atomically: a temporary file next to path, fsync, rename (an existing file is left
 * untouched on failure). */
cm_status cm_poly_write_file(const cm_poly *p, const char *path, cm_error *err);

#ifdef __cplusplus
}
#endif
#endif
