/* tests/tools/midi_interop_write.c — writes MIDI files with cantor's writer and, beside each,
 * NAME.txt: what cantor means them to contain, in the format of tests/gen_midi_fixtures.py
 * (header / ev / eot / tempo / timesig / note / snote lines). tests/check_mido_interop.sh then
 * has mido read each file and compares. Usage: midi_interop_write OUTDIR */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/midi.h"

static int fail(const char *what, const cm_error *err) {
    fprintf(stderr, "midi_interop_write: %s: %s\n", what, err ? err->message : "failed");
    return 1;
}

static void print_notes(FILE *out, const char *tag, const cm_notes *n) {
    for (int64_t i = 0; i < n->n_notes; i++) {
        const cm_note *x = &n->notes[i];
        fprintf(out, "%s %d %d %d %d %d %lld %lld %.9f %.9f\n", tag, x->track, x->channel, x->pitch,
                x->velocity, x->program, (long long)x->start_tick, (long long)x->end_tick, x->start_s, x->end_s);
    }
}

/* What cantor reads back from the file it wrote (the writer and reader are tested against each
 * other in the unit tests; here mido is the judge). */
static int describe(const char *mid, const char *txt) {
    cm_error err;
    cm_file *f = NULL;
    if (cm_read_file(mid, &f, &err)) return fail("re-reading", &err);
    FILE *out = fopen(txt, "w");
    if (!out) return fail(txt, NULL);
    int div = f->division.ppq ? f->division.ppq
                              : (int)(int16_t)(uint16_t)((((uint8_t)(int8_t)-f->division.smpte_fps) << 8) |
                                                         f->division.ticks_per_frame);
    fprintf(out, "header %d %d %d\n", f->format, f->n_tracks, div);
    for (int t = 0; t < f->n_tracks; t++) {
        const cm_track *tr = &f->tracks[t];
        for (int64_t i = 0; i < tr->n_events; i++) {
            const cm_event *e = &tr->events[i];
            fprintf(out, "ev %d %lld %02x", t, (long long)e->tick, e->status);
            if (cm_event_is_channel(e)) {
                fprintf(out, " %02x", e->data[0]);
                if (cm_event_type(e) != CM_PROGRAM_CHANGE && cm_event_type(e) != CM_CHANNEL_PRESSURE)
                    fprintf(out, " %02x", e->data[1]);
            } else {
                if (e->status == CM_META) fprintf(out, " %02x", e->meta_type);
                const uint8_t *p = cm_event_payload(tr, e);
                for (uint32_t k = 0; k < e->length; k++) fprintf(out, " %02x", p[k]);
            }
            fputc('\n', out);
        }
        fprintf(out, "eot %d %lld\n", t, (long long)tr->end_tick);
    }
    cm_tempo_map m;
    if (cm_tempo_map_init(&m, f, -1, &err)) return fail("tempo map", &err);
    for (int i = 0; i < m.n_tempos; i++)
        fprintf(out, "tempo %lld %u\n", (long long)m.tempos[i].tick, m.tempos[i].us_per_quarter);
    for (int i = 0; i < m.n_time_signatures; i++)
        fprintf(out, "timesig %lld %d %d\n", (long long)m.time_signatures[i].tick,
                m.time_signatures[i].numerator, m.time_signatures[i].denominator);
    cm_tempo_map_free(&m);
    cm_notes n;
    if (cm_notes_extract(f, NULL, &n, &err)) return fail("notes", &err);
    print_notes(out, "note", &n);
    cm_notes_free(&n);
    if (cm_notes_extract(f, &(cm_notes_opts){.sustain = true}, &n, &err)) return fail("notes", &err);
    print_notes(out, "snote", &n);
    cm_notes_free(&n);
    fclose(out);
    cm_file_free(f);
    return 0;
}

static int write_and_describe(const cm_file *f, const char *dir, const char *name, bool rs) {
    char mid[4096], txt[4096];
    snprintf(mid, sizeof mid, "%s/%s.mid", dir, name);
    snprintf(txt, sizeof txt, "%s/%s.txt", dir, name);
    cm_error err;
    if (cm_write_file(f, mid, &(cm_write_opts){.running_status = rs}, &err)) return fail("writing", &err);
    printf("wrote %s\n", mid);
    return describe(mid, txt);
}

