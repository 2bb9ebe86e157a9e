/* engine/npy.c — .npy and .npz files (numpy.lib.format, NEP 1; zip per APPNOTE 6.3).
 *
 * Reading goes through one parser (npy_read) over a byte source: memory, a file region, or
 * a deflate stream inside a zip (zlib inflate). The parser reads the fixed prefix, checks the
 * header length against the source's size before allocating, parses the header dict, checks
 * that the data that follows is exactly shape x itemsize bytes, and only then allocates the
 * tensor and reads the data into it. Zip members are CRC-checked as they are read.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "engine/internal.h"
#include "engine/npy.h"

#define NPY_MAX_HEADER (1u << 20)     /* numpy writes < 300 bytes for 8 dims */
#define NPY_FIX_HINT "save it again (np.save / ct_npy_save)"
#define ZIP_LIMIT 0xffffffffULL
#define ZIP_CHUNK (64u << 10)
#define CRC_CHUNK (1u << 30)

typedef unsigned long long ull;

/* ---- small helpers ------------------------------------------------------------------- */
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t rd64(const uint8_t *p) { return rd32(p) | ((uint64_t)rd32(p + 4) << 32); }
static void wr16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void wr32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}





static int open_read(ct_ctx *ctx, const char *path, uint64_t *size) {
    if (!path) { ct_fail(ctx, CT_E_ARG, "npy: the path is NULL"); return -1; }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        ct__failf(ctx, CT_E_IO, path, "cannot open for reading: %s", strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        ct__failf(ctx, CT_E_IO, path, "cannot stat: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        ct__failf(ctx, CT_E_IO, path, "not a regular file (%s)",
              S_ISDIR(st.st_mode) ? "a directory" : "a device, pipe or socket");
        close(fd);
        return -1;
    }
    *size = (uint64_t)st.st_size;
    return fd;
}

/* ---- byte sources ------------------------------------------------------------------------ */
enum { SRC_MEM, SRC_FD, SRC_INFLATE };

typedef struct src {
    ct_ctx *ctx;
    const char *name;          /* for messages */
    int kind;
    const uint8_t *mem;        /* SRC_MEM */
    int fd;                    /* SRC_FD, SRC_INFLATE */
    uint64_t base;             /* SRC_FD: file offset of byte 0 */
    uint64_t total;            /* bytes the source holds */
    uint64_t pos;              /* bytes handed out so far */
    /* SRC_INFLATE */
    z_stream z;
    uint64_t in_left, in_off;  /* compressed bytes not yet read, their file offset */
    uint8_t *in_buf;
    /* CRC-32 of the bytes handed out, and the value the zip directory expects */
    bool crc_on;
    uLong crc;
    uint32_t want_crc;
} src;

static ct_status src_fill_input(src *s) {
    size_t k = s->in_left > ZIP_CHUNK ? ZIP_CHUNK : (size_t)s->in_left;
    int64_t r = ct__pread_full(s->fd, s->in_buf, k, s->in_off);
    if (r < 0) return ct__failf(s->ctx, CT_E_IO, s->name, "read failed at byte %llu: %s",
                            (ull)s->in_off, strerror(errno));
    if ((size_t)r < k)
        return ct__failf(s->ctx, CT_E_FORMAT, s->name, "the archive ends inside the compressed data "
                     "(at byte %llu); it is truncated: write it again", (ull)(s->in_off + (uint64_t)r));
    s->in_off += k;
    s->in_left -= k;
    s->z.next_in = s->in_buf;
    s->z.avail_in = (uInt)k;
    return CT_OK;
}

/* Inflates exactly n bytes into dst. */
static ct_status src_inflate(src *s, uint8_t *dst, size_t n) {
    while (n > 0) {
        uInt k = n > CRC_CHUNK ? CRC_CHUNK : (uInt)n;
        s->z.next_out = dst;
        s->z.avail_out = k;
        while (s->z.avail_out > 0) {
            if (s->z.avail_in == 0) {
                if (s->in_left == 0)
                    return ct__failf(s->ctx, CT_E_FORMAT, s->name, "the deflate stream ends after "
                                 "%llu of the %llu bytes the zip directory promises; the archive "
                                 "is corrupt: write it again", (ull)(s->pos + (k - s->z.avail_out)),
                                 (ull)s->total);
                ct_status st = src_fill_input(s);
                if (st) return st;
            }
            int r = inflate(&s->z, Z_NO_FLUSH);
            if (r == Z_STREAM_END && s->z.avail_out > 0)
                return ct__failf(s->ctx, CT_E_FORMAT, s->name, "the deflate stream ends after %llu "
                             "bytes, but the zip directory says %llu; the archive is corrupt: "
                             "write it again", (ull)(s->pos + (k - s->z.avail_out)), (ull)s->total);
            if (r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR)
                return ct__failf(s->ctx, CT_E_FORMAT, s->name, "corrupt deflate data (zlib: %s); the "
                             "archive is damaged: write it again", s->z.msg ? s->z.msg : "error");
        }
        dst += k;
        n -= k;
    }
    return CT_OK;
}

/* Hands out the next n bytes (the caller has checked pos + n <= total). */
static ct_status src_read(src *s, void *dst, size_t n) {
    if (n == 0) return CT_OK;
    if (n > s->total - s->pos)   /* never reached: the parser checks first */
        return ct__failf(s->ctx, CT_E_FORMAT, s->name, "truncated at byte %llu", (ull)s->total);
    ct_status st = CT_OK;
    if (s->kind == SRC_MEM) {
        memcpy(dst, s->mem + s->pos, n);
    } else if (s->kind == SRC_FD) {
        int64_t r = ct__pread_full(s->fd, dst, n, s->base + s->pos);
        if (r < 0)
            return ct__failf(s->ctx, CT_E_IO, s->name, "read failed at byte %llu: %s",
                         (ull)s->pos, strerror(errno));
        if ((size_t)r < n)
            return ct__failf(s->ctx, CT_E_FORMAT, s->name, "the file ended at byte %llu while "
                         "reading (did it shrink while being read?)", (ull)(s->pos + (uint64_t)r));
    } else {
        st = src_inflate(s, dst, n);
        if (st) return st;
    }
    if (s->crc_on) s->crc = (uLong)ct__crc32(s->crc, dst, n);
    s->pos += n;
    return CT_OK;
}

/* ---- the .npy header ------------------------------------------------------------------- */
typedef struct npy_info {
    char descr[40];
    bool descr_too_long;
    bool fortran;
    int ndim;                  /* as many as the file lists (may exceed CT_MAX_DIMS) */
    int64_t shape[CT_MAX_DIMS];
} npy_info;

typedef struct hparse {
    src *s;
    const char *h;
    size_t n, i;
    uint64_t base;             /* byte offset of h[0] in the file */
} hparse;

#define NPY_DICT_EXAMPLE "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"

