"""Greedy decoding, once for every autoregressive decoder of the package."""
from typing import Callable, Optional

import torch
from torch import Tensor


def greedy_decode(step: Callable[[Tensor], Tensor], prompt: Tensor, max_new_tokens: int,
                  eos_id: Optional[int], pad_id: int) -> Tensor:
    """Append the most likely token to ``prompt`` until ``eos_id`` or
    ``max_new_tokens``.

    ``step`` is called once with the whole prompt, then once per new token
    with that token alone, and returns the ``(B, V)`` logits of the token
    that follows. It keeps what it needs of the earlier calls (a key/value
    cache, a recurrent state), so decoding ``n`` tokens costs the prompt plus
    ``n - 1`` one-token steps. A decoder without a cache may re-run its
    whole prefix inside ``step``; the loop is the same.

    Args:
        step: ``(B, L) ids -> (B, V)`` next-token logits (see above).
        prompt (Tensor): (B, L0) long ids, the same length for every row.
        max_new_tokens (int): Tokens to append at most.
        eos_id (int, optional): A row is finished after it emits this id;
            ``None``: every row runs to ``max_new_tokens``.
        pad_id (int): Written after a row's ``eos_id``.

    Returns:
        Tensor: (B, L0 + n) ids, ``n <= max_new_tokens``: the prompt, then
        the generated tokens, ``pad_id`` after each row's ``eos_id``.

    The loop runs in ``torch.inference_mode`` (less per-operation overhead
    than ``no_grad``, which one-token steps of a small model feel); the ids
    are returned as an ordinary tensor, usable in autograd afterwards.
    """
    with torch.inference_mode():
        seq = _greedy_loop(step, prompt, max_new_tokens, eos_id, pad_id)
    return seq.clone()


def _greedy_loop(step: Callable[[Tensor], Tensor], prompt: Tensor, max_new_tokens: int,
                 eos_id: Optional[int], pad_id: int) -> Tensor:
    seq = prompt
    if max_new_tokens <= 0:
        return seq
    done = torch.zeros(prompt.shape[0], dtype=torch.bool, device=prompt.device)
    logits = step(prompt)
    for i in range(max_new_tokens):
        nxt = logits.argmax(-1).masked_fill(done, pad_id)
        seq = torch.cat([seq, nxt[:, None]], dim=1)
        if eos_id is not None:
            done |= nxt == eos_id
        if bool(done.all()) or i == max_new_tokens - 1:
            break
        logits = step(nxt[:, None])
    return seq
