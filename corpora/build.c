/* corpora/build.c — `corpus build`: MIDI files -> one corpus file, parsed on worker threads and
 * written in name order (so the output does not depend on the thread count). See build.h. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "corpora/build.h"
#include "corpora/internal.h"

cp_build_opts cp_build_defaults(cp_encoding_kind kind) {
    cp_build_opts o;
    memset(&o, 0, sizeof o);
    o.encoding = cp_encoding_default(kind);
    o.threads = 2;
    o.valid_pct = CP_DEFAULT_VALID_PCT;
    o.test_pct = CP_DEFAULT_TEST_PCT;
    o.dedupe = true;
    o.window = 0;
    return o;
}

/* ---- one file ------------------------------------------------------------------------------- */
enum { R_OK = 0, R_FAILED, R_EMPTY };

typedef struct result {
    int done;             /* guarded by the job lock */
    int kind;             /* R_OK, R_FAILED, R_EMPTY */
    uint64_t hash;
    uint64_t size;
    cp_extracted x;
    char reason[CP_ERROR_MAX];
    ct_status fatal;      /* CT_E_NOMEM: stops the build */
} result;

static void process(const cp_source *src, const cp_encoding *e, result *r) {
    r->kind = R_FAILED;
    r->fatal = CT_OK;
    FILE *f = fopen(src->path, "rb");
    if (!f) {
        snprintf(r->reason, sizeof r->reason, "%s: cannot open: %s", src->name, strerror(errno));
        return;
    }
    struct stat st;
    uint8_t *buf = NULL;
    if (fstat(fileno(f), &st) != 0) {
        snprintf(r->reason, sizeof r->reason, "%s: fstat: %s", src->name, strerror(errno));
    } else if ((uint64_t)st.st_size > CM_MAX_FILE_BYTES) {
        snprintf(r->reason, sizeof r->reason, "%s: %lld bytes; MIDI files above %u bytes are refused", src->name,
                 (long long)st.st_size, CM_MAX_FILE_BYTES);
    } else if (!(buf = malloc((size_t)st.st_size + 1))) {
        snprintf(r->reason, sizeof r->reason, "%s: out of memory for %lld bytes", src->name, (long long)st.st_size);
        r->fatal = CT_E_NOMEM;
    } else if (fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        snprintf(r->reason, sizeof r->reason, "%s: read failed: %s", src->name,
                 ferror(f) ? strerror(errno) : "the file shrank while being read");
    } else {
        r->size = (uint64_t)st.st_size;
        r->hash = cp_hash_bytes(buf, (size_t)st.st_size);
        cp_error err;
        ct_status s = cp_extract_mem(buf, (size_t)st.st_size, src->name, e, &r->x, &err);
        if (s == CT_OK) {
            r->kind = r->x.n > 0 ? R_OK : R_EMPTY;
            if (r->kind == R_EMPTY) snprintf(r->reason, sizeof r->reason, "%s", r->x.why_empty);
        } else {
            snprintf(r->reason, sizeof r->reason, "%s", err.message);
            if (s == CT_E_NOMEM) r->fatal = s;
        }
    }
    free(buf);
    fclose(f);
}

/* ---- the job: workers take files in order, at most `window` ahead of the writer ------------ */
typedef struct job {
    pthread_mutex_t mu;
    pthread_cond_t worker_cv, main_cv;
    const cp_sources *src;
    const cp_source **order;   /* sources by name */
    const cp_encoding *enc;
    result *res;
    int64_t n, next, merged, window;
    int stop;
} job;

static void *worker(void *arg) {
    job *j = arg;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        while (!j->stop && j->next < j->n && j->next >= j->merged + j->window) pthread_cond_wait(&j->worker_cv, &j->mu);
        if (j->stop || j->next >= j->n) {
            pthread_mutex_unlock(&j->mu);
            return NULL;
        }
        int64_t i = j->next++;
        pthread_mutex_unlock(&j->mu);
        result r;
        memset(&r, 0, sizeof r);
        process(j->order[i], j->enc, &r);
        pthread_mutex_lock(&j->mu);
        r.done = 1;
        j->res[i] = r;
        pthread_cond_signal(&j->main_cv);
        pthread_mutex_unlock(&j->mu);
    }
}

static int cmp_source(const void *a, const void *b) {
    const cp_source *x = *(const cp_source *const *)a, *y = *(const cp_source *const *)b;
    return strcmp(x->name, y->name);
}

