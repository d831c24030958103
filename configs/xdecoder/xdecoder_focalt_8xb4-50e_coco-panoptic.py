# X-Decoder at the paper's Focal-T scale on COCO panoptic (Zou et al., 2023):
# FocalNet-T (timm's focalnet_tiny_lrf) -> 6-layer transformer encoder + FPN
# pixel decoder at 512 channels -> 9 masked-attention decoder layers (hidden
# 512, 8 heads, FFN 2048) with 100 object queries + the image query; class
# names embedded by a CLIP-like 12-layer, width-512 text transformer (the
# ViT-B-32 text tower of open_clip, CLIP BPE, context 77).
# Segmentation part only (no grounding / captioning / retrieval losses yet).
# NOT trained here: see configs/xdecoder/README.md, "Paper-scale setting".
_base_ = [
    '../_base_/datasets/coco_panoptic_xdecoder.py',
    '../_base_/default_runtime.py',
]
hidden = 512
# Weights a user supplies (nothing is downloaded; missing files fail at build):
# - FocalNet-T ImageNet weights in timm's format (focalnet_tiny_lrf);
# - a CLIP ViT-B/32 state dict in open_clip's format (e.g. open_clip's
#   ViT-B-32 open_clip_pytorch_model.bin; only the text keys are loaded).
# Set either to None to start from random weights.
focalnet_checkpoint = 'checkpoints/focalnet_tiny_lrf.pth'
clip_checkpoint = 'checkpoints/open_clip_vit-b-32.bin'

model = dict(
    type='XDecoder',
    data_preprocessor=dict(
        type='MultiModalDataPreprocessor',
        img=dict(type='ImgDataPreprocessor', mean=[123.675, 116.28, 103.53],
                 std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32)),
    # Maps at strides 4/8/16/32 with 96/192/384/768 channels; fine-tuned
    # (encoders are frozen by default in mmfusion).
    backbone=dict(type='TimmBackbone', model_name='focalnet_tiny_lrf', out_indices=(0, 1, 2, 3),
                  checkpoint=focalnet_checkpoint, model_kwargs=dict(drop_path_rate=0.3),
                  frozen=False),
    text_encoder=dict(type='OpenCLIPTextEncoder', model_name='ViT-B-32',
                      checkpoint=clip_checkpoint, frozen=True),
    templates='imagenet',
    head=dict(
        type='XDecoderHead',
        pixel_decoder=dict(
            type='TransformerEncoderFPNPixelDecoder', in_channels=[96, 192, 384, 768],
            feat_channels=hidden, out_channels=hidden,
            norm_cfg=dict(type='GN', num_groups=32),
            encoder=dict(num_layers=6, layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=hidden, num_heads=8, batch_first=True),
                ffn_cfg=dict(embed_dims=hidden, feedforward_channels=2048))),
            positional_encoding=dict(num_feats=hidden // 2, normalize=True)),
        transformer_decoder=dict(type='MaskedAttentionDecoder', num_queries=100,
                                 hidden_dims=hidden, num_layers=9, num_heads=8, ffn_dims=2048,
                                 in_channels=hidden, mask_channels=hidden),
        # The paper's weights: class CE 2.0 (no-object 0.1), mask BCE 5.0,
        # Dice 5.0, matching and losses on 12,544 importance-sampled points.
        criterion=dict(
            type='MaskCriterion',
            matcher=dict(type='PointSampleHungarianMatcher', num_points=12544),
            loss_cls=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False, reduction='mean',
                          loss_weight=2.0),
            loss_mask=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=True, reduction='mean',
                           loss_weight=5.0),
            loss_dice=dict(type='mmdet.DiceLoss', use_sigmoid=True, activate=True,
                           reduction='mean', naive_dice=True, eps=1.0, loss_weight=5.0),
            eos_coef=0.1, num_points=12544, oversample_ratio=3.0,
            importance_sample_ratio=0.75),
        test_cfg=dict(task='panoptic', object_mask_threshold=0.8, overlap_threshold=0.8,
                      max_per_image=100)),
    classes={{_base_.classes}},
    thing_classes={{_base_.thing_classes}})

# AdamW 1e-4, weight decay 0.05 (the paper); backbone at 0.1x, no decay on
# norms and query embeddings, gradient clipping and step decay at 89% / 96%
# of training follow Mask2Former's COCO recipe.
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='FusionOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05, betas=(0.9, 0.999), eps=1e-8),
    clip_grad=dict(max_norm=0.01, norm_type=2),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        custom_keys={
            'backbone': dict(lr_mult=0.1),
            'query_embed': dict(decay_mult=0.0),
            'query_feat': dict(decay_mult=0.0),
            'image_query': dict(decay_mult=0.0),
            'level_embed': dict(decay_mult=0.0),
        }))
# 50 epochs of COCO train2017 (118,287 images) at 8 GPUs x 4 images.
max_iters = 184_825
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=10),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[164_494, 177_432], gamma=0.1),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=5000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(interval=5000, max_keep_ckpts=3))
auto_scale_lr = dict(enable=False, base_batch_size=32)
