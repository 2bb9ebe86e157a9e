/* corpora/stats.c — cp_stats: what a corpus build did. Skips, text formatting, the stats and
 * log sections of the corpus file, and pitch histograms of encoded pieces.
 *
 * The stats section (CP__STATS_BYTES = 1160 bytes, little-endian u64 unless noted):
 *   0 files found  8 files ignored  16 files used  24 failed  32 empty  40 duplicate
 *   48 pieces too short  56 notes  64 pieces[3]  88 steps[3]  112 f64 seconds[3]
 *   136 pitch histogram [128]
 * The log section: one line per skip, "KIND\tNAME\tREASON\n", KIND failed/empty/duplicate. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corpora/internal.h"

void cp_stats_free(cp_stats *s) {
    if (!s) return;
    for (int64_t i = 0; i < s->n_skips; i++) {
        free(s->skips[i].name);
        free(s->skips[i].reason);
    }
    free(s->skips);
    memset(s, 0, sizeof *s);
}

const char *cp_skip_kind_name(cp_skip_kind k) {
    switch (k) {
    case CP_SKIP_FAILED: return "failed";
    case CP_SKIP_EMPTY: return "empty";
    case CP_SKIP_DUPLICATE: return "duplicate";
    }
    return "unknown";
}

/* A copy of n bytes of s with tabs, newlines and other control characters as spaces. */
static char *one_line(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        d[i] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    d[n] = 0;
    return d;
}

ct_status cp_stats_add_skip(cp_stats *s, cp_skip_kind kind, const char *name, const char *reason) {
    if (!s) return CT_E_NULL;
    if (!name) name = "";
    if (!reason) reason = "";
    int64_t n_now = s->n_skips;   /* capacity: 8, then the next power of two */
    if (n_now == 0 || (n_now >= 8 && (n_now & (n_now - 1)) == 0)) {
        int64_t cap = n_now == 0 ? 8 : 2 * n_now;
        cp_skip *v = realloc(s->skips, (size_t)cap * sizeof *v);
        if (!v) return CT_E_NOMEM;
        s->skips = v;
    }
    char *n = one_line(name, strlen(name)), *r = one_line(reason, strlen(reason));
    if (!n || !r) {
        free(n);
        free(r);
        return CT_E_NOMEM;
    }
    s->skips[s->n_skips++] = (cp_skip){kind, n, r};
    if (kind == CP_SKIP_FAILED) s->files_failed++;
    else if (kind == CP_SKIP_EMPTY) s->files_empty++;
    else s->files_duplicate++;
    return CT_OK;
}

/* ---- sections ------------------------------------------------------------------------------- */
void cp__stats_encode(const cp_stats *s, uint8_t out[CP__STATS_BYTES]) {
    const int64_t head[8] = {s->files_found, s->files_ignored, s->files_used, s->files_failed,
                             s->files_empty, s->files_duplicate, s->pieces_too_short, s->notes};
    for (int i = 0; i < 8; i++) cp__put_u64(out + 8 * i, (uint64_t)head[i]);
    for (int k = 0; k < 3; k++) {
        cp__put_u64(out + 64 + 8 * k, (uint64_t)s->pieces[k]);
        cp__put_u64(out + 88 + 8 * k, (uint64_t)s->steps[k]);
        cp__put_f64(out + 112 + 8 * k, s->seconds[k]);
    }
    for (int p = 0; p < 128; p++) cp__put_u64(out + 136 + 8 * p, (uint64_t)s->pitch_hist[p]);
}

void cp__stats_decode(const uint8_t in[CP__STATS_BYTES], cp_stats *s) {
    int64_t *head[8] = {&s->files_found, &s->files_ignored, &s->files_used, &s->files_failed,
                        &s->files_empty, &s->files_duplicate, &s->pieces_too_short, &s->notes};
    for (int i = 0; i < 8; i++) *head[i] = (int64_t)cp__get_u64(in + 8 * i);
    for (int k = 0; k < 3; k++) {
        s->pieces[k] = (int64_t)cp__get_u64(in + 64 + 8 * k);
        s->steps[k] = (int64_t)cp__get_u64(in + 88 + 8 * k);
        s->seconds[k] = cp__get_f64(in + 112 + 8 * k);
    }
    for (int p = 0; p < 128; p++) s->pitch_hist[p] = (int64_t)cp__get_u64(in + 136 + 8 * p);
}

