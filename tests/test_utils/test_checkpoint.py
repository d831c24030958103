import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader

from mmfusion.utils import ATOMIC_BACKEND, UnsafeCheckpointError, safe_torch_load
from mmfusion.utils.checkpoint import AtomicLocalBackend


def _buffer(*values):
    buf = HistoryBuffer()
    for v in values:
        buf.update(v)
    return buf


def test_allow_listed_mmengine_objects_load(tmp_path):
    ckpt = dict(meta=dict(seed=np.int64(3), lr=np.float64(0.1), shape=np.array([1, 2])),
                message_hub=dict(log_scalars={'loss': _buffer(1.0, 2.0)}),
                state_dict={'w': torch.ones(2)})
    path = tmp_path / 'ok.pth'
    torch.save(ckpt, path)
    # torch's own default refuses it, which is the bug mmfusion works around
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    loaded = CheckpointLoader.load_checkpoint(str(path))  # mmengine's path -> mmfusion's loader
    assert loaded['meta']['seed'] == 3 and isinstance(loaded['message_hub']['log_scalars']['loss'],
                                                      HistoryBuffer)


class Evil:
    def __reduce__(self):
        return (os.system, ('echo pwned',))


def test_disallowed_global_fails_naming_file_and_global(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'payload': Evil()}, path)
    with pytest.raises(UnsafeCheckpointError) as err:
        safe_torch_load(str(path))
    assert str(path) in str(err.value)
    assert 'posix.system' in str(err.value) or 'os.system' in str(err.value)
    with pytest.raises(UnsafeCheckpointError):
        CheckpointLoader.load_checkpoint(str(path))


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / 'iter_2.pth'
    backend = AtomicLocalBackend()
    import io
    buf = io.BytesIO()
    torch.save({'state_dict': {'w': torch.zeros(3)}}, buf)
    backend.put(buf.getvalue(), path)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt('killed mid-write')

    monkeypatch.setattr(os, 'fsync', crash)  # after part of the new bytes are written
    buf = io.BytesIO()
    torch.save({'state_dict': {'w': torch.ones(3)}}, buf)
    with pytest.raises(KeyboardInterrupt):
        backend.put(buf.getvalue(), path)
    assert torch.equal(safe_torch_load(str(path))['state_dict']['w'], torch.zeros(3))
    assert os.listdir(tmp_path) == ['iter_2.pth']  # no temp file left behind


def test_runner_checkpoints_go_through_the_atomic_backend(gms_cfg, monkeypatch):
    from mmengine.runner import Runner
    assert gms_cfg.default_hooks.checkpoint.backend_args == dict(backend=ATOMIC_BACKEND)
    written = []
    original = AtomicLocalBackend.put

    def spy(self, obj, filepath):
        written.append(os.path.basename(str(filepath)))
        return original(self, obj, filepath)

    monkeypatch.setattr(AtomicLocalBackend, 'put', spy)
    Runner.from_cfg(gms_cfg).train()
    assert 'iter_2.pth' in written and 'iter_4.pth' in written


class ReachAround:
    """getattr is allowed only for HistoryBuffer's statistics methods."""

    def __reduce__(self):
        return (getattr, (HistoryBuffer, '__init__'))


def test_getattr_beyond_history_buffer_statistics_is_refused(tmp_path):
    path = tmp_path / 'getattr.pth'
    torch.save({'x': ReachAround()}, path)
    with pytest.raises(UnsafeCheckpointError, match="getattr\\('HistoryBuffer', '__init__'\\)"):
        safe_torch_load(str(path))
