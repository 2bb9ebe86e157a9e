/* audio/synth.h — the built-in polyphonic synthesizer: cm_notes (in seconds) -> float samples at
 * any sample rate. Needs nothing but libm.
 *
 * Every note is one voice (no polyphony cap, no voice stealing): additive partials driven by
 * complex-phasor oscillators, an ADSR envelope, and a timbre chosen from the note's General
 * MIDI program; notes on channel 10 (cm_note.is_drum) are drum sounds chosen by key (kick,
 * snare, clap/side stick, hi-hats, cymbals, toms, other percussion), made of noise bursts and
 * pitched thumps. Velocity sets the gain ((v/127)^1.8) and, for the piano, the brightness.
 * The mix goes through a look-ahead limiter, so no sample ever exceeds CA_SYNTH_CEILING.
 *
 * A partial at or above 0.45 x the sample rate is left out (it would alias), so a note whose
 * fundamental is that high is silent (e.g. above MIDI 120 at 16 kHz).
 *
 * Timing. A note sounds from start_s for max(end_s - start_s, CA_SYNTH_MIN_NOTE_S), then its
 * timbre's release tail (ca_timbre_release_s); a drum sounds for its own fixed length from
 * start_s whatever its end_s. The output has ca_synth_frames() frames: ceil(rate x the latest
 * of notes->end_s and every note's ca_synth_note_end_s). Where no note sounds, the samples are
 * exactly 0.
 *
 * Deterministic: the same notes and options give the same samples, bit for bit; the noise of
 * drum i comes from a generator seeded by (opts->seed, i). No global state. */
#ifndef CANTOR_AUDIO_SYNTH_H
#define CANTOR_AUDIO_SYNTH_H

#include <stdint.h>

#include "audio/audiofile.h"
#include "audio/midi.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CA_SYNTH_DEFAULT_RATE 44100
#define CA_SYNTH_MIN_NOTE_S   0.03   /* shorter (and zero-length) notes sound this long */
#define CA_SYNTH_CEILING      0.891f /* -1 dBFS: the limiter's ceiling */

typedef enum ca_timbre {
    CA_TIMBRE_PIANO,    /* GM 0-7: struck, decaying, slightly inharmonic partials */
    CA_TIMBRE_MALLET,   /* 8-15 chromatic percussion, 112-119 percussive: bell-like partials */
    CA_TIMBRE_ORGAN,    /* 16-23: drawbar partials, sustained */
    CA_TIMBRE_PLUCKED,  /* 24-31 guitars, 45-46 pizzicato/harp, 104-111 ethnic: plucked string */
    CA_TIMBRE_BASS,     /* 32-39 basses, 47 timpani: few partials, decaying */
    CA_TIMBRE_STRINGS,  /* 40-44 strings, 48-55 ensembles/choir: bowed, vibrato, slow attack */
    CA_TIMBRE_BRASS,    /* 56-63: bright sawtooth */
    CA_TIMBRE_REED,     /* 64-71: odd-heavy harmonics */
    CA_TIMBRE_PIPE,     /* 72-79: near-sine flute with vibrato */
    CA_TIMBRE_LEAD,     /* 80-87 synth leads: square */
    CA_TIMBRE_PAD,      /* 88-103 pads and synth effects, 120-127 sound effects: soft, slow */
    CA_TIMBRE_DRUMS,    /* channel 10 */
    CA_TIMBRE_COUNT
} ca_timbre;

/* The timbre of a GM program (0..127, others clamped); CA_TIMBRE_DRUMS when is_drum. */
ca_timbre ca_synth_timbre(int program, bool is_drum);
const char *ca_timbre_name(ca_timbre t);
/* The release tail after a note's end (seconds; for drums the longest drum sound). */
double ca_timbre_release_s(ca_timbre t);
/* A drum sound's fixed length for a GM drum key (35 kick ... 81), in seconds. */
double ca_synth_drum_length_s(int key);

/* When note n stops sounding (seconds): see "Timing" above. */
double ca_synth_note_end_s(const cm_note *n);
/* The output length in frames at rate (see "Timing"). */
int64_t ca_synth_frames(const cm_notes *notes, int rate);

typedef struct ca_synth_opts {
    int rate;        /* frames per second; 0: CA_SYNTH_DEFAULT_RATE */
    int channels;    /* 1 (mono) or 2 (stereo: pitch- and drum-dependent panning); 0: 2 */
    float gain;      /* master gain before the limiter; 0: 0.3 */
    uint64_t seed;   /* seed of the drums' noise */
} ca_synth_opts;

/* Renders notes into *out (a new buffer; ca_audio_free). opts may be NULL (defaults). Seconds
 * come from the notes (start_s / end_s); ticks are ignored. CA_E_ARG names the first note with
 * a negative or non-finite time; CA_E_LIMIT when the result would exceed CA_MAX_SAMPLES. */
ca_status ca_synth_render(const cm_notes *notes, const ca_synth_opts *opts, ca_audio *out, ca_error *err);

/* The limiter the synthesizer and the FluidSynth path use: a gain that falls over 2 ms before
 * any peak (look-ahead) and recovers over about 150 ms, so that |sample| <= ceiling everywhere
 * (ceiling in (0, 1]); quiet audio (peak <= ceiling) is untouched. In place; a->rate sets the
 * time constants. CA_E_NOMEM / CA_E_ARG. */
ca_status ca_limit(ca_audio *a, float ceiling, ca_error *err);

#ifdef __cplusplus
}
#endif
#endif
