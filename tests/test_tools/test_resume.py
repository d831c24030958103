import copy
import os.path as osp

import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

from tests.conftest import tiny_gms_cfg


class Crash(RuntimeError):
    pass


class CrashAt(Hook):
    priority = 'LOWEST'  # after the checkpoint hook has saved

    def __init__(self, at: int) -> None:
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.at:
            raise Crash(f'stopped at iteration {self.at}')


def _params(runner):
    return {k: v.detach().clone() for k, v in runner.model.state_dict().items()}


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path):
    total, stop = 6, 2
    full = Runner.from_cfg(tiny_gms_cfg(str(tmp_path / 'full'), max_iters=total))
    full.train()
    expected = _params(full)

    cfg = tiny_gms_cfg(str(tmp_path / 'resumed'), max_iters=total)
    interrupted = Runner.from_cfg(copy.deepcopy(cfg))
    interrupted.register_hook(CrashAt(stop))
    try:
        interrupted.train()
    except Crash:
        pass
    assert osp.isfile(tmp_path / 'resumed' / f'iter_{stop}.pth')
    # Not yet equal: the interrupted model saw fewer iterations.
    assert any(not torch.equal(v, expected[k]) for k, v in _params(interrupted).items())

    cfg.resume = True  # what `tools/train.py --resume` sets: latest checkpoint in work_dir
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    assert resumed.iter == total
    got = _params(resumed)
    assert got.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0, msg=key)
