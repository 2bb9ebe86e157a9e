/* tests/apps/test_play.c — composing while playing: the composer as a producer (models/stream.h)
 * on a virtual clock, checked against the whole-piece decoders (the same notes as `cantor
 * sample` would write), and `cantor play` / `cantor devices` as a user runs them (no device here:
 * the messages, exit codes, --dry-run and Ctrl-C). */
#include <check.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audio/melody.h"
#include "audio/midi.h"
#include "audio/performance.h"
#include "audio/pianoroll.h"
#include "audio/player.h"
#include "models/composer.h"
#include "models/stream.h"
#include "testutil.h"

static void assert_has(const char *text, const char *part) {
    ck_assert_msg(strstr(text, part) != NULL, "expected \"%s\" in \"%s\"", part, text);
}

static int count_of(const char *text, const char *part) {
    int n = 0;
    for (const char *p = strstr(text, part); p; p = strstr(p + 1, part)) n++;
    return n;
}

/* A small untrained composer of an encoding (its samples are random, which is all we need). */
static ct_module *tiny_model(ct_ctx *ctx, cc_encoding e) {
    cc_config c = cc_config_default(e);
    c.layers = 1;
    c.hidden = 16;
    c.embed = cc_config_is_roll(&c) ? 0 : 8;
    c.dropout = 0.0f;
    if (e == CC_ENC_TOKENS) c.vocab = 10;
    ct_rng rng;
    ct_rng_seed(&rng, 99);
    ct_module *m = cc_model_new(ctx, &rng, &c);
    ck_assert_msg(m != NULL, "%s", ct_ctx_error(ctx));
    return m;
}

/* Plays a stream of `steps` steps (seed) on a virtual clock into r. */
static cl_player_stats play_stream(ct_module *m, int64_t steps, uint64_t seed, cl_recorder *r) {
    cc_stream_opts so = cc_stream_defaults();
    so.steps = steps;
    so.program = -1;
    ct_rng rng;
    ct_rng_seed(&rng, seed);
    cc_stream *s = cc_stream_new(m, &so, &rng);
    ck_assert_msg(s != NULL, "%s", ct_ctx_error(m->ctx));
    static cl_virtual_clock vc;
    memset(&vc, 0, sizeof vc);
    cl_recorder_init(r, cl_clock_virtual(&vc));
    cl_player_opts o = cl_player_defaults();
    o.clock = cl_clock_virtual(&vc);
    o.ahead_us = 500000;
    cl_error err;
    memset(&err, 0, sizeof err);
    cl_player *p = cl_player_new(cl_recorder_sink(r), cc_stream_produce, s, &o, &err);
    ck_assert_ptr_nonnull(p);
    cl_player_stats st;
    ck_assert_msg(cl_player_run(p, &st, &err) == CL_OK, "%s", err.message);
    ck_assert_int_eq(cc_stream_steps(s), steps);
    ck_assert_int_eq(cc_stream_time_us(s), st.end_us);
    ck_assert_int_eq(st.underruns, 0);
    ck_assert_int_eq(st.late_events, 0);
    ck_assert_int_gt(st.producer_calls, steps / 2);
    cl_player_free(p);
    cc_stream_free(s);
    return st;
}

/* The notes a recording holds: note-on .. next note-off of its channel and pitch. */
typedef struct rnote { double start, end; int pitch, velocity; } rnote;

static int cmp_rnote(const void *a, const void *b) {
    const rnote *x = a, *y = b;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    if (x->pitch != y->pitch) return x->pitch - y->pitch;
    return (x->end > y->end) - (x->end < y->end);
}

