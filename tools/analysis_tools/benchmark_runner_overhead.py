"""Framework-overhead benchmark: mmfusion's runner against a bare PyTorch loop.

Both train the same model on the same pre-collated batches, in the same
process, one after the other, for ``--rounds`` alternating rounds. The runner
is mmengine's ``Runner`` with the config's hooks (logger, timer, parameter
scheduler, RNG-state, sampler seed); checkpoint saving and validation are
switched off, since the bare loop does neither. The bare loop is what one
would write by hand: preprocess, forward, sum the losses, backward, optional
gradient clipping, ``optimizer.step()``, the config's parameter schedulers
stepped per iteration.

Both do the same work, and the result says so: they start from the same
seed, determinism and cuDNN settings (the config's ``randomness`` and
``env_cfg``), hence the same initial weights and random draws; the replayed
batches come through a loader with its own generator, so the runner's loader
takes nothing from torch's global RNG; zero_grad sets gradients to None in
both, clipping is the optimizer wrapper's (norm or value) on the same
parameters, and the learning rate follows the same schedule. ``same_losses``
is True when both loops computed the same loss at every iteration of every
round (read after timing: the runner's from its message hub, the bare loop's
from detached tensors, so neither pays for a sync).

Data loading is outside both timings: each round replays the same batches
from memory, so the comparison measures the framework, not the dataset.

What the runner costs (tiny GMS, 2 CPU cores, ~0.35 s per iteration): about
1.5 ms per iteration, 0.4%. Per iteration, ``model.train()`` (mmengine calls it
before every iteration; ~300 modules) ~0.7 ms, of which the frozen encoders'
``BaseEncoder.train`` used to spend half re-listing every submodule to find
LoRA dropouts (now listed once); hooks ~0.35 ms; the loader's ``next`` ~0.1
ms; ``parse_losses`` and the loss scaling <0.1 ms. The 5.6% this benchmark
once reported (runner_over_bare 0.944) was mostly not the runner: (1) garbage
collection: the process tracks ~550k objects (the imported libraries), so a
full collection takes ~0.3 s, and the garbage a Runner leaves (its setup, the
previous round's runner in reference cycles) set one off inside a timed
window, ~2% of a 40-iteration round each time; now both loops collect before
their first timed iteration. (2) the shared machine's noise, which best-of
rounds only partly removes; ``*_median_iter_s`` (per-iteration medians) are
reported beside the throughputs as a burst-resistant view. (3) the two loops
did not quite do the same work (different initial weights and random draws,
no schedule in the bare loop); not a cost, but the comparison now holds it
equal. In a real run there is no earlier runner to collect and the setup's
garbage is collected once.

Prints JSON: iterations/s of every round for both, the best of each, and
``runner_over_bare`` (runner throughput / bare-loop throughput; 1.0 = no
overhead). :func:`run` returns the same dict.

Example::

    python tools/analysis_tools/benchmark_runner_overhead.py \\
        configs/gms/gms_kl-f4-tiny_1xb8-800it_synth-lesion.py \\
        --cfg-options model.vae.pretrained=None
"""
import argparse
import copy
import gc
import itertools
import json
import statistics
import time
from typing import List, Optional, Tuple

import torch
from mmengine.config import Config, DictAction
from mmengine.device import get_device
from mmengine.optim import build_optim_wrapper
from mmengine.runner import Runner, set_random_seed
from torch.utils.data import DataLoader, Dataset

from mmfusion.engine.hooks import ThroughputHook
from mmfusion.registry import MODELS, PARAM_SCHEDULERS
from mmfusion.utils import register_all_modules
from mmfusion.utils.benchmark import training_only

DEFAULT_WORK_DIR = 'work_dirs/benchmark_runner_overhead'


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


class _TimedFromWarmup(ThroughputHook):
    """ThroughputHook that collects garbage before its clock starts (as the
    bare loop does) and stamps every iteration."""

    def __init__(self, warmup: int) -> None:
        super().__init__(warmup)
        self.stamps: List[float] = []

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if runner.iter == self.warmup and not hasattr(self, '_start'):
            gc.collect()
        super().before_train_iter(runner, batch_idx, data_batch)
        if hasattr(self, '_start'):
            self.stamps.append(time.perf_counter())

    def after_train(self, runner) -> None:
        super().after_train(runner)
        self.stamps.append(time.perf_counter())


def run_runner(cfg: Config, batches: List[dict], warmup: int,
               work_dir: str) -> Tuple[float, float, List[float]]:
    """Train with mmengine's Runner: (iterations/s, median iteration seconds,
    the loss of every iteration)."""
    cfg = training_only(copy.deepcopy(cfg), len(batches))
    cfg.work_dir = work_dir
    runner = Runner.from_cfg(cfg)
    # The loop takes a built DataLoader as it is. Batches of one already
    # collated batch, so the sampler hooks still find a batch sampler. Its own
    # generator: iterating a loader draws a base seed, which would otherwise
    # shift torch's global RNG (initial weights, random draws) against the
    # bare loop's.
    runner._train_dataloader = DataLoader(ReplayBatches(batches), batch_size=1, shuffle=False,
                                          num_workers=0, collate_fn=_first,
                                          generator=torch.Generator())
    timer = _TimedFromWarmup(warmup)
    runner.register_hook(timer)
    runner.train()
    losses = runner.message_hub.get_scalar('train/loss').data[0][-len(batches):].tolist()
    return timer.iters_per_s, _median_step(timer.stamps), losses


