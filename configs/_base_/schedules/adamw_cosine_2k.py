# AdamW with linear warm-up then cosine decay, iteration based.
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='FusionOptimWrapperConstructor',  # frozen parameters stay out
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=100, end=2000, eta_min=1e-5),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=2000, val_interval=500)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# Base batch size for --auto-scale-lr: 1 process x 8 samples.
auto_scale_lr = dict(enable=False, base_batch_size=8)
