/* apps/train.h — `cantor train` inside: the run's options, the run state and its step
 * function, checkpoints and resume, the sample gallery. Private to apps/ (cmd_train.c,
 * train_loop.c, train_ckpt.c, train_samples.c); only apps/ prints.
 *
 * THE LOOP (train_loop.c) is a struct and a step function, so that other drivers can reuse
 * it:
 *     train_run r;  train_run_init(&r, &opts)  ...  train_setup(&r)
 *     train_loop(&r);   (each step: train_step(&r, &res); train_after_step(&r, &res);)
 *     train_run_free(&r);
 * Extension points (see the report / README): r.grad_sync is called between backward and
 * clipping with the flat gradient block (a data-parallel all-reduce goes there); r.on_metrics
 * sees every metrics.jsonl line as it is written and r.stop (any thread may set it) asks the
 * loop to finish the current step, checkpoint and return (a dashboard's stop button).
 *
 * FILES in RUN_DIR (train_ckpt.c): ckpt-%08lld.safetensors + ckpt-%08lld.state (a pair; the
 * last --keep pairs are kept), model.safetensors (latest), best.safetensors (lowest valid
 * loss), metrics.jsonl, samples.jsonl, samples/step-%08lld.{mid,wav}, run.json, and
 * corpus.corpus when --corpus was a folder of MIDI files. */
#ifndef CANTOR_APPS_TRAIN_H
#define CANTOR_APPS_TRAIN_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "corpora/audio_dataset.h"
#include "corpora/dataset.h"
#include "corpora/transforms.h"
#include "engine/cantor.h"
#include "engine/optim.h"
#include "engine/parallel/dist.h"
#include "models/composer.h"

#define TRAIN_PATH_MAX 4096
#define TRAIN_NORM_WINDOW 32      /* the guard's window of recent gradient norms */
#define TRAIN_NORM_WARMUP 16      /* norms needed before the spike test is active */
#define TRAIN_STATE_MAGIC "cantor-train-state"
#define TRAIN_STATE_VERSION 1

/* ---- options ------------------------------------------------------------------------------ */
/* PLATEAU: constant (after the warm-up) until --patience validations in a row bring no new best
 * valid loss; then the rate is multiplied by --plateau-factor (again after each further
 * --patience such validations). The factor so far is run state (train_run.lr_scale). */
typedef enum train_sched { TRAIN_LR_CONSTANT = 0, TRAIN_LR_STEP, TRAIN_LR_EXP, TRAIN_LR_COSINE, TRAIN_LR_PLATEAU } train_sched;
/* --precision: the GEMMs of a CUDA device (engine/device.h): float32, TF32 (ct_device_set_tf32)
 * or bf16 inputs with float32 accumulation and master weights (ct_device_set_bf16). The CPU is
 * always float32. */
typedef enum train_precision { TRAIN_FP32 = 0, TRAIN_TF32, TRAIN_BF16 } train_precision;

