/* audio/melody.c — Magenta's melodies: extraction from polyphonic notes, the one-hot token
 * encoding, and decoding back to notes and MIDI. The rules are documented in melody.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "audio/melody.h"

#define NAME "<melody>"

_Static_assert(CM_MELODY_DEFAULT_NUM_CLASSES ==
                   CM_MELODY_DEFAULT_MAX_PITCH - CM_MELODY_DEFAULT_MIN_PITCH + CM_MELODY_NUM_SPECIAL,
               "default melody classes");
_Static_assert(CM_MELODY_FULL_NUM_CLASSES ==
                   CM_MELODY_FULL_MAX_PITCH - CM_MELODY_FULL_MIN_PITCH + CM_MELODY_NUM_SPECIAL,
               "full-range melody classes");
_Static_assert(CM_MELODY_TOKEN_NO_EVENT == CM_MELODY_NO_EVENT + CM_MELODY_NUM_SPECIAL &&
                   CM_MELODY_TOKEN_NOTE_OFF == CM_MELODY_NOTE_OFF + CM_MELODY_NUM_SPECIAL,
               "special tokens are the special events shifted by NUM_SPECIAL, as in Magenta");

/* ---- the encoding --------------------------------------------------------------------------- */
cm_melody_encoding cm_melody_encoding_default(void) {
    return (cm_melody_encoding){CM_MELODY_DEFAULT_MIN_PITCH, CM_MELODY_DEFAULT_MAX_PITCH};
}

cm_melody_encoding cm_melody_encoding_full(void) {
    return (cm_melody_encoding){CM_MELODY_FULL_MIN_PITCH, CM_MELODY_FULL_MAX_PITCH};
}

bool cm_melody_encoding_valid(cm_melody_encoding e) {
    return e.min_pitch >= 0 && e.max_pitch <= 128 && e.min_pitch < e.max_pitch;
}

int cm_melody_num_classes(cm_melody_encoding e) {
    return cm_melody_encoding_valid(e) ? e.max_pitch - e.min_pitch + CM_MELODY_NUM_SPECIAL : -1;
}

int cm_melody_event_to_token(cm_melody_encoding e, int event) {
    if (!cm_melody_encoding_valid(e)) return -1;
    if (event == CM_MELODY_NO_EVENT || event == CM_MELODY_NOTE_OFF) return event + CM_MELODY_NUM_SPECIAL;
    if (event < e.min_pitch || event >= e.max_pitch) return -1;
    return event - e.min_pitch + CM_MELODY_FIRST_PITCH_TOKEN;
}

int cm_melody_token_to_event(cm_melody_encoding e, int token) {
    int n = cm_melody_num_classes(e);
    if (n < 0 || token < 0 || token >= n) return CM_MELODY_INVALID;
    if (token < CM_MELODY_NUM_SPECIAL) return token - CM_MELODY_NUM_SPECIAL;
    return token - CM_MELODY_FIRST_PITCH_TOKEN + e.min_pitch;
}

/* ---- melodies ------------------------------------------------------------------------------- */
void cm_melody_free(cm_melody *m) {
    if (!m) return;
    free(m->events);
    memset(m, 0, sizeof *m);
}

void cm_melodies_free(cm_melodies *m) {
    if (!m) return;
    for (int64_t i = 0; i < m->n_melodies; i++) cm_melody_free(&m->melodies[i]);
    free(m->melodies);
    memset(m, 0, sizeof *m);
}

cm_melody_opts cm_melody_opts_default(void) {
    return (cm_melody_opts){
        .steps_per_quarter = CM_MELODY_DEFAULT_STEPS_PER_QUARTER,
        .steps_per_bar = 0,
        .range = cm_melody_encoding_default(),
        .range_mode = CM_MELODY_RANGE_OCTAVE,
        .gap_bars = CM_MELODY_DEFAULT_GAP_BARS,
        .min_bars = CM_MELODY_DEFAULT_MIN_BARS,
        .min_unique_pitches = CM_MELODY_DEFAULT_MIN_UNIQUE_PITCHES,
    };
}

