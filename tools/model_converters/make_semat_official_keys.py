"""Write ``tests/data/semat_official_keys.json``: every key of the official
SEMat (SAM ViT-L) checkpoint (XiaRho/SEMat ``SEMat_SAM.pth``, the state dict
of ``modeling/meta_arch/sam_hq_matting.py::SamHqMatte`` built by
``configs/SEMat_SAM.py``) with its shape.

    python tools/model_converters/make_semat_official_keys.py [OUT]

The list is made from facts about the official code, independently of
mmfusion's ``SEMat``:

- ``sam_model.{image_encoder,prompt_encoder,mask_decoder}``: segment_anything's
  own ViT-L ``Sam`` (``sam_model_registry['vit_l']``: the hyper-parameters of
  the official ``modeling/semantic_enhanced_matting/build_sam.py``, whose
  modules have the same parameters as segment_anything's). The official
  ``MaskDecoderHQ`` with ``wo_hq=True`` creates no HQ-SAM token, so its keys
  are SAM's ``MaskDecoder``'s.
- The image encoder is replaced by ``peft.get_peft_model(image_encoder,
  LoraConfig(r=16, lora_alpha=16, target_modules=['qkv', 'proj'],
  lora_dropout=0.1, init_lora_weights='gaussian'))`` (``SamHqMatte.init_lora``):
  the names come from calling peft on segment_anything's encoder, which gives
  ``base_model.model.`` prefixes, ``base_layer`` for the wrapped layer and
  ``lora_A.default``/``lora_B.default`` on every attention ``qkv``/``proj``
  and on ``patch_embed.proj`` (peft matches module names).
- ``sam_model.mask_decoder.matting_*`` (``MaskDecoderHQMatting``,
  ``matting_token_num=3``), ``sam_model.frozen_mask_decoder`` (a second
  ``MaskDecoderHQ(wo_hq=True)``, built by ``_build_sam`` with
  ``frozen_decoder=True`` and a SAM checkpoint), ``condition_layer.patch_embed``
  (a 4-channel ``PatchEmbed``: ``backbone_bbox_prompt='bbox'``) and
  ``matting_decoder`` (``modeling/decoder/unet_detail_capture.py::
  MattingDetailDecoder`` with ``img_feat_in=6``, ``vit_intern_feat_in=1024``,
  ``vit_intern_feat_index=[0, 1, 2, 3]``, ``block_num=2``, detectron2's
  ``NaiveSyncBatchNorm``, which has BatchNorm2d's keys) are written out below
  from the official module definitions.

Nothing is instantiated at full size (the SAM is built on the meta device).
"""
import argparse
import json
import os.path as osp
from typing import Dict, List, Tuple

import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_OUT = osp.join(REPO, 'tests', 'data', 'semat_official_keys.json')

Shapes = Dict[str, List[int]]

VIT_DIM = 1024  # ViT-L
DIM = 256  # SAM's decoder width (prompt_embed_dim)
MATTING_TOKENS = 3
LORA = dict(r=16, lora_alpha=16, target_modules=['qkv', 'proj'], lora_dropout=0.1,
            init_lora_weights='gaussian')


def sam_parts() -> Tuple[Shapes, Shapes, Shapes]:
    """segment_anything's ViT-L SAM, its image encoder wrapped by peft as the
    official ``init_lora`` does: (image encoder, prompt encoder, mask decoder)."""
    import peft
    from segment_anything import sam_model_registry

    def shapes(module: torch.nn.Module) -> Shapes:
        return {k: list(v.shape) for k, v in module.state_dict().items()}

    with torch.device('meta'):
        sam = sam_model_registry['vit_l'](checkpoint=None)
        encoder = peft.get_peft_model(sam.image_encoder, peft.LoraConfig(**LORA))
    return shapes(encoder), shapes(sam.prompt_encoder), shapes(sam.mask_decoder)


def conv(name: str, cin: int, cout: int, k: int, transposed: bool = False) -> Shapes:
    """A Conv2d (weight out x in x k x k) or ConvTranspose2d (in x out x k x k)
    with bias."""
    return {f'{name}.weight': [cin, cout, k, k] if transposed else [cout, cin, k, k],
            f'{name}.bias': [cout]}


def affine(name: str, c: int) -> Shapes:
    """LayerNorm2d / the affine part of a norm."""
    return {f'{name}.weight': [c], f'{name}.bias': [c]}


def batch_norm(name: str, c: int) -> Shapes:
    """BatchNorm2d (and detectron2's NaiveSyncBatchNorm, its subclass)."""
    return {**affine(name, c), f'{name}.running_mean': [c], f'{name}.running_var': [c],
            f'{name}.num_batches_tracked': []}


def linear(name: str, cin: int, cout: int) -> Shapes:
    return {f'{name}.weight': [cout, cin], f'{name}.bias': [cout]}


