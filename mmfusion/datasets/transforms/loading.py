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


def _read_gray(path: str, what: str, backend_args: Optional[dict]) -> np.ndarray:
    try:
        arr = mmcv.imfrombytes(fileio.get(path, backend_args=backend_args), flag='unchanged',
                               backend='pillow')
    except Exception as e:
        raise ValueError(f'cannot read {what} file {path}: {e}') from e
    if arr is None:
        raise ValueError(f'cannot decode {what} file {path}: not a valid image')
    return arr[..., 0] if arr.ndim == 3 else arr


@TRANSFORMS.register_module()
class LoadMattingAnnotations(BaseTransform):
    """Load an alpha matte (and a trimap) for ``MattingDataset`` samples.

    Adds ``gt_alpha`` ((H, W) float32 in [0, 1]), ``gt_trimap`` ((H, W) uint8,
    0 / 128 / 255) when the sample has a ``trimap_path``, and ``alpha_box``
    (x1 y1 x2 y2 float32: the box around the non-zero alpha, the prompt SEMat
    is evaluated with). Place after ``LoadImageFromFile``.

    Raises:
        ValueError: naming the file, for an alpha or trimap whose size differs
            from the image, an alpha that is not 8-bit (values outside
            [0, 255]), an all-zero alpha, or a trimap with values other than
            0 / 128 / 255.
    """

    def __init__(self, backend_args: Optional[dict] = None) -> None:
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        if 'ori_shape' not in results:
            raise KeyError('LoadMattingAnnotations needs "ori_shape"; put it after '
                           'LoadImageFromFile')
        h, w = results['ori_shape'][:2]
        img_path = results.get('img_path')
        path = results['alpha_path']
        alpha = _read_gray(path, 'alpha', self.backend_args)
        if alpha.shape != (h, w):
            raise ValueError(f'alpha {path} is {alpha.shape[1]}x{alpha.shape[0]} (WxH) but its '
                             f'image {img_path} is {w}x{h}')
        if alpha.dtype != np.uint8 and (alpha.min() < 0 or alpha.max() > 255):
            raise ValueError(f'alpha {path}: values must be in [0, 255] (8-bit), got '
                             f'[{alpha.min()}, {alpha.max()}] ({alpha.dtype})')
        if not alpha.any():
            raise ValueError(f'alpha {path} is empty (all zero): no foreground to matte')
        results['gt_alpha'] = alpha.astype(np.float32) / 255.0
        ys, xs = np.nonzero(alpha)
        results['alpha_box'] = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1],
                                        np.float32)
        if results.get('trimap_path'):
            tpath = results['trimap_path']
            trimap = _read_gray(tpath, 'trimap', self.backend_args)
            if trimap.shape != (h, w):
                raise ValueError(f'trimap {tpath} is {trimap.shape[1]}x{trimap.shape[0]} (WxH) '
                                 f'but its image {img_path} is {w}x{h}')
            bad = np.setdiff1d(np.unique(trimap), [0, 128, 255])
            if len(bad):
                raise ValueError(f'trimap {tpath}: values must be 0 / 128 / 255, found '
                                 f'{bad[:5].tolist()}')
            results['gt_trimap'] = trimap.astype(np.uint8)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(backend_args={self.backend_args})'
