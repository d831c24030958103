from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric

from mmfusion.registry import METRICS


@METRICS.register_module()
class ReferringSegMetric(BaseMetric):
    """Referring segmentation: ``cIoU`` (cumulative: the sum of intersections
    over the sum of unions, over all expressions), ``mIoU`` (the mean
    per-expression IoU; an expression whose prediction and target are both
    empty scores 1) and ``Pr@0.5`` ... precision at IoU thresholds, all in
    percent.

    Reads binary ``pred_sem_seg.data`` and ``gt_sem_seg.data`` ((1, H, W),
    foreground = nonzero; 255 in the ground truth is ignored), as
    ``RefCocoDataset`` + ``LoadReferringMask`` give.
    """

    default_prefix: Optional[str] = 'refer'

    def __init__(self, thresholds: Sequence[float] = (0.5, 0.7, 0.9), ignore_index: int = 255,
                 collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.thresholds = tuple(thresholds)
        self.ignore_index = ignore_index

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            for key in ('pred_sem_seg', 'gt_sem_seg'):
                if key not in sample:
                    raise KeyError(f'ReferringSegMetric needs {key}; sample '
                                   f'{sample.get("img_path")} has none')
            pred = sample['pred_sem_seg']['data'].squeeze(0).cpu().numpy()
            gt = sample['gt_sem_seg']['data'].squeeze(0).cpu().numpy()
            if pred.shape != gt.shape:
                raise ValueError(f'prediction {pred.shape} and ground truth {gt.shape} of '
                                 f'{sample.get("img_path")} differ in size')
            valid = gt != self.ignore_index
            p, g = (pred != 0) & valid, (gt != 0) & valid
            self.results.append((int((p & g).sum()), int((p | g).sum())))

    def compute_metrics(self, results: List[tuple]) -> Dict[str, float]:
        inter = np.array([r[0] for r in results], np.float64)
        union = np.array([r[1] for r in results], np.float64)
        ious = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
        metrics = dict(cIoU=100 * inter.sum() / max(union.sum(), 1), mIoU=100 * ious.mean())
        for t in self.thresholds:
            metrics[f'Pr@{t:g}'] = 100 * float((ious >= t).mean())
        return {k: float(v) for k, v in metrics.items()}
