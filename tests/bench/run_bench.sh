#!/usr/bin/env bash
# `make bench`: cantor's RNN workloads and PyTorch's reference (../shared/bench/torch_ref.py)
# on the same machine in the same run, interleaved, then one table with the ratios.
# Not a test: it measures. THREADS (default 2) sets both engines' threads; REPEAT (default 1)
# repeats every (workload, mode). Writes build/bench/{cantor,pytorch}.jsonl in the kit's format
# (../shared/bench/summarize.py reads them).
set -u
cd "$(dirname "$0")/../.."
threads=${THREADS:-2}
repeat=${REPEAT:-1}
workloads=${WORKLOADS:-"melody melody_gru performance pianoroll_b1 pianoroll_b16"}
out=build/bench
mkdir -p "$out"
bin=${BENCH_BIN:-build/release/bench/bench_rnn}
shared=../shared/bench
py=/usr/bin/python3
: > "$out/cantor.jsonl"
: > "$out/pytorch.jsonl"

torch=0
if [ ! -f "$shared/torch_ref.py" ]; then
    echo "note: ../shared/bench is absent: no PyTorch reference and no SGEMM anchor; cantor's own figures only"
elif ! "$py" -c 'import torch' 2>/dev/null; then
    echo "note: PyTorch (python3-torch) is not installed: cantor's own figures only (apt-get install python3-torch)"
else
    torch=1
fi
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) cores, $(uname -m); OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"

for r in $(seq "$repeat"); do
    for w in $workloads; do
        for m in train sample; do
            echo "running $w $m (cantor$([ $torch = 1 ] && echo ', PyTorch'))" >&2
            "$bin" --workload "$w" --mode "$m" --threads "$threads" >> "$out/cantor.jsonl" || echo "cantor $w $m failed" >&2
            if [ $torch = 1 ]; then
                OMP_WAIT_POLICY=PASSIVE "$py" "$shared/torch_ref.py" --workload "$w" --mode "$m" \
                    --threads "$threads" >> "$out/pytorch.jsonl" || echo "PyTorch $w $m failed" >&2
            fi
        done
    done
done

sgemm=""
if [ -f "$shared/sgemm_peak.c" ]; then
    cc -O2 $(pkg-config --cflags openblas) "$shared/sgemm_peak.c" -o "$out/sgemm_peak" \
        $(pkg-config --libs openblas) && "$out/sgemm_peak" "$threads" > "$out/sgemm.txt" && sgemm="$out/sgemm.txt"
fi
echo
"$py" tests/bench/report.py "$out/cantor.jsonl" "$out/pytorch.jsonl" ${sgemm:+--sgemm "$sgemm"} --threads "$threads"

data=${BENCH_DATA:-build/release/bench/bench_data}
if [ -x "$data" ]; then
    echo
    echo "data loader (synthetic items, 200 us of work each; a simulated 20 ms training step):"
    "$data" --workers 0,1,2
    notts=../shared/corpora/midi/nottingham
    if [ -d "$notts" ] && [ -x bin/cantor ]; then
        echo
        echo "data loader on a real corpus (Nottingham, melody encoding, a simulated 20 ms step):"
        bin/cantor corpus build "$notts" -o "$out/nottingham.corpus" --encoding melody --quiet > /dev/null \
            && "$data" --workers 0,1,2 --corpus "$out/nottingham.corpus"
    else
        echo "note: ../shared/corpora/midi/nottingham is absent: the data loader ran on synthetic items only"
    fi
fi
