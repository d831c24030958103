# A tiny SAM: segment_anything's ImageEncoderViT / PromptEncoder / MaskDecoder at
# CPU scale (mmfusion.models.encoders.vision.SAM_MODEL_ARCHS['tiny']: ViT 96-d x 4 blocks, patch 8,
# decoder width 64), for 96-pixel inputs: a 12 x 12 token grid, 48 x 48 low-res masks.
img_size = 96
model = dict(
    type='SAM',
    arch='tiny',
    img_size=img_size,
    data_preprocessor=dict(
        type='MultiModalDataPreprocessor',
        # SAM's pixel normalisation; padding to img_size after a longest-side resize.
        img=dict(type='ImgDataPreprocessor', mean=[123.675, 116.28, 103.53],
                 std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=img_size)))
