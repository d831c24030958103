# The paper's claim (b), Zipper side: 10% of the aligned data (the first 200
# of the 2,000 training utterances), same schedule as the full-data run.
_base_ = ['./zipper_asr-rope_tiny_synth-speech.py']
train_dataloader = dict(dataset=dict(indices=200))
