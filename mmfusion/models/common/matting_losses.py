"""Alpha-matting losses (ViTMatte / SEMat family), on (N, 1, H, W) alphas in [0, 1].

The official SEMat code (XiaRho/SEMat) releases inference only: its training
loss assembly is removed, and only the loss names and weights of its config
remain. Where the code is silent these follow ViTMatte, the matting code SEMat
builds on:

- unknown / known L1: summed |pred - gt| over the region divided by the
  region's area (ViTMatte's ``l1_loss * 512^2 / area`` for 512 crops);
- Laplacian: 5 levels of a Laplacian pyramid with the 5x5 binomial kernel,
  level ``l`` weighted ``2^l``, the sum divided by the number of levels, over
  the whole image;
- gradient: L1 between Sobel gradients of prediction and ground truth in the
  unknown region, plus ``0.01 |grad pred|`` there, area-normalised;
- trimap: normalised GHM-C (Li et al., AAAI 2019, as mmdet's ``GHMC``
  without momentum) on the 3-class (background / unknown / foreground)
  softmax of the matting logits;
- regularisation: BCE between the trainable decoder's mask logits and the
  frozen original decoder's probabilities.
"""
from typing import List

import torch
import torch.nn.functional as F
from torch import Tensor


def _area_normalised(error: Tensor, region: Tensor) -> Tensor:
    """sum(error * region) / sum(region); 0 when the region is empty."""
    return (error * region).sum() / region.sum().clamp(min=1)


def unknown_l1_loss(pred: Tensor, gt: Tensor, unknown: Tensor) -> Tensor:
    """L1 over the unknown region (``unknown`` a 0/1 map), area-normalised."""
    return _area_normalised((pred - gt).abs(), unknown.to(pred.dtype))


def known_l1_loss(pred: Tensor, gt: Tensor, unknown: Tensor) -> Tensor:
    """L1 over the known (foreground and background) region, area-normalised."""
    return _area_normalised((pred - gt).abs(), 1 - unknown.to(pred.dtype))


def _binomial_kernel(x: Tensor) -> Tensor:
    k = x.new_tensor([1., 4., 6., 4., 1.])
    return (k[:, None] * k[None, :] / 256.)[None, None]


def laplacian_pyramid(x: Tensor, levels: int = 5) -> List[Tensor]:
    """Band-pass levels of ``x`` (N, 1, H, W): each level minus the upsampled
    next (reflect-padded 5x5 binomial blur, decimation by 2)."""
    kernel = _binomial_kernel(x)
    pyramid = []
    current = x
    for level in range(levels):
        h, w = current.shape[-2:]
        if min(h, w) < 4:  # the 2-pixel reflect padding needs 3; decimation keeps it even
            raise ValueError(f'laplacian_pyramid: level {level} would be {h}x{w}; {levels} '
                             f'levels need an input of at least {2 ** (levels + 1)} pixels '
                             f'a side, got {tuple(x.shape[-2:])}')
        current = current[..., :h - h % 2, :w - w % 2]
        down = F.conv2d(F.pad(current, (2, 2, 2, 2), mode='reflect'), kernel)[..., ::2, ::2]
        up = torch.zeros_like(current)
        up[..., ::2, ::2] = down * 4
        up = F.conv2d(F.pad(up, (2, 2, 2, 2), mode='reflect'), kernel)
        pyramid.append(current - up)
        current = down
    return pyramid


def laplacian_loss(pred: Tensor, gt: Tensor, levels: int = 5) -> Tensor:
    """sum_l 2^l * mean |L_l(pred) - L_l(gt)| / levels."""
    loss = pred.new_zeros(())
    for level, (p, g) in enumerate(zip(laplacian_pyramid(pred, levels),
                                       laplacian_pyramid(gt, levels))):
        loss = loss + 2 ** level * (p - g).abs().mean()
    return loss / levels


def sobel(x: Tensor) -> Tensor:
    """(N, 2, H, W) Sobel x and y derivatives (zero padding)."""
    kx = x.new_tensor([[-1., 0., 1.], [-2., 0., 2.], [-1., 0., 1.]])
    kernel = torch.stack([kx, kx.t()])[:, None]
    return F.conv2d(x, kernel, padding=1)


def gradient_loss(pred: Tensor, gt: Tensor, unknown: Tensor, smooth: float = 0.01) -> Tensor:
    """Sobel-gradient L1 in the unknown region plus ``smooth |grad pred|``
    there, area-normalised (summed over x and y)."""
    gp, gg = sobel(pred), sobel(gt)
    error = ((gp - gg).abs() + smooth * gp.abs()).sum(1, keepdim=True)
    return _area_normalised(error, unknown.to(pred.dtype))


def ghmc_loss(logits: Tensor, target: Tensor, bins: int = 10) -> Tensor:
    """Normalised GHM-C on per-pixel softmax classes.

    Args:
        logits: (N, C, H, W) class logits (C = 3 for a trimap).
        target: (N, H, W) class indices.

    Each pixel's gradient norm g = 1 - p_target (detached) falls in one of
    ``bins`` equal bins of [0, 1]; its cross-entropy is weighted
    ``total / (count of its bin * number of non-empty bins)`` and the sum is
    divided by ``total``: frequent easy pixels are down-weighted, and the
    weights average to 1 over the image.
    """
    ce = F.cross_entropy(logits, target, reduction='none')
    with torch.no_grad():
        g = 1 - logits.softmax(1).gather(1, target[:, None])[:, 0]
        idx = (g * bins).long().clamp(max=bins - 1)
        counts = torch.bincount(idx.flatten(), minlength=bins).to(logits.dtype)
        nonempty = (counts > 0).sum()
        total = g.numel()
        weights = total / (counts[idx] * nonempty)
    return (weights * ce).sum() / total


def logit_regularization_loss(logits: Tensor, frozen_logits: Tensor) -> Tensor:
    """BCE between ``logits`` and the frozen decoder's sigmoid probabilities."""
    return F.binary_cross_entropy_with_logits(logits, frozen_logits.detach().sigmoid())


def trimap_to_classes(trimap: Tensor) -> Tensor:
    """0 / 128 / 255 trimap (N, 1, H, W) or (N, H, W) -> class indices 0 / 1 / 2 (N, H, W)."""
    if trimap.dim() == 4:
        trimap = trimap[:, 0]
    classes = torch.ones_like(trimap, dtype=torch.long)
    classes[trimap == 0] = 0
    classes[trimap == 255] = 2
    return classes
