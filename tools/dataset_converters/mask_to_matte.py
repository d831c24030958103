"""Mask-to-matte: COCO instance masks -> soft alpha mattes (SEMat's COCO-Matting recipe).

What the paper does
-------------------
SEMat (Xia et al., "Towards Natural Image Matting in the Wild via
Real-Scenario Prior", arXiv:2410.06593, 2024) builds its COCO-Matting training
set (38,251 human instance mattes) from COCO images and their instance
segmentation masks (COCONut's refined COCO masks) in two steps, *accessory
fusion* (accessories such as a hat, bag or racket held by a person are merged
into that person's mask) and *mask-to-matte*. Mask-to-matte turns each binary
mask into a trimap T(x) (definite foreground / definite background / an
unknown band around the mask boundary, made by eroding and dilating the
mask), then forwards the image and T(x) to a trained trimap-based matting
network, DiffMatte (Hu et al., 2023), and keeps its prediction as the
target alpha. Sources: the paper's abstract (arXiv:2410.06593), the ICLR 2025
OpenReview reviews of the paper, which quote its dataset section ("Finally, we
forward the following trimap T(x) to the trained trimap-based network (Hu et
al., 2023) and treat it as target"), and the official code
(github.com/XiaRho/SEMat, ``data/coconut_dataset.py``): the released
COCO-Matting samples are the image, the trimap and the alpha side by side,
and the training set drops every converted (non-accessory) matte whose
per-sample mIoU score is below ``min_miou = 95``. That score is read from a
separate file the code does not compute, so we take it to compare the matte
with the mask it came from. The paper's exact T(x) constants (kernel size,
iterations) could not be read offline: the stored copies of the paper give
only the abstract.

What this tool does
-------------------
For every kept instance of a COCO instances file (polygons, RLE or
uncompressed RLE):

1. **Trimap** (follows the paper: erosion/dilation of the mask). A pixel is
   unknown (128) when its Euclidean distance to the mask boundary is at most
   ``w`` pixels, inside or outside the mask; deeper mask pixels are definite
   foreground (255), farther pixels definite background (0). This is an
   erosion and a dilation with a disc of radius ``w``, so a straight edge gets
   a band ``2 w`` pixels thick, ``w`` on each side. ``w`` scales with the
   object: ``w = clip(round(--width * sqrt(mask area)), --min-width,
   --max-width)``, so a coarse polygon around a large person gets a wider band
   than a small bottle (our rule; the paper's constants are unknown, see above).
   A mask thinner than ``2 w`` would lose all definite foreground, so ``w``
   is lowered for it until its deepest pixels stay foreground (and likewise
   for the background of a mask that fills the image). The image border
   is not a mask boundary: a mask cut by the frame gets no band there.
2. **Matting** (substitution). Closed-form matting (Levin et al., 2008,
   ``pymatting.estimate_alpha_cf``) solves the unknown band from the image
   and the trimap, in place of DiffMatte: nothing can be downloaded here, so
   there is no pre-trained matting network, and closed-form matting is the
   classical trimap-based method that needs no weights. It fixes the known
   pixels exactly, so the alpha is 1 on definite foreground, 0 on definite
   background and fractional only inside the band. It runs on the band's
   bounding box plus a 3-pixel margin (the 3x3 windows of its Laplacian
   reach 2 pixels), which gives the same solution as the whole image.
3. **Filtering** (follows the official code's mIoU filter, our reading of
   its score). A matte is dropped when the IoU between ``alpha >= 0.5`` and
   the source mask is below ``--min-iou`` (default 0.95, the code's
   ``min_miou = 95``); 0 keeps every matte.

Not done here: accessory fusion (it needs the person-accessory annotations
and rules of COCONut) and the random resize/crop augmentation the official
loader applies at training time.

Output layout (the Composition-1k JSON format ``MattingDataset`` reads)::

    OUT/merged/<image stem>.png            the image (RGB; one copy per image)
    OUT/alpha/<image stem>_<ann id>.png    8-bit alpha
    OUT/trimap/<image stem>_<ann id>.png   0 / 128 / 255
    OUT/mattes.json   records: merged_path, alpha_path, trimap_path (relative
                      to OUT), image_id, ann_id, category, category_id,
                      band_width, iou
    OUT/summary.json  counts (kept, skipped by reason), runtime
    OUT/meta.json     the parameters (written last; a rerun with the same
                      parameters does nothing, other parameters need --overwrite)

Load it with ``dict(type='MattingDataset', data_root=OUT,
ann_file='mattes.json')`` and ``LoadImageFromFile`` +
``LoadMattingAnnotations``.

Example::

    python tools/dataset_converters/mask_to_matte.py \\
        data/voc_photo/annotations/instances_voc.json data/voc_photo/images \\
        data/voc_mattes
"""
import argparse
import json
import os
import os.path as osp
import shutil
import sys
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image
from scipy import ndimage

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from tools.dataset_converters.generated_dataset import check_existing  # noqa: E402

