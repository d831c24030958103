# Fine-tuning the pre-trained I2P-MAE encoder on ScanObjectNN PB-T50-RS (the hardest variant),
# the official recipe (cfgs/fine-tuning/scan_pb.yaml, I2P_MAE_ScanObjectNN): 2048 points,
# groups 512/256/64 of 32/16/16 neighbours, local attention radii 0.48/0.96/1.92, no per-level
# norms, one LayerNorm on the 64 top tokens, [mean, max] concatenated (768-d), the 3-layer head
# with dropout 0.5 to 15 classes, plain cross-entropy; AdamW 5e-4 / wd 0.05 (no decay on norms,
# biases, tokens), gradients clipped at 10, batch 32, 300 epochs with 10 warm-up epochs.
# Augmentation: scale U(0.9, 1.1) per axis without shift, then a random rotation about y.
# The official code evaluates the test split after every epoch and reports the best epoch.
#
# Data: data/ScanObjectNN/main_split/{training,test}_objectdataset_augmentedrot_scale75.h5.
# The clouds are not normalised (as the official loader). i2pmae_ckpt: an official I2P-MAE
# pre-training checkpoint or work_dirs/i2pmae_1xb64-300e_shapenet55/epoch_300.pth (the encoder
# finds its h_encoder.* keys in either; the decoder, teacher and per-level norms are left out).
_base_ = ['../_base_/schedules/i2pmae_finetune_300e.py', '../_base_/default_runtime.py']
i2pmae_ckpt = 'checkpoints/i2pmae_pretrain.pth'
model = dict(
    type='PointCloudClassifier',
    data_preprocessor=dict(
        type='MultiModalDataPreprocessor',
        points=dict(type='PointDataPreprocessor', num_points=2048, normalize=False)),
    encoder=dict(
        type='I2PMAEEncoder',
        num_groups=(512, 256, 64),
        group_sizes=(32, 16, 16),
        embed_dims=(96, 192, 384),
        depths=(5, 5, 5),
        num_heads=6,
        local_radius=(0.48, 0.96, 1.92),
        drop_path_rate=0.1,
        embed_hidden=(128, 256, 512),
        norms=False,
        pool='mean,max',
        frozen=False,
        checkpoint=i2pmae_ckpt),
    num_classes=15,
    hidden_channels=256,
    dropout=0.5,
    label_smoothing=0.0)

dataset_type = 'ScanObjectNNDataset'
data_root = 'data/ScanObjectNN'
train_pipeline = [
    dict(type='PointsScaleAndTranslate', scale=(0.9, 1.1), translate=0.0),
    dict(type='PointsRandomRotate', axis='y'),  # angle U(-pi, pi)
    dict(type='PackFusionInputs'),
]
test_pipeline = [dict(type='PackFusionInputs')]
train_dataloader = dict(
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train', variant='hardest',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test', variant='hardest',
                 test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='OpenVocabAccuracy', topk=(1, ), prefix='cls')
test_evaluator = val_evaluator

default_hooks = dict(
    logger=dict(interval=50, log_metric_by_epoch=True),
    checkpoint=dict(by_epoch=True, interval=10, max_keep_ckpts=1, save_best='cls/top1',
                    rule='greater'))
log_processor = dict(by_epoch=True)
