# The paper's claim (b), baseline side: the single decoder with an expanded
# vocabulary on the same 10% of the aligned data (200 utterances) and
# schedule as zipper_asr-rope_tiny_1xb16-1500it_synth-speech-10pct.py.
_base_ = ['./vocab-expansion_asr_tiny_1xb16-1500it_synth-speech.py']
train_dataloader = dict(dataset=dict(indices=200))