static int64_t recorded_notes(const cl_recorder *r, int64_t start_us, rnote *out, int64_t cap) {
    int64_t n = 0, open_at[128];
    int open_vel[128];
    for (int k = 0; k < 128; k++) open_at[k] = -1;
    for (int64_t i = 0; i < r->n; i++) {
        cl_msg m = r->records[i].msg;
        int64_t t = r->records[i].ts_us - start_us;
        if (cl_msg_is_note_on(m)) {
            ck_assert_int_eq(open_at[m.data1], -1);   /* a re-strike is sent as off, then on */
            open_at[m.data1] = t;
            open_vel[m.data1] = m.data2;
        } else if (cl_msg_is_note_off(m) && open_at[m.data1] >= 0) {
            ck_assert_int_lt(n, cap);
            out[n++] = (rnote){open_at[m.data1] / 1e6, t / 1e6, m.data1, open_vel[m.data1]};
            open_at[m.data1] = -1;
        }
    }
    for (int k = 0; k < 128; k++) ck_assert_int_eq(open_at[k], -1);   /* nothing left sounding */
    qsort(out, (size_t)n, sizeof *out, cmp_rnote);
    return n;
}

static int64_t cm_to_rnotes(const cm_notes *notes, rnote *out, int64_t cap) {
    ck_assert_int_le(notes->n_notes, cap);
    for (int64_t i = 0; i < notes->n_notes; i++) {
        const cm_note *x = &notes->notes[i];
        out[i] = (rnote){x->start_s, x->end_s, x->pitch, x->velocity};
    }
    qsort(out, (size_t)notes->n_notes, sizeof *out, cmp_rnote);
    return notes->n_notes;
}

static void assert_same_notes(const rnote *a, int64_t na, const rnote *b, int64_t nb) {
    ck_assert_int_eq(na, nb);
    int64_t bad = -1;
    for (int64_t i = 0; i < na && bad < 0; i++)
        if (fabs(a[i].start - b[i].start) > 1e-5 || fabs(a[i].end - b[i].end) > 1e-5 || a[i].pitch != b[i].pitch ||
            a[i].velocity != b[i].velocity)
            bad = i;
    if (bad >= 0)
        ck_abort_msg("note %lld: played %.6f..%.6f pitch %d velocity %d, decoded %.6f..%.6f pitch %d velocity %d",
                     (long long)bad, a[bad].start, a[bad].end, a[bad].pitch, a[bad].velocity, b[bad].start,
                     b[bad].end, b[bad].pitch, b[bad].velocity);
}

