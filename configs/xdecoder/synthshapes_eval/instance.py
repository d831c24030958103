# Instance segmentation (COCO mask AP through pycocotools) on the val split.
_base_ = ['../xdecoder_r18-tiny_2xb8-2300it_synthshapes.py']
model = dict(head=dict(test_cfg=dict(task='instance')))
test_evaluator = dict(_delete_=True, type='CocoMaskAPMetric')
