"""Token sequences and variable-length batches, shared across families.

Special ids: every tokenizer of the package (``CharTokenizer``,
``WordTokenizer``) and every decoder that reads them put ``<pad>``, ``<s>``,
``</s>`` and ``<unk>`` first, at ids 0 to 3.

Conventions: a padded batch keeps each item's valid part first; ``lengths``
``(B,)`` long counts the valid steps; a *padding mask* is True at padding
(``~mask`` gives the valid steps).
"""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ('<pad>', '<s>', '</s>', '<unk>')


def next_token_loss(logits: Tensor, labels: Tensor) -> Dict[str, Tensor]:
    """Cross-entropy of (B, L, V) ``logits`` against (B, L) ``labels``,
    ``<pad>`` labels ignored; with the next-token accuracy for the log."""
    loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=PAD)
    acc = (logits.argmax(-1) == labels)[labels != PAD].float().mean()
    return dict(loss_ntp=loss, acc_ntp=acc.detach())


def token_noise(tokens: Tensor, prob: float, low: int, high: int,
                keep: Optional[Tensor] = None) -> Tensor:
    """Each token becomes a uniformly random id in ``[low, high)`` with
    probability ``prob``, except where ``keep`` is True (e.g. padding)."""
    hit = torch.rand(tokens.shape, device=tokens.device) < prob
    if keep is not None:
        hit &= ~keep
    return torch.where(hit, torch.randint_like(tokens, low, high), tokens)


# torch.compile: excluded, a Python loop over a list of variable-length tensors (a new list and
# new lengths every batch would recompile the frame).
@torch.compiler.disable
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
