# Stage 1 of the two-stage tiny X-Decoder recipe: pretrain the tiny ResNet-18
# on SynthShapes semantic segmentation, as the paper's backbone comes
# pretrained (Focal-T with UniCL). The backbone learns shapes slowly from
# scratch (configs/xdecoder/README.md), and this plain per-pixel model steps
# about 4x faster than the X-Decoder: mmseg's Semantic FPN (EncoderDecoder +
# FPN neck + FPNHead) on the same scenes, the label maps of
# data/synthshapes/semantic (33 classes, 255 = void).
# Stage 2: xdecoder_r18-tiny-semfpn_1xb16-1000it_synthshapes.py loads
# `backbone.` from this checkpoint.
_base_ = [
    '../_base_/datasets/synthshapes_panoptic.py',
    '../_base_/default_runtime.py',
]
norm_cfg = dict(type='GN', num_groups=8)
model = dict(
    type='mmseg.EncoderDecoder',
    data_preprocessor=dict(type='mmseg.SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
                           seg_pad_val=255, size_divisor=32),
    # Exactly the X-Decoder's backbone (same keys under `backbone.`).
    backbone=dict(type='mmdet.ResNet', depth=18, base_channels=16, out_indices=(0, 1, 2, 3),
                  norm_cfg=norm_cfg, zero_init_residual=False),
    neck=dict(type='mmseg.FPN', in_channels=[16, 32, 64, 128], out_channels=64, num_outs=4),
    decode_head=dict(type='mmseg.FPNHead', in_channels=[64, 64, 64, 64], in_index=[0, 1, 2, 3],
                     feature_strides=[4, 8, 16, 32], channels=64, dropout_ratio=0.0,
                     num_classes=33, norm_cfg=norm_cfg, align_corners=False,
                     loss_decode=dict(type='mmseg.CrossEntropyLoss', loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

# Referring expressions are not used here, but stage 2 trains without flips
# (they are not flip invariant); the backbone sees the same unflipped scenes.
seg_dataset = dict(type='mmseg.BaseSegDataset', data_root={{_base_.data_root}},
                   img_suffix='.png', seg_map_suffix='.png', reduce_zero_label=False,
                   metainfo=dict(classes={{_base_.classes}}))
train_dataloader = dict(
    _delete_=True, batch_size=16, num_workers=1, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(seg_dataset,
                 data_prefix=dict(img_path='images/train', seg_map_path='semantic/train'),
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='mmseg.LoadAnnotations'),
                           dict(type='mmseg.PackSegInputs')]))
val_dataloader = dict(
    _delete_=True, batch_size=16, num_workers=1, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(seg_dataset,
                 data_prefix=dict(img_path='images/val', seg_map_path='semantic/val'),
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='mmseg.LoadAnnotations'),
                           dict(type='mmseg.PackSegInputs')], test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='mmseg.IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

max_iters = 3500
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3,
                                                         weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters, eta_min=1e-5),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(logger=dict(interval=100), checkpoint=dict(interval=max_iters),
                     visualization=dict(_delete_=True, type='mmseg.SegVisualizationHook'))
visualizer = dict(_delete_=True, type='mmseg.SegLocalVisualizer',
                  vis_backends=[dict(type='LocalVisBackend')], name='visualizer')
