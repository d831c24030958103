"""X-Decoder's / SEEM's FocalNet backbones with the official module names, so
the released checkpoints' ``backbone.*`` keys load unchanged.

Two block layouts exist in microsoft/X-Decoder (``modeling/vision/backbone``):

- ``focal_dw`` (Focal-T of X-Decoder and SEEM): a 3x3 depthwise conv with a
  residual (``dw1``) before the focal modulation and another (``dw2``) before
  the MLP; post-LN applies the norm after each residual sum; the conv stem
  pads by 3;
- ``focal`` (Focal-L): no depthwise convs; post-LN normalises the modulation
  and MLP outputs before their residual sums; the conv stem pads by 2.

timm's FocalNet is neither (no depthwise convs, other names), which is why
this module exists. Both use the conv patch embedding (7x7 / 4 stem, 3x3 / 2
between stages, zero-padded on the right/bottom to a multiple of the stride),
focal modulation (``f`` Linear -> query, context, L + 1 gates; ``L``
depthwise GELU convs of kernel ``2 k + window``; the global context; the sum
scaled by ``1 / (L + 1)``; ``h`` 1x1 conv; ``proj`` Linear), layer scale
(``gamma_1``/``gamma_2``, 1e-4), stochastic depth rising linearly over all
blocks, and a LayerNorm per output stage (``norm0``..``norm3``).
"""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint as activation_checkpoint

from mmfusion.models.encoders.base_encoder import BaseEncoder
from mmfusion.registry import MODELS
from mmfusion.utils.checkpoint import load_strict, read_weights, select_prefix

# Official hyper-parameters (microsoft/X-Decoder configs, ``MODEL.BACKBONE``):
# ``focalt``: NAME focal_dw in configs/xdecoder/xdecoder_focalt_lang.yaml and
# focalt_unicl_lang.yaml, configs/seem/focalt_unicl_lang_{v0,v1,demo}.yaml;
# ``focall``: NAME focal in configs/xdecoder/xdecoder_focall_lang.yaml and
# focall_unicl_lang.yaml, configs/seem/focall_unicl_lang_{v0,v1,demo}.yaml.
# X-Decoder and SEEM use the same settings per size and no config defines a
# base size. All of them: PATCH_SIZE 4, MLP_RATIO 4, DROP_RATE 0,
# DROP_PATH_RATE 0.3, PATCH_NORM, USE_CONV_EMBED, SCALING_MODULATOR,
# USE_POSTLN, USE_LAYERSCALE (1e-4) true, USE_POSTLN_IN_MODULATION false.
FOCALNET_ARCHS = {
    'focalt': dict(block='focal_dw', embed_dim=96, depths=(2, 2, 6, 2),
                   focal_levels=(3, 3, 3, 3), focal_windows=(3, 3, 3, 3)),
    'focall': dict(block='focal', embed_dim=192, depths=(2, 2, 18, 2),
                   focal_levels=(4, 4, 4, 4), focal_windows=(3, 3, 3, 3)),
}
BLOCKS = ('focal_dw', 'focal')


