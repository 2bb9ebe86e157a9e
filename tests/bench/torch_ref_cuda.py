#!/usr/bin/env python3
"""PyTorch's reference on CUDA for the workloads of the bench kit's torch_ref.py.

The kit (../shared/bench, or the copy carried to a GPU machine: --kit DIR) is imported, not
copied: its WORKLOADS, Net, make_batch, loss_fn, fwd_flops_per_token, SEED, LR and CLIP define
the workloads, so the models, data and FLOP counts are the kit's own. What differs: the model
and the fixed batch live on the GPU (nn.Embedding / nn.LSTM / nn.GRU run on cuDNN), and the
timing is CUDA-synchronized.

Training step (as the kit's): zero_grad -> forward over the whole sequence -> loss -> backward
-> clip_grad_norm_(1.0) -> Adam(1e-3) step, with torch.cuda.synchronize() before and after
every timed step; --batch N replaces the kit's batch (e.g. 256). Sampling: batch 1, one token
(frame) per forward call carrying the RNN state, softmax with temperature then multinomial
(frames: bernoulli of sigmoid), all on the GPU with a CUDA generator; the sampled token is read
back to the host every step (a real sampler emits it), which synchronizes (--no-sync-per-token
leaves the loop asynchronous instead, which only a sampler that never looks at its output can
do).

--precision picks the arithmetic (cantor's bench_rnn --precision has the same names):
  default  PyTorch's defaults (cuDNN's RNNs may use TF32, cuBLAS's matmuls do not)
  fp32     TF32 off in cuDNN and cuBLAS (= --strict-fp32): cantor's float32 default
  tf32     TF32 on in both (torch.backends.cuda.matmul.allow_tf32 and cudnn.allow_tf32)
  bf16     torch.autocast(device_type='cuda', dtype=torch.bfloat16) around the forward and the
           loss (training) or the forward (sampling); float32 parameters and Adam, no
           GradScaler (bf16 has float32's range); TF32 settings as PyTorch's defaults

Prints one JSON line per (workload, mode) run in the kit's format, with "engine":
"pytorch-cuda", "device" (the card's name), "batch", "precision" and the TF32 settings in force. All runs
happen in this one process (CUDA start-up is paid once), so peak_rss_mb is the process's peak
so far, not one run's.

  python3 tests/bench/torch_ref_cuda.py --kit ../shared/bench --list
  python3 tests/bench/torch_ref_cuda.py --kit .bench-kit --workload melody --mode train --batch 256
  python3 tests/bench/torch_ref_cuda.py --kit .bench-kit --batch kit,256   # all, both batches
  python3 tests/bench/torch_ref_cuda.py --kit .bench-kit --mode train --precision bf16
  python3 tests/bench/torch_ref_cuda.py --kit ../shared/bench --dry-run     # CPU, 1 step, no CUDA

Exit status: 0 done, 1 a run failed, 2 no kit / no torch / no CUDA device (with a message).
"""
import argparse
import contextlib
import json
import os
import resource
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def die(msg, code=2):
    print('torch_ref_cuda: ' + msg, file=sys.stderr, flush=True)
    sys.exit(code)


def find_kit(arg):
    """--kit, else $KIT, else the carried copy ./.bench-kit, else ../shared/bench."""
    cands = [arg] if arg else [os.environ.get('KIT'), os.path.join(REPO, '.bench-kit'),
                                os.path.join(REPO, '..', 'shared', 'bench')]
    for d in cands:
        if d and os.path.isfile(os.path.join(d, 'torch_ref.py')):
            return os.path.abspath(d)
    die('the bench kit (torch_ref.py) was not found in %s; pass --kit DIR (a copy of '
        '../shared/bench)' % (arg or ', '.join(c for c in cands if c)))


