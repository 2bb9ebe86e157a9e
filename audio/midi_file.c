/* audio/midi_file.c — the in-memory MIDI model: files, tracks, events; errors and warnings. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/midi.h"

/* ---- errors --------------------------------------------------------------------------------- */
const char *cm_strerror(cm_status s) {
    switch (s) {
    case CM_OK: return "success";
    case CM_E_IO: return "input/output error";
    case CM_E_NOMEM: return "out of memory";
    case CM_E_NOT_MIDI: return "not a Standard MIDI File";
    case CM_E_HEADER: return "invalid MIDI header (MThd)";
    case CM_E_TRUNCATED: return "truncated MIDI data";
    case CM_E_EVENT: return "invalid MIDI event";
    case CM_E_LIMIT: return "MIDI data exceeds a size limit";
    case CM_E_TICK: return "MIDI tick out of range";
    case CM_E_ARG: return "invalid argument";
    case CM_E_FORMAT: return "malformed input text";
    case CM_STATUS_COUNT: break;
    }
    return "unknown MIDI status";
}

cm_status cm__fail(cm_error *err, cm_status s, const char *file, int64_t offset, int track,
                   const char *fmt, ...) {
    if (!err) return s;
    err->status = s;
    err->offset = offset;
    err->track = track;
    snprintf(err->file, sizeof err->file, "%s", file ? file : "<memory>");
    char what[480];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    char where[40] = "";
    if (offset >= 0) snprintf(where, sizeof where, "byte %lld: ", (long long)offset);
    char trk[24] = "";
    if (track >= 0) snprintf(trk, sizeof trk, " (track %d)", track);
    snprintf(err->message, sizeof err->message, "%s: %s%s%s", err->file, where, what, trk);
    return s;
}

void cm__warn(cm_file *f, const char *fmt, ...) {
    if (f->warnings++ > 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->warning, sizeof f->warning, fmt, ap);
    va_end(ap);
}

/* ---- divisions ------------------------------------------------------------------------------ */
cm_division cm_division_ppq(int ppq) { return (cm_division){.ppq = ppq}; }

cm_division cm_division_smpte(int fps, int ticks_per_frame) {
    return (cm_division){.smpte_fps = fps, .ticks_per_frame = ticks_per_frame};
}

bool cm_division_valid(cm_division d) {
    if (d.ppq != 0) return d.ppq > 0 && d.ppq <= 0x7FFF && d.smpte_fps == 0 && d.ticks_per_frame == 0;
    return (d.smpte_fps == 24 || d.smpte_fps == 25 || d.smpte_fps == 29 || d.smpte_fps == 30) &&
           d.ticks_per_frame >= 1 && d.ticks_per_frame <= 255;
}

/* ---- files and tracks ----------------------------------------------------------------------- */
cm_file *cm_file_new(int format, cm_division division) {
    if (format < 0 || format > 2 || !cm_division_valid(division)) return NULL;
    cm_file *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->format = format;
    f->division = division;
    return f;
}

void cm_file_free(cm_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n_tracks; i++) {
        free(f->tracks[i].events);
        free(f->tracks[i].data);
    }
    free(f->tracks);
    free(f);
}

int cm_file_add_track(cm_file *f) {
    if (!f || f->n_tracks >= CM_MAX_TRACKS) return -1;
    cm_track *t = realloc(f->tracks, (size_t)(f->n_tracks + 1) * sizeof *t);
    if (!t) return -1;
    f->tracks = t;
    memset(&t[f->n_tracks], 0, sizeof *t);
    return f->n_tracks++;
}

/* Room for one more event (growth is geometric; the cap is checked first). */
static cm_status reserve_event(cm_track *t) {
    if (t->n_events < t->cap_events) return CM_OK;
    if (t->n_events >= CM_MAX_EVENTS_PER_TRACK) return CM_E_LIMIT;
    int64_t cap = t->cap_events ? t->cap_events * 2 : 64;
    if (cap > CM_MAX_EVENTS_PER_TRACK) cap = CM_MAX_EVENTS_PER_TRACK;
    cm_event *e = realloc(t->events, (size_t)cap * sizeof *e);
    if (!e) return CM_E_NOMEM;
    t->events = e;
    t->cap_events = cap;
    return CM_OK;
}

