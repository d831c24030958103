"""SEMat: box-prompted natural-image matting from a SAM prior (see
``configs/semat/README.md``)."""
from .matte_decoder import MatteDecoder
from .matting_tokens import MattingTokens
from .semat import OFFICIAL_LORA, SEMat

__all__ = ['MatteDecoder', 'MattingTokens', 'OFFICIAL_LORA', 'SEMat']
