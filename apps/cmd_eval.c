/* apps/cmd_eval.c — `cantor eval`: how well a checkpoint predicts one split of a corpus file,
 * as the published tables count it (models/eval.h): NLL per token and perplexity for token
 * models, NLL per time step summed over the 88 keys for piano rolls. */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apps/cli.h"
#include "corpora/dataset.h"
#include "engine/cantor.h"
#include "models/composer.h"
#include "models/eval.h"

static void eval_help(FILE *f) {
    fprintf(f,
            "usage: cantor eval --ckpt FILE --corpus FILE [--split train|valid|test] [options]\n"
            "\n"
            "Scores a trained composer on every piece of one split of a corpus file: the model\n"
            "reads steps 1..n-1 of each piece and predicts steps 2..n (the first step is never\n"
            "scored), in evaluation mode (no dropout), over whole pieces (no random windows).\n"
            "It prints the total negative log-likelihood divided by the number of predictions:\n"
            "  token models (melody, performance)  NLL per token (nats) and perplexity = exp(NLL)\n"
            "  piano roll                          NLL per time step: the Bernoulli NLL summed\n"
            "                                      over the 88 keys, total over all predicted\n"
            "                                      steps / their number (the figure of the\n"
            "                                      polyphonic benchmark tables)\n"
            "The result is deterministic. A checkpoint trained on any device evaluates on any\n"
            "device (on a GPU the figures agree with the CPU's to float rounding).\n"
            "\n"
            "  --ckpt FILE       a model.safetensors written by cantor train (required)\n"
            "  --corpus FILE     a corpus file in the model's encoding (required)\n"
            "  --split NAME      train, valid, test or all (default valid)\n"
            "  --batch N         pieces per forward pass (default 16)\n"
            "  --chunk N         steps per forward call, the state carried across (default 512;\n"
            "                    bounds memory on long pieces). Neither changes the result\n"
            "                    beyond float rounding\n"
            "  --json            print one JSON line instead of text\n"
            "  --device NAME     cpu, cuda or cuda:N: where the model runs (default cpu; a CUDA\n"
            "                    build on a machine with a GPU). A device that is not there\n"
            "                    exits 1, a malformed name 2\n"
            "  -h, --help        this help\n");
}

/* Writes s as a JSON string (quotes included). */
static void json_str(FILE *f, const char *s) {
    const size_t len = strlen(s), n = cli_json_escape(NULL, 0, s, len) + 1;
    char *buf = malloc(n);
    if (!buf) { fputs("null", f); return; }
    cli_json_escape(buf, n, s, len);
    fputs(buf, f);
    free(buf);
}

/* Whether the corpus's encoding is the model's: CLI_OK, or CLI_FAIL after a message. Grid
 * differences that leave the data readable are warnings. */
static int check_encoding(const char *ckpt, const char *corpus, const cc_config *c, const cp_encoding *e) {
    const cc_encoding want = e->kind == CP_MELODY ? CC_ENC_MELODY
                             : e->kind == CP_PERFORMANCE ? CC_ENC_PERFORMANCE
                             : e->kind == CP_PIANOROLL ? CC_ENC_PIANOROLL : CC_ENC_COUNT;
    if (want != c->encoding)
        return cli_fail("eval", "%s is a %s model but %s is a %s corpus: evaluate it on a corpus "
                        "built with --encoding %s", ckpt, cc_encoding_name(c->encoding), corpus,
                        cp_encoding_name(e->kind), cc_encoding_name(c->encoding));
    if (c->encoding == CC_ENC_MELODY) {
        if (e->melody.range.min_pitch != c->min_pitch || e->melody.range.max_pitch != c->max_pitch)
            return cli_fail("eval", "%s: melody pitches %d..%d, but the model's are %d..%d: the "
                            "tokens mean different notes", corpus, e->melody.range.min_pitch,
                            e->melody.range.max_pitch, c->min_pitch, c->max_pitch);
        if (e->melody.steps_per_quarter != c->steps_per_quarter)
            fprintf(stderr, "cantor eval: warning: %s has %d steps per quarter, the model was "
                    "trained on %d\n", corpus, e->melody.steps_per_quarter, c->steps_per_quarter);
    } else if (c->encoding == CC_ENC_PERFORMANCE) {
        const cm_perf_config *p = &e->perf.config;
        if (p->steps_per_second != (int)c->steps_per_second || p->max_shift_steps != c->max_shift_steps ||
            p->num_velocity_bins != c->num_velocity_bins)
            return cli_fail("eval", "%s: performance events at %d steps/s, %d shift steps, %d "
                            "velocity bins, but the model's are %g, %d, %d: the tokens mean "
                            "different events", corpus, p->steps_per_second, p->max_shift_steps,
                            p->num_velocity_bins, c->steps_per_second, c->max_shift_steps,
                            c->num_velocity_bins);
    } else if (e->roll_grid.steps_per_quarter != c->steps_per_quarter ||
               e->roll_grid.steps_per_second != c->steps_per_second) {
        fprintf(stderr, "cantor eval: warning: %s's piano-roll grid (%d steps/quarter, %g "
                "steps/s) is not the model's (%d, %g)\n", corpus, e->roll_grid.steps_per_quarter,
                e->roll_grid.steps_per_second, c->steps_per_quarter, c->steps_per_second);
    }
    return CLI_OK;
}

