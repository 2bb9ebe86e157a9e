/* tests/fuzz/fuzz_midi_body.h — one fuzzing iteration over the MIDI layer, shared by the
 * libFuzzer target (tests/fuzz/fuzz_midi.c) and the unit tests, which run it over every file in
 * tests/fixtures/midi/regress/ and the seed corpus.
 *
 * It reads the bytes; on failure checks the error record; on success checks the model's
 * invariants, builds the tempo map and converts ticks both ways, extracts notes with and
 * without the sustain pedal, writes the file to memory (with and without running status) and
 * re-reads it expecting the very same events, and builds a format 1 file from the notes.
 * A broken invariant aborts (libFuzzer and Check both report it). */
#ifndef CANTOR_FUZZ_MIDI_BODY_H
#define CANTOR_FUZZ_MIDI_BODY_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/midi.h"

#define FZ_CHECK(c)                                                                              \
    do {                                                                                         \
        if (!(c)) {                                                                              \
            fprintf(stderr, "fuzz_midi: invariant failed: %s (%s:%d)\n", #c, __FILE__, __LINE__); \
            abort();                                                                             \
        }                                                                                        \
    } while (0)

static void fz_check_file(const cm_file *f) {
    FZ_CHECK(f->format >= 0 && f->format <= 2);
    FZ_CHECK(cm_division_valid(f->division));
    FZ_CHECK(f->n_tracks >= 0 && f->n_tracks <= CM_MAX_TRACKS);
    for (int t = 0; t < f->n_tracks; t++) {
        const cm_track *tr = &f->tracks[t];
        FZ_CHECK(tr->n_events >= 0 && tr->n_events <= CM_MAX_EVENTS_PER_TRACK);
        int64_t last = 0;
        for (int64_t i = 0; i < tr->n_events; i++) {
            const cm_event *e = &tr->events[i];
            FZ_CHECK(e->tick >= last && e->tick <= CM_MAX_TICK);
            last = e->tick;
            if (cm_event_is_channel(e)) {
                FZ_CHECK(e->data[0] < 128 && e->data[1] < 128 && e->length == 0);
            } else {
                FZ_CHECK(e->status == CM_META || e->status == CM_SYSEX || e->status == CM_SYSEX_ESCAPE);
                FZ_CHECK(!(e->status == CM_META && e->meta_type == CM_META_END_OF_TRACK));
                FZ_CHECK((size_t)e->offset + e->length <= tr->n_data);
            }
        }
        FZ_CHECK(tr->end_tick >= last && tr->end_tick <= CM_MAX_TICK);
    }
}

static void fz_same_files(const cm_file *a, const cm_file *b) {
    FZ_CHECK(a->format == b->format && a->n_tracks == b->n_tracks);
    FZ_CHECK(a->division.ppq == b->division.ppq && a->division.smpte_fps == b->division.smpte_fps &&
             a->division.ticks_per_frame == b->division.ticks_per_frame);
    for (int t = 0; t < a->n_tracks; t++) {
        const cm_track *x = &a->tracks[t], *y = &b->tracks[t];
        FZ_CHECK(x->n_events == y->n_events && x->end_tick == y->end_tick);
        for (int64_t i = 0; i < x->n_events; i++) {
            const cm_event *e = &x->events[i], *g = &y->events[i];
            FZ_CHECK(e->tick == g->tick && e->status == g->status && e->meta_type == g->meta_type &&
                     e->length == g->length && e->data[0] == g->data[0] && e->data[1] == g->data[1]);
            if (e->length)
                FZ_CHECK(memcmp(cm_event_payload(x, e), cm_event_payload(y, g), e->length) == 0);
        }
    }
}

static void fz_check_tempo(const cm_file *f) {
    cm_tempo_map m;
    cm_error err;
    if (cm_tempo_map_init(&m, f, f->format == 2 && f->n_tracks > 0 ? 0 : -1, &err) != CM_OK) {
        FZ_CHECK(err.status == CM_E_NOMEM || f->format == 2);
        return;
    }
    FZ_CHECK(m.n_tempos >= 1 && m.tempos[0].tick == 0);
    double prev = 0.0;
    int64_t prev_tick = 0;
    for (int t = 0; t < f->n_tracks; t++)
        for (int64_t i = 0; i < f->tracks[t].n_events; i += 1 + i / 4) {
            int64_t tick = f->tracks[t].events[i].tick;
            double s = cm_tick_to_seconds(&m, tick);
            FZ_CHECK(isfinite(s) && s >= 0.0);
            if (tick >= prev_tick) FZ_CHECK(s >= prev);
            prev = s;
            prev_tick = tick;
            int64_t back = cm_seconds_to_tick(&m, s);
            FZ_CHECK(back >= 0 && back <= CM_MAX_TICK);
        }
    for (int i = 1; i < m.n_tempos; i++) FZ_CHECK(m.tempos[i].tick > m.tempos[i - 1].tick);
    cm_tempo_map_free(&m);
}

static void fz_check_notes(const cm_file *f, bool sustain) {
    cm_notes n;
    cm_notes_opts o = {.sustain = sustain};
    if (cm_notes_extract(f, &o, &n, NULL) != CM_OK) return; /* out of memory only */
    int64_t total = 0;
    for (int i = 0; i < n.n_instruments; i++) {
        const cm_instrument *in = &n.instruments[i];
        FZ_CHECK(in->first == total && in->count > 0);
        total += in->count;
    }
    FZ_CHECK(total == n.n_notes);
    for (int64_t i = 0; i < n.n_notes; i++) {
        const cm_note *x = &n.notes[i];
        FZ_CHECK(x->start_tick >= 0 && x->end_tick >= x->start_tick && x->end_tick <= n.end_tick);
        FZ_CHECK(x->pitch < 128 && x->velocity > 0 && x->velocity < 128 && x->channel < 16);
        FZ_CHECK(x->end_s >= x->start_s && isfinite(x->end_s));
        FZ_CHECK(x->is_drum == (x->channel == CM_DRUM_CHANNEL));
    }
    /* notes -> a format 1 file -> bytes -> file: the same number of notes comes back */
    cm_tempo_map m;
    if (f->format != 2 && cm_tempo_map_init(&m, f, -1, NULL) == CM_OK) {
        cm_file *g = cm_file_from_notes(&n, &m, NULL);
        uint8_t *buf = NULL;
        size_t len = 0;
        if (g && cm_write_mem(g, NULL, &buf, &len, NULL) == CM_OK) {
            cm_file *h = NULL;
            FZ_CHECK(cm_read_mem(buf, len, "built", &h, NULL) == CM_OK);
            cm_notes back;
            if (cm_notes_extract(h, NULL, &back, NULL) == CM_OK) {
                FZ_CHECK(back.n_notes == n.n_notes);
                cm_notes_free(&back);
            }
            cm_file_free(h);
        }
        free(buf);
        cm_file_free(g);
        cm_tempo_map_free(&m);
    }
    cm_notes_free(&n);
}

static void cm_fuzz_one(const uint8_t *data, size_t size) {
    cm_error err;
    cm_file *f = NULL;
    cm_status s = cm_read_mem(data, size, "fuzz.mid", &f, &err);
    if (s != CM_OK) {
        FZ_CHECK(f == NULL && err.status == s && s < CM_STATUS_COUNT);
        FZ_CHECK(strncmp(err.message, "fuzz.mid: ", 10) == 0 && strlen(err.message) > 12);
        FZ_CHECK(strcmp(cm_strerror(s), "unknown MIDI status") != 0);
        return;
    }
    FZ_CHECK(f != NULL);
    fz_check_file(f);
    fz_check_tempo(f);
    fz_check_notes(f, false);
    fz_check_notes(f, true);
    for (int rs = 0; rs < 2; rs++) {
        cm_write_opts o = {.running_status = rs == 1};
        uint8_t *buf = NULL;
        size_t len = 0;
        s = cm_write_mem(f, &o, &buf, &len, &err);
        if (s != CM_OK) { /* only a format 0 file with several tracks is refused */
            FZ_CHECK(s == CM_E_ARG && f->format == 0 && f->n_tracks != 1);
            continue;
        }
        cm_file *g = NULL;
        s = cm_read_mem(buf, len, "rewritten", &g, &err);
        if (s != CM_OK) fprintf(stderr, "fuzz_midi: re-read failed: %s\n", err.message);
        FZ_CHECK(s == CM_OK);
        fz_same_files(f, g);
        FZ_CHECK(g->missing_end_of_track == 0);
        cm_file_free(g);
        free(buf);
    }
    cm_file_free(f);
}

#endif
