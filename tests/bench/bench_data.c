/* tests/bench/bench_data.c — the data loader's throughput (not a test: it measures).
 *
 * A synthetic corpus (until the MIDI issue's corpus files land): `items` token sequences of
 * skewed lengths whose get costs about --cost-us microseconds of real computation per item
 * (as parsing/encoding a piece would), a composed transform (random crop + a user-defined
 * token shift), next-step targets in windows of --window steps, batches of --batch.
 *
 * For each worker count (default 0, 1, 2) it reports
 *   - loader only: batches per second when the caller does nothing else;
 *   - with a simulated training step of --step-us microseconds of computation in the caller's
 *     thread: steps per second and the share of the time spent waiting in ct_dataloader_next
 *     (the goal: under 2 % with workers on).
 * Prints a table, or one JSON line per worker count with --json.
 *
 * usage: bench_data [--items N] [--batch N] [--window N] [--cost-us US] [--step-us US]
 *                   [--batches N] [--workers LIST] [--json] [--corpus FILE]
 * --corpus FILE reads the train split of a corpus file (cantor corpus build) instead of the
 * synthetic items, with the music augmentations of corpora/transforms.h in the workers.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "corpora/dataset.h"
#include "corpora/transforms.h"
#include "engine/cantor.h"
#include "engine/data.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Real work the optimiser cannot drop: `units` rounds of a small float recurrence. */
static volatile float sink;
static float burn(uint64_t units, float x) {
    for (uint64_t i = 0; i < units; i++) x = x * 0.999f + sinf(x) * 0.001f + 1e-3f;
    return x;
}

