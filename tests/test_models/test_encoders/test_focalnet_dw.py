"""X-Decoder's FocalNet (focal_dw) with the official names: the official Focal-T
key list loads strictly, the stages have the official strides and widths and
padding, a block computes the paper's focal modulation, and a real photo runs
through."""
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmfusion.models.encoders.vision import FocalNetDW
from mmfusion.registry import MODELS

from tests.conftest import DATA, REPO

KEYS = osp.join(DATA, 'focalnet_dw_focalt_keys.json')
TINY = dict(embed_dim=8, depths=(1, 1, 1, 1), focal_levels=(2, 2, 2, 2),
            focal_windows=(3, 3, 3, 3))

pytestmark = pytest.mark.usefixtures('one_thread')


def key_maker():
    path = osp.join(REPO, 'tools', 'model_converters', 'make_focalnet_dw_official_keys.py')
    spec = importlib.util.spec_from_file_location('make_focalnet_dw_official_keys', path)
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    return maker


def official_keys() -> dict:
    with open(KEYS) as f:
        return json.load(f)


def random_weights(shapes: dict, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(shape, generator=g) * 0.05 for k, shape in shapes.items()}


def shapes_of(model) -> dict:
    return {k: list(v.shape) for k, v in model.state_dict().items()}


@pytest.fixture(scope='module')
def focalt():
    torch.manual_seed(0)
    return FocalNetDW(arch='focalt', frozen=True).eval()


def test_fixture_matches_the_key_maker():
    maker = key_maker()
    assert official_keys() == maker.focalnet_dw_keys(**maker.FOCALT)


def test_official_focalt_keys_load_strictly(focalt):
    assert shapes_of(focalt) == official_keys()  # parameters and buffers, names and shapes
    weights = random_weights(official_keys())
    focalt.load_checkpoint({'backbone.' + k: v for k, v in weights.items()})
    for k, v in weights.items():
        assert torch.equal(focalt.state_dict()[k], v), k
    # a whole X-Decoder state dict: only ``backbone.*`` is read
    other = {'sem_seg_head.predictor.query_feat.weight': torch.zeros(101, 512)}
    focalt.load_checkpoint(dict(other, **{'backbone.' + k: v * 2 for k, v in weights.items()}))
    assert torch.equal(focalt.state_dict()['norm3.bias'], 2 * weights['norm3.bias'])


def test_focal_l_has_no_depthwise_convs():
    maker = key_maker()
    model = FocalNetDW(arch='focall', out_indices=(3,))
    assert shapes_of(model) == maker.focalnet_dw_keys(**maker.FOCALL, out_indices=(3,))
    assert model.patch_embed.proj.padding == (2, 2)  # the official focal.py stem
    assert FocalNetDW(arch='focalt', **TINY).patch_embed.proj.padding == (3, 3)


def test_overrides_build_the_official_layout_at_any_size():
    maker = key_maker()
    model = MODELS.build(dict(type='FocalNetDW', arch='focalt', **TINY))
    assert shapes_of(model) == maker.focalnet_dw_keys(**TINY)
    model.load_checkpoint(random_weights(maker.focalnet_dw_keys(**TINY)), prefix=None)
    assert model.channels == [8, 16, 32, 64]
    with pytest.raises(ValueError, match='focal_levels'):
        FocalNetDW(focal_levels=(3, 3))
    with pytest.raises(ValueError, match='block'):
        FocalNetDW(block='focal_v2', **TINY)


