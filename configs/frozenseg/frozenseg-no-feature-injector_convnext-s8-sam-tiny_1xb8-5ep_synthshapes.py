# Ablation: the tiny recipe without the feature injector (CLIP tokens do not
# attend to SAM; every layer reads the plain CLIP level).
_base_ = ['./frozenseg_convnext-s8-sam-tiny_1xb8-5ep_synthshapes.py']
model = dict(head=dict(transformer_decoder=dict(feature_fuse_level=None)))
