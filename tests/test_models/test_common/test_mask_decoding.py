"""Shared mask-decoding pieces: pixel decoders, masked-attention decoder,
point-sampled Hungarian matching and the mask criterion."""
import itertools

import pytest
import torch
import torch.nn.functional as F
from mmdet.models.layers import TransformerEncoderPixelDecoder
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

from mmfusion.models.common.mask import (
    MaskCriterion,
    MaskedAttentionDecoder,
    PointSampleHungarianMatcher,
)
from mmfusion.registry import MODELS, TASK_UTILS

C = 32
IN_CHANNELS = [8, 16, 24, 32]
STRIDES = [4, 8, 16, 32]


def _feats(batch: int = 2, size: int = 64, seed: int = 0) -> list:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, c, size // s, size // s, generator=g)
            for c, s in zip(IN_CHANNELS, STRIDES)]


def _fpn_pixel_decoder_cfg() -> ConfigDict:
    return ConfigDict(
        type='TransformerEncoderFPNPixelDecoder', in_channels=IN_CHANNELS, feat_channels=C,
        out_channels=C, norm_cfg=dict(type='GN', num_groups=8),
        encoder=dict(num_layers=1, layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=C, num_heads=4, batch_first=True),
            ffn_cfg=dict(embed_dims=C, feedforward_channels=64))),
        positional_encoding=dict(num_feats=C // 2, normalize=True))


def _decoder(num_queries: int = 5, num_layers: int = 3, **kw) -> MaskedAttentionDecoder:
    cfg = dict(type='MaskedAttentionDecoder', num_queries=num_queries, hidden_dims=C,
               num_layers=num_layers, num_heads=4, ffn_dims=64, in_channels=C,
               mask_channels=C, cls_out_channels=16)
    cfg.update(kw)
    return MODELS.build(cfg)


def _pyramid(batch: int = 2, seed: int = 0):
    """A random 3-level pyramid (strides 32/16/8 of a 64 image) + stride-4 mask features."""
    g = torch.Generator().manual_seed(seed)
    ms = [torch.randn(batch, C, s, s, generator=g) for s in (2, 4, 8)]
    return ms, torch.randn(batch, C, 16, 16, generator=g)


pytestmark = pytest.mark.usefixtures('one_thread')


# ---------------------------------------------------------------- pixel decoders
def test_msdeformattn_pixel_decoder_from_mmdet_scope():
    cfg = ConfigDict(
        type='mmdet.MSDeformAttnPixelDecoder', in_channels=IN_CHANNELS, strides=STRIDES,
        feat_channels=C, out_channels=C, num_outs=3, norm_cfg=dict(type='GN', num_groups=8),
        encoder=dict(num_layers=1, layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=C, num_heads=4, num_levels=3, num_points=2,
                               batch_first=True),
            ffn_cfg=dict(embed_dims=C, feedforward_channels=64))),
        positional_encoding=dict(num_feats=C // 2, normalize=True))
    decoder = MODELS.build(cfg)  # mmcv's deformable attention, CPU fallback
    mask_features, multi_scale = decoder(_feats())
    assert mask_features.shape == (2, C, 16, 16)
    assert [tuple(m.shape) for m in multi_scale] == [(2, C, 2, 2), (2, C, 4, 4), (2, C, 8, 8)]
    mask_features.mean().backward()


def test_transformer_encoder_fpn_pixel_decoder_matches_mmdet():
    decoder = MODELS.build(_fpn_pixel_decoder_cfg())
    decoder.init_weights()
    decoder.eval()
    feats = _feats()
    metas = [dict(batch_input_shape=(64, 64), img_shape=(64, 64)),
             dict(batch_input_shape=(64, 64), img_shape=(40, 48))]
    mask_features, multi_scale = decoder(feats, metas)
    assert mask_features.shape == (2, C, 16, 16)
    assert [tuple(m.shape) for m in multi_scale] == [(2, C, 2, 2), (2, C, 4, 4), (2, C, 8, 8)]
    # Same modules, same computation as mmdet's forward (which hides the FPN maps).
    ref_mask, ref_memory = TransformerEncoderPixelDecoder.forward(decoder, feats, metas)
    torch.testing.assert_close(mask_features, ref_mask)
    torch.testing.assert_close(multi_scale[0], decoder.encoder_out_proj(ref_memory))
    # Without metas nothing counts as padding: equals metas of full-size images.
    full = [dict(batch_input_shape=(64, 64), img_shape=(64, 64))] * 2
    torch.testing.assert_close(decoder(feats)[0],
                               TransformerEncoderPixelDecoder.forward(decoder, feats, full)[0])


def test_pixel_decoder_out_indices_pick_fpn_levels():
    """``out_indices`` selects FPN maps by level, lowest resolution first; the
    highest level is the map the mask-feature conv reads."""
    default = MODELS.build(_fpn_pixel_decoder_cfg())
    default.init_weights()
    fine = MODELS.build(dict(_fpn_pixel_decoder_cfg(), out_indices=(1, 2, 3)))
    fine.load_state_dict(default.state_dict())  # same modules, same keys
    feats = _feats()
    mask_default, (s32, s16, s8) = default(feats)
    mask_fine, multi_scale = fine(feats)
    torch.testing.assert_close(mask_fine, mask_default)
    assert [tuple(m.shape) for m in multi_scale] == [(2, C, 4, 4), (2, C, 8, 8), (2, C, 16, 16)]
    torch.testing.assert_close(multi_scale[0], s16)
    torch.testing.assert_close(multi_scale[1], s8)
    torch.testing.assert_close(fine.mask_feature(multi_scale[2]), mask_fine)
    for bad in ((2, 4), (2, 1), ()):
        with pytest.raises(ValueError, match='out_indices'):
            MODELS.build(dict(_fpn_pixel_decoder_cfg(), out_indices=bad))


# ---------------------------------------------------------------- decoder
def test_pixel_decoder_and_decoder_shapes_with_extra_tokens():
    pixel_decoder = MODELS.build(_fpn_pixel_decoder_cfg())
    decoder = _decoder(num_queries=5, num_layers=4)
    mask_features, multi_scale = pixel_decoder(_feats())
    out = decoder(multi_scale, mask_features, extra_tokens=torch.randn(2, 3, C))
    assert set(out) == {'query_embeds', 'cls_embeds', 'mask_logits'}
    for key, shape in (('query_embeds', (2, 8, C)), ('cls_embeds', (2, 8, 16)),
                       ('mask_logits', (2, 8, 16, 16))):
        assert len(out[key]) == 5  # before the first layer + after each of 4
        assert all(tuple(t.shape) == shape for t in out[key])
    out = decoder(multi_scale, mask_features)
    assert tuple(out['mask_logits'][-1].shape) == (2, 5, 16, 16)


@pytest.mark.parametrize('extra_cross_attn', [True, torch.tensor([True, False, False])])
def test_activation_checkpointing_recomputes_layers_with_equal_results(extra_cross_attn):
    ms, mask_features = _pyramid()
    extra = torch.randn(2, 3, C)
    plain = _decoder(num_layers=2, dropout=0.1)
    checkpointed = _decoder(num_layers=2, dropout=0.1, with_cp=True)
    checkpointed.load_state_dict(plain.state_dict())
    calls = []
    checkpointed.layers[0].ffn.register_forward_hook(lambda *_: calls.append(1))
    results = []
    for decoder in (plain, checkpointed):
        decoder.train()
        torch.manual_seed(0)  # same dropout draws; checkpoint replays them on recompute
        inputs = [m.clone().requires_grad_() for m in ms]
        out = decoder(inputs, mask_features, extra_tokens=extra,
                      extra_cross_attn=extra_cross_attn)
        loss = sum(o.square().mean() for o in out['mask_logits'] + out['cls_embeds'])
        loss.backward()
        results.append((loss.detach(), [m.grad for m in inputs],
                        {n: p.grad.clone() for n, p in decoder.named_parameters()
                         if p.grad is not None}))
    (loss_a, in_grads_a, grads_a), (loss_b, in_grads_b, grads_b) = results
    assert len(calls) == 2  # forward, then the recomputation in backward
    torch.testing.assert_close(loss_b, loss_a)
    for a, b in zip(in_grads_a, in_grads_b):
        torch.testing.assert_close(b, a)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 10
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], msg=name)


