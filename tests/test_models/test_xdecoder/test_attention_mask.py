"""The X-Decoder self-attention mask invariants, asserted directly."""
import pytest
import torch

from mmfusion.models.xdecoder import xdecoder_layout, xdecoder_self_attn_mask

N, G, LG, LC = 5, 3, 4, 6


@pytest.fixture
def mask_and_layout():
    return (xdecoder_self_attn_mask(N, G, LG, LC), xdecoder_layout(N, G, LG, LC))


def _visible(mask, layout, row, col):
    return ~mask[layout[row], layout[col]]


def test_latent_queries_never_see_text(mask_and_layout):
    mask, layout = mask_and_layout
    for row in ('object', 'image'):
        for col in ('grounding', 'grounding_tokens', 'caption'):
            assert not _visible(mask, layout, row, col).any(), (row, col)


def test_object_and_image_queries_do_not_see_each_other(mask_and_layout):
    mask, layout = mask_and_layout
    assert not _visible(mask, layout, 'object', 'image').any()
    assert not _visible(mask, layout, 'image', 'object').any()
    assert _visible(mask, layout, 'object', 'object').all()
    assert _visible(mask, layout, 'image', 'image').all()


def test_caption_tokens_are_causal_and_see_latent_queries(mask_and_layout):
    mask, layout = mask_and_layout
    cap = _visible(mask, layout, 'caption', 'caption')
    for i in range(LC):
        for j in range(LC):
            assert bool(cap[i, j]) == (j <= i), (i, j)
    assert _visible(mask, layout, 'caption', 'object').all()
    assert _visible(mask, layout, 'caption', 'image').all()
    assert not _visible(mask, layout, 'caption', 'grounding_tokens').any()


def test_grounding_branch(mask_and_layout):
    mask, layout = mask_and_layout
    assert _visible(mask, layout, 'grounding', 'grounding_tokens').all()
    assert _visible(mask, layout, 'grounding', 'grounding').all()
    assert _visible(mask, layout, 'grounding_tokens', 'grounding_tokens').all()
    assert _visible(mask, layout, 'grounding_tokens', 'grounding').all()
    for row in ('grounding', 'grounding_tokens'):
        for col in ('object', 'image', 'caption'):
            assert not _visible(mask, layout, row, col).any(), (row, col)


def test_every_row_sees_itself_and_attention_follows_the_mask():
    mask = xdecoder_self_attn_mask(N, G, LG, LC)
    assert not mask.diagonal().any()
    # Through real attention: changing caption tokens leaves latent queries unchanged.
    attn = torch.nn.MultiheadAttention(8, 2, batch_first=True)
    x = torch.randn(1, mask.shape[0], 8)
    y = x.clone()
    y[:, -LC:] = torch.randn(1, LC, 8)
    out_x, _ = attn(x, x, x, attn_mask=mask)
    out_y, _ = attn(y, y, y, attn_mask=mask)
    torch.testing.assert_close(out_x[:, :N + 1], out_y[:, :N + 1])
    assert not torch.allclose(out_x[:, -LC:], out_y[:, -LC:])


def test_layout_without_optional_groups():
    mask = xdecoder_self_attn_mask(4)
    assert mask.shape == (5, 5)
    with pytest.raises(ValueError, match='caption'):
        xdecoder_layout(4, num_caption_tokens=-1)
