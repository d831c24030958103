"""Convert the official FrozenSeg checkpoint (chenxi52/FrozenSeg, detectron2
``{'model': ...}``) to an mmfusion ``FrozenSeg`` checkpoint.

    python tools/model_converters/frozenseg_to_mmfusion.py SRC DST

DST loads strictly into
configs/frozenseg/frozenseg_convnext-l-sam-vit-b_8xb2-368k_coco-panoptic.py
(``--cfg-options load_from=DST`` or ``tools/test.py CONFIG DST``). The mapping,
and what is dropped and why, is in ``mmfusion/models/frozenseg/official.py``.
"""
import argparse
import io
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmfusion.models.frozenseg.official import convert_official_frozenseg  # noqa: E402
from mmfusion.utils import safe_torch_load  # noqa: E402
from mmfusion.utils.checkpoint import AtomicLocalBackend  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='official checkpoint (.pth)')
    parser.add_argument('dst', help='mmfusion checkpoint to write')
    args = parser.parse_args(argv)
    state, report = convert_official_frozenseg(safe_torch_load(args.src))
    print(report.summary())
    buffer = io.BytesIO()
    torch.save(dict(state_dict=state, meta=dict(converted_from=osp.basename(args.src))), buffer)
    AtomicLocalBackend().put(buffer.getvalue(), args.dst)  # no half-written file on failure
    print(f'wrote {len(state)} tensors to {args.dst}')


if __name__ == '__main__':
    main()
