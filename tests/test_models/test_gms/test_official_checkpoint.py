"""The released GMS mapping-network checkpoints (``{'model': state_dict}`` of
the official ``ResAttnUNet_DS``) convert and load strictly into the paper
configs, and the converted network computes what the official one does.

The reference is a plain-torch transcription of the official blocks
(``networks/latent_mapping_model.py``, written here from its definitions and
with its parameter names): it must load the official key/shape fixture
strictly, and its outputs must match mmfusion's after conversion.
"""
import importlib.util
import json
import math
import os.path as osp
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config

from mmfusion.models.gms.official import convert_official_gms
from mmfusion.registry import MODELS, PARAM_SCHEDULERS

from tests.conftest import REPO

KEYS = osp.join(REPO, 'tests', 'data', 'gms_official_keys.json')
PAPER = osp.join(REPO, 'configs', 'gms', 'gms_sd2-vae_1xb8-1000e_busi.py')
MAKE_KEYS = osp.join(REPO, 'tools', 'model_converters', 'make_gms_official_keys.py')

pytestmark = pytest.mark.usefixtures('one_thread')


# ---- the official network, transcribed (reference only) ---------------------------------
def _gn(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(16, c, eps=1e-6, affine=True)


class RefAttention(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.norm = _gn(c)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, x):
        h = self.norm(x)
        q, k, v = self.q(h), self.k(h), self.v(h)
        b, c, hh, ww = q.shape
        q = q.reshape(b, c, hh * ww).permute(0, 2, 1)  # b, i, c
        k = k.reshape(b, c, hh * ww)  # b, c, j
        w = torch.softmax(torch.einsum('bic,bcj->bij', q, k) * c ** -0.5, dim=2)
        v = v.reshape(b, c, hh * ww)
        out = torch.einsum('bcj,bij->bci', v, w).reshape(b, c, hh, ww)
        return x + self.proj_out(out)


class RefResBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.act1, self.act2 = nn.PReLU(), nn.PReLU()  # also inside conv1/conv2
        self.conv1 = nn.Sequential(_gn(cin), self.act1, nn.Conv2d(cin, cout, 3, padding=1))
        self.conv2 = nn.Sequential(_gn(cout), self.act2, nn.Conv2d(cout, cout, 3, padding=1))
        self.skip_connection = (nn.Identity() if cin == cout else
                                nn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x):
        return self.skip_connection(x) + self.conv2(self.conv1(x))


class RefResAttBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.resblock = RefResBlock(cin, cout)
        self.attention = RefAttention(cout)

    def forward(self, x):
        return self.attention(self.resblock(x))


class RefResAttnUNetDS(nn.Module):
    def __init__(self, cin=4, cout=4, ch=32, mult=(1, 2, 4, 4)) -> None:
        super().__init__()
        m0, m1, m2, m3 = mult
        self.input_blocks = nn.Conv2d(cin, ch, 3, padding=1)
        self.conv1_0 = RefResAttBlock(ch, ch * m0)
        self.conv2_0 = RefResAttBlock(ch * m0, ch * m1)
        self.conv3_0 = RefResAttBlock(ch * m1, ch * m2)
        self.conv4_0 = RefResAttBlock(ch * m2, ch * m3)
        self.conv3_1 = RefResAttBlock(ch * (m2 + m3), ch * m2)
        self.conv2_2 = RefResAttBlock(ch * (m1 + m2), ch * m1)
        self.conv1_3 = RefResAttBlock(ch * (m0 + m1), ch * m0)
        self.conv0_4 = RefResAttBlock(ch * (1 + m0), ch)
        for name, c in (('convds3', ch * m2), ('convds2', ch * m1), ('convds1', ch * m0),
                        ('convds0', ch)):
            setattr(self, name, nn.Sequential(_gn(c), nn.SiLU(),
                                              nn.Conv2d(c, cout, 3, padding=1, bias=False)))

    def forward(self, x):
        x0 = self.input_blocks(x)
        x1 = self.conv1_0(x0)
        x2 = self.conv2_0(x1)
        x3 = self.conv3_0(x2)
        x4 = self.conv4_0(x3)
        x3_1 = self.conv3_1(torch.cat([x3, x4], 1))
        x2_2 = self.conv2_2(torch.cat([x2, x3_1], 1))
        x1_3 = self.conv1_3(torch.cat([x1, x2_2], 1))
        x0_4 = self.conv0_4(torch.cat([x0, x1_3], 1))
        return {'level3': self.convds3(x3_1), 'level2': self.convds2(x2_2),
                'level1': self.convds1(x1_3), 'out': self.convds0(x0_4)}


# ---- fixtures ---------------------------------------------------------------------------
def official_shapes() -> dict:
    return json.load(open(KEYS))


def official_state_dict(seed: int = 0) -> dict:
    """Random tensors for every official key; the two names of a PReLU slope
    share one value, as a saved ``ResBlock`` does. Scaled so that the
    attention softmax is not saturated."""
    g = torch.Generator().manual_seed(seed)
    sd = {k: torch.randn(s, generator=g) * 0.2 for k, s in official_shapes().items()}
    for key in sd:
        if '.act' in key:
            sd[key] = sd[key.replace('act1', 'conv1.1').replace('act2', 'conv2.1')]
    return sd


@pytest.fixture(scope='module')
def paper_gms():
    """The paper config's GMS at its real size (SD-2 VAE architecture, random
    weights: the VAE file is not available here)."""
    cfg = Config.fromfile(PAPER).model
    cfg.vae.pretrained = None
    return MODELS.build(cfg).eval()


# ---- tests ------------------------------------------------------------------------------
def test_fixture_is_what_the_generator_writes(tmp_path):
    out = tmp_path / 'keys.json'
    subprocess.run([sys.executable, MAKE_KEYS, str(out)], check=True, capture_output=True)
    assert json.load(open(out)) == official_shapes()


def test_reference_transcription_has_exactly_the_official_keys():
    ref = RefResAttnUNetDS()
    assert {k: list(v.shape) for k, v in ref.state_dict().items()} == official_shapes()


def test_paper_config_is_official_size(paper_gms):
    """Same parameter count as the official network (each PReLU counted once,
    as ``parameters()`` does), and the SD-2 KL-VAE at its real size."""
    official = sum(torch.Size(s).numel() for k, s in official_shapes().items()
                   if '.resblock.act' not in k)
    ours = sum(p.numel() for p in paper_gms.mapping_net.parameters())
    assert ours == official == sum(p.numel() for p in RefResAttnUNetDS().parameters())
    assert 1.4e6 < official < 1.7e6  # "~1.5M" in the paper
    assert sum(p.numel() for p in paper_gms.vae.parameters()) == 83_653_863  # SD-2 VAE
    assert paper_gms.vae.scale_factor == 0.18215
    assert set(paper_gms.mapping_net.heads) == {'level3', 'level2', 'level1', 'out'}


def test_converter_cli_writes_a_strictly_loading_checkpoint(tmp_path, paper_gms):
    src, dst = tmp_path / 'best_model.pth', tmp_path / 'gms_busi.pth'
    sd = official_state_dict()
    ref = RefResAttnUNetDS()
    ref.load_state_dict(sd, strict=True)
    # utils/tools.py::save_checkpoint: {'model': model.state_dict()} (an
    # OrderedDict with _metadata, both PReLU names)
    torch.save({'model': ref.state_dict()}, src)
    spec = importlib.util.spec_from_file_location(
        'gms_to_mmfusion', osp.join(REPO, 'tools', 'model_converters', 'gms_to_mmfusion.py'))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    cli.main([str(src), str(dst)])
    state = torch.load(dst, weights_only=True)['state_dict']
    assert all(k.startswith('mapping_net.') for k in state)
    inner = {k[len('mapping_net.'):]: v for k, v in state.items()}
    paper_gms.mapping_net.load_state_dict(inner, strict=True)
    missing, unexpected = paper_gms.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith('vae.') for k in missing)
    q = sd['conv2_2.attention.q.weight']
    assert torch.equal(paper_gms.mapping_net.dec[1].attn.qkv.weight[:q.shape[0]], q)


