/* audio/midi.h — Standard MIDI Files: an in-memory model, a hardened reader, an atomic writer,
 * the tempo map (tick <-> seconds) and note extraction / building.
 *
 * Pure C11, no dependencies; knows nothing of tensors. Prefix cm_ ("cantor MIDI").
 *
 *   midi_file.c   the model (cm_file, cm_track, cm_event), errors, cm_strerror
 *   midi_read.c   cm_read_file / cm_read_mem: every read bounded, caps checked before allocating
 *   midi_write.c  cm_write_file (temporary file, fsync, rename) / cm_write_mem
 *   midi_tempo.c  cm_tempo_map: tempo, time and key signatures; tick <-> seconds
 *   midi_notes.c  cm_notes_extract: notes per track/channel/program (FIFO, sustain, drums)
 *   midi_build.c  cm_notes_from_array, cm_file_from_notes: notes -> a format 1 file
 *
 * Errors. Bad input is a cm_status plus, when the caller passes one, a cm_error record whose
 * message names the file, the byte offset and what was expected, e.g.
 *   "song.mid: byte 1234: running status without a previous status byte (track 2)"
 * The library never prints and never exits; `err` may be NULL everywhere.
 *
 * Ownership. cm_file_new / cm_read_* return a cm_file the caller releases with cm_file_free.
 * cm_tempo_map and cm_notes are caller-owned structs filled by an init/extract function and
 * released with cm_tempo_map_free / cm_notes_free. cm_write_mem returns a malloc'd buffer the
 * caller free()s. Every *_free accepts NULL (and a zeroed struct).
 *
 * Reading conventions (see midi_read.c for details): running status is kept across meta and
 * sysex events (lenient: real files rely on it); End of Track is not stored as an event but as
 * cm_track.end_tick; a track without one is accepted with a warning; chunks other than MThd /
 * MTrk are skipped; a RIFF "RMID" wrapper is unwrapped. */
#ifndef CANTOR_AUDIO_MIDI_H
#define CANTOR_AUDIO_MIDI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- limits (checked before anything is allocated) ------------------------------------------- */
#define CM_MAX_FILE_BYTES       (64u * 1024u * 1024u)  /* a larger file is refused */
#define CM_MAX_TRACKS           1024                   /* MThd's track count */
#define CM_MAX_EVENTS_PER_TRACK (4 * 1024 * 1024)
#define CM_MAX_EVENTS_TOTAL     (16 * 1024 * 1024)
/* Largest absolute tick: 2^30 - 1, so tick sums (start + duration, end + 1) never overflow an
 * int32. A delta time is at most 0x0FFFFFFF, so a track reaches this after 4 maximal deltas. */
#define CM_MAX_TICK             ((int64_t)0x3FFFFFFF)
#define CM_DEFAULT_TEMPO        500000                 /* us per quarter: 120 bpm */
#define CM_DEFAULT_PPQ          480
#define CM_DRUM_CHANNEL         9                      /* "channel 10" counted from 1 */

/* ---- errors --------------------------------------------------------------------------------- */
typedef enum cm_status {
    CM_OK = 0,
    CM_E_IO,        /* open/read/write/fsync/rename failed (the message has strerror) */
    CM_E_NOMEM,     /* out of memory */
    CM_E_NOT_MIDI,  /* no MThd chunk where one must be: not a Standard MIDI File */
    CM_E_HEADER,    /* MThd present but a field is invalid (length, format, division) */
    CM_E_TRUNCATED, /* the data ends before a chunk, event or header does */
    CM_E_EVENT,     /* an invalid event: status or data byte, running status, VLQ > 4 bytes */
    CM_E_LIMIT,     /* a cap above (file size, tracks, events) would be exceeded */
    CM_E_TICK,      /* an absolute tick beyond CM_MAX_TICK */
    CM_E_ARG,       /* an invalid argument from the caller (writer/builder input) */
    CM_E_FORMAT,    /* malformed text input (the polyphonic piano-roll format, ...) */
    CM_STATUS_COUNT
} cm_status;

/* A static text for a status ("running status..." lives in cm_error.message, not here). */
const char *cm_strerror(cm_status s);

