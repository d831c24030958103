"""Transformer-encoder + FPN pixel decoder that exposes the multi-scale maps.

mmdet's ``TransformerEncoderPixelDecoder`` builds exactly the X-Decoder /
Mask2Former "transformer encoder on the top level + FPN" modules, but its
forward returns only ``(mask_feature, memory)``: the intermediate FPN maps the
masked-attention decoder cycles through are discarded, and it requires image
metas. This subclass keeps mmdet's modules (and so its checkpoints' keys) and
only changes ``forward`` to return the same contract as mmdet's
``MSDeformAttnPixelDecoder``: ``(mask_features, [stride-32, stride-16,
stride-8 maps])`` (or other levels, ``out_indices``). The deformable variant is used directly as
``type='mmdet.MSDeformAttnPixelDecoder'``.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.layers import TransformerEncoderPixelDecoder
from torch import Tensor

from mmfusion.registry import MODELS


@MODELS.register_module()
class TransformerEncoderFPNPixelDecoder(TransformerEncoderPixelDecoder):
    """Transformer encoder on the lowest-resolution level, then a top-down FPN.

    Args are mmdet's ``TransformerEncoderPixelDecoder`` ones (``in_channels``
    ordered high to low resolution, ``feat_channels`` must equal the encoder's
    ``embed_dims``), plus:

    Args:
        out_indices (Sequence[int]): Which FPN maps are returned for the
            masked-attention decoder, indexed from the lowest resolution (0:
            the encoder's level, ``num_inputs - 1``: the highest-resolution
            map, before the mask-feature conv). Defaults to ``(0, 1, 2)``,
            Mask2Former's strides 32/16/8 for a 4-level input; on small images
            ``(1, 2, 3)`` (strides 16/8/4) keeps objects several cells wide at
            every level the queries attend to.
        use_padding_mask (bool): Keep batch padding out of the encoder's
            attention (mmdet). X-Decoder's official encoder reads the padded
            map whole (no mask).
    """

    def __init__(self, *args, out_indices: Sequence[int] = (0, 1, 2),
                 use_padding_mask: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.use_padding_mask = use_padding_mask
        out_indices = tuple(out_indices)
        if (not out_indices or any(not 0 <= i < self.num_inputs for i in out_indices)
                or list(out_indices) != sorted(set(out_indices))):
            raise ValueError(f'out_indices {out_indices} must be increasing indices in '
                             f'[0, {self.num_inputs}) (0 = lowest resolution)')
        self.out_indices = out_indices

    def _padding_mask(self, feat: Tensor,
                      batch_img_metas: Optional[Sequence[dict]]) -> Tensor:
        """Boolean mask (B, h, w), True on padded pixels of the top level.

        Without metas nothing is treated as padding (single-size batches).
        """
        bs, _, h, w = feat.shape
        if batch_img_metas is None:
            return feat.new_zeros((bs, h, w), dtype=torch.bool)
        pad_h, pad_w = batch_img_metas[0]['batch_input_shape']
        mask = feat.new_ones((bs, pad_h, pad_w), dtype=torch.float32)
        for i, meta in enumerate(batch_img_metas):
            img_h, img_w = meta['img_shape'][:2]
            mask[i, :img_h, :img_w] = 0
        return F.interpolate(mask[:, None], size=(h, w), mode='nearest')[:, 0].bool()

    def forward(
        self,
        feats: List[Tensor],
        batch_img_metas: Optional[Sequence[dict]] = None,
    ) -> Tuple[Tensor, List[Tensor]]:
        """
        Args:
            feats (list[Tensor]): Backbone maps, high to low resolution, each
                (B, in_channels[i], H_i, W_i), e.g. strides 4/8/16/32.
            batch_img_metas (list[dict], optional): With ``img_shape`` and
                ``batch_input_shape``, to keep padding out of the encoder.

        Returns:
            tuple:
                - mask_features (Tensor): (B, out_channels, H_0, W_0), the
                  highest-resolution level (stride 4).
                - multi_scale_features (list[Tensor]): the ``out_indices``
                  maps, each (B, feat_channels, H_i, W_i), low to high
                  resolution (by default strides 32, 16, 8 for a 4-level
                  input).
        """
        feat_last = feats[-1]
        bs, _, h, w = feat_last.shape
        padding_mask = self._padding_mask(feat_last,
                                          batch_img_metas if self.use_padding_mask else None)
        pos_embed = self.positional_encoding(padding_mask)
        # (B, C, h, w) -> (B, h*w, C): the encoder works on token sequences.
        tokens = self.encoder_in_proj(feat_last).flatten(2).transpose(1, 2)
        memory = self.encoder(
            query=tokens,
            query_pos=pos_embed.flatten(2).transpose(1, 2),
            key_padding_mask=padding_mask.flatten(1))
        memory = memory.transpose(1, 2).reshape(bs, self.encoder_embed_dims, h, w)

        y = self.encoder_out_proj(memory)
        outs = [y]
        for i in range(self.num_inputs - 2, -1, -1):
            lateral = self.lateral_convs[i](feats[i])
            y = lateral + F.interpolate(y, size=lateral.shape[-2:], mode='nearest')
            y = self.output_convs[i](y)
            outs.append(y)
        return self.mask_feature(y), [outs[i] for i in self.out_indices]