def _capture_cross_attn_masks(decoder: MaskedAttentionDecoder) -> list:
    masks = []
    for layer in decoder.layers:
        layer.cross_attn.register_forward_pre_hook(
            lambda m, args, kwargs: masks.append(kwargs['attn_mask'].clone()), with_kwargs=True)
    return masks


def test_cross_attn_mask_is_previous_prediction_below_half():
    torch.manual_seed(0)
    decoder = _decoder(num_queries=6, num_layers=4)
    decoder.init_weights()
    ms, mask_features = _pyramid()
    masks = _capture_cross_attn_masks(decoder)
    out = decoder(ms, mask_features, extra_tokens=torch.randn(2, 2, C))
    heads, sizes = decoder.num_heads, [m.shape[-2:] for m in ms]
    n_masked = 0
    for i, mask in enumerate(masks):
        prev = out['mask_logits'][i]  # prediction the layer's mask must come from
        size = sizes[i % 3]
        assert mask.shape == (2 * heads, 8, size[0] * size[1])
        for b in range(2):
            for q in range(8):
                prob = F.interpolate(prev[b:b + 1, q:q + 1], size, mode='bilinear',
                                     align_corners=False).sigmoid().flatten()
                expected = prob < 0.5
                if bool(expected.all()):
                    expected[:] = False
                n_masked += int(expected.sum())
                for h in range(heads):
                    assert torch.equal(mask[b * heads + h, q], expected), (i, b, q, h)
    assert n_masked > 0  # the check above saw real masking

    # Extra tokens that see the whole image: their rows are never masked.
    masks.clear()
    decoder(ms, mask_features, extra_tokens=torch.randn(2, 2, C), mask_extra_cross_attn=False)
    assert all(not m[:, 6:].any() for m in masks)
    # Per token: the first extra token keeps its own mask, the second sees everything.
    masks.clear()
    out = decoder(ms, mask_features, extra_tokens=torch.randn(2, 2, C),
                  mask_extra_cross_attn=torch.tensor([True, False]))
    assert all(not m[:, 7:].any() for m in masks)
    assert any(m[:, 6].any() for m in masks)


