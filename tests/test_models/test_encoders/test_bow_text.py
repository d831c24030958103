"""BagOfWordsTextEncoder: CLIP's bag-of-words contrastive text tower (+ positions)."""
import open_clip
import pytest
import torch
import torch.nn.functional as F

from mmfusion.models.encoders import BagOfWordsTextEncoder
from mmfusion.registry import MODELS

TEXTS = ['a tall cone.', 'a point cloud of a flat cube', '']


def _encoder(**kwargs):
    torch.manual_seed(0)
    enc = BagOfWordsTextEncoder(embed_dim=8, width=16, context_length=12, **kwargs)
    with torch.no_grad():  # LayerNorm affine away from its identity init
        enc.ln_final.weight.normal_()
        enc.ln_final.bias.normal_()
    return enc


@pytest.mark.parametrize('positions', [True, False])
def test_pooled_is_projected_mean_of_normalised_token_embeddings(positions):
    enc = _encoder(positions=positions)
    out = enc(TEXTS)
    ids = open_clip.tokenize(TEXTS, context_length=12)
    expected = []
    for row in ids:
        n = int(row.argmax()) + 1  # start .. end token (the end token has the largest id)
        emb = enc.token_embedding.weight[row[:n]]
        if positions:
            emb = emb + enc.positional_embedding[:n]
        emb = F.layer_norm(emb, (16, ), enc.ln_final.weight, enc.ln_final.bias)
        expected.append(emb.mean(0) @ enc.text_projection)
    assert torch.allclose(out['pooled'], torch.stack(expected), atol=1e-6)
    assert out['tokens'].shape == (3, 12, 16)
    assert out['mask'].sum(1).tolist() == [int(r.argmax()) + 1 for r in ids]


def test_tokens_do_not_interact():
    """No attention: changing one word moves the embedding by that word's own
    term, whatever the other words are; without positions order is ignored."""
    enc = _encoder()
    with torch.no_grad():
        tall_cone, flat_cone, tall_cube, flat_cube = enc(
            ['a tall cone', 'a flat cone', 'a tall cube', 'a flat cube'])['pooled']
        assert torch.allclose(tall_cone - flat_cone, tall_cube - flat_cube, atol=1e-6)
        assert not torch.allclose(tall_cone, flat_cone, atol=1e-3)
        bag = _encoder(positions=False)
        a, b = bag(['a tall cone', 'a cone tall'])['pooled']
        assert torch.allclose(a, b, atol=1e-6)


def test_gradients_reach_every_weight_when_trainable():
    enc = _encoder(frozen=False)
    enc(TEXTS)['pooled'].square().sum().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    frozen = MODELS.build(dict(type='BagOfWordsTextEncoder', embed_dim=8, width=16))
    assert not any(p.requires_grad for p in frozen.parameters())


def test_checkpoint_prefix_and_prompt_ensembling(tmp_path):
    enc = _encoder()
    path = tmp_path / 'clip.pth'
    torch.save({'state_dict': {f'text_encoder.{k}': v for k, v in enc.state_dict().items()}},
               path)
    loaded = BagOfWordsTextEncoder(embed_dim=8, width=16, context_length=12,
                                   checkpoint=str(path), prefix='text_encoder.')
    with torch.no_grad():
        assert torch.equal(loaded(TEXTS)['pooled'], enc(TEXTS)['pooled'])
        names = ['cone', 'tall cone']
        got = loaded.embed_class_names(names, ['a {}.', 'a 3D model of a {}.'])
        manual = F.normalize(enc(['a cone.', 'a 3D model of a cone.'])['pooled'], dim=-1)
    assert torch.allclose(got[0], F.normalize(manual.mean(0), dim=0), atol=1e-6)
    with pytest.raises(RuntimeError, match='clip.pth'):
        BagOfWordsTextEncoder(embed_dim=8, width=32, checkpoint=str(path), prefix='text_encoder.')
