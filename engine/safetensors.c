/* engine/safetensors.c — safetensors files: an atomic writer that lays files out as the
 * reference writer does, and a strict, bounded reader with a small JSON parser for exactly
 * the header's grammar (objects, arrays, strings with escapes, non-negative integers).
 *
 * Reading never trusts a size from the file: the header length is checked against the file's
 * size before anything is allocated, strings grow only as far as the header goes, the JSON
 * grammar has a fixed depth (no recursion), integers are checked for overflow, and the
 * tensors' offsets are checked to tile the data section exactly before any data is read.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/internal.h"
#include "engine/safetensors.h"

typedef unsigned long long ull;

#define ST_FIX "the file is damaged or not a safetensors file: write it again " \
               "(ct_safetensors_save or safetensors.torch.save_file)"

/* ---- small helpers ------------------------------------------------------------------------- */


/* Offset of the first byte that is not part of valid UTF-8 (n if all are). */
static size_t utf8_check(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t len;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
        else return i;
        if (len > n - i) return i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += len;
    }
    return n;
}

/* A growable byte buffer. */
typedef struct sbuf { char *d; size_t n, cap; bool oom; } sbuf;

static void sb_put(sbuf *b, const void *p, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 64;
        while (nc < b->n + n + 1) nc *= 2;
        char *d = realloc(b->d, nc);
        if (!d) { b->oom = true; return; }
        b->d = d;
        b->cap = nc;
    }
    memcpy(b->d + b->n, p, n);
    b->n += n;
    b->d[b->n] = 0;
}
static void sb_putc(sbuf *b, char c) { sb_put(b, &c, 1); }
static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }
static void sb_u64(sbuf *b, uint64_t v) {
    char t[24];
    int k = snprintf(t, sizeof t, "%llu", (ull)v);
    sb_put(b, t, (size_t)k);
}

/* A JSON string as serde_json writes it. */
static void sb_json_str(sbuf *b, const char *s) {
    sb_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char t[8];
        switch (*p) {
        case '"': sb_puts(b, "\\\""); break;
        case '\\': sb_puts(b, "\\\\"); break;
        case '\b': sb_puts(b, "\\b"); break;
        case '\f': sb_puts(b, "\\f"); break;
        case '\n': sb_puts(b, "\\n"); break;
        case '\r': sb_puts(b, "\\r"); break;
        case '\t': sb_puts(b, "\\t"); break;
        default:
            if (*p < 0x20) {
                snprintf(t, sizeof t, "\\u%04x", *p);
                sb_puts(b, t);
            } else {
                sb_putc(b, (char)*p);
            }
        }
    }
    sb_putc(b, '"');
}

static const char *st_dtype_name(ct_dtype d) { return d == CT_I64 ? "I64" : "F32"; }

static void fmt_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    ct__fmt_shape(ndim, shape, buf, cap);
}


/* ---- atomic writes ------------------------------------------------------------------------- */




/* ---- writing ----------------------------------------------------------------------------------- */
typedef struct wentry { const char *name; const ct_tensor *t; } wentry;

static int wentry_cmp(const void *a, const void *b) {
    const wentry *x = a, *y = b;
    if (x->t->dtype != y->t->dtype) return x->t->dtype == CT_I64 ? -1 : 1;   /* I64 first */
    return strcmp(x->name, y->name);
}

static int str_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first name that occurs twice among n, or NULL. */
static const char *first_dup(const char *const *names, int n, bool *oom) {
    *oom = false;
    if (n < 2) return NULL;
    const char **s = malloc((size_t)n * sizeof *s);
    if (!s) { *oom = true; return NULL; }
    memcpy(s, names, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, str_cmp);
    const char *dup = NULL;
    for (int i = 1; i < n && !dup; i++)
        if (strcmp(s[i - 1], s[i]) == 0) dup = s[i];
    free(s);
    return dup;
}

static ct_status write_tensor_data(ct__wfile *w, const ct_tensor *t) {
    size_t nbytes = (size_t)ct_numel(t) * ct_dtype_size(t->dtype);
    if (nbytes == 0) return CT_OK;
    const void *bytes;
    void *owned;
    ct_status st = ct__tensor_le_bytes(w->ctx, w->path, t, &bytes, &owned);
    if (!st) st = ct__wf_write(w, bytes, nbytes);
    free(owned);
    return st;
}

