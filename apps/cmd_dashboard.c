/* apps/cmd_dashboard.c — `cantor dashboard RUN_DIR...`: serves the live training dashboard
 * (apps/dashboard.h) for finished or running runs until Ctrl-C. */
#include <getopt.h>
#include <signal.h>
#include <string.h>

#include "apps/cli.h"
#include "apps/dashboard.h"

static void dashboard_help(FILE *f) {
    fprintf(f,
            "usage: cantor dashboard RUN_DIR... [--listen HOST:PORT]\n"
            "\n"
            "Serves a web page with live plots of one or several training runs (loss and\n"
            "validation loss against step or time, tokens/s, learning rate, gradient norm, and\n"
            "anything other programs POST), their status (step, epoch, ETA, device, last\n"
            "checkpoint) and a gallery of the samples written at each validation, with piano\n"
            "rolls and players. Runs may still be training: their files are followed as they\n"
            "grow. Everything is served by cantor itself; no internet is needed. The REST API\n"
            "(JSON) is under /api/runs; see README.md, \"The dashboard\". Ctrl-C stops it.\n"
            "\n"
            "  --listen HOST:PORT  where to listen (default " DASH_DEFAULT_LISTEN "); port 0 picks a\n"
            "                      free one; an address that is not loopback (0.0.0.0) is\n"
            "                      reachable from other machines and gets a warning\n"
            "  -h, --help          this help\n"
            "\n"
            "A run folder is what `cantor train --out RUN_DIR` writes: metrics.jsonl,\n"
            "samples.jsonl and samples/, *.safetensors, status.json. Scalars POSTed to\n"
            "/api/runs/ID/scalars are kept in RUN_DIR/external.jsonl.\n");
}

static int dashboard_run(int argc, char **argv) {
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *listen_at = DASH_DEFAULT_LISTEN;
    int c;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'l': listen_at = optarg; break;
        case 'h': dashboard_help(stdout); return CLI_OK;
        default: return cli_bad_option("dashboard", argv[optind - 1]);
        }
    }
    if (cli_check_positionals("dashboard", argc, argv, optind)) return CLI_USAGE;
    int n = argc - optind;
    if (n < 1) return cli_usage("dashboard", "give one or more run folders (cantor train --out RUN_DIR writes one)");
    char err[1024];
    if (!dash_listen_ok(listen_at, err, sizeof err)) return cli_usage("dashboard", "--listen %s", err);
    if (!dash_available()) return cli_fail("dashboard", "this build has no dashboard: libmicrohttpd was not found at build time (make deps, then rebuild)");

    /* Ctrl-C and SIGTERM are taken by this thread with sigwait: block them before the server's
     * threads start, so that they inherit the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    dash_server *srv = NULL;
    if (dash_start(listen_at, (const char *const *)argv + optind, n, &srv, err, sizeof err) != 0) {
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
        return cli_fail("dashboard", "%s", err);
    }
    printf("cantor dashboard: serving %d run%s at %s (Ctrl-C stops it)\n", n, n == 1 ? "" : "s", dash_url(srv));
    fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    dash_stop(srv);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    printf("cantor dashboard: stopped (%s)\n", sig == SIGINT ? "Ctrl-C" : sig == SIGTERM ? "SIGTERM" : "SIGHUP");
    return CLI_OK;
}

const cli_cmd cli_cmd_dashboard = {"dashboard", "serve the live training dashboard for run directories", dashboard_run,
                                   dashboard_help};
