# A tiny SEMat on the tiny SAM (mmfusion.models.encoders.vision.SAM_MODEL_ARCHS['tiny']:
# ViT 96-d x 4 blocks, patch 8, global attention in blocks 1 and 3, 96-pixel SAM input).
# The matte decoder keeps the official structure (two 13x13 stem convs, 4 stride-2
# blocks of 2 layers with 5x5 kernels, 4 up blocks with summed skips) at a quarter of
# the official widths; it works at the input resolution (128 for SynthMatte) while
# SAM sees the image resized to 96.
model = dict(
    type='SEMat',
    arch='tiny',
    img_size=96,
    # The tiny SAM pre-trained by `make sam` (configs/sam/README.md).
    sam_checkpoint='work_dirs/sam_vit-tiny_1xb8-2600it_synthshapes/iter_2600.pth',
    matte_decoder=dict(stem_channels=(8, 16), down_channels=(16, 32, 64, 128), norm='BN'),
    data_preprocessor=dict(
        type='MultiModalDataPreprocessor',
        # SAM's pixel normalisation; padding to the matte decoder's stride (2^4).
        img=dict(type='ImgDataPreprocessor', mean=[123.675, 116.28, 103.53],
                 std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=16)))
