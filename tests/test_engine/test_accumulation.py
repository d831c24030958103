"""Gradient accumulation and clipping from the config (mmengine's
``accumulative_counts`` and ``clip_grad``), also under CPU bf16 autocast."""
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

from tests.conftest import split_invariant_gms_cfg


class Snapshot(Hook):
    """The weights training starts from (after init_weights)."""

    def before_train(self, runner) -> None:
        self.state = {k: v.clone() for k, v in runner.model.state_dict().items()}


def _train(tmp_path, name, batch_size, iters, **optim):
    cfg = split_invariant_gms_cfg(str(tmp_path / name), batch_size, max_iters=iters)
    cfg.optim_wrapper.update(optim)
    runner = Runner.from_cfg(cfg)
    snapshot = Snapshot()
    runner.register_hook(snapshot)
    runner.train()
    return snapshot.state, runner


@pytest.mark.parametrize('wrapper', ['OptimWrapper', 'CPUAmpOptimWrapper'])
def test_two_accumulated_half_batches_equal_one_full_batch_with_clipping(tmp_path, wrapper):
    # A max_norm well below the gradient norm, so clipping changes the step;
    # it must clip the accumulated gradient, not each half.
    clip = dict(max_norm=1.0)
    before, full = _train(tmp_path, 'full', 4, 1, type=wrapper, clip_grad=clip)
    _, accumulated = _train(tmp_path, 'acc', 2, 2, type=wrapper, clip_grad=clip,
                            accumulative_counts=2)
    _, unclipped = _train(tmp_path, 'noclip', 4, 1, type=wrapper)
    tol = dict(rtol=0, atol=1e-6) if wrapper == 'OptimWrapper' else dict(rtol=0, atol=2e-4)
    moved = []
    for key, value in full.model.state_dict().items():
        torch.testing.assert_close(accumulated.model.state_dict()[key], value, msg=key, **tol)
        if key.startswith('mapping_net.') and value.is_floating_point():
            moved.append((value - before[key]).abs().max().item())
            # Clipping shrank the step.
            step = (value - before[key]).norm()
            assert step < 0.9 * (unclipped.model.state_dict()[key] - before[key]).norm(), key
    assert max(moved) > 20 * tol['atol']
