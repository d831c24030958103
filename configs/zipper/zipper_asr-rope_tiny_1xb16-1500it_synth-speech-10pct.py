# The paper's claim (b), Zipper side: 10% of the aligned data (the first 200
# of the 2,000 training utterances), same schedule as the full-data run, with
# the best full-data recipe (position-aware links, frozen text tower).
_base_ = ['./zipper_asr-rope_frozen-text-tiny_1xb16-1500it_synth-speech.py']
train_dataloader = dict(dataset=dict(indices=200))
