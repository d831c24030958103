"""I2P-MAE pre-training: 2D-guided masking and 2D-semantic reconstruction.

Zhang et al., *Learning 3D Representations from 2D Pre-trained Models via
Image-to-Point Masked Autoencoders*, CVPR 2023. Module names follow the
official ``I2P_MAE`` (``h_encoder``, ``mask_token``, ``h_decoder``,
``decoder_pos_embeds``, ``token_prop``, ``decoder_norm``, ``rec_head_3d``,
``rec_head_2d``); the frozen 2D model is ``teacher`` (the official
``clip_model``, see ``tools/model_converters/i2pmae_to_mmfusion.py``).
"""
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmfusion.models.common import FusionBaseModel
from mmfusion.models.encoders.pointcloud.ops import gather_points, knn_group
from mmfusion.models.encoders.pointcloud.point_mae import Block, TransformerEncoder
from mmfusion.models.encoders.pointcloud.projection import gather_pixel_features
from mmfusion.registry import MODELS

from .teacher import DepthViewTeacher

MASKINGS = ('2d_guided', 'random')


def chamfer_l2(pred: Tensor, target: Tensor) -> Tensor:
    """Chamfer distance with squared distances, mean over both directions
    (the ``ChamferDistanceL2`` of Point-MAE / I2P-MAE): (M, P, 3), (M, Q, 3)."""
    d = torch.cdist(pred.float(), target.float()).pow(2)
    return d.min(2)[0].mean() + d.min(1)[0].mean()