static ct_status hp_fail(hparse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static ct_status hp_fail(hparse *p, const char *fmt, ...) {
    char detail[256], text[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    size_t show = p->n;
    while (show > 0 && (p->h[show - 1] == ' ' || p->h[show - 1] == '\n')) show--;
    return ct__failf(p->s->ctx, CT_E_FORMAT, p->s->name,
                 "malformed header at byte %llu: %s; the header is \"%s\", expected a Python dict "
                 "like %s: the file was not written by numpy or is damaged; " NPY_FIX_HINT,
                 (ull)(p->base + p->i), detail, ct__esc(text, sizeof text, p->h, show),
                 NPY_DICT_EXAMPLE);
}

static void hp_ws(hparse *p) {
    while (p->i < p->n && (p->h[p->i] == ' ' || p->h[p->i] == '\t' || p->h[p->i] == '\n' ||
                           p->h[p->i] == '\r'))
        p->i++;
}

/* what is at the cursor, for messages */
static const char *hp_here(hparse *p, char *buf, size_t cap) {
    if (p->i >= p->n) return "the end of the header";
    size_t k = p->n - p->i < 12 ? p->n - p->i : 12;
    char e[64];
    snprintf(buf, cap, "'%s'", ct__esc(e, sizeof e, p->h + p->i, k));
    return buf;
}

static bool hp_str(hparse *p, char *out, size_t cap, bool *too_long) {
    char q = p->i < p->n ? p->h[p->i] : 0;
    char b[80];
    if (q != '\'' && q != '"') {
        hp_fail(p, "expected a quoted string, found %s", hp_here(p, b, sizeof b));
        return false;
    }
    size_t start = ++p->i;
    while (p->i < p->n && p->h[p->i] != q && p->h[p->i] != '\n') {
        if (p->h[p->i] == '\\') {
            hp_fail(p, "escape sequences in strings are not supported");
            return false;
        }
        p->i++;
    }
    if (p->i >= p->n || p->h[p->i] != q) {
        p->i = start - 1;
        hp_fail(p, "unterminated string");
        return false;
    }
    size_t len = p->i - start;
    if (too_long) *too_long = len >= cap;
    if (len >= cap) len = cap - 1;
    memcpy(out, p->h + start, len);
    out[len] = 0;
    p->i++;
    return true;
}

static bool hp_expect(hparse *p, char c, const char *what) {
    hp_ws(p);
    char b[80];
    if (p->i < p->n && p->h[p->i] == c) { p->i++; return true; }
    hp_fail(p, "expected '%c' %s, found %s", c, what, hp_here(p, b, sizeof b));
    return false;
}

static bool hp_ident(hparse *p, const char *word) {
    size_t k = strlen(word);
    if (p->n - p->i < k || memcmp(p->h + p->i, word, k) != 0) return false;
    char c = p->n - p->i > k ? p->h[p->i + k] : ' ';
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')
        return false;
    p->i += k;
    return true;
}

static bool hp_shape(hparse *p, npy_info *info) {
    char b[80];
    if (!hp_expect(p, '(', "to open the 'shape' tuple")) return false;
    info->ndim = 0;
    hp_ws(p);
    if (p->i < p->n && p->h[p->i] == ')') { p->i++; return true; }
    for (;;) {
        hp_ws(p);
        if (p->i < p->n && p->h[p->i] == '-') {
            hp_fail(p, "'shape' has a negative dimension");
            return false;
        }
        if (p->i >= p->n || p->h[p->i] < '0' || p->h[p->i] > '9') {
            hp_fail(p, "expected a non-negative integer in 'shape', found %s", hp_here(p, b, sizeof b));
            return false;
        }
        uint64_t v = 0;
        while (p->i < p->n && p->h[p->i] >= '0' && p->h[p->i] <= '9') {
            v = v * 10 + (uint64_t)(p->h[p->i] - '0');
            if (v > (uint64_t)INT64_MAX) {
                hp_fail(p, "a dimension in 'shape' is too large");
                return false;
            }
            p->i++;
        }
        if (p->i < p->n && (p->h[p->i] == 'L' || p->h[p->i] == 'l')) p->i++;   /* Python 2 longs */
        if (info->ndim < CT_MAX_DIMS) info->shape[info->ndim] = (int64_t)v;
        if (info->ndim < 1000) info->ndim++;
        hp_ws(p);
        if (p->i < p->n && p->h[p->i] == ')') {
            if (info->ndim == 1) {
                hp_fail(p, "'shape' (%llu) is not a tuple (a 1-tuple is written (%llu,))",
                        (ull)v, (ull)v);
                return false;
            }
            p->i++;
            return true;
        }
        if (!hp_expect(p, ',', "or ')' after a dimension in 'shape'")) return false;
        hp_ws(p);
        if (p->i < p->n && p->h[p->i] == ')') { p->i++; return true; }
    }
}

static ct_status parse_header(src *s, const char *h, size_t n, uint64_t base, npy_info *info) {
    hparse p = {s, h, n, 0, base};
    char key[32], b[80];
    bool have_descr = false, have_fortran = false, have_shape = false;
    memset(info, 0, sizeof *info);
    if (!hp_expect(&p, '{', "at the start of the header")) return CT_E_FORMAT;
    for (;;) {
        hp_ws(&p);
        if (p.i < p.n && p.h[p.i] == '}') { p.i++; break; }
        size_t key_at = p.i;
        bool long_key = false;
        if (!hp_str(&p, key, sizeof key, &long_key)) return CT_E_FORMAT;
        if (!hp_expect(&p, ':', "after a key")) return CT_E_FORMAT;
        hp_ws(&p);
        if (!long_key && strcmp(key, "descr") == 0 && !have_descr) {
            if (p.i < p.n && p.h[p.i] == '[')
                return ct__failf(s->ctx, CT_E_FORMAT, s->name, "header field 'descr' (byte %llu) is a "
                             "list of fields: structured dtypes are not supported; cantor reads "
                             "'<f4' (float32) and '<i8' (int64): save each field as its own array",
                             (ull)(base + p.i));
            if (!hp_str(&p, info->descr, sizeof info->descr, &info->descr_too_long)) return CT_E_FORMAT;
            have_descr = true;
        } else if (!long_key && strcmp(key, "fortran_order") == 0 && !have_fortran) {
            if (hp_ident(&p, "True")) info->fortran = true;
            else if (hp_ident(&p, "False")) info->fortran = false;
            else return hp_fail(&p, "expected True or False for 'fortran_order', found %s",
                                hp_here(&p, b, sizeof b));
            have_fortran = true;
        } else if (!long_key && strcmp(key, "shape") == 0 && !have_shape) {
            if (!hp_shape(&p, info)) return CT_E_FORMAT;
            have_shape = true;
        } else {
            p.i = key_at;
            char e[48];
            return hp_fail(&p, "unexpected or repeated key '%s' (a header has exactly 'descr', "
                           "'fortran_order' and 'shape')", ct__esc(e, sizeof e, key, strlen(key)));
        }
        hp_ws(&p);
        if (p.i < p.n && p.h[p.i] == ',') { p.i++; continue; }
        if (p.i < p.n && p.h[p.i] == '}') { p.i++; break; }
        return hp_fail(&p, "expected ',' or '}' after the value of '%s', found %s", key,
                       hp_here(&p, b, sizeof b));
    }
    hp_ws(&p);
    if (p.i < p.n) return hp_fail(&p, "unexpected text after the closing '}'");
    const char *missing = !have_descr ? "descr" : !have_fortran ? "fortran_order"
                        : !have_shape ? "shape" : NULL;
    if (missing) return hp_fail(&p, "the header has no '%s' key", missing);
    return CT_OK;
}

/* The dtype, or an error explaining what to do about an unsupported one. */
static ct_status check_dtype(src *s, const npy_info *info, uint64_t hdr_off, ct_dtype *dt) {
    const char *d = info->descr;
    if (!info->descr_too_long && strcmp(d, "<f4") == 0) { *dt = CT_F32; return CT_OK; }
    if (!info->descr_too_long && strcmp(d, "<i8") == 0) { *dt = CT_I64; return CT_OK; }
    char e[64];
    ct__esc(e, sizeof e, d, strlen(d));
    const char *body = d + (d[0] == '<' || d[0] == '>' || d[0] == '|' || d[0] == '=');
    const char *fix, *what = "";
    if (d[0] == '>' && (strcmp(body, "f4") == 0 || strcmp(body, "i8") == 0)) {
        what = " (big-endian)";
        fix = body[0] == 'f' ? "save with arr.astype('<f4')" : "save with arr.astype('<i8')";
    } else if (body[0] == 'f' || body[0] == 'c' || body[0] == 'e' || body[0] == 'd') {
        what = strcmp(body, "f8") == 0 ? " (float64)" : strcmp(body, "f2") == 0 ? " (float16)" : "";
        fix = "save with arr.astype(np.float32)";
    } else if (body[0] == 'b' && body[1] == '1') {
        what = " (bool)";
        fix = "save with arr.astype(np.float32) or arr.astype(np.int64)";
    } else if (body[0] == 'i' || body[0] == 'u') {
        fix = "save with arr.astype(np.int64)";
    } else if (body[0] == 'O') {
        what = " (Python objects, pickled)";
        fix = "object arrays cannot be read; convert to a numeric array first, e.g. "
              "np.asarray(arr, dtype=np.float32)";
    } else {
        fix = "convert with arr.astype(np.float32) or arr.astype(np.int64) before saving";
    }
    return ct__failf(s->ctx, CT_E_FORMAT, s->name, "dtype '%s'%s (header field 'descr', byte %llu) is "
                 "not supported; cantor reads '<f4' (float32) and '<i8' (int64): %s", e, what,
                 (ull)hdr_off, fix);
}

static void fmt_pyshape(int ndim, const int64_t *shape, char *buf, size_t cap) {
    size_t o = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < ndim && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < cap) snprintf(buf + o, cap - o, "%s)", ndim == 1 ? "," : "");
}

/* Parses a whole .npy from s; the tensor is in the current scope. */
static ct_tensor *npy_read(src *s) {
    static const uint8_t magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
    uint8_t pre[12];
    size_t npre = s->total < 10 ? (size_t)s->total : 10;
    if (src_read(s, pre, npre)) return NULL;
    if (memcmp(pre, magic, npre < 6 ? npre : 6) != 0) {
        char hex[40] = "";
        size_t o = 0;
        for (size_t i = 0; i < npre && i < 6; i++)
            o += (size_t)snprintf(hex + o, sizeof hex - o, "%s%02x", i ? " " : "", pre[i]);
        bool zip = npre >= 4 && memcmp(pre, "PK\x03\x04", 4) == 0;
        ct__failf(s->ctx, CT_E_FORMAT, s->name, "not a .npy file: bytes 0-%zu are %s, expected the "
              "magic \\x93NUMPY (93 4e 55 4d 50 59); %s", (npre < 6 ? npre : 6) - 1, hex,
              zip ? "this is a zip archive (an .npz?): open it with ct_npz_open"
                  : "write the file with np.save or ct_npy_save");
        return NULL;
    }
    if (npre < 10) {
        ct__failf(s->ctx, CT_E_FORMAT, s->name, "truncated: the file has %llu bytes, a .npy file has "
              "at least 10 (magic, version, header length); it was cut off: " NPY_FIX_HINT,
              (ull)s->total);
        return NULL;
    }
    int major = pre[6], minor = pre[7];
    uint64_t hlen, prefix;
    if (major == 1 && minor == 0) {
        hlen = rd16(pre + 8);
        prefix = 10;
    } else if ((major == 2 || major == 3) && minor == 0) {
        if (s->total < 12) {
            ct__failf(s->ctx, CT_E_FORMAT, s->name, "truncated: the file has %llu bytes, a version "
                  "%d.0 .npy file has at least 12; it was cut off: " NPY_FIX_HINT, (ull)s->total,
                  major);
            return NULL;
        }
        if (src_read(s, pre + 10, 2)) return NULL;
        hlen = rd32(pre + 8);
        prefix = 12;
    } else {
        ct__failf(s->ctx, CT_E_FORMAT, s->name, "format version %d.%d (bytes 6-7) is not supported; "
              "cantor reads versions 1.0, 2.0 and 3.0: save with np.save", major, minor);
        return NULL;
    }
    if (hlen > s->total - prefix) {
        ct__failf(s->ctx, CT_E_FORMAT, s->name, "the header length at byte 8 is %llu bytes, but only "
              "%llu bytes follow (file size %llu): the file is truncated or damaged; " NPY_FIX_HINT,
              (ull)hlen, (ull)(s->total - prefix), (ull)s->total);
        return NULL;
    }
    if (hlen > NPY_MAX_HEADER) {
        ct__failf(s->ctx, CT_E_FORMAT, s->name, "the header length at byte 8 is %llu bytes; cantor "
              "accepts headers up to %u bytes (numpy writes a few hundred): the file is damaged; "
              NPY_FIX_HINT, (ull)hlen, NPY_MAX_HEADER);
        return NULL;
    }
    char *h = malloc(hlen ? (size_t)hlen : 1);
    if (!h) {
        ct_fail(s->ctx, CT_E_NOMEM, "%s: out of memory reading the header", s->name);
        return NULL;
    }
    npy_info info;
    ct_status st = src_read(s, h, (size_t)hlen);
    if (!st) st = parse_header(s, h, (size_t)hlen, prefix, &info);
    free(h);
    if (st) return NULL;

    ct_dtype dt = CT_F32;
    if (check_dtype(s, &info, prefix, &dt)) return NULL;
    char shp[160];
    if (info.ndim > CT_MAX_DIMS) {
        ct__failf(s->ctx, CT_E_FORMAT, s->name, "header field 'shape' has %d dims; cantor tensors have "
              "at most %d: reshape the array (arr.reshape(...)) before saving", info.ndim, CT_MAX_DIMS);
        return NULL;
    }
    fmt_pyshape(info.ndim, info.shape, shp, sizeof shp);
    if (info.fortran) {
        ct__failf(s->ctx, CT_E_FORMAT, s->name, "header field 'fortran_order' is True (shape %s); cantor "
              "reads C-order arrays only: save with np.save(path, np.ascontiguousarray(arr))", shp);
        return NULL;
    }
    /* numel * itemsize without overflow (a zero dim makes it 0 whatever the others are) */
    uint64_t item = ct_dtype_size(dt), numel = 1;
    bool zero = false, overflow = false;
    for (int i = 0; i < info.ndim; i++) zero |= info.shape[i] == 0;
    for (int i = 0; i < info.ndim && !zero; i++) {
        if (numel > (uint64_t)INT64_MAX / (uint64_t)info.shape[i]) overflow = true;
        else numel *= (uint64_t)info.shape[i];
    }
    if (zero) numel = 0;
    uint64_t data_off = prefix + hlen, avail = s->total - data_off;
    if (overflow || numel > UINT64_MAX / item || numel * item != avail) {
        char want[40];
        if (overflow || numel > UINT64_MAX / item) snprintf(want, sizeof want, "more than 2^63");
        else snprintf(want, sizeof want, "%llu", (ull)(numel * item));
        ct__failf(s->ctx, CT_E_FORMAT, s->name, "data size mismatch: the header says shape %s of '%s' "
              "= %s bytes from byte %llu, but the file has %llu bytes there (file size %llu): the "
              "file is %s; " NPY_FIX_HINT, shp, info.descr, want, (ull)data_off, (ull)avail,
              (ull)s->total, !overflow && numel * item > avail ? "truncated" : "damaged");
        return NULL;
    }
    ct_tensor *t = ct_empty(s->ctx, dt, info.ndim, info.shape);
    if (!t) return NULL;
    if (numel > 0) {
        if (src_read(s, ct_data(t), (size_t)(numel * item))) return NULL;
        if (!ct__host_is_le()) ct__swap_bytes(ct_data(t), (size_t)numel, (size_t)item);
    }
    return t;
}

/* Runs npy_read in a scope of its own and keeps the result only on success, so a failure
 * late in reading leaves nothing behind. */
static ct_tensor *npy_read_scoped(src *s, ct_status (*finish)(src *s)) {
    int depth = ct_scope_depth(s->ctx);
    ct_scope_begin(s->ctx);
    if (ct_scope_depth(s->ctx) != depth + 1) return NULL;   /* out of memory (recorded) */
    ct_tensor *t = npy_read(s);
    if (t && finish && finish(s)) t = NULL;
    if (t) ct_keep(t);
    ct_scope_end(s->ctx);
    return t;
}

ct_tensor *ct_npy_load_mem(ct_ctx *ctx, const void *buf, size_t n, const char *name) {
    if (!ctx) return NULL;
    if (!name) name = "<memory>";
    if (!buf && n > 0) { ct__failf(ctx, CT_E_ARG, name, "npy_load_mem: the buffer is NULL"); return NULL; }
    src s = {.ctx = ctx, .name = name, .kind = SRC_MEM, .mem = buf, .total = n};
    return npy_read_scoped(&s, NULL);
}

ct_tensor *ct_npy_load(ct_ctx *ctx, const char *path) {
    if (!ctx) return NULL;
    uint64_t size;
    int fd = open_read(ctx, path, &size);
    if (fd < 0) return NULL;
    src s = {.ctx = ctx, .name = path, .kind = SRC_FD, .fd = fd, .total = size};
    ct_tensor *t = npy_read_scoped(&s, NULL);
    close(fd);
    return t;
}

/* ---- writing ------------------------------------------------------------------------------ */
typedef struct wr {
    ct_ctx *ctx;
    const char *path;      /* the final path, for messages */
    int fd;
    uint64_t off;
    bool crc_on;
    uLong crc;
} wr;

static ct_status wr_bytes(wr *w, const void *p, size_t n) {
    const char *b = p;
    if (w->crc_on) w->crc = (uLong)ct__crc32(w->crc, p, n);
    while (n > 0) {
        size_t k = n > (1u << 30) ? (1u << 30) : n;
        ssize_t r = write(w->fd, b, k);
        if (r < 0) {
            if (errno == EINTR) continue;
            return ct__failf(w->ctx, CT_E_IO, w->path, "write failed at byte %llu: %s",
                         (ull)w->off, strerror(errno));
        }
        b += r;
        n -= (size_t)r;
        w->off += (uint64_t)r;
    }
    return CT_OK;
}

/* The full .npy prefix (magic, version, length, padded header) for t; returns its length. */
static size_t npy_prefix(const ct_tensor *t, char *out, size_t cap) {
    char shp[200], dict[320];
    fmt_pyshape(t->ndim, t->shape, shp, sizeof shp);
    int dl = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                      t->dtype == CT_F32 ? "<f4" : "<i8", shp);
    size_t hl = (size_t)dl + 1;                       /* + '\n' */
    size_t total = 10 + hl;
    total = (total + 63) / 64 * 64;                   /* data starts at a multiple of 64 */
    if (total > cap) return 0;
    size_t hlen = total - 10;
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    wr16((uint8_t *)out + 8, (uint32_t)hlen);
    memcpy(out + 10, dict, (size_t)dl);
    memset(out + 10 + dl, ' ', hlen - (size_t)dl - 1);
    out[total - 1] = '\n';
    return total;
}

