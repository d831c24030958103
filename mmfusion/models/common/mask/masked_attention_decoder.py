"""Masked-attention transformer decoder with deep supervision (Mask2Former).

Shared by X-Decoder and FrozenSeg. The layers are mmdet's
``Mask2FormerTransformerDecoderLayer`` (masked cross-attention -> self-attention
-> FFN, post-norm), which already accept an external self-attention mask; this
module owns the queries, the level cycling, the prediction head run before the
first layer and after every layer, and the optional extra tokens (e.g. text
queries) that ride along with the object queries.
"""
import functools
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import Conv2d
from mmdet.models.layers import SinePositionalEncoding
from mmdet.models.layers.transformer import Mask2FormerTransformerDecoderLayer
from mmengine.model import BaseModule, ModuleList, caffe2_xavier_init
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from mmfusion.registry import MODELS


@MODELS.register_module()
class MaskedAttentionDecoder(BaseModule):
    """Learned object queries refined by masked-attention decoder layers.

    Token layout: ``[object queries (num_queries) | extra tokens (T)]``, so
    ``L = num_queries + T``. Every output list has ``num_layers + 1`` entries:
    index 0 is the prediction from the initial queries, index ``i + 1`` the
    prediction after layer ``i``.

    Args:
        num_queries (int): Number of learned object queries.
        hidden_dims (int): Query width ``C``.
        num_layers (int): Number of decoder layers.
        num_heads (int): Attention heads in both attentions.
        ffn_dims (int): Hidden width of the FFN.
        in_channels (int): Channels of the multi-scale pixel-decoder maps; a
            1x1 projection is added when it differs from ``hidden_dims``.
        mask_channels (int): Channels of ``mask_features``; the mask MLP maps
            queries to this width before the dot product.
        cls_out_channels (int, optional): Width ``D`` of the class embedding
            projection. The caller turns it into class logits (a fixed
            linear classifier, or cosine against text embeddings). Defaults to
            ``hidden_dims``.
        num_feature_levels (int): Levels cycled through by the layers.
        dropout (float): Attention/FFN dropout.
        enforce_input_proj (bool): Project the maps even when
            ``in_channels == hidden_dims``.
        with_cp (bool): Activation checkpointing: in training, each decoder
            layer's activations are recomputed in the backward pass instead
            of stored (less memory, about one more layer forward per layer).
        cls_embed_bias (bool): Bias of the class-embedding projection
            (X-Decoder's official ``class_embed`` is a bias-free (in, out)
            matrix).
        attn_mask_resize (str): How the predicted masks are resized to the
            next level for the attention mask: ``'bilinear'`` (Mask2Former)
            or ``'bicubic'`` (bicubic with antialias, X-Decoder's official
            code).
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 num_queries: int = 100,
                 hidden_dims: int = 256,
                 num_layers: int = 9,
                 num_heads: int = 8,
                 ffn_dims: int = 2048,
                 in_channels: int = 256,
                 mask_channels: int = 256,
                 cls_out_channels: Optional[int] = None,
                 num_feature_levels: int = 3,
                 dropout: float = 0.0,
                 enforce_input_proj: bool = False,
                 with_cp: bool = False,
                 cls_embed_bias: bool = True,
                 attn_mask_resize: str = 'bilinear',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if attn_mask_resize not in ('bilinear', 'bicubic'):
            raise ValueError(f"attn_mask_resize must be 'bilinear' or 'bicubic', got "
                             f'{attn_mask_resize!r}')
        self.attn_mask_resize = attn_mask_resize
        self.with_cp = with_cp
        self.num_queries = num_queries
        self.hidden_dims = hidden_dims
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.num_feature_levels = num_feature_levels

        attn_cfg = dict(embed_dims=hidden_dims, num_heads=num_heads,
                        attn_drop=dropout, dropout_layer=None, batch_first=True)
        layer_cfg = dict(
            self_attn_cfg=attn_cfg,
            cross_attn_cfg=attn_cfg,
            ffn_cfg=dict(embed_dims=hidden_dims, feedforward_channels=ffn_dims,
                         num_fcs=2, ffn_drop=dropout,
                         act_cfg=dict(type='ReLU', inplace=True)))
        self.layers = ModuleList(
            [Mask2FormerTransformerDecoderLayer(**layer_cfg) for _ in range(num_layers)])
        self.decoder_norm = nn.LayerNorm(hidden_dims)

        self.in_channels = in_channels
        self.input_projs = ModuleList([
            Conv2d(in_channels, hidden_dims, kernel_size=1)
            if in_channels != hidden_dims or enforce_input_proj else nn.Identity()
            for _ in range(num_feature_levels)
        ])
        self.level_embed = nn.Embedding(num_feature_levels, hidden_dims)
        self.positional_encoding = SinePositionalEncoding(
            num_feats=hidden_dims // 2, normalize=True)
        self.query_feat = nn.Embedding(num_queries, hidden_dims)
        self.query_embed = nn.Embedding(num_queries, hidden_dims)

        self.cls_embed = nn.Linear(hidden_dims, cls_out_channels or hidden_dims,
                                   bias=cls_embed_bias)
        self.mask_embed = nn.Sequential(
            nn.Linear(hidden_dims, hidden_dims), nn.ReLU(inplace=True),
            nn.Linear(hidden_dims, hidden_dims), nn.ReLU(inplace=True),
            nn.Linear(hidden_dims, mask_channels))

    def init_weights(self) -> None:
        """Xavier for the transformer layers, as Mask2Former."""
        super().init_weights()
        for proj in self.input_projs:
            if isinstance(proj, Conv2d):
                caffe2_xavier_init(proj, bias=0)
        for p in self.layers.parameters():
            if p.dim() > 1:
                nn.init.xavier_normal_(p)

    def forward_head(self, tokens: Tensor, mask_features: Tensor,
                     attn_size: Tuple[int, int],
                     transform_normed: Optional[Callable[[Tensor], Tensor]] = None
                     ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Prediction head shared by all layers.

        Args:
            tokens (Tensor): (B, L, C) decoder tokens.
            mask_features (Tensor): (B, Cm, H, W), stride-4 pixel embeddings.
            attn_size (tuple[int, int]): (h, w) of the level the next layer
                cross-attends to.
            transform_normed (callable, optional): (B, L, C) normed tokens ->
                the tokens the class and mask heads read (e.g. X-Decoder's
                pooled image token); the decoder's own tokens are unchanged.

        Returns:
            tuple:
                - normed (Tensor): (B, L, C) tokens after the output norm.
                - cls_embeds (Tensor): (B, L, D) class embeddings.
                - mask_logits (Tensor): (B, L, H, W).
                - attn_mask (Tensor): bool (B * num_heads, L, h * w), True
                  where the next cross-attention must not look (predicted
                  mask sigmoid < 0.5). Rows that would be fully masked are
                  left unmasked, else softmax over nothing gives NaN.
        """
        normed = self.decoder_norm(tokens)
        if transform_normed is not None:
            normed = transform_normed(normed)
        cls_embeds = self.cls_embed(normed)
        mask_logits = torch.einsum('blc,bchw->blhw', self.mask_embed(normed), mask_features)
        return normed, cls_embeds, mask_logits, self.attention_mask(mask_logits, attn_size)

    def attention_mask(self, mask_logits: Tensor, attn_size: Tuple[int, int]) -> Tensor:
        """(B, L, H, W) mask logits -> the next cross-attention's bool mask
        (B * num_heads, L, h * w) at ``attn_size`` (see :meth:`forward_head`)."""
        if self.attn_mask_resize == 'bicubic':
            attn_mask = F.interpolate(mask_logits, attn_size, mode='bicubic', align_corners=False,
                                      antialias=True)
        else:
            attn_mask = F.interpolate(mask_logits, attn_size, mode='bilinear',
                                      align_corners=False)
        # Masks only steer attention; no gradient flows through them.
        attn_mask = (attn_mask.flatten(2).sigmoid() < 0.5).detach()
        attn_mask = attn_mask & ~attn_mask.all(dim=-1, keepdim=True)
        # (B, L, hw) -> (B * heads, L, hw), batch-major as nn.MultiheadAttention expects.
        return attn_mask.repeat_interleave(self.num_heads, dim=0)

    def _run_layer(self, layer: nn.Module, tokens: Tensor, pos: Tensor, memory: Tensor,
                   memory_pos: Tensor, attn_mask: Tensor, self_attn_mask: Optional[Tensor],
                   cross_idx: Optional[Tensor]) -> Tensor:
        """One decoder layer; ``cross_idx`` (tokens that cross-attend) None means all."""
        if cross_idx is None:
            return layer(query=tokens, key=memory, value=memory, query_pos=pos,
                         key_pos=memory_pos, cross_attn_mask=attn_mask,
                         self_attn_mask=self_attn_mask, key_padding_mask=None)
        return self._layer_with_partial_cross_attn(layer, tokens, pos, memory, memory_pos,
                                                   attn_mask, self_attn_mask, cross_idx)

    def _layer_with_partial_cross_attn(self, layer: nn.Module, tokens: Tensor, pos: Tensor,
                                       memory: Tensor, memory_pos: Tensor, attn_mask: Tensor,
                                       self_attn_mask: Optional[Tensor],
                                       cross_idx: Tensor) -> Tensor:
        """mmdet's ``Mask2FormerTransformerDecoderLayer.forward`` with only the
        tokens ``cross_idx`` going through cross-attention and its norm."""
        heads_mask = attn_mask.view(-1, self.num_heads, *attn_mask.shape[1:])
        crossed = layer.cross_attn(
            query=tokens[:, cross_idx], key=memory, value=memory,
            query_pos=pos[:, cross_idx], key_pos=memory_pos,
            attn_mask=heads_mask[:, :, cross_idx].flatten(0, 1), key_padding_mask=None)
        tokens = tokens.index_copy(1, cross_idx, layer.norms[0](crossed))
        tokens = layer.self_attn(query=tokens, key=tokens, value=tokens, query_pos=pos,
                                 key_pos=pos, attn_mask=self_attn_mask)
        return layer.norms[2](layer.ffn(layer.norms[1](tokens)))

    def _expand_self_attn_mask(self, mask: Optional[Tensor], batch_size: int) -> Optional[Tensor]:
        """(L, L) is shared; (B, L, L) is expanded per head to (B*heads, L, L)."""
        if mask is None or mask.dim() == 2:
            return mask
        if mask.shape[0] == batch_size * self.num_heads:
            return mask
        assert mask.shape[0] == batch_size, \
            f'self_attn_mask batch dim {mask.shape[0]} is neither B nor B*num_heads'
        return mask.repeat_interleave(self.num_heads, dim=0)

    def forward(self,
                multi_scale_features: List[Tensor],
                mask_features: Tensor,
                extra_tokens: Optional[Tensor] = None,
                extra_pos: Optional[Tensor] = None,
                self_attn_mask: Optional[Tensor] = None,
                mask_extra_cross_attn: Union[bool, Tensor] = True,
                extra_cross_attn: Union[bool, Tensor] = True,
                cache: Optional[dict] = None,
                context: Optional[dict] = None,
                transform_normed: Optional[Callable[[Tensor], Tensor]] = None
                ) -> Dict[str, List[Tensor]]:
        """
        Args:
            multi_scale_features (list[Tensor]): ``num_feature_levels`` maps
                (B, in_channels, h_i, w_i), low to high resolution (strides
                32/16/8); layer ``i`` attends to level ``i % levels``.
            mask_features (Tensor): (B, mask_channels, H, W), stride 4.
            extra_tokens (Tensor, optional): (B, T, C) tokens appended after
                the object queries and updated by every layer.
            extra_pos (Tensor, optional): (B, T, C) positional embedding of
                the extra tokens; zeros when omitted.
            self_attn_mask (Tensor, optional): (L, L), (B, L, L) or
                (B * num_heads, L, L); bool (True = may not attend) or float
                (added to the attention logits). Each row must leave at least
                one visible key.
            mask_extra_cross_attn (bool or Tensor): Whether extra tokens use
                their own predicted masks in cross-attention (grounding
                queries) or see the whole image (caption tokens): one bool for
                all extra tokens, or a (T,) bool tensor per token, for a
                sequence holding both kinds.
            extra_cross_attn (bool or Tensor): Whether extra tokens take part
                in cross-attention at all (one bool or a (T,) bool tensor).
                Tokens that do not (e.g. X-Decoder's referring text tokens,
                appended after cross-attention) keep their value through it
                and its norm, then join self-attention and the FFN.
            cache (dict, optional): An empty dict to fill with what
                :meth:`forward_appended` needs to continue the sequence (the
                memories and every layer's self-attention input).
            context (dict, optional): Extra inputs for subclasses'
                :meth:`layer_memory` / :meth:`after_layer` (e.g. FrozenSeg's
                SAM tokens).
            transform_normed (callable, optional): See :meth:`forward_head`;
                applied at every prediction.

        Returns:
            dict of lists, each with ``num_layers + 1`` entries:
                - ``query_embeds``: (B, L, C) normed tokens.
                - ``cls_embeds``: (B, L, D) class embeddings.
                - ``mask_logits``: (B, L, H, W).
        """
        assert len(multi_scale_features) == self.num_feature_levels
        batch_size = mask_features.shape[0]
        sizes = [feat.shape[-2:] for feat in multi_scale_features]
        memories, memory_pos = self.memories(multi_scale_features)
        if cache is not None:
            cache.update(layers=[dict() for _ in self.layers])

        tokens = self.query_feat.weight.unsqueeze(0).expand(batch_size, -1, -1)
        pos = self.query_embed.weight.unsqueeze(0).expand(batch_size, -1, -1)
        if extra_tokens is not None:
            tokens = torch.cat([tokens, extra_tokens], dim=1)
            if extra_pos is None:
                extra_pos = torch.zeros_like(extra_tokens)
            pos = torch.cat([pos, extra_pos], dim=1)
        self_attn_mask = self._expand_self_attn_mask(self_attn_mask, batch_size)

        outputs: Dict[str, List[Tensor]] = dict(query_embeds=[], cls_embeds=[], mask_logits=[])

        def record(head_out: Tuple[Tensor, ...]) -> Tensor:
            normed, cls_embeds, mask_logits, attn_mask = head_out
            outputs['query_embeds'].append(normed)
            outputs['cls_embeds'].append(cls_embeds)
            outputs['mask_logits'].append(mask_logits)
            if extra_tokens is not None:
                own = torch.as_tensor(mask_extra_cross_attn, dtype=torch.bool,
                                      device=attn_mask.device).expand(extra_tokens.shape[1])
                if not own.all():
                    attn_mask = attn_mask.clone()
                    attn_mask[:, self.num_queries + torch.nonzero(~own).flatten()] = False
            return attn_mask

        # Indices of the tokens that cross-attend (None: all of them).
        cross_idx = None
        if extra_tokens is not None:
            takes_part = torch.as_tensor(extra_cross_attn, dtype=torch.bool,
                                         device=tokens.device).expand(extra_tokens.shape[1])
            if not takes_part.all():
                cross_idx = torch.cat([
                    torch.arange(self.num_queries, device=tokens.device),
                    self.num_queries + torch.nonzero(takes_part).flatten()])

        hooks = [] if cache is None else [
            layer.self_attn.register_forward_pre_hook(
                functools.partial(_keep_self_attn_input, entry), with_kwargs=True)
            for layer, entry in zip(self.layers, cache['layers'])]
        try:
            attn_mask = record(self.forward_head(tokens, mask_features, sizes[0],
                                                 transform_normed))
            for i, layer in enumerate(self.layers):
                level = i % self.num_feature_levels
                memory, level_pos = self.layer_memory(i, memories[level], memory_pos[level],
                                                      context)
                if cache is not None:  # what appended tokens of this layer attend to
                    cache['layers'][i].update(memory=memory, memory_pos=level_pos)
                args = (layer, tokens, pos, memory, level_pos, attn_mask, self_attn_mask,
                        cross_idx)
                if self.with_cp and self.training and torch.is_grad_enabled():
                    tokens = checkpoint(self._run_layer, *args, use_reentrant=False)
                else:
                    tokens = self._run_layer(*args)
                next_size = sizes[(i + 1) % self.num_feature_levels]
                attn_mask = record(self.forward_head(tokens, mask_features, next_size,
                                                     transform_normed))
                tokens = self.after_layer(i, tokens, outputs['mask_logits'][-1], context)
        finally:
            for hook in hooks:
                hook.remove()
        return outputs

    def layer_memory(self, index: int, memory: Tensor, memory_pos: Tensor,
                     context: Optional[dict]) -> Tuple[Tensor, Tensor]:
        """The memory (B, hw, C) and its position embedding that layer
        ``index`` cross-attends to: its level's map here; subclasses may
        replace it (FrozenSeg's feature injector)."""
        return memory, memory_pos

    def after_layer(self, index: int, tokens: Tensor, mask_logits: Tensor,
                    context: Optional[dict]) -> Tensor:
        """The tokens the layer after ``index`` starts from, given this
        layer's output tokens and its predicted (B, L, H, W) mask logits:
        unchanged here; subclasses may add to them (FrozenSeg's query
        injector)."""
        return tokens

    def memories(self, multi_scale_features: List[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        """Per level the flattened, projected map with its level embedding
        (B, h_i * w_i, C), and its sine position embedding."""
        memories, memory_pos = [], []
        for i, feat in enumerate(multi_scale_features):
            # Level embedding tells the shared layers which scale they read.
            memories.append(self.input_projs[i](feat).flatten(2).transpose(1, 2)
                            + self.level_embed.weight[i])
            no_pad = feat.new_zeros((feat.shape[0], *feat.shape[-2:]), dtype=torch.bool)
            memory_pos.append(self.positional_encoding(no_pad).flatten(2).transpose(1, 2))
        return memories, memory_pos

    def forward_appended(self, tokens: Tensor, pos: Tensor, cache: dict) -> Tensor:
        """Continue a :meth:`forward` run with ``cache`` by tokens appended
        after its sequence, one decoding step of an autoregressive extra token
        (X-Decoder's caption tokens).

        The appended tokens cross-attend to the whole image (no predicted
        mask) and self-attend to every token of the cached sequence and to
        themselves, with no mask: the rule for caption tokens when the
        sequence holds no grounding block. Each layer's self-attention input
        of the earlier tokens comes from the cache, which the new tokens then
        extend; the object queries are not decoded again.

        Args:
            tokens (Tensor): (B, T, C) new extra tokens.
            pos (Tensor): (B, T, C) their positional embedding.
            cache (dict): Filled by ``forward(..., cache=cache)``, extended here.

        Returns:
            Tensor: (B, T, C) the new tokens after the output norm (as
            ``query_embeds[-1]`` of :meth:`forward`).
        """
        for layer, entry in zip(self.layers, cache['layers']):
            tokens = layer.norms[0](layer.cross_attn(
                query=tokens, key=entry['memory'], value=entry['memory'],
                query_pos=pos, key_pos=entry['memory_pos'], attn_mask=None,
                key_padding_mask=None))
            entry['tokens'] = torch.cat([entry['tokens'], tokens], dim=1)
            entry['pos'] = torch.cat([entry['pos'], pos], dim=1)
            tokens = layer.self_attn(query=tokens, key=entry['tokens'], value=entry['tokens'],
                                     query_pos=pos, key_pos=entry['pos'])
            tokens = layer.norms[2](layer.ffn(layer.norms[1](tokens)))
        return self.decoder_norm(tokens)


def _keep_self_attn_input(entry: dict, module: nn.Module, args: tuple, kwargs: dict) -> None:
    """Forward pre-hook on a layer's self-attention: keep its input tokens and
    positions (the keys and values later appended tokens attend to)."""
    entry['tokens'], entry['pos'] = kwargs['query'], kwargs['query_pos']
