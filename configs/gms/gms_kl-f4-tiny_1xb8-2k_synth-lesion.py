# Tiny GMS on the synthetic lesion set, on CPU. The frozen first stage is the
# KL-VAE trained by vae_kl-f4-tiny_1xb8-3k_synth-lesion.py (make demo runs both).
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
        pretrained='work_dirs/vae_kl-f4-tiny_1xb8-3k_synth-lesion/iter_3000.pth',
        prefix='vae.vae.'))
