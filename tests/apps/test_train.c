/* tests/apps/test_train.c — `cantor train` as a user runs it: a tiny corpus made here, training,
 * checkpoints, a bit-exact resume (also across worker counts and after SIGTERM), the guard
 * against NaN and spikes, every usage error, resume refusals, a missing corpus, a full disk
 * while checkpointing, a folder of MIDI files. Runs ../bin/cantor (built by `make test`; the
 * environment variable CANTOR_BIN names another binary). Files go under tmp/ and are removed. */
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audio/midi.h"
#include "engine/device.h"
#include "corpora/corpus.h"
#include "engine/safetensors.h"
#include "models/composer.h"
#include "testutil.h"

#define TINY "--layers 2 --hidden 16 --embedding 8 --batch 4 --window 16 --seed 7 "

static const char *bin(void) { return tu_cantor_bin(); }

/* Runs `[env] cantor ARGS 2>&1`; returns the exit status and fills out. */
static int run_env(const char *env, const char *args, char *out, size_t n) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s %s", env ? env : "", bin(), args);
    return tu_run(cmd, out, n);
}
static int run(const char *args, char *out, size_t n) { return run_env(NULL, args, out, n); }

#define HAS(text, s) ck_assert_msg(strstr(text, s) != NULL, "expected \"%s\" in:\n%s", s, text)
#define LACKS(text, s) ck_assert_msg(strstr(text, s) == NULL, "did not expect \"%s\" in:\n%s", s, text)

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* A melody corpus with explicit splits: pieces of a few repeating motifs (something to learn). */
static void write_corpus(const char *path, int n_train, int n_valid, int64_t len) {
    cp_encoding e = cp_encoding_default(CP_MELODY);
    cp_writer *w = NULL;
    cp_error err;
    memset(&err, 0, sizeof err);
    ck_assert_msg(cp_writer_open(&w, path, &e, 10, 10, &err) == CT_OK, "%s", err.message);
    int vocab = cp_encoding_vocab(&e);
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)len);
    for (int i = 0; i < n_train + n_valid; i++) {
        for (int64_t j = 0; j < len; j++)
            tok[j] = j % 4 == 3 ? 0 : 2 + (int32_t)((j / 4 * (i % 3 + 1) + j % 4 * 2 + i) % (vocab - 2));
        char name[32];
        snprintf(name, sizeof name, "p%02d.mid", i);
        cp_piece_in p = {.name = name, .content_hash = 1000 + (uint64_t)i, .split = i < n_train ? CP_TRAIN : CP_VALID,
                         .piece = 0, .file_index = i, .instrument = -1, .start = 0, .duration_s = (double)len / 8,
                         .tokens = tok, .len = len};
        ck_assert_msg(cp_writer_add(w, &p, &err) == CT_OK, "%s", err.message);
    }
    free(tok);
    ck_assert_msg(cp_writer_finish(w, NULL, &err) == CT_OK, "%s", err.message);
}

/* Every tensor of two safetensors files, bit for bit. */
static void assert_same_weights(const char *a, const char *b) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_safetensors *fa = ct_safetensors_open(ctx, a), *fb = ct_safetensors_open(ctx, b);
    ck_assert_msg(fa && fb, "%s / %s: %s", a, b, ct_ctx_error(ctx));
    ck_assert_int_eq(ct_safetensors_count(fa), ct_safetensors_count(fb));
    ck_assert_int_gt(ct_safetensors_count(fa), 3);
    ct_scope_begin(ctx);
    for (int i = 0; i < ct_safetensors_count(fa); i++) {
        const char *name = ct_safetensors_name(fa, i);
        ct_tensor *x = ct_safetensors_get(fa, name), *y = ct_safetensors_get(fb, name);
        ck_assert_ptr_nonnull(x);
        ck_assert_ptr_nonnull(y);
        ck_assert_int_eq(ct_numel(x), ct_numel(y));
        ck_assert_msg(memcmp(ct_data(x), ct_data(y), (size_t)ct_numel(x) * 4) == 0, "%s differs between %s and %s",
                      name, a, b);
    }
    ct_scope_end(ctx);
    ct_safetensors_close(fa);
    ct_safetensors_close(fb);
    ct_ctx_free(ctx);
}

typedef struct saved_state {
    int64_t step, opt_step;
    float *arrays[4];
    int n_arrays;
    int64_t size;
    uint8_t rng[CT_RNG_STATE_BYTES];
    char loader[512];
    char *blob;
} saved_state;

/* The optimizer a checkpoint state is loaded into (its kind and whether SGD has momentum must
 * match the run's). */
typedef struct ckpt_optim { ct_optim_kind kind; double momentum; } ckpt_optim;
static const ckpt_optim ADAM = {CT_OPTIM_ADAM, 0};

static void load_state(const char *weights, const char *state, saved_state *s, ckpt_optim ko) {
    memset(s, 0, sizeof *s);
    ct_ctx *ctx = tu_ctx(NULL);
    ct_module *m = cc_load(ctx, weights);
    ck_assert_msg(m != NULL, "%s: %s", weights, ct_ctx_error(ctx));
    ct_optim *opt = ko.kind == CT_OPTIM_SGD ? ct_sgd_new(m, (ct_sgd_config){.lr = 0.1, .momentum = ko.momentum})
                    : ko.kind == CT_OPTIM_ADAMW ? ct_adamw_new(m, ct_adamw_defaults(1e-3))
                                                : ct_adam_new(m, ct_adam_defaults(1e-3));
    ck_assert_ptr_nonnull(opt);
    ct_rng rng;
    ct_rng_seed(&rng, 99);
    ct_rng *rngs[] = {&rng};
    size_t cap = 1 << 20, got = 0;
    s->blob = calloc(1, cap + 1);
    ck_assert_msg(ct_train_state_load(state, opt, &s->step, rngs, 1, s->blob, cap, &got) == CT_OK, "%s: %s", state,
                  ct_ctx_error(ctx));
    s->opt_step = ct_optim_get_step(opt);
    s->n_arrays = ct_optim_state_count(opt);
    s->size = ct_optim_state_size(opt);
    for (int i = 0; i < s->n_arrays; i++) {
        s->arrays[i] = malloc(sizeof(float) * (size_t)s->size);
        ck_assert_int_eq(ct_optim_get_state(opt, i, s->arrays[i], s->size), CT_OK);
    }
    ct_rng_save(&rng, s->rng);
    const char *l = strstr(s->blob, "\nloader ");
    ck_assert_ptr_nonnull(l);
    snprintf(s->loader, sizeof s->loader, "%.*s", (int)strcspn(l + 8, "\n"), l + 8);
    ct_optim_free(opt);
    ct_module_free(m);
    ct_ctx_free(ctx);
}

static void free_state(saved_state *s) {
    for (int i = 0; i < s->n_arrays; i++) free(s->arrays[i]);
    free(s->blob);
}

/* The checkpoint pairs of two runs at a step hold the same weights, moments, generators and
 * data position. */
static void assert_same_checkpoint_opt(const char *run_a, const char *run_b, int64_t step, ckpt_optim ko) {
    char wa[256], wb[256], sa_[256], sb_[256];
    snprintf(wa, sizeof wa, "%s/ckpt-%08lld.safetensors", run_a, (long long)step);
    snprintf(wb, sizeof wb, "%s/ckpt-%08lld.safetensors", run_b, (long long)step);
    snprintf(sa_, sizeof sa_, "%s/ckpt-%08lld.state", run_a, (long long)step);
    snprintf(sb_, sizeof sb_, "%s/ckpt-%08lld.state", run_b, (long long)step);
    assert_same_weights(wa, wb);
    saved_state a, b;
    load_state(wa, sa_, &a, ko);
    load_state(wb, sb_, &b, ko);
    ck_assert_int_eq(a.step, step);
    ck_assert_int_eq(b.step, step);
    ck_assert_int_eq(a.opt_step, b.opt_step);
    const int arrays = ko.kind != CT_OPTIM_SGD ? 2 : ko.momentum > 0 ? 1 : 0;
    ck_assert_int_eq(a.n_arrays, arrays);
    ck_assert_int_eq(b.n_arrays, arrays);
    for (int i = 0; i < a.n_arrays; i++)
        ck_assert_msg(memcmp(a.arrays[i], b.arrays[i], sizeof(float) * (size_t)a.size) == 0, "optimizer state %d differs", i);
    ck_assert_msg(memcmp(a.rng, b.rng, sizeof a.rng) == 0, "the dropout generator differs");
    ck_assert_str_eq(a.loader, b.loader);
    free_state(&a);
    free_state(&b);
}

static void assert_same_checkpoint(const char *run_a, const char *run_b, int64_t step) {
    assert_same_checkpoint_opt(run_a, run_b, step, ADAM);
}

static int count_lines(const char *path, const char *needle) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[8192];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (!needle || strstr(line, needle)) n++;
    fclose(f);
    return n;
}

/* The line of metrics.jsonl for a step (static buffer), or "". */
static const char *metrics_line(const char *run_dir, int64_t step) {
    static char line[8192];
    char path[256], key[48];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    snprintf(key, sizeof key, "{\"step\":%lld,", (long long)step);
    FILE *f = fopen(path, "r");
    if (!f) return "";
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, strlen(key))) {
            fclose(f);
            return line;
        }
    fclose(f);
    return "";
}


/* A piano-roll corpus with explicit splits: chords that move in a pattern (key k of piece i is on
 * at step t when (k + t + i) % 7 == 0 and 40 <= k < 60, key 30 on even steps), so the keys'
 * frequencies differ; the valid pieces follow another pattern. The
 * train split's on-frames per key go to counts (88) and its frames to *total (both may be NULL). */
