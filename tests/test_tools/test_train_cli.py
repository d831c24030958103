import subprocess
import sys

import pytest
import torch

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
    if torch.cuda.is_available():
        pytest.skip('GPU present')
    with pytest.raises(RuntimeError, match='needs GPUs'):
        _build_cfg([GMS_TINY, '--launcher', launcher])


def test_amp_training_step_keeps_the_frozen_encoder_in_its_dtype(synthshapes_root, tmp_path):
    """`train.py --amp` on CPU: bf16 autocast, finite loss, and a frozen
    encoder cast once to bf16 (frozen_dtype) is still bf16 afterwards,
    unchanged, while the trainable head stays float32 and moves."""
    from mmengine.runner import Runner

    from mmfusion.engine import CPUAmpOptimWrapper
    from tests.test_models.test_encoders.test_freeze_mechanism import probe_cfg
    cfg = probe_cfg(synthshapes_root, str(tmp_path / 'work'),
                    dict(type='ToyImageEncoder', frozen_dtype='bf16'), max_iters=2)
    cfg_file = str(tmp_path / 'probe.py')
    cfg.dump(cfg_file)
    runner = Runner.from_cfg(_build_cfg([cfg_file, '--amp', '--work-dir', str(tmp_path / 'work')]))
    model = runner.model
    encoder_before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    head_before = model.head.weight.detach().clone()
    head_out = []
    model.head.register_forward_hook(lambda m, i, o: head_out.append(o.dtype) if m.training else None)
    runner.train()

    assert isinstance(runner.optim_wrapper, CPUAmpOptimWrapper)
    assert head_out == [torch.bfloat16] * 2  # the trainable part ran under autocast
    loss = runner.message_hub.get_scalar('train/loss').current()
    assert torch.isfinite(torch.tensor(loss))
    assert all(p.dtype == torch.bfloat16 for p in model.encoder.parameters())
    for key, value in model.encoder.state_dict().items():
        assert value.dtype == encoder_before[key].dtype and torch.equal(value, encoder_before[key]), key
    assert model.head.weight.dtype == torch.float32
    assert not torch.equal(model.head.weight, head_before)
