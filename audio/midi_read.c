/* audio/midi_read.c — the Standard MIDI File reader. MIDI input is hostile: every read is
 * bounded by the chunk it belongs to, variable-length quantities have at most 4 bytes, counts
 * are checked against the caps in midi.h before anything grows, absolute ticks are bounded by
 * CM_MAX_TICK, and every error names the file, the byte offset and what was expected.
 *
 * Tolerated (with a warning in cm_file.warnings): a track without End of Track (closed at its
 * last event), data after End of Track, chunks other than MTrk, bytes after the last declared
 * track, format 0 with several tracks. Running status survives meta and sysex events. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audio/midi.h"

typedef struct rd {
    const uint8_t *buf;  /* the whole file; offsets in messages are into it */
    const char *name;
    cm_error *err;
    cm_file *f;
    int64_t total_events;
} rd;

static uint32_t be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static uint32_t le32(const uint8_t *p) {
    return ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | p[0];
}
static int be16(const uint8_t *p) { return (p[0] << 8) | p[1]; }

/* A chunk id for messages: 'MTrk', or hex when it is not printable. */
static const char *chunk_id(char out[20], const uint8_t *p) {
    bool printable = true;
    for (int i = 0; i < 4; i++) printable &= p[i] >= 0x20 && p[i] < 0x7F;
    if (printable) {
        out[0] = '\'';
        memcpy(out + 1, p, 4);
        out[5] = '\'';
        out[6] = '\0';
    } else {
        static const char hx[] = "0123456789ABCDEF";
        char *o = out;
        for (int i = 0; i < 4; i++) {
            *o++ = hx[p[i] >> 4];
            *o++ = hx[p[i] & 15];
            if (i < 3) *o++ = ' ';
        }
        *o = '\0';
    }
    return out;
}

static const char *type_name(uint8_t status) {
    switch (status & 0xF0) {
    case CM_NOTE_OFF: return "note-off";
    case CM_NOTE_ON: return "note-on";
    case CM_POLY_PRESSURE: return "poly pressure";
    case CM_CONTROL_CHANGE: return "control change";
    case CM_PROGRAM_CHANGE: return "program change";
    case CM_CHANNEL_PRESSURE: return "channel pressure";
    default: return "pitch bend";
    }
}

/* A variable-length quantity at *p (at most 4 bytes, all before end). */
static cm_status read_vlq(rd *r, size_t *p, size_t end, uint32_t *out, int track, const char *what) {
    size_t at = *p;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        if (*p >= end)
            return cm__fail(r->err, CM_E_TRUNCATED, r->name, (int64_t)*p, track,
                            "the track ends inside a %s (a variable-length quantity)", what);
        uint8_t b = r->buf[(*p)++];
        v = (v << 7) | (b & 0x7F);
        if (!(b & 0x80)) {
            *out = v;
            return CM_OK;
        }
    }
    return cm__fail(r->err, CM_E_EVENT, r->name, (int64_t)at, track,
                    "%s longer than 4 bytes (%02X %02X %02X %02X ...); a variable-length quantity "
                    "has at most 4",
                    what, r->buf[at], r->buf[at + 1], r->buf[at + 2], r->buf[at + 3]);
}

static cm_status add_event(rd *r, cm_track *t, const cm_event *e, size_t payload_at, size_t at,
                           int track) {
    if (r->total_events >= CM_MAX_EVENTS_TOTAL)
        return cm__fail(r->err, CM_E_LIMIT, r->name, (int64_t)at, track,
                        "the file has more than %d events (the limit CM_MAX_EVENTS_TOTAL)",
                        CM_MAX_EVENTS_TOTAL);
    cm_status s;
    if (e->status == CM_META)
        s = cm_track_add_meta(t, e->tick, e->meta_type, r->buf + payload_at, e->length);
    else if (e->status >= 0xF0)
        s = cm_track_add_sysex(t, e->tick, e->status, r->buf + payload_at, e->length);
    else
        s = cm_track_add_channel(t, e->tick, e->status, e->data[0], e->data[1]);
    if (s == CM_E_LIMIT)
        return cm__fail(r->err, s, r->name, (int64_t)at, track,
                        "the track has more than %d events (the limit CM_MAX_EVENTS_PER_TRACK)",
                        CM_MAX_EVENTS_PER_TRACK);
    if (s)
        return cm__fail(r->err, s, r->name, (int64_t)at, track, "cannot store an event: %s",
                        cm_strerror(s));
    r->total_events++;
    return CM_OK;
}

