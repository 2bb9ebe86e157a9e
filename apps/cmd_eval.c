/* apps/cmd_eval.c — `cantor eval` (placeholder until implemented). */
#include "apps/cli.h"

static void eval_help(FILE *f) { fprintf(f, "usage: cantor eval\n"); }
static int eval_run(int argc, char **argv) { return cli_fail("eval", "not implemented yet"); }
const cli_cmd cli_cmd_eval = {"eval", "evaluate a checkpoint on a corpus split (NLL, perplexity)", eval_run, eval_help};
