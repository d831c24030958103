"""X-Decoder's FocalNet (focal_dw) with the official names: the official Focal-T
key list loads strictly, the stages have the official strides and widths, a
block computes the paper's focal modulation, and a real photo runs through."""
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmfusion.models.encoders.vision import FocalNetDW
from tests.conftest import DATA, REPO

KEYS = osp.join(DATA, 'focalnet_dw_focalt_keys.json')

pytestmark = pytest.mark.usefixtures('one_thread')


def official_keys() -> dict:
    with open(KEYS) as f:
        return json.load(f)


def random_official(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(shape, generator=g) * 0.05 for k, shape in official_keys().items()}


@pytest.fixture(scope='module')
def focalt():
    torch.manual_seed(0)
    return FocalNetDW(arch='focalt', frozen=True).eval()


def test_fixture_matches_the_key_maker():
    path = osp.join(REPO, 'tools', 'model_converters', 'make_focalnet_dw_official_keys.py')
    spec = importlib.util.spec_from_file_location('make_focalnet_dw_official_keys', path)
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    assert official_keys() == maker.focalnet_dw_keys(**maker.FOCALT)


def test_official_focalt_keys_load_strictly(focalt):
    own = {k: list(v.shape) for k, v in focalt.state_dict().items()}
    assert own == official_keys()
    weights = random_official()
    focalt.load_checkpoint({'backbone.' + k: v for k, v in weights.items()})
    for k, v in weights.items():
        assert torch.equal(focalt.state_dict()[k], v), k


def test_focal_l_has_no_depthwise_convs():
    spec = importlib.util.spec_from_file_location(
        'maker', osp.join(REPO, 'tools', 'model_converters',
                          'make_focalnet_dw_official_keys.py'))
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    model = FocalNetDW(arch='focall', out_indices=(3,))
    expected = {k: v for k, v in maker.focalnet_dw_keys(**maker.FOCALL).items()
                if not k.startswith(('norm0', 'norm1', 'norm2'))}
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == expected
    assert model.patch_embed.proj.padding == (2, 2)  # the official focal.py stem


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


def test_real_photo_runs_on_cpu(focalt):
    from skimage import data
    img = torch.from_numpy(np.ascontiguousarray(data.astronaut())).permute(2, 0, 1).float()
    img = (img - 127.5) / 64.0
    with torch.no_grad():
        maps = focalt(img[None])['maps']
    assert [tuple(m.shape[-2:]) for m in maps] == [(128, 128), (64, 64), (32, 32), (16, 16)]
    assert all(torch.isfinite(m).all() for m in maps)


def test_focal_modulation_matches_the_paper_definition():
    """One block's modulation by hand: gates and context from f, L
    depthwise GELU convs, the global context, scaled by 1 / (L + 1), h, q."""
    torch.manual_seed(0)
    model = FocalNetDW(arch='focalt', out_indices=(0,))
    mod = model.layers[0].blocks[0].modulation
    x = torch.randn(2, 5, 6, 96)
    q, ctx, gates = (mod.f(x)).split((96, 96, 4), dim=-1)
    ctx = ctx.permute(0, 3, 1, 2)
    gates = gates.permute(0, 3, 1, 2)
    total = torch.zeros_like(ctx)
    for k, kernel in enumerate((3, 5, 7)):
        conv = mod.focal_layers[k][0]
        assert conv.kernel_size == (kernel, kernel) and conv.groups == 96
        ctx = F.gelu(F.conv2d(ctx, conv.weight, padding=kernel // 2, groups=96))
        total = total + ctx * gates[:, k:k + 1]
    total = total + F.gelu(ctx.mean((2, 3), keepdim=True)) * gates[:, 3:]
    modulator = F.conv2d(total / 4, mod.h.weight, mod.h.bias)
    expected = mod.proj(q * modulator.permute(0, 2, 3, 1))
    torch.testing.assert_close(mod(x), expected, rtol=1e-5, atol=1e-5)


def test_post_ln_block_by_hand():
    torch.manual_seed(0)
    blk = FocalNetDW(arch='focalt', out_indices=(0,)).layers[0].blocks[0]
    x = torch.randn(1, 4, 4, 96)

    def dw(conv, t):
        return t + F.conv2d(t.permute(0, 3, 1, 2), conv.weight, conv.bias, padding=1,
                            groups=96).permute(0, 2, 3, 1)

    y = dw(blk.dw1, x)
    y = blk.norm1(y + blk.gamma_1 * blk.modulation(y))
    y = dw(blk.dw2, y)
    y = blk.norm2(y + blk.gamma_2 * blk.mlp.fc2(F.gelu(blk.mlp.fc1(y))))
    torch.testing.assert_close(blk(x), y)


def test_gradients_reach_every_parameter_unless_frozen():
    torch.manual_seed(0)
    model = FocalNetDW(arch='focalt', frozen=False, drop_path_rate=0.0).train()
    sum(m.square().mean() for m in model(torch.randn(1, 3, 64, 64))['maps']).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    frozen = FocalNetDW(arch='focalt', frozen=True)
    assert not any(p.requires_grad for p in frozen.parameters())


def test_wrong_checkpoint_names_the_keys(tmp_path):
    weights = random_official()
    weights['layers.0.blocks.0.extra'] = weights.pop('layers.0.blocks.0.gamma_1')
    path = tmp_path / 'bad.pth'
    torch.save(weights, path)
    with pytest.raises(RuntimeError, match=r'gamma_1.*|extra'):
        FocalNetDW(arch='focalt', checkpoint=str(path))
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
