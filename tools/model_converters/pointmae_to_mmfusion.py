"""Convert an official Point-MAE checkpoint (Pang-Yatian/Point-MAE
``ckpt-*.pth``: ``{'base_model': state_dict, 'optimizer', 'epoch', ...}``,
keys with a ``module.`` prefix when saved from ``nn.DataParallel``) to an
mmfusion ``PointCloudClassifier`` checkpoint (encoder
``PointMAEEncoder(cls_token=True, pool='cls+max')``).

    python tools/model_converters/pointmae_to_mmfusion.py SRC DST

The layout is recognised from the keys:

- fine-tuning (``PointTransformer``): ``cls_token``, ``cls_pos``,
  ``encoder.*``, ``pos_embed.*``, ``blocks.*``, ``norm.*`` ->
  ``encoder.<key>``; ``cls_head_finetune.*`` keeps its name. DST loads
  strictly (``load_from=DST``).
- pre-training (``Point_MAE``): ``MAE_encoder.<rest>`` -> ``encoder.<rest>``;
  the MAE decoder (``mask_token``, ``decoder_pos_embed``, ``MAE_decoder``,
  ``increase_dim``) is dropped. As the official ``load_model_from_ckpt``,
  the classifier's ``encoder.cls_token``/``encoder.cls_pos`` and head stay
  at their initialisation (load DST with ``strict=False``, or give SRC to
  the encoder: ``encoder=dict(type='PointMAEEncoder', checkpoint=SRC)``).
  To resume pre-training, no conversion is needed: ``PointMAEPretrainer``
  has the official names and loads SRC's ``base_model`` as it is.
"""
import os.path as osp
import sys
from typing import Dict, Tuple

from torch import Tensor

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmfusion.utils.checkpoint import unwrap_state_dict  # noqa: E402
from mmfusion.utils.key_mapping import ConversionReport, Rule, convert_keys, converter_main  # noqa: E402

PRETRAIN_RULES = [Rule(r'MAE_encoder\.(.*)', r'encoder.\1')]
PRETRAIN_DROPS = [(r'mask_token|decoder_pos_embed\..*|MAE_decoder\..*|increase_dim\..*',
                   'the MAE decoder (pre-training only)')]
FINETUNE_RULES = [
    Rule(r'(cls_token|cls_pos|encoder\..*|pos_embed\..*|blocks\..*|norm\.(weight|bias))',
         r'encoder.\1'),
    Rule(r'cls_head_finetune\..*', r'\g<0>'),
]


def layout_of(state_dict: Dict[str, Tensor]) -> str:
    """``'pretrain'`` when the keys hold ``MAE_encoder.``, else ``'finetune'``."""
    if any(k.startswith('MAE_encoder.') for k in state_dict):
        return 'pretrain'
    return 'finetune'


def convert_official_pointmae(checkpoint: object, source: str = 'Point-MAE checkpoint'
                              ) -> Tuple[Dict[str, Tensor], ConversionReport]:
    """An official Point-MAE checkpoint (the loaded file, or its state dict)
    -> (mmfusion state dict, report)."""
    state_dict = unwrap_state_dict(checkpoint, source)
    if layout_of(state_dict) == 'pretrain':
        return convert_keys(state_dict, PRETRAIN_RULES, PRETRAIN_DROPS, source)
    return convert_keys(state_dict, FINETUNE_RULES, (), source)


def main(argv=None) -> None:
    converter_main(convert_official_pointmae, __doc__.split('\n\n')[0], argv)


if __name__ == '__main__':
    main()
