from .compile_hook import CompileHook
from .dataset_classes_hook import DatasetClassNamesHook
from .feature_cache_hook import FeatureCacheHook
from .progress_bar_hook import ProgressBarHook
from .rng_state_hook import TorchRNGStateHook
from .throughput_hook import ThroughputHook
from .visualization_hook import FusionVisualizationHook

__all__ = ['DatasetClassNamesHook', 'FusionVisualizationHook', 'TorchRNGStateHook',
           'FeatureCacheHook', 'ThroughputHook', 'ProgressBarHook', 'CompileHook']
