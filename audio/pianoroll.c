/* audio/pianoroll.c — 88-key piano rolls: notes <-> frames, and the polyphonic benchmarks'
 * text format (strict reader with line/column errors, exact writer). See pianoroll.h. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* open, fsync, O_CLOEXEC */
#endif
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audio/fileio.h"
#include "audio/pianoroll.h"

#define NAME "<pianoroll>"
#define MAX_STEPS_PER_SECOND 10000.0
#define MAX_STEPS_PER_QUARTER 960

_Static_assert(CM_ROLL_MAX_PITCH - CM_ROLL_MIN_PITCH + 1 == CM_ROLL_NUM_KEYS, "88 keys");

/* ---- rolls ---------------------------------------------------------------------------------- */
cm_status cm_roll_init(cm_roll *r, int64_t n_steps, cm_error *err) {
    if (!r) return cm__fail(err, CM_E_ARG, NAME, -1, -1, "cm_roll_init: NULL roll");
    memset(r, 0, sizeof *r);
    if (n_steps < 0 || n_steps > CM_ROLL_MAX_STEPS)
        return cm__fail(err, n_steps < 0 ? CM_E_ARG : CM_E_LIMIT, NAME, -1, -1,
                        "%lld steps; expected 0..%lld (CM_ROLL_MAX_STEPS)", (long long)n_steps,
                        (long long)CM_ROLL_MAX_STEPS);
    r->frames = calloc((size_t)(n_steps > 0 ? n_steps : 1), CM_ROLL_NUM_KEYS);
    if (!r->frames)
        return cm__fail(err, CM_E_NOMEM, NAME, -1, -1, "out of memory for %lld steps of %d keys", (long long)n_steps,
                        CM_ROLL_NUM_KEYS);
    r->n_steps = n_steps;
    return CM_OK;
}

void cm_roll_free(cm_roll *r) {
    if (!r) return;
    free(r->frames);
    memset(r, 0, sizeof *r);
}

static cm_status check_grid(cm_roll_grid g, cm_error *err) {
    bool by_s = g.steps_per_second > 0, by_q = g.steps_per_quarter > 0;
    if (by_s == by_q || (by_s && !(g.steps_per_second <= MAX_STEPS_PER_SECOND)) ||
        (by_q && g.steps_per_quarter > MAX_STEPS_PER_QUARTER) || g.steps_per_second < 0 || g.steps_per_quarter < 0)
        return cm__fail(err, CM_E_ARG, NAME, -1, -1,
                        "grid of %g steps per second and %d per quarter; expected exactly one of them set "
                        "(steps per second in (0, %g], or steps per quarter in 1..%d)",
                        g.steps_per_second, g.steps_per_quarter, MAX_STEPS_PER_SECOND, MAX_STEPS_PER_QUARTER);
    return CM_OK;
}

/* floor(x + 0.5) as a step, saturated so huge times fail the step limit instead of overflowing. */
static int64_t round_step(double x) {
    x = floor(x + 0.5);
    return x > (double)CM_ROLL_MAX_STEPS * 2 ? CM_ROLL_MAX_STEPS * 2 : (int64_t)x;
}

/* The steps [*s, *e) of note x on the grid; CM_E_ARG for a negative or non-finite time. */
static cm_status note_steps(const cm_note *x, int64_t i, cm_roll_grid g, int ppq, double sps, int64_t *s,
                            int64_t *e, cm_error *err) {
    if (g.steps_per_quarter > 0 && ppq > 0) {
        if (x->start_tick < 0 || x->end_tick < x->start_tick)
            return cm__fail(err, CM_E_ARG, NAME, -1, -1, "note %lld (pitch %d): ticks %lld..%lld; expected 0 <= "
                            "start <= end", (long long)i, x->pitch, (long long)x->start_tick, (long long)x->end_tick);
        int64_t d = 2 * (int64_t)ppq;
        *s = (x->start_tick * g.steps_per_quarter * 2 + ppq) / d;
        *e = (x->end_tick * g.steps_per_quarter * 2 + ppq) / d;
    } else {
        if (!isfinite(x->start_s) || !isfinite(x->end_s) || x->start_s < 0 || x->end_s < x->start_s)
            return cm__fail(err, CM_E_ARG, NAME, -1, -1, "note %lld (pitch %d): seconds %g..%g; expected finite "
                            "times with 0 <= start <= end", (long long)i, x->pitch, x->start_s, x->end_s);
        *s = round_step(x->start_s * sps);
        *e = round_step(x->end_s * sps);
    }
    if (*e <= *s) *e = *s + 1;
    if (*e > CM_ROLL_MAX_STEPS)
        return cm__fail(err, CM_E_LIMIT, NAME, -1, -1, "note %lld (pitch %d) ends at step %lld, beyond the limit of "
                        "%lld (CM_ROLL_MAX_STEPS): use a coarser grid", (long long)i, x->pitch, (long long)*e,
                        (long long)CM_ROLL_MAX_STEPS);
    return CM_OK;
}

