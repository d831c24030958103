"""demo/pointcloud_demo.py: the zero-shot ranking table, the 4-panel views PNG,
and its input checks, on a tiny random-init PointCLIPAligner."""
import importlib.util
import math
import os.path as osp
import re

import numpy as np
import pytest
import torch
from PIL import Image

from mmfusion.registry import MODELS
from mmfusion.utils.config_weights import drop_weight_files

from tests.conftest import REPO

pytest.importorskip('open_clip')
pytest.importorskip('matplotlib')

_spec = importlib.util.spec_from_file_location('pointcloud_demo',
                                               osp.join(REPO, 'demo/pointcloud_demo.py'))
demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo)

pytestmark = pytest.mark.usefixtures('one_thread')

CONFIG = """\
clip_cfg = dict(embed_dim=16,
                vision_cfg=dict(image_size=32, patch_size=8, width=32, layers=2, head_width=16,
                                mlp_ratio=2.0),
                text_cfg=dict(context_length=12, width=32, heads=2, layers=1, mlp_ratio=2.0))
model = dict(
    type='PointCLIPAligner',
    data_preprocessor=dict(type='MultiModalDataPreprocessor',
                           points=dict(type='PointDataPreprocessor', num_points=256)),
    point_encoder=dict(type='I2PMAEEncoder', num_groups=(32, 16, 8), group_sizes=(8, 4, 4),
                       embed_dims=(16, 32, 64), depths=(1, 1, 1), num_heads=2,
                       embed_hidden=(8, 16, 16), frozen=False,
                       checkpoint='{missing}', prefix='h_encoder.'),
    teacher=dict(type='DepthViewTeacher', image_size=32, kernel=3,
                 encoder=dict(type='OpenCLIPImageEncoder', model_cfg=clip_cfg,
                              out_indices=(-1, ), checkpoint='{missing}',
                              prefix='image_encoder.')),
    text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg=clip_cfg),
    embed_dim=16,
    test_templates=['a {{}}.'])
"""
TEXTS = ['cone', 'torus', 'cube', 'tall cylinder']
ROW = re.compile(r'^\s*(\d+)\s+(.+?)\s+([0-9.]+)$')

CUBE_OFF = """OFF
8 6 0
-1 -1 -1
1 -1 -1
1 1 -1
-1 1 -1
-1 -1 1
1 -1 1
1 1 1
-1 1 1
4 0 3 2 1
4 4 5 6 7
4 0 1 5 4
4 2 3 7 6
4 1 2 6 5
4 0 4 7 3
"""


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """A tiny config whose config-level weight files are missing, a checkpoint of
    random weights, a cube mesh (.off) and a torus-like cloud (.xyz)."""
    work = tmp_path_factory.mktemp('pointcloud_demo')
    config = str(work / 'zeroshot_tiny.py')
    with open(config, 'w') as f:
        f.write(CONFIG.format(missing=str(work / 'no_such_weights.pth')))
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    dropped = drop_weight_files(cfg.model, only_missing=True)
    assert len(dropped) == 2 and all(d.endswith('no_such_weights.pth') for d in dropped)
    assert cfg.model.teacher.encoder.checkpoint is None and cfg.model.teacher.encoder.prefix is None
    torch.manual_seed(0)
    ckpt = str(work / 'zeroshot_tiny.pth')
    torch.save(dict(state_dict=MODELS.build(cfg.model).state_dict(), meta={}), ckpt)
    (work / 'cube.off').write_text(CUBE_OFF)
    rng = np.random.default_rng(0)
    u, v = rng.uniform(0, 2 * np.pi, (2, 300))
    torus = np.stack([(1 + 0.3 * np.cos(v)) * np.cos(u), (1 + 0.3 * np.cos(v)) * np.sin(u),
                      0.3 * np.sin(v)], axis=1)
    np.savetxt(work / 'torus.xyz', torus, fmt='%.5f')
    return config, ckpt, work


def _ranking(printed):
    rows = [ROW.match(line) for line in printed.splitlines()]
    return [(int(m[1]), m[2], float(m[3])) for m in rows if m]


