/* tests/audio/test_audio.c — audio files (WAV/FLAC/OGG round trips through libsndfile), mono,
 * resampling, the built-in synthesizer (length, loudness, silence, drums, no clipping,
 * determinism), the limiter, mu-law (torchaudio's codes, error bounds), MIDI -> audio rendering
 * and the error messages. Built without libsndfile (no CT_HAVE_SNDFILE), the file tests check
 * the "built without libsndfile" error instead. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audio/audiofile.h"
#include "audio/midi.h"
#include "audio/mulaw.h"
#include "audio/render.h"
#include "audio/synth.h"

#define PI 3.14159265358979323846

/* ---- helpers ------------------------------------------------------------------------------ */
/* (Check records every passing assertion with a write(), so loops over samples compute first and
 * assert once.) */
/* tmp/<stem>_<pid>.<ext>: unique per process (tests run in tests/) */
static const char *tmp_path(char *buf, size_t cap, const char *stem, const char *ext) {
    snprintf(buf, cap, "tmp/%s_%ld.%s", stem, (long)getpid(), ext);
    return buf;
}

static void assert_has(const char *text, const char *part) {
    ck_assert_msg(strstr(text, part) != NULL, "expected \"%s\" in \"%s\"", part, text);
}

/* a buffer with a sine per channel (channel k: frequency f * (k + 1)) */
static ca_audio make_sine(int64_t frames, int channels, int rate, double f, double amp) {
    ca_audio a;
    ck_assert_int_eq(ca_audio_alloc(&a, frames, channels, rate, NULL), CA_OK);
    for (int64_t i = 0; i < frames; i++)
        for (int k = 0; k < channels; k++)
            a.samples[i * channels + k] = (float)(amp * sin(2 * PI * f * (k + 1) * (double)i / rate));
    return a;
}

static double rms(const ca_audio *a, int64_t f0, int64_t f1) {
    if (f0 < 0) f0 = 0;
    if (f1 > a->frames) f1 = a->frames;
    double s = 0;
    int64_t n = 0;
    for (int64_t i = f0 * a->channels; i < f1 * a->channels; i++, n++) s += (double)a->samples[i] * a->samples[i];
    return n ? sqrt(s / (double)n) : 0;
}

static float peak(const ca_audio *a) {
    float p = 0;
    int64_t bad = -1;
    for (int64_t i = 0; i < a->frames * a->channels; i++) {
        if (!isfinite(a->samples[i]) && bad < 0) bad = i;
        if (fabsf(a->samples[i]) > p) p = fabsf(a->samples[i]);
    }
    ck_assert_msg(bad < 0, "sample %lld is not finite", (long long)bad);
    return p;
}

/* the first frame in [f0, f1) with a non-zero sample, or -1 */
static int64_t first_nonzero(const ca_audio *a, int64_t f0, int64_t f1) {
    for (int64_t i = f0 * a->channels; i < f1 * a->channels; i++)
        if (a->samples[i] != 0.0f) return i / a->channels;
    return -1;
}

/* frequency of channel ch from its rising zero crossings between frames f0 and f1 */
static double zero_cross_freq(const ca_audio *a, int ch, int64_t f0, int64_t f1) {
    int64_t first = -1, last = -1;
    int n = 0;
    double tf = 0, tl = 0;
    for (int64_t i = f0 + 1; i < f1; i++) {
        float x0 = a->samples[(i - 1) * a->channels + ch], x1 = a->samples[i * a->channels + ch];
        if (x0 < 0 && x1 >= 0) {
            double t = (double)(i - 1) + x0 / (x0 - x1); /* linear interpolation */
            if (first < 0) first = i, tf = t;
            last = i, tl = t;
            n++;
        }
    }
    ck_assert_int_gt(n, 2);
    (void)first;
    (void)last;
    return (n - 1) / ((tl - tf) / a->rate);
}

/* the amplitude of frequency f in channel ch (a single DFT bin over the frames, Hann window) */
static double dft_amp(const ca_audio *a, int ch, double f, int64_t f0, int64_t f1) {
    double re = 0, im = 0, wsum = 0;
    for (int64_t i = f0; i < f1; i++) {
        double w = 0.5 - 0.5 * cos(2 * PI * (double)(i - f0) / (double)(f1 - f0));
        double x = a->samples[i * a->channels + ch] * w;
        re += x * cos(2 * PI * f * (double)i / a->rate);
        im -= x * sin(2 * PI * f * (double)i / a->rate);
        wsum += w;
    }
    return 2 * sqrt(re * re + im * im) / wsum;
}

static cm_note mknote(double start, double end, int pitch, int vel, int program, bool drum) {
    const int ppq = CM_DEFAULT_PPQ; /* 120 bpm: one second is 2 * ppq ticks */
    cm_note n = {.start_tick = (int64_t)llround(start * 2 * ppq), .end_tick = (int64_t)llround(end * 2 * ppq),
                 .start_s = start, .end_s = end, .pitch = (uint8_t)pitch, .velocity = (uint8_t)vel,
                 .channel = (uint8_t)(drum ? CM_DRUM_CHANNEL : 0), .program = (uint8_t)program,
                 .is_drum = drum};
    return n;
}

static cm_notes notes_of(const cm_note *v, int n) {
    cm_notes notes;
    cm_error ce;
    ck_assert_msg(cm_notes_from_array(&notes, v, n, &ce) == CM_OK, "%s", ce.message);
    return notes;
}

static void no_tmp_leftovers(void) {
    DIR *d = opendir("tmp");
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    char mine[64];
    snprintf(mine, sizeof mine, ".tmp-%ld-", (long)getpid());
    while ((e = readdir(d)))
        ck_assert_msg(strstr(e->d_name, mine) == NULL, "temporary file left behind: tmp/%s", e->d_name);
    closedir(d);
}

/* ---- files -------------------------------------------------------------------------------- */
static void check_roundtrip(const char *ext, ca_format fmt, int channels, int rate, double tol) {
    char path[128];
    tmp_path(path, sizeof path, "rt", ext);
    ca_audio a = make_sine(4000, channels, rate, 441, 0.7);
    a.samples[0] = 1.0f; /* extremes: clipped, not wrapped */
    a.samples[1] = -1.0f;
    a.samples[2] = 1.5f;
    ca_write_opts wo = {.format = fmt};
    ca_error err;
    ca_status s = ca_audio_write(path, &a, &wo, &err);
    if (!ca_have_sndfile()) {
        ck_assert_int_eq(s, CA_E_UNSUPPORTED);
        assert_has(err.message, "built without libsndfile");
        ca_audio_free(&a);
        return;
    }
    ck_assert_msg(s == CA_OK, "%s", err.message);
    ca_audio b;
    ck_assert_msg(ca_audio_read(path, &b, &err) == CA_OK, "%s", err.message);
    ck_assert_int_eq(b.frames, a.frames);
    ck_assert_int_eq(b.channels, channels);
    ck_assert_int_eq(b.rate, rate);
    double maxd = 0;
    for (int64_t i = 0; i < a.frames * channels; i++) {
        double want = a.samples[i] > 1 && fmt != CA_FORMAT_WAV_FLOAT ? 1 : a.samples[i];
        double d = fabs(b.samples[i] - want);
        if (d > maxd) maxd = d;
    }
    ck_assert_msg(maxd <= tol, "%s: max |difference| %g > %g", ext, maxd, tol);
    ca_audio_free(&a);
    ca_audio_free(&b);
    unlink(path);
}

START_TEST(test_wav_flac_roundtrip) {
    const double q16 = 1.0 / 32768 + 1e-7; /* one 16-bit step (clipped 1.0 reads as 32767/32768) */
    check_roundtrip("wav", CA_FORMAT_AUTO, 2, 44100, q16);
    check_roundtrip("wav", CA_FORMAT_AUTO, 1, 8000, q16);
    check_roundtrip("flac", CA_FORMAT_AUTO, 2, 22050, q16);
    check_roundtrip("flac", CA_FORMAT_AUTO, 1, 48000, q16);
    check_roundtrip("wav", CA_FORMAT_WAV_FLOAT, 3, 16000, 0); /* float: exact (1.5 stays 1.5) */
    no_tmp_leftovers();
}
END_TEST

