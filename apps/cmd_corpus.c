/* apps/cmd_corpus.c — `cantor corpus build` (a folder of MIDI files -> a corpus file) and
 * `cantor corpus stats` (what a corpus file holds). */
#include <getopt.h>
#include <string.h>

#include "apps/cli.h"
#include "corpora/build.h"
#include "corpora/corpus.h"
#include "corpora/default.h"
#include "corpora/poly_import.h"

static void corpus_help(FILE *f) {
    fprintf(f,
            "usage: cantor corpus build DIR -o FILE [options]\n"
            "       cantor corpus build --default -o FILE [options]\n"
            "       cantor corpus stats FILE\n"
            "\n"
            "build parses every MIDI file under DIR (recursively) on worker threads, extracts\n"
            "sequences for the encoding, splits train/valid/test by a hash of each file's\n"
            "content, and writes one corpus file. Files that fail are skipped and listed.\n"
            "--default builds the default corpus: the General MIDI music of Debian's\n"
            "openttd-openmsx and simutrans-data packages (installed by 'make deps').\n"
            "A DIR holding train.txt (with valid.txt, test.txt) in the polyphonic benchmark\n"
            "text format (JSB Chorales, Nottingham, MuseData, Piano-midi.de: one time step per\n"
            "line, pitches or '-', pieces separated by a blank line) is imported as a piano-roll\n"
            "corpus, each file to the split of its name; --poly insists on that layout.\n"
            "\n"
            "  -o, --out FILE        the corpus file to write (required for build)\n"
            "  --encoding NAME       melody, performance or pianoroll (default melody)\n"
            "  --threads N           worker threads (default 2)\n"
            "  --valid-pct P         percent of files for validation (default 10)\n"
            "  --test-pct P          percent of files for test (default 10)\n"
            "  --no-dedupe           keep files whose bytes repeat an earlier file's (default: skip)\n"
            "  --default             build from the default corpus instead of DIR\n"
            "  --poly                DIR is a polyphonic benchmark folder (detected by train.txt)\n"
            "  --steps-per-quarter N polyphonic: the files' grid (default 2, eighth notes; JSB\n"
            "                        Chorales is 1, quarter notes)\n"
            "  --quiet               no progress\n"
            "  -h, --help            this help\n");
}

static void progress(void *ud, int64_t done, int64_t total, const char *name) {
    (void)name;
    if (done == total || done % 50 == 0) fprintf(stderr, "\r%lld/%lld files", (long long)done, (long long)total);
    if (done == total) fputc('\n', stderr);
    (void)ud;
}

