"""mmfusion: a modular multimodal foundation-model toolkit on mmengine."""
__version__ = '0.1.0'

# Safe checkpoint loading and the atomic file backend are installed on import.
from . import utils  # noqa: E402,F401
