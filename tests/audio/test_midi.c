/* tests/audio/test_midi.c — Standard MIDI Files: mido-written fixtures, round trips, the tempo
 * map, note rules (FIFO, velocity 0, sustain, drums), every malformed case with its message,
 * the caps, the atomic writer, and the fuzzer's regression files. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "audio/fileio.h"
#include "audio/midi.h"
#include "fuzz/fuzz_midi_body.h"

#define FX(name) ("fixtures/midi/" name)

/* ---- helpers ------------------------------------------------------------------------------ */

/* tests/tmp/<stem>_<pid>.<ext>: unique per process */
static const char *tmp_path(char *buf, size_t cap, const char *stem, const char *ext) {
    if (mkdir("tmp", 0777) != 0) ck_assert_int_eq(errno, EEXIST);
    snprintf(buf, cap, "tmp/%s_%ld.%s", stem, (long)getpid(), ext);
    return buf;
}

/* Bytes from hex text ("4d 54 68 64 ..."; spaces ignored). */
static size_t unhex(const char *hex, uint8_t *out, size_t cap) {
    size_t n = 0;
    int hi = -1;
    for (const char *p = hex; *p; p++) {
        int v;
        if (*p >= '0' && *p <= '9') v = *p - '0';
        else if (*p >= 'a' && *p <= 'f') v = *p - 'a' + 10;
        else if (*p >= 'A' && *p <= 'F') v = *p - 'A' + 10;
        else continue;
        if (hi < 0) {
            hi = v;
        } else {
            ck_assert_uint_lt(n, cap);
            out[n++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    ck_assert_int_eq(hi, -1);
    return n;
}

/* An event as mido's bytes: "90 3c 40", "ff 51 07 a1 20", "f0 7e ... f7". */
static void event_hex(const cm_track *t, const cm_event *e, char *out, size_t cap) {
    size_t n = 0;
    n += (size_t)snprintf(out + n, cap - n, "%02x", e->status);
    if (cm_event_is_channel(e)) {
        n += (size_t)snprintf(out + n, cap - n, " %02x", e->data[0]);
        int type = cm_event_type(e);
        if (type != CM_PROGRAM_CHANGE && type != CM_CHANNEL_PRESSURE)
            n += (size_t)snprintf(out + n, cap - n, " %02x", e->data[1]);
        return;
    }
    if (e->status == CM_META) n += (size_t)snprintf(out + n, cap - n, " %02x", e->meta_type);
    const uint8_t *p = cm_event_payload(t, e);
    for (uint32_t i = 0; i < e->length && n + 4 < cap; i++) n += (size_t)snprintf(out + n, cap - n, " %02x", p[i]);
}

static cm_file *read_ok(const char *path) {
    cm_error err;
    cm_file *f = NULL;
    cm_status s = cm_read_file(path, &f, &err);
    ck_assert_msg(s == CM_OK, "reading %s: %s", path, err.message);
    ck_assert_ptr_nonnull(f);
    return f;
}

static cm_file *read_hex_ok(const char *hex) {
    uint8_t b[512];
    size_t n = unhex(hex, b, sizeof b);
    cm_error err;
    cm_file *f = NULL;
    ck_assert_msg(cm_read_mem(b, n, "hex.mid", &f, &err) == CM_OK, "%s", err.message);
    return f;
}

static void assert_has(const char *msg, const char *want) {
    ck_assert_msg(strstr(msg, want) != NULL, "message \"%s\" lacks \"%s\"", msg, want);
}

static void assert_note(const cm_note *n, int track, int ch, int pitch, int vel, int prog,
                        int64_t start, int64_t end) {
    ck_assert_msg(n->track == track && n->channel == ch && n->pitch == pitch && n->velocity == vel &&
                      n->program == prog && n->start_tick == start && n->end_tick == end,
                  "note track %d ch %d pitch %d vel %d prog %d %lld..%lld, expected track %d ch %d "
                  "pitch %d vel %d prog %d %lld..%lld",
                  n->track, n->channel, n->pitch, n->velocity, n->program, (long long)n->start_tick,
                  (long long)n->end_tick, track, ch, pitch, vel, prog, (long long)start, (long long)end);
}

/* ---- the mido fixtures ------------------------------------------------------------------------ */
static const char *const MIDO_FIXTURES[] = {
    "drums", "fmt0_running_status", "fmt1_tempo_changes", "fmt2", "overlap_vel0",
    "smpte_25fps", "smpte_2997", "sustain", "sysex",
};
#define N_MIDO (int)(sizeof MIDO_FIXTURES / sizeof *MIDO_FIXTURES)

static void check_notes_line(const cm_notes *notes, int64_t *k, const char *line, const char *path) {
    int tr, ch, pitch, vel, prog;
    long long start, end;
    double ss, es;
    ck_assert_int_eq(sscanf(line, "%d %d %d %d %d %lld %lld %lf %lf", &tr, &ch, &pitch, &vel, &prog,
                            &start, &end, &ss, &es), 9);
    ck_assert_msg(*k < notes->n_notes, "%s: mido has more notes than cantor (%lld)", path,
                  (long long)notes->n_notes);
    const cm_note *n = &notes->notes[(*k)++];
    assert_note(n, tr, ch, pitch, vel, prog, start, end);
    ck_assert_double_eq_tol(n->start_s, ss, 1e-6);
    ck_assert_double_eq_tol(n->end_s, es, 1e-6);
    ck_assert(n->is_drum == (ch == 9));
}

START_TEST(test_mido_fixtures) {
    const char *name = MIDO_FIXTURES[_i];
    char mid[128], txt[128];
    snprintf(mid, sizeof mid, "fixtures/midi/%s.mid", name);
    snprintf(txt, sizeof txt, "fixtures/midi/%s.txt", name);
    cm_file *f = read_ok(mid);
    ck_assert_int_eq(f->warnings, 0);
    cm_tempo_map map;
    ck_assert_int_eq(cm_tempo_map_init(&map, f, -1, NULL), CM_OK);
    cm_notes plain, held;
    ck_assert_int_eq(cm_notes_extract(f, NULL, &plain, NULL), CM_OK);
    ck_assert_int_eq(cm_notes_extract(f, &(cm_notes_opts){.sustain = true}, &held, NULL), CM_OK);
    FILE *in = fopen(txt, "r");
    ck_assert_msg(in != NULL, "cannot open %s", txt);
    char line[4096], want[4096];
    int64_t ev_idx[CM_MAX_TRACKS] = {0}, n_plain = 0, n_held = 0;
    int n_tempo = 0, n_ts = 0;
    while (fgets(line, sizeof line, in)) {
        line[strcspn(line, "\n")] = '\0';
        int tr, a, b, c;
        long long tick;
        int used = 0;
        if (sscanf(line, "header %d %d %d", &a, &b, &c) == 3) {
            ck_assert_int_eq(f->format, a);
            ck_assert_int_eq(f->n_tracks, b);
            if (c > 0) {
                ck_assert_int_eq(f->division.ppq, c);
            } else {
                ck_assert_int_eq(f->division.smpte_fps, -(c >> 8));
                ck_assert_int_eq(f->division.ticks_per_frame, c & 0xFF);
            }
        } else if (sscanf(line, "ev %d %lld %n", &tr, &tick, &used) == 2) {
            ck_assert_int_lt(tr, f->n_tracks);
            const cm_track *t = &f->tracks[tr];
            ck_assert_msg(ev_idx[tr] < t->n_events, "%s: track %d has too few events", mid, tr);
            const cm_event *e = &t->events[ev_idx[tr]++];
            ck_assert_int_eq(e->tick, tick);
            event_hex(t, e, want, sizeof want);
            ck_assert_str_eq(want, line + used);
        } else if (sscanf(line, "eot %d %lld", &tr, &tick) == 2) {
            ck_assert_int_eq(f->tracks[tr].end_tick, tick);
            ck_assert(f->tracks[tr].has_end_of_track);
            ck_assert_int_eq(ev_idx[tr], f->tracks[tr].n_events);
        } else if (sscanf(line, "tempo %lld %d", &tick, &a) == 2) {
            ck_assert_int_lt(n_tempo, map.n_tempos);
            ck_assert_int_eq(map.tempos[n_tempo].tick, tick);
            ck_assert_int_eq(map.tempos[n_tempo].us_per_quarter, a);
            n_tempo++;
        } else if (sscanf(line, "timesig %lld %d %d", &tick, &a, &b) == 3) {
            ck_assert_int_lt(n_ts, map.n_time_signatures);
            ck_assert_int_eq(map.time_signatures[n_ts].tick, tick);
            ck_assert_int_eq(map.time_signatures[n_ts].numerator, a);
            ck_assert_int_eq(map.time_signatures[n_ts].denominator, b);
            n_ts++;
        } else if (strncmp(line, "note ", 5) == 0) {
            check_notes_line(&plain, &n_plain, line + 5, mid);
        } else if (strncmp(line, "snote ", 6) == 0) {
            check_notes_line(&held, &n_held, line + 6, mid);
        } else {
            ck_abort_msg("%s: unexpected line \"%s\"", txt, line);
        }
    }
    fclose(in);
    ck_assert_int_eq(n_plain, plain.n_notes);
    ck_assert_int_eq(n_held, held.n_notes);
    if (f->format != 2) {
        ck_assert_int_eq(n_tempo, map.n_tempos);
        ck_assert_int_eq(n_ts, map.n_time_signatures);
    }
    /* what cantor writes with running status is byte for byte what mido wrote */
    size_t n_orig, n_out;
    uint8_t *orig = tu_slurp(mid, &n_orig), *out;
    ck_assert_int_eq(cm_write_mem(f, &(cm_write_opts){.running_status = true}, &out, &n_out, NULL), CM_OK);
    ck_assert_uint_eq(n_out, n_orig);
    ck_assert(memcmp(out, orig, n_orig) == 0);
    /* and the buffer reader agrees with the file reader */
    cm_file *g = NULL;
    ck_assert_int_eq(cm_read_mem(orig, n_orig, mid, &g, NULL), CM_OK);
    fz_same_files(f, g);
    cm_file_free(g);
    free(out);
    free(orig);
    cm_notes_free(&plain);
    cm_notes_free(&held);
    cm_tempo_map_free(&map);
    cm_file_free(f);
}
END_TEST

/* Details of a few fixtures beyond what mido's listing covers. */
START_TEST(test_fixture_details) {
    cm_file *f = read_ok(FX("fmt1_tempo_changes.mid"));
    cm_tempo_map m;
    ck_assert_int_eq(cm_tempo_map_init(&m, f, -1, NULL), CM_OK);
    ck_assert_int_eq(m.n_key_signatures, 1);
    ck_assert_int_eq(m.key_signatures[0].sharps_flats, 1); /* G major */
    ck_assert(!m.key_signatures[0].minor);
    ck_assert_int_eq(m.time_signatures[1].clocks_per_click, 24);
    ck_assert_int_eq(m.time_signatures[1].thirty_seconds_per_quarter, 8);
    cm_tempo_map_free(&m);
    char name[64];
    ck_assert_str_eq(cm_track_name(&f->tracks[2], name, sizeof name), "bass");
    cm_notes n;
    ck_assert_int_eq(cm_notes_extract(f, NULL, &n, NULL), CM_OK);
    ck_assert_int_eq(n.n_instruments, 2);
    ck_assert_str_eq(n.instruments[0].name, "piano");
    ck_assert_int_eq(n.instruments[1].program, 33);
    ck_assert_int_eq(n.instruments[1].count, 4);
    cm_notes_free(&n);
    cm_file_free(f);

    f = read_ok(FX("overlap_vel0.mid"));
    ck_assert_int_eq(cm_notes_extract(f, NULL, &n, NULL), CM_OK);
    ck_assert_int_eq(n.unmatched_note_offs, 1);
    ck_assert_int_eq(n.closed_at_end, 1);
    ck_assert_int_eq(n.end_tick, 960);
    ck_assert_double_eq_tol(n.end_s, 2.0, 1e-9);
    cm_notes_free(&n);
    cm_file_free(f);

    f = read_ok(FX("drums.mid"));
    ck_assert_int_eq(cm_notes_extract(f, NULL, &n, NULL), CM_OK);
    ck_assert_int_eq(n.n_instruments, 2);
    ck_assert(n.instruments[0].is_drum && !n.instruments[1].is_drum);
    ck_assert_int_eq(n.instruments[0].count, 8);
    cm_notes_free(&n);
    ck_assert_int_eq(cm_notes_extract(f, &(cm_notes_opts){.skip_drums = true}, &n, NULL), CM_OK);
    ck_assert_int_eq(n.n_notes, 1);
    ck_assert_int_eq(n.n_instruments, 1);
    ck_assert_int_eq(n.notes[0].pitch, 72);
    ck_assert(!n.notes[0].is_drum);
    cm_notes_free(&n);
    cm_file_free(f);

    f = read_ok(FX("sysex.mid"));
    const cm_track *t = &f->tracks[0];
    ck_assert_int_eq(t->events[0].status, CM_SYSEX);
    ck_assert_int_eq(t->events[0].length, 5); /* 7e 7f 09 01 f7 */
    ck_assert_int_eq(cm_event_payload(t, &t->events[0])[4], 0xF7);
    cm_file_free(f);
}
END_TEST

/* ---- round trips -------------------------------------------------------------------------- */
static cm_note mk_note(int ch, int prog, int pitch, int vel, int64_t start, int64_t end) {
    return (cm_note){.start_tick = start, .end_tick = end, .pitch = (uint8_t)pitch,
                     .velocity = (uint8_t)vel, .channel = (uint8_t)ch, .program = (uint8_t)prog};
}

START_TEST(test_roundtrip_notes) {
    cm_note v[64];
    int n = 0;
    for (int i = 0; i < 16; i++) /* a melody, ch 0 piano */
        v[n++] = mk_note(0, 0, 60 + (i * 5) % 13, 40 + i * 5, i * 240, i * 240 + 200);
    for (int i = 0; i < 4; i++) /* chords, ch 1 strings, notes held across each other */
        for (int k = 0; k < 3; k++) v[n++] = mk_note(1, 48, 48 + 4 * k, 70, i * 960 + k * 10, i * 960 + 1200);
    for (int i = 0; i < 8; i++) v[n++] = mk_note(9, 0, 36 + (i % 3), 110, i * 480, i * 480 + 60); /* drums */
    v[n++] = mk_note(0, 0, 90, 77, 5000, 5000);   /* zero length */
    v[n++] = mk_note(0, 0, 61, 90, 6000, 6240);   /* back to back, same pitch */
    v[n++] = mk_note(0, 0, 61, 91, 6240, 6480);
    cm_notes notes;
    ck_assert_int_eq(cm_notes_from_array(&notes, v, n, NULL), CM_OK);
    ck_assert_int_eq(notes.n_instruments, 3);
    snprintf(notes.instruments[0].name, sizeof notes.instruments[0].name, "Piano");
    snprintf(notes.instruments[2].name, sizeof notes.instruments[2].name, "Drums");
    ck_assert(notes.instruments[2].is_drum);

    cm_tempo_map tm;
    ck_assert_int_eq(cm_tempo_map_init_simple(&tm, cm_division_ppq(480), 500000, 4, 4), CM_OK);
    ck_assert_int_eq(cm_tempo_map_add_tempo(&tm, 1920, 600000), CM_OK);
    ck_assert_int_eq(cm_tempo_map_add_tempo(&tm, 5000, 450000), CM_OK);
    ck_assert_int_eq(cm_tempo_map_add_time_signature(&tm, 3840, 3, 4), CM_OK);
    ck_assert_int_eq(cm_tempo_map_add_time_signature(&tm, 5280, 6, 8), CM_OK);
    ck_assert_int_eq(cm_tempo_map_add_key_signature(&tm, 0, -3, true), CM_OK);

    cm_error err;
    cm_file *f = cm_file_from_notes(&notes, &tm, &err);
    ck_assert_msg(f != NULL, "%s", err.message);
    ck_assert_int_eq(f->format, 1);
    ck_assert_int_eq(f->n_tracks, 4);
    char path[256];
    tmp_path(path, sizeof path, "midi_roundtrip", "mid");
    size_t sizes[2];
    for (int rs = 0; rs < 2; rs++) {
        ck_assert_int_eq(cm_write_file(f, path, &(cm_write_opts){.running_status = rs == 1}, &err), CM_OK);
        cm_file *g = read_ok(path);
        struct stat st;
        ck_assert_int_eq(stat(path, &st), 0);
        sizes[rs] = (size_t)st.st_size;
        ck_assert_int_eq(g->warnings, 0);
        fz_same_files(f, g);
        cm_tempo_map back;
        ck_assert_int_eq(cm_tempo_map_init(&back, g, -1, NULL), CM_OK);
        ck_assert_int_eq(back.n_tempos, 3);
        for (int i = 0; i < 3; i++) {
            ck_assert_int_eq(back.tempos[i].tick, tm.tempos[i].tick);
            ck_assert_int_eq(back.tempos[i].us_per_quarter, tm.tempos[i].us_per_quarter);
            ck_assert_double_eq_tol(back.tempos[i].seconds, tm.tempos[i].seconds, 1e-12);
        }
        ck_assert_int_eq(back.n_time_signatures, 3);
        ck_assert_int_eq(back.time_signatures[2].tick, 5280);
        ck_assert_int_eq(back.time_signatures[2].numerator, 6);
        ck_assert_int_eq(back.time_signatures[2].denominator, 8);
        ck_assert_int_eq(back.n_key_signatures, 1);
        ck_assert_int_eq(back.key_signatures[0].sharps_flats, -3);
        ck_assert(back.key_signatures[0].minor);
        cm_notes got;
        ck_assert_int_eq(cm_notes_extract(g, NULL, &got, NULL), CM_OK);
        ck_assert_int_eq(got.n_notes, notes.n_notes);
        ck_assert_int_eq(got.n_instruments, 3);
        ck_assert_str_eq(got.instruments[0].name, "Piano");
        ck_assert_str_eq(got.instruments[1].name, "");
        ck_assert_str_eq(got.instruments[2].name, "Drums");
        for (int64_t i = 0; i < got.n_notes; i++) {
            const cm_note *a = &notes.notes[i];
            int ti = 1 + (a->channel == 0 ? 0 : a->channel == 1 ? 1 : 2);
            assert_note(&got.notes[i], ti, a->channel, a->pitch, a->velocity, a->program,
                        a->start_tick, a->end_tick);
            ck_assert_double_eq_tol(got.notes[i].start_s, cm_tick_to_seconds(&tm, a->start_tick), 1e-12);
            ck_assert(got.notes[i].is_drum == (a->channel == 9));
        }
        ck_assert_int_eq(got.closed_at_end, 0);
        ck_assert_int_eq(got.unmatched_note_offs, 0);
        cm_notes_free(&got);
        cm_tempo_map_free(&back);
        cm_file_free(g);
    }
    ck_assert_uint_lt(sizes[1], sizes[0]); /* running status saves bytes */
    unlink(path);
    cm_file_free(f);
    cm_tempo_map_free(&tm);

    /* with no tempo map: PPQ 480, 120 bpm, 4/4; SMPTE too */
    f = cm_file_from_notes(&notes, NULL, &err);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(f->division.ppq, CM_DEFAULT_PPQ);
    cm_tempo_map dm;
    ck_assert_int_eq(cm_tempo_map_init(&dm, f, -1, NULL), CM_OK);
    ck_assert_int_eq(dm.n_tempos, 1);
    ck_assert_int_eq(dm.tempos[0].us_per_quarter, 500000);
    ck_assert_int_eq(dm.n_time_signatures, 1);
    ck_assert_int_eq(dm.time_signatures[0].numerator, 4);
    cm_tempo_map_free(&dm);
    cm_file_free(f);
    ck_assert_int_eq(cm_tempo_map_init_simple(&tm, cm_division_smpte(30, 4), 500000, 0, 0), CM_OK);
    f = cm_file_from_notes(&notes, &tm, &err);
    ck_assert_ptr_nonnull(f);
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(cm_write_mem(f, NULL, &buf, &len, NULL), CM_OK);
    ck_assert_int_eq(buf[12], 0xE2); /* -30 */
    ck_assert_int_eq(buf[13], 4);
    cm_file *g = NULL;
    ck_assert_int_eq(cm_read_mem(buf, len, NULL, &g, NULL), CM_OK);
    ck_assert_int_eq(g->division.smpte_fps, 30);
    ck_assert_int_eq(g->division.ticks_per_frame, 4);
    cm_notes got;
    ck_assert_int_eq(cm_notes_extract(g, NULL, &got, NULL), CM_OK);
    ck_assert_double_eq_tol(got.notes[1].start_s, (double)got.notes[1].start_tick / 120.0, 1e-12);
    cm_notes_free(&got);
    cm_file_free(g);
    free(buf);
    cm_file_free(f);
    cm_tempo_map_free(&tm);
    cm_notes_free(&notes);
}
END_TEST

/* Every event kind through the model, the writer and the reader. */
START_TEST(test_roundtrip_events) {
    cm_file *f = cm_file_new(0, cm_division_ppq(96));
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(cm_file_add_track(f), 0);
    cm_track *t = &f->tracks[0];
    ck_assert_int_eq(cm_track_add_text(t, 0, CM_META_TRACK_NAME, "all\x01kinds"), CM_OK);
    ck_assert_int_eq(cm_track_add_text(t, 0, CM_META_INSTRUMENT_NAME, "synth"), CM_OK);
    ck_assert_int_eq(cm_track_add_tempo(t, 0, 123456), CM_OK);
    ck_assert_int_eq(cm_track_add_time_signature(t, 0, 7, 8, 36, 8), CM_OK);
    ck_assert_int_eq(cm_track_add_key_signature(t, 0, 7, false), CM_OK);
    uint8_t sx[] = {0x43, 0x12, 0x00, 0xF7}, esc[] = {0xF3, 0x01};
    ck_assert_int_eq(cm_track_add_sysex(t, 1, CM_SYSEX, sx, sizeof sx), CM_OK);
    ck_assert_int_eq(cm_track_add_sysex(t, 1, CM_SYSEX_ESCAPE, esc, sizeof esc), CM_OK);
    uint8_t unknown[] = {1, 2, 3};
    ck_assert_int_eq(cm_track_add_meta(t, 2, 0x60, unknown, 3), CM_OK);
    ck_assert_int_eq(cm_track_add_meta(t, 2, CM_META_TEXT, NULL, 0), CM_OK);
    for (int k = 0; k < 7; k++) {
        uint8_t st = (uint8_t)(0x80 + 16 * k + k);
        ck_assert_int_eq(cm_track_add_channel(t, 10 + k, st, 0x7F, 0x55), CM_OK);
        ck_assert_int_eq(cm_track_add_channel(t, 10 + k, st, 1, 2), CM_OK); /* running status */
    }
    t->end_tick = 500;
    char name[64];
    ck_assert_str_eq(cm_track_name(t, name, sizeof name), "all?kinds");
    ck_assert_str_eq(cm_track_name(t, name, 4), "all");
    for (int rs = 0; rs < 2; rs++) {
        uint8_t *buf;
        size_t len;
        ck_assert_int_eq(cm_write_mem(f, &(cm_write_opts){.running_status = rs}, &buf, &len, NULL), CM_OK);
        cm_file *g = NULL;
        ck_assert_int_eq(cm_read_mem(buf, len, "events", &g, NULL), CM_OK);
        fz_same_files(f, g);
        /* program change and channel pressure keep one data byte */
        ck_assert_int_eq(g->tracks[0].events[19].data[1], 0);
        ck_assert_int_eq(g->tracks[0].end_tick, 500);
        cm_file_free(g);
        free(buf);
    }
    cm_file_free(f);
}
END_TEST

/* ---- tempo map ------------------------------------------------------------------------------ */
START_TEST(test_tempo_map) {
    /* 120 bpm for 2 beats, then 60 bpm, then 240 bpm, PPQ 100 */
    cm_file *f = cm_file_new(1, cm_division_ppq(100));
    cm_file_add_track(f);
    cm_file_add_track(f);
    ck_assert_int_eq(cm_track_add_tempo(&f->tracks[0], 200, 1000000), CM_OK);
    ck_assert_int_eq(cm_track_add_tempo(&f->tracks[1], 400, 250000), CM_OK); /* in another track */
    ck_assert_int_eq(cm_track_add_tempo(&f->tracks[1], 600, 0x000001), CM_OK);
    ck_assert_int_eq(cm_track_add_tempo(&f->tracks[1], 600, 500000), CM_OK); /* same tick: last wins */
    uint8_t bad[2] = {1, 2}, zero[3] = {0, 0, 0};
    ck_assert_int_eq(cm_track_add_meta(&f->tracks[1], 700, CM_META_TEMPO, bad, 2), CM_OK);  /* ignored */
    ck_assert_int_eq(cm_track_add_meta(&f->tracks[1], 700, CM_META_TEMPO, zero, 3), CM_OK); /* ignored */
    cm_tempo_map m;
    ck_assert_int_eq(cm_tempo_map_init(&m, f, -1, NULL), CM_OK);
    ck_assert_int_eq(m.n_tempos, 4);
    ck_assert_int_eq(m.tempos[3].us_per_quarter, 500000);
    const int64_t ticks[] = {0, 50, 200, 300, 400, 500, 600, 1000};
    const double secs[] = {0, 0.25, 1.0, 2.0, 3.0, 3.25, 3.5, 5.5};
    for (int i = 0; i < 8; i++) {
        ck_assert_double_eq_tol(cm_tick_to_seconds(&m, ticks[i]), secs[i], 1e-12);
        ck_assert_int_eq(cm_seconds_to_tick(&m, secs[i]), ticks[i]);
    }
    for (int64_t t = 0; t < 2000; t += 7) ck_assert_int_eq(cm_seconds_to_tick(&m, cm_tick_to_seconds(&m, t)), t);
    ck_assert_int_eq(cm_seconds_to_tick(&m, 0.2549), 51); /* rounds to nearest */
    ck_assert_int_eq(cm_seconds_to_tick(&m, -1.0), 0);
    ck_assert_int_eq(cm_seconds_to_tick(&m, NAN), 0);
    ck_assert_int_eq(cm_seconds_to_tick(&m, 1e300), CM_MAX_TICK);
    ck_assert_double_eq(cm_tick_to_seconds(&m, -5), 0.0);
    ck_assert_int_eq(cm_tempo_at(&m, 199), 500000);
    ck_assert_int_eq(cm_tempo_at(&m, 200), 1000000);
    ck_assert_int_eq(cm_tempo_at(&m, 450), 250000);
    cm_tempo_map_free(&m);
    /* one track only (format 2 style) */
    ck_assert_int_eq(cm_tempo_map_init(&m, f, 0, NULL), CM_OK);
    ck_assert_int_eq(m.n_tempos, 2);
    ck_assert_double_eq_tol(cm_tick_to_seconds(&m, 1000), 1.0 + 8.0, 1e-12);
    cm_tempo_map_free(&m);
    cm_error err;
    ck_assert_int_eq(cm_tempo_map_init(&m, f, 5, &err), CM_E_ARG);
    assert_has(err.message, "no such track");
    cm_file_free(f);

    /* no tempo at all: 120 bpm */
    f = cm_file_new(0, cm_division_ppq(480));
    ck_assert_int_eq(cm_tempo_map_init(&m, f, -1, NULL), CM_OK);
    ck_assert_int_eq(m.n_tempos, 1);
    ck_assert_double_eq_tol(cm_tick_to_seconds(&m, 960), 1.0, 1e-12);
    cm_tempo_map_free(&m);
    cm_file_free(f);
    cm_tempo_map z = {.division = cm_division_ppq(96)}; /* no tempos at all: 120 bpm */
    ck_assert_int_eq(cm_seconds_to_tick(&z, 1.0), 192);
    ck_assert_double_eq_tol(cm_tick_to_seconds(&z, 96), 0.5, 1e-12);
    ck_assert_int_eq(cm_tempo_map_add_tempo(&z, 96, 1000000), CM_OK); /* adds the default at 0 */
    ck_assert_int_eq(z.n_tempos, 2);
    ck_assert_double_eq_tol(cm_tick_to_seconds(&z, 192), 1.5, 1e-12);
    ck_assert_int_eq(cm_tempo_map_add_time_signature(&z, 0, 3, 4), CM_OK);
    ck_assert_int_eq(cm_tempo_map_add_time_signature(&z, 0, 5, 8), CM_OK); /* same tick: replaces */
    ck_assert_int_eq(z.n_time_signatures, 1);
    ck_assert_int_eq(z.time_signatures[0].denominator, 8);
    ck_assert_int_eq(cm_tempo_map_add_key_signature(&z, 10, 1, false), CM_OK);
    ck_assert_int_eq(cm_tempo_map_add_key_signature(&z, 10, -1, true), CM_OK);
    ck_assert_int_eq(cm_tempo_map_add_key_signature(&z, 5, 0, false), CM_E_ARG);
    ck_assert_int_eq(z.n_key_signatures, 1);
    ck_assert_int_eq(z.key_signatures[0].sharps_flats, -1);
    cm_tempo_map_free(&z);
    ck_assert_int_eq(cm_tempo_at(&z, 5), CM_DEFAULT_TEMPO);
    ck_assert_double_eq(cm_tick_to_seconds(&z, 5), 0.0);

    /* SMPTE: 25 fps x 40 = 1000 ticks/s; 29.97 x 80; tempo changes do not matter */
    ck_assert_int_eq(cm_tempo_map_init_simple(&m, cm_division_smpte(25, 40), 500000, 4, 4), CM_OK);
    ck_assert_int_eq(cm_tempo_map_add_tempo(&m, 100, 250000), CM_OK);
    ck_assert_double_eq_tol(cm_tick_to_seconds(&m, 2500), 2.5, 1e-12);
    ck_assert_int_eq(cm_seconds_to_tick(&m, 2.5), 2500);
    ck_assert_double_eq_tol(m.tempos[1].seconds, 0.1, 1e-12);
    cm_tempo_map_free(&m);
    ck_assert_int_eq(cm_tempo_map_init_simple(&m, cm_division_smpte(29, 80), 500000, 0, 0), CM_OK);
    ck_assert_double_eq_tol(cm_tick_to_seconds(&m, 2398), 2398 / (80 * 30000.0 / 1001.0), 1e-12);
    ck_assert_int_eq(cm_seconds_to_tick(&m, 1.0), 2398);
    ck_assert_int_eq(m.n_time_signatures, 0);
    cm_tempo_map_free(&m);

    /* argument checks */
    ck_assert_int_eq(cm_tempo_map_init_simple(&m, cm_division_ppq(0), 500000, 4, 4), CM_E_ARG);
    ck_assert_int_eq(cm_tempo_map_init_simple(&m, cm_division_ppq(96), 0, 4, 4), CM_E_ARG);
    ck_assert_int_eq(cm_tempo_map_init_simple(&m, cm_division_ppq(96), 500000, 4, 3), CM_E_ARG);
    ck_assert_int_eq(cm_tempo_map_init_simple(&m, cm_division_ppq(96), 500000, 4, 4), CM_OK);
    ck_assert_int_eq(cm_tempo_map_add_tempo(&m, 100, 400000), CM_OK);
    ck_assert_int_eq(cm_tempo_map_add_tempo(&m, 50, 400000), CM_E_ARG);
    ck_assert_int_eq(cm_tempo_map_add_tempo(&m, 100, 0x1000000), CM_E_ARG);
    ck_assert_int_eq(cm_tempo_map_add_time_signature(&m, 0, 0, 4), CM_E_ARG);
    ck_assert_int_eq(cm_tempo_map_add_key_signature(&m, 0, 8, false), CM_E_ARG);
    cm_tempo_map_free(&m);
    cm_tempo_map_free(&m); /* a freed map is zeroed */
    cm_tempo_map_free(NULL);
}
END_TEST

/* ---- malformed files ------------------------------------------------------------------------ */
#define HDR1 "4d546864 00000006 0001 0001 0060 " /* format 1, one track, PPQ 96 */
#define MTRK "4d54726b "

typedef struct bad_case {
    const char *hex;
    cm_status status;
    int64_t offset;
    int track;
    const char *message; /* a substring of the full message */
} bad_case;

static const bad_case BAD[] = {
    {"", CM_E_NOT_MIDI, 0, -1, "bad.mid: byte 0: 0 bytes; a MIDI file starts with the 14-byte header 'MThd'"},
    {"52494658 00000000", CM_E_NOT_MIDI, 0, -1, "expected 'MThd', found 'RIFX' (not a Standard MIDI File)"},
    {"00ff1234", CM_E_NOT_MIDI, 0, -1, "found 00 FF 12 34"},
    {"4d546864 00000006 0001", CM_E_TRUNCATED, 0, -1, "the header chunk (MThd) needs 14 bytes, only 10 remain"},
    {"4d546864 00000002 0001 0001 0060", CM_E_HEADER, 4, -1, "bad.mid: byte 4: MThd chunk length 2, should be 6"},
    {"4d546864 00000040 0001 0001 0060", CM_E_TRUNCATED, 4, -1, "MThd chunk length 64, but only 6 bytes remain"},
    {"4d546864 00000006 0003 0001 0060", CM_E_HEADER, 8, -1, "byte 8: format 3, should be 0, 1 or 2"},
    {"4d546864 00000006 0001 0001 0000", CM_E_HEADER, 12, -1, "division of 0 ticks per quarter note, should be 1..32767"},
    {"4d546864 00000006 0001 0001 e928", CM_E_HEADER, 12, -1, "SMPTE division 0xE928: 23 frames per second"},
    {"4d546864 00000006 0001 0001 e700", CM_E_HEADER, 12, -1, "0 ticks per frame"},
    {"4d546864 00000006 0001 1388 0060", CM_E_LIMIT, 10, -1,
     "the header declares 5000 tracks, more than the limit of 1024 (CM_MAX_TRACKS)"},
    {"4d546864 00000006 0001 0002 0060" MTRK "00000004 00ff2f00", CM_E_TRUNCATED, 26, -1,
     "the file ends after 1 of the 2 tracks the header declares"},
    {HDR1 MTRK "000000", CM_E_TRUNCATED, 14, -1, "a chunk header needs 8 bytes, only 7 remain"},
    {HDR1 MTRK "00000064 00903c40", CM_E_TRUNCATED, 18, 0,
     "bad.mid: byte 18: chunk 'MTrk' declares 100 bytes but only 4 remain (the file is truncated or the length is corrupt) (track 0)"},
    {HDR1 MTRK "ffffffff 00903c40", CM_E_TRUNCATED, 18, 0, "declares 4294967295 bytes but only 4 remain"},
    {HDR1 "4a554e4b ffffffff 00", CM_E_TRUNCATED, 18, -1, "chunk 'JUNK' declares 4294967295 bytes"},
    {HDR1 MTRK "00000004 003c4000", CM_E_EVENT, 23, 0,
     "bad.mid: byte 23: running status without a previous status byte (track 0)"},
    {HDR1 MTRK "00000008 ffffffff 7f903c40", CM_E_EVENT, 22, 0,
     "delta time longer than 4 bytes (FF FF FF FF ...); a variable-length quantity has at most 4"},
    /* deltas of 0x0FFFFFFF: naively 8 of them plus 7 reach tick 2147483647 */
    {HDR1 MTRK "0000003c ffffff7f ff0100 ffffff7f ff0100 ffffff7f ff0100 ffffff7f ff0100 "
              "ffffff7f ff0100 ffffff7f ff0100 ffffff7f ff0100 ffffff7f ff0100 07903c40",
     CM_E_TICK, 50, 0,
     "byte 50: absolute tick 1342177275 (delta 268435455 after tick 1073741820) exceeds the limit 1073741823"},
    {HDR1 MTRK "00000004 00903c90", CM_E_EVENT, 25, 0,
     "data byte 0x90 in a note-on event (status 0x90); expected a value 0..127"},
    {HDR1 MTRK "00000003 00f400", CM_E_EVENT, 23, 0, "status byte 0xF4 (a system common or real-time message) is not allowed"},
    {HDR1 MTRK "00000003 00903c", CM_E_TRUNCATED, 24, 0, "the track ends inside a note-on event (status 0x90 needs 2 data bytes, 1 remain)"},
    {HDR1 MTRK "00000003 00c0", CM_E_TRUNCATED, 18, 0, "chunk 'MTrk' declares 3 bytes but only 2 remain"},
    {HDR1 MTRK "00000002 00c0", CM_E_TRUNCATED, 24, 0, "program change event (status 0xC0 needs 1 data bytes, 0 remain)"},
    {HDR1 MTRK "00000003 00b040", CM_E_TRUNCATED, 24, 0, "inside a control change event"},
    {HDR1 MTRK "00000003 00e040", CM_E_TRUNCATED, 24, 0, "inside a pitch bend event"},
    {HDR1 MTRK "00000003 00a040", CM_E_TRUNCATED, 24, 0, "inside a poly pressure event"},
    {HDR1 MTRK "00000002 00d0", CM_E_TRUNCATED, 24, 0, "inside a channel pressure event"},
    {HDR1 MTRK "00000003 00803c", CM_E_TRUNCATED, 24, 0, "inside a note-off event"},
    {HDR1 MTRK "00000005 00903c4000", CM_E_TRUNCATED, 27, 0, "the track ends after a delta time; expected an event"},
    {HDR1 MTRK "00000004 00ff8500", CM_E_EVENT, 24, 0, "meta event type 0x85; expected 0x00..0x7F"},
    {HDR1 MTRK "00000007 00ff01ff ffff7f", CM_E_TRUNCATED, 23, 0,
     "meta event 0x01 declares 268435455 bytes but only 0 remain in the track"},
    {HDR1 MTRK "00000005 00f00501 02", CM_E_TRUNCATED, 23, 0, "sysex event 0xF0 declares 5 bytes but only 2 remain"},
    {HDR1 MTRK "00000003 00ff01", CM_E_TRUNCATED, 25, 0, "the track ends inside a meta event length"},
    {HDR1 MTRK "00000002 00ff", CM_E_TRUNCATED, 24, 0, "expected its type byte"},
    {HDR1 MTRK "00000001 80", CM_E_TRUNCATED, 23, 0, "the track ends inside a delta time"},
    {"52494646 04000000 57415645", CM_E_NOT_MIDI, 0, -1, "a RIFF file that is not RIFF MIDI"},
    {"52494646 10000000 524d4944 4c495354 00000000", CM_E_NOT_MIDI, 20, -1, "without a 'data' chunk"},
};
#define N_BAD (int)(sizeof BAD / sizeof *BAD)

START_TEST(test_malformed) {
    const bad_case *c = &BAD[_i];
    uint8_t b[512];
    size_t n = unhex(c->hex, b, sizeof b);
    cm_error err;
    static cm_file dummy;
    cm_file *f = &dummy; /* must become NULL */
    cm_status s = cm_read_mem(b, n, "bad.mid", &f, &err);
    ck_assert_msg(s == c->status, "case %d: status %d (%s), expected %d; message: %s", _i, s,
                  cm_strerror(s), c->status, err.message);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(err.status, c->status);
    ck_assert_msg(err.offset == c->offset, "case %d: offset %lld, expected %lld (%s)", _i,
                  (long long)err.offset, (long long)c->offset, err.message);
    ck_assert_int_eq(err.track, c->track);
    ck_assert_str_eq(err.file, "bad.mid");
    assert_has(err.message, c->message);
    ck_assert(strncmp(err.message, "bad.mid: ", 9) == 0);
    /* the same through a file, and with no error record */
    char path[256];
    tmp_path(path, sizeof path, "midi_bad", "mid");
    tu_spit(path, b, n);
    ck_assert_int_eq(cm_read_file(path, &f, &err), c->status);
    ck_assert(strncmp(err.message, path, strlen(path)) == 0);
    assert_has(err.message, c->message + (strncmp(c->message, "bad.mid: ", 9) == 0 ? 9 : 0));
    ck_assert_int_eq(cm_read_file(path, &f, NULL), c->status);
    unlink(path);
}
END_TEST

START_TEST(test_read_errors) {
    cm_error err;
    cm_file *f = NULL;
    ck_assert_int_eq(cm_read_file("fixtures/midi/does_not_exist.mid", &f, &err), CM_E_IO);
    ck_assert_str_eq(err.message, "fixtures/midi/does_not_exist.mid: cannot open: No such file or directory");
    ck_assert_int_eq(err.offset, -1);
    ck_assert_int_eq(cm_read_file("fixtures/midi", &f, &err), CM_E_IO);
    assert_has(err.message, "Is a directory");
    ck_assert_int_eq(cm_read_file(NULL, &f, &err), CM_E_ARG);
    ck_assert_int_eq(cm_read_file("x.mid", NULL, &err), CM_E_ARG);
    ck_assert_int_eq(cm_read_mem(NULL, 5, "x", &f, &err), CM_E_ARG);
    ck_assert_int_eq(cm_read_mem(NULL, 0, NULL, &f, &err), CM_E_NOT_MIDI);
    assert_has(err.message, "<memory>: byte 0: 0 bytes");

    /* the file-size cap is checked before anything is read or allocated */
    uint8_t one = 0;
    ck_assert_int_eq(cm_read_mem(&one, (size_t)CM_MAX_FILE_BYTES + 1, "big.mid", &f, &err), CM_E_LIMIT);
    ck_assert_str_eq(err.message, "big.mid: 67108865 bytes, more than the limit of 67108864 (CM_MAX_FILE_BYTES)");
    char path[256];
    tmp_path(path, sizeof path, "midi_huge", "mid");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, (off_t)CM_MAX_FILE_BYTES + 100), 0); /* sparse */
    close(fd);
    ck_assert_int_eq(cm_read_file(path, &f, &err), CM_E_LIMIT);
    assert_has(err.message, "67108964 bytes, more than the limit of 67108864");
    unlink(path);
    ck_assert_ptr_null(f);

    /* a device without a size: read up to the cap, then refused */
    ck_assert_int_eq(cm_read_file("/dev/zero", &f, &err), CM_E_LIMIT);
    ck_assert_str_eq(err.message, "/dev/zero: more than 67108864 bytes (CM_MAX_FILE_BYTES)");
    /* a pipe: read to its end */
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        size_t n;
        uint8_t *b = tu_slurp(FX("fmt1_tempo_changes.mid"), &n);
        for (size_t i = 0; i < n; i += 7) /* in small pieces */
            if (write(fds[1], b + i, n - i < 7 ? n - i : 7) < 0) _exit(1);
        free(b);
        _exit(0);
    }
    close(fds[1]);
    char fdpath[64];
    snprintf(fdpath, sizeof fdpath, "/dev/fd/%d", fds[0]);
    ck_assert_msg(cm_read_file(fdpath, &f, &err) == CM_OK, "%s", err.message);
    close(fds[0]);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_int_eq(f->n_tracks, 3);
    cm_file *g = read_ok(FX("fmt1_tempo_changes.mid"));
    fz_same_files(f, g);
    cm_file_free(g);
    cm_file_free(f);

    /* the status texts */
    for (int s = 0; s < CM_STATUS_COUNT; s++) {
        ck_assert(strlen(cm_strerror((cm_status)s)) > 0);
        for (int k = 0; k < s; k++) ck_assert_str_ne(cm_strerror((cm_status)s), cm_strerror((cm_status)k));
    }
    ck_assert_str_eq(cm_strerror(CM_STATUS_COUNT), "unknown MIDI status");
    ck_assert_str_eq(cm_strerror(CM_E_TRUNCATED), "truncated MIDI data");
}
END_TEST

