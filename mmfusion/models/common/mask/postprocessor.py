"""Mask-classification post-processing (MaskFormer / Mask2Former and the
decoders built on them: X-Decoder, FrozenSeg): the last layer's class and mask
logits -> semantic, instance or panoptic results, and a referred mask.

Kept apart from the heads, as mmdet keeps ``MaskFormerFusionHead`` apart from
``MaskFormerHead``: a head decodes, this module turns decoded queries into each
task's output format.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.structures.mask import mask2bbox
from mmengine.structures import InstanceData, PixelData
from torch import Tensor

SEG_TASKS = ('semantic', 'instance', 'panoptic')


def resize_masks(mask_logits: Tensor, meta: dict, mode: str = 'bilinear') -> Tensor:
    """(N, h, w) logits of the padded batch -> (N, *ori_shape): up to the
    padded input size by ``mode`` (``'bilinear'``, or ``'bicubic'`` with
    antialias as X-Decoder's official code), cropped, then bilinear to
    ``ori_shape``."""
    pad_shape = meta.get('batch_input_shape') or meta.get('pad_shape') or meta['img_shape']
    img_h, img_w = meta.get('img_shape', pad_shape)[:2]
    extra = dict(antialias=True) if mode == 'bicubic' else {}
    masks = F.interpolate(mask_logits[None].float(), size=tuple(pad_shape[:2]),
                          mode=mode, align_corners=False, **extra)[:, :, :img_h, :img_w]
    ori_shape = tuple(meta.get('ori_shape', (img_h, img_w))[:2])
    return F.interpolate(masks, size=ori_shape, mode='bilinear', align_corners=False)[0]


class MaskPostProcessor:
    """Per-image segmentation results from class probabilities and mask logits.

    Args:
        test_cfg (dict): The head's ``test_cfg`` (read at each call, so a
            changed threshold applies at once): ``object_mask_threshold``,
            ``overlap_threshold`` (panoptic) and ``max_per_image``
            (instance), optionally ``mask_resize`` (see :func:`resize_masks`).
    """

    def __init__(self, test_cfg: dict) -> None:
        self.test_cfg = test_cfg
        # Segmentation task -> (result field, post-processing of one image).
        self.seg_tasks: Dict[str, Tuple[str, callable]] = dict(
            semantic=('pred_sem_seg', self.semantic),
            panoptic=('pred_panoptic_seg', self.panoptic),
            instance=('pred_instances', self.instance))

    def __call__(self, task: str, cls_logits: Sequence[Tensor], mask_logits: Tensor,
                 batch_img_metas: Sequence[dict],
                 thing_flags: Sequence[Optional[Tensor]]) -> List[Dict[str, object]]:
        """Per image ``{field: result}`` of segmentation ``task`` at
        ``ori_shape``, from (N, C_b + 1) class logits and (B, N, h, w) mask
        logits."""
        if task not in self.seg_tasks:
            raise ValueError(f'mask-classification post-processing is for {SEG_TASKS}, '
                             f'got {task!r}')
        field, process = self.seg_tasks[task]
        mode = self.test_cfg.get('mask_resize', 'bilinear')
        return [{field: process(cls_logits[b].float().softmax(-1),
                                resize_masks(mask_logits[b], meta, mode), thing_flags[b])}
                for b, meta in enumerate(batch_img_metas)]

    @staticmethod
    def semantic(probs: Tensor, masks: Tensor, thing_flags: Optional[Tensor] = None) -> PixelData:
        """softmax(class)[..., :-1] weighted by sigmoid(mask), summed over
        queries (things and stuff alike: ``thing_flags`` is not read)."""
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

    def referring(self, mask_logits: Tensor, meta: dict) -> PixelData:
        """The referred query's (h, w) mask logits -> ``pred_sem_seg`` at
        ``ori_shape`` (1 = referred, ``seg_logits`` the resized logits)."""
        mask = resize_masks(mask_logits[None], meta, self.test_cfg.get('mask_resize', 'bilinear'))
        return PixelData(data=(mask > 0).long(), seg_logits=mask)
