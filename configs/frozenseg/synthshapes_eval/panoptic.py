# Panoptic segmentation (PQ / SQ / RQ, things and stuff) on the seen-class val split.
_base_ = ['../frozenseg_convnext-s8-sam-tiny_1xb8-5ep_synthshapes.py']
model = dict(head=dict(test_cfg=dict(task='panoptic')))
test_evaluator = dict(_delete_=True, type='PanopticQualityMetric')
