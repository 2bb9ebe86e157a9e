/* models/sampler.c — stepwise generation from a composer on float buffers: ct_rnn_step_f32,
 * one GEMV/GEMM for the output layer, then greedy / temperature / top-k / top-p choices; and
 * the encoding of MIDI primers and the decoding of samples to MIDI. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/melody.h"
#include "audio/mulaw.h"
#include "audio/performance.h"
#include "audio/pianoroll.h"
#include "engine/device.h"
#include "engine/rnn.h"
#include "models/composer.h"
#include "models/sampler.h"

cc_sample_opts cc_sample_defaults(void) { return (cc_sample_opts){1.0f, 0, 1.0f}; }

int64_t cc_start_token(const cc_config *c) {
    if (!c) return -1;
    cc_config r = *c;
    if (cc_config_resolve(&r, NULL, 0) != CT_OK) return -1;
    switch (r.encoding) {
    case CC_ENC_MELODY: return CM_MELODY_TOKEN_NO_EVENT;
    case CC_ENC_PERFORMANCE: {
        cm_perf_config p = {(int)r.steps_per_second, r.max_shift_steps, r.num_velocity_bins};
        cm_perf_event e = {CM_PERF_EV_TIME_SHIFT, 1};
        if (p.num_velocity_bins > 0)
            e = (cm_perf_event){CM_PERF_EV_VELOCITY,
                                cm_perf_velocity_to_bin(CM_PERF_DEFAULT_VELOCITY, p.num_velocity_bins)};
        return cm_perf_event_to_token(&p, e);
    }
    case CC_ENC_AUDIO: return ca_mulaw_encode(0.0f);
    case CC_ENC_PIANOROLL: return -1;
    default: return 0;
    }
}

static bool opts_valid(const cc_sample_opts *o) {
    return isfinite(o->temperature) && o->temperature >= 0.0f && o->top_k >= 0 &&
           o->top_p >= 0.0f && o->top_p <= 1.0f;
}

/* ---- choosing a token ---------------------------------------------------------------------------- *
 * Candidates are (p[i], id[i]) pairs ranked by p descending, then id ascending (a strict
 * total order, so every selection is deterministic). */
static inline bool above(const float *p, const int32_t *id, int64_t a, int64_t b) {
    return p[a] > p[b] || (p[a] == p[b] && id[a] < id[b]);
}

static inline void swap2(float *p, int32_t *id, int64_t a, int64_t b) {
    float t = p[a];
    p[a] = p[b];
    p[b] = t;
    int32_t u = id[a];
    id[a] = id[b];
    id[b] = u;
}

/* Partitions [lo, hi) around the middle element: afterwards [lo, j) rank above it, it sits at
 * j, (j, hi) rank below. Returns j. */
static int64_t partition(float *p, int32_t *id, int64_t lo, int64_t hi) {
    int64_t mid = lo + (hi - lo) / 2;
    swap2(p, id, mid, hi - 1);
    int64_t j = lo;
    for (int64_t i = lo; i < hi - 1; i++)
        if (above(p, id, i, hi - 1)) swap2(p, id, i, j++);
    swap2(p, id, j, hi - 1);
    return j;
}

/* Moves the k highest-ranked candidates into [0, k) (in no particular order). */
static void select_top(float *p, int32_t *id, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n;
    while (hi - lo > 1) {
        int64_t j = partition(p, id, lo, hi);
        if (j == k || j + 1 == k) return;
        if (j > k) hi = j;
        else lo = j + 1;
    }
}

/* The smallest m >= 1 such that the m highest-ranked candidates hold at least `target` of the
 * mass; moves them into [0, m). Expected O(n). */
static int64_t select_nucleus(float *p, int32_t *id, int64_t n, double target) {
    int64_t lo = 0, hi = n;
    double acc = 0;      /* the mass of [0, lo): all in the nucleus, and < target */
    while (lo < hi) {
        int64_t j = partition(p, id, lo, hi);
        double above_mass = 0;
        for (int64_t i = lo; i < j; i++) above_mass += p[i];
        if (j > lo && acc + above_mass >= target) {
            hi = j;
        } else {
            acc += above_mass + p[j];
            if (acc >= target) return j + 1;
            lo = j + 1;
        }
    }
    return lo < 1 ? 1 : lo;
}

static int64_t argmax(const float *z, int64_t n) {
    int64_t best = -1;
    for (int64_t i = 0; i < n; i++)
        if (!isnan(z[i]) && (best < 0 || z[i] > z[best])) best = i;
    return best < 0 ? 0 : best;
}

