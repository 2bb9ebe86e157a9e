/* audio/midi_build.c — from notes to a MIDI file: cm_notes_from_array groups a plain note list
 * into instruments; cm_file_from_notes lays out a format 1 file (conductor track 0, then one
 * track per instrument) for cm_write_file. */
#include <stdlib.h>
#include <string.h>

#include "audio/midi.h"

#define NAME "<notes>"

static cm_status check_note(const cm_note *x, int64_t i, cm_error *err) {
    if (x->pitch > 127 || x->velocity > 127 || x->channel > 15 || x->program > 127)
        return cm__fail(err, CM_E_ARG, NAME, -1, -1,
                        "note %lld: pitch %d, velocity %d, channel %d, program %d; expected pitch, "
                        "velocity and program 0..127 and channel 0..15",
                        (long long)i, x->pitch, x->velocity, x->channel, x->program);
    if (x->start_tick < 0 || x->end_tick < x->start_tick || x->end_tick > CM_MAX_TICK)
        return cm__fail(err, CM_E_ARG, NAME, -1, -1,
                        "note %lld: ticks %lld..%lld; expected 0 <= start <= end <= %lld",
                        (long long)i, (long long)x->start_tick, (long long)x->end_tick,
                        (long long)CM_MAX_TICK);
    return CM_OK;
}

cm_status cm_notes_from_array(cm_notes *out, const cm_note *notes, int64_t n, cm_error *err) {
    if (!out) return cm__fail(err, CM_E_ARG, NAME, -1, -1, "cm_notes_from_array: NULL out");
    memset(out, 0, sizeof *out);
    if (n < 0 || (n > 0 && !notes))
        return cm__fail(err, CM_E_ARG, NAME, -1, -1, "cm_notes_from_array: %lld notes at %p",
                        (long long)n, (const void *)notes);
    if (n > CM_MAX_EVENTS_TOTAL / 2)
        return cm__fail(err, CM_E_LIMIT, NAME, -1, -1, "%lld notes, more than the limit of %d",
                        (long long)n, CM_MAX_EVENTS_TOTAL / 2);
    for (int64_t i = 0; i < n; i++) {
        cm_status s = check_note(&notes[i], i, err);
        if (s) return s;
    }
    if (n == 0) return CM_OK;
    out->notes = malloc((size_t)n * sizeof *out->notes);
    if (!out->notes) return cm__fail(err, CM_E_NOMEM, NAME, -1, -1, "out of memory for %lld notes", (long long)n);
    memcpy(out->notes, notes, (size_t)n * sizeof *notes);
    out->n_notes = n;
    for (int64_t i = 0; i < n; i++) {
        cm_note *x = &out->notes[i];
        x->is_drum = x->channel == CM_DRUM_CHANNEL;
        if (x->end_tick > out->end_tick) out->end_tick = x->end_tick;
        if (x->end_s > out->end_s) out->end_s = x->end_s;
    }
    cm_status s = cm__notes_group(out);
    if (s) {
        cm_notes_free(out);
        return cm__fail(err, s, NAME, -1, -1, "out of memory grouping %lld notes", (long long)n);
    }
    return CM_OK;
}

/* One note-on or note-off of an instrument track, in the order they are written. */
typedef struct nev {
    int64_t tick;
    int kind;      /* 0 note-off (note started earlier), 1 note-on, 2 note-off of a zero-length note */
    int64_t seq;   /* index in the instrument: ties keep note order */
    const cm_note *note;
} nev;

