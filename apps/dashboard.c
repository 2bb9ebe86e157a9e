/* apps/dashboard.c — the dashboard's HTTP server on Debian's libmicrohttpd.
 *
 * Routes (GET and HEAD unless marked; every API answer is JSON, errors are
 * {"error": "...", "status": N}):
 *   /  /dashboard.js  /dashboard.css      the page (embedded: apps/dashboard_assets.c)
 *   /api/runs                             every run: its series, samples count, status
 *   /api/runs/{id}                        one run
 *   /api/runs/{id}/status                 step, epoch, ETA, device, last checkpoint
 *   /api/runs/{id}/scalars                ?name=&since=&until=&max=   (POST: log scalars)
 *   /api/runs/{id}/samples                ?limit=   newest first
 *   /api/runs/{id}/pianoroll              ?file=samples/x.mid   the notes of a sample
 *   /api/runs/{id}/config                 ?file=   the checkpoint's metadata and model
 *   /runs/{id}/files/{path}               a file of the run folder (Range requests too)
 *
 * Safety: loopback unless told otherwise (then a warning); with a loopback address the Host
 * header must name a loopback host (DNS rebinding); POST needs Content-Type application/json
 * (so a web page elsewhere cannot post without a CORS preflight, which is never granted);
 * only the embedded assets and files inside the given run folders are served (realpath
 * checked); request line and headers at most 32 KiB, bodies 64 KiB, 128 connections, 10 s
 * idle timeout. libmicrohttpd's worker threads run at nice +10 so a trainer in the same
 * process keeps the CPU. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "apps/dashboard.h"
#include "apps/dashboard_internal.h"

#ifdef CT_HAVE_MHD
#include <microhttpd.h>
#endif

struct dash_server {
#ifdef CT_HAVE_MHD
    struct MHD_Daemon *d;
#endif
    dash_run *runs[DASH_MAX_RUNS];
    int nruns;
    int port;
    bool loopback;
    char host[256];   /* the host as given (for the Host check) */
    char url[320];
};

bool dash_available(void) {
#ifdef CT_HAVE_MHD
    return true;
#else
    return false;
#endif
}

int dash_port(const dash_server *s) { return s ? s->port : -1; }
const char *dash_url(const dash_server *s) { return s ? s->url : ""; }
bool dash_is_loopback(const dash_server *s) { return s && s->loopback; }

static void free_runs(dash_server *s) {
    for (int i = 0; i < s->nruns; i++) dr_free(s->runs[i]);
    s->nruns = 0;
}

/* The run's id: its folder's name made URL-safe, unique among the runs. */
static void make_id(const dash_server *s, const char *dir, char *id, size_t n) {
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') len--;
    size_t start = len;
    while (start > 0 && dir[start - 1] != '/') start--;
    char base[48];
    size_t k = 0;
    for (size_t i = start; i < len && k < sizeof base - 1; i++) {
        char c = dir[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                  c == '-';
        base[k++] = ok ? c : '_';
    }
    base[k] = 0;
    if (k == 0 || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) snprintf(base, sizeof base, "run");
    snprintf(id, n, "%s", base);
    for (int suffix = 2;; suffix++) {
        bool taken = false;
        for (int i = 0; i < s->nruns; i++) taken |= strcmp(s->runs[i]->id, id) == 0;
        if (!taken) return;
        snprintf(id, n, "%s-%d", base, suffix);
    }
}

/* "HOST:PORT", "[V6]:PORT", "HOST", ":PORT" -> host and port strings. */
static int parse_hostport(const char *hp, char *host, size_t hn, char *port, size_t pn, char *err, size_t errlen) {
    const char *colon;
    if (!hp || !*hp) hp = DASH_DEFAULT_LISTEN;
    if (hp[0] == '[') {
        const char *close = strchr(hp, ']');
        if (!close || (close[1] && close[1] != ':')) {
            snprintf(err, errlen, "'%s': expected [IPV6]:PORT", hp);
            return -1;
        }
        snprintf(host, hn, "%.*s", (int)(close - hp - 1), hp + 1);
        colon = close[1] ? close + 1 : NULL;
    } else {
        colon = strrchr(hp, ':');
        if (colon && strchr(hp, ':') != colon) {
            snprintf(err, errlen, "'%s': write an IPv6 address in brackets, [::1]:8097", hp);
            return -1;
        }
        if (colon) snprintf(host, hn, "%.*s", (int)(colon - hp), hp);
        else snprintf(host, hn, "%s", hp);
        if (!host[0]) snprintf(host, hn, "127.0.0.1");
    }
    const char *p = colon ? colon + 1 : "8097";
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (!*p || *end || errno || v < 0 || v > 65535) {
        snprintf(err, errlen, "'%s': the port must be a number from 0 to 65535", hp);
        return -1;
    }
    snprintf(port, pn, "%ld", v);
    return 0;
}

bool dash_listen_ok(const char *hostport, char *err, size_t errlen) {
    char host[256], port[16];
    return parse_hostport(hostport, host, sizeof host, port, sizeof port, err, errlen) == 0;
}

static bool addr_is_loopback(const struct sockaddr *a) {
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)a;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (a->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)a;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) return true;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) return in6->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

