/* apps/train_loop.c — `cantor train`'s run: data, model, the step function with its guard,
 * validation, metrics.jsonl, the progress display, signals, and the loop.
 *
 * TEST-ONLY FAULTS. The environment variable CANTOR_TRAIN_FAULTS (unset in normal use) lists
 * faults to inject, "KIND@STEP" separated by commas: nan-loss (the loss becomes NaN), nan-grad
 * (the gradients become NaN), spike (the gradients are multiplied by 1e4), signal (SIGTERM is
 * raised at the start of that step). tests/apps/test_train.c uses them to check the guard and
 * the clean stop; they change nothing else. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "apps/cli.h"
#include "apps/train.h"
#include "corpora/build.h"

static double mono_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

double train_wall_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

double train_elapsed(const train_run *r) { return r->elapsed_before + (mono_now() - r->t_start); }

/* ---- output --------------------------------------------------------------------------------- */
static void clear_bar(train_run *r) {
    if (r->tty && r->bar_shown) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        r->bar_shown = false;
    }
}

void train_say(train_run *r, const char *fmt, ...) {
    if (!r->writer) return;
    clear_bar(r);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

void train_warn(train_run *r, const char *fmt, ...) {
    if (!r->writer) return;
    clear_bar(r);
    fflush(stdout);
    fputs("cantor train: warning: ", stderr);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void fmt_duration(double s, char *buf, size_t n) {
    if (!(s >= 0) || s > 1e8) snprintf(buf, n, "?");
    else if (s < 60) snprintf(buf, n, "%.0fs", s);
    else if (s < 3600) snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
}

/* ---- setup ---------------------------------------------------------------------------------- */
void train_run_init(train_run *r, const train_opts *o) {
    memset(r, 0, sizeof *r);
    r->o = *o;
    r->best_valid = NAN;
    r->best_step = -1;
    r->lr_scale = 1.0;
    r->last_ckpt_step = -1;
    r->writer = true;
    const char *f = getenv("CANTOR_TRAIN_FAULTS");
    if (f) snprintf(r->faults, sizeof r->faults, "%s", f);
}

static int mkdirs(const char *path) {
    char p[TRAIN_PATH_MAX];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) return -1;
        *s = '/';
    }
    if (mkdir(p, 0755) != 0 && errno != EEXIST) return -1;
    struct stat st;
    if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

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
    return c;
}

static void apply_sizes(cc_config *c, const train_opts *o) {
    c->cell = o->cell;
    c->layers = (int)o->layers;
    c->hidden = o->hidden;
    c->embed = c->encoding == CC_ENC_PIANOROLL ? 0 : o->embed;
    c->dropout = (float)o->dropout;
}

static int64_t sub_len(void *self) { return ((train_audio_subset *)self)->n; }
static ct_status sub_get(void *self, int64_t i, ct_data_item *out, ct_rng *rng) {
    (void)rng;
    train_audio_subset *s = self;
    return cp_audio_dataset_get(s->a, s->idx[i], out);
}

static int open_audio(train_run *r) {
    cp_audio_dataset_opts ao = cp_audio_dataset_defaults();
    ao.rate = (int)r->o.audio_rate;
    ao.window = r->o.window + 1 > ao.rate ? r->o.window + 1 : ao.rate;
    r->audio = cp_audio_dataset_open_dir(r->ctx, r->o.corpus, &ao);
    if (!r->audio) return cli_fail("train", "--corpus %s: %s", r->o.corpus, ct_ctx_error(r->ctx));
    cp_audio_dataset_stats st = cp_audio_dataset_get_stats(r->audio);
    for (int64_t i = 0; i < cp_audio_dataset_num_skipped(r->audio) && i < 20; i++)
        train_warn(r, "skipped %s", cp_audio_dataset_skip(r->audio, i)->message);
    int64_t n = cp_audio_dataset_len(r->audio);
    if (n == 0) return cli_fail("train", "--corpus %s: no audio file could be used (.wav, .flac, .ogg)", r->o.corpus);
    r->audio_train_idx = malloc(sizeof(int64_t) * (size_t)n);
    r->audio_valid_idx = malloc(sizeof(int64_t) * (size_t)n);
    if (!r->audio_train_idx || !r->audio_valid_idx) return cli_fail("train", "out of memory");
    /* every tenth file (the last one, with fewer than ten) validates */
    for (int64_t i = 0; i < n; i++) {
        int64_t file = 0, off, len;
        cp_audio_dataset_window(r->audio, i, &file, &off, &len);
        bool valid = st.files >= 2 && (st.files >= 10 ? file % 10 == 9 : file == st.files - 1);
        if (valid) r->audio_valid_idx[r->audio_n_valid++] = i;
        else r->audio_train_idx[r->audio_n_train++] = i;
    }
    r->audio_sub[0] = (train_audio_subset){r->audio, r->audio_train_idx, r->audio_n_train};
    r->audio_sub[1] = (train_audio_subset){r->audio, r->audio_valid_idx, r->audio_n_valid};
    r->tds = (ct_dataset){&r->audio_sub[0], sub_len, sub_get, NULL, NULL};
    r->vds = (ct_dataset){&r->audio_sub[1], sub_len, sub_get, NULL, NULL};
    r->have_valid = r->audio_n_valid > 0;
    r->cfg = cc_config_default(CC_ENC_AUDIO);
    r->cfg.sample_rate = (int)r->o.audio_rate;
    train_say(r, "corpus: %s (audio, %lld files, %.1f s at %d Hz): train %lld windows, valid %lld windows",
              r->o.corpus, (long long)st.files, (double)st.samples / ao.rate, ao.rate,
              (long long)r->audio_n_train, (long long)r->audio_n_valid);
    if (r->audio_n_train == 0) return cli_fail("train", "--corpus %s: the train split is empty", r->o.corpus);
    return CLI_OK;
}

/* The corpus file (building it first from a folder of MIDI files), its datasets and the
 * model's encoding settings. */
