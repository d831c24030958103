from .latent_mapping_net import LatentMappingNet

__all__ = ['LatentMappingNet']
