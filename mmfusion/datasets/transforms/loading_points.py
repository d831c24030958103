"""Point-cloud file loading (.ply, .xyz, .txt, .npy, .bin) and mesh surface
sampling (.off, .obj, .stl, and .ply with faces on request)."""
import io
import os.path as osp
import re
import struct
import warnings
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio

from mmfusion.registry import TRANSFORMS

MESH_SUFFIXES = ('.off', '.obj', '.stl')
SUFFIXES = ('.ply', '.xyz', '.txt', '.npy', '.bin') + MESH_SUFFIXES

# [ST][C][N][4][n]OFF, then optionally the counts on the same line; some writers glue
# the counts to the keyword ("OFF3 1 0" is 3 vertices, 1 face, 0 edges).
_OFF_HEADER = re.compile(r'^(ST)?(C)?(N)?(4)?(n)?OFF(?![A-Za-z])(.*)$')


def _generic_fields(num: int) -> List[str]:
    return ['x', 'y', 'z'] + [f'f{i}' for i in range(3, num)]


def _fan_triangulate(polygons: Sequence[Sequence[int]]) -> np.ndarray:
    """Polygons (vertex index lists, >= 3 each) -> (F, 3) triangles (v0, vi, vi+1).

    Exact for convex polygons; a concave one gets overlapping triangles.
    """
    tris = [(poly[0], poly[i], poly[i + 1]) for poly in polygons for i in range(1, len(poly) - 1)]
    return np.asarray(tris, dtype=np.int64).reshape(-1, 3)


def parse_off(data: bytes, path: str) -> Tuple[np.ndarray, np.ndarray]:
    """Parse an ASCII OFF mesh into (V, 3) float64 vertices and (F, 3) int64 triangles.

    Accepts the ``OFF``/``COFF``/``NOFF``/``CNOFF``/``STOFF`` headers, counts on
    the header line (also glued to it, ``OFF3 1 0``) or on the next line, ``#``
    comments and blank lines anywhere, extra per-vertex values (normals,
    colours) and per-face colours after the indices. Polygons with more than
    three vertices are fan-triangulated. trimesh's OFF reader is not used: with
    numpy 2 it fails on, or mis-triangulates, files that mix polygon sizes
    (several of CGAL's demo meshes) and fails on some point-only files.

    Raises:
        ValueError: naming ``path``, for a binary / 4D / nD OFF, a missing or
            malformed header or counts, too few vertex or face lines, a
            non-numeric value, a face with fewer than 3 vertices or an index
            outside ``[0, V)``.
    """
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as e:
        raise ValueError(f'cannot parse OFF file {path}: not ASCII text ({e}); binary OFF '
                         'is not supported') from e
    lines = text.splitlines()
    if '#' in text:
        lines = [ln.split('#', 1)[0] for ln in lines]
    lines = [ln for ln in map(str.strip, lines) if ln]
    if not lines:
        raise ValueError(f'cannot parse OFF file {path}: the file is empty; expected an '
                         '"OFF" header, then "num_vertices num_faces num_edges"')
    match = _OFF_HEADER.match(lines[0])
    if match is None:
        raise ValueError(f'cannot parse OFF file {path}: first line {lines[0][:40]!r} is not an '
                         'OFF header (OFF, COFF, NOFF, ...)')
    if match.group(4) or match.group(5):
        raise ValueError(f'cannot parse OFF file {path}: 4D/nD OFF ({lines[0][:40]!r}) is not '
                         'supported; expected 3-D vertices')
    rest, pos = match.group(6).split(), 1
    if rest and rest[0].upper() == 'BINARY':
        raise ValueError(f'cannot parse OFF file {path}: binary OFF is not supported')
    if not rest:
        if len(lines) < 2:
            raise ValueError(f'cannot parse OFF file {path}: no counts line after the header')
        rest, pos = lines[1].split(), 2
    try:
        num_v, num_f = int(rest[0]), int(rest[1])
    except (IndexError, ValueError):
        raise ValueError(f'cannot parse OFF file {path}: counts {" ".join(rest)!r} are not '
                         '"num_vertices num_faces [num_edges]"') from None
    if num_v < 0 or num_f < 0:
        raise ValueError(f'cannot parse OFF file {path}: negative counts {num_v} {num_f}')
    if len(lines) < pos + num_v + num_f:
        raise ValueError(f'cannot parse OFF file {path}: the header announces {num_v} vertices '
                         f'and {num_f} faces but the file has only {len(lines) - pos} data lines')
    vertex_lines = lines[pos:pos + num_v]
    face_lines = lines[pos + num_v:pos + num_v + num_f]
    try:
        try:  # every line with the same number of values: numpy's C parser
            vertices = (np.loadtxt(vertex_lines, dtype=np.float64, ndmin=2) if num_v
                        else np.zeros((0, 3)))
        except ValueError:  # ragged lines (e.g. colours on some vertices only)
            vertices = np.asarray([ln.split()[:3] for ln in vertex_lines], dtype=np.float64)
        if vertices.ndim != 2 or vertices.shape[1] < 3:
            raise ValueError(f'{vertices.shape[-1] if vertices.ndim == 2 else "ragged"} '
                             'values per vertex')
        vertices = vertices[:, :3]
    except ValueError as e:  # non-numeric token, or a line with fewer than 3 values
        raise ValueError(f'cannot parse OFF file {path}: bad vertex line ({e}); expected '
                         f'"x y z ..." on each of the first {num_v} data lines') from e
    try:
        try:
            table = np.loadtxt(face_lines, dtype=np.int64, ndmin=2) if num_f else None
        except ValueError:  # ragged lines or colour values: face by face below
            table = None
        if table is not None and (table[:, 0] == table[0, 0]).all() and \
                3 <= table[0, 0] < table.shape[1]:
            # One polygon size for all faces (usually triangles): vectorised fan.
            n = int(table[0, 0])
            poly = table[:, 1:n + 1]
            faces = np.stack([np.stack([poly[:, 0], poly[:, i], poly[:, i + 1]], axis=1)
                              for i in range(1, n - 1)], axis=1).reshape(-1, 3)
        else:
            polygons = []
            for i, ln in enumerate(face_lines):
                values = ln.split()
                n = int(values[0])
                if n < 3 or len(values) < n + 1:
                    raise ValueError(f'face {i} ({ln[:40]!r}) has {n} vertices and '
                                     f'{len(values) - 1} values; expected "n i1 ... in" '
                                     'with n >= 3')
                polygons.append([int(v) for v in values[1:n + 1]])
            faces = _fan_triangulate(polygons)
    except ValueError as e:
        raise ValueError(f'cannot parse OFF file {path}: {e}') from e
    if faces.size and (faces.min() < 0 or faces.max() >= num_v):
        raise ValueError(f'cannot parse OFF file {path}: face indices span [{faces.min()}, '
                         f'{faces.max()}] but the file has {num_v} vertices')
    return vertices, faces