static cm_status push(cm_track *t, const cm_event *ev, const void *payload, uint32_t len) {
    if (!t || ev->tick < 0 || ev->tick > CM_MAX_TICK || (len && !payload)) return CM_E_ARG;
    cm_status s = reserve_event(t);
    if (s) return s;
    cm_event e = *ev;
    e.offset = 0;
    e.length = len;
    if (len) {
        if (t->n_data > UINT32_MAX - (size_t)len) return CM_E_LIMIT;
        size_t need = t->n_data + len;
        if (need > t->cap_data) {
            size_t cap = t->cap_data ? t->cap_data : 256;
            while (cap < need) cap *= 2;
            uint8_t *d = realloc(t->data, cap);
            if (!d) return CM_E_NOMEM;
            t->data = d;
            t->cap_data = cap;
        }
        memcpy(t->data + t->n_data, payload, len);
        e.offset = (uint32_t)t->n_data;
        t->n_data = need;
    }
    t->events[t->n_events++] = e;
    return CM_OK;
}

cm_status cm_track_add_channel(cm_track *t, int64_t tick, uint8_t status, uint8_t d0, uint8_t d1) {
    if (status < 0x80 || status >= 0xF0 || d0 > 127 || d1 > 127) return CM_E_ARG;
    int type = status & 0xF0;
    if (type == CM_PROGRAM_CHANGE || type == CM_CHANNEL_PRESSURE) d1 = 0;
    cm_event e = {.tick = tick, .status = status, .data = {d0, d1}};
    return push(t, &e, NULL, 0);
}

cm_status cm_track_add_meta(cm_track *t, int64_t tick, uint8_t type, const void *data, uint32_t len) {
    if (type > 0x7F) return CM_E_ARG;
    cm_event e = {.tick = tick, .status = CM_META, .meta_type = type};
    return push(t, &e, data, len);
}

cm_status cm_track_add_sysex(cm_track *t, int64_t tick, uint8_t status, const void *data, uint32_t len) {
    if (status != CM_SYSEX && status != CM_SYSEX_ESCAPE) return CM_E_ARG;
    cm_event e = {.tick = tick, .status = status};
    return push(t, &e, data, len);
}

cm_status cm_track_add_tempo(cm_track *t, int64_t tick, uint32_t us) {
    if (us == 0 || us > 0xFFFFFF) return CM_E_ARG;
    uint8_t b[3] = {(uint8_t)(us >> 16), (uint8_t)(us >> 8), (uint8_t)us};
    return cm_track_add_meta(t, tick, CM_META_TEMPO, b, 3);
}

cm_status cm_track_add_time_signature(cm_track *t, int64_t tick, int num, int den, int clocks,
                                      int n32) {
    int pow2 = 0;
    while (pow2 < 16 && (1 << pow2) < den) pow2++;
    if (num < 1 || num > 255 || den < 1 || (1 << pow2) != den || clocks < 0 || clocks > 255 ||
        n32 < 0 || n32 > 255)
        return CM_E_ARG;
    uint8_t b[4] = {(uint8_t)num, (uint8_t)pow2, (uint8_t)clocks, (uint8_t)n32};
    return cm_track_add_meta(t, tick, CM_META_TIME_SIGNATURE, b, 4);
}

cm_status cm_track_add_key_signature(cm_track *t, int64_t tick, int sf, bool minor) {
    if (sf < -7 || sf > 7) return CM_E_ARG;
    uint8_t b[2] = {(uint8_t)(int8_t)sf, minor ? 1 : 0};
    return cm_track_add_meta(t, tick, CM_META_KEY_SIGNATURE, b, 2);
}

cm_status cm_track_add_text(cm_track *t, int64_t tick, uint8_t type, const char *text) {
    if (!text || type < CM_META_TEXT || type > CM_META_CUE_POINT) return CM_E_ARG;
    size_t n = strlen(text);
    if (n > 0xFFFFFFF) return CM_E_ARG;
    return cm_track_add_meta(t, tick, type, text, (uint32_t)n);
}

const uint8_t *cm_event_payload(const cm_track *t, const cm_event *e) {
    if (!t || !e || e->length == 0 || !t->data) return NULL;
    return t->data + e->offset;
}

char *cm_track_name(const cm_track *t, char *buf, size_t cap) {
    if (!buf || cap == 0) return buf;
    buf[0] = '\0';
    if (!t) return buf;
    for (int64_t i = 0; i < t->n_events; i++) {
        const cm_event *e = &t->events[i];
        if (e->status != CM_META || e->meta_type != CM_META_TRACK_NAME) continue;
        size_t n = e->length < cap - 1 ? e->length : cap - 1;
        if (n) memcpy(buf, t->data + e->offset, n);
        buf[n] = '\0';
        for (size_t k = 0; k < n; k++) /* names are for messages and labels: no control bytes */
            if ((unsigned char)buf[k] < 0x20 || buf[k] == 0x7F) buf[k] = '?';
        break;
    }
    return buf;
}
