#!/bin/sh
# tests/fuzz/run_fuzz.sh SECONDS [libFuzzer flags...] — builds the MIDI fuzzer with clang
# (libFuzzer + AddressSanitizer + UBSan) and runs it for SECONDS on the seed corpus
# tests/fuzz/corpus_midi/ (read only; new inputs go to build/fuzz/corpus/).
#
# A crash leaves build/fuzz/artifacts/crash-* (or leak-*, timeout-*, oom-*) and a non-zero exit.
# Keep every one as a regression test: copy it to tests/fixtures/midi/regress/<what-it-broke>.mid,
# fix the bug, and `make test` runs it from then on (test_fuzz_regressions).
#
# Environment: CLANG (default clang), FUZZ_BUILD (default build/fuzz), FUZZ_SOURCES (default
# audio/*.c, the brief's build line).
set -eu
cd "$(dirname "$0")/../.."
if [ $# -lt 1 ]; then
    echo "usage: tests/fuzz/run_fuzz.sh SECONDS [libFuzzer flags...]" >&2
    exit 2
fi
SECS=$1
shift
case $SECS in ''|*[!0-9]*) echo "run_fuzz: SECONDS must be a whole number, not '$SECS'" >&2; exit 2;; esac
CLANG=${CLANG:-clang}
OUT=${FUZZ_BUILD:-build/fuzz}
SOURCES=${FUZZ_SOURCES:-$(echo audio/*.c)}
if ! command -v "$CLANG" >/dev/null 2>&1; then
    echo "run_fuzz: $CLANG not found; install it with 'apt-get install clang' (libFuzzer comes with it)" >&2
    exit 1
fi
mkdir -p "$OUT/corpus" "$OUT/artifacts"
echo "run_fuzz: building $OUT/fuzz_midi"
# shellcheck disable=SC2086
"$CLANG" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I. \
    -o "$OUT/fuzz_midi" tests/fuzz/fuzz_midi.c $SOURCES -lm
echo "run_fuzz: fuzzing for $SECS s (seeds: tests/fuzz/corpus_midi, new inputs: $OUT/corpus)"
set +e
"$OUT/fuzz_midi" -max_total_time="$SECS" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -dict=tests/fuzz/midi.dict -artifact_prefix="$OUT/artifacts/" "$@" "$OUT/corpus" tests/fuzz/corpus_midi
rc=$?
set -e
if [ $rc -ne 0 ]; then
    echo "run_fuzz: the fuzzer stopped with status $rc; the input is in $OUT/artifacts/:" >&2
    ls -l "$OUT/artifacts/" >&2
    echo "run_fuzz: copy it to tests/fixtures/midi/regress/ and fix the bug" >&2
    exit $rc
fi
echo "run_fuzz: no crash in $SECS s"
