/* tests/corpora/test_corpus.c — corpora/: encodings' configuration, content-hash splits, the
 * folder walk, the build (threads, skips with reasons, duplicates), the corpus file (read back
 * against direct encoding, every corrupt-file error), the dataset through the DataLoader, the
 * music transforms (range edges, determinism) and the default corpus recipe (on a fake dpkg
 * tree). MIDI files are written here with cm_file_from_notes / cm_write_file under tests/tmp/. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "corpora/build.h"
#include "corpora/dataset.h"
#include "corpora/default.h"
#include "corpora/transforms.h"
#include "testutil.h"

/* ==== helpers =================================================================================== */
#define PPQ CM_DEFAULT_PPQ

#define ASSERT_HAS(msg, want) ck_assert_msg(strstr((msg), (want)) != NULL, "message \"%s\" lacks \"%s\"", (msg), (want))

static void mkdirs(const char *path) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(buf, 0755);
            *p = '/';
        }
    mkdir(buf, 0755);
}

/* A fresh temporary folder under tests/tmp (tests run from tests/). */
static void tmpdir(char *buf, size_t n, const char *tag) {
    static int counter = 0;
    snprintf(buf, n, "tmp/corpus_%s_%d_%d", tag, (int)getpid(), counter++);
    tu_rm_rf(buf);
    mkdirs(buf);
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    fclose(f);
}

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long k = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)k + 1);
    ck_assert_uint_eq(fread(b, 1, (size_t)k, f), (size_t)k);
    fclose(f);
    *n = (size_t)k;
    return b;
}

static cm_note note(int pitch, int64_t start_tick, int64_t end_tick, int channel, int velocity) {
    cm_note x;
    memset(&x, 0, sizeof x);
    x.start_tick = start_tick;
    x.end_tick = end_tick;
    x.start_s = (double)start_tick / (2.0 * PPQ);   /* 120 bpm */
    x.end_s = (double)end_tick / (2.0 * PPQ);
    x.pitch = (uint8_t)pitch;
    x.velocity = (uint8_t)velocity;
    x.channel = (uint8_t)channel;
    x.is_drum = channel == CM_DRUM_CHANNEL;
    return x;
}

static void write_notes(const char *path, const cm_note *v, int64_t n) {
    cm_notes notes;
    cm_error err;
    ck_assert_msg(cm_notes_from_array(&notes, v, n, &err) == CM_OK, "%s", err.message);
    cm_file *f = cm_file_from_notes(&notes, NULL, &err);
    ck_assert_msg(f != NULL, "%s", err.message);
    ck_assert_msg(cm_write_file(f, path, NULL, &err) == CM_OK, "%s", err.message);
    cm_file_free(f);
    cm_notes_free(&notes);
}

/* A song: a melody of `bars` bars of quarter notes (channel 0) from a pattern around base, a
 * bass line an octave and a half lower (channel 1) and a drum hit per bar (channel 10). */
static void write_song(const char *path, int base, int bars, int variant) {
    static const int steps[] = {0, 2, 4, 5, 7, 9, 11, 12, 11, 9, 7, 5, 4, 2};
    cm_note v[512];
    int n = 0;
    for (int q = 0; q < bars * 4; q++) {
        int p = base + steps[(q * (variant + 1) + variant) % 14];
        v[n++] = note(p, q * PPQ, (q + 1) * PPQ, 0, 60 + (q * 7 + variant) % 60);
    }
    for (int b = 0; b < bars; b++) {
        v[n++] = note(base - 18 + (b * 5 + variant) % 12, b * 4 * PPQ, (b * 4 + 2) * PPQ, 1, 80);
        v[n++] = note(base - 18 + (b * 3 + 7) % 12, (b * 4 + 2) * PPQ, (b * 4 + 4) * PPQ, 1, 70);
        v[n++] = note(36, b * 4 * PPQ, b * 4 * PPQ + PPQ / 2, CM_DRUM_CHANNEL, 100);
    }
    write_notes(path, v, n);
}

typedef struct fixture {
    char dir[512];   /* outputs go here */
    char src[600];   /* the MIDI folder: dir/songs */
    int n_songs;
} fixture;

/* The test folder: 6 songs in nested folders (odd extensions included), a copy of one (a
 * duplicate), a broken MIDI file, a text file named .mid, a MIDI file too short for a melody,
 * and a README (not MIDI by name). */
static void make_fixture(fixture *fx) {
    tmpdir(fx->dir, sizeof fx->dir, "fx");
    snprintf(fx->src, sizeof fx->src, "%s/songs", fx->dir);
    char p[1024];
    snprintf(p, sizeof p, "%s/a/b", fx->src);
    mkdirs(p);
    static const char *names[] = {"a/song1.mid", "a/b/song2.MID", "song3.midi", "song4.mid", "a/song5.Midi",
                                  "song6.mid"};
    for (int i = 0; i < 6; i++) {
        snprintf(p, sizeof p, "%s/%s", fx->src, names[i]);
        write_song(p, 57 + 2 * i, 8 + i, i);
    }
    fx->n_songs = 6;
    size_t n;
    snprintf(p, sizeof p, "%s/a/song1.mid", fx->src);
    unsigned char *b = read_all(p, &n);
    snprintf(p, sizeof p, "%s/z_copy.mid", fx->src);
    write_bytes(p, b, n);
    snprintf(p, sizeof p, "%s/broken.mid", fx->src);
    write_bytes(p, b, 40);   /* cut inside the first track */
    free(b);
    snprintf(p, sizeof p, "%s/notmidi.mid", fx->src);
    write_bytes(p, "hello, this is not MIDI\n", 24);
    cm_note few[3] = {note(60, 0, PPQ, 0, 90), note(62, PPQ, 2 * PPQ, 0, 90), note(64, 2 * PPQ, 3 * PPQ, 0, 90)};
    snprintf(p, sizeof p, "%s/short.mid", fx->src);
    write_notes(p, few, 3);
    snprintf(p, sizeof p, "%s/README.txt", fx->src);
    write_bytes(p, "songs\n", 6);
}

static void build_ok(const char *dir, const char *out, cp_build_opts *o, cp_stats *st) {
    cp_error err;
    ct_status s = cp_build_dir(dir, out, o, st, &err);
    ck_assert_msg(s == CT_OK, "build: %s", err.message);
}

static cp_corpus *open_ok(const char *path) {
    cp_corpus *c = NULL;
    cp_error err;
    ck_assert_msg(cp_corpus_open(path, &c, &err) == CT_OK, "open: %s", err.message);
    return c;
}

static const cp_skip *find_skip(const cp_stats *st, const char *name) {
    for (int64_t i = 0; i < st->n_skips; i++)
        if (strcmp(st->skips[i].name, name) == 0) return &st->skips[i];
    return NULL;
}

/* ==== encodings, hashes, splits ================================================================ */
START_TEST(test_encoding_config) {
    cp_encoding m = cp_encoding_default(CP_MELODY), p = cp_encoding_default(CP_PERFORMANCE),
                r = cp_encoding_default(CP_PIANOROLL);
    ck_assert_int_eq(cp_encoding_vocab(&m), 38);
    ck_assert_int_eq(cp_encoding_vocab(&p), 388);
    ck_assert_int_eq(cp_encoding_vocab(&r), 88);
    ck_assert(cp_encoding_is_tokens(&m) && cp_encoding_is_tokens(&p) && !cp_encoding_is_tokens(&r));
    ck_assert(!m.sustain && p.sustain && !r.sustain);
    ck_assert_int_eq(m.min_steps, 2);
    ck_assert_int_eq(r.roll_grid.steps_per_quarter, 4);
    cp_error err;
    ck_assert_int_eq(cp_encoding_check(&m, &err), CT_OK);
    ck_assert_int_eq(cp_encoding_check(&p, &err), CT_OK);
    ck_assert_int_eq(cp_encoding_check(&r, &err), CT_OK);
    ck_assert_str_eq(cp_encoding_name(CP_PIANOROLL), "pianoroll");
    cp_encoding_kind k;
    ck_assert(cp_encoding_parse("Performance", &k) && k == CP_PERFORMANCE);
    ck_assert(cp_encoding_parse("piano-roll", &k) && k == CP_PIANOROLL);
    ck_assert(!cp_encoding_parse("lyrics", &k));
    /* each bad field named */
    cp_encoding bad = m;
    bad.melody.range.max_pitch = 50;
    ck_assert_int_eq(cp_encoding_check(&bad, &err), CT_E_ARG);
    ASSERT_HAS(err.message, "less than an octave");
    bad = m;
    bad.melody.steps_per_quarter = 0;
    ck_assert_int_eq(cp_encoding_check(&bad, &err), CT_E_ARG);
    ASSERT_HAS(err.message, "0 steps per quarter");
    bad = p;
    bad.perf.config.max_shift_steps = 0;
    ck_assert_int_eq(cp_encoding_check(&bad, &err), CT_E_ARG);
    ASSERT_HAS(err.message, "0 shift steps");
    bad = p;
    bad.perf_split_silence_s = -1;
    ck_assert_int_eq(cp_encoding_check(&bad, &err), CT_E_ARG);
    bad = r;
    bad.roll_grid.steps_per_second = 10;
    ck_assert_int_eq(cp_encoding_check(&bad, &err), CT_E_ARG);
    ASSERT_HAS(err.message, "exactly one");
    bad = cp_encoding_default((cp_encoding_kind)9);
    ck_assert_int_eq(cp_encoding_check(&bad, &err), CT_E_ARG);
    bad = m;
    bad.min_steps = 0;
    ck_assert_int_eq(cp_encoding_check(&bad, &err), CT_E_ARG);
    ASSERT_HAS(err.message, "min_steps");
    char d[512];
    cp_encoding_describe(&m, d, sizeof d);
    ASSERT_HAS(d, "melody 48..83 (38 classes)");
    cp_encoding_describe(&p, d, sizeof d);
    ASSERT_HAS(d, "388 classes");
    cp_encoding_describe(&r, d, sizeof d);
    ASSERT_HAS(d, "4 steps per quarter");
}
END_TEST

START_TEST(test_hash_and_split) {
    /* FNV-1a 64 reference values */
    ck_assert_uint_eq(cp_hash_bytes("", 0), 0xcbf29ce484222325ULL);
    ck_assert_uint_eq(cp_hash_bytes("a", 1), 0xaf63dc4c8601ec8cULL);
    ck_assert_uint_eq(cp_hash_bytes("foobar", 6), 0x85944171f73967e8ULL);
    ck_assert_uint_eq(cp_hash_update(cp_hash_bytes("foo", 3), "bar", 3), cp_hash_bytes("foobar", 6));
    int count[3] = {0};
    for (uint64_t i = 0; i < 20000; i++) {
        uint64_t h = cp_hash_bytes(&i, sizeof i);
        count[cp_split_of_hash(h, 10, 10)]++;
        ck_assert_int_eq(cp_split_of_hash(h, 0, 0), CP_TRAIN);
        ck_assert_int_eq(cp_split_of_hash(h, 0, 100), CP_TEST);
        ck_assert_int_eq(cp_split_of_hash(h, 100, 0), CP_VALID);
    }
    ck_assert_msg(count[0] > 15600 && count[0] < 16400, "train %d of 20000", count[0]);
    ck_assert_msg(count[1] > 1700 && count[1] < 2300, "valid %d of 20000", count[1]);
    ck_assert_msg(count[2] > 1700 && count[2] < 2300, "test %d of 20000", count[2]);
    ck_assert_str_eq(cp_split_name(CP_VALID), "valid");
    cp_split s;
    ck_assert(cp_split_parse("validation", &s) && s == CP_VALID);
    ck_assert(cp_split_parse("ALL", &s) && s == CP_SPLIT_ALL);
    ck_assert(!cp_split_parse("dev", &s));
}
END_TEST

START_TEST(test_sources_walk) {
    fixture fx;
    make_fixture(&fx);
    ck_assert(cp_is_midi_name("x.MID") && cp_is_midi_name("a/b.midi") && cp_is_midi_name("c.MiDi"));
    ck_assert(!cp_is_midi_name("x.mid.txt") && !cp_is_midi_name(".mid") && !cp_is_midi_name("mid"));
    cp_sources s = {0};
    cp_error err;
    ck_assert_int_eq(cp_sources_add_dir(&s, fx.src, "pre/", &err), CT_OK);
    ck_assert_int_eq(s.n, 10);   /* 6 songs, the copy, broken, notmidi, short */
    ck_assert_int_eq(s.ignored, 1);
    bool found = false;
    for (int64_t i = 0; i < s.n; i++)
        if (strcmp(s.items[i].name, "pre/a/b/song2.MID") == 0) {
            found = true;
            ASSERT_HAS(s.items[i].path, "/a/b/song2.MID");
        }
    ck_assert(found);
    cp_sources_free(&s);
    cp_sources_free(&s);
    char missing[600];
    snprintf(missing, sizeof missing, "%s/nowhere", fx.dir);
    ck_assert_int_eq(cp_sources_add_dir(&s, missing, NULL, &err), CT_E_IO);
    ASSERT_HAS(err.message, "nowhere");
    ASSERT_HAS(err.message, "expected a folder of MIDI files");
    cp_sources_free(&s);
    tu_rm_rf(fx.dir);
}
END_TEST

