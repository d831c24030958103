"""FrozenSeg (Chen et al., 2024): frozen CLIP + frozen SAM + a trainable mask
decoder with SAM feature and query injectors; CLIP's mask-pooled scores
ensembled in at inference."""
from .decoder import FeatureInjector, FrozenSegDecoder
from .frozenseg import FrozenSeg
from .frozenseg_head import FrozenSegHead
from .pixel_decoder import FrozenSegPixelDecoder

__all__ = ['FrozenSeg', 'FrozenSegHead', 'FrozenSegDecoder', 'FrozenSegPixelDecoder',
           'FeatureInjector']
