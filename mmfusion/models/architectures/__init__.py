from .gms import GMS
from .kl_autoencoder import KLAutoencoder

__all__ = ['GMS', 'KLAutoencoder']