typedef struct train_opts {
    char corpus[TRAIN_PATH_MAX];      /* as given: a corpus file or a folder */
    char corpus_file[TRAIN_PATH_MAX]; /* the corpus file trained on ("" for audio folders) */
    char out[TRAIN_PATH_MAX];         /* the run folder */
    char device[32];
    train_precision precision;        /* --precision (default fp32); may change on resume */
    int model;                        /* cc_encoding; -1 = from the corpus */
    cc_cell cell;
    int64_t layers, hidden, embed;
    double dropout;
    int64_t batch, window;
    int64_t steps, epochs;            /* exactly one is > 0 after resolving */
    double lr;
    train_sched sched;
    int64_t warmup, lr_step_size, lr_decay_steps;   /* decay 0 = the total steps */
    double lr_gamma, lr_min;
    int64_t patience;                 /* plateau: validations without a new best before a cut */
    double plateau_factor;            /* plateau: the cut's factor (default 0.1) */
    int64_t early_stop;               /* stop after this many validations without a new best; 0 = off */
    bool init_bias;                   /* piano roll: start the output bias at the train split's
                                         smoothed key frequencies (default; --no-init-bias clears it) */
    double clip;                      /* 0 = no clipping (the norm is still measured) */
    double spike_factor;              /* 0 = no spike test */
    int64_t max_skips;                /* consecutive skipped steps that stop the run */
    int64_t seed, workers;
    int64_t checkpoint_every, keep, valid_every, valid_batches, samples_every, log_every;
    bool samples;                     /* --no-samples clears it */
    double sample_seconds;
    int64_t audio_rate;               /* --model audio: sample rate of the tokens */
    /* --augment: cp_augment on the TRAINING loader only (validation never): transpose by k
     * semitones, k uniform in [transpose_lo, transpose_hi] (redraw mode; 0:0 = off), stretch
     * time by [stretch_lo, stretch_hi] (1:1 = off; a melody run stores 1:1, its tokens count
     * grid steps). Defaults cp_augment_defaults(): -3:3 and 0.95:1.05. Saved (only when on, so
     * an unaugmented run's files are as before); may change on resume (a note says so). */
    bool augment;
    int64_t transpose_lo, transpose_hi;
    double stretch_lo, stretch_hi;
    bool stretch_given;               /* --stretch was on the command line (not saved): a usage
                                         error on a melody corpus rather than a silent 1:1 */
    /* --velocity SHIFT:JITTER: performance corpora with velocity bins only; every velocity bin
     * of a piece moves by one shift uniform in [-SHIFT, SHIFT] plus its own jitter in
     * [-JITTER, JITTER] (cp_transform_velocity_jitter). 0:0 = off (the default, also with
     * --augment). Saved with the other ranges (only when nonzero). */
    int64_t velocity_shift, velocity_jitter;
    /* --optimizer (engine/optim.h, torch's updates and defaults): Adam (the default), AdamW
     * (decoupled weight decay) or SGD (L2 weight decay, heavy-ball momentum). weight_decay < 0
     * until resolved: then 0.01 for AdamW, 0 for the others (torch's defaults). The kind and
     * whether SGD has momentum may not change on resume (the saved state would not fit). */
    ct_optim_kind optimizer;
    double weight_decay, momentum, beta1, beta2;
} train_opts;

void train_opts_defaults(train_opts *o);
/* The schedule's name: "constant", "step", "exp", "cosine", "plateau"; parse returns -1 when unknown. */
const char *train_sched_name(train_sched s);
int train_sched_parse(const char *s);
/* "adam", "adamw", "sgd"; parse returns -1 when unknown. */
const char *train_optim_name(ct_optim_kind k);
int train_optim_parse(const char *s);
/* weight_decay < 0 (not given) becomes the optimizer's default. */
void train_opts_resolve_weight_decay(train_opts *o);
/* The run's optimizer on m, from resolved options (NULL + error in m's ctx on a bad
 * configuration). */
ct_optim *train_optim_new(const train_opts *o, ct_module *m);
/* "fp32", "tf32", "bf16"; parse returns -1 when unknown. */
const char *train_precision_name(train_precision p);
int train_precision_parse(const char *s);
/* The learning rate for step (0-based): linear warm-up over o->warmup steps, then the schedule
 * (cosine: from o->lr down to o->lr_min over lr_decay_steps, counted from step 0; plateau: o->lr,
 * which the loop multiplies by train_run.lr_scale). */
double train_lr_at(const train_opts *o, int64_t total_steps, int64_t step);

/* ---- serialised options and state (train_ckpt.c) ------------------------------------------ *
 * A small text format, one "key value" per line (doubles as C99 hex floats, exact). */
