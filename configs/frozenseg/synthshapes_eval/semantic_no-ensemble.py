# Seen-class semantic segmentation on val without the ensemble.
_base_ = ['../frozenseg_convnext-s8-sam-tiny_1xb8-5ep_synthshapes.py']
model = dict(ensemble=None)