ct_status ct_safetensors_write(ct_ctx *ctx, const char *path, int n, const char *const *names,
                               const ct_tensor *const *ts, int n_meta,
                               const char *const *meta_keys, const char *const *meta_values) {
    if (!ctx) return CT_E_NULL;
    if (!path || !*path) return ct_fail(ctx, CT_E_ARG, "safetensors_write: the path is NULL or empty");
    if (n < 0 || n_meta < 0 || (n > 0 && (!names || !ts)) ||
        (n_meta > 0 && (!meta_keys || !meta_values)))
        return ct__failf(ctx, CT_E_ARG, path, "safetensors_write: %d tensors and %d metadata pairs with "
                     "NULL arrays or negative counts", n, n_meta);
    for (int i = 0; i < n; i++) {
        if (!ts[i]) return CT_E_NULL;
        if (!names[i] || !*names[i])
            return ct__failf(ctx, CT_E_ARG, path, "tensor %d has a NULL or empty name", i);
        if (strcmp(names[i], "__metadata__") == 0)
            return ct__failf(ctx, CT_E_ARG, path, "tensor %d is named \"__metadata__\", the key the "
                         "format keeps for metadata: rename it", i);
        if (utf8_check((const uint8_t *)names[i], strlen(names[i])) != strlen(names[i]))
            return ct__failf(ctx, CT_E_ARG, path, "the name of tensor %d is not valid UTF-8", i);
        if (ts[i]->dtype != CT_F32 && ts[i]->dtype != CT_I64)
            return ct__failf(ctx, CT_E_DTYPE, path, "tensor '%s' has dtype %d; cantor writes float32 "
                         "and int64", names[i], (int)ts[i]->dtype);
    }
    for (int i = 0; i < n_meta; i++) {
        const char *k = meta_keys[i], *v = meta_values[i];
        if (!k || !v)
            return ct__failf(ctx, CT_E_ARG, path, "metadata pair %d has a NULL key or value", i);
        if (utf8_check((const uint8_t *)k, strlen(k)) != strlen(k) ||
            utf8_check((const uint8_t *)v, strlen(v)) != strlen(v))
            return ct__failf(ctx, CT_E_ARG, path, "metadata pair %d ('%s') is not valid UTF-8", i, k);
    }
    bool oom;
    const char *dup = first_dup(names, n, &oom);
    if (!oom && dup)
        return ct__failf(ctx, CT_E_ARG, path, "two tensors are named '%s'; names must be distinct", dup);
    if (!oom && (dup = first_dup(meta_keys, n_meta, &oom)) != NULL)
        return ct__failf(ctx, CT_E_ARG, path, "the metadata key '%s' is given twice", dup);
    wentry *e = oom ? NULL : malloc((size_t)(n ? n : 1) * sizeof *e);
    if (!e) return ct__failf(ctx, CT_E_NOMEM, path, "out of memory");
    for (int i = 0; i < n; i++) e[i] = (wentry){names[i], ts[i]};
    qsort(e, (size_t)n, sizeof *e, wentry_cmp);

    /* the header */
    sbuf h = {0};
    sb_putc(&h, '{');
    if (n_meta > 0) {
        sb_puts(&h, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) sb_putc(&h, ',');
            sb_json_str(&h, meta_keys[i]);
            sb_putc(&h, ':');
            sb_json_str(&h, meta_values[i]);
        }
        sb_putc(&h, '}');
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const ct_tensor *t = e[i].t;
        if (i || n_meta > 0) sb_putc(&h, ',');
        sb_json_str(&h, e[i].name);
        sb_puts(&h, ":{\"dtype\":\"");
        sb_puts(&h, st_dtype_name(t->dtype));
        sb_puts(&h, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            if (d) sb_putc(&h, ',');
            sb_u64(&h, (uint64_t)t->shape[d]);
        }
        uint64_t nb = (uint64_t)ct_numel(t) * ct_dtype_size(t->dtype);
        sb_puts(&h, "],\"data_offsets\":[");
        sb_u64(&h, off);
        sb_putc(&h, ',');
        sb_u64(&h, off + nb);
        sb_puts(&h, "]}");
        off += nb;
    }
    sb_putc(&h, '}');
    while (h.n % 8) sb_putc(&h, ' ');
    if (h.oom) {
        free(h.d);
        free(e);
        return ct__failf(ctx, CT_E_NOMEM, path, "out of memory building the header");
    }
    if (h.n > CT_SAFETENSORS_MAX_HEADER) {
        free(h.d);
        free(e);
        return ct__failf(ctx, CT_E_ARG, path, "the header would have %zu bytes, more than the %u the "
                     "format allows: fewer or shorter names", h.n, CT_SAFETENSORS_MAX_HEADER);
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)h.n >> (8 * i));

    ct__wfile w = {.ctx = ctx, .path = path};
    ct_status st = ct__wf_open(&w);
    if (!st) {
        st = ct__wf_write(&w, len8, 8);
        if (!st) st = ct__wf_write(&w, h.d, h.n);
        for (int i = 0; i < n && !st; i++) st = write_tensor_data(&w, e[i].t);
        st = ct__wf_finish(&w, st);
    }
    free(h.d);
    free(e);
    return st;
}

ct_status ct_safetensors_save(const char *path, ct_module *root, int n_meta,
                              const char *const *meta_keys, const char *const *meta_values) {
    if (!root) return CT_E_NULL;
    int n = ct_module_param_count(root);
    char **names = calloc((size_t)(n ? n : 1), sizeof *names);
    const ct_tensor **ts = calloc((size_t)(n ? n : 1), sizeof *ts);
    ct_status st = CT_OK;
    if (!names || !ts) {
        st = ct__failf(root->ctx, CT_E_NOMEM, path ? path : "(null)", "out of memory");
    } else {
        char buf[512];
        for (int i = 0; i < n && !st; i++) {
            ts[i] = ct_module_param_at(root, i, buf, sizeof buf);
            if (!(names[i] = strdup(buf))) st = ct__failf(root->ctx, CT_E_NOMEM, path, "out of memory");
        }
        if (!st)
            st = ct_safetensors_write(root->ctx, path, n, (const char *const *)names, ts, n_meta,
                                      meta_keys, meta_values);
    }
    for (int i = 0; names && i < n; i++) free(names[i]);
    free(names);
    free(ts);
    return st;
}

/* ---- reading: the JSON header --------------------------------------------------------------- */
typedef struct st_entry {
    char *name;
    ct_dtype dtype;
    int ndim;
    int64_t shape[CT_MAX_DIMS];
    uint64_t begin, end;
    size_t at;                 /* byte of its name in the header */
} st_entry;

struct ct_safetensors {
    ct_ctx *ctx;
    char *path;
    int fd;
    uint64_t data_off, data_size;
    st_entry *e;               /* in data-offset order */
    int n, cap;
    st_entry **by_name;        /* the entries sorted by name */
    char **mk, **mv;           /* metadata */
    int n_meta, cap_meta;
};

typedef struct jp {
    ct_safetensors *f;
    const char *s;
    size_t n, i;
} jp;

