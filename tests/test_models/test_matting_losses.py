"""Matting losses against hand computations and loop implementations."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from mmfusion.models.common.matting_losses import (
    ghmc_loss,
    gradient_loss,
    known_l1_loss,
    laplacian_loss,
    laplacian_pyramid,
    logit_regularization_loss,
    trimap_to_classes,
    unknown_l1_loss,
)


def _t(a):
    return torch.tensor(a, dtype=torch.float64)[None, None]


def test_region_l1_by_hand():
    pred, gt = _t([[0.2, 0.5], [1.0, 0.0]]), _t([[0.0, 1.0], [1.0, 0.5]])
    unknown = _t([[1, 1], [0, 0]])
    assert unknown_l1_loss(pred, gt, unknown).item() == pytest.approx((0.2 + 0.5) / 2)
    assert known_l1_loss(pred, gt, unknown).item() == pytest.approx((0.0 + 0.5) / 2)
    assert unknown_l1_loss(pred, gt, torch.zeros_like(unknown)).item() == 0


def _reference_pyramid(img, levels):
    """Loops over pixels: blur = sum of the 25 binomial taps on the reflected image."""
    k1 = np.array([1, 4, 6, 4, 1]) / 16.0
    k = np.outer(k1, k1)

    def blur(a):
        p = np.pad(a, 2, mode='reflect')
        out = np.zeros_like(a)
        for y in range(a.shape[0]):
            for x in range(a.shape[1]):
                out[y, x] = (p[y:y + 5, x:x + 5] * k).sum()
        return out

    out, cur = [], img
    for _ in range(levels):
        cur = cur[:cur.shape[0] // 2 * 2, :cur.shape[1] // 2 * 2]
        down = blur(cur)[::2, ::2]
        up = np.zeros_like(cur)
        up[::2, ::2] = 4 * down
        out.append(cur - blur(up))
        cur = down
    return out


def test_laplacian_pyramid_and_loss_by_reference():
    rng = np.random.default_rng(0)
    img = rng.random((34, 20))
    ours = laplacian_pyramid(_t(img), 3)
    for o, r in zip(ours, _reference_pyramid(img, 3)):
        np.testing.assert_allclose(o[0, 0].numpy(), r, atol=1e-12)
    pred, gt = rng.random((96, 100)), rng.random((96, 100))
    expected = sum(2 ** i * np.abs(p - g).mean() for i, (p, g) in enumerate(
        zip(_reference_pyramid(pred, 5), _reference_pyramid(gt, 5)))) / 5
    assert laplacian_loss(_t(pred), _t(gt)).item() == pytest.approx(expected, rel=1e-10)
    # band-pass: a constant offset costs nothing
    assert laplacian_loss(_t(pred) + 0.3, _t(pred)).item() == pytest.approx(0, abs=1e-12)
    with pytest.raises(ValueError, match='at least 64 pixels'):
        laplacian_loss(_t(pred[:40, :40]), _t(gt[:40, :40]))


def test_gradient_loss_by_reference():
    rng = np.random.default_rng(1)
    pred, gt = rng.random((9, 11)), rng.random((9, 11))
    unknown = (rng.random((9, 11)) > 0.5).astype(float)
    sx = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float)
    g = {n: [ndimage.correlate(a, s, mode='constant') for s in (sx, sx.T)]
         for n, a in (('p', pred), ('g', gt))}
    error = sum(np.abs(g['p'][i] - g['g'][i]) + 0.01 * np.abs(g['p'][i]) for i in range(2))
    expected = (error * unknown).sum() / unknown.sum()
    assert gradient_loss(_t(pred), _t(gt), _t(unknown)).item() == pytest.approx(expected)


def test_ghmc_by_hand():
    # 4 pixels whose target probabilities are 0.9, 0.85, 0.3, 0.05 -> g = 0.1, 0.15, 0.7, 0.95:
    # bins (of 10) 1, 1, 7, 9; three non-empty bins; weights 4 / (count * 3)
    p_target = np.array([0.9, 0.85, 0.3, 0.05])
    target = torch.tensor([[[0, 1, 2, 1]]])  # (N=1, H=1, W=4)
    probs = np.full((3, 4), 0.0)
    for i, (c, p) in enumerate(zip(target[0, 0].tolist(), p_target)):
        probs[:, i] = (1 - p) / 2
        probs[c, i] = p
    logits = torch.tensor(np.log(probs), dtype=torch.float64)[None, :, None, :]
    ce = -np.log(p_target)
    weights = 4 / (np.array([2, 2, 1, 1]) * 3)
    expected = (weights * ce).sum() / 4
    assert ghmc_loss(logits, target).item() == pytest.approx(expected)
    # all pixels in one bin: plain mean cross-entropy
    same = torch.tensor(np.log([[0.8, 0.1, 0.1]] * 4).T, dtype=torch.float64)[None, :, None, :]
    zeros = torch.zeros((1, 1, 4), dtype=torch.long)
    assert ghmc_loss(same, zeros).item() == pytest.approx(-np.log(0.8))
    # the weights are constants: the gradient is the weighted CE gradient
    logits.requires_grad_(True)
    ghmc_loss(logits, target).backward()
    soft = torch.tensor(probs)
    onehot = F.one_hot(target[0, 0], 3).T.double()
    expected_grad = (soft - onehot) * torch.tensor(weights) / 4
    torch.testing.assert_close(logits.grad[0, :, 0], expected_grad)


def test_regularization_and_trimap_classes():
    logits, frozen = torch.tensor([[0.5, -1.0]]), torch.tensor([[2.0, 0.0]])
    q = torch.sigmoid(frozen)
    p = torch.sigmoid(logits)
    expected = -(q * p.log() + (1 - q) * (1 - p).log()).mean()
    assert logit_regularization_loss(logits, frozen).item() == pytest.approx(expected.item())
    trimap = torch.tensor([[[0, 128, 255]]], dtype=torch.uint8)
    assert trimap_to_classes(trimap).tolist() == [[[0, 1, 2]]]
    assert trimap_to_classes(trimap[:, None]).tolist() == [[[0, 1, 2]]]
