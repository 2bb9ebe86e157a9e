/* audio/live.c — MIDI output devices through PortMidi (see live.h). */
#include "audio/live.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#if defined(CT_HAVE_PORTMIDI)
#include <dlfcn.h>
#include <portmidi.h>
#endif

static const char *const status_text[CL_STATUS_COUNT] = {
    [CL_OK] = "no error",
    [CL_E_UNAVAILABLE] = "built without PortMidi: no live MIDI",
    [CL_E_NO_DEVICE] = "no such MIDI output device",
    [CL_E_NOT_OUTPUT] = "not an available MIDI output",
    [CL_E_HOST] = "PortMidi or the system refused",
    [CL_E_ARG] = "invalid argument",
    [CL_E_NOMEM] = "out of memory",
    [CL_E_STOPPED] = "playback stopped",
    [CL_E_PRODUCER] = "the producer of the music failed",
    [CL_E_STATE] = "call out of order",
};

const char *cl_strerror(cl_status s) {
    if ((int)s < 0 || s >= CL_STATUS_COUNT || !status_text[s]) return "unknown live MIDI status";
    return status_text[s];
}

static cl_status fail(cl_error *err, cl_status s, int host, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static cl_status fail(cl_error *err, cl_status s, int host, const char *fmt, ...) {
    if (err) {
        err->status = s;
        err->host_error = host;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return s;
}

const char *cl_device_hint(void) {
    return "To get a MIDI output:\n"
           "  - on a machine with sound, start a software synthesizer that offers one, e.g.\n"
           "      fluidsynth -a alsa -m alsa_seq /usr/share/sounds/sf2/TimGM6mb.sf2\n"
           "    (apt-get install fluidsynth timgm6mb-soundfont), or qsynth, or timidity -iA;\n"
           "  - or load ALSA's virtual MIDI ports: sudo modprobe snd-virmidi (then connect them\n"
           "    to a synthesizer with aconnect);\n"
           "  - or plug in a hardware synthesizer or a USB MIDI interface.\n"
           "Then `cantor devices` lists it; pass its id or part of its name to --device.";
}

const char *cl_no_device_reason(void) {
#if !defined(CT_HAVE_PORTMIDI)
    return "cantor was built without PortMidi (install libportmidi-dev with make deps, and rebuild)";
#else
    if (access("/dev/snd/seq", F_OK) != 0)
        return "PortMidi found no MIDI devices: this machine has no ALSA sequencer (/dev/snd/seq is "
               "missing: no sound hardware, or the snd-seq module is not loaded)";
    return "PortMidi found no MIDI output devices (the ALSA sequencer is there, but no synthesizer "
           "or MIDI port is connected to it)";
#endif
}

bool cl_msg_valid(cl_msg m) {
    if (m.status < 0x80 || m.status >= 0xF0) return false;
    return m.data1 < 0x80 && m.data2 < 0x80;
}

void cl_all_off_messages(cl_msg *out) {
    for (int ch = 0; ch < CL_NUM_CHANNELS; ch++) {
        out[3 * ch + 0] = cl_control(ch, CL_CC_SUSTAIN, 0);
        out[3 * ch + 1] = cl_control(ch, CL_CC_ALL_NOTES_OFF, 0);
        out[3 * ch + 2] = cl_control(ch, CL_CC_ALL_SOUND_OFF, 0);
    }
}

int64_t cl_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#if defined(CT_HAVE_PORTMIDI)

static void sleep_until_us(int64_t t) {
    for (;;) {
        int64_t d = t - cl_now_us();
        if (d <= 0) return;
        struct timespec ts = {(time_t)(d / 1000000), (long)(d % 1000000) * 1000};
        if (nanosleep(&ts, NULL) == 0) return;
        if (errno != EINTR) return;
    }
}

struct cl_output {
    PortMidiStream *stream;
    cl_device_info info;
    int latency_ms;
    int64_t origin_us;   /* PortMidi's time 0 */
    int64_t last_ts;     /* latest timestamp sent (INT64_MIN: none) */
};

typedef void (*alsa_error_handler)(const char *file, int line, const char *function, int err, const char *fmt,
                                   ...);
static void alsa_silent(const char *file, int line, const char *function, int err, const char *fmt, ...) {}

/* PortMidi's ALSA back end makes libasound print "ALSA lib seq_hw.c:466:(snd_seq_hw_open) open
 * /dev/snd/seq failed" on a machine without a sequencer. The library must not print: install
 * a silent handler in the libasound that PortMidi already loaded (found without linking it). */
static void silence_alsa(void) {
    void *h = dlopen("libasound.so.2", RTLD_LAZY | RTLD_NOLOAD);
    if (!h) return;
    int (*set_handler)(alsa_error_handler) = NULL;
    void *sym = dlsym(h, "snd_lib_error_set_handler");
    if (sym) {
        memcpy(&set_handler, &sym, sizeof set_handler);
        set_handler(alsa_silent);
    }
    dlclose(h);
}

static cl_status pm_init(cl_error *err) {
    silence_alsa();
    PmError e = Pm_Initialize();
    if (e != pmNoError)
        return fail(err, CL_E_HOST, e, "PortMidi: cannot initialise: %s", Pm_GetErrorText(e));
    return CL_OK;
}

static void fill_info(int id, const PmDeviceInfo *pi, int def, cl_device_info *d) {
    memset(d, 0, sizeof *d);
    d->id = id;
    snprintf(d->name, sizeof d->name, "%s", pi->name ? pi->name : "?");
    snprintf(d->interface, sizeof d->interface, "%s", pi->interf ? pi->interf : "?");
    d->is_default = id == def;
    d->is_open = pi->opened != 0;
}

cl_status cl_list_outputs(cl_device_info **out, int *n, cl_error *err) {
    if (!out || !n) return fail(err, CL_E_ARG, 0, "cl_list_outputs: out and n must not be NULL");
    *out = NULL;
    *n = 0;
    cl_status s = pm_init(err);
    if (s) return s;
    int count = Pm_CountDevices(), def = Pm_GetDefaultOutputDeviceID(), k = 0;
    for (int i = 0; i < count; i++) {
        const PmDeviceInfo *pi = Pm_GetDeviceInfo(i);
        if (pi && pi->output) k++;
    }
    if (k == 0) return CL_OK;
    cl_device_info *d = calloc((size_t)k, sizeof *d);
    if (!d) return fail(err, CL_E_NOMEM, 0, "cl_list_outputs: out of memory for %d devices", k);
    k = 0;
    for (int i = 0; i < count; i++) {
        const PmDeviceInfo *pi = Pm_GetDeviceInfo(i);
        if (pi && pi->output) fill_info(i, pi, def, &d[k++]);
    }
    *out = d;
    *n = k;
    return CL_OK;
}

/* "0 'FLUID Synth', 2 'Virtual Raw MIDI 1-0'" into buf. */
static void list_names(const cl_device_info *d, int n, char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < n && len + 1 < cap; i++) {
        int w = snprintf(buf + len, cap - len, "%s%d '%s'", i ? ", " : "", d[i].id, d[i].name);
        if (w < 0) break;
        len += (size_t)w;
    }
}

static bool all_digits(const char *s) {
    if (!*s) return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s)) return false;
    return true;
}

