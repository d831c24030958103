"""Zero-shot 3D classification: a point encoder aligned to a frozen CLIP (ULIP-style)."""
import math
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.dist import get_dist_info
from torch import Tensor, nn

from mmfusion.models.common import FusionBaseModel
from mmfusion.models.encoders.text.prompt_templates import get_templates
from mmfusion.registry import MODELS
from mmfusion.structures import FusionDataSample
from mmfusion.utils.dependency import require

from .teacher import DepthViewTeacher


@MODELS.register_module()
class PointCLIPAligner(FusionBaseModel):
    """Align a point encoder to a frozen CLIP's image and text embeddings.

    ULIP's recipe (Xue et al., CVPR 2023) on I2P-MAE's depth views: every
    cloud is rendered into the three depth views, the frozen CLIP image
    tower embeds each view and the view embeddings are averaged (the image
    side of the triplet); the frozen CLIP text tower embeds the cloud's
    caption. The point encoder plus a linear projection ``point_proj`` is
    trained with two symmetric InfoNCE losses, point-text and point-image,
    with one learnable temperature (init 1/0.07, clamped at 100).

    ``predict`` classifies clouds zero-shot: every name of ``classes`` is
    embedded with prompt ensembling over ``test_templates`` by the frozen
    text tower, and the point embedding is scored against them, so classes
    the point encoder never saw are classified through CLIP's text space.

    Args:
        point_encoder: point encoder config (``I2PMAEEncoder`` or
            ``PointMAEEncoder``; its ``pooled`` output is projected).
        teacher: :class:`DepthViewTeacher` config whose encoder is the CLIP
            image tower (``pooled`` = CLIP image embedding).
        text_encoder: the CLIP text tower (frozen).
        embed_dim: the CLIP embedding width.
        classes: default class names for ``predict``.
        test_templates: prompt templates (a set name or a list).
        image_loss_weight, text_loss_weight: weights of the two losses.
    """

    def __init__(self,
                 point_encoder: dict,
                 teacher: dict,
                 text_encoder: dict,
                 embed_dim: int,
                 classes: Optional[Sequence[str]] = None,
                 test_templates: Union[str, Sequence[str]] = 'simple',
                 image_loss_weight: float = 1.0,
                 text_loss_weight: float = 1.0,
                 init_logit_scale: float = math.log(1 / 0.07),
                 max_logit_scale: float = 100.0,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.point_encoder = MODELS.build(point_encoder)
        self.teacher = MODELS.build(teacher)
        if not isinstance(self.teacher, DepthViewTeacher):
            raise TypeError(f'PointCLIPAligner teacher must be a DepthViewTeacher, got '
                            f'{type(self.teacher).__name__}')
        self.text_encoder = MODELS.build(text_encoder)
        self.text_encoder.requires_grad_(False)
        self.point_proj = nn.Linear(self.point_encoder.out_channels, embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)))
        self.max_log_scale = math.log(max_logit_scale)
        self.classes = list(classes) if classes else None
        self.test_templates = get_templates(test_templates)
        self.image_loss_weight = image_loss_weight
        self.text_loss_weight = text_loss_weight
        self._open_clip = require('open_clip', 'PointCLIPAligner')

    def train(self, mode: bool = True) -> 'PointCLIPAligner':
        super().train(mode)
        self.text_encoder.eval()  # frozen tower: no dropout
        return self

    def scale(self) -> Tensor:
        return self.logit_scale.clamp(max=self.max_log_scale).exp()

    def embed_points(self, points: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        """(B, N, 3+) clouds -> (B, D) L2-normalised embeddings in CLIP's space."""
        pooled = self.point_encoder(points, lengths)['pooled']
        return F.normalize(self.point_proj(pooled), dim=-1)

    @torch.no_grad()
    def embed_views(self, points: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        """The frozen CLIP image embedding of the clouds' depth views, averaged, (B, D)."""
        views, _ = self.teacher.render(points, lengths)
        B, V = views.shape[:2]
        feats = self.teacher.encoder(self.teacher.to_input(views))['pooled'].float()
        feats = F.normalize(feats, dim=-1).unflatten(0, (B, V)).mean(1)
        return F.normalize(feats, dim=-1)

    @torch.no_grad()
    def embed_texts(self, texts: List[str]) -> Tensor:
        return F.normalize(self.text_encoder(texts)['pooled'].float(), dim=-1)

    def loss(self, inputs: Dict, data_samples=None) -> Dict[str, Tensor]:
        if 'text' not in inputs:
            raise KeyError('PointCLIPAligner needs inputs["text"]: one caption per cloud')
        points, lengths = inputs['points'], inputs.get('points_lengths')
        point_feats = self.embed_points(points, lengths)
        scale = self.scale()
        rank, world_size = get_dist_info()
        loss_fn = self._open_clip.loss.ClipLoss(gather_with_grad=True, rank=rank,
                                                world_size=world_size)
        losses = dict(logit_scale=scale.detach())
        # embeddings first, not inside loss_fn(...): a call that breaks the graph there leaves the
        # new loss_fn object on the stack, which recompiles every batch under torch.compile
        if self.text_loss_weight:
            text_feats = self.embed_texts(inputs['text'])
            losses['loss_text'] = self.text_loss_weight * loss_fn(point_feats, text_feats, scale)
        if self.image_loss_weight:
            view_feats = self.embed_views(points, lengths)
            losses['loss_image'] = self.image_loss_weight * loss_fn(point_feats, view_feats, scale)
        return losses

    def _forward(self, inputs: Dict, data_samples=None) -> Tensor:
        return self.embed_points(inputs['points'], inputs.get('points_lengths'))

    @torch.no_grad()
    def predict(self, inputs: Dict, data_samples: Optional[List[FusionDataSample]] = None,
                classes: Optional[Sequence[str]] = None) -> List[FusionDataSample]:
        classes = classes or self.classes
        if not classes:
            raise ValueError('zero-shot prediction needs class names: set `classes` in the model '
                             'config or pass them to predict()')
        class_feats = self.text_encoder.embed_class_names(list(classes), self.test_templates)
        point_feats = self.embed_points(inputs['points'], inputs.get('points_lengths'))
        scores = (self.scale() * point_feats @ F.normalize(class_feats.float(), dim=-1).t()
                  ).softmax(-1)
        data_samples = self.fill_data_samples(data_samples, len(scores))
        for sample, score in zip(data_samples, scores):
            sample.pred_score = score
            sample.pred_label = score.argmax()
        return data_samples
