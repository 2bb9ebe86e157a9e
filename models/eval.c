/* models/eval.c — whole-sequence evaluation of a composer: summed NLL over every next-step
 * prediction, batched by length, chunked in time with the RNN state carried on the host. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/layers.h"
#include "engine/rnn.h"
#include "models/composer.h"
#include "models/eval.h"

cc_eval_opts cc_eval_defaults(void) { return (cc_eval_opts){16, 512}; }

typedef struct entry {
    int64_t index, len;
} entry;

static int by_len_desc(const void *a, const void *b) {
    const entry *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

typedef struct ev {
    ct_module *m;
    ct_ctx *ctx;
    const cc_config *cfg;
    bool roll, lstm;
    int64_t V, H, L, B, C;
    float *h, *c;          /* [L, rows, H] carried state (host) */
    float *logits;         /* [C, B, V] */
    float *xf;             /* [C, B, 88] frame inputs */
    int64_t *xt;           /* [C, B] token inputs */
    int64_t *lens;         /* [B] */
    double sum;
    int64_t count;
} ev;

static double softplus(double z) { return z > 0 ? z + log1p(exp(-z)) : log1p(exp(z)); }

/* t on the model's device (t itself on the CPU); NULL passes through */
static ct_tensor *on_model(ev *e, ct_tensor *t) {
    const ct_device dev = ct_module_device(e->m);
    return t && dev.type != CT_CPU ? ct_to(t, dev) : t;
}

/* Scores rows (sorted by length, longest first; every length >= 2). */

static ct_status run_rows(ev *e, ct_data_item *const *rows, int64_t nr) {
    const int64_t T = rows[0]->len - 1, K = CC_ROLL_KEYS, H = e->H, L = e->L;
    memset(e->h, 0, sizeof(float) * (size_t)(L * nr * H));
    if (e->lstm) memset(e->c, 0, sizeof(float) * (size_t)(L * nr * H));
    int64_t nprev = nr;
    ct_module *rnn = cc_model_rnn(e->m), *outm = cc_model_out(e->m);
    ct_tensor *emb = e->roll ? NULL : ct_module_param(cc_model_embed(e->m), "weight");
    for (int64_t s = 0; s < T; s += e->C) {
        const int64_t Lc = T - s < e->C ? T - s : e->C;
        int64_t nact = 0;
        while (nact < nr && rows[nact]->len - 1 > s) nact++;
        for (int64_t b = 0; b < nact; b++) {
            int64_t left = rows[b]->len - 1 - s;
            e->lens[b] = left < Lc ? left : Lc;
        }
        /* the carried state of the rows still running: a prefix of each layer's block */
        for (int64_t l = 1; l < L && nact < nprev; l++) {
            memmove(e->h + l * nact * H, e->h + l * nprev * H, sizeof(float) * (size_t)(nact * H));
            if (e->lstm)
                memmove(e->c + l * nact * H, e->c + l * nprev * H, sizeof(float) * (size_t)(nact * H));
        }
        nprev = nact;
        for (int64_t t = 0; t < Lc; t++)
            for (int64_t b = 0; b < nact; b++) {
                const bool in = t < e->lens[b];
                if (e->roll) {
                    float *dst = e->xf + (t * nact + b) * K;
                    if (in) memcpy(dst, rows[b]->values + (s + t) * K, sizeof(float) * (size_t)K);
                    else memset(dst, 0, sizeof(float) * (size_t)K);
                } else {
                    e->xt[t * nact + b] = in ? rows[b]->tokens[s + t] : 0;
                }
            }
        ct_scope_begin(e->ctx);
        ct_tensor *lens = ct_from_i64(e->ctx, e->lens, 1, &nact);
        /* states and piano-roll frames go where the model is (token ids and lengths are read
         * on the host by the recurrent layer) */
        ct_tensor *h0 = on_model(e, ct_from_f32(e->ctx, e->h, 3, (const int64_t[]){L, nact, H}));
        ct_tensor *c0 = e->lstm ? on_model(e, ct_from_f32(e->ctx, e->c, 3, (const int64_t[]){L, nact, H})) : NULL;
        ct_tensor *out = NULL, *hn = NULL, *cn = NULL;
        ct_status st = ct_ctx_status(e->ctx);
        if (lens && h0 && (c0 || !e->lstm)) {
            if (e->roll) {
                ct_tensor *x = on_model(e, ct_from_f32(e->ctx, e->xf, 3, (const int64_t[]){Lc, nact, K}));
                st = x ? ct_rnn_forward(rnn, x, lens, h0, c0, NULL, &out, &hn, e->lstm ? &cn : NULL)
                       : ct_ctx_status(e->ctx);
            } else {
                ct_tensor *x = ct_from_i64(e->ctx, e->xt, 2, (const int64_t[]){Lc, nact});
                st = x ? ct_rnn_forward_embedded(rnn, emb, x, lens, h0, c0, NULL, &out, &hn,
                                                 e->lstm ? &cn : NULL)
                       : ct_ctx_status(e->ctx);
            }
        }
        ct_tensor *z = st == CT_OK ? ct_linear_forward(outm, out) : NULL;
        if (st == CT_OK && !z) st = ct_ctx_status(e->ctx);
        const size_t nz = (size_t)(Lc * nact * e->V), ns = (size_t)(L * nact * H);
        if (st == CT_OK) st = ct_copy_to_host(z, e->logits, sizeof(float) * nz);
        if (st == CT_OK) st = ct_copy_to_host(hn, e->h, sizeof(float) * ns);
        if (st == CT_OK && e->lstm) st = ct_copy_to_host(cn, e->c, sizeof(float) * ns);
        ct_scope_end(e->ctx);
        if (st != CT_OK) return st;
        for (int64_t t = 0; t < Lc; t++)
            for (int64_t b = 0; b < nact; b++) {
                if (t >= e->lens[b]) continue;
                const float *zr = e->logits + (t * nact + b) * e->V;
                const int64_t pos = s + t + 1;   /* the predicted step */
                double nll = 0;
                if (e->roll) {
                    const float *y = rows[b]->values + pos * K;
                    for (int64_t k = 0; k < K; k++)
                        nll += softplus(zr[k]) - (y[k] != 0.0f ? (double)zr[k] : 0.0);
                } else {
                    double mx = -INFINITY;
                    for (int64_t v = 0; v < e->V; v++)
                        if (zr[v] > mx) mx = zr[v];
                    double se = 0;
                    for (int64_t v = 0; v < e->V; v++) se += exp((double)zr[v] - mx);
                    nll = mx + log(se) - (double)zr[rows[b]->tokens[pos]];
                }
                e->sum += nll;
                e->count++;
            }
    }
    return CT_OK;
}