static ct_status jp_fail_st(jp *p, ct_status s, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static ct_status jp_fail_st(jp *p, ct_status s, size_t at, const char *fmt, ...) {
    char detail[600], ex[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    if (at > p->n) at = p->n;
    size_t k = p->n - at < 24 ? p->n - at : 24;
    return ct__failf(p->f->ctx, s, p->f->path, "bad safetensors header at byte %llu: %s (the header "
                 "there reads \"%s\"); %s", (ull)(8 + at), detail,
                 k ? ct__esc(ex, sizeof ex, p->s + at, k) : "<end of header>", ST_FIX);
}
#define jp_fail(p, at, ...) jp_fail_st(p, CT_E_FORMAT, at, __VA_ARGS__)

static void jp_ws(jp *p) {
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' ||
                           p->s[p->i] == '\r'))
        p->i++;
}

/* what is at the cursor, for messages */
static const char *jp_here(jp *p, char *buf, size_t cap) {
    if (p->i >= p->n) return "the end of the header";
    char e[16];
    snprintf(buf, cap, "'%s'", ct__esc(e, sizeof e, p->s + p->i, 1));
    return buf;
}

static ct_status jp_expect(jp *p, char c, const char *what) {
    jp_ws(p);
    if (p->i < p->n && p->s[p->i] == c) {
        p->i++;
        return CT_OK;
    }
    char b[32];
    return jp_fail(p, p->i, "expected '%c' %s, found %s", c, what, jp_here(p, b, sizeof b));
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool jp_hex4(jp *p, uint32_t *out) {
    if (p->n - p->i < 4) return false;
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(p->s[p->i + (size_t)k]);
        if (h < 0) return false;
        v = v * 16 + (uint32_t)h;
    }
    p->i += 4;
    *out = v;
    return true;
}

static void sb_utf8(sbuf *b, uint32_t cp) {
    char u[4];
    size_t k;
    if (cp < 0x80) { u[0] = (char)cp; k = 1; }
    else if (cp < 0x800) { u[0] = (char)(0xC0 | (cp >> 6)); u[1] = (char)(0x80 | (cp & 0x3F)); k = 2; }
    else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12)); u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F)); k = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18)); u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); u[3] = (char)(0x80 | (cp & 0x3F)); k = 4;
    }
    sb_put(b, u, k);
}

/* A JSON string (the header is valid UTF-8 already); *out is malloc()ed. */
static ct_status jp_string(jp *p, char **out, const char *what) {
    *out = NULL;
    jp_ws(p);
    if (p->i >= p->n || p->s[p->i] != '"') {
        char b[32];
        return jp_fail(p, p->i, "expected %s (a string in double quotes), found %s", what,
                       jp_here(p, b, sizeof b));
    }
    size_t start = p->i++;
    sbuf b = {0};
    sb_put(&b, "", 0);
    for (;;) {
        if (p->i >= p->n) {
            free(b.d);
            return jp_fail(p, start, "the string that starts here (%s) is not terminated", what);
        }
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == '"') { p->i++; break; }
        if (c < 0x20) {
            free(b.d);
            return jp_fail(p, p->i, "a raw control character 0x%02x inside a string (JSON needs "
                           "it escaped)", c);
        }
        if (c != '\\') {
            size_t j = p->i;   /* copy a run of plain bytes */
            while (j < p->n && p->s[j] != '"' && p->s[j] != '\\' && (unsigned char)p->s[j] >= 0x20) j++;
            sb_put(&b, p->s + p->i, j - p->i);
            p->i = j;
            continue;
        }
        size_t at = p->i++;
        char e = p->i < p->n ? p->s[p->i++] : 0;
        switch (e) {
        case '"': sb_putc(&b, '"'); break;
        case '\\': sb_putc(&b, '\\'); break;
        case '/': sb_putc(&b, '/'); break;
        case 'b': sb_putc(&b, '\b'); break;
        case 'f': sb_putc(&b, '\f'); break;
        case 'n': sb_putc(&b, '\n'); break;
        case 'r': sb_putc(&b, '\r'); break;
        case 't': sb_putc(&b, '\t'); break;
        case 'u': {
            uint32_t cp, lo;
            if (!jp_hex4(p, &cp)) {
                free(b.d);
                return jp_fail(p, at, "a \\u escape needs four hex digits");
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (p->n - p->i < 2 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u' ||
                    (p->i += 2, !jp_hex4(p, &lo)) || lo < 0xDC00 || lo > 0xDFFF) {
                    free(b.d);
                    return jp_fail(p, at, "a lone UTF-16 surrogate \\u%04X (a high surrogate must "
                                   "be followed by a \\uDC00-\\uDFFF escape)", (unsigned)cp);
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                free(b.d);
                return jp_fail(p, at, "a lone UTF-16 surrogate \\u%04X", (unsigned)cp);
            }
            if (cp == 0) {
                free(b.d);
                return jp_fail_st(p, CT_E_UNSUPPORTED, at, "\\u0000 (a NUL character) inside a "
                                  "string: cantor's names and metadata are C strings");
            }
            sb_utf8(&b, cp);
            break;
        }
        default: {
            char x[16];
            free(b.d);
            return jp_fail(p, at, "unknown escape '\\%s' in a string (JSON has \\\" \\\\ \\/ \\b \\f "
                           "\\n \\r \\t \\uXXXX)", e ? ct__esc(x, sizeof x, &e, 1) : "<end>");
        }
        }
    }
    if (b.oom) {
        free(b.d);
        return ct__failf(p->f->ctx, CT_E_NOMEM, p->f->path, "out of memory reading the header");
    }
    *out = b.d;
    return CT_OK;
}

