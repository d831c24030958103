from .attention_mask import xdecoder_layout, xdecoder_self_attn_mask
from .xdecoder_head import XDecoderHead

__all__ = ['xdecoder_layout', 'xdecoder_self_attn_mask', 'XDecoderHead']
