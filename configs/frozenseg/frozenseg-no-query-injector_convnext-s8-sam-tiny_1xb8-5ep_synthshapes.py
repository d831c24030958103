# Ablation: the tiny recipe without the query injector (no mask-pooled SAM
# embedding added to the queries).
_base_ = ['./frozenseg_convnext-s8-sam-tiny_1xb8-5ep_synthshapes.py']
model = dict(head=dict(transformer_decoder=dict(query_fuse_level=None)))
