/* tests/audio/test_player.c — live MIDI (audio/live.h) and the real-time player
 * (audio/player.h), with no hardware: PortMidi as it behaves with no devices, and the player
 * sending to a recording sink on a virtual clock (exact timestamps, sent before they are due,
 * made ahead of the playhead, silence on stop, failure and end, no stuck notes), then once on
 * the real clock (timing error measured and printed). */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/live.h"
#include "audio/midi.h"
#include "audio/player.h"

/* PortMidi (143 bytes in Pm_Initialize) and libasound keep start-up allocations for the life
 * of the process; they are not ours (valgrind: tests/valgrind.supp). */
#if defined(__SANITIZE_ADDRESS__)
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libportmidi.so\nleak:libasound.so\n"; }
const char *__lsan_default_options(void);
const char *__lsan_default_options(void) { return "print_suppressions=0"; }
#endif

static void assert_has(const char *text, const char *part) {
    ck_assert_msg(strstr(text, part) != NULL, "expected \"%s\" in \"%s\"", part, text);
}

/* ---- a scripted producer ----------------------------------------------------------------------- */
/* Each call adds `chunk_us` of music: on every `note_every_us`, a note of `note_us` on channel
 * (i % 4) and pitch 60 + i % 12; and costs `cost_us` of (virtual) time. Fails at call fail_call. */
typedef struct script {
    cl_virtual_clock *vc;      /* to charge the cost and see the playhead (NULL: real clock) */
    int64_t chunk_us, note_every_us, note_us, length_us, cost_us;
    int fail_call;             /* 1-based call that fails; 0 never */
    int calls;
    int64_t next_note;         /* the next note's index */
    /* what was pushed, in push order: times and messages */
    int64_t n;
    int64_t t[4096];
    cl_msg m[4096];
    /* the playhead at each call after the start, and the known time then */
    int64_t start_guess;       /* filled by the test after the run: stats.start_us */
    int64_t call_now[4096], call_until[4096];
} script;

static void script_push(script *s, cl_player *p, int64_t t, cl_msg m) {
    ck_assert_int_lt(s->n, 4096);
    s->t[s->n] = t;
    s->m[s->n] = m;
    s->n++;
    ck_assert_int_eq(cl_player_push(p, t, m), CL_OK);
}

static cl_produce script_produce(void *user, cl_player *p, int64_t *until, cl_error *err) {
    script *s = user;
    s->calls++;
    if (s->vc) s->vc->now_us += s->cost_us;   /* the time making the music takes */
    if (s->calls <= 4096) {
        s->call_now[s->calls - 1] = s->vc ? s->vc->now_us : cl_now_us();
        s->call_until[s->calls - 1] = *until;
    }
    if (s->fail_call && s->calls == s->fail_call) {
        snprintf(err->message, sizeof err->message, "the model ran out of ideas at call %d", s->calls);
        return CL_PRODUCE_FAIL;
    }
    int64_t target = *until + s->chunk_us;
    if (target > s->length_us) target = s->length_us;
    for (;;) {
        int64_t t = s->next_note * s->note_every_us;
        if (t >= target) break;
        int i = (int)s->next_note;
        script_push(s, p, t, cl_note_on(i % 4, 60 + i % 12, 64 + i % 32));
        script_push(s, p, t + s->note_us, cl_note_off(i % 4, 60 + i % 12));
        s->next_note++;
    }
    *until = target;
    return target >= s->length_us ? CL_PRODUCE_DONE : CL_PRODUCE_MORE;
}

static script *script_new(cl_virtual_clock *vc, int64_t length_us) {
    script *s = calloc(1, sizeof *s);
    ck_assert_ptr_nonnull(s);
    s->vc = vc;
    s->chunk_us = 100000;
    s->note_every_us = 50000;
    s->note_us = 120000;   /* notes overlap their neighbours on other channels */
    s->length_us = length_us;
    return s;
}

/* Checks the silence after index `from` of the records: 16 x (sustain off, All Notes Off[, All
 * Sound Off]), nothing earlier than any message before it; and that no note is left sounding. */
static void check_silence(const cl_recorder *r, bool all_sound_off) {
    int sustain[16] = {0}, notes_off[16] = {0}, sound_off[16] = {0};
    int64_t max_ts = INT64_MIN, first_cc = -1;
    for (int64_t i = 0; i < r->n; i++) {
        cl_msg m = r->records[i].msg;
        if ((m.status & 0xF0) != 0xB0) {
            if (r->records[i].ts_us > max_ts) max_ts = r->records[i].ts_us;
            continue;
        }
        if (first_cc < 0) first_cc = i;
        int ch = m.status & 15;
        if (m.data1 == CL_CC_SUSTAIN && m.data2 == 0) sustain[ch]++;
        if (m.data1 == CL_CC_ALL_NOTES_OFF) notes_off[ch]++;
        if (m.data1 == CL_CC_ALL_SOUND_OFF) sound_off[ch]++;
    }
    ck_assert_int_ge(first_cc, 0);
    int bad = 0;
    for (int ch = 0; ch < 16; ch++) {
        if (sustain[ch] != 1 || notes_off[ch] != 1 || sound_off[ch] != (all_sound_off ? 1 : 0)) bad++;
    }
    ck_assert_msg(bad == 0, "%d channels without exactly one sustain off / All Notes Off%s", bad,
                  all_sound_off ? " / All Sound Off" : " (and no All Sound Off)");
    /* the silence comes last and is timestamped no earlier than anything before it */
    int late_cc = 0;
    for (int64_t i = first_cc; i < r->n; i++) {
        if ((r->records[i].msg.status & 0xF0) != 0xB0) late_cc++;
        if (r->records[i].ts_us < max_ts) late_cc++;
    }
    ck_assert_msg(late_cc == 0, "%d messages after the silence began, or silence timestamped before them", late_cc);
}

