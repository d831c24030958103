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
    runner = Runner.from_cfg(gms_cfg)
    runner.train()
    assert 'iter_2.pth' in written and 'iter_4.pth' in written

    # The runner saving over iter_4.pth again, killed once the new bytes are
    # partly on disk: the previous iter_4.pth stays, loadable, and nothing else.
    files = sorted(os.listdir(runner.work_dir))
    monkeypatch.setattr(os, 'fsync', _killed)
    name, param = next(runner.model.named_parameters())
    saved = param.detach().clone()
    param.data.add_(1.0)
    with pytest.raises(KeyboardInterrupt):
        runner.save_checkpoint(runner.work_dir, 'iter_4.pth')
    assert sorted(os.listdir(runner.work_dir)) == files
    ckpt = safe_torch_load(os.path.join(runner.work_dir, 'iter_4.pth'))
    assert ckpt['meta']['iter'] == 4
    assert torch.equal(ckpt['state_dict'][name], saved)


def _killed(*args, **kwargs):
    raise KeyboardInterrupt('killed mid-write')


class ReachAround:
    """getattr is allowed only for HistoryBuffer's statistics methods."""

    def __reduce__(self):
        return (getattr, (HistoryBuffer, '__init__'))


def test_getattr_beyond_history_buffer_statistics_is_refused(tmp_path):
    path = tmp_path / 'getattr.pth'
    torch.save({'x': ReachAround()}, path)
    with pytest.raises(UnsafeCheckpointError, match="getattr\\('HistoryBuffer', '__init__'\\)"):
        safe_torch_load(str(path))


# -- state-dict helpers shared by the encoder wrappers -------------------------
def test_load_state_dict_file_unwraps_containers_and_ddp_prefix(tmp_path):
    from mmfusion.utils import load_state_dict_file
    weights = {'a.weight': torch.ones(2), 'b.bias': torch.zeros(1)}
    layouts = {
        'plain': weights,
        'mmengine': dict(meta=dict(epoch=1), state_dict=weights),
        'fairseq': dict(model=weights, cfg=dict(model=dict(_name='x')), args=None),
        'point_mae': dict(base_model={f'module.{k}': v for k, v in weights.items()}, epoch=3),
        'deepspeed': dict(module=weights),
        'nested': dict(state_dict=dict(model=weights)),
    }
    for name, obj in layouts.items():
        torch.save(obj, tmp_path / f'{name}.pth')
        loaded = load_state_dict_file(str(tmp_path / f'{name}.pth'))
        assert sorted(loaded) == sorted(weights), name
    # 'module.' is stripped only when every key has it (DDP), not from one key.
    mixed = {'module.x': torch.ones(1), 'y': torch.ones(1)}
    torch.save(mixed, tmp_path / 'mixed.pth')
    assert sorted(load_state_dict_file(str(tmp_path / 'mixed.pth'))) == ['module.x', 'y']
    torch.save([torch.ones(1)], tmp_path / 'list.pth')
    with pytest.raises(TypeError, match='list.pth holds a list'):
        load_state_dict_file(str(tmp_path / 'list.pth'))


def test_select_prefix():
    from mmfusion.utils import select_prefix
    sd = {'backbone.w': torch.ones(1), 'head.w': torch.zeros(1)}
    assert select_prefix(sd, None, 'x.pth', 'Enc') is sd
    assert list(select_prefix(sd, 'backbone.', 'x.pth', 'Enc')) == ['w']
    with pytest.raises(KeyError, match=r"Enc: no key in x\.pth starts with prefix 'neck\.'.*"
                                       r"backbone\.w"):
        select_prefix(sd, 'neck.', 'x.pth', 'Enc')


def test_load_strict_names_file_and_keys():
    from mmfusion.utils import load_strict
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3))
    good = {k: v.clone() + 1 for k, v in model.state_dict().items()}
    assert load_strict(model, dict(good), 'w.pth', 'Enc') == []
    assert torch.equal(model[0].weight, good['0.weight'])
    bad = {k: v for k, v in good.items() if k != '0.bias'}
    bad['extra'] = torch.zeros(1)
    with pytest.raises(RuntimeError, match=r"Enc: checkpoint w\.pth does not fit.*1 missing keys "
                                           r"\['0\.bias'\], 1 unexpected keys \['extra'\]; hint"):
        load_strict(model, bad, 'w.pth', 'Enc', hint='hint')
    shaped = dict(good, **{'0.weight': torch.zeros(4, 2)})
    with pytest.raises(RuntimeError, match=r'1 shape mismatches.*0\.weight: \(4, 2\) vs \(3, 2\)'):
        load_strict(model, shaped, 'w.pth', 'Enc')
    # Allowed-missing keys keep the module's values and are returned.
    partial = {k: v for k, v in good.items() if not k.startswith('1.')}
    kept = load_strict(model, partial, 'w.pth', 'Enc', may_miss=lambda k: k.startswith('1.'))
    # (torch's BatchNorm load hook fills a missing num_batches_tracked itself.)
    assert kept == ['1.bias', '1.running_mean', '1.running_var', '1.weight']
    assert torch.equal(model[1].weight, good['1.weight'])  # kept from the earlier load
    # Long key lists are capped, with a count of the rest.
    wide = torch.nn.ModuleList([torch.nn.Linear(1, 1) for _ in range(30)])
    with pytest.raises(RuntimeError, match=r'60 missing keys \[.*\.\.\. 50 more'):
        load_strict(wide, {}, 'w.pth', 'Enc')


