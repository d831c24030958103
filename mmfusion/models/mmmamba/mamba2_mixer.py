"""mmMamba's Mamba-2 token mixer, seeded from a softmax-attention layer."""
import math
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmfusion.models.layers import GroupedQueryAttention, RMSNorm

from .ssd import mamba_ssm_available, ssd_chunked, ssd_kernel, ssd_step


class Mamba2Mixer(nn.Module):
    """Multi-head Mamba-2 mixer in the layout of grouped-query attention
    (Liao et al., 2025, mmMamba).

    ``q_proj``/``k_proj``/``v_proj``/``o_proj`` have the shapes of
    :class:`GroupedQueryAttention`'s, and play the roles C, B, x and the output
    projection of the SSD (:mod:`.ssd`); key/value heads are repeated to all
    heads, so the state per head is ``head_dim x head_dim``. The new
    parameters:

    * ``conv1d``: depthwise causal convolution (``conv_kernel`` wide, 2 as
      in the paper) over the q/k/v channels, followed by SiLU;
    * ``dt_proj`` (input -> one step size per head) and ``dt_bias``:
      ``dt = softplus(dt_proj(u) + dt_bias)``;
    * ``A_log``: ``A = -exp(A_log)`` per head;
    * ``g_proj`` and ``g_norm``: output ``RMSNorm(y) * SiLU(g_proj(u))``.

    There is no rotary embedding on this path (nothing limits the length).

    :meth:`seed_from_attention` copies an attention layer's projections and
    sets the new parameters as the paper does: ``dt_proj`` zero, ``dt_bias``
    the inverse softplus of ``dt ~ logU[1e-3, 0.1]``, ``A = -e``, the
    convolution the identity on the current step, so that the seeded mixer
    starts close to (SiLU-featured, gated) linear attention.

    Args:
        dim (int): Model width.
        num_heads (int): Heads (C heads).
        num_kv_heads (int, optional): B/x heads, repeated to ``num_heads``.
        conv_kernel (int): Causal convolution width.
        chunk_size (int | str): SSD chunk length (any sequence length
            works); ``'auto'`` measures the fastest once per input shape
            (:func:`.ssd.tuned_chunk_size`). The recipes keep a fixed size:
            a measured choice can differ between machines and runs, and
            with it the rounding, which exact resume would notice.
        use_kernel (bool | str): ``'auto'`` uses ``mamba_ssm``'s fused kernel
            for CUDA tensors when it is installed; ``True`` the same, but
            refuses to build without ``mamba_ssm``; ``False`` always runs the
            pure-PyTorch scan. CPU tensors always use the pure-PyTorch scan.
        dt_range (tuple): Range of the initial step sizes.
        norm_eps (float): ``g_norm``'s epsilon (1e-5 as the official
            ``Mamba2_Attention.init_weights``; the gated norm's output at the
            first positions, where ``y`` is small, depends on it).
    """

    #: Parameters that softmax attention does not have (stage 1 trains these).
    NEW_PARAMS = ('conv1d', 'dt_proj', 'dt_bias', 'A_log', 'g_proj', 'g_norm')
    #: What the official stage 3 trains (``configs/experiment/
    #: distill_stage3_mmMamba.yaml``: ``trainable_weights``, matched as
    #: substrings by ``src/model/load_model.py``:
    #: ``load_and_convert_distill_stage3``): ``o_proj`` is commented out of
    #: the list, and ``dt_bias`` / ``A_log_bias`` match none of its entries.
    STAGE3_PARAMS = ('q_proj', 'k_proj', 'v_proj', 'conv1d', 'dt_proj', 'g_proj', 'g_norm')

    def __init__(self, dim: int, num_heads: int, num_kv_heads: Optional[int] = None,
                 conv_kernel: int = 2, chunk_size: int = 64, use_kernel='auto',
                 dt_range: Tuple[float, float] = (1e-3, 0.1), norm_eps: float = 1e-5) -> None:
        super().__init__()
        num_kv_heads = num_kv_heads or num_heads
        if dim % num_heads or num_heads % num_kv_heads:
            raise ValueError(f'dim {dim} must divide by num_heads {num_heads}, which must divide '
                             f'by num_kv_heads {num_kv_heads}')
        if use_kernel is True and not mamba_ssm_available():
            raise ImportError('use_kernel=True needs mamba_ssm (pip install mamba-ssm, CUDA)')
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        self.head_dim = dim // num_heads
        self.chunk_size = chunk_size
        self.use_kernel = use_kernel
        self.dt_range = dt_range
        kv_dim = num_kv_heads * self.head_dim
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, kv_dim, bias=False)
        self.v_proj = nn.Linear(dim, kv_dim, bias=False)
        self.o_proj = nn.Linear(dim, dim, bias=False)
        self.conv_channels = dim + 2 * kv_dim
        self.conv1d = nn.Conv1d(self.conv_channels, self.conv_channels, conv_kernel,
                                groups=self.conv_channels)
        self.dt_proj = nn.Linear(dim, num_heads, bias=False)
        self.dt_bias = nn.Parameter(torch.zeros(num_heads))
        self.A_log = nn.Parameter(torch.ones(num_heads))
        self.g_proj = nn.Linear(dim, dim, bias=False)
        self.g_norm = RMSNorm(self.head_dim, norm_eps)
        # Each head's key/value head (heads share them in groups).
        self.register_buffer('kv_head_of', torch.arange(num_heads) // (num_heads // num_kv_heads),
                             persistent=False)
        self.reset_new_parameters()

    @torch.no_grad()
    def reset_new_parameters(self) -> None:
        """The paper's initialisation of the parameters attention lacks."""
        self.conv1d.weight.zero_()
        self.conv1d.weight[:, 0, -1] = 1.0  # identity on the current step
        self.conv1d.bias.zero_()
        self.dt_proj.weight.zero_()
        lo, hi = (math.log(v) for v in self.dt_range)
        dt = torch.exp(torch.rand(self.num_heads) * (hi - lo) + lo)
        self.dt_bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)
        self.A_log.fill_(1.0)  # A = -e
        nn.init.xavier_uniform_(self.g_proj.weight, gain=2 ** -2.5)
        self.g_norm.weight.fill_(1.0)

    @torch.no_grad()
    def seed_from_attention(self, attn: GroupedQueryAttention) -> 'Mamba2Mixer':
        """W_Q -> C, W_K -> B, W_V -> x, W_O kept; new parameters reset."""
        if (attn.num_heads, attn.num_kv_heads, attn.head_dim) != \
                (self.num_heads, self.num_kv_heads, self.head_dim):
            raise ValueError(
                f'cannot seed a mixer with {self.num_heads} heads / {self.num_kv_heads} kv heads '
                f'/ head dim {self.head_dim} from attention with {attn.num_heads} / '
                f'{attn.num_kv_heads} / {attn.head_dim}')
        for name in ('q_proj', 'k_proj', 'v_proj', 'o_proj'):
            getattr(self, name).weight.copy_(getattr(attn, name).weight)
        self.reset_new_parameters()
        return self

    def _conv(self, qkv: Tensor, cache: Optional[Dict[str, Tensor]]) -> Tensor:
        """Causal depthwise conv over time of (B, L, channels); the last
        ``kernel - 1`` inputs are the cache's ``conv`` state."""
        qkv = qkv.transpose(1, 2)
        width = self.conv1d.kernel_size[0] - 1
        if cache is not None and 'conv' in cache:
            prefix = cache['conv']
        else:
            prefix = qkv.new_zeros(qkv.shape[0], qkv.shape[1], width)
        padded = torch.cat([prefix, qkv], dim=2)
        if cache is not None:
            # A copy: a view would keep the whole prefill input alive.
            cache['conv'] = padded[..., padded.shape[2] - width:].clone()
        out = F.conv1d(padded, self.conv1d.weight, self.conv1d.bias, groups=self.conv_channels)
        return F.silu(out).transpose(1, 2)

    def _scan(self, x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor,
              state: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        if self.use_kernel and x.is_cuda and mamba_ssm_available():
            # The fused kernel is tuned for mamba_ssm's default chunk of 256.
            chunk = 256 if self.chunk_size == 'auto' else self.chunk_size
            return ssd_kernel(x, dt, A, B, C, chunk, state)
        return ssd_chunked(x, dt, A, B, C, self.chunk_size, state)

    def _step_params(self) -> Tuple[Tensor, Tensor, Tensor]:
        """For :meth:`_decode_step`: the q/k/v/gate/dt projections stacked
        into one matrix, its bias (``dt_bias`` on the dt rows) and ``A``.
        Without gradients they are kept until a parameter changes (its
        version counter)."""
        params = [self.q_proj.weight, self.k_proj.weight, self.v_proj.weight,
                  self.g_proj.weight, self.dt_proj.weight, self.dt_bias, self.A_log]

        def build():
            weight = torch.cat(params[:5])
            bias = F.pad(self.dt_bias, (weight.shape[0] - self.num_heads, 0))
            return weight, bias, -torch.exp(self.A_log)

        if torch.is_grad_enabled():
            return build()
        key = tuple((p.data_ptr(), p._version) for p in params)
        if getattr(self, '_step_key', None) != key:
            with torch.no_grad():
                self._step_cache = build()
            self._step_key = key
        return self._step_cache

    def _decode_step(self, u: Tensor, cache: Dict[str, Tensor]) -> Tensor:
        """:meth:`forward` for one new token after a prefill, in fewer, fused
        operations (token-by-token decoding is bound by per-operation
        overhead): one matrix product for the q/k/v/gate/dt projections, the
        convolution as a weighted sum over its window, kv heads indexed
        instead of copied. Equal to the general path (tested)."""
        b, _, dim = u.shape
        kv_dim = self.num_kv_heads * self.head_dim
        weight, bias, A = self._step_params()
        proj = F.linear(u[:, 0], weight, bias)
        # q, k, v come first and contiguous: the convolution's new input column.
        window = torch.cat([cache['conv'], proj[:, :self.conv_channels, None]], dim=2)
        cache['conv'] = window[..., 1:]
        qkv = F.silu((window * self.conv1d.weight[:, 0]).sum(-1) + self.conv1d.bias)
        q, k, v = qkv.split([dim, kv_dim, kv_dim], dim=-1)
        g, dt = proj[:, self.conv_channels:].split([dim, self.num_heads], dim=-1)
        C = q.view(b, self.num_heads, self.head_dim)
        B = k.view(b, self.num_kv_heads, self.head_dim)[:, self.kv_head_of]
        x = v.view(b, self.num_kv_heads, self.head_dim)[:, self.kv_head_of]
        y, cache['ssm'] = ssd_step(cache['ssm'], x, F.softplus(dt), A, B, C)
        gate = F.silu(g).view(b, self.num_heads, self.head_dim)
        return self.o_proj((self.g_norm(y) * gate).reshape(b, 1, dim))

    def forward(self, u: Tensor, rope=None, key_padding_mask: Optional[Tensor] = None,
                cache: Optional[Dict[str, Tensor]] = None) -> Tensor:
        """
        Args:
            u (Tensor): (B, L, dim).
            rope: Ignored (the attention signature; no positions here).
            key_padding_mask: Ignored: padding is only ever at the end of a
                sequence and the scan is causal, so it cannot reach valid
                positions.
            cache (dict, optional): The recurrent state for generation,
                updated in place: ``conv`` (B, channels, kernel - 1) and
                ``ssm`` (B, heads, head_dim, head_dim). Its size does not
                grow with the sequence.
        """
        if u.shape[1] == 1 and cache is not None and 'ssm' in cache:
            return self._decode_step(u, cache)
        return self.o_proj(self.heads_output(u, cache))

    def heads_output(self, u: Tensor, cache: Optional[Dict[str, Tensor]] = None) -> Tensor:
        """The gated per-head outputs ``RMSNorm(y) * SiLU(g_proj(u))`` before
        ``o_proj``, heads concatenated: (B, L, dim) from ``u`` (B, L, dim).

        mmMamba's stage 1/2 loss compares these with the teacher attention's
        per-head outputs before its output projection (``Mamba2_Attention.
        forward`` returns them as ``(y_pred, _y_true)``, shaped (B, heads, L,
        head_dim), in ``src/model/linear_attention/mamba2.py``).
        """
        b, length, dim = u.shape
        kv_dim = self.num_kv_heads * self.head_dim
        qkv = self._conv(torch.cat([self.q_proj(u), self.k_proj(u), self.v_proj(u)], -1), cache)
        q, k, v = qkv.split([dim, kv_dim, kv_dim], dim=-1)
        group = self.num_heads // self.num_kv_heads
        q = q.reshape(b, length, self.num_heads, self.head_dim)
        k = k.reshape(b, length, self.num_kv_heads, self.head_dim).repeat_interleave(group, 2)
        v = v.reshape(b, length, self.num_kv_heads, self.head_dim).repeat_interleave(group, 2)
        dt = F.softplus(self.dt_proj(u) + self.dt_bias)
        A = -torch.exp(self.A_log)
        state = None if cache is None else cache.get('ssm')
        y, state = self._scan(v, dt, A, k, q, state)
        if cache is not None:
            cache['ssm'] = state
        gate = F.silu(self.g_proj(u)).reshape(b, length, self.num_heads, self.head_dim)
        return (self.g_norm(y) * gate).reshape(b, length, dim)
