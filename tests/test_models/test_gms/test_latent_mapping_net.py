import pytest
import torch

from mmfusion.models import LatentMappingNet


def test_paper_setting_size_and_deep_supervision_shapes():
    net = LatentMappingNet()  # channels 32, multipliers 1/2/4/4
    n_params = sum(p.numel() for p in net.parameters())
    assert 1.2e6 < n_params < 2.0e6, n_params  # the paper reports ~1.5M
    out = net(torch.randn(2, 4, 28, 28))
    assert list(out) == ['level3', 'level2', 'level1', 'out']
    assert all(v.shape == (2, 4, 28, 28) for v in out.values())  # no spatial downsampling


def test_attention_is_global():
    """Changing one corner of the input changes the output at the far corner
    of the first block, which 3x3 convs alone could not reach in one block."""
    torch.manual_seed(0)
    net = LatentMappingNet(base_channels=16, num_groups=4).eval()
    x = torch.randn(1, 4, 16, 16)
    y = x.clone()
    y[..., 0, 0] += 5
    stem = net.stem
    block = net.enc[0]
    with torch.no_grad():
        a, b = block(stem(x)), block(stem(y))
    assert (a[..., -1, -1] - b[..., -1, -1]).abs().max() > 1e-6


def test_out_levels_select_heads():
    net = LatentMappingNet(base_channels=8, num_groups=4, out_levels=('level1', 'out'))
    assert list(net(torch.randn(1, 4, 8, 8))) == ['level1', 'out']
    with pytest.raises(ValueError, match='must include "out"'):
        LatentMappingNet(out_levels=('level1',))


def test_fused_qkv_is_initialised_as_three_official_convs():
    """Each third of the fused qkv conv gets Kaiming fan-out C, as the official
    separate q/k/v convs (C x C) do; the same-shaped proj_out is the reference."""
    torch.manual_seed(0)
    net = LatentMappingNet()
    net.init_weights()
    for block in (net.enc[2], net.dec[0]):  # C = 128
        ref = block.attn.proj_out.weight.std()
        for part in block.attn.qkv.weight.chunk(3):
            assert abs(part.std() / ref - 1) < 0.05
        assert (block.attn.qkv.bias == 0).all()
