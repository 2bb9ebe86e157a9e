/* models/config.c — composer configurations: defaults, validation, descriptions, and the
 * flat JSON object stored in checkpoints (a writer and a small strict parser). */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "audio/melody.h"
#include "audio/mulaw.h"
#include "audio/performance.h"
#include "audio/pianoroll.h"
#include "models/config.h"

#define MAX_LAYERS 64
#define MAX_WIDTH 65536
#define MAX_TOKEN_VOCAB 1000000
#define MAX_SAMPLE_RATE 384000
#define MAX_ROLL_SPS 10000.0

static const char *const ENC_NAMES[CC_ENC_COUNT] = {"tokens", "melody", "performance",
                                                    "pianoroll", "audio"};
static const char *const CELL_NAMES[CC_CELL_COUNT] = {"lstm", "gru", "rnn"};
static const char *const CELL_LABELS[CC_CELL_COUNT] = {"LSTM", "GRU", "RNN"};

static void say(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *err, size_t n, const char *fmt, ...) {
    if (!err || n == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
}

const char *cc_encoding_name(cc_encoding e) {
    return (e >= 0 && e < CC_ENC_COUNT) ? ENC_NAMES[e] : "?";
}

int cc_encoding_from_name(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < CC_ENC_COUNT; i++)
        if (strcmp(name, ENC_NAMES[i]) == 0) return i;
    return -1;
}

const char *cc_cell_name(cc_cell c) { return (c >= 0 && c < CC_CELL_COUNT) ? CELL_NAMES[c] : "?"; }
const char *cc_cell_label(cc_cell c) { return (c >= 0 && c < CC_CELL_COUNT) ? CELL_LABELS[c] : "?"; }

int cc_cell_from_name(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < CC_CELL_COUNT; i++)
        if (strcasecmp(name, CELL_NAMES[i]) == 0) return i;
    return -1;
}

cc_config cc_config_default(cc_encoding e) {
    cc_config c = {.version = CC_CONFIG_VERSION, .encoding = e, .cell = CC_LSTM, .layers = 2,
                   .hidden = 256, .embed = 64, .dropout = 0.2f};
    switch (e) {
    case CC_ENC_MELODY:
        c.min_pitch = CM_MELODY_DEFAULT_MIN_PITCH;
        c.max_pitch = CM_MELODY_DEFAULT_MAX_PITCH;
        c.steps_per_quarter = CM_MELODY_DEFAULT_STEPS_PER_QUARTER;
        c.vocab = CM_MELODY_DEFAULT_NUM_CLASSES;
        break;
    case CC_ENC_PERFORMANCE:
        c.steps_per_second = CM_PERF_STEPS_PER_SECOND;
        c.max_shift_steps = CM_PERF_MAX_SHIFT_STEPS;
        c.num_velocity_bins = CM_PERF_NUM_VELOCITY_BINS;
        c.vocab = CM_PERF_NUM_CLASSES;
        c.layers = 3;
        c.hidden = 512;
        c.embed = 256;
        break;
    case CC_ENC_PIANOROLL:
        c.steps_per_quarter = 4;
        c.vocab = CC_ROLL_KEYS;
        c.hidden = 200;
        c.embed = 0;
        break;
    case CC_ENC_AUDIO:
        c.sample_rate = 16000;
        c.vocab = CA_MULAW_CLASSES;
        break;
    default:
        break;
    }
    return c;
}

bool cc_config_is_roll(const cc_config *c) { return c && c->encoding == CC_ENC_PIANOROLL; }

static bool is_int_valued(double v, double lo, double hi) {
    return isfinite(v) && v == floor(v) && v >= lo && v <= hi;
}

int64_t cc_config_vocab(const cc_config *c) {
    if (!c) return -1;
    switch (c->encoding) {
    case CC_ENC_TOKENS:
        return (c->vocab >= 1 && c->vocab <= MAX_TOKEN_VOCAB) ? c->vocab : -1;
    case CC_ENC_MELODY: {
        cm_melody_encoding e = {c->min_pitch, c->max_pitch};
        return cm_melody_encoding_valid(e) ? cm_melody_num_classes(e) : -1;
    }
    case CC_ENC_PERFORMANCE: {
        if (!is_int_valued(c->steps_per_second, 1, 1000)) return -1;
        cm_perf_config p = {(int)c->steps_per_second, c->max_shift_steps, c->num_velocity_bins};
        return cm_perf_config_valid(&p) ? cm_perf_num_classes(&p) : -1;
    }
    case CC_ENC_PIANOROLL: return CC_ROLL_KEYS;
    case CC_ENC_AUDIO: return CA_MULAW_CLASSES;
    default: return -1;
    }
}