static int open_corpus(train_run *r) {
    train_opts *o = &r->o;
    struct stat st;
    if (o->model == CC_ENC_AUDIO) {
        if (stat(o->corpus, &st) != 0 || !S_ISDIR(st.st_mode))
            return cli_fail("train", "--corpus %s: %s (--model audio trains on a folder of audio files)", o->corpus,
                            stat(o->corpus, &st) != 0 ? strerror(errno) : "not a folder");
        return open_audio(r);
    }
    bool have_built = r->resumed && o->corpus_file[0] && stat(o->corpus_file, &st) == 0;
    if (!have_built) {
        if (stat(o->corpus, &st) != 0)
            return cli_fail("train", "--corpus %s: %s", o->corpus, strerror(errno));
        if (S_ISDIR(st.st_mode)) {
            if (mkdirs(o->out) != 0)
                return cli_fail("train", "%s: cannot create the run folder: %s", o->out, strerror(errno));
            cp_encoding_kind kind = o->model == CC_ENC_PERFORMANCE ? CP_PERFORMANCE
                                    : o->model == CC_ENC_PIANOROLL ? CP_PIANOROLL : CP_MELODY;
            if (strlen(o->out) + sizeof "/corpus.corpus" > sizeof o->corpus_file)
                return cli_usage("train", "--out %s: the path is too long", o->out);
            strcpy(o->corpus_file, o->out);
            strcat(o->corpus_file, "/corpus.corpus");
            cp_build_opts bo = cp_build_defaults(kind);
            cp_stats cs;
            memset(&cs, 0, sizeof cs);
            cp_error err;
            memset(&err, 0, sizeof err);
            train_say(r, "corpus: building %s from the MIDI files in %s (%s)", o->corpus_file, o->corpus,
                      cp_encoding_name(kind));
            ct_status s = cp_build_dir(o->corpus, o->corpus_file, &bo, &cs, &err);
            train_say(r, "corpus: %lld MIDI files, %lld used, %lld failed, %lld without a sequence, %lld duplicates",
                      (long long)cs.files_found, (long long)cs.files_used, (long long)cs.files_failed,
                      (long long)cs.files_empty, (long long)cs.files_duplicate);
            cp_stats_free(&cs);
            if (s != CT_OK) return cli_fail("train", "--corpus %s: %s", o->corpus, err.message);
        } else {
            snprintf(o->corpus_file, sizeof o->corpus_file, "%s", o->corpus);
        }
    }
    r->train_ds = cp_dataset_open(r->ctx, o->corpus_file, CP_TRAIN);
    if (!r->train_ds) return cli_fail("train", "%s", ct_ctx_error(r->ctx));
    r->valid_ds = cp_dataset_open(r->ctx, o->corpus_file, CP_VALID);
    if (!r->valid_ds) return cli_fail("train", "%s", ct_ctx_error(r->ctx));
    const cp_corpus *c = cp_dataset_corpus(r->train_ds);
    const cp_encoding *e = cp_corpus_encoding(c);
    r->cfg = config_for(e, o);
    if (o->model >= 0 && (int)r->cfg.encoding != o->model)
        return cli_usage("train", "--model %s, but %s is a %s corpus (build one with 'cantor corpus build "
                         "--encoding %s')", cc_encoding_name((cc_encoding)o->model), o->corpus_file,
                         cp_encoding_name(e->kind), cc_encoding_name((cc_encoding)o->model));
    r->tds = cp_dataset_as(r->train_ds);
    r->vds = cp_dataset_as(r->valid_ds);
    r->have_valid = cp_dataset_len(r->valid_ds) > 0;
    train_say(r, "corpus: %s (%s): train %lld pieces (%lld steps), valid %lld pieces (%lld steps), test %lld pieces",
              o->corpus_file, cp_encoding_name(e->kind), (long long)cp_corpus_split_pieces(c, CP_TRAIN),
              (long long)cp_corpus_split_steps(c, CP_TRAIN), (long long)cp_corpus_split_pieces(c, CP_VALID),
              (long long)cp_corpus_split_steps(c, CP_VALID), (long long)cp_corpus_split_pieces(c, CP_TEST));
    if (cp_dataset_len(r->train_ds) == 0)
        return cli_fail("train", "%s: the train split is empty: nothing to train on", o->corpus_file);
    return CLI_OK;
}

static void print_device(train_run *r) {
    char why[256] = "";
    int n = ct_cuda_device_count(why, sizeof why);
    char cuda[384];
    if (!ct_cuda_compiled()) snprintf(cuda, sizeof cuda, "CUDA not compiled in");
    else snprintf(cuda, sizeof cuda, "CUDA compiled in, %d device%s%s%s", n, n == 1 ? "" : "s", n ? "" : ": ", n ? "" : why);
    char what[512];   /* a GPU by name (what the run trains on, also in its logs) */
    train_say(r, "device: %s (%s)", r->dev.type == CT_CPU ? r->o.device : ct_device_describe(r->dev, what, sizeof what),
              cuda);
    train_say(r, "BLAS: %s (core %s, %d threads)", ct_blas_config(), ct_blas_core(), ct_blas_threads());
}

/* --augment: what the corpus's encoding allows (before the run folder is touched). Audio has no
 * musical encoding; a melody's tokens count grid steps, so an explicit --stretch is refused and
 * the default one is recorded as off (1:1). */