static uint64_t npy_data_bytes(const ct_tensor *t) {
    return (uint64_t)ct_numel(t) * ct_dtype_size(t->dtype);
}

/* Writes t's elements in C order. */
static ct_status wr_tensor_data(wr *w, const ct_tensor *t) {
    uint64_t nbytes = npy_data_bytes(t);
    if (nbytes == 0) return CT_OK;
    const void *bytes;
    void *owned;
    ct_status st = ct__tensor_le_bytes(w->ctx, w->path, t, &bytes, &owned);
    if (!st) st = wr_bytes(w, bytes, (size_t)nbytes);
    free(owned);
    return st;
}

static ct_status check_tensor(ct_ctx *ctx, const char *path, const ct_tensor *t, const char *what) {
    if (t->dtype != CT_F32 && t->dtype != CT_I64)
        return ct__failf(ctx, CT_E_DTYPE, path, "%s has dtype %d; .npy files hold float32 or int64",
                     what, (int)t->dtype);
    if (t->ndim < 0 || t->ndim > CT_MAX_DIMS)
        return ct__failf(ctx, CT_E_SHAPE, path, "%s has %d dims", what, t->ndim);
    return CT_OK;
}

/* Opens "<path>.tmp" for writing. */
static ct_status tmp_open(wr *w, char **tmp) {
    size_t n = strlen(w->path);
    *tmp = malloc(n + 5);
    if (!*tmp) return ct__failf(w->ctx, CT_E_NOMEM, w->path, "out of memory");
    memcpy(*tmp, w->path, n);
    memcpy(*tmp + n, ".tmp", 5);
    w->fd = open(*tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (w->fd < 0) {
        ct_status st = ct__failf(w->ctx, CT_E_IO, w->path, "cannot create the temporary file %s: %s",
                             *tmp, strerror(errno));
        free(*tmp);
        *tmp = NULL;
        return st;
    }
    w->off = 0;
    return CT_OK;
}

/* fsync, close and rename the temporary file over path (st == CT_OK), or remove it. */
static ct_status tmp_finish(wr *w, char *tmp, ct_status st) {
    if (!st && fsync(w->fd) != 0)
        st = ct__failf(w->ctx, CT_E_IO, w->path, "fsync of %s failed: %s", tmp, strerror(errno));
    if (close(w->fd) != 0 && !st)
        st = ct__failf(w->ctx, CT_E_IO, w->path, "close of %s failed: %s", tmp, strerror(errno));
    if (!st && rename(tmp, w->path) != 0)
        st = ct__failf(w->ctx, CT_E_IO, w->path, "cannot rename %s to it: %s", tmp, strerror(errno));
    if (st) {
        unlink(tmp);
    } else {
        /* make the rename durable: fsync the directory (best effort) */
        const char *slash = strrchr(w->path, '/');
        char *dir = slash ? strndup(w->path, (size_t)(slash - w->path) + (slash == w->path))
                          : strdup(".");
        int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
        if (dfd >= 0) { (void)fsync(dfd); close(dfd); }
        free(dir);
    }
    free(tmp);
    return st;
}

ct_status ct_npy_save(const char *path, const ct_tensor *t) {
    if (!t) return CT_E_NULL;
    if (!path || !*path) return ct_fail(t->ctx, CT_E_ARG, "npy_save: the path is NULL or empty");
    ct_status st = check_tensor(t->ctx, path, t, "the tensor");
    if (st) return st;
    wr w = {.ctx = t->ctx, .path = path, .fd = -1};
    char *tmp;
    if ((st = tmp_open(&w, &tmp))) return st;
    char prefix[512];
    size_t np = npy_prefix(t, prefix, sizeof prefix);
    st = wr_bytes(&w, prefix, np);
    if (!st) st = wr_tensor_data(&w, t);
    return tmp_finish(&w, tmp, st);
}

/* ---- .npz writing --------------------------------------------------------------------------- */
#define ZIP_LOCAL_SIG 0x04034b50u
#define ZIP_CENTRAL_SIG 0x02014b50u
#define ZIP_EOCD_SIG 0x06054b50u
#define ZIP64_LOCATOR_SIG 0x07064b50u
#define ZIP64_EOCD_SIG 0x06064b50u
#define ZIP_DOS_DATE ((0u << 9) | (1u << 5) | 1u)   /* 1980-01-01: deterministic archives */

typedef struct zmember { uint32_t crc, size, lho; } zmember;

static bool name_is_utf8(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80) return true;
    return false;
}

