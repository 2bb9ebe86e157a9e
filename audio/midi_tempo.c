/* audio/midi_tempo.c — the tempo map: tempo changes, time and key signatures, and tick <->
 * seconds conversion both ways (PPQ across tempo changes; SMPTE as absolute time). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "audio/midi.h"

/* A meta of one kind found in the file: where (tick, order of appearance) and its payload. */
typedef struct found {
    int64_t tick, order;
    const uint8_t *p;
} found;

static int cmp_found(const void *a, const void *b) {
    const found *x = a, *y = b;
    if (x->tick != y->tick) return x->tick < y->tick ? -1 : 1;
    return (x->order > y->order) - (x->order < y->order);
}

static double smpte_rate(cm_division d) {
    double fps = d.smpte_fps == 29 ? 30000.0 / 1001.0 : (double)d.smpte_fps;
    return fps * d.ticks_per_frame; /* ticks per second */
}

static double seconds_per_tick(const cm_tempo_map *m, uint32_t us) {
    return (double)us / (1e6 * (double)m->division.ppq);
}

/* Sorted metas of one type and length from track `track` (< 0: all). *out NULL when none. */
static cm_status collect(const cm_file *f, int track, uint8_t type, uint32_t len, found **out, int64_t *n) {
    *out = NULL;
    *n = 0;
    int64_t count = 0, order = 0;
    int lo = track < 0 ? 0 : track, hi = track < 0 ? f->n_tracks : track + 1;
    for (int t = lo; t < hi; t++)
        for (int64_t i = 0; i < f->tracks[t].n_events; i++) {
            const cm_event *e = &f->tracks[t].events[i];
            count += e->status == CM_META && e->meta_type == type && e->length == len;
        }
    if (count == 0) return CM_OK;
    found *v = malloc((size_t)count * sizeof *v);
    if (!v) return CM_E_NOMEM;
    for (int t = lo; t < hi; t++)
        for (int64_t i = 0; i < f->tracks[t].n_events; i++) {
            const cm_event *e = &f->tracks[t].events[i];
            if (e->status == CM_META && e->meta_type == type && e->length == len)
                v[order] = (found){e->tick, order, f->tracks[t].data + e->offset}, order++;
        }
    qsort(v, (size_t)count, sizeof *v, cmp_found);
    *out = v;
    *n = count;
    return CM_OK;
}

/* Room for element n of an array of n (capacity: n rounded up to a power of two). */
static void *grow(void *p, int n, size_t size) {
    if (n != 0 && (n & (n - 1)) != 0) return p; /* not a power of two: room left */
    size_t cap = n ? (size_t)n * 2 : 1;
    return realloc(p, cap * size);
}

cm_status cm_tempo_map_add_tempo(cm_tempo_map *m, int64_t tick, uint32_t us) {
    if (!m || us == 0 || us > 0xFFFFFF || tick < 0 || tick > CM_MAX_TICK ||
        !cm_division_valid(m->division))
        return CM_E_ARG;
    if (m->n_tempos > 0 && tick < m->tempos[m->n_tempos - 1].tick) return CM_E_ARG;
    if (m->n_tempos == 0 && tick > 0) {
        cm_status s = cm_tempo_map_add_tempo(m, 0, CM_DEFAULT_TEMPO);
        if (s) return s;
    }
    if (m->n_tempos > 0 && m->tempos[m->n_tempos - 1].tick == tick) {
        m->tempos[m->n_tempos - 1].us_per_quarter = us; /* seconds of this tick do not change */
        return CM_OK;
    }
    cm_tempo *t = grow(m->tempos, m->n_tempos, sizeof *t);
    if (!t) return CM_E_NOMEM;
    m->tempos = t;
    double sec = 0;
    if (m->n_tempos > 0) {
        const cm_tempo *prev = &t[m->n_tempos - 1];
        sec = m->division.ppq ? prev->seconds + (double)(tick - prev->tick) * seconds_per_tick(m, prev->us_per_quarter)
                              : (double)tick / smpte_rate(m->division);
    }
    t[m->n_tempos++] = (cm_tempo){tick, us, sec};
    return CM_OK;
}

cm_status cm_tempo_map_add_time_signature(cm_tempo_map *m, int64_t tick, int num, int den) {
    if (!m || num < 1 || num > 255 || den < 1 || den > 32768 || (den & (den - 1)) || tick < 0 ||
        tick > CM_MAX_TICK)
        return CM_E_ARG;
    int n = m->n_time_signatures;
    if (n > 0 && tick < m->time_signatures[n - 1].tick) return CM_E_ARG;
    cm_time_signature ts = {tick, num, den, 24, 8};
    if (n > 0 && m->time_signatures[n - 1].tick == tick) {
        m->time_signatures[n - 1] = ts;
        return CM_OK;
    }
    cm_time_signature *v = grow(m->time_signatures, n, sizeof *v);
    if (!v) return CM_E_NOMEM;
    m->time_signatures = v;
    v[m->n_time_signatures++] = ts;
    return CM_OK;
}

cm_status cm_tempo_map_add_key_signature(cm_tempo_map *m, int64_t tick, int sf, bool minor) {
    if (!m || sf < -7 || sf > 7 || tick < 0 || tick > CM_MAX_TICK) return CM_E_ARG;
    int n = m->n_key_signatures;
    if (n > 0 && tick < m->key_signatures[n - 1].tick) return CM_E_ARG;
    cm_key_signature ks = {tick, sf, minor};
    if (n > 0 && m->key_signatures[n - 1].tick == tick) {
        m->key_signatures[n - 1] = ks;
        return CM_OK;
    }
    cm_key_signature *v = grow(m->key_signatures, n, sizeof *v);
    if (!v) return CM_E_NOMEM;
    m->key_signatures = v;
    v[m->n_key_signatures++] = ks;
    return CM_OK;
}

