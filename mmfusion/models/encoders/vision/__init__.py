from .kl_vae import DiffusersKLVAE

__all__ = ['DiffusersKLVAE']