/* A non-negative JSON integer. */
static ct_status jp_uint(jp *p, uint64_t *out, const char *what) {
    jp_ws(p);
    size_t at = p->i;
    char b[32];
    if (at < p->n && p->s[at] == '-')
        return jp_fail(p, at, "%s must be a non-negative integer, found a negative number", what);
    if (at >= p->n || p->s[at] < '0' || p->s[at] > '9')
        return jp_fail(p, at, "%s: expected a non-negative integer, found %s", what,
                       jp_here(p, b, sizeof b));
    if (p->s[at] == '0' && at + 1 < p->n && p->s[at + 1] >= '0' && p->s[at + 1] <= '9')
        return jp_fail(p, at, "%s: a number with a leading zero is not JSON", what);
    uint64_t v = 0;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
        unsigned d = (unsigned)(p->s[p->i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return jp_fail(p, at, "%s: the integer does not fit in 64 bits", what);
        v = v * 10 + d;
        p->i++;
    }
    if (p->i < p->n && (p->s[p->i] == '.' || p->s[p->i] == 'e' || p->s[p->i] == 'E'))
        return jp_fail(p, at, "%s must be an integer, found a fractional or exponent number", what);
    *out = v;
    return CT_OK;
}

/* after an item: ',' (returns true: more follow) or the closer (false) */
static ct_status jp_next(jp *p, char closer, const char *what, bool *more) {
    jp_ws(p);
    if (p->i < p->n && p->s[p->i] == ',') { p->i++; *more = true; return CT_OK; }
    if (p->i < p->n && p->s[p->i] == closer) { p->i++; *more = false; return CT_OK; }
    char b[32];
    return jp_fail(p, p->i, "expected ',' or '%c' %s, found %s", closer, what, jp_here(p, b, sizeof b));
}

static bool jp_peek(jp *p, char c) {
    jp_ws(p);
    return p->i < p->n && p->s[p->i] == c;
}

static const char *const OTHER_DTYPES[] = {
    "BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32", "U32", "F64",
    "U64", NULL,
};

static ct_status parse_metadata(jp *p) {
    ct_safetensors *f = p->f;
    ct_status st = jp_expect(p, '{', "to open \"__metadata__\" (an object of string values)");
    if (st) return st;
    if (jp_peek(p, '}')) { p->i++; return CT_OK; }
    for (bool more = true; more;) {
        char *k = NULL, *v = NULL;
        if ((st = jp_string(p, &k, "a metadata key"))) return st;
        if ((st = jp_expect(p, ':', "after a metadata key"))) { free(k); return st; }
        jp_ws(p);
        if (p->i < p->n && p->s[p->i] != '"') {
            st = jp_fail(p, p->i, "the metadata value of '%s' must be a string (safetensors "
                         "metadata maps strings to strings)", k);
            free(k);
            return st;
        }
        if ((st = jp_string(p, &v, "a metadata value"))) { free(k); return st; }
        if (f->n_meta == f->cap_meta) {
            int nc = f->cap_meta ? f->cap_meta * 2 : 8;
            char **a = realloc(f->mk, (size_t)nc * sizeof *a);
            if (a) f->mk = a;
            char **b = a ? realloc(f->mv, (size_t)nc * sizeof *b) : NULL;
            if (b) f->mv = b;
            if (!a || !b) {
                free(k);
                free(v);
                return ct__failf(f->ctx, CT_E_NOMEM, f->path, "out of memory reading the header");
            }
            f->cap_meta = nc;
        }
        f->mk[f->n_meta] = k;
        f->mv[f->n_meta++] = v;
        if ((st = jp_next(p, '}', "in \"__metadata__\"", &more))) return st;
    }
    return CT_OK;
}

static ct_status parse_entry(jp *p, char *name, size_t at) {
    ct_safetensors *f = p->f;
    ct_status st;
    if (f->n == f->cap) {
        int nc = f->cap ? f->cap * 2 : 16;
        st_entry *e = realloc(f->e, (size_t)nc * sizeof *e);
        if (!e) {
            free(name);
            return ct__failf(f->ctx, CT_E_NOMEM, f->path, "out of memory reading the header");
        }
        f->e = e;
        f->cap = nc;
    }
    st_entry *e = &f->e[f->n++];
    memset(e, 0, sizeof *e);
    e->name = name;
    e->at = at;
    char what[160], nm[96];
    ct__esc(nm, sizeof nm, name, strlen(name));
    snprintf(what, sizeof what, "for tensor '%s'", nm);
    if ((st = jp_expect(p, '{', what))) return st;
    bool seen[3] = {false, false, false};
    if (jp_peek(p, '}'))
        return jp_fail(p, p->i, "the entry of tensor '%s' is empty; it needs \"dtype\", \"shape\" "
                       "and \"data_offsets\"", nm);
    for (bool more = true; more;) {
        char *key = NULL;
        jp_ws(p);
        size_t kat = p->i;
        if ((st = jp_string(p, &key, "a field name"))) return st;
        int which = strcmp(key, "dtype") == 0 ? 0 : strcmp(key, "shape") == 0 ? 1
                  : strcmp(key, "data_offsets") == 0 ? 2 : -1;
        if (which < 0) {
            char kk[64];
            st = jp_fail(p, kat, "unknown field '%s' in the entry of tensor '%s'; an entry has "
                         "exactly \"dtype\", \"shape\" and \"data_offsets\"",
                         ct__esc(kk, sizeof kk, key, strlen(key)), nm);
            free(key);
            return st;
        }
        free(key);
        if (seen[which])
            return jp_fail(p, kat, "the field \"%s\" appears twice in the entry of tensor '%s'",
                           which == 0 ? "dtype" : which == 1 ? "shape" : "data_offsets", nm);
        seen[which] = true;
        if ((st = jp_expect(p, ':', "after a field name"))) return st;
        if (which == 0) {
            jp_ws(p);
            size_t dat = p->i;
            char *dt = NULL;
            if ((st = jp_string(p, &dt, "a dtype"))) return st;
            if (strcmp(dt, "F32") == 0) e->dtype = CT_F32;
            else if (strcmp(dt, "I64") == 0) e->dtype = CT_I64;
            else {
                bool known = false;
                for (int k = 0; OTHER_DTYPES[k]; k++) known |= strcmp(dt, OTHER_DTYPES[k]) == 0;
                char d[48];
                ct__esc(d, sizeof d, dt, strlen(dt));
                free(dt);
                if (known)
                    return jp_fail_st(p, CT_E_UNSUPPORTED, dat, "tensor '%s' has dtype %s; cantor "
                                      "reads F32 and I64 only: convert it before saving (in "
                                      "PyTorch: .float() or .long())", nm, d);
                return jp_fail(p, dat, "tensor '%s' has an unknown dtype \"%s\"; safetensors "
                               "dtypes are BOOL, U8, I8, I16, U16, I32, U32, I64, U64, F16, BF16, "
                               "F32, F64, F8_E5M2, F8_E4M3 (cantor reads F32 and I64)", nm, d);
            }
            free(dt);
        } else if (which == 1) {
            if ((st = jp_expect(p, '[', "to open the shape"))) return st;
            if (jp_peek(p, ']')) {
                p->i++;
            } else {
                for (bool m2 = true; m2;) {
                    jp_ws(p);
                    size_t sat = p->i;
                    uint64_t v;
                    if ((st = jp_uint(p, &v, "a dimension of the shape"))) return st;
                    if (e->ndim == CT_MAX_DIMS)
                        return jp_fail_st(p, CT_E_UNSUPPORTED, sat, "tensor '%s' has more than %d "
                                          "dims; cantor supports up to %d", nm, CT_MAX_DIMS,
                                          CT_MAX_DIMS);
                    if (v > (uint64_t)INT64_MAX)
                        return jp_fail(p, sat, "a dimension of tensor '%s' is too large", nm);
                    e->shape[e->ndim++] = (int64_t)v;
                    if ((st = jp_next(p, ']', "in the shape", &m2))) return st;
                }
            }
        } else {
            if ((st = jp_expect(p, '[', "to open data_offsets"))) return st;
            if ((st = jp_uint(p, &e->begin, "the first data offset"))) return st;
            if ((st = jp_expect(p, ',', "between the two data offsets"))) return st;
            if ((st = jp_uint(p, &e->end, "the second data offset"))) return st;
            if ((st = jp_expect(p, ']', "after the two data offsets (there are exactly two)"))) return st;
        }
        if ((st = jp_next(p, '}', what, &more))) return st;
    }
    for (int k = 0; k < 3; k++)
        if (!seen[k])
            return jp_fail(p, at, "the entry of tensor '%s' lacks \"%s\"", nm,
                           k == 0 ? "dtype" : k == 1 ? "shape" : "data_offsets");
    return CT_OK;
}

static ct_status parse_header(jp *p) {
    ct_status st = jp_expect(p, '{', "at the start of the header (a JSON object)");
    if (st) return st;
    bool meta_seen = false;
    size_t meta_at = 0;
    if (!jp_peek(p, '}')) {
        for (bool more = true; more;) {
            jp_ws(p);
            size_t at = p->i;
            char *key = NULL;
            if ((st = jp_string(p, &key, "a tensor name"))) return st;
            if ((st = jp_expect(p, ':', "after a tensor name"))) { free(key); return st; }
            if (strcmp(key, "__metadata__") == 0) {
                free(key);
                if (meta_seen)
                    return jp_fail(p, at, "\"__metadata__\" appears twice (first at byte %llu)",
                                   (ull)(8 + meta_at));
                meta_seen = true;
                meta_at = at;
                if ((st = parse_metadata(p))) return st;
            } else if ((st = parse_entry(p, key, at))) {
                return st;
            }
            if ((st = jp_next(p, '}', "after an entry of the header object", &more))) return st;
        }
    } else {
        p->i++;
    }
    jp_ws(p);
    if (p->i != p->n)
        return jp_fail(p, p->i, "unexpected characters after the header's JSON object (only "
                       "spaces may pad it)");
    return CT_OK;
}

/* ---- reading: validation ----------------------------------------------------------------------- */
static int entry_off_cmp(const void *a, const void *b) {
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int entry_name_cmp(const void *a, const void *b) {
    return strcmp((*(const st_entry *const *)a)->name, (*(const st_entry *const *)b)->name);
}

static ct_status validate(ct_safetensors *f, jp *p) {
    char nm[96], nm2[96], sh[128];
    for (int i = 0; i < f->n; i++) {
        st_entry *e = &f->e[i];
        ct__esc(nm, sizeof nm, e->name, strlen(e->name));
        uint64_t numel = 1, item = ct_dtype_size(e->dtype);
        bool over = false;
        for (int d = 0; d < e->ndim; d++) {
            uint64_t s = (uint64_t)e->shape[d];
            if (s != 0 && numel > ((uint64_t)INT64_MAX / item) / s) over = true;
            else numel *= s;
        }
        fmt_shape(sh, sizeof sh, e->ndim, e->shape);
        if (over)
            return jp_fail(p, e->at, "the shape %s of tensor '%s' is too large (its byte size "
                           "overflows 63 bits)", sh, nm);
        if (e->end < e->begin)
            return jp_fail(p, e->at, "tensor '%s' has data_offsets [%llu, %llu]: the end comes "
                           "before the beginning", nm, (ull)e->begin, (ull)e->end);
        if (e->end - e->begin != numel * item)
            return jp_fail(p, e->at, "tensor '%s' (%s, shape %s) needs %llu bytes, but its "
                           "data_offsets [%llu, %llu] span %llu", nm, st_dtype_name(e->dtype), sh,
                           (ull)(numel * item), (ull)e->begin, (ull)e->end,
                           (ull)(e->end - e->begin));
    }
    /* unique names */
    f->by_name = malloc((size_t)(f->n ? f->n : 1) * sizeof *f->by_name);
    if (!f->by_name) return ct__failf(f->ctx, CT_E_NOMEM, f->path, "out of memory");
    if (f->n > 1) qsort(f->e, (size_t)f->n, sizeof *f->e, entry_off_cmp);
    for (int i = 0; i < f->n; i++) f->by_name[i] = &f->e[i];
    if (f->n > 1) qsort(f->by_name, (size_t)f->n, sizeof *f->by_name, entry_name_cmp);
    for (int i = 1; i < f->n; i++) {
        const st_entry *a = f->by_name[i - 1], *b = f->by_name[i];
        if (strcmp(a->name, b->name) == 0)
            return jp_fail(p, a->at > b->at ? a->at : b->at, "the tensor name '%s' appears twice "
                           "(at header bytes %llu and %llu)", ct__esc(nm, sizeof nm, a->name,
                           strlen(a->name)), (ull)(8 + (a->at < b->at ? a->at : b->at)),
                           (ull)(8 + (a->at > b->at ? a->at : b->at)));
    }
    /* unique metadata keys */
    bool oom;
    const char *dup = first_dup((const char *const *)f->mk, f->n_meta, &oom);
    if (oom) return ct__failf(f->ctx, CT_E_NOMEM, f->path, "out of memory");
    if (dup)
        return jp_fail(p, 0, "the metadata key '%s' appears twice in \"__metadata__\"",
                       ct__esc(nm, sizeof nm, dup, strlen(dup)));
    /* the entries tile the data section */
    uint64_t pos = 0;
    for (int i = 0; i < f->n; i++) {
        const st_entry *e = &f->e[i];
        ct__esc(nm, sizeof nm, e->name, strlen(e->name));
        if (e->begin < pos) {
            const st_entry *prev = &f->e[i - 1];
            return jp_fail(p, e->at, "tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap in "
                           "the data section", ct__esc(nm2, sizeof nm2, prev->name, strlen(prev->name)),
                           (ull)prev->begin, (ull)prev->end, nm, (ull)e->begin, (ull)e->end);
        }
        if (e->begin > pos) {
            if (i == 0)
                return jp_fail(p, e->at, "the data section's first %llu bytes belong to no tensor "
                               "(the first tensor, '%s', begins at %llu; offsets start at 0)",
                               (ull)e->begin, nm, (ull)e->begin);
            const st_entry *prev = &f->e[i - 1];
            return jp_fail(p, e->at, "%llu bytes between tensors '%s' (ends at %llu) and '%s' "
                           "(begins at %llu) belong to no tensor; the tensors must be stored back "
                           "to back", (ull)(e->begin - pos),
                           ct__esc(nm2, sizeof nm2, prev->name, strlen(prev->name)), (ull)pos, nm,
                           (ull)e->begin);
        }
        pos = e->end;
    }
    if (pos > f->data_size) {
        const st_entry *last = &f->e[f->n - 1];
        return ct__failf(f->ctx, CT_E_FORMAT, f->path, "the file is truncated: tensor '%s' ends at "
                     "byte %llu of the file (data offset %llu), but the file has %llu bytes; %s",
                     ct__esc(nm, sizeof nm, last->name, strlen(last->name)),
                     (ull)(f->data_off + pos), (ull)pos, (ull)(f->data_off + f->data_size), ST_FIX);
    }
    if (pos < f->data_size)
        return ct__failf(f->ctx, CT_E_FORMAT, f->path, "%llu bytes after the last tensor's data (from "
                     "byte %llu of the file) belong to no tensor; %s",
                     (ull)(f->data_size - pos), (ull)(f->data_off + pos), ST_FIX);
    return CT_OK;
}

/* ---- reading: the file ------------------------------------------------------------------------- */
void ct_safetensors_close(ct_safetensors *f) {
    if (!f) return;
    if (f->fd >= 0) close(f->fd);
    for (int i = 0; i < f->n; i++) free(f->e[i].name);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->mk[i]);
        free(f->mv[i]);
    }
    free(f->e);
    free(f->by_name);
    free(f->mk);
    free(f->mv);
    free(f->path);
    free(f);
}

