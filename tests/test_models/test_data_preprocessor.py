import pytest
import torch
from mmengine.dataset import pseudo_collate

from mmfusion.registry import MODELS
from mmfusion.structures import FusionDataSample


def _preprocessor():
    return MODELS.build(dict(
        type='MultiModalDataPreprocessor',
        img=dict(type='ImgDataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3, bgr_to_rgb=True)))


def test_image_is_normalised_and_stacked_other_modalities_pass_through():
    imgs = [torch.randint(0, 256, (3, 8, 10), dtype=torch.uint8) for _ in range(2)]
    batch = pseudo_collate([dict(inputs=dict(img=im, text='a lesion'), data_samples=FusionDataSample())
                            for im in imgs])
    out = _preprocessor()(batch)
    expected = (torch.stack(imgs).float().flip(1) - 127.5) / 127.5  # BGR -> RGB, [-1, 1]
    assert torch.allclose(out['inputs']['img'], expected)
    assert out['inputs']['text'] == ['a lesion', 'a lesion']
    assert all(s.batch_input_shape == (8, 10) for s in out['data_samples'])


def test_rejects_non_dict_inputs():
    with pytest.raises(TypeError, match='keyed by modality'):
        _preprocessor()(dict(inputs=[torch.zeros(3, 4, 4)]))