/* Every note-on is followed (in send order, at a timestamp not earlier) by a note-off of its
 * channel and pitch: nothing is left sounding. Returns the number of note-ons. */
static int64_t check_no_stuck_notes(const cl_recorder *r) {
    static int open[16][128];
    static int64_t opened_at[16][128];
    memset(open, 0, sizeof open);
    int64_t ons = 0, backwards = 0;
    for (int64_t i = 0; i < r->n; i++) {
        cl_msg m = r->records[i].msg;
        int ch = m.status & 15;
        if (cl_msg_is_note_on(m)) {
            open[ch][m.data1]++;
            opened_at[ch][m.data1] = r->records[i].ts_us;
            ons++;
        } else if (cl_msg_is_note_off(m) && open[ch][m.data1] > 0) {
            if (r->records[i].ts_us < opened_at[ch][m.data1]) backwards++;
            open[ch][m.data1] = 0;
        }
    }
    int stuck = 0;
    for (int ch = 0; ch < 16; ch++)
        for (int k = 0; k < 128; k++) stuck += open[ch][k] > 0;
    ck_assert_msg(stuck == 0, "%d notes left sounding", stuck);
    ck_assert_msg(backwards == 0, "%lld note-offs timestamped before their note-on", (long long)backwards);
    return ons;
}

/* ---- messages, errors ---------------------------------------------------------------------------- */
START_TEST(test_messages) {
    cl_msg on = cl_note_on(3, 60, 100), off = cl_note_off(3, 60), z = cl_note_on(0, 61, 0);
    ck_assert_int_eq(on.status, 0x93);
    ck_assert_int_eq(on.data1, 60);
    ck_assert_int_eq(on.data2, 100);
    ck_assert(cl_msg_is_note_on(on) && !cl_msg_is_note_off(on));
    ck_assert(cl_msg_is_note_off(off) && !cl_msg_is_note_on(off));
    ck_assert(cl_msg_is_note_off(z) && !cl_msg_is_note_on(z));   /* velocity 0 is a note-off */
    ck_assert_int_eq(cl_control(15, 123, 0).status, 0xBF);
    ck_assert_int_eq(cl_program(2, 40).status, 0xC2);
    ck_assert(cl_msg_valid(on));
    ck_assert(!cl_msg_valid((cl_msg){0x3C, 0, 0}));     /* a data byte as status */
    ck_assert(!cl_msg_valid((cl_msg){0xF0, 0, 0}));     /* sysex is not a short message */
    ck_assert(!cl_msg_valid((cl_msg){0x90, 128, 0}));
    ck_assert(!cl_msg_valid((cl_msg){0x90, 60, 200}));
    cl_msg all[CL_ALL_OFF_COUNT];
    cl_all_off_messages(all);
    for (int ch = 0; ch < 16; ch++) {
        ck_assert_int_eq(all[3 * ch].status, 0xB0 | ch);
        ck_assert_int_eq(all[3 * ch].data1, 64);
        ck_assert_int_eq(all[3 * ch + 1].data1, 123);
        ck_assert_int_eq(all[3 * ch + 2].data1, 120);
        ck_assert_int_eq(all[3 * ch + 2].data2, 0);
    }
    for (int s = 0; s < CL_STATUS_COUNT; s++) {
        ck_assert_ptr_nonnull(cl_strerror((cl_status)s));
        for (int t = 0; t < s; t++) ck_assert_str_ne(cl_strerror((cl_status)s), cl_strerror((cl_status)t));
    }
    assert_has(cl_strerror(CL_STATUS_COUNT), "unknown");
    assert_has(cl_device_hint(), "fluidsynth");
    assert_has(cl_device_hint(), "snd-virmidi");
    int64_t a = cl_now_us(), b = cl_now_us();
    ck_assert_int_ge(b, a);
    ck_assert_int_gt(a, 0);
}
END_TEST

