from .kl_vae import DiffusersKLVAE
from .openclip_image import OpenCLIPImageEncoder
from .sam_image import SAMImageEncoder
from .timm_backbone import TimmBackbone

__all__ = ['DiffusersKLVAE', 'OpenCLIPImageEncoder', 'SAMImageEncoder', 'TimmBackbone']
