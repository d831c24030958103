from typing import Sequence

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
    """

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
