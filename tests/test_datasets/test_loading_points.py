"""LoadPointsFromFile: every format round-trips a known array; bad files fail by name."""
import glob
import os

import numpy as np
import pytest
from plyfile import PlyData, PlyElement

from mmfusion.datasets.transforms import LoadPointsFromFile
from mmfusion.registry import TRANSFORMS

RNG = np.random.RandomState(0)
XYZ = RNG.uniform(-2, 2, (20, 3)).astype(np.float32)
NORMALS = RNG.uniform(-1, 1, (20, 3)).astype(np.float32)
RGB = RNG.randint(0, 256, (20, 3)).astype(np.uint8)


def _load(path, **kw):
    return LoadPointsFromFile(**kw)(dict(points_path=str(path)))


def _write_ply(path, text: bool, byte_order: str = '<', order=None, faces: bool = True):
    props = [('x', 'f4'), ('y', 'f4'), ('z', 'f4'), ('nx', 'f4'), ('ny', 'f4'), ('nz', 'f4'),
             ('red', 'u1'), ('green', 'u1'), ('blue', 'u1')]
    if order is not None:
        props = [props[i] for i in order]
    values = dict(zip('x y z nx ny nz red green blue'.split(),
                      [*XYZ.T, *NORMALS.T, *RGB.T]))
    vertex = np.empty(len(XYZ), dtype=props)
    for name, _ in props:
        vertex[name] = values[name]
    elements = [PlyElement.describe(vertex, 'vertex')]
    if faces:  # a mesh's faces must be ignored
        face = np.empty(2, dtype=[('vertex_indices', 'i4', (3, ))])
        face['vertex_indices'] = [[0, 1, 2], [2, 3, 4]]
        elements.append(PlyElement.describe(face, 'face'))
    PlyData(elements, text=text, byte_order=byte_order).write(str(path))


EXPECTED_PLY = np.concatenate([XYZ, NORMALS, RGB.astype(np.float32)], axis=1)
PLY_FIELDS = ['x', 'y', 'z', 'nx', 'ny', 'nz', 'red', 'green', 'blue']


@pytest.mark.parametrize('text,byte_order', [(True, '='), (False, '<'), (False, '>')])
def test_ply_round_trip(tmp_path, text, byte_order):
    path = tmp_path / 'cloud.ply'
    _write_ply(path, text, byte_order)
    out = _load(path)
    assert out['points'].dtype == np.float32 and out['num_points'] == 20
    if text:  # ascii stores decimal text; plyfile writes float32 with enough digits
        np.testing.assert_allclose(out['points'], EXPECTED_PLY, rtol=1e-6)
    else:
        np.testing.assert_array_equal(out['points'], EXPECTED_PLY)
    assert out['point_fields'] == PLY_FIELDS


def test_ply_puts_xyz_first_and_selects_dims(tmp_path):
    path = tmp_path / 'reordered.ply'
    _write_ply(path, text=False, order=[6, 7, 8, 3, 4, 5, 0, 1, 2], faces=False)  # rgb, n, xyz
    # x, y, z first, then the other properties in file order.
    out = _load(path, num_features=9)
    np.testing.assert_array_equal(out['points'],
                                  np.concatenate([XYZ, RGB.astype(np.float32), NORMALS], 1))
    assert out['point_fields'] == ['x', 'y', 'z', 'red', 'green', 'blue', 'nx', 'ny', 'nz']
    out = _load(path, use_dims=[0, 1, 2, 6, 7, 8])
    np.testing.assert_array_equal(out['points'], np.concatenate([XYZ, NORMALS], 1))
    assert out['point_fields'] == ['x', 'y', 'z', 'nx', 'ny', 'nz']


