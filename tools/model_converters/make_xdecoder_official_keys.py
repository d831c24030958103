"""Write ``tests/data/xdecoder_official_keys.json``: every key of the official
X-Decoder Focal-T checkpoint (microsoft/X-Decoder ``xdecoder_focalt_last.pt``,
the state dict of ``modeling/architectures/xdecoder_model.py::
GeneralizedXdecoder`` built by ``configs/xdecoder/xdecoder_focalt_lang.yaml``)
with its shape.

    python tools/model_converters/make_xdecoder_official_keys.py [OUT]

The list is written from facts about the official code, independently of
mmfusion's ``XDecoder``:

- ``backbone``: FocalNet ``focal_dw`` Focal-T (embed 96, depths 2/2/6/2,
  focal levels 3, windows 3, conv embedding, post-LN, layerscale), listed by
  ``make_focalnet_dw_official_keys.py``;
- ``sem_seg_head.pixel_decoder`` (``modeling/body/encoder/
  transformer_encoder_fpn.py``, CONVS_DIM = MASK_DIM = 512, norm GN, 6
  encoder layers of FFN 2048): detectron2 ``Conv2d``s keep their norm as a
  ``.norm`` child and have no bias when normed; ``input_proj`` and
  ``mask_features`` have a bias; the encoder layers are
  ``nn.MultiheadAttention`` + ``linear1``/``linear2`` + ``norm1``/``norm2``;
- ``sem_seg_head.predictor`` (``modeling/body/decoder/xdecoder.py``, hidden
  512, DEC_LAYERS 10 -> 9 layers, NUM_OBJECT_QUERIES 101, FFN 2048,
  DIM_PROJ 512, context 77): ``input_proj`` is empty (512 in, 512 hidden),
  no ``bbox_embed`` (detection off), ``self_attn_mask`` is a (1, 101 + 77,
  101 + 77) bool buffer;
- ``sem_seg_head.predictor.lang_encoder`` (``modeling/language/
  vlpencoder.py`` + ``LangEncoder/transformer.py``): 12 CLIP blocks of width
  512 over the 49,408-token CLIP vocabulary, ``lang_proj`` (512, 512),
  scalar ``logit_scale``;
- ``backbone_proj`` (768, 512) (retrieval ensemble) and
  ``criterion.empty_weight`` (133 COCO panoptic classes + 1).
"""
import argparse
import json
import os.path as osp
import sys
from typing import Dict, List

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_OUT = osp.join(REPO, 'tests', 'data', 'xdecoder_official_keys.json')
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from make_focalnet_dw_official_keys import FOCALT, focalnet_dw_keys  # noqa: E402

Shapes = Dict[str, List[int]]

DIM = 512  # CONVS_DIM = MASK_DIM = HIDDEN_DIM = DIM_PROJ = text width
FFN = 2048
BACKBONE_DIMS = [96, 192, 384, 768]
ENC_LAYERS = 6
DEC_LAYERS = 9
QUERIES = 101
CONTEXT = 77
VOCAB = 49408
TEXT_LAYERS = 12
NUM_CLASSES = 133


def mha(prefix: str, dim: int = DIM) -> Shapes:
    """``nn.MultiheadAttention`` with packed q/k/v."""
    return {prefix + 'in_proj_weight': [3 * dim, dim], prefix + 'in_proj_bias': [3 * dim],
            prefix + 'out_proj.weight': [dim, dim], prefix + 'out_proj.bias': [dim]}


def linear(prefix: str, out: int, inp: int) -> Shapes:
    return {prefix + 'weight': [out, inp], prefix + 'bias': [out]}


def norm(prefix: str, dim: int = DIM) -> Shapes:
    return {prefix + 'weight': [dim], prefix + 'bias': [dim]}


