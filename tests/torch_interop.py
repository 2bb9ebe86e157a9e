#!/usr/bin/env python3
"""PyTorch <-> cantor composer checkpoints.

As a module (tests/models/gen_golden_models.py imports it): the PyTorch equivalent of cantor's
composer networks (models/composer.h), safetensors read and written by hand (Debian has no
python3-safetensors; the format is 8 bytes of little-endian header length, a JSON header with
dtype, shape and data_offsets per tensor and string metadata under "__metadata__", then the
raw little-endian data), and the model a checkpoint's "cantor_config" metadata describes.

As a script (tests/check_torch_interop.sh runs it): for every NAME.safetensors in a folder
(checkpoints written by cantor's cc_save) with a NAME.npz beside it (the input "x" and the
logits cantor computed for it, "logits", and stepwise, "logits_step"), builds the torch model
from the file's own config, loads the weights, runs the same input and compares the logits
(1e-4 relative). Exits 1 on any mismatch, 2 when there is nothing to check.

    /usr/bin/python3 tests/torch_interop.py DIR
"""
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

CELLS = {'lstm': nn.LSTM, 'gru': nn.GRU, 'rnn': nn.RNN}
ROLL_KEYS = 88
CONFIG_KEY = 'cantor_config'


class Composer(nn.Module):
    """models/composer.h: Embedding -> LSTM/GRU/RNN -> Linear (token models), or 88-key
    frames -> RNN -> Linear (piano roll); time-major, state_dict names embed.*, rnn.*, out.*"""

    def __init__(self, cell, vocab, embed, hidden, layers, roll, dropout=0.0):
        super().__init__()
        self.roll = roll
        if not roll:
            self.embed = nn.Embedding(vocab, embed)
        self.rnn = CELLS[cell](ROLL_KEYS if roll else embed, hidden, layers,
                               dropout=dropout if layers > 1 else 0.0)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, x, lengths=None):
        h = x if self.roll else self.embed(x)
        if lengths is None:
            o, _ = self.rnn(h)
        else:
            packed = pack_padded_sequence(h, lengths, enforce_sorted=False)
            o, _ = self.rnn(packed)
            o, _ = pad_packed_sequence(o, total_length=x.shape[0])
        return self.out(o)


def composer_from_config(cfg):
    """The (untrained) torch model a cantor_config dict describes."""
    if cfg.get('format') != 'cantor.composer':
        raise ValueError('not a cantor composer config: %r' % cfg)
    roll = cfg['model'] == 'pianoroll_rnn'
    return Composer(cfg['cell'], int(cfg['vocab']), 0 if roll else int(cfg['embed']),
                    int(cfg['hidden']), int(cfg['layers']), roll, float(cfg.get('dropout', 0)))


# ---- safetensors, by hand ---------------------------------------------------------------------
DTYPES = {'F32': '<f4', 'I64': '<i8'}


