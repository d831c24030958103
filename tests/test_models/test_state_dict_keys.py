"""Checkpoints written before a code change still load strictly after it.

``tests/data/state_dict_keys.json`` holds, for every config, the state-dict
keys and shapes of its model (built as :func:`tests.test_configs` builds it);
it was written before ``mmfusion/models`` was re-laid out into family
folders. A renamed module, a moved buffer or a changed shape shows here.
Regenerate it only for a deliberate checkpoint-format change:
``MMFUSION_WRITE_KEYS=1 pytest tests/test_models/test_state_dict_keys.py``.
"""
import json
import os
import os.path as osp

import pytest
from mmengine.config import Config

from tests.conftest import DATA, REPO, build_shrunk_model
from tests.test_configs import CONFIGS

FIXTURE = osp.join(DATA, 'state_dict_keys.json')
WRITE = os.environ.get('MMFUSION_WRITE_KEYS') == '1'


def _keys_and_shapes(path: str, fitted_units: str) -> dict:
    model = build_shrunk_model(Config.fromfile(path), fitted_units)
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def test_fixture_covers_every_config():
    if WRITE:
        pytest.skip('writing the fixture')
    with open(FIXTURE) as f:
        recorded = json.load(f)
    assert sorted(recorded) == sorted(osp.relpath(p, REPO) for p in CONFIGS)


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, osp.join(REPO, 'configs')))
def test_state_dict_keys_unchanged(path, fitted_units):
    name = osp.relpath(path, REPO)
    found = _keys_and_shapes(path, fitted_units)
    if WRITE:
        recorded = {}
        if osp.exists(FIXTURE):
            with open(FIXTURE) as f:
                recorded = json.load(f)
        recorded[name] = found
        with open(FIXTURE, 'w') as f:
            json.dump(recorded, f, indent=0, sort_keys=True)
        return
    with open(FIXTURE) as f:
        expected = json.load(f)[name]
    assert set(found) == set(expected), (
        f'{name}: keys only before {sorted(set(expected) - set(found))[:10]}, '
        f'only after {sorted(set(found) - set(expected))[:10]}')
    wrong = {k: (expected[k], found[k]) for k in expected if expected[k] != found[k]}
    assert not wrong, f'{name}: shapes changed {dict(list(wrong.items())[:10])}'