ct_status cc_config_resolve(cc_config *c, char *err, size_t n) {
    if (!c) {
        say(err, n, "config is NULL");
        return CT_E_ARG;
    }
    cc_config r = *c;
    if (r.version == 0) r.version = CC_CONFIG_VERSION;
    if (r.version < 1 || r.version > CC_CONFIG_VERSION) {
        say(err, n, "config version %d: this cantor knows versions 1..%d", r.version,
            CC_CONFIG_VERSION);
        return CT_E_ARG;
    }
    if (r.encoding < 0 || r.encoding >= CC_ENC_COUNT) {
        say(err, n, "encoding %d: expected tokens, melody, performance, pianoroll or audio",
            (int)r.encoding);
        return CT_E_ARG;
    }
    const char *en = ENC_NAMES[r.encoding];
    /* encoding settings; clear what does not apply */
    cc_config k = {0};
    switch (r.encoding) {
    case CC_ENC_TOKENS:
        if (r.vocab < 1 || r.vocab > MAX_TOKEN_VOCAB) {
            say(err, n, "tokens: vocab %lld: expected 1..%d (set it to the number of token "
                "classes)", (long long)r.vocab, MAX_TOKEN_VOCAB);
            return CT_E_ARG;
        }
        break;
    case CC_ENC_MELODY:
        if (!cm_melody_encoding_valid((cm_melody_encoding){r.min_pitch, r.max_pitch})) {
            say(err, n, "melody: pitch range %d..%d: expected 0 <= min_pitch < max_pitch <= 128 "
                "(max exclusive)", r.min_pitch, r.max_pitch);
            return CT_E_ARG;
        }
        if (r.steps_per_quarter < 1 || r.steps_per_quarter > CM_MELODY_MAX_STEPS_PER_QUARTER) {
            say(err, n, "melody: steps_per_quarter %d: expected 1..%d", r.steps_per_quarter,
                CM_MELODY_MAX_STEPS_PER_QUARTER);
            return CT_E_ARG;
        }
        k.min_pitch = r.min_pitch;
        k.max_pitch = r.max_pitch;
        k.steps_per_quarter = r.steps_per_quarter;
        break;
    case CC_ENC_PERFORMANCE: {
        if (!is_int_valued(r.steps_per_second, 1, 1000)) {
            say(err, n, "performance: steps_per_second %g: expected a whole number 1..1000",
                r.steps_per_second);
            return CT_E_ARG;
        }
        if (r.max_shift_steps < 1 || r.max_shift_steps > 1000) {
            say(err, n, "performance: max_shift_steps %d: expected 1..1000", r.max_shift_steps);
            return CT_E_ARG;
        }
        if (r.num_velocity_bins < 0 || r.num_velocity_bins > 127) {
            say(err, n, "performance: num_velocity_bins %d: expected 0..127",
                r.num_velocity_bins);
            return CT_E_ARG;
        }
        k.steps_per_second = r.steps_per_second;
        k.max_shift_steps = r.max_shift_steps;
        k.num_velocity_bins = r.num_velocity_bins;
        break;
    }
    case CC_ENC_PIANOROLL: {
        bool q = r.steps_per_quarter != 0, s = r.steps_per_second != 0;
        if (q == s) {
            say(err, n, "pianoroll: set exactly one grid: steps_per_quarter (%d) or "
                "steps_per_second (%g)", r.steps_per_quarter, r.steps_per_second);
            return CT_E_ARG;
        }
        if (q && (r.steps_per_quarter < 1 || r.steps_per_quarter > 960)) {
            say(err, n, "pianoroll: steps_per_quarter %d: expected 1..960", r.steps_per_quarter);
            return CT_E_ARG;
        }
        if (s && !(isfinite(r.steps_per_second) && r.steps_per_second > 0 &&
                   r.steps_per_second <= MAX_ROLL_SPS)) {
            say(err, n, "pianoroll: steps_per_second %g: expected (0, %g]", r.steps_per_second,
                MAX_ROLL_SPS);
            return CT_E_ARG;
        }
        k.steps_per_quarter = r.steps_per_quarter;
        k.steps_per_second = r.steps_per_second;
        break;
    }
    case CC_ENC_AUDIO:
        if (r.sample_rate < 1 || r.sample_rate > MAX_SAMPLE_RATE) {
            say(err, n, "audio: sample_rate %d: expected 1..%d", r.sample_rate, MAX_SAMPLE_RATE);
            return CT_E_ARG;
        }
        k.sample_rate = r.sample_rate;
        break;
    default:
        break;
    }
    k.vocab = r.vocab;
    int64_t v = cc_config_vocab(&(cc_config){.encoding = r.encoding, .vocab = r.vocab,
                                              .min_pitch = k.min_pitch, .max_pitch = k.max_pitch,
                                              .steps_per_second = k.steps_per_second,
                                              .max_shift_steps = k.max_shift_steps,
                                              .num_velocity_bins = k.num_velocity_bins});
    if (r.vocab != 0 && r.vocab != v) {
        say(err, n, "%s: vocab %lld, but the encoding's settings give %lld classes (set vocab "
            "to 0 to derive it)", en, (long long)r.vocab, (long long)v);
        return CT_E_ARG;
    }
    k.vocab = v;
    /* network */
    if (r.cell < 0 || r.cell >= CC_CELL_COUNT) {
        say(err, n, "cell %d: expected lstm, gru or rnn", (int)r.cell);
        return CT_E_ARG;
    }
    if (r.layers < 1 || r.layers > MAX_LAYERS) {
        say(err, n, "layers %d: expected 1..%d", r.layers, MAX_LAYERS);
        return CT_E_ARG;
    }
    if (r.hidden < 1 || r.hidden > MAX_WIDTH) {
        say(err, n, "hidden %lld: expected 1..%d", (long long)r.hidden, MAX_WIDTH);
        return CT_E_ARG;
    }
    if (r.encoding == CC_ENC_PIANOROLL) {
        if (r.embed != 0) {
            say(err, n, "pianoroll: embed %lld: a piano-roll model has no embedding (frames of "
                "88 keys go in directly); set embed to 0", (long long)r.embed);
            return CT_E_ARG;
        }
    } else if (r.embed < 1 || r.embed > MAX_WIDTH) {
        say(err, n, "embed %lld: expected 1..%d", (long long)r.embed, MAX_WIDTH);
        return CT_E_ARG;
    }
    if (!(r.dropout >= 0.0f && r.dropout < 1.0f)) {
        say(err, n, "dropout %g: expected [0, 1)", (double)r.dropout);
        return CT_E_ARG;
    }
    k.version = r.version;
    k.encoding = r.encoding;
    k.cell = r.cell;
    k.layers = r.layers;
    k.hidden = r.hidden;
    k.embed = r.embed;
    k.dropout = r.dropout;
    *c = k;
    return CT_OK;
}

