"""Zipper (Zayats et al., 2024): unimodal decoder towers fused by gated
cross-attention. No public implementation exists; this follows the paper.

Each tower is a :class:`CausalDecoderTower` pretrained alone on its
modality. A *link* lets one tower (the query tower, e.g. text for ASR)
attend to another (the context tower, e.g. speech) after every ``every``-th
of its layers. The context is the context tower's hidden state at the same
relative depth, projected by the link from the context width to the query
width (the paper: linear). The paper also passes a tower's token embeddings
through a new non-linear input projection, ``h0 = ReLU(MLP(embedding))``;
here it is given to the context towers (by default), so that the output
tower keeps its pretrained input. The cross-attention output enters the
query tower's residual stream through ``tanh(gate)`` with the gate
initialised at 0, so an untrained fused model predicts exactly what the
unimodal output tower predicts.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule, ModuleDict
from torch import Tensor

from mmfusion.models.common.causal_lm import Caches
from mmfusion.models.layers import RMSNorm, cached_length, rotate_at
from mmfusion.registry import MODELS


class GatedCrossAttention(nn.Module):
    """``x + tanh(gate) * attn(norm(x), proj(context))``, the gate starting at 0.

    Args:
        dim (int): Query (own tower) width.
        context_dim (int): Context (other tower) width.
        num_heads (int): Attention heads; ``dim`` divides by it.
        position_rate (float, optional): Context positions per query
            position. Given, queries and keys are rotated (RoPE) at positions
            ``i * position_rate`` and ``j``, so attention can prefer the
            context near where a monotonic alignment would put query ``i``
            (e.g. about 1.65 speech units per character for ASR). ``None``
            (the paper): no positions, content only.
        context_norm (bool): RMS-normalise the context (the other tower's
            residual stream, whose scale grows with depth and training)
            before the context projection. Off (the paper): the projection
            reads the raw hidden states.
        context_proj (str): The map from the context width to ``dim``:
            ``'linear'`` (the paper's projection between modalities) or
            ``'mlp'`` (Linear, ReLU, Linear; not in the paper).
    """

    PROJECTIONS = ('linear', 'mlp')

    def __init__(self, dim: int, context_dim: int, num_heads: int,
                 position_rate: Optional[float] = None, context_norm: bool = False,
                 context_proj: str = 'linear') -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'cross-attention width {dim} must divide by num_heads {num_heads}')
        if context_proj not in self.PROJECTIONS:
            raise ValueError(f'context_proj must be one of {self.PROJECTIONS}, '
                             f'got {context_proj!r}')
        self.num_heads = num_heads
        self.position_rate = position_rate
        self.context_norm = RMSNorm(context_dim) if context_norm else nn.Identity()
        if context_proj == 'linear':
            self.context_proj = nn.Linear(context_dim, dim)
        else:
            self.context_proj = nn.Sequential(nn.Linear(context_dim, dim), nn.ReLU(inplace=True),
                                              nn.Linear(dim, dim))
        self.norm = RMSNorm(dim)
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.o_proj = nn.Linear(dim, dim, bias=False)
        self.gate = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, context: Tensor,
                context_padding_mask: Optional[Tensor] = None, offset: int = 0,
                cache: Optional[Dict[str, Tensor]] = None) -> Tensor:
        """x (B, L, dim) attends to all of context (B, S, context_dim);
        ``context_padding_mask`` (B, S) is True at padding; ``x`` holds query
        positions ``offset ..`` (a decoding step continues a sequence).

        ``cache`` (a dict, filled on the first call) keeps the context's keys
        and values, which do not change while the query tower decodes.
        """
        b, length, dim = x.shape
        heads, head_dim = self.num_heads, dim // self.num_heads
        if cache is not None and 'k' in cache:
            k, v = cache['k'], cache['v']
        else:
            ctx = self.context_proj(self.context_norm(context))
            k = self.k_proj(ctx).view(b, -1, heads, head_dim).transpose(1, 2)
            v = self.v_proj(ctx).view(b, -1, heads, head_dim).transpose(1, 2)
            if self.position_rate is not None:
                k = rotate_at(k, torch.arange(k.shape[2], device=x.device, dtype=torch.float64))
            if cache is not None:
                cache['k'], cache['v'] = k, v
        q = self.q_proj(self.norm(x)).view(b, length, heads, head_dim).transpose(1, 2)
        if self.position_rate is not None:
            q = rotate_at(q, torch.arange(offset, offset + length, device=x.device,
                                          dtype=torch.float64) * self.position_rate)
        mask = None if context_padding_mask is None else ~context_padding_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = self.o_proj(out.transpose(1, 2).reshape(b, length, dim))
        return x + torch.tanh(self.gate) * out


class InputProjection(nn.Sequential):
    """The paper's tower input projection ``h0 = ReLU(MLP(embedding))``: an
    MLP (Linear, ReLU, Linear at the tower's width) and a ReLU, (B, L, dim)
    -> (B, L, dim), between a tower's token embedding and its first block."""

    def __init__(self, dim: int) -> None:
        super().__init__(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, dim),
                         nn.ReLU(inplace=True))


def aligned_context_layer(query_layer: int, query_depth: int, context_depth: int) -> int:
    """Index into the context tower's hidden states (0 = embeddings, ``i`` =
    after block ``i``) at the relative depth of query block ``query_layer``
    (1-based), for towers of different depths."""
    return max(1, round(query_layer * context_depth / query_depth))


@MODELS.register_module()
class ZipperDecoder(BaseModule):
    """Towers by name, fused by gated cross-attention links.

    Args:
        towers (dict): name -> tower config (``CausalDecoderTower``), e.g.
            ``dict(text=dict(...), speech=dict(...))``. Freeze a tower with
            ``frozen=True`` in its config; ``None`` drops a tower inherited
            from a base config.
        links (list[dict]): each ``dict(query='text', context='speech',
            every=2, num_heads=4, position_rate=None, context_norm=False,
            context_proj='linear')``: cross-attention after query-tower
            blocks ``every, 2*every, ...`` (the other keys: see
            :class:`GatedCrossAttention`). Links must not form a cycle (a
            context tower runs completely before the towers that read it).
        input_proj (str | Sequence[str]): Towers whose embeddings pass the
            paper's :class:`InputProjection` (new, trained with the fusion):
            ``'context'`` (default) every tower a link reads, or a list of
            tower names (``[]``: none, each tower reads its pretrained
            embeddings unchanged).
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self, towers: Dict[str, dict], links: Sequence[dict],
                 input_proj: Union[str, Sequence[str]] = 'context',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        towers = {name: cfg for name, cfg in towers.items() if cfg is not None}
        if not towers:
            raise ValueError('ZipperDecoder needs at least one tower')
        # mmengine's ModuleDict: init_weights reaches each tower's init_cfg (Pretrained).
        self.towers = ModuleDict({name: MODELS.build(cfg) for name, cfg in towers.items()})
        self.links: List[Tuple[str, str, List[int]]] = []
        self.cross_attn = ModuleDict()
        for link in links:
            query, context = link['query'], link['context']
            for name in (query, context):
                if name not in self.towers:
                    raise KeyError(f'link {query!r} <- {context!r}: no tower named {name!r} '
                                   f'(towers: {sorted(self.towers)})')
            if query == context:
                raise ValueError(f'link of tower {query!r} to itself')
            every = int(link.get('every', 1))
            q_tower, c_tower = self.towers[query], self.towers[context]
            layers = list(range(every, q_tower.depth + 1, every))
            if not layers:
                raise ValueError(f'link {query!r} <- {context!r}: every={every} exceeds the '
                                 f'{q_tower.depth} blocks of {query!r}')
            for layer in layers:
                self.cross_attn[f'{query}_from_{context}_{layer}'] = GatedCrossAttention(
                    q_tower.dim, c_tower.dim, int(link.get('num_heads', 4)),
                    link.get('position_rate'), bool(link.get('context_norm', False)),
                    link.get('context_proj', 'linear'))
            self.links.append((query, context, layers))
        self.order = self._run_order()
        if input_proj == 'context':
            input_proj = sorted({c for _, c, _ in self.links})
        elif isinstance(input_proj, str):
            raise ValueError(f"input_proj must be 'context' or a list of tower names, "
                             f'got {input_proj!r}')
        for name in input_proj:
            if name not in self.towers:
                raise KeyError(f'input_proj: no tower named {name!r} '
                               f'(towers: {sorted(self.towers)})')
        # Only created when used, so configs without it keep their checkpoint keys.
        if input_proj:
            self.input_proj = ModuleDict(
                {name: InputProjection(self.towers[name].dim) for name in input_proj})
        else:
            self.input_proj = None

    def _run_order(self) -> List[str]:
        """Towers in an order where each context runs before its readers."""
        needs = {name: {c for q, c, _ in self.links if q == name} for name in self.towers}
        order: List[str] = []
        while len(order) < len(needs):
            ready = [n for n in needs if n not in order and needs[n] <= set(order)]
            if not ready:
                raise ValueError(f'Zipper links form a cycle: {[(q, c) for q, c, _ in self.links]}')
            order.extend(sorted(ready))
        return order

    def forward(self, tokens: Dict[str, Tensor],
                padding_masks: Optional[Dict[str, Tensor]] = None,
                context_outputs: Optional[Dict[str, Dict]] = None,
                caches: Optional[Dict[str, Caches]] = None) -> Dict[str, Dict]:
        """
        Args:
            tokens (dict): tower name -> (B, L_name) token ids. Towers left out
                are not run; links that need them are skipped.
            padding_masks (dict, optional): tower name -> (B, L_name) bool,
                True at padding.
            context_outputs (dict, optional): outputs of towers already run
                (as returned here), reused instead of run again, e.g. the
                speech tower's during step-by-step decoding of the text tower.
            caches (dict, optional): tower name -> its ``new_caches()``, for
                decoding: that tower's ``tokens`` continue the positions its
                cache holds, and its ``hidden_states`` are those of the new
                positions only.

        Returns:
            dict: tower name -> ``dict(logits, hidden_states)`` as
            :meth:`CausalDecoderTower.forward`, with the cross-attention applied
            (``hidden_states[0]`` after the tower's input projection, if any).
        """
        padding_masks = padding_masks or {}
        caches = caches or {}
        unknown = set(tokens) - set(self.towers)
        if unknown:
            raise KeyError(f'no tower named {sorted(unknown)} (towers: {sorted(self.towers)})')
        outputs: Dict[str, Dict] = dict(context_outputs or {})
        for name in self.order:
            if name not in tokens or name in outputs:
                continue
            tower = self.towers[name]
            mask = padding_masks.get(name)
            cache = caches.get(name)
            offset = cached_length(cache[0]) if cache is not None else 0
            reads = [(c, layers) for q, c, layers in self.links if q == name and c in outputs]
            x = tower.embed(tokens[name])
            if self.input_proj is not None and name in self.input_proj:
                x = self.input_proj[name](x)
            hidden_states = [x]
            for i, layer in enumerate(tower.layers, start=1):
                x = layer(x, tower.rope, mask, None if cache is None else cache[i - 1])
                for context, layers in reads:
                    if i in layers:
                        ctx_states = outputs[context]['hidden_states']
                        ctx = ctx_states[aligned_context_layer(i, tower.depth,
                                                               len(ctx_states) - 1)]
                        link_cache = None if cache is None else \
                            cache[i - 1].setdefault(f'from_{context}', {})
                        x = self.cross_attn[f'{name}_from_{context}_{i}'](
                            x, ctx, padding_masks.get(context), offset, link_cache)
                hidden_states.append(x)
            outputs[name] = dict(logits=tower.logits(x), hidden_states=hidden_states)
        return outputs
