import json
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from tools.dataset_converters.generate_synthmatte import (
    BG_PHOTOS,
    BG_PHOTOS_TEST,
    KINDS,
    generate_sample,
    main,
)


@pytest.fixture(scope='module')
def synthmatte(tmp_path_factory):
    root = tmp_path_factory.mktemp('synthmatte')
    main(['--out', str(root), '--num-train', '12', '--num-val', '2', '--num-test', '4',
          '--size', '64'])
    return root


def _read(root, rel):
    return np.asarray(Image.open(osp.join(root, rel)))


def _records(root, split):
    with open(osp.join(root, f'{split}.json')) as f:
        return json.load(f)


def test_layout_and_composite(synthmatte):
    for split, count in (('train', 12), ('val', 2), ('test', 4)):
        records = _records(synthmatte, split)
        assert len(records) == count
        for r in records:
            fg, bg, merged = (_read(synthmatte, r[f'{k}_path']).astype(np.float64)
                              for k in ('fg', 'bg', 'merged'))
            alpha = _read(synthmatte, r['alpha_path'])
            assert fg.shape == bg.shape == merged.shape == (64, 64, 3) and alpha.shape == (64, 64)
            a = alpha[..., None] / 255.0
            # I = alpha F + (1 - alpha) B up to the 8-bit rounding of the three images
            assert np.abs(merged - (a * fg + (1 - a) * bg)).max() <= 1.5
            assert 0 < (alpha == 255).mean() < 0.6 and (alpha == 0).mean() > 0.3
            trimap = _read(synthmatte, r['trimap_path'])
            assert set(np.unique(trimap)) <= {0, 128, 255}
            assert (alpha[trimap == 255] == 255).all() and (alpha[trimap == 0] == 0).all()
            # every fractional pixel is in the unknown region
            assert (trimap[(alpha > 0) & (alpha < 255)] == 128).all()
            pool = BG_PHOTOS_TEST if split == 'test' else BG_PHOTOS
            assert r['bg_photo'] in pool and r['kind'] in KINDS


def test_hair_and_fur_have_subpixel_alpha():
    fractions = {}
    for i in range(30):
        s = generate_sample(0, i, 64, 'train')
        frac = ((s['alpha'] > 0) & (s['alpha'] < 255)).mean()
        if not (s['record']['blur'] or s['record']['semi_transparent']):
            fractions.setdefault(s['record']['kind'], []).append(frac)
    # strands add fractional alpha beyond the anti-aliased edge of a solid body
    assert min(np.mean(fractions['hair']), np.mean(fractions['fur'])) > 2 * np.mean(
        fractions['solid'])


def test_deterministic(synthmatte, tmp_path):
    main(['--out', str(tmp_path), '--num-train', '3', '--num-val', '0', '--num-test', '0',
          '--size', '64'])
    for k in ('merged', 'alpha', 'trimap'):
        rel = f'train/{k}/matte_00002.png'
        assert (_read(tmp_path, rel) == _read(synthmatte, rel)).all()
    # same parameters: nothing regenerated
    main(['--out', str(tmp_path), '--num-train', '3', '--num-val', '0', '--num-test', '0',
          '--size', '64'])
    assert len(_records(tmp_path, 'train')) == 3
