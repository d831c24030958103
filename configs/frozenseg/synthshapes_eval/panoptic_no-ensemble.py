_base_ = ['./panoptic.py']
model = dict(ensemble=None)