/* ---- the composer as a producer ------------------------------------------------------------------ */
START_TEST(test_stream_melody) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_module *m = tiny_model(ctx, CC_ENC_MELODY);
    const cc_config *c = cc_model_config(m);
    enum { N = 96 };
    int64_t tokens[N];
    int32_t t32[N];
    ct_rng rng;
    ct_rng_seed(&rng, 5);
    ck_assert_int_eq(cc_sample_tokens(m, NULL, &rng, NULL, 0, 1, N, tokens), CT_OK);
    for (int i = 0; i < N; i++) t32[i] = (int32_t)tokens[i];
    cm_melody mel;
    memset(&mel, 0, sizeof mel);
    cm_notes want;
    memset(&want, 0, sizeof want);
    cm_melody_encoding enc = {c->min_pitch, c->max_pitch};
    ck_assert_int_eq(cm_melody_decode(t32, N, enc, c->steps_per_quarter, &mel, NULL), CM_OK);
    ck_assert_int_eq(cm_melody_to_notes(&mel, NULL, &want, NULL), CM_OK);
    ck_assert_int_gt(want.n_notes, 10);

    cl_recorder r;
    cl_player_stats st = play_stream(m, N, 5, &r);
    ck_assert_int_eq(st.end_us, N * 125000);   /* 16ths at 120 qpm */
    static rnote a[4096], b[4096];
    int64_t na = recorded_notes(&r, st.start_us, a, 4096), nb = cm_to_rnotes(&want, b, 4096);
    assert_same_notes(a, na, b, nb);
    ck_assert_int_eq(st.notes_closed, 0);   /* the stream ended its own notes */
    cm_notes_free(&want);
    cm_melody_free(&mel);
    cl_recorder_free(&r);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_stream_performance) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_module *m = tiny_model(ctx, CC_ENC_PERFORMANCE);
    enum { N = 300 };
    int64_t tokens[N];
    int32_t t32[N];
    ct_rng rng;
    ct_rng_seed(&rng, 8);
    ck_assert_int_eq(cc_sample_tokens(m, NULL, &rng, NULL, 0, 1, N, tokens), CT_OK);
    int64_t note_ons = 0, shift_steps = 0;
    cm_perf_config pc = cm_perf_config_default();
    for (int i = 0; i < N; i++) {
        t32[i] = (int32_t)tokens[i];
        cm_perf_event e = cm_perf_token_to_event(&pc, t32[i]);
        if (e.type == CM_PERF_EV_NOTE_ON) note_ons++;
        if (e.type == CM_PERF_EV_TIME_SHIFT) shift_steps += e.value;
    }
    cm_notes want;
    memset(&want, 0, sizeof want);
    ck_assert_int_eq(cm_perf_decode(t32, N, NULL, NULL, &want, NULL, NULL), CM_OK);
    ck_assert_int_gt(want.n_notes, 10);

    cl_recorder r;
    cl_player_stats st = play_stream(m, N, 8, &r);
    ck_assert_int_eq(st.end_us, shift_steps * 10000);
    ck_assert_int_eq(st.notes_started, note_ons);   /* every NOTE_ON token sounds */
    /* every note of the whole-piece decoder starts with a note-on of its pitch and velocity at its
     * time (overlapping notes of one pitch are re-struck live, so ends may differ) */
    static bool used[8192];
    memset(used, 0, sizeof used);
    int64_t missing = 0;
    for (int64_t i = 0; i < want.n_notes; i++) {
        const cm_note *x = &want.notes[i];
        int64_t t = llround(x->start_s * 1e6);
        bool found = false;
        for (int64_t j = 0; j < r.n && !found; j++) {
            cl_msg mm = r.records[j].msg;
            if (!used[j] && cl_msg_is_note_on(mm) && mm.data1 == x->pitch && mm.data2 == x->velocity &&
                r.records[j].ts_us - st.start_us == t)
                used[j] = found = true;
        }
        if (!found) missing++;
    }
    ck_assert_msg(missing == 0, "%lld decoded notes have no note-on at their time", (long long)missing);
    static rnote a[8192];
    recorded_notes(&r, st.start_us, a, 8192);   /* and nothing is left sounding */
    cm_notes_free(&want);
    cl_recorder_free(&r);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_stream_pianoroll) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_module *m = tiny_model(ctx, CC_ENC_PIANOROLL);
    const cc_config *c = cc_model_config(m);
    enum { N = 24 };
    static uint8_t frames[N * 88];
    ct_rng rng;
    ct_rng_seed(&rng, 11);
    ck_assert_int_eq(cc_sample_frames(m, NULL, &rng, NULL, 0, 1, N, frames), CT_OK);
    cm_roll roll = {frames, N};
    cm_roll_grid grid = {c->steps_per_second, c->steps_per_quarter};
    cm_notes want;
    memset(&want, 0, sizeof want);
    ck_assert_int_eq(cm_roll_to_notes(&roll, grid, NULL, &want, NULL), CM_OK);
    ck_assert_int_gt(want.n_notes, 50);

    cl_recorder r;
    cl_player_stats st = play_stream(m, N, 11, &r);
    static rnote a[8192], b[8192];
    int64_t na = recorded_notes(&r, st.start_us, a, 8192), nb = cm_to_rnotes(&want, b, 8192);
    assert_same_notes(a, na, b, nb);
    cm_notes_free(&want);
    cl_recorder_free(&r);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

