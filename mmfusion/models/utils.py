"""Helpers for variable-length batches shared across modalities.

Conventions: a padded batch keeps each item's valid part first; ``lengths``
``(B,)`` long counts the valid steps; a *padding mask* is True at padding
(``~mask`` gives the valid steps).
"""
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor


def pad_sequences(seqs: Sequence[Tensor], pad_value: float = 0.0) -> Tuple[Tensor, Tensor]:
    """Stack ``(L_i, ...)`` tensors into ``(B, max L_i, ...)`` padded after each item.

    Args:
        seqs: non-empty; same trailing shape, dtype and device.
        pad_value: value of the padded steps.

    Returns:
        ``(padded, lengths)``: the batch (dtype and device of ``seqs[0]``)
        and ``(B,)`` long lengths on the same device.
    """
    if len(seqs) == 0:
        raise ValueError('pad_sequences got no sequences')
    trailing = {tuple(s.shape[1:]) for s in seqs}
    if len(trailing) > 1:
        raise ValueError(f'pad_sequences: the sequences have different trailing shapes '
                         f'{[tuple(s.shape) for s in seqs]}')
    first = seqs[0]
    lengths = torch.tensor([s.shape[0] for s in seqs], dtype=torch.long, device=first.device)
    padded = first.new_full((len(seqs), int(lengths.max()), *first.shape[1:]), pad_value)
    for i, seq in enumerate(seqs):
        padded[i, :seq.shape[0]] = seq
    return padded, lengths


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
