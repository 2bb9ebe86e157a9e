/* tests/apps/test_cli.c — the `cantor` command as a user runs it: exit codes and messages.
 * Runs ../bin/cantor (built by `make test`) in a shell and reads what it prints. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "apps/cli.h"
#include "testutil.h"

/* Runs `cantor ARGS 2>&1` (tu_cantor_bin(): $CANTOR_BIN, else ../bin/cantor), returns the exit
 * status and fills out (NUL-terminated). */
static int run(const char *args, char *out, size_t n) { return tu_run_cantor(args, out, n); }

/* cli_json_escape: the escapes, the snprintf-like length and truncation, embedded NULs, UTF-8 */
START_TEST(test_json_escape) {
    char buf[64];
    const char in[] = "a\"b\\c\nd\re\tf\001g\177h\xc3\xa9";
    const char want[] = "\"a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u007fh\xc3\xa9\"";
    size_t n = cli_json_escape(buf, sizeof buf, in, strlen(in));
    ck_assert_str_eq(buf, want);
    ck_assert_uint_eq(n, strlen(want));
    ck_assert_uint_eq(cli_json_escape(NULL, 0, in, strlen(in)), strlen(want));
    /* truncated: n - 1 bytes and a NUL, the whole length still returned */
    memset(buf, 'x', sizeof buf);
    ck_assert_uint_eq(cli_json_escape(buf, 5, in, strlen(in)), strlen(want));
    ck_assert_str_eq(buf, "\"a\\\"");
    /* a NUL inside the length is a control byte; the empty string is two quotes */
    ck_assert_uint_eq(cli_json_escape(buf, sizeof buf, "p\0q", 3), 10);
    ck_assert_str_eq(buf, "\"p\\u0000q\"");
    ck_assert_uint_eq(cli_json_escape(buf, sizeof buf, "", 0), 2);
    ck_assert_str_eq(buf, "\"\"");
}
END_TEST

START_TEST(test_version_and_help) {
    char out[8192];
    ck_assert_int_eq(run("--version", out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "cantor " CT_VERSION));
    ck_assert_ptr_nonnull(strstr(out, "BLAS: OpenBLAS"));
    ck_assert_ptr_nonnull(strstr(out, "CUDA: "));
    ck_assert_int_eq(run("version", out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "threads)"));
    ck_assert_int_eq(run("help", out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "render"));
    ck_assert_int_eq(run("help render", out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "--rate HZ         sample rate (default 44100)"));
    ck_assert_int_eq(run("render --help", out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "usage: cantor render"));
    ck_assert_int_eq(run("help nosuch", out, sizeof out), 2);
    ck_assert_ptr_nonnull(strstr(out, "no command 'nosuch'"));
    ck_assert_int_eq(run("", out, sizeof out), 2);
}
END_TEST

START_TEST(test_bad_flags) {
    char out[8192];
    ck_assert_int_eq(run("frobnicate", out, sizeof out), 2);
    ck_assert_ptr_nonnull(strstr(out, "unexpected argument 'frobnicate'"));
    ck_assert_int_eq(run("render --rate 12 a.mid b.wav", out, sizeof out), 2);
    ck_assert_ptr_nonnull(strstr(out, "--rate '12': expected a whole number from 8000 to 192000"));
    ck_assert_ptr_nonnull(strstr(out, "cantor help render"));
    ck_assert_int_eq(run("render --rate 44100x a.mid b.wav", out, sizeof out), 2);
    ck_assert_int_eq(run("render --nope a.mid b.wav", out, sizeof out), 2);
    ck_assert_ptr_nonnull(strstr(out, "unknown option '--nope'"));
    ck_assert_int_eq(run("render \xe2\x80\x94rate 8000 a.mid b.wav", out, sizeof out), 2);
    ck_assert_ptr_nonnull(strstr(out, "non-ASCII character"));
    ck_assert_int_eq(run("render --renderer timidity a.mid b.wav", out, sizeof out), 2);
    ck_assert_ptr_nonnull(strstr(out, "expected auto, builtin or fluidsynth"));
    ck_assert_int_eq(run("render only-one.mid", out, sizeof out), 2);
}
END_TEST

START_TEST(test_render) {
    char out[8192];
    mkdir("tmp", 0755);
    remove("tmp/cli_render.wav");
    ck_assert_int_eq(run("render fixtures/midi/drums.mid tmp/cli_render.wav --renderer builtin --rate 22050", out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "9 notes"));
    struct stat st;
    ck_assert_int_eq(stat("tmp/cli_render.wav", &st), 0);
    ck_assert_int_gt(st.st_size, 22050);          /* about 2 s of 16-bit stereo at least */
    remove("tmp/cli_render.wav");
    /* a file it cannot read: exit 1, the message names the file */
    ck_assert_int_eq(run("render fixtures/midi/missing.mid tmp/x.wav", out, sizeof out), 1);
    ck_assert_ptr_nonnull(strstr(out, "fixtures/midi/missing.mid"));
    ck_assert_int_eq(run("render fixtures/midi/drums.txt tmp/x.wav", out, sizeof out), 1);
    ck_assert_ptr_nonnull(strstr(out, "drums.txt"));
    ck_assert_int_eq(run("render fixtures/midi/drums.mid tmp/x.mp9", out, sizeof out), 1);
}
END_TEST

