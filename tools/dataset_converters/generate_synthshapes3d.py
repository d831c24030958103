"""Generate SynthShapes3D: deterministic point clouds of procedural 3D solids.

Every sample is one object of a class of
``mmfusion.datasets.synthshapes3d_meta.CLASSES``: a base solid (sphere, cube,
cylinder, cone, torus, pyramid) with a proportion modifier ('tall', 'flat' or
regular). Output layout (ModelNet40's ``modelnet40_normal_resampled`` layout)::

    OUT/shape_names.txt             the 18 class names, one per line (spaces kept)
    OUT/{train,val,test}.txt        sample ids, one per line (``tall_cone_0007``)
    OUT/<class_folder>/<id>.txt     rows ``x,y,z,nx,ny,nz`` ('%.6f'); the folder is
                                    the class name with spaces replaced by '_'
    OUT/captions.json               id -> 2-3 captions
    OUT/meta.json                   generator version, arguments, classes, held-out
                                    classes, counts per split and class, per-sample
                                    parameters (written last: marks a complete dataset)

Splits: ``train`` and ``val`` hold the seen classes only
(``SEEN_CLASSES``, balanced: sample i is class i mod 14); ``test`` holds all 18
classes, balanced, the held-out ones (``HELD_OUT``) included. Ids are numbered
per class across the splits, so they are unique.

An object is built as a trimesh mesh, upright (the up axis is z), with its
canonical proportions (every solid about 2 wide and 2 high; torus of major
radius 1, minor radius 0.3-0.45), then:

* **modifier**: z scaled by 1.8 ('tall'), 0.45 ('flat') or 1.0 (regular), each
  +-10 %; x and y scaled independently by 0.88-1.12;
* **deformation** (one of four, equally likely): none; a taper (top or bottom
  narrowed by 8-20 %); a bend (ends displaced sideways by 5-15 % of the
  half-height, parabolic); a shear (5-15 % sideways per unit of height);
* **pose**: tilt of 0-10 degrees about a random horizontal axis, then a
  uniform rotation about z;
* **points**: ``--points`` surface points sampled by area (trimesh) on the
  deformed mesh, with that mesh's face normals; Gaussian noise of sigma 0-1 %
  of the object's radius on the positions;
* **partial view** (30 %): only the points whose projection on a random
  horizontal view direction is above the 20-40 % quantile are kept, and
  randomly chosen kept points are repeated to get back to ``--points``;
* the cloud is centred (zero mean) and scaled to unit maximum radius.

Sample i of split k draws all its randomness from
``numpy.random.default_rng([seed, k, i])``: the same arguments give
byte-identical files, and a sample does not depend on the split sizes.

Example::

    python tools/dataset_converters/generate_synthshapes3d.py --out data/synthshapes3d \\
        --num-train 2600 --num-val 260 --num-test 720 --points 2048 --seed 0
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
import trimesh

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmfusion.datasets.synthshapes3d_meta import BASES, CLASSES, HELD_OUT, SEEN_CLASSES  # noqa: E402

from tools.dataset_converters.generated_dataset import progress  # noqa: E402

GENERATOR_VERSION = 1
SPLITS = ('train', 'val', 'test')
Z_SCALES = {'tall': 1.8, 'flat': 0.45, '': 1.0}
DEFORMATIONS = ('none', 'taper', 'bend', 'shear')
DEFORMATION_WORDS = {'taper': 'slightly tapered', 'bend': 'slightly bent',
                     'shear': 'slightly slanted'}
TILT_MAX_DEG = 10.0
PARTIAL_PROB = 0.3
NOISY_SIGMA = 0.005  # noise sigma (fraction of the radius) from which captions say 'noisy'
MAX_EDGE = 0.25  # templates are subdivided to this edge length so that bends are smooth

_TEMPLATES: Dict[str, Tuple[np.ndarray, np.ndarray]] = {}


def folder_name(name: str) -> str:
    """Class folder and id prefix: 'tall cone' -> 'tall_cone'."""
    return name.replace(' ', '_')


def split_class(name: str) -> Tuple[str, str]:
    """'tall cone' -> ('cone', 'tall'); 'cone' -> ('cone', '')."""
    words = name.split()
    return words[-1], (words[0] if len(words) == 2 else '')


def _pyramid() -> trimesh.Trimesh:
    """Square-base pyramid, base 2 x 2 at z = -1, apex at z = 1, outward faces."""
    vertices = np.array([[-1, -1, -1], [1, -1, -1], [1, 1, -1], [-1, 1, -1], [0, 0, 1]],
                        dtype=np.float64)
    faces = np.array([[0, 2, 1], [0, 3, 2], [0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]])
    return trimesh.Trimesh(vertices, faces, process=False)


def template(base: str, torus_minor: float = 0.35) -> Tuple[np.ndarray, np.ndarray]:
    """Vertices and faces of the canonical upright solid, centred at the origin:
    about 2 wide and 2 high (z from -1 to 1); the torus has major radius 1."""
    if base == 'torus':  # the minor radius varies per object: not cached
        mesh = trimesh.creation.torus(1.0, torus_minor, major_sections=32, minor_sections=16)
        return np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces)
    if base not in _TEMPLATES:
        if base == 'sphere':
            mesh = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
        elif base == 'cube':
            mesh = trimesh.creation.box(extents=(2.0, 2.0, 2.0))
        elif base == 'cylinder':
            mesh = trimesh.creation.cylinder(radius=1.0, height=2.0, sections=32)
        elif base == 'cone':
            mesh = trimesh.creation.cone(radius=1.0, height=2.0, sections=32)
            mesh.apply_translation((0, 0, -1.0))  # base at z = 0 -> centred
        elif base == 'pyramid':
            mesh = _pyramid()
        else:
            raise ValueError(f'unknown base {base!r}; expected one of {BASES}')
        vertices, faces = trimesh.remesh.subdivide_to_size(mesh.vertices, mesh.faces, MAX_EDGE)
        _TEMPLATES[base] = (np.asarray(vertices, np.float64), np.asarray(faces))
    return _TEMPLATES[base]


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    return trimesh.transformations.rotation_matrix(angle, axis)[:3, :3]


def draw_params(rng: np.random.Generator, name: str) -> Dict:
    """All random choices of one object (see the module docstring)."""
    base, modifier = split_class(name)
    params = dict(cls=name, base=base, modifier=modifier,
                  z_scale=Z_SCALES[modifier] * rng.uniform(0.9, 1.1),
                  xy_scale=rng.uniform(0.88, 1.12, 2).tolist())
    if base == 'torus':
        params['torus_minor'] = rng.uniform(0.3, 0.45)
    kind = DEFORMATIONS[int(rng.integers(len(DEFORMATIONS)))]
    deformation = dict(kind=kind)
    if kind == 'taper':
        deformation.update(amount=rng.uniform(0.08, 0.2),
                           narrow_end=('top', 'bottom')[int(rng.integers(2))])
    elif kind in ('bend', 'shear'):
        deformation.update(amount=rng.uniform(0.05, 0.15),
                           direction_deg=rng.uniform(0, 360))
    params['deformation'] = deformation
    params.update(tilt_deg=rng.uniform(0, TILT_MAX_DEG), tilt_axis_deg=rng.uniform(0, 360),
                  yaw_deg=rng.uniform(0, 360), noise_sigma=rng.uniform(0, 0.01))
    params['partial'] = bool(rng.random() < PARTIAL_PROB)
    if params['partial']:
        params.update(view_deg=rng.uniform(0, 360), partial_removed=rng.uniform(0.2, 0.4))
    return params


def build_mesh(params: Dict) -> trimesh.Trimesh:
    """The deformed, posed mesh of an object."""
    vertices, faces = template(params['base'], params.get('torus_minor', 0.35))
    v = vertices.copy()
    v[:, :2] *= np.asarray(params['xy_scale'])
    v[:, 2] *= params['z_scale']
    half_height = np.abs(v[:, 2]).max()
    zn = v[:, 2] / half_height  # -1 (bottom) .. 1 (top)
    deformation = params['deformation']
    if deformation['kind'] == 'taper':
        along = (zn + 1) / 2 if deformation['narrow_end'] == 'top' else (1 - zn) / 2
        v[:, :2] *= (1 - deformation['amount'] * along)[:, None]
    elif deformation['kind'] in ('bend', 'shear'):
        angle = np.deg2rad(deformation['direction_deg'])
        direction = np.array([np.cos(angle), np.sin(angle)])
        if deformation['kind'] == 'bend':
            offset = deformation['amount'] * half_height * zn**2
        else:
            offset = deformation['amount'] * v[:, 2]
        v[:, :2] += offset[:, None] * direction
    tilt_axis = np.deg2rad(params['tilt_axis_deg'])
    rotation = _rotation([0, 0, 1], np.deg2rad(params['yaw_deg'])) @ _rotation(
        [np.cos(tilt_axis), np.sin(tilt_axis), 0], np.deg2rad(params['tilt_deg']))
    return trimesh.Trimesh(v @ rotation.T, faces, process=False)


def sample_points(rng: np.random.Generator, params: Dict, num_points: int) -> np.ndarray:
    """(num_points, 6) float64 ``x, y, z, nx, ny, nz``, centred, unit max radius."""
    mesh = build_mesh(params)
    points, face_index = trimesh.sample.sample_surface(mesh, num_points, seed=rng)
    normals = np.asarray(mesh.face_normals)[face_index]
    radius = np.linalg.norm(points - points.mean(0), axis=1).max()
    points = points + rng.normal(0, params['noise_sigma'] * radius, points.shape)
    if params['partial']:
        view = np.deg2rad(params['view_deg'])
        proj = (points - points.mean(0)) @ np.array([np.cos(view), np.sin(view), 0.0])
        keep = np.flatnonzero(proj > np.quantile(proj, params['partial_removed']))
        missing = num_points - len(keep)
        index = np.concatenate([keep, rng.choice(keep, missing, replace=missing > len(keep))])
        index = rng.permutation(index)
        points, normals = points[index], normals[index]
    points = points - points.mean(0)
    points = points / np.linalg.norm(points, axis=1).max()
    return np.concatenate([points, normals], 1)


def captions(params: Dict) -> List[str]:
    """2-3 captions built from the attributes actually applied to the object."""
    name = params['cls']
    adjective = DEFORMATION_WORDS.get(params['deformation']['kind'])
    described = f'{adjective} {name}' if adjective else name
    texts = [f'a {name}.']
    if params['noise_sigma'] >= NOISY_SIGMA:
        texts.append(f'a {described} with noisy points.')
    elif adjective:
        texts.append(f'a {described}.')
    else:
        texts.append(f'a clean scan of a {name}.')
    if params['partial']:
        texts.append(f'a partial scan of a {described} seen from one side.')
    return texts


def generate_sample(seed: int, split_index: int, index: int, name: str,
                    num_points: int) -> Dict:
    """Points (N, 6), parameters and captions of sample ``index`` of split
    ``SPLITS[split_index]``, of class ``name``."""
    rng = np.random.default_rng([seed, split_index, index])
    params = draw_params(rng, name)
    points = sample_points(rng, params, num_points)
    return dict(points=points, params=params, captions=captions(params))


def _rounded(value):
    if isinstance(value, float):
        return round(value, 5)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _write_text(path: str, text: str) -> None:
    """Write through a temporary file, so a file is never seen half-written."""
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
    os.replace(tmp, path)


def check_existing(out: str, params: Dict) -> bool:
    """True when ``out`` already holds this exact dataset (``meta.json`` whose
    ``params`` equal ``params``); exits when ``out`` is non-empty but holds
    something else."""
    if not osp.isdir(out) or not os.listdir(out):
        return False
    meta_path = osp.join(out, 'meta.json')
    if not osp.isfile(meta_path):
        sys.exit(f'error: {out} is not empty and has no meta.json; '
                 'choose another --out or pass --overwrite')
    with open(meta_path) as f:
        existing = json.load(f).get('params')
    if existing != params:
        sys.exit(f'error: {out} was generated with different parameters\n'
                 f'  existing:  {json.dumps(existing, sort_keys=True)}\n'
                 f'  requested: {json.dumps(params, sort_keys=True)}\n'
                 'pass --overwrite to regenerate it')
    return True


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='data/synthshapes3d', help='output folder')
    parser.add_argument('--num-train', type=int, default=2600)
    parser.add_argument('--num-val', type=int, default=260)
    parser.add_argument('--num-test', type=int, default=720)
    parser.add_argument('--points', type=int, default=2048, help='points per object')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--overwrite', action='store_true',
                        help='regenerate even if OUT already holds a dataset')
    args = parser.parse_args(argv)
    if min(args.num_train, args.num_val, args.num_test) < 0 or args.points < 16:
        parser.error('counts must be >= 0 and --points >= 16')
    return args


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    params = dict(version=GENERATOR_VERSION, seed=args.seed, points=args.points,
                  num_train=args.num_train, num_val=args.num_val, num_test=args.num_test)
    if not args.overwrite and check_existing(args.out, params):
        print(f'{args.out}: already generated with these parameters, nothing to do')
        return
    meta_path = osp.join(args.out, 'meta.json')
    if osp.isfile(meta_path):
        os.remove(meta_path)  # written last: its presence marks a complete dataset
    for name in CLASSES:
        shutil.rmtree(osp.join(args.out, folder_name(name)), ignore_errors=True)
    for name in ('shape_names.txt', 'captions.json') + tuple(f'{s}.txt' for s in SPLITS):
        if osp.isfile(osp.join(args.out, name)):
            os.remove(osp.join(args.out, name))
    os.makedirs(args.out, exist_ok=True)
    for name in CLASSES:
        os.makedirs(osp.join(args.out, folder_name(name)))

    counts = dict(train=args.num_train, val=args.num_val, test=args.num_test)
    total = sum(counts.values())
    row = ','.join(['%.6f'] * 6) + '\n'
    file_format = row * args.points
    numbers = {name: 0 for name in CLASSES}
    per_class = {split: {name: 0 for name in CLASSES} for split in SPLITS}
    all_captions, samples = {}, {}
    start = time.perf_counter()
    done = 0
    for k, split in enumerate(SPLITS):
        classes = CLASSES if split == 'test' else SEEN_CLASSES
        ids = []
        for i in progress(counts[split], split):
            name = classes[i % len(classes)]
            sample_id = f'{folder_name(name)}_{numbers[name]:04d}'
            numbers[name] += 1
            per_class[split][name] += 1
            sample = generate_sample(args.seed, k, i, name, args.points)
            _write_text(osp.join(args.out, folder_name(name), sample_id + '.txt'),
                        file_format % tuple(sample['points'].ravel().tolist()))
            ids.append(sample_id)
            all_captions[sample_id] = sample['captions']
            samples[sample_id] = dict(split=split, **_rounded(sample['params']))
            done += 1
            if done % 500 == 0:
                print(f'[{done}/{total}] {time.perf_counter() - start:.1f}s', flush=True)
        _write_text(osp.join(args.out, f'{split}.txt'), ''.join(s + '\n' for s in ids))
    _write_text(osp.join(args.out, 'shape_names.txt'), ''.join(c + '\n' for c in CLASSES))
    _write_text(osp.join(args.out, 'captions.json'), json.dumps(all_captions, indent=1) + '\n')
    meta = dict(generator='generate_synthshapes3d.py', params=params, classes=CLASSES,
                seen_classes=SEEN_CLASSES, held_out=HELD_OUT,
                counts={split: dict(total=counts[split],
                                    per_class={c: n for c, n in per_class[split].items() if n})
                        for split in SPLITS},
                samples=samples)
    _write_text(meta_path, json.dumps(meta, indent=1, sort_keys=True) + '\n')
    print(f'wrote {total} objects ({args.points} points each) to {args.out} in '
          f'{time.perf_counter() - start:.1f}s: '
          + ', '.join(f'{counts[s]} {s} ({osp.join(args.out, s + ".txt")})' for s in SPLITS))


if __name__ == '__main__':
    main()
