"""PromptableSegMetric against hand-computed mIoU and NoC."""
import numpy as np
import pytest
import torch

from mmfusion.evaluation.metrics import number_of_clicks
from mmfusion.registry import METRICS


def _sample(ious, labels):
    return dict(img_path='x.png', pred_instances=dict(click_ious=torch.tensor(ious)),
                gt_instances=dict(labels=torch.tensor(labels)))


def test_miou_noc_and_subsets():
    metric = METRICS.build(dict(type='PromptableSegMetric', report_clicks=(1, 3, 9),
                                subsets=dict(novel=['b'])))
    metric.dataset_meta = dict(classes=('a', 'b'))
    metric.process({}, [_sample([[0.50, 0.80, 0.86, 0.95], [0.91, 0.92, 0.93, 0.94]], [0, 1])])
    metric.process({}, [_sample([[0.10, 0.20, 0.30, 0.40]], [1])])
    out = metric.compute_metrics(metric.results)
    assert out['mIoU'] == pytest.approx((0.50 + 0.91 + 0.10) / 3)
    assert out['mIoU_c1'] == pytest.approx((0.80 + 0.92 + 0.20) / 3)
    assert out['mIoU_c3'] == pytest.approx((0.95 + 0.94 + 0.40) / 3)
    assert 'mIoU_c9' not in out  # only 3 corrective clicks were simulated
    # clicks to reach 0.85: 3, 1, never (capped at 4); to reach 0.90: 4, 1, 4
    assert out['NoC@85'] == pytest.approx((3 + 1 + 4) / 3)
    assert out['NoC@90'] == pytest.approx((4 + 1 + 4) / 3)
    assert out['mIoU_novel'] == pytest.approx((0.91 + 0.10) / 2)
    assert out['count_novel'] == 2 and out['count'] == 3


def test_prompt_only_and_errors():
    metric = METRICS.build(dict(type='PromptableSegMetric'))
    metric.process({}, [_sample([[0.7], [0.9]], [0, 0])])
    out = metric.compute_metrics(metric.results)
    assert out == dict(mIoU=pytest.approx(0.8), count=2.0)
    with pytest.raises(KeyError, match='click_ious'):
        metric.process({}, [dict(img_path='y.png', pred_instances=dict())])
    bad = METRICS.build(dict(type='PromptableSegMetric', subsets=dict(novel=['zebra'])))
    bad.dataset_meta = dict(classes=('a', ))
    bad.process({}, [_sample([[0.7]], [0])])
    with pytest.raises(ValueError, match="subset 'novel' names classes \\['zebra'\\]"):
        bad.compute_metrics(bad.results)
    assert number_of_clicks(np.array([[0.9, 0.95]]), 0.85).tolist() == [1.0]
