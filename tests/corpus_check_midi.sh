#!/bin/sh
# tests/corpus_check_midi.sh [DIR] — a corpus-level check (not a unit test): parses every MIDI
# file under DIR (default ../shared/corpora/midi/nottingham, relative to the repository root)
# with cantor's reader, extracts notes and tempo maps, rewrites each file in memory and reads it
# back, and prints counts per subfolder. Exits 0 when all of them pass, 1 when any fails, and 0
# with a message when the folder is absent (a fresh clone has no ../shared).
# Environment: CC (default cc), TOOLS_BUILD (default build/tools).
set -eu
cd "$(dirname "$0")/.."
DIR=${1:-../shared/corpora/midi/nottingham}
if [ ! -d "$DIR" ]; then
    echo "corpus_check_midi: $DIR is absent; nothing to check (skipped)"
    exit 0
fi
CC=${CC:-cc}
OUT=${TOOLS_BUILD:-build/tools}
mkdir -p "$OUT"
$CC -std=c11 -O2 -Wall -Wextra -I. -o "$OUT/midi_corpus_check" tests/tools/midi_corpus_check.c audio/midi_*.c audio/fileio.c -lm
echo "corpus_check_midi: checking every MIDI file under $DIR"
"$OUT/midi_corpus_check" "$DIR"
