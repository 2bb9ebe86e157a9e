/* audio/audiofile.h — audio files (WAV, FLAC, OGG/Vorbis through libsndfile) as interleaved
 * float samples; mixing to mono; a windowed-sinc resampler. Errors shared by audio/'s
 * audiofile, synth, render and mulaw parts.
 *
 * Pure C11; knows nothing of tensors. Prefix ca_ ("cantor audio").
 *
 * libsndfile is used only when the build defines CT_HAVE_SNDFILE (the Makefile does when
 * `pkg-config --exists sndfile`); without it ca_audio_read / ca_audio_write return
 * CA_E_UNSUPPORTED with the message "built without libsndfile ...". Everything else here
 * (buffers, mono, resampling) needs nothing.
 *
 * Errors. Every fallible function returns a ca_status and, when the caller passes one, fills a
 * ca_error whose message names the file and what went wrong, with libsndfile's own text
 * (sf_strerror) when it failed, e.g.
 *   "song.ogg: cannot read the audio: File contains data in an unknown format."
 * The library never prints and never exits; `err` may be NULL everywhere.
 *
 * Ownership. A ca_audio is a caller-owned struct whose `samples` buffer (malloc'd) is filled by
 * ca_audio_alloc / ca_audio_read / ca_audio_to_mono / ca_audio_resample / ca_synth_render ...
 * and released with ca_audio_free (NULL and a zeroed struct are fine). An output ca_audio is
 * overwritten without being freed first: pass a zeroed or freed one.
 *
 * Threads. Functions share no mutable state; distinct ca_audio objects may be used from
 * distinct threads. (libsndfile keeps the text of the last failed *open* in a process-wide
 * variable, so two threads failing to open files at once may swap that part of their messages.) */
#ifndef CANTOR_AUDIO_AUDIOFILE_H
#define CANTOR_AUDIO_AUDIOFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- limits ---------------------------------------------------------------------------------- */
#define CA_MAX_SAMPLES   ((int64_t)1 << 30)  /* frames * channels of one ca_audio (4 GiB of floats) */
#define CA_MAX_CHANNELS  64
#define CA_MIN_RATE      1
#define CA_MAX_RATE      768000

/* ---- errors ---------------------------------------------------------------------------------- */
typedef enum ca_status {
    CA_OK = 0,
    CA_E_IO,          /* open/read/write/fsync/rename failed (the message has strerror) */
    CA_E_NOMEM,       /* out of memory */
    CA_E_FORMAT,      /* not an audio file libsndfile can read, or an unknown file extension */
    CA_E_DECODE,      /* libsndfile failed while reading or writing the data (its text follows) */
    CA_E_ARG,         /* invalid argument (rate, channels, NaN samples, NULL pointers, ...) */
    CA_E_LIMIT,       /* more than CA_MAX_SAMPLES samples */
    CA_E_UNSUPPORTED, /* built without the library this needs (libsndfile, FluidSynth) */
    CA_E_MIDI,        /* rendering: the MIDI file could not be read (the message has the reason) */
    CA_STATUS_COUNT
} ca_status;

/* A static text for a status. */
const char *ca_strerror(ca_status s);

typedef struct ca_error {
    ca_status status;
    char file[256];      /* the file the error is about ("" when none) */
    char message[1024];  /* full text: "<file>: <what went wrong> (<how to fix it>)" */
} ca_error;

/* ---- audio buffers --------------------------------------------------------------------------- */
typedef struct ca_audio {
    float *samples;   /* frames * channels values, interleaved (frame 0 ch 0, frame 0 ch 1, ...) */
    int64_t frames;
    int channels;     /* 1..CA_MAX_CHANNELS */
    int rate;         /* frames per second, CA_MIN_RATE..CA_MAX_RATE */
} ca_audio;

/* Fills *a with a zeroed buffer of frames x channels at rate (frames may be 0: samples is then
 * a valid 1-element allocation). CA_E_ARG / CA_E_LIMIT / CA_E_NOMEM. */
ca_status ca_audio_alloc(ca_audio *a, int64_t frames, int channels, int rate, ca_error *err);
/* Frees a->samples and zeroes *a. NULL is a no-op. */
void ca_audio_free(ca_audio *a);

