from .base_encoder import BaseEncoder
from .feature_cache import FeatureCache, encoder_fingerprint
from .pointcloud import *  # noqa: F401,F403
from .pointcloud import PointMAEEncoder, PointNet2SSG
from .speech import *  # noqa: F401,F403
from .speech import ConformerEncoder, LogMelFrontend, Wav2Vec2Encoder
from .text import *  # noqa: F401,F403
from .text import HFTextEncoder, OpenCLIPTextEncoder
from .vision import *  # noqa: F401,F403
from .vision import DiffusersKLVAE, OpenCLIPImageEncoder, SAMImageEncoder, TimmBackbone

# The wrappers too, so `from mmfusion.models import DiffusersKLVAE` works.
__all__ = [
    'BaseEncoder', 'FeatureCache', 'encoder_fingerprint', 'PointMAEEncoder', 'PointNet2SSG',
    'LogMelFrontend', 'Wav2Vec2Encoder', 'ConformerEncoder', 'HFTextEncoder',
    'OpenCLIPTextEncoder', 'DiffusersKLVAE', 'OpenCLIPImageEncoder', 'SAMImageEncoder',
    'TimmBackbone'
]
