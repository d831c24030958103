"""torch.compile benchmark: the train step of tiny configs, eager against compiled.

For each config, in one process: the same batches (collected once from the
config's train loader, replayed from memory) go through ``model.train_step``
(preprocess, forward, losses, backward, optimizer step: what mmengine's
``cfg.compile`` compiles) twice, on two copies of the model with the same
initial weights, optimizer and per-iteration schedule: first eagerly, then
compiled with ``torch.compile`` as ``tools/train.py --compile`` compiles it
(exclusions, texts as opaque objects, the optimizer step eager: see
``mmfusion/utils/compile.py``). The first ``warmup`` iterations of each are
not timed; the per-iteration time is the median of the ``iters`` timed ones
(the machine may be shared). ``compile_s`` is the compiled loop's time above
``(warmup + iters) * compiled_s_per_iter``: compiling, and recompiling for new
shapes. Inductor's on-disk caches are off unless ``warm_cache=True``, so it is
the compile time of a first run. Parts of a model listed as excluded
(``torch.compiler.disable``, ``compile_exclude``) run eagerly in both.

Missing weight files of the config (pretrained parts, ``load_from``) are
dropped: random weights time the same.

Prints one JSON object, config -> ``{eager_s_per_iter, compiled_s_per_iter,
speedup, compile_s, ...}`` (``{error}`` for a config that failed; the others
still run, and the exit status is 1); :func:`run` returns it.

Example::

    python tools/analysis_tools/benchmark_compile.py \\
        configs/gms/gms_kl-f4-tiny_1xb8-800it_synth-lesion.py --iters 20 --warmup 3
"""
import argparse
import contextlib
import copy
import gc
import itertools
import json
import math
import os.path as osp
import statistics
import sys
import time
import traceback
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.config import Config, DictAction
from mmengine.device import get_device
from mmengine.optim import build_optim_wrapper
from mmengine.runner import Runner, set_random_seed

from mmfusion.registry import MODELS, PARAM_SCHEDULERS
from mmfusion.utils import register_all_modules
from mmfusion.utils.compile import check_compiler, exclude_optimizer_step, prepare_for_compile
from mmfusion.utils.config_weights import drop_weight_files

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

#: one tiny recipe per family, with the overrides it needs on a machine that
#: has only run the data generators (the X-Decoder recipe's 32k-scene set
#: only adds scenes of the same size: a step costs the same on the 3k one).
TINY_RECIPES: Dict[str, dict] = {
    'configs/gms/gms_kl-f4-tiny_1xb8-800it_synth-lesion.py': {},
    'configs/clip/clip_vit-tiny_1xb128-1k_synthshapes.py': {},
    'configs/xdecoder/xdecoder_r18-tiny_2xb8-2300it_synthshapes.py': {
        'train_dataloader.dataset.data_root': 'data/synthshapes'},
    'configs/zipper/zipper_asr-rope-noise_frozen-text-tiny_1xb16-1500it_synth-speech.py': {},
    'configs/mmmamba/mmmamba-hybrid_stage3_tiny_1xb32-600it_synthshapes-caption.py': {},
    'configs/frozenseg/frozenseg_convnext-s8-sam-tiny_1xb8-5ep_synthshapes.py': {},
    'configs/semat/semat_sam-tiny_1xb8-1200it_synthmatte.py': {},
    'configs/sam/sam_vit-tiny_1xb8-2600it_synthshapes.py': {},
    'configs/i2pmae/i2pmae_tiny_1xb32-300it_synthshapes3d.py': {},
}
ConfigSpec = Union[str, Config, Tuple[str, dict]]


def load_cfg(spec: ConfigSpec, cfg_options: Optional[dict] = None) -> Tuple[str, Config]:
    """(name, config) of a path, a :class:`Config` or a ``(path, overrides)``
    pair; missing weight files dropped."""
    overrides = {}
    if isinstance(spec, (tuple, list)):
        spec, overrides = spec
    if isinstance(spec, Config):
        name, cfg = spec.filename or 'config', copy.deepcopy(spec)
    else:
        name = str(spec)
        cfg = Config.fromfile(name if osp.isfile(name) else osp.join(REPO, name))
    cfg.merge_from_dict({**overrides, **(cfg_options or {})})
    drop_weight_files(cfg.model, only_missing=True)
    return name, cfg


def collect_batches(cfg: Config, count: int) -> List[dict]:
    """``count`` collated training batches (the loader cycled), in memory."""
    loader_cfg = copy.deepcopy(cfg.train_dataloader)
    loader_cfg.update(num_workers=0, persistent_workers=False)
    loader = Runner.build_dataloader(loader_cfg, seed=0)
    return list(itertools.islice(itertools.cycle(loader), count))


def build_model(cfg: Config, state: Optional[dict] = None) -> torch.nn.Module:
    """The config's model as the Runner builds it (seeded, ``init_weights``,
    on the default device, training mode); ``state``: weights to load."""
    set_random_seed(**dict(cfg.get('randomness') or dict(seed=0)))
    model = MODELS.build(copy.deepcopy(cfg.model))
    if hasattr(model, 'init_weights'):
        model.init_weights()
    model.to(get_device()).train()
    if state is not None:
        model.load_state_dict(state)
    return model


