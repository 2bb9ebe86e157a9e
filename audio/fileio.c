/* audio/fileio.c — the file helpers shared by audio/'s readers and writers (midi_read.c,
 * midi_write.c, pianoroll.c, audiofile.c): a bounded whole-file reader and the atomic writer
 * (a temporary file beside the target, fsync, rename over it, fsync of the folder; on any
 * failure the temporary file goes and an existing file is untouched). Declared in midi.h's
 * private section. */
#define _POSIX_C_SOURCE 200809L /* open, fsync, strndup, O_CLOEXEC */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audio/fileio.h"
#include "audio/midi.h"

cm_status cm__read_whole(const char *path, uint32_t limit, const char *limit_name, uint8_t **out, size_t *n_out,
                         cm_error *err) {
    *out = NULL;
    *n_out = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return cm__fail(err, CM_E_IO, path, -1, -1, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || S_ISDIR(st.st_mode)) {
        int e = S_ISDIR(st.st_mode) ? EISDIR : errno;
        close(fd);
        return cm__fail(err, CM_E_IO, path, -1, -1, "cannot read: %s", strerror(e));
    }
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > limit) {
        close(fd);
        return cm__fail(err, CM_E_LIMIT, path, -1, -1, "%lld bytes, more than the limit of %u (%s)",
                        (long long)st.st_size, limit, limit_name);
    }
    /* read to the end (a pipe has no size): at most limit + 1 bytes */
    size_t cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 65536, n = 0;
    uint8_t *buf = malloc(cap);
    cm_status s = CM_OK;
    if (!buf) s = cm__fail(err, CM_E_NOMEM, path, -1, -1, "out of memory for %zu bytes", cap);
    while (!s) {
        if (n == cap) {
            if (cap > limit) {
                s = cm__fail(err, CM_E_LIMIT, path, -1, -1, "more than %u bytes (%s)", limit, limit_name);
                break;
            }
            size_t ncap = cap * 2 > (size_t)limit + 1 ? (size_t)limit + 1 : cap * 2;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                s = cm__fail(err, CM_E_NOMEM, path, -1, -1, "out of memory for %zu bytes", ncap);
                break;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t got = read(fd, buf + n, cap - n);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) s = cm__fail(err, CM_E_IO, path, (int64_t)n, -1, "read failed: %s", strerror(errno));
        if (got <= 0) break;
        n += (size_t)got;
    }
    close(fd);
    if (s) {
        free(buf);
        return s;
    }
    *out = buf;
    *n_out = n;
    return CM_OK;
}

int cm__atomic_begin(const char *path, bool read_too, char **tmp, char *msg, size_t n) {
    const size_t cap = strlen(path) + 48;
    *tmp = malloc(cap);
    if (!*tmp) {
        snprintf(msg, n, "out of memory");
        return -2;
    }
    int fd = -1;
    for (int k = 0; k < 100 && fd < 0; k++) {
        snprintf(*tmp, cap, "%s.tmp-%ld-%d", path, (long)getpid(), k);
        fd = open(*tmp, (read_too ? O_RDWR : O_WRONLY) | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        snprintf(msg, n, "cannot create the temporary file %s: %s (does the folder exist, is it writable?)", *tmp,
                 strerror(errno));
        free(*tmp);
        *tmp = NULL;
    }
    return fd;
}

bool cm__write_all(int fd, const void *p, size_t len, const char *tmp, size_t *done, char *msg, size_t n) {
    *done = 0;
    while (*done < len) {
        ssize_t k = write(fd, (const char *)p + *done, len - *done);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            int e = k < 0 ? errno : EIO;
            snprintf(msg, n, "writing the temporary file %s failed: %s%s; the existing file is untouched", tmp,
                     strerror(e), e == ENOSPC || e == EFBIG || e == EDQUOT ? " (is the disk full?)" : "");
            return false;
        }
        *done += (size_t)k;
    }
    return true;
}

bool cm__atomic_end(int fd, const char *path, char *tmp, bool ok, char *msg, size_t n) {
    if (ok && fsync(fd) != 0) {
        snprintf(msg, n, "fsync of %s failed: %s; the existing file is untouched", tmp, strerror(errno));
        ok = false;
    }
    if (close(fd) != 0 && ok) {
        snprintf(msg, n, "closing %s failed: %s; the existing file is untouched", tmp, strerror(errno));
        ok = false;
    }
    if (ok && rename(tmp, path) != 0) {
        snprintf(msg, n, "cannot rename %s over it: %s", tmp, strerror(errno));
        ok = false;
    }
    if (!ok) {
        unlink(tmp);
    } else { /* make the rename durable: fsync the folder (best effort) */
        const char *slash = strrchr(path, '/');
        char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
        int dfd = dir ? open(dir, O_RDONLY | O_CLOEXEC) : -1;
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    free(tmp);
    return ok;
}

cm_status cm_write_file_atomic(const char *path, const void *data, size_t n, cm_error *err) {
    if (!path || (!data && n > 0))
        return cm__fail(err, CM_E_ARG, path ? path : "<null>", -1, -1, "cm_write_file_atomic: NULL %s",
                        path ? "data" : "path");
    char *tmp, msg[sizeof err->message];
    int fd = cm__atomic_begin(path, false, &tmp, msg, sizeof msg);
    if (fd < 0) return cm__fail(err, fd == -2 ? CM_E_NOMEM : CM_E_IO, path, -1, -1, "%s", msg);
    size_t done;
    if (!cm__write_all(fd, data, n, tmp, &done, msg, sizeof msg)) {
        cm__atomic_end(fd, path, tmp, false, NULL, 0);
        return cm__fail(err, CM_E_IO, path, (int64_t)done, -1, "%s", msg);
    }
    if (!cm__atomic_end(fd, path, tmp, true, msg, sizeof msg)) return cm__fail(err, CM_E_IO, path, -1, -1, "%s", msg);
    return CM_OK;
}
