from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmfusion.models.common.base_model import FusionBaseModel
from mmfusion.registry import MODELS
from mmfusion.structures import FusionDataSample


@MODELS.register_module()
class FrozenFeatureClassifier(FusionBaseModel):
    """A linear (or MLP) probe on one output of an encoder.

    The classic evaluation of a frozen foundation model: ``encoder`` (any
    registered encoder, usually frozen) produces ``feature_key`` (B, C); a
    head trained with cross-entropy maps it to ``num_classes`` scores. The
    encoder runs through ``forward_cached``, so a ``FeatureCacheHook`` makes
    epochs after the first skip it.
    """

    def __init__(self,
                 encoder: dict,
                 num_classes: int,
                 in_channels: int,
                 feature_key: str = 'pooled',
                 hidden_channels: Optional[int] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.encoder = MODELS.build(encoder)
        self.feature_key = feature_key
        if hidden_channels:
            self.head = nn.Sequential(nn.Linear(in_channels, hidden_channels), nn.GELU(),
                                      nn.Linear(hidden_channels, num_classes))
        else:
            self.head = nn.Linear(in_channels, num_classes)

    def extract_feat(self, img: Tensor, data_samples=None) -> Tensor:
        ids = self.encoder.cache_ids(data_samples)  # see CLIPPretrainer.embed_images
        feats = self.encoder.forward_cached(img, ids, keys=[self.feature_key])
        return feats[self.feature_key]

    def _forward(self, inputs: Dict, data_samples=None) -> Tensor:
        """(B, num_classes) logits."""
        return self.head(self.extract_feat(inputs['img'], data_samples))

    def loss(self, inputs: Dict, data_samples: Optional[List[FusionDataSample]] = None
             ) -> Dict[str, Tensor]:
        if not data_samples or any('gt_label' not in s for s in data_samples):
            raise KeyError('FrozenFeatureClassifier needs data_samples with gt_label '
                           '(a dataset that sets "gt_label", packed by PackFusionInputs)')
        logits = self._forward(inputs, data_samples)
        labels = torch.stack([s.gt_label for s in data_samples]).to(logits.device)
        return dict(loss_cls=F.cross_entropy(logits, labels))

    def predict(self, inputs: Dict, data_samples: Optional[List[FusionDataSample]] = None
                ) -> List[FusionDataSample]:
        logits = self._forward(inputs, data_samples)
        data_samples = self.fill_data_samples(data_samples, logits.shape[0])
        for sample, score in zip(data_samples, logits.softmax(-1)):
            sample.pred_score = score
            sample.pred_label = score.argmax()
        return data_samples
