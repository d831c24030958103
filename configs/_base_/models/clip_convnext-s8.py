# A tiny CLIP whose image tower gives dense maps (for FrozenSeg's mask-pooled
# classification): timm ConvNeXt `convnext_synth_s8` (patch-1 stem, stages at
# strides 1/2/4/8, widths 16-128, one block each) through open_clip's
# TimmModel as the official ConvNeXt CLIPs are built (trunk head = LayerNorm
# after average pooling, then a linear projection); the text tower is the
# tiny ViT CLIP's (3 layers of width 128, context 16). 64-d joint embedding.
clip_cfg = dict(
    embed_dim=64,
    vision_cfg=dict(timm_model_name='convnext_synth_s8', timm_model_pretrained=False,
                    timm_pool='', timm_proj='linear', image_size=32),
    text_cfg=dict(context_length=16, width=128, heads=4, layers=3, mlp_ratio=2.0))
model = dict(
    type='CLIPPretrainer',
    data_preprocessor=dict(
        type='MultiModalDataPreprocessor',
        img=dict(type='ImgDataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3,
                 bgr_to_rgb=True)),
    image_encoder=dict(type='OpenCLIPImageEncoder', model_cfg=clip_cfg, frozen=False),
    text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg=clip_cfg, frozen=False),
    train_templates='synthshapes',
    test_templates='synthshapes')
