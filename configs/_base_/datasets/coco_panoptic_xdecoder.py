# COCO panoptic (train2017 / val2017) with COCO captions, for X-Decoder.
# Expected layout (the official files, unchanged):
#   data/coco/train2017/*.jpg  data/coco/val2017/*.jpg
#   data/coco/annotations/panoptic_{train,val}2017.json
#   data/coco/annotations/panoptic_{train,val}2017/*.png
#   data/coco/annotations/captions_{train,val}2017.json
dataset_type = 'CocoPanopticCaptionDataset'
data_root = 'data/coco/'

# The 133 categories as the text encoder reads them, in the dataset's label
# order (80 things, then 53 stuff, each in category-id order). The dataset
# takes its own names from the json ('door-stuff', 'sky-other-merged', ...);
# these are the same categories without the '-merged' / '-other' / '-stuff'
# suffixes, which are annotation artefacts, not words.
thing_classes = [
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat',
    'traffic light', 'fire hydrant', 'stop sign', 'parking meter', 'bench', 'bird', 'cat',
    'dog', 'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe', 'backpack',
    'umbrella', 'handbag', 'tie', 'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball',
    'kite', 'baseball bat', 'baseball glove', 'skateboard', 'surfboard', 'tennis racket',
    'bottle', 'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple',
    'sandwich', 'orange', 'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake',
    'chair', 'couch', 'potted plant', 'bed', 'dining table', 'toilet', 'tv', 'laptop',
    'mouse', 'remote', 'keyboard', 'cell phone', 'microwave', 'oven', 'toaster', 'sink',
    'refrigerator', 'book', 'clock', 'vase', 'scissors', 'teddy bear', 'hair drier',
    'toothbrush',
]
stuff_classes = [
    'banner', 'blanket', 'bridge', 'cardboard', 'counter', 'curtain', 'door', 'floor wood',
    'flower', 'fruit', 'gravel', 'house', 'light', 'mirror', 'net', 'pillow', 'platform',
    'playing field', 'railroad', 'river', 'road', 'roof', 'sand', 'sea', 'shelf', 'snow',
    'stairs', 'tent', 'towel', 'wall brick', 'wall stone', 'wall tile', 'wall wood',
    'water', 'window blind', 'window', 'tree', 'fence', 'ceiling', 'sky', 'cabinet',
    'table', 'floor', 'pavement', 'mountain', 'grass', 'dirt', 'paper', 'food', 'building',
    'rock', 'wall', 'rug',
]
classes = thing_classes + stuff_classes

image_size = (1024, 1024)
# Large-scale jitter (resize by 0.1-2.0, then a 1024 crop), as X-Decoder and
# Mask2Former train on COCO. mmdet's transforms also move the masks, boxes
# and label map; boxes are mmdet HorizontalBoxes so they can.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPanopticAnnotations', box_type='hbox'),
    dict(type='mmdet.RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='mmdet.RandomResize', scale=image_size, ratio_range=(0.1, 2.0),
         resize_type='mmdet.Resize', keep_ratio=True),
    dict(type='mmdet.RandomCrop', crop_size=image_size, crop_type='absolute',
         recompute_bbox=True, allow_negative_crop=True),
    dict(type='PackFusionInputs'),
]
# Shorter side 800 (longer <= 1333); predictions come back at the original
# size, where PanopticQualityMetric reads the ground-truth PNG itself.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmdet.Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='PackFusionInputs'),
]

train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root,
                 ann_file='annotations/panoptic_train2017.json',
                 data_prefix=dict(img='train2017/', seg='annotations/panoptic_train2017/'),
                 caption_file='annotations/captions_train2017.json',
                 filter_cfg=dict(filter_empty_gt=True, min_size=32),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root,
                 ann_file='annotations/panoptic_val2017.json',
                 data_prefix=dict(img='val2017/', seg='annotations/panoptic_val2017/'),
                 pipeline=test_pipeline, test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type='PanopticQualityMetric')
test_evaluator = val_evaluator
