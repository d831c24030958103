"""Region-text pretraining of a segmentation backbone and pixel decoder.

X-Decoder starts from a backbone pretrained on image-text data (FocalNet /
UniCL in the paper). A tiny from-scratch backbone trained only through the
decoder learns object *shape* slowly: per-pixel or query-level losses are
dominated by colour and mask quality (``configs/xdecoder/README.md``). This
model pretrains the backbone and the pixel decoder directly on what the
decoder's queries read: every ground-truth segment's pixel-decoder features,
averaged over its mask (the mask pooling a masked-attention query does), are
scored against the class names' text embeddings.
"""
import math
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmfusion.models.common.base_model import FusionBaseModel
from mmfusion.models.common.mask import batch_gt_masks
from mmfusion.models.common.open_vocab_seg import OpenVocabSegMixin
from mmfusion.registry import MODELS
from mmfusion.structures import FusionDataSample


def mask_pool(feat: Tensor, masks: Tensor) -> Tensor:
    """Average of ``feat`` (C, h, w) over each mask of ``masks`` (N, H, W),
    the masks area-resized to (h, w): (N, C). Empty masks give zeros."""
    weights = F.adaptive_avg_pool2d(masks[:, None].float(), feat.shape[-2:])[:, 0]
    area = weights.flatten(1).sum(1, keepdim=True)
    return torch.einsum('nhw,chw->nc', weights, feat.float()) / area.clamp(min=1e-6)


@MODELS.register_module()
class RegionTextHead(BaseModule):
    """Pixel decoder + region classifier: the mask-pooled multi-scale maps,
    concatenated and projected to the text width, scored by cosine against
    class embeddings times a learnable ``exp(logit_scale)``.

    Named ``head`` in :class:`RegionTextPretrainer` with its pixel decoder at
    ``head.pixel_decoder``, so an X-Decoder config's ``load_from`` picks up
    the pretrained backbone and pixel decoder by their keys.

    Args:
        pixel_decoder (dict): e.g. ``TransformerEncoderFPNPixelDecoder``; its
            multi-scale maps are pooled.
        in_channels (int): Channels of each multi-scale map.
        num_levels (int): Number of multi-scale maps.
        embed_dim (int): Text-embedding width.
        init_logit_scale (float): Initial log temperature, ``log(1/0.07)``.
    """

    def __init__(self, pixel_decoder: dict, in_channels: int, num_levels: int, embed_dim: int,
                 init_logit_scale: float = math.log(1 / 0.07),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.pixel_decoder = MODELS.build(pixel_decoder)
        self.proj = nn.Linear(in_channels * num_levels, embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)))
        self.num_levels = num_levels

    def forward(self, feats: List[Tensor], batch_img_metas: Sequence[dict],
                batch_masks: Sequence[Tensor], class_embeds: Sequence[Tensor]) -> List[Tensor]:
        """Per image (N_b, C_b) logits of its (N_b, H, W) masks among its
        (C_b, D) class embeddings."""
        _, multi_scale = self.pixel_decoder(feats, batch_img_metas)
        if len(multi_scale) != self.num_levels:
            raise ValueError(f'RegionTextHead expects {self.num_levels} multi-scale maps, the '
                             f'pixel decoder gave {len(multi_scale)}')
        scale = self.logit_scale.clamp(max=math.log(100.0)).exp()
        logits = []
        for b, (masks, text) in enumerate(zip(batch_masks, class_embeds)):
            pooled = torch.cat([mask_pool(level[b], masks) for level in multi_scale], dim=1)
            region = F.normalize(self.proj(pooled), dim=-1)
            logits.append(scale * region @ F.normalize(text.to(region.dtype), dim=-1).t())
        return logits


