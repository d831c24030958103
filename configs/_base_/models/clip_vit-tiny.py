# A tiny CLIP (open_clip architecture): ViT with 4x4 patches on 32x32 crops,
# 4 layers of width 128, and a 3-layer text transformer of width 128 over
# open_clip's bundled BPE vocabulary; 64-d joint embedding.
clip_cfg = dict(
    embed_dim=64,
    vision_cfg=dict(image_size=32, patch_size=4, width=128, layers=4, head_width=32,
                    mlp_ratio=2.0),
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
