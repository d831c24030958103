"""Write ``tests/data/mmmamba_official_keys.json``: every key, with its shape,
of the language-model part of the official HoVLE teacher and of the
mmMamba students, written out from hustvl/mmMamba's module definitions.

    python tools/model_converters/make_mmmamba_official_keys.py [OUT]

Layouts (the file maps each to ``{key: shape}``, in state-dict order):

- ``hovle_lm``: HoVLE's ``language_model`` (``hovle/modeling_internlm2.py``:
  ``InternLM2ForCausalLM``; a block registers ``attention`` (``wqkv``,
  ``wo``), ``feed_forward`` (``w1``, ``w3``, ``w2``), ``attention_norm``,
  ``ffn_norm``; the model ``tok_embeddings``, ``layers``, ``norm``, then
  ``output``);
- ``mmmamba_linear`` / ``mmmamba_hybrid``: the released checkpoints
  (``convert_weight.py``: ``Mamba2_Attention.change_weight`` in
  ``src/model/linear_attention/mamba2.py`` fuses ``[v, k, q, g, dt]`` into
  ``wvkqgdt`` and renames ``g_norm`` to ``g_norm_swish_gate``); a Mamba-2
  layer's own parameters ``dt_bias``, ``A_log_bias`` come first, then
  ``o_proj`` (the teacher's ``wo``), ``conv1d``, ``wvkqgdt``,
  ``g_norm_swish_gate``. The hybrid keeps softmax attention in the layers
  ``softmax_attention: [0, 4, ..., 28]`` of
  ``configs/experiment/distill_stage3_mmMamba.yaml`` counted over HoVLE's 8
  embedding layers then the 24 LLM layers, i.e. LLM layers 0, 4, ..., 20;
- ``mmmamba_linear_unfused``: the distillation-time model (before
  ``change_weight``): ``o_proj``, ``q_proj``, ``k_proj``, ``v_proj``,
  ``conv1d``, ``in_proj``, ``g_norm``, ``g_proj``;
- ``tiny_*``: the same four layouts at the sizes the tests build (width 32,
  4 heads, 2 key/value heads, 4 layers, SwiGLU 64, the SynthShapes caption
  vocabulary of 34 tokens; hybrid: attention in layers 0 and 2).

Sizes: the LLM of HoVLE-2.6B is InternLM2-1.8B (width 2048, 24 layers, 16
heads, 8 key/value heads, SwiGLU 8192) with InternVL2's vocabulary of 92,553
tokens, bias-free attention (``bias: false``). The config files of the
released weights cannot be read offline here, so these sizes are stated, not
read from them.
"""
import json
import os.path as osp
import sys
from typing import Dict, List, Sequence

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_OUT = osp.join(REPO, 'tests', 'data', 'mmmamba_official_keys.json')

Shapes = Dict[str, List[int]]

OFFICIAL = dict(dim=2048, depth=24, heads=16, kv_heads=8, ffn=8192, vocab=92553,
                hybrid=list(range(0, 24, 4)))
TINY = dict(dim=32, depth=4, heads=4, kv_heads=2, ffn=64, vocab=34, hybrid=[0, 2])


def attention(p: str, dim: int, heads: int, kv_heads: int) -> Shapes:
    head_dim = dim // heads
    return {f'{p}wqkv.weight': [(heads + 2 * kv_heads) * head_dim, dim],
            f'{p}wo.weight': [dim, heads * head_dim]}


def mamba2(p: str, dim: int, heads: int, kv_heads: int, fused: bool) -> Shapes:
    """``Mamba2_Attention`` with the mmMamba options (``use_conv``,
    ``use_gnorm``, ``use_A``; no ``D``, no q/k norms; ``d_conv`` 2, bias-free
    projections, ``conv_bias`` True)."""
    head_dim = dim // heads
    q, kv = heads * head_dim, kv_heads * head_dim
    out: Shapes = {f'{p}dt_bias': [heads], f'{p}A_log_bias': [heads],
                   f'{p}o_proj.weight': [dim, q]}
    if not fused:
        out.update({f'{p}q_proj.weight': [q, dim], f'{p}k_proj.weight': [kv, dim],
                    f'{p}v_proj.weight': [kv, dim]})
    out.update({f'{p}conv1d.weight': [q + 2 * kv, 1, 2], f'{p}conv1d.bias': [q + 2 * kv]})
    if fused:
        out.update({f'{p}wvkqgdt.weight': [2 * q + 2 * kv + heads, dim],
                    f'{p}g_norm_swish_gate.weight': [head_dim]})
    else:
        out.update({f'{p}in_proj.weight': [heads, q], f'{p}g_norm.weight': [head_dim],
                    f'{p}g_proj.weight': [q, dim]})
    return out


def language_model(sizes: dict, mamba_layers: Sequence[int], fused: bool) -> Shapes:
    dim, ffn = sizes['dim'], sizes['ffn']
    out: Shapes = {'language_model.model.tok_embeddings.weight': [sizes['vocab'], dim]}
    for i in range(sizes['depth']):
        p = f'language_model.model.layers.{i}.'
        if i in mamba_layers:
            out.update(mamba2(p + 'attention.', dim, sizes['heads'], sizes['kv_heads'], fused))
        else:
            out.update(attention(p + 'attention.', dim, sizes['heads'], sizes['kv_heads']))
        out.update({f'{p}feed_forward.w1.weight': [ffn, dim],
                    f'{p}feed_forward.w3.weight': [ffn, dim],
                    f'{p}feed_forward.w2.weight': [dim, ffn],
                    f'{p}attention_norm.weight': [dim], f'{p}ffn_norm.weight': [dim]})
    out['language_model.model.norm.weight'] = [dim]
    out['language_model.output.weight'] = [sizes['vocab'], dim]
    return out


def layouts(sizes: dict) -> Dict[str, Shapes]:
    every = range(sizes['depth'])
    hybrid_mamba = [i for i in every if i not in sizes['hybrid']]
    return {'hovle_lm': language_model(sizes, [], fused=True),
            'mmmamba_linear': language_model(sizes, every, fused=True),
            'mmmamba_hybrid': language_model(sizes, hybrid_mamba, fused=True),
            'mmmamba_linear_unfused': language_model(sizes, every, fused=False)}


def official_keys() -> Dict[str, object]:
    out: Dict[str, object] = {'sizes': {'official': OFFICIAL, 'tiny': TINY}}
    out.update(layouts(OFFICIAL))
    out.update({f'tiny_{k}': v for k, v in layouts(TINY).items()})
    return out


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    out = argv[0] if argv else DEFAULT_OUT
    with open(out, 'w') as f:
        json.dump(official_keys(), f, indent=1)
        f.write('\n')
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