static int check_augment(train_run *r) {
    train_opts *o = &r->o;
    if (!o->augment) return CLI_OK;
    if (!r->train_ds)
        return cli_usage("train", "--augment with --model audio: the augmentations (transposition, time stretch) "
                         "work on symbolic encodings (melody, performance, pianoroll); drop --augment, "
                         "--transpose, --stretch and --velocity");
    const cp_encoding *e = cp_corpus_encoding(cp_dataset_corpus(r->train_ds));
    if (e->kind == CP_MELODY && !(o->stretch_lo == 1 && o->stretch_hi == 1)) {
        if (o->stretch_given)
            return cli_usage("train", "--stretch %g:%g on a melody corpus: melody tokens count grid steps (16th "
                             "notes), so there is no tempo to stretch; drop --stretch (or give --stretch 1:1)",
                             o->stretch_lo, o->stretch_hi);
        o->stretch_lo = o->stretch_hi = 1;
    }
    if ((o->velocity_shift || o->velocity_jitter) &&
        !(e->kind == CP_PERFORMANCE && e->perf.config.num_velocity_bins > 0))
        return cli_usage("train", "--velocity %lld:%lld on a %s corpus%s: velocity augmentation moves the velocity bins "
                         "of performance tokens; drop --velocity (or give --velocity 0:0)",
                         (long long)o->velocity_shift, (long long)o->velocity_jitter, cp_encoding_name(e->kind),
                         e->kind == CP_PERFORMANCE ? " without velocity bins" : "");
    return CLI_OK;
}

/* The training loader's transform: cp_augment with the run's ranges (each left out at 0:0 / 1:1). */
static ct_status build_augment(train_run *r, char *desc, size_t n) {
    const train_opts *o = &r->o;
    const cp_encoding *e = cp_corpus_encoding(cp_dataset_corpus(r->train_ds));
    cp_augment_opts a = cp_augment_defaults();
    a.transpose = !(o->transpose_lo == 0 && o->transpose_hi == 0);
    a.transpose_lo = (int)o->transpose_lo;
    a.transpose_hi = (int)o->transpose_hi;
    a.transpose_mode = CP_RANGE_REDRAW;
    a.stretch = e->kind != CP_MELODY && !(o->stretch_lo == 1 && o->stretch_hi == 1);
    a.stretch_lo = o->stretch_lo;
    a.stretch_hi = o->stretch_hi;
    a.velocity = o->velocity_shift || o->velocity_jitter;   /* check_augment: performance with bins */
    a.velocity_shift = (int)o->velocity_shift;
    a.velocity_jitter = (int)o->velocity_jitter;
    a.crop_len = 0;
    size_t k = (size_t)snprintf(desc, n, "augmentation (training only):");
    if (a.transpose && k < n)
        k += (size_t)snprintf(desc + k, n - k, " transpose %+d..%+d semitones", a.transpose_lo, a.transpose_hi);
    if (a.stretch && k < n) k += (size_t)snprintf(desc + k, n - k, "%s stretch %g..%g", a.transpose ? "," : "",
                                                  a.stretch_lo, a.stretch_hi);
    if (a.velocity && k < n)
        k += (size_t)snprintf(desc + k, n - k, "%s velocity shift +-%d, jitter +-%d bins",
                              a.transpose || a.stretch ? "," : "", a.velocity_shift, a.velocity_jitter);
    if (!a.transpose && !a.stretch && !a.velocity && k < n)
        snprintf(desc + k, n - k, " none (transpose 0:0, stretch 1:1)");
    return cp_augment(r->ctx, &r->augment, e, &a);
}

