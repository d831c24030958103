from typing import Dict, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from mmfusion.registry import MODELS


class SpatialSelfAttention(nn.Module):
    """Pre-norm single-head self-attention over all H*W positions, residual.

    q, k and v come from one fused 1x1 conv (one matmul instead of three);
    the official ``q``/``k``/``v`` convs are its output rows in that order.
    """

    def __init__(self, channels: int, num_groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(num_groups, channels, eps=1e-6)
        self.qkv = nn.Conv2d(channels, channels * 3, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)  # (b, hw, c)
        return x + self.proj_out(out.transpose(1, 2).reshape(b, c, h, w))


class ResAttnBlock(nn.Module):
    """Pre-activation residual block (GroupNorm, PReLU, 3x3 conv, twice) then
    spatial self-attention; resolution is never changed."""

    def __init__(self, in_channels: int, out_channels: int, num_groups: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.GroupNorm(num_groups, in_channels, eps=1e-6), nn.PReLU(),
            nn.Conv2d(in_channels, out_channels, 3, padding=1))
        self.conv2 = nn.Sequential(
            nn.GroupNorm(num_groups, out_channels, eps=1e-6), nn.PReLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip = (nn.Identity() if in_channels == out_channels else
                     nn.Conv2d(in_channels, out_channels, 1, bias=False))
        self.attn = SpatialSelfAttention(out_channels, num_groups)

    def forward(self, x: Tensor) -> Tensor:
        return self.attn(self.skip(x) + self.conv2(self.conv1(x)))


@MODELS.register_module()
class LatentMappingNet(BaseModule):
    """GMS's latent mapping network (ResAttnUNet with deep supervision).

    Every block runs at the latent resolution (no down/upsampling). Encoder
    blocks widen the channels by ``channel_mults``; decoder blocks concatenate
    the matching encoder output (nested skips) and narrow them back. Decoder
    levels ``level3``, ``level2``, ``level1`` and the final ``out`` can each
    have a head predicting a full latent (deep supervision); ``out_levels``
    says which exist. Build only the supervised ones where you can: a head
    without a loss is an unused parameter, which DistributedDataParallel
    rejects. The paper configs build all four, as the official
    ``ResAttnUNet_DS`` and its released checkpoints (``official.py``) do.

    The paper's setting is ``base_channels=32, channel_mults=(1, 2, 4, 4)``
    with 4 latent channels (~1.5M parameters).
    """

    LEVELS = ('level3', 'level2', 'level1', 'out')

    def __init__(self,
                 in_channels: int = 4,
                 out_channels: int = 4,
                 base_channels: int = 32,
                 channel_mults: Sequence[int] = (1, 2, 4, 4),
                 num_groups: int = 16,
                 out_levels: Sequence[str] = LEVELS,
                 init_cfg=dict(type='Kaiming', layer='Conv2d', mode='fan_out',
                               nonlinearity='leaky_relu')) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(channel_mults) != 4:
            raise ValueError(f'channel_mults must have 4 entries, got {channel_mults}')
        unknown = set(out_levels) - set(self.LEVELS)
        if unknown or 'out' not in out_levels:
            raise ValueError(f'out_levels must include "out" and be among {self.LEVELS}, '
                             f'got {tuple(out_levels)}')
        ch = base_channels
        c0, c1, c2, c3, c4 = ch, *(ch * m for m in channel_mults)
        self.stem = nn.Conv2d(in_channels, c0, 3, padding=1)
        self.enc = nn.ModuleList([
            ResAttnBlock(a, b, num_groups) for a, b in ((c0, c1), (c1, c2), (c2, c3), (c3, c4))
        ])
        # Decoder level i fuses encoder output i with the level below it.
        self.dec = nn.ModuleList([
            ResAttnBlock(c3 + c4, c3, num_groups),
            ResAttnBlock(c2 + c3, c2, num_groups),
            ResAttnBlock(c1 + c2, c1, num_groups),
            ResAttnBlock(c0 + c1, c0, num_groups),
        ])
        self.heads = nn.ModuleDict({
            name: nn.Sequential(nn.GroupNorm(num_groups, c, eps=1e-6), nn.SiLU(),
                                nn.Conv2d(c, out_channels, 3, padding=1, bias=False))
            for name, c in zip(self.LEVELS, (c3, c2, c1, c0)) if name in out_levels
        })

    def init_weights(self) -> None:
        # mmengine initialises a module once (later calls only warn); so must
        # the q/k/v redraw below, or a second call (the runner after a
        # wrapper's) would re-randomise trained or broadcast weights.
        first_call = not self._is_init
        super().init_weights()
        # The official q/k/v are three convs with fan_out = C each; Kaiming on
        # the fused (3C, C) conv would draw them sqrt(3) smaller.
        if first_call and self.init_cfg and self.init_cfg.get('type') == 'Kaiming':
            for module in self.modules():
                if isinstance(module, SpatialSelfAttention):
                    for part in module.qkv.weight.data.chunk(3):
                        nn.init.kaiming_normal_(part, mode=self.init_cfg.get('mode', 'fan_out'),
                                                nonlinearity=self.init_cfg.get('nonlinearity',
                                                                               'leaky_relu'))

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        """(B, in_channels, h, w) latent -> {level: (B, out_channels, h, w)}
        for every level in ``out_levels``."""
        feats = [self.stem(x)]
        for block in self.enc:
            feats.append(block(feats[-1]))
        outs = {}
        h = feats[4]
        for block, skip, name in zip(self.dec, feats[3::-1], self.LEVELS):
            h = block(torch.cat([skip, h], dim=1))
            if name in self.heads:
                outs[name] = self.heads[name](h)
        return outs
