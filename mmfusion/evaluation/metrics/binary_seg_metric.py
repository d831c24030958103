from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from scipy import ndimage

from mmfusion.registry import METRICS


def _surface(mask: np.ndarray) -> np.ndarray:
    """Foreground pixels with at least one 4-connected background neighbour
    (pixels outside the image count as background)."""
    eroded = ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(2, 1),
                                    border_value=0)
    return mask & ~eroded


def binary_overlap_scores(pred: np.ndarray, gt: np.ndarray) -> Dict[str, float]:
    """Dice, IoU and HD95 (in pixels) of two binary masks of the same shape.

    Empty-mask cases:

    - both empty: Dice = IoU = 1, HD95 = 0 (the prediction is exactly right);
    - exactly one empty: Dice = IoU = 0, HD95 = the image diagonal, the
      largest distance two pixels of the image can have (MONAI returns
      nan/inf here, which would poison an average).

    HD95 follows MONAI's ``compute_hausdorff_distance(percentile=95)``: the
    larger of the two directed 95th-percentile distances between the mask
    surfaces (Euclidean, pixel spacing 1).
    """
    pred = pred.astype(bool)
    gt = gt.astype(bool)
    if pred.shape != gt.shape:
        raise ValueError(f'prediction shape {pred.shape} differs from ground truth {gt.shape}')
    p_sum, g_sum = pred.sum(), gt.sum()
    if p_sum == 0 and g_sum == 0:
        return dict(dice=1.0, iou=1.0, hd95=0.0)
    if p_sum == 0 or g_sum == 0:
        return dict(dice=0.0, iou=0.0, hd95=float(np.hypot(*pred.shape)))
    inter = np.logical_and(pred, gt).sum()
    union = np.logical_or(pred, gt).sum()
    pred_surface, gt_surface = _surface(pred), _surface(gt)
    # Distance of every pixel to the nearest surface pixel of the other mask.
    dist_to_gt = ndimage.distance_transform_edt(~gt_surface)
    dist_to_pred = ndimage.distance_transform_edt(~pred_surface)
    hd95 = max(np.percentile(dist_to_gt[pred_surface], 95),
               np.percentile(dist_to_pred[gt_surface], 95))
    return dict(dice=float(2 * inter / (p_sum + g_sum)), iou=float(inter / union), hd95=float(hd95))


@METRICS.register_module()
class BinarySegMetric(BaseMetric):
    """Per-image Dice, IoU and HD95 of the foreground class, averaged over images.

    Reads ``pred_sem_seg.data`` and ``gt_sem_seg.data`` (foreground =
    ``foreground_index``). See :func:`binary_overlap_scores` for the empty-mask
    conventions. Dice and IoU are reported in [0, 1]; HD95 in pixels.
    """

    default_prefix: Optional[str] = None

    def __init__(self, foreground_index: int = 1, collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.foreground_index = foreground_index

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            pred = sample['pred_sem_seg']['data'].squeeze(0).cpu().numpy()
            if 'gt_sem_seg' not in sample:
                raise KeyError(f'BinarySegMetric needs gt_sem_seg; sample {sample.get("img_path")} '
                               'has none (does the test pipeline load masks?)')
            gt = sample['gt_sem_seg']['data'].squeeze(0).cpu().numpy()
            scores = binary_overlap_scores(pred == self.foreground_index, gt == self.foreground_index)
            scores['img_path'] = sample.get('img_path')
            self.results.append(scores)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        return {key: float(np.mean([r[key] for r in results])) for key in ('dice', 'iou', 'hd95')}
