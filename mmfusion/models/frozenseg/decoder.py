"""FrozenSeg's masked-attention decoder: Mask2Former's, with SAM injected into
the memory (feature injector) and into the queries (query injector), and the
class embedding computed from mask-pooled pixel features."""
from typing import Callable, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import Conv2d
from mmcv.cnn.bricks.transformer import MultiheadAttention
from mmdet.models.layers.transformer import MLP
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmfusion.models.common.mask import MaskedAttentionDecoder
from mmfusion.models.common.open_vocab_ensemble import binary_mask_pool
from mmfusion.registry import MODELS


class FeatureInjector(BaseModule):
    """CLIP tokens of one level attend to the SAM tokens: one cross-attention
    with a residual and a post-norm, no FFN (official
    ``CrossAttentionLayer_MINI``). Queries carry the CLIP level's position
    embedding, keys the SAM grid's."""

    def __init__(self, embed_dims: int, num_heads: int) -> None:
        super().__init__()
        self.attn = MultiheadAttention(embed_dims, num_heads, batch_first=True)
        self.norm = nn.LayerNorm(embed_dims)

    def forward(self, clip_tokens: Tensor, clip_pos: Tensor, sam_tokens: Tensor,
                sam_pos: Tensor) -> Tensor:
        # mmcv's attention adds the identity (the CLIP tokens) itself
        return self.norm(self.attn(query=clip_tokens, key=sam_tokens, value=sam_tokens,
                                   query_pos=clip_pos, key_pos=sam_pos))