static bool contains_nocase(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0) return true;
    return n == 0;
}

cl_status cl_find_output(const char *spec, int *id, cl_error *err) {
    if (!spec || !id) return fail(err, CL_E_ARG, 0, "cl_find_output: spec and id must not be NULL");
    if (!*spec) return fail(err, CL_E_ARG, 0, "MIDI output '': give a device id or part of its name");
    cl_device_info *d = NULL;
    int n = 0;
    cl_status s = cl_list_outputs(&d, &n, err);
    if (s) return s;
    if (n == 0) {
        free(d);
        return fail(err, CL_E_NO_DEVICE, pmInvalidDeviceId, "MIDI output '%s': %s.\n%s", spec,
                    cl_no_device_reason(), cl_device_hint());
    }
    int found = -1, matches = 0;
    if (all_digits(spec)) {
        long v = strtol(spec, NULL, 10);
        for (int i = 0; i < n; i++)
            if (d[i].id == v) found = d[i].id, matches = 1;
    } else {
        for (int i = 0; i < n; i++)
            if (strcasecmp(d[i].name, spec) == 0) found = d[i].id, matches = 1;
        if (matches == 0)
            for (int i = 0; i < n; i++)
                if (contains_nocase(d[i].name, spec)) found = d[i].id, matches++;
    }
    char names[768];
    list_names(d, n, names, sizeof names);
    free(d);
    if (matches == 0)
        return fail(err, CL_E_NO_DEVICE, 0, "MIDI output '%s': no output has that %s (the outputs: %s)", spec,
                    all_digits(spec) ? "id" : "name", names);
    if (matches > 1)
        return fail(err, CL_E_ARG, 0, "MIDI output '%s' matches %d outputs (%s): give its id or more of its name",
                    spec, matches, names);
    *id = found;
    return CL_OK;
}

