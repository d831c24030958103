import hashlib
import json
import os
import os.path as osp

import numpy as np
import pytest

from mmfusion.datasets.synthshapes3d_meta import (
    BASES,
    CAPTION_TEMPLATES,
    CLASSES,
    HELD_OUT,
    MODIFIERS,
    SEEN_CLASSES,
)

from tools.dataset_converters.generate_synthshapes3d import SPLITS, generate_sample, main

# one object per seen class in val and per class in test, two per seen class in train
ARGS = ['--num-train', '28', '--num-val', '14', '--num-test', '18', '--points', '256']


@pytest.fixture(scope='module')
def synthshapes3d(tmp_path_factory):
    root = tmp_path_factory.mktemp('synthshapes3d')
    main(['--out', str(root)] + ARGS)
    return root


def _lines(root, name):
    with open(osp.join(root, name)) as f:
        return f.read().splitlines()


def _json(root, name):
    with open(osp.join(root, name)) as f:
        return json.load(f)


def _cloud(root, sample_id):
    folder = sample_id.rsplit('_', 1)[0]
    return np.loadtxt(osp.join(root, folder, sample_id + '.txt'), delimiter=',', ndmin=2)


def _class_of(sample_id):
    return sample_id.rsplit('_', 1)[0].replace('_', ' ')


def _extent_ratio(xyz):
    """z extent over the larger of the x and y extents."""
    extent = xyz.max(0) - xyz.min(0)
    return extent[2] / extent[:2].max()


def _hashes(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = osp.join(dirpath, name)
            with open(path, 'rb') as f:
                out[osp.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


def test_vocabulary():
    assert len(CLASSES) == len(set(CLASSES)) == 18 and len(CAPTION_TEMPLATES) >= 8
    assert CLASSES[9:12] == ['cone', 'tall cone', 'flat cone']
    assert set(HELD_OUT) <= set(CLASSES) and len(SEEN_CLASSES) == 14
    # every base and every modifier is still seen in training in another combination
    for base in BASES:
        assert any(c.split()[-1] == base for c in SEEN_CLASSES)
    for modifier in MODIFIERS:
        assert any((c.split()[0] if len(c.split()) == 2 else '') == modifier
                   for c in SEEN_CLASSES)


def test_layout_and_counts(synthshapes3d):
    assert _lines(synthshapes3d, 'shape_names.txt') == CLASSES
    splits = {s: _lines(synthshapes3d, f'{s}.txt') for s in SPLITS}
    assert {s: len(ids) for s, ids in splits.items()} == dict(train=28, val=14, test=18)
    all_ids = sum(splits.values(), [])
    assert len(set(all_ids)) == len(all_ids)  # unique across splits
    meta = _json(synthshapes3d, 'meta.json')
    assert meta['params']['points'] == 256 and meta['classes'] == CLASSES
    assert meta['held_out'] == HELD_OUT and set(meta['samples']) == set(all_ids)
    for split, ids in splits.items():
        classes = [_class_of(i) for i in ids]
        expected = CLASSES if split == 'test' else SEEN_CLASSES
        per_class = {c: classes.count(c) for c in expected}
        assert sorted(set(classes)) == sorted(expected)  # balanced over these classes
        assert set(per_class.values()) == {2 if split == 'train' else 1}
        assert meta['counts'][split]['per_class'] == per_class
        for sample_id in ids:
            assert meta['samples'][sample_id]['cls'] == _class_of(sample_id)
            assert meta['samples'][sample_id]['split'] == split
            assert _cloud(synthshapes3d, sample_id).shape == (256, 6)
    # a class folder per class, the reader's name -> folder rule
    for name in CLASSES:
        assert osp.isdir(osp.join(synthshapes3d, name.replace(' ', '_')))
    with open(osp.join(synthshapes3d, 'cone', 'cone_0000.txt')) as f:
        row = f.readline().rstrip('\n').split(',')
    assert len(row) == 6 and all(len(v.split('.')[1]) == 6 for v in row)


def test_held_out_only_in_test(synthshapes3d):
    for split in ('train', 'val'):
        assert not {_class_of(i) for i in _lines(synthshapes3d, f'{split}.txt')} & set(HELD_OUT)
    assert set(HELD_OUT) <= {_class_of(i) for i in _lines(synthshapes3d, 'test.txt')}


def test_clouds_normalised(synthshapes3d):
    meta = _json(synthshapes3d, 'meta.json')
    for sample_id, params in meta['samples'].items():
        cloud = _cloud(synthshapes3d, sample_id)
        xyz, normals = cloud[:, :3], cloud[:, 3:]
        assert np.isfinite(cloud).all()
        assert abs(np.linalg.norm(xyz, axis=1).max() - 1) < 1e-5
        assert np.abs(xyz.mean(0)).max() < 1e-5
        assert np.abs(np.linalg.norm(normals, axis=1) - 1).max() < 1e-5
        if params['base'] != 'torus':  # convex solids: normals point away from the centre
            assert ((normals * xyz).sum(1) > 0).mean() > 0.95
        # a partial view repeats kept points to get back to 256; a full one does not
        assert (len(np.unique(cloud, axis=0)) < 256) == params['partial']


def test_tall_is_taller_than_flat(synthshapes3d):
    ratios = {}
    for split in SPLITS:
        for sample_id in _lines(synthshapes3d, f'{split}.txt'):
            ratios.setdefault(_class_of(sample_id), []).append(
                _extent_ratio(_cloud(synthshapes3d, sample_id)[:, :3]))
    for base in BASES:  # more objects, straight from the generator
        for name in (f'tall {base}', f'flat {base}'):
            ratios[name] += [_extent_ratio(generate_sample(1, 0, i, name, 256)['points'][:, :3])
                             for i in range(6)]
        assert min(ratios[f'tall {base}']) > max(ratios[f'flat {base}']), base


def test_captions(synthshapes3d):
    captions = _json(synthshapes3d, 'captions.json')
    meta = _json(synthshapes3d, 'meta.json')
    assert set(captions) == set(meta['samples'])
    words = {'taper': 'tapered', 'bend': 'bent', 'shear': 'slanted'}
    for sample_id, texts in captions.items():
        params = meta['samples'][sample_id]
        assert 2 <= len(texts) <= 3 and texts[0] == f"a {params['cls']}."
        assert all(params['cls'] in t for t in texts)
        assert any('partial' in t for t in texts) == params['partial']
        kind = params['deformation']['kind']
        assert any(words.get(kind, '-') in t for t in texts) == (kind != 'none')


def test_deterministic(synthshapes3d, tmp_path):
    again = tmp_path / 'again'
    main(['--out', str(again)] + ARGS)
    expected = _hashes(synthshapes3d)
    assert _hashes(again) == expected
    # same parameters: nothing regenerated; other parameters: refused without --overwrite
    main(['--out', str(again)] + ARGS)
    assert _hashes(again) == expected
    with pytest.raises(SystemExit):
        main(['--out', str(again)] + ARGS[:-1] + ['128'])
    # a sample does not depend on the split sizes
    smaller = tmp_path / 'smaller'
    main(['--out', str(smaller), '--num-train', '14', '--num-val', '0', '--num-test', '0',
          '--points', '256'])
    smaller_hashes = _hashes(smaller)
    for sample_id in _lines(smaller, 'train.txt'):
        folder = sample_id.rsplit('_', 1)[0]
        rel = osp.join(folder, sample_id + '.txt')
        assert smaller_hashes[rel] == expected[rel]
