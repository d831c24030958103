"""Speed and memory of the mmMamba teacher against its linear and hybrid
students, in the same run.

For each model (the config's teacher architecture: all attention; linear:
every layer Mamba-2; hybrid: Mamba-2 except ``--hybrid-layers``) and each
sequence length, one image plus text tokens filling the length:

* prefill time (median of ``--repeats``) and peak memory of the prefill:
  on CUDA ``torch.cuda.max_memory_allocated``; on CPU the process's peak
  resident-set growth (``ru_maxrss`` minus the RSS before the prefill), each
  measurement in a fresh process so earlier runs cannot hide it;
* at ``--decode-context``: per-token latency (eager and, with
  ``--decode-compile``, with every model's step compiled) of greedy decoding steps after
  the prefill (median over ``--decode-tokens``, at each of
  ``--decode-threads`` CPU threads; each model is reported at its fastest,
  all counts are in the JSON) and the decoding state's
  size (the key/value cache of attention layers, which grows by
  concatenation as Hugging Face's ``DynamicCache`` does, with grouped-query
  attention reading shared key/value heads without copies; the convolution
  and SSM state of Mamba-2 layers).

Prefill times are fitted as ``time ~ length ** exponent`` (least squares in
log-log). Speed does not depend on the weights, so the models are built
at random initialisation with a RoPE range covering the longest sequence.
Prints JSON (also written to ``--out-dir``/mmmamba_benchmark.json) and
plots ``mmmamba_benchmark.png``::

    python tools/analysis_tools/benchmark_mmmamba.py
    python tools/analysis_tools/benchmark_mmmamba.py --lengths 1024 4096 --decode-context 4096
"""
import argparse
import json
import os
import os.path as osp
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

