from .coco_instance_crop_dataset import CocoInstanceCropDataset
from .medical_seg_dataset import MedicalSegDataset
from .transforms import *  # noqa: F401,F403

__all__ = ['MedicalSegDataset', 'CocoInstanceCropDataset']
