"""demo/matting_demo.py: alpha, composite and SAM-mask PNGs from a box, and its
input checks."""
import importlib.util
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from mmfusion.registry import MODELS

from tests.conftest import REPO

_spec = importlib.util.spec_from_file_location('matting_demo',
                                               osp.join(REPO, 'demo/matting_demo.py'))
demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo)

pytest.importorskip('peft')
pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """The tiny recipe's config without its SAM file, a checkpoint of random
    weights, and a 100x70 photo-like image."""
    work = tmp_path_factory.mktemp('matting_demo')
    cfg = Config.fromfile(demo.DEFAULT_CONFIG if osp.isabs(demo.DEFAULT_CONFIG)
                          else osp.join(REPO, demo.DEFAULT_CONFIG))
    cfg.model.sam_checkpoint = None
    config = str(work / 'semat_tiny.py')
    cfg.dump(config)
    torch.manual_seed(0)
    ckpt = str(work / 'semat_tiny.pth')
    torch.save(dict(state_dict=MODELS.build(cfg.model).state_dict(), meta={}), ckpt)
    img = np.full((70, 100, 3), 190, np.uint8)
    img[15:55, 20:70] = (200, 40, 30)
    path = str(work / 'photo.png')
    Image.fromarray(img).save(path)
    return config, ckpt, path, work


def test_writes_alpha_composite_and_sam_mask(setup, capsys):
    config, ckpt, image, work = setup
    out_dir = str(work / 'out')
    result = demo.run(image, [20, 15, 70, 55], 'skimage:coffee', out_dir, config, ckpt)
    printed = capsys.readouterr().out
    alpha = np.array(Image.open(result['paths']['alpha']))
    comp = np.array(Image.open(result['paths']['composite']))
    mask = np.array(Image.open(result['paths']['sam_mask']))
    assert alpha.shape == mask.shape == (70, 100) and alpha.dtype == np.uint8
    assert comp.shape == (70, 100, 3)
    assert set(np.unique(mask).tolist()) <= {0, 255}
    np.testing.assert_array_equal(alpha, np.round(result['alpha'] * 255).astype(np.uint8))
    # the composite is alpha * image + (1 - alpha) * the resized background
    photo = np.array(Image.open(image)).astype(np.float32)
    import cv2
    from skimage import data
    back = cv2.resize(data.coffee(), (100, 70), interpolation=cv2.INTER_AREA).astype(np.float32)
    a = result['alpha'][..., None]
    expected = np.clip(a * photo + (1 - a) * back + 0.5, 0, 255).astype(np.uint8)
    assert np.abs(comp.astype(int) - expected.astype(int)).max() <= 1
    assert 'inside the box' in printed and f"wrote {result['paths']['alpha']}" in printed


def test_checkerboard_is_the_default_background(setup):
    config, ckpt, image, work = setup
    result = demo.run(image, [20, 15, 70, 55], None, str(work / 'board'), config, ckpt)
    assert osp.isfile(result['paths']['composite'])


@pytest.mark.parametrize('box', [[20, 15, 120, 55], [-1, 0, 10, 10], [30, 15, 30, 55]])
def test_a_box_outside_the_image_is_refused_naming_the_file(setup, box, capsys):
    config, ckpt, image, work = setup
    with pytest.raises(SystemExit):
        demo.main([image, '--box', *map(str, box), '--config', config, '--checkpoint', ckpt,
                   '--out-dir', str(work / 'bad')])
    assert 'photo.png: box' in capsys.readouterr().err


def test_missing_checkpoint_says_which_target_trains_it(setup, capsys):
    config, _, image, work = setup
    with pytest.raises(SystemExit):
        demo.main([image, '--box', '1', '1', '5', '5', '--config', config,
                   '--checkpoint', str(work / 'nope.pth')])
    assert 'make semat' in capsys.readouterr().err