@pytest.mark.parametrize('size', [(224, 224), (70, 90)])
def test_stages_have_official_strides_and_widths(focalt, size):
    with torch.no_grad():
        maps = focalt(torch.randn(1, 3, *size))['maps']
    assert [m.shape[1] for m in maps] == [96, 192, 384, 768] == focalt.channels
    assert focalt.strides == [4, 8, 16, 32]
    # inputs are zero-padded to the stride at each embedding: ceil divisions
    h, w = size
    expect = []
    for _ in range(4):
        h, w = -(-h // (4 if not expect else 2)), -(-w // (4 if not expect else 2))
        expect.append((h, w))
    assert [tuple(m.shape[-2:]) for m in maps] == expect


def test_padding_is_zeros_on_the_right_and_bottom(focalt):
    """The official PatchEmbed pads (0, pad) on W and H before the stem
    conv, so a 70 x 90 image equals its zero-extension to 72 x 92."""
    img = torch.randn(1, 3, 70, 90)
    with torch.no_grad():
        ragged = focalt(img)['maps']
        padded = focalt(F.pad(img, (0, 2, 0, 2)))['maps']
        shifted = focalt(F.pad(img, (1, 1, 1, 1)))['maps']
    for a, b in zip(ragged, padded):
        torch.testing.assert_close(a, b)
    assert not torch.allclose(ragged[0], shifted[0], atol=1e-3)


def test_real_photo_runs_on_cpu(focalt):
    from skimage import data
    img = torch.from_numpy(np.ascontiguousarray(data.astronaut())).permute(2, 0, 1).float()
    img = (img - 127.5) / 64.0
    with torch.no_grad():
        maps = focalt(img[None])['maps']
    assert [tuple(m.shape[-2:]) for m in maps] == [(128, 128), (64, 64), (32, 32), (16, 16)]
    assert all(torch.isfinite(m).all() for m in maps)


def test_focal_modulation_matches_the_paper_definition():
    """One modulation by hand with torch ops, in float64: q, context and
    L + 1 gates from one linear map; L depthwise GELU convs of kernel
    2 k + window applied in sequence, each level gated; the gated global
    context (GELU of the mean of the last level); the sum over L + 1;
    h (1 x 1 conv) of it multiplies q; proj."""
    torch.manual_seed(0)
    mod = FocalNetDW(arch='focalt', **TINY).layers[1].blocks[0].modulation.double()
    c, levels = 16, 2
    x = torch.randn(2, 5, 6, c, dtype=torch.float64)
    q, ctx, gates = F.linear(x, mod.f.weight, mod.f.bias).split((c, c, levels + 1), dim=-1)
    ctx, gates = ctx.permute(0, 3, 1, 2), gates.permute(0, 3, 1, 2)
    total = torch.zeros_like(ctx)
    for k in range(levels):
        kernel = 2 * k + 3
        weight = mod.focal_layers[k][0].weight
        assert weight.shape == (c, 1, kernel, kernel) and mod.focal_layers[k][0].bias is None
        ctx = F.gelu(F.conv2d(ctx, weight, padding=kernel // 2, groups=c))
        total = total + ctx * gates[:, k:k + 1]
    total = total + F.gelu(ctx.mean((2, 3), keepdim=True)) * gates[:, levels:]
    modulator = F.conv2d(total / (levels + 1), mod.h.weight, mod.h.bias).permute(0, 2, 3, 1)
    expected = F.linear(q * modulator, mod.proj.weight, mod.proj.bias)
    torch.testing.assert_close(mod(x), expected, rtol=0, atol=1e-6)


def dw(conv, t):
    c = t.shape[-1]
    return t + F.conv2d(t.permute(0, 3, 1, 2), conv.weight, conv.bias, padding=1,
                        groups=c).permute(0, 2, 3, 1)


def test_focal_dw_block_is_post_ln_with_layer_scale():
    """focal_dw: x + dw1(x); norm1(x + g1 FM(x)); x + dw2(x); norm2(x + g2 MLP(x))."""
    torch.manual_seed(0)
    blk = FocalNetDW(arch='focalt', **TINY).layers[0].blocks[0]
    assert torch.equal(blk.gamma_1, torch.full((8,), 1e-4))  # the official layerscale_value
    blk.double()
    for p in (blk.gamma_1, blk.gamma_2):
        p.data.normal_()
    x = torch.randn(1, 4, 4, 8, dtype=torch.float64)
    y = dw(blk.dw1, x)
    y = blk.norm1(y + blk.gamma_1 * blk.modulation(y))
    y = dw(blk.dw2, y)
    y = blk.norm2(y + blk.gamma_2 * blk.mlp.fc2(F.gelu(blk.mlp.fc1(y))))
    torch.testing.assert_close(blk(x), y, rtol=0, atol=1e-6)


def test_focal_block_normalises_inside_the_residual():
    """focal (Focal-L): x + g1 norm1(FM(x)); x + g2 norm2(MLP(x))."""
    torch.manual_seed(0)
    blk = FocalNetDW(arch='focall', **TINY).layers[0].blocks[0].double()
    assert not hasattr(blk, 'dw1') and not hasattr(blk, 'dw2')
    for p in (blk.gamma_1, blk.gamma_2):
        p.data.normal_()
    x = torch.randn(1, 4, 4, 8, dtype=torch.float64)
    y = x + blk.gamma_1 * blk.norm1(blk.modulation(x))
    y = y + blk.gamma_2 * blk.norm2(blk.mlp.fc2(F.gelu(blk.mlp.fc1(y))))
    torch.testing.assert_close(blk(x), y, rtol=0, atol=1e-6)


def test_gradients_reach_every_parameter_unless_frozen():
    torch.manual_seed(0)
    model = FocalNetDW(arch='focalt', frozen=False, drop_path_rate=0.0).train()
    sum(m.square().mean() for m in model(torch.randn(1, 3, 64, 64))['maps']).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    frozen = FocalNetDW(arch='focalt', frozen=True)
    assert not any(p.requires_grad for p in frozen.parameters())
    frozen.train()
    assert not frozen.training


def test_drop_path_rises_linearly_to_the_rate():
    model = FocalNetDW(arch='focalt', frozen=False, drop_path_rate=0.3)
    rates = [getattr(b.drop_path, 'drop_prob', 0.0)
             for stage in model.layers for b in stage.blocks]
    np.testing.assert_allclose(rates, np.linspace(0, 0.3, 12), rtol=1e-6)


def test_wrong_checkpoint_names_the_keys(tmp_path):
    weights = random_weights(official_keys())
    weights['layers.0.blocks.0.extra'] = weights.pop('layers.0.blocks.0.gamma_1')
    path = tmp_path / 'bad.pth'
    torch.save(weights, path)
    with pytest.raises(RuntimeError, match=r'(?s)gamma_1.*extra|extra.*gamma_1'):
        FocalNetDW(arch='focalt', checkpoint=str(path))
    with pytest.raises(RuntimeError, match='modulation.f'):  # Focal-L weights into Focal-T
        FocalNetDW(arch='focalt', **dict(TINY, focal_levels=(3, 3, 3, 3)),
                   checkpoint=random_weights(key_maker().focalnet_dw_keys(**TINY)))
    with pytest.raises(ValueError, match='arch'):
        FocalNetDW(arch='focal-huge')


def test_activation_checkpointing_gives_the_same_gradients():
    grads = []
    for with_cp in (False, True):
        torch.manual_seed(0)
        model = FocalNetDW(arch='focalt', frozen=False, drop_path_rate=0.0,
                           with_cp=with_cp).train()
        sum(m.sum() for m in model(torch.randn(1, 3, 32, 32))['maps']).backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-5, atol=1e-6)
