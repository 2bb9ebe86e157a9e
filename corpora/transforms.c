/* corpora/transforms.c — music augmentations (transpose, time stretch, velocity jitter, a
 * music-aware random crop) as ct_transforms over corpus items. See transforms.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corpora/transforms.h"

#define FAIL(ctx, s, ...) ((ctx) ? ct_fail((ctx), (s), __VA_ARGS__) : (s))

typedef struct tstate {
    cp_encoding e;
    int vocab;
    int lo, hi;
    cp_range_mode mode;
    double flo, fhi;
    int vshift, vjitter;
    int64_t max_len;
} tstate;

static ct_status new_state(ct_ctx *ctx, const char *what, const cp_encoding *e, tstate **out) {
    *out = NULL;
    if (!e) return FAIL(ctx, CT_E_NULL, "%s: NULL encoding", what);
    cp_error err;
    if (cp_encoding_check(e, &err) != CT_OK) return FAIL(ctx, CT_E_ARG, "%s: %s", what, err.message);
    tstate *s = calloc(1, sizeof *s);
    if (!s) return FAIL(ctx, CT_E_NOMEM, "%s: out of memory", what);
    s->e = *e;
    s->vocab = cp_encoding_vocab(e);
    *out = s;
    return CT_OK;
}

/* The item must be what the encoding makes: tokens in the vocabulary, or 88-wide frames. */
static ct_status check_item(const tstate *s, ct_data_item *it) {
    if (cp_encoding_is_tokens(&s->e)) {
        if (it->kind != CT_ITEM_TOKENS)
            return ct_item_fail(it, CT_E_DTYPE, "a %s corpus gives tokens, this item holds %s",
                                cp_encoding_name(s->e.kind), ct_item_kind_name(it->kind));
        for (int64_t i = 0; i < it->len; i++)
            if (it->tokens[i] < 0 || it->tokens[i] >= s->vocab)
                return ct_item_fail(it, CT_E_ARG, "token %lld at step %lld is outside the %s vocabulary 0..%d",
                                    (long long)it->tokens[i], (long long)i, cp_encoding_name(s->e.kind),
                                    s->vocab - 1);
        return CT_OK;
    }
    if (it->kind != CT_ITEM_FRAMES || it->width != CM_ROLL_NUM_KEYS)
        return ct_item_fail(it, CT_E_DTYPE, "a pianoroll corpus gives frames of width %d, this item holds %s of width "
                            "%lld", CM_ROLL_NUM_KEYS, ct_item_kind_name(it->kind), (long long)it->width);
    return CT_OK;
}

/* Replaces the item's tokens with v[0..n) (offset kept unless changed by the caller). */
static ct_status set_tokens(ct_data_item *it, const int64_t *v, int64_t n) { return ct_item_set_tokens(it, v, n); }

/* A growable int64 buffer. */
typedef struct vec {
    int64_t *v;
    int64_t n, cap;
    bool oom;
} vec;

