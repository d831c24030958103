"""Feature-cache benchmark: train a frozen-encoder config with and without
``FeatureCacheHook`` and compare epoch times and losses.

Both runs use the same config, seed and data order. Without the cache every
epoch runs the frozen encoder; with it, epoch 1 runs the encoder and writes
each sample's features, later epochs read them from disk. Prints JSON with
the wall time of every epoch of both runs, the ratio of the last epochs
(no cache / cache) and the largest difference between the two runs' losses.

Example::

    python tools/analysis_tools/benchmark_feature_cache.py \\
        configs/clip/linear-probe_clip-vit-tiny_1xb64-2e_synthshapes.py
"""
import argparse
import json
import os.path as osp
import shutil
import tempfile
import time
from typing import Dict, List, Optional

from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmfusion.utils import register_all_modules


class EpochRecorder(Hook):
    """Records each training epoch's wall time and every iteration's loss."""

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self.epoch_times: List[float] = []
        self.losses: List[float] = []

    def before_train_epoch(self, runner) -> None:
        self._start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.losses.append(float(outputs['loss']))

    def after_train_epoch(self, runner) -> None:
        self.epoch_times.append(time.perf_counter() - self._start)


def run(cfg: Config, work_dir: str, cache_dir: Optional[str],
        encoders: List[str]) -> EpochRecorder:
    """Train ``cfg``; with ``cache_dir``, the ``encoders``' outputs are cached there."""
    cfg = cfg.copy()
    cfg.work_dir = work_dir
    cfg.custom_hooks = [h for h in cfg.get('custom_hooks', []) if h['type'] != 'FeatureCacheHook']
    if cache_dir:
        cfg.custom_hooks.append(dict(type='FeatureCacheHook', encoders=list(encoders),
                                     cache_dir=cache_dir))
    runner = Runner.from_cfg(cfg)
    recorder = EpochRecorder()
    runner.register_hook(recorder)
    runner.train()
    return recorder


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Feature-cache benchmark')
    parser.add_argument('config', nargs='?',
                        default='configs/clip/linear-probe_clip-vit-tiny_1xb64-2e_synthshapes.py')
    parser.add_argument('--encoder', nargs='+', default=['encoder'],
                        help='submodule names of the frozen encoders')
    parser.add_argument('--num-samples', type=int, default=None,
                        help='train on the first N samples only (a shorter benchmark)')
    parser.add_argument('--epochs', type=int, default=2)
    parser.add_argument('--work-dir', default=None, help='default: a temporary folder')
    return parser.parse_args()


def main(args: argparse.Namespace) -> Dict:
    register_all_modules()
    cfg = Config.fromfile(args.config)
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=args.epochs,
                         val_interval=args.epochs + 1)
    cfg.default_hooks.checkpoint = None  # time training only
    if args.num_samples:
        cfg.train_dataloader.dataset.indices = args.num_samples
    notes = []
    for encoder in args.encoder:
        encoder_cfg = cfg.model.get(encoder, {})
        if encoder_cfg.get('checkpoint') and not osp.exists(encoder_cfg['checkpoint']):
            notes.append(f'{encoder_cfg["checkpoint"]} not found: {encoder} keeps its random '
                         'init')
            encoder_cfg['checkpoint'] = None
    root = args.work_dir or tempfile.mkdtemp(prefix='mmfusion_cache_bench_')
    cache_dir = osp.join(root, 'feature_cache')
    shutil.rmtree(cache_dir, ignore_errors=True)
    plain = run(cfg, osp.join(root, 'no_cache'), None, args.encoder)
    cached = run(cfg, osp.join(root, 'cache'), cache_dir, args.encoder)
    loss_diff = max(abs(a - b) for a, b in zip(plain.losses, cached.losses))
    result = dict(
        config=args.config,
        epochs=args.epochs,
        iters_per_epoch=len(plain.losses) // args.epochs,
        no_cache_epoch_s=[round(t, 3) for t in plain.epoch_times],
        cache_epoch_s=[round(t, 3) for t in cached.epoch_times],
        last_epoch_speedup=round(plain.epoch_times[-1] / cached.epoch_times[-1], 2),
        total_speedup=round(sum(plain.epoch_times) / sum(cached.epoch_times), 2),
        max_abs_loss_diff=loss_diff,
        losses_identical=loss_diff == 0.0)
    if notes:
        result['note'] = '; '.join(notes)
    if not args.work_dir:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result))
    return result


if __name__ == '__main__':
    main(parse_args())
