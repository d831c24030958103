"""The official FrozenSeg checkpoint (chenxi52/FrozenSeg, detectron2
``{'model': state_dict}``) -> an mmfusion ``FrozenSeg`` state dict.

Key facts (read from the official code; configs/frozenseg/README.md):

- ``backbone.clip_model.*`` is the whole open_clip CLIP: ``visual.*`` is the
  image tower, the top-level text modules the text tower, ``logit_scale`` CLIP's
  temperature (used for the out-of-vocabulary scores);
- ``sam.*`` is the whole SAM; only ``sam.image_encoder`` runs;
- ``sem_seg_head.pixel_decoder`` is detectron2's Mask2Former deformable pixel
  decoder (``input_proj``, ``transformer``, ``adapter_1``/``layer_1``,
  ``mask_features``) plus the SAM branch (``fpn3`` conv + GN, ``sam_transformer``);
- ``sem_seg_head.predictor`` is the decoder: separate self-attention,
  cross-attention and FFN layer lists, the SAM cross-attention at layers 0/3/6,
  3-layer MLPs ``mask_embed``/``class_embed``, ``_mask_pooling_proj``;
- ``void_embedding.weight`` is the no-object text embedding;
  ``criterion.empty_weight`` is a loss buffer.

The SAM branch's deformable encoder is built for 3 levels and fed one. Its
``sampling_offsets`` (heads x 3 levels x points x 2 outputs) and
``attention_weights`` (heads x 3 x points) are reduced to level 0's rows, and the
level embedding to its first row, for mmfusion's one-level branch. The official
CUDA kernel does something else with the 3-level buffers (it reads them with a
1-level stride: the first third of the flattened buffers, so a query uses
another query's offsets, and the attention weights are softmaxed over all 3
levels), so outputs of the converted branch differ from the official ones; the
README says so.
"""
from typing import Dict, Tuple

from torch import Tensor

from mmfusion.utils.key_mapping import ConversionReport, Rule, convert_keys

_PD = r'sem_seg_head\.pixel_decoder\.'
_PR = r'sem_seg_head\.predictor\.'
_CLIP_TEXT = r'(transformer\..*|token_embedding\.weight|positional_embedding|ln_final\..*|' \
             r'text_projection)'


def _first_level(levels: int, rows_per_level: int):
    """Level 0's rows of a Linear weight or bias whose outputs are laid out
    (heads, levels, rows_per_level): points x 2 offsets, or points weights."""

    def take(t: Tensor) -> Tensor:
        heads = t.shape[0] // (levels * rows_per_level)
        return t.reshape(heads, levels, rows_per_level, *t.shape[1:])[:, 0].reshape(
            heads * rows_per_level, *t.shape[1:]).clone()

    return take


def _encoder_layer_rules(src: str, dst: str) -> list:
    """detectron2's MSDeformAttnTransformerEncoderLayer -> mmdet's
    DeformableDetrTransformerEncoderLayer (same attention names)."""
    return [
        Rule(src + r'(\d+)\.self_attn\.(value_proj|output_proj)\.(weight|bias)',
             dst + r'\1.self_attn.\2.\3'),
        Rule(src + r'(\d+)\.norm1\.(weight|bias)', dst + r'\1.norms.0.\2'),
        Rule(src + r'(\d+)\.linear1\.(weight|bias)', dst + r'\1.ffn.layers.0.0.\2'),
        Rule(src + r'(\d+)\.linear2\.(weight|bias)', dst + r'\1.ffn.layers.1.\2'),
        Rule(src + r'(\d+)\.norm2\.(weight|bias)', dst + r'\1.norms.1.\2'),
    ]


