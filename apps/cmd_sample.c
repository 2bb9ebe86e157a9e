/* apps/cmd_sample.c — `cantor sample`: a checkpoint composes new pieces (after an optional
 * MIDI primer) and writes them as MIDI files, optionally rendered to audio. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "apps/cli.h"
#include "audio/performance.h"
#include "audio/render.h"
#include "engine/cantor.h"
#include "models/composer.h"
#include "models/sampler.h"

#define MAX_STEPS ((int64_t)1 << 22)
#define MAX_COUNT 1000

static void sample_help(FILE *f) {
    fprintf(f,
            "usage: cantor sample --ckpt FILE --out FILE.mid|DIR [options]\n"
            "\n"
            "Composes new pieces with a trained composer (melody, performance or piano roll: the\n"
            "checkpoint describes itself) and writes them as MIDI files. A checkpoint trained on\n"
            "any device samples on any device. The same checkpoint, options and seed give\n"
            "byte-identical files on the CPU; the settings are written into each file as a text\n"
            "event (\"cantor sample seed=1234 temperature=1 ...\").\n"
            "\n"
            "  --ckpt FILE          a model.safetensors written by cantor train (required)\n"
            "  --out FILE.mid|DIR   where the MIDI goes (required): a .mid or .midi name is one\n"
            "                       file (with --count N > 1: FILE-001.mid, FILE-002.mid, ...);\n"
            "                       any other name is a folder (created when missing) that gets\n"
            "                       sample-001.mid, sample-002.mid, ...\n"
            "  --count N            pieces to compose, 1..%d (default 1); piece i depends only on\n"
            "                       the seed, i and the count\n"
            "  --length LEN         how much to compose after the primer (default 256):\n"
            "                         N       N steps: grid steps for melody (a 16th note at 4 steps\n"
            "                                 per quarter) and piano roll (frames), events for\n"
            "                                 performance\n"
            "                         Nbars   N bars (e.g. 8bars; the primer's time signature, else\n"
            "                                 4/4)\n"
            "                         Ns      N seconds at the tempo (e.g. 30s, 12.5s)\n"
            "                       bars and seconds may be fractional; a performance model\n"
            "                       stops when its time shifts reach them\n"
            "  --temperature T      0 = greedy (always the likeliest), 1 = the model's own\n"
            "                       distribution, higher = more adventurous (default 1.0)\n"
            "  --top-k K            choose among the K likeliest events, 0 = all (default 0;\n"
            "                       token models)\n"
            "  --top-p P            nucleus sampling: the fewest likeliest events that hold P of\n"
            "                       the probability, 1 = off (default 1.0; token models)\n"
            "  --primer FILE.mid    a MIDI file to continue (default none): its notes, encoded as\n"
            "                       the model reads them, are fed first and open each piece. A\n"
            "                       melody model reads one line: a polyphonic primer is reduced to\n"
            "                       the highest note at each onset (with a warning)\n"
            "  --seed N             seed of the sampling (default 1234)\n"
            "  --qpm Q              tempo in quarter notes per minute, 4..1000 (default: the\n"
            "                       primer's, else 120)\n"
            "  --render FILE|DIR    also render to audio (default none): FILE.wav, .flac or .ogg\n"
            "                       (with --count N > 1: FILE-001.wav, ...), or a folder that gets\n"
            "                       sample-001.wav, ...\n"
            "  --renderer NAME      auto, builtin or fluidsynth (default auto: FluidSynth when a\n"
            "                       General MIDI SoundFont is installed, else the built-in synth)\n"
            "  --device NAME        cpu, cuda or cuda:N: where the model runs (default cpu; a CUDA\n"
            "                       build on a machine with a GPU). On a GPU the logits agree with\n"
            "                       the CPU's to float rounding, so a piece may differ where a draw\n"
            "                       falls within rounding of two choices. A device that is not\n"
            "                       there exits 1, a malformed name 2\n"
            "  -h, --help           this help\n",
            MAX_COUNT);
}

typedef enum len_unit { LEN_STEPS, LEN_BARS, LEN_SECONDS } len_unit;

/* "256", "8bars" / "8bar", "30s" / "30sec" / "30seconds"; bars and seconds may be fractional. */
static bool parse_length(const char *s, double *v, len_unit *u) {
    char *end = NULL;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || errno || !isfinite(x) || x <= 0) return false;
    if (!*end) {
        if (x != floor(x) || x > (double)MAX_STEPS) return false;
        *u = LEN_STEPS;
    } else if (!strcasecmp(end, "bars") || !strcasecmp(end, "bar")) {
        *u = LEN_BARS;
    } else if (!strcasecmp(end, "s") || !strcasecmp(end, "sec") || !strcasecmp(end, "seconds")) {
        *u = LEN_SECONDS;
    } else {
        return false;
    }
    if (x > 1e6) return false;
    *v = x;
    return true;
}

