/* apps/train_ckpt.c — `cantor train`'s files: the options as text, checkpoint pairs
 * (ckpt-STEP.safetensors + ckpt-STEP.state), model.safetensors, best.safetensors, pruning,
 * resume, run.json, and small file helpers. Every file is written atomically (a temporary
 * file, fsync, rename): the engine's writers do it for the weights and the state, and
 * train_write_atomic for the rest. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "apps/cli.h"
#include "apps/train.h"
#include "engine/safetensors.h"

/* ---- options ------------------------------------------------------------------------------ */
void train_opts_defaults(train_opts *o) {
    memset(o, 0, sizeof *o);
    strcpy(o->device, "cpu");
    o->model = -1;
    o->cell = CC_LSTM;
    o->layers = 2;
    o->hidden = 256;
    o->embed = 64;
    o->dropout = 0;
    o->batch = 32;
    o->window = 128;
    o->steps = 300;
    o->epochs = 0;
    o->lr = 1e-3;
    o->sched = TRAIN_LR_CONSTANT;
    o->warmup = 0;
    o->lr_step_size = 1000;
    o->lr_decay_steps = 0;
    o->lr_gamma = 0;          /* 0: the schedule's default */
    o->lr_min = 0;
    o->patience = 3;
    o->plateau_factor = 0.1;
    o->early_stop = 0;
    o->init_bias = true;
    o->clip = 1.0;
    o->spike_factor = 10;
    o->max_skips = 20;
    o->seed = 1234;
    o->workers = 2;
    o->checkpoint_every = 1000;
    o->keep = 3;
    o->valid_every = 100;
    o->valid_batches = 20;
    o->samples_every = 0;
    o->samples = true;
    o->sample_seconds = 4;
    o->log_every = 10;
    o->audio_rate = 16000;
    cp_augment_opts ad = cp_augment_defaults();
    o->augment = false;
    o->transpose_lo = ad.transpose_lo;
    o->transpose_hi = ad.transpose_hi;
    o->stretch_lo = ad.stretch_lo;
    o->stretch_hi = ad.stretch_hi;
    o->stretch_given = false;
    o->velocity_shift = o->velocity_jitter = 0;   /* off, as cp_augment_defaults */
    ct_adam_config ac = ct_adam_defaults(1e-3);
    o->optimizer = CT_OPTIM_ADAM;
    o->weight_decay = -1;   /* resolved: torch's default for the optimizer */
    o->momentum = 0;        /* torch.optim.SGD's default */
    o->beta1 = ac.beta1;
    o->beta2 = ac.beta2;
}

static const char *const OPTIM_NAMES[] = {"sgd", "adam", "adamw"};   /* by ct_optim_kind */

const char *train_optim_name(ct_optim_kind k) {
    return (unsigned)k < sizeof OPTIM_NAMES / sizeof *OPTIM_NAMES ? OPTIM_NAMES[k] : "?";
}

int train_optim_parse(const char *s) {
    for (int i = 0; i < (int)(sizeof OPTIM_NAMES / sizeof *OPTIM_NAMES); i++)
        if (!strcmp(s, OPTIM_NAMES[i])) return i;
    return -1;
}

void train_opts_resolve_weight_decay(train_opts *o) {
    if (o->weight_decay < 0) o->weight_decay = o->optimizer == CT_OPTIM_ADAMW ? 0.01 : 0;   /* torch's */
}

ct_optim *train_optim_new(const train_opts *o, ct_module *m) {
    const double wd = o->weight_decay;   /* resolved by train_opts_resolve_weight_decay */
    if (o->optimizer == CT_OPTIM_SGD)
        return ct_sgd_new(m, (ct_sgd_config){.lr = o->lr, .momentum = o->momentum, .weight_decay = wd});
    ct_adam_config c = o->optimizer == CT_OPTIM_ADAMW ? ct_adamw_defaults(o->lr) : ct_adam_defaults(o->lr);
    c.beta1 = o->beta1;
    c.beta2 = o->beta2;
    c.weight_decay = wd;
    return o->optimizer == CT_OPTIM_ADAMW ? ct_adamw_new(m, c) : ct_adam_new(m, c);
}

static const char *const SCHED_NAMES[] = {"constant", "step", "exp", "cosine", "plateau"};
#define N_SCHED ((int)(sizeof SCHED_NAMES / sizeof *SCHED_NAMES))

const char *train_sched_name(train_sched s) {
    return (unsigned)s < (unsigned)N_SCHED ? SCHED_NAMES[s] : "?";
}

int train_sched_parse(const char *s) {
    for (int i = 0; i < N_SCHED; i++)
        if (!strcmp(s, SCHED_NAMES[i])) return i;
    if (!strcmp(s, "exponential")) return TRAIN_LR_EXP;
    return -1;
}

static const char *const PRECISION_NAMES[] = {"fp32", "tf32", "bf16"};

const char *train_precision_name(train_precision p) {
    return (unsigned)p < 3u ? PRECISION_NAMES[p] : "?";
}