cm_status cm_roll_from_notes(const cm_notes *notes, const cm_tempo_map *tm, cm_roll_grid grid, bool include_drums,
                             cm_roll *out, cm_roll_stats *stats, cm_error *err) {
    if (!out) return cm__fail(err, CM_E_ARG, NAME, -1, -1, "cm_roll_from_notes: NULL out");
    memset(out, 0, sizeof *out);
    cm_roll_stats st = {0};
    if (stats) *stats = st;
    if (!notes || notes->n_notes < 0 || (notes->n_notes > 0 && !notes->notes))
        return cm__fail(err, CM_E_ARG, NAME, -1, -1, "cm_roll_from_notes: NULL or invalid notes");
    cm_status s = check_grid(grid, err);
    if (s) return s;
    int ppq = tm ? tm->division.ppq : CM_DEFAULT_PPQ;
    double sps = grid.steps_per_second;
    if (grid.steps_per_quarter > 0 && ppq <= 0) {  /* SMPTE: quarters at the first tempo */
        uint32_t us = tm && tm->n_tempos > 0 && tm->tempos[0].us_per_quarter ? tm->tempos[0].us_per_quarter
                                                                              : CM_DEFAULT_TEMPO;
        sps = grid.steps_per_quarter * 1e6 / us;
    }
    int64_t n_steps = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int64_t i = 0; i < notes->n_notes; i++) {
            const cm_note *x = &notes->notes[i];
            if (x->is_drum && !include_drums) {
                st.notes_drums_skipped += pass;
                continue;
            }
            if (x->pitch < CM_ROLL_MIN_PITCH || x->pitch > CM_ROLL_MAX_PITCH) {
                st.notes_out_of_range += pass;
                continue;
            }
            int64_t a = 0, b = 0;
            if ((s = note_steps(x, i, grid, ppq, sps, &a, &b, err))) {
                cm_roll_free(out);
                return s;
            }
            if (pass == 0) {
                if (b > n_steps) n_steps = b;
                continue;
            }
            st.notes_used++;
            for (int64_t t = a; t < b; t++) out->frames[t * CM_ROLL_NUM_KEYS + (x->pitch - CM_ROLL_MIN_PITCH)] = 1;
        }
        if (pass == 0 && (s = cm_roll_init(out, n_steps, err))) return s;
    }
    if (stats) *stats = st;
    return CM_OK;
}

cm_roll_render cm_roll_render_default(void) {
    return (cm_roll_render){120.0, CM_DEFAULT_PPQ, CM_ROLL_DEFAULT_VELOCITY, 0, 0};
}

cm_status cm_roll_to_notes(const cm_roll *roll, cm_roll_grid grid, const cm_roll_render *r, cm_notes *out,
                           cm_error *err) {
    if (!out) return cm__fail(err, CM_E_ARG, NAME, -1, -1, "cm_roll_to_notes: NULL out");
    memset(out, 0, sizeof *out);
    if (!roll || roll->n_steps < 0 || roll->n_steps > CM_ROLL_MAX_STEPS || (roll->n_steps > 0 && !roll->frames))
        return cm__fail(err, CM_E_ARG, NAME, -1, -1, "cm_roll_to_notes: NULL or invalid roll");
    cm_status s = check_grid(grid, err);
    if (s) return s;
    cm_roll_render d = r ? *r : cm_roll_render_default();
    if (!(d.qpm >= 4 && d.qpm <= 1000) || d.ppq < 1 || d.ppq > 0x7FFF || d.velocity < 1 || d.velocity > 127 ||
        d.program < 0 || d.program > 127 || d.channel < 0 || d.channel > 15)
        return cm__fail(err, CM_E_ARG, NAME, -1, -1,
                        "render qpm %g, ppq %d, velocity %d, program %d, channel %d; expected qpm 4..1000, ppq "
                        "1..32767, velocity 1..127, program 0..127, channel 0..15",
                        d.qpm, d.ppq, d.velocity, d.program, d.channel);
    /* seconds and quarters per step */
    double sec = grid.steps_per_second > 0 ? 1.0 / grid.steps_per_second : 60.0 / (d.qpm * grid.steps_per_quarter);
    double ticks = sec * d.qpm / 60.0 * d.ppq;
    int64_t n = 0, cap = 0;
    cm_note *v = NULL;
    for (int k = 0; k < CM_ROLL_NUM_KEYS; k++) {
        for (int64_t t = 0; t < roll->n_steps;) {
            if (!roll->frames[t * CM_ROLL_NUM_KEYS + k]) {
                t++;
                continue;
            }
            int64_t a = t;
            while (t < roll->n_steps && roll->frames[t * CM_ROLL_NUM_KEYS + k]) t++;
            if (n == cap) {
                cap = cap ? cap * 2 : 256;
                cm_note *p = realloc(v, (size_t)cap * sizeof *p);
                if (!p) {
                    free(v);
                    return cm__fail(err, CM_E_NOMEM, NAME, -1, -1, "out of memory for %lld notes", (long long)cap);
                }
                v = p;
            }
            double ta = floor((double)a * ticks + 0.5), tb = floor((double)t * ticks + 0.5);
            if (tb > (double)CM_MAX_TICK) tb = (double)CM_MAX_TICK;
            if (ta > tb) ta = tb;
            v[n++] = (cm_note){.start_tick = (int64_t)ta, .end_tick = (int64_t)tb, .start_s = (double)a * sec,
                               .end_s = (double)t * sec, .pitch = (uint8_t)(CM_ROLL_MIN_PITCH + k),
                               .velocity = (uint8_t)d.velocity, .channel = (uint8_t)d.channel,
                               .program = (uint8_t)d.program};
        }
    }
    s = cm_notes_from_array(out, v, n, err);
    free(v);
    return s;
}

