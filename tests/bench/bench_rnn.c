/* tests/bench/bench_rnn.c — cantor's side of the RNN benchmark (`make bench`).
 *
 * The workloads, step and counting of ../shared/bench/torch_ref.py: an embedding (tokens) or
 * 88-key frames -> a fused LSTM/GRU -> linear -> cross-entropy (mean) or BCE-with-logits
 * (summed over keys, averaged over frames); a training step is zero_grad -> forward -> loss
 * -> backward -> clip_grad_norm(1.0) -> Adam(1e-3); the token models run the embedding fused
 * into the first layer (ct_rnn_forward_embedded, what models/composer.c does). Sampling:
 * batch 1, one token (frame) per call carrying the RNN state: the step and the output layer
 * in one call (ct_rnn_step_linear_f32: at batch 1 a large model's step is shared with the
 * state's worker thread when that is faster on the machine's load), then softmax with
 * temperature and one multinomial draw in plain C (frames: bernoulli of sigmoid(logits / T)),
 * as models/sampler.c does. Prints one JSON line in the kit's format.
 *
 * On a device (--device cuda:N; scripts/gpu-check.sh): the same workloads and JSON line plus
 * "device" (which is printed only when --device is given). The model is built on the host
 * from the same seed, then moved (ct_module_to) before the optimizer is made; the fixed batch
 * is made on the host and copied (ct_to). A training step ends with ct_item(loss), which
 * waits for the device, so the times are whole steps. Sampling keeps the RNN state on the
 * device, reads the embedding row straight from device memory (token models) or uploads the
 * frame (piano roll), and copies the logits back every step for the draw on the host.
 * --batch N overrides the workload's training batch (e.g. 256).
 * --precision fp32|tf32|bf16 (a CUDA device only; fp32 is the default): the device's GEMMs in
 * float32, TF32 (ct_device_set_tf32) or bf16 with float32 accumulation and master weights
 * (ct_device_set_bf16); printed as "precision" whenever --device or --precision is given.
 * tf32 or bf16 with the CPU is a usage error (exit 2).
 *
 * usage: bench_rnn --workload NAME --mode train|sample [--device cpu|cuda:N] [--batch N]
 *                  [--precision fp32|tf32|bf16] [--threads N] [--steps N] [--warmup N]
 *                  [--sample-tokens N] [--temperature T]
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "engine/cantor.h"
#include "engine/device.h"
#include "engine/layers.h"
#include "engine/optim.h"
#include "engine/rnn.h"

typedef struct workload {
    const char *name;
    bool tokens;
    ct_rnn_mode cell;
    int vocab, embed, hidden, layers, batch, seq, steps, warmup, sample;
} workload;

static const workload WORKLOADS[] = {
    {"melody", true, CT_LSTM, 130, 64, 256, 2, 64, 128, 10, 2, 1000},
    {"melody_gru", true, CT_GRU, 130, 64, 256, 2, 64, 128, 10, 2, 1000},
    {"performance", true, CT_LSTM, 388, 256, 512, 3, 32, 256, 4, 1, 500},
    {"pianoroll_b1", false, CT_LSTM, 88, 0, 256, 1, 1, 128, 30, 2, 1000},
    {"pianoroll_b16", false, CT_LSTM, 88, 0, 256, 1, 16, 128, 30, 2, 1000},
};
enum { SEED = 1234 };

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double fwd_flops_per_token(const workload *w) {
    int g = ct_rnn_gates(w->cell);
    int in = w->tokens ? w->embed : w->vocab;
    double total = 0;
    for (int l = 0; l < w->layers; l++) {
        int i = l == 0 ? in : w->hidden;
        total += 2.0 * g * w->hidden * (i + w->hidden);
    }
    return total + 2.0 * w->hidden * w->vocab;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct net { ct_module *root, *inp, *rnn, *out; } net;

static net build(ct_ctx *ctx, ct_rng *rng, const workload *w) {
    net n = {0};
    n.root = ct_module_new(ctx, "Net", 0);
    if (w->tokens) {
        n.inp = ct_embedding_module_new(ctx, rng, w->vocab, w->embed);
        ct_module_add_child(n.root, "inp", n.inp);
    }
    ct_rnn_config cfg = {w->cell, w->tokens ? w->embed : w->vocab, w->hidden, w->layers, true, false, 0.0f};
    n.rnn = ct_rnn_new(ctx, rng, &cfg);
    ct_module_add_child(n.root, "rnn", n.rnn);
    n.out = ct_linear_new(ctx, rng, w->hidden, w->vocab, true);
    ct_module_add_child(n.root, "out", n.out);
    return n;
}

static int fail(ct_ctx *ctx, const char *what) {
    fprintf(stderr, "bench_rnn: %s: %s\n", what, ct_ctx_error(ctx));
    return 1;
}

static int train(ct_ctx *ctx, const workload *w, ct_device dev, int steps, int warmup, char *json,
                 size_t jn) {
    ct_rng rng;
    ct_rng_seed(&rng, SEED);
    net n = build(ctx, &rng, w);
    if (ct_module_to(n.root, dev) != CT_OK) return fail(ctx, "module_to");
    ct_optim *opt = ct_adam_new(n.root, ct_adam_defaults(1e-3));
    if (!opt) return fail(ctx, "adam_new");
    int64_t T = w->seq, B = w->batch, V = w->vocab;
    /* one fixed batch, as the reference does */
    ct_tensor *x, *y;
    if (w->tokens) {
        ct_tensor *data = ct_empty(ctx, CT_I64, CT_SHAPE(T + 1, B));
        for (int64_t i = 0; i < (T + 1) * B; i++) ct_data_i64(data)[i] = (int64_t)ct_rng_below(&rng, (uint64_t)V);
        x = ct_narrow(data, 0, 0, T);
        y = ct_reshape(ct_narrow(data, 0, 1, T), T * B);
    } else {
        ct_tensor *data = ct_bernoulli(&rng, ct_full(ctx, 0.05f, CT_SHAPE(T + 1, B, V)));
        x = ct_narrow(data, 0, 0, T);
        y = ct_contiguous(ct_narrow(data, 0, 1, T));
    }
    x = ct_to(ct_contiguous(x), dev);
    y = ct_to(ct_contiguous(y), dev);
    if (!x || !y) return fail(ctx, "copying the batch");
    double *times = calloc((size_t)(steps + warmup), sizeof *times);
    double loss_v = NAN;
    for (int i = 0; i < warmup + steps; i++) {
        double t0 = now();
        ct_optim_zero_grad(opt);
        ct_scope_begin(ctx);
        /* token models: the embedding fused into the first layer, as cantor's composer runs */
        ct_tensor *h = NULL;
        if (w->tokens)
            ct_rnn_forward_embedded(n.rnn, ct_module_param(n.inp, "weight"), x, NULL, NULL, NULL,
                                    NULL, &h, NULL, NULL);
        else
            ct_rnn_forward(n.rnn, x, NULL, NULL, NULL, NULL, &h, NULL, NULL);
        ct_tensor *logits = ct_linear_forward_at(CT_SRC, n.out, h);
        ct_tensor *loss = w->tokens ? ct_cross_entropy(ct_view(logits, T * B, V), y, -100)
                                    : ct_bce_with_logits(logits, y, CT_REDUCE_SUM_LAST_MEAN);
        if (!loss || ct_backward(loss) != CT_OK) { fprintf(stderr, "bench: %s\n", ct_ctx_error(ctx)); return 1; }
        double norm;
        ct_clip_grad_norm(n.root, 1.0f, &norm);
        ct_optim_step(opt);
        loss_v = ct_item(loss);
        ct_scope_end(ctx);
        times[i] = now() - t0;
    }
    qsort(times + warmup, (size_t)steps, sizeof *times, cmp_double);
    double med = times[warmup + steps / 2], lo = times[warmup], hi = times[warmup + steps - 1];
    if (steps % 2 == 0) med = 0.5 * (times[warmup + steps / 2 - 1] + times[warmup + steps / 2]);
    double tokens = (double)(T * B), gflop = 3 * fwd_flops_per_token(w) * tokens / 1e9;
    snprintf(json, jn,
             "\"tokens_per_s\": %.1f, \"ms_per_step\": %.3f, \"ms_per_step_min\": %.3f, "
             "\"ms_per_step_max\": %.3f, \"steps\": %d, \"warmup\": %d, \"tokens_per_step\": %.0f, "
             "\"gflop_per_step\": %.4f, \"achieved_gflops\": %.2f, \"final_loss\": %.6f",
             tokens / med, 1e3 * med, 1e3 * lo, 1e3 * hi, steps, warmup, tokens, gflop, gflop / med, loss_v);
    free(times);
    ct_optim_free(opt);
    ct_module_free(n.root);
    return 0;
}