/* ---- PortMidi without devices ------------------------------------------------------------------ */
START_TEST(test_portmidi_devices) {
    cl_error err;
    memset(&err, 0, sizeof err);
    cl_output *o = (cl_output *)&err;   /* must be reset to NULL on failure */
    /* a latency of 0 would make PortMidi ignore timestamps: refused before anything opens */
    ck_assert_int_eq(cl_output_open_id(0, 0, &o, &err), CL_E_ARG);
    ck_assert_ptr_null(o);
    assert_has(err.message, "latency 0 ms");
    ck_assert_int_eq(cl_output_close(NULL, &err), CL_OK);
    ck_assert_int_eq(cl_output_send(NULL, cl_note_on(0, 60, 1), 0, &err), CL_E_STATE);
    ck_assert_ptr_null(cl_output_info(NULL));
    ck_assert_int_eq(cl_output_all_off(NULL, &err), CL_E_STATE);
    ck_assert_int_eq(cl_output_latency_ms(NULL), 0);
    ck_assert_int_eq(cl_output_last_timestamp(NULL), INT64_MIN);
    /* the PortMidi sink passes through to its output (here none: every send is refused) */
    cl_sink ps = cl_output_sink(NULL);
    ck_assert_int_eq(ps.send(ps.self, cl_note_on(0, 60, 9), 0, &err), CL_E_STATE);
    int64_t before = cl_now_us(), pnow = ps.now(ps.self);
    ck_assert_int_ge(pnow, before);
    ck_assert_int_lt(pnow - before, 1000000);
    ck_assert_int_eq(cl_sink_close(&ps, &err), CL_OK);
    ck_assert_ptr_null(ps.send);
#if defined(CT_HAVE_PORTMIDI)
    cl_device_info *d = (cl_device_info *)&err;
    int n = -1;
    ck_assert_int_eq(cl_list_outputs(&d, &n, &err), CL_OK);
    ck_assert_int_ge(n, 0);
    if (n == 0) {
        /* this machine: no sound hardware, PortMidi sees nothing */
        ck_assert_ptr_null(d);
        o = (cl_output *)&err;
        memset(&err, 0, sizeof err);
        ck_assert_int_eq(cl_output_open_id(0, CL_DEFAULT_LATENCY_MS, &o, &err), CL_E_NO_DEVICE);
        ck_assert_ptr_null(o);
        ck_assert_int_eq(err.status, CL_E_NO_DEVICE);
        ck_assert_int_eq(err.host_error, -9999);   /* pmInvalidDeviceId */
        assert_has(err.message, "MIDI output 0");
        assert_has(err.message, "Invalid device ID");
        assert_has(err.message, "no MIDI");
        assert_has(err.message, "fluidsynth");
        ck_assert_int_eq(cl_output_open("0", 100, &o, &err), CL_E_NO_DEVICE);
        ck_assert_ptr_null(o);
        ck_assert_int_eq(cl_output_open("FLUID Synth", 100, &o, &err), CL_E_NO_DEVICE);
        assert_has(err.message, "MIDI output 'FLUID Synth'");
        int id = -5;
        ck_assert_int_eq(cl_find_output("1", &id, &err), CL_E_NO_DEVICE);
        ck_assert_int_eq(id, -5);
        assert_has(cl_no_device_reason(), "PortMidi found no MIDI");
    } else {
        /* a machine with outputs: each is listed sensibly, and the first one opens, plays a note
         * and closes */
        for (int i = 0; i < n; i++) {
            ck_assert_int_ge(d[i].id, 0);
            ck_assert(d[i].name[0] != 0);
        }
        char spec[16];
        snprintf(spec, sizeof spec, "%d", d[0].id);
        ck_assert_int_eq(cl_output_open(spec, 20, &o, &err), CL_OK);
        ck_assert_int_eq(cl_output_info(o)->id, d[0].id);
        int64_t now = cl_now_us();
        ck_assert_int_eq(cl_output_send(o, cl_note_on(0, 60, 1), now, &err), CL_OK);
        ck_assert_int_eq(cl_output_send(o, cl_note_off(0, 60), now + 1000, &err), CL_OK);
        ck_assert_int_eq(cl_output_last_timestamp(o), now + 1000);
        ck_assert_int_eq(cl_output_send(o, (cl_msg){0x12, 0, 0}, now, &err), CL_E_ARG);
        ck_assert_int_eq(cl_output_close(o, &err), CL_OK);
        free(d);
    }
    /* no id can be negative or past the end */
    ck_assert_int_eq(cl_output_open_id(n + 1000, 100, &o, &err), CL_E_NO_DEVICE);
    ck_assert_ptr_null(o);
    assert_has(err.message, "Invalid device ID");
    ck_assert_int_eq(cl_output_open("", 100, &o, &err), CL_E_ARG);
#else
    cl_device_info *d = NULL;
    int n = -1;
    ck_assert_int_eq(cl_list_outputs(&d, &n, &err), CL_E_UNAVAILABLE);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(cl_output_open_id(0, 100, &o, &err), CL_E_UNAVAILABLE);
    assert_has(err.message, "without PortMidi");
#endif
}
END_TEST