/* The last path component has an extension (a dot after its first character). */
static bool has_extension(const char *path) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    const char *dot = strrchr(b, '.');
    return dot && dot > b;
}

static bool is_midi_name(const char *p) { return cli_ends_with(p, ".mid") || cli_ends_with(p, ".midi"); }

static bool is_audio_name(const char *p) {
    return cli_ends_with(p, ".wav") || cli_ends_with(p, ".flac") || cli_ends_with(p, ".ogg");
}

/* The path of piece i (1-based) of count: a file name as given (count 1) or with -NNN before
 * its extension; a folder gets sample-NNN.ext. */
static void piece_path(char *buf, size_t n, const char *base, bool folder, const char *ext, int i, int count) {
    if (folder) {
        size_t l = strlen(base);
        snprintf(buf, n, "%s%ssample-%03d%s", base, l && base[l - 1] == '/' ? "" : "/", i, ext);
    } else if (count == 1) {
        snprintf(buf, n, "%s", base);
    } else {
        const char *dot = strrchr(base, '.');
        snprintf(buf, n, "%.*s-%03d%s", (int)(dot - base), base, i, dot);
    }
}

static bool ensure_folder(const char *cmd, const char *flag, const char *dir) {
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return true;
        cli_fail(cmd, "%s '%s' exists and is not a folder (give a .mid file name or a folder)", flag, dir);
        return false;
    }
    if (mkdir(dir, 0755) != 0) {
        cli_fail(cmd, "%s '%s': cannot create the folder: %s", flag, dir, strerror(errno));
        return false;
    }
    return true;
}

/* Puts a text meta event first in track 0. */
static void add_settings_text(cm_file *f, const char *text) {
    if (f->n_tracks < 1 && cm_file_add_track(f) < 0) return;
    cm_track *t = &f->tracks[0];
    if (cm_track_add_text(t, 0, CM_META_TEXT, text) != CM_OK) return;
    cm_event e = t->events[t->n_events - 1];
    memmove(t->events + 1, t->events, sizeof(cm_event) * (size_t)(t->n_events - 1));
    t->events[0] = e;
}

typedef struct sample_args {
    const char *ckpt, *out, *render, *primer, *length_s, *device_s;
    ct_device device;
    int64_t count, top_k, seed;
    double temperature, top_p, qpm;
    bool qpm_set;
    double length;
    len_unit unit;
    ca_renderer renderer;
} sample_args;

static int compose(const sample_args *a);

