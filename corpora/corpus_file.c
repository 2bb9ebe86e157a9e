/* corpora/corpus_file.c — the corpus file (format in corpora/corpus.h): cp_writer writes it
 * atomically (temporary file, fsync, rename), cp_corpus maps it read-only and validates every
 * size and offset against the file's size before anything is used. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "corpora/internal.h"

#define ALIGN_SECTION 64
#define ALIGN_PIECE 16

/* header field offsets */
enum {
    H_MAGIC = 0, H_VERSION = 8, H_HEADER_BYTES = 12, H_FILE_SIZE = 16, H_KIND = 24, H_VOCAB = 28,
    H_PIECES = 32, H_SPLIT_PIECES = 40, H_SPLIT_STEPS = 64, H_SPLIT_SECONDS = 88,
    H_DATA_OFF = 112, H_DATA_BYTES = 120, H_INDEX_OFF = 128, H_INDEX_ENTRY = 136,
    H_STRINGS_OFF = 144, H_STRINGS_BYTES = 152, H_STATS_OFF = 160, H_STATS_BYTES = 168,
    H_LOG_OFF = 176, H_LOG_BYTES = 184, H_META_SUM = 192, H_DATA_SUM = 200,
    H_VALID_PCT = 208, H_TEST_PCT = 212, H_STEP_BYTES = 216
};
/* index entry field offsets */
enum {
    E_OFFSET = 0, E_LEN = 8, E_DURATION = 16, E_HASH = 24, E_START = 32, E_NAME_OFF = 40, E_NAME_LEN = 44,
    E_SPLIT = 48, E_PIECE = 52, E_FILE = 56, E_INSTRUMENT = 60
};

static int step_bytes_of(const cp_encoding *e) { return cp_encoding_is_tokens(e) ? 4 : CP_FRAME_BYTES; }

/* ============================================================================================
 * Writing
 * ============================================================================================ */
struct cp_writer {
    char *path, *tmp;
    FILE *f;
    cp_encoding enc;
    int vocab, step_bytes, valid_pct, test_pct;
    uint64_t pos;         /* bytes written */
    uint64_t data_hash;
    uint8_t *index;
    size_t n_pieces, cap_pieces;
    char *strings;
    size_t n_strings, cap_strings;
    cp_stats acc;         /* pieces, steps, seconds, pitch histogram of what was appended */
};

static char *dupstr(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static ct_status wr(cp_writer *w, const void *p, size_t n, bool data, cp_error *err) {
    if (n && fwrite(p, 1, n, w->f) != n)
        return cp__fail(err, CT_E_IO, "%s: write failed at byte %llu: %s (is the disk full?)", w->path,
                        (unsigned long long)w->pos, strerror(errno ? errno : EIO));
    if (data) w->data_hash = cp_hash_update(w->data_hash, p, n);
    w->pos += n;
    return CT_OK;
}

static ct_status pad_to(cp_writer *w, uint64_t align, bool data, cp_error *err) {
    static const uint8_t zeros[64];
    size_t k = (size_t)((align - w->pos % align) % align);
    return wr(w, zeros, k, data, err);
}

ct_status cp_writer_open(cp_writer **out, const char *path, const cp_encoding *e, int valid_pct, int test_pct,
                         cp_error *err) {
    if (out) *out = NULL;
    if (!out || !path || !e) return cp__fail(err, CT_E_NULL, "cp_writer_open: NULL argument");
    ct_status s = cp_encoding_check(e, err);
    if (s != CT_OK) return s;
    if (valid_pct < 0 || test_pct < 0 || valid_pct + test_pct > 100)
        return cp__fail(err, CT_E_ARG, "%s: split percentages valid %d, test %d; expected 0..100 each, at most 100 "
                        "together", path, valid_pct, test_pct);
    cp_writer *w = calloc(1, sizeof *w);
    size_t pl = strlen(path);
    if (!w || !(w->path = dupstr(path)) || !(w->tmp = malloc(pl + 16))) {
        cp_writer_abort(w);
        return cp__fail(err, CT_E_NOMEM, "%s: out of memory", path);
    }
    memcpy(w->tmp, path, pl);
    memcpy(w->tmp + pl, ".tmp.XXXXXX", 12);
    int fd = mkstemp(w->tmp);
    if (fd < 0) {
        s = cp__fail(err, CT_E_IO, "%s: cannot create the temporary file %s: %s (does the folder exist, can you "
                     "write there?)", path, w->tmp, strerror(errno));
        free(w->tmp);
        w->tmp = NULL;
        cp_writer_abort(w);
        return s;
    }
    w->f = fdopen(fd, "wb");
    if (!w->f) {
        s = cp__fail(err, CT_E_IO, "%s: fdopen: %s", path, strerror(errno));
        close(fd);
        cp_writer_abort(w);
        return s;
    }
    setvbuf(w->f, NULL, _IOFBF, 1 << 20);
    w->enc = *e;
    w->vocab = cp_encoding_vocab(e);
    w->step_bytes = step_bytes_of(e);
    w->valid_pct = valid_pct;
    w->test_pct = test_pct;
    w->data_hash = cp_hash_bytes(NULL, 0);
    uint8_t header[CP_HEADER_BYTES] = {0};   /* a placeholder until the finish */
    s = wr(w, header, sizeof header, false, err);
    if (s != CT_OK) {
        cp_writer_abort(w);
        return s;
    }
    *out = w;
    cp__ok(err);
    return CT_OK;
}

static bool grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return false;
    *p = q;
    *cap = c;
    return true;
}

