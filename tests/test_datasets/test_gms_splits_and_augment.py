"""GMS data: the official split pickles (read without running pickled code),
the official augmentations on image and mask together, and the paper
configs' pipelines on a fixture in the official ``Dataset/<name>`` layout."""
import collections
import os.path as osp
import pickle

import cv2
import numpy as np
import pytest
import torch
from mmcv.transforms import RandomFlip
from mmengine.config import Config
from mmengine.dataset import Compose

from mmfusion.datasets import MedicalSegDataset
from mmfusion.datasets.medical_seg_dataset import read_gms_split_file
from mmfusion.datasets.transforms import ColorJitter, RandomRotate90, RandomShiftScaleRotate

from tests.conftest import DATA, REPO

ROOT = osp.join(DATA, 'gms_split')
SPLIT = 'toy_train_test_names.pkl'
GMS = osp.join(REPO, 'configs', 'gms')


# ---- split files -----------------------------------------------------------------------
def test_reads_the_official_split_format():
    assert read_gms_split_file(osp.join(ROOT, SPLIT)) == {
        'train': ['case_a', 'case_b', 'case_c'], 'test': ['case_d']}
    ds = MedicalSegDataset(data_root=ROOT, ann_file=SPLIT, split='train', pipeline=[])
    assert [d['sample_id'] for d in ds] == ['case_a', 'case_b', 'case_c']
    assert ds[0]['img_path'] == osp.join(ROOT, 'images', 'case_a.png')
    assert ds[0]['seg_map_path'] == osp.join(ROOT, 'masks', 'case_a.png')
    assert len(MedicalSegDataset(data_root=ROOT, ann_file=SPLIT, split='test', pipeline=[])) == 1


def test_bad_split_files_are_refused_with_the_file_named(tmp_path):
    with pytest.raises(ValueError, match=r"has splits \['test', 'train'\].*split="):
        MedicalSegDataset(data_root=ROOT, ann_file=SPLIT, split='val', pipeline=[])
    evil = tmp_path / 'evil.pkl'
    # a pickle that would build an object through a global
    evil.write_bytes(pickle.dumps({'train': {'name_list': [collections.OrderedDict()]}}))
    with pytest.raises(ValueError, match=r'evil.pkl.*global collections.OrderedDict'):
        read_gms_split_file(str(evil))
    wrong = tmp_path / 'wrong.pkl'
    wrong.write_bytes(pickle.dumps({'train': ['a', 'b']}))
    with pytest.raises(ValueError, match=r"wrong.pkl: split 'train' must be a dict"):
        read_gms_split_file(str(wrong))
    with pytest.raises(FileNotFoundError, match='missing.pkl'):
        read_gms_split_file(str(tmp_path / 'missing.pkl'))


# ---- transforms ------------------------------------------------------------------------
def _sample(h=30, w=40):
    """Image whose red channel is 200 exactly on the mask, 50 elsewhere; the
    mask lies near the centre, so warps keep it inside the frame (the border
    is reflected, for the mask too)."""
    mask = np.zeros((h, w), np.uint8)
    mask[11:18, 15:25] = 1
    img = np.full((h, w, 3), 50, np.uint8)
    img[..., 2] = np.where(mask > 0, 200, 50)
    img[..., 0] = np.arange(w, dtype=np.uint8)[None] * 3  # asymmetric content
    return dict(img=img, gt_seg_map=mask, seg_fields=['gt_seg_map'], img_shape=(h, w))


def test_rotate90_matches_np_rot90_on_image_and_mask():
    np.random.seed(0)
    t = RandomRotate90(prob=1.0)
    seen = set()
    for _ in range(40):
        src = _sample()
        out = t(dict(src, img=src['img'].copy(), gt_seg_map=src['gt_seg_map'].copy()))
        k = out['rotate90_k']
        seen.add(k)
        assert np.array_equal(out['img'], np.rot90(src['img'], k))
        assert np.array_equal(out['gt_seg_map'], np.rot90(src['gt_seg_map'], k))
        assert out['img_shape'] == out['img'].shape[:2]
    assert seen == {0, 1, 2, 3}
    # prob 0.5 and k = 0 drawable: unrotated 0.5 + 0.5 / 4 of the time
    t = RandomRotate90(prob=0.5)
    ks = [t(_sample())['rotate90_k'] for _ in range(4000)]
    assert abs(np.mean(np.array(ks) == 0) - 0.625) < 0.03


def _reference_matrix(angle, scale, dx, dy, h, w):
    """Translate the centre to the origin, rotate counter-clockwise (image y
    points down) and scale, move back, then shift by a fraction of the size."""
    a = np.deg2rad(angle)
    rot = scale * np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    c = np.array([w / 2, h / 2])
    return np.hstack([rot, (c - rot @ c + np.array([dx * w, dy * h]))[:, None]])


@pytest.mark.parametrize('params', [(90.0, 1.0, 0.0, 0.0), (-17.0, 1.08, 0.1, -0.12),
                                    (20.0, 0.9, -0.15, 0.05)])
