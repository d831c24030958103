import subprocess
import sys

import pytest
import torch

from tests.conftest import GMS_TINY, REPO, build_train_cfg


def test_cfg_options_amp_resume_and_auto_scale_lr():
    cfg = build_train_cfg([GMS_TINY, '--cfg-options', 'train_cfg.max_iters=7',
                           'model.mapping_net.base_channels=16', '--amp', '--resume',
                           '--auto-scale-lr', '--work-dir', '/tmp/x'])
    assert cfg.train_cfg.max_iters == 7 and cfg.model.mapping_net.base_channels == 16
    assert cfg.optim_wrapper.type == 'CPUAmpOptimWrapper'
    assert cfg.resume is True and cfg.load_from is None
    assert cfg.auto_scale_lr.enable and cfg.work_dir == '/tmp/x'
    cfg = build_train_cfg([GMS_TINY, '--resume', 'some/iter_10.pth'])
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
        build_train_cfg([GMS_TINY, '--launcher', launcher])


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
    runner = Runner.from_cfg(
        build_train_cfg([cfg_file, '--amp', '--work-dir', str(tmp_path / 'work')]))
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


FSDP_CFG = f'{REPO}/configs/xdecoder/xdecoder_focalt_fsdp-8xb4-50e_coco-panoptic.py'
DEEPSPEED_CFG = f'{REPO}/configs/xdecoder/xdecoder_focalt_deepspeed-8xb4-50e_coco-panoptic.py'


def test_strategy_configs_need_a_launcher_and_run_under_flexible_runner():
    from mmengine.runner import FlexibleRunner, Runner

    from mmfusion.utils.dist import runner_class
    for path in (FSDP_CFG, DEEPSPEED_CFG):
        with pytest.raises(RuntimeError, match='needs several processes'):
            build_train_cfg([path])
    from mmengine.config import Config
    assert runner_class(Config.fromfile(FSDP_CFG)) is FlexibleRunner
    assert runner_class(Config.fromfile(GMS_TINY)) is Runner


def test_gpu_only_strategy_and_sync_bn_outside_ddp_fail_clearly():
    if torch.cuda.is_available():
        pytest.skip('GPU present')
    with pytest.raises(RuntimeError, match='DeepSpeedStrategy needs GPUs'):
        build_train_cfg([DEEPSPEED_CFG, '--launcher', 'pytorch'])
    with pytest.raises(RuntimeError, match='--sync-bn applies to DDP'):
        build_train_cfg([FSDP_CFG, '--launcher', 'pytorch', '--sync-bn', 'torch'])


def test_ddp_wrapper_settings_from_the_model_class(monkeypatch):
    """X-Decoder's task-dependent branches turn on find_unused_parameters; GMS
    keeps DDP's default; CPU DDP uses no device ids; --sync-bn reaches the runner."""
    if torch.cuda.is_available():
        pytest.skip('GPU present: the CPU path is what is tested')
    import torch.distributed as dist

    from mmfusion.registry import MODELS
    # Registry lookups log through mmengine, which asks the (faked) process
    # group for its rank: resolve the models before faking it.
    MODELS.get('XDecoder'), MODELS.get('GMS')
    monkeypatch.setattr(dist, 'is_initialized', lambda: True)  # no process group needed
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('WORLD_SIZE', '1')
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1')
    monkeypatch.setenv('MASTER_PORT', '29500')
    xdec = build_train_cfg([f'{REPO}/configs/xdecoder/xdecoder_focalt_8xb4-50e_coco-panoptic.py',
                       '--launcher', 'pytorch'])
    assert xdec.model_wrapper_cfg == dict(type='MMDistributedDataParallel', broadcast_buffers=False,
                                          find_unused_parameters=True, device_ids=None)
    assert xdec.env_cfg.dist_cfg.backend == 'gloo'
    # mmengine's top-level switch still decides when given: the tiny config,
    # whose every step uses every branch, turns the search off; its stage 1
    # (X-Decoder's parts it does not train) turns it back on.
    xdec = build_train_cfg([f'{REPO}/configs/xdecoder/xdecoder_r18-tiny_2xb8-2300it_synthshapes.py',
                       '--launcher', 'pytorch'])
    assert xdec.model_wrapper_cfg.find_unused_parameters is False
    stage1 = 'region-text-pretrain_r18-tiny_2xb8-1000it_synthshapes.py'
    pre = build_train_cfg([f'{REPO}/configs/xdecoder/{stage1}', '--launcher', 'pytorch'])
    assert pre.model_wrapper_cfg.find_unused_parameters is True
    gms = build_train_cfg([GMS_TINY, '--launcher', 'pytorch', '--sync-bn', 'torch'])
    assert gms.model_wrapper_cfg == dict(type='MMDistributedDataParallel', broadcast_buffers=False,
                                         device_ids=None)
    assert gms.sync_bn == 'torch'
    fsdp = build_train_cfg([FSDP_CFG, '--launcher', 'pytorch'])
    assert fsdp.strategy.model_wrapper.type == 'FusionFSDP'
    assert fsdp.strategy.state_dict_cfg['state_dict_config']['offload_to_cpu'] is False
