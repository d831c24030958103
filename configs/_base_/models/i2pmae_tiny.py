# Tiny I2P-MAE for 1024-point clouds on 2 CPU cores: the paper's three-level encoder
# scaled down (256/128/32 groups of 16/8/8, widths 64/128/256, 2 blocks per level, 4 heads;
# paper: 512/256/64, 96/192/384, 5 blocks, 6 heads, 2048 points) with the paper's decoder
# shape (top width and half of it, 1 block each); level 0's mini-PointNet is narrowed to
# 32/64/64 (official 128/256/512: 18x the FLOPs, 28 s a step here), mask ratio 0.8 and loss weights 1/1.
# The teacher is the tiny depth-view CLIP of
# configs/i2pmae/clip_vit-tiny-depth_1xb96-400it_synthshapes3d.py (frozen); its text tower is
# what the zero-shot recipe aligns to.
_base_ = ['./clip_vit-tiny-depth.py']
clip_ckpt = 'work_dirs/clip_vit-tiny-depth_1xb96-400it_synthshapes3d/iter_400.pth'
# The teacher's text tower (text_tower of the base), frozen, from the same checkpoint.
clip_text = dict(type='BagOfWordsTextEncoder', embed_dim=64, width=128, context_length=20,
                 checkpoint=clip_ckpt, prefix='text_encoder.')
h_encoder = dict(type='I2PMAEEncoder', num_groups=(256, 128, 32), group_sizes=(16, 8, 8),
                 embed_dims=(64, 128, 256), depths=(2, 2, 2), num_heads=4, drop_path_rate=0.1,
                 embed_hidden=(32, 64, 64), frozen=False)
teacher = dict(type='DepthViewTeacher', image_size=64, kernel=3,
               encoder=dict(type='OpenCLIPImageEncoder', model_cfg={{_base_.clip_cfg}},
                            out_indices=(-1, ), checkpoint=clip_ckpt, prefix='image_encoder.'))
model = dict(
    type='I2PMAE',
    data_preprocessor=dict(
        type='MultiModalDataPreprocessor',
        points=dict(type='PointDataPreprocessor', num_points=1024, normalize=True)),
    encoder=h_encoder,
    teacher=teacher,
    decoder_dims=(256, 128),
    decoder_depths=(1, 1),
    num_heads=4,
    mask_ratio=0.8,
    masking='2d_guided')

# The pre-trained encoder for the downstream recipes (zero-shot alignment, fine-tuning), and
# its fine-tuning form (the official fine-tuning model: no per-level norms, mean + max).
i2pmae_ckpt = 'work_dirs/i2pmae_tiny_1xb32-300it_synthshapes3d/iter_300.pth'
pretrained_encoder = dict(h_encoder, checkpoint=i2pmae_ckpt, prefix='h_encoder.')
finetune_encoder = dict(pretrained_encoder, norms=False, pool='max+mean')
