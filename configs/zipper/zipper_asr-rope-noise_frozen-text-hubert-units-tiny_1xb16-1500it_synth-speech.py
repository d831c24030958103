# The final ASR recipe on the tiny-HuBERT units (k-means over the first layer
# of a random-init HuBERT-shaped encoder, 35.6 units/s) instead of the log-mel
# units (23.7 units/s): the speech tower pretrained on those units
# (zipper_speech-lm_hubert-units-tiny_1xb16-600it_synth-speech.py), the position rate of
# the links scaled by the unit rates (1.65 * 35.6 / 23.7 = 2.48 units per
# character).
_base_ = ['./zipper_asr-rope-noise_frozen-text-tiny_1xb16-1500it_synth-speech.py']
hubert_speech_lm = 'work_dirs/zipper_speech-lm_hubert-units-tiny_1xb16-600it_synth-speech/iter_600.pth'
model = dict(
    unit_tokenizer={{_base_.hubert_unit_tokenizer}},
    decoder=dict(
        towers=dict(speech=dict(init_cfg=dict(type='Pretrained', checkpoint=hubert_speech_lm,
                                              prefix='decoder.towers.speech.'))),
        links=[dict(query='text', context='speech', every=2, num_heads=4, position_rate=2.48,
                    context_proj='mlp')]))
