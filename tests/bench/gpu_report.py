#!/usr/bin/env python3
"""Prints cantor's GPU benchmark beside PyTorch+cuDNN's, as ratios against issue 7's targets
(used by scripts/gpu-check.sh).

usage: gpu_report.py CANTOR.jsonl [PYTORCH.jsonl] [--fp32 PYTORCH_TF32_OFF.jsonl]

CANTOR.jsonl: tests/bench/bench_rnn --device cuda:0's lines; PYTORCH.jsonl: tests/bench/torch_ref_cuda.py's
(PyTorch's defaults: cuDNN may use TF32); --fp32: torch_ref_cuda.py --strict-fp32's (TF32 off,
the same arithmetic as cantor's fp32 default). All are in the bench kit's JSON format; a row is
one (workload, mode, batch, precision): the training batch (config.batch) or 1 for sampling, and
the line's "precision" (bench_rnn / torch_ref_cuda.py --precision; a line without one is cantor's
fp32, PyTorch's "default" in PYTORCH.jsonl and "fp32" in the --fp32 file). Either PyTorch file
may hold lines of any precision. Ratios match precisions: a cantor fp32 row is compared with
PyTorch's defaults (the target) and with PyTorch TF32 off; a tf32 or bf16 row with PyTorch's
tf32 or bf16 (torch.autocast) line, and with cantor's own fp32 row ("vs fp32"). Several runs of
one row are reduced to their median; a missing figure prints as "-". Targets (issue 7, on an
H100, for the default fp32 rows): training >= 1.0x PyTorch+cuDNN, sampling (batch 1) >= 3x
PyTorch.
"""
import json
import statistics
import sys
import time

ORDER = ["melody", "melody_gru", "performance", "pianoroll_b1", "pianoroll_b16"]
PRECISIONS = ["fp32", "tf32", "bf16"]
TARGET = {"train": 1.0, "sample": 3.0}


def load(path, default_precision, runs=None, meta=None):
    runs = {} if runs is None else runs
    meta = {} if meta is None else meta
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
                prec = r.get("precision") or default_precision
                runs.setdefault((r.get("workload"), r.get("mode"), batch, prec), []).append(r)
                for k in ("device", "device_name", "torch", "cuda", "cudnn", "cudnn_rnn_fp32", "matmul_fp32", "cantor"):
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
    ours, om = load(args[0], "fp32")
    theirs, tm = load(args[1] if len(args) > 1 else None, "default")
    theirs, sm = load(fp32_path, "fp32", theirs, {})
    print("GPU benchmark, %s; card: %s; cantor %s on %s; PyTorch %s (CUDA %s, cuDNN %s; cuDNN RNN "
          "precision %s, matmul %s)" % (
              time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), tm.get("device", sm.get("device", "?")),
              om.get("cantor", "?"), om.get("device_name", om.get("device", "?")), tm.get("torch", sm.get("torch", "-")),
              tm.get("cuda", "-"), tm.get("cudnn", "-"), tm.get("cudnn_rnn_fp32", "-"),
              tm.get("matmul_fp32", "-")))
    print()
    print("| workload | mode | batch | precision | unit | cantor /s | PyTorch /s | ratio | target | met | "
          "PyTorch TF32 off /s | ratio | cantor vs fp32 | cantor ms | PyTorch ms |")
    print("|---|---|--:|---|---|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|")
    # a row per cantor precision; PyTorch's "default" and "fp32" lines go with cantor's fp32
    keys = set(ours) | {k[:3] + ("fp32" if k[3] == "default" else k[3],) for k in theirs}
    keys = sorted(keys, key=lambda k: (ORDER.index(k[0]) if k[0] in ORDER else 99, str(k[0]),
                                       k[1] != "train", k[2] or 0,
                                       PRECISIONS.index(k[3]) if k[3] in PRECISIONS else 9, str(k[3])))
    met = {"train": [0, 0], "sample": [0, 0]}
    for key in keys:
        prec = key[3]
        a = ours.get(key, [])
        b = theirs.get(key[:3] + ("default",), []) if prec == "fp32" else theirs.get(key, [])
        s = theirs.get(key, []) if prec == "fp32" else []
        f = ours.get(key[:3] + ("fp32",), []) if prec != "fp32" else []
        ta, tb, ts = med(a, "tokens_per_s"), med(b, "tokens_per_s"), med(s, "tokens_per_s")
        tf = med(f, "tokens_per_s")
        per = "ms_per_step" if key[1] == "train" else "ms_per_token"
        ratio = ta / tb if ta and tb else None
        rs = ta / ts if ta and ts else None
        rf = ta / tf if ta and tf else None
        target = TARGET.get(key[1]) if prec == "fp32" else None
        ok = None
        if ratio is not None and target is not None:
            ok = ratio >= target
            met[key[1]][0] += ok
            met[key[1]][1] += 1
        unit = (a or b or s or [{}])[0].get("unit", "tokens")
        print(f"| {key[0]} | {key[1]} | {key[2]} | {prec} | {unit} | {fmt(ta, ',.0f')} | {fmt(tb, ',.0f')} | "
              f"{fmt(ratio, '.2f', 'x')} | {fmt(target, '.1f', 'x')} | {'-' if ok is None else ('yes' if ok else 'NO')} | "
              f"{fmt(ts, ',.0f')} | {fmt(rs, '.2f', 'x')} | {fmt(rf, '.2f', 'x')} | {fmt(med(a, per), '.3f')} | "
              f"{fmt(med(b, per), '.3f')} |")
    print()
    for m in ("train", "sample"):
        print(f"{m}: target {TARGET[m]:.1f}x PyTorch met in {met[m][0]} of {met[m][1]} fp32 rows with both figures")
    print("(fp32 rows: PyTorch /s is PyTorch's defaults; tf32 / bf16 rows: PyTorch in that precision, "
          "bf16 = torch.autocast; cantor vs fp32: the row's speed over cantor's fp32 speed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
