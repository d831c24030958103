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
import math
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
    """``t`` (b, g*q, h, k) times ``factor`` (b, h, g, q), laid out head-major
    as (b*h*g, q, k) so that each (head, chunk) block is one matrix of a
    batched product. Written into ``out`` when given (a buffer of at least
    that many elements): one pass for the transpose and the scaling
    (``out=`` has no autograd)."""
    b, h, g, q = factor.shape
    k = t.shape[-1]
    src = t.view(b, g, q, h, k).permute(0, 3, 1, 2, 4)
    return torch.mul(src, factor[..., None], out=_slot(out, b, h, g, q, k)).reshape(b * h * g, q, k)


def _slot(buffer: Optional[Tensor], *shape: int) -> Optional[Tensor]:
    """The start of the flat ``buffer`` viewed as ``shape`` (``None`` without
    a buffer: the op then allocates, as autograd needs)."""
    return None if buffer is None else buffer[:math.prod(shape)].view(shape)


#: Bytes of intermediates :func:`ssd_chunked` keeps per block of chunks (the
#: head-major ``x dt``, ``C~``, ``B~``, scores and outputs of the block): small
#: enough to stay in cache between the products that use them. Measured on 2
#: EPYC cores (32 MB L3) at L 16K, 8 heads, P = N = 32, chunk 64: blocks of
#: 1024 tokens (6 MB) 19 ms, 2048 tokens 32 ms, one block for the whole
#: sequence (~100 MB, every pass a trip to memory) 70 ms; at 16 heads of 64,
#: the best blocks were 128-512 tokens, again 2-9 MB.
BLOCK_BYTES = 6 * 2 ** 20


def ssd_chunked(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk_size=64,
                initial_state: Optional[Tensor] = None,
                block_chunks: Optional[int] = None) -> Tuple[Tensor, Tensor]:
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

    The chunks are processed ``block_chunks`` at a time, carrying the state
    from block to block, so that the intermediates of one block stay in cache
    (by default as many as fit :data:`BLOCK_BYTES`; under autograd, all of
    them).

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
    # Autograd needs out-of-place ops; inference writes into buffers reused
    # from block to block.
    grad = torch.is_grad_enabled() and any(
        t.requires_grad for t in (x, dt, A, B, C, initial_state) if t is not None)
    if block_chunks is None:
        # Under autograd one block: the backward of many small blocks costs
        # more than the cache saves (forward + backward at 16K, 8 heads of
        # 32: 1.7x slower in 6 MB blocks).
        block_chunks = c if grad else \
            BLOCK_BYTES // (x.element_size() * b * h * q * (2 * p + 2 * n + q))
    per_block = min(max(block_chunks, 1), c)

    def buffer(*shape: int) -> Optional[Tensor]:
        return None if grad else x.new_empty(b * h * per_block * math.prod(shape))

    xdt_buf, ct_buf, bt_buf = buffer(q, p), buffer(q, n), buffer(q, n)
    scores_buf, y_buf, entering_buf = buffer(q, q), buffer(q, p), buffer(n, p)
    dt_hm = dt.transpose(1, 2).reshape(b, h, c, q)
    log_a = dt_hm * A[:, None, None]
    cum = log_a.cumsum(-1)  # (b, h, c, q)
    decay = torch.exp(cum[..., -1])[..., None, None]  # each chunk's total, (b, h, c, 1, 1)
    factored = bool((cum[..., -1] >= -MAX_FACTORED_DECAY).all())
    decay_from_start = torch.exp(cum)  # <= 1: never overflows
    decay_to_start = torch.exp(-cum) if factored else None
    state = x.new_zeros(b, h, n, p) if initial_state is None \
        else initial_state.transpose(-1, -2)  # stored as (n, p) for the output product
    y = [] if grad else x.new_empty(b, c * q, h, p)
    for first in range(0, c, per_block):
        g = min(per_block, c - first)
        chunks, tokens = slice(first, first + g), slice(first * q, (first + g) * q)
        xdt = _head_major(x[:, tokens], dt_hm[:, :, chunks], xdt_buf)
        Ct = _head_major(C[:, tokens], decay_from_start[:, :, chunks], ct_buf)
        if factored:
            Bt = _head_major(B[:, tokens], decay_to_start[:, :, chunks], bt_buf)
            scores = torch.bmm(Ct, Bt.transpose(1, 2), out=_slot(scores_buf, b * h * g, q, q))
            scores = scores.tril_()
            states = torch.bmm(Bt.transpose(1, 2), xdt).view(b, h, g, n, p)
            states = states * decay[:, :, chunks]
        else:  # the decay inside a chunk as masked differences of ``cum``
            cum_blk = cum[:, :, chunks]
            ones = torch.ones_like(cum_blk)
            scores = torch.bmm(_head_major(C[:, tokens], ones, None),
                               _head_major(B[:, tokens], ones, None).transpose(1, 2))
            scores = scores * torch.exp(segment_sum(log_a[:, :, chunks])).flatten(0, 2)
            to_end = _head_major(B[:, tokens], torch.exp(cum_blk[..., -1:] - cum_blk), bt_buf)
            states = torch.bmm(to_end.transpose(1, 2), xdt).view(b, h, g, n, p)
        # The state entering each chunk: a recurrence over chunks, linear in
        # their number (ssd_minimal's segment-sum matrix over chunks is
        # quadratic in it).
        states, decays = states.unbind(2), decay[:, :, chunks].unbind(2)
        if grad:
            entering = []
            for i in range(g):
                entering.append(state)
                state = torch.addcmul(states[i], decays[i], state)
            entering = torch.stack(entering, dim=2)
        else:
            entering = _slot(entering_buf, b, h, g, n, p)
            slots = entering.unbind(2)
            slots[0].copy_(state)
            for i in range(g - 1):
                torch.addcmul(states[i], decays[i], slots[i], out=slots[i + 1])
            state = torch.addcmul(states[-1], decays[-1], slots[-1])
        # In place even under autograd: bmm's backward needs its inputs only.
        y_blk = torch.bmm(scores, xdt, out=_slot(y_buf, b * h * g, q, p))
        y_blk = y_blk.baddbmm_(Ct, entering.view(b * h * g, n, p))
        y_blk = y_blk.view(b, h, g * q, p)
        if grad:
            y.append(y_blk)
        else:
            y[:, tokens].copy_(y_blk.transpose(1, 2))
    y = torch.cat(y, dim=2).transpose(1, 2) if grad else y
    return y[:, :length], state.transpose(-1, -2)


#: Chunk sizes :func:`tuned_chunk_size` measures, and how many times each.
CHUNK_CANDIDATES = (32, 64, 128, 256)
TUNING_ROUNDS = 3
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
        seconds = {q: float('inf') for q in candidates}
        with torch.no_grad():
            # Best of TUNING_ROUNDS, the candidates taking turns, so that a
            # drift of the machine does not favour one (the first round also
            # warms the allocator).
            for _ in range(TUNING_ROUNDS):
                for q in candidates:
                    _synchronize(x.device)
                    start = time.perf_counter()
                    ssd_chunked(*args, chunk_size=q, initial_state=state)
                    _synchronize(x.device)
                    seconds[q] = min(seconds[q], time.perf_counter() - start)
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