/* ==== the build ================================================================================= */
START_TEST(test_build_threads_identical_and_skips) {
    fixture fx;
    make_fixture(&fx);
    char out1[600], out3[600];
    snprintf(out1, sizeof out1, "%s/one.corpus", fx.dir);
    snprintf(out3, sizeof out3, "%s/three.corpus", fx.dir);
    cp_build_opts o = cp_build_defaults(CP_MELODY);
    o.threads = 1;
    cp_stats s1, s3;
    build_ok(fx.src, out1, &o, &s1);
    o.threads = 3;
    o.window = 1;   /* workers wait for the writer */
    build_ok(fx.src, out3, &o, &s3);
    size_t n1, n3;
    unsigned char *a = read_all(out1, &n1), *b = read_all(out3, &n3);
    ck_assert_uint_eq(n1, n3);
    ck_assert_msg(memcmp(a, b, n1) == 0, "1 and 3 threads wrote different files");
    free(a);
    free(b);
    o.window = 0;
    o.threads = 3;
    cp_stats_free(&s3);
    build_ok(fx.src, out3, &o, &s3);   /* overwrites atomically */
    a = read_all(out3, &n3);
    ck_assert_uint_eq(n3, n1);
    free(a);
    /* the counts */
    ck_assert_int_eq(s1.files_found, 10);
    ck_assert_int_eq(s1.files_ignored, 1);
    ck_assert_int_eq(s1.files_used, 6);
    ck_assert_int_eq(s1.files_failed, 2);
    ck_assert_int_eq(s1.files_empty, 1);
    ck_assert_int_eq(s1.files_duplicate, 1);
    ck_assert_int_eq(s1.n_skips, 4);
    ck_assert_int_eq(s1.files_used + s1.files_failed + s1.files_empty + s1.files_duplicate, s1.files_found);
    /* each skip with its reason */
    const cp_skip *k = find_skip(&s1, "broken.mid");
    ck_assert(k && k->kind == CP_SKIP_FAILED);
    ASSERT_HAS(k->reason, "broken.mid: byte");
    k = find_skip(&s1, "notmidi.mid");
    ck_assert(k && k->kind == CP_SKIP_FAILED);
    ASSERT_HAS(k->reason, "not a Standard MIDI File");
    k = find_skip(&s1, "short.mid");
    ck_assert(k && k->kind == CP_SKIP_EMPTY);
    ASSERT_HAS(k->reason, "no melody of at least 7 bars");
    ASSERT_HAS(k->reason, "1 too short");
    k = find_skip(&s1, "z_copy.mid");
    ck_assert(k && k->kind == CP_SKIP_DUPLICATE);
    ASSERT_HAS(k->reason, "the same bytes as a/song1.mid");
    /* skips are in name order */
    for (int64_t i = 1; i < s1.n_skips; i++) ck_assert(strcmp(s1.skips[i - 1].name, s1.skips[i].name) < 0);
    int64_t pieces = s1.pieces[0] + s1.pieces[1] + s1.pieces[2];
    ck_assert_int_ge(pieces, 6);
    /* the file keeps the same statistics and reasons */
    cp_corpus *c = open_ok(out1);
    ck_assert_int_eq(cp_corpus_num_pieces(c), pieces);
    cp_stats back;
    cp_error err;
    ck_assert_int_eq(cp_corpus_stats(c, &back, &err), CT_OK);
    ck_assert_int_eq(back.files_found, 10);
    ck_assert_int_eq(back.files_used, 6);
    ck_assert_int_eq(back.n_skips, 4);
    for (int64_t i = 0; i < 4; i++) {
        ck_assert_str_eq(back.skips[i].name, s1.skips[i].name);
        ck_assert_str_eq(back.skips[i].reason, s1.skips[i].reason);
        ck_assert_int_eq(back.skips[i].kind, s1.skips[i].kind);
    }
    ck_assert_mem_eq(back.pitch_hist, s1.pitch_hist, sizeof back.pitch_hist);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(back.steps[i], s1.steps[i]);
        ck_assert_int_eq(cp_corpus_split_pieces(c, (cp_split)i), s1.pieces[i]);
        ck_assert_int_eq(cp_corpus_split_steps(c, (cp_split)i), s1.steps[i]);
        ck_assert(back.seconds[i] == s1.seconds[i]);
    }
    ck_assert_int_eq(cp_corpus_split_pieces(c, CP_SPLIT_ALL), pieces);
    ck_assert_int_eq(cp_corpus_verify(c, &err), CT_OK);
    /* the histogram counts the encoded note-ons */
    int64_t onsets = 0, want = 0;
    for (int p = 0; p < 128; p++) onsets += s1.pitch_hist[p];
    for (int64_t i = 0; i < pieces; i++) {
        const cp_piece *x = cp_corpus_piece(c, i);
        int32_t *t = malloc((size_t)x->len * sizeof *t);
        ck_assert_int_eq(cp_corpus_read_tokens(c, i, t, &err), CT_OK);
        for (int64_t j = 0; j < x->len; j++) want += t[j] >= 2;
        free(t);
    }
    ck_assert_int_eq(onsets, want);
    cp_stats_free(&back);
    cp_corpus_close(c);
    /* dedupe off: the copy is a piece of its own, in the same split as its original */
    o.dedupe = false;
    o.threads = 2;
    cp_stats s2;
    build_ok(fx.src, out3, &o, &s2);
    ck_assert_int_eq(s2.files_used, 7);
    ck_assert_int_eq(s2.files_duplicate, 0);
    c = open_ok(out3);
    cp_split orig = CP_SPLIT_ALL, copy = CP_SPLIT_ALL;
    for (int64_t i = 0; i < cp_corpus_num_pieces(c); i++) {
        const cp_piece *x = cp_corpus_piece(c, i);
        if (!strcmp(x->name, "a/song1.mid")) orig = x->split;
        if (!strcmp(x->name, "z_copy.mid")) copy = x->split;
    }
    ck_assert_int_ne(orig, CP_SPLIT_ALL);
    ck_assert_int_eq(orig, copy);
    cp_corpus_close(c);
    cp_stats_free(&s1);
    cp_stats_free(&s2);
    cp_stats_free(&s3);
    tu_rm_rf(fx.dir);
}
END_TEST

static int progress_calls;
static void on_progress(void *ud, int64_t done, int64_t total, const char *name) {
    (void)name;
    ck_assert_int_eq(done, ++progress_calls);
    ck_assert_int_eq(total, *(int64_t *)ud);
}

/* The split comes from the bytes: renamed and moved files keep theirs. */
START_TEST(test_split_by_content) {
    fixture fx;
    make_fixture(&fx);
    char out[600], moved[600], out2[700], p[1024], q[1024];
    snprintf(out, sizeof out, "%s/c.corpus", fx.dir);
    cp_build_opts o = cp_build_defaults(CP_PERFORMANCE);
    o.valid_pct = 35;   /* spread 6 files over all three splits */
    o.test_pct = 35;
    int64_t total = 10;
    o.progress = on_progress;
    o.progress_userdata = &total;
    progress_calls = 0;
    cp_stats st;
    build_ok(fx.src, out, &o, &st);
    ck_assert_int_eq(progress_calls, 10);
    cp_corpus *c = open_ok(out);
    ck_assert_int_eq(cp_corpus_valid_pct(c), 35);
    ck_assert_int_eq(cp_corpus_test_pct(c), 35);
    int seen[3] = {0};
    for (int64_t i = 0; i < cp_corpus_num_pieces(c); i++) {
        const cp_piece *x = cp_corpus_piece(c, i);
        snprintf(p, sizeof p, "%s/%s", fx.src, x->name);
        size_t n;
        unsigned char *b = read_all(p, &n);
        uint64_t h = cp_hash_bytes(b, n);
        free(b);
        ck_assert_uint_eq(x->content_hash, h);
        ck_assert_int_eq(x->split, cp_split_of_hash(h, 35, 35));
        seen[x->split]++;
    }
    ck_assert_msg(seen[0] && seen[1] && seen[2], "splits %d %d %d: expected all three", seen[0], seen[1], seen[2]);
    /* rename and move every song: each keeps its split and its tokens */
    snprintf(moved, sizeof moved, "%s_moved", fx.dir);
    mkdirs(moved);
    for (int64_t i = 0; i < cp_corpus_num_pieces(c); i++) {
        const cp_piece *x = cp_corpus_piece(c, i);
        snprintf(p, sizeof p, "%s/%s", fx.src, x->name);
        snprintf(q, sizeof q, "%s/renamed_%lld.mid", moved, (long long)(9 - i));
        size_t n;
        unsigned char *b = read_all(p, &n);
        write_bytes(q, b, n);
        free(b);
    }
    snprintf(out2, sizeof out2, "%s/c.corpus", moved);
    cp_stats st2;
    o.progress = NULL;
    build_ok(moved, out2, &o, &st2);
    cp_corpus *c2 = open_ok(out2);
    ck_assert_int_eq(cp_corpus_num_pieces(c2), cp_corpus_num_pieces(c));
    cp_error err;
    for (int64_t i = 0; i < cp_corpus_num_pieces(c); i++) {
        const cp_piece *x = cp_corpus_piece(c, i);
        const cp_piece *y = NULL;
        for (int64_t j = 0; j < cp_corpus_num_pieces(c2); j++)
            if (cp_corpus_piece(c2, j)->content_hash == x->content_hash) y = cp_corpus_piece(c2, j);
        ck_assert(y != NULL);
        ck_assert_int_eq(y->split, x->split);
        ck_assert_int_eq(y->len, x->len);
        int32_t *t1 = malloc((size_t)x->len * 4), *t2 = malloc((size_t)x->len * 4);
        ck_assert_int_eq(cp_corpus_read_tokens(c, x->id, t1, &err), CT_OK);
        ck_assert_int_eq(cp_corpus_read_tokens(c2, y->id, t2, &err), CT_OK);
        ck_assert_mem_eq(t1, t2, (size_t)x->len * 4);
        free(t1);
        free(t2);
    }
    cp_corpus_close(c);
    cp_corpus_close(c2);
    cp_stats_free(&st);
    cp_stats_free(&st2);
    tu_rm_rf(moved);
    tu_rm_rf(fx.dir);
}
END_TEST

/* Notes and tempo map of a MIDI file, read directly with audio/. */
static void file_notes(const char *path, bool sustain, cm_notes *notes, cm_tempo_map *tm) {
    cm_error err;
    cm_file *f = NULL;
    ck_assert_msg(cm_read_file(path, &f, &err) == CM_OK, "%s", err.message);
    cm_notes_opts no = {.sustain = sustain, .skip_drums = false};
    ck_assert_int_eq(cm_tempo_map_init(tm, f, -1, &err), CM_OK);
    ck_assert_int_eq(cm_notes_extract(f, &no, notes, &err), CM_OK);
    cm_file_free(f);
}

/* The pieces of `name` in corpus c, in order: ids into *ids, count returned. */
static int pieces_of(const cp_corpus *c, const char *name, int64_t *ids) {
    int n = 0;
    for (int64_t i = 0; i < cp_corpus_num_pieces(c); i++)
        if (!strcmp(cp_corpus_piece(c, i)->name, name)) {
            ck_assert_int_eq(cp_corpus_piece(c, i)->piece, n);
            ids[n++] = i;
        }
    return n;
}

