/* audio/render.h — MIDI -> audio: through FluidSynth and a General MIDI SoundFont when both are
 * there, else through the built-in synthesizer (audio/synth.h); the choice can be forced.
 *
 * The FluidSynth path is compiled only when the build defines CT_HAVE_FLUIDSYNTH (the Makefile
 * does when `pkg-config --exists fluidsynth`) and is used only when a SoundFont is found at run
 * time (opts->soundfont, else the first of CA_SOUNDFONT_PATHS that is readable). cantor always
 * parses the MIDI itself first (cm_read_file), so a malformed file is an error naming the file
 * (FluidSynth's own command line exits 0 for those), and FluidSynth is given the bytes of the
 * file as cantor re-writes it (cm_write_mem). FluidSynth's log output is switched off (its log
 * handlers are process-wide: calling ca_render_* changes them for the whole process).
 *
 * Both paths end with the limiter of synth.h: no sample exceeds CA_SYNTH_CEILING.
 * Errors: ca_status / ca_error as in audiofile.h; a MIDI problem is CA_E_MIDI and its message is
 * the MIDI reader's ("song.mid: byte 1234: ..."). Nothing here prints or exits. */
#ifndef CANTOR_AUDIO_RENDER_H
#define CANTOR_AUDIO_RENDER_H

#include <stdbool.h>
#include <stdint.h>

#include "audio/audiofile.h"
#include "audio/midi.h"
#include "audio/synth.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where a General MIDI SoundFont is looked for, in this order (NULL-terminated). Debian:
 * fluid-soundfont-gm (FluidR3_GM.sf2), timgm6mb-soundfont (TimGM6mb.sf2), the alternatives
 * link default-GM.sf2. */
#define CA_SOUNDFONT_PATHS                                                                      \
    {"/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/TimGM6mb.sf2",              \
     "/usr/share/sounds/sf2/default-GM.sf2", NULL}

typedef enum ca_renderer {
    CA_RENDERER_AUTO = 0,   /* FluidSynth when compiled in and a SoundFont is found, else built-in */
    CA_RENDERER_BUILTIN,    /* audio/synth.h */
    CA_RENDERER_FLUIDSYNTH, /* error CA_E_UNSUPPORTED when not compiled in or no SoundFont */
    CA_RENDERER_COUNT
} ca_renderer;

/* "auto", "builtin", "fluidsynth". */
const char *ca_renderer_name(ca_renderer r);
/* The renderer named ("auto", "builtin" or "fluidsynth"); CA_RENDERER_COUNT for other names. */
ca_renderer ca_renderer_from_name(const char *name);
/* Whether the FluidSynth path was compiled in (CT_HAVE_FLUIDSYNTH). */
bool ca_have_fluidsynth(void);
/* The first readable path of CA_SOUNDFONT_PATHS (a string constant), or NULL. */
const char *ca_find_soundfont(void);

typedef struct ca_render_opts {
    ca_renderer renderer;  /* CA_RENDERER_AUTO (the zeroed default), BUILTIN or FLUIDSYNTH */
    int rate;              /* frames per second; 0: 44100 */
    int channels;          /* 1 or 2; 0: 2 (FluidSynth renders stereo; 1 mixes it to mono) */
    const char *soundfont; /* FluidSynth: this .sf2 (must be readable); NULL: ca_find_soundfont() */
    float gain;            /* 0: the default (built-in: 0.3 before the limiter; FluidSynth: its
                              synth.gain 2.0, as its own default 0.2 is very quiet) */
    uint64_t seed;         /* built-in: the drums' noise seed */
    bool no_sustain;       /* built-in: ignore the sustain pedal (CC64); by default it holds notes */
    ca_write_opts write;   /* ca_render_file: the output format (AUTO: from the extension) */
} ca_render_opts;

typedef struct ca_render_info {
    ca_renderer renderer;  /* the one used (never AUTO) */
    char soundfont[512];   /* FluidSynth: the SoundFont used; "" otherwise */
    int64_t notes;         /* notes in the MIDI (drums included) */
    double midi_seconds;   /* the MIDI's length (latest track end) */
    int64_t frames;        /* the audio's length */
    int rate, channels;
    float peak;            /* the largest |sample| after the limiter */
} ca_render_info;

/* What opts->renderer resolves to (NULL opts: defaults). AUTO: FLUIDSYNTH when it is compiled in
 * and either opts->soundfont is set (an unreadable one is then an error, not a silent fallback)
 * or ca_find_soundfont() finds one; else BUILTIN. */
ca_renderer ca_render_choose(const ca_render_opts *opts);

/* Renders f into *out (a new buffer; ca_audio_free). name names f in messages (NULL: "<midi>").
 * opts and info may be NULL. The built-in path renders the notes of cm_notes_extract (drums
 * included, sustain pedal honoured unless opts->no_sustain) with ca_synth_render; its length is
 * ca_synth_frames. The FluidSynth path plays the whole file, then up to 5 s of release and
 * reverb tail until the output falls below -80 dBFS. */
ca_status ca_render_midi(const cm_file *f, const char *name, const ca_render_opts *opts, ca_audio *out,
                         ca_render_info *info, ca_error *err);

/* Reads midi_path (an error names it), renders it and writes out_path atomically (format from
 * opts->write or out_path's extension, checked before any work). opts and info may be NULL. */
ca_status ca_render_file(const char *midi_path, const char *out_path, const ca_render_opts *opts,
                         ca_render_info *info, ca_error *err);

#ifdef __cplusplus
}
#endif
#endif
