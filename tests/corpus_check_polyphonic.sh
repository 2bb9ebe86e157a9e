#!/bin/sh
# tests/corpus_check_polyphonic.sh [DIR] — a corpus-level check (not a unit test): reads every
# DATASET/SPLIT.txt under DIR (default ../shared/corpora/polyphonic, relative to the repository
# root) with cantor's strict piano-roll text reader (audio/pianoroll.h), checks that writing
# each file back gives the same bytes, and compares each file's statistics (pieces, steps,
# piece lengths, pitch range, silent steps, notes per step, bytes) with the row of DIR/README.md's
# table, read at run time. Exits 0 when every file passes, 1 when any fails, and 0 with a
# message when the folder is absent (a fresh clone has no ../shared).
# Environment: CC (default cc), TOOLS_BUILD (default build/tools).
set -eu
cd "$(dirname "$0")/.."
DIR=${1:-../shared/corpora/polyphonic}
if [ ! -d "$DIR" ]; then
    echo "corpus_check_polyphonic: $DIR is absent; nothing to check (skipped)"
    exit 0
fi
CC=${CC:-cc}
OUT=${TOOLS_BUILD:-build/tools}
mkdir -p "$OUT"
$CC -std=c11 -O2 -Wall -Wextra -I. -o "$OUT/poly_check" tests/tools/poly_check.c audio/pianoroll.c audio/midi_*.c audio/fileio.c -lm
FILES=$(find "$DIR" -mindepth 2 -maxdepth 2 -name '*.txt' | sort)
if [ -z "$FILES" ]; then
    echo "corpus_check_polyphonic: no DATASET/SPLIT.txt files under $DIR (skipped)"
    exit 0
fi
README="$DIR/README.md"
status=0
n=0
for f in $FILES; do
    n=$((n + 1))
    if ! row=$("$OUT/poly_check" "$f"); then
        status=1
        continue
    fi
    if [ ! -f "$README" ]; then
        echo "ok   $f (read, written back identical; no README to compare with)"
        echo "     $row"
    else
        key="$(echo "$row" | cut -d'|' -f1-3)|"
        want=$(grep -F "$key" "$README" | head -1 || true)
        # every column must match exactly but the mean notes per step (awk field 11), which the
        # README gives to 2 decimals and may round differently: within 0.01
        verdict=$(printf '%s\n%s\n' "$row" "$want" | awk -F'|' '
            NR == 1 { for (i = 1; i <= NF; i++) a[i] = $i; n = NF }
            NR == 2 { m = NF; for (i = 1; i <= NF; i++) b[i] = $i }
            END {
                if (m != n) { print "bad"; exit }
                for (i = 1; i <= n; i++) {
                    if (i == 11) { d = a[i] - b[i]; if (d < 0) d = -d; if (d > 0.0100001) { print "bad"; exit }
                                   if (d > 0) note = 1 }
                    else if (a[i] != b[i]) { print "bad"; exit }
                }
                print note ? "near" : "same"
            }')
        if [ "$verdict" = same ]; then
            echo "ok   $f (read, written back identical, statistics match the README)"
        elif [ "$verdict" = near ]; then
            echo "ok   $f (read, written back identical, statistics match the README; mean notes/step"
            echo "     differs in the last digit, the README's rounding: computed $(echo "$row" | cut -d'|' -f11 | tr -d ' '),"
            echo "     README $(echo "$want" | cut -d'|' -f11 | tr -d ' '))"
        else
            echo "FAIL $f: statistics differ from the README"
            echo "     computed: $row"
            echo "     README:   ${want:-(no row for this file)}"
            status=1
        fi
    fi
done
if [ $status -eq 0 ]; then
    echo "corpus_check_polyphonic: all $n files passed"
else
    echo "corpus_check_polyphonic: some of the $n files failed"
fi
exit $status
