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


def test_pad_sequences_and_padding_mask():
    from mmfusion.models.common.sequence import lengths_to_padding_mask, pad_sequences
    seqs = [torch.arange(6.).reshape(3, 2), torch.ones(1, 2)]
    padded, lengths = pad_sequences(seqs, pad_value=-1.0)
    assert padded.shape == (2, 3, 2) and lengths.tolist() == [3, 1]
    assert torch.equal(padded[0], seqs[0]) and torch.equal(padded[1, 0], seqs[1][0])
    assert (padded[1, 1:] == -1).all()
    mask = lengths_to_padding_mask(lengths, padded.shape[1])
    assert mask.tolist() == [[False, False, False], [False, True, True]]  # True at padding
    with pytest.raises(ValueError, match='trailing shapes'):
        pad_sequences([torch.zeros(2, 3), torch.zeros(2, 4)])
    with pytest.raises(ValueError, match='no sequences'):
        pad_sequences([])
