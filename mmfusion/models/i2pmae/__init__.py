"""I2P-MAE: point-cloud representations from a frozen 2D model (see
``configs/i2pmae/README.md``)."""
from .classifier import PointCloudClassifier, smooth_cross_entropy
from .h_encoder import I2PMAEEncoder
from .i2pmae import I2PMAE
from .point_mae_pretrainer import PointMAEPretrainer
from .teacher import DepthViewTeacher
from .zero_shot import PointCLIPAligner

__all__ = ['DepthViewTeacher', 'I2PMAE', 'I2PMAEEncoder', 'PointCLIPAligner',
           'PointCloudClassifier', 'PointMAEPretrainer', 'smooth_cross_entropy']
