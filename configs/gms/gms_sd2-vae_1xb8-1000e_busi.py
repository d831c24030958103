# The paper's setting (Huo et al., GMS; official King-HAW/GMS train.py and
# configs/busi_train.yaml): frozen Stable-Diffusion-2 KL-VAE, 224x224 inputs
# (4x28x28 latents), ResAttnUNet_DS mapping network (channels 32, 1/2/4/4, all
# four deep-supervision heads as in the released checkpoints, level2/level1/out
# supervised), the official posterior noise, AdamW lr 2e-3 with the official
# per-epoch 5-epoch warm-up from 0 + cosine to 0, 1000 epochs, batch 8
# (drop_last), the official augmentations, on BUSI's official split.
# Needs the SD-2 VAE weights and the dataset, neither downloadable here: set
# `model.vae.pretrained` to a diffusers folder (stabilityai/stable-diffusion-2,
# subfolder vae) or to the original first-stage checkpoint
# (768-v-ema-first-stage-VAE.ckpt / v2-1_768-ema-pruned.ckpt); both load offline.
# The released mapping networks load after
# tools/model_converters/gms_to_mmfusion.py with `--cfg-options load_from=...`.
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
    vae=dict(type='DiffusersKLVAE', config=sd_vae,
             pretrained='checkpoints/768-v-ema-first-stage-VAE.ckpt', scale_factor=0.18215,
             frozen=True),
    # level3's head is trained by nothing (as in the official code); DDP
    # needs model_wrapper_cfg=dict(type='MMDistributedDataParallel',
    # find_unused_parameters=True) for it.
    mapping_net=dict(type='LatentMappingNet', in_channels=4, out_channels=4, base_channels=32,
                     channel_mults=(1, 2, 4, 4), num_groups=16,
                     out_levels=('level3', 'level2', 'level1', 'out')),
    supervised_levels=('level2', 'level1', 'out'),
    posterior_sample_prob=0.5,
    posterior_noise='unscaled',
    # valid.py scores the 224x224 predictions against masks resized to 224
    pred_at_input_size=True)

# King-HAW/GMS Dataset/busi: images/<name>.png, masks/<name>.png and the
# official split pickle (benign + malignant cases: 517 train / 130 test).
data_root = 'data/gms/busi'
split_file = 'busi_train_test_names.pkl'
img_scale = (224, 224)
# data/image_dataset.py's albumentations pipeline, in its order: flips,
# rotate-90, colour jitter and shift-scale-rotate at the original size, then
# the resize to 224.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadBinaryMask'),
    # independent horizontal and vertical flips, each p=0.5
    dict(type='RandomFlip', prob=[0.25, 0.25, 0.25],
         direction=['horizontal', 'vertical', 'diagonal']),
    dict(type='RandomRotate90', prob=0.5),
    dict(type='ColorJitter', brightness=0.1, contrast=0.1, saturation=0.1, hue=0.1, prob=0.2),
    dict(type='RandomShiftScaleRotate', shift_limit=0.15, scale_limit=0.1, rotate_limit=20,
         prob=0.4),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='PackFusionInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadBinaryMask'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),  # masks: nearest
    dict(type='PackFusionInputs'),
]
train_dataloader = dict(
    batch_size=8, num_workers=4, persistent_workers=True, drop_last=True,
    sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True),
    dataset=dict(data_root=data_root, ann_file=split_file, split='train', pipeline=train_pipeline))
# The official code validates (and keeps the best checkpoint) on the test split.
val_dataloader = dict(
    num_workers=2,
    dataset=dict(data_root=data_root, ann_file=split_file, split='test', pipeline=test_pipeline))
test_dataloader = val_dataloader

max_epochs = 1000
param_scheduler = [
    # lr 0 in epoch 0, 2e-3 from epoch 4 (utils/lr_scheduler.py, stepped per epoch)
    dict(type='LinearLR', start_factor=1e-6, by_epoch=True, begin=0, end=5),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 5, by_epoch=True, begin=5, end=max_epochs,
         eta_min=0.0),
]
# Validated every epoch, as the official loop.
train_cfg = dict(_delete_=True, type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=True, interval=10, save_best='dice', rule='greater'))
log_processor = dict(by_epoch=True)
randomness = dict(seed=2333)
