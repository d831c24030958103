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
from typing import Optional, Sequence

import cv2
import mmcv
import numpy as np
import torch
from mmengine.dataset import pseudo_collate
from mmengine.utils import mkdir_or_exist

from mmfusion.apis import build_test_pipeline, init_model, load_image, prepare_inputs

NAME = 'semat_sam-tiny_1xb8-1200it_synthmatte'
DEFAULT_CONFIG = f'configs/semat/{NAME}.py'
DEFAULT_CHECKPOINT = f'work_dirs/{NAME}/iter_1200.pth'


def checkerboard(h: int, w: int, cell: int = 16) -> np.ndarray:
    """A grey checkerboard (BGR uint8), the usual backdrop of a cut-out."""
    ys, xs = np.mgrid[:h, :w]
    board = ((ys // cell + xs // cell) % 2).astype(np.uint8) * 80 + 120
    return np.repeat(board[..., None], 3, axis=2)


def read_bgr(spec: str, what: str) -> np.ndarray:
    image = load_image(spec)
    if isinstance(image, np.ndarray):
        return image
    if not osp.isfile(image):
        raise FileNotFoundError(f'{what} not found: {image}')
    array = mmcv.imread(image)
    if array is None:
        raise ValueError(f'{what} {image} is not a readable image')
    return array


def composite(image: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """alpha * image + (1 - alpha) * background, uint8 (all BGR, alpha in [0, 1])."""
    a = alpha[..., None].astype(np.float32)
    out = a * image.astype(np.float32) + (1 - a) * background.astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def run(image_spec: str, box: Sequence[float], background: Optional[str] = None,
        out_dir: str = 'outputs/matting', config: str = DEFAULT_CONFIG,
        checkpoint: str = DEFAULT_CHECKPOINT, device: str = 'cpu') -> dict:
    """Matte ``image_spec`` inside ``box``; returns the written paths and the alpha."""
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint} (`make semat` trains the '
                                'tiny SynthMatte SEMat)')
    image = read_bgr(image_spec, 'image')
    h, w = image.shape[:2]
    x1, y1, x2, y2 = box
    if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
        raise ValueError(f'{image_spec}: box {list(box)} is empty or outside the {w}x{h} image '
                         '(x1 y1 x2 y2, pixels)')
    model = init_model(config, checkpoint, device=device)
    packed = prepare_inputs([image], build_test_pipeline(model.cfg))[0]
    packed['data_samples'].set_metainfo(dict(alpha_box=[float(v) for v in box],
                                             img_path=image_spec))
    outputs = {}
    for output in ('alpha', 'sam_mask'):
        model.test_cfg['output'] = output
        with torch.no_grad():
            result = model.test_step(pseudo_collate([packed]))[0]
        outputs[output] = result.pred_alpha.data[0].cpu().numpy()
    alpha = outputs['alpha']
    back = checkerboard(h, w) if background is None else \
        cv2.resize(read_bgr(background, 'background'), (w, h), interpolation=cv2.INTER_AREA)
    mkdir_or_exist(out_dir)
    stem = osp.splitext(osp.basename(image_spec.split(':')[-1]))[0]
    paths = dict(alpha=osp.join(out_dir, f'{stem}_alpha.png'),
                 composite=osp.join(out_dir, f'{stem}_composite.png'),
                 sam_mask=osp.join(out_dir, f'{stem}_sam_mask.png'))
    mmcv.imwrite(np.round(alpha * 255).astype(np.uint8), paths['alpha'])
    mmcv.imwrite(composite(image, alpha, back), paths['composite'])
    mmcv.imwrite((outputs['sam_mask'] * 255).astype(np.uint8), paths['sam_mask'])
    inside = np.zeros_like(alpha, dtype=bool)
    inside[int(y1):int(y2), int(x1):int(x2)] = True
    soft = (alpha > 0.05) & (alpha < 0.95)
    print(f'alpha: mean {alpha[inside].mean():.3f} inside the box, {alpha[~inside].mean():.3f} '
          f'outside; {soft.mean() * 100:.1f}% of pixels fractional (0.05-0.95)')
    for key, path in paths.items():
        print(f'wrote {path}')
    return dict(paths=paths, alpha=alpha)


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
    args = parser.parse_args(argv)
    try:
        run(args.image, args.box, args.background, args.out_dir, args.config, args.checkpoint,
            args.device)
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))


if __name__ == '__main__':
    main()
