"""Write ``tests/data/gms_official_keys.json``: every key of a released GMS
mapping-network checkpoint (King-HAW/GMS ``ckpt/valid_*/best_model.pth``,
the inner ``'model'`` state dict) with its shape.

    python tools/model_converters/make_gms_official_keys.py [OUT]

The list is written from facts about the official code
(``networks/latent_mapping_model.py::ResAttnUNet_DS`` built with the
``configs/*_valid.yaml`` settings ``in_channel=4, out_channels=4, ch=32,
ch_mult=[1, 2, 4, 4]``), independently of mmfusion's ``LatentMappingNet``:

- ``input_blocks``: ``Conv2d(in_channel, ch, 3)`` with bias;
- eight ``ResAttBlock(in, out)``: ``conv1_0`` (ch -> ch*m0), ``conv2_0``
  (ch*m0 -> ch*m1), ``conv3_0`` (ch*m1 -> ch*m2), ``conv4_0`` (ch*m2 ->
  ch*m3), ``conv3_1`` (ch*(m2+m3) -> ch*m2), ``conv2_2`` (ch*(m1+m2) ->
  ch*m1), ``conv1_3`` (ch*(m0+m1) -> ch*m0), ``conv0_4`` (ch*(1+m0) -> ch);
- ``ResAttBlock.resblock`` (``ResBlock``): ``act1``/``act2`` are
  ``nn.PReLU()`` (one slope) assigned as attributes *and* placed in
  ``conv1 = Sequential(GroupNorm(16, in), act1, Conv2d(in, out, 3, bias))``
  and ``conv2 = Sequential(GroupNorm(16, out), act2, Conv2d(out, out, 3,
  bias))``, so each slope is saved under both names; ``skip_connection`` is
  ``Conv2d(in, out, 1, bias=False)`` when in != out, else ``nn.Identity``;
- ``ResAttBlock.attention`` (``SpatialSelfAttention(out)``): ``norm``
  (GroupNorm(16)), 1x1 ``q``, ``k``, ``v``, ``proj_out`` with bias;
- ``convds3/2/1/0``: ``Sequential(GroupNorm(16, c), SiLU, Conv2d(c,
  out_channels, 3, bias=False))`` on ch*m2, ch*m1, ch*m0, ch channels.
"""
import argparse
import json
import os.path as osp
from typing import Dict, List, Sequence

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_OUT = osp.join(REPO, 'tests', 'data', 'gms_official_keys.json')

Shapes = Dict[str, List[int]]


def conv(prefix: str, out: int, inp: int, k: int, bias: bool = True) -> Shapes:
    keys = {prefix + 'weight': [out, inp, k, k]}
    if bias:
        keys[prefix + 'bias'] = [out]
    return keys


def norm(prefix: str, c: int) -> Shapes:
    return {prefix + 'weight': [c], prefix + 'bias': [c]}


def res_att_block(prefix: str, inp: int, out: int) -> Shapes:
    r = prefix + 'resblock.'
    keys: Shapes = {r + 'act1.weight': [1], r + 'act2.weight': [1]}
    keys.update(norm(r + 'conv1.0.', inp))
    keys[r + 'conv1.1.weight'] = [1]
    keys.update(conv(r + 'conv1.2.', out, inp, 3))
    keys.update(norm(r + 'conv2.0.', out))
    keys[r + 'conv2.1.weight'] = [1]
    keys.update(conv(r + 'conv2.2.', out, out, 3))
    if inp != out:
        keys.update(conv(r + 'skip_connection.', out, inp, 1, bias=False))
    a = prefix + 'attention.'
    keys.update(norm(a + 'norm.', out))
    for name in ('q', 'k', 'v', 'proj_out'):
        keys.update(conv(f'{a}{name}.', out, out, 1))
    return keys


def res_attn_unet_ds_keys(in_channel: int = 4, out_channels: int = 4, ch: int = 32,
                          ch_mult: Sequence[int] = (1, 2, 4, 4)) -> Shapes:
    m0, m1, m2, m3 = ch_mult
    keys = conv('input_blocks.', ch, in_channel, 3)
    blocks = {
        'conv1_0': (ch, ch * m0), 'conv2_0': (ch * m0, ch * m1),
        'conv3_0': (ch * m1, ch * m2), 'conv4_0': (ch * m2, ch * m3),
        'conv3_1': (ch * (m2 + m3), ch * m2), 'conv2_2': (ch * (m1 + m2), ch * m1),
        'conv1_3': (ch * (m0 + m1), ch * m0), 'conv0_4': (ch * (1 + m0), ch),
    }
    for name, (inp, out) in blocks.items():
        keys.update(res_att_block(name + '.', inp, out))
    for name, c in (('convds3', ch * m2), ('convds2', ch * m1), ('convds1', ch * m0),
                    ('convds0', ch)):
        keys.update(norm(name + '.0.', c))
        keys.update(conv(name + '.2.', out_channels, c, 3, bias=False))
    return keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('out', nargs='?', default=DEFAULT_OUT)
    args = parser.parse_args()
    keys = res_attn_unet_ds_keys()
    with open(args.out, 'w') as f:
        json.dump(keys, f, indent=0, sort_keys=True)
    print(f'wrote {len(keys)} keys to {args.out}')


if __name__ == '__main__':
    main()
