/* corpora/encoding.c — cp_encoding (defaults, names, checks, the serialised configuration),
 * splits by content hash, FNV-1a hashing, and the error helper of corpora/.
 *
 * The configuration in the header, bytes [256, 512) (little-endian; the rest is zero):
 *   256 u32 sustain            260 u32 0                 264 i64 min_steps
 *   272 i32 melody min pitch   276 i32 max pitch (excl.) 280 i32 steps per quarter
 *   284 i32 steps per bar      288 i32 range mode        292 i32 min bars
 *   296 i32 min unique pitches 300 u32 bit 0 pad_end, bit 1 keep_drums
 *   304 f64 gap bars           312 i64 max_steps_discard 320 i64 max_steps_truncate
 *   328 i32 performance steps per second   332 i32 max shift steps   336 i32 velocity bins
 *   340 u32 include drums      344 f64 split at silences (seconds)
 *   352 f64 piano-roll steps per second    360 i32 steps per quarter 364 u32 include drums
 * The writer stores the fields of the corpus's own kind and the defaults for the others. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "corpora/internal.h"

ct_status cp__fail(cp_error *err, ct_status s, const char *fmt, ...) {
    if (err) {
        err->status = s;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return s;
}

void cp__ok(cp_error *err) {
    if (err) {
        err->status = CT_OK;
        err->message[0] = 0;
    }
}

/* ---- encodings ------------------------------------------------------------------------------ */
cp_encoding cp_encoding_default(cp_encoding_kind kind) {
    cp_encoding e;
    memset(&e, 0, sizeof e);
    e.kind = kind;
    e.min_steps = 2;
    e.melody = cm_melody_opts_default();
    e.perf = cm_perf_opts_default();
    e.perf_split_silence_s = 0;
    e.roll_grid.steps_per_quarter = 4;
    e.roll_grid.steps_per_second = 0;
    e.roll_include_drums = false;
    e.sustain = kind == CP_PERFORMANCE;
    if (kind != CP_MELODY && kind != CP_PERFORMANCE && kind != CP_PIANOROLL) e.kind = 0;
    return e;
}

const char *cp_encoding_name(cp_encoding_kind kind) {
    switch (kind) {
    case CP_MELODY: return "melody";
    case CP_PERFORMANCE: return "performance";
    case CP_PIANOROLL: return "pianoroll";
    }
    return "unknown";
}

bool cp_encoding_parse(const char *name, cp_encoding_kind *out) {
    static const struct { const char *s; cp_encoding_kind k; } names[] = {
        {"melody", CP_MELODY},         {"performance", CP_PERFORMANCE}, {"perf", CP_PERFORMANCE},
        {"pianoroll", CP_PIANOROLL},   {"piano-roll", CP_PIANOROLL},    {"roll", CP_PIANOROLL},
    };
    if (!name) return false;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(name, names[i].s) == 0) {
            if (out) *out = names[i].k;
            return true;
        }
    return false;
}

int cp_encoding_vocab(const cp_encoding *e) {
    if (!e) return -1;
    switch (e->kind) {
    case CP_MELODY: return cm_melody_num_classes(e->melody.range);
    case CP_PERFORMANCE: return cm_perf_num_classes(&e->perf.config);
    case CP_PIANOROLL: return CM_ROLL_NUM_KEYS;
    }
    return -1;
}

bool cp_encoding_is_tokens(const cp_encoding *e) {
    return e && (e->kind == CP_MELODY || e->kind == CP_PERFORMANCE);
}

