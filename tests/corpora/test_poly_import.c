/* tests/corpora/test_poly_import.c — corpora/poly_import.h: the polyphonic benchmark text layout
 * (train.txt / valid.txt / test.txt) imported as a piano-roll corpus with the published splits;
 * absent optional files, a missing train.txt, malformed text, bad options; and `cantor corpus
 * build` detecting the layout (--poly, --steps-per-quarter). The text fixtures are written here
 * under tests/tmp/ and removed. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "corpora/poly_import.h"
#include "testutil.h"

#define HAS(text, s) ck_assert_msg(strstr(text, s) != NULL, "expected \"%s\" in:\n%s", s, text)

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* two train pieces (3 and 2 steps, one silent step), one valid piece, one test piece */
static const char TRAIN[] = "60 64 67\n-\n21 108\n\n48\n48 55\n";
static const char VALID[] = "62 65\n62\n62 69 74\n";
static const char TEST[] = "36\n40\n43\n47\n";

static void make_dir(const char *dir, bool valid, bool test) {
    char p[256];
    mkdir("tmp", 0755);
    tu_rm_rf(dir);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    snprintf(p, sizeof p, "%s/train.txt", dir);
    write_text(p, TRAIN);
    if (valid) {
        snprintf(p, sizeof p, "%s/valid.txt", dir);
        write_text(p, VALID);
    }
    if (test) {
        snprintf(p, sizeof p, "%s/test.txt", dir);
        write_text(p, TEST);
    }
}

/* The frames of piece id must have exactly the listed pitches on at each step (-1 ends a step,
 * -2 ends the list). */
static void check_piece(const cp_corpus *c, int64_t id, cp_split split, const char *name, const int *pitches) {
    const cp_piece *p = cp_corpus_piece(c, id);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(p->split, split);
    ck_assert_str_eq(p->name, name);
    uint8_t *fr = calloc((size_t)p->len * 88, 1);
    cp_error err;
    memset(&err, 0, sizeof err);
    ck_assert_msg(cp_corpus_read_frames(c, id, fr, &err) == CT_OK, "%s", err.message);
    uint8_t want[88];
    int64_t t = 0;
    memset(want, 0, sizeof want);
    for (const int *q = pitches; *q != -2; q++) {
        if (*q == -1) {
            ck_assert_int_lt(t, p->len);
            ck_assert_msg(memcmp(fr + t * 88, want, 88) == 0, "%s: step %lld differs", name, (long long)t);
            memset(want, 0, sizeof want);
            t++;
        } else {
            want[*q - 21] = 1;
        }
    }
    ck_assert_int_eq(t, p->len);
    free(fr);
}

START_TEST(test_import_splits) {
    make_dir("tmp/pi_a", true, true);
    ck_assert(cp_poly_is_dir("tmp/pi_a"));
    ck_assert(!cp_poly_is_dir("tmp"));
    ck_assert(!cp_poly_is_dir(NULL));
    cp_poly_import_opts o = cp_poly_import_defaults();
    ck_assert_int_eq(o.steps_per_quarter, 2);
    o.steps_per_quarter = 1;
    cp_poly_import_result res;
    cp_error err;
    memset(&err, 0, sizeof err);
    ck_assert_msg(cp_poly_import_dir("tmp/pi_a", "tmp/pi_a.corpus", &o, &res, &err) == CT_OK, "%s", err.message);
    ck_assert_int_eq(res.pieces[CP_TRAIN], 2);
    ck_assert_int_eq(res.pieces[CP_VALID], 1);
    ck_assert_int_eq(res.pieces[CP_TEST], 1);
    ck_assert_int_eq(res.steps[CP_TRAIN], 5);
    ck_assert_int_eq(res.steps[CP_VALID], 3);
    ck_assert_int_eq(res.steps[CP_TEST], 4);
    ck_assert(res.present[CP_TRAIN] && res.present[CP_VALID] && res.present[CP_TEST]);
    cp_corpus *c = NULL;
    ck_assert_msg(cp_corpus_open("tmp/pi_a.corpus", &c, &err) == CT_OK, "%s", err.message);
    const cp_encoding *e = cp_corpus_encoding(c);
    ck_assert_int_eq(e->kind, CP_PIANOROLL);
    ck_assert_int_eq(e->roll_grid.steps_per_quarter, 1);
    ck_assert_int_eq(cp_corpus_num_pieces(c), 4);
    ck_assert_int_eq(cp_corpus_split_pieces(c, CP_TRAIN), 2);
    ck_assert_int_eq(cp_corpus_split_steps(c, CP_TRAIN), 5);
    ck_assert_int_eq(cp_corpus_split_pieces(c, CP_VALID), 1);
    ck_assert_int_eq(cp_corpus_split_pieces(c, CP_TEST), 1);
    ck_assert_double_eq_tol(cp_corpus_split_seconds(c, CP_TEST), 2.0, 1e-9);   /* 4 quarters at 120 qpm */
    /* every piece, in file order, each step's keys exactly */
    static const int p0[] = {60, 64, 67, -1, -1, 21, 108, -1, -2}, p1[] = {48, -1, 48, 55, -1, -2},
                     p2[] = {62, 65, -1, 62, -1, 62, 69, 74, -1, -2}, p3[] = {36, -1, 40, -1, 43, -1, 47, -1, -2};
    check_piece(c, 0, CP_TRAIN, "train.txt#0", p0);
    check_piece(c, 1, CP_TRAIN, "train.txt#1", p1);
    check_piece(c, 2, CP_VALID, "valid.txt#0", p2);
    check_piece(c, 3, CP_TEST, "test.txt#0", p3);
    ck_assert_msg(cp_corpus_verify(c, &err) == CT_OK, "%s", err.message);
    cp_corpus_close(c);
    /* the default grid: eighth notes */
    ck_assert_msg(cp_poly_import_dir("tmp/pi_a", "tmp/pi_a.corpus", NULL, NULL, &err) == CT_OK, "%s", err.message);
    ck_assert_msg(cp_corpus_open("tmp/pi_a.corpus", &c, &err) == CT_OK, "%s", err.message);
    ck_assert_int_eq(cp_corpus_encoding(c)->roll_grid.steps_per_quarter, 2);
    cp_corpus_close(c);
    tu_rm_rf("tmp/pi_a");
    remove("tmp/pi_a.corpus");
}
END_TEST

