/* apps/cmd_train.c — `cantor train`: the options (parsing, help, what a resumed run may
 * change) and the entry point. The loop is train_loop.c, checkpoints train_ckpt.c, the sample
 * gallery train_samples.c (apps/train.h). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "apps/cli.h"
#include "apps/dashboard.h"
#include "apps/train.h"
#include "engine/cantor.h"

static void train_help(FILE *f) {
    fprintf(f,
            "usage: cantor train --corpus FILE|DIR --out RUN_DIR [options]\n"
            "       cantor train --resume RUN_DIR [--steps N] [options]\n"
            "\n"
            "Trains a composer (embedding -> RNN -> linear; 88-key frames -> RNN -> linear for\n"
            "piano rolls) with Adam (--optimizer) on the train split of a corpus, validates on its valid\n"
            "split, and writes into RUN_DIR: model.safetensors (the latest weights, what\n"
            "'cantor sample --ckpt' reads), best.safetensors (lowest validation loss),\n"
            "ckpt-STEP.safetensors + ckpt-STEP.state (checkpoints; --resume continues from the\n"
            "last one bit for bit), metrics.jsonl (one JSON object per step), samples/ and\n"
            "samples.jsonl (a short piece at every validation), run.json (the options).\n"
            "Ctrl-C or SIGTERM finishes the current step, writes a checkpoint and exits with 130\n"
            "(a second one exits at once); a finished run exits 0, a failure 1, a usage error 2.\n"
            "\n"
            "data\n"
            "  --corpus FILE|DIR       a corpus file (cantor corpus build); or a folder of MIDI files,\n"
            "                          built into RUN_DIR/corpus.corpus with --model's encoding; or,\n"
            "                          with --model audio, a folder of audio files (required)\n"
            "  --model NAME            melody, performance, pianoroll or audio (default: the corpus\n"
            "                          file's encoding; melody for a folder)\n"
            "  --batch N               sequences per batch (default 32)\n"
            "  --window N              training window in steps (default 128)\n"
            "  --workers N             data loader threads; results do not depend on it (default 2)\n"
            "  --audio-rate HZ         --model audio: sample rate of the mu-law tokens (default 16000)\n"
            "augmentation (training batches only; validation never; default off)\n"
            "  --augment               transpose and time-stretch each training piece at random\n"
            "                          (cp_augment's house defaults; the batches stay the same for\n"
            "                          any --workers count, and a resume is still bit for bit)\n"
            "  --transpose LO:HI       semitones, uniform among the shifts in LO..HI that keep every\n"
            "                          note in range; 0:0 = off (default -3:3; implies --augment)\n"
            "  --stretch LO:HI         time factor, 0.1 <= LO <= HI <= 10; 1:1 = off (default\n"
            "                          0.95:1.05; implies --augment). Performance and piano roll only:\n"
            "                          melody tokens count grid steps (a melody run does not stretch)\n"
            "  --velocity SHIFT:JITTER performance corpora with velocity bins: each piece's velocities\n"
            "                          move by one shift in -SHIFT..SHIFT bins plus each its own\n"
            "                          jitter in -JITTER..JITTER, 0..127 each (house value 2:1; 0:0 =\n"
            "                          off, the default; implies --augment)\n"
            "  --no-augment            off (on --resume: turn a run's augmentation off). A resume may\n"
            "                          change these (a note says so); the loader's state is unaffected\n"
            "model\n"
            "  --cell NAME             lstm, gru or rnn (default lstm)\n"
            "  --layers N              RNN layers (default 2)\n"
            "  --hidden N              RNN hidden size (default 256)\n"
            "  --embedding N           token embedding size, also --embed (default 64)\n"
            "  --dropout P             dropout between layers and on the RNN output (default 0)\n"
            "optimisation\n"
            "  --steps N               optimizer steps (default 300)\n"
            "  --epochs N              passes over the train split, instead of --steps\n"
            "  --optimizer NAME        adam, adamw or sgd (default adam); torch.optim's updates. May\n"
            "                          not change on resume (the checkpoint holds its state)\n"
            "  --weight-decay X        adamw: decoupled decay; adam, sgd: L2 added to the gradient\n"
            "                          (default as torch: 0.01 for adamw, 0 for adam and sgd)\n"
            "  --momentum X            sgd: momentum in [0, 1) (default 0, torch's plain SGD; 0.9 is\n"
            "                          usual); on resume it may change but not to or from 0\n"
            "  --betas B1,B2           adam, adamw: the moments' decay rates (default 0.9,0.999)\n"
            "  --lr X                  learning rate (default 0.001; sgd usually wants more, e.g. 0.1)\n"
            "  --lr-schedule NAME      constant, step, exp, cosine or plateau (default constant)\n"
            "  --warmup N              linear warm-up steps before the schedule (default 0)\n"
            "  --lr-step-size N        step: multiply the rate by --lr-gamma every N steps (default 1000)\n"
            "  --lr-gamma X            step: the factor (default 0.5); exp: the factor per step\n"
            "                          (default 0.999)\n"
            "  --lr-min X              cosine: the final learning rate (default 0)\n"
            "  --lr-decay-steps N      cosine: the decay's length from step 0 (default: all steps)\n"
            "  --patience N            plateau: multiply the rate by --plateau-factor after N\n"
            "                          validations in a row without a new best (default 3)\n"
            "  --plateau-factor X      plateau: the factor (default 0.1)\n"
            "  --early-stop N          stop after N validations in a row without a new best\n"
            "                          (best.safetensors is the result), 0 = off (default 0)\n"
            "  --no-init-bias          piano roll: start the output bias at zero instead of the\n"
            "                          logit of each key's smoothed frequency in the train split\n"
            "  --clip X                clip gradients to this global L2 norm, 0 = off (default 1.0)\n"
            "  --spike-factor X        skip a step whose gradient norm is over X times the median of\n"
            "                          the last %d (once there are %d), 0 = off (default 10)\n"
            "  --max-skips N           stop after N skipped steps in a row (default 20)\n"
            "  --seed N                seed of the weights, batches and dropout (default 1234)\n"
            "run\n"
            "  --out RUN_DIR           the run folder (created; an earlier run there is replaced)\n"
            "  --resume RUN_DIR        continue that run from its last checkpoint; --steps/--epochs\n"
            "                          may be raised, the model and the data options may not change\n"
            "  --checkpoint-every N    a checkpoint every N steps, 0 = only at the end (default 1000)\n"
            "  --keep K                keep the last K checkpoints (default 3)\n"
            "  --valid-every N         validate every N steps, 0 = only per epoch (default 100);\n"
            "                          also at each epoch's end and at the last step\n"
            "  --valid-batches N       batches per validation (default 20); piano-roll models\n"
            "                          validate on whole pieces (the --window does not cut them)\n"
            "  --samples-every N       a gallery sample every N steps, 0 = at each validation\n"
            "                          (default 0)\n"
            "  --no-samples            no sample gallery\n"
            "  --sample-seconds S      length of a gallery sample (default 4)\n"
            "  --log-every N           a progress line every N steps when stderr is not a\n"
            "                          terminal (default 10)\n"
            "  --device NAME           cpu, cuda or cuda:N (a CUDA build on a machine with a GPU; default cpu).\n"
            "                          Under mpirun -np N: cpu, or cuda (each process takes the GPU\n"
            "                          local rank %% the GPUs of its machine; NCCL sums the gradients)\n"
            "  --precision NAME        fp32, tf32 or bf16: the matrix products on a CUDA device (default\n"
            "                          fp32; tf32: TF32 tensor cores; bf16: bfloat16 inputs, float32\n"
            "                          accumulation and weights). The CPU computes in float32 only\n"
            "  --dashboard[=HOST:PORT] serve the live dashboard while training (default address\n"
            "                          " DASH_DEFAULT_LISTEN "; 'cantor dashboard RUN_DIR' replays a run)\n"
            "  -h, --help              this help\n",
            TRAIN_NORM_WINDOW, TRAIN_NORM_WARMUP);
}

enum {
    O_CORPUS = 256, O_MODEL, O_OUT, O_LAYERS, O_HIDDEN, O_EMBED, O_CELL, O_BATCH, O_WINDOW, O_STEPS,
    O_EPOCHS, O_LR, O_SCHED, O_WARMUP, O_STEP_SIZE, O_GAMMA, O_LR_MIN, O_DECAY, O_CLIP, O_DROPOUT,
    O_SEED, O_DEVICE, O_WORKERS, O_RESUME, O_CKPT_EVERY, O_KEEP, O_VALID_EVERY, O_VALID_BATCHES,
    O_SAMPLES_EVERY, O_NO_SAMPLES, O_SAMPLE_SECONDS, O_LOG_EVERY, O_SPIKE, O_MAX_SKIPS, O_AUDIO_RATE,
    O_DASHBOARD, O_PATIENCE, O_PLATEAU_FACTOR, O_EARLY_STOP, O_NO_INIT_BIAS, O_PRECISION,
    O_AUGMENT, O_NO_AUGMENT, O_TRANSPOSE, O_STRETCH, O_VELOCITY, O_OPTIMIZER, O_WEIGHT_DECAY, O_MOMENTUM, O_BETAS, O_END
};

#define GIVEN(o) (given[(o) - O_CORPUS])

/* "A:B": two numbers (whole ones when integer) around one colon; false when malformed. */
static bool parse_pair(const char *s, bool integer, double *a, double *b) {
    const char *colon = strchr(s, ':');
    char *end = NULL;
    if (!colon || colon == s) return false;
    errno = 0;
    *a = integer ? (double)strtol(s, &end, 10) : strtod(s, &end);
    if (errno != 0 || end != colon) return false;
    errno = 0;
    *b = integer ? (double)strtol(colon + 1, &end, 10) : strtod(colon + 1, &end);
    return errno == 0 && end != colon + 1 && *end == 0 && isfinite(*a) && isfinite(*b);
}

