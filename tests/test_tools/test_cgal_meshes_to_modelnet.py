"""cgal_meshes_to_modelnet on a tiny tarball laid out like Debian's CGAL data."""
import io
import json
import os
import tarfile

import numpy as np
import pytest

from mmfusion.datasets import ModelNet40Dataset

from tools.dataset_converters import cgal_meshes_to_modelnet as converter

CUBE = ('# Output of a CGAL tool\nOFF\n8 12 0\n-1 -1 -1\n1 -1 -1\n1 1 -1\n-1 1 -1\n-1 -1 1\n'
        '1 -1 1\n1 1 1\n-1 1 1\n3 0 2 1\n3 0 3 2\n3 4 5 6\n3 4 6 7\n3 0 1 5\n3 0 5 4\n'
        '3 2 3 7\n3 2 7 6\n3 1 2 6\n3 1 6 5\n3 0 4 7\n3 0 7 3\n')
# The same cube moved and scaled, its vertices listed in another order.
MOVED_CUBE = ('OFF\n8 6 0\n9 9 9\n11 9 9\n11 11 9\n9 11 9\n9 9 11\n11 9 11\n11 11 11\n'
              '9 11 11\n4 0 3 2 1\n4 4 5 6 7\n4 0 1 5 4\n4 2 3 7 6\n4 1 2 6 5\n4 0 4 7 3\n')
TETRA = 'OFF\n4 4 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 2 1\n3 0 1 3\n3 0 3 2\n3 1 2 3\n'
POINT_SET = 'OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n'
MEMBERS = {
    'data/meshes/cube.off': CUBE,
    'data/meshes/translated-cube.off': MOVED_CUBE,
    'data/meshes/tetrahedron.off': TETRA,
    'data/points_3/kitten.off': POINT_SET,
    'data/meshes/patch-01.off': TETRA,
    'data/points_3/kitten.xyz': '0 0 0\n',
}


def _tarball(path, members=MEMBERS):
    with tarfile.open(path, 'w:gz') as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def test_convert_writes_the_mesh_layout(tmp_path, capsys):
    tarball = _tarball(tmp_path / 'data.tar.gz')
    out = tmp_path / 'cgal_meshes'
    meta = converter.convert(str(out), tarball)
    printed = capsys.readouterr().out
    assert 'cube' in printed and 'total' in printed  # progress and the summary table
    assert (out / 'modelnet40_shape_names.txt').read_text() == 'cube\npyramid\n'
    assert (out / 'cube' / 'test' / 'cube.off').read_text() == CUBE  # bytes unchanged
    assert (out / 'pyramid' / 'test' / 'tetrahedron.off').read_text() == TETRA
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob('*.off')) == [
        'cube/test/cube.off', 'pyramid/test/tetrahedron.off']
    assert json.loads((out / 'meta.json').read_text()) == meta
    assert meta['counts'] == {'cube': 1, 'pyramid': 1} and 'animal' in meta['empty_categories']
    assert meta['files']['cube/test/cube.off']['member'] == 'data/meshes/cube.off'
    assert meta['files']['cube/test/cube.off']['triangles'] == 12
    skipped = meta['skipped']
    assert set(skipped) == {'data/meshes/translated-cube.off', 'data/points_3/kitten.off',
                            'data/meshes/patch-01.off'}
    assert skipped['data/meshes/translated-cube.off'].startswith('same vertices as cube')
    assert 'no faces' in skipped['data/points_3/kitten.off']
    assert 'open surface patch' in skipped['data/meshes/patch-01.off']
    # ModelNet40Dataset reads the result; the loader samples the meshes.
    ds = ModelNet40Dataset(str(out), split='test', layout='mesh', serialize_data=False,
                           pipeline=[dict(type='LoadPointsFromFile', mesh_samples=128)])
    assert ds.metainfo['classes'] == ('cube', 'pyramid')
    samples = [ds[i] for i in range(len(ds))]
    assert [(s['sample_id'], s['gt_label']) for s in samples] == [('cube', 0),
                                                                  ('tetrahedron', 1)]
    np.testing.assert_allclose(np.abs(samples[0]['points']).max(1), 1, atol=1e-5)


def test_convert_is_idempotent_and_drops_stale_files(tmp_path, monkeypatch):
    tarball = _tarball(tmp_path / 'data.tar.gz')
    out = tmp_path / 'out'
    first = converter.convert(str(out), tarball, verbose=False)
    cube = out / 'cube' / 'test' / 'cube.off'
    os.utime(cube, (1, 1))
    meta_text = (out / 'meta.json').read_text()
    assert converter.convert(str(out), tarball, verbose=False) == first
    assert cube.stat().st_mtime == 1  # unchanged files are not rewritten
    assert (out / 'meta.json').read_text() == meta_text
    # The table no longer selects the tetrahedron: its file and folder go.
    monkeypatch.setitem(converter.SKIP, 'tetrahedron', 'dropped for the test')
    meta = converter.convert(str(out), tarball, verbose=False)
    assert not (out / 'pyramid').exists() and cube.exists()
    assert meta['skipped']['data/meshes/tetrahedron.off'] == 'dropped for the test'
    assert (out / 'modelnet40_shape_names.txt').read_text() == 'cube\n'


def test_unreadable_members_and_cli(tmp_path, capsys):
    members = {'data/meshes/cube.off': 'OFF\n8 12 0\n0 0 0\n',  # truncated
               'data/meshes/sphere.off': TETRA, 'data/meshes/mystery.off': TETRA,
               'data/meshes/bear_bis.off': TETRA}
    tarball = _tarball(tmp_path / 'data.tar.gz', members)
    converter.main(['--out', str(tmp_path / 'out'), '--tarball', tarball, '--quiet'])
    summary = json.loads(capsys.readouterr().out)
    assert summary['counts'] == {'sphere': 1} and summary['skipped'] == 3
    skipped = json.loads((tmp_path / 'out' / 'meta.json').read_text())['skipped']
    assert skipped['data/meshes/cube.off'].startswith('unreadable: cannot parse OFF file')
    assert 'not in the category table' in skipped['data/meshes/mystery.off']
    assert skipped['data/meshes/bear_bis.off'] == 'another version of bear (kept)'
    with pytest.raises(SystemExit, match='libcgal-demo'):
        converter.convert(str(tmp_path / 'out2'), str(tmp_path / 'missing.tar.gz'))


def test_table_is_consistent():
    for stem, (category, _) in converter.CATEGORIES.items():
        assert category in converter.CATEGORY_ORDER, stem
        assert stem not in converter.SKIP and stem not in converter.DUPLICATES, stem
    assert set(converter.DUPLICATES.values()) <= set(converter.CATEGORIES)
    assert not set(converter.SKIP) & set(converter.DUPLICATES)
