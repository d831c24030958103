import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData, PixelData

from mmfusion.registry import MODELS
from mmfusion.structures import FusionDataSample

C = 32
TINY_CLIP = dict(embed_dim=16,
                 vision_cfg=dict(image_size=16, patch_size=8, width=32, layers=1, head_width=16),
                 text_cfg=dict(context_length=12, width=32, heads=2, layers=1))
CLASSES = ['circle', 'square', 'sky', 'grass']
THINGS = ['circle', 'square']


pytestmark = pytest.mark.usefixtures('one_thread')


def tiny_cfg(**test_cfg) -> dict:
    return dict(
        type='XDecoder',
        backbone=dict(type='mmdet.ResNet', depth=18, base_channels=8, out_indices=(0, 1, 2, 3),
                      norm_cfg=dict(type='GN', num_groups=4), zero_init_residual=False),
        text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg=TINY_CLIP),
        head=dict(
            type='XDecoderHead',
            pixel_decoder=dict(
                type='TransformerEncoderFPNPixelDecoder', in_channels=[8, 16, 32, 64],
                feat_channels=C, out_channels=C, norm_cfg=dict(type='GN', num_groups=8),
                encoder=dict(num_layers=1, layer_cfg=dict(
                    self_attn_cfg=dict(embed_dims=C, num_heads=4, batch_first=True),
                    ffn_cfg=dict(embed_dims=C, feedforward_channels=64))),
                positional_encoding=dict(num_feats=C // 2, normalize=True)),
            transformer_decoder=dict(type='MaskedAttentionDecoder', num_queries=4,
                                     hidden_dims=C, num_layers=2, num_heads=4, ffn_dims=64,
                                     in_channels=C, mask_channels=C),
            criterion=dict(type='MaskCriterion',
                           matcher=dict(type='PointSampleHungarianMatcher', num_points=None),
                           num_points=None),
            test_cfg=test_cfg),
        classes=CLASSES, thing_classes=THINGS)


def build(seed: int = 0, **test_cfg):
    torch.manual_seed(seed)
    model = MODELS.build(tiny_cfg(**test_cfg))
    model.init_weights()
    return model


def synthetic_sample(seed: int, size: int = 32, classes=None) -> tuple:
    """An image with a circle (thing), a square (thing), sky over grass (stuff)."""
    g = np.random.default_rng(seed)
    sem = np.full((size, size), 2, np.int64)
    sem[size // 2:] = 3
    yy, xx = np.mgrid[:size, :size]
    cy, cx = g.integers(8, size - 8, 2)
    circle = (yy - cy) ** 2 + (xx - cx) ** 2 < 25
    square = np.zeros_like(circle)
    sy, sx = g.integers(0, size - 8, 2)
    square[sy:sy + 7, sx:sx + 7] = True
    square &= ~circle
    sem[circle], sem[square] = 0, 1
    img = torch.full((3, size, size), -1.0)
    img[0][torch.from_numpy(circle)] = 1.0
    img[1][torch.from_numpy(square)] = 1.0
    img[2][torch.from_numpy(sem == 2)] = 0.5
    meta = dict(img_shape=(size, size), ori_shape=(size, size), batch_input_shape=(size, size))
    if classes is not None:
        meta['classes'] = classes
    sample = FusionDataSample(metainfo=meta)
    sample.gt_instances = InstanceData(labels=torch.tensor([0, 1]),
                                       masks=torch.from_numpy(np.stack([circle, square])))
    sample.gt_sem_seg = PixelData(data=torch.from_numpy(sem)[None])
    return img, sample


def batch(n: int = 2):
    items = [synthetic_sample(i) for i in range(n)]
    return dict(img=torch.stack([i for i, _ in items])), [s for _, s in items]


def test_loss_and_gradients_reach_exactly_the_trainable_parameters():
    model = build()
    model.train()
    inputs, samples = batch()
    losses = model(inputs, samples, mode='loss')
    for key in ('loss_cls', 'loss_mask', 'loss_dice', 'd0.loss_cls', 'd1.loss_dice'):
        assert torch.isfinite(losses[key]), key
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    assert all(not p.requires_grad for p in model.text_encoder.parameters())
    # The image query serves captioning/retrieval; segmentation losses do not reach it.
    seg_only = {'head.image_query_feat.weight', 'head.image_query_pos.weight'}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            assert p.grad is None, name
        elif name in seg_only:
            assert p.grad is None or not p.grad.any(), name
        else:
            assert p.grad is not None and p.grad.any(), name
    assert model.head.logit_scale.grad is not None
    assert model.head.no_object_embed.grad is not None


def test_gt_segments_add_stuff_from_semantic_map():
    model = build()
    _, sample = synthetic_sample(0)
    gt = model.gt_segments(sample, CLASSES)
    assert gt.labels.tolist() == [0, 1, 2, 3]
    assert gt.masks.shape == (4, 32, 32)
    # No instances, no thing names: every label of the semantic map is a segment.
    model.thing_classes = None
    del sample.gt_instances
    assert sorted(model.gt_segments(sample, CLASSES).labels.tolist()) == [0, 1, 2, 3]


def test_predict_all_tasks_feed_the_metrics(tmp_path):
    from mmfusion.evaluation.metrics import CocoMaskAPMetric, PanopticQualityMetric, SemSegIoUMetric
    model = build(task='semantic', object_mask_threshold=0.0)
    model.eval()
    inputs, _ = batch()
    meta = dict(img_shape=(32, 32), ori_shape=(40, 48), batch_input_shape=(32, 32))

    def fresh():
        out = []
        for i in range(2):
            _, s = synthetic_sample(i)
            s.set_metainfo(meta)
            out.append(s)
        return out

    sem = model.predict(inputs, fresh(), task='semantic')
    assert sem[0].pred_sem_seg.data.shape == (1, 40, 48)
    assert int(sem[0].pred_sem_seg.data.max()) < len(CLASSES)
    inst = model.predict(inputs, fresh(), task='instance')
    pi = inst[0].pred_instances
    assert pi.masks.shape[1:] == (40, 48) and pi.masks.dtype == torch.bool
    assert len(pi) == 4 * len(THINGS)  # top-k over queries x thing classes
    assert set(pi.labels.tolist()) <= {0, 1}
    pan = model.predict(inputs, fresh(), task='panoptic')
    pan_map = pan[0].pred_panoptic_seg.sem_seg
    assert pan_map.shape == (1, 40, 48)
    labels = pan_map % 1000
    assert int(labels.max()) <= len(CLASSES)
    # Stuff segments carry no instance id.
    assert not ((labels >= 2) & (labels < len(CLASSES)) & (pan_map >= 1000)).any()

    # Semantic metric: gt at ori_shape.
    for s in sem:
        s.gt_sem_seg = PixelData(data=torch.zeros(1, 40, 48, dtype=torch.long))
    metric = SemSegIoUMetric()
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process({}, [s.to_dict() for s in sem])
    assert 'mIoU' in metric.compute_metrics(metric.results)

    metric = CocoMaskAPMetric()
    metric.dataset_meta = dict(classes=CLASSES)
    for s in inst:
        s.gt_instances = InstanceData(labels=torch.tensor([0]),
                                      masks=torch.ones(1, 40, 48, dtype=torch.bool))
    metric.process({}, [s.to_dict() for s in inst])
    assert 'mAP' in metric.compute_metrics(metric.results)

    import mmcv
    png = np.zeros((40, 48, 3), np.uint8)
    png[:20, :, 0] = 1  # segment 1: sky; segment 2: a circle
    png[20:, :, 0] = 2
    mmcv.imwrite(png[..., ::-1], str(tmp_path / 'pan.png'))
    metric = PanopticQualityMetric()
    metric.dataset_meta = dict(classes=CLASSES, thing_classes=THINGS)
    samples = []
    for s in pan:
        s.set_metainfo(dict(seg_map_path=str(tmp_path / 'pan.png'),
                            segments_info=[dict(id=1, category=2, is_thing=False),
                                           dict(id=2, category=0, is_thing=True)]))
        samples.append(s.to_dict())
    metric.process({}, samples)
    assert 'PQ' in metric.compute_metrics(metric.results)


def test_batch_with_different_class_lists_matches_single_images():
    model = build(task='semantic')
    model.eval()
    lists = [['circle', 'square', 'sky', 'grass'], ['grass', 'circle', 'dog']]
    items = [synthetic_sample(i, classes=c) for i, c in enumerate(lists)]
    img = torch.stack([i for i, _ in items])
    for task in ('semantic', 'instance'):
        batched = model.predict(dict(img=img), [synthetic_sample(i, classes=c)[1]
                                                for i, c in enumerate(lists)], task=task)
        for i, c in enumerate(lists):
            single = model.predict(dict(img=img[i:i + 1]), [synthetic_sample(i, classes=c)[1]],
                                   task=task)[0]
            if task == 'semantic':
                assert batched[i].pred_sem_seg.seg_logits.shape[0] == len(c)
                torch.testing.assert_close(batched[i].pred_sem_seg.seg_logits,
                                           single.pred_sem_seg.seg_logits,
                                           atol=1e-4, rtol=1e-4)
            else:
                torch.testing.assert_close(batched[i].pred_instances.scores,
                                           single.pred_instances.scores, atol=1e-4, rtol=1e-4)
                assert torch.equal(batched[i].pred_instances.labels,
                                   single.pred_instances.labels)
    # Losses of a mixed batch are finite too (class logits padded with -inf).
    model.train()
    samples = [synthetic_sample(0, classes=lists[0])[1],
               synthetic_sample(1, classes=lists[0][:2])[1]]
    for s in samples[1:]:  # only circle/square classes: the stuff labels are void
        s.gt_sem_seg = PixelData(data=torch.where(s.gt_sem_seg.data >= 2, 255,
                                                  s.gt_sem_seg.data))
    losses = model(dict(img=img), samples, mode='loss')
    assert all(torch.isfinite(v) for v in losses.values())


def test_empty_class_list_is_a_clear_error():
    model = build()
    model.classes = None
    with pytest.raises(ValueError, match='class names'):
        model.predict(dict(img=torch.zeros(1, 3, 32, 32)), [FusionDataSample()])


def test_a_few_steps_reduce_the_loss():
    model = build()
    model.train()
    inputs, samples = batch()
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=1e-3)
    history = []
    for _ in range(8):
        losses = model(inputs, samples, mode='loss')
        total = sum(v for k, v in losses.items() if 'loss' in k)
        optim.zero_grad()
        total.backward()
        optim.step()
        history.append(total.item())
    assert history[-1] < history[0] * 0.8, history


def test_panoptic_and_instance_postprocessing_on_crafted_predictions():
    head = build(object_mask_threshold=0.8, overlap_threshold=0.8).head
    big = 20.0
    masks = torch.full((4, 4, 6), -big)
    masks[0, :2, :3] = big  # thing 0
    masks[1, :2, 3:] = big  # thing 0, a second instance
    masks[2, 2:, :3] = big  # stuff 2
    masks[3, 2:, 3:] = big  # stuff 2 again: merged into one segment
    probs = torch.full((4, 4), 0.01)
    probs[[0, 1], 0] = 0.97
    probs[[2, 3], 2] = 0.97
    flags = torch.tensor([True, True, False])
    pan = head.postprocessor.panoptic(probs, masks, flags).sem_seg[0]
    assert set(pan[:2, :3].unique().tolist()) == {0 + 1000}
    assert set(pan[:2, 3:].unique().tolist()) == {0 + 2000}
    assert set(pan[2:].unique().tolist()) == {2}
    probs[1] = torch.tensor([0.5, 0.0, 0.0, 0.5])  # below the threshold: void
    pan = head.postprocessor.panoptic(probs, masks, flags).sem_seg[0]
    assert set(pan[:2, 3:].unique().tolist()) == {3}  # void = number of classes
    inst = head.postprocessor.instance(probs, masks, flags)
    assert set(inst.labels.tolist()) <= {0, 1}
    assert inst.scores[0] == pytest.approx(0.97, abs=1e-3)
    assert inst.masks[0].sum() == 6


def test_padded_batch_through_the_data_preprocessor():
    cfg = tiny_cfg(task='semantic')
    cfg['data_preprocessor'] = dict(
        type='MultiModalDataPreprocessor',
        img=dict(type='ImgDataPreprocessor', mean=[0.0] * 3, std=[1.0] * 3,
                 pad_size_divisor=32))
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    imgs, samples = [], []
    for i, size in enumerate((32, 24)):
        img, sample = synthetic_sample(i, size=size)
        sample.set_metainfo(dict(img_shape=(size, size), ori_shape=(size + 8, size)))
        imgs.append(img)
        samples.append(sample)
    data = dict(inputs=dict(img=imgs), data_samples=samples)
    model.train()
    losses = model(**model.data_preprocessor(data, True), mode='loss')
    assert torch.isfinite(losses['loss_mask'])
    model.eval()
    out = model.test_step(dict(inputs=dict(img=imgs), data_samples=samples))
    assert out[0].pred_sem_seg.data.shape == (1, 40, 32)
    assert out[1].pred_sem_seg.data.shape == (1, 32, 24)


# -- grounding, captioning, retrieval ----------------------------------------
VOCAB = ['a circle and a square on sky', 'grass , .']


def build_full(seed: int = 0, **test_cfg):
    cfg = tiny_cfg(**test_cfg)
    cfg['head'].update(grounding=dict(num_layers=2), caption=dict(max_len=12, num_layers=2),
                       retrieval=dict(num_layers=2))
    cfg['caption_vocab'] = VOCAB
    torch.manual_seed(seed)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def full_batch(n: int = 2):
    inputs, samples = batch(n)
    for k, s in enumerate(samples):
        s.gt_ref_mask = PixelData(data=s.gt_instances.masks[k % 2:k % 2 + 1])
        s.gt_caption = ['a circle and a square', 'a square on grass .']
    inputs['text'] = ['the circle', 'the square on the left of the circle'][:n]
    return inputs, samples


def eval_full_batch():
    """The all-branch model in eval mode, :func:`full_batch`, its backbone
    maps and image metas."""
    model = build_full()
    model.eval()
    inputs, samples = full_batch()
    return (model, inputs, samples, model.extract_feat(inputs['img']),
            model._metas(samples, inputs['img']))


def test_all_branches_train_and_gradients_reach_exactly_the_trainable_parameters():
    model = build_full()
    model.train()
    inputs, samples = full_batch()
    losses = model(inputs, samples, mode='loss')
    # Top-2 of the 3 predictions: d1 and the last (named as the segmentation losses).
    for key in ('loss_cls', 'grounding.loss_cls', 'grounding.loss_mask', 'grounding.loss_dice',
                'grounding.d1.loss_dice', 'loss_caption', 'd1.loss_caption', 'loss_retrieval'):
        assert torch.isfinite(losses[key]), key
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    for name, p in model.named_parameters():
        if name.startswith('text_encoder.'):
            assert not p.requires_grad and p.grad is None, name
        else:  # with every branch on, the image query trains too
            assert p.grad is not None and p.grad.any(), name


def test_retrieval_loss_is_symmetric_info_nce():
    model = build_full()
    inputs, samples = full_batch()
    captions = ['a circle and a square', 'a square on grass .']
    feats = model.extract_feat(inputs['img'])
    out = model.head(feats, model._metas(samples, inputs['img']))
    text = torch.nn.functional.normalize(model.embed_texts(captions), dim=-1)
    losses = model.head.retrieval_loss(out, dict(text_embeds=model.embed_texts(captions)))
    img = model.head.image_text_embeds(out)[-1]
    logits = model.head.retrieval_scale() * img @ text.t()
    # Hand-written: -log softmax of the diagonal, over rows and over columns.
    rows = -(logits.diag() - logits.logsumexp(1)).mean()
    cols = -(logits.diag() - logits.logsumexp(0)).mean()
    torch.testing.assert_close(losses['loss_retrieval'], 8.0 * (rows + cols) / 2)


def test_appended_tokens_do_not_change_object_and_image_queries():
    """The self-attention mask in action: object/image queries decode the
    same with or without grounding and caption tokens in the sequence."""
    model, inputs, samples, feats, metas = eval_full_batch()
    with torch.no_grad():
        plain = model.head(feats, metas)
        g = model.embed_sentences(inputs['text'])
        cap = model.caption_inputs(['a circle and a square', 'a square on grass .'])
        full = model.head(feats, metas, grounding_tokens=g['tokens'],
                          grounding_valid=g['valid'], caption_tokens=cap['tokens'])
    for key in ('cls_embeds', 'mask_logits', 'image_embeds'):
        for a, b in zip(plain[key], full[key]):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_grounding_padding_and_batching_match_single_sentences():
    """Padded sentence tokens are invisible: decoding with the padding equals
    decoding the valid tokens alone, and a batch of two sentences of
    different lengths gives each image the same referring mask as alone."""
    model, inputs, samples, feats, metas = eval_full_batch()
    g = model.embed_sentences(inputs['text'])
    assert not g['valid'].all()
    with torch.no_grad():
        padded = model.head(feats, metas, grounding_tokens=g['tokens'],
                            grounding_valid=g['valid'])
        for b in range(2):
            n = int(g['valid'][b].sum())
            alone = model.head([f[b:b + 1] for f in feats], metas[b:b + 1],
                               grounding_tokens=g['tokens'][b:b + 1, :n])
            for key in ('grounding_cls_embeds', 'grounding_mask_logits'):
                torch.testing.assert_close(padded[key][-1][b:b + 1], alone[key][-1],
                                           atol=1e-5, rtol=1e-5)
        # Without the padding mask the padded tokens would change the result.
        unmasked = model.head(feats, metas, grounding_tokens=g['tokens'])
    assert not torch.allclose(unmasked['grounding_cls_embeds'][-1],
                              padded['grounding_cls_embeds'][-1], atol=1e-4)
    batched = model.predict(inputs, samples, task='referring')
    for i in range(2):
        single = model.predict(dict(img=inputs['img'][i:i + 1], text=[inputs['text'][i]]),
                               [full_batch()[1][i]], task='referring')[0]
        torch.testing.assert_close(batched[i].pred_sem_seg.seg_logits,
                                   single.pred_sem_seg.seg_logits, atol=1e-4, rtol=1e-4)
        mask = batched[i].pred_sem_seg.data
        assert mask.shape == (1, 32, 32) and set(mask.unique().tolist()) <= {0, 1}


def test_sentence_tokens_skip_cross_attention():
    """Sentence tokens join after cross-attention (the paper): blocked from
    every other token in self-attention, their outputs do not depend on the
    image at all."""
    from mmfusion.models.common.mask import MaskedAttentionDecoder
    torch.manual_seed(0)
    dec = MaskedAttentionDecoder(num_queries=3, hidden_dims=16, num_layers=2, num_heads=2,
                                 ffn_dims=32, in_channels=16, mask_channels=16).eval()
    extra = torch.randn(2, 2, 16)
    mask = torch.ones(5, 5, dtype=torch.bool)
    mask[:3, :3] = False
    mask[3, 3] = mask[4, 4] = False  # each extra token sees only itself
    outs = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        feats = [torch.randn(2, 16, s, s) for s in (2, 4, 8)]
        with torch.no_grad():
            outs.append(dec(feats, torch.randn(2, 16, 16, 16), extra_tokens=extra,
                            self_attn_mask=mask,
                            extra_cross_attn=torch.tensor([False, True]))['query_embeds'][-1])
    torch.testing.assert_close(outs[0][:, 3], outs[1][:, 3])  # skips cross-attention
    assert not torch.allclose(outs[0][:, 4], outs[1][:, 4])  # cross-attends
    assert not torch.allclose(outs[0][:, :3], outs[1][:, :3])


def test_cached_caption_steps_equal_decoding_the_whole_caption():
    """Each cached one-token step gives the caption embedding that decoding
    the whole prefix at once gives at its last position."""
    model, inputs, samples, feats, metas = eval_full_batch()
    head = model.head
    ids = model.caption_vocab_ids[torch.randint(len(model.caption_vocab_ids), (2, 6))]
    ids[:, 0] = model.start_id
    with torch.no_grad():
        pixel_out = head.pixel_decoder(feats, metas)
        cache = {}
        head.decode(pixel_out, caption_tokens=model.embed_tokens(ids[:, :1]), cache=cache)
        for t in range(1, ids.shape[1]):
            step = head.decode_next_caption_tokens(model.embed_tokens(ids[:, t:t + 1]), cache)
            whole = head.decode(pixel_out, caption_tokens=model.embed_tokens(ids[:, :t + 1]))
            torch.testing.assert_close(step[:, -1], whole['caption_embeds'][-1][:, -1],
                                       rtol=1e-4, atol=1e-5)
        with pytest.raises(ValueError, match='exceed caption max_len'):
            head.decode_next_caption_tokens(model.embed_tokens(torch.cat([ids, ids], 1)), cache)


def test_greedy_caption_equals_teacher_forcing_on_its_own_output():
    """Causal caption tokens: re-running the generated caption with teacher
    forcing predicts every generated token again (argmax at each position)."""
    model, inputs, samples, feats, metas = eval_full_batch()
    out = model.predict(inputs, samples, task='caption')
    ids = model.head.generate_captions(feats, metas, model.embed_tokens, model.vocab_embeds(),
                                       model.caption_vocab_ids, model.start_id, model.end_id)
    vocab = set(model.caption_vocab_ids.tolist())
    assert max(len(row) for row in ids) >= 2  # a prefix longer than [start] is checked
    for b, row in enumerate(ids):
        assert model.start_id not in row
        assert set(row) <= vocab and len(row) <= 11
        prefix = torch.tensor([[model.start_id] + row])
        with torch.no_grad():
            dec = model.head([f[b:b + 1] for f in feats], metas[b:b + 1],
                             caption_tokens=model.embed_tokens(prefix))
        logits = model.head.caption_logits(dec['caption_embeds'][-1][0], model.vocab_embeds())
        predicted = model.caption_vocab_ids[logits.argmax(-1)].tolist()
        expected = row + ([model.end_id] if len(row) < 11 else [])
        assert predicted[:len(expected)] == expected
        assert out[b].pred_caption == model.text_encoder.tokenizer.decode(row).strip()


def test_retrieval_loss_with_repeated_captions_spreads_the_target():
    model = build_full()
    inputs, samples = full_batch()
    feats = model.extract_feat(inputs['img'])
    out = model.head(feats, model._metas(samples, inputs['img']))
    text = model.embed_texts(['a circle', 'a circle'])
    both = torch.ones(2, 2, dtype=torch.bool)
    loss = model.head.retrieval_loss(out, dict(text_embeds=text, positives=both))
    img = model.head.image_text_embeds(out)[-1]
    logits = model.head.retrieval_scale() * img @ torch.nn.functional.normalize(text, dim=-1).t()
    # Two identical texts: each row's target is (0.5, 0.5).
    rows = -(logits.log_softmax(1).mean(1)).mean()
    cols = -(logits.log_softmax(0).mean(0)).mean()
    torch.testing.assert_close(loss['loss_retrieval'], 8.0 * (rows + cols) / 2)


def test_retrieval_prediction_scores_candidates():
    model = build_full()
    model.eval()
    inputs, samples = full_batch()
    samples[0].set_metainfo(dict(texts=['a circle', 'grass', 'sky']))
    out = model.predict(inputs, samples, task='retrieval')
    assert out[0].pred_text_embeddings.shape == (3, 16)
    assert out[1].pred_text_embeddings.shape == (2, 16)  # its gt_caption
    torch.testing.assert_close(out[0].pred_retrieval_scores.sum(), torch.tensor(1.0))
    torch.testing.assert_close(out[0].pred_image_embedding.norm(), torch.tensor(1.0))


def test_text_input_errors_and_truncation_warning(monkeypatch):
    model = build_full()
    model.eval()
    inputs, samples = full_batch()
    with pytest.raises(ValueError, match='one sentence per image'):
        model.predict(dict(img=inputs['img'], text=['only one']), samples, task='referring')
    with pytest.raises(ValueError, match='non-empty sentence'):
        model.predict(dict(img=inputs['img'], text=['the circle', ' ']), samples,
                      task='referring')
    with pytest.raises(ValueError, match='caption vocabulary'):
        model.caption_inputs(['a purple elephant'])
    long = ' '.join(['circle'] * 30)  # context is 12 tokens
    warnings = []
    monkeypatch.setattr('mmfusion.models.xdecoder.xdecoder.print_log',
                        lambda msg, **kw: warnings.append(msg))
    for _ in range(2):
        out = model.predict(dict(img=inputs['img'][:1], text=[long]), samples[:1],
                            task='referring')
    assert out[0].pred_sem_seg.data.shape == (1, 32, 32)
    assert len(warnings) == 1 and 'cut to its first 10' in warnings[0]  # once per sentence
    with pytest.raises(ValueError, match='task must be one of'):
        model.predict(inputs, samples, task='depth')
    with pytest.raises(ValueError, match='all images or none'):
        del samples[1].gt_ref_mask
        model.loss(inputs, samples)


def test_frozen_encoder_backbone_with_neck_serves_maps_from_the_feature_cache(tmp_path):
    """A frozen open_clip ViT as the backbone, mmseg's MultiLevelNeck making
    the pyramid; with a FeatureCache attached, the second pass reads the
    backbone maps from disk and gives the same outputs."""
    from mmfusion.models.encoders.feature_cache import FeatureCache
    cfg = tiny_cfg()
    cfg['backbone'] = dict(type='OpenCLIPImageEncoder', frozen=True,
                           model_cfg=dict(TINY_CLIP, vision_cfg=dict(TINY_CLIP['vision_cfg'],
                                                                     image_size=32, patch_size=4)))
    cfg['neck'] = dict(type='mmseg.MultiLevelNeck', in_channels=[32], out_channels=C,
                       scales=[1, 0.5, 0.25, 0.125])
    cfg['head']['pixel_decoder']['in_channels'] = [C] * 4
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.eval()
    inputs, samples = batch()
    for i, s in enumerate(samples):
        s.set_metainfo(dict(img_path=f'scene_{i}.png'))
    model.backbone.attach_feature_cache(FeatureCache(str(tmp_path), 'fp'))
    maps = model.extract_feat(inputs['img'], samples)
    assert [m.shape[-1] for m in maps] == [8, 4, 2, 1]
    assert len(list(tmp_path.rglob('*.safetensors'))) == 2
    # The cache answers now, whatever the images: it is keyed by sample id.
    cached = model.extract_feat(torch.zeros_like(inputs['img']), samples)
    for a, b in zip(maps, cached):
        torch.testing.assert_close(a, b)


CNN_CLIP = dict(embed_dim=16,
                vision_cfg=dict(timm_model_name='convnext_synth_s8', timm_model_pretrained=False,
                                timm_pool='', timm_proj='linear', image_size=32),
                text_cfg=dict(context_length=12, width=32, heads=2, layers=1))


def test_clip_ensemble_switch_changes_only_the_class_scores():
    """X-Decoder with FrozenSeg's inference ensemble (a config switch): the
    same masks, class scores mixed with a frozen CLIP's mask classification."""
    plain = build(task='semantic')
    cfg = tiny_cfg(task='semantic')
    cfg['clip_ensemble'] = dict(
        clip_encoder=dict(type='OpenCLIPImageEncoder', model_cfg=CNN_CLIP),
        text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg=CNN_CLIP),
        templates='simple', clip_norm=dict(mean=[127.5] * 3, std=[127.5] * 3),
        ensemble=dict(type='OpenVocabEnsemble', seen_classes=CLASSES[:3]))
    torch.manual_seed(0)
    ens = MODELS.build(cfg)
    ens.init_weights()
    ens.load_state_dict(plain.state_dict(), strict=False)  # same decoder weights
    assert not any(p.requires_grad for p in ens.clip_ensemble.parameters())
    inputs, samples = batch(1)
    plain.eval(), ens.eval()
    a = plain.predict(inputs, [samples[0].clone()])[0].pred_sem_seg.seg_logits
    b = ens.predict(inputs, [samples[0].clone()])[0].pred_sem_seg.seg_logits
    assert a.shape == b.shape and not torch.allclose(a, b)
    # the ensemble is exactly the shared geometric formula on the head's logits
    from mmfusion.models.common.open_vocab_ensemble import clip_mask_logits
    feats = ens.extract_feat(inputs['img'])
    out = ens.head(feats, ens._metas(samples, inputs['img']))
    plain_out = plain.head(plain.extract_feat(inputs['img']), plain._metas(samples, inputs['img']))
    torch.testing.assert_close(out['mask_logits'][-1], plain_out['mask_logits'][-1])  # same masks
    head_logits = ens.head.class_logits(out['cls_embeds'][-1][0], ens.class_embeds(CLASSES))
    pixels = ens._pixels(inputs['img'])
    got = ens.clip_ensemble(pixels, [head_logits], out['mask_logits'][-1], [CLASSES])[0]
    clip = ens.clip_ensemble
    dense = clip.clip_encoder((pixels - clip.mean) / clip.std)['maps'][-1][0]
    oov, valid = clip_mask_logits(clip.clip_encoder, clip.text_encoder, clip.templates, dense,
                                  out['mask_logits'][-1][0], CLASSES, clip.logit_scale.exp())
    assert torch.allclose(got, clip.ensemble(head_logits, oov, CLASSES, valid))