CONVERTER_VERSION = 1
# closed-form matting's Laplacian uses 3x3 windows: an unknown pixel's equation
# involves known pixels up to 2 pixels away
CF_MARGIN = 3


def band_width(area: float, width: float = 0.05, min_width: int = 2,
               max_width: int = 30) -> int:
    """Half-width in pixels of the unknown band for a mask of ``area`` pixels:
    ``clip(round(width * sqrt(area)), min_width, max_width)``."""
    return int(np.clip(round(width * np.sqrt(area)), min_width, max_width))


def mask_to_trimap(mask: np.ndarray, width: int) -> np.ndarray:
    """A 0/128/255 trimap of a binary mask whose unknown band holds the pixels
    within Euclidean distance ``width`` of the mask boundary (on both sides).

    Inside the mask, a pixel's distance is to the nearest non-mask pixel;
    outside, to the nearest mask pixel (distances are >= 1 on either side), so
    a pixel is unknown when that distance is <= ``width``. ``width`` 0 gives
    the mask itself (no unknown pixels). When no definite foreground (or
    background) would remain, ``width`` is lowered until the deepest pixels
    stay known.
    """
    mask = np.asarray(mask).astype(bool)
    if not mask.any():
        raise ValueError('mask_to_trimap: the mask is empty')
    if mask.all():  # no boundary: all foreground
        return np.full(mask.shape, 255, np.uint8)
    d_in = ndimage.distance_transform_edt(mask)  # 0 outside the mask
    d_out = ndimage.distance_transform_edt(~mask)  # 0 inside the mask
    width_fg = min(width, max(int(np.ceil(d_in.max())) - 1, 0))
    width_bg = min(width, max(int(np.ceil(d_out.max())) - 1, 0))
    trimap = np.full(mask.shape, 128, np.uint8)
    trimap[d_in > width_fg] = 255
    trimap[(~mask) & (d_out > width_bg)] = 0
    return trimap


def closed_form_alpha(image: np.ndarray, trimap: np.ndarray) -> np.ndarray:
    """Closed-form matting (``pymatting.estimate_alpha_cf``) of an (H, W, 3)
    uint8 RGB image with a 0/128/255 trimap, solved on the unknown pixels'
    bounding box plus ``CF_MARGIN``; float64 alpha in [0, 1], exactly 1 / 0 on
    the trimap's foreground / background."""
    alpha = (trimap == 255).astype(np.float64)
    unknown = trimap == 128
    if not unknown.any():
        return alpha
    try:
        import pymatting
    except ImportError as e:
        raise ImportError('mask_to_matte needs pymatting for closed-form matting: '
                          'pip install pymatting') from e
    ys, xs = np.nonzero(unknown)
    h, w = trimap.shape
    y0, y1 = max(ys.min() - CF_MARGIN, 0), min(ys.max() + 1 + CF_MARGIN, h)
    x0, x1 = max(xs.min() - CF_MARGIN, 0), min(xs.max() + 1 + CF_MARGIN, w)
    crop = image[y0:y1, x0:x1, :3].astype(np.float64) / 255.0
    tri = trimap[y0:y1, x0:x1].astype(np.float64) / 255.0
    tri[trimap[y0:y1, x0:x1] == 128] = 0.5
    solved = np.clip(pymatting.estimate_alpha_cf(crop, tri), 0.0, 1.0)
    region = alpha[y0:y1, x0:x1]
    region[unknown[y0:y1, x0:x1]] = solved[unknown[y0:y1, x0:x1]]
    return alpha


