"""The matting test-set configs (AIM-500, AM-2K, P3M-500-NP, RWP-636,
RefMatte-RW100) read tiny fixtures written in each set's official layout, and
RefMatteDataset's own rules and errors."""
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmfusion.datasets import RefMatteDataset
from mmfusion.registry import DATASETS, METRICS

from tests.conftest import REPO

BASE = osp.join(REPO, 'configs', '_base_', 'datasets')
H, W = 10, 14


def _dataset(**kwargs):
    # serialize_data's gc.collect() costs ~0.3 s in a big test process
    return RefMatteDataset(serialize_data=False, **kwargs)


def _write(path, array):
    os.makedirs(osp.dirname(path), exist_ok=True)
    assert cv2.imwrite(path, array)


def _pair(seed):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    alpha = np.zeros((H, W), np.uint8)
    alpha[2:8, 3 + seed % 3:11] = rng.integers(1, 256, (6, 8 - seed % 3), dtype=np.uint8)
    trimap = np.zeros((H, W), np.uint8)
    trimap[1:9, 2:12] = 128
    trimap[3:7, 5:10] = 255
    return img, alpha, trimap


def _folder_set(root, img_dir, alpha_dir, trimap_dir, distractors=()):
    """Two samples: <stem>.jpg photos, .png alphas (and trimaps); returns
    {stem: (photo as decoded, alpha, trimap or None)}."""
    truth = {}
    for seed, stem in enumerate(('m_001', 'p_002')):
        img, alpha, trimap = _pair(seed)
        path = osp.join(root, img_dir, stem + '.jpg')
        _write(path, img)
        _write(osp.join(root, alpha_dir, stem + '.png'), alpha)
        if trimap_dir:
            _write(osp.join(root, trimap_dir, stem + '.png'), trimap)
        for d in distractors:  # other folders of the release, not read
            _write(osp.join(root, d, stem + '.png'), np.full((H, W), 7, np.uint8))
        truth[stem] = (cv2.imread(path), alpha, trimap if trimap_dir else None)
    return truth


def _rw100(root):
    """Two photos, three instance masks, the label json."""
    truth, labels = {}, {}
    for seed, (image, k) in enumerate((('img_a', 0), ('img_a', 1), ('img_b', 0))):
        img, alpha, _ = _pair(seed)
        path = osp.join(root, 'image', image + '.jpg')
        if not osp.exists(path):
            _write(path, img)
        _write(osp.join(root, 'mask', f'{image}_{k}.png'), alpha)
        truth[f'{image}_{k}'] = (cv2.imread(path), alpha, None)
        labels[f'{image}_{k}'] = dict(image_name=image, expressions=[f'the thing {seed}'],
                                      keyword='thing')
    with open(osp.join(root, 'refmatte_rw100_label.json'), 'w') as f:
        json.dump(labels, f)
    return truth


LAYOUTS = {
    'matting_aim500.py': lambda r: _folder_set(r, 'original', 'mask', 'trimap', ['usr']),
    'matting_am2k.py': lambda r: _folder_set(r, 'validation/original', 'validation/mask',
                                             'validation/trimap', ['train/mask']),
    'matting_p3m500np.py': lambda r: _folder_set(
        r, 'validation/P3M-500-NP/original_image', 'validation/P3M-500-NP/mask',
        'validation/P3M-500-NP/trimap', ['validation/P3M-500-P/mask']),
    'matting_rwp636.py': lambda r: _folder_set(r, 'image', 'alpha', None, ['mask']),
    'matting_refmatte_rw100.py': _rw100,
}


@pytest.mark.parametrize('name', sorted(LAYOUTS))
def test_config_reads_its_official_layout(tmp_path, name):
    truth = LAYOUTS[name](str(tmp_path))
    init_default_scope('mmfusion')
    cfg = Config.fromfile(osp.join(BASE, name))
    assert cfg.data_root.startswith('data/')
    ds_cfg = cfg.test_dataloader.dataset
    ds_cfg.data_root = str(tmp_path)
    ds_cfg.serialize_data = False  # its gc.collect() costs ~0.3 s in a big test process
    ds = DATASETS.build(ds_cfg)
    assert len(ds) == len(truth)
    for i in range(len(ds)):
        out = ds[i]
        data = out['data_samples']
        stem = osp.splitext(osp.basename(data.alpha_path))[0]
        img, alpha, trimap = truth[stem]
        assert (out['inputs']['img'].permute(1, 2, 0).numpy() == img).all()
        np.testing.assert_allclose(data.gt_alpha.data[0].numpy(), alpha / 255.0, atol=1e-6)
        assert ('gt_trimap' in data) == (trimap is not None)
        if trimap is not None:
            assert (data.gt_trimap.data[0].numpy() == trimap).all()
        ys, xs = np.nonzero(alpha)
        assert data.alpha_box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        if name == 'matting_refmatte_rw100.py':
            assert data.image_name == stem.rsplit('_', 1)[0]
            assert data.expressions[0].startswith('the thing')
    assert len(cfg.test_evaluator) == 1
    metric = METRICS.build(cfg.test_evaluator[0])
    assert metric.region == 'all' and metric.metrics == ('sad', 'mse', 'grad', 'conn')


def test_refmatte_without_labels_and_errors(tmp_path):
    root = str(tmp_path)
    _rw100(root)
    ds = _dataset(data_root=root)  # SEMat's rule: the mask stem minus "_<k>"
    assert [osp.basename(ds.get_data_info(i)['img_path']) for i in range(3)] == [
        'img_a.jpg', 'img_a.jpg', 'img_b.jpg']
    info = _dataset(data_root=root, ann_file='refmatte_rw100_label.json').get_data_info(1)
    assert info['expressions'] == ['the thing 1'] and info['keyword'] == 'thing'
    with pytest.raises(FileNotFoundError, match=r'label file not found: .*nope\.json'):
        _dataset(data_root=root, ann_file='nope.json')
    _write(osp.join(root, 'mask', 'img_c_0.png'), np.ones((H, W), np.uint8))
    with pytest.raises(KeyError, match=r'has no record for mask .*img_c_0\.png'):
        _dataset(data_root=root, ann_file='refmatte_rw100_label.json')
    with pytest.raises(FileNotFoundError, match=r'mask .*img_c_0\.png: its image .*img_c\.jpg '
                                                r'is missing'):
        _dataset(data_root=root)
