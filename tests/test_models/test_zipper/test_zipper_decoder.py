"""Zipper towers and gated cross-attention fusion."""
import pytest
import torch
import torch.nn.functional as F

from mmfusion.models.common import CausalDecoderTower
from mmfusion.models.layers import GroupedQueryAttention, RotaryEmbedding, rotate_at
from mmfusion.models.zipper import ZipperDecoder, aligned_context_layer
from mmfusion.registry import MODELS

pytestmark = pytest.mark.usefixtures('one_thread')

TEXT = dict(type='CausalDecoderTower', vocab_size=40, dim=32, depth=4, num_heads=4, ffn_dim=64)
# Another width, depth and head layout (grouped-query attention) than the text tower.
SPEECH = dict(type='CausalDecoderTower', vocab_size=50, dim=24, depth=3, num_heads=4,
              num_kv_heads=2, ffn_dim=48)


def _zipper(text=None, speech=None, links=None, **kwargs) -> ZipperDecoder:
    torch.manual_seed(0)
    links = links if links is not None else [dict(query='text', context='speech', every=2)]
    return ZipperDecoder(towers=dict(text=dict(TEXT, **(text or {})),
                                     speech=dict(SPEECH, **(speech or {}))), links=links,
                         **kwargs)


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(text=torch.randint(0, 40, (2, 7), generator=g),
                speech=torch.randint(0, 50, (2, 11), generator=g))


def _open_gates(model, value=0.5):
    for block in model.cross_attn.values():
        block.gate.data.fill_(value)


def test_attention_is_causal_and_equals_a_reference_with_grouped_heads():
    torch.manual_seed(0)
    attn = GroupedQueryAttention(dim=24, num_heads=4, num_kv_heads=2)
    rope = RotaryEmbedding(6, max_len=16)
    x = torch.randn(2, 5, 24)
    out = attn(x, rope)
    # Reference: explicit softmax attention, each query head using kv head h // 2.
    q = rope(attn.q_proj(x).view(2, 5, 4, 6).transpose(1, 2))
    k = rope(attn.k_proj(x).view(2, 5, 2, 6).transpose(1, 2))
    v = attn.v_proj(x).view(2, 5, 2, 6).transpose(1, 2)
    k, v = k[:, [0, 0, 1, 1]], v[:, [0, 0, 1, 1]]
    scores = q @ k.transpose(-1, -2) / 6 ** 0.5
    scores = scores.masked_fill(torch.ones(5, 5, dtype=torch.bool).triu(1), float('-inf'))
    ref = attn.o_proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(2, 5, 24))
    torch.testing.assert_close(out, ref)
    # Changing a later token leaves earlier outputs unchanged.
    x2 = x.clone()
    x2[:, 3:] += 1
    torch.testing.assert_close(attn(x2, rope)[:, :3], out[:, :3])


def test_rope_is_relative_and_refuses_positions_beyond_its_range():
    rope = RotaryEmbedding(8, max_len=12)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    dots = [(rope(q, offset=i) * rope(k, offset=i + 3)).sum() for i in (0, 4, 8)]
    torch.testing.assert_close(dots[0], dots[1])
    torch.testing.assert_close(dots[0], dots[2])
    with pytest.raises(ValueError, match='exceeds the RoPE range max_len=12'):
        rope(torch.randn(1, 1, 13, 8))


def test_rotation_at_real_positions_matches_rope_and_stays_relative():
    rope = RotaryEmbedding(8, max_len=12)
    x = torch.randn(1, 2, 12, 8)
    torch.testing.assert_close(rotate_at(x, torch.arange(12.0)), rope(x))
    # Scaled query positions: the score depends on i * rate - j only.
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    dots = [(rotate_at(q, torch.tensor([i * 1.5])) * rotate_at(k, torch.tensor([i * 1.5 + 2])))
            .sum() for i in (0, 3, 7)]
    torch.testing.assert_close(dots[0], dots[1])
    torch.testing.assert_close(dots[0], dots[2])


