"""The hierarchical point encoder of I2P-MAE (Point-M2AE's multi-scale design).

Module names follow the official ``H_Encoder`` (``token_embed.<i>``,
``encoder_pos_embeds.<i>``, ``encoder_blocks.<i>.blocks.<j>``,
``encoder_norms.<i>``), so official weights load without renaming.
"""
from typing import Dict, List, Optional, Sequence

import torch
from torch import Tensor, nn

from mmfusion.models.encoders.base_encoder import BaseEncoder
from mmfusion.models.encoders.pointcloud.ops import farthest_point_sample, gather_points, knn_group
from mmfusion.models.encoders.pointcloud.point_mae import Block, MiniPointNet, TransformerEncoder
from mmfusion.registry import MODELS

POOLS = ('max', 'max+mean', 'mean,max')


def propagate_visible(top_visible: Tensor, idxs: Sequence[Tensor]) -> List[Tensor]:
    """Push a top-level visibility mask down the hierarchy.

    A token of level ``i - 1`` is visible when it belongs to the neighbourhood
    of a visible token of level ``i`` (the union over those groups), as the
    official mask back-propagation (without its quirk of always marking the
    first centre of the batch visible).

    Args:
        top_visible: (B, G_top) bool, True = visible.
        idxs: per level, (B, G_i, K_i) indices of each group's members in
            level ``i - 1`` (level 0's members are raw points, not tokens, so
            ``idxs[0]`` is not used).

    Returns:
        List of (B, G_i) bool visibility masks, level 0 first.
    """
    masks = [top_visible]
    for level in range(len(idxs) - 1, 0, -1):
        idx = idxs[level]
        B, G, K = idx.shape
        n_lower = idxs[level - 1].shape[1]
        members = torch.where(masks[0][..., None], idx, torch.full_like(idx, n_lower))
        hits = torch.zeros(B, n_lower + 1, dtype=torch.long, device=idx.device)
        hits.scatter_add_(1, members.reshape(B, -1), torch.ones_like(members.reshape(B, -1)))
        masks.insert(0, hits[:, :n_lower] > 0)
    return masks


def pack_rows(x: Tensor, keep: Tensor):
    """Move each sample's kept rows to the front (in order), pad to the max count.

    Returns ``(packed, valid, order)``: (B, L, C), (B, L) bool and the (B, L)
    source index of each packed row.
    """
    B, G = keep.shape
    counts = keep.sum(1)
    L = int(counts.max())
    # A stable sort of "not kept" puts kept rows first, each group in index order.
    order = torch.sort((~keep).to(torch.int8), dim=1, stable=True)[1][:, :L]
    valid = torch.arange(L, device=x.device)[None] < counts[:, None]
    return gather_points(x, order), valid, order