ct_status cp_encoding_check(const cp_encoding *e, cp_error *err) {
    if (!e) return cp__fail(err, CT_E_NULL, "encoding: NULL");
    if (e->kind != CP_MELODY && e->kind != CP_PERFORMANCE && e->kind != CP_PIANOROLL)
        return cp__fail(err, CT_E_ARG, "encoding: kind %d; expected 1 (melody), 2 (performance) or 3 (pianoroll)",
                        (int)e->kind);
    if (e->min_steps < 1 || e->min_steps > ((int64_t)1 << 40))
        return cp__fail(err, CT_E_ARG, "encoding: min_steps %lld; expected at least 1", (long long)e->min_steps);
    if (e->kind == CP_MELODY) {
        const cm_melody_opts *m = &e->melody;
        if (!cm_melody_encoding_valid(m->range))
            return cp__fail(err, CT_E_ARG, "melody: pitch range %d..%d; expected 0 <= min < max <= 128",
                            m->range.min_pitch, m->range.max_pitch);
        if (m->range_mode == CM_MELODY_RANGE_OCTAVE && m->range.max_pitch - m->range.min_pitch < 12)
            return cp__fail(err, CT_E_ARG, "melody: pitch range %d..%d spans less than an octave; moving notes by "
                            "octaves needs 12 pitches or more (or use the drop range mode)",
                            m->range.min_pitch, m->range.max_pitch);
        if (m->steps_per_quarter < 1 || m->steps_per_quarter > CM_MELODY_MAX_STEPS_PER_QUARTER)
            return cp__fail(err, CT_E_ARG, "melody: %d steps per quarter; expected 1..%d", m->steps_per_quarter,
                            CM_MELODY_MAX_STEPS_PER_QUARTER);
        if (m->steps_per_bar < 0 || m->min_bars < 0 || m->min_unique_pitches < 0 || m->max_steps_discard < 0 ||
            m->max_steps_truncate < 0)
            return cp__fail(err, CT_E_ARG, "melody: steps_per_bar %d, min_bars %d, min_unique_pitches %d, "
                            "max_steps_discard %lld, max_steps_truncate %lld; expected values >= 0",
                            m->steps_per_bar, m->min_bars, m->min_unique_pitches, (long long)m->max_steps_discard,
                            (long long)m->max_steps_truncate);
        if ((int)m->range_mode != CM_MELODY_RANGE_OCTAVE && (int)m->range_mode != CM_MELODY_RANGE_DROP)
            return cp__fail(err, CT_E_ARG, "melody: range mode %d; expected 0 (octave) or 1 (drop)",
                            (int)m->range_mode);
        if (!(m->gap_bars > 0) || !isfinite(m->gap_bars))
            return cp__fail(err, CT_E_ARG, "melody: gap_bars %g; expected a finite value > 0", m->gap_bars);
    } else if (e->kind == CP_PERFORMANCE) {
        const cm_perf_config *c = &e->perf.config;
        if (!cm_perf_config_valid(c))
            return cp__fail(err, CT_E_ARG, "performance: %d steps per second, %d shift steps, %d velocity bins; "
                            "expected 1..1000, 1..1000 and 0..127",
                            c->steps_per_second, c->max_shift_steps, c->num_velocity_bins);
        if (!(e->perf_split_silence_s >= 0) || !isfinite(e->perf_split_silence_s))
            return cp__fail(err, CT_E_ARG, "performance: split at silences of %g s; expected a finite value >= 0 "
                            "(0: never split)", e->perf_split_silence_s);
    } else {
        const cm_roll_grid *g = &e->roll_grid;
        bool sec = g->steps_per_second > 0, quarter = g->steps_per_quarter > 0;
        if (sec == quarter || g->steps_per_quarter < 0 || g->steps_per_quarter > 960 ||
            !(g->steps_per_second >= 0 && g->steps_per_second <= 10000))
            return cp__fail(err, CT_E_ARG, "pianoroll: grid of %g steps per second and %d per quarter; expected "
                            "exactly one of them set: 0 < steps per second <= 10000, or 1..960 per quarter",
                            g->steps_per_second, g->steps_per_quarter);
    }
    cp__ok(err);
    return CT_OK;
}

