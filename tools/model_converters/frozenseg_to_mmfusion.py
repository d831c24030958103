"""Convert the official FrozenSeg checkpoint (chenxi52/FrozenSeg, detectron2
``{'model': ...}``) to an mmfusion ``FrozenSeg`` checkpoint.

    python tools/model_converters/frozenseg_to_mmfusion.py SRC DST

DST loads strictly into
configs/frozenseg/frozenseg_convnext-l-sam-vit-b_8xb2-368k_coco-panoptic.py
(``--cfg-options load_from=DST`` or ``tools/test.py CONFIG DST``). The mapping,
and what is dropped and why, is in ``mmfusion/models/frozenseg/official.py``.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmfusion.models.frozenseg.official import convert_official_frozenseg  # noqa: E402
from mmfusion.utils.key_mapping import converter_main  # noqa: E402


def main(argv=None) -> None:
    converter_main(convert_official_frozenseg, __doc__.split('\n\n')[0], argv)


if __name__ == '__main__':
    main()
