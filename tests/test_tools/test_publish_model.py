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
    assert 'removed: message_hub, optimizer, param_schedulers, meta.iter, meta.time' in out
    assert f'wrote {final}' in out
    loaded = CheckpointLoader.load_checkpoint(final, map_location='cpu')
    assert set(loaded) == {'state_dict', 'meta'}  # optimizer & co. are gone
    assert loaded['meta']['dataset_meta'] == dict(classes=['a', 'b'])
    assert 'iter' not in loaded['meta'] and 'time' not in loaded['meta']
    assert loaded['state_dict'].keys() == weights.keys()
    for key, value in weights.items():
        assert torch.equal(loaded['state_dict'][key], value), key
    if fmt == 'safetensors':  # the file itself, read without mmfusion's loader
        from safetensors.torch import load_file
        raw = load_file(final)
        assert raw.keys() == weights.keys()
        assert all(torch.equal(raw[k], v) for k, v in weights.items())


def test_missing_input_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match='no such checkpoint'):
        load_tool().main([str(tmp_path / 'nope.pth'), str(tmp_path / 'out.pth')])


def test_flat_state_dict_and_safetensors_input(tmp_path, capsys):
    tool = load_tool()
    flat = {'a.weight': torch.randn(3, 2), 'b': torch.arange(4)}
    torch.save(flat, tmp_path / 'flat.pth')
    first = tool.publish(str(tmp_path / 'flat.pth'), str(tmp_path / 'flat_out'), 'safetensors')
    assert 'removed: nothing' in capsys.readouterr().out
    assert first.endswith('.safetensors')
    # a published safetensors file publishes again (as .pth) to the same tensors
    again = tool.publish(first, str(tmp_path / 'again.pth'), 'pth')
    loaded = CheckpointLoader.load_checkpoint(again, map_location='cpu')
    assert loaded['meta']['published_from'] == osp.basename(first)
    for key, value in flat.items():
        assert torch.equal(loaded['state_dict'][key], value), key


TEACHER = 'mmmamba-teacher_tiny_1xb32-1500it_synthshapes-caption'


@pytest.fixture
def index_root(tmp_path, monkeypatch):
    """A checkout whose model index and configs are the repository's and whose
    work_dirs/ holds the teacher's training checkpoint (MMFUSION_ROOT)."""
    import shutil

    from mmfusion.apis import get_model
    root = tmp_path / 'checkout'
    root.mkdir()
    shutil.copy(osp.join(REPO, 'model-index.yml'), root)
    (root / 'configs').symlink_to(osp.join(REPO, 'configs'))
    monkeypatch.setenv('MMFUSION_ROOT', str(root))
    torch.manual_seed(0)
    model = get_model(TEACHER)
    optim = torch.optim.AdamW(model.parameters())
    ckpt = root / 'work_dirs' / TEACHER / 'iter_1500.pth'
    ckpt.parent.mkdir(parents=True)
    torch.save(dict(state_dict=model.state_dict(), optimizer=optim.state_dict(),
                    meta=dict(dataset_meta=dict(classes=['x']), iter=1500)), ckpt)
    return root, ckpt, model.state_dict()


def test_publish_the_index_and_get_model_finds_it(index_root, capsys):
    """`make publish` (--index) writes work_dirs/published/NAME-HASH.pth for
    each trained model; get_model(pretrained=True) loads the training
    checkpoint, or the published copy once that is gone."""
    from mmfusion.apis import get_model, list_models
    root, ckpt, weights = index_root
    torch.manual_seed(1)
    loaded = get_model(TEACHER, pretrained=True)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in weights.items())
    assert loaded.dataset_meta == dict(classes=['x'])

    untrained = len(list_models('mmmamba-*')) - 1  # all but the teacher
    load_tool().main(['--index', 'mmmamba-*'])
    out = capsys.readouterr().out
    assert 'published 1 model(s)' in out
    assert f'not trained here (skipped): {untrained} checkpoints' in out
    published = list((root / 'work_dirs' / 'published').iterdir())
    assert len(published) == 1
    assert re.fullmatch(rf'{re.escape(TEACHER)}-[0-9a-f]{{8}}\.pth', published[0].name)
    assert 'optimizer' in out  # what was removed is printed

    ckpt.unlink()
    torch.manual_seed(2)
    again = get_model(TEACHER, pretrained=True)
    assert all(torch.equal(again.state_dict()[k], v) for k, v in weights.items())
    assert 'optimizer' not in CheckpointLoader.load_checkpoint(str(published[0]))

    published[0].unlink()
    with pytest.raises(FileNotFoundError, match=r'nothing is downloaded.*make mmmamba'):
        get_model(TEACHER, pretrained=True)


def test_index_mode_takes_no_files(tmp_path):
    with pytest.raises(SystemExit):
        load_tool().main(['--index', 'x*', str(tmp_path / 'a.pth'), str(tmp_path / 'b.pth')])
    with pytest.raises(SystemExit):
        load_tool().main([str(tmp_path / 'a.pth')])
