/* audio/midi_notes.c — notes from a MIDI file: note-on/off pairing (FIFO per channel and
 * pitch), notes left open closed at their track's end, the sustain pedal, programs, drums. */
#include <stdlib.h>
#include <string.h>

#include "audio/midi.h"

#define NKEYS (16 * 128)
#define NONE (-1)

/* Per-track pairing state. Open and sustained notes of each (channel, pitch) are FIFO queues
 * threaded through `link` (one slot per note). */
typedef struct pairing {
    cm_note *notes;
    int64_t *link;
    int64_t n, cap;
    int64_t open_head[NKEYS], open_tail[NKEYS];
    int64_t sus_head[NKEYS], sus_tail[NKEYS];  /* note-off seen while the pedal was down */
    int64_t held[16];   /* sustained notes per channel (a pedal lift with none costs nothing) */
    uint8_t program[16];
    bool pedal[16];
} pairing;

static void q_push(int64_t *head, int64_t *tail, int64_t *link, int key, int64_t i) {
    link[i] = NONE;
    if (tail[key] == NONE) head[key] = i;
    else link[tail[key]] = i;
    tail[key] = i;
}

static int64_t q_pop(int64_t *head, int64_t *tail, const int64_t *link, int key) {
    int64_t i = head[key];
    if (i == NONE) return NONE;
    head[key] = link[i];
    if (head[key] == NONE) tail[key] = NONE;
    return i;
}

static cm_status new_note(pairing *p, int64_t *out) {
    if (p->n == p->cap) {
        int64_t cap = p->cap ? p->cap * 2 : 256;
        cm_note *nn = realloc(p->notes, (size_t)cap * sizeof *nn);
        if (!nn) return CM_E_NOMEM;
        p->notes = nn;
        int64_t *nl = realloc(p->link, (size_t)cap * sizeof *nl);
        if (!nl) return CM_E_NOMEM;
        p->link = nl;
        p->cap = cap;
    }
    *out = p->n++;
    return CM_OK;
}

/* Ends every sustained note of key at tick. */
static void release_sustained(pairing *p, int key, int64_t tick) {
    int64_t i;
    while ((i = q_pop(p->sus_head, p->sus_tail, p->link, key)) != NONE) {
        p->notes[i].end_tick = tick > p->notes[i].start_tick ? tick : p->notes[i].start_tick;
        p->held[key / 128]--;
    }
}

static cm_status pair_track(pairing *p, const cm_file *f, int ti, const cm_notes_opts *o, cm_notes *out) {
    const cm_track *t = &f->tracks[ti];
    for (int k = 0; k < NKEYS; k++)
        p->open_head[k] = p->open_tail[k] = p->sus_head[k] = p->sus_tail[k] = NONE;
    memset(p->program, 0, sizeof p->program);
    memset(p->pedal, 0, sizeof p->pedal);
    memset(p->held, 0, sizeof p->held);
    for (int64_t i = 0; i < t->n_events; i++) {
        const cm_event *e = &t->events[i];
        if (!cm_event_is_channel(e)) continue;
        int type = e->status & 0xF0, ch = e->status & 0x0F, key = ch * 128 + e->data[0];
        if (type == CM_NOTE_ON && e->data[1] > 0) {
            if (o->sustain && p->held[ch]) release_sustained(p, key, e->tick); /* a re-struck sustained pitch */
            int64_t n;
            if (new_note(p, &n)) return CM_E_NOMEM;
            p->notes[n] = (cm_note){.start_tick = e->tick, .end_tick = e->tick, .pitch = e->data[0],
                                    .velocity = e->data[1], .channel = (uint8_t)ch,
                                    .program = p->program[ch], .track = ti,
                                    .is_drum = ch == CM_DRUM_CHANNEL};
            q_push(p->open_head, p->open_tail, p->link, key, n);
        } else if (type == CM_NOTE_OFF || type == CM_NOTE_ON) {
            int64_t n = q_pop(p->open_head, p->open_tail, p->link, key);
            if (n == NONE) {
                out->unmatched_note_offs++;
            } else if (o->sustain && p->pedal[ch]) {
                q_push(p->sus_head, p->sus_tail, p->link, key, n);
                p->held[ch]++;
            } else {
                p->notes[n].end_tick = e->tick;
            }
        } else if (type == CM_PROGRAM_CHANGE) {
            p->program[ch] = e->data[0];
        } else if (type == CM_CONTROL_CHANGE && e->data[0] == CM_CC_SUSTAIN && o->sustain) {
            bool down = e->data[1] >= 64;
            if (p->pedal[ch] && !down)
                for (int k = ch * 128; k < ch * 128 + 128 && p->held[ch] > 0; k++) release_sustained(p, k, e->tick);
            p->pedal[ch] = down;
        }
    }
    int64_t end = t->end_tick;
    for (int k = 0; k < NKEYS; k++) {
        int64_t n;
        while ((n = q_pop(p->open_head, p->open_tail, p->link, k)) != NONE) {
            p->notes[n].end_tick = end > p->notes[n].start_tick ? end : p->notes[n].start_tick;
            out->closed_at_end++;
        }
        release_sustained(p, k, end);
    }
    return CM_OK;
}