static ct_safetensors *open_fail(ct_safetensors *f, char *hdr) {
    free(hdr);
    ct_safetensors_close(f);
    return NULL;
}

ct_safetensors *ct_safetensors_open(ct_ctx *ctx, const char *path) {
    if (!ctx) return NULL;
    if (!path) {
        ct_fail(ctx, CT_E_ARG, "safetensors_open: the path is NULL");
        return NULL;
    }
    ct_safetensors *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        ct_fail(ctx, CT_E_NOMEM, "%s: out of memory", path);
        return NULL;
    }
    f->ctx = ctx;
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0) {
        ct__failf(ctx, CT_E_IO, path, "cannot open for reading: %s", strerror(errno));
        return open_fail(f, NULL);
    }
    struct stat sb;
    if (fstat(f->fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        ct__failf(ctx, CT_E_IO, path, "%s", S_ISDIR(sb.st_mode) ? "is a directory, not a file"
                                                             : "not a regular file");
        return open_fail(f, NULL);
    }
    uint64_t size = (uint64_t)sb.st_size;
    uint8_t len8[8];
    if (size < 8 || ct__pread_full(f->fd, len8, 8, 0) != 8) {
        ct__failf(ctx, CT_E_FORMAT, path, "the file has %llu bytes; a safetensors file starts with an "
              "8-byte header length: it is truncated or not a safetensors file", (ull)size);
        return open_fail(f, NULL);
    }
    uint64_t hn = 0;
    for (int i = 0; i < 8; i++) hn |= (uint64_t)len8[i] << (8 * i);
    if (hn > CT_SAFETENSORS_MAX_HEADER) {
        ct__failf(ctx, CT_E_FORMAT, path, "the header length at byte 0 says %llu bytes, more than the "
              "%u a safetensors header may have; %s", (ull)hn, CT_SAFETENSORS_MAX_HEADER, ST_FIX);
        return open_fail(f, NULL);
    }
    if (hn > size - 8) {
        ct__failf(ctx, CT_E_FORMAT, path, "the header length at byte 0 says %llu bytes, but only %llu "
              "bytes follow it: the file is truncated or not a safetensors file", (ull)hn,
              (ull)(size - 8));
        return open_fail(f, NULL);
    }
    char *hdr = malloc((size_t)hn + 1);
    if (!hdr) {
        ct_fail(ctx, CT_E_NOMEM, "%s: out of memory for a %llu-byte header", path, (ull)hn);
        return open_fail(f, NULL);
    }
    int64_t r = ct__pread_full(f->fd, hdr, (size_t)hn, 8);
    if (r != (int64_t)hn) {
        ct__failf(ctx, r < 0 ? CT_E_IO : CT_E_FORMAT, path, "reading the header failed: %s",
              r < 0 ? strerror(errno) : "the file shrank while being read");
        return open_fail(f, hdr);
    }
    hdr[hn] = 0;
    f->data_off = 8 + hn;
    f->data_size = size - 8 - hn;
    size_t bad = utf8_check((const uint8_t *)hdr, (size_t)hn);
    jp p = {.f = f, .s = hdr, .n = (size_t)hn, .i = 0};
    if (bad != hn) {
        jp_fail(&p, bad, "the header is not valid UTF-8 (byte 0x%02x)", (unsigned char)hdr[bad]);
        return open_fail(f, hdr);
    }
    if (parse_header(&p) || validate(f, &p)) return open_fail(f, hdr);
    free(hdr);
    return f;
}

