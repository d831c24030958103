"""Every config under configs/ builds its model and runs a forward pass."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from tests.conftest import REPO, build_shrunk_model


def _input_size(cfg) -> tuple:
    """The image size the config's test pipeline resizes to, else the model's
    ``img_size``, else the size an open_clip ViT backbone or image encoder is
    built for (32x32 without any)."""
    loader = cfg.get('test_dataloader') or {}
    dataset = loader.get('dataset', {})
    dataset = dataset.get('datasets', [dataset])[0]
    for t in dataset.get('pipeline', []):
        if t['type'] == 'Resize' and not t.get('keep_ratio', False):
            return tuple(t['scale'])[::-1]
    model = cfg.model.get('teacher', cfg.model)
    if 'img_size' in model:
        return (model['img_size'],) * 2
    for tower in ('backbone', 'image_encoder'):
        vision = (cfg.model.get(tower) or {}).get('model_cfg', {}).get('vision_cfg', {})
        if 'image_size' in vision:
            return (vision['image_size'],) * 2
    return (32, 32)


CONFIGS = sorted(p for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
                 if '_base_' not in p)


def test_configs_exist():
    assert len(CONFIGS) >= 3


def _inputs(cfg) -> dict:
    """One sample of what the config's model reads."""
    if cfg.model.type in ('Zipper', 'VocabExpansionASR'):
        return dict(text=['a red circle'], audio=torch.randn(1, 16000) * 0.1,
                    audio_lengths=torch.tensor([16000]))
    points = (cfg.model.get('data_preprocessor') or {}).get('points')
    if points is not None:
        # Point-cloud models: one cloud of as many points as the data preprocessor
        # resamples to, coordinates in [-1, 1].
        num = points.get('num_points') or 1024
        return dict(points=torch.rand(1, num, 3) * 2 - 1, points_lengths=torch.tensor([num]))
    return dict(img=torch.rand(1, 3, *_input_size(cfg)) * 2 - 1)


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, osp.join(REPO, 'configs')))
def test_config_builds_and_runs_forward(path, fitted_units):
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmfusion'
    model = build_shrunk_model(cfg, fitted_units).eval()
    with torch.no_grad():
        out = model(_inputs(cfg), mode='tensor')
    assert out is not None
