"""Point-MAE encoder (Pang et al., ECCV 2022) in pure torch.

Module names follow the upstream ``MaskTransformer`` / ``PointTransformer``
(``encoder.first_conv``, ``pos_embed``, ``blocks.blocks.<i>``, ``norm``,
``cls_token``, ``cls_pos``), so upstream checkpoints load without renaming.
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import Tensor, nn

from mmfusion.models.encoders.base_encoder import BaseEncoder
from mmfusion.registry import MODELS
from mmfusion.utils import load_state_dict_file, load_strict, select_prefix

from .ops import farthest_point_sample, gather_points, knn_group

POOL_MODES = ('max+mean', 'max', 'mean', 'cls', 'cls+max')


class MiniPointNet(nn.Module):
    """Two-stage shared MLP + max pool that embeds one group into one token.

    Stage 1 embeds each point; its max over the group is appended to every
    point (local + global context); stage 2 embeds again and max-pools.
    ``hidden_channels = (h1, h2, h3)`` are the widths: stage 1 is
    in -> h1 -> h2, stage 2 is 2 * h2 -> h3 -> out. Point-MAE's defaults
    (128, 256, 512) embed xyz; I2P-MAE's upper stages embed groups of the
    previous stage's tokens with (C, C, out).
    """

    def __init__(self, out_channels: int, in_channels: int = 3,
                 hidden_channels: Tuple[int, int, int] = (128, 256, 512)) -> None:
        super().__init__()
        self.out_channels = out_channels
        h1, h2, h3 = hidden_channels
        self.first_conv = nn.Sequential(
            nn.Conv1d(in_channels, h1, 1), nn.BatchNorm1d(h1), nn.ReLU(inplace=True),
            nn.Conv1d(h1, h2, 1))
        self.second_conv = nn.Sequential(
            nn.Conv1d(2 * h2, h3, 1), nn.BatchNorm1d(h3), nn.ReLU(inplace=True),
            nn.Conv1d(h3, out_channels, 1))

    @staticmethod
    def _shared_mlp(seq: nn.Sequential, x: Tensor) -> Tensor:
        """``seq`` (Conv1d k=1, BN, ReLU, Conv1d k=1) on channels-last (M, C) rows.

        The same maths as running the Conv1d stack on (BG, C, K), as matmuls:
        oneDNN's 1x1 Conv1d backward is several times slower on CPU, and a
        BatchNorm1d over (BG, C, K) normalises over exactly these M = BG*K rows.
        """
        conv1, bn, act, conv2 = seq
        x = F.linear(x, conv1.weight[..., 0], conv1.bias)
        x = act(bn(x))
        return F.linear(x, conv2.weight[..., 0], conv2.bias)

    def forward(self, groups: Tensor) -> Tensor:
        """(B, G, K, C_in) groups -> (B, G, out_channels) tokens."""
        B, G, K, C = groups.shape
        x = self._shared_mlp(self.first_conv, groups.reshape(B * G * K, C)).view(B * G, K, -1)
        x = torch.cat([x.max(dim=1, keepdim=True)[0].expand(-1, K, -1), x], dim=2)
        x = self._shared_mlp(self.second_conv, x.reshape(B * G * K, -1)).view(B * G, K, -1)
        return x.max(dim=1)[0].reshape(B, G, self.out_channels)


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch per sample."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = x.new_empty((x.shape[0], ) + (1, ) * (x.dim() - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class Attention(nn.Module):
    """Multi-head self-attention (fused qkv, as upstream)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = False,
                 attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'embed_dims {dim} must be divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor, blocked: Optional[Tensor] = None) -> Tensor:
        """``blocked``: optional (B, L, L) bool, True = query may not see key."""
        B, L, C = x.shape
        q, k, v = self.qkv(x).reshape(B, L, 3, self.num_heads, C // self.num_heads).permute(
            2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(
            q, k, v, attn_mask=None if blocked is None else ~blocked[:, None],
            dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(B, L, C)))