typedef struct cm_error {
    cm_status status;
    char file[256];     /* the file name given to the reader/writer ("<memory>" for buffers) */
    int64_t offset;     /* byte offset in the file, -1 when the error has none */
    int track;          /* track index, -1 when the error has none */
    char message[1024]; /* full text: "song.mid: byte 1234: ... (track 2)" */
} cm_error;

/* ---- the model ------------------------------------------------------------------------------ */
typedef struct cm_division {
    int ppq;              /* ticks per quarter note (1..32767); 0 for SMPTE */
    int smpte_fps;        /* SMPTE frames per second: 24, 25, 29 (29.97 drop frame) or 30; 0 for PPQ */
    int ticks_per_frame;  /* SMPTE ticks per frame (1..255); 0 for PPQ */
} cm_division;

/* Meta event types (cm_event.meta_type when status == CM_META). */
enum {
    CM_META_SEQUENCE_NUMBER = 0x00,
    CM_META_TEXT = 0x01,
    CM_META_COPYRIGHT = 0x02,
    CM_META_TRACK_NAME = 0x03,
    CM_META_INSTRUMENT_NAME = 0x04,
    CM_META_LYRIC = 0x05,
    CM_META_MARKER = 0x06,
    CM_META_CUE_POINT = 0x07,
    CM_META_CHANNEL_PREFIX = 0x20,
    CM_META_END_OF_TRACK = 0x2F,
    CM_META_TEMPO = 0x51,
    CM_META_SMPTE_OFFSET = 0x54,
    CM_META_TIME_SIGNATURE = 0x58,
    CM_META_KEY_SIGNATURE = 0x59,
    CM_META_SEQUENCER = 0x7F
};

/* Channel message types (status & 0xF0) and the other status bytes. */
enum {
    CM_NOTE_OFF = 0x80,
    CM_NOTE_ON = 0x90,
    CM_POLY_PRESSURE = 0xA0,
    CM_CONTROL_CHANGE = 0xB0,
    CM_PROGRAM_CHANGE = 0xC0,
    CM_CHANNEL_PRESSURE = 0xD0,
    CM_PITCH_BEND = 0xE0,
    CM_SYSEX = 0xF0,         /* F0 <len> <bytes>: payload as stored, without the F0 */
    CM_SYSEX_ESCAPE = 0xF7,  /* F7 <len> <bytes>: continuation / escape */
    CM_META = 0xFF
};

#define CM_CC_SUSTAIN 64

typedef struct cm_event {
    int64_t tick;       /* absolute tick, 0..CM_MAX_TICK */
    uint32_t offset;    /* meta/sysex: first payload byte in the track's data[] */
    uint32_t length;    /* meta/sysex: payload bytes */
    uint8_t status;     /* 0x80..0xEF channel message (type | channel), CM_SYSEX, CM_SYSEX_ESCAPE, CM_META */
    uint8_t meta_type;  /* meta: its type; 0 otherwise */
    uint8_t data[2];    /* channel message data bytes (data[1] = 0 for program change / channel pressure) */
} cm_event;

typedef struct cm_track {
    cm_event *events;     /* in file order; ticks never decrease */
    int64_t n_events, cap_events;
    uint8_t *data;        /* meta and sysex payloads */
    size_t n_data, cap_data;
    int64_t end_tick;     /* End of Track tick (reader: the meta's tick, or the last event's) */
    bool has_end_of_track;/* reader: whether the track had one (writers always write one) */
} cm_track;

typedef struct cm_file {
    int format;            /* 0, 1 or 2 */
    cm_division division;
    int n_tracks;
    cm_track *tracks;      /* owned; cm_file_add_track may move it */
    int warnings;          /* problems tolerated while reading (missing End of Track, ...) */
    int missing_end_of_track; /* tracks without End of Track */
    char warning[256];     /* the first warning's text, "" when none */
} cm_file;

/* A new empty file (no tracks). format 0..2; division: a valid cm_division (cm_division_ppq).
 * NULL when out of memory or the arguments are invalid. Release with cm_file_free. */