int train_precision_parse(const char *s) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, PRECISION_NAMES[i])) return i;
    return -1;
}

double train_lr_at(const train_opts *o, int64_t total_steps, int64_t step) {
    if (step < 0) step = 0;
    const double base = o->lr;
    const int64_t w = o->warmup;
    if (step < w) return base * (double)(step + 1) / (double)w;
    const int64_t s = step - w;
    switch (o->sched) {
    case TRAIN_LR_STEP: {
        double g = o->lr_gamma > 0 ? o->lr_gamma : 0.5;
        return base * pow(g, (double)(s / (o->lr_step_size > 0 ? o->lr_step_size : 1)));
    }
    case TRAIN_LR_EXP: return base * pow(o->lr_gamma > 0 ? o->lr_gamma : 0.999, (double)s);
    case TRAIN_LR_COSINE: {
        int64_t t = o->lr_decay_steps > 0 ? o->lr_decay_steps : total_steps;
        if (step >= t || t <= w) return o->lr_min;
        return o->lr_min + (base - o->lr_min) * (1.0 + cos(M_PI * (double)(step - w) / (double)(t - w))) / 2.0;
    }
    default: return base;
    }
}

/* ---- key/value text ----------------------------------------------------------------------- */
void train_kv_free(train_kv *kv) {
    free(kv->text);
    memset(kv, 0, sizeof *kv);
}

