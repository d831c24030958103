"""Convert a released GMS mapping-network checkpoint (King-HAW/GMS
``ckpt/valid_{bus,busi,glas,ham10000,kvasir-instrument}/best_model.pth``,
``{'model': state_dict}`` of ``ResAttnUNet_DS``) to mmfusion ``GMS`` weights.

    python tools/model_converters/gms_to_mmfusion.py SRC DST

DST holds the ``mapping_net.`` weights of the paper-scale configs
(``configs/gms/gms_sd2-vae_1xb8-1000e_*.py``, which build all four official
heads) and loads with ``--cfg-options load_from=DST``; the frozen SD-2 VAE
comes from ``model.vae.pretrained``. The mapping is in
``mmfusion/models/gms/official.py``.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmfusion.models.gms.official import convert_official_gms  # noqa: E402
from mmfusion.utils.key_mapping import converter_main  # noqa: E402


def main(argv=None) -> None:
    converter_main(convert_official_gms, __doc__.split('\n\n')[0], argv)


if __name__ == '__main__':
    main()