def mask_to_matte(image: np.ndarray, mask: np.ndarray, width: float = 0.05,
                  min_width: int = 2, max_width: int = 30
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """Convert one instance mask into an alpha matte.

    Args:
        image: (H, W, 3) uint8 RGB.
        mask: (H, W) binary instance mask (non-empty).
        width, min_width, max_width: the unknown band's half-width,
            ``band_width(mask area, width, min_width, max_width)`` pixels.

    Returns:
        ``(alpha, trimap)``, both (H, W) uint8: the 8-bit alpha (255 on the
        trimap's foreground, 0 on its background, closed-form matting in the
        unknown band) and the 0/128/255 trimap.
    """
    image = np.asarray(image)
    mask = np.asarray(mask).astype(bool)
    if image.ndim != 3 or image.shape[2] < 3 or image.shape[:2] != mask.shape:
        raise ValueError(f'mask_to_matte: image {image.shape} and mask {mask.shape} must be '
                         '(H, W, 3) and (H, W)')
    if not mask.any():
        raise ValueError('mask_to_matte: the mask is empty')
    trimap = mask_to_trimap(mask, band_width(mask.sum(), width, min_width, max_width))
    alpha = closed_form_alpha(image, trimap)
    return np.round(alpha * 255).astype(np.uint8), trimap


def matte_iou(alpha: np.ndarray, mask: np.ndarray) -> float:
    """IoU between the binarised matte (``alpha >= 0.5``, 8-bit ``>= 128``)
    and the mask it came from: the score of the quality filter."""
    fg = np.asarray(alpha) >= 128
    mask = np.asarray(mask).astype(bool)
    union = np.logical_or(fg, mask).sum()
    return float(np.logical_and(fg, mask).sum() / union) if union else 0.0


def decode_mask(ann: dict, h: int, w: int) -> np.ndarray:
    """An annotation's segmentation (polygons, RLE or uncompressed RLE) as an
    (h, w) bool mask."""
    from pycocotools import mask as mask_utils
    seg = ann['segmentation']
    if isinstance(seg, list):  # polygons
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w)) if seg else None
    elif isinstance(seg, dict) and isinstance(seg.get('counts'), list):  # uncompressed
        rle = mask_utils.frPyObjects(seg, h, w)
    elif isinstance(seg, dict):
        rle = dict(seg, counts=seg['counts'].encode('ascii')
                   if isinstance(seg['counts'], str) else seg['counts'])
    else:
        raise ValueError(f'annotation {ann.get("id")}: unknown segmentation type '
                         f'{type(seg).__name__}')
    if rle is None:
        return np.zeros((h, w), bool)
    return mask_utils.decode(rle).astype(bool)


def _stem(file_name: str) -> str:
    return osp.splitext(file_name.replace('/', '_').replace('\\', '_'))[0]


