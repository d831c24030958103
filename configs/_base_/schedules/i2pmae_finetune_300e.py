# I2P-MAE's official fine-tuning schedule (ModelNet40 and ScanObjectNN alike): AdamW 5e-4,
# weight decay 0.05 without decay on norms, biases and tokens, gradients clipped at 10,
# 300 epochs with 10 warm-up epochs, the test split evaluated after every epoch.
max_epochs = 300
warmup_epochs = 10
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4, weight_decay=0.05),
    # The official add_weight_decay (used for fine-tuning too): no decay on 1-D parameters
    # (norms, biases) and on names containing 'token'.
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                       custom_keys={'token': dict(decay_mult=0.0)}),
    clip_grad=dict(max_norm=10.0))
# The official timm CosineLRScheduler, stepped per epoch: lr(t) = 1e-6 + t (lr - 1e-6) / 10 for
# t < 10, then the cosine of t / 300 (t counted from 0) down to 1e-6 at epoch 300. The two
# schedulers below multiply (the cosine from epoch 0, the warm-up reaching 1 at epoch 10):
# within 0.2% of timm's curve at every epoch.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6 / 5e-4, by_epoch=True, begin=0, end=warmup_epochs + 1),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, T_max=max_epochs,
         eta_min=1e-6),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=32)
