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
        path = results['seg_map_path']
        try:
            mask = mmcv.imfrombytes(fileio.get(path, backend_args=self.backend_args),
                                    flag='unchanged', backend='pillow')
        except Exception as e:
            raise ValueError(f'cannot read mask file {path}: {e}') from e
        if mask is None:
            raise ValueError(f'cannot decode mask file {path}: not a valid image')
        if mask.ndim == 3:
            mask = mask.max(axis=2)
        ori_shape = results.get('ori_shape')
        if ori_shape is not None and tuple(mask.shape[:2]) != tuple(ori_shape[:2]):
            raise ValueError(
                f'mask {path} has size {mask.shape[1]}x{mask.shape[0]} (WxH) but its image '
                f'{results.get("img_path")} is {ori_shape[1]}x{ori_shape[0]}')
        threshold = 1 if mask.max() <= 1 else 128
        results['gt_seg_map'] = (mask >= threshold).astype(np.uint8)
        results.setdefault('seg_fields', []).append('gt_seg_map')
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(backend_args={self.backend_args})'
