/* audio/audiofile.c — audio files through libsndfile (when CT_HAVE_SNDFILE), atomic writes,
 * mixing to mono and a Kaiser-windowed sinc resampler; the ca_ error helpers. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef CT_HAVE_SNDFILE
#include <sndfile.h>
#endif

#include "audio/audiofile.h"
#include "audio/midi.h" /* the atomic writer (audio/fileio.c) */

/* ---- errors ---------------------------------------------------------------------------------- */
const char *ca_strerror(ca_status s) {
    switch (s) {
    case CA_OK: return "success";
    case CA_E_IO: return "input/output error";
    case CA_E_NOMEM: return "out of memory";
    case CA_E_FORMAT: return "unknown or unreadable audio format";
    case CA_E_DECODE: return "audio encoding or decoding failed";
    case CA_E_ARG: return "invalid argument";
    case CA_E_LIMIT: return "audio exceeds a size limit";
    case CA_E_UNSUPPORTED: return "not supported by this build";
    case CA_E_MIDI: return "the MIDI input could not be read";
    case CA_STATUS_COUNT: break;
    }
    return "unknown audio status";
}

ca_status ca__fail(ca_error *err, ca_status s, const char *file, const char *fmt, ...) {
    if (!err) return s;
    err->status = s;
    snprintf(err->file, sizeof err->file, "%s", file ? file : "");
    char what[760];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (err->file[0])
        snprintf(err->message, sizeof err->message, "%s: %s", err->file, what);
    else
        snprintf(err->message, sizeof err->message, "%s", what);
    return s;
}

/* ---- buffers --------------------------------------------------------------------------------- */
static ca_status check_shape(int64_t frames, int channels, int rate, const char *who, ca_error *err) {
    if (channels < 1 || channels > CA_MAX_CHANNELS)
        return ca__fail(err, CA_E_ARG, NULL, "%s: %d channels (expected 1..%d)", who, channels,
                        CA_MAX_CHANNELS);
    if (rate < CA_MIN_RATE || rate > CA_MAX_RATE)
        return ca__fail(err, CA_E_ARG, NULL, "%s: sample rate %d Hz (expected %d..%d)", who, rate,
                        CA_MIN_RATE, CA_MAX_RATE);
    if (frames < 0) return ca__fail(err, CA_E_ARG, NULL, "%s: %lld frames", who, (long long)frames);
    if (frames > CA_MAX_SAMPLES / channels)
        return ca__fail(err, CA_E_LIMIT, NULL,
                        "%s: %lld frames x %d channels exceeds CA_MAX_SAMPLES (%lld samples)", who,
                        (long long)frames, channels, (long long)CA_MAX_SAMPLES);
    return CA_OK;
}

ca_status ca_audio_alloc(ca_audio *a, int64_t frames, int channels, int rate, ca_error *err) {
    if (!a) return ca__fail(err, CA_E_ARG, NULL, "ca_audio_alloc: NULL audio");
    memset(a, 0, sizeof *a);
    ca_status s = check_shape(frames, channels, rate, "ca_audio_alloc", err);
    if (s) return s;
    size_t n = (size_t)(frames * channels);
    a->samples = calloc(n ? n : 1, sizeof(float));
    if (!a->samples)
        return ca__fail(err, CA_E_NOMEM, NULL, "out of memory for %lld audio samples", (long long)n);
    a->frames = frames;
    a->channels = channels;
    a->rate = rate;
    return CA_OK;
}

void ca_audio_free(ca_audio *a) {
    if (!a) return;
    free(a->samples);
    memset(a, 0, sizeof *a);
}

static ca_status check_audio(const ca_audio *a, const char *who, ca_error *err) {
    if (!a) return ca__fail(err, CA_E_ARG, NULL, "%s: NULL audio", who);
    ca_status s = check_shape(a->frames, a->channels, a->rate, who, err);
    if (s) return s;
    if (!a->samples && a->frames > 0) return ca__fail(err, CA_E_ARG, NULL, "%s: NULL samples", who);
    return CA_OK;
}

