/* tests/tools/midi_corpus_check.c — parses every MIDI file under a folder (recursively) with
 * cantor's reader, extracts notes and the tempo map, writes each file to memory and reads it
 * back, and prints counts per subfolder. A corpus-level check, not a unit test:
 *   tests/corpus_check_midi.sh [DIR]      (default ../shared/corpora/midi/nottingham)
 * Exit status: 0 when every file parsed and round-tripped, 1 otherwise, 2 for a usage error. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "audio/midi.h"

typedef struct stats {
    char name[256];
    long files, ok, failed, roundtrip_failed, tracks, warnings, missing_eot;
    long long events, notes;
    int min_pitch, max_pitch;
    double seconds;
    long formats[3], smpte, tempo_changes;
} stats;

#define MAX_GROUPS 256
typedef struct report {
    stats groups[MAX_GROUPS];  /* one per first-level subfolder */
    int n_groups;
} report;

static stats *group(report *r, const char *name) {
    for (int i = 0; i < r->n_groups; i++)
        if (strcmp(r->groups[i].name, name) == 0) return &r->groups[i];
    if (r->n_groups == MAX_GROUPS) return &r->groups[MAX_GROUPS - 1];
    stats *g = &r->groups[r->n_groups++];
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", name);
    g->min_pitch = 128;
    g->max_pitch = -1;
    return g;
}

static int is_midi(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".mid") || !strcasecmp(dot, ".midi") || !strcasecmp(dot, ".kar") ||
                   !strcasecmp(dot, ".rmi"));
}

static void check_file(const char *path, stats *g) {
    g->files++;
    cm_error err;
    cm_file *f = NULL;
    if (cm_read_file(path, &f, &err) != CM_OK) {
        g->failed++;
        printf("FAILED  %s\n", err.message);
        return;
    }
    cm_notes n;
    cm_tempo_map m;
    if (cm_notes_extract(f, NULL, &n, &err) != CM_OK || cm_tempo_map_init(&m, f, -1, &err) != CM_OK) {
        g->failed++;
        printf("FAILED  %s: %s\n", path, err.message);
        cm_file_free(f);
        return;
    }
    g->ok++;
    g->tracks += f->n_tracks;
    g->warnings += f->warnings;
    g->missing_eot += f->missing_end_of_track;
    g->formats[f->format]++;
    g->smpte += f->division.ppq == 0;
    g->tempo_changes += m.n_tempos - 1;
    for (int t = 0; t < f->n_tracks; t++) g->events += f->tracks[t].n_events;
    g->notes += n.n_notes;
    g->seconds += n.end_s;
    for (int64_t i = 0; i < n.n_notes; i++) {
        if (n.notes[i].pitch < g->min_pitch) g->min_pitch = n.notes[i].pitch;
        if (n.notes[i].pitch > g->max_pitch) g->max_pitch = n.notes[i].pitch;
    }
    if (f->warnings) printf("warning %s (%d warnings)\n", f->warning, f->warnings);
    /* write to memory with running status and read back: the same events */
    uint8_t *buf = NULL;
    size_t len = 0;
    cm_file *back = NULL;
    int same = cm_write_mem(f, &(cm_write_opts){.running_status = true}, &buf, &len, &err) == CM_OK &&
               cm_read_mem(buf, len, path, &back, &err) == CM_OK && back->n_tracks == f->n_tracks;
    for (int t = 0; same && t < f->n_tracks; t++) {
        const cm_track *a = &f->tracks[t], *b = &back->tracks[t];
        same = a->n_events == b->n_events && a->end_tick == b->end_tick;
        for (int64_t i = 0; same && i < a->n_events; i++)
            same = a->events[i].tick == b->events[i].tick && a->events[i].status == b->events[i].status &&
                   a->events[i].data[0] == b->events[i].data[0] && a->events[i].data[1] == b->events[i].data[1] &&
                   a->events[i].length == b->events[i].length;
    }
    if (!same) {
        g->roundtrip_failed++;
        printf("ROUNDTRIP %s: %s\n", path, err.status ? err.message : "events differ after write + read");
    }
    cm_file_free(back);
    free(buf);
    cm_tempo_map_free(&m);
    cm_notes_free(&n);
    cm_file_free(f);
}

/* Walks dir; files are counted under their first-level subfolder (rel: path below the root). */
static int walk(report *r, const char *dir, const char *top) {
    DIR *d = opendir(dir);
    if (!d) {
        printf("FAILED  %s: cannot open the folder: %s\n", dir, strerror(errno));
        return 1;
    }
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            names = realloc(names, cap * sizeof *names);
            if (!names) return 1;
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    for (size_t i = 0; i + 1 < n; i++) /* sorted: deterministic output */
        for (size_t k = i + 1; k < n; k++)
            if (strcmp(names[k], names[i]) < 0) {
                char *t = names[i];
                names[i] = names[k];
                names[k] = t;
            }
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) bad |= walk(r, path, top ? top : names[i]);
        else if (is_midi(names[i])) check_file(path, group(r, top ? top : "."));
        free(names[i]);
    }
    free(names);
    return bad;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    report *r = calloc(1, sizeof *r);
    if (!r) return 1;
    int bad = walk(r, argv[1], NULL);
    stats total;
    memset(&total, 0, sizeof total);
    total.min_pitch = 128;
    total.max_pitch = -1;
    printf("\n%-16s %6s %6s %6s %6s %9s %9s %7s %8s %7s %6s\n", "folder", "files", "parsed", "failed",
           "tracks", "events", "notes", "pitches", "hours", "tempos", "warn");
    for (int i = 0; i < r->n_groups; i++) {
        stats *g = &r->groups[i];
        printf("%-16s %6ld %6ld %6ld %6ld %9lld %9lld %3d..%-3d %8.2f %7ld %6ld\n", g->name, g->files, g->ok,
               g->failed + g->roundtrip_failed, g->tracks, g->events, g->notes, g->min_pitch, g->max_pitch,
               g->seconds / 3600.0, g->tempo_changes, g->warnings);
        printf("%-16s formats 0/1/2: %ld/%ld/%ld, SMPTE %ld, without End of Track %ld\n", "", g->formats[0],
               g->formats[1], g->formats[2], g->smpte, g->missing_eot);
        total.files += g->files;
        total.ok += g->ok;
        total.failed += g->failed + g->roundtrip_failed;
        total.notes += g->notes;
        total.events += g->events;
    }
    printf("total: %ld files, %ld parsed, %ld failed, %lld events, %lld notes\n", total.files, total.ok,
           total.failed, total.events, total.notes);
    free(r);
    if (total.files == 0) {
        printf("no MIDI files found under %s\n", argv[1]);
        return 1;
    }
    return bad || total.failed ? 1 : 0;
}
