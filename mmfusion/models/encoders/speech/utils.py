"""Helpers shared by the speech encoders."""
from typing import Optional

import torch
from torch import Tensor


def lengths_to_padding_mask(lengths: Tensor, max_len: Optional[int] = None) -> Tensor:
    """Valid lengths ``(B,)`` -> padding mask ``(B, max_len)``, True at padding.

    ``max_len`` defaults to ``lengths.max()``; pass the padded length of the
    features so the mask matches them even when every item is shorter.
    """
    if lengths.dim() != 1:
        raise ValueError(f'lengths must be 1-D (B,), got shape {tuple(lengths.shape)}')
    if max_len is None:
        max_len = int(lengths.max()) if lengths.numel() else 0
    steps = torch.arange(max_len, device=lengths.device)
    return steps[None, :] >= lengths[:, None]


def full_lengths(batch: Tensor) -> Tensor:
    """Lengths ``(B,)`` that mark every step of a ``(B, T, ...)`` batch valid."""
    return torch.full((batch.shape[0],), batch.shape[1], dtype=torch.long, device=batch.device)