static int64_t pick(const float *z, int64_t n, const cc_sample_opts *o, ct_rng *rng, float *p,
                    int32_t *id) {
    if (o->temperature == 0.0f || o->top_k == 1) return argmax(z, n);
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        if (z[i] > mx) mx = z[i];              /* NaN compares false: skipped */
    double u = ct_rng_uniform(rng);
    if (mx == -INFINITY) return argmax(z, n);
    const float inv = 1.0f / o->temperature;
    for (int64_t i = 0; i < n; i++) {
        p[i] = isnan(z[i]) ? 0.0f : expf((z[i] - mx) * inv);
        id[i] = (int32_t)i;
    }
    int64_t m = n;
    if (o->top_k > 0 && o->top_k < m) {
        select_top(p, id, m, o->top_k);
        m = o->top_k;
    }
    double total = 0;
    for (int64_t i = 0; i < m; i++) total += p[i];
    if (o->top_p < 1.0f) {
        m = select_nucleus(p, id, m, (double)o->top_p * total);
        total = 0;
        for (int64_t i = 0; i < m; i++) total += p[i];
    }
    double r = u * total, acc = 0;
    int64_t last = -1;
    for (int64_t i = 0; i < m; i++) {
        if (p[i] <= 0) continue;
        acc += p[i];
        last = i;
        if (r < acc) return id[i];
    }
    return last >= 0 ? id[last] : argmax(z, n);   /* rounding at the very top */
}

int64_t cc_pick_token(const float *logits, int64_t n, const cc_sample_opts *o, ct_rng *rng,
                      float *work_p, int32_t *work_i) {
    if (!logits || n < 1 || n > INT32_MAX || !o || !opts_valid(o)) return -1;
    bool greedy = o->temperature == 0.0f || o->top_k == 1;
    if (!greedy && !rng) return -1;
    if ((work_p == NULL) != (work_i == NULL)) return -1;
    float *p = work_p;
    int32_t *id = work_i;
    if (!p && !greedy) {
        p = malloc(sizeof(float) * (size_t)n);
        id = malloc(sizeof(int32_t) * (size_t)n);
        if (!p || !id) {
            free(p);
            free(id);
            return -1;
        }
    }
    int64_t t = pick(logits, n, o, rng, p, id);
    if (p != work_p) {
        free(p);
        free(id);
    }
    return t;
}

/* ---- the sampler ------------------------------------------------------------------------------- */
typedef enum phase { FRESH, PENDING, READY } phase;

struct cc_sampler {
    ct_module *model;
    ct_ctx *ctx;
    cc_config cfg;
    bool roll;
    int64_t B, V, E, H;          /* rows, outputs, input size, hidden */
    cc_sample_opts o;
    ct_rnn_state *st;
    ct_rng *rngs;                /* [B] */
    int64_t *pend;               /* [B] pending tokens (token models) */
    float *x;                    /* [B, E] the input being built (embedding rows or frames) */
    float *logits;               /* [B, V] */
    float *wp;                   /* [V] */
    int32_t *wi;                 /* [V] */
    phase ph;
    /* a model on a device: a host copy of the embedding table, from which the input rows are
     * gathered (refreshed when the table's storage, data or version changes: the weights are
     * still read at every step) */
    bool host_emb;               /* test hook: use the copy on the CPU too */
    float *emb;                  /* [V, E] or NULL */
    const ct_storage *emb_storage;
    const void *emb_data;
    uint64_t emb_version;
};

static ct_status sfail(cc_sampler *s, ct_status st, const char *fmt, const char *a) {
    return ct_fail(s->ctx, st, fmt, a);
}