def _build_schedulers(cfg: Config, optimizer: torch.optim.Optimizer, iters: int) -> list:
    """The config's parameter schedulers on ``optimizer``, built as the
    Runner builds them for an iteration-based loop of ``iters``."""
    scheds = cfg.get('param_scheduler') or []
    scheds = [scheds] if isinstance(scheds, dict) else scheds
    built = []
    for sched in scheds:
        sched = copy.deepcopy(sched)
        sched.setdefault('end', 1 if sched.get('by_epoch', True) else iters)
        built.append(PARAM_SCHEDULERS.build(
            sched, default_args=dict(optimizer=optimizer, epoch_length=iters)))
    return built


def _clip_fn(clip: Optional[dict]):
    """The optimizer wrapper's gradient clipping as a function of the
    parameters, or None."""
    if not clip:
        return None
    clip = dict(clip)
    kind = clip.pop('type', 'norm')
    func = {'norm': torch.nn.utils.clip_grad_norm_,
            'value': torch.nn.utils.clip_grad_value_}[kind]
    return lambda params: func(params, **clip)


def run_bare(cfg: Config, batches: List[dict], warmup: int) -> Tuple[float, float, List[float]]:
    """Train with a hand-written loop: (iterations/s, median iteration
    seconds, the loss of every iteration)."""
    # What Runner.__init__ sets up before building the model.
    if cfg.get('env_cfg', {}).get('cudnn_benchmark'):
        torch.backends.cudnn.benchmark = True
    randomness = dict(cfg.get('randomness') or dict(seed=None))
    set_random_seed(**randomness)
    model = MODELS.build(copy.deepcopy(cfg.model))
    model.init_weights()
    model.to(get_device()).train()  # where the Runner puts it
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    clip = _clip_fn(optim_cfg.pop('clip_grad', None))
    optim_cfg['type'] = 'OptimWrapper'
    optimizer = build_optim_wrapper(model, optim_cfg).optimizer
    schedulers = [s for s in _build_schedulers(cfg, optimizer, len(batches)) if not s.by_epoch]
    params = [p for group in optimizer.param_groups for p in group['params']]
    losses, stamps = [], []
    for i, batch in enumerate(batches):
        if i == warmup:
            gc.collect()
            _sync()
            start = time.perf_counter()
        if i >= warmup:
            stamps.append(time.perf_counter())
        data = model.data_preprocessor(batch, True)
        loss_dict = model(**data, mode='loss')
        loss = sum(v for k, v in loss_dict.items() if 'loss' in k)
        optimizer.zero_grad()  # set_to_none, as the optimizer wrapper's
        loss.backward()
        if clip is not None:
            clip([p for p in params if p.requires_grad and p.grad is not None])
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
        losses.append(loss.detach())
    _sync()
    end = time.perf_counter()
    stamps.append(end)
    return ((len(batches) - warmup) / (end - start), _median_step(stamps),
            [float(x) for x in losses])


def _median_step(stamps: List[float]) -> float:
    return statistics.median(b - a for a, b in zip(stamps, stamps[1:]))


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run(config: str, iters: int = 40, warmup: int = 5, rounds: int = 2,
        cfg_options: Optional[dict] = None, work_dir: str = DEFAULT_WORK_DIR) -> dict:
    """Benchmark ``config`` (a path): ``rounds`` alternating rounds of the
    bare loop and the runner, each ``warmup`` untimed then ``iters`` timed
    iterations. Returns the dict :func:`main` prints as JSON."""
    register_all_modules()
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if cfg.optim_wrapper.get('type', 'OptimWrapper') != 'OptimWrapper':
        raise ValueError('the benchmark compares fp32 training: optim_wrapper type must be '
                         f'OptimWrapper, got {cfg.optim_wrapper.type!r}')
    batches = collect_batches(cfg, warmup + iters)
    bare, runner, bare_med, runner_med = [], [], [], []
    same_losses = True
    for round_idx in range(rounds):
        print(f'round {round_idx + 1}/{rounds}: bare loop', flush=True)
        ips, med, bare_losses = run_bare(cfg, batches, warmup)
        bare.append(ips)
        bare_med.append(med)
        print(f'round {round_idx + 1}/{rounds}: runner', flush=True)
        ips, med, runner_losses = run_runner(cfg, batches, warmup, work_dir)
        runner.append(ips)
        runner_med.append(med)
        same_losses &= bare_losses == runner_losses
    return dict(
        config=config,
        batch_size=cfg.train_dataloader.batch_size,
        timed_iters=iters,
        threads=torch.get_num_threads(),
        bare_iters_per_s=[round(x, 3) for x in bare],
        runner_iters_per_s=[round(x, 3) for x in runner],
        bare_best=round(max(bare), 3),
        runner_best=round(max(runner), 3),
        runner_over_bare=round(max(runner) / max(bare), 3),
        bare_median_iter_s=[round(x, 4) for x in bare_med],
        runner_median_iter_s=[round(x, 4) for x in runner_med],
        same_losses=same_losses)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--iters', type=int, default=40, help='timed iterations per round')
    parser.add_argument('--warmup', type=int, default=5, help='untimed iterations per round')
    parser.add_argument('--rounds', type=int, default=2, help='alternating rounds of both')
    parser.add_argument('--work-dir', default=DEFAULT_WORK_DIR)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    result = run(args.config, iters=args.iters, warmup=args.warmup, rounds=args.rounds,
                 cfg_options=args.cfg_options, work_dir=args.work_dir)
    print(json.dumps(result))


if __name__ == '__main__':
    main()
