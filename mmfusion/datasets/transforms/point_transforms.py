"""Point-cloud augmentations (Point-MAE's scale-and-translate, random rotation)."""
import math
from typing import List, Optional, Sequence

import numpy as np
from mmcv.transforms import BaseTransform

from mmfusion.registry import TRANSFORMS


def _check_points(name: str, results: dict) -> np.ndarray:
    if 'points' not in results:
        raise KeyError(f'{name} needs results["points"] (an (N, C) array, C >= 3); keys: '
                       f'{sorted(results)}')
    points = np.asarray(results['points'])
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f'{name}: results["points"] of {results.get("points_path", "the sample")} '
                         f'has shape {points.shape}; expected (N, C) with C >= 3 (x, y, z first)')
    return points


@TRANSFORMS.register_module()
class PointsScaleAndTranslate(BaseTransform):
    """Scale x, y, z by a random factor per axis, then shift them.

    Point-MAE's ``PointcloudScaleAndTranslate``: ``xyz * s + t`` with
    ``s ~ U(scale[0], scale[1])`` and ``t ~ U(-translate, translate)``, each
    drawn per axis (3 values, scale first) from numpy's global RNG, which the
    runner seeds. Only ``points[:, :3]`` changes; other columns (normals,
    colours) are kept as they are, as in Point-MAE, so with an anisotropic
    scale the normals no longer match the surface exactly.

    Args:
        scale: (low, high) of the per-axis scale factor.
        translate: half-width of the per-axis shift; 0 disables it.

    Adds ``pcd_scale_factor`` (3,) and ``pcd_trans`` (3,); updates ``points``
    (a float32 copy).
    """

    def __init__(self, scale: Sequence[float] = (2. / 3., 3. / 2.),
                 translate: float = 0.2) -> None:
        if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
            raise ValueError(f'PointsScaleAndTranslate: scale must be (low, high) with '
                             f'0 < low <= high, got {scale}')
        if translate < 0:
            raise ValueError(f'PointsScaleAndTranslate: translate must be >= 0, got {translate}')
        self.scale = (float(scale[0]), float(scale[1]))
        self.translate = float(translate)

    def transform(self, results: dict) -> dict:
        points = _check_points(self.__class__.__name__, results).astype(np.float32, copy=True)
        factor = np.random.uniform(self.scale[0], self.scale[1], size=3)
        shift = np.random.uniform(-self.translate, self.translate, size=3)
        points[:, :3] = points[:, :3] * factor + shift
        results['points'] = points
        results['pcd_scale_factor'] = factor.astype(np.float32)
        results['pcd_trans'] = shift.astype(np.float32)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(scale={self.scale}, translate={self.translate})'


def rotation_matrix(axis: str, angle: float) -> np.ndarray:
    """Right-handed rotation by ``angle`` (radians) about ``'x'``, ``'y'`` or ``'z'``."""
    c, s = math.cos(angle), math.sin(angle)
    if axis == 'x':
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == 'y':
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    if axis == 'z':
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    raise ValueError(f'rotation axis must be "x", "y" or "z", got {axis!r}')


@TRANSFORMS.register_module()
class PointsRandomRotate(BaseTransform):
    """Rotate the cloud about one axis by a random angle.

    The angle is drawn from ``U(-max_angle, max_angle)`` with numpy's global
    RNG (seeded by the runner). x, y, z (``points[:, :3]``) are rotated, and
    so are the normals, when there are any: the columns named ``nx, ny, nz``
    in ``results['point_fields']`` (set by ``LoadPointsFromFile`` for PLY
    files and sampled meshes), or the columns given by ``normal_dims`` (e.g.
    ``(3, 4, 5)`` for ModelNet's ``x,y,z,nx,ny,nz`` txt files, whose fields
    are unnamed). Other columns are kept.

    Args:
        axis: the up axis to rotate about: ``'z'`` (ModelNet40's
            ``modelnet40_normal_resampled``), ``'y'`` (ShapeNet,
            ScanObjectNN, as in Point-MAE) or ``'x'``.
        max_angle: largest absolute angle in radians (``pi``: any rotation).
        normal_dims: columns holding the normal, overriding the names.

    Adds ``pcd_rotation`` (3, 3), applied as ``xyz @ R.T``, and
    ``pcd_rotation_angle``; updates ``points`` (a float32 copy).
    """

    def __init__(self, axis: str = 'z', max_angle: float = math.pi,
                 normal_dims: Optional[Sequence[int]] = None) -> None:
        rotation_matrix(axis, 0.)  # validates the axis
        if max_angle < 0:
            raise ValueError(f'PointsRandomRotate: max_angle must be >= 0, got {max_angle}')
        if normal_dims is not None and len(normal_dims) != 3:
            raise ValueError(f'PointsRandomRotate: normal_dims must name 3 columns, got '
                             f'{normal_dims}')
        self.axis = axis
        self.max_angle = float(max_angle)
        self.normal_dims = list(normal_dims) if normal_dims is not None else None

    def _normal_columns(self, results: dict, num_cols: int) -> Optional[List[int]]:
        if self.normal_dims is not None:
            dims = self.normal_dims
        else:
            fields = list(results.get('point_fields') or [])
            if not {'nx', 'ny', 'nz'} <= set(fields):
                return None
            dims = [fields.index(n) for n in ('nx', 'ny', 'nz')]
        dims = [d + num_cols if d < 0 else d for d in dims]
        if not all(3 <= d < num_cols for d in dims):
            raise ValueError(f'PointsRandomRotate: normal columns {dims} of '
                             f'{results.get("points_path", "the sample")} must lie in [3, '
                             f'{num_cols}) (the cloud has {num_cols} columns; 0-2 are x, y, z)')
        return dims

    def transform(self, results: dict) -> dict:
        points = _check_points(self.__class__.__name__, results).astype(np.float32, copy=True)
        angle = float(np.random.uniform(-self.max_angle, self.max_angle))
        rot = rotation_matrix(self.axis, angle)
        points[:, :3] = points[:, :3] @ rot.T
        normal_cols = self._normal_columns(results, points.shape[1])
        if normal_cols is not None:
            points[:, normal_cols] = points[:, normal_cols] @ rot.T
        results['points'] = points
        results['pcd_rotation'] = rot.astype(np.float32)
        results['pcd_rotation_angle'] = angle
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(axis={self.axis!r}, max_angle={self.max_angle}, '
                f'normal_dims={self.normal_dims})')
