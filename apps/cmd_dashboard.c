/* apps/cmd_dashboard.c — `cantor dashboard` (placeholder until implemented). */
#include "apps/cli.h"

static void dashboard_help(FILE *f) { fprintf(f, "usage: cantor dashboard\n"); }
static int dashboard_run(int argc, char **argv) { return cli_fail("dashboard", "not implemented yet"); }
const cli_cmd cli_cmd_dashboard = {"dashboard", "serve the live training dashboard for run directories", dashboard_run, dashboard_help};
