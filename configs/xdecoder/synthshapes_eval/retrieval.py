# Image-text retrieval (Recall@1/5 both ways) on the val split: every image
# against every reference caption of the split.
_base_ = ['../xdecoder_r18-tiny_2xb8-2300it_synthshapes.py']
model = dict(head=dict(test_cfg=dict(task='retrieval')))
test_dataloader = dict(dataset=dict(caption_file='annotations/captions_val.json'))
test_evaluator = dict(_delete_=True, type='RetrievalRecallMetric')
