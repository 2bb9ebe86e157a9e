#!/bin/sh
# tests/check_mido_interop.sh — does another tool read what cantor writes? Builds
# tests/tools/midi_interop_write.c, which writes MIDI files with cantor (format 1 from notes,
# with and without running status, SMPTE, and format 0 with every kind of event) and, beside
# each, what cantor means it to contain; then Debian's python3-mido reads every file and the
# two descriptions must agree line for line (notes, tempos, time signatures, every event, End of
# Track). The other direction (cantor reads mido's files) is in the unit tests
# (tests/fixtures/midi/, tests/gen_midi_fixtures.py).
# Exits 0 when they agree, 1 when not, and 0 with a message when python3-mido is absent.
# Environment: PYTHON (default /usr/bin/python3), CC (default cc), TOOLS_BUILD (build/tools).
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-/usr/bin/python3}
if ! "$PYTHON" -c 'import mido' 2>/dev/null; then
    echo "check_mido_interop: python3-mido is not installed (apt-get install python3-mido); skipped"
    exit 0
fi
CC=${CC:-cc}
OUT=${TOOLS_BUILD:-build/tools}
WORK=tests/tmp/mido_interop_$$
mkdir -p "$OUT" "$WORK"
trap 'rm -rf "$WORK"' EXIT
$CC -std=c11 -O2 -Wall -Wextra -I. -o "$OUT/midi_interop_write" tests/tools/midi_interop_write.c audio/midi_*.c audio/fileio.c -lm
"$OUT/midi_interop_write" "$WORK"
"$PYTHON" - "$WORK" <<'PY'
import glob, os, sys
sys.path.insert(0, "tests")
from gen_midi_fixtures import describe  # what mido reads, in the same format

def same(a, b):
    ta, tb = a.split(), b.split()
    if len(ta) != len(tb) or ta[0] != tb[0]:
        return False
    for x, y in zip(ta, tb):
        if x == y:
            continue
        try:
            if abs(float(x) - float(y)) > 1e-6:
                return False
        except ValueError:
            return False
    return True

bad = 0
files = sorted(glob.glob(os.path.join(sys.argv[1], "*.mid")))
for mid in files:
    want = open(mid[:-4] + ".txt").read().splitlines()
    got = describe(mid).splitlines()
    diff = [(i, w, g) for i, (w, g) in enumerate(zip(want, got)) if not same(w, g)]
    if len(want) != len(got) or diff:
        bad += 1
        print("MISMATCH %s: cantor %d lines, mido %d lines" % (os.path.basename(mid), len(want), len(got)))
        for i, w, g in diff[:10]:
            print("  line %d: cantor: %s\n           mido:   %s" % (i + 1, w, g))
    else:
        print("ok  %s: mido reads %d events/notes/tempo lines as cantor wrote them" % (os.path.basename(mid), len(got)))
print("check_mido_interop: %d of %d files agree" % (len(files) - bad, len(files)))
sys.exit(1 if bad or not files else 0)
PY
