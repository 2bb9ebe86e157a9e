/* corpora/default.c — the default corpus recipe (see default.h): the MIDI files of Debian's
 * openttd-openmsx and simutrans-data packages, found from dpkg's file lists. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "corpora/default.h"
#include "corpora/internal.h"

static const struct {
    const char *package, *dir;
} PACKAGES[CP_DEFAULT_NUM_PACKAGES] = {
    {"openttd-openmsx", "/usr/share/games/openttd/baseset/openmsx"},
    {"simutrans-data", "/usr/share/games/simutrans/music"},
};

const char *cp_default_package(int i) { return i >= 0 && i < CP_DEFAULT_NUM_PACKAGES ? PACKAGES[i].package : NULL; }
const char *cp_default_dir(int i) { return i >= 0 && i < CP_DEFAULT_NUM_PACKAGES ? PACKAGES[i].dir : NULL; }

static char *cat3(const char *a, const char *b, const char *c) {
    size_t na = strlen(a), nb = strlen(b), nc = strlen(c);
    char *d = malloc(na + nb + nc + 1);
    if (!d) return NULL;
    memcpy(d, a, na);
    memcpy(d + na, b, nb);
    memcpy(d + na + nb, c, nc + 1);
    return d;
}

/* dpkg's file list of pkg: info/pkg.list, else info/pkg:ARCH.list. NULL when there is none. */
static FILE *open_list(const char *info, const char *pkg) {
    char *p = cat3(info, "/", pkg);
    char *q = p ? cat3(p, ".list", "") : NULL;
    FILE *f = q ? fopen(q, "r") : NULL;
    free(p);
    free(q);
    if (f) return f;
    DIR *d = opendir(info);
    if (!d) return NULL;
    size_t pl = strlen(pkg);
    struct dirent *de;
    while (!f && (de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n > pl + 6 && strncmp(de->d_name, pkg, pl) == 0 && de->d_name[pl] == ':' &&
            strcmp(de->d_name + n - 5, ".list") == 0) {
            char *path = cat3(info, "/", de->d_name);
            if (path) f = fopen(path, "r");
            free(path);
        }
    }
    closedir(d);
    return f;
}

static bool is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static ct_status missing(int i, cp_error *err) {
    return cp__fail(err, CT_E_IO, "the default corpus is not installed: Debian package %s (General MIDI music in "
                    "%s) is missing; run `make deps` (or: sudo apt-get install --no-install-recommends %s), or build "
                    "a corpus from any folder of MIDI files instead (`cantor corpus build DIR -o FILE`)",
                    PACKAGES[i].package, PACKAGES[i].dir, CP_DEFAULT_PACKAGES);
}

/* Adds package i's files from its dpkg list f. */
static ct_status from_list(int i, FILE *f, const char *root, cp_sources *out, cp_error *err) {
    const char *dir = PACKAGES[i].dir;
    size_t dl = strlen(dir);
    char line[8192];
    int64_t listed = 0, added = 0;
    ct_status s = CT_OK;
    const char *first_missing = NULL;
    char missing_path[8192] = "";
    while (s == CT_OK && fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        if (!n || !cp_is_midi_name(line)) continue;
        listed++;
        char *path = cat3(root, line, "");
        if (!path) return cp__fail(err, CT_E_NOMEM, "out of memory");
        if (!is_file(path)) {
            if (!first_missing) {
                snprintf(missing_path, sizeof missing_path, "%s", path);
                first_missing = missing_path;
            }
            free(path);
            continue;
        }
        /* its name: PACKAGE/path below the install folder (or its base name elsewhere) */
        const char *rel = strncmp(line, dir, dl) == 0 && line[dl] == '/' ? line + dl + 1 : strrchr(line, '/');
        if (rel == NULL) rel = line;
        else if (rel[0] == '/') rel++;
        char *name = cat3(PACKAGES[i].package, "/", rel);
        s = name ? cp_sources_add_file(out, path, name, err) : cp__fail(err, CT_E_NOMEM, "out of memory");
        free(name);
        free(path);
        added++;
    }
    if (s != CT_OK) return s;
    if (listed == 0) return missing(i, err);
    if (first_missing)
        return cp__fail(err, CT_E_IO, "the default corpus is damaged: dpkg lists %lld MIDI files of %s but %lld are "
                        "missing (the first: %s); reinstall it (sudo apt-get install --reinstall %s)",
                        (long long)listed, PACKAGES[i].package, (long long)(listed - added), first_missing,
                        PACKAGES[i].package);
    return CT_OK;
}

ct_status cp_default_sources(const cp_default_opts *o, cp_sources *out, cp_error *err) {
    if (!out) return cp__fail(err, CT_E_NULL, "cp_default_sources: NULL out");
    const char *info = o && o->dpkg_info_dir ? o->dpkg_info_dir : "/var/lib/dpkg/info";
    const char *root = o && o->root ? o->root : "";
    for (int i = 0; i < CP_DEFAULT_NUM_PACKAGES; i++) {
        char *info_dir = info[0] == '/' ? cat3(root, info, "") : cat3(info, "", "");
        if (!info_dir) return cp__fail(err, CT_E_NOMEM, "out of memory");
        FILE *f = open_list(info_dir, PACKAGES[i].package);
        free(info_dir);
        ct_status s;
        if (f) {
            s = from_list(i, f, root, out, err);
            fclose(f);
        } else {
            /* no dpkg list: the install folder, if the files are there anyway */
            char *dir = cat3(root, PACKAGES[i].dir, "");
            char *prefix = cat3(PACKAGES[i].package, "/", "");
            struct stat st;
            int64_t before = out->n;
            if (!dir || !prefix) s = cp__fail(err, CT_E_NOMEM, "out of memory");
            else if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) s = missing(i, err);
            else s = cp_sources_add_dir(out, dir, prefix, err);
            if (s == CT_OK && out->n == before) s = missing(i, err);
            free(dir);
            free(prefix);
        }
        if (s != CT_OK) return s;
    }
    cp__ok(err);
    return CT_OK;
}

ct_status cp_default_build(const cp_default_opts *d, const char *out_path, const cp_build_opts *o, cp_stats *stats,
                           cp_error *err) {
    if (stats) memset(stats, 0, sizeof *stats);
    cp_sources src;
    memset(&src, 0, sizeof src);
    ct_status s = cp_default_sources(d, &src, err);
    if (s == CT_OK) s = cp_build(&src, out_path, o, stats, err);
    cp_sources_free(&src);
    return s;
}