static void write_roll_corpus(const char *path, int n_train, int n_valid, int64_t len, int64_t *counts,
                              int64_t *total) {
    cp_encoding e = cp_encoding_default(CP_PIANOROLL);
    cp_writer *w = NULL;
    cp_error err;
    memset(&err, 0, sizeof err);
    ck_assert_msg(cp_writer_open(&w, path, &e, 0, 0, &err) == CT_OK, "%s", err.message);
    uint8_t *fr = calloc((size_t)len * 88, 1);
    if (counts) memset(counts, 0, sizeof(int64_t) * 88);
    if (total) *total = 0;
    for (int i = 0; i < n_train + n_valid; i++) {
        int64_t plen = len - i % 3;   /* lengths differ */
        for (int64_t t = 0; t < plen; t++)
            for (int k = 0; k < 88; k++) {
                /* the valid pieces follow another pattern: the model overfits the train one, so
                 * the valid loss stops improving (what the plateau tests need) */
                uint8_t on = i < n_train ? (k >= 40 && k < 60 && (k + t + i) % 7 == 0) || (k == 30 && t % 2 == 0)
                                         : (k >= 50 && k < 70 && (k + 3 * t) % 5 == 0) || (k == 30 && t % 2 == 1);
                fr[t * 88 + k] = on;
                if (counts && i < n_train) counts[k] += on;
            }
        if (total && i < n_train) *total += plen;
        char name[32];
        snprintf(name, sizeof name, "r%02d.mid", i);
        cp_piece_in p = {.name = name, .content_hash = 2000 + (uint64_t)i, .split = i < n_train ? CP_TRAIN : CP_VALID,
                         .piece = 0, .file_index = i, .instrument = -1, .start = 0, .duration_s = (double)plen / 8,
                         .frames = fr, .len = plen};
        ck_assert_msg(cp_writer_add(w, &p, &err) == CT_OK, "%s", err.message);
    }
    free(fr);
    ck_assert_msg(cp_writer_finish(w, NULL, &err) == CT_OK, "%s", err.message);
}

/* A performance corpus (388 classes: velocity bins on) with explicit splits: each piece a run of
 * (VELOCITY bin, NOTE_ON p, TIME_SHIFT, NOTE_OFF p) groups, bins and pitches moving with i. */
static void write_perf_corpus(const char *path, int n_train, int n_valid, int64_t groups) {
    cp_encoding e = cp_encoding_default(CP_PERFORMANCE);
    ck_assert_int_eq(e.perf.config.num_velocity_bins, CM_PERF_NUM_VELOCITY_BINS);
    cp_writer *w = NULL;
    cp_error err;
    memset(&err, 0, sizeof err);
    ck_assert_msg(cp_writer_open(&w, path, &e, 0, 0, &err) == CT_OK, "%s", err.message);
    const int64_t len = groups * 4;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)len);
    for (int i = 0; i < n_train + n_valid; i++) {
        for (int64_t g = 0; g < groups; g++) {
            const int pitch = 60 + (int)((g * 5 + i) % 12), bin = 8 + (int)((g + 3 * i) % 16);
            tok[4 * g] = CM_PERF_VELOCITY_OFFSET + bin - 1;
            tok[4 * g + 1] = CM_PERF_NOTE_ON_OFFSET + pitch;
            tok[4 * g + 2] = CM_PERF_TIME_SHIFT_OFFSET + 10 + (int)(g % 3) * 10 - 1;
            tok[4 * g + 3] = CM_PERF_NOTE_OFF_OFFSET + pitch;
        }
        char name[32];
        snprintf(name, sizeof name, "v%02d.mid", i);
        cp_piece_in p = {.name = name, .content_hash = 3000 + (uint64_t)i, .split = i < n_train ? CP_TRAIN : CP_VALID,
                         .piece = 0, .file_index = i, .instrument = -1, .start = 0,
                         .duration_s = (double)groups * 0.2, .tokens = tok, .len = len};
        ck_assert_msg(cp_writer_add(w, &p, &err) == CT_OK, "%s", err.message);
    }
    free(tok);
    ck_assert_msg(cp_writer_finish(w, NULL, &err) == CT_OK, "%s", err.message);
}

/* One float tensor of a safetensors file (n values copied into out). */
static void read_tensor(const char *path, const char *name, float *out, int64_t n) {
    ct_ctx *ctx = tu_ctx(NULL);
    ct_safetensors *f = ct_safetensors_open(ctx, path);
    ck_assert_msg(f != NULL, "%s: %s", path, ct_ctx_error(ctx));
    ct_scope_begin(ctx);
    ct_tensor *x = ct_safetensors_get(f, name);
    ck_assert_msg(x != NULL, "%s: no %s", path, name);
    ck_assert_int_eq(ct_numel(x), n);
    memcpy(out, ct_data(x), sizeof(float) * (size_t)n);
    ct_scope_end(ctx);
    ct_safetensors_close(f);
    ct_ctx_free(ctx);
}

/* Whether the n bytes at p hold the string s. */
static bool has_bytes(const char *p, size_t n, const char *s) {
    size_t k = strlen(s);
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(p + i, s, k)) return true;
    return false;
}

/* A number after "key": in a JSON line; NAN when absent. */
static double json_num_of(const char *line, const char *key) {
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(line, k);
    return p && strncmp(p + strlen(k), "null", 4) ? strtod(p + strlen(k), NULL) : NAN;
}

static char out[65536];

/* ---- train, checkpoint, resume bit-exactly ---------------------------------------------------- */
#define RUN_OPTS TINY "--dropout 0.1 --lr 0.01 --lr-schedule cosine --warmup 3 --lr-decay-steps 16 " \
                 "--checkpoint-every 4 --keep 2 --valid-every 5 --sample-seconds 1 "

START_TEST(test_resume_bit_exact) {
    mkdir("tmp", 0755);
    tu_rm_rf("tmp/tr_a");
    tu_rm_rf("tmp/tr_b");
    tu_rm_rf("tmp/tr_c");
    write_corpus("tmp/tr.corpus", 12, 3, 60);
    /* A: 16 steps in one go (no workers) */
    ck_assert_int_eq(run("train --corpus tmp/tr.corpus --out tmp/tr_a --steps 16 --workers 0 " RUN_OPTS, out, sizeof out), 0);
    HAS(out, "device: cpu");
    HAS(out, "BLAS: ");
    HAS(out, "model: melody LSTM 2x16");
    HAS(out, "parameters");
    HAS(out, "train 12 pieces");
    HAS(out, "valid 3 pieces");
    HAS(out, "the train split is tiny");
    HAS(out, "valid loss");
    HAS(out, "saved tmp/tr_a/model.safetensors");
    /* the files: the last two checkpoints, latest, best, metrics, samples, run.json */
    ck_assert(exists("tmp/tr_a/ckpt-00000016.safetensors") && exists("tmp/tr_a/ckpt-00000016.state"));
    ck_assert(exists("tmp/tr_a/ckpt-00000012.safetensors") && exists("tmp/tr_a/ckpt-00000012.state"));
    ck_assert(!exists("tmp/tr_a/ckpt-00000008.safetensors") && !exists("tmp/tr_a/ckpt-00000008.state"));
    ck_assert(!exists("tmp/tr_a/ckpt-00000004.safetensors"));
    ck_assert(exists("tmp/tr_a/best.safetensors") && exists("tmp/tr_a/run.json"));
    assert_same_weights("tmp/tr_a/model.safetensors", "tmp/tr_a/ckpt-00000016.safetensors");
    ck_assert_int_eq(count_lines("tmp/tr_a/metrics.jsonl", NULL), 16);
    ck_assert_int_eq(count_lines("tmp/tr_a/metrics.jsonl", "}\n"), 16);   /* whole objects */
    ck_assert_int_eq(count_lines("tmp/tr_a/samples.jsonl", "}\n"), 8);
    const char *l = metrics_line("tmp/tr_a", 5);
    HAS(l, "\"epoch\":1");
    HAS(l, "\"time\":");
    HAS(l, "\"wall\":");
    HAS(l, "\"train_loss\":");
    HAS(l, "\"lr\":");
    HAS(l, "\"grad_norm\":");
    HAS(l, "\"tokens_per_s\":");
    HAS(l, "\"valid_loss\":");
    HAS(l, "\"skipped\":false");
    LACKS(metrics_line("tmp/tr_a", 4), "valid_loss");
    HAS(metrics_line("tmp/tr_a", 3), "\"epoch_end\":true");   /* 12 pieces, batch 4 */
    HAS(metrics_line("tmp/tr_a", 3), "\"valid_loss\":");      /* validated per epoch */
    HAS(metrics_line("tmp/tr_a", 4), "\"checkpoint\":\"ckpt-00000004.safetensors\"");
    /* the gallery: a sample at each validation (steps 3, 5, 6, 9, 10, 12, 15, 16) */
    ck_assert(exists("tmp/tr_a/samples/step-00000005.mid") && exists("tmp/tr_a/samples/step-00000005.wav"));
    ck_assert_int_eq(count_lines("tmp/tr_a/samples.jsonl", NULL), 8);
    ck_assert_int_eq(count_lines("tmp/tr_a/samples.jsonl",
                                 "{\"step\":5,\"sample\":\"samples/step-00000005.mid\",\"audio\":\"samples/step-00000005.wav\""),
                     1);
    struct stat st;
    ck_assert_int_eq(stat("tmp/tr_a/samples/step-00000016.wav", &st), 0);
    ck_assert_int_gt(st.st_size, 22050);   /* about a second of 16-bit mono at 22050 Hz */
    /* the latest weights rebuild their model (what `cantor sample --ckpt` does) */
    ct_ctx *ctx = tu_ctx(NULL);
    ct_module *m = cc_load(ctx, "tmp/tr_a/model.safetensors");
    ck_assert_msg(m != NULL, "%s", ct_ctx_error(ctx));
    ck_assert_int_eq(cc_model_config(m)->hidden, 16);
    ct_module_free(m);
    ct_ctx_free(ctx);

    /* B: 8 steps with 2 workers, then a resume to 16 with 1 worker */
    ck_assert_int_eq(run("train --corpus tmp/tr.corpus --out tmp/tr_b --steps 8 --workers 2 " RUN_OPTS, out, sizeof out), 0);
    ck_assert_int_eq(run("train --resume tmp/tr_b --steps 16 --workers 1", out, sizeof out), 0);
    HAS(out, "resumed tmp/tr_b at step 8");
    assert_same_checkpoint("tmp/tr_a", "tmp/tr_b", 16);
    assert_same_weights("tmp/tr_a/model.safetensors", "tmp/tr_b/model.safetensors");
    assert_same_weights("tmp/tr_a/best.safetensors", "tmp/tr_b/best.safetensors");
    ck_assert_int_eq(count_lines("tmp/tr_b/metrics.jsonl", NULL), 16);   /* each step once */
    /* the same step's gallery piece is the same file */
    size_t na, nb;
    uint8_t *ma = tu_slurp("tmp/tr_a/samples/step-00000012.mid", &na), *mb = tu_slurp("tmp/tr_b/samples/step-00000012.mid", &nb);
    ck_assert(na == nb && memcmp(ma, mb, na) == 0);
    free(ma);
    free(mb);

    /* C: SIGTERM during step 6: the step finishes, a checkpoint, exit 130; the resume ends equal */
    ck_assert_int_eq(run_env("CANTOR_TRAIN_FAULTS=signal@6", "train --corpus tmp/tr.corpus --out tmp/tr_c --steps 16 "
                             "--workers 2 " RUN_OPTS, out, sizeof out), 130);
    HAS(out, "interrupted at step 6");
    HAS(out, "--resume tmp/tr_c");
    ck_assert(exists("tmp/tr_c/ckpt-00000006.safetensors") && exists("tmp/tr_c/ckpt-00000006.state"));
    /* a resume cuts the metrics lines after its step; when it cannot (the temporary file's
     * name is taken by a directory) it says why and goes on */
    FILE *mf = fopen("tmp/tr_c/metrics.jsonl", "ab");
    ck_assert_ptr_nonnull(mf);
    fputs("{\"step\":99,\"loss\":1}\n", mf);
    fclose(mf);
    ck_assert_int_eq(mkdir("tmp/tr_c/metrics.jsonl.tmp", 0755), 0);
    ck_assert_int_eq(run("train --resume tmp/tr_c", out, sizeof out), 0);
    HAS(out, "metrics.jsonl.tmp");
    HAS(out, "(its lines after step 6 stay)");
    ck_assert_int_eq(count_lines("tmp/tr_c/metrics.jsonl", "{\"step\":99,"), 1);
    ck_assert_int_eq(rmdir("tmp/tr_c/metrics.jsonl.tmp"), 0);
    assert_same_checkpoint("tmp/tr_a", "tmp/tr_c", 16);
    /* a finished run has nothing left to do; its resume cuts the stray line */
    ck_assert_int_eq(run("train --resume tmp/tr_c", out, sizeof out), 0);
    HAS(out, "nothing to do");
    ck_assert_int_eq(count_lines("tmp/tr_c/metrics.jsonl", "{\"step\":99,"), 0);
    ck_assert_int_eq(count_lines("tmp/tr_c/metrics.jsonl", NULL), 16);
    tu_rm_rf("tmp/tr_a");
    tu_rm_rf("tmp/tr_b");
    tu_rm_rf("tmp/tr_c");
    remove("tmp/tr.corpus");
}
END_TEST