START_TEST(test_float_wav_exact) {
    if (!ca_have_sndfile()) return;
    char path[128];
    tmp_path(path, sizeof path, "fl", "wav");
    ca_audio a = make_sine(1000, 2, 44100, 1000, 1.7);
    ca_write_opts wo = {.format = CA_FORMAT_WAV_FLOAT};
    ca_error err;
    ck_assert_msg(ca_audio_write(path, &a, &wo, &err) == CA_OK, "%s", err.message);
    ca_audio b;
    ck_assert_msg(ca_audio_read(path, &b, &err) == CA_OK, "%s", err.message);
    ck_assert_int_eq(b.frames, 1000);
    ck_assert_int_eq(memcmp(a.samples, b.samples, 2000 * sizeof(float)), 0);
    ca_audio_free(&a);
    ca_audio_free(&b);
    unlink(path);
}
END_TEST

START_TEST(test_ogg_roundtrip) {
    char path[128];
    tmp_path(path, sizeof path, "rt", "ogg");
    const int rate = 44100;
    ca_audio a = make_sine(rate, 2, rate, 440, 0.5);
    ca_error err;
    ca_status s = ca_audio_write(path, &a, NULL, &err);
    if (!ca_have_sndfile()) {
        ck_assert_int_eq(s, CA_E_UNSUPPORTED);
        ca_audio_free(&a);
        return;
    }
    ck_assert_msg(s == CA_OK, "%s", err.message);
    ca_audio b;
    ck_assert_msg(ca_audio_read(path, &b, &err) == CA_OK, "%s", err.message);
    ck_assert_int_eq(b.channels, 2);
    ck_assert_int_eq(b.rate, rate);
    ck_assert_msg(llabs(b.frames - a.frames) <= 2048, "ogg frames %lld vs %lld", (long long)b.frames,
                  (long long)a.frames);
    double ra = rms(&a, 4410, 39690), rb = rms(&b, 4410, 39690);
    ck_assert_msg(fabs(rb - ra) < 0.05 * ra, "ogg loudness %g vs %g", rb, ra);
    /* the pitch survives: channel 0 at 440 Hz, channel 1 at 880 Hz */
    ck_assert_double_eq_tol(zero_cross_freq(&b, 0, 4410, 39690), 440, 1);
    ck_assert_double_eq_tol(zero_cross_freq(&b, 1, 4410, 39690), 880, 2);
    /* a lower quality writes a smaller file */
    struct stat st_default, st_low;
    ck_assert_int_eq(stat(path, &st_default), 0);
    ca_write_opts low = {.vorbis_quality = 0.05};
    ck_assert_msg(ca_audio_write(path, &a, &low, &err) == CA_OK, "%s", err.message);
    ck_assert_int_eq(stat(path, &st_low), 0);
    ck_assert_int_lt(st_low.st_size, st_default.st_size);
    ca_audio_free(&a);
    ca_audio_free(&b);
    unlink(path);
}
END_TEST

START_TEST(test_formats) {
    ck_assert_int_eq(ca_format_from_path("a.wav"), CA_FORMAT_WAV_PCM16);
    ck_assert_int_eq(ca_format_from_path("dir.x/A.WAV"), CA_FORMAT_WAV_PCM16);
    ck_assert_int_eq(ca_format_from_path("a.FLAC"), CA_FORMAT_FLAC);
    ck_assert_int_eq(ca_format_from_path("a.ogg"), CA_FORMAT_OGG);
    ck_assert_int_eq(ca_format_from_path("a.oga"), CA_FORMAT_OGG);
    ck_assert_int_eq(ca_format_from_path("a.mp3"), CA_FORMAT_AUTO);
    ck_assert_int_eq(ca_format_from_path("dir.wav/a"), CA_FORMAT_AUTO);
    ck_assert_int_eq(ca_format_from_path(NULL), CA_FORMAT_AUTO);
    ck_assert_str_eq(ca_format_name(CA_FORMAT_FLAC), "flac");
    ck_assert_str_eq(ca_format_name(CA_FORMAT_AUTO), "?");
    for (int s = 0; s <= CA_STATUS_COUNT; s++) ck_assert_ptr_nonnull(ca_strerror((ca_status)s));
    ck_assert_str_eq(ca_strerror(CA_OK), "success");
    if (!ca_have_sndfile()) return;
    /* an explicit format wins over the extension, and reading goes by the content */
    char path[128];
    tmp_path(path, sizeof path, "explicit", "dat");
    ca_audio a = make_sine(500, 1, 11025, 300, 0.3);
    ca_write_opts wo = {.format = CA_FORMAT_FLAC};
    ca_error err;
    ck_assert_msg(ca_audio_write(path, &a, &wo, &err) == CA_OK, "%s", err.message);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    char magic[4];
    ck_assert_int_eq(fread(magic, 1, 4, f), 4);
    fclose(f);
    ck_assert_int_eq(memcmp(magic, "fLaC", 4), 0);
    ca_audio b;
    ck_assert_msg(ca_audio_read(path, &b, &err) == CA_OK, "%s", err.message);
    ck_assert_int_eq(b.frames, 500);
    ck_assert_int_eq(b.rate, 11025);
    ca_audio_free(&a);
    ca_audio_free(&b);
    unlink(path);
    /* an empty audio file */
    tmp_path(path, sizeof path, "empty", "wav");
    ca_audio e;
    ck_assert_int_eq(ca_audio_alloc(&e, 0, 2, 44100, NULL), CA_OK);
    ck_assert_msg(ca_audio_write(path, &e, NULL, &err) == CA_OK, "%s", err.message);
    ck_assert_msg(ca_audio_read(path, &b, &err) == CA_OK, "%s", err.message);
    ck_assert_int_eq(b.frames, 0);
    ck_assert_int_eq(b.channels, 2);
    ca_audio_free(&e);
    ca_audio_free(&b);
    unlink(path);
}
END_TEST

