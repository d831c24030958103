import numpy as np
import pytest
import torch
from sklearn.metrics import top_k_accuracy_score

from mmfusion.evaluation.metrics import OpenVocabAccuracy


def test_matches_sklearn_and_splits_seen_novel():
    rng = np.random.default_rng(0)
    classes = [f'c{i}' for i in range(7)]
    scores = rng.random((50, 7)).astype(np.float32)
    labels = rng.integers(0, 7, 50)
    metric = OpenVocabAccuracy(topk=(1, 3), novel_classes=['c5', 'c6'])
    metric.dataset_meta = dict(classes=classes)
    metric.process({}, [dict(pred_score=torch.from_numpy(s), gt_label=torch.tensor(label))
                        for s, label in zip(scores, labels)])
    out = metric.compute_metrics(metric.results)
    assert out['top1'] == pytest.approx(top_k_accuracy_score(labels, scores, k=1,
                                                             labels=range(7)))
    assert out['top3'] == pytest.approx(top_k_accuracy_score(labels, scores, k=3,
                                                             labels=range(7)))
    novel = labels >= 5
    assert out['top1_novel'] == pytest.approx((scores[novel].argmax(1) == labels[novel]).mean())
    assert out['top1_seen'] == pytest.approx((scores[~novel].argmax(1) == labels[~novel]).mean())
    assert out['chance'] == pytest.approx(1 / 7)


def test_unknown_novel_class():
    metric = OpenVocabAccuracy(novel_classes=['zebra'])
    metric.dataset_meta = dict(classes=['a', 'b'])
    with pytest.raises(ValueError, match='zebra'):
        metric.compute_metrics([dict(rank=0, label=0, num_classes=2)])


def test_ties_count_against_the_prediction():
    metric = OpenVocabAccuracy(topk=(1, 2))
    metric.dataset_meta = dict(classes=['a', 'b', 'c'])
    metric.process({}, [dict(pred_score=torch.full((3, ), 1 / 3), gt_label=torch.tensor(1))])
    out = metric.compute_metrics(metric.results)
    assert out['top1'] == 0.0 and out['top2'] == 0.0
