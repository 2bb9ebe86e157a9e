/* tests/corpora/corpus_build_check.c — a corpus-level check (not a unit test; run by
 * tests/corpus_check_build.sh): builds corpus files from real folders of MIDI files in every
 * encoding and prints their statistics, then checks each file: it reopens, verifies (checksums,
 * every token), has the same statistics as the build said, gives byte-identical output with 1
 * and N threads, and feeds a DataLoader for a whole epoch.
 *
 *   corpus_build_check OUTDIR [--threads N] [--dir NAME PATH]... [--default]
 *
 * --dir builds PATH (recursively) as NAME; --default builds the default corpus (Debian's
 * openttd-openmsx + simutrans-data) and says so clearly when it is not installed. Exit 1 on
 * any failed check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "corpora/build.h"
#include "corpora/dataset.h"
#include "corpora/default.h"
#include "corpora/transforms.h"
#include "engine/cantor.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int failures = 0;
#define CHECK(cond, ...)                                  \
    do {                                                  \
        if (!(cond)) {                                    \
            printf("  FAILED: " __VA_ARGS__);             \
            printf("\n");                                 \
            failures++;                                   \
        }                                                 \
    } while (0)

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long k = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)k + 1);
    if (b && fread(b, 1, (size_t)k, f) != (size_t)k) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = (size_t)k;
    return b;
}

/* Opens, verifies and loads one corpus file through the data loader. */
static void check_file(const char *path, const cp_stats *built) {
    cp_corpus *c = NULL;
    cp_error err;
    if (cp_corpus_open(path, &c, &err) != CT_OK) {
        CHECK(0, "%s", err.message);
        return;
    }
    CHECK(cp_corpus_verify(c, &err) == CT_OK, "%s", err.message);
    cp_stats back;
    CHECK(cp_corpus_stats(c, &back, &err) == CT_OK, "%s", err.message);
    CHECK(back.files_used == built->files_used && back.n_skips == built->n_skips &&
              memcmp(back.pitch_hist, built->pitch_hist, sizeof back.pitch_hist) == 0 &&
              memcmp(back.pieces, built->pieces, sizeof back.pieces) == 0,
          "the stats read back differ from the build's");
    cp_stats_free(&back);
    printf("  file: %llu bytes, %lld pieces, vocabulary %d\n", (unsigned long long)cp_corpus_file_size(c),
           (long long)cp_corpus_num_pieces(c), cp_corpus_vocab(c));
    ct_ctx *ctx = ct_ctx_new();
    cp_dataset *d = cp_dataset_new(ctx, c, CP_TRAIN);
    if (d && cp_dataset_len(d) > 0) {
        ct_dataset ds = cp_dataset_as(d);
        ct_transform aug;
        CHECK(cp_augment(ctx, &aug, cp_corpus_encoding(c), NULL) == CT_OK, "augment: %s", ct_ctx_error(ctx));
        ct_dataloader_opts o = ct_dataloader_defaults();
        o.batch_size = 32;
        o.sampler = CT_SAMPLER_BUCKET;
        o.workers = 2;
        o.seed = 7;
        o.transform = &aug;
        o.collate.targets = true;
        o.collate.max_len = 256;
        ct_dataloader *dl = ct_dataloader_new(ctx, &ds, &o);
        CHECK(dl != NULL, "dataloader: %s", ct_ctx_error(ctx));
        int64_t batches = 0, rows = 0;
        double pad = 0, t0 = now();
        for (;;) {
            ct_scope_begin(ctx);
            const ct_batch *b = dl ? ct_dataloader_next(dl) : NULL;
            if (b) {
                batches++;
                rows += b->rows;
                pad += ct_batch_padding(b);
            }
            ct_scope_end(ctx);
            if (!b) break;
        }
        double dt = now() - t0;
        CHECK(dl && ct_dataloader_status(dl) == CT_OK, "dataloader: %s", ct_ctx_error(ctx));
        const ct_data_report *r = dl ? ct_dataloader_epoch_report(dl) : NULL;
        CHECK(r && r->items == cp_dataset_len(d) && r->skipped == 0, "the epoch did not deliver every train item");
        printf("  loader: train split, augmented, windows of 256: %lld batches of 32 (%lld rows) in %.2f s, "
               "%.0f batches/s, padding %.1f %%\n", (long long)batches, (long long)rows, dt,
               batches / (dt > 0 ? dt : 1),
               batches ? 100 * pad / batches : 0.0);
        ct_dataloader_free(dl);
        ct_transform_free(&aug);
    }
    cp_dataset_free(d);
    ct_ctx_free(ctx);
    cp_corpus_close(c);
}