bool train_kv_printf(train_kv *kv, const char *key, const char *fmt, ...) {
    char val[TRAIN_PATH_MAX + 64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(val, sizeof val, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof val) return false;
    size_t need = kv->len + strlen(key) + 1 + (size_t)n + 2;
    if (need > kv->cap) {
        size_t cap = kv->cap ? kv->cap : 1024;
        while (cap < need) cap *= 2;
        char *t = realloc(kv->text, cap);
        if (!t) return false;
        kv->text = t;
        kv->cap = cap;
    }
    kv->len += (size_t)sprintf(kv->text + kv->len, "%s %s\n", key, val);
    return true;
}

bool train_kv_get(const char *text, const char *key, char *buf, size_t n) {
    size_t kl = strlen(key);
    for (const char *p = text; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        if (ll > kl && !strncmp(p, key, kl) && p[kl] == ' ') {
            size_t vl = ll - kl - 1;
            if (vl >= n) return false;
            memcpy(buf, p + kl + 1, vl);
            buf[vl] = 0;
            return true;
        }
        p = eol ? eol + 1 : NULL;
    }
    return false;
}

bool train_opts_write(const train_opts *o, train_kv *kv) {
    bool ok = true;
#define KI(k, v) ok = ok && train_kv_printf(kv, k, "%lld", (long long)(v));
#define KD(k, v) ok = ok && train_kv_printf(kv, k, "%a", (double)(v));
#define KS(k, v) ok = ok && train_kv_printf(kv, k, "%s", v);
    KS("corpus", o->corpus) KS("corpus_file", o->corpus_file) KS("device", o->device)
    KI("model", o->model) KI("cell", o->cell) KI("layers", o->layers) KI("hidden", o->hidden)
    KI("embedding", o->embed) KD("dropout", o->dropout) KI("batch", o->batch) KI("window", o->window)
    KI("steps", o->steps) KI("epochs", o->epochs) KD("lr", o->lr) KI("lr_schedule", o->sched)
    KI("warmup", o->warmup) KI("lr_step_size", o->lr_step_size) KI("lr_decay_steps", o->lr_decay_steps)
    KD("lr_gamma", o->lr_gamma) KD("lr_min", o->lr_min) KD("clip", o->clip) KD("spike_factor", o->spike_factor)
    KI("max_skips", o->max_skips) KI("seed", o->seed) KI("workers", o->workers)
    KI("checkpoint_every", o->checkpoint_every) KI("keep", o->keep) KI("valid_every", o->valid_every)
    KI("valid_batches", o->valid_batches) KI("samples_every", o->samples_every) KI("samples", o->samples)
    KD("sample_seconds", o->sample_seconds) KI("log_every", o->log_every) KI("audio_rate", o->audio_rate)
    KI("patience", o->patience) KD("plateau_factor", o->plateau_factor) KI("early_stop", o->early_stop)
    KI("init_bias", o->init_bias) KS("precision", train_precision_name(o->precision))
    KS("optimizer", train_optim_name(o->optimizer)) KD("weight_decay", o->weight_decay) KD("momentum", o->momentum)
    KD("beta1", o->beta1) KD("beta2", o->beta2)
    if (o->augment) {   /* only when on: an unaugmented run's files stay as they were */
        KI("augment", 1) KI("transpose_lo", o->transpose_lo) KI("transpose_hi", o->transpose_hi)
        KD("stretch_lo", o->stretch_lo) KD("stretch_hi", o->stretch_hi)
        if (o->velocity_shift || o->velocity_jitter) {
            KI("velocity_shift", o->velocity_shift) KI("velocity_jitter", o->velocity_jitter)
        }
    }
#undef KI
#undef KD
#undef KS
    return ok;
}

bool train_opts_read(const char *text, train_opts *out, char *err, size_t n) {
    train_opts o;
    train_opts_defaults(&o);
    char v[TRAIN_PATH_MAX + 64];
    const char *missing = NULL;
#define GET(k) (missing ? false : train_kv_get(text, k, v, sizeof v) ? true : (missing = k, false))
#define RI(k, f) if (GET(k)) o.f = strtoll(v, NULL, 10);
#define RD(k, f) if (GET(k)) o.f = strtod(v, NULL);
#define RS(k, f) if (GET(k)) { if (strlen(v) >= sizeof o.f) missing = k; else strcpy(o.f, v); }
    RS("corpus", corpus) RS("corpus_file", corpus_file) RS("device", device)
    RI("model", model) if (GET("cell")) o.cell = (cc_cell)strtol(v, NULL, 10);
    RI("layers", layers) RI("hidden", hidden) RI("embedding", embed) RD("dropout", dropout)
    RI("batch", batch) RI("window", window) RI("steps", steps) RI("epochs", epochs) RD("lr", lr)
    if (GET("lr_schedule")) o.sched = (train_sched)strtol(v, NULL, 10);
    RI("warmup", warmup) RI("lr_step_size", lr_step_size) RI("lr_decay_steps", lr_decay_steps)
    RD("lr_gamma", lr_gamma) RD("lr_min", lr_min) RD("clip", clip) RD("spike_factor", spike_factor)
    RI("max_skips", max_skips) RI("seed", seed) RI("workers", workers)
    RI("checkpoint_every", checkpoint_every) RI("keep", keep) RI("valid_every", valid_every)
    RI("valid_batches", valid_batches) RI("samples_every", samples_every)
    if (GET("samples")) o.samples = strtol(v, NULL, 10) != 0;
    RD("sample_seconds", sample_seconds) RI("log_every", log_every) RI("audio_rate", audio_rate)
    /* added later: optional (older runs keep the defaults, except the bias start they never had) */
    if (!missing) {
        if (train_kv_get(text, "patience", v, sizeof v)) o.patience = strtoll(v, NULL, 10);
        if (train_kv_get(text, "plateau_factor", v, sizeof v)) o.plateau_factor = strtod(v, NULL);
        if (train_kv_get(text, "early_stop", v, sizeof v)) o.early_stop = strtoll(v, NULL, 10);
        o.init_bias = train_kv_get(text, "init_bias", v, sizeof v) && strtol(v, NULL, 10) != 0;
        if (train_kv_get(text, "precision", v, sizeof v)) {   /* older runs: fp32 */
            int p = train_precision_parse(v);
            if (p < 0) missing = "precision";
            else o.precision = (train_precision)p;
        }
        /* the optimizer: absent = Adam with torch's defaults (runs before the option) */
        if (train_kv_get(text, "optimizer", v, sizeof v)) {
            int k = train_optim_parse(v);
            if (k < 0) missing = "optimizer";
            else o.optimizer = (ct_optim_kind)k;
            if (GET("weight_decay")) o.weight_decay = strtod(v, NULL);
            if (GET("momentum")) o.momentum = strtod(v, NULL);
            if (GET("beta1")) o.beta1 = strtod(v, NULL);
            if (GET("beta2")) o.beta2 = strtod(v, NULL);
        } else {
            o.weight_decay = 0;
        }
        /* augmentation: absent = off (runs before it, and unaugmented runs) */
        if (train_kv_get(text, "augment", v, sizeof v) && strtol(v, NULL, 10) != 0) {
            o.augment = true;
            if (GET("transpose_lo")) o.transpose_lo = strtoll(v, NULL, 10);
            if (GET("transpose_hi")) o.transpose_hi = strtoll(v, NULL, 10);
            if (GET("stretch_lo")) o.stretch_lo = strtod(v, NULL);
            if (GET("stretch_hi")) o.stretch_hi = strtod(v, NULL);
            if (train_kv_get(text, "velocity_shift", v, sizeof v)) {   /* absent: off */
                o.velocity_shift = strtoll(v, NULL, 10);
                if (GET("velocity_jitter")) o.velocity_jitter = strtoll(v, NULL, 10);
            }
        }
    }
#undef GET
#undef RI
#undef RD
#undef RS
    if (missing) {
        snprintf(err, n, "the stored options lack \"%s\" (or it is malformed)", missing);
        return false;
    }
    if ((unsigned)o.cell >= CC_CELL_COUNT || (unsigned)o.sched > TRAIN_LR_PLATEAU || o.patience < 1 ||
        !(o.plateau_factor > 0 && o.plateau_factor <= 1) || o.early_stop < 0 || o.layers < 1 || o.hidden < 1 ||
        o.batch < 1 || o.window < 2 || (o.steps < 1 && o.epochs < 1) || o.keep < 1 ||
        !(o.weight_decay >= 0 && o.momentum >= 0 && o.momentum < 1 && o.beta1 >= 0 && o.beta1 < 1 &&
          o.beta2 >= 0 && o.beta2 < 1) ||
        o.transpose_lo < -127 || o.transpose_lo > o.transpose_hi || o.transpose_hi > 127 ||
        !(o.stretch_lo >= 0.1 && o.stretch_lo <= o.stretch_hi && o.stretch_hi <= 10) ||
        o.velocity_shift < 0 || o.velocity_shift > 127 || o.velocity_jitter < 0 || o.velocity_jitter > 127) {
        snprintf(err, n, "the stored options are out of range (damaged file?)");
        return false;
    }
    *out = o;
    return true;
}

/* ---- small file helpers -------------------------------------------------------------------- */
const char *train_path(const train_run *r, char *buf, size_t n, const char *fmt, ...) {
    int k = snprintf(buf, n, "%s/", r->o.out);
    va_list ap;
    va_start(ap, fmt);
    if (k >= 0 && (size_t)k < n) vsnprintf(buf + k, n - (size_t)k, fmt, ap);
    va_end(ap);
    return buf;
}

static void fsync_dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[TRAIN_PATH_MAX];
    if (!slash) strcpy(dir, ".");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path) + (slash == path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

bool train_write_atomic(const char *path, const void *data, size_t n, char *err, size_t errn) {
    char tmp[TRAIN_PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        snprintf(err, errn, "%s: cannot create %s: %s", path, tmp, strerror(errno));
        return false;
    }
    const char *p = data;
    size_t left = n;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            snprintf(err, errn, "%s: writing %s failed: %s; %s was left as it was", path, tmp,
                     w < 0 ? strerror(errno) : "no progress", path);
            close(fd);
            unlink(tmp);
            return false;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        snprintf(err, errn, "%s: fsync/close of %s failed: %s", path, tmp, strerror(errno));
        unlink(tmp);
        return false;
    }
    if (rename(tmp, path) != 0) {
        snprintf(err, errn, "%s: cannot rename %s to it: %s", path, tmp, strerror(errno));
        unlink(tmp);
        return false;
    }
    fsync_dir_of(path);
    return true;
}