ct_status cp__stats_log(const cp_stats *s, char **buf, size_t *len) {
    *buf = NULL;
    *len = 0;
    size_t total = 0;
    for (int64_t i = 0; i < s->n_skips; i++)
        total += strlen(cp_skip_kind_name(s->skips[i].kind)) + strlen(s->skips[i].name) +
                 strlen(s->skips[i].reason) + 3;
    char *b = malloc(total + 1);
    if (!b) return CT_E_NOMEM;
    size_t at = 0;
    for (int64_t i = 0; i < s->n_skips; i++)
        at += (size_t)sprintf(b + at, "%s\t%s\t%s\n", cp_skip_kind_name(s->skips[i].kind), s->skips[i].name,
                              s->skips[i].reason);
    *buf = b;
    *len = at;
    return CT_OK;
}

ct_status cp__stats_parse_log(const char *buf, size_t len, cp_stats *s, size_t *bad_at) {
    /* the counters come from the stats section: parse into a scratch struct, keep its skips */
    cp_stats t;
    memset(&t, 0, sizeof t);
    size_t at = 0;
    while (at < len) {
        const char *line = buf + at;
        const char *nl = memchr(line, '\n', len - at);
        const char *tab1 = nl ? memchr(line, '\t', (size_t)(nl - line)) : NULL;
        const char *tab2 = tab1 ? memchr(tab1 + 1, '\t', (size_t)(nl - tab1 - 1)) : NULL;
        cp_skip_kind kind = CP_SKIP_FAILED;
        bool kind_ok = false;
        if (tab1) {
            for (int k = 0; k < 3; k++) {
                const char *kn = cp_skip_kind_name((cp_skip_kind)k);
                if ((size_t)(tab1 - line) == strlen(kn) && memcmp(line, kn, strlen(kn)) == 0) {
                    kind = (cp_skip_kind)k;
                    kind_ok = true;
                }
            }
        }
        if (!nl || !tab2 || !kind_ok || memchr(line, 0, (size_t)(nl - line))) {
            *bad_at = at;
            cp_stats_free(&t);
            return CT_E_FORMAT;
        }
        char *name = one_line(tab1 + 1, (size_t)(tab2 - tab1 - 1));
        char *reason = one_line(tab2 + 1, (size_t)(nl - tab2 - 1));
        ct_status st = name && reason ? cp_stats_add_skip(&t, kind, name, reason) : CT_E_NOMEM;
        free(name);
        free(reason);
        if (st != CT_OK) {
            cp_stats_free(&t);
            return st;
        }
        at = (size_t)(nl - buf) + 1;
    }
    s->skips = t.skips;
    s->n_skips = t.n_skips;
    s->files_failed = t.files_failed;
    s->files_empty = t.files_empty;
    s->files_duplicate = t.files_duplicate;
    return CT_OK;
}

/* ---- pitch histograms ----------------------------------------------------------------------- */
void cp__pitch_onsets_tokens(const cp_encoding *e, const int32_t *tokens, int64_t n, int64_t hist[128]) {
    if (e->kind == CP_MELODY) {
        for (int64_t i = 0; i < n; i++) {
            int ev = cm_melody_token_to_event(e->melody.range, tokens[i]);
            if (ev >= 0 && ev < 128) hist[ev]++;
        }
    } else if (e->kind == CP_PERFORMANCE) {
        for (int64_t i = 0; i < n; i++)
            if (tokens[i] >= CM_PERF_NOTE_ON_OFFSET && tokens[i] < CM_PERF_NOTE_ON_OFFSET + 128)
                hist[tokens[i] - CM_PERF_NOTE_ON_OFFSET]++;
    }
}

void cp__pitch_onsets_frames(const uint8_t *frames, int64_t n, int64_t hist[128]) {
    for (int64_t t = 0; t < n; t++)
        for (int k = 0; k < CM_ROLL_NUM_KEYS; k++)
            if (frames[t * CM_ROLL_NUM_KEYS + k] && (t == 0 || !frames[(t - 1) * CM_ROLL_NUM_KEYS + k]))
                hist[CM_ROLL_MIN_PITCH + k]++;
}

/* ---- text ----------------------------------------------------------------------------------- */
typedef struct out {
    char *buf;
    size_t cap, len;   /* len: what would have been written */
} out;

static void put(out *o, const char *fmt, ...) CP__PRINTF(2, 3);
static void put(out *o, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = o->len < o->cap ? o->cap - o->len : 0;
    int k = vsnprintf(room ? o->buf + o->len : NULL, room, fmt, ap);
    va_end(ap);
    if (k > 0) o->len += (size_t)k;
}

