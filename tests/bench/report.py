#!/usr/bin/env python3
"""Prints cantor's benchmark figures beside PyTorch's, as ratios (used by `make bench`).

usage: report.py CANTOR.jsonl [PYTORCH.jsonl] [--sgemm SGEMM_PEAK_OUTPUT] [--threads N]

Both files hold one JSON line per (workload, mode) run in the format of
../shared/bench/torch_ref.py (see its README); several runs of one (workload, mode) are
reduced to their median. Missing PyTorch figures print as "-".
"""
import json
import re
import statistics
import sys


def load(path):
    runs = {}
    if not path:
        return runs
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    r = json.loads(line)
                    runs.setdefault((r["workload"], r["mode"]), []).append(r)
    except FileNotFoundError:
        pass
    return runs


def med(rs, key):
    vals = [r[key] for r in rs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def sgemm_peak(path, threads):
    """The median GFLOP/s of the 2048^3 row of sgemm_peak's table for the thread count."""
    if not path:
        return None
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return None
    for line in lines:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 8 and cells[0].startswith("square 2048") and cells[5] == str(threads):
            return float(cells[6])
    return None


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


def main():
    args = sys.argv[1:]
    sg, threads = None, 2
    if "--sgemm" in args:
        i = args.index("--sgemm"); sg = args[i + 1]; del args[i:i + 2]
    if "--threads" in args:
        i = args.index("--threads"); threads = int(args[i + 1]); del args[i:i + 2]
    ours = load(args[0])
    theirs = load(args[1] if len(args) > 1 else None)
    peak = sgemm_peak(sg, threads)
    print(f"threads: {threads}; SGEMM 2048^3 peak: {fmt(peak, '.0f')} GFLOP/s")
    print()
    print("| workload | mode | unit | cantor /s | PyTorch /s | ratio | cantor GFLOP/s | of peak | cantor RSS MB | PyTorch RSS MB | RSS ratio |")
    print("|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    order = ["melody", "melody_gru", "performance", "pianoroll_b1", "pianoroll_b16"]
    keys = sorted(ours, key=lambda k: (order.index(k[0]) if k[0] in order else 99, k[1] != "train"))
    for key in keys:
        a, b = ours[key], theirs.get(key, [])
        ta, tb = med(a, "tokens_per_s"), med(b, "tokens_per_s")
        ga = med(a, "achieved_gflops")
        ra, rb = med(a, "peak_rss_mb"), med(b, "peak_rss_mb")
        ratio = ta / tb if ta and tb else None
        frac = ga / peak if ga and peak else None
        rr = ra / rb if ra and rb else None
        print(f"| {key[0]} | {key[1]} | {a[0].get('unit', 'tokens')} | {fmt(ta, ',.0f')} | {fmt(tb, ',.0f')} | "
              f"{fmt(ratio, '.2f')}x | {fmt(ga, '.1f')} | {fmt(frac * 100 if frac else None, '.0f')}% | "
              f"{fmt(ra, '.0f')} | {fmt(rb, '.0f')} | {fmt(rr, '.2f')} |")


if __name__ == "__main__":
    main()