/* ---- clocks and sinks -------------------------------------------------------------------------- */
START_TEST(test_clocks_and_sinks) {
    volatile sig_atomic_t flag = 0;
    cl_virtual_clock vc = {1000, 0, 5000, &flag};
    cl_clock c = cl_clock_virtual(&vc);
    ck_assert_int_eq(c.now(c.self), 1000);
    c.sleep_until(c.self, 900);            /* the past: no change */
    ck_assert_int_eq(vc.now_us, 1000);
    ck_assert_int_eq(vc.sleeps, 0);
    c.sleep_until(c.self, 4000);
    ck_assert_int_eq(c.now(c.self), 4000);
    ck_assert_int_eq(flag, 0);
    c.sleep_until(c.self, 6000);            /* passes the alarm: a virtual Ctrl-C */
    ck_assert_int_eq(flag, 1);
    ck_assert_int_eq(vc.sleeps, 2);

    cl_clock m = cl_clock_monotonic();
    int64_t t0 = m.now(m.self);
    m.sleep_until(m.self, t0 + 2000);
    ck_assert_int_ge(m.now(m.self), t0 + 2000);
    ck_assert_int_lt(m.now(m.self) - t0, 2000000);

    cl_recorder r;
    cl_recorder_init(&r, c);
    cl_sink s = cl_recorder_sink(&r);
    cl_error err;
    memset(&err, 0, sizeof err);
    ck_assert_int_eq(s.now(s.self), 6000);
    ck_assert_int_eq(s.send(s.self, cl_note_on(1, 62, 90), 7000, &err), CL_OK);
    ck_assert_int_eq(s.send(s.self, (cl_msg){0xF8, 0, 0}, 7000, &err), CL_E_ARG);
    r.fail_at = 1;
    ck_assert_int_eq(s.send(s.self, cl_note_off(1, 62), 7100, &err), CL_E_HOST);
    assert_has(err.message, "simulated");
    ck_assert_int_eq(s.send(s.self, cl_note_off(1, 62), 7100, &err), CL_OK);   /* once only */
    ck_assert_int_eq(r.n, 2);
    ck_assert_int_eq(r.records[0].ts_us, 7000);
    ck_assert_int_eq(r.records[0].sent_us, 6000);
    ck_assert_int_eq(r.records[1].msg.status, 0x81);
    ck_assert_int_eq(cl_sink_close(&s, &err), CL_OK);
    ck_assert_int_eq(r.closes, 1);
    ck_assert_ptr_null(s.send);
    ck_assert_int_eq(cl_sink_close(&s, &err), CL_OK);   /* closed: a no-op */
    ck_assert_int_eq(r.closes, 1);
    cl_recorder_free(&r);
    cl_recorder_free(NULL);
}
END_TEST

/* ---- the player on virtual time ------------------------------------------------------------------ */
static cl_player_opts vopts(cl_virtual_clock *vc, int64_t ahead, int64_t lead) {
    cl_player_opts o = cl_player_defaults();
    o.clock = cl_clock_virtual(vc);
    o.ahead_us = ahead;
    o.lead_us = lead;
    o.start_delay_us = 30000;
    o.poll_us = 7000;
    return o;
}

START_TEST(test_player_schedule) {
    cl_virtual_clock vc = {5000000, 0, 0, NULL};
    cl_recorder r;
    cl_recorder_init(&r, cl_clock_virtual(&vc));
    script *sc = script_new(&vc, 3000000);     /* 3 s, a note every 50 ms */
    cl_player_opts o = vopts(&vc, 500000, 20000);
    cl_error err;
    memset(&err, 0, sizeof err);
    cl_player *p = cl_player_new(cl_recorder_sink(&r), script_produce, sc, &o, &err);
    ck_assert_ptr_nonnull(p);
    cl_player_stats st;
    ck_assert_int_eq(cl_player_run(p, &st, &err), CL_OK);
    ck_assert(!st.stopped);
    /* the piece: every event once, in time order, with exactly its timestamp, sent no later than
     * it and no more than `lead` before it */
    ck_assert_int_eq(st.events_sent, sc->n);
    ck_assert_int_eq(st.notes_started, 60);
    ck_assert_int_eq(st.dropped, 0);
    ck_assert_int_eq(st.end_us, 3000000);
    int64_t wrong_ts = 0, early = 0, late = 0, order = 0, matched = 0;
    static bool used[4096];
    memset(used, 0, sizeof used);
    for (int64_t i = 0; i < st.events_sent; i++) {
        const cl_record *rec = &r.records[i];
        int64_t t = rec->ts_us - st.start_us;
        /* find the pushed event with this time and message */
        int64_t k = -1;
        for (int64_t j = 0; j < sc->n && k < 0; j++)
            if (!used[j] && sc->t[j] == t && memcmp(&sc->m[j], &rec->msg, sizeof rec->msg) == 0) k = j;
        if (k < 0) wrong_ts++;
        else used[k] = true, matched++;
        if (rec->sent_us > rec->ts_us) late++;
        if (rec->sent_us < rec->ts_us - o.lead_us) early++;
        if (i > 0 && rec->ts_us < r.records[i - 1].ts_us) order++;
    }
    ck_assert_msg(wrong_ts == 0, "%lld events sent with a timestamp other than start + their time", (long long)wrong_ts);
    ck_assert_int_eq(matched, sc->n);
    ck_assert_msg(late == 0, "%lld events sent after their timestamp", (long long)late);
    ck_assert_msg(early == 0, "%lld events sent more than the lead before their timestamp", (long long)early);
    ck_assert_msg(order == 0, "%lld events out of time order", (long long)order);
    ck_assert_int_eq(st.late_events, 0);
    /* generation kept ahead of the playhead: no underrun, at least ~ahead - a chunk known ahead,
     * the producer worked during the piece (not all before it), the queue stayed short */
    ck_assert_int_eq(st.underruns, 0);
    ck_assert_int_ge(st.min_ahead_us, 500000 - 100000);
    int during = 0, behind = 0;
    for (int i = 0; i < sc->calls; i++) {
        int64_t play = sc->call_now[i] - st.start_us;
        if (play > 0) {
            during++;
            if (sc->call_until[i] < play) behind++;
        }
    }
    ck_assert_int_ge(during, 20);
    ck_assert_int_eq(behind, 0);
    ck_assert_int_le(st.max_queued, 2 * (500000 + 100000 + 120000) / 50000 + 4);
    ck_assert_int_eq(st.producer_calls, sc->calls);
    ck_assert_int_eq(st.producer_calls, 30);
    /* the end: notes all ended, then sustain off and All Notes Off on all 16 channels, no All
     * Sound Off (the last notes may ring) */
    ck_assert_int_eq(check_no_stuck_notes(&r), 60);
    ck_assert_int_eq(st.notes_closed, 0);
    check_silence(&r, false);
    ck_assert_int_eq(st.silence_sent, 32);
    ck_assert_int_eq(r.n, st.events_sent + 32);
    ck_assert_int_ge(vc.now_us - st.start_us, 2950000 + 120000 - o.lead_us);   /* the last note-off */
    ck_assert_int_eq(r.closes, 0);   /* the caller closes the sink */
    /* once per player */
    ck_assert_int_eq(cl_player_run(p, &st, &err), CL_E_STATE);
    assert_has(err.message, "already played");
    cl_player_free(p);
    cl_recorder_free(&r);
    free(sc);
}
END_TEST

