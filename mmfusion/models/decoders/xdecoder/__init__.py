from .attention_mask import xdecoder_layout, xdecoder_self_attn_mask

__all__ = ['xdecoder_layout', 'xdecoder_self_attn_mask']
