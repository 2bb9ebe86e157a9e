/* apps/dashboard_json.c — a small JSON reader and writer for the dashboard.
 *
 * The reader builds a tree in one arena (so freeing is one call), decodes strings (\uXXXX with
 * surrogate pairs to UTF-8), limits nesting to 64 levels, and accepts the non-finite numbers
 * that C's printf and Python's json module write (nan, -nan, inf, NaN, Infinity), because
 * trainers write them. Errors name the byte offset. The writer escapes every control
 * character and writes non-finite numbers as null. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/cli.h"
#include "apps/dashboard_internal.h"

#define DJ_MAX_DEPTH 64

typedef struct dj_chunk {
    struct dj_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} dj_chunk;

struct dj_doc {
    dj_chunk *chunks;
    dj_val *root;
};

typedef struct dj_parser {
    const char *s;
    size_t len, pos;
    dj_doc *doc;
    char *err;
    size_t errlen;
    bool failed;
} dj_parser;

static void *arena_alloc(dj_parser *p, size_t n) {
    n = (n + 15) & ~(size_t)15;
    dj_chunk *c = p->doc->chunks;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 4096 ? n : 4096;
        if (c && cap < c->cap * 2 && c->cap < (1u << 20)) cap = c->cap * 2 > n ? c->cap * 2 : n;
        c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->used = 0;
        c->cap = cap;
        c->next = p->doc->chunks;
        p->doc->chunks = c;
    }
    void *r = c->data + c->used;
    c->used += n;
    return r;
}

static void fail(dj_parser *p, const char *what) {
    if (p->failed) return;
    p->failed = true;
    if (p->err && p->errlen) snprintf(p->err, p->errlen, "byte %zu: %s", p->pos, what);
}

static void skip_ws(dj_parser *p) {
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static bool lit(dj_parser *p, const char *word) {
    size_t n = strlen(word);
    if (p->len - p->pos >= n && memcmp(p->s + p->pos, word, n) == 0) {
        p->pos += n;
        return true;
    }
    return false;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool read_hex4(dj_parser *p, unsigned *out) {
    if (p->len - p->pos < 4) return false;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p->s[p->pos + (size_t)i]);
        if (h < 0) return false;
        v = v * 16 + (unsigned)h;
    }
    p->pos += 4;
    *out = v;
    return true;
}

/* A string at p->pos (which is '"'); decoded into the arena. */
static const char *parse_string(dj_parser *p, size_t *outlen) {
    p->pos++;   /* the quote */
    size_t start = p->pos, raw = 0;
    /* the decoded text is never longer than the raw one */
    while (p->pos < p->len && p->s[p->pos] != '"') {
        if (p->s[p->pos] == '\\') p->pos++;
        p->pos++;
    }
    if (p->pos >= p->len) { fail(p, "unterminated string"); return NULL; }
    raw = p->pos - start;
    char *out = arena_alloc(p, raw + 1);
    if (!out) { fail(p, "out of memory"); return NULL; }
    size_t o = 0;
    p->pos = start;
    while (p->s[p->pos] != '"') {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c < 0x20) { fail(p, "control character in a string"); return NULL; }
        if (c != '\\') { out[o++] = (char)c; p->pos++; continue; }
        p->pos++;
        char e = p->s[p->pos++];
        switch (e) {
        case '"': out[o++] = '"'; break;
        case '\\': out[o++] = '\\'; break;
        case '/': out[o++] = '/'; break;
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'u': {
            unsigned cp;
            if (!read_hex4(p, &cp)) { fail(p, "bad \\u escape"); return NULL; }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (p->len - p->pos < 6 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u') {
                    fail(p, "a high surrogate without its low half");
                    return NULL;
                }
                p->pos += 2;
                if (!read_hex4(p, &lo) || lo < 0xDC00 || lo > 0xDFFF) { fail(p, "bad low surrogate"); return NULL; }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                fail(p, "a lone low surrogate");
                return NULL;
            }
            if (cp == 0) { fail(p, "\\u0000 in a string"); return NULL; }
            /* \uXXXX is 6 raw bytes and at most 3 UTF-8 bytes; a pair is 12 and 4 */
            if (cp < 0x80) out[o++] = (char)cp;
            else if (cp < 0x800) { out[o++] = (char)(0xC0 | (cp >> 6)); out[o++] = (char)(0x80 | (cp & 0x3F)); }
            else if (cp < 0x10000) {
                out[o++] = (char)(0xE0 | (cp >> 12));
                out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                out[o++] = (char)(0x80 | (cp & 0x3F));
            } else {
                out[o++] = (char)(0xF0 | (cp >> 18));
                out[o++] = (char)(0x80 | ((cp >> 12) & 0x3F));
                out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                out[o++] = (char)(0x80 | (cp & 0x3F));
            }
            break;
        }
        default: p->pos--; fail(p, "bad escape in a string"); return NULL;
        }
    }
    p->pos++;   /* the closing quote */
    out[o] = 0;
    *outlen = o;
    return out;
}

