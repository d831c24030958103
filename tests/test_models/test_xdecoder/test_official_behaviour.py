"""X-Decoder's official behaviours (each an option of mmfusion's model, the
default of the official-weights config), checked against hand computations."""
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

from mmfusion.registry import MODELS

from tests.test_models.test_xdecoder.test_xdecoder import VOCAB, C, full_batch, tiny_cfg

pytestmark = pytest.mark.usefixtures('one_thread')

# Text embeddings at the decoder width, so projected text tokens enter as they are.
OFFICIAL_CLIP = dict(embed_dim=C, quick_gelu=True,
                     text_cfg=dict(context_length=12, width=32, heads=2, layers=1,
                                   norm_kwargs=dict(eps=1e-12)))


def official_cfg() -> dict:
    cfg = tiny_cfg()
    cfg['text_encoder']['model_cfg'] = OFFICIAL_CLIP
    cfg.update(project_text_tokens=True, caption_input='encoder', caption_vocab=VOCAB,
               class_name_suffixes=['-other', '-merged', '-stuff'])
    cfg['head'].update(
        no_object='text', image_token='pooled', text_input_proj=False, proj_bias=False,
        grounding=dict(num_layers=2), caption=dict(max_len=12, num_layers=2,
                                                   pos_with_features=True),
        retrieval=dict(num_layers=2, image_proj='cls_embed', logit_scale='shared'),
        test_cfg=dict(mask_resize='bicubic', referring_select='similarity',
                      segment_with_image_token=True))
    cfg['head']['transformer_decoder'].update(attn_mask_resize='bicubic')
    cfg['head']['pixel_decoder'].update(use_padding_mask=False)
    return cfg


def build_official(seed: int = 0):
    torch.manual_seed(seed)
    model = MODELS.build(official_cfg())
    model.init_weights()
    return model.eval()


def test_official_model_has_no_parameters_the_official_checkpoint_lacks():
    names = dict(build_official().named_parameters())
    for absent in ('head.no_object_embed', 'head.retrieval_proj.weight',
                   'head.retrieval_logit_scale', 'head.decoder.cls_embed.bias',
                   'head.caption_out.bias', 'head.caption_in.weight', 'head.grounding_in.weight'):
        assert absent not in names, absent
    assert 'head.decoder.cls_embed.weight' in names and 'head.caption_out.weight' in names


def test_pooled_image_token_is_the_similarity_weighted_sum_of_object_outputs():
    head = build_official().head
    n = head.num_queries
    normed = torch.randn(2, n + 1 + 3, C)
    pooled = head.pool_image_token(normed)
    # by hand, per image: cosine of the image token with each object token,
    # softmax over objects, weighted sum of the (un-normalised) object tokens
    for b in range(2):
        cos = torch.stack([F.cosine_similarity(normed[b, n], normed[b, i], dim=0, eps=0)
                           for i in range(n)])
        expected = (cos.softmax(0)[:, None] * normed[b, :n]).sum(0)
        torch.testing.assert_close(pooled[b, n], expected, rtol=1e-5, atol=1e-6)
    # the other tokens are untouched
    torch.testing.assert_close(pooled[:, :n], normed[:, :n])
    torch.testing.assert_close(pooled[:, n + 1:], normed[:, n + 1:])


def test_image_token_outputs_come_from_the_pooled_token():
    model = build_official()
    inputs, samples = full_batch()
    with torch.no_grad():
        out = model.head(model.extract_feat(inputs['img']), model._metas(samples, inputs['img']))
    for image, cls in zip(out['image_embeds'], out['image_cls_embeds']):
        # bias-free class projection of the pooled token
        torch.testing.assert_close(cls, image @ model.head.decoder.cls_embed.weight.t())


