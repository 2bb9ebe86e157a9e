/* tests/audio/test_encodings.c — Magenta's melody and performance encodings, 88-key piano rolls
 * and the polyphonic benchmarks' text format: named constants, extraction rules, round trips
 * (notes -> tokens -> notes, tokens -> notes -> tokens), decoding back to MIDI and reading it
 * again, and the reader's error messages. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audio/melody.h"
#include "audio/midi.h"
#include "audio/performance.h"
#include "audio/pianoroll.h"

#define PPQ 480
#define TPS (PPQ / CM_MELODY_DEFAULT_STEPS_PER_QUARTER) /* ticks per 16th step: 120 */

/* ---- helpers -------------------------------------------------------------------------------- */
/* A note on the 16th grid at 120 bpm (ticks and seconds agree). */
static cm_note gnote(int pitch, int64_t start_step, int64_t end_step) {
    cm_note n = {.start_tick = start_step * TPS, .end_tick = end_step * TPS, .pitch = (uint8_t)pitch,
                 .velocity = 100};
    n.start_s = (double)n.start_tick / (2.0 * PPQ);
    n.end_s = (double)n.end_tick / (2.0 * PPQ);
    return n;
}

/* A note in seconds (120 bpm, PPQ 480: 960 ticks per second). */
static cm_note snote(int pitch, double start_s, double end_s, int velocity) {
    return (cm_note){.start_tick = (int64_t)(start_s * 960 + 0.5), .end_tick = (int64_t)(end_s * 960 + 0.5),
                     .start_s = start_s, .end_s = end_s, .pitch = (uint8_t)pitch, .velocity = (uint8_t)velocity};
}

static void make_notes(cm_notes *out, const cm_note *v, int64_t n) {
    cm_error err;
    cm_status s = cm_notes_from_array(out, v, n, &err);
    ck_assert_msg(s == CM_OK, "cm_notes_from_array: %s", err.message);
}

static void simple_tm(cm_tempo_map *tm, int num, int den) {
    ck_assert_int_eq(cm_tempo_map_init_simple(tm, cm_division_ppq(PPQ), CM_DEFAULT_TEMPO, num, den), CM_OK);
}

#define ASSERT_MSG_HAS(err, want)                                                                          \
    ck_assert_msg(strstr((err).message, (want)) != NULL, "message \"%s\" lacks \"%s\"", (err).message, (want))

/* A deterministic generator (64-bit LCG), for random notes and tokens. */
static uint64_t lcg_next(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 33;
}

/* MIDI bytes of f, read back as notes (and its tempo map when tm is given). */
static void midi_round_trip(const cm_file *f, cm_notes *notes, cm_tempo_map *tm) {
    cm_error err;
    uint8_t *buf = NULL;
    size_t len = 0;
    ck_assert_msg(cm_write_mem(f, NULL, &buf, &len, &err) == CM_OK, "cm_write_mem: %s", err.message);
    cm_file *g = NULL;
    ck_assert_msg(cm_read_mem(buf, len, "roundtrip.mid", &g, &err) == CM_OK, "cm_read_mem: %s", err.message);
    ck_assert_msg(cm_notes_extract(g, NULL, notes, &err) == CM_OK, "cm_notes_extract: %s", err.message);
    if (tm) ck_assert_msg(cm_tempo_map_init(tm, g, -1, &err) == CM_OK, "cm_tempo_map_init: %s", err.message);
    cm_file_free(g);
    free(buf);
}

/* ==== melody ================================================================================= */
START_TEST(test_melody_constants) {
    cm_melody_encoding d = cm_melody_encoding_default(), f = cm_melody_encoding_full();
    ck_assert_int_eq(d.min_pitch, 48);
    ck_assert_int_eq(d.max_pitch, 84);
    ck_assert_int_eq(cm_melody_num_classes(d), 38);
    ck_assert_int_eq(CM_MELODY_DEFAULT_NUM_CLASSES, 38);
    ck_assert_int_eq(cm_melody_num_classes(f), 130);
    ck_assert_int_eq(CM_MELODY_FULL_NUM_CLASSES, 130);
    ck_assert_int_eq(cm_melody_num_classes((cm_melody_encoding){60, 60}), -1);
    ck_assert_int_eq(cm_melody_num_classes((cm_melody_encoding){0, 129}), -1);
    /* 0 = no event, 1 = note-off, 2.. = pitch - min */
    ck_assert_int_eq(cm_melody_event_to_token(d, CM_MELODY_NO_EVENT), 0);
    ck_assert_int_eq(cm_melody_event_to_token(d, CM_MELODY_NOTE_OFF), 1);
    ck_assert_int_eq(cm_melody_event_to_token(d, 48), 2);
    ck_assert_int_eq(cm_melody_event_to_token(d, 60), 14);
    ck_assert_int_eq(cm_melody_event_to_token(d, 83), 37);
    ck_assert_int_eq(cm_melody_event_to_token(d, 84), -1);
    ck_assert_int_eq(cm_melody_event_to_token(d, 47), -1);
    ck_assert_int_eq(cm_melody_event_to_token(d, -3), -1);
    ck_assert_int_eq(cm_melody_event_to_token(f, 0), 2);
    ck_assert_int_eq(cm_melody_event_to_token(f, 127), 129);
    ck_assert_int_eq(cm_melody_token_to_event(d, 0), CM_MELODY_NO_EVENT);
    ck_assert_int_eq(cm_melody_token_to_event(d, 1), CM_MELODY_NOTE_OFF);
    ck_assert_int_eq(cm_melody_token_to_event(d, 37), 83);
    ck_assert_int_eq(cm_melody_token_to_event(d, 38), CM_MELODY_INVALID);
    ck_assert_int_eq(cm_melody_token_to_event(d, -1), CM_MELODY_INVALID);
    ck_assert_int_eq(cm_melody_token_to_event(f, 129), 127);
    for (int t = 0; t < 130; t++) ck_assert_int_eq(cm_melody_event_to_token(f, cm_melody_token_to_event(f, t)), t);
    cm_melody_opts o = cm_melody_opts_default();
    ck_assert_int_eq(o.steps_per_quarter, 4);
    ck_assert_int_eq(o.min_bars, 7);
    ck_assert_int_eq(o.min_unique_pitches, 5);
    ck_assert(o.gap_bars == 1.0);
    ck_assert(!o.keep_drums);
}
END_TEST

/* 8 bars of quarter notes over a C major scale: one melody, events exactly as Magenta's. */
START_TEST(test_melody_extract_scale) {
    static const int scale[] = {60, 62, 64, 65, 67, 69, 71, 72};
    cm_note v[32];
    for (int i = 0; i < 32; i++) v[i] = gnote(scale[i % 8], 4 * i, 4 * i + 4);
    cm_notes notes;
    make_notes(&notes, v, 32);
    cm_melodies ms;
    cm_error err;
    ck_assert_msg(cm_melody_extract(&notes, NULL, NULL, &ms, &err) == CM_OK, "%s", err.message);
    ck_assert_int_eq(ms.n_melodies, 1);
    const cm_melody *m = &ms.melodies[0];
    ck_assert_int_eq(m->n_events, 128);  /* the final note-off is stripped */
    ck_assert_int_eq(m->start_step, 0);
    ck_assert_int_eq(m->steps_per_bar, 16);
    ck_assert_int_eq(m->instrument, 0);
    for (int i = 0; i < 128; i++) ck_assert_int_eq(m->events[i], i % 4 ? CM_MELODY_NO_EVENT : scale[i / 4 % 8]);
    ck_assert_int_eq(ms.stats.instruments, 1);
    cm_melodies_free(&ms);
    cm_melodies_free(&ms);  /* a zeroed struct is fine */
    cm_notes_free(&notes);
}
END_TEST

static cm_melody_opts loose_opts(void) {
    cm_melody_opts o = cm_melody_opts_default();
    o.min_bars = 0;
    o.min_unique_pitches = 0;
    return o;
}

START_TEST(test_melody_overlap_keeps_highest) {
    /* 60 and 64 start together: 64 wins; then 67 [8,24) is cut by 62 [12,14), and 67's rest
     * after 62 is lost, as in Magenta. */
    cm_note v[] = {gnote(60, 0, 8), gnote(64, 0, 6), gnote(67, 8, 24), gnote(62, 12, 14)};
    cm_notes notes;
    make_notes(&notes, v, 4);
    cm_melody_opts o = loose_opts();
    cm_melodies ms;
    cm_error err;
    ck_assert_msg(cm_melody_extract(&notes, NULL, &o, &ms, &err) == CM_OK, "%s", err.message);
    ck_assert_int_eq(ms.n_melodies, 1);
    const int N = CM_MELODY_NO_EVENT, F = CM_MELODY_NOTE_OFF;
    const int want[] = {64, N, N, N, N, N, F, N, 67, N, N, N, 62, N};
    ck_assert_int_eq(ms.melodies[0].n_events, 14);
    for (int i = 0; i < 14; i++) ck_assert_int_eq(ms.melodies[0].events[i], want[i]);
    ck_assert_int_eq(ms.stats.notes_simultaneous_skipped, 1);
    cm_melodies_free(&ms);
    cm_notes_free(&notes);
}
END_TEST