/* ---- the text format: reading --------------------------------------------------------------- */
void cm_poly_free(cm_poly *p) {
    if (!p) return;
    for (int64_t i = 0; i < p->n_pieces; i++) cm_roll_free(&p->pieces[i]);
    free(p->pieces);
    memset(p, 0, sizeof *p);
}

typedef struct reader {
    const char *buf;
    size_t len;
    const char *name;
    cm_error *err;
    int64_t line;
    size_t line_start;
} reader;

static cm_status syntax(reader *rd, size_t at, const char *fmt, ...) CM__PRINTF(3, 4);
static cm_status syntax(reader *rd, size_t at, const char *fmt, ...) {
    if (!rd->err) return CM_E_POLY_SYNTAX;
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    cm__fail(rd->err, CM_E_POLY_SYNTAX, rd->name, -1, -1, "line %lld, column %lld: %s", (long long)rd->line,
             (long long)(at - rd->line_start + 1), what);
    rd->err->offset = (int64_t)at;
    return CM_E_POLY_SYNTAX;
}

/* A piece being read: frames grow a step at a time. */
typedef struct piecebuf {
    uint8_t *f;
    int64_t n, cap;
} piecebuf;

/* The error for a character that cannot stand at position i of a step line. */
static cm_status bad_char(reader *rd, size_t i) {
    unsigned char c = (unsigned char)rd->buf[i];
    if (c == '-') return syntax(rd, i, "'-' marks a silent step and must stand alone on its line");
    if (c == ' ') return syntax(rd, i, "leading space; a step starts with a pitch or is '-'");
    if (c == '\r')
        return syntax(rd, i, "carriage return: the format uses '\\n' line ends (convert the file, e.g. with "
                      "dos2unix)");
    if (c == '\t') return syntax(rd, i, "tab: pitches are separated by single spaces");
    if (c >= 0x20 && c < 0x7F)
        return syntax(rd, i, "unexpected character '%c'; expected a pitch 21..108, a space or '-'", c);
    return syntax(rd, i, "unexpected byte 0x%02x; expected a pitch 21..108, a space or '-'", c);
}

