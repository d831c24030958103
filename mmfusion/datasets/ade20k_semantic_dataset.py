from typing import Dict, Optional, Sequence, Union

from mmseg.datasets import ADE20KDataset

from mmfusion.registry import DATASETS


@DATASETS.register_module()
class ADE20KSemanticDataset(ADE20KDataset):
    """ADE20K (ADEChallengeData2016) semantic segmentation, reusing mmseg's dataset.

    Layout: ``images/{training,validation}/*.jpg`` and
    ``annotations/{training,validation}/*.png`` where 0 = "other" (ignored)
    and 1..150 are the classes; ``reduce_zero_label=True`` (the default)
    shifts labels by one and maps 0 to 255, as mmseg. Load labels with
    ``dict(type='mmseg.LoadAnnotations')``; samples hold ``img_path``,
    ``seg_map_path``, ``label_map``, ``reduce_zero_label`` and ``seg_fields``.

    ``metainfo=dict(classes=...)`` with a subset of ADE20K's 150 names remaps
    labels as mmseg does. Classes that are *not* ADE20K names define a new
    label space read from the PNGs as they are (pixel value = class index,
    255 = ignore with ``reduce_zero_label=False``) — this is how SynthShapes'
    ``semantic/`` maps are read.
    """

    @classmethod
    def get_label_map(cls, new_classes: Optional[Sequence] = None) -> Union[Dict, None]:
        if new_classes is not None and not set(new_classes).issubset(cls.METAINFO['classes']):
            return None
        return super().get_label_map(new_classes)

    def _update_palette(self) -> list:
        classes = self._metainfo.get('classes', [])
        if self.label_map is None and len(self._metainfo.get('palette', [])) != len(classes):
            self._metainfo['palette'] = []
        return super()._update_palette()