def test_cross_attn_all_masked_rows_attend_everywhere():
    decoder = _decoder(num_queries=6, num_layers=1)
    ms, _ = _pyramid()
    # Constant mask features: each query's mask is one value everywhere,
    # so a row is either fully masked (-> must be released) or not at all; the
    # sign flip between the images makes every query fully masked in one of them.
    mask_features = torch.ones(2, C, 16, 16)
    mask_features[1] = -1
    masks = _capture_cross_attn_masks(decoder)
    out = decoder(ms, mask_features)
    logits = out['mask_logits'][0]
    assert (logits < 0).any() and (logits > 0).any()
    assert not masks[0].any()


def test_masked_cross_attn_ignores_masked_pixels():
    """Changing a key pixel changes the cross-attention output of exactly the
    queries that may see it (first layer, level 0 = 2x2 map)."""
    torch.manual_seed(1)
    decoder = _decoder(num_queries=8, num_layers=1)
    decoder.init_weights()
    decoder.eval()
    ms, mask_features = _pyramid(batch=1, seed=3)
    outs = []
    decoder.layers[0].cross_attn.register_forward_hook(lambda m, a, o: outs.append(o))
    masks = _capture_cross_attn_masks(decoder)
    decoder(ms, mask_features)
    mask = masks[0][0]  # (L, 4), head 0 of image 0
    # A pixel some queries see and others do not.
    pix = next(p for p in range(mask.shape[1]) if mask[:, p].any() and not mask[:, p].all())
    ms2 = [m.clone() for m in ms]
    ms2[0].view(1, C, -1)[0, :, pix] += 5.0
    decoder(ms2, mask_features)
    changed = (outs[0] - outs[1]).abs().amax(-1)[0] > 1e-5  # (L,)
    assert torch.equal(changed, ~mask[:, pix])


