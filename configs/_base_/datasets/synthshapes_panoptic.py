# SynthShapes scenes (96x96, written by
# tools/dataset_converters/generate_synthshapes.py) in the COCO panoptic format:
# 30 colour-shape things and 3 background stuff classes. Each sample carries its
# thing masks (gt_instances) and the semantic label map (gt_sem_seg, things then
# stuff, 255 = void), which is what X-Decoder / Mask2Former-style models train on.
# Point data_root / ann_file at real COCO panoptic to train on COCO instead.
dataset_type = 'CocoPanopticCaptionDataset'
data_root = 'data/synthshapes'
# The dataset's label space (categories in id order: things, then stuff); a
# config cannot import python lists, so they are written out here.
thing_classes = [
    'red circle', 'red square', 'red triangle', 'red star', 'red cross',
    'green circle', 'green square', 'green triangle', 'green star', 'green cross',
    'blue circle', 'blue square', 'blue triangle', 'blue star', 'blue cross',
    'yellow circle', 'yellow square', 'yellow triangle', 'yellow star', 'yellow cross',
    'purple circle', 'purple square', 'purple triangle', 'purple star', 'purple cross',
    'orange circle', 'orange square', 'orange triangle', 'orange star', 'orange cross',
]
stuff_classes = ['plain background', 'striped background', 'dotted background']
classes = thing_classes + stuff_classes
# Colour-shape combinations that never appear in train or val, only in
# val_novel (mmfusion.datasets.synthshapes_meta.HELD_OUT): the open-vocabulary
# classes. The rest are the seen classes.
held_out_classes = ['red star', 'green triangle', 'blue cross', 'yellow circle',
                    'purple square', 'orange star']
seen_classes = [c for c in classes if c not in held_out_classes]

# Light augmentation: horizontal flip (mmdet's RandomFlip also flips the thing
# masks; mmcv's would leave them unflipped). Boxes are mmdet HorizontalBoxes so
# that mmdet transforms can flip them too.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPanopticAnnotations', box_type='hbox'),
    dict(type='mmdet.RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackFusionInputs'),
]
# Predictions are written at ori_shape; the label map is loaded at that size.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPanopticAnnotations', box_type='hbox'),
    dict(type='PackFusionInputs'),
]

train_dataloader = dict(
    batch_size=16,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root,
                 ann_file='annotations/panoptic_train.json',
                 data_prefix=dict(img='images', seg='annotations/panoptic_train'),
                 caption_file='annotations/captions_train.json',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root,
                 ann_file='annotations/panoptic_val.json',
                 data_prefix=dict(img='images', seg='annotations/panoptic_val'),
                 pipeline=test_pipeline, test_mode=True))
test_dataloader = val_dataloader
# mmseg's mIoU averages every class that occurs in the ground truth or the
# predictions, so a held-out class predicted on these seen-class scenes counts
# as 0; mIoU_seen averages the seen classes only (the generalised zero-shot
# protocol's mIoU(S)). Predictions still choose among all class names.
val_evaluator = dict(type='SemSegIoUMetric', class_groups=dict(seen=seen_classes))
test_evaluator = val_evaluator