/* A growable event buffer: the melody being built. */
typedef struct evbuf {
    int32_t *v;
    int64_t n, cap;
} evbuf;

static bool evbuf_resize(evbuf *b, int64_t n) {
    if (n > b->cap) {
        int64_t cap = b->cap ? b->cap : 64;
        while (cap < n) cap *= 2;
        int32_t *p = realloc(b->v, (size_t)cap * sizeof *p);
        if (!p) return false;
        b->v = p;
        b->cap = cap;
    }
    for (int64_t i = b->n; i < n; i++) b->v[i] = CM_MELODY_NO_EVENT;
    b->n = n;
    return true;
}

/* Melody.set_length when growing: a note still sounding at the old end is ended there. */
static bool evbuf_extend(evbuf *b, int64_t n) {
    int64_t old = b->n;
    if (n <= old) {
        b->n = n;
        return true;
    }
    if (!evbuf_resize(b, n)) return false;
    for (int64_t i = old - 1; i >= 0; i--) {
        if (b->v[i] == CM_MELODY_NOTE_OFF) break;
        if (b->v[i] != CM_MELODY_NO_EVENT) {
            b->v[old] = CM_MELODY_NOTE_OFF;
            break;
        }
    }
    return true;
}

/* One note of an instrument on the grid. */
typedef struct qnote {
    int64_t start, end;  /* grid steps, end > start */
    int pitch;
    int64_t seq;         /* index in the instrument (ties keep note order) */
} qnote;

static int cmp_qnote(const void *a, const void *b) {
    const qnote *x = a, *y = b;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    if (x->pitch != y->pitch) return y->pitch - x->pitch; /* higher pitch first */
    return (x->seq > y->seq) - (x->seq < y->seq);
}

/* The grid: tick -> step (ppq > 0), or seconds -> step at steps_per_second (SMPTE). */
typedef struct grid {
    int ppq, spq;
    double steps_per_second;
} grid;

static int64_t quantize(const grid *g, const cm_note *x, bool end) {
    if (g->ppq > 0) {
        int64_t tick = end ? x->end_tick : x->start_tick;
        if (tick < 0) tick = 0;
        return (tick * g->spq * 2 + g->ppq) / (2 * (int64_t)g->ppq);
    }
    double s = (end ? x->end_s : x->start_s) * g->steps_per_second + 0.5;
    if (!(s >= 0)) return 0;
    if (s > (double)CM_MELODY_MAX_STEPS * 2) return CM_MELODY_MAX_STEPS * 2;
    return (int64_t)s;
}

static int64_t pymod(int64_t a, int64_t m) {
    int64_t r = a % m;
    return r < 0 ? r + m : r;
}

