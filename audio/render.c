/* audio/render.c — MIDI -> audio through FluidSynth (when CT_HAVE_FLUIDSYNTH and a SoundFont is
 * found) or the built-in synthesizer; see render.h. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef CT_HAVE_FLUIDSYNTH
#include <fluidsynth.h>
#endif

#include "audio/render.h"

const char *ca_renderer_name(ca_renderer r) {
    switch (r) {
    case CA_RENDERER_AUTO: return "auto";
    case CA_RENDERER_BUILTIN: return "builtin";
    case CA_RENDERER_FLUIDSYNTH: return "fluidsynth";
    default: return "?";
    }
}

ca_renderer ca_renderer_from_name(const char *name) {
    if (!name) return CA_RENDERER_COUNT;
    for (int r = 0; r < CA_RENDERER_COUNT; r++)
        if (!strcmp(name, ca_renderer_name((ca_renderer)r))) return (ca_renderer)r;
    return CA_RENDERER_COUNT;
}

bool ca_have_fluidsynth(void) {
#ifdef CT_HAVE_FLUIDSYNTH
    return true;
#else
    return false;
#endif
}

const char *ca_find_soundfont(void) {
    static const char *const paths[] = CA_SOUNDFONT_PATHS;
    for (int i = 0; paths[i]; i++)
        if (access(paths[i], R_OK) == 0) return paths[i];
    return NULL;
}

ca_renderer ca_render_choose(const ca_render_opts *opts) {
    if (opts && opts->renderer != CA_RENDERER_AUTO) return opts->renderer;
    if (!ca_have_fluidsynth()) return CA_RENDERER_BUILTIN;
    if (opts && opts->soundfont) return CA_RENDERER_FLUIDSYNTH; /* named: use it (or say why not) */
    return ca_find_soundfont() ? CA_RENDERER_FLUIDSYNTH : CA_RENDERER_BUILTIN;
}

static ca_status midi_fail(ca_error *err, const cm_error *ce, const char *name) {
    /* the MIDI message already names the file */
    ca_status s = ca__fail(err, CA_E_MIDI, NULL, "%s", ce->message[0] ? ce->message : "invalid MIDI");
    if (err) snprintf(err->file, sizeof err->file, "%s", name);
    return s;
}

/* A readable RIFF "sfbk" file (what fluid_synth_sfload needs; checked here because FluidSynth
 * hands other files to libinstpatch, which prints glib warnings about them). */
static ca_status check_soundfont(const char *path, ca_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return ca__fail(err, CA_E_IO, path, "cannot read the SoundFont: %s", strerror(errno));
    unsigned char h[12];
    size_t n = fread(h, 1, sizeof h, f);
    fclose(f);
    if (n != sizeof h || memcmp(h, "RIFF", 4) != 0 || memcmp(h + 8, "sfbk", 4) != 0)
        return ca__fail(err, CA_E_FORMAT, path, "not a SoundFont 2 file (no RIFF sfbk header)");
    return CA_OK;
}

static float peak_of(const ca_audio *a) {
    float p = 0;
    for (int64_t i = 0; i < a->frames * a->channels; i++) {
        float v = fabsf(a->samples[i]);
        if (v > p) p = v;
    }
    return p;
}

#ifdef CT_HAVE_FLUIDSYNTH
#define FS_BLOCK 1024
#define FS_TAIL_S 5.0
#define FS_SILENCE 1e-4f

