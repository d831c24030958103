from .base_encoder import BaseEncoder
from .feature_cache import FeatureCache, encoder_fingerprint
from .pointcloud import *  # noqa: F401,F403
from .speech import *  # noqa: F401,F403
from .text import *  # noqa: F401,F403
from .vision import *  # noqa: F401,F403

__all__ = ['BaseEncoder', 'FeatureCache', 'encoder_fingerprint']
