from .medical_seg_dataset import MedicalSegDataset
from .transforms import *  # noqa: F401,F403

__all__ = ['MedicalSegDataset']
