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
import logging
import time
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
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


#: Largest decay inside one chunk (``-sum(dt * A)`` over the chunk) for
#: which :func:`ssd_chunked` factors the decay as ``exp(cum_l) * exp(-cum_s)``:
#: ``exp(64)`` ~ 6e27 leaves fp32 ten orders of magnitude of headroom for the
#: products with ``B``. Chunks decaying more take the masked-difference form.
MAX_FACTORED_DECAY = 64.0


def _head_major(t: Tensor, factor: Tensor, out: Optional[Tensor]) -> Tensor:
    """``t`` (b, c*q, h, k) times ``factor`` (b, h, c, q), laid out head-major
    as (b*h*c, q, k) so that each (head, chunk) block is one matrix of a
    batched product. Written into ``out`` (b, h, c, q, k) when given: one pass
    for the transpose and the scaling (``out=`` has no autograd)."""
    b, h, c, q = factor.shape
    src = t.view(b, c, q, h, t.shape[-1]).permute(0, 3, 1, 2, 4)
    if out is None:
        return (src * factor[..., None]).reshape(b * h * c, q, t.shape[-1])
    torch.mul(src, factor[..., None], out=out)
    return out.view(b * h * c, q, t.shape[-1])


def ssd_chunked(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk_size=64,
                initial_state: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """Chunked SSD scan. Returns ``(y (B, L, H, P), final state (B, H, P, N))``.

    Built around batched matrix products over (head, chunk) blocks, with no
    decay tensor larger than the inputs: with ``cum`` the cumulative
    ``dt * A`` inside a chunk, the decay from position ``s`` to ``l`` is
    ``exp(cum_l) * exp(-cum_s)``, so it folds into ``C~ = C exp(cum)`` and
    ``B~ = B exp(-cum)`` and the in-chunk term is ``tril(C~ B~^T) (x dt)``.
    Each chunk's state is ``decay_chunk * B~^T (x dt)``, the state entering a
    chunk comes from a recurrence over chunks, and its output term is
    ``C~ state^T`` (one ``baddbmm`` with the in-chunk term). Where a chunk
    decays by more than :data:`MAX_FACTORED_DECAY` (``exp(-cum)`` would
    overflow), the chunked form with masked decay differences is used
    instead (same result).

    ``chunk_size='auto'`` picks the fastest of :data:`CHUNK_CANDIDATES` for
    this shape by one measurement (:func:`tuned_chunk_size`); the results of
    different chunk sizes differ only by rounding.
    """
    _check(x, dt, A, B, C)
    if chunk_size == 'auto':
        chunk_size = tuned_chunk_size(x, dt, A, B, C, initial_state)
    b, length, h, p = x.shape
    n = B.shape[-1]
    q = chunk_size
    pad = -length % q
    if pad:
        x, B, C = (F.pad(t, (0, 0, 0, 0, 0, pad)) for t in (x, B, C))
        dt = F.pad(dt, (0, 0, 0, pad))
    c = x.shape[1] // q
    # Autograd needs out-of-place ops; inference writes into preallocated buffers.
    grad = torch.is_grad_enabled() and any(
        t.requires_grad for t in (x, dt, A, B, C, initial_state) if t is not None)

    def buffer(k: int) -> Optional[Tensor]:
        return None if grad else x.new_empty(b, h, c, q, k)

    log_a = (dt * A).transpose(1, 2).reshape(b, h, c, q)
    cum = log_a.cumsum(-1)  # (b, h, c, q)
    decay = torch.exp(cum[..., -1])[..., None, None]  # each chunk's total, (b, h, c, 1, 1)
    xdt = _head_major(x, dt.transpose(1, 2).reshape(b, h, c, q), buffer(p))
    Ct = _head_major(C, torch.exp(cum), buffer(n))
    if bool((cum[..., -1] >= -MAX_FACTORED_DECAY).all()):
        Bt = _head_major(B, torch.exp(-cum), buffer(n))
        scores = torch.bmm(Ct, Bt.transpose(1, 2)).tril_()
        states = torch.bmm(Bt.transpose(1, 2), xdt).view(b, h, c, n, p) * decay
    else:  # the decay inside a chunk as masked differences of ``cum``
        ones = torch.ones_like(cum)
        scores = torch.bmm(_head_major(C, ones, buffer(n)), _head_major(B, ones, None)
                           .transpose(1, 2)) * torch.exp(segment_sum(log_a)).flatten(0, 2)
        to_end = _head_major(B, torch.exp(cum[..., -1:] - cum), buffer(n))
        states = torch.bmm(to_end.transpose(1, 2), xdt).view(b, h, c, n, p)

    # The state entering each chunk, stored as (n, p) for the output product.
    # A loop, linear in the number of chunks (ssd_minimal's segment-sum
    # matrix over chunks is quadratic in it).
    state = x.new_zeros(b, h, n, p) if initial_state is None \
        else initial_state.transpose(-1, -2)
    states, decays = states.unbind(2), decay.unbind(2)
    if grad:
        entering = []
        for i in range(c):
            entering.append(state)
            state = torch.addcmul(states[i], decays[i], state)
        entering = torch.stack(entering, dim=2)
    else:
        entering = x.new_empty(b, h, c, n, p)
        slots = entering.unbind(2)
        slots[0].copy_(state)
        for i in range(c - 1):
            torch.addcmul(states[i], decays[i], slots[i], out=slots[i + 1])
        state = torch.addcmul(states[-1], decays[-1], slots[-1])
    y = torch.baddbmm(torch.bmm(scores, xdt), Ct, entering.view(b * h * c, n, p))
    return y.view(b, h, c * q, p).transpose(1, 2)[:, :length], state.transpose(-1, -2)


#: Chunk sizes :func:`tuned_chunk_size` measures.
CHUNK_CANDIDATES = (32, 64, 128, 256)
_TUNED_CHUNKS: Dict[tuple, int] = {}


def tuned_chunk_size(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor,
                     initial_state: Optional[Tensor] = None) -> int:
    """The fastest chunk size of :data:`CHUNK_CANDIDATES` for these inputs,
    measured once per (device, dtype, batch, heads, head_dim, state_dim,
    length rounded up to a power of two, threads) and remembered for the
    process. Measured on the inputs themselves (detached, no gradients), so
    the decay they carry takes the same branch as the real call."""
    b, length, h, p = x.shape
    bucket = 1 << max(length - 1, 1).bit_length()
    key = (x.device.type, x.dtype, b, h, p, B.shape[-1], bucket, torch.get_num_threads())
    if key not in _TUNED_CHUNKS:
        candidates = [q for q in CHUNK_CANDIDATES if q <= bucket] or [CHUNK_CANDIDATES[0]]
        args = [t.detach() for t in (x, dt, A, B, C)]
        state = None if initial_state is None else initial_state.detach()
        seconds = {}
        with torch.no_grad():
            for q in candidates:
                best = float('inf')
                for _ in range(2):  # the first run also warms the allocator
                    _synchronize(x.device)
                    start = time.perf_counter()
                    ssd_chunked(*args, chunk_size=q, initial_state=state)
                    _synchronize(x.device)
                    best = min(best, time.perf_counter() - start)
                seconds[q] = best
        _TUNED_CHUNKS[key] = min(seconds, key=seconds.get)
        print_log(f'SSD chunk size for (batch {b}, length <= {bucket}, heads {h}, head_dim {p}, '
                  f'state {B.shape[-1]}, {key[-1]} threads): {_TUNED_CHUNKS[key]} (measured '
                  + ', '.join(f'{q}: {s * 1e3:.1f} ms' for q, s in seconds.items()) + ')',
                  logger='current', level=logging.DEBUG)
    return _TUNED_CHUNKS[key]


def _synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


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
