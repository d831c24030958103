"""`tools/train.py --vis-backend tensorboard` and `analyze_logs.py` on two tiny
GMS runs: the event files hold the loss values of the JSON log."""
import glob
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO, tiny_gms_cfg

sys.path.insert(0, osp.join(REPO, 'tools', 'analysis_tools'))
import analyze_logs  # noqa: E402


def _train(tmp_path, name, iters, *extra):
    cfg = tiny_gms_cfg(str(tmp_path / name), max_iters=iters)
    cfg.default_hooks.checkpoint.interval = iters
    config = tmp_path / f'{name}.py'
    cfg.dump(str(config))
    proc = subprocess.run([sys.executable, 'tools/train.py', str(config), '--work-dir',
                           str(tmp_path / name), *extra], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = glob.glob(str(tmp_path / name / '2*'))
    return run


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('logs')
    return (_train(tmp, 'tb', 4, '--vis-backend', 'tensorboard'), _train(tmp, 'plain', 3, '--vis-backend', 'local'))


def test_tensorboard_events_hold_the_logged_losses(runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    run = runs[0]
    events = glob.glob(osp.join(run, 'vis_data', 'events.out.tfevents.*'))
    assert events, 'no tensorboard event file'
    acc = EventAccumulator(osp.join(run, 'vis_data'))
    acc.Reload()
    logged = {s.step: s.value for s in acc.Scalars('loss')}
    with open(osp.join(run, 'vis_data', 'scalars.json')) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    expected = {r['step']: r['loss'] for r in lines if 'loss' in r}
    assert sorted(logged) == sorted(expected) == [1, 2, 3, 4]
    for step, value in expected.items():
        assert logged[step] == pytest.approx(value, rel=1e-6)


def test_local_only_writes_no_event_file(runs):
    assert not glob.glob(osp.join(runs[1], 'vis_data', 'events.out.tfevents.*'))


def test_plot_curve_writes_a_png_from_two_runs(runs, tmp_path):
    out = tmp_path / 'curves.png'
    proc = subprocess.run([sys.executable, 'tools/analysis_tools/analyze_logs.py', 'plot_curve',
                           *runs, '--keys', 'loss', 'lr', '--legend', 'tb', 'plain',
                           '--out', str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    image = np.asarray(Image.open(out))
    assert image.ndim == 3 and image.shape[0] > 400  # two subplots
    assert image.std() > 0


def test_train_time_and_clear_errors(runs, tmp_path):
    stats = analyze_logs.cal_train_time(runs[0])
    assert stats['iters'] == 4 and stats['fastest'] <= stats['mean'] <= stats['slowest']
    with pytest.raises(KeyError, match="never logs 'mIoU'"):
        analyze_logs.plot_curve([runs[0]], ['mIoU'], str(tmp_path / 'x.png'))
    with pytest.raises(FileNotFoundError, match='log file not found'):
        analyze_logs.load_log(str(tmp_path / 'missing.json'))
    with pytest.raises(ValueError, match='2 names for 1 logs'):
        analyze_logs.plot_curve([runs[0]], ['loss'], str(tmp_path / 'x.png'), legend=['a', 'b'])