@pytest.mark.parametrize('name', ['cube.off', 'torus.xyz'])
def test_ranks_every_text_once_and_writes_four_panels(setup, name, capsys):
    config, ckpt, work = setup
    out = str(work / f'{name}.png')
    with pytest.warns(UserWarning, match='point_encoder.checkpoint=.*no_such_weights'):
        demo.main([str(work / name), '--texts', ' ,'.join(TEXTS), '--config', config,
                   '--checkpoint', ckpt, '--out-file', out])
    printed = capsys.readouterr().out
    rows = _ranking(printed)
    assert [r[0] for r in rows] == [1, 2, 3, 4]
    assert sorted(r[1] for r in rows) == sorted(TEXTS)
    probs = [r[2] for r in rows]
    assert probs == sorted(probs, reverse=True)
    assert math.isclose(sum(probs), 1.0, abs_tol=2e-4)  # printed to 4 decimals
    assert f'wrote {out}' in printed and 'to the model' in printed
    image = np.array(Image.open(out))
    h, w = image.shape[:2]
    assert h >= 300 and w >= 3 * h  # four square-ish panels side by side
    # every panel has content: no column quarter is a flat colour
    for q in range(4):
        assert image[:, q * w // 4:(q + 1) * w // 4, :3].std() > 5


def test_run_returns_the_ranking_and_per_point_saliency(setup):
    config, ckpt, work = setup
    with pytest.warns(UserWarning):
        result = demo.run(str(work / 'cube.off'), TEXTS[:2], config, ckpt,
                          str(work / 'run.png'), num_points=128)
    assert [n for n, _ in result['ranking']] in (TEXTS[:2], TEXTS[:2][::-1])
    assert result['points'].shape == (128, 3) and result['saliency'].shape == (128, )
    assert np.isfinite(result['saliency']).all() and (result['saliency'] >= 0).all()
    assert osp.isfile(str(work / 'run.png'))


def test_saliency_is_the_upsampled_map_read_at_each_pixel():
    # A constant map reads back as that constant at every pixel.
    sal = torch.full((1, 3, 4, 4), 0.25)
    pix = torch.randint(0, 32, (1, 3, 10, 2))
    from mmfusion.apis.sequence_inferencers import point_saliency
    assert torch.allclose(point_saliency(sal, pix, 32), torch.full((1, 10), 0.25))


@pytest.mark.filterwarnings('ignore:weight files of the config')
@pytest.mark.parametrize('content', ['', 'nan 0 0\n1 2 3\n'])
def test_an_empty_or_nan_cloud_fails_naming_the_file(setup, content, capsys):
    config, ckpt, work = setup
    path = work / ('empty.xyz' if not content else 'nan.xyz')
    path.write_text(content)
    with pytest.raises(SystemExit) as e:
        demo.main([str(path), '--texts', 'a,b', '--config', config, '--checkpoint', ckpt])
    assert e.value.code == 1
    assert str(path) in capsys.readouterr().err


@pytest.mark.filterwarnings('ignore:weight files of the config')
@pytest.mark.parametrize('texts', ['one', 'one, ,', 'a,b,a'])
def test_fewer_than_two_or_repeated_texts_are_refused(setup, texts, capsys):
    config, ckpt, work = setup
    with pytest.raises(SystemExit) as e:
        demo.main([str(work / 'cube.off'), '--texts', texts, '--config', config,
                   '--checkpoint', ckpt])
    assert e.value.code == 1
    assert '--texts' in capsys.readouterr().err


@pytest.mark.filterwarnings('ignore:weight files of the config')
def test_missing_checkpoint_says_which_target_trains_it(setup, capsys):
    config, _, work = setup
    with pytest.raises(SystemExit) as e:
        demo.main([str(work / 'cube.off'), '--texts', 'a,b', '--config', config,
                   '--checkpoint', str(work / 'nope.pth')])
    assert e.value.code == 1
    assert 'make i2pmae' in capsys.readouterr().err