int64_t cc_config_num_params(const cc_config *c) {
    if (!c) return -1;
    cc_config r = *c;
    if (cc_config_resolve(&r, NULL, 0) != CT_OK) return -1;
    const int64_t G = r.cell == CC_LSTM ? 4 : r.cell == CC_GRU ? 3 : 1, H = r.hidden, V = r.vocab;
    int64_t in = cc_config_is_roll(&r) ? CC_ROLL_KEYS : r.embed;
    int64_t total = cc_config_is_roll(&r) ? 0 : V * r.embed;
    for (int l = 0; l < r.layers; l++) {
        total += G * H * ((l == 0 ? in : H) + H) + 2 * G * H;
    }
    return total + V * H + V;
}

int cc_config_describe(const cc_config *c, char *buf, size_t n) {
    if (!c) return snprintf(buf, n, "(no config)");
    return snprintf(buf, n, "%s %s %dx%lld", cc_encoding_name(c->encoding), cc_cell_label(c->cell),
                    c->layers, (long long)c->hidden);
}

/* ---- diff ---------------------------------------------------------------------------------- */
typedef struct diffbuf { char *buf; size_t n, used; int count; } diffbuf;

static void diff_add(diffbuf *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void diff_add(diffbuf *d, const char *fmt, ...) {
    d->count++;
    if (!d->buf || d->used + 1 >= d->n) return;
    if (d->count > 1) {
        int k = snprintf(d->buf + d->used, d->n - d->used, ", ");
        d->used = k < 0 ? d->n : d->used + (size_t)k;
        if (d->used >= d->n) { d->used = d->n - 1; return; }
    }
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(d->buf + d->used, d->n - d->used, fmt, ap);
    va_end(ap);
    d->used = k < 0 ? d->n - 1 : d->used + (size_t)k;
    if (d->used >= d->n) d->used = d->n - 1;
}

int cc_config_diff(const cc_config *a, const cc_config *b, char *buf, size_t n) {
    diffbuf d = {buf, n, 0, 0};
    if (buf && n) buf[0] = '\0';
    cc_config x = a ? *a : (cc_config){0}, y = b ? *b : (cc_config){0};
    bool okx = a && cc_config_resolve(&x, NULL, 0) == CT_OK;
    bool oky = b && cc_config_resolve(&y, NULL, 0) == CT_OK;
    if (!okx || !oky) {
        diff_add(&d, "%s is not a valid configuration", !okx ? "the first" : "the second");
        return d.count;
    }
    if (x.encoding != y.encoding)
        diff_add(&d, "encoding %s vs %s", cc_encoding_name(x.encoding), cc_encoding_name(y.encoding));
    if (x.vocab != y.vocab) diff_add(&d, "vocab %lld vs %lld", (long long)x.vocab, (long long)y.vocab);
    if (x.encoding == y.encoding) {
        if (x.min_pitch != y.min_pitch || x.max_pitch != y.max_pitch)
            diff_add(&d, "pitches %d..%d vs %d..%d", x.min_pitch, x.max_pitch, y.min_pitch,
                     y.max_pitch);
        if (x.steps_per_quarter != y.steps_per_quarter)
            diff_add(&d, "steps_per_quarter %d vs %d", x.steps_per_quarter, y.steps_per_quarter);
        if (x.steps_per_second != y.steps_per_second)
            diff_add(&d, "steps_per_second %g vs %g", x.steps_per_second, y.steps_per_second);
        if (x.max_shift_steps != y.max_shift_steps)
            diff_add(&d, "max_shift_steps %d vs %d", x.max_shift_steps, y.max_shift_steps);
        if (x.num_velocity_bins != y.num_velocity_bins)
            diff_add(&d, "num_velocity_bins %d vs %d", x.num_velocity_bins, y.num_velocity_bins);
        if (x.sample_rate != y.sample_rate)
            diff_add(&d, "sample_rate %d vs %d", x.sample_rate, y.sample_rate);
    }
    if (x.cell != y.cell) diff_add(&d, "cell %s vs %s", cc_cell_name(x.cell), cc_cell_name(y.cell));
    if (x.layers != y.layers) diff_add(&d, "layers %d vs %d", x.layers, y.layers);
    if (x.hidden != y.hidden) diff_add(&d, "hidden %lld vs %lld", (long long)x.hidden, (long long)y.hidden);
    if (x.embed != y.embed) diff_add(&d, "embed %lld vs %lld", (long long)x.embed, (long long)y.embed);
    return d.count;
}

/* ---- JSON writer ------------------------------------------------------------------------------ */
/* The shortest decimal that reads back as the same float / double. */
static void fmt_float(char *out, size_t n, float v) {
    for (int p = 1; p <= 9; p++) {
        snprintf(out, n, "%.*g", p, (double)v);
        if (strtof(out, NULL) == v) return;
    }
}

static void fmt_double(char *out, size_t n, double v) {
    for (int p = 1; p <= 17; p++) {
        snprintf(out, n, "%.*g", p, v);
        if (strtod(out, NULL) == v) return;
    }
}

int cc_config_to_json(const cc_config *c, char *buf, size_t n, char *err, size_t err_n) {
    cc_config r = c ? *c : (cc_config){0};
    if (!c) {
        say(err, err_n, "config is NULL");
        return -1;
    }
    if (cc_config_resolve(&r, err, err_n) != CT_OK) return -1;
    char f1[40], f2[40];
    int len = 0, k;
#define PUT(...)                                                                     \
    do {                                                                             \
        k = snprintf(buf && (size_t)len < n ? buf + len : NULL,                     \
                     buf && (size_t)len < n ? n - (size_t)len : 0, __VA_ARGS__);     \
        if (k < 0) return -1;                                                        \
        len += k;                                                                    \
    } while (0)
    PUT("{\"format\":\"%s\",\"version\":%d,\"model\":\"%s\",\"encoding\":\"%s\",\"vocab\":%lld",
        CC_CONFIG_FORMAT, r.version, cc_config_is_roll(&r) ? "pianoroll_rnn" : "token_rnn",
        cc_encoding_name(r.encoding), (long long)r.vocab);
    switch (r.encoding) {
    case CC_ENC_MELODY:
        PUT(",\"min_pitch\":%d,\"max_pitch\":%d,\"steps_per_quarter\":%d", r.min_pitch,
            r.max_pitch, r.steps_per_quarter);
        break;
    case CC_ENC_PERFORMANCE:
        fmt_double(f1, sizeof f1, r.steps_per_second);
        PUT(",\"steps_per_second\":%s,\"max_shift_steps\":%d,\"num_velocity_bins\":%d", f1,
            r.max_shift_steps, r.num_velocity_bins);
        break;
    case CC_ENC_PIANOROLL:
        fmt_double(f1, sizeof f1, r.steps_per_second);
        PUT(",\"steps_per_quarter\":%d,\"steps_per_second\":%s", r.steps_per_quarter, f1);
        break;
    case CC_ENC_AUDIO:
        PUT(",\"sample_rate\":%d", r.sample_rate);
        break;
    default:
        break;
    }
    fmt_float(f2, sizeof f2, r.dropout);
    PUT(",\"cell\":\"%s\",\"layers\":%d,\"hidden\":%lld", cc_cell_name(r.cell), r.layers,
        (long long)r.hidden);
    if (!cc_config_is_roll(&r)) PUT(",\"embed\":%lld", (long long)r.embed);
    PUT(",\"dropout\":%s}", f2);
#undef PUT
    return len;
}

/* ---- JSON parser: one flat object of string / number / literal values ------------------------- */
#define JMAX_KEYS 32
#define JMAX_STR 256

typedef enum jtype { J_STR, J_NUM, J_LIT } jtype;
typedef struct jval {
    char key[JMAX_STR];
    jtype type;
    char str[JMAX_STR];    /* J_STR: the text; J_NUM: the number's text; J_LIT: true/false/null */
    double num;
    size_t at;             /* byte offset of the value */
    bool used;
} jval;

typedef struct jparser {
    const char *s;
    size_t i, len;
    char *err;
    size_t err_n;
} jparser;

static void skip_ws(jparser *p) {
    while (p->i < p->len && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' ||
                             p->s[p->i] == '\r'))
        p->i++;
}

