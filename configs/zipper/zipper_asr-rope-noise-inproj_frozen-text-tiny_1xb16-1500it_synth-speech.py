# The final ASR recipe (zipper_asr-rope-noise_frozen-text-tiny_1xb16-1500it_synth-speech.py)
# with the paper's projections instead of ours: a new input projection
# h0 = ReLU(MLP(embedding)) on the speech embeddings and a linear projection
# between the towers' widths in each link (instead of none and an MLP).
_base_ = ['./zipper_asr-rope-noise_frozen-text-tiny_1xb16-1500it_synth-speech.py']
model = dict(decoder=dict(
    input_proj='context',
    links=[dict(query='text', context='speech', every=2, num_heads=4, position_rate=1.65,
                context_proj='linear')]))
