from .ade20k_semantic_dataset import ADE20KSemanticDataset
from .coco_instance_crop_dataset import CocoInstanceCropDataset
from .coco_matting_dataset import COCOMattingDataset
from .coco_panoptic_caption_dataset import CocoPanopticCaptionDataset
from .matting_dataset import MattingDataset
from .medical_seg_dataset import MedicalSegDataset
from .pointcloud_datasets import ModelNet40Dataset, ScanObjectNNDataset, ShapeNet55Dataset
from .promptable_seg_dataset import PromptableSegDataset
from .refcoco_dataset import RefCocoDataset
from .refmatte_dataset import RefMatteDataset
from .speech_text_dataset import SpeechTextDataset, TextLineDataset
from .synthshapes3d_dataset import SynthShapes3DDataset
from .transforms import *  # noqa: F401,F403

__all__ = ['MedicalSegDataset', 'CocoInstanceCropDataset', 'CocoPanopticCaptionDataset',
           'ADE20KSemanticDataset', 'RefCocoDataset', 'SpeechTextDataset',
           'TextLineDataset', 'PromptableSegDataset', 'MattingDataset', 'COCOMattingDataset',
           'RefMatteDataset', 'ModelNet40Dataset', 'ScanObjectNNDataset', 'ShapeNet55Dataset',
           'SynthShapes3DDataset']
