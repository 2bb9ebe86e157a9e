/* engine/train_state.c — the training-state file ("CTTS", layout in engine/safetensors.h):
 * optimizer state, step counts, learning rate, random generators and a user blob. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "engine/internal.h"
#include "engine/safetensors.h"

typedef unsigned long long ull;

#define TS_HEADER 64
#define TS_FIX "write it again with ct_train_state_save"


static void wr32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void wr64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t rd64(const uint8_t *p) { return rd32(p) | ((uint64_t)rd32(p + 4) << 32); }


static const char *kind_text(uint32_t k) {
    return k == CT_OPTIM_SGD ? "SGD" : k == CT_OPTIM_ADAM ? "Adam" : k == CT_OPTIM_ADAMW ? "AdamW"
                                                                                        : "unknown";
}

/* ---- atomic write: <path>.tmp, fsync, rename --------------------------------------------------- */




/* ---- save --------------------------------------------------------------------------------------- */
ct_status ct_train_state_save(const char *path, const ct_optim *opt, int64_t step,
                              const ct_rng *const *rngs, int n_rngs, const void *user,
                              size_t user_bytes) {
    if (!opt) return CT_E_NULL;
    ct_ctx *ctx = ct_optim_module(opt)->ctx;
    if (!path || !*path) return ct_fail(ctx, CT_E_ARG, "train_state_save: the path is NULL or empty");
    if (n_rngs < 0 || (n_rngs > 0 && !rngs) || (user_bytes > 0 && !user))
        return ct__failf(ctx, CT_E_ARG, path, "train_state_save: %d generators / %zu user bytes with a "
                     "NULL array or a negative count", n_rngs, user_bytes);
    for (int i = 0; i < n_rngs; i++)
        if (!rngs[i]) return ct__failf(ctx, CT_E_ARG, path, "train_state_save: generator %d is NULL", i);
    int S = ct_optim_state_count(opt);
    int64_t P = ct_optim_state_size(opt);
    uint8_t h[TS_HEADER] = {0};
    memcpy(h, "CTTS", 4);
    wr32(h + 4, CT_TRAIN_STATE_VERSION);
    wr32(h + 8, (uint32_t)ct_optim_kind_of(opt));
    wr32(h + 12, (uint32_t)S);
    wr64(h + 16, (uint64_t)P);
    wr64(h + 24, (uint64_t)step);
    wr64(h + 32, (uint64_t)ct_optim_get_step(opt));
    double lr = ct_optim_get_lr(opt);
    uint64_t lr_bits;
    memcpy(&lr_bits, &lr, 8);
    wr64(h + 40, lr_bits);
    wr32(h + 48, (uint32_t)n_rngs);
    wr32(h + 52, CT_RNG_STATE_BYTES);
    wr64(h + 56, (uint64_t)user_bytes);

    float *buf = P > 0 && S > 0 ? malloc((size_t)P * sizeof(float)) : NULL;
    if (P > 0 && S > 0 && !buf)
        return ct__failf(ctx, CT_E_NOMEM, path, "out of memory (%lld floats) copying the optimizer "
                     "state", (long long)P);
    ct__wfile w = {.ctx = ctx, .path = path};
    ct_status st = ct__wf_open(&w);
    if (st) {
        free(buf);
        return st;
    }
    st = ct__wf_write(&w, h, sizeof h);
    for (int i = 0; i < S && !st; i++) {
        st = ct_optim_get_state(opt, i, buf, P);
        if (!st && !ct__host_is_le()) ct__swap_bytes(buf, (size_t)P, 4);
        if (!st) st = ct__wf_write(&w, buf, (size_t)P * sizeof(float));
    }
    for (int i = 0; i < n_rngs && !st; i++) {
        uint8_t r[CT_RNG_STATE_BYTES];
        ct_rng_save(rngs[i], r);
        st = ct__wf_write(&w, r, sizeof r);
    }
    if (!st && user_bytes > 0) st = ct__wf_write(&w, user, user_bytes);
    if (!st) {
        uint8_t c[4];
        wr32(c, (uint32_t)w.crc);
        st = ct__wf_write(&w, c, 4);
    }
    free(buf);
    return ct__wf_finish(&w, st);
}