void train_json_str(char *buf, size_t n, size_t *len, const char *s) {
    const size_t k = *len;
    *len = k + cli_json_escape(k < n ? buf + k : NULL, k < n ? n - k : 0, s, strlen(s));
}

/* ---- the state blob (the CTTS file's user data) ------------------------------------------- */
static bool state_blob(const train_run *r, train_kv *kv) {
    bool ok = train_kv_printf(kv, TRAIN_STATE_MAGIC, "%d", TRAIN_STATE_VERSION) && train_opts_write(&r->o, kv);
    uint8_t dl[CT_DATALOADER_STATE_BYTES];
    ct_dataloader_save(r->dl, dl);
    char hex[2 * CT_DATALOADER_STATE_BYTES + 1];
    for (int i = 0; i < CT_DATALOADER_STATE_BYTES; i++) sprintf(hex + 2 * i, "%02x", dl[i]);
    ok = ok && train_kv_printf(kv, "loader", "%s", hex);
    char norms[TRAIN_NORM_WINDOW * 32 + 32];
    size_t k = (size_t)snprintf(norms, sizeof norms, "%lld", (long long)r->n_norms);
    int64_t have = r->n_norms < TRAIN_NORM_WINDOW ? r->n_norms : TRAIN_NORM_WINDOW;
    for (int64_t i = 0; i < have; i++) k += (size_t)snprintf(norms + k, sizeof norms - k, " %a", r->norms[i]);
    ok = ok && train_kv_printf(kv, "norms", "%s", norms);
    ok = ok && train_kv_printf(kv, "consecutive_skips", "%lld", (long long)r->consecutive_skips);
    ok = ok && train_kv_printf(kv, "skipped_total", "%lld", (long long)r->skipped_total);
    ok = ok && train_kv_printf(kv, "best_valid", "%a", r->best_valid);
    ok = ok && train_kv_printf(kv, "best_step", "%lld", (long long)r->best_step);
    ok = ok && train_kv_printf(kv, "since_best", "%lld", (long long)r->since_best);
    ok = ok && train_kv_printf(kv, "lr_scale", "%a", r->lr_scale);
    ok = ok && train_kv_printf(kv, "elapsed", "%a", train_elapsed(r));
    ok = ok && train_kv_printf(kv, "tokens_total", "%lld", (long long)r->tokens_total);
    ok = ok && train_kv_printf(kv, "world_size", "%d", r->world_size > 1 ? r->world_size : 1);
    return ok;
}

