# mmMamba-linear, stage 3, our earlier recipe: KL(teacher || student) training
# every Mamba-2 mixer parameter (o_proj, dt_bias and A_log included), gradients
# clipped to norm 1; starts from mmmamba-linear-ours stage 2.
_base_ = ['./mmmamba-linear-ours_stage2_tiny_1xb32-300it_synthshapes-caption.py']
model = dict(stage=3, trainable=['layers.*.ssm.*'])
max_iters = 600
lr = 2e-4
optim_wrapper = dict(optimizer=dict(lr=lr))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=20, end=max_iters, eta_min=lr * 0.01),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
load_from = 'work_dirs/mmmamba-linear-ours_stage2_tiny_1xb32-300it_synthshapes-caption/iter_300.pth'