def test_position_aware_links_start_closed_and_use_the_rotation():
    links = [dict(query='text', context='speech', every=2, position_rate=1.5)]
    model = _zipper(links=links).eval()
    batch = _batch()
    alone = model.towers['text'](batch['text'])['logits']
    assert torch.equal(model(batch)['text']['logits'], alone)
    _open_gates(model)
    plain = _zipper().eval()
    plain.load_state_dict(model.state_dict())
    _open_gates(plain)
    assert not torch.allclose(model(batch)['text']['logits'], plain(batch)['text']['logits'])


def test_gates_at_zero_give_exactly_the_unimodal_logits():
    model = _zipper().eval()
    batch = _batch()
    fused = model(batch)
    # The output (query) tower reads its pretrained embeddings: exactly unimodal.
    alone = model.towers['text'](batch['text'])['logits']
    assert torch.equal(fused['text']['logits'], alone)
    # The context tower's embeddings pass the paper's h0 = ReLU(MLP(embedding)).
    speech = model.towers['speech']
    proj = model.input_proj['speech']
    h0 = F.relu(F.linear(F.relu(F.linear(speech.embedding(batch['speech']), proj[0].weight,
                                         proj[0].bias)), proj[2].weight, proj[2].bias))
    torch.testing.assert_close(fused['speech']['hidden_states'][0], h0)
    x, _ = speech.run_layers(h0)
    torch.testing.assert_close(fused['speech']['logits'], speech.logits(x))
    # Without input projections both towers are exactly their unimodal selves.
    plain = _zipper(input_proj=[]).eval()
    assert plain.input_proj is None
    plain_out = plain(batch)
    for name in ('text', 'speech'):
        assert torch.equal(plain_out[name]['logits'], plain.towers[name](batch[name])['logits'])
    # Once the gates open, the query tower's output depends on the context.
    _open_gates(model)
    assert not torch.equal(model(batch)['text']['logits'], fused['text']['logits'])
    assert torch.equal(model(batch)['speech']['logits'], fused['speech']['logits'])


def test_input_projection_goes_where_configured_and_names_unknown_towers():
    assert sorted(_zipper().input_proj) == ['speech']  # 'context': the towers links read
    tts = _zipper(links=[dict(query='speech', context='text', every=1)])
    assert sorted(tts.input_proj) == ['text']
    both = _zipper(input_proj=['text', 'speech'])
    assert sorted(both.input_proj) == ['speech', 'text']
    # On the output tower too, step-by-step decoding (cached) equals the full pass.
    both.eval()
    _open_gates(both)
    batch = _batch()
    full = both(batch)['text']['logits']
    context = both(dict(speech=batch['speech']))
    caches = dict(text=both.towers['text'].new_caches())
    steps = [both(dict(text=batch['text'][:, i:i + 1]), context_outputs=context,
                  caches=caches)['text']['logits'] for i in range(batch['text'].shape[1])]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-5)
    with pytest.raises(KeyError, match="input_proj: no tower named 'image'"):
        _zipper(input_proj=['image'])
    with pytest.raises(ValueError, match="input_proj must be 'context' or a list"):
        _zipper(input_proj='speech')


def test_links_follow_every_and_align_depths_across_towers():
    model = _zipper()
    assert sorted(model.cross_attn) == ['text_from_speech_2', 'text_from_speech_4']
    # A 4-block text tower reads the 3-block speech tower at the same relative depth.
    assert [aligned_context_layer(i, 4, 3) for i in (1, 2, 3, 4)] == [1, 2, 2, 3]
    speech_first = _zipper(links=[dict(query='speech', context='text', every=1)])
    assert speech_first.order == ['text', 'speech']
    assert sorted(speech_first.cross_attn) == [f'speech_from_text_{i}' for i in (1, 2, 3)]
    with pytest.raises(ValueError, match='cycle'):
        _zipper(links=[dict(query='text', context='speech'), dict(query='speech', context='text')])
    with pytest.raises(KeyError, match="no tower named 'image'"):
        _zipper(links=[dict(query='text', context='image')])
    with pytest.raises(ValueError, match='every=5 exceeds the 4 blocks'):
        _zipper(links=[dict(query='text', context='speech', every=5)])


