# Captioning (BLEU-4, CIDEr, ... by pycocoevalcap) on the val split's three
# reference captions per image, greedy decoding.
_base_ = ['../xdecoder_r18-tiny_2xb8-2300it_synthshapes.py']
model = dict(head=dict(test_cfg=dict(task='caption')))
test_dataloader = dict(dataset=dict(caption_file='annotations/captions_val.json'))
test_evaluator = dict(_delete_=True, type='CaptionMetric')
