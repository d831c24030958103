"""The causal language-model stack shared by Zipper's towers and mmMamba's
decoders, and Zipper's registered tower built on it."""
from typing import Callable, Dict, List, Optional, Tuple

import torch.nn as nn
from torch import Tensor

from mmfusion.models.encoders import BaseEncoder
from mmfusion.models.layers import LlamaBlock, RMSNorm, RotaryEmbedding
from mmfusion.registry import MODELS

Caches = List[Dict[str, Tensor]]


class CausalLMStack:
    """Token embedding -> Llama-style blocks (RMSNorm, RoPE, grouped-query
    attention or another mixer, SwiGLU) -> final RMSNorm, built onto the
    ``nn.Module`` that mixes this in.

    The parts are attributes of the host (``embedding``, ``rope``,
    ``layers.<i>``, ``norm``), not of a sub-module, so parameter names, and
    with them checkpoints, are the host's own. The output layer is the
    host's: Zipper's towers tie it to the embedding, mmMamba's decoder has a
    separate ``head``.
    """

    def build_stack(self, vocab_size: int, dim: int, depth: int, num_heads: int, ffn_dim: int,
                    num_kv_heads: Optional[int], max_len: int,
                    mixer: Optional[Callable[[int], Optional[nn.Module]]] = None,
                    padding_idx: Optional[int] = None) -> None:
        """Create the parts; ``mixer(i)`` gives layer ``i`` a token mixer
        other than attention (None: attention)."""
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=padding_idx)
        self.rope = RotaryEmbedding(dim // num_heads, max_len)
        self.layers = nn.ModuleList(
            [LlamaBlock(dim, num_heads, ffn_dim, num_kv_heads,
                        mixer=mixer(i) if mixer is not None else None) for i in range(depth)])
        self.norm = RMSNorm(dim)

    def reset_stack_parameters(self) -> None:
        """Llama-style init: normal(0, 0.02) for every embedding and linear
        weight of the host (the stack's, its output layer's, a mixer's)."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)

    def run_layers(self, x: Tensor, padding_mask: Optional[Tensor] = None,
                   caches: Optional[Caches] = None) -> Tuple[Tensor, List[Tensor]]:
        """The blocks over embedded ``x`` (B, L, dim): the last output and
        every hidden state (the input, then each block's output).

        ``caches`` (one dict per layer, filled in place) continues a
        generation; ``padding_mask`` (B, L) is True at padding.
        """
        hidden_states = [x]
        for i, layer in enumerate(self.layers):
            x = layer(x, self.rope, padding_mask, None if caches is None else caches[i])
            hidden_states.append(x)
        return x, hidden_states

    def new_caches(self) -> Caches:
        """Empty per-layer generation state (filled by :meth:`run_layers`)."""
        return [{} for _ in self.layers]


@MODELS.register_module()
class CausalDecoderTower(CausalLMStack, BaseEncoder):
    """Token embedding -> Llama-style blocks (RMSNorm, RoPE, grouped-query
    attention, SwiGLU) -> RMSNorm -> next-token logits.

    A Zipper tower is pretrained alone on its modality, then fused with
    another tower by ``ZipperDecoder``, which runs the blocks one by one
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
        self.build_stack(vocab_size, dim, depth, num_heads, ffn_dim, num_kv_heads, max_len)
        self.lm_head = None if tie_embeddings else nn.Linear(dim, vocab_size, bias=False)
        self.reset_stack_parameters()
        self._apply_freeze()

    def embed(self, tokens: Tensor) -> Tensor:
        if tokens.numel():
            low, high = (int(t) for t in tokens.aminmax())
            if low < 0 or high >= self.vocab_size:
                raise ValueError(f'{type(self).__name__}: token ids must lie in [0, '
                                 f'{self.vocab_size}), got [{low}, {high}]')
        return self.embedding(tokens)

    def logits(self, hidden: Tensor) -> Tensor:
        hidden = self.norm(hidden)
        weight = self.embedding.weight if self.lm_head is None else self.lm_head.weight
        return hidden @ weight.t()

    def forward(self, tokens: Tensor, key_padding_mask: Optional[Tensor] = None,
                caches: Optional[Caches] = None) -> Dict:
        """
        Args:
            tokens (Tensor): (B, L) token ids, padding after each sequence.
            key_padding_mask (Tensor, optional): (B, L) bool, True at padding.
            caches (list[dict], optional): :meth:`new_caches`, for
                generation: ``tokens`` continue what they hold.

        Returns:
            dict: ``logits`` (B, L, vocab_size) predicting the next token, and
            ``hidden_states``: the embedding output then every block's
            output, each (B, L, dim).
        """
        x, hidden_states = self.run_layers(self.embed(tokens), key_padding_mask, caches)
        return dict(logits=self.logits(x), hidden_states=hidden_states)
