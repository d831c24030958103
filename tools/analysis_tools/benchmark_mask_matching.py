"""Benchmark: batched Hungarian matching against mmdet's assigner per image.

``PointSampleHungarianMatcher.match_batch`` calls each of mmdet's match costs
once on a whole batch and keeps each image's block; the baseline is what it
replaced, mmdet's ``HungarianAssigner.assign`` once per image on that image's
sampled points. Both run in this process on the same random batch (shaped
like the tiny X-Decoder's: 16 images, 20 queries, 24x24 mask logits, 96x96
gt masks, 1024 points), and both give the same matches (asserted here and in
tests/test_models/test_common/test_mask_decoding.py).

    python tools/analysis_tools/benchmark_mask_matching.py [--batch 16] [--repeats 30]
"""
import argparse
import json
import time

import torch
from mmcv.ops import point_sample
from mmengine.structures import InstanceData

from mmfusion.models.common.mask import PointSampleHungarianMatcher


def make_batch(batch: int, queries: int, classes: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    cls_logits = torch.randn(batch, queries, classes + 1, generator=g)
    mask_logits = torch.randn(batch, queries, 24, 24, generator=g) * 3
    counts = torch.randint(2, 8, (batch,), generator=g).tolist()
    labels = [torch.randint(0, classes, (n,), generator=g) for n in counts]
    masks = [(torch.rand(n, 96, 96, generator=g) > 0.7).float() for n in counts]
    return cls_logits, mask_logits, labels, masks


def per_image(matcher, coords, cls_logits, mask_logits, labels, masks):
    """The baseline: mmdet's assigner on each image alone."""
    out = []
    for b in range(len(labels)):
        pts = coords[b:b + 1]
        result = matcher.assigner.assign(
            InstanceData(scores=cls_logits[b], masks=point_sample(mask_logits[b][None], pts)[0]),
            InstanceData(labels=labels[b], masks=point_sample(masks[b][None], pts)[0]))
        q = torch.nonzero(result.gt_inds > 0)[:, 0]
        out.append((q, result.gt_inds[q] - 1))
    return out


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--queries', type=int, default=20)
    parser.add_argument('--classes', type=int, default=33)
    parser.add_argument('--points', type=int, default=1024)
    parser.add_argument('--repeats', type=int, default=30)
    args = parser.parse_args()
    data = make_batch(args.batch, args.queries, args.classes)
    matcher = PointSampleHungarianMatcher(num_points=args.points)
    coords = torch.rand(args.batch, args.points, 2)
    matcher.sample_points = lambda num, device, batch=1: coords[:batch]
    with torch.no_grad():
        batched = matcher.match_batch(*data)
        baseline = per_image(matcher, coords, *data)
        for (qa, ga), (qb, gb) in zip(batched, baseline):
            assert qa.tolist() == qb.tolist() and ga.tolist() == gb.tolist()
        t_base = timed(lambda: per_image(matcher, coords, *data), args.repeats)
        t_batch = timed(lambda: matcher.match_batch(*data), args.repeats)
    print(json.dumps(dict(threads=torch.get_num_threads(), batch=args.batch,
                          per_image_ms=round(t_base * 1e3, 2), batched_ms=round(t_batch * 1e3, 2),
                          speedup=round(t_base / t_batch, 2)), indent=1))


if __name__ == '__main__':
    main()
