from .base_encoder import BaseEncoder
from .vision import *  # noqa: F401,F403

__all__ = ['BaseEncoder']