static int cmp_note(const void *a, const void *b) {
    const cm_note *x = a, *y = b;
#define CMP(f) if (x->f != y->f) return x->f < y->f ? -1 : 1
    CMP(track);
    CMP(channel);
    CMP(program);
    CMP(start_tick);
    CMP(pitch);
    CMP(end_tick);
    CMP(velocity);
#undef CMP
    return 0;
}

static bool same_instrument(const cm_note *a, const cm_note *b) {
    return a->track == b->track && a->channel == b->channel && a->program == b->program;
}

cm_status cm__notes_group(cm_notes *n) {
    free(n->instruments);
    n->instruments = NULL;
    n->n_instruments = 0;
    if (n->n_notes == 0) return CM_OK;
    qsort(n->notes, (size_t)n->n_notes, sizeof *n->notes, cmp_note);
    int count = 0;
    for (int64_t i = 0; i < n->n_notes; i++)
        count += i == 0 || !same_instrument(&n->notes[i - 1], &n->notes[i]);
    n->instruments = calloc((size_t)count, sizeof *n->instruments);
    if (!n->instruments) return CM_E_NOMEM;
    for (int64_t i = 0; i < n->n_notes; i++) {
        const cm_note *x = &n->notes[i];
        cm_instrument *last = n->n_instruments ? &n->instruments[n->n_instruments - 1] : NULL;
        if (!last || !same_instrument(&n->notes[last->first], x)) {
            last = &n->instruments[n->n_instruments++];
            *last = (cm_instrument){.track = x->track, .channel = x->channel, .program = x->program,
                                    .is_drum = x->channel == CM_DRUM_CHANNEL, .first = i};
        }
        last->count++;
    }
    return CM_OK;
}

cm_status cm_notes_extract(const cm_file *f, const cm_notes_opts *opts, cm_notes *out, cm_error *err) {
    if (!out) return cm__fail(err, CM_E_ARG, "<notes>", -1, -1, "cm_notes_extract: NULL out");
    memset(out, 0, sizeof *out);
    if (!f || !cm_division_valid(f->division))
        return cm__fail(err, CM_E_ARG, "<notes>", -1, -1, "cm_notes_extract: %s",
                        f ? "invalid division" : "NULL file");
    cm_notes_opts o = opts ? *opts : (cm_notes_opts){0};
    pairing *p = calloc(1, sizeof *p);
    cm_tempo_map map = {0};
    cm_status s = p ? CM_OK : CM_E_NOMEM;
    if (!s && f->format != 2) s = cm_tempo_map_init(&map, f, -1, NULL);
    for (int ti = 0; !s && ti < f->n_tracks; ti++) {
        int64_t first = p->n;
        s = pair_track(p, f, ti, &o, out);
        if (s) break;
        if (f->format == 2 && (s = cm_tempo_map_init(&map, f, ti, NULL))) break;
        for (int64_t i = first; i < p->n; i++) {
            p->notes[i].start_s = cm_tick_to_seconds(&map, p->notes[i].start_tick);
            p->notes[i].end_s = cm_tick_to_seconds(&map, p->notes[i].end_tick);
        }
        int64_t end = f->tracks[ti].end_tick;
        double end_s = cm_tick_to_seconds(&map, end);
        if (end > out->end_tick) out->end_tick = end;
        if (end_s > out->end_s) out->end_s = end_s;
        if (f->format == 2) cm_tempo_map_free(&map);
    }
    cm_tempo_map_free(&map);
    if (!s && o.skip_drums) { /* drop channel 10 */
        int64_t k = 0;
        for (int64_t i = 0; i < p->n; i++)
            if (!p->notes[i].is_drum) p->notes[k++] = p->notes[i];
        p->n = k;
    }
    if (p) {
        out->notes = p->notes;
        out->n_notes = p->n;
        free(p->link);
        free(p);
    }
    if (!s) s = cm__notes_group(out);
    for (int i = 0; !s && i < out->n_instruments; i++)
        cm_track_name(&f->tracks[out->instruments[i].track], out->instruments[i].name,
                      sizeof out->instruments[i].name);
    if (s) {
        cm_notes_free(out);
        return cm__fail(err, s, "<notes>", -1, -1, "cannot extract notes: %s", cm_strerror(s));
    }
    return CM_OK;
}

void cm_notes_free(cm_notes *n) {
    if (!n) return;
    free(n->notes);
    free(n->instruments);
    memset(n, 0, sizeof *n);
}