/* Binds and listens; returns the socket or -1. */
static int open_listener(const char *host, const char *port, dash_server *s, char *err, size_t errlen) {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "%s: cannot resolve the address: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1, last = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) { last = errno; continue; }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 128) == 0) {
            s->loopback = addr_is_loopback(a->ai_addr);
            break;
        }
        last = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "cannot listen on %s:%s: %s%s", host, port, strerror(last),
                 last == EADDRINUSE ? " (another dashboard? pick another port: --listen 127.0.0.1:8098)" : "");
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

#ifdef CT_HAVE_MHD
/* ---- responses ------------------------------------------------------------------------------- */
typedef struct req {
    bool is_post;
    dash_run *run;
    char *body;
    size_t len, cap;
    bool too_big, answered;
    size_t discarded;
} req;

static double wall_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static enum MHD_Result send_buf(struct MHD_Connection *c, unsigned status, const char *type, char *body, size_t len,
                                bool free_it) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, free_it ? MHD_RESPMEM_MUST_FREE
                                                                                : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        if (free_it) free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (strncmp(type, "text/html", 9) == 0)
        MHD_add_response_header(r, "Content-Security-Policy",
                                "default-src 'self'; img-src 'self' data:; media-src 'self'; connect-src 'self'; "
                                "base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, dj_buf *b) {
    size_t len;
    char *p = jb_take(b, &len);
    if (!p) {
        static const char oom[] = "{\"error\":\"the answer would be larger than 64 MiB (or memory ran out): ask for one "
                                  "series (name=), fewer points (max=) or a range (since=, until=)\",\"status\":500}";
        return send_buf(c, 500, "application/json", (char *)oom, sizeof oom - 1, false);
    }
    return send_buf(c, status, "application/json", p, len, true);
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *msg) {
    dj_buf b = {0};
    jb_s(&b, "{\"error\":");
    jb_str(&b, msg);
    jb_printf(&b, ",\"status\":%u}", status);
    return send_json(c, status, &b);
}

static enum MHD_Result send_405(struct MHD_Connection *c, const char *allow) {
    dj_buf b = {0};
    jb_printf(&b, "{\"error\":\"method not allowed here; allowed: %s\",\"status\":405}", allow);
    size_t len;
    char *p = jb_take(&b, &len);
    if (!p) return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(len, p, MHD_RESPMEM_MUST_FREE);
    if (!r) { free(p); return MHD_NO; }
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Allow", allow);
    enum MHD_Result ok = MHD_queue_response(c, 405, r);
    MHD_destroy_response(r);
    return ok;
}

