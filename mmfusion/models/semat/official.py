"""The official SEMat (SAM ViT-L) checkpoint (XiaRho/SEMat ``SEMat_SAM.pth``,
detectron2 ``{'model': state_dict}`` or the bare state dict) -> an mmfusion
``SEMat(arch='vit_l', img_size=1024)`` state dict.

Key facts (read from the official code):

- The checkpoint is the state dict of ``SamHqMatte``
  (``modeling/meta_arch/sam_hq_matting.py``) built by ``configs/SEMat_SAM.py``.
  Its registered modules are ``sam_model``, ``condition_layer`` and
  ``matting_decoder``; ``criterion`` holds no tensors, ``sam_predictor`` is a
  plain object and the ``pixel_mean``/``pixel_std`` buffers (of ``SamHqMatte``
  and of ``Sam``, ``modeling/semantic_enhanced_matting/modeling/sam.py``) are
  not persistent. With ``backbone_bbox_prompt='bbox'`` and the other flags of
  the config off, ``init_lora`` adds only ``condition_layer['patch_embed']``.
- ``sam_model.image_encoder`` is segment_anything's ``ImageEncoderViT``
  (``modeling/semantic_enhanced_matting/modeling/image_encoder.py``: same
  parameters, a forward that also takes the box condition) wrapped by
  ``peft.get_peft_model`` (``SamHqMatte.init_lora``: r 16, alpha 16, targets
  ``qkv`` and ``proj``, so every attention ``qkv``/``proj`` and the patch
  embedding's ``proj`` conv): keys ``base_model.model.<encoder key>``, the
  wrapped layer under ``base_layer``, the adapters under
  ``lora_A.default``/``lora_B.default``. mmfusion injects the same LoRA in
  place (``peft.inject_adapter_in_model``), so only the ``base_model.model``
  prefix goes.
- ``sam_model.mask_decoder`` is ``MaskDecoderHQMatting``
  (``modeling/semantic_enhanced_matting/modeling/mask_decoder_hq_matting.py``)
  with ``wo_hq=True`` (``MaskDecoderHQ`` in ``mask_decoder_hq.py`` then
  creates none of HQ-SAM's ``hf_token``/``hf_mlp``/``compress_vit_feat``/
  ``embedding_*``, leaving SAM's ``MaskDecoder`` keys) and 3 matting tokens:
  ``matting_hf_token``, ``matting_hf_mlp``, ``matting_compress_vit_feat``,
  ``matting_embedding_encoder``, ``matting_embedding_maskfeature`` go to
  mmfusion's ``MattingTokens`` (same names), the rest to SAM's decoder.
- ``sam_model.frozen_mask_decoder`` (``modeling/semantic_enhanced_matting/
  build_sam.py``, ``frozen_decoder=True``): a ``MaskDecoderHQ(wo_hq=True)``
  loaded from the same SAM checkpoint as the decoder. ``_build_sam`` creates
  it only when a SAM checkpoint is given (training; the official evaluation
  builds the model without one and ignores these keys). A checkpoint without
  them gets a copy of SAM's decoder weights: the official training freezes
  every decoder parameter whose name lacks ``matting``, so the two are equal.
- ``condition_layer.patch_embed`` is a 4-channel (image + box mask)
  ``PatchEmbed``; same names in mmfusion.
- ``matting_decoder`` is ``MattingDetailDecoder``
  (``modeling/decoder/unet_detail_capture.py``; config: ``img_feat_in=6``,
  ``vit_intern_feat_in=1024``, ``vit_intern_feat_index=[0, 1, 2, 3]``,
  ``block_num=2``, detectron2 ``NaiveSyncBatchNorm`` with BatchNorm2d's keys):
  mmfusion's :class:`MatteDecoder` has the same module names and indices
  (``basic_layer`` 0 and 2 with a GELU at 1, the norm at 1 and 4 of each
  ``Sequential``), so only the prefix changes.

Nothing is dropped (:data:`OFFICIAL_DROPS` is empty) and no tensor is
transformed; the HQ-SAM and SAM2 variants (``SEMat_HQ-SAM.pth``,
``SEMat_SAM2.pth``) have other keys and are refused.
"""
from typing import Dict, Tuple

from torch import Tensor

from mmfusion.utils.key_mapping import ConversionReport, Rule, convert_keys

_SAM = r'sam_model\.'
_MATTING = r'matting_(?:hf_token|hf_mlp|compress_vit_feat|embedding_encoder|embedding_maskfeature)'
_SAM_DECODER = r'(?:transformer|iou_token|mask_tokens|output_upscaling|output_hypernetworks_mlps|' \
               r'iou_prediction_head)'
_FROZEN_NOTE = ("SAM's decoder, copied: the checkpoint has no frozen_mask_decoder (both hold "
                "the SAM checkpoint's decoder; the official training updates neither)")


def official_rules() -> list:
    """Rename rules of the official checkpoint (see the module docstring)."""
    return [
        # the LoRA image encoder: peft's get_peft_model wrapper -> injected in place
        Rule(_SAM + r'image_encoder\.base_model\.model\.(.*)', r'image_encoder.image_encoder.\1'),
        Rule(_SAM + r'prompt_encoder\.(.*)', r'prompt_encoder.prompt_encoder.\1'),
        # MaskDecoderHQMatting: the matting tokens, then SAM's own decoder
        Rule(_SAM + r'mask_decoder\.(' + _MATTING + r'\..*)', r'matting_tokens.\1'),
        Rule(_SAM + r'mask_decoder\.(' + _SAM_DECODER + r'\..*)', r'mask_decoder.mask_decoder.\1'),
        Rule(_SAM + r'frozen_mask_decoder\.(' + _SAM_DECODER + r'\..*)',
             r'frozen_mask_decoder.mask_decoder.\1'),
        Rule(r'condition_layer\.patch_embed\.proj\.(weight|bias)',
             r'condition_layer.patch_embed.proj.\1'),
        Rule(r'matting_decoder\.(.*)', r'matte_decoder.\1'),
    ]


#: ``(pattern, reason)`` of official keys left out on purpose: none (every
#: tensor of the SEMat (SAM) checkpoint has a place in mmfusion's SEMat).
OFFICIAL_DROPS: Tuple[Tuple[str, str], ...] = ()


def convert_official_semat(state_dict: Dict[str, Tensor]
                           ) -> Tuple[Dict[str, Tensor], ConversionReport]:
    """Official ``{'model': ...}`` (or its inner state dict) -> mmfusion keys.

    A checkpoint without ``sam_model.frozen_mask_decoder`` gets SAM's decoder
    weights for it (reported as transformed, see the module docstring).
    """
    if 'model' in state_dict and isinstance(state_dict['model'], dict):
        state_dict = state_dict['model']
    state, report = convert_keys(state_dict, official_rules(), OFFICIAL_DROPS,
                                 source='SEMat checkpoint')
    if not any(k.startswith('frozen_mask_decoder.') for k in state):
        src = 'mask_decoder.mask_decoder.'
        for key in [k for k in state if k.startswith(src)]:
            target = 'frozen_' + key
            state[target] = state[key].clone()
            report.transformed.append(('sam_model.mask_decoder.' + key[len(src):], target,
                                       _FROZEN_NOTE))
    return state, report
