"""FrozenSeg: losses and exactly-the-decoder gradients, frozen towers unchanged by
training, the injectors, inference with and without the ensemble, input errors."""
import copy

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData, PixelData

from mmfusion.models.common.open_vocab_ensemble import binary_mask_pool
from mmfusion.registry import MODELS
from mmfusion.structures import FusionDataSample

pytestmark = pytest.mark.usefixtures('one_thread')

C = 32
CLIP = dict(embed_dim=16,
            vision_cfg=dict(timm_model_name='convnext_synth_s8', timm_model_pretrained=False,
                            timm_pool='', timm_proj='linear', image_size=32),
            text_cfg=dict(context_length=12, width=32, heads=2, layers=1))
CLASSES = ['circle', 'square', 'sky', 'grass']
THINGS = ['circle', 'square']
SIZE = 32


def tiny_cfg(**overrides) -> dict:
    deform = dict(embed_dims=C, num_heads=4, num_points=2, batch_first=True)
    cfg = dict(
        type='FrozenSeg',
        clip_encoder=dict(type='OpenCLIPImageEncoder', model_cfg=CLIP, out_indices=(1, 2, 3)),
        clip_norm=dict(mean=[127.5] * 3, std=[127.5] * 3),
        sam_encoder=dict(type='SAMImageEncoder', img_size=32,
                         arch=dict(embed_dim=16, depth=1, num_heads=2, global_attn_indexes=(0, ),
                                   patch_size=4, window_size=4, out_chans=C)),
        text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg=CLIP),
        templates='simple',
        head=dict(
            type='FrozenSegHead',
            pixel_decoder=dict(
                type='FrozenSegPixelDecoder', in_channels=[32, 64, 128], strides=[2, 4, 8],
                feat_channels=C, out_channels=C, num_outs=3, sam_channels=C,
                norm_cfg=dict(type='GN', num_groups=8),
                encoder=dict(num_layers=1, layer_cfg=dict(
                    self_attn_cfg=dict(num_levels=2, **deform),
                    ffn_cfg=dict(embed_dims=C, feedforward_channels=64))),
                sam_encoder=dict(num_layers=1, layer_cfg=dict(
                    self_attn_cfg=dict(num_levels=1, **deform),
                    ffn_cfg=dict(embed_dims=C, feedforward_channels=64))),
                positional_encoding=dict(num_feats=C // 2, normalize=True)),
            transformer_decoder=dict(type='FrozenSegDecoder', num_queries=4, hidden_dims=C,
                                     num_layers=6, num_heads=4, ffn_dims=64, in_channels=C,
                                     mask_channels=C, sam_channels=C),
            criterion=dict(type='MaskCriterion',
                           matcher=dict(type='PointSampleHungarianMatcher', num_points=None),
                           num_points=None)),
        classes=CLASSES, thing_classes=THINGS,
        ensemble=dict(type='OpenVocabEnsemble', seen_classes=CLASSES[:3]))
    cfg.update(overrides)
    return cfg


def build(seed: int = 0, **overrides):
    torch.manual_seed(seed)
    model = MODELS.build(tiny_cfg(**overrides))
    model.init_weights()
    return model


def sample(seed: int):
    """A 0-255 image: a red circle and a green square (things) on sky over grass."""
    g = np.random.default_rng(seed)
    sem = np.full((SIZE, SIZE), 2, np.int64)
    sem[SIZE // 2:] = 3
    yy, xx = np.mgrid[:SIZE, :SIZE]
    cy, cx = g.integers(8, SIZE - 8, 2)
    circle = (yy - cy) ** 2 + (xx - cx) ** 2 < 25
    square = np.zeros_like(circle)
    sy, sx = g.integers(0, SIZE - 8, 2)
    square[sy:sy + 7, sx:sx + 7] = True
    square &= ~circle
    sem[circle], sem[square] = 0, 1
    img = torch.zeros((3, SIZE, SIZE))
    img[0][torch.from_numpy(circle)] = 255.
    img[1][torch.from_numpy(square)] = 255.
    img[2][torch.from_numpy(sem == 2)] = 200.
    meta = dict(img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE), batch_input_shape=(SIZE, SIZE),
                sample_id=f'img{seed}')
    s = FusionDataSample(metainfo=meta)
    s.gt_instances = InstanceData(labels=torch.tensor([0, 1]),
                                  masks=torch.from_numpy(np.stack([circle, square])))
    s.gt_sem_seg = PixelData(data=torch.from_numpy(sem)[None])
    return img, s


def batch(n: int = 2):
    items = [sample(i) for i in range(n)]
    return dict(img=torch.stack([i for i, _ in items])), [s for _, s in items]


def test_gradients_reach_exactly_the_decoder_and_towers_stay_unchanged():
    model = build()
    model.train()
    frozen = {k: v.clone() for k, v in model.state_dict().items()
              if k.startswith(('clip_encoder.', 'sam_encoder.', 'text_encoder.'))}
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for step in range(2):
        losses = model(*batch(), mode='loss')
        for key in ('loss_cls', 'loss_mask', 'loss_dice', 'd0.loss_cls', 'd5.loss_dice'):
            assert torch.isfinite(losses[key]), key
        optim.zero_grad()
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        assert trainable and all(n.startswith(('head.', 'void_embedding.')) for n in trainable)
        for name, p in model.named_parameters():
            if p.requires_grad:
                # (deformable attention starts with zero sampling-offset weights, so
                # the position and level embeddings get a gradient from step 2)
                assert p.grad is not None and (step == 0 or p.grad.abs().sum() > 0), name
            else:
                assert p.grad is None, name
        optim.step()
    state = {id(p) for group in optim.param_groups for p in group['params'] if p in optim.state}
    assert state == {id(p) for p in model.parameters() if p.requires_grad}
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in frozen.items())