static PmTimestamp time_proc(void *info) {
    const cl_output *o = info;
    return (PmTimestamp)((cl_now_us() - o->origin_us) / 1000);
}

cl_status cl_output_open_id(int id, int latency_ms, cl_output **out, cl_error *err) {
    if (!out) return fail(err, CL_E_ARG, 0, "cl_output_open_id: out must not be NULL");
    *out = NULL;
    if (latency_ms < 1 || latency_ms > CL_MAX_LATENCY_MS)
        return fail(err, CL_E_ARG, 0,
                    "MIDI output %d: latency %d ms: expected 1..%d (PortMidi ignores timestamps at latency 0)",
                    id, latency_ms, CL_MAX_LATENCY_MS);
    cl_status s = pm_init(err);
    if (s) return s;
    int count = Pm_CountDevices();
    const PmDeviceInfo *pi = id >= 0 && id < count ? Pm_GetDeviceInfo(id) : NULL;
    cl_output *o = calloc(1, sizeof *o);
    if (!o) return fail(err, CL_E_NOMEM, 0, "MIDI output %d: out of memory", id);
    o->latency_ms = latency_ms;
    o->origin_us = cl_now_us() - 1000000;   /* PortMidi reads timestamp 0 as "now": never send 0 */
    o->last_ts = INT64_MIN;
    PmError e = Pm_OpenOutput(&o->stream, id, NULL, 1024, time_proc, o, latency_ms);
    if (e == pmNoError) {
        fill_info(id, pi ? pi : Pm_GetDeviceInfo(id), Pm_GetDefaultOutputDeviceID(), &o->info);
        o->info.is_open = true;
        *out = o;
        return CL_OK;
    }
    free(o);
    if (e == pmHostError) {
        char host[PM_HOST_ERROR_MSG_LEN];
        host[0] = 0;
        Pm_GetHostErrorText(host, sizeof host);
        return fail(err, CL_E_HOST, e, "MIDI output %d '%s': cannot open it: %s", id, pi ? pi->name : "?", host);
    }
    if (!pi) {
        int outputs = 0;
        for (int i = 0; i < count; i++) {
            const PmDeviceInfo *q = Pm_GetDeviceInfo(i);
            if (q && q->output) outputs++;
        }
        if (outputs == 0)
            return fail(err, CL_E_NO_DEVICE, e, "MIDI output %d: PortMidi: %s: %s.\n%s", id, Pm_GetErrorText(e),
                        cl_no_device_reason(), cl_device_hint());
        return fail(err, CL_E_NO_DEVICE, e,
                    "MIDI output %d: PortMidi: %s: there is no device %d (`cantor devices` lists the %d output%s)",
                    id, Pm_GetErrorText(e), id, outputs, outputs == 1 ? "" : "s");
    }
    if (e == pmInvalidDeviceId && (!pi->output || pi->opened))
        return fail(err, CL_E_NOT_OUTPUT, e, "MIDI output %d '%s': PortMidi: %s: %s", id, pi->name,
                    Pm_GetErrorText(e), !pi->output ? "it is an input device" : "it is already open");
    return fail(err, CL_E_HOST, e, "MIDI output %d '%s': cannot open it: PortMidi: %s", id, pi->name,
                Pm_GetErrorText(e));
}

cl_status cl_output_open(const char *spec, int latency_ms, cl_output **out, cl_error *err) {
    if (out) *out = NULL;
    int id = -1;
    cl_status s = cl_find_output(spec, &id, err);
    if (s) return s;
    return cl_output_open_id(id, latency_ms, out, err);
}

