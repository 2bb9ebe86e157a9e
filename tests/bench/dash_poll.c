/* tests/bench/dash_poll.c — many dashboard clients polling like the page does (for
 * tests/bench/dashboard_load.sh; a measurement tool, not a test).
 *
 *   dash_poll PORT RUN_ID CLIENTS SECONDS [INTERVAL_MS]
 *
 * Each client keeps one HTTP/1.1 connection and, every INTERVAL_MS (default 1000), asks
 * GET /api/runs, then GET /api/runs/RUN_ID/scalars?since=LAST&max=4000 with the last step it
 * has seen, and every fifth time GET /api/runs/RUN_ID/samples?limit=48. Prints the requests,
 * errors and latency (mean, p99) at the end, or when stopped with SIGINT/SIGTERM. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* SIGINT/SIGTERM end the run early (the summary is still printed). */
static atomic_int g_stop;
static void on_signal(int sig) { (void)sig; atomic_store(&g_stop, 1); }

typedef struct client {
    int port;
    const char *run;
    double seconds, interval;
    long requests, errors;
    double *lat;
    long nlat, caplat;
} client;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int dial(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { close(fd); return -1; }
    return fd;
}

/* One GET on a kept-alive connection (*fd, redialled when needed); the body into buf (cut
 * at cap). Returns the status or -1. */
static int get(client *c, int *fd, const char *path, char *buf, size_t cap) {
    for (int attempt = 0; attempt < 2; attempt++) {
        if (*fd < 0) *fd = dial(c->port);
        if (*fd < 0) return -1;
        char req[512];
        int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", path, c->port);
        if (send(*fd, req, (size_t)n, MSG_NOSIGNAL) != n) { close(*fd); *fd = -1; continue; }
        char head[4096];
        size_t h = 0;
        char *end = NULL;
        while (!end && h < sizeof head - 1) {
            ssize_t k = recv(*fd, head + h, 1, 0);   /* byte by byte up to the blank line */
            if (k <= 0) break;
            h++;
            head[h] = 0;
            if (h >= 4 && memcmp(head + h - 4, "\r\n\r\n", 4) == 0) end = head + h;
        }
        if (!end) { close(*fd); *fd = -1; if (h == 0) continue; return -1; }
        int status = atoi(head + 9);
        const char *cl = strstr(head, "Content-Length: ");
        long len = cl ? atol(cl + 16) : 0, got = 0;
        while (got < len) {
            char tmp[65536];
            size_t want = (size_t)(len - got) < sizeof tmp ? (size_t)(len - got) : sizeof tmp;
            ssize_t k = recv(*fd, tmp, want, 0);
            if (k <= 0) { close(*fd); *fd = -1; return -1; }
            if ((size_t)got < cap - 1) {
                size_t keep = (size_t)k < cap - 1 - (size_t)got ? (size_t)k : cap - 1 - (size_t)got;
                memcpy(buf + got, tmp, keep);
                buf[got + (long)keep] = 0;
            }
            got += k;
        }
        if (strstr(head, "Connection: close")) { close(*fd); *fd = -1; }
        return status;
    }
    return -1;
}

static void *run_client(void *arg) {
    client *c = arg;
    int fd = -1;
    long last = -1;
    char *buf = malloc(1 << 20);
    double t_end = now_s() + c->seconds;
    usleep((useconds_t)(rand() % 1000) * 1000);   /* spread the clients over the interval */
    for (int i = 0; now_s() < t_end && !atomic_load(&g_stop); i++) {
        double t0 = now_s();
        char path[256];
        for (int k = 0; k < (i % 5 == 0 ? 3 : 2); k++) {
            if (k == 0) snprintf(path, sizeof path, "/api/runs");
            else if (k == 1) snprintf(path, sizeof path, "/api/runs/%s/scalars?since=%ld&max=4000", c->run, last);
            else snprintf(path, sizeof path, "/api/runs/%s/samples?limit=48", c->run);
            double r0 = now_s();
            buf[0] = 0;
            int st = get(c, &fd, path, buf, 1 << 20);
            double dt = now_s() - r0;
            c->requests++;
            if (st != 200) c->errors++;
            if (c->nlat == c->caplat) {
                c->caplat = c->caplat ? c->caplat * 2 : 1024;
                c->lat = realloc(c->lat, (size_t)c->caplat * sizeof *c->lat);
            }
            c->lat[c->nlat++] = dt;
            if (k == 0) {   /* the newest step of the run, for the next since= */
                const char *p = strstr(buf, "\"status\":{\"step\":");
                if (p && p[17] != 'n') last = atol(p + 17);
            }
        }
        double left = c->interval - (now_s() - t0);
        while (left > 0 && !atomic_load(&g_stop)) {
            usleep(left > 0.05 ? 50000 : (useconds_t)(left * 1e6));
            left -= 0.05;
        }
    }
    if (fd >= 0) close(fd);
    free(buf);
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: dash_poll PORT RUN_ID CLIENTS SECONDS [INTERVAL_MS]\n");
        return 2;
    }
    int port = atoi(argv[1]), n = atoi(argv[3]);
    double secs = atof(argv[4]), interval = argc > 5 ? atof(argv[5]) / 1000.0 : 1.0;
    if (n < 1 || n > 1000 || port <= 0) return 2;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    double t_start = now_s();
    client *cs = calloc((size_t)n, sizeof *cs);
    pthread_t *th = calloc((size_t)n, sizeof *th);
    for (int i = 0; i < n; i++) {
        cs[i] = (client){port, argv[2], secs, interval, 0, 0, NULL, 0, 0};
        pthread_create(&th[i], NULL, run_client, &cs[i]);
    }
    long req = 0, err = 0, nl = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        req += cs[i].requests;
        err += cs[i].errors;
        nl += cs[i].nlat;
    }
    double *all = malloc((size_t)(nl ? nl : 1) * sizeof *all), sum = 0;
    long k = 0;
    for (int i = 0; i < n; i++)
        for (long j = 0; j < cs[i].nlat; j++) { all[k++] = cs[i].lat[j]; sum += cs[i].lat[j]; }
    qsort(all, (size_t)nl, sizeof *all, cmp);
    secs = now_s() - t_start;
    printf("dash_poll: %d clients, %ld requests (%.1f/s), %ld errors, latency mean %.2f ms, p99 %.2f ms\n", n, req,
           (double)req / secs, err, nl ? 1e3 * sum / (double)nl : 0.0, nl ? 1e3 * all[(long)((double)(nl - 1) * 0.99)] : 0.0);
    for (int i = 0; i < n; i++) free(cs[i].lat);
    free(all);
    free(cs);
    free(th);
    return err ? 1 : 0;
}