static const char *content_type_of(const char *path) {
    static const char *const map[][2] = {
        {".mid", "audio/midi"}, {".midi", "audio/midi"}, {".wav", "audio/wav"}, {".flac", "audio/flac"},
        {".ogg", "audio/ogg"},  {".mp3", "audio/mpeg"},  {".json", "application/json"},
        {".jsonl", "text/plain; charset=utf-8"},          {".txt", "text/plain; charset=utf-8"},
        {".log", "text/plain; charset=utf-8"},            {".png", "image/png"}, {".svg", "image/svg+xml"},
    };
    size_t n = strlen(path);
    for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
        size_t k = strlen(map[i][0]);
        if (n > k && strcasecmp(path + n - k, map[i][0]) == 0) return map[i][1];
    }
    return "application/octet-stream";
}

/* A file of a run, with single-range requests (audio players seek with them). */
static enum MHD_Result send_file(struct MHD_Connection *c, dash_run *run, const char *rel) {
    char path[PATH_MAX], err[512];
    int st = dr_resolve(run, rel, path, sizeof path, err, sizeof err);
    if (st) return send_error(c, (unsigned)st, err);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        if (fd >= 0) close(fd);
        return send_error(c, 404, "the file cannot be opened");
    }
    uint64_t size = (uint64_t)sb.st_size, from = 0, to = size ? size - 1 : 0;
    unsigned status = 200;
    const char *range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Range");
    if (range && strncmp(range, "bytes=", 6) == 0 && !strchr(range, ',')) {
        const char *p = range + 6;
        char *end;
        bool ok = true;
        if (*p == '-') {   /* the last N bytes */
            unsigned long long n = strtoull(p + 1, &end, 10);
            ok = end != p + 1 && !*end && n > 0;
            if (ok) from = n >= size ? 0 : size - n;
        } else {
            unsigned long long a = strtoull(p, &end, 10);
            ok = end != p && *end == '-';
            if (ok) {
                from = a;
                const char *q = end + 1;
                if (*q) {
                    unsigned long long z = strtoull(q, &end, 10);
                    ok = end != q && !*end && z >= a;
                    if (ok && z < to) to = z;
                }
            }
        }
        if (ok && from >= size) {
            close(fd);
            char cr[64];
            snprintf(cr, sizeof cr, "bytes */%llu", (unsigned long long)size);
            struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
            if (!r) return MHD_NO;
            MHD_add_response_header(r, "Content-Range", cr);
            enum MHD_Result res = MHD_queue_response(c, 416, r);
            MHD_destroy_response(r);
            return res;
        }
        if (ok) status = 206;
        else from = 0, to = size ? size - 1 : 0;
    }
    uint64_t len = size ? to - from + 1 : 0;
    struct MHD_Response *r = MHD_create_response_from_fd_at_offset64(len, fd, (int64_t)from);
    if (!r) { close(fd); return MHD_NO; }
    MHD_add_response_header(r, "Content-Type", content_type_of(rel));
    MHD_add_response_header(r, "Accept-Ranges", "bytes");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    if (status == 206) {
        char cr[96];
        snprintf(cr, sizeof cr, "bytes %llu-%llu/%llu", (unsigned long long)from, (unsigned long long)to,
                 (unsigned long long)size);
        MHD_add_response_header(r, "Content-Range", cr);
    }
    enum MHD_Result res = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return res;
}

/* ---- requests -------------------------------------------------------------------------------- */
/* A strict integer query argument; false (and a 400 queued by the caller) when malformed. */
static bool arg_int(struct MHD_Connection *c, const char *key, int64_t lo, int64_t hi, int64_t *out) {
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
    if (!v) return true;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || errno || x < lo || x > hi) return false;
    *out = x;
    return true;
}

static dash_run *find_run(dash_server *s, const char *id, size_t n) {
    for (int i = 0; i < s->nruns; i++)
        if (strlen(s->runs[i]->id) == n && strncmp(s->runs[i]->id, id, n) == 0) return s->runs[i];
    return NULL;
}

