"""A progress bar with ETA over the test (or validation) loop."""
import sys
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.utils import ProgressBar

from mmfusion.registry import HOOKS


@HOOKS.register_module()
class ProgressBarHook(Hook):
    """mmengine's :class:`ProgressBar` (batches done, rate, ETA) over each
    test epoch and, with ``val=True``, each validation epoch, on the main
    process. It writes to stderr: ``tools/test.py`` keeps stdout for its JSON
    metrics line. The LoggerHook's periodic lines are unaffected.

    Args:
        val: also show the bar during validation.
    """
    priority = 'VERY_LOW'

    def __init__(self, val: bool = False) -> None:
        self.val = val
        self._bar: Optional[ProgressBar] = None

    def _start(self, runner, loader) -> None:
        if is_main_process():
            self._bar = ProgressBar(len(loader), file=sys.stderr)

    def _step(self) -> None:
        if self._bar is not None:
            self._bar.update()

    def _end(self) -> None:
        if self._bar is not None:
            print(file=sys.stderr, flush=True)
            self._bar = None

    def before_test_epoch(self, runner) -> None:
        self._start(runner, runner.test_dataloader)

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._step()

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._end()

    def before_val_epoch(self, runner) -> None:
        if self.val:
            self._start(runner, runner.val_dataloader)

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._step()

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._end()