def test_self_attn_mask_is_honoured():
    torch.manual_seed(0)
    num_queries, num_extra = 4, 3
    decoder = _decoder(num_queries=num_queries, num_layers=3)
    decoder.init_weights()
    decoder.eval()
    ms, mask_features = _pyramid()
    L = num_queries + num_extra
    # X-Decoder layout: object queries may not see the extra tokens.
    block = torch.zeros(L, L, dtype=torch.bool)
    block[:num_queries, num_queries:] = True
    extra_a, extra_b = torch.randn(2, num_extra, C), torch.randn(2, num_extra, C)

    def run(extra, mask, **kw):
        return decoder(ms, mask_features, extra_tokens=extra, self_attn_mask=mask, **kw)

    for mask in (block,                                      # bool (L, L)
                 torch.zeros(L, L).masked_fill(block, float('-inf')),  # additive
                 block.expand(2, L, L)):                     # per-image (B, L, L)
        a, b = run(extra_a, mask), run(extra_b, mask)
        for key in ('query_embeds', 'mask_logits'):
            for xa, xb in zip(a[key], b[key]):
                torch.testing.assert_close(xa[:, :num_queries], xb[:, :num_queries])
            assert not torch.allclose(a[key][-1][:, num_queries:], b[key][-1][:, num_queries:])
    # Without the mask the queries do see the extra tokens (the check can fail).
    a, b = run(extra_a, None), run(extra_b, None)
    assert not torch.allclose(a['query_embeds'][-1][:, :num_queries],
                              b['query_embeds'][-1][:, :num_queries])
    # Per-image masks: image 1 unmasked, so only image 0 is shielded.
    per_image = torch.stack([block, torch.zeros_like(block)])
    a, b = run(extra_a, per_image), run(extra_b, per_image)
    torch.testing.assert_close(a['query_embeds'][-1][0, :num_queries],
                               b['query_embeds'][-1][0, :num_queries])
    assert not torch.allclose(a['query_embeds'][-1][1, :num_queries],
                              b['query_embeds'][-1][1, :num_queries])


# ---------------------------------------------------------------- matching
def _manual_cost(cls_logits, mask_logits, labels, gt_masks):
    """Mask2Former's cost written out: 2*class + 5*mean BCE + 5*Dice(eps=1)."""
    prob = cls_logits.softmax(-1)
    p = mask_logits.flatten(1)  # (Q, P)
    t = gt_masks.flatten(1).float()  # (N, P)
    cost = torch.zeros(p.shape[0], t.shape[0], dtype=torch.float64)
    for q in range(p.shape[0]):
        for n in range(t.shape[0]):
            bce = F.binary_cross_entropy_with_logits(p[q], t[n])
            s = p[q].sigmoid()
            dice = 1 - (2 * (s * t[n]).sum() + 1) / (s.sum() + t[n].sum() + 1)
            cost[q, n] = -2 * prob[q, labels[n]] + 5 * bce + 5 * dice
    return cost


def _brute_force(cost):
    """Minimum-cost injective map of the gts to queries by enumeration."""
    num_q, num_gt = cost.shape
    best = min(itertools.permutations(range(num_q), num_gt),
               key=lambda qs: sum(cost[q, n].item() for n, q in enumerate(qs)))
    return sorted((q, n) for n, q in enumerate(best))


