from contextlib import contextmanager
from typing import Optional

import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper

from mmfusion.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """bf16 autocast on CPU (mmengine's AmpOptimWrapper asserts a CUDA/NPU/MLU
    device). bf16 has fp32's exponent range, so no loss scaling is needed;
    parameters and optimizer state stay fp32. ``tools/train.py --amp`` picks
    this wrapper when no GPU is present.
    """

    def __init__(self, dtype: str = 'bfloat16', **kwargs) -> None:
        super().__init__(**kwargs)
        self.cast_dtype = getattr(torch, dtype)
        if self.cast_dtype not in (torch.bfloat16, torch.float16):
            raise ValueError(f'CPUAmpOptimWrapper dtype must be bfloat16 or float16, got {dtype}')

    @contextmanager
    def optim_context(self, model: nn.Module):
        with super().optim_context(model), torch.autocast('cpu', dtype=self.cast_dtype):
            yield


def enable_amp(optim_wrapper: dict, dtype: Optional[str] = None) -> None:
    """Switch an ``optim_wrapper`` config to mixed precision, in place, for
    this machine (what ``tools/train.py --amp`` does).

    CUDA: mmengine's ``AmpOptimWrapper``, ``float16`` by default with dynamic
    loss scaling (``bfloat16`` needs none: static scale 1). CPU:
    :class:`CPUAmpOptimWrapper`, ``bfloat16`` by default. ``dtype`` defaults
    to the config's own ``dtype`` when it has one.
    """
    wrapper = optim_wrapper.get('type', 'OptimWrapper')
    if wrapper not in ('OptimWrapper', 'AmpOptimWrapper', 'CPUAmpOptimWrapper'):
        raise ValueError(f'--amp cannot convert optim_wrapper type {wrapper!r}')
    dtype = dtype or optim_wrapper.get('dtype')
    if torch.cuda.is_available():
        dtype = dtype or 'float16'
        optim_wrapper.update(type='AmpOptimWrapper', dtype=dtype)
        optim_wrapper.setdefault('loss_scale', 'dynamic' if dtype == 'float16' else 1.0)
    else:
        optim_wrapper.update(type='CPUAmpOptimWrapper', dtype=dtype or 'bfloat16')