@MODELS.register_module()
class RegionTextPretrainer(OpenVocabSegMixin, FusionBaseModel):
    """Backbone -> :class:`RegionTextHead`; every ground-truth segment
    (thing instances plus one segment per stuff label, as X-Decoder trains on)
    is classified among the image's class names; softmax cross-entropy.

    Training only: the checkpoint is the start of a downstream model (e.g.
    ``load_from`` in an X-Decoder config, which matches ``backbone.*``,
    ``head.pixel_decoder.*`` and ``head.logit_scale``, the same cosine
    temperature in both; X-Decoder's frozen ``text_encoder.*`` is the same
    CLIP); the loss dict logs the region accuracy
    (``acc``) of each batch. :meth:`region_logits` classifies the gt
    segments of given samples.

    Args:
        backbone (dict): Any backbone returning maps high to low resolution.
        head (dict): :class:`RegionTextHead` (``embed_dim`` defaults to the
            text encoder's).
        text_encoder (dict): e.g. a frozen ``OpenCLIPTextEncoder``.
        templates (str | list[str]): Prompt templates for class names.
        classes (list[str], optional): Default class names.
        thing_classes (list[str], optional): Which of them are things.
        data_preprocessor (dict, optional): e.g. ``MultiModalDataPreprocessor``.
    """
    # The pixel decoder's stride-4 path and mask-feature conv are not on the
    # pooled path (they serve the downstream model): DDP must allow unused
    # parameters (read by mmfusion.utils.dist.prepare_launcher).
    find_unused_parameters = True

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 text_encoder: dict,
                 templates: Union[str, Sequence[str]] = 'simple',
                 classes: Optional[Sequence[str]] = None,
                 thing_classes: Optional[Sequence[str]] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.text_encoder = MODELS.build(text_encoder)
        head = dict(dict(type='RegionTextHead', embed_dim=self.text_encoder.embed_dim), **head)
        self.head = MODELS.build(head)
        self.init_class_names(templates, classes, thing_classes)

    def region_logits(self, img: Tensor, data_samples: Sequence[FusionDataSample]):
        """Per image the logits of its gt segments and their labels."""
        metas = self._metas(data_samples, img)
        segments = [self.gt_segments(s, self.classes_of(s)) for s in data_samples]
        masks = batch_gt_masks(segments, img.device, metas)
        logits = self.head(self.extract_feat(img), metas, masks,
                           self.batch_class_embeds(data_samples))
        return logits, [seg.labels.to(img.device) for seg in segments]

    def extract_feat(self, img: Tensor) -> List[Tensor]:
        """Backbone maps, high to low resolution."""
        feats = self.backbone(img)
        return list(feats['maps'] if isinstance(feats, dict) else feats)

    def loss(self, inputs: Dict, data_samples: List[FusionDataSample]) -> Dict[str, Tensor]:
        logits, labels = self.region_logits(inputs['img'], data_samples)
        for x, y, sample in zip(logits, labels, data_samples):
            if len(y) and int(y.max()) >= x.shape[1]:
                raise ValueError(f'gt label {int(y.max())} of {sample.metainfo.get("img_path")} '
                                 f'is outside its {x.shape[1]} class names')
        num_cls = max(x.shape[1] for x in logits)
        # Per-image class lists of different lengths: absent classes at -inf.
        padded = torch.cat([F.pad(x, (0, num_cls - x.shape[1]), value=float('-inf'))
                            for x in logits])
        labels = torch.cat(labels)
        with torch.no_grad():
            acc = (padded.argmax(1) == labels).float().mean()
        return dict(loss_region=F.cross_entropy(padded, labels), acc=acc)

    def _forward(self, inputs: Dict, data_samples: Optional[List[FusionDataSample]] = None):
        """The pixel decoder's (mask features, multi-scale maps)."""
        img = inputs['img']
        samples = self.fill_data_samples(data_samples, len(img))
        return self.head.pixel_decoder(self.extract_feat(img), self._metas(samples, img))

    def predict(self, inputs: Dict, data_samples: Optional[List[FusionDataSample]] = None):
        raise RuntimeError(
            'RegionTextPretrainer only trains (mode "loss") or returns the pixel decoder\'s maps '
            '(mode "tensor"): evaluate the downstream model it initialises')
