# The downstream point-cloud recipes (fine-tuning, zero-shot alignment): I2P-MAE's
# fine-tuning optimizer (AdamW 5e-4, weight decay 0.05, gradient clipping 10) with a
# 30-iteration warm-up and cosine decay over 300 iterations; one validation at the end.
max_iters = 300
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=5e-4, weight_decay=0.05),
                     clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=30),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=30, end=max_iters, eta_min=1e-6),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
