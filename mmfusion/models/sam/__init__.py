"""Segment Anything: promptable segmentation that trains, fine-tunes and
generates masks (see ``configs/sam/README.md``). Its parts (prompt encoder,
mask decoder) live in ``models/encoders/vision`` where SEMat shares them."""
from .automatic_mask_generator import SAMAutomaticMaskGenerator
from .sam import SAM

__all__ = ['SAM', 'SAMAutomaticMaskGenerator']