/* "LO:HI" of --transpose (integers in -127..127) or --stretch (numbers in 0.1..10), LO <= HI. */
static bool parse_range(const char *flag, const char *s, bool integer, double *lo, double *hi) {
    const double min = integer ? -127 : 0.1, max = integer ? 127 : 10;
    const char *what = integer ? "LO:HI, two whole numbers of semitones in -127..127 with LO <= HI (e.g. -5:6; 0:0 = off)"
                               : "LO:HI, two time factors in 0.1..10 with LO <= HI (e.g. 0.9:1.1; 1:1 = off)";
    const bool ok = parse_pair(s, integer, lo, hi) && *lo >= min && *hi <= max && *lo <= *hi;
    if (!ok) cli_usage("train", "%s '%s': expected %s", flag, s, what);
    return ok;
}

/* "SHIFT:JITTER" of --velocity: two whole numbers of velocity bins in 0..127. */
static bool parse_velocity(const char *s, int64_t *shift, int64_t *jitter) {
    double a, b;
    if (!parse_pair(s, true, &a, &b) || a < 0 || a > 127 || b < 0 || b > 127) {
        cli_usage("train", "--velocity '%s': expected SHIFT:JITTER, two whole numbers of velocity bins in 0..127 "
                  "(e.g. 2:1; 0:0 = off)", s);
        return false;
    }
    *shift = (int64_t)a;
    *jitter = (int64_t)b;
    return true;
}