static bool parse_number(dj_parser *p, dj_val *v) {
    size_t start = p->pos;
    bool neg = false;
    if (p->s[p->pos] == '-') { neg = true; p->pos++; }
    /* the non-finite spellings trainers write */
    static const char *const nans[] = {"NaN", "nan", "NAN"}, *const infs[] = {"Infinity", "inf", "Inf", "INF"};
    for (size_t i = 0; i < sizeof nans / sizeof *nans; i++)
        if (lit(p, nans[i])) { v->num = NAN; return true; }
    for (size_t i = 0; i < sizeof infs / sizeof *infs; i++)
        if (lit(p, infs[i])) { v->num = neg ? -INFINITY : INFINITY; return true; }
    size_t digits = p->pos;
    if (p->pos < p->len && p->s[p->pos] == '0') p->pos++;
    else while (p->pos < p->len && isdigit((unsigned char)p->s[p->pos])) p->pos++;
    if (p->pos == digits) { fail(p, "expected a value"); return false; }
    v->is_int = true;
    if (p->pos < p->len && p->s[p->pos] == '.') {
        v->is_int = false;
        p->pos++;
        size_t f = p->pos;
        while (p->pos < p->len && isdigit((unsigned char)p->s[p->pos])) p->pos++;
        if (p->pos == f) { fail(p, "expected digits after '.'"); return false; }
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        v->is_int = false;
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-')) p->pos++;
        size_t f = p->pos;
        while (p->pos < p->len && isdigit((unsigned char)p->s[p->pos])) p->pos++;
        if (p->pos == f) { fail(p, "expected digits in the exponent"); return false; }
    }
    char tmp[64];
    size_t n = p->pos - start;
    if (n >= sizeof tmp) {   /* a long number: copy into the arena for strtod */
        char *big = arena_alloc(p, n + 1);
        if (!big) { fail(p, "out of memory"); return false; }
        memcpy(big, p->s + start, n);
        big[n] = 0;
        v->num = strtod(big, NULL);
    } else {
        memcpy(tmp, p->s + start, n);
        tmp[n] = 0;
        v->num = strtod(tmp, NULL);
    }
    (void)neg;
    return true;
}

static dj_val *parse_value(dj_parser *p, int depth) {
    skip_ws(p);
    if (p->pos >= p->len) { fail(p, "expected a value, found the end"); return NULL; }
    dj_val *v = arena_alloc(p, sizeof *v);
    if (!v) { fail(p, "out of memory"); return NULL; }
    memset(v, 0, sizeof *v);
    char c = p->s[p->pos];
    if (c == '{' || c == '[') {
        if (depth >= DJ_MAX_DEPTH) { fail(p, "nested too deeply"); return NULL; }
        bool obj = c == '{';
        char close = obj ? '}' : ']';
        v->type = obj ? DJ_OBJ : DJ_ARR;
        p->pos++;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == close) { p->pos++; return v; }
        dj_val **tail = &v->child;
        for (;;) {
            const char *key = NULL;
            if (obj) {
                skip_ws(p);
                if (p->pos >= p->len || p->s[p->pos] != '"') { fail(p, "expected a string key"); return NULL; }
                size_t kl;
                key = parse_string(p, &kl);
                if (!key) return NULL;
                skip_ws(p);
                if (p->pos >= p->len || p->s[p->pos] != ':') { fail(p, "expected ':' after an object key"); return NULL; }
                p->pos++;
            }
            dj_val *item = parse_value(p, depth + 1);
            if (!item) return NULL;
            item->key = key;
            *tail = item;
            tail = &item->next;
            v->n++;
            skip_ws(p);
            if (p->pos < p->len && p->s[p->pos] == ',') { p->pos++; continue; }
            if (p->pos < p->len && p->s[p->pos] == close) { p->pos++; return v; }
            fail(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
            return NULL;
        }
    }
    if (c == '"') {
        v->type = DJ_STR;
        v->str = parse_string(p, &v->len);
        return v->str ? v : NULL;
    }
    if (lit(p, "true")) { v->type = DJ_BOOL; v->b = true; return v; }
    if (lit(p, "false")) { v->type = DJ_BOOL; return v; }
    if (lit(p, "null")) return v;
    v->type = DJ_NUM;
    if (c == '-' || isdigit((unsigned char)c) || c == 'N' || c == 'n' || c == 'I' || c == 'i')
        return parse_number(p, v) ? v : NULL;
    fail(p, "expected a value");
    return NULL;
}

