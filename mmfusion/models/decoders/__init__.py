from .gms import *  # noqa: F401,F403
