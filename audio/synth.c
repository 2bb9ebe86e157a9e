/* audio/synth.c — the built-in synthesizer (see synth.h): one additive voice per note, drum
 * sounds for channel 10, a look-ahead limiter. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "audio/synth.h"

#define PI 3.14159265358979323846
#define MAX_PARTIALS 16
#define BLOCK 64

/* ---- timbres --------------------------------------------------------------------------------- */
typedef struct timbre_def {
    const char *name;
    double attack, decay, sustain, release; /* ADSR: seconds, level, seconds */
    double t60, t60_semis;  /* decaying timbres: the fundamental's T60 at middle C, halving every
                               t60_semis semitones up; t60 = 0: sustained */
    double hdecay;          /* partial h decays (1 + hdecay (h - 1)) times faster */
    double vib_depth, vib_rate, vib_delay; /* vibrato: relative depth, Hz, onset (s) */
    double level;           /* loudness balance between timbres */
} timbre_def;

static const timbre_def TIMBRES[CA_TIMBRE_COUNT] = {
    [CA_TIMBRE_PIANO] = {"piano", 0.002, 0, 1, 0.25, 3.0, 18, 0.35, 0, 0, 0, 1.0},
    [CA_TIMBRE_MALLET] = {"mallet", 0.001, 0, 1, 0.5, 1.6, 24, 0.9, 0, 0, 0, 0.8},
    [CA_TIMBRE_ORGAN] = {"organ", 0.01, 0, 1, 0.07, 0, 0, 0, 0, 0, 0, 0.5},
    [CA_TIMBRE_PLUCKED] = {"plucked", 0.002, 0, 1, 0.15, 2.5, 24, 0.5, 0, 0, 0, 0.9},
    [CA_TIMBRE_BASS] = {"bass", 0.006, 0, 1, 0.1, 2.2, 24, 0.6, 0, 0, 0, 1.0},
    [CA_TIMBRE_STRINGS] = {"strings", 0.12, 0.25, 0.85, 0.35, 0, 0, 0, 0.0035, 5.5, 0.25, 0.6},
    [CA_TIMBRE_BRASS] = {"brass", 0.04, 0.15, 0.8, 0.12, 0, 0, 0, 0.002, 5.0, 0.3, 0.6},
    [CA_TIMBRE_REED] = {"reed", 0.03, 0.1, 0.85, 0.1, 0, 0, 0, 0.002, 5.0, 0.3, 0.6},
    [CA_TIMBRE_PIPE] = {"pipe", 0.06, 0.1, 0.9, 0.12, 0, 0, 0, 0.004, 5.0, 0.2, 0.7},
    [CA_TIMBRE_LEAD] = {"lead", 0.01, 0.1, 0.8, 0.1, 0, 0, 0, 0.003, 6.0, 0.25, 0.45},
    [CA_TIMBRE_PAD] = {"pad", 0.4, 0.5, 0.8, 0.9, 0, 0, 0, 0.0015, 4.0, 0, 0.5},
    [CA_TIMBRE_DRUMS] = {"drums", 0, 0, 1, 2.5, 0, 0, 0, 0, 0, 0, 1.0},
};

ca_timbre ca_synth_timbre(int program, bool is_drum) {
    if (is_drum) return CA_TIMBRE_DRUMS;
    int p = program < 0 ? 0 : program > 127 ? 127 : program;
    if (p < 8) return CA_TIMBRE_PIANO;
    if (p < 16) return CA_TIMBRE_MALLET;
    if (p < 24) return CA_TIMBRE_ORGAN;
    if (p < 32) return CA_TIMBRE_PLUCKED;
    if (p < 40) return CA_TIMBRE_BASS;
    if (p == 45 || p == 46) return CA_TIMBRE_PLUCKED; /* pizzicato, harp */
    if (p == 47) return CA_TIMBRE_BASS;               /* timpani */
    if (p < 56) return CA_TIMBRE_STRINGS;
    if (p < 64) return CA_TIMBRE_BRASS;
    if (p < 72) return CA_TIMBRE_REED;
    if (p < 80) return CA_TIMBRE_PIPE;
    if (p < 88) return CA_TIMBRE_LEAD;
    if (p < 104) return CA_TIMBRE_PAD;
    if (p < 112) return CA_TIMBRE_PLUCKED;
    if (p < 120) return CA_TIMBRE_MALLET;
    return CA_TIMBRE_PAD;
}

