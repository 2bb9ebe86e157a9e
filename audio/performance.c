/* audio/performance.c — Magenta's Performance RNN encoding: notes (seconds) <-> NOTE_ON /
 * NOTE_OFF / TIME_SHIFT / VELOCITY tokens. The rules are documented in performance.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "audio/performance.h"

#define NAME "<performance>"

_Static_assert(CM_PERF_NOTE_OFF_OFFSET == CM_PERF_NOTE_ON_OFFSET + CM_PERF_NUM_PITCHES, "note-off after note-on");
_Static_assert(CM_PERF_TIME_SHIFT_OFFSET == CM_PERF_NOTE_OFF_OFFSET + CM_PERF_NUM_PITCHES, "shifts after note-off");
_Static_assert(CM_PERF_VELOCITY_OFFSET == CM_PERF_TIME_SHIFT_OFFSET + CM_PERF_MAX_SHIFT_STEPS, "velocity last");
_Static_assert(CM_PERF_NUM_CLASSES == CM_PERF_VELOCITY_OFFSET + CM_PERF_NUM_VELOCITY_BINS, "388 classes");
_Static_assert(CM_PERF_NUM_CLASSES_NO_VELOCITY == CM_PERF_VELOCITY_OFFSET, "356 classes without velocity");

#define MAX_CONFIG_STEPS 1000

/* ---- the encoding --------------------------------------------------------------------------- */
cm_perf_config cm_perf_config_default(void) {
    return (cm_perf_config){CM_PERF_STEPS_PER_SECOND, CM_PERF_MAX_SHIFT_STEPS, CM_PERF_NUM_VELOCITY_BINS};
}

bool cm_perf_config_valid(const cm_perf_config *c) {
    return c && c->steps_per_second >= 1 && c->steps_per_second <= MAX_CONFIG_STEPS && c->max_shift_steps >= 1 &&
           c->max_shift_steps <= MAX_CONFIG_STEPS && c->num_velocity_bins >= 0 &&
           c->num_velocity_bins <= CM_PERF_MAX_VELOCITY - CM_PERF_MIN_VELOCITY + 1;
}

int cm_perf_num_classes(const cm_perf_config *c) {
    if (!cm_perf_config_valid(c)) return -1;
    return 2 * CM_PERF_NUM_PITCHES + c->max_shift_steps + c->num_velocity_bins;
}

int cm_perf_event_to_token(const cm_perf_config *c, cm_perf_event e) {
    if (!cm_perf_config_valid(c)) return -1;
    const int shift0 = 2 * CM_PERF_NUM_PITCHES, vel0 = shift0 + c->max_shift_steps;
    switch (e.type) {
    case CM_PERF_EV_NOTE_ON:
        return e.value >= 0 && e.value < CM_PERF_NUM_PITCHES ? CM_PERF_NOTE_ON_OFFSET + e.value : -1;
    case CM_PERF_EV_NOTE_OFF:
        return e.value >= 0 && e.value < CM_PERF_NUM_PITCHES ? CM_PERF_NOTE_OFF_OFFSET + e.value : -1;
    case CM_PERF_EV_TIME_SHIFT:
        return e.value >= 1 && e.value <= c->max_shift_steps ? shift0 + e.value - 1 : -1;
    case CM_PERF_EV_VELOCITY:
        return e.value >= 1 && e.value <= c->num_velocity_bins ? vel0 + e.value - 1 : -1;
    case CM_PERF_EV_INVALID: break;
    }
    return -1;
}

cm_perf_event cm_perf_token_to_event(const cm_perf_config *c, int token) {
    int n = cm_perf_num_classes(c);
    if (n < 0 || token < 0 || token >= n) return (cm_perf_event){CM_PERF_EV_INVALID, 0};
    const int shift0 = 2 * CM_PERF_NUM_PITCHES, vel0 = shift0 + c->max_shift_steps;
    if (token < CM_PERF_NOTE_OFF_OFFSET) return (cm_perf_event){CM_PERF_EV_NOTE_ON, token - CM_PERF_NOTE_ON_OFFSET};
    if (token < shift0) return (cm_perf_event){CM_PERF_EV_NOTE_OFF, token - CM_PERF_NOTE_OFF_OFFSET};
    if (token < vel0) return (cm_perf_event){CM_PERF_EV_TIME_SHIFT, token - shift0 + 1};
    return (cm_perf_event){CM_PERF_EV_VELOCITY, token - vel0 + 1};
}