def test_importing_mmfusion_changes_nothing_in_mmengine_until_register_all_modules():
    """The safe loader and the atomic backend are installed in one place."""
    import subprocess
    import sys
    code = '''
from mmengine.fileio.backends import backends
from mmengine.runner import CheckpointLoader
from mmengine._strategy import DeepSpeedStrategy, FSDPStrategy
import mmfusion, mmfusion.utils, mmfusion.models
from mmfusion.utils.checkpoint import ATOMIC_BACKEND, load_from_local
from mmfusion.utils.checkpoint import AtomicLocalBackend
assert ATOMIC_BACKEND not in backends
assert backends['local'] is not AtomicLocalBackend
assert CheckpointLoader._schemes[''] is not load_from_local
save = FSDPStrategy.save_checkpoint
assert not hasattr(save, 'mmfusion_atomic')
from mmfusion.utils import register_all_modules
register_all_modules()
register_all_modules()
assert FSDPStrategy.save_checkpoint.mmfusion_atomic and DeepSpeedStrategy.save_checkpoint.mmfusion_atomic
assert FSDPStrategy.save_checkpoint.__wrapped__ is save  # wrapped once
assert ATOMIC_BACKEND in backends
assert backends['local'] is AtomicLocalBackend
assert CheckpointLoader._schemes[''] is load_from_local
print('ok')
'''
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == 'ok', out.stderr[-2000:]