cc_sampler *cc_sampler_new(ct_module *model, int64_t batch, const cc_sample_opts *o, ct_rng *rng) {
    if (!model) return NULL;
    ct_ctx *ctx = model->ctx;
    const cc_config *c = cc_model_config(model);
    if (!c) {
        ct_fail(ctx, CT_E_ARG, "cc_sampler_new: module '%s' (%s) is not a composer", model->name,
                model->kind ? model->kind : "?");
        return NULL;
    }
    cc_sample_opts opts = o ? *o : cc_sample_defaults();
    if (!opts_valid(&opts)) {
        ct_fail(ctx, CT_E_ARG, "cc_sampler_new: options temperature %g, top_k %d, top_p %g: "
                "expected temperature >= 0, top_k >= 0, top_p in [0, 1]",
                (double)opts.temperature, opts.top_k, (double)opts.top_p);
        return NULL;
    }
    if (cc_config_is_roll(c) && (opts.top_k != 0 || opts.top_p != 1.0f)) {
        ct_fail(ctx, CT_E_ARG, "cc_sampler_new: top-k and top-p choose among tokens; the "
                "piano-roll model turns each key on independently (use the temperature)");
        return NULL;
    }
    if (!rng) {
        ct_fail(ctx, CT_E_NULL, "cc_sampler_new: rng is NULL (pass a seeded ct_rng)");
        return NULL;
    }
    if (batch < 1 || batch > (1 << 20)) {
        ct_fail(ctx, CT_E_ARG, "cc_sampler_new: batch %lld: expected 1..%d", (long long)batch,
                1 << 20);
        return NULL;
    }
    cc_sampler *s = calloc(1, sizeof *s);
    if (!s) goto nomem;
    s->model = model;
    s->ctx = ctx;
    s->cfg = *c;
    s->roll = cc_config_is_roll(c);
    s->B = batch;
    s->V = c->vocab;
    s->E = s->roll ? CC_ROLL_KEYS : c->embed;
    s->H = c->hidden;
    s->o = opts;
    s->rngs = malloc(sizeof(ct_rng) * (size_t)batch);
    s->pend = calloc((size_t)batch, sizeof(int64_t));
    s->x = calloc((size_t)(batch * s->E), sizeof(float));
    s->logits = calloc((size_t)(batch * s->V), sizeof(float));
    s->wp = malloc(sizeof(float) * (size_t)s->V);
    s->wi = malloc(sizeof(int32_t) * (size_t)s->V);
    if (!s->rngs || !s->pend || !s->x || !s->logits || !s->wp || !s->wi) goto nomem;
    s->st = ct_rnn_state_new(cc_model_rnn(model), batch);
    if (!s->st) {
        cc_sampler_free(s);
        return NULL;
    }
    for (int64_t b = 0; b < batch; b++) s->rngs[b] = ct_rng_fork(rng, (uint64_t)b);
    (void)ct_rng_u64(rng);
    s->ph = FRESH;
    return s;
nomem:
    cc_sampler_free(s);
    ct_fail(ctx, CT_E_NOMEM, "cc_sampler_new: out of memory (batch %lld)", (long long)batch);
    return NULL;
}

void cc_sampler_free(cc_sampler *s) {
    if (!s) return;
    ct_rnn_state_free(s->st);
    free(s->rngs);
    free(s->pend);
    free(s->x);
    free(s->logits);
    free(s->wp);
    free(s->wi);
    free(s->emb);
    free(s);
}

void cc__sampler_host_embedding(cc_sampler *s, bool on) {
    if (s) s->host_emb = on;
}

void cc_sampler_reset(cc_sampler *s) {
    if (!s) return;
    ct_rnn_state_reset(s->st);
    s->ph = FRESH;
}

ct_status cc_sampler_set_opts(cc_sampler *s, const cc_sample_opts *o) {
    if (!s || !o) return CT_E_NULL;
    if (!opts_valid(o))
        return ct_fail(s->ctx, CT_E_ARG, "cc_sampler_set_opts: temperature %g, top_k %d, top_p "
                       "%g: expected temperature >= 0, top_k >= 0, top_p in [0, 1]",
                       (double)o->temperature, o->top_k, (double)o->top_p);
    if (s->roll && (o->top_k != 0 || o->top_p != 1.0f))
        return sfail(s, CT_E_ARG, "cc_sampler_set_opts: top-k and top-p do not apply to the %s "
                     "model (each key is on independently)", "piano-roll");
    s->o = *o;
    return CT_OK;
}

int64_t cc_sampler_batch(const cc_sampler *s) { return s ? s->B : 0; }

/* A parameter the step reads: a contiguous float32 tensor on the model's device (the CPU, or
 * a CUDA device: ct_rnn_step_linear_f32 takes the output layer there). */
static ct_tensor *step_param(cc_sampler *s, ct_module *owner, const char *name) {
    ct_tensor *t = ct_module_param(owner, name);
    const ct_device dev = ct_module_device(s->model);
    if (!t || t->dtype != CT_F32 || !ct_is_contiguous(t) || !ct_device_eq(ct_tensor_device(t), dev)) {
        char d[16];
        ct_fail(s->ctx, CT_E_UNSUPPORTED, "cc_sampler: parameter %s.%s is not a contiguous float32 tensor "
                "on the model's device (%s): move the whole model with ct_module_to", owner->name, name,
                ct_device_str(dev, d, sizeof d));
        return NULL;
    }
    return t;
}

/* The embedding table [V, E] as host floats: the parameter itself on the CPU, else (or with
 * the test hook) a host copy, fetched again whenever the parameter may have changed. */
static const float *embedding_table(cc_sampler *s) {
    ct_tensor *t = step_param(s, cc_model_embed(s->model), "weight");
    if (!t) return NULL;
    if (ct_tensor_device(t).type == CT_CPU && !s->host_emb) return ct_data_f32(t);
    if (t->storage == s->emb_storage && ct_data(t) == s->emb_data && t->storage->version == s->emb_version)
        return s->emb;
    const size_t bytes = sizeof(float) * (size_t)ct_numel(t);
    if (!s->emb && !(s->emb = malloc(bytes ? bytes : 1))) {
        ct_fail(s->ctx, CT_E_NOMEM, "cc_sampler: out of memory for a host copy of the embedding (%zu bytes)", bytes);
        return NULL;
    }
    s->emb_storage = NULL;   /* until the copy is whole */
    if (ct_copy_to_host(t, s->emb, bytes) != CT_OK) return NULL;
    s->emb_storage = t->storage;
    s->emb_data = ct_data(t);
    s->emb_version = t->storage->version;
    return s->emb;
}

