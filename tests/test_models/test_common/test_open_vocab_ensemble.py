"""The geometric ensemble against a hand computation, mask pooling against a
loop, synonyms, and CLIP's head on pooled features."""
import math

import numpy as np
import pytest
import torch

from mmfusion.models.common.open_vocab_ensemble import (
    OpenVocabEnsemble,
    binary_mask_pool,
    geometric_ensemble,
    max_over_synonyms,
    split_synonyms,
)


def _hand(in_logits, out_logits, seen, alpha, beta, valid):
    """The formula written out with Python floats, one query at a time."""
    result = []
    for q, (row_in, row_out) in enumerate(zip(in_logits, out_logits)):
        exp_all = [math.exp(v) for v in row_in]
        void = exp_all[-1] / sum(exp_all)
        exp_in = exp_all[:-1]
        p_in = [v / sum(exp_in) for v in exp_in]
        exp_out = [math.exp(v) for v in row_out]
        p_out = [v / sum(exp_out) for v in exp_out]
        mix = []
        for c in range(len(p_in)):
            a = (alpha if seen[c] else beta) if valid[q] else 0.0
            mix.append(p_in[c] ** (1 - a) * p_out[c] ** a)
        total = sum(mix)
        result.append([m / total * (1 - void) for m in mix] + [void])
    return np.log(np.array(result) + 1e-8)


def test_geometric_ensemble_matches_hand_computation():
    in_logits = [[2.0, 0.5, -1.0, 0.3], [0.1, 0.2, 3.0, -2.0], [1.0, 1.0, 1.0, 4.0]]
    out_logits = [[0.0, 2.5, 1.0], [4.0, -1.0, 0.5], [0.3, 0.2, 0.1]]
    seen = [True, False, True]
    valid = [True, True, False]
    got = geometric_ensemble(torch.tensor(in_logits), torch.tensor(out_logits),
                             torch.tensor(seen), 0.4, 0.8, torch.tensor(valid))
    np.testing.assert_allclose(got.numpy(), _hand(in_logits, out_logits, seen, 0.4, 0.8, valid),
                               rtol=1e-5, atol=1e-6)
    # the probabilities sum to one and the no-object probability is the decoder's
    probs = got.exp()
    assert torch.allclose(probs.sum(-1), torch.ones(3), atol=1e-6)
    assert torch.allclose(probs[:, -1], torch.tensor(in_logits).softmax(-1)[:, -1], atol=1e-6)


def test_unseen_class_is_decided_by_clip():
    # the decoder prefers class 0 (seen); CLIP is sure of class 1 (unseen)
    in_logits = torch.tensor([[3.0, 0.0, -5.0]])
    out_logits = torch.tensor([[0.0, 6.0]])
    seen = torch.tensor([True, False])
    assert geometric_ensemble(in_logits, out_logits, seen).argmax(-1).item() == 1
    # with beta = 0 CLIP has no say on the unseen class
    assert geometric_ensemble(in_logits, out_logits, seen, beta=0.0).argmax(-1).item() == 0


def test_ensemble_errors():
    with pytest.raises(ValueError, match='C \\+ 1'):
        geometric_ensemble(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3, dtype=bool))
    with pytest.raises(ValueError, match='seen'):
        geometric_ensemble(torch.zeros(2, 4), torch.zeros(2, 3), torch.zeros(2, dtype=bool))
    with pytest.raises(ValueError, match='alpha'):
        OpenVocabEnsemble(alpha=1.5)


def test_seen_flags_by_name_and_synonym():
    ens = OpenVocabEnsemble(seen_classes=['red circle', 'person, child'])
    assert ens.seen_flags(['child', 'red star', 'red circle']).tolist() == [True, False, True]
    assert OpenVocabEnsemble().seen_flags(['a', 'b']).tolist() == [False, False]


def test_mask_pool_equals_a_loop():
    torch.manual_seed(0)
    feats = torch.randn(2, 5, 4, 4)
    masks = torch.randn(2, 3, 4, 4)
    masks[1, 2] = -1.0  # empty mask
    pooled, valid = binary_mask_pool(feats, masks)
    for b in range(2):
        for q in range(3):
            m = masks[b, q] > 0
            if m.any():
                expect = feats[b][:, m].mean(1)
                assert torch.allclose(pooled[b, q], expect, atol=1e-5)
            assert bool(valid[b, q]) == bool(m.any())
    assert torch.equal(pooled[1, 2], torch.zeros(5))


def test_synonyms():
    names, owner = split_synonyms(['person, child', 'car'])
    assert names == ['person', 'child', 'car'] and owner.tolist() == [0, 0, 1]
    logits = torch.tensor([[1.0, 3.0, 2.0]])
    assert max_over_synonyms(logits, owner, 2).tolist() == [[3.0, 2.0]]
    with pytest.raises(ValueError, match='class 1'):
        split_synonyms(['a', ' , '])