START_TEST(test_player_stop_mid_note) {
    volatile sig_atomic_t stop = 0;
    cl_virtual_clock vc = {0, 0, 0, &stop};
    cl_recorder r;
    cl_recorder_init(&r, cl_clock_virtual(&vc));
    script *sc = script_new(&vc, 10000000);
    sc->note_us = 400000;                      /* long notes: several sound at any time */
    cl_player_opts o = vopts(&vc, 1000000, 20000);
    o.stop = &stop;
    cl_error err;
    memset(&err, 0, sizeof err);
    cl_player *p = cl_player_new(cl_recorder_sink(&r), script_produce, sc, &o, &err);
    ck_assert_ptr_nonnull(p);
    /* Ctrl-C at 1.234 s after the start (the start is the first fill later: ~0 + 30 ms) */
    vc.alarm_us = 30000 + 1234000;
    cl_player_stats st;
    ck_assert_int_eq(cl_player_run(p, &st, &err), CL_E_STOPPED);
    assert_has(err.message, "stopped");
    ck_assert(st.stopped);
    ck_assert_int_gt(st.dropped, 10);          /* the rest of the queue is not played */
    ck_assert_int_gt(st.notes_closed, 3);      /* notes were sounding: the player ended them */
    ck_assert_int_ge(check_no_stuck_notes(&r), st.notes_started);
    check_silence(&r, true);
    ck_assert_int_eq(st.silence_sent, st.notes_closed + 48);
    /* nothing of the piece was sent after the stop; the silence went out at once */
    int64_t after = 0;
    for (int64_t i = 0; i < st.events_sent; i++)
        if (r.records[i].sent_us > vc.alarm_us) after++;
    ck_assert_int_eq(after, 0);
    ck_assert_int_le(r.records[r.n - 1].sent_us - vc.alarm_us, o.poll_us);
    ck_assert_int_eq(st.end_us < 10000000, 1);
    cl_player_free(p);
    cl_recorder_free(&r);
    free(sc);
}
END_TEST

START_TEST(test_player_producer_failure) {
    cl_virtual_clock vc = {0, 0, 0, NULL};
    cl_recorder r;
    cl_recorder_init(&r, cl_clock_virtual(&vc));
    script *sc = script_new(&vc, 10000000);
    sc->note_us = 400000;
    sc->fail_call = 15;                        /* 1 s made before the start, then 5 more calls */
    cl_player_opts o = vopts(&vc, 1000000, 20000);
    cl_error err;
    memset(&err, 0, sizeof err);
    cl_player *p = cl_player_new(cl_recorder_sink(&r), script_produce, sc, &o, &err);
    cl_player_stats st;
    ck_assert_int_eq(cl_player_run(p, &st, &err), CL_E_PRODUCER);
    ck_assert_int_eq(err.status, CL_E_PRODUCER);
    assert_has(err.message, "ran out of ideas at call 15");
    ck_assert(!st.stopped);
    ck_assert_int_gt(st.events_sent, 0);
    ck_assert_int_gt(st.notes_closed, 0);
    check_no_stuck_notes(&r);
    check_silence(&r, true);
    cl_player_free(p);

    /* a failure before anything was sent still silences every channel */
    cl_recorder_free(&r);
    cl_recorder_init(&r, cl_clock_virtual(&vc));
    script *sc2 = script_new(&vc, 10000000);
    sc2->fail_call = 1;
    p = cl_player_new(cl_recorder_sink(&r), script_produce, sc2, &o, &err);
    ck_assert_int_eq(cl_player_run(p, &st, &err), CL_E_PRODUCER);
    ck_assert_int_eq(st.events_sent, 0);
    check_silence(&r, true);
    ck_assert_int_eq(r.n, 48);
    cl_player_free(p);
    cl_recorder_free(&r);
    free(sc);
    free(sc2);
}
END_TEST

