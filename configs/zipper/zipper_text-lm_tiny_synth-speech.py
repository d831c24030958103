# Zipper stage 1a: pretrain the text tower alone, as a character LM on the
# text corpus of SynthSpeech (text only, no speech).
_base_ = [
    '../_base_/models/zipper_tiny.py',
    '../_base_/datasets/synth_speech.py',
    '../_base_/default_runtime.py',
]
model = dict(context=None, unit_tokenizer=None,
             decoder=dict(towers=dict(speech=None), links=[]))
train_dataloader = dict(
    batch_size=64,
    dataset=dict(_delete_=True, type='TextLineDataset', ann_file='data/synth_speech/text_corpus.txt',
                 pipeline={{_base_.text_pipeline}}))
val_dataloader = val_evaluator = val_cfg = None
test_dataloader = test_evaluator = test_cfg = None

max_iters = 600
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.01),
                     clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters, eta_min=1e-5),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=max_iters))