/* Runs the pending input through the RNN; with project, also the output layer into logits.
 * The input and the logits are host buffers whatever the model's device (engine/rnn.h: a
 * CUDA state takes host or device pointers for them). */
static ct_status step_pending(cc_sampler *s, bool project) {
    const float *x = s->x;
    if (!s->roll) {
        const float *emb = embedding_table(s);
        if (!emb) return ct_ctx_status(s->ctx);
        if (s->B == 1) {
            x = emb + s->pend[0] * s->E;
        } else {
            for (int64_t b = 0; b < s->B; b++)
                memcpy(s->x + b * s->E, emb + s->pend[b] * s->E, sizeof(float) * (size_t)s->E);
        }
    }
    if (!project) return ct_rnn_step_f32(cc_model_rnn(s->model), x, s->st, NULL);
    /* the step and the output layer in one call: at batch 1 the state's worker thread shares
     * the projection with the layers (engine/rnn.h, ct_rnn_step_linear_f32) */
    ct_module *out = cc_model_out(s->model);
    ct_tensor *w = step_param(s, out, "weight"), *bias = w ? step_param(s, out, "bias") : NULL;
    if (!w || !bias) return ct_ctx_status(s->ctx);
    return ct_rnn_step_linear_f32(cc_model_rnn(s->model), x, s->st, w, bias, s->logits, NULL);
}

ct_status cc_sampler_feed_tokens(cc_sampler *s, const int64_t *tokens, int64_t n, bool per_row) {
    if (!s) return CT_E_NULL;
    if (s->roll)
        return sfail(s, CT_E_ARG, "cc_sampler_feed_tokens: the %s model takes frames "
                     "(cc_sampler_feed_frames)", "piano-roll");
    if (n < 0 || (n > 0 && !tokens))
        return sfail(s, CT_E_ARG, "cc_sampler_feed_tokens: %s", n < 0 ? "n < 0" : "tokens is NULL");
    const int64_t total = per_row ? n * s->B : n;
    for (int64_t i = 0; i < total; i++)
        if (tokens[i] < 0 || tokens[i] >= s->V)
            return ct_fail(s->ctx, CT_E_ARG, "cc_sampler_feed_tokens: token %lld at position "
                           "%lld is outside 0..%lld (the %s vocabulary)", (long long)tokens[i],
                           (long long)i, (long long)(s->V - 1), cc_encoding_name(s->cfg.encoding));
    for (int64_t t = 0; t < n; t++) {
        if (s->ph == PENDING) {
            ct_status st = step_pending(s, false);
            if (st != CT_OK) return st;
        }
        for (int64_t b = 0; b < s->B; b++) s->pend[b] = per_row ? tokens[b * n + t] : tokens[t];
        s->ph = PENDING;
    }
    return CT_OK;
}

ct_status cc_sampler_feed_frames(cc_sampler *s, const uint8_t *frames, int64_t n, bool per_row) {
    if (!s) return CT_E_NULL;
    if (!s->roll)
        return sfail(s, CT_E_ARG, "cc_sampler_feed_frames: the %s model takes tokens "
                     "(cc_sampler_feed_tokens)", cc_encoding_name(s->cfg.encoding));
    if (n < 0 || (n > 0 && !frames))
        return sfail(s, CT_E_ARG, "cc_sampler_feed_frames: %s", n < 0 ? "n < 0" : "frames is NULL");
    const int64_t K = CC_ROLL_KEYS;
    for (int64_t t = 0; t < n; t++) {
        if (s->ph == PENDING) {
            ct_status st = step_pending(s, false);
            if (st != CT_OK) return st;
        }
        for (int64_t b = 0; b < s->B; b++) {
            const uint8_t *f = frames + (per_row ? (b * n + t) : t) * K;
            for (int64_t k = 0; k < K; k++) s->x[b * K + k] = f[k] ? 1.0f : 0.0f;
        }
        s->ph = PENDING;
    }
    return CT_OK;
}

ct_status cc_sampler_logits(cc_sampler *s, const float **logits) {
    if (logits) *logits = NULL;
    if (!s) return CT_E_NULL;
    if (s->ph == FRESH) {
        if (s->roll) {
            memset(s->x, 0, sizeof(float) * (size_t)(s->B * s->E));
        } else {
            int64_t t = cc_start_token(&s->cfg);
            for (int64_t b = 0; b < s->B; b++) s->pend[b] = t;
        }
        s->ph = PENDING;
    }
    if (s->ph == PENDING) {
        ct_status st = step_pending(s, true);
        if (st != CT_OK) return st;
        s->ph = READY;
    }
    if (logits) *logits = s->logits;
    return CT_OK;
}

