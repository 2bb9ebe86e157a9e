/* corpora/poly_import.c — the polyphonic benchmark text layout -> a piano-roll corpus file
 * (see poly_import.h). */
#include "corpora/poly_import.h"
#include "corpora/internal.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char *const SPLIT_FILES[CP_NUM_SPLITS] = {"train.txt", "valid.txt", "test.txt"};

cp_poly_import_opts cp_poly_import_defaults(void) {
    cp_poly_import_opts o;
    memset(&o, 0, sizeof o);
    o.steps_per_quarter = 2;
    return o;
}

static bool is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool split_path(char *buf, size_t n, const char *dir, int split) {
    int k = snprintf(buf, n, "%s/%s", dir, SPLIT_FILES[split]);
    return k > 0 && (size_t)k < n;
}

bool cp_poly_is_dir(const char *dir) {
    char path[4096];
    return dir && split_path(path, sizeof path, dir, CP_TRAIN) && is_file(path);
}

ct_status cp_poly_import_dir(const char *dir, const char *out, const cp_poly_import_opts *o,
                             cp_poly_import_result *res, cp_error *err) {
    cp_poly_import_opts opts = o ? *o : cp_poly_import_defaults();
    if (!dir || !out) return cp__fail(err, CT_E_ARG, "poly import: %s is NULL", !dir ? "the folder" : "the output path");
    if (opts.steps_per_quarter < 1 || opts.steps_per_quarter > 96)
        return cp__fail(err, CT_E_ARG, "poly import: steps_per_quarter %d is out of range (expected 1..96)",
                    opts.steps_per_quarter);
    char path[4096];
    if (!split_path(path, sizeof path, dir, CP_TRAIN)) return cp__fail(err, CT_E_ARG, "%s: the path is too long", dir);
    if (!is_file(path))
        return cp__fail(err, CT_E_IO, "%s: no train.txt there (a polyphonic benchmark folder holds train.txt, "
                    "valid.txt and test.txt: one time step per line, pieces separated by a blank line)", dir);
    cp_encoding e = cp_encoding_default(CP_PIANOROLL);
    e.roll_grid.steps_per_quarter = opts.steps_per_quarter;
    e.roll_grid.steps_per_second = 0;
    e.min_steps = 1;
    cp_writer *w = NULL;
    ct_status s = cp_writer_open(&w, out, &e, 0, 0, err);
    if (s != CT_OK) return s;
    cp_poly_import_result r;
    memset(&r, 0, sizeof r);
    int32_t file_index = 0;
    for (int sp = 0; sp < CP_NUM_SPLITS; sp++) {
        split_path(path, sizeof path, dir, sp);
        if (!is_file(path)) continue;
        r.present[sp] = true;
        cm_poly p;
        memset(&p, 0, sizeof p);
        cm_error me;
        memset(&me, 0, sizeof me);
        cm_status ms = cm_poly_read_file(path, &p, &me);
        if (ms != CM_OK) {
            cp_writer_abort(w);
            ct_status cs = ms == CM_E_NOMEM ? CT_E_NOMEM : ms == CM_E_IO ? CT_E_IO : CT_E_FORMAT;
            if (me.message[0]) return cp__fail(err, cs, "%s", me.message);
            return cp__fail(err, cs, "%s: cannot be read", path);
        }
        for (int64_t i = 0; i < p.n_pieces; i++) {
            char name[64];
            snprintf(name, sizeof name, "%s#%lld", SPLIT_FILES[sp], (long long)i);
            const cm_roll *roll = &p.pieces[i];
            cp_piece_in pi;
            memset(&pi, 0, sizeof pi);
            pi.name = name;
            pi.content_hash = cp_hash_bytes(roll->frames, (size_t)roll->n_steps * CM_ROLL_NUM_KEYS);
            pi.split = (cp_split)sp;
            pi.piece = (int32_t)i;
            pi.file_index = file_index;
            pi.instrument = -1;
            pi.duration_s = (double)roll->n_steps * 0.5 / opts.steps_per_quarter;   /* 120 qpm */
            pi.frames = roll->frames;
            pi.len = roll->n_steps;
            s = cp_writer_add(w, &pi, err);
            if (s != CT_OK) {
                cm_poly_free(&p);
                cp_writer_abort(w);
                return s;
            }
            r.pieces[sp]++;
            r.steps[sp] += roll->n_steps;
        }
        file_index++;
        cm_poly_free(&p);
    }
    s = cp_writer_finish(w, NULL, err);
    if (s != CT_OK) return s;
    if (res) *res = r;
    return CT_OK;
}
