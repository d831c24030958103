# SynthShapes for promptable segmentation (tools/dataset_converters/generate_synthshapes.py).
# Training and evaluation read the instance annotations: the 1-4 shapes of each
# scene, one object each. SAM's "every mask is an object" (the textured background
# segment too) is format='coco_panoptic' with ann_file='annotations/panoptic_train.json'
# and data_prefix seg_map_path='annotations/panoptic_train'; at this budget it trains
# far slower (configs/sam/README.md: box mIoU 0.52 vs 0.78 after 700 iterations).
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
    dataset=dict(type=dataset_type, data_root=data_root, format='coco',
                 ann_file='annotations/instances_train.json', data_prefix=dict(img_path='images'),
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
