# I2P-MAE as in the paper and the official pre-training config (cfgs/pre-training/i2p-mae.yaml):
# three levels of 512/256/64 groups of 16/8/8 neighbours on 2048 points, widths 96/192/384,
# 5 blocks per level, 6 heads everywhere, drop path 0.1, global attention (local radius 0 in
# pre-training); decoder 384/192 with 1 block each, 6 heads; 80% of the 64 top tokens masked,
# guided by the teacher's saliency; losses 3D (Chamfer-L2) + 2D (MSE), weights 1/1.
#
# The frozen 2D teacher is OpenAI's CLIP ViT-B/16 image tower on three 224x224 depth views
# (5x5 splats, views normalised with ImageNet's mean/std as the official code does). OpenAI's
# CLIP uses QuickGELU, hence open_clip's 'ViT-B-16-quickgelu' architecture (a built-in config:
# embed_dim 512, 224 px, patch 16, width 768, 12 layers, 12 heads; nothing is downloaded).
# clip_ckpt: OpenAI's ViT-B/16 weights as a state dict (keys 'visual.*' at the top, as open_clip
# names them; only those are loaded, strictly). OpenAI's original ViT-B-16.pt is a TorchScript
# archive: save torch.jit.load('ViT-B-16.pt', map_location='cpu').state_dict() with torch.save
# and point clip_ckpt at that file, or use open_clip's 'openai' weights of ViT-B-16 (the same
# tensors). The official fp16 CLIP runs in fp32 here.
clip_ckpt = 'checkpoints/ViT-B-16.pt'
h_encoder = dict(
    type='I2PMAEEncoder',
    num_groups=(512, 256, 64),
    group_sizes=(16, 8, 8),
    embed_dims=(96, 192, 384),
    depths=(5, 5, 5),
    num_heads=6,
    local_radius=(0.0, 0.0, 0.0),
    drop_path_rate=0.1,
    embed_hidden=(128, 256, 512),
    norms=True,
    pool='max',
    frozen=False)
teacher = dict(
    type='DepthViewTeacher',
    image_size=224,
    kernel=5,
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    encoder=dict(type='OpenCLIPImageEncoder', model_name='ViT-B-16-quickgelu',
                 pretrained_tag='openai', out_indices=(-1, ), checkpoint=clip_ckpt,
                 frozen=True))
model = dict(
    type='I2PMAE',
    data_preprocessor=dict(
        type='MultiModalDataPreprocessor',
        points=dict(type='PointDataPreprocessor', num_points=2048, normalize=True)),
    encoder=h_encoder,
    teacher=teacher,
    decoder_dims=(384, 192),
    decoder_depths=(1, 1),
    num_heads=6,
    mask_ratio=0.8,
    masking='2d_guided',
    loss_3d_weight=1.0,
    loss_2d_weight=1.0,
    feature_upsample='bicubic',
    drop_path_rate=0.1)
