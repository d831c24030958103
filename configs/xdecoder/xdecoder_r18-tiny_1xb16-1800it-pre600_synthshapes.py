# The 30-minute variant of the tiny X-Decoder: stage 2 of
# xdecoder_r18-tiny_1xb16-2000it_synthshapes.py for 1800 iterations, from the
# 600-iteration stage 1 (region-text-pretrain_r18-tiny_1xb16-600it_synthshapes.py).
_base_ = ['./xdecoder_r18-tiny_1xb16-2000it_synthshapes.py']
max_iters = 1800
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters, eta_min=1e-5),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
load_from = 'work_dirs/region-text-pretrain_r18-tiny_1xb16-600it_synthshapes/iter_600.pth'