def test_query_injector_adds_mask_pooled_sam_after_its_layers():
    decoder = build().head.decoder
    tokens, masks = torch.randn(2, 4, C), torch.randn(2, 4, 16, 16)
    sam = torch.randn(2, C, 8, 8)
    ctx = dict(sam_embed=sam)
    expect = tokens + decoder.mask_pooling_proj(binary_mask_pool(sam, masks)[0])
    for index in (2, 5):
        assert torch.allclose(decoder.after_layer(index, tokens, masks, ctx), expect)
    for index in (0, 1, 3, 4):
        assert decoder.after_layer(index, tokens, masks, ctx) is tokens


def test_feature_injector_replaces_the_memory_of_its_layers():
    decoder = build().head.decoder.eval()
    assert sorted(decoder.feature_injectors) == ['0', '3']
    memory, pos = torch.randn(2, 16, C), torch.randn(2, 16, C)
    ctx = dict(sam_tokens=torch.randn(2, 4, C), sam_hw=(2, 2), level_sizes=[(4, 4)] * 3)
    fused, fused_pos = decoder.layer_memory(0, memory, pos, ctx)
    assert fused.shape == memory.shape and not torch.allclose(fused, memory)
    assert torch.equal(fused_pos, torch.zeros_like(memory))  # no position embedding
    assert decoder.layer_memory(1, memory, pos, ctx) == (memory, pos)
    # by hand: CLIP tokens attend to the SAM tokens (resized at test to the CLIP level)
    sam_map = torch.nn.functional.interpolate(
        ctx['sam_tokens'].transpose(1, 2).reshape(2, C, 2, 2), (4, 4), mode='bilinear')
    keys = sam_map.flatten(2).transpose(1, 2) + decoder.level_embed.weight[0]
    key_pos = decoder.positional_encoding(torch.zeros(2, 4, 4, dtype=torch.bool))
    attn = decoder.feature_injectors['0'].attn.attn  # torch's, sequence first
    out, _ = attn((memory + pos).transpose(0, 1),
                  (keys + key_pos.flatten(2).transpose(1, 2)).transpose(0, 1),
                  keys.transpose(0, 1))
    out = out.transpose(0, 1)
    expect = decoder.feature_injectors['0'].norm(memory + out)
    assert torch.allclose(fused, expect, atol=1e-5)


@pytest.mark.parametrize('task', ['semantic', 'panoptic', 'instance'])
def test_predict(task):
    model = build().eval()
    inputs, samples = batch()
    out = model.predict(inputs, samples, task=task)
    if task == 'semantic':
        assert out[0].pred_sem_seg.data.shape == (1, SIZE, SIZE)
    elif task == 'panoptic':
        assert out[0].pred_panoptic_seg.sem_seg.shape == (1, SIZE, SIZE)
    else:
        assert out[0].pred_instances.masks.shape[-2:] == (SIZE, SIZE)


def test_tasks_for_the_demo_and_bad_task():
    model = build().eval()
    assert model.tasks == ('semantic', 'instance', 'panoptic')
    assert model.default_task == 'semantic'
    with pytest.raises(ValueError, match='caption'):
        model.predict(*batch(1), task='caption')


def test_box_crop_scores_equal_clip_on_the_crop():
    from mmfusion.models.common.open_vocab_ensemble import clip_box_crop_logits
    model = build(oov_source='box_crop').eval()
    img, _ = sample(0)
    masks = torch.full((2, SIZE, SIZE), -1.0)
    masks[0, 4:12, 8:16] = 1.0  # an 8 x 8 box: squared, widened by 15 % per side
    logits, valid = clip_box_crop_logits(
        model.clip_encoder, model.text_encoder, model.templates, img, model.clip_mean[0],
        model.clip_std[0], masks, CLASSES, torch.tensor(10.0), crop_size=32)
    assert valid.tolist() == [True, False] and torch.equal(logits[1], torch.zeros(4))
    # by hand: the square of side 8 * 1.3 around the box centre (x 12, y 8), at 32 x 32
    from torchvision.ops import roi_align
    box = torch.tensor([[0, 12 - 5.2, 8 - 5.2, 12 + 5.2, 8 + 5.2]])
    ref = roi_align(img[None], box, 32, aligned=True)
    ref = (ref - model.clip_mean[0]) / model.clip_std[0]
    embed = torch.nn.functional.normalize(model.clip_encoder(ref)['pooled'], dim=-1)
    text = model.text_encoder.embed_class_names(CLASSES, model.templates)
    assert torch.allclose(logits[0], 10.0 * embed[0] @ text.t(), atol=1e-4)