static ca_status render_fluidsynth(const cm_file *f, const char *name, const char *sf2, double seconds,
                                   int rate, double gain, ca_audio *out, ca_error *err) {
    if ((seconds + FS_TAIL_S) * rate * 2 > (double)CA_MAX_SAMPLES)
        return ca__fail(err, CA_E_LIMIT, name, "%.1f s of stereo audio at %d Hz exceeds CA_MAX_SAMPLES (%lld)",
                        seconds, rate, (long long)CA_MAX_SAMPLES);
    cm_error ce;
    memset(&ce, 0, sizeof ce);
    uint8_t *mid = NULL;
    size_t len = 0;
    if (cm_write_mem(f, NULL, &mid, &len, &ce) != CM_OK) return midi_fail(err, &ce, name);
    for (int lvl = FLUID_PANIC; lvl <= FLUID_DBG; lvl++) fluid_set_log_function(lvl, NULL, NULL);
    ca_status s = CA_OK;
    fluid_settings_t *st = new_fluid_settings();
    fluid_synth_t *syn = NULL;
    fluid_player_t *pl = NULL;
    if (!st) {
        s = ca__fail(err, CA_E_NOMEM, name, "FluidSynth: cannot create its settings");
        goto done;
    }
    fluid_settings_setnum(st, "synth.sample-rate", (double)rate);
    fluid_settings_setnum(st, "synth.gain", gain);
    fluid_settings_setint(st, "synth.lock-memory", 0);
    fluid_settings_setstr(st, "player.timing-source", "sample");
    syn = new_fluid_synth(st);
    if (!syn) {
        s = ca__fail(err, CA_E_NOMEM, name, "FluidSynth: cannot create a synthesizer at %d Hz", rate);
        goto done;
    }
    if (fluid_synth_sfload(syn, sf2, 1) == FLUID_FAILED) {
        s = ca__fail(err, CA_E_FORMAT, sf2, "FluidSynth cannot load this SoundFont (not a valid .sf2 file?)");
        goto done;
    }
    pl = new_fluid_player(syn);
    if (!pl || fluid_player_add_mem(pl, mid, len) != FLUID_OK || fluid_player_play(pl) != FLUID_OK) {
        s = ca__fail(err, CA_E_DECODE, name, "FluidSynth's MIDI player refused the file");
        goto done;
    }
    const int64_t cap = (int64_t)ceil((seconds + FS_TAIL_S) * rate) + FS_BLOCK;
    s = ca_audio_alloc(out, cap, 2, rate, err);
    if (s) goto done;
    int64_t n = 0, end_of_music = -1;
    while (n + FS_BLOCK <= cap) {
        float *p = out->samples + n * 2;
        if (fluid_synth_write_float(syn, FS_BLOCK, p, 0, 2, p, 1, 2) != FLUID_OK) {
            s = ca__fail(err, CA_E_DECODE, name, "FluidSynth failed while rendering at %.2f s", (double)n / rate);
            break;
        }
        n += FS_BLOCK;
        if (end_of_music < 0 && fluid_player_get_status(pl) != FLUID_PLAYER_PLAYING) end_of_music = n;
        if (end_of_music < 0 && n > (int64_t)(seconds * rate) + (int64_t)rate) end_of_music = n; /* a stuck player */
        if (end_of_music >= 0) {
            float pk = 0;
            for (int i = 0; i < FS_BLOCK * 2; i++) pk = fabsf(p[i]) > pk ? fabsf(p[i]) : pk;
            if (pk < FS_SILENCE || n - end_of_music >= (int64_t)(FS_TAIL_S * rate)) break;
        }
    }
    if (!s) out->frames = n;
done:
    if (s) ca_audio_free(out);
    if (pl) {
        fluid_player_stop(pl);
        delete_fluid_player(pl);
    }
    if (syn) delete_fluid_synth(syn);
    if (st) delete_fluid_settings(st);
    free(mid);
    return s;
}
#endif