const char *ca_timbre_name(ca_timbre t) {
    return t >= 0 && t < CA_TIMBRE_COUNT ? TIMBRES[t].name : "?";
}

double ca_timbre_release_s(ca_timbre t) {
    return t >= 0 && t < CA_TIMBRE_COUNT ? TIMBRES[t].release : 0;
}

/* Partials of a tonal timbre: frequency ratios and amplitudes; returns their count. */
static int partials(ca_timbre t, double vel01, double *ratio, double *amp) {
    static const double mallet_r[] = {1, 2.76, 5.40, 8.93, 13.34}, mallet_a[] = {1, .45, .22, .10, .05};
    static const double organ_r[] = {0.5, 1, 1.5, 2, 3, 4, 5, 6, 8};
    static const double organ_a[] = {.45, 1, .5, .55, .35, .3, .12, .15, .12};
    static const double bass_a[] = {1, .55, .3, .16, .08, .04};
    static const double pipe_a[] = {1, .22, .08, .03};
    int n = 0;
    switch (t) {
    case CA_TIMBRE_PIANO:
        for (n = 0; n < 12; n++) {
            double h = n + 1;
            ratio[n] = h * sqrt(1 + 0.0003 * h * h);
            amp[n] = pow(h, -1.2) * exp(-(h - 1) * (0.45 - 0.3 * vel01));
        }
        break;
    case CA_TIMBRE_MALLET:
        for (n = 0; n < 5; n++) ratio[n] = mallet_r[n], amp[n] = mallet_a[n];
        break;
    case CA_TIMBRE_ORGAN:
        for (n = 0; n < 9; n++) ratio[n] = organ_r[n], amp[n] = organ_a[n];
        break;
    case CA_TIMBRE_PLUCKED:
        for (n = 0; n < 14; n++) {
            double h = n + 1;
            ratio[n] = h;
            amp[n] = (fabs(sin(PI * h * 0.18)) + 0.03) / h;
        }
        break;
    case CA_TIMBRE_BASS:
        for (n = 0; n < 6; n++) ratio[n] = n + 1, amp[n] = bass_a[n];
        break;
    case CA_TIMBRE_STRINGS:
    case CA_TIMBRE_BRASS:
        for (n = 0; n < 14; n++) {
            double h = n + 1;
            ratio[n] = h;
            amp[n] = t == CA_TIMBRE_BRASS ? pow(h, -0.9) : exp(-(h - 1) * 0.05) / h;
        }
        break;
    case CA_TIMBRE_REED:
        for (n = 0; n < 13; n++) {
            double h = n + 1;
            ratio[n] = h;
            amp[n] = (n % 2 == 0 ? 1.0 : 0.25) / h;
        }
        break;
    case CA_TIMBRE_PIPE:
        for (n = 0; n < 4; n++) ratio[n] = n + 1, amp[n] = pipe_a[n];
        break;
    case CA_TIMBRE_LEAD:
        for (n = 0; n < 8; n++) ratio[n] = 2 * n + 1, amp[n] = 1.0 / (2 * n + 1);
        break;
    case CA_TIMBRE_PAD:
        for (n = 0; n < 10; n++) ratio[n] = n + 1, amp[n] = pow(n + 1, -1.6);
        break;
    default: break;
    }
    return n;
}

/* ---- drums ----------------------------------------------------------------------------------- */
typedef enum drum_kind { KICK, SNARE, CLAP, SIDESTICK, HAT_CLOSED, HAT_OPEN, CYMBAL, RIDE, TOM, OTHER } drum_kind;

static drum_kind drum_of(int key) {
    switch (key) {
    case 35: case 36: return KICK;
    case 38: case 40: return SNARE;
    case 39: return CLAP;
    case 37: return SIDESTICK;
    case 42: case 44: return HAT_CLOSED;
    case 46: return HAT_OPEN;
    case 49: case 52: case 55: case 57: return CYMBAL;
    case 51: case 53: case 59: return RIDE;
    case 41: case 43: case 45: case 47: case 48: case 50: return TOM;
    default: return OTHER;
    }
}