static bool jfail(jparser *p, const char *what) {
    if (p->i >= p->len)
        say(p->err, p->err_n, "at byte %zu (the end): %s", p->i, what);
    else {
        unsigned char ch = (unsigned char)p->s[p->i];
        if (ch >= 0x20 && ch < 0x7f)
            say(p->err, p->err_n, "at byte %zu ('%c'): %s", p->i, ch, what);
        else
            say(p->err, p->err_n, "at byte %zu (byte 0x%02x): %s", p->i, ch, what);
    }
    return false;
}

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

static bool put_utf8(char *out, size_t *k, uint32_t cp) {
    unsigned char b[4];
    size_t m;
    if (cp < 0x80) { b[0] = (unsigned char)cp; m = 1; }
    else if (cp < 0x800) { b[0] = (unsigned char)(0xC0 | (cp >> 6)); b[1] = (unsigned char)(0x80 | (cp & 0x3F)); m = 2; }
    else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | (cp >> 12)); b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F)); m = 3;
    } else {
        b[0] = (unsigned char)(0xF0 | (cp >> 18)); b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F)); b[3] = (unsigned char)(0x80 | (cp & 0x3F)); m = 4;
    }
    if (*k + m >= JMAX_STR) return false;
    memcpy(out + *k, b, m);
    *k += m;
    return true;
}

