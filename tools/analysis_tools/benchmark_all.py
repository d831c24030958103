"""One speed table for the toolkit: every number a ratio against its baseline,
measured in the same run on the same machine.

Sections (``--only`` picks some):

* ``ssd``: the chunked SSD scan (:func:`mmfusion.models.mmmamba.ssd_chunked`,
  chunk size measured per shape) against transformers' Mamba-2 PyTorch scan
  (``mamba2_chunk_scan``, the path its ``Mamba2Mixer`` takes without
  ``mamba_ssm``) at the same shapes (default L = 16384, 8 heads,
  P = N = 32), given its fastest of the chunk sizes ours chooses from
  (``CHUNK_CANDIDATES``, 32-256; its config's default is 256). Also the
  fraction of the fp32 matmul peak this machine reaches (a 2048^3
  ``torch.mm``, measured between the scan runs): counted with
  the scan's useful work, ``4 L H P N`` multiply-adds x 2 (the recurrence's,
  independent of the chunk size), and with what the chunked algorithm
  executes. Equality with the float64 recurrence is checked at the same shape.
* ``decode``: mmMamba's linear student against its attention teacher, one
  token at a time after a 16K-token prefill, at the tiny recipes' width,
  eager and with both models' step compiled
  (:mod:`benchmark_mmmamba`, ``--decode-compile``).
* ``runner``: mmengine's Runner against a bare PyTorch loop on tiny GMS
  (:mod:`benchmark_runner_overhead`).
* ``compile``: compiled against eager train steps of each tiny recipe
  (:mod:`benchmark_compile`).
* ``cache``: a frozen encoder's features cached against recomputed
  (:mod:`benchmark_feature_cache`).

Prints the table, writes ``benchmark_all.json`` (every section's full
numbers) and ``benchmark_all.png`` (the ratios) to ``--out-dir``::

    python tools/analysis_tools/benchmark_all.py
    python tools/analysis_tools/benchmark_all.py --only ssd decode
"""
import argparse
import json
import os
import os.path as osp
import platform
import sys
import time
import traceback
from typing import Callable, Dict, List

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

import benchmark_compile  # noqa: E402
import benchmark_feature_cache  # noqa: E402
import benchmark_mmmamba  # noqa: E402
import benchmark_runner_overhead  # noqa: E402