def write_safetensors(path, tensors, metadata=None):
    """tensors: name -> numpy array (float32 or int64); metadata: str -> str. Tensors are
    stored back to back in name order; the header is padded with spaces to a multiple of 8."""
    header, blobs, off = {}, [], 0
    if metadata:
        header['__metadata__'] = {str(k): str(v) for k, v in metadata.items()}
    for name in sorted(tensors):
        a = np.asarray(tensors[name])
        dt = 'F32' if a.dtype == np.float32 else 'I64' if a.dtype == np.int64 else None
        if dt is None:
            raise ValueError('%s: dtype %s (F32 or I64 only)' % (name, a.dtype))
        b = np.ascontiguousarray(a, dtype=DTYPES[dt]).tobytes()
        header[name] = {'dtype': dt, 'shape': list(a.shape), 'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(',', ':')).encode('utf-8')
    h += b' ' * (-len(h) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """(tensors: name -> numpy array, metadata: dict) of a safetensors file (F32, I64)."""
    with open(path, 'rb') as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError('%s: %d bytes, shorter than the 8-byte header length' % (path, len(raw)))
    (n,) = struct.unpack('<Q', raw[:8])
    if 8 + n > len(raw):
        raise ValueError('%s: header length %d runs past the end (%d bytes)' % (path, n, len(raw)))
    header = json.loads(raw[8:8 + n].decode('utf-8'))
    meta = header.pop('__metadata__', {}) or {}
    data = raw[8 + n:]
    out = {}
    for name, e in header.items():
        if e['dtype'] not in DTYPES:
            raise ValueError('%s: tensor %s has dtype %s' % (path, name, e['dtype']))
        b, end = e['data_offsets']
        a = np.frombuffer(data[b:end], dtype=DTYPES[e['dtype']])
        if a.size != int(np.prod(e['shape'], dtype=np.int64)):
            raise ValueError('%s: tensor %s: %d values for shape %s' % (path, name, a.size, e['shape']))
        out[name] = a.reshape(e['shape']).copy()
    return out, meta


def save_composer(path, model, cfg):
    """A checkpoint as cantor's cc_save writes it: every parameter under its state_dict name,
    the config JSON under "cantor_config"."""
    tensors = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    write_safetensors(path, tensors, {CONFIG_KEY: json.dumps(cfg, separators=(',', ':'))})


def load_composer(path):
    """(model in eval mode, config dict) of a cantor checkpoint."""
    tensors, meta = read_safetensors(path)
    if CONFIG_KEY not in meta:
        raise ValueError('%s: no "%s" metadata: not a cantor composer checkpoint' % (path, CONFIG_KEY))
    cfg = json.loads(meta[CONFIG_KEY])
    model = composer_from_config(cfg)
    state = model.state_dict()
    missing = sorted(set(state) - set(tensors))
    extra = sorted(set(tensors) - set(state))
    if missing or extra:
        raise ValueError('%s: missing %s, unexpected %s' % (path, missing, extra))
    for k, v in tensors.items():
        if tuple(v.shape) != tuple(state[k].shape):
            raise ValueError('%s: %s has shape %s, the model needs %s'
                             % (path, k, v.shape, tuple(state[k].shape)))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()})
    model.eval()
    return model, cfg


# ---- the check ---------------------------------------------------------------------------------
def close(got, want, rtol=1e-4, atol=1e-5):
    """(ok, worst relative error) of got against want: |got - want| <= atol + rtol * |want|."""
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    tol = atol + rtol * np.abs(want.astype(np.float64))
    worst = float(np.max(err / (np.abs(want) + atol))) if err.size else 0.0
    return bool(np.all(err <= tol)), worst


def check_one(ckpt, npz):
    model, cfg = load_composer(ckpt)
    data = np.load(npz)
    x = torch.from_numpy(data['x'])
    with torch.no_grad():
        logits = model(x).numpy()
    bad = []
    for key in ('logits', 'logits_step'):
        if key not in data:
            continue
        ok, worst = close(data[key], logits)
        if not ok:
            bad.append('%s: worst relative difference %.3g' % (key, worst))
    desc = '%s %s %dx%d' % (cfg['encoding'], cfg['cell'], cfg['layers'], cfg['hidden'])
    return desc, list(x.shape), bad


def main(argv):
    if len(argv) != 2 or not os.path.isdir(argv[1]):
        print(__doc__.strip().splitlines()[-1])
        return 2
    folder = argv[1]
    names = sorted(f[:-len('.safetensors')] for f in os.listdir(folder) if f.endswith('.safetensors'))
    checked = failed = 0
    for name in names:
        npz = os.path.join(folder, name + '.npz')
        if not os.path.exists(npz):
            continue
        desc, shape, bad = check_one(os.path.join(folder, name + '.safetensors'), npz)
        checked += 1
        if bad:
            failed += 1
            print('MISMATCH %s (%s, input %s): %s' % (name, desc, shape, '; '.join(bad)))
        else:
            print('ok  %s: PyTorch gives cantor\'s logits for %s, input %s' % (name, desc, shape))
    print('torch_interop: %d of %d checkpoints agree' % (checked - failed, checked))
    if checked == 0:
        return 2
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
