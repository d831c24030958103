import time
from typing import Optional

import torch
from mmengine.hooks import Hook

from mmfusion.registry import HOOKS


@HOOKS.register_module()
class ThroughputHook(Hook):
    """Training throughput after a warm-up, and peak GPU memory, for benchmarks.

    Times the wall clock from the start of iteration ``warmup`` to the end of
    training (CUDA synchronised at both ends) and reads the peak CUDA memory
    allocated over the same span. After training: ``iters_per_s`` and
    ``peak_memory_mib`` (None on CPU).

    Args:
        warmup (int): Untimed iterations first (allocator, autotuning, caches).
    """

    priority = 'VERY_LOW'

    def __init__(self, warmup: int = 5) -> None:
        self.warmup = warmup
        self.iters_per_s: Optional[float] = None
        self.peak_memory_mib: Optional[float] = None

    @staticmethod
    def _sync() -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        # `>=`: a resumed run may start past the warm-up.
        if runner.iter >= self.warmup and not hasattr(self, '_start'):
            self._sync()
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            self._start_iter = runner.iter
            self._start = time.perf_counter()

    def after_train(self, runner) -> None:
        if not hasattr(self, '_start'):
            raise RuntimeError(f'ThroughputHook: no iteration ran after the {self.warmup} warm-up '
                               'ones; give more iterations than warm-up ones')
        self._sync()
        self.iters_per_s = (runner.iter - self._start_iter) / (time.perf_counter() - self._start)
        if torch.cuda.is_available():
            self.peak_memory_mib = torch.cuda.max_memory_allocated() / 2**20