static void build_one(const char *label, const cp_sources *src, cp_encoding_kind kind, const char *outdir,
                      int threads) {
    char path[4096], path1[4096];
    snprintf(path, sizeof path, "%s/%s.%s.corpus", outdir, label, cp_encoding_name(kind));
    snprintf(path1, sizeof path1, "%s/%s.%s.t1.corpus", outdir, label, cp_encoding_name(kind));
    cp_build_opts o = cp_build_defaults(kind);
    o.threads = threads;
    cp_stats st;
    cp_error err;
    printf("\n== %s, %s encoding, %d threads -> %s\n", label, cp_encoding_name(kind), threads, path);
    double t0 = now();
    ct_status s = cp_build(src, path, &o, &st, &err);
    double dt = now() - t0;
    if (s != CT_OK) {
        CHECK(0, "build: %s", err.message);
        cp_stats_write(&st, &o.encoding, 20, stdout);
        cp_stats_free(&st);
        return;
    }
    printf("  built in %.2f s\n", dt);
    cp_stats_write(&st, &o.encoding, 20, stdout);
    check_file(path, &st);
    /* the same corpus with one thread: byte-identical */
    o.threads = 1;
    cp_stats st1;
    t0 = now();
    s = cp_build(src, path1, &o, &st1, &err);
    double dt1 = now() - t0;
    CHECK(s == CT_OK, "build with 1 thread: %s", err.message);
    size_t n0 = 0, n1 = 0;
    unsigned char *a = slurp(path, &n0), *b = slurp(path1, &n1);
    CHECK(a && b && n0 == n1 && memcmp(a, b, n0) == 0, "1 and %d threads gave different files", threads);
    if (a && b && n0 == n1 && memcmp(a, b, n0) == 0)
        printf("  1 thread: identical file (%zu bytes), built in %.2f s\n", n0, dt1);
    free(a);
    free(b);
    remove(path1);
    cp_stats_free(&st1);
    cp_stats_free(&st);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s OUTDIR [--threads N] [--dir NAME PATH]... [--default]\n", argv[0]);
        return 2;
    }
    const char *outdir = argv[1];
    int threads = 2;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--dir") == 0 && i + 2 < argc) {
            const char *name = argv[i + 1], *dir = argv[i + 2];
            i += 2;
            cp_sources src = {0};
            cp_error err;
            if (cp_sources_add_dir(&src, dir, NULL, &err) != CT_OK) {
                CHECK(0, "%s", err.message);
                continue;
            }
            printf("\n#### %s: %lld MIDI files under %s (%lld other files)\n", name, (long long)src.n, dir,
                   (long long)src.ignored);
            for (int k = CP_MELODY; k <= CP_PIANOROLL; k++) build_one(name, &src, (cp_encoding_kind)k, outdir, threads);
            cp_sources_free(&src);
        } else if (strcmp(argv[i], "--default") == 0) {
            cp_sources src = {0};
            cp_error err;
            if (cp_default_sources(NULL, &src, &err) != CT_OK) {
                printf("\n#### default corpus: SKIPPED: %s\n", err.message);
                continue;
            }
            printf("\n#### default corpus (%s): %lld MIDI files\n", CP_DEFAULT_PACKAGES, (long long)src.n);
            for (int k = CP_MELODY; k <= CP_PIANOROLL; k++)
                build_one("default", &src, (cp_encoding_kind)k, outdir, threads);
            cp_sources_free(&src);
        } else {
            fprintf(stderr, "corpus_build_check: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    printf("\ncorpus_build_check: %s (%d failed checks)\n", failures ? "FAILED" : "all checks passed", failures);
    return failures ? 1 : 0;
}
