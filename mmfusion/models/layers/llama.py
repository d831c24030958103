"""Llama-style decoder blocks: RMSNorm, rotary position embedding (RoPE),
grouped-query causal self-attention and a SwiGLU feed-forward, pre-norm.

Shared by the decoder towers of Zipper and the decoder-only teachers of
mmMamba. Written here rather than taken from transformers: those blocks are
tied to a model class, a config object and a cache object, while these take
plain tensors and expose the per-layer hidden states that fusion and
distillation need. Attention runs through ``F.scaled_dot_product_attention``.
"""
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class RMSNorm(nn.Module):
    """``x / rms(x) * weight`` over the last dimension (no mean subtraction)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype == torch.float32:  # one fused op (matters for token-by-token decoding)
            return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
        # Half precision: normalise in float32, scale in the input's dtype.
        return F.rms_norm(x.float(), (x.shape[-1],), None, self.eps).to(x.dtype) * self.weight


def rope_inv_freq(head_dim: int, theta: float = 10000.0, device=None) -> Tensor:
    """RoPE frequencies ``theta ** (-2i / head_dim)`` (head_dim / 2,), float64."""
    return theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64, device=device) / head_dim)


def rotate_at(x: Tensor, positions: Tensor, theta: float = 10000.0) -> Tensor:
    """RoPE (half-split layout, as :class:`RotaryEmbedding`) of ``x``
    (..., L, head_dim) at real-valued ``positions`` (L,), e.g. positions
    rescaled to another sequence's rate for cross-attention."""
    angles = torch.outer(positions.to(torch.float64), rope_inv_freq(x.shape[-1], theta, x.device))
    return _rotate(x, angles.cos().to(x.dtype), angles.sin().to(x.dtype))


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """``[x1 cos - x2 sin, x2 cos + x1 sin]`` for the halves ``x1, x2`` of ``x``
    and (L, head_dim / 2) tables."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class RotaryEmbedding(nn.Module):
    """RoPE tables for positions ``0 .. max_len - 1`` (half-split layout).

    Args:
        head_dim (int): Even per-head width.
        max_len (int): Longest sequence; longer ones are refused.
        theta (float): Frequency base.
    """

    def __init__(self, head_dim: int, max_len: int, theta: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f'RoPE needs an even head dimension, got {head_dim}')
        self.max_len = max_len
        angles = torch.outer(torch.arange(max_len, dtype=torch.float64),
                             rope_inv_freq(head_dim, theta))
        self.register_buffer('cos', angles.cos().float(), persistent=False)
        self.register_buffer('sin', angles.sin().float(), persistent=False)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """Rotate ``x`` (B, heads, L, head_dim) for positions offset .. offset + L - 1."""
        length = x.shape[-2]
        if offset + length > self.max_len:
            raise ValueError(f'sequence of {offset + length} positions exceeds the RoPE range '
                             f'max_len={self.max_len} of this model')
        return _rotate(x, self.cos[offset:offset + length].to(x.dtype),
                       self.sin[offset:offset + length].to(x.dtype))


class SwiGLU(nn.Module):
    """``down(silu(gate(x)) * up(x))``."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.gate = nn.Linear(dim, hidden_dim, bias=False)
        self.up = nn.Linear(dim, hidden_dim, bias=False)
        self.down = nn.Linear(hidden_dim, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class GroupedQueryAttention(nn.Module):
    """Causal self-attention with ``num_kv_heads`` key/value heads shared by
    groups of the ``num_heads`` query heads (``num_kv_heads == num_heads``:
    ordinary multi-head attention).

    Args:
        dim (int): Model width.
        num_heads (int): Query heads; ``dim`` must divide by it.
        num_kv_heads (int, optional): Key/value heads; divides ``num_heads``.
    """

    def __init__(self, dim: int, num_heads: int, num_kv_heads: Optional[int] = None) -> None:
        super().__init__()
        num_kv_heads = num_kv_heads or num_heads
        if dim % num_heads or num_heads % num_kv_heads:
            raise ValueError(f'dim {dim} must divide by num_heads {num_heads}, which must divide '
                             f'by num_kv_heads {num_kv_heads}')
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = dim // num_heads
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, num_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(dim, num_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x: Tensor, rope: RotaryEmbedding,
                key_padding_mask: Optional[Tensor] = None,
                cache: Optional[Dict[str, Tensor]] = None) -> Tensor:
        """
        Args:
            x (Tensor): (B, L, dim).
            rope (RotaryEmbedding): The tower's position tables.
            key_padding_mask (Tensor, optional): (B, L) bool, True at padding
                (over all keys, cached ones included). Padding is only ever
                at the end of a sequence, so the causal mask already keeps
                valid positions from seeing it; the mask is accepted for the
                padded rows' own sake (they then see only valid keys).
            cache (dict, optional): The key/value cache for generation,
                updated in place: ``k``/``v`` (B, num_kv_heads, T, head_dim)
                of the positions seen so far; ``x`` continues them. It grows
                by concatenation, as Hugging Face's ``DynamicCache`` does.
        """
        b, length, _ = x.shape
        q = self.q_proj(x).view(b, length, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, length, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, length, self.num_kv_heads, self.head_dim).transpose(1, 2)
        offset = 0 if cache is None else cached_length(cache)
        q, k = rope(q, offset), rope(k, offset)
        if cache is not None:
            if offset:
                k = torch.cat([cache['k'], k], dim=2)
                v = torch.cat([cache['v'], v], dim=2)
            cache['k'], cache['v'] = k, v
        # Query heads share key/value heads in groups, without copying them.
        gqa = dict(enable_gqa=self.num_heads != self.num_kv_heads)
        total = k.shape[2]
        if key_padding_mask is None and offset == 0:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, **gqa)
        elif key_padding_mask is None and length == 1:
            out = F.scaled_dot_product_attention(q, k, v, **gqa)
        else:
            allowed = torch.ones(length, total, dtype=torch.bool,
                                 device=x.device).tril(offset)[None]
            if key_padding_mask is not None:
                allowed = allowed & ~key_padding_mask[:, None, :]
            # A padded row may see no valid key only if the sequence is empty.
            allowed = allowed | ~allowed.any(-1, keepdim=True)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed[:, None], **gqa)
        return self.o_proj(out.transpose(1, 2).reshape(b, length, -1))


