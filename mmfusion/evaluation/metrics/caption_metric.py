import re
from typing import Dict, List, Optional, Sequence

from mmengine.evaluator import BaseMetric

from mmfusion.registry import METRICS

# The punctuation pycocoevalcap's PTBTokenizer drops.
_PUNCT = {"''", "'", '``', '`', '-LRB-', '-RRB-', '-LCB-', '-RCB-', '.', '?', '!', ',', ':', '-',
          '--', '...', ';'}


def simple_tokenize(text: str) -> str:
    """Lower-case, split off punctuation and drop it, like the COCO caption
    evaluation's PTB tokenizer for plain captions (no Java needed)."""
    tokens = re.findall(r"\w+(?:'\w+)?|\.\.\.|--|[^\w\s]", text.lower())
    return ' '.join(t for t in tokens if t not in _PUNCT)


def caption_scores(preds: Dict[int, str], refs: Dict[int, List[str]],
                   tokenizer: str = 'simple') -> Dict[str, float]:
    """BLEU-1..4 and CIDEr(-D) of pycocoevalcap on ``{id: caption}`` and
    ``{id: [references]}``. ``tokenizer='ptb'`` runs pycocoevalcap's Java PTB
    tokenizer (needs ``java``), ``'simple'`` a Python equivalent for plain text."""
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
    except ImportError as e:
        raise ImportError('CaptionMetric needs pycocoevalcap: pip install pycocoevalcap') from e
    missing = set(preds) ^ set(refs)
    if missing:
        raise KeyError(f'captions and references cover different ids: {sorted(missing)[:5]}')
    if tokenizer == 'ptb':
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
        tok = PTBTokenizer()
        res = tok.tokenize({k: [dict(caption=v)] for k, v in preds.items()})
        gts = tok.tokenize({k: [dict(caption=c) for c in v] for k, v in refs.items()})
    elif tokenizer == 'simple':
        res = {k: [simple_tokenize(v)] for k, v in preds.items()}
        gts = {k: [simple_tokenize(c) for c in v] for k, v in refs.items()}
    else:
        raise ValueError(f'tokenizer must be "simple" or "ptb", got {tokenizer!r}')
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    out = {f'BLEU-{n + 1}': float(b) for n, b in enumerate(bleu)}
    out['CIDEr'] = float(cider)
    return out


@METRICS.register_module()
class CaptionMetric(BaseMetric):
    """Image captioning: ``BLEU-1``..``BLEU-4`` and ``CIDEr`` from pycocoevalcap
    (raw scores, CIDEr ~ 0-10; multiply by 100 for the papers' tables).

    Reads ``pred_caption`` (str) and ``gt_caption`` (list of reference str,
    as :class:`CocoPanopticCaptionDataset` gives) per sample. CIDEr's IDF
    comes from the evaluated references, so score the whole split at once.
    """

    default_prefix: Optional[str] = 'caption'

    def __init__(self, tokenizer: str = 'simple', collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if tokenizer not in ('simple', 'ptb'):
            raise ValueError(f'tokenizer must be "simple" or "ptb", got {tokenizer!r}')
        self.tokenizer = tokenizer

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            for key in ('pred_caption', 'gt_caption'):
                if key not in sample:
                    raise KeyError(f'CaptionMetric needs {key}; sample {sample.get("img_path")} '
                                   'has none')
            if not sample['gt_caption']:
                raise ValueError(f'sample {sample.get("img_path")} has no reference caption')
            self.results.append((sample['pred_caption'], list(sample['gt_caption'])))

    def compute_metrics(self, results: List[tuple]) -> Dict[str, float]:
        preds = {i: r[0] for i, r in enumerate(results)}
        refs = {i: r[1] for i, r in enumerate(results)}
        return caption_scores(preds, refs, self.tokenizer)