static cm_status check_opts(const cm_melody_opts *o, cm_error *err) {
    if (o->steps_per_quarter < 1 || o->steps_per_quarter > CM_MELODY_MAX_STEPS_PER_QUARTER)
        return cm__fail(err, CM_E_ARG, NAME, -1, -1, "steps_per_quarter %d; expected 1..%d", o->steps_per_quarter,
                        CM_MELODY_MAX_STEPS_PER_QUARTER);
    if (o->steps_per_bar < 0 || o->steps_per_bar > 64 * CM_MELODY_MAX_STEPS_PER_QUARTER)
        return cm__fail(err, CM_E_ARG, NAME, -1, -1, "steps_per_bar %d; expected 0 (from the time signature) or 1..%d",
                        o->steps_per_bar, 64 * CM_MELODY_MAX_STEPS_PER_QUARTER);
    if (!cm_melody_encoding_valid(o->range))
        return cm__fail(err, CM_E_ARG, NAME, -1, -1, "pitch range %d..%d; expected 0 <= min < max <= 128 (max exclusive)",
                        o->range.min_pitch, o->range.max_pitch);
    if (o->range_mode != CM_MELODY_RANGE_OCTAVE && o->range_mode != CM_MELODY_RANGE_DROP)
        return cm__fail(err, CM_E_ARG, NAME, -1, -1, "range_mode %d; expected CM_MELODY_RANGE_OCTAVE or _DROP",
                        (int)o->range_mode);
    if (o->range_mode == CM_MELODY_RANGE_OCTAVE && o->range.max_pitch - o->range.min_pitch < CM_MELODY_NOTES_PER_OCTAVE)
        return cm__fail(err, CM_E_ARG, NAME, -1, -1,
                        "pitch range %d..%d is narrower than an octave: notes cannot be moved into it by "
                        "octaves (widen it or use CM_MELODY_RANGE_DROP)",
                        o->range.min_pitch, o->range.max_pitch);
    if (!(o->gap_bars > 0) || o->gap_bars > 1e6)
        return cm__fail(err, CM_E_ARG, NAME, -1, -1, "gap_bars %g; expected > 0", o->gap_bars);
    if (o->min_bars < 0 || o->min_unique_pitches < 0 || o->max_steps_discard < 0 || o->max_steps_truncate < 0)
        return cm__fail(err, CM_E_ARG, NAME, -1, -1,
                        "min_bars %d, min_unique_pitches %d, max_steps_discard %lld, max_steps_truncate %lld; "
                        "expected none negative",
                        o->min_bars, o->min_unique_pitches, (long long)o->max_steps_discard,
                        (long long)o->max_steps_truncate);
    return CM_OK;
}

/* Steps per bar from opts or the time signature (Magenta: steps_per_bar_in_quantized_sequence). */
static cm_status bar_steps(const cm_melody_opts *o, const cm_tempo_map *tm, int *spb, cm_error *err) {
    if (o->steps_per_bar > 0) {
        *spb = o->steps_per_bar;
        return CM_OK;
    }
    int num = 4, den = 4;
    if (tm && tm->n_time_signatures > 0) {
        num = tm->time_signatures[0].numerator;
        den = tm->time_signatures[0].denominator;
    }
    if (num < 1 || num > 255 || den < 1 || den > 1 << 15)
        return cm__fail(err, CM_E_ARG, NAME, -1, -1, "time signature %d/%d; expected a numerator 1..255 and a "
                        "denominator 1..32768", num, den);
    int64_t q = (int64_t)o->steps_per_quarter * 4 * num;
    if (q % den != 0)
        return cm__fail(err, CM_E_ARG, NAME, -1, -1,
                        "time signature %d/%d at %d steps per quarter gives %g steps per bar, not a whole "
                        "number (set steps_per_bar or a finer steps_per_quarter)",
                        num, den, o->steps_per_quarter, (double)q / den);
    *spb = (int)(q / den);
    return CM_OK;
}

static cm_status push_melody(cm_melodies *out, const evbuf *b, int64_t len, int64_t start_step, int spq, int spb,
                             int ins, const cm_instrument *x, int64_t *cap, cm_error *err) {
    if (out->n_melodies == *cap) {
        int64_t nc = *cap ? *cap * 2 : 8;
        cm_melody *p = realloc(out->melodies, (size_t)nc * sizeof *p);
        if (!p) return cm__fail(err, CM_E_NOMEM, NAME, -1, -1, "out of memory for %lld melodies", (long long)nc);
        out->melodies = p;
        *cap = nc;
    }
    cm_melody *m = &out->melodies[out->n_melodies];
    memset(m, 0, sizeof *m);
    m->events = malloc((size_t)(len > 0 ? len : 1) * sizeof *m->events);
    if (!m->events) return cm__fail(err, CM_E_NOMEM, NAME, -1, -1, "out of memory for a melody of %lld steps", (long long)len);
    memcpy(m->events, b->v, (size_t)len * sizeof *m->events);
    m->n_events = len;
    m->start_step = start_step;
    m->steps_per_quarter = spq;
    m->steps_per_bar = spb;
    m->instrument = ins;
    m->track = x->track;
    m->channel = x->channel;
    m->program = x->program;
    out->n_melodies++;
    return CM_OK;
}

