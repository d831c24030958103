# SynthShapes for promptable segmentation (tools/dataset_converters/generate_synthshapes.py).
# Training reads the panoptic annotations, so every segment is an object: the
# 1-4 shapes ("things") and the textured background ("stuff"). Evaluation reads
# the instance annotations (the shapes) with one ground-truth box per object.
dataset_type = 'PromptableSegDataset'
data_root = 'data/synthshapes'
img_scale = (96, 96)
# colour-shape combinations that never appear in train or val (only in val_novel),
# as mmfusion.datasets.synthshapes_meta.HELD_OUT
held_out_classes = ['red star', 'green triangle', 'blue cross', 'yellow circle',
                    'purple square', 'orange star']

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPromptableAnnotations'),
    dict(type='mmdet.Resize', scale=img_scale, keep_ratio=True),
    dict(type='mmdet.RandomFlip', prob=0.5, direction='horizontal'),
    # SAM's first prompt: a jittered box or a random point inside, half each.
    dict(type='GeneratePrompts', prompt='box_or_point', box_prob=0.5, box_noise=True,
         random_point=True),
    dict(type='PackFusionInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPromptableAnnotations'),
    dict(type='mmdet.Resize', scale=img_scale, keep_ratio=True),
    dict(type='GeneratePrompts', prompt='box'),
    dict(type='PackFusionInputs'),
]

train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, format='coco_panoptic',
                 ann_file='annotations/panoptic_train.json',
                 data_prefix=dict(img_path='images', seg_map_path='annotations/panoptic_train'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, format='coco',
                 ann_file='annotations/instances_val.json', data_prefix=dict(img_path='images'),
                 pipeline=test_pipeline, test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type='PromptableSegMetric')
test_evaluator = val_evaluator