class FocalModulation(nn.Module):
    """Focal modulation (Yang et al., 2022) on (B, H, W, C) tokens."""

    def __init__(self, dim: int, focal_level: int, focal_window: int,
                 focal_factor: int = 2, scaling_modulator: bool = True) -> None:
        super().__init__()
        self.focal_level = focal_level
        self.scaling_modulator = scaling_modulator
        self.f = nn.Linear(dim, 2 * dim + focal_level + 1)
        self.h = nn.Conv2d(dim, dim, kernel_size=1)
        self.proj = nn.Linear(dim, dim)
        self.focal_layers = nn.ModuleList()
        for k in range(focal_level):
            size = focal_factor * k + focal_window
            self.focal_layers.append(nn.Sequential(
                nn.Conv2d(dim, dim, size, padding=size // 2, groups=dim, bias=False),
                nn.GELU()))

    def forward(self, x: Tensor) -> Tensor:
        channels = x.shape[-1]
        q, ctx, gates = self.f(x).permute(0, 3, 1, 2).split(
            (channels, channels, self.focal_level + 1), dim=1)
        ctx_all = 0
        for level, layer in enumerate(self.focal_layers):
            ctx = layer(ctx)
            ctx_all = ctx_all + ctx * gates[:, level:level + 1]
        ctx_global = F.gelu(ctx.mean((2, 3), keepdim=True))
        ctx_all = ctx_all + ctx_global * gates[:, self.focal_level:]
        if self.scaling_modulator:
            ctx_all = ctx_all / (self.focal_level + 1)
        return self.proj((q * self.h(ctx_all)).permute(0, 2, 3, 1))


class FocalBlock(nn.Module):
    """One focal modulation block (post-LN, layer scale), ``focal_dw`` or
    ``focal`` layout (see the module docstring)."""

    def __init__(self, dim: int, focal_level: int, focal_window: int, drop_path: float,
                 block: str, mlp_ratio: float = 4.0, layerscale: float = 1e-4) -> None:
        super().__init__()
        self.block = block
        if block == 'focal_dw':
            self.dw1 = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim)
        self.modulation = FocalModulation(dim, focal_level, focal_window)
        if block == 'focal_dw':
            self.dw2 = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential()
        self.mlp.add_module('fc1', nn.Linear(dim, hidden))
        self.mlp.add_module('act', nn.GELU())
        self.mlp.add_module('fc2', nn.Linear(hidden, dim))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.gamma_1 = nn.Parameter(torch.full((dim,), layerscale))
        self.gamma_2 = nn.Parameter(torch.full((dim,), layerscale))

    @staticmethod
    def _dw(conv: nn.Conv2d, x: Tensor) -> Tensor:
        """(B, H, W, C) + depthwise conv of it."""
        return x + conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)

    def forward(self, x: Tensor) -> Tensor:
        """(B, H, W, C) -> (B, H, W, C)."""
        if self.block == 'focal_dw':
            x = self._dw(self.dw1, x)
            x = self.norm1(x + self.drop_path(self.gamma_1 * self.modulation(x)))
            x = self._dw(self.dw2, x)
            return self.norm2(x + self.drop_path(self.gamma_2 * self.mlp(x)))
        x = x + self.drop_path(self.gamma_1 * self.norm1(self.modulation(x)))
        return x + self.drop_path(self.gamma_2 * self.norm2(self.mlp(x)))


