"""What the train/val/test generators (``generate_synth_lesion.py``,
``generate_synthmatte.py``) share: their command line and the check that an
output folder already holds the requested dataset (``meta.json``)."""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Dict, Iterator, List, Optional


def parse_split_arguments(description: str, out: str, counts: Dict[str, int],
                          argv: Optional[List[str]] = None) -> argparse.Namespace:
    """``--out``, ``--num-<split>`` for each of ``counts`` (its defaults),
    ``--size`` (>= 32), ``--seed`` and ``--overwrite``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('--out', default=out, help='output folder')
    for split, count in counts.items():
        parser.add_argument(f'--num-{split}', type=int, default=count)
    parser.add_argument('--size', type=int, default=128, help='image side in pixels')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--overwrite', action='store_true',
                        help='regenerate even if OUT already holds a dataset')
    args = parser.parse_args(argv)
    if min(getattr(args, f'num_{split}') for split in counts) < 0 or args.size < 32:
        parser.error('counts must be >= 0 and --size >= 32')
    return args


def check_existing(out: str, params: dict) -> bool:
    """Return True when ``out`` already holds this exact dataset.

    Exits with an error when ``out`` is non-empty but holds something else.
    """
    if not osp.isdir(out) or not os.listdir(out):
        return False
    meta_path = osp.join(out, 'meta.json')
    if not osp.isfile(meta_path):
        sys.exit(f'error: {out} is not empty and has no meta.json; '
                 'choose another --out or pass --overwrite')
    with open(meta_path) as f:
        existing = json.load(f)
    if existing != params:
        sys.exit(f'error: {out} was generated with different parameters\n'
                 f'  existing:  {json.dumps(existing, sort_keys=True)}\n'
                 f'  requested: {json.dumps(params, sort_keys=True)}\n'
                 'pass --overwrite to regenerate it')
    return True


def progress(count: int, desc: str) -> Iterator[int]:
    """``range(count)`` with mmengine's progress bar (rate and ETA) on stderr,
    so that stdout keeps the generator's one-line summary."""
    from mmengine.utils import ProgressBar
    if count <= 0:
        return
    print(f'{desc}: {count}', file=sys.stderr)
    bar = ProgressBar(count, file=sys.stderr)
    for i in range(count):
        yield i
        bar.update()
    print(file=sys.stderr)