/* ---- formats --------------------------------------------------------------------------------- */
ca_format ca_format_from_path(const char *path) {
    if (!path) return CA_FORMAT_AUTO;
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash)) return CA_FORMAT_AUTO;
    if (!strcasecmp(dot, ".wav")) return CA_FORMAT_WAV_PCM16;
    if (!strcasecmp(dot, ".flac")) return CA_FORMAT_FLAC;
    if (!strcasecmp(dot, ".ogg") || !strcasecmp(dot, ".oga")) return CA_FORMAT_OGG;
    return CA_FORMAT_AUTO;
}

const char *ca_format_name(ca_format f) {
    switch (f) {
    case CA_FORMAT_WAV_PCM16: return "wav (16-bit PCM)";
    case CA_FORMAT_WAV_FLOAT: return "wav (32-bit float)";
    case CA_FORMAT_FLAC: return "flac";
    case CA_FORMAT_OGG: return "ogg/vorbis";
    default: return "?";
    }
}

bool ca_have_sndfile(void) {
#ifdef CT_HAVE_SNDFILE
    return true;
#else
    return false;
#endif
}

/* ---- reading --------------------------------------------------------------------------------- */
#define READ_CHUNK0 ((int64_t)1 << 21) /* frames allocated before the data proves there are more */
ca_status ca_audio_read(const char *path, ca_audio *out, ca_error *err) {
    if (!out) return ca__fail(err, CA_E_ARG, path, "ca_audio_read: NULL output");
    memset(out, 0, sizeof *out);
    if (!path) return ca__fail(err, CA_E_ARG, NULL, "ca_audio_read: NULL path");
#ifndef CT_HAVE_SNDFILE
    return ca__fail(err, CA_E_UNSUPPORTED, path,
                    "cannot read audio: cantor was built without libsndfile (install "
                    "libsndfile1-dev and rebuild)");
#else
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ca__fail(err, CA_E_IO, path, "cannot open the audio file: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return ca__fail(err, CA_E_IO, path, "cannot stat the audio file: %s", strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return ca__fail(err, CA_E_IO, path, "not a regular file (%s)",
                        S_ISDIR(st.st_mode) ? "a directory" : "a device, pipe or socket");
    }
    SF_INFO info;
    memset(&info, 0, sizeof info);
    SNDFILE *sf = sf_open_fd(fd, SFM_READ, &info, SF_FALSE);
    if (!sf) {
        ca_status s = ca__fail(err, CA_E_FORMAT, path, "cannot read the audio: %s", sf_strerror(NULL));
        close(fd);
        return s;
    }
    ca_status s = CA_OK;
    if (info.channels < 1 || info.channels > CA_MAX_CHANNELS || info.samplerate < CA_MIN_RATE ||
        info.samplerate > CA_MAX_RATE)
        s = ca__fail(err, CA_E_FORMAT, path, "unsupported audio: %d channels at %d Hz (expected 1..%d "
                     "channels, %d..%d Hz)", info.channels, info.samplerate, CA_MAX_CHANNELS,
                     CA_MIN_RATE, CA_MAX_RATE);
    else if (info.frames < 0 || info.frames > CA_MAX_SAMPLES / info.channels)
        s = ca__fail(err, CA_E_LIMIT, path, "%lld frames x %d channels exceeds the limit of %lld samples",
                     (long long)info.frames, info.channels, (long long)CA_MAX_SAMPLES);
    /* The header's frame count is not trusted for the allocation (a 100-byte FLAC may claim 2^36
     * frames): start with at most READ_CHUNK0 frames and grow while the data lasts. */
    const int64_t max_frames = CA_MAX_SAMPLES / (info.channels > 0 ? info.channels : 1);
    int64_t cap = info.frames < READ_CHUNK0 ? info.frames : READ_CHUNK0;
    if (!s) s = ca_audio_alloc(out, cap, info.channels, info.samplerate, err);
    if (!s) {
        sf_command(sf, SFC_SET_NORM_FLOAT, NULL, SF_TRUE);
        int64_t got = 0;
        while (got < info.frames) {
            if (got == cap) {
                int64_t ncap = cap * 2 < info.frames ? cap * 2 : info.frames;
                if (ncap > max_frames) ncap = max_frames;
                float *p = realloc(out->samples, (size_t)(ncap * info.channels) * sizeof(float));
                if (!p) {
                    s = ca__fail(err, CA_E_NOMEM, path, "out of memory for %lld audio frames", (long long)ncap);
                    break;
                }
                out->samples = p;
                cap = ncap;
            }
            int64_t want = cap - got;
            if (want > 65536) want = 65536;
            sf_count_t n = sf_readf_float(sf, out->samples + got * info.channels, (sf_count_t)want);
            if (n <= 0) break;
            got += n;
        }
        if (!s && got < info.frames && sf_error(sf) != SF_ERR_NO_ERROR)
            s = ca__fail(err, CA_E_DECODE, path, "reading the audio failed after %lld of %lld frames: %s",
                         (long long)got, (long long)info.frames, sf_strerror(sf));
        out->frames = got; /* a file shorter than its header said: keep what is there */
    }
    if (s) ca_audio_free(out);
    sf_close(sf);
    close(fd);
    return s;