static bool parse_blob(train_run *r, const char *text, char *err, size_t n) {
    char v[4096];
    if (!train_kv_get(text, TRAIN_STATE_MAGIC, v, sizeof v) || atoi(v) != TRAIN_STATE_VERSION) {
        snprintf(err, n, "the training state's data is not a version-%d cantor train state", TRAIN_STATE_VERSION);
        return false;
    }
    /* the number of processes (absent in states written before data-parallel training: 1) */
    const int saved_world = train_kv_get(text, "world_size", v, sizeof v) ? atoi(v) : 1;
    const int world = r->world_size > 1 ? r->world_size : 1;
    if (saved_world != world) {
        if (saved_world == 1)
            snprintf(err, n, "the run was trained by a single process and is resumed by %d; resume it "
                     "without mpirun", world);
        else
            snprintf(err, n, "the run was trained by %d processes and is resumed by %d; resume it with "
                     "mpirun -np %d", saved_world, world, saved_world);
        return false;
    }
    uint8_t dl[CT_DATALOADER_STATE_BYTES];
    if (!train_kv_get(text, "loader", v, sizeof v) || strlen(v) != 2 * CT_DATALOADER_STATE_BYTES) {
        snprintf(err, n, "the training state has no data loader position");
        return false;
    }
    for (int i = 0; i < CT_DATALOADER_STATE_BYTES; i++) {
        unsigned x;
        if (sscanf(v + 2 * i, "%2x", &x) != 1) {
            snprintf(err, n, "the data loader position is not hexadecimal");
            return false;
        }
        dl[i] = (uint8_t)x;
    }
    if (ct_dataloader_load(r->dl, dl, sizeof dl) != CT_OK) {
        snprintf(err, n, "the data loader position does not fit this corpus and these options: %s",
                 ct_ctx_error(r->ctx));
        return false;
    }
    if (!train_kv_get(text, "norms", v, sizeof v)) {
        snprintf(err, n, "the training state has no gradient-norm history");
        return false;
    }
    char *p = v, *end;
    r->n_norms = strtoll(p, &end, 10);
    p = end;
    int64_t have = r->n_norms < TRAIN_NORM_WINDOW ? r->n_norms : TRAIN_NORM_WINDOW;
    for (int64_t i = 0; i < have; i++) {
        r->norms[i] = strtod(p, &end);
        if (end == p) {
            snprintf(err, n, "the gradient-norm history is truncated");
            return false;
        }
        p = end;
    }
    struct { const char *key; int64_t *dst; } ints[] = {
        {"consecutive_skips", &r->consecutive_skips}, {"skipped_total", &r->skipped_total},
        {"best_step", &r->best_step}, {"tokens_total", &r->tokens_total}};
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
        if (!train_kv_get(text, ints[i].key, v, sizeof v)) {
            snprintf(err, n, "the training state lacks \"%s\"", ints[i].key);
            return false;
        }
        *ints[i].dst = strtoll(v, NULL, 10);
    }
    if (!train_kv_get(text, "best_valid", v, sizeof v)) {
        snprintf(err, n, "the training state lacks \"best_valid\"");
        return false;
    }
    r->best_valid = strtod(v, NULL);
    if (train_kv_get(text, "elapsed", v, sizeof v)) r->elapsed_before = strtod(v, NULL);
    /* the plateau schedule's state (absent in states written before it: none yet) */
    r->since_best = train_kv_get(text, "since_best", v, sizeof v) ? strtoll(v, NULL, 10) : 0;
    r->lr_scale = train_kv_get(text, "lr_scale", v, sizeof v) ? strtod(v, NULL) : 1.0;
    if (!(r->lr_scale > 0 && r->lr_scale <= 1) || r->since_best < 0) {
        snprintf(err, n, "the training state's plateau schedule (lr_scale %g, since_best %lld) is out of range",
                 r->lr_scale, (long long)r->since_best);
        return false;
    }
    return true;
}

/* ---- checkpoints ----------------------------------------------------------------------------- */
static ct_status save_weights(train_run *r, const char *path) {
    train_kv kv = {0};
    char step[32], seed[32];
    snprintf(step, sizeof step, "%lld", (long long)r->step);
    snprintf(seed, sizeof seed, "%lld", (long long)r->o.seed);
    if (!train_opts_write(&r->o, &kv)) {
        train_kv_free(&kv);
        return ct_fail(r->ctx, CT_E_NOMEM, "%s: out of memory", path);
    }
    const char *keys[] = {"cantor_train", "step", "seed", "corpus"};
    const char *vals[] = {kv.text, step, seed, r->o.corpus};
    ct_status s = cc_save(path, r->m, 4, keys, vals);
    train_kv_free(&kv);
    return s;
}

static bool parse_ckpt_name(const char *name, int64_t *step, bool *is_state) {
    if (strncmp(name, "ckpt-", 5) != 0) return false;
    char *end = NULL;
    errno = 0;
    long long s = strtoll(name + 5, &end, 10);
    if (errno || end == name + 5 || s < 0) return false;
    if (!strcmp(end, ".safetensors")) *is_state = false;
    else if (!strcmp(end, ".state")) *is_state = true;
    else return false;
    *step = s;
    return true;
}

