# Tiny X-Decoder for open-vocabulary semantic / panoptic segmentation on
# SynthShapes (96x96 scenes), trainable on a few CPU cores: a ResNet-18 with 16
# base channels, a 1-layer transformer-encoder + FPN pixel decoder, 20 object
# queries (+ the image query) through 3 masked-attention layers of width 64.
# Class names are embedded by the tiny CLIP text tower trained by
# configs/clip/clip_vit-tiny_1xb128-1k_synthshapes.py (frozen).
_base_ = [
    '../_base_/models/clip_vit-tiny.py',
    '../_base_/datasets/synthshapes_panoptic.py',
    '../_base_/schedules/adamw_cosine_2k.py',
    '../_base_/default_runtime.py',
]
hidden = 64
clip_checkpoint = 'work_dirs/clip_vit-tiny_1xb128-1k_synthshapes/iter_1000.pth'
model = dict(
    _delete_=True,
    type='XDecoder',
    data_preprocessor=dict(
        type='MultiModalDataPreprocessor',
        img=dict(type='ImgDataPreprocessor', mean=[123.675, 116.28, 103.53],
                 std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32)),
    backbone=dict(type='mmdet.ResNet', depth=18, base_channels=16, out_indices=(0, 1, 2, 3),
                  norm_cfg=dict(type='GN', num_groups=8), zero_init_residual=False),
    text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg={{_base_.clip_cfg}},
                      checkpoint=clip_checkpoint, prefix='text_encoder.', frozen=True),
    templates='synthshapes',
    head=dict(
        type='XDecoderHead',
        pixel_decoder=dict(
            type='TransformerEncoderFPNPixelDecoder', in_channels=[16, 32, 64, 128],
            feat_channels=hidden, out_channels=hidden,
            norm_cfg=dict(type='GN', num_groups=8),
            encoder=dict(num_layers=1, layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=hidden, num_heads=4, batch_first=True),
                ffn_cfg=dict(embed_dims=hidden, feedforward_channels=2 * hidden))),
            positional_encoding=dict(num_feats=hidden // 2, normalize=True)),
        transformer_decoder=dict(type='MaskedAttentionDecoder', num_queries=20,
                                 hidden_dims=hidden, num_layers=3, num_heads=4,
                                 ffn_dims=2 * hidden, in_channels=hidden,
                                 mask_channels=hidden),
        # Masks are predicted at 1/4 (24x24): the losses use every pixel
        # instead of point sampling.
        criterion=dict(type='MaskCriterion',
                       matcher=dict(type='PointSampleHungarianMatcher', num_points=None),
                       num_points=None),
        # Semantic maps for SemSegIoUMetric; 'panoptic' (PanopticQualityMetric)
        # and 'instance' (CocoMaskAPMetric) are the other tasks. For panoptic
        # output of this under-trained tiny model, object_mask_threshold=0.3 and
        # overlap_threshold=0.5 keep far more thing segments than 0.8/0.8.
        test_cfg=dict(task='semantic')),
    classes={{_base_.classes}},
    thing_classes={{_base_.thing_classes}})

max_iters = 1200
optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=0.05), clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters, eta_min=1e-5),
]
train_cfg = dict(max_iters=max_iters, val_interval=600)
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=600))
auto_scale_lr = dict(base_batch_size=16)
