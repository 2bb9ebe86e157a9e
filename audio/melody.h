/* audio/melody.h — monophonic melodies on a metric grid, as Magenta's note-seq does them:
 * extraction from polyphonic notes (melodies_lib.extract_melodies), the one-hot token encoding
 * (melody_encoder_decoder.MelodyOneHotEncoding) and decoding back to notes and MIDI
 * (Melody.to_sequence). Pure C11; knows nothing of tensors: tokens are plain int32 arrays.
 *
 * Melody events (Magenta's values, kept in cm_melody.events):
 *   CM_MELODY_NO_EVENT (-2)  nothing happens: a sounding note is held, a silence goes on
 *   CM_MELODY_NOTE_OFF (-1)  the sounding note ends (silence from this step)
 *   0..127                   a new note of that MIDI pitch starts (ending the previous one)
 * The end of a melody ends a sounding note.
 *
 * Tokens (MelodyOneHotEncoding over the pitch range [min_pitch, max_pitch), max exclusive):
 *   0 = no event, 1 = note-off, 2 + (pitch - min_pitch) = note-on.
 *   Default range 48..84 (36 pitches, CM_MELODY_DEFAULT_NUM_CLASSES = 38 classes, Magenta's
 *   melody_rnn DEFAULT_MIN_NOTE / DEFAULT_MAX_NOTE); full range 0..128 (130 classes).
 *
 * Extraction (cm_melody_extract), per instrument (track, channel, program) of a cm_notes,
 * exactly as note-seq's extract_melodies + Melody.from_quantized_sequence with
 * ignore_polyphonic_notes=True, then the melody_rnn encoder pipeline's Melody.squash:
 *   - drum instruments are skipped (opts.keep_drums keeps them); notes of velocity 0 are
 *     ignored;
 *   - notes are quantized to the grid: step = floor(tick * steps_per_quarter / ppq + 0.5)
 *     (Magenta's QUANTIZE_CUTOFF 0.5, computed on ticks so tempo changes do not matter; for an
 *     SMPTE division, seconds at the first tempo); a note whose end rounds onto its start
 *     lasts one step;
 *   - notes are taken in order of start step, higher pitch first. A note that starts on the
 *     step of the previous note's start is skipped (the highest note wins); a note that starts
 *     later cuts the one before it, even when it ends earlier (that note's rest is lost);
 *   - a melody starts at the bar that holds its first note and ends before a note that starts
 *     gap_bars * steps_per_bar or more steps after the previous note's end; the search for the
 *     next melody of the instrument resumes at the next bar line after the melody's end;
 *   - the final note-off is stripped (the melody ends with its last note); pad_end pads with
 *     no-events to a bar line;
 *   - a melody is discarded when (length - 1) < min_bars * steps_per_bar, when longer than
 *     max_steps_discard (0: no limit), truncated to max_steps_truncate (0: no limit), then
 *     discarded when it has fewer than min_unique_pitches distinct pitch classes (pitch mod
 *     12, Magenta's note histogram);
 *   - pitches outside the encoding range: CM_MELODY_RANGE_OCTAVE (the default, Magenta's
 *     Melody.squash with no key, i.e. Melody.transpose(0, min, max)) moves each such note by
 *     whole octaves into [min_pitch, max_pitch) after extraction (the range must span at least
 *     an octave); CM_MELODY_RANGE_DROP removes the notes before extraction, so a lower note
 *     in range can take the melody.
 * Defaults are Magenta's extract_melodies defaults, which its melody_rnn pipeline also uses:
 * min_bars 7, gap_bars 1.0, min_unique_pitches 5, 4 steps per quarter, 16 steps per 4/4 bar.
 * Known divergence: Magenta places a melody's first bar from the instrument's first note even
 * when that note has velocity 0 (and is then ignored); here such notes are removed first.
 *
 * Ownership: cm_melody and cm_melodies are caller-owned structs filled by the functions below
 * and released with cm_melody_free / cm_melodies_free (NULL and zeroed structs are fine).
 * Token arrays returned through int32_t ** are malloc'd; the caller free()s them.
 * Errors: a cm_status plus, when err is given, a message naming the note, position or value
 * and what was expected (see audio/midi.h). Nothing prints or exits. */
#ifndef CANTOR_AUDIO_MELODY_H
#define CANTOR_AUDIO_MELODY_H

#include <stdbool.h>
#include <stdint.h>

