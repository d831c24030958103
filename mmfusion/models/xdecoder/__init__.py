"""X-Decoder (Zou et al., 2023): one decoder for open-vocabulary semantic,
instance and panoptic segmentation, referring segmentation, captioning and
retrieval; and the region-text pretraining of its backbone."""
from .attention_mask import xdecoder_layout, xdecoder_self_attn_mask
from .region_text_pretrainer import RegionTextHead, RegionTextPretrainer, mask_pool
from .tasks import SEG_TASKS, TASKS
from .xdecoder import XDecoder
from .xdecoder_head import XDecoderHead

__all__ = ['XDecoder', 'XDecoderHead', 'RegionTextPretrainer',
           'RegionTextHead', 'mask_pool', 'xdecoder_layout', 'xdecoder_self_attn_mask',
           'SEG_TASKS', 'TASKS']
