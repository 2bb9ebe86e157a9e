#!/bin/sh
# tests/check_mpi.sh — data-parallel training over several processes (engine/parallel/) under
# Open MPI's mpirun, on the CPU. Builds tests/tools/dist_train_check.c against the library,
# then:
#   1. the collectives on 2 and 3 ranks (fixed-order sums bit for bit, max, mean, doubles,
#      integers, allgather, broadcast, the parameter-divergence check);
#   2. trains a small 2-layer LSTM with Adam and gradient clipping for 10 steps (padded
#      variable-length batches, global batch 8, an epoch boundary) on 2 ranks, each taking its
#      shard of every global batch, and compares the final parameters
#        - bit for bit with one process that computes the same 2 shards and combines them in
#          the same fixed order (so the MPI path adds nothing but the reduction),
#        - within 1e-5 (max |a - b| / max |b|) with plain single-process training on the same
#          global batches (different float summation order inside the GEMMs),
#      and the same for 3 ranks (uneven shards 2/3/3), and with MPI_Allreduce;
#   3. resumes the 2-rank run from a checkpoint written by rank 0 after step 4: the result
#      equals the uninterrupted run bit for bit; resuming it with 3 ranks fails with
#      "resume it with mpirun -np 2";
#   then the collectives and a short training on 2 ranks under AddressSanitizer + UBSan (when
#      make test-asan has built ASAN_BUILD, default build/asan);
#   4. once `cantor train` is data-parallel: `mpirun -np 2 bin/cantor train` against one
#      process (1e-5), a resumed 2-process run against an uninterrupted one (bit for bit), and
#      the refusal to resume it with 3 processes; the gradients through the host round trip of
#      GPU blocks without NCCL (CANTOR_DIST_STAGE=host: bit for bit); --device cpu (bit for
#      bit); --device cuda:1 (a usage error) and, without a GPU, --device cuda and --precision
#      bf16: every process fails at once, the message printed once; --lr-schedule plateau and
#      --early-stop on 2 processes against one (1e-5; rank 0's decisions reach every process).
# Exits 0 when every check passes, 1 when one fails, and 0 with a "skipped" line when mpirun
# or Open MPI's development files are missing. As root it passes --allow-run-as-root.
# Environment: BUILD (the library's build folder, default build/release), CC (default cc),
# ASAN_BUILD (default build/asan), CANTOR (default bin/cantor).
set -eu
cd "$(dirname "$0")/.."
if ! command -v mpirun >/dev/null 2>&1; then
    echo "check_mpi: mpirun not found (apt-get install openmpi-bin libopenmpi-dev); skipped"
    exit 0
fi
if ! pkg-config --exists ompi-c 2>/dev/null; then
    echo "check_mpi: Open MPI's development files are missing (apt-get install libopenmpi-dev); skipped"
    exit 0
fi
BUILD=${BUILD:-build/release}
CC=${CC:-cc}
make -s BUILD="$BUILD" "$BUILD/libcantor.a"
TOOL=$BUILD/tools/dist_train_check
mkdir -p "$BUILD/tools"
# the library's optional dependencies (only what the linked objects use is pulled in)
EXTRA=
for p in sndfile fluidsynth; do pkg-config --exists $p 2>/dev/null && EXTRA="$EXTRA $(pkg-config --libs $p)"; done
[ -f /usr/include/portmidi.h ] && EXTRA="$EXTRA -lportmidi"
$CC -std=c11 -O2 -g -Wall -Wextra -Wshadow -Wvla -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -I. -pthread \
    -o "$TOOL" tests/tools/dist_train_check.c "$BUILD/libcantor.a" \
    $(pkg-config --libs openblas ompi-c) $EXTRA -lz -lm -pthread

WORK=tests/tmp/check_mpi_$$
mkdir -p "$WORK/ckpt"
trap 'rm -rf "$WORK"' EXIT
# One BLAS thread per process: the ranks share the cores, and every run (one process or
# several) then computes each shard with the same kernels.
export OPENBLAS_NUM_THREADS=1
# For programs built with AddressSanitizer (the ASan tool below; bin/cantor after make
# test-asan): Open MPI's own leaks at MPI_Finalize are suppressed (see tests/lsan_mpi.supp).
# These settings change nothing for other programs.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0"
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$PWD/tests/lsan_mpi.supp:print_suppressions=0:fast_unwind_on_malloc=0"
export OMPI_MCA_mca_base_component_disable_dlclose=1
MPIRUN="mpirun --oversubscribe -x OPENBLAS_NUM_THREADS -x ASAN_OPTIONS -x LSAN_OPTIONS"
MPIRUN="$MPIRUN -x OMPI_MCA_mca_base_component_disable_dlclose"
[ "$(id -u)" = 0 ] && MPIRUN="$MPIRUN --allow-run-as-root"
mpi() { np=$1; shift; $MPIRUN -np "$np" "$TOOL" "$@" < /dev/null; }