def test_cross_attention_projects_between_tower_widths_and_honours_context_padding():
    model = _zipper().eval()
    _open_gates(model)
    block = model.cross_attn['text_from_speech_2']
    # The paper's link projection is linear; ours ('mlp') adds a ReLU and a layer.
    assert isinstance(block.context_proj, torch.nn.Linear)
    assert block.context_proj.in_features == 24 and block.o_proj.out_features == 32
    mlp = _zipper(links=[dict(query='text', context='speech', every=2, context_proj='mlp')])
    proj = mlp.cross_attn['text_from_speech_2'].context_proj
    assert [type(m).__name__ for m in proj] == ['Linear', 'ReLU', 'Linear']
    assert proj[0].in_features == 24 and proj[2].out_features == 32
    with pytest.raises(ValueError, match="context_proj must be one of .*got 'conv'"):
        _zipper(links=[dict(query='text', context='speech', context_proj='conv')])
    batch = _batch()
    # Padding the speech context with junk tokens marked as padding changes nothing.
    padded = torch.cat([batch['speech'], torch.randint(0, 50, (2, 4))], dim=1)
    mask = torch.zeros(2, 15, dtype=torch.bool)
    mask[:, 11:] = True
    out = model(batch)['text']['logits']
    out_padded = model(dict(text=batch['text'], speech=padded),
                       padding_masks=dict(speech=mask))['text']['logits']
    torch.testing.assert_close(out_padded, out, rtol=1e-5, atol=1e-6)


def test_context_norm_makes_the_link_blind_to_the_context_scale():
    from mmfusion.models.zipper import GatedCrossAttention
    torch.manual_seed(0)
    x, context = torch.randn(2, 5, 32), torch.randn(2, 7, 24)
    normed = GatedCrossAttention(32, 24, 4, context_norm=True)
    plain = GatedCrossAttention(32, 24, 4)
    plain.load_state_dict(normed.state_dict(), strict=False)
    for block in (normed, plain):
        block.gate.data.fill_(0.5)
    torch.testing.assert_close(normed(x, 10 * context), normed(x, context))
    assert not torch.allclose(plain(x, 10 * context), plain(x, context))
    # Scale aside, the normalised link is the plain one reading RMS-normalised context.
    unit_rms = context / context.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt()
    torch.testing.assert_close(normed(x, context), plain(x, unit_rms), rtol=1e-5, atol=1e-5)
    links = [dict(query='text', context='speech', every=2, context_norm=True)]
    assert isinstance(_zipper(links=links).cross_attn['text_from_speech_2'].context_norm,
                      torch.nn.Module)


def test_frozen_tower_gets_no_gradient_and_the_rest_does():
    model = _zipper(text=dict(frozen=True))
    model.train()
    _open_gates(model)
    batch = _batch()
    out = model(batch)
    logits = out['text']['logits']
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, 40), batch['text'][:, 1:].reshape(-1))
    loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in model.towers['text'].parameters())
    # Everything else is reached, the speech tower through the cross-attention;
    # only the speech tower's final norm feeds nothing but its own logits.
    no_grad = {name for name, p in model.named_parameters()
               if not name.startswith('towers.text.') and (p.grad is None or not p.grad.any())}
    assert no_grad == {'towers.speech.norm.weight'}
    # The frozen tower stays in eval mode through train().
    assert not model.towers['text'].training and model.towers['speech'].training


def test_tower_refuses_token_ids_outside_its_vocabulary():
    tower = MODELS.build(TEXT)
    with pytest.raises(ValueError, match=r'token ids must lie in \[0, 40\), got \[0, 40\]'):
        tower(torch.tensor([[0, 40]]))
    assert isinstance(tower, CausalDecoderTower)
