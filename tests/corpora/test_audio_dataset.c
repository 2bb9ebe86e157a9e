/* tests/corpora/test_audio_dataset.c — corpora/audio_dataset: audio files (a stereo 44.1 kHz
 * sine mix, a short mono file, a broken file) as mu-law token windows at 8 kHz: window
 * counts, token range, decoded tokens against the resampled mono signal within mu-law's
 * bound, sources, skips with reasons, options, the decoder, and the DataLoader. Files are
 * written under tests/tmp/ and removed. */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "audio/audiofile.h"
#include "audio/mulaw.h"
#include "corpora/audio_dataset.h"

#define ASSERT_HAS(msg, want) ck_assert_msg(strstr((msg), (want)) != NULL, "message \"%s\" lacks \"%s\"", (msg), (want))

#define PI 3.14159265358979323846
#define RATE 8000
#define SINE_RATE 44100
#define SINE_FRAMES 44100   /* 1 s -> 8000 samples at 8 kHz */
#define SHORT_RATE 22050
#define SHORT_FRAMES 2205   /* 0.1 s -> 800 samples */

/* The analytic mono mix of the stereo file at time t (seconds). */
static double sine_mono(double t) {
    return 0.5 * (0.8 * sin(2 * PI * 440 * t) + 0.4 * sin(2 * PI * 1000 * t));
}

typedef struct fixture {
    char dir[256], sine[512], shortf[512], broken[512];
    ca_audio stereo;   /* what sine.wav holds (float WAV: exact) */
} fixture;

/* dir/sine.wav (44.1 kHz stereo float), dir/sub/short.wav (22.05 kHz mono 16-bit), dir/broken.wav
 * (text), dir/notes.txt (ignored). */
static void fixture_make(fixture *f, const char *tag) {
    memset(f, 0, sizeof *f);
    mkdir("tmp", 0755);
    snprintf(f->dir, sizeof f->dir, "tmp/adata_%s_%ld", tag, (long)getpid());
    tu_rm_rf(f->dir);
    ck_assert_int_eq(mkdir(f->dir, 0755), 0);
    char sub[300];
    snprintf(sub, sizeof sub, "%s/sub", f->dir);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    snprintf(f->sine, sizeof f->sine, "%s/sine.wav", f->dir);
    snprintf(f->shortf, sizeof f->shortf, "%s/sub/short.wav", f->dir);
    snprintf(f->broken, sizeof f->broken, "%s/broken.wav", f->dir);
    ca_error err;
    ck_assert_int_eq(ca_audio_alloc(&f->stereo, SINE_FRAMES, 2, SINE_RATE, &err), CA_OK);
    for (int64_t i = 0; i < SINE_FRAMES; i++) {
        double t = (double)i / SINE_RATE;
        f->stereo.samples[2 * i] = (float)(0.8 * sin(2 * PI * 440 * t));
        f->stereo.samples[2 * i + 1] = (float)(0.4 * sin(2 * PI * 1000 * t));
    }
    ca_write_opts wo = {.format = CA_FORMAT_WAV_FLOAT};
    ck_assert_msg(ca_audio_write(f->sine, &f->stereo, &wo, &err) == CA_OK, "%s", err.message);
    ca_audio s = {0};
    ck_assert_int_eq(ca_audio_alloc(&s, SHORT_FRAMES, 1, SHORT_RATE, &err), CA_OK);
    for (int64_t i = 0; i < SHORT_FRAMES; i++) s.samples[i] = (float)(0.3 * sin(2 * PI * 300 * (double)i / SHORT_RATE));
    ck_assert_msg(ca_audio_write(f->shortf, &s, NULL, &err) == CA_OK, "%s", err.message);
    ca_audio_free(&s);
    FILE *fp = fopen(f->broken, "wb");
    ck_assert_ptr_nonnull(fp);
    fputs("this is not a RIFF file, just some text pretending to be audio\n", fp);
    fclose(fp);
    char txt[300];
    snprintf(txt, sizeof txt, "%s/notes.txt", f->dir);
    fp = fopen(txt, "wb");
    ck_assert_ptr_nonnull(fp);
    fputs("ignored\n", fp);
    fclose(fp);
}