static cm_note note(int ch, int prog, int pitch, int vel, int64_t start, int64_t end) {
    return (cm_note){.start_tick = start, .end_tick = end, .pitch = (uint8_t)pitch,
                     .velocity = (uint8_t)vel, .channel = (uint8_t)ch, .program = (uint8_t)prog};
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    cm_error err;
    int bad = 0;

    /* a song from notes: melody, overlapping chords, drums, back-to-back and zero-length notes */
    cm_note v[128];
    int n = 0;
    for (int i = 0; i < 24; i++) v[n++] = note(0, 73, 72 + (i * 7) % 12, 50 + i * 3, i * 240, i * 240 + 180);
    for (int i = 0; i < 6; i++)
        for (int k = 0; k < 3; k++) v[n++] = note(1, 48, 48 + 3 * k + (i % 2), 64, i * 960, i * 960 + 1100);
    for (int i = 0; i < 16; i++) v[n++] = note(9, 0, i % 4 ? 42 : 36, 100, i * 360, i * 360 + 30);
    v[n++] = note(0, 73, 60, 90, 6000, 6000);
    v[n++] = note(0, 73, 61, 90, 6100, 6200);
    v[n++] = note(0, 73, 61, 91, 6200, 6300);
    cm_notes notes;
    if (cm_notes_from_array(&notes, v, n, &err)) return fail("notes", &err);
    snprintf(notes.instruments[0].name, sizeof notes.instruments[0].name, "Flute");
    snprintf(notes.instruments[1].name, sizeof notes.instruments[1].name, "Strings");
    snprintf(notes.instruments[2].name, sizeof notes.instruments[2].name, "Drums");
    cm_tempo_map tm;
    if (cm_tempo_map_init_simple(&tm, cm_division_ppq(480), 500000, 4, 4) ||
        cm_tempo_map_add_tempo(&tm, 1920, 750000) || cm_tempo_map_add_tempo(&tm, 3840, 400000) ||
        cm_tempo_map_add_time_signature(&tm, 3840, 6, 8) || cm_tempo_map_add_key_signature(&tm, 0, 2, false))
        return fail("tempo map", NULL);
    cm_file *f = cm_file_from_notes(&notes, &tm, &err);
    if (!f) return fail("building", &err);
    bad |= write_and_describe(f, dir, "cantor_fmt1_rs", true);
    bad |= write_and_describe(f, dir, "cantor_fmt1", false);
    cm_file_free(f);
    cm_tempo_map_free(&tm);

    /* SMPTE 25 fps x 40 ticks */
    if (cm_tempo_map_init_simple(&tm, cm_division_smpte(25, 40), 500000, 3, 4)) return fail("smpte map", NULL);
    f = cm_file_from_notes(&notes, &tm, &err);
    if (!f) return fail("building", &err);
    bad |= write_and_describe(f, dir, "cantor_smpte", true);
    cm_file_free(f);
    cm_tempo_map_free(&tm);
    cm_notes_free(&notes);

    /* format 0 with every kind of event, built event by event */
    f = cm_file_new(0, cm_division_ppq(96));
    if (!f || cm_file_add_track(f) != 0) return fail("model", NULL);
    cm_track *t = &f->tracks[0];
    uint8_t sx[] = {0x41, 0x10, 0x42, 0x12, 0x40, 0x00, 0x7F, 0x00, 0x41, 0xF7}, seq[] = {0x00, 0x21, 0x09};
    cm_status s = cm_track_add_text(t, 0, CM_META_TRACK_NAME, "events");
    if (!s) s = cm_track_add_text(t, 0, CM_META_COPYRIGHT, "(c) nobody");
    if (!s) s = cm_track_add_tempo(t, 0, 654321);
    if (!s) s = cm_track_add_time_signature(t, 0, 5, 4, 24, 8);
    if (!s) s = cm_track_add_key_signature(t, 0, -4, true);
    if (!s) s = cm_track_add_sysex(t, 0, CM_SYSEX, sx, sizeof sx);
    if (!s) s = cm_track_add_meta(t, 0, CM_META_SEQUENCER, seq, sizeof seq);
    if (!s) s = cm_track_add_channel(t, 0, 0xC2, 19, 0);
    if (!s) s = cm_track_add_channel(t, 0, 0xB2, 7, 90);
    if (!s) s = cm_track_add_channel(t, 0, 0x92, 60, 80);
    if (!s) s = cm_track_add_channel(t, 10, 0xB2, CM_CC_SUSTAIN, 127);
    if (!s) s = cm_track_add_channel(t, 20, 0xE2, 0x00, 0x50);
    if (!s) s = cm_track_add_channel(t, 30, 0xA2, 60, 30);
    if (!s) s = cm_track_add_channel(t, 40, 0xD2, 45, 0);
    if (!s) s = cm_track_add_channel(t, 50, 0x92, 60, 0);
    if (!s) s = cm_track_add_channel(t, 60, 0x92, 64, 70);
    if (!s) s = cm_track_add_channel(t, 70, 0x82, 64, 10);
    if (!s) s = cm_track_add_text(t, 80, CM_META_MARKER, "lift");
    if (!s) s = cm_track_add_channel(t, 96, 0xB2, CM_CC_SUSTAIN, 0);
    if (!s) s = cm_track_add_channel(t, 100, 0x92, 67, 60);
    if (s) return fail("adding events", NULL);
    t->end_tick = 192; /* the last note stays open: closed at End of Track */
    bad |= write_and_describe(f, dir, "cantor_events_rs", true);
    bad |= write_and_describe(f, dir, "cantor_events", false);
    cm_file_free(f);
    return bad;
}
