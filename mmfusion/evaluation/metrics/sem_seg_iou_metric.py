from typing import Dict, List, Optional, Sequence

import numpy as np
from mmseg.evaluation import IoUMetric

from mmfusion.registry import METRICS


@METRICS.register_module()
class SemSegIoUMetric(IoUMetric):
    """mmseg's :class:`IoUMetric` (``aAcc``, ``mIoU``, ``mAcc`` in percent, and
    per-class tables) on mmfusion data samples.

    Reads ``pred_sem_seg.data`` and ``gt_sem_seg.data`` ((1, H, W) class
    indices, ``ignore_index`` = 255 ignored) and ``dataset_meta['classes']``;
    the numbers are mmseg's own, this subclass only checks the inputs and
    names what is missing.

    Args:
        class_groups (dict, optional): ``{name: [class names]}``; adds
            ``mIoU_<name>``, the mean IoU over the group's classes that occur
            in the ground truth or the predictions (e.g. the held-out classes
            of an open-vocabulary split).
        **kwargs: :class:`mmseg.evaluation.IoUMetric` arguments.
    """

    def __init__(self, class_groups: Optional[Dict[str, Sequence[str]]] = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.class_groups = {k: list(v) for k, v in (class_groups or {}).items()}

    default_prefix = None

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        if not self.dataset_meta or not self.dataset_meta.get('classes'):
            raise KeyError('SemSegIoUMetric needs dataset_meta["classes"]; the evaluator sets it '
                           'from the dataset (metainfo "classes")')
        for sample in data_samples:
            for key in ('pred_sem_seg', 'gt_sem_seg'):
                if key not in sample:
                    raise KeyError(f'SemSegIoUMetric needs {key}; sample {sample.get("img_path")} '
                                   'has none (does the test pipeline load the label map?)')
        super().process(data_batch, data_samples)

    def compute_metrics(self, results: List) -> Dict[str, float]:
        metrics = super().compute_metrics(results)
        if self.class_groups:
            classes = list(self.dataset_meta['classes'])
            inter = sum(r[0] for r in results).numpy().astype(np.float64)
            union = sum(r[1] for r in results).numpy().astype(np.float64)
            for group, names in self.class_groups.items():
                unknown = sorted(set(names) - set(classes))
                if unknown:
                    raise ValueError(f'class_groups["{group}"]: {unknown} are not dataset '
                                     'classes')
                idx = [classes.index(n) for n in names if union[classes.index(n)] > 0]
                metrics[f'mIoU_{group}'] = (round(float(100 * np.mean(inter[idx] / union[idx])),
                                                  2) if idx else float('nan'))
        return metrics