/* The per-track event cap: 4M events fit, one more does not (program changes with running
 * status: 2 bytes an event). */
START_TEST(test_event_cap) {
    if (getenv("CT_TEST_QUICK")) return; /* valgrind: too slow */
    for (int extra = 0; extra < 2; extra++) {
        size_t nev = (size_t)CM_MAX_EVENTS_PER_TRACK + (size_t)extra;
        size_t len = 22 + 3 + 2 * (nev - 1);
        uint8_t *b = malloc(len);
        ck_assert_ptr_nonnull(b);
        uint8_t hdr[22];
        ck_assert_uint_eq(unhex(HDR1 MTRK "00000000", hdr, sizeof hdr), 22);
        memcpy(b, hdr, 22);
        uint32_t tl = (uint32_t)(len - 22);
        for (int k = 0; k < 4; k++) b[18 + k] = (uint8_t)(tl >> (24 - 8 * k));
        b[22] = 0;
        b[23] = 0xC0;
        b[24] = 5;
        for (size_t i = 1; i < nev; i++) b[25 + 2 * (i - 1)] = 0, b[26 + 2 * (i - 1)] = 5;
        cm_error err;
        cm_file *f = NULL;
        cm_status s = cm_read_mem(b, len, "many.mid", &f, &err);
        if (extra == 0) {
            ck_assert_msg(s == CM_OK, "%s", err.message);
            ck_assert_int_eq(f->tracks[0].n_events, CM_MAX_EVENTS_PER_TRACK);
            ck_assert_int_eq(f->missing_end_of_track, 1);
        } else {
            ck_assert_int_eq(s, CM_E_LIMIT);
            ck_assert_int_eq(err.offset, (int64_t)(len - 2));
            assert_has(err.message, "the track has more than 4194304 events (the limit CM_MAX_EVENTS_PER_TRACK) (track 0)");
        }
        cm_file_free(f);
        free(b);
    }
}
END_TEST