static const char *const PITCH_CLASS[12] = {"C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"};

int cp_stats_format(const cp_stats *s, const cp_encoding *e, int max_skips, char *buf, size_t n) {
    out o = {buf, buf ? n : 0, 0};
    if (o.cap) buf[0] = 0;
    if (!s) {
        put(&o, "(no statistics)\n");
        return (int)o.len;
    }
    if (e) {
        char d[512];
        cp_encoding_describe(e, d, sizeof d);
        put(&o, "encoding: %s\n", d);
    }
    put(&o, "files:    %lld MIDI files: %lld used, %lld failed, %lld empty, %lld duplicate; %lld other files "
         "ignored\n", (long long)s->files_found, (long long)s->files_used, (long long)s->files_failed,
         (long long)s->files_empty, (long long)s->files_duplicate, (long long)s->files_ignored);
    put(&o, "notes:    %lld in the used files\n", (long long)s->notes);
    int64_t pieces = s->pieces[0] + s->pieces[1] + s->pieces[2], steps = s->steps[0] + s->steps[1] + s->steps[2];
    double secs = s->seconds[0] + s->seconds[1] + s->seconds[2];
    put(&o, "pieces:   %lld (train %lld, valid %lld, test %lld); %lld shorter than the minimum left out\n",
        (long long)pieces, (long long)s->pieces[0], (long long)s->pieces[1], (long long)s->pieces[2],
        (long long)s->pieces_too_short);
    put(&o, "%-9s %lld (train %lld, valid %lld, test %lld)\n", e && e->kind == CP_PIANOROLL ? "frames:" : "tokens:",
        (long long)steps, (long long)s->steps[0], (long long)s->steps[1], (long long)s->steps[2]);
    put(&o, "duration: %.2f h (train %.2f h, valid %.2f h, test %.2f h)\n", secs / 3600, s->seconds[0] / 3600,
        s->seconds[1] / 3600, s->seconds[2] / 3600);
    int64_t onsets = 0;
    double sum = 0;
    int lo = -1, hi = -1;
    for (int p = 0; p < 128; p++) {
        if (!s->pitch_hist[p]) continue;
        onsets += s->pitch_hist[p];
        sum += (double)p * (double)s->pitch_hist[p];
        if (lo < 0) lo = p;
        hi = p;
    }
    if (!onsets) {
        put(&o, "pitches:  no note onsets\n");
    } else {
        put(&o, "pitches:  %lld note onsets, lowest %s%d (%d), highest %s%d (%d), mean %.1f\n", (long long)onsets,
            PITCH_CLASS[lo % 12], lo / 12 - 1, lo, PITCH_CLASS[hi % 12], hi / 12 - 1, hi, sum / (double)onsets);
        put(&o, "  octave");
        for (int c = 0; c < 12; c++) put(&o, " %8s", PITCH_CLASS[c]);
        put(&o, "\n");
        for (int oct = lo / 12; oct <= hi / 12; oct++) {
            put(&o, "  %6d", oct - 1);
            for (int c = 0; c < 12; c++) {
                int p = oct * 12 + c;
                if (p < 128) put(&o, " %8lld", (long long)s->pitch_hist[p]);
            }
            put(&o, "\n");
        }
    }
    if (s->n_skips) {
        put(&o, "skipped:  %lld files\n", (long long)s->n_skips);
        int64_t shown = max_skips < 0 || max_skips > s->n_skips ? s->n_skips : max_skips;
        for (int64_t i = 0; i < shown; i++)
            put(&o, "  %-9s %s: %s\n", cp_skip_kind_name(s->skips[i].kind), s->skips[i].name, s->skips[i].reason);
        if (shown < s->n_skips) put(&o, "  ... and %lld more\n", (long long)(s->n_skips - shown));
    }
    return (int)o.len;
}

int cp_stats_write(const cp_stats *s, const cp_encoding *e, int max_skips, FILE *f) {
    if (!f) return -1;
    int n = cp_stats_format(s, e, max_skips, NULL, 0);
    if (n < 0) return -1;
    char *b = malloc((size_t)n + 1);
    if (!b) return -1;
    cp_stats_format(s, e, max_skips, b, (size_t)n + 1);
    size_t w = fwrite(b, 1, (size_t)n, f);
    free(b);
    return w == (size_t)n ? n : -1;
}