ct_status cc_sampler_next_tokens(cc_sampler *s, int64_t *out) {
    if (!s) return CT_E_NULL;
    if (s->roll)
        return sfail(s, CT_E_ARG, "cc_sampler_next_tokens: the %s model makes frames "
                     "(cc_sampler_next_frames)", "piano-roll");
    if (!out) return sfail(s, CT_E_NULL, "cc_sampler_next_tokens: %s is NULL", "out");
    ct_status st = cc_sampler_logits(s, NULL);
    if (st != CT_OK) return st;
    for (int64_t b = 0; b < s->B; b++)
        s->pend[b] = out[b] = pick(s->logits + b * s->V, s->V, &s->o, &s->rngs[b], s->wp, s->wi);
    s->ph = PENDING;
    return CT_OK;
}

ct_status cc_sampler_next_frames(cc_sampler *s, uint8_t *out) {
    if (!s) return CT_E_NULL;
    if (!s->roll)
        return sfail(s, CT_E_ARG, "cc_sampler_next_frames: the %s model makes tokens "
                     "(cc_sampler_next_tokens)", cc_encoding_name(s->cfg.encoding));
    if (!out) return sfail(s, CT_E_NULL, "cc_sampler_next_frames: %s is NULL", "out");
    ct_status st = cc_sampler_logits(s, NULL);
    if (st != CT_OK) return st;
    const int64_t K = CC_ROLL_KEYS;
    const float T = s->o.temperature;
    for (int64_t b = 0; b < s->B; b++) {
        const float *z = s->logits + b * K;
        for (int64_t k = 0; k < K; k++) {
            bool on;
            if (T == 0.0f) {
                on = z[k] > 0.0f;
            } else {
                double p = 1.0 / (1.0 + exp(-(double)z[k] / (double)T));
                on = ct_rng_uniform(&s->rngs[b]) < p;
            }
            out[b * K + k] = on;
            s->x[b * K + k] = on ? 1.0f : 0.0f;
        }
    }
    s->ph = PENDING;
    return CT_OK;
}

/* ---- one call ---------------------------------------------------------------------------------- */
ct_status cc_sample_tokens(ct_module *model, const cc_sample_opts *o, ct_rng *rng,
                           const int64_t *primer, int64_t primer_len, int64_t batch,
                           int64_t steps, int64_t *out) {
    if (!model) return CT_E_NULL;
    if (steps < 0 || (steps > 0 && !out))
        return ct_fail(model->ctx, CT_E_ARG, "cc_sample_tokens: steps %lld%s", (long long)steps,
                       steps < 0 ? " < 0" : " with out NULL");
    cc_sampler *s = cc_sampler_new(model, batch, o, rng);
    if (!s) return ct_ctx_status(model->ctx);
    ct_status st = cc_sampler_feed_tokens(s, primer, primer_len, false);
    int64_t *row = st == CT_OK ? malloc(sizeof(int64_t) * (size_t)batch) : NULL;
    if (st == CT_OK && !row) st = ct_fail(model->ctx, CT_E_NOMEM, "cc_sample_tokens: out of memory");
    for (int64_t t = 0; st == CT_OK && t < steps; t++) {
        st = cc_sampler_next_tokens(s, row);
        for (int64_t b = 0; st == CT_OK && b < batch; b++) out[b * steps + t] = row[b];
    }
    free(row);
    cc_sampler_free(s);
    return st;
}

ct_status cc_sample_frames(ct_module *model, const cc_sample_opts *o, ct_rng *rng,
                           const uint8_t *primer, int64_t primer_len, int64_t batch,
                           int64_t steps, uint8_t *out) {
    if (!model) return CT_E_NULL;
    if (steps < 0 || (steps > 0 && !out))
        return ct_fail(model->ctx, CT_E_ARG, "cc_sample_frames: steps %lld%s", (long long)steps,
                       steps < 0 ? " < 0" : " with out NULL");
    cc_sampler *s = cc_sampler_new(model, batch, o, rng);
    if (!s) return ct_ctx_status(model->ctx);
    const int64_t K = CC_ROLL_KEYS;
    ct_status st = cc_sampler_feed_frames(s, primer, primer_len, false);
    uint8_t *row = st == CT_OK ? malloc((size_t)(batch * K)) : NULL;
    if (st == CT_OK && !row) st = ct_fail(model->ctx, CT_E_NOMEM, "cc_sample_frames: out of memory");
    for (int64_t t = 0; st == CT_OK && t < steps; t++) {
        st = cc_sampler_next_frames(s, row);
        for (int64_t b = 0; st == CT_OK && b < batch; b++)
            memcpy(out + (b * steps + t) * K, row + b * K, (size_t)K);
    }
    free(row);
    cc_sampler_free(s);
    return st;
}

