/* apps/cmd_train.c — `cantor train`: train a composer on a corpus file (a first version: CPU,
 * fixed number of steps, validation, metrics.jsonl, an atomic checkpoint at the end and on
 * Ctrl-C). Resume, schedules and the progress bar come with the app issue. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "apps/cli.h"
#include "corpora/dataset.h"
#include "engine/cantor.h"
#include "models/composer.h"

static volatile sig_atomic_t g_stop;   /* set by SIGINT/SIGTERM: save and exit cleanly */
static void on_signal(int sig) { (void)sig; g_stop = 1; }

static void train_help(FILE *f) {
    fprintf(f,
            "usage: cantor train --corpus FILE --out RUN_DIR [options]\n"
            "\n"
            "Trains a composer (embedding -> RNN -> linear, or 88-key frames -> RNN -> linear)\n"
            "on the train split of a corpus file (cantor corpus build), validates on its valid\n"
            "split, appends metrics to RUN_DIR/metrics.jsonl and writes RUN_DIR/model.safetensors\n"
            "(also on Ctrl-C). The model's encoding comes from the corpus.\n"
            "\n"
            "  --corpus FILE       the corpus file (required)\n"
            "  --out RUN_DIR       where the checkpoint and metrics go (required; created)\n"
            "  --cell NAME         lstm, gru or rnn (default lstm)\n"
            "  --layers N          RNN layers (default 2)\n"
            "  --hidden N          RNN hidden size (default 256)\n"
            "  --embed N           token embedding size (default 64)\n"
            "  --dropout P         dropout between layers and on the output (default 0)\n"
            "  --batch N           sequences per batch (default 32)\n"
            "  --window N          training window length in steps (default 128)\n"
            "  --steps N           optimizer steps (default 300)\n"
            "  --lr X              Adam learning rate (default 0.001)\n"
            "  --clip X            gradient clipping by global norm, 0 = off (default 1.0)\n"
            "  --seed N            seed of the weights, batches and dropout (default 1234)\n"
            "  --workers N         data loader threads (default 2)\n"
            "  --valid-every N     validate every N steps (default 100)\n"
            "  --device NAME       cpu (the CUDA backend is not built yet) (default cpu)\n"
            "  -h, --help          this help\n");
}

typedef struct train_opts {
    const char *corpus, *out, *device;
    cc_cell cell;
    int64_t layers, hidden, embed, batch, window, steps, seed, workers, valid_every;
    double dropout, lr, clip;
} train_opts;

static cc_config config_for(const cp_encoding *e, const train_opts *o) {
    cc_encoding enc = e->kind == CP_MELODY ? CC_ENC_MELODY : e->kind == CP_PERFORMANCE ? CC_ENC_PERFORMANCE
                                                                                         : CC_ENC_PIANOROLL;
    cc_config c = cc_config_default(enc);
    if (enc == CC_ENC_MELODY) {
        c.min_pitch = e->melody.range.min_pitch;
        c.max_pitch = e->melody.range.max_pitch;
        c.steps_per_quarter = e->melody.steps_per_quarter;
    } else if (enc == CC_ENC_PERFORMANCE) {
        c.steps_per_second = e->perf.config.steps_per_second;
        c.max_shift_steps = e->perf.config.max_shift_steps;
        c.num_velocity_bins = e->perf.config.num_velocity_bins;
    } else {
        c.steps_per_quarter = e->roll_grid.steps_per_quarter;
        c.steps_per_second = e->roll_grid.steps_per_second;
    }
    c.vocab = 0;
    c.cell = o->cell;
    c.layers = (int)o->layers;
    c.hidden = o->hidden;
    c.embed = enc == CC_ENC_PIANOROLL ? 0 : o->embed;
    c.dropout = (float)o->dropout;
    return c;
}

/* Mean loss over up to max_batches batches of the valid split (no graph). */
static double validate(ct_ctx *ctx, ct_module *m, ct_dataloader *dl, int max_batches) {
    bool was = ct_set_grad_enabled(ctx, false);
    ct_module_train(m, false);
    double sum = 0;
    int64_t count = 0;
    for (int i = 0; i < max_batches; i++) {
        ct_scope_begin(ctx);
        const ct_batch *b = ct_dataloader_next(dl);
        ct_tensor *loss = NULL;
        int64_t n = 0;
        if (b && cc_loss(m, b, -100, NULL, &loss, &n) == CT_OK && n > 0) {
            sum += ct_item(loss) * (double)n;
            count += n;
        }
        ct_scope_end(ctx);
        if (!b) break;
    }
    ct_module_train(m, true);
    ct_set_grad_enabled(ctx, was);
    return count ? sum / (double)count : NAN;
}