def test_image_query_cross_attends_within_its_mask_and_the_next_token_does_not(monkeypatch):
    model = build_official()
    inputs, samples = full_batch()
    seen = {}
    decoder_forward = model.head.decoder.forward

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return decoder_forward(*args, **kwargs)

    monkeypatch.setattr(model.head.decoder, 'forward', spy)
    g = model.embed_sentences(inputs['text'])
    with torch.no_grad():
        model.head(model.extract_feat(inputs['img']), model._metas(samples, inputs['img']),
                   grounding_tokens=g['tokens'], grounding_valid=g['valid'])
    own = seen['mask_extra_cross_attn'].tolist()
    n, length = model.head.num_queries, g['tokens'].shape[1]
    # [image query | grounding queries | sentence tokens]: the image query
    # uses its own mask; the official fill unmasks the token after it.
    assert own == [True, False] + [True] * (n - 1) + [False] * length


def test_no_object_class_is_the_background_sentence_embedding():
    model = build_official()
    inputs, samples = full_batch()
    embeds = model.batch_class_embeds(samples)
    assert [len(e) for e in embeds] == [5, 5]  # 4 classes + background
    with torch.no_grad():
        background = F.normalize(model.text_encoder(['A background in coco.'])['pooled'], dim=-1)
    torch.testing.assert_close(embeds[0][-1], background[0], rtol=1e-5, atol=1e-6)
    query = torch.randn(3, C)
    logits = model.head.class_logits(query, embeds[0])
    expected = model.head.scale() * F.normalize(query, dim=-1) @ background[0]
    torch.testing.assert_close(logits[:, -1], expected, rtol=1e-5, atol=1e-5)


def test_class_name_suffixes_are_removed_before_embedding():
    model = build_official()
    torch.testing.assert_close(model.class_embeds(['wall-other-merged', 'grass-merged']),
                               model.class_embeds(['wall', 'grass']))


def test_attention_masks_are_resized_bicubic_with_antialias():
    decoder = build_official().head.decoder
    logits = torch.randn(2, 5, 16, 16) * 3
    logits[0, 1] = -10  # a query whose mask is empty everywhere: left unmasked
    mask = decoder.attention_mask(logits, (6, 6))
    resized = F.interpolate(logits, (6, 6), mode='bicubic', align_corners=False, antialias=True)
    expected = resized.sigmoid().flatten(2) < 0.5
    expected[0, 1] = False
    expected = expected.repeat_interleave(decoder.num_heads, dim=0)
    assert torch.equal(mask, expected)
    bilinear = F.interpolate(logits, (6, 6), mode='bilinear', align_corners=False)
    assert not torch.equal(mask, (bilinear.sigmoid().flatten(2) < 0.5).repeat_interleave(
        decoder.num_heads, dim=0))


def test_output_masks_are_resized_bicubic_with_antialias():
    from mmfusion.models.common.mask.postprocessor import resize_masks
    logits = torch.randn(3, 8, 8)
    meta = dict(batch_input_shape=(32, 32), img_shape=(32, 28), ori_shape=(64, 56))
    up = F.interpolate(logits[None], (32, 32), mode='bicubic', align_corners=False,
                       antialias=True)[:, :, :32, :28]
    expected = F.interpolate(up, (64, 56), mode='bilinear', align_corners=False)[0]
    torch.testing.assert_close(resize_masks(logits, meta, 'bicubic'), expected)


def test_referring_picks_the_grounding_query_most_similar_to_the_sentence():
    model = build_official()
    inputs, samples = full_batch()
    feats, metas = model.extract_feat(inputs['img']), model._metas(samples, inputs['img'])
    g = model.embed_sentences(inputs['text'])
    with torch.no_grad():
        out = model.head(feats, metas, grounding_tokens=g['tokens'], grounding_valid=g['valid'])
        preds = model.head.predict_referring(feats, metas, g)
    sentence = F.normalize(g['sentence_embeds'], dim=-1)
    for b in range(2):
        sims = F.normalize(out['grounding_cls_embeds'][-1][b], dim=-1) @ sentence[b]
        best = int(sims.argmax())
        expected = model.head.postprocessor.referring(out['grounding_mask_logits'][-1][b, best],
                                                      metas[b])
        assert torch.equal(preds[b]['pred_sem_seg'].data, expected.data)