static int sample_run(int argc, char **argv) {
    static const struct option opts[] = {
        {"ckpt", required_argument, NULL, 'c'},   {"out", required_argument, NULL, 'o'},
        {"count", required_argument, NULL, 'N'},  {"length", required_argument, NULL, 'n'},
        {"temperature", required_argument, NULL, 't'}, {"top-k", required_argument, NULL, 'k'},
        {"top-p", required_argument, NULL, 'p'},  {"primer", required_argument, NULL, 'P'},
        {"seed", required_argument, NULL, 's'},   {"qpm", required_argument, NULL, 'q'},
        {"render", required_argument, NULL, 'r'}, {"renderer", required_argument, NULL, 'R'},
        {"device", required_argument, NULL, 'd'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    sample_args a = {NULL, NULL, NULL, NULL, "256", "cpu", CT_DEVICE_CPU, 1, 0, 1234, 1.0, 1.0, 120, false, 256,
                     LEN_STEPS, CA_RENDERER_AUTO};
    int c;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': a.ckpt = optarg; break;
        case 'o': a.out = optarg; break;
        case 'N': if (!cli_int("sample", "--count", optarg, 1, MAX_COUNT, &a.count)) return CLI_USAGE; break;
        case 'n':
            if (!parse_length(optarg, &a.length, &a.unit))
                return cli_usage("sample", "--length '%s': expected steps (256), bars (8bars) or seconds "
                                 "(30s), greater than 0 (steps at most %lld)", optarg, (long long)MAX_STEPS);
            a.length_s = optarg;
            break;
        case 't': if (!cli_float("sample", "--temperature", optarg, 0, 100, &a.temperature)) return CLI_USAGE; break;
        case 'k': if (!cli_int("sample", "--top-k", optarg, 0, 1 << 20, &a.top_k)) return CLI_USAGE; break;
        case 'p': if (!cli_float("sample", "--top-p", optarg, 0, 1, &a.top_p)) return CLI_USAGE; break;
        case 'P': a.primer = optarg; break;
        case 's': if (!cli_int("sample", "--seed", optarg, 0, INT64_MAX, &a.seed)) return CLI_USAGE; break;
        case 'q':
            if (!cli_float("sample", "--qpm", optarg, 4, 1000, &a.qpm)) return CLI_USAGE;
            a.qpm_set = true;
            break;
        case 'r': a.render = optarg; break;
        case 'R':
            a.renderer = ca_renderer_from_name(optarg);
            if (a.renderer == CA_RENDERER_COUNT)
                return cli_usage("sample", "--renderer '%s': expected auto, builtin or fluidsynth", optarg);
            break;
        case 'd': a.device_s = optarg; break;
        case 'h': sample_help(stdout); return CLI_OK;
        default:
            if (optopt == 'd') return cli_usage("sample", "--device needs a value (cpu, cuda or cuda:N)");
            return cli_bad_option("sample", argv[optind - 1]);
        }
    }
    if (cli_check_positionals("sample", argc, argv, optind)) return CLI_USAGE;
    if (optind < argc) return cli_bad_option("sample", argv[optind]);
    if (!a.ckpt) return cli_usage("sample", "--ckpt FILE is required (the model.safetensors of a cantor train run)");
    if (!a.out) return cli_usage("sample", "--out FILE.mid or --out DIR is required");
    if (has_extension(a.out) && !is_midi_name(a.out))
        return cli_usage("sample", "--out '%s': expected a .mid file or a folder", a.out);
    if (a.render && has_extension(a.render) && !is_audio_name(a.render))
        return cli_usage("sample", "--render '%s': expected a .wav, .flac or .ogg file or a folder", a.render);
    int drc = cli_device("sample", a.device_s, "sample on the CPU with --device cpu (the default)", false,
                                &a.device);
    if (drc != CLI_OK) return drc;
    return compose(&a);
}

/* Steps to compose for a grid-based encoding (melody, piano roll), or the time in shift steps
 * for a performance model with bars/seconds (*time_target > 0). CLI_OK or CLI_USAGE. */
