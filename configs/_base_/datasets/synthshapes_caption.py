# SynthShapes scenes (96x96) with their COCO captions (3 per image), for
# captioning models: one sample per image, `gt_caption` the image's captions.
# The panoptic annotation file only lists the images; no masks are loaded.
# Point data_root at real COCO (with captions_*.json) to caption COCO instead.
dataset_type = 'CocoPanopticCaptionDataset'
data_root = 'data/synthshapes'
# No flip: captions are not about positions, but keep the images as generated.
pipeline = [dict(type='LoadImageFromFile'), dict(type='PackFusionInputs')]


def _split(split, test_mode=False):
    return dict(type=dataset_type, data_root=data_root,
                ann_file=f'annotations/panoptic_{split}.json',
                data_prefix=dict(img='images', seg=f'annotations/panoptic_{split}'),
                caption_file=f'annotations/captions_{split}.json',
                pipeline=pipeline, test_mode=test_mode)


train_dataloader = dict(
    batch_size=32,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=_split('train'))
val_dataloader = dict(
    batch_size=50,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=_split('val', test_mode=True))
test_dataloader = val_dataloader
val_evaluator = [dict(type='CaptionMetric'), dict(type='TokenPerplexityMetric')]
test_evaluator = val_evaluator