def test_handwritten_scanner_style_ply(tmp_path):
    """A header as the Stanford scans have it (comments, confidence/intensity,
    uchar-counted face lists), written by hand rather than by plyfile."""
    path = tmp_path / 'bun_zipper.ply'
    path.write_text('ply\nformat ascii 1.0\ncomment zipper output\nelement vertex 3\n'
                    'property float x\nproperty float y\nproperty float z\n'
                    'property float confidence\nproperty float intensity\n'
                    'element face 1\nproperty list uchar int vertex_indices\nend_header\n'
                    '-0.0378 0.128 0.00448 0.852 0.5\n-0.0447 0.128 0.00143 1 0.4\n'
                    '-0.0687 0.151 0.0284 0.2 0.9\n3 0 1 2\n')
    out = _load(path)
    np.testing.assert_array_equal(out['points'], np.array(
        [[-0.0378, 0.128, 0.00448, 0.852, 0.5], [-0.0447, 0.128, 0.00143, 1, 0.4],
         [-0.0687, 0.151, 0.0284, 0.2, 0.9]], np.float32))
    assert out['point_fields'] == ['x', 'y', 'z', 'confidence', 'intensity']


def test_text_formats_round_trip(tmp_path):
    data = np.concatenate([XYZ, NORMALS], axis=1).astype(np.float64)
    xyz = tmp_path / 'cloud.xyz'  # CGAL/MeshLab style: whitespace, optional comments
    np.savetxt(xyz, data, fmt='%.9g', header='x y z nx ny nz')
    txt = tmp_path / 'airplane_0001.txt'  # ModelNet40 style: comma separated
    np.savetxt(txt, data, fmt='%.9g', delimiter=',')
    spaced = tmp_path / 'spaced.txt'
    np.savetxt(spaced, data, fmt='%.9g', delimiter=', ')
    for path in (xyz, txt, spaced):
        out = _load(path)
        np.testing.assert_array_equal(out['points'], data.astype(np.float32))
        assert out['point_fields'] == ['x', 'y', 'z', 'f3', 'f4', 'f5']
    assert _load(txt, use_dims=[0, 1, 2])['points'].shape == (20, 3)


def test_npy_and_bin_round_trip(tmp_path):
    data = np.concatenate([XYZ, NORMALS[:, :1]], axis=1)
    np.save(tmp_path / 'a.npy', data.astype(np.float64))
    np.testing.assert_array_equal(_load(tmp_path / 'a.npy')['points'], data)
    np.save(tmp_path / 'flat.npy', data.ravel())
    np.testing.assert_array_equal(_load(tmp_path / 'flat.npy', num_features=4)['points'], data)
    data.astype('<f4').tofile(tmp_path / '000001.bin')
    out = TRANSFORMS.build(dict(type='LoadPointsFromFile', num_features=4, key='lidar_path'))(
        dict(lidar_path=str(tmp_path / '000001.bin')))
    np.testing.assert_array_equal(out['points'], data)


def _expect_error(path, match, **kw):
    with pytest.raises(ValueError, match=match) as info:
        _load(path, **kw)
    assert str(path) in str(info.value)


def test_empty_clouds_fail(tmp_path):
    (tmp_path / 'empty.txt').write_text('# only a comment\n')
    _expect_error(tmp_path / 'empty.txt', 'holds no points')
    np.save(tmp_path / 'empty.npy', np.zeros((0, 3), np.float32))
    _expect_error(tmp_path / 'empty.npy', 'holds no points')
    vertex = np.empty(0, dtype=[('x', 'f4'), ('y', 'f4'), ('z', 'f4')])
    PlyData([PlyElement.describe(vertex, 'vertex')]).write(str(tmp_path / 'empty.ply'))
    _expect_error(tmp_path / 'empty.ply', 'holds no points')


def test_non_finite_values_fail(tmp_path):
    (tmp_path / 'nan.txt').write_text('0,0,0\n1,nan,2\n3,4,5\n')
    _expect_error(tmp_path / 'nan.txt', r'NaN/inf values in 1 of 3 points \(first at row 1\)')
    bad = XYZ.copy()
    bad[5, 2] = np.inf
    np.save(tmp_path / 'inf.npy', bad)
    _expect_error(tmp_path / 'inf.npy', 'NaN/inf')
    np.save(tmp_path / 'huge.npy', np.full((2, 3), 1e300))  # overflows float32
    _expect_error(tmp_path / 'huge.npy', 'NaN/inf')


