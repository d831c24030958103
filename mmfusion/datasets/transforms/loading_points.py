"""Point-cloud file loading (.ply, .xyz, .txt, .npy, .bin)."""
import io
import os.path as osp
import warnings
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio

from mmfusion.registry import TRANSFORMS

SUFFIXES = ('.ply', '.xyz', '.txt', '.npy', '.bin')


def _generic_fields(num: int) -> List[str]:
    return ['x', 'y', 'z'] + [f'f{i}' for i in range(3, num)]


@TRANSFORMS.register_module()
class LoadPointsFromFile(BaseTransform):
    """Load a point cloud into ``results['points']`` (float32, (N, C)).

    Formats, chosen by the file's extension (case-insensitive):

    - ``.ply`` (ascii or binary, read with plyfile): the ``vertex`` element;
      columns are x, y, z, then every other vertex property in file order
      (e.g. nx, ny, nz, red, green, blue, intensity). Colours keep their
      stored values (0-255 for uchar). Faces are ignored.
    - ``.xyz`` / ``.txt``: one point per line, values separated by
      whitespace or commas (ModelNet40's ``x,y,z,nx,ny,nz`` txt files);
      lines starting with ``#`` are comments.
    - ``.npy``: a 2-D numeric array (N, C), or 1-D with ``num_features``.
    - ``.bin``: raw little-endian float32 values (KITTI / mmdet3d); needs
      ``num_features`` to reshape.

    Args:
        num_features: expected number of columns in the file; a file with
            another count is rejected. ``None`` accepts any count >= 3
            (except ``.bin``, which needs it).
        use_dims: columns to keep, e.g. ``[0, 1, 2]`` for xyz only; default
            all. The first three kept columns are treated as x, y, z.
        key: results key holding the file path.
        backend_args: mmengine file backend arguments.

    Adds:
        - ``points``: (N, C) float32 array;
        - ``num_points``: N;
        - ``point_fields``: the kept columns' names (PLY property names, or
          ``x, y, z, f3, ...`` for formats without a header).

    Raises:
        ValueError: naming the file, when it cannot be read or parsed, has
            an unknown extension, holds no points, has a column count other
            than ``num_features`` (or fewer than 3), or holds NaN/inf values.
    """

    def __init__(self,
                 num_features: Optional[int] = None,
                 use_dims: Optional[Sequence[int]] = None,
                 key: str = 'points_path',
                 backend_args: Optional[dict] = None) -> None:
        if num_features is not None and num_features < 3:
            raise ValueError(f'LoadPointsFromFile num_features must be >= 3 (x, y, z), '
                             f'got {num_features}')
        self.num_features = num_features
        self.use_dims = list(use_dims) if use_dims is not None else None
        self.key = key
        self.backend_args = backend_args

    # -- per-format readers: bytes -> (array, field names) -------------------
    def _read_ply(self, data: bytes, path: str) -> Tuple[np.ndarray, List[str]]:
        from plyfile import PlyData
        try:
            ply = PlyData.read(io.BytesIO(data))
        except Exception as e:  # plyfile raises PlyParseError, ValueError, EOFError...
            raise ValueError(f'cannot parse PLY file {path}: {e}') from e
        if 'vertex' not in ply:
            raise ValueError(f'PLY file {path} has no "vertex" element (elements: '
                             f'{[el.name for el in ply.elements]}); expected x, y, z vertices')
        vertex = ply['vertex']
        names = [p.name for p in vertex.properties]
        if not {'x', 'y', 'z'} <= set(names):
            raise ValueError(f'PLY file {path}: vertex properties {names} lack x, y, z')
        fields = ['x', 'y', 'z'] + [n for n in names if n not in ('x', 'y', 'z')]
        columns = []
        for name in fields:
            col = vertex.data[name]
            if col.dtype == object:  # list properties have variable length per vertex
                raise ValueError(f'PLY file {path}: vertex property {name!r} is a list; '
                                 'expected scalar properties only')
            columns.append(np.asarray(col, dtype=np.float64))
        return np.stack(columns, axis=1) if len(vertex.data) else np.zeros((0, len(fields))), fields

    def _read_text(self, data: bytes, path: str) -> Tuple[np.ndarray, List[str]]:
        try:
            text = data.decode('utf-8')
        except UnicodeDecodeError as e:
            raise ValueError(f'cannot read point file {path} as text: {e}') from e
        try:
            # Commas become spaces so "x,y,z" and "x y z" (and "x, y, z") parse alike.
            with warnings.catch_warnings():  # an empty file is reported below, not warned
                warnings.simplefilter('ignore', UserWarning)
                arr = np.loadtxt(io.StringIO(text.replace(',', ' ')), dtype=np.float64,
                                 comments='#', ndmin=2)
        except ValueError as e:  # ragged rows or non-numeric tokens; numpy names the row
            raise ValueError(f'cannot parse point file {path}: {e}; expected one point per '
                             'line with the same number of numeric values') from e
        return arr, _generic_fields(arr.shape[1])

    def _read_npy(self, data: bytes, path: str) -> Tuple[np.ndarray, List[str]]:
        try:
            arr = np.load(io.BytesIO(data), allow_pickle=False)
        except Exception as e:
            raise ValueError(f'cannot read .npy file {path}: {e}') from e
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in 'fiub':
            raise ValueError(f'{path} holds a {getattr(arr, "dtype", type(arr))} array; '
                             'expected a numeric (N, C) array')
        if arr.ndim == 1 and self.num_features is not None and arr.size % self.num_features == 0:
            arr = arr.reshape(-1, self.num_features)
        if arr.ndim != 2:
            raise ValueError(f'{path} holds an array of shape {arr.shape}; expected (N, C) '
                             '(or 1-D with num_features)')
        return arr.astype(np.float64), _generic_fields(arr.shape[1])

    def _read_bin(self, data: bytes, path: str) -> Tuple[np.ndarray, List[str]]:
        if self.num_features is None:
            raise ValueError(f'{path}: a .bin point file is raw float32 values, so '
                             'LoadPointsFromFile needs num_features to reshape it')
        if len(data) % (4 * self.num_features):
            raise ValueError(f'{path} has {len(data)} bytes, not a multiple of '
                             f'4 * num_features = {4 * self.num_features} (float32 rows)')
        arr = np.frombuffer(data, dtype='<f4').reshape(-1, self.num_features)
        return arr, _generic_fields(self.num_features)

    def load(self, path: str) -> Tuple[np.ndarray, List[str]]:
        """Read and validate ``path``; returns the (N, C) float32 array and column names."""
        suffix = osp.splitext(path)[1].lower()
        if suffix not in SUFFIXES:
            raise ValueError(f'unknown point-cloud file extension {suffix!r} of {path}; '
                             f'expected one of {SUFFIXES}')
        try:
            data = fileio.get(path, backend_args=self.backend_args)
        except Exception as e:  # missing file, permissions, backend errors
            raise ValueError(f'cannot read point file {path}: {e}') from e
        reader = {'.ply': self._read_ply, '.xyz': self._read_text, '.txt': self._read_text,
                  '.npy': self._read_npy, '.bin': self._read_bin}[suffix]
        arr, fields = reader(data, path)
        if arr.shape[0] == 0:
            raise ValueError(f'point file {path} holds no points; expected at least one')
        if self.num_features is not None and arr.shape[1] != self.num_features:
            raise ValueError(f'point file {path} has {arr.shape[1]} values per point '
                             f'({fields}); expected num_features={self.num_features}')
        if arr.shape[1] < 3:
            raise ValueError(f'point file {path} has {arr.shape[1]} values per point; '
                             'expected at least 3 (x, y, z)')
        # Checked after the cast: a float64 value beyond float32's range becomes inf.
        with np.errstate(over='ignore'):
            arr = arr.astype(np.float32)
        finite = np.isfinite(arr).all(axis=1)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            raise ValueError(f'point file {path} has NaN/inf values in {bad.size} of '
                             f'{arr.shape[0]} points (first at row {bad[0]}); expected finite '
                             'coordinates')
        return arr, fields

    def transform(self, results: dict) -> dict:
        if self.key not in results:
            raise KeyError(f'LoadPointsFromFile needs results[{self.key!r}] (the file path); '
                           f'keys: {sorted(results)}')
        path = results[self.key]
        arr, fields = self.load(path)
        if self.use_dims is not None:
            bad = [d for d in self.use_dims if not -arr.shape[1] <= d < arr.shape[1]]
            if bad:
                raise ValueError(f'use_dims {self.use_dims} index columns {bad} but point file '
                                 f'{path} has {arr.shape[1]} ({fields})')
            arr = arr[:, self.use_dims]
            fields = [fields[d] for d in self.use_dims]
        results['points'] = np.ascontiguousarray(arr)
        results['num_points'] = arr.shape[0]
        results['point_fields'] = fields
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_features={self.num_features}, '
                f'use_dims={self.use_dims}, key={self.key!r})')
