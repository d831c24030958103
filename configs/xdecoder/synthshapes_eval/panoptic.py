# Panoptic segmentation (PQ / SQ / RQ, things and stuff) on the seen-class val split.
_base_ = ['../xdecoder_r18-tiny_2xb8-2300it_synthshapes.py']
model = dict(head=dict(test_cfg=dict(task='panoptic')))
test_evaluator = dict(_delete_=True, type='PanopticQualityMetric')