/* An open-addressing set of (hash, size) of the files kept, for dedupe. */
typedef struct seen {
    uint64_t *hash, *size;
    int64_t *file;   /* -1: empty slot */
    int64_t cap;
} seen;

static int64_t seen_find_or_add(seen *s, uint64_t h, uint64_t size, int64_t file) {
    int64_t i = (int64_t)(h % (uint64_t)s->cap);
    while (s->file[i] >= 0) {
        if (s->hash[i] == h && s->size[i] == size) return s->file[i];
        i = (i + 1) % s->cap;
    }
    s->hash[i] = h;
    s->size[i] = size;
    s->file[i] = file;
    return -1;
}

/* Merges file i's result into the writer and the stats. */
static ct_status merge(const job *j, int64_t i, result *r, const cp_build_opts *o, cp_writer *w, seen *dups,
                       cp_stats *st, cp_error *err) {
    const cp_source *src = j->order[i];
    if (r->fatal != CT_OK) return cp__fail(err, r->fatal, "%s", r->reason);
    ct_status s = CT_OK;
    if (r->kind == R_FAILED) {
        s = cp_stats_add_skip(st, CP_SKIP_FAILED, src->name, r->reason);
    } else {
        st->pieces_too_short += r->x.too_short;
        int64_t prev = o->dedupe ? seen_find_or_add(dups, r->hash, r->size, i) : -1;
        if (prev >= 0) {
            char why[CP_MAX_NAME + 64];
            snprintf(why, sizeof why, "the same bytes as %s", j->order[prev]->name);
            s = cp_stats_add_skip(st, CP_SKIP_DUPLICATE, src->name, why);
        } else if (r->kind == R_EMPTY) {
            s = cp_stats_add_skip(st, CP_SKIP_EMPTY, src->name, r->reason);
        } else {
            st->files_used++;
            st->notes += r->x.notes;
            cp_split split = cp_split_of_hash(r->hash, o->valid_pct, o->test_pct);
            for (int64_t k = 0; k < r->x.n; k++) {
                const cp_seq *q = &r->x.seqs[k];
                cp_piece_in p = {.name = src->name, .content_hash = r->hash, .split = split, .piece = (int32_t)k,
                                 .file_index = (int32_t)i, .instrument = q->instrument, .start = q->start,
                                 .duration_s = q->duration_s, .tokens = q->tokens, .frames = q->frames,
                                 .len = q->len};
                if ((s = cp_writer_add(w, &p, err)) != CT_OK) return s;
            }
            return CT_OK;
        }
    }
    if (s != CT_OK) return cp__fail(err, s, "out of memory for the skipped files' reasons");
    return CT_OK;
}