cm_file *cm_file_new(int format, cm_division division);
void cm_file_free(cm_file *f);
cm_division cm_division_ppq(int ppq);
cm_division cm_division_smpte(int fps, int ticks_per_frame);
/* Whether d is a valid PPQ or SMPTE division. */
bool cm_division_valid(cm_division d);

/* Appends an empty track; returns its index, or -1 (out of memory, or CM_MAX_TRACKS reached).
 * The returned track is f->tracks[index]; earlier cm_track pointers may be invalidated. */
int cm_file_add_track(cm_file *f);

/* Appending events (ticks must not decrease within a track; the writer checks). Each returns
 * CM_OK, CM_E_NOMEM, CM_E_LIMIT or CM_E_ARG (bad status/data byte, tick < 0 or > CM_MAX_TICK). */
cm_status cm_track_add_channel(cm_track *t, int64_t tick, uint8_t status, uint8_t d0, uint8_t d1);
cm_status cm_track_add_meta(cm_track *t, int64_t tick, uint8_t type, const void *data, uint32_t len);
/* status: CM_SYSEX or CM_SYSEX_ESCAPE; data excludes the leading F0/F7 (include a final F7). */
cm_status cm_track_add_sysex(cm_track *t, int64_t tick, uint8_t status, const void *data, uint32_t len);
cm_status cm_track_add_tempo(cm_track *t, int64_t tick, uint32_t us_per_quarter); /* 1..0xFFFFFF */
/* denominator: a power of two 1..2^15; clocks_per_click 24 and 32nds 8 are the usual values. */
cm_status cm_track_add_time_signature(cm_track *t, int64_t tick, int numerator, int denominator,
                                      int clocks_per_click, int thirty_seconds_per_quarter);
cm_status cm_track_add_key_signature(cm_track *t, int64_t tick, int sharps_flats, bool minor);
/* A text-like meta (CM_META_TEXT .. CM_META_CUE_POINT) from a C string. */
cm_status cm_track_add_text(cm_track *t, int64_t tick, uint8_t type, const char *text);

/* The payload of a meta/sysex event (NULL when it has none). */
const uint8_t *cm_event_payload(const cm_track *t, const cm_event *e);
static inline bool cm_event_is_channel(const cm_event *e) { return e->status >= 0x80 && e->status < 0xF0; }
static inline int cm_event_type(const cm_event *e) { return cm_event_is_channel(e) ? (e->status & 0xF0) : e->status; }
static inline int cm_event_channel(const cm_event *e) { return e->status & 0x0F; }
/* Track name (first CM_META_TRACK_NAME meta) copied into buf (NUL-terminated, truncated); "" when
 * none. Returns buf. */
char *cm_track_name(const cm_track *t, char *buf, size_t cap);

/* ---- reading -------------------------------------------------------------------------------- */
/* Reads a Standard MIDI File. On success *out is a new cm_file (cm_file_free); on failure
 * *out = NULL and err (if given) says why. name (cm_read_mem) names the buffer in messages
 * (NULL: "<memory>"). */
cm_status cm_read_file(const char *path, cm_file **out, cm_error *err);
cm_status cm_read_mem(const void *buf, size_t len, const char *name, cm_file **out, cm_error *err);

/* ---- writing -------------------------------------------------------------------------------- */
typedef struct cm_write_opts {
    bool running_status;  /* omit repeated channel status bytes (smaller files) */
} cm_write_opts;

/* Writes f (any format) atomically: a temporary file next to path, fsync, rename over path.
 * On any failure (a full disk included) the temporary file is removed and an existing file at
 * path is untouched. opts may be NULL (running status off). Every track gets an End of Track
 * at max(end_tick, its last event's tick). */
cm_status cm_write_file(const cm_file *f, const char *path, const cm_write_opts *opts, cm_error *err);
/* The same bytes into a new malloc'd buffer (*out, *len); the caller free()s it. */
cm_status cm_write_mem(const cm_file *f, const cm_write_opts *opts, uint8_t **out, size_t *len,
                       cm_error *err);

/* ---- tempo map ------------------------------------------------------------------------------ */
typedef struct cm_tempo {
    int64_t tick;
    uint32_t us_per_quarter;
    double seconds;           /* time of tick (computed) */
} cm_tempo;

