"""Point-cloud ops, PointDataPreprocessor, PointMAEEncoder and PointNet2SSG.

Ops are checked against brute-force numpy (float64, full distance matrices);
encoders against invariances that hold by construction:
- padding: a padded cloud gives exactly what it gives alone (lengths respected);
- point order: FPS from the same start point picks the same points, kNN and
  (nearest-first) ball query the same sets, max pools ignore order, so any
  permutation that keeps point 0 first leaves every output unchanged. A
  permutation that moves point 0 changes the FPS start and so the output.
"""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate

from mmfusion.models.encoders.pointcloud import (
    PointMAEEncoder,
    PointNet2SSG,
    ball_query,
    farthest_point_sample,
    knn_group,
)
from mmfusion.registry import MODELS

from tests.conftest import DATA

TINY_MAE = dict(num_group=12, group_size=8, embed_dims=32, depth=2, num_heads=2)
TINY_PN2 = dict(num_points=(24, 8), radii=(0.8, 1.6), num_samples=(8, 6),
                mlp_channels=((16, 16), (16, 32)), global_mlp=(32, 48))


def _np_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))


def _np_fps(xyz: np.ndarray, n: int, start: int = 0) -> list:
    d = _np_dist(xyz, xyz)
    picked = [start]
    for _ in range(n - 1):
        picked.append(int(d[picked].min(0).argmax()))
    return picked


def _np_knn(xyz: np.ndarray, centers: np.ndarray, k: int) -> np.ndarray:
    order = np.argsort(_np_dist(centers, xyz), axis=1, kind='stable')[:, :k]
    if order.shape[1] < k:  # fewer points than k: repeat the nearest
        order = np.concatenate([order, np.repeat(order[:, :1], k - order.shape[1], 1)], 1)
    return order


def _padded_batch(clouds):
    """Pad with junk points among the real ones, so sampling or grouping a
    padded row would change the results."""
    n = max(c.shape[0] for c in clouds)
    batch = torch.rand(len(clouds), n, clouds[0].shape[1],
                       generator=torch.Generator().manual_seed(99)) * 2 - 1
    for i, c in enumerate(clouds):
        batch[i, :c.shape[0]] = c
    return batch, torch.tensor([c.shape[0] for c in clouds])


def _clouds(seed=0, sizes=(70, 40, 5), channels=3):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(n, channels, generator=g) * 2 - 1 for n in sizes]


# -- ops ---------------------------------------------------------------------
def test_fps_matches_bruteforce_and_ignores_padding():
    clouds = _clouds()
    batch, lengths = _padded_batch(clouds)
    idx = farthest_point_sample(batch, 16, lengths)
    assert idx.shape == (3, 16)
    for b, c in enumerate(clouds):
        # The 5-point cloud picks its 5 points, then repeats (lowest index first).
        assert idx[b].tolist() == _np_fps(c.double().numpy(), 16)
        assert int(idx[b].max()) < lengths[b]
    starts = torch.tensor([3, 10, 4])
    idx = farthest_point_sample(batch, 8, lengths, start_idx=starts)
    for b, c in enumerate(clouds):
        assert idx[b].tolist() == _np_fps(c.double().numpy(), 8, int(starts[b]))
    with pytest.raises(ValueError, match='real point'):
        farthest_point_sample(batch, 4, lengths, start_idx=torch.tensor([0, 0, 5]))


def test_knn_and_ball_query_match_bruteforce():
    clouds = _clouds(1)
    batch, lengths = _padded_batch(clouds)
    centers = torch.rand(3, 6, 3) * 2 - 1
    k = 9  # more than the 5-point cloud holds
    idx, dist = knn_group(batch, centers, k, lengths)
    radius = 0.5
    ball = ball_query(batch, centers, radius, k, lengths)
    for b, c in enumerate(clouds):
        c64, q64 = c.double().numpy(), centers[b].double().numpy()
        expected = _np_knn(c64, q64, k)
        assert idx[b].tolist() == expected.tolist()
        d = _np_dist(q64, c64)
        np.testing.assert_allclose(dist[b].numpy(), np.take_along_axis(d, expected, 1), atol=1e-5)
        # Ball: the nearest in-radius points, empty slots repeat the nearest point.
        in_ball = np.take_along_axis(d, expected, 1) <= radius
        assert ball[b].tolist() == np.where(in_ball, expected, expected[:, :1]).tolist()
        assert int(idx[b].max()) < lengths[b] and int(ball[b].max()) < lengths[b]


