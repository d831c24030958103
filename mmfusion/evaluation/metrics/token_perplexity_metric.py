"""Token perplexity of reference texts under a language model."""
import math
from typing import Dict, List, Optional, Sequence

from mmengine.evaluator import BaseMetric

from mmfusion.registry import METRICS


@METRICS.register_module()
class TokenPerplexityMetric(BaseMetric):
    """``exp(total NLL / total tokens)`` over the split, from each sample's
    ``token_nll`` (summed negative log-likelihood of its reference tokens, in
    nats) and ``num_tokens`` (as :class:`MultimodalCausalLM` predicts).
    Pooling over tokens, not averaging per-sample perplexities, is the usual
    corpus perplexity. Also reports the mean NLL per token.
    """

    default_prefix: Optional[str] = 'caption'

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            if 'token_nll' not in sample or 'num_tokens' not in sample:
                raise KeyError(f'TokenPerplexityMetric needs token_nll and num_tokens; sample '
                               f'{sample.get("img_path")} has none (no gt_caption?)')
            self.results.append((float(sample['token_nll']), int(sample['num_tokens'])))

    def compute_metrics(self, results: List[tuple]) -> Dict[str, float]:
        tokens = sum(n for _, n in results)
        if tokens == 0:
            raise ValueError('TokenPerplexityMetric: no reference tokens were scored')
        nll = sum(v for v, _ in results) / tokens
        return dict(perplexity=math.exp(nll), nll_per_token=nll)
