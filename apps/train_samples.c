/* apps/train_samples.c — `cantor train`'s sample gallery: at each validation (or every
 * --samples-every steps) a short piece from the current weights, with a seed derived from the
 * run's seed and the step, written to RUN_DIR/samples/step-STEP.mid, rendered by the built-in
 * synthesizer to step-STEP.wav (mono, 22050 Hz), and listed in RUN_DIR/samples.jsonl:
 *   {"step":123,"sample":"samples/step-00000123.mid","audio":"samples/step-00000123.wav",...}
 * An audio model writes only the .wav ("sample":null). Nothing here touches the training state
 * (weights are only read, the generator is the gallery's own), so the gallery never changes
 * what is trained; a failure is a warning. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "apps/train.h"
#include "audio/performance.h"
#include "audio/render.h"
#include "models/sampler.h"

#define SAMPLE_RATE 22050
#define SAMPLE_QPM 120.0

static void gallery_warn(train_run *r, const char *what, const char *msg) {
    if (r->sample_failures++ < 3)
        train_warn(r, "sample gallery at step %lld: %s: %s%s", (long long)r->step, what, msg,
                   r->sample_failures == 3 ? " (further gallery warnings are not shown)" : "");
}

/* Performance tokens until `seconds` of time shifts (or a cap). */
static ct_status sample_performance(train_run *r, const cc_config *c, ct_rng *rng, double seconds, cc_steps *out) {
    const int64_t cap = (int64_t)(seconds * 150) + 16;
    out->tokens = malloc(sizeof(int64_t) * (size_t)cap);
    if (!out->tokens) return CT_E_NOMEM;
    cc_sample_opts so = cc_sample_defaults();
    cc_sampler *s = cc_sampler_new(r->m, 1, &so, rng);
    if (!s) return ct_ctx_status(r->ctx);
    double t = 0;
    ct_status st = CT_OK;
    while (out->len < cap && t < seconds) {
        int64_t tok;
        if ((st = cc_sampler_next_tokens(s, &tok)) != CT_OK) break;
        out->tokens[out->len++] = tok;
        if (tok >= CM_PERF_TIME_SHIFT_OFFSET && tok < CM_PERF_TIME_SHIFT_OFFSET + c->max_shift_steps)
            t += (double)(tok - CM_PERF_TIME_SHIFT_OFFSET + 1) / c->steps_per_second;
    }
    cc_sampler_free(s);
    return st;
}

