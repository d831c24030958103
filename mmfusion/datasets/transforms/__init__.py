from .formatting import PackFusionInputs
from .loading import LoadBinaryMask, LoadImageFromFile

__all__ = ['LoadImageFromFile', 'LoadBinaryMask', 'PackFusionInputs']