static void fixture_free(fixture *f) {
    ca_audio_free(&f->stereo);
    tu_rm_rf(f->dir);
    struct stat st;
    ck_assert_msg(lstat(f->dir, &st) != 0, "temporary folder left behind: %s", f->dir);
}

static ct_ctx *quiet_ctx(void) {
    ct_ctx *ctx = ct_ctx_new();
    ck_assert_ptr_nonnull(ctx);
    ct_ctx_set_error_handler(ctx, NULL, NULL);
    return ctx;
}

static cp_audio_dataset_opts opts_8k(int64_t window, int64_t hop, bool drop_short) {
    cp_audio_dataset_opts o = cp_audio_dataset_defaults();
    o.rate = RATE;
    o.window = window;
    o.hop = hop;
    o.drop_short = drop_short;
    return o;
}

/* ==== tests ====================================================================================== */
START_TEST(test_defaults) {
    cp_audio_dataset_opts o = cp_audio_dataset_defaults();
    ck_assert_int_eq(o.rate, 16000);
    ck_assert_int_eq(o.window, 16000);
    ck_assert_int_eq(o.hop, 0);
    ck_assert(!o.drop_short);
    ck_assert_int_eq(CP_AUDIO_CLASSES, CA_MULAW_CLASSES);
    /* NULL-safe accessors */
    cp_audio_dataset_free(NULL);
    cp_audio_dataset_stats st = cp_audio_dataset_get_stats(NULL);
    ck_assert_int_eq(st.files + st.skipped + st.windows + st.samples, 0);
    ck_assert_int_eq(cp_audio_dataset_len(NULL), 0);
    ck_assert_ptr_null(cp_audio_dataset_skip(NULL, 0));
    ck_assert_ptr_null(cp_audio_dataset_options(NULL));
    ck_assert(!cp_audio_dataset_window(NULL, 0, NULL, NULL, NULL));
}
END_TEST

START_TEST(test_bad_options) {
    ct_ctx *ctx = quiet_ctx();
    const char *paths[] = {"tmp/none.wav"};
    cp_audio_dataset_opts o = opts_8k(100, 0, false);
    o.rate = 0;
    ck_assert_ptr_null(cp_audio_dataset_new(ctx, paths, 1, &o));
    ck_assert_int_eq(ct_ctx_status(ctx), CT_E_ARG);
    ASSERT_HAS(ct_ctx_error(ctx), "rate 0 Hz");
    o = opts_8k(-1, 0, false);
    ck_assert_ptr_null(cp_audio_dataset_new(ctx, paths, 1, &o));
    ASSERT_HAS(ct_ctx_error(ctx), "window -1");
    o = opts_8k(0, 10, false);
    ck_assert_ptr_null(cp_audio_dataset_new(ctx, paths, 1, &o));
    ASSERT_HAS(ct_ctx_error(ctx), "hop 10 with window 0");
    o = opts_8k(100, 0, false);
    ck_assert_ptr_null(cp_audio_dataset_new(ctx, NULL, 1, &o));
    ck_assert_int_eq(ct_ctx_status(ctx), CT_E_NULL);
    ck_assert_ptr_null(cp_audio_dataset_open_dir(ctx, "tmp/no_such_audio_folder", &o));
    ck_assert_int_eq(ct_ctx_status(ctx), CT_E_IO);
    ASSERT_HAS(ct_ctx_error(ctx), "tmp/no_such_audio_folder");
    /* ctx may be NULL */
    o.rate = -5;
    ck_assert_ptr_null(cp_audio_dataset_new(NULL, paths, 1, &o));
    ct_ctx_free(ctx);
}
END_TEST

