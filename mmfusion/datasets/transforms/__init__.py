from .captions import SampleCaption
from .formatting import PackFusionInputs
from .loading import LoadBinaryMask, LoadImageFromFile, LoadMattingAnnotations, LoadMattingPanels
from .loading_audio import LoadAudioFromFile
from .loading_masks import LoadPanopticAnnotations, LoadReferringMask, SampleReferringExpression
from .loading_points import LoadPointsFromFile
from .point_projection import PointsToDepthImage
from .point_transforms import PointsRandomRotate, PointsScaleAndTranslate
from .processing import CropToBox, MattingRandomFlip
from .promptable import GeneratePrompts, LoadPromptableAnnotations
from .seg_augment import ColorJitter, RandomRotate90, RandomShiftScaleRotate

__all__ = ['LoadImageFromFile', 'LoadBinaryMask', 'LoadAudioFromFile', 'LoadPointsFromFile',
           'PackFusionInputs', 'CropToBox', 'LoadPanopticAnnotations', 'LoadReferringMask',
           'SampleReferringExpression', 'LoadPromptableAnnotations', 'GeneratePrompts',
           'LoadMattingAnnotations', 'LoadMattingPanels', 'MattingRandomFlip', 'PointsToDepthImage',
           'SampleCaption', 'PointsScaleAndTranslate', 'PointsRandomRotate',
           'RandomRotate90', 'RandomShiftScaleRotate', 'ColorJitter']