def cached_length(cache: Dict[str, Tensor]) -> int:
    """Positions held by one layer's :class:`GroupedQueryAttention` cache."""
    return cache['k'].shape[2] if 'k' in cache else 0


class LlamaBlock(nn.Module):
    """Pre-norm block: ``x + mixer(norm(x))`` then ``x + ffn(norm(x))``.

    The token mixer is grouped-query softmax attention (``attn``) unless a
    ``mixer`` module is given (e.g. mmMamba's Mamba-2 mixer, kept as ``ssm``
    so that parameter names say which kind a layer has). A mixer takes
    ``(x, rope, key_padding_mask, cache)`` and returns (B, L, dim).
    """

    def __init__(self, dim: int, num_heads: int, ffn_dim: int,
                 num_kv_heads: Optional[int] = None, eps: float = 1e-6,
                 mixer: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(dim, eps)
        if mixer is None:
            self.attn = GroupedQueryAttention(dim, num_heads, num_kv_heads)
        else:
            self.ssm = mixer
        self.ffn_norm = RMSNorm(dim, eps)
        self.ffn = SwiGLU(dim, ffn_dim)

    @property
    def mixer(self) -> nn.Module:
        return self.attn if hasattr(self, 'attn') else self.ssm

    def forward(self, x: Tensor, rope: RotaryEmbedding,
                key_padding_mask: Optional[Tensor] = None,
                cache: Optional[Dict[str, Tensor]] = None) -> Tensor:
        x = x + self.mixer(self.attn_norm(x), rope, key_padding_mask, cache)
        return x + self.ffn(self.ffn_norm(x))
