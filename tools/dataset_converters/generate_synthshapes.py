"""Generate SynthShapes, a deterministic multimodal shapes world, in real formats.

Every image shows 1-4 objects (shape x colour x size) on a textured
background, with occlusion. The same scenes are written in the public formats
that mmfusion's dataset classes read, so a config trained here runs on real
COCO / RefCOCO / ADE20K by changing ``data_root``::

    OUT/images/{split}/{image_id:06d}.png            RGB scenes
    OUT/annotations/instances_{split}.json           COCO instances (RLE masks)
    OUT/annotations/panoptic_{split}.json            COCO panoptic segments_info
    OUT/annotations/panoptic_{split}/{id:06d}.png    COCO panoptic PNGs (id = R + 256 G + 256^2 B)
    OUT/annotations/captions_{split}.json            COCO captions (3 per image)
    OUT/semantic/{split}/{id:06d}.png                label maps, index into ALL_CLASSES, 255 = none
    OUT/refsynth/instances.json                      RefCOCO layout: instances of every split
    OUT/refsynth/refs(synth).p                       RefCOCO refs pickle (sentences per object)
    OUT/meta.json                                    generation parameters (written last)

Splits: ``train`` never contains a held-out colour-shape combination
(``mmfusion.datasets.synthshapes_meta.HELD_OUT``); ``val`` holds seen
combinations only; ``val_novel`` images each contain at least one held-out
combination, for open-vocabulary evaluation.

Image ``i`` of split ``k`` draws all its randomness from
``numpy.random.default_rng([seed, k, i])``: the same arguments give
byte-identical files, and a sample does not depend on the split sizes.

Example::

    python tools/dataset_converters/generate_synthshapes.py --out data/synthshapes \\
        --num-train 2000 --num-val 200 --num-val-novel 200 --img-size 96
"""
import argparse
import json
import os
import os.path as osp
import pickle
import shutil
import sys
import time
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..', '..'))
from mmfusion.datasets.synthshapes_meta import (  # noqa: E402
    ALL_CLASSES,
    COLOURS,
    HELD_OUT,
    SEEN_CLASSES,
    SHAPES,
    SIZES,
    STUFF_CLASSES,
    THING_CLASSES,
)

from tools.dataset_converters.generated_dataset import progress  # noqa: E402

SPLITS = ('train', 'val', 'val_novel')
THING_IDS = {name: i + 1 for i, name in enumerate(THING_CLASSES)}
STUFF_IDS = {name: len(THING_CLASSES) + i + 1 for i, name in enumerate(STUFF_CLASSES)}
MIN_VISIBLE = 0.4  # an object hidden by more than 60% is dropped from the scene


def shape_polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    """Vertices (N, 2) of a shape of circumradius ``r`` centred at (cx, cy)."""
    if shape == 'circle':
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        pts = np.stack([np.cos(t), np.sin(t)], 1)
    elif shape == 'square':
        t = np.pi / 4 + np.arange(4) * np.pi / 2 + angle
        pts = np.stack([np.cos(t), np.sin(t)], 1)
    elif shape == 'triangle':
        t = -np.pi / 2 + np.arange(3) * 2 * np.pi / 3 + angle
        pts = np.stack([np.cos(t), np.sin(t)], 1)
    elif shape == 'star':
        t = -np.pi / 2 + np.arange(10) * np.pi / 5 + angle
        rad = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        pts = np.stack([np.cos(t) * rad, np.sin(t) * rad], 1)
    elif shape == 'cross':
        w = 0.33
        base = np.array([[-w, -1], [w, -1], [w, -w], [1, -w], [1, w], [w, w], [w, 1], [-w, 1],
                         [-w, w], [-1, w], [-1, -w], [-w, -w]]) * 0.85
        c, s = np.cos(angle), np.sin(angle)
        pts = base @ np.array([[c, s], [-s, c]])
    else:
        raise ValueError(f'unknown shape {shape!r}; expected one of {SHAPES}')
    return pts * r + np.array([cx, cy])


