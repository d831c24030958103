"""Mask-decoding pieces shared by X-Decoder and FrozenSeg."""
from .mask_criterion import MaskCriterion, per_layer_loss_name
from .masked_attention_decoder import MaskedAttentionDecoder
from .matcher import PointSampleHungarianMatcher, batch_gt_masks, gt_masks_tensor
from .pixel_decoder import TransformerEncoderFPNPixelDecoder

__all__ = [
    'MaskCriterion', 'MaskedAttentionDecoder', 'PointSampleHungarianMatcher',
    'TransformerEncoderFPNPixelDecoder', 'per_layer_loss_name', 'batch_gt_masks', 'gt_masks_tensor'
]
