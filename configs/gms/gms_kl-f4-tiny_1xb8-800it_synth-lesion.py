# Tiny GMS on the synthetic lesion set, on CPU. The frozen first stage is the
# KL-VAE trained by vae_kl-f4-tiny_1xb8-600it_synth-lesion.py (make demo runs both).
_base_ = [
    '../_base_/models/gms_kl-f4-tiny.py',
    '../_base_/datasets/synth_lesion.py',
    '../_base_/schedules/adamw_cosine_2k.py',
    '../_base_/default_runtime.py',
]
# KLAutoencoder checkpoints keep the diffusers model under `vae.vae.`.
model = dict(
    vae=dict(
        frozen=True,
        pretrained='work_dirs/vae_kl-f4-tiny_1xb8-600it_synth-lesion/iter_600.pth',
        prefix='vae.vae.'),
    # Half the paper's width (32) to fit the CPU budget; same block structure.
    mapping_net=dict(base_channels=16))

max_iters = 800
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters, eta_min=1e-5),
]
train_cfg = dict(max_iters=max_iters, val_interval=400)
