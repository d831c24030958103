"""Launcher glue between ``tools/train.py``/``test.py`` and mmengine's runners.

mmengine's launchers and strategies assume GPUs; mmfusion also trains with
DDP and FSDP on CPU (gloo), which is how its distributed code is tested on a
machine without a GPU. All of that lives here, not in the configs.
"""
import os
from typing import Optional

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.runner import FlexibleRunner, Runner

from mmfusion.registry import MODELS

# Strategies of mmengine's FlexibleRunner that shard or replicate over ranks.
DISTRIBUTED_STRATEGIES = ('DDPStrategy', 'FSDPStrategy', 'DeepSpeedStrategy', 'ColossalAIStrategy')


def runner_class(cfg: Config) -> type:
    """A config with a ``strategy`` (FSDP, DeepSpeed...) runs under
    mmengine's ``FlexibleRunner``; every other config under ``Runner``."""
    return FlexibleRunner if cfg.get('strategy') is not None else Runner


def model_needs_unused_parameter_search(cfg: Config) -> bool:
    """Whether the config's model class declares branches that a batch may
    not use (``find_unused_parameters = True`` as a class attribute, e.g.
    X-Decoder's grounding and captioning), which DDP must be told about."""
    model_type = cfg.model.get('type') if isinstance(cfg.get('model'), dict) else None
    model_cls = MODELS.get(model_type) if isinstance(model_type, str) else model_type
    return bool(getattr(model_cls, 'find_unused_parameters', False))


def _ddp_wrapper(wrapper: Optional[dict], cfg: Config, on_cpu: bool) -> dict:
    # mmengine's own default when the config names no wrapper.
    wrapper = dict(wrapper or dict(type='MMDistributedDataParallel', broadcast_buffers=False))
    # mmengine's top-level `find_unused_parameters`, else the model class's wish.
    if cfg.get('find_unused_parameters') is not None:
        wrapper.setdefault('find_unused_parameters', bool(cfg.find_unused_parameters))
    elif model_needs_unused_parameter_search(cfg):
        wrapper.setdefault('find_unused_parameters', True)
    if on_cpu:
        wrapper['device_ids'] = None
    return wrapper


def _init_gloo(launcher: str) -> None:
    if launcher != 'pytorch':
        raise RuntimeError(f'--launcher {launcher} needs GPUs; on a CPU-only machine use '
                           '--launcher pytorch under torchrun (tools/dist_train.sh)')
    missing = [k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT') if k not in os.environ]
    if missing:
        raise RuntimeError(f'--launcher pytorch expects torchrun\'s environment; missing {missing}')
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')


def prepare_launcher(cfg: Config, launcher: str, sync_bn: Optional[str] = None) -> None:
    """Make ``cfg`` runnable with ``launcher`` on this machine.

    * DDP (``Runner``, or ``FlexibleRunner``'s ``DDPStrategy``): the wrapper
      gets ``find_unused_parameters=True`` when the model class asks for it
      (the wrapper config's or the config's top-level setting wins) and
      ``sync_bn`` if given.
    * FSDP: ``FusionFSDP`` is the default wrapper (CPU support, frozen
      encoders left unsharded).
    * Without a GPU, mmengine's ``launcher='pytorch'`` calls
      ``torch.cuda.set_device`` and crashes, so the gloo process group is
      initialised here, before the runner exists (the runner then skips its
      own init), and DDP is told to use no device ids.
    """
    cfg.launcher = launcher
    strategy = cfg.get('strategy')
    strategy_type = strategy.get('type') if strategy is not None else None
    if launcher == 'none':
        if strategy_type in DISTRIBUTED_STRATEGIES:
            raise RuntimeError(f'strategy {strategy_type} needs several processes: start it with '
                               'tools/dist_train.sh / tools/dist_test.sh (torchrun, '
                               '--launcher pytorch)')
        if sync_bn:
            raise RuntimeError('--sync-bn needs a distributed launcher')
        return

    if sync_bn and strategy_type not in (None, 'DDPStrategy'):
        raise RuntimeError(f'--sync-bn applies to DDP; strategy {strategy_type} does not take it')
    on_cpu = not torch.cuda.is_available()
    if on_cpu and strategy_type not in (None, 'DDPStrategy', 'FSDPStrategy'):
        raise RuntimeError(f'strategy {strategy_type} needs GPUs; on CPU use DDP (no strategy) '
                           'or FSDPStrategy')
    if on_cpu:
        _init_gloo(launcher)
        cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'

    if strategy is None:
        cfg.model_wrapper_cfg = _ddp_wrapper(cfg.get('model_wrapper_cfg'), cfg, on_cpu)
        if sync_bn:
            cfg.sync_bn = sync_bn
    elif strategy_type == 'DDPStrategy':
        strategy.model_wrapper = _ddp_wrapper(strategy.get('model_wrapper'), cfg, on_cpu)
        if sync_bn:
            strategy.sync_bn = sync_bn
    elif strategy_type == 'FSDPStrategy':
        strategy.model_wrapper = dict(strategy.get('model_wrapper') or dict(type='FusionFSDP'))
        if on_cpu and strategy.model_wrapper.get('type') != 'FusionFSDP':
            raise RuntimeError(f'FSDP on CPU needs model_wrapper type FusionFSDP, got '
                               f'{strategy.model_wrapper.get("type")!r}')
        if on_cpu and strategy.get('state_dict_cfg') == 'full':
            # mmengine's 'full' offloads the gathered state to CPU; torch
            # 2.9's FSDP segfaults doing that when the shards already live
            # on the CPU (where the offload is a no-op anyway).
            strategy.state_dict_cfg = dict(
                state_dict_type='FULL_STATE_DICT',
                state_dict_config=dict(type='FullStateDictConfig', rank0_only=True,
                                       offload_to_cpu=False),
                optim_state_dict_config=dict(type='FullOptimStateDictConfig', rank0_only=True,
                                             offload_to_cpu=False))


def shutdown_launcher() -> None:
    """End a distributed run: wait for every rank, then destroy the process
    group. Left to interpreter exit, the group's background threads can be
    torn down in an order that aborts a finished rank ("terminate called
    without an active exception", SIGABRT) after its work is done."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def all_gather_list(x: torch.Tensor) -> list:
    """Every rank's ``x`` (same shape on all ranks), in rank order; ``[x]``
    outside distributed runs. The other ranks' tensors carry no gradient."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [x]
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    return parts


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """(B, ...) on every rank -> (world * B, ...) in rank order, this rank's
    rows being ``x`` itself (so its gradient flows) and the others constants:
    the batch a contrastive loss sees across ranks (mmengine's ``all_gather``
    detaches everything, which would stop the local gradient too)."""
    parts = all_gather_list(x)
    if len(parts) > 1:
        parts[dist.get_rank()] = x
    return torch.cat(parts, dim=0)
