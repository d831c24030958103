"""I2P-MAE: projection, 2D-guided masking, the pre-training losses, zero-shot alignment."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmfusion.models.encoders.pointcloud.projection import (
    gather_pixel_features,
    points_to_pixels,
    splat_depth_views,
)
from mmfusion.models.i2pmae import (
    DepthViewTeacher,
)
from mmfusion.models.i2pmae.h_encoder import pack_rows, propagate_visible
from mmfusion.models.i2pmae.i2pmae import ImageToPointMixin, chamfer_l2
from mmfusion.registry import MODELS

CLIP_CFG = dict(embed_dim=16,
                vision_cfg=dict(image_size=32, patch_size=8, width=32, layers=2, head_width=16,
                                mlp_ratio=2.0),
                text_cfg=dict(context_length=12, width=32, heads=2, layers=1, mlp_ratio=2.0))
TEACHER = dict(type='DepthViewTeacher', image_size=32, kernel=3,
               encoder=dict(type='OpenCLIPImageEncoder', model_cfg=CLIP_CFG, out_indices=(-1, )))
ENCODER = dict(type='I2PMAEEncoder', num_groups=(32, 16, 8), group_sizes=(8, 4, 4),
               embed_dims=(16, 32, 64), depths=(1, 1, 1), num_heads=2, embed_hidden=(8, 16, 16),
               frozen=False)


def _clouds(b=2, n=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    pts = torch.randn(b, n, 3, generator=g)
    return pts / pts.norm(dim=-1).amax(1, keepdim=True)[..., None]


# -- projection ----------------------------------------------------------------
def test_projection_matches_a_hand_computed_example():
    # One view with rows from x, columns from y, depth z; S = 11 so the grid step is
    # (1 - (-1)) / (11 - 3) = 0.25 exactly: a point's pixel is floor((p + 1) / 0.25) + 1,
    # then the footprint [1, 9] (centre 5) is shifted to centre S // 2 - 1 = 4: -1.
    pts = torch.tensor([[[-1.0, -1.0, 0.5], [1.0, 1.0, -0.5], [0.0, -1.0, 0.25],
                         [0.0, -1.0, 0.5]]])
    pix, depth = points_to_pixels(pts, 11, views=[(0, 1, 2)])
    assert pix[0, 0].tolist() == [[0, 0], [8, 8], [4, 0], [4, 0]]
    assert depth[0, 0].tolist() == [0.5, -0.5, 0.25, 0.5]
    # The other two official views permute the axes: (z, x, y) and (y, z, x).
    pix3, depth3 = points_to_pixels(pts, 11)
    assert depth3[0, 1].tolist() == pts[0, :, 1].tolist()
    assert depth3[0, 2].tolist() == pts[0, :, 0].tolist()

    images, pix1 = splat_depth_views(pts, 11, kernel=1, views=[(0, 1, 2)])
    expected = torch.zeros(11, 11)
    expected[0, 0], expected[8, 8], expected[4, 0] = 0.5, -0.5, 0.75  # the last two share a pixel
    assert torch.allclose(images[0, 0], torch.sigmoid(expected))
    assert torch.equal(pix1, pix)
    # A 3x3 splat adds each depth to the 3x3 square around its pixel (clipped at the border).
    images3, _ = splat_depth_views(pts, 11, kernel=3, views=[(0, 1, 2)])
    assert images3[0, 0, 1, 1] == torch.sigmoid(torch.tensor(0.5))
    assert images3[0, 0, 5, 1] == torch.sigmoid(torch.tensor(0.75))
    assert images3[0, 0, 7, 7] == torch.sigmoid(torch.tensor(-0.5))
    assert images3[0, 0, 2, 5] == 0.5  # empty: sigmoid(0)


def test_back_projection_reads_the_pixel_each_point_was_splatted_to():
    pts = _clouds(2, 200)
    images, pix = splat_depth_views(pts, 16, kernel=1)
    # A map that stores each pixel's own image value: reading it back at a point's pixel
    # gives the rendered value of that pixel, whose sum includes the point's depth.
    maps = images[:, :, None]
    read = gather_pixel_features(maps, pix, 16)[..., 0]
    flat = images.flatten(2)
    ref = torch.gather(flat, 2, pix[..., 0] * 16 + pix[..., 1])
    assert torch.equal(read, ref)
    # A coarser map (a patch grid): a pixel reads the cell that covers it.
    coarse = torch.arange(16, dtype=torch.float).view(1, 1, 1, 4, 4).expand(2, 3, 1, 4, 4)
    cell = gather_pixel_features(coarse, pix, 16)[..., 0]
    assert torch.equal(cell, ((pix[..., 0] // 4) * 4 + pix[..., 1] // 4).float())


def test_projection_gradient_reaches_the_depth_and_padding_adds_nothing():
    pts = _clouds(1, 50).requires_grad_(True)
    images, _ = splat_depth_views(pts, 16)
    images.sum().backward()
    assert pts.grad is not None and pts.grad.abs().sum() > 0
    padded = torch.cat([pts.detach(), torch.full((1, 7, 3), 5.0)], dim=1)
    a, _ = splat_depth_views(pts.detach(), 16)
    b, _ = splat_depth_views(padded, 16, lengths=torch.tensor([50]))
    assert torch.allclose(a, b)


@pytest.mark.parametrize('bad, match', [
    (torch.zeros(1, 0, 3), 'empty'),
    (torch.tensor([[[0.0, float('nan'), 0.0], [1.0, 0.0, 0.0]]]), 'NaN'),
    (torch.zeros(1, 4, 2), r'\(B, N, 3\+\)'),
])
def test_projection_rejects_bad_clouds(bad, match):
    with pytest.raises(ValueError, match=match):
        splat_depth_views(bad, 16)


# -- hierarchy and masking -----------------------------------------------------
def test_visibility_propagates_to_the_members_of_visible_groups():
    # Level 1 has 3 groups over the 5 level-0 tokens; only group 1 is visible.
    idxs = [torch.zeros(1, 5, 2, dtype=torch.long), torch.tensor([[[0, 1], [1, 2], [3, 4]]])]
    masks = propagate_visible(torch.tensor([[False, True, False]]), idxs)
    assert masks[1].tolist() == [[False, True, False]]
    assert masks[0].tolist() == [[False, True, True, False, False]]
    packed, valid, order = pack_rows(torch.arange(5.0).view(1, 5, 1), masks[0])
    assert order.tolist() == [[1, 2]] and valid.all() and packed[0, :, 0].tolist() == [1.0, 2.0]


def test_guided_masking_keeps_salient_tokens_visible():
    torch.manual_seed(0)
    G, keep = 32, 7
    saliency = torch.zeros(4, G)
    salient = torch.stack([torch.randperm(G)[:keep] for _ in range(4)])
    saliency.scatter_(1, salient, 30.0)  # softmax mass on them ~1 - 25 * e^-30
    visible = ImageToPointMixin.guided_visible(saliency, keep)
    assert visible.sum(1).tolist() == [keep] * 4
    for b in range(4):
        assert set(visible[b].nonzero()[:, 0].tolist()) == set(salient[b].tolist())
    # Flat saliency: a uniform draw (every token visible in about keep / G of the draws).
    counts = sum(ImageToPointMixin.guided_visible(torch.zeros(50, G), keep).float().sum(0)
                 for _ in range(20))
    rate = counts / 1000
    assert (rate - keep / G).abs().max() < 0.08


def test_centre_saliency_reads_the_views_at_the_centres_pixels():
    mixin = ImageToPointMixin()
    mixin.teacher = type('T', (), {'image_size': 16})()
    mixin.feature_upsample = 'nearest'
    pts = _clouds(1, 64)
    _, pix = splat_depth_views(pts, 16)
    # Saliency map = its column index in view 0, 0 elsewhere: the view-mean at a point
    # is its column in view 0 (grid 16 -> map 16: one cell per pixel) over 3.
    sal = torch.zeros(1, 3, 16, 16)
    sal[:, 0] = torch.arange(16.0)
    centre_idx = torch.tensor([[0, 5, 9]])
    views = dict(saliency=sal, pix=pix)
    got = mixin.centre_saliency(views, centre_idx)
    assert torch.allclose(got, pix[0, 0, [0, 5, 9], 1].float()[None] / 3)


def test_teacher_class_attention_equals_multihead_attention_weights():
    teacher = MODELS.build(TEACHER)
    block = teacher.encoder.visual.transformer.resblocks[-1]
    x = torch.randn(3, 17, 32)
    y = block.ln_1(x)
    _, weights = block.attn(y, y, y, need_weights=True, average_attn_weights=True)
    assert torch.allclose(DepthViewTeacher._class_attention(block, x), weights[:, 0], atol=1e-6)
    out = teacher(_clouds(2, 100))
    assert out['feats'].shape == (2, 3, 16, 4, 4) and out['saliency'].shape == (2, 3, 4, 4)
    assert torch.allclose(out['saliency'].sum((-1, -2)), torch.ones(2, 3))


def test_encoder_rejects_too_few_points_and_loads_its_own_weights(tmp_path):
    enc = MODELS.build(ENCODER)
    with pytest.raises(ValueError, match='fewer than the 32 groups'):
        enc(_clouds(1, 20))
    torch.save(dict(state_dict={'h_encoder.' + k: v for k, v in enc.state_dict().items()}),
               tmp_path / 'ckpt.pth')
    other = MODELS.build(dict(ENCODER, checkpoint=str(tmp_path / 'ckpt.pth'),
                              prefix='h_encoder.'))
    enc.eval(), other.eval()
    pts = _clouds(2, 128)
    assert torch.equal(enc(pts)['pooled'], other(pts)['pooled'])


# -- pre-training ----------------------------------------------------------------
def test_chamfer_l2_matches_a_hand_computation():
    a = torch.tensor([[[0.0, 0, 0], [1, 0, 0]]])
    b = torch.tensor([[[0.0, 0, 1], [3, 0, 0], [1, 0, 0]]])
    # a -> b: 1, 0 (mean 0.5); b -> a: 1, 4, 0 (mean 5/3).
    assert torch.isclose(chamfer_l2(a, b), torch.tensor(0.5 + 5 / 3))


def _grads_reach_exactly(model, loss, allowed_without_grad=()):
    loss.backward()
    for name, p in model.named_parameters():
        if name.startswith('teacher.'):
            assert not p.requires_grad and p.grad is None, name
        elif p.requires_grad and not any(name.startswith(a) for a in allowed_without_grad):
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_i2pmae_losses_and_gradients():
    torch.manual_seed(0)
    model = MODELS.build(dict(type='I2PMAE', encoder=ENCODER, teacher=TEACHER,
                              decoder_dims=(64, 32), num_heads=2))
    before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    model.train()
    losses = model.loss(dict(points=_clouds(2, 128)))
    assert set(losses) == {'loss_3d', 'loss_2d'}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    # Level 0's norm feeds nothing in pre-training (the decoder stops at level 1), as upstream.
    _grads_reach_exactly(model, sum(losses.values()), ('h_encoder.encoder_norms.0',))
    assert all(torch.equal(before[k], v) for k, v in model.teacher.state_dict().items())
    # 2D target width: the 3 views concatenated, per member of a level-1 token.
    assert model.rec_head_2d.out_channels == 3 * 16 * 4
    # Without a teacher: random masking, Chamfer only.
    plain = MODELS.build(dict(type='I2PMAE', encoder=ENCODER, teacher=None, masking='random',
                              decoder_dims=(64, 32), num_heads=2))
    assert set(plain.loss(dict(points=_clouds(2, 128)))) == {'loss_3d'}
    with pytest.raises(ValueError, match='needs a 2D teacher'):
        MODELS.build(dict(type='I2PMAE', encoder=ENCODER, teacher=None))


def test_pointmae_pretrainer_with_and_without_2d_guidance():
    torch.manual_seed(0)
    enc = dict(type='PointMAEEncoder', num_group=16, group_size=8, embed_dims=32, depth=1,
               num_heads=2, embed_hidden=(8, 16, 16), frozen=False)
    guided = MODELS.build(dict(type='PointMAEPretrainer', encoder=enc, decoder_depth=1,
                               decoder_num_heads=2, teacher=TEACHER, masking='2d_guided'))
    guided.train()
    losses = guided.loss(dict(points=_clouds(2, 128)))
    assert set(losses) == {'loss_3d', 'loss_2d'}
    _grads_reach_exactly(guided, sum(losses.values()))
    plain = MODELS.build(dict(type='PointMAEPretrainer', encoder=enc, decoder_depth=1,
                              decoder_num_heads=2))
    plain.train()
    assert set(plain.loss(dict(points=_clouds(2, 128)))) == {'loss_3d'}
    with pytest.raises(ValueError, match='fewer than its 16 groups'):
        plain.loss(dict(points=_clouds(2, 10)))


# -- zero-shot -------------------------------------------------------------------
def test_zero_shot_aligner_trains_only_the_point_side_and_ranks_class_names():
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='PointCLIPAligner', point_encoder=ENCODER, teacher=TEACHER,
        text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg=CLIP_CFG), embed_dim=16,
        classes=['cone', 'torus', 'cube'], test_templates=['a {}.']))
    model.train()
    losses = model.loss(dict(points=_clouds(3, 128), text=['a cone.', 'a torus.', 'a cube.']))
    assert {'loss_text', 'loss_image'} <= set(losses)
    loss = losses['loss_text'] + losses['loss_image']
    loss.backward()
    trained = {n for n, p in model.named_parameters() if p.grad is not None}
    assert trained and all(n.startswith(('point_encoder.', 'point_proj.', 'logit_scale'))
                           for n in trained)
    assert 'point_proj.weight' in trained and 'logit_scale' in trained
    model.eval()
    samples = model.predict(dict(points=_clouds(2, 128)))
    assert samples[0].pred_score.shape == (3, )
    assert math.isclose(float(samples[0].pred_score.sum()), 1.0, rel_tol=1e-5)
    # The score is the softmax of scaled cosines with the prompt-embedded names.
    text = F.normalize(model.text_encoder.embed_class_names(['cone', 'torus', 'cube'],
                                                            ['a {}.']).float(), dim=-1)
    pts = F.normalize(model.point_proj(model.point_encoder(_clouds(2, 128))['pooled']), dim=-1)
    assert torch.allclose(samples[1].pred_score, (model.scale() * pts @ text.t())[1].softmax(-1),
                          atol=1e-5)


def test_a_convolutional_teacher_gives_its_last_map_and_a_norm_saliency():
    cx = dict(embed_dim=16,
              vision_cfg=dict(timm_model_name='convnext_synth_s8', timm_model_pretrained=False,
                              timm_pool='', timm_proj='linear', image_size=32),
              text_cfg=dict(context_length=12, width=32, heads=2, layers=1, mlp_ratio=2.0))
    teacher = MODELS.build(dict(type='DepthViewTeacher', image_size=32, kernel=3,
                                encoder=dict(type='OpenCLIPImageEncoder', model_cfg=cx)))
    out = teacher(_clouds(2, 100))
    C = teacher.out_channels
    assert out['feats'].shape[:3] == (2, 3, C)
    assert torch.allclose(out['saliency'].sum((-1, -2)), torch.ones(2, 3), atol=1e-5)
    # the saliency ranks locations by the map's norm
    norms = out['feats'].norm(dim=2)
    assert torch.equal(out['saliency'].flatten(2).argmax(-1), norms.flatten(2).argmax(-1))


def test_pointmae_encoder_accepts_its_own_grouping():
    enc = MODELS.build(dict(type='PointMAEEncoder', num_group=16, group_size=8, embed_dims=32,
                            depth=1, num_heads=2, embed_hidden=(8, 16, 16))).eval()
    pts = _clouds(2, 128)
    assert torch.equal(enc(pts)['pooled'], enc(pts, grouped=enc.group(pts))['pooled'])
