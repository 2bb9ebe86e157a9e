#!/usr/bin/env python3
"""Golden values for tests/models/test_models.c: the composer networks in PyTorch.

Writes tests/models/fixtures/<case>.npz holding every parameter under its state_dict name,
the batch (x, y, lengths, mask), the logits, the loss and every parameter's gradient
("grad.<name>"). The networks are the PyTorch equivalents of models/composer.h:
  token model:  Embedding -> LSTM/GRU/RNN (packed, variable lengths) -> Linear,
                cross_entropy(ignore_index=-100), mean over real targets
  piano roll:   LSTM on 88-key frames -> Linear, BCE-with-logits summed over keys,
                averaged over the real frames (mask)
Run from the repository root: /usr/bin/python3 tests/models/gen_golden_models.py
"""
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, 'fixtures')
CELLS = {'lstm': nn.LSTM, 'gru': nn.GRU, 'rnn': nn.RNN}


class Composer(nn.Module):
    def __init__(self, cell, vocab, embed, hidden, layers, roll):
        super().__init__()
        self.roll = roll
        if not roll:
            self.embed = nn.Embedding(vocab, embed)
        self.rnn = CELLS[cell](88 if roll else embed, hidden, layers)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, x, lengths):
        h = x if self.roll else self.embed(x)
        packed = pack_padded_sequence(h, lengths, enforce_sorted=False)
        o, _ = self.rnn(packed)
        o, _ = pad_packed_sequence(o, total_length=x.shape[0])
        return self.out(o)


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


def main():
    os.makedirs(OUT, exist_ok=True)
    case('tokens_lstm', 'lstm', 7, 5, 6, 2, 5, [5, 3, 1], False, 1)
    case('tokens_gru', 'gru', 9, 4, 5, 1, 4, [2, 4], False, 2)
    case('tokens_rnn', 'rnn', 6, 3, 4, 2, 3, [3, 1, 2], False, 3)
    case('roll_lstm', 'lstm', 88, 0, 6, 2, 4, [4, 2], True, 4)
    case('roll_gru', 'gru', 88, 0, 5, 1, 3, [1, 3, 2], True, 5)


if __name__ == '__main__':
    main()
