"""All masks of an image: ``segment_anything``'s ``SamAutomaticMaskGenerator``
over an mmfusion SAM."""
from typing import Any, Dict, List

import numpy as np
import torch
from mmengine.structures import InstanceData
from pycocotools import mask as mask_utils

from mmfusion.utils.dependency import require


class SAMAutomaticMaskGenerator:
    """Point-grid prompting, IoU/stability filtering and NMS of
    ``segment_anything.SamAutomaticMaskGenerator``, run on a :class:`SAM`
    (trained here or loaded from an official checkpoint).

    Args:
        model: an mmfusion ``SAM``.
        **kwargs: ``SamAutomaticMaskGenerator`` options (``points_per_side``,
            ``pred_iou_thresh``, ``stability_score_thresh``,
            ``box_nms_thresh``, ``crop_n_layers``, ``min_mask_region_area``...).
            Its defaults are tuned for ViT-H at 1024 px; a tiny SAM on small
            images wants fewer points (e.g. 16 per side).

    Example::

        generator = SAMAutomaticMaskGenerator(model, points_per_side=16)
        proposals = generator.generate_instances(rgb_uint8)  # masks, scores, boxes
    """

    def __init__(self, model: torch.nn.Module, **kwargs: Any) -> None:
        sam_pkg = require('segment_anything', 'SAMAutomaticMaskGenerator', 'segment-anything')
        kwargs.setdefault('output_mode', 'binary_mask')
        self.model = model
        self.generator = sam_pkg.SamAutomaticMaskGenerator(model.as_segment_anything(), **kwargs)

    @staticmethod
    def _check(image: np.ndarray) -> None:
        if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
                and image.shape[2] == 3):
            got = (f'{image.dtype} array of shape {image.shape}' if isinstance(image, np.ndarray)
                   else type(image).__name__)
            raise ValueError(f'SAMAutomaticMaskGenerator expects an RGB uint8 (H, W, 3) image, '
                             f'got a {got}')

    def generate(self, image: np.ndarray) -> List[Dict[str, Any]]:
        """Upstream's records (``segmentation``, ``bbox`` xywh, ``area``,
        ``predicted_iou``, ``stability_score``...) for an RGB uint8 image."""
        self._check(image)
        return self.generator.generate(image)

    def generate_instances(self, image: np.ndarray) -> InstanceData:
        """The masks as ``InstanceData``: ``masks`` (M, H, W) bool,
        ``scores`` (predicted IoU), ``bboxes`` (M, 4) xyxy and class-agnostic
        ``labels`` (zeros), sorted by score."""
        records = sorted(self.generate(image), key=lambda r: -r['predicted_iou'])
        h, w = image.shape[:2]
        out = InstanceData()
        masks = [self._binary(r['segmentation'], h, w) for r in records]
        out.masks = torch.from_numpy(np.stack(masks)) if masks else torch.zeros((0, h, w),
                                                                                dtype=torch.bool)
        out.scores = torch.tensor([r['predicted_iou'] for r in records], dtype=torch.float)
        boxes = torch.tensor([r['bbox'] for r in records], dtype=torch.float).reshape(-1, 4)
        out.bboxes = torch.cat([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], 1)
        out.labels = torch.zeros(len(records), dtype=torch.long)
        return out

    @staticmethod
    def _binary(segmentation: Any, h: int, w: int) -> np.ndarray:
        if isinstance(segmentation, np.ndarray):
            return segmentation.astype(bool)
        return mask_utils.decode(segmentation).astype(bool).reshape(h, w)