def _random_case(seed, num_q=6, num_cls=4, num_gt=3, size=8):
    g = torch.Generator().manual_seed(seed)
    cls_logits = torch.randn(num_q, num_cls + 1, generator=g) * 2
    mask_logits = torch.randn(num_q, size, size, generator=g) * 3
    gts = InstanceData(labels=torch.randint(0, num_cls, (num_gt,), generator=g),
                       masks=torch.rand(num_gt, size, size, generator=g) > 0.5)
    return cls_logits, mask_logits, gts


def _pixel_centres(h, w):
    ys, xs = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w,
                            indexing='ij')
    return torch.stack([xs.flatten(), ys.flatten()], -1)[None]  # (1, h*w, 2) as (x, y)


@pytest.mark.parametrize('seed', range(5))
def test_matching_equals_brute_force(seed):
    cls_logits, mask_logits, gts = _random_case(seed)
    expected = _brute_force(_manual_cost(cls_logits.double(), mask_logits.double(),
                                         gts.labels, gts.masks))
    dense = TASK_UTILS.build(dict(type='PointSampleHungarianMatcher', num_points=None))
    # The assigner's configured cost is the manual one (weights 2/5/5, Dice eps 1).
    preds = InstanceData(scores=cls_logits, masks=mask_logits.flatten(1))
    targets = InstanceData(labels=gts.labels, masks=gts.masks.flatten(1).float())
    cost = sum(c(pred_instances=preds, gt_instances=targets) for c in dense.assigner.match_costs)
    torch.testing.assert_close(cost, _manual_cost(cls_logits.double(), mask_logits.double(),
                                                  gts.labels, gts.masks).float())
    q, n = dense(cls_logits, mask_logits, gts)
    assert sorted(zip(q.tolist(), n.tolist())) == expected
    # Point-sampled path, with the points placed on the pixel centres.
    sampled = PointSampleHungarianMatcher(num_points=64)
    sampled.sample_points = lambda num, device, batch=1: _pixel_centres(8, 8).expand(batch, -1, -1)
    q, n = sampled(cls_logits, mask_logits, gts)
    assert sorted(zip(q.tolist(), n.tolist())) == expected


def test_matching_more_gts_than_queries_and_no_gts():
    cls_logits, mask_logits, gts = _random_case(0, num_q=2, num_gt=4)
    matcher = PointSampleHungarianMatcher(num_points=None)
    q, n = matcher(cls_logits, mask_logits, gts)
    expected_cost = _manual_cost(cls_logits.double(), mask_logits.double(), gts.labels, gts.masks)
    # Two queries, four gts: brute force over the transposed problem.
    best = _brute_force(expected_cost.T)
    assert sorted(zip(q.tolist(), n.tolist())) == sorted((qq, nn) for nn, qq in best)
    empty = InstanceData(labels=torch.zeros(0, dtype=torch.long),
                         masks=torch.zeros(0, 8, 8, dtype=torch.bool))
    q, n = matcher(cls_logits, mask_logits, empty)
    assert q.numel() == 0 and n.numel() == 0