START_TEST(test_player_sink_failure) {
    cl_virtual_clock vc = {0, 0, 0, NULL};
    cl_recorder r;
    cl_recorder_init(&r, cl_clock_virtual(&vc));
    r.fail_at = 25;                            /* the device goes away mid-piece */
    script *sc = script_new(&vc, 5000000);
    sc->note_us = 400000;
    cl_player_opts o = vopts(&vc, 1000000, 20000);
    cl_error err;
    memset(&err, 0, sizeof err);
    cl_player *p = cl_player_new(cl_recorder_sink(&r), script_produce, sc, &o, &err);
    cl_player_stats st;
    ck_assert_int_eq(cl_player_run(p, &st, &err), CL_E_HOST);
    assert_has(err.message, "simulated device error");   /* the first error's message is kept */
    ck_assert_int_eq(st.events_sent, 25);
    check_no_stuck_notes(&r);
    check_silence(&r, true);
    cl_player_free(p);
    cl_recorder_free(&r);
    free(sc);
}
END_TEST

/* A producer that costs time: fast enough (10 ms per 100 ms of music) nothing is late and the
 * queue never runs dry; too slow (150 ms per 100 ms) the player says so. */
START_TEST(test_player_producer_speed) {
    for (int slow = 0; slow < 2; slow++) {
        cl_virtual_clock vc = {0, 0, 0, NULL};
        cl_recorder r;
        cl_recorder_init(&r, cl_clock_virtual(&vc));
        script *sc = script_new(&vc, 4000000);
        sc->cost_us = slow ? 150000 : 10000;
        sc->chunk_us = 100000;
        cl_player_opts o = vopts(&vc, 500000, 20000);
        cl_error err;
        memset(&err, 0, sizeof err);
        cl_player *p = cl_player_new(cl_recorder_sink(&r), script_produce, sc, &o, &err);
        cl_player_stats st;
        ck_assert_int_eq(cl_player_run(p, &st, &err), CL_OK);
        ck_assert_int_eq(st.events_sent, sc->n);
        if (!slow) {
            ck_assert_int_eq(st.underruns, 0);
            ck_assert_int_eq(st.late_events, 0);
            ck_assert_int_gt(st.min_ahead_us, 300000);
        } else {
            ck_assert_int_gt(st.underruns, 0);
            ck_assert_int_gt(st.late_events, 10);
            ck_assert_int_gt(st.max_late_us, 100000);
            ck_assert_int_le(st.min_ahead_us, 0);
        }
        /* timestamps stay exact either way: lateness never moves a note */
        int64_t wrong = 0;
        for (int64_t i = 0; i < st.events_sent; i++) {
            int64_t t = r.records[i].ts_us - st.start_us;
            if (t % 50000 != 0 && (t - 120000) % 50000 != 0) wrong++;
        }
        ck_assert_int_eq(wrong, 0);
        check_no_stuck_notes(&r);
        cl_player_free(p);
        cl_recorder_free(&r);
        free(sc);
    }
}
END_TEST

/* Producers that push bad events or go back in time; bad options. */
static cl_produce bad_push(void *user, cl_player *p, int64_t *until, cl_error *err) {
    int *mode = user;
    if (*mode == 0) cl_player_push(p, 1000, (cl_msg){0x40, 0, 0});
    if (*mode == 1) cl_player_push(p, -5, cl_note_on(0, 60, 10));
    if (*mode == 2) {
        *until = *until + 100000;
        *mode = 3;
        return CL_PRODUCE_MORE;
    }
    if (*mode == 3) *until = 50000;
    return CL_PRODUCE_MORE;
}

