/* apps/dashboard_run.c — one run folder as the dashboard sees it.
 *
 * Three files are tailed incrementally (the offset and the file's identity are remembered; a
 * partial last line waits for its newline; a file that shrinks or is replaced is read again
 * from the start): metrics.jsonl (the trainer's), external.jsonl (scalars POSTed to the
 * dashboard) and samples.jsonl. Every number in a metrics line other than step, epoch, time and
 * wall is a series ("loss" is read as train_loss and "time_s" as time, the first trainer's
 * spellings). A step lower than one already read means the run was restarted or resumed from
 * an earlier checkpoint: the points from that step on are dropped (per file for metrics, per
 * series for external scalars) and the run's generation grows, so clients fetch again.
 *
 * Memory is bounded: a series that reaches max_points keeps every other point (the newest is
 * always kept), at most DASH_MAX_SERIES series per file, DASH_MAX_SAMPLES samples. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "apps/dashboard_internal.h"
#include "audio/midi.h"
#include "models/config.h"

enum { TAIL_METRICS = 0, TAIL_EXTERNAL = 1, TAIL_SAMPLES = 2 };
static const char *const tail_files[3] = {"metrics.jsonl", "external.jsonl", "samples.jsonl"};

static double mono_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

bool dash_name_ok(const char *name) {
    size_t n = strlen(name);
    if (n == 0 || n >= DASH_MAX_NAME) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == ':' || c == '/' || c == '-'))
            return false;
    }
    return true;
}

bool dash_rel_path_ok(const char *rel) {
    size_t n = strlen(rel);
    if (n == 0 || n >= DASH_MAX_PATH || rel[0] == '/') return false;
    size_t comp = 0;   /* start of the current component */
    for (size_t i = 0; i <= n; i++) {
        char c = rel[i];
        if (c == '/' || c == 0) {
            size_t len = i - comp;
            if (len == 0) return false;                                    /* "a//b", "a/" */
            if (rel[comp] == '.' && (len == 1 || (len == 2 && rel[comp + 1] == '.'))) return false;
            comp = i + 1;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-' || c == '+'))
            return false;
    }
    return true;
}