/* ---- tolerated oddities ------------------------------------------------------------------- */
START_TEST(test_tolerated) {
    /* no End of Track: accepted, closed at the last event, counted */
    cm_file *f = read_hex_ok(HDR1 MTRK "00000008 00903c40 60903e40");
    ck_assert_int_eq(f->missing_end_of_track, 1);
    ck_assert_int_eq(f->warnings, 1);
    ck_assert(!f->tracks[0].has_end_of_track);
    ck_assert_int_eq(f->tracks[0].end_tick, 96);
    assert_has(f->warning, "hex.mid: byte 30: track 0 has no End of Track; closed at tick 96");
    cm_notes n;
    ck_assert_int_eq(cm_notes_extract(f, NULL, &n, NULL), CM_OK);
    ck_assert_int_eq(n.n_notes, 2);
    ck_assert_int_eq(n.closed_at_end, 2);
    assert_note(&n.notes[0], 0, 0, 60, 64, 0, 0, 96);
    assert_note(&n.notes[1], 0, 0, 62, 64, 0, 96, 96);
    cm_notes_free(&n);
    cm_file_free(f);

    /* a foreign chunk skipped, data after End of Track and after the last track ignored,
     * running status across a meta and a sysex event, an unknown meta kept raw */
    f = read_hex_ok("4d546864 00000008 0001 0001 0060 ffff " /* MThd longer than 6 */
                    "58595a21 00000003 010203 " MTRK "00000017 00903c40 00ff7f02 0102 00f00143 "
                    "003e40 10ff2f00 0000 " "0000");
    ck_assert_int_eq(f->warnings, 3);
    assert_has(f->warning, "skipped a chunk 'XYZ!' of 3 bytes");
    const cm_track *t = &f->tracks[0];
    ck_assert(t->has_end_of_track);
    ck_assert_int_eq(t->end_tick, 16);
    ck_assert_int_eq(t->n_events, 4);
    ck_assert_int_eq(t->events[1].meta_type, CM_META_SEQUENCER);
    ck_assert_int_eq(cm_event_payload(t, &t->events[1])[1], 2);
    ck_assert_int_eq(t->events[2].status, CM_SYSEX);
    ck_assert_int_eq(t->events[3].status, 0x90);
    ck_assert_int_eq(t->events[3].data[0], 0x3E);
    cm_file_free(f);

    /* format 0 with two tracks: read, flagged; the writer refuses it */
    f = read_hex_ok("4d546864 00000006 0000 0002 0060" MTRK "00000004 00ff2f00" MTRK "00000004 00ff2f00");
    ck_assert_int_eq(f->n_tracks, 2);
    assert_has(f->warning, "format 0 with 2 tracks (should have 1)");
    uint8_t *buf;
    size_t len;
    cm_error err;
    ck_assert_int_eq(cm_write_mem(f, NULL, &buf, &len, &err), CM_E_ARG);
    assert_has(err.message, "format 0 must have exactly 1 track, it has 2");
    ck_assert_ptr_null(buf);
    cm_file_free(f);

    /* zero tracks */
    f = read_hex_ok("4d546864 00000006 0001 0000 01e0");
    ck_assert_int_eq(f->n_tracks, 0);
    ck_assert_int_eq(f->division.ppq, 480);
    cm_file_free(f);

    /* RIFF MIDI (RMID) around a standard file */
    f = read_hex_ok("52494646 2c000000 524d4944 494e464f 02000000 4142 "
                    "64617461 1a000000 4d546864 00000006 0000 0001 0060" MTRK "00000004 00ff2f00");
    ck_assert_int_eq(f->format, 0);
    ck_assert_int_eq(f->n_tracks, 1);
    cm_file_free(f);

    /* the largest tick the limit allows: 4 maximal deltas and 3 */
    f = read_hex_ok(HDR1 MTRK "0000001c ffffff7f 903c40 ffffff7f 3c00 ffffff7f 3c40 ffffff7f 3c00 03 3e40");
    ck_assert_int_eq(f->missing_end_of_track, 1);
    ck_assert_int_eq(f->tracks[0].end_tick, CM_MAX_TICK);
    ck_assert_int_eq(f->tracks[0].events[4].tick, CM_MAX_TICK);
    ck_assert_int_eq(cm_notes_extract(f, NULL, &n, NULL), CM_OK);
    ck_assert_int_eq(n.n_notes, 3);
    assert_note(&n.notes[2], 0, 0, 62, 64, 0, CM_MAX_TICK, CM_MAX_TICK);
    cm_notes_free(&n);
    ck_assert_int_eq(cm_write_mem(f, NULL, &buf, &len, &err), CM_OK);
    cm_file *g = NULL;
    ck_assert_int_eq(cm_read_mem(buf, len, NULL, &g, NULL), CM_OK);
    fz_same_files(f, g);
    cm_file_free(g);
    free(buf);
    cm_file_free(f);
}
END_TEST