START_TEST(test_player_errors) {
    cl_virtual_clock vc = {0, 0, 0, NULL};
    cl_recorder r;
    cl_recorder_init(&r, cl_clock_virtual(&vc));
    cl_error err;
    memset(&err, 0, sizeof err);
    const char *want[] = {"not a channel message", "time -5 us < 0", "went back in time"};
    cl_status want_s[] = {CL_E_ARG, CL_E_ARG, CL_E_PRODUCER};
    for (int mode = 0; mode < 3; mode++) {
        int m = mode;
        cl_player_opts o = vopts(&vc, 500000, 0);
        cl_player *p = cl_player_new(cl_recorder_sink(&r), bad_push, &m, &o, &err);
        ck_assert_ptr_nonnull(p);
        ck_assert_int_eq(cl_player_run(p, NULL, &err), want_s[mode]);
        assert_has(err.message, want[mode]);
        cl_player_free(p);
    }
    cl_player_opts o = vopts(&vc, 0, 0);
    ck_assert_ptr_null(cl_player_new(cl_recorder_sink(&r), bad_push, NULL, &o, &err));
    assert_has(err.message, "ahead > 0");
    o = vopts(&vc, 100, -1);
    ck_assert_ptr_null(cl_player_new(cl_recorder_sink(&r), bad_push, NULL, &o, &err));
    ck_assert_ptr_null(cl_player_new(cl_recorder_sink(&r), NULL, NULL, NULL, &err));
    cl_sink none;
    memset(&none, 0, sizeof none);
    ck_assert_ptr_null(cl_player_new(none, bad_push, NULL, NULL, &err));
    ck_assert_int_eq(err.status, CL_E_ARG);
    ck_assert_int_eq(cl_player_push(NULL, 0, cl_note_on(0, 1, 1)), CL_E_ARG);
    ck_assert_int_eq(cl_player_run(NULL, NULL, &err), CL_E_ARG);
    ck_assert_int_eq(cl_player_queued(NULL), 0);
    cl_player_free(NULL);
    /* defaults */
    cl_player_opts d = cl_player_defaults();
    ck_assert_int_eq(d.ahead_us, 2000000);
    ck_assert_int_eq(d.lead_us, 20000);
    ck_assert_ptr_nonnull(d.clock.now);
    ck_assert(d.stop == NULL);
    cl_recorder_free(&r);
}
END_TEST

/* Events pushed out of order and at equal times come out by (time, push order). */
static cl_produce shuffled(void *user, cl_player *p, int64_t *until, cl_error *err) {
    const int64_t times[] = {300000, 100000, 200000, 100000, 0, 300000};
    for (int i = 0; i < 6; i++) cl_player_push(p, times[i], cl_control(0, 20 + i, i));
    ck_assert_int_eq(cl_player_queued(p), 6);
    *until = 400000;
    return CL_PRODUCE_DONE;
}

START_TEST(test_player_order) {
    cl_virtual_clock vc = {0, 0, 0, NULL};
    cl_recorder r;
    cl_recorder_init(&r, cl_clock_virtual(&vc));
    cl_player_opts o = vopts(&vc, 100000, 0);
    cl_error err;
    cl_player *p = cl_player_new(cl_recorder_sink(&r), shuffled, NULL, &o, &err);
    cl_player_stats st;
    ck_assert_int_eq(cl_player_run(p, &st, &err), CL_OK);
    const int want[] = {4, 1, 3, 2, 0, 5};
    for (int i = 0; i < 6; i++) ck_assert_int_eq(r.records[i].msg.data2, want[i]);
    ck_assert_int_eq(r.records[0].ts_us, st.start_us);
    ck_assert_int_eq(r.records[5].ts_us, st.start_us + 300000);
    ck_assert_int_eq(st.start_us, 30000);
    cl_player_free(p);
    cl_recorder_free(&r);
}
END_TEST

/* ---- the real clock ---------------------------------------------------------------------------- */
static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

START_TEST(test_player_real_clock) {
    /* 50 events over 0.5 s, sent when due (lead 0): how late after its timestamp is each? */
    cl_recorder r;
    cl_recorder_init(&r, cl_clock_monotonic());
    script *sc = script_new(NULL, 500000);
    sc->note_every_us = 20000;
    sc->note_us = 10000;
    cl_player_opts o = cl_player_defaults();
    o.ahead_us = 200000;
    o.lead_us = 0;
    o.start_delay_us = 20000;
    cl_error err;
    memset(&err, 0, sizeof err);
    cl_player *p = cl_player_new(cl_recorder_sink(&r), script_produce, sc, &o, &err);
    cl_player_stats st;
    ck_assert_int_eq(cl_player_run(p, &st, &err), CL_OK);
    ck_assert_int_eq(st.events_sent, 50);
    int64_t e[64], early = 0;
    for (int i = 0; i < 50; i++) {
        e[i] = r.records[i].sent_us - r.records[i].ts_us;
        if (e[i] < 0) early++;
    }
    qsort(e, 50, sizeof e[0], cmp_i64);
    double median = (double)(e[24] + e[25]) / 2e3, p90 = (double)e[44] / 1e3, max = (double)e[49] / 1e3;
    printf("player on the real clock: 50 events over 0.5 s sent after their timestamps by median %.3f ms, "
           "90%% %.3f ms, max %.3f ms\n", median, p90, max);
    fflush(stdout);
    ck_assert_int_eq(early, 0);                 /* never before its time (lead 0) */
    /* the issue asks for 2 ms on an idle machine; CI machines are shared (and valgrind is slow):
     * the median must hold, the maximum gets room for a descheduled process */
    bool slow = getenv("CT_TEST_QUICK") != NULL;
    ck_assert_msg(median <= (slow ? 20.0 : 2.0), "median timing error %.3f ms", median);
    ck_assert_msg(max <= (slow ? 250.0 : 50.0), "max timing error %.3f ms", max);
    check_no_stuck_notes(&r);
    cl_player_free(p);
    cl_recorder_free(&r);
    free(sc);
}
END_TEST