/* "transpose LO:HI, stretch LO:HI[, velocity SHIFT:JITTER]" of a run's augmentation ranges
 * (velocity only when on), for the resume notes. */
static void augment_desc(const train_opts *o, char *buf, size_t n) {
    int k = snprintf(buf, n, "transpose %lld:%lld, stretch %g:%g", (long long)o->transpose_lo,
                     (long long)o->transpose_hi, o->stretch_lo, o->stretch_hi);
    if ((o->velocity_shift || o->velocity_jitter) && k > 0 && (size_t)k < n)
        snprintf(buf + k, n - (size_t)k, ", velocity %lld:%lld", (long long)o->velocity_shift,
                 (long long)o->velocity_jitter);
}

/* "B1,B2" of --betas: two numbers in [0, 1). */
static bool parse_betas(const char *s, double *b1, double *b2) {
    char *end = NULL;
    errno = 0;
    *b1 = strtod(s, &end);
    bool ok = errno == 0 && end != s && *end == ',';
    if (ok) {
        const char *p = end + 1;
        errno = 0;
        *b2 = strtod(p, &end);
        ok = errno == 0 && end != p && *end == 0;
    }
    if (ok) ok = *b1 >= 0 && *b1 < 1 && *b2 >= 0 && *b2 < 1;
    if (!ok) cli_usage("train", "--betas '%s': expected B1,B2, two numbers in [0, 1) (e.g. 0.9,0.999)", s);
    return ok;
}

static bool copy_path(const char *flag, const char *s, char *dst) {
    if (strlen(s) >= TRAIN_PATH_MAX || strchr(s, '\n')) {
        cli_usage("train", "%s: the path is too long or holds a newline", flag);
        return false;
    }
    strcpy(dst, s);
    return true;
}

int train_check_device_opts(const train_opts *o, int processes, bool quiet, bool precision) {
    const char *d = o->device[0] ? o->device : "cpu";
    ct_device dev;
    char why[256] = "";
    if (processes > 1 && ct_device_parse(d, &dev, why, sizeof why) == CT_OK && dev.type == CT_CUDA &&
        strcmp(d, "cuda") != 0)
        return quiet ? CLI_USAGE
                     : cli_usage("train", "--device %s with %d processes (mpirun): every process takes a GPU of its "
                                 "own; give --device cuda (process i uses cuda:(its local rank %% the GPUs of its "
                                 "machine)). --device cuda:N is for one process", d, processes);
    int rc = cli_device("train", d, processes > 1 ? "train with --device cpu (MPI reduces the gradients)"
                                                         : "train with --device cpu", quiet, &dev);
    if (rc != CLI_OK || !precision || o->precision == TRAIN_FP32 || dev.type != CT_CPU) return rc;
    /* tf32 / bf16 are modes of a CUDA device's matrix products */
    return quiet ? CLI_USAGE
                 : cli_usage("train", "--precision %s needs a CUDA device (--device cuda or cuda:N); the CPU "
                             "computes in float32 only: drop --precision or give --precision fp32",
                             train_precision_name(o->precision));
}

/* One process: --device (and --precision) checked here. Under mpirun with several processes
 * the checks wait for MPI (train_dist_begin), so that the job prints one message and every
 * process ends normally. */
static int check_device(const train_opts *o, bool precision) {
    ct_dist_launch L;
    if (ct_dist_launch_env(NULL, &L) == CT_OK && L.launched && L.size > 1) return CLI_OK;
    return train_check_device_opts(o, 1, false, precision);
}

static void cfg_describe_with(const cc_config *base, const train_opts *o, char *buf, size_t n) {
    cc_config c = *base;
    c.cell = o->cell;
    c.layers = (int)o->layers;
    c.hidden = o->hidden;
    if (!cc_config_is_roll(&c)) c.embed = o->embed;
    if (o->model >= 0) c.encoding = (cc_encoding)o->model;
    cc_config_describe(&c, buf, n);
}

/* What a resumed run takes from the command line: the options given there replace the saved
 * ones, except those that define the model or the data (an error naming the flag). */