ct_status ct_npz_save(const char *path, int n, const char *const *names,
                      const ct_tensor *const *ts) {
    ct_ctx *ctx = NULL;
    for (int i = 0; ts && i < n && !ctx; i++)
        if (ts[i]) ctx = ts[i]->ctx;
    if (!path || !*path) return ct_fail(ctx, CT_E_ARG, "npz_save: the path is NULL or empty");
    if (n < 0 || (n > 0 && (!names || !ts)))
        return ct__failf(ctx, CT_E_ARG, path, "npz_save: %d members with names %p and tensors %p", n,
                     (const void *)names, (const void *)ts);
    if (n > 0xffff)
        return ct__failf(ctx, CT_E_UNSUPPORTED, path, "%d members; a zip without zip64 holds at most "
                     "65535: split them over several archives", n);
    for (int i = 0; i < n; i++) {
        if (!names[i] || !*names[i])
            return ct__failf(ctx, CT_E_ARG, path, "member %d has %s name; give every tensor a key", i,
                         names[i] ? "an empty" : "a NULL");
        if (strlen(names[i]) > 0xffff - 4)
            return ct__failf(ctx, CT_E_ARG, path, "member %d's name is longer than 65531 bytes", i);
        if (!ts[i])
            return ct__failf(ctx, CT_E_NULL, path, "tensor %d ('%s') is NULL (did an earlier op fail?)",
                         i, names[i]);
        ct_status st = check_tensor(ctx, path, ts[i], names[i]);
        if (st) return st;
        for (int j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0)
                return ct__failf(ctx, CT_E_ARG, path, "the name '%s' is used twice (members %d and %d); "
                             "keys must be distinct", names[i], j, i);
    }
    zmember *m = calloc((size_t)(n ? n : 1), sizeof *m);
    if (!m) return ct__failf(ctx, CT_E_NOMEM, path, "out of memory");
    wr w = {.ctx = ctx, .path = path, .fd = -1};
    char *tmp;
    ct_status st = tmp_open(&w, &tmp);
    if (st) { free(m); return st; }
    const char *too_big = "the archive would exceed 4 GiB, which needs zip64 (not implemented): "
                          "save the large tensors with ct_npy_save or over several archives";
    for (int i = 0; i < n && !st; i++) {
        const ct_tensor *t = ts[i];
        char prefix[512];
        size_t np = npy_prefix(t, prefix, sizeof prefix);
        uint64_t size = np + npy_data_bytes(t);
        size_t nl = strlen(names[i]) + 4;
        if (w.off > ZIP_LIMIT || size >= ZIP_LIMIT || w.off + 30 + nl + size > ZIP_LIMIT) {
            st = ct__failf(ctx, CT_E_UNSUPPORTED, path, "member '%s': %s", names[i], too_big);
            break;
        }
        m[i].lho = (uint32_t)w.off;
        m[i].size = (uint32_t)size;
        uint8_t lh[30] = {0};
        wr32(lh, ZIP_LOCAL_SIG);
        wr16(lh + 4, 20);
        wr16(lh + 6, name_is_utf8(names[i]) ? 0x0800 : 0);
        wr16(lh + 8, 0);                    /* stored */
        wr16(lh + 10, 0);
        wr16(lh + 12, ZIP_DOS_DATE);
        wr32(lh + 14, 0);                   /* CRC-32: patched below */
        wr32(lh + 18, (uint32_t)size);
        wr32(lh + 22, (uint32_t)size);
        wr16(lh + 26, (uint32_t)nl);
        wr16(lh + 28, 0);
        st = wr_bytes(&w, lh, sizeof lh);
        if (!st) st = wr_bytes(&w, names[i], nl - 4);
        if (!st) st = wr_bytes(&w, ".npy", 4);
        w.crc_on = true;
        w.crc = crc32(0L, Z_NULL, 0);
        if (!st) st = wr_bytes(&w, prefix, np);
        if (!st) st = wr_tensor_data(&w, t);
        w.crc_on = false;
        m[i].crc = (uint32_t)w.crc;
        if (!st) {
            uint8_t c[4];
            wr32(c, m[i].crc);
            if (pwrite(w.fd, c, 4, (off_t)m[i].lho + 14) != 4)
                st = ct__failf(ctx, CT_E_IO, path, "write failed at byte %llu: %s",
                           (ull)m[i].lho + 14, strerror(errno));
        }
    }
    uint64_t cd_off = w.off;
    for (int i = 0; i < n && !st; i++) {
        size_t nl = strlen(names[i]) + 4;
        uint8_t ch[46] = {0};
        wr32(ch, ZIP_CENTRAL_SIG);
        wr16(ch + 4, (3u << 8) | 20);       /* made by: unix, zip 2.0 */
        wr16(ch + 6, 20);
        wr16(ch + 8, name_is_utf8(names[i]) ? 0x0800 : 0);
        wr16(ch + 10, 0);
        wr16(ch + 12, 0);
        wr16(ch + 14, ZIP_DOS_DATE);
        wr32(ch + 16, m[i].crc);
        wr32(ch + 20, m[i].size);
        wr32(ch + 24, m[i].size);
        wr16(ch + 28, (uint32_t)nl);
        wr32(ch + 38, 0100644u << 16);      /* a regular file, rw-r--r-- */
        wr32(ch + 42, m[i].lho);
        st = wr_bytes(&w, ch, sizeof ch);
        if (!st) st = wr_bytes(&w, names[i], nl - 4);
        if (!st) st = wr_bytes(&w, ".npy", 4);
    }
    if (!st && w.off + 22 > ZIP_LIMIT) st = ct__failf(ctx, CT_E_UNSUPPORTED, path, "%s", too_big);
    if (!st) {
        uint8_t e[22] = {0};
        wr32(e, ZIP_EOCD_SIG);
        wr16(e + 8, (uint32_t)n);
        wr16(e + 10, (uint32_t)n);
        wr32(e + 12, (uint32_t)(w.off - cd_off));
        wr32(e + 16, (uint32_t)cd_off);
        st = wr_bytes(&w, e, sizeof e);
    }
    free(m);
    return tmp_finish(&w, tmp, st);
}

