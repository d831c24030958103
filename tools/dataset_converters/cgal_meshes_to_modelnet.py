"""Write the triangle meshes of Debian's CGAL demo data as a small real-mesh test
set in ModelNet40's mesh layout (read by ``ModelNet40Dataset(layout='mesh',
split='test')``).

Debian's ``libcgal-demo`` ships ``/usr/share/doc/libcgal-dev/data.tar.gz``
with about 140 ``.off`` meshes (scanned animals and people, CAD parts, simple
solids and many small test meshes). The members are read straight from the
tarball (streamed, nothing else is extracted) and those a hand-made table
classifies confidently are written unchanged::

    OUT/modelnet40_shape_names.txt     the non-empty categories, one per line
    OUT/<category>/test/<stem>.off     e.g. animal/test/bear.off
    OUT/meta.json                      file -> category and source member, the
                                       skipped members with the reason, counts

Categories: ``animal``, ``human`` (people and body parts), ``mechanical_part``
(CAD parts) and the solids of the SynthShapes3D vocabulary (``sphere``,
``cube``, ``cylinder``, ``cone``, ``torus``, ``pyramid``). A member is skipped
when its name is not in the table (or the table skips it: open test patches,
knots, letters, ...), when it is a finer or shuffled copy of a kept mesh
(``bear_bis`` of ``bear``; also found automatically: the same vertices up to
translation and scale), or when it cannot be read as a triangle mesh with
area (``kitten.off`` is a point set without faces). Re-running rewrites
nothing that is unchanged and removes files a previous run wrote that are no
longer selected.

Example::

    python tools/dataset_converters/cgal_meshes_to_modelnet.py --out data/cgal_meshes
"""
import argparse
import hashlib
import json
import os
import os.path as osp
import sys
import tarfile
from collections import Counter
from typing import Dict, List, Optional, Tuple

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmfusion.datasets.transforms.loading_points import parse_off  # noqa: E402

DEFAULT_TARBALL = '/usr/share/doc/libcgal-dev/data.tar.gz'
NAMES_FILE = 'modelnet40_shape_names.txt'
CATEGORY_ORDER = ('animal', 'human', 'mechanical_part', 'sphere', 'cube', 'cylinder', 'cone',
                  'torus', 'pyramid')

# File stem -> (category, note). Order matters among exact copies: the first is kept.
CATEGORIES: Dict[str, Tuple[str, str]] = {
    'armadillo': ('animal', ''),
    'bear': ('animal', ''),
    'bull': ('animal', ''),
    'bunny00': ('animal', 'Stanford bunny'),
    'camel': ('animal', ''),
    'cow': ('animal', ''),
    'dino': ('animal', 'dinosaur'),
    'diplodocus': ('animal', ''),
    'elephant': ('animal', ''),
    'kitten': ('animal', ''),
    'lion': ('animal', 'lion head'),
    'pig': ('animal', ''),
    'triceratops': ('animal', ''),
    'man': ('human', 'standing man'),
    'homer': ('human', 'cartoon figure'),
    'mannequin-devil': ('human', 'mannequin head'),
    'head': ('human', ''),
    'hand': ('human', ''),
    'femur': ('human', 'thigh bone'),
    'bones': ('human', 'skeleton of a foot'),
    'nefertiti': ('human', 'face relief (open surface)'),
    'anchor': ('mechanical_part', ''),
    'blade': ('mechanical_part', 'turbine blade'),
    'couplingdown': ('mechanical_part', ''),
    'dragknob': ('mechanical_part', ''),
    'fandisk': ('mechanical_part', ''),
    'handle': ('mechanical_part', ''),
    'joint': ('mechanical_part', ''),
    'part': ('mechanical_part', ''),
    'pinion': ('mechanical_part', 'gear'),
    'rotor': ('mechanical_part', ''),
    'spool': ('mechanical_part', ''),
    'turbine': ('mechanical_part', 'turbine ring'),
    'sphere': ('sphere', ''),
    'geosphere': ('sphere', ''),
    'larger_sphere': ('sphere', ''),
    'sphere966': ('sphere', ''),
    'ellipsoid': ('sphere', 'ellipsoid'),
    'ellipe0.003': ('sphere', 'ellipsoid'),
    'cube': ('cube', ''),
    'cube-meshed': ('cube', 'finely triangulated'),
    'cube-shuffled': ('cube', ''),
    'cube4-shuffled': ('cube', ''),
    'cube_poly': ('cube', ''),
    'cube_quad': ('cube', ''),
    'small_cube': ('cube', ''),
    'translated-cube': ('cube', ''),
    'pipe': ('cylinder', 'hollow cylinder (a tube)'),
    'torus_quad': ('torus', 'coarse torus, pentagonal ring'),
    'pyramid': ('pyramid', 'square pyramid'),
    'tetrahedron': ('pyramid', 'triangular pyramid'),
    'reference_tetrahedron': ('pyramid', 'triangular pyramid'),
    'tet-shuffled': ('pyramid', 'triangular pyramid'),
}