def test_wrong_columns_fail(tmp_path):
    np.savetxt(tmp_path / 'six.txt', np.concatenate([XYZ, NORMALS], 1), delimiter=',')
    _expect_error(tmp_path / 'six.txt', 'expected num_features=3', num_features=3)
    _expect_error(tmp_path / 'six.txt', r'use_dims \[0, 6\]', use_dims=[0, 6])
    np.savetxt(tmp_path / 'two.xyz', XYZ[:, :2])
    _expect_error(tmp_path / 'two.xyz', 'at least 3')
    (tmp_path / 'ragged.txt').write_text('0 0 0\n1 2\n')
    _expect_error(tmp_path / 'ragged.txt', 'same number of numeric values')
    (tmp_path / 'words.txt').write_text('x y z\n0 0 0\n')
    _expect_error(tmp_path / 'words.txt', 'cannot parse point file')
    np.save(tmp_path / 'cube.npy', np.zeros((2, 3, 3)))
    _expect_error(tmp_path / 'cube.npy', r'expected \(N, C\)')
    (tmp_path / 'odd.bin').write_bytes(b'\0' * 20)
    _expect_error(tmp_path / 'odd.bin', 'not a multiple', num_features=4)
    _expect_error(tmp_path / 'odd.bin', 'needs num_features')


def test_unreadable_and_unknown_files_fail(tmp_path):
    _expect_error(tmp_path / 'missing.ply', 'cannot read point file')
    (tmp_path / 'garbage.ply').write_bytes(b'\x89PNG\r\n\x1a\n not a ply')
    _expect_error(tmp_path / 'garbage.ply', 'cannot parse PLY file')
    (tmp_path / 'garbage.npy').write_bytes(b'not numpy')
    _expect_error(tmp_path / 'garbage.npy', 'cannot read .npy file')
    (tmp_path / 'latin.txt').write_bytes(b'\xff\xfe0 0 0\n')
    _expect_error(tmp_path / 'latin.txt', 'as text')
    (tmp_path / 'cloud.pcd').write_text('VERSION .7\n')
    _expect_error(tmp_path / 'cloud.pcd', r"unknown point-cloud file extension '\.pcd'")
    vertex = np.empty(2, dtype=[('x', 'f4'), ('y', 'f4')])
    PlyData([PlyElement.describe(vertex, 'vertex')]).write(str(tmp_path / 'flat.ply'))
    _expect_error(tmp_path / 'flat.ply', 'lack x, y, z')
    with pytest.raises(KeyError, match='points_path'):
        LoadPointsFromFile()(dict(img_path='a.png'))


# Point clouds shipped by Debian packages (CGAL demos, PCL, MeshLab), if any.
REAL_FILES = sorted(
    p for d in ('/usr/share/doc/libcgal-demo', '/usr/share/doc/libcgal-dev', '/usr/share/cgal',
                '/usr/share/doc/libpcl-dev', '/usr/share/pcl', '/usr/share/meshlab')
    for ext in ('ply', 'xyz') for p in glob.glob(f'{d}/**/*.{ext}', recursive=True)
    if os.path.getsize(p) < 20_000_000)[:8]


@pytest.mark.skipif(not REAL_FILES, reason='no packaged .ply/.xyz files on this machine')
@pytest.mark.parametrize('path', REAL_FILES or [None])
def test_real_packaged_files(path):
    try:
        out = _load(path)
    except ValueError as e:  # e.g. a mesh without vertices; it must say which file
        assert path in str(e)
        return
    assert out['points'].ndim == 2 and out['points'].shape[1] >= 3 and out['num_points'] > 0
    if path.endswith('.ply'):  # xyz columns are plyfile's own vertex coordinates
        vertex = PlyData.read(path)['vertex']
        np.testing.assert_array_equal(out['points'][:, 0], vertex['x'].astype(np.float32))
        np.testing.assert_array_equal(out['points'][:, 2], vertex['z'].astype(np.float32))


# -- meshes: surface sampling ----------------------------------------------------------------
CUBE_OFF = """OFF
# a cube of side 2 centred on the origin, quads wound outwards
8 6 12
-1 -1 -1
 1 -1 -1
 1  1 -1
-1  1 -1
-1 -1  1
 1 -1  1
 1  1  1
-1  1  1
4 0 3 2 1
4 4 5 6 7
4 0 1 5 4
4 2 3 7 6
4 1 2 6 5
4 0 4 7 3
"""
CUBE_NORMALS = np.array([[0, 0, -1], [0, 0, 1], [0, -1, 0], [0, 1, 0], [1, 0, 0], [-1, 0, 0]])


