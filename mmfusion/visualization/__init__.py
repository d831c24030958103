from .fusion_visualizer import FusionVisualizer

__all__ = ['FusionVisualizer']
