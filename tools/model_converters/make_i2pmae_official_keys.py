"""Write ``tests/data/i2pmae_official_keys.json``: every key, with its shape,
of the official I2P-MAE and Point-MAE checkpoints' ``base_model`` state dicts.

    python tools/model_converters/make_i2pmae_official_keys.py [OUT] [--check DIR]

Layouts (the file maps each to ``{key: shape}``, in state-dict order):

- ``pretrain``: ``I2P_MAE`` (ZrrSkywalker/I2P-MAE ``models/I2P_MAE.py``,
  ``cfgs/pre-training/i2p-mae.yaml``), the frozen CLIP ViT-B/16 included
  (``clip_model.*``: it is an ordinary submodule, so ``save_checkpoint``
  saves it with the rest);
- ``finetune_modelnet40`` / ``finetune_scan``: ``I2P_MAE_ModelNet40`` /
  ``I2P_MAE_ScanObjectNN`` (``models/I2P_MAE_Finetune.py``, the
  ``cfgs/fine-tuning`` configs);
- ``pointmae_pretrain`` / ``pointmae_finetune``: Pang-Yatian/Point-MAE's
  ``Point_MAE`` (``cfgs/pretrain.yaml``) and ``PointTransformer``
  (``cfgs/finetune_modelnet.yaml``).

The lists are written out below from the official module definitions and
configs, independently of mmfusion's models. ``--check DIR`` compares them
(keys, order and shapes) with state-dict dumps of the official models built
from their own code (``DIR/{i2pmae_pretrain,i2pmae_finetune,
i2pmae_finetune_scan,pointmae_pretrain,pointmae_finetune}_keys.json``, flat
``{key: shape}``).
"""
import argparse
import json
import os.path as osp
import sys
from typing import Dict, List

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_OUT = osp.join(REPO, 'tests', 'data', 'i2pmae_official_keys.json')

Shapes = Dict[str, List[int]]

# I2P-MAE pre-training config
DIMS = [96, 192, 384]
DEPTHS = [5, 5, 5]
DECODER_DIMS = [384, 192]
DECODER_DEPTHS = [1, 1]
GROUP_SIZES = [16, 8, 8]
CLIP_FEAT = 512  # CLIP ViT-B/16 joint embedding
VIEWS = 3
# CLIP ViT-B/16 (clip_attn/model.py CLIP(512, 224, 12, 768, 16, 77, 49408, 512, 8, 12))
VIT_WIDTH, VIT_LAYERS, PATCH, IMAGE = 768, 12, 16, 224
TEXT_WIDTH, TEXT_LAYERS, CONTEXT, VOCAB = 512, 12, 77, 49408
# Point-MAE
PM_DIM, PM_DEPTH, PM_DECODER_DEPTH, PM_GROUP = 384, 12, 4, 32

# check-file name of each layout
DUMPS = {
    'pretrain': 'i2pmae_pretrain_keys.json',
    'finetune_modelnet40': 'i2pmae_finetune_keys.json',
    'finetune_scan': 'i2pmae_finetune_scan_keys.json',
    'pointmae_pretrain': 'pointmae_pretrain_keys.json',
    'pointmae_finetune': 'pointmae_finetune_keys.json',
}


def linear(name: str, cin: int, cout: int, bias: bool = True) -> Shapes:
    out = {f'{name}.weight': [cout, cin]}
    if bias:
        out[f'{name}.bias'] = [cout]
    return out


def conv1d(name: str, cin: int, cout: int) -> Shapes:
    return {f'{name}.weight': [cout, cin, 1], f'{name}.bias': [cout]}


def norm(name: str, c: int) -> Shapes:
    return {f'{name}.weight': [c], f'{name}.bias': [c]}


def batch_norm(name: str, c: int) -> Shapes:
    return {**norm(name, c), f'{name}.running_mean': [c], f'{name}.running_var': [c],
            f'{name}.num_batches_tracked': []}


def mini_pointnet(name: str, cin: int, h1: int, h2: int, h3: int, cout: int) -> Shapes:
    """``Encoder`` / ``Token_Embed``: first_conv (Conv1d, BN, ReLU, Conv1d),
    second_conv (Conv1d on [global, local], BN, ReLU, Conv1d)."""
    out: Shapes = {}
    out.update(conv1d(f'{name}.first_conv.0', cin, h1))
    out.update(batch_norm(f'{name}.first_conv.1', h1))
    out.update(conv1d(f'{name}.first_conv.3', h1, h2))
    out.update(conv1d(f'{name}.second_conv.0', 2 * h2, h3))
    out.update(batch_norm(f'{name}.second_conv.1', h3))
    out.update(conv1d(f'{name}.second_conv.3', h3, cout))
    return out


def pos_mlp(name: str, hidden: int, dim: int) -> Shapes:
    """Linear(3, hidden), GELU, Linear(hidden, dim)."""
    return {**linear(f'{name}.0', 3, hidden), **linear(f'{name}.2', hidden, dim)}


