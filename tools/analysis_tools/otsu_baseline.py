"""Otsu-threshold baseline for binary lesion segmentation.

For every image of a split in the BUSI / Kvasir-SEG folder layout
(``images/<stem>.png``, ``masks/<stem>.png``, ``splits/<split>.txt``) the
image is converted to gray, optionally resized to ``--size``, smoothed with a
Gaussian (``--sigma``), and thresholded with Otsu's method; pixels *below*
the threshold are predicted as lesion (lesions are hypoechoic, i.e. dark).
The prediction is compared with the mask (``> 127`` is lesion) at the mask's
native resolution, and the mean per-image Dice, IoU and HD95 (the same
function as mmfusion's ``BinarySegMetric``) are printed as JSON.

Example::

    python tools/analysis_tools/otsu_baseline.py data/synth_lesion --split test
"""
import argparse
import json
import os.path as osp
from typing import List, Optional

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter
from skimage.filters import threshold_otsu

from mmfusion.evaluation import binary_overlap_scores


def otsu_predict(image: Image.Image, size: Optional[int] = None,
                 sigma: float = 2.0) -> np.ndarray:
    """Predict a lesion mask (bool, at the image's resolution) by Otsu thresholding.

    Args:
        image: Input image, any PIL mode.
        size: If given, the gray image is resized to ``size x size`` before
            smoothing and thresholding; the prediction is resized back.
        sigma: Standard deviation of the Gaussian smoothing, in pixels of the
            working resolution.
    """
    gray = image.convert('L')
    native = gray.size
    if size is not None:
        gray = gray.resize((size, size), Image.BILINEAR)
    smooth = gaussian_filter(np.asarray(gray, dtype=np.float64), sigma)
    if smooth.min() == smooth.max():
        pred = np.zeros(smooth.shape, dtype=bool)
    else:
        pred = smooth < threshold_otsu(smooth)
    if size is not None:
        pred = np.asarray(Image.fromarray(pred.astype(np.uint8) * 255).resize(
            native, Image.NEAREST)) > 127
    return pred


def _read_split(data_root: str, split: str) -> List[str]:
    path = osp.join(data_root, 'splits', f'{split}.txt')
    if not osp.isfile(path):
        raise FileNotFoundError(f'split file not found: {path}')
    with open(path) as f:
        stems = [line.strip() for line in f if line.strip()]
    if not stems:
        raise ValueError(f'split file {path} lists no samples')
    return stems


def main() -> None:
    parser = argparse.ArgumentParser(description='Otsu-threshold segmentation baseline')
    parser.add_argument('data_root', help='dataset folder with images/, masks/, splits/')
    parser.add_argument('--split', default='test', help='split name (splits/<split>.txt)')
    parser.add_argument('--size', type=int, default=None,
                        help='resize images to SIZE x SIZE before thresholding '
                        '(default: native resolution)')
    parser.add_argument('--sigma', type=float, default=2.0,
                        help='Gaussian smoothing sigma in pixels (default: 2)')
    args = parser.parse_args()

    scores = []
    for stem in _read_split(args.data_root, args.split):
        with Image.open(osp.join(args.data_root, 'images', stem + '.png')) as img:
            pred = otsu_predict(img, args.size, args.sigma)
        with Image.open(osp.join(args.data_root, 'masks', stem + '.png')) as m:
            gt = np.asarray(m.convert('L')) > 127
        if pred.shape != gt.shape:
            raise ValueError(f'{stem}: image is {pred.shape[::-1]} but mask is {gt.shape[::-1]}')
        scores.append(binary_overlap_scores(pred, gt))

    print(json.dumps(dict(method='otsu', split=args.split, num_images=len(scores),
                          **{k: round(float(np.mean([s[k] for s in scores])), 4)
                             for k in ('dice', 'iou', 'hd95')})))


if __name__ == '__main__':
    main()