/* One MTrk chunk's data: [start, start + len). */
static cm_status parse_track(rd *r, size_t start, size_t len, int ti) {
    cm_track *t = &r->f->tracks[ti];
    const uint8_t *b = r->buf;
    size_t p = start, end = start + len;
    int64_t tick = 0;
    uint8_t running = 0;
    cm_status s;
    while (p < end) {
        size_t at = p;
        uint32_t delta;
        if ((s = read_vlq(r, &p, end, &delta, ti, "delta time"))) return s;
        if (tick + delta > CM_MAX_TICK)
            return cm__fail(r->err, CM_E_TICK, r->name, (int64_t)at, ti,
                            "absolute tick %lld (delta %lu after tick %lld) exceeds the limit %lld; "
                            "the file's delta times are absurd",
                            (long long)(tick + delta), (unsigned long)delta, (long long)tick,
                            (long long)CM_MAX_TICK);
        tick += delta;
        if (p >= end)
            return cm__fail(r->err, CM_E_TRUNCATED, r->name, (int64_t)p, ti,
                            "the track ends after a delta time; expected an event");
        uint8_t status;
        size_t status_at = p;
        if (b[p] & 0x80) {
            status = b[p++];
        } else {
            if (!running)
                return cm__fail(r->err, CM_E_EVENT, r->name, (int64_t)p, ti,
                                "running status without a previous status byte");
            status = running;
        }
        cm_event e = {.tick = tick, .status = status};
        if (status < 0xF0) {
            running = status;
            int type = status & 0xF0;
            size_t need = (type == CM_PROGRAM_CHANGE || type == CM_CHANNEL_PRESSURE) ? 1 : 2;
            if (end - p < need)
                return cm__fail(r->err, CM_E_TRUNCATED, r->name, (int64_t)p, ti,
                                "the track ends inside a %s event (status 0x%02X needs %zu data "
                                "bytes, %zu remain)",
                                type_name(status), status, need, end - p);
            for (size_t k = 0; k < need; k++) {
                if (b[p + k] & 0x80)
                    return cm__fail(r->err, CM_E_EVENT, r->name, (int64_t)(p + k), ti,
                                    "data byte 0x%02X in a %s event (status 0x%02X); expected a "
                                    "value 0..127",
                                    b[p + k], type_name(status), status);
                e.data[k] = b[p + k];
            }
            p += need;
            if ((s = add_event(r, t, &e, 0, at, ti))) return s;
            continue;
        }
        if (status != CM_META && status != CM_SYSEX && status != CM_SYSEX_ESCAPE)
            return cm__fail(r->err, CM_E_EVENT, r->name, (int64_t)status_at, ti,
                            "status byte 0x%02X (a system common or real-time message) is not "
                            "allowed in a MIDI file; expected 0x80..0xEF, 0xF0, 0xF7 or 0xFF",
                            status);
        const char *what = "sysex length";
        if (status == CM_META) {
            if (p >= end)
                return cm__fail(r->err, CM_E_TRUNCATED, r->name, (int64_t)p, ti,
                                "the track ends inside a meta event; expected its type byte");
            e.meta_type = b[p];
            if (e.meta_type & 0x80)
                return cm__fail(r->err, CM_E_EVENT, r->name, (int64_t)p, ti,
                                "meta event type 0x%02X; expected 0x00..0x7F", e.meta_type);
            p++;
            what = "meta event length";
        }
        uint32_t n;
        if ((s = read_vlq(r, &p, end, &n, ti, what))) return s;
        if (n > end - p)
            return cm__fail(r->err, CM_E_TRUNCATED, r->name, (int64_t)status_at, ti,
                            "%s 0x%02X declares %lu bytes but only %zu remain in the track",
                            status == CM_META ? "meta event" : "sysex event",
                            status == CM_META ? e.meta_type : status, (unsigned long)n, end - p);
        e.length = n;
        if (status == CM_META && e.meta_type == CM_META_END_OF_TRACK) {
            t->end_tick = tick;
            t->has_end_of_track = true;
            p += n;
            if (p < end)
                cm__warn(r->f, "%s: byte %zu: %zu bytes after End of Track ignored (track %d)",
                         r->name, p, end - p, ti);
            return CM_OK;
        }
        if ((s = add_event(r, t, &e, p, at, ti))) return s;
        p += n;
    }
    t->end_tick = tick;
    r->f->missing_end_of_track++;
    cm__warn(r->f, "%s: byte %zu: track %d has no End of Track; closed at tick %lld", r->name, end,
             ti, (long long)tick);
    return CM_OK;
}