def _on_cube_surface(points):
    return np.allclose(np.abs(points).max(axis=1), 1, atol=1e-5)


def test_off_cube_is_sampled_on_its_surface_by_area(tmp_path):
    path = tmp_path / 'cube.off'
    path.write_text(CUBE_OFF)
    out = _load(path, mesh_samples=6000, mesh_normals=True)
    points = out['points']
    assert points.shape == (6000, 6) and points.dtype == np.float32 and out['num_points'] == 6000
    assert out['point_fields'] == ['x', 'y', 'z', 'nx', 'ny', 'nz']
    assert _on_cube_surface(points[:, :3])
    # Each point's normal is its face's outward normal: the axis where |coordinate| == 1.
    matches = np.array([(points[:, 3:] == n).all(axis=1) for n in CUBE_NORMALS])
    assert (matches.sum(0) == 1).all()
    face = matches.argmax(0)
    np.testing.assert_allclose((points[:, :3] * points[:, 3:]).sum(1), 1, atol=1e-5)
    # Six equal faces: ~1000 points each (binomial sd ~29), spread over each whole face.
    counts = np.bincount(face, minlength=6)
    assert (np.abs(counts - 1000) < 150).all(), counts
    top = points[face == 1, :2]
    assert top.min() < -0.95 and top.max() > 0.95 and abs(top.mean()) < 0.05


def test_mesh_sampling_is_area_weighted_and_deterministic(tmp_path):
    # A 2x2 square (area 4) and a separate small triangle (area 0.5), mixed polygon sizes,
    # colours after the face indices, blank lines and comments (OFF as written by CGAL).
    text = ('# Output of a CGAL tool\n\nCOFF\n7 2 0\n\n0 0 0 255 0 0\n2 0 0 255 0 0\n'
            '2 2 0 0 255 0\n0 2 0 0 0 255\n# triangle\n5 5 5 1 1 1\n6 5 5 1 1 1\n5 6 5 1 1 1\n'
            '4 0 1 2 3 0.5 0.5 0.5\n3 4 5 6\n')
    (tmp_path / 'a.off').write_text(text)
    (tmp_path / 'b.off').write_text(text)
    points = _load(tmp_path / 'a.off', mesh_samples=9000)['points']
    on_square = points[:, 2] == 0
    assert abs(on_square.mean() - 4 / 4.5) < 0.015
    tri = points[~on_square] - np.array([5, 5, 5], np.float32)
    assert (tri[:, :2] >= -1e-6).all() and (tri[:, :2].sum(1) <= 1 + 1e-5).all()
    # The seed comes from mesh_seed alone: same points every call, for every file.
    again = _load(tmp_path / 'a.off', mesh_samples=9000)['points']
    other_file = _load(tmp_path / 'b.off', mesh_samples=9000)['points']
    np.testing.assert_array_equal(points, again)
    np.testing.assert_array_equal(points, other_file)
    other_seed = _load(tmp_path / 'a.off', mesh_samples=9000, mesh_seed=1)['points']
    assert not np.array_equal(points, other_seed)


def test_off_header_glued_to_counts(tmp_path):
    """Some ModelNet40 files start "OFF3 1 0" (no newline after OFF)."""
    path = tmp_path / 'glued.off'
    path.write_text('OFF3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n')
    points = _load(path, mesh_samples=500)['points']
    assert points.shape == (500, 3) and (points[:, 2] == 0).all()
    assert (points[:, :2] >= 0).all() and (points[:, :2].sum(1) <= 1 + 1e-6).all()
    (tmp_path / 'counts_on_header.off').write_text('OFF 3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n')
    np.testing.assert_array_equal(_load(tmp_path / 'counts_on_header.off', mesh_samples=500)
                                  ['points'], points)


CUBE_OBJ = """# cube with texture coordinates and normals, as exported by modelling tools
o cube
v -1 -1 -1
v 1 -1 -1
v 1 1 -1
v -1 1 -1
v -1 -1 1
v 1 -1 1
v 1 1 1
v -1 1 1
vt 0 0
vn 0 0 1
f 1/1/1 4/1/1 3/1/1 2/1/1
f 5//1 6//1 7//1 8//1
f 1 2 6 5
f 3 4 8 7
f 2 3 7 6
f 1 5 8 4
"""