/* ---- note rules ----------------------------------------------------------------------------- */
START_TEST(test_note_rules) {
    cm_file *f = cm_file_new(1, cm_division_ppq(100));
    cm_file_add_track(f);
    cm_file_add_track(f);
    cm_track *t = &f->tracks[0];
    /* FIFO on channel 0 pitch 60: on 0, on 10, off 20 (closes the first), off 30 */
    cm_track_add_channel(t, 0, 0x90, 60, 100);
    cm_track_add_channel(t, 10, 0x90, 60, 90);
    cm_track_add_channel(t, 20, 0x90, 60, 0);
    cm_track_add_channel(t, 30, 0x80, 60, 64);
    /* program changes split instruments, per channel */
    cm_track_add_channel(t, 40, 0xC0, 5, 0);
    cm_track_add_channel(t, 40, 0xC1, 7, 0);
    cm_track_add_channel(t, 50, 0x90, 61, 70);
    cm_track_add_channel(t, 50, 0x91, 61, 71);
    cm_track_add_channel(t, 60, 0x80, 61, 0);
    cm_track_add_channel(t, 60, 0x81, 61, 0);
    /* pedal on channel 0: a note released under it lasts to the lift */
    cm_track_add_channel(t, 70, 0xB0, CM_CC_SUSTAIN, 100);
    cm_track_add_channel(t, 70, 0x90, 62, 50);
    cm_track_add_channel(t, 80, 0x80, 62, 0);
    cm_track_add_channel(t, 90, 0xB0, CM_CC_SUSTAIN, 63); /* lifts (< 64) */
    /* drums */
    cm_track_add_channel(t, 100, 0x99, 36, 127);
    cm_track_add_channel(t, 110, 0x89, 36, 0);
    t->end_tick = 200;
    /* the other track: its own program state; a note left open */
    cm_track_add_channel(&f->tracks[1], 5, 0x90, 40, 20);
    f->tracks[1].end_tick = 150;

    cm_notes n;
    ck_assert_int_eq(cm_notes_extract(f, NULL, &n, NULL), CM_OK);
    ck_assert_int_eq(n.n_notes, 7);
    ck_assert_int_eq(n.n_instruments, 5);
    assert_note(&n.notes[0], 0, 0, 60, 100, 0, 0, 20);
    assert_note(&n.notes[1], 0, 0, 60, 90, 0, 10, 30);
    assert_note(&n.notes[2], 0, 0, 61, 70, 5, 50, 60);
    assert_note(&n.notes[3], 0, 0, 62, 50, 5, 70, 80); /* pedal ignored */
    ck_assert_int_eq(n.instruments[1].program, 5);
    assert_note(&n.notes[4], 0, 1, 61, 71, 7, 50, 60);
    assert_note(&n.notes[5], 0, 9, 36, 127, 0, 100, 110);
    ck_assert(n.notes[5].is_drum && n.instruments[3].is_drum && !n.notes[4].is_drum);
    assert_note(&n.notes[6], 1, 0, 40, 20, 0, 5, 150);
    ck_assert_int_eq(n.closed_at_end, 1);
    ck_assert_int_eq(n.end_tick, 200);
    ck_assert_double_eq_tol(n.notes[6].end_s, 0.75, 1e-12);
    ck_assert_double_eq_tol(n.end_s, 1.0, 1e-12);
    cm_notes_free(&n);

    ck_assert_int_eq(cm_notes_extract(f, &(cm_notes_opts){.sustain = true}, &n, NULL), CM_OK);
    assert_note(&n.notes[3], 0, 0, 62, 50, 5, 70, 90); /* held to the lift */
    cm_notes_free(&n);
    ck_assert_int_eq(cm_notes_extract(f, &(cm_notes_opts){.sustain = true, .skip_drums = true}, &n, NULL), CM_OK);
    ck_assert_int_eq(n.n_notes, 6);
    ck_assert_int_eq(n.n_instruments, 4);
    cm_notes_free(&n);
    cm_notes_free(&n); /* zeroed: a no-op */
    cm_notes_free(NULL);
    cm_error err;
    ck_assert_int_eq(cm_notes_extract(NULL, NULL, &n, &err), CM_E_ARG);
    assert_has(err.message, "NULL file");
    cm_file_free(f);

    /* a hand-built track whose end_tick was left at 0: notes never end before they start */
    f = cm_file_new(0, cm_division_ppq(96));
    cm_file_add_track(f);
    cm_track_add_channel(&f->tracks[0], 0, 0xB0, CM_CC_SUSTAIN, 127);
    cm_track_add_channel(&f->tracks[0], 10, 0x90, 60, 1);
    cm_track_add_channel(&f->tracks[0], 20, 0x80, 60, 1);
    cm_track_add_channel(&f->tracks[0], 30, 0x90, 62, 1);
    ck_assert_int_eq(cm_notes_extract(f, &(cm_notes_opts){.sustain = true}, &n, NULL), CM_OK);
    assert_note(&n.notes[0], 0, 0, 60, 1, 0, 10, 10);
    assert_note(&n.notes[1], 0, 0, 62, 1, 0, 30, 30);
    cm_notes_free(&n);
    cm_file_free(f);
}
END_TEST

