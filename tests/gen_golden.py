#!/usr/bin/env python3
"""Golden values from PyTorch for composite expressions (tests/engine/test_golden.c).

Run with Debian's python3-torch:  /usr/bin/python3 tests/gen_golden.py   (or `make fixtures`)
Writes tests/fixtures/golden/CASE.npz holding the inputs (in_*), the result (out) and the
gradient of sum(out * proj) for every float input (grad_*), where proj (also stored) is a
fixed random projection. Inputs are float32; PyTorch computes in float64 from those exact
float32 values, so the fixtures hold the true values, and the C tests compare cantor's
float32 results with a tolerance. The .npz files are committed; the tests never run Python.
"""
import os
import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "golden")
rng = np.random.default_rng(20261127)


def f32(*shape, lo=-1.0, hi=1.0):
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


def mlp(t):
    # the seed's first network: linear -> relu -> linear -> cross-entropy (with an ignored target)
    h = torch.relu(t["x"] @ t["w1"] + t["b1"])
    logits = h @ t["w2"] + t["b2"]
    return F.cross_entropy(logits, t["y"], ignore_index=-100)


def softmax_mix(t):
    # log_softmax / softmax over different dims, broadcasting, mean and max
    a = torch.log_softmax(t["x"] @ t["w"], dim=1)
    b = torch.softmax(t["x"].transpose(0, 1), dim=0)          # non-contiguous input
    m = torch.max(a, dim=1, keepdim=True).values
    return (a - m).mean(dim=0)[:5] + b.sum(dim=1) * t["s"]


def bce_roll(t):
    # piano-roll style loss: BCE with logits summed over keys, averaged over frames
    logits = torch.tanh(t["x"]) * 3.0 + t["bias"]
    return F.binary_cross_entropy_with_logits(logits, t["target"], reduction="sum") / (t["x"].shape[0] * t["x"].shape[1])


def elementwise_chain(t):
    a, b = t["a"], t["b"]
    y = torch.sqrt(a * a + 1.0) / (b.exp() + 0.5) - torch.sigmoid(a - b) ** 2.0
    y = torch.clamp(y, -0.8, 0.8) + torch.pow(a * a + 0.5, b)
    mn = -torch.max((-y).reshape(-1), dim=0).values
    return torch.log(y - mn + 1.0).sum(dim=-1)


def embed_concat(t):
    e = F.embedding(t["idx"], t["table"])                         # [2, 3, 4]
    c = torch.cat([e, torch.tanh(e)], dim=2)                      # [2, 3, 8]
    s = torch.stack([c[0], c[1] * 2.0], dim=0)                    # [2, 3, 8]
    g = torch.gather(s, 2, t["gidx"])                              # [2, 3, 2]
    w = torch.where(t["cond"] > 0, g, -g)
    return torch.index_select(w, 1, t["sel"]).masked_fill(t["mask"] > 0, 0.0)


def batched_matmul(t):
    q = t["q"] @ t["k"].transpose(-1, -2)                          # [2, 3, 3]
    p = torch.softmax(q / 2.0, dim=-1)
    return (p @ t["v"]) @ t["w"]                                   # weight broadcast over batch


CASES = {
    "mlp": (mlp, dict(x=f32(4, 6), w1=f32(6, 5), b1=f32(5), w2=f32(5, 3), b2=f32(3),
                      y=np.array([0, 2, -100, 1], dtype=np.int64))),
    "softmax_mix": (softmax_mix, dict(x=f32(4, 5), w=f32(5, 6), s=f32(1))),
    "bce_roll": (bce_roll, dict(x=f32(3, 2, 5, lo=-2, hi=2), bias=f32(5),
                                target=(rng.uniform(size=(3, 2, 5)) < 0.3).astype(np.float32))),
    "elementwise_chain": (elementwise_chain, dict(a=f32(3, 4), b=f32(4, lo=0.1, hi=1.0))),
    "embed_concat": (embed_concat, dict(table=f32(5, 4), idx=np.array([[0, 2, 4], [1, 2, 2]], dtype=np.int64),
                                        gidx=rng.integers(0, 8, size=(2, 3, 2)).astype(np.int64),
                                        cond=f32(2, 3, 2), sel=np.array([2, 0, 2], dtype=np.int64),
                                        mask=(rng.uniform(size=(1, 3, 2)) < 0.3).astype(np.float32))),
    "batched_matmul": (batched_matmul, dict(q=f32(2, 3, 4), k=f32(2, 3, 4), v=f32(2, 3, 5), w=f32(5, 2))),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, (fn, inputs) in CASES.items():
        t = {}
        for k, v in inputs.items():
            if v.dtype == np.float32:
                t[k] = torch.tensor(v.astype(np.float64), requires_grad=True)
            else:
                t[k] = torch.tensor(v)
        out = fn(t)
        proj = rng.uniform(-1, 1, size=tuple(out.shape)).astype(np.float32)
        (out * torch.tensor(proj.astype(np.float64))).sum().backward()
        arrays = {f"in_{k}": v for k, v in inputs.items()}
        arrays["out"] = out.detach().numpy().astype(np.float32)
        arrays["proj"] = proj
        for k, v in t.items():
            if v.requires_grad and v.grad is not None:
                arrays[f"grad_{k}"] = v.grad.numpy().astype(np.float32)
        np.savez(os.path.join(OUT, name + ".npz"), **arrays)
        print(f"{name}: out {tuple(out.shape)}, {len(arrays)} arrays")


if __name__ == "__main__":
    main()
