# For the feature-cache benchmark only (tools/analysis_tools/benchmark_feature_cache.py):
# the tiny recipe with the paper's SAM ViT-B image encoder (random weights: no
# SAM weights can be downloaded here) at a 128-pixel input, so that a frozen tower
# costs what a foundation tower costs. The tiny towers of the recipe take ~10 %
# of its step; the cache can only remove that share (configs/frozenseg/README.md).
_base_ = ['./frozenseg_convnext-s8-sam-tiny_1xb8-5ep_synthshapes.py']
model = dict(
    sam_encoder=dict(_delete_=True, type='SAMImageEncoder', arch='vit_b', img_size=128,
                     frozen=True),
    head=dict(pixel_decoder=dict(sam_channels=256),
              transformer_decoder=dict(sam_channels=256)))
