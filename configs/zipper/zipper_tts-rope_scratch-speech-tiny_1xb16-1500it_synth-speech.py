# The paper's TTS claim, baseline side: zipper_tts-rope_tiny_1xb16-1500it_synth-speech.py
# with the speech tower trained from scratch (random init) instead of from the
# speech LM, at the full learning rate (0.3x is for a pretrained tower). Same
# data, links, frozen text tower and schedule.
_base_ = ['./zipper_tts-rope_tiny_1xb16-1500it_synth-speech.py']
model = dict(decoder=dict(towers=dict(speech=dict(init_cfg=None))))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'towers': dict(lr_mult=1.0)}))
