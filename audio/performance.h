/* audio/performance.h — Magenta's Performance RNN event encoding with dynamics (note-seq's
 * performance_lib.Performance and performance_encoder_decoder.PerformanceOneHotEncoding).
 * Pure C11; knows nothing of tensors: tokens are plain int32 arrays.
 *
 * Events and tokens (default configuration, 388 classes), in Magenta's order:
 *   NOTE_ON  pitch 0..127        tokens   0..127  (CM_PERF_NOTE_ON_OFFSET + pitch)
 *   NOTE_OFF pitch 0..127        tokens 128..255  (CM_PERF_NOTE_OFF_OFFSET + pitch)
 *   TIME_SHIFT 1..100 steps      tokens 256..355  (CM_PERF_TIME_SHIFT_OFFSET + steps - 1)
 *   VELOCITY bin 1..32           tokens 356..387  (CM_PERF_VELOCITY_OFFSET + bin - 1)
 * A step is 1 / steps_per_second seconds (10 ms). With num_velocity_bins = 0 there are no
 * velocity events (356 classes), as in Magenta's Performance RNN without dynamics.
 *
 * Velocity bins (performance_lib.velocity_to_bin / velocity_bin_to_velocity):
 *   bin_size = ceil(127 / num_bins)            (4 for 32 bins)
 *   bin      = (velocity - 1) / bin_size + 1   (velocity 1..4 -> 1, ..., 125..127 -> 32)
 *   velocity = 1 + (bin - 1) * bin_size        (bin 32 -> 125)
 *
 * Encoding (Performance._from_quantized_sequence with start_step 0, all instruments merged):
 *   - drum notes are left out unless opts.include_drums; velocity-0 notes are left out (Magenta
 *     cannot encode them: their bin would be 0) and counted;
 *   - start and end seconds are quantized to steps as floor(seconds * steps_per_second + 0.5)
 *     (Magenta's quantize_to_step); a note whose end rounds onto its start lasts one step;
 *   - notes are ordered by (start seconds, pitch); their note-ons and note-offs are sorted by
 *     (step, note order, note-off after note-on of the same note);
 *   - before an event at a later step come TIME_SHIFTs: as many of max_shift_steps as needed,
 *     then the remainder (a gap of 250 steps is 100, 100, 50);
 *   - a VELOCITY event comes before a NOTE_ON only when the note's bin differs from the last
 *     one emitted (the first note-on always gets one).
 * Decoding (BasePerformance._to_sequence): TIME_SHIFT advances the clock; VELOCITY sets the
 * velocity of later note-ons (CM_PERF_DEFAULT_VELOCITY, 100, before any); NOTE_ON opens a note;
 * NOTE_OFF closes the earliest open note of its pitch (FIFO), and is ignored when none is open;
 * notes still open at the end are closed at the final step; notes of zero duration are
 * dropped. So notes -> tokens -> notes gives the notes back with times on the 10 ms grid and
 * velocities at their bin's lower edge (overlapping notes of one pitch pair up FIFO).
 *
 * Ownership: token arrays returned through int32_t ** are malloc'd; the caller free()s them.
 * Decoded notes are a cm_notes released with cm_notes_free. Errors: a cm_status plus, when err
 * is given, a message naming the note or token position and what was expected. */
#ifndef CANTOR_AUDIO_PERFORMANCE_H
#define CANTOR_AUDIO_PERFORMANCE_H

#include <stdbool.h>
#include <stdint.h>

#include "audio/midi.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CM_PERF_NUM_PITCHES 128
#define CM_PERF_STEPS_PER_SECOND 100      /* 10 ms steps */
#define CM_PERF_MAX_SHIFT_STEPS 100       /* Magenta's DEFAULT_MAX_SHIFT_STEPS: 1 s */
#define CM_PERF_NUM_VELOCITY_BINS 32      /* Performance RNN with dynamics */
#define CM_PERF_NOTE_ON_OFFSET 0
#define CM_PERF_NOTE_OFF_OFFSET 128
#define CM_PERF_TIME_SHIFT_OFFSET 256
#define CM_PERF_VELOCITY_OFFSET 356
#define CM_PERF_NUM_CLASSES 388           /* 128 + 128 + 100 + 32 */
#define CM_PERF_NUM_CLASSES_NO_VELOCITY 356
#define CM_PERF_DEFAULT_VELOCITY 100      /* decoding, before any VELOCITY event */
#define CM_PERF_MIN_VELOCITY 1            /* Magenta's MIN_MIDI_VELOCITY */
#define CM_PERF_MAX_VELOCITY 127
#define CM_PERF_MAX_STEPS ((int64_t)1 << 31)  /* notes ending later (about 248 days at 100/s) are refused */
#define CM_PERF_MAX_TOKENS ((int64_t)1 << 28) /* decoding refuses longer inputs */

