from . import tiny_convnext  # noqa: F401  (registers timm model names)
from .focalnet_dw import FOCALNET_ARCHS, FocalNetDW
from .kl_vae import DiffusersKLVAE
from .openclip_image import OpenCLIPImageEncoder
from .sam_image import SAMImageEncoder
from .sam_parts import (
                        SAM_MODEL_ARCHS,
                        SAMMaskDecoder,
                        SAMPromptEncoder,
                        build_sam_parts,
                        split_sam_checkpoint,
)
from .timm_backbone import TimmBackbone

__all__ = [
    'FOCALNET_ARCHS', 'FocalNetDW', 'DiffusersKLVAE', 'OpenCLIPImageEncoder', 'SAMImageEncoder', 'SAMMaskDecoder',
    'SAMPromptEncoder', 'SAM_MODEL_ARCHS', 'TimmBackbone', 'build_sam_parts', 'split_sam_checkpoint'
]
