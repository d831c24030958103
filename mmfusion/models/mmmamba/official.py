"""The official mmMamba / HoVLE (InternLM2) checkpoint layouts -> mmfusion's
:class:`MultimodalCausalLM` (teacher or Mamba-2 student) keys.

The layouts, read from hustvl/mmMamba:

* InternLM2 blocks (``hovle/modeling_internlm2.py``): ``model.tok_embeddings``,
  ``model.layers.<i>.attention.wqkv`` / ``.wo``, ``feed_forward.w1`` (gate),
  ``w3`` (up), ``w2`` (down), ``attention_norm``, ``ffn_norm``, ``model.norm``,
  ``output``. ``InternLM2Attention.forward`` reads ``wqkv``'s rows as
  ``(kv_heads, groups + 2, head_dim)``: per key/value head its ``groups``
  query heads, then its key head, then its value head.
* A distilled Mamba-2 layer (``src/model/linear_attention/mamba2.py``:
  ``Mamba2_Attention``): ``q_proj``/``k_proj``/``v_proj`` (split from
  ``wqkv`` as above), ``o_proj`` (the teacher's ``wo``), ``in_proj`` (input ->
  one step size per head), ``dt_bias``, ``A_log_bias`` (``A = -exp``),
  ``conv1d`` over the channels ``[v, k, q]``, ``g_proj``, ``g_norm``. The
  released checkpoints (``convert_weight.py`` calls ``change_weight``) fuse
  ``[v, k, q, g, dt]`` into ``wvkqgdt`` and rename ``g_norm`` to
  ``g_norm_swish_gate``.

Written here, not taken from the official code: it builds the whole
InternVL/HoVLE model and needs ``fla``, ``mamba_ssm`` and CUDA.
"""
import re
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

from mmfusion.utils.key_mapping import ConversionReport, Rule, convert_keys

_LAYER = r'model\.layers\.(\d+)\.'
_RULES = [
    Rule(r'model\.tok_embeddings\.weight', 'embedding.weight'),
    Rule(r'model\.norm\.weight', 'norm.weight'),
    Rule(r'output\.weight', 'head.weight'),
    Rule(_LAYER + r'attention_norm\.weight', r'layers.\1.attn_norm.weight'),
    Rule(_LAYER + r'ffn_norm\.weight', r'layers.\1.ffn_norm.weight'),
    Rule(_LAYER + r'feed_forward\.w1\.weight', r'layers.\1.ffn.gate.weight'),
    Rule(_LAYER + r'feed_forward\.w3\.weight', r'layers.\1.ffn.up.weight'),
    Rule(_LAYER + r'feed_forward\.w2\.weight', r'layers.\1.ffn.down.weight'),
    # Softmax-attention layers (the teacher's, a hybrid's kept ones).
    Rule(_LAYER + r'attention\.w([qkv])\.weight', r'layers.\1.attn.\2_proj.weight'),
    Rule(_LAYER + r'attention\.wo\.weight', r'layers.\1.attn.o_proj.weight'),
    # Mamba-2 layers; the fused weights were split into these names first.
    Rule(_LAYER + r'attention\.([qkvog]_proj)\.weight', r'layers.\1.ssm.\2.weight'),
    Rule(_LAYER + r'attention\.in_proj\.weight', r'layers.\1.ssm.dt_proj.weight'),
    Rule(_LAYER + r'attention\.(dt_bias)', r'layers.\1.ssm.\2'),
    Rule(_LAYER + r'attention\.A_log_bias', r'layers.\1.ssm.A_log'),
    Rule(_LAYER + r'attention\.(?:g_norm|g_norm_swish_gate)\.weight',
         r'layers.\1.ssm.g_norm.weight'),
    Rule(_LAYER + r'attention\.conv1d\.(weight|bias)', r'layers.\1.ssm.conv1d.\2'),
]
_DROPS = [(r'.*rotary_emb\.inv_freq', 'RoPE frequencies are recomputed'),
          (r'.*attention\.[qkv]_proj_shadow\.weight', "stage 2's frozen copies of the teacher "
           'projections (the teacher is its own model here)')]


def split_internlm2_wqkv(wqkv: Tensor, num_heads: int, num_kv_heads: int
                         ) -> Tuple[Tensor, Tensor, Tensor]:
    """InternLM2's fused ``wqkv`` weight ((heads + 2 kv_heads) * head_dim,
    dim) -> the q (heads * head_dim, dim), k and v (kv_heads * head_dim, dim)
    weights, query heads in order (head ``g * groups + j`` is the ``j``-th
    query of key/value group ``g``)."""
    groups = num_heads // num_kv_heads
    rows = wqkv.shape[0]
    if num_heads % num_kv_heads or rows % (num_heads + 2 * num_kv_heads):
        raise ValueError(f'wqkv has {rows} rows, not (num_heads {num_heads} + 2 * num_kv_heads '
                         f'{num_kv_heads}) * head_dim')
    grouped = wqkv.reshape(num_kv_heads, groups + 2, -1, wqkv.shape[1])
    q = grouped[:, :groups].reshape(-1, wqkv.shape[1])
    return q, grouped[:, -2].reshape(-1, wqkv.shape[1]), grouped[:, -1].reshape(-1, wqkv.shape[1])