/* Parses the step line [ls, le) into row (zeroed, CM_ROLL_NUM_KEYS bytes). */
static cm_status parse_step(reader *rd, size_t ls, size_t le, uint8_t *row) {
    const char *b = rd->buf;
    if (le - ls == 1 && b[ls] == '-') return CM_OK;
    int prev = -1;
    for (size_t i = ls; i < le;) {
        if (b[i] < '0' || b[i] > '9') return bad_char(rd, i);
        size_t j = i;
        long v = 0;
        while (j < le && b[j] >= '0' && b[j] <= '9') {
            if (v < 100000) v = v * 10 + (b[j] - '0');
            j++;
        }
        if (j < le && b[j] != ' ') return bad_char(rd, j);
        if (b[i] == '0' && j - i > 1) return syntax(rd, i, "pitch '%.*s' has a leading zero", (int)(j - i), b + i);
        if (v < CM_ROLL_MIN_PITCH || v > CM_ROLL_MAX_PITCH)
            return syntax(rd, i, "pitch %.*s outside %d..%d (the 88 piano keys)", (int)(j - i > 12 ? 12 : j - i), b + i,
                          CM_ROLL_MIN_PITCH, CM_ROLL_MAX_PITCH);
        if (v == prev) return syntax(rd, i, "pitch %ld listed twice in one step", v);
        if (v < prev) return syntax(rd, i, "pitch %ld after %d: the pitches of a step must be in ascending order", v, prev);
        row[v - CM_ROLL_MIN_PITCH] = 1;
        prev = (int)v;
        if (j == le) break;
        /* b[j] is a space */
        if (j + 1 == le) return syntax(rd, j, "trailing space at the end of the line");
        if (b[j + 1] == ' ') return syntax(rd, j + 1, "two spaces: pitches are separated by single spaces");
        i = j + 1;
    }
    return CM_OK;
}

static cm_status push_piece(reader *rd, cm_poly *out, piecebuf *pb, int64_t *cap) {
    if (out->n_pieces >= CM_POLY_MAX_PIECES)
        return cm__fail(rd->err, CM_E_LIMIT, rd->name, -1, -1, "line %lld: more than %d pieces (CM_POLY_MAX_PIECES)",
                        (long long)rd->line, CM_POLY_MAX_PIECES);
    if (out->n_pieces == *cap) {
        int64_t nc = *cap ? *cap * 2 : 16;
        cm_roll *p = realloc(out->pieces, (size_t)nc * sizeof *p);
        if (!p) return cm__fail(rd->err, CM_E_NOMEM, rd->name, -1, -1, "out of memory for %lld pieces", (long long)nc);
        out->pieces = p;
        *cap = nc;
    }
    uint8_t *f = realloc(pb->f, (size_t)pb->n * CM_ROLL_NUM_KEYS);  /* shrink to fit */
    out->pieces[out->n_pieces++] = (cm_roll){f ? f : pb->f, pb->n};
    *pb = (piecebuf){0};
    return CM_OK;
}

cm_status cm_poly_read_mem(const void *buf, size_t len, const char *name, cm_poly *out, cm_error *err) {
    if (!out) return cm__fail(err, CM_E_ARG, name, -1, -1, "cm_poly_read_mem: NULL out");
    memset(out, 0, sizeof *out);
    if (!buf && len > 0) return cm__fail(err, CM_E_ARG, name, -1, -1, "cm_poly_read_mem: NULL buffer");
    if (len > CM_POLY_MAX_FILE_BYTES)
        return cm__fail(err, CM_E_LIMIT, name, -1, -1, "%zu bytes, more than the limit of %u (CM_POLY_MAX_FILE_BYTES)",
                        len, CM_POLY_MAX_FILE_BYTES);
    reader rd = {buf, len, name ? name : "<memory>", err, 1, 0};
    piecebuf pb = {0};
    int64_t cap = 0;
    bool in_piece = false;
    cm_status s = CM_OK;
    size_t pos = 0;
    while (!s && pos < len) {
        const char *nl = memchr(rd.buf + pos, '\n', len - pos);
        size_t le = nl ? (size_t)(nl - rd.buf) : len;
        rd.line_start = pos;
        if (!nl) {
            s = syntax(&rd, le, "the file does not end with a newline (every step, the last one too, ends with '\\n')");
            break;
        }
        if (le == pos) {  /* a blank line */
            if (!in_piece)
                s = syntax(&rd, pos, rd.line == 1 ? "blank line before the first piece"
                                                  : "a second blank line: pieces are separated by exactly one blank "
                                                    "line");
            else
                s = push_piece(&rd, out, &pb, &cap);
            in_piece = false;
        } else {
            if (pb.n >= CM_ROLL_MAX_STEPS) {
                s = cm__fail(err, CM_E_LIMIT, rd.name, (int64_t)pos, -1,
                             "line %lld: a piece of more than %lld steps (CM_ROLL_MAX_STEPS)", (long long)rd.line,
                             (long long)CM_ROLL_MAX_STEPS);
                break;
            }
            if (pb.n == pb.cap) {
                int64_t nc = pb.cap ? pb.cap * 2 : 64;
                if (nc > CM_ROLL_MAX_STEPS) nc = CM_ROLL_MAX_STEPS;
                uint8_t *p = realloc(pb.f, (size_t)nc * CM_ROLL_NUM_KEYS);
                if (!p) {
                    s = cm__fail(err, CM_E_NOMEM, rd.name, -1, -1, "out of memory for a piece of %lld steps",
                                 (long long)nc);
                    break;
                }
                pb.f = p;
                pb.cap = nc;
            }
            uint8_t *row = pb.f + pb.n * CM_ROLL_NUM_KEYS;
            memset(row, 0, CM_ROLL_NUM_KEYS);
            s = parse_step(&rd, pos, le, row);
            pb.n++;
            in_piece = true;
        }
        pos = le + 1;
        rd.line++;
    }
    if (!s && in_piece) s = push_piece(&rd, out, &pb, &cap);
    else if (!s && out->n_pieces > 0) {
        rd.line--;
        rd.line_start = len - 1;
        s = syntax(&rd, len - 1, "blank line after the last piece (the file ends right after the last step's "
                   "newline)");
    }
    free(pb.f);
    if (s) cm_poly_free(out);
    return s;
}