/* ---- files ----------------------------------------------------------------------------------- */
typedef enum ca_format {
    CA_FORMAT_AUTO = 0,   /* writing: from the extension; also "unknown" from ca_format_from_path */
    CA_FORMAT_WAV_PCM16,  /* .wav: 16-bit PCM (what ".wav" means by default) */
    CA_FORMAT_WAV_FLOAT,  /* .wav: 32-bit IEEE float (exact round trip) */
    CA_FORMAT_FLAC,       /* .flac: 16-bit lossless */
    CA_FORMAT_OGG,        /* .ogg / .oga: Ogg Vorbis (lossy) */
    CA_FORMAT_COUNT
} ca_format;

/* The format an extension names (case-insensitive .wav, .flac, .ogg, .oga); CA_FORMAT_AUTO when
 * the path has none of these. */
ca_format ca_format_from_path(const char *path);
/* "wav (16-bit PCM)", "wav (32-bit float)", "flac", "ogg/vorbis" ("?" for others). */
const char *ca_format_name(ca_format f);

/* Whether libsndfile was compiled in (CT_HAVE_SNDFILE). */
bool ca_have_sndfile(void);

/* Reads any audio file libsndfile understands (the content decides, not the extension): WAV,
 * FLAC, OGG/Vorbis, AIFF, MP3 (libsndfile >= 1.1) ... into *out as interleaved floats in
 * [-1, 1) (integer formats are scaled by 1/32768 for 16-bit). The total sample count is checked
 * against CA_MAX_SAMPLES before allocating. On failure *out is zeroed. */
ca_status ca_audio_read(const char *path, ca_audio *out, ca_error *err);

typedef struct ca_write_opts {
    ca_format format;       /* CA_FORMAT_AUTO: from path's extension (unknown: CA_E_FORMAT) */
    double vorbis_quality;  /* OGG only: 0 < q <= 1; 0 (the zeroed default) means 0.6 */
} ca_write_opts;

/* Writes a atomically: a temporary file next to path, fsync, rename over path. On any failure
 * the temporary file is removed and an existing file at path is untouched. opts may be NULL
 * (format from the extension). Samples outside [-1, 1] are clipped (not wrapped) in integer
 * formats; a NaN or infinite sample is CA_E_ARG (naming the frame). FLAC allows 1..8 channels
 * and rates up to 655350; OGG/Vorbis up to 255 channels; libsndfile's message says which. */
ca_status ca_audio_write(const char *path, const ca_audio *a, const ca_write_opts *opts, ca_error *err);

/* ---- processing ------------------------------------------------------------------------------ */
/* out = the average of in's channels (a copy when in is mono). out must not alias in. */
ca_status ca_audio_to_mono(const ca_audio *in, ca_audio *out, ca_error *err);

/* Frames after resampling `frames` from `from_rate` to `to_rate`: round(frames * to / from). */
int64_t ca_resample_frames(int64_t frames, int from_rate, int to_rate);

/* Band-limited resampling (a Kaiser-windowed sinc, beta 8, 24 zero crossings each side, DC gain
 * exactly 1): output frame n is the input's value at time n / to_rate. Down-sampling is flat to
 * 0.8 x the new Nyquist frequency, -6 dB at 0.9 x, and >= 90 dB down from the new Nyquist
 * frequency up (measured 44.1 -> 16 kHz), so nothing aliases; up-sampling low-passes the same
 * way at the old Nyquist frequency (no images). The input is taken as zero outside its frames, so
 * the first and last millisecond or so fade a little. Same rate: a copy. out must not alias in.
 * Cost: about 150 multiply-adds per output sample and channel (44.1 -> 16 kHz: ~100x real time
 * per core for stereo). */
ca_status ca_audio_resample(const ca_audio *in, int to_rate, ca_audio *out, ca_error *err);

/* ---- private (shared by audio/'s ca_ files) -------------------------------------------------- */
#if defined(__GNUC__)
#define CA__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CA__PRINTF(a, b)
#endif
/* Fills err (when non-NULL): message "<file>: <formatted text>" (just the text when file is
 * NULL or ""), and returns s. */
ca_status ca__fail(ca_error *err, ca_status s, const char *file, const char *fmt, ...) CA__PRINTF(4, 5);

#ifdef __cplusplus
}
#endif
#endif