int train_setup(train_run *r) {
    train_opts *o = &r->o;
    r->ctx = ct_ctx_new();
    if (!r->ctx) return cli_fail("train", "out of memory");
    ct_ctx_set_error_handler(r->ctx, NULL, NULL);   /* messages are printed here */
    r->tty = isatty(STDERR_FILENO) == 1;
    char why[256] = "";
    if (!r->dev_chosen && ct_device_parse(o->device[0] ? o->device : "cpu", &r->dev, why, sizeof why) != CT_OK)
        return cli_usage("train", "--device: %s", why);
    print_device(r);
    int rc = open_corpus(r);
    if (rc != CLI_OK) return rc;
    rc = check_augment(r);
    if (rc != CLI_OK) return rc;
    /* the run folder: a fresh run replaces an earlier one there (only after the corpus opened) */
    if (mkdirs(o->out) != 0) return cli_fail("train", "%s: cannot create the run folder: %s", o->out, strerror(errno));
    if (!r->resumed && r->writer) {
        int n = train_clear_run_dir(o->out);
        if (n > 0)
            train_warn(r, "%s held an earlier run: its %d checkpoint, metrics and sample files were removed "
                       "(--resume %s continues a run instead)", o->out, n, o->out);
    }
    /* the model */
    apply_sizes(&r->cfg, o);
    char err[512];
    if (cc_config_resolve(&r->cfg, err, sizeof err) != CT_OK) return cli_usage("train", "%s", err);
    ct_rng_seed(&r->rng, (uint64_t)o->seed);
    r->m = cc_model_new(r->ctx, &r->rng, &r->cfg);
    if (!r->m) return cli_fail("train", "%s", ct_ctx_error(r->ctx));
    /* a fresh piano-roll run starts the output bias at the train keys' frequencies (a resumed
     * run gets it back with the weights) */
    if (!r->resumed && o->init_bias && r->cfg.encoding == CC_ENC_PIANOROLL) {
        if (train_init_output_bias(r) != CT_OK) return cli_fail("train", "output bias: %s", ct_ctx_error(r->ctx));
        train_say(r, "output bias: the logit of each key's smoothed frequency in the train split "
                  "(--no-init-bias: zero)");
    }
    train_opts_resolve_weight_decay(o);   /* what run.json and the checkpoints record */
    r->opt = train_optim_new(o, r->m);
    if (!r->opt) return cli_fail("train", "%s", ct_ctx_error(r->ctx));
    char desc[256];
    cc_model_describe(r->m, desc, sizeof desc);
    train_say(r, "model: %s (%lld parameters)", desc, (long long)cc_model_num_params(r->m));
    /* the data loader */
    r->lo = ct_dataloader_defaults();
    r->lo.batch_size = o->batch;
    r->lo.sampler = CT_SAMPLER_RANDOM;
    r->lo.seed = (uint64_t)o->seed;
    r->lo.workers = (int)o->workers;
    r->lo.on_error = CT_ON_ERROR_SKIP;
    r->lo.collate.targets = true;
    r->lo.collate.max_len = o->window;
    if (o->augment) {
        char adesc[160];
        if (build_augment(r, adesc, sizeof adesc) != CT_OK) return cli_fail("train", "--augment: %s", ct_ctx_error(r->ctx));
        r->lo.transform = &r->augment;
        train_say(r, "%s", adesc);
    }
    r->dl = ct_dataloader_new(r->ctx, &r->tds, &r->lo);
    if (!r->dl) return cli_fail("train", "data: %s", ct_ctx_error(r->ctx));
    r->batches_per_epoch = ct_dataloader_num_batches(r->dl);
    r->total_steps = o->steps > 0 ? o->steps : o->epochs * r->batches_per_epoch;
    int64_t ntrain = ct_dataset_len(&r->tds), nvalid = r->have_valid ? ct_dataset_len(&r->vds) : 0;
    if (ntrain < 10 || r->batches_per_epoch < 4)
        train_warn(r, "the train split is tiny (%lld item%s, %lld batch%s of %lld per epoch): expect the model to "
                   "overfit it", (long long)ntrain, ntrain == 1 ? "" : "s", (long long)r->batches_per_epoch,
                   r->batches_per_epoch == 1 ? "" : "es", (long long)o->batch);
    if (nvalid == 0)
        train_warn(r, "the valid split is empty: no validation loss and no best.safetensors");
    else if (nvalid < 3)
        train_warn(r, "the valid split has only %lld item%s: the validation loss will be noisy", (long long)nvalid,
                   nvalid == 1 ? "" : "s");
    if (r->resumed) {
        if (train_restore(r, r->resume_step) != CT_OK)
            return cli_fail("train", "--resume %s: %s", o->out, ct_ctx_error(r->ctx));
        char path[TRAIN_PATH_MAX + 64];
        if (r->writer) {
            char terr[2 * TRAIN_PATH_MAX + 128];
            static const char *const logs[] = {"metrics.jsonl", "samples.jsonl"};
            for (int i = 0; i < 2; i++)
                if (!train_truncate_jsonl(train_path(r, path, sizeof path, "%s", logs[i]), r->step, terr, sizeof terr))
                    train_warn(r, "%s (its lines after step %lld stay)", terr, (long long)r->step);
        }
        train_say(r, "resumed %s at step %lld (epoch %lld)", o->out, (long long)r->step,
                  (long long)ct_dataloader_position(r->dl).epoch);
    }
    /* the model and the optimizer to the device (after a resume loaded them on the CPU) */
    if (r->dev.type != CT_CPU && (ct_module_to(r->m, r->dev) != CT_OK || ct_optim_to(r->opt, r->dev) != CT_OK))
        return cli_fail("train", "--device %s: %s", o->device, ct_ctx_error(r->ctx));
    /* --precision: the device's GEMM mode (cmd_train.c refused tf32 / bf16 on the CPU); set
     * both ways, as the setting belongs to the device for the whole process */
    if (r->dev.type != CT_CPU) {
        char pwhy[256] = "";
        if (ct_device_set_tf32(r->dev, o->precision == TRAIN_TF32, pwhy, sizeof pwhy) != CT_OK ||
            ct_device_set_bf16(r->dev, o->precision == TRAIN_BF16, pwhy, sizeof pwhy) != CT_OK)
            return cli_fail("train", "--precision %s on %s: %s", train_precision_name(o->precision), o->device,
                            pwhy[0] ? pwhy : ct_ctx_error(r->ctx));
        train_say(r, "precision: %s", o->precision == TRAIN_BF16 ? "bf16 (bfloat16 GEMM inputs, float32 accumulation, "
                                                                 "float32 weights and optimizer)"
                                      : o->precision == TRAIN_TF32 ? "tf32 (TF32 tensor-core GEMMs, float32 elsewhere)"
                                                                   : "fp32");
    }
    char sched[160];
    int k = snprintf(sched, sizeof sched, "%s", train_sched_name(o->sched));
    if (o->sched == TRAIN_LR_PLATEAU)
        k += snprintf(sched + k, sizeof sched - (size_t)k, " (x%g after %lld validations without a new best)",
                      o->plateau_factor, (long long)o->patience);
    if (o->warmup > 0) k += snprintf(sched + k, sizeof sched - (size_t)k, ", %lld warm-up steps", (long long)o->warmup);
    if (o->early_stop > 0)
        k += snprintf(sched + k, sizeof sched - (size_t)k, ", early stop after %lld validations without a new best",
                      (long long)o->early_stop);
    char clip[48] = "no gradient clipping";
    if (o->clip > 0) snprintf(clip, sizeof clip, "gradient clipping at norm %g", o->clip);
    char optd[160];
    int olen = snprintf(optd, sizeof optd, "%s", ct_optim_name(r->opt));
    if (o->optimizer == CT_OPTIM_SGD && o->momentum > 0)
        olen += snprintf(optd + olen, sizeof optd - (size_t)olen, " (momentum %g)", o->momentum);
    if (o->optimizer != CT_OPTIM_SGD && (o->beta1 != 0.9 || o->beta2 != 0.999))
        olen += snprintf(optd + olen, sizeof optd - (size_t)olen, " (betas %g,%g)", o->beta1, o->beta2);
    if (o->weight_decay > 0)
        snprintf(optd + olen, sizeof optd - (size_t)olen, " weight decay %g%s", o->weight_decay,
                 o->optimizer == CT_OPTIM_ADAMW ? " (decoupled)" : " (L2)");
    train_say(r, "run: %s: %lld steps (%.2f epochs of %lld batches), batch %lld, window %lld, %s lr %g %s, %s",
              o->out, (long long)r->total_steps, (double)r->total_steps / (double)r->batches_per_epoch,
              (long long)r->batches_per_epoch, (long long)o->batch, (long long)o->window, optd, o->lr, sched, clip);
    char path[TRAIN_PATH_MAX + 64];
    if (!r->writer) return CLI_OK;
    r->metrics = fopen(train_path(r, path, sizeof path, "metrics.jsonl"), "a");
    if (!r->metrics) return cli_fail("train", "%s: %s", path, strerror(errno));
    (void)train_write_run_json(r);   /* warns itself */
    return CLI_OK;
}