dj_doc *dj_parse(const char *text, size_t len, char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    dj_doc *d = calloc(1, sizeof *d);
    if (!d) {
        if (err && errlen) snprintf(err, errlen, "out of memory");
        return NULL;
    }
    dj_parser p = {text, len, 0, d, err, errlen, false};
    d->root = parse_value(&p, 0);
    if (d->root) {
        skip_ws(&p);
        if (p.pos != p.len) fail(&p, "unexpected text after the value");
    }
    if (p.failed || !d->root) {
        if (!p.failed) fail(&p, "expected a value");
        dj_free(d);
        return NULL;
    }
    return d;
}

void dj_free(dj_doc *d) {
    if (!d) return;
    for (dj_chunk *c = d->chunks, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    free(d);
}

const dj_val *dj_root(const dj_doc *d) { return d ? d->root : NULL; }

const dj_val *dj_get(const dj_val *obj, const char *key) {
    if (!obj || obj->type != DJ_OBJ) return NULL;
    for (const dj_val *v = obj->child; v; v = v->next)
        if (strcmp(v->key, key) == 0) return v;
    return NULL;
}

/* ---- writer ---------------------------------------------------------------------------------- */
static bool jb_reserve(dj_buf *b, size_t extra) {
    if (b->failed) return false;
    size_t need = b->len + extra + 1;
    if (b->limit && need > b->limit) { b->failed = true; return false; }
    if (need <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < need) cap *= 2;
    char *q = realloc(b->p, cap);
    if (!q) { b->failed = true; return false; }
    b->p = q;
    b->cap = cap;
    return true;
}

void jb_raw(dj_buf *b, const char *s, size_t n) {
    if (!jb_reserve(b, n)) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void jb_s(dj_buf *b, const char *s) { jb_raw(b, s, strlen(s)); }

void jb_printf(dj_buf *b, const char *fmt, ...) {
    if (b->failed) return;
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) { b->failed = true; return; }
    if ((size_t)n < sizeof tmp) { jb_raw(b, tmp, (size_t)n); return; }
    if (!jb_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void jb_strn(dj_buf *b, const char *s, size_t n) {
    const size_t need = cli_json_escape(NULL, 0, s, n);
    if (!jb_reserve(b, need)) return;
    b->len += cli_json_escape(b->p + b->len, need + 1, s, n);
}

void jb_str(dj_buf *b, const char *s) { jb_strn(b, s ? s : "", s ? strlen(s) : 0); }

void jb_num(dj_buf *b, double v) {
    if (!isfinite(v)) jb_raw(b, "null", 4);
    else jb_printf(b, "%.9g", v);
}

void jb_float(dj_buf *b, float v) {
    if (!isfinite(v)) jb_raw(b, "null", 4);
    else jb_printf(b, "%.7g", (double)v);
}

void jb_int(dj_buf *b, int64_t v) { jb_printf(b, "%lld", (long long)v); }

void jb_val(dj_buf *b, const dj_val *v) {
    if (!v) { jb_raw(b, "null", 4); return; }
    switch (v->type) {
    case DJ_NULL: jb_raw(b, "null", 4); break;
    case DJ_BOOL: jb_s(b, v->b ? "true" : "false"); break;
    case DJ_NUM:
        if (v->is_int && fabs(v->num) < 9.007199254740992e15) jb_int(b, (int64_t)v->num);
        else jb_num(b, v->num);
        break;
    case DJ_STR: jb_strn(b, v->str, v->len); break;
    case DJ_ARR:
    case DJ_OBJ:
        jb_raw(b, v->type == DJ_ARR ? "[" : "{", 1);
        for (const dj_val *c = v->child; c; c = c->next) {
            if (c != v->child) jb_raw(b, ",", 1);
            if (v->type == DJ_OBJ) {
                jb_str(b, c->key);
                jb_raw(b, ":", 1);
            }
            jb_val(b, c);
        }
        jb_raw(b, v->type == DJ_ARR ? "]" : "}", 1);
        break;
    }
}

char *jb_take(dj_buf *b, size_t *len) {
    if (b->failed) {
        jb_free(b);
        return NULL;
    }
    if (!b->p) jb_reserve(b, 0);
    if (b->failed) { jb_free(b); return NULL; }
    char *p = b->p;
    if (len) *len = b->len;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

void jb_free(dj_buf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->failed = false;
}