/* No end (steps 0): it plays until stopped, made ahead all along, and ends every note. */
START_TEST(test_stream_endless_stop) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_module *m = tiny_model(ctx, CC_ENC_MELODY);
    cc_stream_opts so = cc_stream_defaults();
    so.channel = 5;
    so.program = 33;
    ct_rng rng;
    ct_rng_seed(&rng, 1);
    cc_stream *s = cc_stream_new(m, &so, &rng);
    ck_assert_ptr_nonnull(s);
    volatile sig_atomic_t stop = 0;
    cl_virtual_clock vc = {0, 0, 0, &stop};
    vc.alarm_us = 3000000;
    cl_recorder r;
    cl_recorder_init(&r, cl_clock_virtual(&vc));
    cl_player_opts o = cl_player_defaults();
    o.clock = cl_clock_virtual(&vc);
    o.ahead_us = 1000000;
    o.stop = &stop;
    cl_error err;
    cl_player *p = cl_player_new(cl_recorder_sink(&r), cc_stream_produce, s, &o, &err);
    cl_player_stats st;
    ck_assert_int_eq(cl_player_run(p, &st, &err), CL_E_STOPPED);
    /* about 3 s played and 1 s ahead made: 4 s of 16ths at 120 qpm */
    ck_assert_int_ge(cc_stream_steps(s), 30);
    ck_assert_int_le(cc_stream_steps(s), 34);
    ck_assert_int_eq(st.underruns, 0);
    ck_assert_int_ge(st.min_ahead_us, 1000000 - 125000);
    ck_assert_int_eq(r.records[0].msg.status, 0xC5);   /* the program change first, on channel 6 */
    ck_assert_int_eq(r.records[0].msg.data1, 33);
    int64_t other = 0, offs = 0;
    for (int64_t i = 0; i < st.events_sent; i++) other += (r.records[i].msg.status & 15) != 5;
    for (int64_t i = 0; i < r.n; i++) offs += r.records[i].msg.data1 == CL_CC_ALL_SOUND_OFF && (r.records[i].msg.status & 0xF0) == 0xB0;
    ck_assert_int_eq(other, 0);
    ck_assert_int_eq(offs, 16);
    static rnote a[4096];
    recorded_notes(&r, st.start_us, a, 4096);
    cl_player_free(p);
    cc_stream_free(s);
    cl_recorder_free(&r);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_stream_errors) {
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_module *tok = tiny_model(ctx, CC_ENC_TOKENS);
    ct_rng rng;
    ct_rng_seed(&rng, 1);
    ck_assert_ptr_null(cc_stream_new(tok, NULL, &rng));
    ck_assert_int_eq(ct_ctx_status(ctx), CT_E_UNSUPPORTED);
    assert_has(ct_ctx_error(ctx), "a tokens model does not describe notes");
    ct_module *mel = tiny_model(ctx, CC_ENC_MELODY);
    cc_stream_opts so = cc_stream_defaults();
    ck_assert(so.qpm == 120 && so.channel == 0 && so.program == 0 && so.velocity == 100 && so.steps == 0);
    so.channel = 16;
    ck_assert_ptr_null(cc_stream_new(mel, &so, &rng));
    assert_has(ct_ctx_error(ctx), "channel 16");
    so = cc_stream_defaults();
    so.qpm = 2;
    ck_assert_ptr_null(cc_stream_new(mel, &so, &rng));
    so = cc_stream_defaults();
    so.sample.temperature = -1;
    ck_assert_ptr_null(cc_stream_new(mel, &so, &rng));
    assert_has(ct_ctx_error(ctx), "temperature");
    ck_assert_ptr_null(cc_stream_new(mel, NULL, NULL));   /* no generator */
    ck_assert_ptr_null(cc_stream_new(NULL, NULL, &rng));
    cc_stream_free(NULL);
    ck_assert_int_eq(cc_stream_steps(NULL), 0);
    ct_module_free(tok);
    ct_module_free(mel);
    ct_ctx_free(ctx);
}
END_TEST

/* ---- the command --------------------------------------------------------------------------------- */
/* Runs `../bin/cantor ARGS 2>&1`, returns the exit status and fills out (NUL-terminated). */
static int run(const char *args, char *out, size_t n) { return tu_run_cantor(args, out, n); }

static bool have_outputs(void) {
    cl_device_info *d = NULL;
    int n = 0;
    bool yes = cl_list_outputs(&d, &n, NULL) == CL_OK && n > 0;
    free(d);
    return yes;
}

