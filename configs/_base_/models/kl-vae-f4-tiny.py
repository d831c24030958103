# A KL-VAE with Stable Diffusion's architecture at small width: 3 resolution
# levels (downsampling x4), 4 latent channels. Trained here by KLAutoencoder.
model = dict(
    type='KLAutoencoder',
    data_preprocessor=dict(
        type='MultiModalDataPreprocessor',
        img=dict(type='ImgDataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3, bgr_to_rgb=True)),
    vae=dict(
        type='DiffusersKLVAE',
        config=dict(
            in_channels=3,
            out_channels=3,
            down_block_types=['DownEncoderBlock2D'] * 3,
            up_block_types=['UpDecoderBlock2D'] * 3,
            block_out_channels=[16, 32, 32],
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=8,
            sample_size=64),
        scale_factor=1.0,
        frozen=False),
    kl_weight=1e-6)
