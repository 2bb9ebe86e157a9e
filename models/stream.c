/* models/stream.c — a composer as a live producer (see stream.h). */
#include "models/stream.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/melody.h"
#include "audio/performance.h"
#include "audio/pianoroll.h"
#include "models/composer.h"

struct cc_stream {
    ct_module *model;
    cc_config cfg;
    cc_stream_opts o;
    cc_sampler *sampler;
    int64_t step;              /* steps made */
    int64_t now_us;            /* the piece's time reached */
    bool started, finished;
    /* melody */
    int melody_pitch;          /* sounding pitch, -1 none */
    cm_melody_encoding menc;
    /* performance */
    cm_perf_config pc;
    int64_t perf_steps;        /* time shifts so far, in steps */
    int velocity;
    uint16_t open[128];        /* note-ons not yet matched by a note-off */
    /* piano roll */
    uint8_t frame[CC_ROLL_KEYS], prev[CC_ROLL_KEYS];
};

cc_stream_opts cc_stream_defaults(void) {
    cc_stream_opts o;
    memset(&o, 0, sizeof o);
    o.sample = cc_sample_defaults();
    o.steps = 0;
    o.qpm = 120;
    o.channel = 0;
    o.program = 0;
    o.velocity = 100;
    return o;
}

cc_stream *cc_stream_new(ct_module *model, const cc_stream_opts *o, ct_rng *rng) {
    if (!model) return NULL;
    ct_ctx *ctx = model->ctx;
    const cc_config *c = cc_model_config(model);
    if (!c) {
        ct_fail(ctx, CT_E_ARG, "cc_stream_new: module '%s' is not a composer", model->name);
        return NULL;
    }
    if (c->encoding != CC_ENC_MELODY && c->encoding != CC_ENC_PERFORMANCE && c->encoding != CC_ENC_PIANOROLL) {
        ct_fail(ctx, CT_E_UNSUPPORTED,
                "cc_stream_new: a %s model does not describe notes, so it cannot be played as MIDI "
                "(melody, performance and pianoroll models can)", cc_encoding_name(c->encoding));
        return NULL;
    }
    cc_stream_opts opts = o ? *o : cc_stream_defaults();
    if (opts.steps < 0 || !(opts.qpm >= 4 && opts.qpm <= 1000) || opts.channel < 0 || opts.channel > 15 ||
        opts.program < -1 || opts.program > 127 || opts.velocity < 1 || opts.velocity > 127) {
        ct_fail(ctx, CT_E_ARG,
                "cc_stream_new: steps %lld, qpm %g, channel %d, program %d, velocity %d: expected steps >= 0, "
                "qpm 4..1000, channel 0..15, program -1..127, velocity 1..127",
                (long long)opts.steps, opts.qpm, opts.channel, opts.program, opts.velocity);
        return NULL;
    }
    cc_stream *s = calloc(1, sizeof *s);
    if (!s) {
        ct_fail(ctx, CT_E_NOMEM, "cc_stream_new: out of memory");
        return NULL;
    }
    s->model = model;
    s->cfg = *c;
    s->o = opts;
    s->melody_pitch = -1;
    s->menc.min_pitch = c->min_pitch;
    s->menc.max_pitch = c->max_pitch;
    s->pc.steps_per_second = (int)c->steps_per_second;
    s->pc.max_shift_steps = c->max_shift_steps;
    s->pc.num_velocity_bins = c->num_velocity_bins;
    s->velocity = opts.velocity;
    s->sampler = cc_sampler_new(model, 1, &opts.sample, rng);
    if (!s->sampler) {
        free(s);
        return NULL;
    }
    return s;
}

void cc_stream_free(cc_stream *s) {
    if (!s) return;
    cc_sampler_free(s->sampler);
    free(s);
}

int64_t cc_stream_steps(const cc_stream *s) { return s ? s->step : 0; }
int64_t cc_stream_time_us(const cc_stream *s) { return s ? s->now_us : 0; }

/* The time of grid step k (melody, piano roll). */
static int64_t grid_us(const cc_stream *s, int64_t k) {
    double sec;
    if (s->cfg.encoding == CC_ENC_PIANOROLL && s->cfg.steps_per_second > 0)
        sec = (double)k / s->cfg.steps_per_second;
    else
        sec = (double)k * 60.0 / (s->o.qpm * s->cfg.steps_per_quarter);
    return llround(sec * 1e6);
}

static int64_t perf_us(const cc_stream *s) { return llround((double)s->perf_steps * 1e6 / s->cfg.steps_per_second); }

static bool push(cl_player *p, int64_t t, cl_msg m, cl_error *err, bool *ok) {
    cl_status st = cl_player_push(p, t, m);
    if (st && *ok) {
        err->status = st;
        snprintf(err->message, sizeof err->message, "cannot queue a message at %.3f s: %s", (double)t / 1e6,
                 cl_strerror(st));
        *ok = false;
    }
    return *ok;
}

