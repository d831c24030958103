import contextlib
import io
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mmfusion.registry import METRICS

AP_KEYS = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    return rle


def encode_masks(masks: np.ndarray) -> dict:
    """(N, H, W) bool masks -> ``dict(size=(H, W), rles=[...])``: COCO RLEs
    are what metrics keep per image (a few hundred bytes instead of N*H*W)."""
    return dict(size=tuple(int(x) for x in masks.shape[-2:]), rles=[_rle(m) for m in masks])


def coco_mask_ap(gts: List[dict], preds: List[dict], num_classes: int) -> Dict[str, float]:
    """Mask AP of pycocotools' ``COCOeval(iouType='segm')``, in [0, 1].

    ``gts[i]``: ``masks`` (:func:`encode_masks` output), ``labels`` (N,),
    optional ``iscrowd`` (N,); ``preds[i]``: ``masks``, ``labels``,
    ``scores`` of the same image. Returns the first six COCOeval stats (AP,
    AP50, AP75, small, medium, large).
    """
    images, anns, dets = [], [], []
    for img_id, (gt, pred) in enumerate(zip(gts, preds)):
        h, w = gt['masks']['size']
        images.append(dict(id=img_id, height=h, width=w))
        crowd = gt.get('iscrowd', np.zeros(len(gt['labels']), int))
        for rle, label, c in zip(gt['masks']['rles'], gt['labels'], crowd):
            anns.append(dict(id=len(anns) + 1, image_id=img_id, category_id=int(label),
                             segmentation=rle, area=float(mask_utils.area(rle)),
                             bbox=mask_utils.toBbox(rle).tolist(), iscrowd=int(c)))
        for rle, label, score in zip(pred['masks']['rles'], pred['labels'], pred['scores']):
            dets.append(dict(image_id=img_id, category_id=int(label), segmentation=rle,
                             score=float(score)))
    if not dets:
        return {k: 0.0 for k in AP_KEYS}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = dict(images=images, annotations=anns,
                               categories=[dict(id=i) for i in range(num_classes)])
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dets)
        ev = COCOeval(coco_gt, coco_dt, iouType='segm')
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {k: float(v) for k, v in zip(AP_KEYS, ev.stats[:6])}


@METRICS.register_module()
class CocoMaskAPMetric(BaseMetric):
    """COCO mask AP (``mAP``, ``mAP_50``, ``mAP_75``, ``mAP_s/m/l``, in [0, 1])
    through pycocotools' ``COCOeval``.

    Ground truth: ``gt_instances`` (``masks`` (N, H, W), ``labels``), as
    :class:`LoadPanopticAnnotations` + ``PackFusionInputs`` give (crowd
    regions are not among them). Predictions: ``pred_instances`` with
    ``masks`` (M, H, W) bool, ``labels`` and ``scores``, at the ground
    truth's size. COCOeval keeps the 100 best-scored predictions per image.

    Args:
        class_agnostic: every ground truth and prediction counts as one
            class (for class-agnostic proposals such as SAM's automatic masks).
    """

    default_prefix: Optional[str] = 'segm'

    def __init__(self, class_agnostic: bool = False, collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.class_agnostic = class_agnostic

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            for key in ('gt_instances', 'pred_instances'):
                if key not in sample:
                    raise KeyError(f'CocoMaskAPMetric needs {key}; sample '
                                   f'{sample.get("img_path")} has none')
            gt, pred = sample['gt_instances'], sample['pred_instances']
            for key in ('masks', 'labels', 'scores'):
                if key not in pred:
                    raise KeyError(f'CocoMaskAPMetric: pred_instances of {sample.get("img_path")} '
                                   f'has no "{key}"')
            gt_masks = gt['masks'].cpu().numpy().astype(bool)
            pred_masks = pred['masks'].cpu().numpy().astype(bool)
            if len(pred_masks) and pred_masks.shape[-2:] != gt_masks.shape[-2:]:
                raise ValueError(f'predicted masks {pred_masks.shape[-2:]} and ground-truth '
                                 f'masks {gt_masks.shape[-2:]} of {sample.get("img_path")} '
                                 'differ in size')
            if gt_masks.ndim != 3:  # no instance: keep the image size for COCOeval
                h, w = sample['ori_shape']
                gt_masks = np.zeros((0, h, w), bool)
            gt_labels, pred_labels = gt['labels'].cpu().numpy(), pred['labels'].cpu().numpy()
            if self.class_agnostic:
                gt_labels, pred_labels = np.zeros_like(gt_labels), np.zeros_like(pred_labels)
            self.results.append((
                dict(masks=encode_masks(gt_masks), labels=gt_labels),
                dict(masks=encode_masks(pred_masks), labels=pred_labels,
                     scores=pred['scores'].float().cpu().numpy())))

    def compute_metrics(self, results: List[tuple]) -> Dict[str, float]:
        if self.class_agnostic:
            return coco_mask_ap([r[0] for r in results], [r[1] for r in results], 1)
        classes = (self.dataset_meta or {}).get('classes')
        num_classes = len(classes) if classes else 1 + max(
            [int(x.max()) for r in results for x in (r[0]['labels'], r[1]['labels']) if len(x)]
            or [0])
        return coco_mask_ap([r[0] for r in results], [r[1] for r in results], num_classes)