def official_rules(sam_levels: int = 3, num_points: int = 4) -> list:
    """Rename rules of the official checkpoint (see the module docstring)."""
    pd_enc = r'head.pixel_decoder.encoder.layers.'
    sam_enc = r'head.pixel_decoder.sam_encoder.layers.'
    rules = [
        # frozen CLIP (open_clip names on both sides) and its temperature
        Rule(r'backbone\.clip_model\.(visual\..*)', r'clip_encoder.\1'),
        Rule(r'backbone\.clip_model\.' + _CLIP_TEXT, r'text_encoder.\1'),
        Rule(r'backbone\.clip_model\.logit_scale', r'clip_logit_scale'),
        # frozen SAM image encoder (segment_anything names)
        Rule(r'sam\.image_encoder\.(.*)', r'sam_encoder.image_encoder.\1'),
        Rule(r'void_embedding\.weight', r'void_embedding.weight'),
        # pixel decoder (detectron2 -> mmdet MSDeformAttnPixelDecoder)
        Rule(_PD + r'input_proj\.(\d+)\.0\.(weight|bias)',
             r'head.pixel_decoder.input_convs.\1.conv.\2'),
        Rule(_PD + r'input_proj\.(\d+)\.1\.(weight|bias)',
             r'head.pixel_decoder.input_convs.\1.gn.\2'),
        Rule(_PD + r'transformer\.level_embed', r'head.pixel_decoder.level_encoding.weight'),
        Rule(_PD + r'transformer\.encoder\.layers\.(\d+)\.self_attn\.'
             r'(sampling_offsets|attention_weights)\.(weight|bias)',
             pd_enc + r'\1.self_attn.\2.\3'),
        *_encoder_layer_rules(_PD + r'transformer\.encoder\.layers\.', pd_enc),
        Rule(_PD + r'adapter_1\.weight', r'head.pixel_decoder.lateral_convs.0.conv.weight'),
        Rule(_PD + r'adapter_1\.norm\.(weight|bias)', r'head.pixel_decoder.lateral_convs.0.gn.\1'),
        Rule(_PD + r'layer_1\.weight', r'head.pixel_decoder.output_convs.0.conv.weight'),
        Rule(_PD + r'layer_1\.norm\.(weight|bias)', r'head.pixel_decoder.output_convs.0.gn.\1'),
        Rule(_PD + r'mask_features\.(weight|bias)', r'head.pixel_decoder.mask_feature.\1'),
        # the SAM branch: fpn3 (conv + GN + ReLU) and its one-level encoder
        Rule(_PD + r'fpn3\.0\.(weight|bias)', r'head.pixel_decoder.sam_proj.conv.\1'),
        Rule(_PD + r'fpn3\.1\.(weight|bias)', r'head.pixel_decoder.sam_proj.gn.\1'),
        Rule(_PD + r'sam_transformer\.level_embed', r'head.pixel_decoder.sam_level_encoding.weight',
             transform=lambda t: t[:1].clone(),
             note=f'the {sam_levels}-level embedding of the one-level SAM branch: its first row'),
        Rule(_PD + r'sam_transformer\.encoder\.layers\.(\d+)\.self_attn\.sampling_offsets\.'
             r'(weight|bias)', sam_enc + r'\1.self_attn.sampling_offsets.\2',
             transform=_first_level(sam_levels, num_points * 2),
             note=f'level 0 of {sam_levels} (the branch reads one level)'),
        Rule(_PD + r'sam_transformer\.encoder\.layers\.(\d+)\.self_attn\.attention_weights\.'
             r'(weight|bias)', sam_enc + r'\1.self_attn.attention_weights.\2',
             transform=_first_level(sam_levels, num_points),
             note=f'level 0 of {sam_levels} (the branch reads one level)'),
        *_encoder_layer_rules(_PD + r'sam_transformer\.encoder\.layers\.', sam_enc),
        # decoder (separate layer lists -> mmdet Mask2Former decoder layers)
        Rule(_PR + r'transformer_cross_attention_layers\.(\d+)\.multihead_attn\.(.*)',
             r'head.decoder.layers.\1.cross_attn.attn.\2'),
        Rule(_PR + r'transformer_cross_attention_layers\.(\d+)\.norm\.(weight|bias)',
             r'head.decoder.layers.\1.norms.0.\2'),
        Rule(_PR + r'transformer_self_attention_layers\.(\d+)\.self_attn\.(.*)',
             r'head.decoder.layers.\1.self_attn.attn.\2'),
        Rule(_PR + r'transformer_self_attention_layers\.(\d+)\.norm\.(weight|bias)',
             r'head.decoder.layers.\1.norms.1.\2'),
        Rule(_PR + r'transformer_ffn_layers\.(\d+)\.linear1\.(weight|bias)',
             r'head.decoder.layers.\1.ffn.layers.0.0.\2'),
        Rule(_PR + r'transformer_ffn_layers\.(\d+)\.linear2\.(weight|bias)',
             r'head.decoder.layers.\1.ffn.layers.1.\2'),
        Rule(_PR + r'transformer_ffn_layers\.(\d+)\.norm\.(weight|bias)',
             r'head.decoder.layers.\1.norms.2.\2'),
        Rule(_PR + r'transformer_cross_attention_layers_sam\.(\d+)\.multihead_attn\.(.*)',
             r'head.decoder.feature_injectors.\1.attn.attn.\2'),
        Rule(_PR + r'transformer_cross_attention_layers_sam\.(\d+)\.norm\.(weight|bias)',
             r'head.decoder.feature_injectors.\1.norm.\2'),
        Rule(_PR + r'(decoder_norm\.(?:weight|bias)|query_feat\.weight|query_embed\.weight|'
             r'level_embed\.weight)', r'head.decoder.\1'),
        # mmfusion's mask_embed is nn.Sequential(Linear, ReLU, Linear, ReLU, Linear):
        # the official MLP's layer i is module 2i
        *[Rule(_PR + rf'mask_embed\.layers\.{i}\.(weight|bias)',
               rf'head.decoder.mask_embed.{2 * i}.\1') for i in range(3)],
        Rule(_PR + r'_mask_pooling_proj\.(\d)\.(weight|bias)',
             r'head.decoder.mask_pooling_proj.\1.\2'),
        Rule(_PR + r'class_embed\.layers\.(\d)\.(weight|bias)',
             r'head.decoder.cls_embed.layers.\1.\2'),
        Rule(_PR + r'logit_scale', r'head.logit_scale'),
    ]
    return rules


OFFICIAL_DROPS = (
    (r'sam\.(prompt_encoder|mask_decoder)\..*', "SAM's prompt encoder and mask decoder "
     '(FrozenSeg runs only the image encoder)'),
    (r'criterion\.empty_weight', 'a loss buffer (MaskCriterion rebuilds it from eos_coef)'),
)


def convert_official_frozenseg(state_dict: Dict[str, Tensor]
                               ) -> Tuple[Dict[str, Tensor], ConversionReport]:
    """Official ``{'model': ...}`` (or its inner state dict) -> mmfusion keys."""
    if 'model' in state_dict and isinstance(state_dict['model'], dict):
        state_dict = state_dict['model']
    return convert_keys(state_dict, official_rules(), OFFICIAL_DROPS,
                        source='FrozenSeg checkpoint')
