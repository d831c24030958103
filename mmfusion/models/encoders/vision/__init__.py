from .kl_vae import DiffusersKLVAE
from .openclip_image import OpenCLIPImageEncoder
from .sam_image import SAMImageEncoder
from .timm_backbone import TimmBackbone
from . import tiny_convnext  # noqa: F401  (registers timm model names)

__all__ = ['DiffusersKLVAE', 'OpenCLIPImageEncoder', 'SAMImageEncoder', 'TimmBackbone']