def test_batch_matching_equals_mmdet_assigner_per_image():
    """One batched call (costs over all images, each image's block kept)
    gives mmdet's HungarianAssigner result of each image alone, on the same
    sampled points, with per-image class lists padded by -inf; images without
    gt get no match."""
    g = torch.Generator().manual_seed(3)
    num_q, size, num_points = 6, 8, 40
    counts, num_cls = [3, 0, 5, 1], [4, 2, 4, 3]
    cls_logits = torch.full((4, num_q, 5), float('-inf'))
    for b, k in enumerate(num_cls):  # per-image class lists, padded as X-Decoder's
        cls_logits[b, :, :k] = torch.randn(num_q, k, generator=g) * 2
        cls_logits[b, :, -1] = torch.randn(num_q, generator=g)
    mask_logits = torch.randn(4, num_q, size, size, generator=g) * 3
    labels = [torch.randint(0, k, (n,), generator=g) for n, k in zip(counts, num_cls)]
    masks = [(torch.rand(n, size, size, generator=g) > 0.5).float() for n in counts]
    coords = torch.rand(4, num_points, 2, generator=g)
    matcher = PointSampleHungarianMatcher(num_points=num_points)
    matcher.sample_points = lambda num, device, batch=1: coords[:batch]
    matches = matcher.match_batch(cls_logits, mask_logits, labels, masks)
    from mmcv.ops import point_sample
    for b in range(4):
        q_idx, g_idx = matches[b]
        if counts[b] == 0:
            assert q_idx.numel() == 0 and g_idx.numel() == 0
            continue
        pts = coords[b:b + 1]
        result = matcher.assigner.assign(
            InstanceData(scores=cls_logits[b],
                         masks=point_sample(mask_logits[b][None], pts)[0]),
            InstanceData(labels=labels[b], masks=point_sample(masks[b][None], pts)[0]))
        expected_q = torch.nonzero(result.gt_inds > 0)[:, 0]
        assert q_idx.tolist() == expected_q.tolist()
        assert g_idx.tolist() == (result.gt_inds[expected_q] - 1).tolist()
        assert len(q_idx) == min(num_q, counts[b])
    # An image without gt may come with masks of any size; images with gt may not.
    again = matcher.match_batch(cls_logits[:2], mask_logits[:2], labels[:2],
                                [masks[0], torch.zeros(0, 4, 4)])
    assert [q.tolist() for q, _ in again] == [matches[0][0].tolist(), []]
    with pytest.raises(ValueError, match='share a size'):
        matcher.match_batch(cls_logits[:3:2], mask_logits[:3:2], labels[:3:2],
                            [masks[0], masks[2][:, :4, :4]])


# ---------------------------------------------------------------- criterion
def _manual_losses(cls_logits, mask_logits, gts, matches, eos_coef=0.1):
    """Class CE (no-object weight), mean BCE over all points, mean Dice, x 2/5/5."""
    num_cls = cls_logits.shape[-1]
    ce_num, ce_den, bce_sum, dice_sum, num_masks, num_points = 0., 0., 0., 0., 0, 0
    for b in range(cls_logits.shape[0]):
        target = {q: int(gts[b].labels[n]) for q, n in matches[b]}
        for q in range(cls_logits.shape[1]):
            label = target.get(q, num_cls - 1)
            w = 1.0 if label < num_cls - 1 else eos_coef
            logp = cls_logits[b, q].log_softmax(-1)[label]
            ce_num, ce_den = ce_num - w * logp, ce_den + w
        for q, n in matches[b]:
            p, t = mask_logits[b, q].flatten(), gts[b].masks[n].flatten().float()
            # Stable BCE-with-logits: max(p, 0) - p*t + log(1 + exp(-|p|)).
            bce = torch.clamp(p, min=0) - p * t + torch.log1p(torch.exp(-p.abs()))
            bce_sum = bce_sum + bce.sum()
            s = torch.sigmoid(p)
            dice_sum = dice_sum + 1 - (2 * (s * t).sum() + 1) / (s.sum() + t.sum() + 1)
            num_masks, num_points = num_masks + 1, p.numel()
    return dict(loss_cls=2 * ce_num / ce_den,
                loss_mask=5 * bce_sum / (num_masks * num_points),
                loss_dice=5 * dice_sum / num_masks)


def _loss_batch(seed=0, num_q=5, num_cls=3, size=8):
    g = torch.Generator().manual_seed(seed)
    cls_logits = torch.randn(2, num_q, num_cls + 1, generator=g)
    mask_logits = torch.randn(2, num_q, size, size, generator=g) * 2
    gts = [InstanceData(labels=torch.tensor([0, 2]),
                        masks=torch.rand(2, size, size, generator=g) > 0.5),
           InstanceData(labels=torch.tensor([1, 1, 0]),
                        masks=torch.rand(3, size, size, generator=g) > 0.4)]
    return cls_logits, mask_logits, gts