/* ---- the guard: NaN loss, NaN gradients, a spike; too many skips ------------------------------ */
START_TEST(test_guard) {
    mkdir("tmp", 0755);
    tu_rm_rf("tmp/tr_g");
    write_corpus("tmp/tr_g.corpus", 8, 2, 40);
    ck_assert_int_eq(run_env("CANTOR_TRAIN_FAULTS=nan-loss@3,nan-grad@5,spike@20",
                             "train --corpus tmp/tr_g.corpus --out tmp/tr_g --steps 22 --no-samples --workers 0 " TINY,
                             out, sizeof out), 0);
    HAS(out, "step 3 skipped: non-finite loss");
    HAS(out, "step 5 skipped: non-finite gradient norm");
    HAS(out, "step 20 skipped: gradient norm spike");
    HAS(out, "3 steps skipped");
    ck_assert_int_eq(count_lines("tmp/tr_g/metrics.jsonl", "\"skipped\":true"), 3);
    HAS(metrics_line("tmp/tr_g", 3), "\"skipped\":true");
    HAS(metrics_line("tmp/tr_g", 3), "\"train_loss\":null");
    HAS(metrics_line("tmp/tr_g", 20), "\"skip_reason\":\"gradient norm spike");
    HAS(metrics_line("tmp/tr_g", 21), "\"skipped\":false");
    /* the weights stayed finite */
    ct_ctx *ctx = tu_ctx(NULL);
    ct_module *m = cc_load(ctx, "tmp/tr_g/model.safetensors");
    ck_assert_ptr_nonnull(m);
    const float *p = ct_data_f32(ct_module_flat_params(m));
    for (int64_t i = 0; i < ct_module_num_params(m); i++) ck_assert(isfinite(p[i]));
    ct_module_free(m);
    ct_ctx_free(ctx);
    /* --spike-factor 0 lets the spike through (clipping still bounds it) */
    ck_assert_int_eq(run_env("CANTOR_TRAIN_FAULTS=spike@20", "train --corpus tmp/tr_g.corpus --out tmp/tr_g --steps 21 "
                             "--no-samples --spike-factor 0 " TINY, out, sizeof out), 0);
    LACKS(out, "skipped:");
    /* a run that keeps failing stops, naming the cause */
    ck_assert_int_eq(run_env("CANTOR_TRAIN_FAULTS=nan-grad@2,nan-grad@3,nan-grad@4",
                             "train --corpus tmp/tr_g.corpus --out tmp/tr_g --steps 10 --max-skips 3 --no-samples " TINY,
                             out, sizeof out), 1);
    HAS(out, "3 steps in a row were skipped");
    tu_rm_rf("tmp/tr_g");
    remove("tmp/tr_g.corpus");
}
END_TEST

