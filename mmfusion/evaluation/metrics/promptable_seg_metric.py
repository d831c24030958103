from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric

from mmfusion.registry import METRICS


def number_of_clicks(click_ious: np.ndarray, threshold: float) -> np.ndarray:
    """NoC: per object, the clicks (the first prompt counts as click 1) until
    the IoU reaches ``threshold``; objects that never reach it count as the
    number of clicks simulated (the usual cap, Xu et al. 2016)."""
    reached = click_ious >= threshold
    first = reached.argmax(1) + 1
    return np.where(reached.any(1), first, click_ious.shape[1]).astype(float)


@METRICS.register_module()
class PromptableSegMetric(BaseMetric):
    """Promptable / interactive segmentation quality.

    Reads ``pred_instances.click_ious`` (N, 1 + k): the IoU of each prompted
    object after its first prompt and after each of k corrective clicks, as
    ``SAM`` records it from the ground truth; and ``gt_instances.labels`` for
    per-class subsets.

    Keys (IoU in [0, 1]):

    - ``mIoU``: mean IoU after the first prompt;
    - ``mIoU_c{j}``: after ``j`` corrective clicks, for ``j`` in
      ``report_clicks`` that were simulated;
    - ``NoC@85``, ``NoC@90`` (with k > 0): mean number of clicks to reach
      that IoU, the first prompt counted as one, capped at 1 + k;
    - ``mIoU_{name}`` for each ``subsets`` entry: the objects whose class
      name is in that list (e.g. the held-out classes), with ``count_{name}``.

    Args:
        report_clicks: corrective-click counts reported as ``mIoU_c{j}``.
        noc_thresholds: IoU thresholds of the NoC keys.
        subsets: ``{name: [class names]}`` (names of ``dataset_meta['classes']``).
    """

    default_prefix: Optional[str] = 'prompt'

    def __init__(self, report_clicks: Sequence[int] = (1, 3, 5),
                 noc_thresholds: Sequence[float] = (0.85, 0.9),
                 subsets: Optional[Dict[str, Sequence[str]]] = None,
                 collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.report_clicks = list(report_clicks)
        self.noc_thresholds = list(noc_thresholds)
        self.subsets = {k: list(v) for k, v in (subsets or {}).items()}

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            pred = sample.get('pred_instances', {})
            if 'click_ious' not in pred:
                raise KeyError(f'PromptableSegMetric needs pred_instances.click_ious (SAM with '
                               f'ground truth in the data samples); {sample.get("img_path")} '
                               'has none')
            labels = sample.get('gt_instances', {}).get('labels')
            ious = pred['click_ious'].float().cpu().numpy()
            labels = (labels.cpu().numpy() if labels is not None
                      else np.full(len(ious), -1, np.int64))
            self.results.append((ious, labels))

    def compute_metrics(self, results: List[tuple]) -> Dict[str, float]:
        ious = np.concatenate([r[0] for r in results]) if results else np.zeros((0, 1))
        labels = np.concatenate([r[1] for r in results]) if results else np.zeros(0, np.int64)
        if not len(ious):
            raise ValueError('PromptableSegMetric: no prompted object was evaluated')
        out = dict(mIoU=float(ious[:, 0].mean()), count=float(len(ious)))
        clicks = ious.shape[1] - 1
        for j in self.report_clicks:
            if j <= clicks:
                out[f'mIoU_c{j}'] = float(ious[:, j].mean())
        if clicks:
            for thr in self.noc_thresholds:
                out[f'NoC@{round(thr * 100)}'] = float(number_of_clicks(ious, thr).mean())
        classes = list((self.dataset_meta or {}).get('classes') or [])
        for name, members in self.subsets.items():
            unknown = [m for m in members if m not in classes]
            if unknown:
                raise ValueError(f'PromptableSegMetric: subset {name!r} names classes {unknown} '
                                 f'that the dataset does not have; it has {classes}')
            keep = np.isin(labels, [classes.index(m) for m in members])
            out[f'count_{name}'] = float(keep.sum())
            out[f'mIoU_{name}'] = float(ious[keep, 0].mean()) if keep.any() else float('nan')
        return out