static int merge_resume(train_opts *o, const train_opts *cli, const bool *given, const char *dir, int64_t step) {
    char err[512];
    train_opts saved;
    if (!train_read_run_options(dir, step, &saved, err, sizeof err)) return cli_fail("train", "%s", err);
    /* the model: the checkpoint's own configuration */
    char path[TRAIN_PATH_MAX + 64], a[160] = "?", b[160] = "?";
    snprintf(path, sizeof path, "%s/ckpt-%08lld.safetensors", dir, (long long)step);
    ct_ctx *ctx = ct_ctx_new();
    ct_ctx_set_error_handler(ctx, NULL, NULL);
    cc_config sc;
    if (cc_read_config(ctx, path, &sc) != CT_OK) {
        int rc = cli_fail("train", "--resume %s: %s", dir, ct_ctx_error(ctx));
        ct_ctx_free(ctx);
        return rc;
    }
    ct_ctx_free(ctx);
    char diff[512] = "";
    size_t dl = 0;
#define MODEL_DIFF(opt, flag, fmt, a, b)                                                             \
    if (GIVEN(opt) && (a) != (b) && dl < sizeof diff)                                                \
        dl += (size_t)snprintf(diff + dl, sizeof diff - dl, "%s" flag " " fmt " vs " fmt, dl ? ", " : "", a, b);
    MODEL_DIFF(O_LAYERS, "--layers", "%lld", (long long)cli->layers, (long long)saved.layers)
    MODEL_DIFF(O_HIDDEN, "--hidden", "%lld", (long long)cli->hidden, (long long)saved.hidden)
    if (!cc_config_is_roll(&sc)) {   /* a piano roll has no embedding */
        MODEL_DIFF(O_EMBED, "--embedding", "%lld", (long long)cli->embed, (long long)saved.embed)
    }
    if (GIVEN(O_CELL) && cli->cell != saved.cell && dl < sizeof diff)
        dl += (size_t)snprintf(diff + dl, sizeof diff - dl, "%s--cell %s vs %s", dl ? ", " : "",
                               cc_cell_name(cli->cell), cc_cell_name(saved.cell));
    if (GIVEN(O_MODEL) && cli->model != (int)sc.encoding && dl < sizeof diff)
        dl += (size_t)snprintf(diff + dl, sizeof diff - dl, "%s--model %s vs %s", dl ? ", " : "",
                               cc_encoding_name((cc_encoding)cli->model), cc_encoding_name(sc.encoding));
    if (dl) {
        cc_config_describe(&sc, b, sizeof b);
        train_opts mixed = saved;
        if (GIVEN(O_LAYERS)) mixed.layers = cli->layers;
        if (GIVEN(O_HIDDEN)) mixed.hidden = cli->hidden;
        if (GIVEN(O_EMBED)) mixed.embed = cli->embed;
        if (GIVEN(O_CELL)) mixed.cell = cli->cell;
        mixed.model = GIVEN(O_MODEL) ? cli->model : (int)sc.encoding;
        cfg_describe_with(&sc, &mixed, a, sizeof a);
        return cli_usage("train", "--resume %s: the run trains a %s, but the options ask for a %s (%s, the option "
                         "first); a resumed run keeps its model: drop those options, or start a new run "
                         "with --out", dir, b, a, diff);
    }
    /* the data */
#define DATA_SAME(opt, flag, field)                                                                  \
    if (GIVEN(opt) && cli->field != saved.field)                                                     \
        return cli_usage("train", "--resume %s: " flag " %lld, but the run used %lld; a resumed run keeps " \
                         "its data options (the batches it would have seen depend on them)", dir,      \
                         (long long)cli->field, (long long)saved.field);
    DATA_SAME(O_BATCH, "--batch", batch)
    DATA_SAME(O_WINDOW, "--window", window)
    DATA_SAME(O_SEED, "--seed", seed)
    DATA_SAME(O_AUDIO_RATE, "--audio-rate", audio_rate)
    if (GIVEN(O_OUT) && strcmp(cli->out, dir) != 0)
        return cli_usage("train", "--out %s with --resume %s: a resumed run writes into its own folder", cli->out, dir);
    *o = saved;
    strcpy(o->out, dir);
    if (GIVEN(O_CORPUS) && strcmp(cli->corpus, saved.corpus) != 0) {
        printf("note: --corpus %s instead of the run's %s\n", cli->corpus, saved.corpus);
        strcpy(o->corpus, cli->corpus);
        o->corpus_file[0] = 0;
    }
    /* the length: --steps or --epochs replaces the saved one */
    if (GIVEN(O_STEPS)) { o->steps = cli->steps; o->epochs = 0; }
    if (GIVEN(O_EPOCHS)) { o->epochs = cli->epochs; o->steps = 0; }
    if (o->steps > 0 && o->steps < step)
        return cli_usage("train", "--steps %lld: the run in %s is already at step %lld", (long long)o->steps, dir,
                         (long long)step);
    /* hyper-parameters that may change (a note says so: the run is no longer the one it was) */
#define MAY_CHANGE(opt, flag, field, fmt, cast)                                                      \
    if (GIVEN(opt)) {                                                                                \
        if (cli->field != saved.field)                                                               \
            printf("note: " flag " " fmt " (the run had " fmt ")\n", (cast)cli->field, (cast)saved.field); \
        o->field = cli->field;                                                                       \
    }
    MAY_CHANGE(O_LR, "--lr", lr, "%g", double)
    MAY_CHANGE(O_WARMUP, "--warmup", warmup, "%lld", long long)
    MAY_CHANGE(O_STEP_SIZE, "--lr-step-size", lr_step_size, "%lld", long long)
    MAY_CHANGE(O_GAMMA, "--lr-gamma", lr_gamma, "%g", double)
    MAY_CHANGE(O_LR_MIN, "--lr-min", lr_min, "%g", double)
    MAY_CHANGE(O_DECAY, "--lr-decay-steps", lr_decay_steps, "%lld", long long)
    MAY_CHANGE(O_CLIP, "--clip", clip, "%g", double)
    MAY_CHANGE(O_DROPOUT, "--dropout", dropout, "%g", double)
    MAY_CHANGE(O_SPIKE, "--spike-factor", spike_factor, "%g", double)
    MAY_CHANGE(O_PATIENCE, "--patience", patience, "%lld", long long)
    MAY_CHANGE(O_PLATEAU_FACTOR, "--plateau-factor", plateau_factor, "%g", double)
    MAY_CHANGE(O_EARLY_STOP, "--early-stop", early_stop, "%lld", long long)
    if (GIVEN(O_SCHED)) {
        if (cli->sched != saved.sched)
            printf("note: --lr-schedule %s (the run had %s)\n", train_sched_name(cli->sched), train_sched_name(saved.sched));
        o->sched = cli->sched;
    }
    /* the optimizer: its kind may not change (the checkpoint holds its state: Adam's moments or
     * SGD's momentum buffer); its hyper-parameters may, as the learning rate */
    if (GIVEN(O_OPTIMIZER) && cli->optimizer != saved.optimizer)
        return cli_usage("train", "--resume %s: --optimizer %s, but the run trains with %s; its checkpoint holds "
                         "%s's state, which %s cannot continue from: drop --optimizer, or start a new run with --out",
                         dir, train_optim_name(cli->optimizer), train_optim_name(saved.optimizer),
                         train_optim_name(saved.optimizer), train_optim_name(cli->optimizer));
    if (GIVEN(O_MOMENTUM) && saved.optimizer == CT_OPTIM_SGD && (cli->momentum > 0) != (saved.momentum > 0))
        return cli_usage("train", "--resume %s: --momentum %g, but the run used %g; the checkpoint %s SGD's momentum "
                         "buffer, so a resume cannot turn momentum on or off (it may change it between nonzero "
                         "values)", dir, cli->momentum, saved.momentum, saved.momentum > 0 ? "holds" : "has no");
    MAY_CHANGE(O_WEIGHT_DECAY, "--weight-decay", weight_decay, "%g", double)
    if (saved.optimizer == CT_OPTIM_SGD) {   /* else refused below: --momentum is SGD's */
        MAY_CHANGE(O_MOMENTUM, "--momentum", momentum, "%g", double)
    }
    if (GIVEN(O_BETAS) && saved.optimizer != CT_OPTIM_SGD) {   /* else refused below */
        if (cli->beta1 != saved.beta1 || cli->beta2 != saved.beta2)
            printf("note: --betas %g,%g (the run had %g,%g)\n", cli->beta1, cli->beta2, saved.beta1, saved.beta2);
        o->beta1 = cli->beta1;
        o->beta2 = cli->beta2;
    }
    /* augmentation: may change (it draws from each item's own generator, so the loader's state
     * and position do not depend on it), with a note */
    if (GIVEN(O_AUGMENT) || GIVEN(O_NO_AUGMENT) || GIVEN(O_TRANSPOSE) || GIVEN(O_STRETCH) || GIVEN(O_VELOCITY)) {
        o->augment = cli->augment;
        if (cli->augment) {
            if (GIVEN(O_TRANSPOSE) || !saved.augment) {
                o->transpose_lo = cli->transpose_lo;
                o->transpose_hi = cli->transpose_hi;
            }
            if (GIVEN(O_STRETCH) || !saved.augment) {
                o->stretch_lo = cli->stretch_lo;
                o->stretch_hi = cli->stretch_hi;
            }
            if (GIVEN(O_VELOCITY) || !saved.augment) {
                o->velocity_shift = cli->velocity_shift;
                o->velocity_jitter = cli->velocity_jitter;
            }
            o->stretch_given = cli->stretch_given;
        }
        char now[128], had[128];
        augment_desc(o, now, sizeof now);
        augment_desc(&saved, had, sizeof had);
        if (o->augment != saved.augment || (o->augment && strcmp(now, had) != 0)) {
            if (!saved.augment) printf("note: augmentation on (the run had none)\n");
            else if (!o->augment) printf("note: augmentation off (the run had %s)\n", had);
            else printf("note: augmentation %s (the run had %s)\n", now, had);
        }
    }
    /* how the run is watched and kept: taken as given */
    if (GIVEN(O_MAX_SKIPS)) o->max_skips = cli->max_skips;
    if (GIVEN(O_WORKERS)) o->workers = cli->workers;
    if (GIVEN(O_DEVICE)) strcpy(o->device, cli->device);
    if (GIVEN(O_PRECISION)) {
        if (cli->precision != saved.precision)
            printf("note: --precision %s (the run had %s)\n", train_precision_name(cli->precision),
                   train_precision_name(saved.precision));
        o->precision = cli->precision;
    }
    if (GIVEN(O_CKPT_EVERY)) o->checkpoint_every = cli->checkpoint_every;
    if (GIVEN(O_KEEP)) o->keep = cli->keep;
    if (GIVEN(O_VALID_EVERY)) o->valid_every = cli->valid_every;
    if (GIVEN(O_VALID_BATCHES)) o->valid_batches = cli->valid_batches;
    if (GIVEN(O_SAMPLES_EVERY)) {
        o->samples_every = cli->samples_every;
        o->samples = true;
    }
    if (GIVEN(O_NO_SAMPLES)) o->samples = false;
    if (GIVEN(O_SAMPLE_SECONDS)) o->sample_seconds = cli->sample_seconds;
    if (GIVEN(O_LOG_EVERY)) o->log_every = cli->log_every;
    return CLI_OK;
}

