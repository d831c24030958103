import json
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config

from mmfusion.datasets import CocoInstanceCropDataset
from mmfusion.datasets.synthshapes_meta import HELD_OUT, THING_CLASSES
from mmfusion.datasets.transforms import CropToBox

from tests.conftest import REPO

CROPS_CFG = osp.join(REPO, 'configs', '_base_', 'datasets', 'synthshapes_crops.py')


def test_config_classes_match_generator():
    cfg = Config.fromfile(CROPS_CFG)
    assert cfg.classes == THING_CLASSES
    assert sorted(cfg.novel_classes) == sorted(HELD_OUT)


def test_one_sample_per_object(synthshapes_root):
    cfg = Config.fromfile(CROPS_CFG)
    dataset_cfg = cfg.val_dataloader.dataset.datasets[0]
    dataset_cfg.update(data_root=synthshapes_root)
    dataset_cfg.pop('type')
    dataset = CocoInstanceCropDataset(**dataset_cfg)
    with open(osp.join(synthshapes_root, 'annotations', 'instances_val.json')) as f:
        coco = json.load(f)
    assert list(dataset.metainfo['classes']) == THING_CLASSES
    assert len(dataset) == len(coco['annotations'])
    assert len({dataset.get_data_info(i)['sample_id'] for i in range(len(dataset))}) == len(dataset)
    sample = dataset[0]
    ann = coco['annotations'][0]
    assert sample['inputs']['img'].shape == (3, 32, 32)
    assert sample['inputs']['text'] == THING_CLASSES[ann['category_id'] - 1]
    assert int(sample['data_samples'].gt_label) == ann['category_id'] - 1
    assert sample['data_samples'].metainfo['sample_id'].endswith(f'#{ann["id"]}')


def test_unknown_class_and_missing_file(synthshapes_root, tmp_path):
    ann_file = osp.join(synthshapes_root, 'annotations', 'instances_val.json')
    with pytest.raises(ValueError, match='pink hexagon'):
        CocoInstanceCropDataset(ann_file=ann_file, metainfo=dict(classes=['red circle',
                                                                          'pink hexagon']))
    with pytest.raises(FileNotFoundError, match='nowhere.json'):
        CocoInstanceCropDataset(ann_file=str(tmp_path / 'nowhere.json'))
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps(dict(images=[], annotations=[])))
    with pytest.raises(KeyError, match='categories'):
        CocoInstanceCropDataset(ann_file=str(bad))


def test_crop_to_box_pads_outside():
    img = np.arange(10 * 10 * 3, dtype=np.uint8).reshape(10, 10, 3)
    # Box at the top-left corner, 4 wide and 2 high: square 4x4 + margin 0.25*4 per side.
    out = CropToBox(margin=0.25)(dict(img=img, bbox=[0, 0, 4, 2]))
    x1, y1, x2, y2 = out['crop_box']
    assert (x2 - x1, y2 - y1) == (6, 6) and out['img'].shape == (6, 6, 3)
    assert (x1, y1) == (-1, -2)
    assert (out['img'][:2] == 0).all() and (out['img'][:, :1] == 0).all()
    np.testing.assert_array_equal(out['img'][2:, 1:], img[:4, :5])


def test_panoptic_format_gives_every_segment(synthshapes_root):
    ann_file = osp.join(synthshapes_root, 'annotations', 'panoptic_val.json')
    dataset = CocoInstanceCropDataset(ann_file=ann_file, format='coco_panoptic',
                                      data_prefix=dict(img_path=osp.join(synthshapes_root,
                                                                         'images')))
    with open(ann_file) as f:
        pan = json.load(f)
    segments = [s for a in pan['annotations'] for s in a['segments_info']]
    assert len(dataset) == len(segments)
    texts = {dataset.get_data_info(i)['text'] for i in range(len(dataset))}
    assert 'striped background' in texts or 'plain background' in texts  # stuff crops too
    assert texts & set(THING_CLASSES)
    with pytest.raises(ValueError, match='format'):
        CocoInstanceCropDataset(ann_file=ann_file, format='lvis')
    with pytest.raises(KeyError, match='segments_info'):
        CocoInstanceCropDataset(ann_file=osp.join(synthshapes_root, 'annotations',
                                                  'instances_val.json'), format='coco_panoptic')
