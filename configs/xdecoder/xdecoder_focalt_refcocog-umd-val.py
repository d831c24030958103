# Referring segmentation on RefCOCOg (UMD split, val; cIoU, paper: 57.6 for
# Focal-T) with the official inference: the sentence's projected token
# features join the grounding queries, the referred mask is that of the
# grounding query most similar to the sentence embedding, shortest side 512
# (longest at most 1024). Every sentence of every val ref is one sample (the
# official evaluation decodes all sentences of an image together: see the
# README's deviations). Official files, unchanged:
#   data/refcocog/refs(umd).p, data/refcocog/instances.json (from the refer
#   toolkit), data/coco/train2014/*.jpg
# Weights: the official xdecoder_focalt_last.pt converted by
# tools/model_converters/xdecoder_to_mmfusion.py (configs/xdecoder/README.md).
_base_ = ['./xdecoder_focalt_8xb4-50e_coco-panoptic.py']
model = dict(head=dict(test_cfg=dict(task='referring')))
test_dataloader = dict(
    _delete_=True, batch_size=1, num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='RefCocoDataset', data_root='data/refcocog', split_by='umd',
                 split='val', data_prefix=dict(img_path='../coco/train2014'),
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='mmdet.Resize', scale=(1024, 512), keep_ratio=True),
                           dict(type='LoadReferringMask'),
                           dict(type='PackFusionInputs')],
                 test_mode=True))
val_dataloader = test_dataloader
test_evaluator = dict(_delete_=True, type='ReferringSegMetric')
val_evaluator = test_evaluator
