"""A causal decoder tower over one modality's tokens (text or speech units)."""
from typing import Dict, List, Optional

import torch.nn as nn
from torch import Tensor

from mmfusion.models.encoders import BaseEncoder
from mmfusion.models.layers import LlamaBlock, RMSNorm, RotaryEmbedding
from mmfusion.registry import MODELS


@MODELS.register_module()
class CausalDecoderTower(BaseEncoder):
    """Token embedding -> Llama-style blocks (RMSNorm, RoPE, grouped-query
    attention, SwiGLU) -> RMSNorm -> next-token logits.

    A Zipper tower is pretrained alone on its modality, then fused with
    another tower by :class:`ZipperDecoder`, which runs the blocks one by one
    (``embed``, ``layers``, ``logits``) to interleave cross-attention. It is a
    :class:`BaseEncoder`, so ``frozen=True`` (and ``trainable_modules``,
    ``lora``, ``frozen_dtype``) freezes it as any encoder.

    Args:
        vocab_size (int): Tokens of the modality (text pieces or speech units).
        dim (int): Width.
        depth (int): Number of blocks.
        num_heads (int): Query heads.
        ffn_dim (int): SwiGLU hidden width.
        num_kv_heads (int, optional): Key/value heads (grouped-query attention).
        max_len (int): Longest sequence (RoPE range).
        tie_embeddings (bool): Output layer shares the embedding matrix.
        frozen (bool): Trainable by default (towers are trained here).
        **kwargs: :class:`BaseEncoder` options.
    """

    def __init__(self,
                 vocab_size: int,
                 dim: int = 256,
                 depth: int = 4,
                 num_heads: int = 4,
                 ffn_dim: int = 704,
                 num_kv_heads: Optional[int] = None,
                 max_len: int = 1024,
                 tie_embeddings: bool = True,
                 frozen: bool = False,
                 **kwargs) -> None:
        super().__init__(frozen=frozen, **kwargs)
        self.vocab_size = vocab_size
        self.dim = dim
        self.depth = depth
        self.embedding = nn.Embedding(vocab_size, dim)
        self.rope = RotaryEmbedding(dim // num_heads, max_len)
        self.layers = nn.ModuleList(
            [LlamaBlock(dim, num_heads, ffn_dim, num_kv_heads) for _ in range(depth)])
        self.norm = RMSNorm(dim)
        self.lm_head = None if tie_embeddings else nn.Linear(dim, vocab_size, bias=False)
        self.reset_parameters()
        self._apply_freeze()

    def reset_parameters(self) -> None:
        """Llama-style init: normal(0, 0.02) for embeddings and projections."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)

    def embed(self, tokens: Tensor) -> Tensor:
        if tokens.numel() and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
            raise ValueError(f'{type(self).__name__}: token ids must lie in [0, '
                             f'{self.vocab_size}), got [{int(tokens.min())}, {int(tokens.max())}]')
        return self.embedding(tokens)

    def logits(self, hidden: Tensor) -> Tensor:
        hidden = self.norm(hidden)
        weight = self.embedding.weight if self.lm_head is None else self.lm_head.weight
        return hidden @ weight.t()

    def forward(self, tokens: Tensor, key_padding_mask: Optional[Tensor] = None) -> Dict:
        """
        Args:
            tokens (Tensor): (B, L) token ids, padding after each sequence.
            key_padding_mask (Tensor, optional): (B, L) bool, True at padding.

        Returns:
            dict: ``logits`` (B, L, vocab_size) predicting the next token, and
            ``hidden_states``: the embedding output then every block's
            output, each (B, L, dim).
        """
        x = self.embed(tokens)
        hidden_states: List[Tensor] = [x]
        for layer in self.layers:
            x = layer(x, self.rope, key_padding_mask)
            hidden_states.append(x)
        return dict(logits=self.logits(x), hidden_states=hidden_states)
