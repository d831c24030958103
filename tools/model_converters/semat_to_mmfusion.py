"""Convert the official SEMat (SAM ViT-L) checkpoint (XiaRho/SEMat
``SEMat_SAM.pth``, detectron2 ``{'model': ...}`` or the bare state dict) to an
mmfusion ``SEMat`` checkpoint.

    python tools/model_converters/semat_to_mmfusion.py SRC DST

DST loads strictly into ``SEMat(arch='vit_l', img_size=1024)`` (the defaults:
the official LoRA, 3 matting tokens, the matte decoder with ``norm='SyncBN'``
or ``'BN'``), e.g. ``--cfg-options load_from=DST``. The mapping, and why
nothing is dropped, is in ``mmfusion/models/semat/official.py``.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmfusion.models.semat.official import convert_official_semat  # noqa: E402
from mmfusion.utils.key_mapping import converter_main  # noqa: E402


def main(argv=None) -> None:
    converter_main(convert_official_semat, __doc__.split('\n\n')[0], argv)


if __name__ == '__main__':
    main()
