from typing import Dict, List, Optional, Sequence

from mmengine.evaluator import BaseMetric

from mmfusion.registry import METRICS
from mmfusion.utils.dependency import require


def error_rates(hypotheses: Sequence[str], references: Sequence[str]) -> Dict[str, float]:
    """Corpus WER and CER in percent (jiwer: total edits / total reference
    words or characters), on lower-cased, whitespace-normalised text."""
    jiwer = require('jiwer', 'SpeechRecognitionMetric')
    if len(hypotheses) != len(references):
        raise ValueError(f'{len(hypotheses)} hypotheses for {len(references)} references')
    if not references:
        raise ValueError('no utterances to score')
    refs = [' '.join(r.lower().split()) for r in references]
    hyps = [' '.join(h.lower().split()) for h in hypotheses]
    empty = [i for i, r in enumerate(refs) if not r]
    if empty:
        raise ValueError(f'references {empty[:5]} are empty: WER is undefined for them')
    return dict(WER=100 * jiwer.wer(refs, hyps), CER=100 * jiwer.cer(refs, hyps))


@METRICS.register_module()
class SpeechRecognitionMetric(BaseMetric):
    """ASR word and character error rates (``WER``, ``CER``, percent) with jiwer.

    Reads ``pred_text`` (the transcript) and ``gt_text`` (the reference) of
    each data sample; scores the whole split at once (corpus-level rates).
    """

    default_prefix: Optional[str] = 'asr'

    def process(self, data_batch, data_samples: Sequence) -> None:
        for sample in data_samples:
            self.results.append((sample.get('pred_text'), sample.get('gt_text')))

    def compute_metrics(self, results: List) -> Dict[str, float]:
        hyps, refs = zip(*results)
        return error_rates(hyps, refs)


def _unit_words(sequences) -> List[str]:
    """Unit sequences as space-separated words, for jiwer."""
    return [' '.join(f'u{u}' for u in seq) for seq in sequences]


@METRICS.register_module()
class UnitErrorRateMetric(BaseMetric):
    """Speech-unit sequences (TTS): unit error rate ``UER`` (percent; edit
    distance over units / reference units, as WER over words) and the
    length ratio ``len_ratio`` (predicted / reference units, 1 is ideal).

    Reads ``pred_units`` and ``gt_units`` (1-D integer tensors).
    """

    default_prefix: Optional[str] = 'tts'

    def process(self, data_batch, data_samples: Sequence) -> None:
        for sample in data_samples:
            self.results.append(([int(u) for u in sample.get('pred_units')],
                                 [int(u) for u in sample.get('gt_units')]))

    def compute_metrics(self, results: List) -> Dict[str, float]:
        preds, refs = zip(*results)
        rates = error_rates(_unit_words(preds), _unit_words(refs))
        return dict(UER=rates['WER'],
                    len_ratio=sum(map(len, preds)) / sum(map(len, refs)))
