# Stage 0 of the offline GMS recipe: train the tiny KL-VAE on the synthetic
# lesion images and masks. GMS configs load its checkpoint frozen.
_base_ = [
    '../_base_/models/kl-vae-f4-tiny.py',
    '../_base_/datasets/synth_lesion.py',
    '../_base_/schedules/adamw_cosine_2k.py',
    '../_base_/default_runtime.py',
]
max_iters = 600
optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=100, end=max_iters, eta_min=1e-5),
]
train_cfg = dict(max_iters=max_iters, val_interval=300)
default_hooks = dict(checkpoint=dict(interval=300))