def sample_mesh_surface(vertices: np.ndarray, faces: np.ndarray, num: int, seed: int,
                        path: str = '<mesh>') -> Tuple[np.ndarray, np.ndarray]:
    """Draw ``num`` points uniformly on a triangle mesh's surface.

    A face is picked with probability proportional to its area, then a point
    uniformly inside it (barycentric ``(1 - sqrt(r1), sqrt(r1) (1 - r2),
    sqrt(r1) r2)``). The generator is ``np.random.default_rng(seed)``, fresh
    per call, so one mesh always gives the same points.

    Returns:
        ``(points, normals)``: (num, 3) float64 positions and the unit normals
        of the faces they lie on (orientation follows the face winding).

    Raises:
        ValueError: naming ``path``, when the faces have no (finite) area.
    """
    tri = vertices[faces]  # (F, 3, 3)
    with np.errstate(over='ignore', invalid='ignore'):
        cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        double_area = np.linalg.norm(cross, axis=1)
        total = double_area.sum()
    if not np.isfinite(total) or total <= 0:
        raise ValueError(f'mesh file {path} has {len(faces)} faces but a total surface area of '
                         f'{total / 2:g}; expected non-degenerate triangles with finite area')
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(double_area)
    # side='right' never picks a zero-area face (its cumulative value equals its predecessor's).
    face_idx = np.searchsorted(cumulative, rng.random(num) * total, side='right')
    face_idx = np.minimum(face_idx, len(faces) - 1)
    r1, r2 = rng.random((2, num))
    s = np.sqrt(r1)
    weights = np.stack([1 - s, s * (1 - r2), s * r2], axis=1)  # (num, 3)
    points = np.einsum('nk,nkd->nd', weights, tri[face_idx])
    normals = cross[face_idx] / double_area[face_idx, None]
    return points, normals


