#!/usr/bin/env python3
"""Golden values for optimizers, schedules and checkpoints (tests/engine/test_optim.c,
tests/engine/test_checkpoint.c).

Run with Debian's python3-torch:  /usr/bin/python3 tests/gen_golden_optim.py
Writes tests/fixtures/optim/:

  CASE.npz      five training steps of a small model with torch.optim (float32, as torch users
                run it): x, proj, the initial parameters (w1_0, w2_0, bias_0), and after every
                step k = 1..5 the parameters (w1_k, w2_k, bias_k), the gradient norm before
                clipping (norm, [5]) and the loss (loss, [5]). The model is a root module with
                parameters w1 [4, 3], w2 [2, 4] and a child "head" with a parameter bias [2]:
                    loss = sum((tanh(x @ w1^T) @ w2^T + head.bias) * proj)
                and every step is zero_grad, backward, clip_grad_norm_(params, 1.0), step.
                The hyper-parameters of each case are in CASES below and in the C test.
  schedules.npz torch's StepLR(step_size=3, gamma=0.5) and ExponentialLR(gamma=0.9) from lr 0.1,
                and LambdaLR with cantor's warm-up + cosine formula (W=3, T=10, min_lr=0.01),
                for epochs 0..11 (step_lr, exp_lr, cos_lr).
  torch_layout.safetensors
                a safetensors file written by hand (struct + json) exactly as the reference
                writer (safetensors.torch.save_file) lays it out: tensors sorted by dtype
                (decreasing alignment) then name, stored back to back, compact JSON with
                "__metadata__" first, the header padded with spaces to a multiple of 8. It is
                then read back with the reference reader's checks (check_layout below) and
                through torch.frombuffer.

`--check FILE...` runs check_layout on files (e.g. ones cantor wrote) and prints their tensors.
The fixtures are committed; the C tests never run Python.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "optim")

CASES = {
    "adam": ("Adam", dict(lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)),
    "adamw": ("AdamW", dict(lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)),
    "sgd": ("SGD", dict(lr=0.1)),
    "sgd_momentum": ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.01)),
    "sgd_dampening": ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.5)),
    "sgd_nesterov": ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
}


class Head(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(2))


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w1 = torch.nn.Parameter(torch.zeros(4, 3))
        self.w2 = torch.nn.Parameter(torch.zeros(2, 4))
        self.head = Head()

    def loss(self, x, proj):
        return ((torch.tanh(x @ self.w1.T) @ self.w2.T + self.head.bias) * proj).sum()


def training_case(name, opt_name, kwargs):
    rng = np.random.default_rng(20261201)
    x = rng.uniform(-1, 1, (5, 3)).astype(np.float32)
    proj = rng.uniform(-2, 2, (5, 2)).astype(np.float32)
    init = {
        "w1": rng.uniform(-1, 1, (4, 3)).astype(np.float32),
        "w2": rng.uniform(-1, 1, (2, 4)).astype(np.float32),
        "bias": rng.uniform(-1, 1, (2,)).astype(np.float32),
    }
    m = Model()
    with torch.no_grad():
        m.w1.copy_(torch.from_numpy(init["w1"]))
        m.w2.copy_(torch.from_numpy(init["w2"]))
        m.head.bias.copy_(torch.from_numpy(init["bias"]))
    assert [n for n, _ in m.named_parameters()] == ["w1", "w2", "head.bias"]
    opt = getattr(torch.optim, opt_name)(m.parameters(), **kwargs)
    out = {"x": x, "proj": proj, "w1_0": init["w1"], "w2_0": init["w2"], "bias_0": init["bias"]}
    norms, losses = [], []
    xt, pt = torch.from_numpy(x), torch.from_numpy(proj)
    for k in range(1, 6):
        opt.zero_grad()
        loss = m.loss(xt, pt)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        norms.append(float(norm))
        losses.append(float(loss))
        out[f"w1_{k}"] = m.w1.detach().numpy().copy()
        out[f"w2_{k}"] = m.w2.detach().numpy().copy()
        out[f"bias_{k}"] = m.head.bias.detach().numpy().copy()
    out["norm"] = np.array(norms, dtype=np.float32)
    out["loss"] = np.array(losses, dtype=np.float32)
    np.savez(os.path.join(OUT, name + ".npz"), **out)
    print(f"{name}: norms {np.round(norms, 4)}")


def warmup_cosine(step, base, w, t, lo):
    if step < w:
        return base * (step + 1) / w
    if step >= t:
        return lo
    return lo + (base - lo) * 0.5 * (1 + math.cos(math.pi * (step - w) / (t - w)))


def schedules():
    out = {}
    for key, make in [
        ("step_lr", lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5)),
        ("exp_lr", lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.9)),
        ("cos_lr", lambda o: torch.optim.lr_scheduler.LambdaLR(
            o, lambda e: warmup_cosine(e, 0.1, 3, 10, 0.01) / 0.1)),
    ]:
        p = torch.nn.Parameter(torch.zeros(1))
        o = torch.optim.SGD([p], lr=0.1)
        s = make(o)
        lrs = []
        for _ in range(12):
            lrs.append(o.param_groups[0]["lr"])
            o.step()
            s.step()
        out[key] = np.array(lrs, dtype=np.float32)
    np.savez(os.path.join(OUT, "schedules.npz"), **out)


# ---- safetensors ---------------------------------------------------------------------------------
# the reference's dtype order (increasing alignment); the writer sorts by it, descending
DTYPE_ORDER = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32", "U32",
               "F32", "F64", "I64", "U64"]
NP_DTYPE = {"F32": "<f4", "I64": "<i8"}
TORCH_DTYPE = {"F32": torch.float32, "I64": torch.int64}


def safetensors_bytes(tensors, metadata):
    """tensors: {name: (dtype, np.ndarray)}; laid out as the reference writer does."""
    items = sorted(tensors.items(),
                   key=lambda kv: (-DTYPE_ORDER.index(kv[1][0]), kv[0].encode("utf-8")))
    header, datas, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, (dt, arr) in items:
        raw = np.ascontiguousarray(arr, dtype=NP_DTYPE[dt]).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        datas.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(datas)


def check_layout(path):
    """The reference reader's checks (read_metadata + validate), then the tensors via torch."""
    buf = open(path, "rb").read()
    assert len(buf) >= 8, "HeaderTooSmall"
    (n,) = struct.unpack("<Q", buf[:8])
    assert n <= 100_000_000, "HeaderTooLarge"
    assert 8 + n <= len(buf), "InvalidHeaderLength"
    assert n % 8 == 0, "header not padded to 8"
    meta = json.loads(buf[8:8 + n].decode("utf-8"))
    md = meta.pop("__metadata__", None)
    assert md is None or all(isinstance(k, str) and isinstance(v, str) for k, v in md.items())
    entries = sorted(meta.items(), key=lambda kv: tuple(kv[1]["data_offsets"]))
    start, out = 0, {}
    for name, info in entries:
        s, e = info["data_offsets"]
        assert s == start and e >= s, f"InvalidOffset({name})"
        start = e
        nbytes = int(np.prod(info["shape"], dtype=np.int64)) * np.dtype(NP_DTYPE[info["dtype"]]).itemsize
        assert e - s == nbytes, "TensorInvalidInfo"
        data = buf[8 + n + s:8 + n + e]
        assert (8 + n + s) % np.dtype(NP_DTYPE[info["dtype"]]).itemsize == 0, "misaligned"
        t = (torch.frombuffer(bytearray(data), dtype=TORCH_DTYPE[info["dtype"]])
             if data else torch.empty(0, dtype=TORCH_DTYPE[info["dtype"]]))
        out[name] = t.reshape(info["shape"])
    assert start + 8 + n == len(buf), "MetadataIncompleteBuffer"
    return out, md


