"""Weight files named in model configs: find and drop them."""
import os.path as osp
from typing import List

WEIGHT_KEYS = ('checkpoint', 'pretrained', 'sam_checkpoint')


def _is_weight_key(key) -> bool:
    return isinstance(key, str) and (key in WEIGHT_KEYS or key.endswith('_checkpoint'))


def drop_weight_files(cfg, only_missing: bool = False, where: str = 'model') -> List[str]:
    """Set the weight files of a (model) config to ``None``, in place.

    Every ``checkpoint`` / ``pretrained`` / ``*_checkpoint`` string (and the
    ``prefix`` next to it, which selects keys of that file) and every
    ``init_cfg=dict(type='Pretrained', ...)`` anywhere in ``cfg``. With
    ``only_missing``, only files that do not exist (a demo or test on a
    machine without the pre-training runs: the trained checkpoint holds the
    weights, or random init is what the test wants).

    Returns:
        The dropped entries as ``'model.a.b.checkpoint=PATH'``.
    """
    dropped = []
    if isinstance(cfg, dict):
        for key in list(cfg):
            value = cfg[key]
            if _is_weight_key(key) and isinstance(value, str):
                if not only_missing or not osp.exists(value):
                    cfg[key] = None
                    if isinstance(cfg.get('prefix'), str):
                        cfg['prefix'] = None
                    dropped.append(f'{where}.{key}={value}')
            elif key == 'init_cfg' and isinstance(value, dict) and \
                    value.get('type') == 'Pretrained':
                path = value.get('checkpoint')
                if not only_missing or not (isinstance(path, str) and osp.exists(path)):
                    cfg[key] = None
                    dropped.append(f'{where}.init_cfg={path}')
            else:
                dropped += drop_weight_files(value, only_missing, f'{where}.{key}')
    elif isinstance(cfg, (list, tuple)):
        for i, value in enumerate(cfg):
            dropped += drop_weight_files(value, only_missing, f'{where}[{i}]')
    return dropped
