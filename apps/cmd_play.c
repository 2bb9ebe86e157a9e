/* apps/cmd_play.c — `cantor play` (compose and play live on a MIDI output, or play a MIDI
 * file) and `cantor devices` (list the MIDI outputs). The scheduling is audio/player.h, the
 * device audio/live.h, the composer as a producer models/stream.h; this file parses options,
 * handles Ctrl-C and prints. */
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apps/cli.h"
#include "audio/live.h"
#include "audio/midi.h"
#include "audio/player.h"
#include "engine/cantor.h"
#include "models/composer.h"
#include "models/stream.h"

/* PortMidi and libasound keep a few start-up allocations for the life of the process (143
 * bytes in Pm_Initialize, libasound's configuration): not ours, so LeakSanitizer is told. */
#if defined(__SANITIZE_ADDRESS__)
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libportmidi.so\nleak:libasound.so\n"; }
const char *__lsan_default_options(void);
const char *__lsan_default_options(void) { return "print_suppressions=0"; }
#endif

/* ---- cantor devices -------------------------------------------------------------------------- */
static void devices_help(FILE *f) {
    fprintf(f,
            "usage: cantor devices\n"
            "\n"
            "Lists the MIDI outputs PortMidi sees (id, name, interface, default): what\n"
            "`cantor play --device NAME|ID` can play on. Exits with 1 when there is none, saying\n"
            "how to get one.\n"
            "\n"
            "  -h, --help         this help\n");
}

/* The "no device" message of both commands. */
static int no_outputs(const char *cmd) {
    cli_fail(cmd, "no MIDI output devices: %s.\n%s", cl_no_device_reason(), cl_device_hint());
    return CLI_FAIL;
}

static int devices_run(int argc, char **argv) {
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int c;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            devices_help(stdout);
            return CLI_OK;
        }
        return cli_bad_option("devices", argv[optind - 1]);
    }
    if (cli_check_positionals("devices", argc, argv, optind)) return CLI_USAGE;
    if (optind < argc) return cli_bad_option("devices", argv[optind]);
    cl_device_info *d = NULL;
    int n = 0;
    cl_error err;
    memset(&err, 0, sizeof err);
    if (cl_list_outputs(&d, &n, &err) != CL_OK) return cli_fail("devices", "%s", err.message);
    if (n == 0) return no_outputs("devices");
    printf("%d MIDI output%s (PortMidi):\n", n, n == 1 ? "" : "s");
    printf("  %3s  %-48s  %-9s  %s\n", "id", "name", "interface", "default");
    for (int i = 0; i < n; i++)
        printf("  %3d  %-48s  %-9s  %s%s\n", d[i].id, d[i].name, d[i].interface, d[i].is_default ? "yes" : "",
               d[i].is_open ? " (open)" : "");
    free(d);
    return CLI_OK;
}

const cli_cmd cli_cmd_devices = {"devices", "list the MIDI output devices", devices_run, devices_help};

/* ---- cantor play ----------------------------------------------------------------------------- */
static volatile sig_atomic_t play_stop;   /* set by SIGINT / SIGTERM; the player polls it */

static void on_signal(int sig) { play_stop = 1; }

static void play_help(FILE *f) {
    fprintf(f,
            "usage: cantor play --ckpt FILE [options]   compose and play at the same time\n"
            "       cantor play FILE.mid [options]      play a MIDI file\n"
            "\n"
            "Plays live on a MIDI output: a synthesizer, hardware or software (`cantor devices`\n"
            "lists them). With --ckpt the composer samples one step at a time and its notes are\n"
            "played as they are made, composed --ahead seconds ahead of what is heard. Ctrl-C\n"
            "stops at once: every sounding note is ended and every channel silenced.\n"
            "\n"
            "  --device NAME|ID   the MIDI output: its id or part of its name\n"
            "                     (default: PortMidi's default output)\n"
            "  --ckpt FILE        a model.safetensors written by cantor train (a melody,\n"
            "                     performance or pianoroll model)\n"
            "  --length N         steps to compose, 0 = until Ctrl-C (default 0)\n"
            "  --temperature T    0 = greedy, higher = more adventurous (default 1.0)\n"
            "  --top-k K          sample among the K likeliest events, 0 = all (default 0)\n"
            "  --top-p P          nucleus sampling, 1 = off (default 1.0)\n"
            "  --seed N           seed of the sampling (default 1234)\n"
            "  --qpm Q            tempo of melody and metric piano-roll models, in quarter notes\n"
            "                     per minute (default 120)\n"
            "  --channel N        MIDI channel of the composed notes, 1..16 (default 1)\n"
            "  --program N        General MIDI program sent first, 0..127 (default 0, piano)\n"
            "  --latency MS       PortMidi's latency: each message sounds this long after its\n"
            "                     timestamp, which absorbs the scheduler's jitter (default %d)\n"
            "  --ahead SECONDS    how far the music is made ahead of the playhead (default 2)\n"
            "  --dry-run          no device: print each message at its time instead\n"
            "  -h, --help         this help\n"
            "\n"
            "Exit status: 0 played to the end; 1 failed (no device, a file it cannot read, ...);\n"
            "2 usage error; 130 stopped by Ctrl-C (after silencing every channel).\n",
            CL_DEFAULT_LATENCY_MS);
}

