# Referring segmentation (cIoU, mIoU, Pr@0.5...) on the val refs of refsynth,
# SynthShapes in the RefCOCO layout: every sentence of every referred object.
_base_ = ['../xdecoder_r18-tiny_2xb8-2300it_synthshapes.py']
model = dict(head=dict(test_cfg=dict(task='referring')))
test_dataloader = dict(dataset=dict(
    _delete_=True, type='RefCocoDataset', data_root={{_base_.data_root}},
    ann_file='refsynth/refs(synth).p', instances_file='refsynth/instances.json',
    split_by='synth', split='val', data_prefix=dict(img_path='images'),
    pipeline=[dict(type='LoadImageFromFile'),
              dict(type='LoadReferringMask'),
              dict(type='PackFusionInputs')]))
test_evaluator = dict(_delete_=True, type='ReferringSegMetric')