/* ---- RUN_DIR/status.json: what the dashboard's status line shows ----------------------------
 * Rewritten (temp file + rename, no fsync: it is a hint, not data) at most every 2 s from the
 * metrics hook, and at the start and the end of the session. */
typedef struct train_status {
    double started, last_write;
} train_status;

static void write_status(train_run *r, train_status *st, const char *state, const char *message) {
    if (!r->writer) return;
    double now = train_wall_now();
    st->last_write = now;
    int64_t done = r->step - r->resume_step;
    double secs = train_elapsed(r) - r->elapsed_before;
    double eta = done > 0 && r->total_steps > r->step ? secs / (double)done * (double)(r->total_steps - r->step) : 0;
    char ckpt[64] = "";
    if (r->last_ckpt_step > 0) snprintf(ckpt, sizeof ckpt, "ckpt-%08lld.safetensors", (long long)r->last_ckpt_step);
    char dev[160];
    snprintf(dev, sizeof dev, "%s (OpenBLAS %s, %d threads)", r->o.device[0] ? r->o.device : "cpu", ct_blas_core(),
             ct_blas_threads());
    char json[1024];
    int n = snprintf(json, sizeof json,
                     "{\"state\":\"%s\",\"step\":%lld,\"total_steps\":%lld,\"epoch\":%lld,\"eta_s\":%.1f,"
                     "\"device\":\"%s\",\"precision\":\"%s\",\"pid\":%ld,\"started\":%.3f,\"updated\":%.3f,\"last_checkpoint\":\"%s\","
                     "\"message\":\"%s\"}\n",
                     state, (long long)r->step, (long long)r->total_steps,
                     (long long)(r->batches_per_epoch > 0 ? (r->step > 0 ? r->step - 1 : 0) / r->batches_per_epoch : 0), eta,
                     dev, train_precision_name(r->o.precision), (long)getpid(), st->started, now, ckpt, message ? message : "");
    if (n <= 0 || n >= (int)sizeof json) return;
    char path[TRAIN_PATH_MAX + 32], tmp[TRAIN_PATH_MAX + 48];
    snprintf(path, sizeof path, "%s/status.json", r->o.out);
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return;
    bool ok = fwrite(json, 1, (size_t)n, f) == (size_t)n;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) remove(tmp);
}

