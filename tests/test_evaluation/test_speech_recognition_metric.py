"""WER/CER through jiwer against a hand-written Levenshtein distance."""
import pytest

from mmfusion.evaluation.metrics import SpeechRecognitionMetric, error_rates
from mmfusion.structures import FusionDataSample


def _edits(ref, hyp):
    """Levenshtein distance between two token lists (dynamic programming)."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


REFS = ['the red circle is left of the blue star', 'two green squares', 'a small cross']
HYPS = ['the red circles left of blue star', 'two green squares', 'a small cross on a']


def test_corpus_wer_and_cer_equal_summed_edit_distances():
    got = error_rates(HYPS, REFS)
    words = sum(_edits(r.split(), h.split()) for r, h in zip(REFS, HYPS))
    chars = sum(_edits(list(r), list(h)) for r, h in zip(REFS, HYPS))
    assert got['WER'] == pytest.approx(100 * words / sum(len(r.split()) for r in REFS))
    assert got['CER'] == pytest.approx(100 * chars / sum(len(r) for r in REFS))
    assert got['WER'] > 0 and error_rates(REFS, REFS) == dict(WER=0.0, CER=0.0)


def test_metric_reads_data_samples_and_normalises_case_and_spaces():
    metric = SpeechRecognitionMetric()
    samples = [FusionDataSample(metainfo={}) for _ in REFS]
    for s, r, h in zip(samples, REFS, HYPS):
        s.gt_text, s.pred_text = r.upper(), '  ' + h
    metric.process(None, samples)
    assert metric.compute_metrics(metric.results) == pytest.approx(error_rates(HYPS, REFS))
    with pytest.raises(ValueError, match='empty'):
        error_rates(['x'], [''])


def test_unit_error_rate_counts_unit_edits_and_length_ratio():
    import torch

    from mmfusion.evaluation.metrics import UnitErrorRateMetric
    pred = [[1, 2, 3], [], [5, 5, 6, 7]]
    ref = [[1, 2, 4, 5], [7], [5, 6, 7]]
    metric = UnitErrorRateMetric()
    metric.process(None, [dict(pred_units=torch.tensor(p), gt_units=torch.tensor(r))
                          for p, r in zip(pred, ref)])
    got = metric.compute_metrics(metric.results)
    edits = sum(_edits(r, p) for r, p in zip(ref, pred))
    assert got['UER'] == pytest.approx(100 * edits / 8)
    assert got['len_ratio'] == pytest.approx(7 / 8)