START_TEST(test_dir_windows_tokens_sources) {
    if (!ca_have_sndfile()) return;
    fixture f;
    fixture_make(&f, "dir");
    ct_ctx *ctx = quiet_ctx();
    cp_audio_dataset_opts o = opts_8k(2000, 0, false);
    cp_audio_dataset *a = cp_audio_dataset_open_dir(ctx, f.dir, &o);
    ck_assert_msg(a != NULL, "%s", ct_ctx_error(ctx));
    ck_assert_int_eq(cp_audio_dataset_options(a)->hop, 2000);

    /* counters: sine (8000 -> 4 windows) and sub/short (800 -> 1 short window); broken skipped */
    cp_audio_dataset_stats st = cp_audio_dataset_get_stats(a);
    ck_assert_int_eq(st.files, 2);
    ck_assert_int_eq(st.skipped, 1);
    ck_assert_int_eq(st.windows, 5);
    ck_assert_int_eq(st.samples, 8000 + 800);
    ck_assert_int_eq(cp_audio_dataset_len(a), 5);
    ck_assert_int_eq(cp_audio_dataset_num_skipped(a), 1);
    const cp_audio_skip *sk = cp_audio_dataset_skip(a, 0);
    ck_assert_ptr_nonnull(sk);
    ck_assert_str_eq(sk->name, "broken.wav");
    ck_assert_int_eq(sk->status, CT_E_FORMAT);
    ASSERT_HAS(sk->message, f.broken);
    ASSERT_HAS(sk->message, "cannot read the audio");
    ck_assert_ptr_null(cp_audio_dataset_skip(a, 1));

    /* sorted relative names */
    ck_assert_str_eq(cp_audio_dataset_file_name(a, 0), "sine.wav");
    ck_assert_str_eq(cp_audio_dataset_file_name(a, 1), "sub/short.wav");
    ck_assert_ptr_null(cp_audio_dataset_file_name(a, 2));

    /* the interface: len, item_len, describe, get */
    ct_dataset ds = cp_audio_dataset_as(a);
    ck_assert_int_eq(ct_dataset_len(&ds), 5);
    const int64_t want_len[5] = {2000, 2000, 2000, 2000, 800};
    const int64_t want_off[5] = {0, 2000, 4000, 6000, 0};
    const char *want_src[5] = {"sine.wav@0", "sine.wav@2000", "sine.wav@4000", "sine.wav@6000", "sub/short.wav@0"};
    ct_data_item it;
    ct_item_init(&it);
    for (int64_t i = 0; i < 5; i++) {
        ck_assert_int_eq(ds.item_len(ds.self, i), want_len[i]);
        char buf[128];
        ck_assert_str_eq(ct_dataset_describe(&ds, i, buf, sizeof buf), want_src[i]);
        ck_assert_int_eq(cp_audio_dataset_get(a, i, &it), CT_OK);
        ck_assert_int_eq(it.kind, CT_ITEM_TOKENS);
        ck_assert_int_eq(it.len, want_len[i]);
        ck_assert_int_eq(it.offset, want_off[i]);
        ck_assert_int_eq(it.piece_id, i < 4 ? 0 : 1);
        ck_assert_int_eq(it.index, i);
        ck_assert_str_eq(it.source, want_src[i]);
        int lo = 255, hi = 0;
        for (int64_t k = 0; k < it.len; k++) {
            ck_assert(it.tokens[k] >= 0 && it.tokens[k] <= 255);
            if (it.tokens[k] < lo) lo = (int)it.tokens[k];
            if (it.tokens[k] > hi) hi = (int)it.tokens[k];
        }
        ck_assert_msg(hi - lo > 100, "window %lld uses tokens %d..%d only", (long long)i, lo, hi);
        int64_t file, off, len;
        ck_assert(cp_audio_dataset_window(a, i, &file, &off, &len));
        ck_assert_int_eq(off, want_off[i]);
        ck_assert_int_eq(len, want_len[i]);
    }
    ck_assert(!cp_audio_dataset_window(a, 5, NULL, NULL, NULL));
    ck_assert_int_eq(ds.item_len(ds.self, 5), -1);
    ck_assert_int_ne(cp_audio_dataset_get(a, 5, &it), CT_OK);
    ck_assert_ptr_nonnull(it.error);

    /* decoded tokens vs the resampled mono signal, within mu-law's bound: the same pipeline
     * in memory (exact), and the analytic signal away from the edges (the resampler's error) */
    ca_audio mono = {0}, res = {0};
    ca_error err;
    ck_assert_int_eq(ca_audio_to_mono(&f.stereo, &mono, &err), CA_OK);
    ck_assert_int_eq(ca_audio_resample(&mono, RATE, &res, &err), CA_OK);
    ck_assert_int_eq(res.frames, 8000);
    double worst_model = 0;
    for (int64_t w = 0; w < 4; w++) {
        ck_assert_int_eq(cp_audio_dataset_get(a, w, &it), CT_OK);
        for (int64_t k = 0; k < it.len; k++) {
            int64_t n = it.offset + k;
            float y = ca_mulaw_decode((int)it.tokens[k]);
            float x = res.samples[n];
            ck_assert_msg(fabsf(y - x) <= ca_mulaw_error_bound(x), "sample %lld: decoded %g, resampled %g",
                          (long long)n, y, x);
            if (n >= 200 && n < 7800) {
                double ref = sine_mono((double)n / RATE);
                double d = fabs(y - ref);
                ck_assert_msg(d <= ca_mulaw_error_bound((float)ref) + 2e-3, "sample %lld: decoded %g, analytic %g",
                              (long long)n, y, ref);
                if (d > worst_model) worst_model = d;
            }
        }
    }
    ck_assert(worst_model > 0);
    ca_audio_free(&mono);
    ca_audio_free(&res);

    /* the raw token array agrees with the items */
    int64_t n0 = 0;
    const uint8_t *t0 = cp_audio_dataset_file_tokens(a, 0, &n0);
    ck_assert_ptr_nonnull(t0);
    ck_assert_int_eq(n0, 8000);
    ck_assert_int_eq(cp_audio_dataset_get(a, 1, &it), CT_OK);
    for (int64_t k = 0; k < it.len; k++) ck_assert_int_eq(it.tokens[k], t0[2000 + k]);
    ck_assert_ptr_null(cp_audio_dataset_file_tokens(a, 9, &n0));
    ck_assert_int_eq(n0, -1);

    ct_item_free(&it);
    cp_audio_dataset_free(a);
    ct_ctx_free(ctx);
    fixture_free(&f);
}
END_TEST

