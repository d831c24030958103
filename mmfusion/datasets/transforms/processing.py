from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform

from mmfusion.registry import TRANSFORMS


@TRANSFORMS.register_module()
class CropToBox(BaseTransform):
    """Crop ``results['img']`` to ``results['bbox']`` (COCO ``[x, y, w, h]``).

    The box is enlarged by ``margin`` (a fraction of its longer side) on each
    side and, with ``square=True``, made square around its centre, so a later
    ``Resize`` keeps the object's aspect ratio. Parts outside the image are
    filled with ``pad_value``. Deterministic: the crop depends only on the box.
    Updates ``img``, ``img_shape`` and adds ``crop_box`` (x1, y1, x2, y2).
    """

    def __init__(self, margin: float = 0.15, square: bool = True, pad_value: int = 0) -> None:
        if margin < 0:
            raise ValueError(f'margin must be >= 0, got {margin}')
        self.margin = margin
        self.square = square
        self.pad_value = pad_value

    def transform(self, results: dict) -> Optional[dict]:
        if 'bbox' not in results:
            raise KeyError('CropToBox needs results["bbox"] (COCO [x, y, w, h]); '
                           f'got keys {sorted(results)}')
        x, y, w, h = (float(v) for v in results['bbox'])
        if w <= 0 or h <= 0:
            raise ValueError(f'CropToBox: empty box {results["bbox"]} in {results.get("img_path")}')
        cx, cy = x + w / 2, y + h / 2
        half_w, half_h = w / 2, h / 2
        if self.square:
            half_w = half_h = max(half_w, half_h)
        pad = self.margin * 2 * max(half_w, half_h)
        x1, y1 = int(np.floor(cx - half_w - pad)), int(np.floor(cy - half_h - pad))
        x2, y2 = int(np.ceil(cx + half_w + pad)), int(np.ceil(cy + half_h + pad))
        img = results['img']
        height, width = img.shape[:2]
        out = np.full((y2 - y1, x2 - x1) + img.shape[2:], self.pad_value, dtype=img.dtype)
        sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
        out[sy1 - y1:sy2 - y1, sx1 - x1:sx2 - x1] = img[sy1:sy2, sx1:sx2]
        results['img'] = out
        results['img_shape'] = out.shape[:2]
        results['crop_box'] = (x1, y1, x2, y2)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(margin={self.margin}, square={self.square})'


@TRANSFORMS.register_module()
class MattingRandomFlip(BaseTransform):
    """Flip a matting sample left-right with probability ``prob``: the image,
    ``gt_alpha``, ``gt_trimap`` (and ``fg``/``bg`` when loaded) and the box
    prompt ``alpha_box``. mmcv's ``RandomFlip`` knows none of the matting
    keys, so it would leave the alpha unflipped under a flipped image.
    """

    def __init__(self, prob: float = 0.5) -> None:
        if not 0 <= prob <= 1:
            raise ValueError(f'MattingRandomFlip: prob must be in [0, 1], got {prob}')
        self.prob = prob

    def transform(self, results: dict) -> dict:
        flip = bool(np.random.rand() < self.prob)
        results['flip'] = flip
        results['flip_direction'] = 'horizontal' if flip else None
        if not flip:
            return results
        for key in ('img', 'gt_alpha', 'gt_trimap', 'fg', 'bg'):
            if key in results:
                results[key] = np.ascontiguousarray(results[key][:, ::-1])
        if 'alpha_box' in results:
            w = results['img'].shape[1]
            x1, y1, x2, y2 = results['alpha_box']
            results['alpha_box'] = np.array([w - x2, y1, w - x1, y2], np.float32)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(prob={self.prob})'