static double cpu_s(void) {   /* this thread's CPU time: calibration ignores other load */
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* How many units take `us` microseconds of CPU time on this machine. */
static uint64_t calibrate(double us) {
    if (us <= 0) return 0;
    uint64_t n = 1000;
    double t;
    for (;;) {
        double t0 = cpu_s();
        sink = burn(n, 0.5f);
        t = cpu_s() - t0;
        if (t > 0.05) break;
        n *= 2;
    }
    return (uint64_t)((double)n * (us * 1e-6) / t) + 1;
}

typedef struct synth {
    int64_t n;
    int64_t *lens;
    uint64_t units;   /* cost per item */
} synth;

static int64_t synth_len(void *self) { return ((synth *)self)->n; }
static int64_t synth_item_len(void *self, int64_t i) { return ((synth *)self)->lens[i]; }

static ct_status synth_get(void *self, int64_t i, ct_data_item *out, ct_rng *rng) {
    synth *s = self;
    ct_status st = ct_item_set_tokens(out, NULL, s->lens[i]);
    if (st != CT_OK) return st;
    float x = burn(s->units, (float)i);
    int64_t base = (int64_t)ct_rng_below(rng, 40) + (x > 1e30f);
    for (int64_t t = 0; t < out->len; t++) out->tokens[t] = 2 + (base + t * 7) % 128;
    ct_item_set_source(out, "synthetic/%lld.mid", (long long)i);
    return CT_OK;
}

static ct_status shift_fn(void *state, ct_data_item *it, ct_rng *rng) {   /* user-defined */
    int64_t k = (int64_t)ct_rng_below(rng, 12);
    for (int64_t t = 0; t < it->len; t++) it->tokens[t] = 2 + (it->tokens[t] - 2 + k) % 128;
    return CT_OK;
}

typedef struct result {
    int workers;
    double loader_bps;      /* batches/s, loader alone */
    double step_sps;        /* steps/s with the simulated step */
    double wait_share;      /* time in ct_dataloader_next / total, with the step */
} result;

static ct_dataloader *make_loader(ct_ctx *ctx, const ct_dataset *ds, const ct_transform *tf,
                                  int64_t batch, int64_t window, int workers) {
    ct_dataloader_opts o = ct_dataloader_defaults();
    o.batch_size = batch;
    o.sampler = CT_SAMPLER_BUCKET;
    o.seed = 1234;
    o.workers = workers;
    o.transform = tf;
    o.collate.targets = true;
    o.collate.max_len = window;
    ct_dataloader *dl = ct_dataloader_new(ctx, ds, &o);
    if (!dl) {
        fprintf(stderr, "bench_data: %s\n", ct_ctx_error(ctx));
        exit(1);
    }
    return dl;
}

/* Takes `batches` batches (across epochs); step_units of work after each; returns the time
 * spent in ct_dataloader_next via *wait. */
static double run(ct_ctx *ctx, ct_dataloader *dl, int batches, uint64_t step_units, double *wait) {
    double t0 = now_s(), waited = 0;
    int got = 0;
    while (got < batches) {
        ct_scope_begin(ctx);
        double a = now_s();
        const ct_batch *b = ct_dataloader_next(dl);
        waited += now_s() - a;
        if (!b && ct_dataloader_status(dl) != CT_OK) {
            fprintf(stderr, "bench_data: %s\n", ct_ctx_error(ctx));
            exit(1);
        }
        if (b) {
            sink = burn(step_units, (float)ct_data_i64(b->inputs)[0]);
            got++;
        }
        ct_scope_end(ctx);
    }
    *wait = waited;
    return now_s() - t0;
}

int main(int argc, char **argv) {
    int64_t items = 2000, batch = 32, window = 128;
    double cost_us = 200, step_us = 20000;
    const char *corpus = NULL;
    int batches = 60;
    char workers_list[64] = "0,1,2";
    bool json = false;
    static const struct option opts[] = {
        {"items", required_argument, 0, 'n'},   {"batch", required_argument, 0, 'b'},
        {"window", required_argument, 0, 'w'},  {"cost-us", required_argument, 0, 'c'},
        {"corpus", required_argument, 0, 'C'},
        {"step-us", required_argument, 0, 's'}, {"batches", required_argument, 0, 'k'},
        {"workers", required_argument, 0, 'W'}, {"json", no_argument, 0, 'j'},
        {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'n': items = atoll(optarg); break;
        case 'b': batch = atoll(optarg); break;
        case 'w': window = atoll(optarg); break;
        case 'c': cost_us = atof(optarg); break;
        case 'C': corpus = optarg; break;
        case 's': step_us = atof(optarg); break;
        case 'k': batches = atoi(optarg); break;
        case 'W': snprintf(workers_list, sizeof workers_list, "%s", optarg); break;
        case 'j': json = true; break;
        default:
            fprintf(stderr, "usage: bench_data [--items N] [--batch N] [--window N] [--cost-us US] "
                            "[--step-us US] [--batches N] [--workers 0,1,2] [--json]\n");
            return 2;
        }
    }
    if (items < 1 || batch < 1 || window < 1 || batches < 1) {
        fprintf(stderr, "bench_data: items, batch, window and batches must be >= 1\n");
        return 2;
    }

    synth s = {items, malloc(sizeof(int64_t) * (size_t)items), calibrate(cost_us)};
    ct_rng r;
    ct_rng_seed(&r, 7);
    for (int64_t i = 0; i < items; i++)   /* skewed: most short, a few long */
        s.lens[i] = 16 + (int64_t)(40.0 * exp(3.0 * ct_rng_uniform(&r) * ct_rng_uniform(&r)));
    uint64_t step_units = calibrate(step_us);
    ct_dataset ds = {&s, synth_len, synth_get, NULL, synth_item_len};

    ct_ctx *ctx = ct_ctx_new();
    ct_transform parts[2], tf;
    cp_dataset *cd = NULL;
    if (corpus) {
        cd = cp_dataset_open(ctx, corpus, CP_TRAIN);
        cp_augment_opts ao = cp_augment_defaults();
        if (!cd || cp_augment(ctx, &tf, cp_corpus_encoding(cp_dataset_corpus(cd)), &ao) != CT_OK) {
            fprintf(stderr, "bench_data: %s\n", ct_ctx_error(ctx));
            return 1;
        }
        ds = cp_dataset_as(cd);
        items = cp_dataset_len(cd);
        if (!json) printf("bench_data: corpus %s (train split, music augmentations in the workers)\n", corpus);
    } else {
        ct_transform_random_crop(ctx, &parts[0], 4 * window);
        parts[1] = ct_transform_make("shift", shift_fn, NULL, NULL);
        ct_compose(ctx, &tf, 2, parts);
    }

    if (!json && corpus)
        printf("bench_data: %lld pieces, batch %lld, window %lld, step %.1f ms, %d batches per run\n"
               "workers | loader batches/s | steps/s with step | waiting for data\n",
               (long long)items, (long long)batch, (long long)window, step_us / 1000, batches);
    else if (!json)
        printf("bench_data: %lld items, batch %lld, window %lld, ~%.0f us per item, step %.1f ms, "
               "%d batches per run\n"
               "workers | loader batches/s | steps/s with step | waiting for data\n",
               (long long)items, (long long)batch, (long long)window, cost_us, step_us / 1000,
               batches);
    char *save = NULL;
    for (char *tok = strtok_r(workers_list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        result res = {atoi(tok), 0, 0, 0};
        double wait;
        ct_dataloader *dl = make_loader(ctx, &ds, &tf, batch, window, res.workers);
        run(ctx, dl, 3, 0, &wait);                                  /* warm up */
        res.loader_bps = batches / run(ctx, dl, batches, 0, &wait);
        ct_dataloader_free(dl);
        dl = make_loader(ctx, &ds, &tf, batch, window, res.workers);
        run(ctx, dl, 3, step_units, &wait);
        double t = run(ctx, dl, batches, step_units, &wait);
        res.step_sps = batches / t;
        res.wait_share = wait / t;
        ct_dataloader_free(dl);
        if (json)
            printf("{\"bench\": \"data\", \"workers\": %d, \"items\": %lld, \"batch\": %lld, "
                   "\"window\": %lld, \"cost_us\": %.0f, \"step_us\": %.0f, \"loader_batches_per_s\": "
                   "%.2f, \"steps_per_s\": %.3f, \"wait_share\": %.4f}\n",
                   res.workers, (long long)items, (long long)batch, (long long)window, cost_us,
                   step_us, res.loader_bps, res.step_sps, res.wait_share);
        else
            printf("%7d | %16.1f | %17.2f | %6.2f %%\n", res.workers, res.loader_bps, res.step_sps,
                   100 * res.wait_share);
        fflush(stdout);
    }
    ct_transform_free(&tf);
    ct_ctx_free(ctx);
    free(s.lens);
    return 0;
}
