"""Points -> axis-aligned depth views and back, in pure torch.

I2P-MAE lets a frozen 2D model look at a point cloud through three depth
views and maps what the 2D model says about each pixel back to the points
that fell on it. Both directions share one geometry, :func:`points_to_pixels`,
so a point's back-projected pixel is exactly the pixel it was splatted to.

The geometry is the official I2P-MAE projection:

- view ``v`` takes the coordinates ``VIEW_AXES[v] = (row axis, column axis,
  depth axis)``; the official views are (x, y, z), (z, x, y) and (y, z, x);
- per cloud and view, one grid step ``g = max(row range, column range) /
  (S - 3)`` fits the cloud into an ``S x S`` image keeping its aspect; a
  point's pixel is ``floor((p - min) / g) + 1`` and the whole cloud is then
  shifted so that its footprint (grown by the splat kernel) is centred on
  pixel ``S // 2 - 1``;
- splatting: every point adds its depth coordinate to a ``kernel x kernel``
  square around its pixel, the sums go through a sigmoid (an empty pixel is
  sigmoid(0) = 0.5). The image is differentiable with respect to the depth
  values, not to the pixel assignment.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

# (row axis, column axis, depth axis) of each view, as the official code.
VIEW_AXES: Tuple[Tuple[int, int, int], ...] = ((0, 1, 2), (2, 0, 1), (1, 2, 0))


def _check_points(points: Tensor, lengths: Optional[Tensor]) -> Optional[Tensor]:
    """Validate; returns (B, N) bool of real points (``None``: all real)."""
    if points.dim() != 3 or points.shape[-1] < 3:
        raise ValueError(f'points must be (B, N, 3+) with x, y, z first, got '
                         f'{tuple(points.shape)}')
    if points.shape[1] == 0:
        raise ValueError('cannot project an empty point cloud (N = 0)')
    real = None
    if lengths is not None:
        lengths = torch.as_tensor(lengths, device=points.device)
        if bool((lengths < 1).any()):
            raise ValueError(f'cannot project an empty point cloud (lengths {lengths.tolist()})')
        real = torch.arange(points.shape[1], device=points.device)[None] < lengths[:, None]
    xyz = points[..., :3]
    finite = torch.isfinite(xyz).all(-1)
    if real is not None:
        finite = finite | ~real
    if not bool(finite.all()):
        raise ValueError('points hold NaN/inf coordinates; expected finite x, y, z')
    return real


def points_to_pixels(points: Tensor,
                     image_size: int,
                     views: Sequence[Sequence[int]] = VIEW_AXES,
                     lengths: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """Pixel of every point in every view, and its depth coordinate.

    Args:
        points: (B, N, 3+) clouds (x, y, z first).
        image_size: side S of the square views (S >= 8).
        views: (row, column, depth) axis triple per view.
        lengths: (B,) real points per padded cloud; padding does not move
            the fit (its pixels are still computed).

    Returns:
        ``(pix, depth)``: (B, V, N, 2) long ``(row, col)`` pixel indices in
        ``[0, S)`` and (B, V, N) depth coordinates.
    """
    real = _check_points(points, lengths)
    if image_size < 8:
        raise ValueError(f'image_size must be >= 8, got {image_size}')
    xyz = points[..., :3].float()
    views = torch.as_tensor(views, device=xyz.device, dtype=torch.long)  # (V, 3)
    axes = xyz[..., views].permute(0, 2, 1, 3)  # (B, V, N, 3)
    plane = axes[..., :2]
    if real is None:
        lo, hi = plane.amin(2, keepdim=True), plane.amax(2, keepdim=True)
    else:
        keep = real[:, None, :, None]
        lo = plane.masked_fill(~keep, float('inf')).amin(2, keepdim=True)
        hi = plane.masked_fill(~keep, float('-inf')).amax(2, keepdim=True)
    # One step for both image axes keeps the aspect; a single point has range 0.
    step = ((hi - lo).amax(-1, keepdim=True) / (image_size - 3)).clamp_min(1e-8)
    idx = torch.floor((plane - lo) / step).long() + 1  # in [1, S - 2]
    top = ((hi - lo) / step).floor().long() + 1
    # Centre the footprint on pixel S // 2 - 1 (its middle is the middle of [1, top]).
    shift = image_size // 2 - 1 - (1 + top) // 2
    pix = (idx + shift).clamp(0, image_size - 1)
    return pix, axes[..., 2]


def splat_depth_views(points: Tensor,
                      image_size: int,
                      kernel: int = 5,
                      views: Sequence[Sequence[int]] = VIEW_AXES,
                      lengths: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """Render depth views by splatting (see the module doc).

    Args:
        points: (B, N, 3+) clouds.
        image_size: side S of each view.
        kernel: odd side of the square each point covers.
        views: (row, column, depth) axes per view.
        lengths: (B,) real points per padded cloud; padded rows add nothing.

    Returns:
        ``(images, pix)``: (B, V, S, S) views in (0, 1) (background 0.5) and
        the (B, V, N, 2) ``(row, col)`` pixel of each point.
    """
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f'splat kernel must be a positive odd size, got {kernel}')
    pix, depth = points_to_pixels(points, image_size, views, lengths)
    B, V, N = depth.shape
    value = depth.to(points.dtype if points.is_floating_point() else torch.float32)
    if lengths is not None:
        real = torch.arange(N, device=depth.device)[None] < lengths.to(depth.device)[:, None]
        value = value * real[:, None].to(value.dtype)
    flat = (pix[..., 0] * image_size + pix[..., 1]).reshape(B * V, N)
    canvas = value.new_zeros(B * V, image_size * image_size)
    canvas = canvas.scatter_add(1, flat, value.reshape(B * V, N))
    canvas = canvas.reshape(B * V, 1, image_size, image_size)
    if kernel > 1:
        # A box sum over the kernel adds each point to its kernel x kernel square.
        canvas = F.conv2d(canvas, canvas.new_ones(1, 1, kernel, kernel), padding=kernel // 2)
    images = torch.sigmoid(canvas).reshape(B, V, image_size, image_size)
    return images, pix


def gather_pixel_features(maps: Tensor, pix: Tensor, image_size: int) -> Tensor:
    """Back-project per-view feature maps to the points.

    Each point takes the feature of the map cell that covers its pixel (the
    map may be coarser than the image, e.g. a ViT's patch grid; upsample it
    first to read it per pixel).

    Args:
        maps: (B, V, C, h, w) features of each view.
        pix: (B, V, N, 2) ``(row, col)`` pixels from :func:`points_to_pixels`.
        image_size: side S of the views the pixels index.

    Returns:
        (B, V, N, C) features of each point in each view.
    """
    B, V, C, h, w = maps.shape
    if pix.shape[:2] != (B, V) or pix.shape[-1] != 2:
        raise ValueError(f'maps {tuple(maps.shape)} and pixels {tuple(pix.shape)} disagree; '
                         'expected maps (B, V, C, h, w) and pixels (B, V, N, 2)')
    row = pix[..., 0] * h // image_size
    col = pix[..., 1] * w // image_size
    cell = (row * w + col).reshape(B * V, -1)  # (BV, N)
    flat = maps.reshape(B * V, C, h * w)
    out = torch.gather(flat, 2, cell[:, None].expand(-1, C, -1))  # (BV, C, N)
    return out.transpose(1, 2).reshape(B, V, -1, C)
