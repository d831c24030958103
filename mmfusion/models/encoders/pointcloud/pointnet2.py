"""PointNet++ single-scale-grouping backbone (Qi et al., NeurIPS 2017), pure torch."""
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.logging import print_log
from torch import Tensor, nn

from mmfusion.models.encoders.base_encoder import BaseEncoder
from mmfusion.registry import MODELS
from mmfusion.utils import load_state_dict_file, load_strict, select_prefix

from .ops import ball_query, farthest_point_sample, gather_points


def _shared_mlp(in_channels: int, channels: Sequence[int]) -> nn.Sequential:
    """1x1 conv + BN + ReLU per layer, applied to every (centre, neighbour)."""
    layers: List[nn.Module] = []
    for out in channels:
        layers += [nn.Conv2d(in_channels, out, 1, bias=False), nn.BatchNorm2d(out),
                   nn.ReLU(inplace=True)]
        in_channels = out
    return nn.Sequential(*layers)


class SetAbstraction(nn.Module):
    """FPS ``num_points`` centres, ball-query ``num_samples`` neighbours within
    ``radius``, shared MLP on [relative xyz, features], max over neighbours."""

    def __init__(self, num_points: int, radius: float, num_samples: int, in_channels: int,
                 mlp_channels: Sequence[int], use_xyz: bool = True) -> None:
        super().__init__()
        self.num_points, self.radius, self.num_samples = num_points, radius, num_samples
        self.use_xyz = use_xyz
        self.mlp = _shared_mlp(in_channels + (3 if use_xyz else 0), mlp_channels)
        self.out_channels = mlp_channels[-1]

    def forward(self, xyz: Tensor, feats: Optional[Tensor],
                lengths: Optional[Tensor] = None):
        """xyz (B, N, 3), feats (B, C, N) or None -> (B, S, 3), (B, C', S)."""
        centers = gather_points(xyz, farthest_point_sample(xyz, self.num_points, lengths))
        idx = ball_query(xyz, centers, self.radius, self.num_samples, lengths)  # (B, S, K)
        parts = []
        if self.use_xyz:
            parts.append(gather_points(xyz, idx) - centers.unsqueeze(2))  # (B, S, K, 3)
        if feats is not None:
            parts.append(gather_points(feats.transpose(1, 2), idx))
        if not parts:
            raise ValueError('SetAbstraction needs use_xyz=True or input features')
        grouped = torch.cat(parts, dim=-1).permute(0, 3, 1, 2)  # (B, C, S, K)
        dtype = self.mlp[0].weight.dtype
        return centers, self.mlp(grouped.to(dtype)).max(dim=-1)[0]


