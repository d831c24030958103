"""CaptionMetric equals pycocoevalcap's Bleu(4) and Cider on the same captions."""
import shutil

import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider

from mmfusion.evaluation.metrics.caption_metric import simple_tokenize
from mmfusion.registry import METRICS

PREDS = ['a red circle and a blue square on a plain background.',
         'two shapes: green star, red cross.',
         'a dotted background with a small yellow triangle.',
         'a large purple circle on a striped background.']
REFS = [['a large red circle and a small blue square on a plain background.',
         'a plain background with a red circle and a blue square.'],
        ['two shapes: green star, red cross.',
         'a green star and a red cross on a dotted background.'],
        ['a dotted background with a small yellow triangle.', 'one shape: yellow triangle.'],
        ['a small orange square on a striped background.', 'one shape: orange square.']]


def _metric(tokenizer):
    metric = METRICS.build(dict(type='CaptionMetric', tokenizer=tokenizer))
    metric.process({}, [dict(pred_caption=p, gt_caption=r) for p, r in zip(PREDS, REFS)])
    return metric.compute_metrics(metric.results)


def test_parity_with_pycocoevalcap_simple_tokenizer():
    gts = {i: [simple_tokenize(c) for c in r] for i, r in enumerate(REFS)}
    res = {i: [simple_tokenize(p)] for i, p in enumerate(PREDS)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    out = _metric('simple')
    assert out['BLEU-4'] == pytest.approx(bleu[3]) and out['CIDEr'] == pytest.approx(cider)
    assert 0 < out['BLEU-4'] < 1 and out['CIDEr'] > 0
    assert (simple_tokenize('Two shapes: green star, red cross.')
            == 'two shapes green star red cross')


@pytest.mark.skipif(shutil.which('java') is None, reason='PTBTokenizer needs java')
def test_simple_tokenizer_matches_ptb():
    assert _metric('simple') == pytest.approx(_metric('ptb'))


def test_errors():
    metric = METRICS.build(dict(type='CaptionMetric'))
    with pytest.raises(KeyError, match='gt_caption'):
        metric.process({}, [dict(pred_caption='x')])
    with pytest.raises(ValueError, match='tokenizer'):
        METRICS.build(dict(type='CaptionMetric', tokenizer='bpe'))
