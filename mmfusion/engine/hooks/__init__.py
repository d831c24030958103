from .visualization_hook import FusionVisualizationHook

__all__ = ['FusionVisualizationHook']