/* ---- .npz reading ------------------------------------------------------------------------- */
typedef struct zentry {
    char *member;              /* the name in the archive ("w.npy") */
    char *key;                 /* without ".npy" */
    uint16_t flags, method;
    uint32_t crc;
    uint64_t csize, usize, lho;
} zentry;

struct ct_npz {
    ct_ctx *ctx;
    char *path;
    int fd;
    uint64_t size;             /* file size */
    uint64_t data_end;         /* members lie below this offset (the central directory) */
    int n;
    zentry *e;
};

static const char *method_name(unsigned m) {
    switch (m) {
    case 1: return "shrink";
    case 6: return "implode";
    case 9: return "deflate64";
    case 12: return "bzip2";
    case 14: return "LZMA";
    case 93: return "zstd";
    case 95: return "xz";
    case 98: return "PPMd";
    case 99: return "AES encryption";
    default: return "unknown";
    }
}

void ct_npz_close(ct_npz *z) {
    if (!z) return;
    if (z->fd >= 0) close(z->fd);
    for (int i = 0; i < z->n; i++) {
        free(z->e[i].member);
        free(z->e[i].key);
    }
    free(z->e);
    free(z->path);
    free(z);
}

/* Reads the zip64 values of a central directory entry's extra field. */
static bool zip64_extra(const uint8_t *x, size_t xlen, zentry *e, bool need_u, bool need_c,
                        bool need_l) {
    size_t p = 0;
    while (p + 4 <= xlen) {
        unsigned id = rd16(x + p), sz = rd16(x + p + 2);
        if (p + 4 + sz > xlen) return false;
        if (id == 1) {
            const uint8_t *v = x + p + 4;
            size_t k = 0;
            if (need_u) { if (k + 8 > sz) return false; e->usize = rd64(v + k); k += 8; }
            if (need_c) { if (k + 8 > sz) return false; e->csize = rd64(v + k); k += 8; }
            if (need_l) { if (k + 8 > sz) return false; e->lho = rd64(v + k); k += 8; }
            return true;
        }
        p += 4 + sz;
    }
    return false;
}

