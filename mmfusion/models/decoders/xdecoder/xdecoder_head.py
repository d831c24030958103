"""X-Decoder's segmentation head: pixel decoder, masked-attention decoder with
latent object queries + one image query, open-vocabulary class logits, loss and
semantic / instance / panoptic post-processing."""
import math
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.structures.mask import mask2bbox
from mmengine.model import BaseModule
from mmengine.structures import InstanceData, PixelData
from torch import Tensor, nn

from mmfusion.registry import MODELS
from .attention_mask import xdecoder_layout, xdecoder_self_attn_mask

TASKS = ('semantic', 'instance', 'panoptic')


def pad_class_logits(logits: Sequence[Tensor]) -> Tensor:
    """Per-image ``(Q, C_b + 1)`` logits as one ``(B, Q, max C + 1)`` tensor.

    Absent classes get ``-inf`` between the real classes and the last
    (no-object) column, so softmax, matching and cross-entropy of an image do
    not depend on the other images' class lists.
    """
    num_cls = max(x.shape[-1] for x in logits)
    out = logits[0].new_full((len(logits), logits[0].shape[0], num_cls), float('-inf'))
    for b, x in enumerate(logits):
        out[b, :, :x.shape[-1] - 1] = x[:, :-1]
        out[b, :, -1] = x[:, -1]
    return out