def _vkq_to_qkv(t: Tensor, q_rows: int, kv_rows: int) -> Tensor:
    """Reorder the official convolution's channels ``[v, k, q]`` (its input is
    ``cat([v, k, q])``) to ours, ``[q, k, v]``."""
    v, k, q = t.split([kv_rows, kv_rows, q_rows])
    return torch.cat([q, k, v])


def convert_official_lm(state_dict: Dict[str, Tensor], num_heads: int, num_kv_heads: int,
                        prefix: Optional[str] = None, source: str = 'checkpoint'
                        ) -> Tuple[Dict[str, Tensor], ConversionReport]:
    """An InternLM2 language model (the HoVLE teacher) or a distilled mmMamba
    one (released fused ``wvkqgdt`` layers, or training-time
    ``q/k/v_proj``, ``in_proj``, ``g_proj``, ``g_norm`` ones; hybrid models
    mix them with ``wqkv`` layers) -> :class:`MultimodalCausalLM` keys.

    Args:
        state_dict: the weights; with ``prefix`` (e.g. ``'language_model.'``
            in a HoVLE / mmMamba chat model) only the keys under it are
            converted and the others are reported as dropped (HoVLE's
            ``embedding_model`` has no counterpart in mmfusion's patch
            embedding).
        num_heads, num_kv_heads: the model's attention heads.
        prefix: see above.
        source: names the file in errors.

    Returns:
        The converted weights (no ``patch_embed.*``) and the report.
    """
    report_drops = []
    if prefix:
        report_drops = [k for k in state_dict if not k.startswith(prefix)]
        state_dict = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if not state_dict:
            raise KeyError(f'{source}: no key starts with {prefix!r}')
    biases = [k for k in state_dict if re.fullmatch(_LAYER + r'attention\.(wqkv|wo)\.bias', k)]
    if biases:
        raise ValueError(f'{source}: biased attention ({biases[0]}): InternLM2 with bias=true is '
                         'not supported (the blocks have bias-free projections)')
    split: Dict[str, Tensor] = {}
    for key, value in state_dict.items():
        layer = re.fullmatch(_LAYER + r'attention\.(wqkv|wvkqgdt|conv1d\.weight|conv1d\.bias)'
                             r'(?:\.weight)?', key)
        if layer is None:
            split[key] = value
            continue
        base = key[:key.index('attention.') + len('attention.')]
        if key.endswith('wqkv.weight'):
            q, k, v = split_internlm2_wqkv(value, num_heads, num_kv_heads)
            split.update({base + 'wq.weight': q, base + 'wk.weight': k, base + 'wv.weight': v})
            continue
        # Mamba-2 layers: q rows = heads * head_dim, k/v rows = kv_heads * head_dim.
        if base + 'o_proj.weight' not in state_dict:
            raise KeyError(f'{source}: {key} without {base}o_proj.weight (a Mamba-2 layer '
                           'has both)')
        head_dim = state_dict[base + 'o_proj.weight'].shape[1] // num_heads
        q_rows, kv_rows = num_heads * head_dim, num_kv_heads * head_dim
        if key.endswith('wvkqgdt.weight'):
            expected = 2 * q_rows + 2 * kv_rows + num_heads
            if value.shape[0] != expected:
                raise ValueError(f'{source}: {key} has {value.shape[0]} rows, expected '
                                 f'{expected} (v, k, q, gate, dt)')
            v, k, q, g, dt = value.split([kv_rows, kv_rows, q_rows, q_rows, num_heads])
            split.update({base + 'q_proj.weight': q, base + 'k_proj.weight': k,
                          base + 'v_proj.weight': v, base + 'g_proj.weight': g,
                          base + 'in_proj.weight': dt})
        else:
            split[key] = _vkq_to_qkv(value, q_rows, kv_rows)
    out, report = convert_keys(split, _RULES, _DROPS, source)
    report.dropped += [(k, 'outside the language model (no counterpart here)')
                       for k in report_drops]
    return out, report


def infer_mamba_heads(state_dict: Dict[str, Tensor], source: str = 'checkpoint'
                      ) -> Tuple[int, int]:
    """``(num_heads, num_kv_heads)`` of a distilled mmMamba language model,
    from its first Mamba-2 layer: ``A_log_bias`` has one entry per head,
    ``o_proj`` is (dim, heads * head_dim) and ``conv1d`` has ``(heads + 2
    kv_heads) * head_dim`` channels."""
    for key, value in state_dict.items():
        if key.endswith('attention.A_log_bias'):
            base = key[:-len('A_log_bias')]
            heads = value.shape[0]
            head_dim = state_dict[base + 'o_proj.weight'].shape[1] // heads
            channels = state_dict[base + 'conv1d.weight'].shape[0]
            return heads, (channels - heads * head_dim) // (2 * head_dim)
    raise KeyError(f'{source}: no Mamba-2 layer (attention.A_log_bias); an InternLM2 model '
                   'needs its head counts given (MultimodalCausalLM.load_official)')
