"""FrozenSeg's pixel decoder: Mask2Former's multi-scale deformable one over the
CLIP levels, plus a branch that turns the frozen SAM embedding into tokens for
the decoder's feature injector."""
from typing import List, Tuple

import torch
from mmcv.cnn import ConvModule
from mmdet.models.layers import Mask2FormerTransformerEncoder, MSDeformAttnPixelDecoder
from mmengine.config import ConfigDict
from torch import Tensor, nn

from mmfusion.registry import MODELS


@MODELS.register_module()
class FrozenSegPixelDecoder(MSDeformAttnPixelDecoder):
    """mmdet's ``MSDeformAttnPixelDecoder`` (unchanged modules and keys) and a
    SAM branch.

    The SAM branch (official ``fpn3`` + ``sam_transformer``): a 3x3 stride-2
    conv + GroupNorm + ReLU halves the SAM embedding's grid and maps its
    width to ``feat_channels``; a deformable-attention encoder of its own,
    on that single level, contextualises the tokens.

    The official branch builds its deformable attention for 3 levels but
    feeds it one (configs/frozenseg/README.md, "official checkpoint"); here it
    is built for the one level it reads.

    Args:
        sam_channels (int): Width of the SAM image embedding (256 for the
            official SAMs).
        sam_encoder (dict): ``Mask2FormerTransformerEncoder`` config of the
            SAM branch; its attention's ``num_levels`` must be 1.
        **kwargs: ``MSDeformAttnPixelDecoder`` arguments.
    """

    def __init__(self, sam_channels: int = 256, sam_encoder: dict = None, **kwargs) -> None:
        # mmdet reads the encoder config by attribute
        kwargs['encoder'] = ConfigDict(kwargs['encoder'])
        super().__init__(**kwargs)
        feat_channels = kwargs.get('feat_channels', 256)
        norm_cfg = kwargs.get('norm_cfg', dict(type='GN', num_groups=32))
        if sam_encoder is None:
            sam_encoder = kwargs['encoder']
        sam_encoder = ConfigDict(sam_encoder)
        levels = sam_encoder['layer_cfg']['self_attn_cfg'].get('num_levels', 4)
        if levels != 1:
            raise ValueError(f'FrozenSegPixelDecoder: the SAM branch reads one level; its '
                             f'encoder self_attn_cfg.num_levels must be 1, got {levels}')
        self.sam_proj = ConvModule(sam_channels, feat_channels, kernel_size=3, stride=2,
                                   padding=1, bias=True, norm_cfg=norm_cfg,
                                   act_cfg=dict(type='ReLU'))
        self.sam_encoder = Mask2FormerTransformerEncoder(**sam_encoder)
        # the branch encoder's level embedding, added to the position embedding
        self.sam_level_encoding = nn.Embedding(1, feat_channels)

    def forward_sam(self, sam_embed: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        """SAM embedding (B, C_sam, h, w) -> tokens (B, h/2 * w/2, C) and
        their grid size."""
        x = self.sam_proj(sam_embed)
        batch, _, h, w = x.shape
        no_pad = x.new_zeros((batch, h, w), dtype=torch.bool)
        pos = (self.postional_encoding(no_pad).flatten(2).transpose(1, 2)
               + self.sam_level_encoding.weight[0])
        tokens = x.flatten(2).transpose(1, 2)
        shapes = torch.tensor([[h, w]], device=x.device)
        # normalised cell centres, one level
        ys, xs = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device),
                                indexing='ij')
        ref = torch.stack([(xs.flatten() + 0.5) / w, (ys.flatten() + 0.5) / h], -1).to(x.dtype)
        tokens = self.sam_encoder(
            query=tokens, query_pos=pos, key_padding_mask=no_pad.flatten(1),
            spatial_shapes=shapes, reference_points=ref[None, :, None].expand(batch, -1, 1, -1),
            level_start_index=shapes.new_zeros((1, )),
            valid_ratios=x.new_ones((batch, 1, 2)))
        return tokens, (h, w)

    def forward(self, feats: List[Tensor], sam_embed: Tensor = None) -> Tuple:
        """``(mask_features, multi_scale_features)`` as mmdet's, plus
        ``(sam_tokens, sam_hw)`` when a SAM embedding is given."""
        mask_features, multi_scale = super().forward(feats)
        if sam_embed is None:
            return mask_features, multi_scale
        return mask_features, multi_scale, self.forward_sam(sam_embed)