START_TEST(test_file_errors) {
    ca_error err;
    ca_audio a;
    char path[128];
    /* missing file */
    ca_status s = ca_audio_read("tmp/no_such_audio.wav", &a, &err);
    ck_assert_ptr_null(a.samples);
    if (!ca_have_sndfile()) {
        ck_assert_int_eq(s, CA_E_UNSUPPORTED);
        assert_has(err.message, "tmp/no_such_audio.wav: cannot read audio: cantor was built without libsndfile");
        ca_audio x = make_sine(10, 1, 8000, 100, 0.1);
        ck_assert_int_eq(ca_audio_write("tmp/x.wav", &x, NULL, &err), CA_E_UNSUPPORTED);
        assert_has(err.message, "built without libsndfile");
        ca_audio_free(&x);
        return;
    }
    ck_assert_int_eq(s, CA_E_IO);
    assert_has(err.message, "tmp/no_such_audio.wav: cannot open the audio file: No such file or directory");
    ck_assert_str_eq(err.file, "tmp/no_such_audio.wav");
    /* a directory */
    ck_assert_int_eq(ca_audio_read("tmp", &a, &err), CA_E_IO);
    assert_has(err.message, "tmp: not a regular file (a directory)");
    /* not audio: libsndfile's own words follow */
    tmp_path(path, sizeof path, "notaudio", "wav");
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs("this is not a RIFF file at all, just text\n", f);
    fclose(f);
    ck_assert_int_eq(ca_audio_read(path, &a, &err), CA_E_FORMAT);
    assert_has(err.message, path);
    assert_has(err.message, ": cannot read the audio: ");
    ck_assert_msg(strlen(strstr(err.message, "audio: ") + 7) > 5, "no libsndfile text in \"%s\"", err.message);
    unlink(path);
    /* an empty file */
    tmp_path(path, sizeof path, "empty", "flac");
    f = fopen(path, "wb");
    fclose(f);
    ck_assert_int_eq(ca_audio_read(path, &a, &err), CA_E_FORMAT);
    assert_has(err.message, path);
    unlink(path);

    /* a FLAC header that claims more frames than it has: refused above the cap, and below it only
     * what is really there is allocated and returned */
    static const uint64_t claims[2] = {(uint64_t)1 << 35, (uint64_t)1 << 29};
    for (int k = 0; k < 2; k++) {
        tmp_path(path, sizeof path, "claim", "flac");
        uint8_t b[42] = {'f', 'L', 'a', 'C', 0x80, 0, 0, 34, 0x10, 0, 0x10, 0};
        uint64_t bits = ((uint64_t)44100 << 44) | ((uint64_t)15 << 36) | claims[k]; /* mono, 16 bits */
        for (int i = 0; i < 8; i++) b[8 + 10 + i] = (uint8_t)(bits >> (56 - 8 * i));
        f = fopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(fwrite(b, 1, sizeof b, f), sizeof b);
        fclose(f);
        s = ca_audio_read(path, &a, &err);
        if (k == 0) {
            ck_assert_int_eq(s, CA_E_LIMIT);
            assert_has(err.message, ": 34359738368 frames x 1 channels exceeds the limit of 1073741824 samples");
        } else {
            ck_assert_msg(s == CA_OK || s == CA_E_DECODE, "%s", err.message);
            if (s == CA_OK) ck_assert_int_eq(a.frames, 0);
            ca_audio_free(&a);
        }
        unlink(path);
    }

    ca_audio x = make_sine(100, 1, 8000, 100, 0.1);
    /* unknown extension */
    ck_assert_int_eq(ca_audio_write("tmp/x.mp3", &x, NULL, &err), CA_E_FORMAT);
    assert_has(err.message, "tmp/x.mp3: unknown audio file extension '.mp3' (expected .wav, .flac or .ogg");
    ck_assert_int_eq(ca_audio_write("tmp/noext", &x, NULL, &err), CA_E_FORMAT);
    assert_has(err.message, "unknown audio file extension ''");
    ck_assert_int_eq(access("tmp/x.mp3", F_OK), -1);
    /* a folder that does not exist */
    ck_assert_int_eq(ca_audio_write("tmp/no/such/dir/x.wav", &x, NULL, &err), CA_E_IO);
    assert_has(err.message, "tmp/no/such/dir/x.wav: cannot create the temporary file tmp/no/such/dir/x.wav.tmp-");
    assert_has(err.message, "No such file or directory (does the folder exist");
    /* NaN samples */
    x.samples[7] = NAN;
    ck_assert_int_eq(ca_audio_write("tmp/nan.wav", &x, NULL, &err), CA_E_ARG);
    assert_has(err.message, "tmp/nan.wav: sample 7 (frame 7, channel 0) is NaN");
    x.samples[7] = 0;
    /* what libsndfile cannot write */
    ca_audio nine;
    ck_assert_int_eq(ca_audio_alloc(&nine, 10, 9, 44100, NULL), CA_OK);
    ck_assert_int_eq(ca_audio_write("tmp/nine.flac", &nine, NULL, &err), CA_E_ARG);
    assert_has(err.message, "tmp/nine.flac: libsndfile cannot write flac with 9 channels at 44100 Hz");
    ca_audio_free(&nine);
    /* bad arguments */
    ca_write_opts q = {.vorbis_quality = 2};
    ck_assert_int_eq(ca_audio_write("tmp/x.ogg", &x, &q, &err), CA_E_ARG);
    assert_has(err.message, "Vorbis quality 2");
    ca_audio bad = x;
    bad.rate = 0;
    ck_assert_int_eq(ca_audio_write("tmp/x.wav", &bad, NULL, &err), CA_E_ARG);
    assert_has(err.message, "tmp/x.wav: ca_audio_write: sample rate 0 Hz");
    ck_assert_int_eq(ca_audio_write(NULL, &x, NULL, &err), CA_E_ARG);
    ck_assert_int_eq(ca_audio_alloc(&a, -1, 1, 8000, &err), CA_E_ARG);
    ck_assert_int_eq(ca_audio_alloc(&a, CA_MAX_SAMPLES, 2, 8000, &err), CA_E_LIMIT);
    assert_has(err.message, "exceeds CA_MAX_SAMPLES");
    ck_assert_int_eq(ca_audio_alloc(&a, 1, 0, 8000, &err), CA_E_ARG);
    /* a failed write leaves an existing file untouched and no temporary file */
    tmp_path(path, sizeof path, "keep", "wav");
    ck_assert_int_eq(ca_audio_write(path, &x, NULL, &err), CA_OK);
    ca_audio nan = make_sine(50, 1, 8000, 100, 0.1);
    nan.samples[3] = INFINITY;
    ck_assert_int_eq(ca_audio_write(path, &nan, NULL, &err), CA_E_ARG);
    assert_has(err.message, "is infinite");
    ca_audio back;
    ck_assert_int_eq(ca_audio_read(path, &back, &err), CA_OK);
    ck_assert_int_eq(back.frames, 100);
    ca_audio_free(&back);
    ca_audio_free(&nan);
    unlink(path);
    ca_audio_free(&x);
    ca_audio_free(NULL);
    no_tmp_leftovers();
}
END_TEST

/* ---- mono and resampling ------------------------------------------------------------------ */
START_TEST(test_mono) {
    ca_audio st;
    ck_assert_int_eq(ca_audio_alloc(&st, 100, 2, 22050, NULL), CA_OK);
    for (int i = 0; i < 100; i++) {
        st.samples[2 * i] = 0.5f;
        st.samples[2 * i + 1] = -0.1f * (float)(i % 3);
    }
    ca_audio m;
    ca_error err;
    ck_assert_msg(ca_audio_to_mono(&st, &m, &err) == CA_OK, "%s", err.message);
    ck_assert_int_eq(m.channels, 1);
    ck_assert_int_eq(m.frames, 100);
    ck_assert_int_eq(m.rate, 22050);
    for (int i = 0; i < 100; i++) ck_assert_float_eq_tol(m.samples[i], (0.5f - 0.1f * (float)(i % 3)) / 2, 1e-7);
    /* mono -> mono is a copy; 3 channels average */
    ca_audio m2;
    ck_assert_int_eq(ca_audio_to_mono(&m, &m2, NULL), CA_OK);
    ck_assert_int_eq(memcmp(m.samples, m2.samples, 100 * sizeof(float)), 0);
    ca_audio three;
    ck_assert_int_eq(ca_audio_alloc(&three, 2, 3, 8000, NULL), CA_OK);
    float v[6] = {0.3f, 0.6f, 0.9f, -1, 0, 1};
    memcpy(three.samples, v, sizeof v);
    ca_audio m3;
    ck_assert_int_eq(ca_audio_to_mono(&three, &m3, NULL), CA_OK);
    ck_assert_float_eq_tol(m3.samples[0], 0.6f, 1e-6);
    ck_assert_float_eq_tol(m3.samples[1], 0.0f, 1e-6);
    ck_assert_int_eq(ca_audio_to_mono(&m, &m, &err), CA_E_ARG);
    ca_audio none;
    ck_assert_int_eq(ca_audio_to_mono(NULL, &none, &err), CA_E_ARG);
    ck_assert_ptr_null(none.samples);
    ca_audio_free(&st);
    ca_audio_free(&m);
    ca_audio_free(&m2);
    ca_audio_free(&three);
    ca_audio_free(&m3);
}
END_TEST

