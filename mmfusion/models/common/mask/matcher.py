"""Hungarian matching of mask queries to ground truth on sampled points."""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmcv.ops import point_sample
from mmengine.structures import InstanceData
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from mmfusion.registry import TASK_UTILS

# Mask2Former's matching costs (class 2, mask BCE 5, Dice 5), all from mmdet.
DEFAULT_ASSIGNER = dict(
    type='mmdet.HungarianAssigner',
    match_costs=[
        dict(type='mmdet.ClassificationCost', weight=2.0),
        dict(type='mmdet.CrossEntropyLossCost', weight=5.0, use_sigmoid=True),
        dict(type='mmdet.DiceCost', weight=5.0, pred_act=True, eps=1.0),
    ])


def gt_masks_tensor(gt_instances: InstanceData, device: torch.device,
                    img_meta: Optional[dict] = None) -> Tensor:
    """``gt_instances.masks`` as a float (N, H, W) tensor (accepts mmdet BitmapMasks).

    The mask logits cover the padded batch (``img_meta['batch_input_shape']``,
    set by the data preprocessor) while masks cover their own image, so masks
    smaller than the batch are zero-padded at the bottom/right, where the
    preprocessor padded the image; otherwise points sampled in normalised
    coordinates would land on different pixels in the two.
    """
    masks = gt_instances.masks
    if not isinstance(masks, Tensor):
        masks = masks.to_tensor(dtype=torch.float32, device=device)
    masks = masks.to(device=device, dtype=torch.float32)
    pad_shape = (img_meta or {}).get('batch_input_shape')
    if pad_shape is not None and tuple(masks.shape[-2:]) != tuple(pad_shape):
        height, width = masks.shape[-2:]
        if height > pad_shape[0] or width > pad_shape[1]:
            raise ValueError(f'gt masks of {(height, width)} are larger than the batch '
                             f'{tuple(pad_shape)} of {img_meta.get("img_path")}')
        masks = F.pad(masks, (0, pad_shape[1] - width, 0, pad_shape[0] - height))
    return masks


def batch_gt_masks(batch_gt_instances: Sequence[InstanceData], device: torch.device,
                   batch_img_metas: Optional[Sequence[dict]] = None) -> List[Tensor]:
    """:func:`gt_masks_tensor` of every image: per image (N_b, H, W) float
    masks, padded to the batch."""
    metas = batch_img_metas or [None] * len(batch_gt_instances)
    return [gt_masks_tensor(g, device, meta) for g, meta in zip(batch_gt_instances, metas)]


def dense_mask_pairs(mask_logits: Tensor, gt_masks: Tensor) -> Tuple[Tensor, Tensor]:
    """Every ground-truth pixel as a "point": logits resized to the gt size.

    Args:
        mask_logits (Tensor): (Q, h, w).
        gt_masks (Tensor): (N, H, W).

    Returns:
        tuple[Tensor, Tensor]: (Q, H*W) logits and (N, H*W) targets.
    """
    logits = F.interpolate(mask_logits[:, None], size=gt_masks.shape[-2:],
                           mode='bilinear', align_corners=False)[:, 0]
    return logits.flatten(1), gt_masks.flatten(1)


