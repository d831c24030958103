import os.path as osp
import shutil

import numpy as np
import pytest
import torch
from mmengine.dataset import Compose
from PIL import Image

from mmfusion.datasets import MedicalSegDataset

from tests.conftest import DATA

ROOT = osp.join(DATA, 'medical_seg')
PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadBinaryMask'), dict(type='PackFusionInputs')]


def _dataset(root=ROOT, ann_file='splits/train.txt', pipeline=PIPELINE):
    return MedicalSegDataset(data_root=root, ann_file=ann_file, pipeline=pipeline)


def test_reads_split_and_normalises_0_255_and_0_1_masks():
    ds = _dataset()
    assert len(ds) == 4 and ds.metainfo['classes'] == ('background', 'lesion')
    for i in range(len(ds)):
        item = ds[i]
        img, sample = item['inputs']['img'], item['data_samples']
        assert img.shape == (3, 48, 48) and img.dtype == torch.uint8
        mask = sample.gt_sem_seg.data
        raw = np.array(Image.open(osp.join(ROOT, 'masks', f'case_{i:03d}.png')))
        assert torch.equal(mask[0], torch.from_numpy((raw > 0).astype(np.int64)))
        assert sample.sample_id == f'case_{i:03d}' and sample.ori_shape == (48, 48)
    assert ds[1]['data_samples'].gt_sem_seg.data.sum() > 0  # stored as 0/1
    assert ds[2]['data_samples'].gt_sem_seg.data.sum() == 0  # empty mask


def test_without_split_file_uses_all_images():
    assert len(MedicalSegDataset(data_root=ROOT, pipeline=[])) == 4


def _copy_fixture(tmp_path):
    root = tmp_path / 'ds'
    shutil.copytree(ROOT, root)
    return root


def test_corrupt_image_names_the_file(tmp_path):
    root = _copy_fixture(tmp_path)
    (root / 'images' / 'case_001.png').write_bytes(b'\x89PNG\r\n\x1a\nnot really')
    ds = _dataset(str(root))
    with pytest.raises(ValueError, match=r'case_001\.png'):
        ds[1]


def test_mask_size_mismatch_names_the_file(tmp_path):
    root = _copy_fixture(tmp_path)
    Image.fromarray(np.zeros((40, 48), np.uint8)).save(root / 'masks' / 'case_003.png')
    ds = _dataset(str(root))
    with pytest.raises(ValueError, match=r'masks/case_003\.png has size 48x40'):
        ds[3]


def test_missing_mask_fails_at_load_time(tmp_path):
    root = _copy_fixture(tmp_path)
    (root / 'masks' / 'case_002.png').unlink()
    with pytest.raises(FileNotFoundError, match=r'case_002'):
        _dataset(str(root))


def test_test_pipeline_keeps_mask_at_original_size():
    pipeline = Compose([dict(type='LoadImageFromFile'), dict(type='Resize', scale=(32, 32), keep_ratio=False),
                        dict(type='LoadBinaryMask'), dict(type='PackFusionInputs')])
    item = pipeline(dict(img_path=osp.join(ROOT, 'images', 'case_000.png'),
                         seg_map_path=osp.join(ROOT, 'masks', 'case_000.png')))
    assert item['inputs']['img'].shape == (3, 32, 32)
    assert item['data_samples'].gt_sem_seg.data.shape == (1, 48, 48)
    assert item['data_samples'].img_shape == (32, 32)