ct_status cp_writer_add(cp_writer *w, const cp_piece_in *p, cp_error *err) {
    if (!w || !p) return cp__fail(err, CT_E_NULL, "cp_writer_add: NULL argument");
    const char *name = p->name ? p->name : "";
    size_t nl = strlen(name);
    bool tokens = cp_encoding_is_tokens(&w->enc);
    if (nl > CP_MAX_NAME || p->len < 0 || (p->len > 0 && (tokens ? !p->tokens : !p->frames)) ||
        (int)p->split < 0 || (int)p->split >= CP_NUM_SPLITS || !(p->duration_s >= 0) || !isfinite(p->duration_s))
        return cp__fail(err, CT_E_ARG, "%s: piece %zu (%s): name of %zu bytes (at most %d), %lld steps, %s data, "
                        "split %d, duration %g s; expected a valid piece", w->path, w->n_pieces, name, nl,
                        CP_MAX_NAME, (long long)p->len, (tokens ? p->tokens != NULL : p->frames != NULL) ? "with" :
                        "no", (int)p->split, p->duration_s);
    if (tokens)
        for (int64_t i = 0; i < p->len; i++)
            if (p->tokens[i] < 0 || p->tokens[i] >= w->vocab)
                return cp__fail(err, CT_E_ARG, "%s: piece %zu (%s): token %d at step %lld; expected 0..%d", w->path,
                                w->n_pieces, name, p->tokens[i], (long long)i, w->vocab - 1);
    if (!grow((void **)&w->index, &w->cap_pieces, w->n_pieces + 1, CP_INDEX_ENTRY_BYTES) ||
        !grow((void **)&w->strings, &w->cap_strings, w->n_strings + nl + 1, 1))
        return cp__fail(err, CT_E_NOMEM, "%s: out of memory for piece %zu", w->path, w->n_pieces);
    ct_status s = pad_to(w, ALIGN_PIECE, true, err);
    if (s != CT_OK) return s;
    uint64_t offset = w->pos;
    uint8_t buf[4096];
    if (tokens) {
        for (int64_t i = 0; i < p->len && s == CT_OK;) {
            int64_t k = p->len - i < 1024 ? p->len - i : 1024;
            for (int64_t j = 0; j < k; j++) cp__put_u32(buf + 4 * j, (uint32_t)p->tokens[i + j]);
            s = wr(w, buf, (size_t)k * 4, true, err);
            i += k;
        }
        cp__pitch_onsets_tokens(&w->enc, p->tokens, p->len, w->acc.pitch_hist);
    } else {
        for (int64_t i = 0; i < p->len && s == CT_OK;) {
            int64_t k = p->len - i < 256 ? p->len - i : 256;
            for (int64_t j = 0; j < k; j++) {
                uint64_t word[2] = {0, 0};
                const uint8_t *fr = p->frames + (i + j) * CM_ROLL_NUM_KEYS;
                for (int key = 0; key < CM_ROLL_NUM_KEYS; key++)
                    if (fr[key]) word[key / 64] |= (uint64_t)1 << (key % 64);
                cp__put_u64(buf + 16 * j, word[0]);
                cp__put_u64(buf + 16 * j + 8, word[1]);
            }
            s = wr(w, buf, (size_t)k * CP_FRAME_BYTES, true, err);
            i += k;
        }
        cp__pitch_onsets_frames(p->frames, p->len, w->acc.pitch_hist);
    }
    if (s != CT_OK) return s;
    uint8_t *en = w->index + w->n_pieces * CP_INDEX_ENTRY_BYTES;
    memset(en, 0, CP_INDEX_ENTRY_BYTES);
    cp__put_u64(en + E_OFFSET, offset);
    cp__put_u64(en + E_LEN, (uint64_t)p->len);
    cp__put_f64(en + E_DURATION, p->duration_s);
    cp__put_u64(en + E_HASH, p->content_hash);
    cp__put_u64(en + E_START, (uint64_t)p->start);
    cp__put_u32(en + E_NAME_OFF, (uint32_t)w->n_strings);
    cp__put_u32(en + E_NAME_LEN, (uint32_t)nl);
    cp__put_u32(en + E_SPLIT, (uint32_t)p->split);
    cp__put_u32(en + E_PIECE, (uint32_t)p->piece);
    cp__put_u32(en + E_FILE, (uint32_t)p->file_index);
    cp__put_u32(en + E_INSTRUMENT, (uint32_t)p->instrument);
    if (w->n_strings + nl + 1 > UINT32_MAX)
        return cp__fail(err, CT_E_ARG, "%s: the source names exceed 4 GiB", w->path);
    memcpy(w->strings + w->n_strings, name, nl + 1);
    w->n_strings += nl + 1;
    w->n_pieces++;
    w->acc.pieces[p->split]++;
    w->acc.steps[p->split] += p->len;
    w->acc.seconds[p->split] += p->duration_s;
    cp__ok(err);
    return CT_OK;
}

void cp_writer_abort(cp_writer *w) {
    if (!w) return;
    if (w->f) fclose(w->f);
    if (w->tmp) unlink(w->tmp);
    free(w->tmp);
    free(w->path);
    free(w->index);
    free(w->strings);
    free(w);
}