START_TEST(test_cli_devices_and_help) {
    static char out[65536];
    int rc = run("devices", out, sizeof out);
    if (!have_outputs()) {
        /* this machine: nothing to play on; says so, how to get one, and exits 1 */
        ck_assert_int_eq(rc, 1);
        assert_has(out, "cantor devices: no MIDI output devices");
        assert_has(out, "fluidsynth -a alsa -m alsa_seq");
        assert_has(out, "modprobe snd-virmidi");
        assert_has(out, "USB");
        ck_assert_ptr_null(strstr(out, "ALSA lib"));   /* libasound's own noise is silenced */
    } else {
        ck_assert_int_eq(rc, 0);
        assert_has(out, "MIDI output");
        assert_has(out, "interface");
    }
    ck_assert_int_eq(run("devices --help", out, sizeof out), 0);
    assert_has(out, "usage: cantor devices");
    ck_assert_int_eq(run("devices extra", out, sizeof out), 2);

    ck_assert_int_eq(run("play --help", out, sizeof out), 0);
    const char *opts[] = {"--device NAME|ID", "--ckpt FILE", "--length N", "(default 0)", "--temperature T",
                          "(default 1.0)", "--top-k K", "--top-p P", "--seed N", "(default 1234)", "--qpm Q",
                          "(default 120)", "--channel N", "--program N", "--latency MS", "(default 100)",
                          "--ahead SECONDS", "(default 2)", "--dry-run", "130 stopped by Ctrl-C"};
    for (size_t i = 0; i < sizeof opts / sizeof *opts; i++) assert_has(out, opts[i]);
    ck_assert_int_eq(run("help play", out, sizeof out), 0);
    assert_has(out, "usage: cantor play");
    ck_assert_int_eq(run("help", out, sizeof out), 0);
    assert_has(out, "devices");
}
END_TEST

START_TEST(test_cli_usage_and_no_device) {
    static char out[65536];
    ck_assert_int_eq(run("play", out, sizeof out), 2);
    assert_has(out, "nothing to play");
    ck_assert_int_eq(run("play x.mid --ckpt m.safetensors", out, sizeof out), 2);
    assert_has(out, "not both");
    ck_assert_int_eq(run("play --latency 0 x.mid", out, sizeof out), 2);
    assert_has(out, "--latency '0'");
    ck_assert_int_eq(run("play --ahead soon x.mid", out, sizeof out), 2);
    assert_has(out, "--ahead 'soon'");
    ck_assert_int_eq(run("play notes.txt", out, sizeof out), 2);
    assert_has(out, "expected a .mid file");
    ck_assert_int_eq(run("play x.mid --temperature 0.5", out, sizeof out), 2);
    assert_has(out, "for composing with --ckpt");
    ck_assert_int_eq(run("play x.mid --dry-run --device 0", out, sizeof out), 2);
    ck_assert_int_eq(run("play a.mid b.mid", out, sizeof out), 2);
    if (!have_outputs()) {
        /* no device: what `devices` says, exit 1, before anything is loaded */
        ck_assert_int_eq(run("play fixtures/midi/drums.mid", out, sizeof out), 1);
        assert_has(out, "cantor play: no MIDI output devices");
        assert_has(out, "fluidsynth -a alsa -m alsa_seq");
        ck_assert_int_eq(run("play --ckpt missing.safetensors --device 0", out, sizeof out), 1);
        assert_has(out, "MIDI output '0'");
        assert_has(out, "no MIDI devices");
        ck_assert_int_eq(run("play fixtures/midi/drums.mid --device 'FLUID Synth' --latency 50", out, sizeof out), 1);
        assert_has(out, "MIDI output 'FLUID Synth'");
    }
}
END_TEST

/* A 0.3 s MIDI file: C4, E4, G4 of 0.1 s each at 120 bpm, a program change. */
static void write_small_midi(const char *path) {
    cm_file *f = cm_file_new(1, cm_division_ppq(480));
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(cm_file_add_track(f), 0);
    cm_track *t = &f->tracks[0];
    ck_assert_int_eq(cm_track_add_channel(t, 0, 0xC0, 40, 0), CM_OK);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(cm_track_add_channel(t, 96 * i, 0x90, (uint8_t)(60 + 4 * i - (i == 2)), 100), CM_OK);
        ck_assert_int_eq(cm_track_add_channel(t, 96 * i + 96, 0x80, (uint8_t)(60 + 4 * i - (i == 2)), 0), CM_OK);
    }
    ck_assert_int_eq(cm_write_file(f, path, NULL, NULL), CM_OK);
    cm_file_free(f);
}