static const double DRUM_LEN[] = {
    [KICK] = 0.6, [SNARE] = 0.5, [CLAP] = 0.35, [SIDESTICK] = 0.2, [HAT_CLOSED] = 0.2,
    [HAT_OPEN] = 0.9, [CYMBAL] = 2.5, [RIDE] = 2.0, [TOM] = 0.9, [OTHER] = 0.45,
};

double ca_synth_drum_length_s(int key) { return DRUM_LEN[drum_of(key)]; }

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in [-1, 1) */
static double noise(uint64_t *s) { return (double)(splitmix64(s) >> 11) * (2.0 / 9007199254740992.0) - 1; }

/* ---- timing ---------------------------------------------------------------------------------- */
double ca_synth_note_end_s(const cm_note *n) {
    if (n->is_drum) return n->start_s + ca_synth_drum_length_s(n->pitch);
    double dur = n->end_s - n->start_s;
    if (!(dur >= CA_SYNTH_MIN_NOTE_S)) dur = CA_SYNTH_MIN_NOTE_S;
    return n->start_s + dur + ca_timbre_release_s(ca_synth_timbre(n->program, false));
}

static double synth_seconds(const cm_notes *notes) {
    double t = notes->end_s > 0 ? notes->end_s : 0;
    for (int64_t i = 0; i < notes->n_notes; i++) {
        double e = ca_synth_note_end_s(&notes->notes[i]);
        if (e > t) t = e;
    }
    return t;
}

static int64_t frames_of(double seconds, int rate) {
    double f = ceil(seconds * rate - 1e-7);
    if (!(f > 0)) return 0;
    if (f > 4e18) return INT64_MAX / 2;
    return (int64_t)f;
}

int64_t ca_synth_frames(const cm_notes *notes, int rate) {
    if (!notes || rate <= 0) return 0;
    return frames_of(synth_seconds(notes), rate);
}

/* ---- voices ---------------------------------------------------------------------------------- */
typedef struct mix {
    float *out;
    int64_t frames;
    int channels, rate;
    double gl, gr; /* pan gains (mono: gl only) */
} mix;

static void put(const mix *m, int64_t f, double v) {
    if (m->channels == 1) {
        m->out[f] += (float)(v * m->gl);
    } else {
        m->out[f * 2] += (float)(v * m->gl);
        m->out[f * 2 + 1] += (float)(v * m->gr);
    }
}

static void set_pan(mix *m, double pan) {
    if (m->channels == 1) {
        m->gl = 1.0 / sqrt(2.0);
        m->gr = 0;
    } else {
        m->gl = cos(pan * PI / 2);
        m->gr = sin(pan * PI / 2);
    }
}

static double envelope(const timbre_def *d, double t, double tr) {
    double pre = t < tr ? t : tr, e;
    if (pre < d->attack) e = pre / d->attack;
    else if (pre < d->attack + d->decay) e = 1 - (1 - d->sustain) * (pre - d->attack) / d->decay;
    else e = d->sustain;
    if (t >= tr) {
        double x = (t - tr) / d->release;
        e = x >= 1 ? 0 : e * exp(-5 * x) * (1 - x);
    }
    return e;
}

