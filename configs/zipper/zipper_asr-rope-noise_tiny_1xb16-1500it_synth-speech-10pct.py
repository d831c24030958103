# Claim (b) with the final recipe, Zipper side: 10% of the aligned data (the
# first 200 of the 2,000 training utterances), same schedule.
_base_ = ['./zipper_asr-rope-noise_frozen-text-tiny_1xb16-1500it_synth-speech.py']
train_dataloader = dict(dataset=dict(indices=200))