def load_kit(kit):
    sys.dont_write_bytecode = True        # the kit may be read-only (../shared/bench)
    sys.path.insert(0, kit)
    try:
        import torch_ref  # noqa: E402  (the kit; it imports torch)
    except ImportError as e:
        die('cannot import the kit\'s torch_ref.py from %s with %s: %s (PyTorch must be '
            'installed for this interpreter)' % (kit, sys.executable, e))
    for name in ('WORKLOADS', 'Net', 'make_batch', 'loss_fn', 'fwd_flops_per_token', 'SEED',
                 'LR', 'CLIP'):
        if not hasattr(torch_ref, name):
            die('%s/torch_ref.py has no %s: this script expects the kit\'s API (WORKLOADS, Net, '
                'make_batch, loss_fn, fwd_flops_per_token, SEED, LR, CLIP)' % (kit, name))
    return torch_ref


def tf32_settings(torch, precision='default'):
    """Reads TF32 in cuDNN's RNNs and cuBLAS's matmuls; precision 'fp32' turns it off in both,
    'tf32' on in both, anything else leaves PyTorch's defaults. PyTorch 2.9+ has per-backend
    fp32_precision flags and raises if the legacy allow_tf32 flags are mixed in, so the new API
    is used alone where it exists."""
    cudnn_rnn = getattr(torch.backends.cudnn, 'rnn', None)
    matmul = torch.backends.cuda.matmul
    want = {'fp32': 'ieee', 'tf32': 'tf32'}.get(precision)
    if cudnn_rnn is not None and hasattr(cudnn_rnn, 'fp32_precision') \
            and hasattr(matmul, 'fp32_precision'):
        if want:
            cudnn_rnn.fp32_precision = want
            matmul.fp32_precision = want
        return dict(cudnn_rnn_fp32=str(cudnn_rnn.fp32_precision),
                    matmul_fp32=str(matmul.fp32_precision))
    if want:
        torch.backends.cudnn.allow_tf32 = want == 'tf32'
        matmul.allow_tf32 = want == 'tf32'
    return dict(cudnn_rnn_fp32='tf32' if torch.backends.cudnn.allow_tf32 else 'ieee',
                matmul_fp32='tf32' if matmul.allow_tf32 else 'ieee')


def sync(dev):
    import torch
    if dev.type == 'cuda':
        torch.cuda.synchronize(dev)


def autocast(dev, precision):
    """torch.autocast to bf16 on dev for --precision bf16, else nothing."""
    import torch
    if precision != 'bf16':
        return contextlib.nullcontext()
    return torch.autocast(device_type=dev.type, dtype=torch.bfloat16)


def bench_train(kit, c, model, dev, steps, warmup, precision='default'):
    import torch
    g = torch.Generator().manual_seed(kit.SEED)
    x, y = kit.make_batch(c, g)                       # made on the host, as the kit does
    x, y = x.to(dev), y.to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=kit.LR)
    times = []
    sync(dev)
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with autocast(dev, precision):
            logits, _ = model(x)
            loss = kit.loss_fn(c, logits, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), kit.CLIP)
        opt.step()
        sync(dev)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    tokens = c['batch'] * c['seq']
    gflop = 3 * kit.fwd_flops_per_token(c) * tokens / 1e9
    return dict(tokens_per_s=tokens / med, ms_per_step=1e3 * med,
                ms_per_step_min=1e3 * min(times), ms_per_step_max=1e3 * max(times),
                steps=steps, warmup=warmup, tokens_per_step=tokens,
                gflop_per_step=gflop, achieved_gflops=gflop / med,
                final_loss=float(loss))


def bench_sample(kit, c, model, dev, n, temperature, sync_per_token, warmup=32,
                 precision='default'):
    import torch
    import torch.nn.functional as F
    model.eval()
    g = torch.Generator(device=dev).manual_seed(kit.SEED)
    if c['kind'] == 'tokens':
        x = torch.zeros(1, 1, dtype=torch.long, device=dev)
    else:
        x = torch.zeros(1, 1, c['keys'], device=dev)
    state = None
    checksum = 0
    with torch.no_grad():
        sync(dev)
        for i in range(warmup + n):
            if i == warmup:
                sync(dev)
                t0 = time.perf_counter()
            with autocast(dev, precision):
                logits, state = model(x, state)
            logits = logits.float() / temperature
            if c['kind'] == 'tokens':
                x = torch.multinomial(F.softmax(logits[0], -1), 1, generator=g).view(1, 1)
                if sync_per_token:
                    checksum += int(x.item())               # the host reads the token
            else:
                x = torch.bernoulli(torch.sigmoid(logits), generator=g)
                if sync_per_token:
                    checksum += int(x.sum().item())         # the host reads the frame
        sync(dev)
        dt = time.perf_counter() - t0
    return dict(tokens_per_s=n / dt, ms_per_token=1e3 * dt / n, tokens=n,
                temperature=temperature, batch=1, sync_per_token=sync_per_token,
                achieved_gflops=kit.fwd_flops_per_token(c) * n / dt / 1e9)