/* Distinct pitch classes among the note-ons of events[0..n). */
static int pitch_classes(const int32_t *v, int64_t n) {
    bool seen[CM_MELODY_NOTES_PER_OCTAVE] = {false};
    int k = 0;
    for (int64_t i = 0; i < n; i++)
        if (v[i] >= 0 && !seen[v[i] % CM_MELODY_NOTES_PER_OCTAVE]) {
            seen[v[i] % CM_MELODY_NOTES_PER_OCTAVE] = true;
            k++;
        }
    return k;
}

/* Melody.transpose(0, min, max): each out-of-range note moved by octaves into [min, max). */
static int64_t squash(int32_t *v, int64_t n, cm_melody_encoding r) {
    int64_t moved = 0;
    for (int64_t i = 0; i < n; i++) {
        if (v[i] < 0) continue;
        if (v[i] < r.min_pitch) {
            v[i] = (int32_t)(r.min_pitch + pymod(v[i] - r.min_pitch, CM_MELODY_NOTES_PER_OCTAVE));
            moved++;
        } else if (v[i] >= r.max_pitch) {
            v[i] = (int32_t)(r.max_pitch - CM_MELODY_NOTES_PER_OCTAVE + pymod(v[i] - r.max_pitch, CM_MELODY_NOTES_PER_OCTAVE));
            moved++;
        }
    }
    return moved;
}

/* The melodies of one instrument, from its notes on the grid q[0..n) (sorted). */
static cm_status instrument_melodies(const qnote *q, int64_t n, const cm_melody_opts *o, int spb, int ins,
                                     const cm_instrument *x, cm_melodies *out, int64_t *cap, evbuf *b,
                                     cm_error *err) {
    cm_melody_stats *st = &out->stats;
    const double gap = o->gap_bars * spb;
    int64_t search = 0, i0 = 0;
    for (;;) {
        while (i0 < n && q[i0].start < search) i0++;
        if (i0 >= n) break;
        /* Melody.from_quantized_sequence from `search` */
        int64_t mstart = q[i0].start - pymod(q[i0].start - search, spb);
        int64_t last_on = -1, last_off = -1;
        b->n = 0;
        for (int64_t j = i0; j < n; j++) {
            int64_t s = q[j].start - mstart, e = q[j].end - mstart;
            if (b->n > 0) {
                if (s == last_on) {  /* the highest note of this step is already there */
                    st->notes_simultaneous_skipped++;
                    continue;
                }
                if ((double)(s - last_off) >= gap) break;
            }
            /* _add_note: set_length(e + 1), then the note from s to e */
            if (!evbuf_extend(b, e + 1))
                return cm__fail(err, CM_E_NOMEM, NAME, -1, -1, "out of memory for a melody of %lld steps", (long long)e + 1);
            b->v[s] = q[j].pitch;
            for (int64_t k = s + 1; k < e; k++) b->v[k] = CM_MELODY_NO_EVENT;
            b->v[e] = CM_MELODY_NOTE_OFF;
            last_on = s;
            last_off = e;
        }
        if (b->n == 0) break;
        int64_t len = b->n;
        if (b->v[len - 1] == CM_MELODY_NOTE_OFF) len--;  /* strip the final note-off */
        b->n = len;
        if (o->pad_end && len % spb != 0) {
            if (!evbuf_extend(b, len + (spb - len % spb)))
                return cm__fail(err, CM_E_NOMEM, NAME, -1, -1, "out of memory padding a melody");
            len = b->n;
        }
        int64_t end_step = mstart + len;
        search = end_step + pymod(search - end_step, spb);  /* the next bar line */

        if (len - 1 < (int64_t)spb * o->min_bars) {
            st->discarded_too_short++;
            continue;
        }
        if (o->max_steps_discard > 0 && len > o->max_steps_discard) {
            st->discarded_too_long++;
            continue;
        }
        if (o->max_steps_truncate > 0 && len > o->max_steps_truncate) {
            int64_t t = o->max_steps_truncate;
            if (o->pad_end) t -= o->max_steps_truncate % spb;
            if (!evbuf_extend(b, t))
                return cm__fail(err, CM_E_NOMEM, NAME, -1, -1, "out of memory truncating a melody");
            len = t;
            st->truncated++;
        }
        if (pitch_classes(b->v, len) < o->min_unique_pitches) {
            st->discarded_too_few_pitches++;
            continue;
        }
        if (o->range_mode == CM_MELODY_RANGE_OCTAVE) st->notes_out_of_range_moved += squash(b->v, len, o->range);
        cm_status s = push_melody(out, b, len, mstart, o->steps_per_quarter, spb, ins, x, cap, err);
        if (s) return s;
    }
    return CM_OK;
}

