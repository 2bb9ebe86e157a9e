/* models/checkpoint.c — composer checkpoints: safetensors weights plus the configuration as
 * JSON in the metadata ("cantor_config"), so a file rebuilds its own model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/safetensors.h"
#include "models/composer.h"

#define MAX_META 64

ct_status cc_save(const char *path, ct_module *m, int n_meta, const char *const *meta_keys,
                  const char *const *meta_values) {
    if (!m) return CT_E_NULL;
    const cc_config *c = cc_model_config(m);
    if (!c) return ct_fail(m->ctx, CT_E_ARG, "cc_save: module '%s' (%s) is not a composer",
                           m->name, m->kind ? m->kind : "?");
    if (!path) return ct_fail(m->ctx, CT_E_NULL, "cc_save: path is NULL");
    if (n_meta < 0 || n_meta > MAX_META || (n_meta > 0 && (!meta_keys || !meta_values)))
        return ct_fail(m->ctx, CT_E_ARG, "cc_save(%s): %d metadata pairs: expected 0..%d with "
                       "keys and values", path, n_meta, MAX_META);
    for (int i = 0; i < n_meta; i++)
        if (!meta_keys[i] || !meta_values[i] || strcmp(meta_keys[i], CC_CONFIG_META_KEY) == 0)
            return ct_fail(m->ctx, CT_E_ARG, "cc_save(%s): metadata pair %d: %s", path, i,
                           !meta_keys[i] || !meta_values[i]
                               ? "NULL key or value"
                               : "\"" CC_CONFIG_META_KEY "\" is written by cc_save itself");
    char err[256];
    int len = cc_config_to_json(c, NULL, 0, err, sizeof err);
    if (len < 0) return ct_fail(m->ctx, CT_E_STATE, "cc_save(%s): the model's config: %s", path, err);
    char *json = malloc((size_t)len + 1);
    if (!json) return ct_fail(m->ctx, CT_E_NOMEM, "cc_save(%s): out of memory", path);
    cc_config_to_json(c, json, (size_t)len + 1, NULL, 0);
    const char *keys[MAX_META + 1], *values[MAX_META + 1];
    keys[0] = CC_CONFIG_META_KEY;
    values[0] = json;
    for (int i = 0; i < n_meta; i++) {
        keys[i + 1] = meta_keys[i];
        values[i + 1] = meta_values[i];
    }
    ct_status s = ct_safetensors_save(path, m, n_meta + 1, keys, values);
    free(json);
    return s;
}

/* Reads the config of an open file; *total (may be NULL) gets the number of F32 elements the
 * file holds. */
static ct_status config_of(ct_ctx *ctx, ct_safetensors *f, const char *path, cc_config *out,
                           int64_t *total) {
    const char *json = ct_safetensors_meta(f, CC_CONFIG_META_KEY);
    if (!json)
        return ct_fail(ctx, CT_E_FORMAT, "%s: no \"%s\" in the safetensors metadata: not a "
                       "cantor composer checkpoint (a file of weights only cannot say which "
                       "model it belongs to)", path, CC_CONFIG_META_KEY);
    char err[512];
    ct_status s = cc_config_from_json(json, out, err, sizeof err);
    if (s != CT_OK)
        return ct_fail(ctx, s, "%s: \"%s\" metadata: %s", path, CC_CONFIG_META_KEY, err);
    if (total) {
        int64_t sum = 0;
        for (int i = 0; i < ct_safetensors_count(f); i++) {
            ct_dtype dt;
            int nd;
            int64_t shape[CT_MAX_DIMS], e = 1;
            if (!ct_safetensors_info(f, ct_safetensors_name(f, i), &dt, &nd, shape)) continue;
            for (int d = 0; d < nd; d++) e *= shape[d];
            sum += e;
        }
        *total = sum;
    }
    return CT_OK;
}

ct_status cc_read_config(ct_ctx *ctx, const char *path, cc_config *out) {
    if (!ctx) return CT_E_NULL;
    if (!path || !out) return ct_fail(ctx, CT_E_NULL, "cc_read_config: %s is NULL", !path ? "path" : "out");
    ct_safetensors *f = ct_safetensors_open(ctx, path);
    if (!f) return ct_ctx_status(ctx);
    cc_config c;
    ct_status s = config_of(ctx, f, path, &c, NULL);
    ct_safetensors_close(f);
    if (s == CT_OK) *out = c;
    return s;
}

ct_module *cc_load(ct_ctx *ctx, const char *path) {
    if (!ctx) return NULL;
    if (!path) {
        ct_fail(ctx, CT_E_NULL, "cc_load: path is NULL");
        return NULL;
    }
    ct_safetensors *f = ct_safetensors_open(ctx, path);
    if (!f) return NULL;
    cc_config c;
    int64_t total = 0;
    ct_status s = config_of(ctx, f, path, &c, &total);
    ct_safetensors_close(f);
    if (s != CT_OK) return NULL;
    /* refuse before allocating: a config that asks for more than the file holds */
    int64_t want = cc_config_num_params(&c);
    if (want != total) {
        char d[128];
        cc_config_describe(&c, d, sizeof d);
        ct_fail(ctx, CT_E_FORMAT, "%s: its config describes a %s with %lld parameters, but the "
                "file holds %lld values: the file is damaged or was not written by cc_save",
                path, d, (long long)want, (long long)total);
        return NULL;
    }
    ct_rng rng;
    ct_rng_seed(&rng, 0);       /* every value is overwritten by the load */
    ct_module *m = cc_model_new(ctx, &rng, &c);
    if (!m) return NULL;
    if (ct_safetensors_load(path, m, NULL, NULL) != CT_OK) {
        ct_module_free(m);
        return NULL;
    }
    return m;
}

ct_status cc_load_weights(ct_module *m, const char *path) {
    if (!m) return CT_E_NULL;
    const cc_config *mine = cc_model_config(m);
    if (!mine) return ct_fail(m->ctx, CT_E_ARG, "cc_load_weights: module '%s' (%s) is not a "
                              "composer", m->name, m->kind ? m->kind : "?");
    if (!path) return ct_fail(m->ctx, CT_E_NULL, "cc_load_weights: path is NULL");
    cc_config theirs;
    ct_status s = cc_read_config(m->ctx, path, &theirs);
    if (s != CT_OK) return s;
    char diff[512];
    if (cc_config_diff(&theirs, mine, diff, sizeof diff) != 0) {
        char a[128], b[128];
        cc_config_describe(&theirs, a, sizeof a);
        cc_config_describe(mine, b, sizeof b);
        return ct_fail(m->ctx, CT_E_FORMAT, "%s: a %s checkpoint, but the model asked for is %s "
                       "(checkpoint vs model: %s)", path, a, b, diff);
    }
    return ct_safetensors_load(path, m, NULL, NULL);
}
