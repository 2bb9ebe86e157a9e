/* corpora/transforms.h — music augmentations as engine transforms (ct_transform, engine/data.h),
 * written against audio/'s encodings. Each draws its randomness only from the item's
 * generator, so a loader's batches are the same for any worker count; each knows the corpus's
 * encoding (pass cp_corpus_encoding(corpus)) and fails an item of the wrong kind (tokens where
 * frames were expected, a token outside the vocabulary) with CT_E_DTYPE / CT_E_ARG.
 *
 * Augment only the training split: build the transform for the training loader and none for
 * validation and test (the caller decides). cp_augment_defaults() holds the house defaults
 * (STYLE.md): transpose -3..+3 semitones, stretch time by 0.95..1.05 (±5 %).
 *
 *                     melody                performance                piano roll
 *   transpose         pitch tokens shift    note-on/off shift          keys shift
 *   time stretch      UNSUPPORTED (1)       time shifts scale          frames resampled
 *   velocity jitter   UNSUPPORTED (2)       velocity bins move         UNSUPPORTED (2)
 *   random crop       held note restruck    velocity kept, orphan      plain window
 *                     at the window start   note-offs dropped
 * (1) melody tokens count grid steps (16th notes); tempo is not in them, so the constructor
 *     refuses (CT_E_UNSUPPORTED) and cp_augment leaves stretching out for melodies.
 * (2) no velocities in the tokens (or a performance configuration without velocity bins). */
#ifndef CANTOR_CORPORA_TRANSFORMS_H
#define CANTOR_CORPORA_TRANSFORMS_H

#include "corpora/corpus.h"
#include "engine/data.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What transposition does with notes that leave the encoding's range (melody: its
 * [min_pitch, max_pitch); performance: 0..127; piano roll: 21..108). */
typedef enum cp_range_mode {
    CP_RANGE_REDRAW = 0,  /* draw the shift uniformly among the shifts in [lo, hi] that keep
                             every note in range (what re-drawing until one fits gives, in one
                             draw); when none does, the item is left unchanged */
    CP_RANGE_DROP = 1     /* shift uniformly in [lo, hi]; notes that leave the range are dropped:
                             a melody note becomes a rest (a note-off, or no event when nothing
                             sounds), performance note-on/off tokens are removed, roll keys cleared */
} cp_range_mode;

/* Transpose by k semitones, k uniform in [lo, hi] (see cp_range_mode). -127 <= lo <= hi <= 127. */
ct_status cp_transform_transpose(ct_ctx *ctx, ct_transform *out, const cp_encoding *e, int lo, int hi,
                                 cp_range_mode mode);
/* Stretch time by f uniform in [lo, hi] (lo == hi: exactly lo), 0.1 <= lo <= hi <= 10.
 * Performance: every event keeps its order and moves to round(f * its time in steps) (times
 * rounded from the start, so errors do not add up); time shifts are re-cut at max_shift_steps.
 * Piano roll: round(f * len) frames (at least 1), frame j from frame floor((j + 0.5) / f)
 * (nearest neighbour). Melody: CT_E_UNSUPPORTED. */
ct_status cp_transform_time_stretch(ct_ctx *ctx, ct_transform *out, const cp_encoding *e, double lo, double hi);
/* Performance with velocity bins: every VELOCITY event's bin moves by one per-item shift,
 * uniform in [-max_shift, max_shift], plus its own jitter, uniform in [-max_jitter, max_jitter],
 * clamped to 1..num_velocity_bins. 0 <= both <= 127. Otherwise CT_E_UNSUPPORTED. */
ct_status cp_transform_velocity_jitter(ct_ctx *ctx, ct_transform *out, const cp_encoding *e, int max_shift,
                                       int max_jitter);
/* An item longer than max_len keeps a window of at most max_len steps from a uniform start in
 * [0, len - max_len] (shorter items are unchanged and draw nothing); offset grows by the start.
 * Melody: a note held into the window is struck again at its first step. Performance: the
 * velocity in force is put before the first note-on when the window lacks one (the window
 * then holds max_len - 1 steps of the piece), and note-offs of notes opened before the window
 * are dropped. Piano roll: the plain window. max_len >= 2. */
ct_status cp_transform_random_crop(ct_ctx *ctx, ct_transform *out, const cp_encoding *e, int64_t max_len);

typedef struct cp_augment_opts {
    bool transpose;
    int transpose_lo, transpose_hi;
    cp_range_mode transpose_mode;
    bool stretch;                  /* left out for melodies */
    double stretch_lo, stretch_hi;
    bool velocity;                 /* left out unless performance with velocity bins */
    int velocity_shift, velocity_jitter;
    int64_t crop_len;              /* > 0: a random crop (last) */
} cp_augment_opts;

/* transpose -3..+3 (redraw), stretch 0.95..1.05, velocity off (shift 2, jitter 1 when on),
 * no crop. */
cp_augment_opts cp_augment_defaults(void);
/* The training augmentation for encoding e: compose(transpose, stretch, velocity, crop), each
 * where o asks for it and e supports it (so the default works for every encoding). o NULL:
 * the defaults. out owns the composition (ct_transform_free). */
ct_status cp_augment(ct_ctx *ctx, ct_transform *out, const cp_encoding *e, const cp_augment_opts *o);

#ifdef __cplusplus
}
#endif
#endif