def _schedulers(cfg: Config, optim_wrapper, iters: int) -> list:
    """The config's per-iteration parameter schedulers (the learning rate
    changes every iteration, as in training; per-epoch ones are constant over
    a benchmark this short)."""
    scheds = cfg.get('param_scheduler') or []
    built = []
    for sched in [scheds] if isinstance(scheds, dict) else scheds:
        if sched.get('by_epoch', True):
            continue
        sched = dict(copy.deepcopy(sched))
        sched.setdefault('end', iters)
        built.append(PARAM_SCHEDULERS.build(
            sched, default_args=dict(optimizer=optim_wrapper, epoch_length=iters)))
    return built


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def time_steps(cfg: Config, batches: List[dict], state: dict,
               options: Optional[dict]) -> Tuple[List[float], List[float]]:
    """Train on ``batches`` from ``state``; ``options``: ``torch.compile``
    the train step with them (None: eager). Returns (seconds per iteration,
    loss per iteration)."""
    model = build_model(cfg, state)
    optim_wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    schedulers = _schedulers(cfg, optim_wrapper, len(batches))
    step = model.train_step
    if options is not None:  # as tools/train.py --compile sets it up (CompileHook)
        prepare_for_compile(model)
        exclude_optimizer_step(optim_wrapper)
        step = torch.compile(step, **options)
    times, losses = [], []
    gc.collect()
    for batch in batches:
        _sync()
        start = time.perf_counter()
        log_vars = step(batch, optim_wrapper)
        _sync()
        times.append(time.perf_counter() - start)
        losses.append(log_vars['loss'].detach())
        for scheduler in schedulers:
            scheduler.step()
    return times, [float(x) for x in losses]


def benchmark_one(cfg: Config, iters: int, warmup: int, options: dict,
                  warm_cache: bool) -> dict:
    batches = collect_batches(cfg, warmup + iters)
    state = {k: v.detach().clone() for k, v in build_model(cfg).state_dict().items()}
    eager_times, eager_losses = time_steps(cfg, batches, state, None)
    torch._dynamo.reset()
    caches = (contextlib.nullcontext() if warm_cache else
              torch._inductor.config.patch(force_disable_caches=True))
    with caches:
        compiled_times, compiled_losses = time_steps(cfg, batches, state, options)
    torch._dynamo.reset()
    eager = statistics.median(eager_times[warmup:])
    compiled = statistics.median(compiled_times[warmup:])
    first_diff = abs(compiled_losses[0] - eager_losses[0])
    return dict(
        eager_s_per_iter=round(eager, 4),
        compiled_s_per_iter=round(compiled, 4),
        speedup=round(eager / compiled, 3),
        compile_s=round(sum(compiled_times) - len(compiled_times) * compiled, 2),
        first_iter_s=dict(eager=round(eager_times[0], 3), compiled=round(compiled_times[0], 3)),
        first_loss=dict(eager=eager_losses[0], compiled=compiled_losses[0],
                        rel_diff=round(first_diff / max(abs(eager_losses[0]), 1e-12), 6)),
        losses_finite=all(math.isfinite(x) for x in eager_losses + compiled_losses),
        batch_size=cfg.train_dataloader.batch_size,
        timed_iters=iters, warmup=warmup)


def run(configs: list, iters: int = 20, warmup: int = 3, backend: Optional[str] = None,
        mode: Optional[str] = None, warm_cache: bool = False,
        cfg_options: Optional[dict] = None) -> dict:
    """Eager against compiled train steps of ``configs`` (paths, Configs or
    ``(path, overrides)`` pairs): per config ``{'eager_s_per_iter',
    'compiled_s_per_iter', 'speedup', 'compile_s', ...}`` (see the module
    docstring). ``backend`` / ``mode``: ``torch.compile``'s (default
    inductor)."""
    if warmup < 1:
        raise ValueError('warmup must be >= 1: the first compiled iteration compiles')
    register_all_modules()
    options = {k: v for k, v in dict(backend=backend, mode=mode).items() if v}
    check_compiler(options)
    results = {}
    for spec in configs:
        name, cfg = load_cfg(spec, cfg_options)
        print(f'benchmarking {name}', file=sys.stderr, flush=True)
        try:
            results[name] = benchmark_one(cfg, iters, warmup, options, warm_cache)
        except Exception as exc:  # one recipe failing must not lose the others' minutes
            traceback.print_exc()
            results[name] = dict(error=f'{type(exc).__name__}: {exc}')
        print(json.dumps({name: results[name]}), file=sys.stderr, flush=True)
    return results


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='*',
                        help='configs (default: one tiny recipe per family, TINY_RECIPES)')
    parser.add_argument('--iters', type=int, default=20, help='timed iterations')
    parser.add_argument('--warmup', type=int, default=3, help='untimed iterations first')
    parser.add_argument('--backend', help='torch.compile backend (default inductor)')
    parser.add_argument('--mode', help='torch.compile mode')
    parser.add_argument('--warm-cache', action='store_true',
                        help="keep inductor's on-disk caches (compile time of a rerun)")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='overrides applied to every config')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    configs = args.configs or list(TINY_RECIPES.items())
    result = run(configs, iters=args.iters, warmup=args.warmup, backend=args.backend,
                 mode=args.mode, warm_cache=args.warm_cache, cfg_options=args.cfg_options)
    print(json.dumps(result))
    return result


if __name__ == '__main__':
    sys.exit(1 if any('error' in r for r in main().values()) else 0)
