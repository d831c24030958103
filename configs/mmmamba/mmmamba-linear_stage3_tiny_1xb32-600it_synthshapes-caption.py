# mmMamba-linear, stage 3: end-to-end KL(teacher || student) on the caption
# tokens' next-token distributions, training the official stage-3 list
# (Mamba2Mixer.STAGE3_PARAMS: q/k/v, conv1d, dt_proj, g_proj, g_norm; not
# o_proj, dt_bias or A_log), no gradient clipping; starts from stage 2.
_base_ = ['./mmmamba-linear_stage2_tiny_1xb32-300it_synthshapes-caption.py']
model = dict(stage=3,
             trainable=['layers.*.ssm.q_proj.*', 'layers.*.ssm.k_proj.*',
                        'layers.*.ssm.v_proj.*', 'layers.*.ssm.conv1d.*',
                        'layers.*.ssm.dt_proj.*', 'layers.*.ssm.g_proj.*',
                        'layers.*.ssm.g_norm.*'])
max_iters = 600
# The paper's 5e-5 is for an epoch of a large corpus; 600 iterations need more.
lr = 2e-4
optim_wrapper = dict(optimizer=dict(lr=lr))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=20, end=max_iters, eta_min=lr * 0.01),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
load_from = 'work_dirs/mmmamba-linear_stage2_tiny_1xb32-300it_synthshapes-caption/iter_300.pth'
