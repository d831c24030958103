"""Mask-decoding pieces shared by X-Decoder and FrozenSeg."""
from .mask_criterion import MaskCriterion
from .masked_attention_decoder import MaskedAttentionDecoder
from .matcher import PointSampleHungarianMatcher
from .pixel_decoder import TransformerEncoderFPNPixelDecoder

__all__ = [
    'MaskCriterion', 'MaskedAttentionDecoder', 'PointSampleHungarianMatcher',
    'TransformerEncoderFPNPixelDecoder'
]