/* Whether a Host header names this server on a loopback name. */
static bool host_ok(const dash_server *s, const char *h) {
    if (!s->loopback || !h) return true;
    char name[300];
    const char *port = NULL;
    if (h[0] == '[') {
        const char *close = strchr(h, ']');
        if (!close) return false;
        snprintf(name, sizeof name, "%.*s", (int)(close - h - 1), h + 1);
        if (close[1] == ':') port = close + 2;
        else if (close[1]) return false;
    } else {
        const char *colon = strchr(h, ':');
        snprintf(name, sizeof name, "%.*s", colon ? (int)(colon - h) : (int)strlen(h), h);
        if (colon) port = colon + 1;
    }
    if (port) {
        char *end;
        long p = strtol(port, &end, 10);
        if (*end || p != s->port) return false;
    }
    return strcasecmp(name, "localhost") == 0 || strncmp(name, "127.", 4) == 0 || strcmp(name, "::1") == 0 ||
           strcasecmp(name, s->host) == 0 || strcasecmp(name, "localhost.") == 0;
}

typedef enum route_kind {
    R_NONE, R_ASSET, R_RUNS, R_RUN, R_STATUS, R_SCALARS, R_SAMPLES, R_PIANOROLL, R_CONFIG, R_FILE
} route_kind;

typedef struct route {
    route_kind kind;
    dash_run *run;
    const dash_asset *asset;
    const char *rel;
    bool unknown_run;
} route;

static route match(dash_server *s, const char *url) {
    route rt = {R_NONE, NULL, NULL, NULL, false};
    const char *path = strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0 ? "/dashboard.html" : url;
    for (int i = 0; i < dash_n_assets; i++)
        if (strcmp(dash_assets[i].path, path) == 0) {
            rt.kind = R_ASSET;
            rt.asset = &dash_assets[i];
            return rt;
        }
    if (strcmp(url, "/api/runs") == 0 || strcmp(url, "/api/runs/") == 0) { rt.kind = R_RUNS; return rt; }
    const char *rest;
    bool files = false;
    if (strncmp(url, "/api/runs/", 10) == 0) rest = url + 10;
    else if (strncmp(url, "/runs/", 6) == 0) rest = url + 6, files = true;
    else return rt;
    const char *slash = strchr(rest, '/');
    size_t idn = slash ? (size_t)(slash - rest) : strlen(rest);
    rt.run = find_run(s, rest, idn);
    if (!rt.run) { rt.unknown_run = idn > 0; return rt; }
    const char *sub = slash ? slash + 1 : "";
    if (files) {
        if (strncmp(sub, "files/", 6) == 0) { rt.kind = R_FILE; rt.rel = sub + 6; }
        return rt;
    }
    static const struct { const char *name; route_kind kind; } subs[] = {
        {"", R_RUN}, {"status", R_STATUS}, {"scalars", R_SCALARS}, {"samples", R_SAMPLES},
        {"pianoroll", R_PIANOROLL}, {"config", R_CONFIG},
    };
    for (size_t i = 0; i < sizeof subs / sizeof *subs; i++)
        if (strcmp(sub, subs[i].name) == 0) rt.kind = subs[i].kind;
    return rt;
}

