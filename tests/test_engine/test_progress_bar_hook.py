"""ProgressBarHook: one bar per test (and, optionally, validation) epoch on stderr."""
from types import SimpleNamespace

from mmfusion.engine.hooks import ProgressBarHook


def test_the_bar_counts_the_batches_of_the_loop_on_stderr(capsys):
    runner = SimpleNamespace(test_dataloader=[0, 1, 2], val_dataloader=[0, 1])
    hook = ProgressBarHook()
    hook.before_test_epoch(runner)
    for i in range(3):
        hook.after_test_iter(runner, i)
    hook.after_test_epoch(runner)
    out = capsys.readouterr()
    assert '3/3' in out.err and 'ETA' in out.err and out.out == ''
    # validation only when asked for
    hook.before_val_epoch(runner)
    hook.after_val_iter(runner, 0)
    hook.after_val_epoch(runner)
    assert capsys.readouterr().err == ''
    hook = ProgressBarHook(val=True)
    hook.before_val_epoch(runner)
    for i in range(2):
        hook.after_val_iter(runner, i)
    hook.after_val_epoch(runner)
    assert '2/2' in capsys.readouterr().err