#endif
}

/* ---- writing --------------------------------------------------------------------------------- */
#ifdef CT_HAVE_SNDFILE
static int sf_format_of(ca_format f) {
    switch (f) {
    case CA_FORMAT_WAV_PCM16: return SF_FORMAT_WAV | SF_FORMAT_PCM_16;
    case CA_FORMAT_WAV_FLOAT: return SF_FORMAT_WAV | SF_FORMAT_FLOAT;
    case CA_FORMAT_FLAC: return SF_FORMAT_FLAC | SF_FORMAT_PCM_16;
    case CA_FORMAT_OGG: return SF_FORMAT_OGG | SF_FORMAT_VORBIS;
    default: return 0;
    }
}

/* Encodes a into the open file fd. */
static ca_status write_fd(int fd, const char *path, const ca_audio *a, ca_format fmt, double quality,
                          ca_error *err) {
    SF_INFO info;
    memset(&info, 0, sizeof info);
    info.samplerate = a->rate;
    info.channels = a->channels;
    info.format = sf_format_of(fmt);
    if (!sf_format_check(&info))
        return ca__fail(err, CA_E_ARG, path, "libsndfile cannot write %s with %d channels at %d Hz",
                        ca_format_name(fmt), a->channels, a->rate);
    SNDFILE *sf = sf_open_fd(fd, SFM_WRITE, &info, SF_FALSE);
    if (!sf)
        return ca__fail(err, CA_E_DECODE, path, "cannot start writing %s: %s", ca_format_name(fmt),
                        sf_strerror(NULL));
    ca_status s = CA_OK;
    sf_command(sf, SFC_SET_CLIPPING, NULL, SF_TRUE);
    sf_command(sf, SFC_SET_NORM_FLOAT, NULL, SF_TRUE);
    if (fmt == CA_FORMAT_OGG && sf_command(sf, SFC_SET_VBR_ENCODING_QUALITY, &quality, sizeof quality) != SF_TRUE)
        s = ca__fail(err, CA_E_DECODE, path, "cannot set the Vorbis quality %g: %s", quality, sf_strerror(sf));
    for (int64_t done = 0; !s && done < a->frames;) {
        int64_t n = a->frames - done;
        if (n > 65536) n = 65536;
        sf_count_t w = sf_writef_float(sf, a->samples + done * a->channels, (sf_count_t)n);
        if (w != (sf_count_t)n)
            s = ca__fail(err, CA_E_DECODE, path, "writing %s failed at frame %lld: %s", ca_format_name(fmt),
                         (long long)done, sf_strerror(sf));
        done += n;
    }
    int rc = sf_close(sf);
    if (!s && rc != 0)
        s = ca__fail(err, CA_E_DECODE, path, "finishing %s failed: %s", ca_format_name(fmt), sf_error_number(rc));
    return s;
}
#endif

