"""Generate a deterministic synthetic breast-ultrasound-like lesion dataset.

Output layout (the BUSI / Kvasir-SEG style read by ``MedicalSegDataset``)::

    OUT/images/case_00000.png   RGB 8-bit, gray content replicated to 3 channels
    OUT/masks/case_00000.png    8-bit single channel, values exactly 0 or 255
    OUT/splits/{train,val,test}.txt   one stem per line
    OUT/README.md               how the data was generated
    OUT/meta.json               generation parameters (written last)

Samples are numbered ``case_00000`` onwards: first the training cases, then
validation, then test. Sample ``i`` draws all of its randomness from
``numpy.random.default_rng([seed, i])``, so the same parameters always give
byte-identical files and a sample does not depend on how many others exist.

Image model. Every image is an echo amplitude map multiplied by speckle and
displayed like a B-mode scan (log compression):

* Background echogenicity: a smooth random field plus horizontal-ish, wavy
  tissue layers; optionally a dark subcutaneous (fat-like) layer near the top
  and one or two dark, thin, curved duct-like tubes.
* Lesions (1 to 3, mask = their union): compact blobs whose radius, 8% to 22%
  of the image side, is perturbed by a few random angular harmonics. They are
  hypoechoic with a random contrast (some faint), a sharp or blurred margin,
  optionally an echogenic rim or internal echoes, and their speckle is
  partially smoothed (reduced speckle contrast), which sets them apart from
  the distractors by texture as well as by shape.
* Acoustic effects: posterior shadowing (or, for some lesions, enhancement)
  below lesions, shadow bands not attached to any lesion, exponential
  attenuation with depth at a random rate, and in about a third of the images
  a sector-scan fan whose outside is black.
* Speckle: fully developed, i.e. the magnitude of laterally elongated,
  correlated complex Gaussian noise (Rayleigh-distributed), applied
  multiplicatively.
* Display: log compression to a random dynamic range (30-45 dB), then random
  contrast and brightness and a little additive noise.

Dark layers, ducts, shadows, the deep field and the fan edges are as dark as
the lesions, so an intensity threshold alone segments poorly; the lesions are
told apart by their compact round shape and smoother interior texture.

Example::

    python tools/dataset_converters/generate_synth_lesion.py --out data/synth_lesion \\
        --num-train 400 --num-val 50 --num-test 100 --size 128 --seed 0
"""
import json
import os
import os.path as osp
import shutil
import sys
import time
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image
from scipy.ndimage import distance_transform_edt, gaussian_filter
from scipy.special import expit

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from tools.dataset_converters.generated_dataset import (  # noqa: E402
    check_existing,
    parse_split_arguments,
    progress,
)

# Bump whenever the image model changes, so stale outputs are not reused.
GENERATOR_VERSION = 1
SPLITS = ('train', 'val', 'test')


