import subprocess
import sys

import pytest

from tests.conftest import GMS_TINY, REPO


def _build_cfg(argv):
    sys.path.insert(0, f'{REPO}/tools')
    try:
        import train
    finally:
        sys.path.pop(0)
    sys.argv = ['train.py', *argv]
    return train.build_cfg(train.parse_args())


def test_cfg_options_amp_resume_and_auto_scale_lr():
    cfg = _build_cfg([GMS_TINY, '--cfg-options', 'train_cfg.max_iters=7',
                      'model.mapping_net.base_channels=16', '--amp', '--resume', '--auto-scale-lr',
                      '--work-dir', '/tmp/x'])
    assert cfg.train_cfg.max_iters == 7 and cfg.model.mapping_net.base_channels == 16
    assert cfg.optim_wrapper.type == 'CPUAmpOptimWrapper'
    assert cfg.resume is True and cfg.load_from is None
    assert cfg.auto_scale_lr.enable and cfg.work_dir == '/tmp/x'
    cfg = _build_cfg([GMS_TINY, '--resume', 'some/iter_10.pth'])
    assert cfg.resume is True and cfg.load_from == 'some/iter_10.pth'
    assert cfg.work_dir.endswith('work_dirs/gms_kl-f4-tiny_1xb8-800it_synth-lesion')


def test_unknown_type_from_the_command_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, 'tools/train.py', GMS_TINY, '--work-dir', str(tmp_path),
         '--cfg-options', 'model.vae.type=DiffuserKLVae'],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "unknown type 'DiffuserKLVae' in the 'model' registry (scope 'mmfusion')" in proc.stderr
    assert 'DiffusersKLVAE' in proc.stderr


@pytest.mark.parametrize('launcher', ['slurm', 'mpi'])
def test_gpu_only_launchers_fail_clearly_on_cpu(launcher):
    import torch
    if torch.cuda.is_available():
        pytest.skip('GPU present')
    with pytest.raises(RuntimeError, match='needs GPUs'):
        _build_cfg([GMS_TINY, '--launcher', launcher])