def convert(ann_file: str, img_dir: str, out: str, category_ids: Optional[List[int]] = None,
            min_area: int = 0, width: float = 0.05, min_width: int = 2,
            max_width: int = 30, min_iou: float = 0.95, verbose: bool = True) -> dict:
    """Convert every kept instance of ``ann_file``; return the summary.

    Skips (counted by reason) crowd annotations, other categories than
    ``category_ids``, masks under ``min_area`` pixels and mattes whose
    ``matte_iou`` is under ``min_iou``.

    Raises:
        FileNotFoundError: an image of the JSON is missing in ``img_dir``.
        ValueError: an image whose size differs from the JSON's width/height,
            or an annotation whose mask is empty (both name the files).
    """
    start = time.perf_counter()
    with open(ann_file) as f:
        coco = json.load(f)
    for key in ('images', 'annotations', 'categories'):
        if key not in coco:
            raise KeyError(f'{ann_file}: not a COCO instances file (no "{key}")')
    cat_names = {c['id']: c['name'] for c in coco['categories']}
    if category_ids:
        unknown = sorted(set(category_ids) - set(cat_names))
        if unknown:
            raise ValueError(f'{ann_file}: no categories {unknown} (has '
                             f'{sorted(cat_names.items())})')
    anns_by_image: Dict[int, List[dict]] = {}
    for ann in coco['annotations']:
        anns_by_image.setdefault(ann['image_id'], []).append(ann)
    for folder in ('merged', 'alpha', 'trimap'):
        os.makedirs(osp.join(out, folder), exist_ok=True)

    skipped = dict(crowd=0, category=0, min_area=0, min_iou=0)
    records, dropped = [], []
    images = sorted(coco['images'], key=lambda im: im['id'])
    for i, info in enumerate(images):
        anns = anns_by_image.get(info['id'], [])
        todo = []
        for ann in anns:
            if ann.get('iscrowd', 0):
                skipped['crowd'] += 1
            elif category_ids and ann['category_id'] not in category_ids:
                skipped['category'] += 1
            else:
                todo.append(ann)
        if not todo:
            continue
        path = osp.join(img_dir, info['file_name'])
        if not osp.isfile(path):
            raise FileNotFoundError(f'image {path} (image id {info["id"]} of {ann_file}) '
                                    'not found')
        with Image.open(path) as pil:
            image = np.asarray(pil.convert('RGB'))
        h, w = image.shape[:2]
        if (w, h) != (info['width'], info['height']):
            raise ValueError(f'image {path} is {w}x{h} (WxH) but {ann_file} says '
                             f'{info["width"]}x{info["height"]} for image id {info["id"]}')
        stem = _stem(info['file_name'])
        merged_rel = osp.join('merged', stem + '.png')
        kept_here = 0
        t0 = time.perf_counter()
        for ann in todo:
            mask = decode_mask(ann, h, w)
            if not mask.any():
                raise ValueError(f'annotation {ann["id"]} of {ann_file} (image {path}) has an '
                                 'empty mask')
            if mask.sum() < min_area:
                skipped['min_area'] += 1
                continue
            bw = band_width(mask.sum(), width, min_width, max_width)
            alpha, trimap = mask_to_matte(image, mask, width, min_width, max_width)
            iou = matte_iou(alpha, mask)
            if iou < min_iou:
                skipped['min_iou'] += 1
                dropped.append(dict(image_id=info['id'], ann_id=ann['id'], iou=round(iou, 4)))
                continue
            name = f'{stem}_{ann["id"]}.png'
            rec = dict(merged_path=merged_rel, alpha_path=osp.join('alpha', name),
                       trimap_path=osp.join('trimap', name), image_id=info['id'],
                       ann_id=ann['id'], category=cat_names.get(ann['category_id'], ''),
                       category_id=ann['category_id'], band_width=bw, iou=round(iou, 4))
            Image.fromarray(alpha, 'L').save(osp.join(out, rec['alpha_path']))
            Image.fromarray(trimap, 'L').save(osp.join(out, rec['trimap_path']))
            records.append(rec)
            kept_here += 1
        if kept_here:
            Image.fromarray(image).save(osp.join(out, merged_rel))
        if verbose:
            now = time.perf_counter()
            eta = (now - start) / (i + 1) * (len(images) - i - 1)
            print(f'[{i + 1}/{len(images)}] {info["file_name"]}: {kept_here}/{len(todo)} mattes '
                  f'({now - t0:.1f}s, ETA {eta:.0f}s)', flush=True)
    if not records:
        raise ValueError(f'{ann_file}: no instance was kept (skipped: {skipped})')
    with open(osp.join(out, 'mattes.json'), 'w') as f:
        json.dump(records, f, indent=1)
    summary = dict(images=len({r['image_id'] for r in records}), mattes=len(records),
                   annotations=len(coco['annotations']), skipped=skipped,
                   dropped_by_iou=dropped,
                   seconds=round(time.perf_counter() - start, 2))
    with open(osp.join(out, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    return summary


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('ann_json', help='COCO instances JSON')
    parser.add_argument('img_dir', help='folder the JSON file_names are relative to')
    parser.add_argument('out_dir', help='output folder')
    parser.add_argument('--category-ids', type=int, nargs='+', default=None,
                        help='keep only these category ids (default: all)')
    parser.add_argument('--min-area', type=int, default=0,
                        help='skip masks with fewer pixels (default: 0)')
    parser.add_argument('--width', type=float, default=0.05,
                        help='unknown band half-width as a fraction of sqrt(mask area)')
    parser.add_argument('--min-width', type=int, default=2, help='band half-width floor (px)')
    parser.add_argument('--max-width', type=int, default=30, help='band half-width cap (px)')
    parser.add_argument('--min-iou', type=float, default=0.95,
                        help='drop mattes whose IoU(alpha >= 0.5, mask) is lower (0: keep all)')
    parser.add_argument('--overwrite', action='store_true',
                        help='convert again even if OUT_DIR holds a conversion')
    args = parser.parse_args(argv)
    if args.width < 0 or args.min_width < 0 or args.max_width < args.min_width:
        parser.error('need --width >= 0 and 0 <= --min-width <= --max-width')
    if not 0 <= args.min_iou <= 1 or args.min_area < 0:
        parser.error('need 0 <= --min-iou <= 1 and --min-area >= 0')
    return args


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    params = dict(version=CONVERTER_VERSION, ann_json=osp.abspath(args.ann_json),
                  img_dir=osp.abspath(args.img_dir), category_ids=args.category_ids,
                  min_area=args.min_area, width=args.width, min_width=args.min_width,
                  max_width=args.max_width, min_iou=args.min_iou)
    out = args.out_dir
    if not args.overwrite and check_existing(out, params):
        print(f'{out}: already converted with these parameters, nothing to do')
        with open(osp.join(out, 'summary.json')) as f:
            return json.load(f)
    for folder in ('merged', 'alpha', 'trimap'):
        shutil.rmtree(osp.join(out, folder), ignore_errors=True)
    for name in ('mattes.json', 'summary.json', 'meta.json'):
        if osp.isfile(osp.join(out, name)):
            os.remove(osp.join(out, name))
    summary = convert(args.ann_json, args.img_dir, out, args.category_ids, args.min_area,
                      args.width, args.min_width, args.max_width, args.min_iou)
    with open(osp.join(out, 'meta.json'), 'w') as f:
        json.dump(params, f, indent=2, sort_keys=True)
        f.write('\n')
    s = summary['skipped']
    print(f'wrote {summary["mattes"]} mattes of {summary["images"]} images to '
          f'{osp.join(out, "mattes.json")} in {summary["seconds"]:.1f}s; skipped: '
          f'{s["crowd"]} crowd, {s["category"]} other categories, {s["min_area"]} under '
          f'--min-area, {s["min_iou"]} under --min-iou')
    return summary


if __name__ == '__main__':
    main()