static void gallery(train_run *r) {
    const cc_config *c = cc_model_config(r->m);
    if (!c) return;
    const double secs = r->o.sample_seconds;
    char dir[TRAIN_PATH_MAX + 64], mid[TRAIN_PATH_MAX + 64], wav[TRAIN_PATH_MAX + 64], rel_mid[64], rel_wav[64];
    train_path(r, dir, sizeof dir, "samples");
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        gallery_warn(r, dir, strerror(errno));
        return;
    }
    snprintf(rel_mid, sizeof rel_mid, "samples/step-%08lld.mid", (long long)r->step);
    snprintf(rel_wav, sizeof rel_wav, "samples/step-%08lld.wav", (long long)r->step);
    train_path(r, mid, sizeof mid, "%s", rel_mid);
    train_path(r, wav, sizeof wav, "%s", rel_wav);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* the gallery's own generator: the run's seed and the step */
    ct_rng base, rng;
    ct_rng_seed(&base, (uint64_t)r->o.seed ^ UINT64_C(0x67616c6c65727900));
    rng = ct_rng_fork(&base, (uint64_t)r->step);
    cc_steps steps;
    memset(&steps, 0, sizeof steps);
    ct_status st = CT_OK;
    bool audio_model = c->encoding == CC_ENC_AUDIO, have_mid = false, have_wav = false;
    ct_scope_begin(r->ctx);
    bool was = ct_set_grad_enabled(r->ctx, false);
    if (c->encoding == CC_ENC_PERFORMANCE) {
        st = sample_performance(r, c, &rng, secs, &steps);
    } else if (c->encoding == CC_ENC_PIANOROLL) {
        double per_s = c->steps_per_second > 0 ? c->steps_per_second : c->steps_per_quarter * SAMPLE_QPM / 60.0;
        steps.len = (int64_t)ceil(secs * per_s);
        steps.frames = calloc((size_t)steps.len, CC_ROLL_KEYS);
        st = steps.frames ? cc_sample_frames(r->m, NULL, &rng, NULL, 0, 1, steps.len, steps.frames) : CT_E_NOMEM;
    } else {
        double per_s = audio_model ? (double)c->sample_rate : c->steps_per_quarter * SAMPLE_QPM / 60.0;
        steps.len = (int64_t)ceil((audio_model && secs > 1 ? 1 : secs) * per_s);   /* audio: at most 1 s */
        steps.tokens = malloc(sizeof(int64_t) * (size_t)steps.len);
        st = steps.tokens ? cc_sample_tokens(r->m, NULL, &rng, NULL, 0, 1, steps.len, steps.tokens) : CT_E_NOMEM;
    }
    ct_set_grad_enabled(r->ctx, was);
    ct_scope_end(r->ctx);
    if (st != CT_OK) {
        gallery_warn(r, "sampling", ct_ctx_error(r->ctx));
        ct_ctx_clear_error(r->ctx);
        cc_steps_free(&steps);
        return;
    }
    if (audio_model) {
        cp_error err;
        memset(&err, 0, sizeof err);
        if (cp_audio_tokens_write(wav, steps.tokens, steps.len, c->sample_rate, &err) == CT_OK) have_wav = true;
        else gallery_warn(r, wav, err.message);
    } else {
        char err[512] = "";
        cm_file *f = cc_decode_midi(c, &steps, SAMPLE_QPM, err, sizeof err);
        if (!f) gallery_warn(r, "decoding", err);
        else {
            char text[64];
            snprintf(text, sizeof text, "cantor train step %lld", (long long)r->step);
            cm_track_add_text(&f->tracks[0], 0, 0x01, text);
            cm_error me;
            memset(&me, 0, sizeof me);
            if (cm_write_file(f, mid, NULL, &me) == CM_OK) have_mid = true;
            else gallery_warn(r, mid, me.message);
            ca_render_opts ro;
            memset(&ro, 0, sizeof ro);
            ro.renderer = CA_RENDERER_BUILTIN;
            ro.rate = SAMPLE_RATE;
            ro.channels = 1;
            ca_audio a;
            memset(&a, 0, sizeof a);
            ca_error ae;
            memset(&ae, 0, sizeof ae);
            if (have_mid && ca_render_midi(f, mid, &ro, &a, NULL, &ae) == CA_OK && ca_audio_write(wav, &a, NULL, &ae) == CA_OK)
                have_wav = true;
            else if (have_mid) gallery_warn(r, wav, ae.message);
            ca_audio_free(&a);
            cm_file_free(f);
        }
    }
    const double used = audio_model ? (double)steps.len / c->sample_rate : secs;
    cc_steps_free(&steps);
    if (!have_mid && !have_wav) return;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    char line[512];
    size_t k = (size_t)snprintf(line, sizeof line, "{\"step\":%lld,\"sample\":", (long long)r->step);
    if (have_mid) train_json_str(line, sizeof line, &k, rel_mid);
    else k += (size_t)snprintf(line + k, sizeof line - k, "null");
    k += (size_t)snprintf(line + k, sizeof line - k, ",\"audio\":");
    if (have_wav) train_json_str(line, sizeof line, &k, rel_wav);
    else k += (size_t)snprintf(line + k, sizeof line - k, "null");
    snprintf(line + k, sizeof line - k, ",\"seconds\":%g,\"wall\":%lld,\"took_s\":%.3f}\n", used, (long long)time(NULL),
             (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    char path[TRAIN_PATH_MAX + 64];
    FILE *f = fopen(train_path(r, path, sizeof path, "samples.jsonl"), "a");
    bool ok = f && fputs(line, f) >= 0;
    if (f && fclose(f) != 0) ok = false;
    if (!ok) gallery_warn(r, path, strerror(errno));
}

/* Samples run on the CPU (engine/rnn.h's batch-1 stepping): a model on a device comes to the
 * CPU for the gallery and goes back before the next step (the optimizer stays there). */
void train_sample_gallery(train_run *r) {
    if (r->dev.type == CT_CPU) {
        gallery(r);
        return;
    }
    if (ct_module_to(r->m, CT_DEVICE_CPU) != CT_OK) {
        train_warn(r, "samples skipped: %s", ct_ctx_error(r->ctx));
        ct_ctx_clear_error(r->ctx);
        return;
    }
    gallery(r);
    if (ct_module_to(r->m, r->dev) != CT_OK) {
        /* the next step reports it (the optimizer's state and the model would differ) */
        train_warn(r, "moving the model back to %s after the samples: %s", r->o.device, ct_ctx_error(r->ctx));
    }
}
