#!/bin/sh
# tests/corpus_check_build.sh — a corpus-level check (not a unit test): builds corpus files in
# every encoding (melody, performance, pianoroll) from
#   - ../shared/corpora/midi/nottingham (relative to the repository root), when present;
#   - the default corpus (Debian's openttd-openmsx + simutrans-data), when installed;
# prints each build's statistics, and checks each file (reopen, verify, stats read back, the
# same bytes with 1 thread, one DataLoader epoch). A missing folder or package is reported and
# skipped, not a failure. Exits 1 when a check fails.
# Environment: CC (default cc), BUILD (library build dir, default build/release), OUT (corpus
# files, default build/corpus_check), THREADS (default 2).
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/release}
OUT=${OUT:-build/corpus_check}
CC=${CC:-cc}
THREADS=${THREADS:-2}
NOTT=../shared/corpora/midi/nottingham
make -s BUILD="$BUILD" "$BUILD/libcantor.a"
mkdir -p "$OUT"
LIBS="$(pkg-config --libs openblas 2>/dev/null || echo -lopenblas) $(pkg-config --libs sndfile 2>/dev/null || true) -lz -lm -pthread"
$CC -std=c11 -O2 -Wall -Wextra -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -I. -pthread \
    -o "$OUT/corpus_build_check" tests/corpora/corpus_build_check.c "$BUILD/libcantor.a" $LIBS
set -- "$OUT" --threads "$THREADS"
if [ -d "$NOTT" ]; then
    set -- "$@" --dir nottingham "$NOTT"
else
    echo "corpus_check_build: $NOTT is absent; the nottingham corpus is skipped"
fi
set -- "$@" --default
"$OUT/corpus_build_check" "$@"