def _smooth_field(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise, normalised to zero mean and unit std."""
    field = gaussian_filter(rng.standard_normal((size, size)), sigma)
    return (field - field.mean()) / (field.std() + 1e-8)


def _speckle(rng: np.random.Generator, size: int) -> np.ndarray:
    """Rayleigh speckle with unit mean, correlated more laterally than axially."""
    corr = (rng.uniform(0.6, 0.9), rng.uniform(1.0, 1.6))  # (rows, cols) in pixels
    re = gaussian_filter(rng.standard_normal((size, size)), corr)
    im = gaussian_filter(rng.standard_normal((size, size)), corr)
    amp = np.hypot(re, im)
    return amp / amp.mean()


def _background(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Tissue echogenicity: smooth random field plus wavy horizontal layers."""
    size = yy.shape[0]
    echo = 0.75 + 0.12 * _smooth_field(rng, size, size / 10)
    for _ in range(rng.integers(2, 5)):
        depth = rng.uniform(0.1, 0.95) * size
        wave = rng.uniform(0.0, 0.06) * size * np.sin(
            2 * np.pi * xx / size * rng.uniform(0.3, 1.5) + rng.uniform(0, 2 * np.pi))
        tilt = rng.uniform(-0.15, 0.15) * (xx - size / 2)
        width = rng.uniform(0.02, 0.06) * size
        echo += rng.uniform(-0.15, 0.3) * np.exp(-((yy - depth - wave - tilt) / width) ** 2)
    return np.clip(echo, 0.15, None)


def _dark_layer(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Multiplicative map of a dark, wavy subcutaneous-fat-like band near the top."""
    size = yy.shape[0]
    top = rng.uniform(0.03, 0.25) * size + 0.04 * size * np.sin(
        2 * np.pi * xx / size * rng.uniform(0.5, 2.0) + rng.uniform(0, 2 * np.pi))
    thickness = rng.uniform(0.06, 0.16) * size * (
        1 + 0.3 * np.sin(2 * np.pi * xx / size * rng.uniform(0.5, 2.0) + rng.uniform(0, 2 * np.pi)))
    edge = rng.uniform(1.0, 3.0)
    inside = expit((yy - top) / edge) * expit((top + thickness - yy) / edge)
    return 1 - rng.uniform(0.45, 0.75) * inside


def _duct(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Multiplicative map of a thin, elongated, gently curved dark tube."""
    size = yy.shape[0]
    length = rng.uniform(0.35, 0.8) * size
    angle = rng.uniform(-0.4, 0.4)
    bend = rng.uniform(-0.15, 0.15) * size
    # The middle of the tube is always inside the image, so its centreline is never empty.
    cx, cy = rng.uniform(0.2, 0.8) * size, rng.uniform(0.2, 0.8) * size
    t = np.linspace(-0.5, 0.5, int(2 * length))  # ~2 samples per pixel of length
    px = cx + t * length * np.cos(angle) - bend * (1 - 4 * t ** 2) * np.sin(angle)
    py = cy + t * length * np.sin(angle) + bend * (1 - 4 * t ** 2) * np.cos(angle)
    centreline = np.ones((size, size), dtype=bool)  # False on the tube's centreline
    keep = (px >= 0) & (px <= size - 1) & (py >= 0) & (py <= size - 1)
    centreline[np.round(py[keep]).astype(int), np.round(px[keep]).astype(int)] = False
    dist = distance_transform_edt(centreline)
    half_width = rng.uniform(1.5, 4.0) * size / 128
    return 1 - rng.uniform(0.55, 0.8) * expit((half_width - dist) / 0.8)


def _shadow_band(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Multiplicative map of a vertical shadow band that no lesion casts."""
    size = yy.shape[0]
    x0 = rng.uniform(0.05, 0.95) * size
    start = rng.choice([0.0, rng.uniform(0.1, 0.6) * size])
    half_width = rng.uniform(0.03, 0.08) * size
    centre = x0 + rng.uniform(-0.1, 0.1) * (yy - start)
    lateral = expit((half_width - np.abs(xx - centre)) / rng.uniform(1.0, 3.0))
    axial = expit((yy - start) / 2.0)
    return 1 - rng.uniform(0.35, 0.7) * lateral * axial


def _sector_fan(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Soft visibility map of a sector scan: 1 inside the fan, 0 outside."""
    size = yy.shape[0]
    apex_x = size / 2 + rng.uniform(-0.05, 0.05) * size
    apex_y = -rng.uniform(0.15, 0.6) * size
    half_angle = rng.uniform(0.45, 0.7)
    angle = np.arctan2(xx - apex_x, yy - apex_y)
    dist = np.hypot(xx - apex_x, yy - apex_y)
    return expit((half_angle - np.abs(angle)) * dist)  # ~1 px soft edge


def _lesion_distance(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray,
                     cx: float, cy: float, radius: float) -> np.ndarray:
    """Approximate signed distance (pixels, negative inside) to an irregular blob.

    The boundary is an ellipse whose radius is modulated by harmonics 2..5 with
    random phases and amplitudes decaying with order, which keeps it smooth.
    """
    aspect = rng.uniform(0.65, 1.0)
    rot = rng.uniform(0, np.pi)
    dx, dy = xx - cx, yy - cy
    u = (dx * np.cos(rot) + dy * np.sin(rot))
    v = (-dx * np.sin(rot) + dy * np.cos(rot)) / aspect
    rho, theta = np.hypot(u, v), np.arctan2(v, u)
    irregularity = rng.uniform(0.03, 0.16)
    boundary = np.ones_like(theta)
    for k in range(2, 6):
        boundary += irregularity * rng.uniform(0.3, 1.0) / (k - 1) * np.cos(
            k * theta + rng.uniform(0, 2 * np.pi))
    return rho - radius * boundary


def _place_lesions(rng: np.random.Generator, size: int,
                   fan: np.ndarray) -> List[Tuple[float, float, float]]:
    """Draw 1-3 non-overlapping (cx, cy, radius) lesions inside the visible area."""
    count = rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1])
    lesions: List[Tuple[float, float, float]] = []
    for _ in range(60):
        if len(lesions) == count:
            break
        hi = 0.22 if not lesions else 0.14
        radius = rng.uniform(0.08, hi) * size
        cx = rng.uniform(radius + 2, size - radius - 2)
        cy = rng.uniform(max(radius + 2, 0.25 * size), min(size - radius - 2, 0.78 * size))
        if fan[int(cy), int(np.clip(cx - radius, 0, size - 1))] < 0.5 or \
                fan[int(cy), int(np.clip(cx + radius, 0, size - 1))] < 0.5:
            continue
        if all(np.hypot(cx - ox, cy - oy) > 1.15 * (radius + orad) + 3
               for ox, oy, orad in lesions):
            lesions.append((cx, cy, radius))
    if not lesions:  # keep at least one lesion, centred where it always fits
        lesions.append((size / 2, size / 2, 0.1 * size))
    return lesions


def generate_sample(seed: int, index: int, size: int = 128) -> Tuple[np.ndarray, np.ndarray]:
    """Generate one sample.

    Args:
        seed: Dataset seed.
        index: Sample index; the sample's RNG is ``default_rng([seed, index])``.
        size: Side length of the square image in pixels.

    Returns:
        ``(image, mask)``: an ``(size, size)`` uint8 gray image and an
        ``(size, size)`` uint8 mask with values 0 and 255.
    """
    rng = np.random.default_rng([seed, index])
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)

    fan = _sector_fan(rng, yy, xx) if rng.random() < 0.35 else np.ones((size, size))
    echo = _background(rng, yy, xx)
    if rng.random() < 0.7:
        echo *= _dark_layer(rng, yy, xx)
    for _ in range(rng.choice([0, 1, 2], p=[0.4, 0.4, 0.2])):
        echo *= _duct(rng, yy, xx)

    mask = np.zeros((size, size), dtype=bool)
    smoothing = np.zeros((size, size))  # how much the speckle is smoothed, 0..1
    shading = np.ones((size, size))  # posterior shadowing / enhancement
    for cx, cy, radius in _place_lesions(rng, size, fan):
        dist = _lesion_distance(rng, yy, xx, cx, cy, radius)
        mask |= dist < 0
        margin = rng.choice([rng.uniform(0.4, 1.0), rng.uniform(1.2, 3.0)], p=[0.6, 0.4])
        inside = expit(-dist / margin)
        contrast = rng.uniform(0.06, 0.4)  # interior / surrounding echogenicity
        interior = contrast * (1 + 0.15 * _smooth_field(rng, size, radius / 3))
        if rng.random() < 0.3:  # internal echoes: a few small bright specks
            for _ in range(rng.integers(2, 6)):
                r_in = radius * 0.6 * np.sqrt(rng.random())
                phi = rng.uniform(0, 2 * np.pi)
                ex, ey = cx + r_in * np.cos(phi), cy + r_in * np.sin(phi)
                interior = interior + contrast * rng.uniform(0.5, 1.5) * np.exp(
                    -((xx - ex) ** 2 + (yy - ey) ** 2) / (2 * rng.uniform(0.8, 1.8) ** 2))
        echo = echo * (1 - inside) + echo * interior * inside
        if rng.random() < 0.3:  # echogenic rim just outside the boundary
            rim_width = rng.uniform(1.0, 2.5)
            echo = echo * (1 + rng.uniform(0.3, 0.8) * np.exp(
                -((dist - rim_width) / rim_width) ** 2))
        smoothing = np.maximum(smoothing, rng.uniform(0.35, 0.65) * inside)

        effect = rng.random()
        if effect < 0.55:  # posterior shadow (< 0.4) or enhancement
            lateral = expit((0.8 * radius - np.abs(xx - cx)) / rng.uniform(1.5, 4.0))
            axial = expit((yy - cy - 0.6 * radius) / 3.0)
            strength = -rng.uniform(0.3, 0.65) if effect < 0.4 else rng.uniform(0.15, 0.35)
            shading *= 1 + strength * lateral * axial * (1 - inside)

    for _ in range(rng.choice([0, 1, 2], p=[0.4, 0.4, 0.2])):
        shading *= _shadow_band(rng, yy, xx)

    speckle = 1 + (_speckle(rng, size) - 1) * (1 - smoothing)
    attenuation = np.exp(-rng.uniform(0.2, 1.2) * yy / size)
    amplitude = echo * shading * speckle * attenuation
    decibels = 20 * np.log10(amplitude / np.percentile(amplitude[fan > 0.5], 99) + 1e-6)
    gray = np.clip(1 + decibels / rng.uniform(30, 45), 0, None)
    gray = rng.uniform(-0.12, 0.03) + rng.uniform(0.75, 1.0) * gray
    gray = gray * fan + rng.normal(0, 0.012, (size, size))
    image = np.clip(np.round(gray * 255), 0, 255).astype(np.uint8)
    return image, mask.astype(np.uint8) * 255


