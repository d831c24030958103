# X-Decoder at the paper's Focal-T scale on COCO panoptic (Zou et al., 2023),
# in the layout and with the behaviour of the authors' released model
# (microsoft/X-Decoder xdecoder_focalt_last.pt, which
# tools/model_converters/xdecoder_to_mmfusion.py converts into this config's
# model, strictly): FocalNet-T focal_dw -> 6-layer transformer encoder + FPN
# pixel decoder at 512 channels -> 9 masked-attention decoder layers (hidden
# 512, 8 heads, FFN 2048) with 100 object queries + the image query; class
# names embedded by X-Decoder's 12-layer, width-512 CLIP text transformer
# (QuickGELU, LayerNorm eps 1e-12, CLIP BPE, context 77).
# Official behaviours (each an option; the tiny recipe keeps mmfusion's own,
# see configs/xdecoder/README.md): no object = the text embedding of
# "A background in coco."; the image token = softmax(image . object)-weighted
# sum of the object outputs; bias-free class/caption projections; bicubic
# (antialias) mask resizing; all-gather retrieval InfoNCE with the shared
# temperature; grounding/caption inputs are projected text features.
# Segmentation part only in training (no grounding / captioning / retrieval
# data here). NOT trained here: see the README, "Paper-scale setting".
_base_ = [
    '../_base_/datasets/coco_panoptic_xdecoder.py',
    '../_base_/default_runtime.py',
]
hidden = 512
# Weights a user supplies (nothing is downloaded; missing files fail at build).
# The released X-Decoder weights are loaded whole with load_from (see the
# README); these are only for training from ImageNet / CLIP initialisations.
# - FocalNet-T focal_dw weights in the official key layout (None: random);
# - a CLIP text tower state dict in open_clip's format (e.g. open_clip's
#   ViT-B-32 open_clip_pytorch_model.bin; only the text keys are loaded).
focalnet_checkpoint = None
clip_checkpoint = None
# X-Decoder's language encoder: CLIP's text transformer with TF-style
# LayerNorm (eps 1e-12) and QuickGELU, projected to 512.
xdecoder_text_cfg = dict(
    embed_dim=hidden, quick_gelu=True,
    text_cfg=dict(context_length=77, vocab_size=49408, width=hidden, heads=8, layers=12,
                  norm_kwargs=dict(eps=1e-12)))

model = dict(
    type='XDecoder',
    data_preprocessor=dict(
        type='MultiModalDataPreprocessor',
        img=dict(type='ImgDataPreprocessor', mean=[123.675, 116.28, 103.53],
                 std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32)),
    # Maps at strides 4/8/16/32 with 96/192/384/768 channels; both encoders
    # are fine-tuned, as the official recipe (encoders are frozen by default
    # in mmfusion).
    backbone=dict(type='FocalNetDW', arch='focalt', drop_path_rate=0.3,
                  checkpoint=focalnet_checkpoint, frozen=False),
    text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg=xdecoder_text_cfg,
                      checkpoint=clip_checkpoint, frozen=False),
    templates='xdecoder',
    class_name_suffixes=['-other', '-merged', '-stuff'],
    no_object_text='A background in coco.',
    project_text_tokens=True,
    caption_input='encoder',
    head=dict(
        type='XDecoderHead',
        no_object='text',
        image_token='pooled',
        text_input_proj=False,
        proj_bias=False,
        pixel_decoder=dict(
            type='TransformerEncoderFPNPixelDecoder', in_channels=[96, 192, 384, 768],
            feat_channels=hidden, out_channels=hidden, use_padding_mask=False,
            norm_cfg=dict(type='GN', num_groups=32),
            encoder=dict(num_layers=6, layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=hidden, num_heads=8, batch_first=True),
                ffn_cfg=dict(embed_dims=hidden, feedforward_channels=2048))),
            positional_encoding=dict(num_feats=hidden // 2, normalize=True)),
        transformer_decoder=dict(type='MaskedAttentionDecoder', num_queries=100,
                                 hidden_dims=hidden, num_layers=9, num_heads=8, ffn_dims=2048,
                                 in_channels=hidden, mask_channels=hidden,
                                 attn_mask_resize='bicubic'),
        # Referring, captioning and retrieval branches with the official
        # settings (xdecoder_focalt_lang.yaml: top 3 layers each, caption and
        # retrieval weight 2.0): 77 caption positions decoded greedily for 50
        # steps and cut at the first period; retrieval on the class
        # projection of the pooled image token, temperature shared with
        # classification, InfoNCE over all ranks.
        grounding=dict(num_layers=3),
        caption=dict(max_len=77, decode_len=51, pos_with_features=True, cut_at_period=True,
                     num_layers=3, loss_weight=2.0),
        retrieval=dict(image_proj='cls_embed', logit_scale='shared', all_gather=True,
                       num_layers=3, loss_weight=2.0),
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
        # Official inference: the image token joins segmentation as a 101st
        # query; panoptic keeps score > 0.8 and overlap > 0.8; instance keeps
        # the top 100; masks resized bicubic with antialias; the referred
        # mask is the grounding query most similar to the sentence.
        test_cfg=dict(task='panoptic', object_mask_threshold=0.8, overlap_threshold=0.8,
                      max_per_image=100, mask_resize='bicubic',
                      referring_select='similarity', segment_with_image_token=True)),
    classes={{_base_.classes}},
    thing_classes={{_base_.thing_classes}})

# The official solver (xdecoder_focalt_lang.yaml): AdamW 1e-4, weight decay
# 0.05 (none on norms and embeddings), backbone and language encoder at 0.1x,
# whole-model gradient clipping at 5.0, step decay x0.1 at 88.9% and 96.3% of
# training, no warm-up (its warm-up factor is 1.0).
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='FusionOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05, betas=(0.9, 0.999), eps=1e-8),
    clip_grad=dict(max_norm=5.0, norm_type=2),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        custom_keys={
            'backbone': dict(lr_mult=0.1),
            # the official recipe trains its language encoder at 0.1x too
            'text_encoder': dict(lr_mult=0.1),
            'query_embed': dict(decay_mult=0.0),
            'query_feat': dict(decay_mult=0.0),
            'image_query': dict(decay_mult=0.0),
            'level_embed': dict(decay_mult=0.0),
        }))
# 50 epochs of COCO train2017 (118,287 images) at 8 GPUs x 4 images.
max_iters = 184_825
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[int(0.88889 * max_iters), int(0.96296 * max_iters)], gamma=0.1),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=5000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(interval=5000, max_keep_ckpts=3))
auto_scale_lr = dict(enable=False, base_batch_size=32)