/* ---- load --------------------------------------------------------------------------------------- */
ct_status ct_train_state_load(const char *path, ct_optim *opt, int64_t *step,
                              ct_rng *const *rngs, int n_rngs, void *user, size_t user_cap,
                              size_t *user_bytes) {
    if (!opt) return CT_E_NULL;
    ct_ctx *ctx = ct_optim_module(opt)->ctx;
    if (!path) return ct_fail(ctx, CT_E_ARG, "train_state_load: the path is NULL");
    if (n_rngs < 0 || (n_rngs > 0 && !rngs))
        return ct__failf(ctx, CT_E_ARG, path, "train_state_load: %d generators with a NULL array", n_rngs);
    for (int i = 0; i < n_rngs; i++)
        if (!rngs[i]) return ct__failf(ctx, CT_E_ARG, path, "train_state_load: generator %d is NULL", i);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ct__failf(ctx, CT_E_IO, path, "cannot open for reading: %s", strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return ct__failf(ctx, CT_E_IO, path, "not a regular file");
    }
    uint64_t size = (uint64_t)sb.st_size;
    uint8_t *buf = NULL;
    ct_status st = CT_OK;
    uint8_t h[TS_HEADER] = {0};
    if (size < 8 || pread(fd, h, size < TS_HEADER ? (size_t)size : TS_HEADER, 0) <
                        (ssize_t)(size < TS_HEADER ? size : TS_HEADER)) {
        st = ct__failf(ctx, CT_E_FORMAT, path, "the file has %llu bytes, too few for a training state "
                   "(a %d-byte header); it is truncated: %s", (ull)size, TS_HEADER, TS_FIX);
        goto done;
    }
    if (memcmp(h, "CTTS", 4) != 0) {
        char m[40];
        snprintf(m, sizeof m, "%02x %02x %02x %02x", h[0], h[1], h[2], h[3]);
        bool st_file = h[7] == 0 && h[8] == '{';
        st = ct__failf(ctx, CT_E_FORMAT, path, "not a training-state file: bytes 0-3 are %s, expected "
                   "\"CTTS\"%s", m, st_file ? " (this looks like a safetensors file: load weights "
                   "with ct_safetensors_load)" : "");
        goto done;
    }
    uint32_t version = rd32(h + 4);
    if (version != CT_TRAIN_STATE_VERSION) {
        st = ct__failf(ctx, CT_E_FORMAT, path, "training-state version %u at byte 4; this build reads "
                   "version %u: %s", version, CT_TRAIN_STATE_VERSION,
                   version > CT_TRAIN_STATE_VERSION ? "it was written by a newer cantor" : TS_FIX);
        goto done;
    }
    if (size < TS_HEADER + 4) {
        st = ct__failf(ctx, CT_E_FORMAT, path, "the file has %llu bytes, too few for a training state "
                   "(at least %d); it is truncated: %s", (ull)size, TS_HEADER + 4, TS_FIX);
        goto done;
    }
    uint32_t kind = rd32(h + 8), S = rd32(h + 12), R = rd32(h + 48), rb = rd32(h + 52);
    uint64_t P = rd64(h + 16), U = rd64(h + 56);
    if (rb != CT_RNG_STATE_BYTES) {
        st = ct__failf(ctx, CT_E_FORMAT, path, "byte 52 says %u bytes per random generator; this build "
                   "has %d: %s", rb, CT_RNG_STATE_BYTES, TS_FIX);
        goto done;
    }
    /* the exact length, computed without overflow */
    uint64_t body = size - TS_HEADER - 4, arrays;
    bool fits = S <= 16 && P <= body / 4 && (arrays = (uint64_t)S * P * 4) <= body &&
                (uint64_t)R * CT_RNG_STATE_BYTES <= body - arrays &&
                U == body - arrays - (uint64_t)R * CT_RNG_STATE_BYTES;
    if (!fits) {
        st = ct__failf(ctx, CT_E_FORMAT, path, "the header says %u state arrays of %llu floats, %u "
                   "generators and %llu user bytes, which does not match the file's %llu bytes: "
                   "the file is truncated or damaged: %s", S, (ull)P, R, (ull)U, (ull)size, TS_FIX);
        goto done;
    }
    if (kind != (uint32_t)ct_optim_kind_of(opt) || S != (uint32_t)ct_optim_state_count(opt) ||
        P != (uint64_t)ct_optim_state_size(opt)) {
        st = ct__failf(ctx, CT_E_STATE, path, "the file holds the state of a %s optimizer (%u state "
                   "arrays) over %llu parameters; this optimizer is %s (%d arrays) over %lld "
                   "parameters: resume with the same model and optimizer configuration",
                   kind_text(kind), S, (ull)P, ct_optim_name(opt), ct_optim_state_count(opt),
                   (long long)ct_optim_state_size(opt));
        goto done;
    }
    if ((int)R != n_rngs || R > INT32_MAX) {
        st = ct__failf(ctx, CT_E_STATE, path, "the file holds %u random generators; %d were passed to "
                   "restore", R, n_rngs);
        goto done;
    }
    if (user && U > user_cap) {
        st = ct__failf(ctx, CT_E_ARG, path, "the file holds %llu user bytes; the buffer has room for "
                   "%zu", (ull)U, user_cap);
        goto done;
    }
    int64_t opt_step = (int64_t)rd64(h + 32);
    uint64_t lr_bits = rd64(h + 40);
    double lr;
    memcpy(&lr, &lr_bits, 8);
    if (opt_step < 0 || !isfinite(lr) || lr < 0) {
        st = ct__failf(ctx, CT_E_FORMAT, path, "the optimizer step count %lld (byte 32) or learning "
                   "rate %g (byte 40) is invalid: %s", (long long)opt_step, lr, TS_FIX);
        goto done;
    }
    buf = malloc((size_t)size);
    if (!buf) {
        st = ct__failf(ctx, CT_E_NOMEM, path, "out of memory (%llu bytes)", (ull)size);
        goto done;
    }
    size_t got = 0;
    errno = 0;
    while (got < size) {
        ssize_t r = pread(fd, buf + got, (size_t)size - got, (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    if (got != size) {
        st = ct__failf(ctx, CT_E_IO, path, "reading failed at byte %zu: %s", got,
                   errno ? strerror(errno) : "the file shrank while being read");
        goto done;
    }
    uint32_t want = rd32(buf + size - 4), have = (uint32_t)(uLong)ct__crc32(crc32(0L, Z_NULL, 0), buf,
                                                                       (size_t)size - 4);
    if (want != have) {
        st = ct__failf(ctx, CT_E_FORMAT, path, "CRC-32 mismatch: the data has %08x, the file's last 4 "
                   "bytes say %08x; the file is damaged: %s", (unsigned)have, (unsigned)want, TS_FIX);
        goto done;
    }
    const uint8_t *rp = buf + TS_HEADER + S * P * 4;
    ct_rng tmp;
    for (uint32_t i = 0; i < R; i++)
        if (ct_rng_load(&tmp, rp + (size_t)i * CT_RNG_STATE_BYTES, CT_RNG_STATE_BYTES) != CT_OK) {
            st = ct__failf(ctx, CT_E_FORMAT, path, "random generator %u (byte %llu) holds an invalid "
                       "state: %s", i, (ull)(TS_HEADER + S * P * 4 + (uint64_t)i * CT_RNG_STATE_BYTES),
                       TS_FIX);
            goto done;
        }
    /* everything checked: apply */
    if (!ct__host_is_le()) ct__swap_bytes(buf + TS_HEADER, (size_t)(S * P), 4);
    for (uint32_t i = 0; i < S && !st; i++) {
        float *a = (float *)(void *)(buf + TS_HEADER + (size_t)i * P * 4);   /* 4-aligned */
        st = ct_optim_set_state(opt, (int)i, a, (int64_t)P);
    }
    if (st) goto done;
    ct_optim_set_step(opt, opt_step);
    ct_optim_set_lr(opt, lr);
    for (uint32_t i = 0; i < R; i++)
        ct_rng_load(rngs[i], rp + (size_t)i * CT_RNG_STATE_BYTES, CT_RNG_STATE_BYTES);
    if (user && U > 0) memcpy(user, rp + (size_t)R * CT_RNG_STATE_BYTES, (size_t)U);
    if (user_bytes) *user_bytes = (size_t)U;
    if (step) *step = (int64_t)rd64(h + 24);
done:
    free(buf);
    close(fd);
    return st;
}
