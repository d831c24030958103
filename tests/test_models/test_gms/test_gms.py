import os.path as osp

import pytest
import torch
from diffusers import AutoencoderKL
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmfusion.models import DiffusersKLVAE
from mmfusion.registry import MODELS

from tests.conftest import TINY_VAE


def _diffusers_to_ldm(sd: dict, num_levels: int) -> dict:
    """Rename a diffusers AutoencoderKL state dict to the original CompVis/SD
    layout, written independently of diffusers' (LDM -> diffusers) converter."""
    out = {}
    for key, value in sd.items():
        k = key
        for part in ('encoder', 'decoder'):
            k = k.replace(f'{part}.mid_block.resnets.0.', f'{part}.mid.block_1.')
            k = k.replace(f'{part}.mid_block.resnets.1.', f'{part}.mid.block_2.')
            if f'{part}.mid_block.attentions.0.' in k:
                k = k.replace(f'{part}.mid_block.attentions.0.', f'{part}.mid.attn_1.')
                k = (k.replace('group_norm', 'norm').replace('to_q', 'q').replace('to_k', 'k')
                     .replace('to_v', 'v').replace('to_out.0', 'proj_out'))
                if value.ndim == 2:  # linear in diffusers, 1x1 conv in LDM
                    value = value[:, :, None, None]
            k = k.replace(f'{part}.conv_norm_out.', f'{part}.norm_out.')
        if k.startswith('encoder.down_blocks.'):
            k = k.replace('encoder.down_blocks.', 'encoder.down.').replace('.resnets.', '.block.')
            k = k.replace('.downsamplers.0.', '.downsample.')
        if k.startswith('decoder.up_blocks.'):
            i = int(k.split('.')[2])
            rest = '.'.join(k.split('.')[3:])
            k = f'decoder.up.{num_levels - 1 - i}.{rest}'.replace('resnets.', 'block.')
            k = k.replace('upsamplers.0.', 'upsample.')
        k = k.replace('conv_shortcut', 'nin_shortcut')
        out['first_stage_model.' + k] = value
    return out


def test_sd_checkpoint_in_ldm_layout_loads_to_identical_outputs(tmp_path):
    torch.manual_seed(0)
    reference = AutoencoderKL(**TINY_VAE).eval()
    ldm = _diffusers_to_ldm(reference.state_dict(), len(TINY_VAE['block_out_channels']))
    assert any('.down.0.block.0.' in k for k in ldm) and any('mid.attn_1.q' in k for k in ldm)
    path = tmp_path / 'sd-vae.ckpt'
    # A full Stable-Diffusion checkpoint: Lightning's {'state_dict': ...}.
    torch.save({'state_dict': {**ldm, 'model.diffusion_model.x': torch.zeros(1)}}, path)

    vae = DiffusersKLVAE(config=TINY_VAE, pretrained=str(path), scale_factor=0.18215)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        mean, std = vae.to_latent(x)
        ref_post = reference.encode(x).latent_dist
        assert torch.equal(mean, ref_post.mean * 0.18215)
        assert torch.equal(std, ref_post.std * 0.18215)
        z = torch.randn_like(mean)
        assert torch.equal(vae.from_latent(z), reference.decode(z / 0.18215).sample)


def test_diffusers_folder_and_safetensors_load(tmp_path):
    torch.manual_seed(1)
    reference = AutoencoderKL(**TINY_VAE).eval()
    reference.save_pretrained(tmp_path / 'vae')  # config.json + diffusion_pytorch_model.safetensors
    x = torch.rand(1, 3, 32, 32)
    expected = reference.encode(x).latent_dist.mean
    from_folder = DiffusersKLVAE(pretrained=str(tmp_path / 'vae'), scale_factor=1.0)
    from_file = DiffusersKLVAE(config=TINY_VAE, scale_factor=1.0, pretrained=str(
        tmp_path / 'vae' / 'diffusion_pytorch_model.safetensors'))
    with torch.no_grad():
        assert torch.equal(from_folder.to_latent(x)[0], expected)
        assert torch.equal(from_file.to_latent(x)[0], expected)
    assert from_folder.scale_factor == 1.0


def test_mismatched_vae_weights_name_the_file(tmp_path):
    other = dict(TINY_VAE, block_out_channels=[8, 8])
    path = tmp_path / 'w.pth'
    torch.save(AutoencoderKL(**other).state_dict(), path)
    with pytest.raises(Exception, match='w.pth'):
        DiffusersKLVAE(config=TINY_VAE, pretrained=str(path))


def test_vae_frozen_through_runner_train_and_optimizer_holds_mapping_net_only(gms_cfg):
    runner = Runner.from_cfg(gms_cfg)
    seen = []

    class RecordModes(Hook):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            model = runner.model
            seen.append((model.mapping_net.training,
                         any(m.training for m in model.vae.modules()),
                         any(p.grad is not None for p in model.vae.parameters())))

    runner.register_hook(RecordModes())
    runner.train()
    assert seen == [(True, False, False)] * gms_cfg.train_cfg.max_iters
    assert all(not p.requires_grad for p in runner.model.vae.parameters())

    optimizer = runner.optim_wrapper.optimizer
    optimized = {id(p) for group in optimizer.param_groups for p in group['params']}
    assert optimized == {id(p) for p in runner.model.mapping_net.parameters()}


