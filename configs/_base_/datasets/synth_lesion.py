# Synthetic ultrasound lesions in the BUSI/Kvasir folder layout, written by
# tools/dataset_converters/generate_synth_lesion.py. Point data_root at a real
# BUSI/Kvasir-style folder to train on real data.
dataset_type = 'MedicalSegDataset'
data_root = 'data/synth_lesion'
img_scale = (64, 64)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadBinaryMask'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackFusionInputs'),
]
# Masks are loaded after Resize: metrics are computed at the original size.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='LoadBinaryMask'),
    dict(type='PackFusionInputs'),
]

train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='splits/train.txt',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='splits/val.txt',
                 pipeline=test_pipeline, test_mode=True))
test_dataloader = dict(
    batch_size=16,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='splits/test.txt',
                 pipeline=test_pipeline, test_mode=True))
val_evaluator = dict(type='BinarySegMetric')
test_evaluator = val_evaluator