START_TEST(test_resample) {
    ca_error err;
    ck_assert_int_eq(ca_resample_frames(44100, 44100, 16000), 16000);
    ck_assert_int_eq(ca_resample_frames(1000, 3, 2), 667);
    ck_assert_int_eq(ca_resample_frames(0, 44100, 16000), 0);
    /* down: a 1 kHz sine keeps its frequency and loudness, the length scales */
    ca_audio a = make_sine(44100, 2, 44100, 1000, 0.5); /* channel 1: 2 kHz */
    ca_audio b;
    ck_assert_msg(ca_audio_resample(&a, 16000, &b, &err) == CA_OK, "%s", err.message);
    ck_assert_int_eq(b.frames, 16000);
    ck_assert_int_eq(b.rate, 16000);
    ck_assert_int_eq(b.channels, 2);
    ck_assert_double_eq_tol(zero_cross_freq(&b, 0, 800, 15200), 1000, 0.5);
    ck_assert_double_eq_tol(zero_cross_freq(&b, 1, 800, 15200), 2000, 1);
    ck_assert_double_eq_tol(dft_amp(&b, 0, 1000, 800, 15200), 0.5, 0.005);
    ck_assert_double_eq_tol(rms(&b, 800, 15200), 0.5 / sqrt(2), 0.005);
    /* sample-accurate: interior values are the sine at the new times */
    double maxd = 0;
    for (int i = 800; i < 15200; i++) {
        double want = 0.5 * sin(2 * PI * 1000 * i / 16000.0);
        maxd = fmax(maxd, fabs(b.samples[2 * i] - want));
    }
    ck_assert_msg(maxd < 2e-3, "resampled sine differs by %g", maxd);
    ca_audio_free(&b);
    ca_audio_free(&a);
    /* down: a tone above the new Nyquist frequency (8 kHz) is removed, not aliased */
    a = make_sine(44100, 1, 44100, 10000, 0.5);
    ck_assert_int_eq(ca_audio_resample(&a, 16000, &b, NULL), CA_OK);
    ck_assert_msg(rms(&b, 800, 15200) < 0.5 / sqrt(2) * 1e-3, "10 kHz leaks through: rms %g", rms(&b, 800, 15200));
    ca_audio_free(&b);
    ca_audio_free(&a);
    /* up: 16 kHz -> 48 kHz, 3x the frames, same frequency, no images */
    a = make_sine(16000, 1, 16000, 440, 0.8);
    ck_assert_int_eq(ca_audio_resample(&a, 48000, &b, NULL), CA_OK);
    ck_assert_int_eq(b.frames, 48000);
    ck_assert_double_eq_tol(zero_cross_freq(&b, 0, 2400, 45600), 440, 0.2);
    ck_assert_double_eq_tol(dft_amp(&b, 0, 440, 2400, 45600), 0.8, 0.008);
    ck_assert_double_eq_tol(dft_amp(&b, 0, 16000 - 440, 2400, 45600), 0, 1e-3); /* first image */
    ca_audio_free(&b);
    ca_audio_free(&a);
    /* an odd ratio keeps a constant (DC gain 1) */
    ck_assert_int_eq(ca_audio_alloc(&a, 4410, 1, 44100, NULL), CA_OK);
    for (int i = 0; i < 4410; i++) a.samples[i] = 0.25f;
    ck_assert_int_eq(ca_audio_resample(&a, 44099, &b, NULL), CA_OK);
    ck_assert_int_eq(b.frames, 4410);
    double dc_err = 0;
    for (int64_t i = 200; i < b.frames - 200; i++) dc_err = fmax(dc_err, fabs(b.samples[i] - 0.25));
    ck_assert_double_lt(dc_err, 1e-3);
    ca_audio_free(&b);
    /* same rate: a copy */
    ck_assert_int_eq(ca_audio_resample(&a, 44100, &b, NULL), CA_OK);
    ck_assert_int_eq(memcmp(a.samples, b.samples, 4410 * sizeof(float)), 0);
    ca_audio_free(&b);
    /* errors */
    ck_assert_int_eq(ca_audio_resample(&a, 0, &b, &err), CA_E_ARG);
    assert_has(err.message, "target rate 0 Hz");
    ck_assert_ptr_null(b.samples);
    ck_assert_int_eq(ca_audio_resample(&a, 8000, &a, &err), CA_E_ARG);
    ca_audio_free(&a);
}
END_TEST

/* ---- the synthesizer ---------------------------------------------------------------------- */
START_TEST(test_synth_length) {
    const int rate = 22050;
    cm_note v[] = {mknote(0, 0.5, 60, 100, 0, false), mknote(0.5, 1.0, 64, 100, 0, false),
                   mknote(0.25, 0.75, 67, 80, 0, false)};
    cm_notes notes = notes_of(v, 3);
    ca_synth_opts so = {.rate = rate, .channels = 1};
    ca_audio a;
    ca_error err;
    ck_assert_msg(ca_synth_render(&notes, &so, &a, &err) == CA_OK, "%s", err.message);
    /* last note end (1.0 s) + the piano's release (0.25 s) */
    ck_assert_double_eq(ca_timbre_release_s(CA_TIMBRE_PIANO), 0.25);
    ck_assert_int_eq(a.frames, (int64_t)ceil(1.25 * rate));
    ck_assert_int_eq(a.frames, ca_synth_frames(&notes, rate));
    ck_assert_int_eq(a.channels, 1);
    ck_assert_int_eq(a.rate, rate);
    ck_assert_double_eq_tol(ca_synth_note_end_s(&v[1]), 1.25, 1e-12);
    /* the tail is really there: sound in the release, silence at the very end */
    ck_assert_double_gt(rms(&a, (int64_t)(1.02 * rate), (int64_t)(1.1 * rate)), 1e-4);
    ck_assert_float_lt(fabsf(a.samples[a.frames - 1]), 1e-4f);
    ca_audio_free(&a);
    /* stereo by default, 44.1 kHz by default; an organ's release is its own */
    cm_note o[] = {mknote(0.5, 2.0, 48, 100, 19, false)};
    cm_notes_free(&notes);
    notes = notes_of(o, 1);
    ck_assert_int_eq(ca_synth_render(&notes, NULL, &a, NULL), CA_OK);
    ck_assert_int_eq(a.channels, 2);
    ck_assert_int_eq(a.rate, 44100);
    ck_assert_int_eq(a.frames, (int64_t)ceil((2.0 + ca_timbre_release_s(CA_TIMBRE_ORGAN)) * 44100));
    ca_audio_free(&a);
    /* a zero-length note still sounds (CA_SYNTH_MIN_NOTE_S) */
    cm_note z[] = {mknote(0.1, 0.1, 72, 100, 0, false)};
    cm_notes_free(&notes);
    notes = notes_of(z, 1);
    ck_assert_int_eq(ca_synth_render(&notes, &so, &a, NULL), CA_OK);
    ck_assert_int_eq(a.frames, (int64_t)ceil((0.1 + CA_SYNTH_MIN_NOTE_S + 0.25) * rate));
    ck_assert_double_gt(rms(&a, 0, a.frames), 1e-3);
    ca_audio_free(&a);
    /* no notes: nothing (or the MIDI's own length of silence) */
    cm_notes_free(&notes);
    notes = notes_of(NULL, 0);
    ck_assert_int_eq(ca_synth_render(&notes, &so, &a, NULL), CA_OK);
    ck_assert_int_eq(a.frames, 0);
    ca_audio_free(&a);
    notes.end_s = 2.0;
    ck_assert_int_eq(ca_synth_render(&notes, &so, &a, NULL), CA_OK);
    ck_assert_int_eq(a.frames, 2 * rate);
    ck_assert_float_eq(peak(&a), 0.0f);
    ca_audio_free(&a);
    cm_notes_free(&notes);
}
END_TEST

static double note_rms(int program, int velocity, bool drum, int pitch) {
    cm_note v[] = {mknote(0, 1.0, pitch, velocity, program, drum)};
    cm_notes notes = notes_of(v, 1);
    ca_synth_opts so = {.rate = 16000, .channels = 1};
    ca_audio a;
    ck_assert_int_eq(ca_synth_render(&notes, &so, &a, NULL), CA_OK);
    double r = rms(&a, 0, 16000);
    ck_assert_float_le(peak(&a), CA_SYNTH_CEILING);
    ca_audio_free(&a);
    cm_notes_free(&notes);
    return r;
}

START_TEST(test_synth_loudness) {
    /* every GM program sounds, at a sane level, louder with velocity */
    for (int p = 0; p < 128; p++) {
        double soft = note_rms(p, 40, false, 60), mid = note_rms(p, 80, false, 60), loud = note_rms(p, 120, false, 60);
        ck_assert_msg(mid > 0.005 && mid < 0.5, "program %d (%s): rms %g at velocity 80", p,
                      ca_timbre_name(ca_synth_timbre(p, false)), mid);
        ck_assert_msg(soft < mid && mid < loud, "program %d: rms %g, %g, %g for velocity 40, 80, 120", p, soft, mid, loud);
    }
    /* velocity 0 is silence */
    ck_assert_double_eq(note_rms(0, 0, false, 60), 0);
    /* extremes of pitch work */
    ck_assert_double_gt(note_rms(0, 100, false, 0), 1e-3);
    ck_assert_double_gt(note_rms(0, 100, false, 108), 1e-4);
    /* a pitch whose fundamental is above 0.45 x the rate cannot be represented: silence, not aliases */
    ck_assert_double_eq(note_rms(0, 100, false, 127), 0);
}
END_TEST