@MODELS.register_module()
class FrozenSegDecoder(MaskedAttentionDecoder):
    """:class:`MaskedAttentionDecoder` with FrozenSeg's injectors.

    - **Feature injector**: in the layers that read level
      ``feature_fuse_level`` (0, the lowest resolution: layers 0, 3, 6 of 9),
      that level's projected CLIP tokens cross-attend to the SAM tokens, and
      the result is the layer's memory, with no position embedding.
    - **Query injector**: after the layers that read level
      ``query_fuse_level`` (2: layers 2, 5, 8) and their prediction, the SAM
      embedding averaged over each query's binarised mask, through
      ``mask_pooling_proj`` (LayerNorm + Linear), is added to the queries.
    - **Class embedding**: ``cls_embed`` is a 3-layer MLP on the decoder
      output plus ``mask_pooling_proj`` of the mask features averaged over
      the query's own binarised mask (the same projection as above, as the
      official code shares it).

    ``context`` of :meth:`forward` carries ``sam_tokens`` (B, N, C) and
    ``sam_hw`` (the pixel decoder's SAM branch) and
    ``sam_embed`` (B, C, h, w) (the SAM image embedding the query injector
    pools).

    Args:
        feature_fuse_level, query_fuse_level (int or None): The level whose
            layers get the feature / query injector (None: no injector, the
            ablations).
        sam_channels (int): Width of the SAM image embedding the query
            injector pools; a linear projection is added where it differs
            from ``hidden_dims`` (the official widths are equal: 256). The
            SAM branch's tokens have the pixel decoder's width
            (``in_channels``), projected like the CLIP levels.
        resize_sam_at_test (bool): At inference the official code resizes
            the SAM token grid to the CLIP level's size before the feature
            injector (it does not in training).
        **kwargs: :class:`MaskedAttentionDecoder` arguments.
    """

    def __init__(self, feature_fuse_level: Optional[int] = 0,
                 query_fuse_level: Optional[int] = 2, sam_channels: int = 256,
                 resize_sam_at_test: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        hidden = self.hidden_dims
        for name, level in (('feature_fuse_level', feature_fuse_level),
                            ('query_fuse_level', query_fuse_level)):
            if level is not None and not 0 <= level < self.num_feature_levels:
                raise ValueError(f'FrozenSegDecoder: {name} must be a level in '
                                 f'[0, {self.num_feature_levels}) or None, got {level}')
        self.feature_fuse_level = feature_fuse_level
        self.query_fuse_level = query_fuse_level
        self.resize_sam_at_test = resize_sam_at_test
        self.cls_embed = MLP(hidden, hidden, self.cls_embed.out_features, 3)
        self.mask_pooling_proj = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden))
        # the SAM branch's tokens come at the pixel decoder's width, as the CLIP levels
        self.sam_input_proj = (Conv2d(self.in_channels, hidden, kernel_size=1)
                               if self.in_channels != hidden else nn.Identity())
        self.sam_embed_proj = (nn.Linear(sam_channels, hidden)
                               if sam_channels != hidden and query_fuse_level is not None
                               else nn.Identity())
        self.feature_injectors = nn.ModuleDict({
            str(i): FeatureInjector(hidden, self.num_heads) for i in self.fused_layers()})

    def fused_layers(self) -> Sequence[int]:
        """Indices of the layers with a feature injector."""
        if self.feature_fuse_level is None:
            return []
        return [i for i in range(self.num_layers)
                if i % self.num_feature_levels == self.feature_fuse_level]

    def forward_head(self, tokens: Tensor, mask_features: Tensor,
                     attn_size: Tuple[int, int],
                     transform_normed: Optional[Callable[[Tensor], Tensor]] = None
                     ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        normed = self.decoder_norm(tokens)
        if transform_normed is not None:
            normed = transform_normed(normed)
        mask_logits = torch.einsum('blc,bchw->blhw', self.mask_embed(normed), mask_features)
        # masks only select pixels: no gradient through them (official: detached)
        pooled = binary_mask_pool(mask_features, mask_logits.detach())[0]
        cls_embeds = self.cls_embed(self.mask_pooling_proj(pooled) + normed)
        return normed, cls_embeds, mask_logits, self.attention_mask(mask_logits, attn_size)

    def layer_memory(self, index: int, memory: Tensor, memory_pos: Tensor,
                     context: Optional[dict]) -> Tuple[Tensor, Tensor]:
        if str(index) not in self.feature_injectors:
            return memory, memory_pos
        if context is None or 'sam_tokens' not in context:
            raise ValueError('FrozenSegDecoder: the feature injector needs context["sam_tokens"]')
        sam_tokens = context['sam_tokens']
        batch, _, channels = sam_tokens.shape
        sam_map = sam_tokens.transpose(1, 2).reshape(batch, channels, *context['sam_hw'])
        clip_hw = context['level_sizes'][index % self.num_feature_levels]
        if not self.training and self.resize_sam_at_test and tuple(sam_map.shape[-2:]) != clip_hw:
            sam_map = F.interpolate(sam_map, clip_hw, mode='bilinear', align_corners=False)
        no_pad = sam_map.new_zeros((batch, *sam_map.shape[-2:]), dtype=torch.bool)
        sam_pos = self.positional_encoding(no_pad).flatten(2).transpose(1, 2)
        # SAM tokens enter as a decoder level: projection + level 0's embedding
        keys = self.sam_input_proj(sam_map).flatten(2).transpose(1, 2) + self.level_embed.weight[0]
        fused = self.feature_injectors[str(index)](memory, memory_pos, keys, sam_pos)
        # the fused memory has no position embedding (official: pos None)
        return fused, torch.zeros_like(fused)

    def after_layer(self, index: int, tokens: Tensor, mask_logits: Tensor,
                    context: Optional[dict]) -> Tensor:
        if (self.query_fuse_level is None
                or index % self.num_feature_levels != self.query_fuse_level):
            return tokens
        if context is None or 'sam_embed' not in context:
            raise ValueError('FrozenSegDecoder: the query injector needs context["sam_embed"]')
        sam_embed = context['sam_embed']
        pooled = binary_mask_pool(sam_embed, mask_logits.detach())[0]
        return tokens + self.mask_pooling_proj(self.sam_embed_proj(pooled))

    def forward(self, multi_scale_features, mask_features, context: Optional[dict] = None,
                **kwargs):
        context = dict(context or {})
        context['level_sizes'] = [tuple(f.shape[-2:]) for f in multi_scale_features]
        return super().forward(multi_scale_features, mask_features, context=context, **kwargs)