static void render_tonal(const cm_note *n, double gain, mix *m) {
    const ca_timbre t = ca_synth_timbre(n->program, false);
    const timbre_def *d = &TIMBRES[t];
    const double rate = m->rate;
    double dur = n->end_s - n->start_s;
    if (!(dur >= CA_SYNTH_MIN_NOTE_S)) dur = CA_SYNTH_MIN_NOTE_S;
    const int64_t s0 = (int64_t)llround(n->start_s * rate);
    int64_t nf = frames_of(dur + d->release, m->rate);
    if (s0 >= m->frames) return;
    if (nf > m->frames - s0) nf = m->frames - s0;
    const double f0 = 440.0 * pow(2.0, (n->pitch - 69) / 12.0);
    const double vel01 = n->velocity / 127.0;
    double ratio[MAX_PARTIALS], amp[MAX_PARTIALS];
    int np = partials(t, vel01, ratio, amp);
    double a[MAX_PARTIALS], om[MAX_PARTIALS], r[MAX_PARTIALS];
    double zr[MAX_PARTIALS], zi[MAX_PARTIALS], wr[MAX_PARTIALS], wi[MAX_PARTIALS];
    int k = 0;
    double sq = 0;
    double t60 = 0;
    if (d->t60 > 0) {
        t60 = d->t60 * pow(2.0, -(n->pitch - 60) / d->t60_semis);
        if (t60 < 0.3) t60 = 0.3;
        if (t60 > 20) t60 = 20;
    }
    for (int p = 0; p < np; p++) {
        double f = f0 * ratio[p];
        if (f >= 0.45 * rate) continue; /* above the band: it would alias */
        a[k] = amp[p];
        sq += amp[p] * amp[p];
        om[k] = 2 * PI * f / rate;
        r[k] = t60 > 0 ? exp(-6.907755 * (1 + d->hdecay * p) / (t60 * rate)) : 1.0;
        zr[k] = 1;
        zi[k] = 0;
        wr[k] = r[k] * cos(om[k]);
        wi[k] = r[k] * sin(om[k]);
        k++;
    }
    if (k == 0 || sq <= 0) return;
    const double g = gain * d->level / sqrt(sq);
    for (int p = 0; p < k; p++) a[p] *= g;
    double buf[BLOCK];
    for (int64_t b0 = 0; b0 < nf; b0 += BLOCK) {
        const int nb = (int)(nf - b0 < BLOCK ? nf - b0 : BLOCK);
        const double tb = (b0 + nb / 2) / rate;
        if (d->vib_depth > 0) {
            double ramp = (tb - d->vib_delay) / 0.3;
            ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
            double fm = 1 + d->vib_depth * ramp * sin(2 * PI * d->vib_rate * tb);
            for (int p = 0; p < k; p++) {
                wr[p] = r[p] * cos(om[p] * fm);
                wi[p] = r[p] * sin(om[p] * fm);
            }
        }
        for (int i = 0; i < nb; i++) buf[i] = 0;
        double level = 0;
        for (int p = 0; p < k; p++) {
            double xr = zr[p], xi = zi[p];
            const double cr = wr[p], ci = wi[p], ap = a[p];
            for (int i = 0; i < nb; i++) {
                buf[i] += ap * xi;
                double nr = xr * cr - xi * ci;
                xi = xr * ci + xi * cr;
                xr = nr;
            }
            zr[p] = xr;
            zi[p] = xi;
            level += fabs(ap) * sqrt(xr * xr + xi * xi);
        }
        for (int i = 0; i < nb; i++) {
            double tt = (b0 + i) / rate;
            put(m, s0 + b0 + i, buf[i] * envelope(d, tt, dur));
        }
        /* a decaying voice that has faded below -100 dB stops early (the rest is silence) */
        if (t60 > 0 && level < 1e-5 * gain && (b0 + nb) / rate > d->attack) break;
    }
}