START_TEST(test_paths_hop_drop_short_whole) {
    if (!ca_have_sndfile()) return;
    fixture f;
    fixture_make(&f, "opts");
    ct_ctx *ctx = quiet_ctx();
    char missing[600];
    snprintf(missing, sizeof missing, "%s/missing.wav", f.dir);
    const char *paths[] = {f.shortf, missing, f.sine, f.broken};

    /* the given order and names; a missing file is an I/O skip */
    cp_audio_dataset_opts o = opts_8k(3000, 0, false);
    cp_audio_dataset *a = cp_audio_dataset_new(ctx, paths, 4, &o);
    ck_assert_msg(a != NULL, "%s", ct_ctx_error(ctx));
    cp_audio_dataset_stats st = cp_audio_dataset_get_stats(a);
    ck_assert_int_eq(st.files, 2);
    ck_assert_int_eq(st.skipped, 2);
    ck_assert_int_eq(st.windows, 1 + 3);  /* short: 800; sine: 0, 3000 full + 6000 (2000 left) */
    ck_assert_str_eq(cp_audio_dataset_file_name(a, 0), f.shortf);
    ck_assert_str_eq(cp_audio_dataset_skip(a, 0)->name, missing);
    ck_assert_int_eq(cp_audio_dataset_skip(a, 0)->status, CT_E_IO);
    ASSERT_HAS(cp_audio_dataset_skip(a, 0)->message, missing);
    ck_assert_str_eq(cp_audio_dataset_skip(a, 1)->name, f.broken);
    int64_t off, len;
    ck_assert(cp_audio_dataset_window(a, 3, NULL, &off, &len));
    ck_assert_int_eq(off, 6000);
    ck_assert_int_eq(len, 2000);
    ct_data_item it;
    ct_item_init(&it);
    ck_assert_int_eq(cp_audio_dataset_get(a, 3, &it), CT_OK);
    char want[700];
    snprintf(want, sizeof want, "%s@6000", f.sine);
    ck_assert_str_eq(it.source, want);
    cp_audio_dataset_free(a);

    /* overlapping windows: hop 2500 -> 0, 2500, 5000 (5000 + 3000 = 8000: no tail) */
    o = opts_8k(3000, 2500, false);
    const char *one[] = {f.sine};
    a = cp_audio_dataset_new(ctx, one, 1, &o);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(cp_audio_dataset_len(a), 3);
    ck_assert(cp_audio_dataset_window(a, 2, NULL, &off, &len));
    ck_assert_int_eq(off, 5000);
    ck_assert_int_eq(len, 3000);
    cp_audio_dataset_free(a);

    /* drop_short: sine keeps its 2 full windows of 3000; short has none and is skipped */
    o = opts_8k(3000, 0, true);
    a = cp_audio_dataset_new(ctx, paths, 4, &o);
    ck_assert_ptr_nonnull(a);
    st = cp_audio_dataset_get_stats(a);
    ck_assert_int_eq(st.files, 1);
    ck_assert_int_eq(st.skipped, 3);
    ck_assert_int_eq(st.windows, 2);
    ck_assert_int_eq(st.samples, 8000);
    ck_assert_str_eq(cp_audio_dataset_skip(a, 0)->name, f.shortf);
    ck_assert_int_eq(cp_audio_dataset_skip(a, 0)->status, CT_E_ARG);
    ASSERT_HAS(cp_audio_dataset_skip(a, 0)->message, "800 samples at 8000 Hz, shorter than one window of 3000");
    ck_assert(cp_audio_dataset_window(a, 1, NULL, &off, &len));
    ck_assert_int_eq(off, 3000);
    ck_assert_int_eq(len, 3000);
    cp_audio_dataset_free(a);

    /* window 0: whole files */
    o = opts_8k(0, 0, false);
    a = cp_audio_dataset_new(ctx, paths, 4, &o);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(cp_audio_dataset_len(a), 2);
    ck_assert(cp_audio_dataset_window(a, 0, NULL, &off, &len));
    ck_assert_int_eq(len, 800);
    ck_assert(cp_audio_dataset_window(a, 1, NULL, &off, &len));
    ck_assert_int_eq(len, 8000);
    cp_audio_dataset_free(a);

    /* no files at all: an empty dataset, not an error */
    a = cp_audio_dataset_new(ctx, NULL, 0, &o);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(cp_audio_dataset_len(a), 0);
    cp_audio_dataset_free(a);

    ct_item_free(&it);
    ct_ctx_free(ctx);
    fixture_free(&f);
}
END_TEST

