# Zero-shot ADE20K-150 semantic segmentation (mIoU) of the COCO-trained
# Focal-T X-Decoder (paper: 25.1 mIoU for Focal-T), with its official
# inference: the 150 ADE20K names are the classifier (X-Decoder's 81
# templates), shortest side 640 (longest at most 2560), as the official
# ADE20K evaluation. Official files, unchanged:
#   data/ade/ADEChallengeData2016/images/validation/*.jpg
#   data/ade/ADEChallengeData2016/annotations/validation/*.png
# Weights: the official xdecoder_focalt_last.pt converted by
# tools/model_converters/xdecoder_to_mmfusion.py (configs/xdecoder/README.md).
_base_ = ['./xdecoder_focalt_8xb4-50e_coco-panoptic.py']
model = dict(head=dict(test_cfg=dict(task='semantic')))
# the classifier: the evaluated dataset's class names
custom_hooks = [dict(type='DatasetClassNamesHook')]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmdet.Resize', scale=(2560, 640), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackFusionInputs'),
]
test_dataloader = dict(
    _delete_=True, batch_size=1, num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ADE20KSemanticDataset', data_root='data/ade/ADEChallengeData2016',
                 data_prefix=dict(img_path='images/validation',
                                  seg_map_path='annotations/validation'),
                 pipeline=test_pipeline, test_mode=True))
val_dataloader = test_dataloader
test_evaluator = dict(_delete_=True, type='SemSegIoUMetric')
val_evaluator = test_evaluator