def test_criterion_equals_manual_formulas_dense():
    criterion = MODELS.build(dict(type='MaskCriterion', num_points=None,
                                  matcher=dict(type='PointSampleHungarianMatcher',
                                               num_points=None)))
    cls_logits, mask_logits, gts = _loss_batch()
    # Deep supervision: two "layers" with different predictions.
    all_cls, all_masks = [cls_logits * 0.5, cls_logits], [mask_logits.flip(1), mask_logits]
    losses = criterion(all_cls, all_masks, gts)
    assert set(losses) == {'loss_cls', 'loss_mask', 'loss_dice',
                           'd0.loss_cls', 'd0.loss_mask', 'd0.loss_dice'}
    for prefix, c, m in (('d0.', all_cls[0], all_masks[0]), ('', all_cls[1], all_masks[1])):
        matches = [sorted(zip(*[t.tolist() for t in criterion.matcher(c[b], m[b], gts[b])]))
                   for b in range(2)]
        # The matching itself is the brute-force optimum of the manual cost.
        for b in range(2):
            assert matches[b] == _brute_force(_manual_cost(c[b].double(), m[b].double(),
                                                           gts[b].labels, gts[b].masks))
        for name, value in _manual_losses(c, m, gts, matches).items():
            torch.testing.assert_close(losses[prefix + name], value.float(), rtol=1e-5, atol=1e-6)


def test_criterion_point_sampling_path_equals_manual_on_pixel_centres():
    criterion = MaskCriterion(num_points=64, matcher=dict(type='PointSampleHungarianMatcher',
                                                          num_points=64))
    centres = _pixel_centres(8, 8)
    criterion.matcher.sample_points = lambda num, device, batch=1: centres.expand(batch, -1, -1)
    criterion.sample_points = lambda logits: centres.expand(logits.shape[0], -1, -1)
    cls_logits, mask_logits, gts = _loss_batch(seed=1)
    losses = criterion([cls_logits], [mask_logits], gts)
    matches = [sorted(zip(*[t.tolist() for t in criterion.matcher(cls_logits[b], mask_logits[b],
                                                                   gts[b])])) for b in range(2)]
    for name, value in _manual_losses(cls_logits, mask_logits, gts, matches).items():
        torch.testing.assert_close(losses[name], value.float(), rtol=1e-5, atol=1e-6)


def test_criterion_importance_sampling_varying_classes_and_empty_image():
    criterion = MaskCriterion(num_points=20, matcher=dict(type='PointSampleHungarianMatcher',
                                                          num_points=20))
    for num_cls in (2, 7):  # class count is whatever the logits say
        cls_logits = torch.randn(2, 4, num_cls + 1, requires_grad=True)
        mask_logits = torch.randn(2, 4, 8, 8, requires_grad=True)
        gts = [InstanceData(labels=torch.tensor([num_cls - 1]),
                            masks=torch.rand(1, 32, 32) > 0.5),  # gt at 4x the logits' size
               InstanceData(labels=torch.zeros(0, dtype=torch.long),
                            masks=torch.zeros(0, 32, 32, dtype=torch.bool))]
        losses = criterion([cls_logits], [mask_logits], gts)
        sum(losses.values()).backward()
        assert all(torch.isfinite(v) for v in losses.values())
        assert mask_logits.grad[0].abs().sum() > 0 and mask_logits.grad[1].abs().sum() == 0
    # bf16 logits (CPU autocast) go through the fp32 loss path.
    losses = criterion([cls_logits.bfloat16()], [mask_logits.bfloat16()], gts)
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
    # No gt at all: class loss only pushes to no-object, mask losses are zero.
    empty = [InstanceData(labels=torch.zeros(0, dtype=torch.long),
                          masks=torch.zeros(0, 32, 32, dtype=torch.bool))] * 2
    losses = criterion([cls_logits], [mask_logits], empty)
    assert losses['loss_mask'] == 0 and losses['loss_dice'] == 0
    expected = 2 * F.cross_entropy(cls_logits.flatten(0, 1),
                                   torch.full((8,), cls_logits.shape[-1] - 1))
    torch.testing.assert_close(losses['loss_cls'], expected)