START_TEST(test_synth_timbres) {
    ck_assert_int_eq(ca_synth_timbre(0, false), CA_TIMBRE_PIANO);
    ck_assert_int_eq(ca_synth_timbre(19, false), CA_TIMBRE_ORGAN);
    ck_assert_int_eq(ca_synth_timbre(25, false), CA_TIMBRE_PLUCKED);
    ck_assert_int_eq(ca_synth_timbre(33, false), CA_TIMBRE_BASS);
    ck_assert_int_eq(ca_synth_timbre(48, false), CA_TIMBRE_STRINGS);
    ck_assert_int_eq(ca_synth_timbre(81, false), CA_TIMBRE_LEAD);
    ck_assert_int_eq(ca_synth_timbre(89, false), CA_TIMBRE_PAD);
    ck_assert_int_eq(ca_synth_timbre(0, true), CA_TIMBRE_DRUMS);
    ck_assert_int_eq(ca_synth_timbre(500, false), CA_TIMBRE_PAD);
    ck_assert_str_eq(ca_timbre_name(CA_TIMBRE_PIANO), "piano");
    ck_assert_str_eq(ca_timbre_name(CA_TIMBRE_COUNT), "?");
    /* a held piano note decays, a held organ note does not; strings swell in slowly */
    const int rate = 16000;
    ca_synth_opts so = {.rate = rate, .channels = 1};
    int programs[3] = {0, 19, 48};
    double first[3], last[3];
    for (int k = 0; k < 3; k++) {
        cm_note v[] = {mknote(0, 3.0, 60, 100, programs[k], false)};
        cm_notes notes = notes_of(v, 1);
        ca_audio a;
        ck_assert_int_eq(ca_synth_render(&notes, &so, &a, NULL), CA_OK);
        first[k] = rms(&a, 0, rate / 20);
        last[k] = rms(&a, (int64_t)(2.7 * rate), 3 * rate);
        /* the fundamental is at middle C */
        ck_assert_double_gt(dft_amp(&a, 0, 261.63, rate / 2, rate), 4 * dft_amp(&a, 0, 250, rate / 2, rate));
        ca_audio_free(&a);
        cm_notes_free(&notes);
    }
    ck_assert_msg(last[0] < first[0] / 3, "piano: %g then %g", first[0], last[0]);
    ck_assert_msg(fabs(last[1] - first[1]) < 0.15 * first[1], "organ: %g then %g", first[1], last[1]);
    ck_assert_msg(first[2] < last[2] / 2, "strings: %g then %g", first[2], last[2]);
}
END_TEST

START_TEST(test_synth_silence) {
    const int rate = 8000;
    cm_note v[] = {mknote(0.5, 0.7, 60, 100, 19, false), mknote(2.0, 2.2, 62, 100, 19, false)};
    cm_notes notes = notes_of(v, 2);
    ca_synth_opts so = {.rate = rate, .channels = 2};
    ca_audio a;
    ck_assert_int_eq(ca_synth_render(&notes, &so, &a, NULL), CA_OK);
    /* nothing before the first note, nothing between the first's release and the second */
    ck_assert_int_eq(first_nonzero(&a, 0, (int64_t)(0.5 * rate)), -1);
    ck_assert_int_eq(first_nonzero(&a, 0, a.frames), (int64_t)(0.5 * rate) + 1); /* sin(0) = 0 */
    int64_t gap0 = (int64_t)ceil((0.7 + ca_timbre_release_s(CA_TIMBRE_ORGAN)) * rate) + 1;
    ck_assert_int_eq(first_nonzero(&a, gap0, (int64_t)(2.0 * rate)), -1);
    ck_assert_int_ge(first_nonzero(&a, (int64_t)(0.7 * rate), gap0), 0);
    ck_assert_double_gt(rms(&a, (int64_t)(0.55 * rate), (int64_t)(0.65 * rate)), 0.01);
    ck_assert_double_gt(rms(&a, (int64_t)(2.05 * rate), (int64_t)(2.15 * rate)), 0.01);
    /* stereo: a low note leans left, a high one right */
    ca_audio_free(&a);
    cm_notes_free(&notes);
    cm_note lo[] = {mknote(0, 0.5, 36, 100, 19, false)}, hi[] = {mknote(0, 0.5, 96, 100, 19, false)};
    double l, r;
    for (int k = 0; k < 2; k++) {
        notes = notes_of(k ? hi : lo, 1);
        ck_assert_int_eq(ca_synth_render(&notes, &so, &a, NULL), CA_OK);
        l = r = 0;
        for (int64_t i = 0; i < a.frames; i++) l += fabs(a.samples[2 * i]), r += fabs(a.samples[2 * i + 1]);
        ck_assert(k ? r > l : l > r);
        ca_audio_free(&a);
        cm_notes_free(&notes);
    }
}
END_TEST

START_TEST(test_synth_drums) {
    const int rate = 16000;
    const int keys[] = {35, 36, 37, 38, 39, 40, 41, 42, 44, 46, 49, 51, 52, 56, 60, 75, 81};
    const int nk = (int)(sizeof keys / sizeof keys[0]);
    ca_synth_opts so = {.rate = rate, .channels = 1, .seed = 7};
    for (int k = 0; k < nk; k++) {
        cm_note v[] = {mknote(0.1, 0.11, keys[k], 110, 0, true)};
        cm_notes notes = notes_of(v, 1);
        ca_audio a;
        ck_assert_int_eq(ca_synth_render(&notes, &so, &a, NULL), CA_OK);
        /* a drum sounds for its own length, whatever the note's */
        ck_assert_int_eq(a.frames, ca_synth_frames(&notes, rate));
        ck_assert_double_eq_tol((double)a.frames, (0.1 + ca_synth_drum_length_s(keys[k])) * rate, 1.0);
        ck_assert_msg(rms(&a, (int64_t)(0.1 * rate), (int64_t)(0.15 * rate)) > 0.01, "drum %d is silent", keys[k]);
        ck_assert_float_le(peak(&a), CA_SYNTH_CEILING);
        ck_assert_int_eq(first_nonzero(&a, 0, (int64_t)(0.1 * rate)), -1);
        ca_audio_free(&a);
        cm_notes_free(&notes);
    }
    ck_assert_double_eq(ca_synth_drum_length_s(49), 2.5);
    ck_assert_double_lt(ca_synth_drum_length_s(42), ca_synth_drum_length_s(46)); /* closed vs open hat */
    /* a kick is low (its energy below 200 Hz), a hi-hat high */
    cm_note kick[] = {mknote(0, 0.1, 36, 110, 0, true)}, hat[] = {mknote(0, 0.1, 42, 110, 0, true)};
    for (int k = 0; k < 2; k++) {
        cm_notes notes = notes_of(k ? hat : kick, 1);
        ca_audio a;
        ck_assert_int_eq(ca_synth_render(&notes, &so, &a, NULL), CA_OK);
        double low = dft_amp(&a, 0, 60, 0, rate / 10), high = dft_amp(&a, 0, 6000, 0, rate / 10);
        ck_assert_msg(k ? high > low : low > 10 * high, "drum %d: low %g high %g", k, low, high);
        ca_audio_free(&a);
        cm_notes_free(&notes);
    }
}
END_TEST