def test_caption_tokens_enter_as_projected_causal_text_features():
    model = build_official()
    ids = model.text_encoder.tokenize(['a circle and a square'])[:, :5]
    with torch.no_grad():
        tokens = model.embed_tokens(ids)
        full = model.text_encoder(model.text_encoder.tokenize(['a circle and a square']))
    # position t sees only tokens <= t (causal), so the prefix's features are the
    # sentence's first features, times the text projection
    torch.testing.assert_close(tokens, full['tokens'][:, :5] @ model.text_encoder.text_projection,
                               rtol=1e-5, atol=1e-5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _retrieval_rank(rank: int, port: int, images: torch.Tensor, texts: torch.Tensor,
                    queue) -> None:
    import torch.distributed as dist
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=2)
    try:
        head = build_official().head
        head.retrieval_cfg['all_gather'] = True
        half = len(images) // 2
        mine = slice(rank * half, (rank + 1) * half)
        image = images[mine].clone().requires_grad_(True)
        out = dict(image_cls_embeds=[image] * 3)
        loss = head.retrieval_loss(out, dict(text_embeds=texts[mine]))['loss_retrieval']
        loss.backward()
        # plain lists: a tensor would travel as a shared-memory handle that dies
        # with this process
        queue.put((rank, loss.item(), image.grad.tolist()))
    finally:
        dist.destroy_process_group()


def test_retrieval_infonce_over_two_gloo_processes_equals_one_process_over_the_batch():
    torch.manual_seed(0)
    images, texts = torch.randn(6, C), torch.randn(6, C)
    head = build_official().head
    image = images.clone().requires_grad_(True)
    single = head.retrieval_loss(dict(image_cls_embeds=[image] * 3),
                                 dict(text_embeds=texts))['loss_retrieval']
    single.backward()
    # by hand: symmetric cross-entropy of the scaled cosine matrix, diagonal targets
    logits = head.scale() * F.normalize(images, dim=-1) @ F.normalize(texts, dim=-1).t()
    target = torch.arange(6)
    hand = head.retrieval_cfg['loss_weight'] * (F.cross_entropy(logits, target)
                                                + F.cross_entropy(logits.t(), target)) / 2
    torch.testing.assert_close(single, hand.detach(), rtol=1e-5, atol=1e-6)

    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_retrieval_rank, args=(r, port, images, texts, queue))
             for r in range(2)]
    for p in procs:
        p.start()
    results = dict((r, (loss, grad)) for r, loss, grad in (queue.get(timeout=120)
                                                            for _ in procs))
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    for rank in range(2):
        loss, grad = results[rank]
        assert abs(loss - single.item()) < 1e-5
        # each rank's rows get the whole-batch loss's gradient
        torch.testing.assert_close(torch.tensor(grad), image.grad[rank * 3:(rank + 1) * 3],
                                   rtol=1e-4, atol=1e-6)


def test_official_greedy_caption_equals_teacher_forcing_on_its_own_output():
    """With captions read through the causal text encoder, each cached step
    embeds its whole prefix: re-running the generated caption at once
    predicts every generated token again."""
    model = build_official()
    inputs, samples = full_batch()
    feats, metas = model.extract_feat(inputs['img']), model._metas(samples, inputs['img'])
    ids = model.head.generate_captions(feats, metas, model.embed_tokens, model.vocab_embeds(),
                                       model.caption_vocab_ids, model.start_id, model.end_id)
    assert max(len(row) for row in ids) >= 2
    for b, row in enumerate(ids):
        prefix = torch.tensor([[model.start_id] + row])
        with torch.no_grad():
            dec = model.head([f[b:b + 1] for f in feats], metas[b:b + 1],
                             caption_tokens=model.embed_tokens(prefix))
        logits = model.head.caption_logits(dec['caption_embeds'][-1][0], model.vocab_embeds())
        logits[:, (model.caption_vocab_ids == model.start_id).nonzero()[0]] = float('-inf')
        predicted = model.caption_vocab_ids[logits.argmax(-1)].tolist()
        assert predicted[:len(row)] == row