/* Ends what sounds at time t (the end of the piece). */
static void close_all(cc_stream *s, cl_player *p, int64_t t, cl_error *err, bool *ok) {
    int ch = s->o.channel;
    switch (s->cfg.encoding) {
    case CC_ENC_MELODY:
        if (s->melody_pitch >= 0) push(p, t, cl_note_off(ch, s->melody_pitch), err, ok);
        s->melody_pitch = -1;
        break;
    case CC_ENC_PERFORMANCE:
        for (int k = 0; k < 128; k++)
            if (s->open[k]) {
                push(p, t, cl_note_off(ch, k), err, ok);
                s->open[k] = 0;
            }
        break;
    default:
        for (int k = 0; k < CC_ROLL_KEYS; k++)
            if (s->prev[k]) {
                push(p, t, cl_note_off(ch, CM_ROLL_MIN_PITCH + k), err, ok);
                s->prev[k] = 0;
            }
        break;
    }
}

static void decode_melody(cc_stream *s, cl_player *p, int64_t token, cl_error *err, bool *ok) {
    int ch = s->o.channel;
    int64_t t = grid_us(s, s->step);
    int ev = cm_melody_token_to_event(s->menc, (int)token);
    if (ev != CM_MELODY_NOTE_OFF && ev < 0) return;   /* no event (or an invalid token): hold */
    if (s->melody_pitch >= 0) push(p, t, cl_note_off(ch, s->melody_pitch), err, ok);   /* note-off, or a new note */
    s->melody_pitch = -1;
    if (ev >= 0) {
        push(p, t, cl_note_on(ch, ev, s->o.velocity), err, ok);
        s->melody_pitch = ev;
    }
}

static void decode_performance(cc_stream *s, cl_player *p, int64_t token, cl_error *err, bool *ok) {
    int ch = s->o.channel;
    cm_perf_event e = cm_perf_token_to_event(&s->pc, (int)token);
    int64_t t = perf_us(s);
    switch (e.type) {
    case CM_PERF_EV_TIME_SHIFT:
        s->perf_steps += e.value;
        break;
    case CM_PERF_EV_VELOCITY:
        s->velocity = cm_perf_bin_to_velocity(e.value, s->pc.num_velocity_bins);
        break;
    case CM_PERF_EV_NOTE_ON:
        if (s->open[e.value]) push(p, t, cl_note_off(ch, e.value), err, ok);   /* re-strike */
        push(p, t, cl_note_on(ch, e.value, s->velocity), err, ok);
        if (s->open[e.value] < UINT16_MAX) s->open[e.value]++;
        break;
    case CM_PERF_EV_NOTE_OFF:
        if (s->open[e.value] && --s->open[e.value] == 0) push(p, t, cl_note_off(ch, e.value), err, ok);
        break;
    default:
        break;
    }
}

static void decode_frame(cc_stream *s, cl_player *p, cl_error *err, bool *ok) {
    int ch = s->o.channel;
    int64_t t = grid_us(s, s->step);
    for (int k = 0; k < CC_ROLL_KEYS; k++) {   /* offs first, so a key's note ends before another begins */
        if (s->prev[k] && !s->frame[k]) push(p, t, cl_note_off(ch, CM_ROLL_MIN_PITCH + k), err, ok);
    }
    for (int k = 0; k < CC_ROLL_KEYS; k++) {
        if (!s->prev[k] && s->frame[k]) push(p, t, cl_note_on(ch, CM_ROLL_MIN_PITCH + k, s->o.velocity), err, ok);
        s->prev[k] = s->frame[k] ? 1 : 0;
    }
}

/* The piece's time before which everything is decided, after the steps made so far. */
static int64_t known_until(const cc_stream *s) {
    return s->cfg.encoding == CC_ENC_PERFORMANCE ? perf_us(s) : grid_us(s, s->step);
}

cl_produce cc_stream_produce(void *stream, cl_player *p, int64_t *until_us, cl_error *err) {
    cc_stream *s = stream;
    bool ok = true;
    if (!s->started) {
        s->started = true;
        if (s->o.program >= 0) push(p, 0, cl_program(s->o.channel, s->o.program), err, &ok);
    }
    if (ok && !s->finished && (s->o.steps == 0 || s->step < s->o.steps)) {
        ct_status st;
        if (s->cfg.encoding == CC_ENC_PIANOROLL) {
            st = cc_sampler_next_frames(s->sampler, s->frame);
            if (st == CT_OK) decode_frame(s, p, err, &ok);
        } else {
            int64_t token = 0;
            st = cc_sampler_next_tokens(s->sampler, &token);
            if (st == CT_OK && s->cfg.encoding == CC_ENC_MELODY) decode_melody(s, p, token, err, &ok);
            if (st == CT_OK && s->cfg.encoding == CC_ENC_PERFORMANCE) decode_performance(s, p, token, err, &ok);
        }
        if (st != CT_OK) {
            err->status = CL_E_PRODUCER;
            snprintf(err->message, sizeof err->message, "sampling step %lld: %s", (long long)s->step,
                     ct_ctx_error(s->model->ctx));
            return CL_PRODUCE_FAIL;
        }
        s->step++;
    }
    if (!ok) return CL_PRODUCE_FAIL;
    s->now_us = known_until(s);
    if (*until_us < s->now_us) *until_us = s->now_us;
    if (s->o.steps > 0 && s->step >= s->o.steps) {
        if (!s->finished) close_all(s, p, s->now_us, err, &ok);
        s->finished = true;
        return ok ? CL_PRODUCE_DONE : CL_PRODUCE_FAIL;
    }
    return CL_PRODUCE_MORE;
}