cm_status cm_poly_read_file(const char *path, cm_poly *out, cm_error *err) {
    if (out) memset(out, 0, sizeof *out);
    if (!path || !out)
        return cm__fail(err, CM_E_ARG, path, -1, -1, "cm_poly_read_file: NULL %s", path ? "out" : "path");
    uint8_t *buf;
    size_t n;
    cm_status s = cm__read_whole(path, CM_POLY_MAX_FILE_BYTES, "CM_POLY_MAX_FILE_BYTES", &buf, &n, err);
    if (s) return s;
    s = cm_poly_read_mem(buf, n, path, out, err);
    free(buf);
    return s;
}

/* ---- the text format: writing --------------------------------------------------------------- */
static size_t step_chars(const uint8_t *row) {
    size_t c = 0;
    int k = 0;
    for (int i = 0; i < CM_ROLL_NUM_KEYS; i++)
        if (row[i]) {
            int p = CM_ROLL_MIN_PITCH + i;
            c += (size_t)(p >= 100 ? 3 : 2) + (k++ > 0);
        }
    return k ? c : 1;
}

cm_status cm_poly_write_mem(const cm_poly *p, char **out, size_t *len, cm_error *err) {
    if (out) *out = NULL;
    if (len) *len = 0;
    if (!p || !out || !len || p->n_pieces < 0 || (p->n_pieces > 0 && !p->pieces))
        return cm__fail(err, CM_E_ARG, NAME, -1, -1, "cm_poly_write_mem: NULL or invalid argument");
    size_t total = 0;
    for (int64_t i = 0; i < p->n_pieces; i++) {
        const cm_roll *r = &p->pieces[i];
        if (r->n_steps <= 0 || r->n_steps > CM_ROLL_MAX_STEPS || !r->frames)
            return cm__fail(err, CM_E_ARG, NAME, -1, -1, "piece %lld has %lld steps; the format holds pieces of 1..%lld "
                            "steps", (long long)i, (long long)r->n_steps, (long long)CM_ROLL_MAX_STEPS);
        for (int64_t t = 0; t < r->n_steps; t++) total += step_chars(cm_roll_frame(r, t)) + 1;
        total += i > 0;
    }
    char *b = malloc(total > 0 ? total : 1);
    if (!b) return cm__fail(err, CM_E_NOMEM, NAME, -1, -1, "out of memory for %zu bytes", total);
    size_t w = 0;
    for (int64_t i = 0; i < p->n_pieces; i++) {
        const cm_roll *r = &p->pieces[i];
        if (i > 0) b[w++] = '\n';
        for (int64_t t = 0; t < r->n_steps; t++) {
            const uint8_t *row = cm_roll_frame(r, t);
            int k = 0;
            for (int j = 0; j < CM_ROLL_NUM_KEYS; j++) {
                if (!row[j]) continue;
                int pitch = CM_ROLL_MIN_PITCH + j;
                if (k++ > 0) b[w++] = ' ';
                if (pitch >= 100) b[w++] = (char)('0' + pitch / 100);
                b[w++] = (char)('0' + pitch / 10 % 10);
                b[w++] = (char)('0' + pitch % 10);
            }
            if (!k) b[w++] = '-';
            b[w++] = '\n';
        }
    }
    *out = b;
    *len = w;
    return CM_OK;
}

cm_status cm_poly_write_file(const cm_poly *p, const char *path, cm_error *err) {
    if (!path) return cm__fail(err, CM_E_ARG, "<null>", -1, -1, "cm_poly_write_file: NULL path");
    char *text;
    size_t n;
    cm_status s = cm_poly_write_mem(p, &text, &n, err);
    if (s) return s;
    s = cm_write_file_atomic(path, text, n, err);
    free(text);
    return s;
}