/* ---- music in and out -------------------------------------------------------------------------- */
void cc_steps_free(cc_steps *s) {
    if (!s) return;
    free(s->tokens);
    free(s->frames);
    memset(s, 0, sizeof *s);
}

static ct_status efail(char *err, size_t n, ct_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static ct_status efail(char *err, size_t n, ct_status st, const char *fmt, ...) {
    if (err && n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, n, fmt, ap);
        va_end(ap);
    }
    return st;
}

/* Widens the codec's int32 tokens into out->tokens (len 0 when out of memory). */
static ct_status take_tokens(cc_steps *out, const int32_t *t32, int64_t len, const char *name,
                             char *err, size_t n) {
    out->tokens = malloc(sizeof(int64_t) * (size_t)(len > 0 ? len : 1));
    if (!out->tokens) return efail(err, n, CT_E_NOMEM, "%s: out of memory", name);
    for (int64_t i = 0; i < len; i++) out->tokens[i] = t32[i];
    out->len = len;
    return CT_OK;
}

static bool has_midi_form(cc_encoding e) {
    return e == CC_ENC_MELODY || e == CC_ENC_PERFORMANCE || e == CC_ENC_PIANOROLL;
}

typedef struct qn {
    int64_t start, end;
    int pitch;
} qn;

static int qn_order(const void *a, const void *b) {
    const qn *x = a, *y = b;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    return y->pitch - x->pitch;   /* higher pitch first */
}

/* Grid step of a note time, as audio/melody.h quantizes (ticks for PPQ, seconds at the first
 * tempo for SMPTE). */
static int64_t grid_step(const cm_file *f, int64_t tick, double secs, double qpm, int spq) {
    if (f->division.ppq > 0) return (int64_t)floor((double)tick * spq / f->division.ppq + 0.5);
    return (int64_t)floor(secs * qpm / 60.0 * spq + 0.5);
}

/* The notes that a one-line reduction drops or cuts short (melody's rules, on the grid). */
static int64_t count_polyphonic(const cm_file *f, const cm_notes *nt, double qpm, int spq) {
    if (nt->n_notes < 2) return 0;
    qn *q = malloc(sizeof(qn) * (size_t)nt->n_notes);
    if (!q) return 0;
    int64_t n = 0;
    for (int64_t i = 0; i < nt->n_notes; i++) {
        const cm_note *x = &nt->notes[i];
        if (x->velocity == 0) continue;
        int64_t s = grid_step(f, x->start_tick, x->start_s, qpm, spq);
        int64_t e = grid_step(f, x->end_tick, x->end_s, qpm, spq);
        q[n++] = (qn){s, e > s ? e : s + 1, x->pitch};
    }
    qsort(q, (size_t)n, sizeof(qn), qn_order);
    int64_t poly = 0, last_on = INT64_MIN, last_end = INT64_MIN;
    for (int64_t i = 0; i < n; i++) {
        if (q[i].start == last_on) {   /* a lower note at the same onset: dropped */
            poly++;
            continue;
        }
        if (q[i].start < last_end) poly++;   /* starts while the previous one sounds: cuts it */
        last_on = q[i].start;
        last_end = q[i].end;
    }
    free(q);
    return poly;
}

