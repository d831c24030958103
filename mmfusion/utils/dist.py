import os
from typing import Optional

import torch
import torch.distributed as dist
from mmengine.config import Config


def prepare_launcher(cfg: Config, launcher: str) -> None:
    """Make ``cfg`` runnable with ``launcher`` on this machine.

    On GPUs mmengine's launchers work as they are. Without a GPU mmengine's
    ``launcher='pytorch'`` calls ``torch.cuda.set_device`` and crashes, so the
    gloo process group is initialised here, before the Runner exists (the
    Runner then skips its own init), and DDP is told to use no device ids.
    """
    cfg.launcher = launcher
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher != 'pytorch':
        raise RuntimeError(f'--launcher {launcher} needs GPUs; on a CPU-only machine use '
                           '--launcher pytorch under torchrun (tools/dist_train.sh)')
    missing = [k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT') if k not in os.environ]
    if missing:
        raise RuntimeError(f'--launcher pytorch expects torchrun\'s environment; missing {missing}')
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    wrapper: Optional[dict] = cfg.get('model_wrapper_cfg')
    cfg.model_wrapper_cfg = dict(wrapper or dict(type='MMDistributedDataParallel'), device_ids=None)