cm_status cm_melody_extract(const cm_notes *notes, const cm_tempo_map *tm, const cm_melody_opts *opts,
                            cm_melodies *out, cm_error *err) {
    if (!out) return cm__fail(err, CM_E_ARG, NAME, -1, -1, "cm_melody_extract: NULL out");
    memset(out, 0, sizeof *out);
    if (!notes) return cm__fail(err, CM_E_ARG, NAME, -1, -1, "cm_melody_extract: NULL notes");
    cm_melody_opts o = opts ? *opts : cm_melody_opts_default();
    cm_status s = check_opts(&o, err);
    int spb = 0;
    if (!s) s = bar_steps(&o, tm, &spb, err);
    if (s) return s;
    grid g = {.ppq = tm ? tm->division.ppq : CM_DEFAULT_PPQ, .spq = o.steps_per_quarter};
    if (g.ppq <= 0) {  /* SMPTE: seconds at the first tempo */
        uint32_t us = tm && tm->n_tempos > 0 ? tm->tempos[0].us_per_quarter : CM_DEFAULT_TEMPO;
        g.steps_per_second = o.steps_per_quarter * 1e6 / (us ? us : CM_DEFAULT_TEMPO);
    }
    int64_t most = 0;
    for (int i = 0; i < notes->n_instruments; i++)
        if (notes->instruments[i].count > most) most = notes->instruments[i].count;
    qnote *q = malloc((size_t)(most > 0 ? most : 1) * sizeof *q);
    evbuf b = {0};
    int64_t cap = 0;
    if (!q) s = cm__fail(err, CM_E_NOMEM, NAME, -1, -1, "out of memory for %lld notes", (long long)most);
    for (int i = 0; !s && i < notes->n_instruments; i++) {
        const cm_instrument *x = &notes->instruments[i];
        if (x->first < 0 || x->count < 0 || x->first > notes->n_notes || x->count > notes->n_notes - x->first) {
            s = cm__fail(err, CM_E_ARG, NAME, -1, -1, "instrument %d: notes %lld..+%lld of %lld; expected a range "
                         "inside the notes", i, (long long)x->first, (long long)x->count, (long long)notes->n_notes);
            break;
        }
        out->stats.instruments++;
        if (x->is_drum && !o.keep_drums) {
            out->stats.drum_instruments_skipped++;
            continue;
        }
        int64_t n = 0;
        for (int64_t k = 0; !s && k < x->count; k++) {
            const cm_note *nt = &notes->notes[x->first + k];
            if (nt->velocity == 0) {
                out->stats.notes_zero_velocity++;
                continue;
            }
            if (nt->pitch > 127) {
                s = cm__fail(err, CM_E_ARG, NAME, -1, -1, "note %lld: pitch %d; expected 0..127",
                             (long long)(x->first + k), nt->pitch);
                break;
            }
            if (o.range_mode == CM_MELODY_RANGE_DROP && (nt->pitch < o.range.min_pitch || nt->pitch >= o.range.max_pitch)) {
                out->stats.notes_out_of_range_dropped++;
                continue;
            }
            qnote z = {quantize(&g, nt, false), quantize(&g, nt, true), nt->pitch, k};
            if (z.end < z.start) z.end = z.start;
            if (z.end == z.start) z.end++;
            if (z.end > CM_MELODY_MAX_STEPS)
                s = cm__fail(err, CM_E_LIMIT, NAME, -1, -1,
                             "note %lld (pitch %d, ticks %lld..%lld) ends at grid step %lld, beyond the limit of "
                             "%lld (CM_MELODY_MAX_STEPS)",
                             (long long)(x->first + k), nt->pitch, (long long)nt->start_tick, (long long)nt->end_tick,
                             (long long)z.end, (long long)CM_MELODY_MAX_STEPS);
            q[n++] = z;
        }
        if (s) break;
        qsort(q, (size_t)n, sizeof *q, cmp_qnote);
        s = instrument_melodies(q, n, &o, spb, i, x, out, &cap, &b, err);
    }
    free(q);
    free(b.v);
    if (s) {
        cm_melody_stats keep = out->stats;
        cm_melodies_free(out);
        out->stats = keep;
    }
    return s;
}

