/* models/stream.h — a composer playing live: a producer for the player (audio/player.h) that
 * samples one step at a time (models/sampler.h, cc_sampler_next_tokens / _frames) and decodes
 * each step at once into timed MIDI messages, so the piece is composed while it plays.
 *
 * DECODING, step by step, with the same timing as the whole-piece decoders:
 *   melody       (audio/melody.h) step k is at k * 60 / (qpm * steps_per_quarter) s; a pitch
 *                ends the sounding note and starts its own, a note-off ends it, no-event holds
 *                it; the end of the piece ends it. The notes are those cm_melody_to_notes gives.
 *   performance  (audio/performance.h) TIME_SHIFT moves the clock by steps / steps_per_second,
 *                VELOCITY sets the velocity of later note-ons, NOTE_ON starts a note (a note-on
 *                of a pitch already sounding re-strikes it: note-off, note-on), NOTE_OFF ends
 *                the pitch once every note-on of it is matched (a NOTE_OFF with none open is
 *                ignored, as in cm_perf_decode); notes open at the end close there.
 *   pianoroll    (audio/pianoroll.h) frame k is at k / steps_per_second s, or on the metric
 *                grid at qpm; a key that turns on starts a note (pitch 21 + key), a key that
 *                turns off ends it: the notes cm_roll_to_notes gives.
 * Token and audio models do not describe notes and are refused (CT_E_UNSUPPORTED).
 *
 * The producer makes one step per call, and reports the piece known until the time of the
 * next step (performance: the current time, as more events may come at it). A program change
 * (opts.program >= 0) goes first, at time 0.
 *
 * OWNERSHIP. A stream is the caller's (cc_stream_free; NULL is a no-op); it borrows the model,
 * which must outlive it. Errors: cc_stream_new returns NULL with the error in the model's
 * context; a failing step makes the producer return CL_PRODUCE_FAIL with the context's message
 * in the cl_error. */
#ifndef CC_STREAM_H
#define CC_STREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "audio/player.h"
#include "engine/nn.h"
#include "engine/rng.h"
#include "models/sampler.h"

typedef struct cc_stream_opts {
    cc_sample_opts sample;   /* temperature, top-k, top-p */
    int64_t steps;           /* steps (tokens or frames) to make; 0: no end (until stopped) */
    double qpm;              /* melody and metric piano rolls: quarter notes per minute (4..1000) */
    int channel;             /* 0..15 */
    int program;             /* -1 (none) or 0..127: a program change at time 0 */
    int velocity;            /* 1..127: melody and piano-roll notes; performance before any VELOCITY */
} cc_stream_opts;

/* sampling defaults, steps 0, qpm 120, channel 0, program 0, velocity 100. */
cc_stream_opts cc_stream_defaults(void);

typedef struct cc_stream cc_stream;

/* A stream of a melody, performance or piano-roll composer; o may be NULL (defaults). Forks its
 * random stream from rng as cc_sampler_new does, so the same seed gives the tokens of
 * cc_sample_tokens / cc_sample_frames. NULL + error in the model's context. */
cc_stream *cc_stream_new(ct_module *model, const cc_stream_opts *o, ct_rng *rng);
void cc_stream_free(cc_stream *s);

/* The producer (cl_producer_fn; user = the stream). */
cl_produce cc_stream_produce(void *stream, cl_player *p, int64_t *until_us, cl_error *err);

/* Steps made so far, and the piece's time reached (microseconds). */
int64_t cc_stream_steps(const cc_stream *s);
int64_t cc_stream_time_us(const cc_stream *s);

#endif