START_TEST(test_decoder) {
    mkdir("tmp", 0755);
    char dir[256], path[400];
    snprintf(dir, sizeof dir, "tmp/adata_dec_%ld", (long)getpid());
    tu_rm_rf(dir);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    enum { N = 1234 };
    int64_t tok[N];
    for (int i = 0; i < N; i++) tok[i] = ca_mulaw_encode((float)(0.7 * sin(2 * PI * 220 * i / (double)RATE)));
    cp_error err;

    /* argument errors name the file */
    snprintf(path, sizeof path, "%s/bad.wav", dir);
    tok[17] = 256;
    ck_assert_int_eq(cp_audio_tokens_write(path, tok, N, RATE, &err), CT_E_ARG);
    ASSERT_HAS(err.message, "bad.wav: token 17 is 256 (expected a mu-law class 0..255)");
    tok[17] = -1;
    ck_assert_int_eq(cp_audio_tokens_write(path, tok, N, RATE, &err), CT_E_ARG);
    tok[17] = 128;
    ck_assert_int_eq(cp_audio_tokens_write(path, tok, N, 0, &err), CT_E_ARG);
    ASSERT_HAS(err.message, "bad.wav");
    ck_assert_int_eq(cp_audio_tokens_write(NULL, tok, N, RATE, &err), CT_E_NULL);
    ck_assert_int_eq(cp_audio_tokens_write(path, NULL, N, RATE, NULL), CT_E_NULL);
    ck_assert_int_eq(access(path, F_OK), -1);

    if (ca_have_sndfile()) {
        snprintf(path, sizeof path, "%s/x.mp3", dir);
        ck_assert_int_eq(cp_audio_tokens_write(path, tok, N, RATE, &err), CT_E_FORMAT);
        ASSERT_HAS(err.message, "x.mp3");

        /* a readable 16-bit WAV of the right length whose samples decode the tokens */
        snprintf(path, sizeof path, "%s/out.wav", dir);
        ck_assert_msg(cp_audio_tokens_write(path, tok, N, RATE, &err) == CT_OK, "%s", err.message);
        ck_assert_int_eq(err.status, CT_OK);
        ca_audio back = {0};
        ca_error ce;
        ck_assert_msg(ca_audio_read(path, &back, &ce) == CA_OK, "%s", ce.message);
        ck_assert_int_eq(back.frames, N);
        ck_assert_int_eq(back.channels, 1);
        ck_assert_int_eq(back.rate, RATE);
        for (int i = 0; i < N; i++) {
            float want = ca_mulaw_decode((int)tok[i]);
            ck_assert_msg(fabsf(back.samples[i] - want) <= 1.0f / 32768 + 1e-6f, "sample %d: %g, want %g", i,
                          back.samples[i], want);
            /* re-encoding gives the tokens back (16-bit PCM is finer than mu-law steps) */
            ck_assert_int_eq(ca_mulaw_encode(back.samples[i]), tok[i]);
        }
        ca_audio_free(&back);

        /* FLAC too */
        snprintf(path, sizeof path, "%s/out.flac", dir);
        ck_assert_msg(cp_audio_tokens_write(path, tok, N, RATE, &err) == CT_OK, "%s", err.message);
        ck_assert_int_eq(ca_audio_read(path, &back, &ce), CA_OK);
        ck_assert_int_eq(back.frames, N);
        ca_audio_free(&back);
    } else {
        snprintf(path, sizeof path, "%s/out.wav", dir);
        ck_assert_int_eq(cp_audio_tokens_write(path, tok, N, RATE, &err), CT_E_UNSUPPORTED);
    }
    tu_rm_rf(dir);
    struct stat st;
    ck_assert_msg(lstat(dir, &st) != 0, "temporary folder left behind: %s", dir);
}
END_TEST