#include "audio/midi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- events and tokens ---------------------------------------------------------------------- */
#define CM_MELODY_NO_EVENT (-2)          /* Magenta's MELODY_NO_EVENT */
#define CM_MELODY_NOTE_OFF (-1)          /* Magenta's MELODY_NOTE_OFF */
#define CM_MELODY_TOKEN_NO_EVENT 0
#define CM_MELODY_TOKEN_NOTE_OFF 1
#define CM_MELODY_NUM_SPECIAL 2          /* Magenta's NUM_SPECIAL_MELODY_EVENTS */
#define CM_MELODY_FIRST_PITCH_TOKEN 2    /* token of min_pitch */
#define CM_MELODY_INVALID (-3)           /* cm_melody_token_to_event: the token is out of range */

#define CM_MELODY_DEFAULT_MIN_PITCH 48   /* inclusive */
#define CM_MELODY_DEFAULT_MAX_PITCH 84   /* exclusive */
#define CM_MELODY_DEFAULT_NUM_CLASSES 38 /* 36 pitches + 2 */
#define CM_MELODY_FULL_MIN_PITCH 0
#define CM_MELODY_FULL_MAX_PITCH 128     /* exclusive */
#define CM_MELODY_FULL_NUM_CLASSES 130   /* 128 pitches + 2 */

/* ---- grid and extraction defaults (Magenta's) ----------------------------------------------- */
#define CM_MELODY_DEFAULT_STEPS_PER_QUARTER 4  /* 16th notes */
#define CM_MELODY_DEFAULT_GAP_BARS 1.0
#define CM_MELODY_DEFAULT_MIN_BARS 7
#define CM_MELODY_DEFAULT_MIN_UNIQUE_PITCHES 5
#define CM_MELODY_MAX_STEPS_PER_QUARTER 960    /* a finer grid is refused */
#define CM_MELODY_MAX_STEPS ((int64_t)1 << 24) /* a note ending later on the grid is refused */
#define CM_MELODY_NOTES_PER_OCTAVE 12

/* ---- decoding defaults (Magenta's Melody.to_sequence) --------------------------------------- */
#define CM_MELODY_DEFAULT_QPM 120.0
#define CM_MELODY_DEFAULT_VELOCITY 100

/* The token range: pitches [min_pitch, max_pitch), 0 <= min_pitch < max_pitch <= 128. */
typedef struct cm_melody_encoding {
    int min_pitch, max_pitch;
} cm_melody_encoding;

cm_melody_encoding cm_melody_encoding_default(void);  /* 48..84: 38 classes */
cm_melody_encoding cm_melody_encoding_full(void);     /* 0..128: 130 classes */
bool cm_melody_encoding_valid(cm_melody_encoding e);
/* max_pitch - min_pitch + 2; -1 for an invalid encoding. */
int cm_melody_num_classes(cm_melody_encoding e);
/* A melody event (-2, -1 or a pitch) to its token; -1 when the pitch is outside the range or
 * the event is invalid. */
int cm_melody_event_to_token(cm_melody_encoding e, int event);
/* A token to its melody event; CM_MELODY_INVALID when token is outside 0..num_classes-1. */
int cm_melody_token_to_event(cm_melody_encoding e, int token);

/* ---- melodies ------------------------------------------------------------------------------- */
typedef struct cm_melody {
    int32_t *events;        /* n_events melody events (owned) */
    int64_t n_events;
    int64_t start_step;     /* grid step of events[0] in the source: a bar line (0 when decoded) */
    int steps_per_quarter;
    int steps_per_bar;
    int instrument;         /* index in the source cm_notes' instruments; -1 when decoded */
    int track, channel, program;
} cm_melody;

void cm_melody_free(cm_melody *m);

typedef enum cm_melody_range {
    CM_MELODY_RANGE_OCTAVE = 0, /* move out-of-range notes by octaves into the range (Magenta) */
    CM_MELODY_RANGE_DROP        /* drop out-of-range notes before extraction */
} cm_melody_range;

typedef struct cm_melody_opts {
    int steps_per_quarter;       /* grid: steps per quarter note (1..CM_MELODY_MAX_STEPS_PER_QUARTER) */
    int steps_per_bar;           /* 0: steps_per_quarter * 4 * num / den of the tempo map's first
                                    time signature (4/4 when none); must come out whole */
    cm_melody_encoding range;    /* pitches kept: [min_pitch, max_pitch) */
    cm_melody_range range_mode;
    double gap_bars;             /* a silence of this many bars or more ends a melody (> 0) */
    int min_bars;                /* shorter melodies are discarded (>= 0) */
    int min_unique_pitches;      /* melodies with fewer distinct pitch classes are discarded */
    int64_t max_steps_discard;   /* longer melodies are discarded; 0: no limit */
    int64_t max_steps_truncate;  /* longer melodies are cut to this; 0: no limit */
    bool pad_end;                /* pad each melody with no-events to a bar line */
    bool keep_drums;             /* also extract from drum instruments (channel 10) */
} cm_melody_opts;