/* Event types, with Magenta's PerformanceEvent numbers. */
typedef enum cm_perf_event_type {
    CM_PERF_EV_INVALID = 0,
    CM_PERF_EV_NOTE_ON = 1,
    CM_PERF_EV_NOTE_OFF = 2,
    CM_PERF_EV_TIME_SHIFT = 3,
    CM_PERF_EV_VELOCITY = 4
} cm_perf_event_type;

typedef struct cm_perf_event {
    cm_perf_event_type type;
    int value;   /* pitch 0..127, steps 1..max_shift_steps, or bin 1..num_velocity_bins */
} cm_perf_event;

typedef struct cm_perf_config {
    int steps_per_second;   /* 1..1000 */
    int max_shift_steps;    /* 1..1000 */
    int num_velocity_bins;  /* 0 (no velocity events) or 1..127 */
} cm_perf_config;

/* 100 steps per second, 100 shift steps, 32 velocity bins: 388 classes. */
cm_perf_config cm_perf_config_default(void);
bool cm_perf_config_valid(const cm_perf_config *c);
/* 256 + max_shift_steps + num_velocity_bins; -1 for an invalid configuration. */
int cm_perf_num_classes(const cm_perf_config *c);
/* The token of an event; -1 when the event is invalid for c. */
int cm_perf_event_to_token(const cm_perf_config *c, cm_perf_event e);
/* The event of a token; type CM_PERF_EV_INVALID when token is outside 0..num_classes-1. */
cm_perf_event cm_perf_token_to_event(const cm_perf_config *c, int token);
/* Magenta's velocity binning (see above); num_bins 1..127, velocity clamped to 1..127, bin to
 * 1..num_bins. */
int cm_perf_velocity_to_bin(int velocity, int num_bins);
int cm_perf_bin_to_velocity(int bin, int num_bins);

typedef struct cm_perf_opts {
    cm_perf_config config;
    bool include_drums;     /* false: channel-10 notes are left out */
} cm_perf_opts;

cm_perf_opts cm_perf_opts_default(void);

typedef struct cm_perf_encode_stats {
    int64_t notes;              /* notes encoded */
    int64_t drums_skipped;
    int64_t zero_velocity_skipped;
    int64_t steps;              /* total length in steps (the last event's step) */
} cm_perf_encode_stats;

/* Encodes every note of notes (seconds are used; ticks are ignored) as tokens: *tokens is a
 * malloc'd array of *n_tokens int32 values (never NULL on success), which the caller free()s.
 * opts and stats may be NULL. CM_E_ARG names a note with a negative or non-finite time or a
 * pitch/velocity > 127; CM_E_LIMIT a note ending beyond CM_PERF_MAX_STEPS. */
cm_status cm_perf_encode(const cm_notes *notes, const cm_perf_opts *opts, int32_t **tokens, int64_t *n_tokens,
                         cm_perf_encode_stats *stats, cm_error *err);

typedef struct cm_perf_render {
    double qpm;                 /* tempo for the notes' ticks (4..1000) */
    int ppq;                    /* ticks per quarter (1..32767) */
    int program, channel;       /* 0..127, 0..15 */
    int velocity;               /* before any VELOCITY event: 1..127 */
    double max_note_duration_s; /* longer notes are cut to this; 0: no limit (Magenta's option) */
} cm_perf_render;

/* qpm 120, ppq CM_DEFAULT_PPQ, program 0, channel 0, velocity 100, no duration limit. */
cm_perf_render cm_perf_render_default(void);

typedef struct cm_perf_decode_stats {
    int64_t notes;
    int64_t note_offs_ignored;   /* NOTE_OFF with no open note of its pitch */
    int64_t zero_length_dropped;
    int64_t closed_at_end;       /* notes still open at the end, closed at the final step */
    int64_t steps;               /* total of the time shifts */
} cm_perf_decode_stats;

/* Decodes n tokens into notes: seconds are step / steps_per_second, ticks follow from r's qpm
 * and ppq (rounded). config and r may be NULL (the defaults); stats may be NULL. Also sets
 * out->unmatched_note_offs and out->closed_at_end. CM_E_ARG names the first token outside
 * 0..num_classes-1. Release with cm_notes_free. */
cm_status cm_perf_decode(const int32_t *tokens, int64_t n, const cm_perf_config *config, const cm_perf_render *r,
                         cm_notes *out, cm_perf_decode_stats *stats, cm_error *err);
/* The tempo map for decoded notes: r's ppq and qpm, 4/4 (cm_tempo_map_free releases it). */
cm_status cm_perf_tempo_map(const cm_perf_render *r, cm_tempo_map *tm, cm_error *err);
/* cm_perf_decode + cm_perf_tempo_map + cm_file_from_notes; NULL with err set on failure. */
cm_file *cm_perf_to_file(const int32_t *tokens, int64_t n, const cm_perf_config *config, const cm_perf_render *r,
                         cm_error *err);

#ifdef __cplusplus
}
#endif
#endif