START_TEST(test_cli_dry_run) {
    static char out[65536];
    mkdir("tmp", 0755);
    char mid[64], ckpt[64], cmd[256];
    snprintf(mid, sizeof mid, "tmp/play_%ld.mid", (long)getpid());
    write_small_midi(mid);
    snprintf(cmd, sizeof cmd, "play %s --dry-run --ahead 0.1", mid);
    ck_assert_int_eq(run(cmd, out, sizeof out), 0);
    assert_has(out, "dry run");
    assert_has(out, "program 40");
    assert_has(out, "note-on  C4 (60) velocity 100");
    assert_has(out, "note-off G4 (67)");
    ck_assert_int_eq(count_of(out, "(All Notes Off)"), 16);
    ck_assert_int_eq(count_of(out, "(All Sound Off)"), 0);   /* a clean end lets the notes ring */
    assert_has(out, "played 3 notes (7 messages)");
    remove(mid);

    /* compose: a tiny melody model, 16 steps at 1000 qpm (0.24 s) */
    ct_ctx *ctx = tu_ctx(NULL);
    ct_module *m = tiny_model(ctx, CC_ENC_MELODY);
    snprintf(ckpt, sizeof ckpt, "tmp/play_%ld.safetensors", (long)getpid());
    ck_assert_int_eq(cc_save(ckpt, m, 0, NULL, NULL), CT_OK);
    snprintf(cmd, sizeof cmd, "play --ckpt %s --dry-run --length 16 --qpm 1000 --seed 3 --channel 2 --program 5",
             ckpt);
    ck_assert_int_eq(run(cmd, out, sizeof out), 0);
    assert_has(out, "composing with");
    assert_has(out, "melody LSTM 1x16");
    assert_has(out, "ch  2  C1 05 00  program 5");
    assert_has(out, "composed 16 steps");
    ck_assert_int_eq(count_of(out, "note-on "), count_of(out, "note-off "));   /* no stuck notes */
    ck_assert_int_ge(count_of(out, "note-on "), 2);

    /* Ctrl-C: an endless piece stops, every channel silenced, exit 130 */
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        execl(tu_cantor_bin(), "cantor", "play", "--ckpt", ckpt, "--dry-run", "--qpm", "600", "--ahead", "0.2",
              (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    size_t len = 0;
    bool signalled = false;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {   /* read until the first notes are out, then press Ctrl-C */
        struct pollfd pf = {fds[0], POLLIN, 0};
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (t1.tv_sec - t0.tv_sec > 60) {   /* never hang the suite */
            kill(pid, SIGKILL);
            break;
        }
        if (poll(&pf, 1, 100) <= 0) continue;
        ssize_t k = read(fds[0], out + len, sizeof out - 1 - len);
        if (k <= 0) break;
        len += (size_t)k;
        out[len] = 0;
        if (!signalled && count_of(out, "note-on ") >= 3) {
            kill(pid, SIGINT);
            signalled = true;
        }
    }
    close(fds[0]);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(signalled);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 130, "status %d: %s", status, out);
    assert_has(out, "stopped after");
    assert_has(out, "all notes off");
    ck_assert_int_eq(count_of(out, "(All Notes Off)"), 16);
    ck_assert_int_eq(count_of(out, "(All Sound Off)"), 16);
    ck_assert_int_eq(count_of(out, "(sustain)"), 16);
    ck_assert_int_eq(count_of(out, "note-on "), count_of(out, "note-off "));
    remove(ckpt);
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

Suite *play_suite(void) {
    Suite *s = suite_create("play");
    TCase *tc = tcase_create("play");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_stream_melody);
    tcase_add_test(tc, test_stream_performance);
    tcase_add_test(tc, test_stream_pianoroll);
    tcase_add_test(tc, test_stream_endless_stop);
    tcase_add_test(tc, test_stream_errors);
    tcase_add_test(tc, test_cli_devices_and_help);
    tcase_add_test(tc, test_cli_usage_and_no_device);
    tcase_add_test(tc, test_cli_dry_run);
    suite_add_tcase(s, tc);
    return s;
}