int cp_encoding_describe(const cp_encoding *e, char *buf, size_t n) {
    if (!e) return snprintf(buf, n, "(no encoding)");
    const char *sus = e->sustain ? ", sustain pedal on" : "";
    switch (e->kind) {
    case CP_MELODY: {
        const cm_melody_opts *m = &e->melody;
        return snprintf(buf, n, "melody %d..%d (%d classes), %d steps per quarter, min %d bars, min %d pitch "
                        "classes, gap %g bars, out-of-range notes %s%s%s",
                        m->range.min_pitch, m->range.max_pitch - 1, cm_melody_num_classes(m->range),
                        m->steps_per_quarter, m->min_bars, m->min_unique_pitches, m->gap_bars,
                        m->range_mode == CM_MELODY_RANGE_DROP ? "dropped" : "moved by octaves",
                        m->keep_drums ? ", drums kept" : "", sus);
    }
    case CP_PERFORMANCE: {
        const cm_perf_config *c = &e->perf.config;
        char split[64] = "";
        if (e->perf_split_silence_s > 0) snprintf(split, sizeof split, ", split at %g s silences",
                                                  e->perf_split_silence_s);
        return snprintf(buf, n, "performance (%d classes), %d steps per second, %d shift steps, %d velocity bins%s%s%s",
                        cm_perf_num_classes(c), c->steps_per_second, c->max_shift_steps, c->num_velocity_bins,
                        e->perf.include_drums ? ", drums kept" : "", split, sus);
    }
    case CP_PIANOROLL:
        if (e->roll_grid.steps_per_quarter > 0)
            return snprintf(buf, n, "pianoroll 88 keys, %d steps per quarter%s%s", e->roll_grid.steps_per_quarter,
                            e->roll_include_drums ? ", drums kept" : "", sus);
        return snprintf(buf, n, "pianoroll 88 keys, %g steps per second%s%s", e->roll_grid.steps_per_second,
                        e->roll_include_drums ? ", drums kept" : "", sus);
    }
    return snprintf(buf, n, "unknown encoding %d", (int)e->kind);
}

/* ---- serialised configuration --------------------------------------------------------------- */
#define AT(off) (out + (off) - CP__CONFIG_OFFSET)
#define IN(off) (in + (off) - CP__CONFIG_OFFSET)

void cp__encoding_encode(const cp_encoding *e, uint8_t out[CP__CONFIG_BYTES]) {
    memset(out, 0, CP__CONFIG_BYTES);
    cp_encoding d = cp_encoding_default(e->kind);
    /* the other kinds' fields: their defaults, so equal encodings give equal bytes */
    const cm_melody_opts *m = e->kind == CP_MELODY ? &e->melody : &d.melody;
    const cm_perf_opts *p = e->kind == CP_PERFORMANCE ? &e->perf : &d.perf;
    double split = e->kind == CP_PERFORMANCE ? e->perf_split_silence_s : d.perf_split_silence_s;
    cm_roll_grid g = e->kind == CP_PIANOROLL ? e->roll_grid : d.roll_grid;
    bool roll_drums = e->kind == CP_PIANOROLL ? e->roll_include_drums : d.roll_include_drums;
    cp__put_u32(AT(256), e->sustain ? 1 : 0);
    cp__put_u64(AT(264), (uint64_t)e->min_steps);
    cp__put_u32(AT(272), (uint32_t)m->range.min_pitch);
    cp__put_u32(AT(276), (uint32_t)m->range.max_pitch);
    cp__put_u32(AT(280), (uint32_t)m->steps_per_quarter);
    cp__put_u32(AT(284), (uint32_t)m->steps_per_bar);
    cp__put_u32(AT(288), (uint32_t)m->range_mode);
    cp__put_u32(AT(292), (uint32_t)m->min_bars);
    cp__put_u32(AT(296), (uint32_t)m->min_unique_pitches);
    cp__put_u32(AT(300), (m->pad_end ? 1u : 0u) | (m->keep_drums ? 2u : 0u));
    cp__put_f64(AT(304), m->gap_bars);
    cp__put_u64(AT(312), (uint64_t)m->max_steps_discard);
    cp__put_u64(AT(320), (uint64_t)m->max_steps_truncate);
    cp__put_u32(AT(328), (uint32_t)p->config.steps_per_second);
    cp__put_u32(AT(332), (uint32_t)p->config.max_shift_steps);
    cp__put_u32(AT(336), (uint32_t)p->config.num_velocity_bins);
    cp__put_u32(AT(340), p->include_drums ? 1 : 0);
    cp__put_f64(AT(344), split);
    cp__put_f64(AT(352), g.steps_per_second);
    cp__put_u32(AT(360), (uint32_t)g.steps_per_quarter);
    cp__put_u32(AT(364), roll_drums ? 1 : 0);
}