class Mlp(nn.Module):

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool,
                 drop: float, attn_drop: float, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop, drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def forward(self, x: Tensor, blocked: Optional[Tensor] = None) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), blocked))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class TransformerEncoder(nn.Module):
    """Blocks that re-add the positional embedding before every block."""

    def __init__(self, blocks: nn.ModuleList) -> None:
        super().__init__()
        self.blocks = blocks

    def forward(self, x: Tensor, pos: Tensor, blocked: Optional[Tensor] = None) -> Tensor:
        for block in self.blocks:
            x = block(x + pos, blocked)
        return x


@MODELS.register_module()
class PointMAEEncoder(BaseEncoder):
    """Point-MAE's point-cloud transformer encoder.

    The cloud is split into ``num_group`` groups: FPS picks the centres (from
    index 0, deterministic) and each centre's ``group_size`` nearest points,
    expressed relative to the centre, form a group. A mini-PointNet turns
    each group into a token, an MLP of the centre's xyz gives its positional
    embedding, and a transformer encodes the tokens.

    Args:
        num_group: groups (tokens) per cloud, G.
        group_size: points per group, K.
        embed_dims: token / transformer width, C (Point-MAE: 384).
        depth: transformer blocks (Point-MAE: 12).
        num_heads: attention heads (Point-MAE: 6).
        mlp_ratio: MLP hidden width / C.
        qkv_bias: bias in the qkv projection (Point-MAE: False).
        drop_rate, attn_drop_rate: dropout rates.
        drop_path_rate: stochastic depth, linear from 0 over the blocks.
        cls_token: prepend a learned cls token (Point-MAE's fine-tuning
            model has one, its pre-training encoder does not).
        pool: how ``pooled`` is made from the output tokens: ``'max+mean'``
            (sum of max and mean over group tokens), ``'max'``, ``'mean'``,
            ``'cls'`` (the cls token) or ``'cls+max'`` (concatenation of the
            cls token and the max, Point-MAE's classification feature, which
            is (B, 2C)).
        embed_hidden: hidden widths (h1, h2, h3) of the mini-PointNet
            (Point-MAE: 128, 256, 512).
        mask_ratio: fraction of groups hidden from the transformer for MAE
            pre-training (Point-MAE: 0.6); each cloud hides exactly
            ``int(mask_ratio * G)`` groups chosen uniformly at random. Only
            in training mode unless ``forward(masking=True)``.
        checkpoint: a weights file: Point-MAE's pre-training or fine-tuning
            checkpoint (``base_model`` with ``MAE_encoder.`` keys or bare
            keys, ``module.`` prefixes allowed), a bare state dict, or an
            mmfusion checkpoint with ``prefix``. Keys of other upstream heads
            (decoder, classification head) are ignored. A checkpoint without
            ``cls_token``/``cls_pos`` (pre-training) keeps their random init.
        prefix: keep only checkpoint keys starting with it (then stripped).
        **kwargs: :class:`BaseEncoder` options (``frozen`` defaults to True,
            ``trainable_modules``, ``lora``, ``frozen_dtype``, ``init_cfg``).

    Only x, y, z of the input points are used (extra channels are ignored),
    as in Point-MAE.
    """

    def __init__(self,
                 num_group: int = 64,
                 group_size: int = 32,
                 embed_dims: int = 384,
                 depth: int = 12,
                 num_heads: int = 6,
                 mlp_ratio: float = 4.0,
                 qkv_bias: bool = False,
                 drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.1,
                 cls_token: bool = False,
                 pool: str = 'max+mean',
                 embed_hidden: Tuple[int, int, int] = (128, 256, 512),
                 mask_ratio: float = 0.0,
                 checkpoint: Optional[str] = None,
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if pool not in POOL_MODES:
            raise ValueError(f'PointMAEEncoder pool must be one of {POOL_MODES}, got {pool!r}')
        if pool.startswith('cls') and not cls_token:
            raise ValueError(f'PointMAEEncoder pool={pool!r} needs cls_token=True')
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f'PointMAEEncoder mask_ratio must be in [0, 1), got {mask_ratio}')
        self.num_group = num_group
        self.group_size = group_size
        self.embed_dims = embed_dims
        self.pool = pool
        self.mask_ratio = mask_ratio

        self.encoder = MiniPointNet(embed_dims, 3, tuple(embed_hidden))
        self.pos_embed = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, embed_dims))
        dpr = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = TransformerEncoder(nn.ModuleList([
            Block(embed_dims, num_heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, dpr[i])
            for i in range(depth)]))
        self.norm = nn.LayerNorm(embed_dims)
        if cls_token:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dims))
            self.cls_pos = nn.Parameter(torch.zeros(1, 1, embed_dims))
        else:
            self.cls_token = self.cls_pos = None
        self._init_weights()
        if checkpoint is not None:
            self.load_checkpoint(checkpoint, prefix)
        self._apply_freeze()

    @property
    def out_channels(self) -> int:
        """Width of ``pooled``."""
        return self.embed_dims * (2 if self.pool == 'cls+max' else 1)

    def _init_weights(self) -> None:
        # Point-MAE's init: truncated normal (std .02) for linear/conv weights.
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv1d)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)
            nn.init.trunc_normal_(self.cls_pos, std=0.02)

    # -- checkpoint ----------------------------------------------------------
    def load_checkpoint(self, path: str, prefix: Optional[str] = None) -> None:
        """Load Point-MAE-style weights (see ``checkpoint`` in the class doc).

        Raises:
            KeyError: no key of this encoder (or of ``prefix``) is in ``path``.
            RuntimeError: encoder keys are missing or have another shape than
                this configuration's.
        """
        owner = type(self).__name__
        # load_state_dict_file unwraps base_model / model and DataParallel's module.
        state = select_prefix(load_state_dict_file(path), prefix, path, owner)
        if any(k.startswith('MAE_encoder.') for k in state):  # pre-training checkpoint
            state = select_prefix(state, 'MAE_encoder.', path, owner)
        own = self.state_dict()
        used = {k: v for k, v in state.items() if k in own}
        if not used:
            raise KeyError(f'{path} holds no {owner} weights (expected keys such as '
                           f'encoder.first_conv.0.weight, optionally under base_model / '
                           f'MAE_encoder.); some keys: {list(state)[:8]}')
        # Pre-training checkpoints have no cls token: it keeps its random init.
        kept_init = load_strict(self, used, path, owner,
                                hint='check embed_dims / depth / group settings',
                                may_miss=lambda k: k in ('cls_token', 'cls_pos'))
        skipped = sorted(k for k in state if k not in own)
        print_log(f'{owner}: loaded {len(used)} tensors from {path}; ignored '
                  f'{len(skipped)} keys of other heads {skipped[:4]}; random init kept for '
                  f'{kept_init}', logger='current')

    # -- forward -------------------------------------------------------------
    def group(self, points: Tensor, lengths: Optional[Tensor] = None,
              return_index: bool = False):
        """FPS centres and kNN groups relative to them.

        Returns:
            ``(groups, centers)``: (B, G, K, 3) and (B, G, 3), float32; with
            ``return_index`` also the (B, G) point index of each centre and
            the (B, G, K) point indices of each group's members.
        """
        xyz = points[..., :3].float()
        n_real = int(lengths.min()) if lengths is not None else xyz.shape[1]
        if n_real < self.num_group:
            raise ValueError(f'{type(self).__name__}: a cloud has {n_real} points, fewer than '
                             f'its {self.num_group} groups; resample the clouds '
                             '(PointDataPreprocessor num_points) or use fewer groups; '
                             'LoadPointsFromFile(min_points=...) names such files')
        center_idx = farthest_point_sample(xyz, self.num_group, lengths)
        centers = gather_points(xyz, center_idx)
        idx, _ = knn_group(xyz, centers, self.group_size, lengths)
        groups = gather_points(xyz, idx) - centers.unsqueeze(2)
        return (groups, centers, center_idx, idx) if return_index else (groups, centers)

    def random_mask(self, batch_size: int, device: torch.device) -> Tensor:
        """(B, G) bool, True = hidden; exactly ``int(mask_ratio * G)`` per cloud."""
        num_mask = int(self.mask_ratio * self.num_group)
        ranks = torch.rand(batch_size, self.num_group, device=device).argsort(1).argsort(1)
        return ranks < num_mask

    def forward(self,
                points: Tensor,
                lengths: Optional[Tensor] = None,
                masking: Optional[bool] = None,
                hidden: Optional[Tensor] = None,
                grouped: Optional[Tuple[Tensor, Tensor]] = None) -> Dict[str, Tensor]:
        """Encode a padded batch of clouds.

        Args:
            points: (B, N, 3+) clouds, padded (see ``PointDataPreprocessor``).
            lengths: (B,) real points per cloud (``points_lengths`` from the
                preprocessor); padded points are never grouped.
            masking: hide random groups; default: when ``mask_ratio > 0``
                and in training mode (so evaluation is deterministic).
            hidden: (B, G) bool, the groups to hide (True), chosen by the
                caller (e.g. I2P-MAE's 2D-guided masking); the same count
                per cloud. Overrides ``masking``.
            grouped: ``(groups, centers)`` from :meth:`group` when the caller
                already grouped the clouds (FPS is not run twice).

        Returns:
            dict with
            - ``tokens``: (B, G', C) normalised output tokens of the groups
              (cls token excluded); G' = G, or the visible groups
              G - int(mask_ratio * G) in centre order when masking;
            - ``centers``: (B, G, 3) group centres (all groups);
            - ``groups``: (B, G, K, 3) neighbourhoods relative to their
              centre (the MAE reconstruction target);
            - ``pooled``: (B, C) per ``pool`` ((B, 2C) for ``'cls+max'``);
            - ``hidden_mask``: (B, G) bool, True = group hidden from the
              transformer; only when masking. (Unlike the text encoders'
              ``mask``, True does not mean valid.)
        """
        if points.dim() != 3 or points.shape[-1] < 3:
            raise ValueError('PointMAEEncoder expects points (B, N, 3+), got '
                             f'{tuple(points.shape)}')
        if masking is None:
            masking = self.mask_ratio > 0 and self.training
        dtype = self.pos_embed[0].weight.dtype
        groups, centers = grouped if grouped is not None else self.group(points, lengths)
        tokens = self.encoder(groups.to(dtype))
        pos = self.pos_embed(centers.to(dtype))
        B, _, C = tokens.shape
        if hidden is None and masking:
            hidden = self.random_mask(B, tokens.device)
        if hidden is not None:
            if hidden.shape != (B, self.num_group) or len(set(hidden.sum(1).tolist())) != 1:
                raise ValueError(f'hidden must be (B, {self.num_group}) bool with the same number '
                                 f'of hidden groups per cloud, got {tuple(hidden.shape)}')
            tokens = tokens[~hidden].reshape(B, -1, C)
            pos = pos[~hidden].reshape(B, -1, C)
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token.expand(B, -1, -1), tokens], dim=1)
            pos = torch.cat([self.cls_pos.expand(B, -1, -1), pos], dim=1)
        x = self.norm(self.blocks(tokens, pos))
        cls, x = (x[:, 0], x[:, 1:]) if self.cls_token is not None else (None, x)
        if self.pool == 'max+mean':
            pooled = x.max(1)[0] + x.mean(1)
        elif self.pool == 'max':
            pooled = x.max(1)[0]
        elif self.pool == 'mean':
            pooled = x.mean(1)
        elif self.pool == 'cls':
            pooled = cls
        else:
            pooled = torch.cat([cls, x.max(1)[0]], dim=-1)
        out = dict(tokens=x, centers=centers, groups=groups, pooled=pooled)
        if hidden is not None:
            out['hidden_mask'] = hidden
        return out