int ct_safetensors_count(const ct_safetensors *f) { return f ? f->n : 0; }

const char *ct_safetensors_name(const ct_safetensors *f, int i) {
    return f && i >= 0 && i < f->n ? f->e[i].name : NULL;
}

static const st_entry *find(const ct_safetensors *f, const char *name) {
    if (!f || !name) return NULL;
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const st_entry *e = f->by_name[mid];
        int c = strcmp(name, e->name);
        if (c == 0) return e;
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

bool ct_safetensors_info(const ct_safetensors *f, const char *name, ct_dtype *dtype, int *ndim,
                         int64_t *shape) {
    const st_entry *e = find(f, name);
    if (!e) return false;
    if (dtype) *dtype = e->dtype;
    if (ndim) *ndim = e->ndim;
    if (shape) memcpy(shape, e->shape, sizeof e->shape);
    return true;
}

/* "'a', 'b', ..." of up to cap bytes */
static void list_names(char *out, size_t cap, const char *const *names, int n) {
    size_t o = 0;
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        char nm[80];
        ct__esc(nm, sizeof nm, names[i], strlen(names[i]));
        if (o + strlen(nm) + 24 > cap) {
            snprintf(out + o, cap - o, "%s... (%d more)", i ? ", " : "", n - i);
            return;
        }
        o += (size_t)snprintf(out + o, cap - o, "%s'%s'", i ? ", " : "", nm);
    }
    if (n == 0) snprintf(out, cap, "(none)");
}