def test_ensemble_changes_only_the_class_scores():
    model = build().eval()
    inputs, samples = batch(1)
    seen = []  # what reaches the post-processor: (class logits, mask logits)
    post = model.head.postprocessor
    model.head.postprocessor = lambda task, cls, masks, *a: seen.append((cls, masks)) or post(
        task, cls, masks, *a)
    with_ens = model.predict(inputs, copy.deepcopy(samples))[0].pred_sem_seg.seg_logits
    model.ensemble = None
    without = model.predict(inputs, copy.deepcopy(samples))[0].pred_sem_seg.seg_logits
    assert with_ens.shape == without.shape and not torch.allclose(with_ens, without)
    (cls_ens, masks_ens), (cls_plain, masks_plain) = seen
    torch.testing.assert_close(masks_ens, masks_plain)
    assert not torch.allclose(cls_ens[0], cls_plain[0])


def test_ensemble_seen_classes_default_to_the_trained_ones():
    cfg = tiny_cfg(ensemble=dict(type='OpenVocabEnsemble'))
    assert build(**cfg).ensemble.seen_flags(CLASSES).all()  # trained on `classes`
    trained = build(**dict(cfg, train_classes=CLASSES[:2])).ensemble
    assert trained.seen_flags(CLASSES).tolist() == [True, True, False, False]
    explicit = build(**dict(cfg, train_classes=CLASSES[:2],
                            ensemble=dict(type='OpenVocabEnsemble', seen_classes=['sky'])))
    assert explicit.ensemble.seen_flags(CLASSES).tolist() == [False, False, True, False]


def test_out_of_vocab_logits_are_clip_on_the_pooled_last_map():
    model = build().eval()
    inputs, samples = batch(1)
    feats = model.extract_feat(inputs['img'], samples)
    masks = torch.zeros(3, SIZE, SIZE)
    masks[0, :16] = 1.  # top half
    masks[1, :, :8] = 1.  # left quarter
    masks[2] = -1.  # empty
    clf = model.classifier(CLASSES)
    last = feats['maps'][-1][0]  # (C, 4, 4) at stride 8
    oov = model.out_of_vocab_logits(last, masks, CLASSES)
    top = model.clip_encoder.embed_pooled(last[:, :2].mean((1, 2)))
    scale = model.clip_logit_scale.exp()
    expect = scale * torch.nn.functional.normalize(top, dim=-1) @ clf['embeds'][:-1].t()
    assert torch.allclose(oov['logits'][0], expect, atol=1e-4)
    assert oov['valid'].tolist() == [True, True, False]


def test_clear_errors():
    model = build()
    with pytest.raises(ValueError, match='empty list'):
        build(classes=[]).classes_of(None)
    with pytest.raises(ValueError, match='tokenises to nothing'):
        model.classifier(['circle', '\x00'])
    with pytest.raises(ValueError, match='class 1'):
        model.classifier(['circle', ' , '])
    wide = dict(CLIP, embed_dim=24)
    with pytest.raises(ValueError, match='24'):
        build(text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg=wide))


def test_clip_temperature_comes_from_the_clip_checkpoint(tmp_path):
    clip = MODELS.build(dict(type='OpenCLIPImageEncoder', model_cfg=CLIP, out_indices=(1, 2, 3)))
    state = {f'image_encoder.{k}': v for k, v in clip.state_dict().items()}
    state['logit_scale'] = torch.tensor(3.25)
    path = str(tmp_path / 'clip.pth')
    torch.save(dict(state_dict=state), path)
    model = build(clip_encoder=dict(type='OpenCLIPImageEncoder', model_cfg=CLIP,
                                    out_indices=(1, 2, 3), checkpoint=path,
                                    prefix='image_encoder.'))
    assert model.clip_logit_scale.item() == pytest.approx(3.25)
    assert torch.equal(model.clip_encoder.state_dict()['visual.head.proj.weight'],
                       clip.state_dict()['visual.head.proj.weight'])
    del state['logit_scale']
    torch.save(dict(state_dict=state), path)
    with pytest.raises(KeyError, match='logit_scale'):
        build(clip_encoder=dict(type='OpenCLIPImageEncoder', model_cfg=CLIP, out_indices=(1, 2, 3),
                                checkpoint=path, prefix='image_encoder.'))
    assert build(clip_logit_scale=2.0).clip_logit_scale.item() == 2.0
