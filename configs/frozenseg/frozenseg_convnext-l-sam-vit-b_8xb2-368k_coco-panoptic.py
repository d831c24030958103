# FrozenSeg as the paper trains it (Chen et al., 2024; chenxi52/FrozenSeg):
# frozen open_clip ConvNeXt-L (convnext_large_d_320, laion2b_s29b_b131k_ft_soup)
# + frozen SAM ViT-B, 250 queries, 9 decoder layers of width 256, trained on COCO
# panoptic only (133 classes), LSJ 1024 crops, batch 16, AdamW 1e-4 (wd 0.05),
# full-model gradient clip 0.01, 368,750 iterations, AMP; evaluated zero-shot
# with frozenseg_convnext-l-sam-vit-b_zero-shot_{ade20k,cityscapes}*.py.
# Weights: the official checkpoint through
#   python tools/model_converters/frozenseg_to_mmfusion.py SRC DST
# or the pretrained towers below (nothing is downloaded by mmfusion).
_base_ = [
    '../_base_/datasets/coco_panoptic_xdecoder.py',
    '../_base_/default_runtime.py',
]
hidden = 256
clip_name = 'convnext_large_d_320'
clip_checkpoint = 'checkpoints/convnext_large_d_320_laion2b_s29b_b131k_ft_soup.bin'
sam_checkpoint = 'checkpoints/sam_vit_b_01ec64.pth'
deform = dict(embed_dims=hidden, num_heads=8, num_points=4, batch_first=True)
model = dict(
    type='FrozenSeg',
    data_preprocessor=dict(
        type='MultiModalDataPreprocessor',
        # 0-255 RGB: each frozen tower normalises with its own statistics
        img=dict(type='ImgDataPreprocessor', bgr_to_rgb=True, pad_size_divisor=32)),
    clip_encoder=dict(type='OpenCLIPImageEncoder', model_name=clip_name,
                      pretrained_tag='laion2b_s29b_b131k_ft_soup', checkpoint=clip_checkpoint),
    sam_encoder=dict(type='SAMImageEncoder', arch='vit_b', img_size=1024,
                     checkpoint=sam_checkpoint),
    text_encoder=dict(type='OpenCLIPTextEncoder', model_name=clip_name,
                      pretrained_tag='laion2b_s29b_b131k_ft_soup', checkpoint=clip_checkpoint),
    templates='vild',
    head=dict(
        type='FrozenSegHead',
        pixel_decoder=dict(
            type='FrozenSegPixelDecoder', in_channels=[192, 384, 768, 1536],
            strides=[4, 8, 16, 32], feat_channels=hidden, out_channels=hidden, num_outs=3,
            sam_channels=256, norm_cfg=dict(type='GN', num_groups=32),
            encoder=dict(num_layers=6, layer_cfg=dict(
                self_attn_cfg=dict(num_levels=3, **deform),
                ffn_cfg=dict(embed_dims=hidden, feedforward_channels=1024))),
            sam_encoder=dict(num_layers=6, layer_cfg=dict(
                self_attn_cfg=dict(num_levels=1, **deform),
                ffn_cfg=dict(embed_dims=hidden, feedforward_channels=1024))),
            # the official sine embedding has no -0.5 offset (mmdet's default)
            positional_encoding=dict(num_feats=hidden // 2, normalize=True)),
        transformer_decoder=dict(
            type='FrozenSegDecoder', num_queries=250, hidden_dims=hidden, num_layers=9,
            num_heads=8, ffn_dims=2048, in_channels=hidden, mask_channels=hidden,
            sam_channels=256, feature_fuse_level=0, query_fuse_level=2),
        # Mask2Former's: CE 2.0 (no object 0.1), BCE 5.0, Dice 5.0 on 12,544
        # importance-sampled points (oversample 3, importance 0.75)
        criterion=dict(type='MaskCriterion'),
        # the official evaluation configs: object-mask threshold 0.0, overlap 0.8
        test_cfg=dict(task='panoptic', object_mask_threshold=0.0, overlap_threshold=0.8,
                      max_per_image=100)),
    classes={{_base_.classes}},
    thing_classes={{_base_.thing_classes}},
    # COCO's classes are the seen ones at zero-shot evaluation
    ensemble=dict(type='OpenVocabEnsemble', alpha=0.4, beta=0.8,
                  seen_classes={{_base_.classes}}))

train_dataloader = dict(batch_size=2)
optim_wrapper = dict(
    type='AmpOptimWrapper',
    constructor='FusionOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05, betas=(0.9, 0.999)),
    clip_grad=dict(max_norm=0.01, norm_type=2),
    # detectron2's WEIGHT_DECAY_EMBED = 0: every nn.Embedding, the void embedding included
    paramwise_cfg=dict(norm_decay_mult=0.0, custom_keys={
        'query_embed': dict(decay_mult=0.0), 'query_feat': dict(decay_mult=0.0),
        'level_embed': dict(decay_mult=0.0), 'void_embedding': dict(decay_mult=0.0)}))
max_iters = 368_750
# detectron2's WarmupMultiStepLR as configured (warm-up factor 1.0: none)
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[327_778, 355_092], gamma=0.1),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=20_000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(interval=20_000, max_keep_ckpts=3))
auto_scale_lr = dict(enable=False, base_batch_size=16)