START_TEST(test_read_back_matches_direct_encoding) {
    fixture fx;
    make_fixture(&fx);
    static const char *songs[] = {"a/b/song2.MID", "a/song1.mid", "a/song5.Midi", "song3.midi", "song4.mid",
                                  "song6.mid"};
    for (int kind = CP_MELODY; kind <= CP_PIANOROLL; kind++) {
        char out[600];
        snprintf(out, sizeof out, "%s/%s.corpus", fx.dir, cp_encoding_name((cp_encoding_kind)kind));
        cp_build_opts o = cp_build_defaults((cp_encoding_kind)kind);
        cp_stats st;
        build_ok(fx.src, out, &o, &st);
        cp_corpus *c = open_ok(out);
        ck_assert_int_eq(cp_corpus_version(c), CP_VERSION);
        ck_assert_int_eq(cp_corpus_encoding(c)->kind, kind);
        ck_assert_int_eq(cp_corpus_encoding(c)->sustain, o.encoding.sustain);
        ck_assert_int_eq(cp_corpus_vocab(c), cp_encoding_vocab(&o.encoding));
        ck_assert_str_eq(cp_corpus_path(c), out);
        cp_error err;
        int64_t notes_total = 0;
        for (int si = 0; si < 6; si++) {
            char path[1024];
            snprintf(path, sizeof path, "%s/%s", fx.src, songs[si]);
            cm_notes notes;
            cm_tempo_map tm;
            file_notes(path, o.encoding.sustain, &notes, &tm);
            notes_total += notes.n_notes;
            int64_t ids[64];
            int n = pieces_of(c, songs[si], ids);
            cm_error ce;
            if (kind == CP_MELODY) {
                cm_melodies ms;
                ck_assert_int_eq(cm_melody_extract(&notes, &tm, &o.encoding.melody, &ms, &ce), CM_OK);
                ck_assert_int_eq(n, ms.n_melodies);
                ck_assert_int_ge(n, 1);
                for (int k = 0; k < n; k++) {
                    int32_t *want;
                    int64_t nw;
                    ck_assert_int_eq(cm_melody_encode(&ms.melodies[k], o.encoding.melody.range, &want, &nw, &ce),
                                     CM_OK);
                    const cp_piece *x = cp_corpus_piece(c, ids[k]);
                    ck_assert_int_eq(x->len, nw);
                    ck_assert_int_eq(x->start, ms.melodies[k].start_step);
                    ck_assert_int_eq(x->instrument, ms.melodies[k].instrument);
                    /* 120 bpm, 16th notes: an eighth of a second per step */
                    ck_assert_double_eq_tol(x->duration_s, nw * 0.125, 1e-9);
                    int32_t *got = malloc((size_t)nw * 4);
                    int64_t *got64 = malloc((size_t)nw * 8);
                    ck_assert_int_eq(cp_corpus_read_tokens(c, ids[k], got, &err), CT_OK);
                    ck_assert_int_eq(cp_corpus_read_tokens64(c, ids[k], got64, &err), CT_OK);
                    ck_assert_mem_eq(got, want, (size_t)nw * 4);
                    for (int64_t j = 0; j < nw; j++) ck_assert_int_eq(got64[j], want[j]);
                    free(got);
                    free(got64);
                    free(want);
                }
                cm_melodies_free(&ms);
                ck_assert_int_eq(cp_corpus_read_frames(c, ids[0], NULL, &err), CT_E_ARG);
                ASSERT_HAS(err.message, "holds tokens, not frames");
            } else if (kind == CP_PERFORMANCE) {
                int32_t *want;
                int64_t nw;
                cm_perf_encode_stats pst;
                ck_assert_int_eq(cm_perf_encode(&notes, &o.encoding.perf, &want, &nw, &pst, &ce), CM_OK);
                ck_assert_int_eq(n, 1);
                const cp_piece *x = cp_corpus_piece(c, ids[0]);
                ck_assert_int_eq(x->len, nw);
                ck_assert_int_eq(x->instrument, -1);
                ck_assert_double_eq_tol(x->duration_s, pst.steps / 100.0, 1e-9);
                int32_t *got = malloc((size_t)nw * 4);
                ck_assert_int_eq(cp_corpus_read_tokens(c, ids[0], got, &err), CT_OK);
                ck_assert_mem_eq(got, want, (size_t)nw * 4);
                free(got);
                free(want);
            } else {
                cm_roll roll;
                cm_roll_stats rs;
                ck_assert_int_eq(cm_roll_from_notes(&notes, &tm, o.encoding.roll_grid, false, &roll, &rs, &ce), CM_OK);
                ck_assert_int_eq(n, 1);
                const cp_piece *x = cp_corpus_piece(c, ids[0]);
                ck_assert_int_eq(x->len, roll.n_steps);
                ck_assert_double_eq_tol(x->duration_s, roll.n_steps * 0.125, 1e-9);
                uint8_t *got = malloc((size_t)roll.n_steps * 88);
                float *gotf = malloc((size_t)roll.n_steps * 88 * sizeof(float));
                ck_assert_int_eq(cp_corpus_read_frames(c, ids[0], got, &err), CT_OK);
                ck_assert_int_eq(cp_corpus_read_frames_f32(c, ids[0], gotf, &err), CT_OK);
                for (int64_t j = 0; j < roll.n_steps * 88; j++) {
                    ck_assert_int_eq(got[j], roll.frames[j] ? 1 : 0);
                    ck_assert(gotf[j] == (float)got[j]);
                }
                free(got);
                free(gotf);
                cm_roll_free(&roll);
                ck_assert_int_eq(cp_corpus_read_tokens(c, ids[0], NULL, &err), CT_E_ARG);
            }
            cm_notes_free(&notes);
            cm_tempo_map_free(&tm);
        }
        /* short.mid (3 notes) gives no melody, but a performance and a roll */
        ck_assert_int_eq(st.notes, notes_total + (kind == CP_MELODY ? 0 : 3));
        ck_assert_int_eq(st.files_used, kind == CP_MELODY ? 6 : 7);
        ck_assert_int_eq(cp_corpus_verify(c, &err), CT_OK);
        ck_assert(cp_corpus_piece(c, -1) == NULL && cp_corpus_piece(c, cp_corpus_num_pieces(c)) == NULL);
        ck_assert_int_eq(cp_corpus_read_tokens(c, 99999, NULL, &err), CT_E_ARG);
        cp_corpus_close(c);
        cp_stats_free(&st);
    }
    tu_rm_rf(fx.dir);
}
END_TEST

/* Performance pieces cut at long silences, each from its first note. */
START_TEST(test_performance_split_at_silences) {
    char dir[512], p[1024];
    tmpdir(dir, sizeof dir, "silence");
    /* two phrases (notes at 1 s and 2 s, then 10 s and 10.5 s), 6.5 s apart */
    cm_note v[4] = {note(60, 2 * PPQ, 3 * PPQ, 0, 90), note(64, 4 * PPQ, 5 * PPQ, 0, 90),
                    note(67, 20 * PPQ, 21 * PPQ, 0, 90), note(72, 21 * PPQ, 22 * PPQ, 0, 90)};
    snprintf(p, sizeof p, "%s/two.mid", dir);
    write_notes(p, v, 4);
    snprintf(p, sizeof p, "%s/s.corpus", dir);
    cp_build_opts o = cp_build_defaults(CP_PERFORMANCE);
    o.encoding.perf_split_silence_s = 3.0;
    cp_stats st;
    build_ok(dir, p, &o, &st);
    cp_corpus *c = open_ok(p);
    ck_assert_int_eq(cp_corpus_num_pieces(c), 2);
    cp_error err;
    /* each: VELOCITY, NOTE_ON, TIME_SHIFT(100), NOTE_OFF, ... with no leading shift */
    const int64_t starts[2] = {100, 1000};
    const int pitches[2] = {60, 67};
    for (int k = 0; k < 2; k++) {
        const cp_piece *x = cp_corpus_piece(c, k);
        ck_assert_int_eq(x->piece, k);
        ck_assert_int_eq(x->start, starts[k]);
        int32_t t[16];
        ck_assert_int_le(x->len, 16);
        ck_assert_int_eq(cp_corpus_read_tokens(c, k, t, &err), CT_OK);
        ck_assert_int_ge(t[0], CM_PERF_VELOCITY_OFFSET);
        ck_assert_int_eq(t[1], CM_PERF_NOTE_ON_OFFSET + pitches[k]);
    }
    ck_assert_double_eq_tol(cp_corpus_piece(c, 0)->duration_s, 1.5, 1e-9);
    ck_assert_double_eq_tol(cp_corpus_piece(c, 1)->duration_s, 1.0, 1e-9);
    cp_corpus_close(c);
    cp_stats_free(&st);
    /* without the cut: one piece from time 0 */
    o.encoding.perf_split_silence_s = 0;
    build_ok(dir, p, &o, &st);
    c = open_ok(p);
    ck_assert_int_eq(cp_corpus_num_pieces(c), 1);
    int32_t t[64];
    ck_assert_int_eq(cp_corpus_read_tokens(c, 0, t, &err), CT_OK);
    ck_assert_int_eq(t[0], CM_PERF_TIME_SHIFT_OFFSET + 99);   /* 1 s of leading silence */
    cp_corpus_close(c);
    cp_stats_free(&st);
    tu_rm_rf(dir);
}
END_TEST

START_TEST(test_build_errors) {
    fixture fx;
    make_fixture(&fx);
    char out[600], p[1024];
    snprintf(out, sizeof out, "%s/x.corpus", fx.dir);
    cp_build_opts o = cp_build_defaults(CP_MELODY);
    cp_stats st;
    cp_error err;
    o.threads = 0;
    ck_assert_int_eq(cp_build_dir(fx.src, out, &o, &st, &err), CT_E_ARG);
    ASSERT_HAS(err.message, "0 threads");
    o = cp_build_defaults(CP_MELODY);
    o.valid_pct = 60;
    o.test_pct = 50;
    ck_assert_int_eq(cp_build_dir(fx.src, out, &o, &st, &err), CT_E_ARG);
    o = cp_build_defaults(CP_MELODY);
    o.encoding.melody.steps_per_quarter = -1;
    ck_assert_int_eq(cp_build_dir(fx.src, out, &o, &st, &err), CT_E_ARG);
    /* a folder without MIDI files */
    snprintf(p, sizeof p, "%s/empty", fx.dir);
    mkdirs(p);
    o = cp_build_defaults(CP_MELODY);
    ck_assert_int_eq(cp_build_dir(p, out, &o, &st, &err), CT_E_ARG);
    ASSERT_HAS(err.message, "no MIDI files");
    /* only bad files: nothing written, an existing corpus left as it was */
    write_bytes(out, "keep me", 7);
    snprintf(p, sizeof p, "%s/bad", fx.dir);
    mkdirs(p);
    snprintf(p, sizeof p, "%s/bad/x.mid", fx.dir);
    write_bytes(p, "nope", 4);
    snprintf(p, sizeof p, "%s/bad", fx.dir);
    ck_assert_int_eq(cp_build_dir(p, out, &o, &st, &err), CT_E_FORMAT);
    ASSERT_HAS(err.message, "none of the 1 MIDI files gave a sequence (1 failed");
    ASSERT_HAS(err.message, "x.mid");
    ck_assert_int_eq(st.files_failed, 1);
    cp_stats_free(&st);
    size_t n;
    unsigned char *b = read_all(out, &n);
    ck_assert_uint_eq(n, 7);
    ck_assert_mem_eq(b, "keep me", 7);
    free(b);
    /* an output folder that does not exist */
    snprintf(p, sizeof p, "%s/no/such/dir/x.corpus", fx.dir);
    ck_assert_int_eq(cp_build_dir(fx.src, p, &o, &st, &err), CT_E_IO);
    ASSERT_HAS(err.message, "cannot create the temporary file");
    cp_stats_free(&st);
    /* two sources of one name */
    cp_sources s = {0};
    snprintf(p, sizeof p, "%s/a/song1.mid", fx.src);
    cp_sources_add_file(&s, p, "same.mid", &err);
    snprintf(p, sizeof p, "%s/song3.midi", fx.src);
    cp_sources_add_file(&s, p, "same.mid", &err);
    ck_assert_int_eq(cp_build(&s, out, &o, &st, &err), CT_E_ARG);
    ASSERT_HAS(err.message, "both named \"same.mid\"");
    cp_sources_free(&s);
    cp_stats_free(&st);
    /* no temporary files left behind */
    DIR *d = opendir(fx.dir);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) ck_assert_msg(!strstr(de->d_name, ".tmp."), "left behind: %s", de->d_name);
    closedir(d);
    tu_rm_rf(fx.dir);
}
END_TEST

START_TEST(test_extract_api) {
    cp_encoding e = cp_encoding_default(CP_MELODY);
    cp_extracted x;
    cp_error err;
    ck_assert_int_eq(cp_extract_mem("MThd", 4, "four.mid", &e, &x, &err), CT_E_FORMAT);
    ASSERT_HAS(err.message, "four.mid");
    ck_assert_int_eq(x.n, 0);
    cm_notes none;
    memset(&none, 0, sizeof none);
    ck_assert_int_eq(cp_extract_notes(&none, NULL, &e, &x, &err), CT_OK);
    ck_assert_int_eq(x.n, 0);
    ck_assert_str_eq(x.why_empty, "no notes in the file");
    cp_extracted_free(&x);
    /* min_steps: a 2-bar melody (32 steps) is left out at 33 and counted */
    cm_note v[8];
    for (int i = 0; i < 8; i++) v[i] = note(60 + i, i * PPQ, (i + 1) * PPQ, 0, 90);
    cm_notes notes;
    cm_error ce;
    ck_assert_int_eq(cm_notes_from_array(&notes, v, 8, &ce), CM_OK);
    e.melody.min_bars = 0;
    ck_assert_int_eq(cp_extract_notes(&notes, NULL, &e, &x, &err), CT_OK);
    ck_assert_int_eq(x.n, 1);
    ck_assert_int_eq(x.seqs[0].len, 32);
    ck_assert_double_eq_tol(x.seqs[0].duration_s, 4.0, 1e-9);
    cp_extracted_free(&x);
    e.min_steps = 33;
    ck_assert_int_eq(cp_extract_notes(&notes, NULL, &e, &x, &err), CT_OK);
    ck_assert_int_eq(x.n, 0);
    ck_assert_int_eq(x.too_short, 1);
    ASSERT_HAS(x.why_empty, "1 shorter than 33 steps");
    cp_extracted_free(&x);
    /* piano roll: notes outside the keys only */
    cp_encoding r = cp_encoding_default(CP_PIANOROLL);
    cm_notes low;
    cm_note lv[1] = {note(10, 0, PPQ, 0, 90)};
    ck_assert_int_eq(cm_notes_from_array(&low, lv, 1, &ce), CM_OK);
    ck_assert_int_eq(cp_extract_notes(&low, NULL, &r, &x, &err), CT_OK);
    ck_assert_int_eq(x.n, 0);
    ASSERT_HAS(x.why_empty, "1 outside 21..108");
    cp_extracted_free(&x);
    cm_notes_free(&low);
    cm_notes_free(&notes);
}
END_TEST

/* Every field of every encoding's configuration survives the file; the other kinds' fields
 * are stored as their defaults. */
