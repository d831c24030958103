"""PromptableSegDataset over COCO instances, COCO panoptic and mask folders,
and the prompt transforms."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from mmfusion.datasets import PromptableSegDataset
from mmfusion.registry import TRANSFORMS
from mmfusion.structures.prompt_sampling import (
    build_prompts,
    corrective_points,
    evaluation_click,
    jitter_boxes,
    masks_to_boxes,
)

H, W = 32, 40


def _rle(mask):
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    return rle


@pytest.fixture
def coco_root(tmp_path):
    (tmp_path / 'images').mkdir()
    for i in range(3):
        Image.fromarray(np.full((H, W, 3), 60 * i, np.uint8)).save(tmp_path / 'images' / f'{i}.png')
    square = np.zeros((H, W), bool)
    square[4:12, 6:20] = True
    anns = [
        dict(id=1, image_id=0, category_id=3, iscrowd=0, area=112, bbox=[6, 4, 14, 8],
             segmentation=[[6, 4, 20, 4, 20, 12, 6, 12]]),                   # polygon
        dict(id=2, image_id=0, category_id=5, iscrowd=0, area=112, bbox=[6, 4, 14, 8],
             segmentation=_rle(square)),                                      # RLE
        dict(id=3, image_id=0, category_id=3, iscrowd=1, area=10, bbox=[0, 0, 2, 2],
             segmentation=_rle(square)),                                      # crowd: skipped
        dict(id=4, image_id=1, category_id=5, iscrowd=0, area=112, bbox=[6, 4, 14, 8],
             segmentation=_rle(square)),
    ]
    coco = dict(images=[dict(id=i, file_name=f'{i}.png', height=H, width=W) for i in range(3)],
                annotations=anns, categories=[dict(id=3, name='cat'), dict(id=5, name='dog')])
    with open(tmp_path / 'instances.json', 'w') as f:
        json.dump(coco, f)
    return tmp_path, square


PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadPromptableAnnotations'),
            dict(type='GeneratePrompts', prompt='box'), dict(type='PackFusionInputs')]


def test_coco_instances_polygons_and_rle(coco_root):
    root, square = coco_root
    ds = PromptableSegDataset(data_root=str(root), ann_file='instances.json',
                              data_prefix=dict(img_path='images'), pipeline=PIPELINE)
    assert len(ds) == 2  # image 2 has no object
    assert ds.metainfo['classes'] == ('cat', 'dog')
    sample = ds[0]['data_samples']
    masks = sample.gt_instances.masks
    assert masks.shape == (2, H, W)
    assert torch.equal(masks[1], torch.from_numpy(square))
    # the polygon covers the same square (pycocotools rasterises its edges)
    assert (masks[0] & masks[1]).sum() >= 0.9 * square.sum()
    assert sample.gt_instances.labels.tolist() == [0, 1]
    assert sample.prompts.boxes[1].tolist() == [6, 4, 20, 12]
    assert sample.prompts.has_box.all()
    assert len(PromptableSegDataset(data_root=str(root), ann_file='instances.json',
                                    data_prefix=dict(img_path='images'), test_mode=True)) == 3


def test_coco_panoptic_things_and_stuff(tmp_path):
    ids = np.zeros((H, W), np.int64)
    ids[:, :] = 7
    ids[5:15, 5:15] = 1
    ids[20:30, 20:35] = 2
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
    (tmp_path / 'pan').mkdir()
    (tmp_path / 'img').mkdir()
    Image.fromarray(rgb).save(tmp_path / 'pan' / '0.png')
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / 'img' / '0.jpg')
    segs = [dict(id=1, category_id=1, iscrowd=0, area=100),
            dict(id=2, category_id=1, iscrowd=0, area=150),
            dict(id=7, category_id=9, iscrowd=0, area=H * W - 250)]
    pan = dict(images=[dict(id=0, file_name='0.jpg', height=H, width=W)],
               annotations=[dict(image_id=0, file_name='0.png', segments_info=segs)],
               categories=[dict(id=1, name='shape', isthing=1),
                           dict(id=9, name='background', isthing=0)])
    with open(tmp_path / 'pan.json', 'w') as f:
        json.dump(pan, f)
    ds = PromptableSegDataset(data_root=str(tmp_path), format='coco_panoptic',
                              ann_file='pan.json', data_prefix=dict(img_path='img',
                                                                    seg_map_path='pan'),
                              pipeline=PIPELINE)
    masks = ds[0]['data_samples'].gt_instances.masks
    assert [int(m.sum()) for m in masks] == [100, 150, H * W - 250]
    assert torch.equal(masks[2], torch.from_numpy(ids == 7))


def test_mask_folder_components(tmp_path):
    for sub in ('images', 'masks', 'splits'):
        (tmp_path / sub).mkdir()
    mask = np.zeros((H, W), np.uint8)
    mask[2:8, 2:8] = 255
    mask[20:30, 25:38] = 255
    mask[15, 15] = 255  # one-pixel speck
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / 'images' / 'a.png')
    Image.fromarray(mask).save(tmp_path / 'masks' / 'a.png')
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / 'images' / 'b.png')
    Image.fromarray(np.zeros((H + 1, W), np.uint8)).save(tmp_path / 'masks' / 'b.png')
    (tmp_path / 'splits' / 'train.txt').write_text('a\n')
    (tmp_path / 'splits' / 'bad.txt').write_text('b\n')
    pipeline = [dict(type='LoadImageFromFile'),
                dict(type='LoadPromptableAnnotations', min_component_area=2),
                dict(type='GeneratePrompts', prompt='point'), dict(type='PackFusionInputs')]
    ds = PromptableSegDataset(data_root=str(tmp_path), format='mask_folder',
                              ann_file='splits/train.txt', pipeline=pipeline)
    sample = ds[0]['data_samples']
    assert [int(m.sum()) for m in sample.gt_instances.masks] == [36, 130]
    # the first click of the NoC protocol: the innermost pixel of each object
    for mask_, point in zip(sample.gt_instances.masks, sample.prompts.points[:, 0]):
        x, y = point.long().tolist()
        assert mask_[y, x]
    x, y = sample.prompts.points[1, 0].tolist()  # 10 rows x 13 columns: 5 px deep at most
    assert 24 <= y <= 25 and 29 <= x <= 33
    bad = PromptableSegDataset(data_root=str(tmp_path), format='mask_folder',
                               ann_file='splits/bad.txt', pipeline=pipeline)
    with pytest.raises(ValueError, match=r'masks/b\.png has size 40x33.*images/b\.png is 40x32'):
        bad[0]


def test_bad_annotations_name_the_sample(coco_root):
    root, _ = coco_root
    coco = json.load(open(root / 'instances.json'))
    coco['annotations'][0]['segmentation'] = _rle(np.zeros((H, W), bool))
    with open(root / 'empty.json', 'w') as f:
        json.dump(coco, f)
    ds = PromptableSegDataset(data_root=str(root), ann_file='empty.json',
                              data_prefix=dict(img_path='images'), pipeline=PIPELINE)
    with pytest.raises(ValueError, match=r'images/0\.png: object 1 has an empty mask'):
        ds[0]
    coco['annotations'][0]['segmentation'] = _rle(np.ones((H, W), bool))
    coco['images'][0]['height'] = H + 4
    with open(root / 'size.json', 'w') as f:
        json.dump(coco, f)
    ds = PromptableSegDataset(data_root=str(root), ann_file='size.json',
                              data_prefix=dict(img_path='images'), pipeline=PIPELINE)
    with pytest.raises(ValueError, match=r'images/0\.png: the annotation file says .*40x36'):
        ds[0]
    with pytest.raises(ValueError, match='format must be one of'):
        PromptableSegDataset(format='voc', ann_file='x')


def test_generate_prompts_training_rules(coco_root):
    root, square = coco_root
    masks = np.stack([square] * 50).astype(np.uint8)
    from mmdet.structures.mask import BitmapMasks
    np.random.seed(0)
    t = TRANSFORMS.build(dict(type='GeneratePrompts', prompt='box_or_point', box_noise=True,
                              random_point=True))
    out = t(dict(gt_masks=BitmapMasks(masks, H, W), img_path='x'))['prompts']
    tight = torch.tensor([6., 4., 20., 12.])
    assert 10 < int(out['has_box'].sum()) < 40  # about half boxes
    shift = (out['boxes'] - tight).abs()
    assert shift.max() <= 14 * 0.1 * 5 and shift.max() > 0  # jittered, by ~10% of the side
    assert (out['boxes'][:, 2:] > out['boxes'][:, :2]).all()
    xs, ys = out['points'][:, 0].long().unbind(1)
    assert torch.from_numpy(square)[ys, xs].all()  # random points lie inside the object
    assert len({(x, y) for x, y in zip(xs.tolist(), ys.tolist())}) > 10
    assert torch.equal(out['point_labels'][:, 0], torch.where(out['has_box'], -1, 1))
    with pytest.raises(ValueError, match='prompt must be one of'):
        TRANSFORMS.build(dict(type='GeneratePrompts', prompt='scribble'))


def test_prompt_sampling_helpers():
    gt = torch.zeros(3, 10, 10, dtype=torch.bool)
    gt[:, 2:6, 2:6] = True
    pred = gt.clone()
    pred[0, 2:6, 2:4] = False          # only false negatives
    pred[1, 7:9, 7:9] = True           # only false positives
    points, labels = corrective_points(pred, gt, torch.Generator().manual_seed(0))
    assert labels.tolist() == [1, 0, -1]
    x, y = points[0].long().tolist()
    assert gt[0, y, x] and not pred[0, y, x]
    x, y = points[1].long().tolist()
    assert pred[1, y, x] and not gt[1, y, x]
    assert masks_to_boxes(gt).tolist() == [[2., 2., 6., 6.]] * 3
    with pytest.raises(ValueError, match='empty mask'):
        masks_to_boxes(torch.zeros(1, 4, 4, dtype=torch.bool))
    # the evaluation click goes to the deeper error region, at its centre
    big_fn = np.zeros((20, 20), bool)
    big_fn[2:13, 2:13] = True
    pred_np = np.zeros((20, 20), bool)
    pred_np[15:17, 15:17] = True
    (x, y), label = evaluation_click(pred_np, big_fn)
    assert label == 1 and (x, y) == (7, 7)
    assert evaluation_click(big_fn, big_fn)[1] == -1
    boxes = jitter_boxes(torch.tensor([[10., 10., 30., 30.]]).repeat(100, 1), (40, 40),
                         std_ratio=5.0, max_shift=3.0)
    assert ((boxes - torch.tensor([10., 10., 30., 30.])).abs() <= 3.0 + 1e-6).all()


def test_build_prompts_checks_user_input():
    p = build_prompts(boxes=[[0, 0, 10, 10]], points=[[3, 4]], point_labels=[0],
                      scale=(0.5, 2.0))
    assert p.boxes.tolist() == [[0, 0, 5, 20]] and p.points.tolist() == [[[1.5, 8.0]]]
    with pytest.raises(ValueError, match='must be 1 .* or 0'):
        build_prompts(points=[[1, 1]], point_labels=[2])
    with pytest.raises(ValueError, match='x1 < x2'):
        build_prompts(boxes=[[5, 5, 2, 9]])
    with pytest.raises(ValueError, match='no prompt'):
        build_prompts()


def test_resize_moves_masks_and_prompts_together(coco_root):
    root, _ = coco_root
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadPromptableAnnotations'),
                dict(type='mmdet.Resize', scale=(80, 80), keep_ratio=True),
                dict(type='GeneratePrompts', prompt='box'), dict(type='PackFusionInputs')]
    ds = PromptableSegDataset(data_root=str(root), ann_file='instances.json',
                              data_prefix=dict(img_path='images'), pipeline=pipeline)
    out = ds[1]
    assert out['inputs']['img'].shape == (3, 64, 80)
    assert out['data_samples'].gt_instances.masks.shape == (1, 64, 80)
    assert out['data_samples'].prompts.boxes[0].tolist() == [12, 8, 40, 24]
    assert osp.basename(out['data_samples'].img_path) == '1.png'