/* --dry-run: a sink that prints each message when it is due. */
typedef struct print_sink {
    int64_t origin;
    int64_t n;
} print_sink;

static const char *const note_names[12] = {"C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"};

static cl_status print_send(void *self, cl_msg m, int64_t ts, cl_error *err) {
    print_sink *ps = self;
    int ch = (m.status & 15) + 1, type = m.status & 0xF0;
    char what[96];
    if (cl_msg_is_note_on(m))
        snprintf(what, sizeof what, "note-on  %s%d (%d) velocity %d", note_names[m.data1 % 12], m.data1 / 12 - 1,
                 m.data1, m.data2);
    else if (cl_msg_is_note_off(m))
        snprintf(what, sizeof what, "note-off %s%d (%d)", note_names[m.data1 % 12], m.data1 / 12 - 1, m.data1);
    else if (type == 0xB0)
        snprintf(what, sizeof what, "control %d = %d%s", m.data1, m.data2,
                 m.data1 == CL_CC_ALL_NOTES_OFF ? " (All Notes Off)"
                 : m.data1 == CL_CC_ALL_SOUND_OFF ? " (All Sound Off)"
                 : m.data1 == CL_CC_SUSTAIN ? " (sustain)" : "");
    else if (type == 0xC0)
        snprintf(what, sizeof what, "program %d", m.data1);
    else
        snprintf(what, sizeof what, "message");
    printf("%9.3f  ch %2d  %02X %02X %02X  %s\n", (double)(ts - ps->origin) / 1e6, ch, m.status, m.data1, m.data2,
           what);
    fflush(stdout);
    ps->n++;
    return CL_OK;
}

static int64_t print_now(void *self) { return cl_now_us(); }
static cl_status print_close(void *self, cl_error *err) { return CL_OK; }

/* Opens the output --device names (or the default one). */
static int open_device(const char *spec, int latency, cl_output **out) {
    cl_error err;
    memset(&err, 0, sizeof err);
    if (spec) {
        if (cl_output_open(spec, latency, out, &err) != CL_OK) return cli_fail("play", "%s", err.message);
        return CLI_OK;
    }
    cl_device_info *d = NULL;
    int n = 0;
    if (cl_list_outputs(&d, &n, &err) != CL_OK) return cli_fail("play", "%s", err.message);
    if (n == 0) return no_outputs("play");
    int id = d[0].id;
    for (int i = 0; i < n; i++)
        if (d[i].is_default) id = d[i].id;
    free(d);
    if (cl_output_open_id(id, latency, out, &err) != CL_OK) return cli_fail("play", "%s", err.message);
    return CLI_OK;
}

