"""MattingRandomFlip flips the image, the alpha, the trimap and the box together."""
import numpy as np
import pytest

from mmfusion.datasets.transforms import MattingRandomFlip


def sample():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
    alpha = np.zeros((6, 8), np.float32)
    alpha[1:4, 1:3] = 1.0
    trimap = np.zeros((6, 8), np.uint8)
    trimap[0:5, 0:4] = 128
    return dict(img=img, gt_alpha=alpha, gt_trimap=trimap,
                alpha_box=np.array([1, 1, 3, 4], np.float32))


def test_flip_moves_every_matting_key_and_the_box():
    src = sample()
    out = MattingRandomFlip(prob=1.0)(dict(src))
    assert out['flip'] and out['flip_direction'] == 'horizontal'
    np.testing.assert_array_equal(out['img'], src['img'][:, ::-1])
    np.testing.assert_array_equal(out['gt_alpha'], src['gt_alpha'][:, ::-1])
    np.testing.assert_array_equal(out['gt_trimap'], src['gt_trimap'][:, ::-1])
    # the box still bounds the flipped alpha
    ys, xs = np.nonzero(out['gt_alpha'])
    np.testing.assert_array_equal(out['alpha_box'], [xs.min(), ys.min(), xs.max() + 1,
                                                     ys.max() + 1])


def test_no_flip_leaves_the_sample_and_prob_is_checked():
    src = sample()
    out = MattingRandomFlip(prob=0.0)(dict(src))
    assert not out['flip']
    np.testing.assert_array_equal(out['gt_alpha'], src['gt_alpha'])
    with pytest.raises(ValueError, match='prob'):
        MattingRandomFlip(prob=1.5)