DEFAULT_CONFIG = 'configs/mmmamba/mmmamba-teacher_tiny_1xb32-1500it_synthshapes-caption.py'
KINDS = ('teacher', 'linear', 'hybrid')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='a config whose `teacher_model` (or `model`) is the teacher')
    parser.add_argument('--lengths', type=int, nargs='+', default=[1024, 2048, 4096, 8192, 16384])
    parser.add_argument('--decode-context', type=int, default=16384)
    parser.add_argument('--decode-tokens', type=int, default=64)
    parser.add_argument('--decode-threads', type=int, nargs='+', default=[1, 2],
                        help='CPU thread counts to decode with; each model is reported at '
                        'its fastest (one-token steps of a small model are bound by '
                        'per-operation overhead, which more threads can raise)')
    parser.add_argument('--decode-compile', action='store_true',
                        help='also time decoding with each model\'s one-token step compiled '
                        '(torch.compile, inductor); the compile time is reported')
    parser.add_argument('--hybrid-layers', type=int, nargs='+', default=[2, 5])
    parser.add_argument('--dim', type=int, help='override the config\'s width')
    parser.add_argument('--num-heads', type=int, help='override the config\'s query heads')
    parser.add_argument('--num-kv-heads', type=int,
                        help='override the config\'s key/value heads')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out-dir', default='work_dirs/mmmamba_benchmark')
    parser.add_argument('--in-process', action='store_true',
                        help='measure in this process (faster; CPU peak memory then only '
                        'counts growth beyond earlier peaks)')
    parser.add_argument('--worker', nargs=2, metavar=('KIND', 'LENGTH'), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _rss_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def build(kind: str, args, max_len: int):
    from mmengine.config import Config

    from mmfusion.registry import MODELS
    from mmfusion.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(args.config)
    model_cfg = dict(cfg.get('teacher_model', cfg.model))
    model_cfg.pop('data_preprocessor', None)
    model_cfg['max_len'] = max_len
    for key in ('dim', 'num_heads', 'num_kv_heads'):
        if getattr(args, key, None):
            model_cfg[key] = getattr(args, key)
    if kind != 'teacher':
        model_cfg.update(mixer='mamba2',
                         attention_layers=args.hybrid_layers if kind == 'hybrid' else [])
    return MODELS.build(model_cfg).to(args.device).eval()


def state_bytes(caches) -> int:
    return sum(t.numel() * t.element_size() for cache in caches for t in cache.values())


def worker(args) -> dict:
    """One model, one length, in this process: prefill (and decode) numbers."""
    import torch
    kind, length = args.worker[0], int(args.worker[1])
    device = torch.device(args.device)
    model = build(kind, args, max(length, args.decode_context)
                  + (args.decode_tokens * len(args.decode_threads) + 2)
                  * (1 + args.decode_compile) + 1)
    patches = model.patch_embed.num_patches
    img = torch.randn(1, 3, model.patch_embed.img_size, model.patch_embed.img_size, device=device)
    ids = torch.randint(4, model.tokenizer.vocab_size, (1, length - patches), device=device)

    def sync():
        if device.type == 'cuda':
            torch.cuda.synchronize()

    out = dict(model=kind, length=length)
    with torch.inference_mode():  # as deployed inference runs: no autograd bookkeeping
        model.forward_sequence(img, ids[:, :64])  # warm-up
        times = []
        for r in range(args.repeats):
            caches = model.new_caches()
            sync()
            if device.type == 'cuda':
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
            else:
                base = _rss_bytes()
            start = time.perf_counter()
            logits = model.forward_sequence(img, ids, caches=caches)
            sync()
            times.append(time.perf_counter() - start)
            if r == 0:
                if device.type == 'cuda':
                    peak = torch.cuda.max_memory_allocated() - base
                else:
                    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
                out['prefill_peak_mem_mb'] = max(peak, 0) / 2**20
        out['prefill_s'] = statistics.median(times)
        if length == args.decode_context:
            nxt = logits[:, -1:].argmax(-1)
            paths = dict(eager=model.forward_sequence)
            if args.decode_compile:
                # Both models the same way: the whole one-token step through
                # inductor; dynamic shapes, so the teacher's growing
                # key/value cache does not recompile every token.
                paths['compiled'] = torch.compile(model.forward_sequence, dynamic=True)
            threads = args.decode_threads if device.type == 'cpu' else [torch.get_num_threads()]
            default_threads = torch.get_num_threads()
            for path, step in paths.items():
                if path == 'compiled':
                    start = time.perf_counter()
                    for _ in range(2):  # compiles, then the first specialisation
                        nxt = step(None, nxt, caches=caches)[:, -1:].argmax(-1)
                    out['decode_compile_s'] = time.perf_counter() - start
                per_threads = {}
                for n in threads:
                    torch.set_num_threads(n)
                    steps = []
                    for _ in range(args.decode_tokens):
                        sync()
                        start = time.perf_counter()
                        logits = step(None, nxt, caches=caches)
                        sync()
                        steps.append(time.perf_counter() - start)
                        nxt = logits[:, -1:].argmax(-1)
                    per_threads[n] = statistics.median(steps) * 1e3
                torch.set_num_threads(default_threads)
                best = min(per_threads, key=per_threads.get)
                suffix = '' if path == 'eager' else '_compiled'
                out[f'decode_ms_per_token_by_threads{suffix}'] = per_threads
                out[f'decode_ms_per_token{suffix}'] = per_threads[best]
                out[f'decode_threads{suffix}'] = best
            out['decode_state_mb'] = state_bytes(caches) / 2**20
    return out


def measure(kind: str, length: int, args) -> dict:
    """:func:`worker`'s numbers, from a fresh process unless ``--in-process``."""
    if args.in_process:
        return worker(argparse.Namespace(**{**vars(args), 'worker': (kind, length)}))
    cmd = [sys.executable, __file__, '--worker', kind, str(length), '--config', args.config,
           '--decode-context', str(args.decode_context), '--decode-tokens',
           str(args.decode_tokens), '--decode-threads', *map(str, args.decode_threads),
           '--repeats', str(args.repeats), '--device', args.device,
           '--hybrid-layers', *map(str, args.hybrid_layers)]
    if args.decode_compile:
        cmd.append('--decode-compile')
    for key in ('dim', 'num_heads', 'num_kv_heads'):
        if getattr(args, key):
            cmd += [f'--{key.replace("_", "-")}', str(getattr(args, key))]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f'benchmark worker {kind} at {length} failed:\n{proc.stderr[-3000:]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fit_exponent(lengths, times) -> float:
    """Slope of log(time) against log(length)."""
    return float(np.polyfit(np.log(lengths), np.log(times), 1)[0])


def plot(result: dict, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for kind in KINDS:
        rows = [r for r in result['runs'] if r['model'] == kind]
        lengths = [r['length'] for r in rows]
        axes[0].loglog(lengths, [r['prefill_s'] for r in rows], 'o-',
                       label=f"{kind} (exponent {result['prefill_exponent'][kind]:.2f})")
        axes[1].plot(lengths, [r['prefill_peak_mem_mb'] for r in rows], 'o-', label=kind)
    axes[0].set(xlabel='sequence length', ylabel='prefill time (s)', title='prefill')
    axes[1].set(xlabel='sequence length', ylabel='peak memory (MiB)', title='prefill memory')
    decode = result['decode']
    x = np.arange(len(KINDS))
    axes[2].bar(x - 0.2, [decode[k]['decode_ms_per_token'] for k in KINDS], 0.4,
                label='ms / token')
    twin = axes[2].twinx()
    twin.bar(x + 0.2, [decode[k]['decode_state_mb'] for k in KINDS], 0.4, color='tab:orange',
             label='state MiB')
    axes[2].set_xticks(x, KINDS)
    axes[2].set(ylabel='decode latency (ms / token)',
                title=f"decoding at {result['decode_context']} tokens")
    twin.set_ylabel('decoding state (MiB)')
    for ax in axes[:2]:
        ax.legend()
    axes[2].legend(loc='upper left')
    twin.legend(loc='upper right')
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return {}
    if args.decode_context not in args.lengths:
        args.lengths = sorted(args.lengths + [args.decode_context])
    runs = []
    for kind in KINDS:
        for length in args.lengths:
            runs.append(measure(kind, length, args))
            print(f"{kind:8s} length {length:6d}: prefill {runs[-1]['prefill_s']:.3f} s, "
                  f"peak {runs[-1]['prefill_peak_mem_mb']:.1f} MiB", flush=True)
    exponents = {k: fit_exponent([r['length'] for r in runs if r['model'] == k],
                                 [r['prefill_s'] for r in runs if r['model'] == k])
                 for k in KINDS}
    decode_keys = [k for k in runs[-1] if k.startswith('decode_')]
    decode = {r['model']: {k: r[k] for k in decode_keys} for r in runs
              if 'decode_ms_per_token' in r}
    teacher = decode['teacher']
    ratios = {}
    for k in ('linear', 'hybrid'):
        ratios[k] = dict(decode_speedup=teacher['decode_ms_per_token']
                         / decode[k]['decode_ms_per_token'],
                         state_memory_reduction=1 - decode[k]['decode_state_mb']
                         / teacher['decode_state_mb'])
        if args.decode_compile:  # both compiled: the same path for both
            ratios[k]['decode_speedup_compiled'] = (teacher['decode_ms_per_token_compiled']
                                                    / decode[k]['decode_ms_per_token_compiled'])
    from mmfusion.models.mmmamba import mamba_ssm_available
    result = dict(config=args.config, device=args.device, threads=_threads(),
                  mamba_ssm_kernel=args.device != 'cpu' and mamba_ssm_available(),
                  hybrid_layers=args.hybrid_layers, decode_context=args.decode_context,
                  architecture={k: getattr(args, k) for k in ('dim', 'num_heads', 'num_kv_heads')},
                  runs=runs, prefill_exponent=exponents, decode=decode, vs_teacher=ratios)
    os.makedirs(args.out_dir, exist_ok=True)
    with open(osp.join(args.out_dir, 'mmmamba_benchmark.json'), 'w') as f:
        json.dump(result, f, indent=2)
    plot(result, osp.join(args.out_dir, 'mmmamba_benchmark.png'))
    print(json.dumps(dict(prefill_exponent=exponents, decode=decode, vs_teacher=ratios),
                     indent=2))
    return result


def _threads() -> int:
    import torch
    return torch.get_num_threads()


if __name__ == '__main__':
    main()
