"""Point-cloud sampling and grouping in pure torch (no CUDA extensions).

All ops take padded batches: ``xyz`` is (B, N, 3+) and ``lengths`` (B,)
gives the number of real points of each cloud (the first ``lengths[b]``
rows); padded rows are never sampled, grouped or returned. ``lengths=None``
means every row is real.

Distances are computed in float32 whatever the input dtype, so a bf16/fp16
frozen encoder still selects the same points as a float32 one.
"""
from typing import Optional, Tuple, Union

import torch
from torch import Tensor

from mmfusion.models.common.sequence import lengths_to_padding_mask


def _valid_mask(xyz: Tensor, lengths: Optional[Tensor]) -> Optional[Tensor]:
    """(B, N) bool of real points, or ``None`` when nothing is padded."""
    if lengths is None:
        return None
    B, N = xyz.shape[:2]
    lengths = torch.as_tensor(lengths, device=xyz.device)
    if lengths.shape != (B, ):
        raise ValueError(f'lengths must have shape ({B},) for a batch of {B} clouds, '
                         f'got {tuple(lengths.shape)}')
    if bool((lengths < 1).any()) or bool((lengths > N).any()):
        raise ValueError(f'lengths must lie in [1, {N}] (the padded size), got {lengths.tolist()}')
    return ~lengths_to_padding_mask(lengths, N)


def _check_xyz(xyz: Tensor, name: str = 'xyz') -> None:
    if xyz.dim() != 3 or xyz.shape[-1] < 3:
        raise ValueError(f'{name} must be (B, N, 3+) with x, y, z first, got {tuple(xyz.shape)}')


def gather_points(points: Tensor, idx: Tensor) -> Tensor:
    """Rows of each cloud picked by index.

    Args:
        points: (B, N, C).
        idx: (B, ...) long indices into N.

    Returns:
        (B, ..., C) with ``out[b, i...] = points[b, idx[b, i...]]``.
    """
    B, _, C = points.shape
    flat = idx.reshape(B, -1)
    out = torch.gather(points, 1, flat.unsqueeze(-1).expand(-1, -1, C))
    return out.reshape(*idx.shape, C)


# torch.compile: excluded, n sequential argmax steps that dynamo would unroll into an n-step graph
# (minutes of compiling per n, for a loop of small kernels).
@torch.compiler.disable
def farthest_point_sample(xyz: Tensor,
                          n: int,
                          lengths: Optional[Tensor] = None,
                          start_idx: Union[int, Tensor] = 0) -> Tensor:
    """Farthest point sampling (FPS), batched.

    Starting from ``start_idx``, repeatedly picks the real point farthest (in
    squared Euclidean distance over x, y, z) from those already picked; ties
    go to the lowest index. Deterministic: the CUDA op of PointNet++ /
    Point-MAE also starts at index 0.

    Args:
        xyz: (B, N, 3+) points; only the first 3 channels are used.
        n: number of points to pick.
        lengths: (B,) real points per cloud; padded rows are never picked.
        start_idx: first picked index, an int or a (B,) tensor (each must
            be a real point).

    Returns:
        (B, n) long indices into N. A cloud with fewer than ``n`` real points
        first picks each of them once, then repeats its points (every picked
        point then has distance 0; the lowest such index is taken), so the
        output is always (B, n) and still contains only real points.
    """
    _check_xyz(xyz)
    B, N, _ = xyz.shape
    pts = xyz[..., :3].float()
    valid = _valid_mask(xyz, lengths)
    # Picked points reach 0, padded points stay at -1 so argmax never picks them.
    dist = torch.full((B, N), float('inf'), device=xyz.device)
    if valid is not None:
        dist = dist.masked_fill(~valid, -1.0)
    far = torch.as_tensor(start_idx, device=xyz.device, dtype=torch.long).expand(B).clone()
    limit = valid.sum(1) if valid is not None else torch.full((B, ), N, device=xyz.device)
    if bool((far < 0).any()) or bool((far >= limit).any()):
        raise ValueError(f'start_idx {far.tolist()} must index a real point of each cloud '
                         f'(lengths {limit.tolist()})')
    batch = torch.arange(B, device=xyz.device)
    out = torch.empty(B, n, dtype=torch.long, device=xyz.device)
    for i in range(n):
        out[:, i] = far
        d = ((pts - pts[batch, far][:, None]) ** 2).sum(-1)
        dist = torch.minimum(dist, d)
        far = dist.argmax(-1)
    return out


def knn_group(xyz: Tensor,
              centers: Tensor,
              k: int,
              lengths: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """The ``k`` nearest real points of every centre.

    Args:
        xyz: (B, N, 3+) points (x, y, z first).
        centers: (B, G, 3+) query points.
        k: neighbours per centre.
        lengths: (B,) real points per cloud of ``xyz``.

    Returns:
        ``(idx, dist)``, each (B, G, k): indices into N sorted by increasing
        Euclidean distance, and those distances. When a cloud has fewer than
        ``k`` real points the remaining slots repeat the nearest neighbour
        (so max-pooled group features are unchanged by the filling).
    """
    _check_xyz(xyz)
    _check_xyz(centers, 'centers')
    N = xyz.shape[1]
    valid = _valid_mask(xyz, lengths)
    # Exact differences (no |a|^2+|b|^2-2ab matmul): near-ties keep their order.
    dist = torch.cdist(centers[..., :3].float(), xyz[..., :3].float(),
                       compute_mode='donot_use_mm_for_euclid_dist')
    if valid is not None:
        dist = dist.masked_fill(~valid[:, None], float('inf'))
    kk = min(k, N)
    dist, idx = dist.topk(kk, dim=-1, largest=False, sorted=True)
    if kk < k:
        pad = k - kk
        idx = torch.cat([idx, idx[..., :1].expand(*idx.shape[:-1], pad)], dim=-1)
        dist = torch.cat([dist, dist[..., :1].expand(*dist.shape[:-1], pad)], dim=-1)
    if valid is not None:
        # Slots that fell on padding (fewer real points than k): nearest instead.
        pad_slot = torch.isinf(dist)
        idx = torch.where(pad_slot, idx[..., :1].expand_as(idx), idx)
        dist = torch.where(pad_slot, dist[..., :1].expand_as(dist), dist)
    return idx, dist


def ball_query(xyz: Tensor,
               centers: Tensor,
               radius: float,
               k: int,
               lengths: Optional[Tensor] = None) -> Tensor:
    """Up to ``k`` real points within ``radius`` of every centre.

    Unlike the PointNet++ CUDA op, which keeps the first ``k`` in-radius
    points in storage order, this keeps the ``k`` nearest ones: the result
    then does not depend on the order of the points (permutation
    invariance) nor on padding. Empty slots repeat the nearest point, as the
    CUDA op repeats its first hit; a centre with no point in the ball gets
    its nearest point.

    Args:
        xyz: (B, N, 3+) points; centers: (B, G, 3+); radius: ball radius.
        k: slots per centre; lengths: (B,) real points per cloud.

    Returns:
        (B, G, k) long indices into N, sorted by increasing distance.
    """
    idx, dist = knn_group(xyz, centers, k, lengths)
    return torch.where(dist > radius, idx[..., :1].expand_as(idx), idx)
