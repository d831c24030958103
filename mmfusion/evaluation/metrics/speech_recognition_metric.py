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
            get = sample.get if isinstance(sample, dict) else sample.__getattribute__
            self.results.append((get('pred_text'), get('gt_text')))

    def compute_metrics(self, results: List) -> Dict[str, float]:
        hyps, refs = zip(*results)
        return error_rates(hyps, refs)