START_TEST(test_melody_split_at_silence) {
    cm_melody_opts o = loose_opts();
    cm_melodies ms;
    cm_error err;
    /* last note ends at step 8; a note at 24 is 16 steps (a bar) later: a new melody, which
     * starts at its bar line (16); at 23 it is 15 steps later: the same melody */
    cm_note v[] = {gnote(60, 0, 4), gnote(62, 4, 8), gnote(64, 24, 26), gnote(65, 26, 28)};
    cm_notes notes;
    make_notes(&notes, v, 4);
    ck_assert_msg(cm_melody_extract(&notes, NULL, &o, &ms, &err) == CM_OK, "%s", err.message);
    ck_assert_int_eq(ms.n_melodies, 2);
    ck_assert_int_eq(ms.melodies[0].start_step, 0);
    ck_assert_int_eq(ms.melodies[0].n_events, 8);
    ck_assert_int_eq(ms.melodies[1].start_step, 16);
    ck_assert_int_eq(ms.melodies[1].n_events, 12);
    ck_assert_int_eq(ms.melodies[1].events[8], 64);
    ck_assert_int_eq(ms.melodies[1].events[10], 65);
    cm_melodies_free(&ms);
    cm_notes_free(&notes);

    v[2] = gnote(64, 23, 26);
    make_notes(&notes, v, 4);
    ck_assert_msg(cm_melody_extract(&notes, NULL, &o, &ms, &err) == CM_OK, "%s", err.message);
    ck_assert_int_eq(ms.n_melodies, 1);
    ck_assert_int_eq(ms.melodies[0].n_events, 28);
    ck_assert_int_eq(ms.melodies[0].events[8], CM_MELODY_NOTE_OFF);
    ck_assert_int_eq(ms.melodies[0].events[23], 64);
    cm_melodies_free(&ms);

    /* gap_bars 2: the 1-bar silence no longer splits; pad_end pads to the bar line */
    v[2] = gnote(64, 24, 26);
    cm_notes_free(&notes);
    make_notes(&notes, v, 4);
    o.gap_bars = 2;
    o.pad_end = true;
    ck_assert_msg(cm_melody_extract(&notes, NULL, &o, &ms, &err) == CM_OK, "%s", err.message);
    ck_assert_int_eq(ms.n_melodies, 1);
    ck_assert_int_eq(ms.melodies[0].n_events, 32);
    ck_assert_int_eq(ms.melodies[0].events[28], CM_MELODY_NOTE_OFF);  /* the held note ends at the old end */
    cm_melodies_free(&ms);
    cm_notes_free(&notes);
}
END_TEST

/* A melody of n_steps steps (the last note ends there) over pitches cycling through `classes`
 * pitch classes. */
static void cycle_melody(cm_notes *notes, int64_t n_steps, int classes) {
    static const int pitches[] = {60, 62, 64, 65, 67, 69, 71};
    cm_note v[256];
    int n = 0;
    for (int64_t s = 0; s < n_steps; s += 4) v[n] = gnote(pitches[n % classes], s, s + 4 < n_steps ? s + 4 : n_steps), n++;
    make_notes(notes, v, n);
}

START_TEST(test_melody_min_length_and_pitches) {
    cm_melodies ms;
    cm_error err;
    cm_notes notes;
    /* Magenta keeps a melody when length - 1 >= min_bars * steps_per_bar = 112 */
    cycle_melody(&notes, 113, 5);
    ck_assert_msg(cm_melody_extract(&notes, NULL, NULL, &ms, &err) == CM_OK, "%s", err.message);
    ck_assert_int_eq(ms.n_melodies, 1);
    ck_assert_int_eq(ms.melodies[0].n_events, 113);
    cm_melodies_free(&ms);
    cm_notes_free(&notes);

    cycle_melody(&notes, 112, 5);
    ck_assert_msg(cm_melody_extract(&notes, NULL, NULL, &ms, &err) == CM_OK, "%s", err.message);
    ck_assert_int_eq(ms.n_melodies, 0);
    ck_assert_int_eq(ms.stats.discarded_too_short, 1);
    cm_melodies_free(&ms);
    cm_notes_free(&notes);

    /* 4 pitch classes: discarded; octaves do not count twice */
    cycle_melody(&notes, 128, 4);
    ck_assert_msg(cm_melody_extract(&notes, NULL, NULL, &ms, &err) == CM_OK, "%s", err.message);
    ck_assert_int_eq(ms.n_melodies, 0);
    ck_assert_int_eq(ms.stats.discarded_too_few_pitches, 1);
    cm_melodies_free(&ms);
    cm_notes_free(&notes);
    cm_note oct[] = {gnote(60, 0, 4), gnote(72, 4, 8), gnote(62, 8, 12), gnote(74, 12, 16), gnote(64, 16, 20)};
    make_notes(&notes, oct, 5);
    cm_melody_opts o = loose_opts();
    o.min_unique_pitches = 3;
    ck_assert_msg(cm_melody_extract(&notes, NULL, &o, &ms, &err) == CM_OK, "%s", err.message);
    ck_assert_int_eq(ms.n_melodies, 1);
    cm_melodies_free(&ms);
    o.min_unique_pitches = 4;
    ck_assert_msg(cm_melody_extract(&notes, NULL, &o, &ms, &err) == CM_OK, "%s", err.message);
    ck_assert_int_eq(ms.n_melodies, 0);
    cm_melodies_free(&ms);
    cm_notes_free(&notes);

    /* max_steps_discard / max_steps_truncate */
    cycle_melody(&notes, 128, 5);
    o = cm_melody_opts_default();
    o.max_steps_discard = 127;
    ck_assert_msg(cm_melody_extract(&notes, NULL, &o, &ms, &err) == CM_OK, "%s", err.message);
    ck_assert_int_eq(ms.n_melodies, 0);
    ck_assert_int_eq(ms.stats.discarded_too_long, 1);
    cm_melodies_free(&ms);
    o = cm_melody_opts_default();
    o.max_steps_truncate = 120;
    ck_assert_msg(cm_melody_extract(&notes, NULL, &o, &ms, &err) == CM_OK, "%s", err.message);
    ck_assert_int_eq(ms.n_melodies, 1);
    ck_assert_int_eq(ms.melodies[0].n_events, 120);
    ck_assert_int_eq(ms.stats.truncated, 1);
    cm_melodies_free(&ms);
    cm_notes_free(&notes);
}
END_TEST

START_TEST(test_melody_drums_and_instruments) {
    cm_note v[12];
    for (int i = 0; i < 6; i++) {
        v[i] = gnote(60 + 2 * i, 4 * i, 4 * i + 4);
        v[6 + i] = gnote(36 + i, 4 * i, 4 * i + 2);
        v[6 + i].channel = CM_DRUM_CHANNEL;
    }
    cm_notes notes;
    make_notes(&notes, v, 12);
    ck_assert_int_eq(notes.n_instruments, 2);
    cm_melody_opts o = loose_opts();
    cm_melodies ms;
    cm_error err;
    ck_assert_msg(cm_melody_extract(&notes, NULL, &o, &ms, &err) == CM_OK, "%s", err.message);
    ck_assert_int_eq(ms.n_melodies, 1);
    ck_assert_int_eq(ms.melodies[0].channel, 0);
    ck_assert_int_eq(ms.stats.drum_instruments_skipped, 1);
    cm_melodies_free(&ms);
    o.keep_drums = true;
    ck_assert_msg(cm_melody_extract(&notes, NULL, &o, &ms, &err) == CM_OK, "%s", err.message);
    ck_assert_int_eq(ms.n_melodies, 2);
    ck_assert_int_eq(ms.melodies[1].channel, CM_DRUM_CHANNEL);
    ck_assert_int_eq(ms.melodies[1].instrument, 1);
    cm_melodies_free(&ms);
    cm_notes_free(&notes);
}
END_TEST