def matting_token_keys() -> Shapes:
    """``MaskDecoderHQMatting``'s own parameters (``mask_decoder_hq_matting.py``)."""
    c = DIM
    out: Shapes = {'matting_hf_token.weight': [MATTING_TOKENS, c]}
    # MLP(c, c, c // 8, 3): layers 0-2
    for i, (cin, cout) in enumerate([(c, c), (c, c), (c, c // 8)]):
        out.update(linear(f'matting_hf_mlp.layers.{i}', cin, cout))
    # ConvT(vit, c) LN2d GELU ConvT(c, c/8)
    out.update(conv('matting_compress_vit_feat.0', VIT_DIM, c, 2, transposed=True))
    out.update(affine('matting_compress_vit_feat.1', c))
    out.update(conv('matting_compress_vit_feat.3', c, c // 8, 2, transposed=True))
    # ConvT(c, c/4) LN2d GELU ConvT(c/4, c/8)
    out.update(conv('matting_embedding_encoder.0', c, c // 4, 2, transposed=True))
    out.update(affine('matting_embedding_encoder.1', c // 4))
    out.update(conv('matting_embedding_encoder.3', c // 4, c // 8, 2, transposed=True))
    # Conv3x3(c/8, c/4) LN2d GELU Conv3x3(c/4, c/8)
    out.update(conv('matting_embedding_maskfeature.0', c // 8, c // 4, 3))
    out.update(affine('matting_embedding_maskfeature.1', c // 4))
    out.update(conv('matting_embedding_maskfeature.3', c // 4, c // 8, 3))
    return out


def matting_decoder_keys() -> Shapes:
    """``MattingDetailDecoder`` as ``configs/SEMat_SAM.py`` builds it."""
    out: Shapes = {}
    # block_num >= 2: the 13x13 stem (img_feat_in -> 16 -> 32), Sequential
    # (conv, norm, GELU, conv, norm, GELU)
    out.update(conv('big_kernel_process.0', 6, 16, 13))
    out.update(batch_norm('big_kernel_process.1', 16))
    out.update(conv('big_kernel_process.3', 16, 32, 13))
    out.update(batch_norm('big_kernel_process.4', 32))
    # one 1x1 projection per ViT feature (ModuleDict keyed '0'..'3'), 1024 -> 256
    for i in range(4):
        out.update(conv(f'vit_feat_proj.{i}', VIT_DIM, VIT_DIM // 4, 1))
    out.update(conv('vit_feat_aggregation.0', VIT_DIM, 256, 3))
    out.update(batch_norm('vit_feat_aggregation.1', 256))

    def block(name: str, cin: int, cout: int, k: int, up: bool) -> None:
        # basic_layer: [Sequential(first, norm, GELU, conv, norm), GELU,
        #               Sequential(conv, norm, GELU, conv, norm)]  (block_num 2)
        for idx, first_in in ((0, cin), (2, cout)):
            if idx == 0 and up:  # BasicUpBlock: ConvTranspose2d(in, out, 2, 2)
                out.update(conv(f'{name}.basic_layer.0.0', cin, cout, 2, transposed=True))
            else:
                out.update(conv(f'{name}.basic_layer.{idx}.0', first_in, cout, k))
            out.update(batch_norm(f'{name}.basic_layer.{idx}.1', cout))
            out.update(conv(f'{name}.basic_layer.{idx}.3', cout, cout, k))
            out.update(batch_norm(f'{name}.basic_layer.{idx}.4', cout))
        out.update(conv(f'{name}.res_layer', cin, cout, k))

    # downsample_in_out with the first input replaced by the stem's 32; kernel 5
    for i, (cin, cout) in enumerate([(32, 32), (32, 64), (64, 128), (128, 256)]):
        block(f'down_blks.{i}', cin, cout, 5, up=False)
    out.update(conv('mid_layer.0', 512, 256, 1))
    out.update(batch_norm('mid_layer.1', 256))
    # upsample_in_out, summed skips, BasicUpBlock's default kernel 3
    for i, (cin, cout) in enumerate([(256, 128), (128, 64), (64, 32), (32, 16)]):
        block(f'up_blks.{i}', cin, cout, 3, up=True)
    out.update(conv('matting_head', 16, 1, 3))
    return out


def official_keys() -> Shapes:
    encoder, prompt, decoder = sam_parts()
    keys: Shapes = {}
    keys.update({f'sam_model.image_encoder.{k}': v for k, v in encoder.items()})
    keys.update({f'sam_model.prompt_encoder.{k}': v for k, v in prompt.items()})
    keys.update({f'sam_model.mask_decoder.{k}': v for k, v in decoder.items()})
    keys.update({f'sam_model.mask_decoder.{k}': v for k, v in matting_token_keys().items()})
    keys.update({f'sam_model.frozen_mask_decoder.{k}': v for k, v in decoder.items()})
    keys.update({'condition_layer.patch_embed.proj.weight': [VIT_DIM, 4, 16, 16],
                 'condition_layer.patch_embed.proj.bias': [VIT_DIM]})
    keys.update({f'matting_decoder.{k}': v for k, v in matting_decoder_keys().items()})
    return keys


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('out', nargs='?', default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    keys = official_keys()
    with open(args.out, 'w') as f:  # one key a line
        f.write('{\n' + ',\n'.join(f'{json.dumps(k)}: {json.dumps(v)}' for k, v in keys.items())
                + '\n}\n')
    print(f'wrote {len(keys)} keys to {args.out}')


if __name__ == '__main__':
    main()
