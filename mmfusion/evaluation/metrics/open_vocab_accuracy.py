from typing import Dict, List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric

from mmfusion.registry import METRICS


@METRICS.register_module()
class OpenVocabAccuracy(BaseMetric):
    """Top-k classification accuracy, split into seen and novel classes.

    Reads ``pred_score`` (C,) and ``gt_label`` from each data sample. Class
    names come from the dataset's ``metainfo['classes']``; samples whose true
    class is in ``novel_classes`` count towards ``top1_novel``, the others
    towards ``top1_seen``. ``chance`` is ``1 / C``, the top-1 of a random guess
    over all C candidate classes. Values are fractions in [0, 1].
    """

    default_prefix = 'zero_shot'

    def __init__(self, topk: Sequence[int] = (1, 5), novel_classes: Sequence[str] = (),
                 collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = tuple(topk)
        self.novel_classes = set(novel_classes)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            score = sample['pred_score'].float().cpu()
            label = int(sample['gt_label'])
            # Other classes scoring at least as high as the true one: ties count
            # against the prediction, so a collapsed (constant) score gets no credit.
            rank = int((score >= score[label]).sum()) - 1
            self.results.append(dict(rank=rank, label=label,
                                     num_classes=score.numel()))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        classes = list(self.dataset_meta.get('classes', [])) if self.dataset_meta else []
        unknown = self.novel_classes - set(classes)
        if unknown:
            raise ValueError(f'novel_classes {sorted(unknown)} are not dataset classes {classes}')
        novel = {classes.index(c) for c in self.novel_classes}
        ranks = torch.tensor([r['rank'] for r in results])
        is_novel = torch.tensor([r['label'] in novel for r in results], dtype=torch.bool)
        metrics = {f'top{k}': (ranks < k).float().mean().item() for k in self.topk}
        if novel:
            for name, sel in (('seen', ~is_novel), ('novel', is_novel)):
                if sel.any():
                    metrics[f'top1_{name}'] = (ranks[sel] < 1).float().mean().item()
        metrics['chance'] = 1.0 / results[0]['num_classes']
        return metrics
