"""Zipper (Zayats et al., 2024): independently pretrained unimodal decoder
towers fused by gated cross-attention (ASR, TTS), and its vocabulary-expansion
baseline."""
from .vocab_expansion import VocabExpansionASR
from .zipper import UNIT_OFFSET, Zipper, check_zipper_task
from .zipper_decoder import (
                             GatedCrossAttention,
                             InputProjection,
                             ZipperDecoder,
                             aligned_context_layer,
)

__all__ = ['Zipper', 'VocabExpansionASR', 'ZipperDecoder', 'GatedCrossAttention',
           'InputProjection', 'aligned_context_layer', 'check_zipper_task', 'UNIT_OFFSET']
