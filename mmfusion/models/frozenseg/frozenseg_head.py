"""FrozenSeg's head: the pixel decoder with its SAM branch, the injecting
masked-attention decoder, cosine class logits against the text classifier,
Mask2Former's losses and the shared mask post-processing."""
import math
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmfusion.models.common.mask import SEG_TASKS, MaskPostProcessor, pad_class_logits
from mmfusion.models.common.open_vocab_ensemble import max_over_synonyms
from mmfusion.registry import MODELS


@MODELS.register_module()
class FrozenSegHead(BaseModule):
    """Decodes frozen CLIP maps and a frozen SAM embedding into masks with
    open-vocabulary class logits.

    Args:
        pixel_decoder (dict): :class:`FrozenSegPixelDecoder`.
        transformer_decoder (dict): :class:`FrozenSegDecoder`; its
            ``cls_out_channels`` is set to ``embed_dim``.
        embed_dim (int): Width of the CLIP text embeddings.
        criterion (dict): ``MaskCriterion`` (Mask2Former's weights: CE 2.0
            with no-object 0.1, BCE 5.0, Dice 5.0, 12,544 points).
        init_logit_scale (float): ``log(1 / 0.07)``, as the official code.
        max_logit_scale (float): Clamp of ``exp(logit_scale)`` (100).
        test_cfg (dict): ``task`` (``'semantic'``, ``'panoptic'`` or
            ``'instance'``), ``object_mask_threshold`` (0.8),
            ``overlap_threshold`` (0.8), ``max_per_image`` (100).
    """

    def __init__(self,
                 pixel_decoder: dict,
                 transformer_decoder: dict,
                 embed_dim: int,
                 criterion: dict = dict(type='MaskCriterion'),
                 init_logit_scale: float = math.log(1 / 0.07),
                 max_logit_scale: float = 100.0,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.pixel_decoder = MODELS.build(pixel_decoder)
        self.decoder = MODELS.build(dict(transformer_decoder, cls_out_channels=embed_dim))
        self.embed_dim = embed_dim
        self.logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)))
        self.max_log_scale = math.log(max_logit_scale)
        self.criterion = MODELS.build(criterion)
        self.test_cfg = {**dict(task='semantic', object_mask_threshold=0.8,
                                overlap_threshold=0.8, max_per_image=100), **(test_cfg or {})}
        if self.test_cfg['task'] not in SEG_TASKS:
            raise ValueError(f'FrozenSegHead test_cfg.task must be one of {SEG_TASKS}, got '
                             f'{self.test_cfg["task"]!r}')
        self.postprocessor = MaskPostProcessor(self.test_cfg)

    def forward(self, clip_maps: List[Tensor], sam_embed: Tensor) -> Dict[str, List[Tensor]]:
        """Every layer's ``cls_embeds`` (B, Q, D) and ``mask_logits``
        (B, Q, H, W) from the CLIP maps (high to low resolution) and the SAM
        embedding (B, C_sam, h, w)."""
        mask_features, multi_scale, (sam_tokens, sam_hw) = self.pixel_decoder(clip_maps,
                                                                              sam_embed)
        return self.decoder(multi_scale, mask_features,
                            context=dict(sam_tokens=sam_tokens, sam_hw=sam_hw,
                                         sam_embed=sam_embed))

    def scale(self) -> Tensor:
        return self.logit_scale.clamp(max=self.max_log_scale).exp()

    def class_logits(self, cls_embeds: Tensor, classifier: Tensor, owner: Tensor,
                     num_classes: int) -> Tensor:
        """``(..., D)`` query embeddings against ``(S + 1, D)`` unit-norm text
        embeddings (one row per synonym, the void embedding last) -> ``(...,
        C + 1)`` scaled cosine logits, a class's logit the maximum over its
        synonyms, no object last."""
        if classifier.shape[-1] != cls_embeds.shape[-1]:
            raise ValueError(f'FrozenSeg: text features have width {classifier.shape[-1]}, the '
                             f'class head gives {cls_embeds.shape[-1]} (embed_dim); use the text '
                             'tower of the CLIP the head was built for')
        logits = self.scale() * F.normalize(cls_embeds, dim=-1) @ classifier.to(cls_embeds).t()
        return torch.cat([max_over_synonyms(logits[..., :-1], owner, num_classes),
                          logits[..., -1:]], dim=-1)

    def batch_class_logits(self, cls_embeds: Tensor, classifiers: Sequence[dict]) -> List[Tensor]:
        """(B, Q, D) and per image a classifier dict (``embeds``, ``owner``,
        ``num_classes``) -> per image (Q, C_b + 1)."""
        return [self.class_logits(q, c['embeds'], c['owner'], c['num_classes'])
                for q, c in zip(cls_embeds, classifiers)]

    def loss(self, clip_maps: List[Tensor], sam_embed: Tensor, classifiers: Sequence[dict],
             batch_gt_instances: Sequence[InstanceData],
             batch_img_metas: Sequence[dict]) -> Dict[str, Tensor]:
        """Mask2Former's set loss on every layer's prediction (deep supervision)."""
        out = self(clip_maps, sam_embed)
        all_cls = [pad_class_logits(self.batch_class_logits(c, classifiers))
                   for c in out['cls_embeds']]
        losses = self.criterion(all_cls, out['mask_logits'], batch_gt_instances, batch_img_metas)
        losses['logit_scale'] = self.scale().detach()
        return losses
