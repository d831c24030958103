from .architectures import *  # noqa: F401,F403
from .data_preprocessors import *  # noqa: F401,F403
from .decoders import *  # noqa: F401,F403
from .decoders.mamba import *  # noqa: F401,F403
from .decoders.mask import *  # noqa: F401,F403
from .decoders.xdecoder import *  # noqa: F401,F403
from .decoders.zipper import *  # noqa: F401,F403
from .encoders import *  # noqa: F401,F403
from .layers import *  # noqa: F401,F403
from .tokenizers import *  # noqa: F401,F403
from .wrappers import FusionFSDP, frozen_submodules  # noqa: F401