/* ---- usage errors: exit 2, the message names the flag ----------------------------------------- */
START_TEST(test_usage_errors) {
    mkdir("tmp", 0755);
    write_corpus("tmp/tr_u.corpus", 4, 1, 30);
    static const struct { const char *args, *msg; } bad[] = {
        {"--steps 0", "--steps '0'"},
        {"--steps ten", "--steps 'ten'"},
        {"--epochs 0", "--epochs '0'"},
        {"--steps 5 --epochs 2", "--steps and --epochs"},
        {"--lr -1", "--lr '-1'"},
        {"--lr abc", "--lr 'abc'"},
        {"--lr-schedule linear", "--lr-schedule 'linear'"},
        {"--warmup -3", "--warmup '-3'"},
        {"--lr-gamma 2", "--lr-gamma '2'"},
        {"--lr-step-size 0", "--lr-step-size '0'"},
        {"--lr-decay-steps 0", "--lr-decay-steps '0'"},
        {"--lr-schedule cosine --lr 0.01 --lr-min 0.1", "--lr-min 0.1 is above --lr 0.01"},
        {"--clip -1", "--clip '-1'"},
        {"--dropout 1", "--dropout '1'"},
        {"--cell transformer", "--cell 'transformer'"},
        {"--model jazz", "--model 'jazz'"},
        {"--layers 0", "--layers '0'"},
        {"--hidden 0", "--hidden '0'"},
        {"--embedding 0", "--embedding '0'"},
        {"--batch 0", "--batch '0'"},
        {"--window 1", "--window '1'"},
        {"--workers 99", "--workers '99'"},
        {"--seed -1", "--seed '-1'"},
        {"--checkpoint-every -1", "--checkpoint-every '-1'"},
        {"--keep 0", "--keep '0'"},
        {"--valid-every x", "--valid-every 'x'"},
        {"--valid-batches 0", "--valid-batches '0'"},
        {"--samples-every -2", "--samples-every '-2'"},
        {"--sample-seconds 0", "--sample-seconds '0'"},
        {"--log-every 0", "--log-every '0'"},
        {"--spike-factor -1", "--spike-factor '-1'"},
        {"--max-skips 0", "--max-skips '0'"},
        {"--audio-rate 10", "--audio-rate '10'"},
        {"--device gpu", "'gpu' is not a device: expected cpu, cuda or cuda:N"},
        {"--device cuda:x", "'cuda:x' is not a device"},
        {"--device cuda:1024", "'cuda:1024' is not a device: the index is too large"},
        {"--bogus 1", "unknown option '--bogus'"},
        {"stray", "unexpected argument 'stray'"},
        {"--model pianoroll", "--model pianoroll, but tmp/tr_u.corpus is a melody corpus"},
        {"--transpose 3", "--transpose '3': expected LO:HI, two whole numbers of semitones"},
        {"--transpose 5:-5", "--transpose '5:-5': expected LO:HI"},
        {"--transpose 1.5:2", "--transpose '1.5:2': expected LO:HI"},
        {"--transpose -200:0", "--transpose '-200:0': expected LO:HI"},
        {"--transpose :3", "--transpose ':3': expected LO:HI"},
        {"--stretch 0:2", "--stretch '0:2': expected LO:HI, two time factors in 0.1..10"},
        {"--stretch 1.1:0.9", "--stretch '1.1:0.9': expected LO:HI"},
        {"--stretch 1:", "--stretch '1:': expected LO:HI"},
        {"--augment --no-augment", "--no-augment with --augment"},
        {"--stretch 0.9:1.1", "--stretch 0.9:1.1 on a melody corpus: melody tokens count grid steps"},
        {"--velocity 2", "--velocity '2': expected SHIFT:JITTER, two whole numbers of velocity bins in 0..127"},
        {"--velocity -1:1", "--velocity '-1:1': expected SHIFT:JITTER"},
        {"--velocity 2:128", "--velocity '2:128': expected SHIFT:JITTER"},
        {"--velocity 2:x", "--velocity '2:x': expected SHIFT:JITTER"},
        {"--velocity 2:1 --no-augment", "--no-augment with --augment, --transpose, --stretch or --velocity"},
        {"--velocity 2:1", "--velocity 2:1 on a melody corpus: velocity augmentation moves the velocity bins"},
        {"--transpose", "--transpose needs a value"},
        {"--optimizer rmsprop", "--optimizer 'rmsprop': expected adam, adamw or sgd"},
        {"--weight-decay -0.1", "--weight-decay '-0.1'"},
        {"--optimizer sgd --momentum 1", "--momentum '1'"},
        {"--optimizer sgd --momentum x", "--momentum 'x'"},
        {"--betas 0.9", "--betas '0.9': expected B1,B2, two numbers in [0, 1)"},
        {"--betas 0.9,1", "--betas '0.9,1': expected B1,B2"},
        {"--momentum 0.9", "--momentum is SGD's"},
        {"--optimizer adamw --momentum 0.9", "--momentum is SGD's"},
        {"--optimizer sgd --betas 0.9,0.99", "--betas are Adam's and AdamW's"},
    };
    char args[512];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(args, sizeof args, "train --corpus tmp/tr_u.corpus --out tmp/tr_u %s", bad[i].args);
        int rc = run(args, out, sizeof out);
        ck_assert_msg(rc == 2, "%s: exit %d, expected 2:\n%s", args, rc, out);
        HAS(out, bad[i].msg);
        HAS(out, "cantor train");
    }
    ck_assert_int_eq(run("train --out tmp/tr_u", out, sizeof out), 2);
    HAS(out, "--corpus FILE is required");
    ck_assert_int_eq(run("train --corpus tmp/tr_u.corpus", out, sizeof out), 2);
    HAS(out, "--out RUN_DIR is required");
    ck_assert_int_eq(run("train --corpus", out, sizeof out), 2);
    HAS(out, "--corpus");
    /* a well-formed CUDA device that is not here (no CUDA build, no GPU, index too large):
     * exit 1, saying why */
    char why[256];
    if (!ct_device_available(CT_DEVICE_CUDA(0), why, sizeof why)) {
        ck_assert_int_eq(run("train --corpus tmp/tr_u.corpus --out tmp/tr_u --device cuda:0", out, sizeof out), 1);
        HAS(out, "--device cuda:0: ");
        HAS(out, why);
        HAS(out, "train with --device cpu");
        ck_assert_int_eq(run("train --corpus tmp/tr_u.corpus --out tmp/tr_u --device cuda", out, sizeof out), 1);
    }
    ck_assert_int_eq(run("train --corpus tmp/tr_u.corpus --out tmp/tr_u --device cuda:1023", out, sizeof out), 1);
    HAS(out, "--device cuda:1023: ");
    /* nothing was created by the refused runs */
    ck_assert(!exists("tmp/tr_u"));
    /* help lists every option with its default */
    ck_assert_int_eq(run("help train", out, sizeof out), 0);
    static const char *const flags[] = {"--corpus", "--model", "--out", "--layers", "--hidden", "--embedding", "--cell",
                                        "--batch", "--window", "--steps", "--epochs", "--lr ", "--lr-schedule",
                                        "--warmup", "--lr-step-size", "--lr-gamma", "--lr-min", "--lr-decay-steps",
                                        "--clip", "--dropout", "--seed", "--device", "--workers", "--resume",
                                        "--checkpoint-every", "--keep", "--valid-every", "--valid-batches",
                                        "--samples-every", "--no-samples", "--sample-seconds", "--log-every",
                                        "--spike-factor", "--max-skips", "--audio-rate", "exits with 130",
                                        "--augment", "--no-augment", "--transpose LO:HI", "default -3:3",
                                        "--stretch LO:HI", "default\n                          0.95:1.05",
                                        "validation never; default off",
                                        "--optimizer NAME", "default adam", "--weight-decay", "0.01 for adamw",
                                        "--momentum", "default 0, torch's plain SGD", "--betas B1,B2",
                                        "default 0.9,0.999"};
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) HAS(out, flags[i]);
    ck_assert_int_eq(run("train --help", out, sizeof out), 0);
    HAS(out, "usage: cantor train");
    remove("tmp/tr_u.corpus");
}
END_TEST

/* ---- resume refusals: another model, other data options, no checkpoint ----------------------- */
START_TEST(test_resume_refusals) {
    mkdir("tmp", 0755);
    tu_rm_rf("tmp/tr_r");
    write_corpus("tmp/tr_r.corpus", 6, 2, 30);
    ck_assert_int_eq(run("train --corpus tmp/tr_r.corpus --out tmp/tr_r --steps 4 --no-samples " TINY, out, sizeof out), 0);
    ck_assert_int_eq(run("train --resume tmp/tr_r --hidden 32 --cell gru --steps 8", out, sizeof out), 2);
    HAS(out, "--resume tmp/tr_r: the run trains a melody LSTM 2x16, but the options ask for a melody GRU 2x32");
    HAS(out, "--hidden 32 vs 16");
    HAS(out, "--cell gru vs lstm");
    ck_assert_int_eq(run("train --resume tmp/tr_r --model performance", out, sizeof out), 2);
    HAS(out, "--model performance vs melody");
    ck_assert_int_eq(run("train --resume tmp/tr_r --layers 3", out, sizeof out), 2);
    HAS(out, "--layers 3 vs 2");
    ck_assert_int_eq(run("train --resume tmp/tr_r --batch 8 --steps 8", out, sizeof out), 2);
    HAS(out, "--batch 8, but the run used 4");
    ck_assert_int_eq(run("train --resume tmp/tr_r --window 32", out, sizeof out), 2);
    HAS(out, "--window 32");
    ck_assert_int_eq(run("train --resume tmp/tr_r --steps 2", out, sizeof out), 2);
    HAS(out, "--steps 2: the run in tmp/tr_r is already at step 4");
    ck_assert_int_eq(run("train --resume tmp/tr_r --out tmp/elsewhere", out, sizeof out), 2);
    HAS(out, "--out tmp/elsewhere with --resume tmp/tr_r");
    ck_assert_int_eq(run("train --resume tmp/tr_nothing_here", out, sizeof out), 1);
    HAS(out, "--resume tmp/tr_nothing_here: no checkpoint there");
    /* the refused resumes changed nothing: a valid one continues (and may change the rate) */
    ck_assert_int_eq(run("train --resume tmp/tr_r --steps 6 --lr 0.002 --model melody --hidden 16", out, sizeof out), 0);
    HAS(out, "note: --lr 0.002 (the run had 0.001)");
    HAS(out, "resumed tmp/tr_r at step 4");
    ck_assert(exists("tmp/tr_r/ckpt-00000006.state"));
    /* a fresh run into the folder replaces the earlier run */
    ck_assert_int_eq(run("train --corpus tmp/tr_r.corpus --out tmp/tr_r --steps 2 --no-samples " TINY, out, sizeof out), 0);
    HAS(out, "held an earlier run");
    ck_assert(!exists("tmp/tr_r/ckpt-00000006.state"));
    ck_assert_int_eq(count_lines("tmp/tr_r/metrics.jsonl", NULL), 2);
    tu_rm_rf("tmp/tr_r");
    remove("tmp/tr_r.corpus");
}
END_TEST

/* ---- a corpus that is not there or not a corpus ----------------------------------------------- */
START_TEST(test_missing_corpus) {
    mkdir("tmp", 0755);
    ck_assert_int_eq(run("train --corpus tmp/tr_no_such.corpus --out tmp/tr_m --steps 2", out, sizeof out), 1);
    HAS(out, "tmp/tr_no_such.corpus");
    HAS(out, "No such file");
    ck_assert_int_eq(run("train --corpus fixtures/midi/drums.mid --out tmp/tr_m --steps 2", out, sizeof out), 1);
    HAS(out, "not a cantor corpus file");
    tu_rm_rf("tmp/tr_m");
}
END_TEST

/* ---- --dashboard: the server starts beside training, and status.json tells its state ----------- */
START_TEST(test_dashboard_flag) {
    mkdir("tmp", 0755);
    write_corpus("tmp/tr_d.corpus", 6, 2, 200);
    /* port 0: the system picks a free one, and the banner prints the real URL */
    int rc = run("train --corpus tmp/tr_d.corpus --out tmp/tr_d --steps 6 --valid-every 3 --no-samples " TINY
                 "--dashboard 127.0.0.1:0", out, sizeof out);
#ifdef CT_HAVE_MHD
    ck_assert_msg(rc == 0, "%s", out);
    HAS(out, "dashboard: http://127.0.0.1:");
    LACKS(out, "dashboard: http://127.0.0.1:0/");
#else
    ck_assert_msg(rc == 0, "%s", out);
    HAS(out, "no dashboard");
#endif
    char *st = (char *)tu_slurp("tmp/tr_d/status.json", NULL);
    ck_assert_ptr_nonnull(st);
    HAS(st, "\"state\":\"finished\"");
    HAS(st, "\"step\":6,\"total_steps\":6");
    HAS(st, "\"last_checkpoint\":\"ckpt-00000006.safetensors\"");
    free(st);
    /* a bad address is a usage error naming the flag; a non-address next argument is left alone */
    ck_assert_int_eq(run("train --corpus tmp/tr_d.corpus --out tmp/tr_d --steps 2 --dashboard=127.0.0.1:notaport", out, sizeof out), 2);
    HAS(out, "--dashboard");
    ck_assert_int_eq(run("train --dashboard --corpus tmp/tr_d.corpus --out tmp/tr_d --steps 2 --no-samples "
                         "--dashboard=127.0.0.1:0 " TINY, out, sizeof out), 0);
    tu_rm_rf("tmp/tr_d");
    remove("tmp/tr_d.corpus");
}
END_TEST