# Finer, coarser or altered versions of a kept model: stem -> the kept stem.
DUPLICATES = {
    'bear_bis': 'bear',
    'anchor_dense': 'anchor',
    'fandisk_large': 'fandisk',
    'pinion_small': 'pinion',
    'rotor_small': 'rotor',
    'lion-head': 'lion',
    'refined_elephant': 'elephant',
    'elephant-with-holes': 'elephant',
}

_SMALL = 'small test mesh'
_OPEN = 'open surface / terrain patch'
SKIP = {
    '3torus': 'genus-3 surface, not a single ring',
    'ALSTOM_TEST4': 'open industrial surface; the name gives no category',
    'ChineseDragon-10kv': 'dragon statue: a mythical creature, not confidently an animal',
    'P': 'letter P (polygon test mesh)',
    'b9_mesh': 'the name gives no category (47 open pieces)',
    'beam': 'elongated box (0.4 x 0.4 x 3.6), not a cube',
    'blob': 'free-form blob', 'blob-closed': 'free-form blob', 'blobby': 'free-form blob',
    'blobby-shuffled': 'free-form blob', 'blobby_3cc': 'free-form blob',
    'boeing': 'open surface pieces (122 components), not a recognisable aircraft',
    'cactus': 'plant: no category',
    'cheese': 'box with spherical holes (test mesh)',
    'cheese-box': 'bounding box of another test mesh', 'fandisk-box': 'bounding box of fandisk',
    'horizons-domain': 'bounding box of another test mesh',
    'corner': 'L-shaped test block', 'corner_poly': 'L-shaped test block',
    'corner_tris_with_hole': 'L-shaped test block', 'corner_with_hole': 'L-shaped test block',
    'corner_with_sharp_edge': 'L-shaped test block',
    'cross': 'extruded cross (test mesh)', 'cross_quad': 'extruded cross (test mesh)',
    'cube-ouvert': 'open cube (faces missing)', 'open_cube': 'open cube (faces missing)',
    'cylinder': 'open half-cylinder sheet, not a closed cylinder',
    'cylinder_locally_refined': 'open half-cylinder sheet, not a closed cylinder',
    'degtri_sliding': 'degenerate triangles (test mesh)',
    'double-torus-3-holes': 'genus-2 surface, not a single ring',
    'double-torus-example': 'genus-2 surface, not a single ring',
    'eight': 'genus-2 surface (figure eight), not a single ring',
    'elk': 'abstract sculpture of loops, not an elk-shaped animal',
    'fold': 'folded open strip (test mesh)',
    'hedra': 'polyhedron test mesh: no category', 'hedra_open': 'open polyhedron test mesh',
    'helmet': 'object without a matching category',
    'hole': 'hole-filling test mesh', 'holes': 'hole-filling test mesh',
    'triangular_hole': 'hole-filling test mesh', 'mesh_with_border': 'open test mesh',
    'horizons': _OPEN, 'three_peaks': _OPEN, 'plane': _OPEN,
    'poly2x^2+y^2-0.062500': _OPEN, 'polygon_mesh': _OPEN,
    'icosahedron': 'regular polyhedron without a matching category',
    'octahedron': 'regular polyhedron without a matching category',
    'in': _SMALL, 'quad': _SMALL, 'triangle': _SMALL, 'quads_to_stitch': _SMALL,
    'tetra_intersected_by_triangle': _SMALL, 'negative': _SMALL, 'prim': _SMALL,
    'quint_tris': _SMALL, 'star': _SMALL, 'tripod': _SMALL, 'u': _SMALL, 'mpi': _SMALL,
    'mpi_triang': _SMALL, 'mesh_with_colors': _SMALL,
    'itemb': 'the name gives no category',
    'knot': 'torus knot, not a ring', 'knot1': 'torus knot, not a ring',
    'knot2': 'torus knot, not a ring',
    'mask_cone': 'open surface with a cap, not a cone',
    'mech-holes-shark': 'mechanical part with punched holes (hole-filling test mesh)',
    'mushroom': 'fungus: no category',
    'oblong': 'the name gives no category', 'oblong-shuffled': 'the name gives no category',
    'retinal': 'molecular surface: no category',
}
SKIP_PREFIXES = {'patch-': 'open surface patch (test mesh)'}