static int bin_size(int num_bins) {
    const int span = CM_PERF_MAX_VELOCITY - CM_PERF_MIN_VELOCITY + 1;
    return (span + num_bins - 1) / num_bins;  /* ceil */
}

int cm_perf_velocity_to_bin(int velocity, int num_bins) {
    if (num_bins < 1) return 0;
    if (num_bins > CM_PERF_MAX_VELOCITY) num_bins = CM_PERF_MAX_VELOCITY;
    if (velocity < CM_PERF_MIN_VELOCITY) velocity = CM_PERF_MIN_VELOCITY;
    if (velocity > CM_PERF_MAX_VELOCITY) velocity = CM_PERF_MAX_VELOCITY;
    return (velocity - CM_PERF_MIN_VELOCITY) / bin_size(num_bins) + 1;
}

int cm_perf_bin_to_velocity(int bin, int num_bins) {
    if (num_bins < 1) return CM_PERF_DEFAULT_VELOCITY;
    if (num_bins > CM_PERF_MAX_VELOCITY) num_bins = CM_PERF_MAX_VELOCITY;
    if (bin < 1) bin = 1;
    if (bin > num_bins) bin = num_bins;
    int v = CM_PERF_MIN_VELOCITY + (bin - 1) * bin_size(num_bins);
    return v > CM_PERF_MAX_VELOCITY ? CM_PERF_MAX_VELOCITY : v;
}

cm_perf_opts cm_perf_opts_default(void) { return (cm_perf_opts){cm_perf_config_default(), false}; }

/* ---- encoding ------------------------------------------------------------------------------- */
typedef struct pnote {
    double start_s;
    int64_t start, end;  /* steps */
    int pitch, velocity;
    int64_t seq;         /* index in notes->notes */
} pnote;

typedef struct pev {
    int64_t step;
    int64_t idx;         /* index in the sorted notes */
    int is_off;
} pev;

