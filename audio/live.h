/* audio/live.h — live MIDI output through PortMidi: list the output devices, open one by name
 * or id, send timestamped short messages, and silence every channel on close.
 *
 * Pure C11; knows nothing of tensors. Prefix cl_ ("cantor live"); the scheduler that feeds an
 * output is audio/player.h.
 *
 * TIME. Timestamps are microseconds of CLOCK_MONOTONIC (cl_now_us()). An output is opened
 * with a latency L > 0 (PortMidi ignores timestamps when the latency is 0): a message sent
 * with timestamp t sounds at t + L, provided it reaches PortMidi before t + L (audio/player.h
 * sends every message before its timestamp). Internally PortMidi's millisecond time base is
 * the monotonic clock minus an origin taken when the output opens (so its int32 milliseconds
 * do not wrap for 24 days).
 *
 * SILENCE. cl_output_all_off sends, on each of the 16 channels, sustain off (CC 64 = 0),
 * All Notes Off (CC 123) and All Sound Off (CC 120), timestamped no earlier than the latest
 * message already sent, so they cannot overtake a queued note-on. cl_output_close does the
 * same, waits until everything queued has been played (at most latency + 2 s), then closes.
 *
 * NO DEVICES. Where PortMidi finds no output (no sound hardware, as on a build machine),
 * cl_list_outputs returns 0 outputs and opening any id fails with CL_E_NO_DEVICE and a
 * message that says how to get one (cl_device_hint). Built without PortMidi (no
 * CT_HAVE_PORTMIDI), every function that needs it returns CL_E_UNAVAILABLE.
 *
 * Errors. Every fallible function returns a cl_status and, when the caller passes one, fills a
 * cl_error whose message names the device and what went wrong, with PortMidi's own text. The
 * library never prints and never exits; `err` may be NULL everywhere. (libasound prints its
 * own errors to stderr, "ALSA lib seq_hw.c... open /dev/snd/seq failed"; the first cl_ call
 * that initialises PortMidi replaces libasound's error handler with a silent one, so those
 * reach the caller as a status instead.)
 *
 * Ownership. cl_list_outputs returns a malloc'd array the caller free()s. cl_output_open
 * returns an output the caller releases with cl_output_close (NULL is a no-op).
 * PortMidi itself is process-wide: it is initialised on first use and never terminated
 * (Pm_Terminate would close every other user's streams); its own start-up allocations are
 * not ours (the test suppressions name them). One thread at a time per output. */
#ifndef CANTOR_AUDIO_LIVE_H
#define CANTOR_AUDIO_LIVE_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CL_DEFAULT_LATENCY_MS 100
#define CL_MAX_LATENCY_MS 5000
#define CL_NUM_CHANNELS 16
#define CL_CC_SUSTAIN 64
#define CL_CC_ALL_SOUND_OFF 120
#define CL_CC_ALL_NOTES_OFF 123

/* ---- errors --------------------------------------------------------------------------------- */
typedef enum cl_status {
    CL_OK = 0,
    CL_E_UNAVAILABLE, /* built without PortMidi */
    CL_E_NO_DEVICE,   /* no MIDI output at all, or none with that name or id */
    CL_E_NOT_OUTPUT,  /* the id names an input device, or one already open */
    CL_E_HOST,        /* PortMidi or the system refused (its text follows) */
    CL_E_ARG,         /* an invalid argument: latency, message bytes, NULL pointers */
    CL_E_NOMEM,       /* out of memory */
    CL_E_STOPPED,     /* playback stopped on request (Ctrl-C, a stop flag) */
    CL_E_PRODUCER,    /* the player's producer failed (its message follows) */
    CL_E_STATE,       /* a call out of order (sending on a closed output, running a player twice) */
    CL_STATUS_COUNT
} cl_status;

/* A static text for a status. Never NULL. */
const char *cl_strerror(cl_status s);

typedef struct cl_error {
    cl_status status;
    int host_error;     /* PortMidi's PmError when it failed (e.g. -9999 pmInvalidDeviceId), else 0 */
    char message[1024]; /* full text: "MIDI output 0: PortMidi: `Invalid device ID' (...)" */
} cl_error;

/* How to get a MIDI output on a machine that has none (several lines, no trailing newline). */
const char *cl_device_hint(void);
/* Why there may be no outputs here, as far as can be told ("... /dev/snd/seq is missing ..."). */
const char *cl_no_device_reason(void);

/* ---- messages -------------------------------------------------------------------------------- */
/* A short (channel) message: status 0x80..0xEF and its data bytes (0..127; data2 0 when the
 * message has one data byte). */
typedef struct cl_msg {
    uint8_t status, data1, data2;
} cl_msg;

