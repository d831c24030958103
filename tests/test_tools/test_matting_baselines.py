"""The closed-form baseline pieces of tools/analysis_tools/matting_baselines.py."""
import importlib.util
import os.path as osp

import numpy as np
import pytest

from tests.conftest import REPO

_spec = importlib.util.spec_from_file_location(
    'matting_baselines', osp.join(REPO, 'tools/analysis_tools/matting_baselines.py'))
baselines = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(baselines)


def test_mask_to_trimap_band_follows_the_size_rule():
    mask = np.zeros((60, 60), bool)
    mask[10:50, 15:45] = True  # 1200 pixels: band half-width round(sqrt(1200) / 10) = 3
    trimap = baselines.mask_to_trimap(mask)
    assert set(np.unique(trimap).tolist()) == {0, 128, 255}
    assert (trimap[mask] > 0).all() and (trimap[~mask] < 255).all()
    # across the left edge (x = 15): 3 unknown pixels outside, 3 inside
    np.testing.assert_array_equal(trimap[30, 10:22], [0, 0, 128, 128, 128, 128, 128, 128,
                                                      255, 255, 255, 255])
    wide = baselines.mask_to_trimap(mask, min_width=5)
    assert (wide[30, 10:20] == 128).all()
    assert baselines.mask_to_trimap(np.zeros((8, 8), bool)).max() == 0


def test_closed_form_recovers_a_soft_edge():
    pytest.importorskip('pymatting')
    h, w = 32, 32
    alpha = np.clip((np.arange(w) - 12) / 8.0, 0, 1)[None].repeat(h, 0)
    fg, bg = np.array([220, 40, 30]), np.array([20, 90, 200])
    image = (alpha[..., None] * fg + (1 - alpha[..., None]) * bg).astype(np.uint8)
    trimap = np.full((h, w), 128, np.uint8)
    trimap[:, :10] = 0
    trimap[:, 22:] = 255
    pred = baselines.closed_form(image, trimap)
    assert np.abs(pred - alpha).max() < 0.05
    # no unknown pixel: the trimap is the alpha
    hard = np.where(alpha > 0.5, 255, 0).astype(np.uint8)
    np.testing.assert_array_equal(baselines.closed_form(image, hard), hard / 255.0)


def test_closed_form_without_a_seed_returns_none():
    image = np.zeros((8, 8, 3), np.uint8)
    trimap = np.full((8, 8), 128, np.uint8)
    trimap[:, :2] = 0  # background seeds only
    assert baselines.closed_form(image, trimap) is None