START_TEST(test_synth_no_clipping_deterministic) {
    /* 48 loud notes at once, all timbres, and drums */
    cm_note v[64];
    int n = 0;
    for (int k = 0; k < 48; k++) v[n++] = mknote(0.05 * (k % 4), 1.0, 36 + k, 127, (k * 11) % 128, false);
    for (int k = 0; k < 8; k++) v[n++] = mknote(0.1 * k, 0.1 * k + 0.05, 35 + 2 * k, 127, 0, true);
    cm_notes notes = notes_of(v, n);
    ca_synth_opts so = {.rate = 22050, .channels = 2, .seed = 1, .gain = 1.0f};
    ca_audio a, b, c;
    ck_assert_int_eq(ca_synth_render(&notes, &so, &a, NULL), CA_OK);
    float p = peak(&a);
    ck_assert_float_le(p, CA_SYNTH_CEILING);
    ck_assert_float_gt(p, 0.5f); /* loud: the limiter did work */
    ck_assert_int_eq(ca_synth_render(&notes, &so, &b, NULL), CA_OK);
    ck_assert_int_eq(a.frames, b.frames);
    ck_assert_int_eq(memcmp(a.samples, b.samples, (size_t)(a.frames * 2) * sizeof(float)), 0);
    so.seed = 2; /* another seed: other drum noise */
    ck_assert_int_eq(ca_synth_render(&notes, &so, &c, NULL), CA_OK);
    ck_assert_int_ne(memcmp(a.samples, c.samples, (size_t)(a.frames * 2) * sizeof(float)), 0);
    ca_audio_free(&a);
    ca_audio_free(&b);
    ca_audio_free(&c);
    /* any rate: 8 kHz and 96 kHz give the same length in seconds and no NaN */
    so.gain = 0;
    for (int rate = 8000; rate <= 96000; rate *= 12) {
        so.rate = rate;
        ck_assert_int_eq(ca_synth_render(&notes, &so, &a, NULL), CA_OK);
        ck_assert_int_eq(a.frames, ca_synth_frames(&notes, rate));
        /* the crash cymbal (key 49) at 0.7 s sounds longest */
        ck_assert_double_eq_tol((double)a.frames / rate, 0.7 + ca_synth_drum_length_s(49), 1.0 / rate + 1e-9);
        ck_assert_float_le(peak(&a), CA_SYNTH_CEILING);
        ca_audio_free(&a);
    }
    cm_notes_free(&notes);
}
END_TEST

START_TEST(test_synth_errors) {
    cm_note v[] = {mknote(0, 1, 60, 100, 0, false)};
    cm_notes notes = notes_of(v, 1);
    ca_audio a;
    ca_error err;
    ca_synth_opts so = {.channels = 3};
    ck_assert_int_eq(ca_synth_render(&notes, &so, &a, &err), CA_E_ARG);
    assert_has(err.message, "3 channels (expected 1 or 2)");
    ck_assert_ptr_null(a.samples);
    so = (ca_synth_opts){.rate = -5};
    ck_assert_int_eq(ca_synth_render(&notes, &so, &a, &err), CA_E_ARG);
    assert_has(err.message, "sample rate -5 Hz");
    notes.notes[0].start_s = NAN;
    ck_assert_int_eq(ca_synth_render(&notes, NULL, &a, &err), CA_E_ARG);
    assert_has(err.message, "note 0 (pitch 60) starts at nan s");
    notes.notes[0].start_s = 0;
    notes.notes[0].end_s = 1e9;
    ck_assert_int_eq(ca_synth_render(&notes, NULL, &a, &err), CA_E_LIMIT);
    assert_has(err.message, "exceeds CA_MAX_SAMPLES");
    ck_assert_int_eq(ca_synth_render(NULL, NULL, &a, &err), CA_E_ARG);
    ck_assert_int_eq(ca_synth_render(&notes, NULL, NULL, &err), CA_E_ARG);
    cm_notes_free(&notes);
}
END_TEST

START_TEST(test_limiter) {
    ca_audio a;
    ck_assert_int_eq(ca_audio_alloc(&a, 8000, 2, 8000, NULL), CA_OK);
    for (int i = 0; i < 8000; i++) {
        a.samples[2 * i] = (float)(0.5 * sin(2 * PI * 100 * i / 8000.0));
        a.samples[2 * i + 1] = 0;
    }
    /* quiet: untouched, bit for bit */
    float *copy = malloc(16000 * sizeof(float));
    memcpy(copy, a.samples, 16000 * sizeof(float));
    ck_assert_int_eq(ca_limit(&a, 0.9f, NULL), CA_OK);
    ck_assert_int_eq(memcmp(copy, a.samples, 16000 * sizeof(float)), 0);
    /* a spike of 3 on the right channel: both channels go down, nothing above the ceiling, and
     * far from the spike the signal is as it was */
    a.samples[2 * 4000 + 1] = 3.0f;
    ck_assert_int_eq(ca_limit(&a, 0.9f, NULL), CA_OK);
    ck_assert_float_le(peak(&a), 0.9f);
    ck_assert_float_eq_tol(a.samples[2 * 4000 + 1], 0.9f, 1e-6);
    ck_assert_float_eq(a.samples[2 * 100], copy[2 * 100]);       /* before the 2 ms look-ahead */
    ck_assert_float_lt(fabsf(a.samples[2 * 4002]), fabsf(copy[2 * 4002]));
    /* recovering (150 ms time constant): 0.1 s after the spike still reduced, 0.5 s after within 3% */
    ck_assert_float_lt(fabsf(a.samples[2 * 4790]), 0.9f * fabsf(copy[2 * 4790]));
    ck_assert_float_ge(fabsf(a.samples[2 * 7990]), 0.97f * fabsf(copy[2 * 7990]));
    ca_error err;
    ck_assert_int_eq(ca_limit(&a, 0, &err), CA_E_ARG);
    assert_has(err.message, "ceiling 0 outside (0, 1]");
    ck_assert_int_eq(ca_limit(NULL, 0.5f, &err), CA_E_ARG);
    free(copy);
    ca_audio_free(&a);
}
END_TEST