/* ---- MIDI files --------------------------------------------------------------------------------- */
START_TEST(test_file_source) {
    /* two tracks, 480 ppq, 120 bpm then 60 bpm from tick 960 (1 s): notes at ticks 0, 480, 960,
     * 1440 in track 1 and 480 in track 2 (a drum), a text meta (not sent), a program change */
    cm_file *f = cm_file_new(1, cm_division_ppq(480));
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(cm_file_add_track(f), 0);
    ck_assert_int_eq(cm_file_add_track(f), 1);
    ck_assert_int_eq(cm_file_add_track(f), 2);
    cm_track *t0 = &f->tracks[0], *t1 = &f->tracks[1], *t2 = &f->tracks[2];
    ck_assert_int_eq(cm_track_add_tempo(t0, 0, 500000), CM_OK);
    ck_assert_int_eq(cm_track_add_tempo(t0, 960, 1000000), CM_OK);
    ck_assert_int_eq(cm_track_add_channel(t1, 0, 0xC0, 5, 0), CM_OK);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(cm_track_add_channel(t1, 480 * i, 0x90, (uint8_t)(60 + i), 100), CM_OK);
        ck_assert_int_eq(cm_track_add_channel(t1, 480 * i + 240, 0x80, (uint8_t)(60 + i), 0), CM_OK);
    }
    ck_assert_int_eq(cm_track_add_text(t2, 0, CM_META_TEXT, "hello"), CM_OK);
    ck_assert_int_eq(cm_track_add_channel(t2, 480, 0x99, 36, 90), CM_OK);
    ck_assert_int_eq(cm_track_add_channel(t2, 480, 0x99, 36, 0), CM_OK);
    t1->end_tick = 2400;
    cl_file_source *src = NULL;
    cl_error err;
    memset(&err, 0, sizeof err);
    ck_assert_int_eq(cl_file_source_new(f, &src, &err), CL_OK);
    ck_assert_int_eq(cl_file_source_events(src), 11);
    ck_assert_int_eq(cl_file_source_notes(src), 5);
    ck_assert_int_eq(cl_file_source_duration_us(src), 1000000 + 1440 * 1000000 / 480);   /* tick 2400 */

    cl_virtual_clock vc = {0, 0, 0, NULL};
    cl_recorder r;
    cl_recorder_init(&r, cl_clock_virtual(&vc));
    cl_player_opts o = vopts(&vc, 700000, 10000);
    cl_player *p = cl_player_new(cl_recorder_sink(&r), cl_file_source_produce, src, &o, &err);
    cl_player_stats st;
    ck_assert_int_eq(cl_player_run(p, &st, &err), CL_OK);
    ck_assert_int_eq(st.events_sent, 11);
    ck_assert_int_eq(st.end_us, 4000000);
    ck_assert(st.producer_calls >= 8);           /* half a second per call */
    /* times: ticks 0, 240 (0.25 s), 480 (0.5 s), 720 (0.75 s), 960 (1 s), then 1 s per 480 ticks */
    const int64_t want_t[] = {0, 0, 250000, 500000, 500000, 500000, 750000, 1000000, 1500000, 2000000, 2500000};
    const uint8_t want_s[] = {0xC0, 0x90, 0x80, 0x90, 0x99, 0x99, 0x80, 0x90, 0x80, 0x90, 0x80};
    for (int i = 0; i < 11; i++) {
        ck_assert_int_eq(r.records[i].ts_us - st.start_us, want_t[i]);
        ck_assert_int_eq(r.records[i].msg.status, want_s[i]);
    }
    ck_assert_int_eq(r.records[0].msg.data1, 5);   /* the program change, data2 0 */
    ck_assert_int_eq(r.records[0].msg.data2, 0);
    check_no_stuck_notes(&r);
    check_silence(&r, false);
    cl_player_free(p);
    cl_file_source_free(src);
    cl_file_source_free(NULL);
    cm_file_free(f);
    cl_recorder_free(&r);
    ck_assert_int_eq(cl_file_source_new(NULL, &src, &err), CL_E_ARG);
}
END_TEST

Suite *player_suite(void) {
    Suite *s = suite_create("player");
    TCase *tc = tcase_create("player");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_messages);
    tcase_add_test(tc, test_portmidi_devices);
    tcase_add_test(tc, test_clocks_and_sinks);
    tcase_add_test(tc, test_player_schedule);
    tcase_add_test(tc, test_player_stop_mid_note);
    tcase_add_test(tc, test_player_producer_failure);
    tcase_add_test(tc, test_player_sink_failure);
    tcase_add_test(tc, test_player_producer_speed);
    tcase_add_test(tc, test_player_errors);
    tcase_add_test(tc, test_player_order);
    tcase_add_test(tc, test_player_real_clock);
    tcase_add_test(tc, test_file_source);
    suite_add_tcase(s, tc);
    return s;
}
