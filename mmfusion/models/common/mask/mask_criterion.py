"""Set criterion for mask queries: class CE + mask BCE + Dice, deep supervision."""
from typing import Dict, Optional, Sequence

import torch
from mmcv.ops import point_sample
from mmdet.models.utils import get_uncertain_point_coords_with_randomness
from mmdet.utils import reduce_mean
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor

from mmfusion.registry import MODELS, TASK_UTILS

from .matcher import batch_gt_masks, dense_mask_pairs


def per_layer_loss_name(name: str, index: int, num: int, first: int = 0) -> str:
    """mmdet's deep-supervision naming for prediction ``index`` of ``num``
    given ones: ``name`` for the last, ``d{first + index}.name`` before
    (``first``: the index of the first given prediction among all of them)."""
    return name if index == num - 1 else f'd{first + index}.{name}'


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
class MaskCriterion(BaseModule):
    """Mask2Former's loss over the predictions of every decoder layer.

    Class logits are an input, so the number of classes may change from batch
    to batch (e.g. text-embedding classifiers): the last column is always "no
    object", which gets weight ``eos_coef`` in the cross-entropy. Per-image
    class lists of different lengths can share a batch by padding the logits
    of absent classes with ``-inf``.

    Args:
        matcher (dict): Config of the matcher (``PointSampleHungarianMatcher``).
        loss_cls (dict): Softmax CE; per-query weights are passed to it.
        loss_mask (dict): Sigmoid BCE on the sampled points.
        loss_dice (dict): Dice on the sampled points.
        eos_coef (float): CE weight of the no-object class.
        num_points (int, optional): Points per matched mask; ``None`` uses every
            ground-truth pixel (logits bilinearly resized to the gt size).
        oversample_ratio (float): Candidates drawn per kept point.
        importance_sample_ratio (float): Share of points taken at the most
            uncertain candidates, the rest uniform.
    """

    def __init__(self,
                 matcher: dict = dict(type='PointSampleHungarianMatcher', num_points=12544),
                 loss_cls: dict = dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False,
                                       reduction='mean', loss_weight=2.0),
                 loss_mask: dict = dict(type='mmdet.CrossEntropyLoss', use_sigmoid=True,
                                        reduction='mean', loss_weight=5.0),
                 loss_dice: dict = dict(type='mmdet.DiceLoss', use_sigmoid=True, activate=True,
                                        reduction='mean', naive_dice=True, eps=1.0,
                                        loss_weight=5.0),
                 eos_coef: float = 0.1,
                 num_points: Optional[int] = 12544,
                 oversample_ratio: float = 3.0,
                 importance_sample_ratio: float = 0.75,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.matcher = TASK_UTILS.build(matcher)
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_mask = MODELS.build(loss_mask)
        self.loss_dice = MODELS.build(loss_dice)
        self.eos_coef = eos_coef
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio

    def sample_points(self, mask_logits: Tensor) -> Tensor:
        """Uncertainty-biased point coordinates (N, P, 2) for (N, h, w) logits."""
        return get_uncertain_point_coords_with_randomness(
            mask_logits[:, None], None, self.num_points, self.oversample_ratio,
            self.importance_sample_ratio)

    def loss_single(self, cls_logits: Tensor, mask_logits: Tensor,
                    batch_gt_instances: Sequence[InstanceData],
                    batch_img_metas: Optional[Sequence[dict]] = None,
                    gt_masks: Optional[Sequence[Tensor]] = None) -> Dict[str, Tensor]:
        """Losses of one layer's prediction.

        Args:
            cls_logits (Tensor): (B, Q, K+1).
            mask_logits (Tensor): (B, Q, h, w).
            batch_gt_instances (list[InstanceData]): ``labels`` (N_b,) in
                [0, K) and ``masks`` (N_b, H, W).
            gt_masks (list[Tensor], optional): :func:`batch_gt_masks` of the batch,
                when the caller already has them (deep supervision).

        Returns:
            dict: ``loss_cls``, ``loss_mask``, ``loss_dice`` scalars.
        """
        # Losses in fp32: point sampling mixes fp32 coordinates with the logits,
        # and bf16 autocast logits would lose precision in the sums.
        cls_logits, mask_logits = cls_logits.float(), mask_logits.float()
        batch_size, num_queries, num_cls = cls_logits.shape
        no_object = num_cls - 1
        for b, gt in enumerate(batch_gt_instances):
            if len(gt.labels) and (int(gt.labels.min()) < 0 or int(gt.labels.max()) >= no_object):
                raise ValueError(f'image {b}: gt labels must be in [0, {no_object}) for '
                                 f'{no_object} classes (+ no object); got '
                                 f'{gt.labels.unique().tolist()}')
        if gt_masks is None:
            gt_masks = batch_gt_masks(batch_gt_instances, mask_logits.device, batch_img_metas)
        matches = self.matcher.match_batch(cls_logits.detach(), mask_logits.detach(),
                                           [g.labels for g in batch_gt_instances], gt_masks)

        labels = cls_logits.new_full((batch_size, num_queries), no_object, dtype=torch.long)
        for b, (q_idx, g_idx) in enumerate(matches):
            labels[b, q_idx] = batch_gt_instances[b].labels[g_idx].to(labels.device)
        class_weight = cls_logits.new_ones(num_cls)
        class_weight[no_object] = self.eos_coef
        weights = class_weight[labels.flatten()]
        # avg_factor = sum of weights: the weighted mean of F.cross_entropy.
        loss_cls = self.loss_cls(cls_logits.flatten(0, 1), labels.flatten(), weights,
                                 avg_factor=weights.sum())

        # Normalise by the number of masks over all ranks, as Mask2Former.
        num_masks = sum(len(g) for _, g in matches)
        # a tensor, not .item(): a Python float avg_factor recompiles the losses under torch.compile
        num_masks = reduce_mean(cls_logits.new_tensor(float(num_masks))).clamp(min=1.0)
        if sum(len(q) for q, _ in matches) == 0:
            zero = mask_logits.sum() * 0
            return dict(loss_cls=loss_cls, loss_mask=zero, loss_dice=zero)

        # All images' matched masks at once: (M, h, w) logits, (M, H, W) targets.
        preds = torch.cat([mask_logits[b, q_idx] for b, (q_idx, _) in enumerate(matches)])
        targets = torch.cat([gt_masks[b][g_idx] for b, (_, g_idx) in enumerate(matches)])
        if self.num_points is None:
            preds, targets = dense_mask_pairs(preds, targets)
        else:
            with torch.no_grad():
                coords = self.sample_points(preds.detach())
                targets = point_sample(targets[:, None], coords)[:, 0]
            preds = point_sample(preds[:, None], coords)[:, 0]  # (M, P) each
        loss_dice = self.loss_dice(preds, targets, avg_factor=num_masks)
        loss_mask = self.loss_mask(preds.reshape(-1), targets.reshape(-1),
                                   avg_factor=num_masks * preds.shape[1])
        return dict(loss_cls=loss_cls, loss_mask=loss_mask, loss_dice=loss_dice)

    def forward(self, all_cls_logits: Sequence[Tensor], all_mask_logits: Sequence[Tensor],
                batch_gt_instances: Sequence[InstanceData],
                batch_img_metas: Optional[Sequence[dict]] = None,
                first_index: int = 0) -> Dict[str, Tensor]:
        """Deep supervision: the same loss on every layer's prediction.

        Args:
            all_cls_logits (list[Tensor]): per layer (B, Q, K+1).
            all_mask_logits (list[Tensor]): per layer (B, Q, h, w).
            batch_gt_instances (list[InstanceData]): see :meth:`loss_single`.
            first_index (int): Index of the first given prediction among the
                decoder's (when only the top layers are supervised).

        Returns:
            dict: the last prediction's ``loss_cls``/``loss_mask``/``loss_dice``
            and the earlier ones as ``d{i}.loss_*`` (mmdet's naming).
        """
        assert len(all_cls_logits) == len(all_mask_logits)
        losses: Dict[str, Tensor] = {}
        num = len(all_cls_logits)
        if num == 0:
            return losses
        gt_masks = batch_gt_masks(batch_gt_instances, all_mask_logits[0].device, batch_img_metas)
        for i, (cls_logits, mask_logits) in enumerate(zip(all_cls_logits, all_mask_logits)):
            for name, value in self.loss_single(cls_logits, mask_logits, batch_gt_instances,
                                                batch_img_metas, gt_masks).items():
                losses[per_layer_loss_name(name, i, num, first_index)] = value
        return losses
