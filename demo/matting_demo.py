"""Matte one object of a photo from a box, and re-composite it on a new background.

::

    python demo/matting_demo.py IMAGE --box x1 y1 x2 y2 [--background IMG] [--out-dir DIR]

writes ``DIR/<stem>_alpha.png`` (8-bit alpha), ``DIR/<stem>_composite.png``
(alpha * image + (1 - alpha) * background) and ``DIR/<stem>_sam_mask.png``
(the frozen SAM's box mask, for comparison). IMAGE is a file or ``skimage:NAME``;
the box is in the image's pixels; the background (default: a checkerboard) is
resized to the image. ``--config``/``--checkpoint`` default to the tiny
SynthMatte recipe that ``make semat`` trains; e.g. on the real PASCAL VOC photo
``make voc_photo`` writes::

    python demo/matting_demo.py data/voc_photo/images/voc_2011_000003.png \\
        --box 179 66 316 231 --background skimage:coffee
"""
import argparse
import os.path as osp
from typing import Optional, Sequence, Union

import mmcv
from mmengine.utils import mkdir_or_exist

from mmfusion.apis import MattingInferencer
from mmfusion.apis.inference import load_image
from mmfusion.apis.vision_inferencers import alpha_to_uint8
from mmfusion.utils.compile import add_compile_args, compile_arg

NAME = 'semat_sam-tiny_1xb8-1200it_synthmatte'
DEFAULT_CONFIG = f'configs/semat/{NAME}.py'
DEFAULT_CHECKPOINT = f'work_dirs/{NAME}/iter_1200.pth'


def run(image_spec: str, box: Sequence[float], background: Optional[str] = None,
        out_dir: str = 'outputs/matting', config: str = DEFAULT_CONFIG,
        checkpoint: str = DEFAULT_CHECKPOINT, device: str = 'cpu',
        compile: Union[bool, dict] = False) -> dict:
    """Matte ``image_spec`` inside ``box``; returns the written paths, the
    alpha (float, [0, 1]) and the prediction dict (``compile``: see
    :class:`~mmfusion.apis.FusionInferencer`)."""
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint} (`make semat` trains the '
                                'tiny SynthMatte SEMat)')
    image = load_image(image_spec)
    if isinstance(image, str) and not osp.isfile(image):
        raise FileNotFoundError(f'image not found: {image}')
    inferencer = MattingInferencer(config, checkpoint, device=device, show_progress=False,
                                   compile=compile)
    out = inferencer(image, box=[float(v) for v in box], sam_mask=True, background=background,
                     return_datasamples=True)
    sample, drawn = out['predictions'][0], out['visualization'][0]
    mkdir_or_exist(out_dir)
    stem = osp.splitext(osp.basename(image_spec.split(':')[-1]))[0]
    paths = dict(alpha=osp.join(out_dir, f'{stem}_alpha.png'),
                 composite=osp.join(out_dir, f'{stem}_composite.png'),
                 sam_mask=osp.join(out_dir, f'{stem}_sam_mask.png'))
    mmcv.imwrite(alpha_to_uint8(sample.pred_alpha.data[0]), paths['alpha'])  # 8-bit gray
    mmcv.imwrite(alpha_to_uint8(sample.pred_sam_mask.data[0].float()), paths['sam_mask'])
    inferencer.save_visualization(drawn, paths['composite'])
    pred = inferencer.pred_to_dict(sample)
    print(inferencer.describe(pred))
    for path in paths.values():
        print(f'wrote {path}')
    return dict(paths=paths, alpha=sample.pred_alpha.data[0].cpu().numpy(), prediction=pred)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description='SEMat matting demo', formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 2)[2])
    parser.add_argument('image', help='image file, or skimage:NAME')
    parser.add_argument('--box', type=float, nargs=4, required=True,
                        metavar=('X1', 'Y1', 'X2', 'Y2'), help='the object, image pixels')
    parser.add_argument('--background', default=None,
                        help='new background (file or skimage:NAME); default a checkerboard')
    parser.add_argument('--out-dir', default='outputs/matting')
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--checkpoint', default=DEFAULT_CHECKPOINT)
    parser.add_argument('--device', default='cpu')
    add_compile_args(parser, 'inference')
    args = parser.parse_args(argv)
    try:
        run(args.image, args.box, args.background, args.out_dir, args.config, args.checkpoint,
            args.device, compile_arg(args))
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))


if __name__ == '__main__':
    main()
