# panoptic.py (PQ on the seen-class val split) with the CLIP ensemble of
# semantic_novel_clip-ensemble.py.
_base_ = ['./semantic_clip-ensemble.py']
model = dict(head=dict(test_cfg=dict(task='panoptic')))
test_evaluator = dict(_delete_=True, type='PanopticQualityMetric')
