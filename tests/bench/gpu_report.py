#!/usr/bin/env python3
"""Prints cantor's GPU benchmark beside PyTorch+cuDNN's, as ratios against issue 7's targets
(used by scripts/gpu-check.sh).

usage: gpu_report.py CANTOR.jsonl [PYTORCH.jsonl] [--fp32 PYTORCH_TF32_OFF.jsonl]

CANTOR.jsonl: tests/bench/bench_rnn --device cuda:0's lines; PYTORCH.jsonl: tests/bench/torch_ref_cuda.py's
(PyTorch's defaults: cuDNN may use TF32); --fp32: torch_ref_cuda.py --strict-fp32's (TF32 off,
the same arithmetic as cantor's fp32 default). All are in the bench kit's JSON format; a row is
one (workload, mode, batch): the training batch (config.batch) or 1 for sampling. Several runs
of one row are reduced to their median; a missing figure prints as "-". Targets (issue 7, on an
H100): training >= 1.0x PyTorch+cuDNN, sampling (batch 1) >= 3x PyTorch.
"""
import json
import statistics
import sys
import time

ORDER = ["melody", "melody_gru", "performance", "pianoroll_b1", "pianoroll_b16"]
TARGET = {"train": 1.0, "sample": 3.0}


def load(path):
    runs, meta = {}, {}
    if not path:
        return runs, meta
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                batch = 1 if r.get("mode") == "sample" else (r.get("config") or {}).get("batch", r.get("batch"))
                runs.setdefault((r.get("workload"), r.get("mode"), batch), []).append(r)
                for k in ("device", "torch", "cuda", "cudnn", "cudnn_rnn_fp32", "matmul_fp32", "cantor"):
                    if r.get(k) is not None:
                        meta[k] = r[k]
    except FileNotFoundError:
        pass
    return runs, meta


def med(rs, key):
    vals = [r[key] for r in rs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt(x, spec, suffix=""):
    return "-" if x is None else format(x, spec) + suffix


def main():
    args = sys.argv[1:]
    fp32_path = None
    if "--fp32" in args:
        i = args.index("--fp32")
        fp32_path = args[i + 1] if i + 1 < len(args) else None
        del args[i:i + 2]
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if args else 2
    ours, om = load(args[0])
    theirs, tm = load(args[1] if len(args) > 1 else None)
    strict, sm = load(fp32_path)
    print("GPU benchmark, %s; card: %s; cantor %s on %s; PyTorch %s (CUDA %s, cuDNN %s; cuDNN RNN "
          "precision %s, matmul %s)" % (
              time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), tm.get("device", sm.get("device", "?")),
              om.get("cantor", "?"), om.get("device", "?"), tm.get("torch", sm.get("torch", "-")),
              tm.get("cuda", "-"), tm.get("cudnn", "-"), tm.get("cudnn_rnn_fp32", "-"),
              tm.get("matmul_fp32", "-")))
    print()
    print("| workload | mode | batch | unit | cantor /s | PyTorch /s | ratio | target | met | "
          "PyTorch TF32 off /s | ratio | cantor ms | PyTorch ms |")
    print("|---|---|--:|---|--:|--:|--:|--:|---|--:|--:|--:|--:|")
    keys = set(ours) | set(theirs) | set(strict)
    keys = sorted(keys, key=lambda k: (ORDER.index(k[0]) if k[0] in ORDER else 99, str(k[0]),
                                       k[1] != "train", k[2] or 0))
    met = {"train": [0, 0], "sample": [0, 0]}
    for key in keys:
        a, b, s = ours.get(key, []), theirs.get(key, []), strict.get(key, [])
        ta, tb, ts = med(a, "tokens_per_s"), med(b, "tokens_per_s"), med(s, "tokens_per_s")
        per = "ms_per_step" if key[1] == "train" else "ms_per_token"
        ratio = ta / tb if ta and tb else None
        rs = ta / ts if ta and ts else None
        target = TARGET.get(key[1])
        ok = None
        if ratio is not None and target is not None:
            ok = ratio >= target
            met[key[1]][0] += ok
            met[key[1]][1] += 1
        unit = (a or b or s)[0].get("unit", "tokens")
        print(f"| {key[0]} | {key[1]} | {key[2]} | {unit} | {fmt(ta, ',.0f')} | {fmt(tb, ',.0f')} | "
              f"{fmt(ratio, '.2f', 'x')} | {fmt(target, '.1f', 'x')} | {'-' if ok is None else ('yes' if ok else 'NO')} | "
              f"{fmt(ts, ',.0f')} | {fmt(rs, '.2f', 'x')} | {fmt(med(a, per), '.3f')} | {fmt(med(b, per), '.3f')} |")
    print()
    for m in ("train", "sample"):
        print(f"{m}: target {TARGET[m]:.1f}x PyTorch met in {met[m][0]} of {met[m][1]} rows with both figures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
