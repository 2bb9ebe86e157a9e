/* audio/player.c — the real-time scheduler, its clocks and sinks, and MIDI files as producers
 * (see player.h). */
#include "audio/player.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static cl_status fail(cl_error *err, cl_status s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static cl_status fail(cl_error *err, cl_status s, const char *fmt, ...) {
    if (err) {
        err->status = s;
        err->host_error = 0;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return s;
}

/* ---- clocks ---------------------------------------------------------------------------------- */
static int64_t mono_now(void *self) { return cl_now_us(); }

static void mono_sleep_until(void *self, int64_t t) {
    struct timespec ts = {(time_t)(t / 1000000), (long)(t % 1000000) * 1000};
    /* absolute: an early return on a signal (EINTR: the player then sees its stop flag) is
     * simply a shorter sleep, after which the player works out what to do again */
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

cl_clock cl_clock_monotonic(void) {
    cl_clock c = {mono_now, mono_sleep_until, NULL};
    return c;
}

static int64_t virt_now(void *self) { return ((cl_virtual_clock *)self)->now_us; }

static void virt_sleep_until(void *self, int64_t t) {
    cl_virtual_clock *v = self;
    if (t <= v->now_us) return;
    v->now_us = t;
    v->sleeps++;
    if (v->alarm && v->alarm_us > 0 && v->now_us >= v->alarm_us) *v->alarm = 1;
}

cl_clock cl_clock_virtual(cl_virtual_clock *v) {
    cl_clock c = {virt_now, virt_sleep_until, v};
    return c;
}

/* ---- sinks ----------------------------------------------------------------------------------- */
cl_status cl_sink_close(cl_sink *s, cl_error *err) {
    if (!s) return CL_OK;
    cl_status st = s->close ? s->close(s->self, err) : CL_OK;
    memset(s, 0, sizeof *s);
    return st;
}

static cl_status out_send(void *self, cl_msg m, int64_t ts, cl_error *err) { return cl_output_send(self, m, ts, err); }
static int64_t out_now(void *self) { return cl_now_us(); }
static cl_status out_close(void *self, cl_error *err) { return cl_output_close(self, err); }

cl_sink cl_output_sink(cl_output *o) {
    cl_sink s = {out_send, out_now, out_close, o};
    return s;
}

void cl_recorder_init(cl_recorder *r, cl_clock clock) {
    memset(r, 0, sizeof *r);
    r->clock = clock.now ? clock : cl_clock_monotonic();
    r->fail_at = -1;
}

void cl_recorder_free(cl_recorder *r) {
    if (!r) return;
    free(r->records);
    r->records = NULL;
    r->n = r->cap = 0;
}

static cl_status rec_send(void *self, cl_msg m, int64_t ts, cl_error *err) {
    cl_recorder *r = self;
    if (r->fail_at >= 0 && r->n == r->fail_at) {
        r->fail_at = -1;
        return fail(err, CL_E_HOST, "recorder: send of message %lld refused (a simulated device error)",
                    (long long)r->n);
    }
    if (!cl_msg_valid(m))
        return fail(err, CL_E_ARG, "recorder: message %02X %02X %02X is not a channel message", m.status, m.data1,
                    m.data2);
    if (r->n == r->cap) {
        int64_t cap = r->cap ? 2 * r->cap : 256;
        cl_record *nr = realloc(r->records, (size_t)cap * sizeof *nr);
        if (!nr) return fail(err, CL_E_NOMEM, "recorder: out of memory for %lld messages", (long long)cap);
        r->records = nr;
        r->cap = cap;
    }
    cl_record *rec = &r->records[r->n++];
    rec->ts_us = ts;
    rec->sent_us = r->clock.now(r->clock.self);
    rec->msg = m;
    return CL_OK;
}

static int64_t rec_now(void *self) {
    cl_recorder *r = self;
    return r->clock.now(r->clock.self);
}

static cl_status rec_close(void *self, cl_error *err) {
    ((cl_recorder *)self)->closes++;
    return CL_OK;
}

cl_sink cl_recorder_sink(cl_recorder *r) {
    cl_sink s = {rec_send, rec_now, rec_close, r};
    return s;
}

/* ---- the player ------------------------------------------------------------------------------ */
typedef struct event {
    int64_t t;      /* from the piece's start */
    uint64_t seq;   /* push order: ties keep it */
    cl_msg m;
} event;

struct cl_player {
    cl_sink sink;
    cl_producer_fn producer;
    void *user;
    cl_player_opts o;
    event *heap;
    int64_t n, cap;
    uint64_t seq;
    cl_status push_error;      /* the first failed push */
    char push_message[256];
    uint8_t sounding[CL_NUM_CHANNELS][128];   /* note-ons sent minus note-offs (saturating) */
    int64_t last_ts;           /* the latest timestamp sent */
    bool sent_any, ran;
};

cl_player_opts cl_player_defaults(void) {
    cl_player_opts o;
    memset(&o, 0, sizeof o);
    o.ahead_us = 2000000;
    o.lead_us = 20000;
    o.start_delay_us = 50000;
    o.poll_us = 10000;
    o.clock = cl_clock_monotonic();
    return o;
}

cl_player *cl_player_new(cl_sink sink, cl_producer_fn producer, void *user, const cl_player_opts *o,
                         cl_error *err) {
    cl_player_opts opts = o ? *o : cl_player_defaults();
    if (!opts.clock.now || !opts.clock.sleep_until) opts.clock = cl_clock_monotonic();
    if (!sink.send || !sink.now || !producer) {
        fail(err, CL_E_ARG, "cl_player_new: the sink's send and now and the producer must not be NULL");
        return NULL;
    }
    if (opts.ahead_us <= 0 || opts.lead_us < 0 || opts.start_delay_us < 0 || opts.poll_us <= 0) {
        fail(err, CL_E_ARG,
             "cl_player_new: ahead %lld us, lead %lld us, start delay %lld us, poll %lld us: expected "
             "ahead > 0, lead >= 0, start delay >= 0, poll > 0",
             (long long)opts.ahead_us, (long long)opts.lead_us, (long long)opts.start_delay_us,
             (long long)opts.poll_us);
        return NULL;
    }
    cl_player *p = calloc(1, sizeof *p);
    if (!p) {
        fail(err, CL_E_NOMEM, "cl_player_new: out of memory");
        return NULL;
    }
    p->sink = sink;
    p->producer = producer;
    p->user = user;
    p->o = opts;
    p->last_ts = INT64_MIN;
    return p;
}

void cl_player_free(cl_player *p) {
    if (!p) return;
    free(p->heap);
    free(p);
}

static bool before(const event *a, const event *b) { return a->t < b->t || (a->t == b->t && a->seq < b->seq); }

cl_status cl_player_push(cl_player *p, int64_t t_us, cl_msg m) {
    if (!p) return CL_E_ARG;
    cl_status s = CL_OK;
    if (!cl_msg_valid(m)) {
        s = CL_E_ARG;
        if (!p->push_error)
            snprintf(p->push_message, sizeof p->push_message,
                     "cl_player_push: message %02X %02X %02X at %lld us is not a channel message", m.status,
                     m.data1, m.data2, (long long)t_us);
    } else if (t_us < 0) {
        s = CL_E_ARG;
        if (!p->push_error)
            snprintf(p->push_message, sizeof p->push_message, "cl_player_push: time %lld us < 0",
                     (long long)t_us);
    } else if (p->n == p->cap) {
        int64_t cap = p->cap ? 2 * p->cap : 256;
        event *h = realloc(p->heap, (size_t)cap * sizeof *h);
        if (!h) {
            s = CL_E_NOMEM;
            if (!p->push_error)
                snprintf(p->push_message, sizeof p->push_message, "cl_player_push: out of memory for %lld events",
                         (long long)cap);
        } else {
            p->heap = h;
            p->cap = cap;
        }
    }
    if (s) {
        if (!p->push_error) p->push_error = s;
        return s;
    }
    event e = {t_us, p->seq++, m};
    int64_t i = p->n++;
    while (i > 0) {   /* sift up */
        int64_t parent = (i - 1) / 2;
        if (!before(&e, &p->heap[parent])) break;
        p->heap[i] = p->heap[parent];
        i = parent;
    }
    p->heap[i] = e;
    return CL_OK;
}

static event pop(cl_player *p) {
    event top = p->heap[0], last = p->heap[--p->n];
    int64_t i = 0;
    for (;;) {   /* sift down */
        int64_t c = 2 * i + 1;
        if (c >= p->n) break;
        if (c + 1 < p->n && before(&p->heap[c + 1], &p->heap[c])) c++;
        if (!before(&p->heap[c], &last)) break;
        p->heap[i] = p->heap[c];
        i = c;
    }
    if (p->n > 0) p->heap[i] = last;
    return top;
}

int64_t cl_player_queued(const cl_player *p) { return p ? p->n : 0; }

static void track(cl_player *p, cl_msg m) {
    int ch = m.status & 15;
    uint8_t *c = &p->sounding[ch][m.data1];
    if (cl_msg_is_note_on(m)) {
        if (*c < 255) (*c)++;
    } else if (cl_msg_is_note_off(m)) {
        if (*c > 0) (*c)--;
    } else if ((m.status & 0xF0) == 0xB0 && (m.data1 == CL_CC_ALL_NOTES_OFF || m.data1 == CL_CC_ALL_SOUND_OFF)) {
        memset(p->sounding[ch], 0, sizeof p->sounding[ch]);
    }
}

static cl_status send_at(cl_player *p, cl_msg m, int64_t ts, cl_error *err) {
    cl_status s = p->sink.send(p->sink.self, m, ts, err);
    if (s) return s;
    track(p, m);
    if (!p->sent_any || ts > p->last_ts) p->last_ts = ts;
    p->sent_any = true;
    return CL_OK;
}

/* Note-offs for what still sounds, then sustain off, All Notes Off and (stop, failure) All Sound
 * Off on every channel, all at a timestamp no earlier than anything sent. Keeps going after a
 * failed send; returns the first error. */
static cl_status silence(cl_player *p, bool all_sound_off, cl_player_stats *st, cl_error *err) {
    int64_t ts = p->sink.now(p->sink.self);
    if (p->sent_any && p->last_ts > ts) ts = p->last_ts;
    cl_status first = CL_OK;
    for (int ch = 0; ch < CL_NUM_CHANNELS; ch++)
        for (int k = 0; k < 128; k++)
            if (p->sounding[ch][k]) {
                p->sounding[ch][k] = 0;
                cl_status s = p->sink.send(p->sink.self, cl_note_off(ch, k), ts, first ? NULL : err);
                if (s && !first) first = s;
                st->notes_closed++;
                st->silence_sent++;
            }
    for (int ch = 0; ch < CL_NUM_CHANNELS; ch++) {
        cl_msg m[3] = {cl_control(ch, CL_CC_SUSTAIN, 0), cl_control(ch, CL_CC_ALL_NOTES_OFF, 0),
                       cl_control(ch, CL_CC_ALL_SOUND_OFF, 0)};
        for (int i = 0; i < (all_sound_off ? 3 : 2); i++) {
            cl_status s = p->sink.send(p->sink.self, m[i], ts, first ? NULL : err);
            if (s && !first) first = s;
            st->silence_sent++;
        }
    }
    if (ts > p->last_ts) p->last_ts = ts;
    return first;
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* One producer call: known/done move on, or an error (the producer's, a push's, time going
 * backwards) is returned. */
static cl_status produce(cl_player *p, cl_player_stats *st, int64_t *known, bool *done, cl_error *err) {
    cl_error perr;
    memset(&perr, 0, sizeof perr);
    int64_t until = *known;
    st->producer_calls++;
    cl_produce r = p->producer(p->user, p, &until, &perr);
    if (p->n > st->max_queued) st->max_queued = p->n;
    if (r == CL_PRODUCE_FAIL)
        return fail(err, CL_E_PRODUCER, "%s", perr.message[0] ? perr.message : "the producer failed (no message)");
    if (p->push_error) return fail(err, p->push_error, "%s", p->push_message);
    if (until < *known)
        return fail(err, CL_E_PRODUCER, "the producer went back in time: the piece was known until %lld us, "
                    "then until %lld us", (long long)*known, (long long)until);
    *known = until;
    if (r == CL_PRODUCE_DONE) *done = true;
    return CL_OK;
}

static bool stop_requested(const cl_player *p) { return p->o.stop && *p->o.stop; }

cl_status cl_player_run(cl_player *p, cl_player_stats *stats, cl_error *err) {
    cl_player_stats local;
    cl_player_stats *st = stats ? stats : &local;
    memset(st, 0, sizeof *st);
    st->min_ahead_us = INT64_MAX;
    if (!p) return fail(err, CL_E_ARG, "cl_player_run: player is NULL");
    if (p->ran) return fail(err, CL_E_STATE, "cl_player_run: this player has already played (make a new one)");
    p->ran = true;
    const cl_player_opts *o = &p->o;
    const cl_clock *clk = &o->clock;
    int64_t known = 0;
    bool done = false, underrun = false;
    cl_status s = CL_OK;

    /* make the first `ahead` of music before time 0 */
    while (!s && !done && known < o->ahead_us && !stop_requested(p)) s = produce(p, st, &known, &done, err);
    int64_t start = p->sink.now(p->sink.self) + o->start_delay_us;
    st->start_us = start;
    while (!s) {
        if (stop_requested(p)) {
            st->stopped = true;
            break;
        }
        int64_t now = p->sink.now(p->sink.self);
        /* send what is due */
        while (!s && p->n > 0 && p->heap[0].t + start - o->lead_us <= now) {
            event e = pop(p);
            int64_t ts = e.t + start;
            s = send_at(p, e.m, ts, err);
            if (s) break;
            st->events_sent++;
            if (cl_msg_is_note_on(e.m)) st->notes_started++;
            int64_t sent = p->sink.now(p->sink.self);
            if (sent > ts) {
                st->late_events++;
                if (sent - ts > st->max_late_us) st->max_late_us = sent - ts;
            }
        }
        if (s) break;
        now = p->sink.now(p->sink.self);
        int64_t play = now - start;
        if (!done) {
            int64_t ahead = known - (play > 0 ? play : 0);
            if (ahead < st->min_ahead_us) st->min_ahead_us = ahead;
            if (play > 0 && play >= known) {
                if (!underrun) st->underruns++;
                underrun = true;
            } else {
                underrun = false;
            }
            if (ahead <= o->ahead_us) {   /* <=: at equality the refill time is now */
                s = produce(p, st, &known, &done, err);
                continue;
            }
        } else if (p->n == 0) {
            break;
        }
        /* sleep until the next thing to do: an event's send time, the next refill, or a poll */
        int64_t next = now + o->poll_us;
        if (p->n > 0) next = min64(next, p->heap[0].t + start - o->lead_us);
        if (!done) next = min64(next, start + known - o->ahead_us);
        if (next > now) clk->sleep_until(clk->self, next);
    }
    st->dropped = p->n;
    p->n = 0;
    st->end_us = known;
    bool clean = !s && !st->stopped;
    cl_status s2 = silence(p, !clean, st, s ? NULL : err);
    st->finished_us = p->sink.now(p->sink.self);
    if (st->min_ahead_us == INT64_MAX) st->min_ahead_us = known;   /* all made before time 0 */
    if (s) return s;
    if (s2) return s2;
    if (st->stopped)
        return fail(err, CL_E_STOPPED, "playback stopped after %.3f s", (double)(st->finished_us - start) / 1e6);
    return CL_OK;
}

/* ---- a MIDI file as a producer --------------------------------------------------------------- */
typedef struct file_event {
    int64_t t;
    int64_t order;
    cl_msg m;
} file_event;

struct cl_file_source {
    file_event *ev;
    int64_t n, next, notes;
    int64_t duration_us;
};

static int cmp_file_event(const void *a, const void *b) {
    const file_event *x = a, *y = b;
    if (x->t != y->t) return x->t < y->t ? -1 : 1;
    return (x->order > y->order) - (x->order < y->order);
}

cl_status cl_file_source_new(const cm_file *f, cl_file_source **out, cl_error *err) {
    if (!out || !f) return fail(err, CL_E_ARG, "cl_file_source_new: f and out must not be NULL");
    *out = NULL;
    cm_tempo_map tm;
    memset(&tm, 0, sizeof tm);
    cm_error merr;
    memset(&merr, 0, sizeof merr);
    if (cm_tempo_map_init(&tm, f, -1, &merr) != CM_OK)
        return fail(err, CL_E_ARG, "cannot read the file's tempo map: %s", merr.message);
    int64_t total = 0;
    for (int i = 0; i < f->n_tracks; i++)
        for (int64_t j = 0; j < f->tracks[i].n_events; j++)
            if (cm_event_is_channel(&f->tracks[i].events[j])) total++;
    cl_file_source *s = calloc(1, sizeof *s);
    file_event *ev = total ? malloc((size_t)total * sizeof *ev) : NULL;
    if (!s || (total && !ev)) {
        free(s);
        free(ev);
        cm_tempo_map_free(&tm);
        return fail(err, CL_E_NOMEM, "cl_file_source_new: out of memory for %lld events", (long long)total);
    }
    int64_t k = 0, end_tick = 0;
    for (int i = 0; i < f->n_tracks; i++) {
        const cm_track *t = &f->tracks[i];
        if (t->end_tick > end_tick) end_tick = t->end_tick;
        for (int64_t j = 0; j < t->n_events; j++) {
            const cm_event *e = &t->events[j];
            if (!cm_event_is_channel(e)) continue;
            if (e->tick > end_tick) end_tick = e->tick;
            int type = e->status & 0xF0;
            cl_msg m = {e->status, e->data[0], (type == 0xC0 || type == 0xD0) ? 0 : e->data[1]};
            ev[k].t = (int64_t)(cm_tick_to_seconds(&tm, e->tick) * 1e6 + 0.5);
            ev[k].order = k;
            ev[k].m = m;
            if (cl_msg_is_note_on(m)) s->notes++;
            k++;
        }
    }
    if (k > 1) qsort(ev, (size_t)k, sizeof *ev, cmp_file_event);
    s->ev = ev;
    s->n = k;
    s->duration_us = (int64_t)(cm_tick_to_seconds(&tm, end_tick) * 1e6 + 0.5);
    if (k > 0 && ev[k - 1].t > s->duration_us) s->duration_us = ev[k - 1].t;
    cm_tempo_map_free(&tm);
    *out = s;
    return CL_OK;
}

void cl_file_source_free(cl_file_source *s) {
    if (!s) return;
    free(s->ev);
    free(s);
}

cl_produce cl_file_source_produce(void *src, cl_player *p, int64_t *until_us, cl_error *err) {
    cl_file_source *s = src;
    int64_t target = *until_us + 500000;
    while (s->next < s->n && s->ev[s->next].t < target) {
        cl_status ps = cl_player_push(p, s->ev[s->next].t, s->ev[s->next].m);
        if (ps) {
            fail(err, ps, "cannot queue event %lld of the file: %s", (long long)s->next, cl_strerror(ps));
            return CL_PRODUCE_FAIL;
        }
        s->next++;
    }
    if (s->next == s->n && target >= s->duration_us) {
        *until_us = s->duration_us > *until_us ? s->duration_us : *until_us;
        return CL_PRODUCE_DONE;
    }
    *until_us = target;
    return CL_PRODUCE_MORE;
}

int64_t cl_file_source_events(const cl_file_source *s) { return s ? s->n : 0; }
int64_t cl_file_source_notes(const cl_file_source *s) { return s ? s->notes : 0; }
int64_t cl_file_source_duration_us(const cl_file_source *s) { return s ? s->duration_us : 0; }
