from typing import List, Optional, Sequence, Union

import torch
from mmengine.model import BaseDataPreprocessor
from torch import Tensor

from mmfusion.models.common.sequence import pad_sequences
from mmfusion.registry import MODELS


@MODELS.register_module()
class PointDataPreprocessor(BaseDataPreprocessor):
    """Batch variable-size point clouds: normalise, resample or pad, stack.

    Use it as the ``points`` sub-preprocessor of
    ``MultiModalDataPreprocessor``; the model then receives
    ``inputs['points']`` (B, N, C) and ``inputs['points_lengths']`` (B,).

    Args:
        num_points: resample every cloud to exactly this many points. A
            larger cloud keeps a random subset (without replacement); a
            smaller one keeps all its points plus random repeats. In training
            the subset comes from torch's global RNG (seeded by the runner);
            in evaluation it depends only on ``seed`` and the cloud's size,
            so a cloud gets the same points in every batch and run.
            ``None``: keep all points and zero-pad to the largest cloud.
        normalize: centre x, y, z on the cloud's mean and scale them so the
            farthest point lies on the unit sphere (Point-MAE / PointNet++
            ``pc_normalize``), computed over the whole cloud before
            resampling. Other channels (normals, colours) are left as is.
        seed: seed of the evaluation resampling.
        non_blocking: see ``BaseDataPreprocessor``.

    Input ``data['inputs']``: a list of (N_i, C) tensors (``pseudo_collate``)
    or one (B, N, C) tensor; ``C >= 3`` with x, y, z first.

    Returns (from ``forward``): dict with
        - ``inputs``: (B, N, C) float32; rows past ``lengths[b]`` are zeros;
        - ``lengths``: (B,) long, real points per cloud (all ``num_points``
          when resampling);
        - ``data_samples``: passed through when given.
    """

    def __init__(self,
                 num_points: Optional[int] = None,
                 normalize: bool = True,
                 seed: int = 0,
                 non_blocking: bool = False) -> None:
        super().__init__(non_blocking=non_blocking)
        if num_points is not None and num_points < 1:
            raise ValueError(f'PointDataPreprocessor num_points must be >= 1, got {num_points}')
        self.num_points = num_points
        self.normalize = normalize
        self.seed = seed

    @staticmethod
    def normalize_xyz(cloud: Tensor) -> Tensor:
        """Centre x, y, z on their mean and scale to the unit sphere."""
        xyz = cloud[:, :3] - cloud[:, :3].mean(0, keepdim=True)
        # A single point (or all points equal) has radius 0: leave it at the origin.
        radius = xyz.norm(dim=1).max().clamp_min(1e-12)
        return torch.cat([xyz / radius, cloud[:, 3:]], dim=1)

    def _resample_index(self, n: int, training: bool) -> Tensor:
        generator = None
        if not training:
            # A fresh generator per cloud: the subset is independent of the batch.
            generator = torch.Generator().manual_seed(self.seed)
        m = self.num_points
        if n >= m:
            return torch.randperm(n, generator=generator)[:m]
        extra = torch.randint(n, (m - n, ), generator=generator)
        return torch.cat([torch.arange(n), extra])

    def _split(self, inputs: Union[Tensor, Sequence[Tensor]]) -> List[Tensor]:
        if torch.is_tensor(inputs):
            if inputs.dim() != 3:
                raise ValueError('PointDataPreprocessor expects inputs["points"] as a list of '
                                 f'(N, C) tensors or a (B, N, C) tensor, got {tuple(inputs.shape)}')
            return list(inputs.unbind(0))
        if not isinstance(inputs, (list, tuple)) or not inputs:
            raise TypeError('PointDataPreprocessor expects inputs["points"] as a non-empty list '
                            f'of (N, C) tensors, got {type(inputs).__name__}')
        clouds = []
        for i, cloud in enumerate(inputs):
            if not torch.is_tensor(cloud):
                raise TypeError(f'PointDataPreprocessor: cloud {i} is a {type(cloud).__name__}, '
                                'expected a tensor (PackFusionInputs makes one)')
            if cloud.dim() != 2 or cloud.shape[1] < 3 or cloud.shape[0] < 1:
                raise ValueError(f'PointDataPreprocessor: cloud {i} has shape '
                                 f'{tuple(cloud.shape)}, '
                                 'expected (N >= 1, C >= 3) with x, y, z first')
            clouds.append(cloud)
        channels = {c.shape[1] for c in clouds}
        if len(channels) > 1:
            raise ValueError('PointDataPreprocessor: clouds of one batch need the same number '
                             f'of channels, got {[c.shape[1] for c in clouds]}')
        return clouds

    def forward(self, data: dict, training: bool = False) -> dict:
        clouds = []
        for cloud in self._split(data['inputs']):
            cloud = cloud.float()
            if self.normalize:
                cloud = self.normalize_xyz(cloud)
            if self.num_points is not None:
                cloud = cloud[self._resample_index(cloud.shape[0], training).to(cloud.device)]
            clouds.append(cloud)
        batch, lengths = pad_sequences(clouds, 0.0)
        out = dict(inputs=self.cast_data(batch), lengths=self.cast_data(lengths))
        if data.get('data_samples') is not None:
            out['data_samples'] = self.cast_data(data['data_samples'])
        return out
