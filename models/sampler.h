/* models/sampler.h — generation from a composer (models/composer.h), step by step, with no
 * graph and no tensor allocation per step.
 *
 * HOW A STEP WORKS. The RNN advances one step with ct_rnn_step_f32 (engine/rnn.h) on the
 * input (an embedding row, or a frame of 88 keys), the output projection is one GEMV (B = 1)
 * or GEMM against out.weight, and the choice is made on a float buffer:
 *   token model: z = logits / temperature; optional top-k (the k largest, ties to the lower
 *     token), then optional top-p (nucleus: the smallest set of the most likely tokens whose
 *     probability reaches top_p of what is left; at least one token), then one draw from the
 *     renormalised softmax. temperature 0 is greedy: the argmax (the lowest token among equal
 *     maxima), with no draw; top_k 1 is the same choice at any temperature.
 *   piano roll: each key on independently with probability sigmoid(logit / temperature);
 *     temperature 0 turns on the keys whose logit is > 0. top-k / top-p do not apply.
 *
 * PRIMERS. cc_sampler_feed_* runs given steps through the RNN (a primer, or the notes being
 * played live); the last one fed is the input whose output predicts the next step, exactly as
 * in training (inputs = steps [0, n-1), targets = steps [1, n)). With nothing fed, the first
 * input is the encoding's start step (cc_start_token: melody no-event, performance a velocity
 * event, audio mu-law silence, a silent frame for the piano roll, token 0 otherwise), which is
 * not part of the output.
 *
 * RANDOMNESS. cc_sampler_new forks one stream per row from the caller's generator
 * (ct_rng_fork(rng, b)) and then advances the caller's generator by one draw, so a sample
 * depends only on the seed, the row, the model and the options: row b of a batch of 8 is row
 * b of a batch of 2, and the same seed gives the same samples on every machine.
 *
 * DEVICES. The model may live on a CUDA device (ct_module_to; make the sampler after the
 * move): the RNN state and the output layer run there, the choices on the host (the logits
 * come back to a host buffer each step, the input rows go there from a host copy of the
 * embedding table, refreshed whenever the table changes). The choices and their random draws
 * are the same; the logits agree with the CPU's to float rounding, so a sample from a GPU may
 * differ from the CPU's where two probabilities are within rounding of a draw.
 *
 * OWNERSHIP. A sampler is the caller's (cc_sampler_free; NULL is a no-op); it borrows the
 * model, which must outlive it (training the model between steps is fine: weights are read at
 * every step). Errors are a status plus a message in the model's context.
 */
#ifndef CC_SAMPLER_H
#define CC_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "audio/midi.h"
#include "engine/nn.h"
#include "engine/rng.h"
#include "models/config.h"

typedef struct cc_sample_opts {
    float temperature;   /* >= 0, finite; 0 = greedy */
    int top_k;           /* >= 0; 0 = no limit (token models) */
    float top_p;         /* in [0, 1]; 1 = no limit; 0 keeps only the most likely token */
} cc_sample_opts;

/* temperature 1, top_k 0, top_p 1: plain sampling from the model's distribution. */
cc_sample_opts cc_sample_defaults(void);

/* The first input when nothing was fed (token models; -1 for a piano roll or a bad config). */
int64_t cc_start_token(const cc_config *c);

/* Picks one token from n logits with o's rules (above), drawing at most one uniform from rng
 * (none when greedy). work_p and work_i need n entries each, or both NULL (then allocated
 * here). Returns the token, or -1 for bad arguments (n < 1, bad options, no rng when one is
 * needed) or when no allocation was possible. NaN logits count as -infinity; if all are,
 * the result is token 0. */
int64_t cc_pick_token(const float *logits, int64_t n, const cc_sample_opts *o, ct_rng *rng,
                      float *work_p, int32_t *work_i);

/* ---- the stepwise sampler -------------------------------------------------------------------- */
typedef struct cc_sampler cc_sampler;

/* A sampler of `batch` independent rows (>= 1) for a composer; o may be NULL (defaults).
 * NULL + error in the model's context. */
cc_sampler *cc_sampler_new(ct_module *model, int64_t batch, const cc_sample_opts *o, ct_rng *rng);
void cc_sampler_free(cc_sampler *s);
/* Tests only: on (a CPU model too) the input rows come from the host copy of the embedding
 * table that a model on a device uses, so that a machine without a GPU runs that code. */
void cc__sampler_host_embedding(cc_sampler *s, bool on);
/* Back to the start (zero state, nothing fed); the random streams go on. */
void cc_sampler_reset(cc_sampler *s);
ct_status cc_sampler_set_opts(cc_sampler *s, const cc_sample_opts *o);
int64_t cc_sampler_batch(const cc_sampler *s);