static ct_status encode_melody(const cc_config *c, const cm_file *f, const char *name,
                               const cm_notes *nt, const cm_tempo_map *tm, double qpm,
                               cc_steps *out, cc_encode_info *info, char *err, size_t n) {
    cm_note *all = malloc(sizeof(cm_note) * (size_t)(nt->n_notes > 0 ? nt->n_notes : 1));
    if (!all) return efail(err, n, CT_E_NOMEM, "%s: out of memory (%lld notes)", name, (long long)nt->n_notes);
    for (int64_t i = 0; i < nt->n_notes; i++) {   /* one line: track 0, channel 0, program 0 */
        all[i] = nt->notes[i];
        all[i].track = 0;
        all[i].channel = 0;
        all[i].program = 0;
        all[i].is_drum = false;
    }
    cm_notes merged;
    memset(&merged, 0, sizeof merged);
    cm_error me;
    memset(&me, 0, sizeof me);
    cm_status s = cm_notes_from_array(&merged, all, nt->n_notes, &me);
    free(all);
    if (s != CM_OK) return efail(err, n, CT_E_FORMAT, "%s: %s", name, me.message);
    cm_melody_opts o = cm_melody_opts_default();
    o.steps_per_quarter = c->steps_per_quarter;
    o.range = (cm_melody_encoding){c->min_pitch, c->max_pitch};
    o.range_mode = c->max_pitch - c->min_pitch >= CM_MELODY_NOTES_PER_OCTAVE ? CM_MELODY_RANGE_OCTAVE
                                                                          : CM_MELODY_RANGE_DROP;
    o.gap_bars = 1e6;             /* one line however long its rests */
    o.min_bars = 0;
    o.min_unique_pitches = 0;
    int num = 4, den = 4;
    if (tm->n_time_signatures > 0) {
        num = tm->time_signatures[0].numerator;
        den = tm->time_signatures[0].denominator;
    }
    int64_t q = (int64_t)o.steps_per_quarter * 4 * num;
    o.steps_per_bar = (num >= 1 && den >= 1 && q % den == 0 && q / den <= 64 * CM_MELODY_MAX_STEPS_PER_QUARTER)
                          ? (int)(q / den) : 4 * o.steps_per_quarter;
    cm_melodies mels;
    memset(&mels, 0, sizeof mels);
    s = cm_melody_extract(&merged, tm, &o, &mels, &me);
    if (s == CM_OK && info) {
        info->polyphonic = count_polyphonic(f, &merged, qpm, o.steps_per_quarter);
        info->moved = mels.stats.notes_out_of_range_moved;
    }
    cm_notes_free(&merged);
    if (s != CM_OK) return efail(err, n, CT_E_FORMAT, "%s: %s", name, me.message);
    ct_status st = CT_OK;
    if (mels.n_melodies > 0) {
        int32_t *t32 = NULL;
        int64_t len = 0;
        if (cm_melody_encode(&mels.melodies[0], o.range, &t32, &len, &me) != CM_OK) {
            st = efail(err, n, CT_E_FORMAT, "%s: %s", name, me.message);
        } else {
            st = take_tokens(out, t32, len, name, err, n);
        }
        free(t32);
    }
    cm_melodies_free(&mels);
    return st;
}

ct_status cc_encode_midi(const cc_config *c, const cm_file *f, const char *name, cc_steps *out,
                         cc_encode_info *info, char *err, size_t n) {
    if (out) memset(out, 0, sizeof *out);
    if (info) memset(info, 0, sizeof *info);
    if (!name) name = "<midi>";
    if (!c || !f || !out) return efail(err, n, CT_E_NULL, "cc_encode_midi: %s is NULL", !c ? "the config" : !f ? "the file" : "out");
    cc_config r = *c;
    char cerr[256];
    if (cc_config_resolve(&r, cerr, sizeof cerr) != CT_OK)
        return efail(err, n, CT_E_ARG, "cc_encode_midi: bad configuration: %s", cerr);
    if (!has_midi_form(r.encoding))
        return efail(err, n, CT_E_ARG, "cc_encode_midi: a %s model does not read MIDI notes",
                     cc_encoding_name(r.encoding));
    cm_error me;
    memset(&me, 0, sizeof me);
    cm_tempo_map tm;
    memset(&tm, 0, sizeof tm);
    cm_notes nt;
    memset(&nt, 0, sizeof nt);
    cm_notes_opts no = {r.encoding == CC_ENC_PERFORMANCE, true};
    if (cm_tempo_map_init(&tm, f, -1, &me) != CM_OK || cm_notes_extract(f, &no, &nt, &me) != CM_OK) {
        cm_tempo_map_free(&tm);
        return efail(err, n, CT_E_FORMAT, "%s: %s", name, me.message);
    }
    const double qpm = 60e6 / (double)cm_tempo_at(&tm, 0);
    if (info) {
        info->qpm = qpm;
        info->quarters_per_bar = 4;
        if (tm.n_time_signatures > 0 && tm.time_signatures[0].denominator > 0)
            info->quarters_per_bar = 4.0 * tm.time_signatures[0].numerator / tm.time_signatures[0].denominator;
        info->notes = nt.n_notes;
    }
    ct_status st = CT_OK;
    if (nt.n_notes == 0) {
        /* nothing to encode: len 0 */
    } else if (r.encoding == CC_ENC_MELODY) {
        st = encode_melody(&r, f, name, &nt, &tm, qpm, out, info, err, n);
    } else if (r.encoding == CC_ENC_PERFORMANCE) {
        cm_perf_opts po = cm_perf_opts_default();
        po.config = (cm_perf_config){(int)r.steps_per_second, r.max_shift_steps, r.num_velocity_bins};
        int32_t *t32 = NULL;
        int64_t len = 0;
        if (cm_perf_encode(&nt, &po, &t32, &len, NULL, &me) != CM_OK) {
            st = efail(err, n, CT_E_FORMAT, "%s: %s", name, me.message);
        } else {
            st = take_tokens(out, t32, len, name, err, n);
        }
        free(t32);
    } else {
        cm_roll roll;
        memset(&roll, 0, sizeof roll);
        cm_roll_stats rs;
        memset(&rs, 0, sizeof rs);
        cm_roll_grid g = {r.steps_per_second, r.steps_per_quarter};
        if (cm_roll_from_notes(&nt, &tm, g, false, &roll, &rs, &me) != CM_OK) {
            st = efail(err, n, CT_E_FORMAT, "%s: %s", name, me.message);
        } else {
            out->frames = roll.frames;   /* taken over */
            out->len = roll.n_steps;
            roll.frames = NULL;
            if (info) info->dropped = rs.notes_out_of_range;
        }
        cm_roll_free(&roll);
    }
    cm_notes_free(&nt);
    cm_tempo_map_free(&tm);
    if (st != CT_OK) cc_steps_free(out);
    return st;
}

