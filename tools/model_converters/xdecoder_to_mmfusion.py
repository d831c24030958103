"""Convert the official X-Decoder checkpoint (microsoft/X-Decoder
``xdecoder_focalt_last.pt``, a plain ``GeneralizedXdecoder`` state dict) to an
mmfusion ``XDecoder`` checkpoint.

    python tools/model_converters/xdecoder_to_mmfusion.py SRC DST

DST loads strictly into configs/xdecoder/xdecoder_focalt_8xb4-50e_coco-panoptic.py
and the evaluation configs that inherit it (``tools/test.py CONFIG DST``,
``demo/image_demo.py CONFIG DST IMAGE``). The mapping, and what is dropped and
why, is in ``mmfusion/models/xdecoder/official.py``.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmfusion.models.xdecoder.official import convert_official_xdecoder  # noqa: E402
from mmfusion.utils.key_mapping import converter_main  # noqa: E402


def main(argv=None) -> None:
    converter_main(convert_official_xdecoder, __doc__.split('\n\n')[0], argv)


if __name__ == '__main__':
    main()