START_TEST(test_melody_range) {
    cm_note v[] = {gnote(90, 0, 4), gnote(60, 0, 4), gnote(40, 4, 8), gnote(84, 8, 12), gnote(83, 12, 16)};
    cm_notes notes;
    make_notes(&notes, v, 5);
    cm_melody_opts o = loose_opts();
    cm_melodies ms;
    cm_error err;
    /* by octaves (Magenta's squash): 90 -> 78, 40 -> 52, 84 -> 72, 83 stays */
    ck_assert_msg(cm_melody_extract(&notes, NULL, &o, &ms, &err) == CM_OK, "%s", err.message);
    ck_assert_int_eq(ms.n_melodies, 1);
    ck_assert_int_eq(ms.melodies[0].events[0], 78);
    ck_assert_int_eq(ms.melodies[0].events[4], 52);
    ck_assert_int_eq(ms.melodies[0].events[8], 72);
    ck_assert_int_eq(ms.melodies[0].events[12], 83);
    ck_assert_int_eq(ms.stats.notes_out_of_range_moved, 3);
    cm_melodies_free(&ms);
    /* dropped before extraction: 60 takes the first step and ends at step 4 */
    o.range_mode = CM_MELODY_RANGE_DROP;
    ck_assert_msg(cm_melody_extract(&notes, NULL, &o, &ms, &err) == CM_OK, "%s", err.message);
    ck_assert_int_eq(ms.n_melodies, 1);
    ck_assert_int_eq(ms.stats.notes_out_of_range_dropped, 3);
    ck_assert_int_eq(ms.melodies[0].events[0], 60);
    ck_assert_int_eq(ms.melodies[0].events[4], CM_MELODY_NOTE_OFF);
    ck_assert_int_eq(ms.melodies[0].events[12], 83);
    ck_assert_int_eq(ms.melodies[0].start_step, 0);
    cm_melodies_free(&ms);
    /* too narrow for octaves */
    o.range_mode = CM_MELODY_RANGE_OCTAVE;
    o.range = (cm_melody_encoding){60, 70};
    ck_assert_int_eq(cm_melody_extract(&notes, NULL, &o, &ms, &err), CM_E_ARG);
    ASSERT_MSG_HAS(err, "narrower than an octave");
    cm_notes_free(&notes);
}
END_TEST

START_TEST(test_melody_time_signature) {
    cm_note v[] = {gnote(60, 0, 4), gnote(62, 4, 8), gnote(64, 20, 24)};
    cm_notes notes;
    make_notes(&notes, v, 3);
    cm_tempo_map tm;
    simple_tm(&tm, 3, 4);  /* 12 steps per bar: the 12-step silence splits */
    cm_melody_opts o = loose_opts();
    cm_melodies ms;
    cm_error err;
    ck_assert_msg(cm_melody_extract(&notes, &tm, &o, &ms, &err) == CM_OK, "%s", err.message);
    ck_assert_int_eq(ms.n_melodies, 2);
    ck_assert_int_eq(ms.melodies[0].steps_per_bar, 12);
    ck_assert_int_eq(ms.melodies[1].start_step, 12);
    cm_melodies_free(&ms);
    cm_tempo_map_free(&tm);
    simple_tm(&tm, 7, 8);
    o.steps_per_quarter = 1;  /* 3.5 steps per bar */
    ck_assert_int_eq(cm_melody_extract(&notes, &tm, &o, &ms, &err), CM_E_ARG);
    ASSERT_MSG_HAS(err, "time signature 7/8 at 1 steps per quarter gives 3.5 steps per bar");
    o.steps_per_bar = 7;
    ck_assert_msg(cm_melody_extract(&notes, &tm, &o, &ms, &err) == CM_OK, "%s", err.message);
    cm_melodies_free(&ms);
    cm_tempo_map_free(&tm);
    o = cm_melody_opts_default();
    o.gap_bars = 0;
    ck_assert_int_eq(cm_melody_extract(&notes, NULL, &o, &ms, &err), CM_E_ARG);
    ASSERT_MSG_HAS(err, "gap_bars 0");
    cm_notes_free(&notes);
}
END_TEST

START_TEST(test_melody_tokens_round_trip) {
    cm_melody_encoding e = cm_melody_encoding_default();
    cm_error err;
    /* tokens -> melody -> tokens, random sequences that start with a note */
    uint64_t seed = 7;
    for (int rep = 0; rep < 20; rep++) {
        int32_t tok[300];
        int n = 1 + (int)(lcg_next(&seed) % 300);
        for (int i = 0; i < n; i++) tok[i] = (int32_t)(lcg_next(&seed) % CM_MELODY_DEFAULT_NUM_CLASSES);
        tok[0] = CM_MELODY_FIRST_PITCH_TOKEN + (int32_t)(lcg_next(&seed) % 36);
        cm_melody m;
        ck_assert_msg(cm_melody_decode(tok, n, e, 4, &m, &err) == CM_OK, "%s", err.message);
        int32_t *back = NULL;
        int64_t nb = 0;
        ck_assert_msg(cm_melody_encode(&m, e, &back, &nb, &err) == CM_OK, "%s", err.message);
        ck_assert_int_eq(nb, n);
        ck_assert_mem_eq(back, tok, (size_t)n * sizeof *tok);
        free(back);
        cm_melody_free(&m);
    }
    /* as Magenta's Melody: note-offs before the first note become no-events */
    int32_t lead[] = {1, 0, 1, 14, 1};
    cm_melody m;
    ck_assert_int_eq(cm_melody_decode(lead, 5, e, 4, &m, &err), CM_OK);
    ck_assert_int_eq(m.events[0], CM_MELODY_NO_EVENT);
    ck_assert_int_eq(m.events[2], CM_MELODY_NO_EVENT);
    ck_assert_int_eq(m.events[3], 60);
    ck_assert_int_eq(m.events[4], CM_MELODY_NOTE_OFF);
    cm_melody_free(&m);
    /* errors */
    int32_t bad[] = {14, 0, 0, 38};
    ck_assert_int_eq(cm_melody_decode(bad, 4, e, 4, &m, &err), CM_E_ARG);
    ASSERT_MSG_HAS(err, "token 38 at position 3: expected 0..37");
    ck_assert_ptr_null(m.events);
    ck_assert_int_eq(cm_melody_decode(lead, 5, cm_melody_encoding_full(), 4, &m, &err), CM_OK);
    int32_t *t = NULL;
    int64_t nt = 0;
    ck_assert_int_eq(cm_melody_encode(&m, cm_melody_encoding_full(), &t, &nt, &err), CM_OK);
    ck_assert_int_eq(t[3], 14);
    free(t);
    m.events[3] = 90;
    ck_assert_int_eq(cm_melody_encode(&m, e, &t, &nt, &err), CM_E_ARG);
    ASSERT_MSG_HAS(err, "event 3: pitch 90 outside the encoding's range 48..84");
    ck_assert_ptr_null(t);
    cm_melody_free(&m);
}
END_TEST

/* notes -> melody -> tokens -> melody -> notes -> MIDI -> notes: the same notes. */
START_TEST(test_melody_notes_round_trip_and_midi) {
    static const int pitches[] = {60, 64, 67, 72, 71, 69, 65, 62, 59};
    cm_note v[40];
    int n = 0;
    int64_t s = 0;
    for (int i = 0; i < 40; i++) {
        int64_t len = 1 + (int64_t)(i * 7 % 5);
        int64_t rest = i % 3 == 0 ? 2 : 0;
        v[n++] = gnote(pitches[i % 9], s, s + len);
        s += len + rest;
    }
    cm_notes notes;
    make_notes(&notes, v, n);
    cm_melodies ms;
    cm_error err;
    ck_assert_msg(cm_melody_extract(&notes, NULL, NULL, &ms, &err) == CM_OK, "%s", err.message);
    ck_assert_int_eq(ms.n_melodies, 1);
    int32_t *tok = NULL;
    int64_t nt = 0;
    ck_assert_msg(cm_melody_encode(&ms.melodies[0], cm_melody_encoding_default(), &tok, &nt, &err) == CM_OK, "%s",
                  err.message);
    cm_melody m;
    ck_assert_msg(cm_melody_decode(tok, nt, cm_melody_encoding_default(), 4, &m, &err) == CM_OK, "%s", err.message);
    ck_assert_mem_eq(m.events, ms.melodies[0].events, (size_t)nt * sizeof *tok);
    cm_notes back;
    ck_assert_msg(cm_melody_to_notes(&m, NULL, &back, &err) == CM_OK, "%s", err.message);
    ck_assert_int_eq(back.n_notes, n);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(back.notes[i].pitch, v[i].pitch);
        ck_assert_int_eq(back.notes[i].start_tick, v[i].start_tick);
        ck_assert_int_eq(back.notes[i].end_tick, v[i].end_tick);
        ck_assert_double_eq_tol(back.notes[i].start_s, v[i].start_s, 1e-9);
        ck_assert_int_eq(back.notes[i].velocity, CM_MELODY_DEFAULT_VELOCITY);
    }
    /* to MIDI at 90 bpm and back */
    cm_melody_render r = cm_melody_render_default();
    r.qpm = 90;
    r.program = 73;
    cm_file *f = cm_melody_to_file(&m, &r, &err);
    ck_assert_msg(f != NULL, "%s", err.message);
    cm_notes re;
    cm_tempo_map tm;
    midi_round_trip(f, &re, &tm);
    ck_assert_int_eq(re.n_notes, n);
    ck_assert_int_eq(cm_tempo_at(&tm, 0), 666667);
    ck_assert_int_eq(tm.time_signatures[0].numerator, 4);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(re.notes[i].pitch, v[i].pitch);
        ck_assert_int_eq(re.notes[i].start_tick, v[i].start_tick);
        ck_assert_int_eq(re.notes[i].end_tick, v[i].end_tick);
        ck_assert_int_eq(re.notes[i].program, 73);
        ck_assert_double_eq_tol(re.notes[i].start_s, v[i].start_s * 120.0 / 90.0, 1e-4);  /* tempo 666667 us */
    }
    /* and the melody extracted from the re-read file is the same */
    cm_melodies ms2;
    ck_assert_msg(cm_melody_extract(&re, &tm, NULL, &ms2, &err) == CM_OK, "%s", err.message);
    ck_assert_int_eq(ms2.n_melodies, 1);
    ck_assert_int_eq(ms2.melodies[0].n_events, nt);
    ck_assert_mem_eq(ms2.melodies[0].events, m.events, (size_t)nt * sizeof *tok);
    cm_melodies_free(&ms2);
    /* bad render options */
    r.velocity = 0;
    ck_assert_ptr_null(cm_melody_to_file(&m, &r, &err));
    ASSERT_MSG_HAS(err, "velocity 0");
    cm_tempo_map_free(&tm);
    cm_notes_free(&re);
    cm_file_free(f);
    cm_notes_free(&back);
    cm_melody_free(&m);
    free(tok);
    cm_melodies_free(&ms);
    cm_notes_free(&notes);
}
END_TEST