static int target_steps(const sample_args *a, const cc_config *cfg, double qpm, double qpb, int64_t *steps,
                        int64_t *time_target) {
    *time_target = 0;
    double seconds = a->unit == LEN_SECONDS ? a->length : a->length * qpb * 60.0 / qpm;
    double x;
    if (a->unit == LEN_STEPS) x = a->length;
    else if (cfg->encoding == CC_ENC_PERFORMANCE) {
        double t = floor(seconds * cfg->steps_per_second + 0.5);
        if (t < 1 || t > (double)MAX_STEPS)
            return cli_usage("sample", "--length '%s' is %.4g s: expected 0.01 s to %.0f s", a->length_s,
                             seconds, (double)MAX_STEPS / cfg->steps_per_second);
        *time_target = (int64_t)t;
        x = 2.0 * t + 1024;             /* an upper bound on the events */
    } else if (cfg->steps_per_quarter > 0) {
        x = floor(seconds * qpm / 60.0 * cfg->steps_per_quarter + 0.5);
    } else {
        x = floor(seconds * cfg->steps_per_second + 0.5);
    }
    if (x < 1 || x > (double)MAX_STEPS)
        return cli_usage("sample", "--length '%s' is %.0f steps here: expected 1 to %lld", a->length_s, x,
                         (long long)MAX_STEPS);
    *steps = (int64_t)x;
    return CLI_OK;
}

