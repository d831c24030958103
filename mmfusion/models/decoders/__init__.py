from .gms import LatentMappingNet

__all__ = ['LatentMappingNet']
