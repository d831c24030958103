# COCO captioning (BLEU-4, CIDEr, ... by pycocoevalcap) with the official
# decoding: 224 x 224 input, greedy over the whole CLIP vocabulary for 50
# steps from the start token, the text cut at the end token and then at the
# first period. Images and reference captions of COCO val2017 in the official
# files (for the Karpathy test split, point caption_file at a COCO-format
# captions json of those 5,000 images and ann_file at a panoptic json
# restricted to them):
#   data/coco/val2017/*.jpg, data/coco/annotations/panoptic_val2017.json,
#   data/coco/annotations/captions_val2017.json
# Weights: the official xdecoder_focalt_last.pt converted by
# tools/model_converters/xdecoder_to_mmfusion.py (configs/xdecoder/README.md).
_base_ = ['./xdecoder_focalt_8xb4-50e_coco-panoptic.py']
model = dict(head=dict(test_cfg=dict(task='caption')))
test_dataloader = dict(batch_size=1, dataset=dict(
    caption_file='annotations/captions_val2017.json',
    pipeline=[dict(type='LoadImageFromFile'),
              dict(type='mmdet.Resize', scale=(224, 224), keep_ratio=False),
              dict(type='PackFusionInputs')]))
val_dataloader = test_dataloader
test_evaluator = dict(_delete_=True, type='CaptionMetric')
val_evaluator = test_evaluator
