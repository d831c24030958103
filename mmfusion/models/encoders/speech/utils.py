"""Helpers shared by the speech encoders."""
import torch
from torch import Tensor

from mmfusion.models.common.sequence import lengths_to_padding_mask

__all__ = ['full_lengths', 'lengths_to_padding_mask']


def full_lengths(batch: Tensor) -> Tensor:
    """Lengths ``(B,)`` that mark every step of a ``(B, T, ...)`` batch valid."""
    return torch.full((batch.shape[0],), batch.shape[1], dtype=torch.long, device=batch.device)
