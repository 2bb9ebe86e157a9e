/* apps/cantor.c — the `cantor` command: a table of subcommands (apps/cmd_*.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/cli.h"
#include "engine/cantor.h"

extern const cli_cmd cli_cmd_render;
extern const cli_cmd cli_cmd_corpus;
extern const cli_cmd cli_cmd_train;
extern const cli_cmd cli_cmd_sample;
extern const cli_cmd cli_cmd_eval;
extern const cli_cmd cli_cmd_play;
extern const cli_cmd cli_cmd_devices;
extern const cli_cmd cli_cmd_dashboard;

static void print_version(void) {
    printf("cantor %s\n", ct_version());
    printf("BLAS: %s (core %s, %d threads)\n", ct_blas_config(), ct_blas_core(), ct_blas_threads());
    char why[256] = "";
    int n = ct_cuda_device_count(why, sizeof why);
    if (!ct_cuda_compiled()) printf("CUDA: not compiled in (%s)\n", why);
    else if (n > 0) printf("CUDA: compiled in, %d device%s present\n", n, n == 1 ? "" : "s");
    else printf("CUDA: compiled in, %s\n", why);
}

static void main_help(FILE *f) {
    fprintf(f, "usage: cantor COMMAND [options]     (cantor help COMMAND for its options)\n\n"
               "cantor trains recurrent composers on MIDI corpora and writes new music.\n\n"
               "commands:\n");
    for (const cli_cmd *const *c = cli_commands; *c; c++) fprintf(f, "  %-10s %s\n", (*c)->name, (*c)->summary);
    fprintf(f, "\n  -V, --version  the version, the BLAS in use and the CUDA status\n"
               "  -h, --help     this help\n");
}

static int version_run(int argc, char **argv) {
    if (argc > 1) return cli_bad_option("version", argv[1]);
    print_version();
    return CLI_OK;
}
static void version_help(FILE *f) {
    fprintf(f, "usage: cantor version   (or cantor --version)\n\n"
               "Prints the version, the BLAS in use (OpenBLAS's configuration, kernel and\n"
               "threads) and whether CUDA was compiled in and a device is present.\n");
}

static int help_run(int argc, char **argv) {
    if (argc < 2) { main_help(stdout); return CLI_OK; }
    const cli_cmd *c = cli_find(argv[1]);
    if (!c) return cli_usage(NULL, "no command '%s'", argv[1]);
    c->help(stdout);
    return CLI_OK;
}
static void help_help(FILE *f) { fprintf(f, "usage: cantor help [COMMAND]\n"); }

static const cli_cmd cmd_version = {"version", "print the version and the build configuration", version_run, version_help};
static const cli_cmd cmd_help = {"help", "show the options of a command", help_run, help_help};

const cli_cmd *const cli_commands[] = {&cli_cmd_corpus, &cli_cmd_train, &cli_cmd_sample, &cli_cmd_eval, &cli_cmd_render,
                                       &cli_cmd_play, &cli_cmd_devices, &cli_cmd_dashboard, &cmd_version, &cmd_help, NULL};

int main(int argc, char **argv) {
    if (argc < 2) { main_help(stderr); return CLI_USAGE; }
    const char *name = argv[1];
    if (!strcmp(name, "--version") || !strcmp(name, "-V")) { print_version(); return CLI_OK; }
    if (!strcmp(name, "--help") || !strcmp(name, "-h")) { main_help(stdout); return CLI_OK; }
    const cli_cmd *c = cli_find(name);
    if (!c) return cli_bad_option(NULL, name);
    return c->run(argc - 1, argv + 1);   /* argv[0] becomes the command's name */
}