/* ---- a full disk while checkpointing ----------------------------------------------------------- */
START_TEST(test_full_disk) {
    mkdir("tmp", 0755);
    tu_rm_rf("tmp/tr_f");
    write_corpus("tmp/tr_f.corpus", 8, 2, 40);
    /* hidden 64: a checkpoint of about 90 KB, more than the 32 KB files may have below */
    ck_assert_int_eq(run("train --corpus tmp/tr_f.corpus --out tmp/tr_f --steps 4 --checkpoint-every 2 --no-samples "
                         "--layers 1 --hidden 64 --embedding 8 --batch 4 --window 16", out, sizeof out), 0);
    /* the resumed run, in a child whose files may not exceed 32 KB (SIGXFSZ ignored: write()
     * fails with EFBIG, as on a full disk) */
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open("tmp/tr_f_out.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) _exit(99);
        dup2(fd, 1);
        dup2(fd, 2);
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {32768, 32768};
        setrlimit(RLIMIT_FSIZE, &rl);
        execl(bin(), bin(), "train", "--resume", "tmp/tr_f", "--steps", "8", (char *)NULL);
        _exit(98);
    }
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFEXITED(st));
    size_t n;
    char *text = (char *)tu_slurp("tmp/tr_f_out.txt", &n);
    text = realloc(text, n + 1);
    text[n] = 0;
    ck_assert_msg(WEXITSTATUS(st) == 1, "exit %d:\n%s", WEXITSTATUS(st), text);
    HAS(text, "the checkpoint at step 6 failed");
    HAS(text, "tmp/tr_f/ckpt-00000006.safetensors");
    HAS(text, "File too large");
    HAS(text, "the last good checkpoint is tmp/tr_f/ckpt-00000004");
    free(text);
    /* nothing half-written is left, and the previous checkpoint still loads */
    ck_assert(!exists("tmp/tr_f/ckpt-00000006.safetensors") && !exists("tmp/tr_f/ckpt-00000006.state"));
    ck_assert(!exists("tmp/tr_f/ckpt-00000006.safetensors.tmp"));
    assert_same_weights("tmp/tr_f/model.safetensors", "tmp/tr_f/ckpt-00000004.safetensors");
    saved_state s;
    load_state("tmp/tr_f/ckpt-00000004.safetensors", "tmp/tr_f/ckpt-00000004.state", &s, ADAM);
    ck_assert_int_eq(s.step, 4);
    free_state(&s);
    /* and the run goes on from it once there is room */
    ck_assert_int_eq(run("train --resume tmp/tr_f --steps 6", out, sizeof out), 0);
    HAS(out, "resumed tmp/tr_f at step 4");
    ck_assert(exists("tmp/tr_f/ckpt-00000006.state"));
    tu_rm_rf("tmp/tr_f");
    remove("tmp/tr_f_out.txt");
    remove("tmp/tr_f.corpus");
}
END_TEST

/* ---- --corpus DIR: a folder of MIDI files, built into the run folder -------------------------- */
static void write_melody_midi(const char *path, int shift) {
    cm_note notes[64];
    const int scale[8] = {60, 62, 64, 65, 67, 69, 71, 72};
    for (int i = 0; i < 64; i++) {   /* 16 bars of quarter notes */
        memset(&notes[i], 0, sizeof notes[i]);
        notes[i].start_tick = (int64_t)i * 480;
        notes[i].end_tick = (int64_t)i * 480 + 400;
        notes[i].start_s = i * 0.5;
        notes[i].end_s = i * 0.5 + 0.41;
        notes[i].pitch = (uint8_t)(scale[(i * 3 + shift) % 8] - 5 + shift);
        notes[i].velocity = 90;
    }
    cm_notes ns;
    memset(&ns, 0, sizeof ns);
    cm_error err;
    memset(&err, 0, sizeof err);
    ck_assert_int_eq(cm_notes_from_array(&ns, notes, 64, &err), CM_OK);
    cm_file *f = cm_file_from_notes(&ns, NULL, &err);
    ck_assert_msg(f != NULL, "%s", err.message);
    ck_assert_msg(cm_write_file(f, path, NULL, &err) == CM_OK, "%s", err.message);
    cm_file_free(f);
    cm_notes_free(&ns);
}

START_TEST(test_corpus_folder) {
    mkdir("tmp", 0755);
    tu_rm_rf("tmp/tr_midi");
    tu_rm_rf("tmp/tr_d");
    mkdir("tmp/tr_midi", 0755);
    char path[64];
    for (int i = 0; i < 6; i++) {
        snprintf(path, sizeof path, "tmp/tr_midi/m%d.mid", i);
        write_melody_midi(path, i);
    }
    ck_assert_int_eq(run("train --corpus tmp/tr_midi --model melody --out tmp/tr_d --steps 3 --no-samples " TINY, out,
                         sizeof out), 0);
    HAS(out, "corpus: building tmp/tr_d/corpus.corpus from the MIDI files in tmp/tr_midi (melody)");
    HAS(out, "6 MIDI files, 6 used");
    ck_assert(exists("tmp/tr_d/corpus.corpus") && exists("tmp/tr_d/model.safetensors"));
    ck_assert_int_eq(run("train --resume tmp/tr_d --steps 4", out, sizeof out), 0);
    LACKS(out, "building");   /* the built corpus is kept */
    tu_rm_rf("tmp/tr_midi");
    tu_rm_rf("tmp/tr_d");
}
END_TEST


/* ---- piano roll: the output bias starts at the train keys' frequencies ------------------------ */
START_TEST(test_roll_init_bias) {
    mkdir("tmp", 0755);
    tu_rm_rf("tmp/tr_pb");
    tu_rm_rf("tmp/tr_pz");
    int64_t counts[88], total;
    write_roll_corpus("tmp/tr_p.corpus", 8, 2, 24, counts, &total);
    /* one step at a negligible rate: the bias is still (to ~1e-8) where it started */
    ck_assert_int_eq(run("train --corpus tmp/tr_p.corpus --out tmp/tr_pb --steps 1 --lr 1e-9 --workers 0 --no-samples "
                         TINY, out, sizeof out), 0);
    HAS(out, "model: pianoroll LSTM 2x16");
    HAS(out, "output bias: the logit of each key's smoothed frequency in the train split");
    float bias[88];
    read_tensor("tmp/tr_pb/ckpt-00000001.safetensors", "out.bias", bias, 88);
    for (int k = 0; k < 88; k++) {
        double f = (double)(counts[k] + 1) / (double)(total + 2);
        double want = log(f / (1 - f));
        ck_assert_msg(fabs(bias[k] - want) < 1e-5, "key %d: bias %g, want logit(%g) = %g", k, bias[k], f, want);
    }
    ck_assert(bias[45] > bias[0] + 1);   /* a played key starts well above a silent one */
    /* --no-init-bias: the model's own start (not the frequencies) */
    ck_assert_int_eq(run("train --corpus tmp/tr_p.corpus --out tmp/tr_pz --steps 1 --lr 1e-9 --workers 0 --no-samples "
                         "--no-init-bias " TINY, out, sizeof out), 0);
    LACKS(out, "output bias:");
    read_tensor("tmp/tr_pz/ckpt-00000001.safetensors", "out.bias", bias, 88);
    ck_assert_msg(fabs(bias[0]) < 1.0, "bias[0] = %g without the frequency start", bias[0]);
    /* a melody model gets no bias start */
    write_corpus("tmp/tr_pm.corpus", 6, 2, 30);
    ck_assert_int_eq(run("train --corpus tmp/tr_pm.corpus --out tmp/tr_pz --steps 1 --workers 0 --no-samples " TINY,
                         out, sizeof out), 0);
    LACKS(out, "output bias:");
    tu_rm_rf("tmp/tr_pb");
    tu_rm_rf("tmp/tr_pz");
    remove("tmp/tr_p.corpus");
    remove("tmp/tr_pm.corpus");
}
END_TEST

/* ---- the plateau schedule and the early stop, checked against the run's own metrics ----------- */
/* Replays metrics.jsonl: every validation without a new best counts; after each `patience` of
 * them in a row the rate of the next steps is multiplied by factor. Returns the cuts seen. */
static int check_plateau(const char *run_dir, int64_t steps, double lr, int64_t patience, double factor) {
    double best = INFINITY, scale = 1;
    int64_t since = 0;
    int cuts = 0;
    for (int64_t s = 1; s <= steps; s++) {
        const char *l = metrics_line(run_dir, s);
        ck_assert_msg(l[0], "%s: no metrics line for step %lld", run_dir, (long long)s);
        double got = json_num_of(l, "lr");
        ck_assert_msg(fabs(got - lr * scale) <= 1e-9 * lr, "step %lld: lr %.9g, expected %.9g", (long long)s, got,
                      lr * scale);
        double v = json_num_of(l, "valid_loss");
        if (isfinite(v)) {
            if (v < best) {
                best = v;
                since = 0;
                HAS(l, "\"best\":true");
            } else if (++since % patience == 0) {
                scale *= factor;
                cuts++;
            }
        }
    }
    return cuts;
}

#define PLATEAU_OPTS TINY "--lr 0.05 --lr-schedule plateau --patience 2 --plateau-factor 0.5 --valid-every 1 " \
                      "--no-samples --checkpoint-every 5 "