static bool read_u4(jparser *p, uint32_t *v) {
    if (p->i + 4 > p->len) return jfail(p, "\\u needs four hex digits");
    uint32_t x = 0;
    for (int j = 0; j < 4; j++) {
        int h = hexval(p->s[p->i + (size_t)j]);
        if (h < 0) return jfail(p, "\\u needs four hex digits");
        x = x * 16 + (uint32_t)h;
    }
    p->i += 4;
    *v = x;
    return true;
}

/* A string at p->i (the opening quote) into out (NUL-terminated, at most JMAX_STR - 1 bytes). */
static bool read_string(jparser *p, char *out) {
    if (p->i >= p->len || p->s[p->i] != '"') return jfail(p, "expected a string");
    p->i++;
    size_t k = 0;
    for (;;) {
        if (p->i >= p->len) return jfail(p, "unterminated string");
        unsigned char ch = (unsigned char)p->s[p->i];
        if (ch == '"') { p->i++; break; }
        if (ch < 0x20) return jfail(p, "control character in a string");
        if (ch == '\\') {
            p->i++;
            if (p->i >= p->len) return jfail(p, "unterminated escape");
            char e = p->s[p->i++];
            uint32_t cp;
            switch (e) {
            case '"': cp = '"'; break;
            case '\\': cp = '\\'; break;
            case '/': cp = '/'; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u': {
                if (!read_u4(p, &cp)) return false;
                if (cp >= 0xDC00 && cp <= 0xDFFF) return jfail(p, "lone low surrogate in \\u escape");
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    uint32_t lo;
                    if (p->i + 2 > p->len || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u')
                        return jfail(p, "high surrogate without its low half");
                    p->i += 2;
                    if (!read_u4(p, &lo)) return false;
                    if (lo < 0xDC00 || lo > 0xDFFF) return jfail(p, "bad low surrogate");
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                if (cp == 0) return jfail(p, "\\u0000 in a string");
                break;
            }
            default:
                p->i--;
                return jfail(p, "unknown escape");
            }
            if (!put_utf8(out, &k, cp)) return jfail(p, "string too long");
            continue;
        }
        if (k + 1 >= JMAX_STR) return jfail(p, "string too long");
        out[k++] = (char)ch;
        p->i++;
    }
    out[k] = '\0';
    return true;
}