def test_ops_reject_bad_lengths():
    xyz = torch.rand(2, 10, 3)
    with pytest.raises(ValueError, match=r'lengths must lie in \[1, 10\]'):
        farthest_point_sample(xyz, 4, torch.tensor([10, 0]))
    with pytest.raises(ValueError, match='shape'):
        knn_group(xyz, xyz[:, :2], 3, torch.tensor([3]))


def test_fps_order_follows_start_point_not_storage_order():
    cloud = _clouds(2, sizes=(60, ))[0]
    perm = torch.randperm(60, generator=torch.Generator().manual_seed(0))
    ref = farthest_point_sample(cloud[None], 10)[0]
    new_start = int((perm == 0).nonzero())  # where the old point 0 went
    got = farthest_point_sample(cloud[perm][None], 10, start_idx=new_start)[0]
    assert perm[got].tolist() == ref.tolist()


# -- preprocessor --------------------------------------------------------------
def test_preprocessor_pads_and_normalises_over_real_points():
    pre = MODELS.build(dict(type='PointDataPreprocessor'))
    clouds = [torch.rand(7, 6) * 5 + 3, torch.rand(4, 6)]
    out = pre(dict(inputs=clouds))
    assert out['inputs'].shape == (2, 7, 6) and out['lengths'].tolist() == [7, 4]
    for b, c in enumerate(clouds):
        xyz = c[:, :3].double().numpy()
        xyz = xyz - xyz.mean(0)
        xyz /= np.linalg.norm(xyz, axis=1).max()
        got = out['inputs'][b, :len(c)]
        np.testing.assert_allclose(got[:, :3].numpy(), xyz, atol=1e-6)
        assert torch.equal(got[:, 3:], c[:, 3:])  # normals/colours untouched
    assert not out['inputs'][1, 4:].any()
    raw = MODELS.build(dict(type='PointDataPreprocessor', normalize=False))(dict(inputs=clouds))
    assert torch.equal(raw['inputs'][0], clouds[0])


def test_preprocessor_is_invariant_to_translation_and_scale():
    pre = MODELS.build(dict(type='PointDataPreprocessor'))
    c = torch.rand(30, 3)
    a = pre(dict(inputs=[c]))['inputs']
    b = pre(dict(inputs=[c * 4.0 + torch.tensor([10.0, -3.0, 2.0])]))['inputs']
    assert torch.allclose(a, b, atol=1e-5)


def test_preprocessor_resampling():
    pre = MODELS.build(dict(type='PointDataPreprocessor', num_points=16, normalize=False, seed=3))
    big, small = torch.rand(40, 3), torch.rand(5, 3)
    out = pre(dict(inputs=[big, small]))
    assert out['inputs'].shape == (2, 16, 3) and out['lengths'].tolist() == [16, 16]

    def rows(sub, cloud):  # index of each resampled row in the source cloud
        return [int((cloud == r).all(1).nonzero()[0]) for r in sub]
    assert len(set(rows(out['inputs'][0], big))) == 16  # without replacement
    assert set(rows(out['inputs'][1], small)) == set(range(5))  # all kept, then repeats
    # Evaluation: the same cloud gets the same subset whatever its batch.
    again = pre(dict(inputs=[torch.rand(9, 3), big]))
    assert torch.equal(again['inputs'][1], out['inputs'][0])
    # Training: driven by the global RNG.
    torch.manual_seed(0)
    t1 = pre(dict(inputs=[big]), training=True)['inputs']
    torch.manual_seed(0)
    assert torch.equal(pre(dict(inputs=[big]), training=True)['inputs'], t1)
    assert not torch.equal(pre(dict(inputs=[big]), training=True)['inputs'], t1)


