#!/usr/bin/env bash
# scripts/gpu-check.sh — the CUDA check of issue 7, as one prepared run on a GPU machine: builds
# with CUDA=1, runs the CUDA test suites, runs the GPU benchmark beside PyTorch+cuDNN (the
# workloads of the bench kit's torch_ref.py, at the kit's batch sizes and at batch 256; sampling
# at batch 1; then, shorter, bf16 mixed precision: cantor's --precision bf16 beside PyTorch's
# torch.autocast bf16, training at the kit's batches only) and prints a table with the ratios by
# precision, trains a few steps with `cantor train --device cuda:0`, then runs the whole test
# suite with the time left. Everything it prints also goes to
# $OUT/gpu-check.log when $OUT is set, with the JSON lines and the table beside it.
#
# usage:
#   scripts/gpu-check.sh             on the GPU machine, from anywhere (cds to the repo root)
#   scripts/gpu-check.sh --prepare   here, before the call: copies ../shared/bench into
#                                    ./.bench-kit (ignored; carry it) with the Debian packages
#                                    the build needs if the GPU machine lacks them (.bench-kit/debs)
#   scripts/gpu-check.sh --force     go on without a GPU (to try the script on a CPU machine)
#
# Environment: KIT (the bench kit; default ./.bench-kit, then ../shared/bench), OUT (where the
# log, the JSON lines and the table are copied), GPU_CHECK_SECONDS (the whole run's budget,
# default 470: the check must end within 8 minutes), BUILD (default build/release-cuda),
# PYTHON (an interpreter with torch; default: the first of python3, /opt/torch/.venv/bin/python3,
# /usr/bin/python3 that imports torch), JOBS (make -j and suites at a time; default nproc),
# WORKLOADS (default all five), BIG_BATCH (default 256), SUITES (default: every suite),
# CK_TIMEOUT (Check's per-test timeout, default 120), CUDA_SUITE_SECONDS (each CUDA suite's budget,
# default 180; the four run side by side), GPU_CHECK_KIT_DEPS=1 (take the libraries
# from .bench-kit/debs even where the machine has them: to try that path).
# Exit status: 0 every step passed, 1 a step failed or no GPU, 2 a usage error.
set -u -o pipefail
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD

force=0
case "${1:-}" in
    "") ;;
    --force) force=1 ;;
    --prepare) prepare=1 ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-check: unknown option '$1' (--prepare, --force or nothing; --help)" >&2; exit 2 ;;
esac

