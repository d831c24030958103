# Tiny I2P-MAE pre-training on SynthShapes3D's training clouds (seen classes only), with
# the tiny depth-view CLIP as the frozen 2D teacher. Evaluated by the linear probe:
#   python tools/analysis_tools/point_linear_probe.py THIS_CONFIG CHECKPOINT
_base_ = [
    '../_base_/models/i2pmae_tiny.py',
    '../_base_/datasets/synthshapes3d.py',
    '../_base_/default_runtime.py',
]
max_iters = 300
# The paper's optimizer (AdamW 1e-3, wd 0.05, cosine after a warm-up), per iteration.
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
                     paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                                        custom_keys={'token': dict(decay_mult=0.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=30),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=30, end=max_iters, eta_min=1e-6),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None
default_hooks = dict(checkpoint=dict(interval=max_iters), logger=dict(interval=20))
# The linear probe's test split (tools/analysis_tools/point_linear_probe.py): all 18 classes.
probe_dataloader = {{_base_.test_dataloader}}