/* A JSON number (the exact grammar) at p->i. */
static bool read_number(jparser *p, jval *v) {
    size_t st = p->i, i = p->i;
    const char *s = p->s;
    if (i < p->len && s[i] == '-') i++;
    if (i >= p->len || !isdigit((unsigned char)s[i])) { p->i = i; return jfail(p, "expected a digit"); }
    if (s[i] == '0') i++;
    else while (i < p->len && isdigit((unsigned char)s[i])) i++;
    if (i < p->len && s[i] == '.') {
        i++;
        if (i >= p->len || !isdigit((unsigned char)s[i])) { p->i = i; return jfail(p, "expected a digit after '.'"); }
        while (i < p->len && isdigit((unsigned char)s[i])) i++;
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= p->len || !isdigit((unsigned char)s[i])) { p->i = i; return jfail(p, "expected an exponent"); }
        while (i < p->len && isdigit((unsigned char)s[i])) i++;
    }
    if (i - st >= JMAX_STR) { p->i = st; return jfail(p, "number too long"); }
    memcpy(v->str, s + st, i - st);
    v->str[i - st] = '\0';
    v->num = strtod(v->str, NULL);
    if (!isfinite(v->num)) { p->i = st; return jfail(p, "number out of range"); }
    v->type = J_NUM;
    p->i = i;
    return true;
}

static bool read_literal(jparser *p, jval *v) {
    static const char *const lits[] = {"true", "false", "null"};
    for (int j = 0; j < 3; j++) {
        size_t m = strlen(lits[j]);
        if (p->i + m <= p->len && memcmp(p->s + p->i, lits[j], m) == 0) {
            strcpy(v->str, lits[j]);
            v->type = J_LIT;
            p->i += m;
            return true;
        }
    }
    return jfail(p, "expected a value (a string or a number)");
}