static cm_status build(cm_tempo_map *m, const cm_file *f, int track) {
    found *v;
    int64_t n;
    cm_status s = collect(f, track, CM_META_TEMPO, 3, &v, &n);
    if (!s) s = cm_tempo_map_add_tempo(m, 0, CM_DEFAULT_TEMPO);
    for (int64_t i = 0; !s && i < n; i++) {
        uint32_t us = ((uint32_t)v[i].p[0] << 16) | ((uint32_t)v[i].p[1] << 8) | v[i].p[2];
        if (us) s = cm_tempo_map_add_tempo(m, v[i].tick, us);
    }
    free(v);
    if (s || (s = collect(f, track, CM_META_TIME_SIGNATURE, 4, &v, &n))) return s;
    for (int64_t i = 0; !s && i < n; i++) {
        const uint8_t *p = v[i].p;
        if (p[0] == 0 || p[1] > 15) continue; /* 0/x or a denominator beyond 2^15: ignored */
        s = cm_tempo_map_add_time_signature(m, v[i].tick, p[0], 1 << p[1]);
        if (!s) {
            m->time_signatures[m->n_time_signatures - 1].clocks_per_click = p[2];
            m->time_signatures[m->n_time_signatures - 1].thirty_seconds_per_quarter = p[3];
        }
    }
    free(v);
    if (s || (s = collect(f, track, CM_META_KEY_SIGNATURE, 2, &v, &n))) return s;
    for (int64_t i = 0; !s && i < n; i++) {
        int sf = (int8_t)v[i].p[0];
        if (sf >= -7 && sf <= 7 && v[i].p[1] <= 1) s = cm_tempo_map_add_key_signature(m, v[i].tick, sf, v[i].p[1] == 1);
    }
    free(v);
    return s;
}

cm_status cm_tempo_map_init(cm_tempo_map *m, const cm_file *f, int track, cm_error *err) {
    if (!m) return cm__fail(err, CM_E_ARG, "<tempo map>", -1, -1, "cm_tempo_map_init: NULL map");
    memset(m, 0, sizeof *m);
    if (!f || track >= f->n_tracks || !cm_division_valid(f->division))
        return cm__fail(err, CM_E_ARG, "<tempo map>", -1, track,
                        "cm_tempo_map_init: %s", !f ? "NULL file" : track >= f->n_tracks ? "no such track" : "invalid division");
    m->division = f->division;
    cm_status s = build(m, f, track);
    if (s) {
        cm_tempo_map_free(m);
        return cm__fail(err, s, "<tempo map>", -1, track, "cannot build the tempo map: %s", cm_strerror(s));
    }
    return CM_OK;
}

cm_status cm_tempo_map_init_simple(cm_tempo_map *m, cm_division division, uint32_t us, int num, int den) {
    if (!m) return CM_E_ARG;
    memset(m, 0, sizeof *m);
    if (!cm_division_valid(division)) return CM_E_ARG;
    m->division = division;
    cm_status s = cm_tempo_map_add_tempo(m, 0, us);
    if (!s && num > 0) s = cm_tempo_map_add_time_signature(m, 0, num, den);
    if (s) cm_tempo_map_free(m);
    return s;
}

void cm_tempo_map_free(cm_tempo_map *m) {
    if (!m) return;
    free(m->tempos);
    free(m->time_signatures);
    free(m->key_signatures);
    memset(m, 0, sizeof *m);
}

/* Index of the last tempo at or before tick (0 when tick precedes them all). */
static int tempo_index(const cm_tempo_map *m, int64_t tick) {
    int lo = 0, hi = m->n_tempos - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        if (m->tempos[mid].tick <= tick) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

uint32_t cm_tempo_at(const cm_tempo_map *m, int64_t tick) {
    if (!m || m->n_tempos == 0) return CM_DEFAULT_TEMPO;
    return m->tempos[tempo_index(m, tick)].us_per_quarter;
}

double cm_tick_to_seconds(const cm_tempo_map *m, int64_t tick) {
    if (!m || tick <= 0) return 0.0;
    if (m->division.ppq == 0)
        return m->division.smpte_fps ? (double)tick / smpte_rate(m->division) : 0.0;
    if (m->n_tempos == 0) return (double)tick * seconds_per_tick(m, CM_DEFAULT_TEMPO);
    const cm_tempo *t = &m->tempos[tempo_index(m, tick)];
    return t->seconds + (double)(tick - t->tick) * seconds_per_tick(m, t->us_per_quarter);
}

int64_t cm_seconds_to_tick(const cm_tempo_map *m, double seconds) {
    if (!m || !(seconds > 0)) return 0; /* also NaN */
    double ticks;
    if (m->division.ppq == 0) {
        ticks = m->division.smpte_fps ? seconds * smpte_rate(m->division) : 0.0;
    } else if (m->n_tempos == 0) {
        ticks = seconds / seconds_per_tick(m, CM_DEFAULT_TEMPO);
    } else {
        int lo = 0, hi = m->n_tempos - 1; /* the last tempo starting at or before seconds */
        while (lo < hi) {
            int mid = lo + (hi - lo + 1) / 2;
            if (m->tempos[mid].seconds <= seconds) lo = mid;
            else hi = mid - 1;
        }
        const cm_tempo *t = &m->tempos[lo];
        ticks = (double)t->tick + (seconds - t->seconds) / seconds_per_tick(m, t->us_per_quarter);
    }
    if (!(ticks < (double)CM_MAX_TICK)) return CM_MAX_TICK;
    return (int64_t)llround(ticks);
}