ca_status ca_audio_write(const char *path, const ca_audio *a, const ca_write_opts *opts, ca_error *err) {
    if (!path) return ca__fail(err, CA_E_ARG, NULL, "ca_audio_write: NULL path");
    ca_status s = check_audio(a, "ca_audio_write", err);
    if (s) {
        if (err) { /* name the file too */
            char msg[760];
            memcpy(msg, err->message, sizeof msg - 1);
            msg[sizeof msg - 1] = 0;
            ca__fail(err, s, path, "%s", msg);
        }
        return s;
    }
    ca_format fmt = opts && opts->format != CA_FORMAT_AUTO ? opts->format : ca_format_from_path(path);
    if (fmt == CA_FORMAT_AUTO) {
        const char *dot = strrchr(path, '.');
        const char *slash = strrchr(path, '/');
        if (dot && slash && dot < slash) dot = NULL;
        return ca__fail(err, CA_E_FORMAT, path,
                        "unknown audio file extension '%s' (expected .wav, .flac or .ogg, or choose the "
                        "format explicitly)", dot ? dot : "");
    }
    if (fmt < 0 || fmt >= CA_FORMAT_COUNT)
        return ca__fail(err, CA_E_ARG, path, "invalid format %d", (int)fmt);
    double quality = opts && opts->vorbis_quality != 0 ? opts->vorbis_quality : 0.6;
    if (!(quality > 0 && quality <= 1))
        return ca__fail(err, CA_E_ARG, path, "Vorbis quality %g outside (0, 1]", quality);
    int64_t n = a->frames * a->channels;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(a->samples[i]))
            return ca__fail(err, CA_E_ARG, path, "sample %lld (frame %lld, channel %d) is %s; audio must be finite",
                            (long long)i, (long long)(i / a->channels), (int)(i % a->channels),
                            isnan(a->samples[i]) ? "NaN" : "infinite");
#ifndef CT_HAVE_SNDFILE
    return ca__fail(err, CA_E_UNSUPPORTED, path,
                    "cannot write audio: cantor was built without libsndfile (install libsndfile1-dev "
                    "and rebuild)");
#else
    char *tmp, msg[1024];
    int fd = cm__atomic_begin(path, true, &tmp, msg, sizeof msg);   /* libsndfile seeks and reads back */
    if (fd < 0) return ca__fail(err, fd == -2 ? CA_E_NOMEM : CA_E_IO, path, "%s", msg);
    s = write_fd(fd, path, a, fmt, quality, err);
    if (!cm__atomic_end(fd, path, tmp, s == CA_OK, msg, sizeof msg) && s == CA_OK)
        s = ca__fail(err, CA_E_IO, path, "%s", msg);
    return s;
#endif
}

/* ---- mono ------------------------------------------------------------------------------------ */
ca_status ca_audio_to_mono(const ca_audio *in, ca_audio *out, ca_error *err) {
    if (!out) return ca__fail(err, CA_E_ARG, NULL, "ca_audio_to_mono: NULL output");
    ca_status s = check_audio(in, "ca_audio_to_mono", err);
    if (s) {
        memset(out, 0, sizeof *out);
        return s;
    }
    if (in == out) return ca__fail(err, CA_E_ARG, NULL, "ca_audio_to_mono: out must not alias in");
    s = ca_audio_alloc(out, in->frames, 1, in->rate, err);
    if (s) return s;
    const int c = in->channels;
    const double inv = 1.0 / c;
    for (int64_t f = 0; f < in->frames; f++) {
        const float *x = in->samples + f * c;
        double acc = 0;
        for (int k = 0; k < c; k++) acc += x[k];
        out->samples[f] = (float)(acc * inv);
    }
    return CA_OK;
}

/* ---- resampling ------------------------------------------------------------------------------ */
int64_t ca_resample_frames(int64_t frames, int from_rate, int to_rate) {
    if (frames <= 0 || from_rate <= 0 || to_rate <= 0) return 0;
    return (frames * to_rate + from_rate / 2) / from_rate;
}

#define CA_PI 3.14159265358979323846
#define RS_ZC 24    /* zero crossings of the sinc on each side */
#define RS_OS 512   /* table entries per zero crossing (linear interpolation between them) */
#define RS_BETA 8.0 /* Kaiser beta: about 80 dB stop-band attenuation */

