"""ReferringSegMetric cIoU / mIoU / Pr@t against a direct numpy computation."""
import numpy as np
import torch

from mmfusion.registry import METRICS


def test_against_numpy():
    rng = np.random.default_rng(0)
    samples, inters, unions = [], [], []
    for i in range(6):
        gt = (rng.random((16, 16)) < 0.3).astype(np.int64)
        pred = np.where(rng.random(gt.shape) < 0.8, gt, 1 - gt)
        if i == 5:
            gt[:] = 0
            pred[:] = 0  # both empty: IoU 1 for mIoU, nothing for cIoU
        samples.append(dict(gt_sem_seg=dict(data=torch.from_numpy(gt)[None]),
                            pred_sem_seg=dict(data=torch.from_numpy(pred)[None])))
        inters.append(np.logical_and(gt, pred).sum())
        unions.append(np.logical_or(gt, pred).sum())
    metric = METRICS.build(dict(type='ReferringSegMetric'))
    metric.process({}, samples)
    out = metric.compute_metrics(metric.results)
    ious = [a / b if b else 1.0 for a, b in zip(inters, unions)]
    assert np.isclose(out['cIoU'], 100 * sum(inters) / sum(unions))
    assert np.isclose(out['mIoU'], 100 * np.mean(ious))
    assert np.isclose(out['Pr@0.5'], 100 * np.mean(np.array(ious) >= 0.5))
    assert set(out) == {'cIoU', 'mIoU', 'Pr@0.5', 'Pr@0.7', 'Pr@0.9'}
