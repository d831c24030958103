# Zipper ASR as the paper describes it: the pretrained text tower reads the
# pretrained speech tower through gated cross-attention after every 2nd block
# (gates start at 0; a linear projection between the towers' widths; no
# positions), the speech embeddings pass a new input projection
# h0 = ReLU(MLP(embedding)) (ZipperDecoder's defaults), both towers train on
# next-character prediction of the transcript. Evaluated by WER/CER on voices
# never heard in training.
_base_ = [
    '../_base_/models/zipper_tiny.py',
    '../_base_/datasets/synth_speech.py',
    '../_base_/default_runtime.py',
]
text_lm = 'work_dirs/zipper_text-lm_tiny_1xb64-600it_synth-speech/iter_600.pth'
speech_lm = 'work_dirs/zipper_speech-lm_tiny_1xb16-600it_synth-speech/iter_600.pth'
model = dict(decoder=dict(towers=dict(
    text=dict(init_cfg=dict(type='Pretrained', checkpoint=text_lm, prefix='decoder.towers.text.')),
    speech=dict(init_cfg=dict(type='Pretrained', checkpoint=speech_lm,
                              prefix='decoder.towers.speech.')))))
val_evaluator = dict(type='SpeechRecognitionMetric')
test_evaluator = val_evaluator

max_iters = 1500
optim_wrapper = dict(type='OptimWrapper', constructor='FusionOptimWrapperConstructor',
                     optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.01),
                     clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters, eta_min=1e-5),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=500)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=500))