/* ---- tokens --------------------------------------------------------------------------------- */
cm_status cm_melody_encode(const cm_melody *m, cm_melody_encoding e, int32_t **tokens, int64_t *n_tokens,
                           cm_error *err) {
    if (tokens) *tokens = NULL;
    if (n_tokens) *n_tokens = 0;
    if (!m || !tokens || !n_tokens || m->n_events < 0 || (m->n_events > 0 && !m->events))
        return cm__fail(err, CM_E_ARG, NAME, -1, -1, "cm_melody_encode: NULL or empty argument");
    if (!cm_melody_encoding_valid(e))
        return cm__fail(err, CM_E_ARG, NAME, -1, -1, "pitch range %d..%d; expected 0 <= min < max <= 128",
                        e.min_pitch, e.max_pitch);
    int32_t *t = malloc((size_t)(m->n_events > 0 ? m->n_events : 1) * sizeof *t);
    if (!t) return cm__fail(err, CM_E_NOMEM, NAME, -1, -1, "out of memory for %lld tokens", (long long)m->n_events);
    for (int64_t i = 0; i < m->n_events; i++) {
        int k = cm_melody_event_to_token(e, m->events[i]);
        if (k < 0) {
            free(t);
            if (m->events[i] >= 0 && m->events[i] <= 127)
                return cm__fail(err, CM_E_ARG, NAME, -1, -1,
                                "event %lld: pitch %d outside the encoding's range %d..%d (max exclusive); "
                                "extract with that range, or use the full range",
                                (long long)i, m->events[i], e.min_pitch, e.max_pitch);
            return cm__fail(err, CM_E_ARG, NAME, -1, -1, "event %lld: %d is not a melody event (expected -2, -1 or "
                            "a pitch 0..127)", (long long)i, m->events[i]);
        }
        t[i] = k;
    }
    *tokens = t;
    *n_tokens = m->n_events;
    return CM_OK;
}