START_TEST(test_builder) {
    cm_error err;
    cm_notes n;
    cm_note bad = mk_note(0, 0, 128, 64, 0, 10);
    cm_note ok2[2] = {mk_note(0, 0, 60, 64, 0, 10), bad};
    ck_assert_int_eq(cm_notes_from_array(&n, ok2, 2, &err), CM_E_ARG);
    assert_has(err.message, "note 1: pitch 128, velocity 64, channel 0, program 0");
    ck_assert_ptr_null(n.notes);
    cm_note back = mk_note(16, 0, 60, 64, 0, 10);
    ck_assert_int_eq(cm_notes_from_array(&n, &back, 1, &err), CM_E_ARG);
    back = mk_note(0, 0, 60, 64, 20, 10);
    ck_assert_int_eq(cm_notes_from_array(&n, &back, 1, &err), CM_E_ARG);
    assert_has(err.message, "note 0: ticks 20..10; expected 0 <= start <= end <= 1073741823");
    ck_assert_int_eq(cm_notes_from_array(&n, NULL, 0, &err), CM_OK);
    ck_assert_int_eq(n.n_notes, 0);
    cm_file *f = cm_file_from_notes(&n, NULL, &err);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(f->n_tracks, 1); /* the conductor track only */
    cm_file_free(f);
    cm_notes_free(&n);

    /* velocity 0 is written as 1; ticks beyond a delta's reach are refused by the writer */
    cm_note v[2] = {mk_note(3, 9, 70, 0, 0, 10), mk_note(3, 9, 71, 100, 0x10000000, 0x10000001)};
    ck_assert_int_eq(cm_notes_from_array(&n, v, 1, NULL), CM_OK);
    f = cm_file_from_notes(&n, NULL, &err);
    ck_assert_int_eq(f->tracks[1].events[0].status, 0xC3);
    ck_assert_int_eq(f->tracks[1].events[0].data[0], 9);
    ck_assert_int_eq(f->tracks[1].events[1].data[1], 1);
    cm_file_free(f);
    cm_notes_free(&n);
    ck_assert_int_eq(cm_notes_from_array(&n, v, 2, NULL), CM_OK);
    f = cm_file_from_notes(&n, NULL, &err);
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(cm_write_mem(f, NULL, &buf, &len, &err), CM_E_ARG);
    /* the conductor track ends with the song: too far after its last event */
    assert_has(err.message, "End of Track at tick 268435457 is too far after the last event (tick 0) (track 0)");
    cm_file_free(f);
    /* a broken instrument table */
    n.instruments[0].count = 5;
    ck_assert_ptr_null(cm_file_from_notes(&n, NULL, &err));
    assert_has(err.message, "instrument 0: notes 0..+5 of 2");
    cm_notes_free(&n);
    ck_assert_ptr_null(cm_file_from_notes(NULL, NULL, &err));
    ck_assert_int_eq(cm_notes_from_array(&n, NULL, 3, &err), CM_E_ARG);
    ck_assert_int_eq(cm_notes_from_array(&n, v, -1, &err), CM_E_ARG);
    /* 1024 instruments need 1025 tracks */
    cm_note *many = malloc(1024 * sizeof *many);
    for (int i = 0; i < 1024; i++) many[i] = mk_note(i % 16, i / 16, 60, 64, 0, 10);
    ck_assert_int_eq(cm_notes_from_array(&n, many, 1024, NULL), CM_OK);
    ck_assert_int_eq(n.n_instruments, 1024);
    ck_assert_ptr_null(cm_file_from_notes(&n, NULL, &err));
    ck_assert_str_eq(err.message, "<notes>: 1024 instruments need more than 1024 tracks");
    cm_notes_free(&n);
    ck_assert_int_eq(cm_notes_from_array(&n, many, 1023, NULL), CM_OK);
    f = cm_file_from_notes(&n, NULL, &err);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(f->n_tracks, 1024);
    cm_file_free(f);
    cm_tempo_map bad_tm = {.division = cm_division_ppq(0)};
    ck_assert_ptr_null(cm_file_from_notes(&n, &bad_tm, &err));
    assert_has(err.message, "invalid division in the tempo map (ppq 0, SMPTE 0/0)");
    cm_notes_free(&n);
    free(many);
}
END_TEST

