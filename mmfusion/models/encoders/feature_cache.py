"""On-disk cache of frozen-encoder outputs, one file per sample.

Layout: ``<cache_dir>/<fingerprint>/<sha1(sample_id)[:2]>/<sha1(sample_id)>.safetensors``.
The fingerprint hashes the encoder's weights and the input pipeline, so
changing either starts a new, empty folder. Files are written to a temporary
name and renamed (atomic on POSIX), so several processes (DDP ranks, workers)
may fill the cache concurrently and a reader never sees a half-written file.
safetensors is used instead of torch.save because it loads without unpickling.
"""
import hashlib
import json
import os
import os.path as osp
import tempfile
from typing import Any, Dict, List, Optional, Sequence

import torch
from safetensors import safe_open
from safetensors.torch import save_file

_SEP = '/'


def _flatten(obj: Any, prefix: str, out: Dict[str, torch.Tensor]) -> Any:
    """Nested dict/list/tuple of tensors -> flat dict; returns the structure spec."""
    if torch.is_tensor(obj):
        out[prefix] = obj
        return 'T'
    if isinstance(obj, dict):
        return {k: _flatten(v, f'{prefix}{_SEP}{k}', out) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_flatten(v, f'{prefix}{_SEP}{i}', out) for i, v in enumerate(obj)]
    raise TypeError(f'feature cache stores tensors in dicts/lists, got {type(obj).__name__}')


def _unflatten(spec: Any, prefix: str, flat: Dict[str, torch.Tensor]) -> Any:
    if spec == 'T':
        return flat[prefix]
    if isinstance(spec, dict):
        return {k: _unflatten(v, f'{prefix}{_SEP}{k}', flat) for k, v in spec.items()}
    return [_unflatten(v, f'{prefix}{_SEP}{i}', flat) for i, v in enumerate(spec)]


def split_batch(outputs: Any, batch_size: int) -> List[Any]:
    """Split a nested batch structure into per-sample structures (dim 0)."""
    if torch.is_tensor(outputs):
        if outputs.dim() == 0 or outputs.shape[0] != batch_size:
            raise ValueError(f'cannot cache an output of shape {tuple(outputs.shape)}: every '
                             f'tensor needs the batch ({batch_size}) as its first dimension')
        return list(outputs.unbind(0))
    if isinstance(outputs, dict):
        parts = {k: split_batch(v, batch_size) for k, v in outputs.items()}
        return [type(outputs)((k, parts[k][i]) for k in outputs) for i in range(batch_size)]
    if isinstance(outputs, (list, tuple)):
        parts = [split_batch(v, batch_size) for v in outputs]
        return [type(outputs)(p[i] for p in parts) for i in range(batch_size)]
    raise TypeError(f'feature cache stores tensors in dicts/lists, got {type(outputs).__name__}')


def stack_samples(samples: Sequence[Any], device: torch.device) -> Any:
    """Inverse of :func:`split_batch`."""
    first = samples[0]
    if torch.is_tensor(first):
        return torch.stack(list(samples)).to(device)
    if isinstance(first, dict):
        return {k: stack_samples([s[k] for s in samples], device) for k in first}
    return [stack_samples([s[i] for s in samples], device) for i in range(len(first))]


def encoder_fingerprint(state: Dict[str, torch.Tensor], extra: Any = None) -> str:
    """sha256 over every tensor (name, dtype, shape, bytes) and ``extra`` as JSON."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().reshape(-1)
        digest.update(f'{name}|{tensor.dtype}|{tuple(tensor.shape)}|'.encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b'')
    digest.update(json.dumps(extra, sort_keys=True, default=repr).encode())
    return digest.hexdigest()[:16]


class FeatureCache:
    """Per-sample feature files under ``cache_dir/fingerprint``."""

    def __init__(self, cache_dir: str, fingerprint: str) -> None:
        self.root = osp.join(cache_dir, fingerprint)
        self.fingerprint = fingerprint
        os.makedirs(self.root, exist_ok=True)
        self.hits = 0

    def _path(self, sample_id: str) -> str:
        key = hashlib.sha1(str(sample_id).encode()).hexdigest()
        return osp.join(self.root, key[:2], key + '.safetensors')

    def get(self, sample_id: str) -> Optional[Any]:
        path = self._path(sample_id)
        if not osp.exists(path):
            return None
        with safe_open(path, 'pt') as f:
            spec = json.loads(f.metadata()['spec'])
            flat = {k: f.get_tensor(k) for k in f.keys()}
        self.hits += 1
        return _unflatten(spec, '', flat)

    def put(self, sample_id: str, features: Any) -> None:
        flat: Dict[str, torch.Tensor] = {}
        spec = _flatten(features, '', flat)
        flat = {k: v.detach().cpu().contiguous() for k, v in flat.items()}
        path = self._path(sample_id)
        os.makedirs(osp.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=osp.dirname(path), suffix='.tmp')
        os.close(fd)
        try:
            save_file(flat, tmp, metadata={'spec': json.dumps(spec), 'sample_id': str(sample_id)})
            os.replace(tmp, path)
        except BaseException:
            if osp.exists(tmp):
                os.remove(tmp)
            raise


# torch.compile: excluded, reads per-sample path strings that would be guarded (a recompile a batch).
@torch.compiler.disable
def sample_ids_of(data_samples: Optional[Sequence[Any]]) -> Optional[List[str]]:
    """Cache keys of a batch: each sample's ``sample_id`` (else ``img_path``).

    Returns ``None`` (no caching) when any sample has neither.
    """
    if not data_samples:
        return None
    ids = []
    for sample in data_samples:
        key = sample.metainfo.get('sample_id', sample.metainfo.get('img_path'))
        if key is None:
            return None
        ids.append(str(key))
    return ids
