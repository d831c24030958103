from contextlib import contextmanager

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