START_TEST(test_config_round_trip) {
    char dir[512], path[600];
    tmpdir(dir, sizeof dir, "config");
    snprintf(path, sizeof path, "%s/c.corpus", dir);
    cp_encoding m = cp_encoding_default(CP_MELODY);
    m.sustain = true;
    m.min_steps = 17;
    m.melody.range = (cm_melody_encoding){36, 97};
    m.melody.steps_per_quarter = 3;
    m.melody.steps_per_bar = 9;
    m.melody.range_mode = CM_MELODY_RANGE_DROP;
    m.melody.gap_bars = 2.5;
    m.melody.min_bars = 2;
    m.melody.min_unique_pitches = 3;
    m.melody.max_steps_discard = 1000;
    m.melody.max_steps_truncate = 500;
    m.melody.pad_end = true;
    m.melody.keep_drums = true;
    m.perf.config.max_shift_steps = 7;   /* not melody's: stored as the default */
    cp_encoding p = cp_encoding_default(CP_PERFORMANCE);
    p.sustain = false;
    p.perf.config = (cm_perf_config){50, 20, 0};
    p.perf.include_drums = true;
    p.perf_split_silence_s = 2.25;
    cp_encoding r = cp_encoding_default(CP_PIANOROLL);
    r.roll_grid = (cm_roll_grid){.steps_per_second = 31.25, .steps_per_quarter = 0};
    r.roll_include_drums = true;
    const cp_encoding *all[3] = {&m, &p, &r};
    const int vocab[3] = {63, 276, 88};
    for (int k = 0; k < 3; k++) {
        cp_writer *w;
        cp_error err;
        ck_assert_msg(cp_writer_open(&w, path, all[k], 5, 15, &err) == CT_OK, "%s", err.message);
        ck_assert_int_eq(cp_writer_finish(w, NULL, &err), CT_OK);
        cp_corpus *c = open_ok(path);
        const cp_encoding *e = cp_corpus_encoding(c);
        const cp_encoding *x = all[k];
        cp_encoding d = cp_encoding_default(x->kind);
        ck_assert_int_eq(cp_corpus_vocab(c), vocab[k]);
        ck_assert_int_eq(cp_corpus_num_pieces(c), 0);
        ck_assert_int_eq(e->kind, x->kind);
        ck_assert_int_eq(e->sustain, x->sustain);
        ck_assert_int_eq(e->min_steps, x->min_steps);
        const cm_melody_opts *em = &e->melody, *xm = x->kind == CP_MELODY ? &x->melody : &d.melody;
        ck_assert_int_eq(em->range.min_pitch, xm->range.min_pitch);
        ck_assert_int_eq(em->range.max_pitch, xm->range.max_pitch);
        ck_assert_int_eq(em->steps_per_quarter, xm->steps_per_quarter);
        ck_assert_int_eq(em->steps_per_bar, xm->steps_per_bar);
        ck_assert_int_eq(em->range_mode, xm->range_mode);
        ck_assert_double_eq(em->gap_bars, xm->gap_bars);
        ck_assert_int_eq(em->min_bars, xm->min_bars);
        ck_assert_int_eq(em->min_unique_pitches, xm->min_unique_pitches);
        ck_assert_int_eq(em->max_steps_discard, xm->max_steps_discard);
        ck_assert_int_eq(em->max_steps_truncate, xm->max_steps_truncate);
        ck_assert_int_eq(em->pad_end, xm->pad_end);
        ck_assert_int_eq(em->keep_drums, xm->keep_drums);
        const cp_encoding *xp = x->kind == CP_PERFORMANCE ? x : &d;
        ck_assert_int_eq(e->perf.config.steps_per_second, xp->perf.config.steps_per_second);
        ck_assert_int_eq(e->perf.config.max_shift_steps, xp->perf.config.max_shift_steps);
        ck_assert_int_eq(e->perf.config.num_velocity_bins, xp->perf.config.num_velocity_bins);
        ck_assert_int_eq(e->perf.include_drums, xp->perf.include_drums);
        ck_assert_double_eq(e->perf_split_silence_s, xp->perf_split_silence_s);
        const cp_encoding *xr = x->kind == CP_PIANOROLL ? x : &d;
        ck_assert_double_eq(e->roll_grid.steps_per_second, xr->roll_grid.steps_per_second);
        ck_assert_int_eq(e->roll_grid.steps_per_quarter, xr->roll_grid.steps_per_quarter);
        ck_assert_int_eq(e->roll_include_drums, xr->roll_include_drums);
        ck_assert_int_eq(cp_corpus_valid_pct(c), 5);
        ck_assert_int_eq(cp_corpus_test_pct(c), 15);
        cp_corpus_close(c);
    }
    tu_rm_rf(dir);
}
END_TEST

/* ==== the corpus file: writer and reader errors ================================================ */
/* A small corpus file (melody) at path; returns its bytes. */
static unsigned char *small_corpus(const char *dir, const char *path, size_t *n) {
    char p[1024];
    snprintf(p, sizeof p, "%s/songs", dir);
    mkdirs(p);
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/songs/s%d.mid", dir, i);
        write_song(p, 60 + i, 8, i);
    }
    snprintf(p, sizeof p, "%s/songs/bad.mid", dir);
    write_bytes(p, "MThd", 4);
    snprintf(p, sizeof p, "%s/songs", dir);
    cp_build_opts o = cp_build_defaults(CP_MELODY);
    cp_stats st;
    build_ok(p, path, &o, &st);
    cp_stats_free(&st);
    return read_all(path, n);
}

