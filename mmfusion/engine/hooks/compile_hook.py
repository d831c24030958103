"""Compiled validation/test steps and the compile time, for ``--compile``."""
import json
import os.path as osp
import statistics
import time
from typing import Dict, List, Optional

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmfusion.registry import HOOKS
from mmfusion.utils.compile import (
    compile_method,
    compile_options,
    exclude_optimizer_step,
    prepare_for_compile,
)


@HOOKS.register_module()
class CompileHook(Hook):
    """``torch.compile`` where mmengine does not, and how long it took.

    With ``cfg.compile`` set (``tools/train.py`` / ``tools/test.py
    --compile`` add this hook):

    * ``val_step`` / ``test_step`` are compiled with the options of
      ``cfg.compile`` when their loop first starts: mmengine 0.10.7 compiles
      ``train_step`` only (``Runner._maybe_compile``, inside ``train()``), so
      validation, ``Runner.val()`` and ``Runner.test()`` would run eagerly.
    * the methods a model lists in ``compile_exclude`` are wrapped with
      ``torch.compiler.disable`` before anything is compiled, and raw Python
      inputs (texts) are passed as opaque :class:`HostSequence` objects
      (:func:`~mmfusion.utils.compile.prepare_for_compile`).
    * every train/val/test iteration is timed (CUDA synchronised). After the
      first iteration of a loop, its time is logged (it includes compiling);
      at the end of the loop, the steady time (median of the iterations after
      the first) and the compile time estimate: the time of all iterations
      above the steady one (recompiles for new shapes included), and dynamo's
      count of compiled graphs after the first iteration and at the end (a
      count that keeps growing means recompiles: shapes or Python values
      that change every batch). The numbers go to the message hub
      (``compile/<loop>``) and to ``<log_dir>/compile_times.json``.

    * the optimizer wrapper's ``update_params`` (backward call, clipping,
      optimizer step) runs outside dynamo unless ``compile_optimizer``
      (:func:`~mmfusion.utils.compile.exclude_optimizer_step` says why); the
      model's forward and backward graphs are compiled either way.

    Args:
        compile_eval: compile ``val_step`` / ``test_step``.
        compile_optimizer: leave the optimizer step inside the compiled
            ``train_step`` (mmengine's own behaviour).
    """

    # After-iteration timing before the logger and checkpoint hooks' work.
    priority = 'VERY_HIGH'

    def __init__(self, compile_eval: bool = True, compile_optimizer: bool = False) -> None:
        self.compile_eval = compile_eval
        self.compile_optimizer = compile_optimizer
        self.times: Dict[str, List[float]] = {}
        self.results: Dict[str, dict] = {}
        self._start: Optional[float] = None
        self._graphs_first: Dict[str, int] = {}

    # -- compiling ---------------------------------------------------------
    @staticmethod
    def _options(runner) -> Optional[dict]:
        return compile_options(runner.cfg.get('compile'))

    def _prepare(self, runner, step: Optional[str]) -> None:
        options = self._options(runner)
        if options is None:
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        excluded = prepare_for_compile(model)
        if excluded:
            runner.logger.info(f'torch.compile: excluded (eager) {", ".join(excluded)}')
        if step is not None and self.compile_eval and compile_method(runner.model, step, options):
            runner.logger.info(f'torch.compile: {step} compiled with {options or "defaults"}; '
                               'its first iterations compile')

    def before_train(self, runner) -> None:
        self._prepare(runner, None)  # mmengine compiles train_step itself
        if self._options(runner) is not None and not self.compile_optimizer and \
                exclude_optimizer_step(runner.optim_wrapper):
            runner.logger.info('torch.compile: the optimizer step runs eagerly (compile_optimizer'
                               '=False); forward and backward are compiled')

    def before_val(self, runner) -> None:
        self._prepare(runner, 'val_step')

    def before_test(self, runner) -> None:
        self._prepare(runner, 'test_step')

    # -- timing ------------------------------------------------------------
    @staticmethod
    def _sync() -> None:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()

    def _begin(self, loop: str) -> None:
        self._sync()
        self._start = time.perf_counter()

    def _end(self, runner, loop: str) -> None:
        if self._start is None:
            return
        self._sync()
        elapsed = time.perf_counter() - self._start
        self._start = None
        times = self.times.setdefault(loop, [])
        times.append(elapsed)
        if len(times) == 1:
            self._graphs_first[loop] = _graph_count()
            runner.logger.info(f'torch.compile: first {loop} iteration took {elapsed:.2f} s '
                               '(compiling included)')

    def _report(self, runner, loop: str) -> None:
        times = self.times.pop(loop, [])
        if not times:
            return
        result = dict(iterations=len(times), first_iter_s=round(times[0], 4),
                      graphs_after_first_iter=self._graphs_first.pop(loop, None),
                      graphs=_graph_count(), graph_breaks=_graph_break_count())
        if len(times) > 1:
            steady = statistics.median(times[1:])
            compile_s = sum(max(0.0, t - steady) for t in times)
            result.update(steady_s_per_iter=round(steady, 4), compile_s=round(compile_s, 2))
            runner.logger.info(
                f'torch.compile: {loop}: first iteration {times[0]:.2f} s, steady '
                f'{steady:.4f} s/iter (median of iterations 2-{len(times)}), compile time '
                f'~{compile_s:.1f} s (time above steady over the {len(times)} iterations, '
                f'recompiles included); dynamo graphs: {result["graphs_after_first_iter"]} after '
                f'the first iteration, {result["graphs"]} now')
        compiled = self._options(runner) is not None
        result['compiled'] = compiled
        self.results[loop] = result
        runner.message_hub.update_info(f'compile/{loop}', result)
        if is_main_process() and getattr(runner, 'log_dir', None):
            with open(osp.join(runner.log_dir, 'compile_times.json'), 'w') as f:
                json.dump(self.results, f, indent=1)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._begin('train')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._end(runner, 'train')

    def after_train(self, runner) -> None:
        self._report(runner, 'train')

    def before_val_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._begin('val')

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._end(runner, 'val')

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._report(runner, 'val')

    def before_test_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._begin('test')

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._end(runner, 'test')

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._report(runner, 'test')


def _graph_count() -> int:
    """Graphs dynamo compiled so far in this process."""
    from torch._dynamo.utils import counters
    return int(counters['stats']['unique_graphs'])


def _graph_break_count() -> int:
    from torch._dynamo.utils import counters
    return int(sum(counters['graph_break'].values()))
