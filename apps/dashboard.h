/* apps/dashboard.h — the live training dashboard: an HTTP server (Debian's libmicrohttpd) that
 * serves a web page with live plots and a sample gallery for one or several run folders, and a
 * JSON REST API (README: "The dashboard").
 *
 * The server only reads files: RUN_DIR/metrics.jsonl, samples.jsonl, status.json, the samples
 * and checkpoints they name. It tails them incrementally when a request arrives, in
 * libmicrohttpd's own threads (at a lower CPU priority, nice +10), so a training loop that
 * starts it in its own process never waits for it: the loop appends to metrics.jsonl and goes
 * on. Scalars POSTed by other programs are appended to RUN_DIR/external.jsonl (never to
 * metrics.jsonl, which the trainer owns).
 *
 * Limits (each a constant in apps/dashboard_internal.h): 256 KiB points per series (a longer
 * series keeps every other point, so memory stays bounded however long a run lasts), 32 series
 * from metrics.jsonl and 32 from external.jsonl per run, 4096 samples per run, 64 KiB per
 * request body, 32 KiB per request line and headers, 128 connections, 10 s of idleness.
 *
 * Ownership: dash_start makes a server that dash_stop stops and frees (dash_stop(NULL) is a
 * no-op). The strings dash_url returns live as long as the server. */
#ifndef CANTOR_APPS_DASHBOARD_H
#define CANTOR_APPS_DASHBOARD_H

#include <stdbool.h>
#include <stddef.h>

#define DASH_DEFAULT_LISTEN "127.0.0.1:8097"

typedef struct dash_server dash_server;

/* Starts serving run_dirs[0..n) (1 <= n <= 64; each an existing folder, its files may appear
 * later) on hostport: "HOST:PORT", "[V6ADDR]:PORT", "HOST" (port 8097), ":PORT" (127.0.0.1),
 * NULL (DASH_DEFAULT_LISTEN); port 0 takes a free port (dash_port says which). Binding an
 * address that is not loopback prints a warning on stderr (anyone who can reach it can read
 * the runs and post scalars). Returns 0 and *out, or -1 with a message in err (the address
 * already in use, a folder that does not exist, a build without libmicrohttpd, ...). */
int dash_start(const char *hostport, const char *const *run_dirs, int n, dash_server **out, char *err,
               size_t errlen);
/* Stops the server (waits for its threads) and frees it. NULL: no-op. */
void dash_stop(dash_server *s);
/* The port it listens on, and the page's URL ("http://127.0.0.1:8097/"). */
int dash_port(const dash_server *s);
const char *dash_url(const dash_server *s);
/* Whether it listens on a loopback address only. */
bool dash_is_loopback(const dash_server *s);
/* Whether hostport is well formed (the syntax dash_start takes); false with a message in err. */
bool dash_listen_ok(const char *hostport, char *err, size_t errlen);
/* Whether this build has the server (libmicrohttpd found at build time). */
bool dash_available(void);

#endif
