/* tests/tools/poly_check.c — reads polyphonic piano-roll text files (JSB Chorales, Nottingham,
 * MuseData, Piano-midi.de) with cantor's strict reader, writes each back to memory and checks
 * that the bytes are identical, and prints one statistics row per file in the layout of the
 * corpus README's table, for tests/corpus_check_polyphonic.sh to compare:
 *   | DATASET | SPLIT | pieces | time steps | predicted steps | len min..max | pitch min..max |
 *     silent steps | max notes/step | mean notes/step | bytes |
 * DATASET is the file's folder name, SPLIT its name without ".txt". A corpus-level check, not a
 * unit test. Usage: poly_check FILE...   Exit status: 0 when every file passed, 1 otherwise,
 * 2 for a usage error. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/pianoroll.h"

/* 13807 -> "13,807" */
static const char *commas(long long v, char *buf, size_t cap) {
    char raw[32];
    snprintf(raw, sizeof raw, "%lld", v);
    size_t n = strlen(raw), w = 0;
    for (size_t i = 0; i < n && w + 2 < cap; i++) {
        if (i > 0 && (n - i) % 3 == 0) buf[w++] = ',';
        buf[w++] = raw[i];
    }
    buf[w] = '\0';
    return buf;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 20, n = 0;
    char *b = malloc(cap);
    while (b) {
        n += fread(b + n, 1, cap - n, f);
        if (n < cap) break;
        char *nb = realloc(b, cap *= 2);
        if (!nb) free(b);
        b = nb;
    }
    fclose(f);
    *len = n;
    return b;
}

static int check(const char *path) {
    cm_poly p;
    cm_error err;
    if (cm_poly_read_file(path, &p, &err)) {
        fprintf(stderr, "FAIL %s\n", err.message);
        return 1;
    }
    size_t len = 0, wlen = 0;
    char *orig = slurp(path, &len), *text = NULL;
    int bad = 0;
    if (!orig || cm_poly_write_mem(&p, &text, &wlen, &err)) {
        fprintf(stderr, "FAIL %s: cannot read it again or write it back\n", path);
        bad = 1;
    } else if (wlen != len || memcmp(orig, text, len) != 0) {
        size_t i = 0;
        while (i < len && i < wlen && orig[i] == text[i]) i++;
        fprintf(stderr, "FAIL %s: written back, it differs from byte %zu on (%zu vs %zu bytes)\n", path, i, wlen, len);
        bad = 1;
    }
    long long steps = 0, silent = 0, notes = 0;
    long long min_len = -1, max_len = 0;
    int min_p = 999, max_p = -1, max_notes = 0;
    for (int64_t i = 0; i < p.n_pieces; i++) {
        const cm_roll *r = &p.pieces[i];
        steps += r->n_steps;
        if (min_len < 0 || r->n_steps < min_len) min_len = r->n_steps;
        if (r->n_steps > max_len) max_len = r->n_steps;
        for (int64_t t = 0; t < r->n_steps; t++) {
            int k = 0;
            for (int j = 0; j < CM_ROLL_NUM_KEYS; j++) {
                if (!cm_roll_frame(r, t)[j]) continue;
                k++;
                if (CM_ROLL_MIN_PITCH + j < min_p) min_p = CM_ROLL_MIN_PITCH + j;
                if (CM_ROLL_MIN_PITCH + j > max_p) max_p = CM_ROLL_MIN_PITCH + j;
            }
            notes += k;
            silent += k == 0;
            if (k > max_notes) max_notes = k;
        }
    }
    /* DATASET/SPLIT.txt */
    char dataset[256] = "?", split[256] = "?";
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    snprintf(split, sizeof split, "%s", base);
    char *dot = strstr(split, ".txt");
    if (dot) *dot = '\0';
    if (slash) {
        const char *d = slash;
        while (d > path && d[-1] != '/') d--;
        snprintf(dataset, sizeof dataset, "%.*s", (int)(slash - d), d);
    }
    char a[32], b[32], c[32];
    printf("| %s | %s | %lld | %s | %s | %lld..%lld | %d..%d | %s | %d | %.2f | %s |\n", dataset, split,
           (long long)p.n_pieces, commas(steps, a, sizeof a), commas(steps - p.n_pieces, b, sizeof b), min_len,
           max_len, min_p, max_p, commas(silent, c, sizeof c), max_notes, steps ? (double)notes / steps : 0.0,
           commas((long long)len, (char[32]){0}, 32));
    free(orig);
    free(text);
    cm_poly_free(&p);
    return bad;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: poly_check FILE...\n");
        return 2;
    }
    int bad = 0;
    for (int i = 1; i < argc; i++) bad |= check(argv[i]);
    return bad;
}