static int play_run(int argc, char **argv) {
    static const struct option opts[] = {
        {"ckpt", required_argument, NULL, 'c'},        {"device", required_argument, NULL, 'd'},
        {"length", required_argument, NULL, 'n'},      {"temperature", required_argument, NULL, 't'},
        {"top-k", required_argument, NULL, 'k'},       {"top-p", required_argument, NULL, 'p'},
        {"seed", required_argument, NULL, 's'},        {"qpm", required_argument, NULL, 'q'},
        {"channel", required_argument, NULL, 'C'},     {"program", required_argument, NULL, 'P'},
        {"latency", required_argument, NULL, 'l'},     {"ahead", required_argument, NULL, 'a'},
        {"dry-run", no_argument, NULL, 'D'},           {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *ckpt = NULL, *device = NULL, *file = NULL;
    int64_t length = 0, top_k = 0, seed = 1234, channel = 1, program = 0, latency = CL_DEFAULT_LATENCY_MS;
    double temperature = 1.0, top_p = 1.0, qpm = 120, ahead = 2.0;
    bool dry_run = false, model_opts = false;
    int c;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': ckpt = optarg; break;
        case 'd': device = optarg; break;
        case 'n': if (!cli_int("play", "--length", optarg, 0, INT64_C(1) << 40, &length)) return CLI_USAGE; model_opts = true; break;
        case 't': if (!cli_float("play", "--temperature", optarg, 0, 100, &temperature)) return CLI_USAGE; model_opts = true; break;
        case 'k': if (!cli_int("play", "--top-k", optarg, 0, 1 << 20, &top_k)) return CLI_USAGE; model_opts = true; break;
        case 'p': if (!cli_float("play", "--top-p", optarg, 1e-6, 1, &top_p)) return CLI_USAGE; model_opts = true; break;
        case 's': if (!cli_int("play", "--seed", optarg, 0, INT64_MAX, &seed)) return CLI_USAGE; model_opts = true; break;
        case 'q': if (!cli_float("play", "--qpm", optarg, 4, 1000, &qpm)) return CLI_USAGE; model_opts = true; break;
        case 'C': if (!cli_int("play", "--channel", optarg, 1, 16, &channel)) return CLI_USAGE; model_opts = true; break;
        case 'P': if (!cli_int("play", "--program", optarg, 0, 127, &program)) return CLI_USAGE; model_opts = true; break;
        case 'l': if (!cli_int("play", "--latency", optarg, 1, CL_MAX_LATENCY_MS, &latency)) return CLI_USAGE; break;
        case 'a': if (!cli_float("play", "--ahead", optarg, 0.05, 600, &ahead)) return CLI_USAGE; break;
        case 'D': dry_run = true; break;
        case 'h': play_help(stdout); return CLI_OK;
        default: return cli_bad_option("play", argv[optind - 1]);
        }
    }
    if (cli_check_positionals("play", argc, argv, optind)) return CLI_USAGE;
    if (optind < argc) file = argv[optind++];
    if (optind < argc) return cli_bad_option("play", argv[optind]);
    if (!!ckpt == !!file)
        return cli_usage("play", ckpt ? "give --ckpt FILE or a MIDI file, not both"
                                      : "nothing to play: give --ckpt FILE (compose live) or a MIDI file");
    if (file && !cli_ends_with(file, ".mid") && !cli_ends_with(file, ".midi"))
        return cli_usage("play", "'%s': expected a .mid file (or --ckpt FILE to compose)", file);
    if (file && model_opts)
        return cli_usage("play", "--length, --temperature, --top-k, --top-p, --seed, --qpm, --channel and "
                                 "--program are for composing with --ckpt, not for playing '%s'", file);
    if (dry_run && device) return cli_usage("play", "--dry-run prints instead of playing: leave out --device");

    /* the device first: without one there is nothing to do */
    cl_output *out = NULL;
    if (!dry_run) {
        int rc = open_device(device, (int)latency, &out);
        if (rc) return rc;
    }

    int rc = CLI_FAIL;
    ct_ctx *ctx = NULL;
    ct_module *m = NULL;
    cc_stream *stream = NULL;
    cm_file *f = NULL;
    cl_file_source *src = NULL;
    cl_player *player = NULL;
    print_sink ps = {cl_now_us(), 0};
    cl_sink sink = out ? cl_output_sink(out) : (cl_sink){print_send, print_now, print_close, &ps};
    cl_error err;
    memset(&err, 0, sizeof err);
    cl_producer_fn producer;
    void *user;
    char what[512];
    if (ckpt) {
        ctx = ct_ctx_new();
        ct_ctx_set_error_handler(ctx, NULL, NULL);   /* we print the message ourselves */
        m = cc_load(ctx, ckpt);
        if (!m) { cli_fail("play", "%s", ct_ctx_error(ctx)); goto done; }
        cc_stream_opts so = cc_stream_defaults();
        so.sample.temperature = (float)temperature;
        so.sample.top_k = (int)top_k;
        so.sample.top_p = (float)top_p;
        so.steps = length;
        so.qpm = qpm;
        so.channel = (int)channel - 1;
        so.program = (int)program;
        ct_rng rng;
        ct_rng_seed(&rng, (uint64_t)seed);
        stream = cc_stream_new(m, &so, &rng);
        if (!stream) { cli_fail("play", "%s: %s", ckpt, ct_ctx_error(ctx)); goto done; }
        producer = cc_stream_produce;
        user = stream;
        char desc[256];
        cc_model_describe(m, desc, sizeof desc);
        snprintf(what, sizeof what, "composing with %s (%s), seed %lld", ckpt, desc, (long long)seed);
    } else {
        cm_error merr;
        memset(&merr, 0, sizeof merr);
        if (cm_read_file(file, &f, &merr) != CM_OK) { cli_fail("play", "%s", merr.message); goto done; }
        if (cl_file_source_new(f, &src, &err) != CL_OK) { cli_fail("play", "%s: %s", file, err.message); goto done; }
        producer = cl_file_source_produce;
        user = src;
        snprintf(what, sizeof what, "playing %s (%lld notes, %.1f s)", file, (long long)cl_file_source_notes(src),
                 (double)cl_file_source_duration_us(src) / 1e6);
    }

    cl_player_opts po = cl_player_defaults();
    po.ahead_us = (int64_t)(ahead * 1e6);
    po.lead_us = dry_run ? 0 : (latency * 1000 / 2 < 20000 ? latency * 1000 / 2 : 20000);
    po.stop = &play_stop;
    player = cl_player_new(sink, producer, user, &po, &err);
    if (!player) { cli_fail("play", "%s", err.message); goto done; }

    if (out) {
        const cl_device_info *info = cl_output_info(out);
        printf("%s on MIDI output %d '%s' (latency %lld ms, %.2f s ahead); Ctrl-C stops\n", what, info->id,
               info->name, (long long)latency, ahead);
    } else {
        printf("%s, dry run (%.2f s ahead); Ctrl-C stops\n", what, ahead);
    }
    fflush(stdout);

    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;   /* no SA_RESTART: a sleep ends at once */
    play_stop = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    cl_player_stats st;
    cl_status s = cl_player_run(player, &st, &err);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);

    if (s == CL_OK && out) {   /* let the last notes ring out before the close silences everything */
        struct timespec ring = {0, 500 * 1000 * 1000};
        nanosleep(&ring, NULL);
    }
    double played = (double)(st.finished_us - st.start_us) / 1e6;
    if (s == CL_OK || s == CL_E_STOPPED) {
        printf("%s %lld notes (%lld messages) in %.1f s", s == CL_OK ? "played" : "stopped after",
               (long long)st.notes_started, (long long)st.events_sent, played > 0 ? played : 0.0);
        if (stream)
            printf("; composed %lld steps, at least %.2f s ahead of the playhead (%lld underrun%s)",
                   (long long)cc_stream_steps(stream), (double)st.min_ahead_us / 1e6, (long long)st.underruns,
                   st.underruns == 1 ? "" : "s");
        if (out && st.late_events)
            printf("; %lld message%s reached PortMidi after their timestamp (at most %.1f ms; the latency "
                   "absorbs up to %lld ms)", (long long)st.late_events, st.late_events == 1 ? "" : "s",
                   (double)st.max_late_us / 1e3, (long long)latency);
        printf("\n");
        if (s == CL_E_STOPPED)
            printf("all notes off (%lld note-off%s, every channel silenced)\n", (long long)st.notes_closed,
                   st.notes_closed == 1 ? "" : "s");
        rc = s == CL_OK ? CLI_OK : 130;
    } else {
        cli_fail("play", "%s (all notes off sent)", err.message);
    }
done:;
    cl_error cerr;
    memset(&cerr, 0, sizeof cerr);
    if (cl_sink_close(&sink, &cerr) != CL_OK) {
        cli_fail("play", "%s", cerr.message);
        if (rc == CLI_OK) rc = CLI_FAIL;
    }
    cl_player_free(player);
    cl_file_source_free(src);
    cm_file_free(f);
    cc_stream_free(stream);
    ct_module_free(m);
    ct_ctx_free(ctx);
    return rc;
}

const cli_cmd cli_cmd_play = {"play", "compose and play live on a MIDI device, or play a MIDI file", play_run,
                              play_help};