START_TEST(test_plateau_early_stop) {
    mkdir("tmp", 0755);
    tu_rm_rf("tmp/tr_pl");
    tu_rm_rf("tmp/tr_es");
    write_roll_corpus("tmp/tr_pl.corpus", 8, 2, 24, NULL, NULL);
    ck_assert_int_eq(run("train --corpus tmp/tr_pl.corpus --out tmp/tr_pl --steps 30 --workers 0 " PLATEAU_OPTS, out,
                         sizeof out), 0);
    HAS(out, "Adam lr 0.05 plateau (x0.5 after 2 validations without a new best)");
    HAS(out, "plateau: 2 validations without a new best: lr 0.05 -> 0.025");
    int cuts = check_plateau("tmp/tr_pl", 30, 0.05, 2, 0.5);
    ck_assert_int_ge(cuts, 1);
    ck_assert_int_eq(count_lines("tmp/tr_pl/metrics.jsonl", NULL), 30);   /* no early stop: all steps */
    /* --early-stop 2: the run ends after 2 validations in a row without a new best, best.safetensors
     * holds the best step and the run counts as finished; a resume has nothing to do */
    ck_assert_int_eq(run("train --corpus tmp/tr_pl.corpus --out tmp/tr_es --steps 400 --workers 0 --early-stop 3 "
                         PLATEAU_OPTS, out, sizeof out), 0);
    HAS(out, "early stop after 3 validations without a new best");
    HAS(out, "early stop: 3 validations without a new best");
    int n = count_lines("tmp/tr_es/metrics.jsonl", NULL);
    ck_assert_msg(n > 3 && n < 400, "%d steps", n);
    const char *l = metrics_line("tmp/tr_es", n);
    HAS(l, "\"best\":false");
    ck_assert(isfinite(json_num_of(l, "valid_loss")));
    ck_assert(exists("tmp/tr_es/best.safetensors"));
    char ck[64];
    snprintf(ck, sizeof ck, "tmp/tr_es/ckpt-%08d.state", n);
    ck_assert_msg(exists(ck), "%s", ck);
    /* the early stop is exactly the rule: the plateau replay agrees up to the last step */
    check_plateau("tmp/tr_es", n, 0.05, 2, 0.5);
    size_t len;
    char *status = (char *)tu_slurp("tmp/tr_es/status.json", &len);
    ck_assert_ptr_nonnull(status);
    HAS(status, "\"state\":\"finished\"");
    free(status);
    ck_assert_int_eq(run("train --resume tmp/tr_es", out, sizeof out), 0);
    HAS(out, "stopped early");
    HAS(out, "nothing to do");
    ck_assert_int_eq(count_lines("tmp/tr_es/metrics.jsonl", NULL), n);
    /* usage errors */
    static const struct { const char *args, *msg; } bad[] = {
        {"--patience 0", "--patience '0'"},
        {"--plateau-factor 0", "--plateau-factor '0'"},
        {"--plateau-factor 2", "--plateau-factor '2'"},
        {"--early-stop -1", "--early-stop '-1'"},
        {"--lr-schedule flat", "expected constant, step, exp, cosine or plateau"},
    };
    char args[512];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(args, sizeof args, "train --corpus tmp/tr_pl.corpus --out tmp/tr_pu %s", bad[i].args);
        int rc = run(args, out, sizeof out);
        ck_assert_msg(rc == 2, "%s: exit %d, expected 2:\n%s", args, rc, out);
        HAS(out, bad[i].msg);
    }
    ck_assert(!exists("tmp/tr_pu"));
    ck_assert_int_eq(run("help train", out, sizeof out), 0);
    HAS(out, "--patience");
    HAS(out, "--plateau-factor");
    HAS(out, "--early-stop");
    HAS(out, "--no-init-bias");
    tu_rm_rf("tmp/tr_pl");
    tu_rm_rf("tmp/tr_es");
    remove("tmp/tr_pl.corpus");
}
END_TEST

/* --device cpu is the default (the same weights); --precision: its names, only on a CUDA
 * device, recorded in run.json and status.json, and on a GPU (skipped here) tf32 / bf16 runs
 * whose checkpoint resumes and samples on the CPU. The mpirun rules: tests/check_mpi.sh. */
