/* apps/cli.h — what every `cantor` subcommand shares: the command table, strict option
 * parsing with messages that name the flag, and exiting. Only apps/ prints and exits. */
#ifndef CANTOR_APPS_CLI_H
#define CANTOR_APPS_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/tensor.h"

/* Exit codes: 0 success, 1 the work failed (a file it cannot read, ...), 2 a usage error. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

typedef struct cli_cmd {
    const char *name;       /* "render", "corpus", ... */
    const char *summary;    /* one line for `cantor help` */
    int (*run)(int argc, char **argv);   /* argv[0] is the command name */
    void (*help)(FILE *f);  /* every option with its default */
} cli_cmd;

/* The commands, NULL-terminated (apps/cantor.c); each is defined beside its code. */
extern const cli_cmd *const cli_commands[];
const cli_cmd *cli_find(const char *name);

/* "cantor CMD: message" on stderr; returns CLI_FAIL (or use cli_usage for CLI_USAGE). */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same plus a hint to `cantor help CMD`; returns CLI_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Strict numbers: the whole string must be a number within [lo, hi]; otherwise a message
 * naming the flag, the value and the range, and false. */
bool cli_int(const char *cmd, const char *flag, const char *s, int64_t lo, int64_t hi, int64_t *out);
bool cli_float(const char *cmd, const char *flag, const char *s, double lo, double hi, double *out);
/* An unknown option or a stray argument (also a flag typed with a non-ASCII dash or quote). */
int cli_bad_option(const char *cmd, const char *arg);
/* Checks the positional arguments argv[first..argc): one that starts with a typographic dash
 * (a flag pasted from a document) is reported; returns CLI_OK or CLI_USAGE. */
int cli_check_positionals(const char *cmd, int argc, char **argv, int first);
/* Whether a string ends with suffix, ignoring case. */
bool cli_ends_with(const char *s, const char *suffix);
/* s[0..len) as a JSON string literal, quotes included: '"' and '\\' escaped, \n \r \t by
 * name, other control bytes and DEL as \u00XX; other bytes (UTF-8 included) as they are.
 * Writes at most n - 1 bytes and a NUL (dst may be NULL when n is 0); returns the literal's
 * whole length, as snprintf. The one JSON escaper of apps/ (run files, eval --json, dashboard). */
size_t cli_json_escape(char *dst, size_t n, const char *s, size_t len);
/* A --device value of command cmd (train, sample, eval): CLI_OK (and *out, which may be NULL),
 * CLI_USAGE with "--device: why" when malformed, CLI_FAIL with "--device VALUE: why; FIX"
 * when the device is not there (no CUDA build, no GPU, index too large). quiet: no message. */
int cli_device(const char *cmd, const char *value, const char *fix, bool quiet, ct_device *out);

#endif