cm_file *cc_decode_midi(const cc_config *c, const cc_steps *steps, double qpm, char *err, size_t n) {
    if (!c || !steps) {
        efail(err, n, CT_E_NULL, "cc_decode_midi: %s is NULL", !c ? "the config" : "steps");
        return NULL;
    }
    cc_config r = *c;
    char cerr[256];
    if (cc_config_resolve(&r, cerr, sizeof cerr) != CT_OK) {
        efail(err, n, CT_E_ARG, "cc_decode_midi: bad configuration: %s", cerr);
        return NULL;
    }
    if (!has_midi_form(r.encoding)) {
        efail(err, n, CT_E_ARG, "cc_decode_midi: a %s model's steps have no MIDI form",
              cc_encoding_name(r.encoding));
        return NULL;
    }
    if (!(qpm >= 4 && qpm <= 1000)) {
        efail(err, n, CT_E_ARG, "cc_decode_midi: qpm %g: expected 4..1000", qpm);
        return NULL;
    }
    const bool roll = r.encoding == CC_ENC_PIANOROLL;
    if (steps->len < 0 || (steps->len > 0 && (roll ? !steps->frames : !steps->tokens))) {
        efail(err, n, CT_E_ARG, "cc_decode_midi: %lld steps without their %s", (long long)steps->len,
              roll ? "frames" : "tokens");
        return NULL;
    }
    cm_error me;
    memset(&me, 0, sizeof me);
    cm_file *f = NULL;
    if (roll) {
        cm_roll rl = {steps->frames, steps->len};
        cm_roll_grid g = {r.steps_per_second, r.steps_per_quarter};
        cm_roll_render rr = cm_roll_render_default();
        rr.qpm = qpm;
        cm_notes notes;
        memset(&notes, 0, sizeof notes);
        cm_tempo_map tm;
        memset(&tm, 0, sizeof tm);
        if (cm_roll_to_notes(&rl, g, &rr, &notes, &me) == CM_OK &&
            cm_tempo_map_init_simple(&tm, cm_division_ppq(rr.ppq), (uint32_t)llround(60e6 / qpm), 4, 4) == CM_OK)
            f = cm_file_from_notes(&notes, &tm, &me);
        cm_notes_free(&notes);
        cm_tempo_map_free(&tm);
    } else {
        int32_t *t32 = malloc(sizeof(int32_t) * (size_t)(steps->len > 0 ? steps->len : 1));
        if (!t32) {
            efail(err, n, CT_E_NOMEM, "cc_decode_midi: out of memory (%lld steps)", (long long)steps->len);
            return NULL;
        }
        for (int64_t i = 0; i < steps->len; i++) {
            if (steps->tokens[i] < 0 || steps->tokens[i] >= r.vocab) {
                efail(err, n, CT_E_ARG, "cc_decode_midi: token %lld at step %lld is outside 0..%lld",
                      (long long)steps->tokens[i], (long long)i, (long long)(r.vocab - 1));
                free(t32);
                return NULL;
            }
            t32[i] = (int32_t)steps->tokens[i];
        }
        if (r.encoding == CC_ENC_MELODY) {
            cm_melody mel;
            memset(&mel, 0, sizeof mel);
            cm_melody_encoding enc = {r.min_pitch, r.max_pitch};
            cm_melody_render mr = cm_melody_render_default();
            mr.qpm = qpm;
            if (cm_melody_decode(t32, steps->len, enc, r.steps_per_quarter, &mel, &me) == CM_OK)
                f = cm_melody_to_file(&mel, &mr, &me);
            cm_melody_free(&mel);
        } else {
            cm_perf_config pc = {(int)r.steps_per_second, r.max_shift_steps, r.num_velocity_bins};
            cm_perf_render pr = cm_perf_render_default();
            pr.qpm = qpm;
            f = cm_perf_to_file(t32, steps->len, &pc, &pr, &me);
        }
        free(t32);
    }
    if (!f) efail(err, n, CT_E_FORMAT, "cc_decode_midi: %s", me.message[0] ? me.message : "cannot build the MIDI file");
    return f;
}