# ---------------------------------------------------------------- learning
def test_tiny_decoder_and_criterion_overfit_one_batch():
    torch.manual_seed(0)
    size, num_cls = 32, 2
    # Two images, rectangles of two classes; the "backbone" pyramid is a fixed
    # random projection of the one-hot label map, so the masks are learnable.
    gts, label_maps = [], []
    for b, boxes in enumerate(([(0, 4, 14, 20, 0), (1, 18, 2, 30, 30)],
                               [(0, 2, 2, 16, 12), (1, 10, 16, 28, 30), (0, 20, 0, 30, 8)])):
        masks, labels = [], []
        onehot = torch.zeros(num_cls + 1, size, size)
        onehot[num_cls] = 1
        for cls, y0, x0, y1, x1 in boxes:
            m = torch.zeros(size, size, dtype=torch.bool)
            m[y0:y1, x0:x1] = True
            masks.append(m)
            labels.append(cls)
            onehot[:, m] = 0
            onehot[cls, m] = 1
        gts.append(InstanceData(labels=torch.tensor(labels), masks=torch.stack(masks)))
        label_maps.append(onehot)
    label_maps = torch.stack(label_maps)
    proj = [torch.randn(c, num_cls + 1) for c in IN_CHANNELS]
    feats = [torch.einsum('ck,bkhw->bchw', p, F.adaptive_avg_pool2d(label_maps, size // s))
             for p, s in zip(proj, STRIDES)]

    pixel_decoder = MODELS.build(_fpn_pixel_decoder_cfg())
    decoder = _decoder(num_queries=6, num_layers=2)
    pixel_decoder.init_weights()
    decoder.init_weights()
    class_embed = torch.nn.Parameter(torch.randn(num_cls + 1, 16) * 0.1)  # text-embedding stand-in
    criterion = MaskCriterion(num_points=64, matcher=dict(type='PointSampleHungarianMatcher',
                                                          num_points=64))
    params = [*pixel_decoder.parameters(), *decoder.parameters(), class_embed]
    optim = torch.optim.AdamW(params, lr=2e-3)

    def step():
        mask_features, multi_scale = pixel_decoder(feats)
        out = decoder(multi_scale, mask_features)
        cls_logits = [e @ class_embed.T for e in out['cls_embeds']]
        losses = criterion(cls_logits, out['mask_logits'], gts)
        return sum(losses.values())

    first = None
    for _ in range(60):
        loss = step()
        first = first if first is not None else loss.item()
        optim.zero_grad()
        loss.backward()
        optim.step()
    torch.manual_seed(1)
    with torch.no_grad():
        last = step().item()
    print(f'overfit loss {first:.3f} -> {last:.3f}')
    assert last < 0.5 * first, (first, last)


def test_gt_masks_are_padded_to_the_batch_like_the_image():
    from mmfusion.models.common.mask import gt_masks_tensor
    gt = InstanceData(labels=torch.tensor([0]), masks=torch.ones(1, 6, 5, dtype=torch.bool))
    padded = gt_masks_tensor(gt, torch.device('cpu'), dict(batch_input_shape=(8, 8)))
    assert padded.shape == (1, 8, 8)
    assert padded[0, :6, :5].all() and padded[0, 6:].sum() == 0 and padded[0, :, 5:].sum() == 0
    with pytest.raises(ValueError, match='larger than the batch'):
        gt_masks_tensor(gt, torch.device('cpu'), dict(batch_input_shape=(4, 4)))


def test_criterion_rejects_labels_outside_the_class_list():
    criterion = MODELS.build(dict(type='MaskCriterion', num_points=None,
                                  matcher=dict(type='PointSampleHungarianMatcher',
                                               num_points=None)))
    gt = [InstanceData(labels=torch.tensor([3]), masks=torch.ones(1, 8, 8))]
    with pytest.raises(ValueError, match=r'\[0, 3\)'):
        criterion.loss_single(torch.randn(1, 4, 4), torch.randn(1, 4, 8, 8), gt)