def _readme(params: Dict[str, int]) -> str:
    total = params['num_train'] + params['num_val'] + params['num_test']
    return f"""# Synthetic breast-ultrasound-like lesion dataset

Generated by `tools/dataset_converters/generate_synth_lesion.py`
(generator version {params['version']}, seed {params['seed']}).

- {total} images of {params['size']}x{params['size']} pixels: \
{params['num_train']} train, {params['num_val']} val, {params['num_test']} test.
- Re-running with the same parameters gives byte-identical files.

- `images/case_XXXXX.png`: RGB 8-bit, gray content replicated to 3 channels.
- `masks/case_XXXXX.png`: 8-bit single channel, 0 = background, 255 = lesion.
- `splits/{{train,val,test}}.txt`: one stem per line.
- `meta.json`: the generation parameters.

Images show speckled tissue with 1-3 dark, roundish, irregular lesions plus
dark distractors (fat layers, ducts, shadow bands, sector-scan edges, deep
attenuation); see the generator's docstring for the full image model.
"""


def main() -> None:
    args = parse_split_arguments(__doc__.split('\n')[0], 'data/synth_lesion',
                                 dict(train=400, val=50, test=100))

    params = dict(version=GENERATOR_VERSION, seed=args.seed, size=args.size,
                  num_train=args.num_train, num_val=args.num_val, num_test=args.num_test)
    if not args.overwrite and check_existing(args.out, params):
        print(f'{args.out}: already generated with these parameters, nothing to do')
        return
    for name in ('images', 'masks', 'splits'):
        shutil.rmtree(osp.join(args.out, name), ignore_errors=True)
    for name in ('README.md', 'meta.json'):
        if osp.isfile(osp.join(args.out, name)):
            os.remove(osp.join(args.out, name))
    for name in ('images', 'masks', 'splits'):
        os.makedirs(osp.join(args.out, name))

    counts = dict(train=args.num_train, val=args.num_val, test=args.num_test)
    total = sum(counts.values())
    start = time.perf_counter()
    index = 0
    for split in SPLITS:
        stems = []
        for _ in progress(counts[split], split):
            stem = f'case_{index:05d}'
            image, mask = generate_sample(args.seed, index, args.size)
            Image.fromarray(np.repeat(image[..., None], 3, axis=2)).save(
                osp.join(args.out, 'images', stem + '.png'))
            Image.fromarray(mask).save(osp.join(args.out, 'masks', stem + '.png'))
            stems.append(stem)
            index += 1
            if index % 100 == 0:
                print(f'[{index}/{total}] {time.perf_counter() - start:.1f}s', flush=True)
        with open(osp.join(args.out, 'splits', f'{split}.txt'), 'w') as f:
            f.write(''.join(s + '\n' for s in stems))

    with open(osp.join(args.out, 'README.md'), 'w') as f:
        f.write(_readme(params))
    with open(osp.join(args.out, 'meta.json'), 'w') as f:
        json.dump(params, f, indent=2, sort_keys=True)
        f.write('\n')
    print(f'wrote {total} samples to {args.out} in {time.perf_counter() - start:.1f}s: '
          + ', '.join(f'{counts[s]} {s} ({osp.join(args.out, "splits", s + ".txt")})'
                      for s in SPLITS))
    print(f'  images: {osp.join(args.out, "images")}  masks: {osp.join(args.out, "masks")}')


if __name__ == '__main__':
    main()
