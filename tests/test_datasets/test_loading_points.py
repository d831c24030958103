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
