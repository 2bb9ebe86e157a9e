/* apps/cli.c — shared helpers of the `cantor` subcommands. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "apps/cli.h"
#include "engine/device.h"

const cli_cmd *cli_find(const char *name) {
    for (const cli_cmd *const *c = cli_commands; *c; c++)
        if (strcmp((*c)->name, name) == 0) return *c;
    return NULL;
}

/* The whole line in one write when it fits (stderr is unbuffered: under mpirun the lines of
 * several processes and mpirun's own then do not interleave inside a line). */
static void vsay(const char *cmd, const char *fmt, va_list ap) {
    char buf[8192];
    int k = snprintf(buf, sizeof buf, "cantor%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    va_list aq;
    va_copy(aq, ap);
    int w = k > 0 && (size_t)k < sizeof buf ? vsnprintf(buf + k, sizeof buf - (size_t)k, fmt, aq) : -1;
    va_end(aq);
    if (w >= 0 && (size_t)k + (size_t)w + 1 < sizeof buf) {
        buf[k + w] = '\n';
        fwrite(buf, 1, (size_t)k + (size_t)w + 1, stderr);
        return;
    }
    fprintf(stderr, "cantor%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int cli_fail(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsay(cmd, fmt, ap);
    va_end(ap);
    return CLI_FAIL;
}

int cli_usage(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsay(cmd, fmt, ap);
    va_end(ap);
    fprintf(stderr, "see 'cantor help %s' for the options and their defaults\n", cmd ? cmd : "");
    return CLI_USAGE;
}

bool cli_int(const char *cmd, const char *flag, const char *s, int64_t lo, int64_t hi, int64_t *out) {
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) {
        cli_usage(cmd, "%s '%s': expected a whole number from %lld to %lld", flag, s,
                  (long long)lo, (long long)hi);
        return false;
    }
    *out = v;
    return true;
}

bool cli_float(const char *cmd, const char *flag, const char *s, double lo, double hi, double *out) {
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v) || v < lo || v > hi) {
        cli_usage(cmd, "%s '%s': expected a number from %g to %g", flag, s, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

int cli_bad_option(const char *cmd, const char *arg) {
    for (const unsigned char *p = (const unsigned char *)arg; *p; p++)
        if (*p >= 0x80)
            return cli_usage(cmd, "'%s' has a non-ASCII character (a typographic dash or quote "
                             "pasted from a document?); type options as --name VALUE", arg);
    if (arg[0] == '-') return cli_usage(cmd, "unknown option '%s'", arg);
    return cli_usage(cmd, "unexpected argument '%s'", arg);
}

int cli_check_positionals(const char *cmd, int argc, char **argv, int first) {
    for (int i = first; i < argc; i++) {
        const unsigned char *p = (const unsigned char *)argv[i];
        /* U+2010..U+2015 (dashes) and U+2212 (minus) in UTF-8 */
        if ((p[0] == 0xE2 && p[1] == 0x80 && p[2] >= 0x90 && p[2] <= 0x95) ||
            (p[0] == 0xE2 && p[1] == 0x88 && p[2] == 0x92))
            return cli_bad_option(cmd, argv[i]);
    }
    return CLI_OK;
}

bool cli_ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

int cli_device(const char *cmd, const char *value, const char *fix, bool quiet, ct_device *out) {
    ct_device dev;
    char why[256] = "";
    if (ct_device_parse(value, &dev, why, sizeof why) != CT_OK)
        return quiet ? CLI_USAGE : cli_usage(cmd, "--device: %s", why);
    if (!ct_device_available(dev, why, sizeof why))
        return quiet ? CLI_FAIL : cli_fail(cmd, "--device %s: %s; %s", value, why, fix);
    if (out) *out = dev;
    return CLI_OK;
}