class _ConvBN(nn.Module):
    """Conv1d + BatchNorm1d under the official ``net`` names."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(cin, cout, 1), nn.BatchNorm1d(cout))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class _ResidualConv(nn.Module):
    """Conv-BN-GELU, Conv-BN, + input, GELU (official ``net1``/``net2``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.net1 = nn.Sequential(nn.Conv1d(channels, channels, 1), nn.BatchNorm1d(channels),
                                  nn.GELU())
        self.net2 = nn.Sequential(nn.Conv1d(channels, channels, 1), nn.BatchNorm1d(channels))

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(self.net2(self.net1(x)) + x)


class _Extraction(nn.Module):

    def __init__(self, channels: int, blocks: int = 1) -> None:
        super().__init__()
        self.operation = nn.Sequential(*[_ResidualConv(channels) for _ in range(blocks)])

    def forward(self, x: Tensor) -> Tensor:
        return self.operation(x)


class TokenPropagation(nn.Module):
    """Upsample coarse tokens onto finer centres (PointNet++ feature propagation).

    Each fine centre takes the inverse-squared-distance weighted mean of its
    3 nearest coarse tokens, concatenated with its own skip feature, fused
    by Conv-BN-GELU and one residual conv block.
    """

    def __init__(self, skip_channels: int, coarse_channels: int, out_channels: int,
                 blocks: int = 1) -> None:
        super().__init__()
        self.fuse = _ConvBN(skip_channels + coarse_channels, out_channels)
        self.extraction = _Extraction(out_channels, blocks)

    def forward(self, fine_xyz: Tensor, coarse_xyz: Tensor, skip: Tensor,
                coarse: Tensor) -> Tensor:
        """(B, Gf, 3), (B, Gc, 3), (B, Gf, Cs), (B, Gc, Cc) -> (B, Gf, out)."""
        idx, dist = knn_group(coarse_xyz, fine_xyz, 3)
        weight = 1.0 / (dist.pow(2) + 1e-8)
        weight = weight / weight.sum(-1, keepdim=True)
        interp = (gather_points(coarse, idx) * weight[..., None].to(coarse.dtype)).sum(2)
        x = torch.cat([skip, interp], dim=-1).transpose(1, 2)
        return self.extraction(F.gelu(self.fuse(x))).transpose(1, 2)


class ImageToPointMixin:
    """What the 2D teacher gives a point MAE, for any encoder whose tokens'
    centres and members are input points (FPS picks points): saliency at
    the centres, 2D-guided masking, and 2D feature targets of the members.
    A model calls :meth:`set_masking` and :meth:`build_2d_branch` in its
    ``__init__``."""

    def set_masking(self, masking: str, teacher, mask_ratio: float, loss_3d_weight: float,
                    loss_2d_weight: float, feature_upsample: str) -> None:
        """Validate and keep the masking and loss settings."""
        owner = type(self).__name__
        if masking not in MASKINGS:
            raise ValueError(f'{owner} masking must be one of {MASKINGS}, got {masking!r}')
        if masking == '2d_guided' and teacher is None:
            raise ValueError(f"{owner} masking='2d_guided' needs a 2D teacher; set teacher or "
                             "masking='random'")
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f'{owner} mask_ratio must be in (0, 1), got {mask_ratio}')
        if feature_upsample not in ('bicubic', 'nearest'):
            raise ValueError(f"{owner} feature_upsample must be 'bicubic' or 'nearest', got "
                             f'{feature_upsample!r}')
        self.mask_ratio = mask_ratio
        self.masking = masking
        self.loss_3d_weight = loss_3d_weight
        self.loss_2d_weight = loss_2d_weight
        self.feature_upsample = feature_upsample

    def build_2d_branch(self, teacher, width: int, members: int) -> None:
        """``self.teacher`` (a :class:`DepthViewTeacher` or ``None``) and, with a
        teacher, ``rec_head_2d``: a token of ``width`` channels predicts the
        views' features (``target_channels``) of each of its ``members``."""
        teacher = MODELS.build(teacher) if isinstance(teacher, dict) else teacher
        if teacher is not None and not isinstance(teacher, DepthViewTeacher):
            raise TypeError(f'{type(self).__name__} teacher must be a DepthViewTeacher, got '
                            f'{type(teacher).__name__}')
        self.teacher = teacher
        self.rec_head_2d = None
        if teacher is not None:
            self.target_channels = teacher.out_channels * len(teacher.views)
            self.rec_head_2d = nn.Conv1d(width, self.target_channels * members, 1)

    def read_maps(self, maps: Tensor, pix: Tensor, point_idx: Tensor) -> Tensor:
        """Per-view maps (B, V, C, h, w) read at the pixels of the points
        ``point_idx`` (B, M) -> (B, V, M, C)."""
        size = self.teacher.image_size
        V = pix.shape[1]
        pix = torch.gather(pix, 2, point_idx[:, None, :, None].expand(-1, V, -1, 2))
        if self.feature_upsample == 'bicubic':
            B = maps.shape[0]
            maps = F.interpolate(maps.flatten(0, 1), size=(size, size), mode='bicubic',
                                 align_corners=False).unflatten(0, (B, V))
        return gather_pixel_features(maps, pix, size)

    def centre_saliency(self, views: Dict[str, Tensor], centre_idx: Tensor) -> Tensor:
        """(B, G) saliency of the token centres, averaged over the views."""
        return self.read_maps(views['saliency'][:, :, None], views['pix'],
                              centre_idx)[..., 0].mean(1)

    def member_targets(self, views: Dict[str, Tensor], member_idx: Tensor) -> Tensor:
        """(B, G, K) member point indices -> (B, G, K, V * C) 2D targets (the
        views concatenated on channels, as the official code)."""
        B, G, K = member_idx.shape
        feats = self.read_maps(views['feats'], views['pix'], member_idx.flatten(1))
        return feats.unflatten(2, (G, K)).permute(0, 2, 3, 1, 4).flatten(3)

    @staticmethod
    def guided_visible(saliency: Tensor, num_visible: int) -> Tensor:
        """(B, G) saliency -> (B, G) bool visible.

        softmax over the tokens, then a multinomial draw of all G without
        replacement: the first ``num_visible`` drawn stay visible, so a
        salient token is likely (not certain) to be visible.
        """
        order = torch.multinomial(saliency.float().softmax(-1), saliency.shape[1],
                                  replacement=False)
        visible = torch.zeros_like(saliency, dtype=torch.bool)
        return visible.scatter(1, order[:, :num_visible], True)


def init_trunc_normal(*modules: Optional[nn.Module]) -> None:
    """Point-MAE / I2P-MAE init: truncated normal (std .02) linear/conv weights."""
    for module in modules:
        if module is None:
            continue
        for m in module.modules():
            if isinstance(m, (nn.Linear, nn.Conv1d)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)