/* The SMF inside a RIFF "RMID" file: [*start, *end) becomes the "data" chunk's contents. */
static cm_status unwrap_riff(rd *r, size_t len, size_t *start, size_t *end) {
    if (len < 12 || memcmp(r->buf + 8, "RMID", 4) != 0)
        return cm__fail(r->err, CM_E_NOT_MIDI, r->name, 0, -1,
                        "a RIFF file that is not RIFF MIDI (expected 'RMID' at byte 8)");
    size_t p = 12;
    while (len - p >= 8) {
        uint32_t n = le32(r->buf + p + 4);
        if (memcmp(r->buf + p, "data", 4) == 0) {
            *start = p + 8;
            *end = n < len - p - 8 ? p + 8 + n : len;
            return CM_OK;
        }
        if (n > len - p - 8) break;
        p += 8 + n + (n & 1);
        if (p > len) break;
    }
    return cm__fail(r->err, CM_E_NOT_MIDI, r->name, (int64_t)p, -1,
                    "RIFF MIDI file without a 'data' chunk holding the MIDI data");
}

static cm_status parse(rd *r, size_t len) {
    const uint8_t *b = r->buf;
    size_t pos = 0, end = len;
    char id[20];
    cm_status s;
    if (len >= 4 && memcmp(b, "RIFF", 4) == 0) {
        if ((s = unwrap_riff(r, len, &pos, &end))) return s;
    }
    if (end - pos < 4 || memcmp(b + pos, "MThd", 4) != 0) {
        if (end - pos < 4)
            return cm__fail(r->err, CM_E_NOT_MIDI, r->name, (int64_t)pos, -1,
                            "%zu bytes; a MIDI file starts with the 14-byte header 'MThd' "
                            "(not a Standard MIDI File)",
                            end - pos);
        return cm__fail(r->err, CM_E_NOT_MIDI, r->name, (int64_t)pos, -1,
                        "expected 'MThd', found %s (not a Standard MIDI File)",
                        chunk_id(id, b + pos));
    }
    if (end - pos < 14)
        return cm__fail(r->err, CM_E_TRUNCATED, r->name, (int64_t)pos, -1,
                        "the header chunk (MThd) needs 14 bytes, only %zu remain", end - pos);
    uint32_t hlen = be32(b + pos + 4);
    if (hlen < 6)
        return cm__fail(r->err, CM_E_HEADER, r->name, (int64_t)pos + 4, -1,
                        "MThd chunk length %lu, should be 6", (unsigned long)hlen);
    if (hlen > end - pos - 8)
        return cm__fail(r->err, CM_E_TRUNCATED, r->name, (int64_t)pos + 4, -1,
                        "MThd chunk length %lu, but only %zu bytes remain", (unsigned long)hlen,
                        end - pos - 8);
    int format = be16(b + pos + 8), ntracks = be16(b + pos + 10), div = be16(b + pos + 12);
    if (format > 2)
        return cm__fail(r->err, CM_E_HEADER, r->name, (int64_t)pos + 8, -1,
                        "format %d, should be 0, 1 or 2", format);
    if (ntracks > CM_MAX_TRACKS)
        return cm__fail(r->err, CM_E_LIMIT, r->name, (int64_t)pos + 10, -1,
                        "the header declares %d tracks, more than the limit of %d (CM_MAX_TRACKS)",
                        ntracks, CM_MAX_TRACKS);
    cm_division d;
    if (div & 0x8000) {
        d = cm_division_smpte(-(int)(int8_t)(uint8_t)(div >> 8), div & 0xFF);
        if (!cm_division_valid(d))
            return cm__fail(r->err, CM_E_HEADER, r->name, (int64_t)pos + 12, -1,
                            "SMPTE division 0x%04X: %d frames per second and %d ticks per frame; "
                            "expected 24, 25, 29 or 30 frames and 1..255 ticks",
                            div, d.smpte_fps, d.ticks_per_frame);
    } else {
        d = cm_division_ppq(div);
        if (div == 0)
            return cm__fail(r->err, CM_E_HEADER, r->name, (int64_t)pos + 12, -1,
                            "division of 0 ticks per quarter note, should be 1..32767");
    }
    cm_file *f = r->f = cm_file_new(format, d);
    if (!f) return cm__fail(r->err, CM_E_NOMEM, r->name, -1, -1, "out of memory");
    if (ntracks > 0 && !(f->tracks = calloc((size_t)ntracks, sizeof *f->tracks)))
        return cm__fail(r->err, CM_E_NOMEM, r->name, -1, -1, "out of memory for %d tracks", ntracks);
    if (format == 0 && ntracks != 1)
        cm__warn(f, "%s: format 0 with %d tracks (should have 1)", r->name, ntracks);
    pos += 8 + (size_t)hlen;
    while (f->n_tracks < ntracks) {
        if (end - pos < 8) {
            if (end == pos)
                return cm__fail(r->err, CM_E_TRUNCATED, r->name, (int64_t)pos, -1,
                                "the file ends after %d of the %d tracks the header declares",
                                f->n_tracks, ntracks);
            return cm__fail(r->err, CM_E_TRUNCATED, r->name, (int64_t)pos, -1,
                            "a chunk header needs 8 bytes, only %zu remain (after %d of %d tracks)",
                            end - pos, f->n_tracks, ntracks);
        }
        uint32_t n = be32(b + pos + 4);
        bool mtrk = memcmp(b + pos, "MTrk", 4) == 0;
        if (n > end - pos - 8)
            return cm__fail(r->err, CM_E_TRUNCATED, r->name, (int64_t)pos + 4,
                            mtrk ? f->n_tracks : -1,
                            "chunk %s declares %lu bytes but only %zu remain (the file is "
                            "truncated or the length is corrupt)",
                            chunk_id(id, b + pos), (unsigned long)n, end - pos - 8);
        if (mtrk) {
            int ti = f->n_tracks++;
            if ((s = parse_track(r, pos + 8, n, ti))) return s;
        } else {
            cm__warn(f, "%s: byte %zu: skipped a chunk %s of %lu bytes", r->name, pos,
                     chunk_id(id, b + pos), (unsigned long)n);
        }
        pos += 8 + (size_t)n;
    }
    if (pos < end)
        cm__warn(f, "%s: byte %zu: %zu bytes after the last track ignored", r->name, pos, end - pos);
    return CM_OK;
}

