"""RetrievalRecallMetric against a brute-force numpy Recall@K."""
import numpy as np
import torch

from mmfusion.registry import METRICS


def _brute_force(img, txt, owner, k):
    img = img / np.linalg.norm(img, axis=1, keepdims=True)
    txt = txt / np.linalg.norm(txt, axis=1, keepdims=True)
    sim = img @ txt.T
    i2t = [any(owner[j] == i for j in sorted(range(len(txt)), key=lambda j: -sim[i, j])[:k])
           for i in range(len(img))]
    t2i = [t_own in sorted(range(len(img)), key=lambda i: -sim[i, t])[:k]
           for t, t_own in enumerate(owner)]
    return 100 * np.mean(i2t), 100 * np.mean(t2i)


def test_against_brute_force():
    rng = np.random.default_rng(0)
    n, d = 12, 8
    img = rng.normal(size=(n, d))
    counts = rng.integers(1, 4, n)
    owner = np.repeat(np.arange(n), counts)
    txt = img[owner] + rng.normal(scale=1.2, size=(len(owner), d))
    samples = [dict(pred_image_embedding=torch.tensor(img[i]),
                    pred_text_embeddings=torch.tensor(txt[owner == i])) for i in range(n)]
    metric = METRICS.build(dict(type='RetrievalRecallMetric'))
    metric.process({}, samples[:5])
    metric.process({}, samples[5:])
    out = metric.compute_metrics(metric.results)
    for k in (1, 5):
        i2t, t2i = _brute_force(img, txt, owner, k)
        assert np.isclose(out[f'i2t_R@{k}'], i2t) and np.isclose(out[f't2i_R@{k}'], t2i)
    assert 0 < out['t2i_R@1'] < out['t2i_R@5'] <= 100  # the fixture is neither trivial nor hopeless