@MODELS.register_module()
class I2PMAE(ImageToPointMixin, FusionBaseModel):
    """Image-to-point masked autoencoder (pre-training model).

    One step: the frozen ``teacher`` renders the three depth views and
    returns per-view 2D features and saliency; the encoder groups the cloud
    into levels; the top level's visible tokens are drawn by the saliency
    of their centres (``masking='2d_guided'``: softmax over the
    view-averaged saliency, multinomial sampling without replacement, the
    first ``1 - mask_ratio`` drawn stay visible) or uniformly
    (``'random'``); the visible tokens are encoded level by level and
    decoded back to the second-finest level, where

    - ``loss_3d``: the masked tokens reconstruct their members (the
      finest level's centres, relative to the token's centre), Chamfer-L2;
    - ``loss_2d``: the visible tokens predict the teacher's features at
      each member's pixel in every view (views concatenated on channels),
      MSE.

    Without a teacher it is a plain hierarchical point MAE (random masking,
    3D loss only: Point-M2AE's objective with I2P-MAE's decoder).

    Args:
        encoder: :class:`I2PMAEEncoder` config.
        teacher: :class:`DepthViewTeacher` config, or ``None``.
        decoder_dims, decoder_depths: per decoder level, top level first
            (paper: 384/192, 1/1); the first must equal the encoder's top
            width.
        num_heads: decoder heads.
        mask_ratio: fraction of top-level tokens masked (paper 0.8).
        masking: ``'2d_guided'`` (needs a teacher) or ``'random'``.
        loss_3d_weight, loss_2d_weight: loss weights (paper 1, 1); a 2D
            weight of 0 keeps the 2D-guided masking without the 2D targets.
        feature_upsample: how the teacher's patch grid is read at a pixel:
            ``'bicubic'`` (official: the map is upsampled to the image size)
            or ``'nearest'`` (the patch the pixel is in).
        drop_path_rate: decoder stochastic depth, linear over its blocks.
    """

    def __init__(self,
                 encoder: dict,
                 teacher: Optional[dict] = None,
                 decoder_dims: Sequence[int] = (384, 192),
                 decoder_depths: Sequence[int] = (1, 1),
                 num_heads: int = 6,
                 mask_ratio: float = 0.8,
                 masking: str = '2d_guided',
                 loss_3d_weight: float = 1.0,
                 loss_2d_weight: float = 1.0,
                 feature_upsample: str = 'bicubic',
                 drop_path_rate: float = 0.1,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.set_masking(masking, teacher, mask_ratio, loss_3d_weight, loss_2d_weight,
                         feature_upsample)
        self.h_encoder = MODELS.build(encoder)
        enc_dims = self.h_encoder.embed_dims
        levels = len(enc_dims)
        if len(decoder_dims) != len(decoder_depths) or not 1 < len(decoder_dims) <= levels:
            raise ValueError(f'I2PMAE decoder_dims {list(decoder_dims)} / decoder_depths '
                             f'{list(decoder_depths)}: one entry per decoder level, 2 to '
                             f'{levels} levels')
        if decoder_dims[0] != enc_dims[-1]:
            raise ValueError(f'I2PMAE decoder_dims[0] ({decoder_dims[0]}) must equal the '
                             f'encoder top width ({enc_dims[-1]})')
        # Decoder level j works on encoder level `levels - 1 - j`.
        self.rec_level = levels - len(decoder_dims)
        self.mask_token = nn.Parameter(torch.zeros(1, enc_dims[-1]))
        dpr = torch.linspace(0, drop_path_rate, sum(decoder_depths)).tolist()
        self.h_decoder = nn.ModuleList()
        self.decoder_pos_embeds = nn.ModuleList()
        self.token_prop = nn.ModuleList()
        for j, (dim, depth) in enumerate(zip(decoder_dims, decoder_depths)):
            start = sum(decoder_depths[:j])
            self.h_decoder.append(TransformerEncoder(nn.ModuleList([
                Block(dim, num_heads, 4.0, False, 0.0, 0.0, dpr[start + k])
                for k in range(depth)])))
            self.decoder_pos_embeds.append(
                nn.Sequential(nn.Linear(3, dim), nn.GELU(), nn.Linear(dim, dim)))
            if j > 0:
                skip = enc_dims[levels - 1 - j]
                self.token_prop.append(TokenPropagation(skip, decoder_dims[j - 1], dim))
        self.decoder_norm = nn.LayerNorm(decoder_dims[-1])
        members = self.h_encoder.group_sizes[self.rec_level]
        self.rec_head_3d = nn.Conv1d(decoder_dims[-1], 3 * members, 1)
        self.build_2d_branch(teacher, decoder_dims[-1], members)
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        init_trunc_normal(self.h_decoder, self.decoder_pos_embeds, self.token_prop,
                          self.rec_head_3d, self.rec_head_2d)

    # -- masking -------------------------------------------------------------
    def num_visible(self) -> int:
        return self.h_encoder.num_groups[-1] - int(self.mask_ratio *
                                                   self.h_encoder.num_groups[-1])

    def random_visible(self, batch_size: int, device) -> Tensor:
        G = self.h_encoder.num_groups[-1]
        ranks = torch.rand(batch_size, G, device=device).argsort(1).argsort(1)
        return ranks < self.num_visible()

    # -- model ---------------------------------------------------------------
    def _decode(self, enc: Dict, top_visible: Tensor) -> Tensor:
        """Decoder output at the reconstruction level, (B, G_rec, C) in index order."""
        levels = len(self.h_encoder.num_groups)
        centers = enc['centers']
        top = levels - 1
        B, G = top_visible.shape
        # Top level: visible tokens (index order) and mask tokens at the masked centres.
        vis = enc['levels'][top]  # (B, n_vis, C); every sample has n_vis visible
        masked_order = torch.sort(top_visible.to(torch.int8), dim=1, stable=True)[1]
        masked_order = masked_order[:, :G - vis.shape[1]]
        order = torch.cat([enc['order'][top], masked_order], dim=1)
        x = torch.cat([vis, self.mask_token.to(vis.dtype).expand(B, masked_order.shape[1], -1)],
                      dim=1)
        ctr = gather_points(centers[top], order)
        x = self.h_decoder[0](x, self.decoder_pos_embeds[0](ctr.to(x.dtype)))
        for j in range(1, len(self.h_decoder)):
            level = top - j
            skip = vis.new_zeros(B, self.h_encoder.num_groups[level], enc['levels'][level].shape[-1])
            valid = enc['valid'][level]
            skip = skip.scatter(1, enc['order'][level][..., None].expand_as(enc['levels'][level]),
                                enc['levels'][level] * valid[..., None])
            x = self.token_prop[j - 1](centers[level], ctr, skip, x)
            ctr = centers[level]
            x = self.h_decoder[j](x, self.decoder_pos_embeds[j](ctr.to(x.dtype)))
        return self.decoder_norm(x)

    def loss(self, inputs: Dict, data_samples=None) -> Dict[str, Tensor]:
        points, lengths = inputs['points'], inputs.get('points_lengths')
        groups = self.h_encoder.group(points, lengths)
        B = points.shape[0]
        lvl = self.rec_level
        views = None
        if self.teacher is not None:
            views = self.teacher(points, lengths)
        if self.masking == '2d_guided':
            top_visible = self.guided_visible(
                self.centre_saliency(views, groups['point_idx'][-1]), self.num_visible())
        else:
            top_visible = self.random_visible(B, points.device)
        enc = self.h_encoder(points, lengths, top_visible=top_visible, groups=groups)
        x = self._decode(enc, top_visible)  # (B, G_rec, C)
        visible = enc['visible'][lvl]
        members = self.h_encoder.group_sizes[lvl]
        losses = {}
        pred = self.rec_head_3d(x[~visible][..., None])[..., 0].reshape(-1, members, 3)
        target = groups['neighborhoods'][lvl][~visible]
        losses['loss_3d'] = self.loss_3d_weight * chamfer_l2(pred, target)
        if self.teacher is not None and self.loss_2d_weight > 0:
            # Members of the reconstruction level's tokens are the level below's centres,
            # i.e. input points: their pixels are those of the projection itself.
            member_idx = groups['idxs'][lvl]  # (B, G_rec, K) into the level below
            if lvl > 0:
                below = groups['point_idx'][lvl - 1]
                member_idx = torch.gather(below, 1, member_idx.flatten(1)).view_as(member_idx)
            target_2d = self.member_targets(views, member_idx)
            pred_2d = self.rec_head_2d(x[visible][..., None])[..., 0]
            pred_2d = pred_2d.reshape(-1, members, self.target_channels)
            losses['loss_2d'] = self.loss_2d_weight * F.mse_loss(pred_2d.float(),
                                                                 target_2d[visible].float())
        return losses

    def _forward(self, inputs: Dict, data_samples=None) -> Tensor:
        """The unmasked encoder's pooled feature, (B, C)."""
        return self.h_encoder(inputs['points'], inputs.get('points_lengths'))['pooled']

    def extract_feat(self, inputs: Dict) -> Tensor:
        return self._forward(inputs)
