"""Safe checkpoint loading, state-dict unwrapping and strict loading, and
atomic checkpoint writing.

torch>=2.6 loads with ``weights_only=True``, which refuses the Python objects
mmengine pickles into checkpoints (``HistoryBuffer``, numpy scalars, ...), so
``resume=True`` fails out of the box. Turning ``weights_only`` off would let any
checkpoint run code; instead the exact globals mmengine stores are allow-listed
and everything else is refused with an error naming the file and the global.

Nothing here is installed on import: :func:`register_checkpoint_io` (called by
``register_all_modules``) routes mmengine's local checkpoint loading through
:func:`safe_torch_load` and all of its checkpoint writing (the runner's files,
the FSDP/DeepSpeed/ColossalAI strategies' files and folders) through
:func:`publish_checkpoint`: written aside, then renamed into place, with the
mode the umask gives a new file.
"""
import functools
import os
import os.path as osp
import pickle
import re
import shutil
import tempfile
from collections import OrderedDict
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

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
    from mmengine.config.config import ConfigDict
    from mmengine.logging.history_buffer import HistoryBuffer
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


def _fsync(path: str) -> None:
    """Flush ``path`` (a file, or a folder's entries) to disk."""
    is_dir = osp.isdir(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if is_dir:  # folders cannot be opened everywhere
            return
        raise
    try:
        os.fsync(fd)
    except OSError:  # nor fsync'ed on every file system
        if not is_dir:
            raise
    finally:
        os.close(fd)


def _remove(path: str) -> None:
    if osp.isdir(path) and not osp.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif osp.lexists(path):
        os.remove(path)


def publish_checkpoint(tmp_path: str, filepath: str) -> None:
    """Move a finished checkpoint, a file or a folder (DeepSpeed's, sharded
    FSDP's), from ``tmp_path`` (a sibling of ``filepath``) to ``filepath``.

    Everything is fsync'ed first, and ``tmp_path`` gets the mode a plain
    ``open(..., 'w')`` / ``os.mkdir`` would give (``0o666``/``0o777`` minus
    the umask; ``mkstemp``/``mkdtemp`` start at ``0o600``/``0o700``), so
    teammates can read checkpoints on a shared cluster. A file replaces the
    previous file in one ``os.replace``; a folder (which a rename cannot put
    over a non-empty folder) is swapped in by moving the previous checkpoint
    aside, renaming the new one into place and only then deleting the
    previous one: until the swap, ``filepath`` is the previous, loadable
    checkpoint (a crash between the two renames leaves it in
    ``.{name}.*.old/ckpt`` next to ``filepath``).
    """
    is_dir = osp.isdir(tmp_path) and not osp.islink(tmp_path)
    if is_dir:
        for root, dirs, files in os.walk(tmp_path):
            for name in files:
                _fsync(osp.join(root, name))
            _fsync(root)
    else:
        _fsync(tmp_path)
    os.chmod(tmp_path, (0o777 if is_dir else 0o666) & ~current_umask())
    folder = osp.dirname(osp.abspath(filepath))
    if (osp.isdir(filepath) and not osp.islink(filepath)) or (is_dir and osp.lexists(filepath)):
        previous = tempfile.mkdtemp(dir=folder, prefix=f'.{osp.basename(filepath)}.', suffix='.old')
        previous_ckpt = osp.join(previous, 'ckpt')
        os.rename(filepath, previous_ckpt)
        os.rename(tmp_path, filepath)
        shutil.rmtree(previous, ignore_errors=True)
    else:
        os.replace(tmp_path, filepath)
    _fsync(folder)


class AtomicLocalBackend(LocalBackend):
    """Local file backend whose writes are atomic: the bytes go to a temporary
    file in the target folder, then :func:`publish_checkpoint` renames it over
    the target (after an fsync, with the mode the umask gives a new file). A
    crash mid-write leaves the previous file intact.

    :func:`register_checkpoint_io` makes it mmengine's backend for every local
    path, so every checkpoint file (the runner's ``CheckpointHook``, the
    converters) is written this way; it can also be named explicitly with
    ``backend_args=dict(backend='mmfusion_atomic_local')``. Checkpoints that
    strategies write themselves go through :func:`atomic_checkpoint_path`.
    """

    def put(self, obj: bytes, filepath: Union[str, os.PathLike]) -> None:
        filepath = str(filepath)
        folder = osp.dirname(osp.abspath(filepath))
        os.makedirs(folder, exist_ok=True)
        fd, tmp_path = tempfile.mkstemp(dir=folder, prefix=f'.{osp.basename(filepath)}.', suffix='.tmp')
        try:
            with os.fdopen(fd, 'wb') as f:
                f.write(obj)
            publish_checkpoint(tmp_path, filepath)
        except BaseException:
            _remove(tmp_path)
            raise

    def put_text(self, obj: str, filepath: Union[str, os.PathLike], encoding: str = 'utf-8') -> None:
        self.put(obj.encode(encoding), filepath)


@contextmanager
def atomic_checkpoint_path(filepath: Union[str, os.PathLike]) -> Iterator[str]:
    """Where a distributed strategy should write the checkpoint ``filepath``
    (a file or a folder, by one rank or by all), so that it appears at
    ``filepath`` only once complete: a sibling temporary path, published
    with :func:`publish_checkpoint` by rank 0 after every rank is done.

    Collective: every rank enters it with the same ``filepath`` (as every
    rank calls ``FlexibleRunner.save_checkpoint``); the ranks share the
    work dir's file system, as mmengine's strategies already assume. If the
    write fails, this rank's exception propagates, ``filepath`` keeps the
    previous checkpoint and rank 0 removes the temporary path (a leftover
    of a killed run is removed by the next save to the same path).
    """
    from mmengine.dist import barrier, is_main_process
    filepath = osp.abspath(str(filepath))
    tmp_path = osp.join(osp.dirname(filepath), f'.{osp.basename(filepath)}.partial')
    if is_main_process():
        os.makedirs(osp.dirname(filepath), exist_ok=True)
        _remove(tmp_path)
    barrier()
    try:
        yield tmp_path
    except BaseException:
        if is_main_process():
            _remove(tmp_path)
        raise
    barrier()
    if is_main_process() and osp.lexists(tmp_path):
        publish_checkpoint(tmp_path, filepath)
    barrier()  # no rank goes on (e.g. to load it) before it is in place


def _atomic_strategy_save(save_checkpoint: Callable) -> Callable:
    """A strategy's ``save_checkpoint``, writing through :func:`atomic_checkpoint_path`."""

    @functools.wraps(save_checkpoint)
    def atomic_save_checkpoint(self, filename: str, **kwargs) -> None:
        with atomic_checkpoint_path(filename) as tmp_path:
            save_checkpoint(self, tmp_path, **kwargs)

    atomic_save_checkpoint.mmfusion_atomic = True
    return atomic_save_checkpoint


def _self_writing_strategies() -> List[type]:
    """mmengine's strategies whose checkpoints are not one file put through
    the file backend: FSDP (a folder of per-rank files unless
    ``state_dict_cfg='full'``), DeepSpeed (DeepSpeed's own folder unless
    ``save_optimizer=False``) and ColossalAI (a folder)."""
    import mmengine._strategy as strategies
    return [getattr(strategies, name) for name in
            ('FSDPStrategy', 'DeepSpeedStrategy', 'ColossalAIStrategy') if hasattr(strategies, name)]


def register_checkpoint_io() -> None:
    """Route mmengine's checkpoint IO through mmfusion:

    * local checkpoints load through :func:`safe_torch_load`;
    * every local file is written through :class:`AtomicLocalBackend` (also
      known as ``backend='mmfusion_atomic_local'``): it replaces mmengine's
      local backend, which the runner and ``save_checkpoint(state, filename)``
      without backend arguments resolve to;
    * the strategies that write checkpoints themselves (FSDP, DeepSpeed,
      ColossalAI under ``FlexibleRunner``) save into the temporary path of
      :func:`atomic_checkpoint_path`, published when complete.

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
    for strategy in _self_writing_strategies():
        save = strategy.save_checkpoint
        if not getattr(save, 'mmfusion_atomic', False):
            strategy.save_checkpoint = _atomic_strategy_save(save)