static enum MHD_Result handle_get(dash_server *s, struct MHD_Connection *c, const route *rt) {
    char err[600];
    dj_buf b = {0};
    b.limit = (size_t)64 << 20;
    double now = wall_now();
    switch (rt->kind) {
    case R_ASSET:
        return send_buf(c, 200, rt->asset->content_type, (char *)rt->asset->data, rt->asset->len, false);
    case R_RUNS:
        jb_s(&b, "{\"runs\":[");
        for (int i = 0; i < s->nruns; i++) {
            dash_run *r = s->runs[i];
            if (i) jb_s(&b, ",");
            pthread_mutex_lock(&r->mu);
            dr_refresh(r, false);
            dr_json_summary(r, &b, now);
            pthread_mutex_unlock(&r->mu);
        }
        jb_printf(&b, "],\"server\":{\"wall\":%.3f}}", now);
        return send_json(c, 200, &b);
    case R_FILE:
        return send_file(c, rt->run, rt->rel);
    default: break;
    }
    dash_run *r = rt->run;
    int64_t since = -1, until = INT64_MAX, max = 0, limit = 0;
    const char *name = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "name");
    const char *file = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "file");
    if (!arg_int(c, "since", -1, INT64_MAX, &since) || !arg_int(c, "until", -1, INT64_MAX, &until) ||
        !arg_int(c, "max", 0, 10000000, &max) || !arg_int(c, "limit", 0, DASH_MAX_SAMPLES, &limit))
        return send_error(c, 400, "since, until, max and limit must be whole numbers (since >= -1, max >= 0)");
    if (name && !*name) name = NULL;
    int st = 200;
    pthread_mutex_lock(&r->mu);
    dr_refresh(r, false);
    switch (rt->kind) {
    case R_RUN: dr_json_summary(r, &b, now); break;
    case R_STATUS: dr_json_status(r, &b, now); break;
    case R_SCALARS: st = dr_json_scalars(r, name, since, until, max, &b, err, sizeof err); break;
    case R_SAMPLES: {
        char prefix[128];
        snprintf(prefix, sizeof prefix, "/runs/%s/files/", r->id);
        dr_json_samples(r, limit ? limit : 100, prefix, &b);
        break;
    }
    case R_PIANOROLL: st = dr_json_pianoroll(r, file, &b, err, sizeof err); break;
    case R_CONFIG: st = dr_json_config(r, file && *file ? file : NULL, &b, err, sizeof err); break;
    default: st = 404; snprintf(err, sizeof err, "no such page"); break;
    }
    pthread_mutex_unlock(&r->mu);
    if (st != 200) {
        jb_free(&b);
        return send_error(c, (unsigned)st, err);
    }
    return send_json(c, 200, &b);
}

/* libmicrohttpd calls this once with the headers, once per piece of body, and once at the end.
 * A response queued before the end closes the connection after it, so GET is answered at the
 * end (keep-alive works) and only a POST that is refused outright is answered at once. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upsize, void **con_cls) {
    dash_server *s = cls;
    req *q = *con_cls;
    if (!q) {
        q = calloc(1, sizeof *q);
        if (!q) return MHD_NO;
        *con_cls = q;
        if (strcmp(method, "POST") != 0) return MHD_YES;
        if (!host_ok(s, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host")))
            return send_error(c, 403, "the Host header does not name this server (a loopback address)");
        route rt = match(s, url);
        if (rt.kind != R_SCALARS) return MHD_YES;   /* 404 or 405 at the end */
        const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
        if (!ct || strncasecmp(ct, "application/json", 16) != 0 || (ct[16] && ct[16] != ';' && ct[16] != ' '))
            return send_error(c, 415, "POST a JSON body with Content-Type: application/json");
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > DASH_MAX_BODY)
            return send_error(c, 413, "the body is larger than 64 KiB: post fewer scalars at a time");
        q->is_post = true;
        q->run = rt.run;
        return MHD_YES;
    }
    if (*upsize) {
        if (q->is_post && !q->too_big && q->len + *upsize <= DASH_MAX_BODY) {
            if (q->len + *upsize > q->cap) {
                size_t cap = q->cap ? q->cap : 4096;
                while (cap < q->len + *upsize) cap *= 2;
                char *nb = realloc(q->body, cap);
                if (!nb) return MHD_NO;
                q->body = nb;
                q->cap = cap;
            }
            memcpy(q->body + q->len, upload, *upsize);
            q->len += *upsize;
        } else {   /* too large, or a body nobody asked for: read it away, up to a point */
            q->too_big = q->is_post;
            q->discarded += *upsize;
            if (q->discarded > ((size_t)1 << 20)) return MHD_NO;   /* stop reading: close */
        }
        *upsize = 0;
        return MHD_YES;
    }
    if (q->answered) return MHD_NO;
    q->answered = true;
    if (!q->is_post) {
        if (!host_ok(s, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host")))
            return send_error(c, 403, "the Host header does not name this server (a loopback address)");
        if (strlen(url) > 2048) return send_error(c, 414, "the URL is too long");
        route rt = match(s, url);
        if (rt.kind == R_NONE) {
            if (rt.unknown_run) return send_error(c, 404, "no run with that id (GET /api/runs lists them)");
            return send_error(c, 404, "no such page (the API is under /api/runs)");
        }
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
            return send_405(c, rt.kind == R_SCALARS ? "GET, HEAD, POST" : "GET, HEAD");
        return handle_get(s, c, &rt);
    }
    if (q->too_big) return send_error(c, 413, "the body is larger than 64 KiB: post fewer scalars at a time");
    char err[600];
    dj_buf b = {0};
    pthread_mutex_lock(&q->run->mu);
    int st = dr_post_scalars(q->run, q->body ? q->body : "", q->len, wall_now(), &b, err, sizeof err);
    pthread_mutex_unlock(&q->run->mu);
    if (st != 200) {
        jb_free(&b);
        return send_error(c, (unsigned)st, err);
    }
    return send_json(c, 200, &b);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    req *q = *con_cls;
    if (q) {
        free(q->body);
        free(q);
        *con_cls = NULL;
    }
}

/* A new connection: the worker thread serving it yields to the trainer (nice +10). */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_ctx, enum MHD_ConnectionNotificationCode code) {
    if (code != MHD_CONNECTION_NOTIFY_STARTED) return;
    id_t tid = (id_t)syscall(SYS_gettid);
    errno = 0;
    int now = getpriority(PRIO_PROCESS, tid);
    if (errno == 0 && now < 10) setpriority(PRIO_PROCESS, tid, 10);
}
#endif

