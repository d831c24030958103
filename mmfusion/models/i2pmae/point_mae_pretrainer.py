"""Point-MAE pre-training, and I2P-MAE's 2D guidance on its single-level encoder."""
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmfusion.models.common import FusionBaseModel
from mmfusion.models.encoders.pointcloud.point_mae import Block, PointMAEEncoder
from mmfusion.registry import MODELS

from .i2pmae import ImageToPointMixin, chamfer_l2, init_trunc_normal


class PointMAEDecoder(nn.Module):
    """Point-MAE's ``TransformerDecoder``: blocks with the positional
    embedding re-added, final norm over the last ``num_masked`` tokens."""

    def __init__(self, dim: int, depth: int, num_heads: int, drop_path_rate: float) -> None:
        super().__init__()
        dpr = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList([Block(dim, num_heads, 4.0, False, 0.0, 0.0, dpr[i])
                                     for i in range(depth)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, pos: Tensor, num_masked: int) -> Tensor:
        for block in self.blocks:
            x = block(x + pos)
        return self.norm(x[:, -num_masked:])


@MODELS.register_module()
class PointMAEPretrainer(ImageToPointMixin, FusionBaseModel):
    """Point-MAE (Pang et al., ECCV 2022) pre-training, names as upstream
    (``MAE_encoder``, ``MAE_decoder``, ``mask_token``, ``decoder_pos_embed``,
    ``increase_dim``), so its checkpoints load unchanged.

    Random masking of ``mask_ratio`` of the groups; the decoder sees the
    visible tokens and a mask token per hidden group (with the hidden
    centres' positional embedding) and ``increase_dim`` predicts the hidden
    groups' points, scored by Chamfer-L2: Point-MAE's objective, the
    "no 2D guidance" baseline of I2P-MAE.

    With a ``teacher`` it is I2P-MAE's non-hierarchical variant on this
    encoder: the hidden groups are drawn by the teacher's saliency at their
    centres (``masking='2d_guided'``) and the visible tokens also predict
    the teacher's features at their member points (``rec_head_2d``, MSE).

    Args:
        encoder: :class:`PointMAEEncoder` config (no cls token;
            ``mask_ratio`` there is ignored, this model's is used).
        decoder_depth, decoder_num_heads: Point-MAE 4, 6.
        mask_ratio: Point-MAE 0.6.
        teacher, masking, loss_2d_weight, feature_upsample: the 2D guidance,
            as in :class:`I2PMAE`.
    """

    def __init__(self,
                 encoder: dict,
                 decoder_depth: int = 4,
                 decoder_num_heads: int = 6,
                 mask_ratio: float = 0.6,
                 teacher: Optional[dict] = None,
                 masking: str = 'random',
                 loss_3d_weight: float = 1.0,
                 loss_2d_weight: float = 1.0,
                 feature_upsample: str = 'bicubic',
                 drop_path_rate: float = 0.1,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.set_masking(masking, teacher, mask_ratio, loss_3d_weight, loss_2d_weight,
                         feature_upsample)
        self.MAE_encoder = MODELS.build(encoder)
        if not isinstance(self.MAE_encoder, PointMAEEncoder) or \
                self.MAE_encoder.cls_token is not None:
            raise TypeError('PointMAEPretrainer encoder must be a PointMAEEncoder without '
                            'cls_token')
        dim = self.MAE_encoder.embed_dims
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.decoder_pos_embed = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, dim))
        self.MAE_decoder = PointMAEDecoder(dim, decoder_depth, decoder_num_heads, drop_path_rate)
        group_size = self.MAE_encoder.group_size
        self.increase_dim = nn.Sequential(nn.Conv1d(dim, 3 * group_size, 1))
        self.build_2d_branch(teacher, dim, group_size)
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        init_trunc_normal(self.decoder_pos_embed, self.MAE_decoder, self.increase_dim,
                          self.rec_head_2d)

    def num_hidden(self) -> int:
        return int(self.mask_ratio * self.MAE_encoder.num_group)

    def loss(self, inputs: Dict, data_samples=None) -> Dict[str, Tensor]:
        points, lengths = inputs['points'], inputs.get('points_lengths')
        enc = self.MAE_encoder
        groups, centers, centre_idx, member_idx = enc.group(points, lengths, return_index=True)
        B, G = centers.shape[:2]
        views = self.teacher(points, lengths) if self.teacher is not None else None
        if self.masking == '2d_guided':
            visible = self.guided_visible(self.centre_saliency(views, centre_idx),
                                          G - self.num_hidden())
        else:
            ranks = torch.rand(B, G, device=points.device).argsort(1).argsort(1)
            visible = ranks >= self.num_hidden()
        out = enc(points, lengths, hidden=~visible, grouped=(groups, centers))
        x_vis = out['tokens']  # (B, G_vis, C), visible groups in index order
        C = x_vis.shape[-1]
        M = self.num_hidden()
        pos_vis = self.decoder_pos_embed(centers[visible].reshape(B, -1, 3).to(x_vis.dtype))
        pos_mask = self.decoder_pos_embed(centers[~visible].reshape(B, M, 3).to(x_vis.dtype))
        x_full = torch.cat([x_vis, self.mask_token.to(x_vis.dtype).expand(B, M, -1)], dim=1)
        x_rec = self.MAE_decoder(x_full, torch.cat([pos_vis, pos_mask], dim=1), M)
        K = enc.group_size
        pred = self.increase_dim(x_rec.transpose(1, 2)).transpose(1, 2).reshape(B * M, K, 3)
        losses = dict(loss_3d=self.loss_3d_weight * chamfer_l2(pred, groups[~visible]))
        if self.teacher is not None and self.loss_2d_weight > 0:
            target_2d = self.member_targets(views, member_idx)[visible]  # (B*G_vis, K, VC)
            pred_2d = self.rec_head_2d(x_vis.reshape(-1, C)[..., None])[..., 0]
            pred_2d = pred_2d.reshape(-1, K, self.target_channels)
            losses['loss_2d'] = self.loss_2d_weight * F.mse_loss(pred_2d.float(),
                                                                 target_2d.float())
        return losses

    def _forward(self, inputs: Dict, data_samples=None) -> Tensor:
        """The unmasked encoder's pooled feature, (B, C)."""
        return self.MAE_encoder(inputs['points'], inputs.get('points_lengths'),
                                masking=False)['pooled']

    def extract_feat(self, inputs: Dict) -> Tensor:
        return self._forward(inputs)