/* ==== performance ============================================================================ */
static cm_perf_event pev(cm_perf_event_type t, int v) { return (cm_perf_event){t, v}; }

START_TEST(test_perf_constants) {
    cm_perf_config c = cm_perf_config_default();
    ck_assert_int_eq(cm_perf_num_classes(&c), 388);
    ck_assert_int_eq(CM_PERF_NUM_CLASSES, 388);
    ck_assert_int_eq(cm_perf_event_to_token(&c, pev(CM_PERF_EV_NOTE_ON, 0)), 0);
    ck_assert_int_eq(cm_perf_event_to_token(&c, pev(CM_PERF_EV_NOTE_ON, 60)), 60);
    ck_assert_int_eq(cm_perf_event_to_token(&c, pev(CM_PERF_EV_NOTE_ON, 127)), 127);
    ck_assert_int_eq(cm_perf_event_to_token(&c, pev(CM_PERF_EV_NOTE_OFF, 0)), 128);
    ck_assert_int_eq(cm_perf_event_to_token(&c, pev(CM_PERF_EV_NOTE_OFF, 72)), 200);
    ck_assert_int_eq(cm_perf_event_to_token(&c, pev(CM_PERF_EV_NOTE_OFF, 127)), 255);
    ck_assert_int_eq(cm_perf_event_to_token(&c, pev(CM_PERF_EV_TIME_SHIFT, 1)), 256);
    ck_assert_int_eq(cm_perf_event_to_token(&c, pev(CM_PERF_EV_TIME_SHIFT, 10)), 265);
    ck_assert_int_eq(cm_perf_event_to_token(&c, pev(CM_PERF_EV_TIME_SHIFT, 100)), 355);
    ck_assert_int_eq(cm_perf_event_to_token(&c, pev(CM_PERF_EV_VELOCITY, 1)), 356);
    ck_assert_int_eq(cm_perf_event_to_token(&c, pev(CM_PERF_EV_VELOCITY, 32)), 387);
    ck_assert_int_eq(cm_perf_event_to_token(&c, pev(CM_PERF_EV_TIME_SHIFT, 0)), -1);
    ck_assert_int_eq(cm_perf_event_to_token(&c, pev(CM_PERF_EV_TIME_SHIFT, 101)), -1);
    ck_assert_int_eq(cm_perf_event_to_token(&c, pev(CM_PERF_EV_VELOCITY, 33)), -1);
    ck_assert_int_eq(cm_perf_event_to_token(&c, pev(CM_PERF_EV_NOTE_ON, 128)), -1);
    for (int t = 0; t < 388; t++) ck_assert_int_eq(cm_perf_event_to_token(&c, cm_perf_token_to_event(&c, t)), t);
    ck_assert_int_eq(cm_perf_token_to_event(&c, 388).type, CM_PERF_EV_INVALID);
    ck_assert_int_eq(cm_perf_token_to_event(&c, 355).type, CM_PERF_EV_TIME_SHIFT);
    ck_assert_int_eq(cm_perf_token_to_event(&c, 355).value, 100);
    ck_assert_int_eq(cm_perf_token_to_event(&c, 356).type, CM_PERF_EV_VELOCITY);
    ck_assert_int_eq(cm_perf_token_to_event(&c, 356).value, 1);
    /* Magenta's performance_encoder_decoder_test: 16 bins, VELOCITY 5 -> 360 */
    cm_perf_config c16 = c;
    c16.num_velocity_bins = 16;
    ck_assert_int_eq(cm_perf_num_classes(&c16), 372);
    ck_assert_int_eq(cm_perf_event_to_token(&c16, pev(CM_PERF_EV_VELOCITY, 5)), 360);
    cm_perf_config c0 = c;
    c0.num_velocity_bins = 0;
    ck_assert_int_eq(cm_perf_num_classes(&c0), CM_PERF_NUM_CLASSES_NO_VELOCITY);
    ck_assert_int_eq(cm_perf_event_to_token(&c0, pev(CM_PERF_EV_VELOCITY, 1)), -1);
    c0.max_shift_steps = 0;
    ck_assert_int_eq(cm_perf_num_classes(&c0), -1);
}
END_TEST

START_TEST(test_perf_velocity_bins) {
    ck_assert_int_eq(cm_perf_velocity_to_bin(1, 32), 1);
    ck_assert_int_eq(cm_perf_velocity_to_bin(4, 32), 1);
    ck_assert_int_eq(cm_perf_velocity_to_bin(5, 32), 2);
    ck_assert_int_eq(cm_perf_velocity_to_bin(100, 32), 25);
    ck_assert_int_eq(cm_perf_velocity_to_bin(124, 32), 31);
    ck_assert_int_eq(cm_perf_velocity_to_bin(125, 32), 32);
    ck_assert_int_eq(cm_perf_velocity_to_bin(127, 32), 32);
    ck_assert_int_eq(cm_perf_bin_to_velocity(1, 32), 1);
    ck_assert_int_eq(cm_perf_bin_to_velocity(25, 32), 97);
    ck_assert_int_eq(cm_perf_bin_to_velocity(32, 32), 125);
    ck_assert_int_eq(cm_perf_velocity_to_bin(100, 16), 13);  /* bin size 8 */
    ck_assert_int_eq(cm_perf_bin_to_velocity(13, 16), 97);
    for (int v = 1; v <= 127; v++) {
        int b = cm_perf_velocity_to_bin(v, 32);
        ck_assert(b >= 1 && b <= 32);
        ck_assert_int_eq(cm_perf_velocity_to_bin(cm_perf_bin_to_velocity(b, 32), 32), b);
    }
}
END_TEST

