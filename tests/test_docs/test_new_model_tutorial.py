"""docs/new_model.md's commands, as written there, on generated data: the
example config trains for 5 iterations and its checkpoint evaluates."""
import os
import os.path as osp
import re
import shlex
import subprocess
import sys

import pytest

from tests.conftest import REPO

DOC = osp.join(REPO, 'docs', 'new_model.md')


def _doc_command(tool: str) -> list:
    """The doc's ``PYTHONPATH=. python tools/TOOL ...`` line, as argv."""
    lines = [line for line in open(DOC).read().splitlines()
             if re.match(rf'PYTHONPATH=\. python tools/{tool} ', line)]
    assert len(lines) == 1, f'docs/new_model.md should show one tools/{tool} command'
    argv = shlex.split(lines[0])
    assert argv[:2] == ['PYTHONPATH=.', 'python']
    return [sys.executable, *argv[2:]]


def _with_overrides(argv: list, options: list) -> list:
    """Append ``options`` to the command's --cfg-options (or add the flag)."""
    return argv + options if '--cfg-options' in argv else argv + ['--cfg-options', *options]


def test_the_tutorial_trains_and_evaluates_its_example(synthshapes_root, tmp_path):
    work = tmp_path / 'work'
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    # What the doc's `make synthshapes` / `make clip` provide on a user's machine:
    # the generated data (here the session's small copy) and the text tower (random).
    data = [f'{loader}.dataset.data_root={synthshapes_root}'
            for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    data.append('model.text_encoder.checkpoint=None')

    train = _with_overrides(_doc_command('train.py'), data) + ['--work-dir', str(work)]
    proc = subprocess.run(train, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dumped = work / 'xdecoder_example-convnet_1xb8-2300it_synthshapes.py'
    assert "type='ExampleConvNet'" in dumped.read_text()
    ckpt = work / 'iter_5.pth'
    assert ckpt.is_file(), sorted(os.listdir(work))

    test = _doc_command('test.py')
    doc_ckpt = test[3]
    assert doc_ckpt.endswith('/iter_5.pth') and doc_ckpt.startswith('work_dirs/')
    test[3] = str(ckpt)
    test = _with_overrides(test, data) + ['--work-dir', str(tmp_path / 'eval')]
    proc = subprocess.run(test, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metric = re.search(r'mIoU: ([0-9.]+)', proc.stdout + proc.stderr)
    assert metric is not None, (proc.stdout + proc.stderr)[-2000:]
    assert 0.0 <= float(metric.group(1)) <= 100.0


def test_the_example_encoder_gives_what_the_pixel_decoder_reads():
    import torch
    sys.path.insert(0, REPO)
    try:
        from projects.example_encoder import ExampleConvNet
    finally:
        sys.path.remove(REPO)
    feats = ExampleConvNet()(torch.zeros(2, 3, 96, 64))
    assert [tuple(f.shape) for f in feats] == [(2, 16, 24, 16), (2, 32, 12, 8),
                                                (2, 64, 6, 4), (2, 128, 3, 2)]
    with pytest.raises(ValueError, match='divisible by groups=8'):
        ExampleConvNet(widths=(12, 32, 64, 128))