/* ---- mu-law ------------------------------------------------------------------------------- */
START_TEST(test_mulaw) {
    /* codes from torch 1.13 with torchaudio's formula (float32):
     *   y = sign(x) * log1p(mu |x|) / log1p(mu); q = ((y + 1) / 2 * mu + 0.5).to(int64) */
    static const struct { float x; int q; } enc[] = {
        {-1.0f, 0}, {-0.9f, 2}, {-0.5f, 16}, {-0.25f, 32}, {-0.1f, 52}, {-0.03f, 78}, {-0.01f, 98},
        {-0.001f, 122}, {-1e-5f, 127}, {0.0f, 128}, {1e-5f, 128}, {0.001f, 133}, {0.004f, 144},
        {0.01f, 157}, {0.05f, 188}, {0.1f, 203}, {0.3f, 228}, {0.5f, 239}, {0.77f, 249}, {0.99f, 255}, {1.0f, 255}};
    for (size_t i = 0; i < sizeof enc / sizeof enc[0]; i++)
        ck_assert_msg(ca_mulaw_encode(enc[i].x) == enc[i].q, "encode(%g) = %d, torchaudio %d", enc[i].x,
                      ca_mulaw_encode(enc[i].x), enc[i].q);
    /*   y = q / mu * 2 - 1; x = sign(y) * (exp(|y| log1p(mu)) - 1) / mu */
    static const struct { int q; float x; } dec[] = {
        {0, -1.0f}, {1, -0.95727396f}, {2, -0.916365802f}, {64, -0.0581449904f}, {100, -0.00904676225f},
        {127, -8.6211694e-05f}, {128, 8.6213091e-05f}, {129, 0.000264363654f}, {160, 0.012196945f},
        {200, 0.0878802463f}, {254, 0.95727396f}, {255, 1.0f}};
    for (size_t i = 0; i < sizeof dec / sizeof dec[0]; i++)
        ck_assert_float_eq_tol(ca_mulaw_decode(dec[i].q), dec[i].x, 1e-6f * (1 + fabsf(dec[i].x)));
    /* 256 classes, monotone; every code is a fixed point; the error bound holds everywhere */
    ck_assert_int_eq(CA_MULAW_CLASSES, 256);
    int seen[256] = {0};
    int prev = -1, not_monotone = 0;
    double worst = 0, worst_x = 0;
    for (int i = 0; i <= 200000; i++) {
        float x = -1.0f + 2.0f * (float)i / 200000;
        int q = ca_mulaw_encode(x);
        if (q < 0 || q > 255) ck_abort_msg("encode(%g) = %d", x, q);
        not_monotone += q < prev;
        prev = q;
        seen[q] = 1;
        double r = fabs(x - ca_mulaw_decode(q)) / ca_mulaw_error_bound(x);
        if (r > worst) worst = r, worst_x = x;
    }
    ck_assert_int_eq(not_monotone, 0);
    ck_assert_msg(worst <= 1, "x = %.9g: error %g x the bound", worst_x, worst);
    ck_assert_msg(worst > 0.9, "the bound is loose: worst error/bound %g", worst); /* and tight */
    for (int q = 0; q < 256; q++) {
        ck_assert_msg(seen[q], "code %d never used", q);
        ck_assert_int_eq(ca_mulaw_encode(ca_mulaw_decode(q)), q);
        if (q) ck_assert_float_gt(ca_mulaw_decode(q), ca_mulaw_decode(q - 1));
        /* the error bound is about half the step between neighbouring codes */
        if (q > 0 && q < 255) {
            float x = ca_mulaw_decode(q);
            double step = fmax(ca_mulaw_decode(q + 1) - x, x - ca_mulaw_decode(q - 1));
            ck_assert_double_le(ca_mulaw_error_bound(x), step + 1e-6);
        }
    }
    ck_assert_float_lt(ca_mulaw_error_bound(0), 1e-4f);
    ck_assert_float_lt(ca_mulaw_error_bound(1), 0.0224f);
    /* clipping, NaN, out-of-range codes */
    ck_assert_int_eq(ca_mulaw_encode(2.0f), 255);
    ck_assert_int_eq(ca_mulaw_encode(-7.0f), 0);
    ck_assert_int_eq(ca_mulaw_encode(NAN), 128);
    ck_assert_float_eq(ca_mulaw_decode(300), 1.0f);
    ck_assert_float_eq(ca_mulaw_decode(-3), -1.0f);
    /* the array forms agree with the scalar ones */
    float x[1000], y8[1000], y32[1000];
    uint8_t q8[1000];
    int32_t q32[1000];
    for (int i = 0; i < 1000; i++) x[i] = (float)sin(i * 0.37) * (float)(i % 7) / 6;
    ca_mulaw_encode_u8(x, 1000, q8);
    ca_mulaw_encode_i32(x, 1000, q32);
    ca_mulaw_decode_u8(q8, 1000, y8);
    ca_mulaw_decode_i32(q32, 1000, y32);
    for (int i = 0; i < 1000; i++) {
        ck_assert_int_eq(q8[i], ca_mulaw_encode(x[i]));
        ck_assert_int_eq(q32[i], q8[i]);
        ck_assert_float_eq(y8[i], ca_mulaw_decode(q8[i]));
        ck_assert_float_eq(y32[i], y8[i]);
    }
    ca_mulaw_decode_u8(q8, 3, y8); /* the short path */
    for (int i = 0; i < 3; i++) ck_assert_float_eq(y8[i], ca_mulaw_decode(q8[i]));
}
END_TEST

/* ---- rendering ---------------------------------------------------------------------------- */
/* a small song written with cm_file_from_notes: a piano melody, a bass line, drums */
static void write_song(const char *path, cm_notes *out_notes) {
    cm_note v[32];
    int n = 0;
    const int melody[] = {60, 62, 64, 65, 67, 65, 64, 62};
    for (int i = 0; i < 8; i++) v[n++] = mknote(0.25 * i, 0.25 * i + 0.2, melody[i], 90, 0, false);
    v[n++] = mknote(0, 1, 36, 100, 33, false);
    v[n++] = mknote(1, 2, 43, 100, 33, false);
    for (int i = 0; i < 4; i++) v[n++] = mknote(0.5 * i, 0.5 * i + 0.1, i % 2 ? 38 : 36, 100, 0, true);
    cm_notes notes = notes_of(v, n);
    cm_error ce;
    cm_file *f = cm_file_from_notes(&notes, NULL, &ce);
    ck_assert_msg(f != NULL, "%s", ce.message);
    ck_assert_msg(cm_write_file(f, path, NULL, &ce) == CM_OK, "%s", ce.message);
    cm_file_free(f);
    if (out_notes)
        *out_notes = notes;
    else
        cm_notes_free(&notes);
}

START_TEST(test_render_builtin) {
    char mid[128], wav[128];
    tmp_path(mid, sizeof mid, "song", "mid");
    tmp_path(wav, sizeof wav, "song", "wav");
    cm_notes notes;
    write_song(mid, &notes);
    ca_render_opts ro = {.renderer = CA_RENDERER_BUILTIN, .rate = 22050};
    ca_render_info info;
    ca_error err;
    ca_status s = ca_render_file(mid, wav, &ro, &info, &err);
    if (!ca_have_sndfile()) {
        ck_assert_int_eq(s, CA_E_UNSUPPORTED);
        assert_has(err.message, "built without libsndfile");
    } else {
        ck_assert_msg(s == CA_OK, "%s", err.message);
        ck_assert_int_eq(info.renderer, CA_RENDERER_BUILTIN);
        ck_assert_int_eq(info.notes, 14);
        ck_assert_double_eq_tol(info.midi_seconds, 2.0, 1e-9);
        ck_assert_str_eq(info.soundfont, "");
        /* the length: the melody's last note (1.95 s) + the piano's release (0.25 s) ends after the
         * bass (2 s + 0.1 s) and the last drum (1.5 s + 0.5 s) */
        double end = 0;
        for (int64_t i = 0; i < notes.n_notes; i++) end = fmax(end, ca_synth_note_end_s(&notes.notes[i]));
        ck_assert_double_eq_tol(end, 1.95 + ca_timbre_release_s(CA_TIMBRE_PIANO), 1e-9);
        ca_audio a;
        ck_assert_msg(ca_audio_read(wav, &a, &err) == CA_OK, "%s", err.message);
        ck_assert_int_eq(a.rate, 22050);
        ck_assert_int_eq(a.channels, 2);
        ck_assert_int_eq(a.frames, ca_synth_frames(&notes, 22050));
        ck_assert_double_eq_tol((double)a.frames, end * 22050, 1.0);
        ck_assert_int_eq(a.frames, info.frames);
        double r = rms(&a, 0, a.frames);
        ck_assert_msg(r > 0.01 && r < 0.5, "rms %g", r);
        ck_assert_float_le(peak(&a), CA_SYNTH_CEILING);
        ck_assert_float_le(info.peak, CA_SYNTH_CEILING);
        ca_audio_free(&a);
        /* the same into FLAC and OGG, mono */
        char other[128];
        ro.channels = 1;
        const char *exts[2] = {"flac", "ogg"};
        for (int k = 0; k < 2; k++) {
            tmp_path(other, sizeof other, "song", exts[k]);
            ck_assert_msg(ca_render_file(mid, other, &ro, &info, &err) == CA_OK, "%s", err.message);
            ck_assert_msg(ca_audio_read(other, &a, &err) == CA_OK, "%s", err.message);
            ck_assert_int_eq(a.channels, 1);
            ck_assert_int_eq(a.rate, 22050);
            ck_assert(llabs(a.frames - ca_synth_frames(&notes, 22050)) <= (k ? 2048 : 0));
            ca_audio_free(&a);
            unlink(other);
        }
        unlink(wav);
    }
    /* in memory, from a cm_file */
    cm_file *f = NULL;
    ck_assert_int_eq(cm_read_file(mid, &f, NULL), CM_OK);
    ca_audio a;
    ro.channels = 2;
    ck_assert_msg(ca_render_midi(f, mid, &ro, &a, &info, &err) == CA_OK, "%s", err.message);
    ck_assert_int_eq(info.channels, 2);
    ck_assert_int_eq(a.frames, info.frames);
    ca_audio_free(&a);
    cm_file_free(f);
    cm_notes_free(&notes);
    unlink(mid);
    no_tmp_leftovers();
}
END_TEST