START_TEST(test_perf_time_shifts_and_velocity_events) {
    cm_note v[] = {snote(60, 2.5, 2.6, 100)};
    cm_notes notes;
    make_notes(&notes, v, 1);
    int32_t *t = NULL;
    int64_t n = 0;
    cm_perf_encode_stats st;
    cm_error err;
    ck_assert_msg(cm_perf_encode(&notes, NULL, &t, &n, &st, &err) == CM_OK, "%s", err.message);
    /* 250 steps = 100 + 100 + 50; velocity bin 25; on 60; 10 steps; off 60 */
    const int32_t want[] = {355, 355, 305, 356 + 24, 60, 265, 128 + 60};
    ck_assert_int_eq(n, 7);
    ck_assert_mem_eq(t, want, sizeof want);
    ck_assert_int_eq(st.steps, 260);
    free(t);
    cm_notes_free(&notes);

    /* exactly 200 steps: two full shifts; velocity events only when the bin changes; a note
     * whose end rounds onto its start lasts one step */
    cm_note w[] = {snote(60, 2.0, 2.5, 97), snote(64, 2.0, 2.5, 100), snote(67, 2.5, 2.501, 50)};
    make_notes(&notes, w, 3);
    ck_assert_msg(cm_perf_encode(&notes, NULL, &t, &n, &st, &err) == CM_OK, "%s", err.message);
    const int32_t want2[] = {355, 355, 356 + 24, 60, 64, 305, 188, 192, 356 + 12, 67, 256, 128 + 67};
    ck_assert_int_eq(n, (int64_t)(sizeof want2 / sizeof *want2));
    ck_assert_mem_eq(t, want2, sizeof want2);
    free(t);
    /* without velocity */
    cm_perf_opts o = cm_perf_opts_default();
    o.config.num_velocity_bins = 0;
    ck_assert_msg(cm_perf_encode(&notes, &o, &t, &n, &st, &err) == CM_OK, "%s", err.message);
    const int32_t want3[] = {355, 355, 60, 64, 305, 188, 192, 67, 256, 128 + 67};
    ck_assert_int_eq(n, (int64_t)(sizeof want3 / sizeof *want3));
    ck_assert_mem_eq(t, want3, sizeof want3);
    free(t);
    cm_notes_free(&notes);
    /* nothing: no tokens */
    make_notes(&notes, NULL, 0);
    ck_assert_int_eq(cm_perf_encode(&notes, NULL, &t, &n, &st, &err), CM_OK);
    ck_assert_int_eq(n, 0);
    ck_assert_ptr_nonnull(t);
    free(t);
    cm_notes_free(&notes);
}
END_TEST

START_TEST(test_perf_drums_and_errors) {
    cm_note v[] = {snote(60, 0, 0.5, 80), snote(36, 0, 0.1, 90), snote(62, 0.5, 1, 0)};
    v[1].channel = CM_DRUM_CHANNEL;
    cm_notes notes;
    make_notes(&notes, v, 3);
    int32_t *t = NULL;
    int64_t n = 0;
    cm_perf_encode_stats st;
    cm_error err;
    ck_assert_int_eq(cm_perf_encode(&notes, NULL, &t, &n, &st, &err), CM_OK);
    ck_assert_int_eq(st.notes, 1);
    ck_assert_int_eq(st.drums_skipped, 1);
    ck_assert_int_eq(st.zero_velocity_skipped, 1);
    free(t);
    cm_perf_opts o = cm_perf_opts_default();
    o.include_drums = true;
    ck_assert_int_eq(cm_perf_encode(&notes, &o, &t, &n, &st, &err), CM_OK);
    ck_assert_int_eq(st.notes, 2);
    free(t);
    cm_notes_free(&notes);
    v[0].start_s = -1;
    notes = (cm_notes){.notes = v, .n_notes = 1};
    ck_assert_int_eq(cm_perf_encode(&notes, NULL, &t, &n, &st, &err), CM_E_ARG);
    ASSERT_MSG_HAS(err, "note 0 (pitch 60): seconds -1..0.5");
    ck_assert_ptr_null(t);
    v[0].start_s = 0;
    v[0].end_s = 3e9;
    ck_assert_int_eq(cm_perf_encode(&notes, NULL, &t, &n, &st, &err), CM_E_LIMIT);
    ASSERT_MSG_HAS(err, "CM_PERF_MAX_STEPS");
    o.config.steps_per_second = 0;
    v[0].end_s = 1;
    ck_assert_int_eq(cm_perf_encode(&notes, &o, &t, &n, &st, &err), CM_E_ARG);
    ASSERT_MSG_HAS(err, "0 steps per second");
}
END_TEST

START_TEST(test_perf_decode_rules) {
    cm_notes out;
    cm_perf_decode_stats st;
    cm_error err;
    /* off without on: ignored; zero length: dropped; open at the end: closed there; FIFO */
    const int32_t t1[] = {128 + 61, 60, 128 + 60, 62, 62, 256 + 9, 128 + 62, 256 + 19, 356 + 31, 64, 256 + 4};
    ck_assert_msg(cm_perf_decode(t1, 11, NULL, NULL, &out, &st, &err) == CM_OK, "%s", err.message);
    ck_assert_int_eq(st.note_offs_ignored, 1);
    ck_assert_int_eq(out.unmatched_note_offs, 1);
    ck_assert_int_eq(st.zero_length_dropped, 1);
    ck_assert_int_eq(st.closed_at_end, 2);
    ck_assert_int_eq(out.closed_at_end, 2);
    ck_assert_int_eq(st.steps, 35);
    ck_assert_int_eq(out.n_notes, 3);
    /* sorted by start, pitch, end: 62 [0, .1] v100, 62 [0, .35] v100, 64 [.3, .35] v125 */
    ck_assert_int_eq(out.notes[0].pitch, 62);
    ck_assert_double_eq_tol(out.notes[0].end_s, 0.10, 1e-12);
    ck_assert_int_eq(out.notes[0].velocity, CM_PERF_DEFAULT_VELOCITY);
    ck_assert_int_eq(out.notes[0].end_tick, 96);  /* 0.1 s at 120 bpm, PPQ 480 */
    ck_assert_double_eq_tol(out.notes[1].end_s, 0.35, 1e-12);
    ck_assert_int_eq(out.notes[2].pitch, 64);
    ck_assert_double_eq_tol(out.notes[2].start_s, 0.30, 1e-12);
    ck_assert_int_eq(out.notes[2].velocity, 125);
    cm_notes_free(&out);
    /* max note duration */
    cm_perf_render r = cm_perf_render_default();
    r.max_note_duration_s = 0.05;
    ck_assert_int_eq(cm_perf_decode(t1, 11, NULL, &r, &out, NULL, &err), CM_OK);
    ck_assert_double_eq_tol(out.notes[1].end_s, 0.05, 1e-12);
    cm_notes_free(&out);
    /* bad tokens */
    const int32_t t2[] = {60, 256, 388};
    ck_assert_int_eq(cm_perf_decode(t2, 3, NULL, NULL, &out, &st, &err), CM_E_ARG);
    ASSERT_MSG_HAS(err, "token 388 at position 2: expected 0..387");
    cm_perf_config c0 = cm_perf_config_default();
    c0.num_velocity_bins = 0;
    const int32_t t3[] = {60, 356};
    ck_assert_int_eq(cm_perf_decode(t3, 2, &c0, NULL, &out, &st, &err), CM_E_ARG);
    ASSERT_MSG_HAS(err, "token 356 at position 1: expected 0..355");
    ck_assert_int_eq(cm_perf_decode(NULL, 0, NULL, NULL, &out, &st, &err), CM_OK);
    ck_assert_int_eq(out.n_notes, 0);
    cm_notes_free(&out);
}
END_TEST

/* Random notes without same-pitch overlaps; on_grid: times on the 10 ms grid, as decoded. */
static int64_t random_notes(cm_note *v, int64_t cap, uint64_t seed, bool on_grid) {
    double free_at[128] = {0};
    int64_t n = 0;
    double now = 0;
    while (n < cap) {
        now += (double)(lcg_next(&seed) % 700) / 1000.0;  /* 0..0.7 s, gaps over 1 s sometimes */
        if (lcg_next(&seed) % 10 == 0) now += 1.0 + (double)(lcg_next(&seed) % 3000) / 1000.0;
        int pitch = 21 + (int)(lcg_next(&seed) % 88);
        if (free_at[pitch] > now - 0.02) continue;  /* keep 2 quantization steps between same pitches */
        double len = 0.003 + (double)(lcg_next(&seed) % 2500) / 1000.0;
        int vel = 1 + (int)(lcg_next(&seed) % 127);
        double a = now, b = now + len;
        if (on_grid) {
            a = (double)(int64_t)(now * 100 + 0.5) / 100;
            b = (double)((int64_t)(now * 100 + 0.5) + 1 + (int64_t)(len * 100)) / 100;
        }
        v[n++] = snote(pitch, a, b, vel);
        free_at[pitch] = b;
    }
    return n;
}

static int64_t q100(double s) { return (int64_t)(s * 100 + 0.5); }

typedef struct qn { int64_t s, e; int pitch, vel; } qn;
static int cmp_qn(const void *a, const void *b) {
    const qn *x = a, *y = b;
    if (x->s != y->s) return x->s < y->s ? -1 : 1;
    return x->pitch - y->pitch;
}

static void encode_ok(const cm_notes *notes, int32_t **t, int64_t *n) {
    cm_error err;
    ck_assert_msg(cm_perf_encode(notes, NULL, t, n, NULL, &err) == CM_OK, "%s", err.message);
}

static void decode_ok(const int32_t *t, int64_t n, cm_notes *out) {
    cm_error err;
    ck_assert_msg(cm_perf_decode(t, n, NULL, NULL, out, NULL, &err) == CM_OK, "%s", err.message);
}