static int corpus_build(int argc, char **argv) {
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},       {"encoding", required_argument, NULL, 'e'},
        {"threads", required_argument, NULL, 't'},   {"valid-pct", required_argument, NULL, 'v'},
        {"test-pct", required_argument, NULL, 'T'},  {"no-dedupe", no_argument, NULL, 'D'},
        {"default", no_argument, NULL, 'd'},         {"quiet", no_argument, NULL, 'q'},
        {"poly", no_argument, NULL, 'P'},            {"steps-per-quarter", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},            {NULL, 0, NULL, 0},
    };
    const char *out = NULL;
    cp_encoding_kind kind = CP_MELODY;
    int64_t threads = 2, valid = 10, test = 10;
    bool dedupe = true, use_default = false, quiet = false, poly = false, enc_given = false;
    int64_t spq = 2;
    int c;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'e':
            if (!cp_encoding_parse(optarg, &kind))
                return cli_usage("corpus", "--encoding '%s': expected melody, performance or pianoroll", optarg);
            enc_given = true;
            break;
        case 'P': poly = true; break;
        case 'S': if (!cli_int("corpus", "--steps-per-quarter", optarg, 1, 96, &spq)) return CLI_USAGE; break;
        case 't': if (!cli_int("corpus", "--threads", optarg, 1, 256, &threads)) return CLI_USAGE; break;
        case 'v': if (!cli_int("corpus", "--valid-pct", optarg, 0, 100, &valid)) return CLI_USAGE; break;
        case 'T': if (!cli_int("corpus", "--test-pct", optarg, 0, 100, &test)) return CLI_USAGE; break;
        case 'D': dedupe = false; break;
        case 'd': use_default = true; break;
        case 'q': quiet = true; break;
        case 'h': corpus_help(stdout); return CLI_OK;
        default: return cli_bad_option("corpus", argv[optind - 1]);
        }
    }
    if (cli_check_positionals("corpus", argc, argv, optind)) return CLI_USAGE;
    int npos = argc - optind;
    if (use_default ? npos != 0 : npos != 1)
        return npos > (use_default ? 0 : 1) ? cli_bad_option("corpus", argv[optind + (use_default ? 0 : 1)])
                                            : cli_usage("corpus", "build needs a folder of MIDI files (or --default)");
    if (!out) return cli_usage("corpus", "build needs -o FILE, the corpus file to write");
    if (valid + test > 100) return cli_usage("corpus", "--valid-pct %lld + --test-pct %lld exceed 100", (long long)valid, (long long)test);
    if (!use_default && (poly || cp_poly_is_dir(argv[optind]))) {
        if (!cp_poly_is_dir(argv[optind]))
            return cli_fail("corpus", "--poly %s: no train.txt there (a polyphonic benchmark folder holds train.txt, "
                            "valid.txt and test.txt)", argv[optind]);
        if (enc_given && kind != CP_PIANOROLL)
            return cli_usage("corpus", "%s is a polyphonic benchmark folder: it imports as a pianoroll corpus, "
                             "not %s", argv[optind], cp_encoding_name(kind));
        cp_poly_import_opts po = cp_poly_import_defaults();
        po.steps_per_quarter = (int)spq;
        cp_poly_import_result res;
        cp_error perr;
        memset(&perr, 0, sizeof perr);
        if (!quiet) fprintf(stderr, "%s: polyphonic benchmark text (train.txt, valid.txt, test.txt), %lld step%s per quarter\n",
                            argv[optind], (long long)spq, spq == 1 ? "" : "s");
        if (cp_poly_import_dir(argv[optind], out, &po, &res, &perr) != CT_OK)
            return cli_fail("corpus", "%s", perr.message);
        for (int sp = 0; sp < CP_NUM_SPLITS; sp++) {
            if (res.present[sp])
                printf("  %-5s %6lld pieces  %10lld steps  (%s.txt)\n", cp_split_name((cp_split)sp),
                       (long long)res.pieces[sp], (long long)res.steps[sp], cp_split_name((cp_split)sp));
            else
                printf("  %-5s      0 pieces  (no %s.txt: the split is empty)\n", cp_split_name((cp_split)sp),
                       cp_split_name((cp_split)sp));
        }
        printf("wrote %s (pianoroll, %lld step%s per quarter)\n", out, (long long)spq, spq == 1 ? "" : "s");
        return CLI_OK;
    }
    cp_build_opts o = cp_build_defaults(kind);
    o.threads = (int)threads;
    o.valid_pct = (int)valid;
    o.test_pct = (int)test;
    o.dedupe = dedupe;
    if (!quiet) o.progress = progress;
    cp_stats st;
    memset(&st, 0, sizeof st);
    cp_error err;
    memset(&err, 0, sizeof err);
    ct_status s = use_default ? cp_default_build(NULL, out, &o, &st, &err)
                              : cp_build_dir(argv[optind], out, &o, &st, &err);
    cp_stats_write(&st, &o.encoding, 20, stdout);
    cp_stats_free(&st);
    if (s != CT_OK) return cli_fail("corpus", "%s", err.message[0] ? err.message : ct_status_text(s));
    printf("wrote %s\n", out);
    return CLI_OK;
}

static int corpus_stats(int argc, char **argv) {
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) { corpus_help(stdout); return CLI_OK; }
    if (cli_check_positionals("corpus", argc, argv, 1)) return CLI_USAGE;
    if (argc != 2) return argc > 2 ? cli_bad_option("corpus", argv[2]) : cli_usage("corpus", "stats needs a corpus file");
    if (argv[1][0] == '-') return cli_bad_option("corpus", argv[1]);
    cp_corpus *corpus = NULL;
    cp_error err;
    memset(&err, 0, sizeof err);
    if (cp_corpus_open(argv[1], &corpus, &err) != CT_OK) return cli_fail("corpus", "%s", err.message);
    cp_stats st;
    memset(&st, 0, sizeof st);
    ct_status s = cp_corpus_stats(corpus, &st, &err);
    if (s == CT_OK) {
        printf("%s: %s corpus\n", argv[1], cp_encoding_name(cp_corpus_encoding(corpus)->kind));
        for (int sp = 0; sp < CP_NUM_SPLITS; sp++)
            printf("  %-5s %6lld pieces  %10lld steps  %8.1f s\n", cp_split_name((cp_split)sp),
                   (long long)cp_corpus_split_pieces(corpus, (cp_split)sp),
                   (long long)cp_corpus_split_steps(corpus, (cp_split)sp),
                   cp_corpus_split_seconds(corpus, (cp_split)sp));
        cp_stats_write(&st, cp_corpus_encoding(corpus), 20, stdout);
    }
    cp_stats_free(&st);
    cp_corpus_close(corpus);
    return s == CT_OK ? CLI_OK : cli_fail("corpus", "%s", err.message);
}

static int corpus_run(int argc, char **argv) {
    if (argc < 2) return cli_usage("corpus", "expected 'build' or 'stats'");
    if (!strcmp(argv[1], "build")) return corpus_build(argc - 1, argv + 1);
    if (!strcmp(argv[1], "stats")) return corpus_stats(argc - 1, argv + 1);
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) { corpus_help(stdout); return CLI_OK; }
    return cli_usage("corpus", "unknown subcommand '%s' (expected build or stats)", argv[1]);
}

const cli_cmd cli_cmd_corpus = {"corpus", "build a corpus file from MIDI files, or show one's statistics", corpus_run, corpus_help};