def test_obj_and_stl_are_sampled_with_trimesh(tmp_path):
    trimesh = pytest.importorskip('trimesh')
    (tmp_path / 'cube.obj').write_text(CUBE_OBJ)
    out = _load(tmp_path / 'cube.obj', mesh_samples=3000)
    assert out['points'].shape == (3000, 3) and _on_cube_surface(out['points'])
    assert np.abs(out['points'].mean(0)).max() < 0.05  # all six faces, not one
    box = trimesh.creation.box(extents=(2, 2, 2))
    (tmp_path / 'box.stl').write_bytes(box.export(file_type='stl'))
    ascii_stl = box.export(file_type='stl_ascii')
    (tmp_path / 'box_ascii.stl').write_text(ascii_stl if isinstance(ascii_stl, str)
                                            else ascii_stl.decode())
    binary = _load(tmp_path / 'box.stl', mesh_samples=3000, num_features=3)['points']
    assert _on_cube_surface(binary) and np.abs(binary.mean(0)).max() < 0.05
    # The same triangles in the same order give the same points, whatever the format.
    np.testing.assert_allclose(_load(tmp_path / 'box_ascii.stl', mesh_samples=3000)['points'],
                               binary, atol=1e-5)
    off = tmp_path / 'box.off'
    off.write_text(f'OFF\n{len(box.vertices)} {len(box.faces)} 0\n'
                   + ''.join(f'{x!r} {y!r} {z!r}\n' for x, y, z in box.vertices.tolist())
                   + ''.join(f'3 {a} {b} {c}\n' for a, b, c in box.faces.tolist()))
    np.testing.assert_allclose(_load(off, mesh_samples=3000)['points'], binary, atol=1e-6)


def test_ply_faces_are_sampled_only_on_request(tmp_path):
    path = tmp_path / 'mesh.ply'
    _write_ply(path, text=False)  # 20 vertices, 2 triangles
    assert _load(path)['points'].shape == (20, 9)  # default: the vertices, as before
    out = _load(path, sample_mesh=True, mesh_samples=300)
    assert out['points'].shape == (300, 3) and out['point_fields'] == ['x', 'y', 'z']
    tri = XYZ[[0, 1, 2]].astype(np.float64)  # points of face 0 lie in its plane
    normal = np.cross(tri[1] - tri[0], tri[2] - tri[0])
    on_face0 = np.abs((out['points'] - tri[0]) @ normal) < 1e-4 * np.linalg.norm(normal)
    tri1 = XYZ[[2, 3, 4]].astype(np.float64)
    normal1 = np.cross(tri1[1] - tri1[0], tri1[2] - tri1[0])
    on_face1 = np.abs((out['points'] - tri1[0]) @ normal1) < 1e-4 * np.linalg.norm(normal1)
    assert (on_face0 | on_face1).all() and on_face0.any() and on_face1.any()
    no_faces = tmp_path / 'cloud.ply'
    _write_ply(no_faces, text=True, faces=False)
    assert _load(no_faces, sample_mesh=True)['points'].shape == (20, 9)  # a point cloud stays


def test_mesh_errors_name_the_file(tmp_path):
    (tmp_path / 'points.off').write_text('OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n')
    _expect_error(tmp_path / 'points.off', 'has 3 vertices and no faces; expected a triangle mesh')
    (tmp_path / 'points.obj').write_text('v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 1\n')
    _expect_error(tmp_path / 'points.obj', 'has 4 vertices and no faces')
    (tmp_path / 'empty.off').write_text('OFF\n0 0 0\n')
    _expect_error(tmp_path / 'empty.off', 'has no vertices')
    (tmp_path / 'empty.obj').write_text('# nothing\n')
    _expect_error(tmp_path / 'empty.obj', 'has no vertices')
    (tmp_path / 'nan.off').write_text('OFF\n3 1 0\n0 0 0\nnan 0 0\n0 1 0\n3 0 1 2\n')
    _expect_error(tmp_path / 'nan.off', r'NaN/inf coordinates in 1 of 3 vertices \(first at '
                  r'vertex 1\)')
    (tmp_path / 'inf.obj').write_text('v 0 0 0\nv 1 0 inf\nv 0 1 0\nf 1 2 3\n')
    _expect_error(tmp_path / 'inf.obj', 'NaN/inf coordinates')
    (tmp_path / 'flat.off').write_text('OFF\n3 1 0\n0 0 0\n1 1 1\n2 2 2\n3 0 1 2\n')
    _expect_error(tmp_path / 'flat.off', 'total surface area of 0')
    _expect_error(tmp_path / 'missing.off', 'cannot read point file')
    with pytest.raises(ValueError, match='mesh_samples must be >= 1'):
        LoadPointsFromFile(mesh_samples=0)


