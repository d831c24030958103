"""Region-text pretraining: mask pooling, the loss written out, gradients,
per-image class lists, and the keys X-Decoder's ``load_from`` picks up."""
import pytest
import torch
import torch.nn.functional as F

from mmfusion.models.xdecoder import mask_pool
from mmfusion.registry import MODELS

from .test_xdecoder import CLASSES, THINGS, batch, synthetic_sample, tiny_cfg

pytestmark = pytest.mark.usefixtures('one_thread')


def pretrainer_cfg() -> dict:
    xdec = tiny_cfg()
    return dict(type='RegionTextPretrainer', backbone=xdec['backbone'],
                text_encoder=xdec['text_encoder'],
                head=dict(pixel_decoder=xdec['head']['pixel_decoder'], in_channels=32,
                          num_levels=3),
                classes=CLASSES, thing_classes=THINGS)


def build(seed: int = 0):
    torch.manual_seed(seed)
    model = MODELS.build(pretrainer_cfg())
    model.init_weights()
    return model


def test_mask_pool_is_the_area_weighted_mean():
    feat = torch.randn(3, 4, 4)
    masks = torch.zeros(2, 8, 8)
    masks[0, :4, :4] = 1          # exactly the top-left 2x2 cells
    masks[1, 0, 0] = 1            # a quarter of cell (0, 0)
    masks[1, 7, 7] = 1            # and a quarter of cell (3, 3)
    pooled = mask_pool(feat, masks)
    torch.testing.assert_close(pooled[0], feat[:, :2, :2].mean((1, 2)))
    torch.testing.assert_close(pooled[1], (feat[:, 0, 0] + feat[:, 3, 3]) / 2)
    assert mask_pool(feat, torch.zeros(1, 8, 8)).abs().sum() == 0


def test_loss_equals_the_written_out_region_classification():
    model = build()
    inputs, samples = batch()
    losses = model(inputs, samples, mode='loss')
    # By hand: the pixel decoder's three maps, each segment's mean over its
    # mask on each, concatenated, projected, cosine x scale against the text.
    feats = model.backbone(inputs['img'])
    _, maps = model.head.pixel_decoder(feats, model._metas(samples, inputs['img']))
    text = F.normalize(model.class_embeds(CLASSES), dim=-1)
    logits, labels = [], []
    for b, sample in enumerate(samples):
        seg = model.gt_segments(sample, CLASSES)
        for mask, label in zip(seg.masks.float(), seg.labels):
            pooled = []
            for level in maps:
                w = F.interpolate(mask[None, None], size=level.shape[-2:], mode='area')[0, 0]
                pooled.append((level[b] * w).sum((1, 2)) / w.sum())
            region = F.normalize(model.head.proj(torch.cat(pooled)), dim=-1)
            logits.append(model.head.logit_scale.exp() * region @ text.t())
            labels.append(int(label))
    assert len(labels) == 8  # 2 things + 2 stuff segments per image
    expected = F.cross_entropy(torch.stack(logits), torch.tensor(labels))
    torch.testing.assert_close(losses['loss_region'], expected, rtol=1e-5, atol=1e-5)
    assert 0 <= losses['acc'] <= 1


def test_gradients_reach_exactly_backbone_pixel_decoder_and_classifier():
    model = build()
    inputs, samples = batch()
    model(inputs, samples, mode='loss')['loss_region'].backward()
    assert all(not p.requires_grad for p in model.text_encoder.parameters())
    unused = set()
    # mmdet's pixel decoder: the mask-feature conv is not on the pooled path.
    unused |= {'head.pixel_decoder.mask_feature.weight', 'head.pixel_decoder.mask_feature.bias'}
    # The stride-4 FPN output conv feeds only the mask features.
    unused |= {n for n, _ in model.named_parameters()
               if n.startswith('head.pixel_decoder.output_convs.0.')
               or n.startswith('head.pixel_decoder.lateral_convs.0.')}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name in unused:
            assert p.grad is None or not p.grad.any(), name
        else:
            assert p.grad is not None and p.grad.any(), name
    # Unused parameters exist, so DDP must be told (mmfusion.utils.dist reads this).
    assert type(model).find_unused_parameters is True


def test_images_with_different_class_lists_share_a_batch():
    model = build()
    model.eval()
    other = ['square', 'grass', 'circle', 'sky', 'tree']
    img0, s0 = synthetic_sample(0)
    img1, s1 = synthetic_sample(1, classes=other)
    s1.gt_instances.labels = torch.tensor([other.index('circle'), other.index('square')])
    s1.gt_sem_seg.data = torch.tensor([0, 1, 3, 1])[s1.gt_sem_seg.data]  # remap ids
    s1.set_metainfo(dict(thing_classes=['circle', 'square']))
    with torch.no_grad():
        both = model.region_logits(torch.stack([img0, img1]), [s0, s1])[0]
        alone0 = model.region_logits(img0[None], [s0])[0][0]
        alone1 = model.region_logits(img1[None], [s1])[0][0]
    assert both[1].shape[1] == len(other)
    torch.testing.assert_close(both[0], alone0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(both[1], alone1, rtol=1e-5, atol=1e-5)
    # The loss pads the shorter list with -inf: the mean over both images'
    # regions of each image's own cross-entropy.
    losses = [model(dict(img=i[None]), [s], mode='loss')['loss_region'] for i, s in
              ((img0, s0), (img1, s1))]
    joint = model(dict(img=torch.stack([img0, img1])), [s0, s1], mode='loss')['loss_region']
    torch.testing.assert_close(joint, (losses[0] * 4 + losses[1] * 4) / 8, rtol=1e-5, atol=1e-6)
    with pytest.raises(RuntimeError, match='only trains'):
        model(dict(img=img0[None]), [s0], mode='predict')
    s0.gt_instances.labels = torch.tensor([0, len(CLASSES)])
    with pytest.raises(ValueError, match='outside its 4 class names'):
        model(dict(img=img0[None]), [s0], mode='loss')


def test_xdecoder_load_from_finds_backbone_and_pixel_decoder():
    """What X-Decoder's non-strict ``load_from`` takes by key: the backbone,
    the pixel decoder, the cosine temperature and the (same, frozen) text
    encoder; the region projection has no counterpart."""
    pre = build().state_dict()
    xdec = MODELS.build(tiny_cfg()).state_dict()
    shared = {k for k in pre if k in xdec and xdec[k].shape == pre[k].shape}
    pretrained = {k for k in pre if k.startswith(('backbone.', 'head.pixel_decoder.'))}
    assert len(pretrained) > 50 and pretrained <= shared
    assert shared - pretrained == {'head.logit_scale'} | {
        k for k in pre if k.startswith('text_encoder.')}
    assert set(pre) - shared == {'head.proj.weight', 'head.proj.bias'}
