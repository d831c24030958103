# mmMamba-linear, stage 2, as the official recipe: the same per-head MSE x1000,
# now also training the seeded q/k/v projections (C, B, x); the output
# projection stays frozen as in src/model/load_model.py:
# load_and_convert_attns_shadow (lr 5e-4 as the paper); starts from stage 1.
_base_ = ['./mmmamba-linear_stage1_tiny_1xb32-300it_synthshapes-caption.py']
model = dict(stage=2,
             trainable=['layers.*.ssm.conv1d.*', 'layers.*.ssm.dt_proj.*', 'layers.*.ssm.dt_bias',
                        'layers.*.ssm.A_log', 'layers.*.ssm.g_proj.*', 'layers.*.ssm.g_norm.*',
                        'layers.*.ssm.q_proj.*', 'layers.*.ssm.k_proj.*',
                        'layers.*.ssm.v_proj.*'])
lr = 5e-4
optim_wrapper = dict(optimizer=dict(lr=lr))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=20, end=300, eta_min=lr * 0.01),
]
load_from = 'work_dirs/mmmamba-linear_stage1_tiny_1xb32-300it_synthshapes-caption/iter_300.pth'
