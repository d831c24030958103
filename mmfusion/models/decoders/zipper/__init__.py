from .tower import CausalDecoderTower
from .zipper_decoder import GatedCrossAttention, ZipperDecoder, aligned_context_layer

__all__ = ['CausalDecoderTower', 'ZipperDecoder', 'GatedCrossAttention', 'aligned_context_layer']