def block(name: str, dim: int) -> Shapes:
    """The timm-style ``Block`` (norm1, norm2, mlp, attn registration order;
    MLP ratio 4, qkv without bias)."""
    return {**norm(f'{name}.norm1', dim), **norm(f'{name}.norm2', dim),
            **linear(f'{name}.mlp.fc1', dim, 4 * dim), **linear(f'{name}.mlp.fc2', 4 * dim, dim),
            **linear(f'{name}.attn.qkv', dim, 3 * dim, bias=False),
            **linear(f'{name}.attn.proj', dim, dim)}


def h_encoder(name: str, norms: bool) -> Shapes:
    out: Shapes = {}
    for i, dim in enumerate(DIMS):
        if i == 0:
            out.update(mini_pointnet(f'{name}.token_embed.0', 3, 128, 256, 512, dim))
        else:
            c = DIMS[i - 1]
            out.update(mini_pointnet(f'{name}.token_embed.{i}', c, c, c, dim, dim))
    for i, dim in enumerate(DIMS):
        out.update(pos_mlp(f'{name}.encoder_pos_embeds.{i}', dim, dim))
    for i, (dim, depth) in enumerate(zip(DIMS, DEPTHS)):
        for j in range(depth):
            out.update(block(f'{name}.encoder_blocks.{i}.blocks.{j}', dim))
    if norms:
        for i, dim in enumerate(DIMS):
            out.update(norm(f'{name}.encoder_norms.{i}', dim))
    return out


def residual_block(name: str, width: int) -> Shapes:
    """CLIP's ``ResidualAttentionBlock``."""
    return {f'{name}.attn.in_proj_weight': [3 * width, width],
            f'{name}.attn.in_proj_bias': [3 * width],
            **linear(f'{name}.attn.out_proj', width, width), **norm(f'{name}.ln_1', width),
            **linear(f'{name}.mlp.c_fc', width, 4 * width),
            **linear(f'{name}.mlp.c_proj', 4 * width, width), **norm(f'{name}.ln_2', width)}


def clip_vit_b16(name: str) -> Shapes:
    """OpenAI CLIP ViT-B/16 (``CLIP`` registers its text-side parameters
    first, then ``visual``, then the text transformer and embeddings)."""
    out: Shapes = {f'{name}.positional_embedding': [CONTEXT, TEXT_WIDTH],
                   f'{name}.text_projection': [TEXT_WIDTH, CLIP_FEAT],
                   f'{name}.logit_scale': []}
    grid = IMAGE // PATCH
    v = f'{name}.visual'
    out.update({f'{v}.class_embedding': [VIT_WIDTH],
                f'{v}.positional_embedding': [grid * grid + 1, VIT_WIDTH],
                f'{v}.proj': [VIT_WIDTH, CLIP_FEAT],
                f'{v}.conv1.weight': [VIT_WIDTH, 3, PATCH, PATCH]})
    out.update(norm(f'{v}.ln_pre', VIT_WIDTH))
    for i in range(VIT_LAYERS):
        out.update(residual_block(f'{v}.transformer.resblocks.{i}', VIT_WIDTH))
    out.update(norm(f'{v}.ln_post', VIT_WIDTH))
    for i in range(TEXT_LAYERS):
        out.update(residual_block(f'{name}.transformer.resblocks.{i}', TEXT_WIDTH))
    out[f'{name}.token_embedding.weight'] = [VOCAB, TEXT_WIDTH]
    out.update(norm(f'{name}.ln_final', TEXT_WIDTH))
    return out


def i2pmae_pretrain() -> Shapes:
    out: Shapes = {'mask_token': [1, DIMS[-1]]}
    out.update(h_encoder('h_encoder', norms=True))
    for j, (dim, depth) in enumerate(zip(DECODER_DIMS, DECODER_DEPTHS)):
        for k in range(depth):
            out.update(block(f'h_decoder.{j}.blocks.{k}', dim))
    for j, dim in enumerate(DECODER_DIMS):
        out.update(pos_mlp(f'decoder_pos_embeds.{j}', dim, dim))
    # PointNetFeaturePropagation(in = skip + coarse, out), one residual block
    for j in range(1, len(DECODER_DIMS)):
        dim, coarse = DECODER_DIMS[j], DECODER_DIMS[j - 1]
        skip = DIMS[len(DIMS) - 1 - j]
        p = f'token_prop.{j - 1}'
        out.update(conv1d(f'{p}.fuse.net.0', skip + coarse, dim))
        out.update(batch_norm(f'{p}.fuse.net.1', dim))
        for net in ('net1', 'net2'):
            out.update(conv1d(f'{p}.extraction.operation.0.{net}.0', dim, dim))
            out.update(batch_norm(f'{p}.extraction.operation.0.{net}.1', dim))
    out.update(norm('decoder_norm', DECODER_DIMS[-1]))
    members = GROUP_SIZES[1]
    out.update(conv1d('rec_head_3d', DECODER_DIMS[-1], 3 * members))
    out.update(conv1d('rec_head_2d', DECODER_DIMS[-1], CLIP_FEAT * members * VIEWS))
    out.update(clip_vit_b16('clip_model'))
    return out


