/* corpora/extract.c — one MIDI file's training sequences in a chosen encoding (cp_extract_*),
 * and the list of source files (cp_sources). */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "corpora/build.h"
#include "corpora/internal.h"

/* ============================================================================================
 * Sources
 * ============================================================================================ */
void cp_sources_free(cp_sources *s) {
    if (!s) return;
    for (int64_t i = 0; i < s->n; i++) {
        free(s->items[i].path);
        free(s->items[i].name);
    }
    free(s->items);
    memset(s, 0, sizeof *s);
}

bool cp_is_midi_name(const char *name) {
    if (!name) return false;
    size_t n = strlen(name);
    return (n > 4 && strcasecmp(name + n - 4, ".mid") == 0) || (n > 5 && strcasecmp(name + n - 5, ".midi") == 0);
}

static char *join(const char *a, const char *sep, const char *b) {
    size_t na = strlen(a), ns = strlen(sep), nb = strlen(b);
    char *d = malloc(na + ns + nb + 1);
    if (!d) return NULL;
    memcpy(d, a, na);
    memcpy(d + na, sep, ns);
    memcpy(d + na + ns, b, nb + 1);
    return d;
}

ct_status cp_sources_add_file(cp_sources *s, const char *path, const char *name, cp_error *err) {
    if (!s || !path) return cp__fail(err, CT_E_NULL, "cp_sources_add_file: NULL argument");
    if (s->n == s->cap) {
        int64_t cap = s->cap ? 2 * s->cap : 64;
        cp_source *v = realloc(s->items, (size_t)cap * sizeof *v);
        if (!v) return cp__fail(err, CT_E_NOMEM, "out of memory for %lld source files", (long long)cap);
        s->items = v;
        s->cap = cap;
    }
    char *p = join(path, "", ""), *n = join(name ? name : path, "", "");
    if (!p || !n) {
        free(p);
        free(n);
        return cp__fail(err, CT_E_NOMEM, "out of memory for a source name");
    }
    s->items[s->n++] = (cp_source){p, n};
    return CT_OK;
}

/* dir: the folder on disk; rel: its name relative to the root ("" at the root). */
static ct_status walk(cp_sources *s, const char *dir, const char *rel, const char *prefix, int depth, cp_error *err) {
    if (depth > 64) return cp__fail(err, CT_E_IO, "%s: folders nested more than 64 deep", dir);
    DIR *d = opendir(dir);
    if (!d) return cp__fail(err, CT_E_IO, "%s: cannot open the folder: %s", dir, strerror(errno));
    ct_status st = CT_OK;
    struct dirent *de;
    while (st == CT_OK && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        char *path = join(dir, dir[0] && dir[strlen(dir) - 1] == '/' ? "" : "/", de->d_name);
        char *r = rel[0] ? join(rel, "/", de->d_name) : join(de->d_name, "", "");
        struct stat lst, tst;
        if (!path || !r) {
            st = cp__fail(err, CT_E_NOMEM, "out of memory walking %s", dir);
        } else if (lstat(path, &lst) != 0) {
            st = cp__fail(err, CT_E_IO, "%s: %s", path, strerror(errno));
        } else if (S_ISDIR(lst.st_mode)) {
            st = walk(s, path, r, prefix, depth + 1, err);
        } else if (S_ISREG(lst.st_mode) || (S_ISLNK(lst.st_mode) && stat(path, &tst) == 0 && S_ISREG(tst.st_mode))) {
            if (cp_is_midi_name(de->d_name)) {
                char *name = join(prefix ? prefix : "", "", r);
                st = name ? cp_sources_add_file(s, path, name, err)
                          : cp__fail(err, CT_E_NOMEM, "out of memory walking %s", dir);
                free(name);
            } else {
                s->ignored++;
            }
        }
        free(path);
        free(r);
    }
    closedir(d);
    return st;
}