START_TEST(test_device_and_precision) {
    mkdir("tmp", 0755);
    tu_rm_rf("tmp/tr_d1");
    tu_rm_rf("tmp/tr_d2");
    write_corpus("tmp/tr_d.corpus", 8, 2, 40);
    const char *base = "train --corpus tmp/tr_d.corpus --steps 3 --workers 0 --no-samples " TINY;
    char args[1024];
    snprintf(args, sizeof args, "%s --out tmp/tr_d1", base);
    ck_assert_msg(run(args, out, sizeof out) == 0, "%s", out);
    snprintf(args, sizeof args, "%s --out tmp/tr_d2 --device cpu --precision fp32", base);
    ck_assert_msg(run(args, out, sizeof out) == 0, "%s", out);
    LACKS(out, "precision:");   /* a CPU run has no GEMM mode to report */
    assert_same_weights("tmp/tr_d1/model.safetensors", "tmp/tr_d2/model.safetensors");
    size_t n;
    char *rj = (char *)tu_slurp("tmp/tr_d2/run.json", &n);
    ck_assert_ptr_nonnull(rj);
    HAS(rj, "\"device\":\"cpu\",\"precision\":\"fp32\"");
    free(rj);
    rj = (char *)tu_slurp("tmp/tr_d2/status.json", &n);
    ck_assert_ptr_nonnull(rj);
    HAS(rj, "\"precision\":\"fp32\"");
    free(rj);
    /* --precision: the names, and tf32 / bf16 only on a CUDA device (usage errors, exit 2) */
    static const struct { const char *args, *msg; } bad[] = {
        {"--precision fp16", "--precision 'fp16': expected fp32, tf32 or bf16"},
        {"--precision BF16", "--precision 'BF16': expected fp32, tf32 or bf16"},
        {"--precision bf16", "--precision bf16 needs a CUDA device (--device cuda or cuda:N)"},
        {"--precision tf32 --device cpu", "--precision tf32 needs a CUDA device"},
        {"--precision", "--precision needs a value"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(args, sizeof args, "train --corpus tmp/tr_d.corpus --out tmp/tr_d3 %s", bad[i].args);
        int rc = run(args, out, sizeof out);
        ck_assert_msg(rc == 2, "%s: exit %d, expected 2:\n%s", args, rc, out);
        HAS(out, bad[i].msg);
    }
    /* a resumed run keeps its precision unless told, and the CPU refuses bf16 there too */
    ck_assert_int_eq(run("train --resume tmp/tr_d1 --steps 4 --precision bf16", out, sizeof out), 2);
    HAS(out, "--precision bf16 needs a CUDA device");
    ck_assert_int_eq(run("train --resume tmp/tr_d1 --steps 4 --precision fp32", out, sizeof out), 0);
    ck_assert(!exists("tmp/tr_d3"));
    ck_assert_int_eq(run("help train", out, sizeof out), 0);
    HAS(out, "--precision NAME");
    HAS(out, "(default\n                          fp32");
    HAS(out, "Under mpirun -np N: cpu, or cuda");
    char why[256];
    if (!ct_device_available(CT_DEVICE_CUDA(0), why, sizeof why)) {
        /* the device is checked before the precision: exit 1, saying why (under mpirun:
         * tests/check_mpi.sh) */
        ck_assert_int_eq(run("train --corpus tmp/tr_d.corpus --out tmp/tr_d3 --device cuda:0 --precision bf16", out,
                             sizeof out), 1);
        HAS(out, "--device cuda:0: ");
        printf("train: skipped — --precision tf32/bf16 on a GPU: %s\n", why);
    } else {
        for (int p = 0; p < 2; p++) {
            tu_rm_rf("tmp/tr_d3");
            snprintf(args, sizeof args, "%s --out tmp/tr_d3 --device cuda:0 --precision %s", base, p ? "bf16" : "tf32");
            ck_assert_msg(run(args, out, sizeof out) == 0, "%s", out);
            HAS(out, p ? "precision: bf16" : "precision: tf32");
            rj = (char *)tu_slurp("tmp/tr_d3/run.json", &n);
            HAS(rj, p ? "\"precision\":\"bf16\"" : "\"precision\":\"tf32\"");
            free(rj);
        }
        /* a checkpoint trained on the GPU loads, resumes and samples on the CPU */
        ck_assert_msg(run("train --resume tmp/tr_d3 --steps 4 --device cpu --precision fp32", out, sizeof out) == 0, "%s", out);
        ck_assert_msg(run("sample --ckpt tmp/tr_d3/model.safetensors --out tmp/tr_d3/s.mid --length 16", out, sizeof out) == 0,
                      "%s", out);
    }
    ck_assert(!exists("tmp/tr_d3") || ct_device_available(CT_DEVICE_CUDA(0), why, sizeof why));
    tu_rm_rf("tmp/tr_d1");
    tu_rm_rf("tmp/tr_d2");
    tu_rm_rf("tmp/tr_d3");
    remove("tmp/tr_d.corpus");
}
END_TEST

/* ---- a plateau run resumes bit-exactly (its rate cut and counter are in the state) ----------- */
START_TEST(test_plateau_resume_bit_exact) {
    mkdir("tmp", 0755);
    tu_rm_rf("tmp/tr_qa");
    tu_rm_rf("tmp/tr_qb");
    write_roll_corpus("tmp/tr_q.corpus", 8, 2, 24, NULL, NULL);
    ck_assert_int_eq(run("train --corpus tmp/tr_q.corpus --out tmp/tr_qa --steps 30 --workers 0 --dropout 0.1 "
                         PLATEAU_OPTS, out, sizeof out), 0);
    ck_assert_int_eq(run("train --corpus tmp/tr_q.corpus --out tmp/tr_qb --steps 15 --workers 2 --dropout 0.1 "
                         PLATEAU_OPTS, out, sizeof out), 0);
    /* the rate was cut before the resume point, and the state says so */
    ck_assert_msg(json_num_of(metrics_line("tmp/tr_qa", 15), "lr") < 0.05, "%s", metrics_line("tmp/tr_qa", 15));
    size_t len;
    char *st = (char *)tu_slurp("tmp/tr_qb/ckpt-00000015.state", &len);
    ck_assert_ptr_nonnull(st);
    ck_assert(has_bytes(st, len, "\nlr_scale ") && has_bytes(st, len, "\nsince_best "));
    free(st);
    ck_assert_int_eq(run("train --resume tmp/tr_qb --steps 30 --workers 1", out, sizeof out), 0);
    HAS(out, "resumed tmp/tr_qb at step 15");
    assert_same_checkpoint("tmp/tr_qa", "tmp/tr_qb", 30);
    assert_same_weights("tmp/tr_qa/best.safetensors", "tmp/tr_qb/best.safetensors");
    for (int64_t s = 16; s <= 30; s++) {
        ck_assert(json_num_of(metrics_line("tmp/tr_qa", s), "lr") == json_num_of(metrics_line("tmp/tr_qb", s), "lr"));
        double va = json_num_of(metrics_line("tmp/tr_qa", s), "valid_loss");
        double vb = json_num_of(metrics_line("tmp/tr_qb", s), "valid_loss");
        ck_assert_msg(va == vb || (isnan(va) && isnan(vb)), "step %lld: valid %g vs %g", (long long)s, va, vb);
    }
    check_plateau("tmp/tr_qb", 30, 0.05, 2, 0.5);
    tu_rm_rf("tmp/tr_qa");
    tu_rm_rf("tmp/tr_qb");
    remove("tmp/tr_q.corpus");
}
END_TEST

/* ---- --augment: the training batches only, same for any worker count, resumed bit for bit ---- */
#define AUG_OPTS TINY "--lr 0.01 --dropout 0.1 --checkpoint-every 4 --keep 3 --valid-every 1 --no-samples "

START_TEST(test_augment) {
    mkdir("tmp", 0755);
    static const char *const dirs[] = {"tmp/tr_xa", "tmp/tr_xb", "tmp/tr_xc", "tmp/tr_xd", "tmp/tr_xe", "tmp/tr_xf",
                                       "tmp/tr_xg", "tmp/tr_xh"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) tu_rm_rf(dirs[i]);
    write_corpus("tmp/tr_x.corpus", 12, 3, 60);
    /* A: augmented, 8 steps without workers */
    ck_assert_int_eq(run("train --corpus tmp/tr_x.corpus --out tmp/tr_xa --steps 8 --workers 0 --transpose -5:6 "
                         AUG_OPTS, out, sizeof out), 0);
    HAS(out, "augmentation (training only): transpose -5..+6 semitones");
    LACKS(out, "stretch");   /* a melody run does not stretch */
    size_t len;
    char *js = (char *)tu_slurp("tmp/tr_xa/run.json", &len);
    ck_assert_ptr_nonnull(js);
    HAS(js, "\"augment\":{\"transpose\":[-5,6],\"stretch\":[1,1],\"velocity\":[0,0]}");
    free(js);
    char *st = (char *)tu_slurp("tmp/tr_xa/ckpt-00000008.state", &len);
    ck_assert_ptr_nonnull(st);
    ck_assert(has_bytes(st, len, "\naugment 1\n") && has_bytes(st, len, "\ntranspose_lo -5\n") &&
              has_bytes(st, len, "\ntranspose_hi 6\n"));
    free(st);
    /* B: the same with 2 workers: the same batches, so the same checkpoint */
    ck_assert_int_eq(run("train --corpus tmp/tr_x.corpus --out tmp/tr_xb --steps 8 --workers 2 --transpose -5:6 "
                         AUG_OPTS, out, sizeof out), 0);
    assert_same_checkpoint("tmp/tr_xa", "tmp/tr_xb", 8);
    /* C: 4 steps with 2 workers, then a resume (1 worker) to 8: the augmentation is kept */
    ck_assert_int_eq(run("train --corpus tmp/tr_x.corpus --out tmp/tr_xc --steps 4 --workers 2 --transpose -5:6 "
                         AUG_OPTS, out, sizeof out), 0);
    ck_assert_int_eq(run("train --resume tmp/tr_xc --steps 8 --workers 1", out, sizeof out), 0);
    HAS(out, "augmentation (training only): transpose -5..+6 semitones");
    LACKS(out, "note: augmentation");
    assert_same_checkpoint("tmp/tr_xa", "tmp/tr_xc", 8);
    /* D: without augmentation the model sees other batches: other weights; an unaugmented
     * run's state has no augmentation keys and its run.json says "augment":false */
    ck_assert_int_eq(run("train --corpus tmp/tr_x.corpus --out tmp/tr_xd --steps 8 --workers 0 " AUG_OPTS, out,
                         sizeof out), 0);
    LACKS(out, "augmentation");
    cp_encoding me = cp_encoding_default(CP_MELODY);
    const int nv = cp_encoding_vocab(&me);
    ck_assert(nv > 2 && nv <= 256);
    float wa[256], wd[256];
    read_tensor("tmp/tr_xa/ckpt-00000008.safetensors", "out.bias", wa, nv);
    read_tensor("tmp/tr_xd/ckpt-00000008.safetensors", "out.bias", wd, nv);
    ck_assert_msg(memcmp(wa, wd, sizeof(float) * (size_t)nv) != 0, "the augmented run trained the same weights as the plain one");
    st = (char *)tu_slurp("tmp/tr_xd/ckpt-00000008.state", &len);
    ck_assert_ptr_nonnull(st);
    ck_assert(!has_bytes(st, len, "\naugment ") && !has_bytes(st, len, "transpose_lo"));
    free(st);
    js = (char *)tu_slurp("tmp/tr_xd/run.json", &len);
    ck_assert_ptr_nonnull(js);
    HAS(js, "\"augment\":false");
    free(js);
    /* validation is not augmented: step 1 is skipped (NaN loss), so both runs validate the
     * initial weights; the augmented run's valid loss equals the plain run's, bit for bit
     * (--transpose 1:1 shifts every piece that can move: an augmented validation would differ) */
    ck_assert_int_eq(run_env("CANTOR_TRAIN_FAULTS=nan-loss@1", "train --corpus tmp/tr_x.corpus --out tmp/tr_xe --steps 1 "
                             "--workers 0 --transpose 1:1 " AUG_OPTS, out, sizeof out), 0);
    ck_assert_int_eq(run_env("CANTOR_TRAIN_FAULTS=nan-loss@1", "train --corpus tmp/tr_x.corpus --out tmp/tr_xf --steps 1 "
                             "--workers 0 " AUG_OPTS, out, sizeof out), 0);
    HAS(metrics_line("tmp/tr_xe", 1), "\"skipped\":true");
    double ve = json_num_of(metrics_line("tmp/tr_xe", 1), "valid_loss");
    double vf = json_num_of(metrics_line("tmp/tr_xf", 1), "valid_loss");
    ck_assert_msg(isfinite(ve) && ve == vf, "valid loss %.17g (augmented) vs %.17g", ve, vf);
    /* a resume may turn augmentation on or off (a note says so), and --stretch on a melody
     * corpus is refused there too */
    ck_assert_int_eq(run("train --resume tmp/tr_xd --steps 10 --augment", out, sizeof out), 0);
    HAS(out, "note: augmentation on (the run had none)");
    HAS(out, "augmentation (training only): transpose -3..+3 semitones");
    ck_assert_int_eq(run("train --resume tmp/tr_xd --steps 12 --no-augment", out, sizeof out), 0);
    HAS(out, "note: augmentation off (the run had transpose -3:3, stretch 1:1)");
    LACKS(out, "augmentation (training only)");
    ck_assert_int_eq(run("train --resume tmp/tr_xd --steps 14 --stretch 0.9:1.1", out, sizeof out), 2);
    HAS(out, "--stretch 0.9:1.1 on a melody corpus");
    /* piano roll: transposition and time stretch; still the same for any worker count */
    write_roll_corpus("tmp/tr_xr.corpus", 8, 2, 24, NULL, NULL);
    ck_assert_int_eq(run("train --corpus tmp/tr_xr.corpus --out tmp/tr_xg --steps 6 --workers 0 --augment "
                         "--stretch 0.8:1.25 " AUG_OPTS, out, sizeof out), 0);
    HAS(out, "augmentation (training only): transpose -3..+3 semitones, stretch 0.8..1.25");
    ck_assert_int_eq(run("train --corpus tmp/tr_xr.corpus --out tmp/tr_xh --steps 6 --workers 2 --augment "
                         "--stretch 0.8:1.25 " AUG_OPTS, out, sizeof out), 0);
    assert_same_weights("tmp/tr_xg/model.safetensors", "tmp/tr_xh/model.safetensors");
    js = (char *)tu_slurp("tmp/tr_xg/run.json", &len);
    ck_assert_ptr_nonnull(js);
    HAS(js, "\"augment\":{\"transpose\":[-3,3],\"stretch\":[0.80000000000000004,1.25],\"velocity\":[0,0]}");
    free(js);
    /* performance with velocity bins: --velocity alone (transposition and stretch off) trains
     * other weights than no augmentation, the same for any worker count, and is saved */
    write_perf_corpus("tmp/tr_xv.corpus", 8, 2, 24);
    tu_rm_rf("tmp/tr_xg");
    tu_rm_rf("tmp/tr_xh");
    ck_assert_int_eq(run("train --corpus tmp/tr_xv.corpus --out tmp/tr_xg --steps 6 --workers 0 --velocity 3:1 "
                         "--transpose 0:0 --stretch 1:1 " AUG_OPTS, out, sizeof out), 0);
    HAS(out, "augmentation (training only): velocity shift +-3, jitter +-1 bins");
    LACKS(out, "transpose -");
    ck_assert_int_eq(run("train --corpus tmp/tr_xv.corpus --out tmp/tr_xh --steps 6 --workers 2 --velocity 3:1 "
                         "--transpose 0:0 --stretch 1:1 " AUG_OPTS, out, sizeof out), 0);
    assert_same_checkpoint("tmp/tr_xg", "tmp/tr_xh", 4);
    assert_same_weights("tmp/tr_xg/model.safetensors", "tmp/tr_xh/model.safetensors");
    js = (char *)tu_slurp("tmp/tr_xg/run.json", &len);
    ck_assert_ptr_nonnull(js);
    HAS(js, "\"augment\":{\"transpose\":[0,0],\"stretch\":[1,1],\"velocity\":[3,1]}");
    free(js);
    st = (char *)tu_slurp("tmp/tr_xg/ckpt-00000004.state", &len);
    ck_assert_ptr_nonnull(st);
    ck_assert(has_bytes(st, len, "\nvelocity_shift 3\n") && has_bytes(st, len, "\nvelocity_jitter 1\n"));
    free(st);
    tu_rm_rf("tmp/tr_xa");
    ck_assert_int_eq(run("train --corpus tmp/tr_xv.corpus --out tmp/tr_xa --steps 6 --workers 0 " AUG_OPTS, out,
                         sizeof out), 0);
    const int64_t nb = CM_PERF_NUM_CLASSES;
    float *va = malloc(sizeof(float) * (size_t)nb), *vg = malloc(sizeof(float) * (size_t)nb);
    read_tensor("tmp/tr_xa/model.safetensors", "out.bias", va, nb);
    read_tensor("tmp/tr_xg/model.safetensors", "out.bias", vg, nb);
    ck_assert_msg(memcmp(va, vg, sizeof(float) * (size_t)nb) != 0, "--velocity trained the same weights as no augmentation");
    free(va);
    free(vg);
    /* a resume may change the ranges (a note says so); the run resumes with them */
    ck_assert_int_eq(run("train --resume tmp/tr_xh --steps 8 --velocity 0:2", out, sizeof out), 0);
    HAS(out, "note: augmentation transpose 0:0, stretch 1:1, velocity 0:2 (the run had transpose 0:0, stretch 1:1, "
             "velocity 3:1)");
    HAS(out, "velocity shift +-0, jitter +-2 bins");
    tu_rm_rf("tmp/tr_xa");
    tu_rm_rf("tmp/tr_xg");
    tu_rm_rf("tmp/tr_xh");
    remove("tmp/tr_xv.corpus");
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) tu_rm_rf(dirs[i]);
    remove("tmp/tr_x.corpus");
    remove("tmp/tr_xr.corpus");
}
END_TEST