typedef struct cm_time_signature {
    int64_t tick;
    int numerator, denominator;  /* 6/8: 6 and 8 */
    int clocks_per_click, thirty_seconds_per_quarter;
} cm_time_signature;

typedef struct cm_key_signature {
    int64_t tick;
    int sharps_flats;  /* -7..7 */
    bool minor;
} cm_key_signature;

typedef struct cm_tempo_map {
    cm_division division;
    cm_tempo *tempos;    /* sorted by tick; tempos[0].tick == 0 (the default 500000 when none) */
    int n_tempos;
    cm_time_signature *time_signatures;  /* sorted by tick; may be empty */
    int n_time_signatures;
    cm_key_signature *key_signatures;    /* sorted by tick; may be empty */
    int n_key_signatures;
} cm_tempo_map;

/* Builds the map of f. track < 0: the tempo, time and key signature metas of every track
 * (formats 0 and 1; at one tick, the last one in track order wins); track >= 0: that track's
 * only (format 2 tracks are independent songs). Metas with a wrong length or a zero tempo are
 * ignored. For an SMPTE division, ticks are absolute time and tempos do not change it.
 * Release with cm_tempo_map_free. */
cm_status cm_tempo_map_init(cm_tempo_map *m, const cm_file *f, int track, cm_error *err);
/* A map with one tempo and (when numerator > 0) one time signature at tick 0. */
cm_status cm_tempo_map_init_simple(cm_tempo_map *m, cm_division division, uint32_t us_per_quarter,
                                   int numerator, int denominator);
/* Appends a tempo change, time signature (clocks 24, 32nds 8) or key signature: tick at or
 * after the previous one of its kind (the same tick replaces it). CM_E_ARG for invalid values,
 * CM_E_NOMEM. The map's division must be set (init_simple, or init from a file). */
cm_status cm_tempo_map_add_tempo(cm_tempo_map *m, int64_t tick, uint32_t us_per_quarter);
cm_status cm_tempo_map_add_time_signature(cm_tempo_map *m, int64_t tick, int numerator, int denominator);
cm_status cm_tempo_map_add_key_signature(cm_tempo_map *m, int64_t tick, int sharps_flats, bool minor);
void cm_tempo_map_free(cm_tempo_map *m);

/* Seconds at tick (ticks beyond the last tempo change continue at its tempo; tick < 0 gives 0). */
double cm_tick_to_seconds(const cm_tempo_map *m, int64_t tick);
/* The tick at seconds, rounded to nearest, clamped to 0..CM_MAX_TICK. */
int64_t cm_seconds_to_tick(const cm_tempo_map *m, double seconds);
/* Microseconds per quarter in effect at tick. */
uint32_t cm_tempo_at(const cm_tempo_map *m, int64_t tick);

/* ---- notes ---------------------------------------------------------------------------------- */
typedef struct cm_note {
    int64_t start_tick, end_tick;   /* end >= start */
    double start_s, end_s;
    uint8_t pitch, velocity, channel, program;
    int track;                      /* source track index */
    bool is_drum;                   /* channel == CM_DRUM_CHANNEL */
} cm_note;

/* One (track, channel, program): its notes are notes[first .. first + count). */
typedef struct cm_instrument {
    int track, channel, program;
    bool is_drum;
    char name[64];       /* the track's name ("" when none) */
    int64_t first, count;
} cm_instrument;

typedef struct cm_notes {
    cm_note *notes;      /* grouped by instrument; within one, sorted by start, pitch, end */
    int64_t n_notes;
    cm_instrument *instruments;  /* sorted by track, channel, program */
    int n_instruments;
    int64_t end_tick;    /* latest track end */
    double end_s;
    int unmatched_note_offs;  /* note-offs with no open note (ignored) */
    int closed_at_end;        /* notes still open at their track's end (closed there) */
} cm_notes;

typedef struct cm_notes_opts {
    bool sustain;        /* CC64 >= 64 holds note-offs until the pedal lifts (per channel) */
    bool skip_drums;     /* leave channel 10 out */
} cm_notes_opts;

