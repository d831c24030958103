import torch
from mmengine.runner import Runner

from mmfusion.engine import CPUAmpOptimWrapper


def test_bf16_training_step_on_cpu(gms_cfg):
    gms_cfg.optim_wrapper.type = 'CPUAmpOptimWrapper'
    gms_cfg.train_cfg.max_iters = 1
    runner = Runner.from_cfg(gms_cfg)
    dtypes = []
    runner.model.mapping_net.register_forward_hook(
        lambda m, i, o: dtypes.append(o['out'].dtype) if m.training else None)
    runner.train()
    assert isinstance(runner.optim_wrapper, CPUAmpOptimWrapper)
    assert dtypes == [torch.bfloat16]
    loss = runner.message_hub.get_scalar('train/loss').current()
    assert torch.isfinite(torch.tensor(loss))
    assert all(p.dtype == torch.float32 for p in runner.model.parameters())


def test_enable_amp_picks_the_wrapper_for_this_machine():
    import pytest

    from mmfusion.engine.optim import enable_amp
    if torch.cuda.is_available():
        pytest.skip('GPU present: the CPU choice is what is tested')
    cfg = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1))
    enable_amp(cfg)
    assert cfg == dict(type='CPUAmpOptimWrapper', dtype='bfloat16',
                       optimizer=dict(type='SGD', lr=0.1))
    with pytest.raises(ValueError, match="cannot convert optim_wrapper type 'DeepSpeedOptimWrapper'"):
        enable_amp(dict(type='DeepSpeedOptimWrapper'))
