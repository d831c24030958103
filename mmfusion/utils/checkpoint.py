"""Safe checkpoint loading, state-dict unwrapping and strict loading, and
atomic checkpoint writing.

torch>=2.6 loads with ``weights_only=True``, which refuses the Python objects
mmengine pickles into checkpoints (``HistoryBuffer``, numpy scalars, ...), so
``resume=True`` fails out of the box. Turning ``weights_only`` off would let any
checkpoint run code; instead the exact globals mmengine stores are allow-listed
and everything else is refused with an error naming the file and the global.

Nothing here is installed on import: :func:`register_checkpoint_io` (called by
``register_all_modules``) routes mmengine's local checkpoint loading through
:func:`safe_torch_load` and registers the atomic backend.
"""
import os
import os.path as osp
import pickle
import re
import tempfile
from collections import OrderedDict
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.runner import CheckpointLoader
from torch import nn

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
    unwrap it with :func:`unwrap_state_dict`."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'weights file not found: {path}')
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        return unwrap_state_dict(load_file(path), path)
    return unwrap_state_dict(safe_torch_load(path), path)


def read_weights(checkpoint: Union[str, Mapping[str, torch.Tensor]]
                 ) -> Tuple[str, Dict[str, torch.Tensor]]:
    """``(name for messages, state dict)`` of a weights file (read with
    :func:`load_state_dict_file`) or of an already loaded state dict."""
    if isinstance(checkpoint, str):
        return checkpoint, load_state_dict_file(checkpoint)
    return 'the given state dict', dict(checkpoint)


#: Keys under which training code nests the model weights, tried in this order:
#: mmengine / Lightning / open_clip training (``state_dict``), fairseq and
#: generic trainers (``model``), Point-MAE (``base_model``), DeepSpeed (``module``).
STATE_DICT_CONTAINERS = ('state_dict', 'model', 'base_model', 'module')
_DDP_PREFIX = 'module.'


def unwrap_state_dict(obj: object, path: str) -> Dict[str, torch.Tensor]:
    """The flat state dict inside a loaded checkpoint.

    While ``obj`` holds a dict under one of :data:`STATE_DICT_CONTAINERS`,
    that dict is taken instead (a flat state dict maps names to tensors, so a
    dict value is always a container). Then, if *every* key starts with
    ``module.`` (saved from a ``DataParallel``/``DistributedDataParallel``
    wrapper), that prefix is stripped. A ``prefix`` given to an encoder
    (:func:`select_prefix`) applies to the keys after this unwrapping.

    Raises:
        TypeError: ``obj`` (or what it wraps) is not a dict; names ``path``.
    """
    for _ in range(len(STATE_DICT_CONTAINERS)):
        if not isinstance(obj, dict):
            break
        inner = next((obj[k] for k in STATE_DICT_CONTAINERS if isinstance(obj.get(k), dict)),
                     None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, dict):
        raise TypeError(f'{path} holds a {type(obj).__name__}, expected a state dict')
    if obj and all(isinstance(k, str) and k.startswith(_DDP_PREFIX) for k in obj):
        obj = {k[len(_DDP_PREFIX):]: v for k, v in obj.items()}
    return obj


def _head(items: Sequence[str], n: int = 10) -> List[str]:
    """The first ``n`` items, plus a note of how many more there are."""
    items = list(items)
    return items[:n] + ([f'... {len(items) - n} more'] if len(items) > n else [])


def select_prefix(state_dict: Dict[str, torch.Tensor], prefix: Optional[str], path: str,
                  owner: str) -> Dict[str, torch.Tensor]:
    """Keep the keys starting with ``prefix`` and strip it (``None``/``''``:
    everything, unchanged), e.g. ``'backbone.'`` to read an encoder out of an
    mmfusion checkpoint of the model holding it.

    Raises:
        KeyError: no key starts with ``prefix``; names ``owner`` (the class
            loading), ``path``, ``prefix`` and a few keys the file has.
    """
    if not prefix:
        return state_dict
    selected = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    if not selected:
        raise KeyError(f'{owner}: no key in {path} starts with prefix {prefix!r}; '
                       f'{len(state_dict)} keys, e.g. {_head(sorted(state_dict), 5)}')
    return selected