/* dataset -> decoder round trip: a window's tokens written and read back give the same tokens */
START_TEST(test_window_round_trip) {
    if (!ca_have_sndfile()) return;
    fixture f;
    fixture_make(&f, "trip");
    ct_ctx *ctx = quiet_ctx();
    cp_audio_dataset_opts o = opts_8k(2000, 0, false);
    const char *one[] = {f.sine};
    cp_audio_dataset *a = cp_audio_dataset_new(ctx, one, 1, &o);
    ck_assert_ptr_nonnull(a);
    ct_data_item it;
    ct_item_init(&it);
    ck_assert_int_eq(cp_audio_dataset_get(a, 2, &it), CT_OK);
    char out[600];
    snprintf(out, sizeof out, "%s/window.wav", f.dir);
    cp_error err;
    ck_assert_msg(cp_audio_tokens_write(out, it.tokens, it.len, RATE, &err) == CT_OK, "%s", err.message);
    const char *back[] = {out};
    cp_audio_dataset *b = cp_audio_dataset_new(ctx, back, 1, &o);   /* same rate: no resampling */
    ck_assert_ptr_nonnull(b);
    int64_t n = 0;
    const uint8_t *t = cp_audio_dataset_file_tokens(b, 0, &n);
    ck_assert_int_eq(n, it.len);
    for (int64_t k = 0; k < n; k++) ck_assert_int_eq(t[k], it.tokens[k]);
    ct_item_free(&it);
    cp_audio_dataset_free(b);
    cp_audio_dataset_free(a);
    ct_ctx_free(ctx);
    fixture_free(&f);
}
END_TEST