def parse_batches(text):
    """'--batch 256' or '--batch kit,256' (kit: the kit's own batch) -> [None, 256]."""
    if not text:
        return [None]
    out = []
    for b in text.split(','):
        b = b.strip()
        if b == 'kit':
            out.append(None)
        elif b.isdigit() and int(b) > 0:
            out.append(int(b))
        else:
            die('--batch %r: expected a positive number, \'kit\' or a comma-separated list of '
                'them (e.g. kit,256)' % text)
    return out


def run_one(kit, args, dev, dev_name, workload, mode, rss_base, batch_override=None):
    import torch
    c = dict(kit.WORKLOADS[workload])
    if batch_override and mode == 'train':
        c['batch'] = batch_override
    torch.manual_seed(kit.SEED)
    model = kit.Net(c).to(dev)                     # the kit's weights, then moved
    if mode == 'train':
        warmup = c.get('warmup', 2) if args.warmup is None else args.warmup
        steps = args.steps or c['steps']
        if args.dry_run:
            warmup, steps = 0, 1
        res = bench_train(kit, c, model, dev, steps, warmup, args.precision)
        batch = c['batch']
    else:
        n = args.sample_tokens or c['sample']
        if args.dry_run:
            n = 4
        res = bench_sample(kit, c, model, dev, n, args.temperature, not args.no_sync_per_token,
                           warmup=1 if args.dry_run else 32, precision=args.precision)
        batch = 1
    cuda = dev.type == 'cuda'
    out = dict(engine='pytorch-cuda' if cuda else 'pytorch-cpu-dryrun', workload=workload,
               mode=mode, unit='tokens' if c['kind'] == 'tokens' else 'frames')
    out.update(res)
    out.update(peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               rss_after_import_mb=rss_base, threads=torch.get_num_threads(),
               openblas_threads=None, torch=torch.__version__, device=dev_name, batch=batch,
               precision=args.precision,
               cuda=torch.version.cuda,
               cudnn=torch.backends.cudnn.version() if cuda else None,
               **args.tf32,
               env={k: os.environ.get(k) for k in ('CUDA_VISIBLE_DEVICES', 'OMP_NUM_THREADS',
                                                    'CUBLAS_WORKSPACE_CONFIG')},
               config={k: v for k, v in c.items() if k not in ('steps', 'warmup', 'sample')})
    if mode == 'train':
        out['config']['batch'] = c['batch']
    print(json.dumps(out), flush=True)
    del model
    if cuda:
        torch.cuda.empty_cache()


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--kit', help='the bench kit folder (default: $KIT, ./.bench-kit, ../shared/bench)')
    p.add_argument('--workload', help='a name of the kit\'s WORKLOADS, or several comma-separated '
                   '(default: all)')
    p.add_argument('--mode', choices=['train', 'sample', 'both'], default='both')
    p.add_argument('--batch', help='training batch: N, kit (the kit\'s, the default) or a list, '
                   'e.g. kit,256; sampling is always batch 1 and runs once')
    p.add_argument('--device', default='cuda:0', help='cuda:N (default cuda:0)')
    p.add_argument('--steps', type=int, help='timed training steps (default: the kit\'s)')
    p.add_argument('--warmup', type=int, help='untimed training steps first (default: the kit\'s)')
    p.add_argument('--sample-tokens', type=int, help='tokens/frames to sample (default: the kit\'s)')
    p.add_argument('--temperature', type=float, default=1.0)
    p.add_argument('--repeat', type=int, default=1, help='runs of each (workload, mode)')
    p.add_argument('--precision', choices=['default', 'fp32', 'tf32', 'bf16'],
                   help='default: PyTorch\'s defaults; fp32: TF32 off everywhere; tf32: TF32 on '
                        'in cuDNN and cuBLAS; bf16: torch.autocast to bfloat16 around forward and '
                        'loss (see the top of this file)')
    p.add_argument('--strict-fp32', action='store_true',
                   help='turn TF32 off in cuDNN and cuBLAS (PyTorch allows it in cuDNN by default); '
                        'the same as --precision fp32')
    p.add_argument('--no-sync-per-token', action='store_true',
                   help='sampling: never read the token back (an asynchronous loop)')
    p.add_argument('--list', action='store_true', help='print the kit\'s workloads and exit')
    p.add_argument('--dry-run', action='store_true',
                   help='build each model on the CPU and run 1 training step / 4 tokens (no CUDA '
                        'needed; checks this script against the kit)')
    args = p.parse_args()
    if args.strict_fp32:
        if args.precision not in (None, 'fp32'):
            die('--strict-fp32 and --precision %s contradict each other' % args.precision)
        args.precision = 'fp32'
    args.precision = args.precision or 'default'
    batches = parse_batches(args.batch)

    kit_dir = find_kit(args.kit)
    kit = load_kit(kit_dir)
    import torch

    names = list(kit.WORKLOADS) if not args.workload else args.workload.split(',')
    for w in names:
        if w not in kit.WORKLOADS:
            die('unknown workload %r (the kit has: %s)' % (w, ', '.join(kit.WORKLOADS)))
    if args.list:
        print('kit: %s; torch %s at %s; CUDA %s' % (
            kit_dir, torch.__version__, sys.executable,
            'available: ' + torch.cuda.get_device_name(0) if torch.cuda.is_available()
            else 'not available'))
        for k in names:
            c = kit.WORKLOADS[k]
            print(k, json.dumps(c), 'fwd_flops_per_token=%d' % kit.fwd_flops_per_token(c))
        return 0

    if args.dry_run:
        dev, dev_name = torch.device('cpu'), 'cpu (dry run)'
    else:
        if not torch.cuda.is_available():
            die('no CUDA device: torch %s (%s) reports torch.cuda.is_available() == False '
                '(CUDA build: %s). Run this on the GPU machine, or use --dry-run to check the '
                'script on the CPU' % (torch.__version__, sys.executable, torch.version.cuda))
        try:
            dev = torch.device(args.device)
        except RuntimeError as e:
            die('--device %s: %s' % (args.device, e))
        if dev.type != 'cuda':
            die('--device %s: expected cuda:N (this is the CUDA reference; the kit\'s '
                'torch_ref.py is the CPU one)' % args.device)
        idx = dev.index or 0
        if idx >= torch.cuda.device_count():
            die('--device %s: only %d CUDA device(s) visible' % (args.device,
                                                                  torch.cuda.device_count()))
        dev = torch.device('cuda', idx)
        torch.cuda.set_device(dev)
        dev_name = torch.cuda.get_device_name(dev)
        torch.backends.cudnn.enabled = True
        torch.zeros(1, device=dev)                       # CUDA context before rss_base
    args.tf32 = tf32_settings(torch, 'default' if args.dry_run else args.precision)
    rss_base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    modes = ['train', 'sample'] if args.mode == 'both' else [args.mode]
    failed = 0
    for _ in range(args.repeat):
        for w in names:
            for m in modes:
                for b in batches if m == 'train' else [None]:
                    try:
                        run_one(kit, args, dev, dev_name, w, m, rss_base, b)
                    except Exception as e:  # one run failing (out of memory, say) leaves the rest
                        failed += 1
                        print('torch_ref_cuda: %s %s (batch %s) failed: %s: %s' % (
                            w, m, b or 'kit', type(e).__name__, e), file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