int dash_start(const char *hostport, const char *const *run_dirs, int n, dash_server **out, char *err,
               size_t errlen) {
    *out = NULL;
    if (errlen) err[0] = 0;
#ifndef CT_HAVE_MHD
    (void)hostport; (void)run_dirs; (void)n;
    snprintf(err, errlen, "this build has no dashboard: libmicrohttpd was not found at build time (make deps, then rebuild)");
    return -1;
#else
    if (n < 1 || n > DASH_MAX_RUNS) {
        snprintf(err, errlen, "give 1 to %d run folders (got %d)", DASH_MAX_RUNS, n);
        return -1;
    }
    dash_server *s = calloc(1, sizeof *s);
    if (!s) { snprintf(err, errlen, "out of memory"); return -1; }
    for (int i = 0; i < n; i++) {
        char id[DASH_MAX_NAME];
        make_id(s, run_dirs[i], id, sizeof id);
        dash_run *r = dr_new(run_dirs[i], id, err, errlen);
        if (!r) { free_runs(s); free(s); return -1; }
        s->runs[s->nruns++] = r;
    }
    char host[256], port[16];
    if (parse_hostport(hostport, host, sizeof host, port, sizeof port, err, errlen) != 0) {
        free_runs(s);
        free(s);
        return -1;
    }
    snprintf(s->host, sizeof s->host, "%s", host);
    int fd = open_listener(host, port, s, err, errlen);
    if (fd < 0) { free_runs(s); free(s); return -1; }
    bool v6 = strchr(host, ':') != NULL;
    snprintf(s->url, sizeof s->url, "http://%s%s%s:%d/", v6 ? "[" : "", host, v6 ? "]" : "", s->port);
    s->d = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | (v6 ? MHD_USE_IPv6 : 0), 0, NULL, NULL, on_request, s,
                            MHD_OPTION_LISTEN_SOCKET, fd,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)2,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)128,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024),
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                            MHD_OPTION_END);
    if (!s->d) {
        close(fd);
        snprintf(err, errlen, "cannot start the HTTP server (libmicrohttpd) on %s:%s", host, port);
        free_runs(s);
        free(s);
        return -1;
    }
    if (!s->loopback)
        fprintf(stderr, "cantor dashboard: warning: listening on %s:%d, which is not a loopback address: anyone who "
                        "can reach it can read these runs and post scalars to them\n", host, s->port);
    *out = s;
    return 0;
#endif
}

void dash_stop(dash_server *s) {
    if (!s) return;
#ifdef CT_HAVE_MHD
    if (s->d) MHD_stop_daemon(s->d);
#endif
    free_runs(s);
    free(s);
}
