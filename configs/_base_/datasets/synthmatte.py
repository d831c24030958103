# SynthMatte (tools/dataset_converters/generate_synthmatte.py, `make synthmatte`):
# 128-pixel composites of procedural silhouettes with hair, fur, semi-transparent
# parts and blur over real photos, in the Composition-1k layout
# ({split}/{fg,bg,alpha,merged,trimap}/ + {split}.json). The test split's
# backgrounds are photos no training image uses.
dataset_type = 'MattingDataset'
data_root = 'data/synthmatte/'
meta_keys = ('sample_idx', 'img_path', 'alpha_path', 'trimap_path', 'ori_shape', 'img_shape',
             'alpha_box', 'flip')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadMattingAnnotations'),
    dict(type='MattingRandomFlip', prob=0.5),
    dict(type='PackFusionInputs', meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadMattingAnnotations'),
    dict(type='PackFusionInputs', meta_keys=meta_keys),
]
train_dataloader = dict(
    batch_size=8, num_workers=1, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='train.json',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8, num_workers=1, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='val.json',
                 pipeline=test_pipeline, test_mode=True))
test_dataloader = dict(
    batch_size=8, num_workers=1, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='test.json',
                 pipeline=test_pipeline, test_mode=True))
# SEMat's protocol: errors over the whole image, the prediction rounded to 8 bits.
# (A list: mmengine reads a dict with a 'metrics' key as an Evaluator config.)
val_evaluator = [dict(type='MattingMetric', region='all', metrics=['sad', 'mse', 'grad', 'conn'])]
test_evaluator = val_evaluator