START_TEST(test_render_choice) {
    const char *sf2 = ca_find_soundfont();
    ck_assert_int_eq(ca_render_choose(NULL),
                     ca_have_fluidsynth() && sf2 ? CA_RENDERER_FLUIDSYNTH : CA_RENDERER_BUILTIN);
    ca_render_opts ro = {.renderer = CA_RENDERER_BUILTIN};
    ck_assert_int_eq(ca_render_choose(&ro), CA_RENDERER_BUILTIN);
    ck_assert_str_eq(ca_renderer_name(CA_RENDERER_FLUIDSYNTH), "fluidsynth");
    ck_assert_int_eq(ca_renderer_from_name("builtin"), CA_RENDERER_BUILTIN);
    ck_assert_int_eq(ca_renderer_from_name("auto"), CA_RENDERER_AUTO);
    ck_assert_int_eq(ca_renderer_from_name("timidity"), CA_RENDERER_COUNT);
    ck_assert_int_eq(ca_renderer_from_name(NULL), CA_RENDERER_COUNT);

    char mid[128];
    tmp_path(mid, sizeof mid, "choice", "mid");
    cm_notes notes;
    write_song(mid, &notes);
    cm_file *f = NULL;
    ck_assert_int_eq(cm_read_file(mid, &f, NULL), CM_OK);
    ca_audio a;
    ca_render_info info;
    ca_error err;
    ro = (ca_render_opts){.renderer = CA_RENDERER_FLUIDSYNTH, .rate = 22050};
    ca_status s = ca_render_midi(f, mid, &ro, &a, &info, &err);
    if (!ca_have_fluidsynth()) {
        ck_assert_int_eq(s, CA_E_UNSUPPORTED);
        assert_has(err.message, mid);
        assert_has(err.message, "cantor was built without it (install libfluidsynth-dev");
    } else if (!sf2) {
        ck_assert_int_eq(s, CA_E_UNSUPPORTED);
        assert_has(err.message, "no General MIDI SoundFont found");
    } else {
        /* FluidSynth plays the whole song, then its tail (at most 5 s) */
        ck_assert_msg(s == CA_OK, "%s", err.message);
        ck_assert_int_eq(info.renderer, CA_RENDERER_FLUIDSYNTH);
        ck_assert_str_eq(info.soundfont, sf2);
        ck_assert_int_eq(a.channels, 2);
        ck_assert_int_eq(a.rate, 22050);
        ck_assert_int_ge(a.frames, 2 * 22050);
        ck_assert_int_le(a.frames, (int64_t)(7.1 * 22050));
        double r = rms(&a, 0, 2 * 22050);
        ck_assert_msg(r > 0.005 && r < 0.5, "fluidsynth rms %g", r);
        ck_assert_float_le(peak(&a), CA_SYNTH_CEILING);
        /* sound where the notes are: the first half second is not silent */
        ck_assert_double_gt(rms(&a, 0, 11025), 0.002);
        ca_audio_free(&a);
        /* mono */
        ro.channels = 1;
        ck_assert_msg(ca_render_midi(f, mid, &ro, &a, &info, &err) == CA_OK, "%s", err.message);
        ck_assert_int_eq(a.channels, 1);
        ca_audio_free(&a);
        /* a named SoundFont that is not there is an error, not a silent fallback */
        ro = (ca_render_opts){.soundfont = "tmp/no_such_font.sf2"};
        ck_assert_int_eq(ca_render_choose(&ro), CA_RENDERER_FLUIDSYNTH);
        ck_assert_int_eq(ca_render_midi(f, mid, &ro, &a, &info, &err), CA_E_IO);
        assert_has(err.message, "tmp/no_such_font.sf2: cannot read the SoundFont: No such file or directory");
        /* a file that is not a SoundFont */
        ro.soundfont = mid;
        ck_assert_int_eq(ca_render_midi(f, mid, &ro, &a, &info, &err), CA_E_FORMAT);
        assert_has(err.message, ": not a SoundFont 2 file (no RIFF sfbk header)");
    }
    ck_assert_ptr_null(s ? a.samples : NULL);
    /* AUTO renders with whichever is there */
    ro = (ca_render_opts){.rate = 11025};
    ck_assert_msg(ca_render_midi(f, mid, &ro, &a, &info, &err) == CA_OK, "%s", err.message);
    ck_assert_int_eq(info.renderer, ca_render_choose(NULL));
    ck_assert_double_gt(rms(&a, 0, a.frames), 0.005);
    ca_audio_free(&a);
    cm_file_free(f);
    cm_notes_free(&notes);
    unlink(mid);
}
END_TEST

START_TEST(test_render_errors) {
    ca_error err;
    ca_render_info info;
    ca_render_opts ro = {.renderer = CA_RENDERER_BUILTIN};
    if (!ca_have_sndfile()) {
        ck_assert_int_eq(ca_render_file("tmp/x.mid", "tmp/x.wav", &ro, &info, &err), CA_E_UNSUPPORTED);
        return;
    }
    /* the MIDI cannot be read: the message names it */
    ck_assert_int_eq(ca_render_file("tmp/no_such_song.mid", "tmp/out.wav", &ro, &info, &err), CA_E_MIDI);
    assert_has(err.message, "tmp/no_such_song.mid");
    assert_has(err.message, "No such file or directory");
    ck_assert_str_eq(err.file, "tmp/no_such_song.mid");
    char bad[128], mid[128];
    tmp_path(bad, sizeof bad, "garbage", "mid");
    FILE *f = fopen(bad, "wb");
    ck_assert_ptr_nonnull(f);
    fputs("MThd but not really a MIDI file", f);
    fclose(f);
    ro.renderer = CA_RENDERER_AUTO; /* whichever renderer: cantor reads the file first */
    ck_assert_int_eq(ca_render_file(bad, "tmp/out.wav", &ro, &info, &err), CA_E_MIDI);
    assert_has(err.message, bad);
    ck_assert_int_eq(access("tmp/out.wav", F_OK), -1);
    unlink(bad);
    /* the output: unknown extension (checked before any work), missing folder */
    tmp_path(mid, sizeof mid, "errsong", "mid");
    write_song(mid, NULL);
    ck_assert_int_eq(ca_render_file(mid, "tmp/out.mp3", &ro, &info, &err), CA_E_FORMAT);
    assert_has(err.message, "tmp/out.mp3: unknown audio file extension '.mp3'");
    ck_assert_int_eq(ca_render_file(mid, "tmp/no/such/dir/out.wav", &ro, &info, &err), CA_E_IO);
    assert_has(err.message, "tmp/no/such/dir/out.wav: cannot create the temporary file");
    /* a bad option */
    ro.rate = 1000000;
    ck_assert_int_eq(ca_render_file(mid, "tmp/out.wav", &ro, &info, &err), CA_E_ARG);
    assert_has(err.message, "sample rate 1000000 Hz");
    ck_assert_int_eq(ca_render_file(NULL, "tmp/out.wav", &ro, &info, &err), CA_E_ARG);
    ck_assert_int_eq(ca_render_midi(NULL, "x", &ro, NULL, NULL, &err), CA_E_ARG);
    unlink(mid);
    no_tmp_leftovers();
}
END_TEST

Suite *audio_suite(void) {
    Suite *s = suite_create("audio");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_wav_flac_roundtrip);
    tcase_add_test(tc, test_float_wav_exact);
    tcase_add_test(tc, test_ogg_roundtrip);
    tcase_add_test(tc, test_formats);
    tcase_add_test(tc, test_file_errors);
    tcase_add_test(tc, test_mono);
    tcase_add_test(tc, test_resample);
    tcase_add_test(tc, test_synth_length);
    tcase_add_test(tc, test_synth_loudness);
    tcase_add_test(tc, test_synth_timbres);
    tcase_add_test(tc, test_synth_silence);
    tcase_add_test(tc, test_synth_drums);
    tcase_add_test(tc, test_synth_no_clipping_deterministic);
    tcase_add_test(tc, test_synth_errors);
    tcase_add_test(tc, test_limiter);
    tcase_add_test(tc, test_mulaw);
    tcase_add_test(tc, test_render_builtin);
    tcase_add_test(tc, test_render_choice);
    tcase_add_test(tc, test_render_errors);
    suite_add_tcase(s, tc);
    return s;
}
