"""Official checkpoint layouts (tests/data/mmmamba_official_keys.json, written
from hustvl/mmMamba's modules by tools/model_converters/
make_mmmamba_official_keys.py): the HoVLE / InternLM2 teacher loads into the
teacher's blocks, released mmMamba students convert into Mamba2Mixer layers,
strictly, and compute what the official modules compute (references written
here from the official forward passes)."""
import importlib.util
import json
import math
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from mmfusion.models.mmmamba import MultimodalCausalLM, split_internlm2_wqkv

from tests.conftest import REPO

pytestmark = pytest.mark.usefixtures('one_thread')

with open(osp.join(REPO, 'tests', 'data', 'mmmamba_official_keys.json')) as f:
    LAYOUTS = json.load(f)
VOCAB = Config.fromfile(osp.join(REPO, 'configs/_base_/models/mmmamba_tiny.py')).caption_vocab
TINY = LAYOUTS['sizes']['tiny']
P = 'language_model.model.layers.'


def _tool():
    path = osp.join(REPO, 'tools', 'model_converters', 'mmmamba_to_mmfusion.py')
    spec = importlib.util.spec_from_file_location('mmmamba_to_mmfusion', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _model(sizes, vocab=VOCAB, device=None, **kw):
    torch.manual_seed(0)
    with torch.device(device or 'cpu'):
        return MultimodalCausalLM(
            tokenizer=dict(type='WordTokenizer', vocab=vocab), img_size=32, patch_size=8,
            dim=sizes['dim'], depth=sizes['depth'], num_heads=sizes['heads'],
            num_kv_heads=sizes['kv_heads'], ffn_dim=sizes['ffn'], max_len=64,
            mamba=dict(chunk_size=8), **kw).eval()


def _random_state(layout, seed=0):
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in LAYOUTS[layout].items():
        fan_in = shape[-1] if len(shape) > 1 else 1
        state[key] = torch.randn(shape, generator=g) / math.sqrt(fan_in)
        if key.endswith(('dt_bias', 'A_log_bias')):
            state[key] = torch.rand(shape, generator=g) - 0.5
    return state


# -- InternLM2 teacher ------------------------------------------------------------------
def test_wqkv_split_follows_internlm2_grouping():
    heads, kv_heads, d, dim = 6, 2, 3, 5
    wqkv = torch.randn((heads + 2 * kv_heads) * d, dim)
    q, k, v = split_internlm2_wqkv(wqkv, heads, kv_heads)
    # By hand: rows come in blocks of (heads / kv_heads + 2) * d per kv head,
    # the group's query heads first, then its key head, then its value head.
    groups = heads // kv_heads
    for h in range(heads):
        block = (h // groups) * (groups + 2) * d
        row = block + (h % groups) * d
        assert torch.equal(q[h * d:(h + 1) * d], wqkv[row:row + d])
    for g in range(kv_heads):
        block = g * (groups + 2) * d
        k_row, v_row = block + groups * d, block + (groups + 1) * d
        assert torch.equal(k[g * d:(g + 1) * d], wqkv[k_row:k_row + d])
        assert torch.equal(v[g * d:(g + 1) * d], wqkv[v_row:v_row + d])
    with pytest.raises(ValueError, match='rows'):
        split_internlm2_wqkv(wqkv[:-1], heads, kv_heads)


def _internlm2_attention(x, wqkv, wo, heads, kv_heads):
    """InternLM2Attention.forward (hovle/modeling_internlm2.py), eager path."""
    b, length, dim = x.shape
    d = dim // heads
    groups = heads // kv_heads
    qkv = (x @ wqkv.t()).view(b, length, kv_heads, groups + 2, d)
    q = qkv[..., :groups, :].reshape(b, length, heads, d).transpose(1, 2)
    k = qkv[..., -2, :].transpose(1, 2)
    v = qkv[..., -1, :].transpose(1, 2)
    inv_freq = 1.0 / (10000 ** (torch.arange(0, d, 2).float() / d))
    freqs = torch.outer(torch.arange(length).float(), inv_freq)
    emb = torch.cat([freqs, freqs], -1)

    def rotate_half(t):
        return torch.cat([-t[..., d // 2:], t[..., :d // 2]], -1)
    q = q * emb.cos() + rotate_half(q) * emb.sin()
    k = k * emb.cos() + rotate_half(k) * emb.sin()
    k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
    scores = q @ k.transpose(2, 3) / math.sqrt(d)
    scores = scores.masked_fill(torch.ones(length, length).triu(1).bool(), -torch.inf)
    out = scores.softmax(-1) @ v
    return out.transpose(1, 2).reshape(b, length, dim) @ wo.t()


def test_hovle_teacher_loads_strictly_and_computes_internlm2_blocks():
    state = _random_state('tiny_hovle_lm')
    teacher = _model(TINY)
    patch_before = teacher.patch_embed.pos_embed.clone()
    kept = teacher.load_official(state, 'hovle.pth', prefix='language_model.')
    assert kept and all(k.startswith('patch_embed.') for k in kept)
    assert torch.equal(teacher.patch_embed.pos_embed, patch_before)
    lm = 'language_model.model.'
    assert torch.equal(teacher.embedding.weight, state[lm + 'tok_embeddings.weight'])
    assert torch.equal(teacher.head.weight, state['language_model.output.weight'])
    assert torch.equal(teacher.norm.weight, state[lm + 'norm.weight'])
    for i, layer in enumerate(teacher.layers):
        p = f'{P}{i}.'
        assert torch.equal(layer.ffn.gate.weight, state[p + 'feed_forward.w1.weight'])
        assert torch.equal(layer.ffn.up.weight, state[p + 'feed_forward.w3.weight'])
        assert torch.equal(layer.ffn.down.weight, state[p + 'feed_forward.w2.weight'])
        assert torch.equal(layer.attn_norm.weight, state[p + 'attention_norm.weight'])
        assert torch.equal(layer.ffn_norm.weight, state[p + 'ffn_norm.weight'])
        x = torch.randn(2, 11, TINY['dim'])
        want = _internlm2_attention(x, state[p + 'attention.wqkv.weight'],
                                    state[p + 'attention.wo.weight'], TINY['heads'],
                                    TINY['kv_heads'])
        with torch.no_grad():
            got = layer.attn(x, teacher.rope)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_official_loading_errors_name_the_keys():
    state = _random_state('tiny_hovle_lm')
    teacher = _model(TINY)
    missing = {k: v for k, v in state.items() if 'layers.1.ffn_norm' not in k}
    with pytest.raises(RuntimeError, match=r'hovle\.pth.*layers\.1\.ffn_norm'):
        teacher.load_official(missing, 'hovle.pth', prefix='language_model.')
    extra = {**state, P + '0.attention.mystery.weight': torch.zeros(1)}
    with pytest.raises(KeyError, match='mystery'):
        teacher.load_official(extra, 'hovle.pth', prefix='language_model.')
    biased = {**state, P + '0.attention.wqkv.bias': torch.zeros(1)}
    with pytest.raises(ValueError, match='bias'):
        teacher.load_official(biased, 'hovle.pth', prefix='language_model.')
    with pytest.raises(KeyError, match='vision_model'):
        teacher.load_official(state, 'hovle.pth', prefix='vision_model.')
    student = _model(TINY, mixer='mamba2')
    released = _random_state('tiny_mmmamba_linear')
    released.pop(P + '2.attention.o_proj.weight')
    with pytest.raises(KeyError, match=r'mmMamba\.pth.*layers\.2\.attention\.o_proj'):
        student.load_official(released, 'mmMamba.pth', prefix='language_model.')


def test_mixer_seeded_from_internlm2_attention_is_gated_linear_attention():
    """W_Q -> C, W_K -> B, W_V -> x, W_O kept, from a fused wqkv: with A = 0 and
    dt = 1 the seeded mixer is causal linear attention over the SiLU features,
    gated and normalised (written out here from the hand-split wqkv)."""
    state = _random_state('tiny_hovle_lm')
    teacher = _model(TINY)
    teacher.load_official(state, 'hovle.pth', prefix='language_model.')
    student = _model(TINY, mixer='mamba2')
    student.seed_from(teacher)
    mixer = student.layers[1].ssm
    with torch.no_grad():
        mixer.A_log.fill_(-math.inf)  # A = 0
        mixer.dt_bias.fill_(math.log(math.e - 1))  # softplus(0 + bias) = 1
    heads, kv_heads, dim = TINY['heads'], TINY['kv_heads'], TINY['dim']
    d, groups = dim // heads, heads // kv_heads
    wqkv = state[P + '1.attention.wqkv.weight']
    block = (groups + 2) * d
    wq = torch.cat([wqkv[(h // groups) * block + (h % groups) * d:][:d] for h in range(heads)])
    wk = torch.cat([wqkv[g * block + groups * d:][:d] for g in range(kv_heads)])
    wv = torch.cat([wqkv[g * block + (groups + 1) * d:][:d] for g in range(kv_heads)])
    u = torch.randn(2, 9, dim)
    q = F.silu(u @ wq.t()).view(2, 9, heads, d)
    k = F.silu(u @ wk.t()).view(2, 9, kv_heads, d).repeat_interleave(groups, 2)
    v = F.silu(u @ wv.t()).view(2, 9, kv_heads, d).repeat_interleave(groups, 2)
    y = torch.einsum('bhls,bshp->blhp', torch.einsum('blhn,bshn->bhls', q, k).tril(), v)
    y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + 1e-5)
    gated = y * F.silu(u @ mixer.g_proj.weight.t()).view(2, 9, heads, d)
    want = gated.reshape(2, 9, dim) @ state[P + '1.attention.wo.weight'].t()
    with torch.no_grad():
        torch.testing.assert_close(mixer(u), want, atol=1e-5, rtol=1e-4)


# -- released mmMamba students --------------------------------------------------------------
def _official_mamba2(u, sd, p, heads, kv_heads, eps=1e-5):
    """Mamba2_Attention.forward after change_weight (src/model/linear_attention/
    mamba2.py, use_conv / use_gnorm / use_A, no D): fused projections, causal
    depthwise conv over [v, k, q] + SiLU, the SSM step by step, the gated
    RMSNorm (FusedRMSNormSwishGate), o_proj."""
    b, length, dim = u.shape
    d = dim // heads
    q_rows, kv_rows, groups = heads * d, kv_heads * d, heads // kv_heads
    v, k, q, g, dt = (u @ sd[p + 'wvkqgdt.weight'].t()).split(
        [kv_rows, kv_rows, q_rows, q_rows, heads], -1)
    vkq = torch.cat([v, k, q], -1).transpose(1, 2)
    w = sd[p + 'conv1d.weight']
    conv = F.conv1d(F.pad(vkq, (1, 0)), w, sd[p + 'conv1d.bias'], groups=w.shape[0])
    v, k, q = F.silu(conv).transpose(1, 2).split([kv_rows, kv_rows, q_rows], -1)
    x = v.reshape(b, length, kv_heads, d).repeat_interleave(groups, 2)
    B = k.reshape(b, length, kv_heads, d).repeat_interleave(groups, 2)
    C = q.reshape(b, length, heads, d)
    dt = F.softplus(dt + sd[p + 'dt_bias'])
    A = -torch.exp(sd[p + 'A_log_bias'])
    state = torch.zeros(b, heads, d, d)
    ys = []
    for t in range(length):
        state = (torch.exp(dt[:, t] * A)[..., None, None] * state
                 + dt[:, t, :, None, None] * x[:, t, :, :, None] * B[:, t, :, None, :])
        ys.append(torch.einsum('bhpn,bhn->bhp', state, C[:, t]))
    y = torch.stack(ys, 1)
    y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + eps) * sd[p + 'g_norm_swish_gate.weight']
    y = y * F.silu(g.view(b, length, heads, d))
    return y.reshape(b, length, dim) @ sd[p + 'o_proj.weight'].t()


@pytest.mark.parametrize('layout,student', [('tiny_mmmamba_linear', dict(mixer='mamba2')),
                                            ('tiny_mmmamba_hybrid',
                                             dict(mixer='mamba2', attention_every=2))])
def test_released_student_converts_strictly_and_computes_the_official_mixer(layout, student):
    state = _random_state(layout)
    converted, report = _tool().convert_official_mmmamba(state, 'mmMamba.safetensors')
    assert not report.dropped
    model = _model(TINY, **student)
    kept = model.load_official(state, 'mmMamba.safetensors', prefix='language_model.')
    assert kept and all(k.startswith('patch_embed.') for k in kept)
    own = model.state_dict()
    assert set(converted) == {k for k in own if not k.startswith('patch_embed.')}
    for i, layer in enumerate(model.layers):
        u = torch.randn(2, 13, TINY['dim'])
        p = f'{P}{i}.attention.'
        with torch.no_grad():
            got = layer.mixer(u, model.rope)
        if i in model.mamba_layers:
            want = _official_mamba2(u, state, p, TINY['heads'], TINY['kv_heads'])
        else:
            want = _internlm2_attention(u, state[p + 'wqkv.weight'], state[p + 'wo.weight'],
                                        TINY['heads'], TINY['kv_heads'])
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    assert model.mamba_layers == ([1, 3] if 'hybrid' in layout else [0, 1, 2, 3])


def test_unfused_distillation_state_equals_the_fused_release():
    """change_weight fuses [v, k, q, g, dt] into wvkqgdt: both layouts load to
    the same mixer."""
    unfused = _random_state('tiny_mmmamba_linear_unfused')
    fused = {}
    for key, value in unfused.items():
        if key.endswith('attention.q_proj.weight'):
            p = key[:-len('q_proj.weight')]
            fused[p + 'wvkqgdt.weight'] = torch.cat(
                [unfused[p + n + '.weight'] for n in ('v_proj', 'k_proj', 'q_proj', 'g_proj',
                                                      'in_proj')])
        elif key.endswith('attention.g_norm.weight'):
            fused[key.replace('g_norm', 'g_norm_swish_gate')] = value
        elif not key.endswith(('k_proj.weight', 'v_proj.weight', 'g_proj.weight',
                               'in_proj.weight')):
            fused[key] = value
    assert {k: list(v.shape) for k, v in fused.items()}.keys() == \
        LAYOUTS['tiny_mmmamba_linear'].keys()
    a = _tool().convert_official_mmmamba(unfused)[0]
    b = _tool().convert_official_mmmamba(fused)[0]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize('layout,student', [
    ('hovle_lm', dict()), ('mmmamba_linear', dict(mixer='mamba2')),
    ('mmmamba_linear_unfused', dict(mixer='mamba2')),
    ('mmmamba_hybrid', dict(mixer='mamba2', attention_every=4))])
def test_official_sizes_map_onto_our_model(layout, student):
    """At HoVLE-2.6B's LLM sizes (on the meta device: shapes only)."""
    sizes = LAYOUTS['sizes']['official']
    vocab = [f'w{i}' for i in range(sizes['vocab'] - len(VOCAB) - 4)] + VOCAB
    model = _model(sizes, vocab=vocab, device='meta', **student)
    state = {k: torch.empty(s, device='meta') for k, s in LAYOUTS[layout].items()}
    mixer = model.layers[1].mixer
    converted, _ = _tool().convert_official_lm(state, mixer.num_heads, mixer.num_kv_heads,
                                               'language_model.')
    own = {k: list(v.shape) for k, v in model.state_dict().items()
           if not k.startswith('patch_embed.')}
    assert {k: list(v.shape) for k, v in converted.items()} == own


def test_converter_writes_a_checkpoint_the_student_loads(tmp_path):
    state = _random_state('tiny_mmmamba_hybrid')
    src, dst = tmp_path / 'mmMamba-hybrid.pth', tmp_path / 'student.pth'
    torch.save(dict(model=state), src)
    _tool().main([str(src), str(dst)])
    written = torch.load(dst, weights_only=True)['state_dict']
    model = _model(TINY, mixer='mamba2', attention_every=2)
    missing, unexpected = model.load_state_dict(written, strict=False)
    assert not unexpected and missing and all(k.startswith('patch_embed.') for k in missing)
    with pytest.raises(KeyError, match='no Mamba-2 layer'):
        _tool().convert_official_mmmamba(_random_state('tiny_hovle_lm'))