static int train_run(int argc, char **argv) {
    static const struct option opts[] = {
        {"corpus", required_argument, NULL, 'c'},  {"out", required_argument, NULL, 'o'},
        {"cell", required_argument, NULL, 'C'},    {"layers", required_argument, NULL, 'L'},
        {"hidden", required_argument, NULL, 'H'},  {"embed", required_argument, NULL, 'E'},
        {"dropout", required_argument, NULL, 'd'}, {"batch", required_argument, NULL, 'b'},
        {"window", required_argument, NULL, 'w'},  {"steps", required_argument, NULL, 's'},
        {"lr", required_argument, NULL, 'l'},      {"clip", required_argument, NULL, 'k'},
        {"seed", required_argument, NULL, 'S'},    {"workers", required_argument, NULL, 'W'},
        {"valid-every", required_argument, NULL, 'v'}, {"device", required_argument, NULL, 'D'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    train_opts o = {NULL, NULL, "cpu", CC_LSTM, 2, 256, 64, 32, 128, 300, 1234, 2, 100, 0.0, 1e-3, 1.0};
    int c, cell;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': o.corpus = optarg; break;
        case 'o': o.out = optarg; break;
        case 'C':
            if ((cell = cc_cell_from_name(optarg)) < 0)
                return cli_usage("train", "--cell '%s': expected lstm, gru or rnn", optarg);
            o.cell = (cc_cell)cell;
            break;
        case 'L': if (!cli_int("train", "--layers", optarg, 1, 16, &o.layers)) return CLI_USAGE; break;
        case 'H': if (!cli_int("train", "--hidden", optarg, 1, 8192, &o.hidden)) return CLI_USAGE; break;
        case 'E': if (!cli_int("train", "--embed", optarg, 1, 8192, &o.embed)) return CLI_USAGE; break;
        case 'd': if (!cli_float("train", "--dropout", optarg, 0, 0.95, &o.dropout)) return CLI_USAGE; break;
        case 'b': if (!cli_int("train", "--batch", optarg, 1, 4096, &o.batch)) return CLI_USAGE; break;
        case 'w': if (!cli_int("train", "--window", optarg, 2, 1 << 20, &o.window)) return CLI_USAGE; break;
        case 's': if (!cli_int("train", "--steps", optarg, 1, INT64_MAX / 2, &o.steps)) return CLI_USAGE; break;
        case 'l': if (!cli_float("train", "--lr", optarg, 1e-9, 10, &o.lr)) return CLI_USAGE; break;
        case 'k': if (!cli_float("train", "--clip", optarg, 0, 1e6, &o.clip)) return CLI_USAGE; break;
        case 'S': if (!cli_int("train", "--seed", optarg, 0, INT64_MAX, &o.seed)) return CLI_USAGE; break;
        case 'W': if (!cli_int("train", "--workers", optarg, 0, 64, &o.workers)) return CLI_USAGE; break;
        case 'v': if (!cli_int("train", "--valid-every", optarg, 1, INT64_MAX / 2, &o.valid_every)) return CLI_USAGE; break;
        case 'D': o.device = optarg; break;
        case 'h': train_help(stdout); return CLI_OK;
        default: return cli_bad_option("train", argv[optind - 1]);
        }
    }
    if (cli_check_positionals("train", argc, argv, optind)) return CLI_USAGE;
    if (optind < argc) return cli_bad_option("train", argv[optind]);
    if (!o.corpus) return cli_usage("train", "--corpus FILE is required (make one with 'cantor corpus build')");
    if (!o.out) return cli_usage("train", "--out RUN_DIR is required");
    if (strcmp(o.device, "cpu") != 0)
        return cli_usage("train", "--device '%s': this build trains on cpu only (the CUDA backend is not built yet)", o.device);
    if (mkdir(o.out, 0755) != 0 && errno != EEXIST)
        return cli_fail("train", "%s: cannot create the run folder: %s", o.out, strerror(errno));

    ct_ctx *ctx = ct_ctx_new();
    int rc = CLI_FAIL;
    cp_dataset *tr = cp_dataset_open(ctx, o.corpus, CP_TRAIN), *va = NULL;
    ct_module *m = NULL;
    ct_optim *opt = NULL;
    ct_dataloader *dl = NULL, *vdl = NULL;
    FILE *metrics = NULL;
    if (!tr) goto done;
    va = cp_dataset_open(ctx, o.corpus, CP_VALID);
    if (!va) goto done;
    const cp_corpus *corpus = cp_dataset_corpus(tr);
    cc_config cfg = config_for(cp_corpus_encoding(corpus), &o);
    char err[512];
    if (cc_config_resolve(&cfg, err, sizeof err) != CT_OK) { cli_fail("train", "%s", err); goto done; }
    ct_rng rng;
    ct_rng_seed(&rng, (uint64_t)o.seed);
    m = cc_model_new(ctx, &rng, &cfg);
    if (!m) goto done;
    opt = ct_adam_new(m, ct_adam_defaults(o.lr));
    if (!opt) goto done;
    char desc[256];
    cc_model_describe(m, desc, sizeof desc);
    printf("device: cpu; BLAS: %s, %d threads\n", ct_blas_core(), ct_blas_threads());
    printf("model: %s\n", desc);
    printf("corpus: %s: train %lld pieces, valid %lld pieces\n", o.corpus,
           (long long)cp_dataset_len(tr), (long long)cp_dataset_len(va));
    if (cp_dataset_len(tr) == 0) { cli_fail("train", "%s: the train split is empty", o.corpus); goto done; }
    if (cp_dataset_len(tr) < 10) fprintf(stderr, "cantor train: warning: the train split has only %lld pieces\n", (long long)cp_dataset_len(tr));
    if (cp_dataset_len(va) == 0) fprintf(stderr, "cantor train: warning: the valid split is empty: no validation loss\n");

    ct_dataloader_opts lo = ct_dataloader_defaults();
    lo.batch_size = (int)o.batch;
    lo.sampler = CT_SAMPLER_RANDOM;
    lo.seed = (uint64_t)o.seed;
    lo.workers = (int)o.workers;
    lo.collate.targets = true;
    lo.collate.max_len = o.window;
    ct_dataset tds = cp_dataset_as(tr), vds = cp_dataset_as(va);
    dl = ct_dataloader_new(ctx, &tds, &lo);
    if (!dl) goto done;
    if (cp_dataset_len(va) > 0) {
        lo.sampler = CT_SAMPLER_SEQUENTIAL;
        lo.workers = 0;
        vdl = ct_dataloader_new(ctx, &vds, &lo);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/metrics.jsonl", o.out);
    metrics = fopen(path, "a");
    if (!metrics) { cli_fail("train", "%s: %s", path, strerror(errno)); goto done; }

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int64_t tokens = 0, skipped = 0;
    for (int64_t step = 1; step <= o.steps && !g_stop; step++) {
        ct_scope_begin(ctx);
        const ct_batch *b = ct_dataloader_next(dl);
        if (!b && ct_dataloader_status(dl) == CT_OK) b = ct_dataloader_next(dl);   /* a new epoch */
        if (!b) { ct_scope_end(ctx); cli_fail("train", "data: %s", ct_ctx_error(ctx)); goto done; }
        ct_tensor *loss = NULL;
        int64_t n = 0;
        ct_optim_zero_grad(opt);
        if (cc_loss(m, b, -100, &rng, &loss, &n) != CT_OK || ct_backward(loss) != CT_OK) {
            ct_scope_end(ctx);
            cli_fail("train", "%s", ct_ctx_error(ctx));
            goto done;
        }
        double norm = 0;
        bool ok = o.clip > 0 ? ct_clip_grad_norm(m, (float)o.clip, &norm) == CT_OK : isfinite(ct_item(loss));
        if (ok) ct_optim_step(opt);
        else { skipped++; fprintf(stderr, "cantor train: step %lld: non-finite gradient norm, step skipped\n", (long long)step); ct_ctx_clear_error(ctx); }
        tokens += n;
        double lv = ct_item(loss);
        ct_scope_end(ctx);
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double el = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        fprintf(metrics, "{\"step\": %lld, \"time_s\": %.3f, \"loss\": %.6f, \"grad_norm\": %.6f, \"lr\": %g, \"tokens_per_s\": %.1f}\n",
                (long long)step, el, lv, norm, o.lr, tokens / el);
        if (step == 1 || step % 10 == 0 || step == o.steps)
            printf("step %5lld  loss %.4f  grad norm %.3f  %.0f tokens/s  ETA %.0f s\n", (long long)step, lv, norm,
                   tokens / el, el / (double)step * (double)(o.steps - step));
        if (vdl && (step % o.valid_every == 0 || step == o.steps)) {
            double vl = validate(ctx, m, vdl, 20);
            ct_dataloader_free(vdl);
            vdl = ct_dataloader_new(ctx, &vds, &lo);            /* from the start next time */
            printf("step %5lld  valid loss %.4f\n", (long long)step, vl);
            fprintf(metrics, "{\"step\": %lld, \"valid_loss\": %.6f}\n", (long long)step, vl);
        }
        fflush(metrics);
    }
    snprintf(path, sizeof path, "%s/model.safetensors", o.out);
    char seed_s[32];
    snprintf(seed_s, sizeof seed_s, "%lld", (long long)o.seed);
    const char *keys[] = {"seed", "corpus"}, *vals[] = {seed_s, o.corpus};
    if (cc_save(path, m, 2, keys, vals) != CT_OK) { cli_fail("train", "%s", ct_ctx_error(ctx)); goto done; }
    printf("%s%s (%lld steps skipped)\n", g_stop ? "interrupted: saved " : "saved ", path, (long long)skipped);
    rc = CLI_OK;
done:
    if (rc != CLI_OK && ct_ctx_status(ctx) != CT_OK && !metrics) cli_fail("train", "%s", ct_ctx_error(ctx));
    if (metrics) fclose(metrics);
    ct_dataloader_free(dl);
    ct_dataloader_free(vdl);
    ct_optim_free(opt);
    ct_module_free(m);
    cp_dataset_free(tr);
    cp_dataset_free(va);
    ct_ctx_free(ctx);
    return rc;
}

const cli_cmd cli_cmd_train = {"train", "train a composer on a corpus file", train_run, train_help};
