import math
import random
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.dist import get_dist_info
from torch import Tensor, nn

from mmfusion.models.common.base_model import FusionBaseModel
from mmfusion.models.encoders.text.prompt_templates import fill_templates, get_templates
from mmfusion.registry import MODELS
from mmfusion.structures import FusionDataSample
from mmfusion.utils.dependency import require


@MODELS.register_module()
class CLIPPretrainer(FusionBaseModel):
    """Contrastive image-text pretraining (CLIP) with zero-shot prediction.

    ``inputs['img']`` are images and ``inputs['text']`` their texts (captions,
    or class names filled into ``train_templates``). The loss is open_clip's
    ``ClipLoss`` (symmetric InfoNCE, gathering features across ranks under
    DDP) with a learnable temperature clamped at ``max_logit_scale``.

    ``predict`` classifies images zero-shot among ``classes`` (from the config,
    or given per call): every name is embedded with prompt ensembling over
    ``test_templates``; ``pred_score`` holds softmax probabilities.
    """

    def __init__(self,
                 image_encoder: dict,
                 text_encoder: dict,
                 data_preprocessor: Optional[dict] = None,
                 train_templates: Union[str, Sequence[str], None] = None,
                 test_templates: Union[str, Sequence[str]] = 'simple',
                 classes: Optional[Sequence[str]] = None,
                 init_logit_scale: float = math.log(1 / 0.07),
                 max_logit_scale: float = 100.0,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.image_encoder = MODELS.build(image_encoder)
        self.text_encoder = MODELS.build(text_encoder)
        self.logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)))
        self.max_log_scale = math.log(max_logit_scale)
        self.train_templates = get_templates(train_templates) if train_templates else None
        self.test_templates = get_templates(test_templates)
        self.classes = list(classes) if classes else None
        self._open_clip = require('open_clip', 'CLIPPretrainer')

    def scale(self) -> Tensor:
        return self.logit_scale.clamp(max=self.max_log_scale).exp()

    def embed_images(self, img: Tensor, data_samples=None) -> Tensor:
        # cache_ids breaks the graph when a cache is attached: not inside forward_cached(...),
        # whose bound method would be left on the stack (a new object every batch, a recompile)
        ids = self.image_encoder.cache_ids(data_samples)
        feats = self.image_encoder.forward_cached(img, ids, keys=['pooled'])['pooled']
        return F.normalize(feats, dim=-1)

    def embed_texts(self, texts: List[str]) -> Tensor:
        return F.normalize(self.text_encoder(self.text_inputs(texts))['pooled'], dim=-1)

    # torch.compile: excluded, random templates and tokenization are Python string work.
    @torch.compiler.disable
    def text_inputs(self, texts: Sequence[str]) -> Union[Tensor, List[str]]:
        """``texts``, each in a random training template (if any), as the
        text encoder's token ids when it tokenizes to a tensor."""
        texts = list(texts)
        if self.train_templates is not None:
            texts = [fill_templates([random.choice(self.train_templates)], [t])[0] for t in texts]
        ids = self.text_encoder.tokenize(texts) if hasattr(self.text_encoder, 'tokenize') else None
        return ids if torch.is_tensor(ids) else texts

    def _forward(self, inputs: Dict, data_samples=None) -> Tensor:
        """L2-normalised image embeddings."""
        return self.embed_images(inputs['img'], data_samples)

    def loss(self, inputs: Dict, data_samples=None) -> Dict[str, Tensor]:
        if 'text' not in inputs:
            raise KeyError('CLIPPretrainer needs inputs["text"]: one text per image')
        # Strings first: under torch.compile, no traced frame holds them past this line
        # (a frame that does is guarded on every text and recompiles each batch).
        text_inputs = self.text_inputs(inputs['text'])
        image_features = self.embed_images(inputs['img'], data_samples)
        text_features = F.normalize(self.text_encoder(text_inputs)['pooled'], dim=-1)
        scale = self.scale()
        # Built per call: the process group may start after the model is built.
        rank, world_size = get_dist_info()
        loss_fn = self._open_clip.loss.ClipLoss(gather_with_grad=True, rank=rank,
                                                world_size=world_size)
        return dict(loss_clip=loss_fn(image_features, text_features, scale),
                    logit_scale=scale.detach())

    @torch.no_grad()
    def predict(self, inputs: Dict, data_samples: Optional[List[FusionDataSample]] = None,
                classes: Optional[Sequence[str]] = None) -> List[FusionDataSample]:
        classes = classes or self.classes
        if not classes:
            raise ValueError('zero-shot prediction needs class names: set `classes` in the model '
                             'config or pass them to predict()')
        # Cached by the text encoder: each class list is embedded once per evaluation.
        class_features = self.text_encoder.embed_class_names(list(classes), self.test_templates)
        image_features = self.embed_images(inputs['img'], data_samples)
        scores = (self.scale() * image_features @ class_features.t()).softmax(-1)
        data_samples = self.fill_data_samples(data_samples, len(scores))
        for sample, score in zip(data_samples, scores):
            sample.pred_score = score
            sample.pred_label = score.argmax()
        return data_samples
