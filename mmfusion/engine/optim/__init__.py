from .cpu_amp_optim_wrapper import CPUAmpOptimWrapper, enable_amp
from .optim_wrapper_constructor import FusionOptimWrapperConstructor

__all__ = ['CPUAmpOptimWrapper', 'FusionOptimWrapperConstructor', 'enable_amp']