/* ---- the model's API -------------------------------------------------------------------------- */
START_TEST(test_model_api) {
    ck_assert_ptr_null(cm_file_new(3, cm_division_ppq(96)));
    ck_assert_ptr_null(cm_file_new(1, cm_division_ppq(0)));
    ck_assert_ptr_null(cm_file_new(1, cm_division_ppq(40000)));
    ck_assert_ptr_null(cm_file_new(1, cm_division_smpte(26, 4)));
    ck_assert_ptr_null(cm_file_new(1, cm_division_smpte(30, 0)));
    ck_assert(cm_division_valid(cm_division_smpte(29, 255)));
    cm_file_free(NULL);
    cm_file *f = cm_file_new(2, cm_division_ppq(96));
    for (int i = 0; i < CM_MAX_TRACKS; i++) ck_assert_int_eq(cm_file_add_track(f), i);
    ck_assert_int_eq(cm_file_add_track(f), -1);
    ck_assert_int_eq(cm_file_add_track(NULL), -1);
    cm_track *t = &f->tracks[7];
    ck_assert_int_eq(cm_track_add_channel(t, 0, 0x7F, 0, 0), CM_E_ARG);
    ck_assert_int_eq(cm_track_add_channel(t, 0, 0xF0, 0, 0), CM_E_ARG);
    ck_assert_int_eq(cm_track_add_channel(t, 0, 0x90, 128, 0), CM_E_ARG);
    ck_assert_int_eq(cm_track_add_channel(t, -1, 0x90, 1, 0), CM_E_ARG);
    ck_assert_int_eq(cm_track_add_channel(t, CM_MAX_TICK + 1, 0x90, 1, 0), CM_E_ARG);
    ck_assert_int_eq(cm_track_add_channel(NULL, 0, 0x90, 1, 0), CM_E_ARG);
    ck_assert_int_eq(cm_track_add_meta(t, 0, 0x80, NULL, 0), CM_E_ARG);
    ck_assert_int_eq(cm_track_add_meta(t, 0, 0x01, NULL, 3), CM_E_ARG);
    ck_assert_int_eq(cm_track_add_sysex(t, 0, 0xF1, "x", 1), CM_E_ARG);
    ck_assert_int_eq(cm_track_add_tempo(t, 0, 0), CM_E_ARG);
    ck_assert_int_eq(cm_track_add_tempo(t, 0, 0x1000000), CM_E_ARG);
    ck_assert_int_eq(cm_track_add_time_signature(t, 0, 4, 6, 24, 8), CM_E_ARG);
    ck_assert_int_eq(cm_track_add_time_signature(t, 0, 0, 4, 24, 8), CM_E_ARG);
    ck_assert_int_eq(cm_track_add_key_signature(t, 0, -8, false), CM_E_ARG);
    ck_assert_int_eq(cm_track_add_text(t, 0, CM_META_TEMPO, "x"), CM_E_ARG);
    ck_assert_int_eq(cm_track_add_text(t, 0, CM_META_TEXT, NULL), CM_E_ARG);
    ck_assert_int_eq(t->n_events, 0);
    ck_assert_int_eq(cm_track_add_channel(t, 5, 0xC0, 1, 99), CM_OK);
    ck_assert_int_eq(t->events[0].data[1], 0);
    ck_assert_ptr_null(cm_event_payload(t, &t->events[0]));
    ck_assert_int_eq(cm_event_type(&t->events[0]), CM_PROGRAM_CHANGE);
    ck_assert_int_eq(cm_event_channel(&t->events[0]), 0);
    ck_assert(cm_event_is_channel(&t->events[0]));
    cm_event probe = {.status = 0x9A};
    ck_assert_int_eq(cm_event_channel(&probe), 10);
    ck_assert_int_eq(cm_event_type(&probe), CM_NOTE_ON);
    probe.status = CM_META;
    ck_assert(!cm_event_is_channel(&probe));
    ck_assert_int_eq(cm_event_type(&probe), CM_META);
    char name[8];
    ck_assert_str_eq(cm_track_name(t, name, sizeof name), "");
    /* the writer checks what the model allows */
    cm_error err;
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(cm_track_add_channel(t, 2, 0x90, 1, 1), CM_OK); /* tick goes back */
    ck_assert_int_eq(cm_write_mem(f, NULL, &buf, &len, &err), CM_E_ARG);
    ck_assert_str_eq(err.message, "<memory>: event 1 at tick 2 comes after tick 5 (events must be sorted by tick, within 0..1073741823) (track 7)");
    t->n_events = 1;
    t->events[0].data[0] = 200;
    ck_assert_int_eq(cm_write_mem(f, NULL, &buf, &len, &err), CM_E_ARG);
    assert_has(err.message, "event 0: status 0xC0 with data 200 0 is not a valid MIDI event");
    t->events[0].data[0] = 1;
    ck_assert_int_eq(cm_track_add_text(t, 6, CM_META_TEXT, "abc"), CM_OK);
    t->events[1].length = 10;
    ck_assert_int_eq(cm_write_mem(f, NULL, &buf, &len, &err), CM_E_ARG);
    assert_has(err.message, "event 1: payload of 10 bytes at 0 is outside the track's 3 data bytes");
    t->events[1].length = 3;
    ck_assert_int_eq(cm_write_mem(f, NULL, &buf, &len, NULL), CM_OK);
    ck_assert_uint_eq(len, 14 + CM_MAX_TRACKS * 12 + 10);
    free(buf);
    ck_assert_int_eq(cm_track_add_channel(t, 6 + 0x10000000, 0x90, 1, 1), CM_OK);
    ck_assert_int_eq(cm_write_mem(f, NULL, &buf, &len, &err), CM_E_ARG);
    assert_has(err.message, "event 2: a gap of 268435456 ticks, more than a delta time can hold (268435455) (track 7)");
    t->n_events = 2;
    ck_assert_int_eq(cm_write_mem(NULL, NULL, &buf, &len, &err), CM_E_ARG);
    ck_assert_int_eq(cm_write_mem(f, NULL, NULL, &len, &err), CM_E_ARG);
    f->division.ppq = 0;
    ck_assert_int_eq(cm_write_mem(f, NULL, &buf, &len, &err), CM_E_ARG);
    assert_has(err.message, "invalid division");
    cm_file_free(f);
}
END_TEST