cm_status cm_melody_decode(const int32_t *tokens, int64_t n, cm_melody_encoding e, int steps_per_quarter,
                           cm_melody *out, cm_error *err) {
    if (!out) return cm__fail(err, CM_E_ARG, NAME, -1, -1, "cm_melody_decode: NULL out");
    memset(out, 0, sizeof *out);
    if (n < 0 || (n > 0 && !tokens))
        return cm__fail(err, CM_E_ARG, NAME, -1, -1, "cm_melody_decode: %lld tokens at %p", (long long)n,
                        (const void *)tokens);
    if (!cm_melody_encoding_valid(e))
        return cm__fail(err, CM_E_ARG, NAME, -1, -1, "pitch range %d..%d; expected 0 <= min < max <= 128",
                        e.min_pitch, e.max_pitch);
    if (steps_per_quarter < 1 || steps_per_quarter > CM_MELODY_MAX_STEPS_PER_QUARTER)
        return cm__fail(err, CM_E_ARG, NAME, -1, -1, "steps_per_quarter %d; expected 1..%d", steps_per_quarter,
                        CM_MELODY_MAX_STEPS_PER_QUARTER);
    if (n > CM_MELODY_MAX_STEPS)
        return cm__fail(err, CM_E_LIMIT, NAME, -1, -1, "%lld tokens, more than the limit of %lld (CM_MELODY_MAX_STEPS)",
                        (long long)n, (long long)CM_MELODY_MAX_STEPS);
    int32_t *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    if (!v) return cm__fail(err, CM_E_NOMEM, NAME, -1, -1, "out of memory for %lld events", (long long)n);
    bool started = false;
    for (int64_t i = 0; i < n; i++) {
        int ev = cm_melody_token_to_event(e, tokens[i]);
        if (ev == CM_MELODY_INVALID) {
            free(v);
            return cm__fail(err, CM_E_ARG, NAME, -1, -1, "token %lld at position %lld: expected 0..%d (%d..%d is "
                            "the range of this encoding)", (long long)tokens[i], (long long)i,
                            cm_melody_num_classes(e) - 1, e.min_pitch, e.max_pitch);
        }
        if (ev >= 0) started = true;
        v[i] = !started ? CM_MELODY_NO_EVENT : ev;
    }
    out->events = v;
    out->n_events = n;
    out->steps_per_quarter = steps_per_quarter;
    out->steps_per_bar = 4 * steps_per_quarter;
    out->instrument = -1;
    return CM_OK;
}

/* ---- back to notes and MIDI ----------------------------------------------------------------- */
cm_melody_render cm_melody_render_default(void) {
    return (cm_melody_render){CM_MELODY_DEFAULT_QPM, CM_DEFAULT_PPQ, CM_MELODY_DEFAULT_VELOCITY, 0, 0};
}

static cm_status check_render(const cm_melody *m, const cm_melody_render *r, cm_error *err) {
    if (!m || m->n_events < 0 || (m->n_events > 0 && !m->events))
        return cm__fail(err, CM_E_ARG, NAME, -1, -1, "NULL or invalid melody");
    if (m->steps_per_quarter < 1 || m->steps_per_quarter > CM_MELODY_MAX_STEPS_PER_QUARTER || m->start_step < 0 ||
        m->start_step > CM_MELODY_MAX_STEPS || m->n_events > CM_MELODY_MAX_STEPS)
        return cm__fail(err, CM_E_ARG, NAME, -1, -1,
                        "melody with %d steps per quarter, start step %lld, %lld events; expected 1..%d steps per "
                        "quarter and steps within 0..%lld",
                        m->steps_per_quarter, (long long)m->start_step, (long long)m->n_events,
                        CM_MELODY_MAX_STEPS_PER_QUARTER, (long long)CM_MELODY_MAX_STEPS);
    if (!(r->qpm >= 4 && r->qpm <= 1000) || r->ppq < 1 || r->ppq > 0x7FFF || r->velocity < 1 || r->velocity > 127 ||
        r->program < 0 || r->program > 127 || r->channel < 0 || r->channel > 15)
        return cm__fail(err, CM_E_ARG, NAME, -1, -1,
                        "render qpm %g, ppq %d, velocity %d, program %d, channel %d; expected qpm 4..1000, ppq "
                        "1..32767, velocity 1..127, program 0..127, channel 0..15",
                        r->qpm, r->ppq, r->velocity, r->program, r->channel);
    return CM_OK;
}

