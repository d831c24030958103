"""The one freezing mechanism of every encoder (``BaseEncoder``), on a toy encoder
and inside a real training run."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from torch import nn

from mmfusion.models.encoders import BaseEncoder
from mmfusion.registry import MODELS

from tests.conftest import REPO


@MODELS.register_module(force=True)
class ToyImageEncoder(BaseEncoder):
    """Conv + BatchNorm + dropout + a linear 'attention' projection."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.norm = nn.BatchNorm2d(8)
        self.drop = nn.Dropout(0.5)
        self.blocks = nn.ModuleList([nn.Linear(8, 8) for _ in range(2)])
        self.proj = nn.Linear(8, 16)
        self._apply_freeze()

    def forward(self, img: torch.Tensor) -> dict:
        x = self.drop(self.norm(self.stem(img))).mean((2, 3))
        for block in self.blocks:
            x = x + block(x)
        return dict(pooled=self.proj(x), maps=[x])


def test_frozen_no_grad_and_eval_mode():
    enc = ToyImageEncoder()
    assert not any(p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.training and not enc.norm.training and not enc.drop.training
    img = torch.randn(2, 3, 8, 8, requires_grad=True)
    enc(img)['pooled'].sum().backward()
    assert all(p.grad is None for p in enc.parameters())
    assert img.grad is not None  # gradients still flow through to the inputs


def test_trainable_modules_follow_train_mode():
    enc = ToyImageEncoder(trainable_modules=[r'blocks\.1'])
    trainable = {n for n, p in enc.named_parameters() if p.requires_grad}
    assert trainable == {'blocks.1.weight', 'blocks.1.bias'}
    enc.train()
    assert enc.blocks[1].training and not enc.norm.training
    with pytest.raises(ValueError, match='no submodule name matches'):
        ToyImageEncoder(trainable_modules=['decoder'])


def test_lora_only_adapters_trainable():
    enc = ToyImageEncoder(lora=dict(target_modules=['proj'], r=2, alpha=4))
    trainable = {n for n, p in enc.named_parameters() if p.requires_grad}
    assert trainable and all('lora_' in n for n in trainable)
    img = torch.randn(2, 3, 8, 8)
    base = ToyImageEncoder()
    base.load_state_dict({k.replace('base_layer.', ''): v for k, v in enc.state_dict().items()
                          if 'lora_' not in k})
    # LoRA's B starts at zero, so the adapted encoder starts equal to the base.
    torch.testing.assert_close(enc(img)['pooled'], base(img)['pooled'], atol=0, rtol=0)
    with pytest.raises(ValueError, match='LoRA target_modules'):
        ToyImageEncoder(lora=dict(target_modules=['qkv']))


def test_frozen_dtype_casts_once_and_returns_float32():
    enc = ToyImageEncoder(frozen_dtype='bf16')
    assert all(p.dtype == torch.bfloat16 for p in enc.parameters())
    img = torch.randn(2, 3, 8, 8)
    out = enc(img)
    assert out['pooled'].dtype == torch.float32 and out['maps'][0].dtype == torch.float32
    ref = ToyImageEncoder()
    ref.load_state_dict({k: v.float() for k, v in enc.state_dict().items()})
    torch.testing.assert_close(out['pooled'], ref(img)['pooled'], atol=0.05, rtol=0.05)
    with pytest.raises(ValueError, match='frozen_dtype'):
        ToyImageEncoder(frozen_dtype='bf16', lora=dict(target_modules=['proj']))


def probe_cfg(root: str, work_dir: str, encoder: dict, max_iters: int = 3) -> Config:
    """The linear-probe config on a generated SynthShapes, with a toy encoder."""
    cfg = Config.fromfile(f'{REPO}/configs/clip/linear-probe_clip-vit-tiny_1xb64-2e_synthshapes.py')
    cfg.work_dir = work_dir
    cfg.model.encoder = encoder
    cfg.model.in_channels = 16
    cfg.load_from = None
    cfg.custom_hooks = []
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        loader.update(batch_size=8, num_workers=0, persistent_workers=False)
        datasets = loader.dataset.get('datasets', [loader.dataset])
        for ds in datasets:
            ds.data_root = root
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
    cfg.train_dataloader.sampler = dict(type='InfiniteSampler', shuffle=True)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = None  # saving dumps the config text: slow, not tested here
    cfg.log_processor = dict(by_epoch=False)
    return cfg


@pytest.mark.parametrize('encoder_extra', [dict(), dict(lora=dict(target_modules=['proj'],
                                                                  r=2, alpha=4))])
def test_training_changes_exactly_the_trainable_parameters(synthshapes_root, tmp_path,
                                                           encoder_extra):
    cfg = probe_cfg(synthshapes_root, str(tmp_path),
                    dict(type='ToyImageEncoder', **encoder_extra))
    runner = Runner.from_cfg(cfg)
    before = copy.deepcopy(runner.model.state_dict())
    runner.train()
    model = runner.model
    optim_params = {id(p) for g in runner.optim_wrapper.optimizer.param_groups for p in g['params']}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert optim_params == {id(p) for n, p in model.named_parameters() if n in trainable}
    expected = {'head.weight', 'head.bias'}
    if encoder_extra:
        expected |= {f'encoder.proj.lora_{ab}.default.weight' for ab in 'AB'}
    assert trainable == expected
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    # LoRA's A only moves once B is non-zero: after a few steps both have.
    assert changed == expected
    # Eval mode through runner.train(): BatchNorm statistics did not move.
    assert not model.encoder.training
