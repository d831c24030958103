"""Convert the official SEMat (SAM ViT-L) checkpoint (XiaRho/SEMat
``SEMat_SAM.pth``, detectron2 ``{'model': ...}`` or the bare state dict) to an
mmfusion ``SEMat`` checkpoint.

    python tools/model_converters/semat_to_mmfusion.py SRC DST

DST loads strictly into ``SEMat(arch='vit_l', img_size=1024)`` (the defaults:
the official LoRA, 3 matting tokens, the matte decoder with ``norm='SyncBN'``
or ``'BN'``), e.g. ``--cfg-options load_from=DST``. The mapping, and why
nothing is dropped, is in ``mmfusion/models/semat/official.py``.
"""
import argparse
import io
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmfusion.models.semat.official import convert_official_semat  # noqa: E402
from mmfusion.utils import safe_torch_load  # noqa: E402
from mmfusion.utils.checkpoint import AtomicLocalBackend  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='official checkpoint (.pth)')
    parser.add_argument('dst', help='mmfusion checkpoint to write')
    args = parser.parse_args(argv)
    state, report = convert_official_semat(safe_torch_load(args.src))
    print(report.summary())
    buffer = io.BytesIO()
    torch.save(dict(state_dict=state, meta=dict(converted_from=osp.basename(args.src))), buffer)
    AtomicLocalBackend().put(buffer.getvalue(), args.dst)  # no half-written file on failure
    print(f'wrote {len(state)} tensors to {args.dst}')


if __name__ == '__main__':
    main()
