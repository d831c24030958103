"""tools/model_converters/publish_model.py: training state stripped, the hash
in the name is the file's, both formats load back equal (through mmengine's
loader, as tools/test.py and get_model read them)."""
import hashlib
import importlib.util
import os.path as osp
import re

import pytest
import torch
from mmengine.runner import CheckpointLoader

from tests.conftest import REPO


def load_tool():
    path = osp.join(REPO, 'tools', 'model_converters', 'publish_model.py')
    spec = importlib.util.spec_from_file_location('publish_model', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def training_checkpoint(tmp_path):
    linear = torch.nn.Linear(4, 3)
    tied = dict(linear.state_dict(), **{'tied.weight': linear.weight})  # shares storage
    optim = torch.optim.AdamW(linear.parameters())
    linear(torch.randn(2, 4)).sum().backward()
    optim.step()
    ckpt = dict(state_dict=tied, optimizer=optim.state_dict(),
                param_schedulers=[dict(last_epoch=3)], message_hub=dict(runtime_info={}),
                meta=dict(dataset_meta=dict(classes=['a', 'b']), seed=0, iter=10,
                          time='20261205'))
    path = tmp_path / 'iter_10.pth'
    torch.save(ckpt, path)
    return path, tied


@pytest.mark.parametrize('fmt', ['pth', 'safetensors'])
def test_publish_strips_training_state_and_names_the_hash(training_checkpoint, tmp_path, fmt,
                                                          capsys):
    src, weights = training_checkpoint
    final = load_tool().publish(str(src), str(tmp_path / 'out' / 'tiny_model.pth'), fmt)
    name = osp.basename(final)
    match = re.fullmatch(rf'tiny_model-([0-9a-f]{{8}})\.{fmt}', name)
    assert match, name
    with open(final, 'rb') as f:
        assert hashlib.sha256(f.read()).hexdigest()[:8] == match.group(1)
    out = capsys.readouterr().out
    assert "['message_hub', 'optimizer', 'param_schedulers']" in out
    loaded = CheckpointLoader.load_checkpoint(final, map_location='cpu')
    assert set(loaded) == {'state_dict', 'meta'}
    assert loaded['meta']['dataset_meta'] == dict(classes=['a', 'b'])
    assert 'iter' not in loaded['meta'] and 'time' not in loaded['meta']
    assert loaded['state_dict'].keys() == weights.keys()
    for key, value in weights.items():
        assert torch.equal(loaded['state_dict'][key], value), key


def test_missing_input_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match='no such checkpoint'):
        load_tool().main([str(tmp_path / 'nope.pth'), str(tmp_path / 'out.pth')])
