"""FusionInferencer's input handling shared by every Inferencer."""
import numpy as np
import pytest

from mmfusion.apis.base_inferencer import FusionInferencer, mask_to_rle


def test_input_names_follow_files_skimage_names_and_order():
    names = FusionInferencer.input_names(
        ['a/x.png', 'b/x.jpg', 'skimage:astronaut', np.zeros((2, 2, 3), np.uint8)])
    assert names == ['x', 'x_1', 'astronaut', '00003']


def test_mask_to_rle_round_trips_through_pycocotools():
    from pycocotools import mask as mask_utils
    rng = np.random.default_rng(0)
    mask = rng.random((7, 5)) > 0.5
    rle = mask_to_rle(mask)
    assert isinstance(rle['counts'], str) and rle['size'] == [7, 5]
    decoded = mask_utils.decode(dict(rle, counts=rle['counts'].encode()))
    assert np.array_equal(decoded.astype(bool), mask)


def test_unknown_model_name_is_refused_with_close_names():
    with pytest.raises(KeyError, match='gms'):
        FusionInferencer('gms_kl-f4-tiny_1xb8-800it_synth-lesio')