static inline cl_msg cl_note_on(int ch, int pitch, int velocity) {
    cl_msg m = {(uint8_t)(0x90 | (ch & 15)), (uint8_t)(pitch & 127), (uint8_t)(velocity & 127)};
    return m;
}
static inline cl_msg cl_note_off(int ch, int pitch) {
    cl_msg m = {(uint8_t)(0x80 | (ch & 15)), (uint8_t)(pitch & 127), 0};
    return m;
}
static inline cl_msg cl_control(int ch, int cc, int value) {
    cl_msg m = {(uint8_t)(0xB0 | (ch & 15)), (uint8_t)(cc & 127), (uint8_t)(value & 127)};
    return m;
}
static inline cl_msg cl_program(int ch, int program) {
    cl_msg m = {(uint8_t)(0xC0 | (ch & 15)), (uint8_t)(program & 127), 0};
    return m;
}
/* Whether m is a channel message with valid data bytes. */
bool cl_msg_valid(cl_msg m);
/* A note-on with velocity > 0 / a note-off (0x80, or a note-on with velocity 0). */
static inline bool cl_msg_is_note_on(cl_msg m) { return (m.status & 0xF0) == 0x90 && m.data2 > 0; }
static inline bool cl_msg_is_note_off(cl_msg m) {
    return (m.status & 0xF0) == 0x80 || ((m.status & 0xF0) == 0x90 && m.data2 == 0);
}

/* The 3 * 16 messages that silence every channel, in the order they are sent: per channel,
 * sustain off, All Notes Off, All Sound Off. out needs CL_ALL_OFF_COUNT entries. */
#define CL_ALL_OFF_COUNT (3 * CL_NUM_CHANNELS)
void cl_all_off_messages(cl_msg *out);

/* CLOCK_MONOTONIC in microseconds: the time base of every timestamp here. */
int64_t cl_now_us(void);

/* ---- devices --------------------------------------------------------------------------------- */
typedef struct cl_device_info {
    int id;               /* PortMidi's device id (what cl_output_open_id takes) */
    char name[128];       /* "FLUID Synth (1234): Synth input port (1234:0)" */
    char interface[32];   /* "ALSA" on Linux */
    bool is_default;      /* PortMidi's default output */
    bool is_open;         /* already opened by this process */
} cl_device_info;

/* The MIDI outputs PortMidi sees, in id order: *out is a malloc'd array of *n entries (NULL
 * when there are none), which the caller free()s. 0 outputs is CL_OK. */
cl_status cl_list_outputs(cl_device_info **out, int *n, cl_error *err);

/* The output that `spec` names: a decimal id, or a case-insensitive substring of a name (an
 * exact name wins; a substring must match exactly one output). CL_E_NO_DEVICE when none
 * matches (the message lists the outputs, or says there are none and how to get one); CL_E_ARG
 * when a substring matches several. */
cl_status cl_find_output(const char *spec, int *id, cl_error *err);

/* ---- output ---------------------------------------------------------------------------------- */
typedef struct cl_output cl_output;

/* Opens output `id` with latency_ms (1..CL_MAX_LATENCY_MS; PortMidi needs > 0 to honour
 * timestamps). On failure *out is NULL: CL_E_NO_DEVICE (no such id; with no devices at all
 * the message says so and how to get one), CL_E_NOT_OUTPUT (an input, or already open),
 * CL_E_HOST. Release with cl_output_close. */
cl_status cl_output_open_id(int id, int latency_ms, cl_output **out, cl_error *err);
/* The same for a name or id (cl_find_output). */
cl_status cl_output_open(const char *spec, int latency_ms, cl_output **out, cl_error *err);

/* Queues m to sound at ts_us + latency (ts in cl_now_us()'s time base; PortMidi's resolution
 * is 1 ms). CL_E_ARG for an invalid message, CL_E_HOST when PortMidi refuses. */
cl_status cl_output_send(cl_output *o, cl_msg m, int64_t ts_us, cl_error *err);
/* Silences every channel (see SILENCE above). */
cl_status cl_output_all_off(cl_output *o, cl_error *err);
/* Information about an open output. */
const cl_device_info *cl_output_info(const cl_output *o);
int cl_output_latency_ms(const cl_output *o);
/* The latest timestamp sent so far (INT64_MIN before the first message). */
int64_t cl_output_last_timestamp(const cl_output *o);
/* Silences every channel, waits until the queued messages have sounded (at most latency +
 * 2 s), closes the device and frees o. Returns the first error met (o is freed anyway).
 * NULL is a no-op (CL_OK). */
cl_status cl_output_close(cl_output *o, cl_error *err);

#ifdef __cplusplus
}
#endif
#endif