static int cmp_pnote(const void *a, const void *b) {
    const pnote *x = a, *y = b;
    if (x->start_s != y->start_s) return x->start_s < y->start_s ? -1 : 1;
    if (x->pitch != y->pitch) return x->pitch - y->pitch;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

static int cmp_pev(const void *a, const void *b) {
    const pev *x = a, *y = b;
    if (x->step != y->step) return x->step < y->step ? -1 : 1;
    if (x->idx != y->idx) return x->idx < y->idx ? -1 : 1;
    return x->is_off - y->is_off;
}

typedef struct tokbuf {
    int32_t *v;
    int64_t n, cap;
    bool oom;
} tokbuf;

static void put(tokbuf *b, int32_t t) {
    if (b->oom) return;
    if (b->n == b->cap) {
        int64_t cap = b->cap ? b->cap * 2 : 256;
        int32_t *p = realloc(b->v, (size_t)cap * sizeof *p);
        if (!p) {
            b->oom = true;
            return;
        }
        b->v = p;
        b->cap = cap;
    }
    b->v[b->n++] = t;
}

static int64_t to_step(double seconds, int sps) {
    double x = seconds * sps + 0.5;
    if (x >= (double)CM_PERF_MAX_STEPS * 2) return CM_PERF_MAX_STEPS * 2;
    return (int64_t)x;
}

cm_status cm_perf_encode(const cm_notes *notes, const cm_perf_opts *opts, int32_t **tokens, int64_t *n_tokens,
                         cm_perf_encode_stats *stats, cm_error *err) {
    if (tokens) *tokens = NULL;
    if (n_tokens) *n_tokens = 0;
    cm_perf_encode_stats st = {0};
    if (stats) *stats = st;
    if (!notes || !tokens || !n_tokens || notes->n_notes < 0 || (notes->n_notes > 0 && !notes->notes))
        return cm__fail(err, CM_E_ARG, NAME, -1, -1, "cm_perf_encode: NULL or invalid argument");
    cm_perf_opts o = opts ? *opts : cm_perf_opts_default();
    const cm_perf_config *c = &o.config;
    if (!cm_perf_config_valid(c))
        return cm__fail(err, CM_E_ARG, NAME, -1, -1,
                        "configuration: %d steps per second, %d shift steps, %d velocity bins; expected 1..%d, "
                        "1..%d and 0..127",
                        c->steps_per_second, c->max_shift_steps, c->num_velocity_bins, MAX_CONFIG_STEPS,
                        MAX_CONFIG_STEPS);
    int64_t nn = notes->n_notes;
    pnote *v = malloc((size_t)(nn > 0 ? nn : 1) * sizeof *v);
    pev *ev = malloc((size_t)(nn > 0 ? 2 * nn : 1) * sizeof *ev);
    tokbuf b = {0};
    cm_status s = CM_OK;
    if (!v || !ev) s = cm__fail(err, CM_E_NOMEM, NAME, -1, -1, "out of memory for %lld notes", (long long)nn);
    int64_t n = 0;
    for (int64_t i = 0; !s && i < nn; i++) {
        const cm_note *x = &notes->notes[i];
        if (x->is_drum && !o.include_drums) {
            st.drums_skipped++;
            continue;
        }
        if (x->pitch > 127 || x->velocity > 127) {
            s = cm__fail(err, CM_E_ARG, NAME, -1, -1, "note %lld: pitch %d, velocity %d; expected 0..127",
                         (long long)i, x->pitch, x->velocity);
            break;
        }
        if (x->velocity == 0) {
            st.zero_velocity_skipped++;
            continue;
        }
        if (!isfinite(x->start_s) || !isfinite(x->end_s) || x->start_s < 0 || x->end_s < x->start_s) {
            s = cm__fail(err, CM_E_ARG, NAME, -1, -1, "note %lld (pitch %d): seconds %g..%g; expected finite times "
                         "with 0 <= start <= end", (long long)i, x->pitch, x->start_s, x->end_s);
            break;
        }
        pnote z = {x->start_s, to_step(x->start_s, c->steps_per_second), to_step(x->end_s, c->steps_per_second),
                   x->pitch, x->velocity, i};
        if (z.end == z.start) z.end++;
        if (z.end > CM_PERF_MAX_STEPS) {
            s = cm__fail(err, CM_E_LIMIT, NAME, -1, -1, "note %lld (pitch %d) ends at %g s, step %lld: beyond the "
                         "limit of %lld steps (CM_PERF_MAX_STEPS)", (long long)i, x->pitch, x->end_s,
                         (long long)z.end, (long long)CM_PERF_MAX_STEPS);
            break;
        }
        v[n++] = z;
    }
    if (!s) {
        qsort(v, (size_t)n, sizeof *v, cmp_pnote);
        for (int64_t i = 0; i < n; i++) {
            ev[2 * i] = (pev){v[i].start, i, 0};
            ev[2 * i + 1] = (pev){v[i].end, i, 1};
        }
        qsort(ev, (size_t)(2 * n), sizeof *ev, cmp_pev);
        const int shift0 = 2 * CM_PERF_NUM_PITCHES, vel0 = shift0 + c->max_shift_steps;
        int64_t now = 0;
        int cur_bin = 0;
        for (int64_t i = 0; i < 2 * n && !b.oom; i++) {
            const pnote *x = &v[ev[i].idx];
            if (ev[i].step > now) {
                while (ev[i].step > now + c->max_shift_steps) {
                    put(&b, shift0 + c->max_shift_steps - 1);
                    now += c->max_shift_steps;
                }
                put(&b, (int32_t)(shift0 + (ev[i].step - now) - 1));
                now = ev[i].step;
            }
            if (c->num_velocity_bins > 0 && !ev[i].is_off) {
                int bin = cm_perf_velocity_to_bin(x->velocity, c->num_velocity_bins);
                if (bin != cur_bin) {
                    cur_bin = bin;
                    put(&b, vel0 + bin - 1);
                }
            }
            put(&b, (ev[i].is_off ? CM_PERF_NOTE_OFF_OFFSET : CM_PERF_NOTE_ON_OFFSET) + x->pitch);
        }
        st.notes = n;
        st.steps = now;
        if (b.oom) s = cm__fail(err, CM_E_NOMEM, NAME, -1, -1, "out of memory for %lld tokens", (long long)b.n);
    }
    free(v);
    free(ev);
    if (s) {
        free(b.v);
        return s;
    }
    if (!b.v && !(b.v = malloc(sizeof *b.v))) return cm__fail(err, CM_E_NOMEM, NAME, -1, -1, "out of memory");
    *tokens = b.v;
    *n_tokens = b.n;
    if (stats) *stats = st;
    return CM_OK;
}

/* ---- decoding ------------------------------------------------------------------------------- */
cm_perf_render cm_perf_render_default(void) {
    return (cm_perf_render){120.0, CM_DEFAULT_PPQ, 0, 0, CM_PERF_DEFAULT_VELOCITY, 0.0};
}

static cm_status check_render(const cm_perf_render *r, cm_error *err) {
    if (!(r->qpm >= 4 && r->qpm <= 1000) || r->ppq < 1 || r->ppq > 0x7FFF || r->velocity < 1 || r->velocity > 127 ||
        r->program < 0 || r->program > 127 || r->channel < 0 || r->channel > 15 || !(r->max_note_duration_s >= 0))
        return cm__fail(err, CM_E_ARG, NAME, -1, -1,
                        "render qpm %g, ppq %d, velocity %d, program %d, channel %d, max duration %g; expected qpm "
                        "4..1000, ppq 1..32767, velocity 1..127, program 0..127, channel 0..15, duration >= 0",
                        r->qpm, r->ppq, r->velocity, r->program, r->channel, r->max_note_duration_s);
    return CM_OK;
}

/* One open note: where it started and its velocity. Per pitch, a FIFO queue. */
typedef struct opening {
    int64_t step;
    int velocity;
} opening;

typedef struct queue {
    opening *v;
    int64_t head, n, cap;
} queue;

typedef struct notebuf {
    cm_note *v;
    int64_t n, cap;
} notebuf;

static bool add_note(notebuf *nb, int pitch, int velocity, int64_t s, int64_t e, const cm_perf_config *c,
                     const cm_perf_render *r) {
    if (nb->n == nb->cap) {
        int64_t cap = nb->cap ? nb->cap * 2 : 64;
        cm_note *p = realloc(nb->v, (size_t)cap * sizeof *p);
        if (!p) return false;
        nb->v = p;
        nb->cap = cap;
    }
    double start = (double)s / c->steps_per_second, end = (double)e / c->steps_per_second;
    if (r->max_note_duration_s > 0 && end - start > r->max_note_duration_s) end = start + r->max_note_duration_s;
    const double ticks_per_s = r->ppq * r->qpm / 60.0;
    double ts = floor(start * ticks_per_s + 0.5), te = floor(end * ticks_per_s + 0.5);
    if (te > (double)CM_MAX_TICK) te = (double)CM_MAX_TICK;
    if (ts > te) ts = te;
    nb->v[nb->n++] = (cm_note){.start_tick = (int64_t)ts, .end_tick = (int64_t)te, .start_s = start, .end_s = end,
                               .pitch = (uint8_t)pitch, .velocity = (uint8_t)velocity,
                               .channel = (uint8_t)r->channel, .program = (uint8_t)r->program};
    return true;
}

cm_status cm_perf_decode(const int32_t *tokens, int64_t n, const cm_perf_config *config, const cm_perf_render *r,
                         cm_notes *out, cm_perf_decode_stats *stats, cm_error *err) {
    if (!out) return cm__fail(err, CM_E_ARG, NAME, -1, -1, "cm_perf_decode: NULL out");
    memset(out, 0, sizeof *out);
    cm_perf_decode_stats st = {0};
    if (stats) *stats = st;
    if (n < 0 || (n > 0 && !tokens))
        return cm__fail(err, CM_E_ARG, NAME, -1, -1, "cm_perf_decode: %lld tokens at %p", (long long)n,
                        (const void *)tokens);
    if (n > CM_PERF_MAX_TOKENS)
        return cm__fail(err, CM_E_LIMIT, NAME, -1, -1, "%lld tokens, more than the limit of %lld (CM_PERF_MAX_TOKENS)",
                        (long long)n, (long long)CM_PERF_MAX_TOKENS);
    cm_perf_config c = config ? *config : cm_perf_config_default();
    cm_perf_render d = r ? *r : cm_perf_render_default();
    if (!cm_perf_config_valid(&c))
        return cm__fail(err, CM_E_ARG, NAME, -1, -1, "invalid configuration: %d steps per second, %d shift steps, "
                        "%d velocity bins", c.steps_per_second, c.max_shift_steps, c.num_velocity_bins);
    cm_status s = check_render(&d, err);
    if (s) return s;
    const int n_classes = cm_perf_num_classes(&c);
    for (int64_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= n_classes)
            return cm__fail(err, CM_E_ARG, NAME, -1, -1,
                            "token %lld at position %lld: expected 0..%d (%d classes: %d steps per second, %d shift "
                            "steps, %d velocity bins)",
                            (long long)tokens[i], (long long)i, n_classes - 1, n_classes, c.steps_per_second,
                            c.max_shift_steps, c.num_velocity_bins);
    queue q[CM_PERF_NUM_PITCHES];
    memset(q, 0, sizeof q);
    notebuf nb = {0};
    int velocity = d.velocity;
    int64_t step = 0;
    bool oom = false;
    for (int64_t i = 0; i < n && !oom; i++) {
        cm_perf_event e = cm_perf_token_to_event(&c, tokens[i]);
        if (e.type == CM_PERF_EV_TIME_SHIFT) {
            step += e.value;
        } else if (e.type == CM_PERF_EV_VELOCITY) {
            velocity = cm_perf_bin_to_velocity(e.value, c.num_velocity_bins);
        } else if (e.type == CM_PERF_EV_NOTE_ON) {
            queue *p = &q[e.value];
            if (p->n == p->cap) {
                int64_t cap = p->cap ? p->cap * 2 : 4;
                opening *nv = realloc(p->v, (size_t)cap * sizeof *nv);
                if (!nv) {
                    oom = true;
                    break;
                }
                p->v = nv;
                p->cap = cap;
            }
            p->v[p->n++] = (opening){step, velocity};
        } else if (e.type == CM_PERF_EV_NOTE_OFF) {
            queue *p = &q[e.value];
            if (p->head == p->n) {
                st.note_offs_ignored++;
                continue;
            }
            opening o = p->v[p->head++];
            if (p->head == p->n) p->head = p->n = 0;
            if (o.step == step) {
                st.zero_length_dropped++;
                continue;
            }
            if (!add_note(&nb, e.value, o.velocity, o.step, step, &c, &d)) oom = true;
        }
    }
    for (int p = 0; p < CM_PERF_NUM_PITCHES; p++) {
        for (int64_t k = q[p].head; !oom && k < q[p].n; k++) {
            if (q[p].v[k].step == step) {
                st.zero_length_dropped++;
                continue;
            }
            st.closed_at_end++;
            if (!add_note(&nb, p, q[p].v[k].velocity, q[p].v[k].step, step, &c, &d)) oom = true;
        }
        free(q[p].v);
    }
    if (oom) {
        free(nb.v);
        return cm__fail(err, CM_E_NOMEM, NAME, -1, -1, "out of memory decoding %lld tokens", (long long)n);
    }
    s = cm_notes_from_array(out, nb.v, nb.n, err);
    free(nb.v);
    if (s) return s;
    st.notes = nb.n;
    st.steps = step;
    out->unmatched_note_offs = (int)(st.note_offs_ignored > INT32_MAX ? INT32_MAX : st.note_offs_ignored);
    out->closed_at_end = (int)(st.closed_at_end > INT32_MAX ? INT32_MAX : st.closed_at_end);
    if (stats) *stats = st;
    return CM_OK;
}

cm_status cm_perf_tempo_map(const cm_perf_render *r, cm_tempo_map *tm, cm_error *err) {
    if (!tm) return cm__fail(err, CM_E_ARG, NAME, -1, -1, "cm_perf_tempo_map: NULL tempo map");
    memset(tm, 0, sizeof *tm);
    cm_perf_render d = r ? *r : cm_perf_render_default();
    cm_status s = check_render(&d, err);
    if (s) return s;
    if (cm_tempo_map_init_simple(tm, cm_division_ppq(d.ppq), (uint32_t)lround(60e6 / d.qpm), 4, 4))
        return cm__fail(err, CM_E_NOMEM, NAME, -1, -1, "out of memory for a tempo map");
    return CM_OK;
}

cm_file *cm_perf_to_file(const int32_t *tokens, int64_t n, const cm_perf_config *config, const cm_perf_render *r,
                         cm_error *err) {
    cm_notes notes = {0};
    cm_tempo_map tm = {0};
    cm_file *f = NULL;
    if (!cm_perf_decode(tokens, n, config, r, &notes, NULL, err) && !cm_perf_tempo_map(r, &tm, err))
        f = cm_file_from_notes(&notes, &tm, err);
    cm_notes_free(&notes);
    cm_tempo_map_free(&tm);
    return f;
}