/* fsync the folder holding path, so the rename itself is durable (best effort). */
static void sync_dir(const char *path) {
    char *d = dupstr(path);
    if (!d) return;
    char *slash = strrchr(d, '/');
    const char *dir = ".";
    if (slash) {
        *slash = 0;
        dir = slash == d ? "/" : d;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(d);
}

ct_status cp_writer_finish(cp_writer *w, cp_stats *stats, cp_error *err) {
    if (!w) return cp__fail(err, CT_E_NULL, "cp_writer_finish: NULL writer");
    cp_stats st;
    memset(&st, 0, sizeof st);
    if (stats) st = *stats;   /* the counters and skips (borrowed) */
    for (int k = 0; k < CP_NUM_SPLITS; k++) {
        st.pieces[k] = w->acc.pieces[k];
        st.steps[k] = w->acc.steps[k];
        st.seconds[k] = w->acc.seconds[k];
    }
    memcpy(st.pitch_hist, w->acc.pitch_hist, sizeof st.pitch_hist);
    char *log = NULL;
    size_t log_len = 0;
    uint8_t sbytes[CP__STATS_BYTES];
    cp__stats_encode(&st, sbytes);
    ct_status s = cp__stats_log(&st, &log, &log_len);
    if (s != CT_OK) s = cp__fail(err, s, "%s: out of memory for the log", w->path);
    uint64_t data_off = CP_HEADER_BYTES, data_bytes = 0, index_off = 0, strings_off = 0, stats_off = 0, log_off = 0;
    if (s == CT_OK) s = pad_to(w, ALIGN_SECTION, true, err);
    if (s == CT_OK) {
        data_bytes = w->pos - data_off;
        index_off = w->pos;
        s = wr(w, w->index, w->n_pieces * CP_INDEX_ENTRY_BYTES, false, err);
    }
    if (s == CT_OK) s = pad_to(w, ALIGN_SECTION, false, err);
    if (s == CT_OK) {
        strings_off = w->pos;
        s = wr(w, w->strings, w->n_strings, false, err);
    }
    if (s == CT_OK) s = pad_to(w, ALIGN_SECTION, false, err);
    if (s == CT_OK) {
        stats_off = w->pos;
        s = wr(w, sbytes, sizeof sbytes, false, err);
    }
    if (s == CT_OK) s = pad_to(w, ALIGN_SECTION, false, err);
    if (s == CT_OK) {
        log_off = w->pos;
        s = wr(w, log, log_len, false, err);
    }
    if (s == CT_OK) {
        uint8_t h[CP_HEADER_BYTES] = {0};
        memcpy(h + H_MAGIC, CP_MAGIC, 8);
        cp__put_u32(h + H_VERSION, CP_VERSION);
        cp__put_u32(h + H_HEADER_BYTES, CP_HEADER_BYTES);
        cp__put_u64(h + H_FILE_SIZE, w->pos);
        cp__put_u32(h + H_KIND, (uint32_t)w->enc.kind);
        cp__put_u32(h + H_VOCAB, (uint32_t)w->vocab);
        cp__put_u64(h + H_PIECES, w->n_pieces);
        for (int k = 0; k < CP_NUM_SPLITS; k++) {
            cp__put_u64(h + H_SPLIT_PIECES + 8 * k, (uint64_t)st.pieces[k]);
            cp__put_u64(h + H_SPLIT_STEPS + 8 * k, (uint64_t)st.steps[k]);
            cp__put_f64(h + H_SPLIT_SECONDS + 8 * k, st.seconds[k]);
        }
        cp__put_u64(h + H_DATA_OFF, data_off);
        cp__put_u64(h + H_DATA_BYTES, data_bytes);
        cp__put_u64(h + H_INDEX_OFF, index_off);
        cp__put_u64(h + H_INDEX_ENTRY, CP_INDEX_ENTRY_BYTES);
        cp__put_u64(h + H_STRINGS_OFF, strings_off);
        cp__put_u64(h + H_STRINGS_BYTES, w->n_strings);
        cp__put_u64(h + H_STATS_OFF, stats_off);
        cp__put_u64(h + H_STATS_BYTES, CP__STATS_BYTES);
        cp__put_u64(h + H_LOG_OFF, log_off);
        cp__put_u64(h + H_LOG_BYTES, log_len);
        cp__put_u32(h + H_VALID_PCT, (uint32_t)w->valid_pct);
        cp__put_u32(h + H_TEST_PCT, (uint32_t)w->test_pct);
        cp__put_u32(h + H_STEP_BYTES, (uint32_t)w->step_bytes);
        cp__encoding_encode(&w->enc, h + CP__CONFIG_OFFSET);
        uint64_t m = cp_hash_bytes(h, sizeof h);
        m = cp_hash_update(m, w->index, w->n_pieces * CP_INDEX_ENTRY_BYTES);
        m = cp_hash_update(m, w->strings, w->n_strings);
        m = cp_hash_update(m, sbytes, sizeof sbytes);
        m = cp_hash_update(m, log, log_len);
        cp__put_u64(h + H_META_SUM, m);
        cp__put_u64(h + H_DATA_SUM, w->data_hash);
        if (fseek(w->f, 0, SEEK_SET) != 0 || fwrite(h, 1, sizeof h, w->f) != sizeof h || fflush(w->f) != 0)
            s = cp__fail(err, CT_E_IO, "%s: writing the header failed: %s (is the disk full?)", w->path,
                         strerror(errno ? errno : EIO));
    }
    if (s == CT_OK && fsync(fileno(w->f)) != 0)
        s = cp__fail(err, CT_E_IO, "%s: fsync failed: %s", w->path, strerror(errno));
    if (s == CT_OK) {
        int rc = fclose(w->f);
        w->f = NULL;
        if (rc != 0) s = cp__fail(err, CT_E_IO, "%s: close failed: %s", w->path, strerror(errno));
    }
    if (s == CT_OK && rename(w->tmp, w->path) != 0)
        s = cp__fail(err, CT_E_IO, "%s: renaming %s over it failed: %s", w->path, w->tmp, strerror(errno));
    free(log);
    if (s == CT_OK) {
        sync_dir(w->path);
        if (stats) {
            for (int k = 0; k < CP_NUM_SPLITS; k++) {
                stats->pieces[k] = st.pieces[k];
                stats->steps[k] = st.steps[k];
                stats->seconds[k] = st.seconds[k];
            }
            memcpy(stats->pitch_hist, st.pitch_hist, sizeof st.pitch_hist);
        }
        free(w->tmp);
        w->tmp = NULL;   /* renamed: nothing to remove */
        cp__ok(err);
    }
    cp_writer_abort(w);
    return s;
}

/* ============================================================================================
 * Reading
 * ============================================================================================ */
struct cp_corpus {
    char *path;
    const uint8_t *map;
    size_t size;
    uint32_t version;
    cp_encoding enc;
    int vocab, step_bytes, valid_pct, test_pct;
    int64_t n;
    cp_piece *pieces;
    int64_t split_pieces[CP_NUM_SPLITS], split_steps[CP_NUM_SPLITS];
    double split_seconds[CP_NUM_SPLITS];
    uint64_t data_off, data_bytes, strings_off, strings_bytes, stats_off, log_off, log_bytes;
    uint64_t data_sum;
};

void cp_corpus_close(cp_corpus *c) {
    if (!c) return;
    if (c->map) munmap((void *)c->map, c->size);
    free(c->pieces);
    free(c->path);
    free(c);
}

/* The bytes as C-escaped text ("MThd\x00\x00\x00\x06"). */
static void escape(const uint8_t *p, size_t n, char *out, size_t cap) {
    size_t at = 0;
    for (size_t i = 0; i < n && at + 5 < cap; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\') out[at++] = (char)p[i];
        else at += (size_t)snprintf(out + at, cap - at, "\\x%02x", p[i]);
    }
    out[at] = 0;
}

#define BAD(...) cp__fail(err, CT_E_FORMAT, __VA_ARGS__)

static ct_status check_header(cp_corpus *c, cp_error *err) {
    const uint8_t *h = c->map;
    const char *p = c->path;
    uint64_t size = c->size;
    uint64_t fs = cp__get_u64(h + H_FILE_SIZE);
    if (fs != size) {
        if (fs > size)
            return BAD("%s: truncated: byte 16 says the file has %llu bytes, it has %llu (%llu missing): the file was "
                       "cut short (an interrupted copy or download?); copy it again or rebuild it", p,
                       (unsigned long long)fs, (unsigned long long)size, (unsigned long long)(fs - size));
        return BAD("%s: byte 16 says the file has %llu bytes, it has %llu: %llu trailing bytes that no corpus "
                   "writer adds; the file is damaged: rebuild it", p, (unsigned long long)fs,
                   (unsigned long long)size, (unsigned long long)(size - fs));
    }
    uint32_t hb = cp__get_u32(h + H_HEADER_BYTES);
    if (hb != CP_HEADER_BYTES)
        return BAD("%s: byte 12: header size %u; expected %d for version %u", p, hb, CP_HEADER_BYTES, c->version);
    uint32_t kind = cp__get_u32(h + H_KIND);
    if (kind != CP_MELODY && kind != CP_PERFORMANCE && kind != CP_PIANOROLL)
        return BAD("%s: byte 24: encoding kind %u; expected 1 (melody), 2 (performance) or 3 (pianoroll)", p, kind);
    cp__encoding_decode(h + CP__CONFIG_OFFSET, (cp_encoding_kind)kind, &c->enc);
    cp_error sub;
    if (cp_encoding_check(&c->enc, &sub) != CT_OK)
        return BAD("%s: byte %d: the stored encoding configuration is invalid: %s", p, CP__CONFIG_OFFSET,
                   sub.message);
    c->vocab = cp_encoding_vocab(&c->enc);
    uint32_t vocab = cp__get_u32(h + H_VOCAB);
    if (vocab != (uint32_t)c->vocab)
        return BAD("%s: byte 28: vocabulary %u; expected %d for the stored %s configuration", p, vocab, c->vocab,
                   cp_encoding_name(c->enc.kind));
    c->step_bytes = step_bytes_of(&c->enc);
    uint32_t sb = cp__get_u32(h + H_STEP_BYTES);
    if (sb != (uint32_t)c->step_bytes)
        return BAD("%s: byte 216: %u bytes per step; expected %d for %s", p, sb, c->step_bytes,
                   cp_encoding_name(c->enc.kind));
    uint32_t vp = cp__get_u32(h + H_VALID_PCT), tp = cp__get_u32(h + H_TEST_PCT);
    if (vp > 100 || tp > 100 || vp + tp > 100)
        return BAD("%s: byte 208: split percentages valid %u, test %u; expected at most 100 together", p, vp, tp);
    c->valid_pct = (int)vp;
    c->test_pct = (int)tp;
    uint64_t ie = cp__get_u64(h + H_INDEX_ENTRY);
    if (ie != CP_INDEX_ENTRY_BYTES)
        return BAD("%s: byte 136: index entries of %llu bytes; expected %d", p, (unsigned long long)ie,
                   CP_INDEX_ENTRY_BYTES);
    uint64_t sbytes = cp__get_u64(h + H_STATS_BYTES);
    if (sbytes != CP__STATS_BYTES)
        return BAD("%s: byte 168: stats section of %llu bytes; expected %d", p, (unsigned long long)sbytes,
                   CP__STATS_BYTES);
    /* the sections, in file order, each inside the file and after the one before */
    c->n = (int64_t)cp__get_u64(h + H_PIECES);
    uint64_t n = cp__get_u64(h + H_PIECES);
    if (n > (size - CP_HEADER_BYTES) / CP_INDEX_ENTRY_BYTES)
        return BAD("%s: byte 32: %llu pieces need %llu index bytes; the file has only %llu", p,
                   (unsigned long long)n, (unsigned long long)n * CP_INDEX_ENTRY_BYTES, (unsigned long long)size);
    static const struct { const char *name; int off_at, bytes_at; } sec[5] = {
        {"data", H_DATA_OFF, H_DATA_BYTES}, {"index", H_INDEX_OFF, -1}, {"strings", H_STRINGS_OFF, H_STRINGS_BYTES},
        {"stats", H_STATS_OFF, H_STATS_BYTES}, {"log", H_LOG_OFF, H_LOG_BYTES}};
    uint64_t off[5], bytes[5], prev_end = CP_HEADER_BYTES;
    if (cp__get_u64(h + H_DATA_OFF) != CP_HEADER_BYTES)
        return BAD("%s: byte %d: data at byte %llu; expected %d (right after the header)", p, H_DATA_OFF,
                   (unsigned long long)cp__get_u64(h + H_DATA_OFF), CP_HEADER_BYTES);
    for (int i = 0; i < 5; i++) {
        off[i] = cp__get_u64(h + sec[i].off_at);
        bytes[i] = sec[i].bytes_at >= 0 ? cp__get_u64(h + sec[i].bytes_at) : n * CP_INDEX_ENTRY_BYTES;
        if (off[i] % ALIGN_SECTION || off[i] < prev_end || off[i] > size)
            return BAD("%s: byte %d: the %s section starts at byte %llu; expected a multiple of %d from %llu "
                       "(after the %s) to %llu (the file's size)", p, sec[i].off_at, sec[i].name,
                       (unsigned long long)off[i], ALIGN_SECTION, (unsigned long long)prev_end,
                       i ? sec[i - 1].name : "header", (unsigned long long)size);
        if (bytes[i] > size - off[i])
            return BAD("%s: byte %d: the %s section of %llu bytes at byte %llu runs past the file's end (%llu bytes)",
                       p, sec[i].bytes_at >= 0 ? sec[i].bytes_at : H_PIECES, sec[i].name,
                       (unsigned long long)bytes[i], (unsigned long long)off[i], (unsigned long long)size);
        prev_end = off[i] + bytes[i];
    }
    c->data_off = off[0];
    c->data_bytes = bytes[0];
    c->strings_off = off[2];
    c->strings_bytes = bytes[2];
    c->stats_off = off[3];
    c->log_off = off[4];
    c->log_bytes = bytes[4];
    c->data_sum = cp__get_u64(h + H_DATA_SUM);
    return CT_OK;
}

/* The meta checksum: header (checksums as 0), index, strings, stats, log. Checked after every
 * field, so that a field out of range is reported as such (and an in-range change by this). */
static ct_status check_meta_sum(const cp_corpus *c, cp_error *err) {
    const uint8_t *h = c->map;
    uint8_t hz[CP_HEADER_BYTES];
    memcpy(hz, h, sizeof hz);
    memset(hz + H_META_SUM, 0, 16);
    uint64_t m = cp_hash_bytes(hz, sizeof hz);
    m = cp_hash_update(m, c->map + cp__get_u64(h + H_INDEX_OFF), (size_t)c->n * CP_INDEX_ENTRY_BYTES);
    m = cp_hash_update(m, c->map + c->strings_off, (size_t)c->strings_bytes);
    m = cp_hash_update(m, c->map + c->stats_off, CP__STATS_BYTES);
    m = cp_hash_update(m, c->map + c->log_off, (size_t)c->log_bytes);
    uint64_t want = cp__get_u64(h + H_META_SUM);
    if (m != want)
        return BAD("%s: byte 192: meta checksum %016llx, but the header, index, names, stats and log hash to "
                   "%016llx: the file is damaged; rebuild it", c->path, (unsigned long long)want,
                   (unsigned long long)m);
    return CT_OK;
}

static ct_status check_index(cp_corpus *c, cp_error *err) {
    const char *p = c->path;
    const uint8_t *h = c->map;
    uint64_t index_off = cp__get_u64(h + H_INDEX_OFF);
    uint64_t data_end = c->data_off + c->data_bytes;
    const char *strings = (const char *)c->map + c->strings_off;
    c->pieces = malloc((size_t)(c->n ? c->n : 1) * sizeof *c->pieces);
    if (!c->pieces) return cp__fail(err, CT_E_NOMEM, "%s: out of memory for %lld index entries", p, (long long)c->n);
    int64_t pieces[3] = {0}, steps[3] = {0};
    double seconds[3] = {0};
    for (int64_t i = 0; i < c->n; i++) {
        uint64_t at = index_off + (uint64_t)i * CP_INDEX_ENTRY_BYTES;
        const uint8_t *e = c->map + at;
        cp_piece *x = &c->pieces[i];
        x->id = i;
        x->data_offset = cp__get_u64(e + E_OFFSET);
        uint64_t len = cp__get_u64(e + E_LEN);
        if (x->data_offset % ALIGN_PIECE || x->data_offset < c->data_off || x->data_offset > data_end)
            return BAD("%s: byte %llu (index entry of piece %lld): data offset %llu; expected a multiple of %d in "
                       "the data section [%llu, %llu]", p, (unsigned long long)(at + E_OFFSET), (long long)i,
                       (unsigned long long)x->data_offset, ALIGN_PIECE, (unsigned long long)c->data_off,
                       (unsigned long long)data_end);
        if (len > (data_end - x->data_offset) / (uint64_t)c->step_bytes)
            return BAD("%s: byte %llu (index entry of piece %lld): %llu steps of %d bytes at byte %llu run past the "
                       "data section's end (byte %llu)", p, (unsigned long long)(at + E_LEN), (long long)i,
                       (unsigned long long)len, c->step_bytes, (unsigned long long)x->data_offset,
                       (unsigned long long)data_end);
        x->len = (int64_t)len;
        x->duration_s = cp__get_f64(e + E_DURATION);
        if (!(x->duration_s >= 0) || !isfinite(x->duration_s))
            return BAD("%s: byte %llu (index entry of piece %lld): duration %g s; expected a finite value >= 0", p,
                       (unsigned long long)(at + E_DURATION), (long long)i, x->duration_s);
        uint32_t no = cp__get_u32(e + E_NAME_OFF), nl = cp__get_u32(e + E_NAME_LEN);
        if (nl > CP_MAX_NAME || (uint64_t)no + nl >= c->strings_bytes || strings[no + nl] != 0 ||
            memchr(strings + no, 0, nl))
            return BAD("%s: byte %llu (index entry of piece %lld): name at %u, %u bytes; expected a NUL-terminated "
                       "name inside the %llu bytes of names", p, (unsigned long long)(at + E_NAME_OFF),
                       (long long)i, no, nl, (unsigned long long)c->strings_bytes);
        x->name = strings + no;
        uint32_t split = cp__get_u32(e + E_SPLIT);
        if (split >= CP_NUM_SPLITS)
            return BAD("%s: byte %llu (index entry of piece %lld): split %u; expected 0 (train), 1 (valid) or 2 "
                       "(test)", p, (unsigned long long)(at + E_SPLIT), (long long)i, split);
        x->split = (cp_split)split;
        x->content_hash = cp__get_u64(e + E_HASH);
        x->start = (int64_t)cp__get_u64(e + E_START);
        x->piece = (int32_t)cp__get_u32(e + E_PIECE);
        x->file_index = (int32_t)cp__get_u32(e + E_FILE);
        x->instrument = (int32_t)cp__get_u32(e + E_INSTRUMENT);
        pieces[split]++;
        steps[split] += x->len;
        seconds[split] += x->duration_s;
    }
    for (int k = 0; k < CP_NUM_SPLITS; k++) {
        uint64_t hp = cp__get_u64(h + H_SPLIT_PIECES + 8 * k), hs = cp__get_u64(h + H_SPLIT_STEPS + 8 * k);
        double hsec = cp__get_f64(h + H_SPLIT_SECONDS + 8 * k);
        if (hp != (uint64_t)pieces[k] || hs != (uint64_t)steps[k])
            return BAD("%s: byte %d: the header gives %llu pieces and %llu steps for %s; the index has %lld and %lld",
                       p, H_SPLIT_PIECES + 8 * k, (unsigned long long)hp, (unsigned long long)hs,
                       cp_split_name((cp_split)k), (long long)pieces[k], (long long)steps[k]);
        if (!(fabs(hsec - seconds[k]) <= 1e-6 * (1 + fabs(seconds[k]))))
            return BAD("%s: byte %d: the header gives %g s for %s; the index adds up to %g s", p,
                       H_SPLIT_SECONDS + 8 * k, hsec, cp_split_name((cp_split)k), seconds[k]);
        c->split_pieces[k] = pieces[k];
        c->split_steps[k] = steps[k];
        c->split_seconds[k] = hsec;
    }
    return CT_OK;
}

ct_status cp_corpus_open(const char *path, cp_corpus **out, cp_error *err) {
    if (out) *out = NULL;
    if (!path || !out) return cp__fail(err, CT_E_NULL, "cp_corpus_open: NULL argument");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cp__fail(err, CT_E_IO, "%s: cannot open: %s%s", path, strerror(errno),
                        errno == ENOENT ? " (build one with `cantor corpus build DIR -o FILE`)" : "");
    struct stat st;
    if (fstat(fd, &st) != 0) {
        ct_status s = cp__fail(err, CT_E_IO, "%s: fstat: %s", path, strerror(errno));
        close(fd);
        return s;
    }
    if (!S_ISREG(st.st_mode)) {
        ct_status s = cp__fail(err, CT_E_IO, "%s: %s", path, S_ISDIR(st.st_mode) ? "is a folder, not a corpus file" :
                               "not a regular file");
        close(fd);
        return s;
    }
    cp_corpus *c = calloc(1, sizeof *c);
    if (!c || !(c->path = dupstr(path))) {
        close(fd);
        free(c);
        return cp__fail(err, CT_E_NOMEM, "%s: out of memory", path);
    }
    c->size = (size_t)st.st_size;
    if (c->size > 0) {
        void *m = mmap(NULL, c->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            ct_status s = cp__fail(err, CT_E_IO, "%s: mmap of %zu bytes failed: %s", path, c->size, strerror(errno));
            close(fd);
            cp_corpus_close(c);
            return s;
        }
        c->map = m;
    }
    close(fd);
    ct_status s = CT_OK;
    size_t have = c->size < 8 ? c->size : 8;
    char esc[64];
    escape(c->map, have, esc, sizeof esc);
    if (c->size == 0) {
        s = BAD("%s: empty file (0 bytes): not a cantor corpus file (expected magic \"%s\" at byte 0)", path,
                CP_MAGIC);
    } else if (memcmp(c->map, CP_MAGIC, have) != 0) {
        s = BAD("%s: not a cantor corpus file (magic \"%s\" at byte 0, expected \"%s\")", path, esc, CP_MAGIC);
    } else if (c->size < 12) {
        s = BAD("%s: truncated: the file ends at byte %zu, inside the header's first 12 bytes (magic \"%s\" and "
                "version); a corpus header is %d bytes", path, c->size, CP_MAGIC, CP_HEADER_BYTES);
    } else {
        c->version = cp__get_u32(c->map + H_VERSION);
        if (c->version > CP_VERSION)
            s = BAD("%s: byte 8: version %u is newer than this cantor reads (%u): update cantor, or rebuild the "
                    "corpus with this one", path, c->version, CP_VERSION);
        else if (c->version < 1)
            s = BAD("%s: byte 8: version %u; expected 1..%u", path, c->version, CP_VERSION);
        else if (c->size < CP_HEADER_BYTES)
            s = BAD("%s: truncated: the file ends at byte %zu, inside the %d-byte header; the file was cut short: "
                    "copy it again or rebuild it", path, c->size, CP_HEADER_BYTES);
    }
    if (s == CT_OK) s = check_header(c, err);
    if (s == CT_OK) s = check_index(c, err);
    if (s == CT_OK) s = check_meta_sum(c, err);
    if (s != CT_OK) {
        cp_corpus_close(c);
        return s;
    }
    *out = c;
    cp__ok(err);
    return CT_OK;
}

const char *cp_corpus_path(const cp_corpus *c) { return c ? c->path : NULL; }
uint32_t cp_corpus_version(const cp_corpus *c) { return c ? c->version : 0; }
const cp_encoding *cp_corpus_encoding(const cp_corpus *c) { return c ? &c->enc : NULL; }
int cp_corpus_vocab(const cp_corpus *c) { return c ? c->vocab : -1; }
int cp_corpus_valid_pct(const cp_corpus *c) { return c ? c->valid_pct : -1; }
int cp_corpus_test_pct(const cp_corpus *c) { return c ? c->test_pct : -1; }
int64_t cp_corpus_num_pieces(const cp_corpus *c) { return c ? c->n : 0; }
uint64_t cp_corpus_file_size(const cp_corpus *c) { return c ? c->size : 0; }

int64_t cp_corpus_split_pieces(const cp_corpus *c, cp_split s) {
    if (!c) return 0;
    if (s == CP_SPLIT_ALL) return c->n;
    return (int)s >= 0 && (int)s < CP_NUM_SPLITS ? c->split_pieces[s] : 0;
}

int64_t cp_corpus_split_steps(const cp_corpus *c, cp_split s) {
    if (!c) return 0;
    if (s == CP_SPLIT_ALL) return c->split_steps[0] + c->split_steps[1] + c->split_steps[2];
    return (int)s >= 0 && (int)s < CP_NUM_SPLITS ? c->split_steps[s] : 0;
}

double cp_corpus_split_seconds(const cp_corpus *c, cp_split s) {
    if (!c) return 0;
    if (s == CP_SPLIT_ALL) return c->split_seconds[0] + c->split_seconds[1] + c->split_seconds[2];
    return (int)s >= 0 && (int)s < CP_NUM_SPLITS ? c->split_seconds[s] : 0;
}

const cp_piece *cp_corpus_piece(const cp_corpus *c, int64_t id) {
    return c && id >= 0 && id < c->n ? &c->pieces[id] : NULL;
}

/* ---- piece data ----------------------------------------------------------------------------- */
static ct_status piece_for(const cp_corpus *c, int64_t id, bool tokens, const cp_piece **x, cp_error *err) {
    if (!c) return cp__fail(err, CT_E_NULL, "corpus: NULL");
    if (id < 0 || id >= c->n)
        return cp__fail(err, CT_E_ARG, "%s: piece %lld; expected 0..%lld", c->path, (long long)id,
                        (long long)c->n - 1);
    if (tokens != cp_encoding_is_tokens(&c->enc))
        return cp__fail(err, CT_E_ARG, "%s: a %s corpus holds %s, not %s", c->path, cp_encoding_name(c->enc.kind),
                        tokens ? "frames" : "tokens", tokens ? "tokens" : "frames");
    *x = &c->pieces[id];
    return CT_OK;
}

static ct_status bad_token(const cp_corpus *c, const cp_piece *x, int64_t i, int32_t v, cp_error *err) {
    return BAD("%s: byte %llu: piece %lld (%s, piece %d) step %lld: token %d outside 0..%d; the file is damaged: "
               "rebuild it", c->path, (unsigned long long)(x->data_offset + 4 * (uint64_t)i), (long long)x->id,
               x->name, x->piece, (long long)i, v, c->vocab - 1);
}

ct_status cp_corpus_read_tokens(const cp_corpus *c, int64_t id, int32_t *dst, cp_error *err) {
    const cp_piece *x;
    ct_status s = piece_for(c, id, true, &x, err);
    if (s != CT_OK) return s;
    const uint8_t *d = c->map + x->data_offset;
    for (int64_t i = 0; i < x->len; i++) {
        int32_t v = (int32_t)cp__get_u32(d + 4 * i);
        if (v < 0 || v >= c->vocab) return bad_token(c, x, i, v, err);
        dst[i] = v;
    }
    return CT_OK;
}

ct_status cp_corpus_read_tokens64(const cp_corpus *c, int64_t id, int64_t *dst, cp_error *err) {
    const cp_piece *x;
    ct_status s = piece_for(c, id, true, &x, err);
    if (s != CT_OK) return s;
    const uint8_t *d = c->map + x->data_offset;
    for (int64_t i = 0; i < x->len; i++) {
        int32_t v = (int32_t)cp__get_u32(d + 4 * i);
        if (v < 0 || v >= c->vocab) return bad_token(c, x, i, v, err);
        dst[i] = v;
    }
    return CT_OK;
}

#define SPARE_MASK (~(((uint64_t)1 << (CM_ROLL_NUM_KEYS - 64)) - 1))

static ct_status frame_words(const cp_corpus *c, const cp_piece *x, int64_t t, uint64_t w[2], cp_error *err) {
    const uint8_t *d = c->map + x->data_offset + (uint64_t)t * CP_FRAME_BYTES;
    w[0] = cp__get_u64(d);
    w[1] = cp__get_u64(d + 8);
    if (w[1] & SPARE_MASK)
        return BAD("%s: byte %llu: piece %lld (%s) frame %lld has bits set past key 87 (%016llx); the file is "
                   "damaged: rebuild it", c->path, (unsigned long long)(x->data_offset + (uint64_t)t * 16 + 8),
                   (long long)x->id, x->name, (long long)t, (unsigned long long)w[1]);
    return CT_OK;
}

/* Piece id's frames, one value per key: 0/1 bytes into d8, or 0/1 floats into df (the other NULL). */
static ct_status read_frames_into(const cp_corpus *c, int64_t id, uint8_t *d8, float *df, cp_error *err) {
    const cp_piece *x;
    ct_status s = piece_for(c, id, false, &x, err);
    for (int64_t t = 0; s == CT_OK && t < x->len; t++) {
        uint64_t w[2];
        if ((s = frame_words(c, x, t, w, err)) != CT_OK) break;
        for (int k = 0; k < CM_ROLL_NUM_KEYS; k++) {
            const unsigned bit = (unsigned)((w[k / 64] >> (k % 64)) & 1);
            if (d8) d8[t * CM_ROLL_NUM_KEYS + k] = (uint8_t)bit;
            else df[t * CM_ROLL_NUM_KEYS + k] = (float)bit;
        }
    }
    return s;
}

ct_status cp_corpus_read_frames(const cp_corpus *c, int64_t id, uint8_t *dst, cp_error *err) {
    return read_frames_into(c, id, dst, NULL, err);
}

ct_status cp_corpus_read_frames_f32(const cp_corpus *c, int64_t id, float *dst, cp_error *err) {
    return read_frames_into(c, id, NULL, dst, err);
}

ct_status cp_corpus_stats(const cp_corpus *c, cp_stats *out, cp_error *err) {
    if (!c || !out) return cp__fail(err, CT_E_NULL, "cp_corpus_stats: NULL argument");
    memset(out, 0, sizeof *out);
    cp__stats_decode(c->map + c->stats_off, out);
    int64_t failed = out->files_failed, empty = out->files_empty, dup = out->files_duplicate;
    out->files_failed = out->files_empty = out->files_duplicate = 0;
    size_t bad = 0;
    ct_status s = cp__stats_parse_log((const char *)c->map + c->log_off, (size_t)c->log_bytes, out, &bad);
    if (s == CT_E_NOMEM) return cp__fail(err, s, "%s: out of memory for the log", c->path);
    if (s != CT_OK)
        return BAD("%s: byte %llu: a log line that is not \"failed|empty|duplicate<TAB>name<TAB>reason\"", c->path,
                   (unsigned long long)(c->log_off + bad));
    if (out->files_failed != failed || out->files_empty != empty || out->files_duplicate != dup) {
        s = BAD("%s: byte %llu: the log lists %lld failed, %lld empty and %lld duplicate files; the stats section "
                "counts %lld, %lld and %lld", c->path, (unsigned long long)c->log_off, (long long)out->files_failed,
                (long long)out->files_empty, (long long)out->files_duplicate, (long long)failed, (long long)empty,
                (long long)dup);
        cp_stats_free(out);
        return s;
    }
    cp__ok(err);
    return CT_OK;
}

ct_status cp_corpus_verify(const cp_corpus *c, cp_error *err) {
    if (!c) return cp__fail(err, CT_E_NULL, "cp_corpus_verify: NULL corpus");
    uint64_t h = cp_hash_bytes(c->map + c->data_off, (size_t)c->data_bytes);
    if (h != c->data_sum)
        return BAD("%s: byte 200: data checksum %016llx, but the %llu bytes of data at byte %llu hash to %016llx: the "
                   "file is damaged; rebuild it", c->path, (unsigned long long)c->data_sum,
                   (unsigned long long)c->data_bytes, (unsigned long long)c->data_off, (unsigned long long)h);
    for (int64_t i = 0; i < c->n; i++) {
        const cp_piece *x = &c->pieces[i];
        if (cp_encoding_is_tokens(&c->enc)) {
            const uint8_t *d = c->map + x->data_offset;
            for (int64_t t = 0; t < x->len; t++) {
                int32_t v = (int32_t)cp__get_u32(d + 4 * t);
                if (v < 0 || v >= c->vocab) return bad_token(c, x, t, v, err);
            }
        } else {
            for (int64_t t = 0; t < x->len; t++) {
                uint64_t w[2];
                ct_status s = frame_words(c, x, t, w, err);
                if (s != CT_OK) return s;
            }
        }
    }
    cp__ok(err);
    return CT_OK;
}