static int cmp_desc(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Steps of the complete pairs in dir, highest first (malloc'd; *n of them). */
static int64_t *list_pairs(const char *dir, int64_t *n) {
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return NULL;
    int64_t *w = NULL, *s = NULL;
    int64_t nw = 0, ns = 0, cw = 0, cs = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t step;
        bool st;
        if (!parse_ckpt_name(e->d_name, &step, &st)) continue;
        int64_t **arr = st ? &s : &w, *cnt = st ? &ns : &nw, *cap = st ? &cs : &cw;
        if (*cnt == *cap) {
            *cap = *cap ? 2 * *cap : 16;
            int64_t *t = realloc(*arr, (size_t)*cap * sizeof **arr);
            if (!t) break;
            *arr = t;
        }
        (*arr)[(*cnt)++] = step;
    }
    closedir(d);
    int64_t *out = NULL;
    if (nw > 0 && ns > 0 && (out = malloc((size_t)nw * sizeof *out))) {
        for (int64_t i = 0; i < nw; i++)
            for (int64_t j = 0; j < ns; j++)
                if (w[i] == s[j]) {
                    out[(*n)++] = w[i];
                    break;
                }
        qsort(out, (size_t)*n, sizeof *out, cmp_desc);
    }
    free(w);
    free(s);
    return out;
}

int64_t train_find_checkpoint(const char *dir) {
    int64_t n, best = -1;
    int64_t *steps = list_pairs(dir, &n);
    if (n > 0) best = steps[0];
    free(steps);
    return best;
}

/* Removes the pairs beyond the last `keep`, and lone files of older steps. */
static void prune(train_run *r) {
    DIR *d = opendir(r->o.out);
    if (!d) return;
    int64_t n;
    int64_t *pairs = list_pairs(r->o.out, &n);
    int64_t oldest_kept = n > 0 ? pairs[(n < r->o.keep ? n : r->o.keep) - 1] : 0;
    struct dirent *e;
    char path[TRAIN_PATH_MAX + 300];
    while ((e = readdir(d))) {
        int64_t step;
        bool st;
        if (!parse_ckpt_name(e->d_name, &step, &st)) continue;
        if (step < oldest_kept) unlink(train_path(r, path, sizeof path, "%s", e->d_name));
    }
    closedir(d);
    free(pairs);
}

ct_status train_checkpoint(train_run *r) {
    if (!r->writer) {   /* data-parallel: the writer's checkpoint holds every process's state */
        r->last_ckpt_step = r->step;
        return CT_OK;
    }
    char wpath[TRAIN_PATH_MAX + 64], spath[TRAIN_PATH_MAX + 64], mpath[TRAIN_PATH_MAX + 64];
    train_path(r, wpath, sizeof wpath, "ckpt-%08lld.safetensors", (long long)r->step);
    train_path(r, spath, sizeof spath, "ckpt-%08lld.state", (long long)r->step);
    train_path(r, mpath, sizeof mpath, "model.safetensors");
    ct_status s = save_weights(r, wpath);
    if (s != CT_OK) return s;
    train_kv kv = {0};
    if (!state_blob(r, &kv)) {
        train_kv_free(&kv);
        unlink(wpath);
        return ct_fail(r->ctx, CT_E_NOMEM, "%s: out of memory", spath);
    }
    const ct_rng *rngs[] = {&r->rng};
    s = ct_train_state_save(spath, r->opt, r->step, rngs, 1, kv.text, kv.len);
    train_kv_free(&kv);
    if (s != CT_OK) {
        unlink(wpath);   /* a lone weights file is no checkpoint */
        return s;
    }
    /* model.safetensors: the same bytes, without writing them again (a hard link renamed into
     * place), or a second save where links are not supported */
    char tmp[TRAIN_PATH_MAX + 80];
    snprintf(tmp, sizeof tmp, "%s.tmp", mpath);
    unlink(tmp);
    if (link(wpath, tmp) == 0 && rename(tmp, mpath) == 0) {
        fsync_dir_of(mpath);
    } else {
        unlink(tmp);
        s = save_weights(r, mpath);
        if (s != CT_OK) return s;
    }
    r->last_ckpt_step = r->step;
    prune(r);
    return CT_OK;
}

ct_status train_save_best(train_run *r, double valid_loss) {
    char path[TRAIN_PATH_MAX + 64];
    (void)valid_loss;
    if (!r->writer) return CT_OK;
    return save_weights(r, train_path(r, path, sizeof path, "best.safetensors"));
}

bool train_read_run_options(const char *dir, int64_t step, train_opts *o, char *err, size_t n) {
    char path[TRAIN_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/ckpt-%08lld.safetensors", dir, (long long)step);
    ct_ctx *ctx = ct_ctx_new();
    ct_ctx_set_error_handler(ctx, NULL, NULL);
    bool ok = false;
    ct_safetensors *f = ct_safetensors_open(ctx, path);
    if (!f) snprintf(err, n, "%s", ct_ctx_error(ctx));
    else {
        const char *text = ct_safetensors_meta(f, "cantor_train");
        char e[256];
        if (!text) snprintf(err, n, "%s: no \"cantor_train\" metadata: not written by cantor train", path);
        else if (!train_opts_read(text, o, e, sizeof e)) snprintf(err, n, "%s: %s", path, e);
        else ok = true;
    }
    ct_safetensors_close(f);
    ct_ctx_free(ctx);
    return ok;
}

ct_status train_restore(train_run *r, int64_t step) {
    char wpath[TRAIN_PATH_MAX + 64], spath[TRAIN_PATH_MAX + 64];
    train_path(r, wpath, sizeof wpath, "ckpt-%08lld.safetensors", (long long)step);
    train_path(r, spath, sizeof spath, "ckpt-%08lld.state", (long long)step);
    ct_status s = cc_load_weights(r->m, wpath);
    if (s != CT_OK) return s;
    size_t cap = 1 << 20, got = 0;
    char *blob = malloc(cap + 1);
    if (!blob) return ct_fail(r->ctx, CT_E_NOMEM, "%s: out of memory", spath);
    int64_t st_step = -1;
    ct_rng *rngs[] = {&r->rng};
    s = ct_train_state_load(spath, r->opt, &st_step, rngs, 1, blob, cap, &got);
    if (s == CT_OK && st_step != step)
        s = ct_fail(r->ctx, CT_E_FORMAT, "%s: holds step %lld, but its name says %lld", spath, (long long)st_step,
                    (long long)step);
    if (s == CT_OK) {
        blob[got] = 0;
        char err[512];
        if (!parse_blob(r, blob, err, sizeof err)) s = ct_fail(r->ctx, CT_E_FORMAT, "%s: %s", spath, err);
    }
    free(blob);
    if (s == CT_OK) {
        r->step = step;
        r->last_ckpt_step = step;
    }
    return s;
}

/* ---- a fresh run in an old folder, resumed files --------------------------------------------- */
int train_clear_run_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int removed = 0;
    char path[TRAIN_PATH_MAX + 300];
    struct dirent *e;
    bool is_run = false;   /* only a folder that holds a cantor run is cleared */
    while ((e = readdir(d))) {
        int64_t step;
        bool st;
        if (parse_ckpt_name(e->d_name, &step, &st) || !strcmp(e->d_name, "metrics.jsonl") ||
            !strcmp(e->d_name, "run.json"))
            is_run = true;
    }
    if (!is_run) {
        closedir(d);
        return 0;
    }
    rewinddir(d);
    while ((e = readdir(d))) {
        int64_t step;
        bool st;
        const char *nm = e->d_name;
        if (parse_ckpt_name(nm, &step, &st) || !strcmp(nm, "model.safetensors") || !strcmp(nm, "best.safetensors") ||
            !strcmp(nm, "metrics.jsonl") || !strcmp(nm, "samples.jsonl") || !strcmp(nm, "run.json")) {
            snprintf(path, sizeof path, "%s/%s", dir, nm);
            if (unlink(path) == 0) removed++;
        }
    }
    closedir(d);
    snprintf(path, sizeof path, "%s/samples", dir);
    if ((d = opendir(path))) {
        while ((e = readdir(d))) {
            if (strncmp(e->d_name, "step-", 5) != 0) continue;
            snprintf(path, sizeof path, "%s/samples/%s", dir, e->d_name);
            if (unlink(path) == 0) removed++;
        }
        closedir(d);
    }
    return removed;
}

bool train_truncate_jsonl(const char *path, int64_t step, char *err, size_t errn) {
    FILE *f = fopen(path, "rb");
    if (!f) return true;   /* no such file: nothing to cut */
    char *buf = NULL, *out = NULL;
    size_t len = 0, cap = 0, olen = 0;
    char chunk[65536];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + k + 1 > cap) {
            cap = (len + k + 1) * 2;
            char *t = realloc(buf, cap);
            if (!t) {
                fclose(f);
                free(buf);
                snprintf(err, errn, "%s: out of memory reading it", path);
                return false;
            }
            buf = t;
        }
        memcpy(buf + len, chunk, k);
        len += k;
    }
    fclose(f);
    if (!buf) return true;   /* empty */
    buf[len] = 0;
    out = malloc(len + 1);
    if (!out) {
        free(buf);
        snprintf(err, errn, "%s: out of memory rewriting it", path);
        return false;
    }
    bool changed = false;
    for (char *p = buf; p < buf + len;) {
        char *eol = strchr(p, '\n');
        size_t ll = eol ? (size_t)(eol - p) + 1 : strlen(p);
        const char *s = strstr(p, "\"step\":");
        bool keep = true;
        if (s && (!eol || s < eol)) keep = strtoll(s + 7, NULL, 10) <= step;
        if (!eol) keep = false;   /* a torn last line */
        if (keep) {
            memcpy(out + olen, p, ll);
            olen += ll;
        } else changed = true;
        p += ll;
    }
    bool ok = !changed || train_write_atomic(path, out, olen, err, errn);
    free(out);
    free(buf);
    return ok;
}