/* ---- --optimizer: each one trains; SGD and AdamW resume bit for bit; a resume keeps the kind -- */
#define OPT_OPTS TINY "--checkpoint-every 4 --keep 3 --valid-every 100 --no-samples --dropout 0.1 "

/* The mean train loss of steps [from, to] of a run. */
static double mean_loss(const char *dir, int64_t from, int64_t to) {
    double sum = 0;
    for (int64_t s = from; s <= to; s++) {
        double l = json_num_of(metrics_line(dir, s), "train_loss");
        ck_assert_msg(isfinite(l), "%s step %lld: %s", dir, (long long)s, metrics_line(dir, s));
        sum += l;
    }
    return sum / (double)(to - from + 1);
}

START_TEST(test_optimizers) {
    mkdir("tmp", 0755);
    static const char *const dirs[] = {"tmp/tr_oa", "tmp/tr_ob", "tmp/tr_oc", "tmp/tr_od", "tmp/tr_oe"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) tu_rm_rf(dirs[i]);
    write_corpus("tmp/tr_o.corpus", 12, 3, 60);
    /* each optimizer learns: the loss of the last 4 of 16 steps is below that of the first 4 */
    static const struct { const char *dir, *args, *says, *json; } runs[] = {
        {"tmp/tr_oa", "--optimizer adam --lr 0.01", "Adam lr 0.01",
         "\"optimizer\":\"adam\",\"weight_decay\":0,\"momentum\":0,\"betas\":[0.90000000000000002,0.999]"},
        {"tmp/tr_ob", "--optimizer adamw --lr 0.01", "AdamW weight decay 0.01 (decoupled) lr 0.01",
         "\"optimizer\":\"adamw\",\"weight_decay\":0.01,"},
        {"tmp/tr_oc", "--optimizer sgd --momentum 0.9 --lr 0.5 --weight-decay 0.0001",
         "SGD (momentum 0.9) weight decay 0.0001 (L2) lr 0.5", "\"optimizer\":\"sgd\",\"weight_decay\":0.0001,\"momentum\":0.90000000000000002,"},
    };
    char args[1024];
    for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
        snprintf(args, sizeof args, "train --corpus tmp/tr_o.corpus --out %s --steps 16 --workers 0 %s " OPT_OPTS,
                 runs[i].dir, runs[i].args);
        ck_assert_msg(run(args, out, sizeof out) == 0, "%s:\n%s", args, out);
        HAS(out, runs[i].says);
        double first = mean_loss(runs[i].dir, 1, 4), last = mean_loss(runs[i].dir, 13, 16);
        ck_assert_msg(last < first, "%s: the loss did not fall (%g -> %g)", runs[i].args, first, last);
        char path[256];
        snprintf(path, sizeof path, "%s/run.json", runs[i].dir);
        size_t len;
        char *js = (char *)tu_slurp(path, &len);
        ck_assert_ptr_nonnull(js);
        HAS(js, runs[i].json);
        free(js);
    }
    /* the default is Adam, the same run bit for bit as --optimizer adam */
    ck_assert_int_eq(run("train --corpus tmp/tr_o.corpus --out tmp/tr_od --steps 16 --workers 0 --lr 0.01 " OPT_OPTS, out,
                         sizeof out), 0);
    HAS(out, "Adam lr 0.01");
    assert_same_checkpoint("tmp/tr_oa", "tmp/tr_od", 16);
    /* AdamW and SGD resume bit for bit (8 + 8 with other worker counts) */
    static const struct { const char *args; ckpt_optim ko; const char *ref; } res[] = {
        {"--optimizer adamw --lr 0.01", {CT_OPTIM_ADAMW, 0}, "tmp/tr_ob"},
        {"--optimizer sgd --momentum 0.9 --lr 0.5 --weight-decay 0.0001", {CT_OPTIM_SGD, 0.9}, "tmp/tr_oc"},
    };
    for (size_t i = 0; i < sizeof res / sizeof *res; i++) {
        tu_rm_rf("tmp/tr_oe");
        snprintf(args, sizeof args, "train --corpus tmp/tr_o.corpus --out tmp/tr_oe --steps 8 --workers 2 %s " OPT_OPTS,
                 res[i].args);
        ck_assert_msg(run(args, out, sizeof out) == 0, "%s:\n%s", args, out);
        ck_assert_int_eq(run("train --resume tmp/tr_oe --steps 16 --workers 1", out, sizeof out), 0);
        HAS(out, "resumed tmp/tr_oe at step 8");
        assert_same_checkpoint_opt(res[i].ref, "tmp/tr_oe", 16, res[i].ko);
    }
    /* tmp/tr_oe is the SGD run now: another optimizer is refused, so is turning momentum off;
     * the hyper-parameters may change */
    ck_assert_int_eq(run("train --resume tmp/tr_oe --steps 20 --optimizer adam", out, sizeof out), 2);
    HAS(out, "--resume tmp/tr_oe: --optimizer adam, but the run trains with sgd; its checkpoint holds sgd's state");
    ck_assert_int_eq(run("train --resume tmp/tr_oe --steps 20 --momentum 0", out, sizeof out), 2);
    HAS(out, "cannot turn momentum on or off");
    ck_assert_int_eq(run("train --resume tmp/tr_oe --steps 20 --betas 0.8,0.9", out, sizeof out), 2);
    HAS(out, "--betas are Adam's and AdamW's");
    ck_assert_int_eq(run("train --resume tmp/tr_ob --steps 20 --optimizer sgd", out, sizeof out), 2);
    HAS(out, "--optimizer sgd, but the run trains with adamw");
    ck_assert_int_eq(run("train --resume tmp/tr_oe --steps 18 --momentum 0.8 --weight-decay 0", out, sizeof out), 0);
    HAS(out, "note: --momentum 0.8 (the run had 0.9)");
    HAS(out, "note: --weight-decay 0 (the run had 0.0001)");
    HAS(out, "SGD (momentum 0.8) lr 0.5");
    ck_assert_int_eq(run("train --resume tmp/tr_oe --steps 20 --optimizer sgd", out, sizeof out), 0);
    HAS(out, "SGD (momentum 0.8) lr 0.5");
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) tu_rm_rf(dirs[i]);
    remove("tmp/tr_o.corpus");
}
END_TEST

Suite *train_suite(void) {
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("train");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_resume_bit_exact);
    tcase_add_test(tc, test_guard);
    tcase_add_test(tc, test_usage_errors);
    tcase_add_test(tc, test_resume_refusals);
    tcase_add_test(tc, test_missing_corpus);
    tcase_add_test(tc, test_full_disk);
    tcase_add_test(tc, test_corpus_folder);
    tcase_add_test(tc, test_dashboard_flag);
    tcase_add_test(tc, test_roll_init_bias);
    tcase_add_test(tc, test_plateau_early_stop);
    tcase_add_test(tc, test_plateau_resume_bit_exact);
    tcase_add_test(tc, test_device_and_precision);
    tcase_add_test(tc, test_augment);
    tcase_add_test(tc, test_optimizers);
    suite_add_tcase(s, tc);
    return s;
}
