"""What several model families share: the base model, greedy decoding,
token sequences, the causal LM stack, open-vocabulary segmentation and the
mask-decoding parts (``mask/``) and the alpha-matting losses (``matting_losses``).
Nothing here imports a family folder."""
from .base_model import FusionBaseModel
from .causal_lm import CausalDecoderTower, CausalLMStack
from .generation import greedy_decode
from .mask import (
                   MaskCriterion,
                   MaskedAttentionDecoder,
                   PointSampleHungarianMatcher,
                   TransformerEncoderFPNPixelDecoder,
)
from .open_vocab_seg import OpenVocabSegMixin
from .sequence import (
                   BOS,
                   EOS,
                   PAD,
                   SPECIALS,
                   UNK,
                   lengths_to_padding_mask,
                   next_token_loss,
                   pad_sequences,
                   token_noise,
)

__all__ = [
    'FusionBaseModel', 'CausalDecoderTower', 'CausalLMStack', 'greedy_decode', 'MaskCriterion',
    'MaskedAttentionDecoder', 'PointSampleHungarianMatcher', 'TransformerEncoderFPNPixelDecoder',
    'OpenVocabSegMixin', 'BOS', 'EOS', 'PAD', 'SPECIALS', 'UNK', 'lengths_to_padding_mask',
    'next_token_loss', 'pad_sequences', 'token_noise'
]