void train_run_free(train_run *r) {
    if (r->metrics) fclose(r->metrics);
    ct_dataloader_free(r->dl);
    ct_transform_free(&r->augment);   /* after the loader that borrowed it */
    ct_optim_free(r->opt);
    ct_module_free(r->m);
    cp_dataset_free(r->train_ds);
    cp_dataset_free(r->valid_ds);
    cp_audio_dataset_free(r->audio);
    free(r->audio_train_idx);
    free(r->audio_valid_idx);
    ct_ctx_free(r->ctx);
    memset(r, 0, sizeof *r);
}

/* ---- the step ------------------------------------------------------------------------------- */
static bool fault_at(const train_run *r, const char *kind, int64_t step) {
    size_t kl = strlen(kind);
    for (const char *p = r->faults; *p;) {
        if (!strncmp(p, kind, kl) && p[kl] == '@' && strtoll(p + kl + 1, NULL, 10) == step) return true;
        const char *c = strchr(p, ',');
        if (!c) break;
        p = c + 1;
    }
    return false;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double norm_median(const train_run *r) {
    int64_t n = r->n_norms < TRAIN_NORM_WINDOW ? r->n_norms : TRAIN_NORM_WINDOW;
    double v[TRAIN_NORM_WINDOW];
    memcpy(v, r->norms, sizeof(double) * (size_t)n);
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void push_norm(train_run *r, double norm) {
    r->norms[r->n_norms % TRAIN_NORM_WINDOW] = norm;
    r->n_norms++;
}

ct_status train_step(train_run *r, train_step_result *res) {
    memset(res, 0, sizeof *res);
    const int64_t step = r->step + 1;
    res->step = step;
    if (fault_at(r, "signal", step)) raise(SIGTERM);
    double t0 = mono_now();
    ct_ctx *ctx = r->ctx;
    ct_scope_begin(ctx);
    const ct_batch *b = ct_dataloader_next(r->dl);
    if (!b && ct_dataloader_status(r->dl) == CT_OK) {   /* the epoch ended: the next one */
        const ct_data_report *rep = ct_dataloader_epoch_report(r->dl);
        if (rep && rep->skipped > 0) {
            char text[2048];
            ct_data_report_format(rep, text, sizeof text);
            train_warn(r, "%s", text);
        }
        b = ct_dataloader_next(r->dl);
    }
    if (!b) {
        ct_scope_end(ctx);
        if (ct_ctx_status(ctx) == CT_OK) ct_fail(ctx, CT_E_STATE, "data: no batch (every item of the epoch failed?)");
        return ct_ctx_status(ctx);
    }
    res->epoch = b->epoch;
    ct_batch part;
    memset(&part, 0, sizeof part);
    const ct_batch *mine = r->shard_batch ? r->shard_batch(r, b, &part, r->shard_ud) : b;   /* data-parallel */
    if (!mine) {
        ct_batch_clear(&part);
        ct_scope_end(ctx);
        return ct_ctx_status(ctx) != CT_OK ? ct_ctx_status(ctx) : CT_E_STATE;
    }
    res->lr = train_lr_at(&r->o, r->total_steps, step - 1);
    if (r->o.sched == TRAIN_LR_PLATEAU) res->lr *= r->lr_scale;
    ct_optim_set_lr(r->opt, res->lr);
    ct_optim_zero_grad(r->opt);
    ct_tensor *loss = NULL;
    int64_t count = 0;
    /* data-parallel: a process whose shard of a short batch is empty computes nothing, and
     * takes part in grad_sync with count 0 */
    const bool empty = mine->rows == 0;
    ct_status ls = empty ? ((loss = ct_scalar(ctx, 0.0f)) ? CT_OK : ct_ctx_status(ctx))
                         : cc_loss(r->m, mine, -100, &r->rng, &loss, &count);
    ct_batch_clear(&part);
    if (ls != CT_OK) {
        ct_scope_end(ctx);
        return ct_ctx_status(ctx);
    }
    if (fault_at(r, "nan-loss", step)) loss = ct_mul_scalar(loss, NAN);
    res->loss = ct_item(loss);
    res->tokens = count;
    res->grad_norm = NAN;
    const bool loss_ok = isfinite(res->loss);
    if (loss_ok && !empty && ct_backward(loss) != CT_OK) {
        ct_scope_end(ctx);
        return ct_ctx_status(ctx);
    }
    ct_tensor *grads = ct_module_flat_grads(r->m);
    if (r->grad_sync) {   /* data-parallel: every process all-reduces, every step */
        if (!loss_ok) ct_inplace_fill(grads, NAN);
        ct_status s = r->grad_sync(r, grads, &res->tokens, &res->loss, r->grad_sync_ud);
        if (s != CT_OK) {
            ct_scope_end(ctx);
            return s;
        }
    }
    if (!loss_ok) {
        res->skipped = true;
        snprintf(res->skip_reason, sizeof res->skip_reason, "non-finite loss (%g)", res->loss);
    } else {
        if (fault_at(r, "nan-grad", step)) ct_inplace_scale(grads, NAN);
        if (fault_at(r, "spike", step)) ct_inplace_scale(grads, 1e4f);
        /* the norm before clipping; clip 0 measures without clipping */
        double norm = NAN;
        ct_status cs = ct_clip_grad_norm(r->m, r->o.clip > 0 ? (float)r->o.clip : 3.0e38f, &norm);
        res->grad_norm = norm;
        if (cs != CT_OK || !isfinite(norm)) {
            ct_ctx_clear_error(ctx);
            res->skipped = true;
            snprintf(res->skip_reason, sizeof res->skip_reason, "non-finite gradient norm (%g)", norm);
        } else if (r->o.spike_factor > 0 && r->n_norms >= TRAIN_NORM_WARMUP) {
            double med = norm_median(r);
            if (norm > r->o.spike_factor * med) {
                res->skipped = true;
                snprintf(res->skip_reason, sizeof res->skip_reason,
                         "gradient norm spike (%.4g > %g x the median %.4g of the last %d)", norm, r->o.spike_factor,
                         med, TRAIN_NORM_WINDOW);
            }
        }
    }
    if (!res->skipped) {
        if (ct_optim_step(r->opt) != CT_OK) {
            ct_scope_end(ctx);
            return ct_ctx_status(ctx);
        }
        push_norm(r, res->grad_norm);
        r->consecutive_skips = 0;
    } else {
        r->consecutive_skips++;
        r->skipped_total++;
    }
    ct_scope_end(ctx);
    r->step = step;
    ct_dataloader_pos pos = ct_dataloader_position(r->dl);
    res->epoch_end = pos.batch >= r->batches_per_epoch;
    res->seconds = mono_now() - t0;
    r->train_seconds += res->seconds;
    r->tokens_session += res->tokens;
    r->tokens_total += res->tokens;
    return CT_OK;
}

/* ---- the output bias's start ------------------------------------------------------------------ */
ct_status train_init_output_bias(train_run *r) {
    int64_t counts[CM_ROLL_NUM_KEYS] = {0}, total = 0;
    const int64_t n = ct_dataset_len(&r->tds);
    for (int64_t i = 0; i < n; i++) {
        ct_data_item it;
        ct_item_init(&it);
        ct_status s = ct_dataset_get(&r->tds, i, &it, NULL);
        if (s != CT_OK || it.width != CM_ROLL_NUM_KEYS || !it.values) {
            if (s == CT_OK || ct_ctx_status(r->ctx) == CT_OK)
                ct_fail(r->ctx, s != CT_OK ? s : CT_E_ARG, "train item %lld: %s", (long long)i,
                        it.error ? it.error : s != CT_OK ? ct_status_text(s) : "not an 88-key piano-roll item");
            ct_item_free(&it);
            return ct_ctx_status(r->ctx);
        }
        for (int64_t t = 0; t < it.len; t++) {
            const float *f = it.values + t * CM_ROLL_NUM_KEYS;
            for (int k = 0; k < CM_ROLL_NUM_KEYS; k++) counts[k] += f[k] != 0;
        }
        total += it.len;
        ct_item_free(&it);
    }
    double freq[CM_ROLL_NUM_KEYS];
    cc_smoothed_frequencies(counts, total, CM_ROLL_NUM_KEYS, freq);
    return cc_model_init_output_bias(r->m, freq, CM_ROLL_NUM_KEYS);
}

/* ---- validation ----------------------------------------------------------------------------- */
double train_validate(train_run *r, int64_t *count_out) {
    *count_out = 0;
    if (!r->have_valid) return NAN;
    ct_dataloader_opts lo = r->lo;
    lo.sampler = CT_SAMPLER_SEQUENTIAL;
    lo.workers = 0;
    lo.transform = NULL;   /* validation is never augmented */
    /* piano roll: whole pieces, so that the loss is the benchmarks' NLL (what `cantor eval`
     * reports), not that of a random window of each long piece */
    if (r->cfg.encoding == CC_ENC_PIANOROLL) lo.collate.max_len = 0;
    ct_dataloader *vdl = ct_dataloader_new(r->ctx, &r->vds, &lo);   /* from the start each time */
    if (!vdl) {
        train_warn(r, "validation: %s", ct_ctx_error(r->ctx));
        ct_ctx_clear_error(r->ctx);
        return NAN;
    }
    bool was = ct_set_grad_enabled(r->ctx, false);
    ct_module_train(r->m, false);
    double sum = 0;
    int64_t count = 0;
    for (int64_t i = 0; i < r->o.valid_batches; i++) {
        ct_scope_begin(r->ctx);
        const ct_batch *b = ct_dataloader_next(vdl);
        ct_tensor *loss = NULL;
        int64_t n = 0;
        if (b && cc_loss(r->m, b, -100, NULL, &loss, &n) == CT_OK && n > 0) {
            sum += ct_item(loss) * (double)n;
            count += n;
        }
        ct_scope_end(r->ctx);
        if (!b) break;
    }
    ct_ctx_clear_error(r->ctx);
    ct_module_train(r->m, true);
    ct_set_grad_enabled(r->ctx, was);
    ct_dataloader_free(vdl);
    *count_out = count;
    return count ? sum / (double)count : NAN;
}

/* ---- metrics and progress ------------------------------------------------------------------- */
static void json_num(char *buf, size_t n, size_t *k, const char *key, double v) {
    int w = isfinite(v) ? snprintf(buf + *k, n - *k, ",\"%s\":%.9g", key, v) : snprintf(buf + *k, n - *k, ",\"%s\":null", key);
    if (w > 0 && *k + (size_t)w < n) *k += (size_t)w;
}

static void write_metrics(train_run *r, const train_step_result *res, bool validated, double vloss, int64_t vcount,
                          bool best, bool ckpt) {
    char buf[2048];
    double time_s = train_elapsed(r);
    double tps = r->train_seconds > 0 ? (double)r->tokens_session / r->train_seconds : 0;
    size_t k = (size_t)snprintf(buf, sizeof buf, "{\"step\":%lld,\"epoch\":%lld", (long long)res->step, (long long)res->epoch);
    json_num(buf, sizeof buf, &k, "time", time_s);
    json_num(buf, sizeof buf, &k, "time_s", time_s);
    k += (size_t)snprintf(buf + k, sizeof buf - k, ",\"wall\":%.3f", train_wall_now());
    json_num(buf, sizeof buf, &k, "train_loss", res->loss);
    json_num(buf, sizeof buf, &k, "loss", res->loss);
    json_num(buf, sizeof buf, &k, "lr", res->lr);
    json_num(buf, sizeof buf, &k, "grad_norm", res->grad_norm);
    k += (size_t)snprintf(buf + k, sizeof buf - k, ",\"tokens\":%lld", (long long)res->tokens);
    json_num(buf, sizeof buf, &k, "tokens_per_s", tps);
    json_num(buf, sizeof buf, &k, "step_s", res->seconds);
    k += (size_t)snprintf(buf + k, sizeof buf - k, ",\"skipped\":%s", res->skipped ? "true" : "false");
    if (res->skipped && k < sizeof buf) {
        k += (size_t)snprintf(buf + k, sizeof buf - k, ",\"skip_reason\":");
        if (k < sizeof buf) train_json_str(buf, sizeof buf, &k, res->skip_reason);
    }
    if (validated && k < sizeof buf) {
        json_num(buf, sizeof buf, &k, "valid_loss", vloss);
        k += (size_t)snprintf(buf + k, sizeof buf - k, ",\"valid_tokens\":%lld,\"best\":%s", (long long)vcount,
                              best ? "true" : "false");
    }
    if (res->epoch_end && k < sizeof buf) k += (size_t)snprintf(buf + k, sizeof buf - k, ",\"epoch_end\":true");
    if (ckpt && k < sizeof buf)
        k += (size_t)snprintf(buf + k, sizeof buf - k, ",\"checkpoint\":\"ckpt-%08lld.safetensors\"", (long long)res->step);
    if (k + 2 >= sizeof buf) return;   /* cannot happen with these fields */
    buf[k++] = '}';
    buf[k] = 0;
    if (r->metrics) {
        bool ok = fprintf(r->metrics, "%s\n", buf) > 0;
        ok = fflush(r->metrics) == 0 && ok;   /* the dashboard tails this file */
        if (!ok && !r->metrics_failed) {
            char path[TRAIN_PATH_MAX + 64];
            train_warn(r, "%s: cannot append: %s (training goes on)", train_path(r, path, sizeof path, "metrics.jsonl"),
                       strerror(errno));
            r->metrics_failed = true;
        }
        if (!ok) clearerr(r->metrics);
    }
    if (r->on_metrics) r->on_metrics(r, buf, r->on_metrics_ud);
}

static void progress(train_run *r, const train_step_result *res, bool force) {
    const int64_t done = res->step - r->resume_step;
    const double el = mono_now() - r->t_start;
    const double eta = done > 0 ? el / (double)done * (double)(r->total_steps - res->step) : NAN;
    const double tps = r->train_seconds > 0 ? (double)r->tokens_session / r->train_seconds : 0;
    char e[32];
    fmt_duration(eta, e, sizeof e);
    if (r->tty) {
        double now = mono_now();
        if (!force && now - r->bar_drawn < 0.1) return;
        r->bar_drawn = now;
        const int width = 24;
        int fill = r->total_steps > 0 ? (int)((double)width * (double)res->step / (double)r->total_steps) : 0;
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
        bar[width] = 0;
        fprintf(stderr, "\r\033[Kstep %lld/%lld [%s] loss %.4f  %.0f tok/s  ETA %s", (long long)res->step,
                (long long)r->total_steps, bar, res->loss, tps, e);
        fflush(stderr);
        r->bar_shown = true;
    } else if (force || res->step % r->o.log_every == 0 || done == 1) {
        train_say(r, "step %lld/%lld  loss %.4f  lr %.3g  grad norm %.3f  %.0f tokens/s  ETA %s", (long long)res->step,
                  (long long)r->total_steps, res->loss, res->lr, res->grad_norm, tps, e);
    }
}

int train_after_step(train_run *r, const train_step_result *res) {
    const train_opts *o = &r->o;
    const int64_t s = res->step;
    if (res->skipped && r->writer) {
        clear_bar(r);
        fprintf(stderr, "cantor train: step %lld skipped: %s\n", (long long)s, res->skip_reason);
    }
    const bool last = s >= r->total_steps;
    const bool point = (o->valid_every > 0 && s % o->valid_every == 0) || res->epoch_end || last;
    bool validated = false, best = false;
    double vloss = NAN;
    int64_t vcount = 0;
    if (point && r->have_valid && r->writer) {
        vloss = train_validate(r, &vcount);
        validated = true;
        if (isfinite(vloss) && (!isfinite(r->best_valid) || vloss < r->best_valid)) {
            best = true;
            r->best_valid = vloss;
            r->best_step = s;
            if (train_save_best(r, vloss) != CT_OK) {
                train_warn(r, "best.safetensors: %s", ct_ctx_error(r->ctx));
                ct_ctx_clear_error(r->ctx);
            }
        }
        train_say(r, "step %lld  valid loss %.4f%s%s", (long long)s, vloss, best ? " (best)" : "",
                  res->epoch_end ? "  (end of an epoch)" : "");
        if (isfinite(vloss)) {
            /* the plateau schedule and the early stop count validations without a new best */
            r->since_best = best ? 0 : r->since_best + 1;
            if (o->early_stop > 0 && r->since_best >= o->early_stop) {
                r->early_stopped = true;
                train_say(r, "early stop: %lld validations without a new best (best valid loss %.4f at step %lld, "
                          "in best.safetensors)", (long long)r->since_best, r->best_valid, (long long)r->best_step);
            } else if (o->sched == TRAIN_LR_PLATEAU && !best && r->since_best % o->patience == 0) {
                r->lr_scale *= o->plateau_factor;
                train_say(r, "plateau: %lld validations without a new best: lr %g -> %g", (long long)r->since_best,
                          train_lr_at(o, r->total_steps, s) * r->lr_scale / o->plateau_factor,
                          train_lr_at(o, r->total_steps, s) * r->lr_scale);
            }
        }
    } else if (res->epoch_end) {
        train_say(r, "step %lld  end of epoch %lld", (long long)s, (long long)res->epoch);
    }
    /* data-parallel: the writer alone validates, but the plateau schedule and the early stop
     * act on every process, so every process takes the writer's decision (and its bests) */
    if (point && r->have_valid && r->dist && ct_dist_size(r->dist) > 1 &&
        (o->sched == TRAIN_LR_PLATEAU || o->early_stop > 0)) {
        double dv[2] = {r->lr_scale, r->best_valid};
        int64_t iv[3] = {r->since_best, r->early_stopped ? 1 : 0, r->best_step};
        ct_status st = ct_dist_broadcast_bytes(r->dist, dv, sizeof dv, 0);
        if (st == CT_OK) st = ct_dist_broadcast_bytes(r->dist, iv, sizeof iv, 0);
        if (st != CT_OK) {
            clear_bar(r);
            cli_fail("train", "step %lld: the processes could not share the validation's result (MPI broadcast "
                     "failed): the job ends", (long long)s);
            ct_dist_abort(r->dist, CLI_FAIL);
            return CLI_FAIL;
        }
        r->lr_scale = dv[0];
        r->best_valid = dv[1];
        r->since_best = iv[0];
        r->early_stopped = iv[1] != 0;
        r->best_step = iv[2];
    }
    if (r->writer && o->samples && (o->samples_every > 0 ? s % o->samples_every == 0 : point)) train_sample_gallery(r);
    bool ckpt = false;
    if (o->checkpoint_every > 0 && s % o->checkpoint_every == 0 && !last) {
        if (train_checkpoint(r) != CT_OK) {
            write_metrics(r, res, validated, vloss, vcount, best, false);
            return CLI_FAIL;
        }
        ckpt = true;
    }
    write_metrics(r, res, validated, vloss, vcount, best, ckpt);
    if (r->writer) progress(r, res, false);
    return CLI_OK;
}

/* ---- signals and the loop -------------------------------------------------------------------- */
static volatile sig_atomic_t g_stop;
static void on_signal(int sig) {
    (void)sig;
    if (g_stop) _exit(130);   /* a second Ctrl-C: at once (every file on disk is whole) */
    g_stop = 1;
}
bool train_stop_requested(void) { return g_stop != 0; }

static void checkpoint_failed(train_run *r) {
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", ct_ctx_error(r->ctx));
    clear_bar(r);
    if (r->last_ckpt_step >= 0)
        cli_fail("train", "the checkpoint at step %lld failed: %s; the last good checkpoint is %s/ckpt-%08lld "
                 "(continue with: cantor train --resume %s)", (long long)r->step, msg, r->o.out,
                 (long long)r->last_ckpt_step, r->o.out);
    else
        cli_fail("train", "the checkpoint at step %lld failed: %s", (long long)r->step, msg);
}

int train_loop(train_run *r) {
    struct sigaction sa, old_int, old_term, old_usr1;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    g_stop = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    /* data-parallel: mpirun forwards SIGUSR1 to every process without killing them (its Ctrl-C
     * sends SIGTERM, then SIGKILL about a second later); a stop is agreed in grad_sync, so the
     * loop then reads only *r->stop */
    if (r->grad_sync) sigaction(SIGUSR1, &sa, &old_usr1);
    if (!r->stop) r->stop = &g_stop;
    const volatile sig_atomic_t *local = r->grad_sync ? r->stop : &g_stop;
    r->t_start = mono_now();
    int rc = CLI_OK;
    char path[TRAIN_PATH_MAX + 64];
    if (r->step >= r->total_steps) {
        train_say(r, "%s is at step %lld of %lld: nothing to do (raise --steps to train on)", r->o.out,
                  (long long)r->step, (long long)r->total_steps);
        goto out;
    }
    if (r->o.early_stop > 0 && r->since_best >= r->o.early_stop) {
        r->early_stopped = true;
        train_say(r, "%s stopped early at step %lld (%lld validations without a new best): nothing to do "
                  "(raise --early-stop to train on)", r->o.out, (long long)r->step, (long long)r->since_best);
        goto out;
    }
    bool stopped = false;
    while (r->step < r->total_steps) {
        if (*r->stop || *local) { stopped = true; break; }
        train_step_result res;
        if (train_step(r, &res) != CT_OK) {
            clear_bar(r);
            cli_fail("train", "step %lld: %s", (long long)r->step + 1, ct_ctx_error(r->ctx));
            rc = CLI_FAIL;
            goto out;
        }
        if (train_after_step(r, &res) != CLI_OK) {
            checkpoint_failed(r);
            rc = CLI_FAIL;
            goto out;
        }
        if (r->consecutive_skips >= r->o.max_skips) {
            clear_bar(r);
            cli_fail("train", "%lld steps in a row were skipped (the last: %s): training stops; lower --lr or "
                     "check the data", (long long)r->consecutive_skips, res.skip_reason);
            if (r->step > r->last_ckpt_step && train_checkpoint(r) == CT_OK)
                fprintf(stderr, "cantor train: the weights of step %lld (the last good update) are in %s\n",
                        (long long)r->step, train_path(r, path, sizeof path, "model.safetensors"));
            if (r->dist) ct_dist_barrier(r->dist);   /* every process is here: wait for the writer's save */
            rc = CLI_FAIL;
            goto out;
        }
        if (r->early_stopped) break;
        if (*r->stop || *local) { stopped = true; break; }
    }
    if (r->step > r->last_ckpt_step && train_checkpoint(r) != CT_OK) {
        checkpoint_failed(r);
        rc = CLI_FAIL;
        goto out;
    }
    clear_bar(r);
    if (stopped) {
        train_say(r, "interrupted at step %lld of %lld: saved %s and ckpt-%08lld (%lld steps skipped); continue "
                  "with: cantor train --resume %s", (long long)r->step, (long long)r->total_steps,
                  train_path(r, path, sizeof path, "model.safetensors"), (long long)r->step,
                  (long long)r->skipped_total, r->o.out);
        rc = 130;
    } else {
        train_say(r, "saved %s (step %lld; %lld steps skipped; best valid loss %.4f at step %lld)",
                  train_path(r, path, sizeof path, "model.safetensors"), (long long)r->step, (long long)r->skipped_total,
                  r->best_valid, (long long)r->best_step);
    }
out:
    clear_bar(r);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (r->grad_sync) sigaction(SIGUSR1, &old_usr1, NULL);
    return rc;
}
