# Claim (b) with the final recipe, baseline side: the single decoder on the
# same 10% of the aligned data, with the same unit noise (0.25) as the Zipper
# (zipper_asr-rope-noise_tiny_1xb16-1500it_synth-speech-10pct.py).
_base_ = ['./vocab-expansion_asr_tiny_1xb16-1500it_synth-speech-10pct.py']
model = dict(unit_noise=0.25)