@MODELS.register_module()
class I2PMAEEncoder(BaseEncoder):
    """Multi-scale point transformer encoder (I2P-MAE / Point-M2AE).

    Level 0 groups the raw points (FPS centres, kNN neighbourhoods relative
    to the centre) and embeds each group with a mini-PointNet; every higher
    level groups the previous level's centres and embeds each group of the
    previous level's *tokens* (a mini-PointNet over features, no
    coordinates). Each level runs its own transformer blocks, re-adding a
    positional MLP of the centres before every block; optional local
    attention limits each token to centres within ``local_radius``.

    With a visibility mask (pre-training), each level encodes only its
    visible tokens (the top-level mask pushed down by
    :func:`propagate_visible`); masked tokens keep their embedding and still
    feed the next level's grouping, as in the official code.

    Args:
        num_groups: groups per level (paper: 512, 256, 64).
        group_sizes: neighbours per group per level (paper: 16, 8, 8).
        embed_dims: width per level (paper: 96, 192, 384).
        depths: transformer blocks per level (paper: 5, 5, 5).
        num_heads: heads in every level (paper: 6).
        local_radius: per-level radius of local attention; 0 = global
            (pre-training uses 0; fine-tuning 0.24/0.48/0.96 on ModelNet40).
        drop_path_rate: stochastic depth, linear over all blocks.
        embed_hidden: hidden widths (h1, h2, h3) of level 0's mini-PointNet
            (official: Point-MAE's 128, 256, 512); the upper levels use
            (C_prev, C_prev, C) as the official code. Level 0's embedding
            runs on every point of every group, so it dominates the cost of
            a small model on CPU.
        norms: a LayerNorm per level on its output (the pre-training
            encoder's ``encoder_norms``); the fine-tuning model has a single
            ``norm`` of its own instead.
        pool: ``pooled`` output: ``'max'`` of the top tokens (the official
            SVM feature), ``'max+mean'`` (their sum, the ModelNet40 head's
            input) or ``'mean,max'`` (concatenated, the ScanObjectNN head's).
        checkpoint, prefix: weights to load (see :meth:`load_checkpoint`).
        **kwargs: :class:`BaseEncoder` options (``frozen``...).
    """

    def __init__(self,
                 num_groups: Sequence[int] = (512, 256, 64),
                 group_sizes: Sequence[int] = (16, 8, 8),
                 embed_dims: Sequence[int] = (96, 192, 384),
                 depths: Sequence[int] = (5, 5, 5),
                 num_heads: int = 6,
                 mlp_ratio: float = 4.0,
                 local_radius: Sequence[float] = (0.0, 0.0, 0.0),
                 drop_path_rate: float = 0.1,
                 embed_hidden: Sequence[int] = (128, 256, 512),
                 norms: bool = True,
                 pool: str = 'max',
                 checkpoint: Optional[str] = None,
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        lengths = {len(num_groups), len(group_sizes), len(embed_dims), len(depths),
                   len(local_radius)}
        if len(lengths) != 1:
            raise ValueError('I2PMAEEncoder: num_groups, group_sizes, embed_dims, depths and '
                             'local_radius need one entry per level, got '
                             f'{list(num_groups)}, {list(group_sizes)}, {list(embed_dims)}, '
                             f'{list(depths)}, {list(local_radius)}')
        if list(num_groups) != sorted(num_groups, reverse=True):
            raise ValueError(f'I2PMAEEncoder num_groups must decrease level by level, got '
                             f'{list(num_groups)}')
        if pool not in POOLS:
            raise ValueError(f'I2PMAEEncoder pool must be one of {POOLS}, got {pool!r}')
        self.num_groups = list(num_groups)
        self.group_sizes = list(group_sizes)
        self.embed_dims = list(embed_dims)
        self.local_radius = list(local_radius)
        self.pool = pool
        self.token_embed = nn.ModuleList()
        self.encoder_pos_embeds = nn.ModuleList()
        self.encoder_blocks = nn.ModuleList()
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        for i, (dim, depth) in enumerate(zip(embed_dims, depths)):
            if i == 0:
                self.token_embed.append(MiniPointNet(dim, 3, tuple(embed_hidden)))
            else:
                prev = embed_dims[i - 1]
                self.token_embed.append(MiniPointNet(dim, prev, (prev, prev, dim)))
            self.encoder_pos_embeds.append(
                nn.Sequential(nn.Linear(3, dim), nn.GELU(), nn.Linear(dim, dim)))
            start = sum(depths[:i])
            self.encoder_blocks.append(TransformerEncoder(nn.ModuleList([
                Block(dim, num_heads, mlp_ratio, False, 0.0, 0.0, dpr[start + j])
                for j in range(depth)])))
        self.encoder_norms = nn.ModuleList([nn.LayerNorm(d) for d in embed_dims]) if norms \
            else None
        self._init_weights()
        if checkpoint is not None:
            self.load_checkpoint(checkpoint, prefix)
        self._apply_freeze()

    @property
    def out_channels(self) -> int:
        return self.embed_dims[-1] * (2 if self.pool == 'mean,max' else 1)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv1d)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def load_checkpoint(self, path: str, prefix: Optional[str] = None) -> None:
        """Load official I2P-MAE weights (pre-training or fine-tuning:
        ``base_model`` / ``module.`` wrappers and the ``h_encoder.`` prefix are
        stripped) or an mmfusion checkpoint with ``prefix``; other heads'
        keys are ignored, encoder keys must all be present."""
        from mmengine.logging import print_log

        from mmfusion.utils import load_state_dict_file, load_strict, select_prefix
        owner = type(self).__name__
        state = select_prefix(load_state_dict_file(path), prefix, path, owner)
        if any(k.startswith('h_encoder.') for k in state):
            state = select_prefix(state, 'h_encoder.', path, owner)
        own = self.state_dict()
        used = {k: v for k, v in state.items() if k in own}
        if not used:
            raise KeyError(f'{path} holds no {owner} weights (expected keys such as '
                           f'token_embed.0.first_conv.0.weight, optionally under h_encoder.); '
                           f'some keys: {list(state)[:8]}')
        # Official fine-tuning checkpoints have no per-level norms.
        kept = load_strict(self, used, path, owner, hint='check the level widths / depths',
                           may_miss=lambda k: k.startswith('encoder_norms.'))
        print_log(f'{owner}: loaded {len(used)} tensors from {path}; random init kept for '
                  f'{kept}', logger='current')

    # -- grouping ------------------------------------------------------------
    def group(self, points: Tensor, lengths: Optional[Tensor] = None) -> Dict[str, List[Tensor]]:
        """FPS + kNN at every level.

        Returns dict of per-level lists: ``centers`` (B, G_i, 3), ``idxs``
        (B, G_i, K_i) members in the level below (raw points for level 0),
        ``neighborhoods`` (B, G_i, K_i, 3) members relative to their centre,
        ``point_idx`` (B, G_i) the raw point each centre is (FPS picks
        points, so every centre of every level is one of the input points).
        """
        xyz = points[..., :3].float()
        n_real = int(lengths.min()) if lengths is not None else xyz.shape[1]
        if n_real < self.num_groups[0]:
            raise ValueError(f'I2PMAEEncoder: a cloud has {n_real} points, fewer than the '
                             f'{self.num_groups[0]} groups of level 0; resample the clouds '
                             '(PointDataPreprocessor num_points) or use fewer groups; '
                             'LoadPointsFromFile(min_points=...) names such files')
        out = dict(centers=[], idxs=[], neighborhoods=[], point_idx=[])
        source, source_lengths = xyz, lengths
        for g, k in zip(self.num_groups, self.group_sizes):
            picked = farthest_point_sample(source, g, source_lengths)
            centers = gather_points(source, picked)
            idx, _ = knn_group(source, centers, k, source_lengths)
            out['point_idx'].append(picked if not out['point_idx'] else torch.gather(
                out['point_idx'][-1], 1, picked))
            out['centers'].append(centers)
            out['idxs'].append(idx)
            out['neighborhoods'].append(gather_points(source, idx) - centers.unsqueeze(2))
            source, source_lengths = centers, None
        return out

    def _blocked(self, level: int, centers: Tensor, valid: Optional[Tensor]) -> Optional[Tensor]:
        """(B, L, L) True = query may not attend to key, or None."""
        blocked = None
        radius = self.local_radius[level]
        if radius > 0:
            blocked = torch.cdist(centers, centers) >= radius
        if valid is not None:
            pad = ~valid[:, None, :].expand(-1, valid.shape[1], -1)
            blocked = pad if blocked is None else blocked | pad
        if blocked is not None:
            # Every query sees itself, so padded rows never have an empty softmax.
            eye = torch.eye(blocked.shape[1], dtype=torch.bool, device=blocked.device)
            blocked = blocked & ~eye
        return blocked

    # -- forward -------------------------------------------------------------
    def forward(self,
                points: Tensor,
                lengths: Optional[Tensor] = None,
                top_visible: Optional[Tensor] = None,
                groups: Optional[Dict[str, List[Tensor]]] = None) -> Dict:
        """Encode clouds.

        Args:
            points: (B, N, 3+) clouds; lengths: (B,) real points.
            top_visible: (B, G_top) bool, True = visible (pre-training);
                ``None`` encodes every token.
            groups: the output of :meth:`group` when already computed.

        Returns:
            dict with
            - ``tokens``: (B, G_top, C) normalised top tokens (only the
              visible ones, in index order, when masking);
            - ``pooled``: per ``pool``, over ``tokens``;
            - ``levels``: per level, the (B, L_i, C_i) encoded (normalised
              when ``norms``) visible tokens, zero-padded;
            - ``valid``: per level, (B, L_i) bool of real rows in ``levels``;
            - ``order``: per level, (B, L_i) index of each row among G_i;
            - ``visible``: per level, (B, G_i) bool (all True unmasked);
            - ``centers``, ``idxs``, ``neighborhoods``, ``point_idx``: from
              :meth:`group`.
        """
        if points.dim() != 3 or points.shape[-1] < 3:
            raise ValueError(f'I2PMAEEncoder expects points (B, N, 3+), got '
                             f'{tuple(points.shape)}')
        groups = groups if groups is not None else self.group(points, lengths)
        centers, idxs = groups['centers'], groups['idxs']
        B = points.shape[0]
        if top_visible is None:
            visible = [torch.ones(B, g, dtype=torch.bool, device=points.device)
                       for g in self.num_groups]
        else:
            visible = propagate_visible(top_visible, idxs)
        dtype = self.encoder_pos_embeds[0][0].weight.dtype
        levels, valids, orders = [], [], []
        full = None
        for i in range(len(self.num_groups)):
            if i == 0:
                tokens = self.token_embed[0](groups['neighborhoods'][0].to(dtype))
            else:
                tokens = self.token_embed[i](gather_points(full, idxs[i]))
            if top_visible is None:
                x, valid, order = tokens, None, None
                ctr = centers[i]
            else:
                x, valid, order = pack_rows(tokens, visible[i])
                ctr = gather_points(centers[i], order)
            pos = self.encoder_pos_embeds[i](ctr.to(dtype))
            x = self.encoder_blocks[i](x, pos, self._blocked(i, ctr, valid))
            if valid is not None:
                x = x * valid[..., None]
                # Encoded visible tokens replace their embeddings for the next level.
                full = tokens.scatter(1, order[..., None].expand_as(x),
                                      torch.where(valid[..., None], x, gather_points(tokens,
                                                                                     order)))
            else:
                full = x
            if self.encoder_norms is not None:
                x = self.encoder_norms[i](x)
            levels.append(x)
            valids.append(valid if valid is not None else torch.ones(
                x.shape[:2], dtype=torch.bool, device=x.device))
            orders.append(order if order is not None else torch.arange(
                x.shape[1], device=x.device).expand(B, -1))
        top, top_valid = levels[-1], valids[-1]
        masked_top = top.masked_fill(~top_valid[..., None], float('-inf'))
        mx = masked_top.max(1)[0]
        mean = (top * top_valid[..., None]).sum(1) / top_valid.sum(1, keepdim=True)
        if self.pool == 'max':
            pooled = mx
        elif self.pool == 'max+mean':
            pooled = mx + mean
        else:
            pooled = torch.cat([mean, mx], dim=-1)
        return dict(tokens=top, pooled=pooled, levels=levels, valid=valids, order=orders,
                    visible=visible, **groups)
