"""SEMat's matte-aligned decoder: image + matting logits -> alpha at the input
resolution, with the ViT's global-attention features fused at the bottleneck.

Module names follow the official ``MattingDetailDecoder`` (``big_kernel_process``,
``vit_feat_proj``, ``vit_feat_aggregation``, ``down_blks``, ``mid_layer``,
``up_blks``, ``matting_head``) so that released weights convert by a prefix
rename (``tools/model_converters/semat_to_mmfusion.py``).
"""
from typing import List, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

_NORMS = {'BN': nn.BatchNorm2d, 'SyncBN': nn.SyncBatchNorm}


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == 'LN':
        from segment_anything.modeling.common import LayerNorm2d
        return LayerNorm2d(channels)
    return _NORMS[kind](channels)


def _basic_layers(firsts: List[nn.Module], out_ch: int, kernel_size: int,
                  norm: str) -> nn.ModuleList:
    """One basic layer per first conv (first conv -> norm -> GELU -> conv ->
    norm), a GELU between consecutive layers: the official block layout."""
    layers: List[nn.Module] = []
    for i, first in enumerate(firsts):
        if i:
            layers.append(nn.GELU())
        layers.append(nn.Sequential(first, _norm(norm, out_ch), nn.GELU(),
                                    nn.Conv2d(out_ch, out_ch, kernel_size, 1, kernel_size // 2),
                                    _norm(norm, out_ch)))
    return nn.ModuleList(layers)


def _same_convs(channels: int, kernel_size: int, count: int) -> List[nn.Module]:
    return [nn.Conv2d(channels, channels, kernel_size, 1, kernel_size // 2)
            for _ in range(count)]


class DownBlock(nn.Module):
    """Stride-2 residual block: ``block_num`` basic layers (the first strided),
    a strided conv shortcut, GELU after the sum."""

    def __init__(self, in_ch: int, out_ch: int, block_num: int, kernel_size: int,
                 norm: str) -> None:
        super().__init__()
        firsts = [nn.Conv2d(in_ch, out_ch, kernel_size, 2, kernel_size // 2)]
        self.basic_layer = _basic_layers(
            firsts + _same_convs(out_ch, kernel_size, block_num - 1), out_ch, kernel_size, norm)
        self.res_layer = nn.Conv2d(in_ch, out_ch, kernel_size, 2, kernel_size // 2)
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        out = x
        for layer in self.basic_layer:
            out = layer(out)
        return self.act(out + self.res_layer(x))


class UpBlock(nn.Module):
    """Adds the skip feature, then ``block_num`` basic layers (the first a
    2x transposed conv); the shortcut is the bilinearly upsampled input
    through a conv."""

    def __init__(self, in_ch: int, out_ch: int, block_num: int, kernel_size: int,
                 norm: str) -> None:
        super().__init__()
        firsts = [nn.ConvTranspose2d(in_ch, out_ch, 2, 2)]
        self.basic_layer = _basic_layers(
            firsts + _same_convs(out_ch, kernel_size, block_num - 1), out_ch, kernel_size, norm)
        self.res_layer = nn.Conv2d(in_ch, out_ch, kernel_size, 1, kernel_size // 2)
        self.act = nn.GELU()

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = x + skip
        out = x
        for layer in self.basic_layer:
            out = layer(out)
        shortcut = F.interpolate(x, size=out.shape[-2:], mode='bilinear', align_corners=False)
        return self.act(out + self.res_layer(shortcut))


class MatteDecoder(BaseModule):
    """Image + matting logits -> sigmoid alpha (official ``MattingDetailDecoder``
    with ``block_num=2``, summed skips).

    Args:
        vit_channels: width of the ViT features (1024 for ViT-L).
        num_vit_feats: how many ViT features are fused (the global-attention
            blocks' outputs; 4 for ViT-B/L/H).
        in_channels: image channels + matting-logit channels (3 + 3).
        stem_channels: the two 13x13 convs of the full-resolution stem
            (official: 16, 32).
        down_channels: output widths of the stride-2 blocks (official: 32, 64,
            128, 256: a 1024 input reaches 64x64, the ViT-L token grid).
        block_num: basic layers per block (2); down blocks use ``kernel_size``
            (5), up blocks 3, as the official code.
        norm: ``'BN'``, ``'SyncBN'`` (official) or ``'LN'``.

    The ViT features are resized to the bottleneck when their grid differs
    (a tiny SAM whose token grid is not input / 2^len(down_channels)).
    """

    def __init__(self, vit_channels: int = 1024, num_vit_feats: int = 4, in_channels: int = 6,
                 stem_channels: Sequence[int] = (16, 32),
                 down_channels: Sequence[int] = (32, 64, 128, 256), block_num: int = 2,
                 kernel_size: int = 5, norm: str = 'SyncBN', init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if norm not in ('BN', 'SyncBN', 'LN'):
            raise ValueError(f"MatteDecoder: norm must be 'BN', 'SyncBN' or 'LN', got {norm!r}")
        if vit_channels % num_vit_feats:
            raise ValueError(f'MatteDecoder: vit_channels {vit_channels} must be divisible by '
                             f'num_vit_feats {num_vit_feats}')
        s1, s2 = stem_channels
        self.big_kernel_process = nn.Sequential(
            nn.Conv2d(in_channels, s1, 13, 1, 6), _norm(norm, s1), nn.GELU(),
            nn.Conv2d(s1, s2, 13, 1, 6), _norm(norm, s2), nn.GELU())
        part = vit_channels // num_vit_feats
        self.vit_feat_proj = nn.ModuleDict(
            {str(i): nn.Conv2d(vit_channels, part, 1, 1) for i in range(num_vit_feats)})
        bottleneck = down_channels[-1]
        self.vit_feat_aggregation = nn.Sequential(
            nn.Conv2d(part * num_vit_feats, bottleneck, 3, 1, 1), _norm(norm, bottleneck),
            nn.GELU())
        ins = [s2] + list(down_channels[:-1])
        self.down_blks = nn.ModuleList(
            DownBlock(i, o, block_num, kernel_size, norm) for i, o in zip(ins, down_channels))
        self.mid_layer = nn.Sequential(nn.Conv2d(2 * bottleneck, bottleneck, 1, 1),
                                       _norm(norm, bottleneck), nn.GELU())
        ups = list(down_channels[::-1]) + [down_channels[0] // 2]
        self.up_blks = nn.ModuleList(
            UpBlock(i, o, block_num, 3, norm) for i, o in zip(ups[:-1], ups[1:]))
        self.matting_head = nn.Conv2d(ups[-1], 1, 3, 1, 1)
        self.num_vit_feats = num_vit_feats
        self.size_divisor = 2**len(down_channels)

    def forward(self, x: Tensor, vit_feats: Sequence[Tensor]) -> Tensor:
        """``x`` (B, in_channels, H, W) with H, W multiples of
        :attr:`size_divisor`; ``vit_feats``: ``num_vit_feats`` maps (B,
        vit_channels, h, w). Returns alpha (B, 1, H, W) in [0, 1]."""
        if x.shape[-1] % self.size_divisor or x.shape[-2] % self.size_divisor:
            raise ValueError(f'MatteDecoder: input sides must be multiples of '
                             f'{self.size_divisor}, got {tuple(x.shape[-2:])}')
        if len(vit_feats) != self.num_vit_feats:
            raise ValueError(f'MatteDecoder: expected {self.num_vit_feats} ViT features, got '
                             f'{len(vit_feats)}')
        bottleneck_hw = (x.shape[-2] // self.size_divisor, x.shape[-1] // self.size_divisor)
        feats = [self.vit_feat_proj[str(i)](f) for i, f in enumerate(vit_feats)]
        vit = self.vit_feat_aggregation(torch.cat(feats, 1))
        if tuple(vit.shape[-2:]) != bottleneck_hw:
            vit = F.interpolate(vit, size=bottleneck_hw, mode='bilinear', align_corners=False)
        details = []
        out = self.big_kernel_process(x)
        for block in self.down_blks:
            out = block(out)
            details.append(out)
        out = self.mid_layer(torch.cat((details[-1], vit), 1))
        for i, block in enumerate(self.up_blks):
            out = block(out, details[-i - 1])
        return torch.sigmoid(self.matting_head(out))
