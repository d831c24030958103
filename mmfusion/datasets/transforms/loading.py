from typing import Optional

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms import LoadImageFromFile as MMCVLoadImageFromFile
from mmengine import fileio

from mmfusion.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadImageFromFile(MMCVLoadImageFromFile):
    """mmcv's image loader, with an error that names the file when it cannot
    be read or decoded (mmcv raises a bare assertion for undecodable bytes)."""

    def transform(self, results: dict) -> Optional[dict]:
        filename = results['img_path']
        try:
            out = super().transform(results)
        except AssertionError as e:
            raise ValueError(f'cannot decode image file {filename}: not a valid image') from e
        except Exception as e:  # I/O errors from the file backend
            raise ValueError(f'cannot read image file {filename}: {e}') from e
        return out


def read_binary_mask(path: str, ori_shape: Optional[tuple] = None, img_path: Optional[str] = None,
                     backend_args: Optional[dict] = None) -> np.ndarray:
    """A binary mask file as (H, W) 0/1 uint8 (see :class:`LoadBinaryMask`),
    checked against the image size ``ori_shape`` when given."""
    try:
        mask = mmcv.imfrombytes(fileio.get(path, backend_args=backend_args),
                                flag='unchanged', backend='pillow')
    except Exception as e:
        raise ValueError(f'cannot read mask file {path}: {e}') from e
    if mask is None:
        raise ValueError(f'cannot decode mask file {path}: not a valid image')
    if mask.ndim == 3:
        mask = mask.max(axis=2)
    if ori_shape is not None and tuple(mask.shape[:2]) != tuple(ori_shape[:2]):
        raise ValueError(f'mask {path} has size {mask.shape[1]}x{mask.shape[0]} (WxH) but its '
                         f'image {img_path} is {ori_shape[1]}x{ori_shape[0]}')
    threshold = 1 if mask.max() <= 1 else 128
    return (mask >= threshold).astype(np.uint8)


@TRANSFORMS.register_module()
class LoadBinaryMask(BaseTransform):
    """Load a binary segmentation mask into ``results['gt_seg_map']`` (0/1 uint8).

    Accepts masks stored as 0/1 or 0/255 (JPEG-compressed masks, as in
    Kvasir-SEG, are thresholded at 128). Colour masks are reduced to their
    maximum channel. The mask must have the image's original size; place this
    transform before or after ``Resize`` (it checks against ``ori_shape``).
    """

    def __init__(self, backend_args: Optional[dict] = None) -> None:
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        results['gt_seg_map'] = read_binary_mask(results['seg_map_path'], results.get('ori_shape'),
                                                 results.get('img_path'), self.backend_args)
        results.setdefault('seg_fields', []).append('gt_seg_map')
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(backend_args={self.backend_args})'