class PatchEmbed(nn.Module):
    """Overlapping conv patch embedding + LayerNorm; the input is zero-padded
    on the right/bottom to a multiple of the stride, as the official code."""

    def __init__(self, in_channels: int, embed_dim: int, stem: bool, stem_padding: int = 3) -> None:
        super().__init__()
        kernel, self.stride, padding = (7, 4, stem_padding) if stem else (3, 2, 1)
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel, self.stride, padding)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, H', W', embed_dim)."""
        h, w = x.shape[-2:]
        x = F.pad(x, (0, -w % self.stride, 0, -h % self.stride))
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class FocalStage(nn.Module):
    """One block per stochastic-depth rate, then the downsampling embedding."""

    def __init__(self, dim: int, focal_level: int, focal_window: int,
                 drop_paths: Sequence[float], block: str, downsample: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            [FocalBlock(dim, focal_level, focal_window, p, block) for p in drop_paths])
        self.downsample = PatchEmbed(dim, 2 * dim, stem=False) if downsample else None


@MODELS.register_module()
class FocalNetDW(BaseEncoder):
    """FocalNet backbone of X-Decoder / SEEM (official names and layout).

    Args:
        arch (str): ``'focalt'`` (Focal-T, ``focal_dw`` blocks) or
            ``'focall'`` (Focal-L, ``focal`` blocks); see ``FOCALNET_ARCHS``.
        embed_dim (int, optional): Width of stage 0 (stage ``i``: ``C 2^i``);
            ``None`` keeps the arch's. Likewise ``depths`` (blocks per
            stage), ``focal_levels`` and ``focal_windows`` (per stage) and
            ``block`` (``'focal_dw'`` or ``'focal'``), e.g. a small test net.
        out_indices (Sequence[int]): Stages returned (each through its
            ``norm{i}``), strides 4/8/16/32.
        drop_path_rate (float): Stochastic depth of the last block (0.3 in
            the official recipes), linear from 0.
        with_cp (bool): Recompute each block's activations in the backward
            pass (the official ``USE_CHECKPOINT``).
        checkpoint (str, optional): Weights with the official names, e.g. a
            whole X-Decoder checkpoint with ``checkpoint_prefix='backbone.'``
            or an mmfusion checkpoint of a model holding this backbone.
        checkpoint_prefix (str, optional): Keep and strip keys starting with
            it (``None``: the file holds this backbone's keys alone).
        **kwargs: :class:`BaseEncoder` options (``frozen``, ...).

    Attributes:
        channels / strides: of each returned map.
    """

    def __init__(self,
                 arch: str = 'focalt',
                 embed_dim: Optional[int] = None,
                 depths: Optional[Sequence[int]] = None,
                 focal_levels: Optional[Sequence[int]] = None,
                 focal_windows: Optional[Sequence[int]] = None,
                 block: Optional[str] = None,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 drop_path_rate: float = 0.3,
                 with_cp: bool = False,
                 checkpoint: Optional[str] = None,
                 checkpoint_prefix: Optional[str] = 'backbone.',
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if arch not in FOCALNET_ARCHS:
            raise ValueError(f'FocalNetDW arch must be one of {sorted(FOCALNET_ARCHS)}, '
                             f'got {arch!r}')
        overrides = dict(block=block, embed_dim=embed_dim, depths=depths,
                         focal_levels=focal_levels, focal_windows=focal_windows)
        spec = dict(FOCALNET_ARCHS[arch],
                    **{k: v for k, v in overrides.items() if v is not None})
        if spec['block'] not in BLOCKS:
            raise ValueError(f'FocalNetDW block must be one of {BLOCKS}, got {spec["block"]!r}')
        depths, dim = tuple(spec['depths']), int(spec['embed_dim'])
        for key in ('focal_levels', 'focal_windows'):
            if len(spec[key]) != len(depths):
                raise ValueError(f'FocalNetDW {key} {tuple(spec[key])} needs one value per '
                                 f'stage (depths {depths})')
        if not out_indices or any(not 0 <= i < len(depths) for i in out_indices):
            raise ValueError(f'FocalNetDW out_indices {tuple(out_indices)} must be stages in '
                             f'[0, {len(depths)})')
        self.arch, self.out_indices, self.with_cp = arch, tuple(out_indices), with_cp
        block = spec['block']
        self.patch_embed = PatchEmbed(3, dim, stem=True,
                                      stem_padding=3 if block == 'focal_dw' else 2)
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            start = sum(depths[:i])
            self.layers.append(FocalStage(
                dim * 2 ** i, spec['focal_levels'][i], spec['focal_windows'][i],
                rates[start:start + depth], block, downsample=i < len(depths) - 1))
        for i in self.out_indices:
            self.add_module(f'norm{i}', nn.LayerNorm(dim * 2 ** i))
        self.channels: List[int] = [dim * 2 ** i for i in self.out_indices]
        self.strides: List[int] = [4 * 2 ** i for i in self.out_indices]
        self._init_official()
        if checkpoint is not None:
            self.load_checkpoint(checkpoint, checkpoint_prefix)
        self._apply_freeze()

    def _init_official(self) -> None:
        """The official ``FocalNet.init_weights``: truncated normal (0.02)
        Linear weights, zero biases, unit LayerNorms, convs at PyTorch's
        default (X-Decoder itself never calls it: its weights come from a
        checkpoint)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def load_checkpoint(self, checkpoint, prefix: Optional[str] = 'backbone.') -> None:
        """Load official-name weights (a path or a state dict) strictly; the
        error lists missing, unexpected and mis-shaped keys."""
        name, state = read_weights(checkpoint)
        if prefix and not any(k.startswith(prefix) for k in state):
            prefix = None  # a file of this backbone's keys alone
        load_strict(self, select_prefix(state, prefix, name, 'FocalNetDW'), name, 'FocalNetDW',
                    hint=f'check arch ({self.arch!r}) and checkpoint_prefix')

    def _run_block(self, blk: nn.Module, x: Tensor) -> Tensor:
        if self.with_cp and self.training and torch.is_grad_enabled():
            return activation_checkpoint(blk, x, use_reentrant=False)
        return blk(x)

    def forward(self, img: Tensor) -> Dict[str, List[Tensor]]:
        """(B, 3, H, W) -> ``dict(maps=[...])``: per ``out_indices`` stage a
        (B, C_i, ceil(H / 4 / 2^i), ...) map, finest first."""
        x = self.patch_embed(img)
        maps = []
        for i, stage in enumerate(self.layers):
            for blk in stage.blocks:
                x = self._run_block(blk, x)
            if i in self.out_indices:
                maps.append(getattr(self, f'norm{i}')(x).permute(0, 3, 1, 2).contiguous())
            if stage.downsample is not None:
                x = stage.downsample(x.permute(0, 3, 1, 2))
        return dict(maps=maps)
