"""Mask-decoding pieces shared by X-Decoder and FrozenSeg."""
from .mask_criterion import MaskCriterion, pad_class_logits, per_layer_loss_name
from .masked_attention_decoder import MaskedAttentionDecoder
from .matcher import PointSampleHungarianMatcher, batch_gt_masks, gt_masks_tensor
from .pixel_decoder import TransformerEncoderFPNPixelDecoder
from .postprocessor import SEG_TASKS, MaskPostProcessor, resize_masks

__all__ = [
    'MaskCriterion', 'MaskedAttentionDecoder', 'MaskPostProcessor', 'PointSampleHungarianMatcher',
    'SEG_TASKS', 'TransformerEncoderFPNPixelDecoder', 'batch_gt_masks', 'gt_masks_tensor',
    'pad_class_logits', 'per_layer_loss_name', 'resize_masks'
]