@pytest.mark.parametrize('umask, mode', [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_checkpoints_get_the_mode_the_umask_gives(gms_cfg, tmp_path, umask, mode):
    from mmengine.runner import Runner
    gms_cfg.train_cfg.max_iters = 2
    previous = os.umask(umask)
    try:
        Runner.from_cfg(gms_cfg).train()
        # the converters' command line writes through the same path
        from mmfusion.utils.key_mapping import ConversionReport, converter_main
        src = tmp_path / 'official.pth'
        torch.save({'w': torch.ones(2)}, src)
        converter_main(lambda sd: (sd, ConversionReport()), 'test', [str(src),
                                                                     str(tmp_path / 'out.pth')])
    finally:
        os.umask(previous)
    for path in (tmp_path / 'work' / 'iter_2.pth', tmp_path / 'out.pth'):
        assert os.stat(path).st_mode & 0o777 == mode, path


def test_fsdp_strategy_checkpoints_are_atomic(tmp_path, monkeypatch):
    """mmengine's FSDPStrategy.save_checkpoint (full state dict, rank 0):
    after register_all_modules it writes through atomic_checkpoint_path, so
    a write killed midway leaves the previous checkpoint loadable and no
    partial file."""
    from mmengine._strategy import FSDPStrategy
    from mmengine.fileio import get_file_backend
    assert isinstance(get_file_backend(str(tmp_path / 'x.pth')), AtomicLocalBackend)
    strategy = FSDPStrategy.__new__(FSDPStrategy)  # its save path, without a process group
    strategy._seed = 0
    monkeypatch.setattr(strategy, '_is_full_state_dict', lambda: True, raising=False)
    weights = {'w': torch.zeros(3)}
    monkeypatch.setattr(strategy, 'model_state_dict', lambda: dict(weights), raising=False)
    path = tmp_path / 'iter_2.pth'
    strategy.save_checkpoint(str(path), save_optimizer=False, save_param_scheduler=False)
    assert torch.equal(safe_torch_load(str(path))['state_dict']['w'], torch.zeros(3))

    weights['w'] = torch.ones(3)
    monkeypatch.setattr(os, 'fsync', _killed)  # the new bytes are partly written
    with pytest.raises(KeyboardInterrupt):
        strategy.save_checkpoint(str(path), save_optimizer=False, save_param_scheduler=False)
    assert torch.equal(safe_torch_load(str(path))['state_dict']['w'], torch.zeros(3))
    assert os.listdir(tmp_path) == ['iter_2.pth']


def _fsdp_strategy(monkeypatch, full: bool, weights: dict):
    """mmengine's FSDPStrategy's save path, without a process group (rank 0 of 1)."""
    from mmengine._strategy import FSDPStrategy
    strategy = FSDPStrategy.__new__(FSDPStrategy)
    strategy._seed = 0
    monkeypatch.setattr(strategy, '_is_full_state_dict', lambda: full, raising=False)
    monkeypatch.setattr(strategy, 'model_state_dict', lambda: dict(weights), raising=False)
    return strategy


def test_sharded_fsdp_checkpoint_folders_are_swapped_in_whole(tmp_path, monkeypatch):
    """state_dict_cfg='local': every rank writes rankN.pth into a folder named
    like the checkpoint. The folder is written aside and swapped in only when
    complete, with the mode the umask gives a new folder."""
    weights = {'w': torch.zeros(3)}
    strategy = _fsdp_strategy(monkeypatch, False, weights)
    path = tmp_path / 'iter_2.pth'
    previous = os.umask(0o027)
    try:
        strategy.save_checkpoint(str(path), save_optimizer=False, save_param_scheduler=False)
    finally:
        os.umask(previous)
    assert os.listdir(tmp_path) == ['iter_2.pth'] and os.listdir(path) == ['rank0.pth']
    assert os.stat(path).st_mode & 0o777 == 0o750
    assert os.stat(path / 'rank0.pth').st_mode & 0o777 == 0o640

    # Killed after part of the new folder is written: the previous folder stays.
    weights['w'] = torch.ones(3)
    original, calls = AtomicLocalBackend.put, []

    def put_then_die(self, obj, filepath):
        calls.append(filepath)
        if len(calls) > 1:
            raise KeyboardInterrupt('killed mid-write')
        original(self, obj, filepath)

    monkeypatch.setattr(AtomicLocalBackend, 'put', put_then_die)
    with pytest.raises(KeyboardInterrupt):
        strategy.save_checkpoint(str(path), save_optimizer=False, save_param_scheduler=False)
    assert len(calls) == 2 and '.iter_2.pth.partial' in str(calls[0])
    assert os.listdir(tmp_path) == ['iter_2.pth'] and os.listdir(path) == ['rank0.pth']
    assert torch.equal(safe_torch_load(str(path / 'rank0.pth'))['state_dict']['w'], torch.zeros(3))

    # A complete save replaces the previous folder.
    monkeypatch.setattr(AtomicLocalBackend, 'put', original)
    strategy.save_checkpoint(str(path), save_optimizer=False, save_param_scheduler=False)
    assert os.listdir(tmp_path) == ['iter_2.pth'] and os.listdir(path) == ['rank0.pth']
    assert torch.equal(safe_torch_load(str(path / 'rank0.pth'))['state_dict']['w'], torch.ones(3))


class _FakeDeepSpeedEngine:
    """Writes a folder as DeepSpeed's engine.save_checkpoint does (plain
    torch.save of each file into save_dir/tag), optionally killed halfway."""

    def __init__(self):
        self.die = False

    def save_checkpoint(self, save_dir, tag, client_state, save_latest, **kwargs):
        folder = os.path.join(save_dir, tag)
        os.makedirs(folder, exist_ok=True)
        torch.save(dict(module={'w': torch.full((3,), float(client_state['step']))},
                        **client_state), os.path.join(folder, 'mp_rank_00_model_states.pt'))
        with open(os.path.join(folder, 'zero_pp_rank_0_mp_rank_00_optim_states.pt'), 'wb') as f:
            f.write(b'partial optimizer sta')
            if self.die:
                raise KeyboardInterrupt('killed mid-write')
            f.write(b'te')


def test_deepspeed_checkpoint_folders_are_swapped_in_whole(tmp_path, monkeypatch):
    """DeepSpeedStrategy with save_optimizer=True lets DeepSpeed write a
    folder itself (deepspeed is not installed here: a stand-in engine)."""
    import types

    import mmengine._strategy.deepspeed as mmengine_deepspeed
    from mmengine._strategy import DeepSpeedStrategy
    monkeypatch.setattr(mmengine_deepspeed, 'deepspeed', types.SimpleNamespace(__version__='0.14.0'),
                        raising=False)
    strategy = DeepSpeedStrategy.__new__(DeepSpeedStrategy)
    strategy._seed, strategy.exclude_frozen_parameters = 0, False
    strategy.model = _FakeDeepSpeedEngine()
    path = tmp_path / 'iter_2.pth'
    files = ['mp_rank_00_model_states.pt', 'zero_pp_rank_0_mp_rank_00_optim_states.pt']
    previous = os.umask(0o022)
    try:
        strategy.save_checkpoint(str(path), save_param_scheduler=False,
                                 extra_ckpt=dict(step=1))
    finally:
        os.umask(previous)
    assert os.listdir(tmp_path) == ['iter_2.pth'] and sorted(os.listdir(path)) == files
    assert os.stat(path).st_mode & 0o777 == 0o755

    strategy.model.die = True
    with pytest.raises(KeyboardInterrupt):
        strategy.save_checkpoint(str(path), save_param_scheduler=False, extra_ckpt=dict(step=2))
    assert os.listdir(tmp_path) == ['iter_2.pth'] and sorted(os.listdir(path)) == files
    model_states = torch.load(path / files[0], weights_only=False)
    assert model_states['step'] == 1 and torch.equal(model_states['module']['w'], torch.ones(3))
    assert (path / files[1]).read_bytes() == b'partial optimizer state'