static double bessel_i0(double x) {
    double sum = 1, term = 1, q = x * x / 4;
    for (int k = 1; k < 200; k++) {
        term *= q / ((double)k * k);
        sum += term;
        if (term < sum * 1e-17) break;
    }
    return sum;
}

ca_status ca_audio_resample(const ca_audio *in, int to_rate, ca_audio *out, ca_error *err) {
    if (!out) return ca__fail(err, CA_E_ARG, NULL, "ca_audio_resample: NULL output");
    ca_status s = check_audio(in, "ca_audio_resample", err);
    if (s) {
        memset(out, 0, sizeof *out);
        return s;
    }
    if (in == out) return ca__fail(err, CA_E_ARG, NULL, "ca_audio_resample: out must not alias in");
    if (to_rate < CA_MIN_RATE || to_rate > CA_MAX_RATE) {
        memset(out, 0, sizeof *out);
        return ca__fail(err, CA_E_ARG, NULL, "ca_audio_resample: target rate %d Hz (expected %d..%d)",
                        to_rate, CA_MIN_RATE, CA_MAX_RATE);
    }
    const int64_t from = in->rate, to = to_rate;
    const int c = in->channels;
    const int64_t nout = ca_resample_frames(in->frames, in->rate, to_rate);
    s = ca_audio_alloc(out, nout, c, to_rate, err);
    if (s) return s;
    if (from == to) {
        memcpy(out->samples, in->samples, (size_t)(nout * c) * sizeof(float));
        return CA_OK;
    }
    /* the kernel h(u) = sinc(u) * kaiser(u / RS_ZC) for u in zero crossings, tabulated */
    const int ntab = RS_ZC * RS_OS;
    float *tab = malloc((size_t)(ntab + 2) * sizeof(float));
    double *acc = malloc((size_t)c * sizeof(double));
    if (!tab || !acc) {
        free(tab);
        free(acc);
        ca_audio_free(out);
        return ca__fail(err, CA_E_NOMEM, NULL, "ca_audio_resample: out of memory");
    }
    const double i0b = bessel_i0(RS_BETA);
    tab[0] = 1.0f;
    for (int i = 1; i <= ntab; i++) {
        double u = (double)i / RS_OS, r = u / RS_ZC;
        double w = r < 1 ? bessel_i0(RS_BETA * sqrt(1 - r * r)) / i0b : 0;
        tab[i] = (float)(sin(CA_PI * u) / (CA_PI * u) * w);
    }
    tab[ntab] = tab[ntab + 1] = 0;
    /* cutoff as a fraction of the input's Nyquist frequency */
    const double fc = 0.9 * (to < from ? (double)to / (double)from : 1.0);
    const double half = RS_ZC / fc; /* kernel half-width in input frames */
    const double scale = fc * RS_OS;
    for (int64_t n = 0; n < nout; n++) {
        const int64_t num = n * from;
        const int64_t ip = num / to;
        const double t = (double)ip + (double)(num % to) / (double)to; /* input position */
        int64_t k0 = (int64_t)ceil(t - half), k1 = (int64_t)floor(t + half);
        double wsum = 0;
        for (int ch = 0; ch < c; ch++) acc[ch] = 0;
        for (int64_t k = k0; k <= k1; k++) {
            double x = fabs(t - (double)k) * scale;
            int i = (int)x;
            if (i >= ntab) continue;
            double fr = x - i;
            double w = tab[i] + fr * (tab[i + 1] - tab[i]);
            wsum += w;
            if (k < 0 || k >= in->frames) continue;
            const float *src = in->samples + k * c;
            for (int ch = 0; ch < c; ch++) acc[ch] += w * src[ch];
        }
        float *dst = out->samples + n * c;
        double g = wsum != 0 ? 1.0 / wsum : 0;
        for (int ch = 0; ch < c; ch++) dst[ch] = (float)(acc[ch] * g);
    }
    free(tab);
    free(acc);
    return CA_OK;
}
