"""Models: shared parts (``common``, ``layers``, ``encoders``, ``tokenizers``,
``data_preprocessors``) and one folder per model family."""
from .clip import *  # noqa: F401,F403
from .common import *  # noqa: F401,F403
from .data_preprocessors import *  # noqa: F401,F403
from .encoders import *  # noqa: F401,F403
from .frozenseg import *  # noqa: F401,F403
from .gms import *  # noqa: F401,F403
from .i2pmae import *  # noqa: F401,F403
from .layers import *  # noqa: F401,F403
from .mmmamba import *  # noqa: F401,F403
from .sam import *  # noqa: F401,F403
from .semat import *  # noqa: F401,F403
from .tokenizers import *  # noqa: F401,F403
from .wrappers import FusionFSDP, frozen_submodules  # noqa: F401
from .xdecoder import *  # noqa: F401,F403
from .zipper import *  # noqa: F401,F403
