/* apps/cantor.c — the `cantor` command. Today: --version and --help; the subcommands
 * (corpus, train, sample, play, ...) arrive with their issues. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cantor.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: cantor [--version] [--help]\n"
            "\n"
            "cantor trains recurrent composers on MIDI corpora and writes new music.\n"
            "This build has the engine only; the subcommands come with their issues.\n"
            "\n"
            "  -V, --version   print the version, the BLAS in use and the CUDA status\n"
            "  -h, --help      print this help\n");
}

static void print_version(void) {
    printf("cantor %s\n", ct_version());
    printf("BLAS: %s (core %s, %d threads)\n", ct_blas_config(), ct_blas_core(), ct_blas_threads());
    char why[256] = "";
    int n = ct_cuda_device_count(why, sizeof why);
    if (!ct_cuda_compiled()) printf("CUDA: not compiled in (%s)\n", why);
    else if (n > 0) printf("CUDA: compiled in, %d device%s present\n", n, n == 1 ? "" : "s");
    else printf("CUDA: compiled in, %s\n", why);
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "Vh", opts, NULL)) != -1) {
        switch (c) {
        case 'V': print_version(); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "cantor: unknown command '%s' (this build has none yet; see 'cantor --help')\n",
                argv[optind]);
        return 2;
    }
    usage(stdout);
    return 0;
}
