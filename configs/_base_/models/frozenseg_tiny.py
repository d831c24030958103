# A tiny FrozenSeg for 96-pixel SynthShapes scenes: the frozen tiny ConvNeXt
# CLIP (configs/clip/clip_convnext-s8_1xb128-600it_synthshapes.py; maps at
# strides 1/2/4/8, dense 12 x 12) and the frozen tiny SAM image encoder
# (configs/sam; 64-d embedding on a 12 x 12 grid), a deformable pixel decoder of
# width 64 on the CLIP strides 2/4/8 (two encoder levels + one FPN level: the
# stride-1 map is not used), and 6 masked-attention layers with 20 queries:
# feature injector in layers 0 and 3, query injector after layer 2 (and 5).
_base_ = ['./clip_convnext-s8.py']
hidden = 64
clip_checkpoint = 'work_dirs/clip_convnext-s8_1xb128-600it_synthshapes/iter_600.pth'
sam_checkpoint = 'work_dirs/sam_vit-tiny_1xb8-2600it_synthshapes/iter_2600.pth'
model = dict(
    _delete_=True,
    type='FrozenSeg',
    # 0-255 RGB: each frozen tower normalises with its own statistics.
    data_preprocessor=dict(
        type='MultiModalDataPreprocessor',
        img=dict(type='ImgDataPreprocessor', bgr_to_rgb=True, pad_size_divisor=32)),
    # stages at strides 2/4/8 for the pixel decoder (the stride-1 stage is not used)
    clip_encoder=dict(type='OpenCLIPImageEncoder', model_cfg={{_base_.clip_cfg}},
                      out_indices=(1, 2, 3), checkpoint=clip_checkpoint,
                      prefix='image_encoder.', frozen=True),
    clip_norm=dict(mean=[127.5] * 3, std=[127.5] * 3),
    sam_encoder=dict(type='SAMImageEncoder',
                     arch=dict(embed_dim=96, depth=4, num_heads=3, global_attn_indexes=(1, 3),
                               patch_size=8, window_size=6, out_chans=64),
                     img_size=96, checkpoint=sam_checkpoint, prefix='image_encoder.',
                     frozen=True),
    text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg={{_base_.clip_cfg}},
                      checkpoint=clip_checkpoint, prefix='text_encoder.', frozen=True),
    templates='vild',
    head=dict(
        type='FrozenSegHead',
        pixel_decoder=dict(
            type='FrozenSegPixelDecoder',
            in_channels=[32, 64, 128], strides=[2, 4, 8], feat_channels=hidden,
            out_channels=hidden, num_outs=3, sam_channels=64,
            norm_cfg=dict(type='GN', num_groups=8),
            encoder=dict(num_layers=2, layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=hidden, num_heads=4, num_levels=2, num_points=4,
                                   batch_first=True),
                ffn_cfg=dict(embed_dims=hidden, feedforward_channels=4 * hidden))),
            sam_encoder=dict(num_layers=2, layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=hidden, num_heads=4, num_levels=1, num_points=4,
                                   batch_first=True),
                ffn_cfg=dict(embed_dims=hidden, feedforward_channels=4 * hidden))),
            positional_encoding=dict(num_feats=hidden // 2, normalize=True)),
        transformer_decoder=dict(
            type='FrozenSegDecoder', num_queries=20, hidden_dims=hidden, num_layers=6,
            num_heads=4, ffn_dims=4 * hidden, in_channels=hidden, mask_channels=hidden,
            sam_channels=64, feature_fuse_level=0, query_fuse_level=2),
        # 1024 sampled points per mask (the paper: 12,544 on 1024-pixel crops).
        criterion=dict(type='MaskCriterion',
                       matcher=dict(type='PointSampleHungarianMatcher', num_points=1024),
                       num_points=1024),
        test_cfg=dict(task='semantic', object_mask_threshold=0.8, overlap_threshold=0.8)),
    # CLIP classifies each mask from a crop around it, as it was trained (the
    # paper pools CLIP's dense map over the mask, oov_source='mask_pool'; this
    # tiny CLIP's dense map does not transfer from crops to scenes: README).
    oov_source='box_crop', clip_crop_size=32,
    ensemble=dict(type='OpenVocabEnsemble', alpha=0.4, beta=0.8))
