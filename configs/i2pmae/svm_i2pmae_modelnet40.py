# Linear SVM on ModelNet40 with the frozen pre-trained I2P-MAE encoder (the paper's linear
# evaluation, official `--test_svm modelnet40`): the unmasked encoder with the pre-training
# grouping (512/256/64 groups of 16/8/8), max-pooled normalised top tokens (384-d), a linear
# SVC with C=0.0093 fitted on the train split and scored on the test split:
#   python tools/analysis_tools/point_linear_probe.py configs/i2pmae/svm_i2pmae_modelnet40.py \
#       --C 0.0093
# The encoder loads i2pmae_ckpt: an official I2P-MAE pre-training checkpoint as released, or an
# mmfusion one (work_dirs/i2pmae_1xb64-300e_shapenet55/epoch_300.pth); the encoder finds its
# h_encoder.* keys in either. Override it with --cfg-options model.encoder.checkpoint=PATH.
#
# Data: the official SVM reads the first 1024 of the 2048 points of modelnet40_ply_hdf5_2048's
# h5 files, without normalisation; this config reads the modelnet40_normal_resampled layout
# (10,000 points with normals per txt file; the normals are dropped) and the data preprocessor
# keeps a fixed random 1024 points of each, normalised to the unit sphere. Both have the same
# 2468 test shapes; the train splits differ by a few shapes (h5 9840, resampled 9843), so
# accuracies may differ a little from the official protocol's.
_base_ = [
    '../_base_/models/i2pmae_paper.py',
    '../_base_/default_runtime.py',
]
i2pmae_ckpt = 'checkpoints/i2pmae_pretrain.pth'
model = dict(
    data_preprocessor=dict(points=dict(num_points=1024, normalize=True)),
    encoder=dict(checkpoint=i2pmae_ckpt))

data_root = 'data/modelnet40_normal_resampled'
test_pipeline = [
    dict(type='LoadPointsFromFile', use_dims=[0, 1, 2]),
    dict(type='PackFusionInputs'),
]
# The probe replaces the train split's pipeline by the test one (no augmentation).
train_dataloader = dict(
    batch_size=128,
    num_workers=8,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ModelNet40Dataset', data_root=data_root, layout='resampled',
                 split='train', pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=128,
    num_workers=8,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ModelNet40Dataset', data_root=data_root, layout='resampled',
                 split='test', test_mode=True, pipeline=test_pipeline))
