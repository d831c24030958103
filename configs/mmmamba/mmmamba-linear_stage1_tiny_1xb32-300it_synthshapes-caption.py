# mmMamba-linear, distillation stage 1, as the official recipe: every
# attention layer of the trained teacher becomes a Mamba-2 mixer seeded from
# it (W_Q->C, W_K->B, W_V->x, W_O kept); only the new SSM parameters train,
# on the per-layer MSE between each mixer's per-head outputs and the teacher
# attention's, before the output projections, x1000 (lr 1e-3, weight decay
# 0.05, no gradient clipping, as configs/experiment/distill_stage1_mmMamba.yaml).
# Our earlier recipe: mmmamba-linear-ours_*. Train the teacher first:
#   python tools/train.py configs/mmmamba/mmmamba-teacher_tiny_1xb32-1500it_synthshapes-caption.py
_base_ = [
    '../_base_/models/mmmamba_tiny.py',
    '../_base_/datasets/synthshapes_caption.py',
    '../_base_/default_runtime.py',
]
teacher_checkpoint = ('work_dirs/mmmamba-teacher_tiny_1xb32-1500it_synthshapes-caption/'
                      'iter_1500.pth')
model = dict(
    _delete_=True,
    type='MambaDistiller',
    teacher={{_base_.teacher_model}},
    teacher_checkpoint=teacher_checkpoint,
    # Overrides of the teacher config; attention_layers keep softmax attention.
    student=dict(mixer='mamba2', attention_layers=[]),
    stage=1,
    mse_target='heads',
    mse_factor=1000.0,
    # Mamba2Mixer.NEW_PARAMS of every Mamba-2 layer.
    trainable=['layers.*.ssm.conv1d.*', 'layers.*.ssm.dt_proj.*', 'layers.*.ssm.dt_bias',
               'layers.*.ssm.A_log', 'layers.*.ssm.g_proj.*', 'layers.*.ssm.g_norm.*'],
    data_preprocessor={{_base_.teacher_model.data_preprocessor}})

max_iters = 300
lr = 1e-3
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=lr, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=20, end=max_iters, eta_min=lr * 0.01),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(interval=max_iters), logger=dict(interval=25))
