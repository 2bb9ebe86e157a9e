/* engine/transforms.c — per-item transforms: the interface, compose, and the generic ones
 * (random crop, additive noise, random gain). Music transforms (transpose, time stretch,
 * velocity jitter) plug into the same interface next to the encodings they need. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/data.h"

/* Records an error in ctx when there is one (ctx may be NULL: the status alone). */
#define FAIL(ctx, s, ...) ((ctx) ? ct_fail((ctx), (s), __VA_ARGS__) : (s))

ct_transform ct_transform_make(const char *name, ct_transform_fn fn, void *state,
                               void (*free_state)(void *state)) {
    ct_transform t = {name, fn, state, free_state};
    return t;
}

ct_status ct_transform_apply(const ct_transform *t, ct_data_item *item, ct_rng *rng) {
    if (!item) return CT_E_NULL;
    if (!t || !t->fn) return CT_OK;
    ct_rng fixed;
    if (!rng) {
        ct_rng_seed(&fixed, 0);
        rng = &fixed;
    }
    ct_status s = t->fn(t->state, item, rng);
    if (s == CT_OK || !t->name) {
        if (s != CT_OK && !item->error)
            ct_item_fail(item, s, "transform failed (%s)", ct_status_text(s));
        return s;
    }
    if (item->error) {
        char *old = item->error;
        item->error = NULL;
        ct_item_fail(item, s, "%s: %s", t->name, old);
        if (!item->error) item->error = old;   /* out of memory: keep the bare message */
        else free(old);
    } else {
        ct_item_fail(item, s, "%s: failed (%s)", t->name, ct_status_text(s));
    }
    return s;
}

void ct_transform_free(ct_transform *t) {
    if (!t) return;
    if (t->free_state && t->state) t->free_state(t->state);
    memset(t, 0, sizeof *t);
}

/* ---- compose ----------------------------------------------------------------------------- */
typedef struct compose_state {
    int n;
    ct_transform *ts;
} compose_state;

static ct_status compose_fn(void *state, ct_data_item *item, ct_rng *rng) {
    compose_state *c = state;
    for (int i = 0; i < c->n; i++) {
        ct_rng r = ct_rng_fork(rng, (uint64_t)i);
        ct_status s = ct_transform_apply(&c->ts[i], item, &r);
        if (s != CT_OK) return s;
    }
    return CT_OK;
}

static void compose_free(void *state) {
    compose_state *c = state;
    for (int i = 0; i < c->n; i++) ct_transform_free(&c->ts[i]);
    free(c->ts);
    free(c);
}

ct_status ct_compose(ct_ctx *ctx, ct_transform *out, int n, const ct_transform *ts) {
    if (!out) return FAIL(ctx, CT_E_NULL, "compose: out is NULL");
    if (n < 0 || (n > 0 && !ts))
        return FAIL(ctx, CT_E_ARG, "compose: %d transforms from %s", n,
                       ts ? "a list" : "a NULL list");
    compose_state *c = calloc(1, sizeof *c);
    ct_transform *copy = n ? malloc((size_t)n * sizeof *copy) : NULL;
    if (!c || (n && !copy)) {
        free(c);
        free(copy);
        return FAIL(ctx, CT_E_NOMEM, "compose: out of memory for %d transforms", n);
    }
    if (n) memcpy(copy, ts, (size_t)n * sizeof *copy);
    c->n = n;
    c->ts = copy;
    *out = ct_transform_make(NULL, compose_fn, c, compose_free);
    return CT_OK;
}

/* ---- random crop ------------------------------------------------------------------------- */
static ct_status crop_fn(void *state, ct_data_item *item, ct_rng *rng) {
    int64_t max_len = *(const int64_t *)state;
    if (item->len <= max_len) return CT_OK;
    int64_t start = (int64_t)ct_rng_below(rng, (uint64_t)(item->len - max_len + 1));
    return ct_item_crop(item, start, max_len);
}

ct_status ct_transform_random_crop(ct_ctx *ctx, ct_transform *out, int64_t max_len) {
    if (!out) return FAIL(ctx, CT_E_NULL, "random_crop: out is NULL");
    if (max_len < 1)
        return FAIL(ctx, CT_E_ARG, "random_crop: max_len %lld must be at least 1",
                       (long long)max_len);
    int64_t *st = malloc(sizeof *st);
    if (!st) return FAIL(ctx, CT_E_NOMEM, "random_crop: out of memory");
    *st = max_len;
    *out = ct_transform_make("random_crop", crop_fn, st, free);
    return CT_OK;
}

/* ---- numeric transforms of frames and samples ---------------------------------------------- */
static ct_status need_values(ct_data_item *item, const char *what) {
    if (item->kind == CT_ITEM_FRAMES || item->kind == CT_ITEM_SAMPLES) return CT_OK;
    return ct_item_fail(item, CT_E_DTYPE,
                        "%s applies to frames and samples, not to %s (tokens are class indices)",
                        what, ct_item_kind_name(item->kind));
}

static ct_status noise_fn(void *state, ct_data_item *item, ct_rng *rng) {
    float std = *(const float *)state;
    ct_status s = need_values(item, "add_noise");
    if (s != CT_OK || std == 0.0f) return s;
    int64_t n = item->len * item->width;
    for (int64_t i = 0; i < n; i++) item->values[i] += std * ct_rng_normal(rng);
    return CT_OK;
}

ct_status ct_transform_add_noise(ct_ctx *ctx, ct_transform *out, float std) {
    if (!out) return FAIL(ctx, CT_E_NULL, "add_noise: out is NULL");
    if (!isfinite(std) || std < 0.0f)
        return FAIL(ctx, CT_E_ARG, "add_noise: std %g must be finite and >= 0", (double)std);
    float *st = malloc(sizeof *st);
    if (!st) return FAIL(ctx, CT_E_NOMEM, "add_noise: out of memory");
    *st = std;
    *out = ct_transform_make("add_noise", noise_fn, st, free);
    return CT_OK;
}

typedef struct scale_state { float lo, hi; } scale_state;

static ct_status scale_fn(void *state, ct_data_item *item, ct_rng *rng) {
    const scale_state *sc = state;
    ct_status s = need_values(item, "scale");
    if (s != CT_OK) return s;
    float g = sc->lo;
    if (sc->hi > sc->lo) {
        g = (float)(sc->lo + (double)(sc->hi - sc->lo) * ct_rng_uniform(rng));
        if (g >= sc->hi) g = nextafterf(sc->hi, sc->lo);   /* rounding never reaches hi */
    }
    int64_t n = item->len * item->width;
    for (int64_t i = 0; i < n; i++) item->values[i] *= g;
    return CT_OK;
}

ct_status ct_transform_scale(ct_ctx *ctx, ct_transform *out, float lo, float hi) {
    if (!out) return FAIL(ctx, CT_E_NULL, "scale: out is NULL");
    if (!isfinite(lo) || !isfinite(hi) || lo > hi)
        return FAIL(ctx, CT_E_ARG, "scale: gains [%g, %g) must be finite with lo <= hi",
                       (double)lo, (double)hi);
    scale_state *st = malloc(sizeof *st);
    if (!st) return FAIL(ctx, CT_E_NOMEM, "scale: out of memory");
    st->lo = lo;
    st->hi = hi;
    *out = ct_transform_make("scale", scale_fn, st, free);
    return CT_OK;
}