def _table_decision(stem: str) -> Tuple[Optional[str], str]:
    """(category or None, note or the reason for skipping) from the tables alone."""
    if stem in DUPLICATES:
        return None, f'another version of {DUPLICATES[stem]} (kept)'
    if stem in SKIP:
        return None, SKIP[stem]
    for prefix, reason in SKIP_PREFIXES.items():
        if stem.startswith(prefix):
            return None, reason
    if stem in CATEGORIES:
        return CATEGORIES[stem]
    return None, 'not in the category table: the name gives no confident category'


def shape_key(vertices: np.ndarray) -> str:
    """Hash of the vertex set centred and scaled to unit size (order-free)."""
    lo, hi = vertices.min(0), vertices.max(0)
    scale = max(float((hi - lo).max()), 1e-12)
    q = np.round((vertices - (lo + hi) / 2) / scale, 4) + 0.0  # + 0.0: no negative zeros
    q = q[np.lexsort(q.T[::-1])]
    return hashlib.sha1(q.tobytes()).hexdigest()


def _check_mesh(data: bytes, member: str) -> Tuple[Optional[dict], str]:
    """Parse a member; (info, '') for a usable triangle mesh, else (None, reason)."""
    try:
        vertices, faces = parse_off(data, member)
    except ValueError as e:
        return None, f'unreadable: {e}'
    if not len(vertices):
        return None, 'no vertices'
    if not np.isfinite(vertices).all():
        return None, 'NaN/inf vertex coordinates'
    if not len(faces):
        return None, f'{len(vertices)} vertices and no faces (a point set, not a mesh)'
    tri = vertices[faces]
    area = float(np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]),
                                axis=1).sum() / 2)
    if not area > 0:
        return None, 'zero surface area'
    extent = (vertices.max(0) - vertices.min(0)).round(4).tolist()
    return dict(vertices=len(vertices), triangles=len(faces), area=round(area, 6),
                extent=extent, key=shape_key(vertices)), ''


