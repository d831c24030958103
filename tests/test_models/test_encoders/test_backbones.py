"""Backbones: timm through TimmBackbone, mmdet through the registry scope."""
import pytest
import torch

from mmfusion.models.encoders.vision import TimmBackbone
from mmfusion.registry import MODELS

timm = pytest.importorskip('timm')

OUT = (1, 2, 3)


@pytest.fixture(scope='module')
def resnet_ckpt(tmp_path_factory):
    """A random timm 'test_resnet' (classifier included) saved in timm's format."""
    torch.manual_seed(0)
    model = timm.create_model('test_resnet')
    with torch.no_grad():  # non-trivial BN statistics, so loading them matters
        for name, buf in model.named_buffers():
            if name.endswith('running_mean'):
                buf.normal_(0, 0.1)
            elif name.endswith('running_var'):
                buf.uniform_(0.5, 1.5)
    path = str(tmp_path_factory.mktemp('timm') / 'test_resnet.pth')
    torch.save(model.state_dict(), path)
    return model.state_dict(), path


def test_timm_matches_features_only(resnet_ckpt):
    state_dict, path = resnet_ckpt
    enc = MODELS.build(dict(type='TimmBackbone', model_name='test_resnet', out_indices=OUT,
                            checkpoint=path))
    ref = timm.create_model('test_resnet', features_only=True, out_indices=OUT).eval()
    # The feature model keeps the trunk's names; it drops the classifier and the
    # stages past the last out index.
    ref.load_state_dict({k: state_dict[k] for k in ref.state_dict()})
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        maps = enc(x)['maps']
        expected = ref(x)
        random_init = TimmBackbone('test_resnet', out_indices=OUT)(x)['maps']
    assert len(maps) == len(expected) == 3
    for m, e, r in zip(maps, expected, random_init):
        assert m.shape == e.shape
        assert (m - e).abs().max().item() <= 1e-6
        assert not torch.allclose(m, r)  # the checkpoint was really used
    assert enc.channels == [m.shape[1] for m in maps] == ref.feature_info.channels()
    assert enc.strides == [96 // m.shape[-1] for m in maps]
    assert not any(p.requires_grad for p in enc.parameters())  # frozen by default


def test_timm_vit_and_trainable():
    enc = TimmBackbone('test_vit', out_indices=(1, 2), frozen=False)
    maps = enc(torch.randn(1, 3, 160, 160))['maps']
    assert [tuple(m.shape) for m in maps] == [(1, enc.channels[i], 10, 10) for i in range(2)]
    assert all(p.requires_grad for p in enc.parameters())


def test_timm_errors(resnet_ckpt, tmp_path):
    _, path = resnet_ckpt
    with pytest.raises(RuntimeError, match='test_resnet.pth.*test_efficientnet'):
        TimmBackbone('test_efficientnet', checkpoint=path)
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        TimmBackbone('test_resnet', checkpoint=str(tmp_path / 'nope.pth'))
    with pytest.raises(ValueError, match="no model 'resnet_typo'"):
        TimmBackbone('resnet_typo')


def test_mmdet_resnet18_by_scope():
    model = MODELS.build(dict(type='mmdet.ResNet', depth=18))
    assert type(model).__module__.startswith('mmdet.')
    model.eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, 64, 16, 16), (1, 128, 8, 8),
                                              (1, 256, 4, 4), (1, 512, 2, 2)]