/* ---- the atomic writer -------------------------------------------------------------------- */
static cm_file *song(int notes) {
    cm_note *v = malloc((size_t)notes * sizeof *v);
    for (int i = 0; i < notes; i++) v[i] = mk_note(i % 3, 0, 40 + i % 50, 90, i * 10, i * 10 + 25);
    cm_notes n;
    ck_assert_int_eq(cm_notes_from_array(&n, v, notes, NULL), CM_OK);
    cm_file *f = cm_file_from_notes(&n, NULL, NULL);
    ck_assert_ptr_nonnull(f);
    cm_notes_free(&n);
    free(v);
    return f;
}

static int count_tmp_files(const char *stem) {
    DIR *d = opendir("tmp");
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, stem, strlen(stem)) == 0 && strstr(e->d_name, ".tmp-")) n++;
    closedir(d);
    return n;
}

/* cm_write_file_atomic, the writer under cm_write_file and cm_poly_write_file: bytes in place
 * (an empty file too), argument errors, a missing folder, a folder as the target */
START_TEST(test_write_file_atomic) {
    char path[256];
    tmp_path(path, sizeof path, "raw_atomic", "bin");
    cm_error err;
    const char data[] = "abc\0def";
    ck_assert_int_eq(cm_write_file_atomic(path, data, sizeof data, &err), CM_OK);
    size_t n;
    uint8_t *got = tu_slurp(path, &n);
    ck_assert(got && n == sizeof data && memcmp(got, data, n) == 0);
    free(got);
    ck_assert_int_eq(cm_write_file_atomic(path, NULL, 0, &err), CM_OK);   /* empty, over it */
    got = tu_slurp(path, &n);
    ck_assert_uint_eq(n, 0);
    free(got);
    ck_assert_int_eq(cm_write_file_atomic(NULL, data, 1, &err), CM_E_ARG);
    assert_has(err.message, "cm_write_file_atomic: NULL path");
    ck_assert_int_eq(cm_write_file_atomic(path, NULL, 3, &err), CM_E_ARG);
    assert_has(err.message, "NULL data");
    ck_assert_int_eq(cm_write_file_atomic("tmp/no/such/dir/x.bin", data, 1, &err), CM_E_IO);
    assert_has(err.message, "tmp/no/such/dir/x.bin: cannot create the temporary file tmp/no/such/dir/x.bin.tmp-");
    unlink(path);
    ck_assert_int_eq(mkdir(path, 0777), 0);
    ck_assert_int_eq(cm_write_file_atomic(path, data, 1, &err), CM_E_IO);
    assert_has(err.message, "over it: Is a directory");
    ck_assert_int_eq(count_tmp_files("raw_atomic"), 0);
    ck_assert_int_eq(rmdir(path), 0);
}
END_TEST

