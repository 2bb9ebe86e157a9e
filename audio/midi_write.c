/* audio/midi_write.c — the Standard MIDI File writer: cm_file -> bytes, written atomically
 * (temporary file next to the target, fsync, rename; on failure the old file is untouched). */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audio/fileio.h"
#include "audio/midi.h"

typedef struct wbuf {
    uint8_t *p;
    size_t n, cap;
    bool oom;
} wbuf;

static void put(wbuf *w, const void *src, size_t n) {
    if (w->oom || n == 0) return;
    if (n > w->cap - w->n) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap - w->n < n) {
            if (cap > SIZE_MAX / 2) {
                w->oom = true;
                return;
            }
            cap *= 2;
        }
        uint8_t *p = realloc(w->p, cap);
        if (!p) {
            w->oom = true;
            return;
        }
        w->p = p;
        w->cap = cap;
    }
    memcpy(w->p + w->n, src, n);
    w->n += n;
}

static void put8(wbuf *w, uint8_t v) { put(w, &v, 1); }

static void put_be(wbuf *w, uint32_t v, int bytes) {
    uint8_t b[4];
    for (int i = 0; i < bytes; i++) b[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
    put(w, b, (size_t)bytes);
}

/* v <= 0x0FFFFFFF (checked by the caller) */
static void put_vlq(wbuf *w, uint32_t v) {
    uint8_t b[4];
    int n = 0;
    b[3] = v & 0x7F;
    for (v >>= 7, n = 1; v && n < 4; v >>= 7, n++) b[3 - n] = (uint8_t)(0x80 | (v & 0x7F));
    put(w, b + 4 - n, (size_t)n);
}

#define MAX_DELTA 0x0FFFFFFF

static cm_status write_track(wbuf *w, const cm_file *f, int ti, bool running_status, const char *name,
                             cm_error *err) {
    const cm_track *t = &f->tracks[ti];
    put(w, "MTrk", 4);
    size_t len_at = w->n;
    put_be(w, 0, 4);
    int64_t last = 0;
    uint8_t running = 0;
    for (int64_t i = 0; i < t->n_events; i++) {
        const cm_event *e = &t->events[i];
        if (e->tick < last || e->tick > CM_MAX_TICK)
            return cm__fail(err, CM_E_ARG, name, -1, ti,
                            "event %lld at tick %lld comes after tick %lld (events must be sorted "
                            "by tick, within 0..%lld)",
                            (long long)i, (long long)e->tick, (long long)last, (long long)CM_MAX_TICK);
        if (e->tick - last > MAX_DELTA)
            return cm__fail(err, CM_E_ARG, name, -1, ti,
                            "event %lld: a gap of %lld ticks, more than a delta time can hold (%d)",
                            (long long)i, (long long)(e->tick - last), MAX_DELTA);
        if (e->status == CM_META && e->meta_type == CM_META_END_OF_TRACK) continue; /* written last */
        if (e->status < 0x80 || (e->status > 0xF0 && e->status != CM_SYSEX_ESCAPE && e->status != CM_META) ||
            (e->status < 0xF0 && (e->data[0] > 127 || e->data[1] > 127)) ||
            (e->status == CM_META && e->meta_type > 127))
            return cm__fail(err, CM_E_ARG, name, -1, ti,
                            "event %lld: status 0x%02X with data %d %d is not a valid MIDI event",
                            (long long)i, e->status, e->data[0], e->data[1]);
        if (e->status >= 0xF0 &&
            (e->length > MAX_DELTA || (e->length && ((size_t)e->offset > t->n_data ||
                                                     e->length > t->n_data - e->offset))))
            return cm__fail(err, CM_E_ARG, name, -1, ti,
                            "event %lld: payload of %lu bytes at %lu is outside the track's %zu "
                            "data bytes (or longer than %d)",
                            (long long)i, (unsigned long)e->length, (unsigned long)e->offset,
                            t->n_data, MAX_DELTA);
        put_vlq(w, (uint32_t)(e->tick - last));
        last = e->tick;
        if (e->status < 0xF0) {
            if (!running_status || e->status != running) put8(w, e->status);
            running = e->status;
            put8(w, e->data[0]);
            int type = e->status & 0xF0;
            if (type != CM_PROGRAM_CHANGE && type != CM_CHANNEL_PRESSURE) put8(w, e->data[1]);
            continue;
        }
        running = 0; /* sysex and meta cancel running status (SMF 1.0) */
        put8(w, e->status);
        if (e->status == CM_META) put8(w, e->meta_type);
        put_vlq(w, e->length);
        if (e->length) put(w, t->data + e->offset, e->length);
    }
    int64_t end = t->end_tick > last ? t->end_tick : last;
    if (end - last > MAX_DELTA || end > CM_MAX_TICK)
        return cm__fail(err, CM_E_ARG, name, -1, ti,
                        "End of Track at tick %lld is too far after the last event (tick %lld)",
                        (long long)end, (long long)last);
    put_vlq(w, (uint32_t)(end - last));
    put(w, "\xFF\x2F\x00", 3);
    if (w->oom) return cm__fail(err, CM_E_NOMEM, name, -1, ti, "out of memory while encoding");
    size_t len = w->n - len_at - 4;
    if (len > UINT32_MAX)
        return cm__fail(err, CM_E_ARG, name, -1, ti, "the track's %zu bytes exceed a chunk's 4 GiB", len);
    for (int k = 0; k < 4; k++) w->p[len_at + k] = (uint8_t)(len >> (8 * (3 - k)));
    return CM_OK;
}

static cm_status encode(const cm_file *f, const cm_write_opts *opts, const char *name, wbuf *w,
                        cm_error *err) {
    if (!f) return cm__fail(err, CM_E_ARG, name, -1, -1, "no file given (NULL)");
    if (f->format < 0 || f->format > 2)
        return cm__fail(err, CM_E_ARG, name, -1, -1, "format %d, should be 0, 1 or 2", f->format);
    if (f->format == 0 && f->n_tracks != 1)
        return cm__fail(err, CM_E_ARG, name, -1, -1, "format 0 must have exactly 1 track, it has %d",
                        f->n_tracks);
    if (f->n_tracks < 0 || f->n_tracks > CM_MAX_TRACKS)
        return cm__fail(err, CM_E_ARG, name, -1, -1, "%d tracks, expected 0..%d", f->n_tracks,
                        CM_MAX_TRACKS);
    if (!cm_division_valid(f->division))
        return cm__fail(err, CM_E_ARG, name, -1, -1,
                        "invalid division (ppq %d, SMPTE %d fps, %d ticks per frame)", f->division.ppq,
                        f->division.smpte_fps, f->division.ticks_per_frame);
    uint16_t div = f->division.ppq
                       ? (uint16_t)f->division.ppq
                       : (uint16_t)(((uint8_t)(int8_t)-f->division.smpte_fps << 8) |
                                    f->division.ticks_per_frame);
    put(w, "MThd", 4);
    put_be(w, 6, 4);
    put_be(w, (uint32_t)f->format, 2);
    put_be(w, (uint32_t)f->n_tracks, 2);
    put_be(w, div, 2);
    bool rs = opts && opts->running_status;
    for (int i = 0; i < f->n_tracks; i++) {
        cm_status s = write_track(w, f, i, rs, name, err);
        if (s) return s;
    }
    if (w->oom) return cm__fail(err, CM_E_NOMEM, name, -1, -1, "out of memory while encoding");
    return CM_OK;
}

cm_status cm_write_mem(const cm_file *f, const cm_write_opts *opts, uint8_t **out, size_t *len,
                       cm_error *err) {
    if (out) *out = NULL;
    if (len) *len = 0;
    if (!out || !len) return cm__fail(err, CM_E_ARG, "<memory>", -1, -1, "cm_write_mem: NULL out or len");
    wbuf w = {0};
    cm_status s = encode(f, opts, "<memory>", &w, err);
    if (s) {
        free(w.p);
        return s;
    }
    *out = w.p;
    *len = w.n;
    return CM_OK;
}

cm_status cm_write_file(const cm_file *f, const char *path, const cm_write_opts *opts, cm_error *err) {
    if (!path) return cm__fail(err, CM_E_ARG, "<null>", -1, -1, "cm_write_file: NULL path");
    wbuf w = {0};
    cm_status s = encode(f, opts, path, &w, err);
    if (s) {
        free(w.p);
        return s;
    }
    s = cm_write_file_atomic(path, w.p, w.n, err);
    free(w.p);
    return s;
}