static uint64_t get64(const unsigned char *b) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | b[i];
    return v;
}
static void put32(unsigned char *b, uint32_t v) {
    for (int i = 0; i < 4; i++) b[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *b, uint64_t v) {
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
}

/* Recomputes the meta checksum of a corpus image (after an in-range change). */
static void fix_meta_sum(unsigned char *b) {
    unsigned char h[512];
    memcpy(h, b, 512);
    memset(h + 192, 0, 16);
    uint64_t m = cp_hash_bytes(h, 512);
    m = cp_hash_update(m, b + get64(b + 128), (size_t)get64(b + 32) * 64);
    m = cp_hash_update(m, b + get64(b + 144), (size_t)get64(b + 152));
    m = cp_hash_update(m, b + get64(b + 160), (size_t)get64(b + 168));
    m = cp_hash_update(m, b + get64(b + 176), (size_t)get64(b + 184));
    put64(b + 192, m);
}

/* Writes b (n bytes) to path and expects cp_corpus_open to fail with status s and every
 * fragment (NULL-terminated) in its message. */
static void expect_open_error(const char *path, const unsigned char *b, size_t n, ct_status s, ...) {
    write_bytes(path, b, n);
    cp_corpus *c = (cp_corpus *)1;
    cp_error err;
    ct_status got = cp_corpus_open(path, &c, &err);
    ck_assert_msg(got == s, "status %d, expected %d: %s", got, s, err.message);
    ck_assert(c == NULL);
    ASSERT_HAS(err.message, path);
    va_list ap;
    va_start(ap, s);
    const char *frag;
    while ((frag = va_arg(ap, const char *)) != NULL) ASSERT_HAS(err.message, frag);
    va_end(ap);
}

START_TEST(test_corrupt_files) {
    char dir[512], good[600], bad[600];
    tmpdir(dir, sizeof dir, "corrupt");
    snprintf(good, sizeof good, "%s/good.corpus", dir);
    snprintf(bad, sizeof bad, "%s/bad.corpus", dir);
    size_t n;
    unsigned char *g = small_corpus(dir, good, &n);
    unsigned char *b = malloc(n + 64);
    ck_assert_mem_eq(g, "CTCORPUS", 8);
    /* truncated at many offsets */
    expect_open_error(bad, g, 0, CT_E_FORMAT, "empty file (0 bytes)", NULL);
    expect_open_error(bad, g, 5, CT_E_FORMAT, "truncated", "byte 5", NULL);
    expect_open_error(bad, g, 8, CT_E_FORMAT, "truncated", "byte 8", NULL);
    expect_open_error(bad, g, 11, CT_E_FORMAT, "truncated", NULL);
    expect_open_error(bad, g, 12, CT_E_FORMAT, "truncated", "inside the 512-byte header", NULL);
    expect_open_error(bad, g, 511, CT_E_FORMAT, "truncated", "byte 511", NULL);
    const size_t cuts[] = {512, 600, n / 2, n - 100, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char want[128];
        snprintf(want, sizeof want, "byte 16 says the file has %zu bytes, it has %zu", n, cuts[i]);
        expect_open_error(bad, g, cuts[i], CT_E_FORMAT, "truncated", want, NULL);
    }
    /* trailing bytes */
    memcpy(b, g, n);
    memset(b + n, 0, 10);
    expect_open_error(bad, b, n + 10, CT_E_FORMAT, "10 trailing bytes", NULL);
    /* not a corpus: a MIDI file */
    static const unsigned char midi[] = {'M', 'T', 'h', 'd', 0, 0, 0, 6, 0, 1, 0, 1, 1, 0xe0};
    expect_open_error(bad, midi, sizeof midi, CT_E_FORMAT,
                      "not a cantor corpus file (magic \"MThd\\x00\\x00\\x00\\x06\" at byte 0, expected \"CTCORPUS\")",
                      NULL);
    memcpy(b, g, n);
    b[0] = 'X';
    expect_open_error(bad, b, n, CT_E_FORMAT, "not a cantor corpus file (magic \"XTCORPUS\"", NULL);
    /* versions */
    memcpy(b, g, n);
    put32(b + 8, 2);
    expect_open_error(bad, b, n, CT_E_FORMAT, "byte 8: version 2 is newer than this cantor reads (1)", NULL);
    put32(b + 8, 0);
    expect_open_error(bad, b, n, CT_E_FORMAT, "byte 8: version 0; expected 1..1", NULL);
    /* header fields */
    memcpy(b, g, n);
    put32(b + 12, 256);
    expect_open_error(bad, b, n, CT_E_FORMAT, "byte 12: header size 256; expected 512", NULL);
    memcpy(b, g, n);
    put32(b + 24, 9);
    expect_open_error(bad, b, n, CT_E_FORMAT, "byte 24: encoding kind 9", NULL);
    memcpy(b, g, n);
    put32(b + 28, 40);
    expect_open_error(bad, b, n, CT_E_FORMAT, "byte 28: vocabulary 40; expected 38", NULL);
    memcpy(b, g, n);
    put32(b + 280, 0);   /* melody steps per quarter */
    expect_open_error(bad, b, n, CT_E_FORMAT, "byte 256: the stored encoding configuration is invalid", NULL);
    memcpy(b, g, n);
    put32(b + 216, 8);
    expect_open_error(bad, b, n, CT_E_FORMAT, "byte 216: 8 bytes per step; expected 4", NULL);
    memcpy(b, g, n);
    put32(b + 208, 90);
    put32(b + 212, 20);
    expect_open_error(bad, b, n, CT_E_FORMAT, "byte 208", NULL);
    memcpy(b, g, n);
    put64(b + 32, (uint64_t)1 << 40);
    expect_open_error(bad, b, n, CT_E_FORMAT, "byte 32:", "index bytes", NULL);
    memcpy(b, g, n);
    put64(b + 168, 100);
    expect_open_error(bad, b, n, CT_E_FORMAT, "byte 168: stats section of 100 bytes; expected 1160", NULL);
    /* sections out of the file or out of order */
    memcpy(b, g, n);
    put64(b + 176, get64(g + 176) + 1);   /* log offset, unaligned */
    expect_open_error(bad, b, n, CT_E_FORMAT, "byte 176: the log section starts at byte", NULL);
    memcpy(b, g, n);
    put64(b + 184, 1u << 30);   /* log bytes past the end */
    expect_open_error(bad, b, n, CT_E_FORMAT, "byte 184: the log section of 1073741824 bytes", "runs past", NULL);
    memcpy(b, g, n);
    put64(b + 144, get64(g + 128));   /* strings where the index is */
    expect_open_error(bad, b, n, CT_E_FORMAT, "byte 144: the strings section starts at byte", "after the index",
                      NULL);
    memcpy(b, g, n);
    put64(b + 112, 576);
    expect_open_error(bad, b, n, CT_E_FORMAT, "byte 112: data at byte 576; expected 512", NULL);
    /* index entries */
    uint64_t index = get64(g + 128), data_end = 512 + get64(g + 120);
    char want[1024];
    memcpy(b, g, n);
    put64(b + index + 8, 1u << 30);   /* piece 0's length */
    snprintf(want, sizeof want, "byte %llu (index entry of piece 0): 1073741824 steps of 4 bytes",
             (unsigned long long)(index + 8));
    expect_open_error(bad, b, n, CT_E_FORMAT, want, "run past the data section's end", NULL);
    memcpy(b, g, n);
    put64(b + 64 + index, data_end + 16);   /* piece 1's offset */
    snprintf(want, sizeof want, "byte %llu (index entry of piece 1): data offset %llu",
             (unsigned long long)(index + 64), (unsigned long long)(data_end + 16));
    expect_open_error(bad, b, n, CT_E_FORMAT, want, NULL);
    memcpy(b, g, n);
    put64(b + index, 514);
    expect_open_error(bad, b, n, CT_E_FORMAT, "expected a multiple of 16", NULL);
    memcpy(b, g, n);
    put32(b + index + 40, 1u << 20);   /* name offset */
    expect_open_error(bad, b, n, CT_E_FORMAT, "(index entry of piece 0): name at 1048576", NULL);
    memcpy(b, g, n);
    put32(b + index + 44, 2);   /* name length: the NUL is not where it should be */
    expect_open_error(bad, b, n, CT_E_FORMAT, "NUL-terminated", NULL);
    memcpy(b, g, n);
    put32(b + index + 48, 3);
    expect_open_error(bad, b, n, CT_E_FORMAT, "split 3; expected 0 (train)", NULL);
    memcpy(b, g, n);
    put64(b + index + 16, 0xfff8000000000000ULL);   /* duration NaN */
    expect_open_error(bad, b, n, CT_E_FORMAT, "duration", NULL);
    memcpy(b, g, n);
    put64(b + 40, get64(g + 40) + 1);   /* train pieces in the header */
    expect_open_error(bad, b, n, CT_E_FORMAT, "byte 40: the header gives", NULL);
    /* an in-range change: the checksum */
    memcpy(b, g, n);
    uint64_t strings = get64(g + 144);
    b[strings] ^= 1;   /* a letter of a name */
    expect_open_error(bad, b, n, CT_E_FORMAT, "byte 192: meta checksum", "rebuild it", NULL);
    memcpy(b, g, n);
    uint64_t log = get64(g + 176);
    b[log] = 'X';   /* the log's first line; then the checksum too */
    put64(b + 192, 0);
    expect_open_error(bad, b, n, CT_E_FORMAT, "meta checksum", NULL);
    /* data damage: open is fine, verify and reads find it */
    memcpy(b, g, n);
    uint64_t off0 = get64(g + index);
    put32(b + off0 + 4, 9999);   /* piece 0, step 1 */
    write_bytes(bad, b, n);
    cp_corpus *c = open_ok(bad);
    cp_error err;
    ck_assert_int_eq(cp_corpus_verify(c, &err), CT_E_FORMAT);
    ASSERT_HAS(err.message, "byte 200: data checksum");
    int32_t *t = malloc((size_t)cp_corpus_piece(c, 0)->len * 4);
    ck_assert_int_eq(cp_corpus_read_tokens(c, 0, t, &err), CT_E_FORMAT);
    snprintf(want, sizeof want, "byte %llu: piece 0 (s0.mid, piece 0) step 1: token 9999 outside 0..37",
             (unsigned long long)(off0 + 4));
    ASSERT_HAS(err.message, want);
    free(t);
    /* ... and through the dataset the item fails with that message */
    ct_ctx *ctx = tu_ctx(NULL);
    cp_dataset *d = cp_dataset_new(ctx, c, CP_SPLIT_ALL);
    ct_data_item it;
    ct_item_init(&it);
    ck_assert_int_eq(cp_dataset_get(d, 0, &it), CT_E_FORMAT);
    ASSERT_HAS(it.error, "token 9999 outside 0..37");
    ct_item_free(&it);
    cp_dataset_free(d);
    cp_corpus_close(c);
    ct_ctx_free(ctx);
    /* a bad log line with a matching checksum: open is fine, the stats fail clearly */
    memcpy(b, g, n);
    b[log + 1] = 'X';   /* "fXiled" */
    fix_meta_sum(b);
    write_bytes(bad, b, n);
    c = open_ok(bad);
    cp_stats bst;
    ck_assert_int_eq(cp_corpus_stats(c, &bst, &err), CT_E_FORMAT);
    snprintf(want, sizeof want, "byte %llu: a log line that is not", (unsigned long long)log);
    ASSERT_HAS(err.message, want);
    cp_corpus_close(c);
    /* not a file */
    c = (cp_corpus *)1;
    ck_assert_int_eq(cp_corpus_open(dir, &c, &err), CT_E_IO);
    ASSERT_HAS(err.message, "is a folder");
    ck_assert(c == NULL);
    snprintf(want, sizeof want, "%s/missing.corpus", dir);
    ck_assert_int_eq(cp_corpus_open(want, &c, &err), CT_E_IO);
    ASSERT_HAS(err.message, "cannot open");
    ASSERT_HAS(err.message, "cantor corpus build");
    /* the good one still opens */
    write_bytes(bad, g, n);
    c = open_ok(bad);
    ck_assert_int_eq(cp_corpus_verify(c, &err), CT_OK);
    ck_assert_uint_eq(cp_corpus_file_size(c), n);
    cp_corpus_close(c);
    cp_corpus_close(NULL);
    free(b);
    free(g);
    tu_rm_rf(dir);
}
END_TEST

START_TEST(test_writer) {
    char dir[512], path[600];
    tmpdir(dir, sizeof dir, "writer");
    snprintf(path, sizeof path, "%s/w.corpus", dir);
    cp_encoding e = cp_encoding_default(CP_PIANOROLL);
    cp_writer *w = NULL;
    cp_error err;
    ck_assert_int_eq(cp_writer_open(&w, path, &e, 50, 60, &err), CT_E_ARG);
    ck_assert(w == NULL);
    ck_assert_int_eq(cp_writer_open(&w, path, &e, 0, 0, &err), CT_OK);
    /* frames: keys 0, 63, 64 and 87 (the words' edges) */
    uint8_t fr[3 * 88] = {0};
    fr[0] = fr[63] = 1;
    fr[88 + 64] = fr[88 + 87] = 1;
    fr[176 + 30] = 7;   /* any nonzero value is on */
    cp_piece_in p = {.name = "x/y.mid", .content_hash = 42, .split = CP_TEST, .piece = 0, .file_index = 5,
                     .instrument = -1, .start = 0, .duration_s = 1.5, .frames = fr, .len = 3};
    ck_assert_int_eq(cp_writer_add(w, &p, &err), CT_OK);
    p.split = (cp_split)5;
    ck_assert_int_eq(cp_writer_add(w, &p, &err), CT_E_ARG);
    ASSERT_HAS(err.message, "split 5");
    p.split = CP_TRAIN;
    p.len = 0;   /* an empty piece is allowed in the file */
    p.name = "empty.mid";
    ck_assert_int_eq(cp_writer_add(w, &p, &err), CT_OK);
    cp_stats st = {0};
    st.files_found = 7;
    ck_assert_int_eq(cp_stats_add_skip(&st, CP_SKIP_FAILED, "bad\tname.mid", "line one\nline two"), CT_OK);
    ck_assert_int_eq(cp_writer_finish(w, &st, &err), CT_OK);
    ck_assert_int_eq(st.pieces[CP_TEST], 1);
    ck_assert_int_eq(st.steps[CP_TEST], 3);
    ck_assert_int_eq(st.pitch_hist[21], 1);
    ck_assert_int_eq(st.pitch_hist[21 + 30], 1);
    cp_corpus *c = open_ok(path);
    ck_assert_int_eq(cp_corpus_num_pieces(c), 2);
    const cp_piece *x = cp_corpus_piece(c, 0);
    ck_assert_str_eq(x->name, "x/y.mid");
    ck_assert_int_eq(x->file_index, 5);
    ck_assert_uint_eq(x->content_hash, 42);
    ck_assert_int_eq(x->split, CP_TEST);
    ck_assert_double_eq(x->duration_s, 1.5);
    uint8_t back[3 * 88];
    ck_assert_int_eq(cp_corpus_read_frames(c, 0, back, &err), CT_OK);
    fr[176 + 30] = 1;
    ck_assert_mem_eq(back, fr, sizeof fr);
    ck_assert_double_eq(cp_corpus_split_seconds(c, CP_TEST), 1.5);
    ck_assert_double_eq(cp_corpus_split_seconds(c, CP_SPLIT_ALL), 3.0);
    cp_stats back_st;
    ck_assert_int_eq(cp_corpus_stats(c, &back_st, &err), CT_OK);
    ck_assert_int_eq(back_st.files_found, 7);
    ck_assert_int_eq(back_st.files_failed, 1);
    ck_assert_str_eq(back_st.skips[0].name, "bad name.mid");
    ck_assert_str_eq(back_st.skips[0].reason, "line one line two");
    cp_stats_free(&back_st);
    ck_assert_int_eq(cp_corpus_verify(c, &err), CT_OK);
    cp_corpus_close(c);
    cp_stats_free(&st);
    /* tokens outside the vocabulary are refused; abort leaves nothing behind */
    cp_encoding m = cp_encoding_default(CP_MELODY);
    ck_assert_int_eq(cp_writer_open(&w, path, &m, 10, 10, &err), CT_OK);
    int32_t tok[3] = {0, 38, 1};
    cp_piece_in q = {.name = "m.mid", .tokens = tok, .len = 3, .instrument = -1};
    ck_assert_int_eq(cp_writer_add(w, &q, &err), CT_E_ARG);
    ASSERT_HAS(err.message, "token 38 at step 1; expected 0..37");
    cp_writer_abort(w);
    cp_writer_abort(NULL);
    c = open_ok(path);   /* the earlier file is untouched */
    ck_assert_int_eq(cp_corpus_encoding(c)->kind, CP_PIANOROLL);
    cp_corpus_close(c);
    DIR *d = opendir(dir);
    struct dirent *de;
    int files = 0;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.') files++;
    closedir(d);
    ck_assert_int_eq(files, 1);
    tu_rm_rf(dir);
}
END_TEST

START_TEST(test_stats_format) {
    cp_stats s = {0};
    s.files_found = 12;
    s.files_used = 9;
    s.files_ignored = 3;
    s.pieces[0] = 8;
    s.pieces[1] = 1;
    s.steps[0] = 800;
    s.steps[1] = 100;
    s.seconds[0] = 7200;
    s.pitch_hist[60] = 5;
    s.pitch_hist[72] = 5;
    cp_stats_add_skip(&s, CP_SKIP_FAILED, "a.mid", "a.mid: byte 3: bad");
    cp_stats_add_skip(&s, CP_SKIP_EMPTY, "b.mid", "no notes in the file");
    cp_stats_add_skip(&s, CP_SKIP_DUPLICATE, "c.mid", "the same bytes as a.mid");
    for (int i = 0; i < 20; i++) cp_stats_add_skip(&s, CP_SKIP_FAILED, "more.mid", "x");
    ck_assert_int_eq(s.files_failed, 21);
    ck_assert_int_eq(s.n_skips, 23);
    cp_encoding e = cp_encoding_default(CP_MELODY);
    char buf[8192];
    int n = cp_stats_format(&s, &e, 2, buf, sizeof buf);
    ck_assert_int_eq(n, (int)strlen(buf));
    ASSERT_HAS(buf, "encoding: melody 48..83");
    ASSERT_HAS(buf, "files:    12 MIDI files: 9 used, 21 failed, 1 empty, 1 duplicate; 3 other files ignored");
    ASSERT_HAS(buf, "pieces:   9 (train 8, valid 1, test 0)");
    ASSERT_HAS(buf, "tokens:   900 (train 800, valid 100, test 0)");
    ASSERT_HAS(buf, "duration: 2.00 h (train 2.00 h");
    ASSERT_HAS(buf, "10 note onsets, lowest C4 (60), highest C5 (72), mean 66.0");
    ASSERT_HAS(buf, "failed    a.mid: a.mid: byte 3: bad");
    ASSERT_HAS(buf, "... and 21 more");
    ck_assert_ptr_null(strstr(buf, "c.mid"));
    /* truncation: the full length, a terminated prefix */
    char small[16];
    ck_assert_int_eq(cp_stats_format(&s, &e, 2, small, sizeof small), n);
    ck_assert_int_eq(strlen(small), 15);
    ck_assert_int_eq(cp_stats_format(&s, &e, 2, NULL, 0), n);
    int all = cp_stats_format(&s, NULL, -1, buf, sizeof buf);
    ASSERT_HAS(buf, "the same bytes as a.mid");
    FILE *f = tmpfile();
    ck_assert_int_eq(cp_stats_write(&s, NULL, -1, f), all);
    ck_assert_int_eq(ftell(f), all);
    fclose(f);
    cp_encoding r = cp_encoding_default(CP_PIANOROLL);
    cp_stats_format(&s, &r, 0, buf, sizeof buf);
    ASSERT_HAS(buf, "frames:   900");
    cp_stats_free(&s);
    cp_stats_free(&s);
    cp_stats_format(&s, NULL, 0, buf, sizeof buf);
    ASSERT_HAS(buf, "no note onsets");
}
END_TEST

/* ==== the dataset ============================================================================== */
START_TEST(test_dataset_loader) {
    fixture fx;
    make_fixture(&fx);
    char out[600];
    snprintf(out, sizeof out, "%s/m.corpus", fx.dir);
    cp_build_opts o = cp_build_defaults(CP_MELODY);
    o.valid_pct = 30;
    o.test_pct = 0;
    cp_stats st;
    build_ok(fx.src, out, &o, &st);
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    cp_dataset *d = cp_dataset_open(ctx, out, CP_TRAIN);
    ck_assert_msg(d != NULL, "%s", ct_ctx_error(ctx));
    const cp_corpus *c = cp_dataset_corpus(d);
    ck_assert_int_eq(cp_dataset_len(d), cp_corpus_split_pieces(c, CP_TRAIN));
    ck_assert_int_eq(cp_dataset_len(d), st.pieces[CP_TRAIN]);
    ck_assert_int_gt(cp_dataset_len(d), 3);
    ck_assert_int_eq(cp_dataset_split(d), CP_TRAIN);
    ct_dataset ds = cp_dataset_as(d);
    ck_assert_int_eq(ct_dataset_len(&ds), cp_dataset_len(d));
    cp_error err;
    /* items: the pieces of the split, in order, with their metadata */
    int64_t prev = -1;
    for (int64_t i = 0; i < cp_dataset_len(d); i++) {
        int64_t id = cp_dataset_piece_id(d, i);
        ck_assert_int_gt(id, prev);
        prev = id;
        const cp_piece *x = cp_corpus_piece(c, id);
        ck_assert_int_eq(x->split, CP_TRAIN);
        ck_assert_int_eq(ds.item_len(ds.self, i), x->len);
        ct_data_item it;
        ct_item_init(&it);
        ck_assert_int_eq(cp_dataset_get(d, i, &it), CT_OK);
        ck_assert_int_eq(it.kind, CT_ITEM_TOKENS);
        ck_assert_int_eq(it.len, x->len);
        ck_assert_int_eq(it.piece_id, id);
        ck_assert_int_eq(it.index, i);
        ck_assert_str_eq(it.source, x->name);
        int64_t *want = malloc((size_t)x->len * 8);
        ck_assert_int_eq(cp_corpus_read_tokens64(c, id, want, &err), CT_OK);
        ck_assert_mem_eq(it.tokens, want, (size_t)x->len * 8);
        free(want);
        ct_item_free(&it);
        char desc[256];
        ct_dataset_describe(&ds, i, desc, sizeof desc);
        ASSERT_HAS(desc, x->name);
    }
    ck_assert_int_eq(cp_dataset_piece_id(d, -1), -1);
    /* through the loader: bucketed batches, workers, every item once, rows equal the pieces */
    ct_dataloader_opts lo = ct_dataloader_defaults();
    lo.batch_size = 3;
    lo.sampler = CT_SAMPLER_BUCKET;
    lo.workers = 2;
    lo.seed = 11;
    lo.collate.batch_first = true;
    ct_dataloader *dl = ct_dataloader_new(ctx, &ds, &lo);
    ck_assert_msg(dl != NULL, "%s", ct_ctx_error(ctx));
    int64_t items = 0;
    int64_t *hits = calloc((size_t)cp_dataset_len(d), sizeof *hits);
    for (;;) {
        ct_scope_begin(ctx);
        const ct_batch *b = ct_dataloader_next(dl);
        if (b) {
            ck_assert_int_eq(b->kind, CT_ITEM_TOKENS);
            const int64_t *in = ct_data_i64(b->inputs);
            const int64_t *lens = ct_data_i64(b->lengths);
            for (int64_t r = 0; r < b->rows; r++) {
                const cp_piece *x = cp_corpus_piece(c, b->piece_id[r]);
                ck_assert_int_eq(lens[r], x->len);
                int32_t *want = malloc((size_t)x->len * 4);
                ck_assert_int_eq(cp_corpus_read_tokens(c, x->id, want, &err), CT_OK);
                for (int64_t t = 0; t < x->len; t++) ck_assert_int_eq(in[r * b->steps + t], want[t]);
                free(want);
                hits[b->index[r]]++;
                items++;
            }
        }
        ct_scope_end(ctx);
        if (!b) break;
    }
    ck_assert_int_eq(ct_dataloader_status(dl), CT_OK);
    ck_assert_int_eq(items, cp_dataset_len(d));
    for (int64_t i = 0; i < cp_dataset_len(d); i++) ck_assert_int_eq(hits[i], 1);
    free(hits);
    ct_dataloader_free(dl);
    /* the other splits, and all */
    cp_dataset *v = cp_dataset_new(ctx, c, CP_VALID), *a = cp_dataset_new(ctx, c, CP_SPLIT_ALL),
               *t = cp_dataset_new(ctx, c, CP_TEST);
    ck_assert_int_eq(cp_dataset_len(v), cp_corpus_split_pieces(c, CP_VALID));
    ck_assert_int_eq(cp_dataset_len(t), 0);
    ck_assert_int_eq(cp_dataset_len(a), cp_corpus_num_pieces(c));
    ct_data_item it;
    ct_item_init(&it);
    ck_assert_int_ne(cp_dataset_get(v, cp_dataset_len(v), &it), CT_OK);
    ct_item_free(&it);
    ck_assert(cp_dataset_new(ctx, c, (cp_split)7) == NULL);
    ASSERT_HAS(ct_ctx_error(ctx), "split 7");
    cp_dataset_free(v);
    cp_dataset_free(a);
    cp_dataset_free(t);
    cp_dataset_free(d);
    cp_dataset_free(NULL);
    /* a bad file: the corpus's message in the context */
    ck_assert(cp_dataset_open(ctx, "fixtures/none.corpus", CP_TRAIN) == NULL);
    ck_assert_int_eq(ct_ctx_status(ctx), CT_E_IO);
    ASSERT_HAS(ct_ctx_error(ctx), "fixtures/none.corpus: cannot open");
    ct_ctx_free(ctx);
    cp_stats_free(&st);
    tu_rm_rf(fx.dir);
}
END_TEST

START_TEST(test_dataset_pianoroll_frames) {
    fixture fx;
    make_fixture(&fx);
    char out[600];
    snprintf(out, sizeof out, "%s/r.corpus", fx.dir);
    cp_build_opts o = cp_build_defaults(CP_PIANOROLL);
    o.valid_pct = 0;
    o.test_pct = 0;
    cp_stats st;
    build_ok(fx.src, out, &o, &st);
    ct_ctx *ctx = tu_ctx(NULL);
    cp_dataset *d = cp_dataset_open(ctx, out, CP_TRAIN);
    ck_assert_int_eq(cp_dataset_len(d), 7);   /* short.mid too: a roll needs no 7 bars */
    ct_dataset ds = cp_dataset_as(d);
    ct_dataloader_opts lo = ct_dataloader_defaults();
    lo.batch_size = 4;
    lo.workers = 1;
    lo.collate.targets = true;
    ct_dataloader *dl = ct_dataloader_new(ctx, &ds, &lo);
    ck_assert_msg(dl != NULL, "%s", ct_ctx_error(ctx));
    ct_scope_begin(ctx);
    const ct_batch *b = ct_dataloader_next(dl);
    ck_assert(b != NULL);
    ck_assert_int_eq(b->kind, CT_ITEM_FRAMES);
    ck_assert_int_eq(b->width, 88);
    ck_assert_int_eq(b->inputs->ndim, 3);
    ck_assert_int_eq(b->inputs->shape[1], 4);
    ck_assert_int_eq(b->inputs->shape[2], 88);
    /* row 0 = item 0: its frames, time-major */
    const cp_corpus *c = cp_dataset_corpus(d);
    const cp_piece *x = cp_corpus_piece(c, cp_dataset_piece_id(d, b->index[0]));
    float *want = malloc((size_t)x->len * 88 * sizeof *want);
    cp_error err;
    ck_assert_int_eq(cp_corpus_read_frames_f32(c, x->id, want, &err), CT_OK);
    const float *in = ct_data_f32(b->inputs), *tg = ct_data_f32(b->targets);
    for (int64_t t = 0; t + 1 < x->len; t++)
        for (int k = 0; k < 88; k++) {
            ck_assert(in[(t * 4 + 0) * 88 + k] == want[t * 88 + k]);
            ck_assert(tg[(t * 4 + 0) * 88 + k] == want[(t + 1) * 88 + k]);
        }
    free(want);
    ct_scope_end(ctx);
    ct_dataloader_free(dl);
    cp_dataset_free(d);
    ct_ctx_free(ctx);
    cp_stats_free(&st);
    tu_rm_rf(fx.dir);
}
END_TEST

/* ==== transforms ================================================================================ */
static void tokens_item(ct_data_item *it, const int64_t *v, int64_t n) {
    ct_item_init(it);
    ck_assert_int_eq(ct_item_set_tokens(it, v, n), CT_OK);
}

static int64_t mel(int pitch) { return 2 + pitch - 48; }   /* default melody range 48..84 */
#define NO CM_MELODY_TOKEN_NO_EVENT
#define OFF CM_MELODY_TOKEN_NOTE_OFF
#define ON(p) ((int64_t)(CM_PERF_NOTE_ON_OFFSET + (p)))
#define NOFF(p) ((int64_t)(CM_PERF_NOTE_OFF_OFFSET + (p)))
#define TS(s) ((int64_t)(CM_PERF_TIME_SHIFT_OFFSET + (s) - 1))
#define VEL(b) ((int64_t)(CM_PERF_VELOCITY_OFFSET + (b) - 1))

static void apply(const ct_transform *t, ct_data_item *it, uint64_t seed) {
    ct_rng r;
    ct_rng_seed(&r, seed);
    ct_status s = ct_transform_apply(t, it, &r);
    ck_assert_msg(s == CT_OK, "%s", it->error ? it->error : "?");
}

static void assert_tokens(const ct_data_item *it, const int64_t *want, int64_t n) {
    ck_assert_int_eq(it->len, n);
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(it->tokens[i] == want[i], "token %lld: %lld, expected %lld", (long long)i,
                      (long long)it->tokens[i], (long long)want[i]);
}

START_TEST(test_transpose_melody) {
    cp_encoding e = cp_encoding_default(CP_MELODY);
    ct_ctx *ctx = tu_ctx(NULL);
    ct_transform t;
    ct_data_item it;
    /* a fixed shift: every pitch token moves, the rest stays */
    ck_assert_int_eq(cp_transform_transpose(ctx, &t, &e, 2, 2, CP_RANGE_DROP), CT_OK);
    const int64_t v[] = {mel(60), NO, mel(62), OFF, NO, mel(64)};
    tokens_item(&it, v, 6);
    apply(&t, &it, 1);
    const int64_t want[] = {mel(62), NO, mel(64), OFF, NO, mel(66)};
    assert_tokens(&it, want, 6);
    ct_item_free(&it);
    ct_transform_free(&t);
    /* the top of the range (83 is the highest pitch) transposed up, drop mode: rests */
    ck_assert_int_eq(cp_transform_transpose(ctx, &t, &e, 1, 1, CP_RANGE_DROP), CT_OK);
    const int64_t top[] = {mel(83), NO, mel(80), mel(83), NO, OFF, mel(83), mel(70)};
    tokens_item(&it, top, 8);
    apply(&t, &it, 1);
    /* the first 83 starts nothing (no event); the later one ends the 81 (note-off); after a
     * note-off nothing sounds (no event) */
    const int64_t want_top[] = {NO, NO, mel(81), OFF, NO, OFF, NO, mel(71)};
    assert_tokens(&it, want_top, 8);
    ct_item_free(&it);
    ct_transform_free(&t);
    /* the bottom, transposed down */
    ck_assert_int_eq(cp_transform_transpose(ctx, &t, &e, -2, -2, CP_RANGE_DROP), CT_OK);
    const int64_t bottom[] = {mel(49), mel(50), NO};
    tokens_item(&it, bottom, 3);
    apply(&t, &it, 1);
    const int64_t want_bottom[] = {NO, mel(48), NO};
    assert_tokens(&it, want_bottom, 3);
    ct_item_free(&it);
    ct_transform_free(&t);
    /* redraw: a melody spanning 78..83 only moves down within -3..3, and covers -3..0 */
    ck_assert_int_eq(cp_transform_transpose(ctx, &t, &e, -3, 3, CP_RANGE_REDRAW), CT_OK);
    const int64_t high[] = {mel(78), NO, mel(83), OFF};
    int seen[7] = {0};
    for (uint64_t seed = 0; seed < 200; seed++) {
        tokens_item(&it, high, 4);
        apply(&t, &it, seed);
        int k = (int)(it.tokens[0] - high[0]);
        ck_assert_int_ge(k, -3);
        ck_assert_int_le(k, 0);
        ck_assert_int_eq(it.tokens[2] - high[2], k);
        ck_assert_int_eq(it.tokens[1], NO);
        ck_assert_int_eq(it.tokens[3], OFF);
        seen[k + 3]++;
        ct_item_free(&it);
    }
    for (int k = 0; k < 4; k++) ck_assert_msg(seen[k] > 20, "shift %d drawn %d times", k - 3, seen[k]);
    ct_transform_free(&t);
    /* redraw with no fitting shift: unchanged */
    ck_assert_int_eq(cp_transform_transpose(ctx, &t, &e, 1, 3, CP_RANGE_REDRAW), CT_OK);
    tokens_item(&it, high, 4);
    apply(&t, &it, 5);
    assert_tokens(&it, high, 4);
    ct_item_free(&it);
    /* wrong items */
    ct_item_init(&it);
    float fr[88] = {0};
    ct_item_set_frames(&it, fr, 1, 88);
    ct_rng r;
    ct_rng_seed(&r, 1);
    ck_assert_int_eq(ct_transform_apply(&t, &it, &r), CT_E_DTYPE);
    ASSERT_HAS(it.error, "transpose: a melody corpus gives tokens");
    ct_item_free(&it);
    const int64_t bad[] = {mel(60), 38};
    tokens_item(&it, bad, 2);
    ck_assert_int_eq(ct_transform_apply(&t, &it, &r), CT_E_ARG);
    ASSERT_HAS(it.error, "token 38 at step 1 is outside the melody vocabulary 0..37");
    ct_item_free(&it);
    ct_transform_free(&t);
    /* constructor errors */
    ck_assert_int_eq(cp_transform_transpose(ctx, &t, &e, 3, -3, CP_RANGE_DROP), CT_E_ARG);
    ASSERT_HAS(ct_ctx_error(ctx), "range 3..-3");
    ck_assert_int_eq(cp_transform_transpose(ctx, &t, &e, 0, 1, (cp_range_mode)4), CT_E_ARG);
    cp_encoding broken = e;
    broken.kind = (cp_encoding_kind)0;
    ck_assert_int_eq(cp_transform_transpose(ctx, &t, &broken, 0, 1, CP_RANGE_DROP), CT_E_ARG);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_transpose_performance_and_roll) {
    cp_encoding p = cp_encoding_default(CP_PERFORMANCE);
    ct_transform t;
    ct_data_item it;
    ck_assert_int_eq(cp_transform_transpose(NULL, &t, &p, 1, 1, CP_RANGE_DROP), CT_OK);
    const int64_t v[] = {VEL(20), ON(60), ON(127), TS(10), NOFF(60), NOFF(127), TS(100), ON(0)};
    tokens_item(&it, v, 8);
    apply(&t, &it, 3);
    const int64_t want[] = {VEL(20), ON(61), TS(10), NOFF(61), TS(100), ON(1)};
    assert_tokens(&it, want, 6);
    ct_item_free(&it);
    ct_transform_free(&t);
    ck_assert_int_eq(cp_transform_transpose(NULL, &t, &p, -2, -2, CP_RANGE_DROP), CT_OK);
    tokens_item(&it, v, 8);
    apply(&t, &it, 3);
    const int64_t want_down[] = {VEL(20), ON(58), ON(125), TS(10), NOFF(58), NOFF(125), TS(100)};
    assert_tokens(&it, want_down, 7);
    ct_item_free(&it);
    ct_transform_free(&t);
    /* redraw: 0 and 127 both used, only 0 fits */
    ck_assert_int_eq(cp_transform_transpose(NULL, &t, &p, -3, 3, CP_RANGE_REDRAW), CT_OK);
    tokens_item(&it, v, 8);
    apply(&t, &it, 9);
    assert_tokens(&it, v, 8);
    ct_item_free(&it);
    ct_transform_free(&t);
    /* piano roll: keys 0 and 87 are the edges */
    cp_encoding r = cp_encoding_default(CP_PIANOROLL);
    ck_assert_int_eq(cp_transform_transpose(NULL, &t, &r, 1, 1, CP_RANGE_DROP), CT_OK);
    float fr[2 * 88] = {0};
    fr[0] = 1;
    fr[87] = 1;
    fr[88 + 40] = 1;
    ct_item_init(&it);
    ck_assert_int_eq(ct_item_set_frames(&it, fr, 2, 88), CT_OK);
    apply(&t, &it, 1);
    for (int k = 0; k < 88; k++) {
        ck_assert(it.values[k] == (k == 1 ? 1.0f : 0.0f));
        ck_assert(it.values[88 + k] == (k == 41 ? 1.0f : 0.0f));
    }
    ct_item_free(&it);
    ct_transform_free(&t);
    ck_assert_int_eq(cp_transform_transpose(NULL, &t, &r, -3, 3, CP_RANGE_REDRAW), CT_OK);
    ct_item_init(&it);
    ck_assert_int_eq(ct_item_set_frames(&it, fr, 2, 88), CT_OK);
    apply(&t, &it, 1);
    ck_assert_mem_eq(it.values, fr, sizeof fr);
    ct_item_free(&it);
    /* redraw away from the edge: keys 84..86 fit shifts -3..1 */
    float hi[88] = {0};
    hi[84] = hi[86] = 1;
    int seen[7] = {0};
    for (uint64_t seed = 0; seed < 200; seed++) {
        ct_item_init(&it);
        ct_item_set_frames(&it, hi, 1, 88);
        apply(&t, &it, seed);
        int k = -99;
        for (int j = 0; j < 88; j++)
            if (it.values[j] != 0) {
                k = j - 84;
                break;
            }
        ck_assert_int_ge(k, -3);
        ck_assert_int_le(k, 1);
        ck_assert(it.values[86 + k] == 1.0f);
        seen[k + 3]++;
        ct_item_free(&it);
    }
    for (int k = 0; k < 5; k++) ck_assert_int_gt(seen[k], 10);
    /* tokens to a roll transform */
    const int64_t tok[] = {1, 2};
    tokens_item(&it, tok, 2);
    ct_rng rng;
    ct_rng_seed(&rng, 1);
    ck_assert_int_eq(ct_transform_apply(&t, &it, &rng), CT_E_DTYPE);
    ASSERT_HAS(it.error, "frames of width 88");
    ct_item_free(&it);
    ct_transform_free(&t);
}
END_TEST

START_TEST(test_time_stretch) {
    cp_encoding p = cp_encoding_default(CP_PERFORMANCE);
    ct_transform t;
    ct_data_item it;
    ck_assert_int_eq(cp_transform_time_stretch(NULL, &t, &p, 2.0, 2.0), CT_OK);
    const int64_t v[] = {VEL(5), ON(60), TS(50), NOFF(60), TS(100), TS(30), ON(62), TS(1)};
    tokens_item(&it, v, 8);
    it.offset = 4;
    it.piece_id = 9;
    apply(&t, &it, 1);
    /* times 0, 50, 180 (+1 trailing) become 0, 100, 360 (+2) */
    const int64_t want[] = {VEL(5), ON(60), TS(100), NOFF(60), TS(100), TS(100), TS(60), ON(62), TS(2)};
    assert_tokens(&it, want, 9);
    ck_assert_int_eq(it.offset, 4);
    ck_assert_int_eq(it.piece_id, 9);
    ct_item_free(&it);
    ct_transform_free(&t);
    /* shrinking rounds from the start: 1, 2, 3 steps at 0.5 -> 1, 1, 2 */
    ck_assert_int_eq(cp_transform_time_stretch(NULL, &t, &p, 0.5, 0.5), CT_OK);
    const int64_t w[] = {TS(1), ON(60), TS(1), NOFF(60), TS(1), ON(61), NOFF(61)};
    tokens_item(&it, w, 7);
    apply(&t, &it, 1);
    const int64_t want_w[] = {TS(1), ON(60), NOFF(60), TS(1), ON(61), NOFF(61)};
    assert_tokens(&it, want_w, 6);
    ct_item_free(&it);
    ct_transform_free(&t);
    /* ±5 %: the total time stays within it, and the draw is deterministic */
    ck_assert_int_eq(cp_transform_time_stretch(NULL, &t, &p, 0.95, 1.05), CT_OK);
    const int64_t long_v[] = {ON(60), TS(100), TS(100), TS(100), TS(100), NOFF(60)};
    for (uint64_t seed = 0; seed < 50; seed++) {
        tokens_item(&it, long_v, 6);
        apply(&t, &it, seed);
        int64_t total = 0;
        for (int64_t i = 0; i < it.len; i++)
            if (it.tokens[i] >= TS(1) && it.tokens[i] <= TS(100)) total += it.tokens[i] - TS(1) + 1;
        ck_assert_int_ge(total, 380);
        ck_assert_int_le(total, 420);
        ck_assert_int_eq(it.tokens[0], ON(60));
        ck_assert_int_eq(it.tokens[it.len - 1], NOFF(60));
        ct_data_item again;
        tokens_item(&again, long_v, 6);
        apply(&t, &again, seed);
        assert_tokens(&again, it.tokens, it.len);
        ct_item_free(&again);
        ct_item_free(&it);
    }
    ct_transform_free(&t);
    /* piano roll: nearest-neighbour resampling */
    cp_encoding r = cp_encoding_default(CP_PIANOROLL);
    ck_assert_int_eq(cp_transform_time_stretch(NULL, &t, &r, 2.0, 2.0), CT_OK);
    float fr[4 * 88] = {0};
    for (int s = 0; s < 4; s++) fr[s * 88 + 10 + s] = 1;
    ct_item_init(&it);
    ct_item_set_frames(&it, fr, 3, 88);
    apply(&t, &it, 1);
    ck_assert_int_eq(it.len, 6);
    ck_assert_int_eq(it.width, 88);
    for (int j = 0; j < 6; j++) ck_assert_mem_eq(it.values + j * 88, fr + (j / 2) * 88, 88 * sizeof(float));
    ct_item_free(&it);
    ct_transform_free(&t);
    ck_assert_int_eq(cp_transform_time_stretch(NULL, &t, &r, 0.5, 0.5), CT_OK);
    ct_item_init(&it);
    ct_item_set_frames(&it, fr, 4, 88);
    apply(&t, &it, 1);
    ck_assert_int_eq(it.len, 2);
    ck_assert_mem_eq(it.values, fr + 1 * 88, 88 * sizeof(float));
    ck_assert_mem_eq(it.values + 88, fr + 3 * 88, 88 * sizeof(float));
    ct_item_free(&it);
    ct_item_init(&it);
    ct_item_set_frames(&it, fr, 1, 88);   /* never below one frame */
    apply(&t, &it, 1);
    ck_assert_int_eq(it.len, 1);
    ct_item_free(&it);
    ct_transform_free(&t);
    /* melody: not applicable */
    tu_errors errs = {0};
    ct_ctx *ctx = tu_ctx(&errs);
    cp_encoding m = cp_encoding_default(CP_MELODY);
    ck_assert_int_eq(cp_transform_time_stretch(ctx, &t, &m, 0.95, 1.05), CT_E_UNSUPPORTED);
    ASSERT_HAS(ct_ctx_error(ctx), "melody tokens count 16th-note steps");
    ck_assert_int_eq(cp_transform_time_stretch(ctx, &t, &p, 1.1, 1.0), CT_E_ARG);
    ck_assert_int_eq(cp_transform_time_stretch(ctx, &t, &p, 0.0, 1.0), CT_E_ARG);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_velocity_jitter) {
    cp_encoding p = cp_encoding_default(CP_PERFORMANCE);
    ct_transform t;
    ct_data_item it;
    const int64_t v[] = {VEL(1), ON(60), VEL(16), ON(62), VEL(32), ON(64), TS(5), NOFF(60)};
    ck_assert_int_eq(cp_transform_velocity_jitter(NULL, &t, &p, 0, 0), CT_OK);
    tokens_item(&it, v, 8);
    apply(&t, &it, 1);
    assert_tokens(&it, v, 8);
    ct_item_free(&it);
    ct_transform_free(&t);
    /* shifts far past the edges clamp to 1..32; others untouched */
    ck_assert_int_eq(cp_transform_velocity_jitter(NULL, &t, &p, 40, 2), CT_OK);
    bool low = false, high = false;
    for (uint64_t seed = 0; seed < 100; seed++) {
        tokens_item(&it, v, 8);
        apply(&t, &it, seed);
        ck_assert_int_eq(it.len, 8);
        for (int i = 0; i < 8; i += 2) {
            if (i == 6) break;
            ck_assert_int_ge(it.tokens[i], VEL(1));
            ck_assert_int_le(it.tokens[i], VEL(32));
        }
        ck_assert_int_eq(it.tokens[1], ON(60));
        ck_assert_int_eq(it.tokens[6], TS(5));
        ck_assert_int_eq(it.tokens[7], NOFF(60));
        low |= it.tokens[4] == VEL(1);
        high |= it.tokens[0] == VEL(32);
        ct_item_free(&it);
    }
    ck_assert(low && high);
    ct_transform_free(&t);
    /* a per-item shift moves every bin together */
    ck_assert_int_eq(cp_transform_velocity_jitter(NULL, &t, &p, 3, 0), CT_OK);
    for (uint64_t seed = 0; seed < 30; seed++) {
        const int64_t mid[] = {VEL(10), ON(60), VEL(20), ON(61)};
        tokens_item(&it, mid, 4);
        apply(&t, &it, seed);
        ck_assert_int_eq(it.tokens[2] - it.tokens[0], 10);
        ck_assert_int_le(llabs(it.tokens[0] - VEL(10)), 3);
        ct_item_free(&it);
    }
    ct_transform_free(&t);
    ct_ctx *ctx = tu_ctx(NULL);
    cp_encoding m = cp_encoding_default(CP_MELODY), r = cp_encoding_default(CP_PIANOROLL), nv = p;
    nv.perf.config.num_velocity_bins = 0;
    ck_assert_int_eq(cp_transform_velocity_jitter(ctx, &t, &m, 1, 1), CT_E_UNSUPPORTED);
    ASSERT_HAS(ct_ctx_error(ctx), "the melody encoding has no velocity events");
    ck_assert_int_eq(cp_transform_velocity_jitter(ctx, &t, &r, 1, 1), CT_E_UNSUPPORTED);
    ck_assert_int_eq(cp_transform_velocity_jitter(ctx, &t, &nv, 1, 1), CT_E_UNSUPPORTED);
    ASSERT_HAS(ct_ctx_error(ctx), "without velocity bins");
    ck_assert_int_eq(cp_transform_velocity_jitter(ctx, &t, &p, -1, 1), CT_E_ARG);
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_random_crop) {
    ct_transform t;
    ct_data_item it;
    /* melody: the window's start draws like the engine's crop; a held note is struck again */
    cp_encoding m = cp_encoding_default(CP_MELODY);
    ck_assert_int_eq(cp_transform_random_crop(NULL, &t, &m, 3), CT_OK);
    const int64_t v[] = {mel(60), NO, NO, OFF, NO, mel(62), NO, NO};
    for (uint64_t seed = 0; seed < 40; seed++) {
        tokens_item(&it, v, 8);
        it.offset = 10;
        apply(&t, &it, seed);
        ct_rng r;
        ct_rng_seed(&r, seed);
        int64_t start = (int64_t)ct_rng_below(&r, 6);
        ck_assert_int_eq(it.len, 3);
        ck_assert_int_eq(it.offset, 10 + start);
        int64_t first = v[start];
        if (start == 1 || start == 2) first = mel(60);
        if (start == 6 || start == 7) first = mel(62);
        ck_assert_int_eq(it.tokens[0], first);
        for (int i = 1; i < 3; i++) ck_assert_int_eq(it.tokens[i], v[start + i]);
        ct_item_free(&it);
    }
    const int64_t shortv[] = {mel(60), NO};
    tokens_item(&it, shortv, 2);
    apply(&t, &it, 1);   /* shorter than the window: unchanged */
    assert_tokens(&it, shortv, 2);
    ct_item_free(&it);
    ct_transform_free(&t);
    /* performance: the velocity in force comes first, orphan note-offs go */
    cp_encoding p = cp_encoding_default(CP_PERFORMANCE);
    ck_assert_int_eq(cp_transform_random_crop(NULL, &t, &p, 5), CT_OK);
    const int64_t w[] = {VEL(10), ON(60), TS(5), NOFF(60), ON(62), TS(5), NOFF(62), VEL(3), ON(64), NOFF(64)};
    bool saw3 = false;
    for (uint64_t seed = 0; seed < 60; seed++) {
        tokens_item(&it, w, 10);
        apply(&t, &it, seed);
        ct_rng r;
        ct_rng_seed(&r, seed);
        int64_t start = (int64_t)ct_rng_below(&r, 6);
        ck_assert_int_le(it.len, 5);
        if (start == 3) {   /* NOFF(60) ON(62) TS NOFF(62) VEL(3): velocity 10 first, the note-off gone */
            const int64_t want[] = {VEL(10), ON(62), TS(5), NOFF(62)};
            assert_tokens(&it, want, 4);
            saw3 = true;
        }
        if (start == 0) assert_tokens(&it, w, 5);
        /* invariants: no note-off without its note-on, a velocity before the first note-on */
        int open[128] = {0};
        bool vel = false;
        for (int64_t i = 0; i < it.len; i++) {
            int64_t x = it.tokens[i];
            if (x >= VEL(1)) vel = true;
            if (x < 128) {
                ck_assert(vel);
                open[x]++;
            } else if (x < 256) {
                ck_assert_int_gt(open[x - 128], 0);
                open[x - 128]--;
            }
        }
        ct_item_free(&it);
    }
    ck_assert(saw3);
    ct_transform_free(&t);
    /* piano roll: the plain window */
    cp_encoding r = cp_encoding_default(CP_PIANOROLL);
    ck_assert_int_eq(cp_transform_random_crop(NULL, &t, &r, 2), CT_OK);
    float fr[5 * 88] = {0};
    for (int s = 0; s < 5; s++) fr[s * 88 + s] = 1;
    ct_item_init(&it);
    ct_item_set_frames(&it, fr, 5, 88);
    apply(&t, &it, 4);
    ct_rng rr;
    ct_rng_seed(&rr, 4);
    int64_t start = (int64_t)ct_rng_below(&rr, 4);
    ck_assert_int_eq(it.len, 2);
    ck_assert_mem_eq(it.values, fr + start * 88, 2 * 88 * sizeof(float));
    ct_item_free(&it);
    ct_transform_free(&t);
    ck_assert_int_eq(cp_transform_random_crop(NULL, &t, &r, 1), CT_E_ARG);
}
END_TEST

/* The default augmentation through the loader: deterministic for any worker count. */
START_TEST(test_augment_determinism) {
    fixture fx;
    make_fixture(&fx);
    char out[600];
    snprintf(out, sizeof out, "%s/p.corpus", fx.dir);
    cp_build_opts o = cp_build_defaults(CP_PERFORMANCE);
    o.valid_pct = o.test_pct = 0;
    cp_stats st;
    build_ok(fx.src, out, &o, &st);
    ct_ctx *ctx = tu_ctx(NULL);
    cp_dataset *d = cp_dataset_open(ctx, out, CP_TRAIN);
    ct_dataset ds = cp_dataset_as(d);
    const cp_encoding *e = cp_corpus_encoding(cp_dataset_corpus(d));
    cp_augment_opts ao = cp_augment_defaults();
    ck_assert_int_eq(ao.transpose_lo, -3);
    ck_assert_int_eq(ao.transpose_hi, 3);
    ck_assert_double_eq(ao.stretch_lo, 0.95);
    ck_assert_double_eq(ao.stretch_hi, 1.05);
    ao.velocity = true;
    ao.crop_len = 64;
    ct_transform aug;
    ck_assert_int_eq(cp_augment(ctx, &aug, e, &ao), CT_OK);
    int64_t *first[2] = {NULL, NULL};
    int64_t firstn[2] = {0, 0};
    for (int run = 0; run < 2; run++) {
        ct_dataloader_opts lo = ct_dataloader_defaults();
        lo.batch_size = 6;
        lo.workers = run == 0 ? 0 : 3;
        lo.seed = 99;
        lo.transform = &aug;
        lo.collate.batch_first = true;
        ct_dataloader *dl = ct_dataloader_new(ctx, &ds, &lo);
        ck_assert(dl != NULL);
        ct_scope_begin(ctx);
        const ct_batch *b = ct_dataloader_next(dl);
        ck_assert(b != NULL);
        ck_assert_int_eq(b->rows, 6);
        ck_assert_int_le(b->steps, 64);
        firstn[run] = b->rows * b->steps;
        first[run] = malloc((size_t)firstn[run] * 8);
        memcpy(first[run], ct_data_i64(b->inputs), (size_t)firstn[run] * 8);
        ct_scope_end(ctx);
        ct_dataloader_free(dl);
    }
    ck_assert_int_eq(firstn[0], firstn[1]);
    ck_assert_mem_eq(first[0], first[1], (size_t)firstn[0] * 8);
    /* and it changed the data: not the plain crop of the pieces */
    ct_data_item it, plain;
    ct_item_init(&it);
    ct_item_init(&plain);
    ck_assert_int_eq(cp_dataset_get(d, 0, &plain), CT_OK);
    int changed = 0;
    for (uint64_t seed = 0; seed < 8; seed++) {
        ct_item_copy(&it, &plain);
        ct_rng r;
        ct_rng_seed(&r, seed);
        ck_assert_int_eq(ct_transform_apply(&aug, &it, &r), CT_OK);
        ck_assert_int_le(it.len, 64);
        ct_data_item again;
        ct_item_init(&again);
        ct_item_copy(&again, &plain);
        ct_rng_seed(&r, seed);
        ck_assert_int_eq(ct_transform_apply(&aug, &again, &r), CT_OK);
        assert_tokens(&again, it.tokens, it.len);
        ct_item_free(&again);
        bool same = true;
        for (int64_t i = 0; i < it.len && same; i++)
            same = i + it.offset < plain.len && it.tokens[i] == plain.tokens[i + it.offset];
        changed += !same;
        ct_item_free(&it);
    }
    ck_assert_int_ge(changed, 6);
    ct_item_free(&plain);
    free(first[0]);
    free(first[1]);
    ct_transform_free(&aug);
    /* melody: the default composes without a stretch (and works) */
    cp_encoding m = cp_encoding_default(CP_MELODY);
    ck_assert_int_eq(cp_augment(ctx, &aug, &m, NULL), CT_OK);
    const int64_t v[] = {mel(60), NO, mel(62), OFF};
    tokens_item(&it, v, 4);
    apply(&aug, &it, 1);
    ck_assert_int_eq(it.len, 4);
    ct_item_free(&it);
    ct_transform_free(&aug);
    ao = cp_augment_defaults();
    ao.stretch_lo = 2;
    ao.stretch_hi = 1;
    ck_assert_int_eq(cp_augment(ctx, &aug, e, &ao), CT_E_ARG);
    cp_dataset_free(d);
    ct_ctx_free(ctx);
    cp_stats_free(&st);
    tu_rm_rf(fx.dir);
}
END_TEST

/* ==== the default corpus ======================================================================= */
START_TEST(test_default_sources) {
    char root[512], p[1024];
    tmpdir(root, sizeof root, "default");
    ck_assert_str_eq(cp_default_package(0), "openttd-openmsx");
    ck_assert_str_eq(cp_default_dir(1), "/usr/share/games/simutrans/music");
    ck_assert_ptr_null(cp_default_package(2));
    /* openmsx through a dpkg list (with a non-MIDI file listed), simutrans through an
     * architecture-qualified list */
    snprintf(p, sizeof p, "%s/usr/share/games/openttd/baseset/openmsx", root);
    mkdirs(p);
    snprintf(p, sizeof p, "%s/usr/share/games/simutrans/music", root);
    mkdirs(p);
    snprintf(p, sizeof p, "%s/var/lib/dpkg/info", root);
    mkdirs(p);
    snprintf(p, sizeof p, "%s/usr/share/games/openttd/baseset/openmsx/tune_a.mid", root);
    write_song(p, 60, 8, 1);
    snprintf(p, sizeof p, "%s/usr/share/games/simutrans/music/01-Theme.MID", root);
    write_song(p, 64, 8, 2);
    snprintf(p, sizeof p, "%s/var/lib/dpkg/info/openttd-openmsx.list", root);
    const char *list1 = "/.\n/usr\n/usr/share/games/openttd/baseset/openmsx\n"
                        "/usr/share/games/openttd/baseset/openmsx/tune_a.mid\n"
                        "/usr/share/games/openttd/baseset/openmsx/readme.txt.gz\n";
    write_bytes(p, list1, strlen(list1));
    snprintf(p, sizeof p, "%s/var/lib/dpkg/info/simutrans-data:all.list", root);
    const char *list2 = "/usr/share/games/simutrans/music\n/usr/share/games/simutrans/music/01-Theme.MID\n";
    write_bytes(p, list2, strlen(list2));
    cp_default_opts d = {.dpkg_info_dir = NULL, .root = root};
    cp_sources s = {0};
    cp_error err;
    ck_assert_msg(cp_default_sources(&d, &s, &err) == CT_OK, "%s", err.message);
    ck_assert_int_eq(s.n, 2);
    ck_assert_str_eq(s.items[0].name, "openttd-openmsx/tune_a.mid");
    ASSERT_HAS(s.items[0].path, "/usr/share/games/openttd/baseset/openmsx/tune_a.mid");
    ck_assert_str_eq(s.items[1].name, "simutrans-data/01-Theme.MID");
    cp_sources_free(&s);
    /* build it */
    char out[600];
    snprintf(out, sizeof out, "%s/default.corpus", root);
    cp_build_opts o = cp_build_defaults(CP_MELODY);
    cp_stats st;
    ck_assert_msg(cp_default_build(&d, out, &o, &st, &err) == CT_OK, "%s", err.message);
    ck_assert_int_eq(st.files_used, 2);
    cp_stats_free(&st);
    /* no list for simutrans: its folder is walked */
    snprintf(p, sizeof p, "%s/var/lib/dpkg/info/simutrans-data:all.list", root);
    unlink(p);
    ck_assert_msg(cp_default_sources(&d, &s, &err) == CT_OK, "%s", err.message);
    ck_assert_int_eq(s.n, 2);
    ck_assert_str_eq(s.items[1].name, "simutrans-data/01-Theme.MID");
    cp_sources_free(&s);
    /* not installed at all */
    snprintf(p, sizeof p, "%s/usr/share/games/simutrans", root);
    tu_rm_rf(p);
    ck_assert_int_eq(cp_default_sources(&d, &s, &err), CT_E_IO);
    ASSERT_HAS(err.message, "the default corpus is not installed: Debian package simutrans-data");
    ASSERT_HAS(err.message, "run `make deps`");
    ASSERT_HAS(err.message, "cantor corpus build DIR");
    cp_sources_free(&s);
    /* listed by dpkg, but gone */
    snprintf(p, sizeof p, "%s/usr/share/games/openttd/baseset/openmsx/tune_a.mid", root);
    unlink(p);
    ck_assert_int_eq(cp_default_sources(&d, &s, &err), CT_E_IO);
    ASSERT_HAS(err.message, "dpkg lists 1 MIDI files of openttd-openmsx but 1 are missing");
    ASSERT_HAS(err.message, "--reinstall openttd-openmsx");
    cp_sources_free(&s);
    tu_rm_rf(root);
}
END_TEST

Suite *corpus_suite(void) {
    Suite *s = suite_create("corpus");
    TCase *tc = tcase_create("corpus");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_encoding_config);
    tcase_add_test(tc, test_hash_and_split);
    tcase_add_test(tc, test_sources_walk);
    tcase_add_test(tc, test_build_threads_identical_and_skips);
    tcase_add_test(tc, test_split_by_content);
    tcase_add_test(tc, test_read_back_matches_direct_encoding);
    tcase_add_test(tc, test_performance_split_at_silences);
    tcase_add_test(tc, test_build_errors);
    tcase_add_test(tc, test_extract_api);
    tcase_add_test(tc, test_config_round_trip);
    tcase_add_test(tc, test_corrupt_files);
    tcase_add_test(tc, test_writer);
    tcase_add_test(tc, test_stats_format);
    tcase_add_test(tc, test_dataset_loader);
    tcase_add_test(tc, test_dataset_pianoroll_frames);
    tcase_add_test(tc, test_transpose_melody);
    tcase_add_test(tc, test_transpose_performance_and_roll);
    tcase_add_test(tc, test_time_stretch);
    tcase_add_test(tc, test_velocity_jitter);
    tcase_add_test(tc, test_random_crop);
    tcase_add_test(tc, test_augment_determinism);
    tcase_add_test(tc, test_default_sources);
    suite_add_tcase(s, tc);
    return s;
}