SECTIONS = ('ssd', 'decode', 'runner', 'compile', 'cache')
GMS_CONFIG = 'configs/gms/gms_kl-f4-tiny_1xb8-800it_synth-lesion.py'
CACHE_CONFIG = 'configs/clip/linear-probe_clip-vit-tiny_1xb64-2e_synthshapes.py'


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--only', nargs='+', choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument('--ssd-shape', type=int, nargs=4, default=[16384, 8, 32, 32],
                        metavar=('L', 'H', 'P', 'N'))
    parser.add_argument('--ssd-repeats', type=int, default=7)
    parser.add_argument('--decode-context', type=int, default=16384)
    parser.add_argument('--compile-iters', type=int, default=20)
    parser.add_argument('--compile-configs', nargs='+',
                        default=list(benchmark_compile.TINY_RECIPES),
                        help='tiny recipes for the compile section (default: one per family)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        help='where the SSD and decode sections run (the training sections '
                        'follow mmengine: the GPU when there is one)')
    parser.add_argument('--out-dir', default='work_dirs/benchmark_all')
    return parser.parse_args(argv)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _best_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        _sync()
        start = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_peak_gflops(size: int = 2048, repeats: int = 5, device: str = 'cpu') -> float:
    """fp32 ``torch.mm`` throughput of a square product, best of ``repeats``
    (TF32 off on CUDA: the peak of true fp32)."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        return 2 * size ** 3 / _best_seconds(lambda: torch.mm(a, b), repeats) / 1e9
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32


def bench_ssd(args) -> dict:
    from transformers.models.mamba2.modeling_mamba2 import mamba2_chunk_scan

    from mmfusion.models.mmmamba.ssd import (
        CHUNK_CANDIDATES,
        ssd_chunked,
        ssd_recurrent,
        tuned_chunk_size,
    )
    length, heads, p, n = args.ssd_shape
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, length, heads, p, generator=g)
    dt = torch.rand(1, length, heads, generator=g) * 0.1 + 0.001  # the mixer's initial range
    A = -torch.rand(heads, generator=g) * 2 - 0.5
    B = torch.randn(1, length, heads, n, generator=g)
    C = torch.randn(1, length, heads, n, generator=g)
    x, dt, A, B, C = (t.to(args.device) for t in (x, dt, A, B, C))
    with torch.inference_mode():
        chunk = tuned_chunk_size(x, dt, A, B, C)
        ours = lambda: ssd_chunked(x, dt, A, B, C, chunk)  # noqa: E731
        theirs = {q: (lambda q=q: mamba2_chunk_scan(x, dt, A, B, C, q,
                                                    return_final_states=True))
                  for q in CHUNK_CANDIDATES}  # the baseline gets its fastest chunk
        ours_s, theirs_s, peaks = [], {q: [] for q in theirs}, []
        for _ in range(3):  # interleaved, so drifts of a shared machine hit all alike
            peaks.append(matmul_peak_gflops(device=args.device))
            ours_s.append(_best_seconds(ours, args.ssd_repeats))
            for q, fn in theirs.items():
                theirs_s[q].append(_best_seconds(fn, max(2, args.ssd_repeats // 3)))
        y, state = ours()
        y_ref, s_ref = ssd_recurrent(*(t.double() for t in (x, dt, A, B, C)))
    peak, ours_best = max(peaks), min(ours_s)
    theirs_best = {q: min(v) for q, v in theirs_s.items()}
    baseline_chunk = min(theirs_best, key=theirs_best.get)
    useful = 4 * length * heads * p * n  # 2 multiply-adds per state element and step
    executed = 2 * length * heads * (chunk * (n + p) + 2 * n * p)
    return dict(
        shape=dict(L=length, H=heads, P=p, N=n), chunk_size=chunk, seconds=ours_best,
        transformers_seconds=theirs_best, transformers_chunk_size=baseline_chunk,
        speedup_vs_transformers=theirs_best[baseline_chunk] / ours_best,
        matmul_peak_gflops=peak,
        useful_gflops=useful / ours_best / 1e9,
        fraction_of_peak=useful / ours_best / 1e9 / peak,
        executed_fraction_of_peak=executed / ours_best / 1e9 / peak,
        max_rel_err_y=float((y.double() - y_ref).abs().max() / y_ref.abs().max()),
        max_rel_err_state=float((state.double() - s_ref).abs().max() / s_ref.abs().max()))


def bench_decode(args) -> dict:
    bm_args = benchmark_mmmamba.parse_args(
        ['--lengths', str(args.decode_context), '--decode-context', str(args.decode_context),
         '--decode-tokens', '32', '--repeats', '1', '--decode-compile',
         '--device', args.device])
    runs = {kind: benchmark_mmmamba.measure(kind, args.decode_context, bm_args)
            for kind in ('teacher', 'linear')}
    teacher, linear = runs['teacher'], runs['linear']
    return dict(context=args.decode_context, runs=runs,
                speedup_eager=teacher['decode_ms_per_token'] / linear['decode_ms_per_token'],
                speedup_compiled=(teacher['decode_ms_per_token_compiled']
                                  / linear['decode_ms_per_token_compiled']))


def bench_runner(args) -> dict:
    return benchmark_runner_overhead.run(GMS_CONFIG, cfg_options={'model.vae.pretrained': None},
                                         work_dir=osp.join(args.out_dir, 'runner'))


def bench_compile(args) -> dict:
    # The overrides TINY_RECIPES keeps for its recipes (data roots) go along.
    configs = [(c, benchmark_compile.TINY_RECIPES.get(c, {})) for c in args.compile_configs]
    return benchmark_compile.run(configs, iters=args.compile_iters)


def bench_cache(args) -> dict:
    return benchmark_feature_cache.main(argparse.Namespace(
        config=CACHE_CONFIG, encoder=['encoder'], num_samples=None, epochs=2, work_dir=None))


def table(results: Dict[str, dict]) -> List[dict]:
    """Rows of (what, baseline, ratio, detail)."""
    rows = []
    results = {k: r for k, r in results.items() if 'error' not in r}
    if 'ssd' in results:
        r = results['ssd']
        shape = 'L={L} H={H} P={P} N={N}'.format(**r['shape'])
        rows.append(dict(what=f'SSD scan ({shape}, chunk {r["chunk_size"]})',
                         baseline=f'transformers mamba2_chunk_scan (chunk '
                                  f'{r["transformers_chunk_size"]})',
                         ratio=r['speedup_vs_transformers'],
                         detail=f'{r["seconds"] * 1e3:.1f} ms; {100 * r["fraction_of_peak"]:.1f}% '
                                f'of fp32 peak {r["matmul_peak_gflops"]:.0f} GFLOP/s (useful), '
                                f'{100 * r["executed_fraction_of_peak"]:.1f}% (executed); rel. '
                                f'err {max(r["max_rel_err_y"], r["max_rel_err_state"]):.1e}'))
    if 'decode' in results:
        r = results['decode']
        t, s = r['runs']['teacher'], r['runs']['linear']
        for path, suffix in (('eager', ''), ('compiled', '_compiled')):
            rows.append(dict(
                what=f'mmMamba linear decode at {r["context"]} ({path})',
                baseline=f'attention teacher ({path})', ratio=r[f'speedup_{path}'],
                detail=f'{s["decode_ms_per_token" + suffix]:.2f} vs '
                       f'{t["decode_ms_per_token" + suffix]:.2f} ms/token'))
    if 'runner' in results:
        r = results['runner']
        rows.append(dict(what='mmengine Runner, tiny GMS', baseline='bare PyTorch loop',
                         ratio=r['runner_over_bare'],
                         detail=f'{r["runner_best"]} vs {r["bare_best"]} it/s'))
    for name, r in results.get('compile', {}).items():
        if isinstance(r, dict) and 'speedup' in r:
            rows.append(dict(what=f'compiled train step: {osp.basename(name)}',
                             baseline='eager step', ratio=r['speedup'],
                             detail=f'{r["compiled_s_per_iter"] * 1e3:.0f} vs '
                                    f'{r["eager_s_per_iter"] * 1e3:.0f} ms/it; compile '
                                    f'{r["compile_s"]:.0f} s'))
    if 'cache' in results:
        r = results['cache']
        rows.append(dict(what='frozen-encoder feature cache (last epoch)',
                         baseline='encoder recomputed', ratio=r['last_epoch_speedup'],
                         detail=f'losses identical: {r["losses_identical"]}'))
    return rows


def format_table(rows: List[dict]) -> str:
    lines = ['| what | baseline (same run) | ratio | detail |', '|---|---|---|---|']
    lines += [f'| {r["what"]} | {r["baseline"]} | {r["ratio"]:.2f}x | {r["detail"]} |'
              for r in rows]
    return '\n'.join(lines)


def plot(rows: List[dict], path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.2))
    ratios = [r['ratio'] for r in rows]
    ax.barh(range(len(rows)), ratios, color=['tab:green' if v >= 1 else 'tab:red'
                                             for v in ratios])
    ax.set_yticks(range(len(rows)), [r['what'] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.axvline(1.0, color='k', lw=0.8)
    ax.set_xscale('log')
    ax.set_xlabel('ratio against the baseline of the same run (log scale; >1 = faster)')
    for i, v in enumerate(ratios):
        ax.text(v, i, f' {v:.2f}x', va='center', fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv=None) -> dict:
    args = parse_args(argv)
    benches = dict(ssd=bench_ssd, decode=bench_decode, runner=bench_runner,
                   compile=bench_compile, cache=bench_cache)
    os.makedirs(args.out_dir, exist_ok=True)
    machine = dict(platform=platform.platform(), processor=platform.processor(),
                   cpus=os.cpu_count(), threads=torch.get_num_threads(),
                   torch=torch.__version__,
                   cuda=torch.cuda.get_device_name() if torch.cuda.is_available() else None)
    results = {}
    for name in args.only:
        print(f'== {name}', flush=True)
        start = time.perf_counter()
        try:
            results[name] = benches[name](args)
        except Exception as exc:  # a failed section must not lose the others' minutes
            traceback.print_exc()
            results[name] = dict(error=f'{type(exc).__name__}: {exc}')
        print(f'== {name}: {time.perf_counter() - start:.0f} s', flush=True)
        out = dict(machine=machine, table=table(results), results=results)
        with open(osp.join(args.out_dir, 'benchmark_all.json'), 'w') as f:
            json.dump(out, f, indent=2, default=str)  # after every section
    plot(out['table'], osp.join(args.out_dir, 'benchmark_all.png'))
    print(format_table(out['table']))
    for name, error in failures(results).items():
        print(f'{name} failed: {error}', file=sys.stderr)
    return out


def failures(results: Dict[str, dict]) -> Dict[str, str]:
    """Section (or ``compile: config``) -> error, for what did not measure."""
    failed = {k: r['error'] for k, r in results.items() if 'error' in r}
    failed.update({f'compile: {k}': r['error'] for k, r in results.get('compile', {}).items()
                   if isinstance(r, dict) and 'error' in r})
    return failed


if __name__ == '__main__':
    sys.exit(1 if failures(main()['results']) else 0)