static void set_times(cm_note *x, int64_t s, int64_t e, const cm_melody *m, const cm_melody_render *r) {
    int64_t spq = m->steps_per_quarter;
    x->start_tick = (s * r->ppq * 2 + spq) / (2 * spq);
    x->end_tick = (e * r->ppq * 2 + spq) / (2 * spq);
    double sec_per_step = 60.0 / (r->qpm * (double)spq);
    x->start_s = (double)s * sec_per_step;
    x->end_s = (double)e * sec_per_step;
}

cm_status cm_melody_to_notes(const cm_melody *m, const cm_melody_render *r, cm_notes *out, cm_error *err) {
    if (!out) return cm__fail(err, CM_E_ARG, NAME, -1, -1, "cm_melody_to_notes: NULL out");
    memset(out, 0, sizeof *out);
    cm_melody_render d = r ? *r : cm_melody_render_default();
    cm_status s = check_render(m, &d, err);
    if (s) return s;
    int64_t n = 0;
    for (int64_t i = 0; i < m->n_events; i++) {
        if (m->events[i] > 127 || m->events[i] < CM_MELODY_NO_EVENT)
            return cm__fail(err, CM_E_ARG, NAME, -1, -1, "event %lld: %d is not a melody event (expected -2, -1 or "
                            "a pitch 0..127)", (long long)i, m->events[i]);
        if (m->events[i] >= 0) n++;
    }
    cm_note *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    if (!v) return cm__fail(err, CM_E_NOMEM, NAME, -1, -1, "out of memory for %lld notes", (long long)n);
    int64_t k = 0, open = -1, open_step = 0;
    for (int64_t i = 0; i <= m->n_events; i++) {
        int ev = i < m->n_events ? m->events[i] : CM_MELODY_NOTE_OFF;  /* the end ends a note */
        if (ev == CM_MELODY_NO_EVENT) continue;
        if (open >= 0) {
            set_times(&v[open], m->start_step + open_step, m->start_step + i, m, &d);
            open = -1;
        }
        if (ev >= 0) {
            v[k] = (cm_note){.pitch = (uint8_t)ev, .velocity = (uint8_t)d.velocity, .channel = (uint8_t)d.channel,
                             .program = (uint8_t)d.program};
            open = k++;
            open_step = i;
        }
    }
    s = cm_notes_from_array(out, v, k, err);
    free(v);
    return s;
}

cm_status cm_melody_tempo_map(const cm_melody *m, const cm_melody_render *r, cm_tempo_map *tm, cm_error *err) {
    if (!tm) return cm__fail(err, CM_E_ARG, NAME, -1, -1, "cm_melody_tempo_map: NULL tempo map");
    memset(tm, 0, sizeof *tm);
    cm_melody_render d = r ? *r : cm_melody_render_default();
    cm_status s = check_render(m, &d, err);
    if (s) return s;
    int num = 4, den = 4, spb = m->steps_per_bar, spq = m->steps_per_quarter;
    if (spb > 0 && spb % spq == 0 && spb / spq <= 255) {
        num = spb / spq;
    } else if (spb > 0 && (2 * spb) % spq == 0 && 2 * spb / spq <= 255) {
        num = 2 * spb / spq;
        den = 8;
    }
    uint32_t us = (uint32_t)lround(60e6 / d.qpm);
    if (cm_tempo_map_init_simple(tm, cm_division_ppq(d.ppq), us, num, den))
        return cm__fail(err, CM_E_NOMEM, NAME, -1, -1, "out of memory for a tempo map");
    return CM_OK;
}

cm_file *cm_melody_to_file(const cm_melody *m, const cm_melody_render *r, cm_error *err) {
    cm_notes notes = {0};
    cm_tempo_map tm = {0};
    cm_file *f = NULL;
    if (!cm_melody_to_notes(m, r, &notes, err) && !cm_melody_tempo_map(m, r, &tm, err))
        f = cm_file_from_notes(&notes, &tm, err);
    cm_notes_free(&notes);
    cm_tempo_map_free(&tm);
    return f;
}