def load_strict(module: nn.Module,
                state_dict: Dict[str, torch.Tensor],
                path: str,
                owner: str,
                hint: str = '',
                adapt: Optional[Callable[[Dict[str, torch.Tensor]], None]] = None,
                may_miss: Optional[Callable[[str], bool]] = None) -> List[str]:
    """``module.load_state_dict`` whose error names ``path`` and lists the
    missing, unexpected and mis-shaped keys (at most 10 of each, with counts).

    Keys are compared after the module's own load hooks ran (e.g. torch's
    conversion of old ``weight_g``/``weight_v`` weight-norm names), as
    ``load_state_dict`` does. Like ``load_state_dict(strict=True)``, a failed
    load may leave the tensors that did fit loaded.

    Args:
        module: the module to load into.
        state_dict: its keys must be exactly ``module.state_dict()``'s.
        path: the file ``state_dict`` came from (for the message).
        owner: the class loading (for the message).
        hint: appended to the message, e.g. which arguments to check.
        adapt: edits ``state_dict`` in place before shapes are compared
            (e.g. resizing a positional embedding to the model's grid).
        may_miss: keys for which it returns True may be absent from
            ``state_dict``; the module keeps its values for them (e.g. fixed
            buffers recomputed from the config).

    Returns:
        The keys that were allowed to be missing and kept their values.

    Raises:
        RuntimeError: the state dict does not fit ``module``.
    """

    def fail(details: List[str]) -> RuntimeError:
        return RuntimeError(f'{owner}: checkpoint {path} does not fit the configured model: '
                            + ', '.join(details) + (f'; {hint}' if hint else ''))

    problems = []
    if adapt is not None:
        try:
            adapt(state_dict)
        except (RuntimeError, ValueError, AssertionError, KeyError) as e:
            problems.append(f'adapting it to the model failed ({e})')
    own = module.state_dict()
    mis_shaped = sorted(k for k, v in state_dict.items()
                        if k in own and tuple(v.shape) != tuple(own[k].shape))
    try:
        result = module.load_state_dict(
            {k: v for k, v in state_dict.items() if k not in mis_shaped}, strict=False)
    except RuntimeError as e:  # mismatches a load hook hid from the check above
        raise fail(problems + [str(e)]) from e
    absent = sorted(k for k in result.missing_keys if k not in mis_shaped)
    kept = [k for k in absent if may_miss is not None and may_miss(k)]
    missing = [k for k in absent if k not in kept]
    unexpected = sorted(result.unexpected_keys)
    if missing:
        problems.append(f'{len(missing)} missing keys {_head(missing)}')
    if unexpected:
        problems.append(f'{len(unexpected)} unexpected keys {_head(unexpected)}')
    if mis_shaped:
        shapes = [f'{k}: {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}'
                  for k in mis_shaped]
        problems.append(f'{len(shapes)} shape mismatches (checkpoint vs model) {_head(shapes)}')
    if problems:
        raise fail(problems)
    return kept


def load_from_local(filename: str, map_location=None) -> object:
    """mmengine's local checkpoint scheme, loading through :func:`safe_torch_load`;
    a ``.safetensors`` file (e.g. from ``tools/model_converters/publish_model.py``)
    becomes ``{'state_dict': ..., 'meta': ...}`` (``meta`` from the header's
    ``mmfusion_meta`` entry when present)."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    if filename.endswith('.safetensors'):
        import json

        from safetensors import safe_open
        from safetensors.torch import load_file
        with safe_open(filename, framework='pt') as f:
            header = f.metadata() or {}
        meta = json.loads(header['mmfusion_meta']) if 'mmfusion_meta' in header else {}
        return dict(state_dict=load_file(filename, device=str(map_location or 'cpu')),
                    meta=meta)
    return safe_torch_load(filename, map_location=map_location)


def current_umask() -> int:
    """The process's file-creation mask (read from /proc where it exists, so
    no other thread ever sees a changed umask)."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class AtomicLocalBackend(LocalBackend):
    """Local file backend whose writes are atomic: the bytes go to a temporary
    file in the target folder, are fsync'ed, then renamed over the target. A
    crash mid-write leaves the previous file intact. The file gets the mode
    a plain ``open(..., 'w')`` would (``0o666`` minus the umask; the
    temporary file starts at ``0o600``), so teammates can read checkpoints
    on a shared cluster.

    :func:`register_checkpoint_io` makes it mmengine's backend for every local
    path, so every checkpoint (the runner's ``CheckpointHook``, FSDP's full
    and per-rank files, the converters) is written this way; it can also be
    named explicitly with ``backend_args=dict(backend='mmfusion_atomic_local')``.
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
            os.chmod(tmp_path, 0o666 & ~current_umask())
            os.replace(tmp_path, filepath)
        except BaseException:
            if osp.exists(tmp_path):
                os.remove(tmp_path)
            raise

    def put_text(self, obj: str, filepath: Union[str, os.PathLike], encoding: str = 'utf-8') -> None:
        self.put(obj.encode(encoding), filepath)


def register_checkpoint_io() -> None:
    """Make mmengine load local checkpoints through :func:`safe_torch_load`
    and write every local file through :class:`AtomicLocalBackend` (also
    known as ``backend='mmfusion_atomic_local'``): mmengine's FSDP strategy
    saves with ``save_checkpoint(state, filename)`` and no backend arguments,
    which resolves to the local backend, so replacing that backend is the one
    place that covers it as well as the runner.

    Called by :func:`mmfusion.utils.register_all_modules`; importing this
    module changes nothing in mmengine. Idempotent.
    """
    from mmengine.fileio import io as mmengine_io
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)
    register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
    # backends built before (cached per prefix and arguments) are rebuilt
    for key in [k for k, v in mmengine_io.backend_instances.items()
                if type(v) is LocalBackend]:
        del mmengine_io.backend_instances[key]
