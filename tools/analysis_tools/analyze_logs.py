"""Plot training curves and training time from mmengine's JSON scalar logs.

    python tools/analysis_tools/analyze_logs.py plot_curve RUN1/vis_data/scalars.json \\
        [RUN2/.../scalars.json ...] --keys loss [mDice ...] [--legend a b] --out curves.png
    python tools/analysis_tools/analyze_logs.py cal_train_time RUN/vis_data/scalars.json

A log is the ``vis_data/scalars.json`` (or ``<timestamp>.json``) that mmengine's
LocalVisBackend writes under ``work_dirs/<config>/<timestamp>/``: one JSON object
per line, training lines carrying ``loss``/``lr``/``time`` and a ``step`` (the
iteration), validation lines the metrics and the ``step`` they were taken at.
A run's folder (``work_dirs/<config>/<timestamp>``) is accepted too.
"""
import argparse
import json
import os.path as osp
from typing import Dict, List, Sequence

import numpy as np


def find_log(path: str) -> str:
    """A scalars log path, or the one inside a run folder."""
    if osp.isdir(path):
        candidate = osp.join(path, 'vis_data', 'scalars.json')
        if not osp.isfile(candidate):
            raise FileNotFoundError(f'{path} has no vis_data/scalars.json (is it a run folder '
                                    'written by tools/train.py?)')
        return candidate
    if not osp.isfile(path):
        raise FileNotFoundError(f'log file not found: {path}')
    return path


def load_log(path: str) -> List[dict]:
    """The log's JSON lines (blank lines skipped; a broken line names its number)."""
    path = find_log(path)
    records = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f'{path}:{lineno} is not a JSON line: {err}') from None
    if not records:
        raise ValueError(f'{path} holds no records')
    return records


def series(records: Sequence[dict], key: str, path: str = 'log') -> Dict[str, np.ndarray]:
    """``{'step': ..., 'value': ...}`` of ``key`` over the records that log it."""
    rows = [(r['step'], r[key]) for r in records if key in r and 'step' in r]
    if not rows:
        known = sorted({k for r in records for k in r} - {'step'})
        raise KeyError(f'{path} never logs {key!r}; it logs {known}')
    steps, values = zip(*rows)
    return dict(step=np.asarray(steps), value=np.asarray(values, dtype=float))


def plot_curve(logs: Sequence[str], keys: Sequence[str], out: str,
               legend: Sequence[str] = None, title: str = None) -> str:
    """One subplot per key, one line per run; writes ``out`` (PNG)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    if legend is not None and len(legend) != len(logs):
        raise ValueError(f'--legend has {len(legend)} names for {len(logs)} logs')
    legend = legend or [osp.basename(osp.dirname(osp.dirname(find_log(p)))) or p for p in logs]
    records = [load_log(p) for p in logs]
    fig, axes = plt.subplots(len(keys), 1, figsize=(7, 3 * len(keys)), squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        for path, recs, name in zip(logs, records, legend):
            s = series(recs, key, path)
            ax.plot(s['step'], s['value'], marker='.' if len(s['step']) < 30 else None,
                    label=name)
        ax.set_xlabel('iteration')
        ax.set_ylabel(key)
        ax.legend()
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def cal_train_time(log: str) -> dict:
    """Mean / slowest / fastest training-iteration time (s) of a run, from the
    ``time`` of the lines that carry ``lr`` (validation lines time whole passes)."""
    s = series([r for r in load_log(log) if 'lr' in r], 'time', log)
    t = s['value']
    return dict(mean=float(t.mean()), std=float(t.std()), slowest=float(t.max()),
                fastest=float(t.min()), slowest_iter=int(s['step'][t.argmax()]),
                fastest_iter=int(s['step'][t.argmin()]), iters=len(t))


def main(argv=None):
    parser = argparse.ArgumentParser(description='Analyse mmengine JSON scalar logs')
    sub = parser.add_subparsers(dest='command', required=True)
    plot = sub.add_parser('plot_curve', help='plot keys of one or several runs to a PNG')
    plot.add_argument('logs', nargs='+', help='scalars.json files or run folders')
    plot.add_argument('--keys', nargs='+', default=['loss'], help='scalars to plot')
    plot.add_argument('--legend', nargs='+', help='one name per log (default: run folder)')
    plot.add_argument('--title')
    plot.add_argument('--out', default='curves.png', help='PNG to write')
    timing = sub.add_parser('cal_train_time', help='iteration time statistics per run')
    timing.add_argument('logs', nargs='+')
    args = parser.parse_args(argv)
    if args.command == 'plot_curve':
        print(f'wrote {plot_curve(args.logs, args.keys, args.out, args.legend, args.title)}')
    else:
        for log in args.logs:
            t = cal_train_time(log)
            print(f'{log}: {t["iters"]} iterations, {t["mean"]:.4f} +- {t["std"]:.4f} s/iter; '
                  f'slowest iteration {t["slowest_iter"]} ({t["slowest"]:.4f} s), fastest '
                  f'{t["fastest_iter"]} ({t["fastest"]:.4f} s)')


if __name__ == '__main__':
    main()
