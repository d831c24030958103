"""GMS (Huo et al., 2024): generative medical segmentation in a frozen
KL-VAE's latent space, and the KL-VAE trained here as its first stage."""
from .gms import GMS
from .kl_autoencoder import KLAutoencoder
from .latent_mapping_net import LatentMappingNet

__all__ = ['GMS', 'KLAutoencoder', 'LatentMappingNet']