static void status_on_metrics(train_run *r, const char *json, void *ud) {
    train_status *st = ud;
    if (train_wall_now() - st->last_write >= 2.0) write_status(r, st, "running", NULL);
}

static int train_main(int argc, char **argv) {
    static const struct option opts[] = {
        {"corpus", required_argument, NULL, O_CORPUS},
        {"model", required_argument, NULL, O_MODEL},
        {"out", required_argument, NULL, O_OUT},
        {"layers", required_argument, NULL, O_LAYERS},
        {"hidden", required_argument, NULL, O_HIDDEN},
        {"embedding", required_argument, NULL, O_EMBED},
        {"embed", required_argument, NULL, O_EMBED},
        {"cell", required_argument, NULL, O_CELL},
        {"batch", required_argument, NULL, O_BATCH},
        {"window", required_argument, NULL, O_WINDOW},
        {"steps", required_argument, NULL, O_STEPS},
        {"epochs", required_argument, NULL, O_EPOCHS},
        {"lr", required_argument, NULL, O_LR},
        {"lr-schedule", required_argument, NULL, O_SCHED},
        {"warmup", required_argument, NULL, O_WARMUP},
        {"lr-step-size", required_argument, NULL, O_STEP_SIZE},
        {"lr-gamma", required_argument, NULL, O_GAMMA},
        {"lr-min", required_argument, NULL, O_LR_MIN},
        {"lr-decay-steps", required_argument, NULL, O_DECAY},
        {"clip", required_argument, NULL, O_CLIP},
        {"dropout", required_argument, NULL, O_DROPOUT},
        {"seed", required_argument, NULL, O_SEED},
        {"device", required_argument, NULL, O_DEVICE},
        {"precision", required_argument, NULL, O_PRECISION},
        {"workers", required_argument, NULL, O_WORKERS},
        {"resume", required_argument, NULL, O_RESUME},
        {"checkpoint-every", required_argument, NULL, O_CKPT_EVERY},
        {"keep", required_argument, NULL, O_KEEP},
        {"valid-every", required_argument, NULL, O_VALID_EVERY},
        {"valid-batches", required_argument, NULL, O_VALID_BATCHES},
        {"samples-every", required_argument, NULL, O_SAMPLES_EVERY},
        {"no-samples", no_argument, NULL, O_NO_SAMPLES},
        {"sample-seconds", required_argument, NULL, O_SAMPLE_SECONDS},
        {"log-every", required_argument, NULL, O_LOG_EVERY},
        {"spike-factor", required_argument, NULL, O_SPIKE},
        {"max-skips", required_argument, NULL, O_MAX_SKIPS},
        {"audio-rate", required_argument, NULL, O_AUDIO_RATE},
        {"dashboard", optional_argument, NULL, O_DASHBOARD},
        {"patience", required_argument, NULL, O_PATIENCE},
        {"plateau-factor", required_argument, NULL, O_PLATEAU_FACTOR},
        {"early-stop", required_argument, NULL, O_EARLY_STOP},
        {"no-init-bias", no_argument, NULL, O_NO_INIT_BIAS},
        {"augment", no_argument, NULL, O_AUGMENT},
        {"optimizer", required_argument, NULL, O_OPTIMIZER},
        {"weight-decay", required_argument, NULL, O_WEIGHT_DECAY},
        {"momentum", required_argument, NULL, O_MOMENTUM},
        {"betas", required_argument, NULL, O_BETAS},
        {"no-augment", no_argument, NULL, O_NO_AUGMENT},
        {"transpose", required_argument, NULL, O_TRANSPOSE},
        {"stretch", required_argument, NULL, O_STRETCH},
        {"velocity", required_argument, NULL, O_VELOCITY},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static train_opts o, cli;   /* large (paths): not on the stack */
    train_opts_defaults(&o);
    char resume[TRAIN_PATH_MAX] = "";
    char dash_listen[256] = "";
    bool given[O_END - O_CORPUS];
    memset(given, 0, sizeof given);
    int c, v;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c >= O_CORPUS && c < O_END) GIVEN(c) = true;
        switch (c) {
        case O_CORPUS: if (!copy_path("--corpus", optarg, o.corpus)) return CLI_USAGE; break;
        case O_OUT: if (!copy_path("--out", optarg, o.out)) return CLI_USAGE; break;
        case O_RESUME: if (!copy_path("--resume", optarg, resume)) return CLI_USAGE; break;
        case O_MODEL:
            v = cc_encoding_from_name(optarg);
            if (v != CC_ENC_MELODY && v != CC_ENC_PERFORMANCE && v != CC_ENC_PIANOROLL && v != CC_ENC_AUDIO)
                return cli_usage("train", "--model '%s': expected melody, performance, pianoroll or audio", optarg);
            o.model = v;
            break;
        case O_CELL:
            if ((v = cc_cell_from_name(optarg)) < 0)
                return cli_usage("train", "--cell '%s': expected lstm, gru or rnn", optarg);
            o.cell = (cc_cell)v;
            break;
        case O_SCHED:
            if ((v = train_sched_parse(optarg)) < 0)
                return cli_usage("train", "--lr-schedule '%s': expected constant, step, exp, cosine or plateau", optarg);
            o.sched = (train_sched)v;
            break;
        case O_DEVICE:
            if (strlen(optarg) >= sizeof o.device) return cli_usage("train", "--device '%s': expected cpu, cuda or cuda:N", optarg);
            strcpy(o.device, optarg);
            break;
        case O_PRECISION:
            if ((v = train_precision_parse(optarg)) < 0)
                return cli_usage("train", "--precision '%s': expected fp32, tf32 or bf16", optarg);
            o.precision = (train_precision)v;
            break;
        case O_NO_SAMPLES: o.samples = false; break;
        case O_NO_INIT_BIAS: o.init_bias = false; break;
        case O_AUGMENT: o.augment = true; break;
        case O_OPTIMIZER:
            if ((v = train_optim_parse(optarg)) < 0)
                return cli_usage("train", "--optimizer '%s': expected adam, adamw or sgd", optarg);
            o.optimizer = (ct_optim_kind)v;
            break;
        case O_BETAS:
            if (!parse_betas(optarg, &o.beta1, &o.beta2)) return CLI_USAGE;
            break;
        case O_NO_AUGMENT: o.augment = false; break;
        case O_TRANSPOSE: {
            double lo, hi;
            if (!parse_range("--transpose", optarg, true, &lo, &hi)) return CLI_USAGE;
            o.transpose_lo = (int64_t)lo;
            o.transpose_hi = (int64_t)hi;
            o.augment = true;
            break;
        }
        case O_STRETCH:
            if (!parse_range("--stretch", optarg, false, &o.stretch_lo, &o.stretch_hi)) return CLI_USAGE;
            o.stretch_given = true;
            o.augment = true;
            break;
        case O_VELOCITY:
            if (!parse_velocity(optarg, &o.velocity_shift, &o.velocity_jitter)) return CLI_USAGE;
            o.augment = true;
            break;
        case O_DASHBOARD:
            /* --dashboard, --dashboard=HOST:PORT or --dashboard HOST:PORT (a next argument that
             * is not an option and holds a ':') */
            if (!optarg && optind < argc && argv[optind][0] != '-' && strchr(argv[optind], ':'))
                optarg = argv[optind++];
            snprintf(dash_listen, sizeof dash_listen, "%s", optarg ? optarg : DASH_DEFAULT_LISTEN);
            if (strlen(dash_listen) >= sizeof dash_listen - 1)
                return cli_usage("train", "--dashboard '%s': expected HOST:PORT", optarg);
            {
                char derr[256];
                if (!dash_listen_ok(dash_listen, derr, sizeof derr))
                    return cli_usage("train", "--dashboard '%s': %s", dash_listen, derr);
            }
            break;
#define INT_OPT(code, flag, lo, hi, field) \
        case code: if (!cli_int("train", flag, optarg, lo, hi, &o.field)) return CLI_USAGE; break;
#define FLT_OPT(code, flag, lo, hi, field) \
        case code: if (!cli_float("train", flag, optarg, lo, hi, &o.field)) return CLI_USAGE; break;
        INT_OPT(O_LAYERS, "--layers", 1, 16, layers)
        INT_OPT(O_HIDDEN, "--hidden", 1, 8192, hidden)
        INT_OPT(O_EMBED, "--embedding", 1, 8192, embed)
        INT_OPT(O_BATCH, "--batch", 1, 4096, batch)
        INT_OPT(O_WINDOW, "--window", 2, 1 << 20, window)
        INT_OPT(O_STEPS, "--steps", 1, INT64_C(1) << 40, steps)
        INT_OPT(O_EPOCHS, "--epochs", 1, 1000000, epochs)
        INT_OPT(O_WARMUP, "--warmup", 0, INT64_C(1) << 40, warmup)
        INT_OPT(O_STEP_SIZE, "--lr-step-size", 1, INT64_C(1) << 40, lr_step_size)
        INT_OPT(O_DECAY, "--lr-decay-steps", 1, INT64_C(1) << 40, lr_decay_steps)
        INT_OPT(O_SEED, "--seed", 0, INT64_MAX, seed)
        INT_OPT(O_WORKERS, "--workers", 0, 64, workers)
        INT_OPT(O_CKPT_EVERY, "--checkpoint-every", 0, INT64_C(1) << 40, checkpoint_every)
        INT_OPT(O_KEEP, "--keep", 1, 1000000, keep)
        INT_OPT(O_VALID_EVERY, "--valid-every", 0, INT64_C(1) << 40, valid_every)
        INT_OPT(O_VALID_BATCHES, "--valid-batches", 1, 1000000, valid_batches)
        INT_OPT(O_SAMPLES_EVERY, "--samples-every", 0, INT64_C(1) << 40, samples_every)
        INT_OPT(O_LOG_EVERY, "--log-every", 1, INT64_C(1) << 40, log_every)
        INT_OPT(O_MAX_SKIPS, "--max-skips", 1, 1000000, max_skips)
        INT_OPT(O_AUDIO_RATE, "--audio-rate", 1000, 192000, audio_rate)
        INT_OPT(O_PATIENCE, "--patience", 1, 1000000, patience)
        INT_OPT(O_EARLY_STOP, "--early-stop", 0, 1000000, early_stop)
        FLT_OPT(O_PLATEAU_FACTOR, "--plateau-factor", 1e-6, 1, plateau_factor)
        FLT_OPT(O_LR, "--lr", 1e-9, 10, lr)
        FLT_OPT(O_GAMMA, "--lr-gamma", 1e-6, 1, lr_gamma)
        FLT_OPT(O_LR_MIN, "--lr-min", 0, 10, lr_min)
        FLT_OPT(O_CLIP, "--clip", 0, 1e6, clip)
        FLT_OPT(O_DROPOUT, "--dropout", 0, 0.95, dropout)
        FLT_OPT(O_SPIKE, "--spike-factor", 0, 1e9, spike_factor)
        FLT_OPT(O_WEIGHT_DECAY, "--weight-decay", 0, 10, weight_decay)
        FLT_OPT(O_MOMENTUM, "--momentum", 0, 0.999999, momentum)
        FLT_OPT(O_SAMPLE_SECONDS, "--sample-seconds", 0.25, 60, sample_seconds)
        case 'h': train_help(stdout); return CLI_OK;
        default:
            if (optopt >= O_CORPUS && optopt < O_END)
                return cli_usage("train", "%s needs a value", argv[optind - 1]);
            return cli_bad_option("train", argv[optind - 1]);
        }
    }
    if (cli_check_positionals("train", argc, argv, optind)) return CLI_USAGE;
    if (optind < argc) return cli_bad_option("train", argv[optind]);
    if (GIVEN(O_STEPS) && GIVEN(O_EPOCHS)) return cli_usage("train", "--steps and --epochs: give one of them");
    if (GIVEN(O_EPOCHS)) o.steps = 0;
    if (GIVEN(O_NO_AUGMENT) && (GIVEN(O_AUGMENT) || GIVEN(O_TRANSPOSE) || GIVEN(O_STRETCH) || GIVEN(O_VELOCITY)))
        return cli_usage("train", "--no-augment with --augment, --transpose, --stretch or --velocity: give one or the "
                         "other");
    if (o.augment && o.model == CC_ENC_AUDIO)
        return cli_usage("train", "--augment with --model audio: the augmentations (transposition, time stretch) "
                         "work on symbolic encodings (melody, performance, pianoroll)");
    if (o.lr_min > o.lr && o.sched == TRAIN_LR_COSINE)
        return cli_usage("train", "--lr-min %g is above --lr %g", o.lr_min, o.lr);
    if (GIVEN(O_DEVICE)) {   /* at once (--precision waits for a resumed run's options) */
        int rc = check_device(&o, false);
        if (rc != CLI_OK) return rc;
    }
    int64_t resume_step = -1;
    if (resume[0]) {
        cli = o;
        resume_step = train_find_checkpoint(resume);
        if (resume_step < 0)
            return cli_fail("train", "--resume %s: no checkpoint there (a ckpt-STEP.safetensors with its "
                            "ckpt-STEP.state, written by cantor train)", resume);
        int rc = merge_resume(&o, &cli, given, resume, resume_step);
        if (rc != CLI_OK) return rc;

    } else {
        if (!o.corpus[0]) return cli_usage("train", "--corpus FILE is required (make one with 'cantor corpus build')");
        if (!o.out[0]) return cli_usage("train", "--out RUN_DIR is required");
    }
    /* the optimizer's own options (after a resume: the run's optimizer) */
    if (GIVEN(O_MOMENTUM) && o.optimizer != CT_OPTIM_SGD)
        return cli_usage("train", "--momentum is SGD's (Adam and AdamW have --betas); the run's optimizer is %s: "
                         "give --optimizer sgd or drop --momentum", train_optim_name(o.optimizer));
    if (GIVEN(O_BETAS) && o.optimizer == CT_OPTIM_SGD)
        return cli_usage("train", "--betas are Adam's and AdamW's (SGD has --momentum): give --optimizer adam or "
                         "adamw, or drop --betas");
    int crc = check_device(&o, true);
    if (crc != CLI_OK) return crc;
    static train_run r;
    train_run_init(&r, &o);
    r.resumed = resume_step >= 0;
    r.resume_step = r.resumed ? resume_step : 0;
    /* Extension points (apps/train.h): data-parallel training sets r.shard_batch / r.grad_sync. */
    static train_status st;
    st.started = train_wall_now();
    r.on_metrics = status_on_metrics;
    r.on_metrics_ud = &st;
    int rc = train_dist_begin(&r);   /* data-parallel under mpirun; nothing otherwise */
    if (rc == CLI_OK) rc = train_setup(&r);
    rc = train_dist_ready(&r, rc);
    dash_server *dash = NULL;
    if (rc == CLI_OK && dash_listen[0] && r.writer) {
        /* After setup: the run folder exists (and an earlier run in it was cleared). The server
         * runs in its own threads and only reads files: it cannot slow or stop training. */
        char derr[512];
        const char *dirs[] = {r.o.out};
        if (dash_start(dash_listen, dirs, 1, &dash, derr, sizeof derr) != 0)
            train_warn(&r, "no dashboard: %s (training goes on)", derr);
        else train_say(&r, "dashboard: %s", dash_url(dash));
    }
    const bool ran = rc == CLI_OK;
    if (rc == CLI_OK) {
        write_status(&r, &st, "running", NULL);
        rc = train_loop(&r);
        write_status(&r, &st, rc == CLI_OK ? (r.step >= r.total_steps || r.early_stopped ? "finished" : "interrupted")
                                : rc == 130 ? "interrupted" : "failed", NULL);
    }
    rc = train_dist_end(&r, rc, ran);
    dash_stop(dash);
    train_run_free(&r);
    return rc;
}

const cli_cmd cli_cmd_train = {"train", "train a composer on a corpus (checkpoints, resume, metrics, samples)",
                               train_main, train_help};