static void render_drum(const cm_note *n, int64_t index, double gain, uint64_t seed, mix *m) {
    const int key = n->pitch;
    const drum_kind kind = drum_of(key);
    const double len = DRUM_LEN[kind];
    const double rate = m->rate;
    const int64_t s0 = (int64_t)llround(n->start_s * rate);
    int64_t nf = frames_of(len, m->rate);
    if (s0 >= m->frames) return;
    if (nf > m->frames - s0) nf = m->frames - s0;
    uint64_t rs = seed ^ ((uint64_t)index * 0xD1B54A32D192ED03ull);
    (void)splitmix64(&rs);
    double phase = 0, prev = 0, prev2 = 0, lp = 0;
    const double tom_base = 80.0 * pow(2.0, (key - 41) * 0.13);
    const double other_f = 300.0 * pow(2.0, (key - 60) / 24.0);
    const double nyq = 0.45 * rate;
    for (int64_t i = 0; i < nf; i++) {
        const double t = i / rate;
        const double w = noise(&rs);
        const double hp = w - prev;           /* first difference: a high-passed noise */
        const double hp2 = hp - prev2;        /* second difference: brighter still */
        prev2 = hp;
        prev = w;
        lp += 0.25 * (w - lp);                /* a darker noise */
        double v = 0, f;
        switch (kind) {
        case KICK:
            f = 50 + 110 * exp(-t / 0.04);
            phase += 2 * PI * f / rate;
            v = sin(phase) * exp(-t / 0.16) + 0.25 * w * exp(-t / 0.004);
            break;
        case SNARE:
            v = (0.6 * (185 < nyq ? sin(2 * PI * 185 * t) : 0) + 0.3 * (330 < nyq ? sin(2 * PI * 330 * t) : 0)) *
                    exp(-t / 0.05) + 0.5 * hp * exp(-t / 0.11);
            break;
        case CLAP: {
            double e = 0;
            for (int b = 0; b < 3; b++)
                if (t >= 0.01 * b) e += exp(-(t - 0.01 * b) / 0.008);
            if (t >= 0.02) e += 0.6 * exp(-(t - 0.02) / 0.08);
            v = 0.5 * hp * e;
            break;
        }
        case SIDESTICK:
            v = (800 < nyq ? sin(2 * PI * 800 * t) : 0) * exp(-t / 0.015) * 0.6 + 0.4 * hp * exp(-t / 0.01);
            break;
        case HAT_CLOSED: v = 0.3 * hp2 * exp(-t / 0.02); break;
        case HAT_OPEN: v = 0.25 * hp2 * exp(-t / 0.2); break;
        case CYMBAL: v = 0.25 * hp2 * exp(-t / 0.6); break;
        case RIDE:
            v = 0.15 * hp2 * exp(-t / 0.4) + 0.15 * (620 < nyq ? sin(2 * PI * 620 * t) : 0) * exp(-t / 0.5);
            break;
        case TOM:
            f = tom_base * (1 + 0.6 * exp(-t / 0.06));
            phase += 2 * PI * f / rate;
            v = sin(phase) * exp(-t / 0.22) + 0.1 * w * exp(-t / 0.01);
            break;
        case OTHER:
            phase += 2 * PI * (other_f < nyq ? other_f : 0) / rate;
            v = 0.5 * sin(phase) * exp(-t / 0.08) + 0.8 * lp * exp(-t / 0.05);
            break;
        }
        double fade = (len - t) / (0.1 * len); /* reach exactly 0 at the sound's end */
        if (fade < 1) v *= fade > 0 ? fade : 0;
        put(m, s0 + i, v * gain);
    }
}

static double drum_pan(int key) {
    switch (drum_of(key)) {
    case HAT_CLOSED: case HAT_OPEN: return 0.62;
    case CYMBAL: return 0.35;
    case RIDE: return 0.66;
    case TOM: {
        double p = 0.3 + (key - 41) / 9.0 * 0.4;
        return p < 0.25 ? 0.25 : p > 0.75 ? 0.75 : p;
    }
    case OTHER: return 0.55;
    default: return 0.5;
    }
}

