"""Hungarian matching of mask queries to ground truth on sampled points."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmcv.ops import point_sample
from mmengine.structures import InstanceData
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
    uniformly at random (the same points for all queries and ground truths of
    an image), which keeps the cost cheap for large masks. The cost itself and
    the assignment (``scipy.optimize.linear_sum_assignment``) are mmdet's
    ``HungarianAssigner`` with its match costs.

    Args:
        assigner (dict): Config of the assigner; its match costs see
            ``scores`` (Q, K+1) class logits, ``labels`` (N,) and ``masks``
            (Q or N, P) point logits/targets.
        num_points (int, optional): Points per image; ``None`` uses every
            ground-truth pixel (logits bilinearly resized), exact for tiny
            masks and tests.
    """

    def __init__(self, assigner: dict = DEFAULT_ASSIGNER,
                 num_points: Optional[int] = 12544) -> None:
        self.assigner = TASK_UTILS.build(assigner)
        self.num_points = num_points

    def sample_points(self, num: int, device: torch.device) -> Tensor:
        """Uniform normalised (x, y) coordinates in [0, 1], shape (1, num, 2)."""
        return torch.rand((1, num, 2), device=device)

    @torch.no_grad()
    def __call__(self, cls_logits: Tensor, mask_logits: Tensor,
                 gt_instances: InstanceData,
                 img_meta: Optional[dict] = None) -> Tuple[Tensor, Tensor]:
        """Match the queries of one image.

        Args:
            cls_logits (Tensor): (Q, K+1) class logits, last = no object.
            mask_logits (Tensor): (Q, h, w) mask logits.
            gt_instances (InstanceData): ``labels`` (N,) in [0, K) and
                ``masks`` (N, H, W).
            img_meta (dict, optional): Passed on to the assigner.

        Returns:
            tuple[Tensor, Tensor]: matched query indices and their ground-truth
            indices, each (min(Q, N),) long, sorted by query index.
        """
        device = mask_logits.device
        gt_masks = gt_masks_tensor(gt_instances, device, img_meta)
        if self.num_points is None:
            pred_points, gt_points = dense_mask_pairs(mask_logits, gt_masks)
        else:
            coords = self.sample_points(self.num_points, device)
            pred_points = point_sample(mask_logits[:, None].float(),
                                       coords.expand(mask_logits.shape[0], -1, -1))[:, 0]
            gt_points = point_sample(gt_masks[:, None],
                                     coords.expand(gt_masks.shape[0], -1, -1))[:, 0]
        result = self.assigner.assign(
            pred_instances=InstanceData(scores=cls_logits.float(), masks=pred_points),
            gt_instances=InstanceData(labels=gt_instances.labels, masks=gt_points),
            img_meta=img_meta)
        query_inds = torch.nonzero(result.gt_inds > 0, as_tuple=True)[0]
        return query_inds, result.gt_inds[query_inds] - 1