/* notes -> tokens -> notes: the notes on the 10 ms grid, velocities at their bin's lower edge. */
START_TEST(test_perf_notes_round_trip) {
    enum { N = 300 };
    cm_note *v = malloc(N * sizeof *v);
    int64_t n = random_notes(v, N, 42, false);
    cm_notes notes;
    make_notes(&notes, v, n);
    int32_t *t = NULL;
    int64_t nt = 0;
    encode_ok(&notes, &t, &nt);
    for (int64_t i = 0; i < nt; i++) ck_assert(t[i] >= 0 && t[i] < CM_PERF_NUM_CLASSES);
    cm_notes back;
    decode_ok(t, nt, &back);
    ck_assert_int_eq(back.n_notes, n);
    qn *want = malloc((size_t)n * sizeof *want);
    for (int64_t i = 0; i < n; i++) {
        const cm_note *a = &notes.notes[i];
        want[i] = (qn){q100(a->start_s), q100(a->end_s), a->pitch,
                       cm_perf_bin_to_velocity(cm_perf_velocity_to_bin(a->velocity, 32), 32)};
        if (want[i].e == want[i].s) want[i].e++;
        ck_assert(want[i].s / 100.0 - a->start_s <= 0.005 + 1e-9 && a->start_s - want[i].s / 100.0 <= 0.005 + 1e-9);
    }
    qsort(want, (size_t)n, sizeof *want, cmp_qn);
    for (int64_t i = 0; i < n; i++) {
        const cm_note *b = &back.notes[i];
        ck_assert_int_eq(b->pitch, want[i].pitch);
        ck_assert_double_eq_tol(b->start_s, want[i].s / 100.0, 1e-9);
        ck_assert_double_eq_tol(b->end_s, want[i].e / 100.0, 1e-9);
        ck_assert_int_eq(b->velocity, want[i].vel);
    }
    /* once on the grid, encoding is stable: tokens -> notes -> tokens gives the same tokens */
    int32_t *t2 = NULL, *t3 = NULL;
    int64_t nt2 = 0, nt3 = 0;
    encode_ok(&back, &t2, &nt2);
    cm_notes back2;
    decode_ok(t2, nt2, &back2);
    encode_ok(&back2, &t3, &nt3);
    ck_assert_int_eq(nt3, nt2);
    ck_assert_mem_eq(t3, t2, (size_t)nt2 * sizeof *t2);
    free(t3);
    free(t2);
    cm_notes_free(&back2);
    free(want);
    cm_notes_free(&back);
    cm_notes_free(&notes);
    free(t);
    free(v);
}
END_TEST

/* tokens -> notes -> tokens and tokens -> MIDI -> notes -> tokens: the same tokens. */
START_TEST(test_perf_tokens_round_trip_and_midi) {
    enum { N = 300 };
    cm_note *v = malloc(N * sizeof *v);
    int64_t n = random_notes(v, N, 4242, true);
    cm_notes notes;
    make_notes(&notes, v, n);
    int32_t *t = NULL, *t2 = NULL;
    int64_t nt = 0, nt2 = 0;
    encode_ok(&notes, &t, &nt);
    cm_notes back;
    decode_ok(t, nt, &back);
    ck_assert_int_eq(back.n_notes, n);
    encode_ok(&back, &t2, &nt2);
    ck_assert_int_eq(nt2, nt);
    ck_assert_mem_eq(t2, t, (size_t)nt * sizeof *t);
    free(t2);
    cm_error err;
    cm_perf_render r = cm_perf_render_default();
    r.program = 5;
    cm_file *f = cm_perf_to_file(t, nt, NULL, &r, &err);
    ck_assert_msg(f != NULL, "%s", err.message);
    cm_notes re;
    cm_tempo_map tm;
    midi_round_trip(f, &re, &tm);
    ck_assert_int_eq(re.n_notes, n);
    ck_assert_int_eq(re.instruments[0].program, 5);
    ck_assert_int_eq(cm_tempo_at(&tm, 0), CM_DEFAULT_TEMPO);
    encode_ok(&re, &t2, &nt2);
    ck_assert_int_eq(nt2, nt);
    ck_assert_mem_eq(t2, t, (size_t)nt * sizeof *t);
    free(t2);
    cm_tempo_map_free(&tm);
    cm_notes_free(&re);
    cm_file_free(f);
    r.qpm = 0;
    ck_assert_ptr_null(cm_perf_to_file(t, nt, NULL, &r, &err));
    ASSERT_MSG_HAS(err, "render qpm 0");
    cm_notes_free(&back);
    cm_notes_free(&notes);
    free(t);
    free(v);
}
END_TEST

/* ==== piano rolls ============================================================================ */
START_TEST(test_roll_from_notes_edges) {
    ck_assert_int_eq(CM_ROLL_NUM_KEYS, 88);
    ck_assert_int_eq(CM_ROLL_MIN_PITCH, 21);
    ck_assert_int_eq(CM_ROLL_MAX_PITCH, 108);
    cm_note v[] = {gnote(21, 0, 4), gnote(108, 4, 8), gnote(20, 0, 2), gnote(109, 2, 12), gnote(60, 6, 6),
                   gnote(64, 1, 3)};
    v[5].channel = CM_DRUM_CHANNEL;
    cm_notes notes;
    make_notes(&notes, v, 6);
    cm_roll r;
    cm_roll_stats st;
    cm_error err;
    cm_roll_grid g = {.steps_per_quarter = 4};
    ck_assert_msg(cm_roll_from_notes(&notes, NULL, g, false, &r, &st, &err) == CM_OK, "%s", err.message);
    ck_assert_int_eq(st.notes_out_of_range, 2);
    ck_assert_int_eq(st.notes_drums_skipped, 1);
    ck_assert_int_eq(st.notes_used, 3);
    ck_assert_int_eq(r.n_steps, 8);  /* 109 is dropped, so its end does not count */
    for (int64_t t = 0; t < 8; t++) {
        int on = 0;
        for (int p = 21; p <= 108; p++) on += cm_roll_on(&r, t, p);
        ck_assert_int_eq(cm_roll_on(&r, t, 21), t < 4);
        ck_assert_int_eq(cm_roll_on(&r, t, 108), t >= 4);
        ck_assert_int_eq(cm_roll_on(&r, t, 60), t == 6);  /* zero length: one step */
        ck_assert_int_eq(on, 1 + (t == 6));
    }
    ck_assert_int_eq(cm_roll_frame(&r, 0)[0], 1);
    ck_assert_int_eq(cm_roll_frame(&r, 7)[87], 1);
    cm_roll_free(&r);
    ck_assert_int_eq(cm_roll_from_notes(&notes, NULL, g, true, &r, &st, &err), CM_OK);
    ck_assert(cm_roll_on(&r, 1, 64));
    cm_roll_free(&r);
    cm_roll_free(&r);
    /* steps per second: 0.26 s at 10 steps/s rounds to step 3 */
    cm_notes_free(&notes);
    cm_note w[] = {snote(60, 0.26, 0.5, 90)};
    make_notes(&notes, w, 1);
    ck_assert_int_eq(cm_roll_from_notes(&notes, NULL, (cm_roll_grid){.steps_per_second = 10}, false, &r, &st, &err),
                     CM_OK);
    ck_assert_int_eq(r.n_steps, 5);
    ck_assert(!cm_roll_on(&r, 2, 60) && cm_roll_on(&r, 3, 60) && cm_roll_on(&r, 4, 60));
    cm_roll_free(&r);
    ck_assert_int_eq(cm_roll_from_notes(&notes, NULL, (cm_roll_grid){10, 4}, false, &r, &st, &err), CM_E_ARG);
    ASSERT_MSG_HAS(err, "exactly one of them");
    ck_assert_int_eq(cm_roll_from_notes(&notes, NULL, (cm_roll_grid){.steps_per_second = 1e4}, false, &r, &st, &err),
                     CM_OK);
    cm_roll_free(&r);
    notes.notes[0].end_s = 1e9;
    ck_assert_int_eq(cm_roll_from_notes(&notes, NULL, (cm_roll_grid){.steps_per_second = 100}, false, &r, &st, &err),
                     CM_E_LIMIT);
    ASSERT_MSG_HAS(err, "CM_ROLL_MAX_STEPS");
    ck_assert_ptr_null(r.frames);
    cm_notes_free(&notes);
}
END_TEST