START_TEST(test_corpus) {
    char out[16384];
    mkdir("tmp", 0755);
    remove("tmp/cli.corpus");
    /* the fixtures hold broken files too: they are skipped with their reasons, not fatal */
    ck_assert_int_eq(run("corpus build fixtures/midi -o tmp/cli.corpus --encoding performance --quiet", out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "failed    regress/tick_2147483647.mid"));
    ck_assert_ptr_nonnull(strstr(out, "wrote tmp/cli.corpus"));
    ck_assert_int_eq(run("corpus stats tmp/cli.corpus", out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "performance corpus"));
    ck_assert_ptr_nonnull(strstr(out, "train"));
    /* a file that is not a corpus, a bad encoding, missing -o */
    ck_assert_int_eq(run("corpus stats fixtures/midi/drums.mid", out, sizeof out), 1);
    ck_assert_ptr_nonnull(strstr(out, "not a cantor corpus file"));
    ck_assert_int_eq(run("corpus build fixtures/midi --encoding jazz -o tmp/x.corpus", out, sizeof out), 2);
    ck_assert_ptr_nonnull(strstr(out, "--encoding 'jazz'"));
    ck_assert_int_eq(run("corpus build fixtures/midi", out, sizeof out), 2);
    ck_assert_ptr_nonnull(strstr(out, "needs -o FILE"));
    ck_assert_int_eq(run("corpus frob", out, sizeof out), 2);
    remove("tmp/cli.corpus");
}
END_TEST

START_TEST(test_train_and_sample) {
    char out[16384];
    mkdir("tmp", 0755);
    ck_assert_int_eq(run("corpus build fixtures/midi -o tmp/cli_t.corpus --encoding performance --quiet", out, sizeof out), 0);
    ck_assert_int_eq(run("train --corpus tmp/cli_t.corpus --out tmp/cli_run --steps 12 --layers 1 --hidden 16 "
                         "--embed 8 --batch 4 --window 24 --valid-every 6 --workers 1", out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "model: performance LSTM 1x16"));
    ck_assert_ptr_nonnull(strstr(out, "valid loss"));
    ck_assert_ptr_nonnull(strstr(out, "saved tmp/cli_run/model.safetensors"));
    struct stat st;
    ck_assert_int_eq(stat("tmp/cli_run/metrics.jsonl", &st), 0);
    ck_assert_int_gt(st.st_size, 100);
    ck_assert_int_eq(run("sample --ckpt tmp/cli_run/model.safetensors --out tmp/cli_s.mid --length 64 --seed 7", out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "seed 7"));
    ck_assert_int_eq(stat("tmp/cli_s.mid", &st), 0);
    /* the same seed gives the same file */
    FILE *a = fopen("tmp/cli_s.mid", "rb");
    char b1[65536], b2[65536];
    size_t n1 = fread(b1, 1, sizeof b1, a);
    fclose(a);
    ck_assert_int_eq(run("sample --ckpt tmp/cli_run/model.safetensors --out tmp/cli_s.mid --length 64 --seed 7", out, sizeof out), 0);
    a = fopen("tmp/cli_s.mid", "rb");
    size_t n2 = fread(b2, 1, sizeof b2, a);
    fclose(a);
    ck_assert_int_eq(n1, n2);
    ck_assert_int_eq(memcmp(b1, b2, n1), 0);
    /* errors: not a checkpoint, missing options, a bad cell, a GPU that is not there */
    ck_assert_int_eq(run("sample --ckpt fixtures/midi/drums.mid --out tmp/x.mid", out, sizeof out), 1);
    ck_assert_ptr_nonnull(strstr(out, "fixtures/midi/drums.mid"));
    ck_assert_int_eq(run("sample --ckpt tmp/cli_run/model.safetensors --out tmp/x.wav", out, sizeof out), 2);
    ck_assert_int_eq(run("train --out tmp/cli_run", out, sizeof out), 2);
    ck_assert_ptr_nonnull(strstr(out, "--corpus FILE is required"));
    ck_assert_int_eq(run("train --corpus tmp/cli_t.corpus --out tmp/cli_run --cell transformer", out, sizeof out), 2);
    ck_assert_int_eq(run("train --corpus tmp/cli_t.corpus --out tmp/cli_run --device cuda:1023", out, sizeof out), 1);
    ck_assert_int_eq(run("train --corpus fixtures/midi/drums.mid --out tmp/cli_run", out, sizeof out), 1);
    ck_assert_ptr_nonnull(strstr(out, "not a cantor corpus file"));
    remove("tmp/cli_s.mid");
    tu_rm_rf("tmp/cli_run");
    remove("tmp/cli_t.corpus");
}
END_TEST

Suite *cli_suite(void) {
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cantor");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_json_escape);
    tcase_add_test(tc, test_version_and_help);
    tcase_add_test(tc, test_bad_flags);
    tcase_add_test(tc, test_render);
    tcase_add_test(tc, test_corpus);
    tcase_add_test(tc, test_train_and_sample);
    suite_add_tcase(s, tc);
    return s;
}
