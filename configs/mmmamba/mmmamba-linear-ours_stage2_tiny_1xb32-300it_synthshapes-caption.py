# mmMamba-linear, stage 2, our earlier recipe: the per-layer output MSE of
# stage 1, training every Mamba-2 mixer parameter (lr 5e-4); starts from
# mmmamba-linear-ours stage 1.
_base_ = ['./mmmamba-linear-ours_stage1_tiny_1xb32-300it_synthshapes-caption.py']
model = dict(stage=2, trainable=['layers.*.ssm.*'])
lr = 5e-4
optim_wrapper = dict(optimizer=dict(lr=lr))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=20, end=300, eta_min=lr * 0.01),
]
load_from = 'work_dirs/mmmamba-linear-ours_stage1_tiny_1xb32-300it_synthshapes-caption/iter_300.pth'