/* Extracts notes. Rules: a note-on with velocity 0 is a note-off; a note-off closes the
 * earliest open note of its channel and pitch (FIFO); notes still open at their track's end
 * are closed there; the program is the channel's last program change before the note-on
 * (per track, 0 when none). With opts->sustain, a note-off while the channel's pedal is down
 * defers the note's end to the pedal's release, or to the next note-on of the same pitch on
 * that channel, whichever comes first. opts may be NULL (no sustain, drums kept).
 * Seconds come from the tempo map (format 2: each track's own). Release with cm_notes_free. */
cm_status cm_notes_extract(const cm_file *f, const cm_notes_opts *opts, cm_notes *out, cm_error *err);
void cm_notes_free(cm_notes *n);

/* Builds a cm_notes (grouped and sorted as above, instruments without names) from a plain
 * array of notes, which is copied. Seconds are copied as given. CM_E_ARG names the first bad
 * note (pitch/velocity > 127, channel > 15, end < start, tick outside 0..CM_MAX_TICK). */
cm_status cm_notes_from_array(cm_notes *out, const cm_note *notes, int64_t n, cm_error *err);

/* A format 1 file from notes: track 0 has the time signatures, key signatures and tempos of tm
 * (NULL: PPQ CM_DEFAULT_PPQ, 120 bpm, 4/4), then one track per instrument (its name, a program
 * change at tick 0, its notes as note-on / note-off 0x80 with velocity 64; at one tick note-offs
 * come before note-ons, except for zero-length notes). Velocity 0 is written as 1. The notes'
 * ticks are in tm's division. Returns a new cm_file (cm_file_free), or NULL with err set. */
cm_file *cm_file_from_notes(const cm_notes *notes, const cm_tempo_map *tm, cm_error *err);

/* ---- private (shared by the audio/ sources) ------------------------------------------------- */
#if defined(__GNUC__)
#define CM__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CM__PRINTF(a, b)
#endif
/* Fills err (when non-NULL) and returns s. offset/track: -1 when none. */
cm_status cm__fail(cm_error *err, cm_status s, const char *file, int64_t offset, int track,
                   const char *fmt, ...) CM__PRINTF(6, 7);
void cm__warn(cm_file *f, const char *fmt, ...) CM__PRINTF(2, 3);
/* The whole of path (a regular file or a pipe) in a malloc'd buffer (*out, one spare byte; the
 * caller frees it), refused as CM_E_LIMIT above limit bytes (limit_name in the message, e.g.
 * "CM_MAX_FILE_BYTES"). Messages name path. Serves cm_read_file and cm_poly_read_file. */
cm_status cm__read_whole(const char *path, uint32_t limit, const char *limit_name, uint8_t **out, size_t *n_out,
                         cm_error *err);
/* The atomic writer (audio/fileio.c), for the writers of every audio/ format: cm__atomic_begin
 * creates a temporary file next to path ("<path>.tmp-PID-K", read_too: opened read-write) and
 * returns its descriptor and *tmp (its malloc'd name); -1 (I/O) or -2 (out of memory) with the
 * reason in msg, naming the temporary file. cm__write_all writes len bytes (*done: how many
 * did), false with the reason (a full disk said so). cm__atomic_end(fd, path, tmp, ok): when
 * ok, fsync, close and rename over path, then fsync the folder; otherwise, or when one of those
 * fails (false, msg), close and remove the temporary file: an existing file at path is touched
 * only by a whole successful write. It closes fd and frees tmp either way. */
int cm__atomic_begin(const char *path, bool read_too, char **tmp, char *msg, size_t n);
bool cm__write_all(int fd, const void *p, size_t len, const char *tmp, size_t *done, char *msg, size_t n);
bool cm__atomic_end(int fd, const char *path, char *tmp, bool ok, char *msg, size_t n);
/* Sorts n->notes (track, channel, program, start, pitch, end, velocity) and rebuilds
 * n->instruments (names empty). CM_E_NOMEM on failure. */
cm_status cm__notes_group(cm_notes *n);

#ifdef __cplusplus
}
#endif
#endif
