from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from mmfusion.registry import METRICS


def retrieval_recall(image_embeds: np.ndarray, text_embeds: np.ndarray, text_to_image: np.ndarray,
                     ks: Sequence[int] = (1, 5)) -> Dict[str, float]:
    """Image->text and text->image Recall@K (percent) from embeddings.

    ``image_embeds`` (N, D), ``text_embeds`` (T, D), ``text_to_image`` (T,)
    the image index of each text. Similarity is the cosine. Image->text: an
    image is a hit when any of its texts ranks within the top K; text->image:
    its own image within the top K. Ties rank in index order.
    """
    img = torch.nn.functional.normalize(torch.as_tensor(image_embeds, dtype=torch.float64), dim=-1)
    txt = torch.nn.functional.normalize(torch.as_tensor(text_embeds, dtype=torch.float64), dim=-1)
    sim = img @ txt.T  # (N, T)
    owner = torch.as_tensor(text_to_image)
    # Rank of the best own text for each image, and of the own image for each text.
    order_i2t = torch.argsort(sim, dim=1, descending=True, stable=True)
    own = owner[order_i2t] == torch.arange(len(img))[:, None]
    rank_i2t = own.float().argmax(dim=1)
    order_t2i = torch.argsort(sim.T, dim=1, descending=True, stable=True)
    rank_t2i = (order_t2i == owner[:, None]).float().argmax(dim=1)
    out = {}
    for k in ks:
        out[f'i2t_R@{k}'] = 100 * float((rank_i2t < k).double().mean())
        out[f't2i_R@{k}'] = 100 * float((rank_t2i < k).double().mean())
    return out


@METRICS.register_module()
class RetrievalRecallMetric(BaseMetric):
    """Image–text retrieval Recall@K over the whole evaluated split:
    ``i2t_R@1``, ``i2t_R@5``, ``t2i_R@1``, ``t2i_R@5`` (percent).

    Each sample carries ``pred_image_embedding`` (D,) and
    ``pred_text_embeddings`` (K, D), the embeddings of its K ground-truth
    captions; every image is scored against every caption of the split.
    """

    default_prefix: Optional[str] = 'retrieval'

    def __init__(self, ks: Sequence[int] = (1, 5), collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.ks = tuple(ks)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            for key in ('pred_image_embedding', 'pred_text_embeddings'):
                if key not in sample:
                    raise KeyError(f'RetrievalRecallMetric needs {key}; sample '
                                   f'{sample.get("img_path")} has none')
            img = torch.as_tensor(sample['pred_image_embedding']).float().cpu().reshape(-1)
            txt = torch.as_tensor(sample['pred_text_embeddings']).float().cpu()
            if txt.ndim != 2 or txt.shape[1] != img.shape[0] or len(txt) == 0:
                raise ValueError(f'pred_text_embeddings of {sample.get("img_path")} must be '
                                 f'(K>0, {img.shape[0]}), got {tuple(txt.shape)}')
            self.results.append((img.numpy(), txt.numpy()))

    def compute_metrics(self, results: List[tuple]) -> Dict[str, float]:
        images = np.stack([r[0] for r in results])
        texts = np.concatenate([r[1] for r in results])
        owner = np.concatenate([np.full(len(r[1]), i) for i, r in enumerate(results)])
        return retrieval_recall(images, texts, owner, self.ks)
