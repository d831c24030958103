# The ASR recipe that reaches the target: the frozen-text Zipper with
# position-aware links (zipper_asr-rope_frozen-text-tiny_1xb16-1500it_synth-speech.py), plus
# * context noise: while training, each speech unit the text tower reads is
#   replaced by a random unit with probability 0.25. Voices never heard in
#   training change many units; without noise the fusion memorises the training
#   voices' exact units (training next-character accuracy 1.000, held-out WER
#   32.4 with the learning rates below);
# * the pretrained speech tower at 0.3x the learning rate of the new
#   cross-attention.
_base_ = ['./zipper_asr-rope_frozen-text-tiny_1xb16-1500it_synth-speech.py']
model = dict(context_noise=0.25)
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'towers': dict(lr_mult=0.3)}))