/* Checks that an item fits the model; CT_OK or an error naming the item. */
static ct_status check_item(ev *e, const ct_dataset *ds, const ct_data_item *it) {
    char what[300];
    ct_dataset_describe(ds, it->index, what, sizeof what);
    const char *src = it->source ? it->source : what;
    if (e->roll) {
        if (it->kind != CT_ITEM_FRAMES || it->width != CC_ROLL_KEYS)
            return ct_fail(e->ctx, CT_E_ARG, "cc_eval_dataset: item %lld (%s): %s of width %lld, "
                           "but the piano-roll model reads frames of 88 keys (evaluate it on a "
                           "piano-roll corpus)", (long long)it->index, src,
                           ct_item_kind_name(it->kind), (long long)it->width);
        return CT_OK;
    }
    if (it->kind != CT_ITEM_TOKENS)
        return ct_fail(e->ctx, CT_E_ARG, "cc_eval_dataset: item %lld (%s): %s, but the %s model "
                       "reads tokens (evaluate it on a %s corpus)", (long long)it->index, src,
                       ct_item_kind_name(it->kind), cc_encoding_name(e->cfg->encoding),
                       cc_encoding_name(e->cfg->encoding));
    for (int64_t t = 0; t < it->len; t++)
        if (it->tokens[t] < 0 || it->tokens[t] >= e->V)
            return ct_fail(e->ctx, CT_E_ARG, "cc_eval_dataset: item %lld (%s): token %lld at step "
                           "%lld is outside 0..%lld, the model's %s vocabulary (was the corpus "
                           "built with another encoding?)", (long long)it->index, src,
                           (long long)it->tokens[t], (long long)t, (long long)(e->V - 1),
                           cc_encoding_name(e->cfg->encoding));
    return CT_OK;
}