def safetensors_fixture():
    tensors = {
        "w1": ("F32", (np.arange(12, dtype=np.float32) * 0.5 - 2).reshape(4, 3)),
        "head.bias": ("F32", np.array([0.25, -1.5], dtype=np.float32)),
        "steps": ("I64", np.array([-1, 2**40, 7], dtype=np.int64)),
        "scalar": ("F32", np.array(3.25, dtype=np.float32)),
        "empty": ("F32", np.zeros((0, 3), dtype=np.float32)),
        "\u00fcn\u00ef": ("F32", np.array([1.0], dtype=np.float32)),
        "q\"uote\\": ("F32", np.array([-2.0], dtype=np.float32)),
    }
    path = os.path.join(OUT, "torch_layout.safetensors")
    with open(path, "wb") as f:
        f.write(safetensors_bytes(tensors, {"format": "pt"}))
    got, md = check_layout(path)
    assert md == {"format": "pt"}
    for name, (_, arr) in tensors.items():
        assert np.array_equal(got[name].numpy(), arr), name


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--check":
        for p in sys.argv[2:]:
            got, md = check_layout(p)
            print(p, "OK", "metadata", md)
            for k, v in got.items():
                print(f"  {k!r}: {v.dtype} {list(v.shape)} {v.flatten()[:6].tolist()}")
        return
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    for name, (opt, kw) in CASES.items():
        training_case(name, opt, kw)
    schedules()
    safetensors_fixture()
    print("wrote", OUT)


if __name__ == "__main__":
    main()
