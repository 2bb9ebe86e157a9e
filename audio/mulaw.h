/* audio/mulaw.h — 8-bit mu-law companding (mu = 255, 256 classes), as WaveNet and
 * torchaudio.functional.mu_law_encoding / mu_law_decoding define it:
 *
 *   encode:  y = sign(x) * ln(1 + mu |x|) / ln(1 + mu)          x in [-1, 1]
 *            q = floor((y + 1) / 2 * mu + 0.5)                  q in 0..255
 *   decode:  y = 2 q / mu - 1
 *            x = sign(y) * ((1 + mu)^|y| - 1) / mu
 *
 * so encode(0) = 128, encode(-1) = 0, encode(1) = 255, and decode(encode(x)) is x's nearest
 * code in the companded domain. Inputs outside [-1, 1] are clipped to it first (torchaudio does
 * not clip; within [-1, 1] the codes are identical); NaN encodes as 0.0 does (128).
 *
 * Error bound. Rounding moves y by at most 1/mu, and dx/dy = ln(1 + mu) (1 + mu)^|y| / mu, so
 *   |x - decode(encode(x))| <= ln(1 + mu) (1 + mu)^(1/mu) (1 + mu |x|) / mu^2
 * which is 8.7e-5 near 0 and 0.0223 at |x| = 1: ca_mulaw_error_bound(x) returns it (plus 1e-6
 * for float rounding). The step between adjacent decoded values grows the same way.
 *
 * Pure C11, no state, no allocation. Tokens are the ints 0..CA_MULAW_CLASSES-1. */
#ifndef CANTOR_AUDIO_MULAW_H
#define CANTOR_AUDIO_MULAW_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CA_MULAW_MU 255
#define CA_MULAW_CLASSES 256

/* x in [-1, 1] (clipped) -> 0..255. */
int ca_mulaw_encode(float x);
/* q in 0..255 (clamped) -> [-1, 1]. */
float ca_mulaw_decode(int q);
/* The bound above for |x| <= 1. */
float ca_mulaw_error_bound(float x);

/* Arrays (n >= 0; in and out must not overlap). */
void ca_mulaw_encode_u8(const float *x, int64_t n, uint8_t *out);
void ca_mulaw_decode_u8(const uint8_t *q, int64_t n, float *out);
void ca_mulaw_encode_i32(const float *x, int64_t n, int32_t *out);
void ca_mulaw_decode_i32(const int32_t *q, int64_t n, float *out);

#ifdef __cplusplus
}
#endif
#endif