ct_status cc_eval_dataset(ct_module *m, const ct_dataset *ds, const cc_eval_opts *o,
                          cc_eval_result *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!m) return CT_E_NULL;
    ct_ctx *ctx = m->ctx;
    const cc_config *cfg = cc_model_config(m);
    if (!cfg)
        return ct_fail(ctx, CT_E_ARG, "cc_eval_dataset: module '%s' (%s) is not a composer",
                       m->name, m->kind ? m->kind : "?");
    if (!ds || !out)
        return ct_fail(ctx, CT_E_NULL, "cc_eval_dataset: %s is NULL", !ds ? "the dataset" : "out");
    cc_eval_opts opt = o ? *o : cc_eval_defaults();
    if (opt.batch < 1 || opt.batch > (1 << 16) || opt.chunk < 1 || opt.chunk > (1 << 24))
        return ct_fail(ctx, CT_E_ARG, "cc_eval_dataset: batch %lld, chunk %lld: expected batch "
                       "1..65536 and chunk 1..16777216", (long long)opt.batch, (long long)opt.chunk);
    const int64_t n = ct_dataset_len(ds);
    if (n < 0 || !ds->get)
        return ct_fail(ctx, CT_E_ARG, "cc_eval_dataset: the dataset has no len or get");
    ev e;
    memset(&e, 0, sizeof e);
    e.m = m;
    e.ctx = ctx;
    e.cfg = cfg;
    e.roll = cc_config_is_roll(cfg);
    e.lstm = cfg->cell == CC_LSTM;
    e.V = cfg->vocab;
    e.H = cfg->hidden;
    e.L = cfg->layers;
    e.B = opt.batch < n ? opt.batch : (n > 0 ? n : 1);
    e.C = opt.chunk;
    entry *ents = malloc(sizeof(entry) * (size_t)(n > 0 ? n : 1));
    ct_data_item *items = malloc(sizeof(ct_data_item) * (size_t)e.B);
    ct_data_item **rows = malloc(sizeof(ct_data_item *) * (size_t)e.B);
    ct_status st = CT_OK;
    int64_t got = 0;   /* items initialised */
    if (!ents || !items || !rows) {
        st = ct_fail(ctx, CT_E_NOMEM, "cc_eval_dataset: out of memory (%lld items)", (long long)n);
        goto done;
    }
    for (int64_t i = 0; i < e.B; i++) ct_item_init(&items[i]);
    got = e.B;
    /* lengths: from the dataset when it can tell, else by reading each item */
    int64_t max_len = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t len = -1;
        if (ds->item_len) len = ds->item_len(ds->self, i);
        if (len < 0) {
            if (ct_dataset_get(ds, i, &items[0], NULL) != CT_OK) {
                st = ct_fail(ctx, CT_E_FORMAT, "cc_eval_dataset: item %lld: %s", (long long)i,
                             items[0].error ? items[0].error : "get failed");
                goto done;
            }
            len = items[0].len;
            ct_item_free(&items[0]);
        }
        ents[i] = (entry){i, len};
        if (len > max_len) max_len = len;
    }
    qsort(ents, (size_t)n, sizeof(entry), by_len_desc);
    const int64_t C = e.C < max_len ? e.C : (max_len > 0 ? max_len : 1);
    const int64_t width = e.roll ? CC_ROLL_KEYS : 1;
    e.h = calloc((size_t)(e.L * e.B * e.H), sizeof(float));
    e.c = calloc((size_t)(e.L * e.B * e.H), sizeof(float));
    e.logits = malloc(sizeof(float) * (size_t)(C * e.B * e.V));
    e.xf = e.roll ? malloc(sizeof(float) * (size_t)(C * e.B * width)) : NULL;
    e.xt = e.roll ? NULL : malloc(sizeof(int64_t) * (size_t)(C * e.B));
    e.lens = malloc(sizeof(int64_t) * (size_t)e.B);
    if (!e.h || !e.c || !e.logits || (e.roll ? !e.xf : !e.xt) || !e.lens) {
        st = ct_fail(ctx, CT_E_NOMEM, "cc_eval_dataset: out of memory (batch %lld, chunk %lld)",
                     (long long)e.B, (long long)C);
        goto done;
    }
    e.C = C;
    const bool was_training = m->training;
    const bool was_grad = ct_set_grad_enabled(ctx, false);
    ct_module_train(m, false);
    int64_t pieces = 0, too_short = 0;
    for (int64_t start = 0; st == CT_OK && start < n; start += e.B) {
        const int64_t nb = n - start < e.B ? n - start : e.B;
        int64_t nr = 0;
        for (int64_t j = 0; j < nb && st == CT_OK; j++) {
            ct_data_item *it = &items[j];
            if (ct_dataset_get(ds, ents[start + j].index, it, NULL) != CT_OK) {
                char what[300];
                st = ct_fail(ctx, CT_E_FORMAT, "cc_eval_dataset: item %lld (%s): %s",
                             (long long)ents[start + j].index,
                             ct_dataset_describe(ds, ents[start + j].index, what, sizeof what),
                             it->error ? it->error : "get failed");
                break;
            }
            st = check_item(&e, ds, it);
            if (st != CT_OK) break;
            if (it->len < 2) {
                too_short++;
                continue;
            }
            /* insertion by actual length (the dataset's item_len is only a hint) */
            int64_t p = nr++;
            while (p > 0 && rows[p - 1]->len < it->len) {
                rows[p] = rows[p - 1];
                p--;
            }
            rows[p] = it;
        }
        if (st == CT_OK && nr > 0) {
            st = run_rows(&e, rows, nr);
            pieces += nr;
        }
        for (int64_t j = 0; j < nb; j++) ct_item_free(&items[j]);
    }
    ct_module_train(m, was_training);
    ct_set_grad_enabled(ctx, was_grad);
    if (st == CT_OK) {
        out->nll_sum = e.sum;
        out->count = e.count;
        out->pieces = pieces;
        out->too_short = too_short;
        out->nll = e.count > 0 ? e.sum / (double)e.count : NAN;
        out->perplexity = exp(out->nll);
    }
done:
    for (int64_t i = 0; i < got; i++) ct_item_free(&items[i]);
    free(ents);
    free(items);
    free(rows);
    free(e.h);
    free(e.c);
    free(e.logits);
    free(e.xf);
    free(e.xt);
    free(e.lens);
    return st;
}