ct_status cp_sources_add_dir(cp_sources *s, const char *dir, const char *prefix, cp_error *err) {
    if (!s || !dir) return cp__fail(err, CT_E_NULL, "cp_sources_add_dir: NULL argument");
    struct stat st;
    if (stat(dir, &st) != 0)
        return cp__fail(err, CT_E_IO, "%s: %s (expected a folder of MIDI files)", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return cp__fail(err, CT_E_IO, "%s: not a folder (expected a folder of MIDI files)", dir);
    return walk(s, dir, "", prefix, 0, err);
}

/* ============================================================================================
 * Extraction
 * ============================================================================================ */
void cp_extracted_free(cp_extracted *x) {
    if (!x) return;
    for (int64_t i = 0; i < x->n; i++) {
        free(x->seqs[i].tokens);
        free(x->seqs[i].frames);
    }
    free(x->seqs);
    memset(x, 0, sizeof *x);
}

static ct_status from_cm(cp_error *err, cm_status s, const cm_error *e) {
    ct_status st = s == CM_E_NOMEM ? CT_E_NOMEM : s == CM_E_IO ? CT_E_IO : s == CM_E_ARG ? CT_E_ARG : CT_E_FORMAT;
    return cp__fail(err, st, "%s", e->message[0] ? e->message : cm_strerror(s));
}

/* Appends a sequence (takes tokens / frames) or counts it as too short (and frees it). */
static ct_status push(cp_extracted *x, const cp_encoding *e, cp_seq q, cp_error *err) {
    if (q.len < e->min_steps) {
        x->too_short++;
        free(q.tokens);
        free(q.frames);
        return CT_OK;
    }
    if ((x->n & (x->n - 1)) == 0) {   /* capacity: powers of two */
        cp_seq *v = realloc(x->seqs, (size_t)(x->n ? 2 * x->n : 1) * sizeof *v);
        if (!v) {
            free(q.tokens);
            free(q.frames);
            return cp__fail(err, CT_E_NOMEM, "out of memory for %lld sequences", (long long)x->n + 1);
        }
        x->seqs = v;
    }
    x->seqs[x->n++] = q;
    return CT_OK;
}

/* Seconds between quarter-note grid steps a and b (steps_per_quarter spq) of the file. */
static double grid_seconds(const cm_tempo_map *tm, int spq, int64_t a, int64_t b) {
    int ppq = tm ? tm->division.ppq : CM_DEFAULT_PPQ;
    if (ppq > 0 && tm) {
        int64_t ta = (a * ppq * 2 + spq) / (2 * (int64_t)spq), tb = (b * ppq * 2 + spq) / (2 * (int64_t)spq);
        return cm_tick_to_seconds(tm, tb) - cm_tick_to_seconds(tm, ta);
    }
    uint32_t us = tm && tm->n_tempos > 0 && tm->tempos[0].us_per_quarter ? tm->tempos[0].us_per_quarter
                                                                        : CM_DEFAULT_TEMPO;
    return (double)(b - a) / spq * us / 1e6;
}

static ct_status extract_melody(const cm_notes *notes, const cm_tempo_map *tm, const cp_encoding *e,
                                cp_extracted *x, cp_error *err) {
    cm_melodies ms;
    cm_error ce;
    cm_status cs = cm_melody_extract(notes, tm, &e->melody, &ms, &ce);
    if (cs != CM_OK) return from_cm(err, cs, &ce);
    ct_status st = CT_OK;
    for (int64_t i = 0; st == CT_OK && i < ms.n_melodies; i++) {
        const cm_melody *m = &ms.melodies[i];
        cp_seq q = {0};
        cs = cm_melody_encode(m, e->melody.range, &q.tokens, &q.len, &ce);
        if (cs != CM_OK) {
            st = from_cm(err, cs, &ce);
            break;
        }
        q.start = m->start_step;
        q.instrument = m->instrument;
        q.duration_s = grid_seconds(tm, m->steps_per_quarter, m->start_step, m->start_step + m->n_events);
        st = push(x, e, q, err);
    }
    if (st == CT_OK && x->n == 0) {
        const cm_melody_stats *s = &ms.stats;
        snprintf(x->why_empty, sizeof x->why_empty,
                 "no melody of at least %d bars with %d pitch classes: %lld instruments searched (%lld drum "
                 "instruments skipped), melodies discarded: %lld too short, %lld too few pitch classes, %lld too "
                 "long; %lld shorter than %lld steps",
                 e->melody.min_bars, e->melody.min_unique_pitches, (long long)s->instruments,
                 (long long)s->drum_instruments_skipped, (long long)s->discarded_too_short,
                 (long long)s->discarded_too_few_pitches, (long long)s->discarded_too_long, (long long)x->too_short,
                 (long long)e->min_steps);
    }
    cm_melodies_free(&ms);
    return st;
}

/* Encodes notes[0..n) as one performance piece starting at step `start`. */
static ct_status perf_piece(const cm_note *v, int64_t n, int64_t start, const cp_encoding *e, cp_extracted *x,
                            cm_perf_encode_stats *pst, cp_error *err) {
    cm_notes part;
    memset(&part, 0, sizeof part);
    part.notes = (cm_note *)v;
    part.n_notes = n;
    cp_seq q = {0};
    cm_error ce;
    cm_status cs = cm_perf_encode(&part, &e->perf, &q.tokens, &q.len, pst, &ce);
    if (cs != CM_OK) return from_cm(err, cs, &ce);
    if (q.len == 0) {   /* nothing encodable */
        free(q.tokens);
        return CT_OK;
    }
    q.start = start;
    q.instrument = -1;
    q.duration_s = (double)pst->steps / e->perf.config.steps_per_second;
    return push(x, e, q, err);
}

static int cmp_start(const void *a, const void *b) {
    const cm_note *x = a, *y = b;
    if (x->start_s != y->start_s) return x->start_s < y->start_s ? -1 : 1;
    return (int)x->pitch - (int)y->pitch;
}

static ct_status extract_performance(const cm_notes *notes, const cp_encoding *e, cp_extracted *x, cp_error *err) {
    cm_perf_encode_stats pst = {0};
    if (e->perf_split_silence_s <= 0) {
        ct_status st = perf_piece(notes->notes, notes->n_notes, 0, e, x, &pst, err);
        if (st == CT_OK && x->n == 0)
            snprintf(x->why_empty, sizeof x->why_empty,
                     "no notes to encode (%lld notes: %lld drum notes left out, %lld of velocity 0)%s",
                     (long long)notes->n_notes, (long long)pst.drums_skipped, (long long)pst.zero_velocity_skipped,
                     x->too_short ? "; the sequence is shorter than the minimum" : "");
        return st;
    }
    /* the notes the encoder keeps, by start; cut where nothing sounds for the threshold */
    cm_note *v = malloc((size_t)(notes->n_notes ? notes->n_notes : 1) * sizeof *v);
    if (!v) return cp__fail(err, CT_E_NOMEM, "out of memory for %lld notes", (long long)notes->n_notes);
    int64_t n = 0, drums = 0, silent = 0;
    for (int64_t i = 0; i < notes->n_notes; i++) {
        const cm_note *a = &notes->notes[i];
        if (a->is_drum && !e->perf.include_drums) drums++;
        else if (a->velocity == 0) silent++;
        else v[n++] = *a;
    }
    qsort(v, (size_t)n, sizeof *v, cmp_start);
    ct_status st = CT_OK;
    const double sps = e->perf.config.steps_per_second;
    int64_t first = 0;
    double end = n ? v[0].end_s : 0;
    for (int64_t i = 1; st == CT_OK && i <= n; i++) {
        if (i < n && v[i].start_s - end < e->perf_split_silence_s) {
            if (v[i].end_s > end) end = v[i].end_s;
            continue;
        }
        /* notes [first, i) form a part: shift it to start at its first note */
        double t0 = v[first].start_s;
        for (int64_t k = first; k < i; k++) {
            v[k].start_s -= t0;
            v[k].end_s -= t0;
            if (v[k].start_s < 0) v[k].start_s = 0;
            if (v[k].end_s < v[k].start_s) v[k].end_s = v[k].start_s;
        }
        st = perf_piece(v + first, i - first, (int64_t)floor(t0 * sps + 0.5), e, x, &pst, err);
        if (i < n) {
            first = i;
            end = v[i].end_s;
        }
    }
    free(v);
    if (st == CT_OK && x->n == 0)
        snprintf(x->why_empty, sizeof x->why_empty,
                 "no notes to encode (%lld notes: %lld drum notes left out, %lld of velocity 0)%s",
                 (long long)notes->n_notes, (long long)drums, (long long)silent,
                 x->too_short ? "; every part is shorter than the minimum" : "");
    return st;
}

static ct_status extract_roll(const cm_notes *notes, const cm_tempo_map *tm, const cp_encoding *e, cp_extracted *x,
                              cp_error *err) {
    cm_roll roll;
    cm_roll_stats rs;
    cm_error ce;
    cm_status cs = cm_roll_from_notes(notes, tm, e->roll_grid, e->roll_include_drums, &roll, &rs, &ce);
    if (cs != CM_OK) return from_cm(err, cs, &ce);
    ct_status st = CT_OK;
    if (rs.notes_used > 0 && roll.n_steps > 0) {
        cp_seq q = {0};
        q.frames = roll.frames;   /* taken */
        q.len = roll.n_steps;
        q.instrument = -1;
        if (e->roll_grid.steps_per_second > 0)
            q.duration_s = (double)roll.n_steps / e->roll_grid.steps_per_second;
        else
            q.duration_s = grid_seconds(tm, e->roll_grid.steps_per_quarter, 0, roll.n_steps);
        roll.frames = NULL;
        st = push(x, e, q, err);
    }
    cm_roll_free(&roll);
    if (st == CT_OK && x->n == 0)
        snprintf(x->why_empty, sizeof x->why_empty,
                 "no notes on the 88 keys (%lld notes: %lld outside 21..108, %lld drum notes left out)%s",
                 (long long)notes->n_notes, (long long)rs.notes_out_of_range, (long long)rs.notes_drums_skipped,
                 x->too_short ? "; the roll is shorter than the minimum" : "");
    return st;
}

ct_status cp_extract_notes(const cm_notes *notes, const cm_tempo_map *tm, const cp_encoding *e, cp_extracted *out,
                           cp_error *err) {
    if (out) memset(out, 0, sizeof *out);
    if (!notes || !e || !out) return cp__fail(err, CT_E_NULL, "cp_extract_notes: NULL argument");
    ct_status st = cp_encoding_check(e, err);
    if (st != CT_OK) return st;
    out->notes = notes->n_notes;
    switch (e->kind) {
    case CP_MELODY: st = extract_melody(notes, tm, e, out, err); break;
    case CP_PERFORMANCE: st = extract_performance(notes, e, out, err); break;
    case CP_PIANOROLL: st = extract_roll(notes, tm, e, out, err); break;
    }
    if (st == CT_OK && out->n == 0 && notes->n_notes == 0)
        snprintf(out->why_empty, sizeof out->why_empty, "no notes in the file");
    if (st != CT_OK) {
        int64_t notes_n = out->notes;
        cp_extracted_free(out);
        out->notes = notes_n;
        return st;
    }
    cp__ok(err);
    return CT_OK;
}

ct_status cp_extract_mem(const void *bytes, size_t len, const char *name, const cp_encoding *e, cp_extracted *out,
                         cp_error *err) {
    if (out) memset(out, 0, sizeof *out);
    if (!bytes || !e || !out) return cp__fail(err, CT_E_NULL, "cp_extract_mem: NULL argument");
    ct_status st = cp_encoding_check(e, err);
    if (st != CT_OK) return st;
    cm_error ce;
    cm_file *f = NULL;
    cm_status cs = cm_read_mem(bytes, len, name, &f, &ce);
    if (cs != CM_OK) return from_cm(err, cs, &ce);
    cm_tempo_map tm;
    memset(&tm, 0, sizeof tm);
    cm_notes notes;
    memset(&notes, 0, sizeof notes);
    cm_notes_opts no = {.sustain = e->sustain, .skip_drums = false};
    cs = cm_tempo_map_init(&tm, f, -1, &ce);
    if (cs == CM_OK) cs = cm_notes_extract(f, &no, &notes, &ce);
    if (cs != CM_OK) st = from_cm(err, cs, &ce);
    else st = cp_extract_notes(&notes, &tm, e, out, err);
    cm_notes_free(&notes);
    cm_tempo_map_free(&tm);
    cm_file_free(f);
    return st;
}
