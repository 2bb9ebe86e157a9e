/* engine/fileio.c — file helpers shared by the engine's readers and writers (npy.c,
 * safetensors.c, train_state.c): messages that name the file, bounded reads, and the atomic
 * writer (a temporary file beside the target, fsync, rename, fsync of the folder). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "engine/internal.h"

typedef unsigned long long ull;

uint64_t ct__crc32(uint64_t crc, const void *p, size_t n) {
    const Bytef *b = p;
    while (n > 0) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = crc32((uLong)crc, b, k);
        b += k;
        n -= k;
    }
    return crc;
}

bool ct__host_is_le(void) {
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
}

void ct__swap_bytes(void *p, size_t count, size_t size) {
    uint8_t *b = p;
    for (size_t i = 0; i < count; i++, b += size)
        for (size_t j = 0; j < size / 2; j++) {
            uint8_t x = b[j];
            b[j] = b[size - 1 - j];
            b[size - 1 - j] = x;
        }
}

ct_status ct__tensor_le_bytes(ct_ctx *ctx, const char *path, const ct_tensor *t, const void **bytes, void **owned) {
    const size_t nbytes = (size_t)ct_numel(t) * ct_dtype_size(t->dtype);
    *owned = NULL;
    if (t->storage->device.type == CT_CPU && ct_is_contiguous(t) && ct__host_is_le()) {
        *bytes = ct_data(t);
        return CT_OK;
    }
    void *buf = malloc(nbytes ? nbytes : 1);
    if (!buf) return ct__failf(ctx, CT_E_NOMEM, path, "out of memory (%llu bytes) copying a tensor to the host",
                               (ull)nbytes);
    ct_status st = ct_copy_to_host(t, buf, nbytes);
    if (st) {
        free(buf);
        return st;
    }
    if (!ct__host_is_le()) ct__swap_bytes(buf, (size_t)ct_numel(t), ct_dtype_size(t->dtype));
    *bytes = buf;
    *owned = buf;
    return CT_OK;
}

/* Printable copy of n bytes for messages: non-printables as \xNN, "..." when cut. */
const char *ct__esc(char *out, size_t cap, const char *in, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (o + 8 >= cap) { strcpy(out + o, "..."); return out; }
        if (c >= 32 && c < 127) out[o++] = (char)c;
        else o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
    }
    out[o] = 0;
    return out;
}
ct_status ct__failf(ct_ctx *ctx, ct_status s, const char *path, const char *fmt, ...) {
    char detail[CT_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    if (ctx) ct_fail(ctx, s, "%s: %s", path, detail);
    return s;
}
/* pread of exactly n bytes; the bytes read (< n at end of file) or -1 (errno). */
int64_t ct__pread_full(int fd, void *buf, size_t n, uint64_t off) {
    size_t got = 0;
    while (got < n) {
        size_t want = n - got > (1u << 30) ? (1u << 30) : n - got;
        ssize_t r = pread(fd, (char *)buf + got, want, (off_t)(off + got));
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    return (int64_t)got;
}

ct_status ct__wf_open(ct__wfile *w) {
    size_t n = strlen(w->path);
    w->fd = -1;
    w->off = 0;
    w->tmp = malloc(n + 5);
    if (!w->tmp) return ct__failf(w->ctx, CT_E_NOMEM, w->path, "out of memory");
    memcpy(w->tmp, w->path, n);
    memcpy(w->tmp + n, ".tmp", 5);
    w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (w->fd < 0) {
        ct_status st = ct__failf(w->ctx, CT_E_IO, w->path, "cannot create the temporary file %s: %s; "
                             "nothing was written", w->tmp, strerror(errno));
        free(w->tmp);
        w->tmp = NULL;
        return st;
    }
    return CT_OK;
}

ct_status ct__wf_write(ct__wfile *w, const void *p, size_t n) {
    w->crc = (uint32_t)ct__crc32(w->crc, p, n);
    const char *b = p;
    while (n > 0) {
        size_t k = n > (1u << 30) ? (1u << 30) : n;
        ssize_t r = write(w->fd, b, k);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
            return ct__failf(w->ctx, CT_E_IO, w->path, "writing %s failed at byte %llu: %s; the file "
                         "%s was left as it was", w->tmp, (ull)w->off,
                         r < 0 ? strerror(errno) : "no progress", w->path);
        b += r;
        n -= (size_t)r;
        w->off += (uint64_t)r;
    }
    return CT_OK;
}

/* fsync, close and rename over path (st == CT_OK), or remove the temporary file. */
ct_status ct__wf_finish(ct__wfile *w, ct_status st) {
    if (!st && fsync(w->fd) != 0)
        st = ct__failf(w->ctx, CT_E_IO, w->path, "fsync of %s failed: %s; the file %s was left as it "
                   "was", w->tmp, strerror(errno), w->path);
    if (close(w->fd) != 0 && !st)
        st = ct__failf(w->ctx, CT_E_IO, w->path, "close of %s failed: %s", w->tmp, strerror(errno));
    if (!st && rename(w->tmp, w->path) != 0)
        st = ct__failf(w->ctx, CT_E_IO, w->path, "cannot rename %s to it: %s", w->tmp, strerror(errno));
    if (st) {
        unlink(w->tmp);
    } else {
        const char *slash = strrchr(w->path, '/');
        char *dir = slash ? strndup(w->path, (size_t)(slash - w->path) + (slash == w->path))
                          : strdup(".");
        int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
        if (dfd >= 0) { (void)fsync(dfd); close(dfd); }
        free(dir);
    }
    free(w->tmp);
    w->tmp = NULL;
    return st;
}
