# GMS over the tiny KL-VAE: the paper's mapping network (ResAttnUNet_DS,
# channels 32, multipliers 1/2/4/4) on 4x16x16 latents of 64x64 images.
_base_ = ['./kl-vae-f4-tiny.py']
model = dict(
    _delete_=True,
    type='GMS',
    data_preprocessor={{_base_.model.data_preprocessor}},
    vae={{_base_.model.vae}},
    mapping_net=dict(
        type='LatentMappingNet', in_channels=4, out_channels=4, base_channels=32,
        channel_mults=(1, 2, 4, 4), num_groups=16, out_levels=('level2', 'level1', 'out')),
    supervised_levels=('level2', 'level1', 'out'),
    posterior_sample_prob=0.5)
