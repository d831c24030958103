from .base_encoder import BaseEncoder
from .feature_cache import FeatureCache, encoder_fingerprint
from .pointcloud import PointMAEEncoder, PointNet2SSG
from .speech import ConformerEncoder, LogMelFrontend, Wav2Vec2Encoder
from .text import BagOfWordsTextEncoder, HFTextEncoder, OpenCLIPTextEncoder
from .vision import DiffusersKLVAE, FocalNetDW, OpenCLIPImageEncoder, SAMImageEncoder, TimmBackbone

__all__ = [
    'BaseEncoder', 'FeatureCache', 'encoder_fingerprint', 'PointMAEEncoder', 'PointNet2SSG',
    'LogMelFrontend', 'Wav2Vec2Encoder', 'ConformerEncoder', 'HFTextEncoder',
    'OpenCLIPTextEncoder', 'BagOfWordsTextEncoder', 'DiffusersKLVAE', 'FocalNetDW',
    'OpenCLIPImageEncoder', 'SAMImageEncoder', 'TimmBackbone'
]
