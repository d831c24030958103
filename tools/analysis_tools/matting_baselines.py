"""SEMat against the matting baselines, in one table from one run.

On a config's test split (ground-truth boxes: each sample's ``alpha_box``),
with the model of CONFIG + CHECKPOINT:

* ``SEMat``: the model's alpha;
* ``SAM mask as alpha``: the frozen SAM's box mask (the same checkpoint's SAM
  parts, ``test_cfg.output='sam_mask'``), 0/1, used as the alpha;
* ``SAM mask -> trimap -> closed-form``: that mask eroded and dilated into a
  trimap (band half-width ``max(--min-width, sqrt(mask area) / --width-div)``
  pixels, the size rule of the official code's trimap generator), then
  closed-form matting (Levin et al. 2008, ``pymatting.estimate_alpha_cf``);
* ``GT trimap -> closed-form``: closed-form matting with the ground-truth
  trimap, a reference row (it is given what the others must infer).

Closed-form matting needs foreground and background seeds; where a trimap has
none of one (a SAM mask thinner than the band, or empty), the row uses the hard
mask for that image and counts it under ``fallbacks``.

Errors are the matting community's (``MattingMetric``, whole image, the
prediction rounded to 8 bits). Prints a Markdown table and writes JSON.

Example::

    python tools/analysis_tools/matting_baselines.py \\
        configs/semat/semat_sam-tiny_1xb8-1200it_synthmatte.py \\
        work_dirs/semat_sam-tiny_1xb8-1200it_synthmatte/iter_1200.pth --out baselines.json
"""
import argparse
import json
import time
from typing import Dict, List, Optional

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmfusion.apis import init_model
from mmfusion.evaluation import MattingMetric
from mmfusion.utils.dependency import require

ROWS = ('SEMat', 'SAM mask as alpha', 'SAM mask -> trimap -> closed-form',
        'GT trimap -> closed-form (reference)')


def mask_to_trimap(mask: np.ndarray, min_width: int = 2, width_div: float = 10.0
                   ) -> np.ndarray:
    """A 0/128/255 trimap around a binary mask: pixels within ``width`` of
    the boundary (inside or outside) are unknown; ``width = max(min_width,
    sqrt(area) / width_div)``."""
    mask = mask.astype(bool)
    width = max(int(min_width), int(round(np.sqrt(mask.sum()) / width_div)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    fg = cv2.erode(mask.astype(np.uint8), kernel) > 0
    maybe = cv2.dilate(mask.astype(np.uint8), kernel) > 0
    trimap = np.zeros(mask.shape, np.uint8)
    trimap[maybe] = 128
    trimap[fg] = 255
    return trimap


def closed_form(image_rgb: np.ndarray, trimap: np.ndarray) -> Optional[np.ndarray]:
    """Closed-form matting of an (H, W, 3) uint8 RGB image with a 0/128/255
    trimap; a trimap without unknown pixels is returned as the alpha, and
    None when it has no foreground or no background pixel (closed-form
    matting needs both: e.g. a SAM mask thinner than the band)."""
    if not (trimap == 128).any():
        return (trimap == 255).astype(np.float64)
    if not (trimap == 255).any() or not (trimap == 0).any():
        return None
    pymatting = require('pymatting', 'closed-form matting baseline', 'pymatting')
    alpha = pymatting.estimate_alpha_cf(image_rgb.astype(np.float64) / 255.0,
                                        trimap.astype(np.float64) / 255.0)
    return np.clip(alpha, 0, 1)


def run(config: str, checkpoint: str, min_width: int = 2, width_div: float = 10.0,
        limit: Optional[int] = None) -> Dict[str, Dict[str, float]]:
    cfg = Config.fromfile(config)
    model = init_model(cfg, checkpoint)
    model.eval()
    loader = Runner.build_dataloader(cfg.test_dataloader)
    evaluator = cfg.test_evaluator
    evaluator = evaluator[0] if isinstance(evaluator, (list, tuple)) else evaluator
    options = {k: v for k, v in evaluator.items() if k != 'type'}
    metrics = {row: MattingMetric(**options) for row in ROWS}
    seconds = {row: 0.0 for row in ROWS}
    fallbacks = {row: 0 for row in ROWS}
    done = 0
    for batch in loader:
        outputs: Dict[str, List] = {}
        for row, output in (('SEMat', 'alpha'), ('SAM mask as alpha', 'sam_mask')):
            model.test_cfg['output'] = output
            start = time.perf_counter()
            with torch.no_grad():
                outputs[row] = model.test_step(batch)
            seconds[row] += time.perf_counter() - start
        for semat, sam in zip(outputs['SEMat'], outputs['SAM mask as alpha']):
            image = cv2.cvtColor(cv2.imread(semat.img_path), cv2.COLOR_BGR2RGB)
            mask = sam.pred_alpha.data[0].numpy() > 0.5
            gt_trimap = sam.gt_trimap.data[0].numpy().astype(np.uint8)
            sam_trimap = mask_to_trimap(mask, min_width, width_div)
            for row, trimap, fallback in ((ROWS[2], sam_trimap, mask),
                                          (ROWS[3], gt_trimap, gt_trimap == 255)):
                start = time.perf_counter()
                alpha = closed_form(image, trimap)
                seconds[row] += time.perf_counter() - start
                if alpha is None:  # no foreground or background seed: the hard mask
                    fallbacks[row] += 1
                    alpha = fallback.astype(np.float64)
                metrics[row].process({}, [dict(pred_alpha=dict(data=alpha[None]),
                                               gt_alpha=sam.gt_alpha.to_dict(),
                                               gt_trimap=sam.gt_trimap.to_dict(),
                                               img_path=semat.img_path)])
            for row, sample in (('SEMat', semat), ('SAM mask as alpha', sam)):
                metrics[row].process({}, [sample.to_dict()])
        done += len(outputs['SEMat'])
        print(f'{done} images', flush=True)
        if limit is not None and done >= limit:
            break
    table = {}
    for row in ROWS:
        table[row] = metrics[row].compute_metrics(metrics[row].results)
        table[row]['seconds_per_image'] = seconds[row] / max(done, 1)
        table[row]['fallbacks'] = fallbacks[row]
    return table


def to_markdown(table: Dict[str, Dict[str, float]]) -> str:
    keys = [k for k in next(iter(table.values()))
            if k not in ('seconds_per_image', 'fallbacks')]
    lines = ['| method | ' + ' | '.join(k.upper() for k in keys) + ' | s / image | fallbacks |',
             '|---|' + '---|' * (len(keys) + 2)]
    for row, values in table.items():
        lines.append(f'| {row} | ' + ' | '.join(f'{values[k]:.3f}' for k in keys)
                     + f' | {values["seconds_per_image"]:.3f} | {values["fallbacks"]} |')
    return '\n'.join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description='SEMat vs SAM-mask and closed-form baselines')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--min-width', type=int, default=2,
                        help='smallest unknown-band half-width of the SAM-mask trimap (pixels)')
    parser.add_argument('--width-div', type=float, default=10.0,
                        help='band half-width = sqrt(mask area) / WIDTH_DIV')
    parser.add_argument('--limit', type=int, default=None, help='stop after N images')
    parser.add_argument('--out', default=None, help='write the table as JSON here')
    args = parser.parse_args()
    table = run(args.config, args.checkpoint, args.min_width, args.width_div, args.limit)
    print(to_markdown(table))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(table, f, indent=1)


if __name__ == '__main__':
    main()
