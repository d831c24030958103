# The paper's setting (Huo et al., GMS): frozen Stable-Diffusion-2 KL-VAE,
# 224x224 inputs (4x28x28 latents), mapping network channels 32 (1/2/4/4),
# AdamW lr 2e-3, 5-epoch warm-up + cosine, 1000 epochs, batch 8, on BUSI.
# Needs the SD-2 VAE weights and BUSI, neither downloadable here: set
# `model.vae.pretrained` to a diffusers folder (stabilityai/stable-diffusion-2,
# subfolder vae) or to the original first-stage checkpoint
# (768-v-ema-first-stage-VAE.ckpt / v2-1_768-ema-pruned.ckpt); both load offline.
_base_ = [
    '../_base_/datasets/synth_lesion.py',
    '../_base_/schedules/adamw_cosine_2k.py',
    '../_base_/default_runtime.py',
]
sd_vae = dict(
    in_channels=3, out_channels=3,
    down_block_types=['DownEncoderBlock2D'] * 4, up_block_types=['UpDecoderBlock2D'] * 4,
    block_out_channels=[128, 256, 512, 512], layers_per_block=2, latent_channels=4,
    norm_num_groups=32, sample_size=768, scaling_factor=0.18215)
model = dict(
    type='GMS',
    data_preprocessor=dict(
        type='MultiModalDataPreprocessor',
        img=dict(type='ImgDataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3, bgr_to_rgb=True)),
    vae=dict(type='DiffusersKLVAE', config=sd_vae, pretrained='checkpoints/768-v-ema-first-stage-VAE.ckpt',
             scale_factor=0.18215, frozen=True),
    mapping_net=dict(type='LatentMappingNet', in_channels=4, out_channels=4, base_channels=32,
                     channel_mults=(1, 2, 4, 4), num_groups=16,
                     out_levels=('level2', 'level1', 'out')),
    supervised_levels=('level2', 'level1', 'out'),
    posterior_sample_prob=0.5)

# BUSI (Al-Dhabyani et al.) reorganised as images/, masks/, splits/ (the
# benign and malignant cases; normal ones have empty masks).
data_root = 'data/busi'
img_scale = (224, 224)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadBinaryMask'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackFusionInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='LoadBinaryMask'),
    dict(type='PackFusionInputs'),
]
train_dataloader = dict(
    batch_size=8, num_workers=4, persistent_workers=True,
    sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True),
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(num_workers=2, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = dict(num_workers=2, dataset=dict(data_root=data_root, pipeline=test_pipeline))

max_epochs = 1000
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=5, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=5, end=max_epochs, eta_min=0.0,
         convert_to_iter_based=True),
]
train_cfg = dict(_delete_=True, type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=10)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=True, interval=10, save_best='dice', rule='greater'))
log_processor = dict(by_epoch=True)
