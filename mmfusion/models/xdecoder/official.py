"""The official X-Decoder checkpoint (microsoft/X-Decoder,
``xdecoder_focalt_last.pt``: a plain state dict of ``GeneralizedXdecoder``)
-> an mmfusion ``XDecoder`` state dict.

Key facts (read from the official code; configs/xdecoder/README.md):

- ``backbone.*`` is FocalNet ``focal_dw``; mmfusion's ``FocalNetDW`` has the
  same module names, so these keys keep their names;
- ``sem_seg_head.pixel_decoder`` is detectron2's transformer-encoder FPN:
  ``input_proj`` (1x1 conv), ``transformer.encoder.layers.i`` (post-norm
  ``self_attn``/``linear1``/``linear2``/``norm1``/``norm2``), ``layer_4`` (the
  encoder's 3x3 output conv + GN), ``adapter_k``/``layer_k`` (k = 1..3, the
  FPN's lateral and output convs of strides 4/8/16, each with its GN as
  ``.norm``) and ``mask_features``;
- ``sem_seg_head.predictor`` is the decoder: separate lists of
  self-attention, cross-attention and FFN layers (each with its post-norm),
  ``query_feat``/``query_embed`` of 101 rows (the last is the image-level
  "class" query), ``level_embed``, ``decoder_norm``, the 3-layer
  ``mask_embed`` MLP, ``class_embed`` and ``caping_embed`` stored as
  (in, out) matrices (``x @ W``; no bias), ``pos_embed_caping`` (77 caption
  positions), and the ``self_attn_mask`` buffer;
- ``sem_seg_head.predictor.lang_encoder`` is the text side:
  ``lang_encoder.*`` a CLIP text transformer (open_clip's names:
  ``token_embedding``, ``positional_embedding``, ``resblocks``, ``ln_final``),
  ``lang_proj`` (width x 512, ``x @ W`` as open_clip's ``text_projection``)
  and ``logit_scale`` (the classification temperature, also the retrieval
  one);
- ``backbone_proj`` projects the pooled stride-32 map for the retrieval
  ensemble; ``criterion.empty_weight`` is a loss buffer.
"""
from typing import Dict, Tuple

from torch import Tensor

from mmfusion.utils.key_mapping import ConversionReport, Rule, convert_keys

_PD = r'sem_seg_head\.pixel_decoder\.'
_PR = r'sem_seg_head\.predictor\.'
_LANG = _PR + r'lang_encoder\.'
# Official FPN level k (1 = stride 4) -> mmdet's lateral/output conv index.
_NUM_FPN_LEVELS = 3
NUM_OBJECT_QUERIES = 100


def _transpose(t: Tensor) -> Tensor:
    """(in, out) matrix used as ``x @ W`` -> Linear weight (out, in)."""
    return t.t().contiguous()


def _rows(start: int, stop: int):
    def take(t: Tensor) -> Tensor:
        return t[start:stop].clone()
    return take


