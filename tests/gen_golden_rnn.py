#!/usr/bin/env python3
"""Golden values from PyTorch for the fused recurrent layers (tests/engine/test_rnn.c).

Run with Debian's python3-torch:  /usr/bin/python3 tests/gen_golden_rnn.py
Writes tests/fixtures/rnn/CASE.npz for torch.nn.LSTM / GRU / RNN (1-3 layers, with and without
an initial state, mixed lengths through pack_padded_sequence(enforce_sorted=False)):

  config        int64 [mode, input_size, hidden_size, num_layers, bias, batch_first]
                (mode as cantor's ct_rnn_mode: 0 RNN tanh, 1 RNN relu, 2 LSTM, 3 GRU)
  x             the padded input ([T, B, I], or [B, T, I] when batch_first); the padding
                holds random values, which must not matter
  lengths       int64 [B] (only in the cases with mixed lengths)
  h0, c0        [L, B, H] (only in the cases with an initial state; c0 for LSTM)
  <param>       every parameter under its state_dict name (weight_ih_l0, ...)
  out, h_n, c_n the outputs (out padded with zeros past each length, as pad_packed_sequence)
  p1, p2, p3    fixed projections: loss = sum(out*p1) + sum(h_n*p2) (+ sum(c_n*p3))
  grad_<name>   d loss / d name for x, h0, c0 and every parameter

Inputs and weights are float32; PyTorch computes in float64 from those exact values, so the
fixtures hold the true values and the C test compares cantor's float32 results with a
tolerance. The .npz files are committed; the tests never run Python.
"""
import os

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "rnn")
MODES = {"rnn_tanh": 0, "rnn_relu": 1, "lstm": 2, "gru": 3}

# name, mode, input, hidden, layers, bias, batch_first, T, B, lengths or None, initial state
CASES = [
    ("lstm_l1", "lstm", 3, 4, 1, True, False, 4, 3, None, False),
    ("lstm_l2_len_state", "lstm", 3, 5, 2, True, False, 5, 3, [5, 2, 4], True),
    ("lstm_l3_bf_len", "lstm", 2, 3, 3, True, True, 4, 2, [3, 4], False),
    ("lstm_l2_nobias_state", "lstm", 3, 4, 2, False, False, 3, 2, None, True),
    ("gru_l1_state", "gru", 3, 4, 1, True, False, 4, 2, None, True),
    ("gru_l2_len", "gru", 3, 4, 2, True, False, 4, 3, [4, 1, 3], False),
    ("gru_l3_bf_len_state", "gru", 2, 3, 3, True, True, 3, 3, [2, 3, 1], True),
    ("rnn_tanh_l2_len_state", "rnn_tanh", 3, 4, 2, True, False, 4, 3, [4, 2, 3], True),
    ("rnn_relu_l1", "rnn_relu", 3, 4, 1, True, False, 4, 2, None, False),
]


def make(name, mode, I, H, L, bias, bf, T, B, lengths, state, rng):
    if mode == "lstm":
        m = torch.nn.LSTM(I, H, L, bias=bias, batch_first=bf)
    elif mode == "gru":
        m = torch.nn.GRU(I, H, L, bias=bias, batch_first=bf)
    else:
        m = torch.nn.RNN(I, H, L, nonlinearity=mode[4:], bias=bias, batch_first=bf)
    f32 = lambda *s: rng.uniform(-1.0, 1.0, size=s).astype(np.float32)
    k = 1.0 / np.sqrt(H)
    data = {"config": np.array([MODES[mode], I, H, L, int(bias), int(bf)], dtype=np.int64)}
    params = {}
    for pname, p in m.state_dict().items():
        w = (rng.uniform(-k, k, size=tuple(p.shape))).astype(np.float32)
        data[pname] = w
        params[pname] = w
    m.load_state_dict({n: torch.from_numpy(w) for n, w in params.items()})
    m = m.double()
    x = f32(B, T, I) if bf else f32(T, B, I)
    data["x"] = x
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    leaves = {"x": xt}
    hx = None
    if state:
        h0 = f32(L, B, H)
        data["h0"] = h0
        leaves["h0"] = torch.tensor(h0, dtype=torch.float64, requires_grad=True)
        hx = leaves["h0"]
        if mode == "lstm":
            c0 = f32(L, B, H)
            data["c0"] = c0
            leaves["c0"] = torch.tensor(c0, dtype=torch.float64, requires_grad=True)
            hx = (leaves["h0"], leaves["c0"])
    elif mode == "lstm":
        hx = None
    if lengths is not None:
        data["lengths"] = np.array(lengths, dtype=np.int64)
        packed = pack_padded_sequence(xt, torch.tensor(lengths), batch_first=bf, enforce_sorted=False)
        out, hn = m(packed, hx)
        out, _ = pad_packed_sequence(out, batch_first=bf, total_length=T)
    else:
        out, hn = m(xt, hx)
    if mode == "lstm":
        hn, cn = hn
    data["out"] = out.detach().numpy().astype(np.float32)
    data["h_n"] = hn.detach().numpy().astype(np.float32)
    p1, p2 = f32(*out.shape), f32(*hn.shape)
    data["p1"], data["p2"] = p1, p2
    loss = (out * torch.from_numpy(p1).double()).sum() + (hn * torch.from_numpy(p2).double()).sum()
    if mode == "lstm":
        data["c_n"] = cn.detach().numpy().astype(np.float32)
        p3 = f32(*cn.shape)
        data["p3"] = p3
        loss = loss + (cn * torch.from_numpy(p3).double()).sum()
    loss.backward()
    for n, t in leaves.items():
        data["grad_" + n] = t.grad.numpy().astype(np.float32)
    for n, p in m.named_parameters():
        data["grad_" + n] = p.grad.numpy().astype(np.float32)
    np.savez_compressed(os.path.join(OUT, name + ".npz"), **data)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    for i, case in enumerate(CASES):
        make(*case, rng=np.random.default_rng(20261128 + i))
        print("wrote", os.path.join(OUT, case[0] + ".npz"))


if __name__ == "__main__":
    main()
