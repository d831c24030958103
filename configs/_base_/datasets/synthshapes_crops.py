# Object crops of SynthShapes (COCO instances format, written by
# tools/dataset_converters/generate_synthshapes.py). One sample per object:
# the crop around its box and its category name as text. Point data_root and
# ann_file at real COCO to train on COCO objects instead.
dataset_type = 'CocoInstanceCropDataset'
data_root = 'data/synthshapes'
crop_size = (32, 32)
# The datasets label objects by the annotation file's categories in id order,
# which for SynthShapes are these names (a test checks they equal
# mmfusion.datasets.synthshapes_meta.THING_CLASSES); zero-shot models get them
# as `classes`. novel_classes never appear in the training split.
_colours = ['red', 'green', 'blue', 'yellow', 'purple', 'orange']
_shapes = ['circle', 'square', 'triangle', 'star', 'cross']
classes = [f'{c} {s}' for c in _colours for s in _shapes]
novel_classes = ['red star', 'green triangle', 'blue cross', 'yellow circle', 'purple square',
                 'orange star']

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='CropToBox', margin=0.15, square=True),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackFusionInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='CropToBox', margin=0.15, square=True),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='PackFusionInputs'),
]

train_dataloader = dict(
    batch_size=128,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root,
                 ann_file='annotations/instances_train.json',
                 data_prefix=dict(img_path='images'), pipeline=train_pipeline))
# Seen objects (val) and objects of images with held-out combinations
# (val_novel) together; the metric reports seen and novel top-1 separately.
val_dataloader = dict(
    batch_size=128,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='ConcatDataset',
        datasets=[
            dict(type=dataset_type, data_root=data_root, ann_file=f'annotations/instances_{s}.json',
                 data_prefix=dict(img_path='images'),
                 pipeline=test_pipeline, test_mode=True) for s in ('val', 'val_novel')
        ]))
test_dataloader = val_dataloader
val_evaluator = dict(type='OpenVocabAccuracy', topk=(1, 5), novel_classes=novel_classes)
test_evaluator = val_evaluator