/* ---- the renderer ---------------------------------------------------------------------------- */
ca_status ca_synth_render(const cm_notes *notes, const ca_synth_opts *opts, ca_audio *out, ca_error *err) {
    if (!out) return ca__fail(err, CA_E_ARG, NULL, "ca_synth_render: NULL output");
    memset(out, 0, sizeof *out);
    if (!notes) return ca__fail(err, CA_E_ARG, NULL, "ca_synth_render: NULL notes");
    if (notes->n_notes > 0 && !notes->notes) return ca__fail(err, CA_E_ARG, NULL, "ca_synth_render: NULL notes array");
    const int rate = opts && opts->rate ? opts->rate : CA_SYNTH_DEFAULT_RATE;
    const int channels = opts && opts->channels ? opts->channels : 2;
    const double master = opts && opts->gain != 0 ? opts->gain : 0.3;
    const uint64_t seed = opts ? opts->seed : 0;
    if (rate < CA_MIN_RATE || rate > CA_MAX_RATE)
        return ca__fail(err, CA_E_ARG, NULL, "ca_synth_render: sample rate %d Hz (expected %d..%d)", rate,
                        CA_MIN_RATE, CA_MAX_RATE);
    if (channels != 1 && channels != 2)
        return ca__fail(err, CA_E_ARG, NULL, "ca_synth_render: %d channels (expected 1 or 2)", channels);
    if (!(master > 0 && master < 1e6))
        return ca__fail(err, CA_E_ARG, NULL, "ca_synth_render: gain %g (expected > 0)", master);
    for (int64_t i = 0; i < notes->n_notes; i++) {
        const cm_note *n = &notes->notes[i];
        if (!isfinite(n->start_s) || !isfinite(n->end_s) || n->start_s < 0 || n->pitch > 127)
            return ca__fail(err, CA_E_ARG, NULL,
                            "ca_synth_render: note %lld (pitch %d) starts at %g s and ends at %g s "
                            "(times must be finite and >= 0)",
                            (long long)i, n->pitch, n->start_s, n->end_s);
    }
    const double seconds = synth_seconds(notes);
    if (seconds * rate * channels > (double)CA_MAX_SAMPLES)
        return ca__fail(err, CA_E_LIMIT, NULL,
                        "ca_synth_render: %.1f s at %d Hz x %d channels exceeds CA_MAX_SAMPLES (%lld)",
                        seconds, rate, channels, (long long)CA_MAX_SAMPLES);
    ca_status s = ca_audio_alloc(out, frames_of(seconds, rate), channels, rate, err);
    if (s) return s;
    mix m = {.out = out->samples, .frames = out->frames, .channels = channels, .rate = rate};
    for (int64_t i = 0; i < notes->n_notes; i++) {
        const cm_note *n = &notes->notes[i];
        if (n->velocity == 0) continue;
        const double g = master * pow(n->velocity / 127.0, 1.8);
        if (n->is_drum) {
            set_pan(&m, drum_pan(n->pitch));
            render_drum(n, i, g, seed, &m);
        } else {
            double pan = 0.5 + (n->pitch - 60) / 96.0;
            set_pan(&m, pan < 0.2 ? 0.2 : pan > 0.8 ? 0.8 : pan);
            render_tonal(n, g, &m);
        }
    }
    s = ca_limit(out, CA_SYNTH_CEILING, err);
    if (s) ca_audio_free(out);
    return s;
}

/* ---- the limiter ----------------------------------------------------------------------------- */
ca_status ca_limit(ca_audio *a, float ceiling, ca_error *err) {
    if (!a || (!a->samples && a->frames > 0) || a->frames < 0 || a->channels < 1 || a->rate < 1)
        return ca__fail(err, CA_E_ARG, NULL, "ca_limit: invalid audio");
    if (!(ceiling > 0 && ceiling <= 1))
        return ca__fail(err, CA_E_ARG, NULL, "ca_limit: ceiling %g outside (0, 1]", (double)ceiling);
    const int c = a->channels;
    const int64_t nfr = a->frames;
    float *x = a->samples;
    float peak = 0;
    for (int64_t i = 0; i < nfr * c; i++) {
        float v = fabsf(x[i]);
        if (v > peak) peak = v;
    }
    if (peak <= ceiling) return CA_OK;
    float *g = malloc((size_t)nfr * sizeof(float));
    if (!g) return ca__fail(err, CA_E_NOMEM, NULL, "ca_limit: out of memory for %lld frames", (long long)nfr);
    for (int64_t f = 0; f < nfr; f++) {
        float mx = 0;
        for (int k = 0; k < c; k++) {
            float v = fabsf(x[f * c + k]);
            if (v > mx) mx = v;
        }
        g[f] = mx > ceiling ? ceiling / mx : 1.0f;
    }
    /* look-ahead: going backwards, the gain may rise by at most 1/L per frame, so going forward it
     * falls linearly over L frames (2 ms) to the level a peak needs */
    double lookahead = 0.002 * a->rate;
    const float step = (float)(1.0 / (lookahead > 1 ? lookahead : 1));
    for (int64_t f = nfr - 2; f >= 0; f--)
        if (g[f + 1] + step < g[f]) g[f] = g[f + 1] + step;
    /* release: recover towards 1 with a 150 ms time constant, never above the needed gain */
    const double rel = 1 - exp(-1.0 / (0.15 * a->rate));
    double cur = nfr > 0 ? g[0] : 1;
    for (int64_t f = 0; f < nfr; f++) {
        cur += (1 - cur) * rel;
        if (g[f] < cur) cur = g[f];
        for (int k = 0; k < c; k++) {
            float v = (float)(x[f * c + k] * cur);
            x[f * c + k] = v > ceiling ? ceiling : v < -ceiling ? -ceiling : v;
        }
    }
    free(g);
    return CA_OK;
}
