/* apps/json_str.c — the one JSON string escaper of apps/ (cli.h): run.json, samples.jsonl and
 * the skip lines of train, `cantor eval --json`, the dashboard's responses. Its own file so the
 * test binary, which links the dashboard's objects but not the command table, can link it too. */
#include <stddef.h>

#include "apps/cli.h"

size_t cli_json_escape(char *dst, size_t n, const char *s, size_t len) {
    size_t k = 0;
#define PUT(c) do { if (k + 1 < n) dst[k] = (c); k++; } while (0)
    PUT('"');
    for (size_t i = 0; i < len; i++) {
        const unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') { PUT('\\'); PUT((char)c); }
        else if (c == '\n') { PUT('\\'); PUT('n'); }
        else if (c == '\r') { PUT('\\'); PUT('r'); }
        else if (c == '\t') { PUT('\\'); PUT('t'); }
        else if (c < 0x20 || c == 0x7F) {
            static const char hex[] = "0123456789abcdef";
            PUT('\\'); PUT('u'); PUT('0'); PUT('0'); PUT(hex[c >> 4]); PUT(hex[c & 15]);
        } else PUT((char)c);
    }
    PUT('"');
#undef PUT
    if (n) dst[k < n ? k : n - 1] = 0;
    return k;
}
