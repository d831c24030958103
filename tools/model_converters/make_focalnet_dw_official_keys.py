"""Every key of the official X-Decoder / SEEM FocalNet backbones
(microsoft/X-Decoder ``modeling/vision/backbone/focal_dw.py`` and
``focal.py``) with its shape, without the ``backbone.`` prefix.

    python tools/model_converters/make_focalnet_dw_official_keys.py [OUT]

Written from facts about the official modules, independently of mmfusion's
``FocalNetDW``:

- ``patch_embed``: ``proj`` conv (3 -> C, 7 x 7) with bias and ``norm``
  (LayerNorm C; PATCH_NORM True);
- stage ``i`` (width ``C * 2^i``) holds ``blocks.j`` with ``dw1``/``dw2``
  (3 x 3 depthwise convs with bias; ``focal_dw`` only), ``norm1``,
  ``modulation.f`` (Linear to ``2 C + L + 1``), ``modulation.h`` (1 x 1 conv
  with bias), ``modulation.focal_layers.k.0`` (depthwise conv of kernel
  ``2 k + window``, no bias), ``modulation.proj`` (Linear), ``norm2``,
  ``mlp.fc1``/``mlp.fc2`` (ratio 4) and ``gamma_1``/``gamma_2`` (layer
  scale); stages 0..2 end with ``downsample`` (``proj`` 3 x 3 conv to 2 C
  with bias, ``norm``);
- ``norm0``..``norm3``: a LayerNorm per output stage (``OUT_INDICES``
  0..3);
- nothing else: no buffers; no ``modulation.ln`` (only with
  USE_POSTLN_IN_MODULATION, false in every official config); the MLP's
  ``act``/``drop``, ``modulation.act``/``proj_drop``, ``pos_drop`` and
  ``drop_path`` hold no tensors.

``focal_dw`` and ``focal`` share every other name and shape (their stems
differ in padding only).
"""
import argparse
import json
import os.path as osp
from typing import Dict, List, Sequence

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_OUT = osp.join(REPO, 'tests', 'data', 'focalnet_dw_focalt_keys.json')


def focalnet_dw_keys(embed_dim: int, depths: Sequence[int], focal_levels: Sequence[int],
                     focal_windows: Sequence[int], dw_convs: bool = True,
                     mlp_ratio: int = 4,
                     out_indices: Sequence[int] = (0, 1, 2, 3)) -> Dict[str, List[int]]:
    """``{key: shape}`` of the official backbone (keys without ``backbone.``);
    ``dw_convs``: ``focal_dw`` blocks (False: ``focal``)."""
    keys: Dict[str, List[int]] = {
        'patch_embed.proj.weight': [embed_dim, 3, 7, 7], 'patch_embed.proj.bias': [embed_dim],
        'patch_embed.norm.weight': [embed_dim], 'patch_embed.norm.bias': [embed_dim]}
    for i, depth in enumerate(depths):
        c = embed_dim * 2 ** i
        levels = focal_levels[i]
        for j in range(depth):
            b = f'layers.{i}.blocks.{j}.'
            if dw_convs:
                for name in ('dw1', 'dw2'):
                    keys[f'{b}{name}.weight'] = [c, 1, 3, 3]
                    keys[f'{b}{name}.bias'] = [c]
            for name in ('norm1', 'norm2'):
                keys[f'{b}{name}.weight'] = [c]
                keys[f'{b}{name}.bias'] = [c]
            keys[f'{b}modulation.f.weight'] = [2 * c + levels + 1, c]
            keys[f'{b}modulation.f.bias'] = [2 * c + levels + 1]
            keys[f'{b}modulation.h.weight'] = [c, c, 1, 1]
            keys[f'{b}modulation.h.bias'] = [c]
            for k in range(levels):
                size = 2 * k + focal_windows[i]
                keys[f'{b}modulation.focal_layers.{k}.0.weight'] = [c, 1, size, size]
            keys[f'{b}modulation.proj.weight'] = [c, c]
            keys[f'{b}modulation.proj.bias'] = [c]
            keys[f'{b}mlp.fc1.weight'] = [mlp_ratio * c, c]
            keys[f'{b}mlp.fc1.bias'] = [mlp_ratio * c]
            keys[f'{b}mlp.fc2.weight'] = [c, mlp_ratio * c]
            keys[f'{b}mlp.fc2.bias'] = [c]
            keys[f'{b}gamma_1'] = [c]
            keys[f'{b}gamma_2'] = [c]
        if i < len(depths) - 1:
            d = f'layers.{i}.downsample.'
            keys[d + 'proj.weight'] = [2 * c, c, 3, 3]
            keys[d + 'proj.bias'] = [2 * c]
            keys[d + 'norm.weight'] = [2 * c]
            keys[d + 'norm.bias'] = [2 * c]
        if i in out_indices:
            keys[f'norm{i}.weight'] = [c]
            keys[f'norm{i}.bias'] = [c]
    return keys


# X-Decoder's / SEEM's Focal-T (focal_dw) and Focal-L (focal) settings.
FOCALT = dict(embed_dim=96, depths=(2, 2, 6, 2), focal_levels=(3, 3, 3, 3),
              focal_windows=(3, 3, 3, 3))
FOCALL = dict(embed_dim=192, depths=(2, 2, 18, 2), focal_levels=(4, 4, 4, 4),
              focal_windows=(3, 3, 3, 3), dw_convs=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('out', nargs='?', default=DEFAULT_OUT)
    args = parser.parse_args()
    keys = focalnet_dw_keys(**FOCALT)
    with open(args.out, 'w') as f:
        json.dump(keys, f, indent=0, sort_keys=True)
    print(f'wrote {len(keys)} keys to {args.out}')


if __name__ == '__main__':
    main()
