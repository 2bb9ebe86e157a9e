/* corpora/poly_import.h — the polyphonic piano-roll benchmarks (JSB Chorales, Nottingham,
 * MuseData, Piano-midi.de; Boulanger-Lewandowski et al. 2012) as a corpus file.
 *
 *   cp_poly_import_opts o = cp_poly_import_defaults();
 *   o.steps_per_quarter = 1;                                   // JSB: quarter notes
 *   cp_poly_import_result res;
 *   if (cp_poly_import_dir("jsb_chorales", "jsb.corpus", &o, &res, &err) != CT_OK) ...
 *
 * THE LAYOUT. DIR holds train.txt, valid.txt and test.txt in the text format of
 * audio/pianoroll.h (cm_poly_read_file: one step per line, pitches 21..108 or "-", pieces
 * separated by a blank line). Each file's pieces go, in file order, to the corpus split of the
 * same name: the published splits are kept exactly (no hash split, no dedupe). train.txt is
 * required; valid.txt and test.txt may be absent (their split is then empty, and res says so).
 * A file that is present but malformed fails the import with the reader's message (file, line).
 *
 * THE ENCODING. Piano roll (CP_PIANOROLL, 88 keys) on a grid of steps_per_quarter steps per
 * quarter note (steps_per_second 0): the files carry no tempo, so durations are computed at
 * 120 quarter notes per minute. Pieces are named "train.txt#0", "valid.txt#3", ...
 *
 * Nothing here prints; the corpus file is written atomically (cp_writer). */
#ifndef CANTOR_CORPORA_POLY_IMPORT_H
#define CANTOR_CORPORA_POLY_IMPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "corpora/corpus.h"

typedef struct cp_poly_import_opts {
    int steps_per_quarter;   /* 1..96; the default 2 (eighth notes, as Nottingham, MuseData and
                                Piano-midi.de); JSB Chorales is 1 (quarter notes) */
} cp_poly_import_opts;

cp_poly_import_opts cp_poly_import_defaults(void);

typedef struct cp_poly_import_result {
    int64_t pieces[CP_NUM_SPLITS];   /* pieces per split (train, valid, test) */
    int64_t steps[CP_NUM_SPLITS];    /* time steps per split */
    bool present[CP_NUM_SPLITS];     /* whether the split's file existed */
} cp_poly_import_result;

/* Whether dir holds a train.txt (the polyphonic text layout) — a cheap test, nothing is parsed. */
bool cp_poly_is_dir(const char *dir);
/* Imports dir (the layout above) into the corpus file out. res (may be NULL) is filled on
 * success. CT_OK, or CT_E_ARG (options), CT_E_IO (a file cannot be read or written),
 * CT_E_FORMAT (a malformed text file), CT_E_NOMEM; err names the file. */
ct_status cp_poly_import_dir(const char *dir, const char *out, const cp_poly_import_opts *o,
                             cp_poly_import_result *res, cp_error *err);

#endif
