from .rng_state_hook import TorchRNGStateHook
from .visualization_hook import FusionVisualizationHook

__all__ = ['FusionVisualizationHook', 'TorchRNGStateHook']