static void vpush(vec *b, int64_t x) {
    if (b->oom) return;
    if (b->n == b->cap) {
        int64_t cap = b->cap ? 2 * b->cap : 64;
        int64_t *v = realloc(b->v, (size_t)cap * sizeof *v);
        if (!v) {
            b->oom = true;
            return;
        }
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = x;
}

static ct_status vfinish(vec *b, ct_data_item *it) {
    ct_status s = b->oom ? ct_item_fail(it, CT_E_NOMEM, "out of memory for %lld tokens", (long long)b->n)
                         : set_tokens(it, b->v, b->n);
    free(b->v);
    return s;
}

/* ============================================================================================
 * Transpose
 * ============================================================================================ */
/* The pitch of token t (-1 when it is not a note-on / note-off). */
static int token_pitch(const tstate *s, int64_t t) {
    if (s->e.kind == CP_MELODY)
        return t >= CM_MELODY_FIRST_PITCH_TOKEN ? (int)(s->e.melody.range.min_pitch + t - 2) : -1;
    if (t >= CM_PERF_NOTE_ON_OFFSET && t < CM_PERF_NOTE_OFF_OFFSET + 128) return (int)(t % 128);
    return -1;
}

/* Draws k: uniform in [lo, hi] (drop), or among the shifts keeping [pmin, pmax] in [rmin, rmax)
 * (redraw). *ok = false when none does (k = 0). Always draws exactly once. */
static int draw_shift(const tstate *s, int pmin, int pmax, int rmin, int rmax, ct_rng *rng, bool *ok) {
    *ok = true;
    if (s->mode == CP_RANGE_DROP || pmin > pmax)
        return s->lo + (int)ct_rng_below(rng, (uint64_t)(s->hi - s->lo + 1));
    int a = s->lo > rmin - pmin ? s->lo : rmin - pmin;           /* pmin + k >= rmin */
    int b = s->hi < rmax - 1 - pmax ? s->hi : rmax - 1 - pmax;   /* pmax + k <= rmax - 1 */
    if (a > b) {
        ct_rng_below(rng, 1);
        *ok = false;
        return 0;
    }
    return a + (int)ct_rng_below(rng, (uint64_t)(b - a + 1));
}

static ct_status transpose_tokens(const tstate *s, ct_data_item *it, ct_rng *rng) {
    int pmin = 1000, pmax = -1;
    for (int64_t i = 0; i < it->len; i++) {
        int p = token_pitch(s, it->tokens[i]);
        if (p < 0) continue;
        if (p < pmin) pmin = p;
        if (p > pmax) pmax = p;
    }
    bool melody = s->e.kind == CP_MELODY;
    int rmin = melody ? s->e.melody.range.min_pitch : 0, rmax = melody ? s->e.melody.range.max_pitch : 128;
    bool ok;
    int k = draw_shift(s, pmin, pmax, rmin, rmax, rng, &ok);
    if (!ok || k == 0) return CT_OK;
    if (melody) {
        bool sounding = false;
        for (int64_t i = 0; i < it->len; i++) {
            int64_t t = it->tokens[i];
            if (t == CM_MELODY_TOKEN_NOTE_OFF) sounding = false;
            if (t < CM_MELODY_FIRST_PITCH_TOKEN) continue;
            int p = token_pitch(s, t) + k;
            if (p >= rmin && p < rmax) {
                it->tokens[i] = t + k;
                sounding = true;
            } else {   /* dropped: a rest */
                it->tokens[i] = sounding ? CM_MELODY_TOKEN_NOTE_OFF : CM_MELODY_TOKEN_NO_EVENT;
                sounding = false;
            }
        }
        return CT_OK;
    }
    int64_t n = 0;
    for (int64_t i = 0; i < it->len; i++) {
        int64_t t = it->tokens[i];
        int p = token_pitch(s, t);
        if (p >= 0) {
            if (p + k < 0 || p + k > 127) continue;   /* dropped */
            t += k;
        }
        it->tokens[n++] = t;
    }
    if (n < it->len) return ct_item_crop(it, 0, n);
    return CT_OK;
}

static ct_status transpose_frames(const tstate *s, ct_data_item *it, ct_rng *rng) {
    int kmin = 1000, kmax = -1;
    for (int64_t t = 0; t < it->len; t++)
        for (int k = 0; k < CM_ROLL_NUM_KEYS; k++)
            if (it->values[t * CM_ROLL_NUM_KEYS + k] != 0) {
                if (k < kmin) kmin = k;
                if (k > kmax) kmax = k;
            }
    bool ok;
    int d = draw_shift(s, kmin, kmax, 0, CM_ROLL_NUM_KEYS, rng, &ok);
    if (!ok || d == 0) return CT_OK;
    float row[CM_ROLL_NUM_KEYS];
    for (int64_t t = 0; t < it->len; t++) {
        float *f = it->values + t * CM_ROLL_NUM_KEYS;
        for (int k = 0; k < CM_ROLL_NUM_KEYS; k++) {
            int src = k - d;
            row[k] = src >= 0 && src < CM_ROLL_NUM_KEYS ? f[src] : 0.0f;
        }
        memcpy(f, row, sizeof row);
    }
    return CT_OK;
}

static ct_status transpose_fn(void *state, ct_data_item *it, ct_rng *rng) {
    const tstate *s = state;
    ct_status st = check_item(s, it);
    if (st != CT_OK) return st;
    return cp_encoding_is_tokens(&s->e) ? transpose_tokens(s, it, rng) : transpose_frames(s, it, rng);
}

ct_status cp_transform_transpose(ct_ctx *ctx, ct_transform *out, const cp_encoding *e, int lo, int hi,
                                 cp_range_mode mode) {
    if (!out) return FAIL(ctx, CT_E_NULL, "transpose: out is NULL");
    if (lo > hi || lo < -127 || hi > 127)
        return FAIL(ctx, CT_E_ARG, "transpose: range %d..%d semitones; expected -127 <= lo <= hi <= 127", lo, hi);
    if (mode != CP_RANGE_REDRAW && mode != CP_RANGE_DROP)
        return FAIL(ctx, CT_E_ARG, "transpose: range mode %d; expected CP_RANGE_REDRAW (0) or CP_RANGE_DROP (1)",
                    (int)mode);
    tstate *s;
    ct_status st = new_state(ctx, "transpose", e, &s);
    if (st != CT_OK) return st;
    s->lo = lo;
    s->hi = hi;
    s->mode = mode;
    *out = ct_transform_make("transpose", transpose_fn, s, free);
    return CT_OK;
}

/* ============================================================================================
 * Time stretch
 * ============================================================================================ */
static void put_shift(vec *b, int64_t steps, int max_shift) {
    while (steps > max_shift) {
        vpush(b, CM_PERF_TIME_SHIFT_OFFSET + max_shift - 1);
        steps -= max_shift;
    }
    if (steps > 0) vpush(b, CM_PERF_TIME_SHIFT_OFFSET + steps - 1);
}

static ct_status stretch_fn(void *state, ct_data_item *it, ct_rng *rng) {
    const tstate *s = state;
    ct_status st = check_item(s, it);
    if (st != CT_OK) return st;
    double f = s->flo + (s->fhi - s->flo) * ct_rng_uniform(rng);
    if (s->flo == s->fhi) f = s->flo;
    if (s->e.kind == CP_PERFORMANCE) {
        const int ms = s->e.perf.config.max_shift_steps;
        vec b = {0};
        int64_t old_t = 0, new_t = 0;
        for (int64_t i = 0; i < it->len; i++) {
            int64_t t = it->tokens[i];
            if (t >= CM_PERF_TIME_SHIFT_OFFSET && t < CM_PERF_TIME_SHIFT_OFFSET + ms) {
                old_t += t - CM_PERF_TIME_SHIFT_OFFSET + 1;
                continue;
            }
            int64_t target = llround((double)old_t * f);
            put_shift(&b, target - new_t, ms);
            new_t = target > new_t ? target : new_t;
            vpush(&b, t);
        }
        int64_t target = llround((double)old_t * f);   /* trailing silence */
        put_shift(&b, target - new_t, ms);
        return vfinish(&b, it);
    }
    /* piano roll: nearest-neighbour resampling */
    int64_t n = llround((double)it->len * f);
    if (n < 1) n = 1;
    float *v = malloc((size_t)n * CM_ROLL_NUM_KEYS * sizeof *v);
    if (!v) return ct_item_fail(it, CT_E_NOMEM, "out of memory for %lld frames", (long long)n);
    for (int64_t j = 0; j < n; j++) {
        int64_t src = (int64_t)floor(((double)j + 0.5) / f);
        if (src > it->len - 1) src = it->len - 1;
        if (src < 0) src = 0;
        memcpy(v + j * CM_ROLL_NUM_KEYS, it->values + src * CM_ROLL_NUM_KEYS, CM_ROLL_NUM_KEYS * sizeof *v);
    }
    st = it->len > 0 ? ct_item_set_frames(it, v, n, CM_ROLL_NUM_KEYS) : CT_OK;
    free(v);
    return st;
}

ct_status cp_transform_time_stretch(ct_ctx *ctx, ct_transform *out, const cp_encoding *e, double lo, double hi) {
    if (!out) return FAIL(ctx, CT_E_NULL, "time_stretch: out is NULL");
    if (!(lo >= 0.1 && lo <= hi && hi <= 10))
        return FAIL(ctx, CT_E_ARG, "time_stretch: factors %g..%g; expected 0.1 <= lo <= hi <= 10 (0.95..1.05 is "
                    "±5 %%)", lo, hi);
    if (e && e->kind == CP_MELODY)
        return FAIL(ctx, CT_E_UNSUPPORTED, "time_stretch: melody tokens count 16th-note steps on the bar grid and "
                    "carry no tempo, so stretching time does not apply to them; leave it out of melody pipelines "
                    "(cp_augment does)");
    tstate *s;
    ct_status st = new_state(ctx, "time_stretch", e, &s);
    if (st != CT_OK) return st;
    s->flo = lo;
    s->fhi = hi;
    *out = ct_transform_make("time_stretch", stretch_fn, s, free);
    return CT_OK;
}

/* ============================================================================================
 * Velocity jitter
 * ============================================================================================ */
static ct_status velocity_fn(void *state, ct_data_item *it, ct_rng *rng) {
    const tstate *s = state;
    ct_status st = check_item(s, it);
    if (st != CT_OK) return st;
    const int bins = s->e.perf.config.num_velocity_bins;
    const int64_t v0 = CM_PERF_TIME_SHIFT_OFFSET + s->e.perf.config.max_shift_steps;
    int shift = (int)ct_rng_below(rng, (uint64_t)(2 * s->vshift + 1)) - s->vshift;
    for (int64_t i = 0; i < it->len; i++) {
        int64_t t = it->tokens[i];
        if (t < v0 || t >= v0 + bins) continue;
        int bin = (int)(t - v0) + 1 + shift;
        if (s->vjitter > 0) bin += (int)ct_rng_below(rng, (uint64_t)(2 * s->vjitter + 1)) - s->vjitter;
        if (bin < 1) bin = 1;
        if (bin > bins) bin = bins;
        it->tokens[i] = v0 + bin - 1;
    }
    return CT_OK;
}

ct_status cp_transform_velocity_jitter(ct_ctx *ctx, ct_transform *out, const cp_encoding *e, int max_shift,
                                       int max_jitter) {
    if (!out) return FAIL(ctx, CT_E_NULL, "velocity_jitter: out is NULL");
    if (max_shift < 0 || max_shift > 127 || max_jitter < 0 || max_jitter > 127)
        return FAIL(ctx, CT_E_ARG, "velocity_jitter: shift %d, jitter %d bins; expected 0..127 each", max_shift,
                    max_jitter);
    if (e && (e->kind != CP_PERFORMANCE || e->perf.config.num_velocity_bins <= 0))
        return FAIL(ctx, CT_E_UNSUPPORTED, "velocity_jitter: the %s encoding%s has no velocity events; it applies to "
                    "performance tokens with velocity bins", cp_encoding_name(e->kind),
                    e->kind == CP_PERFORMANCE ? " without velocity bins" : "");
    tstate *s;
    ct_status st = new_state(ctx, "velocity_jitter", e, &s);
    if (st != CT_OK) return st;
    s->vshift = max_shift;
    s->vjitter = max_jitter;
    *out = ct_transform_make("velocity_jitter", velocity_fn, s, free);
    return CT_OK;
}

/* ============================================================================================
 * Random crop
 * ============================================================================================ */
static ct_status crop_perf(const tstate *s, ct_data_item *it, int64_t start) {
    const int64_t L = s->max_len;
    const int bins = s->e.perf.config.num_velocity_bins;
    const int64_t v0 = CM_PERF_TIME_SHIFT_OFFSET + s->e.perf.config.max_shift_steps;
    int64_t vel = -1;   /* the velocity token in force at the window's start */
    for (int64_t i = 0; i < start; i++)
        if (bins > 0 && it->tokens[i] >= v0 && it->tokens[i] < v0 + bins) vel = it->tokens[i];
    bool prepend = false;
    if (vel >= 0) {
        for (int64_t i = start; i < start + L; i++) {
            int64_t t = it->tokens[i];
            if (t >= v0 && t < v0 + bins) break;   /* the window sets its own */
            if (t < CM_PERF_NOTE_OFF_OFFSET) {     /* a note-on before any velocity */
                prepend = true;
                break;
            }
        }
    }
    int64_t end = start + (prepend ? L - 1 : L);
    int open[128] = {0};
    vec b = {0};
    if (prepend) vpush(&b, vel);
    for (int64_t i = start; i < end; i++) {
        int64_t t = it->tokens[i];
        if (t < CM_PERF_NOTE_OFF_OFFSET) {
            open[t]++;
        } else if (t < CM_PERF_NOTE_OFF_OFFSET + 128) {
            if (open[t - CM_PERF_NOTE_OFF_OFFSET] == 0) continue;   /* its note-on is before the window */
            open[t - CM_PERF_NOTE_OFF_OFFSET]--;
        }
        vpush(&b, t);
    }
    int64_t offset = it->offset + start;
    ct_status st = vfinish(&b, it);
    if (st == CT_OK) it->offset = offset;
    return st;
}

static ct_status crop_fn(void *state, ct_data_item *it, ct_rng *rng) {
    const tstate *s = state;
    ct_status st = check_item(s, it);
    if (st != CT_OK) return st;
    if (it->len <= s->max_len) return CT_OK;
    int64_t start = (int64_t)ct_rng_below(rng, (uint64_t)(it->len - s->max_len + 1));
    if (s->e.kind == CP_PERFORMANCE) return crop_perf(s, it, start);
    if (s->e.kind == CP_MELODY && start > 0 && it->tokens[start] == CM_MELODY_TOKEN_NO_EVENT) {
        int64_t i = start - 1;   /* the last event before the window: a note-on means a held note */
        while (i >= 0 && it->tokens[i] == CM_MELODY_TOKEN_NO_EVENT) i--;
        if (i >= 0 && it->tokens[i] >= CM_MELODY_FIRST_PITCH_TOKEN) it->tokens[start] = it->tokens[i];
    }
    return ct_item_crop(it, start, s->max_len);
}

ct_status cp_transform_random_crop(ct_ctx *ctx, ct_transform *out, const cp_encoding *e, int64_t max_len) {
    if (!out) return FAIL(ctx, CT_E_NULL, "random_crop: out is NULL");
    if (max_len < 2)
        return FAIL(ctx, CT_E_ARG, "random_crop: max_len %lld; expected at least 2 (an input and its target)",
                    (long long)max_len);
    tstate *s;
    ct_status st = new_state(ctx, "random_crop", e, &s);
    if (st != CT_OK) return st;
    s->max_len = max_len;
    *out = ct_transform_make("random_crop", crop_fn, s, free);
    return CT_OK;
}

/* ============================================================================================
 * The default augmentation
 * ============================================================================================ */
cp_augment_opts cp_augment_defaults(void) {
    cp_augment_opts o;
    memset(&o, 0, sizeof o);
    o.transpose = true;
    o.transpose_lo = -3;
    o.transpose_hi = 3;
    o.transpose_mode = CP_RANGE_REDRAW;
    o.stretch = true;
    o.stretch_lo = 0.95;
    o.stretch_hi = 1.05;
    o.velocity = false;
    o.velocity_shift = 2;
    o.velocity_jitter = 1;
    o.crop_len = 0;
    return o;
}

ct_status cp_augment(ct_ctx *ctx, ct_transform *out, const cp_encoding *e, const cp_augment_opts *opts) {
    if (!out || !e) return FAIL(ctx, CT_E_NULL, "augment: NULL argument");
    cp_augment_opts o = opts ? *opts : cp_augment_defaults();
    ct_transform ts[4];
    int n = 0;
    ct_status st = CT_OK;
    if (o.transpose) st = cp_transform_transpose(ctx, &ts[n++], e, o.transpose_lo, o.transpose_hi, o.transpose_mode);
    if (st == CT_OK && o.stretch && e->kind != CP_MELODY)
        st = cp_transform_time_stretch(ctx, &ts[n++], e, o.stretch_lo, o.stretch_hi);
    if (st == CT_OK && o.velocity && e->kind == CP_PERFORMANCE && e->perf.config.num_velocity_bins > 0)
        st = cp_transform_velocity_jitter(ctx, &ts[n++], e, o.velocity_shift, o.velocity_jitter);
    if (st == CT_OK && o.crop_len > 0) st = cp_transform_random_crop(ctx, &ts[n++], e, o.crop_len);
    if (st != CT_OK) n--;   /* the failed one made nothing */
    if (st == CT_OK) st = ct_compose(ctx, out, n, ts);
    if (st != CT_OK)
        for (int i = 0; i < n; i++) ct_transform_free(&ts[i]);
    return st;
}