/* ---- creating ------------------------------------------------------------------------------- */
dash_run *dr_new(const char *dir, const char *id, char *err, size_t errlen) {
    struct stat st;
    if (stat(dir, &st) != 0) {
        snprintf(err, errlen, "%s: %s (give a run folder: cantor train --out RUN_DIR makes one)", dir, strerror(errno));
        return NULL;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: not a folder (give a run folder, the one cantor train --out wrote)", dir);
        return NULL;
    }
    if (strlen(dir) >= sizeof ((dash_run *)0)->dir - 32) {
        snprintf(err, errlen, "%s: the path is too long", dir);
        return NULL;
    }
    dash_run *r = calloc(1, sizeof *r);
    if (!r) { snprintf(err, errlen, "out of memory"); return NULL; }
    char real[PATH_MAX];
    if (!realpath(dir, real) || strlen(real) >= sizeof r->real) {
        snprintf(err, errlen, "%s: cannot resolve the path: %s", dir, strerror(errno));
        free(r);
        return NULL;
    }
    snprintf(r->real, sizeof r->real, "%s", real);
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    snprintf(r->id, sizeof r->id, "%s", id);
    for (int i = 0; i < 3; i++) snprintf(r->tails[i].path, sizeof r->tails[i].path, "%s/%s", r->real, tail_files[i]);
    r->max_points = DASH_MAX_POINTS;
    r->src_max_step[0] = r->src_max_step[1] = -1;
    r->src_last_time[0] = r->src_last_time[1] = NAN;
    r->ckpt_scanned_at = -1e9;
    r->refreshed_at = -1e9;
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

void dr_free(dash_run *r) {
    if (!r) return;
    for (int i = 0; i < r->nseries; i++) free(r->series[i].pts);
    free(r->series);
    free(r->samples);
    for (int i = 0; i < 3; i++) free(r->tails[i].part);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* ---- series ------------------------------------------------------------------------------- */
static dash_series *find_series(dash_run *r, const char *name, int src) {
    for (int i = 0; i < r->nseries; i++)
        if (r->series[i].source == src && strcmp(r->series[i].name, name) == 0) return &r->series[i];
    return NULL;
}

/* The series a client means by name: the trainer's first, then an external one. */
static dash_series *lookup_series(dash_run *r, const char *name) {
    dash_series *s = find_series(r, name, DASH_SRC_METRICS);
    return s ? s : find_series(r, name, DASH_SRC_EXTERNAL);
}

static int count_source(const dash_run *r, int src) {
    int n = 0;
    for (int i = 0; i < r->nseries; i++) n += r->series[i].source == src;
    return n;
}

static dash_series *add_series(dash_run *r, const char *name, int src) {
    if (count_source(r, src) >= DASH_MAX_SERIES) return NULL;
    if (r->nseries == r->capseries) {
        int cap = r->capseries ? r->capseries * 2 : 8;
        dash_series *q = realloc(r->series, (size_t)cap * sizeof *q);
        if (!q) return NULL;
        r->series = q;
        r->capseries = cap;
    }
    dash_series *s = &r->series[r->nseries++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->source = src;
    s->thin = 1;
    return s;
}

/* Drops the points at step >= from; true when any went. */
static bool truncate_series(dash_series *s, int64_t from) {
    int64_t n = s->n;
    while (n > 0 && s->pts[n - 1].step >= from) n--;
    bool any = n != s->n;
    s->n = n;
    return any;
}

static void append_point(dash_run *r, dash_series *s, int64_t step, float time, double value) {
    s->seen++;
    if (!isfinite(value)) { s->nonfinite++; return; }
    if (s->n == s->cap) {
        if (s->cap >= r->max_points) {
            /* full: keep every other point of the older ones, and the newest */
            int64_t j = 0;
            for (int64_t i = 0; i < s->n - 1; i += 2) s->pts[j++] = s->pts[i];
            s->pts[j++] = s->pts[s->n - 1];
            s->n = j;
            s->thin *= 2;
        } else {
            int64_t cap = s->cap ? s->cap * 2 : 256;
            if (cap > r->max_points) cap = r->max_points;
            dash_point *q = realloc(s->pts, (size_t)cap * sizeof *q);
            if (!q) return;
            s->pts = q;
            s->cap = cap;
        }
    }
    s->pts[s->n++] = (dash_point){step, time, (float)value};
}

/* ---- ingesting lines ------------------------------------------------------------------------ */
static bool get_step(const dj_val *root, int64_t *step) {
    const dj_val *v = dj_get(root, "step");
    if (!v || v->type != DJ_NUM || !isfinite(v->num) || v->num < 0 || v->num > 9.007199254740992e15 ||
        v->num != floor(v->num))
        return false;
    *step = (int64_t)v->num;
    return true;
}

static const dj_val *get_num(const dj_val *root, const char *key) {
    const dj_val *v = dj_get(root, key);
    return v && v->type == DJ_NUM && isfinite(v->num) ? v : NULL;
}

static bool reserved_key(const char *k) {
    static const char *const keys[] = {"step", "epoch", "time", "time_s", "wall", "name", "value", "scalars"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (strcmp(k, keys[i]) == 0) return true;
    return false;
}

static void ingest_scalars(dash_run *r, int src, const dj_val *root, int64_t step) {
    if (src == DASH_SRC_METRICS && step < r->src_max_step[src]) {
        /* restarted or resumed: drop the trainer's points from this step on */
        for (int i = 0; i < r->nseries; i++)
            if (r->series[i].source == src) truncate_series(&r->series[i], step);
        r->generation++;
    }
    if (step > r->src_max_step[src] || src == DASH_SRC_METRICS) r->src_max_step[src] = step;
    const dj_val *t = get_num(root, "time");
    if (!t) t = get_num(root, "time_s");
    const dj_val *w = get_num(root, "wall");
    float time = NAN;
    if (t) time = (float)t->num;
    else if (src == DASH_SRC_EXTERNAL && w && r->have_wall && r->have_time)
        time = (float)(w->num - (r->last_wall - r->last_time));   /* on the trainer's clock */
    else if (src == DASH_SRC_METRICS) time = r->src_last_time[src];
    if (t) r->src_last_time[src] = (float)t->num;
    if (src == DASH_SRC_METRICS) {
        r->last_step = step;
        r->have_step = true;
        const dj_val *e = get_num(root, "epoch");
        if (e) { r->last_epoch = (int64_t)e->num; r->have_epoch = true; }
        if (t) { r->last_time = t->num; r->have_time = true; }
        if (w) { r->last_wall = w->num; r->have_wall = true; }
    }
    bool has_train_loss = dj_get(root, "train_loss") != NULL;
    for (const dj_val *m = root->child; m; m = m->next) {
        if (m->type != DJ_NUM || reserved_key(m->key)) continue;
        const char *name = m->key;
        if (src == DASH_SRC_METRICS && strcmp(name, "loss") == 0) {
            if (has_train_loss) continue;   /* the same value under its old name */
            name = "train_loss";
        }
        if (!dash_name_ok(name)) { r->ignored_fields++; continue; }
        dash_series *s = find_series(r, name, src);
        if (src == DASH_SRC_EXTERNAL && !s && find_series(r, name, DASH_SRC_METRICS)) { r->ignored_fields++; continue; }
        if (!s) s = add_series(r, name, src);
        if (!s) { r->ignored_fields++; continue; }
        if (s->n > 0 && s->pts[s->n - 1].step >= step) {
            if (src == DASH_SRC_EXTERNAL || s->pts[s->n - 1].step == step) {
                truncate_series(s, step);   /* a repeated step replaces; a lower one restarts */
                r->generation++;
            }
        }
        append_point(r, s, step, time, m->num);
    }
}

static void ingest_sample(dash_run *r, const dj_val *root, int64_t step, dash_tail *t) {
    const dj_val *mid = dj_get(root, "sample");
    if (!mid) mid = dj_get(root, "midi");
    const dj_val *aud = dj_get(root, "audio");
    if (!mid || mid->type != DJ_STR || !dash_rel_path_ok(mid->str) ||
        (aud && aud->type != DJ_NULL && (aud->type != DJ_STR || !dash_rel_path_ok(aud->str)))) {
        t->bad_lines++;
        snprintf(t->last_error, sizeof t->last_error, "line %lld: \"sample\" must be a path inside the run folder",
                 (long long)t->lines);
        return;
    }
    if (r->nsamples > 0 && r->samples[r->nsamples - 1].step >= step) {
        int n = r->nsamples;
        while (n > 0 && r->samples[n - 1].step >= step) n--;
        r->nsamples = n;
        r->generation++;
    }
    if (r->nsamples == DASH_MAX_SAMPLES) {
        memmove(r->samples, r->samples + 1, (size_t)(r->nsamples - 1) * sizeof *r->samples);
        r->nsamples--;
    }
    if (r->nsamples == r->capsamples) {
        int cap = r->capsamples ? r->capsamples * 2 : 16;
        dash_sample *q = realloc(r->samples, (size_t)cap * sizeof *q);
        if (!q) return;
        r->samples = q;
        r->capsamples = cap;
    }
    dash_sample *s = &r->samples[r->nsamples++];
    s->step = step;
    snprintf(s->midi, sizeof s->midi, "%s", mid->str);
    snprintf(s->audio, sizeof s->audio, "%s", aud && aud->type == DJ_STR ? aud->str : "");
}

void dr_ingest_line(dash_run *r, int src, const char *line, size_t len) {
    dash_tail *t = &r->tails[src];
    t->lines++;
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t')) len--;
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t')) i++;
    if (i == len) return;   /* blank */
    char err[128];
    dj_doc *d = dj_parse(line + i, len - i, err, sizeof err);
    const dj_val *root = dj_root(d);
    int64_t step;
    if (!root || root->type != DJ_OBJ || !get_step(root, &step)) {
        t->bad_lines++;
        snprintf(t->last_error, sizeof t->last_error, "line %lld: %s", (long long)t->lines,
                 !root ? err : root->type != DJ_OBJ ? "not a JSON object" : "no whole \"step\" >= 0");
        dj_free(d);
        return;
    }
    if (src == TAIL_SAMPLES) ingest_sample(r, root, step, t);
    else ingest_scalars(r, src, root, step);
    dj_free(d);
}

/* ---- tailing -------------------------------------------------------------------------------- */
static void reset_source(dash_run *r, int src) {
    dash_tail *t = &r->tails[src];
    t->off = 0;
    t->npart = 0;
    t->skipping = false;
    t->lines = t->bad_lines = 0;
    if (src == TAIL_SAMPLES) r->nsamples = 0;
    else {
        int j = 0;
        for (int i = 0; i < r->nseries; i++) {
            if (r->series[i].source == src) free(r->series[i].pts);
            else r->series[j++] = r->series[i];
        }
        r->nseries = j;
        r->src_max_step[src] = -1;
        r->src_last_time[src] = NAN;
        if (src == TAIL_METRICS) r->have_step = r->have_epoch = r->have_time = r->have_wall = false;
    }
    r->generation++;
}

static void feed(dash_run *r, int src, const char *buf, size_t n) {
    dash_tail *t = &r->tails[src];
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (buf[i] != '\n') continue;
        if (t->skipping) {
            t->skipping = false;
            t->lines++;
            t->bad_lines++;
            snprintf(t->last_error, sizeof t->last_error, "line %lld: longer than %d bytes, skipped",
                     (long long)t->lines, DASH_MAX_LINE);
        } else if (t->npart) {
            size_t add = i - start;
            if (t->npart + add > DASH_MAX_LINE) {
                t->lines++;
                t->bad_lines++;
            } else {
                memcpy(t->part + t->npart, buf + start, add);
                dr_ingest_line(r, src, t->part, t->npart + add);
            }
        } else {
            dr_ingest_line(r, src, buf + start, i - start);
        }
        t->npart = 0;
        start = i + 1;
    }
    size_t rest = n - start;
    if (rest == 0 || t->skipping) return;
    if (t->npart + rest > DASH_MAX_LINE) { t->skipping = true; t->npart = 0; return; }
    if (!t->part) {
        t->part = malloc(DASH_MAX_LINE);
        if (!t->part) { t->skipping = true; return; }
        t->cappart = DASH_MAX_LINE;
    }
    memcpy(t->part + t->npart, buf + start, rest);
    t->npart += rest;
}

static void tail_source(dash_run *r, int src) {
    dash_tail *t = &r->tails[src];
    struct stat st;
    if (stat(t->path, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (t->open_once && (t->off > 0 || t->npart > 0)) reset_source(r, src);   /* removed */
        return;
    }
    if (t->open_once && (st.st_dev != t->dev || st.st_ino != t->ino || (int64_t)st.st_size < t->off))
        reset_source(r, src);   /* replaced or truncated: read it again */
    t->open_once = true;
    t->dev = st.st_dev;
    t->ino = st.st_ino;
    if ((int64_t)st.st_size == t->off) return;
    int fd = open(t->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char buf[65536];
    for (;;) {
        ssize_t got = pread(fd, buf, sizeof buf, (off_t)t->off);
        if (got <= 0) break;
        t->off += got;
        feed(r, src, buf, (size_t)got);
    }
    close(fd);
}

void dr_refresh(dash_run *r, bool force) {
    double now = mono_now();
    if (!force && now - r->refreshed_at < 0.1) return;
    r->refreshed_at = now;
    for (int i = 0; i < 3; i++) tail_source(r, i);
}

/* ---- status ------------------------------------------------------------------------------ */
static void scan_checkpoints(dash_run *r) {
    double now = mono_now();
    if (now - r->ckpt_scanned_at < 2.0) return;
    r->ckpt_scanned_at = now;
    r->ckpt_name[0] = 0;
    r->ckpt_step = -1;
    DIR *d = opendir(r->real);
    if (!d) return;
    struct dirent *e;
    int seen = 0;
    double best = -1;
    while ((e = readdir(d)) && seen < 100000) {
        seen++;
        size_t n = strlen(e->d_name);
        if (n < 12 || strcmp(e->d_name + n - 12, ".safetensors") != 0 || n >= sizeof r->ckpt_name) continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", r->real, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        double mt = (double)st.st_mtim.tv_sec + 1e-9 * (double)st.st_mtim.tv_nsec;
        /* the newest; at the same time (model.safetensors is often a link to the last
         * checkpoint) the name that says its step */
        bool named = strncmp(e->d_name, "ckpt-", 5) == 0;
        if (mt < best - 1e-3 || (mt <= best + 1e-3 && (!named || r->ckpt_step >= 0))) continue;
        best = mt;
        snprintf(r->ckpt_name, sizeof r->ckpt_name, "%s", e->d_name);
        r->ckpt_mtime = mt;
        r->ckpt_bytes = (int64_t)st.st_size;
        long long step;
        r->ckpt_step = sscanf(e->d_name, "ckpt-%lld.safetensors", &step) == 1 ? step : -1;
    }
    closedir(d);
}

/* The whole of a small file (NUL-terminated) or NULL. */
static char *read_small(const char *path, size_t max, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max) { close(fd); return NULL; }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf && got < (size_t)st.st_size) {
        ssize_t k = read(fd, buf + got, (size_t)st.st_size - got);
        if (k <= 0) break;
        got += (size_t)k;
    }
    close(fd);
    if (!buf) return NULL;
    buf[got] = 0;
    *len = got;
    return buf;
}

/* The run's small JSON file NAME parsed (*doc, to dj_free; NULL when missing or bad); returns
 * its root when that is an object, else NULL. */
static const dj_val *load_object(const dash_run *r, const char *name, dj_doc **doc) {
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", r->real, name);
    size_t n = 0;
    char *text = read_small(path, DASH_MAX_STATUS, &n);
    *doc = text ? dj_parse(text, n, NULL, 0) : NULL;   /* the document copies its strings */
    free(text);
    const dj_val *root = dj_root(*doc);
    return root && root->type == DJ_OBJ ? root : NULL;
}

void dr_json_status(dash_run *r, dj_buf *b, double now_wall) {
    scan_checkpoints(r);
    dj_doc *doc, *rdoc;
    const dj_val *tr = load_object(r, "status.json", &doc);
    /* run.json (the trainer's options) says how long the run is and where it runs */
    const dj_val *rj = load_object(r, "run.json", &rdoc);
    double run_total = NAN;
    const dj_val *rs = get_num(rj, "steps"), *re = get_num(rj, "epochs"), *rb = get_num(rj, "batches_per_epoch");
    if (rs && rs->num > 0) run_total = rs->num;
    else if (re && rb && re->num > 0 && rb->num > 0) run_total = re->num * rb->num;
    struct stat st;
    double mtime = stat(r->tails[TAIL_METRICS].path, &st) == 0 ? (double)st.st_mtim.tv_sec : -1;
    jb_s(b, "{\"step\":");
    if (r->have_step) jb_int(b, r->last_step); else jb_s(b, "null");
    jb_s(b, ",\"epoch\":");
    if (r->have_epoch) jb_int(b, r->last_epoch); else jb_s(b, "null");
    jb_s(b, ",\"time\":");
    jb_num(b, r->have_time ? r->last_time : NAN);
    jb_s(b, ",\"wall\":");
    if (r->have_wall) jb_printf(b, "%.3f", r->last_wall); else jb_s(b, "null");
    jb_s(b, ",\"updated_ago_s\":");
    jb_num(b, mtime >= 0 ? now_wall - mtime : NAN);
    const dj_val *tot = get_num(tr, "total_steps");
    double total = tot ? tot->num : run_total;
    const dj_val *v = dj_get(tr, "state");
    const char *state = v && v->type == DJ_STR                              ? v->str
                        : mtime < 0                                         ? "waiting"
                        : r->have_step && total > 0 && r->last_step >= total ? "finished"
                        : now_wall - mtime < 60                             ? "running"
                                                                            : "idle";
    jb_s(b, ",\"state\":");
    jb_str(b, state);
    jb_s(b, ",\"total_steps\":");
    jb_num(b, total);
    const dj_val *eta = get_num(tr, "eta_s");
    double eta_s = eta ? eta->num : NAN;
    if (!eta && total > 0 && r->have_step && r->have_time && r->last_step > 0 && total >= (double)r->last_step)
        eta_s = (total - (double)r->last_step) * r->last_time / (double)r->last_step;
    if (strcmp(state, "running") != 0 && !eta) eta_s = NAN;
    jb_s(b, ",\"eta_s\":");
    jb_num(b, eta_s);
    v = dj_get(tr, "device");
    if (!v || v->type != DJ_STR) v = dj_get(rj, "device");
    jb_s(b, ",\"device\":");
    if (v && v->type == DJ_STR) jb_strn(b, v->str, v->len); else jb_s(b, "null");
    jb_s(b, ",\"checkpoint\":");
    if (r->ckpt_name[0]) {
        jb_s(b, "{\"file\":");
        jb_str(b, r->ckpt_name);
        jb_s(b, ",\"step\":");
        if (r->ckpt_step >= 0) jb_int(b, r->ckpt_step); else jb_s(b, "null");
        jb_printf(b, ",\"wall\":%.3f", r->ckpt_mtime);
        jb_s(b, ",\"bytes\":");
        jb_int(b, r->ckpt_bytes);
        jb_s(b, "}");
    } else {
        jb_s(b, "null");
    }
    jb_s(b, ",\"trainer\":");
    jb_val(b, tr);
    jb_s(b, "}");
    dj_free(doc);
    dj_free(rdoc);
}

void dr_json_summary(dash_run *r, dj_buf *b, double now_wall) {
    jb_s(b, "{\"id\":");
    jb_str(b, r->id);
    jb_s(b, ",\"dir\":");
    jb_str(b, r->dir);
    jb_printf(b, ",\"generation\":%llu,\"series\":[", (unsigned long long)r->generation);
    for (int i = 0; i < r->nseries; i++) {
        dash_series *s = &r->series[i];
        if (i) jb_s(b, ",");
        jb_s(b, "{\"name\":");
        jb_str(b, s->name);
        jb_printf(b, ",\"source\":\"%s\",\"count\":%lld,\"last_step\":", s->source ? "external" : "metrics",
                  (long long)s->n);
        if (s->n) jb_int(b, s->pts[s->n - 1].step); else jb_s(b, "null");
        jb_s(b, ",\"last_value\":");
        if (s->n) jb_float(b, s->pts[s->n - 1].value); else jb_s(b, "null");
        jb_printf(b, ",\"nonfinite\":%lld}", (long long)s->nonfinite);
    }
    jb_printf(b, "],\"samples\":%d,\"files\":{", r->nsamples);
    for (int i = 0; i < 3; i++) {
        dash_tail *t = &r->tails[i];
        if (i) jb_s(b, ",");
        jb_str(b, tail_files[i]);
        jb_printf(b, ":{\"bytes\":%lld,\"lines\":%lld,\"bad_lines\":%lld,\"last_error\":", (long long)t->off,
                  (long long)t->lines, (long long)t->bad_lines);
        if (t->bad_lines) jb_str(b, t->last_error); else jb_s(b, "null");
        jb_s(b, "}");
    }
    jb_printf(b, "},\"ignored_fields\":%lld,\"status\":", (long long)r->ignored_fields);
    dr_json_status(r, b, now_wall);
    jb_s(b, "}");
}

/* ---- scalars -------------------------------------------------------------------------------- */
static void emit_series(dash_series *s, int64_t since, int64_t until, int64_t max, dj_buf *b) {
    /* the points with since < step <= until (steps are increasing) */
    int64_t lo = 0, hi = s->n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (s->pts[mid].step <= since) lo = mid + 1; else hi = mid;
    }
    int64_t i0 = lo;
    hi = s->n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (s->pts[mid].step <= until) lo = mid + 1; else hi = mid;
    }
    int64_t i1 = lo, cnt = i1 - i0;
    /* which points to send: all, or per bucket its lowest and highest (peaks stay visible) */
    int64_t *pick = NULL, npick = 0;
    bool down = max > 0 && cnt > max;
    if (down) {
        int64_t nb = max / 2 > 0 ? max / 2 : 1;
        pick = malloc((size_t)(2 * nb + 1) * sizeof *pick);
        if (!pick) { b->failed = true; return; }
        for (int64_t k = 0; k < nb; k++) {
            int64_t a = i0 + k * cnt / nb, z = i0 + (k + 1) * cnt / nb;
            if (a >= z) continue;
            int64_t mn = a, mx = a;
            for (int64_t i = a + 1; i < z; i++) {
                if (s->pts[i].value < s->pts[mn].value) mn = i;
                if (s->pts[i].value > s->pts[mx].value) mx = i;
            }
            int64_t first = mn < mx ? mn : mx, second = mn < mx ? mx : mn;
            pick[npick++] = first;
            if (second != first) pick[npick++] = second;
        }
        if (npick == 0 || pick[npick - 1] != i1 - 1) pick[npick++] = i1 - 1;   /* the newest, always */
    }
    jb_s(b, "{\"name\":");
    jb_str(b, s->name);
    jb_printf(b, ",\"source\":\"%s\",\"count\":%lld,\"nonfinite\":%lld,\"last_step\":",
              s->source ? "external" : "metrics", (long long)s->n, (long long)s->nonfinite);
    if (s->n) jb_int(b, s->pts[s->n - 1].step); else jb_s(b, "null");
    jb_printf(b, ",\"downsampled\":%s,\"steps\":[", down ? "true" : "false");
    int64_t m = down ? npick : cnt;
    for (int64_t k = 0; k < m; k++) {
        if (k) jb_s(b, ",");
        jb_int(b, s->pts[down ? pick[k] : i0 + k].step);
    }
    jb_s(b, "],\"times\":[");
    for (int64_t k = 0; k < m; k++) {
        if (k) jb_s(b, ",");
        jb_float(b, s->pts[down ? pick[k] : i0 + k].time);
    }
    jb_s(b, "],\"values\":[");
    for (int64_t k = 0; k < m; k++) {
        if (k) jb_s(b, ",");
        jb_float(b, s->pts[down ? pick[k] : i0 + k].value);
    }
    jb_s(b, "]}");
    free(pick);
}

int dr_json_scalars(dash_run *r, const char *name, int64_t since, int64_t until, int64_t max, dj_buf *b, char *err,
                    size_t errlen) {
    dash_series *one = NULL;
    if (name) {
        one = lookup_series(r, name);
        if (!one) {
            snprintf(err, errlen, "run '%s' has no series '%s' (GET /api/runs/%s lists them)", r->id, name, r->id);
            return 404;
        }
    }
    jb_s(b, "{\"run\":");
    jb_str(b, r->id);
    jb_printf(b, ",\"generation\":%llu,\"series\":[", (unsigned long long)r->generation);
    if (one) emit_series(one, since, until, max, b);
    else
        for (int i = 0; i < r->nseries; i++) {
            if (i) jb_s(b, ",");
            emit_series(&r->series[i], since, until, max, b);
        }
    jb_s(b, "]}");
    return 200;
}

/* ---- samples -------------------------------------------------------------------------------- */
static bool file_in_run(const dash_run *r, const char *rel) {
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", r->real, rel);
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

void dr_json_samples(dash_run *r, int64_t limit, const char *url_prefix, dj_buf *b) {
    jb_s(b, "{\"run\":");
    jb_str(b, r->id);
    jb_printf(b, ",\"generation\":%llu,\"count\":%d,\"samples\":[", (unsigned long long)r->generation, r->nsamples);
    int64_t k = 0;
    for (int i = r->nsamples - 1; i >= 0 && (limit <= 0 || k < limit); i--, k++) {
        dash_sample *s = &r->samples[i];
        if (k) jb_s(b, ",");
        jb_s(b, "{\"step\":");
        jb_int(b, s->step);
        jb_s(b, ",\"midi\":");
        jb_str(b, s->midi);
        jb_printf(b, ",\"midi_url\":\"%s", url_prefix);
        jb_s(b, s->midi);   /* dash_rel_path_ok: nothing to escape */
        jb_printf(b, "\",\"midi_exists\":%s,\"audio\":", file_in_run(r, s->midi) ? "true" : "false");
        if (s->audio[0]) {
            jb_str(b, s->audio);
            jb_printf(b, ",\"audio_url\":\"%s", url_prefix);
            jb_s(b, s->audio);
            jb_printf(b, "\",\"audio_exists\":%s}", file_in_run(r, s->audio) ? "true" : "false");
        } else {
            jb_s(b, "null,\"audio_url\":null,\"audio_exists\":false}");
        }
    }
    jb_s(b, "]}");
}

/* ---- files ---------------------------------------------------------------------------------- */
int dr_resolve(const dash_run *r, const char *rel, char *out, size_t outlen, char *err, size_t errlen) {
    if (!dash_rel_path_ok(rel)) {
        snprintf(err, errlen, "'%.100s': not a path inside the run folder (letters, digits, . _ - +, no '..')", rel);
        return 400;
    }
    char path[8192], real[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", r->real, rel);
    if (!realpath(path, real)) {
        snprintf(err, errlen, "run '%s' has no file '%s'", r->id, rel);
        return 404;
    }
    size_t n = strlen(r->real);
    struct stat st;
    if (strncmp(real, r->real, n) != 0 || real[n] != '/' || stat(real, &st) != 0 || !S_ISREG(st.st_mode) ||
        strlen(real) >= outlen) {
        snprintf(err, errlen, "run '%s' has no file '%s'", r->id, rel);
        return 404;
    }
    snprintf(out, outlen, "%s", real);
    return 0;
}

/* ---- the model's configuration (safetensors metadata) ---------------------------------------- */
int dr_json_config(dash_run *r, const char *file, dj_buf *b, char *err, size_t errlen) {
    char rel[DASH_MAX_PATH];
    if (file) snprintf(rel, sizeof rel, "%s", file);
    else if (file_in_run(r, "model.safetensors")) snprintf(rel, sizeof rel, "model.safetensors");
    else if (file_in_run(r, "best.safetensors")) snprintf(rel, sizeof rel, "best.safetensors");
    else {
        scan_checkpoints(r);
        if (!r->ckpt_name[0]) {
            snprintf(err, errlen, "run '%s' has no checkpoint yet (*.safetensors)", r->id);
            return 404;
        }
        snprintf(rel, sizeof rel, "%s", r->ckpt_name);
    }
    char path[PATH_MAX];
    int st = dr_resolve(r, rel, path, sizeof path, err, errlen);
    if (st) return st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { snprintf(err, errlen, "%s: %s", rel, strerror(errno)); return 404; }
    unsigned char h8[8];
    uint64_t hl = 0;
    if (pread(fd, h8, 8, 0) == 8)
        for (int i = 7; i >= 0; i--) hl = hl << 8 | h8[i];
    if (hl == 0 || hl > DASH_MAX_ST_HEADER) {
        close(fd);
        snprintf(err, errlen, "%s: not a safetensors file (header length %llu)", rel, (unsigned long long)hl);
        return 422;
    }
    char *hdr = malloc(hl);
    ssize_t got = hdr ? pread(fd, hdr, hl, 8) : -1;
    close(fd);
    char perr[128];
    dj_doc *d = got == (ssize_t)hl ? dj_parse(hdr, hl, perr, sizeof perr) : NULL;
    if (!d || dj_root(d)->type != DJ_OBJ) {
        snprintf(err, errlen, "%s: not a safetensors file (its header is not a JSON object)", rel);
        dj_free(d);
        free(hdr);
        return 422;
    }
    const dj_val *meta = dj_get(dj_root(d), "__metadata__");
    const dj_val *cfgs = dj_get(meta, "cantor_config");
    jb_s(b, "{\"run\":");
    jb_str(b, r->id);
    jb_s(b, ",\"file\":");
    jb_str(b, rel);
    jb_printf(b, ",\"tensors\":%d,\"metadata\":", dj_root(d)->n - (meta ? 1 : 0));
    jb_val(b, meta);
    jb_s(b, ",\"config\":");
    dj_doc *cd = cfgs && cfgs->type == DJ_STR ? dj_parse(cfgs->str, cfgs->len, NULL, 0) : NULL;
    jb_val(b, dj_root(cd));
    cc_config cfg;
    char desc[160] = "";
    int64_t params = -1;
    if (cd && cc_config_from_json(cfgs->str, &cfg, NULL, 0) == CT_OK) {
        cc_config_describe(&cfg, desc, sizeof desc);
        params = cc_config_num_params(&cfg);
    }
    jb_s(b, ",\"model\":");
    if (desc[0]) jb_str(b, desc); else jb_s(b, "null");
    jb_s(b, ",\"params\":");
    if (params >= 0) jb_int(b, params); else jb_s(b, "null");
    jb_s(b, "}");
    dj_free(cd);
    dj_free(d);
    free(hdr);
    return 200;
}

/* ---- piano roll ------------------------------------------------------------------------------ */
int dr_json_pianoroll(dash_run *r, const char *file, dj_buf *b, char *err, size_t errlen) {
    if (!file) { snprintf(err, errlen, "give ?file=PATH, a MIDI file of the run (GET /api/runs/%s/samples)", r->id); return 400; }
    char path[PATH_MAX];
    int st = dr_resolve(r, file, path, sizeof path, err, errlen);
    if (st) return st;
    struct stat sb;
    if (stat(path, &sb) != 0 || sb.st_size > DASH_MAX_MIDI) {
        snprintf(err, errlen, "%s: larger than %d bytes", file, DASH_MAX_MIDI);
        return 413;
    }
    cm_file *f = NULL;
    cm_error me;
    cm_notes notes = {0};
    if (cm_read_file(path, &f, &me) != CM_OK || cm_notes_extract(f, NULL, &notes, &me) != CM_OK) {
        /* the message names the absolute path: give the run's relative one instead */
        const char *msg = strstr(me.message, ": ");
        snprintf(err, errlen, "%s%s", file, msg ? msg : ": not a MIDI file");
        cm_file_free(f);
        cm_notes_free(&notes);
        return 422;
    }
    int64_t n = notes.n_notes < DASH_MAX_ROLL_NOTES ? notes.n_notes : DASH_MAX_ROLL_NOTES;
    jb_s(b, "{\"run\":");
    jb_str(b, r->id);
    jb_s(b, ",\"file\":");
    jb_str(b, file);
    jb_s(b, ",\"end_s\":");
    jb_num(b, notes.end_s);
    jb_printf(b, ",\"count\":%lld,\"truncated\":%s,\"notes\":[", (long long)notes.n_notes,
              n < notes.n_notes ? "true" : "false");
    for (int64_t i = 0; i < n; i++) {
        const cm_note *x = &notes.notes[i];
        jb_printf(b, "%s[%.4f,%.4f,%d,%d,%d,%d]", i ? "," : "", x->start_s, x->end_s, x->pitch, x->velocity, x->channel,
                  x->is_drum ? 1 : 0);
    }
    jb_s(b, "]}");
    cm_notes_free(&notes);
    cm_file_free(f);
    return 200;
}

/* ---- POSTed scalars ------------------------------------------------------------------------- */
/* Checks one posted object and writes its line into out; returns 0 or an HTTP status. */
static int post_line(dash_run *r, const dj_val *o, int k, double now_wall, dj_buf *out, int *npoints,
                     char (*newnames)[DASH_MAX_NAME], int *nnew, char *err, size_t errlen) {
    if (o->type != DJ_OBJ) { snprintf(err, errlen, "item %d: expected an object", k); return 400; }
    int64_t step;
    if (!get_step(o, &step)) {
        snprintf(err, errlen, "item %d: \"step\" must be a whole number >= 0", k);
        return 400;
    }
    const dj_val *t = dj_get(o, "time"), *w = dj_get(o, "wall");
    if ((t && !get_num(o, "time")) || (w && !get_num(o, "wall"))) {
        snprintf(err, errlen, "item %d: \"time\" and \"wall\" must be finite numbers", k);
        return 400;
    }
    const dj_val *name = dj_get(o, "name"), *value = dj_get(o, "value"), *sc = dj_get(o, "scalars");
    if (sc ? (name || value || sc->type != DJ_OBJ || sc->n == 0) : (!name || !value)) {
        snprintf(err, errlen, "item %d: give \"name\" and \"value\", or \"scalars\": {NAME: VALUE, ...}", k);
        return 400;
    }
    for (const dj_val *m = o->child; m; m = m->next)
        if (strcmp(m->key, "step") && strcmp(m->key, "time") && strcmp(m->key, "wall") && strcmp(m->key, "name") &&
            strcmp(m->key, "value") && strcmp(m->key, "scalars")) {
            snprintf(err, errlen, "item %d: unknown field \"%.60s\" (step, time, wall, name, value, scalars)", k, m->key);
            return 400;
        }
    jb_s(out, "{\"step\":");
    jb_int(out, step);
    jb_s(out, ",\"wall\":");
    jb_printf(out, "%.3f", w ? w->num : now_wall);
    if (t) {
        jb_s(out, ",\"time\":");
        jb_num(out, t->num);
    }
    const dj_val *first = sc ? sc->child : value;
    for (const dj_val *v = first; v; v = sc ? v->next : NULL) {
        const char *nm = sc ? v->key : (name->type == DJ_STR ? name->str : NULL);
        if (!nm || !dash_name_ok(nm)) {
            snprintf(err, errlen, "item %d: series name '%.60s': use 1 to 63 of A-Z a-z 0-9 _ . : / -", k, nm ? nm : "");
            return 400;
        }
        if (reserved_key(nm) || strcmp(nm, "loss") == 0 || find_series(r, nm, DASH_SRC_METRICS)) {
            snprintf(err, errlen, "item %d: '%s' is the trainer's (metrics.jsonl); post it under another name", k, nm);
            return 409;
        }
        if (v->type != DJ_NUM || !isfinite(v->num)) {
            snprintf(err, errlen, "item %d: the value of '%s' must be a finite number", k, nm);
            return 400;
        }
        if (!find_series(r, nm, DASH_SRC_EXTERNAL)) {
            bool known = false;
            for (int i = 0; i < *nnew; i++) known |= strcmp(newnames[i], nm) == 0;
            if (!known) {
                if (count_source(r, DASH_SRC_EXTERNAL) + *nnew >= DASH_MAX_SERIES) {
                    snprintf(err, errlen, "run '%s' already has %d external series (the limit)", r->id, DASH_MAX_SERIES);
                    return 409;
                }
                snprintf(newnames[(*nnew)++], DASH_MAX_NAME, "%s", nm);
            }
        }
        if (++*npoints > DASH_MAX_POST_POINTS) {
            snprintf(err, errlen, "more than %d scalars in one request", DASH_MAX_POST_POINTS);
            return 413;
        }
        jb_s(out, ",");
        jb_str(out, nm);
        jb_s(out, ":");
        jb_num(out, v->num);
    }
    jb_s(out, "}\n");
    return 0;
}

int dr_post_scalars(dash_run *r, const char *body, size_t len, double now_wall, dj_buf *b, char *err,
                    size_t errlen) {
    char perr[128];
    dj_doc *d = dj_parse(body, len, perr, sizeof perr);
    if (!d) {
        snprintf(err, errlen, "the body is not JSON: %s", perr);
        return 400;
    }
    dr_refresh(r, true);
    const dj_val *root = dj_root(d);
    dj_buf lines = {0};
    lines.limit = 4 * DASH_MAX_BODY;
    char newnames[DASH_MAX_SERIES][DASH_MAX_NAME];
    int nnew = 0, npoints = 0, k = 0, st = 0;
    if (root->type == DJ_ARR) {
        if (root->n == 0) { snprintf(err, errlen, "an empty array"); st = 400; }
        for (const dj_val *o = root->child; o && !st; o = o->next, k++)
            st = post_line(r, o, k, now_wall, &lines, &npoints, newnames, &nnew, err, errlen);
    } else {
        st = post_line(r, root, 0, now_wall, &lines, &npoints, newnames, &nnew, err, errlen);
        k = 1;
    }
    dj_free(d);
    if (!st && lines.failed) { snprintf(err, errlen, "out of memory"); st = 500; }
    if (st) { jb_free(&lines); return st; }
    int fd = open(r->tails[TAIL_EXTERNAL].path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot write %s/external.jsonl: %s", r->dir, strerror(errno));
        jb_free(&lines);
        return 500;
    }
    /* one write: O_APPEND keeps concurrent posts' lines whole */
    ssize_t w = write(fd, lines.p, lines.len);
    int e = errno;
    close(fd);
    if (w != (ssize_t)lines.len) {
        snprintf(err, errlen, "writing %s/external.jsonl: %s", r->dir, w < 0 ? strerror(e) : "short write");
        jb_free(&lines);
        return 500;
    }
    jb_free(&lines);
    dr_refresh(r, true);
    jb_s(b, "{\"ok\":true,\"run\":");
    jb_str(b, r->id);
    jb_printf(b, ",\"items\":%d,\"scalars\":%d}", k, npoints);
    return 200;
}
