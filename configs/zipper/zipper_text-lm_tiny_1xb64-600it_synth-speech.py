# Zipper stage 1a: pretrain the text tower alone, as a character LM on the
# text corpus of SynthSpeech (text only, no speech).
_base_ = [
    '../_base_/models/zipper_tiny.py',
    '../_base_/datasets/synth_speech.py',
    '../_base_/schedules/adamw_cosine_600it.py',
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

default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=600))
