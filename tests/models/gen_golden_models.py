#!/usr/bin/env python3
"""Golden values for tests/models/test_models.c: the composer networks in PyTorch.

Writes tests/models/fixtures/<case>.npz holding every parameter under its state_dict name,
the batch (x, y, lengths, mask), the logits, the loss and every parameter's gradient
("grad.<name>"). The networks are the PyTorch equivalents of models/composer.h:
  token model:  Embedding -> LSTM/GRU/RNN (packed, variable lengths) -> Linear,
                cross_entropy(ignore_index=-100), mean over real targets
  piano roll:   LSTM on 88-key frames -> Linear, BCE-with-logits summed over keys,
                averaged over the real frames (mask)
Also the other direction of tests/check_torch_interop.sh: checkpoints WRITTEN BY PyTorch.
tests/models/fixtures/interop_<case>.safetensors is a torch composer with random weights saved
by hand as safetensors (tests/torch_interop.py: header length, JSON header, raw data, and the
"cantor_config" metadata cantor's cc_load reads), and interop_<case>.npz the input "x" and the
logits torch computes for it; tests/models/test_interop.c loads the file with cc_load and
compares (1e-4 relative).
Run from the repository root: /usr/bin/python3 tests/models/gen_golden_models.py
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, 'fixtures')
sys.path.insert(0, os.path.dirname(HERE))
from torch_interop import Composer, save_composer  # noqa: E402  (tests/torch_interop.py)


def case(name, cell, vocab, embed, hidden, layers, T, lengths, roll, seed):
    torch.manual_seed(seed)
    B = len(lengths)
    model = Composer(cell, vocab, embed, hidden, layers, roll)
    lens = torch.tensor(lengths, dtype=torch.int64)
    mask = (torch.arange(T)[:, None] < lens[None, :]).float()          # [T, B]
    if roll:
        x = (torch.rand(T, B, 88) < 0.15).float() * mask[:, :, None]
        y = (torch.rand(T, B, 88) < 0.15).float() * mask[:, :, None]
    else:
        x = torch.randint(0, vocab, (T, B)) * mask.long()
        y = torch.randint(0, vocab, (T, B)).masked_fill(mask == 0, -100)
    logits = model(x, lens)
    if roll:
        nll = F.binary_cross_entropy_with_logits(logits, y, reduction='none').sum(-1)
        loss = (nll * mask).sum() / mask.sum()
    else:
        loss = F.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1), ignore_index=-100)
    loss.backward()
    arrays = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    for k, p in model.named_parameters():
        arrays['grad.' + k] = p.grad.numpy().astype(np.float32)
    arrays['x'] = x.numpy().astype(np.float32 if roll else np.int64)
    arrays['y'] = y.numpy().astype(np.float32 if roll else np.int64)
    arrays['lengths'] = lens.numpy().astype(np.int64)
    arrays['mask'] = mask.numpy().astype(np.float32)
    arrays['logits'] = logits.detach().numpy().astype(np.float32)
    arrays['loss'] = np.array(loss.item(), dtype=np.float32)
    np.savez(os.path.join(OUT, name + '.npz'), **arrays)
    print(f'{name}: loss {loss.item():.6f}, {len(arrays)} arrays')


def interop_case(name, cfg, T, B, seed):
    """A torch composer with random weights, saved by torch as a cantor checkpoint, and its
    logits for a fixed input (no lengths: every sequence has T steps)."""
    torch.manual_seed(seed)
    roll = cfg['model'] == 'pianoroll_rnn'
    model = Composer(cfg['cell'], cfg['vocab'], 0 if roll else cfg['embed'], cfg['hidden'],
                     cfg['layers'], roll, cfg['dropout'])
    with torch.no_grad():           # weights away from the initial distribution
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    model.eval()
    if roll:
        x = (torch.rand(T, B, 88) < 0.2).float()
    else:
        x = torch.randint(0, cfg['vocab'], (T, B))
    with torch.no_grad():
        logits = model(x)
    save_composer(os.path.join(OUT, name + '.safetensors'), model, cfg)
    np.savez(os.path.join(OUT, name + '.npz'), x=x.numpy().astype(np.float32 if roll else np.int64),
             logits=logits.numpy().astype(np.float32))
    print(f'{name}: {cfg["encoding"]} {cfg["cell"]} {cfg["layers"]}x{cfg["hidden"]}, x {list(x.shape)}')


def composer_config(encoding, cell, layers, hidden, embed, dropout, **enc):
    """cantor's "cantor_config" JSON object (models/config.h), fields in cantor's order."""
    roll = encoding == 'pianoroll'
    cfg = {'format': 'cantor.composer', 'version': 1, 'model': 'pianoroll_rnn' if roll else 'token_rnn',
           'encoding': encoding}
    cfg.update(enc)
    cfg.update({'cell': cell, 'layers': layers, 'hidden': hidden})
    if not roll:
        cfg['embed'] = embed
    cfg['dropout'] = dropout
    return cfg


def main():
    os.makedirs(OUT, exist_ok=True)
    interop_case('interop_melody_lstm',
                 composer_config('melody', 'lstm', 2, 12, 8, 0.25, vocab=38, min_pitch=48,
                                 max_pitch=84, steps_per_quarter=4), T=9, B=2, seed=11)
    interop_case('interop_tokens_gru',
                 composer_config('tokens', 'gru', 1, 7, 5, 0, vocab=9), T=6, B=1, seed=12)
    interop_case('interop_roll_lstm',
                 composer_config('pianoroll', 'lstm', 1, 8, 0, 0, vocab=88, steps_per_quarter=4,
                                 steps_per_second=0), T=5, B=2, seed=13)
    case('tokens_lstm', 'lstm', 7, 5, 6, 2, 5, [5, 3, 1], False, 1)
    case('tokens_gru', 'gru', 9, 4, 5, 1, 4, [2, 4], False, 2)
    case('tokens_rnn', 'rnn', 6, 3, 4, 2, 3, [3, 1, 2], False, 3)
    case('roll_lstm', 'lstm', 88, 0, 6, 2, 4, [4, 2], True, 4)
    case('roll_gru', 'gru', 88, 0, 5, 1, 3, [1, 3, 2], True, 5)


if __name__ == '__main__':
    main()
