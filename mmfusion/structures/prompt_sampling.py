"""Prompts drawn from masks: SAM's simulated interaction for training and the
standard click protocol of interactive-segmentation evaluation.

Points are ``(x, y)`` pixel indices (column, row); ``segment_anything`` adds
the half-pixel shift itself. Point labels: 1 foreground, 0 background,
-1 "not a point" (padding, ignored by SAM's prompt encoder through its own
``not_a_point_embed``).
"""
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torchvision
from mmengine.structures import InstanceData
from scipy import ndimage
from torch import Tensor


def masks_to_boxes(masks: Tensor) -> Tensor:
    """(N, H, W) bool -> (N, 4) float ``x1 y1 x2 y2`` with x2/y2 the last
    foreground column/row + 1 (COCO ``x + w``); torchvision's boxes end at
    the last pixel itself."""
    if not len(masks):  # torchvision cannot reduce an empty batch
        return masks.new_zeros((0, 4), dtype=torch.float)
    if not masks.flatten(1).any(1).all():
        raise ValueError('masks_to_boxes: an empty mask has no box')
    boxes = torchvision.ops.masks_to_boxes(masks)
    boxes[:, 2:] += 1
    return boxes


def jitter_boxes(boxes: Tensor, img_hw: Tuple[int, int], std_ratio: float = 0.1,
                 max_shift: float = 20.0, generator: Optional[torch.Generator] = None) -> Tensor:
    """SAM's training boxes (paper, appendix A "Training algorithm"): each
    coordinate moved by Gaussian noise of std ``std_ratio`` x the box side,
    at most ``max_shift`` pixels, kept inside the image."""
    wh = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    noise = torch.randn(boxes.shape, generator=generator, device=boxes.device) * std_ratio * wh
    out = boxes + noise.clamp(-max_shift, max_shift)
    h, w = img_hw
    out[:, 0::2] = out[:, 0::2].clamp(0, w)
    out[:, 1::2] = out[:, 1::2].clamp(0, h)
    # keep x1 < x2 and y1 < y2 after the noise
    lo = torch.minimum(out[:, :2], out[:, 2:])
    hi = torch.maximum(out[:, :2], out[:, 2:])
    return torch.cat([lo, hi], 1)


def random_points_in(regions: Tensor, generator: Optional[torch.Generator] = None
                     ) -> Tuple[Tensor, Tensor]:
    """One point drawn uniformly from each (H, W) region of ``regions``
    (N, H, W) bool. Returns points (N, 2) ``(x, y)`` and ``found`` (N,) bool,
    False for empty regions (their point is (0, 0))."""
    n, h, w = regions.shape
    scores = torch.rand((n, h * w), generator=generator, device=regions.device)
    flat = regions.reshape(n, h * w)
    idx = torch.where(flat, scores, -1.0).argmax(1)
    points = torch.stack([idx % w, idx // w], 1).float()
    return points, flat.any(1)


# torch.compile: excluded, random clicks on data-dependent object counts (no gradient; dynamo's
# fake tensors reject torch.rand(generator=...) of a dynamic size).
@torch.compiler.disable
def corrective_points(pred: Tensor, gt: Tensor, generator: Optional[torch.Generator] = None
                      ) -> Tuple[Tensor, Tensor]:
    """SAM's training clicks: a point drawn uniformly from the error region
    of each prediction (paper, appendix A); label 1 where it falls on a
    false negative, 0 on a false positive, -1 (padding) where the prediction
    is already exact.

    Args:
        pred, gt: (N, H, W) bool.

    Returns:
        points (N, 2) ``(x, y)`` and labels (N,) long.
    """
    error = pred ^ gt
    points, found = random_points_in(error, generator)
    x, y = points.long().unbind(1)
    on_gt = gt[torch.arange(len(gt), device=gt.device), y, x]
    labels = torch.where(found, on_gt.long(), torch.full_like(on_gt, -1, dtype=torch.long))
    return points, labels


def _deepest_point(region: np.ndarray) -> Tuple[Tuple[int, int], float]:
    """The pixel of ``region`` farthest from its border (image edges count as
    border) and that distance."""
    dist = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(dist.argmax()), dist.shape)
    return (int(x), int(y)), float(dist[y, x])


def evaluation_click(pred: np.ndarray, gt: np.ndarray) -> Tuple[Tuple[int, int], int]:
    """The click of the standard interactive-segmentation protocol (Xu et al.
    2016; RITM, Sofiiuk et al. 2022): in the larger of the false-negative and
    false-positive regions (by distance to its border), at its innermost
    pixel; positive on a false negative. With an empty prediction this is the
    object's central point. Returns ``((x, y), label)``; label -1 when the
    prediction is exact."""
    fn, fp = gt & ~pred, pred & ~gt
    if not fn.any() and not fp.any():
        return (0, 0), -1
    fn_point, fn_depth = _deepest_point(fn)
    fp_point, fp_depth = _deepest_point(fp)
    return (fn_point, 1) if fn_depth >= fp_depth else (fp_point, 0)


def build_prompts(boxes: Optional[Sequence[Sequence[float]]] = None,
                  points: Optional[Sequence[Sequence[float]]] = None,
                  point_labels: Optional[Sequence[int]] = None,
                  scale: Tuple[float, float] = (1.0, 1.0)) -> InstanceData:
    """User prompts -> the ``prompts`` field SAM reads.

    Either one object per box (each with all ``points`` when both are given)
    or, without boxes, one object prompted by all ``points``.

    Args:
        boxes: ``x1 y1 x2 y2`` per object, in original-image pixels.
        points: ``(x, y)`` per point, in original-image pixels.
        point_labels: 1 (foreground) or 0 (background) per point.
        scale: ``(w_scale, h_scale)`` from the original image to the model
            input (the pipeline's ``scale_factor``).

    Raises:
        ValueError: no prompt, a box with x2 <= x1 or y2 <= y1, a label other
            than 0/1, or labels that do not match the points.
    """
    boxes = torch.as_tensor(boxes if boxes is not None else [], dtype=torch.float).reshape(-1, 4)
    points = torch.as_tensor(points if points is not None else [],
                             dtype=torch.float).reshape(-1, 2)
    labels = torch.as_tensor(point_labels if point_labels is not None else [1] * len(points),
                             dtype=torch.long).reshape(-1)
    if not len(boxes) and not len(points):
        raise ValueError('no prompt: give at least one box or one point')
    if len(labels) != len(points):
        raise ValueError(f'{len(points)} points but {len(labels)} point labels')
    bad = [int(v) for v in labels if int(v) not in (0, 1)]
    if bad:
        raise ValueError(f'point labels must be 1 (foreground) or 0 (background), got {bad}')
    flat = [b.tolist() for b in boxes if not (b[2] > b[0] and b[3] > b[1])]
    if flat:
        raise ValueError(f'boxes need x1 < x2 and y1 < y2 (x1 y1 x2 y2), got {flat}')
    sx, sy = scale
    n = max(len(boxes), 1)
    out = InstanceData()
    out.boxes = (boxes * torch.tensor([sx, sy, sx, sy])) if len(boxes) else torch.zeros(n, 4)
    out.has_box = torch.full((n, ), bool(len(boxes)))
    if len(points):
        out.points = (points * torch.tensor([sx, sy]))[None].repeat(n, 1, 1)
        out.point_labels = labels[None].repeat(n, 1)
    else:
        out.points = torch.zeros(n, 1, 2)
        out.point_labels = torch.full((n, 1), -1, dtype=torch.long)
    return out
