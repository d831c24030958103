# SEMat as released (XiaRho/SEMat configs/SEMat_SAM.py): SAM ViT-L at 1024, peft LoRA
# r 16 / alpha 16 / dropout 0.1 / gaussian init on the encoder's qkv and proj, the box
# condition patch-embed, three matting tokens, the matte decoder with the official widths
# (13x13 stem 6->16->32, down 32/64/128/256, two layers per block, SyncBN) fed with
# image + matting logits / 6.5, losses as the official criterion (trimap NGHM 0.05,
# regularisation BCE 0.2).
model = dict(
    type='SEMat',
    arch='vit_l',
    img_size=1024,
    # segment-anything's official ViT-L release (sam_vit_l_0b3195.pth); or convert a
    # released SEMat with tools/model_converters/semat_to_mmfusion.py and load it.
    sam_checkpoint='checkpoints/sam_vit_l_0b3195.pth',
    matte_decoder=dict(stem_channels=(16, 32), down_channels=(32, 64, 128, 256), block_num=2,
                       kernel_size=5, norm='SyncBN'),
    logit_scale=6.5,
    data_preprocessor=dict(
        type='MultiModalDataPreprocessor',
        img=dict(type='ImgDataPreprocessor', mean=[123.675, 116.28, 103.53],
                 std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=16)))