static ct_npz *npz_fail(ct_npz *z) {
    ct_npz_close(z);
    return NULL;
}

ct_npz *ct_npz_open(ct_ctx *ctx, const char *path) {
    if (!ctx) return NULL;
    uint64_t size;
    int fd = open_read(ctx, path, &size);
    if (fd < 0) return NULL;
    ct_npz *z = calloc(1, sizeof *z);
    if (!z || !(z->path = strdup(path))) {
        if (z) free(z);
        close(fd);
        ct_fail(ctx, CT_E_NOMEM, "%s: out of memory", path);
        return NULL;
    }
    z->ctx = ctx;
    z->fd = fd;
    z->size = size;
    const char *how = "write it with np.savez or ct_npz_save";
    if (size < 22) {
        ct__failf(ctx, CT_E_FORMAT, path, "not a zip archive (.npz): the file has %llu bytes, a zip has "
              "at least 22 (the end-of-central-directory record); it is truncated or not an .npz: %s",
              (ull)size, how);
        return npz_fail(z);
    }
    /* the end-of-central-directory record: within the last 64 KiB + 22 bytes */
    size_t tail = size < 0xffff + 22 ? (size_t)size : 0xffff + 22;
    uint8_t *buf = malloc(tail);
    if (!buf) { ct_fail(ctx, CT_E_NOMEM, "%s: out of memory", path); return npz_fail(z); }
    uint64_t tail_off = size - tail;
    int64_t r = ct__pread_full(fd, buf, tail, tail_off);
    if (r != (int64_t)tail) {
        ct__failf(ctx, r < 0 ? CT_E_IO : CT_E_FORMAT, path, "read failed at byte %llu: %s",
              (ull)tail_off, r < 0 ? strerror(errno) : "the file shrank while being read");
        free(buf);
        return npz_fail(z);
    }
    int64_t at = -1;
    for (int64_t i = (int64_t)tail - 22; i >= 0; i--)
        if (rd32(buf + i) == ZIP_EOCD_SIG && (size_t)i + 22 + rd16(buf + i + 20) <= tail) {
            at = i;
            break;
        }
    if (at < 0) {
        uint8_t head[6] = {0};
        bool npy = ct__pread_full(fd, head, 6, 0) == 6 && memcmp(head, "\x93NUMPY", 6) == 0;
        ct__failf(ctx, CT_E_FORMAT, path, "not a zip archive (.npz): no end-of-central-directory record "
              "(50 4b 05 06) in its last %zu bytes; %s", tail,
              npy ? "this is a .npy file: read it with ct_npy_load"
                  : "the file is truncated or not an .npz: write it with np.savez or ct_npz_save");
        free(buf);
        return npz_fail(z);
    }
    const uint8_t *e = buf + at;
    uint64_t eocd_off = tail_off + (uint64_t)at;
    unsigned disk = rd16(e + 4), cd_disk = rd16(e + 6);
    uint64_t n_disk = rd16(e + 8), n_total = rd16(e + 10), cd_size = rd32(e + 12),
             cd_off = rd32(e + 16), cd_end_limit = eocd_off;
    if ((n_total == 0xffff || cd_size == 0xffffffff || cd_off == 0xffffffff) && at >= 20 &&
        rd32(e - 20) == ZIP64_LOCATOR_SIG) {
        uint64_t z64 = rd64(e - 20 + 8);
        uint8_t r64[56];
        if (rd32(e - 20 + 16) > 1 || rd32(e - 20 + 4) != 0) {
            disk = 1;   /* reported below */
        } else if (z64 + 56 > eocd_off - 20 || ct__pread_full(fd, r64, 56, z64) != 56 ||
                   rd32(r64) != ZIP64_EOCD_SIG) {
            ct__failf(ctx, CT_E_FORMAT, path, "the zip64 end-of-central-directory locator (byte %llu) "
                  "points to byte %llu, where there is no zip64 record: the archive is damaged; %s",
                  (ull)(eocd_off - 20), (ull)z64, how);
            free(buf);
            return npz_fail(z);
        } else {
            disk = rd32(r64 + 16);
            cd_disk = rd32(r64 + 20);
            n_disk = rd64(r64 + 24);
            n_total = rd64(r64 + 32);
            cd_size = rd64(r64 + 40);
            cd_off = rd64(r64 + 48);
            cd_end_limit = z64;
        }
    }
    free(buf);
    if (disk != 0 || cd_disk != 0 || n_disk != n_total) {
        ct__failf(ctx, CT_E_FORMAT, path, "a multi-disk (split or spanned) zip archive (disk %u, central "
              "directory on disk %u) is not supported: join the parts into one file "
              "(zip -s 0 split.zip --out whole.npz)", disk, cd_disk);
        return npz_fail(z);
    }
    if (cd_off > cd_end_limit || cd_size > cd_end_limit - cd_off) {
        ct__failf(ctx, CT_E_FORMAT, path, "the central directory (byte %llu, %llu bytes) does not fit "
              "before the end record at byte %llu: the archive is truncated or damaged; %s",
              (ull)cd_off, (ull)cd_size, (ull)cd_end_limit, how);
        return npz_fail(z);
    }
    if (n_total > cd_size / 46 || n_total > INT_MAX) {
        ct__failf(ctx, CT_E_FORMAT, path, "the end record says %llu members, but the central directory "
              "has only %llu bytes (46 or more per member): the archive is damaged; %s",
              (ull)n_total, (ull)cd_size, how);
        return npz_fail(z);
    }
    z->data_end = cd_off;
    uint8_t *cd = malloc(cd_size ? (size_t)cd_size : 1);
    z->e = calloc(n_total ? (size_t)n_total : 1, sizeof *z->e);
    if (!cd || !z->e) {
        free(cd);
        ct_fail(ctx, CT_E_NOMEM, "%s: out of memory reading the central directory", path);
        return npz_fail(z);
    }
    r = ct__pread_full(fd, cd, (size_t)cd_size, cd_off);
    if (r != (int64_t)cd_size) {
        ct__failf(ctx, r < 0 ? CT_E_IO : CT_E_FORMAT, path, "read failed at byte %llu: %s", (ull)cd_off,
              r < 0 ? strerror(errno) : "the file shrank while being read");
        free(cd);
        return npz_fail(z);
    }
    size_t pos = 0;
    for (uint64_t k = 0; k < n_total; k++) {
        const uint8_t *c = cd + pos;
        uint64_t where = cd_off + pos;
        if (cd_size - pos < 46 || rd32(c) != ZIP_CENTRAL_SIG) {
            ct__failf(ctx, CT_E_FORMAT, path, "central directory entry %llu (byte %llu) %s: the archive "
                  "is damaged; %s", (ull)k, (ull)where,
                  cd_size - pos < 46 ? "is cut off" : "lacks its signature 50 4b 01 02", how);
            free(cd);
            return npz_fail(z);
        }
        size_t nlen = rd16(c + 28), xlen = rd16(c + 30), clen = rd16(c + 32);
        if (46 + nlen + xlen + clen > cd_size - pos) {
            ct__failf(ctx, CT_E_FORMAT, path, "central directory entry %llu (byte %llu) runs past the "
                  "end of the directory: the archive is damaged; %s", (ull)k, (ull)where, how);
            free(cd);
            return npz_fail(z);
        }
        zentry *ze = &z->e[z->n];
        ze->flags = rd16(c + 8);
        ze->method = rd16(c + 10);
        ze->crc = rd32(c + 16);
        ze->csize = rd32(c + 20);
        ze->usize = rd32(c + 24);
        ze->lho = rd32(c + 42);
        unsigned start_disk = rd16(c + 34);
        bool nu = ze->usize == 0xffffffff, nc = ze->csize == 0xffffffff, nl = ze->lho == 0xffffffff;
        if ((nu || nc || nl) && !zip64_extra(c + 46 + nlen, xlen, ze, nu, nc, nl)) {
            ct__failf(ctx, CT_E_FORMAT, path, "central directory entry %llu (byte %llu) has 32-bit "
                  "fields set to 0xffffffff but no valid zip64 extra field: the archive is "
                  "damaged; %s", (ull)k, (ull)where, how);
            free(cd);
            return npz_fail(z);
        }
        if (start_disk != 0 && start_disk != 0xffff) {
            ct__failf(ctx, CT_E_FORMAT, path, "member %llu starts on disk %u: multi-disk archives are "
                  "not supported; join the parts into one file", (ull)k, start_disk);
            free(cd);
            return npz_fail(z);
        }
        if (memchr(c + 46, 0, nlen)) {
            ct__failf(ctx, CT_E_FORMAT, path, "central directory entry %llu (byte %llu) has a NUL byte in "
                  "its name: the archive is damaged; %s", (ull)k, (ull)where, how);
            free(cd);
            return npz_fail(z);
        }
        pos += 46 + nlen + xlen + clen;
        if (nlen > 0 && c[46 + nlen - 1] == '/') continue;   /* a directory entry */
        ze->member = strndup((const char *)c + 46, nlen);
        size_t kl = nlen >= 4 && memcmp(c + 46 + nlen - 4, ".npy", 4) == 0 ? nlen - 4 : nlen;
        ze->key = strndup((const char *)c + 46, kl);
        z->n++;
        if (!ze->member || !ze->key) {
            ct_fail(ctx, CT_E_NOMEM, "%s: out of memory", path);
            free(cd);
            return npz_fail(z);
        }
    }
    free(cd);
    return z;
}