def test_preprocessor_errors_and_multimodal_lengths():
    pre = MODELS.build(dict(type='PointDataPreprocessor'))
    with pytest.raises(ValueError, match='same number of channels'):
        pre(dict(inputs=[torch.rand(4, 3), torch.rand(4, 6)]))
    with pytest.raises(ValueError, match=r'cloud 1 has shape \(4, 2\)'):
        pre(dict(inputs=[torch.rand(4, 3), torch.rand(4, 2)]))
    mm = MODELS.build(dict(type='MultiModalDataPreprocessor',
                           points=dict(type='PointDataPreprocessor')))
    batch = pseudo_collate([dict(inputs=dict(points=torch.rand(n, 3))) for n in (5, 9)])
    out = mm(batch)['inputs']
    assert out['points'].shape == (2, 9, 3) and out['points_lengths'].tolist() == [5, 9]


# -- encoders --------------------------------------------------------------------
def _tiny(cls, **kw):
    torch.manual_seed(0)
    cfg = dict(TINY_MAE if cls is PointMAEEncoder else TINY_PN2)
    cfg.update(kw)
    return cls(**cfg)


@pytest.mark.parametrize('cls', [PointMAEEncoder, PointNet2SSG])
def test_padded_cloud_gives_what_it_gives_alone(cls):
    model = _tiny(cls)
    clouds = _clouds(3, sizes=(80, 30))
    batch, lengths = _padded_batch(clouds)
    with torch.no_grad():
        both = model(batch, lengths)
        alone = model(clouds[1][None])
    torch.testing.assert_close(both['pooled'][1:], alone['pooled'], atol=1e-5, rtol=1e-5)
    if cls is PointMAEEncoder:
        for key in ('tokens', 'centers', 'groups'):
            torch.testing.assert_close(both[key][1:], alone[key], atol=1e-5, rtol=1e-5)
    else:
        for level in range(2):
            torch.testing.assert_close(both['points'][level][1:], alone['points'][level])
            torch.testing.assert_close(both['feats'][level][1:], alone['feats'][level],
                                       atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('cls', [PointMAEEncoder, PointNet2SSG])
def test_point_order_invariance(cls):
    model = _tiny(cls)
    cloud = _clouds(4, sizes=(64, ))[0][None]
    g = torch.Generator().manual_seed(1)
    keep_first = torch.cat([torch.zeros(1, dtype=torch.long), 1 + torch.randperm(63, generator=g)])
    with torch.no_grad():
        ref = model(cloud)
        same = model(cloud[:, keep_first])
        moved = model(cloud[:, torch.randperm(64, generator=g)])
    torch.testing.assert_close(same['pooled'], ref['pooled'], atol=1e-5, rtol=1e-5)
    key = 'centers' if cls is PointMAEEncoder else 'points'
    ref_c, same_c, moved_c = (o[key] if cls is PointMAEEncoder else o[key][0]
                              for o in (ref, same, moved))
    torch.testing.assert_close(same_c, ref_c)
    # Moving point 0 changes FPS's start: a different (equally valid) sampling.
    assert not torch.allclose(moved_c, ref_c)


def test_point_mae_outputs_and_masking():
    model = _tiny(PointMAEEncoder, cls_token=True, pool='cls+max')
    x = torch.rand(2, 50, 6)  # extra channels are ignored
    out = model(x)
    assert out['tokens'].shape == (2, 12, 32) and out['centers'].shape == (2, 12, 3)
    assert out['groups'].shape == (2, 12, 8, 3) and out['pooled'].shape == (2, 64)
    assert 'hidden_mask' not in out
    # Groups are neighbourhoods of their centre: centre itself is the nearest (offset 0).
    assert out['groups'][:, :, 0].abs().max() == 0
    mae = _tiny(PointMAEEncoder, mask_ratio=0.6, frozen=False)
    assert mae.training
    out = mae(x)
    assert out['hidden_mask'].shape == (2, 12) and out['hidden_mask'].sum(1).tolist() == [7, 7]
    assert out['tokens'].shape == (2, 5, 32) and out['pooled'].shape == (2, 32)
    assert 'hidden_mask' not in mae(x, masking=False)


def test_point_mae_masks_only_in_training_by_default():
    x = torch.rand(2, 50, 3)
    mae = _tiny(PointMAEEncoder, mask_ratio=0.6, frozen=False).eval()
    with torch.no_grad():
        first, second = mae(x), mae(x)
        forced = mae(x, masking=True)
    # Evaluation is deterministic: every group is encoded, nothing hidden.
    assert 'hidden_mask' not in first and first['tokens'].shape == (2, 12, 32)
    assert torch.equal(first['pooled'], second['pooled'])
    assert forced['hidden_mask'].sum(1).tolist() == [7, 7] and forced['tokens'].shape[1] == 5
    # A frozen encoder stays in eval mode, so it never masks by default.
    frozen = _tiny(PointMAEEncoder, mask_ratio=0.6).train()
    assert 'hidden_mask' not in frozen(x)
    with pytest.raises(ValueError, match='needs cls_token=True'):
        PointMAEEncoder(pool='cls')


def test_pointnet2_outputs():
    model = _tiny(PointNet2SSG, in_channels=6)
    out = model(torch.rand(2, 50, 6))
    assert [p.shape for p in out['points']] == [(2, 24, 3), (2, 8, 3)]
    assert [f.shape for f in out['feats']] == [(2, 16, 24), (2, 32, 8)]
    assert out['pooled'].shape == (2, 48)
    with pytest.raises(ValueError, match=r'expects points \(B, N, 6\)'):
        model(torch.rand(2, 50, 3))


@pytest.mark.parametrize('cls', [PointMAEEncoder, PointNet2SSG])
def test_frozen_by_default_and_trainable_on_request(cls):
    frozen = _tiny(cls)
    frozen.train()
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())
    assert not frozen(torch.rand(1, 40, 3))['pooled'].requires_grad
    model = _tiny(cls, frozen=False)
    model(torch.rand(2, 40, 3))['pooled'].sum().backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if 'cls' not in n)


