/* apps/cmd_sample.c — `cantor sample`: a checkpoint writes new music to a MIDI file (and,
 * with --render, to audio). A first version: one piece, no primer yet. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "apps/cli.h"
#include "audio/melody.h"
#include "audio/performance.h"
#include "audio/pianoroll.h"
#include "audio/render.h"
#include "engine/cantor.h"
#include "models/composer.h"
#include "models/sampler.h"

static void sample_help(FILE *f) {
    fprintf(f,
            "usage: cantor sample --ckpt FILE --out FILE.mid [options]\n"
            "\n"
            "Composes a piece with a trained composer (any encoding; the checkpoint describes\n"
            "itself) and writes it as a MIDI file. Runs on the CPU whatever trained it.\n"
            "\n"
            "  --ckpt FILE        a model.safetensors written by cantor train (required)\n"
            "  --out FILE.mid     the MIDI file to write (required)\n"
            "  --length N         steps to generate (default 256)\n"
            "  --temperature T    0 = greedy, higher = more adventurous (default 1.0)\n"
            "  --top-k K          sample among the K likeliest events, 0 = all (default 0)\n"
            "  --top-p P          nucleus sampling, 1 = off (default 1.0)\n"
            "  --seed N           seed of the sampling (default 1234; written into the MIDI file)\n"
            "  --qpm Q            tempo in quarter notes per minute (default 120)\n"
            "  --render FILE      also render the piece to FILE.wav|.flac|.ogg\n"
            "  -h, --help         this help\n");
}

static int sample_run(int argc, char **argv) {
    static const struct option opts[] = {
        {"ckpt", required_argument, NULL, 'c'},   {"out", required_argument, NULL, 'o'},
        {"length", required_argument, NULL, 'n'}, {"temperature", required_argument, NULL, 't'},
        {"top-k", required_argument, NULL, 'k'},  {"top-p", required_argument, NULL, 'p'},
        {"seed", required_argument, NULL, 's'},   {"qpm", required_argument, NULL, 'q'},
        {"render", required_argument, NULL, 'r'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *ckpt = NULL, *out = NULL, *render = NULL;
    int64_t length = 256, top_k = 0, seed = 1234;
    double temperature = 1.0, top_p = 1.0, qpm = 120;
    int c;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': ckpt = optarg; break;
        case 'o': out = optarg; break;
        case 'n': if (!cli_int("sample", "--length", optarg, 1, 1 << 22, &length)) return CLI_USAGE; break;
        case 't': if (!cli_float("sample", "--temperature", optarg, 0, 100, &temperature)) return CLI_USAGE; break;
        case 'k': if (!cli_int("sample", "--top-k", optarg, 0, 1 << 20, &top_k)) return CLI_USAGE; break;
        case 'p': if (!cli_float("sample", "--top-p", optarg, 1e-6, 1, &top_p)) return CLI_USAGE; break;
        case 's': if (!cli_int("sample", "--seed", optarg, 0, INT64_MAX, &seed)) return CLI_USAGE; break;
        case 'q': if (!cli_float("sample", "--qpm", optarg, 4, 1000, &qpm)) return CLI_USAGE; break;
        case 'r': render = optarg; break;
        case 'h': sample_help(stdout); return CLI_OK;
        default: return cli_bad_option("sample", argv[optind - 1]);
        }
    }
    if (cli_check_positionals("sample", argc, argv, optind)) return CLI_USAGE;
    if (optind < argc) return cli_bad_option("sample", argv[optind]);
    if (!ckpt || !out) return cli_usage("sample", "--ckpt FILE and --out FILE.mid are required");
    if (!cli_ends_with(out, ".mid") && !cli_ends_with(out, ".midi"))
        return cli_usage("sample", "--out '%s': expected a .mid file", out);

    ct_ctx *ctx = ct_ctx_new();
    ct_ctx_set_error_handler(ctx, NULL, NULL);   /* we print the message ourselves */
    int rc = CLI_FAIL;
    int64_t *tokens = NULL;
    int32_t *t32 = NULL;
    uint8_t *frames = NULL;
    cm_file *f = NULL;
    cm_error err;
    memset(&err, 0, sizeof err);
    ct_module *m = cc_load(ctx, ckpt);
    if (!m) { cli_fail("sample", "%s", ct_ctx_error(ctx)); goto done; }
    const cc_config *cfg = cc_model_config(m);
    cc_sample_opts so = cc_sample_defaults();
    so.temperature = (float)temperature;
    so.top_k = (int)top_k;
    so.top_p = (float)top_p;
    ct_rng rng;
    ct_rng_seed(&rng, (uint64_t)seed);
    if (cfg->encoding == CC_ENC_PIANOROLL) {
        frames = calloc((size_t)length, CM_ROLL_NUM_KEYS);
        if (!frames || cc_sample_frames(m, &so, &rng, NULL, 0, 1, length, frames) != CT_OK) {
            cli_fail("sample", "%s", ct_ctx_error(ctx));
            goto done;
        }
        cm_roll roll = {frames, length};
        cm_roll_grid grid = {cfg->steps_per_second, cfg->steps_per_quarter};
        cm_roll_render rr = cm_roll_render_default();
        rr.qpm = qpm;
        cm_notes notes;
        memset(&notes, 0, sizeof notes);
        cm_tempo_map tm;
        memset(&tm, 0, sizeof tm);
        if (cm_roll_to_notes(&roll, grid, &rr, &notes, &err) == CM_OK &&
            cm_tempo_map_init_simple(&tm, cm_division_ppq(rr.ppq), (uint32_t)(60e6 / qpm), 4, 4) == CM_OK)
            f = cm_file_from_notes(&notes, &tm, &err);
        cm_notes_free(&notes);
        cm_tempo_map_free(&tm);
    } else if (cfg->encoding == CC_ENC_MELODY || cfg->encoding == CC_ENC_PERFORMANCE) {
        tokens = calloc((size_t)length, sizeof *tokens);
        t32 = calloc((size_t)length, sizeof *t32);
        if (!tokens || !t32 || cc_sample_tokens(m, &so, &rng, NULL, 0, 1, length, tokens) != CT_OK) {
            cli_fail("sample", "%s", ct_ctx_error(ctx));
            goto done;
        }
        for (int64_t i = 0; i < length; i++) t32[i] = (int32_t)tokens[i];
        if (cfg->encoding == CC_ENC_MELODY) {
            cm_melody mel;
            memset(&mel, 0, sizeof mel);
            cm_melody_encoding enc = {cfg->min_pitch, cfg->max_pitch};
            cm_melody_render mr = cm_melody_render_default();
            mr.qpm = qpm;
            if (cm_melody_decode(t32, length, enc, cfg->steps_per_quarter, &mel, &err) == CM_OK)
                f = cm_melody_to_file(&mel, &mr, &err);
            cm_melody_free(&mel);
        } else {
            cm_perf_config pc = {(int)cfg->steps_per_second, cfg->max_shift_steps, cfg->num_velocity_bins};
            cm_perf_render pr = cm_perf_render_default();
            pr.qpm = qpm;
            f = cm_perf_to_file(t32, length, &pc, &pr, &err);
        }
    } else {
        cli_fail("sample", "%s: sampling a %s model is not supported by this command yet", ckpt,
                 cc_encoding_name(cfg->encoding));
        goto done;
    }
    if (!f) { cli_fail("sample", "cannot make MIDI from the sample: %s", err.message); goto done; }
    char meta[64];
    snprintf(meta, sizeof meta, "cantor seed %lld", (long long)seed);
    cm_track_add_text(&f->tracks[0], 0, 0x01, meta);         /* a text event: the seed */
    if (cm_write_file(f, out, NULL, &err) != CM_OK) { cli_fail("sample", "%s", err.message); goto done; }
    char desc[256];
    cc_model_describe(m, desc, sizeof desc);
    printf("%s: %lld steps from %s (%s), seed %lld\n", out, (long long)length, ckpt, desc, (long long)seed);
    if (render) {
        ca_render_info info;
        ca_error aerr;
        memset(&aerr, 0, sizeof aerr);
        if (ca_render_file(out, render, NULL, &info, &aerr) != CA_OK) { cli_fail("sample", "%s", aerr.message); goto done; }
        printf("%s: %.1f s of audio (%s)\n", render, (double)info.frames / info.rate, ca_renderer_name(info.renderer));
    }
    rc = CLI_OK;
done:
    cm_file_free(f);
    free(tokens);
    free(t32);
    free(frames);
    ct_module_free(m);
    ct_ctx_free(ctx);
    return rc;
}

const cli_cmd cli_cmd_sample = {"sample", "compose with a trained checkpoint and write MIDI", sample_run, sample_help};
