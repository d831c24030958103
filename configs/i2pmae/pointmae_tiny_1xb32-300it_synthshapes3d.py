# The "no 2D guidance" baseline: Point-MAE pre-training (random masking of 60% of the
# groups, Chamfer-L2 reconstruction of the hidden groups) at the tiny recipe's budget
# (same data, batch, iterations and optimizer as i2pmae_tiny_1xb32-300it_synthshapes3d.py).
# 64 groups of 32 points of 1024 (Point-MAE's grouping), 4 blocks of width 256, the same
# narrowed mini-PointNet as the tiny I2P-MAE, a 2-block decoder.
_base_ = ['./i2pmae_tiny_1xb32-300it_synthshapes3d.py']
model = dict(
    _delete_=True,
    type='PointMAEPretrainer',
    data_preprocessor=dict(
        type='MultiModalDataPreprocessor',
        points=dict(type='PointDataPreprocessor', num_points=1024, normalize=True)),
    encoder=dict(type='PointMAEEncoder', num_group=64, group_size=32, embed_dims=256, depth=4,
                 num_heads=4, embed_hidden=(32, 64, 64), drop_path_rate=0.1, frozen=False),
    decoder_depth=2,
    decoder_num_heads=4,
    mask_ratio=0.6,
    masking='random')
