"""COCOMattingDataset + LoadMattingPanels on tiny fixtures in COCO-Matting's
released layout (trimap | alpha PNGs + COCO photos) and in the authors'
image-first panel layout."""
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmfusion.datasets import COCOMattingDataset
from mmfusion.registry import DATASETS

from tests.conftest import REPO

CONFIG = osp.join(REPO, 'configs', '_base_', 'datasets', 'matting_coco_matting.py')
H, W = 12, 16


def _dataset(**kwargs):
    # serialize_data's gc.collect() costs ~0.3 s in a big test process
    return COCOMattingDataset(serialize_data=False, **kwargs)


def _write(path, array):
    os.makedirs(osp.dirname(path), exist_ok=True)
    assert cv2.imwrite(path, array)


def _sample(seed):
    """An image, a trimap with off-level values (the official thresholds
    quantise them) and its expected 0/128/255 version, and an alpha."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    trimap = np.zeros((H, W), np.uint8)
    trimap[2:10, 3:13] = 128
    trimap[4:8, 5:11] = 255
    trimap[2, 3], trimap[3, 3], trimap[0, 0] = 84, 169, 30  # -> 0, 128, 0
    expected = np.where(trimap < 85, 0, np.where(trimap >= 170, 255, 128)).astype(np.uint8)
    alpha = np.zeros((H, W), np.uint8)
    alpha[3:9, 4:12] = rng.integers(1, 256, (6, 8), dtype=np.uint8)
    return img, trimap, expected, alpha


def _panels(*arrays):
    return np.concatenate([a if a.ndim == 3 else np.repeat(a[..., None], 3, 2)
                           for a in arrays], axis=1)


@pytest.fixture
def released(tmp_path):
    """The released layout: 2-panel PNGs, the json, COCO photos in two folders."""
    root = str(tmp_path)
    names = {'000000000999_baseball bat_00.png': ('train2017', 0),
             '000000000045_tie_01.png': ('unlabeled2017', 1)}
    truth = {}
    for name, (folder, seed) in names.items():
        img, trimap, expected, alpha = _sample(seed)
        _write(osp.join(root, 'COCO-Matting_trimap_alpha', name), _panels(trimap, alpha))
        img_path = osp.join(root, folder, name.split('_')[0] + '.jpg')
        _write(img_path, img)
        truth[name] = (cv2.imread(img_path), expected, alpha)  # the JPEG as decoded
    records = [dict(save_path='COCO-Matting_trimap_alpha/000000000999_baseball bat_00.png',
                    miou=97),
               dict(save_path='some/internal/dir/000000000045_tie_01.png')]
    with open(osp.join(root, 'coco_matting.json'), 'w') as f:
        json.dump(records, f)
    return root, truth


def _check(sample, img, trimap, alpha):
    data = sample['data_samples']
    assert (sample['inputs']['img'].permute(1, 2, 0).numpy() == img).all()
    np.testing.assert_allclose(data.gt_alpha.data[0].numpy(), alpha / 255.0, atol=1e-6)
    assert (data.gt_trimap.data[0].numpy() == trimap).all()
    ys, xs = np.nonzero(alpha)
    assert data.alpha_box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_config_reads_the_released_layout(released):
    root, truth = released
    init_default_scope('mmfusion')
    cfg = Config.fromfile(CONFIG)
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.data_root = root
    ds_cfg.serialize_data = False  # its gc.collect() costs ~0.3 s in a big test process
    ds_cfg.pipeline = [t for t in ds_cfg.pipeline if t['type'] != 'MattingRandomFlip']
    ds = DATASETS.build(ds_cfg)
    assert len(ds) == 2
    assert ds.get_data_info(0)['miou'] == 97  # other record keys are kept
    for i in range(2):
        info = ds.get_data_info(i)
        name = osp.basename(info['panel_path'])
        assert osp.basename(info['img_path']) == name.split('_')[0] + '.jpg'
        _check(ds[i], *truth[name])
    assert ds[1]['data_samples'].img_path.endswith(osp.join('unlabeled2017', '000000000045.jpg'))


def test_panel_folder_without_json(released):
    root, truth = released
    ds = _dataset(data_root=root, pipeline=[
        dict(type='LoadImageFromFile'), dict(type='LoadMattingPanels'),
        dict(type='PackFusionInputs')])
    assert len(ds) == 2
    _check(ds[1], *truth['000000000999_baseball bat_00.png'])  # sorted: ...045 first


def test_image_panel_layout(tmp_path):
    """The authors' 4-panel files: image | mask | trimap | alpha, no photo."""
    root = str(tmp_path)
    img, trimap, expected, alpha = _sample(2)
    mask = (alpha > 0).astype(np.uint8) * 255
    _write(osp.join(root, 'panels', 'a.png'), _panels(img, mask, trimap, alpha))
    with open(osp.join(root, 'ann.json'), 'w') as f:
        json.dump([dict(save_path='a.png')], f)
    ds = _dataset(data_root=root, ann_file='ann.json', data_prefix=dict(panel_path='panels'),
                  panels=('img', 'mask', 'trimap', 'alpha'),
                  pipeline=[dict(type='LoadMattingPanels'), dict(type='PackFusionInputs')])
    sample = ds[0]
    _check(sample, img, expected, alpha)
    assert sample['data_samples'].ori_shape == (H, W)