def _perturbed(model):
    """Random weights and BN statistics, so a round trip can't pass by luck."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                low = 0.5 if 'running_var' in name else -0.25  # variances stay positive
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + low)
    return model


# Heads of the official models that the encoder does not own.
POINT_MAE_HEADS = ('mask_token', 'MAE_decoder.', 'decoder_pos_embed.', 'increase_dim.',
                   'cls_head_finetune.')


def _official_point_mae(layout: str) -> dict:
    """Random tensors in the official Point-MAE layout ``layout`` (keys and
    shapes of ``tests/data/i2pmae_official_keys.json``, written from
    Pang-Yatian/Point-MAE's module definitions, not from mmfusion's)."""
    with open(osp.join(DATA, 'i2pmae_official_keys.json')) as f:
        shapes = json.load(f)[layout]
    g = torch.Generator().manual_seed(3)
    return {k: (torch.randint(0, 100, s, generator=g) if k.endswith('num_batches_tracked')
                else torch.rand(s, generator=g) + 0.5) for k, s in shapes.items()}


@pytest.mark.parametrize('layout, wrapper, encoder', [
    # pre-training, saved by one process (DataParallel: module.), no cls token
    ('pointmae_pretrain', 'module.', dict()),
    # fine-tuning, saved by DDP (base_model.module.state_dict(): bare keys)
    ('pointmae_finetune', '', dict(cls_token=True, pool='cls+max')),
])
def test_point_mae_loads_the_official_layouts(tmp_path, layout, wrapper, encoder):
    official = _official_point_mae(layout)
    path = tmp_path / 'ckpt-300.pth'
    # tools/builder.save_checkpoint's file
    torch.save({'base_model': {wrapper + k: v for k, v in official.items()},
                'optimizer': {'state': {}, 'param_groups': []}, 'epoch': 300,
                'metrics': {}, 'best_metrics': {}}, path)
    model = PointMAEEncoder(checkpoint=str(path), **encoder)  # the official sizes by default
    own = model.state_dict()
    theirs = {k[len('MAE_encoder.'):] if k.startswith('MAE_encoder.') else k: v
              for k, v in official.items() if not k.startswith(POINT_MAE_HEADS)}
    # Every encoder tensor of the official file, and nothing else, is the model's.
    assert sorted(own) == sorted(theirs)
    for k, v in own.items():
        assert torch.equal(v, theirs[k]), k
    x = torch.rand(2, 1024, 3)
    assert model(x)['pooled'].shape == (2, model.out_channels)
    assert model.out_channels == (768 if encoder else 384)


def test_point_mae_checkpoint_errors_name_the_file_and_the_cause(tmp_path):
    path = tmp_path / 'ckpt-last.pth'
    torch.save({'base_model': _official_point_mae('pointmae_finetune')}, path)
    with pytest.raises(RuntimeError, match=r'PointMAEEncoder: checkpoint .*ckpt-last\.pth does not '
                                           r'fit.*shape mismatches.*embed_dims'):
        PointMAEEncoder(embed_dims=192, num_heads=3, cls_token=True, checkpoint=str(path))
    with pytest.raises(RuntimeError, match=r'ckpt-last\.pth.*missing keys.*blocks\.blocks\.12'):
        PointMAEEncoder(depth=13, cls_token=True, checkpoint=str(path))
    with pytest.raises(KeyError, match=r"PointMAEEncoder: no key in .*ckpt-last\.pth starts with "
                                       r"prefix 'backbone\.'"):
        PointMAEEncoder(checkpoint=str(path), prefix='backbone.')


def test_pointnet2_checkpoint_round_trip(tmp_path):
    src = _perturbed(_tiny(PointNet2SSG))
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in src.state_dict().items()}},
               tmp_path / 'epoch_1.pth')
    loaded = _tiny(PointNet2SSG, checkpoint=str(tmp_path / 'epoch_1.pth'), prefix='backbone.')
    x = torch.rand(2, 40, 3)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)['pooled'], src.eval()(x)['pooled'])
    with pytest.raises(RuntimeError, match=r'epoch_1\.pth does not fit.*shape mismatches'):
        _tiny(PointNet2SSG, global_mlp=(32, 64), checkpoint=str(tmp_path / 'epoch_1.pth'),
              prefix='backbone.')
    with pytest.raises(KeyError, match=r"PointNet2SSG: no key in .*epoch_1\.pth.*'neck\.'"):
        _tiny(PointNet2SSG, checkpoint=str(tmp_path / 'epoch_1.pth'), prefix='neck.')


def test_file_to_encoder_pipeline(tmp_path):
    from mmfusion.registry import TRANSFORMS
    pipeline = [TRANSFORMS.build(dict(type='LoadPointsFromFile')),
                TRANSFORMS.build(dict(type='PackFusionInputs'))]
    samples = []
    for i, n in enumerate((30, 45)):
        path = tmp_path / f'cloud{i}.txt'
        np.savetxt(path, np.random.RandomState(i).rand(n, 3), delimiter=',')
        results = dict(points_path=str(path))
        for t in pipeline:
            results = t(results)
        samples.append(results)
    pre = MODELS.build(dict(type='MultiModalDataPreprocessor',
                           points=dict(type='PointDataPreprocessor')))
    inputs = pre(pseudo_collate(samples))['inputs']
    out = _tiny(PointMAEEncoder)(inputs['points'], inputs['points_lengths'])
    assert out['pooled'].shape == (2, 32) and torch.isfinite(out['pooled']).all()