def test_shift_scale_rotate_moves_image_and_mask_together(params):
    h, w = 30, 40
    np.testing.assert_allclose(RandomShiftScaleRotate.matrix(*params, h, w),
                               _reference_matrix(*params, h, w), atol=1e-9)
    t = RandomShiftScaleRotate(prob=1.0)
    t._draw = lambda: params  # fixed draw
    src = _sample(h, w)
    out = t(dict(src, img=src['img'].copy(), gt_seg_map=src['gt_seg_map'].copy()))
    mask = out['gt_seg_map']
    # the mask's centroid lands where the reference matrix sends it
    ys, xs = np.nonzero(src['gt_seg_map'])
    expected = _reference_matrix(*params, h, w) @ np.array([xs.mean(), ys.mean(), 1.0])
    ys2, xs2 = np.nonzero(mask)
    assert abs(xs2.mean() - expected[0]) < 0.75 and abs(ys2.mean() - expected[1]) < 0.75
    assert abs(mask.sum() - src['gt_seg_map'].sum() * params[1] ** 2) < 0.15 * mask.sum()
    assert set(np.unique(mask)) <= {0, 1}  # nearest: still a label map
    # inside the mask (away from its border) the image is the lesion colour
    inner = cv2.erode(mask, np.ones((3, 3), np.uint8))
    assert inner.any() and (out['img'][..., 2][inner > 0] == 200).all()


def test_shift_scale_rotate_draw_ranges_and_probability():
    np.random.seed(1)
    t = RandomShiftScaleRotate(shift_limit=0.15, scale_limit=0.1, rotate_limit=20, prob=0.4)
    draws = [t._draw() for _ in range(3000)]
    applied = np.array([d for d in draws if d is not None])
    assert abs(len(applied) / len(draws) - 0.4) < 0.03
    assert np.abs(applied[:, 0]).max() <= 20 and np.abs(applied[:, 0]).max() > 19
    assert (np.abs(applied[:, 1] - 1) <= 0.1).all() and (np.abs(applied[:, 2:]) <= 0.15).all()


def test_colour_jitter_brightness_scales_every_pixel_and_keeps_the_mask():
    torch.manual_seed(0)
    t = ColorJitter(brightness=0.1, prob=1.0)
    src = _sample()
    out = t(dict(src, img=src['img'].copy(), gt_seg_map=src['gt_seg_map'].copy()))
    assert np.array_equal(out['gt_seg_map'], src['gt_seg_map']) and out['img'].dtype == np.uint8
    ratio = out['img'][..., 2].astype(float) / src['img'][..., 2]
    factor = np.median(ratio)
    assert 0.9 <= factor <= 1.1 and factor != 1.0
    np.testing.assert_allclose(out['img'].astype(float),
                               np.clip(np.round(src['img'] * factor), 0, 255), atol=1.0)
    with pytest.raises(ValueError, match='HxWx3 uint8'):
        t(dict(img=np.zeros((4, 4), np.uint8)))


def test_flip_setting_gives_independent_horizontal_and_vertical_flips():
    """mmcv's RandomFlip with h/v/diagonal at 1/4 each = two independent p=0.5 flips."""
    np.random.seed(2)
    flip = RandomFlip(prob=[0.25, 0.25, 0.25], direction=['horizontal', 'vertical', 'diagonal'])
    draws = [flip._choose_direction() for _ in range(4000)]
    for d in ('horizontal', 'vertical', 'diagonal', None):
        assert abs(np.mean([x == d for x in draws]) - 0.25) < 0.03


# ---- the paper configs' data ----------------------------------------------------------
@pytest.mark.parametrize('name', ['busi', 'bus', 'glas', 'ham10000', 'kvasir-instrument',
                                  'busi-to-bus'])
def test_paper_configs_read_official_splits_and_augment(name):
    cfg = Config.fromfile(osp.join(GMS, f'gms_sd2-vae_1xb8-1000e_{name}.py'))
    train = cfg.train_dataloader.dataset
    assert train.ann_file.endswith('_train_test_names.pkl') and train.split == 'train'
    assert cfg.val_dataloader.dataset.split == cfg.test_dataloader.dataset.split == 'test'
    assert cfg.train_dataloader.drop_last and cfg.train_dataloader.batch_size == 8
    if name == 'busi-to-bus':
        assert cfg.train_dataloader.dataset.data_root.endswith('busi')
        assert cfg.test_dataloader.dataset.data_root.endswith('/bus')
    types = [t['type'] for t in train.pipeline]
    assert types == ['LoadImageFromFile', 'LoadBinaryMask', 'RandomFlip', 'RandomRotate90',
                     'ColorJitter', 'RandomShiftScaleRotate', 'Resize', 'PackFusionInputs']
    ds = MedicalSegDataset(data_root=ROOT, ann_file=SPLIT, split='train',
                           pipeline=train.pipeline)
    for i in range(len(ds)):
        item = ds[i]
        assert item['inputs']['img'].shape == (3, 224, 224)
        mask = item['data_samples'].gt_sem_seg.data
        assert mask.shape == (1, 224, 224) and set(mask.unique().tolist()) <= {0, 1}
    test = Compose(cfg.test_dataloader.dataset.pipeline)
    item = test(dict(img_path=osp.join(ROOT, 'images', 'case_d.png'),
                     seg_map_path=osp.join(ROOT, 'masks', 'case_d.png')))
    # the official evaluation: masks at the network's input size (nearest)
    mask = item['data_samples'].gt_sem_seg.data
    raw = cv2.imread(osp.join(ROOT, 'masks', 'case_d.png'), cv2.IMREAD_GRAYSCALE) > 0
    assert torch.equal(mask[0], torch.from_numpy(
        cv2.resize(raw.astype(np.uint8), (224, 224), interpolation=cv2.INTER_NEAREST)).long())
    assert cfg.model.pred_at_input_size
