import json
import os.path as osp
from typing import Dict


def load_coco_json(path: str, kind: str = 'instances') -> Dict:
    """Read a COCO-style json (``kind`` names the format in errors) and check
    it has ``images``, ``annotations`` and ``categories``."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'COCO {kind} annotation file not found: {path}')
    with open(path) as f:
        coco = json.load(f)
    for field in ('images', 'annotations', 'categories'):
        if field not in coco:
            raise KeyError(f'{path} is not a COCO {kind} file: no "{field}" field')
    return coco


def category_names(coco: Dict) -> Dict[int, str]:
    """Category id -> name, in id order."""
    return {c['id']: c['name'] for c in sorted(coco['categories'], key=lambda c: c['id'])}