START_TEST(test_roll_to_notes_and_midi) {
    cm_roll r;
    cm_error err;
    ck_assert_int_eq(cm_roll_init(&r, 6, &err), CM_OK);
    uint8_t *f0 = cm_roll_frame(&r, 0);
    /* key 60: steps 0-2 and 4 (two notes); 21 at step 5; 108 over every step */
    for (int t = 0; t < 6; t++) {
        cm_roll_frame(&r, t)[108 - 21] = 1;
        if (t != 3 && t != 5) cm_roll_frame(&r, t)[60 - 21] = 1;
    }
    cm_roll_frame(&r, 5)[0] = 1;
    ck_assert_ptr_eq(f0, r.frames);
    cm_roll_grid g = {.steps_per_quarter = 2};
    cm_notes n;
    ck_assert_msg(cm_roll_to_notes(&r, g, NULL, &n, &err) == CM_OK, "%s", err.message);
    ck_assert_int_eq(n.n_notes, 4);
    /* sorted by start, pitch */
    ck_assert_int_eq(n.notes[0].pitch, 60);
    ck_assert_int_eq(n.notes[0].end_tick, 3 * 240);
    ck_assert_int_eq(n.notes[1].pitch, 108);
    ck_assert_int_eq(n.notes[1].end_tick, 6 * 240);
    ck_assert_double_eq_tol(n.notes[1].end_s, 1.5, 1e-12);
    ck_assert_int_eq(n.notes[2].pitch, 60);
    ck_assert_int_eq(n.notes[2].start_tick, 4 * 240);
    ck_assert_int_eq(n.notes[3].pitch, 21);
    ck_assert_int_eq(n.notes[3].velocity, CM_ROLL_DEFAULT_VELOCITY);
    /* frames -> notes -> MIDI -> notes -> frames */
    cm_tempo_map tm;
    simple_tm(&tm, 4, 4);
    cm_file *f = cm_file_from_notes(&n, &tm, &err);
    ck_assert_msg(f != NULL, "%s", err.message);
    cm_notes re;
    cm_tempo_map tm2;
    midi_round_trip(f, &re, &tm2);
    cm_roll back;
    ck_assert_msg(cm_roll_from_notes(&re, &tm2, g, false, &back, NULL, &err) == CM_OK, "%s", err.message);
    ck_assert_int_eq(back.n_steps, r.n_steps);
    ck_assert_mem_eq(back.frames, r.frames, (size_t)r.n_steps * CM_ROLL_NUM_KEYS);
    cm_roll_free(&back);
    /* and on a seconds grid (120 bpm: 2 steps per quarter = 4 steps per second) */
    ck_assert_int_eq(cm_roll_from_notes(&re, &tm2, (cm_roll_grid){.steps_per_second = 4}, false, &back, NULL, &err),
                     CM_OK);
    ck_assert_mem_eq(back.frames, r.frames, (size_t)r.n_steps * CM_ROLL_NUM_KEYS);
    cm_roll_free(&back);
    cm_notes sn;
    ck_assert_int_eq(cm_roll_to_notes(&r, (cm_roll_grid){.steps_per_second = 4}, NULL, &sn, &err), CM_OK);
    ck_assert_int_eq(sn.n_notes, 4);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(sn.notes[i].start_tick, n.notes[i].start_tick);
        ck_assert_double_eq_tol(sn.notes[i].end_s, n.notes[i].end_s, 1e-12);
    }
    cm_notes_free(&sn);
    cm_notes_free(&re);
    cm_tempo_map_free(&tm2);
    cm_file_free(f);
    cm_tempo_map_free(&tm);
    cm_notes_free(&n);
    cm_roll_free(&r);
    ck_assert_int_eq(cm_roll_init(&r, -1, &err), CM_E_ARG);
    ck_assert_int_eq(cm_roll_init(&r, CM_ROLL_MAX_STEPS + 1, &err), CM_E_LIMIT);
    ck_assert_int_eq(cm_roll_init(&r, 0, &err), CM_OK);
    ck_assert_int_eq(cm_roll_to_notes(&r, g, NULL, &n, &err), CM_OK);
    ck_assert_int_eq(n.n_notes, 0);
    cm_notes_free(&n);
    cm_roll_free(&r);
}
END_TEST

/* ==== the polyphonic text format ============================================================= */
static const char POLY_TEXT[] = "21 60 108\n-\n48 52\n\n60 64 67\n60 64 67\n-\n100\n";

START_TEST(test_poly_read_write) {
    cm_poly p;
    cm_error err;
    ck_assert_msg(cm_poly_read_mem(POLY_TEXT, strlen(POLY_TEXT), "t.txt", &p, &err) == CM_OK, "%s", err.message);
    ck_assert_int_eq(p.n_pieces, 2);
    ck_assert_int_eq(p.pieces[0].n_steps, 3);
    ck_assert_int_eq(p.pieces[1].n_steps, 4);
    ck_assert(cm_roll_on(&p.pieces[0], 0, 21) && cm_roll_on(&p.pieces[0], 0, 60) && cm_roll_on(&p.pieces[0], 0, 108));
    int on = 0;
    for (int k = 0; k < CM_ROLL_NUM_KEYS; k++) on += cm_roll_frame(&p.pieces[0], 1)[k];
    ck_assert_int_eq(on, 0);
    ck_assert(cm_roll_on(&p.pieces[1], 3, 100));
    char *text = NULL;
    size_t len = 0;
    ck_assert_int_eq(cm_poly_write_mem(&p, &text, &len, &err), CM_OK);
    ck_assert_uint_eq(len, strlen(POLY_TEXT));
    ck_assert_mem_eq(text, POLY_TEXT, len);
    free(text);
    /* a roll built from notes writes as the format (nonzero frames count as on) */
    cm_roll_frame(&p.pieces[1], 2)[0] = 7;
    ck_assert_int_eq(cm_poly_write_mem(&p, &text, &len, &err), CM_OK);
    ck_assert(strstr(text, "\n60 64 67\n21\n100\n") != NULL);
    free(text);
    cm_roll_frame(&p.pieces[1], 2)[0] = 1;
    /* a file, atomically written, read back */
    char path[64];
    if (mkdir("tmp", 0777) != 0) ck_assert_int_eq(errno, EEXIST);
    snprintf(path, sizeof path, "tmp/poly_%ld.txt", (long)getpid());
    ck_assert_msg(cm_poly_write_file(&p, path, &err) == CM_OK, "%s", err.message);
    cm_poly q;
    ck_assert_msg(cm_poly_read_file(path, &q, &err) == CM_OK, "%s", err.message);
    ck_assert_int_eq(q.n_pieces, 2);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(q.pieces[i].n_steps, p.pieces[i].n_steps);
        ck_assert_mem_eq(q.pieces[i].frames, p.pieces[i].frames, (size_t)q.pieces[i].n_steps * CM_ROLL_NUM_KEYS);
    }
    cm_poly_free(&q);
    unlink(path);
    ck_assert_int_eq(cm_poly_read_file(path, &q, &err), CM_E_IO);
    ck_assert(strncmp(err.message, path, strlen(path)) == 0);
    ASSERT_MSG_HAS(err, "cannot open");
    /* a folder, and a file over CM_POLY_MAX_FILE_BYTES (sparse), refused before reading */
    ck_assert_int_eq(cm_poly_read_file("tmp", &q, &err), CM_E_IO);
    ASSERT_MSG_HAS(err, "tmp: cannot read: Is a directory");
    FILE *big = fopen(path, "wb");
    ck_assert_ptr_nonnull(big);
    ck_assert_int_eq(ftruncate(fileno(big), (off_t)CM_POLY_MAX_FILE_BYTES + 5), 0);
    fclose(big);
    ck_assert_int_eq(cm_poly_read_file(path, &q, &err), CM_E_LIMIT);
    ASSERT_MSG_HAS(err, "536870917 bytes, more than the limit of 536870912 (CM_POLY_MAX_FILE_BYTES)");
    unlink(path);
    ck_assert_int_eq(cm_poly_write_file(&p, "tmp/no/such/folder/x.txt", &err), CM_E_IO);
    ASSERT_MSG_HAS(err, "does the folder exist");
    /* a piece without steps cannot be written */
    cm_roll_free(&p.pieces[1]);
    ck_assert_int_eq(cm_poly_write_mem(&p, &text, &len, &err), CM_E_ARG);
    ASSERT_MSG_HAS(err, "piece 1 has 0 steps");
    ck_assert_ptr_null(text);
    cm_poly_free(&p);
    cm_poly_free(&p);
    /* an empty file: no pieces, and back */
    ck_assert_int_eq(cm_poly_read_mem("", 0, "empty.txt", &p, &err), CM_OK);
    ck_assert_int_eq(p.n_pieces, 0);
    ck_assert_int_eq(cm_poly_write_mem(&p, &text, &len, &err), CM_OK);
    ck_assert_uint_eq(len, 0);
    free(text);
    cm_poly_free(&p);
}
END_TEST