static int cmp_nev(const void *a, const void *b) {
    const nev *x = a, *y = b;
    if (x->tick != y->tick) return x->tick < y->tick ? -1 : 1;
    if (x->kind != y->kind) return x->kind - y->kind;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

static cm_status conductor(cm_track *t, const cm_tempo_map *tm) {
    int it = 0, ik = 0, io = 0;
    cm_status s = CM_OK;
    /* at one tick: time signature, key signature, tempo */
    while (!s && (it < tm->n_time_signatures || ik < tm->n_key_signatures || io < tm->n_tempos)) {
        int64_t tt = it < tm->n_time_signatures ? tm->time_signatures[it].tick : INT64_MAX;
        int64_t tk = ik < tm->n_key_signatures ? tm->key_signatures[ik].tick : INT64_MAX;
        int64_t to = io < tm->n_tempos ? tm->tempos[io].tick : INT64_MAX;
        if (tt <= tk && tt <= to) {
            const cm_time_signature *x = &tm->time_signatures[it++];
            s = cm_track_add_time_signature(t, x->tick, x->numerator, x->denominator,
                                            x->clocks_per_click, x->thirty_seconds_per_quarter);
        } else if (tk <= to) {
            const cm_key_signature *x = &tm->key_signatures[ik++];
            s = cm_track_add_key_signature(t, x->tick, x->sharps_flats, x->minor);
        } else {
            const cm_tempo *x = &tm->tempos[io++];
            s = cm_track_add_tempo(t, x->tick, x->us_per_quarter);
        }
    }
    return s;
}

static cm_status instrument_track(cm_track *t, const cm_notes *notes, const cm_instrument *ins) {
    cm_status s = CM_OK;
    if (ins->name[0]) s = cm_track_add_text(t, 0, CM_META_TRACK_NAME, ins->name);
    if (!s) s = cm_track_add_channel(t, 0, (uint8_t)(CM_PROGRAM_CHANGE | ins->channel), (uint8_t)ins->program, 0);
    if (s || ins->count == 0) return s;
    nev *v = malloc((size_t)ins->count * 2 * sizeof *v);
    if (!v) return CM_E_NOMEM;
    int64_t n = 0;
    for (int64_t i = 0; i < ins->count; i++) {
        const cm_note *x = &notes->notes[ins->first + i];
        v[n++] = (nev){x->start_tick, 1, i, x};
        v[n++] = (nev){x->end_tick, x->end_tick == x->start_tick ? 2 : 0, i, x};
    }
    qsort(v, (size_t)n, sizeof *v, cmp_nev);
    for (int64_t i = 0; !s && i < n; i++) {
        const cm_note *x = v[i].note;
        if (v[i].kind == 1)
            s = cm_track_add_channel(t, v[i].tick, (uint8_t)(CM_NOTE_ON | x->channel), x->pitch,
                                     x->velocity ? x->velocity : 1);
        else
            s = cm_track_add_channel(t, v[i].tick, (uint8_t)(CM_NOTE_OFF | x->channel), x->pitch, 64);
        if (v[i].tick > t->end_tick) t->end_tick = v[i].tick;
    }
    free(v);
    return s;
}

cm_file *cm_file_from_notes(const cm_notes *notes, const cm_tempo_map *tm, cm_error *err) {
    cm_tempo_map local = {0};
    if (!notes) {
        cm__fail(err, CM_E_ARG, NAME, -1, -1, "cm_file_from_notes: NULL notes");
        return NULL;
    }
    if (!tm) {
        if (cm_tempo_map_init_simple(&local, cm_division_ppq(CM_DEFAULT_PPQ), CM_DEFAULT_TEMPO, 4, 4)) {
            cm__fail(err, CM_E_NOMEM, NAME, -1, -1, "out of memory");
            return NULL;
        }
        tm = &local;
    }
    cm_status s = CM_OK;
    for (int64_t i = 0; !s && i < notes->n_notes; i++) s = check_note(&notes->notes[i], i, err);
    for (int i = 0; !s && i < notes->n_instruments; i++) {
        const cm_instrument *x = &notes->instruments[i];
        if (x->first < 0 || x->count < 0 || x->first > notes->n_notes || x->count > notes->n_notes - x->first ||
            x->channel < 0 || x->channel > 15 || x->program < 0 || x->program > 127)
            s = cm__fail(err, CM_E_ARG, NAME, -1, -1,
                         "instrument %d: notes %lld..+%lld of %lld, channel %d, program %d; "
                         "expected a range inside the notes, channel 0..15, program 0..127",
                         i, (long long)x->first, (long long)x->count, (long long)notes->n_notes,
                         x->channel, x->program);
    }
    if (!s && notes->n_instruments + 1 > CM_MAX_TRACKS)
        s = cm__fail(err, CM_E_LIMIT, NAME, -1, -1, "%d instruments need more than %d tracks",
                     notes->n_instruments, CM_MAX_TRACKS);
    cm_file *f = NULL;
    if (!s && !(f = cm_file_new(1, tm->division)))
        s = cm__fail(err, CM_E_ARG, NAME, -1, -1, "invalid division in the tempo map (ppq %d, SMPTE %d/%d)",
                     tm->division.ppq, tm->division.smpte_fps, tm->division.ticks_per_frame);
    if (!s) {
        if (cm_file_add_track(f) != 0) s = CM_E_NOMEM;
        if (!s) s = conductor(&f->tracks[0], tm);
        for (int i = 0; !s && i < notes->n_instruments; i++) {
            int ti = cm_file_add_track(f);
            s = ti < 0 ? CM_E_NOMEM : instrument_track(&f->tracks[ti], notes, &notes->instruments[i]);
            if (!s && f->tracks[ti].end_tick > f->tracks[0].end_tick) f->tracks[0].end_tick = f->tracks[ti].end_tick;
        }
        if (s) cm__fail(err, s, NAME, -1, -1, "cannot build the MIDI file: %s", cm_strerror(s));
    }
    cm_tempo_map_free(&local);
    if (s) {
        cm_file_free(f);
        return NULL;
    }
    for (int i = 0; i < f->n_tracks; i++) f->tracks[i].has_end_of_track = true;
    return f;
}
