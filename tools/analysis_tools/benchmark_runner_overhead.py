"""Framework-overhead benchmark: mmfusion's runner against a bare PyTorch loop.

Both train the same model (same config, seed and initial weights) on the same
pre-collated batches, in the same process, one after the other, for
``--rounds`` alternating rounds. The runner is mmengine's ``Runner`` with the
config's hooks (logger, timer, parameter scheduler, RNG-state, sampler seed);
checkpoint saving and validation are switched off, since the bare loop does
neither. The bare loop is what one would write by hand: preprocess, forward,
sum the losses, backward, optional gradient clipping, ``optimizer.step()``.

Data loading is outside both timings: each round replays the same batches
from memory, so the comparison measures the framework, not the dataset.

Prints JSON: iterations/s of every round for both, the best of each, and
``runner_over_bare`` (runner throughput / bare-loop throughput; 1.0 = no
overhead).

Example::

    python tools/analysis_tools/benchmark_runner_overhead.py \\
        configs/gms/gms_kl-f4-tiny_1xb8-800it_synth-lesion.py \\
        --cfg-options model.vae.pretrained=None
"""
import argparse
import copy
import itertools
import json
import time
from typing import List

import torch
from mmengine.config import Config, DictAction
from mmengine.device import get_device
from mmengine.optim import build_optim_wrapper
from mmengine.runner import Runner
from torch.utils.data import DataLoader, Dataset

from mmfusion.engine.hooks import ThroughputHook
from mmfusion.registry import MODELS
from mmfusion.utils import register_all_modules
from mmfusion.utils.benchmark import training_only


class ReplayBatches(Dataset):
    """Already collated batches, served one per index."""

    def __init__(self, batches: List[dict]) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> dict:
        return self.batches[index]


def _first(items: list) -> dict:
    return items[0]


def collect_batches(cfg: Config, count: int) -> List[dict]:
    loader = Runner.build_dataloader(copy.deepcopy(cfg.train_dataloader), seed=0)
    return list(itertools.islice(itertools.cycle(loader), count))


def run_runner(cfg: Config, batches: List[dict], warmup: int, work_dir: str) -> float:
    cfg = training_only(copy.deepcopy(cfg), len(batches))
    cfg.work_dir = work_dir
    runner = Runner.from_cfg(cfg)
    # The loop takes a built DataLoader as it is. Batches of one already
    # collated batch, so the sampler hooks still find a batch sampler.
    runner._train_dataloader = DataLoader(ReplayBatches(batches), batch_size=1, shuffle=False,
                                          num_workers=0, collate_fn=_first)
    timer = ThroughputHook(warmup)
    runner.register_hook(timer)
    runner.train()
    return timer.iters_per_s


def run_bare(cfg: Config, batches: List[dict], warmup: int) -> float:
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg.model))
    model.init_weights()
    model.to(get_device()).train()  # where the Runner puts it
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    clip = optim_cfg.pop('clip_grad', None)
    optim_cfg['type'] = 'OptimWrapper'
    optimizer = build_optim_wrapper(model, optim_cfg).optimizer
    params = [p for group in optimizer.param_groups for p in group['params']]
    for i, batch in enumerate(batches):
        if i == warmup:
            _sync()
            start = time.perf_counter()
        data = model.data_preprocessor(batch, True)
        losses = model(**data, mode='loss')
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        optimizer.zero_grad()
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(params, **clip)
        optimizer.step()
    _sync()
    return (len(batches) - warmup) / (time.perf_counter() - start)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--iters', type=int, default=40, help='timed iterations per round')
    parser.add_argument('--warmup', type=int, default=5, help='untimed iterations per round')
    parser.add_argument('--rounds', type=int, default=2, help='alternating rounds of both')
    parser.add_argument('--work-dir', default='work_dirs/benchmark_runner_overhead')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    register_all_modules()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if cfg.optim_wrapper.get('type', 'OptimWrapper') != 'OptimWrapper':
        raise ValueError('the benchmark compares fp32 training: optim_wrapper type must be '
                         f'OptimWrapper, got {cfg.optim_wrapper.type!r}')
    batches = collect_batches(cfg, args.warmup + args.iters)
    bare, runner = [], []
    for round_idx in range(args.rounds):
        print(f'round {round_idx + 1}/{args.rounds}: bare loop', flush=True)
        bare.append(run_bare(cfg, batches, args.warmup))
        print(f'round {round_idx + 1}/{args.rounds}: runner', flush=True)
        runner.append(run_runner(cfg, batches, args.warmup, args.work_dir))
    result = dict(
        config=args.config,
        batch_size=cfg.train_dataloader.batch_size,
        timed_iters=args.iters,
        threads=torch.get_num_threads(),
        bare_iters_per_s=[round(x, 3) for x in bare],
        runner_iters_per_s=[round(x, 3) for x in runner],
        bare_best=round(max(bare), 3),
        runner_best=round(max(runner), 3),
        runner_over_bare=round(max(runner) / max(bare), 3))
    print(json.dumps(result))


if __name__ == '__main__':
    main()
