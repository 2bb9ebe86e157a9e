/* models/config.h — a composer's whole configuration: the encoding it reads and writes (with
 * that encoding's settings), the network's sizes, and a version. Checkpoints carry it as a
 * JSON string (the safetensors metadata key "cantor_config"), so a checkpoint describes
 * itself: `cantor sample --ckpt FILE` rebuilds the model from the file alone.
 *
 * ENCODINGS and the fields that apply to each (the others are 0 in a resolved config):
 *   tokens       any token sequence 0..vocab-1 (vocab set by the caller)
 *   melody       audio/melody.h: pitches [min_pitch, max_pitch), steps_per_quarter;
 *                vocab = max_pitch - min_pitch + 2 (38 for Magenta's 48..84)
 *   performance  audio/performance.h: steps_per_second (integral), max_shift_steps,
 *                num_velocity_bins; vocab = 256 + max_shift_steps + num_velocity_bins (388)
 *   pianoroll    audio/pianoroll.h: 88 keys per frame (vocab = 88); the grid is either
 *                steps_per_quarter or steps_per_second (exactly one is > 0)
 *   audio        audio/mulaw.h: 8-bit mu-law samples (vocab = 256) at sample_rate
 * Every encoding but pianoroll is a token model (embedding -> RNN -> linear -> softmax); the
 * piano roll is a frame model (88 inputs -> RNN -> linear -> 88 independent sigmoids).
 *
 * JSON. cc_config_to_json writes one flat object, fields in a fixed order, only those that
 * apply, numbers in their shortest exact form:
 *   {"format":"cantor.composer","version":1,"model":"token_rnn","encoding":"melody",
 *    "vocab":38,"min_pitch":48,"max_pitch":84,"steps_per_quarter":4,"cell":"lstm",
 *    "layers":2,"hidden":256,"embed":64,"dropout":0.2}
 * cc_config_from_json reads exactly that: a flat object of strings and numbers (any order,
 * whitespace allowed), strict about everything else (nesting, duplicate, unknown, missing or
 * inapplicable keys, non-integral integers, ranges, a newer version), with a message naming
 * the byte offset or the key.
 *
 * Pure C: no tensors, no allocation, nothing prints. Functions that can fail return a
 * ct_status and write a message into the caller's err buffer (may be NULL).
 */
#ifndef CC_CONFIG_H
#define CC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"

#define CC_CONFIG_VERSION 1                 /* the version this code writes and reads */
#define CC_CONFIG_FORMAT "cantor.composer"  /* the JSON's "format" value */
#define CC_CONFIG_META_KEY "cantor_config"  /* the safetensors metadata key */
#define CC_CONFIG_JSON_MAX 65536            /* longer JSON is refused */
#define CC_ROLL_KEYS 88

typedef enum cc_encoding {
    CC_ENC_TOKENS = 0,
    CC_ENC_MELODY,
    CC_ENC_PERFORMANCE,
    CC_ENC_PIANOROLL,
    CC_ENC_AUDIO,
    CC_ENC_COUNT
} cc_encoding;

typedef enum cc_cell {
    CC_LSTM = 0,
    CC_GRU,
    CC_RNN,            /* Elman RNN, tanh */
    CC_CELL_COUNT
} cc_cell;

typedef struct cc_config {
    int version;               /* CC_CONFIG_VERSION (0 is taken as the current one) */
    cc_encoding encoding;
    int64_t vocab;             /* classes (88 keys for a piano roll); 0: derived from the encoding */
    /* encoding settings (see above for which apply) */
    int min_pitch, max_pitch;  /* melody: MIDI pitches [min, max) */
    int steps_per_quarter;     /* melody grid; piano roll metric grid */
    double steps_per_second;   /* performance time-shift steps; piano roll absolute grid */
    int max_shift_steps;       /* performance */
    int num_velocity_bins;     /* performance: 0 (no velocity events) .. 127 */
    int sample_rate;           /* audio: samples per second */
    /* the network */
    cc_cell cell;
    int layers;                /* 1..64 */
    int64_t hidden;            /* 1..65536 */
    int64_t embed;             /* token models: 1..65536; piano roll: 0 (frames go in directly) */
    float dropout;             /* [0, 1): between RNN layers and on the RNN's output (training) */
} cc_config;

/* "tokens", "melody", "performance", "pianoroll", "audio"; "?" when out of range. */
const char *cc_encoding_name(cc_encoding e);
/* The encoding of a name (as above); -1 when unknown. */
int cc_encoding_from_name(const char *name);
/* "lstm", "gru", "rnn"; "?" when out of range. */
const char *cc_cell_name(cc_cell c);
/* "LSTM", "GRU", "RNN" (for descriptions). */
const char *cc_cell_label(cc_cell c);
int cc_cell_from_name(const char *name);            /* -1 when unknown; case-insensitive */

/* A sensible configuration per encoding (the bench's sizes):
 *   melody       48..84 (38 tokens), 4 steps per quarter, LSTM 2x256, embed 64, dropout 0.2
 *   performance  100 steps/s, 100 shift steps, 32 velocity bins (388), LSTM 3x512, embed 256
 *   pianoroll    4 steps per quarter, LSTM 2x200, dropout 0.2 (the JSB configuration)
 *   audio        16000 Hz mu-law (256), LSTM 2x256, embed 64
 *   tokens       vocab 0 (the caller must set it), LSTM 2x256, embed 64 */
cc_config cc_config_default(cc_encoding e);

/* True for the piano-roll (frame) model. */
bool cc_config_is_roll(const cc_config *c);
/* The vocabulary the encoding settings give (tokens: c->vocab); -1 when they are invalid. */
int64_t cc_config_vocab(const cc_config *c);
/* Validates c and completes it in place: the version set, vocab derived when 0 (and checked
 * against the encoding when given), the fields that do not apply to the encoding set to 0.
 * CT_E_ARG with a message naming the field, its value and the allowed range; c is unchanged
 * then. */
ct_status cc_config_resolve(cc_config *c, char *err, size_t n);
/* The number of parameters (float elements) of the model c describes; -1 if c is invalid. */
int64_t cc_config_num_params(const cc_config *c);
/* "melody LSTM 2x256" (snprintf's contract: the length it would write). */
int cc_config_describe(const cc_config *c, char *buf, size_t n);
/* The differences between two configurations that make their weights incompatible (encoding
 * and its settings, vocab, cell, layers, hidden, embed; not dropout, not the version), as
 * "hidden 512 vs 256, cell lstm vs gru" (a's value first) into buf (may be NULL). Returns the
 * number of differing fields: 0 means a checkpoint of one loads into a model of the other.
 * Both are compared resolved (copies; inputs are not changed); an invalid one differs. */
int cc_config_diff(const cc_config *a, const cc_config *b, char *buf, size_t n);

/* The JSON of a resolved copy of c (see above) into buf; returns the length (snprintf's
 * contract), or -1 when c is invalid (err, may be NULL, says why). */
int cc_config_to_json(const cc_config *c, char *buf, size_t n, char *err, size_t err_n);
/* Parses JSON written by cc_config_to_json (at most CC_CONFIG_JSON_MAX bytes) into a resolved
 * *out. CT_E_FORMAT with a message (byte offset or key) on malformed or inconsistent input,
 * CT_E_UNSUPPORTED for a newer version; *out is unchanged on failure. */
ct_status cc_config_from_json(const char *json, cc_config *out, char *err, size_t n);

#endif