def test_converted_network_matches_the_official_forward(paper_gms):
    sd = official_state_dict(seed=1)
    ref = RefResAttnUNetDS().eval()
    ref.load_state_dict(sd, strict=True)
    converted, report = convert_official_gms({'model': sd}, prefix='')
    net = paper_gms.mapping_net
    net.load_state_dict(converted, strict=True)
    assert len(report.transformed) == 16 and len(report.dropped) == 16
    x = torch.randn(2, 4, 28, 28)
    with torch.no_grad():
        expected, got = ref(x), net(x)
    assert list(got) == ['level3', 'level2', 'level1', 'out']
    for level in expected:
        assert got[level].abs().mean() > 1e-2  # not a trivially small output
        torch.testing.assert_close(got[level], expected[level], atol=1e-5, rtol=1e-5)


def test_bad_checkpoints_are_refused():
    sd = official_state_dict()
    sd['conv1_0.resblock.act1.weight'] = sd['conv1_0.resblock.act1.weight'] + 1
    with pytest.raises(ValueError, match='conv1_0.resblock.act1.weight should equal'):
        convert_official_gms({'model': sd})
    sd = official_state_dict()
    del sd['conv3_0.attention.v.bias']
    with pytest.raises(KeyError, match='conv3_0.attention.v.bias'):
        convert_official_gms(sd)
    sd = official_state_dict()
    sd['extra.weight'] = torch.zeros(1)
    with pytest.raises(KeyError, match='match no conversion rule'):
        convert_official_gms(sd)


def _official_lr(epoch: int, base: float = 2e-3, warmup: int = 5, total: int = 1000) -> float:
    """utils/lr_scheduler.py's LinearWarmupCosineAnnealingLR (warm-up from 0,
    eta_min 0), in closed form per epoch."""
    if epoch < warmup:
        return base * epoch / (warmup - 1)
    return base * (1 + math.cos(math.pi * (epoch - warmup) / (total - warmup))) / 2


def test_paper_schedule_is_the_official_per_epoch_lr():
    cfg = Config.fromfile(PAPER)
    opt = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=cfg.optim_wrapper.optimizer.lr)
    schedulers = [PARAM_SCHEDULERS.build(dict(s, optimizer=opt)) for s in cfg.param_scheduler]
    for epoch in range(cfg.train_cfg.max_epochs):
        lr = opt.param_groups[0]['lr']
        assert lr == pytest.approx(_official_lr(epoch), abs=1e-8), epoch
        opt.step()
        for s in schedulers:
            s.step()
