/* corpora/internal.h — private helpers shared by the corpora/ sources (not a public API):
 * error formatting, little-endian access, the serialised encoding configuration and stats. */
#ifndef CANTOR_CORPORA_INTERNAL_H
#define CANTOR_CORPORA_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "corpora/corpus.h"

#if defined(__GNUC__)
#define CP__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CP__PRINTF(a, b)
#endif

/* Fills err (when non-NULL) with s and the formatted message; returns s. */
ct_status cp__fail(cp_error *err, ct_status s, const char *fmt, ...) CP__PRINTF(3, 4);
/* Clears err (status CT_OK, empty message). */
void cp__ok(cp_error *err);

/* ---- little-endian fields --------------------------------------------------------------------- */
static inline void cp__put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void cp__put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void cp__put_f64(uint8_t *p, double d) {
    uint64_t v;
    memcpy(&v, &d, 8);
    cp__put_u64(p, v);
}
static inline uint32_t cp__get_u32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static inline uint64_t cp__get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static inline double cp__get_f64(const uint8_t *p) {
    uint64_t v = cp__get_u64(p);
    double d;
    memcpy(&d, &v, 8);
    return d;
}

#define CP__CONFIG_OFFSET 256
#define CP__CONFIG_BYTES (CP_HEADER_BYTES - CP__CONFIG_OFFSET)
/* The encoding's configuration <-> CP__CONFIG_BYTES bytes (layout in encoding.c). decode does
 * not validate: call cp_encoding_check. */
void cp__encoding_encode(const cp_encoding *e, uint8_t out[CP__CONFIG_BYTES]);
void cp__encoding_decode(const uint8_t in[CP__CONFIG_BYTES], cp_encoding_kind kind, cp_encoding *e);

/* The stats section (layout in stats.c): counters, per-split totals, the pitch histogram. */
#define CP__STATS_BYTES ((8 + 3 + 3 + 3 + 128) * 8)
void cp__stats_encode(const cp_stats *s, uint8_t out[CP__STATS_BYTES]);
void cp__stats_decode(const uint8_t in[CP__STATS_BYTES], cp_stats *s);
/* The log section: appends a line per skip to *buf (malloc'd, *len bytes). CT_E_NOMEM. */
ct_status cp__stats_log(const cp_stats *s, char **buf, size_t *len);
/* Parses a log section into s's skips and sets files_failed / _empty / _duplicate to their
 * counts. CT_E_FORMAT: *bad_at is the bad line's offset in buf. */
ct_status cp__stats_parse_log(const char *buf, size_t len, cp_stats *s, size_t *bad_at);

/* Note onsets of n steps of an encoded piece added into hist[128]. */
void cp__pitch_onsets_tokens(const cp_encoding *e, const int32_t *tokens, int64_t n, int64_t hist[128]);
void cp__pitch_onsets_frames(const uint8_t *frames, int64_t n, int64_t hist[128]);

#endif