def render_background(rng: np.random.Generator, size: int) -> Tuple[np.ndarray, str]:
    """Low-saturation textured background, so object colours stay salient."""
    kind = STUFF_CLASSES[rng.integers(len(STUFF_CLASSES))]
    base = rng.uniform(150, 235) + rng.uniform(-12, 12, size=3)
    img = np.ones((size, size, 3), np.float32) * base
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    if kind == 'striped background':
        period = rng.uniform(5, 12)
        theta = rng.uniform(0, np.pi)
        phase = (xx * np.cos(theta) + yy * np.sin(theta)) / period
        stripe = (np.floor(phase) % 2 == 0)[..., None]
        img = np.where(stripe, img - rng.uniform(35, 60), img)
    elif kind == 'dotted background':
        step = int(rng.integers(6, 11))
        radius = rng.uniform(1.2, step / 3.5)
        ox, oy = rng.uniform(0, step, size=2)
        dist = np.hypot((xx - ox) % step - step / 2, (yy - oy) % step - step / 2)
        img = np.where((dist < radius)[..., None], img - rng.uniform(40, 70), img)
    return img, kind


def make_scene(rng: np.random.Generator, size: int, split: str) -> Dict:
    """Draw one scene: image, objects with visible masks, background kind."""
    img, stuff = render_background(rng, size)
    num_objects = int(rng.integers(1, 5))
    combos = THING_CLASSES if split == 'val_novel' else SEEN_CLASSES
    names = [combos[rng.integers(len(combos))] for _ in range(num_objects)]
    if split == 'val_novel':  # at least one novel object, drawn last so it is never hidden
        names[-1] = HELD_OUT[rng.integers(len(HELD_OUT))]
    objects = []
    for name in names:
        size_name = SIZES[int(rng.random() < 0.5)]
        r = size * (rng.uniform(0.15, 0.21) if size_name == 'large' else rng.uniform(0.08, 0.115))
        cx, cy = rng.uniform(r * 0.8, size - r * 0.8, size=2)
        poly = shape_polygon(name.split()[1], cx, cy, r, rng.uniform(-0.35, 0.35))
        full = np.zeros((size, size), np.uint8)
        cv2.fillPoly(full, [np.round(poly * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
        colour = np.array(COLOURS[name.split()[0]], np.float32) + rng.uniform(-15, 15, size=3)
        objects.append(dict(name=name, size=size_name, full=full.astype(bool),
                            colour=np.clip(colour, 0, 255)))
    # Paint in order; later objects occlude earlier ones.
    visible_union = np.zeros((size, size), bool)
    for obj in reversed(objects):
        obj['mask'] = obj['full'] & ~visible_union
        visible_union |= obj['full']
    objects = [o for o in objects if o['mask'].sum() >= max(12, MIN_VISIBLE * o['full'].sum())]
    if split == 'val_novel' and not any(o['name'] in HELD_OUT for o in objects):
        raise AssertionError('the novel object is drawn last and cannot be hidden')
    for obj in objects:
        img[obj['mask']] = obj['colour']
    img = img + rng.normal(0, 4, size=img.shape)
    return dict(img=np.clip(img, 0, 255).astype(np.uint8), objects=objects, stuff=stuff)


def position_words(cx: float, cy: float) -> str:
    """Coarse position from centre coordinates normalised to [0, 1]."""
    horiz = 'left' if cx < 1 / 3 else 'right' if cx > 2 / 3 else 'middle'
    vert = 'top' if cy < 1 / 3 else 'bottom' if cy > 2 / 3 else 'middle'
    if horiz == vert == 'middle':
        return 'in the centre'
    if vert == 'middle':
        return f'on the {horiz}'
    if horiz == 'middle':
        return f'at the {vert}'
    return f'at the {vert} {horiz}'


def relation(a: Dict, b: Dict) -> str:
    """Spatial relation of object a to object b, by the larger centre offset."""
    dx, dy = a['cx'] - b['cx'], a['cy'] - b['cy']
    if abs(dx) >= abs(dy):
        return 'left of' if dx < 0 else 'right of'
    return 'above' if dy < 0 else 'below'


def referring_expressions(objects: List[Dict], idx: int) -> List[str]:
    """Two unambiguous expressions for ``objects[idx]``: a plain one, then a longer one."""
    obj = objects[idx]
    same = [o for o in objects if o['name'] == obj['name']]
    twins = [o for o in same if o['size'] == obj['size']]
    if len(same) == 1:
        plain = f"the {obj['name']}"
        anchors = [o for o in objects if o is not obj
                   and sum(p['name'] == o['name'] for p in objects) == 1]
        if not anchors:
            return [plain, f"the {obj['size']} {obj['name']}"]
        anchor = min(anchors, key=lambda o: (o['cx'] - obj['cx'])**2 + (o['cy'] - obj['cy'])**2)
        return [plain, f"the {obj['size']} {obj['name']} {relation(obj, anchor)} the {anchor['name']}"]
    if len(twins) == 1:
        plain = f"the {obj['size']} {obj['name']}"
        return [plain, f"{plain} {position_words(obj['cx'], obj['cy'])}"]
    # Same name and size: rank the twins from left to right.
    rank = sorted(o['cx'] for o in twins).index(obj['cx'])
    if rank == 0:
        where = 'leftmost'
    elif rank == len(twins) - 1:
        where = 'rightmost'
    else:
        where = ['', 'second', 'third'][rank] + ' from the left'
    name = f"{obj['size']} {obj['name']}"
    plain = f'the {where} {name}' if rank in (0, len(twins) - 1) else f'the {name} {where}'
    return [plain, plain]


def captions(objects: List[Dict], stuff: str) -> List[str]:
    phrases = [f"a {o['size']} {o['name']}" for o in objects]
    listing = phrases[0] if len(phrases) == 1 else ', '.join(phrases[:-1]) + ' and ' + phrases[-1]
    count = ['one shape', 'two shapes', 'three shapes', 'four shapes'][len(objects) - 1]
    names = sorted({o['name'] for o in objects})
    return [f'{listing} on a {stuff}.',
            f"a {stuff} with {listing}.",
            f"{count}: {', '.join(names)}."]


def generate(out: str, counts: Dict[str, int], size: int, seed: int) -> Dict[str, int]:
    for sub in ('images', 'annotations', 'semantic', 'refsynth'):
        shutil.rmtree(osp.join(out, sub), ignore_errors=True)
    categories = ([dict(id=THING_IDS[n], name=n, supercategory=n.split()[1], isthing=1)
                   for n in THING_CLASSES]
                  + [dict(id=STUFF_IDS[n], name=n, supercategory='background', isthing=0)
                     for n in STUFF_CLASSES])
    semantic_index = {n: i for i, n in enumerate(ALL_CLASSES)}
    all_images, all_anns, refs = [], [], []
    image_id, ann_id, sent_id = 0, 0, 0
    stats = {}
    start = time.time()
    for k, split in enumerate(SPLITS):
        for sub in (f'images/{split}', f'annotations/panoptic_{split}', f'semantic/{split}'):
            os.makedirs(osp.join(out, sub), exist_ok=True)
        images, anns, pan_anns, caps = [], [], [], []
        for i in progress(counts[split], split):
            rng = np.random.default_rng([seed, k, i])
            scene = make_scene(rng, size, split)
            stem = f'{image_id:06d}'
            file_name = f'{split}/{stem}.png'
            Image.fromarray(scene['img']).save(osp.join(out, 'images', file_name))
            image = dict(id=image_id, file_name=file_name, height=size, width=size)
            images.append(image)
            pan = np.zeros((size, size), np.int64)
            semantic = np.full((size, size), 255, np.uint8)
            background = ~np.any([o['mask'] for o in scene['objects']], axis=0)
            stuff_segment = 1000 + STUFF_IDS[scene['stuff']]
            pan[background] = stuff_segment
            semantic[background] = semantic_index[scene['stuff']]
            segments = [dict(id=stuff_segment, category_id=STUFF_IDS[scene['stuff']], iscrowd=0,
                             area=int(background.sum()), bbox=_bbox(background))]
            for j, obj in enumerate(scene['objects']):
                ys, xs = np.nonzero(obj['mask'])
                obj['cx'], obj['cy'] = float(xs.mean()) / size, float(ys.mean()) / size
                rle = mask_utils.encode(np.asfortranarray(obj['mask'].astype(np.uint8)))
                rle['counts'] = rle['counts'].decode('ascii')
                obj['ann'] = dict(id=ann_id, image_id=image_id, category_id=THING_IDS[obj['name']],
                                  segmentation=rle, area=int(obj['mask'].sum()),
                                  bbox=_bbox(obj['mask']), iscrowd=0)
                anns.append(obj['ann'])
                pan[obj['mask']] = j + 1
                semantic[obj['mask']] = semantic_index[obj['name']]
                segments.append(dict(id=j + 1, category_id=THING_IDS[obj['name']], iscrowd=0,
                                     area=obj['ann']['area'], bbox=obj['ann']['bbox']))
                ann_id += 1
            for j, obj in enumerate(scene['objects']):
                sents = []
                for text in referring_expressions(scene['objects'], j):
                    sents.append(dict(tokens=text.split(), raw=text, sent=text, sent_id=sent_id))
                    sent_id += 1
                refs.append(dict(ref_id=len(refs), ann_id=obj['ann']['id'], image_id=image_id,
                                 split=split, category_id=obj['ann']['category_id'],
                                 file_name=f'{stem}_{obj["ann"]["id"]}.png',
                                 sent_ids=[s['sent_id'] for s in sents], sentences=sents))
            rgb = np.stack([pan % 256, pan // 256 % 256, pan // 65536], -1).astype(np.uint8)
            Image.fromarray(rgb).save(osp.join(out, 'annotations', f'panoptic_{split}', f'{stem}.png'))
            Image.fromarray(semantic).save(osp.join(out, 'semantic', split, f'{stem}.png'))
            pan_anns.append(dict(image_id=image_id, file_name=f'{stem}.png', segments_info=segments))
            for text in captions(scene['objects'], scene['stuff']):
                caps.append(dict(id=len(caps) + 1000000 * k, image_id=image_id, caption=text))
            image_id += 1
            if (i + 1) % 500 == 0:
                print(f'[{split}] {i + 1}/{counts[split]} images ({time.time() - start:.0f} s)',
                      flush=True)
        info = dict(description=f'SynthShapes {split}', version='1.0', year=2026)
        _dump(osp.join(out, 'annotations', f'instances_{split}.json'),
              dict(info=info, images=images, annotations=anns,
                   categories=[c for c in categories if c['isthing']]))
        _dump(osp.join(out, 'annotations', f'panoptic_{split}.json'),
              dict(info=info, images=images, annotations=pan_anns, categories=categories))
        _dump(osp.join(out, 'annotations', f'captions_{split}.json'),
              dict(info=info, images=images, annotations=caps))
        all_images += images
        all_anns += anns
        stats[split] = dict(images=len(images), objects=len(anns))
    os.makedirs(osp.join(out, 'refsynth'), exist_ok=True)
    _dump(osp.join(out, 'refsynth', 'instances.json'),
          dict(images=all_images, annotations=all_anns,
               categories=[c for c in categories if c['isthing']]))
    with open(osp.join(out, 'refsynth', 'refs(synth).p'), 'wb') as f:
        pickle.dump(refs, f, protocol=2)
    return stats


def _bbox(mask: np.ndarray) -> List[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
            float(ys.max() - ys.min() + 1)]


def _dump(path: str, obj: Dict) -> None:
    with open(path, 'w') as f:
        json.dump(obj, f)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='data/synthshapes')
    parser.add_argument('--num-train', type=int, default=2000)
    parser.add_argument('--num-val', type=int, default=200)
    parser.add_argument('--num-val-novel', type=int, default=200)
    parser.add_argument('--img-size', type=int, default=96)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    if args.img_size < 32:
        raise SystemExit('--img-size must be at least 32 pixels')
    counts = dict(train=args.num_train, val=args.num_val, val_novel=args.num_val_novel)
    meta_path = osp.join(args.out, 'meta.json')
    if osp.exists(meta_path):
        os.remove(meta_path)  # written last: its presence marks a complete dataset
    start = time.time()
    stats = generate(args.out, counts, args.img_size, args.seed)
    _dump(meta_path, dict(generator='generate_synthshapes.py', img_size=args.img_size,
                          seed=args.seed, splits=stats, held_out=HELD_OUT,
                          classes=ALL_CLASSES))
    print(json.dumps(dict(out=args.out, seconds=round(time.time() - start, 1), splits=stats)))


if __name__ == '__main__':
    main()