int ct_npz_count(const ct_npz *z) { return z ? z->n : 0; }

const char *ct_npz_name(const ct_npz *z, int i) {
    return z && i >= 0 && i < z->n ? z->e[i].key : NULL;
}

static ct_status zip_finish(src *s) {
    /* the data must end exactly where the deflate stream does */
    if (s->kind == SRC_INFLATE) {
        uint8_t extra;
        s->z.next_out = &extra;
        s->z.avail_out = 1;
        for (;;) {
            int r = inflate(&s->z, Z_NO_FLUSH);
            if (r == Z_STREAM_END && s->z.avail_out == 1) break;
            if (s->z.avail_out == 0 || r == Z_STREAM_END)
                return ct__failf(s->ctx, CT_E_FORMAT, s->name, "the deflate stream holds more than the "
                             "%llu bytes the zip directory says: the archive is damaged; write it "
                             "again", (ull)s->total);
            if (r == Z_BUF_ERROR || r == Z_OK) {
                if (s->z.avail_in == 0 && s->in_left == 0)
                    return ct__failf(s->ctx, CT_E_FORMAT, s->name, "the deflate stream does not end "
                                 "after %llu bytes: the archive is truncated or damaged; write it "
                                 "again", (ull)s->total);
                if (s->z.avail_in == 0) {
                    ct_status st = src_fill_input(s);
                    if (st) return st;
                }
                continue;
            }
            return ct__failf(s->ctx, CT_E_FORMAT, s->name, "corrupt deflate data (zlib: %s); the "
                         "archive is damaged: write it again", s->z.msg ? s->z.msg : "error");
        }
    }
    uint32_t want = s->want_crc;
    if ((uint32_t)s->crc != want)
        return ct__failf(s->ctx, CT_E_FORMAT, s->name, "CRC-32 mismatch: the data has %08x, the zip "
                     "directory says %08x; the archive is damaged: write it again",
                     (unsigned)s->crc, (unsigned)want);
    return CT_OK;
}

