/* tests/apps/test_sample_eval.c — `cantor sample` and `cantor eval` end to end, as a user runs
 * them: a tiny corpus written here (MIDI files through audio/midi.h, `cantor corpus build`),
 * a few training steps (`cantor train`), then sampling (valid MIDI, byte-identical for a seed,
 * primers, --count, --length units, rendering), evaluation against a direct computation, and
 * every usage and file error. Runs tu_cantor_bin() (from tests/). Other engineers' test runs may
 * run this suite at the same time in the same tree, so the set-up works in a folder of its own,
 * tests/tmp/sample_eval.PID/ (it changes into it, and back in the tear-down, which removes it);
 * paths below are relative to it. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audio/midi.h"
#include "corpora/dataset.h"
#include "engine/layers.h"
#include "engine/device.h"
#include "models/composer.h"
#include "models/sampler.h"
#include "testutil.h"

#define DIR "se"

static char g_bin[4200];      /* the cantor binary, absolute */
static char g_home[4096];     /* tests/ */
static char g_work[4200];     /* tests/tmp/sample_eval.PID */

/* Runs `CANTOR ARGS 2>&1` (tu_cantor_bin(): $CANTOR_BIN, else ../bin/cantor), returns the exit
 * status and fills out (NUL-terminated). */
static int run(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int run(char *out, size_t n, const char *fmt, ...) {
    char args[3000], cmd[7300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s %s", g_bin, args);
    return tu_run(cmd, out, n);
}

static void assert_has(const char *msg, const char *want) {
    ck_assert_msg(strstr(msg, want) != NULL, "output \"%s\" lacks \"%s\"", msg, want);
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Writes a MIDI file of notes (PPQ 480) at qpm with a num/4 time signature. */
static void write_midi(const char *path, const cm_note *notes, int64_t n, double qpm, int num) {
    cm_notes nt;
    cm_error err;
    ck_assert_int_eq(cm_notes_from_array(&nt, notes, n, &err), CM_OK);
    cm_tempo_map tm;
    ck_assert_int_eq(cm_tempo_map_init_simple(&tm, cm_division_ppq(480), (uint32_t)llround(60e6 / qpm), num, 4), CM_OK);
    cm_file *f = cm_file_from_notes(&nt, &tm, &err);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(cm_write_file(f, path, NULL, &err), CM_OK);
    cm_file_free(f);
    cm_tempo_map_free(&tm);
    cm_notes_free(&nt);
}

static cm_note note(int64_t start, int64_t end, int pitch) {
    cm_note x;
    memset(&x, 0, sizeof x);
    x.start_tick = start;
    x.end_tick = end;
    x.start_s = start / 960.0;
    x.end_s = end / 960.0;
    x.pitch = (uint8_t)pitch;
    x.velocity = 80;
    return x;
}

/* File i of the tiny corpus: 10 bars of eighth notes on a C major scale walk, with a second
 * voice a third below on every other note (so the piano roll has chords). */
static void write_corpus_file(int i) {
    static const int scale[] = {60, 62, 64, 65, 67, 69, 71, 72, 74, 76};
    cm_note notes[160];
    int64_t n = 0;
    uint64_t x = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1);
    int pos = i % 10;
    for (int k = 0; k < 80; k++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        pos += (int)(x % 5) - 2;
        if (pos < 0) pos = 1;
        if (pos > 9) pos = 8;
        notes[n++] = note(k * 240, k * 240 + 240, scale[pos]);
        if (k % 2 == 0) notes[n++] = note(k * 240, k * 240 + 240, scale[pos] - 4);
    }
    char path[256];
    snprintf(path, sizeof path, DIR "/midi/piece%02d.mid", i);
    write_midi(path, notes, n, 120, 4);
}

/* ---- the shared set-up: corpora and three tiny trained models (once per test case) --------- *
 * It runs in the parent process (an unchecked fixture), where a failed assertion would not be
 * reported: it records what failed instead, and every test starts by checking it. */
static char setup_error[20000];

#define SETUP_CHECK() ck_assert_msg(setup_error[0] == 0, "set-up failed: %s", setup_error)

static void setup_all(void) {
    char out[16384];
    setup_error[0] = 0;
    if (!getcwd(g_home, sizeof g_home)) {
        snprintf(setup_error, sizeof setup_error, "getcwd failed");
        return;
    }
    const char *bin = tu_cantor_bin();              /* relative to tests/ unless absolute */
    if (bin[0] == '/') snprintf(g_bin, sizeof g_bin, "%s", bin);
    else snprintf(g_bin, sizeof g_bin, "%s/%s", g_home, bin);
    snprintf(g_work, sizeof g_work, "%s/tmp/sample_eval.%d", g_home, (int)getpid());
    mkdir("tmp", 0755);
    tu_rm_rf(g_work);
    if (mkdir(g_work, 0755) != 0 || chdir(g_work) != 0) {
        snprintf(setup_error, sizeof setup_error, "cannot make and enter %s", g_work);
        return;
    }
    mkdir(DIR, 0755);
    mkdir(DIR "/midi", 0755);
    for (int i = 0; i < 24; i++) write_corpus_file(i);
    static const char *enc[] = {"melody", "pianoroll", "performance"};
    for (int e = 0; e < 3; e++) {
        int rc = run(out, sizeof out, "corpus build " DIR "/midi -o " DIR "/%s.corpus --encoding %s --valid-pct 25 "
                     "--test-pct 25 --quiet", enc[e], enc[e]);
        if (rc != 0) {
            snprintf(setup_error, sizeof setup_error, "corpus build %s exited %d: %s", enc[e], rc, out);
            return;
        }
        rc = run(out, sizeof out, "train --corpus " DIR "/%s.corpus --out " DIR "/run_%s --steps 5 --layers 1 "
                 "--hidden 16 --batch 4 --window 32 --seed 1", enc[e], enc[e]);
        char model[256];
        snprintf(model, sizeof model, DIR "/run_%s/model.safetensors", enc[e]);
        if (rc != 0 || !exists(model)) {
            snprintf(setup_error, sizeof setup_error, "train %s exited %d: %s", enc[e], rc, out);
            return;
        }
    }
    /* a polyphonic primer at 90 qpm in 3/4: C-E-G together, then D alone, then F over A */
    cm_note p[] = {note(0, 480, 60), note(0, 480, 64), note(0, 480, 67), note(480, 960, 62),
                   note(960, 1920, 69), note(1200, 1440, 65)};
    write_midi(DIR "/primer.mid", p, 6, 90, 3);
}

static void teardown_all(void) {
    if (g_home[0] && chdir(g_home) == 0) tu_rm_rf(g_work);
}

#define MEL DIR "/run_melody/model.safetensors"
#define ROLL DIR "/run_pianoroll/model.safetensors"
#define PERF DIR "/run_performance/model.safetensors"

/* Reads a MIDI file back (failing the test if it does not parse) and returns its notes. */
static void read_notes(const char *path, cm_notes *nt, cm_tempo_map *tm) {
    cm_file *f = NULL;
    cm_error err;
    ck_assert_msg(cm_read_file(path, &f, &err) == CM_OK, "%s: %s", path, err.message);
    ck_assert_int_eq(cm_notes_extract(f, NULL, nt, &err), CM_OK);
    if (tm) ck_assert_int_eq(cm_tempo_map_init(tm, f, -1, &err), CM_OK);
    cm_file_free(f);
}

static bool contains(const uint8_t *b, size_t n, const char *s) {
    size_t k = strlen(s);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(b + i, s, k) == 0) return true;
    return false;
}

static bool same_bytes(const char *a, const char *b) {
    size_t na, nb;
    uint8_t *x = tu_slurp(a, &na), *y = tu_slurp(b, &nb);
    bool same = na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

/* ===== help ================================================================================= */
START_TEST(test_help) {
    SETUP_CHECK();
    char out[16384];
    ck_assert_int_eq(run(out, sizeof out, "help sample"), 0);
    static const char *flags[] = {"--ckpt FILE", "--out FILE.mid|DIR", "--count N", "(default 1)", "--length LEN",
                                  "(default 256)", "8bars", "30s", "--temperature T", "(default 1.0)", "--top-k K",
                                  "(default 0", "--top-p P", "--primer FILE.mid", "(default none)", "--seed N",
                                  "(default 1234)", "--qpm Q", "else 120)", "--render FILE|DIR", "--renderer NAME",
                                  "(default auto"};
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) assert_has(out, flags[i]);
    ck_assert_int_eq(run(out, sizeof out, "sample --help"), 0);
    assert_has(out, "usage: cantor sample");
    ck_assert_int_eq(run(out, sizeof out, "help eval"), 0);
    static const char *eflags[] = {"--ckpt FILE", "--corpus FILE", "--split NAME", "(default valid)",
                                   "--batch N", "(default 16", "--chunk N", "(default 512", "--json",
                                   "summed", "88 keys"};
    for (size_t i = 0; i < sizeof eflags / sizeof *eflags; i++) assert_has(out, eflags[i]);
    ck_assert_int_eq(run(out, sizeof out, "eval -h"), 0);
    assert_has(out, "usage: cantor eval");
}
END_TEST

/* ===== sampling ============================================================================== */
START_TEST(test_sample_melody_deterministic) {
    SETUP_CHECK();
    char out[16384];
    int rc = run(out, sizeof out, "sample --ckpt " MEL " --out " DIR "/a.mid --seed 7 --length 64");
    ck_assert_msg(rc == 0, "%s", out);
    assert_has(out, DIR "/a.mid: 64 steps");
    ck_assert_int_eq(run(out, sizeof out, "sample --ckpt " MEL " --out " DIR "/b.mid --seed 7 --length 64"), 0);
    ck_assert(same_bytes(DIR "/a.mid", DIR "/b.mid"));
    ck_assert_int_eq(run(out, sizeof out, "sample --ckpt " MEL " --out " DIR "/c.mid --seed 8 --length 64"), 0);
    ck_assert(!same_bytes(DIR "/a.mid", DIR "/c.mid"));
    /* the file reads back, with notes, and carries the settings */
    cm_notes nt;
    read_notes(DIR "/a.mid", &nt, NULL);
    ck_assert_int_gt(nt.n_notes, 0);
    for (int64_t i = 0; i < nt.n_notes; i++) {
        ck_assert_int_ge(nt.notes[i].pitch, 48);
        ck_assert_int_lt(nt.notes[i].pitch, 84);
        ck_assert_int_le(nt.notes[i].end_tick, 64 * 120);   /* 64 sixteenths at PPQ 480 */
    }
    cm_notes_free(&nt);
    size_t n;
    uint8_t *bytes = tu_slurp(DIR "/a.mid", &n);
    const char *want = "cantor sample seed=7 piece=1/1 temperature=1 top_k=0 top_p=1 length=64";
    ck_assert(contains(bytes, n, want));
    ck_assert(contains(bytes, n, "ckpt=" MEL));
    free(bytes);
    /* greedy, top-k and top-p are deterministic too, and change the piece */
    ck_assert_int_eq(run(out, sizeof out, "sample --ckpt " MEL " --out " DIR "/g1.mid --temperature 0 --seed 1"), 0);
    ck_assert_int_eq(run(out, sizeof out, "sample --ckpt " MEL " --out " DIR "/g2.mid --temperature 0 --seed 2"), 0);
    cm_notes g1, g2;                              /* greedy: the seed changes only the text */
    read_notes(DIR "/g1.mid", &g1, NULL);
    read_notes(DIR "/g2.mid", &g2, NULL);
    ck_assert_int_eq(g1.n_notes, g2.n_notes);
    for (int64_t i = 0; i < g1.n_notes; i++) {
        ck_assert_int_eq(g1.notes[i].pitch, g2.notes[i].pitch);
        ck_assert_int_eq(g1.notes[i].start_tick, g2.notes[i].start_tick);
        ck_assert_int_eq(g1.notes[i].end_tick, g2.notes[i].end_tick);
    }
    cm_notes_free(&g1);
    cm_notes_free(&g2);
    ck_assert_int_eq(run(out, sizeof out, "sample --ckpt " MEL " --out " DIR "/k.mid --top-k 3 --top-p 0.9 "
                         "--temperature 0.8"), 0);
    read_notes(DIR "/k.mid", &nt, NULL);
    cm_notes_free(&nt);
}
END_TEST

START_TEST(test_sample_count_and_folders) {
    SETUP_CHECK();
    char out[16384];
    int rc = run(out, sizeof out, "sample --ckpt " MEL " --out " DIR "/many --count 3 --length 32 --seed 5");
    ck_assert_msg(rc == 0, "%s", out);
    char path[256];
    for (int i = 1; i <= 3; i++) {
        snprintf(path, sizeof path, DIR "/many/sample-%03d.mid", i);
        ck_assert_msg(exists(path), "%s missing: %s", path, out);
        cm_notes nt;
        read_notes(path, &nt, NULL);
        cm_notes_free(&nt);
    }
    ck_assert(!exists(DIR "/many/sample-004.mid"));
    /* the pieces differ from each other; the same command gives the same files */
    ck_assert(!same_bytes(DIR "/many/sample-001.mid", DIR "/many/sample-002.mid"));
    ck_assert_int_eq(run(out, sizeof out, "sample --ckpt " MEL " --out " DIR "/many2 --count 3 --length 32 --seed 5"), 0);
    ck_assert(same_bytes(DIR "/many/sample-003.mid", DIR "/many2/sample-003.mid"));
    /* a .mid name with --count numbers the files; a folder with --count 1 too */
    ck_assert_int_eq(run(out, sizeof out, "sample --ckpt " MEL " --out " DIR "/x.mid --count 2 --length 16"), 0);
    ck_assert(exists(DIR "/x-001.mid") && exists(DIR "/x-002.mid") && !exists(DIR "/x.mid"));
    ck_assert_int_eq(run(out, sizeof out, "sample --ckpt " MEL " --out " DIR "/one/ --length 16"), 0);
    ck_assert(exists(DIR "/one/sample-001.mid"));
}
END_TEST

START_TEST(test_sample_primer) {
    SETUP_CHECK();
    char out[16384];
    int rc = run(out, sizeof out, "sample --ckpt " MEL " --out " DIR "/p.mid --primer " DIR "/primer.mid "
                 "--length 2bars --seed 3");
    ck_assert_msg(rc == 0, "%s", out);
    assert_has(out, "polyphonic");
    assert_has(out, "highest note at each onset");
    /* 3/4 at 4 steps per quarter: 2 bars = 24 steps, after the primer's 12 steps (its melody
     * ends with F, three quarters in) */
    assert_has(out, "24 steps after a 12-step primer");
    assert_has(out, "at 90 qpm");
    cm_notes nt;
    cm_tempo_map tm;
    read_notes(DIR "/p.mid", &nt, &tm);
    ck_assert_int_eq(tm.tempos[0].us_per_quarter, 666667);   /* the primer's tempo */
    ck_assert_int_ge(nt.n_notes, 4);
    /* the piece opens with the reduced primer: G (highest of C-E-G), D, A cut by F, F */
    ck_assert_int_eq(nt.notes[0].pitch, 67);
    ck_assert_int_eq(nt.notes[0].start_tick, 0);
    ck_assert_int_eq(nt.notes[0].end_tick, 480);
    ck_assert_int_eq(nt.notes[1].pitch, 62);
    ck_assert_int_eq(nt.notes[2].pitch, 69);
    ck_assert_int_eq(nt.notes[2].end_tick, 1200);
    ck_assert_int_eq(nt.notes[3].pitch, 65);
    ck_assert_int_eq(nt.notes[3].start_tick, 1200);
    for (int64_t i = 0; i < nt.n_notes; i++) ck_assert_int_le(nt.notes[i].end_tick, 36 * 120);
    cm_notes_free(&nt);
    cm_tempo_map_free(&tm);
    /* --qpm wins over the primer's tempo; a piano roll keeps the chord */
    ck_assert_int_eq(run(out, sizeof out, "sample --ckpt " MEL " --out " DIR "/q.mid --primer " DIR "/primer.mid "
                         "--qpm 100 --length 8"), 0);
    assert_has(out, "at 100 qpm");
    rc = run(out, sizeof out, "sample --ckpt " ROLL " --out " DIR "/r.mid --primer " DIR "/primer.mid --length 4");
    ck_assert_msg(rc == 0, "%s", out);
    ck_assert_ptr_null(strstr(out, "polyphonic"));
    read_notes(DIR "/r.mid", &nt, NULL);
    int at0 = 0;
    for (int64_t i = 0; i < nt.n_notes; i++) at0 += nt.notes[i].start_tick == 0;
    ck_assert_int_ge(at0, 3);                                 /* C, E and G together */
    cm_notes_free(&nt);
    ck_assert_int_eq(run(out, sizeof out, "sample --ckpt " PERF " --out " DIR "/pp.mid --primer " DIR "/primer.mid "
                         "--length 10"), 0);
    read_notes(DIR "/pp.mid", &nt, NULL);
    ck_assert_int_ge(nt.n_notes, 3);
    cm_notes_free(&nt);
}
END_TEST

START_TEST(test_sample_lengths) {
    SETUP_CHECK();
    char out[16384];
    /* melody: 3 s at 120 qpm = 6 quarters = 24 steps; 1.5bars of 4/4 = 24 steps */
    ck_assert_int_eq(run(out, sizeof out, "sample --ckpt " MEL " --out " DIR "/l1.mid --length 3s"), 0);
    assert_has(out, ": 24 steps");
    ck_assert_int_eq(run(out, sizeof out, "sample --ckpt " MEL " --out " DIR "/l2.mid --length 1.5bars"), 0);
    assert_has(out, ": 24 steps");
    ck_assert_int_eq(run(out, sizeof out, "sample --ckpt " MEL " --out " DIR "/l3.mid --length 3s --qpm 60"), 0);
    assert_has(out, ": 12 steps");
    /* piano roll: frames */
    ck_assert_int_eq(run(out, sizeof out, "sample --ckpt " ROLL " --out " DIR "/l4.mid --length 1bar"), 0);
    assert_has(out, ": 16 frames");
    /* performance: N is events; seconds stop on the time shifts */
    ck_assert_int_eq(run(out, sizeof out, "sample --ckpt " PERF " --out " DIR "/l5.mid --length 40"), 0);
    assert_has(out, ": 40 events");
    int rc = run(out, sizeof out, "sample --ckpt " PERF " --out " DIR "/l6.mid --length 2s --count 2");
    ck_assert_msg(rc == 0, "%s", out);
    for (int i = 1; i <= 2; i++) {
        char path[128];
        snprintf(path, sizeof path, DIR "/l6-%03d.mid", i);
        cm_notes nt;
        read_notes(path, &nt, NULL);
        ck_assert_double_le(nt.end_s, 3.0 + 1e-9);   /* 2 s, plus at most one shift of 1 s */
        cm_notes_free(&nt);
    }
}
END_TEST

START_TEST(test_sample_render) {
    SETUP_CHECK();
    char out[16384];
    int rc = run(out, sizeof out, "sample --ckpt " MEL " --out " DIR "/w.mid --length 16 --render " DIR "/w.wav "
                 "--renderer builtin");
    ck_assert_msg(rc == 0, "%s", out);
    assert_has(out, DIR "/w.wav: ");
    struct stat st;
    ck_assert_int_eq(stat(DIR "/w.wav", &st), 0);
    ck_assert_int_gt(st.st_size, 44);
    rc = run(out, sizeof out, "sample --ckpt " ROLL " --out " DIR "/wd --count 2 --length 8 --render " DIR "/wd "
             "--renderer builtin");
    ck_assert_msg(rc == 0, "%s", out);
    ck_assert(exists(DIR "/wd/sample-001.wav") && exists(DIR "/wd/sample-002.wav"));
    rc = run(out, sizeof out, "sample --ckpt " MEL " --out " DIR "/wc.mid --count 2 --length 8 --render " DIR
             "/wc.flac --renderer builtin");
    ck_assert_msg(rc == 0, "%s", out);
    ck_assert(exists(DIR "/wc-001.flac") && exists(DIR "/wc-002.flac"));
}
END_TEST

/* ===== usage errors: exit 2, the flag named ============================================== */
START_TEST(test_usage_errors) {
    SETUP_CHECK();
    char out[16384];
    static const struct {
        const char *args, *want;
    } cases[] = {
        {"sample --out " DIR "/u.mid", "--ckpt FILE is required"},
        {"sample --ckpt " MEL, "--out FILE.mid or --out DIR is required"},
        {"sample --ckpt " MEL " --out " DIR "/u.wav", "--out '" DIR "/u.wav': expected a .mid file or a folder"},
        {"sample --ckpt " MEL " --out u.mid --count 0", "--count '0'"},
        {"sample --ckpt " MEL " --out u.mid --length abc", "--length 'abc'"},
        {"sample --ckpt " MEL " --out u.mid --length 2.5", "--length '2.5'"},
        {"sample --ckpt " MEL " --out u.mid --length 5parsecs", "--length '5parsecs'"},
        {"sample --ckpt " MEL " --out u.mid --temperature -1", "--temperature '-1'"},
        {"sample --ckpt " MEL " --out u.mid --top-k -1", "--top-k '-1'"},
        {"sample --ckpt " MEL " --out u.mid --top-p 1.5", "--top-p '1.5'"},
        {"sample --ckpt " MEL " --out u.mid --seed -4", "--seed '-4'"},
        {"sample --ckpt " MEL " --out u.mid --qpm 2", "--qpm '2'"},
        {"sample --ckpt " MEL " --out u.mid --render u.mp3", "--render 'u.mp3'"},
        {"sample --ckpt " MEL " --out u.mid --renderer timidity", "--renderer 'timidity'"},
        {"sample --ckpt " MEL " --out u.mid --nope", "unknown option '--nope'"},
        {"sample --ckpt " MEL " --out u.mid stray", "unexpected argument 'stray'"},
        {"sample --ckpt " ROLL " --out " DIR "/u.mid --top-k 5", "--top-k and --top-p"},
        {"sample --ckpt " MEL " --out " DIR "/u.mid --length 300000bars", "--length '300000bars'"},
        {"eval --corpus " DIR "/melody.corpus", "--ckpt FILE is required"},
        {"eval --ckpt " MEL, "--corpus FILE is required"},
        {"eval --ckpt " MEL " --corpus x --split dev", "--split 'dev'"},
        {"eval --ckpt " MEL " --corpus x --batch 0", "--batch '0'"},
        {"eval --ckpt " MEL " --corpus x --chunk none", "--chunk 'none'"},
        {"eval --ckpt " MEL " --corpus x --jsonl", "unknown option '--jsonl'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int rc = run(out, sizeof out, "%s", cases[i].args);
        ck_assert_msg(rc == 2, "'%s' exited %d: %s", cases[i].args, rc, out);
        assert_has(out, cases[i].want);
        assert_has(out, "cantor help");
    }
    ck_assert(!exists("u.mid") && !exists(DIR "/u.mid"));
}
END_TEST

/* ===== runtime errors: exit 1, the file named, what to do ================================= */
START_TEST(test_file_errors) {
    SETUP_CHECK();
    char out[16384];
    /* a missing checkpoint */
    ck_assert_int_eq(run(out, sizeof out, "sample --ckpt " DIR "/nope.safetensors --out " DIR "/e.mid"), 1);
    assert_has(out, DIR "/nope.safetensors");
    assert_has(out, "model.safetensors that cantor train writes");
    /* another kind of file as a checkpoint */
    ck_assert_int_eq(run(out, sizeof out, "sample --ckpt " DIR "/primer.mid --out " DIR "/e.mid"), 1);
    assert_has(out, DIR "/primer.mid");
    ck_assert_int_eq(run(out, sizeof out, "eval --ckpt " DIR "/melody.corpus --corpus " DIR "/melody.corpus"), 1);
    assert_has(out, DIR "/melody.corpus");
    /* a truncated checkpoint */
    size_t n;
    uint8_t *b = tu_slurp(MEL, &n);
    tu_spit(DIR "/trunc.safetensors", b, n / 2);
    tu_spit(DIR "/head.safetensors", b, 5);
    free(b);
    ck_assert_int_eq(run(out, sizeof out, "sample --ckpt " DIR "/trunc.safetensors --out " DIR "/e.mid"), 1);
    assert_has(out, DIR "/trunc.safetensors");
    ck_assert_int_eq(run(out, sizeof out, "eval --ckpt " DIR "/head.safetensors --corpus " DIR "/melody.corpus"), 1);
    assert_has(out, DIR "/head.safetensors");
    ck_assert(!exists(DIR "/e.mid"));
    /* primers: missing, not MIDI */
    ck_assert_int_eq(run(out, sizeof out, "sample --ckpt " MEL " --out " DIR "/e.mid --primer " DIR "/none.mid"), 1);
    assert_has(out, "--primer");
    assert_has(out, DIR "/none.mid");
    ck_assert_int_eq(run(out, sizeof out, "sample --ckpt " MEL " --out " DIR "/e.mid --primer " MEL), 1);
    assert_has(out, MEL);
    ck_assert(!exists(DIR "/e.mid"));
    /* an output folder that cannot be written */
    ck_assert_int_eq(run(out, sizeof out, "sample --ckpt " MEL " --out " DIR "/no/such/dir/e.mid"), 1);
    assert_has(out, DIR "/no/such/dir/e.mid");
    /* eval: a missing corpus, another kind of file, another encoding, an empty split */
    ck_assert_int_eq(run(out, sizeof out, "eval --ckpt " MEL " --corpus " DIR "/none.corpus"), 1);
    assert_has(out, DIR "/none.corpus");
    ck_assert_int_eq(run(out, sizeof out, "eval --ckpt " MEL " --corpus " MEL), 1);
    assert_has(out, MEL);
    ck_assert_int_eq(run(out, sizeof out, "eval --ckpt " MEL " --corpus " DIR "/pianoroll.corpus"), 1);
    assert_has(out, "is a melody model but");
    assert_has(out, "--encoding melody");
    ck_assert_int_eq(run(out, sizeof out, "eval --ckpt " ROLL " --corpus " DIR "/melody.corpus"), 1);
    assert_has(out, "is a pianoroll model");
}
END_TEST

/* ===== eval ================================================================================ */
/* The figure computed directly: every valid piece through cc_forward in one call, NLL summed
 * (cross-entropy, or BCE summed over the keys), divided by the predictions. */
static double direct_nll(const char *ckpt, const char *corpus, int64_t *count) {
    ct_ctx *ctx = ct_ctx_new();
    ct_module *m = cc_load(ctx, ckpt);
    ck_assert_ptr_nonnull(m);
    ct_module_train(m, false);
    ct_set_grad_enabled(ctx, false);
    cp_dataset *d = cp_dataset_open(ctx, corpus, CP_VALID);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_gt(cp_dataset_len(d), 0);
    const bool roll = cc_config_is_roll(cc_model_config(m));
    double sum = 0;
    *count = 0;
    for (int64_t i = 0; i < cp_dataset_len(d); i++) {
        ct_data_item it;
        ct_item_init(&it);
        ck_assert_int_eq(cp_dataset_get(d, i, &it), CT_OK);
        const int64_t T = it.len - 1;
        ct_scope_begin(ctx);
        if (roll) {
            ct_tensor *x = ct_from_f32(ctx, it.values, 3, (const int64_t[]){T, 1, 88});
            ct_tensor *y = ct_from_f32(ctx, it.values + 88, 3, (const int64_t[]){T, 1, 88});
            sum += ct_item(ct_bce_with_logits(cc_forward(m, x, NULL, NULL), y, CT_REDUCE_SUM));
        } else {
            ct_tensor *x = ct_from_i64(ctx, it.tokens, 2, (const int64_t[]){T, 1});
            ct_tensor *y = ct_from_i64(ctx, it.tokens + 1, 1, &T);
            ct_tensor *z = ct_reshape(cc_forward(m, x, NULL, NULL), T, -1);
            sum += ct_item(ct_cross_entropy(z, y, -100)) * (double)T;
        }
        ct_scope_end(ctx);
        *count += T;
        ct_item_free(&it);
    }
    cp_dataset_free(d);
    ct_module_free(m);
    ct_ctx_free(ctx);
    return sum / (double)*count;
}

static double json_num(const char *s, const char *key) {
    char k[64];
    snprintf(k, sizeof k, "\"%s\": ", key);
    const char *p = strstr(s, k);
    ck_assert_msg(p != NULL, "no %s in %s", key, s);
    return strtod(p + strlen(k), NULL);
}

START_TEST(test_eval_matches_direct) {
    SETUP_CHECK();
    static const char *ck[] = {MEL, ROLL, PERF};
    static const char *co[] = {DIR "/melody.corpus", DIR "/pianoroll.corpus", DIR "/performance.corpus"};
    char out[16384], again[16384];
    for (int i = 0; i < 3; i++) {
        int rc = run(out, sizeof out, "eval --ckpt %s --corpus %s --json", ck[i], co[i]);
        ck_assert_msg(rc == 0, "%s", out);
        int64_t count;
        double want = direct_nll(ck[i], co[i], &count);
        double nll = json_num(out, "nll");
        ck_assert_msg(fabs(nll - want) <= 1e-5 * fabs(want), "%s: eval %.9g, direct %.9g", ck[i], nll, want);
        ck_assert_int_eq((int64_t)json_num(out, "count"), count);
        ck_assert_double_eq_tol(json_num(out, "perplexity"), exp(want), 1e-4 * exp(want));
        assert_has(out, i == 1 ? "\"unit\": \"step\"" : "\"unit\": \"token\"");
        assert_has(out, "\"split\": \"valid\"");
        /* chunks and batches change nothing but rounding */
        rc = run(again, sizeof again, "eval --ckpt %s --corpus %s --json --chunk 3 --batch 2", ck[i], co[i]);
        ck_assert_msg(rc == 0, "%s", again);
        ck_assert_double_eq_tol(json_num(again, "nll"), nll, 1e-5 * nll);
        if (i == 1) {   /* deterministic */
            ck_assert_int_eq(run(again, sizeof again, "eval --ckpt %s --corpus %s --json", ck[i], co[i]), 0);
            ck_assert_double_eq(json_num(again, "nll"), nll);
        }
    }
    /* the text form names the unit */
    ck_assert_int_eq(run(out, sizeof out, "eval --ckpt " ROLL " --corpus " DIR "/pianoroll.corpus --split train"), 0);
    assert_has(out, "nats per time step (Bernoulli, summed over the 88 keys");
    assert_has(out, "train split");
    ck_assert_int_eq(run(out, sizeof out, "eval --ckpt " MEL " --corpus " DIR "/melody.corpus"), 0);
    assert_has(out, "nats per token");
    assert_has(out, "perplexity");
}
END_TEST


/* ===== --device ============================================================================== */
START_TEST(test_device_option) {
    SETUP_CHECK();
    char out[16384], again[16384];
    ck_assert_int_eq(run(out, sizeof out, "help sample"), 0);
    assert_has(out, "--device NAME");
    assert_has(out, "(default cpu");
    ck_assert_int_eq(run(out, sizeof out, "help eval"), 0);
    assert_has(out, "--device NAME");
    /* --device cpu is the default: the same bytes, the same figures */
    ck_assert_int_eq(run(out, sizeof out, "sample --ckpt " MEL " --out " DIR "/dev0.mid --seed 11 --length 48"), 0);
    int rc = run(out, sizeof out, "sample --ckpt " MEL " --out " DIR "/dev1.mid --seed 11 --length 48 --device cpu");
    ck_assert_msg(rc == 0, "%s", out);
    ck_assert(same_bytes(DIR "/dev0.mid", DIR "/dev1.mid"));
    ck_assert_int_eq(run(out, sizeof out, "sample --ckpt " ROLL " --out " DIR "/dev2.mid --seed 3 --length 24 --count 2"), 0);
    ck_assert_int_eq(run(out, sizeof out, "sample --ckpt " ROLL " --out " DIR "/dev3.mid --seed 3 --length 24 --count 2 "
                         "--device cpu"), 0);
    ck_assert(same_bytes(DIR "/dev2-001.mid", DIR "/dev3-001.mid"));
    ck_assert(same_bytes(DIR "/dev2-002.mid", DIR "/dev3-002.mid"));
    ck_assert_int_eq(run(out, sizeof out, "eval --ckpt " PERF " --corpus " DIR "/performance.corpus --json"), 0);
    rc = run(again, sizeof again, "eval --ckpt " PERF " --corpus " DIR "/performance.corpus --json --device cpu");
    ck_assert_msg(rc == 0, "%s", again);
    ck_assert_double_eq(json_num(again, "nll"), json_num(out, "nll"));
    /* malformed: a usage error (2) naming the flag */
    static const char *cmds[] = {"sample --ckpt " MEL " --out " DIR "/x.mid", "eval --ckpt " MEL " --corpus " DIR "/melody.corpus"};
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(run(out, sizeof out, "%s --device gpu", cmds[i]), 2);
        assert_has(out, "--device: 'gpu' is not a device: expected cpu, cuda or cuda:N");
        ck_assert_int_eq(run(out, sizeof out, "%s --device", cmds[i]), 2);
        assert_has(out, "--device needs a value");
        /* a device that is not there: 1, with why and what to do, before any work */
        ck_assert_int_eq(run(out, sizeof out, "%s --device cuda:1023", cmds[i]), 1);
        assert_has(out, "--device cuda:1023: ");
        assert_has(out, "with --device cpu (the default)");
    }
    ck_assert(!exists(DIR "/x.mid"));
    char why[256];
    if (!ct_device_available(CT_DEVICE_CUDA(0), why, sizeof why)) {
        printf("sample_eval: skipped — --device cuda:0 on a GPU: %s\n", why);
        for (int i = 0; i < 2; i++) {
            ck_assert_int_eq(run(out, sizeof out, "%s --device cuda:0", cmds[i]), 1);
            assert_has(out, "--device cuda:0: ");
            assert_has(out, why);
            assert_has(out, "--device cpu");
        }
        return;
    }
    /* a GPU: the same figures to float rounding, and samples that decode */
    for (int i = 0; i < 2; i++) {
        const char *ck = i ? ROLL : PERF, *co = i ? DIR "/pianoroll.corpus" : DIR "/performance.corpus";
        ck_assert_int_eq(run(out, sizeof out, "eval --ckpt %s --corpus %s --json", ck, co), 0);
        rc = run(again, sizeof again, "eval --ckpt %s --corpus %s --json --device cuda:0", ck, co);
        ck_assert_msg(rc == 0, "%s", again);
        ck_assert_double_eq_tol(json_num(again, "nll"), json_num(out, "nll"), 1e-4 * json_num(out, "nll"));
    }
    rc = run(out, sizeof out, "sample --ckpt " MEL " --out " DIR "/gpu.mid --seed 11 --length 48 --device cuda:0 --count 3");
    ck_assert_msg(rc == 0, "%s", out);
    cm_notes nt;
    read_notes(DIR "/gpu-001.mid", &nt, NULL);
    cm_notes_free(&nt);
}
END_TEST

/* The host copy of the embedding table that a model on a device samples from (the test hook
 * runs it on the CPU): the same tokens as the parameter itself, at batch 1 and 3, and it
 * follows a change of the weights between steps. */
START_TEST(test_sampler_host_embedding) {
    SETUP_CHECK();
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    ct_module *m = cc_load(ctx, MEL);
    ck_assert_ptr_nonnull(m);
    for (int64_t B = 1; B <= 3; B += 2) {
        ct_rng r1, r2;
        ct_rng_seed(&r1, 5);
        ct_rng_seed(&r2, 5);
        cc_sampler *a = cc_sampler_new(m, B, NULL, &r1), *b = cc_sampler_new(m, B, NULL, &r2);
        ck_assert(a && b);
        cc__sampler_host_embedding(b, true);
        int64_t ta[3], tb[3];
        for (int t = 0; t < 40; t++) {
            if (t == 20) {   /* the weights change between steps: the copy must follow */
                ct_tensor *w = ct_module_param(cc_model_embed(m), "weight");
                ck_assert_int_eq(ct_inplace_scale(w, 1.5f), CT_OK);
            }
            ck_assert_int_eq(cc_sampler_next_tokens(a, ta), CT_OK);
            ck_assert_int_eq(cc_sampler_next_tokens(b, tb), CT_OK);
            for (int64_t i = 0; i < B; i++) ck_assert_int_eq(ta[i], tb[i]);
            const float *la, *lb;
            ck_assert_int_eq(cc_sampler_logits(a, &la), CT_OK);
            ck_assert_int_eq(cc_sampler_logits(b, &lb), CT_OK);
            ck_assert_int_eq(memcmp(la, lb, sizeof(float) * (size_t)(B * cc_model_config(m)->vocab)), 0);
        }
        cc_sampler_free(a);
        cc_sampler_free(b);
    }
    cc__sampler_host_embedding(NULL, true);   /* NULL: a no-op */
    ct_module_free(m);
    ct_ctx_free(ctx);
}
END_TEST

Suite *sample_eval_suite(void) {
    Suite *s = suite_create("sample_eval");
    TCase *tc = tcase_create("sample_eval");
    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, setup_all, teardown_all);
    tcase_add_test(tc, test_help);
    tcase_add_test(tc, test_sample_melody_deterministic);
    tcase_add_test(tc, test_sample_count_and_folders);
    tcase_add_test(tc, test_sample_primer);
    tcase_add_test(tc, test_sample_lengths);
    tcase_add_test(tc, test_sample_render);
    tcase_add_test(tc, test_usage_errors);
    tcase_add_test(tc, test_file_errors);
    tcase_add_test(tc, test_eval_matches_direct);
    tcase_add_test(tc, test_device_option);
    tcase_add_test(tc, test_sampler_host_embedding);
    suite_add_tcase(s, tc);
    return s;
}
