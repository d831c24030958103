from collections import defaultdict
from typing import Dict, List, Optional, Sequence

import mmcv
import numpy as np
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmengine.evaluator import BaseMetric
from mmengine.fileio import get

from mmfusion.datasets.transforms.loading_masks import rgb2id
from mmfusion.registry import METRICS

VOID = 0
OFFSET = 256 * 256 * 256


def panoptic_matches(pan_gt: np.ndarray, gt_segments: List[dict], pan_pred: np.ndarray,
                     pred_segments: List[dict]) -> Dict[int, np.ndarray]:
    """COCO panoptic matching on one image (the panopticapi rules).

    ``pan_gt``/``pan_pred`` are (H, W) segment-id maps (0 = void);
    segments are dicts with ``id``, ``category_id`` and (gt) ``iscrowd``.
    A gt/pred pair of the same category matches when IoU > 0.5, with the
    prediction's void pixels left out of the union; crowd gt is never
    matched; an unmatched prediction lying more than half in void or in a
    crowd region of its category is not a false positive.

    Returns ``{category_id: array([tp, fp, fn, sum_of_matched_iou])}``.
    """
    stats: Dict[int, np.ndarray] = defaultdict(lambda: np.zeros(4))
    gt = {s['id']: s for s in gt_segments}
    pred = {s['id']: dict(s) for s in pred_segments}
    ids, counts = np.unique(pan_pred, return_counts=True)
    pred_area = dict(zip(ids.tolist(), counts.tolist()))
    for pid in list(pred):
        if pid not in pred_area:
            raise KeyError(f'predicted segment {pid} is listed but covers no pixel')
        pred[pid]['area'] = pred_area[pid]
    unknown = set(pred_area) - set(pred) - {VOID}
    if unknown:
        raise KeyError(f'predicted segment ids {sorted(unknown)} are in the map but not listed')
    ids, counts = np.unique(pan_gt, return_counts=True)
    gt_area = dict(zip(ids.tolist(), counts.tolist()))
    joint = pan_gt.astype(np.uint64) * OFFSET + pan_pred.astype(np.uint64)
    ids, counts = np.unique(joint, return_counts=True)
    inter = {(int(i // OFFSET), int(i % OFFSET)): int(c) for i, c in zip(ids, counts)}
    gt_hit, pred_hit = set(), set()
    for (gid, pid), n in inter.items():
        if gid not in gt or pid not in pred or gt[gid].get('iscrowd', 0):
            continue
        if gt[gid]['category_id'] != pred[pid]['category_id']:
            continue
        union = pred[pid]['area'] + gt_area.get(gid, 0) - n - inter.get((VOID, pid), 0)
        iou = n / union
        if iou > 0.5:
            stats[gt[gid]['category_id']] += (1, 0, 0, iou)
            gt_hit.add(gid)
            pred_hit.add(pid)
    crowd_of = {}
    for gid, seg in gt.items():
        if gid in gt_hit:
            continue
        if seg.get('iscrowd', 0):
            crowd_of[seg['category_id']] = gid
            continue
        stats[seg['category_id']] += (0, 0, 1, 0)
    for pid, seg in pred.items():
        if pid in pred_hit:
            continue
        ignored = inter.get((VOID, pid), 0)
        if seg['category_id'] in crowd_of:
            ignored += inter.get((crowd_of[seg['category_id']], pid), 0)
        if ignored / seg['area'] > 0.5:
            continue
        stats[seg['category_id']] += (0, 1, 0, 0)
    return dict(stats)


def pq_from_stats(stats: Dict[int, np.ndarray], categories: Sequence[int]) -> Dict[str, float]:
    """PQ, SQ, RQ (in [0, 1]) averaged over the given categories that occur
    (tp + fp + fn > 0), as panopticapi's ``PQStat.pq_average``."""
    pq = sq = rq = 0.0
    n = 0
    for cat in categories:
        tp, fp, fn, iou = stats.get(cat, np.zeros(4))
        if tp + fp + fn == 0:
            continue
        n += 1
        pq += iou / (tp + 0.5 * fp + 0.5 * fn)
        sq += iou / tp if tp else 0.0
        rq += tp / (tp + 0.5 * fp + 0.5 * fn)
    if n == 0:
        return dict(pq=0.0, sq=0.0, rq=0.0, n=0)
    return dict(pq=pq / n, sq=sq / n, rq=rq / n, n=n)


@METRICS.register_module()
class PanopticQualityMetric(BaseMetric):
    """COCO panoptic quality: ``PQ``, ``SQ``, ``RQ`` over all classes and for
    things (``PQ_th``...) and stuff (``PQ_st``...), in percent as mmdet.

    Predictions follow mmdet: ``pred_panoptic_seg.sem_seg`` is a (1, H, W)
    map of ``label + instance_id * INSTANCE_OFFSET`` (1000), where label
    ``len(classes)`` (or ``ignore_index``) is void. Ground truth is the
    sample's panoptic PNG (``seg_map_path``) and ``segments_info`` (``id``,
    ``category`` label, ``is_thing``; a thing segment with ``is_thing`` False
    is crowd), as :class:`CocoPanopticCaptionDataset` provides; masks and the
    matching run in memory (no files written). ``dataset_meta`` needs
    ``classes`` and ``thing_classes``. Matches mmdet's
    ``pq_compute_single_core`` (tested).
    """

    default_prefix: Optional[str] = 'coco_panoptic'

    def __init__(self, collect_device: str = 'cpu', prefix: Optional[str] = None,
                 backend_args: Optional[dict] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.backend_args = backend_args

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        classes = (self.dataset_meta or {}).get('classes')
        things = set((self.dataset_meta or {}).get('thing_classes') or ())
        if not classes or not things:
            raise KeyError('PanopticQualityMetric needs dataset_meta "classes" and '
                           '"thing_classes" (CocoPanopticCaptionDataset sets both)')
        num_classes = len(classes)
        for sample in data_samples:
            for key in ('pred_panoptic_seg', 'seg_map_path', 'segments_info'):
                if key not in sample:
                    raise KeyError(f'PanopticQualityMetric needs "{key}"; sample '
                                   f'{sample.get("img_path")} has none')
            path = sample['seg_map_path']
            try:
                png = mmcv.imfrombytes(get(path, backend_args=self.backend_args), flag='color',
                                       channel_order='rgb')
            except Exception as e:
                raise FileNotFoundError(f'cannot read panoptic PNG {path}: {e}') from e
            pan_gt = rgb2id(png)
            # Segments the dataset dropped (classes outside the label space,
            # degenerate boxes) are void, as LoadPanopticAnnotations makes them.
            kept = [seg['id'] for seg in sample['segments_info']]
            pan_gt = np.where(np.isin(pan_gt, kept), pan_gt, VOID)
            gt_segments = []
            for seg in sample['segments_info']:
                label = seg['category']
                crowd = classes[label] in things and not seg['is_thing']
                gt_segments.append(dict(id=seg['id'], category_id=label, iscrowd=int(crowd)))
            pred = sample['pred_panoptic_seg']
            pan = pred['sem_seg'].cpu().numpy()[0].astype(np.int64)
            ignore = pred.get('ignore_index', num_classes)
            labels = pan % INSTANCE_OFFSET
            void = (labels == num_classes) | (labels == ignore)
            pan_pred = np.where(void, VOID, pan + 1)  # +1: a segment id is never 0
            pred_segments = [dict(id=int(i), category_id=int((i - 1) % INSTANCE_OFFSET))
                             for i in np.unique(pan_pred) if i != VOID]
            if pan_gt.shape != pan_pred.shape:
                raise ValueError(f'prediction {pan_pred.shape} and panoptic PNG {path} '
                                 f'{pan_gt.shape} differ in size')
            self.results.append(panoptic_matches(pan_gt, gt_segments, pan_pred, pred_segments))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        total: Dict[int, np.ndarray] = defaultdict(lambda: np.zeros(4))
        for stats in results:
            for cat, s in stats.items():
                total[cat] += s
        classes = self.dataset_meta['classes']
        things = set(self.dataset_meta['thing_classes'])
        groups = dict(all=range(len(classes)),
                      th=[i for i, c in enumerate(classes) if c in things],
                      st=[i for i, c in enumerate(classes) if c not in things])
        metrics = {}
        for group, cats in groups.items():
            res = pq_from_stats(total, list(cats))
            suffix = '' if group == 'all' else f'_{group}'
            for key in ('pq', 'sq', 'rq'):
                metrics[f'{key.upper()}{suffix}'] = float(100 * res[key])
        return metrics
