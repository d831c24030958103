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


def _set_alpha(results: dict, alpha: np.ndarray, path: str) -> None:
    """``gt_alpha`` (float32 in [0, 1]) and ``alpha_box`` (x1 y1 x2 y2, the box
    around the non-zero alpha) from an 8-bit alpha read from ``path``."""
    if not alpha.any():
        raise ValueError(f'alpha {path} is empty (all zero): no foreground to matte')
    results['gt_alpha'] = alpha.astype(np.float32) / 255.0
    ys, xs = np.nonzero(alpha)
    results['alpha_box'] = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1],
                                    np.float32)


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
        _set_alpha(results, alpha, path)
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


@TRANSFORMS.register_module()
class LoadMattingPanels(BaseTransform):
    """Cut a side-by-side panel PNG (COCO-Matting) into the matting annotations.

    Reads ``results['panel_path']``, an 8-bit image made of
    ``len(results['panels'])`` equally wide panels concatenated along the
    width, named left to right by ``results['panels']`` (see
    :class:`~mmfusion.datasets.COCOMattingDataset`): ``'img'``, ``'trimap'``,
    ``'alpha'``; other names (the coarse masks of the authors' internal
    files) are skipped. Like the official reader, the file is decoded as 3
    channels (BGR) and the trimap and alpha panels use their first channel.

    Adds ``gt_alpha`` ((H, W) float32 in [0, 1]), ``alpha_box`` (as
    :class:`LoadMattingAnnotations`) and ``gt_trimap`` ((H, W) uint8 0 / 128
    / 255, quantised with the official thresholds: < 85 background, >= 170
    foreground, unknown between). With an ``'img'`` panel it also sets
    ``img``, ``img_shape`` and ``ori_shape``; without one the image must
    already be loaded (``LoadImageFromFile`` before this transform) and have
    the panels' size.

    Raises:
        ValueError: naming the file, for a panel file that cannot be decoded,
            whose width is not a multiple of the panel count, whose panels
            differ in size from the loaded image, or whose alpha is empty.
        KeyError: without an ``'img'`` panel when no image is loaded.
    """

    def __init__(self, backend_args: Optional[dict] = None) -> None:
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        path = results['panel_path']
        names = tuple(results['panels'])
        try:
            combined = mmcv.imfrombytes(fileio.get(path, backend_args=self.backend_args),
                                        flag='color', backend='cv2')
        except Exception as e:
            raise ValueError(f'cannot read panel file {path}: {e}') from e
        if combined is None:
            raise ValueError(f'cannot decode panel file {path}: not a valid image')
        h, w = combined.shape[:2]
        if w % len(names):
            raise ValueError(f'panel file {path} is {w} pixels wide, not a multiple of its '
                             f'{len(names)} panels {list(names)}')
        pw = w // len(names)
        panel = {name: combined[:, i * pw:(i + 1) * pw] for i, name in enumerate(names)}
        if 'img' in panel:
            results['img'] = np.ascontiguousarray(panel['img'])
            results['img_shape'] = results['ori_shape'] = (h, pw)
        elif 'img' not in results:
            raise KeyError(f'panel file {path} has no image panel ({list(names)}): put '
                           'LoadImageFromFile before LoadMattingPanels')
        else:
            ih, iw = results['img'].shape[:2]
            if (ih, iw) != (h, pw):
                raise ValueError(f'panels of {path} are {pw}x{h} (WxH) each but its image '
                                 f'{results.get("img_path")} is {iw}x{ih}')
        _set_alpha(results, np.ascontiguousarray(panel['alpha'][..., 0]), path)
        trimap = panel['trimap'][..., 0]
        results['gt_trimap'] = np.where(trimap < 85, 0,
                                        np.where(trimap >= 170, 255, 128)).astype(np.uint8)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(backend_args={self.backend_args})'