ca_status ca_render_midi(const cm_file *f, const char *name, const ca_render_opts *opts, ca_audio *out,
                         ca_render_info *info, ca_error *err) {
    if (!name) name = "<midi>";
    if (!out) return ca__fail(err, CA_E_ARG, name, "ca_render_midi: NULL output");
    memset(out, 0, sizeof *out);
    if (info) memset(info, 0, sizeof *info);
    if (!f) return ca__fail(err, CA_E_ARG, name, "ca_render_midi: NULL MIDI file");
    const int rate = opts && opts->rate ? opts->rate : CA_SYNTH_DEFAULT_RATE;
    const int channels = opts && opts->channels ? opts->channels : 2;
    if (rate < CA_MIN_RATE || rate > CA_MAX_RATE)
        return ca__fail(err, CA_E_ARG, name, "sample rate %d Hz (expected %d..%d)", rate, CA_MIN_RATE, CA_MAX_RATE);
    if (channels != 1 && channels != 2)
        return ca__fail(err, CA_E_ARG, name, "%d channels (expected 1 or 2)", channels);
    ca_renderer r = ca_render_choose(opts);
    const char *sf2 = NULL;
    if (r == CA_RENDERER_FLUIDSYNTH) {
        if (!ca_have_fluidsynth())
            return ca__fail(err, CA_E_UNSUPPORTED, name,
                            "cannot render with FluidSynth: cantor was built without it (install "
                            "libfluidsynth-dev and rebuild, or use the built-in renderer)");
        sf2 = opts && opts->soundfont ? opts->soundfont : ca_find_soundfont();
        if (!sf2)
            return ca__fail(err, CA_E_UNSUPPORTED, name,
                            "cannot render with FluidSynth: no General MIDI SoundFont found (install "
                            "timgm6mb-soundfont or fluid-soundfont-gm, or name a .sf2 file)");
        ca_status s = check_soundfont(sf2, err);
        if (s) return s;
    } else if (r != CA_RENDERER_BUILTIN) {
        return ca__fail(err, CA_E_ARG, name, "unknown renderer %d", (int)r);
    }
    cm_notes notes;
    memset(&notes, 0, sizeof notes);
    cm_error ce;
    memset(&ce, 0, sizeof ce);
    cm_notes_opts no = {.sustain = !(opts && opts->no_sustain), .skip_drums = false};
    if (cm_notes_extract(f, &no, &notes, &ce) != CM_OK) return midi_fail(err, &ce, name);
    ca_status s = CA_OK;
    if (r == CA_RENDERER_BUILTIN) {
        ca_synth_opts so = {.rate = rate, .channels = channels, .gain = opts ? opts->gain : 0,
                            .seed = opts ? opts->seed : 0};
        s = ca_synth_render(&notes, &so, out, err);
        if (s && err) { /* name the MIDI too */
            char msg[700];
            memcpy(msg, err->message, sizeof msg - 1);
            msg[sizeof msg - 1] = 0;
            ca__fail(err, s, name, "%s", msg);
        }
    } else {
#ifdef CT_HAVE_FLUIDSYNTH
        double gain = opts && opts->gain != 0 ? opts->gain : 2.0;
        s = render_fluidsynth(f, name, sf2, notes.end_s, rate, gain, out, err);
        if (!s) s = ca_limit(out, CA_SYNTH_CEILING, err);
        if (!s && channels == 1) {
            ca_audio mono;
            s = ca_audio_to_mono(out, &mono, err);
            ca_audio_free(out);
            if (!s) *out = mono;
        }
        if (s) ca_audio_free(out);
#endif
    }
    if (!s && info) {
        info->renderer = r;
        if (sf2) snprintf(info->soundfont, sizeof info->soundfont, "%s", sf2);
        info->notes = notes.n_notes;
        info->midi_seconds = notes.end_s;
        info->frames = out->frames;
        info->rate = out->rate;
        info->channels = out->channels;
        info->peak = peak_of(out);
    }
    cm_notes_free(&notes);
    return s;
}

ca_status ca_render_file(const char *midi_path, const char *out_path, const ca_render_opts *opts,
                         ca_render_info *info, ca_error *err) {
    if (info) memset(info, 0, sizeof *info);
    if (!midi_path || !out_path) return ca__fail(err, CA_E_ARG, NULL, "ca_render_file: NULL path");
    ca_format fmt = opts && opts->write.format != CA_FORMAT_AUTO ? opts->write.format : ca_format_from_path(out_path);
    if (fmt == CA_FORMAT_AUTO) {
        const char *dot = strrchr(out_path, '.');
        const char *slash = strrchr(out_path, '/');
        if (dot && slash && dot < slash) dot = NULL;
        return ca__fail(err, CA_E_FORMAT, out_path,
                        "unknown audio file extension '%s' (expected .wav, .flac or .ogg, or choose the "
                        "format explicitly)", dot ? dot : "");
    }
    if (!ca_have_sndfile())
        return ca__fail(err, CA_E_UNSUPPORTED, out_path,
                        "cannot write audio: cantor was built without libsndfile (install libsndfile1-dev "
                        "and rebuild)");
    cm_file *f = NULL;
    cm_error ce;
    memset(&ce, 0, sizeof ce);
    if (cm_read_file(midi_path, &f, &ce) != CM_OK) return midi_fail(err, &ce, midi_path);
    ca_audio a;
    ca_status s = ca_render_midi(f, midi_path, opts, &a, info, err);
    cm_file_free(f);
    if (s) return s;
    ca_write_opts wo = opts ? opts->write : (ca_write_opts){0};
    wo.format = fmt;
    s = ca_audio_write(out_path, &a, &wo, err);
    ca_audio_free(&a);
    return s;
}
