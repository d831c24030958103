"""SemSegIoUMetric equals mmseg's IoUMetric and a numpy confusion-matrix mIoU."""
import numpy as np
import torch
from mmengine.structures import PixelData
from mmseg.evaluation import IoUMetric

from mmfusion.registry import METRICS
from mmfusion.structures import FusionDataSample

CLASSES = ('a', 'b', 'c', 'd')


def _samples(seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(3):
        gt = rng.integers(0, 4, (24, 20))
        gt[rng.random(gt.shape) < 0.1] = 255
        pred = np.where(rng.random(gt.shape) < 0.7, gt, rng.integers(0, 4, gt.shape))
        pred[pred == 255] = 0
        s = FusionDataSample(metainfo=dict(img_path='x.png'))
        s.gt_sem_seg = PixelData(data=torch.from_numpy(gt)[None])
        s.pred_sem_seg = PixelData(data=torch.from_numpy(pred)[None])
        out.append(s.to_dict())
    return out


def _run(metric, samples):
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)


def _numpy_iou(samples) -> np.ndarray:
    """Per-class IoU from a confusion matrix (255 ignored)."""
    conf = np.zeros((4, 4))
    for s in samples:
        gt = s['gt_sem_seg']['data'].numpy().ravel()
        pred = s['pred_sem_seg']['data'].numpy().ravel()
        keep = gt != 255
        np.add.at(conf, (gt[keep], pred[keep]), 1)
    return np.diag(conf) / (conf.sum(0) + conf.sum(1) - np.diag(conf))


def test_parity_with_mmseg_and_numpy():
    samples = _samples()
    ours = _run(METRICS.build(dict(type='SemSegIoUMetric')), samples)
    ref = _run(IoUMetric(), samples)
    assert set(ours) == {'aAcc', 'mIoU', 'mAcc'}
    assert ours == ref
    iou = _numpy_iou(samples)
    assert abs(ours['mIoU'] - round(100 * iou.mean(), 2)) < 1e-4  # mmseg rounds to 0.01 in float32


def test_missing_gt_is_named():
    s = _samples()[0]
    del s['gt_sem_seg']
    metric = METRICS.build(dict(type='SemSegIoUMetric'))
    metric.dataset_meta = dict(classes=CLASSES)
    try:
        metric.process({}, [s])
    except KeyError as e:
        assert 'gt_sem_seg' in str(e)
    else:
        raise AssertionError('expected KeyError')


def test_class_groups_average_the_confusion_matrix_iou_of_their_classes():
    samples = _samples(1)
    ours = _run(METRICS.build(dict(type='SemSegIoUMetric',
                                   class_groups=dict(novel=['b', 'd'], all=list(CLASSES)))),
                samples)
    iou = _numpy_iou(samples)
    assert abs(ours['mIoU_novel'] - 100 * iou[[1, 3]].mean()) < 0.01
    assert abs(ours['mIoU_all'] - ours['mIoU']) < 0.01
    bad = METRICS.build(dict(type='SemSegIoUMetric', class_groups=dict(x=['zebra'])))
    try:
        _run(bad, samples)
    except ValueError as e:
        assert 'zebra' in str(e)
    else:
        raise AssertionError('expected ValueError')
