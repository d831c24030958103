"""PanopticQualityMetric against mmdet's ``pq_compute_single_core`` (the
panopticapi matching code shipped in mmdet.evaluation.functional).

panopticapi itself is not on PyPI, and mmdet imports only two small helpers
from it: ``PQStat`` (per-category tp/fp/fn/iou accumulators) and ``rgb2id``.
The test supplies both, written from panopticapi's definitions, and averages
PQ/SQ/RQ with panopticapi's ``pq_average`` formula.
"""
from collections import defaultdict

import mmdet.evaluation.functional.panoptic_utils as mmdet_pq
import numpy as np
import pytest
import torch
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmengine.structures import InstanceData
from PIL import Image

from mmfusion.registry import METRICS

CLASSES = ('cat', 'dog', 'sky', 'grass')  # things, then stuff
THINGS = ('cat', 'dog')
S = 32


class _PQStatCat:
    def __init__(self):
        self.iou, self.tp, self.fp, self.fn = 0.0, 0, 0, 0


class _PQStat:
    def __init__(self):
        self.pq_per_cat = defaultdict(_PQStatCat)

    def __getitem__(self, cat):
        return self.pq_per_cat[cat]


def _rgb2id(color):
    color = color.astype(np.int64)
    return color[..., 0] + 256 * color[..., 1] + 256 * 256 * color[..., 2]


def _pq_average(stat, cats):
    pq = sq = rq = 0.0
    n = 0
    for c in cats:
        s = stat.pq_per_cat.get(c)
        if s is None or s.tp + s.fp + s.fn == 0:
            continue
        n += 1
        pq += s.iou / (s.tp + 0.5 * s.fp + 0.5 * s.fn)
        sq += s.iou / s.tp if s.tp else 0
        rq += s.tp / (s.tp + 0.5 * s.fp + 0.5 * s.fn)
    return 100 * pq / n, 100 * sq / n, 100 * rq / n


def _save_png(path, ids):
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
    Image.fromarray(rgb).save(path)


def _scene(rng, img_idx):
    """GT ids, GT segments_info (dataset style) and a noisy mmdet-style prediction."""
    gt = np.where(np.arange(S)[:, None] < rng.integers(8, 20), 5000, 5001).repeat(S, 1)
    segs = [dict(id=5000, category=2, is_thing=False), dict(id=5001, category=3, is_thing=False)]
    pred = np.where(gt == 5000, 2, 3).astype(np.int64)
    if img_idx == 1:  # sky predicted as grass: fp + fn for both
        pred[:] = 3
    for j in range(int(rng.integers(2, 5))):
        y, x = rng.integers(0, S - 8, 2)
        h, w = rng.integers(4, 9, 2)
        label = int(rng.integers(0, 2))
        gt[y:y + h, x:x + w] = j + 1
        segs.append(dict(id=j + 1, category=label, is_thing=True))
        dy, dx = rng.integers(-2, 3, 2)
        plabel = label if rng.random() < 0.8 else 1 - label
        py, px = np.clip([y + dy, x + dx], 0, S - 1)
        pred[py:py + h, px:px + w] = plabel + (j + 1) * INSTANCE_OFFSET
    # a crowd cat region, and a predicted cat mostly inside it (ignored, not an fp)
    gt[0:6, 0:6] = 900
    segs.append(dict(id=900, category=0, is_thing=False))
    pred[0:5, 0:5] = 0 + 9 * INSTANCE_OFFSET
    gt[S - 3:, :] = 0  # unlabelled (void) rows
    pred[S - 2:, S - 6:] = len(CLASSES)  # void prediction
    pred[10:13, 20:23] = 1 + 8 * INSTANCE_OFFSET  # a small spurious dog
    segs = [s for s in segs if (gt == s['id']).any()]
    return gt, segs, pred


