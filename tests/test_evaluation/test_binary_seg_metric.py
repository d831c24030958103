import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from scipy.spatial.distance import cdist

from mmfusion.evaluation import BinarySegMetric, binary_overlap_scores
from mmfusion.structures import FusionDataSample


def _border_points(mask: np.ndarray) -> np.ndarray:
    """Foreground pixels with a 4-neighbour outside the foreground, found by
    looking at the padded neighbours directly (no morphology)."""
    padded = np.pad(mask, 1)
    neighbours_bg = ~(padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:])
    return np.argwhere(mask & neighbours_bg)


def _reference(pred: np.ndarray, gt: np.ndarray) -> dict:
    inter = np.sum(pred & gt)
    d = cdist(_border_points(pred), _border_points(gt))  # brute-force pairwise distances
    hd95 = max(np.percentile(d.min(axis=1), 95), np.percentile(d.min(axis=0), 95))
    return dict(dice=2 * inter / (pred.sum() + gt.sum()), iou=inter / np.sum(pred | gt), hd95=hd95)


def _blob(rng, shape=(40, 50)):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    m = np.zeros(shape, bool)
    for _ in range(rng.integers(1, 4)):
        cy, cx, ry, rx = rng.integers(5, 35), rng.integers(5, 45), rng.integers(2, 10), rng.integers(2, 10)
        m |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
    return m


@pytest.mark.parametrize('seed', range(8))
def test_scores_match_brute_force_reference(seed):
    rng = np.random.default_rng(seed)
    pred, gt = _blob(rng), _blob(rng)
    ours, ref = binary_overlap_scores(pred, gt), _reference(pred, gt)
    for key in ('dice', 'iou', 'hd95'):
        assert ours[key] == pytest.approx(ref[key], abs=1e-9), key


def test_empty_mask_conventions():
    empty, full = np.zeros((30, 40), bool), np.ones((30, 40), bool)
    assert binary_overlap_scores(empty, empty) == dict(dice=1.0, iou=1.0, hd95=0.0)
    for a, b in ((empty, full), (full, empty)):
        assert binary_overlap_scores(a, b) == dict(dice=0.0, iou=0.0, hd95=50.0)  # diagonal


def test_identical_and_shifted_masks():
    m = np.zeros((20, 20), bool)
    m[5:10, 5:10] = True
    assert binary_overlap_scores(m, m) == dict(dice=1.0, iou=1.0, hd95=0.0)
    shifted = np.roll(m, 3, axis=1)
    assert binary_overlap_scores(shifted, m)['hd95'] == pytest.approx(3.0)


def test_metric_averages_per_image():
    rng = np.random.default_rng(0)
    pairs = [(_blob(rng), _blob(rng)) for _ in range(3)] + [(np.zeros((40, 50), bool),) * 2]
    metric = BinarySegMetric()
    samples = []
    for pred, gt in pairs:
        s = FusionDataSample()
        s.pred_sem_seg = PixelData(data=torch.from_numpy(pred[None].astype(np.int64)))
        s.gt_sem_seg = PixelData(data=torch.from_numpy(gt[None].astype(np.int64)))
        samples.append(s.to_dict())
    metric.process({}, samples)
    result = metric.compute_metrics(metric.results)
    expected = [binary_overlap_scores(p, g) for p, g in pairs]
    for key in ('dice', 'iou', 'hd95'):
        assert result[key] == pytest.approx(np.mean([e[key] for e in expected]))
    assert result['dice'] != pytest.approx(  # not a pooled (global) Dice
        2 * sum((p & g).sum() for p, g in pairs) / sum(p.sum() + g.sum() for p, g in pairs))
