"""Segment Anything: promptable segmentation that trains, fine-tunes and
generates masks (see ``configs/sam/README.md``)."""
from .automatic_mask_generator import SAMAutomaticMaskGenerator
from .sam import SAM, SAM_ARCHS
from .sam_parts import SAMMaskDecoder, SAMPromptEncoder, split_sam_checkpoint

__all__ = [
    'SAM', 'SAM_ARCHS', 'SAMAutomaticMaskGenerator', 'SAMMaskDecoder', 'SAMPromptEncoder',
    'split_sam_checkpoint'
]
