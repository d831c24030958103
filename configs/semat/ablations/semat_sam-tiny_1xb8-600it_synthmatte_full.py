# SEMat ablations (configs/semat/README.md): the tiny recipe at half its schedule; the
# full model, the row the ablations (which inherit this file) compare with.
_base_ = ['../semat_sam-tiny_1xb8-1200it_synthmatte.py']
max_iters = 600
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=60),
    dict(type='MultiStepLR', by_epoch=False, milestones=[max_iters // 2], gamma=0.5),
    dict(type='MultiStepLR', by_epoch=False, milestones=[max_iters * 3 // 4], gamma=0.4),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
