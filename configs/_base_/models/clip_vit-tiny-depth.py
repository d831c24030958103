# A tiny CLIP for depth views (the 2D teacher of the I2P-MAE recipes): open_clip ViT on
# 64x64 views with 8x8 patches (an 8x8 patch grid), 4 layers of width 128, and CLIP's
# bag-of-words text tower with learned positions, width 128, over open_clip's bundled BPE
# vocabulary (a 3-layer text transformer mapped the held-out compositions onto seen phrases:
# configs/i2pmae/README.md).
clip_cfg = dict(
    embed_dim=64,
    vision_cfg=dict(image_size=64, patch_size=8, width=128, layers=4, head_width=32,
                    mlp_ratio=2.0))
# Trainable: the CLIP pre-training trains it.
text_tower = dict(type='BagOfWordsTextEncoder', embed_dim=64, width=128, context_length=20,
                  frozen=False)
# The depth views are grey levels in (0, 1) normalised with ImageNet's statistics, as the
# official I2P-MAE teacher does (PointsToDepthImage stores them as 0-255).
view_mean = [0.485, 0.456, 0.406]
view_std = [0.229, 0.224, 0.225]
view_size = 64
view_kernel = 3
# The same on the 0-255 scale of the stored images (ImgDataPreprocessor).
view_mean_255 = [123.675, 116.28, 103.53]
view_std_255 = [58.395, 57.12, 57.375]
