# Stage 1 of the 30-minute variant of the tiny X-Decoder: the region-text
# pretraining of region-text-pretrain_r18-tiny_1xb16-1000it_synthshapes.py,
# 600 iterations. Stage 2: xdecoder_r18-tiny_1xb16-1800it-pre600_synthshapes.py.
_base_ = ['./region-text-pretrain_r18-tiny_1xb16-1000it_synthshapes.py']
max_iters = 600
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters, eta_min=1e-5),
]
train_cfg = dict(max_iters=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