/* softmax(logits / temperature), then one draw (inverse CDF), as torch.multinomial does */
static int64_t draw_token(const float *logits, int64_t V, float temperature, double *p,
                          ct_rng *rng) {
    float mx = logits[0];
    for (int64_t i = 1; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0;
    for (int64_t i = 0; i < V; i++) sum += p[i] = exp((double)(logits[i] - mx) / temperature);
    double u = ct_rng_uniform(rng) * sum, acc = 0;
    for (int64_t i = 0; i < V; i++)
        if ((acc += p[i]) > u) return i;
    return V - 1;
}

static int sample(ct_ctx *ctx, const workload *w, ct_device dev, int count, float temperature,
                  char *json, size_t jn) {
    ct_rng rng;
    ct_rng_seed(&rng, SEED);
    net n = build(ctx, &rng, w);
    if (ct_module_to(n.root, dev) != CT_OK) return fail(ctx, "module_to");
    ct_module_train(n.root, false);
    ct_set_grad_enabled(ctx, false);
    ct_rnn_state *st = ct_rnn_state_new(n.rnn, 1);
    int64_t V = w->vocab, E = w->tokens ? w->embed : V;
    const float *table = w->tokens ? ct_data_f32(ct_module_param(n.inp, "weight")) : NULL;
    ct_tensor *wo = ct_module_param(n.out, "weight"), *bo = ct_module_param(n.out, "bias");
    float *frame = calloc((size_t)V, sizeof *frame), *logits = calloc((size_t)V, sizeof *logits);
    double *prob = calloc((size_t)V, sizeof *prob);
    if (!st || !frame || !logits || !prob) return fail(ctx, "rnn_state_new");
    int64_t token = 0;
    const int warmup = 32;
    double t0 = 0;
    for (int i = 0; i < warmup + count; i++) {
        if (i == warmup) t0 = now();
        const float *xin = w->tokens ? table + token * E : frame;
        /* the RNN step and the output layer in one call */
        if (ct_rnn_step_linear_f32(n.rnn, xin, st, wo, bo, logits, NULL) != CT_OK) {
            fprintf(stderr, "bench: %s\n", ct_ctx_error(ctx));
            return 1;
        }
        if (w->tokens) {
            token = draw_token(logits, V, temperature, prob, &rng);
        } else {
            for (int64_t k = 0; k < V; k++) {
                double p = 1.0 / (1.0 + exp(-(double)logits[k] / temperature));
                frame[k] = ct_rng_uniform(&rng) < p ? 1.0f : 0.0f;
            }
        }
    }
    double dt = now() - t0;
    snprintf(json, jn,
             "\"tokens_per_s\": %.1f, \"ms_per_token\": %.5f, \"tokens\": %d, \"temperature\": %.2f, "
             "\"batch\": 1, \"achieved_gflops\": %.3f",
             count / dt, 1e3 * dt / count, count, temperature, fwd_flops_per_token(w) * count / dt / 1e9);
    free(frame);
    free(logits);
    free(prob);
    ct_rnn_state_free(st);
    ct_module_free(n.root);
    return 0;
}

int main(int argc, char **argv) {
    const char *name = "melody", *mode = "train", *device = NULL, *precision = NULL;
    int threads = 2, steps = -1, warmup = -1, count = -1, batch = -1;
    float temperature = 1.0f;
    static const struct option opts[] = {
        {"workload", required_argument, NULL, 'w'}, {"mode", required_argument, NULL, 'm'},
        {"threads", required_argument, NULL, 't'}, {"steps", required_argument, NULL, 's'},
        {"warmup", required_argument, NULL, 'u'}, {"sample-tokens", required_argument, NULL, 'n'},
        {"temperature", required_argument, NULL, 'T'}, {"device", required_argument, NULL, 'd'},
        {"batch", required_argument, NULL, 'b'}, {"precision", required_argument, NULL, 'p'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'w': name = optarg; break;
        case 'm': mode = optarg; break;
        case 't': threads = atoi(optarg); break;
        case 's': steps = atoi(optarg); break;
        case 'u': warmup = atoi(optarg); break;
        case 'n': count = atoi(optarg); break;
        case 'T': temperature = strtof(optarg, NULL); break;
        case 'd': device = optarg; break;
        case 'b': batch = atoi(optarg); break;
        case 'p': precision = optarg; break;
        default: fprintf(stderr, "usage: bench_rnn --workload NAME --mode train|sample [--device cuda:N] [--batch N] [--precision fp32|tf32|bf16] [--threads N]\n"); return 2;
        }
    }
    const workload *w = NULL;
    workload chosen;
    for (size_t i = 0; i < sizeof WORKLOADS / sizeof WORKLOADS[0]; i++)
        if (strcmp(WORKLOADS[i].name, name) == 0) { chosen = WORKLOADS[i]; w = &chosen; }
    if (w && batch > 0) chosen.batch = batch;
    if (!w || (strcmp(mode, "train") && strcmp(mode, "sample")) || threads < 1 || !(temperature > 0)) {
        fprintf(stderr, "bench_rnn: unknown workload '%s' or mode '%s' (workloads: melody, melody_gru, "
                        "performance, pianoroll_b1, pianoroll_b16; modes: train, sample)\n", name, mode);
        return 2;
    }
    ct_device dev = CT_DEVICE_CPU;
    char why[256];
    if (device && (ct_device_parse(device, &dev, why, sizeof why) != CT_OK || !ct_device_available(dev, why, sizeof why))) {
        fprintf(stderr, "bench_rnn: --device %s: %s\n", device, why);
        return 2;
    }
    const char *prec = precision ? precision : "fp32";
    if (strcmp(prec, "fp32") && strcmp(prec, "tf32") && strcmp(prec, "bf16")) {
        fprintf(stderr, "bench_rnn: --precision %s: expected fp32, tf32 or bf16\n", prec);
        return 2;
    }
    if (dev.type != CT_CUDA && strcmp(prec, "fp32")) {
        fprintf(stderr, "bench_rnn: --precision %s needs a CUDA device (--device cuda:N); the CPU "
                        "computes in fp32\n", prec);
        return 2;
    }
    if (dev.type == CT_CUDA) {
        bool tf32 = strcmp(prec, "tf32") == 0, bf16 = strcmp(prec, "bf16") == 0;
        if (ct_device_set_tf32(dev, tf32, why, sizeof why) != CT_OK ||
            ct_device_set_bf16(dev, bf16, why, sizeof why) != CT_OK) {
            fprintf(stderr, "bench_rnn: --precision %s: %s\n", prec, why);
            return 1;
        }
    }
    char dev_json[1024] = "";
    if (device) {
        char desc[512];
        ct_device_describe(dev, desc, sizeof desc);
        for (char *q = desc; *q; q++)
            if (*q == '"' || *q == '\\') *q = '\'';   /* stays a JSON string */
        snprintf(dev_json, sizeof dev_json, "\"device\": \"%s\", \"device_name\": \"%s\", ",
                 ct_device_str(dev, why, sizeof why), desc);
    }
    if (device || precision)
        snprintf(dev_json + strlen(dev_json), sizeof dev_json - strlen(dev_json), "\"precision\": \"%s\", ", prec);
    ct_blas_set_threads(threads);
    ct_ctx *ctx = ct_ctx_new();
    char res[1024];
    int rc = strcmp(mode, "train") == 0
                 ? train(ctx, w, dev, steps > 0 ? steps : w->steps, warmup >= 0 ? warmup : w->warmup, res, sizeof res)
                 : sample(ctx, w, dev, count > 0 ? count : w->sample, temperature, res, sizeof res);
    ct_ctx_free(ctx);
    if (rc) return rc;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"engine\": \"cantor\", \"workload\": \"%s\", \"mode\": \"%s\", \"unit\": \"%s\", %s, "
           "\"peak_rss_mb\": %.1f, %s\"threads\": %d, \"openblas_threads\": %d, \"cantor\": \"%s\", "
           "\"config\": {\"kind\": \"%s\", \"cell\": \"%s\", \"vocab\": %d, \"embed\": %d, \"hidden\": %d, "
           "\"layers\": %d, \"batch\": %d, \"seq\": %d}}\n",
           w->name, mode, w->tokens ? "tokens" : "frames", res, ru.ru_maxrss / 1024.0, dev_json, threads,
           ct_blas_threads(), ct_version(), w->tokens ? "tokens" : "frames",
           w->cell == CT_LSTM ? "lstm" : "gru", w->vocab, w->embed, w->hidden, w->layers, w->batch, w->seq);
    return 0;
}
