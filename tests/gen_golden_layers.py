#!/usr/bin/env python3
"""Golden values from PyTorch's torch.nn layers (tests/engine/test_layers.c).

Run with Debian's python3-torch:  /usr/bin/python3 tests/gen_golden_layers.py
Writes tests/fixtures/layers/CASE.npz holding, for one module:
  param_NAME  every parameter, under its state_dict name ("weight", "0.bias", ...)
  x           the input (float32, or int64 indices for Embedding)
  out         the module's output
  proj        a fixed random projection; the loss is sum(out * proj)
  grad_NAME   the loss's gradient for every parameter
  grad_x      the loss's gradient for a float input
The parameters are PyTorch's own initialisation (seeded), rounded to float32; PyTorch then
computes in float64 from those exact float32 values, so the fixtures hold the true values
and the C test compares cantor's float32 results with a tolerance. The .npz files are
committed; the tests never run Python.
"""
import os
import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "layers")
rng = np.random.default_rng(20261201)
torch.manual_seed(1234)


def f32(*shape, lo=-1.0, hi=1.0):
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


def layernorm_affine():
    m = torch.nn.LayerNorm(6, eps=1e-5)
    with torch.no_grad():          # not 1 and 0, so the affine part is tested
        m.weight.copy_(torch.tensor(f32(6, lo=0.5, hi=1.5)))
        m.bias.copy_(torch.tensor(f32(6)))
    return m


CASES = {
    # 3-D input: cantor reshapes it to one GEMM
    "linear": (lambda: torch.nn.Linear(5, 4), f32(2, 3, 5)),
    "linear_nobias": (lambda: torch.nn.Linear(6, 3, bias=False), f32(4, 6)),
    # repeated indices add up; the padding row (2) gets no gradient
    "embedding": (lambda: torch.nn.Embedding(7, 3, padding_idx=2),
                  np.array([[0, 2, 5, 2], [6, 5, 5, 1]], dtype=np.int64)),
    # rows with a large mean against their spread test the variance's accuracy
    "layernorm": (layernorm_affine, f32(3, 4, 6) + np.float32(4.0)),
    "layernorm_noaffine": (lambda: torch.nn.LayerNorm(5, elementwise_affine=False), f32(4, 5, lo=-2, hi=2)),
    "sequential": (lambda: torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(),
                                               torch.nn.Linear(8, 3)), f32(5, 4)),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, (make, x) in CASES.items():
        m = make()
        params = {k: v.detach().numpy().astype(np.float32) for k, v in m.state_dict().items()}
        with torch.no_grad():      # exact float32 values, computed in float64
            for k, p in m.named_parameters():
                p.copy_(torch.tensor(params[k]))
        m = m.double()
        if x.dtype == np.float32:
            xt = torch.tensor(x.astype(np.float64), requires_grad=True)
        else:
            xt = torch.tensor(x)
        out = m(xt)
        proj = rng.uniform(-1, 1, size=tuple(out.shape)).astype(np.float32)
        (out * torch.tensor(proj.astype(np.float64))).sum().backward()
        arrays = {f"param_{k}": v for k, v in params.items()}
        arrays["x"] = x
        arrays["out"] = out.detach().numpy().astype(np.float32)
        arrays["proj"] = proj
        for k, p in m.named_parameters():
            arrays[f"grad_{k}"] = p.grad.numpy().astype(np.float32)
        if xt.requires_grad:
            arrays["grad_x"] = xt.grad.numpy().astype(np.float32)
        np.savez(os.path.join(OUT, name + ".npz"), **arrays)
        print(f"{name}: out {tuple(out.shape)}, params {list(params)}")


if __name__ == "__main__":
    main()