bool train_write_run_json(train_run *r) {
    enum { RUN_JSON_MAX = 65536 };
    char *buf = malloc(RUN_JSON_MAX);
    if (!buf) {
        train_warn(r, "run.json: out of memory");
        return false;
    }
    size_t k = 0;
    char cfg[2048] = "null", err[2 * TRAIN_PATH_MAX + 128];
    if (cc_config_to_json(&r->cfg, cfg, sizeof cfg, err, sizeof err) < 0) strcpy(cfg, "null");
    const train_opts *o = &r->o;
#define OUT(...) do { int w_ = snprintf(buf + k, k < (size_t)RUN_JSON_MAX ? (size_t)RUN_JSON_MAX - k : 0, __VA_ARGS__); if (w_ > 0) k += (size_t)w_; } while (0)
    OUT("{\"format\":\"cantor.train\",\"version\":%d,\"corpus\":", TRAIN_STATE_VERSION);
    if (k < (size_t)RUN_JSON_MAX) train_json_str(buf, (size_t)RUN_JSON_MAX, &k, o->corpus);
    OUT(",\"corpus_file\":");
    if (k < (size_t)RUN_JSON_MAX) train_json_str(buf, (size_t)RUN_JSON_MAX, &k, o->corpus_file);
    OUT(",\"model\":%s,\"parameters\":%lld,\"device\":", cfg, (long long)cc_model_num_params(r->m));
    if (k < (size_t)RUN_JSON_MAX) train_json_str(buf, (size_t)RUN_JSON_MAX, &k, o->device);
    OUT(",\"precision\":\"%s\"", train_precision_name(o->precision));
    if (r->world_size > 1) OUT(",\"processes\":%d", r->world_size);
    OUT(",\"steps\":%lld,\"epochs\":%lld,\"batches_per_epoch\":%lld,\"batch\":%lld,\"window\":%lld,"
        "\"optimizer\":\"%s\",\"weight_decay\":%.17g,\"momentum\":%.17g,\"betas\":[%.17g,%.17g],\"lr\":%.17g,\"lr_schedule\":\"%s\",\"warmup\":%lld,\"lr_step_size\":%lld,"
        "\"lr_gamma\":%.17g,\"lr_min\":%.17g,\"lr_decay_steps\":%lld,\"clip\":%.17g,\"dropout\":%.17g,"
        "\"seed\":%lld,\"workers\":%lld,\"checkpoint_every\":%lld,\"keep\":%lld,\"valid_every\":%lld,"
        "\"valid_batches\":%lld,\"samples\":%s,\"samples_every\":%lld,\"sample_seconds\":%.17g,"
        "\"spike_factor\":%.17g,\"max_skips\":%lld,\"patience\":%lld,\"plateau_factor\":%.17g,"
        "\"early_stop\":%lld,\"init_bias\":%s,\"resumed_from\":",
        (long long)r->total_steps, (long long)o->epochs, (long long)r->batches_per_epoch, (long long)o->batch,
        (long long)o->window, train_optim_name(o->optimizer), o->weight_decay, o->momentum, o->beta1, o->beta2, o->lr,
        train_sched_name(o->sched), (long long)o->warmup, (long long)o->lr_step_size,
        o->lr_gamma > 0 ? o->lr_gamma : o->sched == TRAIN_LR_EXP ? 0.999 : 0.5, o->lr_min, (long long)(o->lr_decay_steps > 0 ? o->lr_decay_steps : r->total_steps), o->clip,
        o->dropout, (long long)o->seed, (long long)o->workers, (long long)o->checkpoint_every, (long long)o->keep,
        (long long)o->valid_every, (long long)o->valid_batches, o->samples ? "true" : "false",
        (long long)o->samples_every, o->sample_seconds, o->spike_factor, (long long)o->max_skips,
        (long long)o->patience, o->plateau_factor, (long long)o->early_stop, o->init_bias ? "true" : "false");
    if (r->resumed) OUT("%lld", (long long)r->resume_step);
    else OUT("null");
    if (o->augment)
        OUT(",\"augment\":{\"transpose\":[%lld,%lld],\"stretch\":[%.17g,%.17g],\"velocity\":[%lld,%lld]}",
            (long long)o->transpose_lo, (long long)o->transpose_hi, o->stretch_lo, o->stretch_hi,
            (long long)o->velocity_shift, (long long)o->velocity_jitter);
    else OUT(",\"augment\":false");
    OUT(",\"started\":%lld}\n", (long long)time(NULL));
#undef OUT
    char path[TRAIN_PATH_MAX + 64];
    train_path(r, path, sizeof path, "run.json");
    bool ok = k < RUN_JSON_MAX;
    if (!ok) train_warn(r, "%s: not written: the options take more than %d bytes", path, (int)RUN_JSON_MAX);
    else if (!(ok = train_write_atomic(path, buf, k, err, sizeof err))) train_warn(r, "%s", err);
    free(buf);
    return ok;
}