# ---- --prepare (here, not on the GPU machine) ---------------------------------------------------
# The Debian packages: static libraries only are linked from them (libopenblas.a, libcheck_pic.a,
# libsubunit.a, libz.a), so the binaries need nothing of them at run time; make is a fallback.
DEB_NAMES=(libopenblas-pthread-dev check libsubunit-dev zlib1g-dev make)
if [ "${prepare:-0}" = 1 ]; then
    src=${KIT:-../shared/bench}
    if [ ! -f "$src/torch_ref.py" ]; then
        echo "gpu-check --prepare: $src/torch_ref.py not found (set KIT to the bench kit)" >&2; exit 1
    fi
    rm -rf .bench-kit && mkdir -p .bench-kit/debs || exit 1
    cp -r "$src"/. .bench-kit/ || exit 1
    rm -f .bench-kit/sgemm_peak
    if ! (cd .bench-kit/debs && apt-get download "${DEB_NAMES[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed'); then
        echo "gpu-check --prepare: apt-get download failed; trying /var/cache/apt/archives" >&2
    fi
    for n in "${DEB_NAMES[@]}"; do
        ls .bench-kit/debs/"${n}"_*.deb >/dev/null 2>&1 && continue
        cp /var/cache/apt/archives/"${n}"_*_amd64.deb .bench-kit/debs/ 2>/dev/null \
            || echo "gpu-check --prepare: no .deb of $n: the GPU machine must have it installed" >&2
    done
    if ! git check-ignore -q .bench-kit/torch_ref.py 2>/dev/null; then
        echo "gpu-check --prepare: warning: .bench-kit is not ignored by git (add '/.bench-kit/' to .gitignore)" >&2
    fi
    echo "gpu-check --prepare: .bench-kit ready ($(du -sh .bench-kit | cut -f1)):"
    find .bench-kit -maxdepth 2 -type f | sort | sed 's/^/  /'
    exit 0
fi

# ---- logging, time budget, steps ------------------------------------------------------------------
START=$(date +%s)
TOTAL=${GPU_CHECK_SECONDS:-470}
B=${BUILD:-build/release-cuda}
W=$B/gpu-check                      # JSON lines, the table, the tiny corpus
mkdir -p "$W" || exit 1
rm -f "$W"/*.jsonl "$W/gpu-report.md"   # nothing of an earlier run goes back as this one's
LOG=$W/gpu-check.log
if [ -n "${OUT:-}" ]; then mkdir -p "$OUT" && LOG=$OUT/gpu-check.log; fi   # there even if killed
: > "$LOG"
exec > >(tee -a "$LOG") 2>&1
TEE_PID=$!

declare -a SUMMARY=()
FAILED=0

finish() {
    local rc=$1
    echo
    echo "==== summary ($(( $(date +%s) - START )) s of ${TOTAL} s) ===="
    for s in "${SUMMARY[@]}"; do echo "  $s"; done
    [ "$rc" = 0 ] && [ "$FAILED" = 0 ] && echo "gpu-check: every step passed" || echo "gpu-check: FAILED (see above)"
    if [ -n "${OUT:-}" ]; then
        mkdir -p "$OUT" && for f in cantor-cuda.jsonl pytorch-cuda.jsonl pytorch-cuda-fp32.jsonl gpu-report.md; do
            [ -s "$W/$f" ] && cp "$W/$f" "$OUT/"
        done
    fi
    # let tee write the last lines before the log is copied
    exec >&- 2>&-
    wait "$TEE_PID" 2>/dev/null
    if [ "$rc" != 0 ]; then exit "$rc"; fi
    [ "$FAILED" = 0 ] && exit 0 || exit 1
}

left() { echo $(( START + TOTAL - $(date +%s) )); }

# step NAME BUDGET_S CMD...: runs CMD under timeout (the budget, or less when the whole run's time
# is short), prints its time and records the result.
step() {
    local name=$1 budget=$2; shift 2
    local l; l=$(left)
    if [ "$l" -le 10 ]; then
        echo "---- $name: SKIPPED (out of time: ${l} s left of ${TOTAL})"
        SUMMARY+=("SKIPPED   $name (out of time)"); FAILED=1; return 124
    fi
    [ "$budget" -gt $(( l - 5 )) ] && budget=$(( l - 5 ))
    echo "---- $name (at most ${budget} s; $(date -u +%H:%M:%S) UTC)"
    local t0 rc; t0=$(date +%s)
    if declare -F "$1" >/dev/null; then      # a function of this script: in a child bash
        export -f -- "${1?}"
        timeout -k 5 "$budget" bash -c '"$@"' _ "$@"
    else
        timeout -k 5 "$budget" "$@"
    fi
    rc=$?
    local dt=$(( $(date +%s) - t0 ))
    if [ $rc = 0 ]; then SUMMARY+=("ok        $name (${dt} s)")
    elif [ $rc = 124 ] || [ $rc = 137 ]; then SUMMARY+=("TIMED OUT $name (after ${dt} s, budget ${budget} s)"); FAILED=1
    else SUMMARY+=("FAILED    $name (exit $rc, ${dt} s)"); FAILED=1
    fi
    echo "---- $name: exit $rc, ${dt} s"
    return $rc
}
note() { echo "note: $*"; SUMMARY+=("note      $*"); }

# ---- 0. the machine -----------------------------------------------------------------------------
echo "gpu-check: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(uname -srm), $(nproc) cores, repo $ROOT"
if rev=$(git rev-parse --short HEAD 2>/dev/null); then
    echo "git: $rev ($(git status --porcelain 2>/dev/null | wc -l) changed or new files)"
fi
SMI=$(command -v nvidia-smi || ls /usr/local/nvidia/bin/nvidia-smi 2>/dev/null)
if [ -z "$SMI" ]; then
    echo "gpu-check: no nvidia-smi on this machine: it is not a GPU machine (run this on the device machine)"
    if [ $force = 0 ]; then SUMMARY+=("FAILED    no nvidia-smi: not a GPU machine"); FAILED=1; finish 1; fi
    note "--force: going on without a GPU"
else
    "$SMI" -L
    "$SMI" --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
fi
NVCC=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
if [ -n "$NVCC" ]; then echo "nvcc: $NVCC: $("$NVCC" --version | grep -i release)"
else echo "gpu-check: nvcc not found (neither on PATH nor /usr/local/cuda/bin): no CUDA build"; fi
echo "cc: $(${CC:-gcc} --version 2>/dev/null | head -1 || echo 'no C compiler')"

PY=${PYTHON:-}
if [ -z "$PY" ]; then
    for p in python3 /opt/torch/.venv/bin/python3 /usr/bin/python3; do
        if command -v "$p" >/dev/null && "$p" -c 'import torch' 2>/dev/null; then PY=$p; break; fi
    done
fi
if [ -n "$PY" ]; then
    "$PY" -c 'import sys, torch
c = torch.cuda.is_available()
print("python: %s %s; torch %s, CUDA %s, cuDNN %s, device: %s" % (sys.executable, sys.version.split()[0],
      torch.__version__, torch.version.cuda, torch.backends.cudnn.version() if c else None,
      torch.cuda.get_device_name(0) if c else "none"))' || PY=""
fi
[ -z "$PY" ] && note "no Python with torch (tried python3, /opt/torch/.venv/bin/python3, /usr/bin/python3; set PYTHON): no PyTorch reference"

KIT_DIR=""
for k in "${KIT:-}" .bench-kit ../shared/bench; do
    if [ -n "$k" ] && [ -f "$k/torch_ref.py" ]; then KIT_DIR=$(cd "$k" && pwd); break; fi
done
if [ -n "$KIT_DIR" ]; then echo "kit: $KIT_DIR"
else note "the bench kit was not found (\$KIT, ./.bench-kit, ../shared/bench): no PyTorch reference (run scripts/gpu-check.sh --prepare here and carry .bench-kit)"; fi

# ---- 1. what the build needs: the machine's own libraries, else the kit's Debian packages -------
DEPS=/tmp/cantor-gpu-deps
DEBS=""
for d in "$KIT_DIR/debs" .bench-kit/debs; do [ -d "$d" ] && { DEBS=$d; break; }; done
LIBDIR=$DEPS/usr/lib/x86_64-linux-gnu
unpack() {  # unpack PACKAGE's .deb from the kit into $DEPS (never into /)
    local f; f=$(find "$DEBS" -maxdepth 1 -name "$1_*.deb" | head -1)
    if [ -z "$f" ]; then echo "gpu-check: $1 is needed and the kit has no .deb of it ($DEBS)"; return 1; fi
    mkdir -p "$DEPS"
    if command -v dpkg-deb >/dev/null; then dpkg-deb -x "$f" "$DEPS"
    else (t=$(mktemp -d) && cd "$t" && ar x "$f" && tar -xf data.tar.* -C "$DEPS" && rm -rf "$t"); fi
}
MAKEARGS=(CUDA=1)
# GPU_CHECK_KIT_DEPS=1 takes every library from the kit (to try that path on a machine that has them)
KIT_DEPS=${GPU_CHECK_KIT_DEPS:-0}
have_pc() { [ "$KIT_DEPS" != 1 ] && command -v pkg-config >/dev/null && pkg-config --exists "$1" 2>/dev/null; }
ZLIB_KIT=0
if [ "$KIT_DEPS" = 1 ] || ! printf '#include <zlib.h>\nint main(void){return zlibVersion()==0;}\n' | ${CC:-gcc} -x c - -lz -o /tmp/cantor-zlib-probe >/dev/null 2>&1; then
    if unpack zlib1g-dev; then
        rm -f "$LIBDIR"/libz.so                       # link libz.a
        ZLIB_KIT=1; note "zlib: the machine lacks its headers/library: using the kit's zlib1g-dev (static)"
    fi
fi
if have_pc openblas; then
    echo "deps: OpenBLAS from the machine ($(pkg-config --modversion openblas))"
    [ $ZLIB_KIT = 1 ] && MAKEARGS+=("BLAS_CFLAGS=$(pkg-config --cflags openblas) -I$DEPS/usr/include")
elif unpack libopenblas-pthread-dev; then
    note "OpenBLAS: not on the machine (pkg-config openblas): using the kit's libopenblas-pthread-dev (static)"
    MAKEARGS+=(HAVE_OPENBLAS=1 "BLAS_CFLAGS=-I$DEPS/usr/include/x86_64-linux-gnu/openblas-pthread$([ $ZLIB_KIT = 1 ] && echo " -I$DEPS/usr/include")"
               "BLAS_LIBS=$LIBDIR/openblas-pthread/libopenblas.a")
else
    note "OpenBLAS: neither on the machine nor in the kit: the build will fail (engine/cpu needs cblas.h)"
fi
if have_pc check; then
    echo "deps: Check from the machine ($(pkg-config --modversion check))"
elif unpack check && unpack libsubunit-dev; then
    note "Check: not on the machine (pkg-config check): using the kit's check + libsubunit-dev (static)"
    MAKEARGS+=(HAVE_CHECK=1 "CHECK_CFLAGS=-I$DEPS/usr/include -pthread"
               "CHECK_LIBS=$LIBDIR/libcheck_pic.a $LIBDIR/libsubunit.a -lrt -lm -pthread")
else
    note "Check: neither on the machine nor in the kit: the test runner will not link"
fi
[ $ZLIB_KIT = 1 ] && MAKEARGS+=("LDFLAGS=-L$LIBDIR")
if [ -n "$NVCC" ] && [ ! -f /usr/local/cuda/include/cublas_v2.h ]; then
    ch=$(dirname "$(dirname "$(readlink -f "$NVCC")")")
    if [ -f "$ch/include/cublas_v2.h" ]; then MAKEARGS+=("CUDA_HOME=$ch" "NVCC=$NVCC"); note "CUDA_HOME=$ch (no /usr/local/cuda/include/cublas_v2.h)"
    else note "cublas_v2.h found neither in /usr/local/cuda/include nor $ch/include: the CUDA build may fail"; fi
fi
MAKE="make"
if ! command -v make >/dev/null; then
    if unpack make; then MAKE=$DEPS/usr/bin/make; note "make: not on the machine: using the kit's"
    else echo "gpu-check: no make on this machine and none in the kit"; SUMMARY+=("FAILED    no make"); FAILED=1; finish 1; fi
fi
MAKEARGS+=("BUILD=$B")
JOBS=${JOBS:-$(nproc)}
echo "make arguments: ${MAKEARGS[*]}"

# ---- 2. build --------------------------------------------------------------------------------------
TEST_BIN=$B/tests/run_tests
BENCH=$B/bench/bench_rnn
export B ROOT TEST_BIN BENCH
step "build: make CUDA=1 all $TEST_BIN" 240 "$MAKE" -j"$JOBS" "${MAKEARGS[@]}" all "$TEST_BIN"
step "build: $BENCH" 90 "$MAKE" -j"$JOBS" "${MAKEARGS[@]}" "$BENCH"
[ -x "$B/cantor" ] && "$B/cantor" --version

# ---- 3. the CUDA test suites -------------------------------------------------------------------------
run_suite() {  # SUITE: one Check suite (CK_RUN_SUITE), from tests/ as `make test` runs them
    local out rc
    out=$(cd tests && CK_RUN_SUITE=$1 CK_DEFAULT_TIMEOUT=${CK_TIMEOUT:-120} CANTOR_BIN=$ROOT/$B/cantor "../$TEST_BIN" 2>&1)
    rc=$?
    echo "$out"
    if echo "$out" | grep -q 'Checks: 0,'; then echo "gpu-check: suite '$1' ran no checks (is it in the runner?)"; return 3; fi
    # on a GPU machine a skipped device test is a failure: the CUDA runtime could not use the GPU
    # (e.g. a driver older than this CUDA toolkit needs), and a 100% line would hide it. Only
    # "needs N CUDA devices" (a multi-GPU test on a one-GPU machine) is a fair skip.
    local bad
    bad=$(echo "$out" | grep 'skipped —' | grep -v 'skipped — needs [0-9]* CUDA devices')
    if [ -n "$bad" ]; then
        echo "gpu-check: suite '$1' SKIPPED its device tests on a GPU machine:"; echo "$bad" | head -1
        return 4
    fi
    return $rc
}
if [ -x "$TEST_BIN" ]; then
    # the four side by side (each test forks and starts its own CUDA context and cuBLAS handle,
    # about a second each: cuda_rnn alone is some 40 of them), each within CUDA_SUITE_SECONDS
    CS=${CUDA_SUITE_SECONDS:-180}
    l=$(left); [ "$CS" -gt $(( l - 20 )) ] && CS=$(( l - 20 ))
    echo "---- tests: suites cuda, cuda_kernels, cuda_rnn, data_parallel side by side (at most ${CS} s each; $(date -u +%H:%M:%S) UTC)"
    export -f run_suite
    t0=$(date +%s)
    pids=()
    for s in cuda cuda_kernels cuda_rnn data_parallel; do
        ( timeout -k 5 "$CS" bash -c 'run_suite "$1"' _ "$s" > "$W/suite-$s.txt" 2>&1; echo $? > "$W/suite-$s.rc" ) &
        pids+=($!)
    done
    wait "${pids[@]}"   # (a bare wait would also wait for the log's tee)
    for s in cuda cuda_kernels cuda_rnn data_parallel; do
        echo "---- tests: suite $s"
        cat "$W/suite-$s.txt"
        rc=$(cat "$W/suite-$s.rc" 2>/dev/null || echo 1)
        echo "---- tests: suite $s: exit $rc"
        if [ "$rc" = 0 ]; then SUMMARY+=("ok        tests: suite $s")
        elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then SUMMARY+=("TIMED OUT tests: suite $s (budget ${CS} s)"); FAILED=1
        else SUMMARY+=("FAILED    tests: suite $s (exit $rc)"); FAILED=1
        fi
    done
    echo "---- the CUDA suites took $(( $(date +%s) - t0 )) s"
else
    note "no test runner ($TEST_BIN): the CUDA suites did not run"
fi

# ---- 4. the GPU benchmark: cantor and PyTorch+cuDNN -----------------------------------------------
WORKLOADS=${WORKLOADS:-"melody melody_gru performance pianoroll_b1 pianoroll_b16"}
export W B ROOT BENCH TEST_BIN PY KIT_DIR WORKLOADS
BIG_BATCH=${BIG_BATCH:-256}
: > "$W/cantor-cuda.jsonl"; : > "$W/pytorch-cuda.jsonl"; : > "$W/pytorch-cuda-fp32.jsonl"
cantor_leg() {  # WORKLOAD MODE [BATCH [PRECISION]]
    "$BENCH" --workload "$1" --mode "$2" --device cuda:0 ${3:+--batch "$3"} ${4:+--precision "$4"} >> "$W/cantor-cuda.jsonl"
}
CANTOR_BENCH_OK=0
if [ -x "$BENCH" ]; then
    CANTOR_BENCH_OK=1
    for w in $WORKLOADS; do
        step "bench cantor $w train (kit batch)" 60 cantor_leg "$w" train
        if [ $? = 2 ] && [ ! -s "$W/cantor-cuda.jsonl" ]; then
            note "bench_rnn --device cuda:0 refused its first run (exit 2, see above): its other legs are skipped"
            CANTOR_BENCH_OK=0
            break
        fi
        step "bench cantor $w train (batch $BIG_BATCH)" 60 cantor_leg "$w" train "$BIG_BATCH"
        step "bench cantor $w sample (batch 1)" 60 cantor_leg "$w" sample
    done
else
    note "no $BENCH: cantor's GPU figures are missing from the table"
fi
if [ -n "$PY" ] && [ -n "$KIT_DIR" ]; then
    torch_leg() {  # JSONL_FILE OPTIONS...: the kit's workloads on CUDA with PyTorch
        local f=$1; shift
        PYTHONUNBUFFERED=1 "$PY" tests/bench/torch_ref_cuda.py --kit "$KIT_DIR" \
            --workload "${WORKLOADS// /,}" "$@" >> "$f"
    }
    step "bench PyTorch+cuDNN (kit batch and $BIG_BATCH; sample)" 150 \
        torch_leg "$W/pytorch-cuda.jsonl" --batch "kit,$BIG_BATCH"
    step "bench PyTorch+cuDNN, TF32 off (train)" 100 \
        torch_leg "$W/pytorch-cuda-fp32.jsonl" --mode train --batch "kit,$BIG_BATCH" --strict-fp32
fi
# bf16 mixed precision, kept short (training at the kit's batches; the lines carry "precision":
# "bf16", so they share the files above and the report matches them by precision)
if [ $CANTOR_BENCH_OK = 1 ]; then
    for w in $WORKLOADS; do
        step "bench cantor $w train bf16 (kit batch)" 40 cantor_leg "$w" train "" bf16
    done
fi
if [ -n "$PY" ] && [ -n "$KIT_DIR" ]; then
    step "bench PyTorch+cuDNN, bf16 autocast (train, kit batch)" 90 \
        torch_leg "$W/pytorch-cuda.jsonl" --mode train --precision bf16
fi
report=(tests/bench/gpu_report.py "$W/cantor-cuda.jsonl" "$W/pytorch-cuda.jsonl" --fp32 "$W/pytorch-cuda-fp32.jsonl")
RPY=${PY:-$(command -v python3 || echo /usr/bin/python3)}
echo
if "$RPY" "${report[@]}" > "$W/gpu-report.md"; then cat "$W/gpu-report.md"
else note "the report (tests/bench/gpu_report.py) failed"; FAILED=1; fi

# ---- 5. cantor train --device cuda:0 on a tiny piano-roll corpus ----------------------------------
if [ -x "$B/cantor" ]; then
    d=$W/poly
    rm -rf "$d" "$W/train-run" && mkdir -p "$d"
    for f in train valid test; do
        for p in 1 2 3 4; do
            [ $p = 1 ] || echo
            for s in $(seq 0 95); do echo "$(( 36 + (s * 7 + p * 3) % 24 )) $(( 60 + (s * 5 + p) % 12 ))"; done
        done > "$d/$f.txt"
    done
    step "cantor corpus build (tiny piano roll)" 30 "$B/cantor" corpus build "$d" -o "$W/poly.corpus" --encoding pianoroll --quiet
    step "cantor train --device cuda:0 (20 steps)" 60 "$B/cantor" train --corpus "$W/poly.corpus" --out "$W/train-run" \
        --steps 20 --batch 4 --window 32 --valid-every 10 --valid-batches 2 --no-samples --device cuda:0
    step "cantor train --device cuda:0 --precision bf16 (20 steps)" 60 "$B/cantor" train --corpus "$W/poly.corpus" \
        --out "$W/train-bf16" --steps 20 --batch 4 --window 32 --valid-every 10 --valid-batches 2 --no-samples \
        --device cuda:0 --precision bf16
    step "cantor sample --device cuda:0" 60 "$B/cantor" sample --ckpt "$W/train-run/model.safetensors" \
        --out "$W/gpu-sample.mid" --length 64 --device cuda:0
    step "cantor eval --device cuda:0 (and the CPU's figure)" 60 bash -c \
        "'$B/cantor' eval --ckpt '$W/train-run/model.safetensors' --corpus '$W/poly.corpus' --split valid --device cuda:0 &&
         '$B/cantor' eval --ckpt '$W/train-run/model.safetensors' --corpus '$W/poly.corpus' --split valid"
    if command -v mpirun > /dev/null && ldd "$B/cantor" 2>/dev/null | grep -q libmpi; then
        step "mpirun -np 1 cantor train --device cuda (NCCL set-up, 10 steps)" 60 mpirun --allow-run-as-root -np 1 \
            "$B/cantor" train --corpus "$W/poly.corpus" --out "$W/train-mpi" --steps 10 --batch 4 --window 32 \
            --valid-every 10 --valid-batches 2 --no-samples --device cuda
    else
        note "no mpirun (or a build without MPI): the NCCL training path was not tried"
    fi
fi

# ---- 6. the whole test suite, with the time left ----------------------------------------------------
# Every suite at once, one process each (the runner is serial; the tests name their temporary files
# by pid, so suites can run side by side); a suite that fails is then rerun alone, to tell a real
# failure from a clash or a timing test disturbed by the load.
SUITES=${SUITES:-$(grep -ho 'suite_create("[A-Za-z0-9_]*")' tests/*/test_*.c | sed 's/.*("\(.*\)")/\1/' | sort -u)}
SD=$ROOT/$W/suites
export SD
one_suite() {  # SUITE: its output in $SD/SUITE.txt, its exit status in $SD/SUITE.rc
    (cd tests && CK_RUN_SUITE=$1 CK_DEFAULT_TIMEOUT=${CK_TIMEOUT:-120} CANTOR_BIN=$ROOT/$B/cantor \
        "../$TEST_BIN" > "$SD/$1.txt" 2>&1; echo $? > "$SD/$1.rc")
}
export -f one_suite
all_suites() {
    # shellcheck disable=SC2016,SC2086  # (expanded by the child bash; SUITES: words)
    printf '%s\n' $SUITES | xargs -P "$JOBS" -I{} bash -c 'one_suite "$1"' _ {}
}
if [ -x "$TEST_BIN" ]; then
    rm -rf "$SD" && mkdir -p "$SD"
    export SUITES JOBS
    step "tests: the whole suite ($(echo "$SUITES" | wc -w) suites, $JOBS at a time)" 300 all_suites
    bad=""
    for s in $SUITES; do
        if [ ! -f "$SD/$s.rc" ]; then echo "  $s: did not finish"; bad="$bad $s"; continue; fi
        printf '  %-14s %s\n' "$s" "$(grep -E '^[0-9]+%: Checks' "$SD/$s.txt" | tail -1)"
        [ "$(cat "$SD/$s.rc")" = 0 ] || { bad="$bad $s"; sed 's/^/      /' "$SD/$s.txt" | grep -v 'skipped —' | tail -40; }
    done
    for s in $bad; do
        [ -f "$SD/$s.rc" ] || continue
        step "tests: suite $s again, alone" 120 run_suite "$s"
    done
    # on a GPU machine no suite may skip its device tests (but a multi-GPU test on one GPU)
    skips=$(cat "$SD"/*.txt 2>/dev/null | grep 'skipped —' | grep -v 'skipped — needs [0-9]* CUDA devices' | sort | uniq -c)
    if [ -n "$skips" ]; then
        echo "gpu-check: device tests SKIPPED on a GPU machine:"; echo "$skips" | head -20
        FAILED=1
    fi
fi
finish 0
