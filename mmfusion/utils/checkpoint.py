"""Safe checkpoint loading and atomic checkpoint writing.

torch>=2.6 loads with ``weights_only=True``, which refuses the Python objects
mmengine pickles into checkpoints (``HistoryBuffer``, numpy scalars, ...), so
``resume=True`` fails out of the box. Turning ``weights_only`` off would let any
checkpoint run code; instead the exact globals mmengine stores are allow-listed
and everything else is refused with an error naming the file and the global.
"""
import os
import os.path as osp
import pickle
import re
import tempfile
from collections import OrderedDict
from typing import Dict, List, Union

import numpy as np
import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.runner import CheckpointLoader

ATOMIC_BACKEND = 'mmfusion_atomic_local'


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds a pickled global outside mmfusion's allow-list."""


def _history_buffer_getattr(obj: object, name: str) -> object:
    """Stands in for ``builtins.getattr`` while unpickling: mmengine's
    ``HistoryBuffer`` pickles its statistics methods as
    ``getattr(HistoryBuffer, 'mean')``; allowing the real ``getattr`` would
    let a checkpoint reach any attribute of any allowed object."""
    from mmengine.logging.history_buffer import HistoryBuffer
    # mmengine registers its default statistics when a buffer is first made.
    if obj is HistoryBuffer and name in HistoryBuffer()._statistics_methods:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'Unsupported global: GLOBAL builtins.getattr({getattr(obj, "__name__", obj)!r}, {name!r}) '
        'outside HistoryBuffer statistics')


def _safe_globals() -> List:
    from mmengine.logging.history_buffer import HistoryBuffer
    from mmengine.config.config import ConfigDict
    numpy_core = getattr(np, '_core', None) or np.core
    allowed = [
        HistoryBuffer, ConfigDict, OrderedDict,
        numpy_core.multiarray.scalar, numpy_core.multiarray._reconstruct,
        np.ndarray, np.dtype,
        (_history_buffer_getattr, 'builtins.getattr'),
    ]
    # numpy>=1.25 pickles dtypes by their class (np.dtypes.Float64DType, ...).
    allowed += [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith('DType')]
    return allowed


SAFE_GLOBALS = _safe_globals()
_UNSUPPORTED = re.compile(r'GLOBAL ([\w.]+(?:\([^)]*\))?)')


def safe_torch_load(path: str, map_location: Union[str, torch.device, None] = 'cpu') -> object:
    """``torch.load`` with ``weights_only=True`` plus mmfusion's allow-list.

    Raises:
        UnsafeCheckpointError: naming ``path`` and the refused global.
    """
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        match = _UNSUPPORTED.search(str(e))
        offender = match.group(1) if match else 'unknown'
        raise UnsafeCheckpointError(
            f'refusing to load checkpoint {path}: it pickles the global `{offender}`, which is '
            'not in mmfusion\'s allow-list of objects mmengine stores. If you trust the file and '
            'the object, allow-list that global with torch.serialization.add_safe_globals.'
        ) from e


def load_state_dict_file(path: str) -> Dict[str, torch.Tensor]:
    """Read a weights file (.safetensors, or a torch pickle read safely) and
    unwrap a ``state_dict`` entry (mmengine and Lightning checkpoints)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'weights file not found: {path}')
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        return load_file(path)
    obj = safe_torch_load(path)
    if isinstance(obj, dict) and isinstance(obj.get('state_dict'), dict):
        obj = obj['state_dict']
    if not isinstance(obj, dict):
        raise TypeError(f'{path} holds a {type(obj).__name__}, expected a state dict')
    return obj


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_from_local(filename: str, map_location=None) -> object:
    """mmengine's local checkpoint scheme, loading through :func:`safe_torch_load`."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return safe_torch_load(filename, map_location=map_location)


class AtomicLocalBackend(LocalBackend):
    """Local file backend whose writes are atomic: the bytes go to a temporary
    file in the target folder, are fsync'ed, then renamed over the target. A
    crash mid-write leaves the previous file intact.

    Select it with ``backend_args=dict(backend='mmfusion_atomic_local')`` (the
    default ``CheckpointHook`` in ``configs/_base_/default_runtime.py`` does).
    """

    def put(self, obj: bytes, filepath: Union[str, os.PathLike]) -> None:
        filepath = str(filepath)
        folder = osp.dirname(osp.abspath(filepath))
        os.makedirs(folder, exist_ok=True)
        fd, tmp_path = tempfile.mkstemp(dir=folder, prefix=f'.{osp.basename(filepath)}.', suffix='.tmp')
        try:
            with os.fdopen(fd, 'wb') as f:
                f.write(obj)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp_path, filepath)
        except BaseException:
            if osp.exists(tmp_path):
                os.remove(tmp_path)
            raise

    def put_text(self, obj: str, filepath: Union[str, os.PathLike], encoding: str = 'utf-8') -> None:
        self.put(obj.encode(encoding), filepath)


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)