ct_tensor *ct_npz_get(ct_npz *z, const char *name) {
    if (!z) return NULL;
    ct_ctx *ctx = z->ctx;
    if (!name) { ct__failf(ctx, CT_E_ARG, z->path, "npz_get: the name is NULL"); return NULL; }
    zentry *ze = NULL;
    for (int i = 0; i < z->n && !ze; i++)
        if (strcmp(z->e[i].key, name) == 0 || strcmp(z->e[i].member, name) == 0) ze = &z->e[i];
    if (!ze) {
        char list[600];
        size_t o = 0;
        list[0] = 0;
        for (int i = 0; i < z->n && o < sizeof list; i++) {
            if (o > sizeof list - 80) { snprintf(list + o, sizeof list - o, ", ..."); break; }
            o += (size_t)snprintf(list + o, sizeof list - o, "%s'%s'", i ? ", " : "", z->e[i].key);
        }
        ct__failf(ctx, CT_E_ARG, z->path, "no array named '%s'; the archive has %d: %s", name, z->n,
              z->n ? list : "(none)");
        return NULL;
    }
    char mname[512];
    snprintf(mname, sizeof mname, "%s:%s", z->path, ze->member);
    if (ze->flags & 0x41) {
        ct__failf(ctx, CT_E_FORMAT, mname, "the member is encrypted (flags 0x%04x); cantor reads "
              "unencrypted archives as np.savez writes them", ze->flags);
        return NULL;
    }
    if (ze->method != 0 && ze->method != 8) {
        ct__failf(ctx, CT_E_FORMAT, mname, "compression method %u (%s) is not supported; cantor reads "
              "stored (0) and deflated (8) members, as np.savez and np.savez_compressed write them: "
              "re-save with np.savez", ze->method, method_name(ze->method));
        return NULL;
    }
    if (ze->method == 0 && ze->csize != ze->usize) {
        ct__failf(ctx, CT_E_FORMAT, mname, "a stored member with compressed size %llu and size %llu "
              "(they must be equal): the archive is damaged", (ull)ze->csize, (ull)ze->usize);
        return NULL;
    }
    /* deflate expands at most ~1032:1; a larger claim is damage (or a zip bomb) */
    if (ze->method == 8 && ze->usize / 1032 > ze->csize + 1) {
        ct__failf(ctx, CT_E_FORMAT, mname, "the zip directory says %llu bytes from %llu compressed "
              "ones, more than deflate can produce: the archive is damaged", (ull)ze->usize,
              (ull)ze->csize);
        return NULL;
    }
    uint8_t lh[30];
    if (ze->lho > z->data_end || z->data_end - ze->lho < 30 ||
        ct__pread_full(z->fd, lh, 30, ze->lho) != 30 || rd32(lh) != ZIP_LOCAL_SIG) {
        ct__failf(ctx, CT_E_FORMAT, mname, "no local file header (50 4b 03 04) at byte %llu, where the "
              "central directory puts it: the archive is damaged", (ull)ze->lho);
        return NULL;
    }
    uint64_t data = ze->lho + 30 + rd16(lh + 26) + rd16(lh + 28);
    if (data > z->data_end || ze->csize > z->data_end - data) {
        ct__failf(ctx, CT_E_FORMAT, mname, "the member's %llu bytes from byte %llu run past its end "
              "(byte %llu): the archive is truncated or damaged", (ull)ze->csize, (ull)data,
              (ull)z->data_end);
        return NULL;
    }
    src s = {.ctx = ctx, .name = mname, .fd = z->fd, .total = ze->usize, .crc_on = true,
             .want_crc = ze->crc};
    s.crc = crc32(0L, Z_NULL, 0);
    ct_tensor *t = NULL;
    if (ze->method == 0) {
        s.kind = SRC_FD;
        s.base = data;
        t = npy_read_scoped(&s, zip_finish);
    } else {
        s.kind = SRC_INFLATE;
        s.in_left = ze->csize;
        s.in_off = data;
        s.in_buf = malloc(ZIP_CHUNK);
        if (!s.in_buf || inflateInit2(&s.z, -15) != Z_OK) {
            free(s.in_buf);
            ct_fail(ctx, CT_E_NOMEM, "%s: out of memory for zlib", mname);
            return NULL;
        }
        t = npy_read_scoped(&s, zip_finish);
        inflateEnd(&s.z);
        free(s.in_buf);
    }
    return t;
}