@pytest.mark.parametrize('name,content,match', [
    ('garbage.off', b'\x89PNG\r\n\x1a\n\x00\x00', 'not ASCII'),
    ('words.off', b'PLY\n3 1 0\n', 'not an OFF header'),
    ('nocounts.off', b'OFF\n', 'no counts line'),
    ('badcounts.off', b'OFF\nthree 1 0\n', 'are not "num_vertices num_faces'),
    ('short.off', b'OFF\n4 2 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n', 'announces 4 vertices and 2'),
    ('badvertex.off', b'OFF\n3 1 0\n0 0 0\n1 zero 0\n0 1 0\n3 0 1 2\n', 'bad vertex line'),
    ('twod.off', b'OFF\n3 1 0\n0 0\n1 0\n0 1\n3 0 1 2\n', 'bad vertex line'),
    ('edge.off', b'OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n2 0 1\n', r'face 0 .* expected "n i1'),
    ('index.off', b'OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 3\n', r'span \[0, 3\] but the file '
     'has 3 vertices'),
    ('fourd.off', b'4OFF\n1 0 0\n0 0 0 1\n', '4D/nD OFF'),
    ('binary.off', b'OFF BINARY\n', 'binary OFF is not supported'),
    ('short.stl', b'\x00' * 40, 'shorter than the 84-byte'),
    ('truncated.stl', b'\x00' * 80 + (12).to_bytes(4, 'little') + b'\x00' * 100,
     'announces 12 triangles'),
    ('binary.obj', b'\xff\xfe\x00garbage', 'cannot parse OBJ file'),
    ('badindex.obj', b'v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n', 'cannot parse mesh file'),
])
def test_unparseable_meshes_fail_by_name(tmp_path, name, content, match):
    (tmp_path / name).write_bytes(content)
    _expect_error(tmp_path / name, match)


CGAL_TARBALL = '/usr/share/doc/libcgal-dev/data.tar.gz'


@pytest.mark.skipif(not os.path.isfile(CGAL_TARBALL), reason='libcgal-demo is not installed')
def test_real_cgal_meshes(tmp_path):
    """Debian's CGAL demo meshes: comments before the header (cube-shuffled), COFF
    (cactus), polygons with holes in the face list (P: quads and more), a point set."""
    import tarfile
    wanted = {'data/meshes/cube-shuffled.off', 'data/meshes/cactus.off', 'data/meshes/P.off',
              'data/points_3/kitten.off'}
    with tarfile.open(CGAL_TARBALL, 'r|gz') as tar:
        for member in tar:
            if member.name in wanted:
                (tmp_path / os.path.basename(member.name)).write_bytes(
                    tar.extractfile(member).read())
    cube = _load(tmp_path / 'cube-shuffled.off')['points']
    assert cube.shape == (2048, 3) and _on_cube_surface(cube)
    assert _load(tmp_path / 'cactus.off')['points'].shape == (2048, 3)
    assert _load(tmp_path / 'P.off')['points'].shape == (2048, 3)
    _expect_error(tmp_path / 'kitten.off', 'has 5210 vertices and no faces')


def test_fewer_points_than_min_points_names_the_file(tmp_path):
    path = tmp_path / 'small.xyz'
    path.write_text('0 0 0\n1 0 0\n0 1 0\n')
    assert LoadPointsFromFile(min_points=3).transform(dict(points_path=str(path)))['num_points'] == 3
    with pytest.raises(ValueError, match=r'small\.xyz holds 3 points, fewer than min_points=4'):
        LoadPointsFromFile(min_points=4).transform(dict(points_path=str(path)))