typedef struct train_kv {
    char *text;        /* owned, NUL-terminated */
    size_t len, cap;
} train_kv;
void train_kv_free(train_kv *kv);
bool train_kv_printf(train_kv *kv, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The value of key in a serialised text (copied into buf); false when absent. */
bool train_kv_get(const char *text, const char *key, char *buf, size_t n);
/* The options as key/value lines; and back (every key must be present; err says which). */
bool train_opts_write(const train_opts *o, train_kv *kv);
bool train_opts_read(const char *text, train_opts *o, char *err, size_t n);

/* ---- the run ------------------------------------------------------------------------------ */
typedef struct train_run train_run;
/* A subset of an audio dataset's windows (the train or the valid files). */
typedef struct train_audio_subset {
    cp_audio_dataset *a;
    const int64_t *idx;
    int64_t n;
} train_audio_subset;
/* Data-parallel hooks (both NULL for one process).
 * shard_batch: the rows of the step's (global) batch this process computes on: fill *part and
 *   return it (or return b itself); the loop clears *part after the step.
 * grad_sync: called on EVERY step between backward and clipping, on every process, with the
 *   flat gradient block (NaN-filled when this process's loss was not finite, so that all of
 *   them skip the step together), this process's counted targets and mean loss; it all-reduces
 *   the gradients and may replace *count and *loss by the global ones (for the metrics). */
typedef const ct_batch *(*train_shard_fn)(train_run *r, const ct_batch *b, ct_batch *part, void *userdata);
typedef ct_status (*train_grad_sync_fn)(train_run *r, ct_tensor *flat_grads, int64_t *count, double *loss,
                                        void *userdata);
/* Called with every metrics line (JSON, no newline) after it was written and flushed. */
typedef void (*train_metrics_fn)(train_run *r, const char *json, void *userdata);

typedef struct train_step_result {
    int64_t step;          /* the step just done (1-based) */
    int64_t epoch;         /* the epoch its batch belongs to (0-based) */
    bool epoch_end;        /* its batch was the epoch's last */
    double loss, grad_norm, lr;
    int64_t tokens;        /* targets counted (tokens, or frames for piano rolls) */
    bool skipped;
    char skip_reason[192];
    double seconds;        /* the step's time */
} train_step_result;

struct train_run {
    train_opts o;
    bool resumed;
    int64_t resume_step;
    ct_ctx *ctx;
    ct_device dev;                           /* --device: the model and optimizer live there */
    bool dev_chosen;                         /* dev was set before train_setup (data-parallel on
                                                GPUs: ct_dist_gpu_init's device for this process) */
    /* data */
    cp_dataset *train_ds, *valid_ds;         /* corpus files */
    cp_audio_dataset *audio;                 /* --model audio */
    int64_t *audio_train_idx, *audio_valid_idx;
    int64_t audio_n_train, audio_n_valid;
    train_audio_subset audio_sub[2];
    ct_dataset tds, vds;
    bool have_valid;
    ct_dataloader_opts lo;                   /* the training loader's (validation drops the transform) */
    ct_transform augment;                    /* --augment: cp_augment's composition (else empty) */
    ct_dataloader *dl;
    int64_t batches_per_epoch;
    /* model */
    cc_config cfg;
    ct_module *m;
    ct_optim *opt;
    ct_rng rng;                              /* initialisation, then dropout */
    /* progress */
    int64_t step, total_steps;
    double norms[TRAIN_NORM_WINDOW];         /* the guard's recent accepted norms (a ring) */
    int64_t n_norms;
    int64_t consecutive_skips, skipped_total;
    double best_valid;                       /* NAN until a validation */
    int64_t best_step;
    int64_t since_best;                      /* validations since the last new best (saved) */
    double lr_scale;                         /* plateau: the factor applied so far (1; saved) */
    bool early_stopped;                      /* --early-stop ended the run */
    double elapsed_before;                   /* seconds trained in earlier sessions */
    double t_start;                          /* monotonic seconds at this session's start */
    double train_seconds;                    /* this session: time inside train_step */
    int64_t tokens_session, tokens_total;
    int64_t last_ckpt_step;
    FILE *metrics;
    bool metrics_failed;
    int sample_failures;                     /* gallery warnings so far (a few are printed) */
    bool tty;                                /* stderr is a terminal: the \r progress bar */
    bool bar_shown;
    double bar_drawn;                        /* when the bar was last drawn */
    /* hooks */
    train_shard_fn shard_batch;
    void *shard_ud;
    train_grad_sync_fn grad_sync;
    void *grad_sync_ud;
    train_metrics_fn on_metrics;
    void *on_metrics_ud;
    volatile sig_atomic_t *stop;             /* nonzero: checkpoint and return */
    bool writer;                             /* true (the default): this process prints and
                                                writes the run's files; false on the other
                                                processes of a data-parallel run */
    ct_dist *dist;                           /* data-parallel (train_dist.c): the process world, else NULL */
    int world_size;                          /* processes (0 or 1: one); saved, checked on resume */
    /* test-only fault injection (CANTOR_TRAIN_FAULTS, see train_loop.c) */
    char faults[256];
};

/* Zeroes r and copies the options. */
void train_run_init(train_run *r, const train_opts *o);
/* Opens the data, builds the model and optimizer, prints the header (device, BLAS, model,
 * corpus), restores a checkpoint when r->resumed. CLI_OK / CLI_FAIL / CLI_USAGE (message
 * printed). */
int train_setup(train_run *r);
/* One optimizer step (or a skipped one). CT_OK, or an error (message in r->ctx). */
ct_status train_step(train_run *r, train_step_result *res);
/* Validation, best, samples, checkpoints, metrics and progress after a step. CLI_OK or
 * CLI_FAIL (a checkpoint failed: message printed). */
int train_after_step(train_run *r, const train_step_result *res);
/* Piano roll: sets the output bias to the logit of each key's add-one smoothed frequency in the
 * train split (cc_smoothed_frequencies over every frame of every train piece). CT_OK, or an
 * error (message in r->ctx). */
ct_status train_init_output_bias(train_run *r);
/* Mean validation loss (NAN without a valid split); *count gets the targets counted. */
double train_validate(train_run *r, int64_t *count);
/* The whole loop: steps until the total or a stop; the final checkpoint. Exit code. */
int train_loop(train_run *r);
void train_run_free(train_run *r);
/* Whether SIGINT, SIGTERM or (data-parallel) SIGUSR1 arrived during train_loop. */
bool train_stop_requested(void);
/* Data-parallel training under `mpirun -np N` (train_dist.c); for one process they change
 * nothing. train_dist_begin, before train_setup: the process world, the hooks, r->writer.
 * train_dist_ready, after train_setup with its exit code: every process agrees that all set up
 * (returns the exit code to go on with). train_dist_end, after train_loop (ran: it was entered):
 * ends the whole job on a failure one process may have seen alone, else finalizes. */
int train_dist_begin(train_run *r);
int train_dist_ready(train_run *r, int rc);
int train_dist_end(train_run *r, int rc, bool ran);

/* Seconds trained so far, this session and the earlier ones. */
double train_elapsed(const train_run *r);
/* The wall clock (CLOCK_REALTIME) in seconds: metrics.jsonl's "wall", status.json's "started"/"updated". */
double train_wall_now(void);
/* Prints a line on stdout (clearing the progress bar first when there is one). */
void train_say(train_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void train_warn(train_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- checkpoints (train_ckpt.c) ------------------------------------------------------------ */
/* Writes ckpt-STEP.safetensors + ckpt-STEP.state, updates model.safetensors and prunes to the
 * last --keep pairs. CT_OK or an error (message in r->ctx naming the file). */
ct_status train_checkpoint(train_run *r);
/* best.safetensors (atomic). */
ct_status train_save_best(train_run *r, double valid_loss);
/* The highest step with both files of a pair in dir; -1 when none. */
int64_t train_find_checkpoint(const char *dir);
/* Reads the options stored in dir's checkpoint of that step (the safetensors metadata). */
bool train_read_run_options(const char *dir, int64_t step, train_opts *o, char *err, size_t n);
/* Loads weights, optimizer, RNG and loop state of the pair into a set-up run. */
ct_status train_restore(train_run *r, int64_t step);
/* Removes an earlier run's files from dir (a fresh run there); returns how many. */
int train_clear_run_dir(const char *dir);
/* Keeps the lines of a .jsonl file whose "step" is <= step (after a resume), atomically; true
 * when done (also when the file is missing), else false with the reason in err. */
bool train_truncate_jsonl(const char *path, int64_t step, char *err, size_t errn);
/* run.json: the options and the model (atomic); false after a warning saying why. */
bool train_write_run_json(train_run *r);
/* "RUN_DIR/name" into buf. */
const char *train_path(const train_run *r, char *buf, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Writes n bytes to path atomically (temporary file, fsync, rename). */
bool train_write_atomic(const char *path, const void *data, size_t n, char *err, size_t errn);
/* JSON string (quotes included) of s, appended at buf[*len] (bounded by n). */
void train_json_str(char *buf, size_t n, size_t *len, const char *s);

/* ---- --device and --precision (cmd_train.c) ---------------------------------------------- */
/* cantor train's --device and --precision (o->device, o->precision) for a run of `processes`
 * processes: malformed, an index with several processes (each takes its own GPU: --device
 * cuda), tf32 / bf16 on the CPU: CLI_USAGE; a device that is not there: CLI_FAIL; else CLI_OK.
 * precision false: --device only. quiet: no message. */
int train_check_device_opts(const train_opts *o, int processes, bool quiet, bool precision);

/* ---- the sample gallery (train_samples.c) -------------------------------------------------- */
/* samples/step-STEP.mid (+ .wav) and a line in samples.jsonl; a failure is a warning. */
void train_sample_gallery(train_run *r);

#endif
