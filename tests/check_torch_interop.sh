#!/bin/sh
# tests/check_torch_interop.sh — does PyTorch read cantor's composer checkpoints and compute the
# same logits? Builds tests/tools/torch_interop_write.c against the library, which trains
# small composers (LSTM, GRU and Elman RNN; melody, performance, token and piano-roll models;
# batch 1, where stepping uses the worker thread, and larger) for a few Adam steps, saves each
# with cc_save and dumps the logits of a fixed input, computed in one forward pass and step
# by step; then tests/torch_interop.py parses each safetensors file by hand (Debian has no
# python3-safetensors), builds the torch model from its "cantor_config" metadata, runs the
# same input and compares the logits (1e-4 relative). The other direction (cantor loads a
# file PyTorch wrote) is in the unit tests (tests/models/test_interop.c).
# Exits 0 when they agree, 1 when not, and 0 with a message when python3-torch is absent.
# Environment: PYTHON (default /usr/bin/python3), CC (default cc), BUILD (the library's build
# folder, default build/release; made with `make` when missing), TOOLS_BUILD (build/tools).
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-/usr/bin/python3}
if ! "$PYTHON" -c 'import torch, numpy' 2>/dev/null; then
    echo "check_torch_interop: python3-torch (with python3-numpy) is not installed (apt-get install python3-torch); skipped"
    exit 0
fi
CC=${CC:-cc}
BUILD=${BUILD:-build/release}
OUT=${TOOLS_BUILD:-build/tools}
WORK=tests/tmp/torch_interop_$$
mkdir -p "$OUT" "$WORK"
trap 'rm -rf "$WORK"' EXIT
make -s BUILD="$BUILD" "$BUILD/libcantor.a"
# shellcheck disable=SC2046
$CC -std=c11 -O2 -Wall -Wextra -I. -pthread -o "$OUT/torch_interop_write" \
    tests/tools/torch_interop_write.c "$BUILD/libcantor.a" $(pkg-config --libs openblas) -lz -lm
"$OUT/torch_interop_write" "$WORK"
"$PYTHON" tests/torch_interop.py "$WORK"