/* Feeds n >= 0 steps: tokens[t] to every row (per_row false), or tokens[b * n + t] to row b.
 * Token models only; a token outside 0..vocab-1 is CT_E_ARG (nothing fed). */
ct_status cc_sampler_feed_tokens(cc_sampler *s, const int64_t *tokens, int64_t n, bool per_row);
/* Feeds n frames of 88 keys (nonzero = on): frames[t * 88 + k] to every row, or
 * frames[(b * n + t) * 88 + k] to row b. Piano roll only. */
ct_status cc_sampler_feed_frames(cc_sampler *s, const uint8_t *frames, int64_t n, bool per_row);

/* The logits [batch, vocab] for the next step (computed once; valid until the sampler is
 * next changed). Steps the start input when nothing was fed. */
ct_status cc_sampler_logits(cc_sampler *s, const float **logits);
/* Chooses the next step of every row (out: batch tokens, or batch x 88 key bits) and feeds it
 * back, so calling it again continues the piece. */
ct_status cc_sampler_next_tokens(cc_sampler *s, int64_t *out);
ct_status cc_sampler_next_frames(cc_sampler *s, uint8_t *out);

/* ---- one call --------------------------------------------------------------------------------- */
/* batch rows of `steps` new tokens after the primer (primer_len tokens shared by every row;
 * 0: start from cc_start_token) into out [batch, steps] (row-major). o may be NULL. */
ct_status cc_sample_tokens(ct_module *model, const cc_sample_opts *o, ct_rng *rng,
                           const int64_t *primer, int64_t primer_len, int64_t batch,
                           int64_t steps, int64_t *out);
/* The same for a piano roll: primer_len frames of 88 (0: a silent start); out [batch, steps,
 * 88] of 0/1. */
ct_status cc_sample_frames(ct_module *model, const cc_sample_opts *o, ct_rng *rng,
                           const uint8_t *primer, int64_t primer_len, int64_t batch,
                           int64_t steps, uint8_t *out);

/* ---- music in and out: a composer's steps <-> MIDI (audio/) ------------------------------------- *
 * What a primer becomes before it is fed, and what a sample becomes after it is drawn. Pure
 * host code: no tensors, no context; errors are a status plus a message in the caller's err
 * buffer (may be NULL), naming the file. */
typedef struct cc_steps {
    int64_t *tokens;   /* token models: len tokens (owned) */
    uint8_t *frames;   /* piano roll: len * 88 values 0/1 (owned) */
    int64_t len;
} cc_steps;

/* Frees the arrays and zeroes *s (NULL and a zeroed struct are fine). */
void cc_steps_free(cc_steps *s);

typedef struct cc_encode_info {
    double qpm;               /* the file's tempo at tick 0, quarter notes per minute (120 when
                                 it has none) */
    double quarters_per_bar;  /* from its first time signature (4 when it has none) */
    int64_t notes;            /* notes read (drums left out) */
    int64_t polyphonic;       /* melody: notes that started with a higher one or while another
                                 sounded: the reduction to one line dropped them or cut the note
                                 before them short. 0 for a monophonic file */
    int64_t moved;            /* melody: notes moved by octaves into the model's pitch range */
    int64_t dropped;          /* piano roll: notes outside the 88 keys (left out) */
} cc_encode_info;

/* Encodes the notes of a MIDI file (name: for messages) the way composer c reads them:
 *   melody       every non-drum note of every track merged into one line, on the model's grid
 *                (steps_per_quarter, quantized as audio/melody.h does), reduced to a melody by
 *                Magenta's rules: at each onset the highest note wins, and a note that starts
 *                while another sounds ends that one; notes outside the model's range are moved
 *                by octaves into it; the line starts at the bar of its first note and ends with
 *                its last note (no final note-off), as the corpus builder's melodies do;
 *   performance  cm_perf_encode with the model's event configuration, from time 0, sustain
 *                pedal applied, drums left out (as the corpus builder's default);
 *   pianoroll    cm_roll_from_notes on the model's grid, from time 0, drums left out.
 * A file without notes gives len 0. info may be NULL. CT_E_ARG for an encoding that has no
 * MIDI form (tokens, audio), CT_E_FORMAT when the notes cannot be encoded (the message says
 * why). On failure *out is zeroed. */
ct_status cc_encode_midi(const cc_config *c, const cm_file *f, const char *name, cc_steps *out,
                         cc_encode_info *info, char *err, size_t n);

/* The MIDI file of steps in composer c's encoding, at qpm quarter notes per minute (4..1000):
 * melody (Melody.to_sequence, 4/4), performance (note-on/off, time shifts, velocities) or
 * piano roll (each run of on-frames one note). A new cm_file (cm_file_free), or NULL with the
 * message in err (a token outside the vocabulary, an encoding with no MIDI form). */
cm_file *cc_decode_midi(const cc_config *c, const cc_steps *steps, double qpm, char *err, size_t n);

#endif