def test_parity_with_mmdet_pq_compute(tmp_path, monkeypatch):
    monkeypatch.setattr(mmdet_pq, 'PQStat', _PQStat)
    monkeypatch.setattr(mmdet_pq, 'rgb2id', _rgb2id)
    rng = np.random.default_rng(0)
    categories = {i: dict(id=i, name=c, isthing=int(c in THINGS)) for i, c in enumerate(CLASSES)}
    samples, annotation_set = [], []
    for i in range(4):
        gt, segs, pred = _scene(rng, i)
        gt_path = str(tmp_path / f'gt_{i}.png')
        _save_png(gt_path, gt)
        samples.append(dict(seg_map_path=gt_path, segments_info=segs, img_path=f'{i}.jpg',
                            pred_panoptic_seg=dict(sem_seg=torch.from_numpy(pred)[None])))
        # The same data in panopticapi's json/png form for mmdet's function.
        gt_json = [dict(id=s['id'], category_id=s['category'], area=int((gt == s['id']).sum()),
                        iscrowd=int(categories[s['category']]['isthing'] and not s['is_thing']))
                   for s in segs]
        void = (pred % INSTANCE_OFFSET) == len(CLASSES)
        pred_ids = np.where(void, 0, pred + 1)
        _save_png(str(tmp_path / f'pred_{i}.png'), pred_ids)
        pred_json = [dict(id=int(p), category_id=int((p - 1) % INSTANCE_OFFSET))
                     for p in np.unique(pred_ids) if p]
        annotation_set.append((dict(image_id=i, file_name=f'gt_{i}.png', segments_info=gt_json),
                               dict(image_id=i, file_name=f'pred_{i}.png',
                                    segments_info=pred_json)))
    stat = mmdet_pq.pq_compute_single_core(0, annotation_set, str(tmp_path), str(tmp_path),
                                           categories)
    metric = METRICS.build(dict(type='PanopticQualityMetric'))
    metric.dataset_meta = dict(classes=CLASSES, thing_classes=THINGS)
    metric.process({}, samples[:2])
    metric.process({}, samples[2:])
    # per-image, per-category matching equals mmdet's accumulated stats
    total = defaultdict(lambda: np.zeros(4))
    for r in metric.results:
        for c, v in r.items():
            total[c] += v
    for c in categories:
        s = stat.pq_per_cat.get(c, _PQStatCat())
        assert np.allclose(total[c], [s.tp, s.fp, s.fn, s.iou]), c
    out = metric.compute_metrics(metric.results)
    for suffix, cats in (('', [0, 1, 2, 3]), ('_th', [0, 1]), ('_st', [2, 3])):
        pq, sq, rq = _pq_average(stat, cats)
        assert out[f'PQ{suffix}'] == pytest.approx(pq)
        assert out[f'SQ{suffix}'] == pytest.approx(sq)
        assert out[f'RQ{suffix}'] == pytest.approx(rq)
    assert 0 < out['PQ'] < 100 and sum(total[c][1] for c in total) > 0  # some fps, some tps


def test_perfect_prediction(tmp_path):
    gt, segs, _ = _scene(np.random.default_rng(1), 0)
    _save_png(str(tmp_path / 'gt.png'), gt)
    label = {s['id']: s['category'] for s in segs}
    pred = np.full(gt.shape, len(CLASSES), np.int64)
    for sid, lab in label.items():
        pred[gt == sid] = lab + sid * INSTANCE_OFFSET
    pred[gt == 900] = len(CLASSES)  # crowd left unpredicted
    metric = METRICS.build(dict(type='PanopticQualityMetric'))
    metric.dataset_meta = dict(classes=CLASSES, thing_classes=THINGS)
    metric.process({}, [dict(seg_map_path=str(tmp_path / 'gt.png'), segments_info=segs,
                             pred_panoptic_seg=dict(sem_seg=torch.from_numpy(pred)[None]))])
    out = metric.compute_metrics(metric.results)
    assert out['PQ'] == pytest.approx(100) and out['PQ_st'] == pytest.approx(100)


def test_segments_dropped_by_the_dataset_are_void(tmp_path):
    """A PNG segment missing from segments_info (e.g. a class outside the label
    space) is void: a prediction over it is neither a match nor a false positive."""
    gt = np.zeros((S, S), np.int64)
    gt[:, :S // 2] = 1  # kept: 'sky'
    gt[:, S // 2:] = 2  # dropped by the dataset
    _save_png(str(tmp_path / 'gt.png'), gt)
    segs = [dict(id=1, category=2, is_thing=False)]
    pred = np.full(gt.shape, 2, np.int64)  # 'sky' on the left ...
    pred[:, S // 2:] = 0 + 7 * INSTANCE_OFFSET  # ... and a 'cat' over the dropped segment
    metric = METRICS.build(dict(type='PanopticQualityMetric'))
    metric.dataset_meta = dict(classes=CLASSES, thing_classes=THINGS)
    metric.process({}, [dict(seg_map_path=str(tmp_path / 'gt.png'), segments_info=segs,
                             pred_panoptic_seg=dict(sem_seg=torch.from_numpy(pred)[None]))])
    out = metric.compute_metrics(metric.results)
    assert out['PQ_st'] == pytest.approx(100)
    assert out['PQ'] == pytest.approx(100)  # the 'cat' over void is ignored, not a FP


def test_on_dataset_samples():
    """The dataset's packed samples feed the PQ and mask-AP metrics directly."""
    from tests.test_datasets.test_xdecoder_datasets import coco_panoptic
    ds = coco_panoptic()
    pq = METRICS.build(dict(type='PanopticQualityMetric'))
    ap = METRICS.build(dict(type='CocoMaskAPMetric'))
    pq.dataset_meta = ap.dataset_meta = ds.metainfo
    for i in range(len(ds)):
        sample = ds[i]['data_samples']
        gt = _rgb2id(np.array(Image.open(sample.seg_map_path)))
        pred = np.full(gt.shape, len(ds.metainfo['classes']), np.int64)
        for s in sample.segments_info:
            pred[gt == s['id']] = s['category'] + s['id'] * INSTANCE_OFFSET
        sample.pred_panoptic_seg = dict(sem_seg=torch.from_numpy(pred)[None])
        inst = sample.gt_instances
        sample.pred_instances = InstanceData(masks=inst.masks, labels=inst.labels,
                                             scores=torch.ones(len(inst.labels)))
        pq.process({}, [sample.to_dict()])
        ap.process({}, [sample.to_dict()])
    assert pq.compute_metrics(pq.results)['PQ'] == pytest.approx(100)
    assert ap.compute_metrics(ap.results)['mAP'] == pytest.approx(1.0)