@TASK_UTILS.register_module()
class PointSampleHungarianMatcher:
    """One-to-one query/ground-truth assignment for mask predictions.

    As Mask2Former, the mask costs are evaluated on ``num_points`` points drawn
    uniformly at random (per image the same points for all its queries and
    ground truths), which keeps the cost cheap for large masks. The costs are
    the match costs of mmdet's ``HungarianAssigner`` (built from ``assigner``)
    and the assignment is ``scipy.optimize.linear_sum_assignment``, as in that
    assigner.

    A batch is matched with one call of each match cost on all images'
    queries against all images' ground truths, of which each image's own
    block is kept: mmdet's assigner takes one image at a time, and on CPU its
    per-image calls (3 costs x images x supervised layers) cost more than the
    discarded cross-image entries.

    Args:
        assigner (dict): Config of the assigner whose match costs are used;
            they see ``scores`` (Q, K+1) class logits, ``labels`` (N,) and
            ``masks`` (Q or N, P) point logits/targets.
        num_points (int, optional): Points per image; ``None`` uses every
            ground-truth pixel (logits bilinearly resized), exact for tiny
            masks and tests.
    """

    def __init__(self, assigner: dict = DEFAULT_ASSIGNER,
                 num_points: Optional[int] = 12544) -> None:
        self.assigner = TASK_UTILS.build(assigner)
        self.num_points = num_points

    def sample_points(self, num: int, device: torch.device, batch: int = 1) -> Tensor:
        """Uniform normalised (x, y) coordinates in [0, 1], shape (batch, num, 2)."""
        return torch.rand((batch, num, 2), device=device)

    # torch.compile: excluded, Hungarian matching is scipy's linear_sum_assignment on numpy.
    @torch.compiler.disable
    @torch.no_grad()
    def match_batch(self, cls_logits: Tensor, mask_logits: Tensor,
                    gt_labels: Sequence[Tensor],
                    gt_masks: Sequence[Tensor]) -> List[Tuple[Tensor, Tensor]]:
        """Match the queries of every image of a batch.

        Args:
            cls_logits (Tensor): (B, Q, K+1) class logits, last = no object.
            mask_logits (Tensor): (B, Q, h, w) mask logits.
            gt_labels (list[Tensor]): per image (N_b,) labels in [0, K).
            gt_masks (list[Tensor]): per image (N_b, H, W) float masks, all of
                one size (see :func:`gt_masks_tensor`).

        Returns:
            list[tuple[Tensor, Tensor]]: per image the matched query indices
            and their ground-truth indices, each (min(Q, N_b),) long, sorted
            by query index.
        """
        device = mask_logits.device
        batch, num_queries = mask_logits.shape[:2]
        counts = [len(labels) for labels in gt_labels]
        empty = torch.zeros(0, dtype=torch.long, device=device)
        if sum(counts) == 0 or num_queries == 0:
            return [(empty, empty) for _ in range(batch)]
        sizes = {tuple(m.shape[-2:]) for m in gt_masks if len(m)}
        if len(sizes) > 1:
            raise ValueError('gt masks of one batch must share a size (pad them to the batch '
                             f'with gt_masks_tensor); got {[tuple(m.shape) for m in gt_masks]}')
        ref = next(m for m in gt_masks if len(m))
        masks = torch.stack([F.pad(m, (0, 0, 0, 0, 0, max(counts) - len(m))) if len(m)
                             else ref.new_zeros((max(counts), *ref.shape[-2:]))
                             for m in gt_masks])  # (B, N_max, H, W); images without gt: zeros
        if self.num_points is None:
            pred_points, gt_points = dense_mask_pairs(mask_logits.flatten(0, 1),
                                                      masks.flatten(0, 1))
            pred_points = pred_points.view(batch, num_queries, -1)
            gt_points = gt_points.view(batch, masks.shape[1], -1)
        else:
            coords = self.sample_points(self.num_points, device, batch)
            pred_points = point_sample(mask_logits.float(), coords)  # (B, Q, P)
            gt_points = point_sample(masks, coords)  # (B, N_max, P)
        gt_points = torch.cat([g[:n] for g, n in zip(gt_points, counts)])
        preds = InstanceData(scores=cls_logits.flatten(0, 1).float(),
                             masks=pred_points.flatten(0, 1))
        gts = InstanceData(labels=torch.cat([lb.to(device) for lb in gt_labels]),
                           masks=gt_points)
        cost = sum(c(pred_instances=preds, gt_instances=gts) for c in self.assigner.match_costs)
        cost = cost.detach().cpu()
        results, first = [], 0
        for b, num in enumerate(counts):
            block = cost[b * num_queries:(b + 1) * num_queries, first:first + num]
            first += num
            if num == 0:
                results.append((empty, empty))
                continue
            rows, cols = linear_sum_assignment(block.numpy())
            results.append((torch.from_numpy(rows).to(device), torch.from_numpy(cols).to(device)))
        return results

    def __call__(self, cls_logits: Tensor, mask_logits: Tensor,
                 gt_instances: InstanceData,
                 img_meta: Optional[dict] = None) -> Tuple[Tensor, Tensor]:
        """Match the queries of one image.

        Args:
            cls_logits (Tensor): (Q, K+1) class logits, last = no object.
            mask_logits (Tensor): (Q, h, w) mask logits.
            gt_instances (InstanceData): ``labels`` (N,) in [0, K) and
                ``masks`` (N, H, W).
            img_meta (dict, optional): Its ``batch_input_shape`` pads the masks
                (see :func:`gt_masks_tensor`).

        Returns:
            tuple[Tensor, Tensor]: matched query indices and their ground-truth
            indices, each (min(Q, N),) long, sorted by query index.
        """
        gt_masks = gt_masks_tensor(gt_instances, mask_logits.device, img_meta)
        return self.match_batch(cls_logits[None], mask_logits[None], [gt_instances.labels],
                                [gt_masks])[0]