START_TEST(test_import_optional_and_errors) {
    cp_poly_import_result res;
    cp_error err;
    memset(&err, 0, sizeof err);
    /* no valid.txt, no test.txt: empty splits, said so */
    make_dir("tmp/pi_b", false, false);
    ck_assert_msg(cp_poly_import_dir("tmp/pi_b", "tmp/pi_b.corpus", NULL, &res, &err) == CT_OK, "%s", err.message);
    ck_assert(res.present[CP_TRAIN] && !res.present[CP_VALID] && !res.present[CP_TEST]);
    ck_assert_int_eq(res.pieces[CP_TRAIN], 2);
    ck_assert_int_eq(res.pieces[CP_VALID], 0);
    remove("tmp/pi_b.corpus");
    /* no train.txt */
    memset(&err, 0, sizeof err);
    ck_assert_int_eq(cp_poly_import_dir("tmp", "tmp/pi_b.corpus", NULL, &res, &err), CT_E_IO);
    HAS(err.message, "tmp: no train.txt there");
    ck_assert(!exists("tmp/pi_b.corpus"));
    /* a malformed valid.txt: the reader's message names the file; nothing is written */
    write_text("tmp/pi_b/valid.txt", "60 64\n200\n");
    memset(&err, 0, sizeof err);
    ck_assert_int_eq(cp_poly_import_dir("tmp/pi_b", "tmp/pi_b.corpus", NULL, &res, &err), CT_E_FORMAT);
    HAS(err.message, "valid.txt");
    ck_assert(!exists("tmp/pi_b.corpus"));
    /* bad options */
    cp_poly_import_opts o = cp_poly_import_defaults();
    o.steps_per_quarter = 0;
    memset(&err, 0, sizeof err);
    ck_assert_int_eq(cp_poly_import_dir("tmp/pi_b", "tmp/pi_b.corpus", &o, &res, &err), CT_E_ARG);
    HAS(err.message, "steps_per_quarter 0 is out of range");
    ck_assert_int_eq(cp_poly_import_dir(NULL, "x", NULL, NULL, &err), CT_E_ARG);
    tu_rm_rf("tmp/pi_b");
}
END_TEST

/* Runs `cantor ARGS 2>&1`; returns the exit status and fills out. */
static int run(const char *args, char *out, size_t n) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", tu_cantor_bin(), args);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t len = fread(out, 1, n - 1, p);
    out[len] = 0;
    char sink[4096];
    while (fread(sink, 1, sizeof sink, p) > 0) {}
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(test_cli_build) {
    static char out[16384];
    make_dir("tmp/pi_c", true, false);
    ck_assert_int_eq(run("corpus build tmp/pi_c -o tmp/pi_c.corpus --steps-per-quarter 1", out, sizeof out), 0);
    HAS(out, "polyphonic benchmark text");
    HAS(out, "train      2 pieces           5 steps  (train.txt)");
    HAS(out, "valid      1 pieces           3 steps  (valid.txt)");
    HAS(out, "no test.txt: the split is empty");
    HAS(out, "wrote tmp/pi_c.corpus (pianoroll, 1 step per quarter)");
    ck_assert_int_eq(run("corpus stats tmp/pi_c.corpus", out, sizeof out), 0);
    HAS(out, "pianoroll corpus");
    ck_assert_int_eq(run("corpus build --poly tmp/pi_c -o tmp/pi_c.corpus --encoding pianoroll --quiet", out,
                         sizeof out), 0);
    HAS(out, "2 steps per quarter");
    /* refusals: another encoding, --poly on a folder without train.txt, a bad grid */
    ck_assert_int_eq(run("corpus build tmp/pi_c -o tmp/pi_x.corpus --encoding melody", out, sizeof out), 2);
    HAS(out, "imports as a pianoroll corpus");
    mkdir("tmp/pi_c/empty", 0755);
    ck_assert_int_eq(run("corpus build --poly tmp/pi_c/empty -o tmp/pi_x.corpus", out, sizeof out), 1);
    HAS(out, "no train.txt there");
    ck_assert_int_eq(run("corpus build tmp/pi_c -o tmp/pi_x.corpus --steps-per-quarter 0", out, sizeof out), 2);
    HAS(out, "--steps-per-quarter");
    ck_assert(!exists("tmp/pi_x.corpus"));
    ck_assert_int_eq(run("help corpus", out, sizeof out), 0);
    HAS(out, "--poly");
    HAS(out, "--steps-per-quarter");
    tu_rm_rf("tmp/pi_c");
    remove("tmp/pi_c.corpus");
}
END_TEST

Suite *poly_import_suite(void) {
    Suite *s = suite_create("poly_import");
    TCase *tc = tcase_create("poly_import");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_import_splits);
    tcase_add_test(tc, test_import_optional_and_errors);
    tcase_add_test(tc, test_cli_build);
    suite_add_tcase(s, tc);
    return s;
}
