"""The released GMS mapping-network checkpoints (King-HAW/GMS
``ckpt/valid_{bus,busi,glas,ham10000,kvasir-instrument}/best_model.pth``) ->
an mmfusion ``GMS`` state dict (the ``mapping_net.`` part; the frozen SD-2 VAE
is loaded from its own file by ``model.vae.pretrained``).

Key facts (read from the official code):

- ``utils/tools.py::save_checkpoint`` writes ``{'model': state_dict}``; the
  state dict is that of ``networks/latent_mapping_model.py::ResAttnUNet_DS``
  (``in_channel=4, out_channels=4, ch=32, ch_mult=(1, 2, 4, 4)`` in every
  ``configs/*_valid.yaml``).
- ``input_blocks`` is the 3x3 stem; ``conv1_0 .. conv4_0`` the encoder
  blocks, ``conv3_1, conv2_2, conv1_3, conv0_4`` the decoder blocks, each a
  ``ResAttBlock`` = ``resblock`` (``ResBlock``) then ``attention``
  (``SpatialSelfAttention``).
- ``ResBlock`` registers its PReLUs twice: as ``act1``/``act2`` and inside
  ``conv1``/``conv2`` (index 1), so the state dict holds every PReLU slope
  under two names. The copies must be equal; ``act1``/``act2`` are dropped.
- ``SpatialSelfAttention`` has separate 1x1 ``q``, ``k``, ``v`` convs;
  mmfusion fuses them into one ``qkv`` conv (rows q, k, v).
- ``convds3, convds2, convds1, convds0`` are the deep-supervision heads of
  ``level3, level2, level1, out``; all four are saved although training
  supervises only ``level2, level1, out``.
"""
import re
from typing import Dict, Tuple

import torch
from torch import Tensor

from mmfusion.utils.key_mapping import ConversionReport, Rule, convert_keys

#: official block name -> mmfusion ``LatentMappingNet`` block
BLOCKS = {'conv1_0': 'enc.0', 'conv2_0': 'enc.1', 'conv3_0': 'enc.2', 'conv4_0': 'enc.3',
          'conv3_1': 'dec.0', 'conv2_2': 'dec.1', 'conv1_3': 'dec.2', 'conv0_4': 'dec.3'}
#: official deep-supervision head -> mmfusion ``out_levels`` name
HEADS = {'convds3': 'level3', 'convds2': 'level2', 'convds1': 'level1', 'convds0': 'out'}

_BLOCK = '(' + '|'.join(BLOCKS) + ')'
_QKV = re.compile(_BLOCK + r'\.attention\.q\.(weight|bias)')
_PRELU_COPY = re.compile(_BLOCK + r'\.resblock\.act([12])\.weight')


def official_rules(prefix: str = 'mapping_net.') -> list:
    """Rename rules after q/k/v fusion (see the module docstring)."""
    rules = [Rule(r'input_blocks\.(weight|bias)', prefix + r'stem.\1')]
    for src, dst in BLOCKS.items():
        rules += [
            Rule(src + r'\.resblock\.(conv[12]\.\d\.(?:weight|bias))', f'{prefix}{dst}.' + r'\1'),
            Rule(src + r'\.resblock\.skip_connection\.weight', f'{prefix}{dst}.skip.weight'),
            Rule(src + r'\.attention\.((?:norm|proj_out|qkv)\.(?:weight|bias))',
                 f'{prefix}{dst}.attn.' + r'\1'),
        ]
    rules += [Rule(src + r'\.(\d\.(?:weight|bias))', f'{prefix}heads.{dst}.' + r'\1')
              for src, dst in HEADS.items()]
    return rules


OFFICIAL_DROPS = ((_PRELU_COPY.pattern,
                   'second name of the PReLU slope also saved as resblock.conv{1,2}.1'),)


def convert_official_gms(state_dict: Dict[str, Tensor], prefix: str = 'mapping_net.'
                         ) -> Tuple[Dict[str, Tensor], ConversionReport]:
    """Official ``{'model': ...}`` (or its inner state dict) -> mmfusion keys
    under ``prefix`` (``'mapping_net.'`` for a ``GMS`` model, ``''`` for a bare
    ``LatentMappingNet``).

    Raises:
        KeyError: a key no rule accounts for, or a q without its k/v.
        ValueError: the two copies of a PReLU slope differ.
    """
    if isinstance(state_dict.get('model'), dict):
        state_dict = state_dict['model']
    state = dict(state_dict)
    fused = []
    for key in [k for k in state if _QKV.fullmatch(k)]:
        block, kind = _QKV.fullmatch(key).groups()
        parts = [f'{block}.attention.{n}.{kind}' for n in 'qkv']
        missing = [p for p in parts if p not in state]
        if missing:
            raise KeyError(f'GMS checkpoint: {key} without {missing}')
        state[f'{block}.attention.qkv.{kind}'] = torch.cat([state.pop(p) for p in parts])
        fused.append((block, kind))
    for key in state:
        match = _PRELU_COPY.fullmatch(key)
        if match:
            twin = f'{match.group(1)}.resblock.conv{match.group(2)}.1.weight'
            if twin not in state or not torch.equal(state[key], state[twin]):
                raise ValueError(f'GMS checkpoint: {key} should equal {twin} (one PReLU saved '
                                 'under two names)')
    out, report = convert_keys(state, official_rules(prefix), OFFICIAL_DROPS,
                               source='GMS checkpoint')
    for block, kind in fused:
        # convert_keys saw the fused key as renamed; report the fusion instead.
        src = f'{block}.attention.qkv.{kind}'
        dst = next(d for s, d in report.renamed if s == src)
        report.renamed.remove((src, dst))
        report.transformed.append((f'{block}.attention.{{q,k,v}}.{kind}', dst,
                                   'q, k, v concatenated into the fused qkv conv'))
    return out, report
