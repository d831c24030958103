"""CocoMaskAPMetric equals pycocotools' COCOeval run directly on the same
ground truth and detections, written as COCO json files."""
import json

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mmfusion.registry import METRICS

S = 48


def _box_mask(y, x, h, w):
    m = np.zeros((S, S), bool)
    m[y:y + h, x:x + w] = True
    return m


def _data(seed=0):
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(3):
        n = int(rng.integers(2, 5))
        boxes = [(*rng.integers(0, S - 20, 2), *rng.integers(4, 20, 2)) for _ in range(n)]
        gt_masks = np.stack([_box_mask(*b) for b in boxes])
        gt_labels = rng.integers(0, 3, n)
        pm, pl, ps = [], [], []
        for b, lab in zip(boxes, gt_labels):
            y, x, h, w = b
            d = rng.integers(-3, 4, 2)
            pm.append(_box_mask(max(y + d[0], 0), max(x + d[1], 0), h, w))
            pl.append(lab if rng.random() < 0.8 else (lab + 1) % 3)
            ps.append(rng.random())
        for _ in range(2):  # false positives
            pm.append(_box_mask(*rng.integers(0, S - 10, 2), *rng.integers(3, 10, 2)))
            pl.append(int(rng.integers(0, 3)))
            ps.append(rng.random() * 0.5)
        samples.append(dict(
            img_path='x.jpg', ori_shape=(S, S),
            gt_instances=dict(masks=torch.from_numpy(gt_masks), labels=torch.from_numpy(gt_labels)),
            pred_instances=dict(masks=torch.from_numpy(np.stack(pm)),
                                labels=torch.tensor(pl), scores=torch.tensor(ps))))
    return samples


def _rle(m):
    r = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    r['counts'] = r['counts'].decode()
    return r


def test_parity_with_cocoeval(tmp_path):
    samples = _data()
    images, anns, dets = [], [], []
    for i, s in enumerate(samples):
        images.append(dict(id=i + 1, file_name=f'{i}.jpg', height=S, width=S))
        for m, lab in zip(s['gt_instances']['masks'].numpy(), s['gt_instances']['labels']):
            anns.append(dict(id=len(anns) + 1, image_id=i + 1, category_id=int(lab) + 1,
                             segmentation=_rle(m), area=int(m.sum()), iscrowd=0,
                             bbox=mask_utils.toBbox(_rle(m)).tolist()))
        p = s['pred_instances']
        for m, lab, sc in zip(p['masks'].numpy(), p['labels'], p['scores']):
            dets.append(dict(image_id=i + 1, category_id=int(lab) + 1, segmentation=_rle(m),
                             score=float(sc)))
    gt_file = tmp_path / 'gt.json'
    gt_file.write_text(json.dumps(dict(images=images, annotations=anns, categories=[
        dict(id=c, name=str(c)) for c in (1, 2, 3)])))
    coco_gt = COCO(str(gt_file))
    ev = COCOeval(coco_gt, coco_gt.loadRes(dets), iouType='segm')
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    metric = METRICS.build(dict(type='CocoMaskAPMetric'))
    metric.dataset_meta = dict(classes=('a', 'b', 'c'))
    metric.process({}, samples[:1])
    metric.process({}, samples[1:])
    out = metric.compute_metrics(metric.results)
    assert list(out) == ['mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l']
    assert np.allclose(list(out.values()), ev.stats[:6])
    assert 0.1 < out['mAP'] < 0.9


def test_perfect_and_missing():
    samples = _data(1)
    for s in samples:
        gt = s['gt_instances']
        s['pred_instances'] = dict(masks=gt['masks'], labels=gt['labels'],
                                   scores=torch.ones(len(gt['labels'])))
    metric = METRICS.build(dict(type='CocoMaskAPMetric'))
    metric.dataset_meta = dict(classes=('a', 'b', 'c'))
    metric.process({}, samples)
    assert metric.compute_metrics(metric.results)['mAP'] == pytest.approx(1.0)
    del samples[0]['pred_instances']['scores']
    with pytest.raises(KeyError, match='scores'):
        metric.process({}, samples[:1])


def test_class_agnostic_equals_cocoeval_with_one_category():
    """class_agnostic=True is COCOeval with every label set to one category."""
    samples = _data(2)
    merged = [dict(s, gt_instances=dict(s['gt_instances'],
                                        labels=torch.zeros_like(s['gt_instances']['labels'])),
                   pred_instances=dict(s['pred_instances'],
                                       labels=torch.zeros_like(s['pred_instances']['labels'])))
              for s in samples]
    reference = METRICS.build(dict(type='CocoMaskAPMetric'))
    reference.dataset_meta = dict(classes=('object', ))
    reference.process({}, merged)
    agnostic = METRICS.build(dict(type='CocoMaskAPMetric', class_agnostic=True))
    agnostic.dataset_meta = dict(classes=('a', 'b', 'c'))
    agnostic.process({}, samples)
    per_class = METRICS.build(dict(type='CocoMaskAPMetric'))
    per_class.dataset_meta = dict(classes=('a', 'b', 'c'))
    per_class.process({}, samples)
    out = agnostic.compute_metrics(agnostic.results)
    assert out == reference.compute_metrics(reference.results)
    # wrong labels stop counting against the predictions
    assert out['mAP_50'] > per_class.compute_metrics(per_class.results)['mAP_50']