@TRANSFORMS.register_module()
class LoadPointsFromFile(BaseTransform):
    """Load a point cloud into ``results['points']`` (float32, (N, C)).

    Formats, chosen by the file's extension (case-insensitive):

    - ``.ply`` (ascii or binary, read with plyfile): the ``vertex`` element;
      columns are x, y, z, then every other vertex property in file order
      (e.g. nx, ny, nz, red, green, blue, intensity). Colours keep their
      stored values (0-255 for uchar). Faces are ignored (but see
      ``sample_mesh``).
    - ``.xyz`` / ``.txt``: one point per line, values separated by
      whitespace or commas (ModelNet40's ``x,y,z,nx,ny,nz`` txt files);
      lines starting with ``#`` are comments.
    - ``.npy``: a 2-D numeric array (N, C), or 1-D with ``num_features``.
    - ``.bin``: raw little-endian float32 values (KITTI / mmdet3d); needs
      ``num_features`` to reshape.
    - ``.off`` / ``.obj`` / ``.stl`` (triangle or polygon meshes; ModelNet40's
      original files are OFF): ``mesh_samples`` points drawn uniformly on the
      surface (area-weighted), columns x, y, z (plus nx, ny, nz, the face
      normals, with ``mesh_normals=True``). OBJ and STL are read with trimesh,
      OFF with a small built-in parser (it also reads the ``OFF3 1 0`` headers
      some ModelNet files have). A ``.ply`` with a ``face`` element is sampled
      the same way when ``sample_mesh=True``.

    Args:
        num_features: expected number of columns in the file; a file with
            another count is rejected. ``None`` accepts any count >= 3
            (except ``.bin``, which needs it).
        use_dims: columns to keep, e.g. ``[0, 1, 2]`` for xyz only; default
            all. The first three kept columns are treated as x, y, z.
        key: results key holding the file path.
        backend_args: mmengine file backend arguments.
        mesh_samples: number of surface points drawn from a mesh.
        mesh_seed: seed of the surface sampling. The generator is created
            afresh for every file from this seed alone, so a file always gives
            the same points (in every epoch, worker and run); vary the points
            with the augmentations that follow instead.
        mesh_normals: append the sampled points' face normals (nx, ny, nz).
        sample_mesh: sample the surface of ``.ply`` files that have faces
            (default: their vertices are returned, as for any ``.ply``). A
            ``.ply`` without faces returns its vertices either way.
        min_points: reject a cloud with fewer points (e.g. the model's
            groups of the first level, when clouds are not resampled to a
            fixed size): the error names the file, which the model's own
            check cannot.

    Adds:
        - ``points``: (N, C) float32 array;
        - ``num_points``: N;
        - ``point_fields``: the kept columns' names (PLY property names,
          ``x, y, z[, nx, ny, nz]`` for sampled meshes, or ``x, y, z, f3, ...``
          for formats without a header).

    Raises:
        ValueError: naming the file, when it cannot be read or parsed, has
            an unknown extension, holds no points (or fewer than
            ``min_points``), has a column count other
            than ``num_features`` (or fewer than 3), or holds NaN/inf values;
            for a mesh, also when it has no vertices, NaN/inf vertices, no
            faces (e.g. a point set saved as ``.off``) or no surface area.
    """

    def __init__(self,
                 num_features: Optional[int] = None,
                 use_dims: Optional[Sequence[int]] = None,
                 key: str = 'points_path',
                 backend_args: Optional[dict] = None,
                 mesh_samples: int = 2048,
                 mesh_seed: int = 0,
                 mesh_normals: bool = False,
                 sample_mesh: bool = False,
                 min_points: int = 1) -> None:
        if num_features is not None and num_features < 3:
            raise ValueError(f'LoadPointsFromFile num_features must be >= 3 (x, y, z), '
                             f'got {num_features}')
        if int(mesh_samples) < 1:
            raise ValueError(f'LoadPointsFromFile mesh_samples must be >= 1, got {mesh_samples}')
        self.min_points = max(1, int(min_points))
        self.mesh_samples = int(mesh_samples)
        self.mesh_seed = int(mesh_seed)
        self.mesh_normals = bool(mesh_normals)
        self.sample_mesh = bool(sample_mesh)
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
        if self.sample_mesh and 'face' in ply and len(ply['face'].data):
            face = ply['face']
            prop = next((p.name for p in face.properties
                         if p.name in ('vertex_indices', 'vertex_index')), None)
            if prop is None:
                raise ValueError(f'PLY file {path}: face element has properties '
                                 f'{[p.name for p in face.properties]}; expected vertex_indices')
            polygons = [np.asarray(poly).tolist() for poly in face.data[prop]]
            bad = next((i for i, poly in enumerate(polygons) if len(poly) < 3), None)
            if bad is not None:
                raise ValueError(f'PLY file {path}: face {bad} has {len(polygons[bad])} vertices; '
                                 'expected at least 3')
            vertices = np.stack([np.asarray(vertex.data[c], np.float64) for c in 'xyz'], axis=1)
            faces = _fan_triangulate(polygons)
            if faces.min() < 0 or faces.max() >= len(vertices):
                raise ValueError(f'PLY file {path}: face indices span [{faces.min()}, '
                                 f'{faces.max()}] but the file has {len(vertices)} vertices')
            return self._sample(vertices, faces, path)
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

    def _read_trimesh(self, data: bytes, path: str, suffix: str) -> Tuple[np.ndarray, List[str]]:
        import trimesh
        if suffix == '.stl':
            declared = struct.unpack('<I', data[80:84])[0] if len(data) >= 84 else None
            is_binary = declared is not None and len(data) == 84 + 50 * declared
            # Not ASCII ("solid ...") and not a complete binary STL: trimesh would return an
            # empty mesh for a truncated file; say why instead.
            if not is_binary and not data[:5].lower().startswith(b'solid'):
                if declared is None:
                    raise ValueError(f'cannot parse STL file {path}: {len(data)} bytes, shorter '
                                     'than the 84-byte binary STL header')
                if len(data) < 84 + 50 * declared:
                    raise ValueError(f'cannot parse STL file {path}: the binary header announces '
                                     f'{declared} triangles ({84 + 50 * declared} bytes) but the '
                                     f'file has {len(data)} bytes')
        elif suffix == '.obj':
            try:
                data.decode('utf-8')
            except UnicodeDecodeError as e:
                raise ValueError(f'cannot parse OBJ file {path}: not text ({e})') from e
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                mesh = trimesh.load(io.BytesIO(data), file_type=suffix[1:], process=False,
                                    force='mesh')
        except Exception as e:  # trimesh raises IndexError, ValueError, KeyError, ...
            raise ValueError(f'cannot parse mesh file {path}: {type(e).__name__}: {e}') from e
        vertices = np.asarray(getattr(mesh, 'vertices', np.zeros((0, 3))), dtype=np.float64)
        faces = np.asarray(getattr(mesh, 'faces', np.zeros((0, 3))), dtype=np.int64).reshape(-1, 3)
        if not len(faces) and suffix == '.obj':
            # trimesh drops vertices no face uses: count the file's own "v" lines.
            num_v = sum(1 for ln in data.decode('utf-8').splitlines()
                        if ln.startswith(('v ', 'v\t')))
            vertices = np.zeros((num_v, 3))
        return self._sample(vertices, faces, path)

    def _read_off(self, data: bytes, path: str) -> Tuple[np.ndarray, List[str]]:
        return self._sample(*parse_off(data, path), path)

    def _sample(self, vertices: np.ndarray, faces: np.ndarray,
                path: str) -> Tuple[np.ndarray, List[str]]:
        """Validate a mesh and sample its surface into (mesh_samples, 3 or 6) points."""
        if not len(vertices):
            raise ValueError(f'mesh file {path} has no vertices; expected a triangle mesh '
                             '(or the file is not a valid mesh of its format)')
        finite = np.isfinite(vertices).all(axis=1)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            raise ValueError(f'mesh file {path} has NaN/inf coordinates in {bad.size} of '
                             f'{len(vertices)} vertices (first at vertex {bad[0]}); expected '
                             'finite coordinates')
        if not len(faces):
            raise ValueError(f'mesh file {path} has {len(vertices)} vertices and no faces; '
                             'expected a triangle mesh (save a point set as .xyz/.ply/.npy '
                             'to load its points)')
        points, normals = sample_mesh_surface(vertices, faces, self.mesh_samples,
                                              self.mesh_seed, path)
        if self.mesh_normals:
            return np.concatenate([points, normals], axis=1), ['x', 'y', 'z', 'nx', 'ny', 'nz']
        return points, ['x', 'y', 'z']

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
        if suffix in ('.obj', '.stl'):
            arr, fields = self._read_trimesh(data, path, suffix)
        else:
            reader = {'.ply': self._read_ply, '.xyz': self._read_text, '.txt': self._read_text,
                      '.npy': self._read_npy, '.bin': self._read_bin, '.off': self._read_off}
            arr, fields = reader[suffix](data, path)
        if arr.shape[0] == 0:
            raise ValueError(f'point file {path} holds no points; expected at least one')
        if arr.shape[0] < self.min_points:
            raise ValueError(f'point file {path} holds {arr.shape[0]} points, fewer than '
                             f'min_points={self.min_points} (e.g. the groups of the model\'s first '
                             'level)')
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
                f'use_dims={self.use_dims}, key={self.key!r}, '
                f'mesh_samples={self.mesh_samples}, mesh_seed={self.mesh_seed}, '
                f'mesh_normals={self.mesh_normals}, sample_mesh={self.sample_mesh})')
