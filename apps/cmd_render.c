/* apps/cmd_render.c — `cantor render IN.mid OUT.wav|flac|ogg`: MIDI to audio. */
#include <getopt.h>
#include <string.h>

#include "apps/cli.h"
#include "audio/render.h"

static void render_help(FILE *f) {
    fprintf(f,
            "usage: cantor render IN.mid OUT.wav|OUT.flac|OUT.ogg [options]\n"
            "\n"
            "Renders a MIDI file to audio. The renderer is FluidSynth with a General MIDI\n"
            "SoundFont when both are installed, else cantor's built-in synthesizer.\n"
            "\n"
            "  --renderer auto|builtin|fluidsynth   which synthesizer (default auto)\n"
            "  --rate HZ         sample rate (default 44100)\n"
            "  --mono            one channel instead of two (default stereo)\n"
            "  --soundfont FILE  the .sf2 for FluidSynth (default: the first General MIDI\n"
            "                    SoundFont found under /usr/share/sounds/sf2)\n"
            "  --gain G          output gain (default: the renderer's own)\n"
            "  --seed N          seed of the built-in drums' noise (default 0)\n"
            "  -h, --help        this help\n");
}

static int render_run(int argc, char **argv) {
    static const struct option opts[] = {
        {"renderer", required_argument, NULL, 'r'}, {"rate", required_argument, NULL, 'R'},
        {"mono", no_argument, NULL, 'm'},           {"soundfont", required_argument, NULL, 's'},
        {"gain", required_argument, NULL, 'g'},     {"seed", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    ca_render_opts ro;
    memset(&ro, 0, sizeof ro);
    int c;
    int64_t iv;
    double dv;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            ro.renderer = ca_renderer_from_name(optarg);
            if (ro.renderer == CA_RENDERER_COUNT)
                return cli_usage("render", "--renderer '%s': expected auto, builtin or fluidsynth", optarg);
            break;
        case 'R':
            if (!cli_int("render", "--rate", optarg, 8000, 192000, &iv)) return CLI_USAGE;
            ro.rate = (int)iv;
            break;
        case 'm': ro.channels = 1; break;
        case 's': ro.soundfont = optarg; break;
        case 'g':
            if (!cli_float("render", "--gain", optarg, 0.001, 100.0, &dv)) return CLI_USAGE;
            ro.gain = (float)dv;
            break;
        case 'S':
            if (!cli_int("render", "--seed", optarg, 0, INT64_MAX, &iv)) return CLI_USAGE;
            ro.seed = (uint64_t)iv;
            break;
        case 'h': render_help(stdout); return CLI_OK;
        default: return cli_bad_option("render", argv[optind - 1]);
        }
    }
    if (cli_check_positionals("render", argc, argv, optind)) return CLI_USAGE;
    if (argc - optind != 2) {
        if (argc - optind > 2) return cli_bad_option("render", argv[optind + 2]);
        return cli_usage("render", "expected an input MIDI file and an output audio file");
    }
    const char *in = argv[optind], *out = argv[optind + 1];
    ca_render_info info;
    ca_error err;
    memset(&err, 0, sizeof err);
    if (ca_render_file(in, out, &ro, &info, &err) != CA_OK)
        return cli_fail("render", "%s", err.message[0] ? err.message : ca_strerror(err.status));
    printf("%s -> %s: %lld notes, %.1f s of MIDI, %.1f s of audio at %d Hz (%s%s%s)\n", in, out,
           (long long)info.notes, info.midi_seconds, (double)info.frames / info.rate, info.rate,
           ca_renderer_name(info.renderer), info.soundfont[0] ? ", " : "", info.soundfont);
    return CLI_OK;
}

const cli_cmd cli_cmd_render = {"render", "render a MIDI file to WAV, FLAC or OGG", render_run, render_help};