def test_clip_ensemble_box_crop_source():
    """oov_source='box_crop': CLIP classifies a crop around each mask (the
    tiny recipes' source), then the same geometric ensemble."""
    from mmfusion.models.common.open_vocab_ensemble import clip_box_crop_logits
    torch.manual_seed(0)
    ensemble = MODELS.build(dict(
        type='CLIPMaskEnsemble',
        clip_encoder=dict(type='OpenCLIPImageEncoder', model_cfg=CNN_CLIP),
        text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg=CNN_CLIP),
        templates='simple', clip_norm=dict(mean=[127.5] * 3, std=[127.5] * 3),
        oov_source='box_crop', clip_crop_size=32, clip_logit_scale=2.0,
        ensemble=dict(type='OpenVocabEnsemble', seen_classes=CLASSES[:3]))).eval()
    images = torch.rand(2, 3, 48, 48) * 255
    masks = torch.full((2, 4, 12, 12), -5.0)
    masks[:, 0, 2:6, 3:9] = 5.0
    masks[:, 1, 6:, :] = 5.0  # masks 2 and 3 empty: CLIP abstains there
    in_vocab = [torch.randn(4, len(CLASSES) + 1) for _ in range(2)]
    got = ensemble(images, in_vocab, masks, [CLASSES, CLASSES])
    for b in range(2):
        oov, valid = clip_box_crop_logits(
            ensemble.clip_encoder, ensemble.text_encoder, ensemble.templates, images[b],
            ensemble.mean[0], ensemble.std[0], masks[b], CLASSES, torch.tensor(2.0).exp(), 32)
        assert valid.tolist() == [True, True, False, False]
        torch.testing.assert_close(got[b], ensemble.ensemble(in_vocab[b], oov, CLASSES, valid))
    with pytest.raises(ValueError, match='oov_source'):
        MODELS.build(dict(type='CLIPMaskEnsemble', oov_source='pixels',
                          clip_encoder=dict(type='OpenCLIPImageEncoder', model_cfg=CNN_CLIP),
                          text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg=CNN_CLIP)))


def test_clip_ensemble_needs_a_cnn_tower():
    cfg = tiny_cfg()
    cfg['clip_ensemble'] = dict(
        clip_encoder=dict(type='OpenCLIPImageEncoder', model_cfg=TINY_CLIP),
        text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg=TINY_CLIP))
    with pytest.raises(ValueError, match='CNN CLIP tower'):
        MODELS.build(cfg)
