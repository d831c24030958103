# Zipper stage 1b: pretrain the speech tower alone, as an LM over the speech
# units of the training utterances (transcripts unused).
_base_ = [
    '../_base_/models/zipper_tiny.py',
    '../_base_/datasets/synth_speech.py',
    '../_base_/schedules/adamw_cosine_600it.py',
    '../_base_/default_runtime.py',
]
model = dict(output='speech', context=None,
             decoder=dict(towers=dict(text=None), links=[]))
train_dataloader = dict(dataset=dict(require_text=False))
val_dataloader = val_evaluator = val_cfg = None
test_dataloader = test_evaluator = test_cfg = None

default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=600))
