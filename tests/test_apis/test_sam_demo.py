"""demo/image_demo.py with a SAM config: boxes, points, automatic masks."""
import importlib.util
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from mmfusion.registry import MODELS

from tests.conftest import REPO

_spec = importlib.util.spec_from_file_location('image_demo', osp.join(REPO, 'demo/image_demo.py'))
demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo)

CONFIG = osp.join(REPO, 'configs', 'sam', 'sam_vit-tiny_1xb8-2600it_synthshapes.py')


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """A tiny SAM checkpoint (random weights) and a 120x80 photo-like image."""
    work = tmp_path_factory.mktemp('sam_demo')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(CONFIG).model)
    ckpt = str(work / 'sam_tiny.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), ckpt)
    img = np.full((80, 120, 3), 200, np.uint8)
    img[20:60, 30:90] = (30, 60, 220)
    path = str(work / 'photo.png')
    Image.fromarray(img).save(path)
    return ckpt, path, work


@pytest.mark.parametrize('prompt, masks', [
    (['--box', '30', '20', '90', '60', '--box', '0', '0', '40', '40'], 2),
    (['--points', '60,40,1', '5,5,0'], 1),
    (['--box', '30', '20', '90', '60', '--points', '60,40,1'], 1),
])
def test_prompts_draw_an_overlay(setup, prompt, masks, capsys):
    ckpt, image, work = setup
    out = str(work / 'overlay.png')
    demo.main([CONFIG, ckpt, image, '--out-file', out, *prompt])
    printed = capsys.readouterr().out
    assert f'{masks} masks' in printed and f'wrote {out}' in printed
    overlay = np.array(Image.open(out))
    assert overlay.shape == (80, 120, 3)
    # the box outline is drawn in white at the box's corner
    if '--box' in prompt:
        assert (overlay[20, 30] == 255).all()


def test_automatic_masks(setup, capsys):
    ckpt, image, work = setup
    out = str(work / 'auto.png')
    demo.main([CONFIG, ckpt, image, '--out-file', out, '--auto', '--cfg-options',
               'model.test_cfg.auto_cfg.points_per_side=4',
               'model.test_cfg.auto_cfg.pred_iou_thresh=0.0',
               'model.test_cfg.auto_cfg.stability_score_thresh=0.0'])
    assert 'masks' in capsys.readouterr().out
    assert np.array(Image.open(out)).shape == (80, 120, 3)


@pytest.mark.parametrize('args, message', [
    ([], 'give --box, --points or --auto'),
    (['--box', '30', '20', '130', '60'], r'outside the 120x80 image'),
    (['--points', '60,40,3'], 'must be 1 .*or 0'),
    (['--points', '60;40'], 'X,Y,LABEL'),
    (['--auto', '--box', '1', '1', '5', '5'], 'takes no --box'),
])
def test_usage_errors(setup, args, message, capsys):
    ckpt, image, work = setup
    with pytest.raises(SystemExit):
        demo.main([CONFIG, ckpt, image, '--out-file', str(work / 'x.png'), *args])
    import re
    assert re.search(message, capsys.readouterr().err)