def test_dice_gradient_reaches_mapping_net_through_frozen_decoder(gms_cfg):
    model = MODELS.build(gms_cfg.model)
    model.train()
    from mmengine.dataset import pseudo_collate

    from mmfusion.datasets import MedicalSegDataset
    ds = MedicalSegDataset(**{k: v for k, v in gms_cfg.train_dataloader.dataset.items() if k != 'type'})
    data = model.data_preprocessor(pseudo_collate([ds[0], ds[1]]), True)
    losses = model(**data, mode='loss')
    assert set(losses) == {f'loss_{kind}_{lvl}' for kind in ('latent', 'dice')
                           for lvl in ('level2', 'level1', 'out')}
    dice = sum(v for k, v in losses.items() if k.startswith('loss_dice'))
    dice.backward()
    # Every mapping-network parameter gets a non-zero gradient (no head
    # without a loss: DDP would reject it).
    assert list(model.mapping_net.heads) == ['level2', 'level1', 'out']
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.mapping_net.parameters())
    assert all(p.grad is None for p in model.vae.parameters())


def test_predict_fills_pred_sem_seg_at_original_size(gms_cfg):
    model = MODELS.build(gms_cfg.model).eval()
    from mmengine.dataset import pseudo_collate

    from mmfusion.datasets import MedicalSegDataset
    ds_cfg = {k: v for k, v in gms_cfg.test_dataloader.dataset.items() if k != 'type'}
    ds = MedicalSegDataset(**ds_cfg)
    with torch.no_grad():
        out = model.test_step(pseudo_collate([ds[0]]))
    pred = out[0].pred_sem_seg
    assert pred.data.shape == (1, 48, 48) and pred.data.dtype == torch.long
    assert set(pred.data.unique().tolist()) <= {0, 1}
    assert torch.equal(pred.data, (pred.score > 0.5).long())
    assert osp.basename(out[0].img_path) == 'case_000.png'
    # the official evaluation keeps the prediction at the input size (32 here),
    # equal to the original-size score before its resize
    model.pred_at_input_size = True
    with torch.no_grad():
        small = model.test_step(pseudo_collate([ds[0]]))[0].pred_sem_seg
    assert small.data.shape == (1, 32, 32)
    resized = torch.nn.functional.interpolate(small.score[None], size=(48, 48), mode='bilinear',
                                              align_corners=False)[0]
    torch.testing.assert_close(resized, pred.score)


@pytest.mark.parametrize('noise', ['unscaled', 'scaled'])
def test_posterior_noise_modes_against_the_posterior(gms_cfg, noise):
    """'unscaled' (official): s * mu + exp(0.5 * logvar) * eps; 'scaled':
    s * (mu + std * eps). Reference from diffusers' posterior directly."""
    cfg = gms_cfg.model.copy()
    cfg.update(posterior_sample_prob=1.0, posterior_noise=noise)
    cfg.vae.scale_factor = 0.25
    model = MODELS.build(cfg).eval()
    img = torch.rand(2, 3, 32, 32) * 2 - 1
    seen = []
    model.mapping_net.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    from mmengine.structures import PixelData

    from mmfusion.structures import FusionDataSample
    empty = torch.zeros(1, 32, 32, dtype=torch.long)
    samples = [FusionDataSample(gt_sem_seg=PixelData(data=empty)) for _ in range(2)]
    torch.manual_seed(3)
    model.loss(dict(img=img), samples)
    torch.manual_seed(3)
    torch.rand(())  # the p draw
    with torch.no_grad():
        post = model.vae.vae.encode(img).latent_dist
    eps = torch.randn_like(post.mean)
    std = torch.exp(0.5 * post.logvar)
    expected = 0.25 * post.mean + (std if noise == 'unscaled' else 0.25 * std) * eps
    torch.testing.assert_close(seen[0], expected, atol=1e-6, rtol=1e-5)
    # with scale factor 1 (the tiny recipe's VAE) the two modes are the same
    cfg.vae.scale_factor = 1.0
    cfg.posterior_noise = 'scaled' if noise == 'unscaled' else 'unscaled'
    other = MODELS.build(cfg).eval()
    other.load_state_dict(model.state_dict())
    model.vae.scale_factor = 1.0
    outs = []
    for m in (model, other):
        m.mapping_net.register_forward_hook(lambda mod, args, out: outs.append(args[0]))
        torch.manual_seed(4)
        m.loss(dict(img=img), samples)
    assert torch.equal(outs[-2], outs[-1])
    with pytest.raises(ValueError, match="posterior_noise must be 'unscaled'"):
        MODELS.build(dict(cfg, posterior_noise='sample'))