echo "check_mpi: collectives"
mpi 2 primitives
mpi 3 primitives

echo "check_mpi: training on 2 ranks, and alone"
mpi 2 train "$WORK/ranks2.npy" --steps 10 --save-at 4 "$WORK/ckpt" > "$WORK/ranks2.log"
tail -n 1 "$WORK/ranks2.log"
"$TOOL" train "$WORK/sim2.npy" --steps 10 --simulate 2 > /dev/null
"$TOOL" train "$WORK/single.npy" --steps 10 > "$WORK/single.log"
tail -n 1 "$WORK/single.log"
"$TOOL" compare "$WORK/ranks2.npy" "$WORK/sim2.npy" 0
"$TOOL" compare "$WORK/ranks2.npy" "$WORK/single.npy" 1e-5

echo "check_mpi: 3 ranks (uneven shards), and MPI_Allreduce"
mpi 3 train "$WORK/ranks3.npy" --steps 10 > /dev/null
"$TOOL" train "$WORK/sim3.npy" --steps 10 --simulate 3 > /dev/null
"$TOOL" compare "$WORK/ranks3.npy" "$WORK/sim3.npy" 0
"$TOOL" compare "$WORK/ranks3.npy" "$WORK/single.npy" 1e-5
mpi 2 --mpi-reduce train "$WORK/mpired2.npy" --steps 10 > /dev/null
"$TOOL" compare "$WORK/mpired2.npy" "$WORK/single.npy" 1e-5

echo "check_mpi: resume with the same world, and with another"
mpi 2 train "$WORK/resumed2.npy" --steps 10 --resume "$WORK/ckpt" > /dev/null
"$TOOL" compare "$WORK/resumed2.npy" "$WORK/ranks2.npy" 0
if mpi 3 train "$WORK/wrong.npy" --steps 10 --resume "$WORK/ckpt" > "$WORK/wrong.log" 2>&1; then
    echo "check_mpi: resuming a 2-process run with 3 processes did not fail"
    exit 1
fi
if ! grep -q "saved by 2 processes and is resumed by 3; resume it with mpirun -np 2" "$WORK/wrong.log"; then
    echo "check_mpi: resuming with 3 processes failed without the expected message:"
    cat "$WORK/wrong.log"
    exit 1
fi
echo "check_mpi: under AddressSanitizer + UBSan"
ASAN_BUILD=${ASAN_BUILD:-build/asan}
if [ ! -f "$ASAN_BUILD/libcantor.a" ]; then
    echo "check_mpi: $ASAN_BUILD/libcantor.a is not built (make test-asan builds it): skipped"
else
    make -s SAN=1 BUILD="$ASAN_BUILD" "$ASAN_BUILD/libcantor.a"
    $CC -std=c11 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
        -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -I. -pthread -o "$TOOL-asan" tests/tools/dist_train_check.c \
        "$ASAN_BUILD/libcantor.a" $(pkg-config --libs openblas ompi-c) $EXTRA -lz -lm -pthread
    mpi_asan() { np=$1; shift; $MPIRUN -np "$np" "$TOOL-asan" "$@" < /dev/null; }
    mpi_asan 2 primitives
    mpi_asan 2 train "$WORK/asan2.npy" --steps 6 > /dev/null
fi

# 4. `mpirun -np 2 cantor train` itself, once the trainer is data-parallel (it then prints a
#    "data-parallel: 2 processes" line; before that the section says so and is skipped).
CANTOR=${CANTOR:-bin/cantor}
if [ ! -x "$CANTOR" ]; then
    echo "check_mpi: $CANTOR is not built: the cantor train checks are skipped"
elif ! "$CANTOR" corpus build --default -o "$WORK/d.corpus" --encoding melody --quiet > /dev/null 2>&1; then
    echo "check_mpi: no default corpus (make deps installs its MIDI packages): the cantor train checks are skipped"
