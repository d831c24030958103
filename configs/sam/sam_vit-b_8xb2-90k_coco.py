# Paper-scale SAM fine-tuning: ViT-B from the official sam_vit_b_01ec64.pth on
# COCO instances (train2017, polygons and RLE), SAM's simulated interactive
# training with all three parts trainable. Put the official checkpoint and COCO
# under data/ (no download happens here); 8 GPUs x 2 images.
_base_ = ['../_base_/default_runtime.py']
img_size = 1024
model = dict(
    type='SAM',
    arch='vit_b',
    img_size=img_size,
    checkpoint='data/sam/sam_vit_b_01ec64.pth',
    # SAM samples up to 64 masks per GPU; with 2 images that is 32 each.
    train_cfg=dict(num_points=8, num_mask_only=2, max_objects=32),
    data_preprocessor=dict(
        type='MultiModalDataPreprocessor',
        img=dict(type='ImgDataPreprocessor', mean=[123.675, 116.28, 103.53],
                 std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=img_size)))

dataset_type = 'PromptableSegDataset'
data_root = 'data/coco'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPromptableAnnotations'),
    dict(type='mmdet.Resize', scale=(img_size, img_size), keep_ratio=True),
    dict(type='mmdet.RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='GeneratePrompts', prompt='box_or_point', box_noise=True, random_point=True),
    dict(type='PackFusionInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPromptableAnnotations'),
    dict(type='mmdet.Resize', scale=(img_size, img_size), keep_ratio=True),
    dict(type='GeneratePrompts', prompt='box'),
    dict(type='PackFusionInputs'),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, format='coco', min_area=100,
                 ann_file='annotations/instances_train2017.json',
                 data_prefix=dict(img_path='train2017/'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, format='coco',
                 ann_file='annotations/instances_val2017.json',
                 data_prefix=dict(img_path='val2017/'), pipeline=test_pipeline, test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type='PromptableSegMetric')
test_evaluator = val_evaluator

max_iters = 90000
optim_wrapper = dict(
    type='AmpOptimWrapper',
    constructor='FusionOptimWrapperConstructor',
    # SAM: AdamW (0.9, 0.999), lr 8e-4 at batch 256, weight decay 0.1, layer-wise
    # decay omitted; fine-tuning uses a smaller rate.
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
    clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.004, by_epoch=False, begin=0, end=250),
    dict(type='MultiStepLR', by_epoch=False, milestones=[60000, 80000], gamma=0.1),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=10000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(interval=10000))
auto_scale_lr = dict(enable=False, base_batch_size=16)
