from .base_encoder import BaseEncoder
from .vision import DiffusersKLVAE

__all__ = ['BaseEncoder', 'DiffusersKLVAE']