START_TEST(test_atomic_writer) {
    char path[256];
    tmp_path(path, sizeof path, "midi_atomic", "mid");
    cm_file *small = song(3), *big = song(2000);
    cm_error err;
    ck_assert_int_eq(cm_write_file(small, path, NULL, &err), CM_OK);
    ck_assert_int_eq(cm_write_file(small, path, NULL, &err), CM_OK); /* over an existing file */
    size_t n_old;
    uint8_t *old = tu_slurp(path, &n_old);

    /* a full disk (simulated with RLIMIT_FSIZE in a child): an error, the old file untouched */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {4096, 4096};
        setrlimit(RLIMIT_FSIZE, &rl);
        cm_status s = cm_write_file(big, path, NULL, &err);
        bool ok = s == CM_E_IO && strstr(err.message, "(is the disk full?); the existing file is untouched");
        if (!ok) fprintf(stderr, "full-disk child: status %d: %s\n", s, s ? err.message : "");
        cm_file_free(small);
        cm_file_free(big);
        free(old);
        _exit(ok ? 0 : 1);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    size_t n_now;
    uint8_t *now = tu_slurp(path, &n_now);
    ck_assert_uint_eq(n_now, n_old);
    ck_assert(memcmp(now, old, n_old) == 0);
    ck_assert_int_eq(count_tmp_files("midi_atomic"), 0);
    free(now);
    free(old);

    /* the big one, normally; read back */
    ck_assert_int_eq(cm_write_file(big, path, &(cm_write_opts){.running_status = true}, &err), CM_OK);
    cm_file *g = read_ok(path);
    fz_same_files(big, g);
    cm_file_free(g);
    unlink(path);

    /* a folder that does not exist */
    ck_assert_int_eq(cm_write_file(small, "tmp/no/such/dir/x.mid", NULL, &err), CM_E_IO);
    assert_has(err.message, "tmp/no/such/dir/x.mid: cannot create the temporary file tmp/no/such/dir/x.mid.tmp-");
    assert_has(err.message, "No such file or directory (does the folder exist, is it writable?)");
    ck_assert_int_eq(cm_write_file(small, NULL, NULL, &err), CM_E_ARG);
    /* the target is a folder: the rename fails, the temporary file goes */
    char dir[256];
    tmp_path(dir, sizeof dir, "midi_atomic_dir", "mid");
    ck_assert_int_eq(mkdir(dir, 0777), 0);
    ck_assert_int_eq(cm_write_file(small, dir, NULL, &err), CM_E_IO);
    assert_has(err.message, "over it: Is a directory");
    ck_assert_int_eq(count_tmp_files("midi_atomic_dir"), 0);
    ck_assert_int_eq(rmdir(dir), 0);
    /* invalid files never reach the disk */
    small->format = 7;
    unlink(path);
    ck_assert_int_eq(cm_write_file(small, path, NULL, &err), CM_E_ARG);
    assert_has(err.message, "format 7, should be 0, 1 or 2");
    ck_assert_int_eq(access(path, F_OK), -1);
    ck_assert_int_eq(count_tmp_files("midi_atomic"), 0);
    cm_file_free(small);
    cm_file_free(big);
}
END_TEST

/* ---- the fuzzer's findings and seeds -------------------------------------------------------- */
static int run_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strstr(e->d_name, ".md")) continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t len;
        uint8_t *b = tu_slurp(path, &len);
        cm_fuzz_one(b, len);
        free(b);
        n++;
    }
    closedir(d);
    return n;
}

START_TEST(test_fuzz_regressions) {
    int n = run_dir("fixtures/midi/regress");
    ck_assert_int_ge(n, 1);
    ck_assert_int_ge(run_dir("fuzz/corpus_midi"), 5);
    for (int i = 0; i < N_MIDO; i++) {
        char path[128];
        snprintf(path, sizeof path, "fixtures/midi/%s.mid", MIDO_FIXTURES[i]);
        size_t len;
        uint8_t *b = tu_slurp(path, &len);
        cm_fuzz_one(b, len);
        for (size_t cut = 0; cut < len; cut += 1 + cut / 8) cm_fuzz_one(b, cut); /* truncations */
        free(b);
    }
}
END_TEST

Suite *midi_suite(void) {
    Suite *s = suite_create("midi");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_mido_fixtures, 0, N_MIDO);
    tcase_add_test(tc, test_fixture_details);
    tcase_add_test(tc, test_roundtrip_notes);
    tcase_add_test(tc, test_roundtrip_events);
    tcase_add_test(tc, test_tempo_map);
    tcase_add_loop_test(tc, test_malformed, 0, N_BAD);
    tcase_add_test(tc, test_read_errors);
    tcase_add_test(tc, test_event_cap);
    tcase_add_test(tc, test_tolerated);
    tcase_add_test(tc, test_note_rules);
    tcase_add_test(tc, test_builder);
    tcase_add_test(tc, test_model_api);
    tcase_add_test(tc, test_write_file_atomic);
    tcase_add_test(tc, test_atomic_writer);
    tcase_add_test(tc, test_fuzz_regressions);
    suite_add_tcase(s, tc);
    return s;
}
