"""I2P-MAE: point-cloud representations from a frozen 2D model (see
``configs/i2pmae/README.md``)."""
from .h_encoder import I2PMAEEncoder
from .i2pmae import I2PMAE
from .teacher import DepthViewTeacher

__all__ = ['DepthViewTeacher', 'I2PMAE', 'I2PMAEEncoder']
