# The mmMamba teacher: a tiny decoder-only multimodal transformer trained
# from scratch to caption SynthShapes scenes (next-token loss on the caption
# tokens). Its checkpoint seeds and teaches the Mamba-2 students
# (mmmamba-linear_* and mmmamba-hybrid_*).
_base_ = [
    '../_base_/models/mmmamba_tiny.py',
    '../_base_/datasets/synthshapes_caption.py',
    '../_base_/default_runtime.py',
]
max_iters = 1500
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
                     clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=100, end=max_iters, eta_min=1e-5),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=750)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(interval=750))