static ct_status read_entry(ct_safetensors *f, const st_entry *e, void *dst) {
    size_t nb = (size_t)(e->end - e->begin);
    if (nb == 0) return CT_OK;
    int64_t r = ct__pread_full(f->fd, dst, nb, f->data_off + e->begin);
    if (r != (int64_t)nb)
        return ct__failf(f->ctx, r < 0 ? CT_E_IO : CT_E_FORMAT, f->path, "reading tensor '%s' at byte "
                     "%llu failed: %s", e->name, (ull)(f->data_off + e->begin),
                     r < 0 ? strerror(errno) : "the file shrank while being read");
    if (!ct__host_is_le()) ct__swap_bytes(dst, nb / ct_dtype_size(e->dtype), ct_dtype_size(e->dtype));
    return CT_OK;
}

ct_tensor *ct_safetensors_get(ct_safetensors *f, const char *name) {
    if (!f) return NULL;
    const st_entry *e = find(f, name);
    if (!e) {
        char list[600];
        const char **names = malloc((size_t)(f->n ? f->n : 1) * sizeof *names);
        for (int i = 0; names && i < f->n; i++) names[i] = f->e[i].name;
        if (names) list_names(list, sizeof list, names, f->n);
        else snprintf(list, sizeof list, "(out of memory listing them)");
        free(names);
        ct__failf(f->ctx, CT_E_ARG, f->path, "no tensor named '%s'; the file has %d: %s",
              name ? name : "(null)", f->n, list);
        return NULL;
    }
    ct_tensor *t = ct_empty(f->ctx, e->dtype, e->ndim, e->shape);
    if (!t) return NULL;
    if (read_entry(f, e, ct_data(t))) return NULL;   /* t stays in the scope */
    return t;
}