def convert(out: str, tarball: str = DEFAULT_TARBALL, verbose: bool = True) -> dict:
    """Select, check and write the meshes; returns the meta dict (also in meta.json)."""
    if not osp.isfile(tarball):
        raise SystemExit(f'CGAL data tarball not found: {tarball}; install Debian\'s '
                         'libcgal-demo (apt-get install -y libcgal-demo) or pass --tarball')
    log = print if verbose else (lambda *a, **k: None)
    skipped: Dict[str, str] = {}
    candidates: List[dict] = []
    seen: Dict[str, str] = {}
    with tarfile.open(tarball, 'r|*') as tar:  # a stream: members are read in order, once
        for member in tar:
            if not member.isfile() or not member.name.lower().endswith('.off'):
                continue
            stem = osp.splitext(osp.basename(member.name))[0]
            if stem in seen:
                skipped[member.name] = f'same file name as {seen[stem]}'
                log(f'  skip {member.name}: {skipped[member.name]}')
                continue
            seen[stem] = member.name
            category, note = _table_decision(stem)
            if category is None:
                skipped[member.name] = note
                log(f'  skip {member.name}: {note}')
                continue
            data = tar.extractfile(member).read()
            info, reason = _check_mesh(data, member.name)
            if info is None:
                skipped[member.name] = reason
                log(f'  skip {member.name}: {reason}')
                continue
            candidates.append(dict(stem=stem, category=category, note=note, member=member.name,
                                   data=data, **info))
            log(f'  read {member.name}: {category}, {info["vertices"]} vertices, '
                f'{info["triangles"]} triangles')

    # Exact copies (same vertices up to translation and scale): the first in table order stays.
    order = {stem: i for i, stem in enumerate(CATEGORIES)}
    candidates.sort(key=lambda c: order.get(c['stem'], len(order)))
    kept, by_key = [], {}
    for cand in candidates:
        if cand['key'] in by_key:
            skipped[cand['member']] = (f'same vertices as {by_key[cand["key"]]} (up to '
                                       'translation and scale)')
            log(f'  skip {cand["member"]}: {skipped[cand["member"]]}')
            continue
        by_key[cand['key']] = cand['stem']
        kept.append(cand)

    os.makedirs(out, exist_ok=True)
    meta_path = osp.join(out, 'meta.json')
    previous = {}
    if osp.isfile(meta_path):
        with open(meta_path) as f:
            previous = json.load(f).get('files', {})
    files, written = {}, 0
    for cand in sorted(kept, key=lambda c: (CATEGORY_ORDER.index(c['category']), c['stem'])):
        rel = f'{cand["category"]}/test/{cand["stem"]}.off'
        path = osp.join(out, rel)
        if not (osp.isfile(path) and open(path, 'rb').read() == cand['data']):
            os.makedirs(osp.dirname(path), exist_ok=True)
            with open(path + '.tmp', 'wb') as f:
                f.write(cand['data'])
            os.replace(path + '.tmp', path)
            written += 1
        files[rel] = dict(category=cand['category'], member=cand['member'], note=cand['note'],
                          vertices=cand['vertices'], triangles=cand['triangles'],
                          area=cand['area'], extent=cand['extent'])
    for rel in sorted(set(previous) - set(files)):  # selected by an earlier run only
        path = osp.join(out, rel)
        if osp.isfile(path):
            os.remove(path)
            log(f'  removed {rel} (no longer selected)')
            folder = osp.dirname(path)
            while folder != osp.normpath(out) and osp.isdir(folder) and not os.listdir(folder):
                os.rmdir(folder)
                folder = osp.dirname(folder)

    counts = Counter(v['category'] for v in files.values())
    categories = [c for c in CATEGORY_ORDER if counts[c]]
    with open(osp.join(out, NAMES_FILE), 'w') as f:
        f.write(''.join(c + '\n' for c in categories))
    meta = dict(source=tarball, layout='ModelNet40 mesh layout, split "test" only',
                categories=categories,
                empty_categories=[c for c in CATEGORY_ORDER if not counts[c]],
                counts={c: counts[c] for c in categories}, num_files=len(files),
                files=files, skipped=dict(sorted(skipped.items())))
    with open(meta_path + '.tmp', 'w') as f:
        json.dump(meta, f, indent=1)
    os.replace(meta_path + '.tmp', meta_path)

    log(f'\n{"category":<16} {"meshes":>6}  files')
    for c in CATEGORY_ORDER:
        stems = [osp.splitext(osp.basename(r))[0] for r, v in files.items() if v['category'] == c]
        log(f'{c:<16} {counts[c]:>6}  {", ".join(stems)}')
    log(f'{"total":<16} {len(files):>6}  ({len(skipped)} .off members skipped, {written} '
        f'files written, the rest unchanged) -> {out}')
    return meta


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='data/cgal_meshes', help='output folder')
    parser.add_argument('--tarball', default=DEFAULT_TARBALL,
                        help='the CGAL data tarball (Debian package libcgal-demo)')
    parser.add_argument('--quiet', action='store_true', help='print the summary only')
    args = parser.parse_args(argv)
    meta = convert(args.out, args.tarball, verbose=not args.quiet)
    if args.quiet:
        print(json.dumps(dict(out=args.out, counts=meta['counts'], skipped=len(meta['skipped']))))


if __name__ == '__main__':
    main()