static int compose(const sample_args *a) {
    ct_ctx *ctx = ct_ctx_new();
    ct_ctx_set_error_handler(ctx, NULL, NULL);   /* we print the messages ourselves */
    int rc = CLI_FAIL;
    const int count = (int)a->count;
    cm_file *pf = NULL;
    cc_steps primer = {NULL, NULL, 0};
    cc_sampler *s = NULL;
    int64_t *gen_t = NULL, *row_t = NULL, *glen = NULL, *elapsed = NULL;
    uint8_t *gen_f = NULL, *row_f = NULL;
    char err[2048] = "";
    ct_module *m = cc_load(ctx, a->ckpt);
    if (!m) {
        cli_fail("sample", "%s\n(--ckpt takes the model.safetensors that cantor train writes in its run folder)",
                 ct_ctx_error(ctx));
        goto done;
    }
    /* the model to --device (the sampler's state is made there, after the move) */
    if (a->device.type != CT_CPU && ct_module_to(m, a->device) != CT_OK) {
        cli_fail("sample", "--device %s: %s", a->device_s, ct_ctx_error(ctx));
        goto done;
    }
    const cc_config *cfg = cc_model_config(m);
    const bool roll = cc_config_is_roll(cfg);
    if (cfg->encoding != CC_ENC_MELODY && cfg->encoding != CC_ENC_PERFORMANCE && !roll) {
        cli_fail("sample", "%s: a %s model: its output is not MIDI, and this command writes MIDI", a->ckpt,
                 cc_encoding_name(cfg->encoding));
        goto done;
    }
    if (roll && (a->top_k != 0 || a->top_p != 1.0)) {
        rc = cli_usage("sample", "--top-k and --top-p choose among events; %s is a piano-roll model, which turns "
                       "each key on independently (use --temperature)", a->ckpt);
        goto done;
    }
    double qpm = a->qpm, qpb = 4;
    cc_encode_info info;
    memset(&info, 0, sizeof info);
    if (a->primer) {
        cm_error me;
        memset(&me, 0, sizeof me);
        if (cm_read_file(a->primer, &pf, &me) != CM_OK) {
            cli_fail("sample", "--primer: %s", me.message);
            goto done;
        }
        if (cc_encode_midi(cfg, pf, a->primer, &primer, &info, err, sizeof err) != CT_OK) {
            cli_fail("sample", "--primer: %s", err);
            goto done;
        }
        if (!a->qpm_set) qpm = fmin(fmax(info.qpm, 4), 1000);
        qpb = info.quarters_per_bar > 0 ? info.quarters_per_bar : 4;
        if (info.notes == 0 || primer.len == 0)
            fprintf(stderr, "cantor sample: warning: --primer %s has no notes to encode: starting from silence\n",
                    a->primer);
        if (info.polyphonic > 0)
            fprintf(stderr, "cantor sample: warning: --primer %s is polyphonic (%lld of its %lld notes start with "
                    "or over another); a melody model reads one line, so it was reduced to the highest note at "
                    "each onset (a note that starts while another sounds ends that one)\n", a->primer,
                    (long long)info.polyphonic, (long long)info.notes);
        if (info.moved > 0)
            fprintf(stderr, "cantor sample: warning: --primer %s: %lld notes moved by octaves into the model's "
                    "range %d..%d\n", a->primer, (long long)info.moved, cfg->min_pitch, cfg->max_pitch - 1);
        if (info.dropped > 0)
            fprintf(stderr, "cantor sample: warning: --primer %s: %lld notes outside the 88 piano keys left out\n",
                    a->primer, (long long)info.dropped);
    }
    int64_t steps = 0, time_target = 0;
    if ((rc = target_steps(a, cfg, qpm, qpb, &steps, &time_target)) != CLI_OK) goto done;
    rc = CLI_FAIL;

    /* the output names, checked before any work */
    const bool out_folder = !is_midi_name(a->out);
    const bool render_folder = a->render && !is_audio_name(a->render);
    if (out_folder && !ensure_folder("sample", "--out", a->out)) goto done;
    if (render_folder && !ensure_folder("sample", "--render", a->render)) goto done;

    cc_sample_opts so = cc_sample_defaults();
    so.temperature = (float)a->temperature;
    so.top_k = (int)a->top_k;
    so.top_p = (float)a->top_p;
    ct_rng rng;
    ct_rng_seed(&rng, (uint64_t)a->seed);
    s = cc_sampler_new(m, count, &so, &rng);
    if (!s) { cli_fail("sample", "%s", ct_ctx_error(ctx)); goto done; }
    ct_status st = primer.len == 0 ? CT_OK
                   : roll          ? cc_sampler_feed_frames(s, primer.frames, primer.len, false)
                                   : cc_sampler_feed_tokens(s, primer.tokens, primer.len, false);
    if (st != CT_OK) { cli_fail("sample", "--primer: %s", ct_ctx_error(ctx)); goto done; }
    const int64_t K = CC_ROLL_KEYS, total = primer.len + steps;
    glen = calloc((size_t)count, sizeof *glen);
    elapsed = calloc((size_t)count, sizeof *elapsed);
    if (roll) {
        gen_f = calloc((size_t)(count * total), (size_t)K);
        row_f = malloc((size_t)(count * K));
    } else {
        gen_t = calloc((size_t)(count * total), sizeof *gen_t);
        row_t = malloc(sizeof *row_t * (size_t)count);
    }
    if (!glen || !elapsed || (roll ? !gen_f || !row_f : !gen_t || !row_t)) {
        cli_fail("sample", "out of memory for %d pieces of %lld steps", count, (long long)total);
        goto done;
    }
    for (int b = 0; b < count && primer.len > 0; b++) {   /* each piece opens with the primer */
        if (roll) memcpy(gen_f + b * total * K, primer.frames, (size_t)(primer.len * K));
        else memcpy(gen_t + b * total, primer.tokens, sizeof *gen_t * (size_t)primer.len);
        glen[b] = primer.len;
    }
    const cm_perf_config pc = {(int)cfg->steps_per_second, cfg->max_shift_steps, cfg->num_velocity_bins};
    int running = count;
    for (int64_t t = 0; t < steps && running > 0 && st == CT_OK; t++) {
        st = roll ? cc_sampler_next_frames(s, row_f) : cc_sampler_next_tokens(s, row_t);
        for (int b = 0; st == CT_OK && b < count; b++) {
            if (time_target > 0 && elapsed[b] >= time_target) continue;   /* this piece is done */
            if (roll) memcpy(gen_f + (b * total + glen[b]) * K, row_f + b * K, (size_t)K);
            else gen_t[b * total + glen[b]] = row_t[b];
            glen[b]++;
            if (time_target > 0) {
                cm_perf_event ev = cm_perf_token_to_event(&pc, (int)row_t[b]);
                if (ev.type == CM_PERF_EV_TIME_SHIFT) elapsed[b] += ev.value;
                if (elapsed[b] >= time_target) running--;
            }
        }
    }
    if (st != CT_OK) {
        cli_fail("sample", "%s", ct_ctx_error(ctx));
        goto done;
    }
    char desc[256];
    cc_model_describe(m, desc, sizeof desc);
    for (int b = 0; b < count; b++) {
        if (time_target > 0 && elapsed[b] < time_target)
            fprintf(stderr, "cantor sample: warning: piece %d stopped after %lld events at %.2f s of the %.2f s "
                    "asked\n", b + 1, (long long)(glen[b] - primer.len), (double)elapsed[b] / pc.steps_per_second,
                    (double)time_target / pc.steps_per_second);
        cc_steps piece = {roll ? NULL : gen_t + b * total, roll ? gen_f + b * total * K : NULL, glen[b]};
        cm_file *f = cc_decode_midi(cfg, &piece, qpm, err, sizeof err);
        if (!f) {
            cli_fail("sample", "piece %d: %s", b + 1, err);
            goto done;
        }
        char text[4096 + 512];
        snprintf(text, sizeof text, "cantor sample seed=%lld piece=%d/%d temperature=%g top_k=%lld top_p=%g "
                 "length=%s qpm=%g primer=%s ckpt=%s", (long long)a->seed, b + 1, count, a->temperature,
                 (long long)a->top_k, a->top_p, a->length_s, qpm, a->primer ? a->primer : "none", a->ckpt);
        add_settings_text(f, text);
        char path[4096];
        piece_path(path, sizeof path, a->out, out_folder, ".mid", b + 1, count);
        cm_error me;
        memset(&me, 0, sizeof me);
        cm_status ws = cm_write_file(f, path, NULL, &me);
        double secs = 0;
        cm_notes nt;
        memset(&nt, 0, sizeof nt);
        if (ws == CM_OK && cm_notes_extract(f, NULL, &nt, NULL) == CM_OK) secs = nt.end_s;
        int64_t notes = nt.n_notes;
        cm_notes_free(&nt);
        cm_file_free(f);
        if (ws != CM_OK) {
            cli_fail("sample", "%s", me.message);
            goto done;
        }
        printf("%s: %lld %s", path, (long long)(glen[b] - primer.len),
               roll ? "frames" : cfg->encoding == CC_ENC_PERFORMANCE ? "events" : "steps");
        if (primer.len) printf(" after a %lld-step primer", (long long)primer.len);
        printf(", %lld notes, %.1f s at %g qpm (%s; seed %lld)\n", (long long)notes, secs, qpm, desc,
               (long long)a->seed);
        if (a->render) {
            char wav[4096];
            piece_path(wav, sizeof wav, a->render, render_folder, ".wav", b + 1, count);
            ca_render_opts ro;
            memset(&ro, 0, sizeof ro);
            ro.renderer = a->renderer;
            ca_render_info ri;
            ca_error ae;
            memset(&ae, 0, sizeof ae);
            if (ca_render_file(path, wav, &ro, &ri, &ae) != CA_OK) {
                    cli_fail("sample", "--render: %s", ae.message[0] ? ae.message : ca_strerror(ae.status));
                goto done;
            }
            printf("%s: %.1f s of audio (%s)\n", wav, (double)ri.frames / ri.rate, ca_renderer_name(ri.renderer));
        }
    }
    rc = CLI_OK;
done:
    cc_sampler_free(s);
    cc_steps_free(&primer);
    cm_file_free(pf);
    free(gen_t);
    free(row_t);
    free(gen_f);
    free(row_f);
    free(glen);
    free(elapsed);
    ct_module_free(m);
    ct_ctx_free(ctx);
    return rc;
}

const cli_cmd cli_cmd_sample = {"sample", "compose with a trained checkpoint and write MIDI (and audio)", sample_run,
                                sample_help};