/* Magenta's defaults: 4 steps per quarter, bar from the time signature, range 48..84 moved by
 * octaves, gap 1 bar, min 7 bars, min 5 pitch classes, no max, no padding, drums skipped. */
cm_melody_opts cm_melody_opts_default(void);

/* What extraction did (Magenta's extract_melodies statistics, and more). */
typedef struct cm_melody_stats {
    int64_t instruments;                 /* instruments searched */
    int64_t drum_instruments_skipped;
    int64_t notes_zero_velocity;         /* ignored */
    int64_t notes_simultaneous_skipped;  /* started on the step of a higher note */
    int64_t notes_out_of_range_dropped;  /* CM_MELODY_RANGE_DROP */
    int64_t notes_out_of_range_moved;    /* CM_MELODY_RANGE_OCTAVE: note-on events moved */
    int64_t discarded_too_short;
    int64_t discarded_too_long;
    int64_t discarded_too_few_pitches;
    int64_t truncated;
} cm_melody_stats;

typedef struct cm_melodies {
    cm_melody *melodies;    /* in instrument order, then time order (owned) */
    int64_t n_melodies;
    cm_melody_stats stats;
} cm_melodies;

/* Extracts the melodies of notes (from cm_notes_extract or cm_notes_from_array). tm gives the
 * division (ticks per quarter) and the first time signature; NULL means PPQ CM_DEFAULT_PPQ and
 * 4/4. opts may be NULL (the defaults). On failure *out is empty. Release with
 * cm_melodies_free. */
cm_status cm_melody_extract(const cm_notes *notes, const cm_tempo_map *tm, const cm_melody_opts *opts,
                            cm_melodies *out, cm_error *err);
void cm_melodies_free(cm_melodies *m);

/* ---- tokens --------------------------------------------------------------------------------- */
/* Encodes m's events as tokens (*tokens: n_events int32 values, malloc'd, the caller free()s;
 * never NULL on success). CM_E_ARG names the first event whose pitch is outside the range. */
cm_status cm_melody_encode(const cm_melody *m, cm_melody_encoding e, int32_t **tokens, int64_t *n_tokens,
                           cm_error *err);
/* Decodes n tokens into *out (start_step 0, instrument -1, steps_per_bar 4 * steps_per_quarter).
 * As Magenta's Melody, note-offs before the first note become no-events. CM_E_ARG names the
 * first token outside 0..num_classes-1. Release with cm_melody_free. */
cm_status cm_melody_decode(const int32_t *tokens, int64_t n, cm_melody_encoding e, int steps_per_quarter,
                           cm_melody *out, cm_error *err);

/* ---- back to notes and MIDI ----------------------------------------------------------------- */
typedef struct cm_melody_render {
    double qpm;      /* tempo, quarter notes per minute (4..1000) */
    int ppq;         /* ticks per quarter of the notes and the file (1..32767) */
    int velocity;    /* 1..127 */
    int program;     /* 0..127 */
    int channel;     /* 0..15 */
} cm_melody_render;

/* qpm 120, ppq CM_DEFAULT_PPQ, velocity 100, program 0, channel 0. */
cm_melody_render cm_melody_render_default(void);

/* The notes of m (Melody.to_sequence): a note-on ends the sounding note and starts one, a
 * note-off ends it, the end of the melody ends it. Notes start at m->start_step on the grid;
 * ticks are step * ppq / steps_per_quarter (rounded), seconds follow from qpm. r may be NULL
 * (the defaults). Release with cm_notes_free. */
cm_status cm_melody_to_notes(const cm_melody *m, const cm_melody_render *r, cm_notes *out, cm_error *err);
/* The tempo map of a rendered melody: r's ppq and qpm, the bar of m as a time signature
 * (steps_per_bar / steps_per_quarter quarters, or eighths; 4/4 when neither is whole).
 * Release with cm_tempo_map_free. */
cm_status cm_melody_tempo_map(const cm_melody *m, const cm_melody_render *r, cm_tempo_map *tm, cm_error *err);
/* cm_melody_to_notes + cm_melody_tempo_map + cm_file_from_notes: a format 1 file. NULL with
 * err set on failure; release with cm_file_free. */
cm_file *cm_melody_to_file(const cm_melody *m, const cm_melody_render *r, cm_error *err);

#ifdef __cplusplus
}
#endif
#endif