static int eval_run(int argc, char **argv) {
    static const struct option opts[] = {
        {"ckpt", required_argument, NULL, 'c'},  {"corpus", required_argument, NULL, 'C'},
        {"split", required_argument, NULL, 's'}, {"batch", required_argument, NULL, 'b'},
        {"chunk", required_argument, NULL, 'k'}, {"json", no_argument, NULL, 'j'},
        {"device", required_argument, NULL, 'd'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *device_s = "cpu";
    ct_device device = CT_DEVICE_CPU;
    const char *ckpt = NULL, *corpus_path = NULL;
    cp_split split = CP_VALID;
    int64_t batch = 16, chunk = 512;
    bool json = false;
    int c;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': ckpt = optarg; break;
        case 'C': corpus_path = optarg; break;
        case 's':
            if (!cp_split_parse(optarg, &split))
                return cli_usage("eval", "--split '%s': expected train, valid, test or all", optarg);
            break;
        case 'b': if (!cli_int("eval", "--batch", optarg, 1, 65536, &batch)) return CLI_USAGE; break;
        case 'k': if (!cli_int("eval", "--chunk", optarg, 1, 1 << 24, &chunk)) return CLI_USAGE; break;
        case 'j': json = true; break;
        case 'd': device_s = optarg; break;
        case 'h': eval_help(stdout); return CLI_OK;
        default:
            if (optopt == 'd') return cli_usage("eval", "--device needs a value (cpu, cuda or cuda:N)");
            return cli_bad_option("eval", argv[optind - 1]);
        }
    }
    if (cli_check_positionals("eval", argc, argv, optind)) return CLI_USAGE;
    if (optind < argc) return cli_bad_option("eval", argv[optind]);
    if (!ckpt) return cli_usage("eval", "--ckpt FILE is required (the model.safetensors of a run)");
    if (!corpus_path) return cli_usage("eval", "--corpus FILE is required (a corpus file: cantor corpus build)");
    int drc = cli_device("eval", device_s, "evaluate on the CPU with --device cpu (the default)", false, &device);
    if (drc != CLI_OK) return drc;

    ct_ctx *ctx = ct_ctx_new();
    ct_ctx_set_error_handler(ctx, NULL, NULL);   /* we print the message ourselves */
    int rc = CLI_FAIL;
    cp_dataset *d = NULL;
    ct_module *m = cc_load(ctx, ckpt);
    if (!m) {
        cli_fail("eval", "%s\n(--ckpt takes the model.safetensors that cantor train writes in its "
                 "run folder)", ct_ctx_error(ctx));
        goto done;
    }
    if (device.type != CT_CPU && ct_module_to(m, device) != CT_OK) {
        cli_fail("eval", "--device %s: %s", device_s, ct_ctx_error(ctx));
        goto done;
    }
    d = cp_dataset_open(ctx, corpus_path, split);
    if (!d) {
        cli_fail("eval", "%s\n(--corpus takes a file written by cantor corpus build)", ct_ctx_error(ctx));
        goto done;
    }
    const cc_config *cfg = cc_model_config(m);
    if (check_encoding(ckpt, corpus_path, cfg, cp_corpus_encoding(cp_dataset_corpus(d))) != CLI_OK) goto done;
    if (cp_dataset_len(d) == 0) {
        cli_fail("eval", "%s: the %s split has no pieces (try --split %s)", corpus_path,
                 cp_split_name(split), split == CP_VALID ? "train" : "valid");
        goto done;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ct_dataset ds = cp_dataset_as(d);
    cc_eval_opts eo = cc_eval_defaults();
    eo.batch = batch;
    eo.chunk = chunk;
    cc_eval_result r;
    if (cc_eval_dataset(m, &ds, &eo, &r) != CT_OK) { cli_fail("eval", "%s", ct_ctx_error(ctx)); goto done; }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (r.count == 0) {
        cli_fail("eval", "%s: no piece of the %s split has 2 steps or more: nothing to predict",
                 corpus_path, cp_split_name(split));
        goto done;
    }
    const bool roll = cc_config_is_roll(cfg);
    char desc[256];
    cc_config_describe(cfg, desc, sizeof desc);
    if (json) {
        printf("{\"ckpt\": ");
        json_str(stdout, ckpt);
        printf(", \"corpus\": ");
        json_str(stdout, corpus_path);
        printf(", \"split\": \"%s\", \"model\": ", cp_split_name(split));
        json_str(stdout, desc);
        printf(", \"encoding\": \"%s\", \"unit\": \"%s\", \"pieces\": %lld, \"too_short\": %lld, "
               "\"count\": %lld, \"nll_sum\": %.9g, \"nll\": %.9g, \"perplexity\": %.9g, "
               "\"seconds\": %.3f}\n", cc_encoding_name(cfg->encoding), roll ? "step" : "token",
               (long long)r.pieces, (long long)r.too_short, (long long)r.count, r.nll_sum, r.nll,
               r.perplexity, secs);
    } else {
        printf("model:  %s (%s)\n", ckpt, desc);
        printf("corpus: %s, %s split: %lld pieces, %lld %s predicted", corpus_path, cp_split_name(split),
               (long long)r.pieces, (long long)r.count, roll ? "time steps" : "tokens");
        if (r.too_short) printf(" (%lld pieces of one step skipped)", (long long)r.too_short);
        printf("\n");
        if (roll)
            printf("NLL %.4f nats per time step (Bernoulli, summed over the 88 keys; %.5f per key), "
                   "perplexity %.4g\n", r.nll, r.nll / CC_ROLL_KEYS, r.perplexity);
        else
            printf("NLL %.4f nats per token (%.4f bits), perplexity %.3f\n", r.nll, r.nll / log(2.0),
                   r.perplexity);
        printf("(%.2f s)\n", secs);
    }
    rc = CLI_OK;
done:
    ct_module_free(m);
    cp_dataset_free(d);
    ct_ctx_free(ctx);
    return rc;
}

const cli_cmd cli_cmd_eval = {"eval", "evaluate a checkpoint on a corpus split (NLL, perplexity)", eval_run, eval_help};
