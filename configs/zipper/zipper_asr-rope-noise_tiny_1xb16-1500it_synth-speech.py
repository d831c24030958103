# Claim (a) with the final recipe: zipper_asr-rope-noise_frozen-text-tiny_1xb16-1500it_synth-speech.py
# with the text tower trained too (at 0.3x, as the speech tower).
_base_ = ['./zipper_asr-rope-noise_frozen-text-tiny_1xb16-1500it_synth-speech.py']
model = dict(decoder=dict(towers=dict(text=dict(frozen=False))))