def cls_head(in_channels: int, num_classes: int) -> Shapes:
    return {**linear('cls_head_finetune.0', in_channels, 256),
            **batch_norm('cls_head_finetune.1', 256),
            **linear('cls_head_finetune.4', 256, 256),
            **batch_norm('cls_head_finetune.5', 256),
            **linear('cls_head_finetune.8', 256, num_classes)}


def i2pmae_finetune(in_channels: int, num_classes: int) -> Shapes:
    """ModelNet40: mean + max (384) -> 40; ScanObjectNN: [mean, max] (768) -> 15."""
    return {**h_encoder('h_encoder', norms=False), **norm('norm', DIMS[-1]),
            **cls_head(in_channels, num_classes)}


def point_transformer(name: str) -> Shapes:
    """Point-MAE's encoder parts: ``encoder`` (mini-PointNet 3 -> 384),
    ``pos_embed`` (3 -> 128 -> 384), ``blocks.blocks.<i>``, ``norm``."""
    p = f'{name}.' if name else ''
    out = mini_pointnet(f'{p}encoder', 3, 128, 256, 512, PM_DIM)
    out.update(pos_mlp(f'{p}pos_embed', 128, PM_DIM))
    for i in range(PM_DEPTH):
        out.update(block(f'{p}blocks.blocks.{i}', PM_DIM))
    out.update(norm(f'{p}norm', PM_DIM))
    return out


def pointmae_pretrain() -> Shapes:
    out: Shapes = {'mask_token': [1, 1, PM_DIM]}
    out.update(point_transformer('MAE_encoder'))
    out.update(pos_mlp('decoder_pos_embed', 128, PM_DIM))
    for i in range(PM_DECODER_DEPTH):
        out.update(block(f'MAE_decoder.blocks.{i}', PM_DIM))
    out.update(norm('MAE_decoder.norm', PM_DIM))
    out.update(conv1d('increase_dim.0', PM_DIM, 3 * PM_GROUP))
    return out


def pointmae_finetune(num_classes: int = 40) -> Shapes:
    out: Shapes = {'cls_token': [1, 1, PM_DIM], 'cls_pos': [1, 1, PM_DIM]}
    out.update(point_transformer(''))
    out.update(cls_head(2 * PM_DIM, num_classes))
    return out


def official_keys() -> Dict[str, Shapes]:
    return {
        'pretrain': i2pmae_pretrain(),
        'finetune_modelnet40': i2pmae_finetune(DIMS[-1], 40),
        'finetune_scan': i2pmae_finetune(2 * DIMS[-1], 15),
        'pointmae_pretrain': pointmae_pretrain(),
        'pointmae_finetune': pointmae_finetune(40),
    }


def check(layouts: Dict[str, Shapes], folder: str) -> List[str]:
    """Differences between the written-out lists and the dumps in ``folder``."""
    problems = []
    for layout, fname in DUMPS.items():
        path = osp.join(folder, fname)
        if not osp.isfile(path):
            problems.append(f'{layout}: no dump {path}')
            continue
        with open(path) as f:
            dump = json.load(f)
        ours = layouts[layout]
        missing = [k for k in dump if k not in ours]
        extra = [k for k in ours if k not in dump]
        shapes = [(k, ours[k], dump[k]) for k in ours if k in dump and ours[k] != dump[k]]
        if missing or extra or shapes:
            problems.append(f'{layout}: {len(missing)} keys missing {missing[:5]}, {len(extra)} '
                            f'extra {extra[:5]}, {len(shapes)} shapes differ {shapes[:5]}')
        elif list(ours) != list(dump):
            problems.append(f'{layout}: same keys and shapes, another order')
    return problems


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('out', nargs='?', default=DEFAULT_OUT)
    parser.add_argument('--check', metavar='DIR',
                        help='compare with state-dict dumps of the official models first')
    args = parser.parse_args(argv)
    layouts = official_keys()
    if args.check:
        problems = check(layouts, args.check)
        if problems:
            print('\n'.join(problems))
            sys.exit(1)
        print(f'all {len(DUMPS)} layouts equal the dumps in {args.check}')
    with open(args.out, 'w') as f:  # one key a line
        f.write('{\n' + ',\n'.join(
            f'{json.dumps(layout)}: {{\n' + ',\n'.join(
                f'{json.dumps(k)}: {json.dumps(v)}' for k, v in keys.items()) + '\n}'
            for layout, keys in layouts.items()) + '\n}\n')
    print('wrote ' + ', '.join(f'{len(k)} {name}' for name, k in layouts.items())
          + f' keys to {args.out}')


if __name__ == '__main__':
    main()