@MODELS.register_module()
class XDecoderHead(BaseModule):
    """Mask decoding with text-embedding classifiers (Zou et al., 2023).

    The decoder runs ``num_queries`` latent object queries plus one image-level
    query (appended as an extra token that cross-attends to the whole image;
    self-attention follows :func:`xdecoder_self_attn_mask`). Each object
    query's class embedding (the decoder's ``cls_embed``, projected to the
    text-embedding width ``D``) is scored against the class-name embeddings
    and a learnable no-object embedding by cosine similarity times
    ``exp(logit_scale)``; the no-object logit is the last column.

    Args:
        pixel_decoder (dict): e.g. ``TransformerEncoderFPNPixelDecoder``.
        transformer_decoder (dict): ``MaskedAttentionDecoder``; its
            ``cls_out_channels`` is set to ``embed_dim``.
        embed_dim (int): Width ``D`` of the text embeddings.
        criterion (dict): ``MaskCriterion`` (the paper's weights by default).
        init_logit_scale (float): Initial log temperature, ``log(1/0.07)``.
        max_logit_scale (float): Clamp of ``exp(logit_scale)``, as CLIP.
        test_cfg (dict): ``task`` (``'semantic'``, ``'instance'`` or
            ``'panoptic'``), ``object_mask_threshold`` (0.8),
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
        self.num_queries = self.decoder.num_queries
        hidden = self.decoder.hidden_dims
        self.image_query_feat = nn.Embedding(1, hidden)
        self.image_query_pos = nn.Embedding(1, hidden)
        self.no_object_embed = nn.Parameter(torch.randn(embed_dim) / math.sqrt(embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)))
        self.max_log_scale = math.log(max_logit_scale)
        self.criterion = MODELS.build(criterion)
        self.test_cfg = dict(task='semantic', object_mask_threshold=0.8,
                             overlap_threshold=0.8, max_per_image=100)
        self.test_cfg.update(test_cfg or {})
        if self.test_cfg['task'] not in TASKS:
            raise ValueError(f'test_cfg task must be one of {TASKS}, got {self.test_cfg["task"]!r}')

    # -- decoding ----------------------------------------------------------
    def forward(self, feats: List[Tensor],
                batch_img_metas: Optional[Sequence[dict]] = None) -> Dict[str, object]:
        """
        Args:
            feats (list[Tensor]): Backbone maps, high to low resolution.

        Returns:
            dict: ``cls_embeds`` / ``mask_logits``: lists over the
            ``num_layers + 1`` predictions of the object queries, (B, N, D)
            and (B, N, H/4, W/4); ``image_embeds``: (B, C) last-layer image
            query.
        """
        mask_features, multi_scale = self.pixel_decoder(feats, batch_img_metas)
        batch = mask_features.shape[0]
        layout = xdecoder_layout(self.num_queries)
        out = self.decoder(
            multi_scale, mask_features,
            extra_tokens=self.image_query_feat.weight.expand(batch, -1, -1),
            extra_pos=self.image_query_pos.weight.expand(batch, -1, -1),
            self_attn_mask=xdecoder_self_attn_mask(self.num_queries,
                                                   device=mask_features.device),
            mask_extra_cross_attn=False)  # the image query sees the whole image
        obj = layout['object']
        return dict(cls_embeds=[x[:, obj] for x in out['cls_embeds']],
                    mask_logits=[x[:, obj] for x in out['mask_logits']],
                    image_embeds=out['query_embeds'][-1][:, layout['image']].squeeze(1))

    def scale(self) -> Tensor:
        return self.logit_scale.clamp(max=self.max_log_scale).exp()

    def class_logits(self, cls_embeds: Tensor, class_embeds: Tensor) -> Tensor:
        """``(..., D)`` query embeddings x ``(C, D)`` class embeddings ->
        ``(..., C + 1)`` scaled cosine logits, no object last."""
        if class_embeds.shape[0] == 0:
            raise ValueError('X-Decoder needs at least one class name')
        text = torch.cat([class_embeds.to(cls_embeds.dtype),
                          self.no_object_embed[None].to(cls_embeds.dtype)])
        return self.scale() * F.normalize(cls_embeds, dim=-1) @ F.normalize(text, dim=-1).t()

    def batch_class_logits(self, cls_embeds: Tensor,
                           class_embeds: Sequence[Tensor]) -> List[Tensor]:
        """(B, N, D) and per-image (C_b, D) -> per-image (N, C_b + 1)."""
        return [self.class_logits(q, t) for q, t in zip(cls_embeds, class_embeds)]

    # -- training ----------------------------------------------------------
    def loss(self, feats: List[Tensor], class_embeds: Sequence[Tensor],
             batch_gt_instances: Sequence[InstanceData],
             batch_img_metas: Sequence[dict]) -> Dict[str, Tensor]:
        """MaskCriterion over every layer's object-query predictions.

        Args:
            class_embeds (list[Tensor]): per image (C_b, D) class embeddings.
            batch_gt_instances (list[InstanceData]): ``labels`` in [0, C_b)
                and ``masks`` (things and stuff segments).
        """
        out = self(feats, batch_img_metas)
        all_cls = [pad_class_logits(self.batch_class_logits(c, class_embeds))
                   for c in out['cls_embeds']]
        losses = self.criterion(all_cls, out['mask_logits'], batch_gt_instances,
                                batch_img_metas)
        losses['logit_scale'] = self.scale().detach()
        return losses

    # -- inference ---------------------------------------------------------
    def predict(self, feats: List[Tensor], class_embeds: Sequence[Tensor],
                batch_img_metas: Sequence[dict], thing_flags: Sequence[Optional[Tensor]],
                task: Optional[str] = None) -> List[Dict[str, object]]:
        """Per image a dict with ``pred_sem_seg``, ``pred_panoptic_seg`` or
        ``pred_instances`` (at ``ori_shape``) for ``task``.

        Args:
            thing_flags (list[Tensor | None]): per image (C_b,) bool, which
                classes are things (stuff is merged per class in panoptic
                output, instance output keeps things only); ``None`` = all
                things.
        """
        task = task or self.test_cfg['task']
        if task not in TASKS:
            raise ValueError(f'task must be one of {TASKS}, got {task!r}')
        out = self(feats, batch_img_metas)
        cls_logits = self.batch_class_logits(out['cls_embeds'][-1], class_embeds)
        mask_logits = out['mask_logits'][-1]
        results = []
        for b, meta in enumerate(batch_img_metas):
            masks = self.resize_masks(mask_logits[b], meta)
            probs = cls_logits[b].float().softmax(-1)
            if task == 'semantic':
                results.append(dict(pred_sem_seg=self.semantic(probs, masks)))
            elif task == 'panoptic':
                results.append(dict(pred_panoptic_seg=self.panoptic(probs, masks, thing_flags[b])))
            else:
                results.append(dict(pred_instances=self.instance(probs, masks, thing_flags[b])))
        return results

    @staticmethod
    def resize_masks(mask_logits: Tensor, meta: dict) -> Tensor:
        """(N, h, w) logits of the padded batch -> (N, *ori_shape)."""
        pad_shape = meta.get('batch_input_shape') or meta.get('pad_shape') or meta['img_shape']
        img_h, img_w = meta.get('img_shape', pad_shape)[:2]
        masks = F.interpolate(mask_logits[None].float(), size=tuple(pad_shape[:2]),
                              mode='bilinear', align_corners=False)[:, :, :img_h, :img_w]
        ori_shape = tuple(meta.get('ori_shape', (img_h, img_w))[:2])
        return F.interpolate(masks, size=ori_shape, mode='bilinear', align_corners=False)[0]

    @staticmethod
    def semantic(probs: Tensor, masks: Tensor) -> PixelData:
        """softmax(class)[..., :-1] weighted by sigmoid(mask), summed over queries."""
        seg_logits = torch.einsum('nc,nhw->chw', probs[:, :-1], masks.sigmoid())
        return PixelData(data=seg_logits.argmax(0)[None], seg_logits=seg_logits)

    def panoptic(self, probs: Tensor, masks: Tensor, thing_flags: Optional[Tensor]) -> PixelData:
        """mmdet's ``MaskFormerFusionHead.panoptic_postprocess``: label +
        instance * INSTANCE_OFFSET, void = number of classes."""
        num_classes = probs.shape[-1] - 1
        scores, labels = probs.max(-1)
        keep = (labels != num_classes) & (scores > self.test_cfg['object_mask_threshold'])
        scores, labels, masks = scores[keep], labels[keep], masks[keep].sigmoid()
        height, width = masks.shape[-2:]
        pan = torch.full((height, width), num_classes, dtype=torch.long, device=masks.device)
        if len(labels):
            owner = (scores[:, None, None] * masks).argmax(0)
            instance_id = 1
            for k, label in enumerate(labels.tolist()):
                is_thing = thing_flags is None or bool(thing_flags[label])
                mask = owner == k
                area, original = mask.sum().item(), (masks[k] >= 0.5).sum().item()
                mask = mask & (masks[k] >= 0.5)
                if area == 0 or original == 0 or mask.sum() == 0:
                    continue
                if area / original < self.test_cfg['overlap_threshold']:
                    continue
                if is_thing:
                    pan[mask] = label + instance_id * INSTANCE_OFFSET
                    instance_id += 1
                else:
                    pan[mask] = label  # stuff: one segment per class
        return PixelData(sem_seg=pan[None], metainfo=dict(ignore_index=num_classes))

    def instance(self, probs: Tensor, masks: Tensor,
                 thing_flags: Optional[Tensor]) -> InstanceData:
        """Top-k over queries x classes, scores rescored by the mean mask
        probability inside the binary mask."""
        num_queries, num_classes = probs.shape[0], probs.shape[1] - 1
        scores = probs[:, :-1]
        if thing_flags is not None:
            scores = scores.masked_fill(~thing_flags.to(scores.device)[None], -1.0)
        k = min(self.test_cfg['max_per_image'], num_queries * num_classes)
        top_scores, top = scores.flatten().topk(k)
        valid = top_scores >= 0
        top_scores, top = top_scores[valid], top[valid]
        labels, queries = top % num_classes, top // num_classes
        mask_probs = masks[queries].sigmoid()
        binary = mask_probs > 0.5
        mask_scores = (mask_probs * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
        return InstanceData(masks=binary, labels=labels, scores=top_scores * mask_scores,
                            bboxes=mask2bbox(binary))