ct_status cp_build(const cp_sources *src, const char *out_path, const cp_build_opts *o, cp_stats *stats,
                   cp_error *err) {
    cp_stats local;
    cp_stats *st = stats ? stats : &local;
    memset(st, 0, sizeof *st);
    if (!src || !out_path || !o) return cp__fail(err, CT_E_NULL, "cp_build: NULL argument");
    ct_status s = cp_encoding_check(&o->encoding, err);
    if (s != CT_OK) return s;
    if (o->threads < 1 || o->threads > 256 || o->window < 0 || o->valid_pct < 0 || o->test_pct < 0 ||
        o->valid_pct + o->test_pct > 100)
        return cp__fail(err, CT_E_ARG, "corpus build: %d threads, window %lld, valid %d %%, test %d %%; expected "
                        "1..256 threads, window >= 0 (0: automatic), percentages with valid + test <= 100",
                        o->threads, (long long)o->window, o->valid_pct, o->test_pct);
    st->files_found = src->n;
    st->files_ignored = src->ignored;
    if (src->n == 0)
        return cp__fail(err, CT_E_ARG, "%s: no MIDI files to build from (files named *.mid or *.midi; %lld other "
                        "files were ignored)", out_path, (long long)src->ignored);
    job j;
    memset(&j, 0, sizeof j);
    j.src = src;
    j.enc = &o->encoding;
    j.n = src->n;
    j.window = o->window ? o->window : 4 * (int64_t)o->threads + 4;
    j.order = malloc((size_t)src->n * sizeof *j.order);
    j.res = calloc((size_t)src->n, sizeof *j.res);
    seen dups = {0};
    dups.cap = 2 * src->n + 1;
    dups.hash = malloc((size_t)dups.cap * sizeof *dups.hash);
    dups.size = malloc((size_t)dups.cap * sizeof *dups.size);
    dups.file = malloc((size_t)dups.cap * sizeof *dups.file);
    if (!j.order || !j.res || !dups.hash || !dups.size || !dups.file) {
        free(j.order);
        free(j.res);
        free(dups.hash);
        free(dups.size);
        free(dups.file);
        return cp__fail(err, CT_E_NOMEM, "out of memory for %lld files", (long long)src->n);
    }
    for (int64_t i = 0; i < dups.cap; i++) dups.file[i] = -1;
    for (int64_t i = 0; i < src->n; i++) j.order[i] = &src->items[i];
    qsort(j.order, (size_t)src->n, sizeof *j.order, cmp_source);
    for (int64_t i = 1; i < src->n && s == CT_OK; i++)
        if (strcmp(j.order[i - 1]->name, j.order[i]->name) == 0)
            s = cp__fail(err, CT_E_ARG, "two source files are both named \"%s\" (%s and %s); give them distinct "
                         "names (a prefix per folder)", j.order[i]->name, j.order[i - 1]->path, j.order[i]->path);
    cp_writer *w = NULL;
    if (s == CT_OK) s = cp_writer_open(&w, out_path, &o->encoding, o->valid_pct, o->test_pct, err);

    pthread_t threads[256];
    int started = 0;
    bool threaded = s == CT_OK && o->threads > 1;
    if (threaded) {
        pthread_mutex_init(&j.mu, NULL);
        pthread_cond_init(&j.worker_cv, NULL);
        pthread_cond_init(&j.main_cv, NULL);
        for (int t = 0; t < o->threads; t++) {
            if (pthread_create(&threads[t], NULL, worker, &j) != 0) break;
            started++;
        }
        if (started == 0) s = cp__fail(err, CT_E_STATE, "corpus build: cannot start a worker thread");
    }
    for (int64_t i = 0; s == CT_OK && i < j.n; i++) {
        if (threaded) {
            pthread_mutex_lock(&j.mu);
            while (!j.res[i].done) pthread_cond_wait(&j.main_cv, &j.mu);
            pthread_mutex_unlock(&j.mu);
        } else {
            process(j.order[i], j.enc, &j.res[i]);
        }
        s = merge(&j, i, &j.res[i], o, w, &dups, st, err);
        cp_extracted_free(&j.res[i].x);
        if (threaded) {
            pthread_mutex_lock(&j.mu);
            j.merged = i + 1;
            pthread_cond_broadcast(&j.worker_cv);
            pthread_mutex_unlock(&j.mu);
        }
        if (s == CT_OK && o->progress) o->progress(o->progress_userdata, i + 1, j.n, j.order[i]->name);
    }
    if (threaded) {
        pthread_mutex_lock(&j.mu);
        j.stop = 1;
        pthread_cond_broadcast(&j.worker_cv);
        pthread_mutex_unlock(&j.mu);
        for (int t = 0; t < started; t++) pthread_join(threads[t], NULL);
        pthread_mutex_destroy(&j.mu);
        pthread_cond_destroy(&j.worker_cv);
        pthread_cond_destroy(&j.main_cv);
    }
    for (int64_t i = 0; i < j.n; i++) cp_extracted_free(&j.res[i].x);   /* after an early stop */
    if (s == CT_OK && st->files_used == 0) {
        const char *first = st->n_skips ? st->skips[0].reason : "";
        s = cp__fail(err, CT_E_FORMAT, "%s: none of the %lld MIDI files gave a sequence (%lld failed, %lld empty, "
                     "%lld duplicate), so nothing was written; the first: %s: %s", out_path, (long long)j.n,
                     (long long)st->files_failed, (long long)st->files_empty, (long long)st->files_duplicate,
                     st->n_skips ? st->skips[0].name : "", first);
    }
    if (s == CT_OK) s = cp_writer_finish(w, st, err);
    else cp_writer_abort(w);
    free(j.order);
    free(j.res);
    free(dups.hash);
    free(dups.size);
    free(dups.file);
    if (st == &local) cp_stats_free(&local);
    if (s == CT_OK) cp__ok(err);
    return s;
}

ct_status cp_build_dir(const char *dir, const char *out_path, const cp_build_opts *o, cp_stats *stats,
                       cp_error *err) {
    if (stats) memset(stats, 0, sizeof *stats);
    cp_sources src;
    memset(&src, 0, sizeof src);
    ct_status s = cp_sources_add_dir(&src, dir, NULL, err);
    if (s == CT_OK) s = cp_build(&src, out_path, o, stats, err);
    cp_sources_free(&src);
    return s;
}