START_TEST(test_dataloader) {
    if (!ca_have_sndfile()) return;
    fixture f;
    fixture_make(&f, "loader");
    ct_ctx *ctx = quiet_ctx();
    cp_audio_dataset_opts o = opts_8k(2000, 0, false);
    cp_audio_dataset *a = cp_audio_dataset_open_dir(ctx, f.dir, &o);
    ck_assert_ptr_nonnull(a);
    ct_dataset ds = cp_audio_dataset_as(a);
    for (int pass = 0; pass < 2; pass++) {
        ct_dataloader_opts lo = ct_dataloader_defaults();
        lo.batch_size = 2;
        lo.workers = pass;   /* 0: the caller's thread; 1: a worker */
        lo.sampler = pass ? CT_SAMPLER_BUCKET : CT_SAMPLER_SEQUENTIAL;   /* bucketing reads item_len */
        lo.seed = 7;
        ct_dataloader *dl = ct_dataloader_new(ctx, &ds, &lo);
        ck_assert_msg(dl != NULL, "%s", ct_ctx_error(ctx));
        ck_assert_int_eq(ct_dataloader_num_batches(dl), 3);
        int64_t batches = 0, items = 0, steps = 0;
        for (;;) {
            ct_scope_begin(ctx);
            const ct_batch *b = ct_dataloader_next(dl);
            if (b) {
                batches++;
                items += b->rows;
                ck_assert_int_eq(b->kind, CT_ITEM_TOKENS);
                ck_assert_int_eq(ct_size(b->inputs, 1), b->rows);   /* [T, B] */
                ck_assert_int_le(b->steps, 2000);
                const int64_t *x = ct_data_i64(b->inputs), *l = ct_data_i64(b->lengths);
                ck_assert_ptr_nonnull(x);
                for (int64_t r = 0; r < b->rows; r++) steps += l[r];
                for (int64_t k = 0; k < b->steps * b->rows; k++) ck_assert(x[k] >= 0 && x[k] <= 255);
            }
            ct_scope_end(ctx);
            if (!b) break;
        }
        ck_assert_msg(ct_dataloader_status(dl) == CT_OK, "%s", ct_ctx_error(ctx));
        ck_assert_int_eq(batches, 3);
        ck_assert_int_eq(items, 5);
        ck_assert_int_eq(steps, 4 * 2000 + 800);
        ct_dataloader_free(dl);
    }
    cp_audio_dataset_free(a);
    ct_ctx_free(ctx);
    fixture_free(&f);
}
END_TEST

Suite *audio_dataset_suite(void) {
    Suite *s = suite_create("audio_dataset");
    TCase *tc = tcase_create("audio_dataset");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_bad_options);
    tcase_add_test(tc, test_dir_windows_tokens_sources);
    tcase_add_test(tc, test_paths_hop_drop_short_whole);
    tcase_add_test(tc, test_decoder);
    tcase_add_test(tc, test_window_round_trip);
    tcase_add_test(tc, test_dataloader);
    suite_add_tcase(s, tc);
    return s;
}
