from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmfusion.registry import HOOKS


@HOOKS.register_module()
class TorchRNGStateHook(Hook):
    """Save torch's RNG states in checkpoints and restore them on resume, so a
    resumed run draws the same random numbers (posterior sampling, dropout,
    noise) as an uninterrupted one.

    mmengine re-seeds on resume and saves no RNG state. Only torch's states
    are restored: numpy's and Python's are consumed by the data pipeline,
    which mmengine replays on resume (it advances the dataloader past the
    trained iterations), so they already match. The states are applied at the
    first training iteration after that replay.
    """

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._pending: Optional[dict] = None

    def before_save_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        state = dict(torch=torch.get_rng_state())
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state['cuda'] = torch.cuda.get_rng_state_all()
        checkpoint['rng_state'] = state

    def after_load_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        self._pending = checkpoint.get('rng_state')

    def before_train_iter(self, runner: Runner, batch_idx: int, data_batch=None) -> None:
        if self._pending is None:
            return
        torch.set_rng_state(self._pending['torch'])
        if 'cuda' in self._pending and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(self._pending['cuda'])
        self._pending = None