static bool parse_object(jparser *p, jval *vals, int *count) {
    *count = 0;
    skip_ws(p);
    if (p->i >= p->len || p->s[p->i] != '{') return jfail(p, "expected '{' (a JSON object)");
    p->i++;
    skip_ws(p);
    if (p->i < p->len && p->s[p->i] == '}') { p->i++; goto end; }
    for (;;) {
        skip_ws(p);
        if (*count >= JMAX_KEYS) return jfail(p, "too many keys");
        jval *v = &vals[*count];
        memset(v, 0, sizeof *v);
        size_t key_at = p->i;
        if (!read_string(p, v->key)) return false;
        for (int j = 0; j < *count; j++)
            if (strcmp(vals[j].key, v->key) == 0) {
                p->i = key_at;
                return jfail(p, "duplicate key");
            }
        skip_ws(p);
        if (p->i >= p->len || p->s[p->i] != ':') return jfail(p, "expected ':' after a key");
        p->i++;
        skip_ws(p);
        v->at = p->i;
        if (p->i >= p->len) return jfail(p, "expected a value");
        char ch = p->s[p->i];
        bool ok;
        if (ch == '"') { ok = read_string(p, v->str); v->type = J_STR; }
        else if (ch == '-' || isdigit((unsigned char)ch)) ok = read_number(p, v);
        else if (ch == '{' || ch == '[') ok = jfail(p, "nested objects and arrays are not part of a cantor config");
        else ok = read_literal(p, v);
        if (!ok) return false;
        (*count)++;
        skip_ws(p);
        if (p->i < p->len && p->s[p->i] == ',') { p->i++; continue; }
        if (p->i < p->len && p->s[p->i] == '}') { p->i++; break; }
        return jfail(p, "expected ',' or '}'");
    }
end:
    skip_ws(p);
    if (p->i != p->len) return jfail(p, "unexpected text after the object");
    return true;
}

static jval *jfind(jval *vals, int count, const char *key) {
    for (int j = 0; j < count; j++)
        if (strcmp(vals[j].key, key) == 0) return &vals[j];
    return NULL;
}

typedef struct jctx { jval *vals; int count; char *err; size_t err_n; } jctx;

static jval *need(jctx *j, const char *key, jtype type) {
    jval *v = jfind(j->vals, j->count, key);
    if (!v) {
        say(j->err, j->err_n, "missing key \"%s\"", key);
        return NULL;
    }
    if (v->type != type) {
        say(j->err, j->err_n, "key \"%s\" (byte %zu): expected %s, got %s", key, v->at,
            type == J_STR ? "a string" : "a number", v->type == J_STR ? "a string" : v->str);
        return NULL;
    }
    v->used = true;
    return v;
}

static bool need_str(jctx *j, const char *key, const char **out) {
    jval *v = need(j, key, J_STR);
    if (v) *out = v->str;
    return v != NULL;
}

static bool need_int(jctx *j, const char *key, int64_t lo, int64_t hi, int64_t *out) {
    jval *v = need(j, key, J_NUM);
    if (!v) return false;
    if (!is_int_valued(v->num, (double)lo, (double)hi)) {
        say(j->err, j->err_n, "key \"%s\" (byte %zu): %s: expected a whole number %lld..%lld",
            key, v->at, v->str, (long long)lo, (long long)hi);
        return false;
    }
    *out = (int64_t)v->num;
    return true;
}

static bool need_num(jctx *j, const char *key, double *out) {
    jval *v = need(j, key, J_NUM);
    if (v) *out = v->num;
    return v != NULL;
}