@MODELS.register_module()
class PointNet2SSG(BaseEncoder):
    """PointNet++ SSG backbone: set-abstraction levels and a global SA.

    Defaults are the paper's SSG classification network (512 centres /
    r=0.2 / 32 samples, 128 / 0.4 / 64, then a global MLP to 1024).

    Args:
        in_channels: channels per input point including x, y, z (3 for xyz,
            6 with normals); channels after the third are point features.
        num_points: centres per SA level.
        radii: ball radius per level (in the units of the (normalised) cloud).
        num_samples: neighbours per centre per level.
        mlp_channels: shared-MLP widths per level.
        global_mlp: widths of the global SA's MLP (over absolute xyz and the
            last level's features, max over all points).
        use_xyz: feed relative neighbour xyz to each SA MLP.
        checkpoint: state dict file of this module (e.g. an mmfusion
            checkpoint with ``prefix='backbone.'``).
        prefix: keep only checkpoint keys starting with it (then stripped).
        **kwargs: :class:`BaseEncoder` options (``frozen`` defaults to True).

    Ball query keeps the nearest in-radius points (see
    :func:`~.ops.ball_query`), so the output does not depend on point order
    given the same FPS start point.
    """

    def __init__(self,
                 in_channels: int = 3,
                 num_points: Sequence[int] = (512, 128),
                 radii: Sequence[float] = (0.2, 0.4),
                 num_samples: Sequence[int] = (32, 64),
                 mlp_channels: Sequence[Sequence[int]] = ((64, 64, 128), (128, 128, 256)),
                 global_mlp: Sequence[int] = (256, 512, 1024),
                 use_xyz: bool = True,
                 checkpoint: Optional[str] = None,
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        n = len(num_points)
        if n < 1:  # the global SA relies on a level to drop padded points
            raise ValueError('PointNet2SSG needs at least one SA level (num_points is empty)')
        if not (len(radii) == len(num_samples) == len(mlp_channels) == n):
            raise ValueError('PointNet2SSG: num_points, radii, num_samples and mlp_channels '
                             f'need one entry per level, got lengths {n}, {len(radii)}, '
                             f'{len(num_samples)}, {len(mlp_channels)}')
        if in_channels < 3:
            raise ValueError(f'PointNet2SSG in_channels counts x, y, z, so it must be >= 3, '
                             f'got {in_channels}')
        self.in_channels = in_channels
        self.sa_layers = nn.ModuleList()
        feat_channels = in_channels - 3
        for i in range(n):
            sa = SetAbstraction(num_points[i], radii[i], num_samples[i], feat_channels,
                                mlp_channels[i], use_xyz)
            self.sa_layers.append(sa)
            feat_channels = sa.out_channels
        # Global SA groups all points: its "relative" xyz is the absolute xyz.
        self.global_sa = _shared_mlp(feat_channels + 3, global_mlp)
        self.out_channels = global_mlp[-1]
        if checkpoint is not None:
            self.load_checkpoint(checkpoint, prefix)
        self._apply_freeze()

    def load_checkpoint(self, path: str, prefix: Optional[str] = None) -> None:
        """Load a state dict of this module from ``path`` (strict)."""
        owner = type(self).__name__
        state = select_prefix(load_state_dict_file(path), prefix, path, owner)
        load_strict(self, state, path, owner, hint='check the level settings and `prefix`')
        print_log(f'PointNet2SSG: loaded {len(state)} tensors from {path}', logger='current')

    def forward(self, points: Tensor, lengths: Optional[Tensor] = None) -> Dict[str, object]:
        """Encode a padded batch of clouds.

        Args:
            points: (B, N, in_channels) clouds, x, y, z first, padded.
            lengths: (B,) real points per cloud (``points_lengths`` from the
                preprocessor); padded points are never sampled or grouped.

        Returns:
            dict with
            - ``points``: list over SA levels of (B, N_i, 3) centre xyz;
            - ``feats``: list over SA levels of (B, C_i, N_i) features;
            - ``pooled``: (B, C) global feature (``global_mlp[-1]`` wide).
            A cloud with fewer real points than a level's ``num_points``
            repeats centres (FPS), which leaves ``pooled`` unchanged.
        """
        if points.dim() != 3 or points.shape[-1] != self.in_channels:
            raise ValueError(f'PointNet2SSG(in_channels={self.in_channels}) expects points '
                             f'(B, N, {self.in_channels}), got {tuple(points.shape)}')
        xyz = points[..., :3].float()
        feats = points[..., 3:].transpose(1, 2) if self.in_channels > 3 else None
        out_xyz, out_feats = [], []
        for i, sa in enumerate(self.sa_layers):
            # Only the input level is padded; every sampled centre is a real point.
            xyz, feats = sa(xyz, feats, lengths if i == 0 else None)
            out_xyz.append(xyz)
            out_feats.append(feats)
        dtype = self.global_sa[0].weight.dtype
        grouped = torch.cat([xyz.transpose(1, 2).to(dtype), feats.to(dtype)], dim=1)
        pooled = self.global_sa(grouped.unsqueeze(-1)).max(dim=2)[0].squeeze(-1)
        return dict(points=out_xyz, feats=out_feats, pooled=pooled)