def pixel_decoder(prefix: str = 'sem_seg_head.pixel_decoder.') -> Shapes:
    keys: Shapes = {}
    for k, channels in enumerate(BACKBONE_DIMS[:-1], start=1):
        keys[f'{prefix}adapter_{k}.weight'] = [DIM, channels, 1, 1]
        keys.update(norm(f'{prefix}adapter_{k}.norm.'))
        keys[f'{prefix}layer_{k}.weight'] = [DIM, DIM, 3, 3]
        keys.update(norm(f'{prefix}layer_{k}.norm.'))
    keys[f'{prefix}layer_4.weight'] = [DIM, DIM, 3, 3]
    keys.update(norm(f'{prefix}layer_4.norm.'))
    keys[f'{prefix}mask_features.weight'] = [DIM, DIM, 3, 3]
    keys[f'{prefix}mask_features.bias'] = [DIM]
    keys[f'{prefix}input_proj.weight'] = [DIM, BACKBONE_DIMS[-1], 1, 1]
    keys[f'{prefix}input_proj.bias'] = [DIM]
    for i in range(ENC_LAYERS):
        layer = f'{prefix}transformer.encoder.layers.{i}.'
        keys.update(mha(layer + 'self_attn.'))
        keys.update(linear(layer + 'linear1.', FFN, DIM))
        keys.update(linear(layer + 'linear2.', DIM, FFN))
        keys.update(norm(layer + 'norm1.'))
        keys.update(norm(layer + 'norm2.'))
    return keys


def language(prefix: str) -> Shapes:
    keys: Shapes = {prefix + 'lang_encoder.token_embedding.weight': [VOCAB, DIM],
                    prefix + 'lang_encoder.positional_embedding': [CONTEXT, DIM]}
    for i in range(TEXT_LAYERS):
        block = f'{prefix}lang_encoder.resblocks.{i}.'
        keys.update(mha(block + 'attn.'))
        keys.update(norm(block + 'ln_1.'))
        keys.update(linear(block + 'mlp.c_fc.', 4 * DIM, DIM))
        keys.update(linear(block + 'mlp.c_proj.', DIM, 4 * DIM))
        keys.update(norm(block + 'ln_2.'))
    keys.update(norm(prefix + 'lang_encoder.ln_final.'))
    keys[prefix + 'lang_proj'] = [DIM, DIM]
    keys[prefix + 'logit_scale'] = []
    return keys


def predictor(prefix: str = 'sem_seg_head.predictor.') -> Shapes:
    keys: Shapes = {}
    for i in range(DEC_LAYERS):
        keys.update(mha(f'{prefix}transformer_self_attention_layers.{i}.self_attn.'))
        keys.update(norm(f'{prefix}transformer_self_attention_layers.{i}.norm.'))
        keys.update(mha(f'{prefix}transformer_cross_attention_layers.{i}.multihead_attn.'))
        keys.update(norm(f'{prefix}transformer_cross_attention_layers.{i}.norm.'))
        keys.update(linear(f'{prefix}transformer_ffn_layers.{i}.linear1.', FFN, DIM))
        keys.update(linear(f'{prefix}transformer_ffn_layers.{i}.linear2.', DIM, FFN))
        keys.update(norm(f'{prefix}transformer_ffn_layers.{i}.norm.'))
    keys.update(norm(prefix + 'decoder_norm.'))
    keys[prefix + 'query_feat.weight'] = [QUERIES, DIM]
    keys[prefix + 'query_embed.weight'] = [QUERIES, DIM]
    keys[prefix + 'level_embed.weight'] = [3, DIM]
    keys.update(language(prefix + 'lang_encoder.'))
    for i in range(3):
        keys.update(linear(f'{prefix}mask_embed.layers.{i}.', DIM, DIM))
    keys[prefix + 'class_embed'] = [DIM, DIM]
    keys[prefix + 'caping_embed'] = [DIM, DIM]
    keys[prefix + 'pos_embed_caping.weight'] = [CONTEXT, DIM]
    keys[prefix + 'self_attn_mask'] = [1, QUERIES + CONTEXT, QUERIES + CONTEXT]
    return keys


def xdecoder_focalt_keys() -> Shapes:
    keys = {'backbone.' + k: v for k, v in focalnet_dw_keys(**FOCALT).items()}
    keys.update(pixel_decoder())
    keys.update(predictor())
    keys['backbone_proj'] = [BACKBONE_DIMS[-1], DIM]
    keys['criterion.empty_weight'] = [NUM_CLASSES + 1]
    return keys



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('out', nargs='?', default=DEFAULT_OUT)
    args = parser.parse_args()
    keys = xdecoder_focalt_keys()
    with open(args.out, 'w') as f:
        json.dump(keys, f, indent=0, sort_keys=True)
    print(f'wrote {len(keys)} keys to {args.out}')


if __name__ == '__main__':
    main()
