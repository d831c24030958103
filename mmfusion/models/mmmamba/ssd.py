"""Mamba-2 state-space duality (SSD) scan in pure PyTorch.

Per head, with a scalar decay per step (Dao & Gu, 2024)::

    a_t = exp(dt_t * A)                       (0 < a_t <= 1, A <= 0)
    H_t = a_t * H_{t-1} + dt_t * x_t B_t^T     (state: head_dim x state_dim)
    y_t = H_t C_t

With ``a == 1`` this is causal linear attention with keys ``B``, queries
``C`` and values ``dt * x``. Three ways to compute it, equal up to rounding
(tested):

* :func:`ssd_recurrent` - the token-by-token recurrence (the reference);
* :func:`ssd_step` - one step of it, for generation with a constant-size state;
* :func:`ssd_chunked` - the chunked algorithm: quadratic blocks inside each
  chunk, one state per chunk, a recurrence over chunk states and the
  state-to-output term. Any length: the tail is padded inside with ``dt = 0``
  (no decay, no input), which leaves outputs and the final state unchanged.

Shapes: ``x`` (B, L, H, P), ``dt`` (B, L, H) (already positive, e.g. after
softplus), ``A`` (H,), ``B`` and ``C`` (B, L, H, N), states (B, H, P, N).
Written here rather than imported: the reference implementation
(``mamba_ssm``'s ``ssd_minimal``) ships with a CUDA-only package, and its
Triton kernel needs a GPU; :func:`ssd_kernel` wraps that kernel (the mixer
picks it for CUDA tensors when ``mamba_ssm`` is installed).
"""
import functools
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def segment_sum(log_a: Tensor) -> Tensor:
    """``out[..., i, j] = sum(log_a[..., j+1 : i+1])`` for ``j <= i``, else -inf.

    Summed as a masked cumulative sum per column, not as a difference of two
    running sums, so long chunks lose no precision to cancellation.
    """
    length = log_a.shape[-1]
    strict_lower = torch.ones(length, length, dtype=torch.bool, device=log_a.device).tril(-1)
    cols = log_a[..., :, None].expand(*log_a.shape, length).masked_fill(~strict_lower, 0)
    out = cols.cumsum(dim=-2)
    lower = torch.ones(length, length, dtype=torch.bool, device=log_a.device).tril()
    return out.masked_fill(~lower, float('-inf'))


def _check(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor) -> None:
    b, length, h, _ = x.shape
    if dt.shape != (b, length, h) or A.shape != (h,) or B.shape[:3] != (b, length, h) \
            or C.shape != B.shape:
        raise ValueError(f'SSD shapes disagree: x {tuple(x.shape)}, dt {tuple(dt.shape)}, '
                         f'A {tuple(A.shape)}, B {tuple(B.shape)}, C {tuple(C.shape)}; expected '
                         'x (B, L, H, P), dt (B, L, H), A (H,), B = C (B, L, H, N)')


def ssd_step(state: Tensor, x: Tensor, dt: Tensor, A: Tensor, B: Tensor,
             C: Tensor) -> Tuple[Tensor, Tensor]:
    """One recurrence step. ``x`` (B, H, P), ``dt`` (B, H), ``B``/``C`` (B, H, N),
    ``state`` (B, H, P, N). Returns ``(y (B, H, P), new state)``."""
    decay = torch.exp(dt * A)[..., None, None]
    state = torch.addcmul(decay * state, (dt[..., None] * x)[..., :, None], B[..., None, :])
    return torch.matmul(state, C[..., None])[..., 0], state


def ssd_recurrent(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor,
                  initial_state: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """Token-by-token reference. Returns ``(y (B, L, H, P), final state)``."""
    _check(x, dt, A, B, C)
    b, length, h, p = x.shape
    state = x.new_zeros(b, h, p, B.shape[-1]) if initial_state is None else initial_state
    ys = []
    for t in range(length):
        y, state = ssd_step(state, x[:, t], dt[:, t], A, B[:, t], C[:, t])
        ys.append(y)
    return torch.stack(ys, dim=1), state


def ssd_chunked(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk_size: int = 64,
                initial_state: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """Chunked SSD scan. Returns ``(y (B, L, H, P), final state (B, H, P, N))``."""
    _check(x, dt, A, B, C)
    b, length, h, p = x.shape
    pad = -length % chunk_size
    if pad:
        x, B, C = (F.pad(t, (0, 0, 0, 0, 0, pad)) for t in (x, B, C))
        dt = F.pad(dt, (0, 0, 0, pad))
    chunks = x.shape[1] // chunk_size

    def split(t: Tensor) -> Tensor:  # (b, c*q, ...) -> (b, c, q, ...)
        return t.reshape(b, chunks, chunk_size, *t.shape[2:])

    xdt = split(x * dt[..., None])
    B, C = split(B), split(C)
    log_a = split(dt * A).permute(0, 3, 1, 2)  # (b, h, c, q)
    log_a_cum = log_a.cumsum(dim=-1)

    # 1. Inside each chunk: masked, decayed attention C_l . B_s.
    decay_in = torch.exp(segment_sum(log_a))  # (b, h, c, q, q)
    scores = torch.einsum('bclhn,bcshn->bhcls', C, B) * decay_in
    y = torch.einsum('bhcls,bcshp->bclhp', scores, xdt)

    # 2. Each chunk's contribution to the state at its end.
    decay_to_end = torch.exp(log_a_cum[..., -1:] - log_a_cum)  # (b, h, c, q)
    chunk_states = torch.einsum('bclhn,bhcl,bclhp->bchpn', B, decay_to_end, xdt)

    # 3. Recurrence over chunks: the state entering each chunk, and the final
    # one. A loop, linear in the number of chunks (ssd_minimal's segment-sum
    # matrix over chunks is quadratic in it).
    state = x.new_zeros(b, h, p, B.shape[-1]) if initial_state is None else initial_state
    chunk_decay = torch.exp(log_a_cum[..., -1]).permute(0, 2, 1)[..., None, None]  # (b,c,h,1,1)
    entering = []
    for c in range(chunks):
        entering.append(state)
        state = chunk_decay[:, c] * state + chunk_states[:, c]
    entering = torch.stack(entering, dim=1)
    final_state = state

    # 4. What the entering state contributes to each position of its chunk.
    y = y + torch.einsum('bclhn,bchpn,bhcl->bclhp', C, entering, torch.exp(log_a_cum))
    return y.reshape(b, chunks * chunk_size, h, p)[:, :length], final_state


@functools.lru_cache(maxsize=None)
def mamba_ssm_available() -> bool:
    """Whether ``mamba_ssm``'s Triton SSD kernel can be imported."""
    try:
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined  # noqa: F401
    except ImportError:
        return False
    return True


def ssd_kernel(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk_size: int = 64,
               initial_state: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """:func:`ssd_chunked` through ``mamba_ssm``'s fused CUDA/Triton kernel
    (same arguments and results; CUDA tensors only)."""
    from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
    y, final_state = mamba_chunk_scan_combined(
        x, dt, A, B, C, chunk_size=chunk_size, initial_states=initial_state,
        return_final_states=True)
    return y, final_state