ct_status cc_config_from_json(const char *json, cc_config *out, char *err, size_t n) {
    if (!json || !out) {
        say(err, n, "cc_config_from_json: NULL %s", !json ? "json" : "out");
        return CT_E_ARG;
    }
    size_t len = strnlen(json, CC_CONFIG_JSON_MAX + 1);
    if (len > CC_CONFIG_JSON_MAX) {
        say(err, n, "config JSON longer than %d bytes", CC_CONFIG_JSON_MAX);
        return CT_E_FORMAT;
    }
    jval *vals = calloc(JMAX_KEYS, sizeof *vals);
    if (!vals) {
        say(err, n, "out of memory");
        return CT_E_NOMEM;
    }
    ct_status st = CT_E_FORMAT;
    jparser p = {json, 0, len, err, n};
    int count = 0;
    if (!parse_object(&p, vals, &count)) goto done;
    jctx j = {vals, count, err, n};
    const char *s;
    int64_t iv;
    cc_config c = {0};
    if (!need_str(&j, "format", &s)) goto done;
    if (strcmp(s, CC_CONFIG_FORMAT) != 0) {
        say(err, n, "\"format\" is \"%s\", expected \"%s\"", s, CC_CONFIG_FORMAT);
        goto done;
    }
    if (!need_int(&j, "version", 1, INT32_MAX, &iv)) goto done;
    if (iv > CC_CONFIG_VERSION) {
        say(err, n, "config version %lld is newer than this cantor reads (%d): update cantor",
            (long long)iv, CC_CONFIG_VERSION);
        st = CT_E_UNSUPPORTED;
        goto done;
    }
    c.version = (int)iv;
    if (!need_str(&j, "encoding", &s)) goto done;
    int e = cc_encoding_from_name(s);
    if (e < 0) {
        say(err, n, "unknown encoding \"%s\" (expected tokens, melody, performance, pianoroll or "
            "audio)", s);
        goto done;
    }
    c.encoding = (cc_encoding)e;
    const char *model_want = c.encoding == CC_ENC_PIANOROLL ? "pianoroll_rnn" : "token_rnn";
    if (!need_str(&j, "model", &s)) goto done;
    if (strcmp(s, model_want) != 0) {
        say(err, n, "\"model\" is \"%s\", but a %s config has model \"%s\"", s,
            cc_encoding_name(c.encoding), model_want);
        goto done;
    }
    if (!need_int(&j, "vocab", 1, MAX_TOKEN_VOCAB, &iv)) goto done;
    c.vocab = iv;
    switch (c.encoding) {
    case CC_ENC_MELODY:
        if (!need_int(&j, "min_pitch", 0, 127, &iv)) goto done;
        c.min_pitch = (int)iv;
        if (!need_int(&j, "max_pitch", 1, 128, &iv)) goto done;
        c.max_pitch = (int)iv;
        if (!need_int(&j, "steps_per_quarter", 1, CM_MELODY_MAX_STEPS_PER_QUARTER, &iv)) goto done;
        c.steps_per_quarter = (int)iv;
        break;
    case CC_ENC_PERFORMANCE:
        if (!need_num(&j, "steps_per_second", &c.steps_per_second)) goto done;
        if (!need_int(&j, "max_shift_steps", 1, 1000, &iv)) goto done;
        c.max_shift_steps = (int)iv;
        if (!need_int(&j, "num_velocity_bins", 0, 127, &iv)) goto done;
        c.num_velocity_bins = (int)iv;
        break;
    case CC_ENC_PIANOROLL:
        if (!need_int(&j, "steps_per_quarter", 0, 960, &iv)) goto done;
        c.steps_per_quarter = (int)iv;
        if (!need_num(&j, "steps_per_second", &c.steps_per_second)) goto done;
        break;
    case CC_ENC_AUDIO:
        if (!need_int(&j, "sample_rate", 1, MAX_SAMPLE_RATE, &iv)) goto done;
        c.sample_rate = (int)iv;
        break;
    default:
        break;
    }
    if (!need_str(&j, "cell", &s)) goto done;
    int cl = cc_cell_from_name(s);
    if (cl < 0 || strcmp(s, CELL_NAMES[cl]) != 0) {
        say(err, n, "unknown cell \"%s\" (expected lstm, gru or rnn)", s);
        goto done;
    }
    c.cell = (cc_cell)cl;
    if (!need_int(&j, "layers", 1, MAX_LAYERS, &iv)) goto done;
    c.layers = (int)iv;
    if (!need_int(&j, "hidden", 1, MAX_WIDTH, &iv)) goto done;
    c.hidden = iv;
    if (c.encoding != CC_ENC_PIANOROLL) {
        if (!need_int(&j, "embed", 1, MAX_WIDTH, &iv)) goto done;
        c.embed = iv;
    }
    double d;
    if (!need_num(&j, "dropout", &d)) goto done;
    if (!(d >= 0 && d < 1)) {
        say(err, n, "\"dropout\" %g: expected [0, 1)", d);
        goto done;
    }
    c.dropout = (float)d;
    for (int k = 0; k < count; k++)
        if (!vals[k].used) {
            static const char *const known[] = {"min_pitch", "max_pitch", "steps_per_quarter",
                                                "steps_per_second", "max_shift_steps",
                                                "num_velocity_bins", "sample_rate", "embed"};
            bool is_known = false;
            for (size_t q = 0; q < sizeof known / sizeof *known; q++)
                if (strcmp(vals[k].key, known[q]) == 0) is_known = true;
            if (is_known)
                say(err, n, "key \"%s\" does not apply to a %s config", vals[k].key,
                    cc_encoding_name(c.encoding));
            else
                say(err, n, "unknown key \"%s\"", vals[k].key);
            goto done;
        }
    char rerr[256];
    if (cc_config_resolve(&c, rerr, sizeof rerr) != CT_OK) {
        say(err, n, "%s", rerr);
        goto done;
    }
    *out = c;
    st = CT_OK;
done:
    free(vals);
    return st;
}
