/* tests/apps/test_dashboard.c — the training dashboard (apps/dashboard.h).
 *
 * The JSON reader and writer, the path and name rules and the run tailer are tested directly;
 * the server runs in this process on 127.0.0.1 with a free port, and every endpoint is called
 * over real HTTP by the small socket client below (so the requests can also be malformed on
 * purpose): the API, POSTs from outside the trainer, bad requests, path traversal, many
 * clients at once while a "trainer" appends to metrics.jsonl, and `cantor dashboard` itself
 * (../bin/cantor) started, queried and stopped with Ctrl-C. Built without libmicrohttpd, the
 * HTTP tests check that dash_start says so instead. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apps/dashboard.h"
#include "apps/dashboard_internal.h"
#include "testutil.h"

/* ---- fixtures ---------------------------------------------------------------------------------- */
static void put(const char *path, const char *text) { tu_spit(path, text, strlen(text)); }

static void append(const char *path, const char *text) {
    FILE *f = fopen(path, "ab");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* A mono 16-bit WAV of n samples. */
static void write_wav(const char *path, int n) {
    uint8_t h[44];
    uint32_t data = (uint32_t)n * 2, rate = 8000;
    memcpy(h, "RIFF", 4);
    uint32_t v = 36 + data;
    memcpy(h + 4, &v, 4);
    memcpy(h + 8, "WAVEfmt ", 8);
    v = 16;
    memcpy(h + 16, &v, 4);
    uint16_t w = 1;
    memcpy(h + 20, &w, 2);   /* PCM */
    memcpy(h + 22, &w, 2);   /* mono */
    memcpy(h + 24, &rate, 4);
    v = rate * 2;
    memcpy(h + 28, &v, 4);
    w = 2;
    memcpy(h + 32, &w, 2);
    w = 16;
    memcpy(h + 34, &w, 2);
    memcpy(h + 36, "data", 4);
    memcpy(h + 40, &data, 4);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite(h, 1, 44, f);
    for (int i = 0; i < n; i++) {
        int16_t s = (int16_t)(8000 * sin(i * 0.05));
        fwrite(&s, 2, 1, f);
    }
    fclose(f);
}

/* A safetensors file with one tensor and cantor's metadata. */
static void write_safetensors(const char *path) {
    const char *hdr = "{\"__metadata__\":{\"cantor_config\":\"{\\\"format\\\":\\\"cantor.composer\\\",\\\"version\\\":1,"
                      "\\\"model\\\":\\\"token_rnn\\\",\\\"encoding\\\":\\\"melody\\\",\\\"vocab\\\":38,\\\"min_pitch\\\":48,"
                      "\\\"max_pitch\\\":84,\\\"steps_per_quarter\\\":4,\\\"cell\\\":\\\"lstm\\\",\\\"layers\\\":2,"
                      "\\\"hidden\\\":256,\\\"embed\\\":64,\\\"dropout\\\":0.2}\",\"seed\":\"7\"},"
                      "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    uint64_t n = strlen(hdr);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite(&n, 8, 1, f);
    fwrite(hdr, 1, n, f);
    float x = 1.0f;
    fwrite(&x, 4, 1, f);
    fclose(f);
}

/* A run folder: 30 steps of metrics (valid every 10, a partial last line), two samples, a
 * checkpoint and status.json. */
static void make_run(const char *dir) {
    char p[512], line[512];
    tu_rm_rf(dir);
    mkdir("tmp", 0755);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    snprintf(p, sizeof p, "%s/samples", dir);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
    FILE *f = fopen(p, "wb");
    for (int s = 1; s <= 30; s++) {
        fprintf(f, "{\"step\": %d, \"epoch\": %d, \"time\": %.2f, \"wall\": %.2f, \"train_loss\": %.4f, \"lr\": 0.001, "
                   "\"grad_norm\": %.3f, \"tokens_per_s\": %d}\n",
                s, s / 20, s * 0.5, 1.8e9 + s * 0.5, 4.0 - s * 0.05, 1.0 + s * 0.01, 1000 + s);
        if (s % 10 == 0) fprintf(f, "{\"step\": %d, \"valid_loss\": %.4f}\n", s, 4.2 - s * 0.04);
    }
    fputs("{\"step\": 31, \"train_lo", f);   /* a line the trainer is still writing */
    fclose(f);
    uint8_t *mid;
    size_t n;
    mid = tu_slurp(TU_FIXTURE("midi/drums.mid"), &n);
    for (int s = 10; s <= 20; s += 10) {
        snprintf(p, sizeof p, "%s/samples/step-%08d.mid", dir, s);
        tu_spit(p, mid, n);
        snprintf(p, sizeof p, "%s/samples/step-%08d.wav", dir, s);
        write_wav(p, 4000);
        snprintf(p, sizeof p, "%s/samples.jsonl", dir);
        snprintf(line, sizeof line, "{\"step\":%d,\"sample\":\"samples/step-%08d.mid\",\"audio\":\"samples/step-%08d.wav\"}\n",
                 s, s, s);
        append(p, line);
    }
    free(mid);
    snprintf(p, sizeof p, "%s/ckpt-00000020.safetensors", dir);
    write_safetensors(p);
    snprintf(p, sizeof p, "%s/status.json", dir);
    put(p, "{\"state\":\"running\",\"total_steps\":100,\"device\":\"cpu\",\"pid\":1}");
}

static bool has(const char *hay, const char *needle) { return hay && strstr(hay, needle) != NULL; }
static const char *nz(const char *s) { return s ? s : "(null)"; }
#define ck_has(hay, needle) ck_assert_msg(has(hay, needle), "expected '%s' in: %.600s", needle, nz(hay))

/* ---- JSON ---------------------------------------------------------------------------------------- */
START_TEST(test_json) {
    char err[128];
    const char *text = " {\"a\": [1, -2.5e3, true, null, \"x\\u00e9\\ud83c\\udfb5\\n\"], \"b\": {\"c\": NaN, \"d\": -inf}} ";
    dj_doc *d = dj_parse(text, strlen(text), err, sizeof err);
    ck_assert_msg(d != NULL, "%s", err);
    const dj_val *a = dj_get(dj_root(d), "a");
    ck_assert_int_eq(a->type, DJ_ARR);
    ck_assert_int_eq(a->n, 5);
    ck_assert(a->child->is_int && a->child->num == 1);
    ck_assert(!a->child->next->is_int && a->child->next->num == -2500);
    ck_assert_str_eq(a->child->next->next->next->next->str, "x\xc3\xa9\xf0\x9f\x8e\xb5\n");
    ck_assert(isnan(dj_get(dj_get(dj_root(d), "b"), "c")->num));
    ck_assert(isinf(dj_get(dj_get(dj_root(d), "b"), "d")->num));
    ck_assert_ptr_null(dj_get(dj_root(d), "zz"));
    dj_buf b = {0};
    jb_val(&b, dj_root(d));
    ck_assert_str_eq(b.p, "{\"a\":[1,-2500,true,null,\"x\xc3\xa9\xf0\x9f\x8e\xb5\\n\"],\"b\":{\"c\":null,\"d\":null}}");
    jb_free(&b);
    dj_free(d);
    /* errors name the byte */
    static const char *const bad[] = {"", "{", "[1,]", "{\"a\" 1}", "{\"a\":1,}", "\"abc", "01", "1.", "[1] x", "tru",
                                      "\"\\ud800\"", "\"\\x\"", "{1:2}", "\"a\tb\"", "-", "[\"\\u12\"]"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        d = dj_parse(bad[i], strlen(bad[i]), err, sizeof err);
        ck_assert_msg(d == NULL, "accepted '%s'", bad[i]);
        ck_assert_msg(strncmp(err, "byte ", 5) == 0, "message '%s'", err);
    }
    /* depth limit */
    char deep[300];
    memset(deep, '[', 200);
    ck_assert_ptr_null(dj_parse(deep, 200, err, sizeof err));
    ck_has(err, "nested too deeply");
    /* the writer escapes control characters, and non-finite numbers become null */
    jb_str(&b, "q\"\\\x01\t");
    jb_s(&b, " ");
    jb_num(&b, NAN);
    jb_s(&b, " ");
    jb_float(&b, 0.25f);
    jb_s(&b, " ");
    jb_int(&b, -12345678901234LL);
    ck_assert_str_eq(b.p, "\"q\\\"\\\\\\u0001\\t\" null 0.25 -12345678901234");
    size_t len;
    char *t = jb_take(&b, &len);
    ck_assert_int_eq(len, strlen(t));
    free(t);
    /* a limited buffer fails instead of growing */
    dj_buf lim = {0};
    lim.limit = 100;
    for (int i = 0; i < 50; i++) jb_s(&lim, "0123456789");
    ck_assert(lim.failed);
    ck_assert_ptr_null(jb_take(&lim, NULL));
}
END_TEST

START_TEST(test_paths_and_names) {
    static const char *const good[] = {"metrics.jsonl", "samples/step-00000010.mid", "a/b/c.wav", "x+y_z-1.txt", ".hidden"};
    static const char *const bad[] = {"", "/etc/passwd", "../x", "a/../b", "a/./b", "./a", "a//b", "a/", "..", ".",
                                      "a\\b", "a b", "a%2fb", "samples/..", "\xc3\xa9.mid", "a?b"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) ck_assert_msg(dash_rel_path_ok(good[i]), "%s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) ck_assert_msg(!dash_rel_path_ok(bad[i]), "%s", bad[i]);
    char longp[400];
    memset(longp, 'a', sizeof longp - 1);
    longp[sizeof longp - 1] = 0;
    ck_assert(!dash_rel_path_ok(longp));
    ck_assert(dash_name_ok("train_loss") && dash_name_ok("eval/bleu-4") && dash_name_ok("a.b:c"));
    ck_assert(!dash_name_ok("") && !dash_name_ok("a b") && !dash_name_ok("a\"b") && !dash_name_ok("é"));
    char err[256];
    ck_assert(dash_listen_ok("127.0.0.1:8097", err, sizeof err) && dash_listen_ok("[::1]:0", err, sizeof err) &&
              dash_listen_ok("localhost", err, sizeof err) && dash_listen_ok(":9000", err, sizeof err));
    ck_assert(!dash_listen_ok("127.0.0.1:99999", err, sizeof err));
    ck_has(err, "port");
    ck_assert(!dash_listen_ok("::1:80", err, sizeof err));
    ck_has(err, "brackets");
    ck_assert(!dash_listen_ok("host:http", err, sizeof err));
}
END_TEST

/* ---- the tailer ----------------------------------------------------------------------------------- */
static dash_series *series(dash_run *r, const char *name) {
    for (int i = 0; i < r->nseries; i++)
        if (!strcmp(r->series[i].name, name)) return &r->series[i];
    return NULL;
}

START_TEST(test_tail) {
    const char *dir = "tmp/dash_tail";
    make_run(dir);
    char err[256], p[256];
    ck_assert_ptr_null(dr_new("tmp/dash_nope", "x", err, sizeof err));
    ck_has(err, "tmp/dash_nope");
    ck_assert_ptr_null(dr_new(TU_FIXTURE("midi/drums.mid"), "x", err, sizeof err));
    ck_has(err, "not a folder");
    dash_run *r = dr_new(dir, "t", err, sizeof err);
    ck_assert_ptr_nonnull(r);
    dr_refresh(r, true);
    ck_assert_int_eq(series(r, "train_loss")->n, 30);
    ck_assert_int_eq(series(r, "valid_loss")->n, 3);
    ck_assert_int_eq(series(r, "valid_loss")->pts[2].step, 30);
    ck_assert_float_eq_tol(series(r, "valid_loss")->pts[2].time, 15.0, 1e-4);   /* the last time seen */
    ck_assert_int_eq(r->last_step, 30);
    ck_assert_int_eq(r->last_epoch, 1);
    ck_assert_int_eq(r->nsamples, 2);
    ck_assert_int_eq(r->tails[0].bad_lines, 0);
    /* the partial line completes */
    snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
    append(p, "ss\": 2.5}\n{\"step\": 32, \"loss\": 2.4, \"time_s\": 16}\n");
    dr_refresh(r, true);
    ck_assert_int_eq(series(r, "train_loss")->n, 32);
    ck_assert_float_eq_tol(series(r, "train_loss")->pts[31].value, 2.4, 1e-6);
    ck_assert_float_eq_tol(series(r, "train_loss")->pts[31].time, 16, 1e-6);
    /* malformed lines are counted, not fatal */
    append(p, "garbage\n[1,2]\n{\"epoch\": 1}\n{\"step\": -1, \"x\": 1}\n{\"step\": 33, \"train_loss\": 2.3, \"bad name\": 1}\n\n");
    dr_refresh(r, true);
    ck_assert_int_eq(r->tails[0].bad_lines, 4);
    ck_assert_int_eq(series(r, "train_loss")->n, 33);
    ck_assert_int_eq(r->ignored_fields, 1);
    /* a line longer than the limit is skipped */
    char *big = malloc(DASH_MAX_LINE + 100);
    memset(big, ' ', DASH_MAX_LINE + 98);
    big[DASH_MAX_LINE + 98] = '\n';
    big[DASH_MAX_LINE + 99] = 0;
    memcpy(big, "{\"step\": 34, \"train_loss\": 1", 28);
    append(p, big);
    append(p, "{\"step\": 35, \"train_loss\": 2.2}\n");
    free(big);
    dr_refresh(r, true);
    ck_assert_int_eq(r->tails[0].bad_lines, 5);
    ck_assert_int_eq(series(r, "train_loss")->pts[series(r, "train_loss")->n - 1].step, 35);
    /* a restart (a lower step) drops the points from that step on, and the generation grows */
    uint64_t gen = r->generation;
    append(p, "{\"step\": 20, \"train_loss\": 9.0}\n");
    dr_refresh(r, true);
    ck_assert_int_gt(r->generation, gen);
    ck_assert_int_eq(series(r, "train_loss")->n, 20);
    ck_assert_int_eq(series(r, "valid_loss")->n, 1);   /* 10 kept, 20 and 30 dropped */
    ck_assert_float_eq_tol(series(r, "train_loss")->pts[19].value, 9.0, 1e-6);
    /* truncated and rewritten: read again from the start */
    gen = r->generation;
    put(p, "{\"step\": 1, \"train_loss\": 5}\n");
    dr_refresh(r, true);
    ck_assert_int_gt(r->generation, gen);
    ck_assert_int_eq(series(r, "train_loss")->n, 1);
    ck_assert_ptr_null(series(r, "valid_loss"));
    /* replaced by another file of the same size or larger (a new inode) */
    char q[256];
    snprintf(q, sizeof q, "%s/metrics.new", dir);
    put(q, "{\"step\": 7, \"train_loss\": 6}\n{\"step\": 8, \"train_loss\": 7}\n");
    ck_assert_int_eq(rename(q, p), 0);
    dr_refresh(r, true);
    ck_assert_int_eq(series(r, "train_loss")->n, 2);
    ck_assert_int_eq(series(r, "train_loss")->pts[0].step, 7);
    /* removed: the run forgets it */
    remove(p);
    dr_refresh(r, true);
    ck_assert_ptr_null(series(r, "train_loss"));
    /* samples: a restart drops the later ones */
    snprintf(p, sizeof p, "%s/samples.jsonl", dir);
    append(p, "{\"step\":15,\"sample\":\"samples/a.mid\"}\n{\"step\":16,\"sample\":\"../../etc/passwd\"}\n");
    dr_refresh(r, true);
    ck_assert_int_eq(r->nsamples, 2);
    ck_assert_int_eq(r->samples[1].step, 15);
    ck_assert_str_eq(r->samples[1].audio, "");
    ck_assert_int_eq(r->tails[2].bad_lines, 1);
    dr_free(r);
    tu_rm_rf(dir);
}
END_TEST

START_TEST(test_memory_bound) {
    const char *dir = "tmp/dash_bound";
    tu_rm_rf(dir);
    mkdir("tmp", 0755);
    mkdir(dir, 0755);
    char err[256];
    dash_run *r = dr_new(dir, "b", err, sizeof err);
    r->max_points = 1000;
    char line[128];
    for (int s = 1; s <= 10000; s++) {
        int n = snprintf(line, sizeof line, "{\"step\": %d, \"train_loss\": %d}", s, s);
        dr_ingest_line(r, 0, line, (size_t)n);
    }
    dash_series *s = series(r, "train_loss");
    ck_assert_int_le(s->n, 1000);
    ck_assert_int_le(s->cap, 1000);
    ck_assert_int_ge(s->n, 400);
    ck_assert_int_eq(s->seen, 10000);
    ck_assert_int_eq(s->pts[0].step, 1);
    ck_assert_int_eq(s->pts[s->n - 1].step, 10000);   /* the newest is always there */
    for (int64_t i = 1; i < s->n; i++) ck_assert_int_lt(s->pts[i - 1].step, s->pts[i].step);
    /* at most DASH_MAX_SERIES series per file */
    for (int k = 0; k < DASH_MAX_SERIES + 10; k++) {
        int n = snprintf(line, sizeof line, "{\"step\": 20000, \"s%d\": 1}", k);
        dr_ingest_line(r, 0, line, (size_t)n);
    }
    ck_assert_int_eq(r->nseries, DASH_MAX_SERIES);
    ck_assert_int_eq(r->ignored_fields, 11);
    /* non-finite values are counted, not stored */
    const char *nanline = "{\"step\": 20001, \"train_loss\": nan}";
    dr_ingest_line(r, 0, nanline, strlen(nanline));
    s = series(r, "train_loss");   /* adding series may have moved it */
    ck_assert_int_eq(s->nonfinite, 1);
    ck_assert_int_eq(s->pts[s->n - 1].step, 10000);
    /* scalars downsampled to max keep each bucket's extremes and the newest point */
    dj_buf b = {0};
    ck_assert_int_eq(dr_json_scalars(r, "train_loss", -1, INT64_MAX, 100, &b, err, sizeof err), 200);
    ck_has(b.p, "\"downsampled\":true");
    ck_has(b.p, "10000]");
    dj_doc *d = dj_parse(b.p, b.len, err, sizeof err);
    const dj_val *steps = dj_get(dj_get(dj_root(d), "series")->child, "steps");
    ck_assert_int_le(steps->n, 101);
    ck_assert_int_ge(steps->n, 50);
    dj_free(d);
    jb_free(&b);
    dr_free(r);
    tu_rm_rf(dir);
}
END_TEST

/* ---- a small HTTP client ------------------------------------------------------------------------- */
typedef struct resp {
    int status;         /* -1: no answer (the server closed the connection) */
    char *head, *body;  /* NUL-terminated; free with resp_free */
    size_t body_len;
} resp;

static void resp_free(resp *r) {
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof *r);
}

static int connect_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct timeval tv = {20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Sends raw bytes and reads the answer until the server closes. */
static resp http_raw(int port, const char *req, size_t len) {
    resp r = {-1, NULL, NULL, 0};
    int fd = connect_to(port);
    size_t sent = 0;
    while (sent < len) {
        ssize_t k = send(fd, req + sent, len - sent, MSG_NOSIGNAL);
        if (k <= 0) break;   /* the server may close early (413) */
        sent += (size_t)k;
    }
    shutdown(fd, SHUT_WR);
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (n == cap) buf = realloc(buf, (cap *= 2) + 1);
        ssize_t k = recv(fd, buf + n, cap - n, 0);
        if (k <= 0) break;
        n += (size_t)k;
    }
    close(fd);
    buf[n] = 0;
    char *end = strstr(buf, "\r\n\r\n");
    if (n < 12 || strncmp(buf, "HTTP/1.", 7) != 0 || !end) { free(buf); return r; }
    r.status = atoi(buf + 9);
    r.head = strndup(buf, (size_t)(end - buf));
    r.body_len = n - (size_t)(end + 4 - buf);
    r.body = malloc(r.body_len + 1);
    memcpy(r.body, end + 4, r.body_len);
    r.body[r.body_len] = 0;
    free(buf);
    return r;
}

static resp http(int port, const char *method, const char *path, const char *headers, const char *body) {
    size_t blen = body ? strlen(body) : 0;
    char *req = malloc(blen + 4096);
    int n = snprintf(req, 4096, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n%s", method, path, port,
                     headers ? headers : "");
    if (body) n += snprintf(req + n, 4096 - (size_t)n, "Content-Length: %zu\r\n", blen);
    n += snprintf(req + n, 4096 - (size_t)n, "\r\n");
    if (body) memcpy(req + n, body, blen);
    resp r = http_raw(port, req, (size_t)n + blen);
    free(req);
    return r;
}

static resp get(int port, const char *path) { return http(port, "GET", path, NULL, NULL); }
static resp post_json(int port, const char *path, const char *body) {
    return http(port, "POST", path, "Content-Type: application/json\r\n", body);
}

/* The answer parses as JSON (and is an object). */
static void assert_json(const resp *r) {
    char err[128];
    dj_doc *d = dj_parse(r->body, r->body_len, err, sizeof err);
    ck_assert_msg(d && dj_root(d)->type == DJ_OBJ, "not a JSON object (%s): %.300s", err, r->body);
    dj_free(d);
}

/* GET path: a 200 answer whose body is a JSON object. */
static resp get_json(int port, const char *path) {
    resp r = get(port, path);
    ck_assert_msg(r.status == 200, "GET %s: %d %.300s", path, r.status, nz(r.body));
    assert_json(&r);
    return r;
}

static dash_server *start(const char *const *dirs, int n) {
    dash_server *s = NULL;
    char err[512];
    int rc = dash_start("127.0.0.1:0", dirs, n, &s, err, sizeof err);
    ck_assert_msg(rc == 0, "dash_start: %s", err);
    ck_assert_int_gt(dash_port(s), 0);
    ck_assert(dash_is_loopback(s));
    return s;
}

/* ---- the API over HTTP ------------------------------------------------------------------------- */
START_TEST(test_api_get) {
    if (!dash_available()) {
        dash_server *s = NULL;
        char err[256];
        const char *dirs[] = {"."};
        ck_assert_int_eq(dash_start(NULL, dirs, 1, &s, err, sizeof err), -1);
        ck_has(err, "libmicrohttpd");
        return;
    }
    make_run("tmp/dash_a");
    tu_rm_rf("tmp/dash_b");
    mkdir("tmp/dash_b", 0755);
    make_run("tmp/dash_b/run");   /* ids: "dash_a", "run" */
    const char *dirs[] = {"tmp/dash_a", "tmp/dash_b/run/"};
    dash_server *s = start(dirs, 2);
    int port = dash_port(s);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    ck_assert_str_eq(dash_url(s), url);
    resp r = get_json(port, "/api/runs");
    ck_has(r.head, "Content-Type: application/json");
    ck_has(r.body, "\"id\":\"dash_a\"");
    ck_has(r.body, "\"id\":\"run\"");
    ck_has(r.body, "{\"name\":\"train_loss\",\"source\":\"metrics\",\"count\":30,\"last_step\":30");
    ck_has(r.body, "\"samples\":2");
    resp_free(&r);
    /* one run, and its status: the last metrics line, status.json, the newest checkpoint */
    r = get_json(port, "/api/runs/dash_a/status");
    ck_has(r.body, "\"step\":30,\"epoch\":1,\"time\":15,");
    ck_has(r.body, "\"state\":\"running\",\"total_steps\":100,\"eta_s\":35,\"device\":\"cpu\"");
    ck_has(r.body, "\"checkpoint\":{\"file\":\"ckpt-00000020.safetensors\",\"step\":20,");
    ck_has(r.body, "\"trainer\":{\"state\":\"running\",\"total_steps\":100,\"device\":\"cpu\",\"pid\":1}");
    resp_free(&r);
    r = get(port, "/api/runs/run");
    ck_assert_int_eq(r.status, 200);
    ck_has(r.body, "\"dir\":\"tmp/dash_b/run/\"");
    resp_free(&r);
    /* scalars: one series, since, until, max; all series */
    r = get(port, "/api/runs/dash_a/scalars?name=valid_loss");
    ck_assert_int_eq(r.status, 200);
    ck_has(r.body, "\"steps\":[10,20,30],\"times\":[5,10,15],\"values\":[3.8,3.4,3]}");
    resp_free(&r);
    r = get(port, "/api/runs/dash_a/scalars?name=train_loss&since=27");
    ck_has(r.body, "\"steps\":[28,29,30],");
    resp_free(&r);
    r = get(port, "/api/runs/dash_a/scalars?name=train_loss&since=5&until=7");
    ck_has(r.body, "\"steps\":[6,7],\"times\":[3,3.5],\"values\":[3.7,3.65]");
    resp_free(&r);
    r = get(port, "/api/runs/dash_a/scalars?name=train_loss&max=10");
    ck_has(r.body, "\"downsampled\":true");
    resp_free(&r);
    r = get(port, "/api/runs/dash_a/scalars?since=29");
    assert_json(&r);
    ck_has(r.body, "\"name\":\"lr\"");
    ck_has(r.body, "\"name\":\"tokens_per_s\",\"source\":\"metrics\",\"count\":30,\"nonfinite\":0,\"last_step\":30,"
                   "\"downsampled\":false,\"steps\":[30],\"times\":[15],\"values\":[1030]}");
    resp_free(&r);
    /* the trainer appends: the next request sees it */
    append("tmp/dash_a/metrics.jsonl", "ss\": 2.4}\n");
    usleep(150 * 1000);
    r = get(port, "/api/runs/dash_a/scalars?name=train_loss&since=30");
    ck_has(r.body, "\"steps\":[31],");
    resp_free(&r);
    /* samples: newest first, with URLs; the piano roll of one; the files themselves */
    r = get_json(port, "/api/runs/dash_a/samples");
    char *s20 = strstr(r.body, "\"step\":20"), *s10 = strstr(r.body, "\"step\":10");
    ck_assert(s20 && s10 && s20 < s10);
    ck_has(r.body, "\"midi_url\":\"/runs/dash_a/files/samples/step-00000020.mid\",\"midi_exists\":true");
    ck_has(r.body, "\"audio_url\":\"/runs/dash_a/files/samples/step-00000020.wav\",\"audio_exists\":true");
    resp_free(&r);
    r = get(port, "/api/runs/dash_a/samples?limit=1");
    ck_has(r.body, "\"count\":2,");
    ck_assert(!has(r.body, "\"step\":10"));
    resp_free(&r);
    r = get_json(port, "/api/runs/dash_a/pianoroll?file=samples/step-00000010.mid");
    ck_has(r.body, "\"count\":9,\"truncated\":false,\"notes\":[[");
    ck_has(r.body, ",9,1]");   /* channel 10 counted from 0, flagged as drums */
    resp_free(&r);
    r = get(port, "/api/runs/dash_a/pianoroll?file=samples/step-00000010.wav");
    ck_assert_int_eq(r.status, 422);
    ck_has(r.body, "samples/step-00000010.wav");
    ck_assert(!has(r.body, "/work/"));   /* no absolute paths in messages */
    resp_free(&r);
    r = get(port, "/api/runs/dash_a/pianoroll");
    ck_assert_int_eq(r.status, 400);
    resp_free(&r);
    size_t wn;
    uint8_t *wav = tu_slurp("tmp/dash_a/samples/step-00000010.wav", &wn);
    r = get(port, "/runs/dash_a/files/samples/step-00000010.wav");
    ck_assert_int_eq(r.status, 200);
    ck_has(r.head, "Content-Type: audio/wav");
    ck_has(r.head, "Accept-Ranges: bytes");
    ck_assert_int_eq(r.body_len, wn);
    ck_assert_int_eq(memcmp(r.body, wav, wn), 0);
    resp_free(&r);
    r = http(port, "GET", "/runs/dash_a/files/samples/step-00000010.wav", "Range: bytes=4-11\r\n", NULL);
    ck_assert_int_eq(r.status, 206);
    ck_has(r.head, "Content-Range: bytes 4-11/");
    ck_assert_int_eq(r.body_len, 8);
    ck_assert_int_eq(memcmp(r.body, wav + 4, 8), 0);
    resp_free(&r);
    r = http(port, "GET", "/runs/dash_a/files/samples/step-00000010.wav", "Range: bytes=-4\r\n", NULL);
    ck_assert_int_eq(r.status, 206);
    ck_assert_int_eq(memcmp(r.body, wav + wn - 4, 4), 0);
    resp_free(&r);
    r = http(port, "GET", "/runs/dash_a/files/samples/step-00000010.wav", "Range: bytes=99999999-\r\n", NULL);
    ck_assert_int_eq(r.status, 416);
    resp_free(&r);
    free(wav);
    r = http(port, "HEAD", "/runs/dash_a/files/metrics.jsonl", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(r.body_len, 0);
    resp_free(&r);
    /* the checkpoint's configuration */
    r = get_json(port, "/api/runs/dash_a/config");
    ck_has(r.body, "\"file\":\"ckpt-00000020.safetensors\",\"tensors\":1,");
    ck_has(r.body, "\"config\":{\"format\":\"cantor.composer\"");
    ck_has(r.body, "\"model\":\"melody LSTM 2x256\"");
    resp_free(&r);
    r = get(port, "/api/runs/dash_a/config?file=metrics.jsonl");
    ck_assert_int_eq(r.status, 422);
    resp_free(&r);
    /* the page: every asset, byte for byte the files of apps/assets (the embedding is current) */
    static const char *const assets[] = {"dashboard.html", "dashboard.js", "dashboard.css"};
    for (size_t i = 0; i < 3; i++) {
        char path[128], file[128];
        snprintf(path, sizeof path, "/%s", assets[i]);
        snprintf(file, sizeof file, "../apps/assets/%s", assets[i]);
        size_t fn;
        uint8_t *want = tu_slurp(file, &fn);
        r = get(port, path);
        ck_assert_int_eq(r.status, 200);
        ck_assert_msg(r.body_len == fn && memcmp(r.body, want, fn) == 0,
                      "%s differs from the embedded copy: run 'make dashboard-assets'", file);
        free(want);
        resp_free(&r);
    }
    r = get(port, "/");
    ck_assert_int_eq(r.status, 200);
    ck_has(r.head, "text/html");
    ck_has(r.head, "Content-Security-Policy: default-src 'self'");
    ck_has(r.body, "<script src=\"/dashboard.js\"");
    resp_free(&r);
    dash_stop(s);
    tu_rm_rf("tmp/dash_a");
    tu_rm_rf("tmp/dash_b");
}
END_TEST

START_TEST(test_api_post) {
    if (!dash_available()) return;
    make_run("tmp/dash_p");
    size_t mlen0;
    uint8_t *m0 = tu_slurp("tmp/dash_p/metrics.jsonl", &mlen0);
    const char *dirs[] = {"tmp/dash_p"};
    dash_server *s = start(dirs, 1);
    int port = dash_port(s);
    /* one scalar, a batch, a dictionary */
    resp r = post_json(port, "/api/runs/dash_p/scalars", "{\"step\": 10, \"name\": \"bleu\", \"value\": 0.25}");
    ck_assert_int_eq(r.status, 200);
    ck_has(r.body, "{\"ok\":true,\"run\":\"dash_p\",\"items\":1,\"scalars\":1}");
    resp_free(&r);
    r = post_json(port, "/api/runs/dash_p/scalars",
                  "[{\"step\": 20, \"name\": \"bleu\", \"value\": 0.5}, {\"step\": 20, \"time\": 9.5, \"scalars\": {\"eval/f1\": 0.1, \"pitch_range\": 24}}]");
    ck_assert_int_eq(r.status, 200);
    ck_has(r.body, "\"items\":2,\"scalars\":3}");
    resp_free(&r);
    r = get(port, "/api/runs/dash_p/scalars?name=bleu");
    ck_has(r.body, "\"source\":\"external\"");
    ck_has(r.body, "\"steps\":[10,20],");
    ck_has(r.body, "\"values\":[0.25,0.5]");
    resp_free(&r);
    r = get(port, "/api/runs/dash_p/scalars?name=eval/f1");
    ck_has(r.body, "\"steps\":[20],\"times\":[9.5],\"values\":[0.1]");
    resp_free(&r);
    /* stored in external.jsonl, never in metrics.jsonl */
    size_t n;
    char *ext = (char *)tu_slurp("tmp/dash_p/external.jsonl", &n);
    ck_has(ext, "{\"step\":10,\"wall\":");
    ck_has(ext, "\"bleu\":0.25}\n");
    ck_has(ext, "\"time\":9.5,\"eval/f1\":0.1,\"pitch_range\":24}\n");
    free(ext);
    size_t mlen1;
    uint8_t *m1 = tu_slurp("tmp/dash_p/metrics.jsonl", &mlen1);
    ck_assert(mlen0 == mlen1 && memcmp(m0, m1, mlen0) == 0);
    free(m0);
    free(m1);
    /* a repeated or lower step replaces that series' later points */
    r = post_json(port, "/api/runs/dash_p/scalars", "{\"step\": 15, \"name\": \"bleu\", \"value\": 0.3}");
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    r = get(port, "/api/runs/dash_p/scalars?name=bleu");
    ck_has(r.body, "\"steps\":[10,15],");
    resp_free(&r);
    /* refused: each with its status and a message */
    static const struct { const char *body; int status; const char *msg; } bad[] = {
        {"{\"step\": 1, \"name\": \"x\"", 400, "not JSON"},
        {"{\"name\": \"x\", \"value\": 1}", 400, "must be a whole number"},
        {"{\"step\": 1.5, \"name\": \"x\", \"value\": 1}", 400, "must be a whole number"},
        {"{\"step\": -3, \"name\": \"x\", \"value\": 1}", 400, "must be a whole number"},
        {"{\"step\": 1, \"name\": \"x\", \"value\": \"high\"}", 400, "finite number"},
        {"{\"step\": 1, \"name\": \"x\", \"value\": NaN}", 400, "finite number"},
        {"{\"step\": 1, \"name\": \"a b\", \"value\": 1}", 400, "series name"},
        {"{\"step\": 1, \"name\": \"x\", \"value\": 1, \"extra\": 2}", 400, "unknown field"},
        {"{\"step\": 1, \"scalars\": {}}", 400, "or \\\"scalars\\\""},
        {"[]", 400, "empty"},
        {"[1]", 400, "expected an object"},
        {"{\"step\": 1, \"name\": \"train_loss\", \"value\": 1}", 409, "trainer's"},
        {"{\"step\": 1, \"name\": \"step\", \"value\": 1}", 409, "trainer's"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        r = post_json(port, "/api/runs/dash_p/scalars", bad[i].body);
        ck_assert_msg(r.status == bad[i].status, "%s: %d %s", bad[i].body, r.status, r.body);
        assert_json(&r);
        ck_has(r.body, bad[i].msg);
        resp_free(&r);
    }
    r = http(port, "POST", "/api/runs/dash_p/scalars", "Content-Type: text/plain\r\n", "{\"step\":1,\"name\":\"x\",\"value\":1}");
    ck_assert_int_eq(r.status, 415);
    resp_free(&r);
    r = http(port, "POST", "/api/runs/dash_p/scalars", NULL, "{}");
    ck_assert_int_eq(r.status, 415);
    resp_free(&r);
    char *huge = malloc(DASH_MAX_BODY + 1000);
    memset(huge, ' ', DASH_MAX_BODY + 999);
    huge[DASH_MAX_BODY + 999] = 0;
    r = post_json(port, "/api/runs/dash_p/scalars", huge);
    ck_assert_int_eq(r.status, 413);
    resp_free(&r);
    /* the same without Content-Length (chunked): read and refused at the end */
    size_t hl = strlen(huge);
    char *chunked = malloc(hl + 512);
    int k = snprintf(chunked, 512, "POST /api/runs/dash_p/scalars HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n"
                     "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n%zx\r\n", port, hl);
    memcpy(chunked + k, huge, hl);
    memcpy(chunked + k + hl, "\r\n0\r\n\r\n", 7);
    r = http_raw(port, chunked, (size_t)k + hl + 7);
    ck_assert_int_eq(r.status, 413);
    resp_free(&r);
    free(chunked);
    free(huge);
    /* too many scalars in one request */
    dj_buf many = {0};
    jb_s(&many, "[");
    for (int i = 0; i <= DASH_MAX_POST_POINTS; i++) jb_printf(&many, "%s{\"step\":%d,\"name\":\"m\",\"value\":1}", i ? "," : "", i);
    jb_s(&many, "]");
    r = post_json(port, "/api/runs/dash_p/scalars", many.p);
    ck_assert_int_eq(r.status, 413);
    resp_free(&r);
    jb_free(&many);
    /* other methods, other routes */
    r = http(port, "PUT", "/api/runs/dash_p/scalars", "Content-Type: application/json\r\n", "{}");
    ck_assert_int_eq(r.status, 405);
    ck_has(r.head, "Allow: GET, HEAD, POST");
    resp_free(&r);
    r = post_json(port, "/api/runs/dash_p/samples", "{}");
    ck_assert_int_eq(r.status, 405);
    resp_free(&r);
    r = post_json(port, "/api/runs/nosuch/scalars", "{}");
    ck_assert_int_eq(r.status, 404);
    resp_free(&r);
    dash_stop(s);
    /* a new server over the same folder sees what was posted */
    s = start(dirs, 1);
    r = get(dash_port(s), "/api/runs/dash_p/scalars?name=bleu");
    ck_has(r.body, "\"values\":[0.25,0.3]");
    resp_free(&r);
    dash_stop(s);
    tu_rm_rf("tmp/dash_p");
}
END_TEST

START_TEST(test_api_bad_requests) {
    if (!dash_available()) return;
    make_run("tmp/dash_x");
    put("tmp/dash_secret.txt", "secret");
    symlink("../dash_secret.txt", "tmp/dash_x/link.txt");   /* a link leading out of the run */
    symlink("samples/step-00000010.mid", "tmp/dash_x/inside.mid");   /* one staying inside */
    const char *dirs[] = {"tmp/dash_x"};
    dash_server *s = start(dirs, 1);
    int port = dash_port(s);
    /* traversal, in every spelling: never 200, never the secret */
    static const char *const paths[] = {
        "/runs/dash_x/files/../dash_secret.txt", "/runs/dash_x/files/%2e%2e/dash_secret.txt",
        "/runs/dash_x/files/..%2fdash_secret.txt", "/runs/dash_x/files/samples/../../dash_secret.txt",
        "/runs/dash_x/files//etc/passwd", "/runs/dash_x/files/%2fetc%2fpasswd", "/runs/dash_x/files/link.txt",
        "/runs/dash_x/files/samples", "/runs/dash_x/files/", "/runs/dash_x/files/..\\dash_secret.txt",
        "/runs/../../etc/passwd", "/../../etc/passwd", "/runs/dash_x/../dash_secret.txt",
        "/api/runs/dash_x/pianoroll?file=../dash_secret.txt", "/api/runs/dash_x/pianoroll?file=%2Fetc%2Fpasswd",
        "/api/runs/dash_x/config?file=../../etc/passwd",
        "/dashboard.js/../../etc/passwd", "/runs/dash_x/files/samples/step-00000010.mid/..",
    };
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        resp r = get(port, paths[i]);
        ck_assert_msg(r.status == 400 || r.status == 404, "%s: %d", paths[i], r.status);
        ck_assert_msg(strcmp(r.body ? r.body : "", "secret") != 0 && !has(r.body, "root:"), "%s leaked", paths[i]);
        resp_free(&r);
    }
    resp r = get(port, "/runs/dash_x/files/inside.mid");
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    /* malformed queries, unknown things */
    static const struct { const char *path; int status; } bad[] = {
        {"/api/runs/dash_x/scalars?since=abc", 400}, {"/api/runs/dash_x/scalars?since=-5", 400},
        {"/api/runs/dash_x/scalars?max=1e3", 400}, {"/api/runs/dash_x/scalars?until=", 400},
        {"/api/runs/dash_x/scalars?name=nosuch", 404}, {"/api/runs/nosuch", 404}, {"/api/runs/nosuch/scalars", 404},
        {"/api/runs/dash_x/nosuch", 404}, {"/nosuch", 404}, {"/api/runs/dash_x/samples?limit=-1", 400},
        {"/runs/dash_x/files/nosuch.mid", 404}, {"/runs/dash_x", 404},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        r = get(port, bad[i].path);
        ck_assert_msg(r.status == bad[i].status, "%s: %d", bad[i].path, r.status);
        assert_json(&r);
        resp_free(&r);
    }
    /* a Host that is not this loopback server (DNS rebinding) */
    char req[512];
    snprintf(req, sizeof req, "GET /api/runs HTTP/1.1\r\nHost: evil.example:%d\r\nConnection: close\r\n\r\n", port);
    r = http_raw(port, req, strlen(req));
    ck_assert_int_eq(r.status, 403);
    resp_free(&r);
    snprintf(req, sizeof req, "GET /api/runs HTTP/1.1\r\nHost: localhost:%d\r\nConnection: close\r\n\r\n", port);
    r = http_raw(port, req, strlen(req));
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    /* garbage: 4xx or a closed connection, and the server lives on */
    static const char *const junk[] = {
        "GARBAGE\r\n\r\n", "GET\r\n\r\n", "GET / HTTP/9.9\r\n\r\n", "\x01\x02\x03\x04\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -5\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header Line\r\n\r\n",
        "POST /api/runs/dash_x/scalars HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    };
    for (size_t i = 0; i < sizeof junk / sizeof *junk; i++) {
        r = http_raw(port, junk[i], strlen(junk[i]));
        /* (505 is libmicrohttpd's answer to an HTTP version it does not speak) */
        ck_assert_msg(r.status == -1 || (r.status >= 400 && r.status < 500) || r.status == 505, "junk %zu: %d", i, r.status);
        resp_free(&r);
    }
    /* a request line and headers beyond the limit */
    size_t big = 100 * 1024;
    char *longreq = malloc(big + 256);
    strcpy(longreq, "GET /");
    memset(longreq + 5, 'a', big);
    strcpy(longreq + 5 + big, " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    r = http_raw(port, longreq, strlen(longreq));
    ck_assert_msg(r.status == -1 || r.status == 414 || r.status == 431 || r.status == 413, "long URL: %d", r.status);
    resp_free(&r);
    int k = snprintf(longreq, 256, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ");
    memset(longreq + k, 'b', big);
    strcpy(longreq + k + big, "\r\n\r\n");
    r = http_raw(port, longreq, strlen(longreq));
    ck_assert_msg(r.status == -1 || r.status == 431 || r.status == 413, "big header: %d", r.status);
    resp_free(&r);
    free(longreq);
    /* a client that connects and says nothing, one that sends half a request, one that goes
     * away in the middle of its body: the others are served meanwhile */
    int idle = connect_to(port);
    int half = connect_to(port);
    send(half, "GET /api/ru", 11, MSG_NOSIGNAL);
    int gone = connect_to(port);
    const char *part = "POST /api/runs/dash_x/scalars HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       "Content-Type: application/json\r\nContent-Length: 50\r\n\r\n{\"st";
    send(gone, part, strlen(part), MSG_NOSIGNAL);
    close(gone);
    r = get(port, "/api/runs");
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    close(idle);
    close(half);
    dash_stop(s);
    remove("tmp/dash_secret.txt");
    tu_rm_rf("tmp/dash_x");
}
END_TEST

/* ---- load: many clients polling while the "trainer" appends ------------------------------------ */
typedef struct loadctx {
    int port, requests, ok, bad;
    atomic_int *stop;
} loadctx;

static void *poller(void *arg) {
    loadctx *c = arg;
    for (int i = 0; i < c->requests; i++) {
        resp r = get(c->port, i % 3 == 0 ? "/api/runs" : i % 3 == 1 ? "/api/runs/dash_l/scalars?since=100&max=500"
                                                                    : "/api/runs/dash_l/status");
        char err[64];
        dj_doc *d = r.status == 200 ? dj_parse(r.body, r.body_len, err, sizeof err) : NULL;
        if (d) c->ok++; else c->bad++;
        dj_free(d);
        resp_free(&r);
    }
    return NULL;
}

static void *trainer(void *arg) {
    loadctx *c = arg;
    FILE *f = fopen("tmp/dash_l/metrics.jsonl", "ab");
    for (int s = 32; !atomic_load(c->stop); s++) {
        fprintf(f, "{\"step\": %d, \"time\": %d, \"train_loss\": %.3f, \"lr\": 0.001}\n", s, s, 1.0 / s);
        fflush(f);
        c->requests = s;
        usleep(200);
    }
    fclose(f);
    return NULL;
}

START_TEST(test_load) {
    if (!dash_available()) return;
    make_run("tmp/dash_l");
    append("tmp/dash_l/metrics.jsonl", "ss\": 2.5}\n");   /* step 31 */
    const char *dirs[] = {"tmp/dash_l"};
    dash_server *s = start(dirs, 1);
    int port = dash_port(s);
    enum { CLIENTS = 24 };
    int per = getenv("CT_TEST_QUICK") ? 10 : 60;
    atomic_int stop = 0;
    loadctx tc = {port, 0, 0, 0, &stop};
    pthread_t tt, th[CLIENTS];
    loadctx cc[CLIENTS];
    pthread_create(&tt, NULL, trainer, &tc);
    for (int i = 0; i < CLIENTS; i++) {
        cc[i] = (loadctx){port, per, 0, 0, &stop};
        pthread_create(&th[i], NULL, poller, &cc[i]);
    }
    int ok = 0, bad = 0;
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(th[i], NULL);
        ok += cc[i].ok;
        bad += cc[i].bad;
    }
    atomic_store(&stop, 1);
    pthread_join(tt, NULL);
    ck_assert_int_eq(bad, 0);
    ck_assert_int_eq(ok, CLIENTS * per);
    /* everything the trainer wrote is there, in order */
    usleep(150 * 1000);
    resp r = get(port, "/api/runs/dash_l/scalars?name=train_loss&since=30");
    char want[64];
    snprintf(want, sizeof want, ",\"count\":%d,", tc.requests);
    ck_has(r.body, want);
    resp_free(&r);
    dash_stop(s);
    tu_rm_rf("tmp/dash_l");
}
END_TEST

START_TEST(test_start_errors) {
    if (!dash_available()) return;
    make_run("tmp/dash_e");
    char err[512];
    dash_server *s = NULL, *s2 = NULL;
    const char *missing[] = {"tmp/dash_e", "tmp/dash_missing"};
    ck_assert_int_eq(dash_start("127.0.0.1:0", missing, 2, &s, err, sizeof err), -1);
    ck_has(err, "tmp/dash_missing");
    ck_assert_ptr_null(s);
    ck_assert_int_eq(dash_start("127.0.0.1:0", missing, 0, &s, err, sizeof err), -1);
    ck_assert_int_eq(dash_start("127.0.0.1:http", missing, 1, &s, err, sizeof err), -1);
    ck_has(err, "port");
    /* the port is taken */
    s = start(missing, 1);
    char hp[64];
    snprintf(hp, sizeof hp, "127.0.0.1:%d", dash_port(s));
    ck_assert_int_eq(dash_start(hp, missing, 1, &s2, err, sizeof err), -1);
    ck_has(err, "cannot listen on 127.0.0.1:");
    ck_has(err, "--listen");
    dash_stop(s);
    dash_stop(NULL);
    /* the same run twice gets two ids; IPv6 loopback works */
    const char *twice[] = {"tmp/dash_e", "tmp/dash_e/"};
    if (dash_start("[::1]:0", twice, 2, &s, err, sizeof err) == 0) {
        ck_assert(dash_is_loopback(s));
        ck_has(dash_url(s), "http://[::1]:");
        dash_stop(s);
    }
    s = start(twice, 2);
    resp r = get(dash_port(s), "/api/runs");
    ck_has(r.body, "\"id\":\"dash_e\"");
    ck_has(r.body, "\"id\":\"dash_e-2\"");
    resp_free(&r);
    dash_stop(s);
    /* open file descriptors do not leak across start and stop */
    int before = 0, after = 0;
    for (int fd = 0; fd < 1024; fd++) before += fcntl(fd, F_GETFD) != -1;
    for (int i = 0; i < 3; i++) {
        s = start(twice, 2);
        r = get(dash_port(s), "/api/runs/dash_e/samples");
        resp_free(&r);
        dash_stop(s);
    }
    for (int fd = 0; fd < 1024; fd++) after += fcntl(fd, F_GETFD) != -1;
    ck_assert_int_eq(before, after);
    tu_rm_rf("tmp/dash_e");
}
END_TEST

/* ---- the command ------------------------------------------------------------------------------- */
/* Runs `../bin/cantor ARGS`; returns the exit status and what it printed. */
static int run_cantor(const char *args, char *out, size_t n) { return tu_run_cantor(args, out, n); }

START_TEST(test_command) {
    char out[8192];
    ck_assert_int_eq(run_cantor("help dashboard", out, sizeof out), 0);
    ck_has(out, "--listen HOST:PORT");
    ck_assert_int_eq(run_cantor("dashboard", out, sizeof out), 2);
    ck_has(out, "give one or more run folders");
    ck_assert_int_eq(run_cantor("dashboard . --listen 127.0.0.1:70000", out, sizeof out), 2);
    ck_has(out, "--listen '127.0.0.1:70000'");
    ck_assert_int_eq(run_cantor("dashboard . --port 1", out, sizeof out), 2);
    ck_assert_int_eq(run_cantor("dashboard tmp/dash_nope --listen 127.0.0.1:0", out, sizeof out), 1);
    if (!dash_available()) return;
    ck_has(out, "tmp/dash_nope");
    /* started, asked, stopped with Ctrl-C */
    make_run("tmp/dash_c");
    int pipefd[2];
    ck_assert_int_eq(pipe(pipefd), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(pipefd[1], 1);
        close(pipefd[0]);
        close(pipefd[1]);
        execl(tu_cantor_bin(), "cantor", "dashboard", "tmp/dash_c", "--listen", "127.0.0.1:0", (char *)NULL);
        _exit(127);
    }
    close(pipefd[1]);
    FILE *f = fdopen(pipefd[0], "r");
    char line[512] = "";
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    ck_has(line, "cantor dashboard: serving 1 run at http://127.0.0.1:");
    int port = atoi(strstr(line, "127.0.0.1:") + 10);
    ck_assert_int_gt(port, 0);
    resp r = get(port, "/api/runs/dash_c/scalars?name=valid_loss");
    ck_assert_int_eq(r.status, 200);
    ck_has(r.body, "\"steps\":[10,20,30]");
    resp_free(&r);
    r = post_json(port, "/api/runs/dash_c/scalars", "{\"step\": 3, \"name\": \"from_outside\", \"value\": 7}");
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    kill(pid, SIGINT);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    ck_has(line, "stopped (Ctrl-C)");
    fclose(f);
    size_t n;
    char *ext = (char *)tu_slurp("tmp/dash_c/external.jsonl", &n);
    ck_has(ext, "\"from_outside\":7}");
    free(ext);
    tu_rm_rf("tmp/dash_c");
}
END_TEST

Suite *dashboard_suite(void) {
    Suite *s = suite_create("dashboard");
    TCase *tc = tcase_create("dashboard");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_json);
    tcase_add_test(tc, test_paths_and_names);
    tcase_add_test(tc, test_tail);
    tcase_add_test(tc, test_memory_bound);
    tcase_add_test(tc, test_api_get);
    tcase_add_test(tc, test_api_post);
    tcase_add_test(tc, test_api_bad_requests);
    tcase_add_test(tc, test_load);
    tcase_add_test(tc, test_start_errors);
    tcase_add_test(tc, test_command);
    suite_add_tcase(s, tc);
    return s;
}