def official_rules(num_queries: int = NUM_OBJECT_QUERIES) -> list:
    """Rename rules of the official checkpoint (see the module docstring)."""
    pd, head = r'head.pixel_decoder.', r'head.'
    dec = head + r'decoder.'
    rules = [
        Rule(r'(backbone\..*)', r'\1'),
        # pixel decoder: detectron2 names -> mmdet's TransformerEncoderPixelDecoder
        Rule(_PD + r'input_proj\.(weight|bias)', pd + r'encoder_in_proj.\1'),
        Rule(_PD + r'transformer\.encoder\.layers\.(\d+)\.self_attn\.(.*)',
             pd + r'encoder.layers.\1.self_attn.attn.\2'),
        Rule(_PD + r'transformer\.encoder\.layers\.(\d+)\.linear1\.(weight|bias)',
             pd + r'encoder.layers.\1.ffn.layers.0.0.\2'),
        Rule(_PD + r'transformer\.encoder\.layers\.(\d+)\.linear2\.(weight|bias)',
             pd + r'encoder.layers.\1.ffn.layers.1.\2'),
        Rule(_PD + r'transformer\.encoder\.layers\.(\d+)\.norm1\.(weight|bias)',
             pd + r'encoder.layers.\1.norms.0.\2'),
        Rule(_PD + r'transformer\.encoder\.layers\.(\d+)\.norm2\.(weight|bias)',
             pd + r'encoder.layers.\1.norms.1.\2'),
        Rule(_PD + rf'layer_{_NUM_FPN_LEVELS + 1}\.weight', pd + r'encoder_out_proj.conv.weight'),
        Rule(_PD + rf'layer_{_NUM_FPN_LEVELS + 1}\.norm\.(weight|bias)',
             pd + r'encoder_out_proj.gn.\1'),
        Rule(_PD + r'mask_features\.(weight|bias)', pd + r'mask_feature.\1'),
        # decoder layers: three official lists -> mmdet's one layer per depth
        Rule(_PR + r'transformer_cross_attention_layers\.(\d+)\.multihead_attn\.(.*)',
             dec + r'layers.\1.cross_attn.attn.\2'),
        Rule(_PR + r'transformer_cross_attention_layers\.(\d+)\.norm\.(weight|bias)',
             dec + r'layers.\1.norms.0.\2'),
        Rule(_PR + r'transformer_self_attention_layers\.(\d+)\.self_attn\.(.*)',
             dec + r'layers.\1.self_attn.attn.\2'),
        Rule(_PR + r'transformer_self_attention_layers\.(\d+)\.norm\.(weight|bias)',
             dec + r'layers.\1.norms.1.\2'),
        Rule(_PR + r'transformer_ffn_layers\.(\d+)\.linear1\.(weight|bias)',
             dec + r'layers.\1.ffn.layers.0.0.\2'),
        Rule(_PR + r'transformer_ffn_layers\.(\d+)\.linear2\.(weight|bias)',
             dec + r'layers.\1.ffn.layers.1.\2'),
        Rule(_PR + r'transformer_ffn_layers\.(\d+)\.norm\.(weight|bias)',
             dec + r'layers.\1.norms.2.\2'),
        Rule(_PR + r'(decoder_norm\.(weight|bias)|level_embed\.weight)', dec + r'\1'),
        # the 101 query rows: 100 object queries, then the image query
        Rule(_PR + r'query_feat\.weight', dec + r'query_feat.weight',
             _rows(0, num_queries), f'rows 0..{num_queries - 1}: object queries'),
        Rule(_PR + r'query_embed\.weight', dec + r'query_embed.weight',
             _rows(0, num_queries), f'rows 0..{num_queries - 1}: object queries'),
        # the MLP's Linear layers 0/1/2 sit at 0/2/4 of mmfusion's Sequential (ReLUs between)
        *[Rule(_PR + rf'mask_embed\.layers\.{i}\.(weight|bias)', dec + rf'mask_embed.{2 * i}.\1')
          for i in range(3)],
        Rule(_PR + r'class_embed', dec + r'cls_embed.weight', _transpose,
             '(in, out) matrix -> bias-free Linear weight'),
        Rule(_PR + r'caping_embed', head + r'caption_out.weight', _transpose,
             '(in, out) matrix -> bias-free Linear weight'),
        Rule(_PR + r'pos_embed_caping\.weight', head + r'caption_pos.weight'),
        # text side -> open_clip text tower names
        Rule(_LANG + r'lang_encoder\.(token_embedding\.weight|positional_embedding|'
             r'ln_final\.(weight|bias))', r'text_encoder.\1'),
        Rule(_LANG + r'lang_encoder\.resblocks\.(.*)', r'text_encoder.transformer.resblocks.\1'),
        Rule(_LANG + r'lang_proj', r'text_encoder.text_projection'),
        Rule(_LANG + r'logit_scale', head + r'logit_scale'),
    ]
    # mmdet's lateral/output convs are indexed from the highest resolution,
    # as the official adapter_k/layer_k (k = 1: stride 4).
    for k in range(1, _NUM_FPN_LEVELS + 1):
        for src, dst in ((f'adapter_{k}', f'lateral_convs.{k - 1}'),
                         (f'layer_{k}', f'output_convs.{k - 1}')):
            rules += [Rule(_PD + rf'{src}\.weight', pd + rf'{dst}.conv.weight'),
                      Rule(_PD + rf'{src}\.norm\.(weight|bias)', pd + rf'{dst}.gn.\1')]
    return rules


def image_query_rules(num_queries: int = NUM_OBJECT_QUERIES) -> list:
    """The last row of ``query_feat``/``query_embed``: the image query."""
    return [
        Rule(_PR + r'query_feat\.weight', r'head.image_query_feat.weight',
             _rows(num_queries, num_queries + 1), f'row {num_queries}: the image query'),
        Rule(_PR + r'query_embed\.weight', r'head.image_query_pos.weight',
             _rows(num_queries, num_queries + 1), f'row {num_queries}: the image query'),
    ]


# Keys left out on purpose, with the reason printed by the converter.
DROPS = [
    (_PR + r'self_attn_mask', 'a constant buffer (mmfusion builds its attention mask per call)'),
    (r'criterion\..*', 'loss buffers (no weights)'),
    (r'pixel_(mean|std)', 'normalisation constants (the data preprocessor holds them)'),
    (r'backbone_proj', 'the retrieval ensemble with pooled backbone features is not '
                       'implemented (retrieval uses the decoder\'s image token)'),
]


def convert_official_xdecoder(state_dict: Dict[str, Tensor],
                              num_queries: int = NUM_OBJECT_QUERIES
                              ) -> Tuple[Dict[str, Tensor], ConversionReport]:
    """Official ``GeneralizedXdecoder`` state dict -> mmfusion ``XDecoder``
    (``configs/xdecoder/xdecoder_focalt_*``) state dict and the report.

    ``query_feat``/``query_embed`` are each split in two (object queries and
    the image query), so they run through the rules twice.
    """
    state_dict = dict(state_dict.get('model', state_dict))
    out, report = convert_keys(state_dict, official_rules(num_queries), DROPS,
                               source='X-Decoder checkpoint')
    split = {k: v for k, v in state_dict.items()
             if k in (_PR.replace('\\', '') + 'query_feat.weight',
                      _PR.replace('\\', '') + 'query_embed.weight')}
    extra, extra_report = convert_keys(split, image_query_rules(num_queries),
                                       source='X-Decoder checkpoint')
    out.update(extra)
    report.transformed += extra_report.transformed
    return out, report