else
    TA="--corpus $WORK/d.corpus --batch 9 --window 32 --layers 2 --hidden 32 --embed 16 --workers 1 --seed 3
        --valid-every 6 --no-samples --checkpoint-every 5 --spike-factor 0"
    $MPIRUN -np 2 "$CANTOR" train $TA --steps 12 --out "$WORK/t2" < /dev/null > "$WORK/t2.log" 2>&1 || true
    if ! grep -q "^data-parallel: 2 processes" "$WORK/t2.log"; then
        echo "check_mpi: cantor train is not data-parallel yet (no 'data-parallel: 2 processes' line): skipped"
    else
        echo "check_mpi: cantor train on 2 processes, alone, and resumed"
        "$CANTOR" train $TA --steps 12 --out "$WORK/t1" > /dev/null
        "$TOOL" compare "$WORK/t2/model.safetensors" "$WORK/t1/model.safetensors" 1e-5
        $MPIRUN -np 2 "$CANTOR" train $TA --steps 7 --out "$WORK/t3" < /dev/null > /dev/null
        $MPIRUN -np 2 "$CANTOR" train --resume "$WORK/t3" --steps 12 < /dev/null > /dev/null
        "$TOOL" compare "$WORK/t3/model.safetensors" "$WORK/t2/model.safetensors" 0
        if $MPIRUN -np 3 "$CANTOR" train --resume "$WORK/t3" --steps 14 < /dev/null > "$WORK/t4.log" 2>&1 ||
           ! grep -q "resume it with mpirun -np 2" "$WORK/t4.log"; then
            echo "check_mpi: resuming a 2-process cantor train run with 3 processes did not fail as it should:"
            cat "$WORK/t4.log"
            exit 1
        fi
        # the host round trip that GPU gradient blocks take without NCCL (copy to the host, the
        # fixed-order MPI sum, copy back), forced on the CPU: the same weights bit for bit
        echo "check_mpi: cantor train on 2 processes through the host round trip (CANTOR_DIST_STAGE=host)"
        CANTOR_DIST_STAGE=host $MPIRUN -x CANTOR_DIST_STAGE -np 2 "$CANTOR" train $TA --steps 12 --out "$WORK/t5" \
            < /dev/null > "$WORK/t5.log"
        grep -q "gradients staged through host memory" "$WORK/t5.log" ||
            { echo "check_mpi: CANTOR_DIST_STAGE=host did not reach the processes:"; cat "$WORK/t5.log"; exit 1; }
        "$TOOL" compare "$WORK/t5/model.safetensors" "$WORK/t2/model.safetensors" 0
        "$TOOL" compare "$WORK/t5/model.safetensors" "$WORK/t1/model.safetensors" 1e-5
        # --device under mpirun: cuda:N is a usage error (2), and without a GPU --device cuda fails
        # (1) on every process before MPI starts: one message for the job, no process left waiting
        expect_one() {   # expect_one CODE MESSAGE ARGS...: exit CODE, MESSAGE printed exactly once
            code=$1; msg=$2; shift 2
            set +e
            timeout 120 $MPIRUN -np 2 "$CANTOR" train $TA --steps 2 --out "$WORK/t6" "$@" < /dev/null > "$WORK/t6.log" 2>&1
            got=$?
            set -e
            if [ "$got" = 124 ]; then echo "check_mpi: cantor train $* under mpirun hung"; cat "$WORK/t6.log"; exit 1; fi
            if [ "$got" = 0 ] || [ "$(grep -c -- "$msg" "$WORK/t6.log")" != 1 ] ||
               ! grep -q "Exit code: *$code" "$WORK/t6.log"; then
                echo "check_mpi: cantor train $* under mpirun: expected exit code $code and '$msg' once:"
                cat "$WORK/t6.log"
                exit 1
            fi
        }
        echo "check_mpi: cantor train --device under mpirun"
        expect_one 2 "give --device cuda" --device cuda:1
        if ! "$CANTOR" --version | grep -q "CUDA: compiled in, [0-9][0-9]* device"; then
            expect_one 1 "cantor train: --device cuda: " --device cuda
        fi
        expect_one 2 "needs a CUDA device" --precision bf16
        [ ! -e "$WORK/t6" ] || { echo "check_mpi: a refused run created its folder"; exit 1; }
        $MPIRUN -np 2 "$CANTOR" train $TA --steps 12 --out "$WORK/t7" --device cpu < /dev/null > /dev/null
        "$TOOL" compare "$WORK/t7/model.safetensors" "$WORK/t2/model.safetensors" 0
        # --lr-schedule plateau and --early-stop: rank 0 alone validates, and every process takes
        # its decisions (the rate cuts, the stop): the weights equal one process's (to 1e-5), and
        # no process is left waiting when the others stop early
        echo "check_mpi: cantor train --lr-schedule plateau --early-stop on 2 processes, and alone"
        TP="--valid-every 2 --lr-schedule plateau --patience 1 --plateau-factor 0.5 --early-stop 3 --lr 0.05"
        "$CANTOR" train $TA $TP --steps 16 --out "$WORK/t8" > "$WORK/t8.log" 2>&1
        timeout 300 $MPIRUN -np 2 "$CANTOR" train $TA $TP --steps 16 --out "$WORK/t9" < /dev/null > "$WORK/t9.log" 2>&1 ||
            { echo "check_mpi: the 2-process plateau/early-stop run failed or hung:"; cat "$WORK/t9.log"; exit 1; }
        for f in t8 t9; do
            if ! grep -q "^plateau: " "$WORK/$f.log" || ! grep -q "^early stop: " "$WORK/$f.log"; then
                echo "check_mpi: $f: the plateau schedule or the early stop did not act:"; cat "$WORK/$f.log"; exit 1
            fi
        done
        "$TOOL" compare "$WORK/t9/model.safetensors" "$WORK/t8/model.safetensors" 1e-5
    fi
fi
echo "check_mpi: ok"
