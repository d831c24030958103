"""Image + segmentation-map augmentations of GMS's official recipe
(albumentations ``RandomRotate90``, ``ColorJitter``, ``ShiftScaleRotate``)
that mmcv / mmseg do not offer for an image and its mask together: mmseg's
``RandomRotFlip`` always flips after rotating and ``RandomRotate`` pads with a
constant; mmdet's ``RandomAffine`` ignores ``gt_seg_map``. Flips come from
mmcv's ``RandomFlip``.

Each transform changes ``results['img']`` and every key in
``results['seg_fields']`` (default ``['gt_seg_map']``) with one draw, and keeps
``img_shape`` up to date.
"""
from typing import List, Optional, Tuple

import cv2
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from torchvision.transforms import ColorJitter as TVColorJitter

from mmfusion.registry import TRANSFORMS


def _check_prob(prob: float) -> float:
    if not 0 <= prob <= 1:
        raise ValueError(f'prob must be in [0, 1], got {prob}')
    return prob


def _seg_keys(results: dict) -> List[str]:
    return [k for k in results.get('seg_fields', ['gt_seg_map']) if k in results]


@TRANSFORMS.register_module()
class RandomRotate90(BaseTransform):
    """With probability ``prob``, rotate image and masks by k * 90 degrees
    counter-clockwise, k uniform in {0, 1, 2, 3} (albumentations'
    ``RandomRotate90``: k = 0 is a possible draw)."""

    def __init__(self, prob: float = 0.5) -> None:
        self.prob = _check_prob(prob)

    @cache_randomness
    def _draw(self) -> int:
        return int(np.random.randint(4)) if np.random.rand() < self.prob else 0

    def transform(self, results: dict) -> dict:
        k = self._draw()
        if k:
            for key in ['img'] + _seg_keys(results):
                results[key] = np.ascontiguousarray(np.rot90(results[key], k))
            results['img_shape'] = results['img'].shape[:2]
        results['rotate90_k'] = k
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(prob={self.prob})'


@TRANSFORMS.register_module()
class RandomShiftScaleRotate(BaseTransform):
    """With probability ``prob``, one affine warp of image and masks about the
    image centre (albumentations' ``ShiftScaleRotate``): rotation by an angle
    uniform in ``[-rotate_limit, rotate_limit]`` degrees, scaling by a factor
    uniform in ``[1 - scale_limit, 1 + scale_limit]``, then a shift uniform in
    ``[-shift_limit, shift_limit]`` times the width / height. The image is
    sampled bilinearly, masks by nearest neighbour; outside pixels reflect
    (``cv2.BORDER_REFLECT_101``)."""

    def __init__(self, shift_limit: float = 0.0625, scale_limit: float = 0.1,
                 rotate_limit: float = 45.0, prob: float = 0.5,
                 border_mode: int = cv2.BORDER_REFLECT_101) -> None:
        if not 0 <= scale_limit < 1 or shift_limit < 0 or rotate_limit < 0:
            raise ValueError('need 0 <= scale_limit < 1, shift_limit >= 0 and rotate_limit >= 0; '
                             f'got {scale_limit}, {shift_limit}, {rotate_limit}')
        self.shift_limit = shift_limit
        self.scale_limit = scale_limit
        self.rotate_limit = rotate_limit
        self.prob = _check_prob(prob)
        self.border_mode = border_mode

    @cache_randomness
    def _draw(self) -> Optional[Tuple[float, float, float, float]]:
        if np.random.rand() >= self.prob:
            return None
        angle = np.random.uniform(-self.rotate_limit, self.rotate_limit)
        scale = np.random.uniform(1 - self.scale_limit, 1 + self.scale_limit)
        dx, dy = np.random.uniform(-self.shift_limit, self.shift_limit, size=2)
        return float(angle), float(scale), float(dx), float(dy)

    @staticmethod
    def matrix(angle: float, scale: float, dx: float, dy: float, h: int, w: int) -> np.ndarray:
        """(2, 3) affine matrix mapping input to output pixel coordinates."""
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
        m[0, 2] += dx * w
        m[1, 2] += dy * h
        return m

    def transform(self, results: dict) -> dict:
        params = self._draw()
        if params is None:
            return results
        h, w = results['img'].shape[:2]
        m = self.matrix(*params, h, w)
        results['img'] = cv2.warpAffine(results['img'], m, (w, h), flags=cv2.INTER_LINEAR,
                                        borderMode=self.border_mode)
        for key in _seg_keys(results):
            results[key] = cv2.warpAffine(results[key], m, (w, h), flags=cv2.INTER_NEAREST,
                                          borderMode=self.border_mode)
        results['shift_scale_rotate'] = params
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(shift_limit={self.shift_limit}, '
                f'scale_limit={self.scale_limit}, rotate_limit={self.rotate_limit}, '
                f'prob={self.prob})')


@TRANSFORMS.register_module()
class ColorJitter(BaseTransform):
    """With probability ``prob``, torchvision's ``ColorJitter`` (brightness,
    contrast, saturation, hue, in random order) on the BGR uint8 image; masks
    are untouched. The jitter works on [0, 1] floats and is rounded back to
    uint8 (albumentations' float pipeline keeps the fractions)."""

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0,
                 hue: float = 0.0, prob: float = 1.0) -> None:
        self.jitter = TVColorJitter(brightness, contrast, saturation, hue)
        self.prob = _check_prob(prob)

    @cache_randomness
    def _apply(self) -> bool:
        return bool(np.random.rand() < self.prob)

    def transform(self, results: dict) -> dict:
        if not self._apply():
            return results
        img = results['img']
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f'ColorJitter expects an HxWx3 uint8 BGR image, got '
                             f'{img.dtype} {img.shape} from {results.get("img_path")}')
        rgb = torch.from_numpy(np.ascontiguousarray(img[..., ::-1])).permute(2, 0, 1) / 255.0
        out = self.jitter(rgb).permute(1, 2, 0).numpy()[..., ::-1]
        results['img'] = np.ascontiguousarray(np.round(out * 255.0).astype(np.uint8))
        return results

    def __repr__(self) -> str:
        j = self.jitter
        return (f'{self.__class__.__name__}(brightness={j.brightness}, contrast={j.contrast}, '
                f'saturation={j.saturation}, hue={j.hue}, prob={self.prob})')
