"""Write the tiny COCO-panoptic / captions / ADE20K / RefCOCO fixture (run once, commit output).

    python tests/data/xdecoder_formats/make_fixture.py
"""
import json
import os
import os.path as osp
import pickle

import numpy as np
from PIL import Image

ROOT = osp.dirname(osp.abspath(__file__))
S = 32


def save(path, arr):
    os.makedirs(osp.dirname(path), exist_ok=True)
    Image.fromarray(arr).save(path)


def main():
    rng = np.random.default_rng(0)
    # --- COCO panoptic + captions: 2 images; categories: things 1 (cat), 3 (dog); stuff 7 (sky).
    cats = [dict(id=1, name='cat', supercategory='animal', isthing=1),
            dict(id=7, name='sky', supercategory='background', isthing=0),
            dict(id=3, name='dog', supercategory='animal', isthing=1)]
    images, pan_anns, caps = [], [], []
    for i in range(2):
        img_id = 10 + i
        name = f'{img_id:012d}'
        save(osp.join(ROOT, 'coco', 'val2017', name + '.jpg'),
             rng.integers(0, 255, (S, S, 3), dtype=np.uint8))
        images.append(dict(id=img_id, file_name=name + '.jpg', height=S, width=S))
        pan = np.zeros((S, S), np.int64)
        pan[:16] = 5000  # sky
        pan[20:28, 2:10] = 4001  # cat
        pan[18:30, 14 + i:26] = 4002  # dog
        if i == 1:
            pan[0:4, 0:4] = 4003  # crowd cat
        segs = [dict(id=5000, category_id=7, iscrowd=0), dict(id=4001, category_id=1, iscrowd=0),
                dict(id=4002, category_id=3, iscrowd=0)]
        if i == 1:
            segs.append(dict(id=4003, category_id=1, iscrowd=1))
        for seg in segs:
            ys, xs = np.nonzero(pan == seg['id'])
            seg['area'] = int(len(ys))
            seg['bbox'] = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                           int(ys.max() - ys.min() + 1)]
        rgb = np.stack([pan % 256, pan // 256 % 256, pan // 65536], -1).astype(np.uint8)
        save(osp.join(ROOT, 'coco', 'annotations', 'panoptic_val2017', name + '.png'), rgb)
        pan_anns.append(dict(image_id=img_id, file_name=name + '.png', segments_info=segs))
        caps += [dict(id=100 + 2 * i, image_id=img_id, caption=f'a cat and a dog {i}.'),
                 dict(id=101 + 2 * i, image_id=img_id, caption='animals under the sky.')]
    with open(osp.join(ROOT, 'coco', 'annotations', 'panoptic_val2017.json'), 'w') as f:
        json.dump(dict(images=images, annotations=pan_anns, categories=cats), f)
    with open(osp.join(ROOT, 'coco', 'annotations', 'captions_val2017.json'), 'w') as f:
        json.dump(dict(images=images, annotations=caps), f)

    # --- ADEChallengeData2016: 0 = other, 1..150 = classes.
    for split, n in (('training', 2), ('validation', 1)):
        for i in range(n):
            name = f'ADE_{"train" if split == "training" else "val"}_{i + 1:08d}'
            save(osp.join(ROOT, 'ADEChallengeData2016', 'images', split, name + '.jpg'),
                 rng.integers(0, 255, (S, S, 3), dtype=np.uint8))
            label = np.zeros((S, S), np.uint8)
            label[:10] = 3  # floor (index 2 after the shift)
            label[10:20, :16] = 1  # wall (index 0)
            label[20:, 5:] = 150  # flag (index 149)
            save(osp.join(ROOT, 'ADEChallengeData2016', 'annotations', split, name + '.png'), label)

    # --- RefCOCO (refer layout): instances.json + refs(unc).p, polygons.
    ref_images = [dict(id=1, file_name='COCO_train2014_000000000001.jpg', height=S, width=S),
                  dict(id=2, file_name='COCO_train2014_000000000002.jpg', height=S, width=S)]
    for img in ref_images:
        save(osp.join(ROOT, 'refcoco', 'images', img['file_name']),
             rng.integers(0, 255, (S, S, 3), dtype=np.uint8))
    anns = [dict(id=1, image_id=1, category_id=1, iscrowd=0, area=64.0, bbox=[2, 2, 8, 8],
                 segmentation=[[2, 2, 10, 2, 10, 10, 2, 10]]),
            dict(id=2, image_id=1, category_id=3, iscrowd=0, area=96.0, bbox=[16, 16, 12, 8],
                 segmentation=[[16, 16, 28, 16, 28, 24, 16, 24]]),
            dict(id=3, image_id=2, category_id=1, iscrowd=0, area=50.0, bbox=[5, 5, 10, 10],
                 segmentation=[[5, 5, 15, 5, 5, 15]])]
    with open(osp.join(ROOT, 'refcoco', 'instances.json'), 'w') as f:
        json.dump(dict(images=ref_images, annotations=anns,
                       categories=[dict(id=1, name='cat', supercategory='animal'),
                                   dict(id=3, name='dog', supercategory='animal')]), f)

    def sent(i, text):
        return dict(tokens=text.split(), raw=text, sent=text, sent_id=i)

    refs = [dict(ref_id=0, ann_id=1, image_id=1, split='train', category_id=1,
                 file_name='COCO_train2014_000000000001_1.jpg', sent_ids=[0, 1],
                 sentences=[sent(0, 'cat on the left'), sent(1, 'small cat')]),
            dict(ref_id=1, ann_id=2, image_id=1, split='val', category_id=3,
                 file_name='COCO_train2014_000000000001_2.jpg', sent_ids=[2],
                 sentences=[sent(2, 'the dog')]),
            dict(ref_id=2, ann_id=3, image_id=2, split='testA', category_id=1,
                 file_name='COCO_train2014_000000000002_3.jpg', sent_ids=[3, 4],
                 sentences=[sent(3, 'triangle cat'), sent(4, 'the only cat')])]
    with open(osp.join(ROOT, 'refcoco', 'refs(unc).p'), 'wb') as f:
        pickle.dump(refs, f, protocol=2)


if __name__ == '__main__':
    main()