int ct_safetensors_meta_count(const ct_safetensors *f) { return f ? f->n_meta : 0; }
const char *ct_safetensors_meta_key(const ct_safetensors *f, int i) {
    return f && i >= 0 && i < f->n_meta ? f->mk[i] : NULL;
}
const char *ct_safetensors_meta_value(const ct_safetensors *f, int i) {
    return f && i >= 0 && i < f->n_meta ? f->mv[i] : NULL;
}
const char *ct_safetensors_meta(const ct_safetensors *f, const char *key) {
    for (int i = 0; f && key && i < f->n_meta; i++)
        if (strcmp(f->mk[i], key) == 0) return f->mv[i];
    return NULL;
}

/* ---- loading into a module --------------------------------------------------------------------- */
typedef struct mparam { char *name; ct_tensor *t; } mparam;

static int mparam_cmp(const void *a, const void *b) {
    return strcmp(((const mparam *)a)->name, ((const mparam *)b)->name);
}

ct_status ct_safetensors_load(const char *path, ct_module *root, ct_safetensors_meta_fn on_meta,
                              void *userdata) {
    if (!root) return CT_E_NULL;
    ct_ctx *ctx = root->ctx;
    ct_safetensors *f = ct_safetensors_open(ctx, path);
    if (!f) return ct_ctx_status(ctx);
    int n = ct_module_param_count(root);
    mparam *mp = calloc((size_t)(n ? n : 1), sizeof *mp);
    const char **missing = calloc((size_t)(n ? n : 1), sizeof *missing);
    const char **extra = calloc((size_t)(f->n ? f->n : 1), sizeof *extra);
    char *mism = malloc(700);
    uint8_t *data = NULL;
    ct_status st = CT_OK;
    if (!mp || !missing || !extra || !mism) {
        st = ct__failf(ctx, CT_E_NOMEM, path, "out of memory");
        goto done;
    }
    char buf[512];
    for (int i = 0; i < n && !st; i++) {
        mp[i].t = ct_module_param_at(root, i, buf, sizeof buf);
        if (!(mp[i].name = strdup(buf))) st = ct__failf(ctx, CT_E_NOMEM, path, "out of memory");
    }
    if (st) goto done;
    qsort(mp, (size_t)n, sizeof *mp, mparam_cmp);
    int n_missing = 0, n_extra = 0, n_mism = 0;
    size_t mo = 0;
    mism[0] = 0;
    for (int i = 0; i < n; i++) {
        const st_entry *e = find(f, mp[i].name);
        if (!e) {
            missing[n_missing++] = mp[i].name;
            continue;
        }
        const ct_tensor *t = mp[i].t;
        bool shape_ok = e->ndim == t->ndim &&
                        memcmp(e->shape, t->shape, (size_t)t->ndim * sizeof(int64_t)) == 0;
        if (e->dtype == t->dtype && shape_ok) continue;
        n_mism++;
        char s1[128], s2[128];
        fmt_shape(s1, sizeof s1, e->ndim, e->shape);
        fmt_shape(s2, sizeof s2, t->ndim, t->shape);
        if (mo + 200 < 700)
            mo += (size_t)snprintf(mism + mo, 700 - mo, "%s'%s' is %s %s in the file, %s %s in "
                                   "the module", n_mism > 1 ? "; " : "", mp[i].name,
                                   st_dtype_name(e->dtype), s1, st_dtype_name(t->dtype), s2);
        else if (mo + 4 < 700)
            mo += (size_t)snprintf(mism + mo, 700 - mo, "; ...");
    }
    for (int i = 0; i < f->n; i++) {
        mparam key = {.name = f->e[i].name};
        if (!bsearch(&key, mp, (size_t)n, sizeof *mp, mparam_cmp)) extra[n_extra++] = f->e[i].name;
    }
    if (n_missing || n_extra || n_mism) {
        char l1[400], l2[400];
        list_names(l1, sizeof l1, missing, n_missing);
        list_names(l2, sizeof l2, extra, n_extra);
        st = ct__failf(ctx, CT_E_FORMAT, path, "the file does not fit the %s module (%d parameters; "
                   "the file has %d tensors): missing from the file: %s; in the file but not in "
                   "the module: %s%s%s; nothing was loaded (was it saved from another model or "
                   "configuration?)", root->kind, n, f->n, l1, l2,
                   n_mism ? "; mismatched: " : "", mism);
        goto done;
    }
    /* read everything first, then write the parameters */
    data = malloc(f->data_size ? (size_t)f->data_size : 1);
    if (!data) {
        st = ct__failf(ctx, CT_E_NOMEM, path, "out of memory (%llu bytes) for the data",
                   (ull)f->data_size);
        goto done;
    }
    for (int i = 0; i < f->n && !st; i++) st = read_entry(f, &f->e[i], data + f->e[i].begin);
    if (st) goto done;
    for (int i = 0; i < n; i++) {
        const st_entry *e = find(f, mp[i].name);
        ct_tensor *t = mp[i].t;
        size_t nb = (size_t)(e->end - e->begin);
        if (nb == 0) continue;
        if (ct_is_contiguous(t)) {
            t->storage->backend->from_host(ct_data(t), data + e->begin, nb);
            ct__bump_version(t);
        } else {
            ct_scope_begin(ctx);
            st = ct_inplace_copy(t, ct_from_f32(ctx, (const float *)(data + e->begin), t->ndim,
                                                t->shape));
            ct_scope_end(ctx);
            if (st) goto done;
        }
    }
    if (on_meta)
        for (int i = 0; i < f->n_meta; i++) on_meta(f->mk[i], f->mv[i], userdata);
done:
    for (int i = 0; mp && i < n; i++) free(mp[i].name);
    free(mp);
    free(missing);
    free(extra);
    free(mism);
    free(data);
    ct_safetensors_close(f);
    return st;
}
