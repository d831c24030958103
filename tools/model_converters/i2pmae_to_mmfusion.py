"""Convert an official I2P-MAE checkpoint (ZrrSkywalker/I2P-MAE
``ckpt-*.pth``: ``{'base_model': state_dict, 'optimizer', 'epoch', ...}``,
keys with a ``module.`` prefix when saved from ``nn.DataParallel``) to an
mmfusion checkpoint.

    python tools/model_converters/i2pmae_to_mmfusion.py SRC DST

The layout is recognised from the keys:

- pre-training (``I2P_MAE``) -> ``I2PMAE`` (encoder ``I2PMAEEncoder``,
  teacher ``DepthViewTeacher`` on ``OpenCLIPImageEncoder`` ViT-B-16): every
  key keeps its name except the saved CLIP model: its image tower
  ``clip_model.visual.*`` becomes ``teacher.encoder.visual.*`` (open_clip's
  ViT has OpenAI CLIP's parameter names), its text tower
  (``clip_model.{transformer,token_embedding,positional_embedding,ln_final,
  text_projection,logit_scale}``) is dropped: the teacher has none;
- fine-tuning (``I2P_MAE_ModelNet40`` / ``I2P_MAE_ScanObjectNN``) ->
  ``PointCloudClassifier`` with ``I2PMAEEncoder(norms=False)``:
  ``h_encoder.*`` -> ``encoder.*``; ``norm`` and ``cls_head_finetune`` keep
  their names.

fp16 tensors (CLIP's linear/conv weights: the official code loads CLIP on
the GPU, where ``clip.load`` converts them) are cast to float32. DST loads
strictly into the model (``load_from=DST``). To start a classifier from a
pre-training checkpoint, give it to the encoder instead
(``encoder=dict(type='I2PMAEEncoder', checkpoint=SRC)``, official or
converted with ``prefix='h_encoder.'``).
"""
import os.path as osp
import re
import sys
from typing import Dict, List, Tuple

import torch
from torch import Tensor

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmfusion.utils.checkpoint import unwrap_state_dict  # noqa: E402
from mmfusion.utils.key_mapping import ConversionReport, Rule, convert_keys, converter_main  # noqa: E402

CLIP_TEXT = r'clip_model\.(transformer\..*|token_embedding\.weight|positional_embedding|' \
            r'ln_final\.(weight|bias)|text_projection|logit_scale)'

PRETRAIN_RULES = [
    Rule(r'clip_model\.visual\.(.*)', r'teacher.encoder.visual.\1'),
    Rule(r'(mask_token|h_encoder\..*|h_decoder\..*|decoder_pos_embeds\..*|token_prop\..*|'
         r'decoder_norm\..*|rec_head_3d\..*|rec_head_2d\..*)', r'\1'),
]
PRETRAIN_DROPS = [(CLIP_TEXT, 'the CLIP text tower (the teacher is the image tower only)')]

FINETUNE_RULES = [
    Rule(r'h_encoder\.(.*)', r'encoder.\1'),
    Rule(r'(norm\.(weight|bias)|cls_head_finetune\..*)', r'\1'),
]


def layout_of(state_dict: Dict[str, Tensor]) -> str:
    """``'finetune'`` when the keys hold the classification head, else
    ``'pretrain'``."""
    if any(k.startswith('cls_head_finetune.') for k in state_dict):
        return 'finetune'
    return 'pretrain'


def with_casts(rules: List[Rule], state_dict: Dict[str, Tensor]) -> List[Rule]:
    """``rules`` preceded by one exact rule per fp16 tensor that renames it
    as its general rule does and casts it to float32."""
    casts = []
    for key, value in state_dict.items():
        if not (torch.is_tensor(value) and value.dtype == torch.float16):
            continue
        for rule in rules:
            match = re.fullmatch(rule.pattern, key)
            if match is not None:
                casts.append(Rule(re.escape(key), match.expand(rule.target).replace('\\', r'\\'),
                                  transform=lambda t: t.float(), note='fp16 -> float32'))
                break
    return casts + rules


def convert_official_i2pmae(checkpoint: object, source: str = 'I2P-MAE checkpoint'
                            ) -> Tuple[Dict[str, Tensor], ConversionReport]:
    """An official I2P-MAE checkpoint (the loaded file, or its state dict) ->
    (mmfusion state dict, report)."""
    state_dict = unwrap_state_dict(checkpoint, source)
    if layout_of(state_dict) == 'finetune':
        rules, drops = FINETUNE_RULES, []
    else:
        rules, drops = PRETRAIN_RULES, PRETRAIN_DROPS
    return convert_keys(state_dict, with_casts(rules, state_dict), drops, source)


def main(argv=None) -> None:
    converter_main(convert_official_i2pmae, __doc__.split('\n\n')[0], argv)


if __name__ == '__main__':
    main()
