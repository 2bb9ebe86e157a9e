/* apps/cmd_play.c — `cantor play` (placeholder until implemented). */
#include "apps/cli.h"

static void play_help(FILE *f) { fprintf(f, "usage: cantor play\n"); }
static int play_run(int argc, char **argv) { return cli_fail("play", "not implemented yet"); }
const cli_cmd cli_cmd_play = {"play", "compose and play live on a MIDI device, or play a MIDI file", play_run, play_help};

static void devices_help(FILE *f) { fprintf(f, "usage: cantor devices\n"); }
static int devices_run(int argc, char **argv) { return cli_fail("devices", "not implemented yet"); }
const cli_cmd cli_cmd_devices = {"devices", "list the MIDI output devices", devices_run, devices_help};