def test_errors_name_the_file(released):
    root, _ = released
    with pytest.raises(FileNotFoundError, match=r'annotation file not found: .*missing\.json'):
        _dataset(data_root=root, ann_file='missing.json')
    with open(osp.join(root, 'bad.json'), 'w') as f:
        json.dump([dict(save_path='000000000999_baseball bat_00.png'),
                   dict(save_path='000000000007_cup_00.png')], f)
    with pytest.raises(FileNotFoundError,
                       match=r'bad\.json: record 1 points to a missing panel file .*'
                             r'000000000007_cup_00\.png'):
        _dataset(data_root=root, ann_file='bad.json')
    with open(osp.join(root, 'bad.json'), 'w') as f:
        json.dump([dict(image='x.jpg')], f)
    with pytest.raises(KeyError, match=r"record 0 has no 'save_path'.*\['image'\]"):
        _dataset(data_root=root, ann_file='bad.json')
    os.remove(osp.join(root, 'unlabeled2017', '000000000045.jpg'))
    with pytest.raises(FileNotFoundError, match=r'000000000045_tie_01\.png\): its COCO image '
                                                r'000000000045\.jpg is in none of'):
        _dataset(data_root=root, ann_file='coco_matting.json')
    with pytest.raises(ValueError, match='one trimap, one alpha'):
        _dataset(data_root=root, panels=('img', 'alpha'))

    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadMattingPanels')]
    with open(osp.join(root, 'one.json'), 'w') as f:
        json.dump([dict(save_path='000000000999_baseball bat_00.png')], f)
    name = osp.join(root, 'COCO-Matting_trimap_alpha', '000000000999_baseball bat_00.png')
    _write(name, np.zeros((H, 2 * W + 1, 3), np.uint8))
    ds = _dataset(data_root=root, ann_file='one.json', pipeline=pipeline)
    with pytest.raises(ValueError, match=r'baseball bat_00\.png is 33 pixels wide, not a '
                                         r"multiple of its 2 panels \['trimap', 'alpha'\]"):
        ds[0]
    _write(name, np.zeros((H, 2 * (W - 2), 3), np.uint8))
    with pytest.raises(ValueError, match=r'panels of .*baseball bat_00\.png are 14x12 \(WxH\) '
                                         r'each but its image .*000000000999\.jpg is 16x12'):
        ds[0]
    with pytest.raises(KeyError, match='put LoadImageFromFile before LoadMattingPanels'):
        _dataset(data_root=root, ann_file='one.json', pipeline=[dict(type='LoadMattingPanels')])[0]
