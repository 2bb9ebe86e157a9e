/* corpora/audio_dataset.c — audio files as mu-law token windows; tokens back to audio (see
 * audio_dataset.h). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "audio/audiofile.h"
#include "audio/mulaw.h"
#include "corpora/audio_dataset.h"
#include "corpora/internal.h"

typedef struct af_file {
    char *name;
    uint8_t *tokens;
    int64_t n;
} af_file;

typedef struct af_skip {
    char *name;
    char *message;
    ct_status status;
} af_skip;

struct cp_audio_dataset {
    cp_audio_dataset_opts o;
    af_file *files;
    int64_t nfiles;
    af_skip *skips;
    cp_audio_skip *skip_view;  /* public views of skips */
    int64_t nskips;
    int64_t *win_file, *win_off, *win_len;
    int64_t nwin;
    int64_t samples;
};

#define FAIL(ctx, s, ...) ((ctx) ? (void)ct_fail((ctx), (s), __VA_ARGS__) : (void)0)

cp_audio_dataset_opts cp_audio_dataset_defaults(void) {
    cp_audio_dataset_opts o = {.rate = 16000, .window = 16000, .hop = 0, .drop_short = false};
    return o;
}

static ct_status from_ca(ca_status s) {
    switch (s) {
    case CA_OK: return CT_OK;
    case CA_E_IO: return CT_E_IO;
    case CA_E_NOMEM: return CT_E_NOMEM;
    case CA_E_ARG: return CT_E_ARG;
    case CA_E_LIMIT: return CT_E_ARG;
    case CA_E_UNSUPPORTED: return CT_E_UNSUPPORTED;
    default: return CT_E_FORMAT;
    }
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

void cp_audio_dataset_free(cp_audio_dataset *a) {
    if (!a) return;
    for (int64_t i = 0; i < a->nfiles; i++) {
        free(a->files[i].name);
        free(a->files[i].tokens);
    }
    for (int64_t i = 0; i < a->nskips; i++) {
        free(a->skips[i].name);
        free(a->skips[i].message);
    }
    free(a->files);
    free(a->skips);
    free(a->skip_view);
    free(a->win_file);
    free(a->win_off);
    free(a->win_len);
    free(a);
}

/* Records a skipped file (CT_E_NOMEM when even that fails). */
static ct_status add_skip(cp_audio_dataset *a, const char *name, ct_status s, const char *msg) {
    af_skip k = {dup_str(name), dup_str(msg), s};
    if (!k.name || !k.message) {
        free(k.name);
        free(k.message);
        return CT_E_NOMEM;
    }
    a->skips[a->nskips++] = k;
    return CT_OK;
}

/* Reads one file into tokens at rate. CT_OK with *out filled, or a status and message. */
static ct_status load_file(const char *path, int rate, uint8_t **out, int64_t *n, char *msg, size_t msgn) {
    ca_audio raw = {0}, mono = {0}, res = {0};
    ca_error e;
    ca_status cs = ca_audio_read(path, &raw, &e);
    if (cs == CA_OK) cs = ca_audio_to_mono(&raw, &mono, &e);
    ca_audio_free(&raw);
    if (cs == CA_OK) cs = ca_audio_resample(&mono, rate, &res, &e);
    ca_audio_free(&mono);
    if (cs != CA_OK) {
        ca_audio_free(&res);
        snprintf(msg, msgn, "%s", e.message[0] ? e.message : ca_strerror(cs));
        return from_ca(cs);
    }
    uint8_t *t = malloc((size_t)(res.frames ? res.frames : 1));
    if (!t) {
        ca_audio_free(&res);
        snprintf(msg, msgn, "%s: out of memory for %lld tokens", path, (long long)res.frames);
        return CT_E_NOMEM;
    }
    ca_mulaw_encode_u8(res.samples, res.frames, t);
    *out = t;
    *n = res.frames;
    ca_audio_free(&res);
    return CT_OK;
}

/* The number of windows of a file of n samples (see the header): `full` windows at offsets
 * j * hop, then (without drop_short) a shorter one at full * hop when samples after the last
 * full window remain and that offset is inside the file (with hop > window the gaps between
 * windows are never covered). */
static int64_t count_windows(const cp_audio_dataset_opts *o, int64_t n) {
    if (n <= 0) return 0;
    if (o->window == 0) return 1;
    int64_t full = n >= o->window ? (n - o->window) / o->hop + 1 : 0;
    int64_t covered = full ? (full - 1) * o->hop + o->window : 0;
    bool tail = !o->drop_short && covered < n && full * o->hop < n;
    return full + (tail ? 1 : 0);
}

static ct_status check_opts(ct_ctx *ctx, cp_audio_dataset_opts *o) {
    if (o->rate < CA_MIN_RATE || o->rate > CA_MAX_RATE)
        return FAIL(ctx, CT_E_ARG, "audio dataset: rate %d Hz (expected %d..%d)", o->rate, CA_MIN_RATE, CA_MAX_RATE),
               CT_E_ARG;
    if (o->window < 0 || o->hop < 0)
        return FAIL(ctx, CT_E_ARG, "audio dataset: window %lld, hop %lld (expected >= 0; 0 = whole files / hop = window)",
                    (long long)o->window, (long long)o->hop),
               CT_E_ARG;
    if (o->window == 0 && o->hop > 0)
        return FAIL(ctx, CT_E_ARG, "audio dataset: hop %lld with window 0 (whole files have no hop; set a window or hop 0)",
                    (long long)o->hop),
               CT_E_ARG;
    if (o->hop == 0) o->hop = o->window;
    return CT_OK;
}

/* names[i] NULL: paths[i]. */
static cp_audio_dataset *open_list(ct_ctx *ctx, const char *const *paths, const char *const *names, int64_t n,
                                   const cp_audio_dataset_opts *opts) {
    cp_audio_dataset_opts o = opts ? *opts : cp_audio_dataset_defaults();
    if (check_opts(ctx, &o) != CT_OK) return NULL;
    if (n < 0 || (n > 0 && !paths)) {
        FAIL(ctx, CT_E_NULL, "audio dataset: %s", n < 0 ? "negative file count" : "NULL paths");
        return NULL;
    }
    for (int64_t i = 0; i < n; i++)
        if (!paths[i]) {
            FAIL(ctx, CT_E_NULL, "audio dataset: path %lld of %lld is NULL", (long long)i, (long long)n);
            return NULL;
        }
    cp_audio_dataset *a = calloc(1, sizeof *a);
    size_t cap = (size_t)(n ? n : 1);
    if (a) {
        a->files = calloc(cap, sizeof *a->files);
        a->skips = calloc(cap, sizeof *a->skips);
    }
    if (!a || !a->files || !a->skips) {
        cp_audio_dataset_free(a);
        FAIL(ctx, CT_E_NOMEM, "audio dataset: out of memory for %lld files", (long long)n);
        return NULL;
    }
    a->o = o;
    char msg[CP_ERROR_MAX];
    for (int64_t i = 0; i < n; i++) {
        const char *name = names && names[i] ? names[i] : paths[i];
        uint8_t *t = NULL;
        int64_t len = 0;
        ct_status s = load_file(paths[i], o.rate, &t, &len, msg, sizeof msg);
        if (s == CT_E_NOMEM) {
            FAIL(ctx, s, "audio dataset: %s", msg);
            cp_audio_dataset_free(a);
            return NULL;
        }
        if (s == CT_OK && count_windows(&o, len) == 0) {
            s = CT_E_ARG;
            if (len == 0)
                snprintf(msg, sizeof msg, "%s: no samples (an empty audio file)", paths[i]);
            else
                snprintf(msg, sizeof msg,
                         "%s: %lld samples at %d Hz, shorter than one window of %lld (drop_short is on; "
                         "turn it off to keep a short window)",
                         paths[i], (long long)len, o.rate, (long long)o.window);
            free(t);
            t = NULL;
        }
        if (s != CT_OK) {
            if (add_skip(a, name, s, msg) != CT_OK) {
                FAIL(ctx, CT_E_NOMEM, "audio dataset: out of memory recording a skipped file");
                cp_audio_dataset_free(a);
                return NULL;
            }
            continue;
        }
        char *nm = dup_str(name);
        if (!nm) {
            free(t);
            FAIL(ctx, CT_E_NOMEM, "audio dataset: out of memory for a file name");
            cp_audio_dataset_free(a);
            return NULL;
        }
        a->files[a->nfiles++] = (af_file){nm, t, len};
        a->samples += len;
        a->nwin += count_windows(&o, len);
    }
    size_t nw = (size_t)(a->nwin ? a->nwin : 1);
    a->win_file = malloc(nw * sizeof(int64_t));
    a->win_off = malloc(nw * sizeof(int64_t));
    a->win_len = malloc(nw * sizeof(int64_t));
    a->skip_view = malloc((size_t)(a->nskips ? a->nskips : 1) * sizeof *a->skip_view);
    if (!a->win_file || !a->win_off || !a->win_len || !a->skip_view) {
        FAIL(ctx, CT_E_NOMEM, "audio dataset: out of memory for %lld windows", (long long)a->nwin);
        cp_audio_dataset_free(a);
        return NULL;
    }
    for (int64_t i = 0; i < a->nskips; i++)
        a->skip_view[i] = (cp_audio_skip){a->skips[i].name, a->skips[i].status, a->skips[i].message};
    int64_t w = 0;
    for (int64_t f = 0; f < a->nfiles; f++) {
        int64_t len = a->files[f].n, k = count_windows(&o, len);
        for (int64_t j = 0; j < k; j++, w++) {
            int64_t off = o.window ? j * o.hop : 0;
            int64_t l = o.window ? (len - off < o.window ? len - off : o.window) : len;
            a->win_file[w] = f;
            a->win_off[w] = off;
            a->win_len[w] = l;
        }
    }
    return a;
}

cp_audio_dataset *cp_audio_dataset_new(ct_ctx *ctx, const char *const *paths, int n, const cp_audio_dataset_opts *o) {
    return open_list(ctx, paths, NULL, n, o);
}

/* ---- the folder walk ------------------------------------------------------------------------- */
typedef struct af_list {
    char **path, **rel;
    int64_t n, cap;
} af_list;

static void list_free(af_list *l) {
    for (int64_t i = 0; i < l->n; i++) {
        free(l->path[i]);
        free(l->rel[i]);
    }
    free(l->path);
    free(l->rel);
}

static bool is_audio_name(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (strcasecmp(dot, ".wav") == 0 || strcasecmp(dot, ".flac") == 0 || strcasecmp(dot, ".ogg") == 0);
}

static char *join3(const char *a, const char *b, const char *c) {
    size_t na = strlen(a), nb = strlen(b), nc = strlen(c);
    char *d = malloc(na + nb + nc + 1);
    if (!d) return NULL;
    memcpy(d, a, na);
    memcpy(d + na, b, nb);
    memcpy(d + na + nb, c, nc + 1);
    return d;
}

static ct_status walk(ct_ctx *ctx, af_list *l, const char *dir, const char *rel, int depth) {
    if (depth > 64) return FAIL(ctx, CT_E_IO, "audio dataset: %s: folders nested more than 64 deep", dir), CT_E_IO;
    DIR *d = opendir(dir);
    if (!d) return FAIL(ctx, CT_E_IO, "audio dataset: %s: cannot open the folder: %s", dir, strerror(errno)), CT_E_IO;
    ct_status st = CT_OK;
    struct dirent *de;
    while (st == CT_OK && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        char *path = join3(dir, dir[0] && dir[strlen(dir) - 1] == '/' ? "" : "/", de->d_name);
        char *r = rel[0] ? join3(rel, "/", de->d_name) : join3(de->d_name, "", "");
        struct stat lst, tst;
        if (!path || !r) {
            st = CT_E_NOMEM;
            FAIL(ctx, st, "audio dataset: out of memory walking %s", dir);
        } else if (lstat(path, &lst) != 0) {
            st = CT_E_IO;
            FAIL(ctx, st, "audio dataset: %s: %s", path, strerror(errno));
        } else if (S_ISDIR(lst.st_mode)) {
            st = walk(ctx, l, path, r, depth + 1);
        } else if ((S_ISREG(lst.st_mode) || (S_ISLNK(lst.st_mode) && stat(path, &tst) == 0 && S_ISREG(tst.st_mode))) &&
                   is_audio_name(de->d_name)) {
            if (l->n == l->cap) {
                int64_t cap = l->cap ? 2 * l->cap : 16;
                char **p = realloc(l->path, (size_t)cap * sizeof *p);
                if (p) l->path = p;
                char **q = p ? realloc(l->rel, (size_t)cap * sizeof *q) : NULL;
                if (q) l->rel = q;
                if (!p || !q) {
                    st = CT_E_NOMEM;
                    FAIL(ctx, st, "audio dataset: out of memory for %lld file names", (long long)cap);
                } else {
                    l->cap = cap;
                }
            }
            if (st == CT_OK) {
                l->path[l->n] = path;
                l->rel[l->n++] = r;
                path = r = NULL;
            }
        }
        free(path);
        free(r);
    }
    closedir(d);
    return st;
}

typedef struct af_pair { char *path, *rel; } af_pair;
static int cmp_pair(const void *x, const void *y) {
    return strcmp(((const af_pair *)x)->rel, ((const af_pair *)y)->rel);
}

cp_audio_dataset *cp_audio_dataset_open_dir(ct_ctx *ctx, const char *dir, const cp_audio_dataset_opts *o) {
    if (!dir) {
        FAIL(ctx, CT_E_NULL, "audio dataset: NULL folder");
        return NULL;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        FAIL(ctx, CT_E_IO, "audio dataset: %s: %s (expected a folder of .wav / .flac / .ogg files)", dir, strerror(errno));
        return NULL;
    }
    if (!S_ISDIR(sb.st_mode)) {
        FAIL(ctx, CT_E_IO, "audio dataset: %s: not a folder (expected a folder of .wav / .flac / .ogg files)", dir);
        return NULL;
    }
    af_list l = {0};
    if (walk(ctx, &l, dir, "", 0) != CT_OK) {
        list_free(&l);
        return NULL;
    }
    af_pair *pairs = malloc((size_t)(l.n ? l.n : 1) * sizeof *pairs);
    if (!pairs) {
        list_free(&l);
        FAIL(ctx, CT_E_NOMEM, "audio dataset: out of memory for %lld file names", (long long)l.n);
        return NULL;
    }
    for (int64_t i = 0; i < l.n; i++) pairs[i] = (af_pair){l.path[i], l.rel[i]};
    qsort(pairs, (size_t)l.n, sizeof *pairs, cmp_pair);
    for (int64_t i = 0; i < l.n; i++) {
        l.path[i] = pairs[i].path;
        l.rel[i] = pairs[i].rel;
    }
    free(pairs);
    cp_audio_dataset *a = open_list(ctx, (const char *const *)l.path, (const char *const *)l.rel, l.n, o);
    list_free(&l);
    return a;
}

/* ---- accessors -------------------------------------------------------------------------------- */
cp_audio_dataset_stats cp_audio_dataset_get_stats(const cp_audio_dataset *a) {
    cp_audio_dataset_stats s = {0, 0, 0, 0};
    if (a) s = (cp_audio_dataset_stats){a->nfiles, a->nskips, a->nwin, a->samples};
    return s;
}
int64_t cp_audio_dataset_num_skipped(const cp_audio_dataset *a) { return a ? a->nskips : 0; }
const cp_audio_skip *cp_audio_dataset_skip(const cp_audio_dataset *a, int64_t i) {
    return a && i >= 0 && i < a->nskips ? &a->skip_view[i] : NULL;
}
int64_t cp_audio_dataset_len(const cp_audio_dataset *a) { return a ? a->nwin : 0; }
const cp_audio_dataset_opts *cp_audio_dataset_options(const cp_audio_dataset *a) { return a ? &a->o : NULL; }
const char *cp_audio_dataset_file_name(const cp_audio_dataset *a, int64_t f) {
    return a && f >= 0 && f < a->nfiles ? a->files[f].name : NULL;
}
const uint8_t *cp_audio_dataset_file_tokens(const cp_audio_dataset *a, int64_t f, int64_t *n) {
    if (!a || f < 0 || f >= a->nfiles) {
        if (n) *n = -1;
        return NULL;
    }
    if (n) *n = a->files[f].n;
    return a->files[f].tokens;
}
bool cp_audio_dataset_window(const cp_audio_dataset *a, int64_t i, int64_t *file, int64_t *offset, int64_t *len) {
    if (!a || i < 0 || i >= a->nwin) return false;
    if (file) *file = a->win_file[i];
    if (offset) *offset = a->win_off[i];
    if (len) *len = a->win_len[i];
    return true;
}

/* ---- the interface ---------------------------------------------------------------------------- */
static int64_t ds_len(void *self) { return ((cp_audio_dataset *)self)->nwin; }

static int64_t ds_item_len(void *self, int64_t i) {
    cp_audio_dataset *a = self;
    return i >= 0 && i < a->nwin ? a->win_len[i] : -1;
}

static void ds_describe(void *self, int64_t i, char *buf, size_t n) {
    cp_audio_dataset *a = self;
    if (i < 0 || i >= a->nwin)
        snprintf(buf, n, "item %lld", (long long)i);
    else
        snprintf(buf, n, "%s@%lld", a->files[a->win_file[i]].name, (long long)a->win_off[i]);
}

static ct_status ds_get(void *self, int64_t i, ct_data_item *out, ct_rng *rng) {
    (void)rng;
    cp_audio_dataset *a = self;
    if (i < 0 || i >= a->nwin)
        return ct_item_fail(out, CT_E_ARG, "audio dataset: item %lld of %lld windows", (long long)i, (long long)a->nwin);
    const af_file *f = &a->files[a->win_file[i]];
    int64_t off = a->win_off[i], len = a->win_len[i];
    ct_status s = ct_item_set_tokens(out, NULL, len);
    if (s != CT_OK) return s;
    const uint8_t *src = f->tokens + off;
    for (int64_t k = 0; k < len; k++) out->tokens[k] = src[k];
    out->piece_id = a->win_file[i];
    out->offset = off;
    if (ct_item_set_source(out, "%s@%lld", f->name, (long long)off) != CT_OK)
        return ct_item_fail(out, CT_E_NOMEM, "%s@%lld: out of memory for the source name", f->name, (long long)off);
    return CT_OK;
}

ct_dataset cp_audio_dataset_as(cp_audio_dataset *a) {
    ct_dataset ds = {a, ds_len, ds_get, ds_describe, ds_item_len};
    return ds;
}

ct_status cp_audio_dataset_get(cp_audio_dataset *a, int64_t i, ct_data_item *out) {
    if (!a || !out) return CT_E_NULL;
    ct_dataset ds = cp_audio_dataset_as(a);
    return ct_dataset_get(&ds, i, out, NULL);
}

/* ---- the decoder ------------------------------------------------------------------------------ */
ct_status cp_audio_tokens_write(const char *path, const int64_t *tokens, int64_t n, int rate, cp_error *err) {
    if (!path) return cp__fail(err, CT_E_NULL, "cp_audio_tokens_write: NULL path");
    if (n < 0) return cp__fail(err, CT_E_ARG, "%s: %lld tokens (expected >= 0)", path, (long long)n);
    if (n > 0 && !tokens) return cp__fail(err, CT_E_NULL, "%s: NULL tokens", path);
    for (int64_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= CA_MULAW_CLASSES)
            return cp__fail(err, CT_E_ARG, "%s: token %lld is %lld (expected a mu-law class 0..%d)", path, (long long)i,
                            (long long)tokens[i], CA_MULAW_CLASSES - 1);
    ca_audio au = {0};
    ca_error e;
    ca_status cs = ca_audio_alloc(&au, n, 1, rate, &e);
    if (cs == CA_OK) {
        for (int64_t i = 0; i < n; i++) au.samples[i] = ca_mulaw_decode((int)tokens[i]);
        cs = ca_audio_write(path, &au, NULL, &e);
    }
    ca_audio_free(&au);
    if (cs != CA_OK) {
        ct_status s = from_ca(cs);
        /* ca_audio_alloc's messages do not name the file */
        if (strstr(e.message, path) == e.message) return cp__fail(err, s, "%s", e.message);
        return cp__fail(err, s, "%s: %s", path, e.message[0] ? e.message : ca_strerror(cs));
    }
    cp__ok(err);
    return CT_OK;
}