cm_status cm_read_mem(const void *buf, size_t len, const char *name, cm_file **out, cm_error *err) {
    if (!name) name = "<memory>";
    if (out) *out = NULL;
    if (!out || (!buf && len))
        return cm__fail(err, CM_E_ARG, name, -1, -1, "cm_read_mem: NULL %s", out ? "buffer" : "out");
    if (len > CM_MAX_FILE_BYTES)
        return cm__fail(err, CM_E_LIMIT, name, -1, -1,
                        "%zu bytes, more than the limit of %u (CM_MAX_FILE_BYTES)", len,
                        CM_MAX_FILE_BYTES);
    rd r = {.buf = buf, .name = name, .err = err};
    cm_status s = parse(&r, len);
    if (s) {
        cm_file_free(r.f);
        return s;
    }
    *out = r.f;
    if (err) {
        err->status = CM_OK;
        err->message[0] = '\0';
    }
    return CM_OK;
}

cm_status cm_read_file(const char *path, cm_file **out, cm_error *err) {
    if (out) *out = NULL;
    if (!path || !out)
        return cm__fail(err, CM_E_ARG, path, -1, -1, "cm_read_file: NULL %s", path ? "out" : "path");
    uint8_t *buf;
    size_t n;
    cm_status s = cm__read_whole(path, CM_MAX_FILE_BYTES, "CM_MAX_FILE_BYTES", &buf, &n, err);
    if (s) return s;
    s = cm_read_mem(buf, n, path, out, err);
    free(buf);
    return s;
}