cl_status cl_output_send(cl_output *o, cl_msg m, int64_t ts_us, cl_error *err) {
    if (!o || !o->stream) return fail(err, CL_E_STATE, 0, "cl_output_send: the output is not open");
    if (!cl_msg_valid(m))
        return fail(err, CL_E_ARG, 0, "MIDI output %d: message %02X %02X %02X: expected a channel message "
                    "(status 80..EF, data bytes 00..7F)", o->info.id, m.status, m.data1, m.data2);
    int64_t rel = ts_us - o->origin_us;
    if (rel < 1000) rel = 1000;   /* at least 1 ms: PortMidi takes 0 as "now" */
    PmError e = Pm_WriteShort(o->stream, (PmTimestamp)((rel + 500) / 1000), Pm_Message(m.status, m.data1, m.data2));
    if (e != pmNoError) {
        if (e == pmHostError) {
            char host[PM_HOST_ERROR_MSG_LEN];
            host[0] = 0;
            Pm_GetHostErrorText(host, sizeof host);
            return fail(err, CL_E_HOST, e, "MIDI output %d '%s': cannot send: %s", o->info.id, o->info.name, host);
        }
        return fail(err, CL_E_HOST, e, "MIDI output %d '%s': cannot send: PortMidi: %s", o->info.id, o->info.name,
                    Pm_GetErrorText(e));
    }
    if (ts_us > o->last_ts) o->last_ts = ts_us;
    return CL_OK;
}

cl_status cl_output_all_off(cl_output *o, cl_error *err) {
    if (!o || !o->stream) return fail(err, CL_E_STATE, 0, "cl_output_all_off: the output is not open");
    cl_msg msgs[CL_ALL_OFF_COUNT];
    cl_all_off_messages(msgs);
    int64_t ts = cl_now_us();
    if (o->last_ts > ts) ts = o->last_ts;
    cl_status first = CL_OK;
    for (int i = 0; i < CL_ALL_OFF_COUNT; i++) {   /* every channel, even after an error */
        cl_status s = cl_output_send(o, msgs[i], ts, first ? NULL : err);
        if (s && !first) first = s;
    }
    return first;
}

const cl_device_info *cl_output_info(const cl_output *o) { return o ? &o->info : NULL; }
int cl_output_latency_ms(const cl_output *o) { return o ? o->latency_ms : 0; }
int64_t cl_output_last_timestamp(const cl_output *o) { return o ? o->last_ts : INT64_MIN; }

cl_status cl_output_close(cl_output *o, cl_error *err) {
    if (!o) return CL_OK;
    cl_status s = cl_output_all_off(o, err);
    /* let what is queued sound: Pm_Close may drop events still scheduled in the sequencer */
    int64_t now = cl_now_us();
    int64_t until = o->last_ts + (int64_t)o->latency_ms * 1000 + 10000;
    int64_t cap = now + (int64_t)o->latency_ms * 1000 + 2000000;
    if (until > cap) until = cap;
    sleep_until_us(until);
    PmError e = Pm_Close(o->stream);
    if (e != pmNoError && !s)
        s = fail(err, CL_E_HOST, e, "MIDI output %d '%s': cannot close: PortMidi: %s", o->info.id, o->info.name,
                 Pm_GetErrorText(e));
    free(o);
    return s;
}

#else /* no PortMidi */

struct cl_output {
    cl_device_info info;
};

static cl_status unavailable(cl_error *err) {
    return fail(err, CL_E_UNAVAILABLE, 0,
                "cantor was built without PortMidi, so it has no live MIDI output: install libportmidi-dev "
                "(make deps) and rebuild");
}

cl_status cl_list_outputs(cl_device_info **out, int *n, cl_error *err) {
    if (out) *out = NULL;
    if (n) *n = 0;
    return unavailable(err);
}
cl_status cl_find_output(const char *spec, int *id, cl_error *err) { return unavailable(err); }
cl_status cl_output_open_id(int id, int latency_ms, cl_output **out, cl_error *err) {
    if (out) *out = NULL;
    return unavailable(err);
}
cl_status cl_output_open(const char *spec, int latency_ms, cl_output **out, cl_error *err) {
    if (out) *out = NULL;
    return unavailable(err);
}
cl_status cl_output_send(cl_output *o, cl_msg m, int64_t ts_us, cl_error *err) { return unavailable(err); }
cl_status cl_output_all_off(cl_output *o, cl_error *err) { return unavailable(err); }
const cl_device_info *cl_output_info(const cl_output *o) { return o ? &o->info : NULL; }
int cl_output_latency_ms(const cl_output *o) { return 0; }
int64_t cl_output_last_timestamp(const cl_output *o) { return INT64_MIN; }
cl_status cl_output_close(cl_output *o, cl_error *err) { return CL_OK; }
#endif