/* Random rolls: write -> read -> write gives the same bytes and frames. */
START_TEST(test_poly_random_round_trip) {
    uint64_t seed = 99;
    cm_poly p = {calloc(5, sizeof(cm_roll)), 5};
    cm_error err;
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(cm_roll_init(&p.pieces[i], 1 + (int64_t)(lcg_next(&seed) % 200), &err), CM_OK);
        for (int64_t t = 0; t < p.pieces[i].n_steps; t++)
            for (int k = 0; k < CM_ROLL_NUM_KEYS; k++)
                cm_roll_frame(&p.pieces[i], t)[k] = lcg_next(&seed) % 13 == 0;
    }
    char *text = NULL;
    size_t len = 0;
    ck_assert_int_eq(cm_poly_write_mem(&p, &text, &len, &err), CM_OK);
    cm_poly q;
    ck_assert_msg(cm_poly_read_mem(text, len, "random.txt", &q, &err) == CM_OK, "%s", err.message);
    ck_assert_int_eq(q.n_pieces, 5);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(q.pieces[i].n_steps, p.pieces[i].n_steps);
        ck_assert_mem_eq(q.pieces[i].frames, p.pieces[i].frames, (size_t)q.pieces[i].n_steps * CM_ROLL_NUM_KEYS);
    }
    char *text2 = NULL;
    size_t len2 = 0;
    ck_assert_int_eq(cm_poly_write_mem(&q, &text2, &len2, &err), CM_OK);
    ck_assert_uint_eq(len2, len);
    ck_assert_mem_eq(text2, text, len);
    free(text);
    free(text2);
    cm_poly_free(&q);
    cm_poly_free(&p);
}
END_TEST

/* Mutated texts: the reader accepts only the canonical format, so whatever it accepts writes
 * back to the same bytes; whatever it refuses gets a syntax error naming a line. */
START_TEST(test_poly_mutations) {
    static const char alphabet[] = " -\n0123456789\r\tx";
    uint64_t seed = 2024;
    char buf[128];
    cm_error err;
    int accepted = 0;
    for (int it = 0; it < 4000; it++) {
        size_t n = strlen(POLY_TEXT);
        memcpy(buf, POLY_TEXT, n);
        int k = 1 + (int)(lcg_next(&seed) % 3);
        for (int m = 0; m < k; m++) {
            size_t at = (size_t)(lcg_next(&seed) % n);
            char c = alphabet[lcg_next(&seed) % (sizeof alphabet - 1)];
            switch (lcg_next(&seed) % 3) {
            case 0: buf[at] = c; break;
            case 1:
                if (n + 1 < sizeof buf) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = c;
                    n++;
                }
                break;
            default:
                if (n > 1) {
                    memmove(buf + at, buf + at + 1, n - at - 1);
                    n--;
                }
            }
        }
        cm_poly p;
        cm_status s = cm_poly_read_mem(buf, n, "fuzz.txt", &p, &err);
        if (s == CM_OK) {
            char *text = NULL;
            size_t len = 0;
            ck_assert_int_eq(cm_poly_write_mem(&p, &text, &len, &err), CM_OK);
            ck_assert_msg(len == n && memcmp(text, buf, n) == 0, "accepted \"%.*s\" but writes \"%.*s\"", (int)n, buf,
                          (int)len, text);
            free(text);
            cm_poly_free(&p);
            accepted++;
        } else {
            ck_assert_int_eq(s, CM_E_POLY_SYNTAX);
            ck_assert_msg(strncmp(err.message, "fuzz.txt: line ", 15) == 0, "message \"%s\"", err.message);
            ck_assert(err.offset >= 0 && (size_t)err.offset <= n);
            ck_assert_ptr_null(p.pieces);
        }
    }
    ck_assert_int_gt(accepted, 100);  /* both branches were exercised */
}
END_TEST

static const struct {
    const char *text;
    const char *want;   /* the message after "bad.txt: " */
    int64_t offset;
} POLY_BAD[] = {
    {"60 48\n", "line 1, column 4: pitch 48 after 60: the pitches of a step must be in ascending order", 3},
    {"60 60\n", "line 1, column 4: pitch 60 listed twice in one step", 3},
    {"48\n60  64\n", "line 2, column 4: two spaces: pitches are separated by single spaces", 6},
    {"60\n\n\n64\n", "line 3, column 1: a second blank line: pieces are separated by exactly one blank line", 4},
    {"\n60\n", "line 1, column 1: blank line before the first piece", 0},
    {"60\n\n", "line 2, column 1: blank line after the last piece", 3},
    {"60\n64", "line 2, column 3: the file does not end with a newline", 5},
    {"60\r\n", "line 1, column 3: carriage return: the format uses '\\n' line ends", 2},
    {"20\n", "line 1, column 1: pitch 20 outside 21..108 (the 88 piano keys)", 0},
    {"60 109\n", "line 1, column 4: pitch 109 outside 21..108", 3},
    {"0\n", "line 1, column 1: pitch 0 outside 21..108", 0},
    {"060\n", "line 1, column 1: pitch '060' has a leading zero", 0},
    {"60 -\n", "line 1, column 4: '-' marks a silent step and must stand alone on its line", 3},
    {"--\n", "line 1, column 1: '-' marks a silent step", 0},
    {"60 \n", "line 1, column 3: trailing space at the end of the line", 2},
    {" 60\n", "line 1, column 1: leading space", 0},
    {"6x\n", "line 1, column 2: unexpected character 'x'", 1},
    {"60\t64\n", "line 1, column 3: tab: pitches are separated by single spaces", 2},
    {"+60\n", "line 1, column 1: unexpected character '+'", 0},
    {"60\n\xc3\xa9\n", "line 2, column 1: unexpected byte 0xc3", 3},
    {"99999999999999999999\n", "line 1, column 1: pitch 999999999999 outside", 0},
};
#define N_POLY_BAD ((int)(sizeof POLY_BAD / sizeof *POLY_BAD))

START_TEST(test_poly_errors) {
    cm_poly p;
    cm_error err;
    memset(&err, 0, sizeof err);
    const char *text = POLY_BAD[_i].text;
    ck_assert_int_eq(cm_poly_read_mem(text, strlen(text), "bad.txt", &p, &err), CM_E_POLY_SYNTAX);
    ck_assert_int_eq(err.status, CM_E_POLY_SYNTAX);
    ck_assert_str_eq(err.file, "bad.txt");
    ck_assert_msg(strncmp(err.message, "bad.txt: ", 9) == 0 && strstr(err.message + 9, POLY_BAD[_i].want) ==
                  err.message + 9, "case %d: message \"%s\", expected \"bad.txt: %s...\"", _i, err.message,
                  POLY_BAD[_i].want);
    ck_assert_int_eq(err.offset, POLY_BAD[_i].offset);
    ck_assert_ptr_null(p.pieces);
    ck_assert_int_eq(p.n_pieces, 0);
    /* err may be NULL */
    ck_assert_int_eq(cm_poly_read_mem(text, strlen(text), NULL, &p, NULL), CM_E_POLY_SYNTAX);
}
END_TEST

Suite *encodings_suite(void) {
    Suite *s = suite_create("encodings");
    TCase *tm = tcase_create("melody");
    tcase_add_test(tm, test_melody_constants);
    tcase_add_test(tm, test_melody_extract_scale);
    tcase_add_test(tm, test_melody_overlap_keeps_highest);
    tcase_add_test(tm, test_melody_split_at_silence);
    tcase_add_test(tm, test_melody_min_length_and_pitches);
    tcase_add_test(tm, test_melody_drums_and_instruments);
    tcase_add_test(tm, test_melody_range);
    tcase_add_test(tm, test_melody_time_signature);
    tcase_add_test(tm, test_melody_tokens_round_trip);
    tcase_add_test(tm, test_melody_notes_round_trip_and_midi);
    suite_add_tcase(s, tm);
    TCase *tp = tcase_create("performance");
    tcase_add_test(tp, test_perf_constants);
    tcase_add_test(tp, test_perf_velocity_bins);
    tcase_add_test(tp, test_perf_time_shifts_and_velocity_events);
    tcase_add_test(tp, test_perf_drums_and_errors);
    tcase_add_test(tp, test_perf_decode_rules);
    tcase_add_test(tp, test_perf_notes_round_trip);
    tcase_add_test(tp, test_perf_tokens_round_trip_and_midi);
    suite_add_tcase(s, tp);
    TCase *tr = tcase_create("pianoroll");
    tcase_add_test(tr, test_roll_from_notes_edges);
    tcase_add_test(tr, test_roll_to_notes_and_midi);
    tcase_add_test(tr, test_poly_read_write);
    tcase_add_test(tr, test_poly_random_round_trip);
    tcase_add_test(tr, test_poly_mutations);
    tcase_add_loop_test(tr, test_poly_errors, 0, N_POLY_BAD);
    suite_add_tcase(s, tr);
    return s;
}