void cp__encoding_decode(const uint8_t in[CP__CONFIG_BYTES], cp_encoding_kind kind, cp_encoding *e) {
    memset(e, 0, sizeof *e);
    e->kind = kind;
    e->sustain = cp__get_u32(IN(256)) != 0;
    e->min_steps = (int64_t)cp__get_u64(IN(264));
    cm_melody_opts *m = &e->melody;
    m->range.min_pitch = (int32_t)cp__get_u32(IN(272));
    m->range.max_pitch = (int32_t)cp__get_u32(IN(276));
    m->steps_per_quarter = (int32_t)cp__get_u32(IN(280));
    m->steps_per_bar = (int32_t)cp__get_u32(IN(284));
    m->range_mode = (cm_melody_range)(int32_t)cp__get_u32(IN(288));
    m->min_bars = (int32_t)cp__get_u32(IN(292));
    m->min_unique_pitches = (int32_t)cp__get_u32(IN(296));
    uint32_t flags = cp__get_u32(IN(300));
    m->pad_end = (flags & 1u) != 0;
    m->keep_drums = (flags & 2u) != 0;
    m->gap_bars = cp__get_f64(IN(304));
    m->max_steps_discard = (int64_t)cp__get_u64(IN(312));
    m->max_steps_truncate = (int64_t)cp__get_u64(IN(320));
    e->perf.config.steps_per_second = (int32_t)cp__get_u32(IN(328));
    e->perf.config.max_shift_steps = (int32_t)cp__get_u32(IN(332));
    e->perf.config.num_velocity_bins = (int32_t)cp__get_u32(IN(336));
    e->perf.include_drums = cp__get_u32(IN(340)) != 0;
    e->perf_split_silence_s = cp__get_f64(IN(344));
    e->roll_grid.steps_per_second = cp__get_f64(IN(352));
    e->roll_grid.steps_per_quarter = (int32_t)cp__get_u32(IN(360));
    e->roll_include_drums = cp__get_u32(IN(364)) != 0;
}

/* ---- splits and hashing --------------------------------------------------------------------- */
const char *cp_split_name(cp_split s) {
    switch (s) {
    case CP_TRAIN: return "train";
    case CP_VALID: return "valid";
    case CP_TEST: return "test";
    case CP_SPLIT_ALL: return "all";
    }
    return "unknown";
}

bool cp_split_parse(const char *name, cp_split *out) {
    static const struct { const char *s; cp_split v; } names[] = {
        {"train", CP_TRAIN}, {"valid", CP_VALID}, {"validation", CP_VALID}, {"test", CP_TEST}, {"all", CP_SPLIT_ALL},
    };
    if (!name) return false;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(name, names[i].s) == 0) {
            if (out) *out = names[i].v;
            return true;
        }
    return false;
}

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

uint64_t cp_hash_update(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= FNV_PRIME;
    }
    return h;
}

uint64_t cp_hash_bytes(const void *p, size_t n) { return cp_hash_update(FNV_OFFSET, p, n); }

cp_split cp_split_of_hash(uint64_t h, int valid_pct, int test_pct) {
    /* splitmix64's finaliser spreads every bit of the hash over the low digits */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    int r = (int)(h % 100);
    int train = 100 - valid_pct - test_pct;
    if (r < train) return CP_TRAIN;
    if (r < train + valid_pct) return CP_VALID;
    return CP_TEST;
}
